/*
 * ctlreq.c - parsing of .nox/exec requests (see ctlreq.h).
 *
 * Kept apart from ctl.c, which owns the FUSE side of the control files,
 * so the parser can be fuzzed on its own (tests/fuzz/fuzz_ctl.c).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ctlreq.h"

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void fs_ctl_req_cleanup(struct fs_ctl_req *r)
{
	if (r->is_v1)
		nox_v1_exec_req_cleanup(&r->v1);
	free(r->text);
	memset(r, 0, sizeof(*r));
}

int fs_ctl_req_parse(const char *buf, size_t len, bool at_end,
		     int default_timeout, struct fs_ctl_req *r,
		     struct nox_err *err)
{
	size_t i = 0, tl;
	int ret;

	memset(r, 0, sizeof(*r));
	while (i < len && is_blank(buf[i]))
		i++;
	if (i == len)
		return FS_CTL_REQ_EMPTY;
	if (buf[i] == '{') {
		struct json_tokener *tok = json_tokener_new_ex(64);
		enum json_tokener_error je;
		json_object *obj;

		if (!tok)
			return nox_err_set(err, ENOMEM, "out of memory");
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
		obj = json_tokener_parse_ex(tok, buf + i, (int)(len - i));
		je = json_tokener_get_error(tok);
		json_tokener_free(tok);
		json_object_put(obj);
		if (je == json_tokener_continue) {
			if (!at_end)
				return FS_CTL_REQ_INCOMPLETE;
			return nox_err_set(err, EINVAL, "truncated JSON");
		}
		/* the library's parser gives the precise message */
		ret = nox_v1_exec_req_parse(buf, len, &r->v1, err);
		if (ret < 0)
			return -EINVAL;
		r->is_v1 = true;
		r->req = r->v1.req;
		if (r->req.timeout_seconds <= 0)
			r->req.timeout_seconds = default_timeout;
		return FS_CTL_REQ_READY;
	}
	/* every line written on the open is one script: a shell (bash's
	 * printf) writes a multi-line string one line per write(2) */
	if (!at_end)
		return FS_CTL_REQ_INCOMPLETE;
	if (memchr(buf, '\0', len))
		return nox_err_set(err, EINVAL,
				   "shell request holds a NUL byte");
	tl = buf[len - 1] == '\n' ? len - 1 : len;
	r->text = malloc(tl + 1);
	if (!r->text)
		return nox_err_set(err, ENOMEM, "out of memory");
	memcpy(r->text, buf, tl);
	r->text[tl] = '\0';
	r->sh_argv[0] = "sh";
	r->sh_argv[1] = "-c";
	r->sh_argv[2] = r->text;
	r->sh_argv[3] = NULL;
	r->req.argv = r->sh_argv;
	r->req.workdir = NULL;
	r->req.env = NULL;
	r->req.timeout_seconds = default_timeout;
	return FS_CTL_REQ_READY;
}

