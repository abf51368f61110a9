/*
 * cache.c - the http cache layer's hooks (see cache.h for the layout,
 * docs/cache.md for the guarantees): attach and detach of a sandbox's
 * cache, the journal's appends (metadata operations by the paths the
 * core built, snapshots of closed files), the dirty set with the paths
 * of files written and not yet closed (the exec barrier's snapshot), and
 * the replay of journals at mount.  Listings and downloads are in
 * cache_list.c, the drain in cache_drain.c.
 *
 * Limits: uid/gid changes are not sent (the server's files belong to the
 * sandbox user); hard links are sent as links but a later upload of one
 * name replaces that name only.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/fs.h>

#include <nox/nox.h>

#include "cache_i.h"

/* One lock per daemon on CACHE/<host>/lock (the process keeps it). */
static pthread_mutex_t lock_mu = PTHREAD_MUTEX_INITIALIZER;
static int lock_fd = -1;

/* ---- locks ------------------------------------------------------------ */

#ifndef NDEBUG
/* Debug builds: the layer's mutexes this thread holds, for the order
 * check (cache_i.h); no state of an operation lives here. */
static _Thread_local unsigned lock_held;
#endif

static pthread_mutex_t *lock_mutex(struct cache *c, enum cache_lock l)
{
	switch (l) {
	case CACHE_OP_MU:
		return &c->op_mu;
	case CACHE_DRAIN_MU:
		return &c->drain_mu;
	default:
		return &c->mu;
	}
}

void cache_lock(struct cache *c, enum cache_lock l)
{
#ifndef NDEBUG
	/* the core's table.mutex is a leaf: never held here */
	assert(!fs_table_held());
	/* op_mu and drain_mu come first and never together; mu last */
	if (l == CACHE_MU)
		assert(!(lock_held & CACHE_MU));
	else
		assert(
		    !(lock_held & (CACHE_OP_MU | CACHE_DRAIN_MU | CACHE_MU)));
#endif
	pthread_mutex_lock(lock_mutex(c, l));
#ifndef NDEBUG
	lock_held |= (unsigned)l;
#endif
}

void cache_unlock(struct cache *c, enum cache_lock l)
{
#ifndef NDEBUG
	assert(lock_held & (unsigned)l);
	lock_held &= ~(unsigned)l;
#endif
	pthread_mutex_unlock(lock_mutex(c, l));
}

void cache_wait(struct cache *c)
{
#ifndef NDEBUG
	/* only mu is released while waiting: holding another would block
	 * its holders' callers for as long */
	assert(lock_held == CACHE_MU);
#endif
	pthread_cond_wait(&c->cond, &c->mu);
}

/* ---- cache directory ------------------------------------------------ */

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t i, n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		buf[i] = path[i];
	}
	return 0;
}

/* "host_port" of the server URL, only [A-Za-z0-9._-]. */
static void host_key(const char *url, char *out, size_t size)
{
	const char *p = url ? strstr(url, "://") : NULL;
	size_t n = 0;

	p = p ? p + 3 : (url ? url : "default");
	for (; *p && *p != '/' && *p != '?' && *p != '#' && n + 1 < size; p++) {
		char c = *p;

		if (c == ':')
			c = '_';
		else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '.' || c == '-'))
			c = '_';
		out[n++] = c;
	}
	if (n == 0 || (n == 1 && out[0] == '.') ||
	    (n == 2 && out[0] == '.' && out[1] == '.'))
		n = (size_t)snprintf(out, size, "default");
	out[n] = '\0';
}

/* The cache base directory (CACHE/<host>), malloc'd. */
static char *base_dir(struct fs *fs)
{
	const char *url =
	    fs->opts.url ? fs->opts.url : getenv("NOXRUNNER_BASE_URL");
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char key[128], buf[PATH_MAX];
	char *dir;
	int n;

	host_key(url, key, sizeof(key));
	if (fs->opts.cache_dir)
		n = snprintf(buf, sizeof(buf), "%s/%s", fs->opts.cache_dir,
			     key);
	else if (xdg && *xdg == '/')
		n = snprintf(buf, sizeof(buf), "%s/noxfs/%s", xdg, key);
	else if (geteuid() == 0 &&
		 !(home && *home == '/' && strcmp(home, "/root") != 0))
		n = snprintf(buf, sizeof(buf), "/var/cache/noxfs/%s", key);
	else if (home && *home == '/')
		n = snprintf(buf, sizeof(buf), "%s/.cache/noxfs/%s", home, key);
	else
		n = snprintf(buf, sizeof(buf), "/tmp/noxfs-cache-%u/%s",
			     (unsigned)geteuid(), key);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return NULL;
	dir = realpath(buf, NULL);
	if (dir)
		return dir;
	return strdup(buf);
}

char *cache_base_dir(struct fs *fs)
{
	return base_dir(fs);
}

static int take_lock(const char *base, struct nox_err *err)
{
	char path[PATH_MAX];
	int fd, r = 0;

	pthread_mutex_lock(&lock_mu);
	if (lock_fd >= 0)
		goto out;
	snprintf(path, sizeof(path), "%s/lock", base);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = nox_err_set(err, errno, "cache lock %s: %s", path,
				strerror(errno));
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = nox_err_set(err, EBUSY,
				"cache dir %s is in use by another noxfs "
				"(use another -o cache_dir)",
				base);
		close(fd);
		goto out;
	}
	lock_fd = fd;
out:
	pthread_mutex_unlock(&lock_mu);
	return r;
}

/* ---- small helpers -------------------------------------------------- */

/* With mu: ino's entry in the dirty set, or NULL. */
static struct cache_dirty *dirty_find(struct cache *c, ino_t ino)
{
	size_t i;

	for (i = 0; i < c->ndirty; i++) {
		if (c->dirty[i].ino == ino)
			return &c->dirty[i];
	}
	return NULL;
}

bool cache_dirty_has(struct cache *c, ino_t ino)
{
	return dirty_find(c, ino) != NULL;
}

/* With mu: adds ino with path (taken over, may be NULL); true if new. */
static bool dirty_put(struct cache *c, ino_t ino, char *path)
{
	struct cache_dirty *d = dirty_find(c, ino);

	if (d) {
		if (!d->path) {
			d->path = path;
			path = NULL;
		}
		free(path);
		return false;
	}
	if (c->ndirty == c->capdirty) {
		size_t nc = c->capdirty ? c->capdirty * 2 : 16;
		struct cache_dirty *nv = realloc(c->dirty, nc * sizeof(*nv));

		if (!nv) {
			free(path);
			return false;
		}
		c->dirty = nv;
		c->capdirty = nc;
	}
	c->dirty[c->ndirty].ino = ino;
	c->dirty[c->ndirty].path = path;
	c->ndirty++;
	return true;
}

bool cache_dirty_add(struct cache *c, ino_t ino)
{
	return dirty_put(c, ino, NULL);
}

/* With mu: removes ino; its kept path goes to *path (or is freed). */
static bool dirty_del(struct cache *c, ino_t ino, char **path)
{
	struct cache_dirty *d = dirty_find(c, ino);

	if (path)
		*path = NULL;
	if (!d)
		return false;
	if (path)
		*path = d->path;
	else
		free(d->path);
	*d = c->dirty[--c->ndirty];
	return true;
}

/*
 * With mu, after a rename of from to to (exchange: both ways) or an
 * unlink of from (to NULL): the kept paths follow.  from "": unknown
 * names changed, every kept path is dropped.  A name that went
 * (unlinked, replaced) leaves its file's path unknown.
 */
static void dirty_moved_locked(struct cache *c, const char *from,
			       const char *to, bool exchange)
{
	size_t fl = strlen(from), tl = to ? strlen(to) : 0, i;

	c->names_gen++;
	for (i = 0; i < c->ndirty; i++) {
		struct cache_dirty *d = &c->dirty[i];
		const char *old = NULL, *rest = NULL, *other;
		size_t ol, rl;
		char *np;

		if (!d->path)
			continue;
		if (!*from) {
			/* which names moved is not known: all look again */
			free(d->path);
			d->path = NULL;
			continue;
		}
		if (strncmp(d->path, from, fl) == 0 &&
		    (d->path[fl] == '\0' || d->path[fl] == '/')) {
			old = from;
			rest = d->path + fl;
		} else if (to && strncmp(d->path, to, tl) == 0 &&
			   (d->path[tl] == '\0' || d->path[tl] == '/')) {
			old = to;
			rest = d->path + tl;
		}
		if (!old)
			continue;
		if (!to || (old == to && !exchange)) {
			/* unlinked, or replaced by the rename */
			free(d->path);
			d->path = NULL;
			continue;
		}
		other = old == from ? to : from;
		ol = strlen(other);
		rl = strlen(rest);
		np = malloc(ol + rl + 1);
		if (np) {
			memcpy(np, other, ol);
			memcpy(np + ol, rest, rl + 1);
		}
		free(d->path);
		d->path = np;
	}
}

/*
 * Makes sure the dirty entry of n (if any) knows its path.  Called with
 * no lock: the core's names are read outside the layer's locks, and a
 * rename or unlink journaled meanwhile (names_gen) makes it try again.
 */
static void dirty_name(struct cache *c, struct fs_node *n)
{
	char path[PATH_MAX];
	int tries;

	for (tries = 0; tries < 8; tries++) {
		struct cache_dirty *d;
		unsigned long gen;
		bool done;

		cache_lock(c, CACHE_MU);
		d = dirty_find(c, n->sino);
		done = !d || d->path;
		gen = c->names_gen;
		cache_unlock(c, CACHE_MU);
		if (done)
			return;
		if (cache_node_path(c->sb, n, path, sizeof(path)) < 0 || !*path)
			return;
		cache_lock(c, CACHE_MU);
		d = dirty_find(c, n->sino);
		done = !d || d->path || gen == c->names_gen;
		if (d && !d->path && gen == c->names_gen)
			d->path = strdup(path);
		cache_unlock(c, CACHE_MU);
		if (done)
			return;
	}
}

/* With mu: ino has local changes the server does not have yet. */
bool cache_busy_locked(struct cache *c, ino_t ino)
{
	const struct jent *e;

	if (cache_dirty_has(c, ino))
		return true;
	for (e = journal_first(&c->jr); e; e = journal_next(e)) {
		if (e->ino == ino)
			return true;
	}
	return false;
}

/* With mu: remembers path for the listing in flight. */
void cache_touch_locked(struct cache *c, const char *path)
{
	char *d;

	if (!c->collect || !path || !*path)
		return;
	if (c->ntouched == c->captouched) {
		size_t nc = c->captouched ? c->captouched * 2 : 64;
		char **nv = realloc(c->touched, nc * sizeof(*nv));

		if (!nv)
			goto oom;
		c->touched = nv;
		c->captouched = nc;
	}
	d = strdup(path);
	if (!d)
		goto oom;
	c->touched[c->ntouched++] = d;
	return;
oom:
	/* cannot tell which paths: the listing must not be merged */
	c->collect = false;
}

void cache_touched_clear_locked(struct cache *c)
{
	size_t i;

	for (i = 0; i < c->ntouched; i++)
		free(c->touched[i]);
	free(c->touched);
	c->touched = NULL;
	c->ntouched = c->captouched = 0;
}

int cache_node_path(struct fs_sandbox *sb, struct fs_node *n, char *buf,
		    size_t size)
{
	return fs_node_path(&sb->fs->table, n, buf, size);
}

/* A new empty directory CACHE/.../tmp/PREFIX-N; its fd, name in buf. */
int cache_tmp_dir(struct cache *c, const char *prefix, char *buf, size_t size)
{
	uint64_t n;
	int fd;

	cache_lock(c, CACHE_MU);
	n = ++c->tmp_seq;
	cache_unlock(c, CACHE_MU);
	snprintf(buf, size, "tmp/%s-%" PRIu64, prefix, n);
	(void)mkdirat(c->dir_fd, "tmp", 0700);
	{
		int pfd =
		    openat(c->dir_fd, "tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (pfd >= 0) {
			(void)tree_remove(pfd, buf + 4);
			close(pfd);
		}
	}
	if (mkdirat(c->dir_fd, buf, 0700) < 0)
		return -errno;
	fd = openat(c->dir_fd, buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

void cache_tmp_dir_remove(struct cache *c, const char *name, int fd)
{
	int pfd;

	if (fd >= 0)
		close(fd);
	pfd = openat(c->dir_fd, "tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pfd >= 0) {
		(void)tree_remove(pfd, name + 4);
		close(pfd);
	}
}

/* An unlinked temporary file in the cache dir (O_TMPFILE or fallback). */
int cache_tmp_file(struct cache *c)
{
	char name[64];
	uint64_t n;
	int fd;

	(void)mkdirat(c->dir_fd, "tmp", 0700);
	fd = openat(c->dir_fd, "tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	cache_lock(c, CACHE_MU);
	n = ++c->tmp_seq;
	cache_unlock(c, CACHE_MU);
	snprintf(name, sizeof(name), "tmp/f-%" PRIu64, n);
	fd = openat(c->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -errno;
	(void)unlinkat(c->dir_fd, name, 0);
	return fd;
}

/*
 * Saves the manifest; unless force, at most every MANIFEST_SAVE_MS: it is
 * a hint (a stale one costs downloads, never data: the journal is the
 * record of what the server lacks), and rewriting it after each of
 * thousands of uploads made a tar x quadratic.
 */
void cache_save_manifest_locked(struct cache *c, bool force)
{
	struct timespec now;
	int r;

	if (!c->man_dirty)
		return;
	mono_now(&now);
	if (!force && c->saved_once &&
	    ts_diff(&now, &c->saved_at) * 1000 < MANIFEST_SAVE_MS)
		return;
	c->saved_at = now;
	c->saved_once = true;
	r = manifest_save(&c->man, c->dir_fd, STATE_NAME);
	if (r < 0)
		nox_log(NOX_LOG_WARN, "%s: saving the cache manifest: %s",
			c->sb->id, strerror(-r));
	else
		c->man_dirty = false;
}

/* The server no longer has the sandbox: say so once, keep the data. */
void cache_mark_gone(struct cache *c)
{
	bool first;

	cache_lock(c, CACHE_MU);
	first = !c->gone;
	c->gone = true;
	pthread_cond_broadcast(&c->cond);
	cache_unlock(c, CACHE_MU);
	if (!first)
		return;
	nox_log(NOX_LOG_WARN,
		"sandbox %s no longer exists on the server; %zu unsent "
		"operations are kept (below %.*s/lost/)",
		c->sb->id, journal_count(&c->jr),
		(int)(strrchr(c->dir, '/') ? strrchr(c->dir, '/') - c->dir
					   : (ptrdiff_t)strlen(c->dir)),
		c->dir);
	/* not from the flusher: that could drop the last reference and
	 * join the flusher from itself; it only marks the sandbox gone
	 * (its cache moves aside all the same), and the next attach of
	 * the id drops it from the registry */
	if (!c->thr_started || !pthread_equal(pthread_self(), c->thr))
		fs_sandbox_detach(c->sb);
	else
		fs_sandbox_gone(c->sb);
}

/* r from a call about the sandbox: -ENOENT means it is gone. */
int cache_check_gone(struct cache *c, int r)
{
	if (r == -ENOENT) {
		cache_mark_gone(c);
		return -ENOENT;
	}
	return r;
}

/* ---- journal appends ------------------------------------------------ */

/* Links e (written) and wakes the flusher. */
static void append_locked(struct cache *c, struct jent *e)
{
	if (!journal_first(&c->jr))
		mono_now(&c->pending_since);
	cache_touch_locked(c, e->path);
	if (e->op == J_RENAME || e->op == J_LINK)
		cache_touch_locked(c, e->path2);
	journal_link(&c->jr, e);
	c->jgen++;
	pthread_cond_broadcast(&c->cond);
}

static int append(struct cache *c, struct jent *e, int data_fd,
		  struct nox_err *err)
{
	/* default mode: sent before the call returns, so written to disk
	 * only if that fails (persist_all_locked).  Write-back: on disk at
	 * once (a SIGKILL loses nothing), fsynced only when the drain fails
	 * or at unmount: an fsync per entry made a burst slower than the
	 * default mode, and the entry leaves within the delay anyway */
	int r = c->writeback ? journal_write(&c->jr, e, data_fd, false, err)
			     : journal_write_lazy(&c->jr, e, data_fd, err);

	if (r < 0) {
		journal_entry_free(e);
		return r;
	}
	cache_lock(c, CACHE_MU);
	append_locked(c, e);
	cache_unlock(c, CACHE_MU);
	return 0;
}

/*
 * Journals an upload of path from fd, open on the file as it is now (st:
 * its fstat), marked dirty until the server has it; its sequence number
 * in *seq (NULL: not wanted).  Closes fd.
 */
static int upload_entry(struct cache *c, const char *path, int fd,
			const struct stat *st, uint64_t *seq,
			struct nox_err *err)
{
	struct jent *e = journal_entry_new(&c->jr, J_UPLOAD, path, NULL);
	int r;

	if (!e) {
		close(fd);
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	e->mode = st->st_mode & 07777;
	e->mtime_ns = ts_ns(&st->st_mtim);
	e->ino = st->st_ino;
	e->marked = true;
	if (seq)
		*seq = e->seq;
	r = append(c, e, fd, err);
	close(fd);
	return r;
}

/* Journals an upload of tree file n (path), from its current content. */
static int snapshot(struct cache *c, struct fs_node *n, const char *path,
		    uint64_t *seq, struct nox_err *err)
{
	char proc[64];
	struct stat st;
	int fd, r;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", n->fd);
	fd = open(proc, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = nox_err_set(err, errno, "snapshot of %s: %s", path,
				strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	return upload_entry(c, path, fd, &st, seq, err);
}

/* ---- finding tree files by inode (replay, flush) -------------------- */

struct ino_path {
	ino_t ino;
	char *path; /* malloc'd or NULL */
	bool walk;  /* looked for by the walk */
};

struct find_inos {
	struct ino_path *v;
	size_t n;
};

/* tree_walk's visit: every v[i] of that inode not found yet gets path. */
static int find_inos_visit(const char *path, ino_t ino, void *ud)
{
	struct find_inos *f = ud;
	size_t i;

	for (i = 0; i < f->n; i++) {
		if (f->v[i].ino == ino && !f->v[i].path)
			f->v[i].path = strdup(path);
	}
	return 0;
}

/*
 * Journals an upload of tree file path from its current content, if it
 * is still inode ino: 0, 1 (not that file, or gone), or <0.
 */
static int upload_ino(struct cache *c, const char *path, ino_t ino,
		      struct nox_err *err)
{
	const char *base;
	struct stat st;
	int pfd, fd;

	if (fdio_parent(c->tree_fd, path, &pfd, &base) < 0)
		return 1;
	fd = openat(pfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	close(pfd);
	if (fd < 0)
		return 1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_ino != ino) {
		close(fd);
		return 1;
	}
	return upload_entry(c, path, fd, &st, NULL, err);
}

/*
 * With op_mu (or before the cache is shared): journals uploads of the
 * tree files v[0..n) (current content), each by
 * the path it came with; those without one (replay: only inode numbers
 * survive a crash) or whose path no longer names them are found by a
 * walk of the tree.  Afterwards v[i].path is NULL for a file not found.
 */
static int upload_inodes(struct cache *c, struct ino_path *v, size_t n,
			 struct nox_err *err)
{
	struct find_inos f = {.v = v, .n = n};
	size_t i, missing = 0;
	int r;

	for (i = 0; i < n; i++) {
		if (v[i].path) {
			r = upload_ino(c, v[i].path, v[i].ino, err);
			if (r < 0)
				return r;
			if (r == 0)
				continue;
			free(v[i].path);
			v[i].path = NULL;
		}
		v[i].walk = true;
		missing++;
	}
	if (missing == 0)
		return 0;
	c->walks++;
	nox_log(NOX_LOG_DEBUG, "%s: %zu files by inode: walking the tree",
		c->sb->id, missing);
	(void)tree_walk(c->tree_fd, find_inos_visit, &f);
	for (i = 0; i < n; i++) {
		if (!v[i].walk || !v[i].path)
			continue;
		r = upload_ino(c, v[i].path, v[i].ino, err);
		if (r < 0)
			return r;
	}
	return 0;
}

struct dirty_list {
	struct ino_path *v;
	size_t n, cap;
};

/* Adds ino with path (taken over, may be NULL). */
static void dirty_list_add(struct dirty_list *l, ino_t ino, char *path)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		struct ino_path *nv = realloc(l->v, nc * sizeof(*nv));

		if (!nv) {
			free(path);
			return;
		}
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n].ino = ino;
	l->v[l->n].path = path;
	l->v[l->n].walk = false;
	l->n++;
}

static void dirty_cb(ino_t ino, void *ud)
{
	dirty_list_add(ud, ino, NULL);
}

static void dirty_list_free(struct dirty_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
}

/*
 * Open files written and not closed: journal their current content (the
 * exec barrier), by the paths kept with them.  They stay marked: their
 * close journals them again, so writes after this snapshot are not lost.
 * Under op_mu, so each path is the file's name in the journal's order.
 */
static int snapshot_dirty(struct cache *c, struct nox_err *err)
{
	struct dirty_list l = {0};
	size_t i;
	int r;

	cache_lock(c, CACHE_OP_MU);
	cache_lock(c, CACHE_MU);
	for (i = 0; i < c->ndirty; i++) {
		const char *p = c->dirty[i].path;

		dirty_list_add(&l, c->dirty[i].ino, p ? strdup(p) : NULL);
	}
	cache_unlock(c, CACHE_MU);
	r = l.n ? upload_inodes(c, l.v, l.n, err) : 0;
	cache_unlock(c, CACHE_OP_MU);
	dirty_list_free(&l);
	return r;
}

/* ---- hooks ---------------------------------------------------------- */

static void cache_free(struct cache *c)
{
	if (!c)
		return;
	cache_lock(c, CACHE_MU);
	cache_list_fetch_cleanup_locked(c);
	cache_unlock(c, CACHE_MU);
	manifest_cleanup(&c->man);
	journal_close(&c->jr);
	if (c->tree_fd >= 0)
		close(c->tree_fd);
	if (c->dir_fd >= 0)
		close(c->dir_fd);
	pthread_cond_destroy(&c->cond);
	if (c->batch_fd >= 0)
		close(c->batch_fd);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->op_mu);
	pthread_mutex_destroy(&c->drain_mu);
	while (c->ndirty)
		dirty_del(c, c->dirty[0].ino, NULL);
	free(c->dirty);
	free(c->moved);
	free(c->dir);
	free(c);
}

/* CACHE/<host>, made (mode 0700) and locked for this daemon, in *out
 * (malloc'd). */
static int cache_base(struct fs *fs, char **out, struct nox_err *err)
{
	struct stat st;
	char *base;
	int r;

	base = base_dir(fs);
	if (!base)
		return nox_err_set(err, ENAMETOOLONG, "cache dir too long");
	r = mkdir_p(base, 0700);
	if (r < 0) {
		nox_err_set(err, r, "cache dir %s: %s", base, strerror(-r));
		free(base);
		return r;
	}
	/* it holds the sandboxes' files: only its owner gets in, also when
	 * something else made it first */
	if (stat(base, &st) == 0 && st.st_uid == geteuid() &&
	    (st.st_mode & 077) && chmod(base, 0700) == 0)
		nox_log(NOX_LOG_INFO, "cache dir %s: mode set to 0700", base);
	r = take_lock(base, err);
	if (r < 0) {
		free(base);
		return r;
	}
	*out = base;
	return 0;
}

/* A new cache for sb in directory dir (not yet opened); NULL: ENOMEM. */
static struct cache *cache_new(struct fs_sandbox *sb, const char *dir)
{
	struct fs *fs = sb->fs;
	struct cache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->sb = sb;
	c->be = fs->be;
	c->dir_fd = c->tree_fd = c->batch_fd = -1;
	journal_init(&c->jr);
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->op_mu, NULL);
	pthread_mutex_init(&c->drain_mu, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->part_size = PART_SIZE;
	c->writeback = fs->opts.writeback_delay > 0;
	c->delay_ms = fs->opts.writeback_delay;
	c->list_ttl = fs->opts.attr_timeout > 1.0 ? fs->opts.attr_timeout : 1.0;
	c->op_timeout = fs->opts.op_timeout > 0 ? fs->opts.op_timeout : 10;
	c->ext = nox_backend_has(fs->be, NOX_OP_RENAME);
	c->batch = c->ext && nox_backend_has(fs->be, NOX_OP_BATCH);
	c->dir = strdup(dir);
	if (manifest_init(&c->man) < 0 || !c->dir) {
		cache_free(c);
		return NULL;
	}
	return c;
}

/* Opens c->dir: its tree, its journal (loaded), its manifest. */
static int cache_open(struct cache *c, struct nox_err *err)
{
	int r, jfd, fd;

	if (mkdir(c->dir, 0700) < 0 && errno != EEXIST)
		return nox_err_set(err, errno, "cache dir %s: %s", c->dir,
				   strerror(errno));
	c->dir_fd =
	    open(c->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (c->dir_fd < 0)
		return nox_err_set(err, errno, "cache dir %s: %s", c->dir,
				   strerror(errno));
	(void)mkdirat(c->dir_fd, "tree", 0755);
	(void)mkdirat(c->dir_fd, "journal", 0700);
	fd = openat(c->dir_fd, "tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		(void)tree_remove(c->dir_fd, "tmp");
	}
	c->tree_fd = openat(c->dir_fd, "tree",
			    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	jfd = openat(c->dir_fd, "journal",
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (c->tree_fd < 0 || jfd < 0) {
		r = nox_err_set(err, errno, "cache dir %s: %s", c->dir,
				strerror(errno));
		if (jfd >= 0)
			close(jfd);
		return r;
	}
	r = journal_open(&c->jr, jfd, err);
	if (r < 0)
		return r;
	/* now, so the descriptor is there from the start (or retried) */
	c->batch_fd = cache_drain_batch_open(c);
	if (c->batch_fd < 0)
		c->batch_fd = -1;
	r = manifest_load(&c->man, c->dir_fd, STATE_NAME);
	if (r < 0)
		nox_log(NOX_LOG_WARN, "%s: cache manifest: %s", c->sb->id,
			strerror(-r));
	c->have_manifest = c->man.count > 0;
	return 0;
}

/* true when the journal holds an upload of cache tree inode ino. */
static bool upload_journaled(struct cache *c, ino_t ino)
{
	const struct jent *e;
	bool found = false;

	cache_lock(c, CACHE_MU);
	for (e = journal_first(&c->jr); e && !found; e = journal_next(e))
		found = e->op == J_UPLOAD && e->ino == ino;
	cache_unlock(c, CACHE_MU);
	return found;
}

/*
 * What the last daemon left: files written but never closed before a
 * crash are uploaded too, then the journal is replayed.  -ENOENT: the
 * server no longer has the sandbox.
 */
static int cache_recover(struct cache *c, struct nox_err *err)
{
	struct dirty_list dl = {0};
	struct nox_err derr;
	int r;

	(void)journal_dirty_each(&c->jr, dirty_cb, &dl);
	if (dl.n) {
		size_t i, open = 0;

		/* a marker stays until the server confirmed the upload, so a
		 * file closed while the server was unreachable is marked too,
		 * its close's snapshot journaled: only a file with no upload
		 * journaled was open for writing (sent again all the same, in
		 * case it was written after that close) */
		for (i = 0; i < dl.n; i++) {
			if (!upload_journaled(c, dl.v[i].ino))
				open++;
		}
		if (open)
			nox_log(NOX_LOG_INFO,
				"%s: %zu %s open for writing when noxfs "
				"stopped; uploading %s",
				c->sb->id, open,
				open == 1 ? "file was" : "files were",
				open == 1 ? "it" : "them");
		/* their markers go once the server confirmed them; a
		 * marked file no longer in the tree has nothing to send */
		(void)upload_inodes(c, dl.v, dl.n, err);
		for (i = 0; i < dl.n; i++) {
			if (!dl.v[i].path)
				journal_clear_dirty(&c->jr, dl.v[i].ino);
		}
	}
	dirty_list_free(&dl);
	if (!journal_first(&c->jr))
		return 0;
	nox_log(NOX_LOG_INFO, "%s: replaying %zu journaled operations",
		c->sb->id, journal_count(&c->jr));
	nox_err_clear(&derr);
	r = cache_drain(c, UINT64_MAX, &derr);
	return r == -ENOENT ? r : 0;
}

/*
 * Flusher threads start only once the daemon has forked (fs_http_start):
 * a sandbox attached before (the session's, a replay's) would otherwise
 * have its flusher in the parent only, and the daemon would inherit a
 * condition variable with a waiter that does not exist in it, on which
 * pthread_cond_destroy at detach blocks forever (issue 14).
 */
static bool flushers_ok;

static void flusher_start(struct cache *c)
{
	if (c->thr_started)
		return;
	if (pthread_create(&c->thr, NULL, cache_drain_flusher, c) == 0)
		c->thr_started = true;
	else
		nox_log(NOX_LOG_WARN,
			"%s: no flusher thread; uploads wait "
			"for close, exec and sync",
			c->sb->id);
}

static int http_attach(struct fs_sandbox *sb, struct nox_err *err)
{
	char path[PATH_MAX];
	struct cache *c;
	char *base = NULL;
	int r, fd, n;

	r = cache_base(sb->fs, &base, err);
	if (r < 0)
		return r;
	n = snprintf(path, sizeof(path), "%s/%s", base, sb->id);
	free(base);
	if (n < 0 || (size_t)n >= sizeof(path))
		return nox_err_set(err, ENAMETOOLONG, "cache dir too long");
	c = cache_new(sb, path);
	if (!c)
		return nox_err_set(err, ENOMEM, "out of memory");
	r = cache_open(c, err);
	if (r < 0) {
		cache_free(c);
		return r;
	}
	sb->cache = c;
	if (cache_recover(c, err) == -ENOENT) {
		sb->cache = NULL;
		cache_free(c);
		return nox_err_set(err, ENOENT, "sandbox %s is gone", sb->id);
	}
	if (flushers_ok)
		flusher_start(c);
	fd = openat(c->tree_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return nox_err_set(err, errno, "cache tree: %s",
				   strerror(errno));
	return fd;
}

/*
 * Moves directory from (CACHE/<host>/<id>) to CACHE/<host>/lost/<id>.TIME
 * (.TIME.N when that is taken: a sandbox can go twice in a second); the
 * new path (malloc'd) or NULL.
 */
static char *move_to_lost(const char *from, const char *id)
{
	const char *slash = strrchr(from, '/');
	char to[PATH_MAX];
	long long now = (long long)time(NULL);
	int i, n;

	if (!slash)
		return NULL;
	n = snprintf(to, sizeof(to), "%.*s/lost", (int)(slash - from), from);
	if (n < 0 || (size_t)n >= sizeof(to))
		return NULL;
	(void)mkdir(to, 0700);
	for (i = 1; i < 1000; i++) {
		if (i == 1)
			n = snprintf(to, sizeof(to), "%.*s/lost/%s.%lld",
				     (int)(slash - from), from, id, now);
		else
			n = snprintf(to, sizeof(to), "%.*s/lost/%s.%lld.%d",
				     (int)(slash - from), from, id, now, i);
		if (n < 0 || (size_t)n >= sizeof(to))
			return NULL;
		if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) ==
		    0)
			return strdup(to);
		if (errno != EEXIST)
			return NULL;
	}
	return NULL;
}

/*
 * The sandbox no longer exists: its cache leaves CACHE/<host>/<id> now,
 * so a sandbox made again with that id (by this mount or another client)
 * attaches to an empty cache, not to the old tree and journal.  It waits
 * in lost/ while the old sandbox's files are in use; http_detach keeps it
 * there if anything was unsent, else removes it.
 */
static void http_gone(struct fs_sandbox *sb)
{
	struct cache *c = cache_of(sb);
	size_t unsent = 0;
	bool first;

	if (!c)
		return;
	cache_lock(c, CACHE_MU);
	/* and no drain of its journal reaches a new sandbox of the id */
	first = !c->gone;
	c->gone = true;
	pthread_cond_broadcast(&c->cond);
	if (first)
		unsent = journal_count(&c->jr) + c->ndirty;
	if (!c->moved) {
		c->moved = move_to_lost(c->dir, sb->id);
		if (!c->moved)
			nox_log(NOX_LOG_WARN,
				"%s: cannot move the cache of the deleted "
				"sandbox out of %s: %s",
				sb->id, c->dir, strerror(errno));
	}
	cache_unlock(c, CACHE_MU);
	/* found gone by a lookup, not by the layer (cache_mark_gone said
	 * so then): the same line when changes were unsent */
	if (unsent)
		nox_log(NOX_LOG_WARN,
			"sandbox %s no longer exists on the server; %zu unsent "
			"operations and files are kept (below %.*s/lost/)",
			sb->id, unsent,
			(int)(strrchr(c->dir, '/')
				  ? strrchr(c->dir, '/') - c->dir
				  : (ptrdiff_t)strlen(c->dir)),
			c->dir);
}

static bool has_pending(const char *base, const char *id);

/*
 * This mount made sandbox id, and none of that id is attached: a cache
 * dir CACHE/<host>/<id> is an earlier sandbox's (kept by an earlier
 * mount, whose sandbox was deleted since).  Its unsent changes go to
 * lost/ with a log line, a clean one is removed: neither is the new
 * sandbox's.
 */
static void http_fresh(struct fs *fs, const char *id)
{
	struct nox_err err;
	char path[PATH_MAX];
	char *base = NULL, *to = NULL;
	struct stat st;
	int n, fd;

	nox_err_clear(&err);
	if (cache_base(fs, &base, &err) < 0)
		return;
	n = snprintf(path, sizeof(path), "%s/%s", base, id);
	if (n < 0 || (size_t)n >= sizeof(path) || lstat(path, &st) < 0 ||
	    !S_ISDIR(st.st_mode))
		goto out;
	if (has_pending(base, id)) {
		to = move_to_lost(path, id);
		if (to)
			nox_log(NOX_LOG_WARN,
				"%s: a new sandbox of that id; the unsent "
				"changes of the earlier one are kept in %s "
				"(tree/ and journal/)",
				id, to);
		goto out;
	}
	fd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)tree_remove(fd, id);
		close(fd);
	}
	nox_log(NOX_LOG_INFO,
		"%s: a new sandbox of that id; the cache of "
		"the earlier one is dropped",
		id);
out:
	free(to);
	free(base);
}

/* Keeps the cache of a sandbox that vanished below CACHE/<host>/lost/. */
static void keep_lost(struct cache *c)
{
	const char *to = c->moved;
	char *made = NULL;

	if (!to)
		to = made = move_to_lost(c->dir, c->sb->id);
	if (to)
		nox_log(NOX_LOG_WARN,
			"%s: unsent data of the vanished "
			"sandbox kept in %s (tree/ and journal/)",
			c->sb->id, to);
	free(made);
}

static void http_detach(struct fs_sandbox *sb)
{
	struct cache *c = cache_of(sb);
	struct nox_err err;

	if (!c)
		return;
	cache_lock(c, CACHE_MU);
	c->stop = true;
	pthread_cond_broadcast(&c->cond);
	while (c->fetch_threads > 0) /* they see stop: their reads end */
		cache_wait(c);
	cache_unlock(c, CACHE_MU);
	if (c->thr_started)
		pthread_join(c->thr, NULL);
	c->thr_started = false;
	/* on disk first: the exit's wait for this drain is bounded
	 * (-o unmount_timeout), what it does not send the next mount does */
	cache_lock(c, CACHE_MU);
	cache_drain_persist_all_locked(c);
	cache_unlock(c, CACHE_MU);
	if (!c->gone && !sb->gone) {
		nox_err_clear(&err);
		(void)snapshot_dirty(c, &err);
		if (journal_first(&c->jr) &&
		    cache_drain(c, UINT64_MAX, &err) < 0)
			nox_log(NOX_LOG_WARN,
				"%s: %zu operations stay in the "
				"journal: %s",
				sb->id, journal_count(&c->jr),
				nox_err_str(&err, -EIO));
	}
	cache_lock(c, CACHE_MU);
	cache_drain_persist_all_locked(c);
	c->man_dirty = true;
	cache_save_manifest_locked(c, true);
	cache_unlock(c, CACHE_MU);
	if ((c->gone || sb->gone) && (journal_first(&c->jr) || c->ndirty)) {
		/* deleted with changes the server never got: keep them */
		keep_lost(c);
	} else if (c->gone || sb->gone) {
		/* deleted (rmdir) or vanished with nothing unsent */
		(void)tree_remove(c->dir_fd, "tree");
		(void)tree_remove(c->dir_fd, "journal");
		(void)tree_remove(c->dir_fd, "tmp");
		(void)unlinkat(c->dir_fd, STATE_NAME, 0);
		(void)rmdir(c->moved ? c->moved : c->dir);
	}
	sb->cache = NULL;
	cache_free(c);
}

static int http_before_dir(struct fs_sandbox *sb, struct fs_node *dir)
{
	struct cache *c = cache_of(sb);

	(void)dir;
	if (!c)
		return -ESTALE;
	return cache_list_ensure(c);
}

static int http_before_open(struct fs_sandbox *sb, struct fs_node *n, int flags)
{
	struct cache *c = cache_of(sb);
	struct ment *me;
	bool newly = false;

	if (!c)
		return -ESTALE;
	if (n->type != S_IFREG)
		return 0;
	if (!(flags & O_TRUNC) && (flags & O_ACCMODE) == O_RDONLY)
		return cache_list_fetch_open(c, n); /* reads wait their range */
	if (!(flags & O_TRUNC))
		return cache_list_fetch(c, n);
	/* the content is about to be empty: nothing to download */
	cache_lock(c, CACHE_MU);
	if (c->gone) {
		cache_unlock(c, CACHE_MU);
		return -ENOENT;
	}
	me = manifest_get(&c->man, n->sino);
	if (me && !me->fetched && !me->fetching) {
		manifest_mark(&c->man, me, true, me->rsize);
		c->man_dirty = true;
	}
	newly = cache_dirty_add(c, n->sino);
	cache_unlock(c, CACHE_MU);
	if (newly) {
		(void)journal_mark_dirty(&c->jr, n->sino);
		dirty_name(c, n);
	}
	return 0;
}

/*
 * A read of a file opened before a command changed it: the command's
 * version is fetched into the same tree inode, so the open descriptor
 * reads it (as on the local backend).  Costs one lock when nothing ran.
 */
static int http_before_read(struct fs_sandbox *sb, struct fs_node *n,
			    off_t off, size_t size)
{
	struct cache *c = cache_of(sb);
	struct ment *me;
	bool stale, need;
	int r;

	if (!c || n->type != S_IFREG)
		return 0;
	cache_lock(c, CACHE_MU);
	stale = c->stale || c->listed_execs < c->execs;
	me = manifest_get(&c->man, n->sino);
	need = me && !me->fetched;
	cache_unlock(c, CACHE_MU);
	if (!stale && !need)
		return 0;
	if (stale) {
		r = cache_list_ensure(c);
		if (r < 0)
			return r;
	}
	return cache_list_fetch_range(c, n, off, size);
}

static void http_note_write(struct fs_sandbox *sb, struct fs_node *n)
{
	struct cache *c = cache_of(sb);
	bool newly;

	/* only regular files have content to upload (FUSE does not even
	 * see a FIFO's reads and writes: the kernel keeps its pipe) */
	if (!c || n->type != S_IFREG)
		return;
	cache_lock(c, CACHE_MU);
	newly = cache_dirty_add(c, n->sino);
	cache_unlock(c, CACHE_MU);
	if (newly) {
		(void)journal_mark_dirty(&c->jr, n->sino);
		dirty_name(c, n);
	}
}

/* The last journal entry about inode ino, or 0. */
uint64_t cache_last_seq_of(struct cache *c, ino_t ino)
{
	uint64_t s;

	cache_lock(c, CACHE_MU);
	s = journal_last_seq_of(&c->jr, ino);
	cache_unlock(c, CACHE_MU);
	return s;
}

static int http_on_close(struct fs_sandbox *sb, struct fs_node *n, int fd,
			 bool fsync)
{
	struct cache *c = cache_of(sb);
	struct nox_err err;
	char *path = NULL;
	uint64_t seq = 0;
	int r, tries;
	bool was;

	(void)fd;
	if (!c)
		return -ESTALE;
	for (tries = 0;; tries++) {
		/* the name, read with none of the layer's locks held */
		dirty_name(c, n);
		/* the snapshot and the path it is journaled under agree
		 * with the renames journaled around it */
		cache_lock(c, CACHE_OP_MU);
		cache_lock(c, CACHE_MU);
		was = dirty_del(c, n->sino, &path);
		if (c->gone) {
			cache_unlock(c, CACHE_MU);
			cache_unlock(c, CACHE_OP_MU);
			free(path);
			return -ENOENT;
		}
		if (!was || path || tries == 2) {
			cache_unlock(c, CACHE_MU);
			break;
		}
		/* its kept name went meanwhile (an unlink of one of its
		 * links): look it up again */
		dirty_put(c, n->sino, NULL);
		cache_unlock(c, CACHE_MU);
		cache_unlock(c, CACHE_OP_MU);
	}
	nox_err_clear(&err);
	if (was) {
		struct stat st;

		if (fstatat(n->fd, "", &st, AT_EMPTY_PATH) == 0 &&
		    st.st_nlink == 0) {
			/* unlinked while open: nothing to send */
			cache_unlock(c, CACHE_OP_MU);
			journal_clear_dirty(&c->jr, n->sino);
			free(path);
			return 0;
		}
		r = path ? snapshot(c, n, path, &seq, &err) : -ENOENT;
		if (r < 0) {
			nox_log(NOX_LOG_WARN, "%s: %s", sb->id,
				nox_err_str(&err, r));
			cache_lock(c, CACHE_MU);
			dirty_put(c, n->sino, path);
			cache_unlock(c, CACHE_MU);
			cache_unlock(c, CACHE_OP_MU);
			return r;
		}
		/* the marker goes once the server has it (confirmed) */
	}
	cache_unlock(c, CACHE_OP_MU);
	if (!was) {
		/* an fsync of an earlier close or of a create not yet sent;
		 * a plain close of an unwritten file waits for the flusher
		 * (a shell's "> f" closes a dup before writing) */
		if (!fsync)
			return 0;
		seq = cache_last_seq_of(c, n->sino);
		if (seq == 0)
			return 0;
	}
	if (c->writeback && !fsync) {
		cache_lock(c, CACHE_MU);
		pthread_cond_broadcast(&c->cond);
		cache_unlock(c, CACHE_MU);
		free(path);
		return 0;
	}
	r = cache_drain(c, seq, &err);
	if (r < 0)
		nox_log(NOX_LOG_WARN,
			"%s: upload of %s: %s (kept in the "
			"journal, retried)",
			sb->id, was ? path : "file", nox_err_str(&err, r));
	free(path);
	return r < 0 ? r : 0;
}

/*
 * The entry of a mkdir, create, mknod or symlink (what the tree has
 * now): 0 and *out, 1 when the new name is not there (nothing to
 * journal), or -ENOMEM.  A create is sent with the file's first upload
 * (*sync_now); a FIFO or socket has no content and is sent at once.
 */
static int note_made(struct cache *c, const struct fs_op *op, struct jent **out,
		     bool *sync_now)
{
	enum jop jo = op->kind == FS_OP_MKDIR	 ? J_MKDIR
		      : op->kind == FS_OP_CREATE ? J_CREATE
						 : J_SYMLINK;
	char target[PATH_MAX];
	struct jent *e;
	struct stat st;

	if (fstatat(op->dir->fd, op->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 1;
	if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
		jo = J_MKNOD;
	if (jo == J_SYMLINK) {
		ssize_t tl = readlinkat(op->dir->fd, op->name, target,
					sizeof(target) - 1);

		if (tl < 0)
			return 1;
		target[tl] = '\0';
	}
	e = journal_entry_new(&c->jr, jo, op->path,
			      jo == J_SYMLINK ? target : NULL);
	if (!e)
		return -ENOMEM;
	e->mode = st.st_mode & 07777;
	e->mtime_ns = ts_ns(&st.st_mtim);
	e->ino = st.st_ino;
	if (jo == J_MKNOD)
		e->num = st.st_mode & S_IFMT;
	if (jo == J_CREATE)
		*sync_now = false;
	*out = e;
	return 0;
}

/*
 * A size change: a placeholder's is sent as a truncate (its content is
 * on the server), a closed file's as an upload (truncate(2) by path: no
 * close follows); an open file's close uploads it.  false: out of memory.
 */
static bool note_size(struct cache *c, const struct fs_op *op,
		      const struct stat *st, struct nox_err *err)
{
	bool placeholder, open_dirty;
	struct ment *me;
	struct jent *e;
	uint64_t seq;

	cache_lock(c, CACHE_MU);
	me = manifest_get(&c->man, st->st_ino);
	open_dirty = cache_dirty_has(c, st->st_ino);
	placeholder = me && !me->fetched && !cache_busy_locked(c, st->st_ino);
	if (placeholder && st->st_size == 0)
		manifest_mark(&c->man, me, true, me->rsize);
	else if (placeholder)
		manifest_mark(&c->man, me, false, st->st_size);
	cache_unlock(c, CACHE_MU);
	if (placeholder && st->st_size > 0) {
		e = journal_entry_new(&c->jr, J_TRUNCATE, op->path, NULL);
		if (!e)
			return false;
		e->num = st->st_size;
		e->ino = st->st_ino;
		if (append(c, e, -1, err) < 0)
			nox_log(NOX_LOG_WARN, "%s: %s", c->sb->id,
				nox_err_str(err, -EIO));
	} else if (!open_dirty) {
		if (snapshot(c, op->node, op->path, &seq, err) < 0)
			nox_log(NOX_LOG_WARN, "%s: %s", c->sb->id,
				nox_err_str(err, -EIO));
	}
	return true;
}

/*
 * Journals a setattr: size, mode, times (uid/gid are not sent).  false:
 * nothing journaled (the file is gone, or still open and written: its
 * close uploads it with the size, mode and times it has then; tar x's
 * write, futimens, fchmod, close is one upload).
 */
static bool note_setattr(struct cache *c, const struct fs_op *op,
			 struct nox_err *err)
{
	unsigned f = op->flags;
	struct jent *v[2] = {NULL, NULL};
	struct stat st;
	size_t i, nv = 0;
	bool carried;

	if (fstatat(op->node->fd, "", &st,
		    AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return false;
	cache_lock(c, CACHE_MU);
	carried = S_ISREG(st.st_mode) && cache_dirty_has(c, st.st_ino);
	cache_unlock(c, CACHE_MU);
	if (carried)
		return false;
	if ((f & FUSE_SET_ATTR_SIZE) && !note_size(c, op, &st, err)) {
		nox_log(NOX_LOG_WARN, "%s: out of memory journaling %s",
			c->sb->id, op->path);
		return false;
	}
	if (f & FUSE_SET_ATTR_MODE) {
		v[nv] = journal_entry_new(&c->jr, J_CHMOD, op->path, NULL);
		if (v[nv]) {
			v[nv]->mode = st.st_mode & 07777;
			v[nv]->ino = st.st_ino;
			nv++;
		}
	}
	if (f & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		v[nv] = journal_entry_new(&c->jr, J_UTIMENS, op->path, NULL);
		if (v[nv]) {
			v[nv]->atime_ns =
			    (f & FUSE_SET_ATTR_ATIME) ? ts_ns(&st.st_atim) : -2;
			v[nv]->mtime_ns =
			    (f & FUSE_SET_ATTR_MTIME) ? ts_ns(&st.st_mtim) : -2;
			v[nv]->ino = st.st_ino;
			nv++;
		}
	}
	for (i = 0; i < nv; i++) {
		if (append(c, v[i], -1, err) < 0)
			nox_log(NOX_LOG_WARN, "%s: %s", c->sb->id,
				nox_err_str(err, -EIO));
	}
	return true;
}

/*
 * Journals op (under op_mu, from http_op_begin), by the paths the core
 * built for it.  In default mode it is sent at op_end, once op_mu is
 * released; a create waits for the file's first upload.
 */
/*
 * FIFOs reach every server (fs/op mknod, or mkfifo in the script); a
 * socket only a server with nox.fs: coreutils has no maker for one, and
 * the sandbox need not have anything else (docs/cache.md).
 */
static bool http_can_mknod(struct fs_sandbox *sb, mode_t fmt)
{
	struct cache *c = cache_of(sb);

	if (fmt == S_IFIFO)
		return true;
	return fmt == S_IFSOCK && c && c->ext &&
	       nox_backend_has(c->be, NOX_OP_MKNOD);
}

/*
 * Write-back on a v1 server: a rename over a regular file, of a regular
 * file whose content the server has (fetched, clean, nothing pending,
 * one link, small), is journaled as an upload of the new name from the
 * tree and an unlink of the old name.  An editor's save that fsyncs
 * its temp file (write temp, fsync, rename over) then costs no exec:
 * the next save's create of the temp name folds the unlink into its
 * tar, the last one goes with the next drain.  A tar extraction
 * replaces the target by a new inode with the file's mode and mtime,
 * as the rename does.  The default mode keeps the rename (its
 * operations reach the server before the call returns).  true:
 * journaled; false: journal a rename.
 */
static bool note_rename_upload(struct cache *c, const struct fs_op *op,
			       struct nox_err *err)
{
	struct jent *u;
	struct ment *me;
	struct stat st;
	bool clean;
	int fd;

	if (!c->writeback || c->ext || !c->op_over || op->flags != 0 ||
	    !op->path2[0] || !op->dir2 || !op->name2)
		return false;
	fd = openat(op->dir2->fd, op->name2,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    st.st_size > RENAME_UPLOAD_MAX) {
		close(fd);
		return false;
	}
	cache_lock(c, CACHE_MU);
	me = manifest_get(&c->man, st.st_ino);
	clean = me && me->fetched && !me->fetching && me->rsize == st.st_size &&
		me->rmtime == ts_ns(&st.st_mtim) &&
		!cache_dirty_has(c, st.st_ino) &&
		journal_last_seq_of(&c->jr, st.st_ino) == 0;
	cache_unlock(c, CACHE_MU);
	if (!clean || journal_mark_dirty(&c->jr, st.st_ino) < 0) {
		close(fd);
		return false;
	}
	/* marked: a crash before the server has it uploads the tree's */
	if (upload_entry(c, op->path2, fd, &st, NULL, err) < 0) {
		journal_clear_dirty(&c->jr, st.st_ino);
		return false;
	}
	u = journal_entry_new(&c->jr, J_UNLINK, op->path, NULL);
	if (!u || journal_write(&c->jr, u, -1, false, err) < 0) {
		/* the upload alone leaves the old name on the server: the
		 * rename is journaled after it (the script tolerates it) */
		journal_entry_free(u);
		return false;
	}
	cache_lock(c, CACHE_MU);
	append_locked(c, u);
	dirty_moved_locked(c, op->path, op->path2, false);
	cache_unlock(c, CACHE_MU);
	return true;
}

static void http_note_op(struct fs_sandbox *sb, struct fs_op *op)
{
	struct cache *c = cache_of(sb);
	struct jent *e = NULL;
	struct nox_err err;
	bool sync_now = true;
	int r = 0;

	if (!c || c->gone)
		return;
	nox_err_clear(&err);
	if (op->path_err < 0 || !op->path[0]) {
		nox_log(NOX_LOG_WARN,
			"%s: operation on a file without a "
			"known path not sent: %s",
			sb->id, strerror(-op->path_err));
		if (op->kind == FS_OP_RENAME || op->kind == FS_OP_UNLINK) {
			/* which kept names moved is not known */
			cache_lock(c, CACHE_MU);
			dirty_moved_locked(c, "", NULL, false);
			cache_unlock(c, CACHE_MU);
		}
		return;
	}
	switch (op->kind) {
	case FS_OP_MKDIR:
	case FS_OP_CREATE:
	case FS_OP_SYMLINK:
		r = note_made(c, op, &e, &sync_now);
		if (r > 0)
			return;
		break;
	case FS_OP_LINK:
		e = journal_entry_new(&c->jr, J_LINK, op->path, op->path2);
		break;
	case FS_OP_UNLINK:
		e = journal_entry_new(&c->jr, J_UNLINK, op->path, NULL);
		cache_lock(c, CACHE_MU);
		dirty_moved_locked(c, op->path, NULL, false);
		cache_unlock(c, CACHE_MU);
		break;
	case FS_OP_RMDIR:
		e = journal_entry_new(&c->jr, J_RMDIR, op->path, NULL);
		break;
	case FS_OP_RENAME:
		if (op->layer == c && note_rename_upload(c, op, &err))
			goto sent;
		e = journal_entry_new(&c->jr, J_RENAME, op->path, op->path2);
		if (e)
			e->num = op->flags;
		cache_lock(c, CACHE_MU);
		dirty_moved_locked(c, op->path, op->path2,
				   (op->flags & RENAME_EXCHANGE) != 0);
		cache_unlock(c, CACHE_MU);
		break;
	case FS_OP_SETATTR:
		if (!note_setattr(c, op, &err))
			return;
		goto sent;
	}
	if (!e) {
		nox_log(NOX_LOG_WARN, "%s: out of memory journaling %s", sb->id,
			op->path);
		return;
	}
	if (append(c, e, -1, &err) < 0) {
		nox_log(NOX_LOG_WARN, "%s: %s", sb->id,
			nox_err_str(&err, -EIO));
		return;
	}
sent:
	if (c->writeback || !sync_now)
		return;
	if (op->layer == c) {
		/* not with op_mu held: at op_end */
		op->drain = true;
		return;
	}
	if (cache_drain(c, UINT64_MAX, &err) < 0)
		nox_log(NOX_LOG_DEBUG, "%s: %s stays in the journal: %s",
			sb->id, op->path, nox_err_str(&err, -EIO));
}

static void http_op_begin(struct fs_sandbox *sb, struct fs_op *op)
{
	struct cache *c = cache_of(sb);
	struct stat st;

	if (!c)
		return;
	cache_lock(c, CACHE_OP_MU);
	op->layer = c;
	op->drain = false;
	/* an editor's save renames over the file it replaces */
	c->op_over =
	    op->kind == FS_OP_RENAME && op->dir2 && op->name2 &&
	    fstatat(op->dir2->fd, op->name2, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode);
}

static void http_op_end(struct fs_sandbox *sb, struct fs_op *op)
{
	struct cache *c = cache_of(sb);
	struct nox_err err;

	if (!c || op->layer != c)
		return;
	op->layer = NULL;
	cache_unlock(c, CACHE_OP_MU);
	nox_err_clear(&err);
	if (op->drain && cache_drain(c, UINT64_MAX, &err) < 0)
		nox_log(NOX_LOG_DEBUG,
			"%s: an operation stays in the journal: %s", sb->id,
			nox_err_str(&err, -EIO));
	op->drain = false;
}

static int http_flush(struct fs_sandbox *sb, struct nox_err *err)
{
	struct cache *c = cache_of(sb);
	int r;

	if (!c)
		return nox_err_set(err, ESTALE, "sandbox %s is detached",
				   sb->id);
	if (c->gone)
		return nox_err_set(err, ENOENT, "sandbox %s is gone", sb->id);
	r = snapshot_dirty(c, err);
	if (r < 0)
		return r;
	r = cache_drain(c, UINT64_MAX, err);
	if (r == -ENOENT)
		nox_err_set(err, ENOENT, "sandbox %s is gone", sb->id);
	return r < 0 ? r : 0;
}

static void http_after_exec(struct fs_sandbox *sb)
{
	struct cache *c = cache_of(sb);

	if (!c)
		return;
	cache_lock(c, CACHE_MU);
	c->execs++;
	cache_unlock(c, CACHE_MU);
}

/* A sandbox: the server's figures; the mount root: the cache's. */
static int http_statfs(struct fs *fs, struct fs_sandbox *sb, struct statvfs *sv)
{
	struct cache *c;

	if (!sb)
		return cache_space_statfs_root(fs, sv);
	c = cache_of(sb);
	return c ? cache_space_statfs(c, sv) : -ESTALE;
}

/* A placeholder has no blocks: du counts those of its real size. */
static void http_attr(struct fs_sandbox *sb, struct stat *st)
{
	struct cache *c = cache_of(sb);
	struct ment *me;

	if (!c)
		return;
	cache_lock(c, CACHE_MU);
	me = manifest_get(&c->man, st->st_ino);
	if (me && !me->fetched)
		st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
	cache_unlock(c, CACHE_MU);
}

const struct fs_sandbox_hooks fs_http_hooks = {
    .name = "http",
    .by_path = true,
    .attach = http_attach,
    .detach = http_detach,
    .gone = http_gone,
    .fresh = http_fresh,
    .before_dir = http_before_dir,
    .before_open = http_before_open,
    .note_write = http_note_write,
    .on_close = http_on_close,
    .note_op = http_note_op,
    .flush = http_flush,
    .after_exec = http_after_exec,
    .before_read = http_before_read,
    .statfs = http_statfs,
    .attr = http_attr,
    .op_begin = http_op_begin,
    .op_end = http_op_end,
    .can_mknod = http_can_mknod,
};

/* ---- replay at mount ------------------------------------------------ */

/* Sandboxes attached by fs_http_replay (a reference each). */
static struct fs_sandbox **held;
static size_t nheld;

/* true when CACHE/<host>/<id>/journal holds entries or dirty markers. */
static bool has_pending(const char *base, const char *id)
{
	char path[PATH_MAX];
	struct dirent *d;
	bool found = false;
	DIR *dp;

	if (snprintf(path, sizeof(path), "%s/%s/journal", base, id) >=
	    (int)sizeof(path))
		return false;
	dp = opendir(path);
	if (!dp)
		return false;
	while (!found && (d = readdir(dp)) != NULL) {
		size_t n = strlen(d->d_name);

		found = strncmp(d->d_name, "dirty-", 6) == 0 ||
			(n > 3 && strcmp(d->d_name + n - 3, ".op") == 0);
		if (!found && strcmp(d->d_name, "dirty") == 0) {
			struct stat st;

			/* the dirty log: markers left when it is not empty */
			found = fstatat(dirfd(dp), "dirty", &st, 0) == 0 &&
				st.st_size > 0;
		}
	}
	closedir(dp);
	return found;
}

int fs_http_replay(struct fs *fs)
{
	struct dirent *d;
	char *base;
	DIR *dp;

	if (fs->hooks != &fs_http_hooks)
		return 0;
	base = base_dir(fs);
	if (!base)
		return 0;
	dp = opendir(base);
	if (!dp) {
		free(base);
		return 0;
	}
	while ((d = readdir(dp)) != NULL) {
		struct nox_sandbox_info info;
		struct fs_sandbox *sb, **nv;
		struct nox_err err;
		int r;

		if (nox_id_validate(d->d_name, NULL) < 0 ||
		    strcmp(d->d_name, "lost") == 0 ||
		    !has_pending(base, d->d_name))
			continue;
		nox_err_clear(&err);
		r = nox_backend_info(fs->be, d->d_name, &info, &err);
		if (r == -ENOENT) {
			char from[PATH_MAX], to[PATH_MAX];

			snprintf(from, sizeof(from), "%s/%s", base, d->d_name);
			snprintf(to, sizeof(to), "%s/lost", base);
			(void)mkdir(to, 0700);
			snprintf(to, sizeof(to), "%s/lost/%s.%lld", base,
				 d->d_name, (long long)time(NULL));
			if (rename(from, to) == 0)
				nox_log(NOX_LOG_WARN,
					"sandbox %s no longer exists on the "
					"server; its unsent changes are kept "
					"in %s",
					d->d_name, to);
			continue;
		}
		if (r < 0)
			nox_log(NOX_LOG_WARN,
				"%s: server unreachable (%s); "
				"its journal is replayed when it answers",
				d->d_name, nox_err_str(&err, r));
		nox_err_clear(&err);
		r = fs_sandbox_attach(fs, d->d_name, &sb, &err);
		if (r < 0) {
			nox_log(NOX_LOG_WARN, "%s: replaying the journal: %s",
				d->d_name, nox_err_str(&err, r));
			continue;
		}
		nv = realloc(held, (nheld + 1) * sizeof(*nv));
		if (!nv) {
			fs_sandbox_put(sb);
			continue;
		}
		held = nv;
		held[nheld++] = sb;
	}
	closedir(dp);
	free(base);
	return 0;
}

void fs_http_release(struct fs *fs)
{
	size_t i;

	(void)fs;
	for (i = 0; i < nheld; i++)
		fs_sandbox_put(held[i]);
	free(held);
	held = NULL;
	nheld = 0;
}

void fs_http_persist(struct fs *fs)
{
	struct fs_sandbox **v = NULL;
	size_t n = 0, i;

	if (fs->hooks != &fs_http_hooks || fs_sandbox_list(fs, &v, &n) < 0)
		return;
	for (i = 0; i < n; i++) {
		struct cache *c = cache_of(v[i]);

		if (c) {
			cache_lock(c, CACHE_MU);
			cache_drain_persist_all_locked(c);
			cache_unlock(c, CACHE_MU);
		}
		fs_sandbox_put(v[i]);
	}
	free(v);
}

/* Entries (*.op) in CACHE/<host>/<id>/journal. */
static size_t count_ops(const char *base, const char *id)
{
	char path[PATH_MAX];
	struct dirent *d;
	size_t count = 0;
	DIR *dp;

	if (snprintf(path, sizeof(path), "%s/%s/journal", base, id) >=
	    (int)sizeof(path))
		return 0;
	dp = opendir(path);
	if (!dp)
		return 0;
	while ((d = readdir(dp)) != NULL) {
		size_t len = strlen(d->d_name);

		if (len > 3 && strcmp(d->d_name + len - 3, ".op") == 0 &&
		    strncmp(d->d_name, "tmp-", 4) != 0)
			count++;
	}
	closedir(dp);
	return count;
}

size_t fs_http_journaled(struct fs *fs)
{
	struct dirent *d;
	size_t count = 0;
	char *base;
	DIR *dp;

	if (fs->hooks != &fs_http_hooks)
		return 0;
	base = base_dir(fs);
	if (!base)
		return 0;
	dp = opendir(base);
	if (dp) {
		while ((d = readdir(dp)) != NULL) {
			if (nox_id_validate(d->d_name, NULL) == 0 &&
			    strcmp(d->d_name, "lost") != 0)
				count += count_ops(base, d->d_name);
		}
		closedir(dp);
	}
	free(base);
	return count;
}

void fs_http_start(struct fs *fs)
{
	struct fs_sandbox **v = NULL;
	size_t n = 0, i;

	if (fs->hooks != &fs_http_hooks)
		return;
	flushers_ok = true;
	if (fs_sandbox_list(fs, &v, &n) < 0)
		return;
	for (i = 0; i < n; i++) {
		if (cache_of(v[i]))
			flusher_start(cache_of(v[i]));
		fs_sandbox_put(v[i]);
	}
	free(v);
}
