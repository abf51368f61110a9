/*
 * array_i.h - growing a heap array by doubling, for libnox and its
 * programs (private: not installed, not exported by libnox.so).
 */
#ifndef NOX_ARRAY_I_H
#define NOX_ARRAY_I_H

#include <stddef.h>

/*
 * Room for need elements of elem bytes in arr, which holds *cap: returns
 * arr itself when it already has room, else arr reallocated to the
 * doubled capacity (16 elements at least, need at least) with *cap
 * updated.  On overflow or out of memory returns NULL and leaves arr
 * (still owned by the caller) and *cap as they were.  Callers write
 *	v = nox_array_grow(l->v, &l->cap, l->n + 1, sizeof(*v));
 *	if (!v)
 *		return -ENOMEM;
 *	l->v = v;
 */
void *nox_array_grow(void *arr, size_t *cap, size_t need, size_t elem);

#endif
