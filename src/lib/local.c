/* local.c - STUB, replaced by the local backend. */
#include <errno.h>
#include <nox/backend.h>

int nox_backend_local_new(const struct nox_local_opts *opts,
			  struct nox_backend **out, struct nox_err *err)
{
	(void)opts;
	*out = NULL;
	return nox_err_set(err, ENOSYS, "local backend not built yet");
}
