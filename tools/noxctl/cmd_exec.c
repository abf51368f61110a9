/*
 * cmd_exec.c - running commands: exec (exact argv), sh (one shell line)
 * and shell (a line-by-line loop with a tracked working directory).
 *
 * The command's output is copied raw: stdout to our stdout, stderr to our
 * stderr, and noxctl exits with its status.  The only shell strings ever
 * sent are the user's own lines and the constant cd helper below, which
 * takes the directory as "$1": nothing typed is pasted into a script.
 *
 * Ctrl-C while a command runs stops it in the sandbox (ex_run).
 *
 * Limits: the backend returns output when the command has finished (no
 * streaming), capped per stream (the backend's cap, about 1 MiB).
 * "cd" is recognised only as a whole line ("cd", "cd DIR", "cd -");
 * a cd inside a compound line does not carry over to the next line.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "fdio_i.h"
#include "noxctl_i.h"

#define EX_MAX_TIMEOUT 86400L

enum {
	EX_OPT_WORKDIR = CTL_OPT_CMD,
	EX_OPT_ENV,
	EX_OPT_TIMEOUT,
};

static const struct option ex_opts[] = {
    CTL_OPTS_COMMON,
    {"workdir", required_argument, NULL, EX_OPT_WORKDIR},
    {"env", required_argument, NULL, EX_OPT_ENV},
    {"timeout", required_argument, NULL, EX_OPT_TIMEOUT},
    CTL_OPTS_JSON,
    {NULL, 0, NULL, 0},
};

struct ex_args {
	struct nox_exec_req req;
	const char **env; /* owned array, strings point into argv */
	size_t nenv;
};

static void ex_args_cleanup(struct ex_args *a)
{
	free(a->env);
	a->env = NULL;
}

static int ex_opt(struct ctl *c, const struct ctl_cmd *cmd, int ch, char *arg,
		  void *ud)
{
	struct ex_args *a = ud;
	const char *eq;
	long t;

	switch (ch) {
	case EX_OPT_WORKDIR:
		if (!arg[0])
			return ctl_usage(c, cmd, "--workdir: empty");
		a->req.workdir = arg;
		break;
	case EX_OPT_ENV:
		eq = strchr(arg, '=');
		if (!eq || eq == arg)
			return ctl_usage(c, cmd, "--env: '%s' is not K=V", arg);
		a->env[a->nenv++] = arg;
		break;
	case EX_OPT_TIMEOUT:
		t = ctl_parse_seconds(arg, EX_MAX_TIMEOUT);
		if (t <= 0)
			return ctl_usage(c, cmd,
					 "--timeout: '%s' is not a number of "
					 "seconds (1 to %ld)",
					 arg, EX_MAX_TIMEOUT);
		a->req.timeout_seconds = (int)t;
		break;
	}
	return -1;
}

/*
 * Parses the exec options in argv[0..argc) (argc may stop before a "--").
 * Returns -1 to go on (positional arguments start at optind) or an exit
 * code.
 */
static int ex_parse(struct ctl *c, const struct ctl_cmd *cmd, int argc,
		    char **argv, struct ex_args *a)
{
	int r;

	memset(a, 0, sizeof(*a));
	a->env = calloc((size_t)argc + 1, sizeof(*a->env));
	if (!a->env)
		return ctl_error(c, "out of memory");
	r = ctl_parse_opts(c, cmd, argc, argv, NULL, ex_opts, ex_opt, a);
	if (r >= 0)
		return r;
	if (a->nenv)
		a->req.env = a->env;
	return -1;
}

/*
 * Writes a command's output; 0 or an exit code.  A cut stream needs no
 * note of ours: the backend that cut it ended stderr with a
 * "nox: truncated: ..." line (NOX_EXEC_TRUNCATED_NOTE).
 */
static int ex_copy_output(const struct ctl *c,
			  const struct nox_exec_result *res)
{
	int r;

	fflush(stdout);
	r = fdio_write_all(STDOUT_FILENO, res->out, res->out_len);
	if (r < 0)
		return ctl_error(c, "writing standard output: %s",
				 strerror(-r));
	fdio_write_all(STDERR_FILENO, res->err, res->err_len);
	return 0;
}

/* An exit status as the shell sees it. */
static int ex_status(int code)
{
	return code < 0 || code > 255 ? 255 : code;
}

/*
 * Runs req in id and reports it: raw output and the command's status, or
 * with --json the v1 result and 0.  Backend failures give 69 or 70.
 */
/* the eventfd SIGINT, SIGTERM and SIGHUP make readable while a command
 * runs (ex_run), -1 otherwise */
static volatile sig_atomic_t ex_cancel_fd = -1;

static void ex_on_signal(int sig)
{
	uint64_t one = 1;
	int saved = errno;

	(void)sig;
	if (ex_cancel_fd >= 0)
		(void)!write(ex_cancel_fd, &one, sizeof(one));
	errno = saved;
}

/*
 * Runs req; Ctrl-C (SIGINT), SIGTERM or SIGHUP meanwhile stops the
 * command in the sandbox (its whole tree; over http a server offering
 * nox.cancel) and exits 128 + 2 as a shell does.
 */
static int ex_run(struct ctl *c, const char *id, const struct nox_exec_req *req)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	struct sigaction sa, old[3];
	struct nox_exec_req rq = *req;
	struct nox_cancel nc = {.events = POLLIN};
	struct nox_exec_result res;
	struct nox_err err;
	char *json;
	int r, rc;
	size_t i;

	nc.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (nc.fd >= 0) {
		ex_cancel_fd = nc.fd;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = ex_on_signal;
		sigemptyset(&sa.sa_mask);
		for (i = 0; i < 3; i++)
			sigaction(sigs[i], &sa, &old[i]);
		rq.cancel = &nc;
	}
	r = nox_backend_exec(c->b, id, &rq, &res, &err);
	if (nc.fd >= 0) {
		for (i = 0; i < 3; i++)
			sigaction(sigs[i], &old[i], NULL);
		ex_cancel_fd = -1;
		close(nc.fd);
	}
	if (r == -EINTR) {
		ctl_fail(c, r, &err);
		return 128 + SIGINT;
	}
	if (r < 0)
		return ctl_fail(c, r, &err);
	if (c->json) {
		json = nox_v1_exec_result_encode(&res);
		if (!json) {
			rc = ctl_error(c, "cannot encode the result");
		} else {
			puts(json);
			free(json);
			rc = CTL_EX_OK;
		}
	} else {
		rc = ex_copy_output(c, &res);
		if (rc == 0)
			rc = ex_status(res.exit_code);
	}
	nox_exec_result_cleanup(&res);
	return rc;
}

static bool ex_has_help(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

int cmd_exec(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct ex_args a;
	const char *id;
	int dd, rc;

	for (dd = 1; dd < argc; dd++)
		if (strcmp(argv[dd], "--") == 0)
			break;
	if (dd == argc) {
		if (ex_has_help(argc, argv))
			return ctl_cmd_help(cmd);
		return ctl_usage(c, cmd, "missing '--' before the command");
	}
	rc = ex_parse(c, cmd, dd, argv, &a);
	if (rc >= 0)
		goto out;
	if (optind >= dd) {
		rc = ctl_usage(c, cmd, "missing sandbox ID");
		goto out;
	}
	if (optind + 1 < dd) {
		rc = ctl_usage(c, cmd, "unexpected argument '%s' before '--'",
			       argv[optind + 1]);
		goto out;
	}
	id = argv[optind];
	if (dd + 1 >= argc) {
		rc = ctl_usage(c, cmd, "missing command after '--'");
		goto out;
	}
	if (!argv[dd + 1][0]) {
		rc = ctl_usage(c, cmd, "empty command name");
		goto out;
	}
	rc = ctl_check_id(c, cmd, id);
	if (rc)
		goto out;
	rc = ctl_backend(c);
	if (rc)
		goto out;
	a.req.argv = (const char *const *)argv + dd + 1;
	rc = ex_run(c, id, &a.req);
out:
	ex_args_cleanup(&a);
	return rc;
}

int cmd_sh(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *sh_argv[4] = {"sh", "-c", NULL, NULL};
	struct ex_args a;
	const char *id;
	int rc;

	rc = ex_parse(c, cmd, argc, argv, &a);
	if (rc >= 0)
		goto out;
	if (optind >= argc) {
		rc = ctl_usage(c, cmd, "missing sandbox ID");
		goto out;
	}
	id = argv[optind];
	if (optind + 1 >= argc) {
		rc = ctl_usage(c, cmd, "missing shell line");
		goto out;
	}
	if (optind + 2 < argc) {
		rc = ctl_usage(c, cmd,
			       "one shell line expected, got %d arguments "
			       "(quote the line)",
			       argc - optind - 1);
		goto out;
	}
	rc = ctl_check_id(c, cmd, id);
	if (rc)
		goto out;
	rc = ctl_backend(c);
	if (rc)
		goto out;
	sh_argv[2] = argv[optind + 1];
	a.req.argv = sh_argv;
	rc = ex_run(c, id, &a.req);
out:
	ex_args_cleanup(&a);
	return rc;
}

/* ---- shell ------------------------------------------------------------ */

struct ex_shell {
	struct ctl *c;
	const char *id;
	struct ex_args *a;
	char cwd[PATH_MAX];
	char oldcwd[PATH_MAX];
};

/* "word" alone or followed by blanks: returns what follows, else NULL. */
static const char *ex_word(const char *line, const char *word)
{
	size_t n = strlen(word);

	if (strncmp(line, word, n) != 0)
		return NULL;
	if (line[n] && line[n] != ' ' && line[n] != '\t')
		return NULL;
	line += n;
	while (*line == ' ' || *line == '\t')
		line++;
	return line;
}

/*
 * cd: resolve the target inside the sandbox with a constant script that
 * takes it as "$1" (so no quoting of user text is ever needed), then keep
 * the printed absolute path as the working directory of later lines.
 * Absolute targets resolve from /workspace, so a working directory the
 * backend refuses can always be left with "cd /workspace" or "cd".
 */
static int ex_cd(struct ex_shell *s, const char *arg)
{
	const char *argv[] = {"sh", "-c", "cd -- \"$1\" && pwd",
			      "sh", NULL, NULL};
	struct nox_exec_req req = s->a->req;
	struct nox_exec_result res;
	struct nox_err err;
	char target[PATH_MAX];
	bool dash = false;
	size_t n;
	int r, rc;

	n = strlen(arg);
	if (n >= sizeof(target)) {
		ctl_error(s->c, "cd: path too long");
		return 1;
	}
	memcpy(target, arg, n + 1);
	/* one level of matching quotes, as typed around a name */
	if (n >= 2 && (target[0] == '\'' || target[0] == '"') &&
	    target[n - 1] == target[0]) {
		memmove(target, target + 1, n - 2);
		target[n - 2] = '\0';
	}
	if (!target[0] && !arg[0]) {
		snprintf(s->oldcwd, sizeof(s->oldcwd), "%s", s->cwd);
		snprintf(s->cwd, sizeof(s->cwd), "%s", NOX_WORKSPACE);
		return 0;
	}
	if (strcmp(target, "-") == 0) {
		dash = true;
		snprintf(target, sizeof(target), "%s", s->oldcwd);
	}
	argv[4] = target;
	req.argv = argv;
	req.workdir = target[0] == '/' ? NOX_WORKSPACE : s->cwd;
	r = nox_backend_exec(s->c->b, s->id, &req, &res, &err);
	if (r < 0)
		return ctl_fail(s->c, r, &err);
	rc = ex_status(res.exit_code);
	if (rc == 0) {
		n = res.out_len;
		if (n > 0 && res.out[n - 1] == '\n')
			n--;
		if (n == 0 || n >= sizeof(s->cwd) || res.out[0] != '/' ||
		    memchr(res.out, '\0', n)) {
			ctl_error(s->c, "cd: unexpected output from pwd");
			rc = 1;
		} else {
			snprintf(s->oldcwd, sizeof(s->oldcwd), "%s", s->cwd);
			memcpy(s->cwd, res.out, n);
			s->cwd[n] = '\0';
			if (dash)
				printf("%s\n", s->cwd);
		}
	} else if (res.err_len) {
		fdio_write_all(STDERR_FILENO, res.err, res.err_len);
	} else {
		ctl_error(s->c, "cd: %s: cannot change directory", target);
	}
	nox_exec_result_cleanup(&res);
	return rc;
}

/* "exit" or "exit N": sets *status, returns true to leave. */
static bool ex_exit(const struct ex_shell *s, const char *arg, int *status)
{
	long v;

	if (!arg[0])
		return true;
	v = ctl_parse_seconds(arg, 255);
	if (v < 0) {
		ctl_error(s->c, "exit: '%s': a number 0-255 expected", arg);
		*status = 2;
		return false;
	}
	*status = (int)v;
	return true;
}

static int ex_shell_loop(struct ex_shell *s)
{
	const char *sh_argv[4] = {"sh", "-c", NULL, NULL};
	struct nox_exec_req req = s->a->req;
	bool tty = isatty(STDIN_FILENO);
	char *line = NULL, *p, *end;
	const char *arg;
	size_t cap = 0;
	ssize_t n;
	int status = 0;

	for (;;) {
		if (tty) {
			fflush(stdout);
			fprintf(stderr, "%s:%s$ ", s->id, s->cwd);
			fflush(stderr);
		}
		n = getline(&line, &cap, stdin);
		if (n < 0) {
			if (tty)
				fputc('\n', stderr);
			break;
		}
		end = line + n;
		while (end > line && (end[-1] == '\n' || end[-1] == '\r' ||
				      end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			continue;
		arg = ex_word(p, "exit");
		if (arg) {
			if (ex_exit(s, arg, &status))
				break;
			continue;
		}
		arg = ex_word(p, "cd");
		if (arg) {
			status = ex_cd(s, arg);
			continue;
		}
		sh_argv[2] = p;
		req.argv = sh_argv;
		req.workdir = s->cwd;
		status = ex_run(s->c, s->id, &req);
		fflush(stdout);
	}
	free(line);
	return status;
}

int cmd_shell(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct ex_shell s;
	struct ex_args a;
	int rc;

	rc = ex_parse(c, cmd, argc, argv, &a);
	if (rc >= 0)
		goto out;
	memset(&s, 0, sizeof(s));
	rc = ctl_id_arg(c, cmd, argc, argv, &s.id);
	if (rc)
		goto out;
	rc = ctl_backend(c);
	if (rc)
		goto out;
	s.c = c;
	s.a = &a;
	if (snprintf(s.cwd, sizeof(s.cwd), "%s",
		     a.req.workdir ? a.req.workdir : NOX_WORKSPACE) >=
	    (int)sizeof(s.cwd)) {
		rc = ctl_usage(c, cmd, "--workdir: too long");
		goto out;
	}
	memcpy(s.oldcwd, s.cwd, sizeof(s.cwd));
	rc = ex_shell_loop(&s);
out:
	ex_args_cleanup(&a);
	return rc;
}
