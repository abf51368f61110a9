/*
 * http_i.h - the http backend's parts: the transport (http.c: curl handle
 * pool, retries, status to errno, extension discovery) and the protocol
 * calls built on it (http_v1.c: v1 and nox.sandboxes; http_fs.c: nox.fs).
 */
#ifndef NOX_HTTP_I_H
#define NOX_HTTP_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include <nox/backend.h>
#include <nox/id.h>

#include "backend_i.h"
#include "fsw_i.h"

#define POOL_MAX       16
#define JSON_MAX       FSW_JSON_MAX /* any in-memory success body */
#define EXEC_MARGIN_MS 30000L	    /* exec: its timeout plus this */

/* A pooled curl handle and its newest socket (http.c easy_open). */
struct http_easy {
	CURL *e;
	CURLM *m;	    /* e runs in it, so its connections are kept there */
	curl_socket_t sock; /* CURL_SOCKET_BAD: none open */
};

struct http_backend {
	struct nox_backend base; /* first: backend.c sees only this */
	char *base_url;		 /* no trailing '/' */
	char *auth;		 /* "Authorization: Bearer T" or NULL */
	long connect_timeout_ms;
	long timeout_ms;
	int retries;
	CURLSH *share;
	pthread_mutex_t share_mx[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_mx;
	struct http_easy *pool[POOL_MAX]; /* protected by pool_mx */
	int npool;	      /* protected by pool_mx */
	pthread_mutex_t ext_mx;
	bool ext_known;	   /* protected by ext_mx */
	long ext_fs;	   /* protected by ext_mx; 0: absent */
	long ext_sbx;	   /* protected by ext_mx */
	long ext_bytes;	   /* protected by ext_mx */
	long ext_files;	   /* protected by ext_mx; nox.files */
	long ext_ops;	   /* protected by ext_mx; nox.ops */
	long ext_cancel;   /* protected by ext_mx; nox.cancel */
	long ext_retry_at; /* protected by ext_mx; monotonic ms */
	/* the space figures the last fs/tree answer carried (http_fs.c) */
	pthread_mutex_t sf_mx;
	char sf_id[NOX_ID_MAX + 1]; /* protected by sf_mx; "": none */
	struct statvfs sf;	    /* protected by sf_mx */
	long sf_at;		    /* protected by sf_mx; monotonic ms */
};

enum sink { SINK_MEM, SINK_FD, SINK_BUF, SINK_CB };

/* One logical request (all its attempts). */
struct http_call {
	/* request */
	const char *method;
	char *path;	   /* owned; escaped path and query */
	const char *ctype; /* Content-Type of the body */
	const char *body;  /* in-memory body, or NULL */
	size_t body_len;
	int in_fd;	/* streamed body, or -1 */
	off_t in_start; /* offset of the body in in_fd */
	off_t in_size;	/* -1: unknown (chunked) */
	off_t in_len;	/* -1: to EOF; else at most this much of in_fd */
	bool in_seekable;
	enum sink sink;
	int out_fd; /* SINK_FD */
	off_t out_start;
	bool out_regular;
	char *buf; /* SINK_BUF: caller's buffer */
	size_t buf_cap;
	off_t buf_off;	   /* file offset asked for */
	nox_data_cb data_cb; /* SINK_CB: gets the body in order */
	void *data_ud;
	const char *range; /* Range header value, or NULL */
	bool idempotent;
	bool gone_ok; /* a retried DELETE's 404 is success */
	long timeout_ms; /* deadline; a bulk transfer's stall bound */
	long answer_ms;	 /* upload: the stall bound once the server has
			    the whole body, if longer */
	/* stops the call (EINTR) when its fd is readable; NULL: none */
	const struct nox_cancel *cancel;
	/* state of the current attempt */
	struct http_easy *x;
	CURL *e; /* x->e */
	long status;
	bool started; /* first body byte seen */
	char *mem;    /* SINK_MEM, and every error body */
	size_t mem_len, mem_cap;
	size_t buf_got;
	off_t skip;	    /* SINK_BUF on a 200: bytes to drop */
	bool enough;	    /* SINK_BUF: stopped on purpose */
	long long cr_start; /* Content-Range start, -1 none */
	uint64_t in_read, out_written;
	curl_off_t prog_last, prog_win_bytes; /* bulk: bytes moved */
	long prog_moved_at, prog_win_at;      /* bulk: monotonic ms */
	int cb_errno; /* failure found in a callback */
	char cb_msg[128];
};

static inline struct http_backend *http_of(struct nox_backend *b)
{
	return (struct http_backend *)b;
}

/* ---- http.c: the transport ---------------------------------------------- */

/*
 * "/v1/sandboxes/<id><suffix>?k1=v1&k2=v2" (id NULL: suffix alone), the
 * values percent-encoded; malloc'd, NULL on allocation failure.
 */
char *http_path(const char *id, const char *suffix, const char *k1,
		const char *v1, const char *k2, const char *v2);

/* Starts c for method and path (owned by c from here; NULL is ENOMEM). */
void http_call_init(struct http_call *c, const char *method, char *path);
/* c's body is the JSON text json (not owned; it must outlive the call). */
void http_call_json_body(struct http_call *c, const char *json);
/* Frees what c holds (path, body read), not c. */
void http_call_cleanup(struct http_call *c);

/*
 * Runs c to completion: 0 on a 2xx (the body in c->mem or the sink), or
 * a negative errno with the message in err.  Retries idempotent calls
 * within the call's deadline.
 */
int http_call_run(struct http_backend *h, struct http_call *c,
		  struct nox_err *err);

/* c->mem as a JSON object (caller puts), or -EPROTO naming the call. */
int http_call_json(const struct http_call *c, json_object **o,
		   struct nox_err *err);
/* -EPROTO "METHOD PATH: malformed response: why". */
int http_call_bad(const struct http_call *c, const char *why,
		  struct nox_err *err);

/* Makes the extension state known: 0, or -errno when the probe failed. */
int http_ext_probe(struct http_backend *h, struct nox_err *err);
/* Is nox.sandboxes (sbx) or nox.fs version 1 offered?  After a probe. */
bool http_ext_usable(struct http_backend *h, bool sbx);
/* Does the server offer nox.bytes 1 / nox.cancel 1?  Probes once if
 * needed; a failed probe counts as not offered. */
bool http_ext_bytes(struct http_backend *h);
bool http_ext_cancel(struct http_backend *h);
/* Does the server offer nox.files 1 / nox.ops 1?  After a probe. */
bool http_ext_files(struct http_backend *h);
bool http_ext_ops(struct http_backend *h);
/* 0 when nox.fs (or nox.sandboxes) 1 can be used, else a negative errno. */
int http_ext_need(struct http_backend *h, bool sbx, struct nox_err *err);

/* ---- http_v1.c: v1 and nox.sandboxes ------------------------------------ */

int http_v1_health(struct nox_backend *b, struct nox_err *err);
int http_v1_create(struct nox_backend *b, const char *id,
		   const struct nox_create_opts *opts,
		   struct nox_sandbox_info *info, struct nox_err *err);
int http_v1_touch(struct nox_backend *b, const char *id, struct nox_err *err);
int http_v1_exec(struct nox_backend *b, const char *id,
		 const struct nox_exec_req *req, struct nox_exec_result *res,
		 struct nox_err *err);
int http_v1_upload(struct nox_backend *b, const char *id, const char *dest,
		   int tar_fd, long answer_ms, struct nox_err *err);
int http_v1_download(struct nox_backend *b, const char *id, const char *src,
		     int out_fd, struct nox_err *err);
int http_v1_download_stream(struct nox_backend *b, const char *id,
			    const char *src, nox_data_cb cb, void *ud,
			    struct nox_err *err);
int http_v1_delete(struct nox_backend *b, const char *id, struct nox_err *err);
int http_v1_info(struct nox_backend *b, const char *id,
		 struct nox_sandbox_info *info, struct nox_err *err);
int http_v1_list_sandboxes(struct nox_backend *b, nox_sandbox_cb cb, void *ud,
			   struct nox_err *err);

/* ---- http_fs.c: nox.fs -------------------------------------------------- */

int http_fs_stat(struct nox_backend *b, const char *id, const char *path,
		 struct stat *st, struct nox_err *err);
int http_fs_list(struct nox_backend *b, const char *id, const char *path,
		 nox_list_cb cb, void *ud, struct nox_err *err);
int http_fs_tree(struct nox_backend *b, const char *id, const char *path,
		 nox_tree_cb cb, void *ud, struct nox_err *err);
ssize_t http_fs_read(struct nox_backend *b, const char *id, const char *path,
		     off_t off, void *buf, size_t len, struct nox_err *err);
ssize_t http_fs_write(struct nox_backend *b, const char *id, const char *path,
		      off_t off, const void *buf, size_t len,
		      struct nox_err *err);
int http_fs_read_stream(struct nox_backend *b, const char *id,
			const char *path, nox_data_cb cb, void *ud,
			struct nox_err *err);
ssize_t http_fs_write_fd(struct nox_backend *b, const char *id,
			 const char *path, off_t off, int in_fd, off_t in_off,
			 off_t len, struct nox_err *err);
int http_fs_createfile(struct nox_backend *b, const char *id, const char *path,
		       mode_t mode, bool excl, struct nox_err *err);
int http_fs_truncate(struct nox_backend *b, const char *id, const char *path,
		     off_t size, struct nox_err *err);
int http_fs_mkdir(struct nox_backend *b, const char *id, const char *path,
		  mode_t mode, struct nox_err *err);
int http_fs_mknod(struct nox_backend *b, const char *id, const char *path,
		  mode_t mode, struct nox_err *err);
int http_fs_unlink(struct nox_backend *b, const char *id, const char *path,
		   struct nox_err *err);
int http_fs_rmdir(struct nox_backend *b, const char *id, const char *path,
		  struct nox_err *err);
int http_fs_rename(struct nox_backend *b, const char *id, const char *from,
		   const char *to, unsigned flags, struct nox_err *err);
int http_fs_chmod(struct nox_backend *b, const char *id, const char *path,
		  mode_t mode, struct nox_err *err);
int http_fs_utimens(struct nox_backend *b, const char *id, const char *path,
		    const struct timespec ts[2], struct nox_err *err);
int http_fs_symlink(struct nox_backend *b, const char *id, const char *target,
		    const char *path, struct nox_err *err);
ssize_t http_fs_readlink(struct nox_backend *b, const char *id,
			 const char *path, char *buf, size_t size,
			 struct nox_err *err);
int http_fs_link(struct nox_backend *b, const char *id, const char *from,
		 const char *to, struct nox_err *err);
int http_fs_files(struct nox_backend *b, const char *id,
		  const char *const *paths, size_t n, int out_fd,
		  struct nox_err *err);
int http_fs_batch(struct nox_backend *b, const char *id,
		  const struct nox_fsop *ops, size_t n, int *results,
		  struct nox_err *err);
int http_fs_statfs(struct nox_backend *b, const char *id, struct statvfs *st,
		   struct nox_err *err);

#endif
