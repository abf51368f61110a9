/*
 * tablelock.c - the inode table's mutex, taken and released through one
 * pair of calls so that debug builds know whether this thread holds it.
 *
 * inode.c and sandbox.c both take table.mutex (a sandbox's references
 * are under it), and the cache layer asserts that it never takes a lock
 * of its own while the table's is held (the order in cache_i.h).  Apart
 * from inode.c, so that sandbox.c does not call into the inode table
 * (module-cycles).  No state of an operation lives here.
 */
#include <assert.h>

#include "inode.h"

#ifndef NDEBUG
/* Debug builds: table mutexes this thread holds. */
static _Thread_local unsigned table_held;
#endif

void fs_table_lock(struct fs_table *t)
{
	pthread_mutex_lock(&t->mutex);
#ifndef NDEBUG
	table_held++;
#endif
}

void fs_table_unlock(struct fs_table *t)
{
#ifndef NDEBUG
	assert(table_held > 0);
	table_held--;
#endif
	pthread_mutex_unlock(&t->mutex);
}

bool fs_table_held(void)
{
#ifndef NDEBUG
	return table_held > 0;
#else
	return false;
#endif
}
