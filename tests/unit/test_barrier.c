/*
 * test_barrier.c - the exec barrier (src/fs/barrier.c) and the results it
 * makes (src/fs/result.c), driven without a mount.
 *
 * A struct fs with no FUSE session runs the local backend (unisolated)
 * on a temp base directory.  Its sandbox hooks record the flush and
 * after_exec calls, and fs->notify records what the barrier would have
 * the kernel drop, so the order writeback -> flush -> exec -> invalidate
 * is seen from outside: the command creates a file that the flush must
 * not see yet and after_exec must.  Also: the command's start time
 * reaches the invalidation (an unchanged node served more than 2 s
 * before is kept, a node served within 2 s and a changed one are
 * dropped), a failed flush runs nothing, a failed exec still
 * invalidates, either leaves its reason as the last result (ENOTDIR for
 * a missing workdir, ENOENT for a sandbox gone), .nox/sync's barrier
 * stops after the flush, and a result owns the backend's buffers and
 * encodes its JSON once, when first read.  Also the node budget's choice
 * of files the kernel may forget (fs_table_collect_trim).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nox/backend.h>

#include "barrier.h"
#include "fs.h"
#include "inode.h"
#include "result.h"
#include "sandbox.h"
#include "testutil.h"

#define SB_ID "bar1"

enum ev_kind { EV_NOTIFY, EV_FLUSH, EV_AFTER_EXEC };

#define EV_MAX	16
#define INO_MAX 16

/* One recorded call. */
struct ev {
	enum ev_kind kind;
	bool ran;		    /* the command's marker file existed */
	size_t n;		    /* EV_NOTIFY: the set */
	struct fs_inval v[INO_MAX]; /* names not kept */
};

static struct {
	struct ev ev[EV_MAX];
	size_t nev;
	int flush_ret; /* what the flush hook returns */
	int root_fd;   /* the workspace, for the marker */
} rec;

static bool marker_exists(void)
{
	struct stat st;

	return fstatat(rec.root_fd, "ran", &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static struct ev *rec_push(enum ev_kind kind)
{
	struct ev *e;

	CU_ASSERT_FATAL(rec.nev < EV_MAX);
	e = &rec.ev[rec.nev++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->ran = marker_exists();
	return e;
}

static int t_attach(struct fs_sandbox *sb, struct nox_err *err)
{
	return nox_backend_workspace_fd(sb->fs->be, sb->id, err);
}

static int t_flush(struct fs_sandbox *sb, struct nox_err *err)
{
	(void)sb;
	rec_push(EV_FLUSH);
	if (rec.flush_ret < 0)
		return nox_err_set(err, -rec.flush_ret, "test flush fails");
	return 0;
}

static void t_after_exec(struct fs_sandbox *sb)
{
	(void)sb;
	rec_push(EV_AFTER_EXEC);
}

static void t_notify(struct fs *fs, const struct fs_inval *v, size_t n)
{
	struct ev *e = rec_push(EV_NOTIFY);
	size_t i;

	(void)fs;
	CU_ASSERT_FATAL(n <= INO_MAX);
	e->n = n;
	for (i = 0; i < n; i++) {
		e->v[i] = v[i];
		e->v[i].name = NULL;
	}
}

static const struct fs_sandbox_hooks changed_hooks = {
    .name = "test",
    .inval_changed = true,
    .attach = t_attach,
    .flush = t_flush,
    .after_exec = t_after_exec,
};

static const struct fs_sandbox_hooks all_hooks = {
    .name = "test-all",
    .inval_changed = false,
    .attach = t_attach,
    .flush = t_flush,
    .after_exec = t_after_exec,
};

struct fx {
	char *top;
	struct fs fs;
	struct fs_sandbox *sb;
	struct fs_node *root; /* the sandbox's root node */
};

static void fx_init(struct fx *f, const struct fs_sandbox_hooks *hooks)
{
	struct nox_local_opts lo = {0};
	struct nox_err err;
	struct stat st;
	int fd;

	memset(f, 0, sizeof(*f));
	memset(&rec, 0, sizeof(rec));
	rec.root_fd = -1;
	f->top = tu_mkdtemp("barrier");
	lo.base_dir = f->top;
	lo.unisolated = true;
	CU_ASSERT_FATAL(nox_backend_local_new(&lo, &f->fs.be, &err) == 0);
	CU_ASSERT_FATAL(nox_backend_create(f->fs.be, SB_ID, NULL, NULL, &err) ==
			0);
	f->fs.hooks = hooks;
	f->fs.backend_name = "local";
	f->fs.notify = t_notify;
	f->fs.opts.exec_timeout = 30;
	CU_ASSERT_FATAL(fs_table_init(&f->fs.table) == 0);
	CU_ASSERT_FATAL(
	    fs_table_make_root(&f->fs.table, FS_ROOT, NULL, -1, NULL) == 0);
	CU_ASSERT_FATAL(fs_sandbox_attach(&f->fs, SB_ID, &f->sb, &err) == 0);
	rec.root_fd = f->sb->root_fd;
	/* the sandbox directory as the kernel would have looked it up */
	fd = openat(f->sb->root_fd, ".", O_PATH | O_DIRECTORY);
	CU_ASSERT_FATAL(fd >= 0 && fstat(fd, &st) == 0);
	f->root = fs_node_lookup_add(&f->fs.table, f->sb, FS_SANDBOX, 0, fd,
				     &st, f->fs.table.root, SB_ID);
	CU_ASSERT_FATAL(f->root != NULL);
}

static void fx_done(struct fx *f)
{
	fs_sandbox_put(f->sb);
	fs_sandbox_detach_all(&f->fs);
	fs_table_cleanup(&f->fs.table);
	nox_backend_free(f->fs.be);
	tu_rm_rf(f->top);
	free(f->top);
}

/* Records what the kernel was given for n: its descriptor's fstat now. */
static void fx_served(struct fx *f, struct fs_node *n)
{
	struct stat st;

	CU_ASSERT_FATAL(fstat(n->fd, &st) == 0);
	fs_node_note_attr(&f->fs.table, n, &st);
}

/* Creates file (or with dir, directory) name in directory node parent
 * and looks it up: its node. */
static struct fs_node *fx_make(struct fx *f, struct fs_node *parent,
			       const char *name, bool dir)
{
	struct stat st;
	int fd;

	if (dir) {
		CU_ASSERT_FATAL(mkdirat(parent->fd, name, 0755) == 0);
	} else {
		fd = openat(parent->fd, name, O_CREAT | O_WRONLY | O_TRUNC,
			    0644);
		CU_ASSERT_FATAL(fd >= 0);
		CU_ASSERT_FATAL(write(fd, "a\n", 2) == 2);
		close(fd);
	}
	fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW);
	CU_ASSERT_FATAL(fd >= 0 && fstat(fd, &st) == 0);
	return fs_node_lookup_add(&f->fs.table, f->sb, FS_WS, 0, fd, &st,
				  parent, name);
}

static struct fs_node *fx_file(struct fx *f, const char *name)
{
	return fx_make(f, f->root, name, false);
}

static const struct fs_inval *find_ino(const struct ev *e, fuse_ino_t ino)
{
	size_t i;

	for (i = 0; i < e->n; i++) {
		if (e->v[i].ino == ino)
			return &e->v[i];
	}
	return NULL;
}

static int run_sh(struct fx *f, const char *script, const char *workdir,
		  struct fs_result **out)
{
	const char *argv[] = {"sh", "-c", script, NULL};
	struct nox_exec_req req = {0};
	struct nox_err err;

	req.argv = argv;
	req.workdir = workdir;
	req.timeout_seconds = 30;
	nox_err_clear(&err);
	return fs_barrier_run(f->sb, &req, out, &err);
}

/* writeback -> flush -> exec -> after_exec -> invalidate, one result. */
static void test_order(void)
{
	struct fs_result *res = NULL, *last;
	struct fs_node *w;
	struct fx f;

	fx_init(&f, &changed_hooks);
	w = fx_file(&f, "w");
	CU_ASSERT_FATAL(w != NULL);
	/* a write handle: the file may hold dirty pages */
	fs_node_open_note(&f.fs.table, w, O_WRONLY);
	CU_ASSERT_EQUAL_FATAL(
	    run_sh(&f, "touch ran; echo out; echo e >&2", NULL, &res), 0);
	CU_ASSERT_EQUAL_FATAL(rec.nev, 4);
	CU_ASSERT_EQUAL(rec.ev[0].kind, EV_NOTIFY);
	CU_ASSERT_FALSE(rec.ev[0].ran);
	CU_ASSERT_EQUAL(rec.ev[0].n, 1);
	CU_ASSERT(find_ino(&rec.ev[0], w->ino) != NULL &&
		  find_ino(&rec.ev[0], w->ino)->inode);
	CU_ASSERT_EQUAL(rec.ev[1].kind, EV_FLUSH);
	CU_ASSERT_FALSE(rec.ev[1].ran);
	CU_ASSERT_EQUAL(rec.ev[2].kind, EV_AFTER_EXEC);
	CU_ASSERT_TRUE(rec.ev[2].ran);
	CU_ASSERT_EQUAL(rec.ev[3].kind, EV_NOTIFY);
	/* the root directory gained "ran": its node, and its children's
	 * entries, are dropped */
	CU_ASSERT(find_ino(&rec.ev[3], f.root->ino) != NULL);
	CU_ASSERT(find_ino(&rec.ev[3], w->ino) != NULL);

	CU_ASSERT_FATAL(res != NULL);
	CU_ASSERT_EQUAL(res->r.exit_code, 0);
	CU_ASSERT_STRING_EQUAL(res->r.out, "out\n");
	CU_ASSERT_STRING_EQUAL(res->r.err, "e\n");
	CU_ASSERT_STRING_EQUAL(res->status, "0\n");
	last = fs_sandbox_last(f.sb);
	CU_ASSERT_PTR_EQUAL(last, res);
	fs_result_unref(last);
	fs_result_unref(res);

	/* the handle is still open: still in the write-back set; once
	 * released, one more barrier has it, then none */
	rec.nev = 0;
	fs_node_release_note(&f.fs.table, w, O_WRONLY);
	CU_ASSERT_EQUAL_FATAL(run_sh(&f, "true", NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(rec.ev[0].kind, EV_NOTIFY);
	CU_ASSERT(find_ino(&rec.ev[0], w->ino) != NULL);
	rec.nev = 0;
	CU_ASSERT_EQUAL_FATAL(run_sh(&f, "true", NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(rec.ev[0].kind, EV_NOTIFY);
	CU_ASSERT_EQUAL(rec.ev[0].n, 0);
	fx_done(&f);
}

/*
 * The command's start time reaches the invalidation: "old" (served more
 * than 2 s before it, unchanged) is kept; "chg" (changed by the command)
 * and "d/fresh" (served within 2 s of the start: a change in the same
 * timestamp tick would not show) are dropped.  Without inval_changed
 * everything is dropped.
 */
static void check_clock(const struct fs_sandbox_hooks *hooks, bool all)
{
	struct fs_node *old, *chg, *d, *fresh;
	const struct fs_inval *e;
	struct timespec ts = {.tv_sec = 2, .tv_nsec = 200000000};
	struct fx f;

	fx_init(&f, hooks);
	old = fx_file(&f, "old");
	chg = fx_file(&f, "chg");
	d = fx_make(&f, f.root, "d", true);
	CU_ASSERT_FATAL(old && chg && d);
	fx_served(&f, f.root); /* as it is after the creations */
	nanosleep(&ts, NULL);
	/* d changes, the root does not */
	fresh = fx_make(&f, d, "fresh", false);
	CU_ASSERT_FATAL(fresh != NULL);
	fx_served(&f, d);
	CU_ASSERT_EQUAL_FATAL(run_sh(&f, "echo b >> chg", NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(rec.nev, 4);
	CU_ASSERT_EQUAL_FATAL(rec.ev[3].kind, EV_NOTIFY);
	e = find_ino(&rec.ev[3], chg->ino);
	CU_ASSERT(e != NULL && e->inode);
	e = find_ino(&rec.ev[3], fresh->ino);
	CU_ASSERT(e != NULL && e->inode);
	e = find_ino(&rec.ev[3], d->ino);
	CU_ASSERT(e != NULL && e->inode);
	e = find_ino(&rec.ev[3], old->ino);
	if (all) {
		CU_ASSERT(e != NULL && e->inode);
		CU_ASSERT(find_ino(&rec.ev[3], f.root->ino) != NULL);
	} else {
		CU_ASSERT_PTR_NULL(e);
		CU_ASSERT_PTR_NULL(find_ino(&rec.ev[3], f.root->ino));
	}
	fx_done(&f);
}

static void test_clock_reaches_invalidation(void)
{
	check_clock(&changed_hooks, false);
}

static void test_no_inval_changed_drops_all(void)
{
	check_clock(&all_hooks, true);
}

/* A failed flush runs nothing and invalidates nothing; its reason is
 * the last result. */
static void test_failed_flush(void)
{
	struct fs_result *res = NULL, *last;
	struct fx f;

	fx_init(&f, &changed_hooks);
	rec.flush_ret = -EIO;
	CU_ASSERT_EQUAL(run_sh(&f, "touch ran", NULL, &res), -EIO);
	CU_ASSERT_FALSE(marker_exists());
	CU_ASSERT_EQUAL_FATAL(rec.nev, 2);
	CU_ASSERT_EQUAL(rec.ev[0].kind, EV_NOTIFY);
	CU_ASSERT_EQUAL(rec.ev[1].kind, EV_FLUSH);
	CU_ASSERT_FATAL(res != NULL);
	CU_ASSERT_EQUAL(res->error, EIO);
	CU_ASSERT_STRING_EQUAL(res->status, "error: test flush fails\n");
	CU_ASSERT_STRING_EQUAL(res->r.err, "test flush fails\n");
	CU_ASSERT_STRING_EQUAL(res->r.out, "");
	last = fs_sandbox_last(f.sb);
	CU_ASSERT_PTR_EQUAL(last, res);
	fs_result_unref(last);
	fs_result_unref(res);
	fx_done(&f);
}

/*
 * A failed exec (missing workdir) still runs after_exec and invalidates;
 * its reason replaces the last result.  The missing workdir of a sandbox
 * that exists is ENOTDIR; a sandbox gone is ENOENT.
 */
static void test_failed_exec_invalidates(void)
{
	struct fs_result *res = NULL, *first = NULL, *last;
	struct nox_err err;
	struct fx f;

	fx_init(&f, &changed_hooks);
	CU_ASSERT_EQUAL_FATAL(run_sh(&f, "echo one", NULL, &first), 0);
	rec.nev = 0;
	CU_ASSERT_EQUAL(run_sh(&f, "touch ran", "/workspace/nope", &res),
			-ENOTDIR);
	CU_ASSERT_EQUAL_FATAL(rec.nev, 4);
	CU_ASSERT_EQUAL(rec.ev[1].kind, EV_FLUSH);
	CU_ASSERT_EQUAL(rec.ev[2].kind, EV_AFTER_EXEC);
	CU_ASSERT_FALSE(rec.ev[2].ran);
	CU_ASSERT_EQUAL(rec.ev[3].kind, EV_NOTIFY);
	CU_ASSERT_FATAL(res != NULL);
	CU_ASSERT_EQUAL(res->error, ENOTDIR);
	CU_ASSERT(strncmp(res->status, "error: ", 7) == 0);
	CU_ASSERT(strstr(res->r.err, "/workspace/nope") != NULL);
	last = fs_sandbox_last(f.sb);
	CU_ASSERT_PTR_EQUAL(last, res);
	CU_ASSERT_PTR_NOT_EQUAL(last, first);
	fs_result_unref(last);
	fs_result_unref(res);
	res = NULL;

	/* the sandbox deleted behind the daemon */
	CU_ASSERT_FATAL(nox_backend_delete(f.fs.be, SB_ID, &err) == 0);
	rec.nev = 0;
	CU_ASSERT_EQUAL(run_sh(&f, "true", "/workspace/nope", &res), -ENOENT);
	CU_ASSERT_EQUAL_FATAL(rec.nev, 4);
	CU_ASSERT_EQUAL(rec.ev[2].kind, EV_AFTER_EXEC);
	CU_ASSERT(res != NULL && res->error == ENOENT);
	fs_result_unref(res);
	fs_result_unref(first);
	fx_done(&f);
}

/* An error result: the reason on one line in stderr and status, the
 * JSON {"error", "errno"}. */
static void test_error_result(void)
{
	struct fs_result *res = fs_result_new_error(-EINVAL, "bad\nthing");
	const char *j;
	size_t l = 0;

	CU_ASSERT_FATAL(res != NULL);
	CU_ASSERT_EQUAL(res->error, EINVAL);
	CU_ASSERT_STRING_EQUAL(res->status, "error: bad thing\n");
	CU_ASSERT_EQUAL(res->status_len, strlen("error: bad thing\n"));
	CU_ASSERT_STRING_EQUAL(res->r.err, "bad thing\n");
	CU_ASSERT_STRING_EQUAL(res->r.out, "");
	j = fs_result_json(res, &l);
	CU_ASSERT_FATAL(j != NULL);
	CU_ASSERT_STRING_EQUAL(
	    j, "{\"error\":\"bad thing\",\"errno\":\"EINVAL\"}\n");
	CU_ASSERT_EQUAL(l, strlen(j));
	fs_result_unref(res);
}

/* .nox/sync: writeback and flush, no command, no invalidation. */
static void test_sync_only(void)
{
	struct nox_err err;
	struct fx f;

	fx_init(&f, &changed_hooks);
	nox_err_clear(&err);
	CU_ASSERT_EQUAL(fs_barrier_run(f.sb, NULL, NULL, &err), 0);
	CU_ASSERT_EQUAL_FATAL(rec.nev, 2);
	CU_ASSERT_EQUAL(rec.ev[0].kind, EV_NOTIFY);
	CU_ASSERT_EQUAL(rec.ev[1].kind, EV_FLUSH);
	CU_ASSERT_PTR_NULL(fs_sandbox_last(f.sb));
	rec.flush_ret = -EIO;
	CU_ASSERT_EQUAL(fs_barrier_run(f.sb, NULL, NULL, &err), -EIO);
	CU_ASSERT_STRING_EQUAL(err.msg, "test flush fails");
	fx_done(&f);
}

/* A result takes the backend's buffers (no copy) and encodes its JSON
 * once, on the first read. */
static void test_result_owned_lazy_json(void)
{
	struct nox_exec_result r = {0};
	struct fs_result *res;
	const char *j1, *j2;
	char *out = strdup("hi\n"), *err = strdup("");
	size_t l1 = 0, l2 = 0;

	CU_ASSERT_FATAL(out && err);
	r.exit_code = 3;
	r.out = out;
	r.out_len = 3;
	r.err = err;
	r.err_len = 0;
	r.duration_ms = 5;
	res = fs_result_new(&r);
	CU_ASSERT_FATAL(res != NULL);
	CU_ASSERT_PTR_EQUAL(res->r.out, out);
	CU_ASSERT_PTR_EQUAL(res->r.err, err);
	CU_ASSERT_PTR_NULL(r.out);
	CU_ASSERT_PTR_NULL(r.err);
	nox_exec_result_cleanup(&r); /* frees nothing of res */
	CU_ASSERT_STRING_EQUAL(res->status, "3\n");
	CU_ASSERT_PTR_NULL(res->json);
	j1 = fs_result_json(res, &l1);
	CU_ASSERT_FATAL(j1 != NULL);
	CU_ASSERT_EQUAL(l1, strlen(j1));
	CU_ASSERT(l1 > 1 && j1[l1 - 1] == '\n');
	CU_ASSERT(strstr(j1, "\"exitCode\":3") != NULL);
	CU_ASSERT(strstr(j1, "\"stdout\":\"hi\\n\"") != NULL);
	j2 = fs_result_json(res, &l2);
	CU_ASSERT_PTR_EQUAL(j1, j2);
	CU_ASSERT_EQUAL(l1, l2);
	CU_ASSERT_STRING_EQUAL(res->r.out, "hi\n");
	fs_result_unref(res);

	/* a result without output buffers serves empty ones */
	memset(&r, 0, sizeof(r));
	res = fs_result_new(&r);
	CU_ASSERT_FATAL(res != NULL);
	CU_ASSERT_STRING_EQUAL(res->r.out, "");
	CU_ASSERT_STRING_EQUAL(res->r.err, "");
	fs_result_unref(res);
}

static bool inval_has(const struct fs_inval *v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (v[i].name && strcmp(v[i].name, name) == 0)
			return true;
	}
	return false;
}

/*
 * The node budget's choice (inode.c, for trim.c): cold files only; not
 * a directory, an open file, a file open for writing or one whose entry
 * was just dropped; a new lookup makes a file a candidate again; the
 * wait reports the nodes over 90 % of node_max, and none once stopped.
 */
static void test_trim_choice(void)
{
	struct fx f;
	struct fs_node *a, *b, *c, *d, *e;
	struct fs_inval *v = NULL;
	struct stat st;
	size_t n = 0, count;
	int fd;

	fx_init(&f, &fs_local_hooks);
	a = fx_file(&f, "a");
	b = fx_file(&f, "b");
	c = fx_file(&f, "c");
	d = fx_make(&f, f.root, "d", true);
	e = fx_make(&f, d, "e", false);
	CU_ASSERT_FATAL(a && b && c && d && e);
	fs_node_open_note(&f.fs.table, b, O_RDONLY);
	fs_node_open_note(&f.fs.table, c, O_WRONLY);

	/* all just looked up: the sweep's second round takes them */
	CU_ASSERT_EQUAL(fs_table_collect_trim(&f.fs.table, 100, &v, &n), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT(inval_has(v, n, "a"));
	CU_ASSERT(inval_has(v, n, "e"));
	CU_ASSERT(!inval_has(v, n, "b") && !inval_has(v, n, "c") &&
		  !inval_has(v, n, "d") && !inval_has(v, n, SB_ID));
	CU_ASSERT(n == 2 && v[0].parent != 0);
	fs_inval_free(v, n);

	/* sent: not again until looked up again */
	CU_ASSERT_EQUAL(fs_table_collect_trim(&f.fs.table, 100, &v, &n), 0);
	CU_ASSERT_EQUAL(n, 0);
	fs_inval_free(v, n);
	fd = openat(f.root->fd, "a", O_PATH | O_NOFOLLOW);
	CU_ASSERT_FATAL(fd >= 0 && fstat(fd, &st) == 0);
	CU_ASSERT(fs_node_lookup_add(&f.fs.table, f.sb, FS_WS, 0, fd, &st,
				     f.root, "a") == a);
	CU_ASSERT_EQUAL(fs_table_collect_trim(&f.fs.table, 100, &v, &n), 0);
	CU_ASSERT(n == 1 && inval_has(v, n, "a"));
	fs_inval_free(v, n);

	/* released: b is a candidate; c has writes to send (wdirty) until
	 * the next barrier */
	fs_node_release_note(&f.fs.table, b, O_RDONLY);
	fs_node_release_note(&f.fs.table, c, O_WRONLY);
	CU_ASSERT_EQUAL(fs_table_collect_trim(&f.fs.table, 100, &v, &n), 0);
	CU_ASSERT(n == 1 && inval_has(v, n, "b"));
	fs_inval_free(v, n);

	/* the wait: over 90 % of node_max, at once; nothing once stopped */
	fs_table_lock(&f.fs.table);
	count = f.fs.table.count;
	f.fs.table.node_max = 3;
	fs_table_unlock(&f.fs.table);
	CU_ASSERT_EQUAL(fs_table_trim_wait(&f.fs.table, 10000), count - 3);
	fs_table_trim_stop(&f.fs.table);
	CU_ASSERT_EQUAL(fs_table_trim_wait(&f.fs.table, 10000), 0);
	fx_done(&f);
}

int main(void)
{
	static const struct tu_test tests[] = {
	    {"writeback, flush, exec, invalidate in order", test_order},
	    {"the start time reaches the invalidation",
	     test_clock_reaches_invalidation},
	    {"without inval_changed everything is dropped",
	     test_no_inval_changed_drops_all},
	    {"a failed flush runs nothing", test_failed_flush},
	    {"a failed exec still invalidates", test_failed_exec_invalidates},
	    {"error results", test_error_result},
	    {"sync: writeback and flush only", test_sync_only},
	    {"results own their buffers, JSON on first read",
	     test_result_owned_lazy_json},
	    {"the node budget drops cold files only", test_trim_choice},
	    {NULL, NULL},
	};

	nox_log_init("test-barrier", NOX_LOG_ERR);
	return tu_main("barrier", tests);
}
