/*
 * fdio.c - whole-buffer writes on a descriptor (short writes, EINTR).
 */
#include <errno.h>
#include <unistd.h>

#include "fdio_i.h"

int fdio_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
