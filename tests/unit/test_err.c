/*
 * test_err.c - struct nox_err helpers.
 */
#include <errno.h>
#include <string.h>

#include <nox/err.h>

#include "testutil.h"

static void test_set_and_wrap(void)
{
	struct nox_err err;
	char big[3000];

	CU_ASSERT_EQUAL(nox_err_set(&err, ENOENT, "no %s", "thing"), -ENOENT);
	CU_ASSERT_EQUAL(err.code, ENOENT);
	CU_ASSERT_STRING_EQUAL(err.msg, "no thing");
	CU_ASSERT_EQUAL(nox_err_wrap(&err, EIO, "download %d", 7), -EIO);
	CU_ASSERT_STRING_EQUAL(err.msg, "download 7: no thing");
	CU_ASSERT_EQUAL(nox_err_set(NULL, -EPERM, "x"), -EPERM);
	CU_ASSERT_EQUAL(nox_err_set(&err, -EPERM, "x"), -EPERM);
	CU_ASSERT_EQUAL(err.code, EPERM);
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	nox_err_set(&err, E2BIG, "%s", big);
	CU_ASSERT_EQUAL(strlen(err.msg), NOX_ERR_MSG_MAX - 1);
	nox_err_clear(&err);
	CU_ASSERT_EQUAL(err.code, 0);
	CU_ASSERT_STRING_EQUAL(err.msg, "");
	CU_ASSERT_STRING_EQUAL(nox_err_str(&err, ENOENT), strerror(ENOENT));
	CU_ASSERT_STRING_EQUAL(nox_err_str(NULL, -ENOENT), strerror(ENOENT));
}

int main(void)
{
	static const struct tu_test tests[] = {
		{ "set, wrap, clear", test_set_and_wrap },
		{ NULL, NULL },
	};

	return tu_main("err", tests);
}
