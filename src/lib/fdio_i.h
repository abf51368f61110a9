/*
 * fdio_i.h - descriptor helpers for libnox and its programs (private: not
 * installed): whole-buffer writes, and the parent of a path opened
 * without following symlinks.
 */
#ifndef NOX_FDIO_I_H
#define NOX_FDIO_I_H

#include <stddef.h>

/*
 * Writes all len bytes of buf to fd, retrying short writes and EINTR.
 * 0, or -errno (-EIO when write(2) makes no progress without an errno).
 */
int fdio_write_all(int fd, const void *buf, size_t len);

/*
 * Opens the directory holding path below dirfd, one component at a time
 * and without following any symlink: the parent directory (O_PATH) in
 * *pfd (caller closes) and its last part in *base (points into path).
 * -EINVAL for an empty or over-long component; -ENOENT/-ENOTDIR/-ELOOP
 * as openat gives.
 */
int fdio_parent(int dirfd, const char *path, int *pfd, const char **base);

#endif
