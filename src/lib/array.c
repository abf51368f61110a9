/*
 * array.c - nox_array_grow: one doubling realloc for every growable array.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "array_i.h"

#define ARRAY_MIN 16

void *nox_array_grow(void *arr, size_t *cap, size_t need, size_t elem)
{
	size_t nc = *cap ? *cap : ARRAY_MIN;
	void *p;

	if (need <= *cap && arr)
		return arr;
	if (elem == 0 || need > SIZE_MAX / elem) {
		errno = ENOMEM;
		return NULL;
	}
	while (nc < need)
		nc = nc > SIZE_MAX / 2 ? need : nc * 2;
	if (nc > SIZE_MAX / elem)
		nc = need;
	p = realloc(arr, nc * elem);
	if (!p)
		return NULL;
	*cap = nc;
	return p;
}
