/*
 * test_manifest.c - the HTTP cache's listing parser and merge
 * (src/fs/manifest.c) against hostile listings.
 *
 * Tried: records naming "../x", "/etc/x", "a/../b", "", ".", a symlink
 * without a target, a bad mode, a truncated record, a name the server
 * turned into U+FFFD; then a merge of a listing whose entries go through
 * a symlink planted in the cache tree (absolute and relative), that
 * claims a directory where the tree has a symlink, and that names paths
 * a pending local operation holds (busy inode, skipped path).  Nothing
 * may appear outside the tree, busy and skipped entries stay as they are.
 * FIFOs and sockets are mirrored as such; a device never is.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "../../src/fs/manifest.h"
#include "testutil.h"

/* One find record: type, mode, size, mtime, inode, links, target, path
 * (NUL-ended). */
static size_t rec(char *buf, size_t at, const char *type, const char *mode,
		  const char *size, const char *target, const char *path)
{
	const char *f[8] = {type, mode, size,	"1700000000.5",
			    "0",  "1",	target, path};
	size_t i;

	for (i = 0; i < 8; i++) {
		size_t n = strlen(f[i]) + 1;

		memcpy(buf + at, f[i], n);
		at += n;
	}
	return at;
}

/* The fetched bytes by a walk: what m->fetched_bytes must equal. */
static long long walk_fetched(struct manifest *m)
{
	long long sum = 0;
	const struct ment *e;
	size_t pos = 0;

	while ((e = manifest_next(m, &pos)) != NULL)
		sum += e->fetched ? e->rsize : 0;
	return sum;
}


static void parse_expect(const char *out, size_t len, int want)
{
	struct listing l;
	struct nox_err err;
	int r = listing_parse_find(out, len, &l, &err);

	CU_ASSERT_EQUAL(r, want);
	if (r != want)
		fprintf(stderr, "parse: got %d want %d (%s)\n", r, want,
			err.msg);
	if (r == 0)
		listing_cleanup(&l);
	else
		CU_ASSERT(err.msg[0] != '\0');
}

static void test_parse_hostile(void)
{
	static const char *const bad[] = {"../x", "/etc/x", "a/../b", "", "."};
	char buf[512];
	struct listing l;
	struct nox_err err;
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = rec(buf, 0, "f", "644", "1", "", bad[i]);
		parse_expect(buf, n, -EPROTO);
	}
	n = rec(buf, 0, "l", "777", "0", "", "link"); /* no target */
	parse_expect(buf, n, -EPROTO);
	n = rec(buf, 0, "f", "6x4", "1", "", "f");
	parse_expect(buf, n, -EPROTO);
	n = rec(buf, 0, "f", "644", "1", "", "f");
	parse_expect(buf, n - 3, -EPROTO); /* cut inside the last field */
	n = rec(buf, 0, "f", "644", "1", "", "bad\xef\xbf\xbdname");
	parse_expect(buf, n, -EILSEQ);

	n = rec(buf, 0, "d", "755", "4096", "", "d");
	n = rec(buf, n, "f", "600", "12", "", "d/f");
	n = rec(buf, n, "l", "777", "0", "/etc/passwd", "d/l");
	CU_ASSERT_EQUAL_FATAL(listing_parse_find(buf, n, &l, &err), 0);
	CU_ASSERT_EQUAL(l.n, 3);
	if (l.n == 3) {
		CU_ASSERT_STRING_EQUAL(l.v[1].path, "d/f");
		CU_ASSERT_EQUAL(l.v[1].size, 12);
		CU_ASSERT_EQUAL(l.v[1].mode, 0600);
		CU_ASSERT_EQUAL(l.v[1].mtime, 1700000000500000000ll);
		CU_ASSERT_STRING_EQUAL(l.v[2].target, "/etc/passwd");
	}
	listing_cleanup(&l);
}

struct guard {
	ino_t busy;
	const char *skip;
};

static bool g_busy(ino_t ino, void *ud)
{
	return ino == ((struct guard *)ud)->busy;
}

static bool g_skip(const char *path, void *ud)
{
	const char *s = ((struct guard *)ud)->skip;

	return s && strcmp(path, s) == 0;
}

static bool exists(const char *dir, const char *name)
{
	struct stat st;
	char *p = tu_strf("%s/%s", dir, name);
	bool r = lstat(p, &st) == 0;

	free(p);
	return r;
}

static void test_merge_hostile(void)
{
	char *base = tu_mkdtemp("manifest");
	char *tree = tu_strf("%s/tree", base);
	char *out = tu_strf("%s/outside", base);
	char buf[2048], *p;
	struct manifest m;
	struct listing l;
	struct nox_err err;
	struct guard g = {0, "pending.txt"};
	struct stat st;
	size_t n;
	int tfd, fd;

	CU_ASSERT_FATAL(mkdir(tree, 0700) == 0 && mkdir(out, 0700) == 0);
	/* planted in the tree: links out, absolute and relative */
	p = tu_strf("%s/abs", tree);
	CU_ASSERT_FATAL(symlink(out, p) == 0);
	free(p);
	p = tu_strf("%s/rel", tree);
	CU_ASSERT_FATAL(symlink("../outside", p) == 0);
	free(p);
	/* a file with local changes (busy by inode) */
	p = tu_strf("%s/mine.txt", tree);
	CU_ASSERT_FATAL(tu_write_file(p, "local", 5) == 0);
	CU_ASSERT_FATAL(stat(p, &st) == 0);
	g.busy = st.st_ino;
	free(p);
	tfd = open(tree, O_PATH | O_DIRECTORY);
	CU_ASSERT_FATAL(tfd >= 0);
	CU_ASSERT_FATAL(manifest_init(&m) == 0);

	n = rec(buf, 0, "f", "644", "5", "", "abs/evil");
	n = rec(buf, n, "d", "755", "0", "", "rel/sub");
	n = rec(buf, n, "f", "644", "5", "", "rel/sub/evil2");
	n = rec(buf, n, "d", "755", "0", "",
		"abs"); /* a dir, says the server */
	n = rec(buf, n, "f", "644", "9", "", "mine.txt");
	n = rec(buf, n, "f", "644", "3", "", "pending.txt");
	n = rec(buf, n, "f", "644", "3", "", "new.txt");
	CU_ASSERT_FATAL(listing_parse_find(buf, n, &l, &err) == 0);
	CU_ASSERT_EQUAL(
	    manifest_merge(&m, tfd, &l, -1, g_busy, g_skip, &g, &err), 0);
	listing_cleanup(&l);

	/* nothing outside; the links were not followed */
	CU_ASSERT(!exists(out, "evil"));
	CU_ASSERT(!exists(out, "sub"));
	CU_ASSERT(!exists(out, "sub/evil2"));
	/* new entries appear as placeholders of the remote size */
	p = tu_strf("%s/new.txt", tree);
	CU_ASSERT(lstat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 3);
	free(p);
	/* the busy file keeps its local content, the skipped path stays
	 * absent (its operation is pending) */
	p = tu_strf("%s/mine.txt", tree);
	fd = open(p, O_RDONLY);
	CU_ASSERT(fd >= 0 && read(fd, buf, sizeof(buf)) == 5 &&
		  memcmp(buf, "local", 5) == 0);
	if (fd >= 0)
		close(fd);
	free(p);
	CU_ASSERT(!exists(tree, "pending.txt"));

	/* a second listing without the planted links: they were never the
	 * server's (not in the manifest), so they are left alone */
	n = rec(buf, 0, "f", "644", "3", "", "new.txt");
	CU_ASSERT_FATAL(listing_parse_find(buf, n, &l, &err) == 0);
	CU_ASSERT_EQUAL(
	    manifest_merge(&m, tfd, &l, -1, g_busy, g_skip, &g, &err), 0);
	listing_cleanup(&l);
	CU_ASSERT(exists(tree, "new.txt"));
	CU_ASSERT(exists(out, "") && !exists(out, "evil"));

	CU_ASSERT_EQUAL(m.fetched_bytes, walk_fetched(&m));
	manifest_cleanup(&m);
	close(tfd);
	tu_rm_rf(base);
	free(out);
	free(tree);
	free(base);
}

/* One file record with its server inode and link count. */
static size_t rec_ino(char *buf, size_t at, const char *ino, const char *nlink,
		      const char *path)
{
	const char *f[8] = {"f", "644", "3", "1700000000.5",
			    ino, nlink, "",  path};
	size_t i;

	for (i = 0; i < 8; i++) {
		size_t n = strlen(f[i]) + 1;

		memcpy(buf + at, f[i], n);
		at += n;
	}
	return at;
}

static ino_t ino_of(const char *dir, const char *name, nlink_t *nlink)
{
	struct stat st;
	char *p = tu_strf("%s/%s", dir, name);
	int r = lstat(p, &st);

	free(p);
	if (nlink)
		*nlink = r == 0 ? st.st_nlink : 0;
	return r == 0 ? st.st_ino : 0;
}

static void test_merge_links(void)
{
	char *base = tu_mkdtemp("manifest");
	char *tree = tu_strf("%s/tree", base);
	char buf[1024];
	struct manifest m;
	struct listing l;
	struct nox_err err;
	struct guard g = {0, NULL};
	nlink_t na, nb, nc;
	ino_t a;
	size_t n;
	int tfd;

	CU_ASSERT_FATAL(mkdir(tree, 0700) == 0);
	tfd = open(tree, O_PATH | O_DIRECTORY);
	CU_ASSERT_FATAL(tfd >= 0);
	CU_ASSERT_FATAL(manifest_init(&m) == 0);

	/* three names of server inode 7, one other file */
	n = rec_ino(buf, 0, "7", "3", "a");
	n = rec_ino(buf, n, "9", "1", "x");
	n = rec_ino(buf, n, "7", "3", "b");
	n = rec_ino(buf, n, "7", "3", "c");
	CU_ASSERT_FATAL(listing_parse_find(buf, n, &l, &err) == 0);
	CU_ASSERT_EQUAL(
	    manifest_merge(&m, tfd, &l, -1, g_busy, g_skip, &g, &err), 0);
	listing_cleanup(&l);
	a = ino_of(tree, "a", &na);
	CU_ASSERT(a != 0 && na == 3);
	CU_ASSERT(ino_of(tree, "b", &nb) == a && nb == 3);
	CU_ASSERT(ino_of(tree, "c", &nc) == a && nc == 3);
	CU_ASSERT(ino_of(tree, "x", NULL) != a);
	CU_ASSERT(manifest_get(&m, a) != NULL);

	/* the sandbox removed c and made b a file of its own */
	n = rec_ino(buf, 0, "7", "1", "a");
	n = rec_ino(buf, n, "8", "1", "b");
	n = rec_ino(buf, n, "9", "1", "x");
	CU_ASSERT_FATAL(listing_parse_find(buf, n, &l, &err) == 0);
	CU_ASSERT_EQUAL(
	    manifest_merge(&m, tfd, &l, -1, g_busy, g_skip, &g, &err), 0);
	listing_cleanup(&l);
	CU_ASSERT(ino_of(tree, "a", &na) == a && na == 1);
	CU_ASSERT(ino_of(tree, "b", &nb) != a && nb == 1);
	CU_ASSERT(!exists(tree, "c"));
	/* c's removal kept the file its other names have */
	CU_ASSERT(manifest_get(&m, a) != NULL);

	/* linked again: b becomes a's, unless b has local changes */
	g.busy = ino_of(tree, "b", NULL);
	n = rec_ino(buf, 0, "7", "2", "a");
	n = rec_ino(buf, n, "7", "2", "b");
	CU_ASSERT_FATAL(listing_parse_find(buf, n, &l, &err) == 0);
	CU_ASSERT_EQUAL(
	    manifest_merge(&m, tfd, &l, -1, g_busy, g_skip, &g, &err), 0);
	CU_ASSERT(ino_of(tree, "b", NULL) == g.busy);
	g.busy = 0;
	CU_ASSERT_EQUAL(
	    manifest_merge(&m, tfd, &l, -1, g_busy, g_skip, &g, &err), 0);
	listing_cleanup(&l);
	CU_ASSERT(ino_of(tree, "b", &nb) == a && nb == 2);
	CU_ASSERT(!exists(tree, "x"));

	CU_ASSERT_EQUAL(m.fetched_bytes, walk_fetched(&m));
	manifest_cleanup(&m);
	close(tfd);
	tu_rm_rf(base);
	free(tree);
	free(base);
}

static mode_t type_of(const char *dir, const char *name)
{
	struct stat st;
	char *p = tu_strf("%s/%s", dir, name);
	mode_t r = lstat(p, &st) == 0 ? st.st_mode : 0;

	free(p);
	return r;
}

/*
 * FIFOs and sockets (find's p and s) are mirrored as nodes of their type
 * with their mode, a file there becomes one, and a device (c, b) shows
 * as a file, never as a device.
 */
static void test_merge_types(void)
{
	char *base = tu_mkdtemp("manifest");
	char *tree = tu_strf("%s/tree", base);
	char buf[1024], *p;
	struct manifest m;
	struct listing l;
	struct nox_err err;
	struct guard g = {0, NULL};
	size_t n;
	int tfd, fd;

	CU_ASSERT_FATAL(mkdir(tree, 0700) == 0);
	tfd = open(tree, O_PATH | O_DIRECTORY);
	CU_ASSERT_FATAL(tfd >= 0);
	CU_ASSERT_FATAL(manifest_init(&m) == 0);
	p = tu_strf("%s/was-file", tree);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
	CU_ASSERT(fd >= 0 && close(fd) == 0);
	free(p);

	n = rec(buf, 0, "p", "640", "0", "", "fifo");
	n = rec(buf, n, "s", "755", "0", "", "sock");
	n = rec(buf, n, "p", "600", "0", "", "was-file");
	n = rec(buf, n, "c", "666", "0", "", "null");
	CU_ASSERT_FATAL(listing_parse_find(buf, n, &l, &err) == 0);
	CU_ASSERT_EQUAL(
	    manifest_merge(&m, tfd, &l, -1, g_busy, g_skip, &g, &err), 0);
	CU_ASSERT_EQUAL(type_of(tree, "fifo"), S_IFIFO | 0640);
	CU_ASSERT_EQUAL(type_of(tree, "sock"), S_IFSOCK | 0755);
	CU_ASSERT_EQUAL(type_of(tree, "was-file"), S_IFIFO | 0600);
	CU_ASSERT_EQUAL(type_of(tree, "null"), S_IFREG | 0666);
	/* the same listing again changes nothing; a mode change is kept */
	l.v[0].mode = 0600;
	CU_ASSERT_EQUAL(
	    manifest_merge(&m, tfd, &l, -1, g_busy, g_skip, &g, &err), 0);
	listing_cleanup(&l);
	CU_ASSERT_EQUAL(type_of(tree, "fifo"), S_IFIFO | 0600);

	CU_ASSERT_EQUAL(m.fetched_bytes, walk_fetched(&m));
	manifest_cleanup(&m);
	close(tfd);
	tu_rm_rf(base);
	free(tree);
	free(base);
}

/*
 * The running total of fetched bytes (the cache bound's check before a
 * download reads it instead of walking the manifest) against a walk,
 * after 20,000 random sets, marks and deletions, past the table's growth.
 */
static void test_fetched_total(void)
{
	struct manifest m;
	unsigned seed = 12345;
	int i, bad = 0;

	CU_ASSERT_FATAL(manifest_init(&m) == 0);
	for (i = 0; i < 20000; i++) {
		ino_t ino = (ino_t)(rand_r(&seed) % 5000 + 1);
		off_t size = rand_r(&seed) % 100000;
		struct ment *e;

		switch (rand_r(&seed) % 4) {
		case 0:
		case 1:
			CU_ASSERT_FATAL(manifest_set(&m, ino, size, i,
						     rand_r(&seed) % 2) !=
					NULL);
			break;
		case 2:
			e = manifest_get(&m, ino);
			if (e)
				manifest_mark(&m, e, !e->fetched, size);
			break;
		default:
			manifest_del(&m, ino);
		}
		if (m.fetched_bytes != walk_fetched(&m))
			bad++;
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT(m.count > 1024); /* the table grew on the way */
	manifest_cleanup(&m);
	CU_ASSERT_EQUAL(m.fetched_bytes, 0);
}

/*
 * The table against a plain array, through 200,000 random sets and
 * deletions over 30,000 inode numbers (the index grows past 2^16 and
 * deletions shift runs of it back): every entry found with its fields,
 * none found that was deleted, the walk sees each once, and an entry's
 * address holds while others come and go.
 */
static void test_table_model(void)
{
	enum { N = 30000 };
	static int64_t want[N + 1]; /* rmtime + 1, 0: absent */
	struct manifest m;
	struct ment *held, *e;
	unsigned seed = 777;
	size_t pos = 0, seen = 0, count = 0;
	int i, bad = 0;

	CU_ASSERT_FATAL(manifest_init(&m) == 0);
	memset(want, 0, sizeof(want));
	held = manifest_set(&m, (ino_t)N + 7, 1, 1, false);
	CU_ASSERT_FATAL(held != NULL);
	for (i = 0; i < 200000; i++) {
		/* inode numbers in runs, as a file system hands them out */
		ino_t ino = (ino_t)(rand_r(&seed) % N + 1);

		if (rand_r(&seed) % 3) {
			CU_ASSERT_FATAL(manifest_set(&m, ino, 1, i, true) !=
					NULL);
			want[ino] = i + 1;
		} else {
			manifest_del(&m, ino);
			want[ino] = 0;
		}
	}
	for (i = 1; i <= N; i++) {
		e = manifest_get(&m, (ino_t)i);
		if (want[i] ? !e || e->ino != (ino_t)i ||
				  e->rmtime != want[i] - 1
			    : e != NULL)
			bad++;
		count += want[i] != 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(m.count, count + 1);
	while ((e = manifest_next(&m, &pos)) != NULL)
		seen++;
	CU_ASSERT_EQUAL(seen, count + 1);
	CU_ASSERT(manifest_get(&m, (ino_t)N + 7) == held);
	CU_ASSERT_EQUAL(held->ino, (ino_t)N + 7);
	CU_ASSERT(m.icap >= 2 * m.count);
	manifest_cleanup(&m);
}

/* A merge begun and given two pages: "d", then "d/new". */
static struct merge *two_pages(struct manifest *m, int tfd, struct guard *g)
{
	static const char *const paths[] = {"d", "d/new"};
	static const char *const types[] = {"d", "f"};
	struct nox_err err;
	struct merge *run;
	struct listing l;
	char buf[256];
	size_t i, n;

	CU_ASSERT_FATAL(
	    manifest_merge_begin(&run, m, tfd, -1, g_busy, g_skip, g) == 0);
	for (i = 0; i < 2; i++) {
		n = rec(buf, 0, types[i], "755", "5", "", paths[i]);
		CU_ASSERT_FATAL(listing_parse_find(buf, n, &l, &err) == 0);
		CU_ASSERT_EQUAL(manifest_merge_part(run, &l, &err), 0);
		listing_cleanup(&l);
	}
	return run;
}

/*
 * A merge in parts (a paged listing): entries of every part appear at
 * once; only a whole listing removes what the server no longer has, and
 * a path in any part counts as the server's.
 */
static void test_merge_parts(void)
{
	char *base = tu_mkdtemp("manifest");
	char *tree = tu_strf("%s/tree", base);
	struct guard g = {0, NULL};
	struct manifest m;
	struct listing l;
	struct nox_err err;
	struct merge *run;
	char buf[2048];
	size_t n;
	int tfd;

	CU_ASSERT_FATAL(mkdir(tree, 0700) == 0);
	tfd = open(tree, O_PATH | O_DIRECTORY);
	CU_ASSERT_FATAL(tfd >= 0);
	CU_ASSERT_FATAL(manifest_init(&m) == 0);
	n = rec(buf, 0, "d", "755", "0", "", "d");
	n = rec(buf, n, "f", "644", "3", "", "d/old");
	n = rec(buf, n, "f", "644", "4", "", "gone");
	CU_ASSERT_FATAL(listing_parse_find(buf, n, &l, &err) == 0);
	CU_ASSERT_EQUAL(
	    manifest_merge(&m, tfd, &l, -1, g_busy, g_skip, &g, &err), 0);
	listing_cleanup(&l);
	CU_ASSERT(exists(tree, "d/old") && exists(tree, "gone"));

	/* pages: "d" then "d/new"; "d/old" and "gone" are not listed */
	run = two_pages(&m, tfd, &g);
	CU_ASSERT(exists(tree, "d/new")); /* at once, before the end */
	CU_ASSERT_EQUAL(manifest_merge_count(run), 2);
	/* a listing cut short (a later page failed) removes nothing */
	manifest_merge_end(run, false);
	CU_ASSERT(exists(tree, "d/old") && exists(tree, "gone"));

	/* the same pages, whole: what no page had is removed */
	run = two_pages(&m, tfd, &g);
	manifest_merge_end(run, true);
	CU_ASSERT(exists(tree, "d/new"));
	CU_ASSERT(!exists(tree, "d/old") && !exists(tree, "gone"));
	CU_ASSERT_EQUAL(m.fetched_bytes, walk_fetched(&m));

	manifest_cleanup(&m);
	close(tfd);
	tu_rm_rf(base);
	free(tree);
	free(base);
}

int main(void)
{
	static const struct tu_test tests[] = {
	    {"find listings: hostile records refused", test_parse_hostile},
	    {"merge: planted links, busy and pending paths",
	     test_merge_hostile},
	    {"merge: hard links grouped by server inode, split, kept",
	     test_merge_links},
	    {"merge: FIFOs and sockets mirrored, devices as files",
	     test_merge_types},
	    {"fetched bytes: the running total matches a walk",
	     test_fetched_total},
	    {"table: 200,000 random sets and deletions against an array",
	     test_table_model},
	    {"merge in parts: pages merged at once, pruned when whole",
	     test_merge_parts},
	    {NULL, NULL}};

	return tu_main("manifest", tests);
}
