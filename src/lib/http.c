/* http.c - STUB, replaced by the HTTP backend. */
#include <errno.h>
#include <nox/backend.h>

int nox_backend_http_new(const struct nox_http_opts *opts,
			 struct nox_backend **out, struct nox_err *err)
{
	(void)opts;
	*out = NULL;
	return nox_err_set(err, ENOSYS, "http backend not built yet");
}
