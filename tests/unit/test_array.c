/*
 * test_array.c - nox_array_grow: doubling, contents kept, overflow and
 * the NULL array.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "array_i.h"
#include "testutil.h"

static void test_grow_keeps_contents(void)
{
	size_t cap = 0, n, i;
	int *v = NULL, *g;

	for (n = 0; n < 1000; n++) {
		g = nox_array_grow(v, &cap, n + 1, sizeof(*v));
		CU_ASSERT_PTR_NOT_NULL_FATAL(g);
		v = g;
		CU_ASSERT(cap >= n + 1);
		v[n] = (int)n * 3;
	}
	for (i = 0; i < n; i++)
		CU_ASSERT_EQUAL(v[i], (int)i * 3);
	/* doubling from 16: 1000 elements fit in 1024 */
	CU_ASSERT_EQUAL(cap, 1024);
	free(v);
}

static void test_room_already(void)
{
	size_t cap = 0;
	char *v = nox_array_grow(NULL, &cap, 1, 1), *g;

	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	CU_ASSERT_EQUAL(cap, 16);
	/* enough room: the same array, capacity untouched */
	g = nox_array_grow(v, &cap, 16, 1);
	CU_ASSERT_PTR_EQUAL(g, v);
	CU_ASSERT_EQUAL(cap, 16);
	/* a jump past the doubled size gets at least what was asked */
	g = nox_array_grow(v, &cap, 100, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	v = g;
	CU_ASSERT_EQUAL(cap, 128);
	free(v);
}

static void test_overflow(void)
{
	size_t cap = 4;
	long *v = calloc(cap, sizeof(*v)), *g;

	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	v[3] = 42;
	errno = 0;
	g = nox_array_grow(v, &cap, SIZE_MAX / 2, sizeof(*v));
	CU_ASSERT_PTR_NULL(g);
	CU_ASSERT_EQUAL(errno, ENOMEM);
	/* the failed call left the array and its capacity alone */
	CU_ASSERT_EQUAL(cap, 4);
	CU_ASSERT_EQUAL(v[3], 42);
	free(v);
}

int main(void)
{
	static const struct tu_test tests[] = {
	    {"grow keeps contents", test_grow_keeps_contents},
	    {"room already, jumps", test_room_already},
	    {"overflow leaves the array", test_overflow},
	    {NULL, NULL},
	};

	return tu_main("array", tests);
}
