/*
 * noxd.c - noxd's main: options, start-up, signals, daemonising, shutdown.
 *
 * Start-up order: parse options, open the local backend, (daemonise),
 * listen, write --port-file and --pid-file atomically, print the one
 * "noxd listening on URL" line, start the reaper, then wait for SIGTERM
 * or SIGINT.  Signals reach the main thread through a self-pipe rather than
 * a blocked mask, so the commands the backend forks start with normal
 * signal dispositions and mask.  Shutdown stops the reaper and MHD (which
 * waits for running requests), removes the pid and port files, exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "noxd.h"

static int noxd_sigpipe[2] = {-1, -1};

static void noxd_on_signal(int sig)
{
	unsigned char c = (unsigned char)sig;
	int saved = errno;

	(void)!write(noxd_sigpipe[1], &c, 1);
	errno = saved;
}

/* A caught (not ignored) SIGPIPE: writes fail with EPIPE, and children get
 * the default disposition back at exec. */
static void noxd_on_sigpipe(int sig)
{
	(void)sig;
}

static int noxd_signals(void)
{
	struct sigaction sa;

	if (pipe2(noxd_sigpipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = noxd_on_signal;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = noxd_on_sigpipe;
	sigaction(SIGPIPE, &sa, NULL);
	return 0;
}

static void noxd_usage(FILE *f)
{
	fprintf(
	    f, "Usage: noxd [OPTION]...\n"
	       "Serve the NoxRunner v1 HTTP API over local sandboxes.\n\n"
	       "  -l, --listen HOST:PORT   bind address (default "
	       "127.0.0.1:8080; port 0 picks one)\n"
	       "  -b, --base-dir DIR       sandbox directory (default /tmp)\n"
	       "  -t, --token TOKEN        require 'Authorization: Bearer "
	       "TOKEN' (or $NOXD_TOKEN)\n"
	       "      --max-body BYTES     upload limit (default 1G; K, M, G "
	       "suffixes)\n"
	       "      --v1-only            serve NoxRunner v1 only, no "
	       "extensions\n"
	       "      --unisolated         run commands without bubblewrap "
	       "(unsafe)\n"
	       "      --allow-network      keep the host network in sandboxes\n"
	       "      --output-cap BYTES   stdout/stderr cap per stream "
	       "(default 1M, at most 5M)\n"
	       "      --exec-umask OCTAL   umask of commands (default 022)\n"
	       "      --reap-interval S    expiry check period (default 30; 0 "
	       "off)\n"
	       "      --conn-timeout S     close idle connections after S "
	       "seconds (default 300)\n"
	       "      --tree-page N        entries per fs/tree page at most "
	       "(default 10000)\n"
	       "      --pid-file FILE      write the pid once listening\n"
	       "      --port-file FILE     write the port once listening\n"
	       "  -d, --debug              log debug messages\n"
	       "  -f, --foreground         stay in the foreground (default)\n"
	       "      --daemon             detach and log to syslog\n"
	       "  -h, --help               show this help\n"
	       "  -V, --version            show the version\n");
}

/* Parses a byte count with an optional K/M/G/T suffix (powers of 1024). */
static int noxd_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1] && strcmp(end + 1, "iB") != 0 &&
	    strcmp(end + 1, "B") != 0)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

enum {
	OPT_MAX_BODY = 256,
	OPT_V1_ONLY,
	OPT_UNISOLATED,
	OPT_ALLOW_NETWORK,
	OPT_OUTPUT_CAP,
	OPT_EXEC_UMASK,
	OPT_REAP_INTERVAL,
	OPT_CONN_TIMEOUT,
	OPT_TREE_PAGE,
	OPT_PID_FILE,
	OPT_PORT_FILE,
	OPT_DAEMON,
};

static const struct option noxd_longopts[] = {
    {"listen", required_argument, NULL, 'l'},
    {"base-dir", required_argument, NULL, 'b'},
    {"token", required_argument, NULL, 't'},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"v1-only", no_argument, NULL, OPT_V1_ONLY},
    {"unisolated", no_argument, NULL, OPT_UNISOLATED},
    {"allow-network", no_argument, NULL, OPT_ALLOW_NETWORK},
    {"output-cap", required_argument, NULL, OPT_OUTPUT_CAP},
    {"exec-umask", required_argument, NULL, OPT_EXEC_UMASK},
    {"reap-interval", required_argument, NULL, OPT_REAP_INTERVAL},
    {"conn-timeout", required_argument, NULL, OPT_CONN_TIMEOUT},
    {"tree-page", required_argument, NULL, OPT_TREE_PAGE},
    {"pid-file", required_argument, NULL, OPT_PID_FILE},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"debug", no_argument, NULL, 'd'},
    {"foreground", no_argument, NULL, 'f'},
    {"daemon", no_argument, NULL, OPT_DAEMON},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Returns 0 to run, 1 to exit 0 (help, version), -1 on a usage error. */
static int noxd_parse_opts(int argc, char **argv, struct noxd_opts *o)
{
	uint64_t v;
	int c;

	memset(o, 0, sizeof(*o));
	o->listen = "127.0.0.1:8080";
	o->base_dir = NOX_DEFAULT_BASE_DIR;
	o->max_body = NOXD_DEFAULT_MAX_BODY;
	o->output_cap = NOX_V1_OUTPUT_CAP;
	o->exec_umask = NOX_DEFAULT_EXEC_UMASK;
	o->reap_interval = 30;
	o->conn_timeout = NOXD_CONN_TIMEOUT;
	o->tree_page = NOXD_TREE_PAGE;
	o->token = getenv("NOXD_TOKEN");
	for (;;) {
		c = getopt_long(argc, argv, "l:b:t:dfhV", noxd_longopts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case 'l':
			o->listen = optarg;
			break;
		case 'b':
			o->base_dir = optarg;
			break;
		case 't':
			o->token = optarg;
			break;
		case OPT_MAX_BODY:
			if (noxd_parse_size(optarg, &o->max_body) < 0) {
				fprintf(stderr, "noxd: bad --max-body '%s'\n",
					optarg);
				return -1;
			}
			break;
		case OPT_V1_ONLY:
			o->v1_only = true;
			break;
		case OPT_UNISOLATED:
			o->unisolated = true;
			break;
		case OPT_ALLOW_NETWORK:
			o->allow_network = true;
			break;
		case OPT_OUTPUT_CAP:
			if (noxd_parse_size(optarg, &v) < 0 || v == 0 ||
			    v > NOXD_MAX_OUTPUT_CAP) {
				fprintf(stderr, "noxd: bad --output-cap '%s'\n",
					optarg);
				return -1;
			}
			o->output_cap = (size_t)v;
			break;
		case OPT_EXEC_UMASK: {
			unsigned long m;
			char *end;

			errno = 0;
			m = strtoul(optarg, &end, 8);
			if (errno || end == optarg || *end || m > 0777) {
				fprintf(stderr, "noxd: bad --exec-umask '%s'\n",
					optarg);
				return -1;
			}
			o->exec_umask = (mode_t)m;
			break;
		}
		case OPT_REAP_INTERVAL:
			if (noxd_parse_size(optarg, &v) < 0 || v > 86400) {
				fprintf(stderr,
					"noxd: bad --reap-interval '%s'\n",
					optarg);
				return -1;
			}
			o->reap_interval = (unsigned)v;
			break;
		case OPT_CONN_TIMEOUT:
			if (noxd_parse_size(optarg, &v) < 0 || v == 0 ||
			    v > 86400) {
				fprintf(stderr,
					"noxd: bad --conn-timeout '%s'\n",
					optarg);
				return -1;
			}
			o->conn_timeout = (unsigned)v;
			break;
		case OPT_TREE_PAGE:
			if (noxd_parse_size(optarg, &v) < 0 || v == 0 ||
			    v > 1000000) {
				fprintf(stderr, "noxd: bad --tree-page '%s'\n",
					optarg);
				return -1;
			}
			o->tree_page = (size_t)v;
			break;
		case OPT_PID_FILE:
			o->pid_file = optarg;
			break;
		case OPT_PORT_FILE:
			o->port_file = optarg;
			break;
		case 'd':
			o->debug = true;
			break;
		case 'f':
			o->daemonize = false;
			break;
		case OPT_DAEMON:
			o->daemonize = true;
			break;
		case 'h':
			noxd_usage(stdout);
			return 1;
		case 'V':
			printf("noxd %s\n", NOX_VERSION);
			return 1;
		default:
			noxd_usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "noxd: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	if (o->token && !*o->token)
		o->token = NULL;
	return 0;
}

/* Writes text to path through a temp file and rename(2). */
static int noxd_write_atomic(const char *path, const char *text)
{
	char tmp[4096];
	size_t len = strlen(text);
	int fd, n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		n = -errno;
		close(fd);
		unlink(tmp);
		return n ? n : -EIO;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		n = -errno;
		unlink(tmp);
		return n;
	}
	return 0;
}

/*
 * Forks into the background.  The parent waits on a pipe until the child
 * reports it is listening (so "noxd --daemon" returns only once the server
 * answers), prints what the child sent and exits; returns the write end in
 * the child.
 */
static int noxd_daemonize(void)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		char buf[256];
		ssize_t n;

		close(p[1]);
		n = read(p[0], buf, sizeof(buf));
		if (n <= 0)
			_exit(1);
		fwrite(buf, 1, (size_t)n, stdout);
		fflush(stdout);
		_exit(0);
	}
	close(p[0]);
	if (setsid() < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		return -errno;
	return p[1];
}

static void noxd_detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

int main(int argc, char **argv)
{
	static struct noxd d;
	struct nox_local_opts lo;
	struct nox_err err;
	char line[256], num[32];
	char base[4096];
	int rc, notify = -1, status = 1;

	rc = noxd_parse_opts(argc, argv, &d.opts);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	nox_log_init("noxd", d.opts.debug ? NOX_LOG_DEBUG : NOX_LOG_INFO);

	/* Relative paths would break once a daemon chdirs to /. */
	if (!realpath(d.opts.base_dir, base)) {
		nox_log_errno(NOX_LOG_ERR, errno, "base dir '%s'",
			      d.opts.base_dir);
		return 1;
	}
	d.opts.base_dir = base;
	if (d.opts.unisolated)
		nox_log(NOX_LOG_WARN,
			"--unisolated: commands run directly on this host, "
			"with the rights of noxd, not in a sandbox");

	memset(&lo, 0, sizeof(lo));
	lo.base_dir = d.opts.base_dir;
	lo.unisolated = d.opts.unisolated;
	lo.allow_network = d.opts.allow_network;
	lo.output_cap = d.opts.output_cap;
	lo.exec_umask_set = true;
	lo.exec_umask = d.opts.exec_umask;
	rc = nox_backend_local_new(&lo, &d.backend, &err);
	if (rc < 0) {
		nox_log(NOX_LOG_ERR, "local backend: %s",
			nox_err_str(&err, -rc));
		return 1;
	}
	if (noxd_signals() < 0) {
		nox_log_errno(NOX_LOG_ERR, errno, "signal pipe");
		goto out;
	}
	if (d.opts.daemonize) {
		notify = noxd_daemonize();
		if (notify < 0) {
			nox_log_errno(NOX_LOG_ERR, -notify, "daemonize");
			goto out;
		}
		nox_log_use_syslog(true);
		noxd_detach_stdio();
	}
	if (server_start(&d) < 0)
		goto out;
	if (!d.opts.token && strncmp(d.host, "127.", 4) != 0 &&
	    strcmp(d.host, "::1") != 0)
		nox_log(NOX_LOG_WARN,
			"listening on %s without --token: anyone who can "
			"reach it can run commands",
			d.host);

	snprintf(num, sizeof(num), "%u\n", d.port);
	if (d.opts.port_file) {
		rc = noxd_write_atomic(d.opts.port_file, num);
		if (rc < 0) {
			nox_log_errno(NOX_LOG_ERR, -rc, "port file '%s'",
				      d.opts.port_file);
			goto out_stop;
		}
	}
	if (d.opts.pid_file) {
		snprintf(line, sizeof(line), "%ld\n", (long)getpid());
		rc = noxd_write_atomic(d.opts.pid_file, line);
		if (rc < 0) {
			nox_log_errno(NOX_LOG_ERR, -rc, "pid file '%s'",
				      d.opts.pid_file);
			goto out_stop;
		}
	}
	snprintf(line, sizeof(line), "noxd listening on http://%s%s%s:%u\n",
		 d.ipv6 ? "[" : "", d.host, d.ipv6 ? "]" : "", d.port);
	if (notify >= 0) {
		(void)!write(notify, line, strlen(line));
		close(notify);
		notify = -1;
	} else {
		fputs(line, stdout);
		fflush(stdout);
	}
	if (d.opts.debug)
		nox_log(NOX_LOG_DEBUG, "base dir %s, max body %llu, %s",
			d.opts.base_dir, (unsigned long long)d.opts.max_body,
			d.opts.v1_only ? "v1 only" : "extensions on");

	rc = reaper_start(&d, d.opts.reap_interval);
	if (rc < 0)
		nox_log_errno(NOX_LOG_WARN, -rc, "reaper not started");

	for (;;) {
		struct pollfd pfd = {.fd = noxd_sigpipe[0], .events = POLLIN};
		unsigned char sig;

		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			break;
		if (read(noxd_sigpipe[0], &sig, 1) == 1) {
			nox_log(NOX_LOG_INFO, "signal %d: shutting down", sig);
			break;
		}
	}
	status = 0;
	reaper_stop(&d);
out_stop:
	server_stop(&d);
	if (d.opts.pid_file)
		unlink(d.opts.pid_file);
	if (d.opts.port_file)
		unlink(d.opts.port_file);
out:
	nox_backend_free(d.backend);
	return status;
}
