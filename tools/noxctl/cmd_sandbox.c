/*
 * cmd_sandbox.c - the sandbox lifecycle commands of noxctl: health,
 * create, touch, delete, info and ls.
 *
 * Limits: ls asks the backend for each sandbox's info one by one (no bulk
 * call in the API); a sandbox deleted meanwhile shows "-".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "array_i.h"
#include "noxctl_i.h"

enum {
	SB_OPT_TTL = CTL_OPT_CMD,
	SB_OPT_IMAGE,
	SB_OPT_CPU,
	SB_OPT_MEM,
	SB_OPT_STORAGE,
	SB_OPT_WAIT,
};

static const struct option sb_simple_opts[] = {
    CTL_OPTS_COMMON,
    CTL_OPTS_JSON,
    {NULL, 0, NULL, 0},
};

/*
 * Options of the commands that take at most an ID: -h, -q, --json.
 * need_id: exactly one positional ID, else none.  Returns -1 to go on,
 * or the exit code (help printed, usage error).
 */
static int sb_args(struct ctl *c, const struct ctl_cmd *cmd, int argc,
		   char **argv, bool need_id, const char **id)
{
	int r;

	r = ctl_parse_opts(c, cmd, argc, argv, NULL, sb_simple_opts, NULL,
			   NULL);
	if (r >= 0)
		return r;
	if (!need_id) {
		if (optind < argc)
			return ctl_usage(c, cmd, "unexpected argument '%s'",
					 argv[optind]);
		return -1;
	}
	r = ctl_id_arg(c, cmd, argc, argv, id);
	if (r)
		return r;
	r = ctl_backend(c);
	return r ? r : -1;
}

int cmd_health(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct nox_err err;
	int r;

	r = sb_args(c, cmd, argc, argv, false, NULL);
	if (r >= 0)
		return r;
	r = ctl_backend(c);
	if (r)
		return r;
	r = nox_backend_health(c->b, &err);
	if (r < 0)
		return ctl_fail(c, r, &err);
	if (c->json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "ok", json_object_new_boolean(1));
		json_object_object_add(
		    o, "backend",
		    json_object_new_string(nox_backend_name(c->b)));
		ctl_json_print(o);
	} else if (!c->quiet) {
		printf("OK\n");
	}
	return CTL_EX_OK;
}

static void sb_print_info(const struct ctl *c, const char *id,
			  const struct nox_sandbox_info *info, bool ttl)
{
	if (c->json) {
		ctl_json_print(ctl_json_info(id, info));
		return;
	}
	printf("podName: %s\nexpiresAt: %s\n", info->pod_name,
	       info->expires_at);
	if (ttl)
		printf("ttl: %ld\n", info->ttl_seconds);
}

/* Errors worth waiting out while a new sandbox starts. */
static bool sb_transient(int r)
{
	return ctl_exit_code(r) == CTL_EX_UNAVAILABLE || r == -ENOENT;
}

/*
 * Ready means: the backend answers, the sandbox exists, and it runs a
 * command (a 503 "not ready" from exec is -EAGAIN).  Any exit status of
 * "true", even 127, proves the sandbox runs commands.
 */
static int sb_probe(struct ctl *c, const char *id, struct nox_err *err)
{
	const char *const argv[] = {"true", NULL};
	struct nox_exec_req req = {.argv = argv, .timeout_seconds = 10};
	struct nox_exec_result res;
	int r;

	r = nox_backend_health(c->b, err);
	if (r == 0)
		r = nox_backend_touch(c->b, id, err);
	if (r == 0)
		r = nox_backend_exec(c->b, id, &req, &res, err);
	if (r == 0)
		nox_exec_result_cleanup(&res);
	return r;
}

static int sb_wait(struct ctl *c, const char *id)
{
	long long limit = c->timeout_ms > 0 ? c->timeout_ms : 60000;
	long long deadline = ctl_now_ms() + limit;
	long delay_ms = 100;
	struct nox_err err;
	struct timespec ts;
	int r;

	for (;;) {
		r = sb_probe(c, id, &err);
		if (r == 0)
			return CTL_EX_OK;
		if (!sb_transient(r))
			return ctl_fail(c, r, &err);
		if (ctl_now_ms() + delay_ms > deadline) {
			ctl_error(c, "sandbox '%s' not ready after %lld s: %s",
				  id, (limit + 999) / 1000,
				  nox_err_str(&err, r));
			return CTL_EX_UNAVAILABLE;
		}
		ts.tv_sec = delay_ms / 1000;
		ts.tv_nsec = (delay_ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		if (delay_ms < 2000)
			delay_ms *= 2;
	}
}

static const struct option sb_create_opts[] = {
    CTL_OPTS_COMMON,
    CTL_OPTS_JSON,
    {"ttl", required_argument, NULL, SB_OPT_TTL},
    {"image", required_argument, NULL, SB_OPT_IMAGE},
    {"cpu", required_argument, NULL, SB_OPT_CPU},
    {"mem", required_argument, NULL, SB_OPT_MEM},
    {"memory", required_argument, NULL, SB_OPT_MEM},
    {"storage", required_argument, NULL, SB_OPT_STORAGE},
    {"wait", no_argument, NULL, SB_OPT_WAIT},
    {NULL, 0, NULL, 0},
};

struct sb_create {
	struct nox_create_opts o;
	bool wait;
};

static int sb_create_opt(struct ctl *c, const struct ctl_cmd *cmd, int ch,
			 char *arg, void *ud)
{
	struct sb_create *a = ud;

	switch (ch) {
	case SB_OPT_TTL:
		a->o.ttl_seconds = ctl_parse_seconds(arg, 31536000L);
		if (a->o.ttl_seconds <= 0)
			return ctl_usage(c, cmd,
					 "--ttl: '%s' is not a number of "
					 "seconds (1 to 31536000)",
					 arg);
		break;
	case SB_OPT_IMAGE:
		a->o.image = arg;
		break;
	case SB_OPT_CPU:
		a->o.cpu_limit = arg;
		break;
	case SB_OPT_MEM:
		a->o.memory_limit = arg;
		break;
	case SB_OPT_STORAGE:
		a->o.storage_limit = arg;
		break;
	case SB_OPT_WAIT:
		a->wait = true;
		break;
	}
	return -1;
}

int cmd_create(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct sb_create a = {0};
	struct nox_sandbox_info info;
	struct nox_err err;
	const char *id;
	int r;

	r = ctl_parse_opts(c, cmd, argc, argv, NULL, sb_create_opts,
			   sb_create_opt, &a);
	if (r >= 0)
		return r;
	r = ctl_id_arg(c, cmd, argc, argv, &id);
	if (r)
		return r;
	r = ctl_backend(c);
	if (r)
		return r;
	memset(&info, 0, sizeof(info));
	r = nox_backend_create(c->b, id, &a.o, &info, &err);
	if (r < 0)
		return ctl_fail(c, r, &err);
	if (a.wait) {
		r = sb_wait(c, id);
		if (r)
			return r;
	}
	if (!c->quiet || c->json)
		sb_print_info(c, id, &info, false);
	return CTL_EX_OK;
}

int cmd_touch(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct nox_err err;
	const char *id = NULL;
	int r;

	r = sb_args(c, cmd, argc, argv, true, &id);
	if (r >= 0)
		return r;
	r = nox_backend_touch(c->b, id, &err);
	return r < 0 ? ctl_fail(c, r, &err) : CTL_EX_OK;
}

int cmd_delete(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct nox_err err;
	const char *id = NULL;
	int r;

	r = sb_args(c, cmd, argc, argv, true, &id);
	if (r >= 0)
		return r;
	r = nox_backend_delete(c->b, id, &err);
	return r < 0 ? ctl_fail(c, r, &err) : CTL_EX_OK;
}

int cmd_info(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct nox_sandbox_info info;
	struct nox_err err;
	const char *id = NULL;
	int r;

	r = sb_args(c, cmd, argc, argv, true, &id);
	if (r >= 0)
		return r;
	memset(&info, 0, sizeof(info));
	r = nox_backend_info(c->b, id, &info, &err);
	if (r < 0)
		return ctl_fail(c, r, &err);
	sb_print_info(c, id, &info, true);
	return CTL_EX_OK;
}

/* ---- ls --------------------------------------------------------------- */

struct sb_list {
	char **ids; /* owned, each malloc'd */
	size_t n, cap;
};

static int sb_list_add(const char *id, void *ud)
{
	struct sb_list *l = ud;
	char **grown;

	grown = nox_array_grow(l->ids, &l->cap, l->n + 1, sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	l->ids = grown;
	l->ids[l->n] = strdup(id);
	if (!l->ids[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

static int sb_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct sb_row {
	struct nox_sandbox_info info;
	bool ok;
};

int cmd_ls(struct ctl *c, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct sb_list l = {0};
	struct sb_row *rows = NULL;
	struct nox_err err;
	int idw = 2, podw = 3, rc, r;
	size_t i;

	rc = sb_args(c, cmd, argc, argv, false, NULL);
	if (rc >= 0)
		return rc;
	rc = ctl_backend(c);
	if (rc)
		return rc;
	r = nox_backend_list_sandboxes(c->b, sb_list_add, &l, &err);
	if (r == -ENOSYS) {
		/* discovery answers "no listing" for a server that refused
		 * it too: a touch of a sandbox that need not exist (404 once
		 * the token is accepted) tells a refused token apart */
		struct nox_err terr;
		int t = nox_backend_touch(c->b, "noxctl-token-check", &terr);

		if (t == -EACCES) {
			rc = ctl_fail(c, t, &terr);
			goto out;
		}
	}
	if (r < 0) {
		if (r == -ENOSYS)
			rc = ctl_error(c, "this backend cannot list sandboxes");
		else if (r == -ENOMEM && !err.msg[0])
			rc = ctl_error(c, "out of memory");
		else
			rc = ctl_fail(c, r, &err);
		goto out;
	}
	if (l.n)
		qsort(l.ids, l.n, sizeof(*l.ids), sb_cmp);
	rows = calloc(l.n ? l.n : 1, sizeof(*rows));
	if (!rows) {
		rc = ctl_error(c, "out of memory");
		goto out;
	}
	for (i = 0; i < l.n; i++) {
		r = nox_backend_info(c->b, l.ids[i], &rows[i].info, &err);
		rows[i].ok = r == 0;
		if (r < 0 && r != -ENOENT) {
			rc = ctl_fail(c, r, &err);
			goto out;
		}
		if ((int)strlen(l.ids[i]) > idw)
			idw = (int)strlen(l.ids[i]);
		if (rows[i].ok && (int)strlen(rows[i].info.pod_name) > podw)
			podw = (int)strlen(rows[i].info.pod_name);
	}
	if (c->json) {
		struct json_object *a = json_object_new_array();

		for (i = 0; i < l.n; i++) {
			if (rows[i].ok)
				json_object_array_add(
				    a, ctl_json_info(l.ids[i], &rows[i].info));
		}
		ctl_json_print(a);
	} else if (c->quiet) {
		for (i = 0; i < l.n; i++)
			printf("%s\n", l.ids[i]);
	} else {
		printf("%-*s  %-*s  %s\n", idw, "ID", podw, "POD", "EXPIRES");
		for (i = 0; i < l.n; i++)
			printf("%-*s  %-*s  %s\n", idw, l.ids[i], podw,
			       rows[i].ok ? rows[i].info.pod_name : "-",
			       rows[i].ok ? rows[i].info.expires_at : "-");
	}
	rc = CTL_EX_OK;
out:
	for (i = 0; i < l.n; i++)
		free(l.ids[i]);
	free(l.ids);
	free(rows);
	return rc;
}
