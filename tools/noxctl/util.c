/*
 * util.c - noxctl's shared helpers: backend construction from the global
 * options, the commands' option and ID parsing, error and usage messages,
 * errno to exit code, JSON output and temp files.
 *
 * Every message goes to stderr as "noxctl: ..."; stdout carries only the
 * command's own output, so it can be piped.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "noxctl_i.h"

#define RED    "\033[1;31m"
#define YELLOW "\033[1;33m"
#define RESET  "\033[0m"

static void util_vmsg(const struct ctl *c, const char *tag, const char *colour,
		      const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void util_vmsg(const struct ctl *c, const char *tag, const char *colour,
		      const char *fmt, va_list ap)
{
	fflush(stdout);
	fputs("noxctl: ", stderr);
	if (c->color)
		fprintf(stderr, "%s%s" RESET " ", colour, tag);
	else if (strcmp(tag, "error:") != 0)
		fprintf(stderr, "%s ", tag);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int ctl_error(const struct ctl *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	util_vmsg(c, "error:", RED, fmt, ap);
	va_end(ap);
	return CTL_EX_SOFTWARE;
}

void ctl_warn(const struct ctl *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	util_vmsg(c, "warning:", YELLOW, fmt, ap);
	va_end(ap);
}

int ctl_exit_code(int r)
{
	switch (r < 0 ? -r : r) {
	case ECONNREFUSED:
	case ECONNRESET:
	case ECONNABORTED:
	case ETIMEDOUT:
	case EAGAIN:
	case EHOSTUNREACH:
	case EHOSTDOWN:
	case ENETUNREACH:
	case ENETDOWN:
	case ENOTCONN:
		return CTL_EX_UNAVAILABLE;
	default:
		return CTL_EX_SOFTWARE;
	}
}

int ctl_fail(const struct ctl *c, int r, const struct nox_err *err)
{
	ctl_error(c, "%s", nox_err_str(err, r));
	if (c->debug)
		fprintf(stderr, "noxctl: debug: errno %d (%s)\n", -r,
			strerrorname_np(-r) ? strerrorname_np(-r) : "?");
	return ctl_exit_code(r);
}

int ctl_usage(const struct ctl *c, const struct ctl_cmd *cmd, const char *fmt,
	      ...)
{
	va_list ap;

	va_start(ap, fmt);
	util_vmsg(c, "error:", RED, fmt, ap);
	va_end(ap);
	fprintf(stderr, "usage: noxctl %s %s\nTry 'noxctl %s --help'.\n",
		cmd->name, cmd->synopsis, cmd->name);
	return CTL_EX_USAGE;
}

int ctl_cmd_help(const struct ctl_cmd *cmd)
{
	printf("usage: noxctl [GLOBAL OPTIONS] %s %s\n\n%s"
	       "  -h, --help     this text\n"
	       "\nGlobal options and exit status: noxctl --help\n",
	       cmd->name, cmd->synopsis, cmd->help);
	return CTL_EX_OK;
}

/* A getopt_long error return ('?' or ':'): what was wrong with
 * argv[optind - 1]; returns 64. */
static int util_bad_option(const struct ctl *c, const struct ctl_cmd *cmd,
			   int ch, char **argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";

	if (ch == ':')
		return ctl_usage(c, cmd, "option '%s' needs an argument", arg);
	if (optopt > 0 && optopt < 256 && arg[0] == '-' && arg[1] != '-')
		return ctl_usage(c, cmd, "unknown option '-%c'", optopt);
	return ctl_usage(c, cmd, "unknown option '%s'", arg);
}

int ctl_parse_opts(struct ctl *c, const struct ctl_cmd *cmd, int argc,
		   char **argv, const char *shortopts,
		   const struct option *opts, ctl_opt_fn fn, void *ud)
{
	char spec[32];
	int ch, r;

	/* ':' first: a missing argument is told apart from an unknown one */
	if (snprintf(spec, sizeof(spec), ":hq%s", shortopts ? shortopts : "") >=
	    (int)sizeof(spec))
		return ctl_error(c, "internal: option string too long");
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, spec, opts, NULL);
		switch (ch) {
		case -1:
			return -1;
		case 'h':
			return ctl_cmd_help(cmd);
		case 'q':
			c->quiet = true;
			break;
		case CTL_OPT_JSON:
			c->json = true;
			break;
		case '?':
		case ':':
			return util_bad_option(c, cmd, ch, argv);
		default:
			r = fn ? fn(c, cmd, ch, optarg, ud)
			       : util_bad_option(c, cmd, '?', argv);
			if (r >= 0)
				return r;
		}
	}
}

int ctl_id_arg(const struct ctl *c, const struct ctl_cmd *cmd, int argc,
	       char **argv, const char **id)
{
	if (optind >= argc)
		return ctl_usage(c, cmd, "missing sandbox ID");
	if (optind + 1 < argc)
		return ctl_usage(c, cmd, "unexpected argument '%s'",
				 argv[optind + 1]);
	*id = argv[optind];
	return ctl_check_id(c, cmd, *id);
}

int ctl_check_id(const struct ctl *c, const struct ctl_cmd *cmd, const char *s)
{
	struct nox_err err;
	int r;

	nox_err_clear(&err);
	r = nox_id_validate(s, &err);
	if (r < 0)
		return ctl_usage(c, cmd, "invalid sandbox ID: %s",
				 nox_err_str(&err, r));
	return 0;
}

long ctl_parse_seconds(const char *s, long max)
{
	char *end;
	long v;

	if (!s[0] || s[0] == '-' || s[0] == '+')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v > max)
		return -1;
	return v;
}

int ctl_backend(struct ctl *c)
{
	struct nox_err err;
	int r;

	if (c->b)
		return 0;
	nox_err_clear(&err);
	if (c->url) {
		struct nox_http_opts o = {0};

		o.base_url = c->url;
		o.token = c->token;
		if (c->timeout_ms > 0) {
			o.connect_timeout_ms = c->timeout_ms;
			o.timeout_ms = c->timeout_ms;
		}
		r = nox_backend_http_new(&o, &c->b, &err);
	} else {
		struct nox_local_opts o = {0};

		o.base_dir =
		    c->local_dir && c->local_dir[0] ? c->local_dir : NULL;
		o.unisolated = c->unisolated;
		/* not silenced by -q: this is a security notice */
		if (c->unisolated)
			ctl_warn(c, "running commands unisolated (no "
				    "bubblewrap): they can read and change "
				    "anything this user can");
		r = nox_backend_local_new(&o, &c->b, &err);
	}
	if (r < 0) {
		c->b = NULL;
		return ctl_fail(c, r, &err);
	}
	if (c->debug)
		fprintf(stderr, "noxctl: debug: %s backend, %s\n",
			nox_backend_name(c->b),
			c->url ? c->url
			       : (c->local_dir && c->local_dir[0]
				      ? c->local_dir
				      : NOX_DEFAULT_BASE_DIR));
	return 0;
}

void ctl_json_print(struct json_object *obj)
{
	puts(json_object_to_json_string_ext(
	    obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(obj);
}

struct json_object *ctl_json_info(const char *id,
				  const struct nox_sandbox_info *info)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "podName",
			       json_object_new_string(info->pod_name));
	json_object_object_add(o, "expiresAt",
			       json_object_new_string(info->expires_at));
	if (info->ttl_seconds > 0)
		json_object_object_add(
		    o, "ttlSeconds", json_object_new_int64(info->ttl_seconds));
	return o;
}

long long ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ctl_tmpfile(void)
{
	const char *dir = getenv("TMPDIR");
	char path[PATH_MAX];
	int fd;

	if (!dir || !dir[0])
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* file systems without O_TMPFILE */
	if (snprintf(path, sizeof(path), "%s/noxctl-XXXXXX", dir) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}
