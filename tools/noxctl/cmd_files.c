/*
 * cmd_files.c - upload and download: local trees to and from a sandbox
 * as gzip tars.
 *
 * upload walks the named files and directories itself (never following
 * symlinks), packs exactly that list with nox_tar_pack_list into an
 * unlinked temp file, then hands the file to the backend.  download
 * writes the backend's tar to a file (through a temp name and rename, so
 * a failed download never leaves a half file under the final name) or
 * to an unlinked temp file that nox_tar_extract unpacks.
 *
 * Progress: on a terminal (and without -q) a status line on stderr shows
 * bytes moved.  The backend API has no progress callback, so it is read
 * from the temp file: for uploads the file offset the backend has read up
 * to (shared with our descriptor), for downloads the size written so far.
 * A backend reading with pread() leaves the offset at 0: then a spinner.
 *
 * Limits: FIFOs, sockets and device files are skipped with a warning.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "array_i.h"
#include "noxctl_i.h"

#define MIB (1024.0 * 1024.0)

/* ---- progress line ------------------------------------------------------ */

struct fl_prog {
	int fd;
	bool upload; /* offset of fd, else its size */
	off_t total; /* upload: tar size; download: unknown (0) */
	const char *what;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done; /* protected by mu */
	bool running;
};

static off_t fl_prog_pos(const struct fl_prog *p)
{
	struct stat st;
	off_t off;

	if (p->upload) {
		off = lseek(p->fd, 0, SEEK_CUR);
		return off < 0 ? 0 : off;
	}
	return fstat(p->fd, &st) == 0 ? st.st_size : 0;
}

static void fl_prog_draw(const struct fl_prog *p, unsigned tick)
{
	static const char spin[] = "|/-\\";
	off_t pos = fl_prog_pos(p);
	char bar[31];
	int i, fill;

	if (p->total > 0 && pos > 0) {
		if (pos > p->total)
			pos = p->total;
		fill = (int)(30 * pos / p->total);
		for (i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = '\0';
		fprintf(stderr, "\r\033[K%s [%s] %3d%% %.1f/%.1f MiB", p->what,
			bar, (int)(100 * pos / p->total), (double)pos / MIB,
			(double)p->total / MIB);
	} else if (p->total > 0) {
		fprintf(stderr, "\r\033[K%s %.1f MiB %c", p->what,
			(double)p->total / MIB, spin[tick % 4]);
	} else {
		fprintf(stderr, "\r\033[K%s %.1f MiB %c", p->what,
			(double)pos / MIB, spin[tick % 4]);
	}
	fflush(stderr);
}

static void *fl_prog_main(void *arg)
{
	struct fl_prog *p = arg;
	struct timespec ts;
	unsigned tick = 0;

	pthread_mutex_lock(&p->mu);
	while (!p->done) {
		fl_prog_draw(p, tick++);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 150 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
	pthread_mutex_unlock(&p->mu);
	fprintf(stderr, "\r\033[K");
	fflush(stderr);
	return NULL;
}

/* Starts the status line when stderr is a terminal and not -q. */
static void fl_prog_start(struct fl_prog *p, const struct ctl *c, int fd,
			  bool upload, off_t total, const char *what)
{
	memset(p, 0, sizeof(*p));
	if (!c->tty_err || c->quiet)
		return;
	p->fd = fd;
	p->upload = upload;
	p->total = total;
	p->what = what;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->running = pthread_create(&p->thread, NULL, fl_prog_main, p) == 0;
	if (!p->running) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
	}
}

static void fl_prog_stop(struct fl_prog *p)
{
	if (!p->running)
		return;
	pthread_mutex_lock(&p->mu);
	p->done = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	p->running = false;
}

/* ---- upload ------------------------------------------------------------- */

struct fl_list {
	char **paths; /* owned, each malloc'd */
	size_t n, cap;
	uint64_t bytes; /* regular file data */
};

static void fl_list_cleanup(struct fl_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->paths[i]);
	free(l->paths);
	memset(l, 0, sizeof(*l));
}

static int fl_list_add(struct fl_list *l, const char *path)
{
	char **grown;

	grown = nox_array_grow(l->paths, &l->cap, l->n + 1, sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	l->paths = grown;
	l->paths[l->n] = strdup(path);
	if (!l->paths[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

static int fl_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted, so each directory comes before what is inside it. */
static void fl_list_sort_unique(struct fl_list *l)
{
	size_t i, o;

	if (l->n < 2)
		return;
	qsort(l->paths, l->n, sizeof(*l->paths), fl_cmp);
	for (i = 1, o = 1; i < l->n; i++) {
		if (strcmp(l->paths[i], l->paths[o - 1]) == 0)
			free(l->paths[i]);
		else
			l->paths[o++] = l->paths[i];
	}
	l->n = o;
}

/*
 * Adds the entries of directory rel (relative to dirfd, "" for dirfd
 * itself) recursively.  Returns 0 or an exit code after printing.
 */
static int fl_walk(const struct ctl *c, int dirfd, const char *rel,
		   struct fl_list *l)
{
	char child[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, rc = 0;

	fd = openat(dirfd, rel[0] ? rel : ".",
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return ctl_error(c, "cannot open directory '%s': %s",
				 rel[0] ? rel : ".", strerror(errno));
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return ctl_error(c, "cannot read directory '%s': %s", rel,
				 strerror(errno));
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				rc = ctl_error(c,
					       "cannot read directory "
					       "'%s': %s",
					       rel, strerror(errno));
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(child, sizeof(child), "%s%s%s", rel,
			     rel[0] ? "/" : "",
			     de->d_name) >= (int)sizeof(child)) {
			rc = ctl_error(c, "path too long under '%s'", rel);
			break;
		}
		if (fstatat(dirfd, child, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = ctl_error(c, "cannot stat '%s': %s", child,
				       strerror(errno));
			break;
		}
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) &&
		    !S_ISLNK(st.st_mode)) {
			if (!c->quiet)
				ctl_warn(c,
					 "skipping '%s': not a file, "
					 "directory or symlink",
					 child);
			continue;
		}
		if (fl_list_add(l, child) < 0) {
			rc = ctl_error(c, "out of memory");
			break;
		}
		if (S_ISREG(st.st_mode))
			l->bytes += (uint64_t)st.st_size;
		if (S_ISDIR(st.st_mode)) {
			rc = fl_walk(c, dirfd, child, l);
			if (rc)
				break;
		}
	}
	closedir(d);
	return rc;
}

/*
 * Normalises a FILE argument in place: drops "./" prefixes, repeated and
 * trailing slashes.  "" means the --dir itself.
 */
static void fl_normalise(char *p)
{
	char *r = p, *w = p;

	while (r[0] == '.' && r[1] == '/')
		for (r += 2; *r == '/'; r++)
			;
	while (*r) {
		if (*r == '/' && (r[1] == '/' || r[1] == '\0')) {
			r++;
			continue;
		}
		*w++ = *r++;
	}
	*w = '\0';
	if (strcmp(p, ".") == 0)
		p[0] = '\0';
}

/* Adds one FILE argument; 0 or an exit code. */
static int fl_add_arg(const struct ctl *c, const struct ctl_cmd *cmd, int dirfd,
		      const char *arg, struct fl_list *l)
{
	struct nox_err err;
	char norm[PATH_MAX];
	struct stat st;
	int r;

	if (snprintf(norm, sizeof(norm), "%s", arg) >= (int)sizeof(norm))
		return ctl_usage(c, cmd, "'%.40s...': path too long", arg);
	if (norm[0] == '/')
		return ctl_usage(c, cmd,
				 "'%s': FILE must be relative to --dir (try "
				 "--dir DIR with a relative FILE)",
				 arg);
	fl_normalise(norm);
	if (!norm[0])
		return fl_walk(c, dirfd, "", l);
	nox_err_clear(&err);
	r = nox_path_validate(norm, &err);
	if (r < 0)
		return ctl_usage(c, cmd, "'%s': %s", arg, nox_err_str(&err, r));
	if (fstatat(dirfd, norm, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return ctl_error(c, "cannot stat '%s': %s", arg,
				 strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) &&
	    !S_ISLNK(st.st_mode))
		return ctl_error(c, "'%s' is not a file, directory or symlink",
				 arg);
	if (fl_list_add(l, norm) < 0)
		return ctl_error(c, "out of memory");
	if (S_ISREG(st.st_mode))
		l->bytes += (uint64_t)st.st_size;
	if (S_ISDIR(st.st_mode))
		return fl_walk(c, dirfd, norm, l);
	return 0;
}

enum {
	FL_OPT_DIR = CTL_OPT_CMD,
	FL_OPT_DEST,
	FL_OPT_SRC,
	FL_OPT_EXTRACT,
};

static const struct option fl_up_opts[] = {
    CTL_OPTS_COMMON,
    {"dir", required_argument, NULL, FL_OPT_DIR},
    {"dest", required_argument, NULL, FL_OPT_DEST},
    {NULL, 0, NULL, 0},
};

/* The named options of upload and download, as given. */
struct fl_opts {
	const char *dir, *dest;		 /* upload */
	const char *src, *extract, *out; /* download */
};

static int fl_opt(struct ctl *c, const struct ctl_cmd *cmd, int ch, char *arg,
		  void *ud)
{
	struct fl_opts *o = ud;

	switch (ch) {
	case FL_OPT_DIR:
		o->dir = arg;
		break;
	case FL_OPT_DEST:
		o->dest = arg;
		break;
	case FL_OPT_SRC:
		o->src = arg;
		break;
	case 'x':
	case FL_OPT_EXTRACT:
		o->extract = arg;
		break;
	case 'o':
		o->out = arg;
		break;
	}
	return -1;
}

int cmd_upload(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct fl_opts o = {.dir = "."};
	const char *id;
	struct fl_list l = {0};
	struct fl_prog prog;
	struct nox_err err;
	int i, r, rc, dirfd = -1, fd = -1;
	struct stat st;

	rc = ctl_parse_opts(c, cmd, argc, argv, NULL, fl_up_opts, fl_opt, &o);
	if (rc >= 0)
		return rc;
	if (optind >= argc)
		return ctl_usage(c, cmd, "missing sandbox ID");
	id = argv[optind];
	if (optind + 1 >= argc)
		return ctl_usage(c, cmd, "no FILE to upload");
	rc = ctl_check_id(c, cmd, id);
	if (rc)
		return rc;
	dirfd = open(o.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return ctl_error(c, "--dir '%s': %s", o.dir, strerror(errno));
	for (i = optind + 1; i < argc; i++) {
		rc = fl_add_arg(c, cmd, dirfd, argv[i], &l);
		if (rc)
			goto out;
	}
	fl_list_sort_unique(&l);
	rc = ctl_backend(c);
	if (rc)
		goto out;
	fd = ctl_tmpfile();
	if (fd < 0) {
		rc = ctl_error(c, "cannot create a temp file: %s",
			       strerror(-fd));
		goto out;
	}
	if (c->tty_err && !c->quiet) {
		fprintf(stderr, "packing %zu %s (%.1f MiB)...", l.n,
			l.n == 1 ? "entry" : "entries", (double)l.bytes / MIB);
		fflush(stderr);
	}
	r = nox_tar_pack_list(fd, dirfd, (const char *const *)l.paths, l.n,
			      &err);
	if (c->tty_err && !c->quiet) {
		fprintf(stderr, "\r\033[K");
		fflush(stderr);
	}
	if (r < 0) {
		rc = ctl_error(c, "packing: %s", nox_err_str(&err, r));
		goto out;
	}
	if (fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		rc = ctl_error(c, "temp file: %s", strerror(errno));
		goto out;
	}
	fl_prog_start(&prog, c, fd, true, st.st_size, "uploading");
	r = nox_backend_upload(c->b, id, o.dest, fd, &err);
	fl_prog_stop(&prog);
	if (r < 0) {
		rc = ctl_fail(c, r, &err);
		goto out;
	}
	if (c->tty_err && !c->quiet)
		fprintf(stderr, "uploaded %zu %s (%.1f MiB gzip) to %s:%s\n",
			l.n, l.n == 1 ? "entry" : "entries",
			(double)st.st_size / MIB, id,
			o.dest ? o.dest : NOX_WORKSPACE);
	rc = CTL_EX_OK;
out:
	fl_list_cleanup(&l);
	if (fd >= 0)
		close(fd);
	if (dirfd >= 0)
		close(dirfd);
	return rc;
}

/* ---- download ----------------------------------------------------------- */

static const struct option fl_down_opts[] = {
    CTL_OPTS_COMMON,
    {"src", required_argument, NULL, FL_OPT_SRC},
    {"extract", required_argument, NULL, FL_OPT_EXTRACT},
    {"output", required_argument, NULL, 'o'},
    {NULL, 0, NULL, 0},
};

/* mkdir -p; 0 or -errno. */
static int fl_mkdirs(const char *path)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0777) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0777) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int fl_download_to(struct ctl *c, const char *id, const char *src,
			  int fd, const char *what)
{
	struct fl_prog prog;
	struct nox_err err;
	int r;

	fl_prog_start(&prog, c, fd, false, 0, what);
	r = nox_backend_download(c->b, id, src, fd, &err);
	fl_prog_stop(&prog);
	return r < 0 ? ctl_fail(c, r, &err) : 0;
}

static int fl_download_file(struct ctl *c, const char *id, const char *src,
			    const char *out)
{
	char tmp[PATH_MAX];
	mode_t mask;
	int fd, rc;

	if (strcmp(out, "-") == 0) {
		if (isatty(STDOUT_FILENO))
			return ctl_error(c, "not writing a tar to a terminal "
					    "(redirect it, or use -o FILE)");
		fflush(stdout);
		return fl_download_to(c, id, src, STDOUT_FILENO, "downloading");
	}
	if (snprintf(tmp, sizeof(tmp), "%s.noxctl-XXXXXX", out) >=
	    (int)sizeof(tmp))
		return ctl_error(c, "-o '%s': path too long", out);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return ctl_error(c, "cannot create '%s': %s", tmp,
				 strerror(errno));
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask) < 0) {
		rc = ctl_error(c, "chmod '%s': %s", tmp, strerror(errno));
		goto fail;
	}
	rc = fl_download_to(c, id, src, fd, "downloading");
	if (rc)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		rc = ctl_error(c, "writing '%s': %s", out, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, out) < 0) {
		rc = ctl_error(c, "cannot rename to '%s': %s", out,
			       strerror(errno));
		goto fail;
	}
	return CTL_EX_OK;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

static int fl_download_extract(struct ctl *c, const char *id, const char *src,
			       const char *dir)
{
	struct nox_err err;
	int dirfd, fd, r, rc;

	r = fl_mkdirs(dir);
	if (r < 0)
		return ctl_error(c, "--extract '%s': %s", dir, strerror(-r));
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return ctl_error(c, "--extract '%s': %s", dir, strerror(errno));
	fd = ctl_tmpfile();
	if (fd < 0) {
		close(dirfd);
		return ctl_error(c, "cannot create a temp file: %s",
				 strerror(-fd));
	}
	rc = fl_download_to(c, id, src, fd, "downloading");
	if (rc)
		goto out;
	if (lseek(fd, 0, SEEK_SET) < 0) {
		rc = ctl_error(c, "temp file: %s", strerror(errno));
		goto out;
	}
	r = nox_tar_extract(fd, dirfd, NULL, &err);
	if (r < 0)
		rc = ctl_error(c, "extracting into '%s': %s", dir,
			       nox_err_str(&err, r));
out:
	close(fd);
	close(dirfd);
	return rc;
}

int cmd_download(struct ctl *c, const struct ctl_cmd *cmd, int argc,
		 char **argv)
{
	struct fl_opts o = {0};
	const char *id;
	int rc;

	rc = ctl_parse_opts(c, cmd, argc, argv, "o:x:", fl_down_opts, fl_opt,
			    &o);
	if (rc >= 0)
		return rc;
	rc = ctl_id_arg(c, cmd, argc, argv, &id);
	if (rc)
		return rc;
	if (!o.extract == !o.out)
		return ctl_usage(c, cmd,
				 "give one of --extract DIR or -o FILE");
	if ((o.extract && !o.extract[0]) || (o.out && !o.out[0]))
		return ctl_usage(c, cmd, "empty file name");
	rc = ctl_backend(c);
	if (rc)
		return rc;
	if (o.out)
		return fl_download_file(c, id, o.src, o.out);
	return fl_download_extract(c, id, o.src, o.extract);
}
