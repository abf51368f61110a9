/*
 * http.c - the http backend: a NoxRunner v1 client (libcurl), plus the
 * noxd extensions nox.fs 1 and nox.sandboxes 1 when the server offers them.
 *
 * Transport: one CURLSH share (DNS cache, TLS sessions) guarded by pthread
 * mutexes, and a small pool of easy handles, one per concurrent request.
 * Keep-alive connections live in each pooled handle (curl_easy_reset keeps
 * them), not in the share: libcurl documents a shared connection cache as
 * unsafe between concurrent threads (KNOWN_BUGS, curl issue #4915), and
 * valgrind shows the use-after-free with 8 threads here.
 *
 * Every request is bounded: connect timeout, and a deadline for the whole
 * call (opts->timeout_ms, or the command's timeout plus EXEC_MARGIN_MS for
 * exec) that also bounds the retries.  Idempotent calls are retried with
 * exponential backoff on transport failures and 502/503/504 (and 500
 * without an "errno" in its body); exec, fs/file writes and fs/op are
 * never retried.
 *
 * Responses are untrusted.  In-memory bodies are capped (JSON_MAX; error
 * bodies ERRBODY_MAX, truncated), every JSON field is type-checked, names
 * from listings must be single path components, and anything malformed is
 * -EPROTO with a message.  Downloads stream into a descriptor and uploads
 * stream from one, so memory does not grow with the data.
 *
 * Extension discovery is lazy: GET /v1/extensions once per handle, on the
 * first call that needs it (nox_backend_has() included).  A definite answer
 * (JSON, 404, garbage) is cached; a transport failure or 5xx is not, and
 * the probe is retried at most once per EXT_RETRY_MS, has() saying false
 * meanwhile.
 *
 * Limits: no redirects are followed; the workspace_fd operation does not
 * exist here; nox_backend_info on a v1-only server is a POST touch (the
 * only v1 call that tells whether a sandbox exists without creating it),
 * so it extends the sandbox's life and cannot report podName.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include <nox/backend.h>
#include <nox/id.h>
#include <nox/v1.h>

#include "backend_i.h"

#define POOL_MAX	 16
#define JSON_MAX	 ((size_t)64 << 20) /* any in-memory success body */
#define ERRBODY_MAX	 ((size_t)64 << 10) /* kept of an error body */
#define JSON_DEPTH	 32
#define DEF_CONNECT_MS	 5000L
#define DEF_TIMEOUT_MS	 60000L
#define DEF_RETRIES	 3
#define EXEC_MARGIN_MS	 30000L
#define BACKOFF_FIRST_MS 100L
#define BACKOFF_CAP_MS	 2000L
#define EXT_RETRY_MS	 1000L
#define JSON_OUT	 (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

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
	CURL *pool[POOL_MAX]; /* protected by pool_mx */
	int npool;	      /* protected by pool_mx */
	pthread_mutex_t ext_mx;
	bool ext_known;	   /* protected by ext_mx */
	long ext_fs;	   /* protected by ext_mx; 0: absent */
	long ext_sbx;	   /* protected by ext_mx */
	long ext_retry_at; /* protected by ext_mx; monotonic ms */
};

enum sink { SINK_MEM, SINK_FD, SINK_BUF };

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
	bool in_seekable;
	enum sink sink;
	int out_fd; /* SINK_FD */
	off_t out_start;
	bool out_regular;
	char *buf; /* SINK_BUF: caller's buffer */
	size_t buf_cap;
	off_t buf_off;	   /* file offset asked for */
	const char *range; /* Range header value, or NULL */
	bool idempotent;
	bool gone_ok; /* a retried DELETE's 404 is success */
	long timeout_ms;
	/* state of the current attempt */
	CURL *e;
	long status;
	bool started; /* first body byte seen */
	char *mem;    /* SINK_MEM, and every error body */
	size_t mem_len, mem_cap;
	size_t buf_got;
	off_t skip;	    /* SINK_BUF on a 200: bytes to drop */
	bool enough;	    /* SINK_BUF: stopped on purpose */
	long long cr_start; /* Content-Range start, -1 none */
	uint64_t in_read, out_written;
	int cb_errno; /* failure found in a callback */
	char cb_msg[128];
};

/* ---- small helpers ---------------------------------------------------- */

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static struct http_backend *to_http(struct nox_backend *b)
{
	return (struct http_backend *)(void *)b;
}

/* A growable string; on allocation failure it stays NULL-marked. */
struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sbuf *sb, const char *s, size_t n)
{
	size_t want;
	char *p;

	if (sb->oom)
		return;
	want = sb->len + n + 1;
	if (want > sb->cap) {
		size_t cap = sb->cap ? sb->cap * 2 : 128;

		while (cap < want)
			cap *= 2;
		p = realloc(sb->s, cap);
		if (!p) {
			sb->oom = true;
			return;
		}
		sb->s = p;
		sb->cap = cap;
	}
	memcpy(sb->s + sb->len, s, n);
	sb->len += n;
	sb->s[sb->len] = '\0';
}

static void sb_str(struct sbuf *sb, const char *s)
{
	sb_add(sb, s, strlen(s));
}

/* Appends s percent-encoded (everything but [A-Za-z0-9._~-]). */
static void sb_esc(struct sbuf *sb, const char *s)
{
	size_t n = strlen(s);
	char *e;

	if (n == 0)
		return;
	if (n > INT_MAX) {
		sb->oom = true;
		return;
	}
	e = curl_easy_escape(NULL, s, (int)n);
	if (!e) {
		sb->oom = true;
		return;
	}
	sb_str(sb, e);
	curl_free(e);
}

/* The string, owned by the caller, or NULL on allocation failure. */
static char *sb_take(struct sbuf *sb)
{
	if (sb->oom) {
		free(sb->s);
		return NULL;
	}
	return sb->s ? sb->s : strdup("");
}

/*
 * "/v1/sandboxes/ID" + suffix + "?k1=v1&k2=v2" with ID and the values
 * escaped; id NULL: suffix alone.  Keys are literals.  malloc'd or NULL.
 */
static char *path_make(const char *id, const char *suffix, const char *k1,
		       const char *v1, const char *k2, const char *v2)
{
	struct sbuf sb = {0};

	if (id) {
		sb_str(&sb, "/v1/sandboxes/");
		sb_esc(&sb, id);
	}
	sb_str(&sb, suffix);
	if (k1) {
		sb_str(&sb, "?");
		sb_str(&sb, k1);
		sb_str(&sb, "=");
		sb_esc(&sb, v1);
	}
	if (k2) {
		sb_str(&sb, k1 ? "&" : "?");
		sb_str(&sb, k2);
		sb_str(&sb, "=");
		sb_esc(&sb, v2);
	}
	return sb_take(&sb);
}

/* ---- errno names ------------------------------------------------------- */

#define E(x)                                                                   \
	{                                                                      \
#x, x                                                          \
	}
static const struct {
	const char *name;
	int code;
} errno_names[] = {
    E(EPERM),	   E(ENOENT),	    E(ESRCH),	    E(EINTR),
    E(EIO),	   E(ENXIO),	    E(E2BIG),	    E(ENOEXEC),
    E(EBADF),	   E(ECHILD),	    E(EAGAIN),	    E(EWOULDBLOCK),
    E(ENOMEM),	   E(EACCES),	    E(EFAULT),	    E(EBUSY),
    E(EEXIST),	   E(EXDEV),	    E(ENODEV),	    E(ENOTDIR),
    E(EISDIR),	   E(EINVAL),	    E(ENFILE),	    E(EMFILE),
    E(ENOTTY),	   E(ETXTBSY),	    E(EFBIG),	    E(ENOSPC),
    E(ESPIPE),	   E(EROFS),	    E(EMLINK),	    E(EPIPE),
    E(EDOM),	   E(ERANGE),	    E(EDEADLK),	    E(ENAMETOOLONG),
    E(ENOLCK),	   E(ENOSYS),	    E(ENOTEMPTY),   E(ELOOP),
    E(ENODATA),	   E(ETIME),	    E(EOVERFLOW),   E(EILSEQ),
    E(ENOTSUP),	   E(EOPNOTSUPP),   E(ETIMEDOUT),   E(ECONNREFUSED),
    E(ECONNRESET), E(EHOSTUNREACH), E(ENETUNREACH), E(EDQUOT),
    E(ESTALE),	   E(ECANCELED),    E(EPROTO),	    E(EBADMSG),
    E(ENOTCONN),   E(ENOTSOCK),	    E(EMSGSIZE),    E(ENOBUFS),
    E(EALREADY),   E(EINPROGRESS),
};
#undef E

/* errno value of a symbolic name ("ENOTEMPTY"), 0 when unknown. */
static int errno_from_name(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (strcmp(errno_names[i].name, name) == 0)
			return errno_names[i].code;
	return 0;
}

/* ---- JSON helpers ------------------------------------------------------ */

/* Parses len bytes as one JSON object; *out a new reference or NULL. */
static int json_obj_parse(const char *s, size_t len, json_object **out,
			  char *why, size_t whysz)
{
	struct json_tokener *tok;
	enum json_tokener_error je;
	json_object *o;
	size_t end;

	*out = NULL;
	if (!s || len == 0) {
		snprintf(why, whysz, "empty body");
		return -1;
	}
	if (len > JSON_MAX || len > INT_MAX) {
		snprintf(why, whysz, "body too large");
		return -1;
	}
	tok = json_tokener_new_ex(JSON_DEPTH);
	if (!tok) {
		snprintf(why, whysz, "out of memory");
		return -1;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, s, (int)len);
	je = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (je != json_tokener_success || !o) {
		json_object_put(o);
		snprintf(why, whysz, "%s JSON at byte %zu",
			 je == json_tokener_continue ? "truncated"
						     : "malformed",
			 end);
		return -1;
	}
	for (; end < len; end++) {
		if (!strchr(" \t\r\n", s[end]) || s[end] == '\0') {
			json_object_put(o);
			snprintf(why, whysz, "trailing data at byte %zu", end);
			return -1;
		}
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		snprintf(why, whysz, "not a JSON object");
		return -1;
	}
	*out = o;
	return 0;
}

static json_object *jfield(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

/* An integer field in [lo, hi]; 1 when absent and not required. */
static int jint(json_object *o, const char *key, bool required, int64_t lo,
		int64_t hi, int64_t *val, char *why, size_t whysz)
{
	json_object *v = jfield(o, key);
	int64_t n;

	if (!v) {
		if (!required)
			return 1;
		snprintf(why, whysz, "'%s' is missing", key);
		return -1;
	}
	if (!json_object_is_type(v, json_type_int)) {
		snprintf(why, whysz, "'%s' is not an integer", key);
		return -1;
	}
	n = json_object_get_int64(v);
	if (n == INT64_MIN || n == INT64_MAX || n < lo || n > hi) {
		snprintf(why, whysz, "'%s' is out of range", key);
		return -1;
	}
	*val = n;
	return 0;
}

/* A string field without NUL bytes; points into o.  1 when absent. */
static int jstr(json_object *o, const char *key, bool required,
		const char **val, char *why, size_t whysz)
{
	json_object *v = jfield(o, key);
	const char *s;

	if (!v) {
		if (!required)
			return 1;
		snprintf(why, whysz, "'%s' is missing", key);
		return -1;
	}
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(why, whysz, "'%s' is not a string", key);
		return -1;
	}
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v)) {
		snprintf(why, whysz, "'%s' holds a NUL byte", key);
		return -1;
	}
	*val = s;
	return 0;
}

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Decodes standard base64 (padding optional) into a malloc'd,
 * NUL-terminated buffer; *len the decoded length.  NULL when s is not
 * base64 or memory runs out.
 */
static char *b64_decode(const char *s, size_t *len)
{
	size_t n = strlen(s), i, o = 0;
	uint32_t acc = 0;
	int bits = 0, v;
	char *out;

	while (n > 0 && s[n - 1] == '=')
		n--;
	if (strlen(s) - n > 2 || n % 4 == 1)
		return NULL;
	out = malloc(n / 4 * 3 + 3);
	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		v = b64_val((unsigned char)s[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	/* the left-over bits must be zero in canonical base64 */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
		free(out);
		return NULL;
	}
	out[o] = '\0';
	*len = o;
	return out;
}

/*
 * A name-like field: key as a string, or key64 as base64 of raw bytes.
 * *val is malloc'd (caller frees); NUL bytes are refused.  1 when both are
 * absent and not required.
 */
static int jname(json_object *o, const char *key, bool required, char **val,
		 char *why, size_t whysz)
{
	char k64[32];
	const char *s = NULL;
	size_t n;
	int r;

	*val = NULL;
	r = jstr(o, key, false, &s, why, whysz);
	if (r < 0)
		return r;
	if (r == 0) {
		*val = strdup(s);
		if (!*val) {
			snprintf(why, whysz, "out of memory");
			return -1;
		}
		return 0;
	}
	snprintf(k64, sizeof(k64), "%s64", key);
	r = jstr(o, k64, false, &s, why, whysz);
	if (r < 0)
		return r;
	if (r == 1) {
		if (!required)
			return 1;
		snprintf(why, whysz, "'%s' is missing", key);
		return -1;
	}
	*val = b64_decode(s, &n);
	if (!*val) {
		snprintf(why, whysz, "'%s' is not base64", k64);
		return -1;
	}
	if (strlen(*val) != n) {
		free(*val);
		*val = NULL;
		snprintf(why, whysz, "'%s' holds a NUL byte", k64);
		return -1;
	}
	return 0;
}

static void ns_to_ts(int64_t ns, struct timespec *ts)
{
	int64_t s = ns / 1000000000LL, r = ns % 1000000000LL;

	if (r < 0) {
		r += 1000000000LL;
		s--;
	}
	ts->tv_sec = (time_t)s;
	ts->tv_nsec = (long)r;
}

/*
 * A nox.fs stat object to struct stat.  "other" (FIFO, socket, device on
 * the server) becomes a regular file: the client cannot know which kind,
 * and a regular file is what is safe to show (opening a FIFO or device
 * node inode would act on this machine).
 */
static int stat_from_json(json_object *o, struct stat *st, char *why,
			  size_t whysz)
{
	static const struct {
		const char *key;
		bool required;
		int64_t hi;
	} f[] = {
	    {"mode", true, 07777},	 {"size", true, INT64_MAX - 1},
	    {"nlink", true, UINT32_MAX}, {"uid", true, UINT32_MAX},
	    {"gid", true, UINT32_MAX},	 {"ino", true, INT64_MAX - 1},
	};
	static const char *const tkeys[] = {"atimeNs", "mtimeNs", "ctimeNs"};
	int64_t v[6], t[3];
	const char *type;
	mode_t fmt;
	size_t i;

	memset(st, 0, sizeof(*st));
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(why, whysz, "stat entry is not an object");
		return -1;
	}
	if (jstr(o, "type", true, &type, why, whysz) < 0)
		return -1;
	if (strcmp(type, "file") == 0 || strcmp(type, "other") == 0)
		fmt = S_IFREG;
	else if (strcmp(type, "dir") == 0)
		fmt = S_IFDIR;
	else if (strcmp(type, "symlink") == 0)
		fmt = S_IFLNK;
	else {
		snprintf(why, whysz, "unknown 'type'");
		return -1;
	}
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (jint(o, f[i].key, f[i].required, 0, f[i].hi, &v[i], why,
			 whysz) < 0)
			return -1;
	for (i = 0; i < 3; i++)
		if (jint(o, tkeys[i], true, INT64_MIN + 1, INT64_MAX - 1, &t[i],
			 why, whysz) < 0)
			return -1;
	st->st_mode = fmt | (mode_t)v[0];
	st->st_size = (off_t)v[1];
	st->st_nlink = (nlink_t)v[2];
	st->st_uid = (uid_t)v[3];
	st->st_gid = (gid_t)v[4];
	st->st_ino = (ino_t)v[5];
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((v[1] + 511) / 512);
	ns_to_ts(t[0], &st->st_atim);
	ns_to_ts(t[1], &st->st_mtim);
	ns_to_ts(t[2], &st->st_ctim);
	return 0;
}

/* ---- curl plumbing ----------------------------------------------------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *e, curl_lock_data data, curl_lock_access acc,
		       void *ud)
{
	struct http_backend *h = ud;

	(void)e;
	(void)acc;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&h->share_mx[data]);
}

static void share_unlock(CURL *e, curl_lock_data data, void *ud)
{
	struct http_backend *h = ud;

	(void)e;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&h->share_mx[data]);
}

static CURL *pool_get(struct http_backend *h)
{
	CURL *e = NULL;

	pthread_mutex_lock(&h->pool_mx);
	if (h->npool > 0)
		e = h->pool[--h->npool];
	pthread_mutex_unlock(&h->pool_mx);
	if (e)
		curl_easy_reset(e);
	else
		e = curl_easy_init();
	return e;
}

static void pool_put(struct http_backend *h, CURL *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&h->pool_mx);
	if (h->npool < POOL_MAX) {
		h->pool[h->npool++] = e;
		e = NULL;
	}
	pthread_mutex_unlock(&h->pool_mx);
	if (e)
		curl_easy_cleanup(e);
}

static void call_fail_cb(struct http_call *c, int code, const char *msg)
{
	c->cb_errno = code;
	snprintf(c->cb_msg, sizeof(c->cb_msg), "%s", msg);
}

static bool is_2xx(long status)
{
	return status >= 200 && status < 300;
}

/* First body byte of a response: learn its status, check what we can. */
static bool call_start(struct http_call *c)
{
	curl_off_t cl = -1;

	c->started = true;
	curl_easy_getinfo(c->e, CURLINFO_RESPONSE_CODE, &c->status);
	if (!is_2xx(c->status))
		return true;
	if (c->sink == SINK_MEM) {
		curl_easy_getinfo(c->e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
				  &cl);
		if (cl > 0 && (uint64_t)cl > JSON_MAX) {
			call_fail_cb(c, EFBIG, "response too large");
			return false;
		}
	} else if (c->sink == SINK_BUF) {
		if (c->status == 206) {
			if (c->cr_start != (long long)c->buf_off) {
				call_fail_cb(c, EPROTO,
					     "206 response for another range");
				return false;
			}
			c->skip = 0;
		} else {
			c->skip = c->buf_off; /* whole file: drop the start */
		}
	}
	return true;
}

static bool mem_add(struct http_call *c, const char *p, size_t n, size_t max)
{
	size_t cap;
	char *m;

	if (c->mem_len + n > max) {
		if (!is_2xx(c->status)) {
			n = max - c->mem_len; /* error text: keep the start */
		} else {
			call_fail_cb(c, EFBIG, "response too large");
			return false;
		}
	}
	if (c->mem_len + n + 1 > c->mem_cap) {
		cap = c->mem_cap ? c->mem_cap : 4096;
		while (cap < c->mem_len + n + 1)
			cap *= 2;
		if (cap > max + 1)
			cap = max + 1;
		m = realloc(c->mem, cap);
		if (!m) {
			call_fail_cb(c, ENOMEM, "out of memory");
			return false;
		}
		c->mem = m;
		c->mem_cap = cap;
	}
	memcpy(c->mem + c->mem_len, p, n);
	c->mem_len += n;
	c->mem[c->mem_len] = '\0';
	return true;
}

static bool fd_add(struct http_call *c, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(c->out_fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : EIO;
			char msg[96];

			snprintf(msg, sizeof(msg), "writing the download: %s",
				 strerror(e));
			call_fail_cb(c, e, msg);
			return false;
		}
		p += w;
		n -= (size_t)w;
		c->out_written += (uint64_t)w;
	}
	return true;
}

static bool buf_add(struct http_call *c, const char *p, size_t n)
{
	size_t k;

	if (c->skip > 0) {
		k = (uint64_t)c->skip < n ? (size_t)c->skip : n;
		c->skip -= (off_t)k;
		p += k;
		n -= k;
	}
	k = c->buf_cap - c->buf_got;
	if (k > n)
		k = n;
	memcpy(c->buf + c->buf_got, p, k);
	c->buf_got += k;
	if (k < n) {
		if (c->status == 206) {
			call_fail_cb(
			    c, EPROTO,
			    "server sent more than the requested range");
			return false;
		}
		c->enough = true; /* a whole-file 200: we have our part */
		return false;
	}
	return true;
}

static size_t call_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct http_call *c = ud;
	size_t n = size * nmemb;
	bool ok;

	if (!c->started && !call_start(c))
		return 0;
	if (!is_2xx(c->status))
		ok = mem_add(c, p, n, ERRBODY_MAX);
	else if (c->sink == SINK_FD)
		ok = fd_add(c, p, n);
	else if (c->sink == SINK_BUF)
		ok = buf_add(c, p, n);
	else
		ok = mem_add(c, p, n, JSON_MAX);
	return ok ? n : 0;
}

/* Only Content-Range matters (read); a new status line resets it. */
static size_t call_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct http_call *c = ud;
	size_t n = size * nmemb;
	char line[128], *end;
	long long v;

	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		c->cr_start = -1;
		return n;
	}
	if (n < 20 || n >= sizeof(line) ||
	    strncasecmp(p, "content-range:", 14) != 0)
		return n;
	memcpy(line, p, n);
	line[n] = '\0';
	p = line + 14;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "bytes ", 6) != 0)
		return n;
	p += 6;
	errno = 0;
	v = strtoll(p, &end, 10);
	if (errno == 0 && end != p && *end == '-' && v >= 0)
		c->cr_start = v;
	return n;
}

static size_t call_read(char *p, size_t size, size_t nmemb, void *ud)
{
	struct http_call *c = ud;
	ssize_t r;

	for (;;) {
		r = read(c->in_fd, p, size * nmemb);
		if (r >= 0)
			break;
		if (errno != EINTR) {
			char msg[96];

			snprintf(msg, sizeof(msg), "reading the upload: %s",
				 strerror(errno));
			call_fail_cb(c, errno, msg);
			return CURL_READFUNC_ABORT;
		}
	}
	c->in_read += (uint64_t)r;
	return (size_t)r;
}

/* curl rewinds a body to resend it on a fresh connection. */
static int call_seek(void *ud, curl_off_t off, int origin)
{
	struct http_call *c = ud;

	if (origin != SEEK_SET || !c->in_seekable)
		return CURL_SEEKFUNC_CANTSEEK;
	if (lseek(c->in_fd, c->in_start + (off_t)off, SEEK_SET) < 0)
		return CURL_SEEKFUNC_FAIL;
	return CURL_SEEKFUNC_OK;
}

/* ---- the one errno mapping --------------------------------------------- */

static int status_errno(long status)
{
	switch (status) {
	case 400:
		return EINVAL;
	case 401:
	case 403:
		return EACCES;
	case 404:
		return ENOENT;
	case 408:
		return ETIMEDOUT;
	case 409:
		return EEXIST;
	case 413:
		return EFBIG;
	case 429:
	case 503:
		return EAGAIN;
	default:
		return EIO;
	}
}

static int curl_errno(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
		return ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return ETIMEDOUT;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return EINVAL;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY:
		return ENOMEM;
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_BAD_CONTENT_ENCODING:
		return EPROTO;
	default:
		return EIO;
	}
}

static bool curl_transient(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_COULDNT_RESOLVE_HOST:
		return true;
	default:
		return false;
	}
}

/*
 * Turns the outcome of one attempt into 0 (a 2xx) or a negative errno
 * with a message naming method, path and status: transport failures by
 * curl code, HTTP errors by status, overridden by the body's "errno".
 * *retry says whether another attempt may help.
 */
static int call_outcome(const struct http_call *c, CURLcode cc,
			const char *curlmsg, bool *retry, struct nox_err *err)
{
	char text[512];
	json_object *o = NULL;
	const char *name = NULL;
	bool has_errno = false;
	int code;

	*retry = false;
	if (c->cb_errno)
		return nox_err_set(err, c->cb_errno, "%s %s: %s", c->method,
				   c->path, c->cb_msg);
	if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && c->enough) &&
	    c->status < 400) {
		*retry = curl_transient(cc);
		return nox_err_set(
		    err, curl_errno(cc), "%s %s: %s", c->method, c->path,
		    curlmsg[0] ? curlmsg : curl_easy_strerror(cc));
	}
	if (is_2xx(c->status))
		return 0;
	if (c->status < 200) {
		*retry = true;
		return nox_err_set(err, EIO, "%s %s: no HTTP response",
				   c->method, c->path);
	}
	code = status_errno(c->status);
	if (c->mem_len &&
	    json_obj_parse(c->mem, c->mem_len, &o, text, sizeof(text)) == 0) {
		if (jstr(o, "errno", false, &name, text, sizeof(text)) == 0) {
			has_errno = true;
			if (errno_from_name(name))
				code = errno_from_name(name);
		}
		json_object_put(o);
	}
	*retry = c->status == 502 || c->status == 503 || c->status == 504 ||
		 (c->status == 500 && !has_errno);
	nox_v1_error_text(c->mem, c->mem_len, text, sizeof(text));
	if (text[0])
		return nox_err_set(err, code, "%s %s: HTTP %ld: %s", c->method,
				   c->path, c->status, text);
	return nox_err_set(err, code, "%s %s: HTTP %ld", c->method, c->path,
			   c->status);
}

/* ---- performing a call ------------------------------------------------- */

static void call_init(struct http_call *c, const char *method, char *path)
{
	memset(c, 0, sizeof(*c));
	c->method = method;
	c->path = path;
	c->in_fd = -1;
	c->out_fd = -1;
	c->in_size = -1;
	c->sink = SINK_MEM;
	c->cr_start = -1;
}

static void call_cleanup(struct http_call *c)
{
	free(c->path);
	free(c->mem);
	c->path = NULL;
	c->mem = NULL;
}

/* Puts the streamed body and the sinks back where the call started. */
static int call_rewind(struct http_call *c)
{
	if (c->in_fd >= 0 && c->in_seekable &&
	    lseek(c->in_fd, c->in_start, SEEK_SET) < 0)
		return -errno;
	if (c->out_fd >= 0 && c->out_written > 0) {
		if (!c->out_regular)
			return -ESPIPE;
		if (ftruncate(c->out_fd, c->out_start) < 0 ||
		    lseek(c->out_fd, c->out_start, SEEK_SET) < 0)
			return -errno;
	}
	return 0;
}

/* May the call be attempted again after a failure of this attempt? */
static bool call_replayable(const struct http_call *c)
{
	if (!c->idempotent)
		return false;
	if (c->in_fd >= 0 && !c->in_seekable && c->in_read > 0)
		return false;
	if (c->out_fd >= 0 && !c->out_regular && c->out_written > 0)
		return false;
	return true;
}

static CURLcode call_perform(struct http_backend *h, struct http_call *c,
			     long timeout_ms, char *ebuf)
{
	struct curl_slist *hdrs = NULL, *t;
	char line[160];
	bool oom = false;
	CURLcode cc;
	CURL *e = c->e;
	char *url;
	size_t n;

	n = strlen(h->base_url) + strlen(c->path) + 1;
	url = malloc(n);
	if (!url)
		return CURLE_OUT_OF_MEMORY;
	snprintf(url, n, "%s%s", h->base_url, c->path);

#define HDR(s)                                                                 \
	do {                                                                   \
		t = curl_slist_append(hdrs, s);                                \
		if (t)                                                         \
			hdrs = t;                                              \
		else                                                           \
			oom = true;                                            \
	} while (0)
	if (h->auth)
		HDR(h->auth);
	if (c->ctype) {
		snprintf(line, sizeof(line), "Content-Type: %s", c->ctype);
		HDR(line);
	}
	if (c->range) {
		snprintf(line, sizeof(line), "Range: %s", c->range);
		HDR(line);
	}
	/* small in-memory bodies: no 100-continue round trip */
	if (c->body)
		HDR("Expect:");
	HDR("Accept: application/json, */*");
#undef HDR
	if (oom) {
		curl_slist_free_all(hdrs);
		free(url);
		return CURLE_OUT_OF_MEMORY;
	}

	ebuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_SHARE, h->share);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "libnox/" NOX_VERSION);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, call_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, call_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
	if (c->in_fd >= 0) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, call_read);
		curl_easy_setopt(e, CURLOPT_READDATA, c);
		curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, call_seek);
		curl_easy_setopt(e, CURLOPT_SEEKDATA, c);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)c->in_size);
	} else if (c->body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)c->body_len);
	} else if (strcmp(c->method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	if (strcmp(c->method, "GET") != 0 && strcmp(c->method, "POST") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);

	cc = curl_easy_perform(e);
	if (!c->started)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &c->status);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(hdrs);
	free(url);
	return cc;
}

/*
 * Runs c to completion: 0 on a 2xx (the body in c->mem or the sink), or
 * a negative errno with the message in err.  Retries idempotent calls
 * within the call's deadline.
 */
static int call_run(struct http_backend *h, struct http_call *c,
		    struct nox_err *err)
{
	long deadline, left, backoff = BACKOFF_FIRST_MS;
	char ebuf[CURL_ERROR_SIZE];
	struct stat st;
	bool retry;
	CURLcode cc;
	int attempt, r = -EIO;

	if (!c->path)
		return nox_err_set(err, ENOMEM, "out of memory");
	if (c->timeout_ms <= 0)
		c->timeout_ms = h->timeout_ms;
	if (c->in_fd >= 0) {
		c->in_start = lseek(c->in_fd, 0, SEEK_CUR);
		c->in_seekable = c->in_start >= 0;
		if (!c->in_seekable)
			c->in_start = 0;
		if (fstat(c->in_fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    c->in_seekable)
			c->in_size = st.st_size > c->in_start
					 ? st.st_size - c->in_start
					 : 0;
	}
	if (c->out_fd >= 0) {
		c->out_start = lseek(c->out_fd, 0, SEEK_CUR);
		c->out_regular = c->out_start >= 0 &&
				 fstat(c->out_fd, &st) == 0 &&
				 S_ISREG(st.st_mode);
	}
	c->e = pool_get(h);
	if (!c->e)
		return nox_err_set(err, ENOMEM, "%s %s: no curl handle",
				   c->method, c->path);
	deadline = now_ms() + c->timeout_ms;
	for (attempt = 0;; attempt++) {
		left = deadline - now_ms();
		if (left <= 0)
			break; /* r and err hold the last failure */
		if (attempt > 0) {
			r = call_rewind(c);
			if (r < 0) {
				r = nox_err_set(
				    err, -r, "%s %s: cannot retry: %s",
				    c->method, c->path, strerror(-r));
				break;
			}
			curl_easy_reset(c->e);
		}
		c->status = 0;
		c->started = false;
		c->mem_len = 0;
		c->buf_got = 0;
		c->skip = 0;
		c->enough = false;
		c->cr_start = -1;
		c->cb_errno = 0;
		c->in_read = 0;
		c->out_written = 0;
		cc = call_perform(h, c, left, ebuf);
		r = call_outcome(c, cc, ebuf, &retry, err);
		if (r == -ENOENT && attempt > 0 && c->gone_ok)
			r = 0; /* an earlier attempt did it */
		if (r == 0 || !retry || attempt >= h->retries ||
		    !call_replayable(c))
			break;
		left = deadline - now_ms();
		if (left <= 0)
			break;
		sleep_ms(backoff < left ? backoff : left);
		backoff =
		    backoff * 2 > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : backoff * 2;
	}
	if (r == 0)
		nox_err_clear(err);
	pool_put(h, c->e);
	c->e = NULL;
	return r;
}

/* c->mem as a JSON object, or -EPROTO naming the call. */
static int call_json(const struct http_call *c, json_object **o,
		     struct nox_err *err)
{
	char why[128];

	if (json_obj_parse(c->mem, c->mem_len, o, why, sizeof(why)) < 0)
		return nox_err_set(err, EPROTO, "%s %s: malformed response: %s",
				   c->method, c->path, why);
	return 0;
}

static int call_bad(const struct http_call *c, const char *why,
		    struct nox_err *err)
{
	return nox_err_set(err, EPROTO, "%s %s: malformed response: %s",
			   c->method, c->path, why);
}

/* ---- extension discovery ----------------------------------------------- */

/*
 * Makes the extension state known.  0 when known; otherwise a negative
 * errno (the probe failed for a reason that may pass).
 */
static int ext_probe(struct http_backend *h, struct nox_err *err)
{
	struct http_call c;
	json_object *o = NULL, *x;
	int64_t v;
	char why[64];
	int r;

	pthread_mutex_lock(&h->ext_mx);
	if (h->ext_known) {
		pthread_mutex_unlock(&h->ext_mx);
		return 0;
	}
	if (now_ms() < h->ext_retry_at) {
		pthread_mutex_unlock(&h->ext_mx);
		return nox_err_set(err, EAGAIN,
				   "extension discovery failed recently");
	}
	call_init(&c, "GET",
		  path_make(NULL, "/v1/extensions", NULL, NULL, NULL, NULL));
	c.idempotent = false; /* one try: has() must not stall */
	r = call_run(h, &c, err);
	if (r == 0) {
		h->ext_known = true;
		if (json_obj_parse(c.mem, c.mem_len, &o, why, sizeof(why)) ==
			0 &&
		    (x = jfield(o, "extensions")) &&
		    json_object_is_type(x, json_type_object)) {
			if (jint(x, "nox.fs", true, 0, INT32_MAX, &v, why,
				 sizeof(why)) == 0)
				h->ext_fs = (long)v;
			if (jint(x, "nox.sandboxes", true, 0, INT32_MAX, &v,
				 why, sizeof(why)) == 0)
				h->ext_sbx = (long)v;
		}
		json_object_put(o);
	} else if (c.status == 404 || c.status == 400 || c.status == 405 ||
		   c.status == 501) {
		h->ext_known = true; /* a v1-only server */
		r = 0;
	} else {
		h->ext_retry_at = now_ms() + EXT_RETRY_MS;
	}
	pthread_mutex_unlock(&h->ext_mx);
	call_cleanup(&c);
	if (r == 0)
		nox_err_clear(err);
	return r;
}

/* Version of an extension in use: 1 when usable, 0 not offered. */
static bool ext_usable(struct http_backend *h, bool sbx)
{
	bool ok;

	pthread_mutex_lock(&h->ext_mx);
	ok = h->ext_known && (sbx ? h->ext_sbx : h->ext_fs) == 1;
	pthread_mutex_unlock(&h->ext_mx);
	return ok;
}

/* 0 when nox.fs (or nox.sandboxes) 1 can be used, else a negative errno. */
static int ext_need(struct http_backend *h, bool sbx, struct nox_err *err)
{
	int r = ext_probe(h, err);

	if (r < 0)
		return r;
	if (!ext_usable(h, sbx))
		return nox_err_set(err, ENOSYS,
				   "the server does not offer %s 1",
				   sbx ? "nox.sandboxes" : "nox.fs");
	return 0;
}

static bool http_has(const struct nox_backend *b, enum nox_op op)
{
	/* discovery fills a cache behind the const handle */
	struct http_backend *h = (struct http_backend *)(uintptr_t)b;

	if (op == NOX_OP_WORKSPACE_FD || op >= NOX_OP__COUNT)
		return false;
	if (ext_probe(h, NULL) < 0)
		return false;
	return ext_usable(h, op == NOX_OP_LIST_SANDBOXES);
}

/* ---- v1 operations ----------------------------------------------------- */

/* Sandbox paths are checked here too: a bad one never goes on the wire. */
static int sandbox_path_ok(const char *what, const char *p, struct nox_err *err)
{
	char rel[PATH_MAX];
	int r;

	if (!p)
		return 0;
	r = nox_path_from_sandbox(p, rel, sizeof(rel), err);
	if (r < 0)
		return nox_err_wrap(err, -r, "%s", what);
	return 0;
}

static int http_health(struct nox_backend *b, struct nox_err *err)
{
	struct http_call c;
	int r;

	call_init(&c, "GET",
		  path_make(NULL, "/healthz", NULL, NULL, NULL, NULL));
	c.idempotent = true;
	r = call_run(to_http(b), &c, err);
	call_cleanup(&c);
	return r;
}

static int http_create(struct nox_backend *b, const char *id,
		       const struct nox_create_opts *opts,
		       struct nox_sandbox_info *info, struct nox_err *err)
{
	struct http_call c;
	char *body = nox_v1_create_req_encode(opts);
	int r;

	call_init(&c, "PUT", path_make(id, "", NULL, NULL, NULL, NULL));
	if (!body) {
		call_cleanup(&c);
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	c.body = body;
	c.body_len = strlen(body);
	c.ctype = "application/json";
	c.idempotent = true;
	r = call_run(to_http(b), &c, err);
	if (r == 0) {
		r = nox_v1_create_resp_parse(c.mem, c.mem_len, info, err);
		if (r < 0)
			r = nox_err_wrap(err, EPROTO, "%s %s", c.method,
					 c.path);
		else if (info->ttl_seconds == 0)
			info->ttl_seconds = opts->ttl_seconds > 0
						? opts->ttl_seconds
						: NOX_DEFAULT_TTL;
	}
	free(body);
	call_cleanup(&c);
	return r;
}

static int http_touch(struct nox_backend *b, const char *id,
		      struct nox_err *err)
{
	struct http_call c;
	int r;

	call_init(&c, "POST", path_make(id, "/touch", NULL, NULL, NULL, NULL));
	c.idempotent = true;
	r = call_run(to_http(b), &c, err);
	call_cleanup(&c);
	return r;
}

static int http_exec(struct nox_backend *b, const char *id,
		     const struct nox_exec_req *req,
		     struct nox_exec_result *res, struct nox_err *err)
{
	int secs = req->timeout_seconds > 0 ? req->timeout_seconds
					    : NOX_DEFAULT_EXEC_TIMEOUT;
	struct http_call c;
	char *body;
	int r;

	r = sandbox_path_ok("exec workdir", req->workdir, err);
	if (r < 0)
		return r;
	body = nox_v1_exec_req_encode(req);
	call_init(&c, "POST", path_make(id, "/exec", NULL, NULL, NULL, NULL));
	if (!body) {
		call_cleanup(&c);
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	c.body = body;
	c.body_len = strlen(body);
	c.ctype = "application/json";
	c.timeout_ms = (long)secs * 1000L + EXEC_MARGIN_MS;
	r = call_run(to_http(b), &c, err);
	if (r == 0) {
		r = nox_v1_exec_result_parse(c.mem, c.mem_len, res, err);
		if (r < 0)
			r = nox_err_wrap(err, EPROTO, "%s %s", c.method,
					 c.path);
	}
	free(body);
	call_cleanup(&c);
	return r;
}

static int http_upload(struct nox_backend *b, const char *id, const char *dest,
		       int tar_fd, struct nox_err *err)
{
	struct http_call c;
	int r;

	r = sandbox_path_ok("upload dest", dest, err);
	if (r < 0)
		return r;
	if (tar_fd < 0)
		return nox_err_set(err, EBADF, "upload: bad descriptor");
	call_init(&c, "POST",
		  path_make(id, "/files/upload", "dest",
			    dest ? dest : NOX_WORKSPACE, NULL, NULL));
	c.in_fd = tar_fd;
	c.ctype = "application/x-tar";
	c.idempotent = true;
	r = call_run(to_http(b), &c, err);
	call_cleanup(&c);
	return r;
}

static int http_download(struct nox_backend *b, const char *id, const char *src,
			 int out_fd, struct nox_err *err)
{
	struct http_call c;
	int r;

	r = sandbox_path_ok("download src", src, err);
	if (r < 0)
		return r;
	if (out_fd < 0)
		return nox_err_set(err, EBADF, "download: bad descriptor");
	call_init(&c, "GET",
		  path_make(id, "/files/download", "src",
			    src ? src : NOX_WORKSPACE, NULL, NULL));
	c.sink = SINK_FD;
	c.out_fd = out_fd;
	c.idempotent = true;
	r = call_run(to_http(b), &c, err);
	call_cleanup(&c);
	return r;
}

static int http_delete(struct nox_backend *b, const char *id,
		       struct nox_err *err)
{
	struct http_call c;
	int r;

	call_init(&c, "DELETE", path_make(id, "", NULL, NULL, NULL, NULL));
	c.idempotent = true;
	c.gone_ok = true;
	r = call_run(to_http(b), &c, err);
	call_cleanup(&c);
	return r;
}

/* Copies s into a fixed field; -1 when it does not fit. */
static int field_copy(char *dst, size_t sz, const char *s)
{
	size_t n = strlen(s);

	if (n >= sz)
		return -1;
	memcpy(dst, s, n + 1);
	return 0;
}

static int http_info(struct nox_backend *b, const char *id,
		     struct nox_sandbox_info *info, struct nox_err *err)
{
	struct http_backend *h = to_http(b);
	struct http_call c;
	json_object *o = NULL;
	const char *s;
	char why[96];
	int r;

	memset(info, 0, sizeof(*info));
	r = ext_probe(h, err);
	if (r < 0)
		return r;
	if (ext_usable(h, true)) {
		call_init(&c, "GET", path_make(id, "", NULL, NULL, NULL, NULL));
		c.idempotent = true;
		r = call_run(h, &c, err);
		if (r == 0) {
			r = nox_v1_create_resp_parse(c.mem, c.mem_len, info,
						     err);
			if (r < 0)
				r = nox_err_wrap(err, EPROTO, "%s %s", c.method,
						 c.path);
		}
		call_cleanup(&c);
		return r;
	}
	/* v1 only: touch is the one call that answers 404 without creating */
	call_init(&c, "POST", path_make(id, "/touch", NULL, NULL, NULL, NULL));
	c.idempotent = true;
	r = call_run(h, &c, err);
	if (r == 0 && c.mem_len > 0 &&
	    json_obj_parse(c.mem, c.mem_len, &o, why, sizeof(why)) == 0 &&
	    jstr(o, "expiresAt", false, &s, why, sizeof(why)) == 0 &&
	    field_copy(info->expires_at, sizeof(info->expires_at), s) < 0)
		r = call_bad(&c, "'expiresAt' too long", err);
	json_object_put(o);
	call_cleanup(&c);
	return r;
}

static int http_list_sandboxes(struct nox_backend *b, nox_sandbox_cb cb,
			       void *ud, struct nox_err *err)
{
	struct http_backend *h = to_http(b);
	json_object *o = NULL, *arr, *el;
	struct http_call c;
	const char *id;
	char why[96];
	size_t i, n;
	int r;

	r = ext_need(h, true, err);
	if (r < 0)
		return r;
	call_init(&c, "GET",
		  path_make(NULL, "/v1/sandboxes", NULL, NULL, NULL, NULL));
	c.idempotent = true;
	r = call_run(h, &c, err);
	if (r < 0)
		goto out;
	r = call_json(&c, &o, err);
	if (r < 0)
		goto out;
	arr = jfield(o, "sandboxes");
	if (!arr || !json_object_is_type(arr, json_type_array)) {
		r = call_bad(&c, "'sandboxes' is not an array", err);
		goto out;
	}
	/* validate everything first: the callback sees a sane list or none */
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		el = json_object_array_get_idx(arr, i);
		if (!el || !json_object_is_type(el, json_type_object) ||
		    jstr(el, "id", true, &id, why, sizeof(why)) < 0 ||
		    nox_id_validate(id, NULL) < 0) {
			r = call_bad(&c, "a sandbox entry has no valid 'id'",
				     err);
			goto out;
		}
	}
	for (i = 0; i < n && r == 0; i++) {
		el = json_object_array_get_idx(arr, i);
		jstr(el, "id", true, &id, why, sizeof(why));
		r = cb(id, ud);
	}
out:
	json_object_put(o);
	call_cleanup(&c);
	return r;
}

/* ---- nox.fs operations ------------------------------------------------- */

/* A GET below fs/ returning JSON in *o (caller puts). */
static int fs_get(struct http_backend *h, const char *id, const char *what,
		  const char *path, json_object **o, struct nox_err *err)
{
	struct http_call c;
	int r;

	*o = NULL;
	r = ext_need(h, false, err);
	if (r < 0)
		return r;
	call_init(&c, "GET",
		  path_make(id, what, path ? "path" : NULL, path, NULL, NULL));
	c.idempotent = true;
	r = call_run(h, &c, err);
	if (r == 0)
		r = call_json(&c, o, err);
	call_cleanup(&c);
	return r;
}

static int http_stat(struct nox_backend *b, const char *id, const char *path,
		     struct stat *st, struct nox_err *err)
{
	json_object *o;
	char why[96];
	int r;

	r = fs_get(to_http(b), id, "/fs/stat", path, &o, err);
	if (r < 0)
		return r;
	if (stat_from_json(o, st, why, sizeof(why)) < 0)
		r = nox_err_set(err, EPROTO,
				"stat '%s': malformed response: %s", path, why);
	json_object_put(o);
	return r;
}

/* A listing name must be one path component. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= NAME_MAX && !strchr(s, '/') &&
	       strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

struct list_ent {
	char *name;
	struct stat st;
};

static int http_list(struct nox_backend *b, const char *id, const char *path,
		     nox_list_cb cb, void *ud, struct nox_err *err)
{
	struct list_ent *ents = NULL;
	json_object *o, *arr, *el;
	size_t i, n = 0;
	char why[96];
	int r;

	r = fs_get(to_http(b), id, "/fs/list", path, &o, err);
	if (r < 0)
		return r;
	arr = jfield(o, "entries");
	if (!arr || !json_object_is_type(arr, json_type_array)) {
		r = nox_err_set(
		    err, EPROTO,
		    "list '%s': malformed response: 'entries' is not an array",
		    path);
		goto out;
	}
	/* parse and check all entries before the first callback */
	n = json_object_array_length(arr);
	ents = calloc(n ? n : 1, sizeof(*ents));
	if (!ents) {
		r = nox_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		el = json_object_array_get_idx(arr, i);
		if (stat_from_json(el, &ents[i].st, why, sizeof(why)) < 0 ||
		    jname(el, "name", true, &ents[i].name, why, sizeof(why)) <
			0) {
			r = nox_err_set(err, EPROTO,
					"list '%s': malformed entry %zu: %s",
					path, i, why);
			goto out;
		}
		if (!name_ok(ents[i].name)) {
			r = nox_err_set(err, EPROTO,
					"list '%s': entry %zu has a bad name",
					path, i);
			goto out;
		}
	}
	for (i = 0; i < n && r == 0; i++)
		r = cb(ents[i].name, &ents[i].st, ud);
out:
	for (i = 0; ents && i < n; i++)
		free(ents[i].name);
	free(ents);
	json_object_put(o);
	return r;
}

/*
 * fs/tree: the whole subtree in one request.  Every entry is checked (a
 * relative path without "..", a parent that came earlier) before the first
 * callback, so a hostile server cannot make the caller create a name
 * outside the listed tree.
 */
struct tree_ent {
	char *rel;
	char *target;
	struct stat st;
};

static int http_tree(struct nox_backend *b, const char *id, const char *path,
		     nox_tree_cb cb, void *ud, struct nox_err *err)
{
	struct tree_ent *ents = NULL;
	json_object *o, *arr, *el;
	size_t i, n = 0;
	char why[96];
	int r;

	r = fs_get(to_http(b), id, "/fs/tree", path, &o, err);
	if (r < 0)
		return r;
	arr = jfield(o, "entries");
	if (!arr || !json_object_is_type(arr, json_type_array)) {
		r = nox_err_set(
		    err, EPROTO,
		    "tree '%s': malformed response: 'entries' is not an array",
		    path);
		goto out;
	}
	n = json_object_array_length(arr);
	ents = calloc(n ? n : 1, sizeof(*ents));
	if (!ents) {
		r = nox_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		el = json_object_array_get_idx(arr, i);
		if (stat_from_json(el, &ents[i].st, why, sizeof(why)) < 0 ||
		    jname(el, "path", true, &ents[i].rel, why, sizeof(why)) <
			0 ||
		    jname(el, "target", false, &ents[i].target, why,
			  sizeof(why)) < 0) {
			r = nox_err_set(err, EPROTO,
					"tree '%s': malformed entry %zu: %s",
					path, i, why);
			goto out;
		}
		if (!ents[i].rel[0] ||
		    nox_path_validate(ents[i].rel, NULL) < 0 ||
		    strcmp(ents[i].rel, ".") == 0) {
			r = nox_err_set(err, EPROTO,
					"tree '%s': entry %zu has a bad path",
					path, i);
			goto out;
		}
	}
	for (i = 0; i < n && r == 0; i++)
		r = cb(ents[i].rel, &ents[i].st,
		       S_ISLNK(ents[i].st.st_mode) ? ents[i].target : NULL, ud);
out:
	for (i = 0; ents && i < n; i++) {
		free(ents[i].rel);
		free(ents[i].target);
	}
	free(ents);
	json_object_put(o);
	return r;
}

static ssize_t http_read(struct nox_backend *b, const char *id,
			 const char *path, off_t off, void *buf, size_t len,
			 struct nox_err *err)
{
	struct http_backend *h = to_http(b);
	struct http_call c;
	char range[64];
	ssize_t r;

	if (off < 0)
		return nox_err_set(err, EINVAL, "read: negative offset");
	if (len == 0)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	r = ext_need(h, false, err);
	if (r < 0)
		return r;
	snprintf(range, sizeof(range), "bytes=%lld-%lld", (long long)off,
		 (long long)off + (long long)len - 1);
	call_init(&c, "GET",
		  path_make(id, "/fs/file", "path", path, NULL, NULL));
	c.sink = SINK_BUF;
	c.buf = buf;
	c.buf_cap = len;
	c.buf_off = off;
	c.range = range;
	c.idempotent = true;
	r = call_run(h, &c, err);
	if (r == 0)
		r = (ssize_t)c.buf_got;
	else if (c.status == 416 && !c.cb_errno) {
		nox_err_clear(err);
		r = 0; /* offset at or past the end */
	}
	call_cleanup(&c);
	return r;
}

static ssize_t http_write(struct nox_backend *b, const char *id,
			  const char *path, off_t off, const void *buf,
			  size_t len, struct nox_err *err)
{
	struct http_backend *h = to_http(b);
	struct http_call c;
	json_object *o = NULL;
	char offs[32], why[96];
	int64_t w = 0;
	ssize_t r;

	if (off < 0)
		return nox_err_set(err, EINVAL, "write: negative offset");
	if (len > JSON_MAX)
		len = JSON_MAX; /* a short write; the caller goes on */
	r = ext_need(h, false, err);
	if (r < 0)
		return r;
	snprintf(offs, sizeof(offs), "%lld", (long long)off);
	call_init(&c, "PUT",
		  path_make(id, "/fs/file", "path", path, "offset", offs));
	c.body = len ? buf : "";
	c.body_len = len;
	c.ctype = "application/octet-stream";
	r = call_run(h, &c, err);
	if (r == 0) {
		r = call_json(&c, &o, err);
		if (r == 0 && jint(o, "written", true, 0, (int64_t)len, &w, why,
				   sizeof(why)) < 0)
			r = call_bad(&c, why, err);
		if (r == 0)
			r = (ssize_t)w;
	}
	json_object_put(o);
	call_cleanup(&c);
	return r;
}

/*
 * POST fs/op with body o (consumed).  With resp set, the response object
 * goes there (caller puts).  Never retried: a replayed rename or unlink
 * would report a failure for an operation that happened.
 */
static int fs_op(struct http_backend *h, const char *id, json_object *o,
		 json_object **resp, struct nox_err *err)
{
	struct http_call c;
	const char *s;
	int r;

	if (resp)
		*resp = NULL;
	r = ext_need(h, false, err);
	if (r < 0) {
		json_object_put(o);
		return r;
	}
	s = o ? json_object_to_json_string_ext(o, JSON_OUT) : NULL;
	if (!s) {
		json_object_put(o);
		return nox_err_set(err, ENOMEM, "out of memory");
	}
	call_init(&c, "POST", path_make(id, "/fs/op", NULL, NULL, NULL, NULL));
	c.body = s;
	c.body_len = strlen(s);
	c.ctype = "application/json";
	r = call_run(h, &c, err);
	if (r == 0 && resp)
		r = call_json(&c, resp, err);
	json_object_put(o);
	call_cleanup(&c);
	return r;
}

static bool utf8_valid(const unsigned char *s)
{
	unsigned char lo, hi;
	size_t need, i;

	while (*s) {
		lo = 0x80;
		hi = 0xbf;
		if (*s < 0x80) {
			s++;
			continue;
		}
		if (*s >= 0xc2 && *s <= 0xdf) {
			need = 1;
		} else if (*s >= 0xe0 && *s <= 0xef) {
			need = 2;
			lo = *s == 0xe0 ? 0xa0 : 0x80;
			hi = *s == 0xed ? 0x9f : 0xbf;
		} else if (*s >= 0xf0 && *s <= 0xf4) {
			need = 3;
			lo = *s == 0xf0 ? 0x90 : 0x80;
			hi = *s == 0xf4 ? 0x8f : 0xbf;
		} else {
			return false;
		}
		for (i = 1; i <= need; i++) {
			if (s[i] < lo || s[i] > hi)
				return false; /* also stops at the NUL */
			lo = 0x80;
			hi = 0xbf;
		}
		s += need + 1;
	}
	return true;
}

/* Standard base64 with padding, malloc'd; NULL on allocation failure. */
static char *b64_encode(const unsigned char *s, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
	uint32_t v;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63];
		*o++ = tab[v & 63];
	}
	if (i < n) {
		v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/*
 * Adds key: s, or key64: base64(s) when s is not valid UTF-8 (the wire
 * form noxd reads both ways).  Returns false on failure.
 */
static bool op_name(json_object *o, const char *key, const char *s)
{
	char k64[32], *b;
	bool ok;

	if (utf8_valid((const unsigned char *)s))
		return json_object_object_add(o, key,
					      json_object_new_string(s)) == 0;
	b = b64_encode((const unsigned char *)s, strlen(s));
	if (!b)
		return false;
	snprintf(k64, sizeof(k64), "%s64", key);
	ok = json_object_object_add(o, k64, json_object_new_string(b)) == 0;
	free(b);
	return ok;
}

/* {"op": op, k1: s1, k2: s2} with name values; k2 may be NULL. */
static json_object *op_new(const char *op, const char *k1, const char *s1,
			   const char *k2, const char *s2)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (json_object_object_add(o, "op", json_object_new_string(op)) ||
	    !op_name(o, k1, s1) || (k2 && !op_name(o, k2, s2))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* Adds an integer field; on failure o is put and NULL returned. */
static json_object *op_int(json_object *o, const char *key, int64_t v)
{
	if (o && json_object_object_add(o, key, json_object_new_int64(v))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int http_createfile(struct nox_backend *b, const char *id,
			   const char *path, mode_t mode, bool excl,
			   struct nox_err *err)
{
	json_object *o = op_int(op_new("create", "path", path, NULL, NULL),
				"mode", (int64_t)(mode & 07777));

	if (o &&
	    json_object_object_add(o, "excl", json_object_new_boolean(excl))) {
		json_object_put(o);
		o = NULL;
	}
	return fs_op(to_http(b), id, o, NULL, err);
}

static int http_truncate(struct nox_backend *b, const char *id,
			 const char *path, off_t size, struct nox_err *err)
{
	if (size < 0)
		return nox_err_set(err, EINVAL, "truncate: negative size");
	return fs_op(to_http(b), id,
		     op_int(op_new("truncate", "path", path, NULL, NULL),
			    "size", (int64_t)size),
		     NULL, err);
}

static int http_mkdir(struct nox_backend *b, const char *id, const char *path,
		      mode_t mode, struct nox_err *err)
{
	return fs_op(to_http(b), id,
		     op_int(op_new("mkdir", "path", path, NULL, NULL), "mode",
			    (int64_t)(mode & 07777)),
		     NULL, err);
}

static int http_unlink(struct nox_backend *b, const char *id, const char *path,
		       struct nox_err *err)
{
	return fs_op(to_http(b), id, op_new("unlink", "path", path, NULL, NULL),
		     NULL, err);
}

static int http_rmdir(struct nox_backend *b, const char *id, const char *path,
		      struct nox_err *err)
{
	return fs_op(to_http(b), id, op_new("rmdir", "path", path, NULL, NULL),
		     NULL, err);
}

static int http_rename(struct nox_backend *b, const char *id, const char *from,
		       const char *to, unsigned flags, struct nox_err *err)
{
	if (flags > 2)
		return nox_err_set(err, EINVAL, "rename: unknown flags %#x",
				   flags);
	return fs_op(to_http(b), id,
		     op_int(op_new("rename", "from", from, "to", to), "flags",
			    (int64_t)flags),
		     NULL, err);
}

static int http_chmod(struct nox_backend *b, const char *id, const char *path,
		      mode_t mode, struct nox_err *err)
{
	return fs_op(to_http(b), id,
		     op_int(op_new("chmod", "path", path, NULL, NULL), "mode",
			    (int64_t)(mode & 07777)),
		     NULL, err);
}

/* utimensat timespec to the wire: -1 now, -2 omit, else nanoseconds. */
static int64_t ts_to_ns(const struct timespec *ts)
{
	if (!ts || ts->tv_nsec == UTIME_NOW)
		return -1;
	if (ts->tv_nsec == UTIME_OMIT)
		return -2;
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static int http_utimens(struct nox_backend *b, const char *id, const char *path,
			const struct timespec ts[2], struct nox_err *err)
{
	int i;

	for (i = 0; ts && i < 2; i++)
		if (ts[i].tv_nsec != UTIME_NOW && ts[i].tv_nsec != UTIME_OMIT &&
		    (ts[i].tv_nsec < 0 || ts[i].tv_nsec >= 1000000000L ||
		     ts[i].tv_sec < -9223372035LL ||
		     ts[i].tv_sec > 9223372035LL))
			return nox_err_set(err, EINVAL,
					   "utimens: time out of range");
	return fs_op(to_http(b), id,
		     op_int(op_int(op_new("utimens", "path", path, NULL, NULL),
				   "atimeNs", ts_to_ns(ts ? &ts[0] : NULL)),
			    "mtimeNs", ts_to_ns(ts ? &ts[1] : NULL)),
		     NULL, err);
}

static int http_symlink(struct nox_backend *b, const char *id,
			const char *target, const char *path,
			struct nox_err *err)
{
	if (!target || !target[0])
		return nox_err_set(err, ENOENT, "symlink: empty target");
	return fs_op(to_http(b), id,
		     op_new("symlink", "target", target, "path", path), NULL,
		     err);
}

static ssize_t http_readlink(struct nox_backend *b, const char *id,
			     const char *path, char *buf, size_t size,
			     struct nox_err *err)
{
	json_object *resp;
	char *target = NULL, why[96];
	size_t n;
	int r;

	if (size == 0)
		return nox_err_set(err, EINVAL, "readlink: empty buffer");
	r = fs_op(to_http(b), id, op_new("readlink", "path", path, NULL, NULL),
		  &resp, err);
	if (r < 0)
		return r;
	if (jname(resp, "target", true, &target, why, sizeof(why)) < 0) {
		json_object_put(resp);
		return nox_err_set(err, EPROTO,
				   "readlink '%s': malformed response: %s",
				   path, why);
	}
	n = strlen(target);
	if (n > size - 1)
		n = size - 1;
	memcpy(buf, target, n);
	buf[n] = '\0';
	free(target);
	json_object_put(resp);
	return (ssize_t)n;
}

static int http_link(struct nox_backend *b, const char *id, const char *from,
		     const char *to, struct nox_err *err)
{
	return fs_op(to_http(b), id, op_new("link", "from", from, "to", to),
		     NULL, err);
}

static int http_statfs(struct nox_backend *b, const char *id,
		       struct statvfs *st, struct nox_err *err)
{
	static const char *const keys[] = {"bsize", "frsize", "blocks",
					   "bfree", "bavail", "files",
					   "ffree", "namemax"};
	json_object *o;
	int64_t v[8];
	char why[96];
	size_t i;
	int r;

	r = fs_get(to_http(b), id, "/fs/statfs", NULL, &o, err);
	if (r < 0)
		return r;
	for (i = 0; i < 8; i++) {
		if (jint(o, keys[i], true, 0, INT64_MAX - 1, &v[i], why,
			 sizeof(why)) < 0) {
			json_object_put(o);
			return nox_err_set(
			    err, EPROTO, "statfs: malformed response: %s", why);
		}
	}
	memset(st, 0, sizeof(*st));
	st->f_bsize = (unsigned long)v[0];
	st->f_frsize = (unsigned long)v[1];
	st->f_blocks = (fsblkcnt_t)v[2];
	st->f_bfree = (fsblkcnt_t)v[3];
	st->f_bavail = (fsblkcnt_t)v[4];
	st->f_files = (fsfilcnt_t)v[5];
	st->f_ffree = (fsfilcnt_t)v[6];
	st->f_favail = (fsfilcnt_t)v[6];
	st->f_namemax = (unsigned long)v[7];
	json_object_put(o);
	return 0;
}

/* ---- construction ------------------------------------------------------ */

static void http_free(struct nox_backend *b)
{
	struct http_backend *h = to_http(b);
	int i;

	for (i = 0; i < h->npool; i++)
		curl_easy_cleanup(h->pool[i]);
	if (h->share)
		curl_share_cleanup(h->share);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&h->share_mx[i]);
	pthread_mutex_destroy(&h->pool_mx);
	pthread_mutex_destroy(&h->ext_mx);
	free(h->base_url);
	free(h->auth);
	free(h);
}

static const struct nox_backend_ops http_ops = {
    .name = "http",
    .free = http_free,
    .has = http_has,
    .health = http_health,
    .create = http_create,
    .touch = http_touch,
    .exec = http_exec,
    .upload = http_upload,
    .download = http_download,
    .del = http_delete,
    .info = http_info,
    .list_sandboxes = http_list_sandboxes,
    .stat = http_stat,
    .list = http_list,
    .read = http_read,
    .write = http_write,
    .createfile = http_createfile,
    .truncate = http_truncate,
    .mkdir = http_mkdir,
    .unlink = http_unlink,
    .rmdir = http_rmdir,
    .rename = http_rename,
    .chmod = http_chmod,
    .utimens = http_utimens,
    .symlink = http_symlink,
    .readlink = http_readlink,
    .link = http_link,
    .statfs = http_statfs,
    .workspace_fd = NULL,
    .tree = http_tree,
};

/* The token must fit in one header line. */
static bool token_ok(const char *t)
{
	for (; *t; t++)
		if ((unsigned char)*t < 0x20 || *t == 0x7f)
			return false;
	return true;
}

int nox_backend_http_new(const struct nox_http_opts *opts,
			 struct nox_backend **out, struct nox_err *err)
{
	struct nox_http_opts def = {0};
	struct http_backend *h;
	const char *url, *tok;
	size_t n;
	int i;

	*out = NULL;
	nox_err_clear(err);
	if (!opts)
		opts = &def;
	url = opts->base_url ? opts->base_url : getenv("NOXRUNNER_BASE_URL");
	if (!url || !url[0])
		return nox_err_set(
		    err, EINVAL,
		    "no server URL: give one or set NOXRUNNER_BASE_URL");
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return nox_err_set(err, EINVAL,
				   "server URL '%s' is not http:// or https://",
				   url);
	if (strpbrk(url, "?# \t\r\n"))
		return nox_err_set(
		    err, EINVAL,
		    "server URL '%s' must not hold a query, fragment or space",
		    url);
	tok = opts->token ? opts->token : getenv("NOXRUNNER_TOKEN");
	if (tok && !token_ok(tok))
		return nox_err_set(err, EINVAL,
				   "token holds control characters");
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return nox_err_set(err, EIO, "curl_global_init: %s",
				   curl_easy_strerror(global_rc));

	h = calloc(1, sizeof(*h));
	if (!h)
		return nox_err_set(err, ENOMEM, "out of memory");
	h->base.ops = &http_ops;
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->share_mx[i], NULL);
	pthread_mutex_init(&h->pool_mx, NULL);
	pthread_mutex_init(&h->ext_mx, NULL);
	h->base_url = strdup(url);
	if (!h->base_url)
		goto oom;
	n = strlen(h->base_url);
	while (n > 0 && h->base_url[n - 1] == '/')
		h->base_url[--n] = '\0';
	if (tok && tok[0]) {
		n = strlen(tok) + sizeof("Authorization: Bearer ");
		h->auth = malloc(n);
		if (!h->auth)
			goto oom;
		snprintf(h->auth, n, "Authorization: Bearer %s", tok);
	}
	h->connect_timeout_ms = opts->connect_timeout_ms > 0
				    ? opts->connect_timeout_ms
				    : DEF_CONNECT_MS;
	h->timeout_ms =
	    opts->timeout_ms > 0 ? opts->timeout_ms : DEF_TIMEOUT_MS;
	h->retries = opts->retries < 0	  ? 0
		     : opts->retries == 0 ? DEF_RETRIES
					  : opts->retries;
	if (opts->v1_only)
		h->ext_known = true; /* and nothing offered */
	h->share = curl_share_init();
	if (!h->share)
		goto oom;
	curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(h->share, CURLSHOPT_SHARE,
			  CURL_LOCK_DATA_SSL_SESSION);
	*out = &h->base;
	return 0;
oom:
	http_free(&h->base);
	return nox_err_set(err, ENOMEM, "out of memory");
}
