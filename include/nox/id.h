/*
 * nox/id.h - session IDs and sandbox paths.
 *
 * Session ID rule (the one place it is defined):
 *   1 to NOX_ID_MAX bytes of [A-Za-z0-9._-], not starting with '.' or '-'.
 * Anything else is rejected with EINVAL; an ID is never rewritten into
 * another one, so two different IDs never share a sandbox directory.
 *
 * Workspace paths: the file-level operations take paths relative to the
 * workspace root ("" or "." is the root, "a/b" a file below it).  v1 calls
 * (upload dest, download src, exec workdir) take sandbox paths: absolute
 * paths at or below /workspace, or relative ones, taken relative to
 * /workspace.
 */
#ifndef NOX_ID_H
#define NOX_ID_H

#include <stddef.h>
#include <nox/err.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NOX_ID_MAX 128
#define NOX_WORKSPACE "/workspace"

/* 0 if id follows the rule, else -EINVAL with a message in err. */
int nox_id_validate(const char *id, struct nox_err *err);

/*
 * Checks a workspace-relative path: no leading '/', no "." or ".."
 * component other than a lone "." for the root, no empty component, no
 * NUL, each component at most NAME_MAX bytes, the whole under PATH_MAX.
 * Returns 0 or -EINVAL (-ENAMETOOLONG for length) with a message.
 */
int nox_path_validate(const char *rel, struct nox_err *err);

/*
 * Maps a sandbox path ("/workspace/a/b", "a/b", "/workspace") to the
 * workspace-relative form ("a/b", "a/b", "") in out (size outsz).  Paths
 * outside /workspace, with ".." components or too long fail with -EINVAL.
 */
int nox_path_from_sandbox(const char *sandbox_path, char *out, size_t outsz,
			  struct nox_err *err);

#ifdef __cplusplus
}
#endif
#endif
