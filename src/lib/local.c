/*
 * local.c - the local backend: sandboxes as directories on this machine.
 *
 * Layout (the Python NoxRunner client's local mode, so both see the same
 * sandboxes):
 *
 *	BASE/noxrunner_sandbox_<id>/			the sandbox directory
 *	BASE/noxrunner_sandbox_<id>/workspace/		its /workspace
 *	BASE/noxrunner_sandbox_<id>/nox-state.json	our state (outside
 *							the workspace)
 *
 * Confinement.  The base directory is trusted configuration (resolved once
 * with realpath and held as an O_PATH fd).  Everything below it is not:
 * the sandbox and workspace directories are opened with
 * openat(O_NOFOLLOW|O_DIRECTORY), so a symlink planted at either name is
 * an error, and they must be owned by our effective uid (a directory
 * someone else planted in a shared /tmp is refused with EACCES and not
 * listed).  Inside the workspace every path is resolved by openat2 with
 * RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS: symlinks inside the workspace are
 * followed where POSIX follows them, any escape fails with EXDEV.
 * Operations on a final component that must not follow it (lstat, unlink,
 * rename, mkdir, create...) resolve its parent that way and then use the
 * *at call on the single base name.  Paths reach us validated by
 * backend.c (no "..", no leading '/').
 *
 * State rules (nox-state.json, {"ttlSeconds", "expiresAt", "podName",
 * "createdAt"}, written to a per-thread temp name and renamed into place):
 *  - create writes it with expiresAt = now + ttl (keeping an existing
 *    createdAt); touch rewrites it with expiresAt = now + the stored ttl.
 *  - A state file is valid when it is a JSON object with an integer
 *    ttlSeconds in 1..LSTATE_TTL_MAX and a parseable UTC expiresAt.
 *  - A sandbox directory with no state file (made by the Python client) or
 *    with an invalid one is a live sandbox with ttl 900, podName
 *    "local-<id>" and expiresAt = now + ttl, computed at each info and
 *    never written by info.  It is never reaped until create or touch
 *    writes a valid state: reaping deletes data, so it needs positive
 *    evidence of expiry.
 *  - The library never reaps on its own; nox_local_reap_expired()
 *    (local_i.h) is for the long-running owner (noxd).
 *
 * Deletion first renames the sandbox directory to a hidden tombstone name
 * in BASE (so it vanishes atomically from listings and a new create with
 * the same id starts fresh), then removes the tree with an fd-relative
 * walk that never follows a symlink.  Trees deeper than RM_MAX_DEPTH are
 * flattened by moving deep directories up, so fd use stays bounded.
 * Tombstones named TOMB_PREFIX<id>.<pid>.<tid>; one left by a process that
 * died mid-delete is removed by the next nox_local_reap_expired().
 *
 * Where openat2 is missing (Linux < 5.6, or under valgrind 3.19, which
 * answers ENOSYS) resolve.c does the same confinement with an
 * openat(O_NOFOLLOW) walk, one component at a time; symlinks inside the
 * workspace are still followed where POSIX follows them, absolute ones and
 * escapes are refused with EXDEV.
 *
 * Limits: a tree being filled while it is deleted
 * may need several passes (bounded); state writes are not fsynced (a crash
 * can lose a touch, never corrupt the file).  No global state: every call
 * opens what it needs, all fds are O_CLOEXEC, and the handle is read-only
 * after construction, so calls are safe from many threads.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/openat2.h>

#include <json-c/json.h>

#include <nox/backend.h>
#include <nox/id.h>
#include <nox/tar.h>

#include "array_i.h"
#include "backend_i.h"
#include "fdio_i.h"
#include "local_i.h"
#include "resolve_i.h"
#include "sbx_exec_i.h"

/* Kernel headers before 6.6 lack it; the number is the same on every
 * architecture using the unified table (all but alpha). */
#if !defined(SYS_fchmodat2) && !defined(__alpha__)
#define SYS_fchmodat2 452
#endif

#define SBX_PREFIX	 "noxrunner_sandbox_"
#define WS_NAME		 "workspace"
#define STATE_NAME	 "nox-state.json"
#define TOMB_PREFIX	 ".noxrunner_deleting_"
#define LSTATE_TTL_MAX	 (10L * 366 * 24 * 3600) /* ten years */
#define LSTATE_MAX_BYTES 65536
#define RM_MAX_DEPTH	 32
#define RM_MAX_PASSES	 64
#define RESOLVE_WS	 (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)

struct local {
	struct nox_backend base; /* first: the vtable */
	int basefd;		 /* O_PATH|O_DIRECTORY of base_path */
	char *base_path;	 /* realpath of the base directory */
	char *bwrap_path;	 /* NULL: "bwrap" from PATH */
	struct sbx_exec_opts xo; /* bwrap_path points at ours */
	uid_t uid;		 /* owner required below BASE */
};

/* What we know about one sandbox's expiry. */
struct lstate {
	bool present; /* a valid state file was read */
	long ttl;
	time_t expires;
	time_t created; /* 0: unknown */
	char pod[256];
};

static struct local *to_local(struct nox_backend *b)
{
	return (struct local *)b;
}

static const char *errstr(int e)
{
	const char *s = strerrordesc_np(e);

	return s ? s : "unknown error";
}

/* Records -e (e > 0) with "op 'path': strerror". */
static int sys_err(struct nox_err *err, int e, const char *op, const char *path)
{
	return nox_err_set(err, e, "%s '%s': %s", op, path, errstr(e));
}

/* ---- low-level helpers ------------------------------------------------ */

/* openat2 with O_CLOEXEC, or its fallback walk where the kernel (or
 * valgrind) lacks it: see resolve.c.  Returns an fd or -errno. */
static int ws_openat2(int dirfd, const char *path, int flags, mode_t mode,
		      uint64_t resolve)
{
	return resolve_open(dirfd, path, flags, mode, resolve);
}

/* Message for an openat2 failure on a workspace path. */
static int resolve_err(struct nox_err *err, int e, const char *op,
		       const char *path)
{
	if (e == EXDEV)
		return nox_err_set(err, EXDEV,
				   "%s '%s': path escapes the workspace", op,
				   path);
	if (e == ENOSYS)
		return nox_err_set(err, ENOSYS,
				   "%s '%s': path resolution not supported "
				   "here",
				   op, path);
	return sys_err(err, e, op, path);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void sbx_name(char *buf, size_t sz, const char *id)
{
	snprintf(buf, sz, SBX_PREFIX "%s", id);
}

/* A directory below BASE: real directory (not a symlink), ours. */
static int check_dir_fd(const struct local *l, int fd, const char *what,
			const char *id, struct nox_err *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return nox_err_set(err, errno, "sandbox '%s': fstat %s: %s", id,
				   what, errstr(errno));
	if (!S_ISDIR(st.st_mode))
		return nox_err_set(err, ENOTDIR,
				   "sandbox '%s': %s is not a directory", id,
				   what);
	if (st.st_uid != l->uid)
		return nox_err_set(err, EACCES,
				   "sandbox '%s': %s is owned by uid %u, not "
				   "by us (uid %u); refused",
				   id, what, (unsigned)st.st_uid,
				   (unsigned)l->uid);
	return 0;
}

/* openat(O_PATH|O_DIRECTORY|O_NOFOLLOW) of name in dirfd, checked. */
static int open_dir_nofollow(const struct local *l, int dirfd, const char *name,
			     const char *what, const char *id,
			     struct nox_err *err)
{
	int fd, r;

	fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		if (e == ENOENT)
			return nox_err_set(
			    err, ENOENT, "sandbox '%s' does not exist (no %s)",
			    id, what);
		if (e == ELOOP || e == ENOTDIR)
			return nox_err_set(err, e,
					   "sandbox '%s': %s is a symlink or "
					   "not a directory; refused",
					   id, what);
		return nox_err_set(err, e, "sandbox '%s': open %s: %s", id,
				   what, errstr(e));
	}
	r = check_dir_fd(l, fd, what, id, err);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* The sandbox directory: O_PATH fd or -errno (-ENOENT if unknown). */
static int sbx_open(const struct local *l, const char *id, struct nox_err *err)
{
	char name[sizeof(SBX_PREFIX) + NOX_ID_MAX];

	sbx_name(name, sizeof(name), id);
	return open_dir_nofollow(l, l->basefd, name, "sandbox directory", id,
				 err);
}

/* The workspace directory: O_PATH fd or -errno. */
static int ws_open(const struct local *l, const char *id, struct nox_err *err)
{
	int sfd, fd;

	sfd = sbx_open(l, id, err);
	if (sfd < 0)
		return sfd;
	fd = open_dir_nofollow(l, sfd, WS_NAME, "workspace directory", id, err);
	close(sfd);
	return fd;
}

/* "" and "." both name the workspace root. */
static bool is_root(const char *path)
{
	return path[0] == '\0' || strcmp(path, ".") == 0;
}

/*
 * A resolved final component: dir is an O_PATH fd of its parent (owned),
 * name the base name.  For the workspace root, dir is the sandbox
 * directory and name "workspace", with root set.
 */
struct at {
	int dir;
	const char *name;
	bool root;
	char buf[PATH_MAX];
};

static void at_close(struct at *a)
{
	close_fd(&a->dir);
}

static int at_resolve(const struct local *l, const char *id, const char *path,
		      const char *op, struct at *a, struct nox_err *err)
{
	char *slash;
	int wsfd, fd;

	a->dir = -1;
	a->root = is_root(path);
	if (a->root) {
		/* The workspace must exist and be ours, as for any path. */
		wsfd = ws_open(l, id, err);
		if (wsfd < 0)
			return wsfd;
		close(wsfd);
		fd = sbx_open(l, id, err);
		if (fd < 0)
			return fd;
		a->dir = fd;
		a->name = WS_NAME;
		return 0;
	}
	if (snprintf(a->buf, sizeof(a->buf), "%s", path) >= (int)sizeof(a->buf))
		return nox_err_set(err, ENAMETOOLONG, "%s: path too long", op);
	wsfd = ws_open(l, id, err);
	if (wsfd < 0)
		return wsfd;
	slash = strrchr(a->buf, '/');
	if (!slash) {
		a->dir = wsfd;
		a->name = a->buf;
		return 0;
	}
	*slash = '\0';
	a->name = slash + 1;
	fd = ws_openat2(wsfd, a->buf, O_PATH | O_DIRECTORY, 0, RESOLVE_WS);
	close(wsfd);
	if (fd < 0)
		return resolve_err(err, -fd, op, path);
	a->dir = fd;
	return 0;
}

/* Opens path itself (symlinks inside the workspace followed). */
static int ws_open_path(const struct local *l, const char *id, const char *path,
			int flags, const char *op, struct nox_err *err)
{
	int wsfd, fd;

	wsfd = ws_open(l, id, err);
	if (wsfd < 0)
		return wsfd;
	fd = ws_openat2(wsfd, is_root(path) ? "." : path, flags, 0, RESOLVE_WS);
	close(wsfd);
	if (fd < 0)
		return resolve_err(err, -fd, op, path);
	return fd;
}

/* ---- time and state --------------------------------------------------- */

static void iso_format(time_t t, char *buf, size_t sz)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) ||
	    strftime(buf, sz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, sz, "1970-01-01T00:00:00Z");
}

/* "YYYY-MM-DDTHH:MM:SS[.frac](Z|+00:00)"; 0 or -1. */
static int iso_parse(const char *s, time_t *out)
{
	int y, mo, d, h, mi, sec, n = -1;
	struct tm tm;
	const char *p;
	time_t t;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
		   &n) != 6 ||
	    n < 0)
		return -1;
	p = s + n;
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
		return -1;
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
	    h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*out = t;
	return 0;
}

static void lstate_default(struct lstate *s, const char *id, time_t now)
{
	memset(s, 0, sizeof(*s));
	s->ttl = NOX_DEFAULT_TTL;
	s->expires = now + s->ttl;
	snprintf(s->pod, sizeof(s->pod), "local-%s", id);
}

/* Parses text into s (already defaulted); true when valid. */
static bool lstate_parse(const char *text, struct lstate *s)
{
	struct json_object *o, *v;
	time_t exp, cr;
	int64_t ttl;
	bool ok = false;

	o = json_tokener_parse(text);
	if (!o || !json_object_is_type(o, json_type_object))
		goto out;
	if (!json_object_object_get_ex(o, "ttlSeconds", &v) ||
	    !json_object_is_type(v, json_type_int))
		goto out;
	ttl = json_object_get_int64(v);
	if (ttl < 1 || ttl > LSTATE_TTL_MAX)
		goto out;
	if (!json_object_object_get_ex(o, "expiresAt", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    iso_parse(json_object_get_string(v), &exp) < 0)
		goto out;
	s->ttl = (long)ttl;
	s->expires = exp;
	if (json_object_object_get_ex(o, "podName", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    json_object_get_string_len(v) > 0 &&
	    (size_t)json_object_get_string_len(v) < sizeof(s->pod))
		snprintf(s->pod, sizeof(s->pod), "%s",
			 json_object_get_string(v));
	if (json_object_object_get_ex(o, "createdAt", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    iso_parse(json_object_get_string(v), &cr) == 0)
		s->created = cr;
	s->present = true;
	ok = true;
out:
	json_object_put(o);
	return ok;
}

/* Reads the state of the sandbox open as sfd; never fails: a missing or
 * invalid file gives the defaults with present false. */
static void lstate_read(int sfd, const char *id, time_t now, struct lstate *s)
{
	char *buf = NULL;
	struct stat st;
	size_t got = 0;
	ssize_t n;
	int fd;

	lstate_default(s, id, now);
	fd = openat(sfd, STATE_NAME,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > LSTATE_MAX_BYTES)
		goto out;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		goto out;
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	if (!lstate_parse(buf, s))
		lstate_default(s, id, now);
out:
	free(buf);
	close(fd);
}

/* Writes s as the state of the sandbox open as sfd: temp file + rename. */
static int lstate_write(int sfd, const char *id, const struct lstate *s,
			struct nox_err *err)
{
	char tmp[96], exp[64], cr[64];
	struct json_object *o;
	const char *text;
	int fd = -1, r, i, e;

	iso_format(s->expires, exp, sizeof(exp));
	iso_format(s->created, cr, sizeof(cr));
	o = json_object_new_object();
	if (!o)
		return nox_err_set(err, ENOMEM, "sandbox '%s': state", id);
	json_object_object_add(o, "ttlSeconds", json_object_new_int64(s->ttl));
	json_object_object_add(o, "expiresAt", json_object_new_string(exp));
	json_object_object_add(o, "podName", json_object_new_string(s->pod));
	json_object_object_add(o, "createdAt", json_object_new_string(cr));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (!text) {
		r = nox_err_set(err, ENOMEM, "sandbox '%s': state", id);
		goto out;
	}
	/* pid + tid: unique among concurrent writers on this machine. */
	snprintf(tmp, sizeof(tmp), "." STATE_NAME ".%ld.%ld.tmp",
		 (long)getpid(), (long)gettid());
	for (i = 0; i < 2; i++) {
		fd = openat(
		    sfd, tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd >= 0 || errno != EEXIST)
			break;
		unlinkat(sfd, tmp, 0); /* left by a crashed writer */
	}
	if (fd < 0) {
		e = i == 2 ? EEXIST : errno;
		r = nox_err_set(err, e, "sandbox '%s': write state: %s", id,
				errstr(e));
		goto out;
	}
	r = fdio_write_all(fd, text, strlen(text));
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(sfd, tmp, sfd, STATE_NAME) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(sfd, tmp, 0);
		r = nox_err_set(err, -r, "sandbox '%s': write state: %s", id,
				errstr(-r));
	}
out:
	json_object_put(o);
	return r;
}

static void lstate_to_info(const struct lstate *s,
			   struct nox_sandbox_info *info)
{
	snprintf(info->pod_name, sizeof(info->pod_name), "%s", s->pod);
	iso_format(s->expires, info->expires_at, sizeof(info->expires_at));
	info->ttl_seconds = s->ttl;
}

/* ---- recursive removal, never following symlinks ----------------------- */

struct rm_ctx {
	int topfd;     /* O_PATH fd of the tree's top directory */
	unsigned seq;  /* names for flattened directories */
	int first_err; /* first negative errno seen, 0 if none */
	bool moved;    /* something was moved up: another pass */
};

static void rm_note(struct rm_ctx *c, int e)
{
	if (c->first_err == 0)
		c->first_err = -e;
}

static void rm_dir_contents(struct rm_ctx *c, int fd, unsigned depth);

/* Removes entry name of the directory pfd (depth is pfd's depth). */
static void rm_entry(struct rm_ctx *c, int pfd, const char *name,
		     unsigned char type, unsigned depth)
{
	char tmp[64];
	struct stat st;
	bool isdir;
	int fd, i;

	if (type == DT_UNKNOWN) {
		if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				rm_note(c, errno);
			return;
		}
		isdir = S_ISDIR(st.st_mode);
	} else {
		isdir = type == DT_DIR;
	}
	if (!isdir) {
		if (unlinkat(pfd, name, 0) == 0 || errno == ENOENT)
			return;
		if (errno != EISDIR) {
			rm_note(c, errno);
			return;
		}
		/* Replaced by a directory since readdir: fall through. */
	}
	if (depth + 1 >= RM_MAX_DEPTH) {
		/* Too deep to hold another fd: move it up to the top. */
		for (i = 0; i < 1000; i++) {
			snprintf(tmp, sizeof(tmp), ".nox-rm-%u", c->seq++);
			if (renameat2(pfd, name, c->topfd, tmp,
				      RENAME_NOREPLACE) == 0) {
				c->moved = true;
				return;
			}
			if (errno != EEXIST)
				break;
		}
		rm_note(c, errno);
		return;
	}
	fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES &&
	    fchmodat(pfd, name, 0700, AT_SYMLINK_NOFOLLOW) == 0)
		fd = openat(pfd, name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			rm_note(c, errno);
		return;
	}
	/* We own it (it is below our sandbox directory): make it
	 * writable so its entries can go. */
	if (fstat(fd, &st) == 0 && (st.st_mode & 0700) != 0700)
		fchmod(fd, (st.st_mode & 07777) | 0700);
	rm_dir_contents(c, fd, depth + 1);
	if (unlinkat(pfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rm_note(c, errno);
}

/* Removes the entries of the directory open (O_RDONLY) as fd; takes fd. */
static void rm_dir_contents(struct rm_ctx *c, int fd, unsigned depth)
{
	struct dirent *de;
	DIR *d;

	d = fdopendir(fd);
	if (!d) {
		rm_note(c, errno);
		close(fd);
		return;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				rm_note(c, errno);
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		rm_entry(c, dirfd(d), de->d_name, de->d_type, depth);
	}
	closedir(d);
}

/* rm -rf of the directory name in dirfd, never following symlinks. */
static int rm_tree(int dirfd, const char *name)
{
	struct rm_ctx c;
	int fd, pass;

	memset(&c, 0, sizeof(c));
	c.topfd =
	    openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (c.topfd < 0)
		return -errno;
	for (pass = 0; pass < RM_MAX_PASSES; pass++) {
		c.moved = false;
		c.first_err = 0;
		fd = openat(c.topfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			c.first_err = -errno;
			break;
		}
		rm_dir_contents(&c, fd, 0);
		if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0) {
			c.first_err = 0;
			break;
		}
		if (errno != ENOTEMPTY && errno != EEXIST) {
			c.first_err = -errno;
			break;
		}
		if (c.first_err < 0 && !c.moved)
			break; /* stuck on a real error */
		c.first_err = -ENOTEMPTY;
	}
	close(c.topfd);
	return c.first_err;
}

/* Moves sandbox dir name out of the way, then removes it.  The tombstone
 * name starts with '.', so no client lists it. */
static int sbx_remove(struct local *l, const char *id, const char *name,
		      struct nox_err *err)
{
	char tomb[sizeof(TOMB_PREFIX) + NOX_ID_MAX + 64];
	int r;

	snprintf(tomb, sizeof(tomb), TOMB_PREFIX "%s.%ld.%ld", id,
		 (long)getpid(), (long)gettid());
	if (renameat2(l->basefd, name, l->basefd, tomb, RENAME_NOREPLACE) < 0) {
		r = errno;
		if (r == EEXIST) {
			/* A tombstone left by a crashed delete. */
			rm_tree(l->basefd, tomb);
			if (renameat2(l->basefd, name, l->basefd, tomb,
				      RENAME_NOREPLACE) == 0)
				goto walk;
			r = errno;
		}
		if (r == ENOENT)
			return nox_err_set(err, ENOENT,
					   "sandbox '%s' does not exist", id);
		return nox_err_set(err, r, "delete sandbox '%s': %s", id,
				   errstr(r));
	}
walk:
	r = rm_tree(l->basefd, tomb);
	if (r < 0)
		return nox_err_set(err, -r,
				   "delete sandbox '%s': removing %s/%s: %s",
				   id, l->base_path, tomb, errstr(-r));
	return 0;
}

/* ---- v1 operations ---------------------------------------------------- */

static int local_health(struct nox_backend *b, struct nox_err *err)
{
	struct local *l = to_local(b);
	struct stat st;

	if (fstat(l->basefd, &st) < 0 || !S_ISDIR(st.st_mode))
		return nox_err_set(err, errno ? errno : ENOTDIR,
				   "base directory %s is not accessible",
				   l->base_path);
	if (faccessat(l->basefd, ".", W_OK | X_OK, AT_EACCESS) < 0)
		return nox_err_set(err, errno,
				   "base directory %s is not writable: %s",
				   l->base_path, errstr(errno));
	return 0;
}

static int local_create(struct nox_backend *b, const char *id,
			const struct nox_create_opts *opts,
			struct nox_sandbox_info *info, struct nox_err *err)
{
	struct local *l = to_local(b);
	char name[sizeof(SBX_PREFIX) + NOX_ID_MAX];
	struct lstate s;
	time_t now = time(NULL);
	long ttl = opts->ttl_seconds ? opts->ttl_seconds : NOX_DEFAULT_TTL;
	int sfd, wsfd, r;

	if (ttl < 1 || ttl > LSTATE_TTL_MAX)
		return nox_err_set(err, EINVAL,
				   "sandbox '%s': ttl %ld out of range 1..%ld",
				   id, ttl, LSTATE_TTL_MAX);
	sbx_name(name, sizeof(name), id);
	if (mkdirat(l->basefd, name, 0755) < 0 && errno != EEXIST)
		return nox_err_set(err, errno, "create sandbox '%s': mkdir: %s",
				   id, errstr(errno));
	sfd = sbx_open(l, id, err);
	if (sfd < 0)
		return sfd;
	if (mkdirat(sfd, WS_NAME, 0755) < 0 && errno != EEXIST) {
		r = nox_err_set(err, errno,
				"create sandbox '%s': mkdir workspace: %s", id,
				errstr(errno));
		goto out;
	}
	wsfd =
	    open_dir_nofollow(l, sfd, WS_NAME, "workspace directory", id, err);
	if (wsfd < 0) {
		r = wsfd;
		goto out;
	}
	close(wsfd);
	lstate_read(sfd, id, now, &s);
	if (!s.present || s.created == 0)
		s.created = now;
	s.ttl = ttl;
	s.expires = now + ttl;
	r = lstate_write(sfd, id, &s, err);
	if (r == 0)
		lstate_to_info(&s, info);
out:
	close(sfd);
	return r;
}

static int local_touch(struct nox_backend *b, const char *id,
		       struct nox_err *err)
{
	struct local *l = to_local(b);
	struct lstate s;
	time_t now = time(NULL);
	int sfd, r;

	sfd = sbx_open(l, id, err);
	if (sfd < 0)
		return sfd;
	lstate_read(sfd, id, now, &s);
	if (!s.present)
		s.created = now;
	s.expires = now + s.ttl;
	r = lstate_write(sfd, id, &s, err);
	close(sfd);
	return r;
}

static int local_info(struct nox_backend *b, const char *id,
		      struct nox_sandbox_info *info, struct nox_err *err)
{
	struct local *l = to_local(b);
	struct lstate s;
	int sfd;

	sfd = sbx_open(l, id, err);
	if (sfd < 0)
		return sfd;
	lstate_read(sfd, id, time(NULL), &s);
	close(sfd);
	lstate_to_info(&s, info);
	return 0;
}

static int local_del(struct nox_backend *b, const char *id, struct nox_err *err)
{
	struct local *l = to_local(b);
	char name[sizeof(SBX_PREFIX) + NOX_ID_MAX];
	int sfd;

	/* Refuses a planted symlink or someone else's directory. */
	sfd = sbx_open(l, id, err);
	if (sfd < 0)
		return sfd;
	close(sfd);
	sbx_name(name, sizeof(name), id);
	return sbx_remove(l, id, name, err);
}

/* Calls fn(id, ud) for each of our sandbox directories in BASE. */
static int sbx_walk(struct local *l, int (*fn)(const char *id, void *ud),
		    void *ud, struct nox_err *err)
{
	const size_t plen = strlen(SBX_PREFIX);
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, r = 0;

	fd = openat(l->basefd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return nox_err_set(err, errno, "list %s: %s", l->base_path,
				   errstr(errno));
	d = fdopendir(fd);
	if (!d) {
		r = nox_err_set(err, errno, "list %s: %s", l->base_path,
				errstr(errno));
		close(fd);
		return r;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				r = nox_err_set(err, errno, "list %s: %s",
						l->base_path, errstr(errno));
			break;
		}
		if (strncmp(de->d_name, SBX_PREFIX, plen) != 0 ||
		    nox_id_validate(de->d_name + plen, NULL) < 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) <
			0 ||
		    !S_ISDIR(st.st_mode) || st.st_uid != l->uid)
			continue;
		r = fn(de->d_name + plen, ud);
		if (r != 0)
			break;
	}
	closedir(d);
	return r;
}

static int local_list_sandboxes(struct nox_backend *b, nox_sandbox_cb cb,
				void *ud, struct nox_err *err)
{
	return sbx_walk(to_local(b), cb, ud, err);
}

/* A workspace-relative form of sandbox path spath (NULL: /workspace). */
static int sandbox_rel(const char *spath, char *rel, size_t relsz,
		       struct nox_err *err)
{
	return nox_path_from_sandbox(spath ? spath : NOX_WORKSPACE, rel, relsz,
				     err);
}

static int local_upload(struct nox_backend *b, const char *id, const char *dest,
			int tar_fd, long answer_ms, struct nox_err *err)
{
	struct local *l = to_local(b);

	(void)answer_ms; /* no wire: nothing waits for an answer */
	char rel[PATH_MAX];
	char *comp, *next;
	int cur, fd, r;

	r = sandbox_rel(dest, rel, sizeof(rel), err);
	if (r < 0)
		return r;
	cur = ws_open(l, id, err);
	if (cur < 0)
		return cur;
	/* Each component made and entered in turn, refusing symlinks. */
	for (comp = rel; *comp; comp = next) {
		next = strchr(comp, '/');
		if (next)
			*next++ = '\0';
		else
			next = comp + strlen(comp);
		if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST) {
			r = sys_err(err, errno, "upload: mkdir", comp);
			goto out;
		}
		fd = ws_openat2(cur, comp, O_PATH | O_DIRECTORY, 0,
				RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS);
		if (fd < 0) {
			r = resolve_err(err, -fd, "upload: open", comp);
			goto out;
		}
		close(cur);
		cur = fd;
	}
	fd = ws_openat2(cur, ".", O_RDONLY | O_DIRECTORY, 0, RESOLVE_WS);
	if (fd < 0) {
		r = resolve_err(err, -fd, "upload: open", dest ? dest : "");
		goto out;
	}
	close(cur);
	cur = fd;
	r = nox_tar_extract(tar_fd, cur, NULL, err);
	if (r < 0)
		nox_err_wrap(err, r, "upload to sandbox '%s' %s", id,
			     dest ? dest : NOX_WORKSPACE);
out:
	close(cur);
	return r;
}

static int local_download(struct nox_backend *b, const char *id,
			  const char *src, int out_fd, struct nox_err *err)
{
	struct local *l = to_local(b);
	char rel[PATH_MAX];
	struct stat st;
	struct at a;
	int fd, r;

	r = sandbox_rel(src, rel, sizeof(rel), err);
	if (r < 0)
		return r;
	if (is_root(rel)) {
		fd = ws_open_path(l, id, "", O_RDONLY | O_DIRECTORY, "download",
				  err);
		if (fd < 0)
			return fd;
		r = nox_tar_pack(out_fd, fd, "", NULL, err);
		close(fd);
		return r;
	}
	/* The tar module sees only the parent and one base name, so no
	 * symlink in rel can lead it outside. */
	r = at_resolve(l, id, rel, "download", &a, err);
	if (r < 0)
		return r;
	if (fstatat(a.dir, a.name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = sys_err(err, errno, "download", rel);
		goto out;
	}
	fd = ws_openat2(a.dir, ".", O_RDONLY | O_DIRECTORY, 0, RESOLVE_WS);
	if (fd < 0) {
		r = resolve_err(err, -fd, "download", rel);
		goto out;
	}
	r = nox_tar_pack(out_fd, fd, a.name, NULL, err);
	close(fd);
out:
	at_close(&a);
	return r;
}

static int local_exec(struct nox_backend *b, const char *id,
		      const struct nox_exec_req *req,
		      struct nox_exec_result *res, struct nox_err *err)
{
	struct local *l = to_local(b);
	char ws[PATH_MAX];
	int fd;

	fd = ws_open(l, id, err);
	if (fd < 0)
		return fd;
	close(fd);
	if (snprintf(ws, sizeof(ws), "%s/" SBX_PREFIX "%s/" WS_NAME,
		     l->base_path, id) >= (int)sizeof(ws))
		return nox_err_set(err, ENAMETOOLONG,
				   "sandbox '%s': workspace path too long", id);
	return sbx_exec_run(&l->xo, ws, req, res, err);
}

/* ---- file-level operations -------------------------------------------- */

static int local_stat(struct nox_backend *b, const char *id, const char *path,
		      struct stat *st, struct nox_err *err)
{
	struct at a;
	int r;

	r = at_resolve(to_local(b), id, path, "stat", &a, err);
	if (r < 0)
		return r;
	if (fstatat(a.dir, a.name, st, AT_SYMLINK_NOFOLLOW) < 0)
		r = sys_err(err, errno, "stat", path);
	at_close(&a);
	return r;
}

static int local_list(struct nox_backend *b, const char *id, const char *path,
		      nox_list_cb cb, void *ud, struct nox_err *err)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, r = 0;

	fd = ws_open_path(to_local(b), id, path, O_RDONLY | O_DIRECTORY, "list",
			  err);
	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		r = sys_err(err, errno, "list", path);
		close(fd);
		return r;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				r = sys_err(err, errno, "list", path);
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		/* Gone since readdir: not an entry any more. */
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		r = cb(de->d_name, &st, ud);
		if (r != 0)
			break;
	}
	closedir(d);
	return r;
}

static ssize_t local_read(struct nox_backend *b, const char *id,
			  const char *path, off_t off, void *buf, size_t len,
			  struct nox_err *err)
{
	size_t got = 0;
	ssize_t n, r = 0;
	int fd;

	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	fd = ws_open_path(to_local(b), id, path,
			  O_RDONLY | O_NONBLOCK | O_NOCTTY, "read", err);
	if (fd < 0)
		return fd;
	/* Whole buffer unless EOF: short reads only at the end. */
	while (got < len) {
		n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (got == 0)
				r = sys_err(err, errno, "read", path);
			break;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	return r < 0 ? r : (ssize_t)got;
}

static ssize_t local_write(struct nox_backend *b, const char *id,
			   const char *path, off_t off, const void *buf,
			   size_t len, struct nox_err *err)
{
	size_t done = 0;
	ssize_t n, r = 0;
	int fd;

	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	fd = ws_open_path(to_local(b), id, path,
			  O_WRONLY | O_NONBLOCK | O_NOCTTY, "write", err);
	if (fd < 0)
		return fd;
	while (done < len) {
		n = pwrite(fd, (const char *)buf + done, len - done,
			   off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (done == 0)
				r = sys_err(err, errno, "write", path);
			break;
		}
		done += (size_t)n;
	}
	close(fd);
	return r < 0 ? r : (ssize_t)done;
}

/* chmod of what the O_PATH fd names; 0 or -errno. */
static int fd_chmod(int fd, mode_t mode)
{
	char proc[64];

#ifdef SYS_fchmodat2
	if (syscall(SYS_fchmodat2, fd, "", mode & 07777, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOSYS && errno != EINVAL)
		return -errno;
#endif
	/* Older kernels: the fd's /proc magic link names exactly it. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return chmod(proc, mode & 07777) < 0 ? -errno : 0;
}

/*
 * Modes of what createfile and mkdir make are exactly the mode asked for:
 * the caller (the FUSE layer) has applied the user's umask already, and
 * the daemon's own umask must not strip more.
 */
static int local_createfile(struct nox_backend *b, const char *id,
			    const char *path, mode_t mode, bool excl,
			    struct nox_err *err)
{
	const int fl =
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	struct stat st;
	struct at a;
	int fd, r;

	r = at_resolve(to_local(b), id, path, "create", &a, err);
	if (r < 0)
		return r;
	if (a.root) {
		r = nox_err_set(err, excl ? EEXIST : EISDIR,
				"create '%s': the workspace root", path);
		goto out;
	}
	/* O_RDONLY: create or ensure, never truncate; O_NOFOLLOW: an
	 * existing symlink there is refused (ELOOP), not followed. */
	fd = openat(a.dir, a.name, fl | O_CREAT | O_EXCL, mode & 07777);
	if (fd >= 0) {
		if (fstat(fd, &st) == 0 &&
		    (st.st_mode & 07777) != (mode & 07777) &&
		    fchmod(fd, mode & 07777) < 0)
			r = sys_err(err, errno, "create: chmod", path);
		close(fd);
		goto out;
	}
	if (errno != EEXIST || excl) {
		r = sys_err(err, errno, "create", path);
		goto out;
	}
	/* It exists: fine if it is a regular file (left as it is). */
	fd = openat(a.dir, a.name, fl);
	if (fd < 0) {
		r = sys_err(err, errno == ENOENT ? EAGAIN : errno, "create",
			    path);
		goto out;
	}
	if (fstat(fd, &st) < 0)
		r = sys_err(err, errno, "create", path);
	else if (S_ISDIR(st.st_mode))
		r = sys_err(err, EISDIR, "create", path);
	close(fd);
out:
	at_close(&a);
	return r;
}

static int local_truncate(struct nox_backend *b, const char *id,
			  const char *path, off_t size, struct nox_err *err)
{
	int fd, r = 0;

	fd = ws_open_path(to_local(b), id, path,
			  O_WRONLY | O_NONBLOCK | O_NOCTTY, "truncate", err);
	if (fd < 0)
		return fd;
	if (ftruncate(fd, size) < 0)
		r = sys_err(err, errno, "truncate", path);
	close(fd);
	return r;
}

static int local_mkdir(struct nox_backend *b, const char *id, const char *path,
		       mode_t mode, struct nox_err *err)
{
	struct stat st;
	struct at a;
	mode_t want;
	int fd, r;

	r = at_resolve(to_local(b), id, path, "mkdir", &a, err);
	if (r < 0)
		return r;
	if (a.root) {
		r = nox_err_set(err, EEXIST, "mkdir '%s': the workspace root",
				path);
		goto out;
	}
	if (mkdirat(a.dir, a.name, mode & 07777) < 0) {
		r = sys_err(err, errno, "mkdir", path);
		goto out;
	}
	/* Undo the process umask (keeping a setgid inherited from the
	 * parent); never through a symlink swapped in meanwhile. */
	fd = openat(a.dir, a.name,
		    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		goto out;
	if (fstat(fd, &st) == 0) {
		want = (mode & 07777) | (st.st_mode & S_ISGID);
		if ((st.st_mode & 07777) != want) {
			r = fd_chmod(fd, want);
			if (r < 0)
				r = sys_err(err, -r, "mkdir: chmod", path);
		}
	}
	close(fd);
out:
	at_close(&a);
	return r;
}

static int unlink_common(struct nox_backend *b, const char *id,
			 const char *path, int flags, const char *op,
			 struct nox_err *err)
{
	struct at a;
	int r;

	r = at_resolve(to_local(b), id, path, op, &a, err);
	if (r < 0)
		return r;
	if (a.root)
		r = nox_err_set(err, EBUSY, "%s '%s': the workspace root", op,
				path);
	else if (unlinkat(a.dir, a.name, flags) < 0)
		r = sys_err(err, errno, op, path);
	at_close(&a);
	return r;
}

static int local_unlink(struct nox_backend *b, const char *id, const char *path,
			struct nox_err *err)
{
	return unlink_common(b, id, path, 0, "unlink", err);
}

static int local_rmdir(struct nox_backend *b, const char *id, const char *path,
		       struct nox_err *err)
{
	return unlink_common(b, id, path, AT_REMOVEDIR, "rmdir", err);
}

static int local_rename(struct nox_backend *b, const char *id, const char *from,
			const char *to, unsigned flags, struct nox_err *err)
{
	struct local *l = to_local(b);
	struct at a, c;
	int r;

	if (flags != 0 && flags != RENAME_NOREPLACE && flags != RENAME_EXCHANGE)
		return nox_err_set(err, EINVAL, "rename: flags 0x%x", flags);
	r = at_resolve(l, id, from, "rename", &a, err);
	if (r < 0)
		return r;
	r = at_resolve(l, id, to, "rename", &c, err);
	if (r < 0) {
		at_close(&a);
		return r;
	}
	if (a.root || c.root)
		r = nox_err_set(err, EBUSY,
				"rename '%s' to '%s': the workspace root", from,
				to);
	else if (renameat2(a.dir, a.name, c.dir, c.name, flags) < 0)
		r = nox_err_set(err, errno, "rename '%s' to '%s': %s", from, to,
				errstr(errno));
	at_close(&c);
	at_close(&a);
	return r;
}

static int local_chmod(struct nox_backend *b, const char *id, const char *path,
		       mode_t mode, struct nox_err *err)
{
	int fd, r;

	/* O_PATH: works for any file type and permission; chmod follows
	 * symlinks, and so did the confined open. */
	fd = ws_open_path(to_local(b), id, path, O_PATH, "chmod", err);
	if (fd < 0)
		return fd;
	r = fd_chmod(fd, mode);
	if (r < 0)
		r = sys_err(err, -r, "chmod", path);
	close(fd);
	return r;
}

static int local_utimens(struct nox_backend *b, const char *id,
			 const char *path, const struct timespec ts[2],
			 struct nox_err *err)
{
	struct at a;
	int r;

	r = at_resolve(to_local(b), id, path, "utimens", &a, err);
	if (r < 0)
		return r;
	if (utimensat(a.dir, a.name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		r = sys_err(err, errno, "utimens", path);
	at_close(&a);
	return r;
}

static int local_symlink(struct nox_backend *b, const char *id,
			 const char *target, const char *path,
			 struct nox_err *err)
{
	struct at a;
	int r;

	if (!target)
		return nox_err_set(err, EINVAL, "symlink '%s': no target",
				   path);
	r = at_resolve(to_local(b), id, path, "symlink", &a, err);
	if (r < 0)
		return r;
	if (a.root)
		r = nox_err_set(err, EEXIST, "symlink '%s': the workspace root",
				path);
	else if (symlinkat(target, a.dir, a.name) < 0)
		r = sys_err(err, errno, "symlink", path);
	at_close(&a);
	return r;
}

/* The mode asked for, past the daemon's umask (as createfile does). */
static int mode_exact(const struct at *a, mode_t mode, const char *path,
		      struct nox_err *err)
{
	struct stat st;
	int fd, r = 0;

	fd = openat(a->dir, a->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sys_err(err, errno, "mknod: chmod", path);
	if (fstat(fd, &st) == 0 && (st.st_mode & 07777) != (mode & 07777))
		r = fd_chmod(fd, mode);
	close(fd);
	return r < 0 ? sys_err(err, -r, "mknod: chmod", path) : 0;
}

/*
 * S_IFSOCK and S_IFIFO need no CAP_MKNOD; the type was checked by
 * nox_backend_mknod, and is checked again so no device is ever made.
 */
static int local_mknod(struct nox_backend *b, const char *id, const char *path,
		       mode_t mode, struct nox_err *err)
{
	struct at a;
	int r;

	if (!S_ISFIFO(mode) && !S_ISSOCK(mode))
		return nox_err_set(err, EPERM,
				   "mknod '%s': not a FIFO or socket", path);
	r = at_resolve(to_local(b), id, path, "mknod", &a, err);
	if (r < 0)
		return r;
	if (a.root)
		r = nox_err_set(err, EEXIST, "mknod '%s': the workspace root",
				path);
	else if (mknodat(a.dir, a.name, mode & (S_IFMT | 07777), 0) < 0)
		r = sys_err(err, errno, "mknod", path);
	else
		r = mode_exact(&a, mode, path, err);
	at_close(&a);
	return r;
}

static ssize_t local_readlink(struct nox_backend *b, const char *id,
			      const char *path, char *buf, size_t size,
			      struct nox_err *err)
{
	struct at a;
	ssize_t n;
	int r;

	if (!buf || size == 0)
		return nox_err_set(err, EINVAL, "readlink '%s': no buffer",
				   path);
	r = at_resolve(to_local(b), id, path, "readlink", &a, err);
	if (r < 0)
		return r;
	if (a.root) {
		n = nox_err_set(err, EINVAL,
				"readlink '%s': the workspace root", path);
		goto out;
	}
	n = readlinkat(a.dir, a.name, buf, size - 1);
	if (n < 0) {
		n = sys_err(err, errno, "readlink", path);
		goto out;
	}
	buf[n] = '\0';
out:
	at_close(&a);
	return n;
}

static int local_link(struct nox_backend *b, const char *id, const char *from,
		      const char *to, struct nox_err *err)
{
	struct local *l = to_local(b);
	struct at a, c;
	int r;

	r = at_resolve(l, id, from, "link", &a, err);
	if (r < 0)
		return r;
	r = at_resolve(l, id, to, "link", &c, err);
	if (r < 0) {
		at_close(&a);
		return r;
	}
	if (a.root)
		r = nox_err_set(err, EPERM, "link '%s': the workspace root",
				from);
	else if (c.root)
		r = nox_err_set(err, EEXIST, "link to '%s': the workspace root",
				to);
	else if (linkat(a.dir, a.name, c.dir, c.name, 0) < 0)
		r = nox_err_set(err, errno, "link '%s' to '%s': %s", from, to,
				errstr(errno));
	at_close(&c);
	at_close(&a);
	return r;
}

static int local_statfs(struct nox_backend *b, const char *id,
			struct statvfs *st, struct nox_err *err)
{
	int fd, r = 0;

	fd = ws_open(to_local(b), id, err);
	if (fd < 0)
		return fd;
	if (fstatvfs(fd, st) < 0)
		r = sys_err(err, errno, "statfs", "");
	close(fd);
	return r;
}

static int local_workspace_fd(struct nox_backend *b, const char *id,
			      struct nox_err *err)
{
	return ws_open(to_local(b), id, err);
}

/*
 * A tar of the listed paths that are regular files now; the others (gone
 * since the caller's listing, or replaced by a directory or a symlink)
 * are left out, so one changed name does not fail the whole batch.
 */
static int local_files(struct nox_backend *b, const char *id,
		       const char *const *paths, size_t n, int out_fd,
		       struct nox_err *err)
{
	const char **keep;
	struct stat st;
	size_t i, k = 0;
	int wsfd, r;

	keep = calloc(n ? n : 1, sizeof(*keep));
	if (!keep)
		return nox_err_set(err, ENOMEM, "out of memory");
	for (i = 0; i < n; i++)
		if (local_stat(b, id, paths[i], &st, NULL) == 0 &&
		    S_ISREG(st.st_mode))
			keep[k++] = paths[i];
	wsfd = ws_open(to_local(b), id, err);
	if (wsfd < 0) {
		free(keep);
		return wsfd;
	}
	r = nox_tar_pack_list(out_fd, wsfd, keep, k, err);
	close(wsfd);
	free(keep);
	return r;
}

/* ---- reaping ---------------------------------------------------------- */

static const struct nox_backend_ops local_ops;

struct reap_ctx {
	struct local *l;
	time_t now;
	int (*cb)(const char *id, void *ud);
	void *ud;
	struct nox_err *err;
	int count;
	/* Ids to reap are collected first: deleting while readdir walks
	 * the base directory could skip or repeat entries. */
	char **ids;
	size_t n, cap;
};

static int reap_collect(const char *id, void *ud)
{
	struct reap_ctx *c = ud;
	char **ids;

	ids = nox_array_grow(c->ids, &c->cap, c->n + 1, sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	c->ids = ids;
	c->ids[c->n] = strdup(id);
	if (!c->ids[c->n])
		return -ENOMEM;
	c->n++;
	return 0;
}

static bool sbx_expired(struct local *l, int sfd, const char *id, time_t now)
{
	struct lstate s;

	lstate_read(sfd, id, now, &s);
	return s.present && s.expires <= now;
}

/* Reaps one sandbox if still expired: 1 reaped, 0 kept, <0 error. */
static int reap_one(struct local *l, const char *id, time_t now,
		    struct nox_err *err)
{
	char name[sizeof(SBX_PREFIX) + NOX_ID_MAX];
	char tomb[sizeof(TOMB_PREFIX) + NOX_ID_MAX + 64];
	bool expired;
	int sfd, r;

	sfd = sbx_open(l, id, NULL);
	if (sfd < 0)
		return 0;
	expired = sbx_expired(l, sfd, id, now);
	close(sfd);
	if (!expired)
		return 0;
	/* Move it aside, then look again: a touch that landed meanwhile
	 * wins and the sandbox goes back. */
	sbx_name(name, sizeof(name), id);
	snprintf(tomb, sizeof(tomb), TOMB_PREFIX "%s.%ld.%ld.reap", id,
		 (long)getpid(), (long)gettid());
	if (renameat2(l->basefd, name, l->basefd, tomb, RENAME_NOREPLACE) < 0)
		return errno == ENOENT
			   ? 0
			   : nox_err_set(err, errno, "reap sandbox '%s': %s",
					 id, errstr(errno));
	sfd = openat(l->basefd, tomb,
		     O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	expired = sfd < 0 || sbx_expired(l, sfd, id, now);
	if (sfd >= 0)
		close(sfd);
	if (!expired &&
	    renameat2(l->basefd, tomb, l->basefd, name, RENAME_NOREPLACE) == 0)
		return 0;
	/* Expired, or a new sandbox of that id was created meanwhile
	 * (which supersedes this one). */
	r = rm_tree(l->basefd, tomb);
	if (r < 0)
		return nox_err_set(err, -r, "reap sandbox '%s': %s", id,
				   errstr(-r));
	return 1;
}

/* The pid in tombstone name TOMB_PREFIX<id>.<pid>.<tid>[.reap], or 0. */
static pid_t tomb_pid(const char *name)
{
	char buf[NAME_MAX + 1];
	char *dot, *end;
	long pid;
	size_t n;

	if (snprintf(buf, sizeof(buf), "%s", name) >= (int)sizeof(buf))
		return 0;
	n = strlen(buf);
	if (n > 5 && strcmp(buf + n - 5, ".reap") == 0)
		buf[n - 5] = '\0';
	dot = strrchr(buf, '.'); /* .tid */
	if (!dot)
		return 0;
	*dot = '\0';
	dot = strrchr(buf, '.'); /* .pid */
	if (!dot || !dot[1])
		return 0;
	errno = 0;
	pid = strtol(dot + 1, &end, 10);
	if (errno || *end || pid <= 0 || pid > INT_MAX)
		return 0;
	return (pid_t)pid;
}

/*
 * Removes tombstones left by a delete or reap that crashed: those whose
 * process is gone.  A live process's tombstone (ours included: another
 * thread may be walking it) is left alone.
 */
static void sweep_tombs(struct local *l)
{
	const size_t plen = strlen(TOMB_PREFIX);
	char **names = NULL, **nn;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	struct stat st;
	pid_t pid;
	DIR *d;
	int fd;

	fd = openat(l->basefd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	for (;;) {
		de = readdir(d);
		if (!de)
			break;
		if (strncmp(de->d_name, TOMB_PREFIX, plen) != 0)
			continue;
		pid = tomb_pid(de->d_name);
		if (pid <= 0 || pid == getpid() ||
		    !(kill(pid, 0) < 0 && errno == ESRCH))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) <
			0 ||
		    !S_ISDIR(st.st_mode) || st.st_uid != l->uid)
			continue;
		nn = nox_array_grow(names, &cap, n + 1, sizeof(*names));
		if (!nn)
			break;
		names = nn;
		names[n] = strdup(de->d_name);
		if (!names[n])
			break;
		n++;
	}
	closedir(d);
	for (i = 0; i < n; i++) {
		rm_tree(l->basefd, names[i]);
		free(names[i]);
	}
	free(names);
}

int nox_local_reap_expired(struct nox_backend *b, time_t now,
			   int (*cb)(const char *id, void *ud), void *ud,
			   struct nox_err *err)
{
	struct reap_ctx c;
	size_t i;
	int r;

	nox_err_clear(err);
	if (!b || b->ops != &local_ops)
		return nox_err_set(err, EINVAL, "reap: not a local backend");
	memset(&c, 0, sizeof(c));
	c.l = to_local(b);
	sweep_tombs(c.l);
	r = sbx_walk(c.l, reap_collect, &c, err);
	if (r < 0) {
		if (r == -ENOMEM)
			nox_err_set(err, ENOMEM, "reap: out of memory");
		goto out;
	}
	r = 0;
	for (i = 0; i < c.n; i++) {
		int one = reap_one(c.l, c.ids[i], now, err);

		if (one <= 0)
			continue;
		c.count++;
		if (cb) {
			r = cb(c.ids[i], ud);
			if (r != 0)
				goto out;
		}
	}
	r = c.count;
out:
	for (i = 0; i < c.n; i++)
		free(c.ids[i]);
	free(c.ids);
	return r;
}

/* ---- construction ----------------------------------------------------- */

static void local_free(struct nox_backend *b)
{
	struct local *l = to_local(b);

	close_fd(&l->basefd);
	free(l->base_path);
	free(l->bwrap_path);
	free(l);
}

static const struct nox_backend_ops local_ops = {
    .name = "local",
    .free = local_free,
    .has = NULL,
    .health = local_health,
    .create = local_create,
    .touch = local_touch,
    .exec = local_exec,
    .upload = local_upload,
    .download = local_download,
    .del = local_del,
    .info = local_info,
    .list_sandboxes = local_list_sandboxes,
    .stat = local_stat,
    .list = local_list,
    .read = local_read,
    .write = local_write,
    .createfile = local_createfile,
    .truncate = local_truncate,
    .mkdir = local_mkdir,
    .unlink = local_unlink,
    .rmdir = local_rmdir,
    .rename = local_rename,
    .chmod = local_chmod,
    .utimens = local_utimens,
    .symlink = local_symlink,
    .mknod = local_mknod,
    .readlink = local_readlink,
    .link = local_link,
    .statfs = local_statfs,
    .workspace_fd = local_workspace_fd,
    .files = local_files,
};

/* mkdir -p dir (0755 for what it makes). */
static int mkdir_p(const char *dir, struct nox_err *err)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
		return nox_err_set(err, ENAMETOOLONG,
				   "base directory path too long");
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return nox_err_set(err, errno,
					   "create base directory %s: %s", buf,
					   errstr(errno));
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return nox_err_set(err, errno, "create base directory %s: %s",
				   buf, errstr(errno));
	return 0;
}

int nox_backend_local_new(const struct nox_local_opts *opts,
			  struct nox_backend **out, struct nox_err *err)
{
	const struct nox_local_opts def = {0};
	const char *dir;
	struct local *l;
	int r;

	nox_err_clear(err);
	if (!out)
		return nox_err_set(err, EINVAL,
				   "local backend: no out pointer");
	*out = NULL;
	if (!opts)
		opts = &def;
	dir = opts->base_dir && opts->base_dir[0] ? opts->base_dir
						  : NOX_DEFAULT_BASE_DIR;
	r = mkdir_p(dir, err);
	if (r < 0)
		return r;
	l = calloc(1, sizeof(*l));
	if (!l)
		return nox_err_set(err, ENOMEM, "local backend: out of memory");
	l->base.ops = &local_ops;
	l->basefd = -1;
	l->uid = geteuid();
	l->base_path = realpath(dir, NULL);
	if (!l->base_path) {
		r = nox_err_set(err, errno, "base directory %s: %s", dir,
				errstr(errno));
		goto fail;
	}
	l->basefd = open(l->base_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (l->basefd < 0) {
		r = nox_err_set(err, errno, "open base directory %s: %s",
				l->base_path, errstr(errno));
		goto fail;
	}
	if (opts->bwrap_path) {
		l->bwrap_path = strdup(opts->bwrap_path);
		if (!l->bwrap_path) {
			r = nox_err_set(err, ENOMEM,
					"local backend: out of memory");
			goto fail;
		}
	}
	l->xo.bwrap_path = l->bwrap_path;
	l->xo.unisolated = opts->unisolated;
	l->xo.allow_network = opts->allow_network;
	l->xo.output_cap = opts->output_cap;
	/* output waits next to the sandboxes: a disk, where /tmp may not be */
	l->xo.spool_dir = l->base_path;
	l->xo.umask_set = opts->exec_umask_set;
	l->xo.umask = opts->exec_umask;
	l->xo.memory_limit = opts->memory_limit;
	l->xo.max_procs = opts->max_procs;
	*out = &l->base;
	return 0;
fail:
	local_free(&l->base);
	return r;
}
