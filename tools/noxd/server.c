/*
 * server.c - noxd's HTTP layer: libmicrohttpd set-up, routing, bearer
 * token check, request bodies, replies, errno mapping and the access log.
 *
 * MHD runs one thread per connection, so a handler may block (exec,
 * large uploads) without stalling other clients.  A request is routed on
 * the first access-handler call, before any body byte is read, and one
 * that will be refused (401, 404, 405, 400 bad ID, 413 by Content-Length,
 * 404 unknown sandbox for uploads) is refused then.  When its body is
 * already on the way (no "Expect: 100-continue") and small enough, the
 * reply is held until the body has been read and dropped, so the client
 * sees the reply instead of a connection reset.  Bodies are bounded: JSON
 * at NOXD_JSON_MAX, uploads and fs writes at --max-body; going over while
 * the body streams in (chunked) drains it and answers 413.
 *
 * Limits: HTTP/1.1 without TLS (bind loopback or put a proxy in front);
 * the decoded URL path is what is routed, so an encoded slash ("%2F", or
 * "%5C") in an ID segment is refused (400, an invalid ID) from the raw URI
 * before decoding would make it a path separator; an encoded NUL anywhere
 * in the URL is refused (400) rather than truncating a value.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "fdio_i.h"
#include "fsw_i.h"
#include "noxd.h"

/* ---- routes ------------------------------------------------------------- */

static const struct noxd_route srv_routes[] = {
    {NULL, "/healthz", "GET", EP_HEALTHZ, false, true, BODY_NONE, NULL,
     api_healthz},
    {NULL, "/metrics", "GET", EP_METRICS, false, false, BODY_NONE, NULL,
     api_metrics},
    {NULL, "/v1/extensions", "GET", EP_EXTENSIONS, true, false, BODY_NONE, NULL,
     api_extensions},
    {NULL, "/v1/sandboxes", "GET", EP_SANDBOXES, true, false, BODY_NONE, NULL,
     api_sandboxes},
    {"", NULL, "PUT", EP_CREATE, false, false, BODY_JSON, NULL, api_create},
    {"", NULL, "DELETE", EP_DELETE, false, false, BODY_NONE, NULL, api_delete},
    {"", NULL, "GET", EP_INFO, true, false, BODY_NONE, NULL, api_info},
    {"/touch", NULL, "POST", EP_TOUCH, false, false, BODY_NONE, NULL,
     api_touch},
    {"/exec", NULL, "POST", EP_EXEC, false, false, BODY_JSON, NULL, api_exec},
    {"/files/upload", NULL, "POST", EP_UPLOAD, false, false, BODY_FILE,
     api_upload_begin, api_upload},
    {"/files/download", NULL, "GET", EP_DOWNLOAD, false, false, BODY_NONE, NULL,
     api_download},
    {"/fs/stat", NULL, "GET", EP_FS_STAT, true, false, BODY_NONE, NULL,
     api_fs_stat},
    {"/fs/list", NULL, "GET", EP_FS_LIST, true, false, BODY_NONE, NULL,
     api_fs_list},
    {"/fs/tree", NULL, "GET", EP_FS_TREE, true, false, BODY_NONE, NULL,
     api_fs_tree},
    {"/fs/file", NULL, "GET", EP_FS_READ, true, false, BODY_NONE, NULL,
     api_fs_read},
    {"/fs/file", NULL, "PUT", EP_FS_WRITE, true, false, BODY_FSWRITE,
     api_fs_write_begin, api_fs_write},
    {"/fs/op", NULL, "POST", EP_FS_OP, true, false, BODY_JSON, NULL, api_fs_op},
    {"/fs/statfs", NULL, "GET", EP_FS_STATFS, true, false, BODY_NONE, NULL,
     api_fs_statfs},
    {"/fs/files", NULL, "POST", EP_FS_FILES, true, false, BODY_JSON, NULL,
     api_fs_files},
    {"/fs/ops", NULL, "POST", EP_FS_OPS, true, false, BODY_JSON, NULL,
     api_fs_ops},
};

#define SRV_NROUTES    (sizeof(srv_routes) / sizeof(srv_routes[0]))
#define SRV_SBX_PREFIX "/v1/sandboxes/"
/* Body bytes read and dropped after a failure before closing instead. */
#define SRV_DISCARD_MAX (64ULL * 1024 * 1024)

struct srv_match {
	const struct noxd_route *route; /* NULL: no method matched */
	bool path_found;		/* some route has this path */
	char allow[64];			/* methods of the path, for 405 */
	bool id_too_long;
	bool ext_hidden; /* matched an extension, --v1-only */
};

static bool srv_method_is(const char *want, const char *method)
{
	if (strcmp(want, method) == 0)
		return true;
	return strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

/* Matches url against the table; fills r->id for sandbox routes. */
static void srv_route(struct noxd_req *r, const char *url, const char *method,
		      struct srv_match *m)
{
	const char *suffix = NULL;
	size_t idlen = 0;
	size_t i;

	memset(m, 0, sizeof(*m));
	if (strncmp(url, SRV_SBX_PREFIX, strlen(SRV_SBX_PREFIX)) == 0) {
		const char *id = url + strlen(SRV_SBX_PREFIX);

		idlen = strcspn(id, "/");
		suffix = id + idlen;
		if (idlen > NOX_ID_MAX) {
			m->id_too_long = true;
		} else {
			memcpy(r->id, id, idlen);
			r->id[idlen] = '\0';
		}
	}
	for (i = 0; i < SRV_NROUTES; i++) {
		const struct noxd_route *rt = &srv_routes[i];
		size_t n;

		if (rt->suffix ? !suffix || strcmp(rt->suffix, suffix) != 0
			       : strcmp(rt->path, url) != 0)
			continue;
		if (rt->ext && r->d->opts.v1_only) {
			/* --v1-only: as if the endpoint did not exist */
			if (srv_method_is(rt->method, method))
				m->ext_hidden = true;
			continue;
		}
		m->path_found = true;
		n = strlen(m->allow);
		snprintf(m->allow + n, sizeof(m->allow) - n, "%s%s",
			 n ? ", " : "", rt->method);
		if (!m->route && srv_method_is(rt->method, method))
			m->route = rt;
	}
}

/* ---- auth --------------------------------------------------------------- */

/*
 * Compares the bearer token in constant time with respect to its content:
 * the loop always runs over the whole expected token.
 */
static bool srv_token_ok(const char *want, const char *hdr)
{
	volatile unsigned char acc = 0;
	size_t wl = strlen(want);
	size_t gl, i;

	if (!hdr || strncasecmp(hdr, "Bearer ", 7) != 0)
		return false;
	hdr += 7;
	while (*hdr == ' ')
		hdr++;
	gl = strlen(hdr);
	acc = (unsigned char)(wl != gl);
	for (i = 0; i < wl; i++)
		acc |= (unsigned char)want[i] ^
		       (unsigned char)(i < gl ? hdr[i] : 0);
	return acc == 0;
}

/* ---- errno mapping ------------------------------------------------------ */

int server_errno_status(int code)
{
	switch (code < 0 ? -code : code) {
	case EINVAL:
	case ENAMETOOLONG:
	case EISDIR:
	case ENOTDIR:
	case ELOOP:
	case EXDEV:
	case ERANGE:
	case EBADMSG:
	case EILSEQ:
	case E2BIG:
	case EOVERFLOW:
	case EMLINK:
	case ESPIPE:
	case EPROTO:
		return MHD_HTTP_BAD_REQUEST;
	case EACCES:
	case EPERM:
	case EROFS:
		return MHD_HTTP_FORBIDDEN;
	case ENOENT:
		return MHD_HTTP_NOT_FOUND;
	case EEXIST:
	case ENOTEMPTY:
	case EBUSY:
	case ETXTBSY:
		return MHD_HTTP_CONFLICT;
	case EFBIG:
	case EMSGSIZE:
		return 413;
	case EAGAIN:
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	case ENOSYS:
	case EOPNOTSUPP:
		return MHD_HTTP_NOT_IMPLEMENTED;
	case ENOSPC:
	case EDQUOT:
		return 507;
	default:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

const char *server_errno_name(int code)
{
	const char *name = fsw_errno_name(code);

	return name ? name : "EIO";
}

/* ---- text helpers ------------------------------------------------------- */

/* Copies s with invalid UTF-8 and control bytes replaced by '?'. */
static char *srv_clean_text(const char *s)
{
	size_t len = strlen(s);
	char *out = malloc(len + 1);
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = (char)(c < 0x20 || c == 0x7f ? '?' : c);
	}
	out[len] = '\0';
	if (!fsw_utf8_valid(out, len)) {
		for (i = 0; i < len; i++)
			if ((unsigned char)out[i] >= 0x80)
				out[i] = '?';
	}
	return out;
}

/* ---- replies ------------------------------------------------------------ */

void server_reply_header(struct noxd_req *r, const char *name,
			 const char *value)
{
	if (r->nhdr >= 4)
		return;
	r->hdr_name[r->nhdr] = name;
	snprintf(r->hdr_value[r->nhdr], sizeof(r->hdr_value[0]), "%s", value);
	r->nhdr++;
}

/* Queues resp (destroyed here) and records the reply. */
static int srv_queue(struct noxd_req *r, int status, const char *ctype,
		     struct MHD_Response *resp, uint64_t len)
{
	enum MHD_Result ok;
	int i;

	if (!resp) {
		nox_log(NOX_LOG_ERR,
			"cannot create a response (out of memory)");
		return -1;
	}
	if (ctype)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					ctype);
	for (i = 0; i < r->nhdr; i++)
		MHD_add_response_header(resp, r->hdr_name[i], r->hdr_value[i]);
	r->nhdr = 0;
	if (len == MHD_SIZE_UNKNOWN)
		len = 0; /* a chunked body counts its own bytes */
	r->status = status;
	r->bytes_out = len;
	metrics_count_reply(r->d, r->ep, status, len);
	if (r->in_begin && r->drain_ok) {
		r->pending = resp;
		return 0;
	}
	ok = MHD_queue_response(r->conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ok == MHD_YES ? 0 : -1;
}

int server_reply_buf(struct noxd_req *r, int status, const char *ctype,
		     const void *buf, size_t len)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(len, (void *)buf,
					       MHD_RESPMEM_MUST_COPY);
	return srv_queue(r, status, ctype, resp, len);
}

int server_reply_json(struct noxd_req *r, int status, char *json)
{
	struct MHD_Response *resp;
	size_t len;

	if (!json)
		return server_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
					  "out of memory");
	len = strlen(json);
	resp =
	    MHD_create_response_from_buffer(len, json, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		free(json);
	return srv_queue(r, status, "application/json", resp, len);
}

static int srv_reply_err(struct noxd_req *r, int status, const char *msg,
			 const char *ename)
{
	static const char oom[] = "{\"error\":\"out of memory\"}";
	struct json_object *o = json_object_new_object();
	char *clean = srv_clean_text(msg ? msg : "error");
	char *json = NULL;

	if (o && clean) {
		json_object_object_add(o, "error",
				       json_object_new_string(clean));
		if (ename)
			json_object_object_add(o, "errno",
					       json_object_new_string(ename));
		json = strdup(json_object_to_json_string_ext(o, FSW_JSON_OUT));
	}
	json_object_put(o);
	free(clean);
	if (r->d->opts.debug)
		nox_log(NOX_LOG_DEBUG, "%s %s: %d %s", r->method, r->path,
			status, msg ? msg : "");
	if (!json)
		return server_reply_buf(r, status, "application/json", oom,
					sizeof(oom) - 1);
	return server_reply_json(r, status, json);
}

int server_reply_errno(struct noxd_req *r, int code, const char *msg)
{
	if (code < 0)
		code = -code;
	return srv_reply_err(r, server_errno_status(code),
			     msg ? msg : strerror(code),
			     server_errno_name(code));
}

int server_reply_error(struct noxd_req *r, int status, const char *msg)
{
	return srv_reply_err(r, status, msg, NULL);
}

int server_reply_fd(struct noxd_req *r, int status, const char *ctype, int fd,
		    uint64_t size)
{
	struct MHD_Response *resp = MHD_create_response_from_fd(size, fd);

	if (!resp)
		close(fd);
	return srv_queue(r, status, ctype, resp, size);
}

const char *server_query(struct noxd_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *server_header(struct noxd_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

int server_tmpfile(struct noxd *d)
{
	char path[4096];
	int fd;

	fd = open(d->opts.base_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -errno;
	/* A file system without O_TMPFILE: named, then unlinked at once. */
	snprintf(path, sizeof(path), "%s/.noxd-tmp-XXXXXX", d->opts.base_dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}

/* ---- request life cycle ------------------------------------------------- */

static void srv_req_free(struct noxd_req *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	if (r->pending)
		MHD_destroy_response(r->pending);
	free(r->body);
	free(r->fs_path);
	free(r->path);
	free(r);
}

static struct noxd_req *srv_req_new(struct noxd *d, struct MHD_Connection *c,
				    const char *url, const char *method)
{
	struct noxd_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->d = d;
	r->conn = c;
	r->fd = -1;
	r->ep = EP_OTHER;
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	snprintf(r->method, sizeof(r->method), "%s", method);
	r->path = srv_clean_text(url);
	if (!r->path) {
		free(r);
		return NULL;
	}
	return r;
}

static bool srv_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

static uint64_t srv_body_limit(const struct noxd_req *r)
{
	if (r->body_kind == BODY_FILE || r->body_kind == BODY_FSWRITE)
		return r->d->opts.max_body;
	return NOXD_JSON_MAX;
}

/*
 * An early refusal (401, 404, 413...) of a request with a body is held back
 * until the body has been read and dropped, when the client sends the body
 * without waiting for "100 Continue" and it is small enough to drain:
 * otherwise closing on unread data resets the connection and the client
 * may never see the reply.
 */
static void srv_set_drain(struct noxd_req *r)
{
	const char *cl = server_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = server_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	const char *ex = server_header(r, MHD_HTTP_HEADER_EXPECT);
	uint64_t len = 0;

	r->in_begin = true;
	if (ex && strcasecmp(ex, "100-continue") == 0)
		return;
	if (cl) {
		if (!srv_parse_u64(cl, &len) || len == 0 ||
		    len > SRV_DISCARD_MAX)
			return;
	} else if (!te || !strstr(te, "chunked")) {
		return;
	}
	r->drain_ok = true;
}

/* Routes, authenticates and pre-checks; may queue the reply. */
static void srv_begin(struct noxd_req *r, const char *url, const char *method)
{
	struct noxd *d = r->d;
	struct srv_match m;
	struct nox_err err;
	const char *cl;
	uint64_t len;
	int rc;

	srv_route(r, url, method, &m);
	srv_set_drain(r);
	if (m.route)
		r->ep = m.route->ep;
	metrics_count_request(d, r->ep);

	if (d->opts.token && !(m.route && m.route->open) &&
	    !srv_token_ok(d->opts.token,
			  server_header(r, MHD_HTTP_HEADER_AUTHORIZATION))) {
		server_reply_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
				    "Bearer");
		server_reply_error(r, MHD_HTTP_UNAUTHORIZED,
				   "missing or wrong bearer token");
		return;
	}
	if (!m.route) {
		if (m.path_found && !m.ext_hidden) {
			server_reply_header(r, MHD_HTTP_HEADER_ALLOW, m.allow);
			server_reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED,
					   "method not allowed");
		} else {
			server_reply_error(r, MHD_HTTP_NOT_FOUND,
					   "no such endpoint");
		}
		return;
	}
	if (m.route->suffix) {
		if (m.id_too_long) {
			server_reply_errno(r, EINVAL, "session id too long");
			return;
		}
		rc = nox_id_validate(r->id, &err);
		if (rc < 0) {
			server_reply_errno(r, rc, nox_err_str(&err, -rc));
			return;
		}
	}
	r->route = m.route;
	r->body_kind = m.route->body;
	cl = server_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && srv_parse_u64(cl, &len) && len > srv_body_limit(r)) {
		server_reply_errno(r, EFBIG, "request body too large");
		return;
	}
	if (m.route->begin)
		m.route->begin(r);
}

/* Records the first failure while the body arrives; answered at its end. */
static void srv_body_fail(struct noxd_req *r, int code, const char *msg)
{
	if (r->body_err)
		return;
	r->body_err = code < 0 ? code : -code;
	snprintf(r->body_msg, sizeof(r->body_msg), "%s",
		 msg ? msg : strerror(-r->body_err));
}

/*
 * One chunk of body.  After a failure the rest is read and dropped, so
 * that every client (also one that does not wait for "100 Continue") gets
 * the error reply instead of a reset; past SRV_DISCARD_MAX the connection
 * is closed instead.  Returns false to close it.
 */
static bool srv_body_chunk(struct noxd_req *r, const char *data, size_t n)
{
	struct nox_err err;
	int rc;

	metrics_count_in(r->d, r->ep, n);
	r->bytes_in += n;
	if (!r->body_err && r->bytes_in > srv_body_limit(r))
		srv_body_fail(r, EFBIG, "request body too large");
	if (r->body_err) {
		r->discarded += n;
		return r->discarded <= SRV_DISCARD_MAX;
	}
	switch (r->body_kind) {
	case BODY_NONE:
		break;
	case BODY_JSON:
		if (r->body_len + n + 1 > r->body_cap) {
			size_t cap = r->body_cap ? r->body_cap : 4096;
			char *nb;

			while (cap < r->body_len + n + 1)
				cap *= 2;
			nb = realloc(r->body, cap);
			if (!nb) {
				srv_body_fail(r, ENOMEM, NULL);
				break;
			}
			r->body = nb;
			r->body_cap = cap;
		}
		memcpy(r->body + r->body_len, data, n);
		r->body_len += n;
		r->body[r->body_len] = '\0';
		break;
	case BODY_FILE:
		rc = fdio_write_all(r->fd, data, n);
		if (rc < 0)
			srv_body_fail(r, rc, "cannot spool the request body");
		break;
	case BODY_FSWRITE:
		while (n) {
			ssize_t w =
			    nox_backend_write(r->d->backend, r->id, r->fs_path,
					      r->fs_off, data, n, &err);

			if (w <= 0) {
				rc = w < 0 ? (int)w : -EIO;
				srv_body_fail(r, rc, nox_err_str(&err, -rc));
				break;
			}
			r->fs_off += w;
			data += w;
			n -= (size_t)w;
		}
		break;
	}
	return true;
}

/*
 * MHD decodes the URL in place, so an encoded NUL ("%00") would silently cut
 * an ID or path short ("a%00b" -> "a").  The raw URI is seen here first: a
 * request holding one gets this marker as its context, and a 400.  (A
 * static marker, not an allocation: nothing to free if MHD drops the
 * request before the access handler runs.)
 */
static char srv_nul_marker;
static char srv_badid_marker;

/*
 * true when the raw (still encoded) uri is a sandbox route whose ID
 * segment holds an encoded slash or backslash: decoded, it would route
 * elsewhere (404) instead of being refused as an invalid ID.
 */
static bool srv_uri_bad_id(const char *uri)
{
	size_t n = strlen(SRV_SBX_PREFIX), len, i;

	if (strncmp(uri, SRV_SBX_PREFIX, n) != 0)
		return false;
	uri += n;
	len = strcspn(uri, "/?#");
	for (i = 0; i + 2 < len; i++)
		if (uri[i] == '%' &&
		    (strncasecmp(uri + i + 1, "2f", 2) == 0 ||
		     strncasecmp(uri + i + 1, "5c", 2) == 0))
			return true;
	return false;
}

static void *srv_uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
	(void)cls;
	(void)c;
	if (!uri)
		return NULL;
	if (strstr(uri, "%00"))
		return &srv_nul_marker;
	return srv_uri_bad_id(uri) ? &srv_badid_marker : NULL;
}

static enum MHD_Result srv_access(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct noxd_req *r = *con_cls;

	(void)version;
	if (!r || r == (void *)&srv_nul_marker ||
	    r == (void *)&srv_badid_marker) {
		const char *bad = NULL;

		if (r == (void *)&srv_nul_marker)
			bad = "NUL byte in the URL";
		else if (r)
			bad = "invalid session id: encoded slash";

		r = srv_req_new(cls, c, url, method);
		if (!r)
			return MHD_NO;
		*con_cls = r;
		if (bad) {
			metrics_count_request(r->d, r->ep);
			srv_set_drain(r);
			server_reply_errno(r, EINVAL, bad);
		} else {
			srv_begin(r, url, method);
		}
		r->in_begin = false;
		return MHD_YES;
	}
	if (*upload_data_size) {
		bool keep;

		if (r->status) {
			/* A held reply: drop the body, within bounds. */
			metrics_count_in(r->d, r->ep, *upload_data_size);
			r->bytes_in += *upload_data_size;
			r->discarded += *upload_data_size;
			keep = r->discarded <= SRV_DISCARD_MAX;
		} else {
			keep =
			    srv_body_chunk(r, upload_data, *upload_data_size);
		}
		*upload_data_size = 0;
		return keep ? MHD_YES : MHD_NO;
	}
	if (r->pending) {
		enum MHD_Result ok =
		    MHD_queue_response(c, (unsigned)r->status, r->pending);

		MHD_destroy_response(r->pending);
		r->pending = NULL;
		return ok;
	}
	if (r->status)
		return MHD_YES;
	if (r->body_err)
		return server_reply_errno(r, r->body_err, r->body_msg) < 0
			   ? MHD_NO
			   : MHD_YES;
	if (r->route->handler(r) < 0)
		return MHD_NO;
	if (!r->status)
		return server_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
					  "no reply") < 0
			   ? MHD_NO
			   : MHD_YES;
	return MHD_YES;
}

/* The access log line: METHOD PATH STATUS BYTES_IN BYTES_OUT DURATION_MS */
static void srv_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			  enum MHD_RequestTerminationCode toe)
{
	struct noxd_req *r = *con_cls;
	struct timespec now;
	long ms;

	(void)cls;
	(void)c;
	(void)toe;
	if (!r || r == (void *)&srv_nul_marker)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (now.tv_sec - r->start.tv_sec) * 1000L +
	     (now.tv_nsec - r->start.tv_nsec) / 1000000L;
	if (r->d->opts.daemonize) {
		nox_log(NOX_LOG_INFO, "%s %s %d %llu %llu %ld", r->method,
			r->path, r->status, (unsigned long long)r->bytes_in,
			(unsigned long long)r->bytes_out, ms);
	} else {
		char line[8192];
		int n = snprintf(line, sizeof(line), "%s %s %d %llu %llu %ld\n",
				 r->method, r->path, r->status,
				 (unsigned long long)r->bytes_in,
				 (unsigned long long)r->bytes_out, ms);

		if (n > 0 && (size_t)n < sizeof(line))
			(void)!write(STDERR_FILENO, line, (size_t)n);
	}
	srv_req_free(r);
	*con_cls = NULL;
}

__attribute__((format(printf, 2, 0))) static void
srv_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[1024];
	size_t n;

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	nox_log(NOX_LOG_WARN, "httpd: %s", buf);
}

/* ---- start / stop ------------------------------------------------------- */

/* Splits HOST:PORT, [V6]:PORT or PORT; host defaults to 127.0.0.1. */
static int srv_parse_listen(const char *spec, char *host, size_t hostsz,
			    char *port, size_t portsz)
{
	const char *colon;

	if (!spec || !*spec)
		spec = "127.0.0.1:8080";
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (!close || close[1] != ':' || !close[2])
			return -EINVAL;
		snprintf(host, hostsz, "%.*s", (int)(close - spec - 1),
			 spec + 1);
		snprintf(port, portsz, "%s", close + 2);
		return 0;
	}
	colon = strrchr(spec, ':');
	if (!colon) {
		snprintf(host, hostsz, "127.0.0.1");
		snprintf(port, portsz, "%s", spec);
		return 0;
	}
	if (colon == spec)
		snprintf(host, hostsz, "127.0.0.1");
	else
		snprintf(host, hostsz, "%.*s", (int)(colon - spec), spec);
	snprintf(port, portsz, "%s", colon + 1);
	return 0;
}

int server_start(struct noxd *d)
{
	char host[256], port[16];
	struct addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	unsigned flags;
	uint64_t pnum;
	int rc;

	if (srv_parse_listen(d->opts.listen, host, sizeof(host), port,
			     sizeof(port)) < 0 ||
	    !srv_parse_u64(port, &pnum) || pnum > 65535) {
		nox_log(NOX_LOG_ERR, "bad --listen '%s' (want HOST:PORT)",
			d->opts.listen);
		return -EINVAL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0 || !ai) {
		nox_log(NOX_LOG_ERR, "cannot resolve '%s': %s", host,
			gai_strerror(rc));
		return -EINVAL;
	}
	memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
	d->ipv6 = ai->ai_family == AF_INET6;
	getnameinfo(ai->ai_addr, ai->ai_addrlen, d->host, sizeof(d->host), NULL,
		    0, NI_NUMERICHOST);
	freeaddrinfo(ai);

	flags = MHD_USE_INTERNAL_POLLING_THREAD |
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
	if (MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES)
		flags |= MHD_USE_POLL;
	if (d->ipv6)
		flags |= MHD_USE_IPv6;
	d->mhd = MHD_start_daemon(
	    flags, (uint16_t)pnum, NULL, NULL, srv_access, d,
	    MHD_OPTION_EXTERNAL_LOGGER, srv_mhd_log, d,
	    MHD_OPTION_URI_LOG_CALLBACK, srv_uri_log, d, MHD_OPTION_SOCK_ADDR,
	    (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_TIMEOUT,
	    d->opts.conn_timeout, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)NOXD_CONN_LIMIT, MHD_OPTION_NOTIFY_COMPLETED,
	    srv_completed, d, MHD_OPTION_END);
	if (!d->mhd) {
		nox_log(NOX_LOG_ERR, "cannot listen on %s:%s", host, port);
		return -EADDRINUSE;
	}
	info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
	d->port = info ? info->port : (unsigned)pnum;
	return 0;
}

void server_stop(struct noxd *d)
{
	if (!d->mhd)
		return;
	MHD_stop_daemon(d->mhd);
	d->mhd = NULL;
}

int server_reply_stream(struct noxd_req *r, int status, const char *ctype,
			uint64_t size,
			ssize_t (*read_cb)(void *cls, uint64_t pos, char *buf,
					   size_t max),
			void *cls, void (*free_cb)(void *cls))
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_callback(size, 64 * 1024, read_cb, cls,
						 free_cb);
	if (!resp)
		free_cb(cls);
	return srv_queue(r, status, ctype, resp, size);
}

char *server_json_take(struct json_object *o)
{
	char *s = NULL;

	if (o)
		s = strdup(json_object_to_json_string_ext(o, FSW_JSON_OUT));
	json_object_put(o);
	return s;
}
