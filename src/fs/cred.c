/*
 * cred.c - per-thread identity switching (see cred.h).
 */
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <nox/log.h>

#include "cred.h"

#define CRED_MAX_GROUPS 256

static bool cred_as_root;
static gid_t cred_groups[CRED_MAX_GROUPS];
static int cred_ngroups;

int fs_cred_init(void)
{
	int n;

	cred_as_root = geteuid() == 0;
	if (!cred_as_root)
		return 0;
	n = getgroups(CRED_MAX_GROUPS, cred_groups);
	if (n < 0)
		n = 0;
	cred_ngroups = n;
	return 0;
}

void fs_cred_enter(fuse_req_t req, struct fs_cred *c)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t groups[CRED_MAX_GROUPS];
	int n;

	c->switched = false;
	if (!cred_as_root || (ctx->uid == 0 && ctx->gid == 0))
		return;
	n = fuse_req_getgroups(req, CRED_MAX_GROUPS, groups);
	if (n > CRED_MAX_GROUPS)
		n = CRED_MAX_GROUPS;
	if (n >= 0)
		syscall(SYS_setgroups, (size_t)n, groups);
	syscall(SYS_setfsgid, ctx->gid);
	syscall(SYS_setfsuid, ctx->uid);
	c->switched = true;
}

void fs_cred_leave(struct fs_cred *c)
{
	int saved = errno;

	if (!c->switched)
		return;
	/* fsuid 0 first: it brings back the capabilities needed below */
	syscall(SYS_setfsuid, 0);
	syscall(SYS_setfsgid, 0);
	syscall(SYS_setgroups, (size_t)cred_ngroups, cred_groups);
	c->switched = false;
	errno = saved;
}
