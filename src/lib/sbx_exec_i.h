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

#include <nox/backend.h>
#include <nox/err.h>

struct sbx_exec_opts {
	const char *bwrap_path;	/* NULL: "bwrap" from PATH */
	bool unisolated;	/* run directly on the host (no bwrap) */
	bool allow_network;	/* keep the host network namespace */
	size_t output_cap;	/* per stream; 0: NOX_DEFAULT_OUTPUT_CAP */
	uint64_t memory_limit;	/* RLIMIT_AS bytes; 0: 2 GiB */
	unsigned max_procs;	/* 0: 256 */
};

/*
 * Runs req with workspace_dir (a host directory) bound at /workspace.
 * req->workdir is a sandbox path and must lie at or below /workspace.
 * Returns 0 with *res filled whenever the command was started (exit code
 * 124 on timeout, 127 when the program is missing); negative errno when it
 * could not be (-EINVAL bad workdir or env, -ENOENT bwrap missing, with an
 * install hint in err).
 */
int sbx_exec_run(const struct sbx_exec_opts *opts, const char *workspace_dir,
		 const struct nox_exec_req *req, struct nox_exec_result *res,
		 struct nox_err *err);

#endif
