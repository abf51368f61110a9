/*
 * cache_bulk.c - bulk fetch: the first open of a small placeholder also
 * fetches the other small placeholders of its directory, in one request.
 *
 * With nox.files (noxd) one POST fs/files names the clean placeholders
 * of the directory (each at most BULK_FILE_MAX, together at most
 * BULK_TOTAL_MAX, at most BULK_FILES_MAX of them).  On a v1 server the
 * only way to many files in one request is the download of a directory,
 * which brings all of it, recursively: it is used only when the tree says
 * everything below the directory (fetched or not) is within
 * BULK_TOTAL_MAX; the placeholders below it are all filled.  A directory
 * found too big for that is remembered (by tree inode and mtime) so the
 * next open there does not walk it again.
 *
 * Each file lands in its tree inode only if it is still a clean
 * placeholder as selected: marked fetching by us (opens wait), not
 * written, journaled or fetched meanwhile, its manifest entry unchanged.
 * It is taken as the server has it now, as a single download does.
 *
 * Limits: one directory at a time (no sibling directories); the tree is
 * read without op_mu (names are checked again by inode before a file is
 * written).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nox/tar.h>

#include "cache_i.h"

#define BULK_FILE_MAX  (256ll * 1024)
#define BULK_TOTAL_MAX (4ll * 1024 * 1024)
#define BULK_FILES_MAX 1024
#define BULK_WALK_MAX  4096 /* v1: entries looked at below the directory */
#define BULK_DEPTH_MAX 16

struct bulk_file {
	char *tpath; /* tree (workspace) path */
	char *rel;   /* its name in the answer (v1: below the directory;
			nox.files: tpath) */
	ino_t ino;
	off_t size;	/* the placeholder's (remote) size */
	int64_t rmtime; /* the manifest's, when selected */
	bool mine;	/* marked fetching here */
};

struct bulk {
	struct bulk_file *v;
	size_t n, cap;
	bool v1;
	long long total; /* v1: every regular file below the directory */
	size_t walked;
	bool over; /* beyond a bound: not worth it */
};

static void bulk_cleanup(struct bulk *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		free(b->v[i].tpath);
		free(b->v[i].rel);
	}
	free(b->v);
}

static char *join(const char *dir, const char *name)
{
	size_t a = strlen(dir), n = strlen(name);
	char *s = malloc(a + n + 2);

	if (!s)
		return NULL;
	if (a) {
		memcpy(s, dir, a);
		s[a++] = '/';
	}
	memcpy(s + a, name, n + 1);
	return s;
}

static int bulk_add(struct bulk *b, const char *tdir, const char *rdir,
		    const char *name, const struct stat *st)
{
	struct bulk_file *f;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;

		f = realloc(b->v, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		b->v = f;
		b->cap = cap;
	}
	f = &b->v[b->n];
	memset(f, 0, sizeof(*f));
	f->tpath = join(tdir, name);
	f->rel = join(rdir, name);
	if (!f->tpath || !f->rel) {
		free(f->tpath);
		free(f->rel);
		return -ENOMEM;
	}
	f->ino = st->st_ino;
	f->size = st->st_size;
	b->n++;
	return 0;
}

/*
 * Collects the small regular files of tree directory dfd (tree path
 * tdir, rdir below the bulk's root); on v1 descends and counts every
 * file.  Takes dfd.  0 or -ENOMEM.
 */
static int bulk_walk(struct bulk *b, int dfd, const char *tdir,
		     const char *rdir, int depth)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int r = 0;

	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return 0;
	}
	while (r == 0 && !b->over && (de = readdir(d)) != NULL) {
		const char *name = de->d_name;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (++b->walked > BULK_WALK_MAX && b->v1) {
			b->over = true;
			break;
		}
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode)) {
			if (b->v1) {
				b->total += st.st_size;
				if (b->total > BULK_TOTAL_MAX) {
					b->over = true;
					break;
				}
			}
			if (st.st_size <= BULK_FILE_MAX)
				r = bulk_add(b, tdir, rdir, name, &st);
		} else if (S_ISDIR(st.st_mode) && b->v1) {
			char *t, *rr;
			int fd;

			if (depth >= BULK_DEPTH_MAX) {
				b->over = true;
				break;
			}
			fd = openat(dirfd(d), name,
				    O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					O_CLOEXEC);
			if (fd < 0)
				continue;
			t = join(tdir, name);
			rr = join(rdir, name);
			if (t && rr)
				r = bulk_walk(b, fd, t, rr, depth + 1);
			else {
				close(fd);
				r = -ENOMEM;
			}
			free(t);
			free(rr);
		}
	}
	closedir(d);
	return r;
}

/*
 * With mu: marks the clean placeholders among the walked files fetching
 * (n's inode, already marked by the caller, is taken as it is); keeps the
 * bounds.  Returns how many others were marked; *self says whether n is
 * among them.
 */
static size_t bulk_select_locked(struct cache *c, struct bulk *b, ino_t self,
				 bool *has_self, long long *bytes)
{
	size_t i, k = 0, others = 0;
	long long sum = 0;

	*has_self = false;
	for (i = 0; i < b->n; i++) {
		struct bulk_file f = b->v[i];
		struct ment *me = manifest_get(&c->man, f.ino);
		bool take;

		if (!me || me->fetched || me->rsize != f.size)
			continue;
		if (f.ino == self) {
			take = !*has_self;
			*has_self = true;
		} else {
			take = !me->fetching && !cache_busy_locked(c, f.ino) &&
			       k < BULK_FILES_MAX &&
			       sum + f.size <= BULK_TOTAL_MAX;
			if (take) {
				me->fetching = true;
				f.mine = true;
				others++;
			}
		}
		if (!take)
			continue;
		f.rmtime = me->rmtime;
		sum += f.size;
		/* keep the selected ones first, in order */
		b->v[i] = b->v[k];
		b->v[k++] = f;
	}
	/* the rest are no longer wanted */
	for (i = k; i < b->n; i++) {
		free(b->v[i].tpath);
		free(b->v[i].rel);
	}
	b->n = k;
	*bytes = sum;
	return others;
}

static int copy_all(int from, int to)
{
	char buf[65536];
	off_t off = 0;
	ssize_t n, w;

	for (;;) {
		n = pread(from, buf, sizeof(buf), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		w = pwrite(to, buf, (size_t)n, off);
		if (w != n)
			return w < 0 ? -errno : -EIO;
		off += n;
	}
}

/* Opens path below dirfd, never through a symlink; -errno. */
static int open_below(int dirfd, const char *path, int flags)
{
	const char *base;
	int pfd, fd, r;

	r = fdio_parent(dirfd, path, &pfd, &base);
	if (r < 0)
		return r;
	fd = openat(pfd, base, flags | O_NOFOLLOW | O_CLOEXEC);
	r = fd < 0 ? -errno : fd;
	close(pfd);
	return r;
}

/*
 * Puts the answer's copy of f (in extracted dir xfd) into its tree inode,
 * if that is still the clean placeholder selected; *st gets the copy's
 * stat.  0, or -EAGAIN (left as it is), or -errno.
 */
static int bulk_place(struct cache *c, const struct bulk_file *f, int xfd,
		      bool self, struct stat *st)
{
	struct timespec ts[2];
	struct stat tst;
	struct ment *me;
	int sfd, tfd, r;

	sfd = open_below(xfd, f->rel, O_RDONLY);
	if (sfd < 0) /* not in the answer: left a placeholder */
		return -EAGAIN;
	if (fstat(sfd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(sfd);
		return -EAGAIN;
	}
	tfd = open_below(c->tree_fd, f->tpath, O_WRONLY | O_NONBLOCK);
	if (tfd < 0 || fstat(tfd, &tst) < 0 || !S_ISREG(tst.st_mode) ||
	    tst.st_ino != f->ino || tst.st_size != f->size) {
		/* renamed, replaced or written since */
		if (tfd >= 0)
			close(tfd);
		close(sfd);
		return -EAGAIN;
	}
	/* under mu, so no open for writing marks it dirty in between: a
	 * file written since is never overwritten (at most 256 KiB from
	 * the page cache while mu is held) */
	cache_lock(c, CACHE_MU);
	me = manifest_get(&c->man, f->ino);
	if (c->gone || !me || !me->fetching || me->fetched ||
	    me->rsize != f->size || me->rmtime != f->rmtime ||
	    cache_busy_locked(c, f->ino)) {
		r = -EAGAIN;
		goto out;
	}
	r = ftruncate(tfd, 0) < 0 ? -errno : copy_all(sfd, tfd);
	if (r == 0 && st->st_size != f->size && ftruncate(tfd, st->st_size) < 0)
		r = -errno;
	if (r < 0) {
		/* back to the placeholder it was */
		(void)ftruncate(tfd, 0);
		(void)ftruncate(tfd, f->size);
		ts[0] = tst.st_atim;
		ts[1] = tst.st_mtim;
		(void)futimens(tfd, ts);
		goto out;
	}
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1] = st->st_mtim;
	(void)futimens(tfd, ts);
	if (!self) {
		manifest_mark(&c->man, me, true, st->st_size);
		me->rmtime = ts_ns(&st->st_mtim);
		cache_space_used_locked(me, f->tpath);
		c->man_dirty = true;
	}
out:
	cache_unlock(c, CACHE_MU);
	close(tfd);
	close(sfd);
	return r;
}

/* Errors of the transport: a per-file download would only wait again. */
static bool bulk_fatal(int r)
{
	return r == -ETIMEDOUT || r == -ECONNREFUSED || r == -ECONNRESET ||
	       r == -EHOSTUNREACH || r == -ENETUNREACH;
}

/* The request: one fs/files, or (v1) the download of directory dir. */
static int bulk_request(struct cache *c, struct bulk *b, const char *dir,
			int tfd, struct nox_err *err)
{
	char src[PATH_MAX + 16];
	const char **paths;
	size_t i;
	int r;

	if (b->v1) {
		if (*dir)
			snprintf(src, sizeof(src), "/workspace/%s", dir);
		else
			snprintf(src, sizeof(src), "/workspace");
		return nox_backend_download(c->be, c->sb->id, src, tfd, err);
	}
	paths = calloc(b->n, sizeof(*paths));
	if (!paths)
		return nox_err_set(err, ENOMEM, "out of memory");
	for (i = 0; i < b->n; i++)
		paths[i] = b->v[i].tpath;
	r = nox_backend_download_files(c->be, c->sb->id, paths, b->n, tfd, err);
	free(paths);
	return r;
}

/* Remembers tree directory (ino, mtime) as too big for a v1 bulk. */
static void bulk_skip(struct cache *c, const struct stat *dst)
{
	cache_lock(c, CACHE_MU);
	c->bulk_skip_ino = dst->st_ino;
	c->bulk_skip_ns = ts_ns(&dst->st_mtim);
	cache_unlock(c, CACHE_MU);
}

int cache_bulk_fetch(struct cache *c, ino_t ino, const char *path,
		     struct stat *st, struct nox_err *err)
{
	struct bulk b = {0};
	struct nox_tar_limits lim = {.max_bytes = 4 * BULK_TOTAL_MAX,
				     .max_entries = 4 * BULK_WALK_MAX};
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX], xname[64];
	struct stat dst;
	struct ment *me;
	long long bytes = 0;
	size_t others, i, placed = 0;
	bool has_self = false, skip;
	int dfd, tfd = -1, xfd = -1, r = -EAGAIN, pr;

	cache_lock(c, CACHE_MU);
	me = manifest_get(&c->man, ino);
	skip = !me || me->rsize > BULK_FILE_MAX;
	cache_unlock(c, CACHE_MU);
	if (skip)
		return -EAGAIN;
	b.v1 = !nox_backend_has(c->be, NOX_OP_FILES);
	if (slash) {
		if ((size_t)(slash - path) >= sizeof(dir))
			return -EAGAIN;
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
		dfd = open_below(c->tree_fd, dir, O_RDONLY | O_DIRECTORY);
	} else {
		dir[0] = '\0';
		dfd =
		    openat(c->tree_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (dfd < 0)
		return -EAGAIN;
	if (fstat(dfd, &dst) < 0) {
		close(dfd);
		return -EAGAIN;
	}
	cache_lock(c, CACHE_MU);
	skip = c->bulk_skip_ino == dst.st_ino &&
	       c->bulk_skip_ns == ts_ns(&dst.st_mtim);
	cache_unlock(c, CACHE_MU);
	if (skip) {
		close(dfd);
		return -EAGAIN;
	}
	/* names in the answer: below dir on v1, else workspace paths */
	if (bulk_walk(&b, dfd, dir, b.v1 ? "" : dir, 0) < 0 || b.over) {
		if (b.over)
			bulk_skip(c, &dst);
		goto out;
	}

	cache_lock(c, CACHE_MU);
	others = bulk_select_locked(c, &b, ino, &has_self, &bytes);
	cache_unlock(c, CACHE_MU);
	if (!has_self || others == 0)
		goto out;

	cache_space_room(c, (off_t)bytes);
	tfd = cache_tmp_file(c);
	if (tfd < 0)
		goto out;
	pr = bulk_request(c, &b, dir, tfd, err);
	if (pr == 0) {
		xfd = cache_tmp_dir(c, "bulk", xname, sizeof(xname));
		if (xfd < 0)
			pr = -EAGAIN;
		else if (lseek(tfd, 0, SEEK_SET) < 0)
			pr = -errno;
		else
			pr = nox_tar_extract(tfd, xfd, &lim, err);
	}
	if (pr < 0) {
		nox_log(NOX_LOG_DEBUG, "%s: bulk fetch in '%s': %s", c->sb->id,
			dir, nox_err_str(err, pr));
		if (bulk_fatal(pr))
			r = pr;
		goto out;
	}
	for (i = 0; i < b.n; i++) {
		bool self = b.v[i].ino == ino;
		struct stat sst;

		pr = bulk_place(c, &b.v[i], xfd, self, &sst);
		if (pr == 0) {
			placed++;
			if (self) {
				*st = sst;
				r = 0;
			}
		}
	}
	nox_log(NOX_LOG_DEBUG,
		"%s: bulk fetch in '%s': %zu of %zu files, "
		"%lld bytes, one request",
		c->sb->id, dir, placed, b.n, bytes);
	nox_err_clear(err);
out:
	if (xfd >= 0)
		cache_tmp_dir_remove(c, xname, xfd);
	if (tfd >= 0)
		close(tfd);
	cache_lock(c, CACHE_MU);
	for (i = 0; i < b.n; i++) {
		if (!b.v[i].mine)
			continue;
		me = manifest_get(&c->man, b.v[i].ino);
		if (me)
			me->fetching = false;
	}
	pthread_cond_broadcast(&c->cond);
	cache_unlock(c, CACHE_MU);
	bulk_cleanup(&b);
	return r;
}
