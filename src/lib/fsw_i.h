/*
 * fsw_i.h - the nox.fs wire format (docs/protocol.md), for both ends: the
 * http backend (client) and noxd (server).  Private to libnox and its
 * programs: not installed, not part of libnox.so's ABI.
 *
 * Parsers take untrusted input: every field is type- and range-checked and
 * a failure leaves a short reason in why (or err); nothing is partially
 * filled on failure.  Builders return new json-c objects or malloc'd
 * strings, NULL when memory runs out.
 */
#ifndef NOX_FSW_I_H
#define NOX_FSW_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include <json-c/json.h>

#include <nox/err.h>

#define FSW_JSON_MAX   ((size_t)64 << 20) /* any JSON body */
#define FSW_JSON_DEPTH 32
#define FSW_JSON_OUT   (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ---- text: UTF-8 and base64 ------------------------------------------- */

/*
 * Length of the valid UTF-8 sequence at s (n > 0 bytes left), or 0 when
 * the bytes there do not start one; *bad is then the length of the maximal
 * ill-formed subpart (at least 1).  Overlong forms, surrogates and code
 * points above U+10FFFF are invalid.
 */
size_t fsw_utf8_seq(const unsigned char *s, size_t n, size_t *bad);

/* true when s[0..len) is valid UTF-8 by the rules of fsw_utf8_seq. */
bool fsw_utf8_valid(const char *s, size_t len);

/* Standard base64 with padding, malloc'd (caller frees); NULL on ENOMEM. */
char *fsw_b64_encode(const void *data, size_t len);

/*
 * Decodes canonical standard base64 (padding optional, zero left-over
 * bits) into a malloc'd NUL-terminated buffer the caller frees; *len is
 * the decoded length.  NULL when s is not base64 or memory runs out.
 */
char *fsw_b64_decode(const char *s, size_t *len);

/* ---- errno names ------------------------------------------------------ */

/* Symbolic name of a (positive or negative) errno, NULL when unnamed. */
const char *fsw_errno_name(int code);

/* The errno named ("ENOTEMPTY"), 0 when the name is unknown. */
int fsw_errno_code(const char *name);

/*
 * The errno an error body {"error": ..., "errno": "NAME"} names: the code,
 * or 0 when the body has no known name.  *has_errno says whether it holds
 * an "errno" string at all (a server that named its cause).
 */
int fsw_error_parse(const char *body, size_t len, bool *has_errno);

/* ---- JSON fields ------------------------------------------------------ */

/*
 * Parses len bytes as one JSON object (strict JSON, depth FSW_JSON_DEPTH,
 * white space after it allowed); *out a new reference the caller puts.
 * 0, or -1 with the reason in why.
 */
int fsw_json_parse(const char *s, size_t len, json_object **out, char *why,
		   size_t whysz);

/* An integer field in [lo, hi].  0, 1 when absent and not required, -1. */
int fsw_get_int(json_object *o, const char *key, bool required, int64_t lo,
		int64_t hi, int64_t *val, char *why, size_t whysz);

/* A string field without NUL bytes; *val points into o.  0, 1, or -1. */
int fsw_get_str(json_object *o, const char *key, bool required,
		const char **val, char *why, size_t whysz);

/*
 * A name field: key as a string, or key64 as base64 of raw bytes.  *val is
 * malloc'd (caller frees); NUL bytes are refused.  0, 1 when both keys are
 * absent and not required, or -1.
 */
int fsw_get_name(json_object *o, const char *key, bool required, char **val,
		 char *why, size_t whysz);

/* Adds key: s, or key64: base64(s) when s is not valid UTF-8.  0 or -1. */
int fsw_add_name(json_object *o, const char *key, const char *s);

/* ---- stat, statfs ----------------------------------------------------- */

/* A nox.fs stat object; target (a symlink's) may be NULL.  New reference. */
json_object *fsw_stat_build(const struct stat *st, const char *target);

/*
 * A nox.fs stat object to struct stat.  "other" becomes a FIFO or socket
 * when its "kind" says so; any other "other" (a device, or an older
 * server's FIFO) becomes a regular file, which is what is safe to show.
 * 0 or -1 with why.
 */
int fsw_stat_parse(json_object *o, struct stat *st, char *why, size_t whysz);

json_object *fsw_statfs_build(const struct statvfs *sv);
int fsw_statfs_parse(json_object *o, struct statvfs *sv, char *why,
		     size_t whysz);

/* ---- fs/list and fs/tree ---------------------------------------------- */

enum fsw_list_kind {
	FSW_LIST, /* entries carry "name": one path component */
	FSW_TREE, /* entries carry "path" below the root, and "target" */
};

struct fsw_ent {
	char *name;   /* list: the name; tree: the relative path */
	char *target; /* tree: a symlink's target, else NULL */
	struct stat st;
};

/*
 * The "entries" of a fs/list or fs/tree response, every one checked before
 * any is returned (list names are single components; tree paths are
 * relative, without "." or ".." components).  On success *ents (free with
 * fsw_entries_free) and *n; else -EPROTO or -ENOMEM with why.
 */
int fsw_entries_parse(json_object *o, enum fsw_list_kind kind,
		      struct fsw_ent **ents, size_t *n, char *why,
		      size_t whysz);

/* Frees ents[0..n) and the array; NULL is a no-op. */
void fsw_entries_free(struct fsw_ent *ents, size_t n);

/*
 * Paged fs/tree (docs/protocol.md): the walk order of tree paths, parents
 * before children and siblings by bytes ('/' sorts below every byte of a
 * name).  <0, 0 or >0 as strcmp.
 */
int fsw_path_cmp(const char *a, const char *b);

/*
 * Checks one page of a paged fs/tree: every path comes after the one
 * before it in walk order, the first after the cursor sent (after, NULL on
 * the first page), and a "next" cursor (NULL: the last page) is the
 * page's last path.  0, or -EPROTO with why.
 */
int fsw_tree_page_check(const struct fsw_ent *ents, size_t n, const char *after,
			const char *next, char *why, size_t whysz);

/*
 * {"entries": arr}, taking arr (each element fsw_stat_build's with
 * fsw_add_name's "name" or "path"); NULL on ENOMEM, arr put then.
 */
json_object *fsw_entries_build(json_object *arr);

/* ---- fs/op ------------------------------------------------------------ */

enum fsw_opcode {
	FSW_OP_CREATE,
	FSW_OP_TRUNCATE,
	FSW_OP_MKDIR,
	FSW_OP_UNLINK,
	FSW_OP_RMDIR,
	FSW_OP_RENAME,
	FSW_OP_CHMOD,
	FSW_OP_UTIMENS,
	FSW_OP_SYMLINK,
	FSW_OP_LINK,
	FSW_OP_READLINK,
	FSW_OP_MKNOD, /* a FIFO or socket (nox.fs extension member) */
};

/*
 * One fs/op request.  After fsw_op_parse the strings are owned (free with
 * fsw_op_cleanup); fsw_op_encode only reads them, so a caller may point
 * them at its own strings.  Times are nanoseconds, -1 now, -2 omit.
 */
struct fsw_op {
	enum fsw_opcode code;
	char *path, *from, *to, *target;
	int64_t mode, size, flags, atime_ns, mtime_ns;
	mode_t fmt; /* mknod: S_IFIFO or S_IFSOCK */
	bool excl;
};

/*
 * The JSON body for op (only the fields its code takes), malloc'd; NULL
 * on ENOMEM.
 */
char *fsw_op_encode(const struct fsw_op *op);

/*
 * Parses a fs/op body into op (zeroed first; defaults filled in).  0 or
 * -EINVAL / -ENOMEM with the reason in err.
 */
int fsw_op_parse(const char *s, size_t len, struct fsw_op *op,
		 struct nox_err *err);

/* Frees the strings of a parsed op (not op itself). */
void fsw_op_cleanup(struct fsw_op *op);

/* A utimensat timespec (NULL: now) as wire nanoseconds. */
int64_t fsw_ns_from_ts(const struct timespec *ts);

/* Wire nanoseconds to a utimensat timespec; -EINVAL when out of range. */
int fsw_ns_to_ts(int64_t ns, struct timespec *ts);

/* {"target": ...} of a readlink reply; new reference. */
json_object *fsw_readlink_build(const char *target);

/* ---- fs/files: many small files in one answer -------------------------- */

/* The most paths one fs/files request may name. */
#define FSW_FILES_MAX 4096

/*
 * The fs/files body {"files": [{"path": P} or {"path64": B64}, ...]} for
 * the n paths, malloc'd; NULL on ENOMEM.
 */
char *fsw_files_encode(const char *const *paths, size_t n);

/*
 * Parses a fs/files body: *paths (malloc'd, each path malloc'd; free with
 * fsw_files_free) and *n.  Every path is workspace-relative and checked
 * (nox_path_validate, not the root); at most FSW_FILES_MAX.  0 or -EINVAL
 * / -ENOMEM with the reason in err.
 */
int fsw_files_parse(const char *s, size_t len, char ***paths, size_t *n,
		    struct nox_err *err);
void fsw_files_free(char **paths, size_t n);

/* ---- fs/ops (nox.ops 1) ----------------------------------------------- */

#define FSW_OPS_MAX 500 /* ops of one fs/ops request */

/* {"ops": [op, ...]}, each as fsw_op_encode's; malloc'd, NULL on ENOMEM. */
char *fsw_ops_encode(const struct fsw_op *ops, size_t n);

/*
 * Parses a fs/ops body: *ops (malloc'd; free with fsw_ops_free) and *n,
 * 1 to FSW_OPS_MAX ops, each as fsw_op_parse takes it (readlink is not
 * one of them).  Nothing is returned unless every op is well formed.  0
 * or -EINVAL / -ENOMEM with the reason in err.
 */
int fsw_ops_parse(const char *s, size_t len, struct fsw_op **ops, size_t *n,
		  struct nox_err *err);
void fsw_ops_free(struct fsw_op *ops, size_t n);

/* {"results": [{} or {"errno", "error"}, ...]} for rc[i] (0 or -errno)
 * and msg[i]; NULL on ENOMEM. */
json_object *fsw_results_build(const int *rc, const char *const *msg,
			       size_t n);

/* Parses that answer for n ops into results (0 or -errno; an errno name
 * it does not know is EIO): 0, or -EPROTO when it is not n results. */
int fsw_results_parse(const char *s, size_t len, int *results, size_t n,
		      struct nox_err *err);

#endif
