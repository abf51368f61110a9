/*
 * http.c - the http backend's transport: a NoxRunner v1 client (libcurl)
 * whose calls (http_v1.c, http_fs.c) share one handle pool, one retry
 * policy and one status-to-errno mapping; plus extension discovery (noxd's
 * nox.fs 1, nox.sandboxes 1 and nox.bytes 1) and the backend's construction.
 *
 * Transport: one CURLSH share (DNS cache, TLS sessions) guarded by pthread
 * mutexes, and a small pool of easy handles, one per concurrent request.
 * Keep-alive connections live in each pooled handle (curl_easy_reset keeps
 * them), not in the share: libcurl documents a shared connection cache as
 * unsafe between concurrent threads (KNOWN_BUGS, curl issue #4915), and
 * valgrind shows the use-after-free with 8 threads here.
 *
 * Every request is bounded: connect timeout, and a deadline for the whole
 * call (opts->timeout_ms, default 10 s, or the command's timeout plus
 * EXEC_MARGIN_MS for exec) that also bounds the retries.  Bulk transfers
 * (a body streamed from or to a descriptor, or over BULK_MIN in memory)
 * are bounded by progress instead, so a big file on a slow link is not
 * cut: one that moves no byte, or under LOW_SPEED_BPS, for timeout_ms is
 * stalled (ETIMEDOUT, not retried).  Idempotent calls are retried with
 * exponential backoff on transport failures and 502/503/504 (and 500
 * without an "errno" in its body); exec, fs/file writes and fs/op are
 * never retried.
 *
 * Responses are untrusted.  In-memory bodies are capped (JSON_MAX; error
 * bodies ERRBODY_MAX, truncated); their JSON is checked by the callers
 * (fsw.c, v1.c), anything malformed being -EPROTO with a message.
 * Downloads stream into a descriptor and uploads stream from one, so
 * memory does not grow with the data.
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
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include <nox/backend.h>
#include <nox/id.h>
#include <nox/v1.h>

#include "http_i.h"

#define ERRBODY_MAX	 ((size_t)64 << 10) /* kept of an error body */
#define DEF_CONNECT_MS	 5000L
#define DEF_TIMEOUT_MS	 10000L
#define BULK_MIN	 ((size_t)1 << 20) /* bytes: bounded by progress */
#define LOW_SPEED_BPS	 1024L /* bytes/s: slower is stalled */
#define DEF_RETRIES	 3
#define BACKOFF_FIRST_MS 100L
#define BACKOFF_CAP_MS	 2000L
#define EXT_RETRY_MS	 1000L

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
char *http_path(const char *id, const char *suffix, const char *k1,
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

/*
 * A handle's sockets: its newest one is remembered for the stall check
 * (call_sent).  The close callback is kept by each connection from its
 * creation, so it runs for connections of earlier calls too, and at the
 * latest in curl_easy_cleanup: x is freed after it.
 */
static curl_socket_t easy_open(void *ud, curlsocktype purpose,
			       struct curl_sockaddr *a)
{
	struct http_easy *x = ud;
	curl_socket_t s;

	(void)purpose;
	s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (s != CURL_SOCKET_BAD)
		x->sock = s;
	return s;
}

static int easy_close(void *ud, curl_socket_t s)
{
	struct http_easy *x = ud;

	if (x->sock == s)
		x->sock = CURL_SOCKET_BAD;
	return close(s);
}

static void easy_free(struct http_easy *x)
{
	if (!x)
		return;
	/* the multi closes its connections through easy_close: x lives */
	if (x->m)
		curl_multi_cleanup(x->m);
	curl_easy_cleanup(x->e);
	free(x);
}

static struct http_easy *pool_get(struct http_backend *h)
{
	struct http_easy *x = NULL;

	pthread_mutex_lock(&h->pool_mx);
	if (h->npool > 0)
		x = h->pool[--h->npool];
	pthread_mutex_unlock(&h->pool_mx);
	if (x) {
		curl_easy_reset(x->e);
		return x;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->sock = CURL_SOCKET_BAD;
	x->e = curl_easy_init();
	x->m = curl_multi_init();
	if (!x->e || !x->m) {
		easy_free(x);
		return NULL;
	}
	return x;
}

static void pool_put(struct http_backend *h, struct http_easy *x)
{
	if (!x)
		return;
	pthread_mutex_lock(&h->pool_mx);
	if (h->npool < POOL_MAX) {
		h->pool[h->npool++] = x;
		x = NULL;
	}
	pthread_mutex_unlock(&h->pool_mx);
	easy_free(x);
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

static bool cb_add(struct http_call *c, const char *p, size_t n)
{
	int e = c->data_cb(p, n, c->data_ud);

	if (e != 0) {
		call_fail_cb(c, e < 0 ? -e : e, "the download's reader gave up");
		return false;
	}
	c->out_written += (uint64_t)n;
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
	else if (c->sink == SINK_CB)
		ok = cb_add(c, p, n);
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

	size_t want = size * nmemb;

	if (c->in_len >= 0 && c->in_size >= 0) {
		/* a slice of in_fd: stop at its end, not the file's */
		off_t pos = lseek(c->in_fd, 0, SEEK_CUR);
		off_t left = c->in_start + c->in_size - pos;

		if (pos < 0 || left <= 0)
			return 0;
		if ((off_t)want > left)
			want = (size_t)left;
	}
	for (;;) {
		r = read(c->in_fd, p, want);
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
	bool has_errno;
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
	code = fsw_error_parse(c->mem, c->mem_len, &has_errno);
	if (!code)
		code = status_errno(c->status);
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

void http_call_init(struct http_call *c, const char *method, char *path)
{
	memset(c, 0, sizeof(*c));
	c->method = method;
	c->path = path;
	c->in_fd = -1;
	c->out_fd = -1;
	c->in_size = -1;
	c->in_len = -1;
	c->sink = SINK_MEM;
	c->cr_start = -1;
}

void http_call_json_body(struct http_call *c, const char *json)
{
	c->body = json;
	c->body_len = strlen(json);
	c->ctype = "application/json";
}

void http_call_cleanup(struct http_call *c)
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
	if (c->sink == SINK_CB && c->out_written > 0)
		return false; /* what the callback took cannot come back */
	return true;
}

/* Is c a bulk transfer, bounded by progress rather than total time? */
static bool call_bulk(const struct http_call *c)
{
	return c->in_fd >= 0 || c->out_fd >= 0 || c->sink == SINK_CB ||
	       c->body_len >= BULK_MIN ||
	       (c->sink == SINK_BUF && c->buf_cap >= BULK_MIN);
}

/*
 * Bytes of the upload the server has: curl's count less what still sits
 * in the socket's send queue (SIOCOUTQ), which holds megabytes on a slow
 * link: the end of an upload would otherwise look like a stall.
 */
static curl_off_t call_sent(struct http_call *c, curl_off_t ulnow)
{
	curl_socket_t s = c->x->sock;
	int queued = 0;

	if (ulnow <= 0 || s == CURL_SOCKET_BAD ||
	    ioctl(s, SIOCOUTQ, &queued) < 0 || queued <= 0)
		return ulnow;
	return (curl_off_t)queued < ulnow ? ulnow - queued : 0;
}

/*
 * A bulk transfer's watchdog (libcurl calls it about once a second, idle
 * or not): stalled when no byte moved either way for timeout_ms, or
 * fewer than LOW_SPEED_BPS on average over a window of timeout_ms.
 * Counted in both directions: a server still taking the upload is
 * progress, an upload waiting in our send queue is not.
 */
static int call_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
			 curl_off_t ultotal, curl_off_t ulnow)
{
	struct http_call *c = ud;
	curl_off_t sent = call_sent(c, ulnow), moved = dlnow + sent;
	long now = now_ms(), bound = c->timeout_ms;
	bool answering;
	char msg[96];

	(void)dltotal;
	(void)ultotal;
	if (moved > c->prog_last) {
		c->prog_last = moved;
		c->prog_moved_at = now;
	}
	/* the server has the whole upload and works on it (extracts) */
	answering = c->in_fd >= 0 && c->in_size > 0 && sent >= c->in_size &&
		    dlnow == 0;
	if (answering && c->answer_ms > bound)
		bound = c->answer_ms;
	if (now - c->prog_moved_at >= bound) {
		snprintf(msg, sizeof(msg),
			 "stalled: no data for %ld ms (op_timeout)",
			 now - c->prog_moved_at);
		call_fail_cb(c, ETIMEDOUT, msg);
		return 1;
	}
	moved = c->prog_last;
	if (answering) {
		c->prog_win_at = now; /* no rate while it works */
		c->prog_win_bytes = moved;
	} else if (now - c->prog_win_at >= c->timeout_ms) {
		if (moved - c->prog_win_bytes <
		    (curl_off_t)(LOW_SPEED_BPS * (now - c->prog_win_at) /
				 1000)) {
			snprintf(msg, sizeof(msg),
				 "stalled: under %ld bytes/s for %ld ms",
				 LOW_SPEED_BPS, now - c->prog_win_at);
			call_fail_cb(c, ETIMEDOUT, msg);
			return 1;
		}
		c->prog_win_at = now;
		c->prog_win_bytes = moved;
	}
	return 0;
}

/*
 * Runs e to its end in x's multi handle, as curl_easy_perform would (its
 * own multi; the connections stay in x->m for the next call), and stops
 * it when c->cancel fires: the transfer is dropped and its connection
 * closed, so the server sees the client go (EINTR in c->cb_errno).
 */
static CURLcode call_drive(struct http_call *c, CURL *e)
{
	CURLM *m = c->x->m;
	struct curl_waitfd wfd = {.fd = -1};
	unsigned int nw = 0;
	CURLcode cc = CURLE_OK;
	CURLMcode mc;
	CURLMsg *msg;
	int running = 1, left;

	if (nox_cancel_fired(c->cancel)) {
		/* before a byte is sent: the command never starts */
		call_fail_cb(c, EINTR, "interrupted before the request was "
				       "sent");
		return CURLE_ABORTED_BY_CALLBACK;
	}
	if (curl_multi_add_handle(m, e) != CURLM_OK)
		return CURLE_FAILED_INIT;
	if (c->cancel && c->cancel->fd >= 0) {
		wfd.fd = c->cancel->fd;
		wfd.events = CURL_WAIT_POLLIN;
		nw = 1;
	}
	for (;;) {
		mc = curl_multi_perform(m, &running);
		if (mc != CURLM_OK || !running)
			break;
		wfd.revents = 0;
		mc = curl_multi_poll(m, nw ? &wfd : NULL, nw, 1000, NULL);
		if (mc != CURLM_OK)
			break;
		if (nw && wfd.revents) {
			call_fail_cb(c, EINTR, "interrupted; the request "
					       "was dropped");
			cc = CURLE_ABORTED_BY_CALLBACK;
			goto out;
		}
	}
	if (mc != CURLM_OK) {
		cc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY
					       : CURLE_FAILED_INIT;
		goto out;
	}
	while ((msg = curl_multi_info_read(m, &left)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == e)
			cc = msg->data.result;
out:
	curl_multi_remove_handle(m, e);
	return cc;
}

/* timeout_ms: the attempt's deadline; 0: none (a bulk transfer). */
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
	if (timeout_ms == 0) {
		c->prog_last = 0;
		c->prog_moved_at = now_ms();
		c->prog_win_at = c->prog_moved_at;
		c->prog_win_bytes = 0;
		curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, call_progress);
		curl_easy_setopt(e, CURLOPT_XFERINFODATA, c);
		curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	}
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, easy_open);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, c->x);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, easy_close);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, c->x);
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

	cc = call_drive(c, e);
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
 * within the call's deadline (a bulk transfer's: h->retries of them, a
 * stall ending it).
 */
int http_call_run(struct http_backend *h, struct http_call *c,
		  struct nox_err *err)
{
	long deadline, left, backoff = BACKOFF_FIRST_MS;
	char ebuf[CURL_ERROR_SIZE];
	struct stat st;
	bool retry, bulk;
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
		if (c->in_len >= 0 && c->in_size > c->in_len)
			c->in_size = c->in_len;
	}
	if (c->out_fd >= 0) {
		c->out_start = lseek(c->out_fd, 0, SEEK_CUR);
		c->out_regular = c->out_start >= 0 &&
				 fstat(c->out_fd, &st) == 0 &&
				 S_ISREG(st.st_mode);
	}
	c->x = pool_get(h);
	c->e = c->x ? c->x->e : NULL;
	if (!c->e)
		return nox_err_set(err, ENOMEM, "%s %s: no curl handle",
				   c->method, c->path);
	bulk = call_bulk(c);
	deadline = now_ms() + c->timeout_ms;
	for (attempt = 0;; attempt++) {
		left = bulk ? LONG_MAX : deadline - now_ms();
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
		cc = call_perform(h, c, bulk ? 0 : left, ebuf);
		r = call_outcome(c, cc, ebuf, &retry, err);
		if (r == -ENOENT && attempt > 0 && c->gone_ok)
			r = 0; /* an earlier attempt did it */
		if (r == 0 || !retry || attempt >= h->retries ||
		    !call_replayable(c))
			break;
		left = bulk ? LONG_MAX : deadline - now_ms();
		if (left <= 0)
			break;
		sleep_ms(backoff < left ? backoff : left);
		backoff =
		    backoff * 2 > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : backoff * 2;
	}
	if (r == 0)
		nox_err_clear(err);
	pool_put(h, c->x);
	c->x = NULL;
	c->e = NULL;
	return r;
}

/* c->mem as a JSON object, or -EPROTO naming the call. */
int http_call_json(const struct http_call *c, json_object **o,
		   struct nox_err *err)
{
	char why[128];

	if (fsw_json_parse(c->mem, c->mem_len, o, why, sizeof(why)) < 0)
		return nox_err_set(err, EPROTO, "%s %s: malformed response: %s",
				   c->method, c->path, why);
	return 0;
}

int http_call_bad(const struct http_call *c, const char *why,
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
int http_ext_probe(struct http_backend *h, struct nox_err *err)
{
	static const struct {
		const char *name;
		size_t off;
	} exts[] = {
	    {"nox.fs", offsetof(struct http_backend, ext_fs)},
	    {"nox.sandboxes", offsetof(struct http_backend, ext_sbx)},
	    {"nox.bytes", offsetof(struct http_backend, ext_bytes)},
	    {"nox.files", offsetof(struct http_backend, ext_files)},
	    {"nox.ops", offsetof(struct http_backend, ext_ops)},
	    {"nox.cancel", offsetof(struct http_backend, ext_cancel)},
	};
	struct http_call c;
	size_t i;
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
	http_call_init(
	    &c, "GET",
	    http_path(NULL, "/v1/extensions", NULL, NULL, NULL, NULL));
	c.idempotent = false; /* one try: has() must not stall */
	r = http_call_run(h, &c, err);
	if (r == 0) {
		h->ext_known = true;
		if (fsw_json_parse(c.mem, c.mem_len, &o, why, sizeof(why)) ==
			0 &&
		    json_object_object_get_ex(o, "extensions", &x) &&
		    json_object_is_type(x, json_type_object)) {
			for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
				if (fsw_get_int(x, exts[i].name, true, 0,
						INT32_MAX, &v, why,
						sizeof(why)) == 0)
					*(long *)((char *)h + exts[i].off) =
					    (long)v;
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
	http_call_cleanup(&c);
	if (r == 0)
		nox_err_clear(err);
	return r;
}

/* Version of an extension in use: 1 when usable, 0 not offered. */
bool http_ext_usable(struct http_backend *h, bool sbx)
{
	bool ok;

	pthread_mutex_lock(&h->ext_mx);
	ok = h->ext_known && (sbx ? h->ext_sbx : h->ext_fs) == 1;
	pthread_mutex_unlock(&h->ext_mx);
	return ok;
}

/* true when the server is known to offer version 1 of the extension
 * whose field (of h, under ext_mx) is *v */
static bool ext_one(struct http_backend *h, const long *v)
{
	bool ok;

	pthread_mutex_lock(&h->ext_mx);
	ok = h->ext_known && *v == 1;
	pthread_mutex_unlock(&h->ext_mx);
	return ok;
}

bool http_ext_files(struct http_backend *h)
{
	return ext_one(h, &h->ext_files);
}

bool http_ext_ops(struct http_backend *h)
{
	return ext_one(h, &h->ext_ops);
}

bool http_ext_bytes(struct http_backend *h)
{
	return http_ext_probe(h, NULL) == 0 && ext_one(h, &h->ext_bytes);
}

bool http_ext_cancel(struct http_backend *h)
{
	return http_ext_probe(h, NULL) == 0 && ext_one(h, &h->ext_cancel);
}

/* 0 when nox.fs (or nox.sandboxes) 1 can be used, else a negative errno. */
int http_ext_need(struct http_backend *h, bool sbx, struct nox_err *err)
{
	int r = http_ext_probe(h, err);

	if (r < 0)
		return r;
	if (!http_ext_usable(h, sbx))
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
	if (http_ext_probe(h, NULL) < 0)
		return false;
	if (op == NOX_OP_FILES)
		return http_ext_files(h);
	if (op == NOX_OP_BATCH)
		return http_ext_ops(h);
	return http_ext_usable(h, op == NOX_OP_LIST_SANDBOXES);
}

/* ---- construction ------------------------------------------------------ */

static void http_free(struct nox_backend *b)
{
	struct http_backend *h = http_of(b);
	int i;

	for (i = 0; i < h->npool; i++)
		easy_free(h->pool[i]);
	if (h->share)
		curl_share_cleanup(h->share);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&h->share_mx[i]);
	pthread_mutex_destroy(&h->pool_mx);
	pthread_mutex_destroy(&h->ext_mx);
	pthread_mutex_destroy(&h->sf_mx);
	free(h->base_url);
	free(h->auth);
	free(h);
}

static const struct nox_backend_ops http_ops = {
    .name = "http",
    .free = http_free,
    .has = http_has,
    .health = http_v1_health,
    .create = http_v1_create,
    .touch = http_v1_touch,
    .exec = http_v1_exec,
    .upload = http_v1_upload,
    .download = http_v1_download,
    .download_stream = http_v1_download_stream,
    .del = http_v1_delete,
    .info = http_v1_info,
    .list_sandboxes = http_v1_list_sandboxes,
    .stat = http_fs_stat,
    .list = http_fs_list,
    .read = http_fs_read,
    .write = http_fs_write,
    .write_fd = http_fs_write_fd,
    .read_stream = http_fs_read_stream,
    .createfile = http_fs_createfile,
    .truncate = http_fs_truncate,
    .mkdir = http_fs_mkdir,
    .unlink = http_fs_unlink,
    .rmdir = http_fs_rmdir,
    .rename = http_fs_rename,
    .chmod = http_fs_chmod,
    .utimens = http_fs_utimens,
    .symlink = http_fs_symlink,
    .readlink = http_fs_readlink,
    .link = http_fs_link,
    .statfs = http_fs_statfs,
    .workspace_fd = NULL,
    .tree = http_fs_tree,
    .mknod = http_fs_mknod,
    .files = http_fs_files,
    .batch = http_fs_batch,
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
	pthread_mutex_init(&h->sf_mx, NULL);
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
