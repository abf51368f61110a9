/*
 * journal.h - the on-disk journal of one sandbox's pending operations.
 *
 * The journal is a directory (CACHE/<host>/<id>/journal).  Each pending
 * operation is one file SEQ.op (SEQ: 20 decimal digits, so names sort in
 * order); an upload's content is a snapshot beside it, SEQ.data.  An op
 * file holds NUL-terminated fields: a version tag, the op name, two paths,
 * and numbers.  Entries are written to a temporary name and renamed into
 * place, so a crash leaves either the whole entry or none; they are
 * removed only after the server confirmed them.
 *
 * Lazy entries (the default mode, where each entry is sent before the
 * call that made it returns) stay in memory, an upload's snapshot of up
 * to J_LAZY_MAX bytes with them, and reach the disk only when they are
 * not confirmed at once (journal_persist: a failed drain, unmount, a
 * sandbox gone).  A crash before that loses nothing the caller was told
 * is done: the file's dirty marker stays until its upload is confirmed
 * or persisted, so the next mount uploads the tree's content.  Creating
 * and removing two files per upload made ext4's inode allocator the
 * daemon's main cost.
 *
 * Dirty markers record files written through the mount and not yet
 * closed (or closed, lazily journaled and not yet confirmed), so a crash
 * still finds them: on the next mount they become uploads of the file's
 * current content.  They are lines "+INO" / "-INO" appended to one file,
 * "dirty", rewritten with the current set when it grows; older caches'
 * dirty-INO files are read too.
 *
 * Limits: entries are not deduplicated on disk (the drain merges them);
 * a marker names an inode of the cache tree, so it means nothing once the
 * tree was copied elsewhere.  The caller serialises calls on one journal
 * except journal_write(), which touches only the entry's own files.
 */
#ifndef NOXFS_JOURNAL_H
#define NOXFS_JOURNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <nox/err.h>

enum jop {
	J_UPLOAD,   /* path: content from SEQ.data, mode, mtime_ns */
	J_CREATE,   /* path: an empty regular file, mode */
	J_MKDIR,    /* path, mode */
	J_SYMLINK,  /* path -> path2 (target) */
	J_LINK,	    /* path (existing) -> path2 (new name) */
	J_UNLINK,   /* path */
	J_RMDIR,    /* path */
	J_RENAME,   /* path -> path2, flags in num */
	J_CHMOD,    /* path, mode */
	J_UTIMENS,  /* path, atime_ns, mtime_ns (-1 now, -2 omit) */
	J_TRUNCATE, /* path, size in num */
	J_MKNOD,    /* path, mode; S_IFIFO or S_IFSOCK in num */
	J__COUNT
};

struct jent {
	uint64_t seq;
	enum jop op;
	char *path;  /* malloc'd, workspace-relative */
	char *path2; /* malloc'd or NULL */
	mode_t mode;
	long long num; /* rename flags, truncate size */
	int64_t atime_ns;
	int64_t mtime_ns;
	ino_t ino;   /* upload: the cache tree inode, or 0 */
	off_t size;  /* upload: snapshot size */
	bool lazy;   /* not on disk (yet) */
	bool unsynced; /* on disk, not fsynced yet (journal_sync) */
	bool marked; /* upload: clear the inode's dirty marker once the
			server confirmed it (not stored) */
	char *mem;   /* lazy upload: the snapshot (size bytes), malloc'd */
	struct jent *next;
};

#define J_LAZY_MAX (1024 * 1024)

struct journal {
	int dirfd; /* the journal directory */
	atomic_ullong next_seq;
	struct jent *head, *tail; /* pending, in order */
	size_t count;

	pthread_mutex_t mark_mu; /* the dirty markers */
	ino_t *marks;		 /* protected by mark_mu */
	size_t nmarks, capmarks;
	size_t mark_lines; /* lines in the dirty file */
	int mark_fd;	   /* O_APPEND, or -1 */
};

/* The op's name as stored ("upload", "rename", ...); static storage. */
const char *journal_op_name(enum jop op);

/*
 * A journal not yet opened: journal_close() on it is a no-op (so its
 * owner can be freed on any path).
 */
void journal_init(struct journal *j);

/*
 * Reading the pending list (caller's lock, as for journal_link): the
 * first entry or NULL, the one after e or NULL, how many, the sequence
 * number of the last one (0: empty).
 */
struct jent *journal_first(const struct journal *j);
struct jent *journal_next(const struct jent *e);
size_t journal_count(const struct journal *j);
uint64_t journal_last_seq(const struct journal *j);
/* The sequence number of the last entry about inode ino, or 0. */
uint64_t journal_last_seq_of(const struct journal *j, ino_t ino);

/*
 * Where upload e's snapshot is on disk: the journal directory's fd (the
 * journal keeps it) and its name in name (40 bytes are enough).
 */
int journal_data_at(const struct journal *j, const struct jent *e, char *name,
		    size_t size);
/* stat of upload e's snapshot file; 0 or -errno. */
int journal_data_stat(const struct journal *j, const struct jent *e,
		      struct stat *st);
/*
 * Keeps e's data beside the journal as failed-SEQ.data (the server
 * refused it for good); e itself is still popped by the caller.
 */
void journal_set_aside(struct journal *j, struct jent *e);

/*
 * Opens the journal in directory dirfd (taken over) and loads its
 * entries in sequence order; leftovers of interrupted writes are
 * removed.  An unreadable entry is logged and set aside as SEQ.bad.
 */
int journal_open(struct journal *j, int dirfd, struct nox_err *err);
/* Frees the in-memory entries and closes the directory (files stay). */
void journal_close(struct journal *j);

/*
 * A new entry (not yet in the journal) with the next sequence number and
 * copies of path and path2 (may be NULL); NULL on ENOMEM.  Freed with
 * journal_entry_free() unless linked.
 */
struct jent *journal_entry_new(struct journal *j, enum jop op, const char *path,
			       const char *path2);
void journal_entry_free(struct jent *e);

/*
 * Writes e's files: for an upload the snapshot is copied from data_fd
 * (read from offset 0; e->size set) first.  With sync the data, the op
 * file and the directory are fsynced.  Safe without the caller's lock.
 */
int journal_write(struct journal *j, struct jent *e, int data_fd, bool sync,
		  struct nox_err *err);
/*
 * Like journal_write without sync, but e stays in memory (e->lazy) when
 * it is not an upload or its snapshot (read from data_fd now) fits
 * J_LAZY_MAX; bigger snapshots are written at once.
 */
int journal_write_lazy(struct journal *j, struct jent *e, int data_fd,
		       struct nox_err *err);
/* Writes a lazy entry's files (with sync: fsynced); no-op otherwise. */
int journal_persist(struct journal *j, struct jent *e, bool sync);
/* fsyncs an entry written without sync (kept after a failure); a lazy
 * one is written first.  A no-op for an entry already fsynced. */
void journal_sync(struct journal *j, struct jent *e);
/* Appends a written entry to the in-memory list (caller's lock). */
void journal_link(struct journal *j, struct jent *e);
/* Removes the first entry (must be e) from list and disk, frees it. */
void journal_pop(struct journal *j, struct jent *e);
/* An upload's snapshot, O_RDONLY, or -errno (a lazy one is persisted). */
int journal_data_open(struct journal *j, struct jent *e);
/* Rewrites e's op file after the caller changed its fields. */
int journal_rewrite(struct journal *j, struct jent *e, struct nox_err *err);

/* Dirty markers for inode ino of the cache tree (thread-safe). */
int journal_mark_dirty(struct journal *j, ino_t ino);
void journal_clear_dirty(struct journal *j, ino_t ino);
/* Calls cb for each marker (as loaded and since set); they stay set. */
int journal_dirty_each(struct journal *j, void (*cb)(ino_t ino, void *ud),
		       void *ud);

#endif
