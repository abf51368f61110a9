/*
 * barrier.h - the exec barrier: a command runs in a sandbox only after
 * everything written through the mount has reached it, and the kernel
 * forgets what the command may have changed before the caller replies.
 *
 * One call, fs_barrier_run, does it all in order:
 *
 *   writeback   the page cache of every file of sb that may hold dirty
 *               pages is dropped, so the kernel writes them to the file
 *               (fs_table_collect_wb); the command's start time is taken
 *   flush       the storage layer's flush hook (uploads over http)
 *   exec        nox_backend_exec; its result becomes sb's last result
 *   invalidate  the after_exec hook, then the kernel caches of sb's nodes
 *               that may have changed since the start time
 *               (fs_table_collect_changed with hooks->inval_changed,
 *               else all of them: fs_table_collect)
 *
 * A failed flush runs nothing (and invalidates nothing: nothing ran).  A
 * failed exec still invalidates: a command that failed half-way may have
 * changed files.  Either failure replaces the sandbox's last result by
 * an error result saying why (result.h).  Without a request (.nox/sync)
 * the call stops after flush and never touches the last result.  No lock is
 * held while notifying the kernel, and the caller must hold none of the table's
 * or the sandbox's.
 */
#ifndef NOXFS_BARRIER_H
#define NOXFS_BARRIER_H

#include <nox/nox.h>

#include "result.h"
#include "sandbox.h"

/*
 * Runs req in sb behind the barrier (req NULL: writeback and flush
 * only).  With a request and out not NULL, *out holds a reference to the
 * result, which is also sb's last result: the command's on 0, the error
 * result on failure (NULL if out of memory).  0 or -errno (the flush's
 * or the exec's; ENOTDIR for a missing working directory of a sandbox
 * that exists; detail in err, already logged).
 */
int fs_barrier_run(struct fs_sandbox *sb, const struct nox_exec_req *req,
		   struct fs_result **out, struct nox_err *err);

#endif
