/*
 * noxctl.c - the noxctl command-line client: global options, the command
 * table and dispatch.
 *
 *   noxctl [GLOBAL OPTIONS] COMMAND [ARGS...]
 *
 * Global options stop at the command name (getopt "+"), so each command
 * parses its own.  The backend is chosen here (--url or
 * $NOXRUNNER_BASE_URL: http; otherwise local) and created only when a
 * command needs it, so --help and usage errors never touch a backend.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "noxctl_i.h"

const struct ctl_cmd ctl_cmds[] = {
    {"health", cmd_health, "",
     "Check that the backend answers (GET /healthz).  Prints OK.\n"},
    {"create", cmd_create,
     "ID [--ttl S] [--image I] [--cpu C] [--mem M] [--storage S] "
     "[--wait]",
     "Create sandbox ID, or make sure it exists; prints its podName and\n"
     "expiresAt.\n"
     "  --ttl S        seconds until it expires unless touched "
     "(default 900)\n"
     "  --image I      container image (http backends)\n"
     "  --cpu C        CPU limit, e.g. 500m\n"
     "  --mem M        memory limit, e.g. 512Mi\n"
     "  --storage S    ephemeral storage limit, e.g. 1Gi\n"
     "  --wait         poll until the sandbox runs commands, at most\n"
     "                 --timeout seconds (default 60)\n"
     "  --json         print {id, podName, expiresAt} as JSON\n"},
    {"exec", cmd_exec,
     "ID [--workdir D] [--env K=V]... [--timeout S] -- CMD [ARGS...]",
     "Run CMD with ARGS (an exact argv, no shell) in sandbox ID.  Its\n"
     "stdout and stderr are copied to ours byte for byte and noxctl\n"
     "exits with its exit code (124: timed out, 127: not found).  A\n"
     "v1-only server sends U+FFFD for bytes that are not UTF-8: stderr\n"
     "then ends with a 'nox: lossy:' line.\n"
     "  --workdir D    working directory (default /workspace)\n"
     "  --env K=V      set an environment variable (repeatable)\n"
     "  --timeout S    command time limit in seconds (default 30)\n"
     "  --json         print the v1 result {exitCode, stdout, stderr,\n"
     "                 durationMs} instead, and exit 0\n"},
    {"sh", cmd_sh, "ID [--workdir D] [--env K=V]... [--timeout S] 'SHELL LINE'",
     "Run one line of shell in sandbox ID: the same as\n"
     "  noxctl exec ID -- sh -c 'SHELL LINE'\n"
     "Options as for exec.\n"},
    {"shell", cmd_shell, "ID [--workdir D] [--env K=V]... [--timeout S]",
     "Read lines from standard input and run each as 'sh -c LINE' in\n"
     "sandbox ID.  On a terminal the prompt is 'ID:WORKDIR$ '.\n"
     "'cd DIR' changes the working directory of the following lines\n"
     "(resolved inside the sandbox; 'cd' alone: /workspace, 'cd -':\n"
     "the previous one).  'exit [N]' or end of input leaves, with\n"
     "status N or that of the last command.\n"
     "Options as for exec; --workdir sets the starting directory.\n"},
    {"upload", cmd_upload, "ID FILE... [--dir D] [--dest D]",
     "Upload files and directory trees (modes kept) to sandbox ID.\n"
     "Each FILE is taken relative to --dir and keeps that relative\n"
     "name under --dest; '.' means everything in --dir.\n"
     "  --dir D        local directory FILEs are relative to "
     "(default .)\n"
     "  --dest D       sandbox directory (default /workspace)\n"},
    {"download", cmd_download, "ID [--src P] (--extract DIR | -o FILE)",
     "Download sandbox path P (a directory's contents or one file) as\n"
     "a gzip tar.\n"
     "  --src P        sandbox path (default /workspace)\n"
     "  --extract DIR  unpack into local DIR (created if missing)\n"
     "  -o FILE        write the .tar.gz to FILE ('-': stdout)\n"},
    {"touch", cmd_touch, "ID",
     "Reset the expiry of sandbox ID to now + its TTL.\n"},
    {"delete", cmd_delete, "ID", "Delete sandbox ID.\n"},
    {"info", cmd_info, "ID",
     "Print podName, expiresAt and ttl of sandbox ID (--json: as "
     "JSON).\nNever creates it.\n"},
    {"ls", cmd_ls, "",
     "List sandboxes: ID, POD and EXPIRES (-q: IDs only, --json: a\n"
     "JSON array).  Only backends that can list (the local one).\n"},
    {NULL, NULL, NULL, NULL},
};

static void main_usage(FILE *f)
{
	const struct ctl_cmd *cmd;

	fprintf(f,
		"usage: noxctl [--url URL | --local[=DIR]] [--token T] "
		"[--timeout S]\n"
		"              [--json] [--no-color] [-q] COMMAND [ARGS...]\n"
		"\nCommands:\n");
	for (cmd = ctl_cmds; cmd->name; cmd++)
		fprintf(f, "  %s %s\n", cmd->name, cmd->synopsis);
	fprintf(f,
		"\nGlobal options:\n"
		"  --url URL       NoxRunner v1 server (default: "
		"$NOXRUNNER_BASE_URL)\n"
		"  --local[=DIR]   local backend, sandboxes under DIR "
		"(default /tmp);\n"
		"                  the default when no URL is set\n"
		"  --unisolated    local: run commands without bubblewrap "
		"(warns)\n"
		"  --token T       bearer token (default: $NOXRUNNER_TOKEN)\n"
		"  --timeout S     bound each backend request (http; exec "
		"requests by\n"
		"                  exec --timeout) and create --wait\n"
		"  --json          machine-readable output\n"
		"  --no-color      no colour in messages (also: $NO_COLOR)\n"
		"  -q, --quiet     no progress lines, notes or table headers\n"
		"  -d, --debug     say which backend is used, and each error's\n"
		"                  errno and the command's time, on stderr\n"
		"  -h, --help      this text ('noxctl COMMAND --help' for one "
		"command)\n"
		"  -V, --version   print the version\n"
		"\nExit status:\n"
		"  0   success\n"
		"  N   exec, sh, shell: the exit status of the command\n"
		"  64  usage error (bad option, missing or invalid argument)\n"
		"  69  backend unavailable (connection refused, timeout, not "
		"ready)\n"
		"  70  any other error (backend refused the request, local "
		"I/O)\n");
}

static const struct ctl_cmd *main_find(const char *name)
{
	const struct ctl_cmd *cmd;

	for (cmd = ctl_cmds; cmd->name; cmd++)
		if (strcmp(cmd->name, name) == 0)
			return cmd;
	return NULL;
}

/* "noxctl help [COMMAND]" */
static int main_help(const struct ctl *c, int argc, char **argv)
{
	const struct ctl_cmd *cmd;

	if (argc < 2) {
		main_usage(stdout);
		return CTL_EX_OK;
	}
	cmd = main_find(argv[1]);
	if (!cmd) {
		ctl_error(c, "unknown command '%s'", argv[1]);
		return CTL_EX_USAGE;
	}
	return ctl_cmd_help(cmd);
}

enum {
	OPT_URL = 256,
	OPT_LOCAL,
	OPT_UNISOLATED,
	OPT_TOKEN,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_NO_COLOR,
};

static const struct option main_opts[] = {
    {"url", required_argument, NULL, OPT_URL},
    {"local", optional_argument, NULL, OPT_LOCAL},
    {"unisolated", no_argument, NULL, OPT_UNISOLATED},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"no-color", no_argument, NULL, OPT_NO_COLOR},
    {"no-colour", no_argument, NULL, OPT_NO_COLOR},
    {"quiet", no_argument, NULL, 'q'},
    {"debug", no_argument, NULL, 'd'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Parses "S" or "S.F" seconds into milliseconds; -1 when bad. */
static long main_parse_timeout(const char *s)
{
	char *end;
	double d;

	if (!s[0])
		return -1;
	d = strtod(s, &end);
	if (*end || !(d > 0) || d > 86400.0)
		return -1;
	return (long)(d * 1000.0 + 0.5) > 0 ? (long)(d * 1000.0 + 0.5) : 1;
}

int main(int argc, char **argv)
{
	struct ctl c = {0};
	struct timespec t0, t1;
	const struct ctl_cmd *cmd;
	bool want_local = false, no_color = false;
	const char *env;
	int ch, rc;

	c.tty_err = isatty(STDERR_FILENO);
	env = getenv("NO_COLOR");
	c.color = c.tty_err && !(env && env[0]);
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, "+:qdhV", main_opts, NULL);
		if (ch == -1)
			break;
		switch (ch) {
		case OPT_URL:
			c.url = optarg;
			break;
		case OPT_LOCAL:
			want_local = true;
			c.local_dir = optarg;
			break;
		case OPT_UNISOLATED:
			c.unisolated = true;
			break;
		case OPT_TOKEN:
			c.token = optarg;
			break;
		case OPT_TIMEOUT:
			c.timeout_ms = main_parse_timeout(optarg);
			if (c.timeout_ms < 0) {
				ctl_error(&c,
					  "--timeout: '%s' is not a number"
					  " of seconds (0 < S <= 86400)",
					  optarg);
				return CTL_EX_USAGE;
			}
			break;
		case OPT_JSON:
			c.json = true;
			break;
		case OPT_NO_COLOR:
			no_color = true;
			break;
		case 'q':
			c.quiet = true;
			break;
		case 'd':
			c.debug = true;
			break;
		case 'h':
			main_usage(stdout);
			return CTL_EX_OK;
		case 'V':
			printf("noxctl %s\n", NOX_VERSION);
			return CTL_EX_OK;
		default:
			if (ch == ':')
				ctl_error(&c, "option '%s' needs an argument",
					  argv[optind - 1]);
			else
				ctl_error(&c, "unknown option '%s'",
					  argv[optind - 1]);
			fprintf(stderr, "Try 'noxctl --help'.\n");
			return CTL_EX_USAGE;
		}
	}
	if (no_color)
		c.color = false;
	if (want_local && c.url) {
		ctl_error(&c, "--url and --local exclude each other");
		return CTL_EX_USAGE;
	}
	if (!want_local && !c.url) {
		env = getenv("NOXRUNNER_BASE_URL");
		if (env && env[0])
			c.url = env;
	}
	if (c.url && c.unisolated) {
		ctl_error(&c, "--unisolated applies to the local backend only");
		return CTL_EX_USAGE;
	}
	if (!c.url && c.token) {
		ctl_error(&c, "--token applies to the http backend only");
		return CTL_EX_USAGE;
	}
	if (optind >= argc) {
		ctl_error(&c, "no command given");
		main_usage(stderr);
		return CTL_EX_USAGE;
	}
	argc -= optind;
	argv += optind;
	if (strcmp(argv[0], "help") == 0)
		return main_help(&c, argc, argv);
	cmd = main_find(argv[0]);
	if (!cmd) {
		ctl_error(&c, "unknown command '%s'", argv[0]);
		fprintf(stderr, "Try 'noxctl --help'.\n");
		return CTL_EX_USAGE;
	}
	/* each command parses from scratch */
	optind = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = cmd->run(&c, cmd, argc, argv);
	if (c.debug) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		fprintf(stderr, "noxctl: debug: %s took %.1f ms, exit %d\n",
			cmd->name,
			(double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
			rc);
	}
	nox_backend_free(c.b);
	if (fflush(stdout) != 0 && rc == CTL_EX_OK) {
		ctl_error(&c, "writing standard output failed");
		rc = CTL_EX_SOFTWARE;
	}
	return rc;
}
