/*
 * main.c - noxfs: command line, backend, mount, event loop, clean exit.
 *
 *	noxfs [--local[=BASE_DIR]] [--url URL] [-f] [-d] [-o OPT,...] MNT
 *
 * Order matters: the backend is created and a -o session= sandbox created
 * or attached before mounting, so such errors reach the terminal; the
 * process daemonises (fuse_daemonize) only once the mount exists, so a
 * caller of the non -f form finds it mounted when we return; threads
 * (keepalive, workers) start after the fork.  SIGTERM/SIGINT or
 * fusermount3 -u end the loop; then every sandbox is flushed and all
 * state freed, and the exit status is 0 unless a flush failed.
 *
 * Limits: the http backend needs the cache layer (not built yet); it is
 * refused at start-up with a message.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "cache.h"
#include "cred.h"
#include "fs.h"
#include "sandbox.h"

/* Default deadline of the HTTP checks at start (-o start_timeout=S). */
#define FS_START_TIMEOUT 10
/* Default deadline of one HTTP request after the start, and a bulk
 * transfer's stall bound (-o op_timeout=S). */
#define FS_OP_TIMEOUT 10
/* Default bound of the exit path: pending uploads, detach
 * (-o unmount_timeout=S). */
#define FS_UNMOUNT_TIMEOUT 30
/* The sandbox a start check touches: it need not exist (404 is the
 * answer that proves the token). */
#define FS_PROBE_ID "noxfs-start-check"

enum {
	KEY_FSNAME,
	KEY_SUBTYPE,
	KEY_KEEP,
};

#define FS_OPT(t, p, v)                                                        \
	{                                                                      \
		t, offsetof(struct fs_opts, p), v                              \
	}

static const struct fuse_opt fs_opt_spec[] = {
    FS_OPT("--local", local, 1),
    FS_OPT("--local=%s", local_dir, 0),
    FS_OPT("--url %s", url, 0),
    FS_OPT("--url=%s", url, 0),
    FS_OPT("session=%s", session, 0),
    FS_OPT("exec_timeout=%d", exec_timeout, 0),
    FS_OPT("ttl=%ld", ttl, 0),
    FS_OPT("cache_dir=%s", cache_dir, 0),
    FS_OPT("cache_max=%s", cache_max_s, 0),
    FS_OPT("attr_timeout=%lf", attr_timeout, 0),
    FS_OPT("entry_timeout=%lf", entry_timeout, 0),
    FS_OPT("unisolated", unisolated, 1),
    FS_OPT("exec_umask=%s", exec_umask_s, 0),
    FS_OPT("exec_output_max=%s", exec_output_s, 0),
    FS_OPT("writeback_delay=%d", writeback_delay, 0),
    FS_OPT("token=%s", token, 0),
    FS_OPT("v1_only", v1_only, 1),
    FS_OPT("start_timeout=%d", start_timeout, 0),
    FS_OPT("op_timeout=%d", op_timeout, 0),
    FS_OPT("unmount_timeout=%d", unmount_timeout, 0),
    FS_OPT("fd_cache=%d", fd_cache, 0),
    FS_OPT("node_max=%d", node_max, 0),
    FS_OPT("local=%s", local_dir, 0),
    FS_OPT("url=%s", url, 0),
    FS_OPT("--help", show_help, 1),
    FS_OPT("-h", show_help, 1),
    FS_OPT("--version", show_version, 1),
    FS_OPT("-V", show_version, 1),
    FUSE_OPT_KEY("fsname=", KEY_FSNAME),
    FUSE_OPT_KEY("subtype=", KEY_SUBTYPE),
    FUSE_OPT_END};

/*
 * SOURCE, the first of two positionals (what mount.fuse3 passes for type
 * fuse.noxfs): "local", "local:BASE_DIR", an http(s) URL with an optional
 * "#ID" session, or a bare session ID (local backend, session=ID).  It is
 * applied after the options, and a SOURCE that contradicts --url,
 * --local or -o session= is refused rather than one of them ignored.
 */
struct source {
	bool local;
	char *local_dir; /* local:DIR */
	char *url;
	char *session; /* URL#ID or a bare ID */
};

static void source_cleanup(struct source *s)
{
	free(s->local_dir);
	free(s->url);
	free(s->session);
}

static int source_parse(const char *src, struct source *s)
{
	const char *hash;

	memset(s, 0, sizeof(*s));
	if (strcmp(src, "local") == 0) {
		s->local = true;
		return 0;
	}
	if (strncmp(src, "local:", 6) == 0 && src[6]) {
		/* local:DIR#ID, as /proc/mounts shows a session mount */
		hash = strrchr(src + 6, '#');
		if (hash && nox_id_validate(hash + 1, NULL) < 0)
			hash = NULL;
		s->local = true;
		s->local_dir = hash ? strndup(src + 6, (size_t)(hash - src - 6))
				    : strdup(src + 6);
		if (!s->local_dir)
			return -ENOMEM;
		if (hash) {
			s->session = strdup(hash + 1);
			if (!s->session)
				return -ENOMEM;
		}
		return 0;
	}
	if (strncmp(src, "http://", 7) == 0 || strncmp(src, "https://", 8) == 0) {
		hash = strchr(src, '#');
		s->url = hash ? strndup(src, (size_t)(hash - src)) : strdup(src);
		if (!s->url)
			return -ENOMEM;
		if (hash && hash[1]) {
			s->session = strdup(hash + 1);
			if (!s->session)
				return -ENOMEM;
		}
		return 0;
	}
	if (nox_id_validate(src, NULL) == 0) {
		s->local = true;
		s->session = strdup(src);
		return s->session ? 0 : -ENOMEM;
	}
	return -EINVAL;
}

/* "SOURCE 'x' conflicts with OPTION 'y'": one line, -1. */
static int source_conflict(const char *src, const char *opt, const char *val)
{
	nox_log(NOX_LOG_ERR,
		"source '%s' conflicts with %s%s%s%s: give the backend and "
		"the session once",
		src, opt, val ? " '" : "", val ? val : "", val ? "'" : "");
	return -1;
}

/* Merges o->source into o; 0, or -1 after one message. */
static int source_apply(struct fs_opts *o)
{
	const char *src = o->source;
	struct source s;
	int r;

	r = source_parse(src, &s);
	if (r == -EINVAL) {
		nox_log(NOX_LOG_ERR,
			"source '%s' is not local, local:DIR, a URL or a "
			"session id",
			src);
		return -1;
	}
	if (r < 0) {
		nox_log(NOX_LOG_ERR, "source '%s': %s", src, strerror(-r));
		source_cleanup(&s);
		return -1;
	}
	r = -1;
	if (s.local && o->url) {
		source_conflict(src, "--url", o->url);
		goto out;
	}
	if (s.url && (o->local || o->local_dir)) {
		source_conflict(src, "--local", o->local_dir);
		goto out;
	}
	if (s.url && o->url && strcmp(s.url, o->url) != 0) {
		source_conflict(src, "--url", o->url);
		goto out;
	}
	if (s.local_dir && o->local_dir &&
	    strcmp(s.local_dir, o->local_dir) != 0) {
		source_conflict(src, "--local", o->local_dir);
		goto out;
	}
	if (s.session && o->session && strcmp(s.session, o->session) != 0) {
		source_conflict(src, "-o session", o->session);
		goto out;
	}
	if (s.local)
		o->local = 1;
	if (s.local_dir && !o->local_dir) {
		o->local_dir = s.local_dir;
		s.local_dir = NULL;
	}
	if (s.url && !o->url) {
		o->url = s.url;
		s.url = NULL;
	}
	if (s.session && !o->session) {
		o->session = s.session;
		s.session = NULL;
	}
	r = 0;
out:
	source_cleanup(&s);
	return r;
}

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct fs_opts *o = data;

	(void)outargs;
	if (key == FUSE_OPT_KEY_NONOPT) {
		/* one positional: the mount point; two: SOURCE MOUNTPOINT */
		if (!o->pending) {
			o->pending = strdup(arg);
			return o->pending ? 0 : -1;
		}
		if (o->source) {
			nox_log(NOX_LOG_ERR, "one SOURCE and one MOUNTPOINT at "
					     "most (see --help)");
			return -1;
		}
		o->source = o->pending;
		o->pending = NULL;
		return 1;
	}
	if (key == KEY_FSNAME)
		o->has_fsname = 1;
	else if (key == KEY_SUBTYPE)
		o->has_subtype = 1;
	return 1; /* everything else is for libfuse */
}

static void usage(const char *prog)
{
	printf("usage: %s [--local[=BASE_DIR]] [--url URL] [-f] [-d] "
	       "[-o OPT[,OPT...]] MOUNTPOINT\n"
	       "       %s SOURCE MOUNTPOINT [-o OPT[,OPT...]]   (mount -t "
	       "fuse.noxfs)\n"
	       "       %s --help | --version\n\n"
	       "SOURCE: local, local:BASE_DIR, URL, URL#ID or a session ID "
	       "(local, session=ID)\n\n"
	       "Mounts NoxRunner sandboxes as directories: MOUNTPOINT/ID is "
	       "sandbox ID's\n"
	       "/workspace; write a command to MOUNTPOINT/ID/.nox/exec to "
	       "run it.\n\n"
	       "Backend:\n"
	       "    --local[=BASE_DIR]     sandboxes on this machine under "
	       "BASE_DIR\n"
	       "                           (default %s); the default "
	       "backend\n"
	       "    --url URL              a NoxRunner v1 HTTP server "
	       "(default:\n"
	       "                           $NOXRUNNER_BASE_URL; --local "
	       "wins)\n\n"
	       "Options:\n"
	       "    -f                     stay in the foreground, log to "
	       "stderr\n"
	       "    -d                     debug output (implies -f)\n"
	       "    -s                     single-threaded (debugging: "
	       "caches then\n"
	       "                           only expire after commands)\n"
	       "    -o session=ID          mount only sandbox ID (created "
	       "if needed)\n"
	       "                           at MOUNTPOINT; .nox is "
	       "MOUNTPOINT/.nox\n"
	       "    -o exec_timeout=S      shell requests' time limit "
	       "(default %d)\n"
	       "    -o ttl=S               sandbox TTL at create and "
	       "keepalive\n"
	       "                           (default %d; touched every "
	       "min(ttl/3, 300) s)\n"
	       "    -o attr_timeout=S      kernel attribute cache "
	       "(default 1.0)\n"
	       "    -o entry_timeout=S     kernel name cache (default 1.0)\n"
	       "    -o unisolated          local: run commands without "
	       "bwrap (unsafe)\n"
	       "    -o exec_umask=OCTAL    local: commands' umask (default "
	       "022)\n"
	       "    -o exec_output_max=SIZE  local: stdout/stderr kept per "
	       "command\n"
	       "                           (default 64M; K, M, G suffixes; "
	       "at most 1G)\n"
	       "    -o cache_dir=DIR       http: local cache directory\n"
	       "    -o cache_max=SIZE      http: downloaded contents kept "
	       "(K, M, G;\n"
	       "                           default 10 %% of the cache disk, "
	       "at most 4G)\n"
	       "    -o writeback_delay=MS  http: defer and batch uploads\n"
	       "    -o token=TOKEN         http: bearer token (default:\n"
	       "                           $NOXRUNNER_TOKEN)\n"
	       "    -o v1_only             http: use no server extensions\n"
	       "    -o start_timeout=S     http: deadline of the checks at "
	       "start (10)\n"
	       "    -o op_timeout=S        http: deadline of each request "
	       "(10); big\n"
	       "                           transfers: of a stall\n"
	       "    -o unmount_timeout=S   wait at most S s for pending "
	       "uploads at exit (30)\n"
	       "    -o fd_cache=N          node descriptors kept open "
	       "(1024)\n"
	       "    -o node_max=N          nodes the kernel may hold before "
	       "cold files\n"
	       "                           are dropped from its caches "
	       "(16384; 0: no bound)\n"
	       "    -o local=BASE_DIR, url=URL  as --local=BASE_DIR, --url "
	       "URL (fstab)\n"
	       "    -o allow_other         let other users use the mount\n"
	       "    -o default_permissions let the kernel check "
	       "permissions\n"
	       "    -o ro                  read-only mount\n"
	       "    -o fsname=NAME         (default noxfs), "
	       "subtype=NAME (default noxfs)\n"
	       "    -h, --help             this help, then libfuse's "
	       "options\n"
	       "    -V, --version          print the version\n\n"
	       "Unmount with fusermount3 -u MOUNTPOINT, or SIGTERM/SIGINT "
	       "to the daemon.\n\n",
	       prog, prog, prog, NOX_DEFAULT_BASE_DIR, NOX_DEFAULT_EXEC_TIMEOUT,
	       NOX_DEFAULT_TTL);
}

/*
 * libfuse reports some errors in pieces (fuse_opt prints "unknown
 * option(s): `", then each option, then "'\n"): pieces are joined until
 * a newline so that one message is one log line.
 */
static pthread_mutex_t fuse_log_mu = PTHREAD_MUTEX_INITIALIZER;
static char fuse_log_buf[2048]; /* protected by fuse_log_mu */
static size_t fuse_log_len;	/* protected by fuse_log_mu */

__attribute__((format(printf, 2, 0))) static void
fs_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	size_t room, n;
	int r;

	pthread_mutex_lock(&fuse_log_mu);
	room = sizeof(fuse_log_buf) - fuse_log_len;
	r = vsnprintf(fuse_log_buf + fuse_log_len, room, fmt, ap);
	if (r > 0)
		fuse_log_len += (size_t)r < room ? (size_t)r : room - 1;
	n = fuse_log_len;
	if (n > 0 && (fuse_log_buf[n - 1] == '\n' ||
		      n == sizeof(fuse_log_buf) - 1)) {
		while (n > 0 && fuse_log_buf[n - 1] == '\n')
			fuse_log_buf[--n] = '\0';
		nox_log((enum nox_log_level)level, "%s", fuse_log_buf);
		fuse_log_len = 0;
	}
	pthread_mutex_unlock(&fuse_log_mu);
}

/* The most -o exec_output_max allows: each stream is read back whole. */
#define FS_MAX_OUTPUT ((unsigned long long)1 << 30)

/* "64M", "1048576", "512K": a byte count; -1 when malformed. */
static int parse_size(const char *s, unsigned long long *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end == 'k' || *end == 'K')
		shift = 10;
	else if (*end == 'm' || *end == 'M')
		shift = 20;
	else if (*end == 'g' || *end == 'G')
		shift = 30;
	else if (*end)
		return -1;
	if (shift && *++end)
		return -1;
	if (v > (~0ULL >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

/* -o exec_umask= and -o exec_output_max=; 0 or -1 after a message. */
static int opts_check_exec(struct fs_opts *o)
{
	unsigned long long v;
	unsigned long m;
	char *end;

	o->exec_umask = NOX_DEFAULT_EXEC_UMASK;
	if (o->exec_umask_s) {
		errno = 0;
		m = strtoul(o->exec_umask_s, &end, 8);
		if (errno || end == o->exec_umask_s || *end || m > 0777) {
			nox_log(NOX_LOG_ERR,
				"exec_umask must be octal, 0 to 0777: '%s'",
				o->exec_umask_s);
			return -1;
		}
		o->exec_umask = (mode_t)m;
	}
	if (o->exec_output_s) {
		if (parse_size(o->exec_output_s, &v) < 0 || v == 0 ||
		    v > FS_MAX_OUTPUT) {
			nox_log(NOX_LOG_ERR,
				"exec_output_max must be a size from 1 to 1G: "
				"'%s'",
				o->exec_output_s);
			return -1;
		}
		o->exec_output_max = (size_t)v;
	}
	if (o->cache_max_s) {
		if (parse_size(o->cache_max_s, &v) < 0 || v < 4096) {
			nox_log(NOX_LOG_ERR,
				"cache_max must be a size of at least 4K: '%s'",
				o->cache_max_s);
			return -1;
		}
		o->cache_max = v;
	}
	return 0;
}

/* Validates options and fills defaults; 0 or -1 after a message. */
static int opts_check(struct fs_opts *o)
{
	if (opts_check_exec(o) < 0)
		return -1;
	if (o->exec_timeout < 1) {
		nox_log(NOX_LOG_ERR, "exec_timeout must be at least 1 s");
		return -1;
	}
	if (o->fd_cache < 1) {
		nox_log(NOX_LOG_ERR, "fd_cache must be at least 1");
		return -1;
	}
	if (o->node_max < 0 || (o->node_max > 0 && o->node_max < 100)) {
		nox_log(NOX_LOG_ERR, "node_max must be 0 (no bound) or at "
				     "least 100");
		return -1;
	}
	if (o->start_timeout < 1) {
		nox_log(NOX_LOG_ERR, "start_timeout must be at least 1 s");
		return -1;
	}
	if (o->op_timeout < 1) {
		nox_log(NOX_LOG_ERR, "op_timeout must be at least 1 s");
		return -1;
	}
	if (o->unmount_timeout < 1) {
		nox_log(NOX_LOG_ERR, "unmount_timeout must be at least 1 s");
		return -1;
	}
	if (o->ttl < 1) {
		nox_log(NOX_LOG_ERR, "ttl must be at least 1 s");
		return -1;
	}
	if (o->attr_timeout < 0 || o->entry_timeout < 0) {
		nox_log(NOX_LOG_ERR, "timeouts cannot be negative");
		return -1;
	}
	if (o->session && nox_id_validate(o->session, NULL) < 0) {
		nox_log(NOX_LOG_ERR, "invalid session id '%s'", o->session);
		return -1;
	}
	if (o->local_dir)
		o->local = 1;
	if (o->local && o->url) {
		nox_log(NOX_LOG_ERR, "--local and --url name two backends: "
				     "give one");
		return -1;
	}
	return 0;
}

/* The URL of the http backend, or NULL for the local one. */
static const char *opts_url(const struct fs_opts *o)
{
	const char *url = o->url;

	if (o->local)
		return NULL;
	if (!url) {
		url = getenv("NOXRUNNER_BASE_URL");
		if (url && !*url)
			url = NULL;
	}
	return url;
}

/* Appends s to b with fuse_opt's escapes for ',' and '\\'; false if full. */
static bool opt_escape(char *b, size_t cap, size_t *len, const char *s)
{
	for (; *s; s++) {
		if (*len + 3 > cap)
			return false;
		if (*s == ',' || *s == '\\')
			b[(*len)++] = '\\';
		b[(*len)++] = *s;
	}
	b[*len] = '\0';
	return true;
}

/*
 * -o fsname=SOURCE: /proc/mounts, df and findmnt show where the mount
 * comes from, in the SOURCE syntax mount(8) takes back (local:DIR[#ID]
 * or URL[#ID]); a URL's user:password@ is left out.
 */
static int fsname_add(struct fuse_args *args, const struct fs_opts *o)
{
	const char *url = opts_url(o), *at, *host;
	char b[PATH_MAX + 64];
	size_t len = 0;
	bool ok;

	len = (size_t)snprintf(b, sizeof(b), "-ofsname=");
	if (url) {
		host = strstr(url, "://");
		host = host ? host + 3 : url;
		at = strchr(host, '@');
		if (at && at < host + strcspn(host, "/?#")) {
			char scheme[16];
			size_t sl = (size_t)(host - url);

			if (sl >= sizeof(scheme))
				sl = 0;
			memcpy(scheme, url, sl);
			scheme[sl] = '\0';
			ok = opt_escape(b, sizeof(b), &len, scheme) &&
			     opt_escape(b, sizeof(b), &len, at + 1);
		} else {
			ok = opt_escape(b, sizeof(b), &len, url);
		}
	} else {
		ok = opt_escape(b, sizeof(b), &len, "local:") &&
		     opt_escape(b, sizeof(b), &len,
				o->local_dir ? o->local_dir
					     : NOX_DEFAULT_BASE_DIR);
	}
	if (ok && o->session)
		ok = opt_escape(b, sizeof(b), &len, "#") &&
		     opt_escape(b, sizeof(b), &len, o->session);
	if (!ok) /* a path too long to show: the plain name */
		snprintf(b, sizeof(b), "-ofsname=noxfs");
	return fuse_opt_add_arg(args, b);
}

/*
 * Decodes mountinfo's octal escapes (\040 for a space) in place.
 */
static void mountinfo_unescape(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = '\0';
}

/*
 * True when MNT is already a noxfs mount: a second one stacked over it
 * would hide the first, which keeps running and holding its sandboxes
 * and cache lock.  sshfs stacks silently; we refuse.
 */
static bool already_noxfs(const char *mnt)
{
	char *real = realpath(mnt, NULL), *line = NULL;
	size_t cap = 0;
	bool found = false;
	FILE *f;

	if (!real)
		return false;
	f = fopen("/proc/self/mountinfo", "re");
	while (f && !found && getline(&line, &cap, f) > 0) {
		char *save = NULL, *fields[5], *sep, *type;
		int i;

		sep = strstr(line, " - ");
		if (!sep)
			continue;
		type = sep + 3;
		type[strcspn(type, " ")] = '\0';
		*sep = '\0';
		for (i = 0; i < 5; i++) {
			fields[i] = strtok_r(i ? NULL : line, " ", &save);
			if (!fields[i])
				break;
		}
		if (i < 5)
			continue;
		mountinfo_unescape(fields[4]);
		found = strcmp(fields[4], real) == 0 &&
			strcmp(type, "fuse.noxfs") == 0;
	}
	if (f)
		fclose(f);
	free(line);
	free(real);
	return found;
}

/* Milliseconds left until deadline (CLOCK_MONOTONIC), at least 1. */
static long ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long)(deadline->tv_sec - now.tv_sec) * 1000L +
	     (deadline->tv_nsec - now.tv_nsec) / 1000000L;
	return ms > 0 ? ms : 1;
}

/* A throw-away handle whose every call ends within what is left. */
static int probe_new(const struct fs_opts *o, const char *url,
		     const struct timespec *deadline, struct nox_backend **out,
		     struct nox_err *err)
{
	struct nox_http_opts ho;
	long left = ms_left(deadline);

	memset(&ho, 0, sizeof(ho));
	ho.base_url = url;
	ho.token = o->token;
	ho.v1_only = true;
	ho.timeout_ms = left;
	ho.connect_timeout_ms = left < 5000 ? left : 5000;
	ho.retries = -1; /* a refused connection is an answer at start */
	return nox_backend_http_new(&ho, out, err);
}

/*
 * Over HTTP the mount is refused at start, within start_timeout, when the
 * server cannot be reached, is not a NoxRunner server or refuses the
 * token, with one line saying what was tried, what answered and what to
 * do: as sshfs refuses a dead host at mount time.  GET /healthz says the
 * server is there; a touch of a sandbox that does not exist (404 from a
 * v1 server that accepts the token, 401 or 403 from one that does not)
 * says the token is good, creating nothing.  0, or -1 after the line.
 */
static int http_start_check(const struct fs_opts *o, const char *url)
{
	struct nox_backend *p = NULL;
	struct timespec deadline;
	struct nox_err err;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += o->start_timeout;
	nox_err_clear(&err);
	r = probe_new(o, url, &deadline, &p, &err);
	if (r == 0)
		r = nox_backend_health(p, &err);
	nox_backend_free(p);
	p = NULL;
	if (r == -ENOENT || r == -EPROTO || r == -EIO) {
		nox_log(NOX_LOG_ERR,
			"%s is not a NoxRunner server: %s (check "
			"the URL's host, port and path)",
			url, nox_err_str(&err, r));
		return -1;
	}
	if (r == -ETIMEDOUT) {
		nox_log(NOX_LOG_ERR,
			"no answer from %s within %d s: %s (a stalled server; "
			"raise -o start_timeout= for a slow one)",
			url, o->start_timeout, nox_err_str(&err, r));
		return -1;
	}
	if (r < 0 && r != -EACCES) {
		nox_log(NOX_LOG_ERR,
			"cannot reach %s: %s (is the server "
			"running, and is the URL right?)",
			url, nox_err_str(&err, r));
		return -1;
	}
	if (r == 0) {
		nox_err_clear(&err);
		r = probe_new(o, url, &deadline, &p, &err);
		if (r == 0)
			r = nox_backend_touch(p, FS_PROBE_ID, &err);
		nox_backend_free(p);
		if (r == 0 || r == -ENOENT)
			return 0;
	}
	if (r == -EACCES) {
		nox_log(NOX_LOG_ERR,
			"%s refused the token: %s (give it with -o token= or "
			"NOXRUNNER_TOKEN)",
			url, nox_err_str(&err, r));
		return -1;
	}
	if (r == -ETIMEDOUT || r == -ECONNREFUSED || r == -ECONNRESET ||
	    r == -EHOSTUNREACH || r == -ENETUNREACH) {
		nox_log(NOX_LOG_ERR,
			"cannot reach %s within %d s: %s (raise "
			"-o start_timeout= for a slow server)",
			url, o->start_timeout, nox_err_str(&err, r));
		return -1;
	}
	nox_log(NOX_LOG_ERR, "%s does not answer as a NoxRunner v1 server: %s",
		url, nox_err_str(&err, r));
	return -1;
}

/*
 * Probes the extensions on the mount's handle.  A server that passed the
 * start checks and then let the probe run out its op_timeout has
 * stalled: the mount is refused with one line rather than spend another
 * deadline on each request that follows (a session's create, a replay).
 */
static bool ext_probe_stalled(struct fs *fs, const char *url)
{
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += fs->opts.op_timeout;
	if (nox_backend_has(fs->be, NOX_OP_STAT) || ms_left(&deadline) > 1)
		return false; /* offered, or a definite answer in time */
	nox_log(NOX_LOG_ERR,
		"no answer from %s within %d s: GET /v1/extensions after the "
		"start checks (a stalled server; raise -o op_timeout= for a "
		"slow one)",
		url, fs->opts.op_timeout);
	return true;
}

static int backend_open(struct fs *fs)
{
	struct fs_opts *o = &fs->opts;
	const char *url = opts_url(o);
	struct nox_err err;
	int r;

	nox_err_clear(&err);
	if (!url) {
		struct nox_local_opts lo;
		char *real;

		memset(&lo, 0, sizeof(lo));
		if (o->local_dir) {
			/* absolute: the daemon changes to / later */
			real = realpath(o->local_dir, NULL);
			if (!real) {
				nox_log_errno(NOX_LOG_ERR, errno,
					      "base directory %s",
					      o->local_dir);
				return -1;
			}
			free(o->local_dir);
			o->local_dir = real;
		}
		lo.base_dir = o->local_dir;
		lo.unisolated = o->unisolated != 0;
		lo.exec_umask_set = true;
		lo.exec_umask = o->exec_umask;
		lo.output_cap = o->exec_output_max;
		if (lo.unisolated)
			nox_log(NOX_LOG_WARN,
				"unisolated: commands run without bwrap, "
				"with this daemon's rights");
		r = nox_backend_local_new(&lo, &fs->be, &err);
		fs->hooks = &fs_local_hooks;
	} else {
		struct nox_http_opts ho;

		if (http_start_check(o, url) < 0)
			return -1;
		memset(&ho, 0, sizeof(ho));
		ho.base_url = url;
		ho.token = o->token;
		ho.v1_only = o->v1_only != 0;
		ho.timeout_ms = (long)o->op_timeout * 1000L;
		ho.connect_timeout_ms =
		    ho.timeout_ms < 5000 ? ho.timeout_ms : 5000;
		if (o->exec_umask_s || o->exec_output_s)
			nox_log(NOX_LOG_WARN,
				"exec_umask and exec_output_max apply to the "
				"local backend; over http the server decides");
		r = nox_backend_http_new(&ho, &fs->be, &err);
		/* the cache layer (cache.c) keeps a local tree per sandbox;
		 * extensions are probed now, not inside the first request a
		 * user makes (the probe is cached for the handle) */
		fs->hooks = &fs_http_hooks;
		if (r == 0 && ext_probe_stalled(fs, url))
			return -1;
	}
	if (r < 0) {
		nox_log(NOX_LOG_ERR, "backend: %s", nox_err_str(&err, r));
		return -1;
	}
	fs->backend_name = nox_backend_name(fs->be);
	return 0;
}

/* -o session=ID: create or attach it and make it the FUSE root. */
static int session_open(struct fs *fs)
{
	struct nox_create_opts co = {.ttl_seconds = fs->opts.ttl};
	struct nox_err err;
	struct stat st;
	int fd, r;

	nox_err_clear(&err);
	r = nox_backend_create(fs->be, fs->opts.session, &co, NULL, &err);
	if (r == 0)
		r = fs_sandbox_attach(fs, fs->opts.session, &fs->session, &err);
	if (r < 0) {
		nox_log(NOX_LOG_ERR, "session %s: %s", fs->opts.session,
			nox_err_str(&err, r));
		return -1;
	}
	fd = fcntl(fs->session->root_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0 || fstat(fd, &st) < 0) {
		nox_log_errno(NOX_LOG_ERR, errno, "session %s",
			      fs->opts.session);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (fs_table_make_root(&fs->table, FS_SANDBOX, fs->session, fd, &st)) {
		close(fd);
		return -1;
	}
	return 0;
}

/*
 * libfuse installs its handlers only over the default disposition, and a
 * shell starts background jobs with SIGINT ignored: reset them so
 * SIGINT, SIGTERM and SIGHUP always unmount cleanly.
 */
static void signals_default(void)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

/* Every inode the kernel caches holds an O_PATH descriptor here. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Flushes every attached sandbox; 0, or -1 if one failed (logged). */
/*
 * The bound of the exit path (-o unmount_timeout=S).  Uploads still
 * pending when the file system is unmounted are sent before the daemon
 * exits, but a server that does not answer, or a thread stuck on its
 * behalf, must not keep a daemon whose mount is gone (with the cache
 * dir's lock, so the next mount could not use it).  The journal is on
 * disk before the wait starts, so what is not confirmed by then is sent
 * by the next mount.
 */
struct exit_guard {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool done;
	struct fuse_session *se; /* still mounted: unmounted on expiry */
	struct fs *fs;
	pthread_t thr;
	bool started;
};

static void *exit_guard_run(void *arg)
{
	struct exit_guard *g = arg;
	struct timespec due;
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &due);
	due.tv_sec += g->fs->opts.unmount_timeout;
	pthread_mutex_lock(&g->mu);
	while (!g->done && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&g->cond, &g->mu, &due);
	if (g->done) {
		pthread_mutex_unlock(&g->mu);
		return NULL;
	}
	nox_log(NOX_LOG_WARN,
		"unmount_timeout (%d s) passed with uploads pending; %zu "
		"operations stay in the journal for the next mount",
		g->fs->opts.unmount_timeout, fs_http_journaled(g->fs));
	if (g->se)
		fuse_session_unmount(g->se);
	/* the main thread is stuck: exit here, keeping the mutex */
	_exit(1);
}

/* Starts the guard; without a thread the exit path is not bounded. */
static void exit_guard_start(struct exit_guard *g, struct fs *fs,
			     struct fuse_session *se)
{
	pthread_condattr_t ca;

	memset(g, 0, sizeof(*g));
	g->fs = fs;
	g->se = se;
	pthread_mutex_init(&g->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cond, &ca);
	pthread_condattr_destroy(&ca);
	g->started = pthread_create(&g->thr, NULL, exit_guard_run, g) == 0;
	if (!g->started)
		nox_log(NOX_LOG_WARN, "no unmount_timeout guard thread");
}

/* The session is about to be unmounted by the main thread itself. */
static void exit_guard_unmounting(struct exit_guard *g)
{
	if (!g->started)
		return;
	pthread_mutex_lock(&g->mu);
	g->se = NULL;
	pthread_mutex_unlock(&g->mu);
}

/* The exit path is through: the guard ends without a word. */
static void exit_guard_stop(struct exit_guard *g)
{
	if (!g->started)
		return;
	pthread_mutex_lock(&g->mu);
	g->done = true;
	pthread_cond_signal(&g->cond);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->thr, NULL);
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->mu);
	g->started = false;
}

static int flush_all(struct fs *fs)
{
	struct fs_sandbox **v = NULL;
	size_t n = 0, i;
	int ret = 0;

	if (fs_sandbox_list(fs, &v, &n) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		struct nox_err err;
		int r;

		nox_err_clear(&err);
		r = fs_sandbox_flush(v[i], &err);
		if (r < 0) {
			nox_log(NOX_LOG_ERR, "%s: flush at unmount: %s",
				v[i]->id, nox_err_str(&err, r));
			ret = -1;
		}
		fs_sandbox_put(v[i]);
	}
	free(v);
	return ret;
}

static int run_loop(struct fuse_session *se, const struct fuse_cmdline_opts *co)
{
	struct fuse_loop_config *cfg;
	int r;

	if (co->singlethread)
		return fuse_session_loop(se);
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(cfg, (unsigned)co->clone_fd);
	/* long commands hold a worker each while the kernel may need more
	 * to finish invalidations: allow plenty (10 is libfuse's default) */
	fuse_loop_cfg_set_max_threads(
	    cfg, co->max_threads == 10 ? 64 : co->max_threads);
	if (co->max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(cfg, co->max_idle_threads);
	r = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return r;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts co;
	struct fuse_session *se = NULL;
	static struct fs fs;
	struct exit_guard guard = {0};
	bool mounted = false, handlers = false;
	int ret = 1, r;

	memset(&co, 0, sizeof(co));
	nox_log_init("noxfs", NOX_LOG_INFO);
	fuse_set_log_func(fs_fuse_log);
	fs.opts.exec_timeout = NOX_DEFAULT_EXEC_TIMEOUT;
	fs.opts.ttl = NOX_DEFAULT_TTL;
	fs.opts.start_timeout = FS_START_TIMEOUT;
	fs.opts.op_timeout = FS_OP_TIMEOUT;
	fs.opts.unmount_timeout = FS_UNMOUNT_TIMEOUT;
	fs.opts.fd_cache = (int)FS_FD_CACHE;
	fs.opts.node_max = (int)FS_NODE_MAX;
	fs.opts.attr_timeout = 1.0;
	fs.opts.entry_timeout = 1.0;
	if (fuse_opt_parse(&args, &fs.opts, fs_opt_spec, opt_proc) == -1)
		goto out_args;
	if (fs.opts.source && source_apply(&fs.opts) < 0)
		goto out_args;
	if (fs.opts.pending) {
		/* a single positional: it was the mount point after all */
		r = fuse_opt_add_arg(&args, fs.opts.pending);
		free(fs.opts.pending);
		fs.opts.pending = NULL;
		if (r == -1)
			goto out_args;
	}
	if (fs.opts.show_help) {
		usage(argv[0]);
		printf("libfuse options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto out_args;
	}
	if (fs.opts.show_version) {
		printf("noxfs %s\n", NOX_VERSION);
		ret = 0;
		goto out_args;
	}
	if ((!fs.opts.has_subtype &&
	     fuse_opt_add_arg(&args, "-osubtype=noxfs") == -1))
		goto out_args;
	if (fuse_parse_cmdline(&args, &co) != 0)
		goto out_args;
	if (!co.mountpoint) {
		fprintf(stderr,
			"usage: %s [options] MOUNTPOINT "
			"(see --help)\n",
			argv[0]);
		goto out_args;
	}
	if (co.debug)
		nox_log_init("noxfs", NOX_LOG_DEBUG);
	if (co.singlethread) {
		/* a notification can wait for a kernel lock held by a request
		 * only our one (busy) thread could answer */
		fs.no_notify = true;
		nox_log(NOX_LOG_WARN, "-s: caches are not invalidated after "
				      "commands; they expire by their "
				      "timeouts");
	}
	if (opts_check(&fs.opts) < 0)
		goto out_args;
	if (!fs.opts.has_fsname && fsname_add(&args, &fs.opts) == -1)
		goto out_args;
	if (already_noxfs(co.mountpoint)) {
		nox_log(NOX_LOG_ERR,
			"%s is already a noxfs mount (unmount it first: "
			"fusermount3 -u %s)",
			co.mountpoint, co.mountpoint);
		goto out_args;
	}

	umask(0); /* the kernel applied the caller's umask already */
	raise_nofile();
#ifdef M_ARENA_MAX
	/* one malloc arena per worker thread (up to 8 per core) kept the
	 * freed nodes of one thread from serving another: a walk of 200,000
	 * files peaked 13 MiB higher than with two arenas */
	(void)mallopt(M_ARENA_MAX, 2);
#endif
	fs_cred_init();
	fs.uid = getuid();
	fs.gid = getgid();
	fs.as_root = geteuid() == 0;
	clock_gettime(CLOCK_REALTIME, &fs.start);
	if (fs_table_init(&fs.table) < 0)
		goto out_args;
	fs.table.fd_cache = (size_t)fs.opts.fd_cache;
	fs.table.node_max = (size_t)fs.opts.node_max;
	if (backend_open(&fs) < 0)
		goto out;
	if (fs.opts.session) {
		if (session_open(&fs) < 0)
			goto out;
	} else if (fs_table_make_root(&fs.table, FS_ROOT, NULL, -1, NULL)) {
		goto out;
	}
	(void)fs_http_replay(&fs);
	if (fs.opts.cache_dir && strcmp(fs.backend_name, "local") == 0)
		nox_log(NOX_LOG_INFO, "cache_dir is for the http backend; "
				      "ignored");

	se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &fs);
	if (!se)
		goto out;
	signals_default();
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	handlers = true;
	if (fuse_session_mount(se, co.mountpoint) != 0)
		goto out;
	mounted = true;
	if (fuse_daemonize(co.foreground) != 0)
		goto out;
	fs_http_start(&fs);
	if (!co.foreground)
		nox_log_use_syslog(true);
	fs.se = se;
	r = fs_keepalive_start(&fs);
	if (r < 0)
		nox_log(NOX_LOG_WARN, "keepalive thread: %s", strerror(-r));
	r = fs_trim_start(&fs);
	if (r < 0)
		nox_log(NOX_LOG_WARN, "node budget thread: %s", strerror(-r));
	nox_log(NOX_LOG_INFO, "mounted %s (%s backend%s%s)", co.mountpoint,
		fs.backend_name, fs.opts.session ? ", session " : "",
		fs.opts.session ? fs.opts.session : "");

	r = run_loop(se, &co);
	ret = r < 0 ? 1 : 0; /* > 0: ended by that signal, cleanly */
	if (r < 0)
		nox_log(NOX_LOG_ERR, "session loop: %s", strerror(-r));
	fs_keepalive_stop(&fs);
	fs_trim_stop(&fs);
	exit_guard_start(&guard, &fs, se);
	fs_http_persist(&fs);
	if (flush_all(&fs) < 0)
		ret = 1;
out:
	exit_guard_unmounting(&guard);
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	fs.se = NULL;
	/* before the table (its mutex guards the references); the root
	 * node's reference keeps the session sandbox until the cleanup */
	fs_http_release(&fs);
	fs_sandbox_put(fs.session);
	fs.session = NULL;
	fs_sandbox_detach_all(&fs);
	exit_guard_stop(&guard);
	fs_table_cleanup(&fs.table);
	nox_backend_free(fs.be);
out_args:
	free(co.mountpoint);
	fuse_opt_free_args(&args);
	free(fs.opts.local_dir);
	free(fs.opts.url);
	free(fs.opts.session);
	free(fs.opts.source);
	free(fs.opts.cache_dir);
	free(fs.opts.cache_max_s);
	free(fs.opts.exec_umask_s);
	free(fs.opts.exec_output_s);
	if (ret == 0)
		nox_log(NOX_LOG_DEBUG, "exit");
	return ret;
}
