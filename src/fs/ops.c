/*
 * ops.c - the FUSE low-level operation table: thin handlers that find the
 * node, call one helper and reply once.
 *
 * Workspace operations work passthrough_ll-style on O_PATH descriptors:
 * every call is relative to a directory descriptor with one name
 * component and O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, and existing files are
 * reopened through /proc/self/fd, so nothing ever resolves a path inside
 * the workspace and a symlink planted by a command cannot lead outside.
 * Errors are the errno the system call gave.
 *
 * The mount root (without -o session=) lists the backend's sandboxes;
 * mkdir/rmdir there create/delete sandboxes.  .nox and its files are
 * virtual (ctl.c); .nox is found by lookup, never listed.  Creating calls run with the caller's fsuid/fsgid
 * (cred.c).
 *
 * Caching: entry and attribute timeouts come from the options (virtual
 * control files: attributes never cached); no negative entries; page
 * cache kept across opens only while a file's mtime and size are
 * unchanged; no writeback cache, so every write reaches the file before
 * the write() returns and the exec barrier needs no kernel flush.
 *
 * Node descriptors are a cache (inode.h): the pin_* wrappers before the
 * table pin the nodes a request names, so handlers read node->fd freely.
 *
 * Limits: mknod makes FIFOs and sockets (over http: FIFOs, and sockets
 * on a server with nox.fs; docs/cache.md) and device nodes only for a
 * caller with CAP_MKNOD on the local backend; only "user." extended
 * attributes pass through; flock and POSIX locks reach the workspace file
 * on the local backend only (lock.c; over http the kernel keeps them local
 * to this mount).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cred.h"
#include "fdio_i.h"
#include "ctl.h"
#include "fs.h"
#include "lock.h"
#include "sandbox.h"

#define NOXDIR_NAME   ".nox"
#define CAP_MKNOD_BIT 27 /* linux/capability.h, without libcap */

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct fs_node *req_node(fuse_req_t req, fuse_ino_t ino)
{
	return fs_node_get(&req_fs(req)->table, ino);
}

static bool is_real(const struct fs_node *n)
{
	return n->kind == FS_WS || n->kind == FS_SANDBOX;
}

static bool is_noxname(const struct fs_node *dir, const char *name)
{
	return dir->kind == FS_SANDBOX && strcmp(name, NOXDIR_NAME) == 0;
}

static void proc_path(int fd, char *buf, size_t size)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
}

double fs_entry_timeout(const struct fs *fs)
{
	return fs->opts.entry_timeout;
}

double fs_attr_timeout(const struct fs *fs)
{
	return fs->opts.attr_timeout;
}

/* ---- the layer's record of an operation ----------------------------- */

/* The workspace path of name in dir (name NULL: of dir itself). */
static int op_path(struct fs *fs, struct fs_node *dir, const char *name,
		   char *buf, size_t size)
{
	size_t dl;
	int r = fs_node_path(&fs->table, dir, buf, size);

	if (r < 0 || !name)
		return r;
	dl = strlen(buf);
	if (dl + (dl ? 1 : 0) + strlen(name) >= size)
		return -ENAMETOOLONG;
	if (dl)
		buf[dl++] = '/';
	memcpy(buf + dl, name, strlen(name) + 1);
	return 0;
}

/* What tree_find_ino looks for. */
struct ino_want {
	dev_t dev;
	ino_t ino;
	const char *avoid; /* a path not to answer (a link's new name) */
	unsigned maxdepth; /* 0: only the directory itself */
};

/*
 * Looks below directory dfd (whose path is buf[0..len)) for a name of
 * w's inode other than w->avoid, depth first, no symlink followed; 0
 * and its path in buf, or -ENOENT.
 */
static int tree_find_ino(int dfd, char *buf, size_t len, size_t size,
			 const struct ino_want *w, unsigned depth)
{
	struct dirent *d;
	struct stat st;
	DIR *dp;
	int fd, r = -ENOENT;

	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return -ENOENT;
	}
	while (r < 0 && (d = readdir(dp)) != NULL) {
		size_t nl = strlen(d->d_name);

		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		if (len + nl + 2 > size)
			continue;
		if (len)
			buf[len] = '/';
		memcpy(buf + len + (len ? 1 : 0), d->d_name, nl + 1);
		if (d->d_type == DT_DIR && depth < w->maxdepth) {
			int cfd = openat(dirfd(dp), d->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);

			if (cfd >= 0) {
				r = tree_find_ino(cfd, buf,
						  len + nl + (len ? 1 : 0),
						  size, w, depth + 1);
				close(cfd);
			}
		} else if (d->d_type != DT_DIR && d->d_ino == w->ino &&
			   fstatat(dirfd(dp), d->d_name, &st,
				   AT_SYMLINK_NOFOLLOW) == 0 &&
			   st.st_ino == w->ino && st.st_dev == w->dev &&
			   !(w->avoid && strcmp(buf, w->avoid) == 0)) {
			r = 0;
		}
		if (r < 0)
			buf[len] = '\0';
	}
	closedir(dp);
	return r;
}

/*
 * The workspace path of node n that names it now.  A node is tracked
 * under the name of its last lookup; with hard links that name may have
 * been unlinked (ln p q; rm q) or renamed over since, and an operation
 * sent by it would fail on the server.  Then another of its names is
 * found: in the same directory first (the usual case), else by a walk
 * of the sandbox's tree.  Called under the layer's op lock, so the tree
 * does not change meanwhile.
 */
static int op_node_path(struct fs_sandbox *sb, struct fs_node *n,
			const char *avoid, char *buf, size_t size)
{
	struct ino_want w = {.dev = n->dev, .ino = n->sino, .avoid = avoid};
	const char *base = "";
	struct stat st;
	char *slash;
	size_t dl;
	int r, dfd = -1;

	r = op_path(sb->fs, n, NULL, buf, size);
	if (n->kind != FS_WS || S_ISDIR(n->type) || (r < 0 && r != -ENOENT) ||
	    (r == 0 && !*buf))
		return r;
	/* -ENOENT: its chain of names is broken; only the walk can tell */
	if (r == 0)
		r = fdio_parent(sb->root_fd, buf, &dfd, &base);
	if (r == 0) {
		r = fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW);
		if (r == 0 && st.st_ino == n->sino && st.st_dev == n->dev &&
		    !(avoid && strcmp(buf, avoid) == 0)) {
			close(dfd);
			return 0;
		}
		/* the name went: another one beside it? */
		slash = strrchr(buf, '/');
		dl = slash ? (size_t)(slash - buf) : 0;
		buf[dl] = '\0';
		r = tree_find_ino(dfd, buf, dl, size, &w, 0);
		close(dfd);
		if (r == 0)
			return 0;
	}
	buf[0] = '\0';
	/* no name left (unlinked, still open): nothing to walk for */
	if (fstatat(n->fd, "", &st, AT_EMPTY_PATH) < 0 || st.st_nlink == 0)
		return -ENOENT;
	nox_log(NOX_LOG_DEBUG, "%s: a node's name went: walking the tree",
		sb->id);
	w.maxdepth = 256;
	r = tree_find_ino(sb->root_fd, buf, 0, size, &w, 0);
	if (r < 0)
		buf[0] = '\0';
	return r;
}

/*
 * fs_sandbox_note_op with op's paths, built once here by the core, which
 * has the nodes (the storage layer never walks the inode table): only
 * for a layer that sends by path, after the change and inside op_begin
 * .. op_end, so they are the names the operation used.
 */
void fs_op_note(struct fs_sandbox *sb, struct fs_op *op)
{
	struct fs *fs = sb->fs;
	int r;

	if (sb->hooks->by_path) {
		op->path[0] = op->path2[0] = '\0';
		r = 0;
		if (op->kind == FS_OP_RENAME || op->kind == FS_OP_LINK)
			r = op_path(fs, op->dir2, op->name2, op->path2,
				    sizeof(op->path2));
		/* a link's source: any name but the one just made */
		if (r == 0 && op->kind == FS_OP_LINK)
			r = op_node_path(sb, op->node, op->path2, op->path,
					 sizeof(op->path));
		else if (r == 0 && op->kind == FS_OP_SETATTR)
			r = op_node_path(sb, op->node, NULL, op->path,
					 sizeof(op->path));
		else if (r == 0)
			r = op_path(fs, op->dir, op->name, op->path,
				    sizeof(op->path));
		op->path_err = r;
	}
	fs_sandbox_note_op(sb, op);
}

/*
 * The end of a change of the tree (begun with fs_sandbox_op_begin): the
 * layer is told of it when it happened (done), then op_end.  Every
 * handler that changes names or attributes ends so.
 */
static void change_end(struct fs_sandbox *sb, struct fs_op *op, bool done)
{
	if (done)
		fs_op_note(sb, op);
	fs_sandbox_op_end(sb, op);
}

/* ---- attributes ----------------------------------------------------- */

static void virt_attr(struct fs *fs, struct fs_node *n, struct stat *st)
{
	struct fs_result *r;

	memset(st, 0, sizeof(*st));
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = 4096;
	st->st_atim = fs->start;
	st->st_mtim = fs->start;
	st->st_ctim = fs->start;
	switch (n->kind) {
	case FS_ROOT:
		st->st_ino = FUSE_ROOT_ID;
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		break;
	case FS_NOXDIR:
		st->st_ino = fs_virtual_ino(n->sb, FS_NOXDIR, 0);
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		break;
	default:
		st->st_ino = fs_virtual_ino(n->sb, FS_CTL, n->ctl);
		st->st_mode = S_IFREG | fs_ctl_mode(n->ctl);
		st->st_nlink = 1;
		/* the size of what a read would give now (cmp and tail
		 * look at st_size); info is computed only when read */
		if (n->ctl != FS_CTL_INFO && n->ctl != FS_CTL_SYNC) {
			r = fs_sandbox_last(n->sb);
			if (r) {
				st->st_mtim = r->when;
				st->st_ctim = r->when;
				st->st_size = (off_t)fs_ctl_size(n->ctl, r);
			}
			fs_result_unref(r);
		}
		break;
	}
}

static int node_stat(struct fs *fs, struct fs_node *n, struct stat *st)
{
	if (!is_real(n)) {
		virt_attr(fs, n, st);
		return 0;
	}
	if (fstatat(n->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	fs_sandbox_attr(n->sb, st);
	return 0;
}

static double node_attr_timeout(struct fs *fs, const struct fs_node *n)
{
	if (n->kind == FS_CTL)
		return 0.0;
	return fs_attr_timeout(fs);
}

/*
 * .nox/exec gets a new node at every lookup (and an entry timeout of 0,
 * so every open looks it up): the kernel serialises writes to one inode
 * for their whole duration, and distinct inodes let the commands of
 * several opens run at once.  Its st_ino stays the same.
 */
static bool fresh_node(enum fs_kind kind, enum fs_ctl ctl)
{
	return kind == FS_CTL && ctl == FS_CTL_EXEC;
}

static void fill_entry(struct fs *fs, struct fs_node *n, const struct stat *st,
		       struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	e->attr = *st;
	e->attr_timeout = node_attr_timeout(fs, n);
	e->entry_timeout =
	    fresh_node(n->kind, n->ctl) ? 0.0 : fs_entry_timeout(fs);
}

/* ---- lookups -------------------------------------------------------- */

/* Looks name up in the real directory dir: a node with one lookup. */
static int ws_lookup(struct fs *fs, struct fs_node *dir, const char *name,
		     struct fs_node **out, struct stat *st)
{
	struct fs_node *n;
	int fd, r;

	fd = openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	fs_sandbox_attr(dir->sb, st);
	n = fs_node_lookup_add(&fs->table, dir->sb, FS_WS, 0, fd, st, dir,
			       name);
	if (!n)
		return -ENOMEM;
	*out = n;
	return 0;
}

static int virt_lookup(struct fs *fs, struct fs_node *dir, enum fs_kind kind,
		       enum fs_ctl ctl, const char *name, struct fs_node **out,
		       struct stat *st)
{
	static atomic_ulong exec_serial;
	struct fs_node *n;
	struct stat key;

	memset(&key, 0, sizeof(key));
	key.st_dev = 1;
	key.st_ino = (ino_t)atomic_fetch_add(&exec_serial, 1);
	n = fs_node_lookup_add(&fs->table, dir->sb, kind, ctl, -1,
			       fresh_node(kind, ctl) ? &key : NULL, dir, name);
	if (!n)
		return -ENOMEM;
	virt_attr(fs, n, st);
	*out = n;
	return 0;
}

/* The SANDBOX node of attached sb under the mount root. */
static int sandbox_entry(struct fs *fs, struct fs_node *root,
			 struct fs_sandbox *sb, struct fs_node **out,
			 struct stat *st)
{
	struct fs_node *n;
	int fd, r;

	fd = fcntl(sb->root_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	n = fs_node_lookup_add(&fs->table, sb, FS_SANDBOX, 0, fd, st, root,
			       sb->id);
	if (!n)
		return -ENOMEM;
	*out = n;
	return 0;
}

static int root_lookup(struct fs *fs, struct fs_node *root, const char *name,
		       struct fs_node **out, struct stat *st)
{
	struct nox_sandbox_info info;
	struct fs_sandbox *sb;
	struct nox_err err;
	int r;

	if (nox_id_validate(name, NULL) < 0)
		return -ENOENT;
	sb = fs_sandbox_find(fs, name);
	if (sb) {
		/* confirmed within the entry timeout: no request (a kernel
		 * that dropped its dentries relearns them for free) */
		struct timespec now;
		double age, ttl = fs_entry_timeout(fs);

		clock_gettime(CLOCK_MONOTONIC, &now);
		fs_table_lock(&fs->table);
		age = (double)(now.tv_sec - sb->checked.tv_sec) +
		      (double)(now.tv_nsec - sb->checked.tv_nsec) / 1e9;
		fs_table_unlock(&fs->table);
		/* nor while the server does not answer (health.c) */
		if (age < (ttl > 1.0 ? ttl : 1.0) || fs_health_silent(fs)) {
			r = sandbox_entry(fs, root, sb, out, st);
			fs_sandbox_put(sb);
			return r;
		}
		fs_sandbox_put(sb);
	}
	nox_err_clear(&err);
	r = nox_backend_info(fs->be, name, &info, &err);
	if (r < 0)
		fs_health_failed(fs, r);
	else
		fs_health_answered(fs);
	if (r < 0 && r != -ENOENT && (sb = fs_sandbox_find(fs, name))) {
		/* server unreachable: an attached sandbox keeps being
		 * served from what this daemon has (the http cache) */
		nox_log(NOX_LOG_DEBUG,
			"%s: info: %s (serving the attached "
			"sandbox)",
			name, nox_err_str(&err, r));
		r = sandbox_entry(fs, root, sb, out, st);
		fs_sandbox_put(sb);
		return r;
	}
	if (r < 0) {
		if (r != -ENOENT)
			nox_log(NOX_LOG_WARN, "%s: info: %s", name,
				nox_err_str(&err, r));
		else if ((sb = fs_sandbox_find(fs, name))) {
			/* deleted outside the mount */
			fs_sandbox_detach(sb);
			fs_sandbox_put(sb);
		}
		return r;
	}
	nox_err_clear(&err);
	r = fs_sandbox_attach(fs, name, &sb, &err);
	if (r < 0) {
		nox_log(NOX_LOG_WARN, "%s: attach: %s", name,
			nox_err_str(&err, r));
		return r;
	}
	fs_table_lock(&fs->table);
	clock_gettime(CLOCK_MONOTONIC, &sb->checked);
	fs_table_unlock(&fs->table);
	r = sandbox_entry(fs, root, sb, out, st);
	fs_sandbox_put(sb);
	return r;
}

/* Any lookup below dir (never ROOT children's parents mixed up). */
static int do_lookup(struct fs *fs, struct fs_node *dir, const char *name,
		     struct fs_node **out, struct stat *st)
{
	int c, r;

	switch (dir->kind) {
	case FS_ROOT:
		return root_lookup(fs, dir, name, out, st);
	case FS_SANDBOX:
		if (strcmp(name, NOXDIR_NAME) == 0)
			return virt_lookup(fs, dir, FS_NOXDIR, 0, name, out,
					   st);
		/* fall through */
	case FS_WS:
		r = fs_sandbox_before_dir(dir->sb, dir);
		if (r < 0)
			return r;
		return ws_lookup(fs, dir, name, out, st);
	case FS_NOXDIR:
		c = fs_ctl_from_name(name);
		if (c < 0)
			return -ENOENT;
		return virt_lookup(fs, dir, FS_CTL, (enum fs_ctl)c, name, out,
				   st);
	default:
		return -ENOTDIR;
	}
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e;
	struct fs_node *n;
	struct stat st;
	int r;

	r = do_lookup(fs, req_node(req, parent), name, &n, &st);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fill_entry(fs, n, &st, &e);
	if (fuse_reply_entry(req, &e) != 0)
		fs_node_forget(&fs->table, n, 1);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = req_fs(req);

	fs_node_forget(&fs->table, fs_node_get(&fs->table, ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	struct fs *fs = req_fs(req);
	size_t i;

	for (i = 0; i < count; i++)
		fs_node_forget(&fs->table,
			       fs_node_get(&fs->table, forgets[i].ino),
			       forgets[i].nlookup);
	fuse_reply_none(req);
}

/* Replies with the entry of name just made in dir, or the error. */
static void reply_made(fuse_req_t req, struct fs *fs, struct fs_node *dir,
		       const char *name)
{
	struct fuse_entry_param e;
	struct fs_node *n;
	struct stat st;
	int r;

	r = ws_lookup(fs, dir, name, &n, &st);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fill_entry(fs, n, &st, &e);
	if (fuse_reply_entry(req, &e) != 0)
		fs_node_forget(&fs->table, n, 1);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fs_node *n = req_node(req, ino);
	struct stat st;
	int r;

	if (fi && n->kind == FS_WS && n->type == S_IFREG) {
		r = fstat((int)fi->fh, &st) < 0 ? -errno : 0;
		if (r == 0)
			fs_sandbox_attr(n->sb, &st);
	} else if (fi && n->kind == FS_CTL) {
		virt_attr(fs, n, &st);
		fs_ctl_fstat(fi, &st);
		r = 0;
	} else {
		r = node_stat(fs, n, &st);
	}
	/*
	 * A file with several names is tracked under one (inode.h), so
	 * after a command only that name's dentry was dropped and the
	 * others come here without a lookup: let the layer take the
	 * listing a lookup would have (the link count may have changed).
	 */
	if (r == 0 && !fi && n->kind == FS_WS && S_ISREG(st.st_mode) &&
	    st.st_nlink > 1 && fs_sandbox_before_dir(n->sb, NULL) == 0)
		r = node_stat(fs, n, &st);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	/* what the kernel now holds, for the exec barrier */
	fs_node_note_attr(&fs->table, n, &st);
	fuse_reply_attr(req, &st, node_attr_timeout(fs, n));
}

/* ---- setattr -------------------------------------------------------- */

static int ws_setattr(struct fs_node *n, const struct stat *attr, int to_set,
		      int fd)
{
	char proc[64];

	proc_path(n->fd, proc, sizeof(proc));
	if (to_set & FUSE_SET_ATTR_MODE) {
		int r = fd >= 0 ? fchmod(fd, attr->st_mode & 07777)
				: fchmodat(AT_FDCWD, proc,
					   attr->st_mode & 07777, 0);

		if (r < 0)
			return -errno;
	}
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid =
		    (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid =
		    (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		if (fchownat(n->fd, "", uid, gid,
			     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		int r = fd >= 0 ? ftruncate(fd, attr->st_size)
				: truncate(proc, attr->st_size);

		if (r < 0)
			return -errno;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec ts[2];
		int r;

		ts[0].tv_sec = 0;
		ts[0].tv_nsec = UTIME_OMIT;
		ts[1] = ts[0];
		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_ATIME)
			ts[0] = attr->st_atim;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_MTIME)
			ts[1] = attr->st_mtim;
		if (fd >= 0)
			r = futimens(fd, ts);
		else if (n->type == S_IFLNK)
			r = utimensat(n->fd, "", ts,
				      AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		else
			r = utimensat(AT_FDCWD, proc, ts, 0);
		if (r < 0)
			return -errno;
	}
	return 0;
}

/*
 * True when a mode change only clears S_ISUID / S_ISGID of n.  The kernel
 * clears them after a write or truncate by a user without CAP_FSETID
 * (file_remove_privs, no HANDLE_KILLPRIV) with such a SETATTR, sent with
 * the writer's credentials; run as a writer who is not the owner, fchmod
 * would give EPERM where ext4 accepts the write and clears the bits.
 */
static bool clears_setid_only(const struct fs_node *n, mode_t mode)
{
	const mode_t id = S_ISUID | S_ISGID;
	struct stat st;

	if (fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return false;
	mode &= 07777;
	return (st.st_mode & id) != 0 && (mode & ~st.st_mode & 07777) == 0 &&
	       ((st.st_mode ^ mode) & 07777 & ~id) == 0;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fs_node *n = req_node(req, ino);
	struct fs_cred cred;
	struct stat st;
	int fd = -1, r = 0, rest;
	struct fs_op op = {
	    .kind = FS_OP_SETATTR, .node = n, .flags = (unsigned)to_set};

	if (n->kind == FS_CTL) {
		/* "> .nox/exec" truncates and touch sets times: accept */
		if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
			      FUSE_SET_ATTR_GID)) {
			fuse_reply_err(req, EPERM);
			return;
		}
		virt_attr(fs, n, &st);
		fuse_reply_attr(req, &st, 0.0);
		return;
	}
	if (!is_real(n)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (fi && n->type == S_IFREG)
		fd = (int)fi->fh;
	fs_sandbox_op_begin(n->sb, &op);
	fs_cred_enter(req, &cred);
	rest = to_set;
	if (cred.switched && (to_set & FUSE_SET_ATTR_MODE) &&
	    clears_setid_only(n, attr->st_mode)) {
		char proc[64];

		/* as the daemon, for a caller who may write the file: the
		 * bits the kernel would clear on ext4 (a chmod that clears
		 * them otherwise stays the caller's, and fails as theirs) */
		proc_path(n->fd, proc, sizeof(proc));
		if (faccessat(AT_FDCWD, proc, W_OK, AT_EACCESS) == 0) {
			fs_cred_leave(&cred);
			r = ws_setattr(n, attr, FUSE_SET_ATTR_MODE, fd);
			fs_cred_enter(req, &cred);
			rest &= ~FUSE_SET_ATTR_MODE;
		}
	}
	if (r == 0)
		r = ws_setattr(n, attr, rest, fd);
	fs_cred_leave(&cred);
	change_end(n->sb, &op, r == 0);
	if (r == 0)
		r = fd >= 0 ? (fstat(fd, &st) < 0 ? -errno : 0)
			    : node_stat(fs, n, &st);
	if (r == 0 && fd >= 0)
		fs_sandbox_attr(n->sb, &st);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fs_node_note_attr(&fs->table, n, &st);
	fuse_reply_attr(req, &st, node_attr_timeout(fs, n));
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_node *n = req_node(req, ino);
	char buf[PATH_MAX + 1];
	ssize_t len;

	if (!is_real(n)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	len = readlinkat(n->fd, "", buf, sizeof(buf));
	if (len < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if ((size_t)len == sizeof(buf)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	buf[len] = '\0';
	fuse_reply_readlink(req, buf);
}

/* ---- the mount root: sandboxes -------------------------------------- */

static void root_mkdir(fuse_req_t req, struct fs *fs, struct fs_node *root,
		       const char *name)
{
	struct nox_create_opts copts = {.ttl_seconds = fs->opts.ttl};
	struct fuse_entry_param e;
	struct fs_sandbox *sb;
	struct fs_node *n;
	struct nox_err err;
	struct stat st;
	int r;

	nox_err_clear(&err);
	r = nox_id_validate(name, &err);
	if (r < 0) {
		nox_log(NOX_LOG_INFO, "mkdir: %s", nox_err_str(&err, r));
		fuse_reply_err(req, EINVAL);
		return;
	}
	nox_err_clear(&err);
	r = nox_backend_create(fs->be, name, &copts, NULL, &err);
	if (r < 0) {
		nox_log(NOX_LOG_WARN, "create %s: %s", name,
			nox_err_str(&err, r));
		fuse_reply_err(req, -r);
		return;
	}
	nox_log(NOX_LOG_INFO, "created sandbox %s", name);
	/* the lookup before this mkdir found no sandbox of that name: what
	 * an earlier one left (its cache) is not this one's */
	fs_sandbox_fresh(fs, name);
	nox_err_clear(&err);
	r = fs_sandbox_attach(fs, name, &sb, &err);
	if (r < 0) {
		nox_log(NOX_LOG_WARN, "%s: attach: %s", name,
			nox_err_str(&err, r));
		fuse_reply_err(req, -r);
		return;
	}
	r = sandbox_entry(fs, root, sb, &n, &st);
	fs_sandbox_put(sb);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fill_entry(fs, n, &st, &e);
	if (fuse_reply_entry(req, &e) != 0)
		fs_node_forget(&fs->table, n, 1);
}

/* 0 if directory fd (O_PATH) has no entries, -ENOTEMPTY, or -errno. */
static int dir_is_empty(int pathfd)
{
	struct dirent *d;
	DIR *dp;
	int fd, r = 0;

	fd = openat(pathfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dp = fdopendir(fd);
	if (!dp) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((d = readdir(dp)) != NULL) {
		if (strcmp(d->d_name, ".") != 0 &&
		    strcmp(d->d_name, "..") != 0) {
			r = -ENOTEMPTY;
			break;
		}
	}
	closedir(dp);
	return r;
}

static void root_rmdir(fuse_req_t req, struct fs *fs, const char *name)
{
	struct nox_sandbox_info info;
	struct fs_sandbox *sb;
	struct nox_err err;
	int r;

	if (nox_id_validate(name, NULL) < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	nox_err_clear(&err);
	r = nox_backend_info(fs->be, name, &info, &err);
	if (r == 0)
		r = fs_sandbox_attach(fs, name, &sb, &err);
	if (r < 0) {
		if (r != -ENOENT)
			nox_log(NOX_LOG_WARN, "rmdir %s: %s", name,
				nox_err_str(&err, r));
		fuse_reply_err(req, -r);
		return;
	}
	r = fs_sandbox_before_dir(sb, NULL);
	if (r == 0)
		r = dir_is_empty(sb->root_fd);
	if (r == 0) {
		nox_err_clear(&err);
		r = nox_backend_delete(fs->be, name, &err);
		if (r < 0 && r != -ENOENT)
			nox_log(NOX_LOG_WARN, "delete %s: %s", name,
				nox_err_str(&err, r));
		else
			r = 0;
	}
	if (r == 0) {
		nox_log(NOX_LOG_INFO, "deleted sandbox %s", name);
		fs_sandbox_detach(sb);
	}
	fs_sandbox_put(sb);
	fuse_reply_err(req, -r);
}

/* ---- creating and removing names ------------------------------------ */

/*
 * Common checks for making name in dir: 0 when dir is a real directory
 * where name may be made, else the errno to reply.
 */
/*
 * A layer that sends operations by workspace path (http) cannot send a
 * name whose path from the workspace is PATH_MAX bytes or more: it is
 * refused now with ENAMETOOLONG rather than made in the tree and never
 * delivered.  The local backend works from descriptors, like a disk.
 */
static int check_path_len(struct fs_node *dir, const char *name)
{
	char path[PATH_MAX];
	size_t dl;

	if (!dir->sb || !dir->sb->hooks->by_path)
		return 0;
	if (fs_node_path(&dir->sb->fs->table, dir, path, sizeof(path)) < 0)
		return ENAMETOOLONG;
	dl = strlen(path);
	return dl + (dl ? 1 : 0) + strlen(name) >= PATH_MAX ? ENAMETOOLONG : 0;
}

static int check_make(struct fs_node *dir, const char *name)
{
	switch (dir->kind) {
	case FS_ROOT:
	case FS_NOXDIR:
		return EPERM;
	case FS_CTL:
		return ENOTDIR;
	default:
		return is_noxname(dir, name) ? EEXIST
					     : check_path_len(dir, name);
	}
}

/* True when the calling process has CAP_MKNOD in its effective set. */
static bool caller_may_mknod(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	unsigned long long caps = 0;
	char path[64], line[256];
	bool found = false;
	FILE *f;

	/* 0: a caller in another pid namespace, whose status we cannot
	 * read; refused, as the capability cannot be shown */
	if (ctx->pid <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)ctx->pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "CapEff:", 7) == 0) {
			found = sscanf(line + 7, "%llx", &caps) == 1;
			break;
		}
	}
	fclose(f);
	return found && (caps & (1ull << CAP_MKNOD_BIT)) != 0;
}

/*
 * Which node types mknod may make in dir: regular files, FIFOs and
 * sockets everywhere a real workspace directory is (local backend);
 * device nodes only for a caller with CAP_MKNOD, as on ext4 (the daemon
 * runs as root and would otherwise make them for anyone; a command sees
 * the workspace nodev in any case).  A layer that sends operations by
 * path (http) makes the FIFOs and sockets it can send (can_mknod) and
 * never a device node (docs/security.md).
 */
static int check_mknod_type(fuse_req_t req, const struct fs_node *dir,
			    mode_t mode)
{
	const struct fs_sandbox_hooks *hooks = dir->sb->hooks;

	switch (mode & S_IFMT) {
	case S_IFREG:
		return 0;
	case S_IFIFO:
	case S_IFSOCK:
		if (!hooks->by_path)
			return 0;
		if (hooks->can_mknod &&
		    hooks->can_mknod(dir->sb, mode & S_IFMT))
			return 0;
		return EPERM;
	case S_IFCHR:
	case S_IFBLK:
		if (dir->sb->hooks->by_path)
			return EPERM;
		return caller_may_mknod(req) ? 0 : EPERM;
	default:
		return EINVAL;
	}
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	struct fs_node *dir = req_node(req, parent);
	struct fs_cred cred;
	int r, e;
	struct fs_op op = {.kind = FS_OP_CREATE, .dir = dir, .name = name};

	e = check_make(dir, name);
	if (e == 0)
		e = check_mknod_type(req, dir, mode);
	if (e) {
		fuse_reply_err(req, e);
		return;
	}
	fs_sandbox_op_begin(dir->sb, &op);
	fs_cred_enter(req, &cred);
	r = mknodat(dir->fd, name, mode, rdev);
	e = errno;
	fs_cred_leave(&cred);
	change_end(dir->sb, &op, r == 0);
	if (r < 0) {
		fuse_reply_err(req, e);
		return;
	}
	reply_made(req, req_fs(req), dir, name);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct fs *fs = req_fs(req);
	struct fs_node *dir = req_node(req, parent);
	struct fs_cred cred;
	int r, e;
	struct fs_op op = {.kind = FS_OP_MKDIR, .dir = dir, .name = name};

	if (dir->kind == FS_ROOT) {
		root_mkdir(req, fs, dir, name);
		return;
	}
	e = check_make(dir, name);
	if (e) {
		fuse_reply_err(req, e);
		return;
	}
	fs_sandbox_op_begin(dir->sb, &op);
	fs_cred_enter(req, &cred);
	r = mkdirat(dir->fd, name, mode);
	e = errno;
	fs_cred_leave(&cred);
	change_end(dir->sb, &op, r == 0);
	if (r < 0) {
		fuse_reply_err(req, e);
		return;
	}
	reply_made(req, fs, dir, name);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	struct fs_node *dir = req_node(req, parent);
	struct fs_cred cred;
	int r, e;
	struct fs_op op = {.kind = FS_OP_SYMLINK, .dir = dir, .name = name};

	e = check_make(dir, name);
	if (e) {
		fuse_reply_err(req, e);
		return;
	}
	fs_sandbox_op_begin(dir->sb, &op);
	fs_cred_enter(req, &cred);
	r = symlinkat(link, dir->fd, name);
	e = errno;
	fs_cred_leave(&cred);
	change_end(dir->sb, &op, r == 0);
	if (r < 0) {
		fuse_reply_err(req, e);
		return;
	}
	reply_made(req, req_fs(req), dir, name);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct fs_node *n = req_node(req, ino);
	struct fs_node *dir = req_node(req, newparent);
	struct fs_cred cred;
	char proc[64];
	int r, e;
	struct fs_op op = {
	    .kind = FS_OP_LINK, .node = n, .dir2 = dir, .name2 = newname};

	e = check_make(dir, newname);
	if (e == 0 && n->kind != FS_WS)
		e = EPERM;
	if (e == 0 && n->sb != dir->sb)
		e = EXDEV;
	if (e) {
		fuse_reply_err(req, e);
		return;
	}
	proc_path(n->fd, proc, sizeof(proc));
	fs_sandbox_op_begin(dir->sb, &op);
	fs_cred_enter(req, &cred);
	r = linkat(AT_FDCWD, proc, dir->fd, newname, AT_SYMLINK_FOLLOW);
	e = errno;
	fs_cred_leave(&cred);
	change_end(dir->sb, &op, r == 0);
	if (r < 0) {
		fuse_reply_err(req, e);
		return;
	}
	reply_made(req, req_fs(req), dir, newname);
}

static int check_remove(const struct fs_node *dir, const char *name)
{
	switch (dir->kind) {
	case FS_ROOT:
	case FS_NOXDIR:
		return EPERM;
	case FS_CTL:
		return ENOTDIR;
	default:
		return is_noxname(dir, name) ? EPERM : 0;
	}
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_node *dir = req_node(req, parent);
	int e = check_remove(dir, name);
	struct fs_op op = {.kind = FS_OP_UNLINK, .dir = dir, .name = name};

	if (e) {
		fuse_reply_err(req, e);
		return;
	}
	fs_sandbox_op_begin(dir->sb, &op);
	if (unlinkat(dir->fd, name, 0) < 0)
		e = errno;
	change_end(dir->sb, &op, e == 0);
	fuse_reply_err(req, e);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_node *dir = req_node(req, parent);
	int e;
	struct fs_op op = {.kind = FS_OP_RMDIR, .dir = dir, .name = name};

	if (dir->kind == FS_ROOT) {
		root_rmdir(req, req_fs(req), name);
		return;
	}
	e = check_remove(dir, name);
	if (e) {
		fuse_reply_err(req, e);
		return;
	}
	fs_sandbox_op_begin(dir->sb, &op);
	if (unlinkat(dir->fd, name, AT_REMOVEDIR) < 0)
		e = errno;
	change_end(dir->sb, &op, e == 0);
	fuse_reply_err(req, e);
}

/* After a rename, the moved node is known under its new name. */
static void renamed(struct fs *fs, struct fs_node *dir, const char *name)
{
	struct fs_node *n;
	struct stat st;

	if (fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	n = fs_node_find(&fs->table, dir->sb, st.st_dev, st.st_ino);
	if (n)
		fs_node_set_name(&fs->table, n, dir, name);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct fs *fs = req_fs(req);
	struct fs_node *dir = req_node(req, parent);
	struct fs_node *ndir = req_node(req, newparent);
	int e = check_remove(dir, name);
	struct fs_op op = {.kind = FS_OP_RENAME,
			   .dir = dir,
			   .name = name,
			   .dir2 = ndir,
			   .name2 = newname,
			   .flags = flags};

	if (e == 0)
		e = check_remove(ndir, newname);
	if (e == 0 && dir->sb != ndir->sb)
		e = EXDEV;
	if (e == 0)
		e = check_path_len(ndir, newname);
	if (e == 0 && (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)))
		e = EINVAL;
	if (e) {
		fuse_reply_err(req, e);
		return;
	}
	fs_sandbox_op_begin(dir->sb, &op);
	if (renameat2(dir->fd, name, ndir->fd, newname, flags) < 0)
		e = errno;
	if (e == 0) {
		renamed(fs, ndir, newname);
		if (flags & RENAME_EXCHANGE)
			renamed(fs, dir, name);
	}
	change_end(dir->sb, &op, e == 0);
	fuse_reply_err(req, e);
}

/* ---- files ---------------------------------------------------------- */

/* keep_cache when mtime and size match the previous open of n. */
static bool keep_cache(struct fs *fs, struct fs_node *n, int fd)
{
	struct stat st;
	bool keep;

	if (fstat(fd, &st) < 0)
		return false;
	fs_table_lock(&fs->table);
	keep = n->open_seen && n->open_size == st.st_size &&
	       n->open_mtime.tv_sec == st.st_mtim.tv_sec &&
	       n->open_mtime.tv_nsec == st.st_mtim.tv_nsec;
	n->open_seen = true;
	n->open_size = st.st_size;
	n->open_mtime = st.st_mtim;
	fs_table_unlock(&fs->table);
	return keep;
}

static int open_flags(int flags)
{
	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW | O_DIRECT);
	return flags | O_CLOEXEC;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fs_node *n = req_node(req, ino);
	char proc[64];
	int fd, r;

	if (n->kind == FS_CTL) {
		r = fs_ctl_open(fs, n, fi);
		if (r < 0)
			fuse_reply_err(req, -r);
		else if (fuse_reply_open(req, fi) != 0)
			fs_ctl_release(fi);
		return;
	}
	if (!is_real(n) || n->type == S_IFDIR) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	r = fs_sandbox_before_open(n->sb, n, fi->flags);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	proc_path(n->fd, proc, sizeof(proc));
	fd = open(proc, open_flags(fi->flags));
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fi->fh = (uint64_t)fd;
	fi->keep_cache = !(fi->flags & O_TRUNC) && keep_cache(fs, n, fd);
	if (fi->flags & O_TRUNC)
		keep_cache(fs, n, fd);
	/* counted before the kernel has the handle: the exec barrier
	 * writes back only files with a write handle (barrier.c) */
	fs_node_open_note(&fs->table, n, fi->flags);
	if (fuse_reply_open(req, fi) != 0) {
		fs_node_release_note(&fs->table, n, fi->flags);
		close(fd);
	}
}

/*
 * A create of a name that exists (the kernel had no dentry for it) is an
 * open of that file: it goes through before_open like any open, so a
 * placeholder is fetched (or marked dirty for O_TRUNC) first.
 */
static int create_existing(struct fs *fs, struct fs_node *dir, const char *name,
			   int flags, struct fs_node **out, struct stat *st)
{
	char proc[64];
	int fd, pfd, r;

	r = ws_lookup(fs, dir, name, out, st);
	if (r < 0)
		return r;
	/* a node the request does not name: pinned here (see pins_take) */
	pfd = fs_node_fd(&fs->table, *out);
	if (pfd < 0) {
		fs_node_forget(&fs->table, *out, 1);
		return pfd == -ESTALE ? -ENOENT : pfd;
	}
	if (S_ISDIR(st->st_mode))
		r = -EISDIR;
	if (r == 0)
		r = fs_sandbox_before_open(dir->sb, *out, flags);
	if (r == 0) {
		proc_path(pfd, proc, sizeof(proc));
		fd = open(proc, open_flags(flags));
		r = fd < 0 ? -errno : fd;
	}
	fs_node_fd_put(&fs->table, *out);
	if (r < 0)
		fs_node_forget(&fs->table, *out, 1);
	return r;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fs_node *dir = req_node(req, parent);
	struct fuse_entry_param e;
	struct fs_cred cred;
	struct fs_node *n;
	struct stat st;
	int fd, r, err;
	struct fs_op op = {.kind = FS_OP_CREATE, .dir = dir, .name = name};

	err = check_make(dir, name);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	fs_sandbox_op_begin(dir->sb, &op);
	fs_cred_enter(req, &cred);
	fd = openat(dir->fd, name,
		    (fi->flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC) &
			~(O_DIRECT | O_NOCTTY),
		    mode);
	err = errno;
	fs_cred_leave(&cred);
	r = fd < 0 ? -err : ws_lookup(fs, dir, name, &n, &st);
	change_end(dir->sb, &op, fd >= 0 && r == 0);
	if (r == -EEXIST && !(fi->flags & O_EXCL)) {
		/* opened as op_open does (the kernel checked access) */
		fd = create_existing(fs, dir, name, fi->flags, &n, &st);
		r = fd < 0 ? fd : 0;
	}
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		fuse_reply_err(req, -r);
		return;
	}
	keep_cache(fs, n, fd);
	fi->fh = (uint64_t)fd;
	fill_entry(fs, n, &st, &e);
	fs_node_open_note(&fs->table, n, fi->flags);
	if (fuse_reply_create(req, &e, fi) != 0) {
		fs_node_release_note(&fs->table, n, fi->flags);
		close(fd);
		fs_node_forget(&fs->table, n, 1);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_node *n = req_node(req, ino);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	if (n->kind == FS_CTL) {
		fs_ctl_read(req, req_fs(req), n, size, off, fi);
		return;
	}
	if (n->kind == FS_WS) {
		int r = fs_sandbox_before_read(n->sb, n, off, size);

		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
	}
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = (int)fi->fh;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_NO_SPLICE);
}

/* True when gid is the caller's group or one of its supplementary ones. */
static bool caller_in_group(fuse_req_t req, gid_t gid)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t groups[64];
	int n, i;

	if (ctx->gid == gid)
		return true;
	n = fuse_req_getgroups(req, 64, groups);
	for (i = 0; i < n && i < 64; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/*
 * A setgid file without group-exec loses S_ISGID when written by a user
 * outside its group (ext4, since Linux 6.x's setattr_should_drop_sgid),
 * but the kernel's FUSE client clears set-id bits only with group-exec
 * set: done here, as the daemon.  Costs one fstat per write.
 */
static void write_drop_sgid(fuse_req_t req, int fd)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat st;

	if (ctx->uid == 0 || fstat(fd, &st) < 0 ||
	    (st.st_mode & (S_ISGID | S_IXGRP)) != S_ISGID ||
	    caller_in_group(req, st.st_gid))
		return;
	(void)fchmod(fd, st.st_mode & 07777 & ~(mode_t)S_ISGID);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
			 off_t off, struct fuse_file_info *fi)
{
	struct fs_node *n = req_node(req, ino);
	size_t size = fuse_buf_size(in);
	ssize_t res;

	if (n->kind == FS_CTL) {
		struct fuse_bufvec mem = FUSE_BUFVEC_INIT(size);
		char *data = malloc(size ? size : 1);

		if (!data) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		mem.buf[0].mem = data;
		res = fuse_buf_copy(&mem, in, 0);
		if (res < 0)
			fuse_reply_err(req, (int)-res);
		else
			fs_ctl_write(req, req_fs(req), n, data, (size_t)res,
				     off, fi);
		free(data);
		return;
	}
	/* marked before the data lands: a listing merged meanwhile must
	 * not take the file for unchanged, and an exec barrier's snapshot
	 * taken meanwhile leaves the mark for the close */
	fs_sandbox_note_write(n->sb, n);
	{
		struct fuse_bufvec out = FUSE_BUFVEC_INIT(size);

		out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		out.buf[0].fd = (int)fi->fh;
		out.buf[0].pos = off;
		res = fuse_buf_copy(&out, in, 0);
	}
	if (res < 0) {
		fuse_reply_err(req, (int)-res);
		return;
	}
	if (res > 0)
		write_drop_sgid(req, (int)fi->fh);
	fuse_reply_write(req, (size_t)res);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_node *n = req_node(req, ino);
	int r;

	if (n->kind == FS_CTL) {
		r = fs_ctl_flush(req, req_fs(req), n, fi);
	} else {
		/* a close drops the closing process's POSIX locks */
		fs_lock_flush((int)fi->fh, fi->lock_owner);
		r = fs_sandbox_on_close(n->sb, n, (int)fi->fh, false);
	}
	fuse_reply_err(req, -r);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_node *n = req_node(req, ino);

	if (n->kind == FS_CTL) {
		fs_ctl_release(fi);
	} else {
		fs_lock_release((int)fi->fh);
		close((int)fi->fh);
		fs_node_release_note(&req_fs(req)->table, n, fi->flags);
	}
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct fs_node *n = req_node(req, ino);
	int fd = (int)fi->fh, r;

	if (n->kind == FS_CTL) {
		fuse_reply_err(req, 0);
		return;
	}
	r = datasync ? fdatasync(fd) : fsync(fd);
	r = r < 0 ? -errno : 0;
	if (r == 0)
		r = fs_sandbox_on_close(n->sb, n, fd, true);
	fuse_reply_err(req, -r);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			 off_t length, struct fuse_file_info *fi)
{
	struct fs_node *n = req_node(req, ino);
	int e = 0;

	if (n->kind != FS_WS) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	fs_sandbox_note_write(n->sb, n);
	if (fallocate((int)fi->fh, mode, offset, length) < 0)
		e = errno;
	fuse_reply_err(req, e);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			       off_t off_out, struct fuse_file_info *fi_out,
			       size_t len, int flags)
{
	struct fs_node *a = req_node(req, ino_in);
	struct fs_node *b = req_node(req, ino_out);
	ssize_t res;

	if (a->kind != FS_WS || b->kind != FS_WS) {
		/* EXDEV makes the kernel fall back to a plain copy */
		fuse_reply_err(req, EXDEV);
		return;
	}
	fs_sandbox_note_write(b->sb, b);
	res = copy_file_range((int)fi_in->fh, &off_in, (int)fi_out->fh,
			      &off_out, len, (unsigned)flags);
	if (res < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_write(req, (size_t)res);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct fs_node *n = req_node(req, ino);
	off_t res;

	if (n->kind != FS_WS) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	res = lseek((int)fi->fh, off, whence);
	if (res < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, res);
}

/* ---- locks (local backend; lock.c) ----------------------------------- */

/* The open's real descriptor when n is a workspace file, else -1. */
static int lock_fd(const struct fs_node *n, const struct fuse_file_info *fi)
{
	return n->kind == FS_WS && n->type == S_IFREG ? (int)fi->fh : -1;
}

static void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     int op)
{
	int fd = lock_fd(req_node(req, ino), fi);

	if (fd < 0)
		fuse_reply_err(req, ENOLCK);
	else
		fs_lock_flock(req, fd, op);
}

static void op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock)
{
	int fd = lock_fd(req_node(req, ino), fi);

	if (fd < 0)
		fuse_reply_err(req, ENOLCK);
	else
		fs_lock_getlk(req, fd, lock);
}

static void op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock, int sleep)
{
	int fd = lock_fd(req_node(req, ino), fi);

	if (fd < 0)
		fuse_reply_err(req, ENOLCK);
	else
		fs_lock_setlk(req, fd, fi->lock_owner, lock, sleep);
}

/* ---- directories ---------------------------------------------------- */

enum dent_kind { DENT_REAL, DENT_DOT, DENT_CTL, DENT_SANDBOX };

struct dent {
	char *name;
	ino_t ino;
	unsigned char type; /* DT_* */
	enum dent_kind kind;
	enum fs_ctl ctl;
};

/* An open directory (fi->fh); the kernel serialises readdir per open. */
struct dirh {
	struct fs_handle h; /* first: fi->fh points here */
	struct fs_table *t;
	DIR *dp;	   /* real directories */
	struct dent *ents; /* snapshot taken at offset 0 */
	size_t n;
	size_t cap;
	bool have;
};

static void dirh_clear(struct dirh *h)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		free(h->ents[i].name);
	h->n = 0;
	h->have = false;
}

static int dirh_add(struct dirh *h, const char *name, ino_t ino,
		    unsigned char type, enum dent_kind kind, enum fs_ctl ctl)
{
	struct dent *d;

	if (h->n == h->cap) {
		size_t nc = h->cap ? h->cap * 2 : 32;
		struct dent *ne = realloc(h->ents, nc * sizeof(*ne));

		if (!ne)
			return -ENOMEM;
		h->ents = ne;
		h->cap = nc;
	}
	d = &h->ents[h->n];
	d->name = strdup(name);
	if (!d->name)
		return -ENOMEM;
	d->ino = ino;
	d->type = type;
	d->kind = kind;
	d->ctl = ctl;
	h->n++;
	return 0;
}

static void dirh_free(struct fs_handle *fh)
{
	struct dirh *h = (struct dirh *)fh;

	fs_table_handle_del(h->t, &h->h);
	dirh_clear(h);
	free(h->ents);
	if (h->dp)
		closedir(h->dp);
	free(h);
}

/*
 * The kernel may keep a listing (FOPEN_CACHE_DIR) on the local backend
 * only: it drops it when the directory's mtime or its own version
 * changes (mtime re-read after attr_timeout, auto_inval_data) and at
 * every exec's inode invalidation.  An http sandbox refreshes listings in
 * before_dir, which a cached listing would skip.  Only for a directory
 * whose mtime is over a second old (a change within the same timestamp
 * tick as the cached one would not be seen), and only while the entries
 * of its last READDIRPLUS are within entry_timeout: past that, ls -l
 * would pay one LOOKUP per name, where a fresh READDIRPLUS refreshes
 * them in bulk.  For directories the node's open_seen / open_mtime
 * (keep_cache state of regular files) hold that READDIRPLUS's time,
 * CLOCK_MONOTONIC.
 */
static void dir_listed(struct fs *fs, struct fs_node *n)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	fs_table_lock(&fs->table);
	n->open_seen = true;
	n->open_mtime = now;
	fs_table_unlock(&fs->table);
}

static bool dir_cacheable(struct fs *fs, struct fs_node *n, int fd)
{
	struct timespec now, mono;
	struct stat st;
	double age;
	bool seen;

	if (fs->hooks != &fs_local_hooks || fstat(fd, &st) < 0 ||
	    clock_gettime(CLOCK_REALTIME, &now) < 0 ||
	    now.tv_sec - st.st_mtim.tv_sec < 2)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	fs_table_lock(&fs->table);
	seen = n->open_seen;
	age = (double)(mono.tv_sec - n->open_mtime.tv_sec) +
	      (double)(mono.tv_nsec - n->open_mtime.tv_nsec) / 1e9;
	fs_table_unlock(&fs->table);
	return seen && age < fs_entry_timeout(fs);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_node *n = req_node(req, ino);
	struct dirh *h;
	int fd, e;

	if (n->kind == FS_CTL || (is_real(n) && n->type != S_IFDIR)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (is_real(n)) {
		fd = openat(n->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || !(h->dp = fdopendir(fd))) {
			e = errno;
			if (fd >= 0)
				close(fd);
			free(h);
			fuse_reply_err(req, e);
			return;
		}
	}
	h->t = &req_fs(req)->table;
	h->h.free = dirh_free;
	fs_table_handle_add(h->t, &h->h);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (is_real(n) && dir_cacheable(req_fs(req), n, dirfd(h->dp)))
		fi->cache_readdir = fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) != 0)
		dirh_free(&h->h);
}

struct root_list {
	struct dirh *h;
	int err;
};

static int root_list_cb(const char *id, void *ud)
{
	struct root_list *rl = ud;
	uint64_t hash = 1469598103934665603ull;
	const char *p;

	for (p = id; *p; p++)
		hash = (hash ^ (unsigned char)*p) * 1099511628211ull;
	/* a stable pseudo inode number; stat shows the real one */
	rl->err = dirh_add(rl->h, id, (ino_t)(hash | 0x4000000000000000ull),
			   DT_DIR, DENT_SANDBOX, 0);
	return rl->err;
}

static int dir_snapshot(struct fs *fs, struct fs_node *n, struct dirh *h)
{
	struct dirent *d;
	int r = 0, i;

	dirh_clear(h);
	switch (n->kind) {
	case FS_ROOT: {
		struct root_list rl = {.h = h, .err = 0};
		struct nox_err err;

		r = dirh_add(h, ".", FUSE_ROOT_ID, DT_DIR, DENT_DOT, 0);
		if (r == 0)
			r = dirh_add(h, "..", FUSE_ROOT_ID, DT_DIR, DENT_DOT,
				     0);
		if (r < 0)
			return r;
		nox_err_clear(&err);
		r = nox_backend_list_sandboxes(fs->be, root_list_cb, &rl, &err);
		if (r == -ENOSYS) {
			/* a v1-only server cannot list: show the sandboxes
			 * this mount knows (made or opened through it); any
			 * other one is still reachable by name */
			struct fs_sandbox **sbs;
			size_t k, nsb;

			r = fs_sandbox_list(fs, &sbs, &nsb);
			if (r < 0)
				break;
			for (k = 0; k < nsb; k++) {
				if (r == 0)
					r = root_list_cb(sbs[k]->id, &rl);
				fs_sandbox_put(sbs[k]);
			}
			free(sbs);
			break;
		}
		if (r < 0 && rl.err == 0)
			nox_log(NOX_LOG_WARN, "listing sandboxes: %s",
				nox_err_str(&err, r));
		break;
	}
	case FS_NOXDIR:
		r = dirh_add(h, ".", fs_virtual_ino(n->sb, FS_NOXDIR, 0),
			     DT_DIR, DENT_DOT, 0);
		if (r == 0) {
			struct stat rst;

			if (fstat(n->sb->root_fd, &rst) < 0)
				rst.st_ino = FUSE_ROOT_ID;
			r = dirh_add(h, "..", rst.st_ino, DT_DIR, DENT_DOT, 0);
		}
		for (i = 0; r == 0 && i < FS_CTL__COUNT; i++)
			r = dirh_add(
			    h, fs_ctl_name((enum fs_ctl)i),
			    fs_virtual_ino(n->sb, FS_CTL, (enum fs_ctl)i),
			    DT_REG, DENT_CTL, (enum fs_ctl)i);
		break;
	default:
		r = fs_sandbox_before_dir(n->sb, n);
		if (r < 0)
			return r;
		rewinddir(h->dp);
		/* .nox is reachable by name but never listed (like ZFS's
		 * hidden .zfs): tree walkers (git, cp -a, rm -rf, find)
		 * must not copy, commit or delete the control files */
		errno = 0;
		while (r == 0 && (d = readdir(h->dp)) != NULL) {
			bool dot = strcmp(d->d_name, ".") == 0 ||
				   strcmp(d->d_name, "..") == 0;

			if (is_noxname(n, d->d_name))
				continue;
			r = dirh_add(h, d->d_name, d->d_ino, d->d_type,
				     dot ? DENT_DOT : DENT_REAL, 0);
		}
		if (r == 0 && errno != 0)
			r = -errno;
		break;
	}
	if (r == 0)
		h->have = true;
	return r;
}

/* Lookup for readdirplus; 0 with e->ino == 0 for entries not counted. */
static int plus_entry(struct fs *fs, struct fs_node *dir, const struct dent *d,
		      struct fuse_entry_param *e)
{
	struct fs_node *n;
	struct stat st;
	int r;

	memset(e, 0, sizeof(*e));
	switch (d->kind) {
	case DENT_REAL:
		r = ws_lookup(fs, dir, d->name, &n, &st);
		break;
	case DENT_CTL:
		r = virt_lookup(fs, dir, FS_CTL, d->ctl, d->name, &n, &st);
		break;
	default:
		/* dots are never counted by the kernel; sandboxes are
		 * attached only when looked up by name */
		e->attr.st_ino = d->ino;
		e->attr.st_mode = (mode_t)d->type << 12;
		return 0;
	}
	if (r < 0)
		return r;
	fill_entry(fs, n, &st, e);
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct fs *fs = req_fs(req);
	struct fs_node *n = req_node(req, ino);
	struct dirh *h = (struct dirh *)(uintptr_t)fi->fh;
	size_t pos = 0, i;
	char *buf;
	int r;

	if (off == 0 || !h->have) {
		r = dir_snapshot(fs, n, h);
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
	}
	if (plus && off == 0 && is_real(n))
		dir_listed(fs, n);
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (i = (size_t)off; i < h->n; i++) {
		const struct dent *d = &h->ents[i];
		size_t need;

		if (plus) {
			struct fuse_entry_param e;

			r = plus_entry(fs, n, d, &e);
			if (r == -ENOENT)
				continue; /* vanished meanwhile */
			if (r < 0) {
				/* the name without attributes */
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = d->ino;
				e.attr.st_mode = (mode_t)d->type << 12;
			}
			need =
			    fuse_add_direntry_plus(req, buf + pos, size - pos,
						   d->name, &e, (off_t)(i + 1));
			if (need > size - pos) {
				if (e.ino)
					fs_node_forget(
					    &fs->table,
					    fs_node_get(&fs->table, e.ino), 1);
				break;
			}
		} else {
			struct stat st;

			memset(&st, 0, sizeof(st));
			st.st_ino = d->ino;
			st.st_mode = (mode_t)d->type << 12;
			need = fuse_add_direntry(req, buf + pos, size - pos,
						 d->name, &st, (off_t)(i + 1));
			if (need > size - pos)
				break;
		}
		pos += need;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct dirh *h = (struct dirh *)(uintptr_t)fi->fh;

	(void)ino;
	dirh_free(&h->h);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	struct dirh *h = (struct dirh *)(uintptr_t)fi->fh;
	int e = 0;

	(void)ino;
	if (h->dp) {
		int fd = dirfd(h->dp);

		if ((datasync ? fdatasync(fd) : fsync(fd)) < 0)
			e = errno;
	}
	fuse_reply_err(req, e);
}

/* ---- file system and permissions ------------------------------------ */

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = req_fs(req);
	struct fs_node *n = req_node(req, ino);
	struct statvfs sv;
	int r;

	memset(&sv, 0, sizeof(sv));
	if (n->sb && n->sb->hooks->statfs)
		r = fs_sandbox_statfs(n->sb, &sv); /* the server's figures */
	else if (is_real(n))
		r = fstatvfs(n->fd, &sv) < 0 ? -errno : 0;
	else if (n->sb)
		r = fstatvfs(n->sb->root_fd, &sv) < 0 ? -errno : 0;
	else if (strcmp(fs->backend_name, "local") == 0)
		r = statvfs(fs->opts.local_dir ? fs->opts.local_dir
					       : NOX_DEFAULT_BASE_DIR,
			    &sv) < 0
			? -errno
			: 0;
	else if (fs->hooks->statfs)
		r = fs->hooks->statfs(fs, NULL, &sv); /* the mount root */
	else {
		sv.f_bsize = 4096;
		sv.f_frsize = 4096;
		sv.f_namemax = 255;
		r = 0;
	}
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_statfs(req, &sv);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct fs_node *n = req_node(req, ino);
	struct fs_cred cred;
	char proc[64];
	int e = 0;

	if (!is_real(n)) {
		/* the root takes mkdir; .nox and its files are fixed */
		if (n->kind == FS_CTL &&
		    (((mask & W_OK) && !(fs_ctl_mode(n->ctl) & 0002)) ||
		     (mask & X_OK)))
			e = EACCES;
		else if (n->kind == FS_NOXDIR && (mask & W_OK))
			e = EACCES;
		fuse_reply_err(req, e);
		return;
	}
	if (n->type == S_IFLNK) {
		fuse_reply_err(req, 0);
		return;
	}
	proc_path(n->fd, proc, sizeof(proc));
	fs_cred_enter(req, &cred);
	if (faccessat(AT_FDCWD, proc, mask, AT_EACCESS) < 0)
		e = errno;
	fs_cred_leave(&cred);
	fuse_reply_err(req, e);
}

/* ---- extended attributes ("user." only) ----------------------------- */

static bool user_xattr(const char *name)
{
	return strncmp(name, "user.", 5) == 0;
}

static bool xattr_node(const struct fs_node *n)
{
	return is_real(n) && n->type != S_IFLNK;
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct fs_node *n = req_node(req, ino);
	char proc[64];
	ssize_t len;
	char *buf;

	/* ENOTSUP for other namespaces, as the VFS gives for a prefix no
	 * handler takes: ls -l then stops asking security.selinux of
	 * every file (one round trip each) */
	if (!user_xattr(name)) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (!xattr_node(n)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	proc_path(n->fd, proc, sizeof(proc));
	if (size == 0) {
		len = getxattr(proc, name, NULL, 0);
		if (len < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_xattr(req, (size_t)len);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	len = getxattr(proc, name, buf, size);
	if (len < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)len);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_node *n = req_node(req, ino);
	char proc[64];
	ssize_t len;
	size_t i, out = 0;
	char *buf = NULL;

	if (!xattr_node(n)) {
		if (size == 0)
			fuse_reply_xattr(req, 0);
		else
			fuse_reply_buf(req, NULL, 0);
		return;
	}
	proc_path(n->fd, proc, sizeof(proc));
	len = listxattr(proc, NULL, 0);
	if (len > 0) {
		buf = malloc((size_t)len);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		len = listxattr(proc, buf, (size_t)len);
	}
	if (len < 0) {
		free(buf);
		fuse_reply_err(req, errno);
		return;
	}
	/* keep only "user." names, compacting in place */
	for (i = 0; i < (size_t)len;) {
		size_t l = strlen(buf + i) + 1;

		if (user_xattr(buf + i)) {
			memmove(buf + out, buf + i, l);
			out += l;
		}
		i += l;
	}
	if (size == 0)
		fuse_reply_xattr(req, out);
	else if (out > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, out);
	free(buf);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct fs_node *n = req_node(req, ino);
	struct fs_cred cred;
	char proc[64];
	int e = 0;

	if (!xattr_node(n) || !user_xattr(name)) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	proc_path(n->fd, proc, sizeof(proc));
	fs_cred_enter(req, &cred);
	if (setxattr(proc, name, value, size, flags) < 0)
		e = errno;
	fs_cred_leave(&cred);
	fuse_reply_err(req, e);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs_node *n = req_node(req, ino);
	struct fs_cred cred;
	char proc[64];
	int e = 0;

	if (!xattr_node(n) || !user_xattr(name)) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	proc_path(n->fd, proc, sizeof(proc));
	fs_cred_enter(req, &cred);
	if (removexattr(proc, name) < 0)
		e = errno;
	fs_cred_leave(&cred);
	fuse_reply_err(req, e);
}

/* ---- session -------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	/* the exec barrier needs every write in the file before write()
	 * returns; set-id clearing stays with the kernel, which sends it
	 * as a SETATTR (see clears_setid_only()) */
	conn->want &=
	    ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_HANDLE_KILLPRIV |
			FUSE_CAP_EXPORT_SUPPORT);
	/* no splice for requests: W4 writes were ~15 % slower with it
	 * (splicing a 1 MiB WRITE into a pipe copies it anyway) */
	conn->want &= ~(unsigned)FUSE_CAP_SPLICE_READ;
	/*
	 * No splice for replies: when the fd -> pipe -> /dev/fuse splice of a
	 * READ reply fails (seen as "fuse: splice from pipe: Invalid
	 * argument" under load, kernel 6.18, libfuse 3.14), libfuse drops
	 * the request without replying; its folios stay locked and the next
	 * exec's page-cache invalidation waits on them for ever.  Without
	 * SPLICE_WRITE libfuse preads into a buffer and always replies.
	 */
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	/* locks reach the workspace file only where there is one: over
	 * http the kernel keeps them local to this mount (docs/cache.md) */
	if (fs->hooks != &fs_local_hooks)
		conn->want &=
		    ~(unsigned)(FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_POSIX_LOCKS);
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	fs->expire_only = (conn->capable & FUSE_CAP_EXPIRE_ONLY) != 0;
	conn->max_write = 1024 * 1024;
	nox_log(NOX_LOG_DEBUG, "init: proto %u.%u, expire %s",
		conn->proto_major, conn->proto_minor,
		fs->expire_only ? "yes" : "no");
}

/* ---- pinned descriptors ------------------------------------------- */

/*
 * The handlers above read node->fd directly: these wrappers pin the
 * descriptors of the nodes a request names for its whole length (the
 * inode table closes unpinned ones beyond FS_FD_CACHE, inode.h), and
 * unpin after the reply (a node the kernel forgets meanwhile is freed by
 * the unpin).  A node whose file is gone and whose descriptor was closed
 * answers ENOENT, as a path lookup would.
 */
struct pins {
	struct fs *fs;
	struct fs_node *n[2];
};

static int pins_take(fuse_req_t req, struct pins *p, fuse_ino_t a,
		     fuse_ino_t b)
{
	fuse_ino_t ino[2] = {a, b};
	int i, r;

	p->fs = req_fs(req);
	p->n[0] = p->n[1] = NULL;
	for (i = 0; i < 2; i++) {
		struct fs_node *n;

		if (ino[i] == 0)
			continue;
		n = req_node(req, ino[i]);
		if (!is_real(n) || (i == 1 && n == p->n[0]))
			continue;
		r = fs_node_fd(&p->fs->table, n);
		if (r < 0) {
			if (p->n[0])
				fs_node_fd_put(&p->fs->table, p->n[0]);
			return r == -ESTALE ? ENOENT : -r;
		}
		p->n[i] = n;
	}
	return 0;
}

static void pins_drop(struct pins *p)
{
	int i;

	for (i = 0; i < 2; i++)
		if (p->n[i])
			fs_node_fd_put(&p->fs->table, p->n[i]);
}

#define PINNED(req, a, b, call)                                                \
	do {                                                                   \
		struct pins p_;                                                \
		int e_ = pins_take(req, &p_, a, b);                            \
		if (e_) {                                                      \
			fuse_reply_err(req, e_);                               \
			return;                                                \
		}                                                              \
		call;                                                          \
		pins_drop(&p_);                                                \
	} while (0)

static void pin_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	PINNED(req, parent, 0, op_lookup(req, parent, name));
}

static void pin_getattr(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	PINNED(req, ino, 0, op_getattr(req, ino, fi));
}

static void pin_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int to_set, struct fuse_file_info *fi)
{
	PINNED(req, ino, 0, op_setattr(req, ino, attr, to_set, fi));
}

static void pin_readlink(fuse_req_t req, fuse_ino_t ino)
{
	PINNED(req, ino, 0, op_readlink(req, ino));
}

static void pin_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev)
{
	PINNED(req, parent, 0, op_mknod(req, parent, name, mode, rdev));
}

static void pin_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode)
{
	PINNED(req, parent, 0, op_mkdir(req, parent, name, mode));
}

static void pin_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	PINNED(req, parent, 0, op_unlink(req, parent, name));
}

static void pin_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	PINNED(req, parent, 0, op_rmdir(req, parent, name));
}

static void pin_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			const char *name)
{
	PINNED(req, parent, 0, op_symlink(req, link, parent, name));
}

static void pin_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname,
		       unsigned int flags)
{
	PINNED(req, parent, newparent,
	       op_rename(req, parent, name, newparent, newname, flags));
}

static void pin_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		     const char *newname)
{
	PINNED(req, ino, newparent, op_link(req, ino, newparent, newname));
}

static void pin_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	PINNED(req, ino, 0, op_open(req, ino, fi));
}

static void pin_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi)
{
	PINNED(req, parent, 0, op_create(req, parent, name, mode, fi));
}

static void pin_write_buf(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_bufvec *in, off_t off,
			  struct fuse_file_info *fi)
{
	PINNED(req, ino, 0, op_write_buf(req, ino, in, off, fi));
}

static void pin_flush(fuse_req_t req, fuse_ino_t ino,
		      struct fuse_file_info *fi)
{
	PINNED(req, ino, 0, op_flush(req, ino, fi));
}

static void pin_release(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	PINNED(req, ino, 0, op_release(req, ino, fi));
}

static void pin_opendir(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	PINNED(req, ino, 0, op_opendir(req, ino, fi));
}

static void pin_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			off_t off, struct fuse_file_info *fi)
{
	PINNED(req, ino, 0, op_readdir(req, ino, size, off, fi));
}

static void pin_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			    off_t off, struct fuse_file_info *fi)
{
	PINNED(req, ino, 0, op_readdirplus(req, ino, size, off, fi));
}

static void pin_statfs(fuse_req_t req, fuse_ino_t ino)
{
	PINNED(req, ino, 0, op_statfs(req, ino));
}

static void pin_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	PINNED(req, ino, 0, op_access(req, ino, mask));
}

static void pin_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 size_t size)
{
	PINNED(req, ino, 0, op_getxattr(req, ino, name, size));
}

static void pin_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	PINNED(req, ino, 0, op_listxattr(req, ino, size));
}

static void pin_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 const char *value, size_t size, int flags)
{
	PINNED(req, ino, 0, op_setxattr(req, ino, name, value, size, flags));
}

static void pin_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	PINNED(req, ino, 0, op_removexattr(req, ino, name));
}

const struct fuse_lowlevel_ops fs_ops = {
    .init = op_init,
    .lookup = pin_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = pin_getattr,
    .setattr = pin_setattr,
    .readlink = pin_readlink,
    .mknod = pin_mknod,
    .mkdir = pin_mkdir,
    .unlink = pin_unlink,
    .rmdir = pin_rmdir,
    .symlink = pin_symlink,
    .rename = pin_rename,
    .link = pin_link,
    .open = pin_open,
    .create = pin_create,
    .read = op_read,
    .write_buf = pin_write_buf,
    .flush = pin_flush,
    .release = pin_release,
    .fsync = op_fsync,
    .opendir = pin_opendir,
    .readdir = pin_readdir,
    .readdirplus = pin_readdirplus,
    .releasedir = op_releasedir,
    .fsyncdir = op_fsyncdir,
    .statfs = pin_statfs,
    .access = pin_access,
    .getxattr = pin_getxattr,
    .listxattr = pin_listxattr,
    .setxattr = pin_setxattr,
    .removexattr = pin_removexattr,
    .fallocate = op_fallocate,
    .copy_file_range = op_copy_file_range,
    .lseek = op_lseek,
    .flock = op_flock,
    .getlk = op_getlk,
    .setlk = op_setlk,
};
