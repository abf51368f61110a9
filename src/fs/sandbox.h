/*
 * sandbox.h - per-sandbox state of the daemon and the hooks a storage
 * layer plugs into.
 *
 * Every sandbox is served passthrough-style from one root directory
 * descriptor.  With the local backend that descriptor is the real
 * workspace.  With the http backend (cache layer, later) it is a local
 * cache tree, and the layer keeps it in step with the server through
 * struct fs_sandbox_hooks, called by the core at fixed points:
 *
 *   attach       open the root directory (O_PATH|O_DIRECTORY) -> fd
 *   detach       the sandbox struct is going away (last reference)
 *   gone         the sandbox no longer exists (rmdir, deleted outside):
 *                before it leaves the registry; a new sandbox of that id
 *                may attach right after, so the layer moves its state
 *                aside now (called once or more: idempotent)
 *   fresh        this mount just made sandbox id, and none of that id
 *                is attached: state an earlier sandbox of the id left
 *                (a cache dir of an earlier mount) is set aside
 *   before_dir   before lookup/readdir in directory node dir (NULL: the
 *                root directory, before rmdir of the sandbox checks it
 *                is empty)
 *   before_open  before a workspace file is opened (download if needed)
 *   note_write   after data was written to an open file
 *   on_close     flush/fsync of an open file; its error goes to close()
 *   note_op      after a metadata operation succeeded on the root tree
 *   flush        exec barrier (barrier.h), .nox/sync and unmount:
 *                everything written through the mount must reach the
 *                sandbox
 *   before_read  before a read of [off, off + size) of an open workspace
 *                file (a command may have changed it since the open:
 *                refetch; a download in flight: wait for the range)
 *   after_exec   after a command ran, or failed to (mark listings
 *                stale); the barrier then invalidates the kernel's
 *                caches of the sandbox
 *   statfs       the space figures of sandbox sb (a NULL hook: the
 *                root tree's file system, fstatvfs); sb NULL: of the
 *                mount root
 *   attr         fixes the attributes of a regular file served from
 *                the root tree whose st_blocks is 0 (a placeholder's
 *                blocks are those of its real size)
 *   op_begin     before a metadata operation changes the root tree;
 *   op_end       after it (and its note_op, if it succeeded).  Between
 *                the two the layer may exclude its own tree walks, so
 *                the core calls no other hook there but note_op, and
 *                every op_begin has exactly one op_end, with the same
 *                struct fs_op (the caller's), which carries the
 *                operation's paths and the layer's state between them.
 *                The core takes its table lock there (to build the
 *                paths); it never calls a hook with that lock held
 *
 * A NULL hook does nothing (returns 0).  The local hooks only attach.
 *
 * Lifetime: a sandbox struct is reference counted: the registry holds
 * one while it is attached, every node of it holds one, and callers pin
 * it while they use it.  So it stays attached (its last result, its
 * cache) while the kernel forgets and relearns its nodes; the keepalive
 * thread touches attached sandboxes.  After rmdir, or when the backend
 * says it is gone, it is marked gone and leaves the registry (dropping
 * that reference); its nodes keep working on their descriptors until
 * the kernel forgets them.  At exit fs_sandbox_detach_all() drops the
 * registry's references.
 */
#ifndef NOXFS_SANDBOX_H
#define NOXFS_SANDBOX_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <nox/nox.h>

#include "fs.h"
#include "inode.h"
#include "result.h"

struct fs_sandbox;
struct stat;
struct statvfs;

/* A metadata operation for the note_op hook (names are single parts). */
enum fs_op_kind {
	FS_OP_MKDIR,
	FS_OP_CREATE,
	FS_OP_SYMLINK,
	FS_OP_LINK,
	FS_OP_UNLINK,
	FS_OP_RMDIR,
	FS_OP_RENAME,
	FS_OP_SETATTR
};

/*
 * One metadata operation, owned by the caller (a local of the FUSE
 * handler) from fs_sandbox_op_begin to fs_sandbox_op_end: what it does,
 * the workspace paths the core built for it, and the layer's state
 * between the two hooks.  The caller fills the first part; the rest
 * starts zeroed.
 */
struct fs_op {
	enum fs_op_kind kind;
	struct fs_node *dir; /* parent of name (SETATTR: NULL) */
	const char *name;
	struct fs_node *dir2; /* RENAME target dir, LINK target dir */
	const char *name2;
	struct fs_node *node; /* SETATTR, LINK source; else NULL */
	unsigned flags;	      /* RENAME flags, SETATTR to_set */

	/*
	 * Set by fs_op_note (ops.c) for hooks->by_path, after the change
	 * and under the layer's op lock, so they are the names the
	 * operation used: the workspace path of dir/name (SETATTR, LINK:
	 * of node) and of dir2/name2 (RENAME, LINK); path_err is 0 or the
	 * -errno of building them.
	 */
	int path_err;
	char path[PATH_MAX];
	char path2[PATH_MAX];

	/* the layer's own, from op_begin to op_end */
	void *layer; /* non-NULL while op_begin's lock is held */
	bool drain;  /* op_end sends the journal */
};
struct fs_sandbox_hooks {
	const char *name;
	/* operations are sent by workspace path: the core refuses names
	 * whose path would be PATH_MAX bytes or more (ENAMETOOLONG) */
	bool by_path;
	/* after a command, invalidate only the nodes whose descriptor's
	 * fstat shows a change (fs_table_collect_changed): for a root tree
	 * the command changes directly (local); a layer that updates its
	 * tree after the command (http) leaves it false: everything */
	bool inval_changed;
	int (*attach)(struct fs_sandbox *sb, struct nox_err *err);
	void (*detach)(struct fs_sandbox *sb);
	void (*gone)(struct fs_sandbox *sb);
	void (*fresh)(struct fs *fs, const char *id);
	int (*before_dir)(struct fs_sandbox *sb, struct fs_node *dir);
	int (*before_open)(struct fs_sandbox *sb, struct fs_node *n, int flags);
	void (*note_write)(struct fs_sandbox *sb, struct fs_node *n);
	int (*on_close)(struct fs_sandbox *sb, struct fs_node *n, int fd,
			bool fsync);
	void (*note_op)(struct fs_sandbox *sb, struct fs_op *op);
	int (*flush)(struct fs_sandbox *sb, struct nox_err *err);
	void (*after_exec)(struct fs_sandbox *sb);
	int (*before_read)(struct fs_sandbox *sb, struct fs_node *n, off_t off,
			   size_t size);
	int (*statfs)(struct fs *fs, struct fs_sandbox *sb, struct statvfs *sv);
	void (*attr)(struct fs_sandbox *sb, struct stat *st);
	void (*op_begin)(struct fs_sandbox *sb, struct fs_op *op);
	void (*op_end)(struct fs_sandbox *sb, struct fs_op *op);
	/* by_path: whether a FIFO or socket (fmt) can be sent; NULL: no */
	bool (*can_mknod)(struct fs_sandbox *sb, mode_t fmt);
};

struct fs_sandbox {
	struct fs *fs;			      /* immutable */
	char id[NOX_ID_MAX + 1];	      /* immutable */
	unsigned long serial;		      /* immutable, per attach */
	int root_fd;			      /* immutable, O_PATH dir */
	const struct fs_sandbox_hooks *hooks; /* immutable */
	void *cache;			      /* the hooks' own state */

	/* protected by fs->table.mutex */
	unsigned refs;
	bool gone;		 /* deleted or replaced */
	bool touch_warned;	 /* keepalive said so once */
	struct timespec checked; /* the backend last said it exists
				    (CLOCK_MONOTONIC) */
	struct fs_sandbox *next; /* registry link */

	pthread_mutex_t mutex;
	struct fs_result *last; /* protected by mutex */
};

/*
 * Finds attached sandbox id, or attaches it (the backend must already
 * know it: callers check with nox_backend_info or create it first).  A
 * registered sandbox whose root directory was deleted underneath is
 * replaced.  *out holds a reference (fs_sandbox_put).
 */
int fs_sandbox_attach(struct fs *fs, const char *id, struct fs_sandbox **out,
		      struct nox_err *err);
/*
 * Sandbox id was just created by this mount: unless one of that id is
 * attached, the layer sets aside what an earlier one left (hooks->fresh).
 */
void fs_sandbox_fresh(struct fs *fs, const char *id);
/* The attached sandbox id with a reference, or NULL. */
struct fs_sandbox *fs_sandbox_find(struct fs *fs, const char *id);
/* Drops a reference; may destroy sb.  Never call with table.mutex held. */
void fs_sandbox_put(struct fs_sandbox *sb);
/*
 * Marks sb gone and removes it from the registry (rmdir, deleted),
 * dropping the registry's reference: the caller must hold its own.
 */
void fs_sandbox_detach(struct fs_sandbox *sb);
/*
 * Marks sb gone without leaving the registry (a thread that must not
 * drop the last reference, the cache's flusher): no attach finds it
 * again, and the next attach of its id removes it from the registry.
 */
void fs_sandbox_gone(struct fs_sandbox *sb);
/* At exit: empties the registry, dropping its references. */
void fs_sandbox_detach_all(struct fs *fs);

/* With fs->table.mutex held. */
void fs_sandbox_ref_locked(struct fs_sandbox *sb);
/* true: that was the last reference, sb left the registry; the caller
 * calls fs_sandbox_destroy(sb) after releasing the mutex. */
bool fs_sandbox_unref_locked(struct fs_sandbox *sb);
/* Frees sb (hooks->detach, root fd, last result). */
void fs_sandbox_destroy(struct fs_sandbox *sb);

/*
 * Every attached sandbox, each with a reference, in a malloc'd array the
 * caller frees after fs_sandbox_put() on each.  0 or -ENOMEM.
 */
int fs_sandbox_list(struct fs *fs, struct fs_sandbox ***out, size_t *n);

/* The most recent finished result with a reference, or NULL. */
struct fs_result *fs_sandbox_last(struct fs_sandbox *sb);
/* Records r (a new reference is taken) as the sandbox's last result. */
void fs_sandbox_set_last(struct fs_sandbox *sb, struct fs_result *r);

/* ---- hook calls (NULL hooks are no-ops) ---- */
int fs_sandbox_flush(struct fs_sandbox *sb, struct nox_err *err);
int fs_sandbox_before_dir(struct fs_sandbox *sb, struct fs_node *dir);
int fs_sandbox_before_open(struct fs_sandbox *sb, struct fs_node *n, int flags);
int fs_sandbox_before_read(struct fs_sandbox *sb, struct fs_node *n, off_t off,
			   size_t size);
/* The space figures of sb: the hook's, else the root tree's (0/-errno). */
int fs_sandbox_statfs(struct fs_sandbox *sb, struct statvfs *sv);
/* st of a regular file of sb as the kernel should see it (the hook runs
 * only for a non-empty file with no blocks). */
void fs_sandbox_attr(struct fs_sandbox *sb, struct stat *st);
void fs_sandbox_note_write(struct fs_sandbox *sb, struct fs_node *n);
int fs_sandbox_on_close(struct fs_sandbox *sb, struct fs_node *n, int fd,
			bool fsync);
/*
 * A metadata operation on the root tree: op_begin before the change,
 * note_op after it succeeded (the core builds op's paths for a by_path
 * layer first), op_end after both.  op is the caller's, from begin to end.
 */
void fs_sandbox_op_begin(struct fs_sandbox *sb, struct fs_op *op);
void fs_sandbox_note_op(struct fs_sandbox *sb, struct fs_op *op);
void fs_sandbox_op_end(struct fs_sandbox *sb, struct fs_op *op);

/* The hooks for backends with a real workspace directory (local). */
extern const struct fs_sandbox_hooks fs_local_hooks;

#endif
