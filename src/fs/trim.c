/*
 * trim.c - the node budget: keeps the inode table near -o node_max
 * nodes, whatever the size of the tree the kernel walks.
 *
 * The kernel holds a node (and the daemon its fs_node, ~350 bytes) for
 * every name it has looked up until it forgets it, and with plenty of
 * memory it forgets nothing: a find over 1,000,000 files kept 1,000,000
 * nodes.  One thread waits until the table passes node_max, then asks
 * the kernel to drop the dentries of the coldest files
 * (fs_table_collect_trim, a clock over the table) down to 90 % of it.
 * The kernel then sends FORGET for each inode no process holds, and the
 * node is freed as by any forget.  A file open, cwd-free directory
 * levels, files with writes to send, and directories are never asked
 * (directories stay: invalidating one would make getcwd() fail in a
 * shell inside it; their count is the tree's directories, not files).
 * A dropped name costs one LOOKUP at its next use.
 *
 * Notifications are sent with no lock held, from this thread only (see
 * barrier.c for why).
 */
#include <errno.h>
#include <string.h>

#include <nox/log.h>

#include "fs.h"

/* How long a sweep waits for the kernel's forgets before the next. */
#define TRIM_PAUSE_MS 50

static void trim_send(struct fs *fs, struct fs_inval *v, size_t n)
{
	size_t i;
	int r;

	if (fs->notify) {
		fs->notify(fs, v, n);
		return;
	}
	for (i = 0; i < n; i++) {
		r = fuse_lowlevel_notify_inval_entry(
		    fs->se, v[i].parent, v[i].name, strlen(v[i].name));
		if (r < 0 && r != -ENOENT)
			nox_log(NOX_LOG_DEBUG, "trim: inval entry %s: %s",
				v[i].name, strerror(-r));
	}
}

static void *trim_main(void *arg)
{
	struct fs *fs = arg;
	struct fs_table *t = &fs->table;
	int wait_ms = 1000;

	for (;;) {
		struct fs_inval *v = NULL;
		size_t over = fs_table_trim_wait(t, wait_ms), n = 0;

		if (over == 0) {
			bool stop;

			fs_table_lock(t);
			stop = t->trim_stop;
			fs_table_unlock(t);
			if (stop)
				break;
			wait_ms = 1000;
			continue;
		}
		if (fs_table_collect_trim(t, over, &v, &n) < 0 || n == 0) {
			/* nothing to drop now (all in use): look again later
			 * rather than sweep in a loop */
			fs_inval_free(v, n);
			wait_ms = 1000;
			continue;
		}
		nox_log(NOX_LOG_DEBUG, "trim: %zu nodes over; %zu dropped",
			over, n);
		trim_send(fs, v, n);
		fs_inval_free(v, n);
		wait_ms = TRIM_PAUSE_MS;
	}
	return NULL;
}

int fs_trim_start(struct fs *fs)
{
	int r;

	if (fs->table.node_max == 0 || fs->no_notify ||
	    (!fs->se && !fs->notify))
		return 0;
	r = pthread_create(&fs->trim_thread, NULL, trim_main, fs);
	if (r != 0)
		return -r;
	fs->trim_running = true;
	return 0;
}

void fs_trim_stop(struct fs *fs)
{
	if (!fs->trim_running)
		return;
	fs_table_trim_stop(&fs->table);
	pthread_join(fs->trim_thread, NULL);
	fs->trim_running = false;
}
