/*
 * result.c - finished commands' results (see result.h).
 *
 * Most results are read as stdout or status, or not at all: encoding the
 * JSON (and copying the output into it) for each command would cost a
 * pass over up to two output caps that nobody reads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "result.h"

/* Takes r's buffers and the malloc'd status line. */
static struct fs_result *result_make(struct nox_exec_result *r, char *status)
{
	struct fs_result *res = calloc(1, sizeof(*res));

	if (!res)
		return NULL;
	/* readers take out and err as NUL-terminated strings */
	if (!r->out) {
		r->out = calloc(1, 1);
		r->out_len = 0;
	}
	if (!r->err) {
		r->err = calloc(1, 1);
		r->err_len = 0;
	}
	if (!r->out || !r->err) {
		free(res);
		return NULL;
	}
	atomic_init(&res->refs, 1);
	pthread_mutex_init(&res->mutex, NULL);
	res->r = *r;
	memset(r, 0, sizeof(*r));
	res->status = status;
	res->status_len = strlen(status);
	clock_gettime(CLOCK_REALTIME, &res->when);
	return res;
}

struct fs_result *fs_result_new(struct nox_exec_result *r)
{
	struct fs_result *res;
	char *status = malloc(16);

	if (!status)
		return NULL;
	snprintf(status, 16, "%d\n", r->exit_code);
	res = result_make(r, status);
	if (!res)
		free(status);
	return res;
}

struct fs_result *fs_result_new_error(int code, const char *reason)
{
	struct nox_exec_result r;
	struct fs_result *res;
	size_t len = strlen(reason), i;
	char *text = malloc(len + 2), *status = malloc(len + 9);

	if (!text || !status)
		goto fail;
	for (i = 0; i < len; i++)
		text[i] =
		    reason[i] == '\n' || reason[i] == '\r' ? ' ' : reason[i];
	text[len] = '\n';
	text[len + 1] = '\0';
	snprintf(status, len + 9, "error: %s", text);
	memset(&r, 0, sizeof(r));
	r.exit_code = -1;
	r.err = text;
	r.err_len = len + 1;
	res = result_make(&r, status);
	if (!res)
		goto fail;
	res->error = code < 0 ? -code : code;
	return res;
fail:
	free(text);
	free(status);
	return NULL;
}

struct fs_result *fs_result_ref(struct fs_result *r)
{
	if (r)
		atomic_fetch_add(&r->refs, 1);
	return r;
}

void fs_result_unref(struct fs_result *r)
{
	if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	nox_exec_result_cleanup(&r->r);
	free(r->status);
	free(r->json);
	pthread_mutex_destroy(&r->mutex);
	free(r);
}

/* {"error": REASON, "errno": "ENAME"}, malloc'd; NULL on ENOMEM. */
static char *error_encode(const struct fs_result *r)
{
	const char *name = strerrorname_np(r->error), *s;
	json_object *o = json_object_new_object();
	char *json = NULL;

	if (!o)
		return NULL;
	/* the reason without its newline */
	if (json_object_object_add(
		o, "error",
		json_object_new_string_len(r->r.err, (int)r->r.err_len - 1)) ||
	    json_object_object_add(o, "errno",
				   json_object_new_string(name ? name : "?")))
		goto out;
	s = json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s)
		json = strdup(s);
out:
	json_object_put(o);
	return json;
}

const char *fs_result_json(struct fs_result *r, size_t *len)
{
	char *json, *nj;
	size_t jl;

	pthread_mutex_lock(&r->mutex);
	if (r->json)
		goto out;
	json = r->error ? error_encode(r) : nox_v1_exec_result_encode(&r->r);
	if (!json)
		goto out;
	jl = strlen(json);
	nj = realloc(json, jl + 2);
	if (!nj) {
		free(json);
		goto out;
	}
	nj[jl] = '\n';
	nj[jl + 1] = '\0';
	r->json = nj;
	r->json_len = jl + 1;
out:
	json = r->json;
	*len = json ? r->json_len : 0;
	pthread_mutex_unlock(&r->mutex);
	return json;
}
