/*
 * api_v1.c - the NoxRunner v1 endpoints (docs/protocol.md, "v1
 * endpoints"): healthz, create, touch, exec, upload, download, delete.
 *
 * Each handler validates what the client sent (IDs are checked by the
 * router, sandbox paths here), calls the backend once and answers with the
 * v1 JSON shape or an error carrying the errno name.  Large data never sits
 * in memory: uploads arrive in an unlinked temp file (server.c spools
 * them); a download is packed by a thread of its own into a pipe and sent
 * as it is made (chunked), so its first byte leaves before its last file
 * is read and no copy of the archive is kept on disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "noxd.h"

#define API_TAR_TYPE "application/x-tar"

int api_healthz(struct noxd_req *r)
{
	struct nox_err err;
	int rc = nox_backend_health(r->d->backend, &err);

	if (rc < 0)
		return server_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
					  nox_err_str(&err, -rc));
	return server_reply_buf(r, MHD_HTTP_OK, "text/plain", "OK", 2);
}

/* Reply for a failed backend call. */
static int api_fail(struct noxd_req *r, int rc, const struct nox_err *err)
{
	return server_reply_errno(r, rc, nox_err_str(err, rc < 0 ? -rc : rc));
}

/* true when the body holds only white space (an "empty" JSON body). */
static bool api_body_blank(const struct noxd_req *r)
{
	size_t i;

	for (i = 0; i < r->body_len; i++)
		if (!strchr(" \t\r\n", r->body[i]))
			return false;
	return true;
}

int api_create(struct noxd_req *r)
{
	struct nox_create_opts opts = {0};
	struct nox_sandbox_info info;
	struct nox_err err;
	char *store = NULL;
	int rc;

	if (!api_body_blank(r)) {
		rc = nox_v1_create_req_parse(r->body, r->body_len, &opts,
					     &store, &err);
		if (rc < 0)
			return api_fail(r, rc, &err);
	}
	memset(&info, 0, sizeof(info));
	rc = nox_backend_create(r->d->backend, r->id, &opts, &info, &err);
	free(store);
	if (rc < 0)
		return api_fail(r, rc, &err);
	return server_reply_json(r, MHD_HTTP_OK,
				 nox_v1_create_resp_encode(&info));
}

int api_touch(struct noxd_req *r)
{
	struct nox_sandbox_info info;
	struct json_object *o;
	struct nox_err err;
	char *json;
	int rc;

	rc = nox_backend_touch(r->d->backend, r->id, &err);
	if (rc < 0)
		return api_fail(r, rc, &err);
	memset(&info, 0, sizeof(info));
	rc = nox_backend_info(r->d->backend, r->id, &info, &err);
	if (rc < 0)
		return api_fail(r, rc, &err);
	o = json_object_new_object();
	if (!o)
		return server_reply_json(r, MHD_HTTP_OK, NULL);
	json_object_object_add(o, "expiresAt",
			       json_object_new_string(info.expires_at));
	json = strdup(json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return server_reply_json(r, MHD_HTTP_OK, json);
}

int api_exec(struct noxd_req *r)
{
	const union MHD_ConnectionInfo *ci;
	struct nox_v1_exec_req req;
	struct nox_exec_result res;
	struct nox_cancel cancel;
	struct nox_err err;
	char rel[PATH_MAX];
	int rc;

	memset(&req, 0, sizeof(req));
	rc = nox_v1_exec_req_parse(r->body ? r->body : "", r->body_len, &req,
				   &err);
	if (rc < 0)
		return api_fail(r, rc, &err);
	if (req.req.workdir) {
		rc = nox_path_from_sandbox(req.req.workdir, rel, sizeof(rel),
					   &err);
		if (rc < 0) {
			nox_v1_exec_req_cleanup(&req);
			return server_reply_errno(r, EINVAL,
						  nox_err_str(&err, -rc));
		}
	}
	/* nox.cancel: the client closing its connection stops the command
	 * (nothing else reads this connection while the handler runs, and
	 * a client sends no next request before this answer); --v1-only
	 * keeps running it, as a plain v1 server does */
	ci = r->d->opts.v1_only
		 ? NULL
		 : MHD_get_connection_info(r->conn,
					   MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci) {
		cancel.fd = ci->connect_fd;
		cancel.events = POLLRDHUP;
		req.req.cancel = &cancel;
	}
	rc = nox_backend_exec(r->d->backend, r->id, &req.req, &res, &err);
	nox_v1_exec_req_cleanup(&req);
	if (rc == -EINTR && ci) {
		nox_log(NOX_LOG_INFO, "%s: exec: the client went away: %s",
			r->id, nox_err_str(&err, rc));
		return -1; /* no one to answer: drop the connection */
	}
	if (rc < 0)
		return api_fail(r, rc, &err);
	/* The extension members ("truncated", nox.bytes' base64): --v1-only
	 * sends plain v1 (the note ending stderr still tells a reader) */
	rc = server_reply_json(r, MHD_HTTP_OK,
			       r->d->opts.v1_only
				   ? nox_v1_exec_result_encode_plain(&res)
				   : nox_v1_exec_result_encode(&res));
	nox_exec_result_cleanup(&res);
	return rc;
}

/* Validates a sandbox-path query value; NULL stands for /workspace. */
static int api_sandbox_path(struct noxd_req *r, const char *key,
			    const char **out)
{
	char rel[PATH_MAX];
	struct nox_err err;
	const char *v = server_query(r, key);
	int rc;

	*out = v && *v ? v : NOX_WORKSPACE;
	rc = nox_path_from_sandbox(*out, rel, sizeof(rel), &err);
	if (rc < 0) {
		server_reply_errno(r, EINVAL, nox_err_str(&err, -rc));
		return rc;
	}
	return 0;
}

int api_upload_begin(struct noxd_req *r)
{
	struct nox_sandbox_info info;
	struct nox_err err;
	const char *dest;
	int rc;

	if (api_sandbox_path(r, "dest", &dest) < 0)
		return 0;
	/* Refuse an unknown sandbox before reading a possibly huge body. */
	rc = nox_backend_info(r->d->backend, r->id, &info, &err);
	if (rc < 0)
		return api_fail(r, rc, &err);
	r->fd = server_tmpfile(r->d);
	if (r->fd < 0) {
		rc = r->fd;
		r->fd = -1;
		return server_reply_errno(r, rc, "cannot create a temp file");
	}
	return 0;
}

int api_upload(struct noxd_req *r)
{
	struct nox_err err;
	const char *dest;
	int rc;

	if (api_sandbox_path(r, "dest", &dest) < 0)
		return 0;
	if (lseek(r->fd, 0, SEEK_SET) < 0)
		return server_reply_errno(r, errno, "cannot rewind the body");
	rc = nox_backend_upload(r->d->backend, r->id, dest, r->fd, &err);
	if (rc < 0)
		return api_fail(r, rc, &err);
	return server_reply_buf(r, MHD_HTTP_OK, "application/json", "{}", 2);
}

/*
 * A download in flight: the packer thread writes the archive into the
 * pipe, MHD's reader callback takes it out.  What the packer sent before
 * the reply was chosen is kept in head[]: an error found before any byte
 * (no such path, no such sandbox) still gets its own status, one found
 * later can only cut the stream (the client then sees a short chunked
 * body, never a complete-looking one).
 */
struct dl {
	struct noxd *d;
	enum noxd_ep ep;
	struct nox_backend *b;
	char id[NOX_ID_MAX + 1];
	char *src;
	int rfd, wfd;
	pthread_t th;
	bool joined;
	int rc;
	struct nox_err err;
	char head[16384];
	size_t nhead, ohead;
};

static void *dl_pack(void *arg)
{
	struct dl *x = arg;

	x->rc = nox_backend_download(x->b, x->id, x->src, x->wfd, &x->err);
	close(x->wfd);
	x->wfd = -1;
	return NULL;
}

static void dl_join(struct dl *x)
{
	if (!x->joined) {
		pthread_join(x->th, NULL);
		x->joined = true;
	}
}

static void dl_free(void *cls)
{
	struct dl *x = cls;

	/* a client gone midway: the packer's next write fails (EPIPE) */
	close(x->rfd);
	dl_join(x);
	free(x->src);
	free(x);
}

static ssize_t dl_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct dl *x = cls;
	ssize_t n;
	int e = 0;

	(void)pos;
	if (x->ohead < x->nhead) {
		n = (ssize_t)(x->nhead - x->ohead);
		if ((size_t)n > max)
			n = (ssize_t)max;
		memcpy(buf, x->head + x->ohead, (size_t)n);
		x->ohead += (size_t)n;
	} else {
		do
			n = read(x->rfd, buf, max);
		while (n < 0 && errno == EINTR);
		e = n < 0 ? errno : 0; /* before the join */
	}
	if (n > 0) {
		metrics_count_out(x->d, x->ep, (uint64_t)n);
		return n;
	}
	dl_join(x);
	if (n == 0 && x->rc == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	nox_log(NOX_LOG_ERR, "download from sandbox '%s' cut: %s", x->id,
		n < 0 ? strerror(e) : nox_err_str(&x->err, -x->rc));
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

int api_download(struct noxd_req *r)
{
	int p[2], rc;
	const char *src, *why = NULL;
	struct dl *x;
	ssize_t n;

	if (api_sandbox_path(r, "src", &src) < 0)
		return 0;
	x = calloc(1, sizeof(*x));
	if (!x)
		return server_reply_errno(r, ENOMEM, NULL);
	x->src = strdup(src);
	if (!x->src) {
		rc = ENOMEM;
		goto fail;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		rc = errno;
		why = "cannot create a pipe";
		goto fail;
	}
	x->d = r->d;
	x->ep = r->ep;
	x->b = r->d->backend;
	snprintf(x->id, sizeof(x->id), "%s", r->id);
	x->rfd = p[0];
	x->wfd = p[1];
	rc = pthread_create(&x->th, NULL, dl_pack, x);
	if (rc != 0) {
		close(p[0]);
		close(p[1]);
		why = "cannot start the packer";
		goto fail;
	}
	/* wait for the first bytes or the end: that chooses the status */
	do
		n = read(x->rfd, x->head, sizeof(x->head));
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		x->nhead = (size_t)n;
	} else {
		rc = n < 0 ? errno : 0;
		dl_join(x);
		if (x->rc < 0 || rc != 0) {
			rc = x->rc < 0 ? api_fail(r, x->rc, &x->err)
				       : server_reply_errno(r, rc, NULL);
			dl_free(x);
			return rc;
		}
	}
	return server_reply_stream(r, MHD_HTTP_OK, API_TAR_TYPE,
				   MHD_SIZE_UNKNOWN, dl_read, x, dl_free);
fail:
	free(x->src);
	free(x);
	return server_reply_errno(r, rc, why);
}

int api_delete(struct noxd_req *r)
{
	struct nox_err err;
	int rc = nox_backend_delete(r->d->backend, r->id, &err);

	if (rc < 0)
		return api_fail(r, rc, &err);
	return server_reply_buf(r, MHD_HTTP_NO_CONTENT, NULL, "", 0);
}
