/*
 * cache_space.c - the cache layer's space: the bound on downloaded
 * contents (-o cache_max), their eviction least recently used first, and
 * the figures statfs reports (the server's for a sandbox, the cache's at
 * the mount root).
 *
 * Eviction turns a clean fetched file back into a placeholder (same
 * inode, size, mode and mtime; no blocks), so its next open or read
 * downloads it again.  It never touches a file with local changes
 * (dirty or journaled), one being downloaded, or one that is open.
 * Limits: the bound counts the sandboxes this mount attached (a sandbox's
 * cache left by an earlier mount counts from its first access); a file
 * is counted by its size as the server last had it; a file renamed after
 * its download is evicted only once it was opened again by its new name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cache_i.h"

/* The default bound: 10 % of the cache disk, at most this. */
#define SPACE_DEFAULT_MAX (4ll << 30)
/* How long a sandbox's statfs answer is reused (df in a loop), at least;
 * longer when the attribute timeout is. */
#define SPACE_STATFS_MS 3000

/*
 * One eviction pass at a time, for the whole mount; taken with no lock
 * of any cache held, and inside it one sandbox's op_mu (then mu) at a
 * time: so space_mu comes before op_mu in the order of cache_i.h.
 */
static pthread_mutex_t space_mu = PTHREAD_MUTEX_INITIALIZER;
static long long space_max; /* space_mu: the bound, 0 until known */

/* statvfs of path, or of its nearest existing parent. */
static int statvfs_up(const char *path, struct statvfs *sv)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	char *slash;

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (;;) {
		if (statvfs(buf, sv) == 0)
			return 0;
		if (errno != ENOENT)
			return -errno;
		slash = strrchr(buf, '/');
		if (!slash)
			return -ENOENT;
		if (slash == buf) {
			buf[1] = '\0';
		} else {
			*slash = '\0';
		}
	}
}

/* With space_mu: the bound in bytes (-o cache_max, else the default). */
static long long max_locked(struct fs *fs)
{
	struct statvfs sv;
	char *base;

	if (space_max > 0)
		return space_max;
	if (fs->opts.cache_max) {
		space_max = (long long)fs->opts.cache_max;
		return space_max;
	}
	space_max = SPACE_DEFAULT_MAX;
	base = cache_base_dir(fs);
	if (base && statvfs_up(base, &sv) == 0) {
		long long disk =
		    (long long)sv.f_blocks * (long long)sv.f_frsize;

		if (disk / 10 < space_max)
			space_max = disk / 10;
		if (space_max < (1ll << 20))
			space_max = 1ll << 20;
	}
	free(base);
	nox_log(NOX_LOG_DEBUG, "cache_max: %lld bytes", space_max);
	return space_max;
}

void cache_space_used_locked(struct ment *me)
{
	me->used = manifest_use_clock();
}

/* A file that may be evicted, as the scan saw it. */
struct victim {
	struct fs_sandbox *sb;
	ino_t ino;
	uint32_t used;
	off_t size;
};

struct scan {
	struct victim *v;
	size_t n, cap;
	long long used; /* bytes of fetched contents */
};

static int victim_cmp(const void *a, const void *b)
{
	const struct victim *x = a, *y = b;

	return x->used < y->used ? -1 : x->used > y->used;
}

/*
 * With c's mu: adds c's fetched bytes to s (the manifest's running
 * total, so without victims this costs nothing per file), and with
 * victims its evictable files (a walk of the manifest).
 */
static void scan_locked(struct cache *c, struct scan *s, bool victims)
{
	struct ment *me;
	size_t pos = 0;

	s->used += c->man.fetched_bytes + c->inflight;
	while (victims && (me = manifest_next(&c->man, &pos)) != NULL) {
		/* local changes are checked by evict(), for the few it
		 * tries: cache_busy_locked walks the journal */
		if (!me->fetched || me->fetching || me->rsize == 0)
			continue;
		if (s->n == s->cap) {
			size_t nc = s->cap ? s->cap * 2 : 64;
			struct victim *nv = realloc(s->v, nc * sizeof(*nv));

			if (!nv)
				continue;
			s->v = nv;
			s->cap = nc;
		}
		s->v[s->n].sb = c->sb;
		s->v[s->n].ino = me->ino;
		s->v[s->n].used = me->used;
		s->v[s->n].size = me->rsize;
		s->n++;
	}
}

/* The caches of sandboxes sbs[0..nsb) (fs_sandbox_list) into s. */
static void scan_all(struct fs_sandbox **sbs, size_t nsb, struct scan *s,
		     bool victims)
{
	size_t i;

	for (i = 0; i < nsb; i++) {
		struct cache *c =
		    sbs[i]->hooks == &fs_http_hooks ? cache_of(sbs[i]) : NULL;

		if (!c)
			continue;
		cache_lock(c, CACHE_MU);
		if (!c->gone)
			scan_locked(c, s, victims);
		cache_unlock(c, CACHE_MU);
	}
}

static void put_all(struct fs_sandbox **sbs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		fs_sandbox_put(sbs[i]);
	free(sbs);
}

/*
 * Makes v's file (tree name path, NULL: not found) a placeholder again,
 * if it still is as the scan saw it
 * (fetched, clean, not used since) and is not open: 0, or -errno (left
 * as it was).  Takes c's op_mu, so no merge or metadata operation sees
 * the file half evicted, and marks it fetching meanwhile, so an open or
 * a read waits and then downloads it again.
 */
static int evict(struct cache *c, const struct victim *v, const char *path)
{
	struct fs_table *t = &c->sb->fs->table;
	const char *base;
	struct timespec ts[2];
	struct ment *me;
	struct stat st;
	bool truncated = false;
	int pfd, fd = -1, r = -EBUSY;

	cache_lock(c, CACHE_OP_MU);
	cache_lock(c, CACHE_MU);
	me = manifest_get(&c->man, v->ino);
	if (c->gone || !path || !me || !me->fetched || me->fetching ||
	    me->used != v->used || me->rsize != v->size ||
	    cache_busy_locked(c, v->ino)) {
		cache_unlock(c, CACHE_MU);
		cache_unlock(c, CACHE_OP_MU);
		return -EBUSY;
	}
	manifest_mark(&c->man, me, false, me->rsize);
	me->fetching = true;
	cache_unlock(c, CACHE_MU);

	r = fdio_parent(c->tree_fd, path, &pfd, &base);
	if (r < 0)
		goto out;
	fd = openat(pfd, base, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	r = fd < 0 ? -errno : 0;
	close(pfd);
	if (r < 0)
		goto out;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_ino != v->ino ||
	    st.st_size != v->size) {
		r = -ESTALE; /* renamed or changed since: not by that name */
		goto out;
	}
	if (fs_node_pinned(t, c->sb, st.st_dev, v->ino)) {
		r = -EBUSY;
		goto out;
	}
	/* the blocks go, the size and the times stay: a placeholder */
	truncated = true;
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, st.st_size) < 0) {
		r = -errno;
		goto out;
	}
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	(void)futimens(fd, ts);
out:
	if (fd >= 0)
		close(fd);
	cache_lock(c, CACHE_MU);
	me = manifest_get(&c->man, v->ino);
	if (me) {
		me->fetching = false;
		if (r == 0)
			c->man_dirty = true;
		else
			manifest_mark(&c->man, me, !truncated, me->rsize);
	}
	pthread_cond_broadcast(&c->cond);
	cache_unlock(c, CACHE_MU);
	cache_unlock(c, CACHE_OP_MU);
	return r;
}

/* ---- names of the victims -------------------------------------------- */

struct want {
	ino_t ino;
	char **path; /* where its name goes */
};

struct names {
	struct want *w;
	size_t n, left;
};

static int want_cmp(const void *a, const void *b)
{
	const struct want *x = a, *y = b;

	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* tree_walk's visit: a victim's first name found. */
static int names_visit(const char *path, ino_t ino, void *ud)
{
	struct names *nm = ud;
	struct want key = {.ino = ino};
	struct want *w = bsearch(&key, nm->w, nm->n, sizeof(*nm->w), want_cmp);

	if (w && !*w->path) {
		*w->path = strdup(path);
		if (*w->path && --nm->left == 0)
			return 1; /* all found: the rest of the tree can wait */
	}
	return 0;
}

/*
 * Finds the tree names of victims v[0..n) into paths[0..n) (malloc'd;
 * the manifest keeps none): one walk of each sandbox's tree.  A victim
 * not found keeps NULL, and evict() passes it over.
 */
static void find_names(const struct victim *v, size_t n, char **paths)
{
	struct names nm = {.w = malloc(n * sizeof(*nm.w))};
	size_t i, j;

	if (!nm.w)
		return;
	for (i = 0; i < n; i++) {
		struct fs_sandbox *sb = v[i].sb;
		struct cache *c = cache_of(sb);
		bool gone, done = false;

		/* one walk per sandbox, for its victims in this batch */
		for (j = 0; j < i && !done; j++)
			done = v[j].sb == sb;
		if (done)
			continue;
		nm.n = 0;
		for (j = i; j < n; j++) {
			if (v[j].sb == sb && !paths[j]) {
				nm.w[nm.n].ino = v[j].ino;
				nm.w[nm.n].path = &paths[j];
				nm.n++;
			}
		}
		nm.left = nm.n;
		qsort(nm.w, nm.n, sizeof(*nm.w), want_cmp);
		cache_lock(c, CACHE_MU);
		gone = c->gone;
		cache_unlock(c, CACHE_MU);
		if (!gone && nm.n)
			(void)tree_walk(c->tree_fd, names_visit, &nm);
	}
	free(nm.w);
}

static void free_paths(char **paths, size_t n)
{
	size_t i;

	for (i = 0; paths && i < n; i++)
		free(paths[i]);
	free(paths);
}

/* Free bytes of the cache disk (-1: unknown). */
static long long disk_avail(struct cache *c)
{
	struct statvfs sv;

	if (fstatvfs(c->dir_fd, &sv) < 0)
		return -1;
	return (long long)sv.f_bavail * (long long)sv.f_frsize;
}

void cache_space_room(struct cache *c, off_t need)
{
	struct fs *fs = c->sb->fs;
	struct fs_sandbox **sbs;
	struct scan s = {0};
	long long max, avail;
	char **paths = NULL; /* the names of the batch [first, named) */
	size_t nsb, i, first = 0, named = 0, gone = 0;

	if (fs_sandbox_list(fs, &sbs, &nsb) < 0)
		return;
	pthread_mutex_lock(&space_mu);
	max = max_locked(fs);
	scan_all(sbs, nsb, &s, false);
	avail = disk_avail(c);
	/* a download needs its size twice on the disk for a moment (the
	 * answer's tar, then the tree file) */
	if (s.used + need <= max && (avail < 0 || avail >= 2 * (long long)need))
		goto out;
	/* over: again, with the candidates (the bytes as they are now),
	 * down to 90 % of the bound, so that the walk of every manifest
	 * comes once per tenth of the bound downloaded, not per download */
	s.used = 0;
	scan_all(sbs, nsb, &s, true);
	qsort(s.v, s.n, sizeof(*s.v), victim_cmp);
	for (i = 0; i < s.n; i++) {
		struct cache *vc = cache_of(s.v[i].sb);

		if (s.used + need <= max - max / 10 &&
		    (avail < 0 || avail >= 2 * (long long)need))
			break;
		if (i == named) {
			/* the next batch: twice the bytes still to free, at
			 * least 64 files, named by one walk per tree */
			long long want = s.used + need - (max - max / 10);
			long long sum = 0;

			if (avail >= 0 && 2 * (long long)need - avail > want)
				want = 2 * (long long)need - avail;
			free_paths(paths, named - first);
			first = i;
			for (; named < s.n && (named - i < 64 || sum < 2 * want);
			     named++)
				sum += s.v[named].size;
			paths = calloc(named - i, sizeof(*paths));
			if (paths)
				find_names(s.v + i, named - i, paths);
		}
		if (evict(vc, &s.v[i], paths ? paths[i - first] : NULL) < 0)
			continue;
		s.used -= s.v[i].size;
		if (avail >= 0)
			avail += s.v[i].size;
		gone++;
	}
	if (gone)
		nox_log(NOX_LOG_DEBUG,
			"cache: %zu files evicted, %lld of %lld bytes used",
			gone, s.used, max);
out:
	pthread_mutex_unlock(&space_mu);
	put_all(sbs, nsb);
	free_paths(paths, named - first);
	free(s.v);
}

/* ---- statfs ---------------------------------------------------------- */

/* The two data lines of `df -P -k` and `df -P -i` into sv. */
static int parse_df(const char *out, struct statvfs *sv)
{
	unsigned long long v[2][3];
	const char *p = out;
	int lines = 0;

	while (p && *p && lines < 2) {
		const char *nl = strchr(p, '\n');
		char line[512];
		size_t n = nl ? (size_t)(nl - p) : strlen(p);

		if (n < sizeof(line) && strncmp(p, "Filesystem", 10) != 0) {
			memcpy(line, p, n);
			line[n] = '\0';
			/* Filesystem Total Used Available Capacity Mounted */
			if (sscanf(line, "%*s %llu %llu %llu", &v[lines][0],
				   &v[lines][1], &v[lines][2]) == 3)
				lines++;
		}
		p = nl ? nl + 1 : NULL;
	}
	if (lines < 1)
		return -EPROTO;
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = 1024;
	sv->f_frsize = 1024;
	sv->f_blocks = v[0][0];
	sv->f_bfree = v[0][0] > v[0][1] ? v[0][0] - v[0][1] : 0;
	sv->f_bavail = v[0][2];
	if (lines == 2) {
		sv->f_files = v[1][0];
		sv->f_ffree = v[1][2];
		sv->f_favail = v[1][2];
	}
	sv->f_namemax = 255;
	return 0;
}

/* The server's figures for c's workspace: fs/statfs, else df. */
static int server_statfs(struct cache *c, struct statvfs *sv,
			 struct nox_err *err)
{
	static const char *const argv[] = {
	    "sh", "-c", "df -P -k /workspace && df -P -i /workspace", NULL};
	struct nox_exec_req req = {.argv = argv, .timeout_seconds = 30};
	struct nox_exec_result res;
	int r;

	if (c->ext && nox_backend_has(c->be, NOX_OP_STATFS)) {
		r = nox_backend_statfs(c->be, c->sb->id, sv, err);
		if (r != -ENOSYS && r != -EOPNOTSUPP)
			return r;
	}
	r = nox_backend_exec(c->be, c->sb->id, &req, &res, err);
	if (r < 0)
		return r;
	r = parse_df(res.out ? res.out : "", sv);
	if (r < 0)
		nox_err_set(err, EPROTO, "df in the sandbox gave %d: %.80s",
			    res.exit_code, res.err ? res.err : "");
	nox_exec_result_cleanup(&res);
	return r;
}

void cache_space_statfs_keep(struct cache *c, const struct statvfs *sv)
{
	cache_lock(c, CACHE_MU);
	c->sv = *sv;
	mono_now(&c->sv_at);
	c->sv_known = true;
	cache_unlock(c, CACHE_MU);
}

void cache_space_statfs_note(struct cache *c, const char *text)
{
	struct statvfs sv;

	if (parse_df(text, &sv) == 0)
		cache_space_statfs_keep(c, &sv);
}

/* The figures kept for c, if fresh enough; true then. */
static bool statfs_kept(struct cache *c, struct statvfs *sv, bool *listed)
{
	double ttl = c->list_ttl > SPACE_STATFS_MS / 1000.0
			 ? c->list_ttl
			 : SPACE_STATFS_MS / 1000.0;
	struct timespec now;
	bool kept;

	mono_now(&now);
	cache_lock(c, CACHE_MU);
	kept = c->sv_known && ts_diff(&now, &c->sv_at) < ttl;
	if (kept)
		*sv = c->sv;
	*listed = c->listed;
	cache_unlock(c, CACHE_MU);
	return kept;
}

int cache_space_statfs(struct cache *c, struct statvfs *sv)
{
	struct timespec now;
	struct nox_err err;
	bool listed;
	int r;

	if (statfs_kept(c, sv, &listed))
		return 0;
	/* the first listing, due at the first access anyway, carries the
	 * figures (find does its statfs before it reads the directory) */
	if (!listed && cache_list_ensure(c) == 0 && statfs_kept(c, sv, &listed))
		return 0;

	mono_now(&now);
	nox_err_clear(&err);
	r = server_statfs(c, sv, &err);
	r = cache_check_gone(c, r);
	cache_lock(c, CACHE_MU);
	if (r == 0) {
		c->sv = *sv;
		c->sv_at = now;
		c->sv_known = true;
	} else if (c->sv_known && r != -ENOENT) {
		*sv = c->sv; /* the server is away: the last answer */
		r = 0;
	}
	cache_unlock(c, CACHE_MU);
	if (r < 0)
		nox_log(NOX_LOG_DEBUG, "%s: statfs: %s", c->sb->id,
			nox_err_str(&err, r));
	return r;
}

int cache_space_statfs_root(struct fs *fs, struct statvfs *sv)
{
	struct fs_sandbox **sbs;
	struct statvfs disk;
	struct scan s = {0};
	long long max, avail;
	size_t nsb;
	char *base;
	int r;

	pthread_mutex_lock(&space_mu);
	max = max_locked(fs);
	pthread_mutex_unlock(&space_mu);
	if (fs_sandbox_list(fs, &sbs, &nsb) == 0) {
		scan_all(sbs, nsb, &s, false);
		put_all(sbs, nsb);
	}
	base = cache_base_dir(fs);
	r = base ? statvfs_up(base, &disk) : -ENOMEM;
	free(base);
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = 4096;
	sv->f_frsize = 4096;
	sv->f_namemax = 255;
	sv->f_blocks = (fsblkcnt_t)(max / 4096);
	avail = s.used < max ? max - s.used : 0;
	if (r == 0) {
		long long free_disk =
		    (long long)disk.f_bavail * (long long)disk.f_frsize;

		if (free_disk < avail)
			avail = free_disk;
		sv->f_files = disk.f_files;
		sv->f_ffree = disk.f_ffree;
		sv->f_favail = disk.f_favail;
	}
	sv->f_bfree = (fsblkcnt_t)(avail / 4096);
	sv->f_bavail = sv->f_bfree;
	return 0;
}
