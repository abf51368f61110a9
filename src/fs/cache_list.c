/*
 * cache_list.c - listings and downloads of the cache layer.
 *
 * The first listing of a sandbox is one request for the whole workspace
 * (fs/tree with nox.fs; else an exec of GNU find with NUL separators; a
 * tar of the workspace when find is missing, its output was cut, or a
 * name is not UTF-8); files appear as placeholders and a file's content
 * is downloaded once, at its first open, with one request (GET fs/file
 * with nox.fs, else a v1 download), in place into the tree file and in a
 * thread of its own: a read waits only until its range is there.  With
 * nox.fs a read far ahead of the download takes its block with a ranged
 * GET of its own instead of waiting (an "island").  A listing is taken
 * again after a command ran or when older than the attribute timeout (at
 * least 1 s); it never undoes a local change (manifest.h).
 *
 * Limits: a placeholder is still fetched whole, from its start (islands
 * only serve reads sooner; v1 has no ranged reads at all); a file changed
 * on the server during its download may mix both versions, as the stream
 * alone may; a listing merge racing a rename in flight can show the old
 * name until the next listing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cache_i.h"

static bool merge_busy(ino_t ino, void *ud)
{
	return cache_busy_locked(ud, ino);
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* First index in sorted v whose string is >= key. */
static size_t lower_bound(char *const *v, size_t n, const char *key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(v[mid], key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * With mu, touched sorted: path, one of its parents or something below
 * it was touched by an operation the listing may not show.
 */
static bool merge_skip(const char *path, void *ud)
{
	struct cache *c = ud;
	char buf[PATH_MAX + 1];
	size_t n = strlen(path), i, at;

	if (c->ntouched == 0)
		return false;
	if (n + 1 >= sizeof(buf))
		return true;
	memcpy(buf, path, n + 1);
	/* path itself or a parent */
	for (i = n;; i--) {
		if (i == n || buf[i] == '/') {
			char keep = buf[i];

			buf[i] = '\0';
			at = lower_bound(c->touched, c->ntouched, buf);
			buf[i] = keep;
			if (at < c->ntouched &&
			    strncmp(c->touched[at], buf, i) == 0 &&
			    c->touched[at][i] == '\0')
				return true;
		}
		if (i == 0)
			break;
	}
	/* something below it */
	buf[n] = '/';
	buf[n + 1] = '\0';
	at = lower_bound(c->touched, c->ntouched, buf);
	return at < c->ntouched && strncmp(c->touched[at], buf, n + 1) == 0;
}

/* ---- listings ------------------------------------------------------- */

/* Downloads sandbox path src as a tar and extracts it into a tmp dir. */
static int fetch_tar(struct cache *c, const char *src, char *dname,
		     size_t dsize, int *dfd, struct nox_err *err)
{
	int tfd, fd, r;

	tfd = cache_tmp_file(c);
	if (tfd < 0)
		return nox_err_set(err, tfd, "cache tmp file: %s",
				   strerror(-tfd));
	r = nox_backend_download(c->be, c->sb->id, src, tfd, err);
	if (r < 0) {
		close(tfd);
		return r;
	}
	fd = cache_tmp_dir(c, "dl", dname, dsize);
	if (fd < 0) {
		close(tfd);
		return nox_err_set(err, fd, "cache tmp dir: %s", strerror(-fd));
	}
	if (lseek(tfd, 0, SEEK_SET) < 0) {
		r = nox_err_set(err, errno, "seek: %s", strerror(errno));
	} else {
		r = nox_tar_extract(tfd, fd, NULL, err);
	}
	close(tfd);
	if (r < 0) {
		cache_tmp_dir_remove(c, dname, fd);
		return r;
	}
	*dfd = fd;
	return 0;
}

/*
 * A listing on its way into the tree: entries gather in l and are merged
 * every LIST_PART of them (a paged fs/tree), so neither the listing nor
 * its JSON is ever held whole; run remembers what the prune needs.
 */
#define LIST_PART 4096

struct list_ctx {
	struct cache *c;
	struct listing l;
	struct merge *run;
	struct nox_err *err;
	int merr; /* a part's merge failed (-errno) */
	bool cut; /* not whole: merged, but nothing is pruned */
};

/* (Re)starts the merge, forgetting the parts of one given up. */
static int list_run_begin(struct list_ctx *x, int src)
{
	manifest_merge_end(x->run, false);
	x->run = NULL;
	if (manifest_merge_begin(&x->run, &x->c->man, x->c->tree_fd, src,
				 merge_busy, merge_skip, x->c) < 0)
		return nox_err_set(x->err, ENOMEM, "out of memory");
	return 0;
}

/* Merges the entries gathered so far.  Takes op_mu and mu. */
static int list_merge_part(struct list_ctx *x)
{
	struct cache *c = x->c;
	int r;

	/* no change of the tree is between its syscall and its journal
	 * entry while op_mu is held: the tree and the journal agree */
	cache_lock(c, CACHE_OP_MU);
	cache_lock(c, CACHE_MU);
	if (!c->collect) {
		/* out of memory remembering paths: keep the tree */
		r = nox_err_set(x->err, ENOMEM, "out of memory");
	} else {
		if (c->ntouched)
			qsort(c->touched, c->ntouched, sizeof(*c->touched),
			      cmp_strp);
		r = manifest_merge_part(x->run, &x->l, x->err);
		if (r == 0)
			c->man_dirty = true;
	}
	cache_unlock(c, CACHE_MU);
	cache_unlock(c, CACHE_OP_MU);
	listing_cleanup(&x->l);
	return r;
}

/* listing_from_dir's part hook: the tar's walk is merged in parts too. */
static int dir_part(struct listing *l, void *ud)
{
	struct list_ctx *x = ud;

	(void)l; /* x->l */
	return list_merge_part(x);
}

static int tree_cb(const char *rel, const struct stat *st, const char *target,
		   void *ud)
{
	struct list_ctx *x = ud;
	int r = listing_add_stat(&x->l, rel, st, target);

	if (r == 0 && x->l.n >= LIST_PART) {
		r = list_merge_part(x);
		if (r < 0)
			x->merr = r;
	}
	return r;
}

/*
 * The v1 listing in slices: find's output goes to a file in the
 * command's own /tmp, and the command prints a header (cksum of the whole
 * output, NUL-ended), records skip+1 .. skip+count of it (8 NUL-ended
 * fields a record) and a trailer ".\0" (its absence: the output was cut
 * at the server's cap); then the workspace's space figures on stderr (a
 * statfs after the listing costs no exec).  The exit status stays find's
 * (125: no temp file).  A workspace that fits one slice is one exec, as
 * before; a bigger one takes one exec per slice, each under the server's
 * output cap, and the same header in every slice says the tree did not
 * change in between (docs/cache.md).  NULL if argv is too long.
 */
#define FIND_SLICE 8192 /* records a slice at first; halved when cut */

static const char *const *find_slice_argv(const char **v, size_t n, char *from,
					  char *count, size_t skip, size_t k)
{
	static const char script[] =
	    "n=$1; k=$2; shift 2; f=$(mktemp) || exit 125; "
	    "\"$@\" >\"$f\"; r=$?; if [ $r -eq 0 ]; then "
	    "printf '%s\\0' \"$(cksum <\"$f\")\"; "
	    "tail -z -n +\"$n\" \"$f\" | head -z -n \"$k\"; printf '.\\0'; fi; "
	    "rm -f \"$f\"; "
	    "df -P -k /workspace >&2; df -P -i /workspace >&2; exit $r";
	const char *const *find = listing_find_argv();
	size_t i = 0, j;

	snprintf(from, 24, "%zu", skip * 8 + 1);
	snprintf(count, 24, "%zu", k * 8);
	v[i++] = "sh";
	v[i++] = "-c";
	v[i++] = script;
	v[i++] = "sh";
	v[i++] = from;
	v[i++] = count;
	for (j = 0; find[j]; j++) {
		if (i + 1 >= n)
			return NULL;
		v[i++] = find[j];
	}
	v[i] = NULL;
	return v;
}

/*
 * The v1 listing, slice by slice, each merged as a part.  -ENOSYS: take a
 * tar of the workspace instead (find missing or failed, a record longer
 * than a slice may be).
 */
static int take_find(struct cache *c, struct list_ctx *x, struct nox_err *err)
{
	char from[24], count[24], first[64] = "";
	const char *argv[32];
	struct nox_exec_req req = {
	    .timeout_seconds = c->op_timeout > 1 ? c->op_timeout - 1 : 1,
	    .deadline_ms = (long)c->op_timeout * 1000L};
	struct nox_exec_result res;
	size_t k = FIND_SLICE, skip = 0, got;
	const char *z;
	bool cut;
	int r;

	for (;;) {
		req.argv = find_slice_argv(argv, 32, from, count, skip, k);
		if (!req.argv)
			return nox_err_set(err, E2BIG, "listing argv");
		memset(&res, 0, sizeof(res));
		r = nox_backend_exec(c->be, c->sb->id, &req, &res, err);
		if (r < 0)
			return r;
		if (skip == 0)
			cache_space_statfs_note(c, res.err ? res.err : "");
		z = res.out ? memchr(res.out, '\0', res.out_len) : NULL;
		cut = res.out_truncated || !z ||
		      res.out_len < (size_t)(z - res.out) + 3 ||
		      memcmp(res.out + res.out_len - 2, ".\0", 2) != 0;
		if (cut && res.exit_code == 0 && k > 64) {
			/* cut at the output cap (long names): smaller */
			nox_exec_result_cleanup(&res);
			k /= 2;
			continue;
		}
		if (res.exit_code != 0 || cut ||
		    (size_t)(z - res.out) >= sizeof(first)) {
			nox_log(NOX_LOG_DEBUG,
				"%s: find gave %d%s; listing by tar", c->sb->id,
				res.exit_code,
				res.out_truncated ? " (cut)" : "");
			nox_exec_result_cleanup(&res);
			return -ENOSYS;
		}
		if (skip == 0) {
			memcpy(first, res.out, (size_t)(z - res.out) + 1);
		} else if (strcmp(first, res.out) != 0) {
			/* the tree changed between two slices: what came is
			 * merged, the prune waits for a listing whole */
			nox_log(NOX_LOG_DEBUG,
				"%s: the workspace changed during the "
				"listing (slice %zu)",
				c->sb->id, skip / k);
			nox_exec_result_cleanup(&res);
			x->cut = true;
			return 0;
		}
		z++;
		r = listing_parse_find(
		    z, res.out_len - (size_t)(z - res.out) - 2, &x->l, err);
		nox_exec_result_cleanup(&res);
		if (r < 0)
			return r;
		got = x->l.n;
		r = list_merge_part(x);
		if (r < 0 || got < k)
			return r;
		skip += got;
	}
}

/*
 * The space figures the last fs/tree page carried (noxd adds them; the
 * backend keeps them 2 s) noted for the cache's statfs now, so that a
 * statfs waiting for this listing (find's first) is answered from them
 * however long the merge after the last page takes.
 */
static void tree_statfs_note(struct cache *c)
{
	struct statvfs sv;

	if (nox_backend_has(c->be, NOX_OP_STATFS) &&
	    nox_backend_statfs(c->be, c->sb->id, &sv, NULL) == 0)
		cache_space_statfs_keep(c, &sv);
}

/*
 * The listing: on a server with nox.fs GET fs/tree in pages (no command
 * runs); else exec of find in slices (-ENOSYS: take a tar of the
 * workspace instead).  Each request ends within op_timeout, as other
 * requests do, or a stalled server would hold every lookup for an exec's
 * deadline; a find too slow for it is killed (124) and the listing is a
 * tar.
 */
static int take_listing(struct cache *c, struct list_ctx *x,
			struct nox_err *err)
{
	struct listing *l = &x->l;
	int r;

	if (c->ext && nox_backend_has(c->be, NOX_OP_TREE)) {
		r = nox_backend_tree(c->be, c->sb->id, "", tree_cb, x, err);
		if (x->merr)
			return x->merr;
		if (r == 0)
			tree_statfs_note(c);
		if (r != -ENOSYS && r != -EFBIG && r != -EPROTO &&
		    r != -EOPNOTSUPP)
			return r;
		/* too big for one answer, not there after all, or an
		 * answer we cannot use: the v1 way (the pages merged so
		 * far stay; the prune waits for a whole listing) */
		nox_log(NOX_LOG_DEBUG, "%s: fs/tree: %s; listing by find",
			c->sb->id, nox_err_str(err, r));
		listing_cleanup(l);
		memset(l, 0, sizeof(*l));
		r = list_run_begin(x, -1);
		if (r < 0)
			return r;
	}
	return take_find(c, x, err);
}

/*
 * Takes a listing from the server and merges it.  Called with no lock;
 * c->listing set by the caller.  Local operations pending when the
 * listing was asked for, or journaled while it came, may or may not be
 * in it: their paths are left as the tree has them (merge_skip).
 */
static int refresh(struct cache *c, struct nox_err *err)
{
	struct list_ctx x = {.c = c, .err = err};
	const struct jent *e;
	struct timespec t0;
	unsigned long execs;
	char dname[64];
	size_t total = 0;
	int r, src = -1;
	bool big;

	mono_now(&t0);
	cache_lock(c, CACHE_MU);
	execs = c->execs;
	cache_touched_clear_locked(c);
	c->collect = true;
	for (e = journal_first(&c->jr); e; e = journal_next(e)) {
		cache_touch_locked(c, e->path);
		if (e->op == J_RENAME || e->op == J_LINK)
			cache_touch_locked(c, e->path2);
	}
	cache_unlock(c, CACHE_MU);
	r = list_run_begin(&x, -1);
	if (r == 0)
		r = take_listing(c, &x, err);
	if (r == -ENOENT) {
		r = cache_check_gone(c, r);
		goto out;
	}
	if (r == -EILSEQ || r == -ENOSYS || r == -EPROTO) {
		r = fetch_tar(c, NULL, dname, sizeof(dname), &src, err);
		if (r < 0) {
			r = cache_check_gone(c, r);
			goto out;
		}
		r = list_run_begin(&x, src);
		x.l.part = dir_part;
		x.l.part_ud = &x;
		x.l.part_max = LIST_PART;
		if (r == 0)
			r = listing_from_dir(src, &x.l, err);
	}
	if (r < 0)
		goto out;
	total = x.run ? manifest_merge_count(x.run) + x.l.n : x.l.n;
	r = list_merge_part(&x);
	if (r < 0)
		goto out;
	cache_lock(c, CACHE_OP_MU);
	cache_lock(c, CACHE_MU);
	if (!c->collect) {
		cache_unlock(c, CACHE_MU);
		cache_unlock(c, CACHE_OP_MU);
		r = nox_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (c->ntouched)
		qsort(c->touched, c->ntouched, sizeof(*c->touched), cmp_strp);
	manifest_merge_end(x.run, !x.cut);
	x.run = NULL;
	if (r == 0) {
		c->man_dirty = true;
		c->listed = true;
		c->have_manifest = true;
		/* commands that ended while it came are not in it */
		c->listed_execs = execs;
		c->stale = false;
		mono_now(&c->listed_at);
		c->list_took = ts_diff(&c->listed_at, &t0);
		cache_save_manifest_locked(c, false);
	}
	cache_unlock(c, CACHE_MU);
	cache_unlock(c, CACHE_OP_MU);
out:
	manifest_merge_end(x.run, false);
	x.run = NULL;
	cache_lock(c, CACHE_MU);
	c->collect = false;
	cache_touched_clear_locked(c);
	cache_unlock(c, CACHE_MU);
	if (src >= 0)
		cache_tmp_dir_remove(c, dname, src);
	big = x.l.n > 10000 || (r == 0 && total > 10000);
	listing_cleanup(&x.l);
	/* a big listing's JSON and entries were many small blocks: give
	 * the memory back rather than keep it as the daemon's RSS */
#ifdef __GLIBC__
	if (big)
		(void)malloc_trim(0);
#else
	(void)big;
#endif
	return r;
}

static int list_run(struct cache *c);

/*
 * A listing is taken again once older than the attribute timeout, or
 * than LIST_AGE times what the last one took if that is longer.  Without
 * the second bound a tree whose listing takes longer than the timeout
 * (about 40,000 files a second here) was listed without end while a walk
 * ran: grep -r of 200,000 files over noxd took 4,500 pages of fs/tree
 * and did not end in 8 minutes.  With it, listings take at most a fifth
 * of a walk's time; changes by others show that much later.  Commands
 * run through the mount are not affected (cache_list_ensure).
 */
#define LIST_AGE 4.0

/*
 * Makes sure the tree holds a listing fresh enough (before_dir): taken
 * after every command that ended before this call (the exec barrier's
 * second half: what a command made is visible once it returned), and
 * not older than list_ttl (or LIST_AGE times the last one's time).  A
 * listing in flight that started after those commands is waited for; an
 * older one is not enough.
 */
int cache_list_ensure(struct cache *c)
{
	struct timespec now;
	unsigned long want;
	bool need, old;
	double age;
	int r;

	cache_lock(c, CACHE_MU);
	want = c->execs;
	for (;;) {
		if (c->gone) {
			cache_unlock(c, CACHE_MU);
			return -ENOENT;
		}
		mono_now(&now);
		old = c->listed_execs < want || c->stale;
		age = ts_diff(&now, &c->listed_at);
		need = !c->listed || old ||
		       (age > c->list_ttl && age > LIST_AGE * c->list_took);
		if (!need) {
			cache_unlock(c, CACHE_MU);
			return 0;
		}
		if ((c->listed || c->have_manifest) && c->thr_started &&
		    fs_health_silent(c->sb->fs)) {
			/* the server does not answer: the cache serves at
			 * once, and the flusher asks for a listing (which
			 * tells when the server is back) */
			if (!c->listing && ts_diff(&c->list_retry, &now) <= 0) {
				c->list_wanted = true;
				pthread_cond_broadcast(&c->cond);
			}
			cache_unlock(c, CACHE_MU);
			return 0;
		}
		if (ts_diff(&c->list_retry, &now) > 0) {
			/* a listing failed lately: what the cache has, or
			 * that failure again (never an empty success) */
			r = c->have_manifest || c->listed ? 0 : c->list_errno;
			cache_unlock(c, CACHE_MU);
			return r;
		}
		if (!c->listing)
			break;
		if (c->listed && !old) {
			/* only the ttl: the old listing will do meanwhile */
			cache_unlock(c, CACHE_MU);
			return 0;
		}
		cache_wait(c);
	}
	c->listing = true;
	cache_unlock(c, CACHE_MU);
	return list_run(c);
}

void cache_list_background(struct cache *c)
{
	cache_lock(c, CACHE_MU);
	c->list_wanted = false;
	if (c->listing || c->gone) {
		cache_unlock(c, CACHE_MU);
		return;
	}
	c->listing = true;
	cache_unlock(c, CACHE_MU);
	(void)list_run(c);
}

/* Takes a listing; c->listing set by the caller, cleared here. */
static int list_run(struct cache *c)
{
	struct nox_err err;
	int r;

	nox_err_clear(&err);
	r = refresh(c, &err);
	if (r < 0)
		fs_health_failed(c->sb->fs, r);
	else
		fs_health_answered(c->sb->fs);

	cache_lock(c, CACHE_MU);
	c->listing = false;
	if (r < 0) {
		mono_now(&c->list_retry);
		ts_add_ms(&c->list_retry, 1000);
		c->list_errno = r;
	} else {
		c->list_errno = 0;
	}
	pthread_cond_broadcast(&c->cond);
	if (r < 0 && (c->have_manifest || c->listed)) {
		/* serve what the cache has */
		nox_log(NOX_LOG_DEBUG, "%s: listing: %s (using the cache)",
			c->sb->id, nox_err_str(&err, r));
		r = 0;
	}
	cache_unlock(c, CACHE_MU);
	if (r < 0)
		nox_log(NOX_LOG_WARN, "%s: listing: %s", c->sb->id,
			nox_err_str(&err, r));
	return r;
}

/* ---- downloads ------------------------------------------------------ */

static int copy_into(int from, int to)
{
	char buf[65536];
	off_t off = 0;
	ssize_t n;

	for (;;) {
		n = copy_file_range(from, &off, to, NULL, 1 << 30, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
	}
	if (n == 0)
		return 0;
	if (lseek(to, off, SEEK_SET) < 0)
		return -errno;
	for (;;) {
		n = pread(from, buf, sizeof(buf), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		if (write(to, buf, (size_t)n) != n)
			return errno ? -errno : -EIO;
		off += n;
	}
}

/*
 * v1: downloads path (a tar of one file) into tree file tfd, opened for
 * writing and not truncated: the placeholder keeps its size until the
 * content is all there, so a stat meanwhile shows the remote size.
 */
static int download(struct cache *c, int tfd, const char *path,
		    struct stat *out, struct nox_err *err)
{
	char src[PATH_MAX + 16], dname[64];
	const char *base = strrchr(path, '/');
	struct timespec ts[2];
	struct stat st;
	int dfd = -1, sfd = -1, r;

	snprintf(src, sizeof(src), "/workspace/%s", path);
	r = fetch_tar(c, src, dname, sizeof(dname), &dfd, err);
	if (r < 0)
		return r;
	base = base ? base + 1 : path;
	sfd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0 || fstat(sfd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = nox_err_set(err, ENOENT,
				"download of %s: no such file in the answer",
				path);
		goto out;
	}
	if (lseek(tfd, 0, SEEK_SET) < 0)
		r = -errno;
	else
		r = copy_into(sfd, tfd);
	if (r == 0 && ftruncate(tfd, st.st_size) < 0)
		r = -errno;
	if (r < 0) {
		nox_err_set(err, -r, "cache tree %s: %s", path, strerror(-r));
		goto out;
	}
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1] = st.st_mtim;
	(void)futimens(tfd, ts);
	*out = st;
out:
	if (sfd >= 0)
		close(sfd);
	cache_tmp_dir_remove(c, dname, dfd);
	return r;
}

/*
 * Islands (nox.fs only): a read that starts more than ISLAND_AHEAD past
 * the mark fetches its ISLAND_BLOCK-aligned blocks with one ranged GET
 * rather than wait for the stream (tail of a big file, sqlite's page
 * reads).  Within ISLAND_AHEAD the stream brings the range about as soon
 * as a request of its own would (a round trip and a block), and the
 * bytes would cross the link twice.  A block of 512 KiB is four of the
 * kernel's 128 KiB reads, so a reader going on from a far point makes one
 * request per four reads, and costs little more than a 4 KiB page on a
 * link of some MB/s.  The stream writes the same bytes again later
 * (pwrite at its own offset, so no file position is shared): harmless.
 * At most ISLAND_MAX islands and ISLAND_BUSY requests in flight a
 * download; beyond that, or after a ranged GET failed, reads wait for
 * the stream as before.
 */
#define ISLAND_AHEAD ((off_t)1 << 20)
#define ISLAND_BLOCK ((off_t)512 << 10)
#define ISLAND_MAX   32
#define ISLAND_BUSY  4

struct fetch_range {
	off_t start, end;
};

/*
 * One download in flight (c->fetches): the content lands in place in the
 * tree file, and mark says how many bytes from its start are there, so a
 * read waits only for its range (cache_list_fetch_range); islands are the
 * ranges taken ahead of it.  A failed one stays in the list, done, until
 * the next open of the file: the reads of the descriptors open meanwhile
 * get its error rather than start one download each (the kernel retries a
 * failed readahead as a read).
 */
struct cache_fetch {
	struct cache *c;
	ino_t ino;
	int fd;		     /* the tree file, O_WRONLY */
	char path[PATH_MAX]; /* workspace path */
	off_t need;	     /* the size the listing gave */
	int64_t rmtime;	     /* the mtime it gave (nox.fs: kept) */
	off_t off;	     /* the downloading thread's: bytes written */
	struct nox_err err;  /* the downloading thread's */
	/* protected by c->mu */
	off_t mark; /* bytes from 0 that are in the tree file */
	bool done;
	int result; /* once done: 0 or -errno */
	unsigned refs;	  /* the list, the downloader and each waiter */
	unsigned waiters; /* reads waiting for the mark to move */
	/* islands: disjoint, not adjacent, in no order */
	struct fetch_range isl[ISLAND_MAX];
	unsigned nisl;
	struct fetch_range busy[ISLAND_BUSY]; /* ranged GETs in flight */
	unsigned nbusy;
	unsigned writing; /* island pwrites under way */
	bool closing;	  /* the stream ended: no island is written now */
	bool no_islands;  /* a ranged GET failed: wait for the stream */
	struct cache_fetch *next;
};

/* With mu: the download of ino in flight, or NULL. */
static struct cache_fetch *fetch_find_locked(struct cache *c, ino_t ino)
{
	struct cache_fetch *f;

	for (f = c->fetches; f; f = f->next)
		if (f->ino == ino)
			return f;
	return NULL;
}

/* With mu: drops a reference. */
static void fetch_put_locked(struct cache_fetch *f)
{
	if (--f->refs > 0)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}

/* With mu: takes f out of c->fetches (if there), with the list's
 * reference. */
static void fetch_unlink_locked(struct cache *c, struct cache_fetch *f)
{
	struct cache_fetch **pp = &c->fetches;

	while (*pp && *pp != f)
		pp = &(*pp)->next;
	if (!*pp)
		return;
	*pp = f->next;
	f->next = NULL;
	fetch_put_locked(f);
}

/* With mu: forgets a failed download of ino (an open tries again). */
static void fetch_forget_failed_locked(struct cache *c, ino_t ino)
{
	struct cache_fetch *f = fetch_find_locked(c, ino);

	if (f && f->done)
		fetch_unlink_locked(c, f);
}

/* With mu: the downloads' records, at the cache's end (no thread runs). */
void cache_list_fetch_cleanup_locked(struct cache *c)
{
	while (c->fetches)
		fetch_unlink_locked(c, c->fetches);
}

/*
 * -ENOSPC when the cache disk cannot hold need more bytes (after the
 * eviction made what room it could): the open fails at once rather than
 * a read later, with nothing downloaded.
 */
static int fetch_space(struct cache *c, off_t need)
{
	struct statvfs sv;

	if (need <= 0 || fstatvfs(c->dir_fd, &sv) < 0)
		return 0;
	return (unsigned long long)sv.f_bavail * sv.f_frsize <
		       (unsigned long long)need
		   ? -ENOSPC
		   : 0;
}

/*
 * Waits until n may be downloaded: 1 when the caller is to download it
 * (its entry marked fetching; *need: its size), 0 when there is nothing
 * to do (fetched, or not a placeholder), or -errno.
 */
static int fetch_begin(struct cache *c, struct fs_node *n, off_t *need)
{
	char path[PATH_MAX];
	struct nox_err err;
	struct ment *me;
	bool drained = false;
	int r;

	cache_lock(c, CACHE_MU);
	for (;;) {
		me = manifest_get(&c->man, n->sino);
		if (c->gone) {
			cache_unlock(c, CACHE_MU);
			return -ENOENT;
		}
		if (me && me->fetched) {
			cache_space_used_locked(me); /* the eviction's clock */
			cache_unlock(c, CACHE_MU);
			return 0;
		}
		if (!me) {
			cache_unlock(c, CACHE_MU);
			return 0;
		}
		if (cache_busy_locked(c, n->sino)) {
			uint64_t seq;

			/* a placeholder with journaled changes (chmod,
			 * truncate): send them, then fetch the result */
			if (drained || cache_dirty_has(c, n->sino)) {
				cache_unlock(c, CACHE_MU);
				return 0;
			}
			cache_unlock(c, CACHE_MU);
			drained = true;
			seq = cache_last_seq_of(c, n->sino);
			nox_err_clear(&err);
			r = cache_drain(c, seq, &err);
			if (r < 0)
				return r;
			cache_lock(c, CACHE_MU);
			continue;
		}
		if (!me->fetching)
			break;
		cache_wait(c);
	}
	me->fetching = true;
	*need = me->rsize;
	cache_unlock(c, CACHE_MU);
	cache_space_room(c, *need); /* within -o cache_max, if it can */
	cache_lock(c, CACHE_MU);
	c->inflight += *need; /* the next download's room counts it */
	cache_unlock(c, CACHE_MU);
	r = fetch_space(c, *need);
	if (r < 0) {
		cache_lock(c, CACHE_MU);
		c->inflight -= *need;
		me = manifest_get(&c->man, n->sino);
		if (me)
			me->fetching = false;
		pthread_cond_broadcast(&c->cond);
		cache_unlock(c, CACHE_MU);
		if (cache_node_path(c->sb, n, path, sizeof(path)) < 0)
			snprintf(path, sizeof(path), "?");
		nox_log(NOX_LOG_WARN,
			"%s: download of %s (%lld bytes): the cache directory "
			"%s is full",
			c->sb->id, path, (long long)*need, c->dir);
	}
	return r < 0 ? r : 1;
}

/*
 * Ends download f with result r (st: what arrived, v1): the manifest
 * and the waiting reads learn it; f leaves c->fetches.  A failed one
 * leaves the placeholder, so the next open downloads again.
 */
static void fetch_finish(struct cache_fetch *f, int r, const struct stat *st)
{
	struct cache *c = f->c;
	struct ment *me;

	if (r < 0)
		fs_health_failed(c->sb->fs, r);
	else
		fs_health_answered(c->sb->fs);
	if (r == -ENOENT && !c->gone) {
		struct nox_sandbox_info info;

		if (nox_backend_info(c->be, c->sb->id, &info, NULL) == -ENOENT)
			cache_mark_gone(c);
	}

	cache_lock(c, CACHE_MU);
	c->inflight -= f->need;
	me = manifest_get(&c->man, f->ino);
	if (me) {
		me->fetching = false;
		if (r == 0) {
			manifest_mark(&c->man, me, true, st->st_size);
			me->rmtime = ts_ns(&st->st_mtim);
			cache_space_used_locked(me);
			c->man_dirty = true;
		}
	}
	if (r == -ENOENT)
		c->stale = true;
	f->done = true;
	f->result = r;
	if (r == 0 && f->mark < st->st_size)
		f->mark = st->st_size;
	if (r < 0) {
		/* its bytes were punched out (fetch_run): a read of a
		 * descriptor still open gets the error, never the holes */
		f->mark = 0;
		f->nisl = 0;
	}
	if (r == 0)
		fetch_unlink_locked(c, f);
	pthread_cond_broadcast(&c->cond);
	cache_unlock(c, CACHE_MU);
	if (r == -ENOSPC)
		/* what is left after evicting every clean closed file */
		nox_log(NOX_LOG_WARN,
			"%s: download of %s (%lld bytes): the cache directory "
			"%s is full (%s)",
			c->sb->id, f->path, (long long)f->need, c->dir,
			nox_err_str(&f->err, r));
	else if (r < 0)
		nox_log(NOX_LOG_WARN, "%s: download of %s: %s", c->sb->id,
			f->path, nox_err_str(&f->err, r));
}

/*
 * After fetch_begin said 1: a download of n (one reference, the
 * caller's), in c->fetches; or NULL with *r set (the download is then
 * ended).
 */
static struct cache_fetch *fetch_new(struct cache *c, struct fs_node *n,
				     off_t need, int *r)
{
	struct cache_fetch *f = calloc(1, sizeof(*f));
	char proc[64];
	struct ment *me;

	if (!f) {
		struct cache_fetch tmp = {
		    .c = c, .ino = n->sino, .fd = -1, .need = need};

		*r = -ENOMEM;
		fetch_finish(&tmp, *r, NULL);
		return NULL;
	}
	f->c = c;
	f->ino = n->sino;
	f->need = need;
	f->refs = 2; /* the list's and the caller's */
	nox_err_clear(&f->err);
	*r = cache_node_path(c->sb, n, f->path, sizeof(f->path));
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", n->fd);
	f->fd = *r < 0 ? -1 : open(proc, O_WRONLY | O_CLOEXEC);
	if (*r == 0 && f->fd < 0)
		*r = nox_err_set(&f->err, errno, "cache tree %s: %s", f->path,
				 strerror(errno));
	cache_lock(c, CACHE_MU);
	me = manifest_get(&c->man, f->ino);
	f->rmtime = me ? me->rmtime : 0;
	if (*r == 0) {
		f->next = c->fetches;
		c->fetches = f;
	}
	cache_unlock(c, CACHE_MU);
	if (*r < 0) {
		fetch_finish(f, *r, NULL);
		cache_lock(c, CACHE_MU);
		f->refs = 1; /* never in the list */
		fetch_put_locked(f);
		cache_unlock(c, CACHE_MU);
		return NULL;
	}
	return f;
}

/* n bytes at off of the content, written in place; the mark moves. */
static int fetch_write(struct cache_fetch *f, const void *p, size_t n,
		       off_t off)
{
	struct cache *c = f->c;
	const char *b = p;
	bool stop;

	f->off = off;
	while (n > 0) {
		ssize_t w = pwrite(f->fd, b, n, f->off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? errno : EIO;
		b += w;
		n -= (size_t)w;
		f->off += w;
	}
	cache_lock(c, CACHE_MU);
	f->mark = f->off;
	stop = c->stop;
	if (f->waiters)
		pthread_cond_broadcast(&c->cond);
	cache_unlock(c, CACHE_MU);
	return stop ? ECANCELED : 0;
}

/* nox.fs: the body of GET fs/file, as it comes. */
static int fetch_data(const void *p, size_t n, void *ud)
{
	struct cache_fetch *f = ud;

	return fetch_write(f, p, n, f->off);
}

/* v1: the file's data, unpacked from the tar as it comes (a sparse
 * entry's holes are the placeholder's own). */
static int fetch_tar_data(const void *p, size_t n, int64_t off, void *ud)
{
	return fetch_write(ud, p, n, (off_t)off);
}

/* v1: the download's thread, sending the tar into a socket that the
 * fetch's thread unpacks from. */
struct fetch_pipe {
	struct cache *c;
	char src[PATH_MAX + 16];
	int fd;
	int r;
	struct nox_err err;
};

static int fetch_pipe_send(const void *p, size_t n, void *ud)
{
	struct fetch_pipe *d = ud;
	const char *b = p;

	while (n > 0) {
		ssize_t w = send(d->fd, b, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno; /* EPIPE: the unpacking ended */
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *fetch_pipe_thread(void *arg)
{
	struct fetch_pipe *d = arg;

	d->r = nox_backend_download_stream(d->c->be, d->c->sb->id, d->src,
					   fetch_pipe_send, d, &d->err);
	(void)shutdown(d->fd, SHUT_WR);
	return NULL;
}

/*
 * v1: downloads f's tar and unpacks its one file in place as it arrives
 * (the download in a thread of its own, through a socket pair); st gets
 * its size and mtime.  -ENOSYS: cannot here (no thread or socket).
 */
static int fetch_v1_stream(struct cache_fetch *f, struct stat *st)
{
	struct fetch_pipe d = {.c = f->c, .fd = -1};
	const char *base = strrchr(f->path, '/');
	int64_t size = 0, mtime = 0;
	pthread_t t;
	int sv[2], r;

	snprintf(d.src, sizeof(d.src), "/workspace/%s", f->path);
	nox_err_clear(&d.err);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -ENOSYS;
	d.fd = sv[1];
	if (pthread_create(&t, NULL, fetch_pipe_thread, &d) != 0) {
		close(sv[0]);
		close(sv[1]);
		return -ENOSYS;
	}
	r = nox_tar_read_file(sv[0], base ? base + 1 : f->path, fetch_tar_data,
			      f, &size, &mtime, &f->err);
	close(sv[0]); /* a download still sending gets EPIPE and ends */
	pthread_join(t, NULL);
	close(sv[1]);
	if (d.r < 0 && (r == 0 || d.r != -EPIPE)) {
		/* the transport's error says more than a cut tar */
		r = d.r;
		f->err = d.err;
	}
	if (r == 0 && ftruncate(f->fd, (off_t)size) < 0)
		r = nox_err_set(&f->err, errno, "cache tree %s: %s", f->path,
				strerror(errno));
	if (r == 0) {
		st->st_size = (off_t)size;
		st->st_mtim.tv_sec = (time_t)(mtime / 1000000000ll);
		st->st_mtim.tv_nsec = (long)(mtime % 1000000000ll);
	}
	return r;
}

/*
 * The stream of f ended with r: no island is written from now on (one
 * written after the truncate or the punch below would put stale bytes
 * back).  Returns where the last island ends (0: none).  A failed one
 * has nothing a read may take any more: its bytes are about to be
 * punched out.
 */
static off_t fetch_close_islands(struct cache_fetch *f, int r)
{
	struct cache *c = f->c;
	off_t end = 0;
	unsigned i;

	cache_lock(c, CACHE_MU);
	f->closing = true;
	while (f->writing)
		cache_wait(c);
	for (i = 0; i < f->nisl; i++)
		if (f->isl[i].end > end)
			end = f->isl[i].end;
	if (r < 0) {
		f->mark = 0;
		f->nisl = 0;
	}
	cache_unlock(c, CACHE_MU);
	return end;
}

/* Downloads f (the downloading thread, or the caller of a full fetch). */
static void fetch_run(struct cache_fetch *f)
{
	struct cache *c = f->c;
	struct stat st = {0};
	off_t isl_end;
	int r;

	/* a small file: with its directory's small files, if worth it */
	r = cache_bulk_fetch(c, f->ino, f->path, &st, &f->err);
	if (r != -EAGAIN) {
		/* done (or a transport error): st is what the server sent */
		isl_end = fetch_close_islands(f, r);
	} else if (!c->ext) {
		r = fetch_v1_stream(f, &st);
		if (r == -ENOSYS) /* whole, through a temporary file */
			r = download(c, f->fd, f->path, &st, &f->err);
		isl_end = fetch_close_islands(f, r);
	} else {
		r = nox_backend_read_stream(c->be, c->sb->id, f->path,
					    fetch_data, f, &f->err);
		isl_end = fetch_close_islands(f, r);
		if (r == 0 && f->off != f->need && ftruncate(f->fd, f->off) < 0)
			r = nox_err_set(&f->err, errno, "cache tree %s: %s",
					f->path, strerror(errno));
		/* the listing's mtime (GET fs/file carries none) */
		st.st_size = f->off;
		st.st_mtim.tv_sec = (time_t)(f->rmtime / 1000000000ll);
		st.st_mtim.tv_nsec = (long)(f->rmtime % 1000000000ll);
	}
	if (r == 0) {
		struct timespec ts[2];

		ts[0].tv_sec = 0;
		ts[0].tv_nsec = UTIME_OMIT;
		ts[1] = st.st_mtim;
		(void)futimens(f->fd, ts);
	}
	if (r < 0 && (f->off > 0 || isl_end > 0))
		/* no half file left: the placeholder holds no data again */
		(void)fallocate(f->fd,
				FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				f->off > isl_end ? f->off : isl_end);
	fetch_finish(f, r, &st);
}

static void *fetch_thread(void *arg)
{
	struct cache_fetch *f = arg;
	struct cache *c = f->c;

	fetch_run(f);
	cache_lock(c, CACHE_MU);
	fetch_put_locked(f);
	c->fetch_threads--;
	pthread_cond_broadcast(&c->cond);
	cache_unlock(c, CACHE_MU);
	return NULL;
}

int cache_list_fetch(struct cache *c, struct fs_node *n)
{
	struct cache_fetch *f;
	off_t need = 0;
	int r;

	cache_lock(c, CACHE_MU);
	fetch_forget_failed_locked(c, n->sino);
	cache_unlock(c, CACHE_MU);
	r = fetch_begin(c, n, &need);
	if (r <= 0)
		return r;
	f = fetch_new(c, n, need, &r);
	if (!f)
		return r;
	fetch_run(f);
	cache_lock(c, CACHE_MU);
	r = f->result;
	fetch_put_locked(f);
	cache_unlock(c, CACHE_MU);
	return r;
}

/*
 * The download of n in flight, with a reference (*out), started now in
 * a thread of its own if none is; *out NULL: nothing to wait for.
 */
static int fetch_join(struct cache *c, struct fs_node *n, bool open,
		      struct cache_fetch **out)
{
	struct cache_fetch *f;
	pthread_attr_t at;
	pthread_t t;
	off_t need = 0;
	int r;

	*out = NULL;
	cache_lock(c, CACHE_MU);
	if (open)
		fetch_forget_failed_locked(c, n->sino);
	f = fetch_find_locked(c, n->sino);
	if (f)
		f->refs++;
	cache_unlock(c, CACHE_MU);
	if (f) {
		*out = f;
		return 0;
	}
	r = fetch_begin(c, n, &need);
	if (r <= 0)
		return r;
	f = fetch_new(c, n, need, &r);
	if (!f)
		return r;
	cache_lock(c, CACHE_MU);
	f->refs++; /* the thread's */
	c->fetch_threads++;
	cache_unlock(c, CACHE_MU);
	r = pthread_attr_init(&at);
	if (r == 0) {
		(void)pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		r = pthread_create(&t, &at, fetch_thread, f);
		pthread_attr_destroy(&at);
	}
	if (r != 0)
		(void)fetch_thread(f); /* no thread: here, whole */
	*out = f;
	return 0;
}

/* With mu: are bytes [off, end) of f in the tree file (below the mark,
 * or in one island)?  Islands do not touch, so one holds all of it. */
static bool fetch_has_locked(const struct cache_fetch *f, off_t off, off_t end)
{
	unsigned i;

	if (end <= f->mark)
		return true;
	if (off < f->mark)
		off = f->mark;
	for (i = 0; i < f->nisl; i++)
		if (f->isl[i].start <= off && end <= f->isl[i].end)
			return true;
	return false;
}

/* With mu: waits until f has bytes [off, end) or ended; 0 or its
 * error. */
static int fetch_wait_locked(struct cache *c, struct cache_fetch *f, off_t off,
			     off_t end)
{
	if (end > f->need)
		end = f->need;
	f->waiters++;
	while (!f->done && !fetch_has_locked(f, off, end))
		cache_wait(c);
	f->waiters--;
	return fetch_has_locked(f, off, end) ? 0 : f->result;
}

/* With mu: forgets the islands the mark passed; how many are left. */
static unsigned island_prune_locked(struct cache_fetch *f)
{
	unsigned i, j = 0;

	for (i = 0; i < f->nisl; i++)
		if (f->isl[i].end > f->mark)
			f->isl[j++] = f->isl[i];
	f->nisl = j;
	return j;
}

/* With mu: adds island [a, b), merged with those it touches (room was
 * made before its GET: islands and GETs in flight are at most
 * ISLAND_MAX). */
static void island_add_locked(struct cache_fetch *f, off_t a, off_t b)
{
	unsigned i, j = 0;

	island_prune_locked(f);
	for (i = 0; i < f->nisl; i++) {
		struct fetch_range *x = &f->isl[i];

		if (x->end < a || x->start > b) {
			f->isl[j++] = *x;
			continue;
		}
		if (x->start < a)
			a = x->start;
		if (x->end > b)
			b = x->end;
	}
	if (j < ISLAND_MAX) {
		f->isl[j].start = a;
		f->isl[j].end = b;
		j++;
	}
	f->nisl = j;
}

/* pwrite of all n bytes of p at off; 0 or an errno. */
static int island_write(int fd, const char *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? errno : EIO;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/*
 * With mu (dropped during the GET and the write): when [off, end) of f
 * is far ahead of its mark, fetches its blocks with one ranged GET into
 * the tree file and records them as an island.  A read that a GET in
 * flight covers waits for that one rather than ask again.  Nothing is
 * recorded when the GET fails or comes short (the file shrank): the
 * caller then waits for the stream, as without islands.
 */
static void island_fetch_locked(struct cache *c, struct cache_fetch *f,
				off_t off, off_t end)
{
	struct nox_err err;
	struct fetch_range *slot;
	unsigned i;
	off_t a, b;
	ssize_t got;
	char *buf;
	int e = 0;

	if (end > f->need)
		end = f->need;
	/* nothing there to fetch, or more than a read of the kernel's */
	if (end <= off || end - off > 2 * ISLAND_BLOCK)
		return;
	for (;;) {
		if (f->done || f->closing || f->no_islands ||
		    fetch_has_locked(f, off, end) ||
		    off - f->mark <= ISLAND_AHEAD)
			return;
		for (i = 0; i < f->nbusy; i++)
			if (f->busy[i].start <= off && end <= f->busy[i].end)
				break;
		if (i == f->nbusy)
			break;
		f->waiters++; /* the mark passing it ends the wait too */
		cache_wait(c);
		f->waiters--;
	}
	if (f->nbusy == ISLAND_BUSY ||
	    island_prune_locked(f) + f->nbusy >= ISLAND_MAX)
		return;
	a = off - off % ISLAND_BLOCK;
	b = end + (ISLAND_BLOCK - 1) - (end + ISLAND_BLOCK - 1) % ISLAND_BLOCK;
	if (b > f->need)
		b = f->need;
	slot = &f->busy[f->nbusy++];
	slot->start = a;
	slot->end = b;
	cache_unlock(c, CACHE_MU);

	nox_err_clear(&err);
	buf = malloc((size_t)(b - a));
	got = buf ? nox_backend_read(c->be, c->sb->id, f->path, a, buf,
				     (size_t)(b - a), &err)
		  : nox_err_set(&err, ENOMEM, "out of memory");
	cache_lock(c, CACHE_MU);
	if (got > 0 && !f->closing) {
		f->writing++;
		cache_unlock(c, CACHE_MU);
		e = island_write(f->fd, buf, (size_t)got, a);
		cache_lock(c, CACHE_MU);
		f->writing--;
		if (e == 0)
			island_add_locked(f, a, a + got);
	}
	if (got < b - a || e != 0) {
		/* failed, or short: the file is not the size the listing
		 * gave, and the stream will say what it is */
		f->no_islands = true;
		nox_log(NOX_LOG_DEBUG,
			"%s: ranged read of %s at %lld: %s; waiting for the "
			"download",
			c->sb->id, f->path, (long long)a,
			got < 0	 ? nox_err_str(&err, (int)got)
			: e != 0 ? strerror(e)
				 : "short");
	}
	/* the slot leaves; the last one moves into its place */
	for (i = 0; i < f->nbusy; i++)
		if (f->busy[i].start == a && f->busy[i].end == b)
			break;
	if (i < f->nbusy)
		f->busy[i] = f->busy[--f->nbusy];
	pthread_cond_broadcast(&c->cond);
	free(buf);
}

int cache_list_fetch_open(struct cache *c, struct fs_node *n)
{
	struct cache_fetch *f;
	int r;

	r = fetch_join(c, n, true, &f);
	if (r < 0 || !f)
		return r;
	/* the first bytes (or the end): an error the server answers at
	 * once (a file gone) is the open's */
	cache_lock(c, CACHE_MU);
	r = fetch_wait_locked(c, f, 0, 1);
	fetch_put_locked(f);
	cache_unlock(c, CACHE_MU);
	return r;
}

int cache_list_fetch_range(struct cache *c, struct fs_node *n, off_t off,
			   size_t len)
{
	struct cache_fetch *f;
	int r;

	r = fetch_join(c, n, false, &f);
	if (r < 0 || !f)
		return r;
	cache_lock(c, CACHE_MU);
	if (c->ext)
		island_fetch_locked(c, f, off, off + (off_t)len);
	r = fetch_wait_locked(c, f, off, off + (off_t)len);
	fetch_put_locked(f);
	cache_unlock(c, CACHE_MU);
	return r;
}
