/*
 * result.h - one finished command's result, shared by reference.
 *
 * The result takes over the buffers the backend filled (no copy): the
 * stdout and stderr bytes are served as they are; the v1 result JSON of
 * .nox/exec is encoded only when first asked for (a read, or a stat that
 * needs its size), once, and kept.
 *
 * A request that could not run has a result too (fs_result_new_error),
 * so a shell user finds the reason where the output would be: stdout
 * empty, stderr the reason, status "error: REASON" (never a number), and
 * the JSON {"error": REASON, "errno": "ENAME"}.
 */
#ifndef NOXFS_RESULT_H
#define NOXFS_RESULT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include <nox/nox.h>

struct fs_result {
	atomic_uint refs;
	int error; /* immutable: 0, or a failed request's errno */
	struct nox_exec_result r; /* immutable: out, err are ours */
	char *status; /* immutable: exit code as text, or "error: REASON";
			 with "\n" */
	size_t status_len;
	struct timespec when; /* immutable: finished at (CLOCK_REALTIME) */

	pthread_mutex_t mutex; /* a leaf: taken under any other lock */
	char *json;	       /* v1 result JSON + "\n"; protected by mutex,
				  never changed once set */
	size_t json_len;
};

/*
 * A new result with one reference that owns r's buffers: r is left
 * zeroed (the caller's nox_exec_result_cleanup then frees nothing).  On
 * ENOMEM NULL, and r still owns its buffers.
 */
struct fs_result *fs_result_new(struct nox_exec_result *r);
/*
 * The result of a request that failed with errno code (positive or
 * negative) for reason (one line: newlines become spaces).  NULL on
 * ENOMEM.
 */
struct fs_result *fs_result_new_error(int code, const char *reason);
struct fs_result *fs_result_ref(struct fs_result *r);
/* Drops one reference; the last frees the buffers.  NULL is a no-op. */
void fs_result_unref(struct fs_result *r);

/*
 * The v1 result JSON, or an error result's (NUL-terminated, ending in
 * "\n"), encoded on the
 * first call; valid while the caller holds a reference.  NULL on ENOMEM
 * (a later call tries again).
 */
const char *fs_result_json(struct fs_result *r, size_t *len);

#endif
