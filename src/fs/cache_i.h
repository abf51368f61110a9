/*
 * cache_i.h - private to the cache layer (cache.c, cache_list.c,
 * cache_bulk.c, cache_drain.c, cache_space.c): the per-sandbox state and
 * the calls between its parts.
 */
#ifndef NOXFS_CACHE_I_H
#define NOXFS_CACHE_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

#include <nox/nox.h>

#include "cache.h"
#include "journal.h"
#include "fdio_i.h"
#include "manifest.h"

#define BATCH_MAX_FILES	 5000
#define BATCH_MAX_BYTES	 (64ll * 1024 * 1024)
#define SCRIPT_MAX_OPS	 500
#define SCRIPT_MAX_ARGS	 (96 * 1024)
#define DEFAULT_DELAY_MS 100
/* v1, write-back: a rename over a file, of a clean file up to this size,
 * is sent as an upload of the new name (see note_rename_upload) */
#define RENAME_UPLOAD_MAX (256 * 1024)
#define RETRY_MAX_MS	 5000
#define STATE_NAME	 "state"
#define MANIFEST_SAVE_MS 2000
#define PART_SIZE	 (64ll * 1024 * 1024)
#define PART_MIN	 (256ll * 1024)

/*
 * A file written through the mount and not yet closed, with the
 * workspace path it has now: set once (dirty_name, cache.c) and kept
 * current by the renames and unlinks journaled after it, so the exec
 * barrier finds it without a walk of the tree.  NULL: not known (the
 * name it had went; a hard link); then it is looked up again.
 */
struct cache_dirty {
	ino_t ino;
	char *path; /* malloc'd or NULL */
};

struct cache_fetch;

struct cache {
	struct fs_sandbox *sb;	/* immutable; outlives the cache */
	struct nox_backend *be; /* immutable */
	char *dir;		/* immutable: CACHE/<host>/<id> */
	int dir_fd;		/* immutable */
	int tree_fd;		/* immutable, O_PATH */
	bool writeback;		/* immutable */
	long delay_ms;		/* immutable */
	bool ext;		/* immutable: nox.fs fs/op usable */
	bool batch;		/* immutable: nox.ops fs/ops usable too */
	double list_ttl;	/* immutable, seconds */
	int op_timeout;		/* immutable, s: a request's deadline */

	pthread_mutex_t mu;
	pthread_cond_t cond; /* fetches, listings, journal */
	/* protected by mu */
	struct manifest man;
	struct journal jr;	   /* its list; files: see journal.h */
	struct cache_dirty *dirty; /* written, not yet closed */
	size_t ndirty, capdirty;
	unsigned long names_gen;    /* bumps when names move or go */
	unsigned long jgen;	    /* bumps on every journal append */
	bool listed;		    /* a listing was merged this mount */
	bool have_manifest;	    /* a listing was ever merged */
	bool stale;		    /* a command ran since */
	unsigned long execs;	    /* commands that ended */
	unsigned long listed_execs; /* execs when the listing started */
	bool listing;		    /* a refresh is running */
	struct timespec listed_at;  /* CLOCK_MONOTONIC */
	double list_took;	    /* s, the last listing (LIST_AGE) */
	long long inflight; /* bytes of the downloads begun and not ended:
			       the bound counts them (cache_space.c) */
	struct timespec list_retry; /* no refresh before (failures) */
	int list_errno;		    /* its error (negative), or 0 */
	bool list_wanted;	    /* the flusher is to take a listing */
	bool man_dirty;		    /* manifest needs saving */
	bool saved_once;
	struct timespec saved_at;      /* last manifest save */
	bool gone;		       /* the server lost the sandbox */
	char *moved;		       /* where dir went (http_gone) or NULL */
	bool failing;		       /* the last drain failed */
	bool one_per_tar;	       /* the server refused a large tar */
	long long part_size;	       /* big files go in parts this large */
	struct timespec pending_since; /* journal became non-empty */
	struct timespec retry_at;      /* backoff after a failure */
	long backoff_ms;
	/* drains that failed for want of an answer, and the last one's
	 * error: a drain that waited for that one fails with it rather
	 * than spend a second deadline on the same server */
	unsigned long drain_stalls;
	struct nox_err drain_err;
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
	unsigned long walks; /* op_mu: tree walks by inode (replay, a file
				whose kept name went) */
	bool op_over;	     /* op_mu: the rename in progress replaces a
				regular file (seen at op_begin) */

	/* the server's statfs answer, reused for a few seconds
	 * (cache_space.c); protected by mu */
	struct statvfs sv;
	struct timespec sv_at;
	bool sv_known;

	/* downloads in flight (cache_list.c), and the threads that run
	 * them (detach waits for those); protected by mu */
	struct cache_fetch *fetches;
	unsigned fetch_threads;
	/* cache_bulk.c: the last tree directory found too big for a bulk
	 * fetch, by inode and mtime (ns); protected by mu */
	ino_t bulk_skip_ino;
	int64_t bulk_skip_ns;

	pthread_mutex_t drain_mu; /* one drain at a time */
	int batch_fd;		  /* drain_mu: the batch tar, reused, or -1 */
	pthread_t thr;
	bool thr_started;
};

/*
 * The lock order, between the layer's three mutexes of one sandbox and
 * the core's table.mutex (inode.h); checked in debug builds (assert):
 *
 *   op_mu  ->  table.mutex      the core builds an operation's paths
 *                               (fs_op_note) inside op_begin ..
 *                               op_end
 *   op_mu  ->  mu
 *   drain_mu -> mu
 *   drain_mu -> table.mutex     a drain that finds the sandbox gone
 *                               detaches it (fs_sandbox_detach)
 *
 * cache_space.c's space_mu (one eviction pass for the whole mount) is
 * taken with no cache lock held; inside it, one sandbox's op_mu then mu
 * at a time, and table.mutex inside op_mu (fs_node_pinned).
 *
 * op_mu and drain_mu are never held together (a drain sends requests;
 * an operation must not wait on the network, and op_end drains after
 * releasing op_mu).  Nothing is taken inside mu.  table.mutex is a leaf
 * (but for inode.c's own descriptor-cache mutex, fdmu, inside it):
 * the core calls no hook with it held (cache_lock asserts it, through
 * fs_table_held), and the layer reads the core's names (cache_node_path)
 * with none of its own locks held.  No lock of one sandbox's cache is
 * taken inside another's.
 */
enum cache_lock {
	CACHE_OP_MU = 1,
	CACHE_DRAIN_MU = 2,
	CACHE_MU = 4,
};
/* Takes / releases one of c's mutexes, checking the order above. */
void cache_lock(struct cache *c, enum cache_lock l);
void cache_unlock(struct cache *c, enum cache_lock l);
/* pthread_cond_wait on c->cond (mu held across, as far as the order
 * check is concerned). */
void cache_wait(struct cache *c);

static inline struct cache *cache_of(struct fs_sandbox *sb)
{
	return sb->cache;
}

static inline void mono_now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

static inline double ts_diff(const struct timespec *a, const struct timespec *b)
{
	return (double)(a->tv_sec - b->tv_sec) +
	       (double)(a->tv_nsec - b->tv_nsec) / 1e9;
}

static inline void ts_add_ms(struct timespec *ts, long ms)
{
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000l;
	if (ts->tv_nsec >= 1000000000l) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000l;
	}
}

static inline int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000ll + ts->tv_nsec;
}

/* ---- cache.c: the hooks, the cache dir, the journal's appends ---- */

/* With mu: the dirty set (files written and not yet closed). */
bool cache_dirty_has(struct cache *c, ino_t ino);
bool cache_dirty_add(struct cache *c, ino_t ino);
/* With mu: ino has local changes the server does not have yet. */
bool cache_busy_locked(struct cache *c, ino_t ino);
/* With mu: remembers path for the listing in flight. */
void cache_touch_locked(struct cache *c, const char *path);
void cache_touched_clear_locked(struct cache *c);
/* The last journal entry about inode ino, or 0 (takes mu). */
uint64_t cache_last_seq_of(struct cache *c, ino_t ino);
/* Tree path of node n (the core's names). */
int cache_node_path(struct fs_sandbox *sb, struct fs_node *n, char *buf,
		    size_t size);
/* The cache base directory (CACHE/<host>), malloc'd, or NULL. */
char *cache_base_dir(struct fs *fs);
/* A new empty directory CACHE/.../tmp/PREFIX-N; its fd, name in buf. */
int cache_tmp_dir(struct cache *c, const char *prefix, char *buf, size_t size);
void cache_tmp_dir_remove(struct cache *c, const char *name, int fd);
/* An unlinked temporary file in the cache dir. */
int cache_tmp_file(struct cache *c);
/* With mu: saves the manifest (unless force, at most every 2 s). */
void cache_save_manifest_locked(struct cache *c, bool force);
/* The server no longer has the sandbox: say so once, keep the data. */
void cache_mark_gone(struct cache *c);
/* r from a call about the sandbox: -ENOENT means it is gone. */
int cache_check_gone(struct cache *c, int r);

/* ---- cache_list.c: listings and downloads ---- */

/* A listing fresh enough for before_dir (see there); 0 or -errno. */
int cache_list_ensure(struct cache *c);
/* The flusher's listing, asked for while the server was silent
 * (health.c): none if one is running. */
void cache_list_background(struct cache *c);
/* Downloads placeholder n's content, once, and waits for all of it (a
 * download in flight too); 0 or -errno. */
int cache_list_fetch(struct cache *c, struct fs_node *n);
/* A read-only open of placeholder n: starts its download in a thread of
 * its own (or joins the one in flight) and waits for its first bytes or
 * its end; 0 or -errno. */
int cache_list_fetch_open(struct cache *c, struct fs_node *n);
/* A read of [off, off + len) of n: waits until the download in flight
 * has it (started if none is: n is a placeholder), or ended; with nox.fs
 * a range far ahead of the download is fetched by a ranged GET instead
 * (an island, cache_list.c).  0, or the download's error (-EIO,
 * -ETIMEDOUT...) when the range did not come. */
int cache_list_fetch_range(struct cache *c, struct fs_node *n, off_t off,
			   size_t len);
/* With mu: frees the records of failed downloads (the cache's end). */
void cache_list_fetch_cleanup_locked(struct cache *c);

/* ---- cache_put.c: big uploads by PUT fs/file (nox.fs) ---- */

/* Upload e goes by PUT fs/file (nox.fs, a snapshot of 1 MiB or more). */
bool cache_put_wanted(struct cache *c, const struct jent *e);
/* With drain_mu: sends upload e by PUT fs/file (in_place: into the
 * target's inode, a hard link); 0 once the server has it, or -errno. */
int cache_put_upload(struct cache *c, struct jent *e, bool in_place,
		     struct nox_err *err);
/* The gzip level (0 or 1) for a tar whose bulk is snapshot fd. */
int cache_put_gzip_level(int fd, off_t size);

/* ---- cache_bulk.c: many small files in one request ---- */

/*
 * Called by a download (cache_list.c's fetch_run) of the placeholder of
 * tree inode ino (tree path path), already marked fetching, with no lock
 * held: fetches it together with the other small clean placeholders of
 * its directory in one request, when that is worth it and within the
 * bounds (docs/cache.md).  0: its content is in place (*st: as the
 * server sent it; the caller marks it fetched, the others are marked
 * here); -EAGAIN: it was not fetched (the caller downloads it alone);
 * else the request's transport error.
 */
int cache_bulk_fetch(struct cache *c, ino_t ino, const char *path,
		     struct stat *st, struct nox_err *err);

/* ---- cache_space.c: the bound, eviction, statfs ---- */

/* With mu: me was just opened or downloaded (or uploaded): the
 * eviction's clock. */
void cache_space_used_locked(struct ment *me);
/* Before a download of need bytes, with no cache lock held: evicts
 * clean closed files, least recently used first, until the contents fit
 * in -o cache_max and the cache disk has twice need free (or nothing
 * more can go: a download may exceed the bound for a while). */
void cache_space_room(struct cache *c, off_t need);
/* The server's figures for the sandbox, reused for the attribute
 * timeout (at least 3 s): those the first listing carried (it is taken
 * for them on a sandbox not listed yet), else fs/statfs, or df through
 * an exec on v1; 0 or -errno. */
int cache_space_statfs(struct cache *c, struct statvfs *sv);
/* Keeps the space figures in df -P output text (the v1 listing's
 * stderr), if it holds them, as the sandbox's statfs answer. */
void cache_space_statfs_note(struct cache *c, const char *text);
/* Keeps sv as the sandbox's statfs answer, from now. */
void cache_space_statfs_keep(struct cache *c, const struct statvfs *sv);
/* The mount root's figures: the cache (size cache_max, used what the
 * attached sandboxes' downloaded contents take).  Always 0. */
int cache_space_statfs_root(struct fs *fs, struct statvfs *sv);

/* ---- cache_drain.c: the drain and the uploads ---- */

/* Drains the journal up to entry upto (UINT64_MAX: all). */
int cache_drain(struct cache *c, uint64_t upto, struct nox_err *err);
/* The flusher thread's body (arg: the cache). */
void *cache_drain_flusher(void *arg);
/* With mu: writes every lazy entry to disk, fsynced. */
void cache_drain_persist_all_locked(struct cache *c);
/* CACHE/<host>/<id>/tmp/batch.tar, opened; or -errno. */
int cache_drain_batch_open(struct cache *c);

#endif
