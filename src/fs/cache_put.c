/*
 * cache_put.c - a big upload to a nox.fs server by raw PUT fs/file,
 * streamed from its journal snapshot: no tar and no gzip on either side.
 * The content goes into /workspace/.noxfs-upload-SEQ, which gets its mode
 * and mtime and is then renamed over the target (fs/op), so a reader in
 * the sandbox sees the old file or the new one, never a part of it.  A
 * file with several links is written in place instead (its other names
 * must see the new content), as the tar path's in-place join does.  Every
 * step may be done again: a replay after a crash starts over under the
 * same temporary name.  Holes of the snapshot are not sent.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache_i.h"

/* smaller snapshots go in the batch tar: one request for many files */
#define PUT_MIN (1ll << 20)

bool cache_put_wanted(struct cache *c, const struct jent *e)
{
	struct stat st;

	if (!c->ext || e->op != J_UPLOAD || e->lazy)
		return false;
	return journal_data_stat(&c->jr, e, &st) == 0 && st.st_size >= PUT_MIN;
}

/*
 * Sends the data of snapshot dfd (size bytes) into path, PUT by PUT of at
 * most c->part_size; *end: where the last data sent ends (holes after it
 * are the caller's truncate).
 */
static int put_data(struct cache *c, int dfd, off_t size, const char *path,
		    off_t *end, struct nox_err *err)
{
	off_t off = 0, d, e;

	*end = 0;
	while (off < size) {
		d = lseek(dfd, off, SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			break; /* a hole to the end */
		if (d < 0) {
			d = off; /* no SEEK_DATA here: all of it */
			e = size;
		} else {
			e = lseek(dfd, d, SEEK_HOLE);
			if (e < 0 || e > size)
				e = size;
		}
		for (off = d; off < e;) {
			off_t len =
			    e - off < c->part_size ? e - off : c->part_size;
			ssize_t w = nox_backend_write_fd(
			    c->be, c->sb->id, path, off, dfd, off, len, err);

			if (w < 0)
				return (int)w;
			if (w != len)
				return nox_err_set(err, EIO,
						   "%s: the server wrote %zd "
						   "of %lld bytes",
						   path, w, (long long)len);
			off += len;
			*end = off;
		}
	}
	return 0;
}

/* Makes the parent directories of path on the server (they went). */
static int put_parents(struct cache *c, const char *path, struct nox_err *err)
{
	char buf[PATH_MAX];
	char *s;
	int r;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return nox_err_set(err, ENAMETOOLONG, "%s: too long", path);
	for (s = strchr(buf, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		r = nox_backend_mkdir(c->be, c->sb->id, buf, 0755, err);
		*s = '/';
		if (r < 0 && r != -EEXIST)
			return r;
	}
	nox_err_clear(err);
	return 0;
}

/*
 * Uploads e (a J_UPLOAD with a snapshot on disk) by PUT fs/file, into a
 * temporary name renamed over the target or, with in_place, into the
 * target's own inode.  0: the server has it (e->mtime_ns is then what
 * it got); else -errno (-EFBIG: refused even at the smallest part).
 */
int cache_put_upload(struct cache *c, struct jent *e, bool in_place,
		     struct nox_err *err)
{
	struct timespec ts[2];
	char tmp[64];
	const char *dst = e->path;
	struct stat st;
	off_t end = 0;
	int dfd, r;

	dfd = journal_data_open(&c->jr, e);
	if (dfd < 0 || fstat(dfd, &st) < 0) {
		/* as the tar path: nothing to send */
		nox_log(NOX_LOG_WARN, "%s: the snapshot of %s is missing",
			c->sb->id, e->path);
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	if (e->mtime_ns < 0) {
		clock_gettime(CLOCK_REALTIME, &ts[1]);
		e->mtime_ns = ts_ns(&ts[1]);
	}
	r = -ENOENT;
	if (in_place) {
		r = 0;
		if (!(e->mode & 0200))
			r = nox_backend_chmod(c->be, c->sb->id, dst,
					      (e->mode & 01777) | 0200, err);
		if (r == 0)
			r = nox_backend_truncate(c->be, c->sb->id, dst, 0, err);
		if (r == -ENOENT) /* the target went: a new file then */
			in_place = false;
	}
	if (!in_place) {
		snprintf(tmp, sizeof(tmp), ".noxfs-upload-%" PRIu64, e->seq);
		dst = tmp;
		r = nox_backend_createfile(c->be, c->sb->id, dst, 0600, true,
					   err);
		if (r == -EEXIST) /* left by an attempt before */
			r = nox_backend_truncate(c->be, c->sb->id, dst, 0, err);
	}
	for (;;) {
		if (r < 0)
			break;
		r = put_data(c, dfd, st.st_size, dst, &end, err);
		if (r != -EFBIG || c->part_size <= PART_MIN)
			break;
		/* over the server's body limit: smaller parts, again */
		c->part_size /= 4;
		if (c->part_size < PART_MIN)
			c->part_size = PART_MIN;
		r = 0;
	}
	if (r == 0 && end < st.st_size)
		r = nox_backend_truncate(c->be, c->sb->id, dst, st.st_size,
					 err);
	if (r == 0 && (in_place || (e->mode & 01777) != 0600))
		r = nox_backend_chmod(c->be, c->sb->id, dst, e->mode & 01777,
				      err);
	if (r == 0) {
		ts[0].tv_sec = 0;
		ts[0].tv_nsec = UTIME_OMIT;
		ts[1].tv_sec = (time_t)(e->mtime_ns / 1000000000ll);
		ts[1].tv_nsec = (long)(e->mtime_ns % 1000000000ll);
		r = nox_backend_utimens(c->be, c->sb->id, dst, ts, err);
	}
	if (r == 0 && !in_place) {
		r = nox_backend_rename(c->be, c->sb->id, tmp, e->path, 0, err);
		if (r == -ENOENT && put_parents(c, e->path, err) == 0)
			r = nox_backend_rename(c->be, c->sb->id, tmp, e->path,
					       0, err);
	}
	close(dfd);
	if (r == 0) {
		e->size = st.st_size;
		nox_log(NOX_LOG_DEBUG, "%s: uploaded %s by PUT (%s)", c->sb->id,
			e->path, in_place ? "in place" : "renamed");
	}
	return r;
}

/*
 * A gzip level for an upload tar whose bulk is snapshot fd (size bytes):
 * 0 when 64 KiB from its middle have a flat byte histogram (random or
 * already compressed data, which level 1 compresses at a few MB/s for
 * nothing), else 1.  A flat histogram can also come from data that would
 * compress (a repeated random block): that costs bytes, not correctness.
 */
int cache_put_gzip_level(int fd, off_t size)
{
	static const size_t want = 65536;
	unsigned char *buf;
	unsigned long long sq = 0;
	unsigned cnt[256] = {0};
	ssize_t n;
	size_t i;

	if (size < PUT_MIN)
		return 1;
	buf = malloc(want);
	if (!buf)
		return 1;
	n = pread(fd, buf, want, (size / 2) & ~(off_t)4095);
	for (i = 0; n > 0 && i < (size_t)n; i++)
		cnt[buf[i]]++;
	free(buf);
	if (n < 4096)
		return 1;
	for (i = 0; i < 256; i++)
		sq += (unsigned long long)cnt[i] * cnt[i];
	/* sum of squares over n^2/256: 1.004 for uniform bytes, text
	 * well above 5 */
	return sq * 256 * 100 <
		       (unsigned long long)n * (unsigned long long)n * 105
		   ? 0
		   : 1;
}
