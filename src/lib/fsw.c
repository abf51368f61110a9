/*
 * fsw.c - the nox.fs wire format: JSON shapes, errno names, base64 and
 * UTF-8, shared by the http backend and noxd so both ends agree by
 * construction.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nox/id.h>

#include "fsw_i.h"

/* ---- UTF-8 ------------------------------------------------------------ */

size_t fsw_utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t need, i;

	*bad = 1;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0;
	}
	for (i = 1; i < need; i++) {
		if (i >= n || s[i] < lo || s[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need;
}

bool fsw_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, seq, bad;

	while (i < len) {
		seq = fsw_utf8_seq(p + i, len - i, &bad);
		if (!seq)
			return false;
		i += seq;
	}
	return true;
}

/* ---- base64 ----------------------------------------------------------- */

static const char b64_tab[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *fsw_b64_encode(const void *data, size_t n)
{
	const unsigned char *s = data;
	char *out, *o;
	uint32_t v;
	size_t i;

	if (n > (SIZE_MAX - 1) / 4 * 3 - 2)
		return NULL;
	out = malloc((n + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	o = out;
	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*o++ = b64_tab[v >> 18];
		*o++ = b64_tab[(v >> 12) & 63];
		*o++ = b64_tab[(v >> 6) & 63];
		*o++ = b64_tab[v & 63];
	}
	if (i < n) {
		v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		*o++ = b64_tab[v >> 18];
		*o++ = b64_tab[(v >> 12) & 63];
		*o++ = i + 1 < n ? b64_tab[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

char *fsw_b64_decode(const char *s, size_t *len)
{
	size_t all = strlen(s), n = all, i, o = 0;
	uint32_t acc = 0;
	int bits = 0, v;
	char *out;

	while (n > 0 && s[n - 1] == '=')
		n--;
	if (all - n > 2 || n % 4 == 1)
		return NULL;
	out = malloc(n / 4 * 3 + 3);
	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		v = b64_val((unsigned char)s[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	/* the left-over bits must be zero in canonical base64 */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
		free(out);
		return NULL;
	}
	out[o] = '\0';
	*len = o;
	return out;
}

/* ---- errno names ------------------------------------------------------ */

/*
 * The one table, both directions.  Where two names share a value (EAGAIN
 * and EWOULDBLOCK, EOPNOTSUPP and ENOTSUP on Linux) the first is the one
 * sent; both are understood.
 */
#define E(x)                                                                   \
	{                                                                      \
#x, x                                                          \
	}
static const struct {
	const char *name;
	int code;
} errno_names[] = {
    E(EPERM),	   E(ENOENT),	    E(ESRCH),	    E(EINTR),
    E(EIO),	   E(ENXIO),	    E(E2BIG),	    E(ENOEXEC),
    E(EBADF),	   E(ECHILD),	    E(EAGAIN),	    E(EWOULDBLOCK),
    E(ENOMEM),	   E(EACCES),	    E(EFAULT),	    E(EBUSY),
    E(EEXIST),	   E(EXDEV),	    E(ENODEV),	    E(ENOTDIR),
    E(EISDIR),	   E(EINVAL),	    E(ENFILE),	    E(EMFILE),
    E(ENOTTY),	   E(ETXTBSY),	    E(EFBIG),	    E(ENOSPC),
    E(ESPIPE),	   E(EROFS),	    E(EMLINK),	    E(EPIPE),
    E(EDOM),	   E(ERANGE),	    E(EDEADLK),	    E(ENAMETOOLONG),
    E(ENOLCK),	   E(ENOSYS),	    E(ENOTEMPTY),   E(ELOOP),
    E(ENODATA),	   E(ETIME),	    E(EOVERFLOW),   E(EILSEQ),
    E(EOPNOTSUPP), E(ENOTSUP),	    E(ETIMEDOUT),   E(ECONNREFUSED),
    E(ECONNRESET), E(EHOSTUNREACH), E(ENETUNREACH), E(EDQUOT),
    E(ESTALE),	   E(ECANCELED),    E(EPROTO),	    E(EBADMSG),
    E(ENOTCONN),   E(ENOTSOCK),	    E(EMSGSIZE),    E(ENOBUFS),
    E(EALREADY),   E(EINPROGRESS),
};
#undef E

#define NAMES_N (sizeof(errno_names) / sizeof(errno_names[0]))

const char *fsw_errno_name(int code)
{
	size_t i;

	if (code < 0)
		code = -code;
	for (i = 0; i < NAMES_N; i++)
		if (errno_names[i].code == code)
			return errno_names[i].name;
	return NULL;
}

int fsw_errno_code(const char *name)
{
	size_t i;

	for (i = 0; name && i < NAMES_N; i++)
		if (strcmp(errno_names[i].name, name) == 0)
			return errno_names[i].code;
	return 0;
}

int fsw_error_parse(const char *body, size_t len, bool *has_errno)
{
	json_object *o = NULL;
	const char *name;
	char why[128];
	int code = 0;

	*has_errno = false;
	if (!body || len == 0 ||
	    fsw_json_parse(body, len, &o, why, sizeof(why)) < 0)
		return 0;
	if (fsw_get_str(o, "errno", false, &name, why, sizeof(why)) == 0) {
		*has_errno = true;
		code = fsw_errno_code(name);
	}
	json_object_put(o);
	return code;
}

/* ---- JSON fields ------------------------------------------------------ */

int fsw_json_parse(const char *s, size_t len, json_object **out, char *why,
		   size_t whysz)
{
	struct json_tokener *tok;
	enum json_tokener_error je;
	json_object *o;
	size_t end;

	*out = NULL;
	if (!s || len == 0) {
		snprintf(why, whysz, "empty body");
		return -1;
	}
	if (len > FSW_JSON_MAX || len > INT_MAX) {
		snprintf(why, whysz, "body too large");
		return -1;
	}
	tok = json_tokener_new_ex(FSW_JSON_DEPTH);
	if (!tok) {
		snprintf(why, whysz, "out of memory");
		return -1;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, s, (int)len);
	je = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (je != json_tokener_success || !o) {
		json_object_put(o);
		snprintf(why, whysz, "%s JSON at byte %zu",
			 je == json_tokener_continue ? "truncated"
						     : "malformed",
			 end);
		return -1;
	}
	for (; end < len; end++) {
		if (!strchr(" \t\r\n", s[end]) || s[end] == '\0') {
			json_object_put(o);
			snprintf(why, whysz, "trailing data at byte %zu", end);
			return -1;
		}
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		snprintf(why, whysz, "not a JSON object");
		return -1;
	}
	*out = o;
	return 0;
}

static json_object *field(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

int fsw_get_int(json_object *o, const char *key, bool required, int64_t lo,
		int64_t hi, int64_t *val, char *why, size_t whysz)
{
	json_object *v = field(o, key);
	int64_t n;

	if (!v) {
		if (!required)
			return 1;
		snprintf(why, whysz, "'%s' is missing", key);
		return -1;
	}
	if (!json_object_is_type(v, json_type_int)) {
		snprintf(why, whysz, "'%s' is not an integer", key);
		return -1;
	}
	/* json-c saturates out-of-range numbers: the extremes mean overflow */
	n = json_object_get_int64(v);
	if (n == INT64_MIN || n == INT64_MAX || n < lo || n > hi) {
		snprintf(why, whysz, "'%s' is out of range", key);
		return -1;
	}
	*val = n;
	return 0;
}

int fsw_get_str(json_object *o, const char *key, bool required,
		const char **val, char *why, size_t whysz)
{
	json_object *v = field(o, key);
	const char *s;

	if (!v) {
		if (!required)
			return 1;
		snprintf(why, whysz, "'%s' is missing", key);
		return -1;
	}
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(why, whysz, "'%s' is not a string", key);
		return -1;
	}
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v)) {
		snprintf(why, whysz, "'%s' holds a NUL byte", key);
		return -1;
	}
	*val = s;
	return 0;
}

int fsw_get_name(json_object *o, const char *key, bool required, char **val,
		 char *why, size_t whysz)
{
	char k64[32];
	const char *s = NULL;
	size_t n;
	int r;

	*val = NULL;
	r = fsw_get_str(o, key, false, &s, why, whysz);
	if (r < 0)
		return r;
	if (r == 0) {
		*val = strdup(s);
		if (!*val) {
			snprintf(why, whysz, "out of memory");
			return -1;
		}
		return 0;
	}
	snprintf(k64, sizeof(k64), "%s64", key);
	r = fsw_get_str(o, k64, false, &s, why, whysz);
	if (r < 0)
		return r;
	if (r == 1) {
		if (!required)
			return 1;
		snprintf(why, whysz, "'%s' is missing", key);
		return -1;
	}
	*val = fsw_b64_decode(s, &n);
	if (!*val) {
		snprintf(why, whysz, "'%s' is not base64", k64);
		return -1;
	}
	if (strlen(*val) != n) {
		free(*val);
		*val = NULL;
		snprintf(why, whysz, "'%s' holds a NUL byte", k64);
		return -1;
	}
	return 0;
}

/* Adds key: v, putting v when o cannot take it.  0 or -1. */
static int add(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return -1;
	if (json_object_object_add(o, key, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

int fsw_add_name(json_object *o, const char *key, const char *s)
{
	size_t len = strlen(s);
	char k64[32], *b;
	int r;

	if (fsw_utf8_valid(s, len))
		return len > INT_MAX
			   ? -1
			   : add(o, key,
				 json_object_new_string_len(s, (int)len));
	b = fsw_b64_encode(s, len);
	if (!b)
		return -1;
	snprintf(k64, sizeof(k64), "%s64", key);
	r = add(o, k64, json_object_new_string(b));
	free(b);
	return r;
}

/* ---- stat, statfs ----------------------------------------------------- */

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static void ns_ts(int64_t ns, struct timespec *ts)
{
	int64_t s = ns / 1000000000LL, r = ns % 1000000000LL;

	if (r < 0) {
		r += 1000000000LL;
		s--;
	}
	ts->tv_sec = (time_t)s;
	ts->tv_nsec = (long)r;
}

static const char *stat_type(mode_t m)
{
	if (S_ISREG(m))
		return "file";
	if (S_ISDIR(m))
		return "dir";
	if (S_ISLNK(m))
		return "symlink";
	return "other";
}

/* The "kind" of an "other": the types a client can mirror (extension). */
static const char *stat_kind(mode_t m)
{
	if (S_ISFIFO(m))
		return "fifo";
	if (S_ISSOCK(m))
		return "socket";
	return NULL;
}

json_object *fsw_stat_build(const struct stat *st, const char *target)
{
	json_object *o = json_object_new_object();
	const char *kind = stat_kind(st->st_mode);

	if (!o)
		return NULL;
	if (add(o, "type", json_object_new_string(stat_type(st->st_mode))) ||
	    add(o, "mode", json_object_new_int((int)(st->st_mode & 07777))) ||
	    add(o, "size", json_object_new_int64(st->st_size)) ||
	    add(o, "nlink", json_object_new_int64((int64_t)st->st_nlink)) ||
	    add(o, "uid", json_object_new_int64(st->st_uid)) ||
	    add(o, "gid", json_object_new_int64(st->st_gid)) ||
	    add(o, "ino", json_object_new_int64((int64_t)st->st_ino)) ||
	    add(o, "mtimeNs", json_object_new_int64(ts_ns(&st->st_mtim))) ||
	    add(o, "atimeNs", json_object_new_int64(ts_ns(&st->st_atim))) ||
	    add(o, "ctimeNs", json_object_new_int64(ts_ns(&st->st_ctim))) ||
	    (target && fsw_add_name(o, "target", target) < 0) ||
	    (kind && add(o, "kind", json_object_new_string(kind)))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int fsw_stat_parse(json_object *o, struct stat *st, char *why, size_t whysz)
{
	static const struct {
		const char *key;
		int64_t hi;
	} f[] = {
	    {"mode", 07777},	   {"size", INT64_MAX - 1},
	    {"nlink", UINT32_MAX}, {"uid", UINT32_MAX},
	    {"gid", UINT32_MAX},   {"ino", INT64_MAX - 1},
	};
	static const char *const tkeys[] = {"atimeNs", "mtimeNs", "ctimeNs"};
	int64_t v[6], t[3];
	const char *type, *kind;
	mode_t fmt;
	size_t i;

	memset(st, 0, sizeof(*st));
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(why, whysz, "stat entry is not an object");
		return -1;
	}
	if (fsw_get_str(o, "type", true, &type, why, whysz) < 0)
		return -1;
	if (strcmp(type, "file") == 0 || strcmp(type, "other") == 0)
		fmt = S_IFREG;
	else if (strcmp(type, "dir") == 0)
		fmt = S_IFDIR;
	else if (strcmp(type, "symlink") == 0)
		fmt = S_IFLNK;
	else {
		snprintf(why, whysz, "unknown 'type'");
		return -1;
	}
	/* an "other" named a FIFO or socket is mirrored as one; any other
	 * kind (a device, or one this client does not know) stays a file */
	if (strcmp(type, "other") == 0 &&
	    fsw_get_str(o, "kind", false, &kind, why, whysz) == 0) {
		if (strcmp(kind, "fifo") == 0)
			fmt = S_IFIFO;
		else if (strcmp(kind, "socket") == 0)
			fmt = S_IFSOCK;
	}
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (fsw_get_int(o, f[i].key, true, 0, f[i].hi, &v[i], why,
				whysz) < 0)
			return -1;
	for (i = 0; i < 3; i++)
		if (fsw_get_int(o, tkeys[i], true, INT64_MIN + 1, INT64_MAX - 1,
				&t[i], why, whysz) < 0)
			return -1;
	st->st_mode = fmt | (mode_t)v[0];
	st->st_size = (off_t)v[1];
	st->st_nlink = (nlink_t)v[2];
	st->st_uid = (uid_t)v[3];
	st->st_gid = (gid_t)v[4];
	st->st_ino = (ino_t)v[5];
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((v[1] + 511) / 512);
	ns_ts(t[0], &st->st_atim);
	ns_ts(t[1], &st->st_mtim);
	ns_ts(t[2], &st->st_ctim);
	return 0;
}

static const char *const statfs_keys[] = {"bsize", "frsize", "blocks",
					  "bfree", "bavail", "files",
					  "ffree", "namemax"};

json_object *fsw_statfs_build(const struct statvfs *sv)
{
	const int64_t v[8] = {
	    (int64_t)sv->f_bsize, (int64_t)sv->f_frsize,  (int64_t)sv->f_blocks,
	    (int64_t)sv->f_bfree, (int64_t)sv->f_bavail,  (int64_t)sv->f_files,
	    (int64_t)sv->f_ffree, (int64_t)sv->f_namemax,
	};
	json_object *o = json_object_new_object();
	size_t i;

	for (i = 0; o && i < 8; i++) {
		if (add(o, statfs_keys[i], json_object_new_int64(v[i]))) {
			json_object_put(o);
			o = NULL;
		}
	}
	return o;
}

int fsw_statfs_parse(json_object *o, struct statvfs *sv, char *why,
		     size_t whysz)
{
	int64_t v[8];
	size_t i;

	for (i = 0; i < 8; i++)
		if (fsw_get_int(o, statfs_keys[i], true, 0, INT64_MAX - 1,
				&v[i], why, whysz) < 0)
			return -1;
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = (unsigned long)v[0];
	sv->f_frsize = (unsigned long)v[1];
	sv->f_blocks = (fsblkcnt_t)v[2];
	sv->f_bfree = (fsblkcnt_t)v[3];
	sv->f_bavail = (fsblkcnt_t)v[4];
	sv->f_files = (fsfilcnt_t)v[5];
	sv->f_ffree = (fsfilcnt_t)v[6];
	sv->f_favail = (fsfilcnt_t)v[6];
	sv->f_namemax = (unsigned long)v[7];
	return 0;
}

/* ---- fs/list and fs/tree ---------------------------------------------- */

/* A listing name must be one path component. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= NAME_MAX && !strchr(s, '/') &&
	       strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* A tree path: relative, no "." or ".." component, not the root itself. */
static bool rel_ok(const char *s)
{
	return s[0] && nox_path_validate(s, NULL) == 0 && strcmp(s, ".") != 0;
}

int fsw_entries_parse(json_object *o, enum fsw_list_kind kind,
		      struct fsw_ent **out, size_t *nout, char *why,
		      size_t whysz)
{
	bool tree = kind == FSW_TREE;
	struct fsw_ent *ents;
	json_object *arr, *el;
	char ewhy[96];
	size_t i, n;

	*out = NULL;
	*nout = 0;
	arr = field(o, "entries");
	if (!arr || !json_object_is_type(arr, json_type_array)) {
		snprintf(why, whysz,
			 "malformed response: 'entries' is not an array");
		return -EPROTO;
	}
	n = json_object_array_length(arr);
	ents = calloc(n ? n : 1, sizeof(*ents));
	if (!ents) {
		snprintf(why, whysz, "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		el = json_object_array_get_idx(arr, i);
		if (fsw_stat_parse(el, &ents[i].st, ewhy, sizeof(ewhy)) < 0 ||
		    fsw_get_name(el, tree ? "path" : "name", true,
				 &ents[i].name, ewhy, sizeof(ewhy)) < 0 ||
		    (tree && fsw_get_name(el, "target", false, &ents[i].target,
					  ewhy, sizeof(ewhy)) < 0)) {
			snprintf(why, whysz, "malformed entry %zu: %s", i,
				 ewhy);
			goto bad;
		}
		if (tree ? !rel_ok(ents[i].name) : !name_ok(ents[i].name)) {
			snprintf(why, whysz, "entry %zu has a bad %s", i,
				 tree ? "path" : "name");
			goto bad;
		}
		if (!S_ISLNK(ents[i].st.st_mode)) {
			free(ents[i].target);
			ents[i].target = NULL;
		}
	}
	*out = ents;
	*nout = n;
	return 0;
bad:
	fsw_entries_free(ents, n);
	return -EPROTO;
}

void fsw_entries_free(struct fsw_ent *ents, size_t n)
{
	size_t i;

	for (i = 0; ents && i < n; i++) {
		free(ents[i].name);
		free(ents[i].target);
	}
	free(ents);
}

int fsw_path_cmp(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a;
	const unsigned char *y = (const unsigned char *)b;

	for (; *x && *x == *y; x++, y++)
		;
	if (*x == *y)
		return 0;
	/* the end of a path, then '/', then any other byte */
	if (!*x || (*x == '/' && *y))
		return -1;
	if (!*y || *y == '/')
		return 1;
	return *x < *y ? -1 : 1;
}

int fsw_tree_page_check(const struct fsw_ent *ents, size_t n, const char *after,
			const char *next, char *why, size_t whysz)
{
	const char *prev = after;
	size_t i;

	for (i = 0; i < n; i++) {
		if (prev && fsw_path_cmp(prev, ents[i].name) >= 0) {
			snprintf(why, whysz,
				 "entry %zu repeats or goes back (%s)", i,
				 i ? "out of order" : "not after the cursor");
			return -EPROTO;
		}
		prev = ents[i].name;
	}
	if (next && (!n || strcmp(next, ents[n - 1].name) != 0)) {
		snprintf(why, whysz,
			 "'next' is not the page's last path (bad cursor)");
		return -EPROTO;
	}
	return 0;
}

json_object *fsw_entries_build(json_object *arr)
{
	json_object *o;

	if (!arr)
		return NULL;
	o = json_object_new_object();
	if (!o) {
		json_object_put(arr);
		return NULL;
	}
	if (add(o, "entries", arr) < 0) { /* add put arr */
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* ---- fs/op ------------------------------------------------------------ */

enum {
	FA_PATH = 1 << 0,
	FA_FROM = 1 << 1,
	FA_TO = 1 << 2,
	FA_TARGET = 1 << 3,
	FA_MODE = 1 << 4,  /* default in the table, or required */
	FA_SIZE = 1 << 5,  /* required */
	FA_FLAGS = 1 << 6, /* default 0 */
	FA_TIMES = 1 << 7, /* atimeNs, mtimeNs; default -2 (omit) */
	FA_EXCL = 1 << 8,  /* default false */
	FA_KIND = 1 << 9,  /* required: "fifo" or "socket" */
};

static const struct op_spec {
	const char *name;
	enum fsw_opcode code;
	unsigned fields;
	int64_t mode_def; /* -1: mode required */
} op_specs[] = {
    {"create", FSW_OP_CREATE, FA_PATH | FA_MODE | FA_EXCL, 0644},
    {"truncate", FSW_OP_TRUNCATE, FA_PATH | FA_SIZE, 0},
    {"mkdir", FSW_OP_MKDIR, FA_PATH | FA_MODE, 0755},
    {"unlink", FSW_OP_UNLINK, FA_PATH, 0},
    {"rmdir", FSW_OP_RMDIR, FA_PATH, 0},
    {"rename", FSW_OP_RENAME, FA_FROM | FA_TO | FA_FLAGS, 0},
    {"chmod", FSW_OP_CHMOD, FA_PATH | FA_MODE, -1},
    {"utimens", FSW_OP_UTIMENS, FA_PATH | FA_TIMES, 0},
    {"symlink", FSW_OP_SYMLINK, FA_TARGET | FA_PATH, 0},
    {"link", FSW_OP_LINK, FA_FROM | FA_TO, 0},
    {"readlink", FSW_OP_READLINK, FA_PATH, 0},
    {"mknod", FSW_OP_MKNOD, FA_PATH | FA_MODE | FA_KIND, 0644},
};

#define SPECS_N (sizeof(op_specs) / sizeof(op_specs[0]))

static const struct op_spec *spec_of(enum fsw_opcode code)
{
	size_t i;

	for (i = 0; i < SPECS_N; i++)
		if (op_specs[i].code == code)
			return &op_specs[i];
	return NULL;
}

/*
 * Field order is the order the fields go on the wire: a symlink's target
 * before its path, integers after the names.
 */
/* op as a JSON object (only the fields its code takes); NULL on ENOMEM. */
static json_object *op_to_obj(const struct fsw_op *op)
{
	const struct op_spec *spec = spec_of(op->code);
	const char *kind = stat_kind(op->fmt);
	json_object *o;
	unsigned f;
	int bad;

	if (!spec)
		return NULL;
	f = spec->fields;
	o = json_object_new_object();
	if (!o)
		return NULL;
	bad = add(o, "op", json_object_new_string(spec->name));
	if (!bad && (f & FA_TARGET))
		bad = !op->target || fsw_add_name(o, "target", op->target);
	if (!bad && (f & FA_PATH))
		bad = !op->path || fsw_add_name(o, "path", op->path);
	if (!bad && (f & FA_FROM))
		bad = !op->from || fsw_add_name(o, "from", op->from);
	if (!bad && (f & FA_TO))
		bad = !op->to || fsw_add_name(o, "to", op->to);
	if (!bad && (f & FA_MODE))
		bad = add(o, "mode", json_object_new_int64(op->mode));
	if (!bad && (f & FA_SIZE))
		bad = add(o, "size", json_object_new_int64(op->size));
	if (!bad && (f & FA_FLAGS))
		bad = add(o, "flags", json_object_new_int64(op->flags));
	if (!bad && (f & FA_TIMES))
		bad = add(o, "atimeNs", json_object_new_int64(op->atime_ns)) ||
		      add(o, "mtimeNs", json_object_new_int64(op->mtime_ns));
	if (!bad && (f & FA_EXCL))
		bad = add(o, "excl", json_object_new_boolean(op->excl));
	/* no kind for anything else: a device node cannot be asked for */
	if (!bad && (f & FA_KIND))
		bad = !kind || add(o, "kind", json_object_new_string(kind));
	if (bad) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

char *fsw_op_encode(const struct fsw_op *op)
{
	json_object *o = op_to_obj(op);
	char *s = NULL;

	if (o)
		s = strdup(json_object_to_json_string_ext(o, FSW_JSON_OUT));
	json_object_put(o);
	return s;
}

static int op_name(json_object *o, const char *key, char **slot,
		   struct nox_err *err)
{
	char why[96];
	int r = fsw_get_name(o, key, false, slot, why, sizeof(why));

	if (r == 1)
		return nox_err_set(err, EINVAL, "missing '%s'", key);
	if (r < 0)
		return nox_err_set(err, EINVAL, "bad '%s': %s", key, why);
	return 0;
}

/* An integer field in [lo, hi]; def when absent unless required. */
static int op_int(json_object *o, const char *key, bool required, int64_t def,
		  int64_t lo, int64_t hi, int64_t *val, struct nox_err *err)
{
	char why[96];
	int r = fsw_get_int(o, key, false, lo, hi, val, why, sizeof(why));

	if (r == 1 && required)
		return nox_err_set(err, EINVAL, "missing '%s'", key);
	if (r == 1)
		*val = def;
	if (r < 0)
		return nox_err_set(err, EINVAL, "bad '%s'", key);
	return 0;
}

/* Parses op object o into op (zeroed first); o is only read. */
static int op_from_obj(json_object *o, struct fsw_op *op, struct nox_err *err)
{
	const struct op_spec *spec = NULL;
	json_object *v;
	char why[96];
	const char *name;
	unsigned f;
	size_t i;
	int r;

	memset(op, 0, sizeof(*op));
	if (!json_object_is_type(o, json_type_object))
		return nox_err_set(err, EINVAL, "an op is not an object");
	if (fsw_get_str(o, "op", true, &name, why, sizeof(why)) < 0) {
		r = nox_err_set(err, EINVAL, "missing 'op'");
		goto out;
	}
	for (i = 0; i < SPECS_N && !spec; i++)
		if (strcmp(op_specs[i].name, name) == 0)
			spec = &op_specs[i];
	if (!spec) {
		r = nox_err_set(err, EINVAL, "unknown op '%.64s'", name);
		goto out;
	}
	op->code = spec->code;
	f = spec->fields;
	r = 0;
	if (f & FA_PATH)
		r = op_name(o, "path", &op->path, err);
	if (r == 0 && (f & FA_FROM))
		r = op_name(o, "from", &op->from, err);
	if (r == 0 && (f & FA_TO))
		r = op_name(o, "to", &op->to, err);
	if (r == 0 && (f & FA_TARGET))
		r = op_name(o, "target", &op->target, err);
	if (r == 0 && (f & FA_MODE))
		r = op_int(o, "mode", spec->mode_def < 0, spec->mode_def, 0,
			   07777, &op->mode, err);
	if (r == 0 && (f & FA_SIZE))
		r = op_int(o, "size", true, 0, 0, INT64_MAX - 1, &op->size,
			   err);
	if (r == 0 && (f & FA_FLAGS))
		r = op_int(o, "flags", false, 0, 0, 2, &op->flags, err);
	/* -1 now, -2 omit, else nanoseconds since the epoch */
	if (r == 0 && (f & FA_TIMES))
		r = op_int(o, "atimeNs", false, -2, -2, INT64_MAX - 1,
			   &op->atime_ns, err);
	if (r == 0 && (f & FA_TIMES))
		r = op_int(o, "mtimeNs", false, -2, -2, INT64_MAX - 1,
			   &op->mtime_ns, err);
	if (r == 0 && (f & FA_EXCL) &&
	    json_object_object_get_ex(o, "excl", &v)) {
		if (!json_object_is_type(v, json_type_boolean))
			r = nox_err_set(err, EINVAL, "bad 'excl'");
		else
			op->excl = json_object_get_boolean(v);
	}
	if (r == 0 && (f & FA_KIND)) {
		const char *kind;

		if (fsw_get_str(o, "kind", true, &kind, why, sizeof(why)) < 0)
			r = nox_err_set(err, EINVAL, "missing 'kind'");
		else if (strcmp(kind, "fifo") == 0)
			op->fmt = S_IFIFO;
		else if (strcmp(kind, "socket") == 0)
			op->fmt = S_IFSOCK;
		else
			r = nox_err_set(err, EINVAL, "bad 'kind'");
	}
out:
	if (r < 0)
		fsw_op_cleanup(op);
	return r;
}

int fsw_op_parse(const char *s, size_t len, struct fsw_op *op,
		 struct nox_err *err)
{
	json_object *o = NULL;
	char why[96];
	int r;

	memset(op, 0, sizeof(*op));
	if (fsw_json_parse(s, len, &o, why, sizeof(why)) < 0)
		return nox_err_set(err, EINVAL, "malformed JSON object: %s",
				   why);
	r = op_from_obj(o, op, err);
	json_object_put(o);
	return r;
}

/* ---- {"KEY": [...]} bodies ------------------------------------------- */

/* A new object {key: []}, *arr its array; NULL when out of memory. */
static json_object *obj_with_array(const char *key, json_object **arr)
{
	json_object *o = json_object_new_object();

	*arr = json_object_new_array();
	if (!o || !*arr || add(o, key, *arr)) {
		json_object_put(o);
		if (!o)
			json_object_put(*arr);
		return NULL;
	}
	return o;
}

/* Appends el (NULL: out of memory) to arr: 0, or -1 with el put. */
static int arr_push(json_object *arr, json_object *el)
{
	if (el && json_object_array_add(arr, el) == 0)
		return 0;
	json_object_put(el);
	return -1;
}

/* o as text (malloc'd; NULL when bad or out of memory); o is put. */
static char *obj_text(json_object *o, bool bad, int flags)
{
	char *s = bad ? NULL
		      : strdup(json_object_to_json_string_ext(o, flags));

	json_object_put(o);
	return s;
}

/* ---- fs/ops ----------------------------------------------------------- */

char *fsw_ops_encode(const struct fsw_op *ops, size_t n)
{
	json_object *arr, *o = obj_with_array("ops", &arr);
	bool bad = !o;
	size_t i;

	for (i = 0; !bad && i < n; i++)
		bad = arr_push(arr, op_to_obj(&ops[i])) < 0;
	return o ? obj_text(o, bad, FSW_JSON_OUT) : NULL;
}

void fsw_ops_free(struct fsw_op *ops, size_t n)
{
	size_t i;

	for (i = 0; ops && i < n; i++)
		fsw_op_cleanup(&ops[i]);
	free(ops);
}

int fsw_ops_parse(const char *s, size_t len, struct fsw_op **out,
		  size_t *nout, struct nox_err *err)
{
	json_object *o = NULL, *arr;
	struct fsw_op *ops = NULL;
	size_t i, n = 0;
	char why[96];
	int r = 0;

	*out = NULL;
	*nout = 0;
	if (fsw_json_parse(s, len, &o, why, sizeof(why)) < 0)
		return nox_err_set(err, EINVAL, "malformed JSON object: %s",
				   why);
	if (!json_object_object_get_ex(o, "ops", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		r = nox_err_set(err, EINVAL, "missing 'ops' array");
		goto out;
	}
	n = json_object_array_length(arr);
	if (n == 0 || n > FSW_OPS_MAX) {
		r = nox_err_set(err, EINVAL, "%zu ops: 1 to %d in one request",
				n, FSW_OPS_MAX);
		goto out;
	}
	ops = calloc(n, sizeof(*ops));
	if (!ops) {
		r = nox_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n && r == 0; i++) {
		r = op_from_obj(json_object_array_get_idx(arr, i), &ops[i], err);
		if (r == 0 && ops[i].code == FSW_OP_READLINK) {
			fsw_op_cleanup(&ops[i]);
			r = nox_err_set(err, EINVAL,
					"readlink is not an op of fs/ops");
		}
		/* a name that leaves the workspace fails the whole request,
		 * as in fs/files, rather than one op */
		if (r == 0 && ((ops[i].path && !rel_ok(ops[i].path)) ||
			       (ops[i].from && !rel_ok(ops[i].from)) ||
			       (ops[i].to && !rel_ok(ops[i].to)))) {
			fsw_op_cleanup(&ops[i]);
			r = nox_err_set(err, EINVAL,
					"a path that is empty, absolute or "
					"has a '.' or '..' component");
		}
		if (r < 0) {
			char msg[sizeof(err->msg)];

			snprintf(msg, sizeof(msg), "%s", nox_err_str(err, r));
			nox_err_set(err, -r, "op %zu: %s", i, msg);
		}
	}
	if (r < 0) {
		/* the failed op cleaned itself, the rest are zeroed */
		fsw_ops_free(ops, n);
		ops = NULL;
		n = 0;
	}
out:
	json_object_put(o);
	*out = ops;
	*nout = n;
	return r;
}

json_object *fsw_results_build(const int *rc, const char *const *msg, size_t n)
{
	json_object *arr, *o = obj_with_array("results", &arr);
	bool bad = !o;
	size_t i;

	for (i = 0; !bad && i < n; i++) {
		json_object *el = json_object_new_object();

		bad = arr_push(arr, el) < 0;
		if (bad)
			break;
		if (rc[i] < 0) {
			const char *name = fsw_errno_name(-rc[i]);

			bad = add(el, "errno", json_object_new_string(
						   name ? name : "EIO")) ||
			      add(el, "error",
				  json_object_new_string(msg[i] ? msg[i] : ""));
		}
	}
	if (bad) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int fsw_results_parse(const char *s, size_t len, int *results, size_t n,
		      struct nox_err *err)
{
	json_object *o = NULL, *arr;
	char why[96];
	size_t i;
	int r = 0;

	if (fsw_json_parse(s, len, &o, why, sizeof(why)) < 0)
		return nox_err_set(err, EPROTO, "fs/ops answer: %s", why);
	if (!json_object_object_get_ex(o, "results", &arr) ||
	    !json_object_is_type(arr, json_type_array) ||
	    json_object_array_length(arr) != n) {
		r = nox_err_set(err, EPROTO,
				"fs/ops answer: not %zu results", n);
		goto out;
	}
	for (i = 0; i < n && r == 0; i++) {
		json_object *el = json_object_array_get_idx(arr, i);
		const char *name;
		int g;

		if (!json_object_is_type(el, json_type_object)) {
			r = nox_err_set(err, EPROTO,
					"fs/ops answer: result %zu is not an "
					"object",
					i);
			break;
		}
		g = fsw_get_str(el, "errno", false, &name, why, sizeof(why));
		if (g < 0) {
			r = nox_err_set(err, EPROTO,
					"fs/ops answer: result %zu: bad errno",
					i);
			break;
		}
		if (g == 1) {
			results[i] = 0;
		} else {
			int code = fsw_errno_code(name);

			results[i] = -(code > 0 ? code : EIO);
		}
	}
out:
	json_object_put(o);
	return r;
}

void fsw_op_cleanup(struct fsw_op *op)
{
	free(op->path);
	free(op->from);
	free(op->to);
	free(op->target);
	op->path = op->from = op->to = op->target = NULL;
}

int64_t fsw_ns_from_ts(const struct timespec *ts)
{
	if (!ts || ts->tv_nsec == UTIME_NOW)
		return -1;
	if (ts->tv_nsec == UTIME_OMIT)
		return -2;
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

int fsw_ns_to_ts(int64_t ns, struct timespec *ts)
{
	if (ns == -1) {
		ts->tv_sec = 0;
		ts->tv_nsec = UTIME_NOW;
	} else if (ns == -2) {
		ts->tv_sec = 0;
		ts->tv_nsec = UTIME_OMIT;
	} else if (ns < 0) {
		return -EINVAL;
	} else {
		ts->tv_sec = (time_t)(ns / 1000000000);
		ts->tv_nsec = (long)(ns % 1000000000);
	}
	return 0;
}

json_object *fsw_readlink_build(const char *target)
{
	json_object *o = json_object_new_object();

	if (o && fsw_add_name(o, "target", target) < 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* ---- fs/files --------------------------------------------------------- */

char *fsw_files_encode(const char *const *paths, size_t n)
{
	json_object *arr, *o = obj_with_array("files", &arr);
	bool bad = !o;
	size_t i;

	for (i = 0; !bad && i < n; i++) {
		json_object *el = json_object_new_object();

		bad = arr_push(arr, el) < 0 ||
		      fsw_add_name(el, "path", paths[i]) < 0;
	}
	return o ? obj_text(o, bad, JSON_C_TO_STRING_PLAIN) : NULL;
}

void fsw_files_free(char **paths, size_t n)
{
	size_t i;

	for (i = 0; paths && i < n; i++)
		free(paths[i]);
	free(paths);
}

int fsw_files_parse(const char *s, size_t len, char ***paths, size_t *nout,
		    struct nox_err *err)
{
	json_object *o = NULL, *arr;
	char why[96], **v = NULL;
	size_t i, n = 0;
	int r;

	*paths = NULL;
	*nout = 0;
	if (fsw_json_parse(s, len, &o, why, sizeof(why)) < 0)
		return nox_err_set(err, EINVAL, "malformed JSON object: %s",
				   why);
	arr = field(o, "files");
	if (!arr || !json_object_is_type(arr, json_type_array)) {
		r = nox_err_set(err, EINVAL, "'files' is not an array");
		goto out;
	}
	n = json_object_array_length(arr);
	if (n > FSW_FILES_MAX) {
		r = nox_err_set(err, EINVAL, "more than %d files",
				FSW_FILES_MAX);
		n = 0;
		goto out;
	}
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		r = nox_err_set(err, ENOMEM, "out of memory");
		n = 0;
		goto out;
	}
	for (i = 0; i < n; i++) {
		json_object *el = json_object_array_get_idx(arr, i);

		if (!el || !json_object_is_type(el, json_type_object)) {
			r = nox_err_set(err, EINVAL, "file %zu: not an object",
					i);
			goto out;
		}
		if (fsw_get_name(el, "path", true, &v[i], why, sizeof(why)) <
		    0) {
			r = nox_err_set(err, EINVAL, "file %zu: %s", i, why);
			goto out;
		}
		if (!rel_ok(v[i])) {
			r = nox_err_set(err, EINVAL, "file %zu: bad path", i);
			goto out;
		}
	}
	*paths = v;
	*nout = n;
	v = NULL;
	r = 0;
out:
	fsw_files_free(v, n);
	json_object_put(o);
	return r;
}
