/*
 * test_fsw.c - the nox.fs wire module: build -> parse round trips, and
 * hostile input (malformed JSON, wrong types, huge numbers, bad base64,
 * invalid UTF-8, names with '/' and '..').
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsw_i.h"
#include "testutil.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static json_object *obj(const char *s)
{
	json_object *o = NULL;
	char why[128];

	if (fsw_json_parse(s, strlen(s), &o, why, sizeof(why)) < 0)
		return NULL;
	return o;
}

static void test_utf8(void)
{
	CU_ASSERT(fsw_utf8_valid(S("")));
	CU_ASSERT(fsw_utf8_valid(S("plain ascii")));
	CU_ASSERT(fsw_utf8_valid(
	    S("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")));
	CU_ASSERT(fsw_utf8_valid(S("\xf4\x8f\xbf\xbf"))); /* U+10FFFF */
	CU_ASSERT(!fsw_utf8_valid(S("\xff\xfe")));
	CU_ASSERT(!fsw_utf8_valid(S("\xc0\xaf")));	   /* overlong '/' */
	CU_ASSERT(!fsw_utf8_valid(S("\xe0\x80\xaf")));	   /* overlong */
	CU_ASSERT(!fsw_utf8_valid(S("\xed\xa0\x80")));	   /* surrogate */
	CU_ASSERT(!fsw_utf8_valid(S("\xf4\x90\x80\x80"))); /* > U+10FFFF */
	CU_ASSERT(!fsw_utf8_valid(S("ab\xe2\x82")));	   /* truncated */
	CU_ASSERT(!fsw_utf8_valid(S("\x80")));
	/* the length bounds the check, not a NUL */
	CU_ASSERT(fsw_utf8_valid("\xc3\xa9\xff", 2));
}

static void test_base64(void)
{
	static const char *const plain[] = {"",	    "f",     "fo",    "foo",
					    "foob", "fooba", "foobar"};
	static const char *const enc[] = {
	    "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	unsigned char all[256];
	size_t i, n;
	char *e, *d;

	for (i = 0; i < 7; i++) {
		e = fsw_b64_encode(plain[i], strlen(plain[i]));
		CU_ASSERT_STRING_EQUAL(e, enc[i]);
		d = fsw_b64_decode(e, &n);
		CU_ASSERT_PTR_NOT_NULL_FATAL(d);
		CU_ASSERT_EQUAL(n, strlen(plain[i]));
		CU_ASSERT_STRING_EQUAL(d, plain[i]);
		free(e);
		free(d);
	}
	for (i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	e = fsw_b64_encode(all, sizeof(all));
	d = fsw_b64_decode(e, &n);
	CU_ASSERT_EQUAL_FATAL(n, sizeof(all));
	CU_ASSERT(memcmp(d, all, n) == 0);
	free(e);
	free(d);
	/* padding is optional */
	d = fsw_b64_decode("Zg", &n);
	CU_ASSERT(d && n == 1 && d[0] == 'f');
	free(d);
	/* not base64 */
	CU_ASSERT_PTR_NULL(fsw_b64_decode("Zg=!", &n));
	CU_ASSERT_PTR_NULL(fsw_b64_decode("Z", &n));	 /* 6 bits */
	CU_ASSERT_PTR_NULL(fsw_b64_decode("Zg===", &n)); /* 3 pads */
	CU_ASSERT_PTR_NULL(fsw_b64_decode("Zh==", &n));	 /* bits left */
	CU_ASSERT_PTR_NULL(fsw_b64_decode("Zm 9v", &n));
	CU_ASSERT_PTR_NULL(fsw_b64_decode("Zm9v-_", &n)); /* url alphabet */
}

static void test_errno_names(void)
{
	bool has;

	CU_ASSERT_STRING_EQUAL(fsw_errno_name(ENOTEMPTY), "ENOTEMPTY");
	CU_ASSERT_STRING_EQUAL(fsw_errno_name(-ENOENT), "ENOENT");
	/* aliases: the first name is the one sent */
	CU_ASSERT_STRING_EQUAL(fsw_errno_name(EAGAIN), "EAGAIN");
	CU_ASSERT_STRING_EQUAL(fsw_errno_name(EOPNOTSUPP), "EOPNOTSUPP");
	CU_ASSERT_PTR_NULL(fsw_errno_name(0));
	CU_ASSERT_PTR_NULL(fsw_errno_name(4095));
	CU_ASSERT_EQUAL(fsw_errno_code("EWOULDBLOCK"), EAGAIN);
	CU_ASSERT_EQUAL(fsw_errno_code("ENOTSUP"), EOPNOTSUPP);
	CU_ASSERT_EQUAL(fsw_errno_code("EXDEV"), EXDEV);
	CU_ASSERT_EQUAL(fsw_errno_code("enoent"), 0);
	CU_ASSERT_EQUAL(fsw_errno_code(""), 0);
	CU_ASSERT_EQUAL(fsw_errno_code(NULL), 0);
	/* every name maps back to the code it came from */
	for (int c = 1; c < 200; c++)
		if (fsw_errno_name(c))
			CU_ASSERT_EQUAL(fsw_errno_code(fsw_errno_name(c)), c);

	CU_ASSERT_EQUAL(fsw_error_parse(S("{\"error\":\"x\",\"errno\":"
					  "\"ENOTEMPTY\"}"),
					&has),
			ENOTEMPTY);
	CU_ASSERT(has);
	CU_ASSERT_EQUAL(fsw_error_parse(S("{\"errno\":\"EBOGUS\"}"), &has), 0);
	CU_ASSERT(has);
	CU_ASSERT_EQUAL(fsw_error_parse(S("{\"errno\":17}"), &has), 0);
	CU_ASSERT(!has);
	CU_ASSERT_EQUAL(fsw_error_parse(S("{\"errno\":\"EIO\""), &has), 0);
	CU_ASSERT(!has);
	CU_ASSERT_EQUAL(fsw_error_parse(S("gateway down"), &has), 0);
	CU_ASSERT(!has);
	CU_ASSERT_EQUAL(fsw_error_parse(NULL, 0, &has), 0);
}

static void test_json_parse(void)
{
	json_object *o;
	char why[128];

	CU_ASSERT_EQUAL(fsw_json_parse(S("{\"a\":1} \n"), &o, why, sizeof(why)),
			0);
	json_object_put(o);
	CU_ASSERT_EQUAL(fsw_json_parse(S("{\"a\":1} x"), &o, why, sizeof(why)),
			-1);
	CU_ASSERT_EQUAL(fsw_json_parse(S("{\"a\":"), &o, why, sizeof(why)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "truncated"));
	CU_ASSERT_EQUAL(fsw_json_parse(S("[1,2]"), &o, why, sizeof(why)), -1);
	CU_ASSERT_EQUAL(fsw_json_parse(S("{\"a\":1,}"), &o, why, sizeof(why)),
			-1);
	CU_ASSERT_EQUAL(fsw_json_parse(S(""), &o, why, sizeof(why)), -1);
	CU_ASSERT_EQUAL(
	    fsw_json_parse(S("{\"a\":1}\0{}"), &o, why, sizeof(why)), -1);
	CU_ASSERT_PTR_NULL(o);
}

static void test_fields(void)
{
	json_object *o =
	    obj("{\"i\":5,\"big\":99999999999999999999,"
		"\"neg\":-9223372036854775808,\"s\":\"x\","
		"\"nul\":\"a\\u0000b\",\"f\":1.5,"
		"\"n64\":\"/w==\",\"z64\":\"AA==\",\"bad64\":\"*\"}");
	const char *s;
	int64_t v;
	char why[128], *name;

	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	CU_ASSERT_EQUAL(fsw_get_int(o, "i", true, 0, 10, &v, why, 128), 0);
	CU_ASSERT_EQUAL(v, 5);
	CU_ASSERT_EQUAL(fsw_get_int(o, "i", true, 0, 4, &v, why, 128), -1);
	CU_ASSERT_EQUAL(fsw_get_int(o, "big", true, 0, INT64_MAX, &v, why, 128),
			-1);
	CU_ASSERT_EQUAL(
	    fsw_get_int(o, "neg", true, INT64_MIN, INT64_MAX, &v, why, 128),
	    -1);
	CU_ASSERT_EQUAL(fsw_get_int(o, "f", true, 0, 10, &v, why, 128), -1);
	CU_ASSERT_EQUAL(fsw_get_int(o, "s", true, 0, 10, &v, why, 128), -1);
	CU_ASSERT_EQUAL(fsw_get_int(o, "nope", false, 0, 10, &v, why, 128), 1);
	CU_ASSERT_EQUAL(fsw_get_int(o, "nope", true, 0, 10, &v, why, 128), -1);
	CU_ASSERT_EQUAL(fsw_get_str(o, "s", true, &s, why, 128), 0);
	CU_ASSERT_EQUAL(fsw_get_str(o, "nul", true, &s, why, 128), -1);
	CU_ASSERT_EQUAL(fsw_get_str(o, "i", true, &s, why, 128), -1);
	CU_ASSERT_EQUAL(fsw_get_name(o, "s", true, &name, why, 128), 0);
	CU_ASSERT_STRING_EQUAL(name, "x");
	free(name);
	CU_ASSERT_EQUAL(fsw_get_name(o, "n", true, &name, why, 128), 0);
	CU_ASSERT_STRING_EQUAL(name, "\xff");
	free(name);
	CU_ASSERT_EQUAL(fsw_get_name(o, "z", true, &name, why, 128), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "NUL"));
	CU_ASSERT_EQUAL(fsw_get_name(o, "bad", true, &name, why, 128), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "base64"));
	CU_ASSERT_EQUAL(fsw_get_name(o, "none", false, &name, why, 128), 1);
	CU_ASSERT_EQUAL(fsw_get_name(o, "none", true, &name, why, 128), -1);
	CU_ASSERT_PTR_NULL(name);
	json_object_put(o);

	/* add_name: UTF-8 as is, anything else as key64 */
	o = json_object_new_object();
	CU_ASSERT_EQUAL(fsw_add_name(o, "a", "\xc3\xa9"), 0);
	CU_ASSERT_EQUAL(fsw_add_name(o, "b", "\xff\xfe"), 0);
	CU_ASSERT_STRING_EQUAL(json_object_to_json_string_ext(o, FSW_JSON_OUT),
			       "{\"a\":\"\xc3\xa9\",\"b64\":\"//4=\"}");
	CU_ASSERT_EQUAL(fsw_get_name(o, "b", true, &name, why, 128), 0);
	CU_ASSERT_STRING_EQUAL(name, "\xff\xfe");
	free(name);
	json_object_put(o);
}

static void test_stat_round_trip(void)
{
	struct stat st, back;
	json_object *o;
	char why[128];

	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFREG | 04755;
	st.st_size = (off_t)1 << 40;
	st.st_nlink = 3;
	st.st_uid = 1000;
	st.st_gid = 4294967294u;
	st.st_ino = 123456789;
	st.st_mtim.tv_sec = 1700000000;
	st.st_mtim.tv_nsec = 999999999;
	st.st_atim.tv_sec = -5; /* before the epoch */
	st.st_atim.tv_nsec = 1;
	o = fsw_stat_build(&st, NULL);
	CU_ASSERT_EQUAL_FATAL(fsw_stat_parse(o, &back, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(back.st_mode, st.st_mode);
	CU_ASSERT_EQUAL(back.st_size, st.st_size);
	CU_ASSERT_EQUAL(back.st_nlink, st.st_nlink);
	CU_ASSERT_EQUAL(back.st_uid, st.st_uid);
	CU_ASSERT_EQUAL(back.st_gid, st.st_gid);
	CU_ASSERT_EQUAL(back.st_ino, st.st_ino);
	CU_ASSERT_EQUAL(back.st_mtim.tv_sec, st.st_mtim.tv_sec);
	CU_ASSERT_EQUAL(back.st_mtim.tv_nsec, st.st_mtim.tv_nsec);
	CU_ASSERT_EQUAL(back.st_atim.tv_sec, -5);
	CU_ASSERT_EQUAL(back.st_atim.tv_nsec, 1);
	json_object_put(o);

	/* a FIFO or socket on the server is an "other" of its kind, and
	 * one here; a device is an "other" with no kind: a regular file */
	st.st_mode = S_IFIFO | 0600;
	o = fsw_stat_build(&st, NULL);
	CU_ASSERT_STRING_EQUAL(
	    json_object_get_string(json_object_object_get(o, "type")), "other");
	CU_ASSERT_STRING_EQUAL(
	    json_object_get_string(json_object_object_get(o, "kind")), "fifo");
	CU_ASSERT_EQUAL(fsw_stat_parse(o, &back, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(back.st_mode, S_IFIFO | 0600);
	json_object_put(o);
	st.st_mode = S_IFSOCK | 0755;
	o = fsw_stat_build(&st, NULL);
	CU_ASSERT_EQUAL(fsw_stat_parse(o, &back, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(back.st_mode, S_IFSOCK | 0755);
	json_object_put(o);
	st.st_mode = S_IFCHR | 0600;
	o = fsw_stat_build(&st, NULL);
	CU_ASSERT_PTR_NULL(json_object_object_get(o, "kind"));
	CU_ASSERT_EQUAL(fsw_stat_parse(o, &back, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(back.st_mode, S_IFREG | 0600);
	json_object_put(o);
	/* an older server's "other" (no kind), an unknown kind, a kind on
	 * a "file": regular files */
	o = obj("{\"type\":\"other\",\"mode\":384,\"size\":0,\"nlink\":1,"
		"\"uid\":0,\"gid\":0,\"ino\":1,\"atimeNs\":0,\"mtimeNs\":0,"
		"\"ctimeNs\":0}");
	CU_ASSERT_EQUAL(fsw_stat_parse(o, &back, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(back.st_mode, S_IFREG | 0600);
	json_object_put(o);
	o = obj("{\"type\":\"other\",\"kind\":\"chr\",\"mode\":384,"
		"\"size\":0,\"nlink\":1,\"uid\":0,\"gid\":0,\"ino\":1,"
		"\"atimeNs\":0,\"mtimeNs\":0,\"ctimeNs\":0}");
	CU_ASSERT_EQUAL(fsw_stat_parse(o, &back, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(back.st_mode, S_IFREG | 0600);
	json_object_put(o);
	o = obj("{\"type\":\"file\",\"kind\":\"fifo\",\"mode\":384,"
		"\"size\":0,\"nlink\":1,\"uid\":0,\"gid\":0,\"ino\":1,"
		"\"atimeNs\":0,\"mtimeNs\":0,\"ctimeNs\":0}");
	CU_ASSERT_EQUAL(fsw_stat_parse(o, &back, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(back.st_mode, S_IFREG | 0600);
	json_object_put(o);

	/* hostile values */
	o = obj("{\"type\":\"file\",\"mode\":65535,\"size\":0,\"nlink\":1,"
		"\"uid\":0,\"gid\":0,\"ino\":1,\"atimeNs\":0,\"mtimeNs\":0,"
		"\"ctimeNs\":0}");
	CU_ASSERT_EQUAL(fsw_stat_parse(o, &back, why, sizeof(why)), -1);
	json_object_put(o);
	o = obj("{\"type\":\"file\",\"mode\":420,\"size\":-1,\"nlink\":1,"
		"\"uid\":0,\"gid\":0,\"ino\":1,\"atimeNs\":0,\"mtimeNs\":0,"
		"\"ctimeNs\":0}");
	CU_ASSERT_EQUAL(fsw_stat_parse(o, &back, why, sizeof(why)), -1);
	json_object_put(o);
	o = obj("{\"type\":\"device\",\"mode\":420,\"size\":0,\"nlink\":1,"
		"\"uid\":0,\"gid\":0,\"ino\":1,\"atimeNs\":0,\"mtimeNs\":0,"
		"\"ctimeNs\":0}");
	CU_ASSERT_EQUAL(fsw_stat_parse(o, &back, why, sizeof(why)), -1);
	json_object_put(o);
	o = obj("{\"type\":\"file\",\"mode\":420,\"size\":0,\"nlink\":1,"
		"\"uid\":\"0\",\"gid\":0,\"ino\":1,\"atimeNs\":0,\"mtimeNs\":0,"
		"\"ctimeNs\":0}");
	CU_ASSERT_EQUAL(fsw_stat_parse(o, &back, why, sizeof(why)), -1);
	json_object_put(o);
	o = obj("{\"type\":\"file\",\"mode\":420,\"size\":0,\"nlink\":1,"
		"\"uid\":0,\"gid\":0,\"ino\":1,\"atimeNs\":1e30,\"mtimeNs\":0,"
		"\"ctimeNs\":0}");
	CU_ASSERT_EQUAL(fsw_stat_parse(o, &back, why, sizeof(why)), -1);
	json_object_put(o);
}

static void test_statfs_round_trip(void)
{
	struct statvfs sv, back;
	json_object *o;
	char why[128];

	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 512;
	sv.f_blocks = 1000000;
	sv.f_bfree = 5;
	sv.f_bavail = 4;
	sv.f_files = 77;
	sv.f_ffree = 7;
	sv.f_namemax = 255;
	o = fsw_statfs_build(&sv);
	CU_ASSERT_EQUAL_FATAL(fsw_statfs_parse(o, &back, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(back.f_bsize, 4096);
	CU_ASSERT_EQUAL(back.f_frsize, 512);
	CU_ASSERT_EQUAL(back.f_blocks, 1000000);
	CU_ASSERT_EQUAL(back.f_bfree, 5);
	CU_ASSERT_EQUAL(back.f_bavail, 4);
	CU_ASSERT_EQUAL(back.f_files, 77);
	CU_ASSERT_EQUAL(back.f_ffree, 7);
	CU_ASSERT_EQUAL(back.f_favail, 7);
	CU_ASSERT_EQUAL(back.f_namemax, 255);
	json_object_object_del(o, "ffree");
	CU_ASSERT_EQUAL(fsw_statfs_parse(o, &back, why, sizeof(why)), -1);
	json_object_put(o);
}

/* fsw_entries_build of n entries, each fsw_stat_build + key: name */
static json_object *listing(const char *key, const char *const *names, size_t n,
			    mode_t fmt)
{
	json_object *arr = json_object_new_array();
	struct stat st;
	size_t i;

	memset(&st, 0, sizeof(st));
	st.st_mode = fmt | 0644;
	for (i = 0; i < n; i++) {
		json_object *e = fsw_stat_build(&st, S_ISLNK(fmt) ? "t" : NULL);

		fsw_add_name(e, key, names[i]);
		json_object_array_add(arr, e);
	}
	return fsw_entries_build(arr);
}

static int entries(json_object *o, enum fsw_list_kind kind, size_t *n)
{
	struct fsw_ent *ents;
	char why[160];
	int r = fsw_entries_parse(o, kind, &ents, n, why, sizeof(why));

	fsw_entries_free(ents, *n);
	json_object_put(o);
	return r;
}

static void test_entries(void)
{
	static const char *const good[] = {"a", "\xff\xfe", ".hidden",
					   "sp ace"};
	static const char *const tree[] = {"d", "d/f", "d/\xff", "d/e/g"};
	struct fsw_ent *ents;
	json_object *o;
	char why[160];
	size_t n;

	o = listing("name", good, 4, S_IFREG);
	CU_ASSERT_EQUAL_FATAL(
	    fsw_entries_parse(o, FSW_LIST, &ents, &n, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(n, 4);
	CU_ASSERT_STRING_EQUAL(ents[1].name, "\xff\xfe");
	CU_ASSERT_PTR_NULL(ents[1].target);
	fsw_entries_free(ents, n);
	json_object_put(o);

	o = listing("path", tree, 4, S_IFLNK);
	CU_ASSERT_EQUAL_FATAL(
	    fsw_entries_parse(o, FSW_TREE, &ents, &n, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(n, 4);
	CU_ASSERT_STRING_EQUAL(ents[2].name, "d/\xff");
	CU_ASSERT_STRING_EQUAL(ents[3].target, "t");
	fsw_entries_free(ents, n);
	json_object_put(o);

	/* names that are not one component */
	{
		static const char *const bad[] = {"a/b", "..", ".", "", "/etc"};
		size_t i;

		for (i = 0; i < 5; i++)
			CU_ASSERT_EQUAL(
			    entries(listing("name", &bad[i], 1, S_IFREG),
				    FSW_LIST, &n),
			    -EPROTO);
	}
	/* tree paths that leave the tree */
	{
		static const char *const bad[] = {"../x", "a/../../x", "/abs",
						  ".",	  "",	       "a/./b"};
		size_t i;

		for (i = 0; i < 6; i++)
			CU_ASSERT_EQUAL(
			    entries(listing("path", &bad[i], 1, S_IFREG),
				    FSW_TREE, &n),
			    -EPROTO);
	}
	/* name base64 that decodes to '/' or '..' */
	CU_ASSERT_EQUAL(entries(obj("{\"entries\":[{\"type\":\"file\","
				    "\"mode\":0,\"size\":0,\"nlink\":1,"
				    "\"uid\":0,\"gid\":0,\"ino\":1,"
				    "\"atimeNs\":0,\"mtimeNs\":0,"
				    "\"ctimeNs\":0,\"name64\":\"Li4=\"}]}"),
				FSW_LIST, &n),
			-EPROTO);
	CU_ASSERT_EQUAL(entries(obj("{\"entries\":{}}"), FSW_LIST, &n),
			-EPROTO);
	CU_ASSERT_EQUAL(entries(obj("{\"entries\":[1]}"), FSW_LIST, &n),
			-EPROTO);
	CU_ASSERT_EQUAL(entries(obj("{}"), FSW_TREE, &n), -EPROTO);
	CU_ASSERT_EQUAL(entries(obj("{\"entries\":[]}"), FSW_TREE, &n), 0);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_PTR_NULL(fsw_entries_build(NULL));
	CU_ASSERT_EQUAL(n, 0);
}

static void test_op_round_trip(void)
{
	struct fsw_op op, back;
	struct nox_err err;
	char *s;
	int c;

	for (c = FSW_OP_CREATE; c <= FSW_OP_MKNOD; c++) {
		memset(&op, 0, sizeof(op));
		op.code = (enum fsw_opcode)c;
		op.path = "dir/\xff name";
		op.from = "a/b";
		op.to = "\xc3\xa9";
		op.target = "../up";
		op.mode = 0750;
		op.size = INT64_MAX - 1;
		op.flags = 2;
		op.atime_ns = -2;
		op.mtime_ns = 1700000000123456789LL;
		op.excl = true;
		op.fmt = S_IFIFO;
		s = fsw_op_encode(&op);
		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		CU_ASSERT_EQUAL_FATAL(fsw_op_parse(s, strlen(s), &back, &err),
				      0);
		CU_ASSERT_EQUAL(back.code, op.code);
		if (back.path)
			CU_ASSERT_STRING_EQUAL(back.path, op.path);
		if (back.from)
			CU_ASSERT_STRING_EQUAL(back.from, op.from);
		if (back.to)
			CU_ASSERT_STRING_EQUAL(back.to, op.to);
		if (back.target)
			CU_ASSERT_STRING_EQUAL(back.target, op.target);
		switch (op.code) {
		case FSW_OP_CREATE:
			CU_ASSERT(back.excl);
			CU_ASSERT_EQUAL(back.mode, 0750);
			break;
		case FSW_OP_TRUNCATE:
			CU_ASSERT_EQUAL(back.size, INT64_MAX - 1);
			break;
		case FSW_OP_RENAME:
			CU_ASSERT_EQUAL(back.flags, 2);
			CU_ASSERT_PTR_NULL(back.path);
			break;
		case FSW_OP_UTIMENS:
			CU_ASSERT_EQUAL(back.atime_ns, -2);
			CU_ASSERT_EQUAL(back.mtime_ns, 1700000000123456789LL);
			break;
		case FSW_OP_SYMLINK:
			CU_ASSERT_PTR_NOT_NULL(back.target);
			CU_ASSERT_PTR_NOT_NULL(back.path);
			break;
		case FSW_OP_MKNOD:
			CU_ASSERT_EQUAL(back.fmt, S_IFIFO);
			CU_ASSERT_EQUAL(back.mode, 0750);
			break;
		default:
			break;
		}
		fsw_op_cleanup(&back);
		free(s);
	}
	/* the exact bytes the client has always sent */
	memset(&op, 0, sizeof(op));
	op.code = FSW_OP_SYMLINK;
	op.target = "t";
	op.path = "\xff";
	s = fsw_op_encode(&op);
	CU_ASSERT_STRING_EQUAL(s, "{\"op\":\"symlink\",\"target\":\"t\","
				  "\"path64\":\"/w==\"}");
	free(s);
	op.code = FSW_OP_CREATE;
	op.path = "f";
	op.mode = 0644;
	s = fsw_op_encode(&op);
	CU_ASSERT_STRING_EQUAL(
	    s,
	    "{\"op\":\"create\",\"path\":\"f\",\"mode\":420,\"excl\":false}");
	free(s);
	op.code = FSW_OP_MKNOD;
	op.fmt = S_IFSOCK;
	s = fsw_op_encode(&op);
	CU_ASSERT_STRING_EQUAL(s,
			       "{\"op\":\"mknod\",\"path\":\"f\",\"mode\":420,"
			       "\"kind\":\"socket\"}");
	free(s);
	/* no device node can be put on the wire */
	op.fmt = S_IFCHR;
	CU_ASSERT_PTR_NULL(fsw_op_encode(&op));
}

static void test_op_hostile(void)
{
	static const char *const bad[] = {
	    "{\"op\":\"frobnicate\",\"path\":\"a\"}",
	    "{\"path\":\"a\"}",
	    "{\"op\":5,\"path\":\"a\"}",
	    "{\"op\":\"unlink\"}",
	    "{\"op\":\"unlink\",\"path\":5}",
	    "{\"op\":\"unlink\",\"path\":\"a\\u0000b\"}",
	    "{\"op\":\"unlink\",\"path64\":\"!!\"}",
	    "{\"op\":\"unlink\",\"path64\":\"AA==\"}",
	    "{\"op\":\"chmod\",\"path\":\"r\"}",
	    "{\"op\":\"chmod\",\"path\":\"r\",\"mode\":\"755\"}",
	    "{\"op\":\"chmod\",\"path\":\"r\",\"mode\":4096}",
	    "{\"op\":\"truncate\",\"path\":\"r\",\"size\":-1}",
	    "{\"op\":\"truncate\",\"path\":\"r\",\"size\":1e3}",
	    "{\"op\":\"truncate\",\"path\":\"r\","
	    "\"size\":99999999999999999999999}",
	    "{\"op\":\"rename\",\"from\":\"r\",\"to\":\"q\",\"flags\":4}",
	    "{\"op\":\"rename\",\"from\":\"r\"}",
	    "{\"op\":\"create\",\"path\":\"c\",\"excl\":\"yes\"}",
	    "{\"op\":\"utimens\",\"path\":\"r\",\"atimeNs\":-5}",
	    "{\"op\":\"symlink\",\"path\":\"r\"}",
	    "{\"op\":\"mknod\",\"path\":\"r\"}",
	    "{\"op\":\"mknod\",\"path\":\"r\",\"kind\":\"chr\"}",
	    "{\"op\":\"mknod\",\"path\":\"r\",\"kind\":5}",
	    "[1,2]",
	    "{not json",
	    "{\"op\":\"unlink\",\"path\":\"r\"} x",
	    "",
	};
	struct fsw_op op;
	struct nox_err err;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		nox_err_clear(&err);
		CU_ASSERT_EQUAL(fsw_op_parse(bad[i], strlen(bad[i]), &op, &err),
				-EINVAL);
		CU_ASSERT_EQUAL(err.code, EINVAL);
		CU_ASSERT_PTR_NULL(op.path);
		CU_ASSERT_PTR_NULL(op.from);
	}
	/* defaults */
	CU_ASSERT_EQUAL(
	    fsw_op_parse(S("{\"op\":\"mkdir\",\"path\":\"d\"}"), &op, &err), 0);
	CU_ASSERT_EQUAL(op.mode, 0755);
	fsw_op_cleanup(&op);
	CU_ASSERT_EQUAL(
	    fsw_op_parse(S("{\"op\":\"utimens\",\"path\":\"d\"}"), &op, &err),
	    0);
	CU_ASSERT_EQUAL(op.atime_ns, -2);
	CU_ASSERT_EQUAL(op.mtime_ns, -2);
	fsw_op_cleanup(&op);
	CU_ASSERT_EQUAL(fsw_op_parse(S("{\"op\":\"mknod\",\"path\":\"f\","
				       "\"kind\":\"socket\"}"),
				     &op, &err),
			0);
	CU_ASSERT_EQUAL(op.fmt, S_IFSOCK);
	CU_ASSERT_EQUAL(op.mode, 0644);
	fsw_op_cleanup(&op);
	/* names are passed on as given: the backend checks the paths */
	CU_ASSERT_EQUAL(
	    fsw_op_parse(S("{\"op\":\"unlink\",\"path\":\"../x\"}"), &op, &err),
	    0);
	CU_ASSERT_STRING_EQUAL(op.path, "../x");
	fsw_op_cleanup(&op);
}

/*
 * fs/ops: a batch goes out and comes back op for op; a results answer is
 * read per op; a hostile answer (too few or too many results, one that
 * is not an object, an errno that is not a string) is EPROTO, and an
 * errno name nobody knows is EIO.
 */
static void test_ops(void)
{
	static const char *const bad_answers[] = {
	    "{\"results\":[{}]}",
	    "{\"results\":[{},{},{}]}",
	    "{\"results\":[{},5]}",
	    "{\"results\":[{},{\"errno\":2}]}",
	    "{\"results\":{}}",
	    "{}",
	    "[{},{}]",
	    "{\"results\":[{},{}]",
	};
	static const char *const bad_requests[] = {
	    "{\"ops\":[]}",
	    "{\"ops\":{}}",
	    "{}",
	    "{\"ops\":[{\"op\":\"unlink\",\"path\":\"a\"},7]}",
	    "{\"ops\":[{\"op\":\"readlink\",\"path\":\"a\"}]}",
	    "{\"ops\":[{\"op\":\"unlink\",\"path\":\"../a\"}]}",
	    "{\"ops\":[{\"op\":\"rename\",\"from\":\"a\","
	    "\"to\":\"/etc/x\"}]}",
	    "{\"ops\":[{\"op\":\"unlink\",\"path\":\"\"}]}",
	    "{\"ops\":[{\"op\":\"nope\",\"path\":\"a\"}]}",
	};
	struct fsw_op v[2], *back;
	struct nox_err err;
	int res[2];
	size_t i, n;
	char *s;

	memset(v, 0, sizeof(v));
	v[0].code = FSW_OP_UNLINK;
	v[0].path = "d/a";
	v[1].code = FSW_OP_RENAME;
	v[1].from = "d/b";
	v[1].to = "caf\xe9"; /* not UTF-8: goes as to64 */
	v[1].flags = 1;
	s = fsw_ops_encode(v, 2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL_FATAL(fsw_ops_parse(s, strlen(s), &back, &n, &err), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(back[0].code, FSW_OP_UNLINK);
	CU_ASSERT_STRING_EQUAL(back[0].path, "d/a");
	CU_ASSERT_EQUAL(back[1].code, FSW_OP_RENAME);
	CU_ASSERT_STRING_EQUAL(back[1].to, "caf\xe9");
	CU_ASSERT_EQUAL(back[1].flags, 1);
	fsw_ops_free(back, n);
	free(s);

	CU_ASSERT_EQUAL(fsw_results_parse(S("{\"results\":[{},"
					    "{\"errno\":\"ENOTEMPTY\","
					    "\"error\":\"x\"}]}"),
					  res, 2, &err),
			0);
	CU_ASSERT(res[0] == 0 && res[1] == -ENOTEMPTY);
	CU_ASSERT_EQUAL(fsw_results_parse(S("{\"results\":[{\"errno\":"
					    "\"EWHATEVER\"},{}]}"),
					  res, 2, &err),
			0);
	CU_ASSERT(res[0] == -EIO && res[1] == 0);
	for (i = 0; i < sizeof(bad_answers) / sizeof(bad_answers[0]); i++) {
		nox_err_clear(&err);
		CU_ASSERT_EQUAL(fsw_results_parse(bad_answers[i],
						  strlen(bad_answers[i]), res,
						  2, &err),
				-EPROTO);
		CU_ASSERT(err.msg[0] != '\0');
	}
	for (i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
		nox_err_clear(&err);
		back = (struct fsw_op *)1;
		CU_ASSERT_EQUAL(fsw_ops_parse(bad_requests[i],
					      strlen(bad_requests[i]), &back,
					      &n, &err),
				-EINVAL);
		CU_ASSERT_PTR_NULL(back);
		CU_ASSERT_EQUAL(n, 0);
	}
}

static void test_times(void)
{
	struct timespec ts = {5, 7}, back;

	CU_ASSERT_EQUAL(fsw_ns_from_ts(NULL), -1);
	CU_ASSERT_EQUAL(fsw_ns_from_ts(&ts), 5000000007LL);
	CU_ASSERT_EQUAL(fsw_ns_to_ts(5000000007LL, &back), 0);
	CU_ASSERT(back.tv_sec == 5 && back.tv_nsec == 7);
	ts.tv_nsec = UTIME_OMIT;
	CU_ASSERT_EQUAL(fsw_ns_from_ts(&ts), -2);
	CU_ASSERT_EQUAL(fsw_ns_to_ts(-2, &back), 0);
	CU_ASSERT_EQUAL(back.tv_nsec, UTIME_OMIT);
	CU_ASSERT_EQUAL(fsw_ns_to_ts(-1, &back), 0);
	CU_ASSERT_EQUAL(back.tv_nsec, UTIME_NOW);
	CU_ASSERT_EQUAL(fsw_ns_to_ts(-3, &back), -EINVAL);
}

static void test_files(void)
{
	static const char *const paths[] = {"a", "d/f", "d/\xff\xfe", "sp ace",
					    "new\nline"};
	static const char *const bad[] = {
	    "{}",
	    "{\"files\": 3}",
	    "{\"files\": [3]}",
	    "{\"files\": [{}]}",
	    "{\"files\": [{\"path\": \"../x\"}]}",
	    "{\"files\": [{\"path\": \"/etc/passwd\"}]}",
	    "{\"files\": [{\"path\": \"\"}]}",
	    "{\"files\": [{\"path\": \".\"}]}",
	    "{\"files\": [{\"path\": \"a/../../b\"}]}",
	    "{\"files\": [{\"path64\": \"YQBi\"}]}", /* a NUL b */
	    "{\"files\": [{\"path64\": \"!!\"}]}",
	    "[\"a\"]",
	    "{\"files\": [{\"path\": \"a\"}]",
	};
	struct nox_err err;
	char **got, *s, *big;
	size_t n, i, len;

	s = fsw_files_encode(paths, 5);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	/* the name that is not UTF-8 travels as base64 */
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "\"path64\""));
	CU_ASSERT_EQUAL(fsw_files_parse(s, strlen(s), &got, &n, &err), 0);
	CU_ASSERT_EQUAL_FATAL(n, 5);
	for (i = 0; i < n; i++)
		CU_ASSERT_STRING_EQUAL(got[i], paths[i]);
	fsw_files_free(got, n);
	free(s);

	s = fsw_files_encode(NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(fsw_files_parse(s, strlen(s), &got, &n, &err), 0);
	CU_ASSERT_EQUAL(n, 0);
	fsw_files_free(got, n);
	free(s);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		got = (char **)&s; /* must be reset */
		n = 7;
		CU_ASSERT_EQUAL(
		    fsw_files_parse(bad[i], strlen(bad[i]), &got, &n, &err),
		    -EINVAL);
		CU_ASSERT_PTR_NULL(got);
		CU_ASSERT_EQUAL(n, 0);
	}
	/* the error names what was wrong with the entry */
	CU_ASSERT_EQUAL(fsw_files_parse(bad[2], strlen(bad[2]), &got, &n, &err),
			-EINVAL);
	CU_ASSERT_STRING_EQUAL(err.msg, "file 0: not an object");
	CU_ASSERT_EQUAL(fsw_files_parse(bad[4], strlen(bad[4]), &got, &n, &err),
			-EINVAL);
	CU_ASSERT_STRING_EQUAL(err.msg, "file 0: bad path");

	/* more than FSW_FILES_MAX paths */
	len = (size_t)(FSW_FILES_MAX + 1) * 15 + 16;
	big = malloc(len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	i = (size_t)snprintf(big, len, "{\"files\": [");
	for (n = 0; n <= FSW_FILES_MAX; n++)
		i += (size_t)snprintf(big + i, len - i, "%s{\"path\":\"a\"}",
				      n ? "," : "");
	snprintf(big + i, len - i, "]}");
	CU_ASSERT_EQUAL(fsw_files_parse(big, strlen(big), &got, &n, &err),
			-EINVAL);
	free(big);
}

/* A page of tree entries with these paths (only names are checked). */
static struct fsw_ent *page_of(const char *const *paths, size_t n)
{
	struct fsw_ent *e = calloc(n ? n : 1, sizeof(*e));
	size_t i;

	for (i = 0; i < n; i++)
		e[i].name = strdup(paths[i]);
	return e;
}

static int check_page(const char *const *paths, size_t n, const char *after,
		      const char *next)
{
	struct fsw_ent *e = page_of(paths, n);
	char why[160];
	int r = fsw_tree_page_check(e, n, after, next, why, sizeof(why));

	fsw_entries_free(e, n);
	return r;
}

static void test_tree_pages(void)
{
	static const char *const walk[] = {"a",	  "a/x", "a/x/y", "a-b",
					   "a.b", "a0",	 "b",	  "b/\x01"};
	static const char *const p1[] = {"a", "a/x", "a/x/y"};
	static const char *const p2[] = {"a-b", "a.b"};
	static const char *const rep[] = {"a-b", "a-b"};
	static const char *const back[] = {"a.b", "a-b"};
	static const char *const child_first[] = {"a/x", "a"};
	static const char *const one[] = {"a"};
	static const char *cut[] = {"{\"entries\": [{\"type\": \"file\"",
				    "{\"entries\": []",
				    "{\"entries\": [], \"next\": \"a\"} x"};
	json_object *o;
	char why[160];
	size_t i, j;

	/* walk order: a parent before its children, children before a
	 * sibling that sorts after "/" only by bytes */
	for (i = 0; i < sizeof(walk) / sizeof(*walk); i++)
		for (j = 0; j < sizeof(walk) / sizeof(*walk); j++) {
			int c = fsw_path_cmp(walk[i], walk[j]);

			CU_ASSERT(i < j ? c < 0 : i == j ? c == 0 : c > 0);
		}
	CU_ASSERT(strcmp("a-b", "a/x") < 0); /* bytes say otherwise */

	/* good pages: the first, then one after its cursor, then the last */
	CU_ASSERT_EQUAL(check_page(p1, 3, NULL, "a/x/y"), 0);
	CU_ASSERT_EQUAL(check_page(p2, 2, "a/x/y", "a.b"), 0);
	CU_ASSERT_EQUAL(check_page(p2, 0, "a.b", NULL), 0);
	CU_ASSERT_EQUAL(check_page(p1, 3, NULL, NULL), 0);
	/* bad cursor: "next" not the page's last path, or on an empty
	 * page (no progress: the client would loop) */
	CU_ASSERT_EQUAL(check_page(p1, 3, NULL, "a/x"), -EPROTO);
	CU_ASSERT_EQUAL(check_page(p1, 3, NULL, "zzz"), -EPROTO);
	CU_ASSERT_EQUAL(check_page(p1, 0, "a", "a"), -EPROTO);
	/* a page that repeats the last one, or goes backwards */
	CU_ASSERT_EQUAL(check_page(p1, 3, "a/x/y", "a/x/y"), -EPROTO);
	CU_ASSERT_EQUAL(check_page(one, 1, "a", NULL), -EPROTO);
	CU_ASSERT_EQUAL(check_page(p1, 3, "a.b", NULL), -EPROTO);
	/* entries out of order within a page */
	CU_ASSERT_EQUAL(check_page(rep, 2, NULL, "a-b"), -EPROTO);
	CU_ASSERT_EQUAL(check_page(back, 2, NULL, "a-b"), -EPROTO);
	CU_ASSERT_EQUAL(check_page(child_first, 2, NULL, "a"), -EPROTO);
	/* a truncated page is no JSON object at all */
	for (i = 0; i < sizeof(cut) / sizeof(*cut); i++) {
		o = NULL;
		CU_ASSERT(fsw_json_parse(cut[i], strlen(cut[i]), &o, why,
					 sizeof(why)) < 0);
		if (o)
			json_object_put(o);
	}
}

int main(void)
{
	static const struct tu_test tests[] = {
	    {"UTF-8 check", test_utf8},
	    {"base64 encode and decode", test_base64},
	    {"errno names, one table both ways", test_errno_names},
	    {"strict JSON object parse", test_json_parse},
	    {"int, string and name fields", test_fields},
	    {"stat build -> parse, hostile stats", test_stat_round_trip},
	    {"statfs build -> parse", test_statfs_round_trip},
	    {"list and tree entries, hostile names", test_entries},
	    {"fs/op encode -> parse, wire bytes", test_op_round_trip},
	    {"fs/op hostile requests", test_op_hostile},
	    {"fs/ops: batch round trip, hostile requests and answers",
	     test_ops},
	    {"utimens times", test_times},
	    {"fs/files encode -> parse, hostile requests", test_files},
	    {"tree pages: walk order, hostile pages", test_tree_pages},
	    {NULL, NULL},
	};

	return tu_main("fsw", tests);
}
