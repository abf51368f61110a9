/*
 * sandbox.c - attached sandboxes: registry, references, results, hooks
 * and the cache invalidation that follows a command.
 *
 * The registry is a short list (sandboxes a user has open in one mount),
 * searched linearly under fs->table.mutex.
 *
 * The exec barrier's kernel half is proportional to what can have
 * changed.  Before a command only files with a write handle (now or since
 * the last barrier) can hold dirty pages, so only those are invalidated.
 * After it, on a backend whose tree the command changes directly
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
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox.h"

/* ---- results -------------------------------------------------------- */

static char *dup_bytes(const char *p, size_t n)
{
	char *c = malloc(n + 1);

	if (!c)
		return NULL;
	if (n)
		memcpy(c, p, n);
	c[n] = '\0';
	return c;
}

struct fs_result *fs_result_new(const struct nox_exec_result *r)
{
	struct fs_result *res = calloc(1, sizeof(*res));
	char *json = NULL;
	size_t jl;

	if (!res)
		return NULL;
	atomic_init(&res->refs, 1);
	res->exit_code = r->exit_code;
	json = nox_v1_exec_result_encode(r);
	if (!json)
		goto fail;
	jl = strlen(json);
	res->json = malloc(jl + 2);
	if (!res->json)
		goto fail;
	memcpy(res->json, json, jl);
	res->json[jl] = '\n';
	res->json[jl + 1] = '\0';
	res->json_len = jl + 1;
	free(json);
	json = NULL;
	res->out = dup_bytes(r->out ? r->out : "", r->out ? r->out_len : 0);
	res->out_len = r->out ? r->out_len : 0;
	res->err = dup_bytes(r->err ? r->err : "", r->err ? r->err_len : 0);
	res->err_len = r->err ? r->err_len : 0;
	if (!res->out || !res->err)
		goto fail;
	snprintf(res->status, sizeof(res->status), "%d\n", r->exit_code);
	res->status_len = strlen(res->status);
	clock_gettime(CLOCK_REALTIME, &res->when);
	return res;
fail:
	free(json);
	fs_result_unref(res);
	return NULL;
}

struct fs_result *fs_result_ref(struct fs_result *r)
{
	if (r)
		atomic_fetch_add(&r->refs, 1);
	return r;
}

void fs_result_unref(struct fs_result *r)
{
	if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	free(r->json);
	free(r->out);
	free(r->err);
	free(r);
}

/* ---- registry and references ---------------------------------------- */

void fs_sandbox_ref_locked(struct fs_sandbox *sb)
{
	sb->refs++;
}

/* true when sb was in the registry (which held a reference). */
static bool registry_unlink_locked(struct fs_sandbox *sb)
{
	struct fs_sandbox **pp = &sb->fs->sandboxes;

	for (; *pp; pp = &(*pp)->next) {
		if (*pp == sb) {
			*pp = sb->next;
			sb->next = NULL;
			return true;
		}
	}
	return false;
}

bool fs_sandbox_unref_locked(struct fs_sandbox *sb)
{
	if (--sb->refs > 0)
		return false;
	(void)registry_unlink_locked(sb);
	return true;
}

void fs_sandbox_destroy(struct fs_sandbox *sb)
{
	if (!sb)
		return;
	if (sb->hooks && sb->hooks->detach)
		sb->hooks->detach(sb);
	if (sb->root_fd >= 0)
		close(sb->root_fd);
	fs_result_unref(sb->last);
	pthread_mutex_destroy(&sb->mutex);
	free(sb);
}

void fs_sandbox_put(struct fs_sandbox *sb)
{
	struct fs *fs;
	bool last;

	if (!sb)
		return;
	fs = sb->fs;
	pthread_mutex_lock(&fs->table.mutex);
	last = fs_sandbox_unref_locked(sb);
	pthread_mutex_unlock(&fs->table.mutex);
	if (last)
		fs_sandbox_destroy(sb);
}

static struct fs_sandbox *find_locked(struct fs *fs, const char *id)
{
	struct fs_sandbox *sb;

	for (sb = fs->sandboxes; sb; sb = sb->next) {
		if (!sb->gone && strcmp(sb->id, id) == 0)
			return sb;
	}
	return NULL;
}

struct fs_sandbox *fs_sandbox_find(struct fs *fs, const char *id)
{
	struct fs_sandbox *sb;

	pthread_mutex_lock(&fs->table.mutex);
	sb = find_locked(fs, id);
	if (sb)
		fs_sandbox_ref_locked(sb);
	pthread_mutex_unlock(&fs->table.mutex);
	return sb;
}

void fs_sandbox_detach(struct fs_sandbox *sb)
{
	bool last = false;

	pthread_mutex_lock(&sb->fs->table.mutex);
	sb->gone = true;
	if (registry_unlink_locked(sb))
		last = --sb->refs == 0;
	pthread_mutex_unlock(&sb->fs->table.mutex);
	if (last)
		fs_sandbox_destroy(sb);
}

void fs_sandbox_detach_all(struct fs *fs)
{
	struct fs_sandbox *sb;

	for (;;) {
		bool last;

		pthread_mutex_lock(&fs->table.mutex);
		sb = fs->sandboxes;
		if (!sb) {
			pthread_mutex_unlock(&fs->table.mutex);
			return;
		}
		fs->sandboxes = sb->next;
		sb->next = NULL;
		last = --sb->refs == 0;
		pthread_mutex_unlock(&fs->table.mutex);
		if (last)
			fs_sandbox_destroy(sb);
	}
}

/* The root directory was removed underneath (sandbox deleted outside). */
static bool root_is_stale(const struct fs_sandbox *sb)
{
	struct stat st;

	if (fstat(sb->root_fd, &st) < 0)
		return true;
	return st.st_nlink == 0;
}

int fs_sandbox_attach(struct fs *fs, const char *id, struct fs_sandbox **out,
		      struct nox_err *err)
{
	struct fs_sandbox *sb, *other;
	int fd;

	sb = fs_sandbox_find(fs, id);
	if (sb) {
		if (!root_is_stale(sb)) {
			*out = sb;
			return 0;
		}
		nox_log(NOX_LOG_INFO, "sandbox %s was replaced; reattaching",
			id);
		fs_sandbox_detach(sb);
		fs_sandbox_put(sb);
	}
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return nox_err_set(err, ENOMEM, "out of memory");
	sb->fs = fs;
	snprintf(sb->id, sizeof(sb->id), "%s", id);
	sb->root_fd = -1;
	sb->hooks = fs->hooks;
	pthread_mutex_init(&sb->mutex, NULL);
	fd = sb->hooks->attach(sb, err);
	if (fd < 0) {
		sb->hooks = NULL;
		fs_sandbox_destroy(sb);
		return fd;
	}
	sb->root_fd = fd;

	pthread_mutex_lock(&fs->table.mutex);
	other = find_locked(fs, id);
	if (other) {
		/* another thread attached it meanwhile: use that one */
		fs_sandbox_ref_locked(other);
		pthread_mutex_unlock(&fs->table.mutex);
		fs_sandbox_destroy(sb);
		*out = other;
		return 0;
	}
	sb->serial = ++fs->sb_serial;
	sb->refs = 2; /* the caller's and the registry's */
	clock_gettime(CLOCK_MONOTONIC, &sb->checked);
	sb->next = fs->sandboxes;
	fs->sandboxes = sb;
	pthread_mutex_unlock(&fs->table.mutex);
	*out = sb;
	return 0;
}

int fs_sandbox_list(struct fs *fs, struct fs_sandbox ***out, size_t *nout)
{
	struct fs_sandbox **v, *sb;
	size_t n = 0, i = 0;

	pthread_mutex_lock(&fs->table.mutex);
	for (sb = fs->sandboxes; sb; sb = sb->next)
		n++;
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		pthread_mutex_unlock(&fs->table.mutex);
		return -ENOMEM;
	}
	for (sb = fs->sandboxes; sb; sb = sb->next) {
		fs_sandbox_ref_locked(sb);
		v[i++] = sb;
	}
	pthread_mutex_unlock(&fs->table.mutex);
	*out = v;
	*nout = n;
	return 0;
}

/* ---- results of the sandbox ----------------------------------------- */

struct fs_result *fs_sandbox_last(struct fs_sandbox *sb)
{
	struct fs_result *r;

	pthread_mutex_lock(&sb->mutex);
	r = fs_result_ref(sb->last);
	pthread_mutex_unlock(&sb->mutex);
	return r;
}

void fs_sandbox_set_last(struct fs_sandbox *sb, struct fs_result *r)
{
	struct fs_result *old;

	fs_result_ref(r);
	pthread_mutex_lock(&sb->mutex);
	old = sb->last;
	sb->last = r;
	pthread_mutex_unlock(&sb->mutex);
	fs_result_unref(old);
}

/* ---- hooks ---------------------------------------------------------- */

int fs_sandbox_flush(struct fs_sandbox *sb, struct nox_err *err)
{
	if (!sb->hooks->flush)
		return 0;
	return sb->hooks->flush(sb, err);
}

int fs_sandbox_before_dir(struct fs_sandbox *sb, struct fs_node *dir)
{
	if (!sb->hooks->before_dir)
		return 0;
	return sb->hooks->before_dir(sb, dir);
}

int fs_sandbox_before_open(struct fs_sandbox *sb, struct fs_node *n, int flags)
{
	if (!sb->hooks->before_open)
		return 0;
	return sb->hooks->before_open(sb, n, flags);
}

int fs_sandbox_before_read(struct fs_sandbox *sb, struct fs_node *n)
{
	if (!sb->hooks->before_read)
		return 0;
	return sb->hooks->before_read(sb, n);
}

void fs_sandbox_note_write(struct fs_sandbox *sb, struct fs_node *n)
{
	if (sb->hooks->note_write)
		sb->hooks->note_write(sb, n);
}

int fs_sandbox_on_close(struct fs_sandbox *sb, struct fs_node *n, int fd,
			bool fsync)
{
	if (!sb->hooks->on_close)
		return 0;
	return sb->hooks->on_close(sb, n, fd, fsync);
}

/* The workspace path of name in dir (name NULL: of dir itself). */
static int op_path(struct fs_sandbox *sb, struct fs_node *dir, const char *name,
		   char *buf, size_t size)
{
	size_t dl;
	int r = fs_node_path(&sb->fs->table, dir, buf, size);

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

/* op->path and op->path2, once, for a layer that sends by path. */
static void op_paths(struct fs_sandbox *sb, struct fs_op *op)
{
	int r;

	op->path[0] = op->path2[0] = '\0';
	if (op->kind == FS_OP_SETATTR || op->kind == FS_OP_LINK)
		r = op_path(sb, op->node, NULL, op->path, sizeof(op->path));
	else
		r = op_path(sb, op->dir, op->name, op->path, sizeof(op->path));
	if (r == 0 && (op->kind == FS_OP_RENAME || op->kind == FS_OP_LINK))
		r = op_path(sb, op->dir2, op->name2, op->path2,
			    sizeof(op->path2));
	op->path_err = r;
}

void fs_sandbox_op_begin(struct fs_sandbox *sb, struct fs_op *op)
{
	if (sb->hooks->op_begin)
		sb->hooks->op_begin(sb, op);
}

void fs_sandbox_note_op(struct fs_sandbox *sb, struct fs_op *op)
{
	if (!sb->hooks->note_op)
		return;
	if (sb->hooks->by_path)
		op_paths(sb, op);
	sb->hooks->note_op(sb, op);
}

void fs_sandbox_op_end(struct fs_sandbox *sb, struct fs_op *op)
{
	if (sb->hooks->op_end)
		sb->hooks->op_end(sb, op);
}

/*
 * When the current thread's exec started (fs_sandbox_writeback, called
 * right before the command by the exec path), for the invalidation that
 * follows it on the same thread.  Concurrent execs run on different
 * threads, so each gets its own start; an invalidation without one for
 * its sandbox drops everything.
 */
static _Thread_local struct {
	const struct fs_sandbox *sb;
	unsigned long serial;
	struct timespec start;
} exec_clock;

static void exec_clock_start(struct fs_sandbox *sb)
{
	if (clock_gettime(CLOCK_REALTIME, &exec_clock.start) < 0) {
		exec_clock.sb = NULL;
		return;
	}
	exec_clock.sb = sb;
	exec_clock.serial = sb->serial;
}

/* The start of this thread's exec on sb (consumed), or false. */
static bool exec_clock_take(struct fs_sandbox *sb, struct timespec *start)
{
	bool ok = exec_clock.sb == sb && exec_clock.serial == sb->serial;

	exec_clock.sb = NULL;
	if (ok)
		*start = exec_clock.start;
	return ok;
}

/* Sends the kernel the invalidations in v (and frees v). */
static void notify_all(struct fs *fs, struct fs_inval *v, size_t n)
{
	size_t i;
	int r;

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
		free(v[i].name);
	}
	free(v);
}

/*
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
void fs_sandbox_invalidate(struct fs_sandbox *sb)
{
	struct fs *fs = sb->fs;
	struct fs_inval *v = NULL;
	struct timespec start;
	bool changed_only;
	size_t n = 0;
	int r;

	changed_only = exec_clock_take(sb, &start) && sb->hooks->inval_changed;
	if (sb->hooks->after_exec)
		sb->hooks->after_exec(sb);
	if (!fs->se || fs->no_notify)
		return;
	if (changed_only)
		r = fs_table_collect_changed(&fs->table, sb, &start, &v, &n);
	else
		r = fs_table_collect(&fs->table, sb, &v, &n);
	if (r < 0 && changed_only) /* out of memory: try the simpler one */
		r = fs_table_collect(&fs->table, sb, &v, &n);
	if (r < 0) {
		nox_log(NOX_LOG_WARN, "%s: cannot invalidate caches: %s",
			sb->id, strerror(-r));
		return;
	}
	notify_all(fs, v, n);
}

/*
 * A node is in the write-back set from its first write open until the
 * first barrier after its last write handle was released: only there can
 * the kernel hold dirty pages (no writeback cache; a shared writable
 * mapping holds its file, hence its FUSE handle, until munmap, which
 * writes the pages back before RELEASE).
 */
void fs_sandbox_writeback(struct fs_sandbox *sb)
{
	struct fs *fs = sb->fs;
	struct fs_inval *v = NULL;
	size_t n = 0;
	int r;

	exec_clock_start(sb);
	if (!fs->se || fs->no_notify)
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
	notify_all(fs, v, n);
}

/* ---- local hooks ---------------------------------------------------- */

static int local_attach(struct fs_sandbox *sb, struct nox_err *err)
{
	return nox_backend_workspace_fd(sb->fs->be, sb->id, err);
}

const struct fs_sandbox_hooks fs_local_hooks = {
    .name = "local",
    .inval_changed = true,
    .attach = local_attach,
};
