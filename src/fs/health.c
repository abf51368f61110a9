/*
 * health.c - whether the server answers, so that a stalled or unreachable
 * server costs one deadline per operation, not one per lookup.
 *
 * Once a request got no answer (timeout, refused, reset, no route), the
 * server is silent until one gets an answer.  Meanwhile, requests the
 * daemon can do without do not wait: lookups and listings of what the
 * cache holds are served from it at once while the flusher thread asks
 * for a listing in the background (one at a time, at most one a second;
 * its answer ends the silence), and an attached sandbox is not
 * re-confirmed.  Requests it cannot do without (a download, an upload,
 * a command, a first listing) are always tried, each on its own deadline.
 */
#include <errno.h>
#include <stdatomic.h>

#include "fs.h"

bool fs_health_no_answer(int r)
{
	return r == -ETIMEDOUT || r == -ECONNREFUSED || r == -ECONNRESET ||
	       r == -EHOSTUNREACH || r == -ENETUNREACH;
}

bool fs_health_silent(struct fs *fs)
{
	return atomic_load(&fs->silent);
}

void fs_health_failed(struct fs *fs, int r)
{
	if (fs_health_no_answer(r))
		atomic_store(&fs->silent, true);
}

void fs_health_answered(struct fs *fs)
{
	atomic_store(&fs->silent, false);
}
