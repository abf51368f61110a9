/*
 * test_http_client.c - the http backend against a hostile server and
 * against real noxd.
 *
 * tests/hostile/server.py (one process, started here, killed by PID)
 * answers per sandbox id: correct answers ("ok", used to check what the
 * client sends), malformed/truncated JSON, wrong field types, missing
 * fields, a non-object, trailing garbage, deep nesting, a NUL after the
 * JSON, 100 MiB of stdout (with and without Content-Length), tars with
 * "../x", an absolute name, a symlink then a file through it, a device
 * node, a gzip bomb, a body that stalls, a connection reset mid-body,
 * 500/502 storms, 503-then-200, 401, errno overrides, plain-text errors,
 * a redirect, an over-long podName, and nox.fs answers with bad types,
 * "../" and "a/b" names, more bytes than the asked range, the wrong range
 * and written > len.  Dead servers: a closed port and a listener that
 * never answers.
 *
 * With $NOX_BUILD_ROOT/tools/noxd/noxd built, the same client runs every
 * v1 and nox.fs operation against it (and --v1-only, --token, --max-body),
 * with 8 threads at once.  Without noxd those tests are skipped, unless
 * NOX_NO_SKIP=1, which makes them fail.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include <nox/backend.h>
#include <nox/tar.h>

#include "testutil.h"

static pid_t hs_pid = -1;
static int hs_port;
static char hs_url[64];

/* ---- helpers ----------------------------------------------------------- */

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static bool no_skip(void)
{
	const char *s = getenv("NOX_NO_SKIP");

	return s && strcmp(s, "1") == 0;
}

/*
 * Starts argv with stdout on a pipe and reads its first line (the port or
 * address) within 20 s.  Returns the pid, -1 on failure.
 */
static pid_t child_start(char *const argv[], const char *errlog, char *line,
			 size_t linesz)
{
	struct pollfd pfd;
	size_t n = 0;
	int p[2];
	pid_t pid;
	ssize_t r;
	long end = now_ms() + 20000;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p[1], 1);
		if (errlog) {
			int fd =
			    open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);

			if (fd >= 0)
				dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	line[0] = '\0';
	while (n + 1 < linesz && !strchr(line, '\n') && now_ms() < end) {
		pfd.fd = p[0];
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 500) <= 0)
			continue;
		r = read(p[0], line + n, linesz - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		line[n] = '\0';
	}
	close(p[0]);
	if (!strchr(line, '\n')) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	return pid;
}

static void child_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* The port in "1234", "127.0.0.1:1234" or "http://127.0.0.1:1234/". */
static int port_of(const char *line)
{
	const char *c = strrchr(line, ':');
	char *end;
	long v;

	v = strtol(c ? c + 1 : line, &end, 10);
	return v > 0 && v < 65536 ? (int)v : -1;
}

static size_t grab(char *p, size_t s, size_t n, void *ud)
{
	struct {
		char *b;
		size_t len;
	} *g = ud;
	char *nb = realloc(g->b, g->len + s * n + 1);

	if (!nb)
		return 0;
	memcpy(nb + g->len, p, s * n);
	g->len += s * n;
	nb[g->len] = '\0';
	g->b = nb;
	return s * n;
}

/* GET a test-helper path of the hostile server; malloc'd body. */
static char *hs_get(const char *path)
{
	struct {
		char *b;
		size_t len;
	} g = {NULL, 0};
	char *url = tu_strf("%s%s", hs_url, path);
	CURL *e = curl_easy_init();

	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, grab);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &g);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
	if (curl_easy_perform(e) != CURLE_OK) {
		free(g.b);
		g.b = NULL;
	}
	curl_easy_cleanup(e);
	free(url);
	return g.b;
}

static long hs_count(const char *key)
{
	char *p = tu_strf("/_count/%s", key), *b = hs_get(p);
	long v = b ? strtol(b, NULL, 10) : -1;

	free(p);
	free(b);
	return v;
}

/* The last request the server saw for case key, as JSON (caller puts). */
static json_object *hs_last(const char *key)
{
	char *p = tu_strf("/_last/%s", key), *b = hs_get(p);
	json_object *o = b ? json_tokener_parse(b) : NULL;

	free(p);
	free(b);
	return o;
}

static const char *js(json_object *o, const char *k1, const char *k2)
{
	json_object *v = NULL;

	if (!o || !json_object_object_get_ex(o, k1, &v))
		return "";
	if (k2 && !json_object_object_get_ex(v, k2, &v))
		return "";
	return json_object_get_string(v);
}

/* The body of the last request of case key, parsed as JSON. */
static json_object *hs_last_body(const char *key)
{
	json_object *l = hs_last(key);
	json_object *b = json_tokener_parse(js(l, "body", NULL));

	json_object_put(l);
	return b;
}

static struct nox_backend *hs_new(const char *token, int retries,
				  long timeout_ms, bool v1_only)
{
	struct nox_http_opts o = {0};
	struct nox_backend *b = NULL;
	struct nox_err err;
	char url[80];

	/* a trailing slash, which the client strips */
	snprintf(url, sizeof(url), "%s/", hs_url);
	o.base_url = url;
	o.token = token;
	o.retries = retries;
	o.timeout_ms = timeout_ms;
	o.v1_only = v1_only;
	CU_ASSERT_EQUAL_FATAL(nox_backend_http_new(&o, &b, &err), 0);
	return b;
}

static long maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static const char *const argv_echo[] = {"echo", "a b", NULL};

/* ---- hostile server: bounded memory (run first, for the RSS peak) ------ */

static void test_huge_body(void)
{
	struct nox_backend *b = hs_new(NULL, -1, 60000, false);
	struct nox_exec_req req = {.argv = argv_echo};
	struct nox_exec_result res;
	struct nox_err err;
	long before = maxrss_kb();

	/* 100 MiB stdout with Content-Length: refused before buffering */
	CU_ASSERT_EQUAL(nox_backend_exec(b, "huge", &req, &res, &err), -EFBIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "too large"));
	CU_ASSERT(maxrss_kb() - before < 32 * 1024);
	/* chunked, no length: stopped at the 64 MiB cap, never 100 MiB+ */
	CU_ASSERT_EQUAL(nox_backend_exec(b, "hugechunked", &req, &res, &err),
			-EFBIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "too large"));
	CU_ASSERT(maxrss_kb() - before < 200 * 1024);
	nox_backend_free(b);
}

/* ---- hostile server: the happy path and what the client sends --------- */

static void test_construct(void)
{
	struct nox_http_opts o = {0};
	struct nox_backend *b = NULL;
	struct nox_err err;
	char *old = getenv("NOXRUNNER_BASE_URL");

	old = old ? strdup(old) : NULL;
	unsetenv("NOXRUNNER_BASE_URL");
	CU_ASSERT_EQUAL(nox_backend_http_new(&o, &b, &err), -EINVAL);
	CU_ASSERT_PTR_NULL(b);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "NOXRUNNER_BASE_URL"));
	CU_ASSERT_EQUAL(nox_backend_http_new(NULL, &b, &err), -EINVAL);
	setenv("NOXRUNNER_BASE_URL", hs_url, 1);
	CU_ASSERT_EQUAL(nox_backend_http_new(NULL, &b, &err), 0);
	CU_ASSERT_STRING_EQUAL(nox_backend_name(b), "http");
	CU_ASSERT_EQUAL(nox_backend_health(b, &err), 0);
	CU_ASSERT_FALSE(nox_backend_has(b, NOX_OP_WORKSPACE_FD));
	CU_ASSERT_EQUAL(nox_backend_workspace_fd(b, "ok", &err), -ENOSYS);
	nox_backend_free(b);
	if (old)
		setenv("NOXRUNNER_BASE_URL", old, 1);
	else
		unsetenv("NOXRUNNER_BASE_URL");
	free(old);
	o.base_url = "ftp://127.0.0.1/";
	CU_ASSERT_EQUAL(nox_backend_http_new(&o, &b, &err), -EINVAL);
	o.base_url = hs_url;
	o.token = "a\r\nX-Injected: 1";
	CU_ASSERT_EQUAL(nox_backend_http_new(&o, &b, &err), -EINVAL);
	nox_backend_free(NULL);
}

static void test_v1_ok(void)
{
	static const char *const env[] = {"K=V", "E=", NULL};
	struct nox_backend *b = hs_new("tok", 0, 0, false);
	struct nox_create_opts co = {.ttl_seconds = 120, .image = "img"};
	struct nox_exec_req req = {.argv = argv_echo,
				   .env = env,
				   .workdir = "/workspace/sub",
				   .timeout_seconds = 5};
	const char *dest = "/workspace/a b&c#d+e%";
	struct nox_sandbox_info info;
	struct nox_exec_result res;
	struct nox_err err;
	json_object *l, *rq;
	char peer[16];
	char *dir = tu_mkdtemp("http-v1"), *up = tu_strf("%s/up", dir),
	     *down = tu_strf("%s/down", dir), *got;
	size_t len;
	int fd;

	CU_ASSERT_EQUAL(nox_backend_health(b, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_create(b, "ok", &co, &info, &err), 0);
	CU_ASSERT_STRING_EQUAL(info.pod_name, "pod-ok");
	CU_ASSERT_STRING_EQUAL(info.expires_at, "2030-01-01T00:00:00Z");
	CU_ASSERT_EQUAL(info.ttl_seconds, 120);
	l = hs_last("ok");
	CU_ASSERT_STRING_EQUAL(js(l, "method", NULL), "PUT");
	CU_ASSERT_STRING_EQUAL(js(l, "auth", NULL), "Bearer tok");
	CU_ASSERT_STRING_EQUAL(js(l, "ctype", NULL), "application/json");
	json_object_put(l);
	rq = hs_last_body("ok");
	CU_ASSERT_STRING_EQUAL(js(rq, "ttlSeconds", NULL), "120");
	CU_ASSERT_STRING_EQUAL(js(rq, "image", NULL), "img");
	json_object_put(rq);

	CU_ASSERT_EQUAL(nox_backend_touch(b, "ok", &err), 0);
	l = hs_last("ok");
	CU_ASSERT_STRING_EQUAL(js(l, "method", NULL), "POST");
	CU_ASSERT_STRING_EQUAL(js(l, "path", NULL), "/v1/sandboxes/ok/touch");
	/* keep-alive: the next call comes over the same connection */
	snprintf(peer, sizeof(peer), "%s", js(l, "peer", NULL));
	json_object_put(l);
	CU_ASSERT_EQUAL(nox_backend_touch(b, "ok", &err), 0);
	l = hs_last("ok");
	CU_ASSERT(peer[0] && strcmp(js(l, "peer", NULL), peer) == 0);
	json_object_put(l);

	/* the server echoes the exec request as stdout */
	CU_ASSERT_EQUAL(nox_backend_exec(b, "ok", &req, &res, &err), 0);
	CU_ASSERT_EQUAL(res.exit_code, 3);
	CU_ASSERT_EQUAL(res.duration_ms, 7);
	CU_ASSERT_EQUAL(res.err_len, 3);
	CU_ASSERT(res.err && res.err[1] == '\0' && res.err[2] == 'r');
	rq = json_tokener_parse(res.out ? res.out : "");
	CU_ASSERT_PTR_NOT_NULL(rq);
	CU_ASSERT_STRING_EQUAL(js(rq, "workdir", NULL), "/workspace/sub");
	CU_ASSERT_STRING_EQUAL(js(rq, "timeoutSeconds", NULL), "5");
	CU_ASSERT_STRING_EQUAL(js(rq, "env", "K"), "V");
	CU_ASSERT_STRING_EQUAL(js(rq, "env", "E"), "");
	CU_ASSERT_PTR_NOT_NULL(strstr(js(rq, "cmd", NULL), "a b"));
	json_object_put(rq);
	nox_exec_result_cleanup(&res);

	/* upload from offset 3 of the fd; query value with space & # + % */
	CU_ASSERT_EQUAL(tu_write_file(up, "XXXtar-bytes\001\002", 14), 0);
	fd = open(up, O_RDONLY);
	CU_ASSERT_EQUAL(lseek(fd, 3, SEEK_SET), 3);
	CU_ASSERT_EQUAL(nox_backend_upload(b, "ok", dest, fd, &err), 0);
	close(fd);
	l = hs_last("ok");
	CU_ASSERT_STRING_EQUAL(js(l, "query", "dest"), dest);
	CU_ASSERT_STRING_EQUAL(js(l, "ctype", NULL), "application/x-tar");
	CU_ASSERT_STRING_EQUAL(js(l, "bodylen", NULL), "11");
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(js(l, "rawquery", NULL), "a%20b%26c%23d%2Be%25"));
	json_object_put(l);
	fd = open(down, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_EQUAL(nox_backend_download(b, "ok", dest, fd, &err), 0);
	close(fd);
	got = tu_read_file(down, &len);
	CU_ASSERT(got && len == 11 &&
		  memcmp(got, "tar-bytes\001\002", 11) == 0);
	free(got);
	/* nothing there: the body's errno */
	fd = open(down, O_RDWR | O_TRUNC);
	CU_ASSERT_EQUAL(
	    nox_backend_download(b, "ok", "/workspace/none", fd, &err),
	    -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "nothing uploaded there"));
	CU_ASSERT_EQUAL(lseek(fd, 0, SEEK_END), 0); /* error body not written */
	close(fd);
	/* client-side path check: nothing is sent */
	CU_ASSERT_EQUAL(nox_backend_download(b, "ok", "/etc/passwd", 1, &err),
			-EINVAL);
	CU_ASSERT_EQUAL(nox_backend_upload(b, "ok", "/workspace/../x", 0, &err),
			-EINVAL);

	CU_ASSERT_EQUAL(nox_backend_info(b, "ok", &info, &err), 0);
	CU_ASSERT_STRING_EQUAL(info.pod_name, "pod-ok");
	CU_ASSERT_EQUAL(info.ttl_seconds, 900);
	CU_ASSERT_EQUAL(nox_backend_delete(b, "ok", &err), 0);
	l = hs_last("ok");
	CU_ASSERT_STRING_EQUAL(js(l, "method", NULL), "DELETE");
	json_object_put(l);
	/* bad ids never reach the wire */
	CU_ASSERT_EQUAL(nox_backend_touch(b, "../ok", &err), -EINVAL);
	CU_ASSERT_EQUAL(nox_backend_touch(b, "a b", &err), -EINVAL);

	nox_backend_free(b);
	tu_rm_rf(dir);
	free(up);
	free(down);
	free(dir);
}

static int collect_ids(const char *id, void *ud)
{
	char *s = ud;

	if (strlen(s) + strlen(id) + 2 < 64) {
		strncat(s, id, 63 - strlen(s));
		strncat(s, ",", 63 - strlen(s));
	}
	return strcmp(id, "stop") == 0 ? 42 : 0;
}

static int stop_at_first(const char *id, void *ud)
{
	(void)id;
	++*(int *)ud;
	return 7;
}

static void test_sandboxes(void)
{
	struct nox_backend *b = hs_new(NULL, 0, 0, false);
	struct nox_err err;
	char ids[64] = "";
	int n = 0;

	CU_ASSERT_TRUE(nox_backend_has(b, NOX_OP_LIST_SANDBOXES));
	CU_ASSERT_EQUAL(nox_backend_list_sandboxes(b, collect_ids, ids, &err),
			0);
	CU_ASSERT_STRING_EQUAL(ids, "ok,two,");
	CU_ASSERT_EQUAL(nox_backend_list_sandboxes(b, stop_at_first, &n, &err),
			7);
	CU_ASSERT_EQUAL(n, 1);
	nox_backend_free(b);
	/* a listing holding "../etc": refused before any callback */
	b = hs_new("badlist", 0, 0, false);
	n = 0;
	CU_ASSERT_EQUAL(nox_backend_list_sandboxes(b, stop_at_first, &n, &err),
			-EPROTO);
	CU_ASSERT_EQUAL(n, 0);
	nox_backend_free(b);
}

struct ents {
	int n;
	char names[8][16];
	mode_t modes[8];
};

static int collect_ents(const char *name, const struct stat *st, void *ud)
{
	struct ents *e = ud;

	if (e->n < 8) {
		snprintf(e->names[e->n], sizeof(e->names[0]), "%s", name);
		e->modes[e->n] = st->st_mode;
	}
	e->n++;
	return 0;
}

static void test_fs_ok(void)
{
	struct nox_backend *b = hs_new(NULL, 0, 0, false);
	struct timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
	struct timespec ts2[2] = {{5, 6}, {7, 8}};
	struct ents e = {0};
	struct statvfs sv;
	struct nox_err err;
	json_object *l;
	struct stat st;
	char buf[64];
	long ext = hs_count("ext");
	int op, i;

	for (op = 0; op < NOX_OP_WORKSPACE_FD; op++)
		CU_ASSERT_TRUE(nox_backend_has(b, (enum nox_op)op));
	CU_ASSERT_EQUAL(hs_count("ext"), ext + 1); /* probed once */

	CU_ASSERT_EQUAL(nox_backend_stat(b, "ok", "", &st, &err), 0);
	CU_ASSERT_TRUE(S_ISDIR(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0755);
	CU_ASSERT_EQUAL(nox_backend_stat(b, "ok", "f", &st, &err), 0);
	CU_ASSERT_EQUAL(st.st_mode, S_IFREG | 0644);
	CU_ASSERT_EQUAL(st.st_size, 1024);
	CU_ASSERT_EQUAL(st.st_uid, 1000);
	CU_ASSERT_EQUAL(st.st_ino, 42);
	CU_ASSERT_EQUAL(st.st_mtim.tv_sec, 1500000000);
	CU_ASSERT_EQUAL(st.st_mtim.tv_nsec, 123456789);
	CU_ASSERT_EQUAL(st.st_atim.tv_sec, -1); /* -1 ns: before the epoch */
	CU_ASSERT_EQUAL(st.st_atim.tv_nsec, 999999999);
	CU_ASSERT_EQUAL(nox_backend_stat(b, "ok", "link", &st, &err), 0);
	CU_ASSERT_TRUE(S_ISLNK(st.st_mode));
	CU_ASSERT_EQUAL(nox_backend_stat(b, "ok", "other", &st, &err), 0);
	CU_ASSERT_TRUE(S_ISREG(st.st_mode));
	CU_ASSERT_EQUAL(nox_backend_stat(b, "ok", "missing", &st, &err),
			-ENOENT);
	CU_ASSERT_EQUAL(nox_backend_stat(b, "ok", "a/../b", &st, &err),
			-EINVAL);
	l = hs_last("ok");
	CU_ASSERT_STRING_EQUAL(js(l, "query", "path"), "missing");
	json_object_put(l);

	CU_ASSERT_EQUAL(nox_backend_list(b, "ok", "", collect_ents, &e, &err),
			0);
	CU_ASSERT_EQUAL(e.n, 3);
	CU_ASSERT_STRING_EQUAL(e.names[0], "a");
	CU_ASSERT_STRING_EQUAL(e.names[1], "d");
	CU_ASSERT_TRUE(S_ISDIR(e.modes[1]));
	CU_ASSERT_STRING_EQUAL(e.names[2], "\xff\xfe"); /* name64 */

	/* ranges: the file is bytes 0..255 four times */
	CU_ASSERT_EQUAL(nox_backend_read(b, "ok", "f", 100, buf, 50, &err), 50);
	for (i = 0; i < 50; i++)
		CU_ASSERT_EQUAL((unsigned char)buf[i], 100 + i);
	l = hs_last("ok");
	CU_ASSERT_STRING_EQUAL(js(l, "range", NULL), "bytes=100-149");
	json_object_put(l);
	CU_ASSERT_EQUAL(nox_backend_read(b, "ok", "f", 1000, buf, 64, &err),
			24);
	CU_ASSERT_EQUAL((unsigned char)buf[0], 1000 % 256);
	CU_ASSERT_EQUAL(nox_backend_read(b, "ok", "f", 5000, buf, 64, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_read(b, "ok", "f", 0, buf, 0, &err), 0);

	CU_ASSERT_EQUAL(nox_backend_write(b, "ok", "f", 7, "hello", 5, &err),
			5);
	l = hs_last("ok");
	CU_ASSERT_STRING_EQUAL(js(l, "method", NULL), "PUT");
	CU_ASSERT_STRING_EQUAL(js(l, "query", "offset"), "7");
	CU_ASSERT_STRING_EQUAL(js(l, "query", "path"), "f");
	CU_ASSERT_STRING_EQUAL(js(l, "body", NULL), "hello");
	json_object_put(l);

#define LASTOP(key, want)                                                      \
	do {                                                                   \
		json_object *q_ = hs_last_body("ok");                          \
		CU_ASSERT_STRING_EQUAL(js(q_, key, NULL), want);               \
		json_object_put(q_);                                           \
	} while (0)
	CU_ASSERT_EQUAL(nox_backend_createfile(b, "ok", "n", 0640, true, &err),
			0);
	LASTOP("op", "create");
	LASTOP("mode", "416");
	LASTOP("excl", "true");
	CU_ASSERT_EQUAL(nox_backend_truncate(b, "ok", "n", 12345, &err), 0);
	LASTOP("size", "12345");
	CU_ASSERT_EQUAL(nox_backend_mkdir(b, "ok", "d/e", 0700, &err), 0);
	LASTOP("op", "mkdir");
	LASTOP("path", "d/e");
	LASTOP("mode", "448");
	CU_ASSERT_EQUAL(nox_backend_unlink(b, "ok", "n", &err), 0);
	LASTOP("op", "unlink");
	CU_ASSERT_EQUAL(nox_backend_rmdir(b, "ok", "full", &err), -ENOTEMPTY);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "directory not empty"));
	CU_ASSERT_EQUAL(
	    nox_backend_rename(b, "ok", "a", "b", RENAME_NOREPLACE, &err), 0);
	LASTOP("from", "a");
	LASTOP("to", "b");
	LASTOP("flags", "1");
	CU_ASSERT_EQUAL(nox_backend_rename(b, "ok", "a", "b", 4, &err),
			-EINVAL);
	CU_ASSERT_EQUAL(nox_backend_chmod(b, "ok", "a", 04755, &err), 0);
	LASTOP("mode", "2541");
	CU_ASSERT_EQUAL(nox_backend_utimens(b, "ok", "a", ts, &err), 0);
	LASTOP("atimeNs", "-1");
	LASTOP("mtimeNs", "-2");
	CU_ASSERT_EQUAL(nox_backend_utimens(b, "ok", "a", ts2, &err), 0);
	LASTOP("atimeNs", "5000000006");
	LASTOP("mtimeNs", "7000000008");
	CU_ASSERT_EQUAL(nox_backend_symlink(b, "ok", "../t x", "s", &err), 0);
	LASTOP("target", "../t x");
	LASTOP("path", "s");
	CU_ASSERT_EQUAL(nox_backend_link(b, "ok", "a", "h", &err), 0);
	LASTOP("op", "link");
	LASTOP("to", "h");
	/* a name that is not UTF-8 travels as path64 */
	CU_ASSERT_EQUAL(nox_backend_unlink(b, "ok", "\xff", &err), 0);
	LASTOP("path64", "/w==");
	LASTOP("path", "");
#undef LASTOP
	/* readlink: target64 decoded, cut to the buffer */
	CU_ASSERT_EQUAL(
	    nox_backend_readlink(b, "ok", "s", buf, sizeof(buf), &err), 6);
	CU_ASSERT_EQUAL(memcmp(buf, "tgt\xff/x", 7), 0);
	CU_ASSERT_EQUAL(nox_backend_readlink(b, "ok", "s", buf, 4, &err), 3);
	CU_ASSERT_STRING_EQUAL(buf, "tgt");

	CU_ASSERT_EQUAL(nox_backend_statfs(b, "ok", &sv, &err), 0);
	CU_ASSERT_EQUAL(sv.f_bsize, 4096);
	CU_ASSERT_EQUAL(sv.f_blocks, 1000);
	CU_ASSERT_EQUAL(sv.f_bavail, 400);
	CU_ASSERT_EQUAL(sv.f_ffree, 50);
	CU_ASSERT_EQUAL(sv.f_namemax, 255);
	CU_ASSERT_EQUAL(hs_count("ext"), ext + 1); /* still cached */
	nox_backend_free(b);
}

static void test_discovery(void)
{
	struct nox_sandbox_info info;
	struct nox_backend *b;
	struct nox_err err;
	struct stat st;
	long ext = hs_count("ext");

	/* v1_only: no probe at all, file ops ENOSYS */
	b = hs_new(NULL, 0, 0, true);
	CU_ASSERT_FALSE(nox_backend_has(b, NOX_OP_STAT));
	CU_ASSERT_FALSE(nox_backend_has(b, NOX_OP_LIST_SANDBOXES));
	CU_ASSERT_EQUAL(nox_backend_stat(b, "ok", "f", &st, &err), -ENOSYS);
	CU_ASSERT_EQUAL(
	    nox_backend_list_sandboxes(b, stop_at_first, NULL, &err), -ENOSYS);
	/* info falls back to touch: expiresAt only */
	CU_ASSERT_EQUAL(nox_backend_info(b, "ok", &info, &err), 0);
	CU_ASSERT_STRING_EQUAL(info.expires_at, "2031-01-01T00:00:00Z");
	CU_ASSERT_STRING_EQUAL(info.pod_name, "");
	CU_ASSERT_EQUAL(nox_backend_info(b, "plain404", &info, &err), -ENOENT);
	CU_ASSERT_EQUAL(hs_count("ext"), ext);
	nox_backend_free(b);

	/* a server answering 404 / garbage / unknown versions: v1 only */
	b = hs_new("v1only", 0, 0, false);
	CU_ASSERT_FALSE(nox_backend_has(b, NOX_OP_READ));
	CU_ASSERT_FALSE(nox_backend_has(b, NOX_OP_WRITE));
	CU_ASSERT_EQUAL(nox_backend_read(b, "ok", "f", 0, &st, 1, &err),
			-ENOSYS);
	CU_ASSERT_EQUAL(hs_count("ext"), ext + 1);
	nox_backend_free(b);
	b = hs_new("extgarbage", 0, 0, false);
	CU_ASSERT_FALSE(nox_backend_has(b, NOX_OP_STAT));
	nox_backend_free(b);
	b = hs_new("extv2", 0, 0, false);
	CU_ASSERT_FALSE(nox_backend_has(b, NOX_OP_STAT));
	CU_ASSERT_FALSE(nox_backend_has(b, NOX_OP_LIST_SANDBOXES));
	nox_backend_free(b);
	CU_ASSERT_EQUAL(hs_count("ext"), ext + 3);
}

/* ---- hostile server: malformed answers --------------------------------- */

static void test_malformed_json(void)
{
	static const char *const cases[] = {
	    "malformed", "truncated", "wrongexit", "wrongstdout", "missing",
	    "notobject", "trailing",  "deep",	   "nul",	  NULL,
	};
	struct nox_backend *b = hs_new(NULL, 0, 0, false);
	struct nox_exec_req req = {.argv = argv_echo};
	struct nox_sandbox_info info;
	struct nox_exec_result res;
	struct nox_err err;
	int i;

	for (i = 0; cases[i]; i++) {
		CU_ASSERT_EQUAL(nox_backend_exec(b, cases[i], &req, &res, &err),
				-EPROTO);
		CU_ASSERT_PTR_NULL(res.out);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/exec"));
		CU_ASSERT_EQUAL(
		    nox_backend_create(b, cases[i], NULL, &info, &err),
		    -EPROTO);
		CU_ASSERT(strlen(err.msg) > 10);
	}
	CU_ASSERT_EQUAL(nox_backend_create(b, "bigpod", NULL, &info, &err),
			-EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "podName"));
	nox_backend_free(b);
}

static int count_ents(const char *name, const struct stat *st, void *ud)
{
	(void)name;
	(void)st;
	++*(int *)ud;
	return 0;
}

static void test_fs_hostile(void)
{
	struct nox_backend *b = hs_new(NULL, 0, 0, false);
	struct nox_err err;
	struct stat st;
	char buf[16];
	int n = 0;

	CU_ASSERT_EQUAL(nox_backend_stat(b, "fsbad", "f", &st, &err), -EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "mode"));
	/* "../evil" and "a/b" names: refused, the callback never runs */
	CU_ASSERT_EQUAL(nox_backend_list(b, "fsbad", "", count_ents, &n, &err),
			-EPROTO);
	CU_ASSERT_EQUAL(
	    nox_backend_list(b, "fsslash", "", count_ents, &n, &err), -EPROTO);
	CU_ASSERT_EQUAL(n, 0);
	/* more than the range asked for; a range starting elsewhere */
	CU_ASSERT_EQUAL(nox_backend_read(b, "fsbig", "f", 0, buf, 10, &err),
			-EPROTO);
	CU_ASSERT_EQUAL(nox_backend_read(b, "fsshift", "f", 0, buf, 10, &err),
			-EPROTO);
	/* a server ignoring Range: the client skips to the offset */
	CU_ASSERT_EQUAL(
	    nox_backend_read(b, "fsnorange", "f", 300, buf, 10, &err), 10);
	CU_ASSERT_EQUAL((unsigned char)buf[0], 300 % 256);
	CU_ASSERT_EQUAL(nox_backend_write(b, "fsover", "f", 0, "abc", 3, &err),
			-EPROTO);
	nox_backend_free(b);
}

/* ---- hostile server: transport failures, retries, status mapping ------- */

static void test_stall(void)
{
	struct nox_backend *b = hs_new(NULL, 3, 1500, false);
	struct nox_sandbox_info info;
	struct nox_err err;
	long t0, n0 = hs_count("stall");
	int fd = open("/dev/null", O_WRONLY);

	t0 = now_ms();
	CU_ASSERT_EQUAL(nox_backend_create(b, "stall", NULL, &info, &err),
			-ETIMEDOUT);
	CU_ASSERT(now_ms() - t0 >= 1400 && now_ms() - t0 < 3000);
	t0 = now_ms();
	CU_ASSERT_EQUAL(nox_backend_download(b, "stall", NULL, fd, &err),
			-ETIMEDOUT);
	CU_ASSERT(now_ms() - t0 < 3000);
	/* the deadline covers the retries: one attempt each */
	CU_ASSERT_EQUAL(hs_count("stall"), n0 + 2);
	close(fd);
	nox_backend_free(b);
}

/*
 * A transfer is bounded by progress, a metadata call by its deadline:
 * 8 KiB at 4 KiB/s (2 s) passes a 1 s bound as a download, not as a
 * create.
 */
static void test_trickle(void)
{
	struct nox_backend *b = hs_new(NULL, -1, 1000, false);
	struct nox_sandbox_info info;
	struct nox_err err;
	char *dir = tu_mkdtemp("http-trickle"), *p = tu_strf("%s/o", dir);
	int fd = open(p, O_RDWR | O_CREAT, 0600);
	struct stat st;
	long t0;

	t0 = now_ms();
	CU_ASSERT_EQUAL(nox_backend_download(b, "trickle", NULL, fd, &err), 0);
	CU_ASSERT(now_ms() - t0 >= 1500);
	CU_ASSERT(fstat(fd, &st) == 0 && st.st_size == 8192);
	t0 = now_ms();
	CU_ASSERT_EQUAL(nox_backend_create(b, "trickle", NULL, &info, &err),
			-ETIMEDOUT);
	CU_ASSERT(now_ms() - t0 < 1800);
	close(fd);
	unlink(p);
	rmdir(dir);
	free(p);
	free(dir);
	nox_backend_free(b);
}

static void test_reset(void)
{
	struct nox_backend *b = hs_new(NULL, 3, 10000, false);
	struct nox_exec_req req = {.argv = argv_echo};
	struct nox_exec_result res;
	struct nox_err err;
	char *dir = tu_mkdtemp("http-reset"), *p = tu_strf("%s/o", dir);
	int fd = open(p, O_RDWR | O_CREAT, 0600);

	CU_ASSERT_EQUAL(nox_backend_exec(b, "reset", &req, &res, &err), -EIO);
	CU_ASSERT_EQUAL(hs_count("reset"), 1); /* exec: never retried */
	CU_ASSERT_EQUAL(nox_backend_download(b, "reset", NULL, fd, &err), -EIO);
	CU_ASSERT_EQUAL(hs_count("reset"), 1 + 4);
	close(fd);
	nox_backend_free(b);
	tu_rm_rf(dir);
	free(p);
	free(dir);
}

/* Retries replay the upload from its start and rewrite the download. */
static void test_retry_replay(void)
{
	struct nox_backend *b = hs_new(NULL, 0, 0, false);
	const char data[] = "the whole archive, every byte";
	struct nox_err err;
	char *dir = tu_mkdtemp("http-replay"), *up = tu_strf("%s/up", dir),
	     *down = tu_strf("%s/down", dir), *got;
	size_t len;
	int fd;

	CU_ASSERT_EQUAL(tu_write_file(up, data, sizeof(data)), 0);
	fd = open(up, O_RDONLY);
	CU_ASSERT_EQUAL(
	    nox_backend_upload(b, "flaky503up", "/workspace/u", fd, &err), 0);
	close(fd);
	CU_ASSERT_EQUAL(hs_count("flaky503up"), 2);
	fd = open(down, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_EQUAL(write(fd, "keep:", 5), 5);
	CU_ASSERT_EQUAL(
	    nox_backend_download(b, "flaky503up", "/workspace/u", fd, &err), 0);
	close(fd);
	CU_ASSERT_EQUAL(hs_count("flaky503up"), 4);
	got = tu_read_file(down, &len);
	CU_ASSERT(got && len == 5 + sizeof(data) &&
		  memcmp(got, "keep:", 5) == 0 &&
		  memcmp(got + 5, data, sizeof(data)) == 0);
	free(got);

	/* the first download is cut mid-body: its bytes must not stay */
	fd = open(up, O_RDONLY);
	CU_ASSERT_EQUAL(nox_backend_upload(b, "resetonce", NULL, fd, &err), 0);
	close(fd);
	fd = open(down, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_EQUAL(
	    nox_backend_download(b, "resetonce", "/workspace", fd, &err), 0);
	close(fd);
	CU_ASSERT_EQUAL(hs_count("resetonce"), 3);
	got = tu_read_file(down, &len);
	CU_ASSERT(got && len == sizeof(data) &&
		  memcmp(got, data, sizeof(data)) == 0);
	free(got);

	/* a DELETE whose answer was lost: the retry's 404 means done */
	CU_ASSERT_EQUAL(nox_backend_delete(b, "gone", &err), 0);
	CU_ASSERT_EQUAL(hs_count("gone"), 2);
	CU_ASSERT_EQUAL(nox_backend_delete(b, "plain404", &err), -ENOENT);
	nox_backend_free(b);
	tu_rm_rf(dir);
	free(up);
	free(down);
	free(dir);
}

static void test_storms(void)
{
	struct nox_backend *b = hs_new(NULL, 0, 0, false); /* 3 retries */
	struct nox_exec_req req = {.argv = argv_echo};
	struct nox_sandbox_info info;
	struct nox_exec_result res;
	struct nox_err err;
	int fd = open("/dev/null", O_WRONLY);
	long t0 = now_ms();

	CU_ASSERT_EQUAL(nox_backend_create(b, "storm500", NULL, &info, &err),
			-EIO);
	CU_ASSERT(now_ms() - t0 >= 650); /* 100 + 200 + 400 ms backoff */
	CU_ASSERT_EQUAL(hs_count("storm500"), 4);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "storm"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "HTTP 500"));
	CU_ASSERT_EQUAL(nox_backend_exec(b, "storm500", &req, &res, &err),
			-EIO);
	CU_ASSERT_EQUAL(hs_count("storm500"), 5);
	/* a 500 that names its errno is not transient */
	CU_ASSERT_EQUAL(nox_backend_touch(b, "storm500errno", &err), -EIO);
	CU_ASSERT_EQUAL(hs_count("storm500errno"), 1);
	CU_ASSERT_EQUAL(nox_backend_download(b, "storm502", NULL, fd, &err),
			-EIO);
	CU_ASSERT_EQUAL(hs_count("storm502"), 4);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bad gateway"));
	/* 503 then 200: the retry succeeds; exec is not retried */
	CU_ASSERT_EQUAL(nox_backend_create(b, "flaky503", NULL, &info, &err),
			0);
	CU_ASSERT_EQUAL(hs_count("flaky503"), 2);
	CU_ASSERT_STRING_EQUAL(info.pod_name, "pod-flaky503");
	CU_ASSERT_EQUAL(nox_backend_exec(b, "flaky503", &req, &res, &err),
			-EAGAIN);
	CU_ASSERT_EQUAL(hs_count("flaky503"), 3);
	close(fd);
	nox_backend_free(b);
}

static void test_status_map(void)
{
	struct nox_backend *b = hs_new(NULL, -1, 0, false);
	struct nox_exec_req req = {.argv = argv_echo};
	struct nox_exec_result res;
	struct nox_err err;
	int fd = open("/dev/null", O_RDONLY);

	CU_ASSERT_EQUAL(nox_backend_touch(b, "errno", &err), -ENOTEMPTY);
	CU_ASSERT_EQUAL(err.code, ENOTEMPTY);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "x marks the spot"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "POST"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/v1/sandboxes/errno/touch"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "409"));
	CU_ASSERT_EQUAL(nox_backend_touch(b, "errnobad", &err), -EEXIST);
	CU_ASSERT_EQUAL(nox_backend_touch(b, "errnonum", &err), -ENOENT);
	CU_ASSERT_EQUAL(nox_backend_touch(b, "plain404", &err), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no such sandbox here"));
	CU_ASSERT_EQUAL(nox_backend_touch(b, "status418", &err), -EIO);
	CU_ASSERT_EQUAL(nox_backend_exec(b, "e400", &req, &res, &err), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "empty command"));
	CU_ASSERT_EQUAL(nox_backend_touch(b, "e403", &err), -EACCES);
	CU_ASSERT_EQUAL(nox_backend_upload(b, "e413", NULL, fd, &err), -EFBIG);
	CU_ASSERT_EQUAL(nox_backend_exec(b, "e503", &req, &res, &err), -EAGAIN);
	/* a redirect is not followed (its target is a closed port) */
	CU_ASSERT_EQUAL(nox_backend_touch(b, "redirect", &err), -EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "302"));
	nox_backend_free(b);
	close(fd);

	b = hs_new("wrong", 0, 0, false);
	CU_ASSERT_EQUAL(nox_backend_health(b, &err), -EACCES);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bad token"));
	CU_ASSERT_FALSE(nox_backend_has(b, NOX_OP_STAT));
	nox_backend_free(b);
}

/* ---- hostile server: hostile archives reach tar.c intact --------------- */

static void test_hostile_tars(void)
{
	static const char *const cases[] = {"tar_dotdot", "tar_abs",
					    "tar_symlink", "tar_dev", NULL};
	struct nox_backend *b = hs_new(NULL, 0, 0, false);
	struct nox_err err;
	struct stat st;
	char *dir = tu_mkdtemp("http-tars"), *p, *q;
	int i, fd, dfd;

	unlink("/tmp/nox-hostile-abs-evil");
	for (i = 0; cases[i]; i++) {
		p = tu_strf("%s/%s.tgz", dir, cases[i]);
		q = tu_strf("%s/%s", dir, cases[i]);
		fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
		CU_ASSERT_EQUAL(
		    nox_backend_download(b, cases[i], NULL, fd, &err), 0);
		CU_ASSERT(lseek(fd, 0, SEEK_END) > 20);
		lseek(fd, 0, SEEK_SET);
		mkdir(q, 0700);
		free(q);
		q = tu_strf("%s/%s/dest", dir, cases[i]);
		mkdir(q, 0700);
		free(q);
		q = tu_strf("%s/%s/outside", dir, cases[i]);
		mkdir(q, 0700);
		free(q);
		q = tu_strf("%s/%s/dest", dir, cases[i]);
		dfd = open(q, O_RDONLY | O_DIRECTORY);
		CU_ASSERT(nox_tar_extract(fd, dfd, NULL, &err) < 0);
		close(dfd);
		close(fd);
		free(q);
		q = tu_strf("%s/%s/x", dir, cases[i]);
		CU_ASSERT_NOT_EQUAL(lstat(q, &st), 0);
		free(q);
		q = tu_strf("%s/%s/outside/evil", dir, cases[i]);
		CU_ASSERT_NOT_EQUAL(lstat(q, &st), 0);
		free(q);
		q = tu_strf("%s/%s/dest/dev", dir, cases[i]);
		CU_ASSERT(lstat(q, &st) != 0 || !S_ISCHR(st.st_mode));
		free(q);
		free(p);
	}
	CU_ASSERT_NOT_EQUAL(lstat("/tmp/nox-hostile-abs-evil", &st), 0);
	nox_backend_free(b);
	tu_rm_rf(dir);
	free(dir);
}

static void test_gzip_bomb(void)
{
	struct nox_tar_limits lim = {.max_bytes = 8 << 20};
	struct nox_backend *b = hs_new(NULL, 0, 0, false);
	struct nox_err err;
	struct stat st;
	char *dir = tu_mkdtemp("http-bomb"), *p = tu_strf("%s/b.tgz", dir),
	     *q = tu_strf("%s/dest", dir), *f = tu_strf("%s/dest/bomb", dir);
	int fd, dfd;

	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	/* the download itself is small (about 250 KiB) and fine */
	CU_ASSERT_EQUAL(nox_backend_download(b, "tar_bomb", NULL, fd, &err), 0);
	CU_ASSERT(lseek(fd, 0, SEEK_END) < (2 << 20));
	lseek(fd, 0, SEEK_SET);
	mkdir(q, 0700);
	dfd = open(q, O_RDONLY | O_DIRECTORY);
	CU_ASSERT(nox_tar_extract(fd, dfd, &lim, &err) < 0);
	CU_ASSERT(lstat(f, &st) != 0 || st.st_size <= (8 << 20));
	close(dfd);
	close(fd);
	nox_backend_free(b);
	tu_rm_rf(dir);
	free(p);
	free(q);
	free(f);
	free(dir);
}

/* ---- dead servers ------------------------------------------------------- */

/* A loopback TCP socket bound to port 0; listening when listen_it. */
static int sock_on_port(bool listen_it, int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &al) < 0 ||
	    (listen_it && listen(s, 16) < 0)) {
		if (s >= 0)
			close(s);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return s;
}

static struct nox_backend *port_new(int port, long timeout_ms)
{
	struct nox_http_opts o = {.timeout_ms = timeout_ms};
	struct nox_backend *b = NULL;
	char url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	o.base_url = url;
	CU_ASSERT_EQUAL(nox_backend_http_new(&o, &b, NULL), 0);
	return b;
}

static void test_dead_server(void)
{
	struct nox_backend *b;
	struct nox_err err;
	struct stat st;
	int port, s;
	long t0;

	/* bound, never listening: connection refused, with 3 quick retries */
	s = sock_on_port(false, &port);
	CU_ASSERT_FATAL(s >= 0);
	b = port_new(port, 0);
	t0 = now_ms();
	CU_ASSERT_EQUAL(nox_backend_health(b, &err), -ECONNREFUSED);
	CU_ASSERT(now_ms() - t0 < 2500);
	CU_ASSERT_FALSE(nox_backend_has(b, NOX_OP_STAT));
	CU_ASSERT_EQUAL(nox_backend_stat(b, "x", "f", &st, &err), -ENOSYS);
	nox_backend_free(b);
	close(s);

	/* listening, never accepting or answering: the deadline */
	s = sock_on_port(true, &port);
	CU_ASSERT_FATAL(s >= 0);
	b = port_new(port, 1000);
	t0 = now_ms();
	CU_ASSERT_EQUAL(nox_backend_health(b, &err), -ETIMEDOUT);
	CU_ASSERT(now_ms() - t0 >= 900 && now_ms() - t0 < 2500);
	t0 = now_ms();
	CU_ASSERT_EQUAL(nox_backend_touch(b, "x", &err), -ETIMEDOUT);
	CU_ASSERT(now_ms() - t0 < 2500);
	nox_backend_free(b);
	close(s);
}

/* ---- threads ----------------------------------------------------------- */

struct worker {
	struct nox_backend *b;
	char id[32];
	const char *dir;
	int fails;
	bool noxd;
};

static void *hs_worker(void *ud)
{
	struct worker *w = ud;
	struct nox_exec_req req = {.argv = argv_echo};
	struct nox_exec_result res;
	struct nox_err err;
	int i;

	for (i = 0; i < 20; i++) {
		if (nox_backend_exec(w->b, "ok", &req, &res, &err) != 0 ||
		    res.exit_code != 3)
			w->fails++;
		nox_exec_result_cleanup(&res);
	}
	return NULL;
}

static void test_threads_hostile(void)
{
	struct nox_backend *b = hs_new(NULL, 0, 0, false);
	struct worker w[8];
	pthread_t t[8];
	int i;

	for (i = 0; i < 8; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].b = b;
		CU_ASSERT_EQUAL(pthread_create(&t[i], NULL, hs_worker, &w[i]),
				0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		CU_ASSERT_EQUAL(w[i].fails, 0);
	}
	nox_backend_free(b);
}

/* ---- real noxd ---------------------------------------------------------- */

struct noxd {
	pid_t pid;
	char url[64];
	char *dir;
	char *log; /* noxd's stderr, removed unless a test failed */
};

static char *noxd_path(void)
{
	const char *root = getenv("NOX_BUILD_ROOT");
	char *p;

	if (!root)
		return NULL;
	p = tu_strf("%s/tools/noxd/noxd", root);
	if (access(p, X_OK) != 0) {
		free(p);
		return NULL;
	}
	return p;
}

/* Starts noxd with extra args (NULL-terminated); false when not built. */
static bool noxd_start(struct noxd *d, const char *const *extra)
{
	char *bin = noxd_path(), *pf, line[256];
	char *argv[24];
	int n = 0, port;

	memset(d, 0, sizeof(*d));
	d->pid = -1;
	if (!bin) {
		if (no_skip()) {
			CU_FAIL("noxd is not built and NOX_NO_SKIP=1");
		} else {
			fprintf(stderr, "SKIP: noxd not built\n");
		}
		return false;
	}
	d->dir = tu_mkdtemp("http-noxd");
	pf = tu_strf("%s/port", d->dir);
	argv[n++] = bin;
	argv[n++] = (char *)"--listen";
	argv[n++] = (char *)"127.0.0.1:0";
	argv[n++] = (char *)"--base-dir";
	argv[n++] = d->dir;
	argv[n++] = (char *)"--port-file";
	argv[n++] = pf;
	while (extra && *extra && n < 22)
		argv[n++] = (char *)*extra++;
	argv[n] = NULL;
	d->log = tu_strf("%s.log", d->dir);
	d->pid = child_start(argv, d->log, line, sizeof(line));
	free(pf);
	free(bin);
	port = d->pid > 0 ? port_of(line) : -1;
	CU_ASSERT_FATAL(port > 0);
	snprintf(d->url, sizeof(d->url), "http://127.0.0.1:%d", port);
	return true;
}

static void noxd_stop(struct noxd *d)
{
	child_stop(d->pid);
	if (d->log && CU_get_number_of_failures() == 0)
		unlink(d->log);
	else if (d->log)
		fprintf(stderr, "noxd log kept: %s\n", d->log);
	free(d->log);
	d->log = NULL;
	if (d->dir)
		tu_rm_rf(d->dir);
	free(d->dir);
	d->dir = NULL;
}

static struct nox_backend *noxd_client(const struct noxd *d, const char *token,
				       bool v1_only)
{
	struct nox_http_opts o = {
	    .base_url = d->url, .token = token, .v1_only = v1_only};
	struct nox_backend *b = NULL;
	struct nox_err err;

	if (nox_backend_http_new(&o, &b, &err) != 0)
		CU_FAIL_FATAL("nox_backend_http_new");
	return b;
}

/* A gzip tar holding one file name with content data, in a temp file. */
static int make_tar(const char *dir, const char *name, const char *data)
{
	char *src = tu_strf("%s/src", dir),
	     *f = tu_strf("%s/src/%s", dir, name),
	     *t = tu_strf("%s/up.tgz", dir);
	struct nox_err err;
	int sfd, fd;

	tu_rm_rf(src);
	mkdir(src, 0700);
	tu_write_file(f, data, strlen(data));
	sfd = open(src, O_RDONLY | O_DIRECTORY);
	fd = open(t, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_EQUAL(nox_tar_pack(fd, sfd, "", NULL, &err), 0);
	lseek(fd, 0, SEEK_SET);
	close(sfd);
	free(src);
	free(f);
	free(t);
	return fd;
}

/* Downloads src and extracts it; returns the content of file name. */
static char *fetch_file(struct nox_backend *b, const char *id, const char *dir,
			const char *src, const char *name)
{
	char *t = tu_strf("%s/down.tgz", dir), *x = tu_strf("%s/x", dir),
	     *f = tu_strf("%s/x/%s", dir, name), *data = NULL;
	struct nox_err err;
	int fd, dfd;

	tu_rm_rf(x);
	mkdir(x, 0700);
	fd = open(t, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (nox_backend_download(b, id, src, fd, &err) == 0) {
		lseek(fd, 0, SEEK_SET);
		dfd = open(x, O_RDONLY | O_DIRECTORY);
		if (nox_tar_extract(fd, dfd, NULL, &err) == 0)
			data = tu_read_file(f, NULL);
		close(dfd);
	}
	close(fd);
	free(t);
	free(x);
	free(f);
	return data;
}

static void test_noxd_v1(void)
{
	static const char *const argv_cat[] = {"cat", "f.txt", NULL};
	static const char *const argv_none[] = {"no-such-prog-x", NULL};
	struct nox_exec_req req = {.argv = argv_cat};
	struct nox_sandbox_info info;
	struct nox_exec_result res;
	struct nox_backend *b;
	struct nox_err err;
	struct noxd d;
	char *dir, *got;
	int fd;

	if (!noxd_start(&d, NULL))
		return;
	dir = tu_mkdtemp("http-noxd-c");
	b = noxd_client(&d, NULL, false);
	CU_ASSERT_EQUAL(nox_backend_health(b, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_create(b, "s1", NULL, &info, &err), 0);
	CU_ASSERT(info.expires_at[0] != '\0');
	CU_ASSERT_EQUAL(nox_backend_create(b, "s1", NULL, &info, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_touch(b, "s1", &err), 0);
	CU_ASSERT_EQUAL(nox_backend_touch(b, "nope", &err), -ENOENT);
	CU_ASSERT_EQUAL(nox_backend_info(b, "s1", &info, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_info(b, "nope", &info, &err), -ENOENT);

	/* upload into a directory whose name needs escaping */
	fd = make_tar(dir, "f.txt", "hello noxd\n");
	CU_ASSERT_EQUAL(
	    nox_backend_upload(b, "s1", "/workspace/a b&c#d", fd, &err), 0);
	close(fd);
	got = fetch_file(b, "s1", dir, "/workspace/a b&c#d", "f.txt");
	CU_ASSERT(got && strcmp(got, "hello noxd\n") == 0);
	free(got);
	/* from a pipe: no size, chunked, not replayable */
	{
		int p[2];
		char tb[65536];
		ssize_t n;

		fd = make_tar(dir, "p.txt", "through a pipe\n");
		n = read(fd, tb, sizeof(tb));
		close(fd);
		CU_ASSERT_FATAL(n > 0 && n < (ssize_t)sizeof(tb));
		CU_ASSERT_FATAL(pipe(p) == 0);
		CU_ASSERT_EQUAL(write(p[1], tb, (size_t)n), n);
		close(p[1]);
		CU_ASSERT_EQUAL(nox_backend_upload(b, "s1", "sub", p[0], &err),
				0);
		close(p[0]);
		got = fetch_file(b, "s1", dir, "/workspace/sub/p.txt", "p.txt");
		CU_ASSERT(got && strcmp(got, "through a pipe\n") == 0);
		free(got);
	}
	req.workdir = "/workspace/a b&c#d";
	CU_ASSERT_EQUAL(nox_backend_exec(b, "s1", &req, &res, &err), 0);
	CU_ASSERT_EQUAL(res.exit_code, 0);
	CU_ASSERT(res.out && strcmp(res.out, "hello noxd\n") == 0);
	nox_exec_result_cleanup(&res);
	req.argv = argv_none;
	req.workdir = NULL;
	CU_ASSERT_EQUAL(nox_backend_exec(b, "s1", &req, &res, &err), 0);
	CU_ASSERT_EQUAL(res.exit_code, 127);
	nox_exec_result_cleanup(&res);
	CU_ASSERT_EQUAL(nox_backend_exec(b, "nope", &req, &res, &err), -ENOENT);
	CU_ASSERT_EQUAL(nox_backend_download(b, "nope", NULL, 1, &err),
			-ENOENT);

	CU_ASSERT_EQUAL(nox_backend_delete(b, "s1", &err), 0);
	CU_ASSERT_EQUAL(nox_backend_delete(b, "s1", &err), -ENOENT);
	nox_backend_free(b);
	noxd_stop(&d);
	tu_rm_rf(dir);
	free(dir);
}

static void test_noxd_fs(void)
{
	struct timespec ts[2] = {{1000, 5}, {2000, 7}};
	struct ents e = {0};
	struct nox_backend *b;
	struct statvfs sv;
	struct nox_err err;
	struct stat st;
	struct noxd d;
	char buf[64];

	if (!noxd_start(&d, NULL))
		return;
	b = noxd_client(&d, NULL, false);
	CU_ASSERT_EQUAL(nox_backend_create(b, "fs1", NULL, NULL, &err), 0);
	CU_ASSERT_TRUE(nox_backend_has(b, NOX_OP_STAT));
	CU_ASSERT_TRUE(nox_backend_has(b, NOX_OP_LIST_SANDBOXES));
	CU_ASSERT_EQUAL(nox_backend_mkdir(b, "fs1", "d", 0750, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_mkdir(b, "fs1", "d", 0750, &err), -EEXIST);
	CU_ASSERT_EQUAL(
	    nox_backend_createfile(b, "fs1", "d/f", 0640, true, &err), 0);
	CU_ASSERT_EQUAL(
	    nox_backend_createfile(b, "fs1", "d/f", 0640, true, &err), -EEXIST);
	CU_ASSERT_EQUAL(
	    nox_backend_write(b, "fs1", "d/f", 0, "hello world", 11, &err), 11);
	CU_ASSERT_EQUAL(nox_backend_read(b, "fs1", "d/f", 6, buf, 32, &err), 5);
	CU_ASSERT_EQUAL(memcmp(buf, "world", 5), 0);
	CU_ASSERT_EQUAL(nox_backend_read(b, "fs1", "d/f", 11, buf, 32, &err),
			0);
	CU_ASSERT_EQUAL(nox_backend_read(b, "fs1", "d/f", 100, buf, 32, &err),
			0);
	CU_ASSERT_EQUAL(nox_backend_stat(b, "fs1", "d/f", &st, &err), 0);
	CU_ASSERT_EQUAL(st.st_mode, S_IFREG | 0640);
	CU_ASSERT_EQUAL(st.st_size, 11);
	CU_ASSERT_EQUAL(nox_backend_truncate(b, "fs1", "d/f", 5, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_stat(b, "fs1", "d/f", &st, &err), 0);
	CU_ASSERT_EQUAL(st.st_size, 5);
	CU_ASSERT_EQUAL(nox_backend_chmod(b, "fs1", "d/f", 0600, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_utimens(b, "fs1", "d/f", ts, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_stat(b, "fs1", "d/f", &st, &err), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
	CU_ASSERT_EQUAL(st.st_mtim.tv_sec, 2000);
	CU_ASSERT_EQUAL(st.st_mtim.tv_nsec, 7);
	CU_ASSERT_EQUAL(st.st_atim.tv_sec, 1000);
	CU_ASSERT_EQUAL(nox_backend_symlink(b, "fs1", "f", "d/l", &err), 0);
	CU_ASSERT_EQUAL(
	    nox_backend_readlink(b, "fs1", "d/l", buf, sizeof(buf), &err), 1);
	CU_ASSERT_STRING_EQUAL(buf, "f");
	CU_ASSERT_EQUAL(nox_backend_stat(b, "fs1", "d/l", &st, &err), 0);
	CU_ASSERT_TRUE(S_ISLNK(st.st_mode));
	CU_ASSERT_EQUAL(nox_backend_link(b, "fs1", "d/f", "d/h", &err), 0);
	CU_ASSERT_EQUAL(nox_backend_stat(b, "fs1", "d/h", &st, &err), 0);
	CU_ASSERT_EQUAL(st.st_nlink, 2);
	CU_ASSERT_EQUAL(
	    nox_backend_rename(b, "fs1", "d/h", "d/f", RENAME_NOREPLACE, &err),
	    -EEXIST);
	CU_ASSERT_EQUAL(nox_backend_rename(b, "fs1", "d/h", "d/g", 0, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_list(b, "fs1", "d", collect_ents, &e, &err),
			0);
	CU_ASSERT_EQUAL(e.n, 3); /* f, g, l */
	CU_ASSERT_EQUAL(nox_backend_rmdir(b, "fs1", "d", &err), -ENOTEMPTY);
	CU_ASSERT_EQUAL(nox_backend_unlink(b, "fs1", "d/nothere", &err),
			-ENOENT);
	CU_ASSERT_EQUAL(nox_backend_unlink(b, "fs1", "d/f", &err), 0);
	CU_ASSERT_EQUAL(nox_backend_unlink(b, "fs1", "d/g", &err), 0);
	CU_ASSERT_EQUAL(nox_backend_unlink(b, "fs1", "d/l", &err), 0);
	CU_ASSERT_EQUAL(nox_backend_rmdir(b, "fs1", "d", &err), 0);
	CU_ASSERT_EQUAL(nox_backend_statfs(b, "fs1", &sv, &err), 0);
	CU_ASSERT(sv.f_bsize > 0 && sv.f_namemax > 0);
	/* a name that is not UTF-8 round-trips (path64 / name64) */
	CU_ASSERT_EQUAL(
	    nox_backend_createfile(b, "fs1", "n\xff", 0644, false, &err), 0);
	memset(&e, 0, sizeof(e));
	CU_ASSERT_EQUAL(nox_backend_list(b, "fs1", "", collect_ents, &e, &err),
			0);
	CU_ASSERT_EQUAL(e.n, 1);
	CU_ASSERT_STRING_EQUAL(e.names[0], "n\xff");
	CU_ASSERT_EQUAL(nox_backend_stat(b, "nope", "x", &st, &err), -ENOENT);
	CU_ASSERT_EQUAL(nox_backend_delete(b, "fs1", &err), 0);
	nox_backend_free(b);
	noxd_stop(&d);
}

struct tree_seen {
	int n, files, dirs, links;
	bool parents_first;
	bool target_ok;
	char seen[64][64];
};

static int tree_cb(const char *rel, const struct stat *st, const char *target,
		   void *ud)
{
	struct tree_seen *t = ud;
	const char *slash = strrchr(rel, '/');
	int i;
	bool found = !slash;

	/* the parent directory of every entry was reported before it */
	for (i = 0; slash && i < t->n && i < 64; i++)
		if (strlen(t->seen[i]) == (size_t)(slash - rel) &&
		    strncmp(t->seen[i], rel, (size_t)(slash - rel)) == 0)
			found = true;
	if (!found)
		t->parents_first = false;
	if (t->n < 64)
		snprintf(t->seen[t->n], sizeof(t->seen[0]), "%s", rel);
	t->n++;
	if (S_ISDIR(st->st_mode))
		t->dirs++;
	else if (S_ISLNK(st->st_mode)) {
		t->links++;
		t->target_ok = target && strcmp(target, "../top") == 0;
	} else
		t->files++;
	return 0;
}

/* fs/tree: one request for the whole subtree, parents before children. */
static void test_noxd_tree(void)
{
	struct tree_seen t;
	struct nox_backend *b;
	struct nox_err err;
	struct noxd d;

	if (!noxd_start(&d, NULL))
		return;
	b = noxd_client(&d, NULL, false);
	CU_ASSERT_EQUAL(nox_backend_create(b, "tr", NULL, NULL, &err), 0);
	CU_ASSERT_TRUE(nox_backend_has(b, NOX_OP_TREE));
	CU_ASSERT_EQUAL(nox_backend_mkdir(b, "tr", "a", 0755, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_mkdir(b, "tr", "a/b", 0755, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_mkdir(b, "tr", "a/b/c", 0755, &err), 0);
	CU_ASSERT_EQUAL(
	    nox_backend_createfile(b, "tr", "top", 0644, true, &err), 0);
	CU_ASSERT_EQUAL(
	    nox_backend_createfile(b, "tr", "a/b/c/deep", 0644, true, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_symlink(b, "tr", "../top", "a/l", &err), 0);
	memset(&t, 0, sizeof(t));
	t.parents_first = true;
	CU_ASSERT_EQUAL(nox_backend_tree(b, "tr", "", tree_cb, &t, &err), 0);
	CU_ASSERT_EQUAL(t.n, 6);
	CU_ASSERT_EQUAL(t.dirs, 3);
	CU_ASSERT_EQUAL(t.files, 2);
	CU_ASSERT_EQUAL(t.links, 1);
	CU_ASSERT_TRUE(t.parents_first);
	CU_ASSERT_TRUE(t.target_ok);
	/* a subtree: names relative to it */
	memset(&t, 0, sizeof(t));
	t.parents_first = true;
	CU_ASSERT_EQUAL(nox_backend_tree(b, "tr", "a/b", tree_cb, &t, &err), 0);
	CU_ASSERT_EQUAL(t.n, 2);
	CU_ASSERT_STRING_EQUAL(t.seen[0], "c");
	CU_ASSERT_STRING_EQUAL(t.seen[1], "c/deep");
	CU_ASSERT_EQUAL(nox_backend_tree(b, "tr", "nothere", tree_cb, &t, &err),
			-ENOENT);
	CU_ASSERT_EQUAL(nox_backend_tree(b, "tr", "../x", tree_cb, &t, &err),
			-EINVAL);
	nox_backend_free(b);
	noxd_stop(&d);
}

/* Paged fs/tree against hostile second pages: each page is checked whole
 * before its entries are passed on, so a bad page passes none of its own. */
static void test_tree_pages_hostile(void)
{
	static const struct {
		const char *id;
		int rc, n; /* the result, and the entries passed on */
	} cases[] = {
	    {"tpgood", 0, 4},	      {"tprepeat", -EPROTO, 2},
	    {"tpback", -EPROTO, 2},   {"tporder", -EPROTO, 2},
	    {"tpcursor", -EPROTO, 2}, {"tpempty", -EPROTO, 2},
	    {"tptrunc", -EPROTO, 2},
	};
	struct nox_backend *b = hs_new(NULL, 0, 0, false);
	struct nox_err err;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct tree_seen t = {0};
		int r = nox_backend_tree(b, cases[i].id, "", tree_cb, &t, &err);

		CU_ASSERT_EQUAL(r, cases[i].rc);
		CU_ASSERT_EQUAL(t.n, cases[i].n);
		if (r != cases[i].rc || t.n != cases[i].n)
			fprintf(stderr, "case %s: %d (%s), %d entries\n",
				cases[i].id, r, err.msg, t.n);
	}
	nox_backend_free(b);
}

static void test_noxd_v1_only(void)
{
	static const char *const v1[] = {"--v1-only", NULL};
	struct nox_sandbox_info info;
	struct nox_backend *b;
	struct nox_err err;
	struct stat st;
	struct noxd d;
	int op;

	if (!noxd_start(&d, v1))
		return;
	b = noxd_client(&d, NULL, false);
	for (op = 0; op < NOX_OP__COUNT; op++)
		CU_ASSERT_FALSE(nox_backend_has(b, (enum nox_op)op));
	CU_ASSERT_EQUAL(nox_backend_create(b, "v1", NULL, NULL, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_stat(b, "v1", "", &st, &err), -ENOSYS);
	CU_ASSERT_EQUAL(nox_backend_mkdir(b, "v1", "d", 0755, &err), -ENOSYS);
	CU_ASSERT_EQUAL(nox_backend_info(b, "v1", &info, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_info(b, "nope", &info, &err), -ENOENT);
	nox_backend_free(b);
	/* the client side switch too, on a server that has the extensions */
	noxd_stop(&d);
	if (!noxd_start(&d, NULL))
		return;
	b = noxd_client(&d, NULL, true);
	CU_ASSERT_FALSE(nox_backend_has(b, NOX_OP_STAT));
	CU_ASSERT_EQUAL(nox_backend_create(b, "v1", NULL, NULL, &err), 0);
	CU_ASSERT_EQUAL(nox_backend_stat(b, "v1", "", &st, &err), -ENOSYS);
	nox_backend_free(b);
	noxd_stop(&d);
}

/*
 * nox.files: many files in one POST fs/files; missing paths, directories
 * and symlinks are left out; a name that is not UTF-8 travels; a bad path
 * is refused before any request; a v1-only server has no such operation.
 */
static void test_noxd_files(void)
{
	static const char *const want[] = {"a", "d/b", "d/n\xff", "sp ace"};
	static const char *const ask[] = {"a",	"d/b", "d/n\xff", "sp ace",
					  "gone", "d",	 "l"};
	static const char *const hostile[] = {"a", "../x"};
	struct nox_backend *b;
	struct nox_err err;
	struct stat st;
	struct noxd d;
	char *dir, *t, *x, *p, *data;
	size_t i, len;
	int fd, dfd;

	if (!noxd_start(&d, NULL))
		return;
	b = noxd_client(&d, NULL, false);
	CU_ASSERT_EQUAL(nox_backend_create(b, "fl1", NULL, NULL, &err), 0);
	CU_ASSERT_TRUE(nox_backend_has(b, NOX_OP_FILES));
	CU_ASSERT_EQUAL(nox_backend_mkdir(b, "fl1", "d", 0755, &err), 0);
	for (i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(nox_backend_createfile(b, "fl1", want[i], 0644,
						       true, &err),
				0);
		CU_ASSERT_EQUAL(nox_backend_write(b, "fl1", want[i], 0,
						  want[i], strlen(want[i]),
						  &err),
				(ssize_t)strlen(want[i]));
	}
	CU_ASSERT_EQUAL(nox_backend_symlink(b, "fl1", "a", "l", &err), 0);

	dir = tu_mkdtemp("http-files");
	t = tu_strf("%s/files.tar", dir);
	x = tu_strf("%s/x", dir);
	mkdir(x, 0700);
	fd = open(t, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_EQUAL(nox_backend_download_files(b, "fl1", ask, 7, fd, &err),
			0);
	lseek(fd, 0, SEEK_SET);
	dfd = open(x, O_RDONLY | O_DIRECTORY);
	CU_ASSERT_EQUAL(nox_tar_extract(fd, dfd, NULL, &err), 0);
	for (i = 0; i < 4; i++) {
		p = tu_strf("%s/%s", x, want[i]);
		data = tu_read_file(p, &len);
		CU_ASSERT_PTR_NOT_NULL(data);
		if (data)
			CU_ASSERT(len == strlen(want[i]) &&
				  memcmp(data, want[i], len) == 0);
		free(data);
		free(p);
	}
	/* the symlink, the missing file: not there */
	p = tu_strf("%s/l", x);
	CU_ASSERT_EQUAL(lstat(p, &st), -1);
	free(p);
	p = tu_strf("%s/gone", x);
	CU_ASSERT_EQUAL(lstat(p, &st), -1);
	free(p);
	close(dfd);
	CU_ASSERT_EQUAL(
	    nox_backend_download_files(b, "fl1", hostile, 2, fd, &err),
	    -EINVAL);
	close(fd);
	nox_backend_free(b);

	/* --v1-only on the client: no such operation */
	b = noxd_client(&d, NULL, true);
	CU_ASSERT_FALSE(nox_backend_has(b, NOX_OP_FILES));
	fd = open(t, O_RDWR | O_TRUNC);
	CU_ASSERT_EQUAL(nox_backend_download_files(b, "fl1", ask, 1, fd, &err),
			-ENOSYS);
	close(fd);
	nox_backend_free(b);
	noxd_stop(&d);
	tu_rm_rf(dir);
	free(dir);
	free(t);
	free(x);
}

static void test_noxd_errors(void)
{
	static const char *const tok[] = {"--token", "sesame", "--max-body",
					  "65536", NULL};
	static const char *const argv_empty[] = {"", NULL};
	struct nox_exec_req req = {.argv = argv_empty};
	struct nox_exec_result res;
	struct nox_backend *b;
	struct nox_err err;
	struct noxd d;
	char *dir, *p, *big;
	int fd;

	if (!noxd_start(&d, tok))
		return;
	b = noxd_client(&d, "wrong", false);
	CU_ASSERT_EQUAL(nox_backend_create(b, "e1", NULL, NULL, &err), -EACCES);
	nox_backend_free(b);
	b = noxd_client(&d, NULL, false);
	CU_ASSERT_EQUAL(nox_backend_touch(b, "e1", &err), -EACCES);
	nox_backend_free(b);

	b = noxd_client(&d, "sesame", false);
	CU_ASSERT_EQUAL(nox_backend_create(b, "e1", NULL, NULL, &err), 0);
	/* an empty argv[0] is refused client-side; the server's 400 is
	 * reached with an argv it rejects as empty */
	CU_ASSERT_EQUAL(nox_backend_exec(b, "e1", &req, &res, &err), -EINVAL);
	CU_ASSERT_EQUAL(nox_backend_touch(b, "unknown", &err), -ENOENT);
	/* 1 MiB of incompressible data over --max-body 64 KiB */
	dir = tu_mkdtemp("http-noxd-e");
	p = tu_strf("%s/big", dir);
	big = malloc(1 << 20);
	fd = open("/dev/urandom", O_RDONLY);
	CU_ASSERT_EQUAL(read(fd, big, 1 << 20), 1 << 20);
	close(fd);
	tu_write_file(p, big, 1 << 20);
	fd = open(p, O_RDONLY);
	CU_ASSERT_EQUAL(nox_backend_upload(b, "e1", NULL, fd, &err), -EFBIG);
	close(fd);
	CU_ASSERT_EQUAL(nox_backend_delete(b, "e1", &err), 0);
	nox_backend_free(b);
	noxd_stop(&d);
	tu_rm_rf(dir);
	free(dir);
	free(p);
	free(big);
}

/*
 * A cancel that fired before the exec: nothing is sent (noxd's access
 * log shows no exec), the call is -EINTR, and the next exec works.
 */
static void test_noxd_cancel_first(void)
{
	static const char *const argv_touch[] = {"touch", "started", NULL};
	struct nox_cancel nc = {.events = POLLIN};
	struct nox_exec_req req = {.argv = argv_touch, .cancel = &nc};
	struct nox_exec_result res;
	struct nox_backend *b;
	struct nox_err err;
	struct noxd d;
	uint64_t one = 1;
	char *log, *p;

	if (!noxd_start(&d, NULL))
		return;
	b = noxd_client(&d, NULL, false);
	CU_ASSERT_EQUAL(nox_backend_create(b, "c1", NULL, NULL, &err), 0);
	nc.fd = eventfd(0, EFD_CLOEXEC);
	CU_ASSERT_FATAL(nc.fd >= 0);
	CU_ASSERT_EQUAL(write(nc.fd, &one, sizeof(one)), (ssize_t)sizeof(one));
	CU_ASSERT_EQUAL(nox_backend_exec(b, "c1", &req, &res, &err), -EINTR);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "before the request was sent"));
	close(nc.fd);
	p = tu_strf("%s/noxrunner_sandbox_c1/workspace/started", d.dir);
	CU_ASSERT_NOT_EQUAL(access(p, F_OK), 0);
	free(p);
	log = tu_read_file(d.log, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	CU_ASSERT_PTR_NULL(strstr(log, "/exec"));
	free(log);
	req.cancel = NULL;
	CU_ASSERT_EQUAL(nox_backend_exec(b, "c1", &req, &res, &err), 0);
	CU_ASSERT_EQUAL(res.exit_code, 0);
	nox_exec_result_cleanup(&res);
	nox_backend_free(b);
	noxd_stop(&d);
}

static void test_noxd_exec_400(void)
{
	struct nox_backend *b;
	struct nox_err err;
	struct noxd d;
	CURL *e;
	char *url;
	long code = 0;

	/* the server side of "empty command": a raw request, since the
	 * client refuses to send one */
	if (!noxd_start(&d, NULL))
		return;
	b = noxd_client(&d, NULL, false);
	CU_ASSERT_EQUAL(nox_backend_create(b, "x1", NULL, NULL, &err), 0);
	url = tu_strf("%s/v1/sandboxes/x1/exec", d.url);
	e = curl_easy_init();
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, "{\"cmd\": []}");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, grab);
	{
		struct {
			char *b;
			size_t len;
		} g = {NULL, 0};

		curl_easy_setopt(e, CURLOPT_WRITEDATA, &g);
		CU_ASSERT_EQUAL(curl_easy_perform(e), CURLE_OK);
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
		free(g.b);
	}
	CU_ASSERT_EQUAL(code, 400);
	curl_easy_cleanup(e);
	free(url);
	nox_backend_free(b);
	noxd_stop(&d);
}

static void *noxd_worker(void *ud)
{
	static const char *const argv_ls[] = {"cat", "f.txt", NULL};
	struct worker *w = ud;
	struct nox_exec_req req = {.argv = argv_ls};
	struct nox_exec_result res;
	struct nox_err err;
	char *sub = tu_strf("%s/%s", w->dir, w->id), *want, *got;
	int i, fd;

	mkdir(sub, 0700);
	if (nox_backend_create(w->b, w->id, NULL, NULL, &err) != 0)
		w->fails++;
	for (i = 0; i < 3; i++) {
		want = tu_strf("%s round %d\n", w->id, i);
		fd = make_tar(sub, "f.txt", want);
		if (nox_backend_upload(w->b, w->id, NULL, fd, &err) != 0)
			w->fails++;
		close(fd);
		if (nox_backend_exec(w->b, w->id, &req, &res, &err) != 0 ||
		    res.exit_code != 0 || !res.out || strcmp(res.out, want))
			w->fails++;
		nox_exec_result_cleanup(&res);
		got = fetch_file(w->b, w->id, sub, NULL, "f.txt");
		if (!got || strcmp(got, want) != 0)
			w->fails++;
		free(got);
		free(want);
	}
	if (nox_backend_delete(w->b, w->id, &err) != 0)
		w->fails++;
	tu_rm_rf(sub);
	free(sub);
	return NULL;
}

static void test_noxd_threads(void)
{
	struct nox_backend *b;
	struct worker w[8];
	pthread_t t[8];
	struct noxd d;
	char *dir;
	int i;

	if (!noxd_start(&d, NULL))
		return;
	b = noxd_client(&d, NULL, false);
	dir = tu_mkdtemp("http-noxd-t");
	for (i = 0; i < 8; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].b = b;
		w[i].dir = dir;
		snprintf(w[i].id, sizeof(w[i].id), "thr-%d", i);
		CU_ASSERT_EQUAL(pthread_create(&t[i], NULL, noxd_worker, &w[i]),
				0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		CU_ASSERT_EQUAL(w[i].fails, 0);
	}
	nox_backend_free(b);
	noxd_stop(&d);
	tu_rm_rf(dir);
	free(dir);
}

/* ---- main --------------------------------------------------------------- */

static int hs_start(void)
{
	const char *root = getenv("NOX_SOURCE_ROOT");
	char *script, line[64];
	char *argv[4];

	if (!root)
		return -1;
	script = tu_strf("%s/tests/hostile/server.py", root);
	argv[0] = (char *)"python3";
	argv[1] = script;
	argv[2] = (char *)"all";
	argv[3] = NULL;
	hs_pid = child_start(argv, NULL, line, sizeof(line));
	free(script);
	if (hs_pid < 0)
		return -1;
	hs_port = port_of(line);
	snprintf(hs_url, sizeof(hs_url), "http://127.0.0.1:%d", hs_port);
	return hs_port > 0 ? 0 : -1;
}

int main(void)
{
	static const struct tu_test tests[] = {
	    {"huge bodies: bounded memory", test_huge_body},
	    {"construction and defaults", test_construct},
	    {"v1 operations, what is sent", test_v1_ok},
	    {"nox.sandboxes", test_sandboxes},
	    {"nox.fs operations, what is sent", test_fs_ok},
	    {"extension discovery", test_discovery},
	    {"malformed JSON answers", test_malformed_json},
	    {"malformed nox.fs answers", test_fs_hostile},
	    {"fs/tree pages: a hostile page is refused whole",
	     test_tree_pages_hostile},
	    {"stalled body: deadline", test_stall},
	    {"slow body: bounded by progress", test_trickle},
	    {"reset mid-body", test_reset},
	    {"5xx storms, 503 then 200", test_storms},
	    {"retries replay upload and download", test_retry_replay},
	    {"status and errno mapping", test_status_map},
	    {"hostile tars stay hostile", test_hostile_tars},
	    {"gzip bomb", test_gzip_bomb},
	    {"dead servers", test_dead_server},
	    {"8 threads, one handle", test_threads_hostile},
	    {"noxd: v1", test_noxd_v1},
	    {"noxd: nox.fs", test_noxd_fs},
	    {"noxd: nox.fs tree in one request", test_noxd_tree},
	    {"noxd: nox.files, many files in one request", test_noxd_files},
	    {"noxd: v1-only", test_noxd_v1_only},
	    {"noxd: token, 404, 413", test_noxd_errors},
	    {"noxd: 400 empty command", test_noxd_exec_400},
	    {"noxd: a cancel before the exec sends nothing",
	     test_noxd_cancel_first},
	    {"noxd: 8 threads", test_noxd_threads},
	    {NULL, NULL},
	};
	int rc;

	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (hs_start() < 0) {
		fprintf(stderr, "cannot start tests/hostile/server.py\n");
		child_stop(hs_pid);
		return no_skip() ? 1 : 77;
	}
	rc = tu_main("http_client", tests);
	child_stop(hs_pid);
	curl_global_cleanup();
	return rc;
}
