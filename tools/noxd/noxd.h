/*
 * noxd.h - private interfaces of noxd, the NoxRunner v1 HTTP server.
 *
 * noxd serves one local backend (sandbox directories under --base-dir)
 * over HTTP with libmicrohttpd, one thread per connection, so a long exec
 * never blocks other requests.  Files by role:
 *	noxd.c     main: options, start-up, signals, daemonising, shutdown
 *	server.c   MHD set-up, routing, auth, request bodies, replies, access
 *log api_v1.c   the NoxRunner v1 endpoints api_fs.c   the nox.fs and
 *nox.sandboxes extensions metrics.c  per-endpoint counters and GET /metrics
 *	reaper.c   the thread deleting expired sandboxes
 * The wire protocol is docs/protocol.md.
 */
#ifndef NOXD_H
#define NOXD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <nox/nox.h>

struct MHD_Connection;
struct MHD_Daemon;
struct MHD_Response;
struct json_object;

#define NOXD_JSON_MAX	      (1024 * 1024) /* cap on JSON request bodies */
#define NOXD_DEFAULT_MAX_BODY (1024ULL * 1024 * 1024)
#define NOXD_DEFAULT_PORT     8080
#define NOXD_CONN_TIMEOUT     300 /* idle seconds before MHD closes */
#define NOXD_CONN_LIMIT	      512
#define NOXD_TREE_PAGE	      10000 /* entries per fs/tree page at most */

/* Metric labels, in the order protocol.md lists them. */
enum noxd_ep {
	EP_HEALTHZ,
	EP_CREATE,
	EP_TOUCH,
	EP_EXEC,
	EP_UPLOAD,
	EP_DOWNLOAD,
	EP_DELETE,
	EP_EXTENSIONS,
	EP_SANDBOXES,
	EP_INFO,
	EP_FS_STAT,
	EP_FS_LIST,
	EP_FS_TREE,
	EP_FS_READ,
	EP_FS_WRITE,
	EP_FS_OP,
	EP_FS_STATFS,
	EP_FS_FILES,
	EP_FS_OPS,
	EP_METRICS,
	EP_OTHER,
	EP__COUNT
};

/*
 * The most --output-cap allows: a result's JSON is at most about 6 bytes
 * per byte of output (\u00XX for control bytes), twice (stdout and
 * stderr), and must fit the 64 MiB a libnox client accepts (http.c).
 */
#define NOXD_MAX_OUTPUT_CAP ((size_t)5 * 1024 * 1024)

struct noxd_opts {
	const char *listen; /* HOST:PORT, [V6]:PORT or PORT */
	const char *base_dir;
	const char *token; /* NULL: no auth */
	uint64_t max_body; /* upload / fs write bodies */
	bool v1_only;
	bool unisolated;
	bool allow_network;
	size_t output_cap;	/* per stream; NOX_V1_OUTPUT_CAP unless set */
	mode_t exec_umask;	/* the commands' umask */
	unsigned conn_timeout;	/* idle seconds before MHD closes */
	unsigned reap_interval; /* seconds; 0: no reaper */
	size_t tree_page;	/* entries per paged fs/tree answer, at most */
	const char *pid_file;
	const char *port_file;
	bool debug;
	bool daemonize;
};

struct noxd_metrics {
	atomic_uint_fast64_t requests[EP__COUNT];
	atomic_uint_fast64_t errors[EP__COUNT];
	atomic_uint_fast64_t bytes_in[EP__COUNT];
	atomic_uint_fast64_t bytes_out[EP__COUNT];
};

struct noxd_reaper;

/* The whole server; one per process. */
struct noxd {
	struct noxd_opts opts;
	struct nox_backend *backend; /* thread-safe by contract */
	struct MHD_Daemon *mhd;
	struct noxd_metrics metrics;
	struct noxd_reaper *reaper;
	char host[64]; /* numeric bind address, for display */
	unsigned port; /* the port actually bound */
	bool ipv6;
};

/* Which kind of body a route takes (how server.c stores it). */
enum noxd_body {
	BODY_NONE,    /* any body is read and discarded (<= NOXD_JSON_MAX) */
	BODY_JSON,    /* buffered in memory, <= NOXD_JSON_MAX */
	BODY_FILE,    /* streamed to an unlinked temp file, <= max_body */
	BODY_FSWRITE, /* written straight to a workspace file, <= max_body */
};

/*
 * One request; lives from the first access-handler call to the completion
 * callback.  Only the connection's own thread touches it.
 */
struct noxd_req {
	struct noxd *d;
	struct MHD_Connection *conn;
	const struct noxd_route *route;
	enum noxd_ep ep;
	char method[16];
	char *path; /* decoded URL path, for the log */
	char id[NOX_ID_MAX + 1];
	struct timespec start; /* CLOCK_MONOTONIC */
	uint64_t bytes_in;
	uint64_t bytes_out;
	int status; /* 0 until a reply is queued */

	enum noxd_body body_kind;
	char *body; /* BODY_JSON: NUL-terminated */
	size_t body_len, body_cap;
	int fd;	       /* BODY_FILE: temp file, -1 if none */
	char *fs_path; /* BODY_FSWRITE target */
	off_t fs_off;  /* BODY_FSWRITE next offset */
	int body_err;  /* first failure while receiving, -errno */
	char body_msg[NOX_ERR_MSG_MAX];
	uint64_t discarded; /* body bytes dropped after body_err */
	bool in_begin;	    /* routing: replies may be held back */
	bool drain_ok;	    /* hold early replies until the body is read */
	struct MHD_Response *pending; /* held reply, queued at body end */
	const char *hdr_name[4];      /* extra headers for the next reply */
	char hdr_value[4][128];
	int nhdr;
};

typedef int (*noxd_handler)(struct noxd_req *r);

struct noxd_route {
	const char *suffix; /* after /v1/sandboxes/{id}; NULL: fixed path */
	const char *path;   /* fixed path when suffix is NULL */
	const char *method;
	enum noxd_ep ep;
	bool ext;  /* an extension endpoint (404 with --v1-only) */
	bool open; /* served without the token */
	enum noxd_body body;
	noxd_handler begin;   /* optional: runs before the body is read */
	noxd_handler handler; /* runs once the body is complete */
};

/* ---- server.c ---------------------------------------------------------- */

/* Starts MHD on d->opts.listen; fills d->host, d->port.  Logs on failure. */
int server_start(struct noxd *d);
void server_stop(struct noxd *d);

/*
 * Replies.  Each queues exactly one response, records status and bytes for
 * the log and metrics, and returns 0 (or -1 when MHD refused the response,
 * which closes the connection).
 */
int server_reply_buf(struct noxd_req *r, int status, const char *ctype,
		     const void *buf, size_t len);
/* Takes ownership of json (malloc'd); NULL means out of memory (500). */
int server_reply_json(struct noxd_req *r, int status, char *json);
/* {"error": msg, "errno": "ENAME"}; code is a positive or negative errno. */
int server_reply_errno(struct noxd_req *r, int code, const char *msg);
/* As above with status given explicitly and no errno name. */
int server_reply_error(struct noxd_req *r, int status, const char *msg);
/* Takes ownership of fd (closed by MHD); body is the whole file. */
int server_reply_fd(struct noxd_req *r, int status, const char *ctype, int fd,
		    uint64_t size);
/*
 * Streams size bytes produced by read_cb (MHD content-reader semantics:
 * return bytes written to buf, or -1 end / -2 error); free_cb(cls) runs
 * when the response is gone, also when this call fails.  A size of
 * MHD_SIZE_UNKNOWN sends the body chunked; read_cb then counts the bytes
 * it gives with metrics_count_out().
 */
int server_reply_stream(struct noxd_req *r, int status, const char *ctype,
			uint64_t size,
			ssize_t (*read_cb)(void *cls, uint64_t pos, char *buf,
					   size_t max),
			void *cls, void (*free_cb)(void *cls));
/* malloc'd compact JSON text of o, which is released; NULL on failure. */
char *server_json_take(struct json_object *o);
/* Adds a header to a reply queued next: set before calling a reply. */
void server_reply_header(struct noxd_req *r, const char *name,
			 const char *value);

/* Query argument or NULL; decoded by MHD. */
const char *server_query(struct noxd_req *r, const char *key);
/* Request header or NULL. */
const char *server_header(struct noxd_req *r, const char *name);

/* Opens an unlinked temp file in the base directory; fd or -errno. */
int server_tmpfile(struct noxd *d);

/* errno -> HTTP status, and errno -> symbolic name (fsw.c's; "EIO" if
 * it has none). */
int server_errno_status(int code);
const char *server_errno_name(int code);

/* ---- api_v1.c / api_fs.c handlers --------------------------------------- */

int api_healthz(struct noxd_req *r);
int api_create(struct noxd_req *r);
int api_touch(struct noxd_req *r);
int api_exec(struct noxd_req *r);
int api_upload_begin(struct noxd_req *r); /* before the body */
int api_upload(struct noxd_req *r);
int api_download(struct noxd_req *r);
int api_delete(struct noxd_req *r);

int api_extensions(struct noxd_req *r);
int api_sandboxes(struct noxd_req *r);
int api_info(struct noxd_req *r);
int api_fs_stat(struct noxd_req *r);
int api_fs_list(struct noxd_req *r);
int api_fs_tree(struct noxd_req *r);
int api_fs_read(struct noxd_req *r);
int api_fs_write_begin(struct noxd_req *r); /* before the body */
int api_fs_write(struct noxd_req *r);
int api_fs_op(struct noxd_req *r);
int api_fs_statfs(struct noxd_req *r);
int api_fs_files(struct noxd_req *r);
int api_fs_ops(struct noxd_req *r);
/* GET fs/tree with "limit" or "after": one page (api_tree.c). */
int api_fs_tree_page(struct noxd_req *r, const char *path);

/* ---- metrics.c ---------------------------------------------------------- */

const char *metrics_label(enum noxd_ep ep);
void metrics_count_request(struct noxd *d, enum noxd_ep ep);
void metrics_count_reply(struct noxd *d, enum noxd_ep ep, int status,
			 uint64_t bytes_out);
void metrics_count_in(struct noxd *d, enum noxd_ep ep, uint64_t n);
/* Body bytes of a reply whose size was unknown when it was queued. */
void metrics_count_out(struct noxd *d, enum noxd_ep ep, uint64_t n);
int api_metrics(struct noxd_req *r);

/* ---- reaper.c ----------------------------------------------------------- */

/* Starts the reaper thread (interval seconds); 0 or -errno. */
int reaper_start(struct noxd *d, unsigned interval);
/* Stops and joins it; NULL-safe. */
void reaper_stop(struct noxd *d);

#endif
