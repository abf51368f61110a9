/*
 * fdio.c - descriptor helpers: whole-buffer writes (short writes, EINTR)
 * and a path's parent opened without following symlinks.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
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

int fdio_parent(int dirfd, const char *path, int *pfd, const char **base)
{
	const char *p = path, *slash;
	char part[NAME_MAX + 1];
	int cur, fd;

	cur = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (cur < 0)
		return -errno;
	while ((slash = strchr(p, '/')) != NULL) {
		size_t n = (size_t)(slash - p);

		if (n == 0 || n > NAME_MAX) {
			close(cur);
			return -EINVAL;
		}
		memcpy(part, p, n);
		part[n] = '\0';
		fd = openat(cur, part,
			    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(cur);
		if (fd < 0)
			return -errno;
		cur = fd;
		p = slash + 1;
	}
	*pfd = cur;
	*base = p;
	return 0;
}
