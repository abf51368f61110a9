/*
 * ctl.c - the control files of .nox (protocol in ctl.h and the contract).
 *
 * An exec request is complete when the buffered bytes, after leading
 * blanks, are one JSON object (first byte '{'): the write that completes
 * it runs it and returns when it has finished.  Anything else is shell
 * text, complete at the end of the open's input: its close (flush), or a
 * read on the same open.  Every byte written on the open until then is
 * one script, since a shell writes one string of several lines as one
 * write(2) per line (bash's printf); a heredoc or `cat script` is one
 * script too.  Shell text runs as ["sh", "-c", TEXT-without-final-
 * newline] in /workspace with the exec_timeout option; a JSON request
 * without timeoutSeconds gets exec_timeout too.  Running one is one call
 * of the exec barrier (barrier.h: writeback, flush, exec, invalidate),
 * which also makes the result the sandbox's last; the open keeps it too,
 * and only then the write (close, read) is answered.  A request that
 * fails, rejected here or by the barrier, leaves an error result
 * (result.h) as the last result: its reason in stderr, "error: REASON"
 * in status.  A write to sync is the same barrier without a command.
 *
 * Reading an open's own result: the read offset is taken relative to
 * where the request's bytes ended when the first read comes exactly
 * there (a write-then-read without lseek), else relative to 0.
 *
 * A signal to the waiting writer (or reader, or closer) interrupts the
 * command: libfuse hands us the kernel's FUSE_INTERRUPT through
 * fuse_req_interrupt_func, whose callback makes an eventfd readable; the
 * backend, given it as the request's nox_cancel, kills the command's
 * process tree and the call fails with EINTR ("error: interrupted..." is
 * the result).  Over http the server must offer nox.cancel to stop the
 * command; without it the wait alone is given up.  With -s (one thread)
 * nothing reads the INTERRUPT while the command runs.
 *
 * A request that is rejected (EFBIG, malformed: EINVAL) poisons its
 * open: every later write on it fails with the same errno and nothing
 * runs at close, since what follows is the rejected request's tail.  An
 * interrupted one poisons it with ECANCELED: a writer retrying the
 * interrupted write must not start the command again.
 *
 * Limits: a request holds at most FS_CTL_REQ_MAX bytes (EFBIG beyond);
 * one request per completing write (bytes after a complete JSON object
 * other than blanks are EINVAL); a JSON object still open at the end is
 * EINVAL, "truncated JSON".  Several opens run their commands in
 * parallel: the kernel holds an inode's lock for a whole write, so every
 * lookup of exec makes a new inode (ops.c, fresh_node); two writes on
 * one open (or dup'd descriptors) run one after the other.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "barrier.h"
#include "ctl.h"
#include "ctlreq.h"
#include "result.h"
#include "sandbox.h"

static const char *const ctl_names[FS_CTL__COUNT] = {
    [FS_CTL_EXEC] = "exec",	[FS_CTL_STDOUT] = "stdout",
    [FS_CTL_STDERR] = "stderr", [FS_CTL_STATUS] = "status",
    [FS_CTL_INFO] = "info",	[FS_CTL_SYNC] = "sync",
};

int fs_ctl_from_name(const char *name)
{
	int i;

	for (i = 0; i < FS_CTL__COUNT; i++) {
		if (strcmp(name, ctl_names[i]) == 0)
			return i;
	}
	return -1;
}

const char *fs_ctl_name(enum fs_ctl c)
{
	return ctl_names[c];
}

static bool ctl_writable(enum fs_ctl c)
{
	return c == FS_CTL_EXEC || c == FS_CTL_SYNC;
}

mode_t fs_ctl_mode(enum fs_ctl c)
{
	return ctl_writable(c) ? 0666 : 0644;
}

/* Per-open transaction state (fi->fh). */
struct ctl_open {
	struct fs_handle h;    /* first: fi->fh points here */
	enum fs_ctl ctl;       /* immutable */
	struct fs_sandbox *sb; /* immutable; a reference */
	pthread_mutex_t mutex;

	/* protected by mutex */
	char *buf; /* pending request bytes */
	size_t len;
	size_t cap;
	struct fs_result *own;	/* result of this open's request */
	bool own_fresh;		/* no read since it ran */
	off_t own_end;		/* file offset where the request ended */
	off_t wend;		/* file offset where the last write ended */
	off_t own_base;		/* read offset of result byte 0 */
	struct fs_result *snap; /* read snapshot (result files) */
	char *snap_text;	/* read snapshot (info), malloc'd */
	const char *data;	/* the snapshot's bytes */
	size_t data_len;
	bool have_snap;
	int poison; /* errno of a rejected (or interrupted) request */
};

static void ctl_open_free(struct fs_handle *h);
static int ctl_process(fuse_req_t req, struct fs *fs, struct ctl_open *o,
		       bool at_end);

int fs_ctl_open(struct fs *fs, struct fs_node *n, struct fuse_file_info *fi)
{
	struct ctl_open *o;
	int acc = fi->flags & O_ACCMODE;

	(void)fs;
	if (acc != O_RDONLY && !ctl_writable(n->ctl))
		return -EACCES;
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->ctl = n->ctl;
	o->sb = n->sb;
	fs_table_lock(&n->sb->fs->table);
	fs_sandbox_ref_locked(n->sb);
	fs_table_unlock(&n->sb->fs->table);
	pthread_mutex_init(&o->mutex, NULL);
	o->h.free = ctl_open_free;
	fs_table_handle_add(&n->sb->fs->table, &o->h);
	fi->fh = (uint64_t)(uintptr_t)o;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->nonseekable = 0;
	return 0;
}

size_t fs_ctl_size(enum fs_ctl c, struct fs_result *r)
{
	size_t len = 0;

	if (!r)
		return 0;
	switch (c) {
	case FS_CTL_EXEC:
		(void)fs_result_json(r, &len);
		return len;
	case FS_CTL_STDOUT:
		return r->r.out_len;
	case FS_CTL_STDERR:
		return r->r.err_len;
	case FS_CTL_STATUS:
		return r->status_len;
	default:
		return 0;
	}
}

void fs_ctl_fstat(struct fuse_file_info *fi, struct stat *st)
{
	struct ctl_open *o = (struct ctl_open *)(uintptr_t)fi->fh;

	if (!o)
		return;
	pthread_mutex_lock(&o->mutex);
	if (o->own)
		st->st_size = (off_t)fs_ctl_size(FS_CTL_EXEC, o->own);
	pthread_mutex_unlock(&o->mutex);
}

static void snap_clear(struct ctl_open *o)
{
	fs_result_unref(o->snap);
	o->snap = NULL;
	free(o->snap_text);
	o->snap_text = NULL;
	o->data = NULL;
	o->data_len = 0;
	o->have_snap = false;
}

static void ctl_open_free(struct fs_handle *h)
{
	struct ctl_open *o = (struct ctl_open *)h;

	fs_table_handle_del(&o->sb->fs->table, &o->h);
	snap_clear(o);
	fs_result_unref(o->own);
	free(o->buf);
	pthread_mutex_destroy(&o->mutex);
	fs_sandbox_put(o->sb);
	free(o);
}

void fs_ctl_release(struct fuse_file_info *fi)
{
	struct ctl_open *o = (struct ctl_open *)(uintptr_t)fi->fh;

	if (o)
		ctl_open_free(&o->h);
}

/* ---- reading -------------------------------------------------------- */

static char *info_json(struct fs *fs, struct fs_sandbox *sb, int *res)
{
	struct nox_sandbox_info info;
	struct nox_err err;
	json_object *o;
	const char *s;
	char *text = NULL;
	size_t l;
	int r;

	memset(&info, 0, sizeof(info));
	nox_err_clear(&err);
	r = nox_backend_info(fs->be, sb->id, &info, &err);
	if (r < 0) {
		nox_log(NOX_LOG_WARN, "%s: info: %s", sb->id,
			nox_err_str(&err, r));
		*res = r;
		return NULL;
	}
	o = json_object_new_object();
	if (!o)
		goto nomem;
	json_object_object_add(o, "id", json_object_new_string(sb->id));
	json_object_object_add(o, "podName",
			       json_object_new_string(info.pod_name));
	json_object_object_add(o, "expiresAt",
			       json_object_new_string(info.expires_at));
	json_object_object_add(o, "backend",
			       json_object_new_string(fs->backend_name));
	s = json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s) {
		l = strlen(s);
		text = malloc(l + 2);
		if (text) {
			memcpy(text, s, l);
			text[l] = '\n';
			text[l + 1] = '\0';
		}
	}
	json_object_put(o);
	if (text)
		return text;
nomem:
	*res = -ENOMEM;
	return NULL;
}

/* Takes the snapshot a read sequence serves; 0 or -errno. */
static int snap_take(struct fs *fs, struct ctl_open *o)
{
	struct fs_result *r;
	int res = 0;

	snap_clear(o);
	switch (o->ctl) {
	case FS_CTL_INFO:
		o->snap_text = info_json(fs, o->sb, &res);
		if (!o->snap_text)
			return res;
		o->data = o->snap_text;
		o->data_len = strlen(o->snap_text);
		break;
	case FS_CTL_SYNC:
		break;
	default:
		r = fs_sandbox_last(o->sb);
		o->snap = r;
		if (!r)
			break;
		if (o->ctl == FS_CTL_EXEC) {
			o->data = fs_result_json(r, &o->data_len);
			if (!o->data)
				return -ENOMEM;
		} else if (o->ctl == FS_CTL_STDOUT) {
			o->data = r->r.out;
			o->data_len = r->r.out_len;
		} else if (o->ctl == FS_CTL_STDERR) {
			o->data = r->r.err;
			o->data_len = r->r.err_len;
		} else {
			o->data = r->status;
			o->data_len = r->status_len;
		}
		break;
	}
	o->have_snap = true;
	return 0;
}

void fs_ctl_read(fuse_req_t req, struct fs *fs, struct fs_node *n, size_t size,
		 off_t off, struct fuse_file_info *fi)
{
	struct ctl_open *o = (struct ctl_open *)(uintptr_t)fi->fh;
	const char *data;
	size_t len, pos;
	int r;

	(void)n;
	pthread_mutex_lock(&o->mutex);
	if (o->len && !o->poison) {
		/* a read ends the request written on this open (shell text
		 * waits for it, or for the close) */
		r = ctl_process(req, fs, o, true);
		if (r < 0) {
			pthread_mutex_unlock(&o->mutex);
			fuse_reply_err(req, -r);
			return;
		}
	}
	if (o->own) {
		/* this open ran a request: serve its own result */
		if (o->own_fresh) {
			o->own_fresh = false;
			o->own_base = (off == o->own_end) ? off : 0;
		}
		if (off < o->own_base)
			o->own_base = 0;
		data = fs_result_json(o->own, &len);
		if (!data) {
			pthread_mutex_unlock(&o->mutex);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		pos = (size_t)(off - o->own_base);
	} else {
		if (off == 0 || !o->have_snap) {
			r = snap_take(fs, o);
			if (r < 0) {
				pthread_mutex_unlock(&o->mutex);
				fuse_reply_err(req, -r);
				return;
			}
		}
		data = o->data;
		len = o->data_len;
		pos = (size_t)off;
	}
	if (!data || pos >= len) {
		pthread_mutex_unlock(&o->mutex);
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > len - pos)
		size = len - pos;
	/* data stays valid: the result is held by o, under o->mutex */
	fuse_reply_buf(req, data + pos, size);
	pthread_mutex_unlock(&o->mutex);
}

/* ---- requests ------------------------------------------------------- */

/* Makes fr (a reference, taken over) the result of o's request. */
static void ctl_own(struct ctl_open *o, struct fs_result *fr)
{
	fs_result_unref(o->own);
	o->own = fr;
	o->own_fresh = true;
	o->own_end = o->wend;
	snap_clear(o);
}

/* A request rejected before it ran: as a failed run (barrier.h). */
static int ctl_reject(struct ctl_open *o, int code, struct nox_err *err)
{
	struct fs_result *fr =
	    fs_result_new_error(code, nox_err_str(err, code));

	if (fr) {
		fs_sandbox_set_last(o->sb, fr);
		ctl_own(o, fr);
	}
	return code;
}

/* libfuse's INTERRUPT thread, under the request's lock */
static void ctl_interrupted(fuse_req_t req, void *ud)
{
	const struct nox_cancel *nc = ud;
	uint64_t one = 1;

	(void)req;
	(void)!write(nc->fd, &one, sizeof(one));
}

/* Runs a parsed request for open o behind the exec barrier; req's
 * interrupt (req may be NULL) stops it. */
static int ctl_run(fuse_req_t req, struct ctl_open *o, struct fs_ctl_req *rq)
{
	struct nox_cancel nc = {.events = POLLIN};
	struct fs_result *fr;
	struct nox_err err;
	int r;

	nox_err_clear(&err);
	/* without an eventfd the command runs on, as before */
	nc.fd = req ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
	if (nc.fd >= 0) {
		rq->req.cancel = &nc;
		fuse_req_interrupt_func(req, ctl_interrupted, &nc);
	}
	r = fs_barrier_run(o->sb, &rq->req, &fr, &err);
	if (nc.fd >= 0) {
		/* waits out a callback in progress: nc lives until then */
		fuse_req_interrupt_func(req, NULL, NULL);
		close(nc.fd);
		rq->req.cancel = NULL;
	}
	/* a failed request's reason is this open's result too */
	if (fr)
		ctl_own(o, fr);
	return r;
}

/*
 * Parses and maybe runs what o->buf holds; clears it unless incomplete.
 * 1: a command ran, 0: nothing to run (yet), or -errno.
 */
static int ctl_process(fuse_req_t req, struct fs *fs, struct ctl_open *o,
		       bool at_end)
{
	struct fs_ctl_req rq;
	struct nox_err err;
	int r;

	nox_err_clear(&err);
	r = fs_ctl_req_parse(o->buf, o->len, at_end, fs->opts.exec_timeout, &rq,
			     &err);
	if (r == FS_CTL_REQ_INCOMPLETE)
		return 0;
	o->len = 0;
	if (r == FS_CTL_REQ_EMPTY)
		return 0;
	if (r < 0) {
		nox_log(NOX_LOG_WARN, "%s: malformed exec request: %s",
			o->sb->id, nox_err_str(&err, r));
		return ctl_reject(o, r, &err);
	}
	r = ctl_run(req, o, &rq);
	fs_ctl_req_cleanup(&rq);
	/* a writer that retries on EINTR (Python does) must not run the
	 * command again: the open's later writes get ECANCELED */
	if (r == -EINTR)
		o->poison = ECANCELED;
	return r < 0 ? r : 1;
}

static int buf_append(struct ctl_open *o, const char *p, size_t n)
{
	if (n > FS_CTL_REQ_MAX - o->len)
		return -EFBIG;
	if (o->len + n > o->cap) {
		size_t nc = o->cap ? o->cap : 4096;
		char *nb;

		while (nc < o->len + n)
			nc *= 2;
		nb = realloc(o->buf, nc);
		if (!nb)
			return -ENOMEM;
		o->buf = nb;
		o->cap = nc;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	return 0;
}

void fs_ctl_write(fuse_req_t req, struct fs *fs, struct fs_node *n,
		  const char *buf, size_t size, off_t off,
		  struct fuse_file_info *fi)
{
	struct ctl_open *o = (struct ctl_open *)(uintptr_t)fi->fh;
	struct nox_err err;
	int r;

	(void)n;
	if (o->ctl == FS_CTL_SYNC) {
		nox_err_clear(&err);
		r = fs_barrier_run(o->sb, NULL, NULL, &err);
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
		fuse_reply_write(req, size);
		return;
	}
	if (o->ctl != FS_CTL_EXEC) {
		fuse_reply_err(req, EBADF);
		return;
	}
	pthread_mutex_lock(&o->mutex);
	/* after a rejected request the stream has lost its framing: what
	 * a retrying writer sends next is its tail, never a new request */
	r = o->poison ? -o->poison : buf_append(o, buf, size);
	o->wend = off + (off_t)size;
	if (r == -EFBIG && !o->poison) {
		nox_log(NOX_LOG_WARN, "%s: exec request over %d bytes",
			o->sb->id, FS_CTL_REQ_MAX);
		o->len = 0;
		o->poison = EFBIG;
		nox_err_set(&err, EFBIG, "request over %d bytes",
			    FS_CTL_REQ_MAX);
		(void)ctl_reject(o, -EFBIG, &err);
	}
	if (r == 0) {
		r = ctl_process(req, fs, o, false);
		if (r == -EINVAL)
			o->poison = EINVAL;
	}
	pthread_mutex_unlock(&o->mutex);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_write(req, size);
}

int fs_ctl_flush(fuse_req_t req, struct fs *fs, struct fs_node *n,
		 struct fuse_file_info *fi)
{
	struct ctl_open *o = (struct ctl_open *)(uintptr_t)fi->fh;
	int r = 0;

	(void)n;
	if (!o || o->ctl != FS_CTL_EXEC)
		return 0;
	pthread_mutex_lock(&o->mutex);
	if (o->len && !o->poison)
		r = ctl_process(req, fs, o, true);
	pthread_mutex_unlock(&o->mutex);
	return r < 0 ? r : 0;
}
