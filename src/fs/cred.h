/*
 * cred.h - acting as the calling user while creating files.
 *
 * With allow_other a daemon running as root would create every file as
 * root.  Around create, mkdir, symlink, mknod and link the worker thread
 * takes the caller's fsuid, fsgid and supplementary groups (the raw
 * syscalls are per thread, unlike the glibc wrappers, which change the
 * whole process), so the file belongs to the caller and the kernel's own
 * rules (setgid directories, protected_hardlinks, permissions) apply as
 * for that user.  A daemon not running as root does nothing here: its
 * files are its own, as with any user's FUSE mount.
 *
 * Limits: supplementary groups are best effort (read by libfuse from
 * /proc; at most CRED_MAX_GROUPS are used).
 */
#ifndef NOXFS_CRED_H
#define NOXFS_CRED_H

#include <stdbool.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

struct fs_cred {
	bool switched;
};

/* Called once at start-up (single-threaded): remembers our groups. */
int fs_cred_init(void);

/* Takes the identity of req's caller if needed; always pair with leave. */
void fs_cred_enter(fuse_req_t req, struct fs_cred *c);
/* Back to the daemon's own identity. */
void fs_cred_leave(struct fs_cred *c);

#endif
