/*
 * http_v1.c - the http backend's v1 calls (sandbox create, touch, exec,
 * upload, download, delete) and nox.sandboxes (info, list), on the
 * transport of http.c and the JSON shapes of v1.c.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nox/id.h>
#include <nox/v1.h>

#include "http_i.h"

/* Sandbox paths are checked here too: a bad one never goes on the wire. */
static int sandbox_path_ok(const char *what, const char *p, struct nox_err *err)
{
	char rel[PATH_MAX];
	int r;

	if (!p)
		return 0;
	r = nox_path_from_sandbox(p, rel, sizeof(rel), err);
	if (r < 0)
		return nox_err_wrap(err, -r, "%s", what);
	return 0;
}

int http_v1_health(struct nox_backend *b, struct nox_err *err)
{
	struct http_call c;
	int r;

	http_call_init(&c, "GET",
		       http_path(NULL, "/healthz", NULL, NULL, NULL, NULL));
	c.idempotent = true;
	r = http_call_run(http_of(b), &c, err);
	http_call_cleanup(&c);
	return r;
}

int http_v1_create(struct nox_backend *b, const char *id,
		   const struct nox_create_opts *opts,
		   struct nox_sandbox_info *info, struct nox_err *err)
{
	struct http_call c;
	char *body = nox_v1_create_req_encode(opts);
	int r;

	http_call_init(&c, "PUT", http_path(id, "", NULL, NULL, NULL, NULL));
	if (!body) {
		http_call_cleanup(&c);
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	http_call_json_body(&c, body);
	c.idempotent = true;
	r = http_call_run(http_of(b), &c, err);
	if (r == 0) {
		r = nox_v1_create_resp_parse(c.mem, c.mem_len, info, err);
		if (r < 0)
			r = nox_err_wrap(err, EPROTO, "%s %s", c.method,
					 c.path);
		else if (info->ttl_seconds == 0)
			info->ttl_seconds = opts->ttl_seconds > 0
						? opts->ttl_seconds
						: NOX_DEFAULT_TTL;
	}
	free(body);
	http_call_cleanup(&c);
	return r;
}

int http_v1_touch(struct nox_backend *b, const char *id, struct nox_err *err)
{
	struct http_call c;
	int r;

	http_call_init(&c, "POST",
		       http_path(id, "/touch", NULL, NULL, NULL, NULL));
	c.idempotent = true;
	r = http_call_run(http_of(b), &c, err);
	http_call_cleanup(&c);
	return r;
}

/* true when s[0..n) holds U+FFFD (EF BF BD), the replacement character. */
static bool exec_has_fffd(const char *s, size_t n)
{
	return n >= 3 && memmem(s, n, "\xef\xbf\xbd", 3) != NULL;
}

/*
 * Over a server without nox.bytes, a stream holding U+FFFD may have lost
 * bytes that were not UTF-8: the wire cannot tell, so such a stream is
 * flagged lossy and named in a last line of err (NOX_EXEC_LOSSY_NOTE).
 * A U+FFFD the command really wrote is flagged the same way.
 */
static int exec_mark_lossy(struct http_backend *h, struct nox_exec_result *res,
			   struct nox_err *err)
{
	bool o = !res->out_exact && exec_has_fffd(res->out, res->out_len);
	bool e = !res->err_exact && exec_has_fffd(res->err, res->err_len);
	bool nl;
	char note[160], *ne;
	int n;

	if ((!o && !e) || http_ext_bytes(h))
		return 0;
	res->out_lossy |= o;
	res->err_lossy |= e;
	nl = res->err_len > 0 && res->err[res->err_len - 1] != '\n';
	n = snprintf(note, sizeof(note),
		     "%s" NOX_EXEC_LOSSY_NOTE
		     "%s%s%s may hold U+FFFD for bytes that were not UTF-8 "
		     "(the server lacks nox.bytes)\n",
		     nl ? "\n" : "", o ? "stdout" : "", o && e ? " and " : "",
		     e ? "stderr" : "");
	if (n < 0 || (size_t)n >= sizeof(note))
		return 0;
	ne = realloc(res->err, res->err_len + (size_t)n + 1);
	if (!ne)
		return nox_err_set(err, ENOMEM, "out of memory");
	memcpy(ne + res->err_len, note, (size_t)n + 1);
	res->err = ne;
	res->err_len += (size_t)n;
	return 0;
}

int http_v1_exec(struct nox_backend *b, const char *id,
		 const struct nox_exec_req *req, struct nox_exec_result *res,
		 struct nox_err *err)
{
	int secs = req->timeout_seconds > 0 ? req->timeout_seconds
					    : NOX_DEFAULT_EXEC_TIMEOUT;
	struct http_call c;
	char *body;
	int r;

	r = sandbox_path_ok("exec workdir", req->workdir, err);
	if (r < 0)
		return r;
	body = nox_v1_exec_req_encode(req);
	http_call_init(&c, "POST",
		       http_path(id, "/exec", NULL, NULL, NULL, NULL));
	if (!body) {
		http_call_cleanup(&c);
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	http_call_json_body(&c, body);
	c.timeout_ms = req->deadline_ms > 0
			   ? req->deadline_ms
			   : (long)secs * 1000L + EXEC_MARGIN_MS;
	c.cancel = req->cancel;
	r = http_call_run(http_of(b), &c, err);
	if (r == -EINTR && !http_ext_cancel(http_of(b)))
		nox_err_wrap(err, EINTR, "the server offers no nox.cancel, so "
					 "the command may run on to its end");
	if (r == 0) {
		r = nox_v1_exec_result_parse(c.mem, c.mem_len, res, err);
		if (r < 0)
			r = nox_err_wrap(err, EPROTO, "%s %s", c.method,
					 c.path);
		else
			r = exec_mark_lossy(http_of(b), res, err);
		if (r < 0)
			nox_exec_result_cleanup(res);
	}
	free(body);
	http_call_cleanup(&c);
	return r;
}

int http_v1_upload(struct nox_backend *b, const char *id, const char *dest,
		   int tar_fd, long answer_ms, struct nox_err *err)
{
	struct http_call c;
	int r;

	r = sandbox_path_ok("upload dest", dest, err);
	if (r < 0)
		return r;
	if (tar_fd < 0)
		return nox_err_set(err, EBADF, "upload: bad descriptor");
	http_call_init(&c, "POST",
		       http_path(id, "/files/upload", "dest",
				 dest ? dest : NOX_WORKSPACE, NULL, NULL));
	c.in_fd = tar_fd;
	c.answer_ms = answer_ms;
	c.ctype = "application/x-tar";
	c.idempotent = true;
	r = http_call_run(http_of(b), &c, err);
	http_call_cleanup(&c);
	return r;
}

int http_v1_download(struct nox_backend *b, const char *id, const char *src,
		     int out_fd, struct nox_err *err)
{
	struct http_call c;
	int r;

	r = sandbox_path_ok("download src", src, err);
	if (r < 0)
		return r;
	if (out_fd < 0)
		return nox_err_set(err, EBADF, "download: bad descriptor");
	http_call_init(&c, "GET",
		       http_path(id, "/files/download", "src",
				 src ? src : NOX_WORKSPACE, NULL, NULL));
	c.sink = SINK_FD;
	c.out_fd = out_fd;
	c.idempotent = true;
	r = http_call_run(http_of(b), &c, err);
	http_call_cleanup(&c);
	return r;
}

int http_v1_download_stream(struct nox_backend *b, const char *id,
			    const char *src, nox_data_cb cb, void *ud,
			    struct nox_err *err)
{
	struct http_call c;
	int r;

	r = sandbox_path_ok("download src", src, err);
	if (r < 0)
		return r;
	http_call_init(&c, "GET",
		       http_path(id, "/files/download", "src",
				 src ? src : NOX_WORKSPACE, NULL, NULL));
	c.sink = SINK_CB;
	c.data_cb = cb;
	c.data_ud = ud;
	c.idempotent = true;
	r = http_call_run(http_of(b), &c, err);
	http_call_cleanup(&c);
	return r;
}

int http_v1_delete(struct nox_backend *b, const char *id, struct nox_err *err)
{
	struct http_call c;
	int r;

	http_call_init(&c, "DELETE", http_path(id, "", NULL, NULL, NULL, NULL));
	c.idempotent = true;
	c.gone_ok = true;
	r = http_call_run(http_of(b), &c, err);
	http_call_cleanup(&c);
	return r;
}

/* Copies s into a fixed field; -1 when it does not fit. */
static int field_copy(char *dst, size_t sz, const char *s)
{
	size_t n = strlen(s);

	if (n >= sz)
		return -1;
	memcpy(dst, s, n + 1);
	return 0;
}

int http_v1_info(struct nox_backend *b, const char *id,
		 struct nox_sandbox_info *info, struct nox_err *err)
{
	struct http_backend *h = http_of(b);
	struct http_call c;
	json_object *o = NULL;
	const char *s;
	char why[96];
	int r;

	memset(info, 0, sizeof(*info));
	r = http_ext_probe(h, err);
	if (r < 0)
		return r;
	if (http_ext_usable(h, true)) {
		http_call_init(&c, "GET",
			       http_path(id, "", NULL, NULL, NULL, NULL));
		c.idempotent = true;
		r = http_call_run(h, &c, err);
		if (r == 0) {
			r = nox_v1_create_resp_parse(c.mem, c.mem_len, info,
						     err);
			if (r < 0)
				r = nox_err_wrap(err, EPROTO, "%s %s", c.method,
						 c.path);
		}
		http_call_cleanup(&c);
		return r;
	}
	/* v1 only: touch is the one call that answers 404 without creating */
	http_call_init(&c, "POST",
		       http_path(id, "/touch", NULL, NULL, NULL, NULL));
	c.idempotent = true;
	r = http_call_run(h, &c, err);
	if (r == 0 && c.mem_len > 0 &&
	    fsw_json_parse(c.mem, c.mem_len, &o, why, sizeof(why)) == 0 &&
	    fsw_get_str(o, "expiresAt", false, &s, why, sizeof(why)) == 0 &&
	    field_copy(info->expires_at, sizeof(info->expires_at), s) < 0)
		r = http_call_bad(&c, "'expiresAt' too long", err);
	json_object_put(o);
	http_call_cleanup(&c);
	return r;
}

int http_v1_list_sandboxes(struct nox_backend *b, nox_sandbox_cb cb, void *ud,
			   struct nox_err *err)
{
	struct http_backend *h = http_of(b);
	json_object *o = NULL, *arr, *el;
	struct http_call c;
	const char *id;
	char why[96];
	size_t i, n;
	int r;

	r = http_ext_need(h, true, err);
	if (r < 0)
		return r;
	http_call_init(
	    &c, "GET",
	    http_path(NULL, "/v1/sandboxes", NULL, NULL, NULL, NULL));
	c.idempotent = true;
	r = http_call_run(h, &c, err);
	if (r < 0)
		goto out;
	r = http_call_json(&c, &o, err);
	if (r < 0)
		goto out;
	if (!json_object_object_get_ex(o, "sandboxes", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		r = http_call_bad(&c, "'sandboxes' is not an array", err);
		goto out;
	}
	/* validate everything first: the callback sees a sane list or none */
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		el = json_object_array_get_idx(arr, i);
		if (!el || !json_object_is_type(el, json_type_object) ||
		    fsw_get_str(el, "id", true, &id, why, sizeof(why)) < 0 ||
		    nox_id_validate(id, NULL) < 0) {
			r = http_call_bad(
			    &c, "a sandbox entry has no valid 'id'", err);
			goto out;
		}
	}
	for (i = 0; i < n && r == 0; i++) {
		el = json_object_array_get_idx(arr, i);
		fsw_get_str(el, "id", true, &id, why, sizeof(why));
		r = cb(id, ud);
	}
out:
	json_object_put(o);
	http_call_cleanup(&c);
	return r;
}
