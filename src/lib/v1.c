/*
 * v1.c - the NoxRunner v1 JSON shapes (see nox/v1.h), with json-c.
 *
 * Every parser treats its input as hostile: the input is bounded
 * (V1_MAX_INPUT), nesting is bounded (V1_MAX_DEPTH), the whole input must be
 * one JSON object followed only by whitespace, and each field's type is
 * checked, with a message naming the field.  Optional fields may be absent
 * or null.  Strings are taken with their exact byte length, so an embedded
 * NUL ("\u0000") in stdout/stderr survives; where a NUL cannot be carried
 * (argv, env, workdir, fixed-size info fields) it is an error.
 *
 * Parsers do not insist on valid UTF-8: our own client sends file names
 * as the bytes they are, and replacing them would name another file.  The
 * encoders of text meant for people (exec results, error messages) replace
 * invalid UTF-8 with U+FFFD so that their output is always valid JSON (an
 * exec result then also carries the exact bytes in nox.bytes' base64
 * members, unless encoded plain); the request encoders pass argv/env bytes
 * through unchanged for the same reason the parsers accept them.
 *
 * No global state; every function is thread-safe.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <nox/v1.h>

#include "fsw_i.h"

#define V1_MAX_INPUT   (64u * 1024 * 1024)
#define V1_MAX_DEPTH   16
#define V1_MAX_TIMEOUT 86400
#define V1_TO_STRING   (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ---- UTF-8 repair ------------------------------------------------------ */

/*
 * A json-c string of s (len bytes) in which every invalid UTF-8 sequence
 * is replaced by U+FFFD; NULL on allocation failure.
 */
static json_object *v1_text_new(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	json_object *o;
	size_t i = 0, o_len = 0, seq, bad;
	char *buf;

	if (!s)
		return json_object_new_string("");
	while (i < len) {
		seq = fsw_utf8_seq(p + i, len - i, &bad);
		if (!seq)
			break;
		i += seq;
	}
	if (i == len) {
		if (len > INT_MAX)
			return NULL;
		return json_object_new_string_len(s, (int)len);
	}
	/* Each byte grows to at most 3 (one U+FFFD per bad byte). */
	if (len > (INT_MAX - 1) / 3)
		return NULL;
	buf = malloc(len * 3 + 1);
	if (!buf)
		return NULL;
	i = 0;
	while (i < len) {
		seq = fsw_utf8_seq(p + i, len - i, &bad);
		if (seq) {
			memcpy(buf + o_len, p + i, seq);
			o_len += seq;
			i += seq;
		} else {
			memcpy(buf + o_len, "\xef\xbf\xbd", 3);
			o_len += 3;
			i += bad;
		}
	}
	o = json_object_new_string_len(buf, (int)o_len);
	free(buf);
	return o;
}

/* ---- parsing helpers --------------------------------------------------- */

/*
 * Parses json (len bytes) as one object, whitespace around it allowed.
 * *out is set to a new reference the caller puts.
 */
static int v1_parse_object(const char *json, size_t len, const char *what,
			   json_object **out, struct nox_err *err)
{
	struct json_tokener *tok;
	enum json_tokener_error je;
	json_object *o;
	size_t end;

	*out = NULL;
	if (!json)
		return nox_err_set(err, EINVAL, "%s: no body", what);
	if (len > V1_MAX_INPUT)
		return nox_err_set(err, EINVAL,
				   "%s: body of %zu bytes is over the %u limit",
				   what, len, V1_MAX_INPUT);
	tok = json_tokener_new_ex(V1_MAX_DEPTH);
	if (!tok)
		return nox_err_set(err, ENOMEM, "%s: out of memory", what);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, json, (int)len);
	je = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (je == json_tokener_continue) {
		json_object_put(o);
		return nox_err_set(err, EINVAL, "%s: truncated JSON", what);
	}
	if (je != json_tokener_success) {
		json_object_put(o);
		return nox_err_set(err, EINVAL,
				   "%s: malformed JSON at byte %zu: %s", what,
				   end, json_tokener_error_desc(je));
	}
	/* Strict mode stops at trailing garbage, but keep the check local. */
	for (; end < len; end++) {
		char c = json[end];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			json_object_put(o);
			return nox_err_set(err, EINVAL,
					   "%s: trailing data at byte %zu",
					   what, end);
		}
	}
	/* json-c represents null as a NULL object */
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return nox_err_set(err, EINVAL, "%s: not a JSON object", what);
	}
	*out = o;
	return 0;
}

/* Field key of o, NULL when absent or null. */
static json_object *v1_field(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

/*
 * An integer field in [lo, hi].  json-c clamps integers that overflow
 * int64 to INT64_MIN/INT64_MAX, so those two values count as out of range.
 */
static int v1_get_int(json_object *o, const char *key, bool required,
		      int64_t lo, int64_t hi, int64_t *val, const char *what,
		      struct nox_err *err)
{
	json_object *v = v1_field(o, key);
	int64_t n;

	if (!v) {
		if (required)
			return nox_err_set(err, EINVAL, "%s: '%s' is missing",
					   what, key);
		return 1;
	}
	if (!json_object_is_type(v, json_type_int))
		return nox_err_set(err, EINVAL, "%s: '%s' must be an integer",
				   what, key);
	n = json_object_get_int64(v);
	if (n == INT64_MAX || n == INT64_MIN || n < lo || n > hi)
		return nox_err_set(err, EINVAL,
				   "%s: '%s' is out of range [%lld, %lld]",
				   what, key, (long long)lo, (long long)hi);
	*val = n;
	return 0;
}

/*
 * A string field: *s points into o (valid while o lives), *n its length.
 * Returns 1 when an optional field is absent (or null).
 */
static int v1_get_str(json_object *o, const char *key, bool required,
		      const char **s, size_t *n, const char *what,
		      struct nox_err *err)
{
	json_object *v = v1_field(o, key);

	if (!v) {
		if (required)
			return nox_err_set(err, EINVAL, "%s: '%s' is missing",
					   what, key);
		return 1;
	}
	if (!json_object_is_type(v, json_type_string))
		return nox_err_set(err, EINVAL, "%s: '%s' must be a string",
				   what, key);
	*s = json_object_get_string(v);
	*n = (size_t)json_object_get_string_len(v);
	return 0;
}

/* malloc'd copy of s (n bytes) with a NUL; NULL if it holds a NUL byte. */
static char *v1_dup_c(const char *s, size_t n)
{
	char *d;

	if (memchr(s, '\0', n))
		return NULL;
	d = malloc(n + 1);
	if (!d)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* json-c text of o (then put), strdup'd; NULL on failure. */
static char *v1_finish(json_object *o)
{
	const char *s;
	char *r = NULL;

	if (!o)
		return NULL;
	s = json_object_to_json_string_ext(o, V1_TO_STRING);
	if (s)
		r = strdup(s);
	json_object_put(o);
	return r;
}

/* Adds key: a new value; false (and v put) on failure. */
static bool v1_add(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return false;
	if (json_object_object_add(o, key, v) != 0) {
		json_object_put(v);
		return false;
	}
	return true;
}

/* ---- exec request ------------------------------------------------------ */

void nox_v1_exec_req_cleanup(struct nox_v1_exec_req *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; r->argv && r->argv[i]; i++)
		free(r->argv[i]);
	free(r->argv);
	for (i = 0; r->env && r->env[i]; i++)
		free(r->env[i]);
	free(r->env);
	free(r->workdir);
	memset(r, 0, sizeof(*r));
}

static int exec_req_cmd(json_object *o, struct nox_v1_exec_req *out,
			struct nox_err *err)
{
	static const char what[] = "exec request";
	json_object *cmd = v1_field(o, "cmd"), *el;
	size_t i, n;

	if (!cmd)
		return nox_err_set(err, EINVAL, "%s: 'cmd' is missing", what);
	if (!json_object_is_type(cmd, json_type_array))
		return nox_err_set(
		    err, EINVAL, "%s: 'cmd' must be an array of strings", what);
	n = json_object_array_length(cmd);
	if (n == 0)
		return nox_err_set(err, EINVAL, "empty command");
	out->argv = calloc(n + 1, sizeof(*out->argv));
	if (!out->argv)
		return nox_err_set(err, ENOMEM, "%s: out of memory", what);
	for (i = 0; i < n; i++) {
		el = json_object_array_get_idx(cmd, i);
		if (!el || !json_object_is_type(el, json_type_string))
			return nox_err_set(
			    err, EINVAL,
			    "%s: 'cmd' must be an array of strings", what);
		out->argv[i] = v1_dup_c(json_object_get_string(el),
					(size_t)json_object_get_string_len(el));
		if (!out->argv[i])
			return nox_err_set(err, EINVAL,
					   "%s: 'cmd'[%zu] holds a NUL byte",
					   what, i);
	}
	if (!out->argv[0][0])
		return nox_err_set(err, EINVAL, "empty command");
	return 0;
}

static int exec_req_env(json_object *o, struct nox_v1_exec_req *out,
			struct nox_err *err)
{
	static const char what[] = "exec request";
	json_object *env = v1_field(o, "env");
	struct json_object_iterator it, end;
	size_t i = 0, n, kl, vl;
	const char *k, *v;
	json_object *jv;

	if (!env)
		return 0;
	if (!json_object_is_type(env, json_type_object))
		return nox_err_set(err, EINVAL,
				   "%s: 'env' must be an object of strings",
				   what);
	n = (size_t)json_object_object_length(env);
	out->env = calloc(n + 1, sizeof(*out->env));
	if (!out->env)
		return nox_err_set(err, ENOMEM, "%s: out of memory", what);
	it = json_object_iter_begin(env);
	end = json_object_iter_end(env);
	for (; !json_object_iter_equal(&it, &end) && i < n;
	     json_object_iter_next(&it)) {
		k = json_object_iter_peek_name(&it);
		jv = json_object_iter_peek_value(&it);
		kl = strlen(k);
		if (kl == 0 || strchr(k, '='))
			return nox_err_set(err, EINVAL,
					   "%s: 'env' key '%s' must be "
					   "non-empty and free of '='",
					   what, k);
		if (!jv || !json_object_is_type(jv, json_type_string))
			return nox_err_set(
			    err, EINVAL,
			    "%s: 'env' value of '%s' must be a string", what,
			    k);
		v = json_object_get_string(jv);
		vl = (size_t)json_object_get_string_len(jv);
		if (memchr(v, '\0', vl))
			return nox_err_set(
			    err, EINVAL,
			    "%s: 'env' value of '%s' holds a NUL byte", what,
			    k);
		out->env[i] = malloc(kl + vl + 2);
		if (!out->env[i])
			return nox_err_set(err, ENOMEM, "%s: out of memory",
					   what);
		memcpy(out->env[i], k, kl);
		out->env[i][kl] = '=';
		memcpy(out->env[i] + kl + 1, v, vl);
		out->env[i][kl + 1 + vl] = '\0';
		i++;
	}
	return 0;
}

int nox_v1_exec_req_parse(const char *json, size_t len,
			  struct nox_v1_exec_req *out, struct nox_err *err)
{
	static const char what[] = "exec request";
	json_object *o = NULL;
	const char *s;
	int64_t t = 0;
	size_t n;
	int r;

	memset(out, 0, sizeof(*out));
	r = v1_parse_object(json, len, what, &o, err);
	if (r < 0)
		return r;
	r = exec_req_cmd(o, out, err);
	if (r < 0)
		goto out;
	r = v1_get_str(o, "workdir", false, &s, &n, what, err);
	if (r < 0)
		goto out;
	if (r == 0) {
		out->workdir = v1_dup_c(s, n);
		if (!out->workdir) {
			r = nox_err_set(err, EINVAL,
					"%s: 'workdir' holds a NUL byte", what);
			goto out;
		}
	}
	r = exec_req_env(o, out, err);
	if (r < 0)
		goto out;
	r = v1_get_int(o, "timeoutSeconds", false, 0, V1_MAX_TIMEOUT, &t, what,
		       err);
	if (r < 0)
		goto out;
	r = 0;
	out->req.argv = (const char *const *)out->argv;
	out->req.env = (const char *const *)out->env;
	out->req.workdir = out->workdir;
	out->req.timeout_seconds = (int)t;
out:
	json_object_put(o);
	if (r < 0)
		nox_v1_exec_req_cleanup(out);
	return r;
}

/* A json-c string holding s exactly (no UTF-8 repair). */
static json_object *v1_bytes_new(const char *s)
{
	size_t n = strlen(s);

	if (n > INT_MAX)
		return NULL;
	return json_object_new_string_len(s, (int)n);
}

static bool exec_req_env_encode(json_object *o, const char *const *env)
{
	json_object *e, *v;
	const char *eq;
	char *k;
	size_t i;

	e = json_object_new_object();
	if (!v1_add(o, "env", e))
		return false;
	for (i = 0; env[i]; i++) {
		eq = strchr(env[i], '=');
		k = eq ? strndup(env[i], (size_t)(eq - env[i]))
		       : strdup(env[i]);
		if (!k)
			return false;
		v = v1_bytes_new(eq ? eq + 1 : "");
		if (!v1_add(e, k, v)) {
			free(k);
			return false;
		}
		free(k);
	}
	return true;
}

char *nox_v1_exec_req_encode(const struct nox_exec_req *req)
{
	json_object *o, *cmd;
	size_t i;

	if (!req || !req->argv || !req->argv[0])
		return NULL;
	o = json_object_new_object();
	if (!o)
		return NULL;
	cmd = json_object_new_array();
	if (!v1_add(o, "cmd", cmd))
		goto fail;
	for (i = 0; req->argv[i]; i++) {
		json_object *a = v1_bytes_new(req->argv[i]);

		if (!a)
			goto fail;
		if (json_object_array_add(cmd, a) != 0) {
			json_object_put(a);
			goto fail;
		}
	}
	if (req->workdir && !v1_add(o, "workdir", v1_bytes_new(req->workdir)))
		goto fail;
	if (req->env && !exec_req_env_encode(o, req->env))
		goto fail;
	if (req->timeout_seconds > 0 &&
	    !v1_add(o, "timeoutSeconds",
		    json_object_new_int(req->timeout_seconds)))
		goto fail;
	return v1_finish(o);
fail:
	json_object_put(o);
	return NULL;
}

/* ---- exec result ------------------------------------------------------- */

/* malloc'd copy of s (n bytes, may hold NULs) plus a terminating NUL. */
static char *v1_dup_bytes(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (!d)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/*
 * An optional extension member {"NAME": {"stdout"?: b, "stderr"?: b}}
 * into two of the result's flags: "truncated" (the server cut a stream)
 * and "lossy" (a client's mark that a stream lost bytes on a v1-only
 * wire).  Absent or null: nothing known.
 */
static int exec_result_flags(json_object *o, const char *name, bool *out_f,
			     bool *err_f, const char *what,
			     struct nox_err *err)
{
	static const char *const keys[2] = {"stdout", "stderr"};
	bool *flags[2] = {out_f, err_f};
	json_object *t = v1_field(o, name), *v;
	int i;

	if (!t)
		return 0;
	if (!json_object_is_type(t, json_type_object))
		return nox_err_set(err, EINVAL, "%s: '%s' must be an object",
				   what, name);
	for (i = 0; i < 2; i++) {
		v = v1_field(t, keys[i]);
		if (!v)
			continue;
		if (!json_object_is_type(v, json_type_boolean))
			return nox_err_set(err, EINVAL,
					   "%s: '%s.%s' must be a boolean",
					   what, name, keys[i]);
		*flags[i] = json_object_get_boolean(v) != 0;
	}
	return 0;
}

/*
 * The nox.bytes member key (e.g. "stdoutBase64"), when present, replaces
 * *s and *n (the lossy text) with its decoded exact bytes, malloc'd in *dec.
 */
static int exec_result_b64(json_object *o, const char *key, char **dec,
			   const char **s, size_t *n, const char *what,
			   struct nox_err *err)
{
	json_object *v = v1_field(o, key);

	*dec = NULL;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return nox_err_set(err, EINVAL, "%s: '%s' must be a string",
				   what, key);
	*dec = fsw_b64_decode(json_object_get_string(v), n);
	if (!*dec)
		return nox_err_set(err, EINVAL, "%s: '%s' is not base64", what,
				   key);
	*s = *dec;
	return 0;
}

int nox_v1_exec_result_parse(const char *json, size_t len,
			     struct nox_exec_result *out, struct nox_err *err)
{
	char *dso = NULL, *dse = NULL;
	static const char what[] = "exec result";
	const char *so = NULL, *se = NULL;
	size_t nso = 0, nse = 0;
	json_object *o = NULL;
	int64_t code = 0, dur = 0;
	int r;

	memset(out, 0, sizeof(*out));
	r = v1_parse_object(json, len, what, &o, err);
	if (r < 0)
		return r;
	r = v1_get_int(o, "exitCode", true, INT_MIN + 1LL, INT_MAX, &code, what,
		       err);
	if (r < 0)
		goto out;
	r = v1_get_str(o, "stdout", true, &so, &nso, what, err);
	if (r < 0)
		goto out;
	r = v1_get_str(o, "stderr", true, &se, &nse, what, err);
	if (r < 0)
		goto out;
	r = v1_get_int(o, "durationMs", false, 0, LONG_MAX, &dur, what, err);
	if (r < 0)
		goto out;
	r = exec_result_flags(o, "truncated", &out->out_truncated,
			      &out->err_truncated, what, err);
	if (r < 0)
		goto out;
	r = exec_result_flags(o, "lossy", &out->out_lossy, &out->err_lossy,
			      what, err);
	if (r < 0)
		goto out;
	r = exec_result_b64(o, "stdoutBase64", &dso, &so, &nso, what, err);
	if (r < 0)
		goto out;
	r = exec_result_b64(o, "stderrBase64", &dse, &se, &nse, what, err);
	if (r < 0)
		goto out;
	out->out_exact = dso != NULL;
	out->err_exact = dse != NULL;
	out->exit_code = (int)code;
	out->duration_ms = (long)dur;
	out->out = v1_dup_bytes(so, nso);
	out->err = v1_dup_bytes(se, nse);
	if (!out->out || !out->err) {
		r = nox_err_set(err, ENOMEM, "%s: out of memory", what);
		goto out;
	}
	out->out_len = nso;
	out->err_len = nse;
	r = 0;
out:
	free(dso);
	free(dse);
	json_object_put(o);
	if (r < 0)
		nox_exec_result_cleanup(out);
	return r;
}

/* Adds key: base64(s) when s is not valid UTF-8 (the nox.bytes member). */
static bool exec_result_b64_add(json_object *o, const char *key,
				const char *s, size_t n)
{
	char *b;
	bool ok;

	if (!s || fsw_utf8_valid(s, n))
		return true;
	b = fsw_b64_encode(s, n);
	if (!b)
		return false;
	ok = v1_add(o, key, json_object_new_string(b));
	free(b);
	return ok;
}

/* {"stdout": a, "stderr": b} as key: object of booleans, when a or b. */
static bool exec_result_flags_add(json_object *o, const char *key, bool a,
				  bool b)
{
	json_object *t;

	if (!a && !b)
		return true;
	t = json_object_new_object();
	return v1_add(o, key, t) &&
	       v1_add(t, "stdout", json_object_new_boolean(a)) &&
	       v1_add(t, "stderr", json_object_new_boolean(b));
}

/*
 * The result as JSON; ext adds the extension members, each only when
 * needed (a stream cut, lost or not UTF-8), so a plain result is exactly
 * v1 either way.
 */
static char *exec_result_encode(const struct nox_exec_result *res, bool ext)
{
	json_object *o;

	if (!res)
		return NULL;
	o = json_object_new_object();
	if (!o)
		return NULL;
	if (!v1_add(o, "exitCode", json_object_new_int(res->exit_code)) ||
	    !v1_add(o, "stdout", v1_text_new(res->out, res->out_len)) ||
	    !v1_add(o, "stderr", v1_text_new(res->err, res->err_len)) ||
	    !v1_add(o, "durationMs", json_object_new_int64(res->duration_ms))) {
		json_object_put(o);
		return NULL;
	}
	if (ext && (!exec_result_flags_add(o, "truncated", res->out_truncated,
					   res->err_truncated) ||
		    !exec_result_flags_add(o, "lossy", res->out_lossy,
					   res->err_lossy) ||
		    !exec_result_b64_add(o, "stdoutBase64", res->out,
					 res->out_len) ||
		    !exec_result_b64_add(o, "stderrBase64", res->err,
					 res->err_len))) {
		json_object_put(o);
		return NULL;
	}
	return v1_finish(o);
}

char *nox_v1_exec_result_encode(const struct nox_exec_result *res)
{
	return exec_result_encode(res, true);
}

char *nox_v1_exec_result_encode_plain(const struct nox_exec_result *res)
{
	return exec_result_encode(res, false);
}

/* ---- create request / response ----------------------------------------- */

static const struct {
	const char *key;
	size_t off;
} create_strs[] = {
    {"image", offsetof(struct nox_create_opts, image)},
    {"cpuLimit", offsetof(struct nox_create_opts, cpu_limit)},
    {"memoryLimit", offsetof(struct nox_create_opts, memory_limit)},
    {"ephemeralStorageLimit", offsetof(struct nox_create_opts, storage_limit)},
};
#define CREATE_NSTRS (sizeof(create_strs) / sizeof(create_strs[0]))

static const char **create_slot(struct nox_create_opts *opts, size_t i)
{
	return (const char **)(void *)((char *)opts + create_strs[i].off);
}

static bool v1_blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

int nox_v1_create_req_parse(const char *json, size_t len,
			    struct nox_create_opts *out, char **store,
			    struct nox_err *err)
{
	static const char what[] = "create request";
	const char *s[CREATE_NSTRS] = {0};
	size_t n[CREATE_NSTRS] = {0}, total = 0, i, pos = 0;
	json_object *o = NULL;
	int64_t ttl = 0;
	int r;

	memset(out, 0, sizeof(*out));
	*store = NULL;
	if (json && v1_blank(json, len))
		return 0; /* an empty body means all defaults */
	r = v1_parse_object(json, len, what, &o, err);
	if (r < 0)
		return r;
	r = v1_get_int(o, "ttlSeconds", false, 1, LONG_MAX, &ttl, what, err);
	if (r < 0)
		goto out;
	for (i = 0; i < CREATE_NSTRS; i++) {
		r = v1_get_str(o, create_strs[i].key, false, &s[i], &n[i], what,
			       err);
		if (r < 0)
			goto out;
		if (s[i] && memchr(s[i], '\0', n[i])) {
			r = nox_err_set(err, EINVAL,
					"%s: '%s' holds a NUL byte", what,
					create_strs[i].key);
			goto out;
		}
		if (s[i])
			total += n[i] + 1;
	}
	*store = malloc(total ? total : 1);
	if (!*store) {
		r = nox_err_set(err, ENOMEM, "%s: out of memory", what);
		goto out;
	}
	for (i = 0; i < CREATE_NSTRS; i++) {
		if (!s[i])
			continue;
		memcpy(*store + pos, s[i], n[i]);
		(*store)[pos + n[i]] = '\0';
		*create_slot(out, i) = *store + pos;
		pos += n[i] + 1;
	}
	out->ttl_seconds = (long)ttl;
	r = 0;
out:
	json_object_put(o);
	if (r < 0) {
		free(*store);
		*store = NULL;
		memset(out, 0, sizeof(*out));
	}
	return r;
}

char *nox_v1_create_req_encode(const struct nox_create_opts *opts)
{
	struct nox_create_opts def = {0};
	json_object *o;
	const char *s;
	size_t i;

	if (!opts)
		opts = &def;
	o = json_object_new_object();
	if (!o)
		return NULL;
	if (!v1_add(o, "ttlSeconds",
		    json_object_new_int64(opts->ttl_seconds > 0
					      ? opts->ttl_seconds
					      : NOX_DEFAULT_TTL)))
		goto fail;
	for (i = 0; i < CREATE_NSTRS; i++) {
		s = *(const char *const *)(const void *)((const char *)opts +
							 create_strs[i].off);
		if (s && !v1_add(o, create_strs[i].key, v1_bytes_new(s)))
			goto fail;
	}
	return v1_finish(o);
fail:
	json_object_put(o);
	return NULL;
}

/* Copies the string field key of o into buf (size sz), NUL-terminated. */
static int resp_copy(json_object *o, const char *key, bool required, char *buf,
		     size_t sz, const char *what, struct nox_err *err)
{
	const char *s;
	size_t n;
	int r;

	r = v1_get_str(o, key, required, &s, &n, what, err);
	if (r != 0)
		return r < 0 ? r : 0;
	if (n >= sz)
		return nox_err_set(err, EINVAL,
				   "%s: '%s' is longer than %zu bytes", what,
				   key, sz - 1);
	if (memchr(s, '\0', n))
		return nox_err_set(err, EINVAL, "%s: '%s' holds a NUL byte",
				   what, key);
	memcpy(buf, s, n);
	buf[n] = '\0';
	return 0;
}

int nox_v1_create_resp_parse(const char *json, size_t len,
			     struct nox_sandbox_info *out, struct nox_err *err)
{
	static const char what[] = "create response";
	json_object *o = NULL;
	int64_t ttl = 0;
	int r;

	memset(out, 0, sizeof(*out));
	r = v1_parse_object(json, len, what, &o, err);
	if (r < 0)
		return r;
	r = resp_copy(o, "podName", true, out->pod_name, sizeof(out->pod_name),
		      what, err);
	if (r < 0)
		goto out;
	r = resp_copy(o, "expiresAt", true, out->expires_at,
		      sizeof(out->expires_at), what, err);
	if (r < 0)
		goto out;
	r = v1_get_int(o, "ttlSeconds", false, 0, LONG_MAX, &ttl, what, err);
	if (r < 0)
		goto out;
	out->ttl_seconds = (long)ttl;
	r = 0;
out:
	json_object_put(o);
	if (r < 0)
		memset(out, 0, sizeof(*out));
	return r;
}

char *nox_v1_create_resp_encode(const struct nox_sandbox_info *info)
{
	json_object *o;

	if (!info)
		return NULL;
	o = json_object_new_object();
	if (!o)
		return NULL;
	if (!v1_add(
		o, "podName",
		v1_text_new(info->pod_name,
			    strnlen(info->pod_name, sizeof(info->pod_name)))) ||
	    !v1_add(o, "expiresAt",
		    v1_text_new(
			info->expires_at,
			strnlen(info->expires_at, sizeof(info->expires_at)))) ||
	    (info->ttl_seconds > 0 &&
	     !v1_add(o, "ttlSeconds",
		     json_object_new_int64(info->ttl_seconds)))) {
		json_object_put(o);
		return NULL;
	}
	return v1_finish(o);
}

/* ---- errors ------------------------------------------------------------ */

char *nox_v1_error_encode(const char *msg)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (!msg)
		msg = "";
	if (!v1_add(o, "error", v1_text_new(msg, strlen(msg)))) {
		json_object_put(o);
		return NULL;
	}
	return v1_finish(o);
}

/*
 * Appends s (n bytes) to out (size sz, *pos used), keeping what a person
 * can read: control bytes become one space, runs of them collapse, and
 * with utf8 set valid multi-byte UTF-8 is kept whole (never cut) while
 * other bytes >= 0x80 are dropped.
 */
static void text_copy(const char *s, size_t n, bool utf8, char *out, size_t sz,
		      size_t *pos)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, seq, bad;

	while (i < n && *pos + 1 < sz) {
		if (p[i] >= 0x20 && p[i] < 0x7f) {
			out[(*pos)++] = (char)p[i++];
			continue;
		}
		if (p[i] < 0x20 || p[i] == 0x7f) {
			if (*pos > 0 && out[*pos - 1] != ' ')
				out[(*pos)++] = ' ';
			i++;
			continue;
		}
		seq = utf8 ? fsw_utf8_seq(p + i, n - i, &bad) : 0;
		if (seq == 0) {
			i++;
			continue;
		}
		if (*pos + seq + 1 > sz)
			break;
		memcpy(out + *pos, p + i, seq);
		*pos += seq;
		i += seq;
	}
	while (*pos > 0 && out[*pos - 1] == ' ')
		(*pos)--;
	out[*pos] = '\0';
}

void nox_v1_error_text(const char *body, size_t len, char *out, size_t outsz)
{
	json_object *o = NULL, *e;
	size_t pos = 0;

	if (!out || outsz == 0)
		return;
	out[0] = '\0';
	if (!body || len == 0)
		return;
	if (v1_parse_object(body, len, "error", &o, NULL) == 0) {
		e = v1_field(o, "error");
		if (e && json_object_is_type(e, json_type_string)) {
			text_copy(json_object_get_string(e),
				  (size_t)json_object_get_string_len(e), true,
				  out, outsz, &pos);
			json_object_put(o);
			return;
		}
		json_object_put(o);
	}
	text_copy(body, len, false, out, outsz, &pos);
}
