/*
 * lock.c - flock(2) and POSIX record locks forwarded to the workspace file
 * (local backend), so a host process locking through the mount and a
 * command locking the workspace file exclude each other.
 *
 * Each FUSE open has its own descriptor of the real file (fi->fh): flock
 * is flock(2) on it, and a POSIX lock is an open file description lock
 * (F_OFD_SETLK) on it.  A wait runs on a thread of its own, so a lock held
 * for hours does not hold one of the session's workers: it retries the
 * non-blocking call (every 10 ms, backing off to 100 ms) until it gets the
 * lock, the request is interrupted (EINTR, as a signal to the waiter gives)
 * or the session ends.
 *
 * POSIX locks are the process's, and go at its first close of any
 * descriptor of the file: the kernel sends that close as a FLUSH naming the
 * lock owner, and the open's locks are dropped when that owner is the only
 * one that took locks on the open (the owners are noted per descriptor).
 *
 * Limits: POSIX locks belong to the open, not to the process: two opens of
 * one file by one process conflict with each other, a close of the file
 * through another open of the same process does not drop them, and when
 * several processes took locks on one shared open (after fork) a close by
 * one of them drops none (sqlite, which keeps one descriptor per file and
 * process, is unaffected).  A waiter gets the lock by polling, so waiters
 * are not served in order.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>

#include <nox/log.h>

#include "lock.h"

struct lock_wait {
	fuse_req_t req;
	int fd;
	bool is_flock;
	int op;		 /* flock: LOCK_SH or LOCK_EX */
	struct flock fl; /* POSIX: the lock to take */
	uint64_t owner;	 /* POSIX: the kernel's lock owner */
};

/* (descriptor, lock owner) pairs that took POSIX locks on an open. */
struct lock_owner {
	int fd;
	uint64_t owner;
	struct lock_owner *next;
};

static pthread_mutex_t lock_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lock_owner *lock_owners; /* protected by lock_mu */

/* Notes that owner holds POSIX locks through fd. */
static void lock_owner_add(int fd, uint64_t owner)
{
	struct lock_owner *o;

	pthread_mutex_lock(&lock_mu);
	for (o = lock_owners; o; o = o->next)
		if (o->fd == fd && o->owner == owner)
			break;
	if (!o) {
		o = malloc(sizeof(*o));
		/* without the note the locks stay until the release */
		if (o) {
			o->fd = fd;
			o->owner = owner;
			o->next = lock_owners;
			lock_owners = o;
		}
	}
	pthread_mutex_unlock(&lock_mu);
}

/*
 * Forgets owner's note on fd (every owner's when all); true when owner
 * had one and no other owner holds locks through fd.
 */
static bool lock_owner_drop(int fd, uint64_t owner, bool all)
{
	struct lock_owner **pp, *o;
	bool had = false, others = false;

	pthread_mutex_lock(&lock_mu);
	for (pp = &lock_owners; (o = *pp) != NULL;) {
		if (o->fd == fd && (all || o->owner == owner)) {
			*pp = o->next;
			free(o);
			had = true;
			continue;
		}
		if (o->fd == fd)
			others = true;
		pp = &o->next;
	}
	pthread_mutex_unlock(&lock_mu);
	return had && !others;
}

/* One non-blocking try: 0, -EAGAIN while held elsewhere, or -errno. */
static int lock_try(int fd, bool is_flock, int op, struct flock *fl)
{
	int r;

	if (is_flock)
		r = flock(fd, op | LOCK_NB);
	else
		r = fcntl(fd, F_OFD_SETLK, fl);
	if (r == 0)
		return 0;
	/* flock says EWOULDBLOCK, fcntl EAGAIN or EACCES */
	if (errno == EWOULDBLOCK || errno == EAGAIN || errno == EACCES)
		return -EAGAIN;
	return -errno;
}

static void *lock_wait_run(void *arg)
{
	struct lock_wait *w = arg;
	long delay_ms = 10;
	int r;

	for (;;) {
		struct timespec ts;

		r = lock_try(w->fd, w->is_flock, w->op, &w->fl);
		if (r == 0 && !w->is_flock)
			lock_owner_add(w->fd, w->owner);
		if (r != -EAGAIN)
			break;
		if (fuse_req_interrupted(w->req)) {
			r = -EINTR;
			break;
		}
		ts.tv_sec = 0;
		ts.tv_nsec = delay_ms * 1000000L;
		nanosleep(&ts, NULL);
		if (delay_ms < 100)
			delay_ms += 10;
	}
	fuse_reply_err(w->req, -r);
	free(w);
	return NULL;
}

/*
 * Replies to req once the lock is taken (or the wait ends) from a thread
 * of its own; on failure to start one, replies with the error now.
 */
static void lock_wait_start(fuse_req_t req, int fd, bool is_flock, int op,
			    const struct flock *fl, uint64_t owner)
{
	struct lock_wait *w = calloc(1, sizeof(*w));
	pthread_attr_t attr;
	pthread_t t;
	int e;

	if (!w) {
		fuse_reply_err(req, ENOLCK);
		return;
	}
	w->req = req;
	w->fd = fd;
	w->is_flock = is_flock;
	w->op = op;
	w->owner = owner;
	if (fl)
		w->fl = *fl;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* small: it only loops and sleeps */
	pthread_attr_setstacksize(&attr, 64 * 1024);
	e = pthread_create(&t, &attr, lock_wait_run, w);
	pthread_attr_destroy(&attr);
	if (e != 0) {
		nox_log(NOX_LOG_WARN, "lock wait: no thread: %s", strerror(e));
		free(w);
		fuse_reply_err(req, ENOLCK);
	}
}

void fs_lock_flock(fuse_req_t req, int fd, int op)
{
	int mode = op & (LOCK_SH | LOCK_EX | LOCK_UN), r;

	if (mode != LOCK_SH && mode != LOCK_EX && mode != LOCK_UN) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	r = mode == LOCK_UN ? (flock(fd, LOCK_UN) < 0 ? -errno : 0)
			    : lock_try(fd, true, mode, NULL);
	if (r == -EAGAIN && !(op & LOCK_NB)) {
		lock_wait_start(req, fd, true, mode, NULL, 0);
		return;
	}
	fuse_reply_err(req, r == -EAGAIN ? EWOULDBLOCK : -r);
}

/* The kernel's lock (pid of the caller's view) as an OFD lock. */
static void lock_ofd(const struct flock *in, struct flock *out)
{
	memset(out, 0, sizeof(*out));
	out->l_type = in->l_type;
	out->l_whence = SEEK_SET;
	out->l_start = in->l_start;
	out->l_len = in->l_len;
	out->l_pid = 0; /* must be 0 for OFD locks */
}

void fs_lock_getlk(fuse_req_t req, int fd, struct flock *lock)
{
	struct flock fl;

	lock_ofd(lock, &fl);
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	/* the holder is an open file description, not a process: no pid
	 * to show (the caller sees 0) */
	fl.l_pid = 0;
	fuse_reply_lock(req, &fl);
}

void fs_lock_setlk(fuse_req_t req, int fd, uint64_t owner, struct flock *lock,
		   int sleep)
{
	struct flock fl;
	int r;

	lock_ofd(lock, &fl);
	if (fl.l_type == F_UNLCK)
		r = fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
	else
		r = lock_try(fd, false, 0, &fl);
	if (r == 0 && fl.l_type != F_UNLCK)
		lock_owner_add(fd, owner);
	if (r == -EAGAIN && sleep) {
		lock_wait_start(req, fd, false, 0, &fl, owner);
		return;
	}
	fuse_reply_err(req, -r);
}

void fs_lock_flush(int fd, uint64_t owner)
{
	struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};

	if (lock_owner_drop(fd, owner, false))
		(void)fcntl(fd, F_OFD_SETLK, &fl);
}

void fs_lock_release(int fd)
{
	(void)lock_owner_drop(fd, 0, true);
}
