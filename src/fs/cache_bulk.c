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
	bool done;	/* its entry was met in the answer */
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
 * The answer read as it is (nox_tar_read_each): each entry that names a
 * selected file is gathered in buf, then written into its tree inode,
 * with no extracted copy (a temp file per entry, made and removed, cost
 * more than the download on a file system slow to reuse inodes).
 */
struct bulk_rd {
	struct cache *c;
	struct bulk_file **by_rel; /* b->v sorted by rel */
	size_t n;
	ino_t self;
	struct stat *st; /* the self file's, once placed */
	struct bulk_file *cur;
	char *buf;
	size_t cap;
	size_t placed;
	bool self_placed;
};

static int rel_cmp(const void *a, const void *b)
{
	const struct bulk_file *const *x = a, *const *y = b;

	return strcmp((*x)->rel, (*y)->rel);
}

static int rd_file(const struct nox_tar_file *tf, void *ud)
{
	struct bulk_rd *rd = ud;
	struct bulk_file key = {.rel = (char *)tf->name}, *kp = &key, **hit;

	hit = bsearch(&kp, rd->by_rel, rd->n, sizeof(*rd->by_rel), rel_cmp);
	if (!hit || (*hit)->done || tf->size < 0 ||
	    tf->size > BULK_TOTAL_MAX)
		return 0; /* not asked for, twice, or too big: left alone */
	if ((size_t)tf->size > rd->cap) {
		char *nb = realloc(rd->buf, (size_t)tf->size);

		if (!nb)
			return -ENOMEM;
		rd->buf = nb;
		rd->cap = (size_t)tf->size;
	}
	if (tf->size > 0) /* rd->buf is still NULL before a first content */
		memset(rd->buf, 0, (size_t)tf->size); /* a sparse entry's holes */
	rd->cur = *hit;
	return 1;
}

static int rd_data(const void *p, size_t n, int64_t off, void *ud)
{
	struct bulk_rd *rd = ud;

	if (off < 0 || (uint64_t)off + n > rd->cap)
		return EPROTO; /* data past the entry's size */
	memcpy(rd->buf + off, p, n);
	return 0;
}

/*
 * Writes the gathered entry into f's tree inode, if that is still the
 * clean placeholder selected.  0, -EAGAIN (left as it is), or -errno.
 */
static int bulk_place(struct bulk_rd *rd, struct bulk_file *f,
		      const struct nox_tar_file *tf)
{
	struct cache *c = rd->c;
	bool self = f->ino == rd->self;
	struct timespec ts[2];
	struct stat tst;
	struct ment *me;
	size_t len = (size_t)tf->size;
	ssize_t w;
	int tfd, r;

	tfd = open_below(c->tree_fd, f->tpath, O_WRONLY | O_NONBLOCK);
	if (tfd < 0 || fstat(tfd, &tst) < 0 || !S_ISREG(tst.st_mode) ||
	    tst.st_ino != f->ino || tst.st_size != f->size) {
		/* renamed, replaced or written since */
		if (tfd >= 0)
			close(tfd);
		return -EAGAIN;
	}
	/* under mu, so no open for writing marks it dirty in between: a
	 * file written since is never overwritten (at most 4 MiB from
	 * memory while mu is held) */
	cache_lock(c, CACHE_MU);
	me = manifest_get(&c->man, f->ino);
	if (c->gone || !me || !me->fetching || me->fetched ||
	    me->rsize != f->size || me->rmtime != f->rmtime ||
	    cache_busy_locked(c, f->ino)) {
		r = -EAGAIN;
		goto out;
	}
	r = ftruncate(tfd, 0) < 0 ? -errno : 0;
	if (r == 0 && len > 0) {
		w = pwrite(tfd, rd->buf, len, 0);
		r = w == (ssize_t)len ? 0 : (w < 0 ? -errno : -EIO);
	}
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
	ts[1].tv_sec = (time_t)(tf->mtime_ns / 1000000000ll);
	ts[1].tv_nsec = (long)(tf->mtime_ns % 1000000000ll);
	if (ts[1].tv_nsec < 0) {
		ts[1].tv_sec--;
		ts[1].tv_nsec += 1000000000l;
	}
	(void)futimens(tfd, ts);
	if (self) {
		rd->st->st_size = (off_t)len;
		rd->st->st_mtim = ts[1];
	} else {
		manifest_mark(&c->man, me, true, (off_t)len);
		me->rmtime = ts_ns(&ts[1]);
		cache_space_used_locked(me);
		c->man_dirty = true;
	}
out:
	cache_unlock(c, CACHE_MU);
	close(tfd);
	return r;
}

static int rd_end(const struct nox_tar_file *tf, int r, void *ud)
{
	struct bulk_rd *rd = ud;
	struct bulk_file *f = rd->cur;

	rd->cur = NULL;
	if (r < 0 || !f)
		return 0;
	f->done = true;
	r = bulk_place(rd, f, tf);
	if (r == 0) {
		rd->placed++;
		if (f->ino == rd->self)
			rd->self_placed = true;
	}
	return r == -EAGAIN ? 0 : -r;
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
	static const struct nox_tar_each ops = {
	    .file = rd_file, .data = rd_data, .end = rd_end};
	struct bulk_rd rd = {.c = c, .self = ino, .st = st};
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	struct stat dst;
	struct ment *me;
	long long bytes = 0;
	size_t others, i;
	bool has_self = false, skip;
	int dfd, tfd = -1, r = -EAGAIN, pr;

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
		rd.by_rel = malloc(b.n * sizeof(*rd.by_rel));
		if (!rd.by_rel) {
			pr = -EAGAIN;
		} else {
			for (i = 0; i < b.n; i++)
				rd.by_rel[i] = &b.v[i];
			rd.n = b.n;
			qsort(rd.by_rel, rd.n, sizeof(*rd.by_rel), rel_cmp);
			pr = lseek(tfd, 0, SEEK_SET) < 0
				 ? -errno
				 : nox_tar_read_each(tfd, &lim, &ops, &rd, err);
		}
	}
	if (pr < 0 && rd.placed == 0) {
		nox_log(NOX_LOG_DEBUG, "%s: bulk fetch in '%s': %s", c->sb->id,
			dir, nox_err_str(err, pr));
		if (bulk_fatal(pr))
			r = pr;
		goto out;
	}
	/* an answer cut midway: what was placed stays (each file whole) */
	if (rd.self_placed)
		r = 0;
	nox_log(NOX_LOG_DEBUG,
		"%s: bulk fetch in '%s': %zu of %zu files, "
		"%lld bytes, one request%s",
		c->sb->id, dir, rd.placed, b.n, bytes,
		pr < 0 ? " (the answer was cut)" : "");
	nox_err_clear(err);
out:
	free(rd.by_rel);
	free(rd.buf);
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
