/*
 * tar.c - gzip tar packing and secure extraction with libarchive (see
 * nox/tar.h).
 *
 * Packing walks the tree itself, relative to a directory descriptor, with
 * openat/fstatat and O_NOFOLLOW, so a hostile tree cannot redirect it:
 * symlinks are stored as symlinks, sockets, FIFOs and devices are skipped,
 * file data streams in TAR_CHUNK pieces.  Hard links inside the tree are
 * stored as separate regular files.  A file that shrinks while it is read
 * is padded with zeros (libarchive does it), one that grows is cut at the
 * size it had when its header was written.  Names are written as the
 * bytes they are: valid UTF-8 as standard pax names, anything else marked
 * hdrcharset=BINARY (libarchive warns about those, which we ignore).
 *
 * Extraction never uses archive_write_disk (which is path and cwd based).
 * Every entry name is normalised and checked (no absolute names, no "..",
 * length limits), every parent directory is opened with openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS from the destination descriptor
 * (missing ones are created one component at a time; where openat2 is
 * missing, an equivalent walk of single components with O_NOFOLLOW is
 * used), and the entry is made complete in that parent before it gets
 * its final name, so nothing is ever written through a symlink or into an
 * existing inode.  A regular file's data, mode and times go into an
 * unnamed file (O_TMPFILE), then linked in through /proc/self/fd:
 * straight under its final name when that is free, else under a
 * temporary ".nox-tar.*" name renamed over the final one.  Symlinks and
 * hard links are made under a temporary name and renamed.  So a process
 * killed mid-extraction leaves no partly written file under any name; it
 * can leave one complete entry under a ".nox-tar.*" name (killed between
 * the link and the rename), which nothing sweeps: another extraction may
 * be using the same directory.  Where the file system has no O_TMPFILE,
 * or /proc is not mounted (or is not this process's), the data are
 * written under the temporary name instead, and a kill can then leave
 * that name partly written.
 *
 * Ownership in the archive is ignored (files belong to the caller);
 * setuid/setgid bits are dropped.  Directory modes and mtimes are applied
 * at the end (children first), so that a read-only directory can still be
 * filled and its mtime is not disturbed; their list is the only memory
 * that grows with the archive (one record per directory entry).
 *
 * No chdir, no umask or locale changes, no global state: thread-safe.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include <archive.h>
#include <archive_entry.h>

#include <nox/tar.h>

#include "array_i.h"
#include "fdio_i.h"

#define TAR_CHUNK	    (64 * 1024)
#define TAR_DEF_MAX_BYTES   (64ull * 1024 * 1024 * 1024)
#define TAR_DEF_MAX_ENTRIES 10000000ull
#define TAR_RESOLVE                                                            \
	(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
#define TAR_MSG_NAME 160 /* bytes of an entry name shown in messages */

/* ---- shared helpers ---------------------------------------------------- */

/*
 * A printable rendering of name for error messages: control and non-ASCII
 * bytes as \xNN, cut at TAR_MSG_NAME bytes with "...".
 */
static const char *tar_show(const char *name, char *buf, size_t sz)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	if (!name)
		name = "(none)";
	for (i = 0; name[i] && o + 8 < sz; i++) {
		unsigned char c = (unsigned char)name[i];

		if (i >= TAR_MSG_NAME) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o] = '\0';
	return buf;
}

/*
 * Fallback for kernels (and tools such as valgrind) without openat2: the
 * path, already normalised (no "..", "." or empty components), is walked
 * one component at a time with O_NOFOLLOW, which resolves exactly as
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS would: a symlink anywhere gives
 * -ELOOP.
 */
static int tar_walk(int dirfd, const char *path, int flags)
{
	char comp[NAME_MAX + 1];
	const char *p = path, *q;
	struct stat st;
	int cur = dirfd, fd, last, e;
	size_t n;

	for (;;) {
		q = strchrnul(p, '/');
		n = (size_t)(q - p);
		if (n == 0 || n > NAME_MAX) {
			fd = -EINVAL;
			break;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		last = (*q == '\0');
		fd = openat(cur, comp,
			    (last ? flags : O_PATH | O_DIRECTORY) | O_NOFOLLOW |
				O_CLOEXEC);
		if (fd < 0) {
			e = errno;
			/* O_PATH|O_NOFOLLOW|O_DIRECTORY on a symlink: ENOTDIR
			 */
			if ((e == ENOTDIR || e == ELOOP) &&
			    fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				e = ELOOP;
			fd = -e;
		}
		if (cur != dirfd)
			close(cur);
		if (fd < 0 || last)
			break;
		cur = fd;
		p = q + 1;
	}
	return fd;
}

/* openat2 beneath dirfd without symlinks; path must be normalised. */
static int tar_openat2(int dirfd, const char *path, int flags)
{
	struct open_how how;
	long r;
	int tries = 0;

	memset(&how, 0, sizeof(how));
	how.flags = (unsigned long long)(flags | O_CLOEXEC);
	how.resolve = TAR_RESOLVE;
	do {
		r = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	} while (r < 0 && (errno == EAGAIN || errno == EINTR) && ++tries < 8);
	if (r < 0 && errno == ENOSYS)
		return tar_walk(dirfd, path, flags);
	return r < 0 ? -errno : (int)r;
}

/*
 * Normalises raw into out (PATH_MAX bytes): the components joined by '/',
 * without empty or "." components.  Returns its length (0 for the root
 * itself) or -EINVAL for an absolute name, a ".." component, or a
 * normalised name or component over PATH_MAX - 1 / NAME_MAX; *why is
 * then set.
 */
static int tar_norm(const char *raw, char *out, const char **why)
{
	size_t len, o = 0, n;
	const char *p, *q;

	if (!raw) {
		*why = "entry has no name";
		return -EINVAL;
	}
	/* the normalised name must fit PATH_MAX ("./" prefixes and a
	 * directory's trailing '/' do not count); the raw one is only
	 * bounded so that a hostile header cannot make us scan forever */
	len = strnlen(raw, 16 * PATH_MAX);
	if (len >= 16 * PATH_MAX) {
		*why = "name longer than PATH_MAX";
		return -EINVAL;
	}
	if (raw[0] == '/') {
		*why = "absolute name";
		return -EINVAL;
	}
	for (p = raw; *p; p = q) {
		while (*p == '/')
			p++;
		q = strchrnul(p, '/');
		n = (size_t)(q - p);
		if (n == 0 || (n == 1 && p[0] == '.'))
			continue;
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			*why = "name has a '..' component";
			return -EINVAL;
		}
		if (n > NAME_MAX) {
			*why = "name component longer than NAME_MAX";
			return -EINVAL;
		}
		if (o + (o ? 1 : 0) + n >= PATH_MAX) {
			*why = "name longer than PATH_MAX";
			return -EINVAL;
		}
		if (o)
			out[o++] = '/';
		memcpy(out + o, p, n);
		o += n;
	}
	out[o] = '\0';
	return (int)o;
}

/* ---- packing ----------------------------------------------------------- */

struct pk {
	struct archive *a;
	struct archive_entry *e;
	char *buf;	     /* TAR_CHUNK bytes: file data, link targets */
	char name[PATH_MAX]; /* archive name of the current entry */
	size_t nlen;
	const char *const *skip;
	struct nox_err *err;
	locale_t loc, oldloc; /* this thread's LC_CTYPE while packing */
};

static int pk_arch_err(struct pk *p, const char *what)
{
	char show[TAR_MSG_NAME * 4 + 8];
	int e = archive_errno(p->a);
	const char *m = archive_error_string(p->a);

	if (e <= 0 || e == EINVAL)
		e = EIO;
	return nox_err_set(p->err, e, "tar: %s '%s': %s", what,
			   tar_show(p->name, show, sizeof(show)),
			   m ? m : "libarchive error");
}

static int pk_sys_err(struct pk *p, int e, const char *what)
{
	char show[TAR_MSG_NAME * 4 + 8];

	return nox_err_set(
	    p->err, e, "tar: %s '%s': %s", what,
	    tar_show(p->nlen ? p->name : ".", show, sizeof(show)), strerror(e));
}

/* Sets p->name to prefix (p->name[0..plen)) + "/" + name. */
static int pk_name_push(struct pk *p, size_t plen, const char *name)
{
	size_t n = strlen(name), need = plen + (plen ? 1 : 0) + n;

	if (need >= sizeof(p->name)) {
		p->name[plen] = '\0';
		return nox_err_set(
		    p->err, ENAMETOOLONG,
		    "tar: name under '%.200s' longer than PATH_MAX",
		    plen ? p->name : ".");
	}
	if (plen)
		p->name[plen++] = '/';
	memcpy(p->name + plen, name, n + 1);
	p->nlen = need;
	return 0;
}

static int pk_header(struct pk *p, const struct stat *st, const char *target)
{
	int r;

	archive_entry_clear(p->e);
	archive_entry_set_pathname(p->e, p->name);
	archive_entry_set_mode(p->e, st->st_mode & (S_IFMT | 07777));
	archive_entry_set_uid(p->e, st->st_uid);
	archive_entry_set_gid(p->e, st->st_gid);
	archive_entry_set_mtime(p->e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	archive_entry_set_size(p->e, S_ISREG(st->st_mode) ? st->st_size : 0);
	if (target)
		archive_entry_set_symlink(p->e, target);
	r = archive_write_header(p->a, p->e);
	/* ARCHIVE_WARN: the name could not be made UTF-8; stored as bytes. */
	if (r < ARCHIVE_WARN)
		return pk_arch_err(p, "writing header of");
	return 0;
}

static int pk_file_data(struct pk *p, int fd, off_t size)
{
	uint64_t left = (uint64_t)size;
	ssize_t n;

	while (left > 0) {
		n = read(fd, p->buf,
			 left < TAR_CHUNK ? (size_t)left : TAR_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pk_sys_err(p, errno, "reading");
		if (n == 0)
			break; /* shrank: libarchive pads with zeros */
		if (archive_write_data(p->a, p->buf, (size_t)n) < 0)
			return pk_arch_err(p, "writing data of");
		left -= (uint64_t)n;
	}
	if (archive_write_finish_entry(p->a) < ARCHIVE_WARN)
		return pk_arch_err(p, "finishing");
	return 0;
}

static int pk_dir(struct pk *p, int dfd, unsigned depth);

/*
 * Adds the entry name of directory dfd, archived as p->name; with recurse,
 * a directory's contents follow it.  Sockets, FIFOs, devices and entries
 * that vanished meanwhile are skipped.
 */
static int pk_entry(struct pk *p, int dfd, const char *name, bool recurse,
		    unsigned depth)
{
	struct stat st, st2;
	ssize_t n;
	int fd, r;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : pk_sys_err(p, errno, "stat of");
	if (S_ISREG(st.st_mode)) {
		fd = openat(dfd, name,
			    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
				O_NONBLOCK);
		if (fd < 0)
			return errno == ENOENT
				   ? 0
				   : pk_sys_err(p, errno, "opening");
		if (fstat(fd, &st2) < 0 || !S_ISREG(st2.st_mode)) {
			close(fd); /* replaced by something else: skip */
			return 0;
		}
		r = pk_header(p, &st2, NULL);
		if (r == 0)
			r = pk_file_data(p, fd, st2.st_size);
		close(fd);
		return r;
	}
	if (S_ISLNK(st.st_mode)) {
		n = readlinkat(dfd, name, p->buf, PATH_MAX);
		if (n < 0)
			return errno == ENOENT
				   ? 0
				   : pk_sys_err(p, errno, "reading");
		if (n >= PATH_MAX)
			return pk_sys_err(p, ENAMETOOLONG, "link target of");
		p->buf[n] = '\0';
		return pk_header(p, &st, p->buf);
	}
	if (!S_ISDIR(st.st_mode))
		return 0;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : pk_sys_err(p, errno, "opening");
	if (fstat(fd, &st2) < 0) {
		r = pk_sys_err(p, errno, "stat of");
		close(fd);
		return r;
	}
	r = pk_header(p, &st2, NULL);
	if (r < 0 || !recurse) {
		close(fd);
		return r;
	}
	return pk_dir(p, fd, depth + 1);
}

static bool pk_skipped(const struct pk *p, const char *name)
{
	const char *const *s;

	for (s = p->skip; s && *s; s++)
		if (strcmp(*s, name) == 0)
			return true;
	return false;
}

/* Adds the contents of directory dfd (owned, closed here) under p->name. */
static int pk_dir(struct pk *p, int dfd, unsigned depth)
{
	size_t plen = p->nlen;
	struct dirent *de;
	DIR *d;
	int r = 0;

	d = fdopendir(dfd);
	if (!d) {
		r = pk_sys_err(p, errno, "listing");
		close(dfd);
		return r;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				r = pk_sys_err(p, errno, "listing");
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (depth == 0 && pk_skipped(p, de->d_name))
			continue;
		r = pk_name_push(p, plen, de->d_name);
		if (r == 0)
			r = pk_entry(p, dirfd(d), de->d_name, true, depth);
		p->name[plen] = '\0';
		p->nlen = plen;
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

static int pk_begin(struct pk *p, int out_fd, const char *const *skip,
		    int level, struct nox_err *err)
{
	char lv[4];

	memset(p, 0, sizeof(*p));
	p->err = err;
	p->skip = skip;
	/*
	 * libarchive converts names from the locale's charset to UTF-8 for
	 * pax; in the C locale it cannot, and marks every non-ASCII name
	 * hdrcharset=BINARY (which GNU tar warns about).  A UTF-8 LC_CTYPE
	 * for this thread only (uselocale, not setlocale) makes valid
	 * UTF-8 names plain pax names; other bytes still go as BINARY.
	 */
	p->loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	if (p->loc)
		p->oldloc = uselocale(p->loc);
	p->buf = malloc(TAR_CHUNK);
	p->a = archive_write_new();
	p->e = archive_entry_new();
	if (!p->buf || !p->a || !p->e)
		return nox_err_set(err, ENOMEM, "tar: out of memory");
	/*
	 * Full pax (not pax_restricted): it adds an extended header only
	 * when an entry needs one, and a nanosecond mtime counts as a need.
	 * No padding after the gzip stream, whatever out_fd is.  gzip level
	 * 1: these archives cross loopback or a LAN, where compressing harder
	 * costs more time than the bytes it saves (level 6 capped downloads
	 * at ~50 MB/s, level 1 is several times faster for ~10% more bytes).
	 * Level 0 (stored blocks, a CRC and no compression) for data that
	 * would not shrink: random or already compressed bytes cost level 1
	 * about 8 times what they cost level 0.
	 */
	snprintf(lv, sizeof(lv), "%d", level == 0 ? 0 : 1);
	if (archive_write_set_format_pax(p->a) != ARCHIVE_OK ||
	    archive_write_add_filter_gzip(p->a) < ARCHIVE_WARN ||
	    archive_write_set_filter_option(p->a, "gzip", "compression-level",
					    lv) < ARCHIVE_WARN ||
	    archive_write_set_bytes_in_last_block(p->a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(p->a, out_fd) != ARCHIVE_OK)
		return pk_arch_err(p, "starting archive");
	return 0;
}

/* Finishes (when r == 0) and frees the archive; returns the result. */
static int pk_end(struct pk *p, int r)
{
	if (p->a && r == 0 && archive_write_close(p->a) != ARCHIVE_OK) {
		p->name[0] = '\0';
		r = pk_arch_err(p, "closing archive");
	}
	if (p->a)
		archive_write_free(p->a);
	archive_entry_free(p->e);
	free(p->buf);
	if (p->loc) {
		uselocale(p->oldloc);
		freelocale(p->loc);
	}
	return r;
}

/*
 * Opens the parent directory of the normalised path rel (len > 0) below
 * root with the beneath/no-symlinks rule; *base is set to its last
 * component.  Returns a descriptor (root itself when rel has one
 * component: *own is then false) or a negative errno with a message.
 */
static int tar_lookup_parent(int root, char *rel, const char **base, bool *own,
			     const char *what, struct nox_err *err)
{
	char show[TAR_MSG_NAME * 4 + 8];
	char *slash = strrchr(rel, '/');
	int fd;

	*own = false;
	if (!slash) {
		*base = rel;
		return root;
	}
	*slash = '\0';
	fd = tar_openat2(root, rel, O_PATH | O_DIRECTORY);
	*slash = '/';
	*base = slash + 1;
	if (fd >= 0) {
		*own = true;
		return fd;
	}
	tar_show(rel, show, sizeof(show));
	if (fd == -ELOOP || fd == -EXDEV)
		return nox_err_set(err, EINVAL,
				   "%s '%s': path goes through a symlink", what,
				   show);
	return nox_err_set(err, -fd, "%s '%s': %s", what, show, strerror(-fd));
}

int nox_tar_pack(int out_fd, int root_dirfd, const char *path,
		 const char *const *skip, struct nox_err *err)
{
	char rel[PATH_MAX], show[TAR_MSG_NAME * 4 + 8];
	const char *why = NULL, *base;
	struct stat st;
	struct pk p;
	bool own = false;
	int r, pfd = -1, fd, e;

	nox_err_clear(err);
	r = tar_norm(path ? path : "", rel, &why);
	if (r < 0)
		return nox_err_set(err, EINVAL, "tar: path '%s': %s",
				   tar_show(path, show, sizeof(show)), why);
	r = pk_begin(&p, out_fd, skip, 1, err);
	if (r < 0)
		return pk_end(&p, r);
	if (rel[0] == '\0') {
		fd =
		    openat(root_dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			r = pk_sys_err(&p, errno, "opening");
		else
			r = pk_dir(&p, fd, 0);
		return pk_end(&p, r);
	}
	pfd = tar_lookup_parent(root_dirfd, rel, &base, &own, "tar: path", err);
	if (pfd < 0)
		return pk_end(&p, pfd);
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		e = errno;
		r = nox_err_set(err, e, "tar: path '%s': %s",
				tar_show(rel, show, sizeof(show)), strerror(e));
	} else if (S_ISDIR(st.st_mode)) {
		fd = openat(pfd, base,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		e = errno;
		if (fd < 0)
			r = nox_err_set(err, e, "tar: path '%s': %s",
					tar_show(rel, show, sizeof(show)),
					strerror(e));
		else
			r = pk_dir(&p, fd, 0);
	} else if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) {
		if (!pk_skipped(&p, base)) {
			r = pk_name_push(&p, 0, base);
			if (r == 0)
				r = pk_entry(&p, pfd, base, false, 0);
		}
	} else {
		r = nox_err_set(
		    err, EINVAL,
		    "tar: path '%s' is not a file, directory or symlink",
		    tar_show(rel, show, sizeof(show)));
	}
	if (own)
		close(pfd);
	return pk_end(&p, r);
}

int nox_tar_pack_list(int out_fd, int root_dirfd, const char *const *paths,
		      size_t n, struct nox_err *err)
{
	return nox_tar_pack_list_level(out_fd, root_dirfd, paths, n, 1, err);
}

int nox_tar_pack_list_level(int out_fd, int root_dirfd,
			    const char *const *paths, size_t n, int level,
			    struct nox_err *err)
{
	char rel[PATH_MAX], show[TAR_MSG_NAME * 4 + 8];
	const char *why = NULL, *base;
	struct pk p;
	bool own;
	size_t i;
	int r, pfd;

	nox_err_clear(err);
	r = pk_begin(&p, out_fd, NULL, level, err);
	for (i = 0; r == 0 && i < n; i++) {
		r = tar_norm(paths[i], rel, &why);
		if (r == 0)
			why = "empty path";
		if (r <= 0) {
			r = nox_err_set(err, EINVAL, "tar: path '%s': %s",
					tar_show(paths[i], show, sizeof(show)),
					why);
			break;
		}
		pfd = tar_lookup_parent(root_dirfd, rel, &base, &own,
					"tar: path", err);
		if (pfd < 0) {
			r = pfd;
			break;
		}
		r = pk_name_push(&p, 0, rel);
		if (r == 0) {
			struct stat st;

			/* a listed path that does not exist is an error */
			if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
				r = pk_sys_err(&p, errno, "stat of");
			else
				r = pk_entry(&p, pfd, base, false, 0);
		}
		if (own)
			close(pfd);
	}
	return pk_end(&p, r);
}

static int pk_mem_data(struct pk *p, const void *data, size_t len)
{
	if (len && archive_write_data(p->a, data, len) < (la_ssize_t)len)
		return pk_arch_err(p, "writing data of");
	if (archive_write_finish_entry(p->a) < ARCHIVE_WARN)
		return pk_arch_err(p, "finishing");
	return 0;
}

int nox_tar_pack_entries(int out_fd, const struct nox_tar_entry *v, size_t n,
			 struct nox_err *err)
{
	return nox_tar_pack_entries_level(out_fd, v, n, 1, err);
}

int nox_tar_pack_entries_level(int out_fd, const struct nox_tar_entry *v,
			       size_t n, int level, struct nox_err *err)
{
	char rel[PATH_MAX], show[TAR_MSG_NAME * 4 + 8];
	const char *why = NULL;
	struct pk p;
	size_t i;
	int r;

	nox_err_clear(err);
	r = pk_begin(&p, out_fd, NULL, level, err);
	for (i = 0; r == 0 && i < n; i++) {
		const struct nox_tar_entry *x = &v[i];
		struct stat st;

		r = tar_norm(x->name, rel, &why);
		if (r == 0)
			why = "empty path";
		if (r <= 0) {
			r = nox_err_set(err, EINVAL, "tar: path '%s': %s",
					tar_show(x->name ? x->name : "", show,
						 sizeof(show)),
					why);
			break;
		}
		r = pk_name_push(&p, 0, rel);
		if (r < 0)
			break;
		memset(&st, 0, sizeof(st));
		st.st_mode = (mode_t)x->mode;
		st.st_mtim.tv_sec = (time_t)(x->mtime_ns / 1000000000ll);
		st.st_mtim.tv_nsec = (long)(x->mtime_ns % 1000000000ll);
		if (st.st_mtim.tv_nsec < 0) {
			st.st_mtim.tv_sec--;
			st.st_mtim.tv_nsec += 1000000000l;
		}
		if (S_ISREG(st.st_mode)) {
			if (x->size < 0 ||
			    (!x->data && x->fd < 0 && !x->file)) {
				r = nox_err_set(
				    err, EINVAL,
				    "tar: entry '%s' has no content",
				    tar_show(rel, show, sizeof(show)));
				break;
			}
			st.st_size = (off_t)x->size;
		} else if (S_ISLNK(st.st_mode)) {
			if (!x->target ||
			    strnlen(x->target, PATH_MAX) >= PATH_MAX) {
				r = nox_err_set(
				    err, EINVAL,
				    "tar: symlink '%s' has a bad target",
				    tar_show(rel, show, sizeof(show)));
				break;
			}
		} else if (!S_ISDIR(st.st_mode)) {
			r = nox_err_set(
			    err, EINVAL,
			    "tar: entry '%s' is not a file, directory "
			    "or symlink",
			    tar_show(rel, show, sizeof(show)));
			break;
		}
		r = pk_header(&p, &st, S_ISLNK(st.st_mode) ? x->target : NULL);
		if (r < 0)
			break;
		if (S_ISREG(st.st_mode) && x->data) {
			r = pk_mem_data(&p, x->data, (size_t)x->size);
		} else if (S_ISREG(st.st_mode) && x->fd >= 0) {
			if (lseek(x->fd, 0, SEEK_SET) < 0)
				r = pk_sys_err(&p, errno, "seek in");
			else
				r = pk_file_data(&p, x->fd, st.st_size);
		} else if (S_ISREG(st.st_mode)) {
			int fd = openat(x->dirfd, x->file,
					O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

			if (fd < 0) {
				r = pk_sys_err(&p, errno,
					       "opening the content of");
			} else {
				r = pk_file_data(&p, fd, st.st_size);
				close(fd);
			}
		} else if (archive_write_finish_entry(p.a) < ARCHIVE_WARN) {
			r = pk_arch_err(&p, "finishing");
		}
	}
	return pk_end(&p, r);
}

/* ---- extraction -------------------------------------------------------- */

struct xt_dir {
	char *path; /* normalised, relative to dest */
	size_t seq; /* order in the archive */
	mode_t mode;
	struct timespec ts[2];
};

struct xt {
	struct archive *a;
	int dest;
	uint64_t max_bytes, max_entries, bytes, entries;
	char *buf; /* TAR_CHUNK bytes */
	struct nox_err *err;
	struct xt_dir *dirs; /* deferred directory metadata */
	size_t ndirs, capdirs;
	unsigned tmpseq;
	uint32_t tmprand;
	bool noproc;	     /* /proc/self/fd unusable: no O_TMPFILE files */
	char name[PATH_MAX]; /* normalised name of the entry */
	char show[TAR_MSG_NAME * 4 + 8]; /* its raw name, printable */
};

static int xt_fail(struct xt *x, int code, const char *why)
{
	return nox_err_set(x->err, code, "tar entry '%s': %s", x->show, why);
}

static int xt_sys(struct xt *x, int e, const char *what)
{
	return nox_err_set(x->err, e, "tar entry '%s': %s: %s", x->show, what,
			   strerror(e));
}

/*
 * The error of a libarchive read call: EIO for a failing descriptor,
 * ENOMEM, and EINVAL for every malformed or truncated archive.
 */
static int xt_arch_err(struct xt *x, const char *what)
{
	const char *m = archive_error_string(x->a);
	int e = archive_errno(x->a), code = EINVAL;

	if (e == ENOMEM || e == EIO || e == EBADF)
		code = e;
	if (x->show[0])
		return nox_err_set(x->err, code, "tar entry '%s': %s: %s",
				   x->show, what, m ? m : "libarchive error");
	return nox_err_set(x->err, code, "tar: %s: %s", what,
			   m ? m : "libarchive error");
}

/* Nanoseconds of a time from an archive, forced into range. */
/*
 * The reader of every extraction: a tar, gzip'd or not, from fd (an
 * empty input is an empty archive).  0, or -1 with a's error set.
 */
static int tar_reader_open(struct archive *a, int fd)
{
	if (archive_read_support_filter_gzip(a) < ARCHIVE_WARN ||
	    archive_read_support_filter_none(a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_support_format_empty(a) != ARCHIVE_OK ||
	    archive_read_open_fd(a, fd, TAR_CHUNK) != ARCHIVE_OK)
		return -1;
	return 0;
}

static long xt_nsec(long ns)
{
	return ns >= 0 && ns <= 999999999 ? ns : 0;
}

/* The atime and mtime of e for futimens, UTIME_OMIT where unset. */
static void xt_times(struct archive_entry *e, struct timespec ts[2])
{
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1] = ts[0];
	if (archive_entry_atime_is_set(e)) {
		ts[0].tv_sec = archive_entry_atime(e);
		ts[0].tv_nsec = xt_nsec(archive_entry_atime_nsec(e));
	}
	if (archive_entry_mtime_is_set(e)) {
		ts[1].tv_sec = archive_entry_mtime(e);
		ts[1].tv_nsec = xt_nsec(archive_entry_mtime_nsec(e));
	}
}

static mode_t xt_mode(struct archive_entry *e)
{
	return archive_entry_perm(e) & 07777 & ~(mode_t)(S_ISUID | S_ISGID);
}

/*
 * Opens the parent of x->name, creating missing directories one component
 * at a time, each opened beneath dest without following symlinks.
 * Returns a descriptor (dest itself when *own is false) or an error.
 */
static int xt_parent(struct xt *x, const char **base, bool *own)
{
	char *slash = strrchr(x->name, '/'), *p, *q;
	int cur, fd;

	*own = false;
	if (!slash) {
		*base = x->name;
		return x->dest;
	}
	*base = slash + 1;
	*slash = '\0';
	fd = tar_openat2(x->dest, x->name, O_PATH | O_DIRECTORY);
	if (fd != -ENOENT)
		goto done;
	cur = x->dest;
	for (p = x->name;; p = q + 1) {
		char c;

		q = strchrnul(p, '/');
		c = *q;
		*q = '\0';
		if (mkdirat(cur, p, 0755) < 0 && errno != EEXIST)
			fd = -errno;
		else
			fd = tar_openat2(cur, p, O_PATH | O_DIRECTORY);
		*q = c;
		if (cur != x->dest)
			close(cur);
		if (fd < 0 || !c)
			break;
		cur = fd;
	}
done:
	*slash = '/';
	if (fd >= 0) {
		*own = true;
		return fd;
	}
	if (fd == -ELOOP || fd == -EXDEV)
		return xt_fail(x, EINVAL, "a parent is a symlink");
	if (fd == -ENOTDIR)
		return xt_fail(x, ENOTDIR, "a parent is not a directory");
	return xt_sys(x, -fd, "opening its parent");
}

/* A fresh temporary name in tmp (NAME_MAX + 1 bytes). */
static void xt_tmpname(struct xt *x, char *tmp, size_t sz)
{
	snprintf(tmp, sz, ".nox-tar.%08x.%u", (unsigned)x->tmprand,
		 x->tmpseq++);
}

/*
 * Renames tmp over base in pfd; on failure removes tmp.  An existing
 * directory at base is an error (EISDIR).
 */
static int xt_install(struct xt *x, int pfd, const char *tmp, const char *base)
{
	int e;

	if (renameat(pfd, tmp, pfd, base) == 0)
		return 0;
	e = errno;
	unlinkat(pfd, tmp, 0);
	if (e == EISDIR || e == ENOTEMPTY || e == EEXIST)
		return xt_fail(x, EISDIR, "a directory is in the way");
	return xt_sys(x, e, "renaming into place");
}

/*
 * An unnamed file in pfd (O_TMPFILE) for the data of a regular file, with
 * *hold an O_PATH descriptor of it opened through /proc/self/fd: that is
 * what gives it a name later (xt_link), and opening it now proves it will
 * work before any data are written.  Returns the write descriptor, or
 * -EOPNOTSUPP when the file system has no O_TMPFILE or /proc is missing
 * or not this process's (the caller then uses a named temporary file),
 * or another negative errno.
 */
static int xt_tmpfile(struct xt *x, int pfd, int *hold)
{
	char proc[32];
	struct stat a, b;
	int fd, h, e;

	*hold = -1;
	if (x->noproc)
		return -EOPNOTSUPP;
	fd = openat(pfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		/* EISDIR: a kernel without O_TMPFILE saw just O_DIRECTORY */
		if (e == EOPNOTSUPP || e == EISDIR || e == EINVAL)
			return -EOPNOTSUPP;
		return -e;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	h = open(proc, O_PATH | O_CLOEXEC);
	if (h < 0 || fstat(fd, &a) < 0 || fstat(h, &b) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		/* no /proc, or another pid namespace's: never trust it */
		x->noproc = true;
		if (h >= 0)
			close(h);
		close(fd);
		return -EOPNOTSUPP;
	}
	*hold = h;
	return fd;
}

/*
 * Gives the complete unnamed file held by hold the name base in pfd, and
 * closes hold.  When base is free one linkat makes it appear whole;
 * otherwise it is linked under a temporary name and renamed over base
 * (xt_install), so only a complete file ever has a name.
 */
static int xt_link(struct xt *x, int hold, int pfd, const char *base)
{
	char proc[32], tmp[NAME_MAX + 1];
	int r, e = 0, tries;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", hold);
	r = linkat(AT_FDCWD, proc, pfd, base, AT_SYMLINK_FOLLOW);
	if (r < 0 && errno == EEXIST) {
		for (tries = 0; tries < 16; tries++) {
			xt_tmpname(x, tmp, sizeof(tmp));
			r = linkat(AT_FDCWD, proc, pfd, tmp, AT_SYMLINK_FOLLOW);
			if (r == 0 || errno != EEXIST)
				break;
		}
		if (r == 0) {
			close(hold);
			return xt_install(x, pfd, tmp, base);
		}
	}
	if (r < 0)
		e = errno;
	close(hold);
	if (r < 0)
		return xt_sys(x, e, "linking into place");
	return 0;
}

static int xt_file(struct xt *x, struct archive_entry *e, int pfd,
		   const char *base)
{
	char tmp[NAME_MAX + 1];
	struct timespec ts[2];
	int64_t size = archive_entry_size(e);
	la_ssize_t n;
	int fd = -1, hold = -1, r, tries;
	bool named = false;

	if (archive_entry_size_is_set(e) && size > 0 &&
	    (uint64_t)size > x->max_bytes - x->bytes)
		return nox_err_set(x->err, EFBIG,
				   "tar entry '%s': %lld bytes exceed the "
				   "limit of %llu bytes of file data",
				   x->show, (long long)size,
				   (unsigned long long)x->max_bytes);
	fd = xt_tmpfile(x, pfd, &hold);
	if (fd == -EOPNOTSUPP) {
		/* fallback: the data go under the temporary name */
		named = true;
		for (tries = 0; tries < 16; tries++) {
			xt_tmpname(x, tmp, sizeof(tmp));
			fd = openat(pfd, tmp,
				    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
					O_CLOEXEC | O_NOCTTY,
				    0600);
			if (fd >= 0 || errno != EEXIST)
				break;
		}
		if (fd < 0)
			return xt_sys(x, errno, "creating");
	} else if (fd < 0) {
		return xt_sys(x, -fd, "creating");
	}
	for (;;) {
		n = archive_read_data(x->a, x->buf, TAR_CHUNK);
		if (n == 0)
			break;
		if (n < 0) {
			r = xt_arch_err(x, "reading data");
			goto fail;
		}
		x->bytes += (uint64_t)n;
		if (x->bytes > x->max_bytes) {
			r = nox_err_set(x->err, EFBIG,
					"tar entry '%s': file data exceed the "
					"limit of %llu bytes",
					x->show,
					(unsigned long long)x->max_bytes);
			goto fail;
		}
		r = fdio_write_all(fd, x->buf, (size_t)n);
		if (r < 0) {
			r = xt_sys(x, -r, "writing");
			goto fail;
		}
	}
	xt_times(e, ts);
	if (fchmod(fd, xt_mode(e)) < 0 || futimens(fd, ts) < 0) {
		r = xt_sys(x, errno, "setting mode and times");
		goto fail;
	}
	r = close(fd);
	fd = -1;
	if (r < 0) {
		r = xt_sys(x, errno, "writing");
		goto fail;
	}
	if (named)
		return xt_install(x, pfd, tmp, base);
	return xt_link(x, hold, pfd, base);
fail:
	if (fd >= 0)
		close(fd);
	if (hold >= 0)
		close(hold); /* the unnamed file goes with it */
	if (named)
		unlinkat(pfd, tmp, 0);
	return r;
}

static int xt_symlink(struct xt *x, struct archive_entry *e, int pfd,
		      const char *base)
{
	const char *target = archive_entry_symlink(e);
	char tmp[NAME_MAX + 1];
	struct timespec ts[2];
	int tries, r = -1;

	if (!target)
		target = archive_entry_symlink_utf8(e);
	if (!target || !target[0])
		return xt_fail(x, EINVAL, "symlink with an empty target");
	if (strnlen(target, PATH_MAX) >= PATH_MAX)
		return xt_fail(x, EINVAL,
			       "symlink target longer than PATH_MAX");
	for (tries = 0; tries < 16; tries++) {
		xt_tmpname(x, tmp, sizeof(tmp));
		r = symlinkat(target, pfd, tmp);
		if (r == 0 || errno != EEXIST)
			break;
	}
	if (r < 0)
		return xt_sys(x, errno, "creating symlink");
	xt_times(e, ts);
	/* Not every filesystem keeps symlink times: best effort. */
	(void)utimensat(pfd, tmp, ts, AT_SYMLINK_NOFOLLOW);
	return xt_install(x, pfd, tmp, base);
}

static int xt_hardlink(struct xt *x, const char *raw, int pfd, const char *base)
{
	char target[PATH_MAX], tmp[NAME_MAX + 1];
	const char *why = NULL, *tbase, *slash;
	bool own = false;
	struct stat st;
	int r, tfd, tries;

	r = tar_norm(raw, target, &why);
	if (r == 0)
		why = "empty name";
	if (r <= 0) {
		char show[TAR_MSG_NAME * 4 + 8];

		return nox_err_set(
		    x->err, EINVAL, "tar entry '%s': hard link target '%s': %s",
		    x->show, tar_show(raw, show, sizeof(show)), why);
	}
	slash = strrchr(target, '/');
	if (slash) {
		target[slash - target] = '\0';
		tfd = tar_openat2(x->dest, target, O_PATH | O_DIRECTORY);
		target[slash - target] = '/';
		tbase = slash + 1;
		own = true;
	} else {
		tfd = x->dest;
		tbase = target;
	}
	if (tfd < 0)
		return xt_fail(x, EINVAL,
			       "hard link target is not a file of the archive");
	if (fstatat(tfd, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    S_ISDIR(st.st_mode)) {
		r = xt_fail(x, EINVAL,
			    "hard link target is not a file of the archive");
		goto out;
	}
	for (tries = 0; tries < 16; tries++) {
		xt_tmpname(x, tmp, sizeof(tmp));
		r = linkat(tfd, tbase, pfd, tmp, 0);
		if (r == 0 || errno != EEXIST)
			break;
	}
	if (r < 0) {
		r = xt_sys(x, errno, "creating hard link");
		goto out;
	}
	r = xt_install(x, pfd, tmp, base);
	/* rename() of one inode over itself leaves the old name. */
	unlinkat(pfd, tmp, 0);
out:
	if (own)
		close(tfd);
	return r;
}

static int xt_dir(struct xt *x, struct archive_entry *e, int pfd,
		  const char *base)
{
	struct xt_dir *d;
	struct stat st;

	if (mkdirat(pfd, base, 0700) < 0) {
		if (errno != EEXIST)
			return xt_sys(x, errno, "creating directory");
		if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return xt_sys(x, errno, "stat");
		if (!S_ISDIR(st.st_mode)) {
			/* A file or symlink in the way: replace it. */
			if (unlinkat(pfd, base, 0) < 0 ||
			    mkdirat(pfd, base, 0700) < 0)
				return xt_sys(x, errno, "creating directory");
		}
	}
	d = nox_array_grow(x->dirs, &x->capdirs, x->ndirs + 1, sizeof(*d));
	if (!d)
		return xt_sys(x, ENOMEM, "recording directory");
	x->dirs = d;
	d = &x->dirs[x->ndirs];
	d->path = strdup(x->name);
	if (!d->path)
		return xt_sys(x, ENOMEM, "recording directory");
	d->seq = x->ndirs++;
	d->mode = xt_mode(e);
	xt_times(e, d->ts);
	return 0;
}

static int xt_entry(struct xt *x, struct archive_entry *e)
{
	const char *raw = archive_entry_pathname(e), *why = NULL, *base;
	const char *link = archive_entry_hardlink(e);
	mode_t type = archive_entry_filetype(e);
	bool own = false;
	int r, pfd;

	if (!raw)
		raw = archive_entry_pathname_utf8(e);
	tar_show(raw, x->show, sizeof(x->show));
	r = tar_norm(raw, x->name, &why);
	if (r < 0)
		return xt_fail(x, EINVAL, why);
	if (!link) {
		switch (type) {
		case AE_IFREG:
		case AE_IFDIR:
		case AE_IFLNK:
			break;
		case AE_IFCHR:
		case AE_IFBLK:
			return xt_fail(x, EINVAL,
				       "device nodes are not allowed");
		case AE_IFIFO:
			return xt_fail(x, EINVAL, "FIFOs are not allowed");
		case AE_IFSOCK:
			return xt_fail(x, EINVAL, "sockets are not allowed");
		default:
			return xt_fail(x, EINVAL, "unknown entry type");
		}
	}
	if (r == 0) {
		/* "." or "./": the destination itself, which exists. */
		if (!link && type == AE_IFDIR)
			return 0;
		return xt_fail(x, EINVAL, "empty name");
	}
	pfd = xt_parent(x, &base, &own);
	if (pfd < 0)
		return pfd;
	if (link)
		r = xt_hardlink(x, link, pfd, base);
	else if (type == AE_IFREG)
		r = xt_file(x, e, pfd, base);
	else if (type == AE_IFDIR)
		r = xt_dir(x, e, pfd, base);
	else
		r = xt_symlink(x, e, pfd, base);
	if (own)
		close(pfd);
	return r;
}

static int xt_dir_cmp(const void *a, const void *b)
{
	const struct xt_dir *x = a, *y = b;
	int c = strcmp(y->path, x->path);

	if (c)
		return c; /* descending: children before parents */
	return x->seq < y->seq ? 1 : (x->seq > y->seq ? -1 : 0);
}

/*
 * Applies the recorded directory modes and times, children first, the
 * last record of a path winning.  Returns the first error (reported only
 * when report is set).
 */
static int xt_fix_dirs(struct xt *x, bool report)
{
	const char *prev = NULL;
	size_t i;
	int r = 0, fd, e;

	if (x->ndirs == 0)
		return 0;
	qsort(x->dirs, x->ndirs, sizeof(*x->dirs), xt_dir_cmp);
	for (i = 0; i < x->ndirs; i++) {
		struct xt_dir *d = &x->dirs[i];

		if (prev && strcmp(prev, d->path) == 0)
			continue;
		prev = d->path;
		e = 0;
		fd = tar_openat2(x->dest, d->path, O_RDONLY | O_DIRECTORY);
		if (fd < 0) {
			e = -fd;
		} else {
			if (fchmod(fd, d->mode) < 0 || futimens(fd, d->ts) < 0)
				e = errno;
			close(fd);
		}
		if (e && r == 0 && report) {
			tar_show(d->path, x->show, sizeof(x->show));
			r = xt_sys(x, e, "setting directory mode and times");
		}
	}
	return r;
}

int nox_tar_extract(int in_fd, int dest_dirfd,
		    const struct nox_tar_limits *limits, struct nox_err *err)
{
	struct archive_entry *e;
	struct xt x;
	size_t i;
	int r = 0, ar;

	nox_err_clear(err);
	memset(&x, 0, sizeof(x));
	x.err = err;
	x.dest = dest_dirfd;
	x.max_bytes =
	    limits && limits->max_bytes ? limits->max_bytes : TAR_DEF_MAX_BYTES;
	x.max_entries = limits && limits->max_entries ? limits->max_entries
						      : TAR_DEF_MAX_ENTRIES;
	if (getrandom(&x.tmprand, sizeof(x.tmprand), GRND_NONBLOCK) !=
	    sizeof(x.tmprand))
		x.tmprand = (uint32_t)getpid() ^ (uint32_t)(uintptr_t)&x;
	x.buf = malloc(TAR_CHUNK);
	x.a = archive_read_new();
	if (!x.buf || !x.a) {
		r = nox_err_set(err, ENOMEM, "tar: out of memory");
		goto out;
	}
	if (tar_reader_open(x.a, in_fd) < 0) {
		r = xt_arch_err(&x, "reading archive");
		goto out;
	}
	for (;;) {
		x.show[0] = '\0';
		ar = archive_read_next_header(x.a, &e);
		if (ar == ARCHIVE_EOF)
			break;
		/* ARCHIVE_WARN: a name not convertible to the locale. */
		if (ar < ARCHIVE_WARN) {
			r = xt_arch_err(&x, "reading archive");
			goto out;
		}
		if (++x.entries > x.max_entries) {
			r = nox_err_set(err, EFBIG,
					"tar: more than %llu entries",
					(unsigned long long)x.max_entries);
			goto out;
		}
		r = xt_entry(&x, e);
		if (r < 0)
			goto out;
	}
out:
	if (x.ndirs) {
		int fr = xt_fix_dirs(&x, r == 0);

		if (r == 0)
			r = fr;
	}
	for (i = 0; i < x.ndirs; i++)
		free(x.dirs[i].path);
	free(x.dirs);
	if (x.a)
		archive_read_free(x.a);
	free(x.buf);
	return r;
}

/* The first entry's data, as it arrives (nox_tar_read_file). */
int nox_tar_read_file(int in_fd, const char *name, nox_tar_data_cb cb, void *ud,
		      int64_t *size, int64_t *mtime_ns, struct nox_err *err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	const char *got, *base;
	const void *buf;
	size_t n, len;
	la_int64_t off;
	int r = 0, ar;

	if (!a)
		return nox_err_set(err, ENOMEM, "tar: out of memory");
	if (tar_reader_open(a, in_fd) < 0) {
		r = nox_err_set(err, EPROTO, "tar: %s",
				archive_error_string(a));
		goto out;
	}
	/* ARCHIVE_WARN: a name not convertible to the locale (a UTF-8 name
	 * in the C locale), as in nox_tar_extract: the raw bytes serve */
	ar = archive_read_next_header(a, &e);
	if (ar == ARCHIVE_EOF || ar < ARCHIVE_WARN) {
		r = nox_err_set(err, EPROTO, "tar: no entry: %s",
				ar == ARCHIVE_EOF ? "an empty archive"
						  : archive_error_string(a));
		goto out;
	}
	got = archive_entry_pathname(e);
	if (!got)
		got = archive_entry_pathname_utf8(e);
	len = got ? strlen(got) : 0;
	while (len > 0 && got[len - 1] == '/')
		len--;
	base = got ? (const char *)memrchr(got, '/', len) : NULL;
	base = base ? base + 1 : got;
	n = strlen(name);
	if (archive_entry_filetype(e) != AE_IFREG || !got ||
	    (size_t)(got + len - base) != n || memcmp(base, name, n) != 0) {
		r = nox_err_set(err, EPROTO,
				"tar: the entry is not the regular file %s",
				name);
		goto out;
	}
	*size = archive_entry_size(e);
	*mtime_ns = (int64_t)archive_entry_mtime(e) * 1000000000ll +
		    archive_entry_mtime_nsec(e);
	for (;;) {
		ar = archive_read_data_block(a, &buf, &len, &off);
		if (ar == ARCHIVE_EOF)
			break;
		if (ar < ARCHIVE_WARN) {
			r = nox_err_set(err, EIO, "tar: %s",
					archive_error_string(a));
			break;
		}
		if (len > 0) {
			int e2 = cb(buf, len, (int64_t)off, ud);

			if (e2 != 0) {
				r = nox_err_set(err, e2 < 0 ? -e2 : e2,
						"tar: %s",
						strerror(e2 < 0 ? -e2 : e2));
				break;
			}
		}
	}
out:
	archive_read_free(a);
	return r;
}

/* The data of the current entry, to ops->data (nox_tar_read_each). */
static int each_data(struct archive *a, const struct nox_tar_each *ops,
		     void *ud, uint64_t *bytes, uint64_t max_bytes,
		     struct nox_err *err)
{
	const void *buf;
	size_t len;
	la_int64_t off;
	int ar, e;

	for (;;) {
		ar = archive_read_data_block(a, &buf, &len, &off);
		if (ar == ARCHIVE_EOF)
			return 0;
		if (ar < ARCHIVE_WARN)
			return nox_err_set(err, EIO, "tar: %s",
					   archive_error_string(a));
		if (len == 0)
			continue;
		*bytes += len;
		if (*bytes > max_bytes)
			return nox_err_set(err, EFBIG,
					   "tar: more than %llu bytes of data",
					   (unsigned long long)max_bytes);
		e = ops->data(buf, len, (int64_t)off, ud);
		if (e != 0) {
			e = e < 0 ? -e : e;
			return nox_err_set(err, e, "tar: %s", strerror(e));
		}
	}
}

int nox_tar_read_each(int in_fd, const struct nox_tar_limits *limits,
		      const struct nox_tar_each *ops, void *ud,
		      struct nox_err *err)
{
	uint64_t max_bytes = limits && limits->max_bytes ? limits->max_bytes
							 : TAR_DEF_MAX_BYTES;
	uint64_t max_entries = limits && limits->max_entries
				   ? limits->max_entries
				   : TAR_DEF_MAX_ENTRIES;
	uint64_t bytes = 0, entries = 0;
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	struct nox_tar_file f;
	const char *raw, *why = NULL;
	char *name = malloc(PATH_MAX);
	int r = 0, ar, er;

	nox_err_clear(err);
	if (!a || !name) {
		r = nox_err_set(err, ENOMEM, "tar: out of memory");
		goto out;
	}
	if (tar_reader_open(a, in_fd) < 0) {
		r = nox_err_set(err, EPROTO, "tar: %s",
				archive_error_string(a));
		goto out;
	}
	for (;;) {
		ar = archive_read_next_header(a, &e);
		if (ar == ARCHIVE_EOF)
			break;
		/* ARCHIVE_WARN: a name not convertible to the locale */
		if (ar < ARCHIVE_WARN) {
			r = nox_err_set(err, EPROTO, "tar: %s",
					archive_error_string(a));
			break;
		}
		if (++entries > max_entries) {
			r = nox_err_set(err, EFBIG,
					"tar: more than %llu entries",
					(unsigned long long)max_entries);
			break;
		}
		raw = archive_entry_pathname(e);
		if (!raw)
			raw = archive_entry_pathname_utf8(e);
		if (tar_norm(raw, name, &why) < 0) {
			r = nox_err_set(err, EPROTO, "tar: %s", why);
			break;
		}
		if (archive_entry_hardlink(e) ||
		    archive_entry_filetype(e) != AE_IFREG || !name[0])
			continue;
		f.name = name;
		f.size = archive_entry_size(e);
		f.mtime_ns = (int64_t)archive_entry_mtime(e) * 1000000000ll +
			     archive_entry_mtime_nsec(e);
		r = ops->file(&f, ud);
		if (r < 0) {
			r = nox_err_set(err, -r, "tar: %s", strerror(-r));
			break;
		}
		if (r == 0)
			continue;
		r = each_data(a, ops, ud, &bytes, max_bytes, err);
		er = ops->end(&f, r, ud);
		if (r == 0 && er != 0) {
			er = er < 0 ? -er : er;
			r = nox_err_set(err, er, "tar: %s", strerror(er));
		}
		if (r < 0)
			break;
	}
out:
	if (a)
		archive_read_free(a);
	free(name);
	return r;
}
