/*
 * fuzz_resolve.c - resolve.c's openat2 fallback walk on arbitrary paths.
 *
 * A fixed tree is made once: ROOT holding directories, a file, and
 * symlinks that stay inside, climb out with "..", point at an absolute
 * path, loop, and chain; OUTSIDE beside ROOT holds a file.  The first
 * input byte picks open flags and resolve flags, the rest is the path.
 * Invariants: the walk returns an fd or a negative errno; a returned fd
 * names ROOT or something below it (its /proc/self/fd link starts with
 * ROOT's real path), never OUTSIDE.  No O_CREAT is ever passed, so the
 * tree stays as made.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "resolve_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root_real[PATH_MAX];
static int rootfd = -1;

static void mk(const char *top, const char *rel, int dir, const char *link)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", top, rel);
	if (link) {
		if (symlink(link, p) < 0)
			abort();
	} else if (dir) {
		if (mkdir(p, 0755) < 0)
			abort();
	} else {
		FILE *f = fopen(p, "w");

		if (!f)
			abort();
		fputs("x", f);
		fclose(f);
	}
}

static void setup(void)
{
	char top[] = "/tmp/fuzz-resolve.XXXXXX";
	char root[PATH_MAX];

	if (!mkdtemp(top))
		abort();
	mk(top, "outside", 1, NULL);
	mk(top, "outside/f", 0, NULL);
	mk(top, "root", 1, NULL);
	mk(top, "root/d", 1, NULL);
	mk(top, "root/d/e", 1, NULL);
	mk(top, "root/d/f", 0, NULL);
	mk(top, "root/in", 0, "d/f");
	mk(top, "root/dl", 0, "d");
	mk(top, "root/d/up", 0, "../d/f");
	mk(top, "root/d/out", 0, "../../outside/f");
	mk(top, "root/out", 0, "../outside");
	mk(top, "root/abs", 0, "/etc");
	mk(top, "root/l1", 0, "l2");
	mk(top, "root/l2", 0, "l1");
	mk(top, "root/d/e/deep", 0, "../../dl/e/../../in");
	snprintf(root, sizeof(root), "%s/root", top);
	if (!realpath(root, root_real))
		abort();
	rootfd = open(root_real, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int fl[] = {O_RDONLY,
				 O_PATH,
				 O_PATH | O_DIRECTORY,
				 O_RDONLY | O_DIRECTORY,
				 O_PATH | O_NOFOLLOW,
				 O_RDONLY | O_NOFOLLOW,
				 O_RDONLY | O_NONBLOCK,
				 O_PATH | O_DIRECTORY | O_NOFOLLOW};
	static const uint64_t rs[] = {
	    RESOLVE_BENEATH, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
	    RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
	char path[PATH_MAX * 2], proc[64], got[PATH_MAX];
	size_t rl;
	ssize_t n;
	int fd, flags;
	uint64_t res;

	if (rootfd < 0)
		setup();
	if (size < 1 || size >= sizeof(path))
		return 0;
	flags = fl[data[0] & 7];
	res = rs[(data[0] >> 3) & 3];
	memcpy(path, data + 1, size - 1);
	path[size - 1] = '\0';
	fd = resolve_open_walk(rootfd, path, flags, 0, res);
	if (fd > 0 && fd < 3)
		abort(); /* stdio closed: not ours to hand out */
	if (fd < 0) {
		if (fd < -4095)
			abort();
		return 0;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, got, sizeof(got) - 1);
	if (n < 0)
		abort();
	got[n] = '\0';
	rl = strlen(root_real);
	if (strncmp(got, root_real, rl) != 0 ||
	    (got[rl] != '\0' && got[rl] != '/'))
		abort(); /* escaped */
	close(fd);
	return 0;
}
