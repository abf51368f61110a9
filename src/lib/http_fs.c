/*
 * http_fs.c - the http backend's nox.fs calls (docs/protocol.md): stat,
 * list, tree, statfs, file reads and writes, and fs/op, on the transport
 * of http.c and the wire shapes of fsw.c.
 *
 * Listings are parsed and checked whole (fsw_entries_parse) before the
 * first callback, so a hostile server cannot make the caller act on part
 * of a bad answer; a paged fs/tree is checked page by page.  fs/op is never
 * retried: a replayed rename or unlink would report a failure for an operation
 * that happened.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http_i.h"

/* A GET of url (taken) returning JSON in *o (caller puts). */
static int fs_get_url(struct http_backend *h, char *url, json_object **o,
		      struct nox_err *err)
{
	struct http_call c;
	int r;

	*o = NULL;
	r = http_ext_need(h, false, err);
	if (r < 0) {
		free(url);
		return r;
	}
	http_call_init(&c, "GET", url);
	c.idempotent = true;
	r = http_call_run(h, &c, err);
	if (r == 0)
		r = http_call_json(&c, o, err);
	http_call_cleanup(&c);
	return r;
}

/* A GET below fs/ returning JSON in *o (caller puts). */
static int fs_get(struct http_backend *h, const char *id, const char *what,
		  const char *path, json_object **o, struct nox_err *err)
{
	return fs_get_url(
	    h, http_path(id, what, path ? "path" : NULL, path, NULL, NULL), o,
	    err);
}

int http_fs_stat(struct nox_backend *b, const char *id, const char *path,
		 struct stat *st, struct nox_err *err)
{
	json_object *o;
	char why[96];
	int r;

	r = fs_get(http_of(b), id, "/fs/stat", path, &o, err);
	if (r < 0)
		return r;
	if (fsw_stat_parse(o, st, why, sizeof(why)) < 0)
		r = nox_err_set(err, EPROTO,
				"stat '%s': malformed response: %s", path, why);
	json_object_put(o);
	return r;
}

/*
 * How long the space figures an fs/tree answer carried (noxd adds them)
 * stand in for GET fs/statfs of that sandbox: a statfs right after a
 * listing (find does one) costs no request.
 */
#define TREE_STATFS_MS 2000

static long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keeps the optional "statfs" of fs/tree answer o, for sandbox id. */
static void tree_statfs_keep(struct http_backend *h, const char *id,
			     json_object *o)
{
	json_object *so;
	struct statvfs sv;
	char why[96];

	if (!json_object_object_get_ex(o, "statfs", &so) ||
	    fsw_statfs_parse(so, &sv, why, sizeof(why)) < 0)
		return;
	pthread_mutex_lock(&h->sf_mx);
	snprintf(h->sf_id, sizeof(h->sf_id), "%s", id);
	h->sf = sv;
	h->sf_at = mono_ms();
	pthread_mutex_unlock(&h->sf_mx);
}

/* GET fs/list or fs/tree of path, every entry checked; free with fsw. */
static int fs_entries(struct nox_backend *b, const char *id, const char *path,
		      enum fsw_list_kind kind, struct fsw_ent **ents, size_t *n,
		      struct nox_err *err)
{
	const char *what = kind == FSW_TREE ? "tree" : "list";
	json_object *o;
	char why[160];
	int r;

	*ents = NULL;
	*n = 0;
	r = fs_get(http_of(b), id, kind == FSW_TREE ? "/fs/tree" : "/fs/list",
		   path, &o, err);
	if (r < 0)
		return r;
	r = fsw_entries_parse(o, kind, ents, n, why, sizeof(why));
	if (r < 0)
		r = nox_err_set(err, -r, "%s '%s': %s", what, path, why);
	else if (kind == FSW_TREE)
		tree_statfs_keep(http_of(b), id, o);
	json_object_put(o);
	return r;
}

int http_fs_list(struct nox_backend *b, const char *id, const char *path,
		 nox_list_cb cb, void *ud, struct nox_err *err)
{
	struct fsw_ent *ents;
	size_t i, n;
	int r;

	r = fs_entries(b, id, path, FSW_LIST, &ents, &n, err);
	for (i = 0; i < n && r == 0; i++)
		r = cb(ents[i].name, &ents[i].st, ud);
	fsw_entries_free(ents, n);
	return r;
}

/*
 * fs/tree in pages of TREE_PAGE entries (docs/protocol.md): each page is
 * checked whole before its callbacks, so the caller sees every entry once,
 * in walk order, and holds one page at a time.  A server that ignores the
 * paging answers the whole tree without "next": one page, as before.
 */
#define TREE_PAGE     4096
#define TREE_PAGE_MAX 50000000 /* entries of one paged walk, at most */

/* GET fs/tree?path=P&after=A&limit=TREE_PAGE; JSON in *o. */
static int tree_page_get(struct http_backend *h, const char *id,
			 const char *path, const char *after, json_object **o,
			 struct nox_err *err)
{
	char *url, *full;
	size_t n;

	*o = NULL;
	url = http_path(id, "/fs/tree", "path", path, after ? "after" : NULL,
			after);
	if (!url)
		return nox_err_set(err, ENOMEM, "out of memory");
	n = strlen(url) + 32;
	full = malloc(n);
	if (!full) {
		free(url);
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	snprintf(full, n, "%s&limit=%d", url, TREE_PAGE);
	free(url);
	return fs_get_url(h, full, o, err);
}

int http_fs_tree(struct nox_backend *b, const char *id, const char *path,
		 nox_tree_cb cb, void *ud, struct nox_err *err)
{
	struct http_backend *h = http_of(b);
	char *after = NULL, *next = NULL;
	struct fsw_ent *ents = NULL;
	size_t i, n = 0, total = 0;
	char why[160];
	json_object *o;
	int r;

	for (;;) {
		r = tree_page_get(h, id, path, after, &o, err);
		if (r < 0)
			break;
		r = fsw_entries_parse(o, FSW_TREE, &ents, &n, why, sizeof(why));
		if (r == 0 &&
		    fsw_get_name(o, "next", false, &next, why, sizeof(why)) < 0)
			r = -EPROTO;
		/* a whole answer (one page, or an older server's) needs no
		 * order; pages must come in walk order */
		if (r == 0 && (after || next))
			r = fsw_tree_page_check(ents, n, after, next, why,
						sizeof(why));
		total += n;
		if (r == 0 && total > TREE_PAGE_MAX) {
			snprintf(why, sizeof(why), "more than %d entries",
				 TREE_PAGE_MAX);
			r = -EFBIG;
		}
		if (r < 0) {
			r = nox_err_set(err, -r, "tree '%s': %s", path, why);
		} else {
			tree_statfs_keep(h, id, o);
		}
		json_object_put(o);
		for (i = 0; i < n && r == 0; i++)
			r = cb(ents[i].name, &ents[i].st, ents[i].target, ud);
		fsw_entries_free(ents, n);
		free(after);
		after = next;
		next = NULL;
		if (r != 0 || !after)
			break;
	}
	free(after);
	free(next);
	return r;
}

ssize_t http_fs_read(struct nox_backend *b, const char *id, const char *path,
		     off_t off, void *buf, size_t len, struct nox_err *err)
{
	struct http_backend *h = http_of(b);
	struct http_call c;
	char range[64];
	ssize_t r;

	if (off < 0)
		return nox_err_set(err, EINVAL, "read: negative offset");
	if (len == 0)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	r = http_ext_need(h, false, err);
	if (r < 0)
		return r;
	snprintf(range, sizeof(range), "bytes=%lld-%lld", (long long)off,
		 (long long)off + (long long)len - 1);
	http_call_init(&c, "GET",
		       http_path(id, "/fs/file", "path", path, NULL, NULL));
	c.sink = SINK_BUF;
	c.buf = buf;
	c.buf_cap = len;
	c.buf_off = off;
	c.range = range;
	c.idempotent = true;
	r = http_call_run(h, &c, err);
	if (r == 0)
		r = (ssize_t)c.buf_got;
	else if (c.status == 416 && !c.cb_errno) {
		nox_err_clear(err);
		r = 0; /* offset at or past the end */
	}
	http_call_cleanup(&c);
	return r;
}

/*
 * GET fs/file, the body handed to cb as it arrives (a bulk transfer:
 * bounded by progress).  Retried only before cb got a byte.
 */
int http_fs_read_stream(struct nox_backend *b, const char *id,
			const char *path, nox_data_cb cb, void *ud,
			struct nox_err *err)
{
	struct http_backend *h = http_of(b);
	struct http_call c;
	int r;

	r = http_ext_need(h, false, err);
	if (r < 0)
		return r;
	http_call_init(&c, "GET",
		       http_path(id, "/fs/file", "path", path, NULL, NULL));
	c.sink = SINK_CB;
	c.data_cb = cb;
	c.data_ud = ud;
	c.idempotent = true;
	r = http_call_run(h, &c, err);
	http_call_cleanup(&c);
	return r;
}

/* Runs PUT fs/file call c of len bytes: the bytes written, or -errno. */
static ssize_t fs_write_run(struct http_backend *h, struct http_call *c,
			    int64_t len, struct nox_err *err)
{
	json_object *o = NULL;
	char why[96];
	int64_t w = 0;
	ssize_t r;

	r = http_call_run(h, c, err);
	if (r == 0) {
		r = http_call_json(c, &o, err);
		if (r == 0 && fsw_get_int(o, "written", true, 0, len, &w, why,
					  sizeof(why)) < 0)
			r = http_call_bad(c, why, err);
		if (r == 0)
			r = (ssize_t)w;
	}
	json_object_put(o);
	return r;
}

ssize_t http_fs_write(struct nox_backend *b, const char *id, const char *path,
		      off_t off, const void *buf, size_t len,
		      struct nox_err *err)
{
	struct http_backend *h = http_of(b);
	struct http_call c;
	char offs[32];
	ssize_t r;

	if (off < 0)
		return nox_err_set(err, EINVAL, "write: negative offset");
	if (len > JSON_MAX)
		len = JSON_MAX; /* a short write; the caller goes on */
	r = http_ext_need(h, false, err);
	if (r < 0)
		return r;
	snprintf(offs, sizeof(offs), "%lld", (long long)off);
	http_call_init(&c, "PUT",
		       http_path(id, "/fs/file", "path", path, "offset", offs));
	c.body = len ? buf : "";
	c.body_len = len;
	c.ctype = "application/octet-stream";
	r = fs_write_run(h, &c, (int64_t)len, err);
	http_call_cleanup(&c);
	return r;
}

/*
 * PUT fs/file with len bytes of in_fd from in_off as the body, streamed
 * (a bulk transfer: bounded by progress, not total time).  Not retried,
 * as every PUT fs/file.
 */
ssize_t http_fs_write_fd(struct nox_backend *b, const char *id,
			 const char *path, off_t off, int in_fd, off_t in_off,
			 off_t len, struct nox_err *err)
{
	struct http_backend *h = http_of(b);
	struct http_call c;
	char offs[32];
	ssize_t r;

	if (in_fd < 0)
		return nox_err_set(err, EBADF, "write: bad descriptor");
	r = http_ext_need(h, false, err);
	if (r < 0)
		return r;
	if (lseek(in_fd, in_off, SEEK_SET) < 0)
		return nox_err_set(err, errno, "write: seek: %s",
				   strerror(errno));
	snprintf(offs, sizeof(offs), "%lld", (long long)off);
	http_call_init(&c, "PUT",
		       http_path(id, "/fs/file", "path", path, "offset", offs));
	c.in_fd = in_fd;
	c.in_len = len;
	c.ctype = "application/octet-stream";
	r = fs_write_run(h, &c, (int64_t)len, err);
	http_call_cleanup(&c);
	return r;
}

/*
 * POST fs/op with the body op encodes.  With resp set, the response object
 * goes there (caller puts).
 */
static int fs_op(struct http_backend *h, const char *id,
		 const struct fsw_op *op, json_object **resp,
		 struct nox_err *err)
{
	struct http_call c;
	char *s;
	int r;

	if (resp)
		*resp = NULL;
	r = http_ext_need(h, false, err);
	if (r < 0)
		return r;
	s = fsw_op_encode(op);
	if (!s)
		return nox_err_set(err, ENOMEM, "out of memory");
	http_call_init(&c, "POST",
		       http_path(id, "/fs/op", NULL, NULL, NULL, NULL));
	http_call_json_body(&c, s);
	r = http_call_run(h, &c, err);
	if (r == 0 && resp)
		r = http_call_json(&c, resp, err);
	free(s);
	http_call_cleanup(&c);
	return r;
}

/* An op on one path; the string is only read (fsw_op_encode). */
static struct fsw_op op_path(enum fsw_opcode code, const char *path)
{
	struct fsw_op op;

	memset(&op, 0, sizeof(op));
	op.code = code;
	op.path = (char *)(uintptr_t)path;
	return op;
}

/* An op from one path to another (rename, link). */
static struct fsw_op op_from_to(enum fsw_opcode code, const char *from,
				const char *to)
{
	struct fsw_op op = op_path(code, NULL);

	op.from = (char *)(uintptr_t)from;
	op.to = (char *)(uintptr_t)to;
	return op;
}

int http_fs_createfile(struct nox_backend *b, const char *id, const char *path,
		       mode_t mode, bool excl, struct nox_err *err)
{
	struct fsw_op op = op_path(FSW_OP_CREATE, path);

	op.mode = (int64_t)(mode & 07777);
	op.excl = excl;
	return fs_op(http_of(b), id, &op, NULL, err);
}

int http_fs_truncate(struct nox_backend *b, const char *id, const char *path,
		     off_t size, struct nox_err *err)
{
	struct fsw_op op = op_path(FSW_OP_TRUNCATE, path);

	if (size < 0)
		return nox_err_set(err, EINVAL, "truncate: negative size");
	op.size = (int64_t)size;
	return fs_op(http_of(b), id, &op, NULL, err);
}

int http_fs_mkdir(struct nox_backend *b, const char *id, const char *path,
		  mode_t mode, struct nox_err *err)
{
	struct fsw_op op = op_path(FSW_OP_MKDIR, path);

	op.mode = (int64_t)(mode & 07777);
	return fs_op(http_of(b), id, &op, NULL, err);
}

int http_fs_mknod(struct nox_backend *b, const char *id, const char *path,
		  mode_t mode, struct nox_err *err)
{
	struct fsw_op op = op_path(FSW_OP_MKNOD, path);

	op.mode = (int64_t)(mode & 07777);
	op.fmt = mode & S_IFMT;
	return fs_op(http_of(b), id, &op, NULL, err);
}

int http_fs_unlink(struct nox_backend *b, const char *id, const char *path,
		   struct nox_err *err)
{
	struct fsw_op op = op_path(FSW_OP_UNLINK, path);

	return fs_op(http_of(b), id, &op, NULL, err);
}

int http_fs_rmdir(struct nox_backend *b, const char *id, const char *path,
		  struct nox_err *err)
{
	struct fsw_op op = op_path(FSW_OP_RMDIR, path);

	return fs_op(http_of(b), id, &op, NULL, err);
}

int http_fs_rename(struct nox_backend *b, const char *id, const char *from,
		   const char *to, unsigned flags, struct nox_err *err)
{
	struct fsw_op op = op_from_to(FSW_OP_RENAME, from, to);

	if (flags > 2)
		return nox_err_set(err, EINVAL, "rename: unknown flags %#x",
				   flags);
	op.flags = (int64_t)flags;
	return fs_op(http_of(b), id, &op, NULL, err);
}

int http_fs_chmod(struct nox_backend *b, const char *id, const char *path,
		  mode_t mode, struct nox_err *err)
{
	struct fsw_op op = op_path(FSW_OP_CHMOD, path);

	op.mode = (int64_t)(mode & 07777);
	return fs_op(http_of(b), id, &op, NULL, err);
}

int http_fs_utimens(struct nox_backend *b, const char *id, const char *path,
		    const struct timespec ts[2], struct nox_err *err)
{
	struct fsw_op op = op_path(FSW_OP_UTIMENS, path);
	int i;

	for (i = 0; ts && i < 2; i++)
		if (ts[i].tv_nsec != UTIME_NOW && ts[i].tv_nsec != UTIME_OMIT &&
		    (ts[i].tv_nsec < 0 || ts[i].tv_nsec >= 1000000000L ||
		     ts[i].tv_sec < -9223372035LL ||
		     ts[i].tv_sec > 9223372035LL))
			return nox_err_set(err, EINVAL,
					   "utimens: time out of range");
	op.atime_ns = fsw_ns_from_ts(ts ? &ts[0] : NULL);
	op.mtime_ns = fsw_ns_from_ts(ts ? &ts[1] : NULL);
	return fs_op(http_of(b), id, &op, NULL, err);
}

int http_fs_symlink(struct nox_backend *b, const char *id, const char *target,
		    const char *path, struct nox_err *err)
{
	struct fsw_op op = op_path(FSW_OP_SYMLINK, path);

	if (!target || !target[0])
		return nox_err_set(err, ENOENT, "symlink: empty target");
	op.target = (char *)(uintptr_t)target;
	return fs_op(http_of(b), id, &op, NULL, err);
}

ssize_t http_fs_readlink(struct nox_backend *b, const char *id,
			 const char *path, char *buf, size_t size,
			 struct nox_err *err)
{
	struct fsw_op op = op_path(FSW_OP_READLINK, path);
	json_object *resp;
	char *target = NULL, why[96];
	size_t n;
	int r;

	if (size == 0)
		return nox_err_set(err, EINVAL, "readlink: empty buffer");
	r = fs_op(http_of(b), id, &op, &resp, err);
	if (r < 0)
		return r;
	if (fsw_get_name(resp, "target", true, &target, why, sizeof(why)) < 0) {
		json_object_put(resp);
		return nox_err_set(err, EPROTO,
				   "readlink '%s': malformed response: %s",
				   path, why);
	}
	n = strlen(target);
	if (n > size - 1)
		n = size - 1;
	memcpy(buf, target, n);
	buf[n] = '\0';
	free(target);
	json_object_put(resp);
	return (ssize_t)n;
}

int http_fs_link(struct nox_backend *b, const char *id, const char *from,
		 const char *to, struct nox_err *err)
{
	struct fsw_op op = op_from_to(FSW_OP_LINK, from, to);

	return fs_op(http_of(b), id, &op, NULL, err);
}

int http_fs_statfs(struct nox_backend *b, const char *id, struct statvfs *st,
		   struct nox_err *err)
{
	struct http_backend *h = http_of(b);
	json_object *o;
	char why[96];
	bool kept;
	int r;

	pthread_mutex_lock(&h->sf_mx);
	kept = h->sf_id[0] && strcmp(h->sf_id, id) == 0 &&
	       mono_ms() - h->sf_at <= TREE_STATFS_MS;
	if (kept)
		*st = h->sf;
	pthread_mutex_unlock(&h->sf_mx);
	if (kept)
		return 0;
	r = fs_get(h, id, "/fs/statfs", NULL, &o, err);
	if (r < 0)
		return r;
	if (fsw_statfs_parse(o, st, why, sizeof(why)) < 0)
		r = nox_err_set(err, EPROTO, "statfs: malformed response: %s",
				why);
	json_object_put(o);
	return r;
}

/* ---- nox.files: many small files in one answer ------------------------ */

int http_fs_files(struct nox_backend *b, const char *id,
		  const char *const *paths, size_t n, int out_fd,
		  struct nox_err *err)
{
	struct http_backend *h = http_of(b);
	struct http_call c;
	char *s;
	int r;

	if (http_ext_probe(h, err) < 0 || !http_ext_files(h))
		return nox_err_set(err, ENOSYS,
				   "the server does not offer nox.files 1");
	s = fsw_files_encode(paths, n);
	if (!s)
		return nox_err_set(err, ENOMEM, "out of memory");
	http_call_init(&c, "POST",
		       http_path(id, "/fs/files", NULL, NULL, NULL, NULL));
	http_call_json_body(&c, s);
	c.sink = SINK_FD;
	c.out_fd = out_fd;
	/* reads only: a retry asks for the same files again */
	c.idempotent = true;
	r = http_call_run(h, &c, err);
	free(s);
	http_call_cleanup(&c);
	return r;
}

/* ---- nox.ops: many metadata operations in one request ------------------ */

/* The fs/op form of batch operation o (strings only pointed at). */
static struct fsw_op op_of(const struct nox_fsop *o)
{
	struct fsw_op op;

	memset(&op, 0, sizeof(op));
	switch (o->code) {
	case NOX_FSOP_UNLINK:
		op = op_path(FSW_OP_UNLINK, o->path);
		break;
	case NOX_FSOP_RMDIR:
		op = op_path(FSW_OP_RMDIR, o->path);
		break;
	case NOX_FSOP_RENAME:
		op = op_from_to(FSW_OP_RENAME, o->path, o->path2);
		op.flags = (int64_t)o->flags;
		break;
	case NOX_FSOP_LINK:
		op = op_from_to(FSW_OP_LINK, o->path, o->path2);
		break;
	case NOX_FSOP_CHMOD:
		op = op_path(FSW_OP_CHMOD, o->path);
		op.mode = (int64_t)(o->mode & 07777);
		break;
	case NOX_FSOP_UTIMENS:
		op = op_path(FSW_OP_UTIMENS, o->path);
		op.atime_ns = fsw_ns_from_ts(&o->ts[0]);
		op.mtime_ns = fsw_ns_from_ts(&o->ts[1]);
		break;
	case NOX_FSOP_TRUNCATE:
		op = op_path(FSW_OP_TRUNCATE, o->path);
		op.size = (int64_t)o->size;
		break;
	case NOX_FSOP_MKNOD:
		op = op_path(FSW_OP_MKNOD, o->path);
		op.mode = (int64_t)(o->mode & 07777);
		op.fmt = o->mode & S_IFMT;
		break;
	}
	return op;
}

int http_fs_batch(struct nox_backend *b, const char *id,
		  const struct nox_fsop *ops, size_t n, int *results,
		  struct nox_err *err)
{
	struct http_backend *h = http_of(b);
	struct fsw_op *v;
	struct http_call c;
	char *s;
	size_t i;
	int r;

	if (http_ext_probe(h, err) < 0 || !http_ext_ops(h))
		return nox_err_set(err, ENOSYS,
				   "the server does not offer nox.ops 1");
	for (i = 0; i < n; i++) {
		if (ops[i].code == NOX_FSOP_MKNOD &&
		    !S_ISFIFO(ops[i].mode) && !S_ISSOCK(ops[i].mode))
			return nox_err_set(err, EPERM,
					   "mknod %s: only FIFOs and sockets",
					   ops[i].path);
	}
	v = calloc(n, sizeof(*v));
	if (!v)
		return nox_err_set(err, ENOMEM, "out of memory");
	for (i = 0; i < n; i++)
		v[i] = op_of(&ops[i]);
	s = fsw_ops_encode(v, n);
	free(v);
	if (!s)
		return nox_err_set(err, ENOMEM, "out of memory");
	http_call_init(&c, "POST",
		       http_path(id, "/fs/ops", NULL, NULL, NULL, NULL));
	http_call_json_body(&c, s);
	r = http_call_run(h, &c, err);
	if (r == 0)
		r = fsw_results_parse(c.mem, c.mem_len, results, n, err);
	free(s);
	http_call_cleanup(&c);
	return r;
}
