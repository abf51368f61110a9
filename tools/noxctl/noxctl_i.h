/*
 * noxctl_i.h - what the parts of noxctl share: the run context, the
 * command table entry, exit codes, and the output and option-parsing
 * helpers (util.c).
 *
 * Limits: single-threaded except for the upload progress thread, which
 * only writes to stderr.
 */
#ifndef NOXCTL_I_H
#define NOXCTL_I_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <nox/nox.h>

struct json_object;

/* Exit codes (sysexits.h values; documented in the usage text). */
#define CTL_EX_OK	   0
#define CTL_EX_USAGE	   64
#define CTL_EX_UNAVAILABLE 69
#define CTL_EX_SOFTWARE	   70

struct ctl {
	/* global options */
	const char *url;       /* --url or $NOXRUNNER_BASE_URL; NULL: local */
	const char *token;     /* --token; NULL: $NOXRUNNER_TOKEN (http) */
	const char *local_dir; /* --local=DIR; NULL: NOX_DEFAULT_BASE_DIR */
	bool unisolated;
	long timeout_ms; /* --timeout; 0: backend defaults */
	bool json;
	bool quiet;
	bool debug;    /* -d: backend and timing on stderr */
	bool color;   /* red "error:" on stderr */
	bool tty_err; /* stderr is a terminal */
	/* created on first use by ctl_backend(), freed by main */
	struct nox_backend *b;
};

struct ctl_cmd {
	const char *name;
	int (*run)(struct ctl *c, const struct ctl_cmd *cmd, int argc,
		   char **argv);
	const char *synopsis; /* after "noxctl NAME " */
	const char *help;     /* description and options */
};

/* The command table (noxctl.c); NULL name ends it. */
extern const struct ctl_cmd ctl_cmds[];

/* Commands.  argv[0] is the command name. */
int cmd_health(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv);
int cmd_create(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv);
int cmd_touch(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv);
int cmd_delete(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv);
int cmd_info(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv);
int cmd_ls(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv);
int cmd_exec(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv);
int cmd_sh(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv);
int cmd_shell(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv);
int cmd_upload(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv);
int cmd_download(struct ctl *c, const struct ctl_cmd *cmd, int argc,
		 char **argv);

/* ---- util.c ----------------------------------------------------------- */

/*
 * The backend for c, created from the global options on first call.
 * Returns 0, or an exit code after printing the error.
 */
int ctl_backend(struct ctl *c);

/* Prints "noxctl: msg" (red "error:" on a colour terminal); returns
 * CTL_EX_SOFTWARE for convenience. */
int ctl_error(const struct ctl *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints "noxctl: warning: msg"; callers decide whether -q silences it. */
void ctl_warn(const struct ctl *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints the libnox error (r < 0, detail in err) and returns the exit
 * code it maps to (69 unavailable, 70 otherwise). */
int ctl_fail(const struct ctl *c, int r, const struct nox_err *err);
/* Exit code for a negative errno from libnox. */
int ctl_exit_code(int r);
/* Prints "noxctl: msg", the command's synopsis and a hint; returns 64. */
int ctl_usage(const struct ctl *c, const struct ctl_cmd *cmd, const char *fmt,
	      ...) __attribute__((format(printf, 3, 4)));
/* Full help of cmd on stdout; returns 0. */
int ctl_cmd_help(const struct ctl_cmd *cmd);

/* Long-only option codes: --json for every command that has it, then
 * the first code a command may number its own from. */
enum { CTL_OPT_JSON = 256, CTL_OPT_CMD };

/* The entries every command's option table starts with (-h, -q). */
#define CTL_OPTS_COMMON                                                        \
	{"help", no_argument, NULL, 'h'}, {"quiet", no_argument, NULL, 'q'}
#define CTL_OPTS_JSON {"json", no_argument, NULL, CTL_OPT_JSON}

/*
 * A command's own option ch (its code in the table) with its argument
 * arg (NULL when it takes none).  Returns -1 to go on or an exit code.
 */
typedef int (*ctl_opt_fn)(struct ctl *c, const struct ctl_cmd *cmd, int ch,
			  char *arg, void *ud);

/*
 * Parses cmd's options in argv[0..argc) with getopt_long: opts (ending
 * in a zero entry) and the short options "hq" plus shortopts (may be
 * NULL).  -h prints the help and returns 0; -q sets c->quiet, --json
 * c->json; any other option goes to fn(c, cmd, ch, optarg, ud).  An
 * unknown option or a missing argument is a usage error (64).  Returns
 * -1 when every option is taken (positional arguments start at optind)
 * or the exit code to end with.
 */
int ctl_parse_opts(struct ctl *c, const struct ctl_cmd *cmd, int argc,
		   char **argv, const char *shortopts,
		   const struct option *opts, ctl_opt_fn fn, void *ud);
/*
 * After ctl_parse_opts: exactly one positional argument before argc, a
 * valid sandbox ID, set in *id.  0, or 64 after the usage message.
 */
int ctl_id_arg(const struct ctl *c, const struct ctl_cmd *cmd, int argc,
	       char **argv, const char **id);

/* 0 when s is a valid session ID, else prints why and returns 64. */
int ctl_check_id(const struct ctl *c, const struct ctl_cmd *cmd, const char *s);
/* Parses a non-negative integer of seconds (at most max); -1 if bad. */
long ctl_parse_seconds(const char *s, long max);

/* Prints obj as one line of JSON on stdout and drops the reference. */
void ctl_json_print(struct json_object *obj);
/* A JSON object with id, podName, expiresAt and ttlSeconds (if > 0). */
struct json_object *ctl_json_info(const char *id,
				  const struct nox_sandbox_info *info);
/* Monotonic milliseconds. */
long long ctl_now_ms(void);
/*
 * An unlinked read-write temp file in $TMPDIR (default /tmp); returns the
 * fd (caller closes) or -errno.
 */
int ctl_tmpfile(void);

#endif
