/*
 * api_fs.c - the noxd extensions (docs/protocol.md): discovery,
 * nox.sandboxes 1 (list, info) and nox.fs 1 (file-level operations on a
 * sandbox workspace).
 *
 * Every path is workspace-relative and checked by libnox before use (the
 * local backend also confines every access to the workspace).  Names that
 * are not valid UTF-8 travel base64-encoded as "name64"/"path64"/
 * "target64", both ways.  The JSON shapes are libnox's fsw.c, which the
 * client parses with too.  File reads stream from the backend in 64 KiB
 * blocks; writes go straight to the file as the body arrives (server.c).
 *
 * nox.files 1 (fs/files) answers many small files as one tar; nox.ops 1
 * (fs/ops) runs many fs/op bodies in one request.
 *
 * Limits: fs/tree stops with EFBIG beyond FS_TREE_MAX entries; a range
 * request takes a single "bytes=" range (anything else gets the whole
 * file, as RFC 9110 allows).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "fsw_i.h"
#include "noxd.h"

#define FS_TREE_MAX   1000000
#define FS_TREE_DEPTH 256

/* ---- helpers ---------------------------------------------------------- */

/* "dir/name", or name when dir is the root. */
static int fs_join(char *out, size_t outsz, const char *dir, const char *name)
{
	int n;

	if (!*dir || strcmp(dir, ".") == 0)
		n = snprintf(out, outsz, "%s", name);
	else
		n = snprintf(out, outsz, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= outsz ? -ENAMETOOLONG : 0;
}

/* Reads the target of symlink path into buf; NULL on failure. */
static const char *fs_target(struct noxd_req *r, const char *path, char *buf,
			     size_t size)
{
	struct nox_err err;

	if (nox_backend_readlink(r->d->backend, r->id, path, buf, size, &err) <
	    0)
		return NULL;
	return buf;
}

static int fs_fail(struct noxd_req *r, int rc, const struct nox_err *err)
{
	return server_reply_errno(r, rc, nox_err_str(err, rc < 0 ? -rc : rc));
}

/* The "path" query value: required unless def is given. */
static const char *fs_query_path(struct noxd_req *r, const char *def)
{
	const char *p = server_query(r, "path");

	if (!p)
		p = def;
	if (!p)
		server_reply_errno(r, EINVAL, "missing 'path'");
	return p;
}

/* ---- discovery and nox.sandboxes -------------------------------------- */

int api_extensions(struct noxd_req *r)
{
	struct json_object *o = json_object_new_object();
	struct json_object *e = json_object_new_object();

	if (!o || !e) {
		json_object_put(o);
		json_object_put(e);
		return server_reply_json(r, MHD_HTTP_OK, NULL);
	}
	if (nox_backend_has(r->d->backend, NOX_OP_STAT)) {
		json_object_object_add(e, "nox.fs", json_object_new_int(1));
		/* fs/ops runs fs/op's calls one after another */
		json_object_object_add(e, "nox.ops", json_object_new_int(1));
	}
	if (nox_backend_has(r->d->backend, NOX_OP_LIST_SANDBOXES))
		json_object_object_add(e, "nox.sandboxes",
				       json_object_new_int(1));
	if (nox_backend_has(r->d->backend, NOX_OP_FILES))
		json_object_object_add(e, "nox.files", json_object_new_int(1));
	/* exec results are encoded here, whatever the backend */
	json_object_object_add(e, "nox.bytes", json_object_new_int(1));
	/* a client that goes away stops its command (api_exec) */
	json_object_object_add(e, "nox.cancel", json_object_new_int(1));
	json_object_object_add(o, "extensions", e);
	return server_reply_json(r, MHD_HTTP_OK, server_json_take(o));
}

struct fs_ids {
	char **ids;
	size_t n, cap;
};

static int fs_collect_id(const char *id, void *ud)
{
	struct fs_ids *l = ud;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **n = realloc(l->ids, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		l->ids = n;
		l->cap = cap;
	}
	l->ids[l->n] = strdup(id);
	if (!l->ids[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

int api_sandboxes(struct noxd_req *r)
{
	struct fs_ids l = {0};
	struct json_object *o = NULL, *arr;
	struct nox_err err;
	size_t i;
	int rc;

	rc = nox_backend_list_sandboxes(r->d->backend, fs_collect_id, &l, &err);
	if (rc < 0) {
		fs_fail(r, rc, &err);
		goto out;
	}
	o = json_object_new_object();
	arr = json_object_new_array();
	if (!o || !arr) {
		json_object_put(arr);
		server_reply_json(r, MHD_HTTP_OK, NULL);
		goto out;
	}
	json_object_object_add(o, "sandboxes", arr);
	for (i = 0; i < l.n; i++) {
		struct nox_sandbox_info info;
		struct json_object *s;

		/* Gone since the listing (deleted, reaped): leave it out. */
		if (nox_backend_info(r->d->backend, l.ids[i], &info, &err) < 0)
			continue;
		s = json_object_new_object();
		if (!s)
			continue;
		json_object_object_add(s, "id",
				       json_object_new_string(l.ids[i]));
		json_object_object_add(s, "podName",
				       json_object_new_string(info.pod_name));
		json_object_object_add(s, "expiresAt",
				       json_object_new_string(info.expires_at));
		json_object_array_add(arr, s);
	}
	server_reply_json(r, MHD_HTTP_OK, server_json_take(o));
	o = NULL;
out:
	json_object_put(o);
	for (i = 0; i < l.n; i++)
		free(l.ids[i]);
	free(l.ids);
	return 0;
}

int api_info(struct noxd_req *r)
{
	struct nox_sandbox_info info;
	struct json_object *o;
	struct nox_err err;
	int rc;

	rc = nox_backend_info(r->d->backend, r->id, &info, &err);
	if (rc < 0)
		return fs_fail(r, rc, &err);
	o = json_object_new_object();
	if (!o)
		return server_reply_json(r, MHD_HTTP_OK, NULL);
	json_object_object_add(o, "id", json_object_new_string(r->id));
	json_object_object_add(o, "podName",
			       json_object_new_string(info.pod_name));
	json_object_object_add(o, "expiresAt",
			       json_object_new_string(info.expires_at));
	json_object_object_add(o, "ttlSeconds",
			       json_object_new_int64(info.ttl_seconds));
	return server_reply_json(r, MHD_HTTP_OK, server_json_take(o));
}

/* ---- nox.fs: stat, list, tree, statfs --------------------------------- */

int api_fs_stat(struct noxd_req *r)
{
	char target[PATH_MAX];
	struct nox_err err;
	struct stat st;
	const char *path = fs_query_path(r, "");
	int rc;

	if (!path)
		return 0;
	rc = nox_backend_stat(r->d->backend, r->id, path, &st, &err);
	if (rc < 0)
		return fs_fail(r, rc, &err);
	return server_reply_json(
	    r, MHD_HTTP_OK,
	    server_json_take(fsw_stat_build(
		&st, S_ISLNK(st.st_mode)
			 ? fs_target(r, path, target, sizeof(target))
			 : NULL)));
}

/* One listed entry, kept for the tree walk. */
struct fs_ent {
	char *name;
};

struct fs_walk {
	struct noxd_req *r;
	struct json_object *arr;
	const char *dir;     /* workspace-relative directory listed */
	const char *rel;     /* its path relative to the tree root */
	const char *key;     /* "name" (list) or "path" (tree) */
	struct fs_ent *ents; /* tree: subdirectories to descend into */
	size_t n, cap;
	size_t *count; /* tree: entries so far */
};

static int fs_walk_cb(const char *name, const struct stat *st, void *ud)
{
	struct fs_walk *w = ud;
	char full[PATH_MAX], rel[PATH_MAX], target[PATH_MAX];
	const char *tgt = NULL;
	struct json_object *o;
	int rc;

	rc = fs_join(full, sizeof(full), w->dir, name);
	if (rc < 0)
		return rc;
	if (S_ISLNK(st->st_mode))
		tgt = fs_target(w->r, full, target, sizeof(target));
	o = fsw_stat_build(st, tgt);
	if (!o)
		return -ENOMEM;
	if (strcmp(w->key, "path") == 0) {
		rc = fs_join(rel, sizeof(rel), w->rel, name);
		if (rc < 0) {
			json_object_put(o);
			return rc;
		}
		fsw_add_name(o, "path", rel);
		if (++*w->count > FS_TREE_MAX) {
			json_object_put(o);
			return -EFBIG;
		}
	} else {
		fsw_add_name(o, "name", name);
	}
	json_object_array_add(w->arr, o);
	if (w->ents && S_ISDIR(st->st_mode)) {
		if (w->n == w->cap) {
			size_t cap = w->cap ? w->cap * 2 : 16;
			struct fs_ent *ne = realloc(w->ents, cap * sizeof(*ne));

			if (!ne)
				return -ENOMEM;
			w->ents = ne;
			w->cap = cap;
		}
		w->ents[w->n].name = strdup(name);
		if (!w->ents[w->n].name)
			return -ENOMEM;
		w->n++;
	}
	return 0;
}

int api_fs_list(struct noxd_req *r)
{
	struct json_object *arr;
	struct fs_walk w;
	struct nox_err err;
	const char *path = fs_query_path(r, "");
	int rc;

	if (!path)
		return 0;
	arr = json_object_new_array();
	if (!arr)
		return server_reply_json(r, MHD_HTTP_OK, NULL);
	memset(&w, 0, sizeof(w));
	w.r = r;
	w.arr = arr;
	w.dir = path;
	w.rel = "";
	w.key = "name";
	rc = nox_backend_list(r->d->backend, r->id, path, fs_walk_cb, &w, &err);
	if (rc < 0) {
		json_object_put(arr);
		if (!err.code)
			nox_err_set(&err, -rc, "listing '%s'", path);
		return fs_fail(r, rc, &err);
	}
	return server_reply_json(r, MHD_HTTP_OK,
				 server_json_take(fsw_entries_build(arr)));
}

/* Lists dir (relative path rel below the tree root) and descends. */
static int fs_tree_walk(struct noxd_req *r, struct json_object *arr,
			const char *dir, const char *rel, size_t *count,
			int depth, struct nox_err *err)
{
	struct fs_walk w;
	size_t i;
	int rc;

	if (depth > FS_TREE_DEPTH)
		return nox_err_set(err, ELOOP, "tree deeper than %d",
				   FS_TREE_DEPTH);
	memset(&w, 0, sizeof(w));
	w.r = r;
	w.arr = arr;
	w.dir = dir;
	w.rel = rel;
	w.key = "path";
	w.count = count;
	w.ents = malloc(16 * sizeof(*w.ents));
	if (!w.ents)
		return -ENOMEM;
	w.cap = 16;
	rc = nox_backend_list(r->d->backend, r->id, dir, fs_walk_cb, &w, err);
	if (rc < 0 && !err->code)
		nox_err_set(err, -rc, "listing '%s'", dir);
	for (i = 0; i < w.n; i++) {
		char cdir[PATH_MAX], crel[PATH_MAX];

		if (rc >= 0) {
			rc = fs_join(cdir, sizeof(cdir), dir, w.ents[i].name);
			if (rc >= 0)
				rc = fs_join(crel, sizeof(crel), rel,
					     w.ents[i].name);
			if (rc < 0)
				nox_err_set(err, -rc, "path too long");
			else
				rc = fs_tree_walk(r, arr, cdir, crel, count,
						  depth + 1, err);
		}
		free(w.ents[i].name);
	}
	free(w.ents);
	return rc < 0 ? rc : 0;
}

int api_fs_tree(struct noxd_req *r)
{
	struct json_object *arr, *o;
	struct statvfs sv;
	struct nox_err err;
	size_t count = 0;
	const char *path = fs_query_path(r, "");
	int rc;

	if (!path)
		return 0;
	if (server_query(r, "limit") || server_query(r, "after"))
		return api_fs_tree_page(r, path);
	arr = json_object_new_array();
	if (!arr)
		return server_reply_json(r, MHD_HTTP_OK, NULL);
	nox_err_clear(&err);
	rc = fs_tree_walk(r, arr, path, "", &count, 0, &err);
	if (rc < 0) {
		json_object_put(arr);
		return fs_fail(r, rc, &err);
	}
	o = fsw_entries_build(arr);
	/* the space figures ride along: a client's statfs after its listing
	 * costs no request (docs/protocol.md) */
	if (o && nox_backend_statfs(r->d->backend, r->id, &sv, NULL) == 0) {
		struct json_object *so = fsw_statfs_build(&sv);

		if (so && json_object_object_add(o, "statfs", so) < 0)
			json_object_put(so);
	}
	return server_reply_json(r, MHD_HTTP_OK, server_json_take(o));
}

int api_fs_statfs(struct noxd_req *r)
{
	struct json_object *o;
	struct nox_err err;
	struct statvfs sv;
	int rc;

	rc = nox_backend_statfs(r->d->backend, r->id, &sv, &err);
	if (rc < 0)
		return fs_fail(r, rc, &err);
	o = fsw_statfs_build(&sv);
	return server_reply_json(r, MHD_HTTP_OK, server_json_take(o));
}

/* ---- nox.fs: file contents -------------------------------------------- */

struct fs_reader {
	struct nox_backend *b;
	char id[NOX_ID_MAX + 1];
	char *path;
	uint64_t off; /* first byte sent */
	uint64_t len; /* bytes to send */
};

static ssize_t fs_read_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct fs_reader *fr = cls;
	struct nox_err err;
	ssize_t n;

	if (pos >= fr->len)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (max > fr->len - pos)
		max = (size_t)(fr->len - pos);
	n = nox_backend_read(fr->b, fr->id, fr->path, (off_t)(fr->off + pos),
			     buf, max, &err);
	if (n <= 0) {
		/* The file shrank or vanished under us: cut the response. */
		if (n < 0)
			nox_log(NOX_LOG_WARN, "read %s/%s: %s", fr->id,
				fr->path, nox_err_str(&err, (int)-n));
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	return n;
}

static void fs_reader_free(void *cls)
{
	struct fs_reader *fr = cls;

	free(fr->path);
	free(fr);
}

/*
 * Parses "bytes=A-B", "bytes=A-" or "bytes=-N" against size.  Returns 1 with
 * [*first, *last] for a satisfiable range, 0 when the header is absent or
 * not a single byte range (serve everything), -1 when unsatisfiable.
 */
static int fs_parse_range(const char *h, uint64_t size, uint64_t *first,
			  uint64_t *last)
{
	unsigned long long a, b;
	char *end;

	if (!h || strncmp(h, "bytes=", 6) != 0)
		return 0;
	h += 6;
	if (strchr(h, ','))
		return 0;
	if (*h == '-') {
		if (h[1] < '0' || h[1] > '9')
			return 0;
		errno = 0;
		b = strtoull(h + 1, &end, 10);
		if (errno || *end)
			return 0;
		if (b == 0 || size == 0)
			return -1;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return 1;
	}
	if (*h < '0' || *h > '9')
		return 0;
	errno = 0;
	a = strtoull(h, &end, 10);
	if (errno || *end != '-')
		return 0;
	h = end + 1;
	if (!*h) {
		b = UINT64_MAX;
	} else {
		if (*h < '0' || *h > '9')
			return 0;
		b = strtoull(h, &end, 10);
		if (errno || *end || b < a)
			return 0;
	}
	if (a >= size)
		return -1;
	*first = a;
	*last = b >= size ? size - 1 : b;
	return 1;
}

int api_fs_read(struct noxd_req *r)
{
	struct fs_reader *fr;
	struct nox_err err;
	struct stat st;
	uint64_t first = 0, last = 0, size;
	char cr[128];
	const char *path = fs_query_path(r, NULL);
	int rc, range, status = MHD_HTTP_OK;

	if (!path)
		return 0;
	rc = nox_backend_stat(r->d->backend, r->id, path, &st, &err);
	if (rc < 0)
		return fs_fail(r, rc, &err);
	if (S_ISDIR(st.st_mode))
		return server_reply_errno(r, EISDIR, "is a directory");
	if (!S_ISREG(st.st_mode))
		return server_reply_errno(r, EINVAL, "not a regular file");
	size = (uint64_t)st.st_size;
	range = fs_parse_range(server_header(r, MHD_HTTP_HEADER_RANGE), size,
			       &first, &last);
	if (range < 0) {
		snprintf(cr, sizeof(cr), "bytes */%" PRIu64, size);
		server_reply_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
		return server_reply_error(r, 416, "range not satisfiable");
	}
	fr = calloc(1, sizeof(*fr));
	if (fr)
		fr->path = strdup(path);
	if (!fr || !fr->path) {
		free(fr);
		return server_reply_errno(r, ENOMEM, NULL);
	}
	fr->b = r->d->backend;
	snprintf(fr->id, sizeof(fr->id), "%s", r->id);
	if (range > 0) {
		status = MHD_HTTP_PARTIAL_CONTENT;
		fr->off = first;
		fr->len = last - first + 1;
		snprintf(cr, sizeof(cr),
			 "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last,
			 size);
		server_reply_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
	} else {
		fr->len = size;
	}
	server_reply_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	return server_reply_stream(r, status, "application/octet-stream",
				   fr->len, fs_read_cb, fr, fs_reader_free);
}

int api_fs_write_begin(struct noxd_req *r)
{
	struct nox_err err;
	struct stat st;
	const char *path = fs_query_path(r, NULL);
	const char *off = server_query(r, "offset");
	unsigned long long v = 0;
	char *end;
	int rc;

	if (!path)
		return 0;
	if (off) {
		errno = 0;
		if (*off < '0' || *off > '9')
			return server_reply_errno(r, EINVAL, "bad 'offset'");
		v = strtoull(off, &end, 10);
		if (errno || *end || v > (unsigned long long)INT64_MAX)
			return server_reply_errno(r, EINVAL, "bad 'offset'");
	}
	rc = nox_backend_stat(r->d->backend, r->id, path, &st, &err);
	if (rc < 0)
		return fs_fail(r, rc, &err);
	if (S_ISDIR(st.st_mode))
		return server_reply_errno(r, EISDIR, "is a directory");
	r->fs_path = strdup(path);
	if (!r->fs_path)
		return server_reply_errno(r, ENOMEM, NULL);
	r->fs_off = (off_t)v;
	return 0;
}

int api_fs_write(struct noxd_req *r)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return server_reply_json(r, MHD_HTTP_OK, NULL);
	json_object_object_add(o, "written",
			       json_object_new_int64((int64_t)r->bytes_in));
	return server_reply_json(r, MHD_HTTP_OK, server_json_take(o));
}

/* ---- nox.fs: fs/op ---------------------------------------------------- */

/* Runs op; for readlink fills target (size tsz).  0 or -errno with err. */
static int fs_op_run(struct noxd_req *r, const struct fsw_op *a, char *target,
		     size_t tsz, struct nox_err *err)
{
	struct nox_backend *b = r->d->backend;
	const char *id = r->id;
	struct timespec ts[2];
	ssize_t n;

	switch (a->code) {
	case FSW_OP_CREATE:
		return nox_backend_createfile(b, id, a->path, (mode_t)a->mode,
					      a->excl, err);
	case FSW_OP_TRUNCATE:
		return nox_backend_truncate(b, id, a->path, (off_t)a->size,
					    err);
	case FSW_OP_MKDIR:
		return nox_backend_mkdir(b, id, a->path, (mode_t)a->mode, err);
	case FSW_OP_UNLINK:
		return nox_backend_unlink(b, id, a->path, err);
	case FSW_OP_RMDIR:
		return nox_backend_rmdir(b, id, a->path, err);
	case FSW_OP_RENAME:
		return nox_backend_rename(b, id, a->from, a->to,
					  (unsigned)a->flags, err);
	case FSW_OP_CHMOD:
		return nox_backend_chmod(b, id, a->path, (mode_t)a->mode, err);
	case FSW_OP_UTIMENS:
		if (fsw_ns_to_ts(a->atime_ns, &ts[0]) < 0 ||
		    fsw_ns_to_ts(a->mtime_ns, &ts[1]) < 0)
			return nox_err_set(err, EINVAL, "bad time value");
		return nox_backend_utimens(b, id, a->path, ts, err);
	case FSW_OP_SYMLINK:
		return nox_backend_symlink(b, id, a->target, a->path, err);
	case FSW_OP_LINK:
		return nox_backend_link(b, id, a->from, a->to, err);
	case FSW_OP_READLINK:
		n = nox_backend_readlink(b, id, a->path, target, tsz, err);
		return n < 0 ? (int)n : 0;
	case FSW_OP_MKNOD:
		/* fsw_op_parse takes "fifo" or "socket" only: the wire has
		 * no way to ask for a device node */
		return nox_backend_mknod(b, id, a->path,
					 a->fmt | (mode_t)a->mode, err);
	}
	return nox_err_set(err, EINVAL, "unknown op");
}

int api_fs_op(struct noxd_req *r)
{
	struct fsw_op a;
	struct nox_err err;
	char target[PATH_MAX];
	int rc;

	nox_err_clear(&err);
	target[0] = '\0';
	rc = fsw_op_parse(r->body, r->body_len, &a, &err);
	if (rc < 0)
		return fs_fail(r, rc, &err);
	rc = fs_op_run(r, &a, target, sizeof(target), &err);
	if (rc < 0)
		fs_fail(r, rc, &err);
	else
		server_reply_json(
		    r, MHD_HTTP_OK,
		    server_json_take(a.code == FSW_OP_READLINK
					 ? fsw_readlink_build(target)
					 : json_object_new_object()));
	fsw_op_cleanup(&a);
	return 0;
}

/* ---- nox.ops: fs/ops -------------------------------------------------- */

/*
 * POST fs/ops {"ops": [op, ...]}: each op as fs/op runs it, in order, all
 * of them (one failing does not stop the next); 200 {"results": [...]},
 * {} or {"errno", "error"} per op.  A malformed op fails the request
 * before any runs.
 */
int api_fs_ops(struct noxd_req *r)
{
	struct json_object *o;
	struct fsw_op *ops;
	struct nox_err err, *errs;
	const char **msg;
	char target[PATH_MAX];
	size_t i, n;
	int *rc, e;

	nox_err_clear(&err);
	e = fsw_ops_parse(r->body, r->body_len, &ops, &n, &err);
	if (e == 0) /* an unknown sandbox is the request's 404, not each op's */
		e = nox_backend_info(r->d->backend, r->id, NULL, &err);
	if (e < 0) {
		fsw_ops_free(ops, n);
		return fs_fail(r, e, &err);
	}
	rc = calloc(n, sizeof(*rc));
	msg = calloc(n, sizeof(*msg));
	errs = calloc(n, sizeof(*errs));
	if (!rc || !msg || !errs) {
		free(rc);
		free(msg);
		free(errs);
		fsw_ops_free(ops, n);
		return server_reply_errno(r, ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		nox_err_clear(&errs[i]);
		rc[i] = fs_op_run(r, &ops[i], target, sizeof(target), &errs[i]);
		msg[i] = rc[i] < 0 ? nox_err_str(&errs[i], rc[i]) : NULL;
	}
	o = fsw_results_build(rc, msg, n);
	if (o)
		server_reply_json(r, MHD_HTTP_OK, server_json_take(o));
	else
		server_reply_errno(r, ENOMEM, "out of memory");
	free(rc);
	free(msg);
	free(errs);
	fsw_ops_free(ops, n);
	return 0;
}

/* ---- nox.files: fs/files ---------------------------------------------- */

/*
 * POST fs/files {"files": [{"path": P}, ...]}: a gzip tar of those paths
 * that are regular files, under their workspace-relative names (the
 * others are left out); the archive is built in a temp file first, as a
 * v1 download is.
 */
int api_fs_files(struct noxd_req *r)
{
	struct nox_err err;
	struct stat st;
	char **paths;
	size_t n;
	int fd, rc;

	nox_err_clear(&err);
	rc = fsw_files_parse(r->body, r->body_len, &paths, &n, &err);
	if (rc < 0)
		return fs_fail(r, rc, &err);
	fd = server_tmpfile(r->d);
	if (fd < 0) {
		fsw_files_free(paths, n);
		return server_reply_errno(r, fd, "cannot create a temp file");
	}
	rc = nox_backend_download_files(
	    r->d->backend, r->id, (const char *const *)paths, n, fd, &err);
	fsw_files_free(paths, n);
	if (rc < 0) {
		close(fd);
		return fs_fail(r, rc, &err);
	}
	if (fstat(fd, &st) < 0) {
		rc = errno;
		close(fd);
		return server_reply_errno(r, rc, "cannot stat the archive");
	}
	return server_reply_fd(r, MHD_HTTP_OK, "application/x-tar", fd,
			       (uint64_t)st.st_size);
}
