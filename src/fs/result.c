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

#include "result.h"

struct fs_result *fs_result_new(struct nox_exec_result *r)
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
	snprintf(res->status, sizeof(res->status), "%d\n", res->r.exit_code);
	res->status_len = strlen(res->status);
	clock_gettime(CLOCK_REALTIME, &res->when);
	return res;
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
	free(r->json);
	pthread_mutex_destroy(&r->mutex);
	free(r);
}

const char *fs_result_json(struct fs_result *r, size_t *len)
{
	char *json, *nj;
	size_t jl;

	pthread_mutex_lock(&r->mutex);
	if (r->json)
		goto out;
	json = nox_v1_exec_result_encode(&r->r);
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
