/*
 * manifest.h - what the cache tree of one sandbox knows about the server:
 * per tree inode, the remote size and mtime at the last listing, fetch or
 * upload, and whether the tree file holds the content (fetched) or is a
 * placeholder (a sparse file of the right size, mode and mtime).  Also the
 * remote listing (one request for the whole workspace) and its merge into
 * the tree.
 *
 * The manifest is saved as CACHE/<host>/<id>/state (text, written to a
 * temporary name and renamed).  It is a hint that can only cause extra
 * downloads: a tree file it does not know is treated as a placeholder at
 * the next merge, unless it has pending local changes.
 *
 * Limits: keyed by the inode numbers of the cache tree, so a cache dir
 * copied to another file system loses the fetched marks (contents are
 * downloaded again).  The caller serialises all calls.
 */
#ifndef NOXFS_MANIFEST_H
#define NOXFS_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <nox/err.h>

struct ment {
	ino_t ino;	/* 0: a free slot (manifest_next skips it) */
	off_t rsize;	/* remote size when last seen */
	int64_t rmtime; /* remote mtime (ns) when last seen */
	uint32_t used;	/* the use clock at the last open or download
			   (cache_space.c's eviction order); not saved */
	bool fetched;	/* the tree file holds that content */
	bool fetching;	/* a download (or an eviction) is in progress */
	uint16_t seen;	/* the last merge whose listing had it (its gen);
			   the prune's question, not saved */
};

/*
 * The entries live in chunks that never move (a pointer to an entry
 * stays good until that entry is deleted; freed slots are reused), found
 * by an open-addressing index of 32-bit slot numbers, at most half full.
 * 32 bytes an entry and 8 to 16 of index: 1,000,000 files take 40 MiB.
 * No names: what needs one (eviction) finds it with tree_walk.
 */
struct manifest {
	struct ment **chunks;
	size_t nchunks;	 /* chunks allocated */
	size_t top;	 /* slots handed out so far */
	size_t free_top; /* head of the free slots (slot + 1), or 0 */
	uint32_t *index; /* slot + 1 per bucket, 0: empty */
	size_t icap;	 /* buckets: a power of two */
	size_t count;
	uint16_t gen;		 /* of the last merge begun, never 0 */
	long long fetched_bytes; /* sum of rsize over the fetched entries;
				    kept by manifest_set, manifest_mark and
				    manifest_del (cache_space.c's bound) */
};

int manifest_init(struct manifest *m);
/* Frees the entries, not the struct. */
void manifest_cleanup(struct manifest *m);
struct ment *manifest_get(struct manifest *m, ino_t ino);
/* Finds or adds ino's entry and sets its fields; NULL on ENOMEM. */
struct ment *manifest_set(struct manifest *m, ino_t ino, off_t size,
			  int64_t mtime, bool fetched);
void manifest_del(struct manifest *m, ino_t ino);
/* The entries in no set order: *pos starts at 0; NULL after the last.
 * The table may not change during a walk. */
struct ment *manifest_next(struct manifest *m, size_t *pos);
/* The next value of the use clock, for ment.used (process-wide, so
 * entries of all sandboxes compare; wraps after 2^32 uses, which only
 * mis-orders eviction for a while). */
uint32_t manifest_use_clock(void);
/* Sets e's fetched mark and remote size, keeping m->fetched_bytes: every
 * change of either field outside manifest_set goes through here. */
void manifest_mark(struct manifest *m, struct ment *e, bool fetched,
		   off_t rsize);
/* Loads/saves file name in dirfd; a missing file loads as empty. */
int manifest_load(struct manifest *m, int dirfd, const char *name);
int manifest_save(struct manifest *m, int dirfd, const char *name);

/* ---- remote listings ------------------------------------------------ */

struct rent {
	char *path;  /* workspace-relative, validated */
	char type;   /* 'f' file, 'd' directory, 'l' symlink, 'p' FIFO,
			's' socket */
	mode_t mode; /* permission bits */
	off_t size;
	int64_t mtime;	     /* ns */
	char *target;	     /* symlinks */
	uint64_t rino;	     /* the server's inode number; 0: not known */
	unsigned long nlink; /* the server's link count (files) */
};

struct listing {
	struct rent *v;
	size_t n, cap;
	/* optional, for listing_from_dir: called whenever n reaches
	 * part_max, to take the entries so far (a merge in parts) and
	 * empty l; non-zero stops the walk.  Kept by listing_cleanup. */
	int (*part)(struct listing *l, void *ud);
	void *part_ud;
	size_t part_max;
};

/* Frees the entries (not the part hook). */
void listing_cleanup(struct listing *l);

/*
 * The argv of the v1 listing command (static storage): GNU find printing
 * type, mode, size, mtime, inode number, link count, link target and
 * path, each ended by NUL.
 */
const char *const *listing_find_argv(void);

/*
 * Parses that command's output.  -EILSEQ when a name holds U+FFFD (the
 * server replaced bytes that were not UTF-8: names cannot be trusted),
 * -EPROTO when the output is malformed or a name is hostile.
 */
int listing_parse_find(const char *out, size_t len, struct listing *l,
		       struct nox_err *err);

/*
 * Adds one entry (path validated by the caller, st as lstat gives it,
 * target for symlinks): directories, regular files and symlinks; other
 * types are left out.  0, -ENOMEM, -EPROTO (a symlink without target).
 */
struct stat;
int listing_add_stat(struct listing *l, const char *path, const struct stat *st,
		     const char *target);

/* Builds a listing by walking directory dirfd (an extracted tar), parents
 * before children, into l (zeroed, or a part hook set on a zeroed one);
 * with l->part set, in parts of l->part_max entries. */
int listing_from_dir(int dirfd, struct listing *l, struct nox_err *err);

/*
 * Makes the tree (directory tree_fd) match listing l without touching
 * busy inodes (pending local changes; busy(ino, ud) says which) or
 * skipped paths (skip(path, ud): local operations the listing may not
 * show yet, by path: the path itself and everything below it are left
 * alone): creates missing entries (files as placeholders), turns files
 * whose remote size or mtime changed into placeholders, removes entries
 * the server no longer has (only those the manifest knows came from
 * it).  With src_fd >= 0 (the extracted tar the listing came from) file
 * contents are taken from there, so files are fetched at once.  Files
 * the listing shows as one server inode (rino, nlink > 1) become hard
 * links of one tree inode, and tree links the server split are split.
 */
int manifest_merge(struct manifest *m, int tree_fd, const struct listing *l,
		   int src_fd, bool (*busy)(ino_t ino, void *ud),
		   bool (*skip)(const char *path, void *ud), void *ud,
		   struct nox_err *err);

/*
 * The same merge taken in parts, for a listing that comes in pages: begin
 * (-ENOMEM), then each part in walk order (parents before children, a
 * part's entries are merged at once and need not outlive the call), then
 * end, which removes what the server no longer has only when whole (every
 * part arrived), and frees the merge.  Memory: nothing per entry (the
 * prune asks the manifest entries, marked as their names are merged),
 * but 8 to 16 bytes a path for files with several links.  One merge at a
 * time per manifest.  The caller holds what manifest_merge's caller holds
 * during each part and the end.
 */
struct merge;
int manifest_merge_begin(struct merge **g, struct manifest *m, int tree_fd,
			 int src_fd, bool (*busy)(ino_t ino, void *ud),
			 bool (*skip)(const char *path, void *ud), void *ud);
int manifest_merge_part(struct merge *g, const struct listing *l,
			struct nox_err *err);
void manifest_merge_end(struct merge *g, bool whole);
/* Entries merged so far. */
size_t manifest_merge_count(const struct merge *g);

/* Removes path (recursively for a directory) below parent dir pfd. */
int tree_remove(int pfd, const char *name);

/*
 * Walks the tree below directory tree_fd (readdir only, no stat) and
 * calls visit with the tree path and inode number of each entry that is
 * not a directory; a non-zero return from visit ends the walk and is
 * returned.  The tree may change meanwhile: a caller opens what it found
 * by name and checks the inode again.
 */
int tree_walk(int tree_fd, int (*visit)(const char *path, ino_t ino, void *ud),
	      void *ud);

#endif
