/*
 * fuzz_fsw.c - the nox.fs wire parsers (src/lib/fsw.c) on arbitrary bytes.
 *
 * Invariants: no crash, no leak; an accepted fs/op request encodes and
 * parses again to the same request (encode/parse round trip), as does an
 * accepted fs/files request, whose paths stay below the root; accepted
 * list names are single components and tree paths stay below the root;
 * base64 and UTF-8 agree with their inverses.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsw_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_op(const char *js, size_t size)
{
	struct fsw_op op, again;
	char *enc;

	if (fsw_op_parse(js, size, &op, NULL) != 0)
		return;
	enc = fsw_op_encode(&op);
	if (!enc)
		abort();
	if (fsw_op_parse(enc, strlen(enc), &again, NULL) != 0)
		abort();
	if (again.code != op.code || !str_eq(again.path, op.path) ||
	    !str_eq(again.from, op.from) || !str_eq(again.to, op.to) ||
	    !str_eq(again.target, op.target) || again.mode != op.mode ||
	    again.size != op.size || again.flags != op.flags ||
	    again.atime_ns != op.atime_ns || again.mtime_ns != op.mtime_ns ||
	    again.excl != op.excl)
		abort();
	fsw_op_cleanup(&again);
	fsw_op_cleanup(&op);
	free(enc);
}

static void check_files(const char *js, size_t size)
{
	char **paths, **again, *enc;
	size_t i, n, m;

	if (fsw_files_parse(js, size, &paths, &n, NULL) != 0)
		return;
	for (i = 0; i < n; i++) {
		const char *s = paths[i];

		if (!s[0] || s[0] == '/' || strcmp(s, "..") == 0 ||
		    strncmp(s, "../", 3) == 0 || strstr(s, "/../"))
			abort();
	}
	enc = fsw_files_encode((const char *const *)paths, n);
	if (!enc)
		abort();
	if (fsw_files_parse(enc, strlen(enc), &again, &m, NULL) != 0 || m != n)
		abort();
	for (i = 0; i < n; i++)
		if (strcmp(again[i], paths[i]) != 0)
			abort();
	fsw_files_free(again, m);
	fsw_files_free(paths, n);
	free(enc);
}

static void check_entries(json_object *o, enum fsw_list_kind kind)
{
	struct fsw_ent *ents;
	char why[160];
	size_t i, n;

	if (fsw_entries_parse(o, kind, &ents, &n, why, sizeof(why)) != 0)
		return;
	for (i = 0; i < n; i++) {
		const char *s = ents[i].name;

		if (!s[0] || s[0] == '/' || strcmp(s, "..") == 0 ||
		    strncmp(s, "../", 3) == 0 || strstr(s, "/../") ||
		    (kind == FSW_LIST && strchr(s, '/')))
			abort();
	}
	fsw_entries_free(ents, n);
}

static void check_text(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *enc, *dec;
	size_t n;

	if (!s)
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	enc = fsw_b64_encode(data, size);
	if (!enc)
		abort();
	dec = fsw_b64_decode(enc, &n);
	if (!dec || n != size || memcmp(dec, data, size) != 0)
		abort();
	free(dec);
	free(enc);
	dec = fsw_b64_decode(s, &n); /* the input as base64: no crash */
	free(dec);
	fsw_utf8_valid(s, size);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *js = (const char *)data;
	json_object *o = NULL;
	struct statvfs sv;
	struct stat st;
	char why[160], *name;
	bool has;

	check_op(js, size);
	check_files(js, size);
	fsw_error_parse(js, size, &has);
	if (fsw_json_parse(js, size, &o, why, sizeof(why)) == 0) {
		check_entries(o, FSW_LIST);
		check_entries(o, FSW_TREE);
		fsw_stat_parse(o, &st, why, sizeof(why));
		fsw_statfs_parse(o, &sv, why, sizeof(why));
		if (fsw_get_name(o, "target", true, &name, why, sizeof(why)) ==
		    0)
			free(name);
		json_object_put(o);
	}
	if (size <= 4096)
		check_text(data, size);
	return 0;
}
