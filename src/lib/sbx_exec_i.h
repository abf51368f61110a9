/*
 * sbx_exec_i.h - run one command isolated in a local sandbox (bubblewrap).
 *
 * Private to libnox: the local backend calls it; noxd and noxfs reach it
 * through nox_backend_exec().
 */
#ifndef NOX_SBX_EXEC_I_H
#define NOX_SBX_EXEC_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <nox/backend.h>
#include <nox/err.h>

struct sbx_exec_opts {
	const char *bwrap_path; /* NULL: "bwrap" from PATH */
	bool unisolated;	/* run directly on the host (no bwrap) */
	bool allow_network;	/* keep the host network namespace */
	size_t output_cap;	/* per stream; 0: NOX_DEFAULT_OUTPUT_CAP */
	const char *spool_dir;	/* where output is kept (unlinked files)
				 * while the command runs; NULL: /tmp */
	bool umask_set;		/* false: NOX_DEFAULT_EXEC_UMASK */
	mode_t umask;		/* the command's umask when umask_set */
	uint64_t memory_limit;	/* RLIMIT_AS bytes and the cgroup's memory
				 * limit for the whole command; 0: 2 GiB */
	unsigned max_procs;	/* processes of the whole command (bwrap
				 * included); 0: 256 */
};

/* How the process-count limit of a command was enforced. */
enum sbx_pids_limit {
	SBX_PIDS_UNKNOWN = -1, /* nothing has run yet in this process */
	SBX_PIDS_RLIMIT = 0,   /* RLIMIT_NPROC only: root is NOT bounded */
	SBX_PIDS_CGROUP1 = 1,  /* a per-command cgroup v1 (pids, memory) */
	SBX_PIDS_CGROUP2 = 2,  /* a per-command cgroup v2 */
};

/*
 * What the last sbx_exec_run() of this process used (enum sbx_pids_limit),
 * for diagnostics and tests: SBX_PIDS_RLIMIT means no cgroup was usable.
 */
int sbx_exec_pids_limit(void);

/*
 * Runs req with workspace_dir (a host directory) bound at /workspace.
 * req->workdir is a sandbox path and must lie at or below /workspace.
 * Returns 0 with *res filled whenever the command was started (exit code
 * 124 on timeout, 127 when the program is missing; a timeout notice and
 * then a NOX_EXEC_TRUNCATED_NOTE line end err when they apply); negative
 * errno when it could not be (-EINVAL bad workdir or env, -ENOENT bwrap missing, with an
 * install hint in err).
 */
int sbx_exec_run(const struct sbx_exec_opts *opts, const char *workspace_dir,
		 const struct nox_exec_req *req, struct nox_exec_result *res,
		 struct nox_err *err);

#endif
