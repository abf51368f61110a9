/*
 * test_v1.c - the NoxRunner v1 JSON parsers and encoders.
 *
 * Hostile inputs tried: every field with the wrong type, required fields
 * missing, malformed and truncated JSON, trailing garbage, nesting deeper
 * than the limit, integers too large for int64/int/the allowed range,
 * raw NUL bytes in the input, "\u0000" inside strings, invalid UTF-8
 * (bad bytes, overlong forms, surrogates, truncated sequences) in exec
 * output (U+FFFD in plain v1, exact through nox.bytes' base64 members,
 * bad base64 refused), binary and JSON error bodies, and length arguments
 * that stop before the end of the buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <nox/v1.h>

#include "testutil.h"

#define S(lit) (lit), (sizeof(lit) - 1)

/* true when want is NULL or a part of msg */
static int msg_has(const char *msg, const char *want)
{
	return !want || strstr(msg, want) != NULL;
}

/* Asserts rc == -EINVAL with a message that contains want (if any). */
#define ASSERT_EINVAL(call, want)                                              \
	do {                                                                   \
		struct nox_err e_;                                             \
		nox_err_clear(&e_);                                            \
		int r_ = (call);                                               \
		CU_ASSERT_EQUAL(r_, -EINVAL);                                  \
		CU_ASSERT(e_.msg[0] != '\0');                                  \
		CU_ASSERT(msg_has(e_.msg, (want)));                            \
	} while (0)

/* exec request parse into a local and clean it up */
static int req_parse(const char *json, size_t len, struct nox_err *err)
{
	struct nox_v1_exec_req r;
	int rc = nox_v1_exec_req_parse(json, len, &r, err);

	nox_v1_exec_req_cleanup(&r);
	return rc;
}

static void test_exec_req_good(void)
{
	static const char js[] =
	    "{\"cmd\": [\"sh\", \"-c\", \"echo hi\"], "
	    "\"workdir\": \"/workspace/sub\", "
	    "\"env\": {\"A\": \"1\", \"B\": \"x=y\", \"EMPTY\": \"\"}, "
	    "\"timeoutSeconds\": 45}\n";
	struct nox_v1_exec_req r;
	struct nox_err err;
	int i, seen = 0;

	CU_ASSERT_EQUAL_FATAL(nox_v1_exec_req_parse(S(js), &r, &err), 0);
	CU_ASSERT_STRING_EQUAL(r.req.argv[0], "sh");
	CU_ASSERT_STRING_EQUAL(r.req.argv[1], "-c");
	CU_ASSERT_STRING_EQUAL(r.req.argv[2], "echo hi");
	CU_ASSERT_PTR_NULL(r.req.argv[3]);
	CU_ASSERT_STRING_EQUAL(r.req.workdir, "/workspace/sub");
	CU_ASSERT_EQUAL(r.req.timeout_seconds, 45);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r.req.env);
	for (i = 0; r.req.env[i]; i++) {
		if (strcmp(r.req.env[i], "A=1") == 0)
			seen |= 1;
		if (strcmp(r.req.env[i], "B=x=y") == 0)
			seen |= 2;
		if (strcmp(r.req.env[i], "EMPTY=") == 0)
			seen |= 4;
	}
	CU_ASSERT_EQUAL(i, 3);
	CU_ASSERT_EQUAL(seen, 7);
	nox_v1_exec_req_cleanup(&r);
	CU_ASSERT_PTR_NULL(r.argv);
	nox_v1_exec_req_cleanup(&r); /* twice is fine */

	/* minimal: defaults stay unset (0 / NULL) for the caller */
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_req_parse(S("{\"cmd\":[\"ls\"]}"), &r, &err), 0);
	CU_ASSERT_PTR_NULL(r.req.workdir);
	CU_ASSERT_PTR_NULL(r.req.env);
	CU_ASSERT_EQUAL(r.req.timeout_seconds, 0);
	nox_v1_exec_req_cleanup(&r);

	/* explicit 0 and null optionals */
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_req_parse(S("{\"cmd\":[\"ls\"],\"timeoutSeconds\":0,"
				    "\"workdir\":null,\"env\":null}"),
				  &r, &err),
	    0);
	CU_ASSERT_EQUAL(r.req.timeout_seconds, 0);
	CU_ASSERT_PTR_NULL(r.req.workdir);
	nox_v1_exec_req_cleanup(&r);

	/* the upper bound is allowed, one more is not */
	CU_ASSERT_EQUAL(
	    req_parse(S("{\"cmd\":[\"ls\"],\"timeoutSeconds\":86400}"), &err),
	    0);
	nox_v1_exec_req_cleanup(NULL);
}

static void test_exec_req_bad(void)
{
	/* cmd */
	ASSERT_EINVAL(req_parse(S("{}"), &e_), "'cmd'");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":\"ls\"}"), &e_),
		      "exec request: 'cmd' must be an array of strings");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"ls\",1]}"), &e_),
		      "'cmd' must be an array of strings");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[[\"ls\"]]}"), &e_), "'cmd'");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[null]}"), &e_), "'cmd'");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":null}"), &e_), "'cmd'");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[]}"), &e_), "empty command");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"\"]}"), &e_), "empty command");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"a\\u0000b\"]}"), &e_), "NUL");
	/* workdir */
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"ls\"],\"workdir\":5}"), &e_),
		      "'workdir' must be a string");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"ls\"],\"workdir\":[]}"), &e_),
		      "'workdir'");
	ASSERT_EINVAL(
	    req_parse(S("{\"cmd\":[\"ls\"],\"workdir\":\"/w\\u0000x\"}"), &e_),
	    "'workdir'");
	/* env */
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"ls\"],\"env\":[\"A=1\"]}"), &e_),
		      "'env' must be an object");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"ls\"],\"env\":\"A=1\"}"), &e_),
		      "'env'");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"ls\"],\"env\":{\"A\":1}}"), &e_),
		      "'env' value of 'A' must be a string");
	ASSERT_EINVAL(
	    req_parse(S("{\"cmd\":[\"ls\"],\"env\":{\"A\":null}}"), &e_),
	    "'env'");
	ASSERT_EINVAL(
	    req_parse(S("{\"cmd\":[\"ls\"],\"env\":{\"\":\"1\"}}"), &e_),
	    "'env' key");
	ASSERT_EINVAL(
	    req_parse(S("{\"cmd\":[\"ls\"],\"env\":{\"A=B\":\"1\"}}"), &e_),
	    "'env' key");
	ASSERT_EINVAL(
	    req_parse(S("{\"cmd\":[\"ls\"],\"env\":{\"A\":\"x\\u0000\"}}"),
		      &e_),
	    "NUL");
	/* timeoutSeconds */
	ASSERT_EINVAL(
	    req_parse(S("{\"cmd\":[\"ls\"],\"timeoutSeconds\":\"5\"}"), &e_),
	    "'timeoutSeconds' must be an integer");
	ASSERT_EINVAL(
	    req_parse(S("{\"cmd\":[\"ls\"],\"timeoutSeconds\":1.5}"), &e_),
	    "'timeoutSeconds' must be an integer");
	ASSERT_EINVAL(
	    req_parse(S("{\"cmd\":[\"ls\"],\"timeoutSeconds\":true}"), &e_),
	    "'timeoutSeconds'");
	ASSERT_EINVAL(
	    req_parse(S("{\"cmd\":[\"ls\"],\"timeoutSeconds\":-1}"), &e_),
	    "'timeoutSeconds' is out of range");
	ASSERT_EINVAL(
	    req_parse(S("{\"cmd\":[\"ls\"],\"timeoutSeconds\":86401}"), &e_),
	    "out of range");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"ls\"],\"timeoutSeconds\":"
				  "99999999999999999999999}"),
				&e_),
		      "out of range");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"ls\"],\"timeoutSeconds\":"
				  "-99999999999999999999999}"),
				&e_),
		      "out of range");
	ASSERT_EINVAL(
	    req_parse(S("{\"cmd\":[\"ls\"],\"timeoutSeconds\":1e400}"), &e_),
	    "'timeoutSeconds'");
}

static void test_malformed(void)
{
	char deep[200], *big;
	size_t i;

	ASSERT_EINVAL(req_parse(S(""), &e_), "exec request");
	ASSERT_EINVAL(req_parse(NULL, 0, &e_), "exec request");
	ASSERT_EINVAL(req_parse(S("   "), &e_), "truncated");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"ls\""), &e_), "truncated");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"ls\"]"), &e_), "truncated");
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"l"), &e_), NULL);
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"ls\"]} x"), &e_), NULL);
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"ls\"]}{}"), &e_), NULL);
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"ls\"]},"), &e_), NULL);
	ASSERT_EINVAL(req_parse(S("{\"cmd\":[\"ls\"],}"), &e_), "malformed");
	ASSERT_EINVAL(req_parse(S("[\"ls\"]"), &e_), "not a JSON object");
	ASSERT_EINVAL(req_parse(S("\"ls\""), &e_), "not a JSON object");
	ASSERT_EINVAL(req_parse(S("null"), &e_), NULL);
	ASSERT_EINVAL(req_parse(S("null "), &e_), "not a JSON object");
	ASSERT_EINVAL(req_parse(S("{cmd:[\"ls\"]}"), &e_), "malformed");
	ASSERT_EINVAL(
	    req_parse(S("{\"cmd\":[\"ls\"],\"timeoutSeconds\":NaN}"), &e_),
	    "'timeoutSeconds'");
	/* a raw NUL byte inside the input */
	ASSERT_EINVAL(req_parse("{\"cmd\":[\"l\0s\"]}", 15, &e_), NULL);
	ASSERT_EINVAL(req_parse("{\"cmd\":[\"ls\"]}\0", 15, &e_), NULL);
	/* len stops before the end: what is after it is not read */
	ASSERT_EINVAL(req_parse("{\"cmd\":[\"ls\"]}", 10, &e_), "truncated");

	/* nesting deeper than the limit (16) */
	for (i = 0; i < 40; i++)
		deep[i] = '[';
	deep[40] = '\0';
	ASSERT_EINVAL(req_parse(deep, 40, &e_), NULL);
	memset(deep, 0, sizeof(deep));
	memcpy(deep, "{\"cmd\":[\"ls\"],\"x\":", 18);
	for (i = 0; i < 30; i++)
		deep[18 + i] = '[';
	for (i = 0; i < 30; i++)
		deep[48 + i] = ']';
	deep[78] = '}';
	ASSERT_EINVAL(req_parse(deep, 79, &e_), "malformed");
	/* nesting within the limit is fine (unknown fields are ignored) */
	snprintf(deep, sizeof(deep), "%s",
		 "{\"cmd\":[\"ls\"],\"x\":[[[[[[[[]]]]]]]]}");
	CU_ASSERT_EQUAL(req_parse(deep, strlen(deep), NULL), 0);

	/* over the input bound: refused before parsing */
	big = malloc(65u * 1024 * 1024);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, ' ', 65u * 1024 * 1024);
	memcpy(big, "{\"cmd\":[\"ls\"]}", 14);
	ASSERT_EINVAL(req_parse(big, 65u * 1024 * 1024, &e_), "limit");
	free(big);
}

static void test_exec_req_encode(void)
{
	const char *argv[] = {"printf", "%s\\n", "a \"q\" /b\n", NULL};
	const char *env[] = {"K=v=w", "E=", NULL};
	struct nox_exec_req req = {.argv = argv,
				   .workdir = "/workspace/d",
				   .env = env,
				   .timeout_seconds = 12};
	struct nox_v1_exec_req back;
	struct nox_err err;
	char *js;

	js = nox_v1_exec_req_encode(&req);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_PTR_NULL(strstr(js, "\\/")); /* no slash escapes */
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_req_parse(js, strlen(js), &back, &err), 0);
	CU_ASSERT_STRING_EQUAL(back.req.argv[0], "printf");
	CU_ASSERT_STRING_EQUAL(back.req.argv[1], "%s\\n");
	CU_ASSERT_STRING_EQUAL(back.req.argv[2], "a \"q\" /b\n");
	CU_ASSERT_PTR_NULL(back.req.argv[3]);
	CU_ASSERT_STRING_EQUAL(back.req.workdir, "/workspace/d");
	CU_ASSERT_EQUAL(back.req.timeout_seconds, 12);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back.req.env);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back.req.env[0]);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back.req.env[1]);
	CU_ASSERT((strcmp(back.req.env[0], "K=v=w") == 0 &&
		   strcmp(back.req.env[1], "E=") == 0) ||
		  (strcmp(back.req.env[1], "K=v=w") == 0 &&
		   strcmp(back.req.env[0], "E=") == 0));
	nox_v1_exec_req_cleanup(&back);
	free(js);

	/* defaults are left out, not invented */
	req.workdir = NULL;
	req.env = NULL;
	req.timeout_seconds = 0;
	js = nox_v1_exec_req_encode(&req);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_PTR_NULL(strstr(js, "workdir"));
	CU_ASSERT_PTR_NULL(strstr(js, "env"));
	CU_ASSERT_PTR_NULL(strstr(js, "timeoutSeconds"));
	free(js);

	req.argv = NULL;
	CU_ASSERT_PTR_NULL(nox_v1_exec_req_encode(&req));
	CU_ASSERT_PTR_NULL(nox_v1_exec_req_encode(NULL));
}

static int res_parse(const char *json, size_t len, struct nox_err *err)
{
	struct nox_exec_result r;
	int rc = nox_v1_exec_result_parse(json, len, &r, err);

	if (rc < 0) {
		/* a failed parse leaves nothing to free */
		CU_ASSERT_PTR_NULL(r.out);
		CU_ASSERT_PTR_NULL(r.err);
	}
	nox_exec_result_cleanup(&r);
	return rc;
}

static void test_exec_result(void)
{
	static const char js[] =
	    "{\"exitCode\": 3, \"stdout\": \"a\\u0000b\\n\", "
	    "\"stderr\": \"\", \"durationMs\": 17}";
	struct nox_exec_result r;
	struct nox_err err;

	CU_ASSERT_EQUAL_FATAL(nox_v1_exec_result_parse(S(js), &r, &err), 0);
	CU_ASSERT_EQUAL(r.exit_code, 3);
	CU_ASSERT_EQUAL(r.out_len, 4);
	CU_ASSERT_EQUAL(memcmp(r.out, "a\0b\n", 5), 0); /* NUL-terminated */
	CU_ASSERT_EQUAL(r.err_len, 0);
	CU_ASSERT_STRING_EQUAL(r.err, "");
	CU_ASSERT_EQUAL(r.duration_ms, 17);
	nox_exec_result_cleanup(&r);

	/* durationMs is optional; negative exit codes exist (signals) */
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_result_parse(S("{\"exitCode\":-9,\"stdout\":\"\","
				       "\"stderr\":\"x\"}"),
				     &r, &err),
	    0);
	CU_ASSERT_EQUAL(r.exit_code, -9);
	CU_ASSERT_EQUAL(r.duration_ms, 0);
	nox_exec_result_cleanup(&r);

	ASSERT_EINVAL(res_parse(S("{\"stdout\":\"\",\"stderr\":\"\"}"), &e_),
		      "exec result: 'exitCode' is missing");
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":\"0\",\"stdout\":\"\","
				  "\"stderr\":\"\"}"),
				&e_),
		      "'exitCode' must be an integer");
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0.5,\"stdout\":\"\","
				  "\"stderr\":\"\"}"),
				&e_),
		      "'exitCode'");
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":4294967296,\"stdout\":\"\","
				  "\"stderr\":\"\"}"),
				&e_),
		      "'exitCode' is out of range");
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0,\"stderr\":\"\"}"), &e_),
		      "'stdout' is missing");
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0,\"stdout\":\"\"}"), &e_),
		      "'stderr' is missing");
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0,\"stdout\":1,"
				  "\"stderr\":\"\"}"),
				&e_),
		      "'stdout' must be a string");
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0,\"stdout\":\"\","
				  "\"stderr\":[]}"),
				&e_),
		      "'stderr' must be a string");
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0,\"stdout\":\"\","
				  "\"stderr\":\"\",\"durationMs\":\"5\"}"),
				&e_),
		      "'durationMs' must be an integer");
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0,\"stdout\":\"\","
				  "\"stderr\":\"\",\"durationMs\":-1}"),
				&e_),
		      "'durationMs'");
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0,\"stdout\":\"\","
				  "\"stderr\":\"\",\"durationMs\":"
				  "18446744073709551616}"),
				&e_),
		      "'durationMs'");
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0,\"stdout\":\"\","
				  "\"stderr\":\"\""),
				&e_),
		      "truncated");
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0,\"stdout\":\"\","
				  "\"stderr\":\"\"}]"),
				&e_),
		      NULL);
	ASSERT_EINVAL(res_parse(S("[0,\"\",\"\"]"), &e_), "not a JSON object");
}

/* true when s (n bytes) is valid UTF-8 by the strict rules */
static int valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0, k, need;
	unsigned cp, min;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			need = 1;
			cp = s[i] & 0x1f;
			min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			need = 2;
			cp = s[i] & 0x0f;
			min = 0x800;
		} else if ((s[i] & 0xf8) == 0xf0) {
			need = 3;
			cp = s[i] & 0x07;
			min = 0x10000;
		} else {
			return 0;
		}
		for (k = 1; k <= need; k++) {
			if (i + k >= n || (s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

/*
 * The "truncated" extension member: encoded only when a stream was cut,
 * parsed when present, type-checked, absent or null meaning "not cut".
 */
static void test_exec_result_truncated(void)
{
	struct nox_exec_result res = {0}, back;
	struct nox_err err;
	char *js;

	res.out = (char *)"o";
	res.out_len = 1;
	res.err = (char *)"e";
	res.err_len = 1;
	js = nox_v1_exec_result_encode(&res);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_PTR_NULL(strstr(js, "truncated")); /* plain v1 */
	free(js);

	res.out_truncated = true;
	js = nox_v1_exec_result_encode(&res);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(js, "\"truncated\":{\"stdout\":true,\"stderr\":false}"));
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_result_parse(js, strlen(js), &back, &err), 0);
	CU_ASSERT_TRUE(back.out_truncated);
	CU_ASSERT_FALSE(back.err_truncated);
	nox_exec_result_cleanup(&back);
	free(js);

	res.out_truncated = false;
	res.err_truncated = true;
	js = nox_v1_exec_result_encode(&res);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_result_parse(js, strlen(js), &back, &err), 0);
	CU_ASSERT_FALSE(back.out_truncated);
	CU_ASSERT_TRUE(back.err_truncated);
	nox_exec_result_cleanup(&back);
	free(js);

	/* members optional; null and absent are "not cut" */
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_result_parse(S("{\"exitCode\":0,\"stdout\":\"\","
				       "\"stderr\":\"\",\"truncated\":"
				       "{\"stderr\":true}}"),
				     &back, &err),
	    0);
	CU_ASSERT_FALSE(back.out_truncated);
	CU_ASSERT_TRUE(back.err_truncated);
	nox_exec_result_cleanup(&back);
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_result_parse(S("{\"exitCode\":0,\"stdout\":\"\","
				       "\"stderr\":\"\",\"truncated\":null}"),
				     &back, &err),
	    0);
	CU_ASSERT_FALSE(back.out_truncated || back.err_truncated);
	nox_exec_result_cleanup(&back);

	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0,\"stdout\":\"\","
				  "\"stderr\":\"\",\"truncated\":true}"),
				&e_),
		      "'truncated' must be an object");
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0,\"stdout\":\"\","
				  "\"stderr\":\"\",\"truncated\":"
				  "{\"stdout\":1}}"),
				&e_),
		      "'truncated.stdout' must be a boolean");
}

/*
 * Encodes out as stdout: plain v1 gives valid UTF-8 JSON that parses back
 * as want (U+FFFD for the bad bytes); with the extensions the JSON is
 * valid UTF-8 too and parses back as exactly out (nox.bytes' base64
 * member, present only when out is not UTF-8).
 */
static void check_repair(const char *out, size_t out_len, const char *want,
			 size_t want_len)
{
	struct nox_exec_result res = {0}, back;
	struct nox_err err;
	bool exact = want_len != out_len || memcmp(out, want, out_len) != 0;
	char *js;

	res.exit_code = 0;
	res.out = (char *)out;
	res.out_len = out_len;
	res.err = NULL; /* allowed: encoded as "" */
	res.err_len = 0;
	js = nox_v1_exec_result_encode_plain(&res);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT(valid_utf8((const unsigned char *)js, strlen(js)));
	CU_ASSERT_PTR_NULL(strstr(js, "Base64"));
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_result_parse(js, strlen(js), &back, &err), 0);
	CU_ASSERT_EQUAL(back.out_len, want_len);
	CU_ASSERT(back.out_len == want_len &&
		  memcmp(back.out, want, want_len) == 0);
	CU_ASSERT_EQUAL(back.err_len, 0);
	CU_ASSERT_FALSE(back.out_exact);
	nox_exec_result_cleanup(&back);
	free(js);

	js = nox_v1_exec_result_encode(&res);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT(valid_utf8((const unsigned char *)js, strlen(js)));
	CU_ASSERT_EQUAL(strstr(js, "\"stdoutBase64\":") != NULL, exact);
	CU_ASSERT_PTR_NULL(strstr(js, "stderrBase64"));
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_result_parse(js, strlen(js), &back, &err), 0);
	CU_ASSERT_EQUAL(back.out_len, out_len);
	CU_ASSERT(back.out_len == out_len &&
		  memcmp(back.out, out, out_len) == 0);
	CU_ASSERT_EQUAL(back.out[back.out_len], '\0');
	CU_ASSERT_EQUAL(back.out_exact, exact);
	CU_ASSERT_EQUAL(back.err_len, 0);
	nox_exec_result_cleanup(&back);
	free(js);
}

#define FFFD "\xef\xbf\xbd"

static void test_exec_result_utf8(void)
{
	struct nox_exec_result res = {0}, back;
	struct nox_err err;
	char bin[256];
	char *js;
	int i;

	/* valid text, embedded NUL and control bytes pass unchanged */
	check_repair(S("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80\0\x01/\"\\"),
		     S("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80\0\x01/\"\\"));
	/* stray bytes */
	check_repair(S("a\xff"
		       "b\x80"
		       "c"),
		     S("a" FFFD "b" FFFD "c"));
	/* overlong forms: C0 80 (NUL), E0 80 AF ('/'), F0 80 80 AF */
	check_repair(S("\xc0\x80"), S(FFFD FFFD));
	check_repair(S("\xe0\x80\xaf"), S(FFFD FFFD FFFD));
	check_repair(S("\xf0\x80\x80\xaf"), S(FFFD FFFD FFFD FFFD));
	/* UTF-16 surrogates encoded in UTF-8 */
	check_repair(S("\xed\xa0\x80x"), S(FFFD FFFD FFFD "x"));
	/* above U+10FFFF, and F5..FF leads */
	check_repair(S("\xf4\x90\x80\x80"), S(FFFD FFFD FFFD FFFD));
	check_repair(S("\xf8\x88\x80\x80\x80"), S(FFFD FFFD FFFD FFFD FFFD));
	/* sequences cut short: one U+FFFD for the maximal subpart */
	check_repair(S("x\xe2\x9c"), S("x" FFFD));
	check_repair(S("\xe2\x9cy"), S(FFFD "y"));
	check_repair(S("\xf0\x9f\x98"), S(FFFD));
	check_repair(S("\xc3"), S(FFFD));

	/* every byte value, in stdout and stderr */
	for (i = 0; i < 256; i++)
		bin[i] = (char)i;
	res.exit_code = 1;
	res.out = bin;
	res.out_len = sizeof(bin);
	res.err = bin;
	res.err_len = sizeof(bin);
	res.duration_ms = 1234567890123L;
	js = nox_v1_exec_result_encode_plain(&res);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT(valid_utf8((const unsigned char *)js, strlen(js)));
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_result_parse(js, strlen(js), &back, &err), 0);
	CU_ASSERT_EQUAL(back.exit_code, 1);
	CU_ASSERT_EQUAL(back.duration_ms, 1234567890123L);
	/* 128 ASCII bytes kept, 128 bad bytes each one U+FFFD */
	CU_ASSERT_EQUAL(back.out_len, 128 + 128 * 3);
	CU_ASSERT_EQUAL(memcmp(back.out, bin, 128), 0);
	CU_ASSERT_EQUAL(back.err_len, back.out_len);
	nox_exec_result_cleanup(&back);
	free(js);
	/* with nox.bytes: every byte exactly, both streams */
	js = nox_v1_exec_result_encode(&res);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT(valid_utf8((const unsigned char *)js, strlen(js)));
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_result_parse(js, strlen(js), &back, &err), 0);
	CU_ASSERT_EQUAL(back.exit_code, 1);
	CU_ASSERT(back.out_len == sizeof(bin) &&
		  memcmp(back.out, bin, sizeof(bin)) == 0);
	CU_ASSERT(back.err_len == sizeof(bin) &&
		  memcmp(back.err, bin, sizeof(bin)) == 0);
	CU_ASSERT_TRUE(back.out_exact && back.err_exact);
	nox_exec_result_cleanup(&back);
	free(js);
	CU_ASSERT_PTR_NULL(nox_v1_exec_result_encode(NULL));
	CU_ASSERT_PTR_NULL(nox_v1_exec_result_encode_plain(NULL));
}

/*
 * nox.bytes members by hand ("/w==" is FF FE), preferred over the text;
 * the "lossy" member both ways; bad members refused.
 */
static void test_exec_result_bytes(void)
{
	struct nox_exec_result res = {0}, back;
	struct nox_err err;
	char *js;

	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_result_parse(
		S("{\"exitCode\":0,\"stdout\":\"" FFFD FFFD "\","
		  "\"stderr\":\"e\",\"stdoutBase64\":\"//4=\"}"),
		&back, &err),
	    0);
	CU_ASSERT(back.out_len == 2 && memcmp(back.out, "\xff\xfe", 3) == 0);
	CU_ASSERT_TRUE(back.out_exact);
	CU_ASSERT_FALSE(back.err_exact);
	CU_ASSERT_STRING_EQUAL(back.err, "e");
	CU_ASSERT_FALSE(back.out_lossy || back.err_lossy);
	nox_exec_result_cleanup(&back);
	/* an empty base64 member is an empty stream */
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_result_parse(S("{\"exitCode\":0,\"stdout\":\"x\","
				       "\"stderr\":\"\","
				       "\"stderrBase64\":\"\"}"),
				     &back, &err),
	    0);
	CU_ASSERT_EQUAL(back.err_len, 0);
	CU_ASSERT_TRUE(back.err_exact);
	nox_exec_result_cleanup(&back);
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0,\"stdout\":\"\","
				  "\"stderr\":\"\",\"stdoutBase64\":7}"),
				&e_),
		      "'stdoutBase64' must be a string");
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0,\"stdout\":\"\","
				  "\"stderr\":\"\",\"stderrBase64\":\"@@\"}"),
				&e_),
		      "'stderrBase64' is not base64");

	/* lossy: sent only when set, parsed back */
	res.out = (char *)"o";
	res.out_len = 1;
	res.err = (char *)"e";
	res.err_len = 1;
	js = nox_v1_exec_result_encode(&res);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_PTR_NULL(strstr(js, "lossy"));
	free(js);
	res.err_lossy = true;
	js = nox_v1_exec_result_encode(&res);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(js, "\"lossy\":{\"stdout\":false,\"stderr\":true}"));
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_exec_result_parse(js, strlen(js), &back, &err), 0);
	CU_ASSERT_FALSE(back.out_lossy);
	CU_ASSERT_TRUE(back.err_lossy);
	nox_exec_result_cleanup(&back);
	free(js);
	js = nox_v1_exec_result_encode_plain(&res);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_PTR_NULL(strstr(js, "lossy"));
	free(js);
	ASSERT_EINVAL(res_parse(S("{\"exitCode\":0,\"stdout\":\"\","
				  "\"stderr\":\"\",\"lossy\":[]}"),
				&e_),
		      "'lossy' must be an object");
}

static void test_create(void)
{
	struct nox_create_opts o, in = {0};
	struct nox_sandbox_info info, ib;
	struct nox_err err;
	char *store, *js;

	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_create_req_parse(
		S("{\"ttlSeconds\":120,\"image\":\"py:3\","
		  "\"cpuLimit\":\"1\",\"memoryLimit\":\"1Gi\","
		  "\"ephemeralStorageLimit\":\"2Gi\"}"),
		&o, &store, &err),
	    0);
	CU_ASSERT_EQUAL(o.ttl_seconds, 120);
	CU_ASSERT_STRING_EQUAL(o.image, "py:3");
	CU_ASSERT_STRING_EQUAL(o.cpu_limit, "1");
	CU_ASSERT_STRING_EQUAL(o.memory_limit, "1Gi");
	CU_ASSERT_STRING_EQUAL(o.storage_limit, "2Gi");
	free(store);

	/* all optional, empty body allowed */
	CU_ASSERT_EQUAL(nox_v1_create_req_parse(S("{}"), &o, &store, &err), 0);
	CU_ASSERT_EQUAL(o.ttl_seconds, 0);
	CU_ASSERT_PTR_NULL(o.image);
	free(store);
	CU_ASSERT_EQUAL(nox_v1_create_req_parse(S(""), &o, &store, &err), 0);
	CU_ASSERT_EQUAL(o.ttl_seconds, 0);
	free(store);
	CU_ASSERT_EQUAL(nox_v1_create_req_parse(S(" \n"), &o, &store, &err), 0);
	free(store);

	ASSERT_EINVAL(
	    nox_v1_create_req_parse(S("{\"ttlSeconds\":0}"), &o, &store, &e_),
	    "'ttlSeconds'");
	CU_ASSERT_PTR_NULL(store);
	ASSERT_EINVAL(
	    nox_v1_create_req_parse(S("{\"ttlSeconds\":-5}"), &o, &store, &e_),
	    "'ttlSeconds'");
	ASSERT_EINVAL(nox_v1_create_req_parse(S("{\"ttlSeconds\":\"60\"}"), &o,
					      &store, &e_),
		      "'ttlSeconds' must be an integer");
	ASSERT_EINVAL(nox_v1_create_req_parse(S("{\"ttlSeconds\":60.5}"), &o,
					      &store, &e_),
		      "'ttlSeconds'");
	ASSERT_EINVAL(nox_v1_create_req_parse(S("{\"ttlSeconds\":"
						"1000000000000000000000}"),
					      &o, &store, &e_),
		      "'ttlSeconds'");
	ASSERT_EINVAL(
	    nox_v1_create_req_parse(S("{\"image\":1}"), &o, &store, &e_),
	    "create request: 'image' must be a string");
	ASSERT_EINVAL(
	    nox_v1_create_req_parse(S("{\"cpuLimit\":2}"), &o, &store, &e_),
	    "'cpuLimit'");
	ASSERT_EINVAL(
	    nox_v1_create_req_parse(S("{\"memoryLimit\":{}}"), &o, &store, &e_),
	    "'memoryLimit'");
	ASSERT_EINVAL(nox_v1_create_req_parse(
			  S("{\"ephemeralStorageLimit\":[]}"), &o, &store, &e_),
		      "'ephemeralStorageLimit'");
	ASSERT_EINVAL(nox_v1_create_req_parse(S("{\"image\":\"a\\u0000\"}"), &o,
					      &store, &e_),
		      "'image'");
	ASSERT_EINVAL(
	    nox_v1_create_req_parse(S("{\"image\":\"a\""), &o, &store, &e_),
	    "truncated");
	ASSERT_EINVAL(nox_v1_create_req_parse(S("{} []"), &o, &store, &e_),
		      NULL);
	CU_ASSERT_PTR_NULL(store);

	/* encode: ttl defaults to 900, unset strings left out */
	js = nox_v1_create_req_encode(&in);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"ttlSeconds\":900"));
	CU_ASSERT_PTR_NULL(strstr(js, "image"));
	free(js);
	in.ttl_seconds = 60;
	in.image = "reg/img:1";
	in.storage_limit = "1Gi";
	js = nox_v1_create_req_encode(&in);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_create_req_parse(js, strlen(js), &o, &store, &err), 0);
	CU_ASSERT_EQUAL(o.ttl_seconds, 60);
	CU_ASSERT_STRING_EQUAL(o.image, "reg/img:1");
	CU_ASSERT_STRING_EQUAL(o.storage_limit, "1Gi");
	CU_ASSERT_PTR_NULL(o.cpu_limit);
	free(store);
	free(js);

	/* create response */
	memset(&info, 0, sizeof(info));
	snprintf(info.pod_name, sizeof(info.pod_name), "sandbox-abc");
	snprintf(info.expires_at, sizeof(info.expires_at),
		 "2026-12-01T10:00:00Z");
	info.ttl_seconds = 900;
	js = nox_v1_create_resp_encode(&info);
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_EQUAL_FATAL(
	    nox_v1_create_resp_parse(js, strlen(js), &ib, &err), 0);
	CU_ASSERT_STRING_EQUAL(ib.pod_name, "sandbox-abc");
	CU_ASSERT_STRING_EQUAL(ib.expires_at, "2026-12-01T10:00:00Z");
	CU_ASSERT_EQUAL(ib.ttl_seconds, 900);
	free(js);
	CU_ASSERT_EQUAL(
	    nox_v1_create_resp_parse(
		S("{\"podName\":\"p\",\"expiresAt\":\"t\"}"), &ib, &err),
	    0);
	CU_ASSERT_EQUAL(ib.ttl_seconds, 0);

	ASSERT_EINVAL(
	    nox_v1_create_resp_parse(S("{\"expiresAt\":\"t\"}"), &ib, &e_),
	    "create response: 'podName' is missing");
	ASSERT_EINVAL(
	    nox_v1_create_resp_parse(S("{\"podName\":\"p\"}"), &ib, &e_),
	    "'expiresAt' is missing");
	ASSERT_EINVAL(nox_v1_create_resp_parse(
			  S("{\"podName\":7,\"expiresAt\":\"t\"}"), &ib, &e_),
		      "'podName' must be a string");
	ASSERT_EINVAL(nox_v1_create_resp_parse(
			  S("{\"podName\":\"p\",\"expiresAt\":1}"), &ib, &e_),
		      "'expiresAt' must be a string");
	ASSERT_EINVAL(
	    nox_v1_create_resp_parse(S("{\"podName\":\"p\",\"expiresAt\":\"t\","
				       "\"ttlSeconds\":\"1\"}"),
				     &ib, &e_),
	    "'ttlSeconds'");
	{
		/* a value too long for the fixed buffer */
		char *longjs =
		    tu_strf("{\"podName\":\"%0300d\",\"expiresAt\":\"t\"}", 0);

		ASSERT_EINVAL(
		    nox_v1_create_resp_parse(longjs, strlen(longjs), &ib, &e_),
		    "'podName' is longer");
		free(longjs);
	}
	ASSERT_EINVAL(
	    nox_v1_create_resp_parse(S("{\"podName\":\"p\""), &ib, &e_),
	    "truncated");
}

static void test_error(void)
{
	char out[64], small[8];
	char *js;
	size_t i;

	js = nox_v1_error_encode("no such \xff sandbox \"x\"");
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT(valid_utf8((const unsigned char *)js, strlen(js)));
	nox_v1_error_text(js, strlen(js), out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "no such " FFFD " sandbox \"x\"");
	free(js);
	js = nox_v1_error_encode(NULL);
	CU_ASSERT_PTR_NOT_NULL(js);
	free(js);

	/* JSON with an "error" string */
	nox_v1_error_text(S("{\"error\": \"sandbox not found\", \"errno\": "
			    "\"ENOENT\"}"),
			  out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "sandbox not found");
	/* JSON without one: the body as text */
	nox_v1_error_text(S("{\"detail\": 1}"), out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "{\"detail\": 1}");
	nox_v1_error_text(S("{\"error\": 5}"), out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "{\"error\": 5}");
	/* plain text, trailing newline dropped */
	nox_v1_error_text(S("Bad Request\r\n"), out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "Bad Request");
	/* binary: only printable ASCII is kept, never past len */
	nox_v1_error_text("ab\x00\xff\x1b[31mcd\x80zz", 12, out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "ab [31mcd");
	/* truncation, always NUL-terminated */
	nox_v1_error_text(S("0123456789abcdef"), small, sizeof(small));
	CU_ASSERT_STRING_EQUAL(small, "0123456");
	nox_v1_error_text(S("{\"error\":\"0123456789\"}"), small,
			  sizeof(small));
	CU_ASSERT_STRING_EQUAL(small, "0123456");
	/* a multi-byte character is not cut in half */
	nox_v1_error_text(S("{\"error\":\"012345\xc3\xa9\"}"), small,
			  sizeof(small));
	CU_ASSERT_STRING_EQUAL(small, "012345");
	nox_v1_error_text(S("x"), small, 1);
	CU_ASSERT_STRING_EQUAL(small, "");
	nox_v1_error_text(NULL, 0, out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "");
	nox_v1_error_text(S("abc"), out, 0); /* no write at all */
	/* control characters in the "error" text become spaces */
	nox_v1_error_text(S("{\"error\":\"line1\\nline2\\u0000\"}"), out,
			  sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "line1 line2");
	/* a body not terminated by NUL: bytes after len are not read */
	memset(out, 'Z', sizeof(out));
	{
		char body[4] = {'a', 'b', 'c', 'd'};

		nox_v1_error_text(body, 3, out, sizeof(out));
		CU_ASSERT_STRING_EQUAL(out, "abc");
	}
	/* exact-size heap copies without a NUL: ASan/valgrind catch any
	 * read past len */
	{
		static const char es[] = "{\"error\":\"heap-msg\"}";
		static const char rs[] = "{\"exitCode\":0,\"stdout\":\"o\","
					 "\"stderr\":\"e\"}";
		struct nox_exec_result res;
		char *h = malloc(sizeof(es) - 1);

		CU_ASSERT_FATAL(h != NULL);
		memcpy(h, es, sizeof(es) - 1);
		nox_v1_error_text(h, sizeof(es) - 1, out, sizeof(out));
		CU_ASSERT_STRING_EQUAL(out, "heap-msg");
		nox_v1_error_text(h, sizeof(es) - 2, out, sizeof(out));
		CU_ASSERT_STRING_EQUAL(out, "{\"error\":\"heap-msg\"");
		free(h);
		h = malloc(sizeof(rs) - 1);
		CU_ASSERT_FATAL(h != NULL);
		memcpy(h, rs, sizeof(rs) - 1);
		CU_ASSERT_EQUAL(
		    nox_v1_exec_result_parse(h, sizeof(rs) - 1, &res, NULL), 0);
		CU_ASSERT_STRING_EQUAL(res.out, "o");
		nox_exec_result_cleanup(&res);
		free(h);
	}
	for (i = 0; i < sizeof(out); i++)
		out[i] = 0;
}

int main(void)
{
	static const struct tu_test tests[] = {
	    {"exec request: good input", test_exec_req_good},
	    {"exec request: wrong types, missing, ranges", test_exec_req_bad},
	    {"malformed, truncated, trailing, deep, huge", test_malformed},
	    {"exec request: encode round trip", test_exec_req_encode},
	    {"exec result: parse", test_exec_result},
    {"exec result: truncated member", test_exec_result_truncated},
	    {"exec result: invalid UTF-8 becomes U+FFFD",
	     test_exec_result_utf8},
	    {"exec result: nox.bytes and lossy members",
	     test_exec_result_bytes},
	    {"create request and response", test_create},
	    {"error bodies", test_error},
	    {NULL, NULL},
	};

	return tu_main("v1", tests);
}
