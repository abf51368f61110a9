/*
 * nox/v1.h - the NoxRunner v1 JSON shapes (json-c), shared by the http
 * backend, noxd and the noxfs control files.
 *
 * Parsers treat their input as hostile: wrong types, missing required
 * fields, trailing garbage and over-long input are -EINVAL with a message
 * naming the field.  Encoders return a malloc'd NUL-terminated string the
 * caller frees.
 */
#ifndef NOX_V1_H
#define NOX_V1_H

#include <stddef.h>
#include <nox/backend.h>
#include <nox/err.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An exec request owning its strings; filled by nox_v1_exec_req_parse. */
struct nox_v1_exec_req {
	struct nox_exec_req req;	/* points into the fields below */
	char **argv;
	char **env;			/* "K=V" */
	char *workdir;
};
void nox_v1_exec_req_cleanup(struct nox_v1_exec_req *r);

/*
 * Parses {"cmd": [..], "workdir"?: s, "env"?: {K: V}, "timeoutSeconds"?: n}.
 * cmd must be a non-empty array of strings (empty gives -EINVAL "empty
 * command"); env keys must be non-empty and free of '='.
 */
int nox_v1_exec_req_parse(const char *json, size_t len,
			  struct nox_v1_exec_req *out, struct nox_err *err);
char *nox_v1_exec_req_encode(const struct nox_exec_req *req);

/*
 * {"exitCode", "stdout", "stderr", "durationMs"} both ways, plus the
 * extension members, each encoded only when needed and optional when
 * parsed: "truncated" and "lossy": {"stdout": bool, "stderr": bool} (a
 * stream cut; a stream that lost bytes on a v1-only wire), and nox.bytes'
 * "stdoutBase64"/"stderrBase64": the exact bytes of a stream that is not
 * valid UTF-8 (its "stdout"/"stderr" then holds U+FFFD for the invalid
 * bytes).  Parsing prefers the base64 member and sets out_exact/err_exact
 * when it was there.  encode_plain sends none of them: plain v1.
 */
int nox_v1_exec_result_parse(const char *json, size_t len,
			     struct nox_exec_result *out, struct nox_err *err);
char *nox_v1_exec_result_encode(const struct nox_exec_result *res);
char *nox_v1_exec_result_encode_plain(const struct nox_exec_result *res);

/* {"ttlSeconds"?, "image"?, "cpuLimit"?, "memoryLimit"?,
 *  "ephemeralStorageLimit"?}; strings in out point into *store, which the
 * caller frees with free(). */
int nox_v1_create_req_parse(const char *json, size_t len,
			    struct nox_create_opts *out, char **store,
			    struct nox_err *err);
char *nox_v1_create_req_encode(const struct nox_create_opts *opts);

/* {"podName", "expiresAt"} both ways. */
int nox_v1_create_resp_parse(const char *json, size_t len,
			     struct nox_sandbox_info *out, struct nox_err *err);
char *nox_v1_create_resp_encode(const struct nox_sandbox_info *info);

/* {"error": msg}; msg need not be valid UTF-8 (it is escaped). */
char *nox_v1_error_encode(const char *msg);
/* Extracts the "error" text of a body, or copies a plain-text body
 * (printable part, truncated) into out. */
void nox_v1_error_text(const char *body, size_t len, char *out, size_t outsz);

#ifdef __cplusplus
}
#endif
#endif
