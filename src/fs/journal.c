/*
 * journal.c - the on-disk journal of pending operations (see journal.h).
 *
 * Op file layout: NUL-terminated fields "nj1", op name, path, path2,
 * mode (octal), num, atime_ns, mtime_ns, ino, size (decimal).  Paths
 * cannot hold NUL, so no escaping is needed and any byte in a file name
 * survives.  A file that does not parse is renamed SEQ.bad and logged:
 * it is never silently dropped, never replayed half-understood.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nox/nox.h>

#include "fdio_i.h"
#include "journal.h"

#define J_TAG	     "nj1"
#define J_NFIELDS    10
#define J_MAX_OPFILE (3 * 4096 + 256)

static const char *const op_names[J__COUNT] = {
    [J_UPLOAD] = "upload",   [J_CREATE] = "create",	[J_MKDIR] = "mkdir",
    [J_SYMLINK] = "symlink", [J_LINK] = "link",		[J_UNLINK] = "unlink",
    [J_RMDIR] = "rmdir",     [J_RENAME] = "rename",	[J_CHMOD] = "chmod",
    [J_UTIMENS] = "utimens", [J_TRUNCATE] = "truncate", [J_MKNOD] = "mknod",
};

const char *journal_op_name(enum jop op)
{
	return (unsigned)op < J__COUNT ? op_names[op] : "?";
}

static int marks_load(struct journal *j);
static int marks_compact(struct journal *j);

static void seq_name(char *buf, size_t size, uint64_t seq, const char *ext)
{
	snprintf(buf, size, "%020" PRIu64 ".%s", seq, ext);
}

void journal_entry_free(struct jent *e)
{
	if (!e)
		return;
	free(e->path);
	free(e->path2);
	free(e->mem);
	free(e);
}

struct jent *journal_entry_new(struct journal *j, enum jop op, const char *path,
			       const char *path2)
{
	struct jent *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->op = op;
	e->seq = atomic_fetch_add(&j->next_seq, 1);
	e->path = strdup(path ? path : "");
	e->path2 = path2 ? strdup(path2) : NULL;
	if (!e->path || (path2 && !e->path2)) {
		journal_entry_free(e);
		return NULL;
	}
	return e;
}

/* ---- parsing -------------------------------------------------------- */

static int parse_ll(const char *s, int base, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, base);
	if (errno || end == s || *end)
		return -EINVAL;
	return 0;
}

static int op_parse(const char *buf, size_t len, struct jent *e)
{
	const char *f[J_NFIELDS];
	long long v[6];
	size_t i, n = 0, start = 0;
	int op;

	for (i = 0; i < len && n < J_NFIELDS; i++) {
		if (buf[i] == '\0') {
			f[n++] = buf + start;
			start = i + 1;
		}
	}
	if (n != J_NFIELDS || start != len || strcmp(f[0], J_TAG) != 0)
		return -EINVAL;
	for (op = 0; op < J__COUNT; op++) {
		if (strcmp(f[1], op_names[op]) == 0)
			break;
	}
	if (op == J__COUNT)
		return -EINVAL;
	if (parse_ll(f[4], 8, &v[0]) || parse_ll(f[5], 10, &v[1]) ||
	    parse_ll(f[6], 10, &v[2]) || parse_ll(f[7], 10, &v[3]) ||
	    parse_ll(f[8], 10, &v[4]) || parse_ll(f[9], 10, &v[5]))
		return -EINVAL;
	if (nox_path_validate(f[2], NULL) < 0 || !*f[2])
		return -EINVAL;
	if ((op == J_RENAME || op == J_LINK) &&
	    (nox_path_validate(f[3], NULL) < 0 || !*f[3]))
		return -EINVAL;
	if (op == J_SYMLINK && !*f[3])
		return -EINVAL;
	e->op = (enum jop)op;
	e->path = strdup(f[2]);
	e->path2 = *f[3] ? strdup(f[3]) : NULL;
	if (!e->path || (*f[3] && !e->path2))
		return -ENOMEM;
	e->mode = (mode_t)(v[0] & 07777);
	e->num = v[1];
	e->atime_ns = v[2];
	e->mtime_ns = v[3];
	e->ino = (ino_t)v[4];
	e->size = (off_t)v[5];
	return 0;
}

static int read_small(int dirfd, const char *name, char *buf, size_t size,
		      size_t *len)
{
	ssize_t r;
	size_t got = 0;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (got < size) {
		r = read(fd, buf + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (got == size)
		return -EFBIG;
	*len = got;
	return 0;
}

static void set_aside(struct journal *j, uint64_t seq, const char *why)
{
	char from[40], to[40];

	seq_name(from, sizeof(from), seq, "op");
	seq_name(to, sizeof(to), seq, "bad");
	nox_log(NOX_LOG_WARN, "journal entry %s is unreadable (%s); kept as %s",
		from, why, to);
	(void)renameat(j->dirfd, from, j->dirfd, to);
}

static int cmp_seq(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

void journal_init(struct journal *j)
{
	memset(j, 0, sizeof(*j));
	j->dirfd = -1;
	j->mark_fd = -1;
}

struct jent *journal_first(const struct journal *j)
{
	return j->head;
}

struct jent *journal_next(const struct jent *e)
{
	return e->next;
}

size_t journal_count(const struct journal *j)
{
	return j->count;
}

uint64_t journal_last_seq(const struct journal *j)
{
	return j->tail ? j->tail->seq : 0;
}

uint64_t journal_last_seq_of(const struct journal *j, ino_t ino)
{
	const struct jent *e;
	uint64_t s = 0;

	for (e = j->head; e; e = e->next) {
		if (e->ino == ino)
			s = e->seq;
	}
	return s;
}

int journal_data_at(const struct journal *j, const struct jent *e, char *name,
		    size_t size)
{
	seq_name(name, size, e->seq, "data");
	return j->dirfd;
}

int journal_data_stat(const struct journal *j, const struct jent *e,
		      struct stat *st)
{
	char name[40];

	seq_name(name, sizeof(name), e->seq, "data");
	if (fstatat(j->dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

void journal_set_aside(struct journal *j, struct jent *e)
{
	char from[40], to[48];

	/* a lazy one is written first, so its data is kept */
	(void)journal_persist(j, e, false);
	seq_name(from, sizeof(from), e->seq, "data");
	snprintf(to, sizeof(to), "failed-%s", from);
	(void)renameat(j->dirfd, from, j->dirfd, to);
}

int journal_open(struct journal *j, int dirfd, struct nox_err *err)
{
	uint64_t *seqs = NULL, maxseq = 0;
	size_t n = 0, cap = 0, i;
	struct dirent *d;
	char *buf = NULL;
	DIR *dp;
	int fd, r = 0;

	memset(j, 0, sizeof(*j));
	j->dirfd = dirfd;
	j->mark_fd = -1;
	pthread_mutex_init(&j->mark_mu, NULL);
	r = marks_load(j);
	if (r < 0) {
		r = nox_err_set(err, -r, "journal: dirty markers: %s",
				strerror(-r));
		journal_close(j);
		return r;
	}
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r = nox_err_set(err, errno, "journal: %s", strerror(errno));
		journal_close(j);
		return r;
	}
	dp = fdopendir(fd);
	if (!dp) {
		r = nox_err_set(err, errno, "journal: %s", strerror(errno));
		close(fd);
		journal_close(j);
		return r;
	}
	while ((d = readdir(dp)) != NULL) {
		char *end;
		unsigned long long s;

		if (d->d_name[0] == '.')
			continue;
		if (strncmp(d->d_name, "tmp-", 4) == 0 ||
		    strncmp(d->d_name, "batch", 5) == 0) {
			/* an interrupted write or upload batch */
			continue;
		}
		errno = 0;
		s = strtoull(d->d_name, &end, 10);
		if (errno || end == d->d_name || *end != '.')
			continue;
		if (s > maxseq)
			maxseq = s;
		if (strcmp(end, ".op") != 0)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			uint64_t *ns = realloc(seqs, nc * sizeof(*ns));

			if (!ns) {
				r = nox_err_set(err, ENOMEM, "out of memory");
				goto out;
			}
			seqs = ns;
			cap = nc;
		}
		seqs[n++] = s;
	}
	if (n)
		qsort(seqs, n, sizeof(*seqs), cmp_seq);
	buf = malloc(J_MAX_OPFILE);
	if (!buf) {
		r = nox_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		char name[40];
		size_t len = 0;
		struct jent *e;

		seq_name(name, sizeof(name), seqs[i], "op");
		r = read_small(dirfd, name, buf, J_MAX_OPFILE, &len);
		if (r < 0) {
			set_aside(j, seqs[i], strerror(-r));
			r = 0;
			continue;
		}
		e = calloc(1, sizeof(*e));
		if (!e) {
			r = nox_err_set(err, ENOMEM, "out of memory");
			goto out;
		}
		e->seq = seqs[i];
		r = op_parse(buf, len, e);
		if (r == 0 && e->op == J_UPLOAD) {
			struct stat st;

			seq_name(name, sizeof(name), seqs[i], "data");
			if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) <
				0 ||
			    !S_ISREG(st.st_mode))
				r = -ENOENT;
		}
		if (r < 0) {
			journal_entry_free(e);
			if (r == -ENOMEM) {
				r = nox_err_set(err, ENOMEM, "out of memory");
				goto out;
			}
			set_aside(j, seqs[i], "malformed");
			r = 0;
			continue;
		}
		journal_link(j, e);
	}
out:
	atomic_init(&j->next_seq, maxseq + 1);
	closedir(dp);
	free(seqs);
	free(buf);
	if (r < 0)
		journal_close(j);
	return r;
}

void journal_close(struct journal *j)
{
	struct jent *e, *next;

	for (e = j->head; e; e = next) {
		next = e->next;
		journal_entry_free(e);
	}
	j->head = j->tail = NULL;
	j->count = 0;
	if (j->mark_fd >= 0 && j->mark_lines > j->nmarks)
		(void)marks_compact(j); /* so an empty set is an empty file */
	if (j->mark_fd >= 0)
		close(j->mark_fd);
	j->mark_fd = -1;
	free(j->marks);
	j->marks = NULL;
	j->nmarks = j->capmarks = 0;
	if (j->dirfd >= 0) {
		close(j->dirfd);
		pthread_mutex_destroy(&j->mark_mu);
	}
	j->dirfd = -1;
}

/* ---- writing -------------------------------------------------------- */

/* Copies [off, end) of in_fd to the same offsets of out_fd. */
static int copy_range(int in_fd, int out_fd, off_t off, off_t end)
{
	char buf[65536];
	off_t o = off, w = off;
	ssize_t r;

	while (o < end) {
		r = copy_file_range(in_fd, &o, out_fd, &w, (size_t)(end - o),
				    0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (r == 0)
			return 0;
	}
	if (o >= end)
		return 0;
	if (errno != EXDEV && errno != EINVAL && errno != ENOSYS &&
	    errno != EOPNOTSUPP && errno != EBADF)
		return -errno;
	while (o < end) {
		size_t want = (size_t)(end - o) < sizeof(buf)
				  ? (size_t)(end - o)
				  : sizeof(buf);

		r = pread(in_fd, buf, want, o);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return 0;
		if (pwrite(out_fd, buf, (size_t)r, o) != r)
			return errno ? -errno : -EIO;
		o += r;
	}
	return 0;
}

/*
 * Copies in_fd to out_fd (empty), keeping holes: only the data ranges
 * (SEEK_DATA/SEEK_HOLE) are copied, so a sparse file's snapshot is as
 * small as the file.  Returns the size copied or -errno.
 */
static off_t copy_fd(int in_fd, int out_fd)
{
	struct stat st;
	off_t off = 0, data, hole;
	int r;

	if (fstat(in_fd, &st) < 0)
		return -errno;
	while (off < st.st_size) {
		data = lseek(in_fd, off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0) {
			data = off;
			hole = st.st_size;
		} else {
			hole = lseek(in_fd, data, SEEK_HOLE);
			if (hole < 0 || hole > st.st_size)
				hole = st.st_size;
		}
		r = copy_range(in_fd, out_fd, data, hole);
		if (r < 0)
			return r;
		off = hole;
	}
	if (ftruncate(out_fd, st.st_size) < 0)
		return -errno;
	return st.st_size;
}

static int op_format(const struct jent *e, char *buf, size_t size, size_t *len)
{
	int n = snprintf(
	    buf, size,
	    "%s%c%s%c%s%c%s%c%o%c%lld%c%" PRId64 "%c%" PRId64 "%c%llu%c%lld%c",
	    J_TAG, 0, op_names[e->op], 0, e->path, 0, e->path2 ? e->path2 : "",
	    0, (unsigned)e->mode, 0, e->num, 0, e->atime_ns, 0, e->mtime_ns, 0,
	    (unsigned long long)e->ino, 0, (long long)e->size, 0);

	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	*len = (size_t)n;
	return 0;
}

static int write_op_file(struct journal *j, const struct jent *e, bool sync)
{
	char buf[J_MAX_OPFILE], tmp[48], name[40];
	size_t len;
	int fd, r;

	r = op_format(e, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	snprintf(tmp, sizeof(tmp), "tmp-%020" PRIu64 ".op", e->seq);
	seq_name(name, sizeof(name), e->seq, "op");
	fd = openat(j->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -errno;
	r = fdio_write_all(fd, buf, len);
	if (r == 0 && sync && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && renameat(j->dirfd, tmp, j->dirfd, name) < 0)
		r = -errno;
	if (r < 0)
		(void)unlinkat(j->dirfd, tmp, 0);
	else if (sync && fsync(j->dirfd) < 0)
		r = -errno;
	return r;
}

int journal_write(struct journal *j, struct jent *e, int data_fd, bool sync,
		  struct nox_err *err)
{
	char name[40];
	int fd, r = 0;

	if (e->op == J_UPLOAD) {
		off_t n;

		seq_name(name, sizeof(name), e->seq, "data");
		fd = openat(j->dirfd, name,
			    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			return nox_err_set(err, errno, "journal %s: %s", name,
					   strerror(errno));
		n = copy_fd(data_fd, fd);
		if (n < 0)
			r = (int)n;
		else
			e->size = n;
		if (r == 0 && sync && fdatasync(fd) < 0)
			r = -errno;
		close(fd);
		if (r < 0) {
			(void)unlinkat(j->dirfd, name, 0);
			return nox_err_set(err, r, "journal snapshot of %s: %s",
					   e->path, strerror(-r));
		}
	}
	r = write_op_file(j, e, sync);
	if (r < 0) {
		if (e->op == J_UPLOAD)
			(void)unlinkat(j->dirfd, name, 0);
		return nox_err_set(err, r, "journal entry for %s: %s", e->path,
				   strerror(-r));
	}
	e->unsynced = !sync;
	return 0;
}

int journal_write_lazy(struct journal *j, struct jent *e, int data_fd,
		       struct nox_err *err)
{
	struct stat st;
	size_t got = 0;

	if (e->op != J_UPLOAD) {
		e->lazy = true;
		return 0;
	}
	if (fstat(data_fd, &st) < 0)
		return nox_err_set(err, errno, "journal snapshot of %s: %s",
				   e->path, strerror(errno));
	if (st.st_size > J_LAZY_MAX)
		return journal_write(j, e, data_fd, false, err);
	e->mem = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!e->mem)
		return nox_err_set(err, ENOMEM, "out of memory");
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(data_fd, e->mem + got,
				  (size_t)st.st_size - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int en = errno;

			free(e->mem);
			e->mem = NULL;
			return nox_err_set(err, en,
					   "journal snapshot of %s: %s",
					   e->path, strerror(en));
		}
		if (n == 0)
			break; /* shrank meanwhile: what is there */
		got += (size_t)n;
	}
	e->size = (off_t)got;
	e->lazy = true;
	return 0;
}

int journal_persist(struct journal *j, struct jent *e, bool sync)
{
	char name[40];
	int fd, r = 0;

	if (!e->lazy)
		return 0;
	if (e->op == J_UPLOAD) {
		seq_name(name, sizeof(name), e->seq, "data");
		fd = openat(j->dirfd, name,
			    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		r = fdio_write_all(fd, e->mem ? e->mem : "", (size_t)e->size);
		if (r == 0 && sync && fdatasync(fd) < 0)
			r = -errno;
		close(fd);
		if (r < 0) {
			(void)unlinkat(j->dirfd, name, 0);
			return r;
		}
	}
	r = write_op_file(j, e, sync);
	if (r < 0) {
		if (e->op == J_UPLOAD)
			(void)unlinkat(j->dirfd, name, 0);
		return r;
	}
	e->lazy = false;
	e->unsynced = !sync;
	return 0;
}

int journal_rewrite(struct journal *j, struct jent *e, struct nox_err *err)
{
	int r = e->lazy ? 0 : write_op_file(j, e, true);

	if (r < 0)
		return nox_err_set(err, r, "journal entry for %s: %s", e->path,
				   strerror(-r));
	return 0;
}

void journal_sync(struct journal *j, struct jent *e)
{
	char name[40];
	int fd;

	if (e->lazy) {
		(void)journal_persist(j, e, true);
		return;
	}
	if (!e->unsynced)
		return;
	seq_name(name, sizeof(name), e->seq, "data");
	fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fdatasync(fd);
		close(fd);
	}
	seq_name(name, sizeof(name), e->seq, "op");
	fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	(void)fsync(j->dirfd);
	e->unsynced = false;
}

void journal_link(struct journal *j, struct jent *e)
{
	e->next = NULL;
	if (j->tail)
		j->tail->next = e;
	else
		j->head = e;
	j->tail = e;
	j->count++;
}

void journal_pop(struct journal *j, struct jent *e)
{
	char name[40];

	if (j->head != e)
		return;
	seq_name(name, sizeof(name), e->seq, "op");
	if (!e->lazy)
		(void)unlinkat(j->dirfd, name, 0);
	if (!e->lazy && e->op == J_UPLOAD) {
		seq_name(name, sizeof(name), e->seq, "data");
		(void)unlinkat(j->dirfd, name, 0);
	}
	j->head = e->next;
	if (!j->head)
		j->tail = NULL;
	j->count--;
	journal_entry_free(e);
}

int journal_data_open(struct journal *j, struct jent *e)
{
	char name[40];
	int fd, r;

	r = journal_persist(j, e, false);
	if (r < 0)
		return r;
	seq_name(name, sizeof(name), e->seq, "data");
	fd = openat(j->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* ---- dirty markers -------------------------------------------------- */

/* With mark_mu: the index of ino in marks, or nmarks. */
static size_t mark_find(const struct journal *j, ino_t ino)
{
	size_t i;

	for (i = 0; i < j->nmarks; i++) {
		if (j->marks[i] == ino)
			return i;
	}
	return j->nmarks;
}

static int mark_add(struct journal *j, ino_t ino)
{
	if (mark_find(j, ino) < j->nmarks)
		return 0;
	if (j->nmarks == j->capmarks) {
		size_t nc = j->capmarks ? j->capmarks * 2 : 16;
		ino_t *nv = realloc(j->marks, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		j->marks = nv;
		j->capmarks = nc;
	}
	j->marks[j->nmarks++] = ino;
	return 1;
}

/* With mark_mu: rewrites the dirty file with the current set. */
static int marks_compact(struct journal *j)
{
	char line[32];
	size_t i;
	int fd, r = 0;

	fd = openat(j->dirfd, "tmp-dirty",
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	for (i = 0; r == 0 && i < j->nmarks; i++) {
		int n = snprintf(line, sizeof(line), "+%llu\n",
				 (unsigned long long)j->marks[i]);

		r = fdio_write_all(fd, line, (size_t)n);
	}
	close(fd);
	if (r == 0 && renameat(j->dirfd, "tmp-dirty", j->dirfd, "dirty") < 0)
		r = -errno;
	if (r < 0) {
		(void)unlinkat(j->dirfd, "tmp-dirty", 0);
		return r;
	}
	if (j->mark_fd >= 0)
		close(j->mark_fd);
	j->mark_fd = openat(j->dirfd, "dirty", O_WRONLY | O_APPEND | O_CLOEXEC);
	j->mark_lines = j->nmarks;
	return j->mark_fd < 0 ? -errno : 0;
}

/* With mark_mu: appends "+INO" or "-INO" (compacting when long). */
static int mark_log(struct journal *j, char sign, ino_t ino)
{
	char line[32];
	int n;

	if (j->mark_lines > 1024 && j->mark_lines > 4 * j->nmarks)
		return marks_compact(j);
	if (j->mark_fd < 0)
		return -EBADF;
	n = snprintf(line, sizeof(line), "%c%llu\n", sign,
		     (unsigned long long)ino);
	if (write(j->mark_fd, line, (size_t)n) != n)
		return errno ? -errno : -EIO;
	j->mark_lines++;
	return 0;
}

/*
 * At open: the net set of the dirty file, plus older caches' dirty-INO
 * files (taken into the set and removed); then a compact file.
 */
static int marks_load(struct journal *j)
{
	struct dirent *d;
	char *buf = NULL, *p, *nl;
	size_t len = 0, cap = 0;
	DIR *dp;
	int fd, r = 0;

	fd = openat(j->dirfd, "dirty", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		for (;;) {
			ssize_t n;

			if (len + 4096 > cap) {
				char *nb = realloc(buf, cap + 65536);

				if (!nb) {
					r = -ENOMEM;
					break;
				}
				buf = nb;
				cap += 65536;
			}
			n = read(fd, buf + len, cap - len - 1);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			len += (size_t)n;
		}
		close(fd);
	}
	if (buf)
		buf[len] = '\0';
	for (p = buf; r >= 0 && p && p < buf + len; p = nl + 1) {
		unsigned long long v;
		char *end;

		nl = strchr(p, '\n');
		if (!nl)
			break; /* a torn last line: ignored */
		*nl = '\0';
		errno = 0;
		v = strtoull(p + 1, &end, 10);
		if (errno || end == p + 1 || *end)
			continue;
		if (p[0] == '+') {
			r = mark_add(j, (ino_t)v);
		} else if (p[0] == '-') {
			size_t i = mark_find(j, (ino_t)v);

			if (i < j->nmarks)
				j->marks[i] = j->marks[--j->nmarks];
		}
	}
	free(buf);
	if (r < 0)
		return r;
	fd = openat(j->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dp = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dp && fd >= 0)
		close(fd);
	while (dp && r >= 0 && (d = readdir(dp)) != NULL) {
		unsigned long long v;
		char *end;

		if (strncmp(d->d_name, "dirty-", 6) != 0)
			continue;
		errno = 0;
		v = strtoull(d->d_name + 6, &end, 10);
		if (errno || *end || end == d->d_name + 6)
			continue;
		r = mark_add(j, (ino_t)v);
		if (r >= 0)
			(void)unlinkat(j->dirfd, d->d_name, 0);
	}
	if (dp)
		closedir(dp);
	if (r < 0)
		return r;
	return marks_compact(j);
}

int journal_mark_dirty(struct journal *j, ino_t ino)
{
	int r;

	pthread_mutex_lock(&j->mark_mu);
	r = mark_add(j, ino);
	if (r > 0)
		r = mark_log(j, '+', ino);
	pthread_mutex_unlock(&j->mark_mu);
	return r < 0 ? r : 0;
}

void journal_clear_dirty(struct journal *j, ino_t ino)
{
	size_t i;

	pthread_mutex_lock(&j->mark_mu);
	i = mark_find(j, ino);
	if (i < j->nmarks) {
		j->marks[i] = j->marks[--j->nmarks];
		(void)mark_log(j, '-', ino);
	}
	pthread_mutex_unlock(&j->mark_mu);
}

int journal_dirty_each(struct journal *j, void (*cb)(ino_t ino, void *ud),
		       void *ud)
{
	ino_t *v;
	size_t i, n;

	pthread_mutex_lock(&j->mark_mu);
	n = j->nmarks;
	v = malloc((n ? n : 1) * sizeof(*v));
	if (v && n)
		memcpy(v, j->marks, n * sizeof(*v));
	pthread_mutex_unlock(&j->mark_mu);
	if (!v)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		cb(v[i], ud);
	free(v);
	return 0;
}
