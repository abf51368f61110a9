/*
 * lock.h - flock and POSIX locks on a workspace file's real descriptor.
 *
 * Each function replies to req exactly once (perhaps later, from a
 * waiting thread of lock.c's own); fd is the open's descriptor of the
 * real file (fi->fh), which stays open until the kernel's RELEASE, and
 * that cannot come while a lock call on the open is pending.
 */
#ifndef NOXFS_LOCK_H
#define NOXFS_LOCK_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>

#include <fuse_lowlevel.h>

/* flock(2) op (LOCK_SH/LOCK_EX/LOCK_UN, maybe | LOCK_NB) on fd. */
void fs_lock_flock(fuse_req_t req, int fd, int op);
/* F_GETLK: the first lock that would conflict with *lock, as OFD locks. */
void fs_lock_getlk(fuse_req_t req, int fd, struct flock *lock);
/* F_SETLK / F_SETLKW (sleep != 0) as an OFD lock on fd, for the kernel's
 * lock owner (one per process and file table). */
void fs_lock_setlk(fuse_req_t req, int fd, uint64_t owner, struct flock *lock,
		   int sleep);
/* A close by owner (FLUSH): drops the POSIX locks on fd if owner was the
 * only one that took any.  No reply (the caller replies to the flush). */
void fs_lock_flush(int fd, uint64_t owner);
/* fd is about to be closed: forgets its owners (call before close). */
void fs_lock_release(int fd);

#endif
