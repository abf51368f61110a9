/*
 * ctlreq.h - a request written to .nox/exec, parsed.
 *
 * A request is a JSON object in the v1 exec shape (first non-blank byte
 * '{'; complete when the bytes parse as one object) or shell text
 * (complete at the end of the open's input: everything written is one
 * script, run as sh -c TEXT).  Pure: no FUSE, no daemon state, so it can
 * be fuzzed alone.
 */
#ifndef NOXFS_CTLREQ_H
#define NOXFS_CTLREQ_H

#include <stdbool.h>
#include <stddef.h>

#include <nox/nox.h>

/* A parsed request: either v1 (JSON) or shell text.  req points into the
 * other fields; fs_ctl_req_cleanup frees them (not the struct). */
struct fs_ctl_req {
	struct nox_v1_exec_req v1;
	bool is_v1;
	char *text; /* shell text, malloc'd */
	const char *sh_argv[4];
	struct nox_exec_req req; /* what runs */
};

enum { FS_CTL_REQ_EMPTY, FS_CTL_REQ_INCOMPLETE, FS_CTL_REQ_READY };

/*
 * Classifies buf[0..len): FS_CTL_REQ_EMPTY (only blanks),
 * FS_CTL_REQ_INCOMPLETE (more bytes may come: shell text is complete
 * only at_end, the close or a read of the open), FS_CTL_REQ_READY (*r
 * filled; clean it up) or a negative errno (-EINVAL malformed, message
 * in err; a JSON object still open at_end is "truncated JSON").  A
 * request without its own timeout gets default_timeout.
 */
int fs_ctl_req_parse(const char *buf, size_t len, bool at_end,
		     int default_timeout, struct fs_ctl_req *r,
		     struct nox_err *err);
void fs_ctl_req_cleanup(struct fs_ctl_req *r);

#endif
