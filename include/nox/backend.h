/*
 * nox/backend.h - the NoxRunner backend interface.
 *
 * One handle type, struct nox_backend, with two implementations: "local"
 * (sandbox directories on this machine, commands isolated by bubblewrap)
 * and "http" (any server speaking the NoxRunner v1 API).  Every call
 * returns 0 (or a byte count) on success and a negative errno on failure,
 * with a message in the optional err.  Calls are safe from several threads
 * on one handle.
 *
 * The v1 operations (health, create, touch, exec, upload, download,
 * delete) exist on every backend.  The file-level operations may be
 * missing on a backend (an http server without the noxd extension): then
 * nox_backend_has() says so and the call returns -ENOSYS.
 *
 * Large data never travels in one buffer: upload reads a gzip tar from a
 * file descriptor, download writes one to a file descriptor.
 */
#ifndef NOX_BACKEND_H
#define NOX_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <nox/err.h>

#ifdef __cplusplus
extern "C" {
#endif

struct nox_backend;

/* ---- construction ---------------------------------------------------- */

#define NOX_DEFAULT_BASE_DIR "/tmp"
#define NOX_DEFAULT_TTL 900
#define NOX_DEFAULT_EXEC_TIMEOUT 30
/* Per stream, kept by the local backend in unlinked files, not memory. */
#define NOX_DEFAULT_OUTPUT_CAP ((size_t)64 * 1024 * 1024)
/* What noxd keeps by default: the v1 API's "about 1 MiB each". */
#define NOX_V1_OUTPUT_CAP ((size_t)1024 * 1024)
/* The umask of a command on the local backend unless exec_umask_set. */
#define NOX_DEFAULT_EXEC_UMASK 022
/*
 * When the local backend cuts a stream at its cap, the last line of the
 * result's err starts with this, e.g. "nox: truncated: stdout kept 1048576
 * of 3000000 bytes (output cap 1048576)" (docs/protocol.md).
 */
#define NOX_EXEC_TRUNCATED_NOTE "nox: truncated: "
/*
 * When an http client had to take a stream with U+FFFD for bytes that are
 * not UTF-8 (a v1-only server), the last line of err starts with this,
 * e.g. "nox: lossy: stdout may hold U+FFFD for bytes that were not UTF-8
 * (the server lacks nox.bytes)".
 */
#define NOX_EXEC_LOSSY_NOTE "nox: lossy: "

struct nox_local_opts {
	const char *base_dir;	/* NULL: NOX_DEFAULT_BASE_DIR */
	bool unisolated;	/* run commands without bwrap (caller warns) */
	bool allow_network;	/* keep the host network in the sandbox */
	size_t output_cap;	/* per stream; 0: NOX_DEFAULT_OUTPUT_CAP */
	uint64_t memory_limit;	/* bytes of address space; 0: 2 GiB */
	unsigned max_procs;	/* processes per command; 0: 256 */
	const char *bwrap_path;	/* NULL: "bwrap" from PATH */
	bool exec_umask_set;	/* false: NOX_DEFAULT_EXEC_UMASK */
	mode_t exec_umask;	/* the commands' umask when exec_umask_set */
};

struct nox_http_opts {
	const char *base_url;	/* NULL: $NOXRUNNER_BASE_URL */
	const char *token;	/* NULL: $NOXRUNNER_TOKEN (none if unset) */
	long connect_timeout_ms;	/* 0: 5000 */
	long timeout_ms;	/* whole request, non-exec; 0: 60000 */
	int retries;		/* idempotent calls; <0: 0, 0: 3 */
	bool v1_only;		/* do not probe or use extensions */
};

/* *out is set on success and owned by the caller (nox_backend_free). */
int nox_backend_local_new(const struct nox_local_opts *opts,
			  struct nox_backend **out, struct nox_err *err);
int nox_backend_http_new(const struct nox_http_opts *opts,
			 struct nox_backend **out, struct nox_err *err);
/* NULL is a no-op. */
void nox_backend_free(struct nox_backend *b);

/* "local" or "http"; static storage. */
const char *nox_backend_name(const struct nox_backend *b);

/* ---- capabilities ---------------------------------------------------- */

enum nox_op {
	NOX_OP_STAT,
	NOX_OP_LIST,
	NOX_OP_READ,
	NOX_OP_WRITE,
	NOX_OP_CREATE,
	NOX_OP_TRUNCATE,
	NOX_OP_MKDIR,
	NOX_OP_UNLINK,
	NOX_OP_RMDIR,
	NOX_OP_RENAME,
	NOX_OP_CHMOD,
	NOX_OP_UTIMENS,
	NOX_OP_SYMLINK,
	NOX_OP_READLINK,
	NOX_OP_LINK,
	NOX_OP_STATFS,
	NOX_OP_WORKSPACE_FD,	/* local only: a real directory fd */
	NOX_OP_LIST_SANDBOXES,
	NOX_OP_TREE,		/* whole-subtree listing in one call */
	NOX_OP_MKNOD,		/* FIFOs and sockets (never devices) */
	NOX_OP_FILES,		/* many regular files in one call */
	NOX_OP_BATCH,		/* many metadata operations in one call */
	NOX_OP__COUNT
};

/* true when b implements op; false means the call returns -ENOSYS. */
bool nox_backend_has(const struct nox_backend *b, enum nox_op op);

/* ---- the NoxRunner v1 operations -------------------------------------- */

struct nox_create_opts {
	long ttl_seconds;		/* 0: NOX_DEFAULT_TTL */
	const char *image;		/* each optional, NULL: unset */
	const char *cpu_limit;
	const char *memory_limit;
	const char *storage_limit;
};

struct nox_sandbox_info {
	char pod_name[256];
	char expires_at[64];		/* ISO 8601, UTC, e.g. 2026-12-01T10:00:00Z */
	long ttl_seconds;
};

/*
 * A way to stop a running command: when fd polls ready for events (or
 * hangs up), the backend kills the command's whole process tree and
 * nox_backend_exec returns -EINTR.  noxfs passes an eventfd its FUSE
 * INTERRUPT handler writes; noxd the client's socket (POLLRDHUP).
 */
struct nox_cancel {
	int fd;
	short events;
};

struct nox_exec_req {
	const char *const *argv;	/* NULL-terminated, argv[0] required */
	const char *workdir;		/* sandbox path; NULL: /workspace */
	const char *const *env;		/* NULL-terminated "K=V", or NULL */
	int timeout_seconds;		/* 0: NOX_DEFAULT_EXEC_TIMEOUT */
	/* http: the request's deadline in ms; 0: timeout_seconds plus a
	 * 30 s margin.  For short internal commands (a listing) that must
	 * not outlast the other operations' deadline. */
	long deadline_ms;
	/* NULL: the command runs to its end or its timeout */
	const struct nox_cancel *cancel;
};

struct nox_exec_result {
	int exit_code;		/* 124 timed out, 127 program not found */
	char *out;		/* NUL-terminated, out_len bytes before NUL */
	size_t out_len;
	char *err;
	size_t err_len;
	long duration_ms;
	/*
	 * The stream was cut at the backend's output cap.  Over http only
	 * a server sending the "truncated" extension member (noxd) can say
	 * so; a plain v1 server's cut goes unseen.  The backend that cut
	 * also ends err with a NOX_EXEC_TRUNCATED_NOTE line.
	 */
	bool out_truncated;
	bool err_truncated;
	/*
	 * The stream holds U+FFFD where the command wrote bytes that are
	 * not UTF-8: an http client against a server without nox.bytes
	 * guesses so (docs/protocol.md) and also ends err with a
	 * NOX_EXEC_LOSSY_NOTE line.
	 */
	bool out_lossy;
	bool err_lossy;
	/* Set by the parser: the bytes came in a nox.bytes base64 member. */
	bool out_exact;
	bool err_exact;
};

/* Frees out and err, not the struct; zeroes it.  NULL is a no-op. */
void nox_exec_result_cleanup(struct nox_exec_result *r);
/* Has c (NULL: none) fired already?  Polls it without waiting. */
bool nox_cancel_fired(const struct nox_cancel *c);

int nox_backend_health(struct nox_backend *b, struct nox_err *err);
/* Create or ensure sandbox id; info may be NULL. */
int nox_backend_create(struct nox_backend *b, const char *id,
		       const struct nox_create_opts *opts,
		       struct nox_sandbox_info *info, struct nox_err *err);
/* Reset expiry to now + ttl; -ENOENT if id is unknown. */
int nox_backend_touch(struct nox_backend *b, const char *id,
		      struct nox_err *err);
/*
 * Run a command.  On 0, *res holds the result (caller cleans it up), even
 * when the command exited non-zero, timed out (124) or was not found
 * (127).  A negative return means it could not be run (-EINVAL bad
 * request, -ENOENT unknown sandbox, -EAGAIN not ready, transport errors),
 * or -EINTR: req->cancel fired and the command was stopped (over http
 * only a server offering nox.cancel stops it, docs/protocol.md; with
 * another the wait is given up and the command runs on).
 */
int nox_backend_exec(struct nox_backend *b, const char *id,
		     const struct nox_exec_req *req,
		     struct nox_exec_result *res, struct nox_err *err);
/*
 * Extract the gzip tar read from tar_fd (from its current offset to EOF)
 * under sandbox path dest (NULL: /workspace; created if missing).
 */
int nox_backend_upload(struct nox_backend *b, const char *id,
		       const char *dest, int tar_fd, struct nox_err *err);
/*
 * As nox_backend_upload, and over http the server may take up to
 * answer_ms to answer once it has the whole tar (its extraction of big or
 * sparse files); 0: the request deadline, as for nox_backend_upload.
 */
int nox_backend_upload_wait(struct nox_backend *b, const char *id,
			    const char *dest, int tar_fd, long answer_ms,
			    struct nox_err *err);
/*
 * Write a gzip tar of sandbox path src (NULL: /workspace) to out_fd.  A
 * directory gives its contents with names relative to it; a single file
 * gives one entry named by its base name.
 */
int nox_backend_download(struct nox_backend *b, const char *id,
			 const char *src, int out_fd, struct nox_err *err);
/*
 * Called with the body of a streamed read in order; a non-zero return (an
 * errno) stops the transfer, which then fails with it.
 */
typedef int (*nox_data_cb)(const void *p, size_t n, void *ud);
/* As nox_backend_download, the gzip tar handed to cb as it arrives
 * (retried only before cb got a byte). */
int nox_backend_download_stream(struct nox_backend *b, const char *id,
				const char *src, nox_data_cb cb, void *ud,
				struct nox_err *err);
/* Delete sandbox id (-ENOENT if unknown). */
int nox_backend_delete(struct nox_backend *b, const char *id,
		       struct nox_err *err);
/* Current state of id; -ENOENT if it does not exist.  Never creates. */
int nox_backend_info(struct nox_backend *b, const char *id,
		     struct nox_sandbox_info *info, struct nox_err *err);

/*
 * Calls cb for each sandbox id the backend knows; a non-zero return from cb
 * stops the walk and is returned.
 */
typedef int (*nox_sandbox_cb)(const char *id, void *ud);
int nox_backend_list_sandboxes(struct nox_backend *b, nox_sandbox_cb cb,
			       void *ud, struct nox_err *err);

/* ---- file-level operations (paths relative to the workspace) ---------- */

/* lstat semantics: a symlink is reported, never followed. */
int nox_backend_stat(struct nox_backend *b, const char *id, const char *path,
		     struct stat *st, struct nox_err *err);
/*
 * Calls cb for each entry of directory path except "." and ".."; st is the
 * entry's lstat.  A non-zero return from cb stops the walk and is returned.
 */
typedef int (*nox_list_cb)(const char *name, const struct stat *st, void *ud);
int nox_backend_list(struct nox_backend *b, const char *id, const char *path,
		     nox_list_cb cb, void *ud, struct nox_err *err);
/* Returns bytes read (0 at EOF) or a negative errno. */
ssize_t nox_backend_read(struct nox_backend *b, const char *id,
			 const char *path, off_t off, void *buf, size_t len,
			 struct nox_err *err);
/* Writes at off (the file must exist); returns bytes written. */
ssize_t nox_backend_write(struct nox_backend *b, const char *id,
			  const char *path, off_t off, const void *buf,
			  size_t len, struct nox_err *err);
/*
 * Reads the whole of file path, handing its bytes to cb as they arrive
 * (nox.fs: GET fs/file, one request).  0 once all came, or -errno (cb
 * may have had part of it).
 */
int nox_backend_read_stream(struct nox_backend *b, const char *id,
			    const char *path, nox_data_cb cb, void *ud,
			    struct nox_err *err);
/*
 * Writes len bytes of in_fd, read from its offset in_off, at off of path
 * (the file must exist), as one streamed request (nox.fs: PUT fs/file;
 * the server's body limit answers -EFBIG).  Returns the bytes written.
 */
ssize_t nox_backend_write_fd(struct nox_backend *b, const char *id,
			     const char *path, off_t off, int in_fd,
			     off_t in_off, off_t len, struct nox_err *err);
/* Create a regular file; excl: fail with -EEXIST if it exists. */
int nox_backend_createfile(struct nox_backend *b, const char *id,
			   const char *path, mode_t mode, bool excl,
			   struct nox_err *err);
int nox_backend_truncate(struct nox_backend *b, const char *id,
			 const char *path, off_t size, struct nox_err *err);
int nox_backend_mkdir(struct nox_backend *b, const char *id, const char *path,
		      mode_t mode, struct nox_err *err);
int nox_backend_unlink(struct nox_backend *b, const char *id,
		       const char *path, struct nox_err *err);
int nox_backend_rmdir(struct nox_backend *b, const char *id, const char *path,
		      struct nox_err *err);
/* flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE (linux/fs.h values). */
int nox_backend_rename(struct nox_backend *b, const char *id,
		       const char *from, const char *to, unsigned flags,
		       struct nox_err *err);
int nox_backend_chmod(struct nox_backend *b, const char *id, const char *path,
		      mode_t mode, struct nox_err *err);
/* ts as for utimensat (UTIME_NOW / UTIME_OMIT allowed); never follows. */
int nox_backend_utimens(struct nox_backend *b, const char *id,
			const char *path, const struct timespec ts[2],
			struct nox_err *err);
/* Create symlink path -> target (target is stored as given). */
int nox_backend_symlink(struct nox_backend *b, const char *id,
			const char *target, const char *path,
			struct nox_err *err);
/* Writes at most size-1 bytes and a NUL to buf; returns the length. */
ssize_t nox_backend_readlink(struct nox_backend *b, const char *id,
			     const char *path, char *buf, size_t size,
			     struct nox_err *err);
int nox_backend_link(struct nox_backend *b, const char *id, const char *from,
		     const char *to, struct nox_err *err);
/*
 * Create a FIFO or socket: mode holds S_IFIFO or S_IFSOCK and the
 * permission bits.  Any other type (a device node) is -EPERM: a backend
 * never makes devices for a caller (docs/security.md).
 */
int nox_backend_mknod(struct nox_backend *b, const char *id, const char *path,
		      mode_t mode, struct nox_err *err);
/*
 * Calls cb for every entry below directory path (not path itself), parents
 * before children; rel is relative to path, st its lstat, target the link
 * text for symlinks (else NULL).  On the http backend one round trip per
 * page of the nox.fs fs/tree endpoint (4,096 entries), each page checked
 * whole before its entries are passed on, in walk order (docs/protocol.md);
 * so a failure can come after some callbacks.  A non-zero return from cb
 * stops the walk.
 */
typedef int (*nox_tree_cb)(const char *rel, const struct stat *st,
			   const char *target, void *ud);
int nox_backend_tree(struct nox_backend *b, const char *id, const char *path,
		     nox_tree_cb cb, void *ud, struct nox_err *err);
int nox_backend_statfs(struct nox_backend *b, const char *id,
		       struct statvfs *st, struct nox_err *err);
/*
 * Writes a gzip (or plain) tar to out_fd holding those of the n
 * workspace-relative paths that are regular files, each under its own
 * path; a path that is missing, or is not a regular file, is left out.
 * One round trip on the http backend (the nox.files extension's
 * fs/files).  n is at most 4096 (-EINVAL beyond).
 */
int nox_backend_download_files(struct nox_backend *b, const char *id,
			       const char *const *paths, size_t n, int out_fd,
			       struct nox_err *err);

/* One metadata operation of nox_backend_batch. */
enum nox_fsop_code {
	NOX_FSOP_UNLINK,
	NOX_FSOP_RMDIR,
	NOX_FSOP_RENAME,   /* path to path2, flags as nox_backend_rename's */
	NOX_FSOP_LINK,	   /* path to path2 */
	NOX_FSOP_CHMOD,	   /* mode */
	NOX_FSOP_UTIMENS,  /* ts, as nox_backend_utimens's */
	NOX_FSOP_TRUNCATE, /* size */
	NOX_FSOP_MKNOD,	   /* mode: S_IFIFO or S_IFSOCK and permissions */
};

struct nox_fsop {
	enum nox_fsop_code code;
	const char *path;
	const char *path2;
	mode_t mode;
	off_t size;
	unsigned flags;
	struct timespec ts[2];
};

#define NOX_BATCH_MAX 500 /* operations of one nox_backend_batch */

/*
 * Runs ops[0..n) in order, each as its own call would, and puts each
 * result in results[i] (0 or -errno): one failing does not stop the
 * next.  0 when every operation was tried; else -errno for the whole
 * (a transport failure: any of them may or may not have run; a bad
 * argument: none ran).  n is 1 to NOX_BATCH_MAX.  One round trip on the
 * http backend (the nox.ops extension's fs/ops); a backend without a
 * batch of its own runs the calls one by one.
 */
int nox_backend_batch(struct nox_backend *b, const char *id,
		      const struct nox_fsop *ops, size_t n, int *results,
		      struct nox_err *err);
/*
 * Local only: an O_PATH|O_DIRECTORY descriptor of the workspace directory,
 * owned by the caller.  Operations relative to it with single name
 * components and O_NOFOLLOW stay inside the workspace.
 */
int nox_backend_workspace_fd(struct nox_backend *b, const char *id,
			     struct nox_err *err);

#ifdef __cplusplus
}
#endif
#endif
