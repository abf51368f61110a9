/*
 * test_id.c - session ID rule and workspace path rules.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include <nox/id.h>

#include "testutil.h"

static void test_id_accepts(void)
{
	const char *ok[] = { "a", "abc", "A-b_c.d", "0", "_x", "x.", "s1-2" };
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		CU_ASSERT_EQUAL(nox_id_validate(ok[i], NULL), 0);
}

static void test_id_rejects(void)
{
	/* Each would escape or alias another sandbox's directory. */
	const char *bad[] = { "", ".", "..", ".hidden", "-rf", "a/b", "../x",
			      "a b", "a\nb", "é", "a*", "a\\b", "x;y" };
	struct nox_err err;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_EQUAL(nox_id_validate(bad[i], &err), -EINVAL);
		CU_ASSERT_EQUAL(err.code, EINVAL);
		CU_ASSERT(strlen(err.msg) > 0);
	}
	CU_ASSERT_EQUAL(nox_id_validate(NULL, NULL), -EINVAL);
}

static void test_id_length(void)
{
	char id[NOX_ID_MAX + 2];

	memset(id, 'a', sizeof(id));
	id[NOX_ID_MAX] = '\0';
	CU_ASSERT_EQUAL(nox_id_validate(id, NULL), 0);
	id[NOX_ID_MAX] = 'a';
	id[NOX_ID_MAX + 1] = '\0';
	CU_ASSERT_EQUAL(nox_id_validate(id, NULL), -EINVAL);
}

static void test_path_rules(void)
{
	char longc[NAME_MAX + 2];

	CU_ASSERT_EQUAL(nox_path_validate("", NULL), 0);
	CU_ASSERT_EQUAL(nox_path_validate(".", NULL), 0);
	CU_ASSERT_EQUAL(nox_path_validate("a/b/c", NULL), 0);
	CU_ASSERT_EQUAL(nox_path_validate("..x/y..", NULL), 0);
	CU_ASSERT_EQUAL(nox_path_validate("/etc/passwd", NULL), -EINVAL);
	CU_ASSERT_EQUAL(nox_path_validate("..", NULL), -EINVAL);
	CU_ASSERT_EQUAL(nox_path_validate("a/../../b", NULL), -EINVAL);
	CU_ASSERT_EQUAL(nox_path_validate("a/./b", NULL), -EINVAL);
	CU_ASSERT_EQUAL(nox_path_validate("a//b", NULL), -EINVAL);
	CU_ASSERT_EQUAL(nox_path_validate("a/", NULL), -EINVAL);
	memset(longc, 'x', sizeof(longc));
	longc[NAME_MAX + 1] = '\0';
	CU_ASSERT_EQUAL(nox_path_validate(longc, NULL), -ENAMETOOLONG);
	longc[NAME_MAX] = '\0';
	CU_ASSERT_EQUAL(nox_path_validate(longc, NULL), 0);
}

static void test_path_from_sandbox(void)
{
	char out[PATH_MAX];

	CU_ASSERT_EQUAL(nox_path_from_sandbox("/workspace", out, sizeof(out), NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "");
	CU_ASSERT_EQUAL(nox_path_from_sandbox(NULL, out, sizeof(out), NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "");
	CU_ASSERT_EQUAL(nox_path_from_sandbox("/workspace/a/b/", out, sizeof(out), NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "a/b");
	CU_ASSERT_EQUAL(nox_path_from_sandbox("rel/x", out, sizeof(out), NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "rel/x");
	CU_ASSERT_EQUAL(nox_path_from_sandbox("/workspacex", out, sizeof(out), NULL), -EINVAL);
	CU_ASSERT_EQUAL(nox_path_from_sandbox("/etc", out, sizeof(out), NULL), -EINVAL);
	CU_ASSERT_EQUAL(nox_path_from_sandbox("/workspace/../etc", out, sizeof(out), NULL), -EINVAL);
	CU_ASSERT_EQUAL(nox_path_from_sandbox("../x", out, sizeof(out), NULL), -EINVAL);
	CU_ASSERT_EQUAL(nox_path_from_sandbox("/workspace/ab", out, 2, NULL), -ENAMETOOLONG);
}

int main(void)
{
	static const struct tu_test tests[] = {
		{ "id accepts the documented alphabet", test_id_accepts },
		{ "id rejects everything else", test_id_rejects },
		{ "id length bound", test_id_length },
		{ "workspace path rules", test_path_rules },
		{ "sandbox path mapping", test_path_from_sandbox },
		{ NULL, NULL },
	};

	return tu_main("id", tests);
}
