/*
 * test_journal.c - the cache layer's on-disk journal (src/fs/journal.c):
 * entries written, closed and read back in order with every field; lazy
 * entries that reach the disk only when persisted; what a crash leaves
 * (a half-written temporary, an op file cut short or garbled, an upload
 * whose snapshot is missing) is set aside, never replayed half-read; and
 * the dirty markers that outlive the daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "../../src/fs/journal.h"
#include "testutil.h"

static char *dir;

static int jdir(void)
{
	return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void jopen(struct journal *j)
{
	struct nox_err err;
	int r;

	nox_err_clear(&err);
	r = journal_open(j, jdir(), &err);
	CU_ASSERT_EQUAL_FATAL(r, 0);
}

static bool exists(const char *name)
{
	char *p = tu_strf("%s/%s", dir, name);
	struct stat st;
	bool yes = lstat(p, &st) == 0;

	free(p);
	return yes;
}

static char *seq_file(uint64_t seq, const char *ext)
{
	return tu_strf("%020llu.%s", (unsigned long long)seq, ext);
}

/* A file holding data, opened for reading at offset 0. */
static int data_fd(const char *data)
{
	char *p = tu_strf("%s/../src", dir);
	int fd;

	CU_ASSERT_EQUAL(tu_write_file(p, data, strlen(data)), 0);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	unlink(p);
	free(p);
	return fd;
}

/* Writes (fsynced) and links a new entry; returns it. */
static struct jent *put(struct journal *j, enum jop op, const char *path,
			const char *path2, const char *data)
{
	struct jent *e = journal_entry_new(j, op, path, path2);
	struct nox_err err;
	int fd = data ? data_fd(data) : -1;

	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	e->mode = 0640;
	e->num = 7;
	e->atime_ns = -2;
	e->mtime_ns = 1700000000123456789ll;
	e->ino = 42;
	CU_ASSERT_EQUAL(journal_write(j, e, fd, true, &err), 0);
	if (fd >= 0)
		close(fd);
	journal_link(j, e);
	return e;
}

static void setup(void)
{
	char *base = tu_mkdtemp("journal");

	dir = tu_strf("%s/journal", base);
	free(base);
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
}

static void teardown(void)
{
	char *base = tu_strf("%s/..", dir);

	tu_rm_rf(base);
	free(base);
	free(dir);
	dir = NULL;
}

/* Entries come back after a close in the order written, every field. */
static void test_replay_order(void)
{
	static const enum jop ops[] = {J_MKDIR,	  J_UPLOAD,  J_RENAME,
				       J_CHMOD,	  J_UNLINK,  J_UTIMENS,
				       J_SYMLINK, J_TRUNCATE};
	struct journal j;
	struct jent *e;
	uint64_t last = 0;
	size_t i;
	char buf[64];
	ssize_t n;
	int fd;

	setup();
	jopen(&j);
	CU_ASSERT_PTR_NULL(journal_first(&j));
	CU_ASSERT_EQUAL(journal_last_seq(&j), 0);
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		char *p = tu_strf("d/f%zu with space\nnl", i);

		e = put(&j, ops[i], p,
			ops[i] == J_RENAME || ops[i] == J_SYMLINK ? "to/x"
								  : NULL,
			ops[i] == J_UPLOAD ? "hello" : NULL);
		CU_ASSERT(e->seq > last);
		last = e->seq;
		free(p);
	}
	CU_ASSERT_EQUAL(journal_count(&j), 8);
	CU_ASSERT_EQUAL(journal_last_seq(&j), last);
	CU_ASSERT_EQUAL(journal_last_seq_of(&j, 42), last);
	CU_ASSERT_EQUAL(journal_last_seq_of(&j, 43), 0);
	journal_close(&j);

	jopen(&j);
	CU_ASSERT_EQUAL(journal_count(&j), 8);
	for (i = 0, e = journal_first(&j); e; e = journal_next(e), i++) {
		char *p = tu_strf("d/f%zu with space\nnl", i);

		CU_ASSERT_EQUAL(e->op, ops[i]);
		CU_ASSERT_STRING_EQUAL(e->path, p);
		if (ops[i] == J_RENAME || ops[i] == J_SYMLINK)
			CU_ASSERT_STRING_EQUAL(e->path2, "to/x");
		CU_ASSERT_EQUAL(e->mode, 0640);
		CU_ASSERT_EQUAL(e->num, 7);
		CU_ASSERT_EQUAL(e->atime_ns, -2);
		CU_ASSERT_EQUAL(e->mtime_ns, 1700000000123456789ll);
		CU_ASSERT_EQUAL(e->ino, 42);
		CU_ASSERT_FALSE(e->lazy);
		if (ops[i] == J_UPLOAD) {
			CU_ASSERT_EQUAL(e->size, 5);
			fd = journal_data_open(&j, e);
			CU_ASSERT_FATAL(fd >= 0);
			n = read(fd, buf, sizeof(buf));
			CU_ASSERT_EQUAL(n, 5);
			CU_ASSERT_EQUAL(memcmp(buf, "hello", 5), 0);
			close(fd);
		}
		free(p);
	}
	CU_ASSERT_EQUAL(i, 8);
	/* a new entry after a reopen sorts after every old one */
	e = put(&j, J_RMDIR, "d", NULL, NULL);
	CU_ASSERT(e->seq > last);
	journal_close(&j);
	teardown();
}

/* A popped entry's files go; the rest replay without it. */
static void test_pop(void)
{
	struct journal j;
	struct jent *a, *b;
	char *op, *data;
	uint64_t bseq;

	setup();
	jopen(&j);
	a = put(&j, J_UPLOAD, "a", NULL, "x");
	b = put(&j, J_UNLINK, "b", NULL, NULL);
	bseq = b->seq;
	op = seq_file(a->seq, "op");
	data = seq_file(a->seq, "data");
	CU_ASSERT(exists(op) && exists(data));
	journal_pop(&j, b); /* not the head: refused */
	CU_ASSERT_EQUAL(journal_count(&j), 2);
	journal_pop(&j, a);
	CU_ASSERT_FALSE(exists(op));
	CU_ASSERT_FALSE(exists(data));
	CU_ASSERT_EQUAL(journal_count(&j), 1);
	journal_close(&j);
	jopen(&j);
	CU_ASSERT_EQUAL(journal_count(&j), 1);
	CU_ASSERT_EQUAL(journal_first(&j)->seq, bseq);
	journal_close(&j);
	free(op);
	free(data);
	teardown();
}

/* A lazy entry is in memory only until persisted. */
static void test_lazy(void)
{
	struct journal j;
	struct nox_err err;
	struct jent *e;
	char *op;
	int fd;

	setup();
	jopen(&j);
	e = journal_entry_new(&j, J_UPLOAD, "small", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	fd = data_fd("tiny");
	CU_ASSERT_EQUAL(journal_write_lazy(&j, e, fd, &err), 0);
	close(fd);
	journal_link(&j, e);
	CU_ASSERT_TRUE(e->lazy);
	CU_ASSERT_EQUAL(e->size, 4);
	op = seq_file(e->seq, "op");
	CU_ASSERT_FALSE(exists(op));
	/* its snapshot is what was read at write time */
	CU_ASSERT_EQUAL(journal_persist(&j, e, true), 0);
	CU_ASSERT_FALSE(e->lazy);
	CU_ASSERT_TRUE(exists(op));
	journal_close(&j);
	jopen(&j);
	e = journal_first(&j);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_STRING_EQUAL(e->path, "small");
	CU_ASSERT_EQUAL(e->size, 4);
	journal_close(&j);

	/* not persisted: gone with the daemon (its dirty marker is what
	 * a crash leaves, see test_marks) */
	jopen(&j);
	e = journal_entry_new(&j, J_CHMOD, "lost", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL(journal_write_lazy(&j, e, -1, &err), 0);
	journal_link(&j, e);
	CU_ASSERT_EQUAL(journal_count(&j), 2);
	journal_close(&j);
	jopen(&j);
	CU_ASSERT_EQUAL(journal_count(&j), 1);
	journal_close(&j);
	free(op);
	teardown();
}

/* What a crash leaves is cleaned or set aside; good entries replay. */
/*
 * Write-back entries are written without an fsync (unsynced) and are
 * read back all the same; journal_sync fsyncs them once, lazy or not.
 */
static void test_unsynced(void)
{
	struct journal j;
	struct nox_err err;
	struct jent *e, *l;
	int fd;

	setup();
	jopen(&j);
	e = journal_entry_new(&j, J_UPLOAD, "wb", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	fd = data_fd("data");
	CU_ASSERT_EQUAL(journal_write(&j, e, fd, false, &err), 0);
	close(fd);
	journal_link(&j, e);
	CU_ASSERT_TRUE(e->unsynced);
	CU_ASSERT_FALSE(e->lazy);
	l = journal_entry_new(&j, J_CHMOD, "lz", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	CU_ASSERT_EQUAL(journal_write_lazy(&j, l, -1, &err), 0);
	journal_link(&j, l);
	journal_sync(&j, e);
	journal_sync(&j, l);
	CU_ASSERT_FALSE(e->unsynced);
	CU_ASSERT_FALSE(l->unsynced);
	CU_ASSERT_FALSE(l->lazy); /* written, fsynced */
	journal_close(&j);
	jopen(&j);
	CU_ASSERT_EQUAL(journal_count(&j), 2);
	e = journal_first(&j);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_STRING_EQUAL(e->path, "wb");
	CU_ASSERT_EQUAL(e->size, 4);
	journal_close(&j);
	teardown();
}

static void test_crash_leftovers(void)
{
	struct journal j;
	struct jent *a, *b, *c;
	uint64_t cseq;
	char *bop, *bbad, *cdata, *cop, *cbad, *p;
	uint64_t aseq;

	setup();
	jopen(&j);
	a = put(&j, J_MKDIR, "a", NULL, NULL);
	b = put(&j, J_RENAME, "b", "c", NULL);
	c = put(&j, J_UPLOAD, "c", NULL, "data");
	aseq = a->seq;
	bop = seq_file(b->seq, "op");
	bbad = seq_file(b->seq, "bad");
	cop = seq_file(c->seq, "op");
	cbad = seq_file(c->seq, "bad");
	cdata = seq_file(c->seq, "data");
	cseq = c->seq;
	journal_close(&j);

	/* b's op file cut short, c's snapshot missing, a temporary of an
	 * interrupted write */
	p = tu_strf("%s/%s", dir, bop);
	CU_ASSERT_EQUAL(truncate(p, 6), 0);
	free(p);
	p = tu_strf("%s/%s", dir, cdata);
	CU_ASSERT_EQUAL(unlink(p), 0);
	free(p);
	p = tu_strf("%s/tmp-00000000000000000099.op", dir);
	CU_ASSERT_EQUAL(tu_write_file(p, "nj1\0up", 6), 0);
	free(p);

	jopen(&j);
	CU_ASSERT_EQUAL(journal_count(&j), 1);
	CU_ASSERT_EQUAL(journal_first(&j)->seq, aseq);
	CU_ASSERT_TRUE(exists(bbad));
	CU_ASSERT_FALSE(exists(bop));
	CU_ASSERT_TRUE(exists(cbad));
	CU_ASSERT_FALSE(exists(cop));
	/* sequence numbers are never reused, even of entries set aside */
	a = journal_entry_new(&j, J_RMDIR, "x", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT(a->seq > cseq);
	journal_entry_free(a);
	journal_close(&j);
	free(bop);
	free(bbad);
	free(cop);
	free(cbad);
	free(cdata);
	teardown();
}

/* An entry the server refuses keeps its data as failed-SEQ.data. */
static void test_set_aside(void)
{
	struct journal j;
	struct nox_err err;
	struct jent *e;
	struct stat st;
	char name[40], *failed;
	int fd, dfd;

	setup();
	jopen(&j);
	e = journal_entry_new(&j, J_UPLOAD, "big", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	fd = data_fd("refused");
	CU_ASSERT_EQUAL(journal_write_lazy(&j, e, fd, &err), 0);
	close(fd);
	journal_link(&j, e);
	dfd = journal_data_at(&j, e, name, sizeof(name));
	CU_ASSERT(dfd >= 0);
	failed = tu_strf("failed-%s", name);
	journal_set_aside(&j, e);
	CU_ASSERT_TRUE(exists(failed));
	CU_ASSERT_FALSE(exists(name));
	CU_ASSERT_EQUAL(journal_data_stat(&j, e, &st), -ENOENT);
	journal_pop(&j, e);
	CU_ASSERT_TRUE(exists(failed));
	journal_close(&j);
	free(failed);
	teardown();
}

static void mark_cb(ino_t ino, void *ud)
{
	unsigned *seen = ud;

	if (ino >= 1 && ino <= 4)
		*seen |= 1u << ino;
	else
		*seen |= 1u << 31;
}

/* Dirty markers survive a close; cleared ones do not. */
static void test_marks(void)
{
	struct journal j;
	unsigned seen = 0;
	int i;

	setup();
	jopen(&j);
	CU_ASSERT_EQUAL(journal_mark_dirty(&j, 1), 0);
	CU_ASSERT_EQUAL(journal_mark_dirty(&j, 2), 0);
	CU_ASSERT_EQUAL(journal_mark_dirty(&j, 3), 0);
	journal_clear_dirty(&j, 2);
	/* many changes of one marker: the log is compacted, not grown */
	for (i = 0; i < 1000; i++) {
		CU_ASSERT_EQUAL(journal_mark_dirty(&j, 4), 0);
		journal_clear_dirty(&j, 4);
	}
	journal_close(&j);
	jopen(&j);
	CU_ASSERT_EQUAL(journal_dirty_each(&j, mark_cb, &seen), 0);
	CU_ASSERT_EQUAL(seen, (1u << 1) | (1u << 3));
	journal_close(&j);
	{
		char *p = tu_strf("%s/dirty", dir);
		struct stat st;

		CU_ASSERT_EQUAL(stat(p, &st), 0);
		CU_ASSERT(st.st_size < 4096);
		free(p);
	}
	teardown();
}

/* A journal never opened can be closed (its owner's error paths). */
static void test_init_close(void)
{
	struct journal j;

	journal_init(&j);
	CU_ASSERT_PTR_NULL(journal_first(&j));
	CU_ASSERT_EQUAL(journal_count(&j), 0);
	journal_close(&j);
}

int main(void)
{
	static const struct tu_test tests[] = {
	    {"replay in order, every field", test_replay_order},
	    {"pop removes the files", test_pop},
	    {"lazy entries reach the disk when persisted", test_lazy},
	    {"write-back entries fsynced once, later", test_unsynced},
	    {"crash leftovers set aside", test_crash_leftovers},
	    {"refused data kept as failed-", test_set_aside},
	    {"dirty markers survive", test_marks},
	    {"init then close", test_init_close},
	    {NULL, NULL}};

	return tu_main("journal", tests);
}
