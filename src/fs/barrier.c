/*
 * barrier.c - the exec barrier (see barrier.h) and its kernel
 * notifications.
 *
 * The barrier's kernel half is proportional to what can have changed.
 * Before a command only files with a write handle (now or since the last
 * barrier) can hold dirty pages, so only those are invalidated.  After
 * it, on a backend whose tree the command changes directly
 * (hooks->inval_changed: local), a node is invalidated only when the
 * fstat of its descriptor differs from what the daemon last served for it
 * (ctime, mtime, size, nlink, st_ino), when it was never served, when its
 * fstat fails or nlink is 0, or when its served ctime is no older than
 * 2 s before the command started (a change in the same timestamp tick
 * would be invisible: git's racy-clean rule); a changed directory's
 * children have their entries expired too.  Every write, chmod, rename,
 * link or unlink by the command sets the ctime of what it touches (and
 * the mtime and ctime of the directories whose names change), so nothing
 * the command changed is missed.  Over http the cache layer updates its
 * tree lazily after the command: everything is invalidated.
 *
 * The start time is a local of fs_barrier_run: concurrent barriers (one
 * per open of .nox/exec) each keep their own.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "barrier.h"

static bool barrier_notifies(const struct fs *fs)
{
	return !fs->no_notify && (fs->se || fs->notify);
}

/*
 * Sends the kernel the invalidations in v, then frees v.
 *
 * Notifications are sent with no lock held: the kernel may need to take
 * a directory's lock that a concurrent request holds while it waits for
 * our table mutex (a lookup), so holding it here could deadlock.  The
 * calling exec write holds only the kernel's lock on the .nox/exec
 * inode, which no workspace operation needs.  Directory entries are
 * expired rather than invalidated where the kernel can (FUSE 7.38): an
 * invalidated directory dentry is unhashed, and a shell whose cwd is in
 * it would see getcwd() fail.  Without expiry, only non-directory
 * entries are invalidated; directories rely on the attribute drop and
 * the entry timeout.
 */
static void barrier_notify(struct fs *fs, struct fs_inval *v, size_t n)
{
	size_t i;
	int r;

	if (fs->notify) {
		fs->notify(fs, v, n);
		fs_inval_free(v, n);
		return;
	}
	for (i = 0; i < n; i++) {
		if (v[i].name && v[i].parent) {
			size_t len = strlen(v[i].name);

			if (fs->expire_only)
				r = fuse_lowlevel_notify_expire_entry(
				    fs->se, v[i].parent, v[i].name, len,
				    FUSE_LL_EXPIRE_ONLY);
			else if (!v[i].dir)
				r = fuse_lowlevel_notify_inval_entry(
				    fs->se, v[i].parent, v[i].name, len);
			else
				r = 0;
			if (r < 0 && r != -ENOENT)
				nox_log(NOX_LOG_DEBUG, "inval entry %s: %s",
					v[i].name, strerror(-r));
		}
		if (v[i].inode) {
			r = fuse_lowlevel_notify_inval_inode(fs->se, v[i].ino,
							     0, 0);
			if (r < 0 && r != -ENOENT)
				nox_log(NOX_LOG_DEBUG, "inval inode: %s",
					strerror(-r));
		}
	}
	fs_inval_free(v, n);
}

/*
 * A node is in the write-back set from its first write open until the
 * first barrier after its last write handle was released: only there can
 * the kernel hold dirty pages (no writeback cache; a shared writable
 * mapping holds its file, hence its FUSE handle, until munmap, which
 * writes the pages back before RELEASE).
 */
static void barrier_writeback(struct fs_sandbox *sb)
{
	struct fs *fs = sb->fs;
	struct fs_inval *v = NULL;
	size_t n = 0;
	int r;

	if (!barrier_notifies(fs))
		return;
	r = fs_table_collect_wb(&fs->table, sb, &v, &n);
	if (r < 0) {
		/* out of memory for the set: every regular file, as before */
		r = fs_table_collect(&fs->table, sb, &v, &n);
		if (r == 0) {
			size_t i;

			for (i = 0; i < n; i++) {
				free(v[i].name);
				v[i].name = NULL;
				v[i].inode = v[i].reg;
			}
		}
	}
	if (r < 0) {
		nox_log(NOX_LOG_WARN, "%s: cannot flush kernel caches: %s",
			sb->id, strerror(-r));
		return;
	}
	barrier_notify(fs, v, n);
}

/* After a command that started at start (NULL: unknown, drop all). */
static void barrier_invalidate(struct fs_sandbox *sb,
			       const struct timespec *start)
{
	struct fs *fs = sb->fs;
	struct fs_inval *v = NULL;
	bool changed_only = start && sb->hooks->inval_changed;
	size_t n = 0;
	int r;

	if (sb->hooks->after_exec)
		sb->hooks->after_exec(sb);
	if (!barrier_notifies(fs))
		return;
	if (changed_only)
		r = fs_table_collect_changed(&fs->table, sb, start, &v, &n);
	else
		r = fs_table_collect(&fs->table, sb, &v, &n);
	if (r < 0 && changed_only) /* out of memory: try the simpler one */
		r = fs_table_collect(&fs->table, sb, &v, &n);
	if (r < 0) {
		nox_log(NOX_LOG_WARN, "%s: cannot invalidate caches: %s",
			sb->id, strerror(-r));
		return;
	}
	barrier_notify(fs, v, n);
}

/*
 * A request that failed: its reason becomes the sandbox's last result
 * (the previous output would be mistaken for this request's) and, with
 * out, the caller's.  Returns code.
 */
static int barrier_fail(struct fs_sandbox *sb, int code, struct nox_err *err,
			struct fs_result **out)
{
	struct fs_result *fr =
	    fs_result_new_error(code, nox_err_str(err, code));

	if (fr)
		fs_sandbox_set_last(sb, fr);
	if (out)
		*out = fr;
	else
		fs_result_unref(fr);
	return code;
}

/*
 * ENOENT from an exec means an unknown sandbox or a missing working
 * directory; the two need different answers (the sandbox is gone: stop;
 * the request is wrong: fix it), so a sandbox that still exists makes it
 * ENOTDIR.  Asked only on this failure path.
 */
static int exec_errno(struct fs_sandbox *sb, const struct nox_exec_req *req,
		      int r)
{
	struct nox_sandbox_info info;
	struct nox_err e2;

	if (r != -ENOENT || !req->workdir)
		return r;
	memset(&info, 0, sizeof(info));
	if (nox_backend_info(sb->fs->be, sb->id, &info, &e2) == 0)
		return -ENOTDIR;
	return r;
}

int fs_barrier_run(struct fs_sandbox *sb, const struct nox_exec_req *req,
		   struct fs_result **out, struct nox_err *err)
{
	struct nox_exec_result res;
	struct fs_result *fr;
	struct timespec start;
	const struct timespec *startp = &start;
	int r;

	if (out)
		*out = NULL;
	/* taken before the writeback: a change the command makes can
	 * never carry an older ctime than this */
	if (clock_gettime(CLOCK_REALTIME, &start) < 0)
		startp = NULL;
	barrier_writeback(sb);
	r = fs_sandbox_flush(sb, err);
	if (r < 0) {
		nox_log(NOX_LOG_WARN, "%s: %s: %s", sb->id,
			req ? "exec barrier" : "sync", nox_err_str(err, r));
		return req ? barrier_fail(sb, r, err, out) : r;
	}
	if (!req)
		return 0;
	memset(&res, 0, sizeof(res));
	nox_err_clear(err);
	r = nox_backend_exec(sb->fs->be, sb->id, req, &res, err);
	if (r < 0)
		r = exec_errno(sb, req, r);
	if (r < 0) {
		nox_log(NOX_LOG_WARN, "%s: exec %s: %s", sb->id, req->argv[0],
			nox_err_str(err, r));
		nox_exec_result_cleanup(&res);
		/* a command that ran changes nothing here, but one that
		 * failed half-way might have: drop caches either way */
		barrier_invalidate(sb, startp);
		return barrier_fail(sb, r, err, out);
	}
	fr = fs_result_new(&res);
	nox_exec_result_cleanup(&res);
	if (!fr) {
		barrier_invalidate(sb, startp);
		nox_err_set(err, ENOMEM, "out of memory");
		return barrier_fail(sb, -ENOMEM, err, out);
	}
	fs_sandbox_set_last(sb, fr);
	barrier_invalidate(sb, startp);
	if (out)
		*out = fr;
	else
		fs_result_unref(fr);
	return 0;
}
