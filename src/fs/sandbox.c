/*
 * sandbox.c - attached sandboxes: registry, references, last results and
 * the calls of the storage hooks.
 *
 * The registry is a short list (sandboxes a user has open in one mount),
 * searched linearly under fs->table.mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "sandbox.h"

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
	fs_table_lock(&fs->table);
	last = fs_sandbox_unref_locked(sb);
	fs_table_unlock(&fs->table);
	if (last)
		fs_sandbox_destroy(sb);
}

/* A registered sandbox of id marked gone (fs_sandbox_gone), or NULL. */
static struct fs_sandbox *find_gone_locked(struct fs *fs, const char *id)
{
	struct fs_sandbox *sb;

	for (sb = fs->sandboxes; sb; sb = sb->next) {
		if (sb->gone && strcmp(sb->id, id) == 0)
			return sb;
	}
	return NULL;
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

	fs_table_lock(&fs->table);
	sb = find_locked(fs, id);
	if (sb)
		fs_sandbox_ref_locked(sb);
	fs_table_unlock(&fs->table);
	return sb;
}

void fs_sandbox_gone(struct fs_sandbox *sb)
{
	/* the layer first: until sb is marked, an attach of the id finds
	 * sb itself, never a new sandbox on the old one's state */
	if (sb->hooks && sb->hooks->gone)
		sb->hooks->gone(sb);
	fs_table_lock(&sb->fs->table);
	sb->gone = true;
	fs_table_unlock(&sb->fs->table);
}

void fs_sandbox_detach(struct fs_sandbox *sb)
{
	bool last = false;

	fs_sandbox_gone(sb);
	fs_table_lock(&sb->fs->table);
	if (registry_unlink_locked(sb))
		last = --sb->refs == 0;
	fs_table_unlock(&sb->fs->table);
	if (last)
		fs_sandbox_destroy(sb);
}

void fs_sandbox_detach_all(struct fs *fs)
{
	struct fs_sandbox *sb;

	for (;;) {
		bool last;

		fs_table_lock(&fs->table);
		sb = fs->sandboxes;
		if (!sb) {
			fs_table_unlock(&fs->table);
			return;
		}
		fs->sandboxes = sb->next;
		sb->next = NULL;
		last = --sb->refs == 0;
		fs_table_unlock(&fs->table);
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

	fs_table_lock(&fs->table);
	other = find_locked(fs, id);
	if (other) {
		/* another thread attached it meanwhile: use that one */
		fs_sandbox_ref_locked(other);
		fs_table_unlock(&fs->table);
		fs_sandbox_destroy(sb);
		*out = other;
		return 0;
	}
	sb->serial = ++fs->sb_serial;
	sb->refs = 2; /* the caller's and the registry's */
	clock_gettime(CLOCK_MONOTONIC, &sb->checked);
	sb->next = fs->sandboxes;
	fs->sandboxes = sb;
	/* an earlier one of this id marked gone but left registered: the
	 * registry lets it go now (its nodes keep their references) */
	while ((other = find_gone_locked(fs, id)) != NULL) {
		(void)registry_unlink_locked(other);
		if (--other->refs == 0) {
			fs_table_unlock(&fs->table);
			fs_sandbox_destroy(other);
			fs_table_lock(&fs->table);
		}
	}
	fs_table_unlock(&fs->table);
	*out = sb;
	return 0;
}

void fs_sandbox_fresh(struct fs *fs, const char *id)
{
	struct fs_sandbox *sb;

	if (!fs->hooks || !fs->hooks->fresh)
		return;
	sb = fs_sandbox_find(fs, id);
	if (sb) {
		fs_sandbox_put(sb);
		return;
	}
	fs->hooks->fresh(fs, id);
}

int fs_sandbox_list(struct fs *fs, struct fs_sandbox ***out, size_t *nout)
{
	struct fs_sandbox **v, *sb;
	size_t n = 0, i = 0;

	fs_table_lock(&fs->table);
	for (sb = fs->sandboxes; sb; sb = sb->next)
		n++;
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		fs_table_unlock(&fs->table);
		return -ENOMEM;
	}
	for (sb = fs->sandboxes; sb; sb = sb->next) {
		fs_sandbox_ref_locked(sb);
		v[i++] = sb;
	}
	fs_table_unlock(&fs->table);
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

int fs_sandbox_before_read(struct fs_sandbox *sb, struct fs_node *n, off_t off,
			   size_t size)
{
	if (!sb->hooks->before_read)
		return 0;
	return sb->hooks->before_read(sb, n, off, size);
}

int fs_sandbox_statfs(struct fs_sandbox *sb, struct statvfs *sv)
{
	if (sb->hooks->statfs)
		return sb->hooks->statfs(sb->fs, sb, sv);
	return fstatvfs(sb->root_fd, sv) < 0 ? -errno : 0;
}

void fs_sandbox_attr(struct fs_sandbox *sb, struct stat *st)
{
	if (sb->hooks->attr && S_ISREG(st->st_mode) && st->st_blocks == 0 &&
	    st->st_size > 0)
		sb->hooks->attr(sb, st);
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

void fs_sandbox_op_begin(struct fs_sandbox *sb, struct fs_op *op)
{
	if (sb->hooks->op_begin)
		sb->hooks->op_begin(sb, op);
}

void fs_sandbox_note_op(struct fs_sandbox *sb, struct fs_op *op)
{
	if (sb->hooks->note_op)
		sb->hooks->note_op(sb, op);
}

void fs_sandbox_op_end(struct fs_sandbox *sb, struct fs_op *op)
{
	if (sb->hooks->op_end)
		sb->hooks->op_end(sb, op);
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
