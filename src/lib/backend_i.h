/*
 * backend_i.h - what a backend implementation provides.
 *
 * nox_backend is a vtable pointer plus the implementation's own state (the
 * implementation embeds struct nox_backend as its first member).  A NULL
 * file-level operation means "not supported": backend.c answers -ENOSYS
 * and nox_backend_has() false.  backend.c validates session IDs and
 * workspace-relative paths before calling in, so implementations receive
 * only well-formed ones.
 */
#ifndef NOX_BACKEND_I_H
#define NOX_BACKEND_I_H

#include <nox/backend.h>

struct nox_backend_ops {
	const char *name;
	void (*free)(struct nox_backend *b);
	/* optional: dynamic capability test (http extension discovery);
	 * when NULL, an op is supported iff its pointer is non-NULL. */
	bool (*has)(const struct nox_backend *b, enum nox_op op);

	int (*health)(struct nox_backend *b, struct nox_err *err);
	int (*create)(struct nox_backend *b, const char *id,
		      const struct nox_create_opts *opts,
		      struct nox_sandbox_info *info, struct nox_err *err);
	int (*touch)(struct nox_backend *b, const char *id, struct nox_err *err);
	int (*exec)(struct nox_backend *b, const char *id,
		    const struct nox_exec_req *req, struct nox_exec_result *res,
		    struct nox_err *err);
	int (*upload)(struct nox_backend *b, const char *id, const char *dest,
		      int tar_fd, long answer_ms, struct nox_err *err);
	int (*download)(struct nox_backend *b, const char *id, const char *src,
			int out_fd, struct nox_err *err);
	/* optional (NULL: -ENOSYS) */
	int (*download_stream)(struct nox_backend *b, const char *id,
			       const char *src, nox_data_cb cb, void *ud,
			       struct nox_err *err);
	int (*del)(struct nox_backend *b, const char *id, struct nox_err *err);
	int (*info)(struct nox_backend *b, const char *id,
		    struct nox_sandbox_info *info, struct nox_err *err);
	int (*list_sandboxes)(struct nox_backend *b, nox_sandbox_cb cb, void *ud,
			      struct nox_err *err);

	int (*stat)(struct nox_backend *b, const char *id, const char *path,
		    struct stat *st, struct nox_err *err);
	int (*list)(struct nox_backend *b, const char *id, const char *path,
		    nox_list_cb cb, void *ud, struct nox_err *err);
	ssize_t (*read)(struct nox_backend *b, const char *id, const char *path,
			off_t off, void *buf, size_t len, struct nox_err *err);
	ssize_t (*write)(struct nox_backend *b, const char *id, const char *path,
			 off_t off, const void *buf, size_t len,
			 struct nox_err *err);
	/* optional: streamed reads and writes (NULL: -ENOSYS) */
	int (*read_stream)(struct nox_backend *b, const char *id,
			   const char *path, nox_data_cb cb, void *ud,
			   struct nox_err *err);
	ssize_t (*write_fd)(struct nox_backend *b, const char *id,
			    const char *path, off_t off, int in_fd,
			    off_t in_off, off_t len, struct nox_err *err);
	int (*createfile)(struct nox_backend *b, const char *id,
			  const char *path, mode_t mode, bool excl,
			  struct nox_err *err);
	int (*truncate)(struct nox_backend *b, const char *id, const char *path,
			off_t size, struct nox_err *err);
	int (*mkdir)(struct nox_backend *b, const char *id, const char *path,
		     mode_t mode, struct nox_err *err);
	int (*unlink)(struct nox_backend *b, const char *id, const char *path,
		      struct nox_err *err);
	int (*rmdir)(struct nox_backend *b, const char *id, const char *path,
		     struct nox_err *err);
	int (*rename)(struct nox_backend *b, const char *id, const char *from,
		      const char *to, unsigned flags, struct nox_err *err);
	int (*chmod)(struct nox_backend *b, const char *id, const char *path,
		     mode_t mode, struct nox_err *err);
	int (*utimens)(struct nox_backend *b, const char *id, const char *path,
		       const struct timespec ts[2], struct nox_err *err);
	int (*symlink)(struct nox_backend *b, const char *id, const char *target,
		       const char *path, struct nox_err *err);
	ssize_t (*readlink)(struct nox_backend *b, const char *id,
			    const char *path, char *buf, size_t size,
			    struct nox_err *err);
	int (*link)(struct nox_backend *b, const char *id, const char *from,
		    const char *to, struct nox_err *err);
	/* mode: S_IFIFO or S_IFSOCK (checked) and permission bits */
	int (*mknod)(struct nox_backend *b, const char *id, const char *path,
		     mode_t mode, struct nox_err *err);
	int (*statfs)(struct nox_backend *b, const char *id, struct statvfs *st,
		      struct nox_err *err);
	int (*workspace_fd)(struct nox_backend *b, const char *id,
			    struct nox_err *err);
	int (*tree)(struct nox_backend *b, const char *id, const char *path,
		    nox_tree_cb cb, void *ud, struct nox_err *err);
	int (*files)(struct nox_backend *b, const char *id,
		     const char *const *paths, size_t n, int out_fd,
		     struct nox_err *err);
	/* ops checked (paths, n); NULL: nox_backend_batch runs them one by
	 * one */
	int (*batch)(struct nox_backend *b, const char *id,
		     const struct nox_fsop *ops, size_t n, int *results,
		     struct nox_err *err);
};

struct nox_backend {
	const struct nox_backend_ops *ops;
};

#endif
