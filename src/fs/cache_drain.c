/*
 * cache_drain.c - the drain of the cache layer: the journal is sent from
 * its head.  A run of uploads, creates, mkdirs and symlinks (with
 * chmod/utimens of paths in the run folded in) becomes one gzip tar
 * upload; a run of other operations becomes one exec of a fixed shell
 * script with the names as argv (or, on a server with the nox.fs
 * extension, one fs/ops request, or one fs/op call each without nox.ops).  A rename or unlink ends a run, so
 * nothing older is ever uploaded after it, except where the tar gives
 * the same result: a rename of a file the run creates (an editor's
 * save) and an unlink of a name the run creates again fold into it.  A snapshot with more than two
 * parts of data (64 MiB each, holes not counted) goes as one tar per part
 * plus one exec that joins them, so the server's upload limit does not
 * bound file size.  The flusher thread drains in the background.
 */
#include <linux/fs.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_i.h"

static bool transport_err(int r)
{
	return r == -ECONNREFUSED || r == -ETIMEDOUT || r == -EIO ||
	       r == -EAGAIN || r == -EPROTO || r == -ECONNRESET ||
	       r == -EHOSTUNREACH || r == -ENETUNREACH || r == -ENOMEM ||
	       r == -ENOSPC || r == -EINTR;
}

/* ---- draining: one tar upload per run of uploads -------------------- */

static bool tar_op(enum jop op)
{
	return op == J_UPLOAD || op == J_CREATE || op == J_MKDIR ||
	       op == J_SYMLINK;
}

/* One path of a batch in its final state (what the tar will hold). */
struct bent {
	char *path;
	unsigned mode;		/* type | permissions */
	int64_t mtime_ns;	/* -2: the time of packing */
	const struct jent *src; /* regular file: whose journal data, or
				   NULL: empty */
	const char *mem;	/* or its lazy entry's snapshot in memory */
	int64_t size;
	char *target; /* symlink */
	bool fresh;   /* first staged by a create: the server has no such
			 name before the batch */
	bool gone;    /* renamed away within the batch: not packed */
};

#define BATCH_SLOTS 16384 /* > 2 * BATCH_MAX_FILES, a power of 2 */
/* a server extracts an upload at least this fast (bytes/s, holes included):
 * it may take op_timeout plus a second per ANSWER_BPS to answer */
#define ANSWER_BPS ((long long)32 << 20)

struct batch {
	struct jent **v; /* the entries taken from the journal head */
	size_t n;
	struct bent *ents; /* first appearance order */
	size_t nents, capents;
	uint32_t *slot; /* BATCH_SLOTS indexes + 1 into ents (0: free) */
	long long bytes;
	uint32_t *vb;  /* per entry of v: index + 1 into ents of what it
			  staged (0: nothing), followed across renames */
	size_t staged; /* entries of v staged so far */
	uint32_t last; /* index + 1 into ents: the last tar op's path */
};

static void batch_cleanup(struct batch *b)
{
	size_t i;

	for (i = 0; i < b->nents; i++) {
		free(b->ents[i].path);
		free(b->ents[i].target);
	}
	free(b->ents);
	free(b->slot);
	free(b->vb);
	free(b->v);
	memset(b, 0, sizeof(*b));
}

static uint32_t path_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The slot of path in b (free, or holding path). */
static uint32_t *batch_slot(struct batch *b, const char *path)
{
	uint32_t i = path_hash(path) & (BATCH_SLOTS - 1);

	while (b->slot[i] && strcmp(b->ents[b->slot[i] - 1].path, path) != 0)
		i = (i + 1) & (BATCH_SLOTS - 1);
	return &b->slot[i];
}

static struct bent *batch_find(struct batch *b, const char *path)
{
	uint32_t *sl;

	if (!b->slot)
		return NULL;
	sl = batch_slot(b, path);
	return *sl ? &b->ents[*sl - 1] : NULL;
}

static struct bent *batch_add(struct batch *b, const char *path)
{
	struct bent *x;
	uint32_t *sl;

	if (!b->slot) {
		b->slot = calloc(BATCH_SLOTS, sizeof(*b->slot));
		if (!b->slot)
			return NULL;
	}
	if (b->nents == b->capents) {
		size_t nc = b->capents ? b->capents * 2 : 64;
		struct bent *nv = realloc(b->ents, nc * sizeof(*nv));

		if (!nv)
			return NULL;
		b->ents = nv;
		b->capents = nc;
	}
	x = &b->ents[b->nents];
	memset(x, 0, sizeof(*x));
	x->path = strdup(path);
	if (!x->path)
		return NULL;
	sl = batch_slot(b, path);
	b->nents++;
	*sl = (uint32_t)b->nents;
	return x;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts_ns(&ts);
}

/*
 * The tree file of upload e has other names (a hard link): a tar would
 * replace the server's file by a new one and split the link there, so
 * it is written in place instead (upload_parts, in_place).
 */
static bool upload_linked(struct cache *c, const struct jent *e)
{
	const char *base;
	struct stat st;
	int pfd, r;

	if (e->op != J_UPLOAD || e->ino == 0)
		return false;
	if (fdio_parent(c->tree_fd, e->path, &pfd, &base) < 0)
		return false;
	r = fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW);
	close(pfd);
	return r == 0 && S_ISREG(st.st_mode) && st.st_ino == e->ino &&
	       st.st_nlink > 1;
}

/*
 * Folds rename e into batch b when its source is a regular file the
 * batch itself creates (an editor's save: write a temp file, rename it
 * over the target): the tar then holds the target with the temp file's
 * content, mode and mtime, and no temp file, which the server never
 * had.  Extracting a file replaces what stood at the target by a new
 * inode, as the rename does (other names of the old target keep the old
 * content); the source has no other name, as a link ends the batch.
 * 1: folded; 0: the rename ends the batch; <0: error.
 */
static int stage_rename(struct cache *c, struct batch *b, const struct jent *e)
{
	struct bent *x, *y;
	uint32_t xi, yi;
	size_t k;

	if ((e->num & RENAME_EXCHANGE) || !e->path2)
		return 0;
	x = batch_find(b, e->path);
	if (!x || x->gone || !x->fresh || !S_ISREG(x->mode))
		return 0;
	y = batch_find(b, e->path2);
	if (y && !y->gone && !S_ISREG(y->mode) && !S_ISLNK(y->mode))
		return 0;
	if (!y) {
		if (b->nents >= BATCH_MAX_FILES)
			return 0;
		y = batch_add(b, e->path2);
		if (!y)
			return -ENOMEM;
		/* the server may have had this name */
		y->fresh = false;
		x = batch_find(b, e->path); /* ents may have moved */
	}
	xi = (uint32_t)(x - b->ents) + 1;
	yi = (uint32_t)(y - b->ents) + 1;
	free(y->target);
	y->target = NULL;
	y->mode = x->mode;
	y->mtime_ns = x->mtime_ns;
	y->src = x->src;
	y->mem = x->mem;
	y->size = x->size;
	y->gone = false;
	x->gone = true;
	x->src = NULL;
	x->mem = NULL;
	x->size = 0;
	for (k = 0; k < b->staged; k++) {
		if (b->vb[k] == xi)
			b->vb[k] = yi;
	}
	return 1;
}

/*
 * b->v[i] is an unlink that a create of the same name soon after it in
 * b->v makes redundant: extracting the new file replaces the server's
 * (a non-directory, as it was unlinked) by a new inode, as unlink and
 * create do.  Only tar operations (and chmod/utimens) of other names
 * may come between, so nothing can see the name in between.
 */
static bool unlink_replaced(const struct batch *b, size_t i)
{
	const struct jent *u = b->v[i];
	size_t j;

	if (u->op != J_UNLINK)
		return false;
	for (j = i + 1; j < b->n && j < i + 64; j++) {
		const struct jent *e = b->v[j];

		if (e->op == J_CREATE && strcmp(e->path, u->path) == 0)
			return true;
		if ((!tar_op(e->op) && e->op != J_CHMOD &&
		     e->op != J_UTIMENS) ||
		    strcmp(e->path, u->path) == 0)
			return false;
	}
	return false;
}

/*
 * An unlink that a create in the batch makes redundant (see
 * unlink_replaced) folds in as a name the tar replaces: not fresh, so
 * a rename of the new file is not folded (it must remove the name on
 * the server).  1: folded; 0: ends the batch.
 */
static int stage_unlink(struct cache *c, struct batch *b, const struct jent *e)
{
	struct bent *x;

	if (c->one_per_tar || !unlink_replaced(b, b->staged) ||
	    batch_find(b, e->path) || b->nents >= BATCH_MAX_FILES)
		return 0;
	x = batch_add(b, e->path);
	if (!x)
		return -ENOMEM;
	x->mode = S_IFREG;
	x->gone = true;
	return 1;
}

/*
 * Adds entry e to batch b (in memory: names, modes, times and which
 * journal data; nothing is copied).  1: added; 0: e does not belong in
 * this batch (ends it); <0: error (-ENOENT: its data is missing).
 */
static int stage(struct cache *c, struct batch *b, const struct jent *e)
{
	struct bent *x;
	struct stat st;

	b->last = 0;
	if (e->op == J_RENAME)
		return stage_rename(c, b, e);
	if (e->op == J_UNLINK)
		return stage_unlink(c, b, e);
	if (!tar_op(e->op)) {
		if (e->op != J_CHMOD && e->op != J_UTIMENS)
			return 0;
		/* fold only into a path this batch sends */
		x = batch_find(b, e->path);
		if (!x || x->gone)
			return 0;
		if (e->op == J_CHMOD) {
			if (!S_ISLNK(x->mode))
				x->mode =
				    (x->mode & S_IFMT) | (e->mode & 07777);
		} else if (e->mtime_ns == -1) {
			x->mtime_ns = now_ns();
		} else if (e->mtime_ns != -2) {
			x->mtime_ns = e->mtime_ns;
		}
		return 1;
	}
	if (upload_linked(c, e) || cache_put_wanted(c, e))
		return 0; /* alone: in place, or by PUT (drain_step) */
	x = batch_find(b, e->path);
	if (!x && (b->nents >= BATCH_MAX_FILES ||
		   (b->nents > 0 && b->bytes + e->size > BATCH_MAX_BYTES)))
		return 0;
	if (x && S_ISDIR(x->mode) != (e->op == J_MKDIR))
		return 0;
	if (e->op == J_UPLOAD && e->lazy) {
		st.st_size = e->size;
	} else if (e->op == J_UPLOAD) {
		int r = journal_data_stat(&c->jr, e, &st);

		if (r < 0)
			return r;
	}
	if (!x) {
		x = batch_add(b, e->path);
		if (!x)
			return -ENOMEM;
		x->fresh = e->op == J_CREATE;
	}
	x->gone = false;
	b->last = (uint32_t)(x - b->ents) + 1;
	free(x->target);
	x->target = NULL;
	x->src = NULL;
	x->mem = NULL;
	x->size = 0;
	x->mtime_ns = e->mtime_ns >= 0 ? e->mtime_ns : -2;
	switch (e->op) {
	case J_UPLOAD:
		x->mode = S_IFREG | (e->mode & 07777);
		x->src = e;
		x->mem = e->lazy ? (e->mem ? e->mem : "") : NULL;
		x->size = st.st_size;
		b->bytes += st.st_size;
		break;
	case J_CREATE:
		x->mode = S_IFREG | (e->mode & 07777);
		break;
	case J_MKDIR:
		x->mode = S_IFDIR | (e->mode & 07777);
		break;
	default: /* J_SYMLINK */
		x->mode = S_IFLNK | 0777;
		x->target = strdup(e->path2 ? e->path2 : "");
		if (!x->target)
			return -ENOMEM;
		break;
	}
	return 1;
}

/*
 * Uploads the tar packed into tfd (if r, the packing's result, is 0) to
 * the workspace root; closes tfd unless it is the reused batch file.
 * bytes: what it extracts to, holes included: the server may take
 * op_timeout plus a second per ANSWER_BPS of it to answer once it has
 * the tar (a 4 GiB sparse file is a small tar and minutes of zeros).
 */
static int send_tar(struct cache *c, int tfd, int r, long long bytes,
		    struct nox_err *err)
{
	long answer_ms = (long)c->op_timeout * 1000L +
			 (long)(bytes / (ANSWER_BPS / 1000));

	if (r == 0 && lseek(tfd, 0, SEEK_SET) < 0)
		r = nox_err_set(err, errno, "seek: %s", strerror(errno));
	if (r == 0)
		r = nox_backend_upload_wait(c->be, c->sb->id, NULL, tfd,
					    answer_ms, err);
	if (tfd != c->batch_fd)
		close(tfd);
	else if (ftruncate(tfd, 0) < 0) /* no space held between batches */
		nox_log(NOX_LOG_DEBUG, "%s: emptying the batch file: %s",
			c->sb->id, strerror(errno));
	return r;
}

/* CACHE/<host>/<id>/tmp/batch.tar, opened; or -errno. */
int cache_drain_batch_open(struct cache *c)
{
	int fd;

	(void)mkdirat(c->dir_fd, "tmp", 0700);
	fd = openat(c->dir_fd, "tmp/batch.tar",
		    O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

/*
 * With drain_mu: the batch tar file, emptied.  One file for the cache's
 * life rather than one per upload (each new inode costs ext4 a scan of
 * the recently deleted ones).
 */
static int batch_file(struct cache *c)
{
	if (c->batch_fd >= 0 && (ftruncate(c->batch_fd, 0) < 0 ||
				 lseek(c->batch_fd, 0, SEEK_SET) < 0)) {
		close(c->batch_fd);
		c->batch_fd = -1;
	}
	if (c->batch_fd < 0)
		c->batch_fd = cache_drain_batch_open(c);
	return c->batch_fd;
}

/*
 * The gzip level of a batch's tar entries v[0..n) (bytes in all): by its
 * biggest file on disk when that is half of the bytes
 * (cache_put_gzip_level).
 */
static int batch_level(const struct nox_tar_entry *v, size_t n,
		       long long bytes)
{
	size_t i, big = 0;
	int fd, level;

	for (i = 1; i < n; i++)
		if (v[i].size > v[big].size)
			big = i;
	if (n == 0 || !v[big].file || v[big].dirfd == AT_FDCWD ||
	    v[big].size * 2 < bytes)
		return 1;
	fd = openat(v[big].dirfd, v[big].file,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 1;
	level = cache_put_gzip_level(fd, v[big].size);
	close(fd);
	return level;
}

/* Uploads batch b as one tar (contents straight from the journal). */
static int upload_batch(struct cache *c, struct batch *b, struct nox_err *err)
{
	struct nox_tar_entry *v;
	char(*names)[40];
	struct nox_tar_entry *w;
	int64_t packed = now_ns();
	size_t i, n = 0;
	int tfd, r;

	v = calloc(b->nents ? b->nents : 1, sizeof(*v));
	names = calloc(b->nents ? b->nents : 1, sizeof(*names));
	if (!v || !names) {
		free(v);
		free(names);
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	for (i = 0; i < b->nents; i++) {
		struct bent *x = &b->ents[i];

		if (x->mtime_ns == -2)
			x->mtime_ns = packed;
		if (x->gone)
			continue; /* renamed within the batch */
		w = &v[n];
		w->name = x->path;
		w->mode = x->mode;
		w->mtime_ns = x->mtime_ns;
		w->fd = -1;
		w->dirfd = -1;
		w->size = x->size;
		w->target = x->target;
		if (x->mem) {
			w->data = x->mem;
		} else if (x->src) {
			w->dirfd = journal_data_at(&c->jr, x->src, names[n],
						   sizeof(names[n]));
			w->file = names[n];
		} else {
			/* an empty file: any empty content will do */
			w->file = "/dev/null";
			w->dirfd = AT_FDCWD;
		}
		n++;
	}
	tfd = batch_file(c);
	if (tfd < 0) {
		r = nox_err_set(err, tfd, "cache tmp file: %s", strerror(-tfd));
	} else {
		long long bytes = 0;

		for (i = 0; i < n; i++)
			bytes += v[i].size > 0 ? v[i].size : 0;
		r = nox_tar_pack_entries_level(tfd, v, n,
					       batch_level(v, n, bytes), err);
		r = send_tar(c, tfd, r, bytes, err);
	}
	free(v);
	free(names);
	return r;
}

/* ---- draining: metadata operations ---------------------------------- */

/*
 * The fixed interpreter of metadata operations: the operations and their
 * names come as argv, never as shell text.  Each step tolerates having
 * been done already (a replay after a crash).  Prints the numbers of the
 * steps that failed.
 */
static const char ops_script[] =
    "n=0; bad=\n"
    "while [ $# -gt 0 ]; do\n"
    "  op=$1; shift; r=0\n"
    "  case $op in\n"
    "  chmod) chmod \"$1\" -- \"$2\" || r=1; shift 2 ;;\n"
    "  atime) touch -h -c -a -d \"@$1\" -- \"$2\" || r=1; shift 2 ;;\n"
    "  mtime) touch -h -c -m -d \"@$1\" -- \"$2\" || r=1; shift 2 ;;\n"
    "  anow) touch -h -c -a -- \"$1\" || r=1; shift ;;\n"
    "  mnow) touch -h -c -m -- \"$1\" || r=1; shift ;;\n"
    "  unlink) rm -f -- \"$1\" || r=1; shift ;;\n"
    "  rmdir) if [ -e \"$1\" ] || [ -L \"$1\" ]; then rmdir -- \"$1\" ||"
    " r=1; fi; shift ;;\n"
    "  rename) if [ ! -e \"$1\" ] && [ ! -L \"$1\" ] && { [ -e \"$2\" ] ||"
    " [ -L \"$2\" ]; }; then :; else mv -f -T -- \"$1\" \"$2\" || r=1;"
    " fi; shift 2 ;;\n"
    "  exchange) t=${1%/*}; [ \"$t\" = \"$1\" ] && t=.noxfs-x$$ ||"
    " t=$t/.noxfs-x$$; mv -T -- \"$1\" \"$t\" && mv -T --"
    " \"$2\" \"$1\" && mv -T -- \"$t\" \"$2\" || r=1; shift 2 ;;\n"
    "  link) if [ ! -e \"$2\" ]; then ln -T -- \"$1\" \"$2\" || r=1; fi;"
    " shift 2 ;;\n"
    "  truncate) truncate -s \"$1\" -- \"$2\" || r=1; shift 2 ;;\n"
    "  mkfifo) if [ ! -p \"$2\" ]; then mkfifo -m \"$1\" -- \"$2\" ||"
    " r=1; fi; shift 2 ;;\n"
    "  mkdir) if [ ! -d \"$2\" ] || [ -L \"$2\" ]; then mkdir -m \"$1\" --"
    " \"$2\" || r=1; fi; shift 2 ;;\n"
    "  mksock) r=1; shift 2 ;;\n"
    "  *) echo \"noxfs: unknown step $op\" >&2; exit 2 ;;\n"
    "  esac\n"
    "  [ $r = 0 ] || bad=\"$bad $n\"\n"
    "  n=$((n+1))\n"
    "done\n"
    "[ -z \"$bad\" ] || { echo \"failed:$bad\"; exit 1; }\n";

struct argvb {
	char **v;
	size_t n, cap;
	size_t bytes;
};

static int argv_push(struct argvb *a, const char *s, const char *prefix)
{
	size_t pl = prefix ? strlen(prefix) : 0, sl = strlen(s);
	char *d;

	if (a->n + 2 > a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 64;
		char **nv = realloc(a->v, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		a->v = nv;
		a->cap = nc;
	}
	d = malloc(pl + sl + 1);
	if (!d)
		return -ENOMEM;
	if (pl)
		memcpy(d, prefix, pl);
	memcpy(d + pl, s, sl + 1);
	a->v[a->n++] = d;
	a->v[a->n] = NULL;
	a->bytes += pl + sl + 1;
	return 0;
}

static void argv_free(struct argvb *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

static void fmt_time(char *buf, size_t size, int64_t ns)
{
	long long s = ns / 1000000000ll;
	long f = (long)(ns % 1000000000ll);

	if (f < 0) {
		s--;
		f += 1000000000l;
	}
	snprintf(buf, size, "%lld.%09ld", s, f);
}

/* Adds e's steps to the script argv; the step count in *steps. */
static int script_add(struct argvb *a, const struct jent *e, unsigned *steps)
{
	char num[64];
	int r = 0;

#define P(s) (r = r ? r : argv_push(a, (s), NULL))
	/* workspace paths as they are: relative to the command's working
	 * directory /workspace, after "--" in every step, so a name that
	 * starts with '-' is no option and a 4,095-byte path stays one */
#define W(s) (r = r ? r : argv_push(a, (s), NULL))
	switch (e->op) {
	case J_CHMOD:
		snprintf(num, sizeof(num), "%04o", (unsigned)e->mode);
		P("chmod");
		P(num);
		W(e->path);
		(*steps)++;
		break;
	case J_UTIMENS:
		if (e->atime_ns == -1) {
			P("anow");
			W(e->path);
			(*steps)++;
		} else if (e->atime_ns != -2) {
			fmt_time(num, sizeof(num), e->atime_ns);
			P("atime");
			P(num);
			W(e->path);
			(*steps)++;
		}
		if (e->mtime_ns == -1) {
			P("mnow");
			W(e->path);
			(*steps)++;
		} else if (e->mtime_ns != -2) {
			fmt_time(num, sizeof(num), e->mtime_ns);
			P("mtime");
			P(num);
			W(e->path);
			(*steps)++;
		}
		break;
	case J_UNLINK:
		P("unlink");
		W(e->path);
		(*steps)++;
		break;
	case J_RMDIR:
		P("rmdir");
		W(e->path);
		(*steps)++;
		break;
	case J_RENAME:
		P((e->num & RENAME_EXCHANGE) ? "exchange" : "rename");
		W(e->path);
		W(e->path2);
		(*steps)++;
		break;
	case J_LINK:
		P("link");
		W(e->path);
		W(e->path2);
		(*steps)++;
		break;
	case J_TRUNCATE:
		snprintf(num, sizeof(num), "%lld", e->num);
		P("truncate");
		P(num);
		W(e->path);
		(*steps)++;
		break;
	case J_MKDIR:
		snprintf(num, sizeof(num), "%04o", (unsigned)e->mode);
		P("mkdir");
		P(num);
		W(e->path);
		(*steps)++;
		break;
	case J_MKNOD:
		/* mksock: no maker in coreutils; fails, so it is logged
		 * (only a journal written for a nox.fs server has one) */
		snprintf(num, sizeof(num), "%04o", (unsigned)e->mode);
		P(e->num == S_IFIFO ? "mkfifo" : "mksock");
		P(num);
		W(e->path);
		(*steps)++;
		break;
	default:
		break;
	}
#undef P
#undef W
	return r;
}

/*
 * The script said "failed: K..." (step numbers): names each failed
 * operation on a line of its own, so a refused one is never silent.
 */
static void script_failed(struct cache *c, struct jent **v, size_t n,
			  const unsigned *ends,
			  const struct nox_exec_result *res)
{
	const char *p, *end;
	unsigned long k;
	size_t i;

	if (!res->out)
		return;
	p = memmem(res->out, res->out_len, "failed:", 7);
	if (!p)
		return;
	end = res->out + res->out_len;
	for (p += 7; p < end;) {
		while (p < end && *p == ' ')
			p++;
		if (p >= end || *p < '0' || *p > '9')
			break;
		/* by hand: the output need not end in a NUL */
		for (k = 0; p < end && *p >= '0' && *p <= '9' && k < 1000000;
		     p++)
			k = k * 10 + (unsigned long)(*p - '0');
		for (i = 0; i < n && ends[i] <= k; i++)
			;
		if (i < n)
			nox_log(NOX_LOG_WARN,
				"%s: %s %s: refused by the server (the "
				"mount shows the sandbox's state at the next "
				"listing)",
				c->sb->id, journal_op_name(v[i]->op),
				v[i]->path);
	}
}

static int run_script(struct cache *c, struct jent **v, size_t n,
		      struct nox_err *err)
{
	struct nox_exec_req req = {.timeout_seconds = 120};
	struct nox_exec_result res;
	struct argvb a = {0};
	unsigned steps = 0, *ends;
	size_t i;
	int r;

	/* ends[i]: the steps of v[0..i]; names a failed step's entry */
	ends = calloc(n ? n : 1, sizeof(*ends));
	r = ends ? argv_push(&a, "sh", NULL) : -ENOMEM;
	if (r == 0)
		r = argv_push(&a, "-c", NULL);
	if (r == 0)
		r = argv_push(&a, ops_script, NULL);
	if (r == 0)
		r = argv_push(&a, "noxfs-ops", NULL);
	for (i = 0; r == 0 && i < n; i++) {
		r = script_add(&a, v[i], &steps);
		ends[i] = steps;
	}
	if (r < 0) {
		r = nox_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (steps == 0)
		goto out;
	req.argv = (const char *const *)a.v;
	/* metadata: the deadline of other requests, stretched for a long
	 * run (write-back), so a stalled server costs one op_timeout */
	req.deadline_ms = (long)c->op_timeout * 1000L + (long)steps * 50L;
	if (req.deadline_ms > (long)req.timeout_seconds * 1000L)
		req.deadline_ms = 0; /* the command's limit plus margin */
	memset(&res, 0, sizeof(res));
	r = nox_backend_exec(c->be, c->sb->id, &req, &res, err);
	if (r < 0)
		goto out;
	if (res.exit_code != 0) {
		nox_log(NOX_LOG_WARN,
			"%s: %u metadata operations: exit %d: %.*s%.200s",
			c->sb->id, steps, res.exit_code, (int)res.out_len,
			res.out ? res.out : "", res.err ? res.err : "");
		script_failed(c, v, n, ends, &res);
	}
	nox_exec_result_cleanup(&res);
out:
	argv_free(&a);
	free(ends);
	return r;
}

/* e as an operation of nox_backend_batch (strings pointed at). */
static struct nox_fsop fsop_of(const struct jent *e)
{
	struct nox_fsop o;
	int64_t v[2] = {e->atime_ns, e->mtime_ns};
	int i;

	memset(&o, 0, sizeof(o));
	o.path = e->path;
	o.path2 = e->path2;
	switch (e->op) {
	case J_CHMOD:
		o.code = NOX_FSOP_CHMOD;
		o.mode = e->mode;
		break;
	case J_UTIMENS:
		o.code = NOX_FSOP_UTIMENS;
		for (i = 0; i < 2; i++) {
			if (v[i] == -2) {
				o.ts[i].tv_nsec = UTIME_OMIT;
			} else if (v[i] == -1) {
				o.ts[i].tv_nsec = UTIME_NOW;
			} else {
				o.ts[i].tv_sec = (time_t)(v[i] / 1000000000ll);
				o.ts[i].tv_nsec = (long)(v[i] % 1000000000ll);
			}
		}
		break;
	case J_UNLINK:
		o.code = NOX_FSOP_UNLINK;
		break;
	case J_RMDIR:
		o.code = NOX_FSOP_RMDIR;
		break;
	case J_RENAME:
		o.code = NOX_FSOP_RENAME;
		o.flags = (unsigned)e->num;
		break;
	case J_LINK:
		o.code = NOX_FSOP_LINK;
		break;
	case J_TRUNCATE:
		o.code = NOX_FSOP_TRUNCATE;
		o.size = (off_t)e->num;
		break;
	case J_MKNOD:
		o.code = NOX_FSOP_MKNOD;
		o.mode = (mode_t)e->num | e->mode;
		break;
	default:
		o.code = (enum nox_fsop_code)-1; /* not a metadata op */
		break;
	}
	return o;
}

/* nox.fs: one call per operation; errors that mean "already done" pass. */
static int run_ext(struct cache *c, const struct jent *e, struct nox_err *err)
{
	struct timespec ts[2];
	int64_t v[2] = {e->atime_ns, e->mtime_ns};
	int r = 0, i;

	switch (e->op) {
	case J_CHMOD:
		r = nox_backend_chmod(c->be, c->sb->id, e->path, e->mode, err);
		break;
	case J_UTIMENS:
		for (i = 0; i < 2; i++) {
			if (v[i] == -2) {
				ts[i].tv_sec = 0;
				ts[i].tv_nsec = UTIME_OMIT;
			} else if (v[i] == -1) {
				ts[i].tv_sec = 0;
				ts[i].tv_nsec = UTIME_NOW;
			} else {
				ts[i].tv_sec = (time_t)(v[i] / 1000000000ll);
				ts[i].tv_nsec = (long)(v[i] % 1000000000ll);
			}
		}
		r = nox_backend_utimens(c->be, c->sb->id, e->path, ts, err);
		break;
	case J_UNLINK:
		r = nox_backend_unlink(c->be, c->sb->id, e->path, err);
		if (r == -ENOENT)
			r = 0;
		break;
	case J_RMDIR:
		r = nox_backend_rmdir(c->be, c->sb->id, e->path, err);
		if (r == -ENOENT)
			r = 0;
		break;
	case J_RENAME:
		r = nox_backend_rename(c->be, c->sb->id, e->path, e->path2,
				       (unsigned)e->num, err);
		if (r == -ENOENT) {
			struct stat st;

			if (nox_backend_stat(c->be, c->sb->id, e->path2, &st,
					     NULL) == 0)
				r = 0;
		}
		break;
	case J_LINK:
		r = nox_backend_link(c->be, c->sb->id, e->path, e->path2, err);
		if (r == -EEXIST)
			r = 0;
		break;
	case J_TRUNCATE:
		r = nox_backend_truncate(c->be, c->sb->id, e->path,
					 (off_t)e->num, err);
		break;
	case J_MKNOD:
		r = nox_backend_mknod(c->be, c->sb->id, e->path,
				      (mode_t)e->num | e->mode, err);
		if (r == -EEXIST) /* a replay */
			r = 0;
		break;
	default:
		break;
	}
	return r;
}

/* ---- big files: uploaded in parts, joined by one exec ---------------- */

static const char join_script[] =
    "d=$1; t=$2; m=$3; mt=$4; n=$5; i=0\n"
    ": > \"$d/all\" || exit 1\n"
    "while [ $i -lt $n ]; do\n"
    "  cat \"$d/p$i\" >> \"$d/all\" || exit 1\n"
    "  rm -f \"$d/p$i\"; i=$((i+1))\n"
    "done\n"
    "if [ \"$6\" = inplace ] && [ -f \"$t\" ] && [ ! -L \"$t\" ]; then\n"
    "  chmod u+w -- \"$t\"; cat -- \"$d/all\" > \"$t\" &&\n"
    "  chmod \"$m\" -- \"$t\" &&\n"
    "  touch -m -d \"@$mt\" -- \"$t\" && rm -rf -- \"$d\"; exit\n"
    "fi\n"
    "chmod \"$m\" \"$d/all\" && touch -m -d \"@$mt\" \"$d/all\" &&\n"
    "mkdir -p -- \"$(dirname -- \"$t\")\" &&\n"
    "mv -f -T -- \"$d/all\" \"$t\" && rm -rf -- \"$d\"\n";

/* An upload needs parts when its snapshot holds more than two parts. */
static bool needs_parts(struct cache *c, struct jent *e)
{
	struct stat st;
	int fd;
	bool big;

	if (e->op != J_UPLOAD)
		return false;
	if (e->lazy && e->size <= 2 * c->part_size)
		return false; /* in memory, small */
	fd = journal_data_open(&c->jr, e);
	if (fd < 0)
		return false;
	big = fstat(fd, &st) == 0 &&
	      (long long)st.st_blocks * 512 > 2 * c->part_size;
	close(fd);
	return big;
}

/* Copies len bytes at off of in_fd to the start of out_fd. */
static int copy_slice(int in_fd, off_t off, off_t len, int out_fd)
{
	char buf[65536];
	off_t done = 0;
	ssize_t n;

	while (done < len) {
		size_t want = (size_t)(len - done) < sizeof(buf)
				  ? (size_t)(len - done)
				  : sizeof(buf);

		n = pread(in_fd, buf, want, off + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		if (write(out_fd, buf, (size_t)n) != n)
			return errno ? -errno : -EIO;
		done += n;
	}
	return 0;
}

/*
 * Sends upload e as parts of c->part_size, each its own tar into
 * /workspace/.noxfs-upload-SEQ/, then one exec joins them into place:
 * renamed over the target, or with in_place written into the target's
 * own inode, so the server's other names of a hard link see it.
 */
static int upload_parts(struct cache *c, struct jent *e, bool in_place,
			struct nox_err *err)
{
	char dir[64], sname[64], part[96], num[4][32], target[PATH_MAX + 2];
	struct nox_exec_req req = {.timeout_seconds = 600};
	struct nox_exec_result res;
	const char *argv[11];
	struct stat st;
	long long k = 0, off;
	int dfd, sfd = -1, r = 0, level;

	dfd = journal_data_open(&c->jr, e);
	if (dfd < 0 || fstat(dfd, &st) < 0) {
		r = nox_err_set(err, ENOENT, "snapshot of %s is missing",
				e->path);
		goto out;
	}
	snprintf(dir, sizeof(dir), ".noxfs-upload-%" PRIu64, e->seq);
	sfd = cache_tmp_dir(c, "parts", sname, sizeof(sname));
	if (sfd < 0) {
		r = nox_err_set(err, EIO, "cache tmp dir: %s", strerror(-sfd));
		goto out;
	}
	if (mkdirat(sfd, dir, 0700) < 0) {
		r = nox_err_set(err, EIO, "cache tmp dir: %s", strerror(errno));
		goto out;
	}
	level = cache_put_gzip_level(dfd, st.st_size);
	for (off = 0; r == 0 && (off < st.st_size || k == 0);
	     off += c->part_size, k++) {
		off_t len = st.st_size - off < c->part_size ? st.st_size - off
							    : c->part_size;
		const char *paths[1] = {part};
		int pfd, tfd;

		snprintf(part, sizeof(part), "%s/p%lld", dir, k);
		pfd = openat(sfd, part,
			     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (pfd < 0) {
			r = nox_err_set(err, EIO, "part: %s", strerror(errno));
			break;
		}
		r = copy_slice(dfd, off, len, pfd);
		close(pfd);
		if (r < 0) {
			r = nox_err_set(err, EIO, "part: %s", strerror(-r));
			break;
		}
		tfd = cache_tmp_file(c);
		if (tfd < 0) {
			r = nox_err_set(err, EIO, "cache tmp file: %s",
					strerror(-tfd));
			break;
		}
		r = nox_tar_pack_list_level(tfd, sfd, paths, 1, level, err);
		(void)unlinkat(sfd, part, 0);
		r = send_tar(c, tfd, r, len, err);
	}
	if (r < 0)
		goto out;
	snprintf(target, sizeof(target), "./%s", e->path);
	snprintf(num[0], sizeof(num[0]), "%04o", (unsigned)e->mode);
	fmt_time(num[1], sizeof(num[1]), e->mtime_ns);
	snprintf(num[2], sizeof(num[2]), "%lld", k);
	snprintf(num[3], sizeof(num[3]), "./%s", dir);
	argv[0] = "sh";
	argv[1] = "-c";
	argv[2] = join_script;
	argv[3] = "noxfs-join";
	argv[4] = num[3];
	argv[5] = target;
	argv[6] = num[0];
	argv[7] = num[1];
	argv[8] = num[2];
	argv[9] = in_place ? "inplace" : "replace";
	argv[10] = NULL;
	req.argv = argv;
	memset(&res, 0, sizeof(res));
	r = nox_backend_exec(c->be, c->sb->id, &req, &res, err);
	if (r == 0 && res.exit_code != 0)
		r = nox_err_set(err, EIO,
				"joining %s on the server: exit %d: "
				"%.200s",
				e->path, res.exit_code, res.err ? res.err : "");
	nox_exec_result_cleanup(&res);
	if (r == 0)
		nox_log(NOX_LOG_DEBUG, "%s: uploaded %s in %lld parts",
			c->sb->id, e->path, k);
out:
	if (sfd >= 0)
		cache_tmp_dir_remove(c, sname, sfd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

/* ---- the drain ------------------------------------------------------ */

/*
 * With mu: writes every lazy entry to disk and fsyncs every entry not
 * fsynced yet (the drain failed, or the journal outlives the daemon):
 * from now on they survive a crash and a reboot.
 */
void cache_drain_persist_all_locked(struct cache *c)
{
	struct jent *e;

	for (e = journal_first(&c->jr); e; e = journal_next(e)) {
		int r = journal_persist(&c->jr, e, true);

		if (r == 0)
			journal_sync(&c->jr, e);

		if (r < 0) {
			nox_log(NOX_LOG_WARN,
				"%s: writing the journal entry of %s: %s",
				c->sb->id, e->path, strerror(-r));
			break;
		}
	}
}

/* After a confirmed entry: the manifest knows the server has it. */
static void confirmed_locked(struct cache *c, const struct jent *e)
{
	if (e->ino == 0)
		return;
	if (e->op == J_UPLOAD) {
		struct ment *me =
		    manifest_set(&c->man, e->ino, e->size, e->mtime_ns, true);

		/* clean now: the eviction may take it */
		if (me)
			cache_space_used_locked(me);
	} else if (e->op == J_CREATE)
		manifest_set(&c->man, e->ino, 0, e->mtime_ns, true);
	else if (e->op == J_MKDIR || e->op == J_SYMLINK || e->op == J_MKNOD)
		manifest_set(&c->man, e->ino, 0, 0, true);
	else if (e->op == J_UTIMENS && e->mtime_ns >= 0) {
		struct ment *me = manifest_get(&c->man, e->ino);

		if (me)
			me->rmtime = e->mtime_ns;
	}
	c->man_dirty = true;
}

/*
 * With mu held by none: the run at the head of the journal that one
 * request may carry, into b->v.  1: taken; 0: nothing to do (empty, or
 * the head is past upto); <0: error.
 */
static int drain_take(struct cache *c, struct batch *b, uint64_t upto,
		      struct nox_err *err)
{
	struct jent *e;
	size_t cap = 0;
	bool tar;
	int r;

	cache_lock(c, CACHE_MU);
	e = journal_first(&c->jr);
	if (!e || e->seq > upto || c->gone) {
		r = c->gone && e ? -ENOENT : 0;
		cache_unlock(c, CACHE_MU);
		return r;
	}
	tar = tar_op(e->op);
	/* the entries are only ever removed by the drain (this thread):
	 * pointers stay valid without the lock */
	for (; e; e = journal_next(e)) {
		if (b->n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct jent **nv = realloc(b->v, nc * sizeof(*nv));

			if (!nv)
				break;
			b->v = nv;
			cap = nc;
		}
		b->v[b->n++] = e;
		if (b->n >= BATCH_MAX_FILES * 2 ||
		    (!tar && (b->n >= SCRIPT_MAX_OPS || (c->ext && !c->batch))))
			break;
	}
	cache_unlock(c, CACHE_MU);
	if (b->n == 0)
		return nox_err_set(err, ENOMEM, "out of memory");
	return 1;
}

/*
 * Sends the longest run of tar operations at the head of b->v as one tar;
 * b->n becomes the number of entries done (or set aside as missing).
 */
static int drain_send_tar(struct cache *c, struct batch *b, struct nox_err *err)
{
	size_t i, taken = 0;
	int r = 0;

	b->vb = calloc(b->n ? b->n : 1, sizeof(*b->vb));
	if (!b->vb) {
		b->n = 0;
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	for (i = 0; i < b->n; i++) {
		if (taken > 0 && c->one_per_tar && tar_op(b->v[i]->op))
			break;
		b->staged = i;
		r = stage(c, b, b->v[i]);
		if (r <= 0)
			break;
		b->vb[i] = b->last;
		taken++;
	}
	if (r < 0) {
		nox_log(NOX_LOG_WARN, "%s: staging %s: %s", c->sb->id,
			b->v[i]->path, strerror(-r));
		if (taken == 0 && r == -ENOENT) {
			/* its snapshot is missing: nothing to send */
			b->n = 1;
			return 0;
		}
		if (taken == 0) {
			/* local trouble (disk full?): keep, retry */
			r = nox_err_set(err, -r, "staging %s: %s",
					b->v[i]->path, strerror(-r));
			b->n = 0;
			return r;
		}
	}
	b->n = taken;
	if (taken == 0) {
		/* cannot happen: the head always fits a batch */
		return nox_err_set(err, EIO, "cannot batch %s", b->v[0]->path);
	}
	r = upload_batch(c, b, err);
	/* what the server got, folded changes included */
	for (i = 0; r == 0 && i < b->n; i++) {
		struct jent *x = b->v[i];
		const struct bent *f;

		if (x->op != J_UPLOAD && x->op != J_CREATE)
			continue;
		/* what it staged, under the name it was renamed to */
		f = b->vb[i] ? &b->ents[b->vb[i] - 1] : NULL;
		if (f && S_ISREG(f->mode)) {
			x->size = f->size;
			x->mtime_ns = f->mtime_ns;
		}
	}
	nox_log(NOX_LOG_DEBUG, "%s: uploaded %zu files in one tar: %d",
		c->sb->id, b->nents, r);
	return r;
}

/* e can be a step of the metadata script (v1: mkdir is one too). */
static bool script_op(const struct cache *c, const struct jent *e)
{
	return !tar_op(e->op) || (e->op == J_MKDIR && !c->ext);
}

/*
 * On v1, a run of mkdirs (with chmod/utimens) that the journal follows
 * with other metadata operations goes in their script: a burst of
 * mkdir, chmod, rename, unlink is then one exec, not a tar and an exec
 * by turns.
 */
static bool mkdirs_join_script(const struct cache *c, const struct batch *b)
{
	size_t i;

	if (c->ext)
		return false;
	for (i = 0; i < b->n; i++) {
		enum jop op = b->v[i]->op;

		if (op != J_MKDIR && op != J_CHMOD && op != J_UTIMENS)
			return !tar_op(op);
	}
	return false;
}

/*
 * nox.ops: the run v[0..n) in one fs/ops request.  Each result is taken
 * as run_ext and drain_send_ops take a single call's: what means "done
 * already" passes, a refusal is logged and dropped; ENOENT of the
 * sandbox itself (asked once) is the whole run's.
 */
static int run_batch(struct cache *c, struct jent **v, size_t n,
		     struct nox_err *err)
{
	struct nox_fsop *ops = calloc(n, sizeof(*ops));
	int *res = calloc(n, sizeof(*res));
	bool checked = false;
	size_t i;
	int r;

	if (!ops || !res) {
		free(ops);
		free(res);
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++)
		ops[i] = fsop_of(v[i]);
	r = nox_backend_batch(c->be, c->sb->id, ops, n, res, err);
	for (i = 0; r == 0 && i < n; i++) {
		const struct jent *e = v[i];
		struct stat st;
		int x = res[i];

		if (x == -ENOENT &&
		    (e->op == J_UNLINK || e->op == J_RMDIR ||
		     (e->op == J_RENAME &&
		      nox_backend_stat(c->be, c->sb->id, e->path2, &st,
				       NULL) == 0)))
			x = 0; /* done already (a replay, or by a command) */
		if ((x == -EEXIST && (e->op == J_LINK || e->op == J_MKNOD)))
			x = 0;
		if (x == -ENOENT && !checked) {
			struct nox_sandbox_info info;

			checked = true;
			if (nox_backend_info(c->be, c->sb->id, &info, NULL) ==
			    -ENOENT)
				r = nox_err_set(err, ENOENT,
						"sandbox %s is gone",
						c->sb->id);
		}
		if (x < 0 && r == 0)
			nox_log(NOX_LOG_WARN,
				"%s: %s %s: %s (the mount shows the "
				"sandbox's state at the next listing)",
				c->sb->id, journal_op_name(e->op), e->path,
				strerror(-x));
	}
	free(ops);
	free(res);
	return r;
}

/*
 * Sends the run of metadata operations at the head of b->v: one script
 * (at most SCRIPT_MAX_ARGS bytes of names, so the server's argv limit
 * is never reached), with nox.ops one fs/ops request of as many, or
 * with nox.fs alone the first one; b->n becomes the number sent.
 */
static int drain_send_ops(struct cache *c, struct batch *b, struct nox_err *err)
{
	size_t i, n = 0, bytes = 0;
	int r;

	for (i = 0; i < b->n && n < SCRIPT_MAX_OPS && script_op(c, b->v[i]);
	     i++) {
		bytes += strlen(b->v[i]->path) + 1 +
			 (b->v[i]->path2 ? strlen(b->v[i]->path2) + 1 : 0);
		if (n > 0 && bytes > SCRIPT_MAX_ARGS)
			break;
		n++;
	}
	b->n = n;
	if (!c->ext)
		return run_script(c, b->v, b->n, err);
	if (c->batch)
		return run_batch(c, b->v, b->n, err);
	r = run_ext(c, b->v[0], err);
	if (r < 0 && !transport_err(r) && r != -ENOENT && r != -EACCES) {
		nox_log(NOX_LOG_WARN, "%s: %s %s: %s", c->sb->id,
			journal_op_name(b->v[0]->op), b->v[0]->path,
			nox_err_str(err, r));
		r = 0;
	}
	if (r == -ENOENT) {
		struct nox_sandbox_info info;

		if (nox_backend_info(c->be, c->sb->id, &info, NULL) !=
		    -ENOENT) {
			/* the sandbox is there, the name is not: the
			 * operation cannot apply; say so rather than let
			 * the next listing undo it without a word */
			nox_log(NOX_LOG_WARN, "%s: %s %s: %s", c->sb->id,
				journal_op_name(b->v[0]->op), b->v[0]->path,
				nox_err_str(err, -ENOENT));
			r = 0;
		}
	}
	return r;
}

/*
 * After the server answered r to b: when it says the request was too
 * big, sends smaller ones from now (1: again at once); when it refuses
 * the operations for good, sets them aside (*refused, 0).  Else r.
 */
static int drain_refusal(struct cache *c, struct batch *b, bool tar, int r,
			 bool *refused, struct nox_err *err)
{
	size_t i;

	if (r == -EFBIG && tar && b->n == 1 && b->v[0]->op == J_UPLOAD &&
	    !needs_parts(c, b->v[0]) && c->part_size > PART_MIN) {
		/* one file over the server's body limit: send it in parts */
		struct stat st;
		int dfd = journal_data_open(&c->jr, b->v[0]);

		if (dfd >= 0 && fstat(dfd, &st) == 0)
			c->part_size = (long long)st.st_blocks * 512 / 4 + 1;
		if (c->part_size < PART_MIN)
			c->part_size = PART_MIN;
		if (dfd >= 0)
			close(dfd);
		return 1;
	}
	if (r == -EFBIG && tar && b->n > 1 && !c->one_per_tar) {
		/* over the server's body limit: one file per tar from now */
		nox_log(NOX_LOG_INFO,
			"%s: the server takes smaller uploads; "
			"sending one file per request",
			c->sb->id);
		c->one_per_tar = true;
		return 1; /* again at once, smaller */
	}
	if (r == -EINVAL || r == -EFBIG) {
		/* the server refuses these for good: set them aside */
		nox_log(NOX_LOG_ERR,
			"%s: the server refused %zu operations (%s); their "
			"data stays in %s/journal",
			c->sb->id, b->n, nox_err_str(err, r), c->dir);
		for (i = 0; i < b->n; i++)
			journal_set_aside(&c->jr, b->v[i]);
		*refused = true;
		return 0;
	}
	return r;
}

/* With r 0: b->v[0..n) are done: off the journal, into the manifest. */
static void drain_done(struct cache *c, struct batch *b, bool refused)
{
	size_t i;

	cache_lock(c, CACHE_MU);
	for (i = 0; i < b->n; i++) {
		struct jent *x = b->v[i];

		if (!refused)
			confirmed_locked(c, x);
		if (x->marked && !cache_dirty_has(c, x->ino))
			journal_clear_dirty(&c->jr, x->ino);
		journal_pop(&c->jr, x);
	}
	if (!journal_first(&c->jr))
		cache_save_manifest_locked(c, false);
	pthread_cond_broadcast(&c->cond);
	cache_unlock(c, CACHE_MU);
}

/*
 * One step of the drain: takes the longest run at the head that one
 * request can carry and sends it.  1: something was done; 0: the
 * journal is empty (or its head is past upto); <0: error (kept).
 */
static int drain_step(struct cache *c, uint64_t upto, struct nox_err *err)
{
	struct batch b = {0};
	bool tar, linked, refused = false;
	int r;

	r = drain_take(c, &b, upto, err);
	if (r <= 0) {
		batch_cleanup(&b);
		return r;
	}
	tar = (tar_op(b.v[0]->op) && !mkdirs_join_script(c, &b)) ||
	      (!c->one_per_tar && unlink_replaced(&b, 0));
	linked = tar && upload_linked(c, b.v[0]);
	if (tar && cache_put_wanted(c, b.v[0])) {
		b.n = 1;
		r = cache_put_upload(c, b.v[0], linked, err);
	} else if (tar && (linked || needs_parts(c, b.v[0]))) {
		b.n = 1;
		r = upload_parts(c, b.v[0], linked, err);
		if (r == -EFBIG && c->part_size > PART_MIN) {
			c->part_size /= 4;
			batch_cleanup(&b);
			return 1; /* again at once, smaller */
		}
	} else if (tar) {
		r = drain_send_tar(c, &b, err);
	} else {
		r = drain_send_ops(c, &b, err);
	}
	r = drain_refusal(c, &b, tar, r, &refused, err);
	if (r == 0) {
		drain_done(c, &b, refused);
		r = 1;
	} else if (r == -ENOENT) {
		cache_mark_gone(c);
	} else if (r < 0) {
		cache_lock(c, CACHE_MU);
		cache_drain_persist_all_locked(c);
		cache_unlock(c, CACHE_MU);
	}
	batch_cleanup(&b);
	return r;
}

/* Drains the journal up to entry upto (UINT64_MAX: all). */
int cache_drain(struct cache *c, uint64_t upto, struct nox_err *err)
{
	unsigned long stalls;
	bool sent = false;
	int r;

	cache_lock(c, CACHE_MU);
	stalls = c->drain_stalls;
	cache_unlock(c, CACHE_MU);
	cache_lock(c, CACHE_DRAIN_MU);
	cache_lock(c, CACHE_MU);
	if (c->drain_stalls != stalls) {
		/* the drain we waited for got no answer: so would we */
		if (err)
			*err = c->drain_err;
		r = -c->drain_err.code;
		cache_unlock(c, CACHE_MU);
		cache_unlock(c, CACHE_DRAIN_MU);
		return r;
	}
	cache_unlock(c, CACHE_MU);
	do {
		r = drain_step(c, upto, err);
		sent |= r > 0;
	} while (r > 0);
	cache_lock(c, CACHE_MU);
	if (fs_health_no_answer(r)) {
		c->drain_stalls++;
		if (err)
			c->drain_err = *err;
		else
			nox_err_set(&c->drain_err, -r, "%s", strerror(-r));
		c->drain_err.code = -r;
	}
	cache_unlock(c, CACHE_MU);
	cache_unlock(c, CACHE_DRAIN_MU);
	if (r < 0)
		fs_health_failed(c->sb->fs, r);
	else if (sent)
		fs_health_answered(c->sb->fs);
	cache_lock(c, CACHE_MU);
	if (r < 0 && r != -ENOENT && !c->failing) {
		c->failing = true;
		if (r == -ENOSPC || r == -EDQUOT)
			nox_log(NOX_LOG_WARN,
				"%s: the cache directory %s is full (%s); %zu "
				"operations wait in the journal and will be "
				"retried",
				c->sb->id, c->dir, nox_err_str(err, r),
				journal_count(&c->jr));
		else
			nox_log(NOX_LOG_WARN,
				"%s: cannot reach the server (%s); %zu "
				"operations wait in the journal and will be "
				"retried",
				c->sb->id, nox_err_str(err, r),
				journal_count(&c->jr));
	} else if (r == 0 && c->failing && !journal_first(&c->jr)) {
		c->failing = false;
		nox_log(NOX_LOG_INFO, "%s: journal drained", c->sb->id);
	}
	if (r < 0) {
		c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 250;
		if (c->backoff_ms > RETRY_MAX_MS)
			c->backoff_ms = RETRY_MAX_MS;
		mono_now(&c->retry_at);
		ts_add_ms(&c->retry_at, c->backoff_ms);
	} else {
		c->backoff_ms = 0;
	}
	cache_unlock(c, CACHE_MU);
	return r;
}

/* The flusher: drains after the delay, retries with backoff. */
void *cache_drain_flusher(void *arg)
{
	struct cache *c = arg;
	struct nox_err err;
	uint64_t upto;

	cache_lock(c, CACHE_MU);
	while (!c->stop) {
		struct timespec now, due;

		if (c->list_wanted) {
			/* asked for while the server was silent */
			cache_unlock(c, CACHE_MU);
			cache_list_background(c);
			cache_lock(c, CACHE_MU);
			continue;
		}
		if (!journal_first(&c->jr) || c->gone) {
			cache_wait(c);
			continue;
		}
		due = c->pending_since;
		ts_add_ms(&due, c->writeback ? c->delay_ms : DEFAULT_DELAY_MS);
		if (c->backoff_ms && ts_diff(&c->retry_at, &due) > 0)
			due = c->retry_at;
		mono_now(&now);
		if (!c->flush_now && ts_diff(&due, &now) > 0) {
			struct timespec abs;
			double d = ts_diff(&due, &now);

			clock_gettime(CLOCK_REALTIME, &abs);
			ts_add_ms(&abs, (long)(d * 1000) + 1);
			pthread_cond_timedwait(&c->cond, &c->mu, &abs);
			continue;
		}
		c->flush_now = false;
		/* what is pending now; later entries wait their own delay,
		 * so a long burst goes out in few large batches */
		upto = journal_last_seq(&c->jr);
		cache_unlock(c, CACHE_MU);
		nox_err_clear(&err);
		(void)cache_drain(c, upto, &err);
		cache_lock(c, CACHE_MU);
		if (journal_first(&c->jr) && !c->backoff_ms)
			mono_now(&c->pending_since);
	}
	cache_unlock(c, CACHE_MU);
	return NULL;
}
