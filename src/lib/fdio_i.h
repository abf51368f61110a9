/*
 * fdio_i.h - whole-buffer writes on a descriptor, for libnox and its
 * programs (private: not installed).
 */
#ifndef NOX_FDIO_I_H
#define NOX_FDIO_I_H

#include <stddef.h>

/*
 * Writes all len bytes of buf to fd, retrying short writes and EINTR.
 * 0, or -errno (-EIO when write(2) makes no progress without an errno).
 */
int fdio_write_all(int fd, const void *buf, size_t len);

#endif
