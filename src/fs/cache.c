/*
 * cache.c - the http cache layer (see cache.h for the layout and hooks,
 * docs/cache.md for the guarantees).
 *
 * Reads: the first listing of a sandbox is one request for the whole
 * workspace (an exec of GNU find with NUL separators; a tar download of
 * the workspace when find is missing, its output was cut, or a name is
 * not UTF-8); files appear as placeholders and a file's content is
 * downloaded once, at its first open, with one v1 download.  A listing
 * is taken again after a command ran or when older than the attribute
 * timeout (at least 1 s), and only while nothing is pending, so it never
 * undoes a local change.
 *
 * Writes: a close of a written file snapshots it into the journal;
 * metadata operations are journaled in order with the uploads.  The
 * drain takes the journal from the head: a run of uploads, creates,
 * mkdirs and symlinks (with chmod/utimens of paths in the run folded
 * in) becomes one gzip tar upload; a run of other operations becomes
 * one exec of a fixed shell script with the names as argv (or, on a
 * server with the nox.fs extension, one fs/op call each).  A rename or
 * unlink ends a run, so nothing older is ever uploaded after it.
 *
 * A snapshot with more than two parts of data (64 MiB each, holes not
 * counted) goes as one tar per part plus one exec that joins them, so
 * the server's upload limit does not bound file size.
 *
 * Limits: no byte-range downloads (a placeholder is fetched whole); a
 * listing merge racing a rename in flight can show the old name until
 * the next listing; uid/gid changes are not sent (the server's files
 * belong to the sandbox user); hard links are sent as links but a later
 * upload of one name replaces that name only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
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

#include "cache.h"
#include "journal.h"
#include "manifest.h"

#define BATCH_MAX_FILES	 5000
#define BATCH_MAX_BYTES	 (64ll * 1024 * 1024)
#define SCRIPT_MAX_OPS	 500
#define SCRIPT_MAX_ARGS	 (96 * 1024)
#define DEFAULT_DELAY_MS 100
#define RETRY_MAX_MS	 5000
#define STATE_NAME	 "state"
#define MANIFEST_SAVE_MS 2000
#define PART_SIZE	 (64ll * 1024 * 1024)
#define PART_MIN	 (256ll * 1024)

struct cache {
	struct fs_sandbox *sb;	/* immutable; outlives the cache */
	struct nox_backend *be; /* immutable */
	char *dir;		/* immutable: CACHE/<host>/<id> */
	int dir_fd;		/* immutable */
	int tree_fd;		/* immutable, O_PATH */
	bool writeback;		/* immutable */
	long delay_ms;		/* immutable */
	bool ext;		/* immutable: nox.fs fs/op usable */
	double list_ttl;	/* immutable, seconds */

	pthread_mutex_t mu;
	pthread_cond_t cond; /* fetches, listings, journal */
	/* protected by mu */
	struct manifest man;
	struct journal jr; /* its list; files: see journal.h */
	ino_t *dirty;	   /* written, not yet closed */
	size_t ndirty, capdirty;
	unsigned long jgen;	    /* bumps on every journal append */
	bool listed;		    /* a listing was merged this mount */
	bool have_manifest;	    /* a listing was ever merged */
	bool stale;		    /* a command ran since */
	unsigned long execs;	    /* commands that ended */
	unsigned long listed_execs; /* execs when the listing started */
	bool listing;		    /* a refresh is running */
	struct timespec listed_at;  /* CLOCK_MONOTONIC */
	struct timespec list_retry; /* no refresh before (failures) */
	bool man_dirty;		    /* manifest needs saving */
	bool saved_once;
	struct timespec saved_at;      /* last manifest save */
	bool gone;		       /* the server lost the sandbox */
	bool failing;		       /* the last drain failed */
	bool one_per_tar;	       /* the server refused a large tar */
	long long part_size;	       /* big files go in parts this large */
	struct timespec pending_since; /* journal became non-empty */
	struct timespec retry_at;      /* backoff after a failure */
	long backoff_ms;
	bool flush_now; /* wake the flusher at once */
	bool stop;
	uint64_t tmp_seq;

	/* the paths of operations a listing in flight may not show yet:
	 * pending when it started or journaled since (protected by mu) */
	bool collect;
	char **touched;
	size_t ntouched, captouched;

	/*
	 * Held from a change of the tree to its journal entry (op_begin ..
	 * op_end, a close's snapshot), and by whatever must see the tree
	 * and the journal agree: a listing merge, the exec barrier's
	 * snapshot of open files.  So the journal's order is the order in
	 * which the tree changed.  Order: op_mu, then mu; never drain_mu
	 * inside op_mu (a drain sends requests).
	 */
	pthread_mutex_t op_mu;

	pthread_mutex_t drain_mu; /* one drain at a time */
	int batch_fd;		  /* drain_mu: the batch tar, reused, or -1 */
	pthread_t thr;
	bool thr_started;
};

/* One lock per daemon on CACHE/<host>/lock (the process keeps it). */
static pthread_mutex_t lock_mu = PTHREAD_MUTEX_INITIALIZER;
static int lock_fd = -1;

static int drain(struct cache *c, uint64_t upto, struct nox_err *err);
static uint64_t last_seq_of(struct cache *c, ino_t ino);

/* The cache whose op_mu this thread holds in op_begin .. op_end, and
 * whether the operation wants the journal drained at op_end. */
static _Thread_local struct cache *tl_op;
static _Thread_local bool tl_drain;

static struct cache *cache_of(struct fs_sandbox *sb)
{
	return sb->cache;
}

static void mono_now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

static double ts_diff(const struct timespec *a, const struct timespec *b)
{
	return (double)(a->tv_sec - b->tv_sec) +
	       (double)(a->tv_nsec - b->tv_nsec) / 1e9;
}

static void ts_add_ms(struct timespec *ts, long ms)
{
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000l;
	if (ts->tv_nsec >= 1000000000l) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000l;
	}
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000ll + ts->tv_nsec;
}

static bool transport_err(int r)
{
	return r == -ECONNREFUSED || r == -ETIMEDOUT || r == -EIO ||
	       r == -EAGAIN || r == -EPROTO || r == -ECONNRESET ||
	       r == -EHOSTUNREACH || r == -ENETUNREACH || r == -ENOMEM ||
	       r == -ENOSPC || r == -EINTR;
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

static bool dirty_has(struct cache *c, ino_t ino)
{
	size_t i;

	for (i = 0; i < c->ndirty; i++) {
		if (c->dirty[i] == ino)
			return true;
	}
	return false;
}

static bool dirty_add(struct cache *c, ino_t ino)
{
	if (dirty_has(c, ino))
		return false;
	if (c->ndirty == c->capdirty) {
		size_t nc = c->capdirty ? c->capdirty * 2 : 16;
		ino_t *nv = realloc(c->dirty, nc * sizeof(*nv));

		if (!nv)
			return false;
		c->dirty = nv;
		c->capdirty = nc;
	}
	c->dirty[c->ndirty++] = ino;
	return true;
}

static bool dirty_del(struct cache *c, ino_t ino)
{
	size_t i;

	for (i = 0; i < c->ndirty; i++) {
		if (c->dirty[i] == ino) {
			c->dirty[i] = c->dirty[--c->ndirty];
			return true;
		}
	}
	return false;
}

/* With mu: ino has local changes the server does not have yet. */
static bool busy_locked(struct cache *c, ino_t ino)
{
	const struct jent *e;

	if (dirty_has(c, ino))
		return true;
	for (e = c->jr.head; e; e = e->next) {
		if (e->ino == ino)
			return true;
	}
	return false;
}

static bool merge_busy(ino_t ino, void *ud)
{
	return busy_locked(ud, ino);
}

/* With mu: remembers path for the listing in flight. */
static void touch_locked(struct cache *c, const char *path)
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

static void touched_clear_locked(struct cache *c)
{
	size_t i;

	for (i = 0; i < c->ntouched; i++)
		free(c->touched[i]);
	free(c->touched);
	c->touched = NULL;
	c->ntouched = c->captouched = 0;
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

static int node_path(struct fs_sandbox *sb, struct fs_node *n, char *buf,
		     size_t size)
{
	return fs_node_path(&sb->fs->table, n, buf, size);
}

static int child_path(struct fs_sandbox *sb, struct fs_node *dir,
		      const char *name, char *buf, size_t size)
{
	char dp[PATH_MAX];
	int r = node_path(sb, dir, dp, sizeof(dp)), n;

	if (r < 0)
		return r;
	n = *dp ? snprintf(buf, size, "%s/%s", dp, name)
		: snprintf(buf, size, "%s", name);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

/* A new empty directory CACHE/.../tmp/PREFIX-N; its fd, name in buf. */
static int tmp_dir(struct cache *c, const char *prefix, char *buf, size_t size)
{
	uint64_t n;
	int fd;

	pthread_mutex_lock(&c->mu);
	n = ++c->tmp_seq;
	pthread_mutex_unlock(&c->mu);
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

static void tmp_dir_remove(struct cache *c, const char *name, int fd)
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
static int tmp_file(struct cache *c)
{
	char name[64];
	uint64_t n;
	int fd;

	(void)mkdirat(c->dir_fd, "tmp", 0700);
	fd = openat(c->dir_fd, "tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	pthread_mutex_lock(&c->mu);
	n = ++c->tmp_seq;
	pthread_mutex_unlock(&c->mu);
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
static void save_manifest_locked(struct cache *c, bool force)
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
static void mark_gone(struct cache *c)
{
	bool first;

	pthread_mutex_lock(&c->mu);
	first = !c->gone;
	c->gone = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
	if (!first)
		return;
	nox_log(NOX_LOG_WARN,
		"sandbox %s no longer exists on the server; %zu unsent "
		"operations are kept (moved below %.*s/lost/ when it is "
		"released)",
		c->sb->id, c->jr.count,
		(int)(strrchr(c->dir, '/') ? strrchr(c->dir, '/') - c->dir
					   : (ptrdiff_t)strlen(c->dir)),
		c->dir);
	/* not from the flusher: that could drop the last reference and
	 * join the flusher from itself; the next lookup of the sandbox
	 * finds it gone (info: ENOENT) and detaches it */
	if (!c->thr_started || !pthread_equal(pthread_self(), c->thr))
		fs_sandbox_detach(c->sb);
}

/* r from a call about the sandbox: -ENOENT means it is gone. */
static int check_gone(struct cache *c, int r)
{
	if (r == -ENOENT) {
		mark_gone(c);
		return -ENOENT;
	}
	return r;
}

/* ---- listings ------------------------------------------------------- */

/* Downloads sandbox path src as a tar and extracts it into a tmp dir. */
static int fetch_tar(struct cache *c, const char *src, char *dname,
		     size_t dsize, int *dfd, struct nox_err *err)
{
	int tfd, fd, r;

	tfd = tmp_file(c);
	if (tfd < 0)
		return nox_err_set(err, tfd, "cache tmp file: %s",
				   strerror(-tfd));
	r = nox_backend_download(c->be, c->sb->id, src, tfd, err);
	if (r < 0) {
		close(tfd);
		return r;
	}
	fd = tmp_dir(c, "dl", dname, dsize);
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
		tmp_dir_remove(c, dname, fd);
		return r;
	}
	*dfd = fd;
	return 0;
}

static int tree_cb(const char *rel, const struct stat *st, const char *target,
		   void *ud)
{
	return listing_add_stat(ud, rel, st, target);
}

/*
 * The listing: on a server with nox.fs one GET fs/tree (no command runs);
 * else one exec of find (-ENOSYS: take a tar of the workspace instead).
 */
static int take_listing(struct cache *c, struct listing *l, struct nox_err *err)
{
	struct nox_exec_req req = {.argv = listing_find_argv(),
				   .timeout_seconds = 60};
	struct nox_exec_result res;
	int r;

	if (c->ext && nox_backend_has(c->be, NOX_OP_TREE)) {
		r = nox_backend_tree(c->be, c->sb->id, "", tree_cb, l, err);
		if (r != -ENOSYS && r != -EFBIG && r != -EPROTO &&
		    r != -EOPNOTSUPP)
			return r;
		/* too big for one answer, not there after all, or an
		 * answer we cannot use: the v1 way */
		nox_log(NOX_LOG_DEBUG, "%s: fs/tree: %s; listing by find",
			c->sb->id, nox_err_str(err, r));
		listing_cleanup(l);
		memset(l, 0, sizeof(*l));
	}
	memset(&res, 0, sizeof(res));
	r = nox_backend_exec(c->be, c->sb->id, &req, &res, err);
	if (r < 0)
		return r;
	if (res.exit_code == 0 && !res.out_truncated) {
		r = listing_parse_find(res.out ? res.out : "", res.out_len, l,
				       err);
	} else {
		nox_log(NOX_LOG_DEBUG, "%s: find gave %d%s; listing by tar",
			c->sb->id, res.exit_code,
			res.out_truncated ? " (cut)" : "");
		r = -ENOSYS;
	}
	nox_exec_result_cleanup(&res);
	return r;
}

/*
 * Takes a listing from the server and merges it.  Called with no lock;
 * c->listing set by the caller.  Local operations pending when the
 * listing was asked for, or journaled while it came, may or may not be
 * in it: their paths are left as the tree has them (merge_skip).
 */
static int refresh(struct cache *c, struct nox_err *err)
{
	struct listing l = {0};
	const struct jent *e;
	unsigned long execs;
	char dname[64];
	int r, src = -1;
	bool big;

	pthread_mutex_lock(&c->mu);
	execs = c->execs;
	touched_clear_locked(c);
	c->collect = true;
	for (e = c->jr.head; e; e = e->next) {
		touch_locked(c, e->path);
		if (e->op == J_RENAME || e->op == J_LINK)
			touch_locked(c, e->path2);
	}
	pthread_mutex_unlock(&c->mu);
	r = take_listing(c, &l, err);
	if (r == -ENOENT) {
		r = check_gone(c, r);
		goto out;
	}
	if (r == -EILSEQ || r == -ENOSYS || r == -EPROTO) {
		r = fetch_tar(c, NULL, dname, sizeof(dname), &src, err);
		if (r < 0) {
			r = check_gone(c, r);
			goto out;
		}
		r = listing_from_dir(src, &l, err);
	}
	if (r < 0)
		goto out;
	/* no change of the tree is between its syscall and its journal
	 * entry while op_mu is held: the tree and the journal agree */
	pthread_mutex_lock(&c->op_mu);
	pthread_mutex_lock(&c->mu);
	if (!c->collect) {
		/* out of memory remembering paths: keep the tree */
		pthread_mutex_unlock(&c->mu);
		pthread_mutex_unlock(&c->op_mu);
		r = nox_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (c->ntouched)
		qsort(c->touched, c->ntouched, sizeof(*c->touched), cmp_strp);
	r = manifest_merge(&c->man, c->tree_fd, &l, src, merge_busy, merge_skip,
			   c, err);
	if (r == 0) {
		c->man_dirty = true;
		c->listed = true;
		c->have_manifest = true;
		/* commands that ended while it came are not in it */
		c->listed_execs = execs;
		c->stale = false;
		mono_now(&c->listed_at);
		save_manifest_locked(c, false);
	}
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->op_mu);
out:
	pthread_mutex_lock(&c->mu);
	c->collect = false;
	touched_clear_locked(c);
	pthread_mutex_unlock(&c->mu);
	if (src >= 0)
		tmp_dir_remove(c, dname, src);
	big = l.n > 10000;
	listing_cleanup(&l);
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

/*
 * Makes sure the tree holds a listing fresh enough (before_dir): taken
 * after every command that ended before this call (the exec barrier's
 * second half: what a command made is visible once it returned), and
 * not older than list_ttl.  A listing in flight that started after
 * those commands is waited for; an older one is not enough.
 */
static int ensure_listing(struct cache *c)
{
	struct nox_err err;
	struct timespec now;
	unsigned long want;
	bool need, old;
	int r;

	pthread_mutex_lock(&c->mu);
	want = c->execs;
	for (;;) {
		if (c->gone) {
			pthread_mutex_unlock(&c->mu);
			return -ENOENT;
		}
		mono_now(&now);
		old = c->listed_execs < want || c->stale;
		need = !c->listed || old ||
		       ts_diff(&now, &c->listed_at) > c->list_ttl;
		if (!need || ts_diff(&c->list_retry, &now) > 0) {
			pthread_mutex_unlock(&c->mu);
			return 0;
		}
		if (!c->listing)
			break;
		if (c->listed && !old) {
			/* only the ttl: the old listing will do meanwhile */
			pthread_mutex_unlock(&c->mu);
			return 0;
		}
		pthread_cond_wait(&c->cond, &c->mu);
	}
	c->listing = true;
	pthread_mutex_unlock(&c->mu);

	nox_err_clear(&err);
	r = refresh(c, &err);

	pthread_mutex_lock(&c->mu);
	c->listing = false;
	if (r < 0) {
		mono_now(&c->list_retry);
		ts_add_ms(&c->list_retry, 1000);
	}
	pthread_cond_broadcast(&c->cond);
	if (r < 0 && (c->have_manifest || c->listed)) {
		/* serve what the cache has */
		nox_log(NOX_LOG_DEBUG, "%s: listing: %s (using the cache)",
			c->sb->id, nox_err_str(&err, r));
		r = 0;
	}
	pthread_mutex_unlock(&c->mu);
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

/* Downloads path into the tree inode of node n (opened through fd). */
static int download(struct cache *c, struct fs_node *n, const char *path,
		    struct stat *out, struct nox_err *err)
{
	char src[PATH_MAX + 16], dname[64], proc[64];
	const char *base = strrchr(path, '/');
	struct timespec ts[2];
	struct stat st;
	int dfd = -1, sfd = -1, tfd = -1, r;

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
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", n->fd);
	tfd = open(proc, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (tfd < 0) {
		r = nox_err_set(err, errno, "cache tree %s: %s", path,
				strerror(errno));
		goto out;
	}
	r = copy_into(sfd, tfd);
	if (r < 0) {
		nox_err_set(err, r, "cache tree %s: %s", path, strerror(-r));
		goto out;
	}
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1] = st.st_mtim;
	(void)futimens(tfd, ts);
	*out = st;
out:
	if (tfd >= 0)
		close(tfd);
	if (sfd >= 0)
		close(sfd);
	tmp_dir_remove(c, dname, dfd);
	return r;
}

static int fetch(struct cache *c, struct fs_node *n)
{
	char path[PATH_MAX];
	struct nox_err err;
	struct ment *me;
	struct stat st = {0};
	bool drained = false;
	int r;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		me = manifest_get(&c->man, n->sino);
		if (c->gone) {
			pthread_mutex_unlock(&c->mu);
			return -ENOENT;
		}
		if (!me || me->fetched) {
			pthread_mutex_unlock(&c->mu);
			return 0;
		}
		if (busy_locked(c, n->sino)) {
			uint64_t seq;

			/* a placeholder with journaled changes (chmod,
			 * truncate): send them, then fetch the result */
			if (drained || dirty_has(c, n->sino)) {
				pthread_mutex_unlock(&c->mu);
				return 0;
			}
			pthread_mutex_unlock(&c->mu);
			drained = true;
			seq = last_seq_of(c, n->sino);
			nox_err_clear(&err);
			r = drain(c, seq, &err);
			if (r < 0)
				return r;
			pthread_mutex_lock(&c->mu);
			continue;
		}
		if (!me->fetching)
			break;
		pthread_cond_wait(&c->cond, &c->mu);
	}
	me->fetching = true;
	pthread_mutex_unlock(&c->mu);

	nox_err_clear(&err);
	r = node_path(c->sb, n, path, sizeof(path));
	if (r == 0)
		r = download(c, n, path, &st, &err);
	if (r == -ENOENT && !c->gone) {
		struct nox_sandbox_info info;

		if (nox_backend_info(c->be, c->sb->id, &info, NULL) == -ENOENT)
			mark_gone(c);
	}

	pthread_mutex_lock(&c->mu);
	me = manifest_get(&c->man, n->sino);
	if (me) {
		me->fetching = false;
		if (r == 0) {
			me->fetched = true;
			me->rsize = st.st_size;
			me->rmtime = ts_ns(&st.st_mtim);
			c->man_dirty = true;
		}
	}
	if (r == -ENOENT)
		c->stale = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
	if (r < 0)
		nox_log(NOX_LOG_WARN, "%s: download of %s: %s", c->sb->id, path,
			nox_err_str(&err, r));
	return r;
}

/* ---- journal appends ------------------------------------------------ */

/* Links e (written) and wakes the flusher. */
static void append_locked(struct cache *c, struct jent *e)
{
	if (!c->jr.head)
		mono_now(&c->pending_since);
	touch_locked(c, e->path);
	if (e->op == J_RENAME || e->op == J_LINK)
		touch_locked(c, e->path2);
	journal_link(&c->jr, e);
	c->jgen++;
	pthread_cond_broadcast(&c->cond);
}

static int append(struct cache *c, struct jent *e, int data_fd,
		  struct nox_err *err)
{
	/* default mode: sent before the call returns, so written to disk
	 * only if that fails (persist_all_locked) */
	int r = c->writeback ? journal_write(&c->jr, e, data_fd, true, err)
			     : journal_write_lazy(&c->jr, e, data_fd, err);

	if (r < 0) {
		journal_entry_free(e);
		return r;
	}
	pthread_mutex_lock(&c->mu);
	append_locked(c, e);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* Journals an upload of tree file n (path), from its current content. */
static int snapshot(struct cache *c, struct fs_node *n, const char *path,
		    uint64_t *seq, struct nox_err *err)
{
	char proc[64];
	struct jent *e;
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
	e = journal_entry_new(&c->jr, J_UPLOAD, path, NULL);
	if (!e) {
		close(fd);
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	e->mode = st.st_mode & 07777;
	e->mtime_ns = ts_ns(&st.st_mtim);
	e->ino = st.st_ino;
	e->marked = true;
	*seq = e->seq;
	r = append(c, e, fd, err);
	close(fd);
	return r;
}

/* ---- draining: one tar upload per run of uploads -------------------- */

static bool tar_op(enum jop op)
{
	return op == J_UPLOAD || op == J_CREATE || op == J_MKDIR ||
	       op == J_SYMLINK;
}

/* One path of a batch in its final state (what the tar will hold). */
struct bent {
	char *path;
	unsigned mode;	  /* type | permissions */
	int64_t mtime_ns; /* -2: the time of packing */
	uint64_t seq;	  /* regular file: its journal data, 0: empty */
	const char *mem;  /* or its lazy entry's snapshot in memory */
	int64_t size;
	char *target; /* symlink */
};

#define BATCH_SLOTS 16384 /* > 2 * BATCH_MAX_FILES, a power of 2 */

struct batch {
	struct jent **v; /* the entries taken from the journal head */
	size_t n;
	struct bent *ents; /* first appearance order */
	size_t nents, capents;
	uint32_t *slot; /* BATCH_SLOTS indexes + 1 into ents (0: free) */
	long long bytes;
};

static void batch_cleanup(struct batch *b)
{
	size_t i;

	for (i = 0; i < b->nents; i++) {
		free(b->ents[i].path);
		free(b->ents[i].target);
	}
	free(b->ents);
	free(b->slot);
	free(b->v);
	memset(b, 0, sizeof(*b));
}

static uint32_t path_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The slot of path in b (free, or holding path). */
static uint32_t *batch_slot(struct batch *b, const char *path)
{
	uint32_t i = path_hash(path) & (BATCH_SLOTS - 1);

	while (b->slot[i] && strcmp(b->ents[b->slot[i] - 1].path, path) != 0)
		i = (i + 1) & (BATCH_SLOTS - 1);
	return &b->slot[i];
}

static struct bent *batch_find(struct batch *b, const char *path)
{
	uint32_t *sl;

	if (!b->slot)
		return NULL;
	sl = batch_slot(b, path);
	return *sl ? &b->ents[*sl - 1] : NULL;
}

static struct bent *batch_add(struct batch *b, const char *path)
{
	struct bent *x;
	uint32_t *sl;

	if (!b->slot) {
		b->slot = calloc(BATCH_SLOTS, sizeof(*b->slot));
		if (!b->slot)
			return NULL;
	}
	if (b->nents == b->capents) {
		size_t nc = b->capents ? b->capents * 2 : 64;
		struct bent *nv = realloc(b->ents, nc * sizeof(*nv));

		if (!nv)
			return NULL;
		b->ents = nv;
		b->capents = nc;
	}
	x = &b->ents[b->nents];
	memset(x, 0, sizeof(*x));
	x->path = strdup(path);
	if (!x->path)
		return NULL;
	sl = batch_slot(b, path);
	b->nents++;
	*sl = (uint32_t)b->nents;
	return x;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts_ns(&ts);
}

/*
 * Adds entry e to batch b (in memory: names, modes, times and which
 * journal data; nothing is copied).  1: added; 0: e does not belong in
 * this batch (ends it); <0: error (-ENOENT: its data is missing).
 */
static int stage(struct cache *c, struct batch *b, const struct jent *e)
{
	struct bent *x;
	char name[40];
	struct stat st;

	if (!tar_op(e->op)) {
		if (e->op != J_CHMOD && e->op != J_UTIMENS)
			return 0;
		/* fold only into a path this batch sends */
		x = batch_find(b, e->path);
		if (!x)
			return 0;
		if (e->op == J_CHMOD) {
			if (!S_ISLNK(x->mode))
				x->mode =
				    (x->mode & S_IFMT) | (e->mode & 07777);
		} else if (e->mtime_ns == -1) {
			x->mtime_ns = now_ns();
		} else if (e->mtime_ns != -2) {
			x->mtime_ns = e->mtime_ns;
		}
		return 1;
	}
	x = batch_find(b, e->path);
	if (!x && (b->nents >= BATCH_MAX_FILES ||
		   (b->nents > 0 && b->bytes + e->size > BATCH_MAX_BYTES)))
		return 0;
	if (x && S_ISDIR(x->mode) != (e->op == J_MKDIR))
		return 0;
	if (e->op == J_UPLOAD && e->lazy) {
		st.st_size = e->size;
	} else if (e->op == J_UPLOAD) {
		snprintf(name, sizeof(name), "%020" PRIu64 ".data", e->seq);
		if (fstatat(c->jr.dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	if (!x) {
		x = batch_add(b, e->path);
		if (!x)
			return -ENOMEM;
	}
	free(x->target);
	x->target = NULL;
	x->seq = 0;
	x->mem = NULL;
	x->size = 0;
	x->mtime_ns = e->mtime_ns >= 0 ? e->mtime_ns : -2;
	switch (e->op) {
	case J_UPLOAD:
		x->mode = S_IFREG | (e->mode & 07777);
		x->seq = e->seq;
		x->mem = e->lazy ? (e->mem ? e->mem : "") : NULL;
		x->size = st.st_size;
		b->bytes += st.st_size;
		break;
	case J_CREATE:
		x->mode = S_IFREG | (e->mode & 07777);
		break;
	case J_MKDIR:
		x->mode = S_IFDIR | (e->mode & 07777);
		break;
	default: /* J_SYMLINK */
		x->mode = S_IFLNK | 0777;
		x->target = strdup(e->path2 ? e->path2 : "");
		if (!x->target)
			return -ENOMEM;
		break;
	}
	return 1;
}

/* Uploads the tar packed into tfd (if r, the packing's result, is 0) to
 * the workspace root; closes tfd unless it is the reused batch file. */
static int send_tar(struct cache *c, int tfd, int r, struct nox_err *err)
{
	if (r == 0 && lseek(tfd, 0, SEEK_SET) < 0)
		r = nox_err_set(err, errno, "seek: %s", strerror(errno));
	if (r == 0)
		r = nox_backend_upload(c->be, c->sb->id, NULL, tfd, err);
	if (tfd != c->batch_fd)
		close(tfd);
	else if (ftruncate(tfd, 0) < 0) /* no space held between batches */
		nox_log(NOX_LOG_DEBUG, "%s: emptying the batch file: %s",
			c->sb->id, strerror(errno));
	return r;
}

/* CACHE/<host>/<id>/tmp/batch.tar, opened; or -errno. */
static int batch_open(struct cache *c)
{
	int fd;

	(void)mkdirat(c->dir_fd, "tmp", 0700);
	fd = openat(c->dir_fd, "tmp/batch.tar",
		    O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

/*
 * With drain_mu: the batch tar file, emptied.  One file for the cache's
 * life rather than one per upload (each new inode costs ext4 a scan of
 * the recently deleted ones).
 */
static int batch_file(struct cache *c)
{
	if (c->batch_fd >= 0 && (ftruncate(c->batch_fd, 0) < 0 ||
				 lseek(c->batch_fd, 0, SEEK_SET) < 0)) {
		close(c->batch_fd);
		c->batch_fd = -1;
	}
	if (c->batch_fd < 0)
		c->batch_fd = batch_open(c);
	return c->batch_fd;
}

/* Uploads batch b as one tar (contents straight from the journal). */
static int upload_batch(struct cache *c, struct batch *b, struct nox_err *err)
{
	struct nox_tar_entry *v;
	char(*names)[40];
	int64_t packed = now_ns();
	size_t i;
	int tfd, r;

	v = calloc(b->nents ? b->nents : 1, sizeof(*v));
	names = calloc(b->nents ? b->nents : 1, sizeof(*names));
	if (!v || !names) {
		free(v);
		free(names);
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	for (i = 0; i < b->nents; i++) {
		struct bent *x = &b->ents[i];

		if (x->mtime_ns == -2)
			x->mtime_ns = packed;
		v[i].name = x->path;
		v[i].mode = x->mode;
		v[i].mtime_ns = x->mtime_ns;
		v[i].fd = -1;
		v[i].dirfd = c->jr.dirfd;
		v[i].size = x->size;
		v[i].target = x->target;
		if (x->mem) {
			v[i].data = x->mem;
		} else if (x->seq) {
			snprintf(names[i], sizeof(names[i]),
				 "%020" PRIu64 ".data", x->seq);
			v[i].file = names[i];
		} else {
			/* an empty file: any empty content will do */
			v[i].file = "/dev/null";
			v[i].dirfd = AT_FDCWD;
		}
	}
	tfd = batch_file(c);
	if (tfd < 0) {
		r = nox_err_set(err, tfd, "cache tmp file: %s", strerror(-tfd));
	} else {
		r = nox_tar_pack_entries(tfd, v, b->nents, err);
		r = send_tar(c, tfd, r, err);
	}
	free(v);
	free(names);
	return r;
}

/* ---- draining: metadata operations ---------------------------------- */

/*
 * The fixed interpreter of metadata operations: the operations and their
 * names come as argv, never as shell text.  Each step tolerates having
 * been done already (a replay after a crash).  Prints the numbers of the
 * steps that failed.
 */
static const char ops_script[] =
    "n=0; bad=\n"
    "while [ $# -gt 0 ]; do\n"
    "  op=$1; shift; r=0\n"
    "  case $op in\n"
    "  chmod) chmod \"$1\" -- \"$2\" || r=1; shift 2 ;;\n"
    "  atime) touch -h -c -a -d \"@$1\" -- \"$2\" || r=1; shift 2 ;;\n"
    "  mtime) touch -h -c -m -d \"@$1\" -- \"$2\" || r=1; shift 2 ;;\n"
    "  anow) touch -h -c -a -- \"$1\" || r=1; shift ;;\n"
    "  mnow) touch -h -c -m -- \"$1\" || r=1; shift ;;\n"
    "  unlink) rm -f -- \"$1\" || r=1; shift ;;\n"
    "  rmdir) if [ -e \"$1\" ] || [ -L \"$1\" ]; then rmdir -- \"$1\" ||"
    " r=1; fi; shift ;;\n"
    "  rename) if [ ! -e \"$1\" ] && [ ! -L \"$1\" ] && { [ -e \"$2\" ] ||"
    " [ -L \"$2\" ]; }; then :; else mv -f -T -- \"$1\" \"$2\" || r=1;"
    " fi; shift 2 ;;\n"
    "  exchange) t=${1%/*}; [ \"$t\" = \"$1\" ] && t=.noxfs-x$$ ||"
    " t=$t/.noxfs-x$$; mv -T -- \"$1\" \"$t\" && mv -T --"
    " \"$2\" \"$1\" && mv -T -- \"$t\" \"$2\" || r=1; shift 2 ;;\n"
    "  link) if [ ! -e \"$2\" ]; then ln -T -- \"$1\" \"$2\" || r=1; fi;"
    " shift 2 ;;\n"
    "  truncate) truncate -s \"$1\" -- \"$2\" || r=1; shift 2 ;;\n"
    "  *) echo \"noxfs: unknown step $op\" >&2; exit 2 ;;\n"
    "  esac\n"
    "  [ $r = 0 ] || bad=\"$bad $n\"\n"
    "  n=$((n+1))\n"
    "done\n"
    "[ -z \"$bad\" ] || { echo \"failed:$bad\"; exit 1; }\n";

struct argvb {
	char **v;
	size_t n, cap;
	size_t bytes;
};

static int argv_push(struct argvb *a, const char *s, const char *prefix)
{
	size_t pl = prefix ? strlen(prefix) : 0, sl = strlen(s);
	char *d;

	if (a->n + 2 > a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 64;
		char **nv = realloc(a->v, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		a->v = nv;
		a->cap = nc;
	}
	d = malloc(pl + sl + 1);
	if (!d)
		return -ENOMEM;
	if (pl)
		memcpy(d, prefix, pl);
	memcpy(d + pl, s, sl + 1);
	a->v[a->n++] = d;
	a->v[a->n] = NULL;
	a->bytes += pl + sl + 1;
	return 0;
}

static void argv_free(struct argvb *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

static void fmt_time(char *buf, size_t size, int64_t ns)
{
	long long s = ns / 1000000000ll;
	long f = (long)(ns % 1000000000ll);

	if (f < 0) {
		s--;
		f += 1000000000l;
	}
	snprintf(buf, size, "%lld.%09ld", s, f);
}

/* Adds e's steps to the script argv; the step count in *steps. */
static int script_add(struct argvb *a, const struct jent *e, unsigned *steps)
{
	char num[64];
	int r = 0;

#define P(s) (r = r ? r : argv_push(a, (s), NULL))
	/* workspace paths as they are: relative to the command's working
	 * directory /workspace, after "--" in every step, so a name that
	 * starts with '-' is no option and a 4,095-byte path stays one */
#define W(s) (r = r ? r : argv_push(a, (s), NULL))
	switch (e->op) {
	case J_CHMOD:
		snprintf(num, sizeof(num), "%04o", (unsigned)e->mode);
		P("chmod");
		P(num);
		W(e->path);
		(*steps)++;
		break;
	case J_UTIMENS:
		if (e->atime_ns == -1) {
			P("anow");
			W(e->path);
			(*steps)++;
		} else if (e->atime_ns != -2) {
			fmt_time(num, sizeof(num), e->atime_ns);
			P("atime");
			P(num);
			W(e->path);
			(*steps)++;
		}
		if (e->mtime_ns == -1) {
			P("mnow");
			W(e->path);
			(*steps)++;
		} else if (e->mtime_ns != -2) {
			fmt_time(num, sizeof(num), e->mtime_ns);
			P("mtime");
			P(num);
			W(e->path);
			(*steps)++;
		}
		break;
	case J_UNLINK:
		P("unlink");
		W(e->path);
		(*steps)++;
		break;
	case J_RMDIR:
		P("rmdir");
		W(e->path);
		(*steps)++;
		break;
	case J_RENAME:
		P((e->num & RENAME_EXCHANGE) ? "exchange" : "rename");
		W(e->path);
		W(e->path2);
		(*steps)++;
		break;
	case J_LINK:
		P("link");
		W(e->path);
		W(e->path2);
		(*steps)++;
		break;
	case J_TRUNCATE:
		snprintf(num, sizeof(num), "%lld", e->num);
		P("truncate");
		P(num);
		W(e->path);
		(*steps)++;
		break;
	default:
		break;
	}
#undef P
#undef W
	return r;
}

static int run_script(struct cache *c, struct jent **v, size_t n,
		      struct nox_err *err)
{
	struct nox_exec_req req = {.timeout_seconds = 120};
	struct nox_exec_result res;
	struct argvb a = {0};
	unsigned steps = 0;
	size_t i;
	int r;

	r = argv_push(&a, "sh", NULL);
	if (r == 0)
		r = argv_push(&a, "-c", NULL);
	if (r == 0)
		r = argv_push(&a, ops_script, NULL);
	if (r == 0)
		r = argv_push(&a, "noxfs-ops", NULL);
	for (i = 0; r == 0 && i < n; i++)
		r = script_add(&a, v[i], &steps);
	if (r < 0) {
		argv_free(&a);
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	if (steps == 0) {
		argv_free(&a);
		return 0;
	}
	req.argv = (const char *const *)a.v;
	memset(&res, 0, sizeof(res));
	r = nox_backend_exec(c->be, c->sb->id, &req, &res, err);
	argv_free(&a);
	if (r < 0)
		return r;
	if (res.exit_code != 0)
		nox_log(NOX_LOG_WARN,
			"%s: %u metadata operations: exit %d: %.*s%.200s",
			c->sb->id, steps, res.exit_code, (int)res.out_len,
			res.out ? res.out : "", res.err ? res.err : "");
	nox_exec_result_cleanup(&res);
	return 0;
}

/* nox.fs: one call per operation; errors that mean "already done" pass. */
static int run_ext(struct cache *c, const struct jent *e, struct nox_err *err)
{
	struct timespec ts[2];
	int64_t v[2] = {e->atime_ns, e->mtime_ns};
	int r = 0, i;

	switch (e->op) {
	case J_CHMOD:
		r = nox_backend_chmod(c->be, c->sb->id, e->path, e->mode, err);
		break;
	case J_UTIMENS:
		for (i = 0; i < 2; i++) {
			if (v[i] == -2) {
				ts[i].tv_sec = 0;
				ts[i].tv_nsec = UTIME_OMIT;
			} else if (v[i] == -1) {
				ts[i].tv_sec = 0;
				ts[i].tv_nsec = UTIME_NOW;
			} else {
				ts[i].tv_sec = (time_t)(v[i] / 1000000000ll);
				ts[i].tv_nsec = (long)(v[i] % 1000000000ll);
			}
		}
		r = nox_backend_utimens(c->be, c->sb->id, e->path, ts, err);
		break;
	case J_UNLINK:
		r = nox_backend_unlink(c->be, c->sb->id, e->path, err);
		if (r == -ENOENT)
			r = 0;
		break;
	case J_RMDIR:
		r = nox_backend_rmdir(c->be, c->sb->id, e->path, err);
		if (r == -ENOENT)
			r = 0;
		break;
	case J_RENAME:
		r = nox_backend_rename(c->be, c->sb->id, e->path, e->path2,
				       (unsigned)e->num, err);
		if (r == -ENOENT) {
			struct stat st;

			if (nox_backend_stat(c->be, c->sb->id, e->path2, &st,
					     NULL) == 0)
				r = 0;
		}
		break;
	case J_LINK:
		r = nox_backend_link(c->be, c->sb->id, e->path, e->path2, err);
		if (r == -EEXIST)
			r = 0;
		break;
	case J_TRUNCATE:
		r = nox_backend_truncate(c->be, c->sb->id, e->path,
					 (off_t)e->num, err);
		break;
	default:
		break;
	}
	return r;
}

/* ---- big files: uploaded in parts, joined by one exec ---------------- */

static const char join_script[] =
    "d=$1; t=$2; m=$3; mt=$4; n=$5; i=0\n"
    ": > \"$d/all\" || exit 1\n"
    "while [ $i -lt $n ]; do\n"
    "  cat \"$d/p$i\" >> \"$d/all\" || exit 1\n"
    "  rm -f \"$d/p$i\"; i=$((i+1))\n"
    "done\n"
    "chmod \"$m\" \"$d/all\" && touch -m -d \"@$mt\" \"$d/all\" &&\n"
    "mkdir -p -- \"$(dirname -- \"$t\")\" &&\n"
    "mv -f -T -- \"$d/all\" \"$t\" && rm -rf -- \"$d\"\n";

/* An upload needs parts when its snapshot holds more than two parts. */
static bool needs_parts(struct cache *c, struct jent *e)
{
	struct stat st;
	int fd;
	bool big;

	if (e->op != J_UPLOAD)
		return false;
	if (e->lazy && e->size <= 2 * c->part_size)
		return false; /* in memory, small */
	fd = journal_data_open(&c->jr, e);
	if (fd < 0)
		return false;
	big = fstat(fd, &st) == 0 &&
	      (long long)st.st_blocks * 512 > 2 * c->part_size;
	close(fd);
	return big;
}

/* Copies len bytes at off of in_fd to the start of out_fd. */
static int copy_slice(int in_fd, off_t off, off_t len, int out_fd)
{
	char buf[65536];
	off_t done = 0;
	ssize_t n;

	while (done < len) {
		size_t want = (size_t)(len - done) < sizeof(buf)
				  ? (size_t)(len - done)
				  : sizeof(buf);

		n = pread(in_fd, buf, want, off + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		if (write(out_fd, buf, (size_t)n) != n)
			return errno ? -errno : -EIO;
		done += n;
	}
	return 0;
}

/*
 * Sends upload e as parts of c->part_size, each its own tar into
 * /workspace/.noxfs-upload-SEQ/, then one exec joins them into place.
 */
static int upload_parts(struct cache *c, struct jent *e, struct nox_err *err)
{
	char dir[64], sname[64], part[96], num[4][32], target[PATH_MAX + 2];
	struct nox_exec_req req = {.timeout_seconds = 600};
	struct nox_exec_result res;
	const char *argv[10];
	struct stat st;
	long long k = 0, off;
	int dfd, sfd = -1, r = 0;

	dfd = journal_data_open(&c->jr, e);
	if (dfd < 0 || fstat(dfd, &st) < 0) {
		r = nox_err_set(err, ENOENT, "snapshot of %s is missing",
				e->path);
		goto out;
	}
	snprintf(dir, sizeof(dir), ".noxfs-upload-%" PRIu64, e->seq);
	sfd = tmp_dir(c, "parts", sname, sizeof(sname));
	if (sfd < 0) {
		r = nox_err_set(err, EIO, "cache tmp dir: %s", strerror(-sfd));
		goto out;
	}
	if (mkdirat(sfd, dir, 0700) < 0) {
		r = nox_err_set(err, EIO, "cache tmp dir: %s", strerror(errno));
		goto out;
	}
	for (off = 0; r == 0 && (off < st.st_size || k == 0);
	     off += c->part_size, k++) {
		off_t len = st.st_size - off < c->part_size ? st.st_size - off
							    : c->part_size;
		const char *paths[1] = {part};
		int pfd, tfd;

		snprintf(part, sizeof(part), "%s/p%lld", dir, k);
		pfd = openat(sfd, part,
			     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (pfd < 0) {
			r = nox_err_set(err, EIO, "part: %s", strerror(errno));
			break;
		}
		r = copy_slice(dfd, off, len, pfd);
		close(pfd);
		if (r < 0) {
			r = nox_err_set(err, EIO, "part: %s", strerror(-r));
			break;
		}
		tfd = tmp_file(c);
		if (tfd < 0) {
			r = nox_err_set(err, EIO, "cache tmp file: %s",
					strerror(-tfd));
			break;
		}
		r = nox_tar_pack_list(tfd, sfd, paths, 1, err);
		(void)unlinkat(sfd, part, 0);
		r = send_tar(c, tfd, r, err);
	}
	if (r < 0)
		goto out;
	snprintf(target, sizeof(target), "./%s", e->path);
	snprintf(num[0], sizeof(num[0]), "%04o", (unsigned)e->mode);
	fmt_time(num[1], sizeof(num[1]), e->mtime_ns);
	snprintf(num[2], sizeof(num[2]), "%lld", k);
	snprintf(num[3], sizeof(num[3]), "./%s", dir);
	argv[0] = "sh";
	argv[1] = "-c";
	argv[2] = join_script;
	argv[3] = "noxfs-join";
	argv[4] = num[3];
	argv[5] = target;
	argv[6] = num[0];
	argv[7] = num[1];
	argv[8] = num[2];
	argv[9] = NULL;
	req.argv = argv;
	memset(&res, 0, sizeof(res));
	r = nox_backend_exec(c->be, c->sb->id, &req, &res, err);
	if (r == 0 && res.exit_code != 0)
		r = nox_err_set(err, EIO,
				"joining %s on the server: exit %d: "
				"%.200s",
				e->path, res.exit_code, res.err ? res.err : "");
	nox_exec_result_cleanup(&res);
	if (r == 0)
		nox_log(NOX_LOG_DEBUG, "%s: uploaded %s in %lld parts",
			c->sb->id, e->path, k);
out:
	if (sfd >= 0)
		tmp_dir_remove(c, sname, sfd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

/* ---- the drain ------------------------------------------------------ */

/*
 * With mu: writes every lazy entry to disk, fsynced (the drain failed,
 * or the journal outlives the daemon): from now on they survive a crash
 * and a reboot like write-back entries.
 */
static void persist_all_locked(struct cache *c)
{
	struct jent *e;

	for (e = c->jr.head; e; e = e->next) {
		int r = journal_persist(&c->jr, e, true);

		if (r < 0) {
			nox_log(NOX_LOG_WARN,
				"%s: writing the journal entry of %s: %s",
				c->sb->id, e->path, strerror(-r));
			break;
		}
	}
}

/* After a confirmed entry: the manifest knows the server has it. */
static void confirmed_locked(struct cache *c, const struct jent *e)
{
	if (e->ino == 0)
		return;
	if (e->op == J_UPLOAD)
		manifest_set(&c->man, e->ino, e->size, e->mtime_ns, true);
	else if (e->op == J_CREATE)
		manifest_set(&c->man, e->ino, 0, e->mtime_ns, true);
	else if (e->op == J_MKDIR || e->op == J_SYMLINK)
		manifest_set(&c->man, e->ino, 0, 0, true);
	else if (e->op == J_UTIMENS && e->mtime_ns >= 0) {
		struct ment *me = manifest_get(&c->man, e->ino);

		if (me)
			me->rmtime = e->mtime_ns;
	}
	c->man_dirty = true;
}

/*
 * One step of the drain: takes the longest run at the head that one
 * request can carry and sends it.  1: something was done; 0: the
 * journal is empty (or its head is past upto); <0: error (kept).
 */
static int drain_step(struct cache *c, uint64_t upto, struct nox_err *err)
{
	struct batch b = {0};
	struct jent *e;
	size_t i, cap = 0;
	int r = 0;
	bool tar, refused = false;

	pthread_mutex_lock(&c->mu);
	e = c->jr.head;
	if (!e || e->seq > upto || c->gone) {
		r = c->gone && e ? -ENOENT : 0;
		pthread_mutex_unlock(&c->mu);
		return r;
	}
	tar = tar_op(e->op);
	/* the entries are only ever removed by the drain (this thread):
	 * pointers stay valid without the lock */
	for (; e; e = e->next) {
		if (b.n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct jent **nv = realloc(b.v, nc * sizeof(*nv));

			if (!nv)
				break;
			b.v = nv;
			cap = nc;
		}
		b.v[b.n++] = e;
		if (b.n >= BATCH_MAX_FILES * 2 ||
		    (!tar && (b.n >= SCRIPT_MAX_OPS || c->ext)))
			break;
	}
	pthread_mutex_unlock(&c->mu);
	if (b.n == 0) {
		batch_cleanup(&b);
		return nox_err_set(err, ENOMEM, "out of memory");
	}

	if (tar && needs_parts(c, b.v[0])) {
		b.n = 1;
		r = upload_parts(c, b.v[0], err);
		if (r == -EFBIG && c->part_size > PART_MIN) {
			c->part_size /= 4;
			batch_cleanup(&b);
			return 1; /* again at once, smaller */
		}
	} else if (tar) {
		size_t taken = 0;

		for (i = 0; i < b.n; i++) {
			if (taken > 0 && c->one_per_tar && tar_op(b.v[i]->op))
				break;
			r = stage(c, &b, b.v[i]);
			if (r <= 0)
				break;
			taken++;
		}
		if (r < 0) {
			nox_log(NOX_LOG_WARN, "%s: staging %s: %s", c->sb->id,
				b.v[i]->path, strerror(-r));
			if (taken == 0 && r == -ENOENT) {
				/* its snapshot is missing: nothing to send */
				b.n = 1;
				r = 0;
				goto done;
			}
			if (taken == 0) {
				/* local trouble (disk full?): keep, retry */
				r = nox_err_set(err, -r, "staging %s: %s",
						b.v[i]->path, strerror(-r));
				b.n = 0;
				goto done;
			}
		}
		b.n = taken;
		if (taken == 0) {
			/* cannot happen: the head always fits a batch */
			r = nox_err_set(err, EIO, "cannot batch %s",
					b.v[0]->path);
			goto done;
		}
		r = upload_batch(c, &b, err);
		/* what the server got, folded changes included */
		for (i = 0; r == 0 && i < b.n; i++) {
			struct jent *x = b.v[i];
			const struct bent *f;

			if (x->op != J_UPLOAD && x->op != J_CREATE)
				continue;
			f = batch_find(&b, x->path);
			if (f && S_ISREG(f->mode)) {
				x->size = f->size;
				x->mtime_ns = f->mtime_ns;
			}
		}
		nox_log(NOX_LOG_DEBUG, "%s: uploaded %zu files in one tar: %d",
			c->sb->id, b.nents, r);
	} else {
		size_t n = 0;

		for (i = 0; i < b.n && !tar_op(b.v[i]->op); i++)
			n++;
		b.n = n;
		if (c->ext) {
			r = run_ext(c, b.v[0], err);
			if (r < 0 && !transport_err(r) && r != -ENOENT &&
			    r != -EACCES) {
				nox_log(NOX_LOG_WARN, "%s: %s %s: %s",
					c->sb->id, journal_op_name(b.v[0]->op),
					b.v[0]->path, nox_err_str(err, r));
				r = 0;
			}
			if (r == -ENOENT) {
				struct nox_sandbox_info info;

				if (nox_backend_info(c->be, c->sb->id, &info,
						     NULL) != -ENOENT)
					r = 0;
			}
		} else {
			r = run_script(c, b.v, b.n, err);
		}
	}
done:
	if (r == -EFBIG && tar && b.n == 1 && b.v[0]->op == J_UPLOAD &&
	    !needs_parts(c, b.v[0]) && c->part_size > PART_MIN) {
		/* one file over the server's body limit: send it in parts */
		struct stat st;
		int dfd = journal_data_open(&c->jr, b.v[0]);

		if (dfd >= 0 && fstat(dfd, &st) == 0)
			c->part_size = (long long)st.st_blocks * 512 / 4 + 1;
		if (c->part_size < PART_MIN)
			c->part_size = PART_MIN;
		if (dfd >= 0)
			close(dfd);
		batch_cleanup(&b);
		return 1;
	}
	if (r == -EFBIG && tar && b.n > 1 && !c->one_per_tar) {
		/* over the server's body limit: one file per tar from now */
		nox_log(NOX_LOG_INFO,
			"%s: the server takes smaller uploads; "
			"sending one file per request",
			c->sb->id);
		c->one_per_tar = true;
		batch_cleanup(&b);
		return 1; /* again at once, smaller */
	} else if (r == -EINVAL || r == -EFBIG) {
		/* the server refuses these for good: set them aside */
		nox_log(NOX_LOG_ERR,
			"%s: the server refused %zu operations (%s); their "
			"data stays in %s/journal",
			c->sb->id, b.n, nox_err_str(err, r), c->dir);
		for (i = 0; i < b.n; i++) {
			char from[40], to[48];

			/* a lazy one is written first, so its data is kept */
			(void)journal_persist(&c->jr, b.v[i], false);
			snprintf(from, sizeof(from), "%020" PRIu64 ".data",
				 b.v[i]->seq);
			snprintf(to, sizeof(to), "failed-%020" PRIu64 ".data",
				 b.v[i]->seq);
			(void)renameat(c->jr.dirfd, from, c->jr.dirfd, to);
		}
		refused = true;
		r = 0;
	}
	if (r == 0) {
		pthread_mutex_lock(&c->mu);
		for (i = 0; i < b.n; i++) {
			struct jent *x = b.v[i];

			if (!refused)
				confirmed_locked(c, x);
			if (x->marked && !dirty_has(c, x->ino))
				journal_clear_dirty(&c->jr, x->ino);
			journal_pop(&c->jr, x);
		}
		if (!c->jr.head)
			save_manifest_locked(c, false);
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->mu);
		r = 1;
	} else if (r == -ENOENT) {
		mark_gone(c);
	} else {
		pthread_mutex_lock(&c->mu);
		persist_all_locked(c);
		pthread_mutex_unlock(&c->mu);
	}
	batch_cleanup(&b);
	return r;
}

/* Drains the journal up to entry upto (UINT64_MAX: all). */
static int drain(struct cache *c, uint64_t upto, struct nox_err *err)
{
	int r;

	pthread_mutex_lock(&c->drain_mu);
	do {
		r = drain_step(c, upto, err);
	} while (r > 0);
	pthread_mutex_unlock(&c->drain_mu);
	pthread_mutex_lock(&c->mu);
	if (r < 0 && r != -ENOENT && !c->failing) {
		c->failing = true;
		if (r == -ENOSPC || r == -EDQUOT)
			nox_log(NOX_LOG_WARN,
				"%s: the cache directory %s is full (%s); %zu "
				"operations wait in the journal and will be "
				"retried",
				c->sb->id, c->dir, nox_err_str(err, r),
				c->jr.count);
		else
			nox_log(NOX_LOG_WARN,
				"%s: cannot reach the server (%s); %zu "
				"operations wait in the journal and will be "
				"retried",
				c->sb->id, nox_err_str(err, r), c->jr.count);
	} else if (r == 0 && c->failing && !c->jr.head) {
		c->failing = false;
		nox_log(NOX_LOG_INFO, "%s: journal drained", c->sb->id);
	}
	if (r < 0) {
		c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 250;
		if (c->backoff_ms > RETRY_MAX_MS)
			c->backoff_ms = RETRY_MAX_MS;
		mono_now(&c->retry_at);
		ts_add_ms(&c->retry_at, c->backoff_ms);
	} else {
		c->backoff_ms = 0;
	}
	pthread_mutex_unlock(&c->mu);
	return r;
}

/* The flusher: drains after the delay, retries with backoff. */
static void *flusher(void *arg)
{
	struct cache *c = arg;
	struct nox_err err;
	uint64_t upto;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		struct timespec now, due;

		if (!c->jr.head || c->gone) {
			pthread_cond_wait(&c->cond, &c->mu);
			continue;
		}
		due = c->pending_since;
		ts_add_ms(&due, c->writeback ? c->delay_ms : DEFAULT_DELAY_MS);
		if (c->backoff_ms && ts_diff(&c->retry_at, &due) > 0)
			due = c->retry_at;
		mono_now(&now);
		if (!c->flush_now && ts_diff(&due, &now) > 0) {
			struct timespec abs;
			double d = ts_diff(&due, &now);

			clock_gettime(CLOCK_REALTIME, &abs);
			ts_add_ms(&abs, (long)(d * 1000) + 1);
			pthread_cond_timedwait(&c->cond, &c->mu, &abs);
			continue;
		}
		c->flush_now = false;
		/* what is pending now; later entries wait their own delay,
		 * so a long burst goes out in few large batches */
		upto = c->jr.tail ? c->jr.tail->seq : 0;
		pthread_mutex_unlock(&c->mu);
		nox_err_clear(&err);
		(void)drain(c, upto, &err);
		pthread_mutex_lock(&c->mu);
		if (c->jr.head && !c->backoff_ms)
			mono_now(&c->pending_since);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* ---- finding tree files by inode (replay, flush) -------------------- */

struct ino_path {
	ino_t ino;
	char *path;
};

static void find_inos(int dfd, char *path, size_t plen, struct ino_path *v,
		      size_t n, unsigned depth)
{
	struct dirent *d;
	DIR *dp;
	int fd;
	size_t i;

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

		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		if (plen + nl + 2 > PATH_MAX)
			continue;
		if (plen)
			path[plen] = '/';
		memcpy(path + plen + (plen ? 1 : 0), d->d_name, nl + 1);
		if (d->d_type == DT_DIR) {
			int cfd = openat(dirfd(dp), d->d_name,
					 O_PATH | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);

			if (cfd >= 0) {
				find_inos(cfd, path, plen + nl + (plen ? 1 : 0),
					  v, n, depth + 1);
				close(cfd);
			}
		} else {
			for (i = 0; i < n; i++) {
				if (v[i].ino == d->d_ino && !v[i].path)
					v[i].path = strdup(path);
			}
		}
		path[plen] = '\0';
	}
	closedir(dp);
}

/* Journals uploads of the tree files with inodes v[0..n) (current). */
static int upload_inodes(struct cache *c, struct ino_path *v, size_t n,
			 struct nox_err *err)
{
	char path[PATH_MAX];
	size_t i;
	int r = 0;

	path[0] = '\0';
	find_inos(c->tree_fd, path, 0, v, n, 0);
	for (i = 0; i < n; i++) {
		const char *base;
		struct jent *e;
		struct stat st;
		int pfd, fd;

		if (!v[i].path)
			continue;
		if (tree_parent(c->tree_fd, v[i].path, &pfd, &base) < 0)
			continue;
		fd = openat(pfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		close(pfd);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			continue;
		}
		e = journal_entry_new(&c->jr, J_UPLOAD, v[i].path, NULL);
		if (!e) {
			close(fd);
			return nox_err_set(err, ENOMEM, "out of memory");
		}
		e->mode = st.st_mode & 07777;
		e->mtime_ns = ts_ns(&st.st_mtim);
		e->ino = st.st_ino;
		e->marked = true;
		r = append(c, e, fd, err);
		close(fd);
		if (r < 0)
			break;
	}
	return r;
}

struct dirty_list {
	struct ino_path *v;
	size_t n, cap;
};

static void dirty_cb(ino_t ino, void *ud)
{
	struct dirty_list *l = ud;

	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		struct ino_path *nv = realloc(l->v, nc * sizeof(*nv));

		if (!nv)
			return;
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n].ino = ino;
	l->v[l->n].path = NULL;
	l->n++;
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
 * exec barrier).  They stay marked: their close journals them again, so
 * writes after this snapshot are not lost.  Under op_mu, so each path
 * found is the file's name in the journal's order.
 */
static int snapshot_dirty(struct cache *c, struct nox_err *err)
{
	struct dirty_list l = {0};
	size_t i;
	int r;

	pthread_mutex_lock(&c->op_mu);
	pthread_mutex_lock(&c->mu);
	for (i = 0; i < c->ndirty; i++)
		dirty_cb(c->dirty[i], &l);
	pthread_mutex_unlock(&c->mu);
	r = l.n ? upload_inodes(c, l.v, l.n, err) : 0;
	pthread_mutex_unlock(&c->op_mu);
	dirty_list_free(&l);
	return r;
}

/* ---- hooks ---------------------------------------------------------- */

static void cache_free(struct cache *c)
{
	if (!c)
		return;
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
	free(c->dirty);
	free(c->dir);
	free(c);
}

static int http_attach(struct fs_sandbox *sb, struct nox_err *err)
{
	struct fs *fs = sb->fs;
	struct dirty_list dl = {0};
	char path[PATH_MAX];
	struct cache *c;
	char *base;
	int r, jfd, fd;

	base = base_dir(fs);
	if (!base)
		return nox_err_set(err, ENAMETOOLONG, "cache dir too long");
	r = mkdir_p(base, 0700);
	if (r < 0) {
		nox_err_set(err, r, "cache dir %s: %s", base, strerror(-r));
		free(base);
		return r;
	}
	{
		struct stat st;

		/* it holds the sandboxes' files: only its owner gets in,
		 * also when something else made it first */
		if (stat(base, &st) == 0 && st.st_uid == geteuid() &&
		    (st.st_mode & 077) && chmod(base, 0700) == 0)
			nox_log(NOX_LOG_INFO, "cache dir %s: mode set to 0700",
				base);
	}
	r = take_lock(base, err);
	if (r < 0) {
		free(base);
		return r;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		free(base);
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	c->sb = sb;
	c->be = fs->be;
	c->dir_fd = c->tree_fd = c->batch_fd = -1;
	c->jr.dirfd = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->op_mu, NULL);
	pthread_mutex_init(&c->drain_mu, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->part_size = PART_SIZE;
	c->writeback = fs->opts.writeback_delay > 0;
	c->delay_ms = fs->opts.writeback_delay;
	c->list_ttl = fs->opts.attr_timeout > 1.0 ? fs->opts.attr_timeout : 1.0;
	c->ext = nox_backend_has(fs->be, NOX_OP_RENAME);
	if (snprintf(path, sizeof(path), "%s/%s", base, sb->id) >=
	    (int)sizeof(path)) {
		free(base);
		cache_free(c);
		return nox_err_set(err, ENAMETOOLONG, "cache dir too long");
	}
	free(base);
	c->dir = strdup(path);
	if (manifest_init(&c->man) < 0 || !c->dir) {
		cache_free(c);
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		r = nox_err_set(err, errno, "cache dir %s: %s", path,
				strerror(errno));
		cache_free(c);
		return r;
	}
	c->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (c->dir_fd < 0) {
		r = nox_err_set(err, errno, "cache dir %s: %s", path,
				strerror(errno));
		cache_free(c);
		return r;
	}
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
		r = nox_err_set(err, errno, "cache dir %s: %s", path,
				strerror(errno));
		if (jfd >= 0)
			close(jfd);
		cache_free(c);
		return r;
	}
	r = journal_open(&c->jr, jfd, err);
	if (r < 0) {
		cache_free(c);
		return r;
	}
	/* now, so the descriptor is there from the start (or retried) */
	c->batch_fd = batch_open(c);
	if (c->batch_fd < 0)
		c->batch_fd = -1;
	r = manifest_load(&c->man, c->dir_fd, STATE_NAME);
	if (r < 0)
		nox_log(NOX_LOG_WARN, "%s: cache manifest: %s", sb->id,
			strerror(-r));
	c->have_manifest = c->man.count > 0;
	sb->cache = c;

	/* files written but never closed before a crash: upload them too */
	(void)journal_dirty_each(&c->jr, dirty_cb, &dl);
	if (dl.n) {
		size_t i;

		nox_log(NOX_LOG_INFO,
			"%s: %zu files were open for writing "
			"when noxfs stopped; uploading them",
			sb->id, dl.n);
		/* their markers go once the server confirmed them; a
		 * marked file no longer in the tree has nothing to send */
		(void)upload_inodes(c, dl.v, dl.n, err);
		for (i = 0; i < dl.n; i++) {
			if (!dl.v[i].path)
				journal_clear_dirty(&c->jr, dl.v[i].ino);
		}
	}
	dirty_list_free(&dl);
	if (c->jr.head) {
		struct nox_err derr;

		nox_log(NOX_LOG_INFO, "%s: replaying %zu journaled operations",
			sb->id, c->jr.count);
		nox_err_clear(&derr);
		r = drain(c, UINT64_MAX, &derr);
		if (r == -ENOENT) {
			sb->cache = NULL;
			cache_free(c);
			return nox_err_set(err, ENOENT, "sandbox %s is gone",
					   sb->id);
		}
	}
	if (pthread_create(&c->thr, NULL, flusher, c) == 0)
		c->thr_started = true;
	else
		nox_log(NOX_LOG_WARN,
			"%s: no flusher thread; uploads wait "
			"for close, exec and sync",
			sb->id);
	fd = openat(c->tree_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return nox_err_set(err, errno, "cache tree: %s",
				   strerror(errno));
	return fd;
}

/* Moves the cache of a sandbox that vanished to CACHE/<host>/lost/. */
static void keep_lost(struct cache *c)
{
	char to[PATH_MAX], from[PATH_MAX];
	const char *slash = strrchr(c->dir, '/');

	if (!slash)
		return;
	snprintf(from, sizeof(from), "%.*s/lost", (int)(slash - c->dir),
		 c->dir);
	(void)mkdir(from, 0700);
	snprintf(to, sizeof(to), "%s/%s.%lld", from, c->sb->id,
		 (long long)time(NULL));
	if (rename(c->dir, to) == 0)
		nox_log(NOX_LOG_WARN,
			"%s: unsent data of the vanished "
			"sandbox kept in %s (tree/ and journal/)",
			c->sb->id, to);
}

static void http_detach(struct fs_sandbox *sb)
{
	struct cache *c = cache_of(sb);
	struct nox_err err;

	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
	if (c->thr_started)
		pthread_join(c->thr, NULL);
	if (!c->gone && !sb->gone) {
		nox_err_clear(&err);
		(void)snapshot_dirty(c, &err);
		if (c->jr.head && drain(c, UINT64_MAX, &err) < 0)
			nox_log(NOX_LOG_WARN,
				"%s: %zu operations stay in the "
				"journal: %s",
				sb->id, c->jr.count, nox_err_str(&err, -EIO));
	}
	pthread_mutex_lock(&c->mu);
	persist_all_locked(c);
	c->man_dirty = true;
	save_manifest_locked(c, true);
	pthread_mutex_unlock(&c->mu);
	if ((c->gone || sb->gone) && (c->jr.head || c->ndirty)) {
		/* deleted with changes the server never got: keep them */
		keep_lost(c);
	} else if (c->gone || sb->gone) {
		/* deleted (rmdir) or vanished with nothing unsent */
		(void)tree_remove(c->dir_fd, "tree");
		(void)tree_remove(c->dir_fd, "journal");
		(void)tree_remove(c->dir_fd, "tmp");
		(void)unlinkat(c->dir_fd, STATE_NAME, 0);
		(void)rmdir(c->dir);
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
	return ensure_listing(c);
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
	if (!(flags & O_TRUNC))
		return fetch(c, n);
	/* the content is about to be empty: nothing to download */
	pthread_mutex_lock(&c->mu);
	if (c->gone) {
		pthread_mutex_unlock(&c->mu);
		return -ENOENT;
	}
	me = manifest_get(&c->man, n->sino);
	if (me && !me->fetched && !me->fetching) {
		me->fetched = true;
		c->man_dirty = true;
	}
	newly = dirty_add(c, n->sino);
	pthread_mutex_unlock(&c->mu);
	if (newly)
		(void)journal_mark_dirty(&c->jr, n->sino);
	return 0;
}

/*
 * A read of a file opened before a command changed it: the command's
 * version is fetched into the same tree inode, so the open descriptor
 * reads it (as on the local backend).  Costs one lock when nothing ran.
 */
static int http_before_read(struct fs_sandbox *sb, struct fs_node *n)
{
	struct cache *c = cache_of(sb);
	struct ment *me;
	bool stale, need;
	int r;

	if (!c || n->type != S_IFREG)
		return 0;
	pthread_mutex_lock(&c->mu);
	stale = c->stale || c->listed_execs < c->execs;
	me = manifest_get(&c->man, n->sino);
	need = me && !me->fetched;
	pthread_mutex_unlock(&c->mu);
	if (!stale && !need)
		return 0;
	if (stale) {
		r = ensure_listing(c);
		if (r < 0)
			return r;
	}
	return fetch(c, n);
}

static void http_note_write(struct fs_sandbox *sb, struct fs_node *n)
{
	struct cache *c = cache_of(sb);
	bool newly;

	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	newly = dirty_add(c, n->sino);
	pthread_mutex_unlock(&c->mu);
	if (newly)
		(void)journal_mark_dirty(&c->jr, n->sino);
}

/* The last journal entry about inode ino, or 0. */
static uint64_t last_seq_of(struct cache *c, ino_t ino)
{
	const struct jent *e;
	uint64_t s = 0;

	pthread_mutex_lock(&c->mu);
	for (e = c->jr.head; e; e = e->next) {
		if (e->ino == ino)
			s = e->seq;
	}
	pthread_mutex_unlock(&c->mu);
	return s;
}

static int http_on_close(struct fs_sandbox *sb, struct fs_node *n, int fd,
			 bool fsync)
{
	struct cache *c = cache_of(sb);
	char path[PATH_MAX];
	struct nox_err err;
	uint64_t seq = 0;
	bool was;
	int r;

	(void)fd;
	if (!c)
		return -ESTALE;
	pthread_mutex_lock(&c->mu);
	was = dirty_del(c, n->sino);
	if (c->gone) {
		pthread_mutex_unlock(&c->mu);
		return -ENOENT;
	}
	pthread_mutex_unlock(&c->mu);
	nox_err_clear(&err);
	if (was) {
		struct stat st;

		if (fstatat(n->fd, "", &st, AT_EMPTY_PATH) == 0 &&
		    st.st_nlink == 0) {
			/* unlinked while open: nothing to send */
			journal_clear_dirty(&c->jr, n->sino);
			return 0;
		}
		pthread_mutex_lock(&c->op_mu);
		r = node_path(sb, n, path, sizeof(path));
		if (r == 0)
			r = snapshot(c, n, path, &seq, &err);
		pthread_mutex_unlock(&c->op_mu);
		if (r < 0) {
			nox_log(NOX_LOG_WARN, "%s: %s", sb->id,
				nox_err_str(&err, r));
			pthread_mutex_lock(&c->mu);
			dirty_add(c, n->sino);
			pthread_mutex_unlock(&c->mu);
			return r;
		}
		/* the marker goes once the server has it (confirmed) */
	} else {
		/* an fsync of an earlier close or of a create not yet sent;
		 * a plain close of an unwritten file waits for the flusher
		 * (a shell's "> f" closes a dup before writing) */
		if (!fsync)
			return 0;
		seq = last_seq_of(c, n->sino);
		if (seq == 0)
			return 0;
	}
	if (c->writeback && !fsync) {
		pthread_mutex_lock(&c->mu);
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->mu);
		return 0;
	}
	r = drain(c, seq, &err);
	if (r < 0) {
		nox_log(NOX_LOG_WARN,
			"%s: upload of %s: %s (kept in the "
			"journal, retried)",
			sb->id, was ? path : "file", nox_err_str(&err, r));
		return r;
	}
	return 0;
}

/* Builds the journal entries for op; the caller appends them. */
static void http_note_op(struct fs_sandbox *sb, const struct fs_op *op)
{
	struct cache *c = cache_of(sb);
	char p1[PATH_MAX], p2[PATH_MAX];
	struct jent *e = NULL;
	struct nox_err err;
	struct stat st;
	bool sync_now = true;
	int r;

	if (!c || c->gone)
		return;
	nox_err_clear(&err);
	if (op->kind == FS_OP_SETATTR)
		r = node_path(sb, op->node, p1, sizeof(p1));
	else if (op->kind == FS_OP_LINK)
		r = node_path(sb, op->node, p1, sizeof(p1));
	else
		r = child_path(sb, op->dir, op->name, p1, sizeof(p1));
	if (r == 0 && (op->kind == FS_OP_RENAME || op->kind == FS_OP_LINK))
		r = child_path(sb, op->dir2, op->name2, p2, sizeof(p2));
	if (r < 0 || !*p1) {
		nox_log(NOX_LOG_WARN,
			"%s: operation on a file without a "
			"known path not sent: %s",
			sb->id, strerror(-r));
		return;
	}
	switch (op->kind) {
	case FS_OP_MKDIR:
	case FS_OP_CREATE:
	case FS_OP_SYMLINK: {
		enum jop jo = op->kind == FS_OP_MKDIR	 ? J_MKDIR
			      : op->kind == FS_OP_CREATE ? J_CREATE
							 : J_SYMLINK;
		char target[PATH_MAX];

		if (fstatat(op->dir->fd, op->name, &st, AT_SYMLINK_NOFOLLOW) <
		    0)
			return;
		if (jo == J_SYMLINK) {
			ssize_t tl = readlinkat(op->dir->fd, op->name, target,
						sizeof(target) - 1);

			if (tl < 0)
				return;
			target[tl] = '\0';
		}
		e = journal_entry_new(&c->jr, jo, p1,
				      jo == J_SYMLINK ? target : NULL);
		if (!e)
			break;
		e->mode = st.st_mode & 07777;
		e->mtime_ns = ts_ns(&st.st_mtim);
		e->ino = st.st_ino;
		/* a create is sent with the file's first upload */
		if (jo == J_CREATE)
			sync_now = false;
		break;
	}
	case FS_OP_LINK:
		e = journal_entry_new(&c->jr, J_LINK, p1, p2);
		break;
	case FS_OP_UNLINK:
		e = journal_entry_new(&c->jr, J_UNLINK, p1, NULL);
		break;
	case FS_OP_RMDIR:
		e = journal_entry_new(&c->jr, J_RMDIR, p1, NULL);
		break;
	case FS_OP_RENAME:
		e = journal_entry_new(&c->jr, J_RENAME, p1, p2);
		if (e)
			e->num = op->flags;
		break;
	case FS_OP_SETATTR: {
		unsigned f = op->flags;
		struct jent *v[2] = {NULL, NULL};
		struct ment *me;
		size_t i, nv = 0;
		bool carried;

		if (fstatat(op->node->fd, "", &st,
			    AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return;
		pthread_mutex_lock(&c->mu);
		carried = S_ISREG(st.st_mode) && dirty_has(c, st.st_ino);
		pthread_mutex_unlock(&c->mu);
		if (carried)
			/* written and still open: its close uploads it with
			 * the size, mode and times it has then (tar x:
			 * write, futimens, fchmod, close is one upload) */
			return;
		if (f & FUSE_SET_ATTR_SIZE) {
			bool placeholder, open_dirty;

			pthread_mutex_lock(&c->mu);
			me = manifest_get(&c->man, st.st_ino);
			open_dirty = dirty_has(c, st.st_ino);
			placeholder =
			    me && !me->fetched && !busy_locked(c, st.st_ino);
			if (placeholder && st.st_size == 0)
				me->fetched = true;
			else if (placeholder)
				me->rsize = st.st_size;
			pthread_mutex_unlock(&c->mu);
			if (placeholder && st.st_size > 0) {
				e = journal_entry_new(&c->jr, J_TRUNCATE, p1,
						      NULL);
				if (!e)
					break;
				e->num = st.st_size;
				e->ino = st.st_ino;
				if (append(c, e, -1, &err) < 0)
					nox_log(NOX_LOG_WARN, "%s: %s", sb->id,
						nox_err_str(&err, -EIO));
				e = NULL;
			} else if (!open_dirty) {
				/* truncate(2) by path: no close follows;
				 * an open file's close uploads it */
				uint64_t seq;

				if (snapshot(c, op->node, p1, &seq, &err) < 0)
					nox_log(NOX_LOG_WARN, "%s: %s", sb->id,
						nox_err_str(&err, -EIO));
			}
		}
		if (f & FUSE_SET_ATTR_MODE) {
			v[nv] = journal_entry_new(&c->jr, J_CHMOD, p1, NULL);
			if (v[nv]) {
				v[nv]->mode = st.st_mode & 07777;
				v[nv]->ino = st.st_ino;
				nv++;
			}
		}
		if (f & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
			v[nv] = journal_entry_new(&c->jr, J_UTIMENS, p1, NULL);
			if (v[nv]) {
				v[nv]->atime_ns = (f & FUSE_SET_ATTR_ATIME)
						      ? ts_ns(&st.st_atim)
						      : -2;
				v[nv]->mtime_ns = (f & FUSE_SET_ATTR_MTIME)
						      ? ts_ns(&st.st_mtim)
						      : -2;
				v[nv]->ino = st.st_ino;
				nv++;
			}
		}
		for (i = 0; i < nv; i++) {
			if (append(c, v[i], -1, &err) < 0)
				nox_log(NOX_LOG_WARN, "%s: %s", sb->id,
					nox_err_str(&err, -EIO));
		}
		goto sent;
	}
	}
	if (!e) {
		nox_log(NOX_LOG_WARN, "%s: out of memory journaling %s", sb->id,
			p1);
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
	if (tl_op == c) {
		/* not with op_mu held: at op_end */
		tl_drain = true;
		return;
	}
	if (drain(c, UINT64_MAX, &err) < 0)
		nox_log(NOX_LOG_DEBUG, "%s: %s stays in the journal: %s",
			sb->id, p1, nox_err_str(&err, -EIO));
}

static void http_op_begin(struct fs_sandbox *sb)
{
	struct cache *c = cache_of(sb);

	if (!c)
		return;
	pthread_mutex_lock(&c->op_mu);
	tl_op = c;
	tl_drain = false;
}

static void http_op_end(struct fs_sandbox *sb)
{
	struct cache *c = cache_of(sb);
	struct nox_err err;
	bool want;

	if (!c || tl_op != c)
		return;
	want = tl_drain;
	tl_op = NULL;
	tl_drain = false;
	pthread_mutex_unlock(&c->op_mu);
	nox_err_clear(&err);
	if (want && drain(c, UINT64_MAX, &err) < 0)
		nox_log(NOX_LOG_DEBUG,
			"%s: an operation stays in the journal: %s", sb->id,
			nox_err_str(&err, -EIO));
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
	r = drain(c, UINT64_MAX, err);
	if (r == -ENOENT)
		nox_err_set(err, ENOENT, "sandbox %s is gone", sb->id);
	return r < 0 ? r : 0;
}

static void http_after_exec(struct fs_sandbox *sb)
{
	struct cache *c = cache_of(sb);

	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->execs++;
	pthread_mutex_unlock(&c->mu);
}

const struct fs_sandbox_hooks fs_http_hooks = {
    .name = "http",
    .by_path = true,
    .attach = http_attach,
    .detach = http_detach,
    .before_dir = http_before_dir,
    .before_open = http_before_open,
    .note_write = http_note_write,
    .on_close = http_on_close,
    .note_op = http_note_op,
    .flush = http_flush,
    .after_exec = http_after_exec,
    .before_read = http_before_read,
    .op_begin = http_op_begin,
    .op_end = http_op_end,
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
