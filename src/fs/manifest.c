/*
 * manifest.c - remote state of the cache tree, listings and their merge
 * (see manifest.h).
 *
 * Every name that comes from the server (find output, tar entries) is
 * checked with nox_path_validate() and every tree access walks one
 * component at a time with O_NOFOLLOW, so a hostile listing can neither
 * leave the tree nor write through a symlink it planted earlier.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nox/nox.h>

#include "fdio_i.h"
#include "manifest.h"

#define M_TAG "noxfs-manifest 1"

/* ---- the inode table ------------------------------------------------ */

#define CHUNK 4096 /* entries per chunk */

/* the size the memory figures in manifest.h and docs/cache.md assume */
_Static_assert(sizeof(struct ment) <= 32, "struct ment grew past 32 bytes");

static _Atomic uint32_t use_clock;

uint32_t manifest_use_clock(void)
{
	return atomic_fetch_add(&use_clock, 1) + 1;
}

static struct ment *slot(const struct manifest *m, size_t s)
{
	return &m->chunks[s / CHUNK][s % CHUNK];
}

static size_t home(const struct manifest *m, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 32) & (m->icap - 1);
}

int manifest_init(struct manifest *m)
{
	memset(m, 0, sizeof(*m));
	m->icap = 1024;
	m->index = calloc(m->icap, sizeof(*m->index));
	return m->index ? 0 : -ENOMEM;
}

void manifest_cleanup(struct manifest *m)
{
	size_t i;

	for (i = 0; i < m->nchunks; i++)
		free(m->chunks[i]);
	free(m->chunks);
	free(m->index);
	memset(m, 0, sizeof(*m));
}

/* The bucket that holds ino, or the empty one where it would go. */
static size_t find(const struct manifest *m, ino_t ino)
{
	size_t i;

	for (i = home(m, ino); m->index[i]; i = (i + 1) & (m->icap - 1))
		if (slot(m, m->index[i] - 1)->ino == ino)
			break;
	return i;
}

struct ment *manifest_get(struct manifest *m, ino_t ino)
{
	size_t i;

	if (!m->index)
		return NULL;
	i = find(m, ino);
	return m->index[i] ? slot(m, m->index[i] - 1) : NULL;
}

static int grow_index(struct manifest *m)
{
	size_t nc = m->icap * 2, i, j;
	uint32_t *nv = calloc(nc, sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	for (i = 0; i < m->icap; i++) {
		uint64_t h;

		if (!m->index[i])
			continue;
		h = (uint64_t)slot(m, m->index[i] - 1)->ino *
		    0x9e3779b97f4a7c15ull;
		for (j = (size_t)(h >> 32) & (nc - 1); nv[j]; j = (j + 1) & (nc - 1))
			;
		nv[j] = m->index[i];
	}
	free(m->index);
	m->index = nv;
	m->icap = nc;
	return 0;
}

/* A free slot (reused, or a new one), zeroed: its number, or -ENOMEM. */
static long long take_slot(struct manifest *m)
{
	size_t s;

	if (m->free_top) {
		s = m->free_top - 1;
		m->free_top = (size_t)slot(m, s)->rsize;
	} else {
		if (m->top >= (size_t)UINT32_MAX - 1)
			return -ENOMEM;
		if (m->top == m->nchunks * CHUNK) {
			struct ment **nv = realloc(
			    m->chunks, (m->nchunks + 1) * sizeof(*nv));

			if (!nv)
				return -ENOMEM;
			m->chunks = nv;
			nv[m->nchunks] = malloc(CHUNK * sizeof(struct ment));
			if (!nv[m->nchunks])
				return -ENOMEM;
			m->nchunks++;
		}
		s = m->top++;
	}
	memset(slot(m, s), 0, sizeof(struct ment));
	return (long long)s;
}

struct ment *manifest_set(struct manifest *m, ino_t ino, off_t size,
			  int64_t mtime, bool fetched)
{
	struct ment *e = manifest_get(m, ino);

	if (!e) {
		long long s;
		size_t i;

		if (2 * (m->count + 1) > m->icap && grow_index(m) < 0)
			return NULL;
		s = take_slot(m);
		if (s < 0)
			return NULL;
		e = slot(m, (size_t)s);
		e->ino = ino;
		i = find(m, ino);
		m->index[i] = (uint32_t)s + 1;
		m->count++;
	}
	manifest_mark(m, e, fetched, size);
	e->rmtime = mtime;
	return e;
}

void manifest_mark(struct manifest *m, struct ment *e, bool fetched,
		   off_t rsize)
{
	if (e->fetched)
		m->fetched_bytes -= e->rsize;
	e->fetched = fetched;
	e->rsize = rsize;
	if (e->fetched)
		m->fetched_bytes += e->rsize;
}

void manifest_del(struct manifest *m, ino_t ino)
{
	size_t i, j, s, mask = m->icap - 1;
	struct ment *e;

	if (!m->index || ino == 0)
		return;
	i = find(m, ino);
	if (!m->index[i])
		return;
	s = m->index[i] - 1;
	e = slot(m, s);
	if (e->fetched)
		m->fetched_bytes -= e->rsize;
	memset(e, 0, sizeof(*e));
	e->rsize = (off_t)m->free_top; /* the free list runs through rsize */
	m->free_top = s + 1;
	m->count--;
	/* backward-shift deletion: no tombstones in a linear-probing index */
	m->index[i] = 0;
	for (j = (i + 1) & mask; m->index[j]; j = (j + 1) & mask) {
		size_t h = home(m, slot(m, m->index[j] - 1)->ino);

		/* the entry at j may move to i if i lies on its probe path,
		 * that is, cyclically in [h, j) */
		if (((j - h) & mask) >= ((j - i) & mask)) {
			m->index[i] = m->index[j];
			m->index[j] = 0;
			i = j;
		}
	}
}

struct ment *manifest_next(struct manifest *m, size_t *pos)
{
	while (*pos < m->top) {
		struct ment *e = slot(m, (*pos)++);

		if (e->ino)
			return e;
	}
	return NULL;
}

int manifest_load(struct manifest *m, int dirfd, const char *name)
{
	char line[256];
	FILE *f;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return -errno;
	}
	if (!fgets(line, sizeof(line), f) ||
	    strncmp(line, M_TAG, strlen(M_TAG)) != 0) {
		fclose(f);
		nox_log(NOX_LOG_WARN,
			"cache manifest %s: unknown format; "
			"contents will be downloaded again",
			name);
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long long ino;
		long long size, mtime;
		int fetched;

		if (sscanf(line, "%llu %lld %lld %d", &ino, &size, &mtime,
			   &fetched) != 4 ||
		    size < 0)
			continue;
		if (!manifest_set(m, (ino_t)ino, (off_t)size, mtime,
				  fetched != 0)) {
			fclose(f);
			return -ENOMEM;
		}
	}
	fclose(f);
	return 0;
}

int manifest_save(struct manifest *m, int dirfd, const char *name)
{
	char tmp[NAME_MAX + 1];
	const struct ment *e;
	size_t pos = 0;
	FILE *f;
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -errno;
	}
	fprintf(f, "%s\n", M_TAG);
	while ((e = manifest_next(m, &pos)) != NULL)
		fprintf(f, "%llu %lld %" PRId64 " %d\n",
			(unsigned long long)e->ino, (long long)e->rsize,
			e->rmtime, e->fetched ? 1 : 0);
	if (fflush(f) != 0 || ferror(f))
		r = -EIO;
	if (fclose(f) != 0 && r == 0)
		r = -EIO;
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0)
		(void)unlinkat(dirfd, tmp, 0);
	return r;
}

/* ---- tree access ---------------------------------------------------- */

static int walk_below(int dfd, char *path, size_t plen, unsigned depth,
		      int (*visit)(const char *path, ino_t ino, void *ud),
		      void *ud)
{
	struct dirent *d;
	DIR *dp;
	int fd, r = 0;

	if (depth > 256)
		return 0;
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return 0;
	}
	while (r == 0 && (d = readdir(dp)) != NULL) {
		size_t nl = strlen(d->d_name);
		unsigned char type = d->d_type;
		struct stat st;

		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		if (plen + nl + 2 > PATH_MAX)
			continue;
		if (type == DT_UNKNOWN) /* file systems that do not say */
			type = fstatat(dirfd(dp), d->d_name, &st,
				       AT_SYMLINK_NOFOLLOW) == 0 &&
					   S_ISDIR(st.st_mode)
				   ? DT_DIR
				   : DT_REG;
		if (plen)
			path[plen] = '/';
		memcpy(path + plen + (plen ? 1 : 0), d->d_name, nl + 1);
		if (type == DT_DIR) {
			int cfd = openat(dirfd(dp), d->d_name,
					 O_PATH | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);

			if (cfd >= 0) {
				r = walk_below(cfd, path,
					       plen + nl + (plen ? 1 : 0),
					       depth + 1, visit, ud);
				close(cfd);
			}
		} else {
			r = visit(path, d->d_ino, ud);
		}
		path[plen] = '\0';
	}
	closedir(dp);
	return r;
}

int tree_walk(int tree_fd, int (*visit)(const char *path, ino_t ino, void *ud),
	      void *ud)
{
	char path[PATH_MAX];

	path[0] = '\0';
	return walk_below(tree_fd, path, 0, 0, visit, ud);
}

static int remove_dir_contents(int dfd)
{
	struct dirent *d;
	DIR *dp;
	int fd, r = 0;

	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return -errno;
	}
	while ((d = readdir(dp)) != NULL) {
		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		if (tree_remove(dirfd(dp), d->d_name) < 0)
			r = -EIO;
	}
	closedir(dp);
	return r;
}

int tree_remove(int pfd, const char *name)
{
	struct stat st;
	int fd;

	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(pfd, name, 0) < 0 ? -errno : 0;
	fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	(void)remove_dir_contents(fd);
	close(fd);
	return unlinkat(pfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

/* ---- listings ------------------------------------------------------- */

static const char *const find_argv[] = {
    "find", "/workspace", "-mindepth",
    "1",    "-printf",	  "%y\\0%m\\0%s\\0%T@\\0%i\\0%n\\0%l\\0%P\\0",
    NULL};

const char *const *listing_find_argv(void)
{
	return find_argv;
}

void listing_cleanup(struct listing *l)
{
	int (*part)(struct listing *, void *) = l->part;
	void *part_ud = l->part_ud;
	size_t part_max = l->part_max;
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].path);
		free(l->v[i].target);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
	l->part = part;
	l->part_ud = part_ud;
	l->part_max = part_max;
}

static int listing_add(struct listing *l, const char *path, char type,
		       mode_t mode, off_t size, int64_t mtime,
		       const char *target, uint64_t rino, unsigned long nlink)
{
	struct rent *e;

	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 256;
		struct rent *nv = realloc(l->v, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = nc;
	}
	e = &l->v[l->n];
	memset(e, 0, sizeof(*e));
	e->path = strdup(path);
	e->target = target ? strdup(target) : NULL;
	if (!e->path || (target && !e->target)) {
		free(e->path);
		free(e->target);
		return -ENOMEM;
	}
	e->type = type;
	e->mode = mode & 07777;
	e->size = size;
	e->mtime = mtime;
	e->rino = rino;
	e->nlink = nlink;
	l->n++;
	return 0;
}

int listing_add_stat(struct listing *l, const char *path, const struct stat *st,
		     const char *target)
{
	int64_t mt = st->st_mtim.tv_sec * 1000000000ll + st->st_mtim.tv_nsec;

	if (S_ISDIR(st->st_mode))
		return listing_add(l, path, 'd', st->st_mode, 0, mt, NULL, 0,
				   1);
	if (S_ISLNK(st->st_mode))
		return target ? listing_add(l, path, 'l', 0777, 0, mt, target,
					    0, 1)
			      : -EPROTO;
	if (S_ISREG(st->st_mode))
		return listing_add(l, path, 'f', st->st_mode, st->st_size, mt,
				   NULL, (uint64_t)st->st_ino,
				   (unsigned long)st->st_nlink);
	if (S_ISFIFO(st->st_mode) || S_ISSOCK(st->st_mode))
		return listing_add(l, path, S_ISFIFO(st->st_mode) ? 'p' : 's',
				   st->st_mode, 0, mt, NULL, 0, 1);
	return 0; /* devices: not mirrored */
}

/* "1700000000.1234567890" (find's %T@) in nanoseconds. */
static int parse_time(const char *s, int64_t *out)
{
	long long sec = 0, frac = 0;
	const char *p = s;
	int digits = 0;
	bool neg = false;

	if (*p == '-') {
		neg = true;
		p++;
	}
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (sec > 9000000000ll)
			return -1;
		sec = sec * 10 + (*p - '0');
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++) {
			if (digits < 9) {
				frac = frac * 10 + (*p - '0');
				digits++;
			}
		}
	}
	if (*p)
		return -1;
	for (; digits < 9; digits++)
		frac *= 10;
	*out = (neg ? -sec : sec) * 1000000000ll + (neg ? -frac : frac);
	return 0;
}

int listing_parse_find(const char *out, size_t len, struct listing *l,
		       struct nox_err *err)
{
	const char *f[8];
	size_t pos = 0;
	int r;

	memset(l, 0, sizeof(*l));
	if (memmem(out, len, "\xef\xbf\xbd", 3))
		return nox_err_set(err, EILSEQ,
				   "listing has names that are not UTF-8");
	while (pos < len) {
		long long mode, size, ino, nlink;
		int64_t mtime;
		char *end;
		int i;
		char type;

		for (i = 0; i < 8; i++) {
			const char *z = memchr(out + pos, '\0', len - pos);

			if (!z) {
				r = nox_err_set(err, EPROTO,
						"listing: truncated record");
				goto fail;
			}
			f[i] = out + pos;
			pos = (size_t)(z - out) + 1;
		}
		errno = 0;
		mode = strtoll(f[1], &end, 8);
		if (errno || *end || end == f[1] || mode < 0)
			goto bad;
		size = strtoll(f[2], &end, 10);
		if (errno || *end || end == f[2] || size < 0)
			goto bad;
		if (parse_time(f[3], &mtime) < 0)
			goto bad;
		ino = strtoll(f[4], &end, 10);
		if (errno || *end || end == f[4] || ino < 0)
			goto bad;
		nlink = strtoll(f[5], &end, 10);
		if (errno || *end || end == f[5] || nlink < 0)
			goto bad;
		if (strlen(f[0]) != 1)
			goto bad;
		switch (f[0][0]) {
		case 'd':
		case 'l':
		case 'p':
		case 's':
			type = f[0][0];
			break;
		default:
			/* files; devices show as files */
			type = 'f';
			break;
		}
		if (nox_path_validate(f[7], NULL) < 0 || !*f[7] ||
		    strcmp(f[7], ".") == 0)
			goto bad;
		if (type == 'l' && !*f[6])
			goto bad;
		r = listing_add(
		    l, f[7], type, (mode_t)mode, type == 'f' ? (off_t)size : 0,
		    mtime, type == 'l' ? f[6] : NULL,
		    type == 'f' && f[0][0] == 'f' ? (uint64_t)ino : 0,
		    (unsigned long)nlink);
		if (r < 0) {
			nox_err_set(err, ENOMEM, "out of memory");
			goto fail;
		}
	}
	return 0;
bad:
	r = nox_err_set(err, EPROTO, "listing: malformed or hostile record");
fail:
	listing_cleanup(l);
	return r;
}

static int walk_dir(int dfd, char *path, size_t plen, struct listing *l,
		    unsigned depth)
{
	struct dirent *d;
	DIR *dp;
	int fd, r = 0;

	if (depth > 256)
		return -ELOOP;
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return -errno;
	}
	while (r == 0 && (d = readdir(dp)) != NULL) {
		size_t nl = strlen(d->d_name);
		struct stat st;
		char target[PATH_MAX];
		ssize_t tl;

		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		if (plen + nl + 2 > PATH_MAX) {
			r = -ENAMETOOLONG;
			break;
		}
		if (plen)
			path[plen] = '/';
		memcpy(path + plen + (plen ? 1 : 0), d->d_name, nl + 1);
		if (fstatat(dirfd(dp), d->d_name, &st, AT_SYMLINK_NOFOLLOW) <
		    0) {
			r = -errno;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			r = listing_add(l, path, 'd', st.st_mode, 0,
					st.st_mtim.tv_sec * 1000000000ll +
					    st.st_mtim.tv_nsec,
					NULL, 0, 1);
			if (r == 0) {
				int cfd = openat(dirfd(dp), d->d_name,
						 O_PATH | O_DIRECTORY |
						     O_NOFOLLOW | O_CLOEXEC);

				if (cfd < 0) {
					r = -errno;
				} else {
					r = walk_dir(cfd, path,
						     plen + nl + (plen ? 1 : 0),
						     l, depth + 1);
					close(cfd);
				}
			}
		} else if (S_ISLNK(st.st_mode)) {
			tl = readlinkat(dirfd(dp), d->d_name, target,
					sizeof(target) - 1);
			if (tl < 0) {
				r = -errno;
				break;
			}
			target[tl] = '\0';
			r = listing_add(l, path, 'l', 0777, 0,
					st.st_mtim.tv_sec * 1000000000ll +
					    st.st_mtim.tv_nsec,
					target, 0, 1);
		} else if (S_ISREG(st.st_mode)) {
			/* the extracted tar's own links group like the
			 * server's */
			r = listing_add(l, path, 'f', st.st_mode, st.st_size,
					st.st_mtim.tv_sec * 1000000000ll +
					    st.st_mtim.tv_nsec,
					NULL, (uint64_t)st.st_ino,
					(unsigned long)st.st_nlink);
		}
		if (r == 0 && l->part && l->n >= l->part_max)
			r = l->part(l, l->part_ud);
		path[plen] = '\0';
	}
	closedir(dp);
	return r;
}

int listing_from_dir(int dirfd, struct listing *l, struct nox_err *err)
{
	char path[PATH_MAX];
	int r;

	listing_cleanup(l); /* empty, keeping the part hook */
	path[0] = '\0';
	r = walk_dir(dirfd, path, 0, l, 0);
	if (r < 0) {
		listing_cleanup(l);
		return nox_err_set(err, r, "listing the downloaded tar: %s",
				   strerror(-r));
	}
	return 0;
}

/* ---- merge ---------------------------------------------------------- */

/*
 * A small open-addressing map from an inode number (never 0) to another
 * number and a path (owned: a merge outlives the listing parts it is
 * given), for the hard links of one merge; grown at half full.
 */
struct lslot {
	uint64_t key;
	uint64_t val;
	char *path;
};

struct lmap {
	struct lslot *v;
	size_t cap, n;
};

static struct lslot *lmap_find(const struct lmap *m, uint64_t key)
{
	size_t i;

	if (!m->cap)
		return NULL;
	for (i = (size_t)(key * 0x9e3779b97f4a7c15ull) & (m->cap - 1);
	     m->v[i].key; i = (i + 1) & (m->cap - 1))
		if (m->v[i].key == key)
			return &m->v[i];
	return NULL;
}

/* Adds key (not there yet), taking path (freed on failure); -ENOMEM. */
static int lmap_put(struct lmap *m, uint64_t key, uint64_t val, char *path)
{
	size_t i;

	if (2 * (m->n + 1) > m->cap) {
		struct lmap nm = {.cap = m->cap ? m->cap * 2 : 64};

		nm.v = calloc(nm.cap, sizeof(*nm.v));
		if (!nm.v) {
			free(path);
			return -ENOMEM;
		}
		for (i = 0; i < m->cap; i++)
			if (m->v[i].key)
				(void)lmap_put(&nm, m->v[i].key, m->v[i].val,
					       m->v[i].path);
		free(m->v);
		*m = nm;
	}
	for (i = (size_t)(key * 0x9e3779b97f4a7c15ull) & (m->cap - 1);
	     m->v[i].key; i = (i + 1) & (m->cap - 1))
		;
	m->v[i].key = key;
	m->v[i].val = val;
	m->v[i].path = path;
	m->n++;
	return 0;
}

static int lmap_add(struct lmap *m, uint64_t key, uint64_t val,
		    const char *path)
{
	char *p = strdup(path);

	return p ? lmap_put(m, key, val, p) : -ENOMEM;
}

static void lmap_free(struct lmap *m)
{
	size_t i;

	for (i = 0; i < m->cap; i++)
		free(m->v[i].path);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/*
 * The names of files with several links a merge was given, as 32-bit
 * hashes with a seed drawn per merge (4 bytes a path, at most half
 * full): the prune asks it whether the server has such a name, which the
 * mark of the inode cannot say (the other names share it).  A name the
 * server dropped that shares a hash with one it has (about 1 in 4,000
 * with a million names, and a new draw at every listing) only keeps its
 * stale name until the next listing.
 */
struct pset {
	uint32_t *v;
	size_t cap, n;
	uint64_t seed;
};

static uint32_t pset_hash(const struct pset *s, const char *path)
{
	uint64_t h = s->seed ^ 0xcbf29ce484222325ull;
	const unsigned char *p = (const unsigned char *)path;

	for (; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	/* splitmix64's finaliser: the low bits index the table */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return (uint32_t)h ? (uint32_t)h : 1;
}

static bool pset_has(const struct pset *s, const char *path)
{
	uint32_t h = pset_hash(s, path);
	size_t i;

	if (!s->cap)
		return false;
	for (i = (size_t)h & (s->cap - 1); s->v[i]; i = (i + 1) & (s->cap - 1))
		if (s->v[i] == h)
			return true;
	return false;
}

static void pset_put_hash(struct pset *s, uint32_t h)
{
	size_t i;

	for (i = (size_t)h & (s->cap - 1); s->v[i]; i = (i + 1) & (s->cap - 1))
		if (s->v[i] == h)
			return;
	s->v[i] = h;
	s->n++;
}

static int pset_add(struct pset *s, const char *path)
{
	size_t i;

	if (2 * (s->n + 1) > s->cap) {
		struct pset ns = {.cap = s->cap ? s->cap * 2 : 1024,
				  .seed = s->seed};

		ns.v = calloc(ns.cap, sizeof(*ns.v));
		if (!ns.v)
			return -ENOMEM;
		for (i = 0; i < s->cap; i++)
			if (s->v[i])
				pset_put_hash(&ns, s->v[i]);
		free(s->v);
		*s = ns;
	}
	pset_put_hash(s, pset_hash(s, path));
	return 0;
}

struct merge {
	struct manifest *m;
	int tree_fd;
	int src_fd;
	uint16_t gen;	  /* marks the entries of the tree names merged */
	struct pset multi; /* names of files with several links */
	size_t n;	  /* entries merged */
	bool was_empty;	  /* the manifest was: nothing to prune */
	bool (*busy)(ino_t ino, void *ud);
	bool (*skip)(const char *path, void *ud);
	void *ud;
	unsigned made, changed, removed, skipped, linked;
	/* hard links: server inode -> the tree file of its first name,
	 * and tree inode -> the server inode its first name had */
	struct lmap rinos, tinos;
};

/* Tree name path (st) is the server's: named in a part of this merge. */
static bool remote_has(const struct merge *g, const char *path,
		       const struct stat *st)
{
	const struct ment *me;

	if (S_ISREG(st->st_mode) && st->st_nlink > 1)
		return pset_has(&g->multi, path);
	me = manifest_get(g->m, st->st_ino);
	return me && me->seen == g->gen;
}

/* e's tree name was merged (NULL: nothing the manifest knows). */
static struct ment *seen(struct merge *g, struct ment *e)
{
	if (e)
		e->seen = g->gen;
	return e;
}

static void set_times(int fd, int64_t mtime)
{
	struct timespec ts[2];

	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = (time_t)(mtime / 1000000000ll);
	ts[1].tv_nsec = (long)(mtime % 1000000000ll);
	if (ts[1].tv_nsec < 0) {
		ts[1].tv_sec--;
		ts[1].tv_nsec += 1000000000l;
	}
	(void)futimens(fd, ts);
}

/* Copies the content of src path e->path into fd (truncated first). */
static int fill_from_src(struct merge *g, const struct rent *e, int fd)
{
	const char *base;
	char buf[65536];
	int pfd, sfd, r;
	ssize_t n;

	r = fdio_parent(g->src_fd, e->path, &pfd, &base);
	if (r < 0)
		return r;
	sfd = openat(pfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	close(pfd);
	if (sfd < 0)
		return -errno;
	if (ftruncate(fd, 0) < 0) {
		r = -errno;
		close(sfd);
		return r;
	}
	for (;;) {
		n = read(sfd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (write(fd, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	}
	r = n < 0 ? -EIO : 0;
	close(sfd);
	return r;
}

static mode_t type_bits(char t)
{
	switch (t) {
	case 'd':
		return S_IFDIR;
	case 'l':
		return S_IFLNK;
	case 'p':
		return S_IFIFO;
	case 's':
		return S_IFSOCK;
	default:
		return S_IFREG;
	}
}

/* Makes (or refills) the tree file e at pfd/base; fd of it in *out. */
static int put_file(struct merge *g, const struct rent *e, int pfd,
		    const char *base, bool create)
{
	struct stat st;
	bool have = false;
	int fd, r = 0;

	fd = openat(pfd, base,
		    O_WRONLY | O_NOFOLLOW | O_CLOEXEC |
			(create ? O_CREAT | O_EXCL : 0),
		    e->mode & 0777);
	if (fd < 0)
		return -errno;
	if (g->src_fd >= 0 && fill_from_src(g, e, fd) == 0)
		have = true;
	if (!have && (ftruncate(fd, 0) < 0 || ftruncate(fd, e->size) < 0))
		r = -errno;
	if (r == 0)
		(void)fchmod(fd, e->mode);
	if (r == 0)
		set_times(fd, e->mtime);
	if (r == 0 && fstat(fd, &st) < 0)
		r = -errno;
	close(fd);
	if (r < 0)
		return r;
	if (!seen(g, manifest_set(g->m, st.st_ino, have ? st.st_size : e->size,
				  e->mtime, have || e->size == 0)))
		return -ENOMEM;
	return 0;
}

static int make_entry(struct merge *g, const struct rent *e, int pfd,
		      const char *base)
{
	struct stat st;

	switch (e->type) {
	case 'd':
		if (mkdirat(pfd, base, 0700) < 0)
			return -errno;
		(void)fchmodat(pfd, base, e->mode, 0);
		break;
	case 'l':
		if (symlinkat(e->target, pfd, base) < 0)
			return -errno;
		break;
	case 'p':
	case 's':
		/* a node of its own here, never connected to the sandbox's
		 * (docs/cache.md): no content, nothing to download */
		if (mknodat(pfd, base, type_bits(e->type) | 0600, 0) < 0)
			return -errno;
		(void)fchmodat(pfd, base, e->mode, 0);
		break;
	default:
		return put_file(g, e, pfd, base, true);
	}
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!seen(g, manifest_set(g->m, st.st_ino, 0, e->mtime, true)))
		return -ENOMEM;
	return 0;
}

/*
 * The tree name pfd/base (st) of file entry e is one of several links of
 * its tree inode: when the server has another file there (the link was
 * split in the sandbox, or a name replaced), the name gets a file of its
 * own.  1 when done, 0 when nothing was to do, or -errno.
 */
static int merge_split(struct merge *g, const struct rent *e, int pfd,
		       const char *base, const struct stat *st)
{
	struct lslot *t = lmap_find(&g->tinos, st->st_ino);
	int r;

	if (!t) /* the first name seen: the tree file is this entry's */
		return lmap_add(&g->tinos, st->st_ino, e->rino, e->path);
	if (t->val == e->rino)
		return 0;
	if (unlinkat(pfd, base, 0) < 0)
		return -errno;
	r = put_file(g, e, pfd, base, true);
	if (r == 0)
		g->changed++;
	return r < 0 ? r : 1;
}

static int merge_entry(struct merge *g, const struct rent *e)
{
	const char *base;
	struct stat st;
	struct ment *me;
	int pfd, r;

	if (g->skip && g->skip(e->path, g->ud)) {
		g->skipped++;
		return 0;
	}
	r = fdio_parent(g->tree_fd, e->path, &pfd, &base);
	if (r < 0)
		return r == -ENOENT || r == -ENOTDIR ? 0 : r;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = errno == ENOENT ? make_entry(g, e, pfd, base) : -errno;
		if (r == 0)
			g->made++;
		goto out;
	}
	/* marked even when busy: the prune then keeps it however it is */
	me = seen(g, manifest_get(g->m, st.st_ino));
	if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
		r = pset_add(&g->multi, e->path);
		if (r < 0)
			goto out;
	}
	if (g->busy(st.st_ino, g->ud))
		goto out;
	if (e->type == 'f' && e->rino && S_ISREG(st.st_mode) &&
	    st.st_nlink > 1) {
		r = merge_split(g, e, pfd, base, &st);
		if (r != 0) {
			r = r > 0 ? 0 : r;
			goto out;
		}
		me = manifest_get(g->m, st.st_ino);
	}
	if ((st.st_mode & S_IFMT) != type_bits(e->type)) {
		r = tree_remove(pfd, base);
		if (r == 0)
			r = make_entry(g, e, pfd, base);
		manifest_del(g->m, st.st_ino);
		g->changed++;
		goto out;
	}
	switch (e->type) {
	case 'd':
	case 'p':
	case 's':
		if ((st.st_mode & 07777) != e->mode)
			(void)fchmodat(pfd, base, e->mode, 0);
		if (!me &&
		    !seen(g, manifest_set(g->m, st.st_ino, 0, e->mtime, true)))
			r = -ENOMEM;
		break;
	case 'l': {
		char t[PATH_MAX];
		ssize_t tl = readlinkat(pfd, base, t, sizeof(t) - 1);

		if (tl >= 0)
			t[tl] = '\0';
		if (tl < 0 || strcmp(t, e->target) != 0) {
			(void)unlinkat(pfd, base, 0);
			r = make_entry(g, e, pfd, base);
			manifest_del(g->m, st.st_ino);
			g->changed++;
		} else if (!me && !seen(g, manifest_set(g->m, st.st_ino, 0,
							 e->mtime, true))) {
			r = -ENOMEM;
		}
		break;
	}
	default:
		if (me && me->rsize == e->size && me->rmtime == e->mtime &&
		    (me->fetched || g->src_fd < 0)) {
			if ((st.st_mode & 07777) != e->mode)
				(void)fchmodat(pfd, base, e->mode, 0);
			break;
		}
		if (me && me->fetching)
			break;
		r = put_file(g, e, pfd, base, false);
		g->changed++;
		break;
	}
out:
	close(pfd);
	return r;
}

/*
 * Makes tree name e->path a link of group's tree file (the first name of
 * e's server inode): a name that is another file is replaced, unless it
 * has local changes.
 */
static int merge_link(struct merge *g, const struct rent *e,
		      const struct lslot *group)
{
	const char *base, *gbase;
	struct stat st;
	int pfd, gfd, r;

	r = fdio_parent(g->tree_fd, e->path, &pfd, &base);
	if (r < 0)
		return r == -ENOENT || r == -ENOTDIR ? 0 : r;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (st.st_ino == group->val || g->busy(st.st_ino, g->ud)) {
			close(pfd);
			return 0;
		}
		r = tree_remove(pfd, base);
		if (r < 0) {
			close(pfd);
			return r;
		}
		if (!S_ISREG(st.st_mode) || st.st_nlink <= 1)
			manifest_del(g->m, st.st_ino);
	} else if (errno != ENOENT) {
		r = -errno;
		close(pfd);
		return r;
	}
	r = fdio_parent(g->tree_fd, group->path, &gfd, &gbase);
	if (r == 0) {
		if (linkat(gfd, gbase, pfd, base, 0) < 0)
			r = -errno;
		close(gfd);
	}
	if (r == 0)
		g->linked++;
	close(pfd);
	return r;
}

/*
 * Merges entry e; a file the server has under several names (the same
 * inode number) is one tree inode with as many links.
 */
static int merge_one(struct merge *g, const struct rent *e)
{
	const char *base;
	struct lslot *group;
	struct stat st;
	int pfd, r;

	if (e->type != 'f' || e->rino == 0 || e->nlink <= 1)
		return merge_entry(g, e);
	/* its tree file will have several names: the prune asks by name */
	r = pset_add(&g->multi, e->path);
	if (r < 0)
		return r;
	group = lmap_find(&g->rinos, e->rino);
	if (group && g->skip && g->skip(e->path, g->ud)) {
		g->skipped++;
		return 0;
	}
	if (group)
		return merge_link(g, e, group);
	r = merge_entry(g, e);
	if (r < 0)
		return r;
	/* the first name of a linked file: the others link to it */
	if (fdio_parent(g->tree_fd, e->path, &pfd, &base) < 0)
		return 0;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode))
		r = lmap_add(&g->rinos, e->rino, st.st_ino, e->path);
	close(pfd);
	return r;
}

/* Removes what the server no longer has, below directory dfd (path). */
static void prune(struct merge *g, int dfd, char *path, size_t plen,
		  unsigned depth)
{
	struct dirent *d;
	DIR *dp;
	int fd;

	if (depth > 256)
		return;
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return;
	}
	while ((d = readdir(dp)) != NULL) {
		size_t nl = strlen(d->d_name);
		struct stat st;

		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		if (plen + nl + 2 > PATH_MAX)
			continue;
		if (plen)
			path[plen] = '/';
		memcpy(path + plen + (plen ? 1 : 0), d->d_name, nl + 1);
		if (fstatat(dirfd(dp), d->d_name, &st, AT_SYMLINK_NOFOLLOW) <
		    0) {
			path[plen] = '\0';
			continue;
		}
		if (!remote_has(g, path, &st) &&
		    manifest_get(g->m, st.st_ino) &&
		    !g->busy(st.st_ino, g->ud) &&
		    !(g->skip && g->skip(path, g->ud))) {
			if (tree_remove(dirfd(dp), d->d_name) == 0) {
				/* another name may keep the file */
				if (!S_ISREG(st.st_mode) || st.st_nlink <= 1)
					manifest_del(g->m, st.st_ino);
				g->removed++;
			}
		} else if (S_ISDIR(st.st_mode)) {
			/* kept: the server's, or not the prune's to remove */
			int cfd = openat(dirfd(dp), d->d_name,
					 O_PATH | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);

			if (cfd >= 0) {
				prune(g, cfd, path, plen + nl + (plen ? 1 : 0),
				      depth + 1);
				close(cfd);
			}
		}
		path[plen] = '\0';
	}
	closedir(dp);
}

int manifest_merge_begin(struct merge **out, struct manifest *m, int tree_fd,
			 int src_fd, bool (*busy)(ino_t ino, void *ud),
			 bool (*skip)(const char *path, void *ud), void *ud)
{
	struct merge *g = calloc(1, sizeof(*g));
	struct timespec ts;

	*out = NULL;
	if (!g)
		return -ENOMEM;
	g->m = m;
	g->tree_fd = tree_fd;
	g->src_fd = src_fd;
	g->busy = busy;
	g->skip = skip;
	g->ud = ud;
	g->was_empty = m->count == 0;
	/* a new mark: an entry marked 65,535 merges ago and never since
	 * only keeps a stale name until the next listing */
	if (++m->gen == 0)
		m->gen = 1;
	g->gen = m->gen;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	g->multi.seed =
	    (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	g->multi.seed =
	    (g->multi.seed * 0x9e3779b97f4a7c15ull) ^ (uint64_t)(uintptr_t)g;
	*out = g;
	return 0;
}

int manifest_merge_part(struct merge *g, const struct listing *l,
			struct nox_err *err)
{
	size_t i;
	int r = 0;

	for (i = 0; i < l->n && r == 0; i++) {
		r = merge_one(g, &l->v[i]);
		if (r < 0 && r != -ENOMEM) {
			nox_log(NOX_LOG_DEBUG, "merge %s: %s", l->v[i].path,
				strerror(-r));
			r = 0;
		}
	}
	g->n += l->n;
	if (r < 0)
		return nox_err_set(err, r, "merging the listing: %s",
				   strerror(-r));
	return 0;
}

size_t manifest_merge_count(const struct merge *g)
{
	return g->n;
}

void manifest_merge_end(struct merge *g, bool whole)
{
	char path[PATH_MAX];

	if (!g)
		return;
	if (whole) {
		/* only what the manifest knew before can be removed: a
		 * first listing into an empty cache skips the tree walk */
		path[0] = '\0';
		if (!g->was_empty)
			prune(g, g->tree_fd, path, 0, 0);
		nox_log(NOX_LOG_DEBUG,
			"listing: %zu entries, %u new, %u changed, %u linked, "
			"%u removed, %u left to pending operations",
			g->n, g->made, g->changed, g->linked, g->removed,
			g->skipped);
	}
	free(g->multi.v);
	lmap_free(&g->rinos);
	lmap_free(&g->tinos);
	free(g);
}

int manifest_merge(struct manifest *m, int tree_fd, const struct listing *l,
		   int src_fd, bool (*busy)(ino_t ino, void *ud),
		   bool (*skip)(const char *path, void *ud), void *ud,
		   struct nox_err *err)
{
	struct merge *g;
	int r;

	r = manifest_merge_begin(&g, m, tree_fd, src_fd, busy, skip, ud);
	if (r < 0)
		return nox_err_set(err, -r, "out of memory");
	r = manifest_merge_part(g, l, err);
	manifest_merge_end(g, r == 0);
	return r;
}
