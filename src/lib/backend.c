/*
 * backend.c - the public nox_backend_* entry points.
 *
 * Validates session IDs and paths once, here, then dispatches to the
 * implementation's operation table.  Unsupported file-level operations
 * answer -ENOSYS.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <nox/backend.h>
#include <nox/id.h>

#include "backend_i.h"

void nox_backend_free(struct nox_backend *b)
{
	if (b)
		b->ops->free(b);
}

const char *nox_backend_name(const struct nox_backend *b)
{
	return b->ops->name;
}

static bool op_present(const struct nox_backend_ops *o, enum nox_op op)
{
	switch (op) {
	case NOX_OP_STAT:
		return o->stat != NULL;
	case NOX_OP_LIST:
		return o->list != NULL;
	case NOX_OP_READ:
		return o->read != NULL;
	case NOX_OP_WRITE:
		return o->write != NULL;
	case NOX_OP_CREATE:
		return o->createfile != NULL;
	case NOX_OP_TRUNCATE:
		return o->truncate != NULL;
	case NOX_OP_MKDIR:
		return o->mkdir != NULL;
	case NOX_OP_UNLINK:
		return o->unlink != NULL;
	case NOX_OP_RMDIR:
		return o->rmdir != NULL;
	case NOX_OP_RENAME:
		return o->rename != NULL;
	case NOX_OP_CHMOD:
		return o->chmod != NULL;
	case NOX_OP_UTIMENS:
		return o->utimens != NULL;
	case NOX_OP_SYMLINK:
		return o->symlink != NULL;
	case NOX_OP_READLINK:
		return o->readlink != NULL;
	case NOX_OP_LINK:
		return o->link != NULL;
	case NOX_OP_STATFS:
		return o->statfs != NULL;
	case NOX_OP_WORKSPACE_FD:
		return o->workspace_fd != NULL;
	case NOX_OP_LIST_SANDBOXES:
		return o->list_sandboxes != NULL;
	case NOX_OP_TREE:
		return o->tree != NULL;
	case NOX_OP_MKNOD:
		return o->mknod != NULL;
	case NOX_OP_FILES:
		return o->files != NULL;
	case NOX_OP_BATCH:
		return o->batch != NULL;
	case NOX_OP__COUNT:
		break;
	}
	return false;
}

bool nox_backend_has(const struct nox_backend *b, enum nox_op op)
{
	if (!op_present(b->ops, op))
		return false;
	return b->ops->has ? b->ops->has(b, op) : true;
}

void nox_exec_result_cleanup(struct nox_exec_result *r)
{
	if (!r)
		return;
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

bool nox_cancel_fired(const struct nox_cancel *c)
{
	struct pollfd p;

	if (!c || c->fd < 0)
		return false;
	p = (struct pollfd){.fd = c->fd, .events = c->events};
	return poll(&p, 1, 0) > 0;
}

/* The operation's name in an -ENOSYS message. */
static const char *const op_names[NOX_OP__COUNT] = {
    [NOX_OP_STAT] = "stat",
    [NOX_OP_LIST] = "list",
    [NOX_OP_READ] = "read",
    [NOX_OP_WRITE] = "write",
    [NOX_OP_CREATE] = "createfile",
    [NOX_OP_TRUNCATE] = "truncate",
    [NOX_OP_MKDIR] = "mkdir",
    [NOX_OP_UNLINK] = "unlink",
    [NOX_OP_RMDIR] = "rmdir",
    [NOX_OP_RENAME] = "rename",
    [NOX_OP_CHMOD] = "chmod",
    [NOX_OP_UTIMENS] = "utimens",
    [NOX_OP_SYMLINK] = "symlink",
    [NOX_OP_READLINK] = "readlink",
    [NOX_OP_LINK] = "link",
    [NOX_OP_STATFS] = "statfs",
    [NOX_OP_WORKSPACE_FD] = "workspace_fd",
    [NOX_OP_LIST_SANDBOXES] = "list-sandboxes",
    [NOX_OP_TREE] = "tree",
    [NOX_OP_MKNOD] = "mknod",
    [NOX_OP_FILES] = "files",
    [NOX_OP_BATCH] = "batch",
};

/* Passed as op for the v1 operations, which every backend has. */
#define OP_V1 NOX_OP__COUNT

/*
 * The prologue of every entry point: clears err, then refuses an
 * operation b lacks (-ENOSYS) and a bad session id (-EINVAL), so that
 * implementations see only supported calls on well-formed ids.
 */
static int check(struct nox_backend *b, enum nox_op op, struct nox_err *err)
{
	nox_err_clear(err);
	if (op != OP_V1 && !nox_backend_has(b, op))
		return nox_err_set(err, ENOSYS,
				   "the %s backend has no %s operation",
				   b->ops->name, op_names[op]);
	return 0;
}

static int check_id(struct nox_backend *b, enum nox_op op, const char *id,
		    struct nox_err *err)
{
	int r = check(b, op, err);

	return r < 0 ? r : nox_id_validate(id, err);
}

/* check_id, and path must be a well-formed workspace-relative path. */
static int check_path(struct nox_backend *b, enum nox_op op, const char *id,
		      const char *path, struct nox_err *err)
{
	int r = check_id(b, op, id, err);

	return r < 0 ? r : nox_path_validate(path, err);
}

int nox_backend_health(struct nox_backend *b, struct nox_err *err)
{
	nox_err_clear(err);
	return b->ops->health(b, err);
}

int nox_backend_create(struct nox_backend *b, const char *id,
		       const struct nox_create_opts *opts,
		       struct nox_sandbox_info *info, struct nox_err *err)
{
	struct nox_create_opts def = {0};
	struct nox_sandbox_info tmp;
	int r;

	r = check_id(b, OP_V1, id, err);
	if (r < 0)
		return r;
	if (opts && opts->ttl_seconds < 0)
		return nox_err_set(err, EINVAL, "negative ttl");
	return b->ops->create(b, id, opts ? opts : &def, info ? info : &tmp,
			      err);
}

int nox_backend_touch(struct nox_backend *b, const char *id,
		      struct nox_err *err)
{
	int r = check_id(b, OP_V1, id, err);

	return r < 0 ? r : b->ops->touch(b, id, err);
}

int nox_backend_exec(struct nox_backend *b, const char *id,
		     const struct nox_exec_req *req,
		     struct nox_exec_result *res, struct nox_err *err)
{
	int r;

	memset(res, 0, sizeof(*res));
	r = check_id(b, OP_V1, id, err);
	if (r < 0)
		return r;
	if (!req || !req->argv || !req->argv[0] || !req->argv[0][0])
		return nox_err_set(err, EINVAL, "empty command");
	if (req->timeout_seconds < 0)
		return nox_err_set(err, EINVAL, "negative timeout");
	r = b->ops->exec(b, id, req, res, err);
	if (r < 0)
		nox_exec_result_cleanup(res);
	return r;
}

int nox_backend_upload(struct nox_backend *b, const char *id, const char *dest,
		       int tar_fd, struct nox_err *err)
{
	int r = check_id(b, OP_V1, id, err);

	return r < 0 ? r : b->ops->upload(b, id, dest, tar_fd, 0, err);
}

int nox_backend_upload_wait(struct nox_backend *b, const char *id,
			    const char *dest, int tar_fd, long answer_ms,
			    struct nox_err *err)
{
	int r = check_id(b, OP_V1, id, err);

	return r < 0 ? r
		     : b->ops->upload(b, id, dest, tar_fd,
				      answer_ms > 0 ? answer_ms : 0, err);
}

int nox_backend_download(struct nox_backend *b, const char *id, const char *src,
			 int out_fd, struct nox_err *err)
{
	int r = check_id(b, OP_V1, id, err);

	return r < 0 ? r : b->ops->download(b, id, src, out_fd, err);
}

int nox_backend_download_stream(struct nox_backend *b, const char *id,
				const char *src, nox_data_cb cb, void *ud,
				struct nox_err *err)
{
	int r = check_id(b, OP_V1, id, err);

	if (r < 0)
		return r;
	if (!b->ops->download_stream)
		return nox_err_set(err, ENOSYS,
				   "streamed download: not supported");
	return b->ops->download_stream(b, id, src, cb, ud, err);
}

int nox_backend_delete(struct nox_backend *b, const char *id,
		       struct nox_err *err)
{
	int r = check_id(b, OP_V1, id, err);

	return r < 0 ? r : b->ops->del(b, id, err);
}

int nox_backend_info(struct nox_backend *b, const char *id,
		     struct nox_sandbox_info *info, struct nox_err *err)
{
	struct nox_sandbox_info tmp;
	int r = check_id(b, OP_V1, id, err);

	return r < 0 ? r : b->ops->info(b, id, info ? info : &tmp, err);
}

int nox_backend_list_sandboxes(struct nox_backend *b, nox_sandbox_cb cb,
			       void *ud, struct nox_err *err)
{
	int r = check(b, NOX_OP_LIST_SANDBOXES, err);

	return r < 0 ? r : b->ops->list_sandboxes(b, cb, ud, err);
}

int nox_backend_stat(struct nox_backend *b, const char *id, const char *path,
		     struct stat *st, struct nox_err *err)
{
	int r = check_path(b, NOX_OP_STAT, id, path, err);

	return r < 0 ? r : b->ops->stat(b, id, path, st, err);
}

int nox_backend_list(struct nox_backend *b, const char *id, const char *path,
		     nox_list_cb cb, void *ud, struct nox_err *err)
{
	int r = check_path(b, NOX_OP_LIST, id, path, err);

	return r < 0 ? r : b->ops->list(b, id, path, cb, ud, err);
}

ssize_t nox_backend_read(struct nox_backend *b, const char *id,
			 const char *path, off_t off, void *buf, size_t len,
			 struct nox_err *err)
{
	int r = check_path(b, NOX_OP_READ, id, path, err);

	return r < 0 ? r : b->ops->read(b, id, path, off, buf, len, err);
}

ssize_t nox_backend_write(struct nox_backend *b, const char *id,
			  const char *path, off_t off, const void *buf,
			  size_t len, struct nox_err *err)
{
	int r = check_path(b, NOX_OP_WRITE, id, path, err);

	return r < 0 ? r : b->ops->write(b, id, path, off, buf, len, err);
}

int nox_backend_read_stream(struct nox_backend *b, const char *id,
			    const char *path, nox_data_cb cb, void *ud,
			    struct nox_err *err)
{
	int r = check_path(b, NOX_OP_READ, id, path, err);

	if (r < 0)
		return r;
	if (!b->ops->read_stream)
		return nox_err_set(err, ENOSYS,
				   "streamed read: not supported");
	return b->ops->read_stream(b, id, path, cb, ud, err);
}

ssize_t nox_backend_write_fd(struct nox_backend *b, const char *id,
			     const char *path, off_t off, int in_fd,
			     off_t in_off, off_t len, struct nox_err *err)
{
	int r = check_path(b, NOX_OP_WRITE, id, path, err);

	if (r < 0)
		return r;
	if (!b->ops->write_fd)
		return nox_err_set(err, ENOSYS,
				   "streamed write: not supported");
	if (off < 0 || in_off < 0 || len < 0)
		return nox_err_set(err, EINVAL, "write: negative offset");
	return b->ops->write_fd(b, id, path, off, in_fd, in_off, len, err);
}

int nox_backend_createfile(struct nox_backend *b, const char *id,
			   const char *path, mode_t mode, bool excl,
			   struct nox_err *err)
{
	int r = check_path(b, NOX_OP_CREATE, id, path, err);

	return r < 0 ? r : b->ops->createfile(b, id, path, mode, excl, err);
}

int nox_backend_truncate(struct nox_backend *b, const char *id,
			 const char *path, off_t size, struct nox_err *err)
{
	int r = check_path(b, NOX_OP_TRUNCATE, id, path, err);

	return r < 0 ? r : b->ops->truncate(b, id, path, size, err);
}

int nox_backend_mkdir(struct nox_backend *b, const char *id, const char *path,
		      mode_t mode, struct nox_err *err)
{
	int r = check_path(b, NOX_OP_MKDIR, id, path, err);

	return r < 0 ? r : b->ops->mkdir(b, id, path, mode, err);
}

int nox_backend_unlink(struct nox_backend *b, const char *id, const char *path,
		       struct nox_err *err)
{
	int r = check_path(b, NOX_OP_UNLINK, id, path, err);

	return r < 0 ? r : b->ops->unlink(b, id, path, err);
}

int nox_backend_rmdir(struct nox_backend *b, const char *id, const char *path,
		      struct nox_err *err)
{
	int r = check_path(b, NOX_OP_RMDIR, id, path, err);

	return r < 0 ? r : b->ops->rmdir(b, id, path, err);
}

int nox_backend_rename(struct nox_backend *b, const char *id, const char *from,
		       const char *to, unsigned flags, struct nox_err *err)
{
	int r = check_path(b, NOX_OP_RENAME, id, from, err);

	if (r == 0)
		r = nox_path_validate(to, err);
	return r < 0 ? r : b->ops->rename(b, id, from, to, flags, err);
}

int nox_backend_chmod(struct nox_backend *b, const char *id, const char *path,
		      mode_t mode, struct nox_err *err)
{
	int r = check_path(b, NOX_OP_CHMOD, id, path, err);

	return r < 0 ? r : b->ops->chmod(b, id, path, mode, err);
}

int nox_backend_utimens(struct nox_backend *b, const char *id, const char *path,
			const struct timespec ts[2], struct nox_err *err)
{
	int r = check_path(b, NOX_OP_UTIMENS, id, path, err);

	return r < 0 ? r : b->ops->utimens(b, id, path, ts, err);
}

int nox_backend_mknod(struct nox_backend *b, const char *id, const char *path,
		      mode_t mode, struct nox_err *err)
{
	int r = check_path(b, NOX_OP_MKNOD, id, path, err);

	if (r == 0 && !S_ISFIFO(mode) && !S_ISSOCK(mode))
		r = nox_err_set(err, EPERM,
				"mknod '%s': only FIFOs and sockets", path);
	return r < 0 ? r : b->ops->mknod(b, id, path, mode, err);
}

int nox_backend_symlink(struct nox_backend *b, const char *id,
			const char *target, const char *path,
			struct nox_err *err)
{
	int r = check_path(b, NOX_OP_SYMLINK, id, path, err);

	return r < 0 ? r : b->ops->symlink(b, id, target, path, err);
}

ssize_t nox_backend_readlink(struct nox_backend *b, const char *id,
			     const char *path, char *buf, size_t size,
			     struct nox_err *err)
{
	int r = check_path(b, NOX_OP_READLINK, id, path, err);

	return r < 0 ? r : b->ops->readlink(b, id, path, buf, size, err);
}

int nox_backend_link(struct nox_backend *b, const char *id, const char *from,
		     const char *to, struct nox_err *err)
{
	int r = check_path(b, NOX_OP_LINK, id, from, err);

	if (r == 0)
		r = nox_path_validate(to, err);
	return r < 0 ? r : b->ops->link(b, id, from, to, err);
}

int nox_backend_statfs(struct nox_backend *b, const char *id,
		       struct statvfs *st, struct nox_err *err)
{
	int r = check_id(b, NOX_OP_STATFS, id, err);

	return r < 0 ? r : b->ops->statfs(b, id, st, err);
}

int nox_backend_workspace_fd(struct nox_backend *b, const char *id,
			     struct nox_err *err)
{
	int r = check_id(b, NOX_OP_WORKSPACE_FD, id, err);

	return r < 0 ? r : b->ops->workspace_fd(b, id, err);
}

int nox_backend_tree(struct nox_backend *b, const char *id, const char *path,
		     nox_tree_cb cb, void *ud, struct nox_err *err)
{
	int r = check_path(b, NOX_OP_TREE, id, path, err);

	return r < 0 ? r : b->ops->tree(b, id, path, cb, ud, err);
}

int nox_backend_download_files(struct nox_backend *b, const char *id,
			       const char *const *paths, size_t n, int out_fd,
			       struct nox_err *err)
{
	int r = check_id(b, NOX_OP_FILES, id, err);
	size_t i;

	if (r < 0)
		return r;
	if (n > 4096)
		return nox_err_set(err, EINVAL,
				   "download of %zu files: at "
				   "most 4096 in one call",
				   n);
	if (out_fd < 0)
		return nox_err_set(err, EBADF, "download: bad descriptor");
	for (i = 0; i < n; i++) {
		r = nox_path_validate(paths[i], err);
		if (r < 0)
			return r;
		if (!paths[i][0] || strcmp(paths[i], ".") == 0)
			return nox_err_set(err, EINVAL,
					   "download of the workspace root "
					   "as a file");
	}
	return b->ops->files(b, id, paths, n, out_fd, err);
}

/* One operation of a batch as its own call. */
static int batch_one(struct nox_backend *b, const char *id,
		     const struct nox_fsop *op, struct nox_err *err)
{
	switch (op->code) {
	case NOX_FSOP_UNLINK:
		return nox_backend_unlink(b, id, op->path, err);
	case NOX_FSOP_RMDIR:
		return nox_backend_rmdir(b, id, op->path, err);
	case NOX_FSOP_RENAME:
		return nox_backend_rename(b, id, op->path, op->path2, op->flags,
					  err);
	case NOX_FSOP_LINK:
		return nox_backend_link(b, id, op->path, op->path2, err);
	case NOX_FSOP_CHMOD:
		return nox_backend_chmod(b, id, op->path, op->mode, err);
	case NOX_FSOP_UTIMENS:
		return nox_backend_utimens(b, id, op->path, op->ts, err);
	case NOX_FSOP_TRUNCATE:
		return nox_backend_truncate(b, id, op->path, op->size, err);
	case NOX_FSOP_MKNOD:
		return nox_backend_mknod(b, id, op->path, op->mode, err);
	}
	return nox_err_set(err, EINVAL, "unknown operation %d",
			   (int)op->code);
}

int nox_backend_batch(struct nox_backend *b, const char *id,
		      const struct nox_fsop *ops, size_t n, int *results,
		      struct nox_err *err)
{
	int r;
	size_t i;

	nox_err_clear(err);
	if (n == 0 || n > NOX_BATCH_MAX)
		return nox_err_set(err, EINVAL,
				   "a batch of %zu operations: 1 to %d", n,
				   NOX_BATCH_MAX);
	for (i = 0; i < n; i++) {
		bool two = ops[i].code == NOX_FSOP_RENAME ||
			   ops[i].code == NOX_FSOP_LINK;

		if ((unsigned)ops[i].code > NOX_FSOP_MKNOD)
			return nox_err_set(err, EINVAL,
					   "unknown operation %d",
					   (int)ops[i].code);
		r = nox_path_validate(ops[i].path, err);
		if (r == 0 && two)
			r = nox_path_validate(ops[i].path2, err);
		if (r < 0)
			return r;
	}
	if (!b->ops->batch) {
		/* one by one: a failure is that operation's result */
		for (i = 0; i < n; i++)
			results[i] = batch_one(b, id, &ops[i], err);
		nox_err_clear(err);
		return 0;
	}
	r = check_id(b, NOX_OP_BATCH, id, err);
	return r < 0 ? r : b->ops->batch(b, id, ops, n, results, err);
}
