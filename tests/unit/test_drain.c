/*
 * test_drain.c - the cache layer's drain order, driven through its hooks
 * (fs_http_hooks) against a recording backend, without a mount or a
 * server: a run of uploads is one tar; a rename or unlink ends a run, so
 * nothing journaled before it is uploaded after it, and nothing after it
 * before it, except a rename of a file the run itself creates (an
 * editor's save), which folds into the tar.  Also: the exec barrier's snapshot
 * of a file still open goes under the name it has now, after renames of it and
 * of its directory; an open file unlinked is not sent.
 *
 * The backend speaks v1 only (no nox.fs), so metadata operations go as
 * one script exec; each request is recorded as one line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "../../src/fs/cache_i.h"
#include "../../src/lib/backend_i.h"
#include "testutil.h"

#define ID "drain-test"

/* ---- the recording backend ----------------------------------------- */

static char *log_buf; /* one line per request */
static char *tmp_base;

static void log_line(const char *s)
{
	size_t o = log_buf ? strlen(log_buf) : 0, n = strlen(s);
	char *nb = realloc(log_buf, o + n + 2);

	CU_ASSERT_PTR_NOT_NULL_FATAL(nb);
	memcpy(nb + o, s, n);
	nb[o + n] = '\n';
	nb[o + n + 1] = '\0';
	log_buf = nb;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds "rel=content" of every regular file below dir/rel to names. */
static void walk(const char *dir, const char *rel, char **names, size_t *n)
{
	char *p = *rel ? tu_strf("%s/%s", dir, rel) : tu_strf("%s", dir);
	struct dirent *d;
	DIR *dp = opendir(p);

	while (dp && (d = readdir(dp)) != NULL && *n < 64) {
		char *r, *full;
		struct stat st;

		if (d->d_name[0] == '.')
			continue;
		r = *rel ? tu_strf("%s/%s", rel, d->d_name)
			 : tu_strf("%s", d->d_name);
		full = tu_strf("%s/%s", dir, r);
		if (lstat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
			walk(dir, r, names, n);
		} else {
			char *c = tu_read_file(full, NULL);

			names[(*n)++] = tu_strf("%s=%s", r, c ? c : "?");
			free(c);
		}
		free(full);
		free(r);
	}
	if (dp)
		closedir(dp);
	free(p);
}

/* "tar:" and the regular files of the tar, "path=content", sorted. */
static int fake_upload(struct nox_backend *b, const char *id, const char *dest,
		       int tar_fd, long answer_ms, struct nox_err *err)
{
	(void)answer_ms;
	char *x = tu_strf("%s/x", tmp_base), line[4096] = "tar:";
	char *names[64];
	size_t n = 0, i, at = 4;
	int dfd;

	(void)b;
	(void)id;
	(void)dest;
	tu_rm_rf(x);
	CU_ASSERT_EQUAL_FATAL(mkdir(x, 0700), 0);
	dfd = open(x, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CU_ASSERT_EQUAL(nox_tar_extract(tar_fd, dfd, NULL, err), 0);
	close(dfd);
	walk(x, "", names, &n);
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (i = 0; i < n; i++) {
		int w = snprintf(line + at, sizeof(line) - at, "%s%s",
				 i ? "," : "", names[i]);

		if (w > 0 && (size_t)w < sizeof(line) - at)
			at += (size_t)w;
		free(names[i]);
	}
	log_line(line);
	tu_rm_rf(x);
	free(x);
	return 0;
}

/* "ops:" and the steps of the metadata script. */
static int fake_exec(struct nox_backend *b, const char *id,
		     const struct nox_exec_req *req,
		     struct nox_exec_result *res, struct nox_err *err)
{
	char line[4096] = "ops:";
	size_t i;

	(void)b;
	(void)id;
	(void)err;
	CU_ASSERT_STRING_EQUAL(req->argv[3], "noxfs-ops");
	for (i = 4; req->argv[i]; i++) {
		strncat(line, " ", sizeof(line) - strlen(line) - 1);
		strncat(line, req->argv[i], sizeof(line) - strlen(line) - 1);
	}
	log_line(line);
	memset(res, 0, sizeof(*res));
	return 0;
}

static int fake_info(struct nox_backend *b, const char *id,
		     struct nox_sandbox_info *info, struct nox_err *err)
{
	(void)b;
	(void)id;
	(void)err;
	memset(info, 0, sizeof(*info));
	return 0;
}

static const struct nox_backend_ops fake_ops = {
    .name = "fake",
    .exec = fake_exec,
    .upload = fake_upload,
    .info = fake_info,
};

/* ---- a sandbox on the cache layer, with nodes made by hand ---------- */

static struct nox_backend be = {.ops = &fake_ops};
static struct fs fs;
static struct fs_sandbox sb;
static struct fs_node root;
static int tree_fd;

static void attach(void)
{
	struct nox_err err;

	tmp_base = tu_mkdtemp("drain");
	memset(&fs, 0, sizeof(fs));
	memset(&sb, 0, sizeof(sb));
	fs.be = &be;
	fs.hooks = &fs_http_hooks;
	fs.opts.cache_dir = tu_strf("%s/cache", tmp_base);
	fs.opts.url = "http://127.0.0.1:1";
	/* write-back with a long delay: nothing is sent before the flush,
	 * so the journal holds the whole sequence */
	fs.opts.writeback_delay = 600000;
	pthread_mutex_init(&fs.table.mutex, NULL);
	sb.fs = &fs;
	snprintf(sb.id, sizeof(sb.id), "%s", ID);
	sb.hooks = &fs_http_hooks;
	pthread_mutex_init(&sb.mutex, NULL);
	nox_err_clear(&err);
	tree_fd = fs_http_hooks.attach(&sb, &err);
	CU_ASSERT_FATAL(tree_fd >= 0);
	memset(&root, 0, sizeof(root));
	root.kind = FS_SANDBOX;
	root.sb = &sb;
	root.fd = tree_fd;
	root.type = S_IFDIR;
}

static void detach(void)
{
	fs_http_hooks.detach(&sb);
	close(tree_fd);
	pthread_mutex_destroy(&sb.mutex);
	pthread_mutex_destroy(&fs.table.mutex);
	tu_rm_rf(tmp_base);
	free(tmp_base);
	free(fs.opts.cache_dir);
	free(log_buf);
	log_buf = NULL;
}

/* The node of tree path name under parent (as a lookup makes it). */
static struct fs_node *node(struct fs_node *parent, const char *name)
{
	struct fs_node *n = calloc(1, sizeof(*n));
	struct stat st;

	CU_ASSERT_PTR_NOT_NULL_FATAL(n);
	n->kind = FS_WS;
	n->sb = &sb;
	n->fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	CU_ASSERT_FATAL(n->fd >= 0);
	CU_ASSERT_EQUAL(fstat(n->fd, &st), 0);
	n->sino = st.st_ino;
	n->dev = st.st_dev;
	n->type = st.st_mode & S_IFMT;
	n->parent = parent;
	n->name = strdup(name);
	return n;
}

static void node_free(struct fs_node *n)
{
	close(n->fd);
	free(n->name);
	free(n);
}

/* One metadata operation as ops.c runs it: change, note, end. */
static void op_run(struct fs_op *op, int change)
{
	fs_sandbox_op_begin(&sb, op);
	CU_ASSERT_EQUAL(change, 0);
	if (change == 0)
		fs_op_note(&sb, op);
	fs_sandbox_op_end(&sb, op);
}

/* Creates name in dir (journaled), writes data through an open handle
 * (note_write), closes it (on_close) unless keep; its node. */
static struct fs_node *write_file(struct fs_node *dir, const char *name,
				  const char *data, bool keep)
{
	struct fs_op op = {.kind = FS_OP_CREATE, .dir = dir, .name = name};
	struct fs_node *n;
	int fd, r;

	fs_sandbox_op_begin(&sb, &op);
	fd = openat(dir->fd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
		    0644);
	CU_ASSERT_FATAL(fd >= 0);
	fs_op_note(&sb, &op);
	fs_sandbox_op_end(&sb, &op);
	n = node(dir, name);
	fs_sandbox_note_write(&sb, n);
	CU_ASSERT_EQUAL(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
	if (!keep) {
		r = fs_sandbox_on_close(&sb, n, -1, false);
		CU_ASSERT_EQUAL(r, 0);
	}
	return n;
}

static void rename_node(struct fs_node *n, struct fs_node *from,
			const char *name, struct fs_node *to,
			const char *newname)
{
	struct fs_op op = {.kind = FS_OP_RENAME,
			   .dir = from,
			   .name = name,
			   .dir2 = to,
			   .name2 = newname};

	fs_sandbox_op_begin(&sb, &op);
	CU_ASSERT_EQUAL(renameat(from->fd, name, to->fd, newname), 0);
	/* the core's names follow (ops.c: renamed()) */
	free(n->name);
	n->name = strdup(newname);
	n->parent = to;
	fs_op_note(&sb, &op);
	fs_sandbox_op_end(&sb, &op);
}

static void flush(void)
{
	struct nox_err err;

	nox_err_clear(&err);
	CU_ASSERT_EQUAL(fs_sandbox_flush(&sb, &err), 0);
}

static void expect_log(const char *want)
{
	CU_ASSERT_STRING_EQUAL(log_buf ? log_buf : "", want);
	if (strcmp(log_buf ? log_buf : "", want) != 0)
		fprintf(stderr, "\nrequests:\n%s\nwanted:\n%s", log_buf, want);
}

/*
 * A rename of a name the server has, or an unlink, ends a run of
 * uploads; order is kept.
 */
static void test_runs_end_at_rename(void)
{
	struct fs_node *a, *a2, *c, *d, *e;
	struct fs_op op;

	attach();
	a = write_file(&root, "a", "v1", false);
	flush();
	expect_log("tar:a=v1\n");
	free(log_buf);
	log_buf = NULL;
	rename_node(a, &root, "a", &root, "b");
	a2 = write_file(&root, "a", "v2", false);
	memset(&op, 0, sizeof(op));
	op.kind = FS_OP_UNLINK;
	op.dir = &root;
	op.name = "b";
	op_run(&op, unlinkat(tree_fd, "b", 0));
	c = write_file(&root, "c", "x", false);
	d = write_file(&root, "d", "y", false);
	memset(&op, 0, sizeof(op));
	op.kind = FS_OP_MKDIR;
	op.dir = &root;
	op.name = "sub";
	op_run(&op, mkdirat(tree_fd, "sub", 0755));
	e = write_file(&root, "e", "z", false);
	CU_ASSERT_PTR_NULL(log_buf); /* nothing sent before the flush */
	flush();
	/* the rename, the uploads after it up to the unlink, the unlink,
	 * then one tar of the rest (a mkdir is packed with them) */
	expect_log("ops: rename a b\n"
		   "tar:a=v2\n"
		   "ops: unlink b\n"
		   "tar:c=x,d=y,e=z\n");
	node_free(a);
	node_free(a2);
	node_free(c);
	node_free(d);
	node_free(e);
	detach();
}

/*
 * Editor saves (write a temp file, rename it over the target) of files
 * the batch creates fold into it: one tar with the targets' last
 * content and no temp file, and no script.  A temp name made again
 * after its rename is a new file of the batch; a rename of a name the
 * server had still ends the run.
 */
static void test_editor_saves_fold(void)
{
	struct fs_node *t[3], *doc, *o, *n;
	char data[16];
	int i;

	attach();
	doc = write_file(&root, "doc", "v0", false);
	o = write_file(&root, "other", "o", false);
	flush();
	expect_log("tar:doc=v0,other=o\n");
	free(log_buf);
	log_buf = NULL;
	for (i = 0; i < 3; i++) {
		snprintf(data, sizeof(data), "s%d", i + 1);
		t[i] = write_file(&root, "doc.tmp", data, false);
		rename_node(t[i], &root, "doc.tmp", &root, "doc");
	}
	/* a save into a name the server may have: the second rename must
	 * remove that name there, so it is a step of the script */
	n = write_file(&root, "n.tmp", "new", false);
	rename_node(n, &root, "n.tmp", &root, "n2");
	rename_node(n, &root, "n2", &root, "n3");
	/* other is on the server: its rename ends the run */
	rename_node(o, &root, "other", &root, "other2");
	CU_ASSERT_PTR_NULL(log_buf);
	flush();
	expect_log("tar:doc=s3,n2=new\n"
		   "ops: rename n2 n3 rename other other2\n");
	for (i = 0; i < 3; i++)
		node_free(t[i]);
	node_free(n);
	node_free(doc);
	node_free(o);
	detach();
}

/*
 * The barrier's snapshot of open files: a file still open goes under the
 * name it has after its own rename and its directory's; a file unlinked
 * while open is not sent.
 */
static void test_barrier_open_files(void)
{
	struct fs_node *dir, *f, *g;
	struct fs_op op;

	attach();
	memset(&op, 0, sizeof(op));
	op.kind = FS_OP_MKDIR;
	op.dir = &root;
	op.name = "d1";
	op_run(&op, mkdirat(tree_fd, "d1", 0755));
	dir = node(&root, "d1");
	f = write_file(dir, "f", "open-data", true);
	g = write_file(&root, "g", "gone", true);
	flush();
	free(log_buf);
	log_buf = NULL;

	rename_node(f, dir, "f", dir, "f2");
	rename_node(dir, &root, "d1", &root, "d2");
	flush();
	expect_log("ops: rename d1/f d1/f2 rename d1 d2\n"
		   "tar:d2/f2=open-data,g=gone\n");
	/* found by the name it kept, not by a walk of the tree */
	CU_ASSERT_EQUAL(((struct cache *)sb.cache)->walks, 0);
	free(log_buf);
	log_buf = NULL;

	memset(&op, 0, sizeof(op));
	op.kind = FS_OP_UNLINK;
	op.dir = &root;
	op.name = "g";
	op_run(&op, unlinkat(tree_fd, "g", 0));
	flush();
	expect_log("ops: unlink g\n"
		   "tar:d2/f2=open-data\n");
	CU_ASSERT_EQUAL(fs_sandbox_on_close(&sb, f, -1, false), 0);
	CU_ASSERT_EQUAL(fs_sandbox_on_close(&sb, g, -1, false), 0);
	node_free(f);
	node_free(g);
	node_free(dir);
	detach();
}

/*
 * Write-back: an editor's save whose temp file was already sent (an
 * fsync, here a flush) sends the rename as an upload of the target; the
 * temp name's removal folds into the next save's tar, which creates it
 * again; the last one is a step of the script.  A rename to a new name
 * is still a rename.
 */
static void test_sent_save_as_upload(void)
{
	struct fs_node *doc, *t1, *t2, *m;

	attach();
	doc = write_file(&root, "doc", "v0", false);
	flush();
	t1 = write_file(&root, "doc.tmp", "s1", false);
	flush();
	rename_node(t1, &root, "doc.tmp", &root, "doc");
	t2 = write_file(&root, "doc.tmp", "s2", false);
	flush();
	rename_node(t2, &root, "doc.tmp", &root, "doc");
	flush();
	expect_log("tar:doc=v0\n"
		   "tar:doc.tmp=s1\n"
		   "tar:doc.tmp=s2,doc=s1\n"
		   "tar:doc=s2\n"
		   "ops: unlink doc.tmp\n");
	free(log_buf);
	log_buf = NULL;
	m = write_file(&root, "m", "x", false);
	flush();
	rename_node(m, &root, "m", &root, "m2");
	flush();
	expect_log("tar:m=x\n"
		   "ops: rename m m2\n");
	node_free(doc);
	node_free(t1);
	node_free(t2);
	node_free(m);
	detach();
}

/* cache_put_gzip_level: random bytes go stored, text and holes
 * compressed, small files at level 1 whatever they hold. */
static void test_gzip_level(void)
{
	static char buf[2 << 20];
	FILE *r = fopen("/dev/urandom", "rb");
	char path[] = "/tmp/noxfs-level.XXXXXX";
	int fd = mkstemp(path);
	size_t i;

	CU_ASSERT_FATAL(r != NULL && fd >= 0);
	unlink(path);
	CU_ASSERT_EQUAL_FATAL(fread(buf, 1, sizeof(buf), r), sizeof(buf));
	fclose(r);
	CU_ASSERT_EQUAL(pwrite(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	CU_ASSERT_EQUAL(cache_put_gzip_level(fd, sizeof(buf)), 0);
	CU_ASSERT_EQUAL(cache_put_gzip_level(fd, 4096), 1); /* small */
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = "the quick brown fox jumps\n"[i % 26];
	CU_ASSERT_EQUAL(pwrite(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	CU_ASSERT_EQUAL(cache_put_gzip_level(fd, sizeof(buf)), 1);
	CU_ASSERT_EQUAL(ftruncate(fd, 0), 0);
	CU_ASSERT_EQUAL(ftruncate(fd, sizeof(buf)), 0); /* a hole */
	CU_ASSERT_EQUAL(cache_put_gzip_level(fd, sizeof(buf)), 1);
	close(fd);
}

int main(void)
{
	static const struct tu_test tests[] = {
	    {"a rename or unlink ends a run", test_runs_end_at_rename},
	    {"editor saves fold into one tar", test_editor_saves_fold},
	    {"a sent save's rename is an upload", test_sent_save_as_upload},
	    {"gzip level 0 for random bytes only", test_gzip_level},
	    {"barrier: open files under their names now",
	     test_barrier_open_files},
	    {NULL, NULL}};

	return tu_main("drain", tests);
}
