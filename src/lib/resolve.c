/*
 * resolve.c - confined path resolution: openat2() with a user-space
 * fallback for kernels and emulators without it.
 *
 * The fallback walks the path one component at a time from the starting
 * directory.  Every intermediate component is opened with
 * openat(O_PATH|O_DIRECTORY|O_NOFOLLOW) in the directory reached so far,
 * so it is a real directory entry beneath the start, never a symlink
 * followed by the kernel.  A symlink met on the way is read with
 * readlinkat() and its target spliced in front of the rest of the path:
 * an absolute target is refused (-EXDEV), as with RESOLVE_BENEATH, and so
 * is any ".." that would climb above the start.  ".." is never opened: we
 * keep the names of the directories walked through and, to go up, walk
 * them again from the start, so a directory moved meanwhile cannot take
 * us out.  The final component is opened with O_NOFOLLOW added (unless
 * the caller wants its symlink followed, which then goes through the same
 * splice).  At most RES_MAX_LINKS symlinks (-ELOOP), as the kernel.
 *
 * Limits: not atomic against concurrent renames (ENOENT possible, escape
 * not); a path through more than RES_CANON_MAX bytes of directories is
 * -ENAMETOOLONG; resolve flags other than BENEATH, NO_SYMLINKS and
 * NO_MAGICLINKS are -ENOSYS in the fallback.  Thread-safe: no state but a
 * flag remembering that openat2 is missing (so valgrind warns once).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "resolve_i.h"

#define RES_MAX_LINKS 40
#define RES_TODO_MAX  (4 * PATH_MAX)
#define RES_CANON_MAX (2 * PATH_MAX)
#define RES_SUPPORTED                                                          \
	(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

static atomic_bool res_no_openat2;

struct walk {
	int root;   /* the starting directory (not ours) */
	int cur;    /* O_PATH fd of the directory reached, ours */
	char *todo; /* what is left to resolve, at todo + pos */
	size_t pos;
	char *canon; /* names from root to cur, '/'-joined */
	size_t clen;
	int links; /* symlinks followed so far */
	uint64_t resolve;
};

/* Skips empty and "." components; false when nothing is left. */
static bool skip_to_comp(const char *t, size_t *pos)
{
	size_t n;

	for (;;) {
		while (t[*pos] == '/')
			(*pos)++;
		if (!t[*pos])
			return false;
		n = strcspn(t + *pos, "/");
		if (!(n == 1 && t[*pos] == '.'))
			return true;
		*pos += n;
	}
}

/* Copies the next component into name; -ENAMETOOLONG, 1 found, 0 none. */
static int next_comp(struct walk *w, char *name, bool *trailing_slash)
{
	size_t n;

	if (!skip_to_comp(w->todo, &w->pos))
		return 0;
	n = strcspn(w->todo + w->pos, "/");
	if (n > NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(name, w->todo + w->pos, n);
	name[n] = '\0';
	w->pos += n;
	*trailing_slash = w->todo[w->pos] == '/';
	return 1;
}

static bool more_comps(const struct walk *w)
{
	size_t p = w->pos;

	return skip_to_comp(w->todo, &p);
}

static bool is_symlink_at(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISLNK(st.st_mode);
}

/* cur = root, then each name of canon again; 0 or -errno. */
static int walk_reopen(struct walk *w)
{
	char name[NAME_MAX + 1];
	size_t p = 0, n;
	int fd;

	close(w->cur);
	w->cur = openat(w->root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (w->cur < 0)
		return -errno;
	while (p < w->clen) {
		n = strcspn(w->canon + p, "/");
		memcpy(name, w->canon + p, n);
		name[n] = '\0';
		p += n + (w->canon[p + n] == '/');
		fd = openat(w->cur, name,
			    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		close(w->cur);
		w->cur = fd;
	}
	return 0;
}

static int canon_push(struct walk *w, const char *name)
{
	size_t n = strlen(name);

	if (w->clen + n + 2 > RES_CANON_MAX)
		return -ENAMETOOLONG;
	if (w->clen)
		w->canon[w->clen++] = '/';
	memcpy(w->canon + w->clen, name, n + 1);
	w->clen += n;
	return 0;
}

/* ".." : up one level, never above root (-EXDEV). */
static int canon_pop(struct walk *w)
{
	char *slash;

	if (w->clen == 0)
		return -EXDEV;
	slash = strrchr(w->canon, '/');
	w->clen = slash ? (size_t)(slash - w->canon) : 0;
	w->canon[w->clen] = '\0';
	return walk_reopen(w);
}

/* name in cur is a symlink: splice its target before the rest. */
static int walk_follow(struct walk *w, const char *name)
{
	char target[PATH_MAX];
	const char *rest;
	size_t need;
	ssize_t n;
	char *nt;

	if (w->resolve & RESOLVE_NO_SYMLINKS)
		return -ELOOP;
	if (++w->links > RES_MAX_LINKS)
		return -ELOOP;
	n = readlinkat(w->cur, name, target, sizeof(target));
	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(target))
		return -ENAMETOOLONG;
	target[n] = '\0';
	if (n == 0)
		return -ENOENT;
	if (target[0] == '/')
		return -EXDEV;
	rest = w->todo + w->pos;
	need = (size_t)n + 1 + strlen(rest) + 1;
	if (need > RES_TODO_MAX)
		return -ENAMETOOLONG;
	nt = malloc(need);
	if (!nt)
		return -ENOMEM;
	/* No '/' when nothing follows: it would demand a directory. */
	snprintf(nt, need, "%s%s%s", target, rest[0] ? "/" : "", rest);
	free(w->todo);
	w->todo = nt;
	w->pos = 0;
	return 0;
}

/* The final component: an fd (>= 0), 1 to go on (a symlink was spliced),
 * or -errno. */
static int walk_last(struct walk *w, const char *name, bool trailing_slash,
		     int flags, mode_t mode)
{
	bool follow = !(flags & O_NOFOLLOW) &&
		      (flags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL);
	int fl = flags | O_CLOEXEC | O_NOFOLLOW;
	struct stat st;
	int fd, e, r;

	if (trailing_slash && !(flags & O_CREAT))
		fl |= O_DIRECTORY;
	fd = openat(w->cur, name, fl, mode);
	if (fd >= 0) {
		/* O_PATH|O_NOFOLLOW opens a symlink itself. */
		if (follow && (flags & O_PATH) && fstat(fd, &st) == 0 &&
		    S_ISLNK(st.st_mode)) {
			close(fd);
			r = walk_follow(w, name);
			return r < 0 ? r : 1;
		}
		return fd;
	}
	e = errno;
	if (follow && is_symlink_at(w->cur, name)) {
		r = walk_follow(w, name);
		return r < 0 ? r : 1;
	}
	return -e;
}

int resolve_open_walk(int dirfd, const char *path, int flags, mode_t mode,
		      uint64_t resolve)
{
	char name[NAME_MAX + 1];
	struct walk w;
	bool slash;
	int r, fd;

	if (resolve & ~(uint64_t)RES_SUPPORTED)
		return -ENOSYS;
	if (!path)
		return -EFAULT;
	if (!path[0])
		return -ENOENT;
	if (path[0] == '/')
		return -EXDEV;
	memset(&w, 0, sizeof(w));
	w.root = dirfd;
	w.resolve = resolve;
	w.cur = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (w.cur < 0)
		return -errno;
	w.todo = strdup(path);
	w.canon = malloc(RES_CANON_MAX);
	if (!w.todo || !w.canon) {
		r = -ENOMEM;
		goto out;
	}
	w.canon[0] = '\0';
	for (;;) {
		r = next_comp(&w, name, &slash);
		if (r < 0)
			break;
		if (r == 0) {
			/* "", ".", "a/..": the directory reached itself. */
			fd = openat(w.cur, ".", flags | O_CLOEXEC, mode);
			r = fd < 0 ? -errno : fd;
			break;
		}
		if (strcmp(name, "..") == 0) {
			r = canon_pop(&w);
			if (r < 0)
				break;
			continue;
		}
		if (!more_comps(&w)) {
			r = walk_last(&w, name, slash, flags, mode);
			if (r == 1)
				continue;
			break;
		}
		fd = openat(w.cur, name,
			    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			r = canon_push(&w, name);
			close(w.cur);
			w.cur = fd;
			if (r < 0)
				break;
			continue;
		}
		r = -errno;
		if ((r == -ENOTDIR || r == -ELOOP) &&
		    is_symlink_at(w.cur, name)) {
			r = walk_follow(&w, name);
			if (r < 0)
				break;
			continue;
		}
		break;
	}
out:
	if (w.cur >= 0)
		close(w.cur);
	free(w.todo);
	free(w.canon);
	return r;
}

int resolve_open(int dirfd, const char *path, int flags, mode_t mode,
		 uint64_t resolve)
{
	struct open_how how;
	long r = -1;
	int i;

	if (atomic_load_explicit(&res_no_openat2, memory_order_relaxed))
		return resolve_open_walk(dirfd, path, flags, mode, resolve);
	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.mode = (flags & O_CREAT) ? mode : 0;
	how.resolve = resolve;
	for (i = 0; i < 16; i++) {
		r = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		if (r >= 0 || (errno != EAGAIN && errno != EINTR))
			break;
	}
	if (r >= 0)
		return (int)r;
	if (errno == ENOSYS) {
		atomic_store(&res_no_openat2, true);
		return resolve_open_walk(dirfd, path, flags, mode, resolve);
	}
	return -errno;
}
