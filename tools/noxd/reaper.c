/*
 * reaper.c - the thread that deletes expired sandboxes.
 *
 * Every --reap-interval seconds it asks the local backend to delete the
 * sandboxes whose expiry has passed (nox_local_reap_expired), logging
 * each one.  It
 * sleeps on a condition variable, so reaper_stop() returns at once instead
 * of waiting out the interval.
 *
 * Limits: expiry has one-second resolution, and a sandbox lives up to one
 * interval past its expiry.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "local_i.h"
#include "noxd.h"

struct noxd_reaper {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled by reaper_stop */
	bool stop;	     /* protected by lock */
	unsigned interval;
	struct noxd *d;
};

static int reaper_logged(const char *id, void *ud)
{
	(void)ud;
	nox_log(NOX_LOG_INFO, "reaper: deleted expired sandbox %s", id);
	return 0;
}

/* One pass over the base directory (nox_local_reap_expired does the
 * checks, under the backend's own locking). */
static void reaper_pass(struct noxd *d)
{
	struct nox_err err;
	int rc;

	nox_err_clear(&err);
	rc = nox_local_reap_expired(d->backend, time(NULL), reaper_logged, NULL,
				    &err);
	if (rc < 0)
		nox_log(NOX_LOG_WARN, "reaper: %s", nox_err_str(&err, -rc));
	else if (err.code)
		nox_log(NOX_LOG_WARN, "reaper: %s", err.msg);
}

static void *reaper_main(void *arg)
{
	struct noxd_reaper *rp = arg;
	struct timespec until;
	int rc;

	pthread_mutex_lock(&rp->lock);
	while (!rp->stop) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += rp->interval;
		rc = 0;
		while (!rp->stop && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&rp->cond, &rp->lock,
						    &until);
		if (rp->stop)
			break;
		pthread_mutex_unlock(&rp->lock);
		reaper_pass(rp->d);
		pthread_mutex_lock(&rp->lock);
	}
	pthread_mutex_unlock(&rp->lock);
	return NULL;
}

int reaper_start(struct noxd *d, unsigned interval)
{
	struct noxd_reaper *rp;
	pthread_condattr_t ca;
	int rc;

	if (!interval)
		return 0;
	rp = calloc(1, sizeof(*rp));
	if (!rp)
		return -ENOMEM;
	rp->d = d;
	rp->interval = interval;
	pthread_mutex_init(&rp->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rp->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&rp->thread, NULL, reaper_main, rp);
	if (rc != 0) {
		pthread_cond_destroy(&rp->cond);
		pthread_mutex_destroy(&rp->lock);
		free(rp);
		return -rc;
	}
	d->reaper = rp;
	return 0;
}

void reaper_stop(struct noxd *d)
{
	struct noxd_reaper *rp = d->reaper;

	if (!rp)
		return;
	pthread_mutex_lock(&rp->lock);
	rp->stop = true;
	pthread_cond_signal(&rp->cond);
	pthread_mutex_unlock(&rp->lock);
	pthread_join(rp->thread, NULL);
	pthread_cond_destroy(&rp->cond);
	pthread_mutex_destroy(&rp->lock);
	free(rp);
	d->reaper = NULL;
}
