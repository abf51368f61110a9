/*
 * nox/tar.h - gzip tar packing and secure extraction (libarchive).
 *
 * Extraction treats every archive as hostile: no absolute names, no ".."
 * components, nothing written through a symlink, no device nodes, FIFOs or
 * sockets, no hard links pointing outside the archive's own entries, and
 * bounded totals (bytes and entries) so a gzip bomb or a header claiming a
 * huge size cannot fill the disk.  Archives stream through file
 * descriptors; memory use does not grow with archive size.
 */
#ifndef NOX_TAR_H
#define NOX_TAR_H

#include <stdbool.h>
#include <stdint.h>
#include <nox/err.h>

#ifdef __cplusplus
extern "C" {
#endif

struct nox_tar_limits {
	uint64_t max_bytes;   /* total file data; 0: 64 GiB */
	uint64_t max_entries; /* 0: 10,000,000 */
};

/*
 * Writes a gzip tar to out_fd of path (relative to root_dirfd; "" for the
 * directory itself).  A directory gives its contents with names relative
 * to it ("a", "a/b"...); a regular file or symlink gives one entry named by
 * its base name.  Modes and mtimes are kept; symlinks are stored, never
 * followed.  Top-level entries named in skip (NULL-terminated, may be
 * NULL) are left out.
 */
int nox_tar_pack(int out_fd, int root_dirfd, const char *path,
		 const char *const *skip, struct nox_err *err);

/*
 * Writes a gzip tar to out_fd holding exactly the listed workspace-relative
 * paths (files, symlinks, directories without their contents), under their
 * own names.  Used to batch many small uploads into one.
 */
int nox_tar_pack_list(int out_fd, int root_dirfd, const char *const *paths,
		      size_t n, struct nox_err *err);

/* One entry for nox_tar_pack_entries. */
struct nox_tar_entry {
	const char *name; /* workspace-relative; normalised like a path */
	unsigned mode;	  /* S_IFREG, S_IFDIR or S_IFLNK | permissions */
	int64_t mtime_ns; /* since the epoch */
	const void *data; /* S_IFREG: the content in memory, or NULL */
	int fd;		  /* else: the content, read from offset 0;
			     -1: the file named file in dirfd */
	int dirfd;
	const char *file;
	int64_t size;	    /* S_IFREG: bytes of content to store */
	const char *target; /* S_IFLNK: the link text */
};

/*
 * Writes a gzip tar to out_fd of the n entries as given, in order: names,
 * modes, mtimes and contents come from the entries, not from a directory
 * (no staging copy is needed).  A file that turns out shorter than size
 * is padded with zeros.  The caller keeps its descriptors; files named
 * by dirfd/file are opened one at a time (O_NOFOLLOW) and closed.
 */
int nox_tar_pack_entries(int out_fd, const struct nox_tar_entry *v, size_t n,
			 struct nox_err *err);
/* As nox_tar_pack_entries and nox_tar_pack_list, with gzip level 0
 * (stored: for data that would not shrink) or 1 (any other level). */
int nox_tar_pack_entries_level(int out_fd, const struct nox_tar_entry *v,
			       size_t n, int level, struct nox_err *err);
int nox_tar_pack_list_level(int out_fd, int root_dirfd,
			    const char *const *paths, size_t n, int level,
			    struct nox_err *err);

/*
 * Extracts the gzip (or plain) tar read from in_fd into dest_dirfd under
 * the secure rules above; limits may be NULL for the defaults.  Modes are
 * kept (minus setuid/setgid), mtimes kept.  On error, entries already
 * written stay; nothing is ever written outside dest_dirfd.
 */
int nox_tar_extract(int in_fd, int dest_dirfd,
		    const struct nox_tar_limits *limits, struct nox_err *err);

/* Gets a file's data in order: n bytes at offset off; non-zero (an
 * errno) stops the reading, which then fails with it. */
typedef int (*nox_tar_data_cb)(const void *p, size_t n, int64_t off, void *ud);
/*
 * Reads the gzip (or plain) tar from in_fd as it arrives (a pipe or
 * socket will do), whose first entry must be a regular file named name
 * (its base name; anything else is -EPROTO), and hands that entry's data
 * to cb (a sparse entry's holes are skipped: the caller's file must read
 * zeros there).  *size and *mtime_ns: the entry's.  Nothing is written to
 * the file system and nothing after the first entry is read.  0, or
 * -errno.
 */
int nox_tar_read_file(int in_fd, const char *name, nox_tar_data_cb cb, void *ud,
		      int64_t *size, int64_t *mtime_ns, struct nox_err *err);

/* A regular-file entry met by nox_tar_read_each. */
struct nox_tar_file {
	const char *name; /* normalised: relative, no "." or ".." parts */
	int64_t size;
	int64_t mtime_ns;
};
struct nox_tar_each {
	/* 1: take the entry's data, 0: skip it, -errno: stop */
	int (*file)(const struct nox_tar_file *f, void *ud);
	nox_tar_data_cb data;
	/* after the data of a taken entry: r is 0 or the error that stops
	 * the reading; non-zero (an errno) stops it too */
	int (*end)(const struct nox_tar_file *f, int r, void *ud);
};
/*
 * Reads the gzip (or plain) tar from in_fd and offers each regular-file
 * entry to ops->file; the data of a taken one goes to ops->data (holes
 * of a sparse entry skipped), then ops->end is called, also when the
 * reading fails midway.  Nothing is written to the file system: the
 * caller places what it takes (the bulk fetch writes into existing
 * files, no temp copy).  Other entry types (directories, symlinks, hard
 * links, devices) are passed over.  A hostile name (absolute, "..") or
 * more than limits allow is -EPROTO / -EFBIG.  0, or -errno.
 */
int nox_tar_read_each(int in_fd, const struct nox_tar_limits *limits,
		      const struct nox_tar_each *ops, void *ud,
		      struct nox_err *err);

#ifdef __cplusplus
}
#endif
#endif
