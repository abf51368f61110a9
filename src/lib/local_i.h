/*
 * local_i.h - private entry points of the local backend (local.c).
 *
 * Private to libnox and its in-tree users (noxd's reaper): the library
 * never deletes an expired sandbox on its own; a long-running owner of the
 * base directory calls nox_local_reap_expired() now and then.
 */
#ifndef NOX_LOCAL_I_H
#define NOX_LOCAL_I_H

#include <time.h>

#include <nox/backend.h>
#include <nox/err.h>

/*
 * Deletes every sandbox of the local backend b whose state file
 * (nox-state.json) is valid and says it expired at or before now.  A
 * sandbox without a state file, or with one that cannot be parsed, is
 * never reaped (see the rules at the top of local.c).  It also removes
 * the hidden tombstone directories (".noxrunner_deleting_*") that a
 * process killed in the middle of a delete left behind.
 *
 * cb (may be NULL) is called with the id after each sandbox is deleted;
 * a non-zero return stops the walk and is returned as is.  Returns the
 * number of sandboxes deleted, or a negative errno when the base directory
 * cannot be read or b is not a local backend (-EINVAL).  A sandbox that
 * fails to delete is skipped; the last such failure is described in err
 * but does not make the call fail.  Safe to call while other threads use
 * b: a sandbox touched while the reaper looks at it is kept.
 */
int nox_local_reap_expired(struct nox_backend *b, time_t now,
			   int (*cb)(const char *id, void *ud), void *ud,
			   struct nox_err *err);

#endif
