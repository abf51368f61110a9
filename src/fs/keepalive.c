/*
 * keepalive.c - keeps every attached sandbox alive while mounted.
 *
 * One thread wakes every min(ttl/3, 300) seconds (at least 1) and
 * touches each attached sandbox (nox_backend_touch), so none reaches its
 * TTL while the mount uses it.  A failed touch is a warning, logged once
 * per sandbox until a touch succeeds again; the daemon goes on serving
 * (a sandbox that is gone shows as errors of the operations themselves).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs.h"
#include "sandbox.h"

static long ka_interval(const struct fs *fs)
{
	long s = fs->opts.ttl / 3;

	if (s > 300)
		s = 300;
	if (s < 1)
		s = 1;
	return s;
}

static void ka_touch_all(struct fs *fs)
{
	struct fs_sandbox **v = NULL;
	size_t n = 0, i;

	if (fs_sandbox_list(fs, &v, &n) < 0)
		return;
	for (i = 0; i < n; i++) {
		struct nox_err err;
		bool warned;
		int r;

		nox_err_clear(&err);
		r = nox_backend_touch(fs->be, v[i]->id, &err);
		fs_table_lock(&fs->table);
		warned = v[i]->touch_warned;
		v[i]->touch_warned = r < 0;
		fs_table_unlock(&fs->table);
		if (r < 0 && !warned)
			nox_log(NOX_LOG_WARN, "keepalive: touch %s: %s",
				v[i]->id, nox_err_str(&err, r));
		else if (r == 0)
			nox_log(NOX_LOG_DEBUG, "keepalive: touched %s",
				v[i]->id);
		fs_sandbox_put(v[i]);
	}
	free(v);
}

static void *ka_main(void *arg)
{
	struct fs *fs = arg;
	long interval = ka_interval(fs);

	pthread_mutex_lock(&fs->ka_mutex);
	while (!fs->ka_stop) {
		struct timespec until;
		int r = 0;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += interval;
		while (!fs->ka_stop && r != ETIMEDOUT)
			r = pthread_cond_timedwait(&fs->ka_cond, &fs->ka_mutex,
						   &until);
		if (fs->ka_stop)
			break;
		pthread_mutex_unlock(&fs->ka_mutex);
		ka_touch_all(fs);
		pthread_mutex_lock(&fs->ka_mutex);
	}
	pthread_mutex_unlock(&fs->ka_mutex);
	return NULL;
}

int fs_keepalive_start(struct fs *fs)
{
	pthread_condattr_t ca;
	int r;

	pthread_mutex_init(&fs->ka_mutex, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->ka_cond, &ca);
	pthread_condattr_destroy(&ca);
	fs->ka_stop = false;
	r = pthread_create(&fs->ka_thread, NULL, ka_main, fs);
	if (r != 0) {
		pthread_cond_destroy(&fs->ka_cond);
		pthread_mutex_destroy(&fs->ka_mutex);
		return -r;
	}
	fs->ka_running = true;
	return 0;
}

void fs_keepalive_stop(struct fs *fs)
{
	if (!fs->ka_running)
		return;
	pthread_mutex_lock(&fs->ka_mutex);
	fs->ka_stop = true;
	pthread_cond_signal(&fs->ka_cond);
	pthread_mutex_unlock(&fs->ka_mutex);
	pthread_join(fs->ka_thread, NULL);
	pthread_cond_destroy(&fs->ka_cond);
	pthread_mutex_destroy(&fs->ka_mutex);
	fs->ka_running = false;
}
