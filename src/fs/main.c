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
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "cache.h"
#include "cred.h"
#include "fs.h"
#include "sandbox.h"

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
    FS_OPT("attr_timeout=%lf", attr_timeout, 0),
    FS_OPT("entry_timeout=%lf", entry_timeout, 0),
    FS_OPT("unisolated", unisolated, 1),
    FS_OPT("exec_umask=%s", exec_umask_s, 0),
    FS_OPT("exec_output_max=%s", exec_output_s, 0),
    FS_OPT("writeback_delay=%d", writeback_delay, 0),
    FS_OPT("token=%s", token, 0),
    FS_OPT("v1_only", v1_only, 1),
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
 * "#ID" session, or a bare session ID (local backend, session=ID).
 */
static int source_parse(struct fs_opts *o, const char *src)
{
	const char *hash;

	if (strcmp(src, "local") == 0) {
		o->local = 1;
		return 0;
	}
	if (strncmp(src, "local:", 6) == 0 && src[6]) {
		free(o->local_dir);
		o->local_dir = strdup(src + 6);
		return o->local_dir ? 0 : -1;
	}
	if (strncmp(src, "http://", 7) == 0 || strncmp(src, "https://", 8) == 0) {
		hash = strchr(src, '#');
		free(o->url);
		o->url = hash ? strndup(src, (size_t)(hash - src)) : strdup(src);
		if (!o->url)
			return -1;
		if (hash && hash[1]) {
			free(o->session);
			o->session = strdup(hash + 1);
			if (!o->session)
				return -1;
		}
		return 0;
	}
	if (nox_id_validate(src, NULL) == 0) {
		o->local = 1;
		free(o->session);
		o->session = strdup(src);
		return o->session ? 0 : -1;
	}
	nox_log(NOX_LOG_ERR,
		"source '%s' is not local, local:DIR, a URL or a session id",
		src);
	return -1;
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
		if (source_parse(o, o->pending) < 0)
			o->source_bad = 1;
		free(o->pending);
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
	       "    -o writeback_delay=MS  http: defer and batch uploads\n"
	       "    -o token=TOKEN         http: bearer token (default:\n"
	       "                           $NOXRUNNER_TOKEN)\n"
	       "    -o v1_only             http: use no server extensions\n"
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

__attribute__((format(printf, 2, 0))) static void
fs_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char buf[2048];
	size_t n;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	nox_log((enum nox_log_level)level, "%s", buf);
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
	return 0;
}

static int backend_open(struct fs *fs)
{
	struct fs_opts *o = &fs->opts;
	const char *url = o->url;
	struct nox_err err;
	int r;

	if (!url && !o->local) {
		url = getenv("NOXRUNNER_BASE_URL");
		if (url && !*url)
			url = NULL;
	}
	nox_err_clear(&err);
	if (o->local || !url) {
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

		memset(&ho, 0, sizeof(ho));
		ho.base_url = url;
		ho.token = o->token;
		ho.v1_only = o->v1_only != 0;
		if (o->exec_umask_s || o->exec_output_s)
			nox_log(NOX_LOG_WARN,
				"exec_umask and exec_output_max apply to the "
				"local backend; over http the server decides");
		r = nox_backend_http_new(&ho, &fs->be, &err);
		/* the cache layer (cache.c) keeps a local tree per sandbox;
		 * extensions are probed now, not inside the first request a
		 * user makes (the probe is cached for the handle) */
		fs->hooks = &fs_http_hooks;
		if (r == 0)
			(void)nox_backend_has(fs->be, NOX_OP_STAT);
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
	bool mounted = false, handlers = false;
	int ret = 1, r;

	memset(&co, 0, sizeof(co));
	nox_log_init("noxfs", NOX_LOG_INFO);
	fuse_set_log_func(fs_fuse_log);
	fs.opts.exec_timeout = NOX_DEFAULT_EXEC_TIMEOUT;
	fs.opts.ttl = NOX_DEFAULT_TTL;
	fs.opts.attr_timeout = 1.0;
	fs.opts.entry_timeout = 1.0;
	if (fuse_opt_parse(&args, &fs.opts, fs_opt_spec, opt_proc) == -1)
		goto out_args;
	if (fs.opts.source_bad)
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
	if ((!fs.opts.has_fsname &&
	     fuse_opt_add_arg(&args, "-ofsname=noxfs") == -1) ||
	    (!fs.opts.has_subtype &&
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

	umask(0); /* the kernel applied the caller's umask already */
	raise_nofile();
	fs_cred_init();
	fs.uid = getuid();
	fs.gid = getgid();
	fs.as_root = geteuid() == 0;
	clock_gettime(CLOCK_REALTIME, &fs.start);
	if (fs_table_init(&fs.table) < 0)
		goto out_args;
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
	if (!co.foreground)
		nox_log_use_syslog(true);
	fs.se = se;
	r = fs_keepalive_start(&fs);
	if (r < 0)
		nox_log(NOX_LOG_WARN, "keepalive thread: %s", strerror(-r));
	nox_log(NOX_LOG_INFO, "mounted %s (%s backend%s%s)", co.mountpoint,
		fs.backend_name, fs.opts.session ? ", session " : "",
		fs.opts.session ? fs.opts.session : "");

	r = run_loop(se, &co);
	ret = r < 0 ? 1 : 0; /* > 0: ended by that signal, cleanly */
	if (r < 0)
		nox_log(NOX_LOG_ERR, "session loop: %s", strerror(-r));
	fs_keepalive_stop(&fs);
	if (flush_all(&fs) < 0)
		ret = 1;
out:
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
	fs_table_cleanup(&fs.table);
	nox_backend_free(fs.be);
out_args:
	free(co.mountpoint);
	fuse_opt_free_args(&args);
	free(fs.opts.local_dir);
	free(fs.opts.url);
	free(fs.opts.session);
	free(fs.opts.cache_dir);
	free(fs.opts.exec_umask_s);
	free(fs.opts.exec_output_s);
	if (ret == 0)
		nox_log(NOX_LOG_DEBUG, "exit");
	return ret;
}
