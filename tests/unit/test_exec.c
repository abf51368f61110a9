/*
 * test_exec.c - sbx_exec_run: isolated (bubblewrap) and unisolated exec.
 *
 * Runs real commands in a temporary workspace.  Hostile inputs tried:
 * argv with spaces, quotes, globs, newlines, "$VAR", backticks and ";";
 * workdirs outside /workspace or with ".."; env keys that are empty or
 * missing '='; commands that try to write the host's /etc, read its /tmp,
 * reach a loopback port, leave daemons behind (double fork, setsid),
 * flood both output streams, allocate 3 GiB, or never exit; fork bombs
 * as root (a per-command pids cgroup), a sandbox /tmp filled past the
 * memory limit, and root in the sandbox mounting a cgroupfs or making a
 * device node (no capabilities).
 *
 * Needs bwrap: exits 77 (skip) without it, unless NOX_NO_SKIP=1.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sbx_exec_i.h"
#include "testutil.h"

#define MIB (1024 * 1024)

static char *ws;      /* host workspace directory */
static char *ws_real; /* its realpath: what unisolated pwd shows */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int run_full(const struct sbx_exec_opts *o, const char *const *argv,
		    const char *workdir, const char *const *env, int timeout,
		    struct nox_exec_result *res, struct nox_err *err)
{
	struct nox_exec_req req = {.argv = argv,
				   .workdir = workdir,
				   .env = env,
				   .timeout_seconds = timeout};
	static const struct sbx_exec_opts def = {0};

	return sbx_exec_run(o ? o : &def, ws, &req, res, err);
}

/* Isolated, default options, 20 s timeout; asserts it started. */
static int run_ok(const char *const *argv, struct nox_exec_result *res)
{
	struct nox_err err = {0};
	int r = run_full(NULL, argv, NULL, NULL, 20, res, &err);

	CU_ASSERT_EQUAL(r, 0);
	if (r != 0)
		fprintf(stderr, "sbx_exec_run: %d %s\n", r, err.msg);
	return r;
}

static bool all_bytes(const char *p, size_t n, char c)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != c)
			return false;
	return true;
}

/* True if some process's command line contains needle. */
static bool proc_cmdline_has(const char *needle)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	bool found = false;

	if (!d)
		return false;
	while (!found) {
		char path[300], buf[4096];
		ssize_t n;
		int fd;

		de = readdir(d);
		if (!de)
			break;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		close(fd);
		if (n > 0 && memmem(buf, (size_t)n, needle, strlen(needle)))
			found = true;
	}
	closedir(d);
	return found;
}

static void test_exit_codes(void)
{
	const char *t[] = {"true", NULL};
	const char *f[] = {"false", NULL};
	const char *e3[] = {"sh", "-c", "exit 3", NULL};
	const char *e7[] = {"sh", "-c", "exit 7", NULL};
	const char *sig[] = {"sh", "-c", "kill -9 $$", NULL};
	struct nox_exec_result res;

	if (run_ok(t, &res) == 0)
		CU_ASSERT_EQUAL(res.exit_code, 0);
	CU_ASSERT_PTR_NOT_NULL(res.out);
	CU_ASSERT_PTR_NOT_NULL(res.err);
	CU_ASSERT_EQUAL(res.out_len, 0);
	CU_ASSERT(res.duration_ms >= 0);
	nox_exec_result_cleanup(&res);
	if (run_ok(f, &res) == 0)
		CU_ASSERT_EQUAL(res.exit_code, 1);
	nox_exec_result_cleanup(&res);
	if (run_ok(e3, &res) == 0)
		CU_ASSERT_EQUAL(res.exit_code, 3);
	nox_exec_result_cleanup(&res);
	if (run_ok(e7, &res) == 0)
		CU_ASSERT_EQUAL(res.exit_code, 7);
	nox_exec_result_cleanup(&res);
	if (run_ok(sig, &res) == 0)
		CU_ASSERT_EQUAL(res.exit_code, 128 + SIGKILL);
	nox_exec_result_cleanup(&res);
}

static void test_stdin_is_null(void)
{
	/* cat on an inherited terminal or pipe would hang until timeout. */
	const char *argv[] = {"cat", NULL};
	struct nox_exec_result res;
	long long t0 = now_ms();

	if (run_ok(argv, &res) == 0) {
		CU_ASSERT_EQUAL(res.exit_code, 0);
		CU_ASSERT_EQUAL(res.out_len, 0);
	}
	CU_ASSERT(now_ms() - t0 < 5000);
	nox_exec_result_cleanup(&res);
}

static void test_bad_requests(void)
{
	const char *argv[] = {"true", NULL};
	const char *empty[] = {"", NULL};
	const char *none[] = {NULL};
	struct nox_exec_req req = {.argv = argv, .timeout_seconds = -1};
	struct nox_exec_result res;
	struct nox_err err = {0};

	CU_ASSERT_EQUAL(sbx_exec_run(NULL, ws, &req, &res, &err), -EINVAL);
	CU_ASSERT_EQUAL(run_full(NULL, empty, NULL, NULL, 5, &res, &err),
			-EINVAL);
	CU_ASSERT_EQUAL(run_full(NULL, none, NULL, NULL, 5, &res, &err),
			-EINVAL);
	CU_ASSERT_PTR_NULL(res.out);
	req.timeout_seconds = 5;
	CU_ASSERT_EQUAL(
	    sbx_exec_run(NULL, "/nonexistent/nox-ws", &req, &res, &err),
	    -ENOENT);
}

static void test_timeout(void)
{
	const char *argv[] = {"sleep", "30", NULL};
	struct nox_exec_result res;
	struct nox_err err = {0};
	long long t0 = now_ms();
	int r = run_full(NULL, argv, NULL, NULL, 1, &res, &err);

	/* stopped at its 1 s timeout, not run to its 30 s end: the upper
	 * bound is half the sleep, since under valgrind beside the fuzzers
	 * the start and the kill alone took over 2 s once (a 3 s bound
	 * failed CI on 2cf3845) */
	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT_EQUAL(res.exit_code, 124);
	CU_ASSERT(now_ms() - t0 < 15000);
	CU_ASSERT(res.duration_ms >= 900 && res.duration_ms < 15000);
	CU_ASSERT_PTR_NOT_NULL(res.err);
	if (res.err)
		CU_ASSERT_PTR_NOT_NULL(
		    strstr(res.err, "command timed out after 1 s"));
	nox_exec_result_cleanup(&res);
}

struct bg_run {
	const struct sbx_exec_opts *opts;
	const char *const *argv;
	int timeout;
	int r;
	struct nox_exec_result res;
	long long elapsed;
};

static void *bg_run_main(void *p)
{
	struct bg_run *b = p;
	long long t0 = now_ms();

	b->r =
	    run_full(b->opts, b->argv, NULL, NULL, b->timeout, &b->res, NULL);
	b->elapsed = now_ms() - t0;
	return NULL;
}

/*
 * A daemon that double-forks out of the command's process tree must die
 * with it.  Positive control: while the command runs, the marker process
 * is seen in /proc, so the final "gone" check can fail.
 */
static void double_fork_case(const struct sbx_exec_opts *o)
{
	char *uniq = tu_strf("0.000%d%ld7", (int)getpid(), (long)time(NULL));
	const char *argv[] = {"sh", "-c", "(sleep 6000 \"$1\" &) ; sleep 60",
			      "sh", uniq, NULL};
	struct bg_run b = {.opts = o, .argv = argv, .timeout = 2};
	long long t0 = now_ms();
	bool seen = false;
	pthread_t th;

	CU_ASSERT_FALSE(proc_cmdline_has(uniq));
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, bg_run_main, &b), 0);
	while (!seen && now_ms() - t0 < 1800) {
		struct timespec ts = {0, 50 * 1000 * 1000};

		seen = proc_cmdline_has(uniq);
		if (!seen)
			nanosleep(&ts, NULL);
	}
	pthread_join(th, NULL);
	CU_ASSERT_TRUE(seen);
	CU_ASSERT_EQUAL(b.r, 0);
	CU_ASSERT_EQUAL(b.res.exit_code, 124);
	CU_ASSERT(b.elapsed < 4500);
	CU_ASSERT_FALSE(proc_cmdline_has(uniq));
	nox_exec_result_cleanup(&b.res);
	free(uniq);
}

static void test_double_fork_killed(void)
{
	double_fork_case(NULL);
}

static void test_unisolated_double_fork_killed(void)
{
	struct sbx_exec_opts o = {.unisolated = true};

	double_fork_case(&o);
}

/*
 * The main process exits but leaves a writer on stdout: no hang, and the
 * leftover is gone when we return (isolated: the pid namespace dies with
 * bwrap; unisolated: the process group is killed).
 */
static void leftover_case(const struct sbx_exec_opts *o)
{
	char *uniq = tu_strf("0.000%d%ld3", (int)getpid(), (long)time(NULL));
	const char *argv[] = {"sh", "-c", "(sleep 100 \"$1\" &) ; echo done",
			      "sh", uniq, NULL};
	struct nox_exec_result res;
	long long t0 = now_ms();

	CU_ASSERT_EQUAL(run_full(o, argv, NULL, NULL, 20, &res, NULL), 0);
	CU_ASSERT_EQUAL(res.exit_code, 0);
	CU_ASSERT_STRING_EQUAL(res.out ? res.out : "", "done\n");
	CU_ASSERT(now_ms() - t0 < 3000);
	CU_ASSERT_FALSE(proc_cmdline_has(uniq));
	nox_exec_result_cleanup(&res);
	free(uniq);
}

static void test_leftover_writer(void)
{
	struct sbx_exec_opts un = {.unisolated = true};

	leftover_case(NULL);
	leftover_case(&un);
}

/* True when pid exists and is not a zombie. */
static bool pid_alive(pid_t pid)
{
	char path[64], buf[512], *rp;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	rp = strrchr(buf, ')');
	return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

/*
 * Unisolated, a writer that setsid()s escapes the process group: we still
 * return within the grace period, and the command's cgroup (when there is
 * one) has killed it by then; else the test kills it by its pid.
 */
static void test_unisolated_escaped_writer(void)
{
	const char *argv[] = {
	    "sh", "-c",
	    "setsid sh -c 'echo $$ > escaped.pid; exec sleep 100' & "
	    "sleep 0.3; echo done",
	    NULL};
	struct sbx_exec_opts un = {.unisolated = true};
	struct nox_exec_result res;
	long long t0 = now_ms();
	char *pidfile = tu_strf("%s/escaped.pid", ws);
	char *txt;

	CU_ASSERT_EQUAL(run_full(&un, argv, NULL, NULL, 20, &res, NULL), 0);
	CU_ASSERT_EQUAL(res.exit_code, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(res.out ? res.out : "", "done"));
	CU_ASSERT(now_ms() - t0 < 4000);
	txt = tu_read_file(pidfile, NULL);
	CU_ASSERT_PTR_NOT_NULL(txt);
	if (txt) {
		long pid = strtol(txt, NULL, 10);

		/* With a cgroup it is dead already (gone or a zombie). */
		if (pid > 1 && sbx_exec_pids_limit() > SBX_PIDS_RLIMIT)
			CU_ASSERT_FALSE(pid_alive((pid_t)pid));
		if (pid > 1)
			kill((pid_t)pid, SIGKILL);
	}
	free(txt);
	unlink(pidfile);
	free(pidfile);
	nox_exec_result_cleanup(&res);
}

static void test_not_found_127_126(void)
{
	const char *missing[] = {"nox-no-such-program-4711", "arg", NULL};
	const char *missing_abs[] = {"/workspace/nope/prog", NULL};
	const char *notexec[] = {"/workspace/notexec.sh", NULL};
	const char *dash[] = {"-l", NULL};
	struct nox_exec_result res;
	char *p = tu_strf("%s/notexec.sh", ws);

	CU_ASSERT_EQUAL(tu_write_file(p, "#!/bin/sh\necho hi\n", 18), 0);
	chmod(p, 0644);
	if (run_ok(missing, &res) == 0) {
		CU_ASSERT_EQUAL(res.exit_code, 127);
		CU_ASSERT_PTR_NOT_NULL(strstr(res.err, "not found"));
	}
	nox_exec_result_cleanup(&res);
	if (run_ok(missing_abs, &res) == 0)
		CU_ASSERT_EQUAL(res.exit_code, 127);
	nox_exec_result_cleanup(&res);
	/* A program named like an option is a name, not an option. */
	if (run_ok(dash, &res) == 0)
		CU_ASSERT_EQUAL(res.exit_code, 127);
	nox_exec_result_cleanup(&res);
	if (run_ok(notexec, &res) == 0)
		CU_ASSERT_EQUAL(res.exit_code, 126);
	nox_exec_result_cleanup(&res);
	unlink(p);
	free(p);
}

static void test_env(void)
{
	const char *argv[] = {"env", NULL};
	const char *env[] = {"FOO=bar baz", "MULTI=a\nb=c",
			     "EMPTY=", "PATH=/usr/bin:/bin", NULL};
	const char *bad1[] = {"=x", NULL};
	const char *bad2[] = {"NOEQUALS", NULL};
	struct nox_exec_result res;
	struct nox_err err = {0};
	int r;

	setenv("NOX_EXEC_HOST_SECRET", "leaked", 1);
	r = run_full(NULL, argv, NULL, env, 20, &res, &err);
	CU_ASSERT_EQUAL(r, 0);
	if (r == 0) {
		CU_ASSERT_EQUAL(res.exit_code, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "FOO=bar baz\n"));
		CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "MULTI=a\nb=c\n"));
		CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "\nEMPTY=\n"));
		CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "HOME=/workspace\n"));
		CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "LANG=C.UTF-8\n"));
		/* The request's PATH replaces the default one. */
		CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "PATH=/usr/bin:/bin\n"));
		CU_ASSERT_PTR_NULL(strstr(res.out, "/usr/local/sbin"));
		CU_ASSERT_PTR_NULL(strstr(res.out, "NOX_EXEC_HOST_SECRET"));
		CU_ASSERT_PTR_NULL(strstr(res.out, "leaked"));
	}
	nox_exec_result_cleanup(&res);

	/* Default PATH when the request sets none. */
	if (run_ok(argv, &res) == 0) {
		CU_ASSERT_PTR_NOT_NULL(
		    strstr(res.out, "PATH=/usr/local/sbin:/usr/local/bin:"
				    "/usr/sbin:/usr/bin:/sbin:/bin\n"));
		CU_ASSERT_PTR_NULL(strstr(res.out, "NOX_EXEC_HOST_SECRET"));
	}
	nox_exec_result_cleanup(&res);

	CU_ASSERT_EQUAL(run_full(NULL, argv, NULL, bad1, 5, &res, &err),
			-EINVAL);
	CU_ASSERT(strlen(err.msg) > 0);
	CU_ASSERT_EQUAL(run_full(NULL, argv, NULL, bad2, 5, &res, &err),
			-EINVAL);
	CU_ASSERT_PTR_NULL(res.out);
	unsetenv("NOX_EXEC_HOST_SECRET");
}

/*
 * The request's environment is the command's, never bwrap's: bwrap runs
 * on the host, so LD_PRELOAD naming a workspace file would run sandbox
 * code outside the sandbox.  The host path of a non-ELF file makes the
 * host loader say "invalid ELF header"; inside the sandbox that path does
 * not exist.  Control: unisolated (host loader) the message appears.
 */
static void test_env_not_given_to_bwrap(void)
{
	const char *argv[] = {"true", NULL};
	char *so = tu_strf("%s/evil.so", ws_real);
	char *kv = tu_strf("LD_PRELOAD=%s", so);
	const char *env[] = {kv, NULL};
	struct sbx_exec_opts un = {.unisolated = true};
	struct nox_exec_result res;
	char junk[4096];

	memset(junk, 'x', sizeof(junk));
	CU_ASSERT_EQUAL(tu_write_file(so, junk, sizeof(junk)), 0);
	CU_ASSERT_EQUAL(run_full(NULL, argv, NULL, env, 10, &res, NULL), 0);
	CU_ASSERT_EQUAL(res.exit_code, 0);
	CU_ASSERT_PTR_NULL(strstr(res.err ? res.err : "", "invalid ELF"));
	nox_exec_result_cleanup(&res);
	CU_ASSERT_EQUAL(run_full(&un, argv, NULL, env, 10, &res, NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(res.err ? res.err : "", "invalid ELF"));
	nox_exec_result_cleanup(&res);
	unlink(so);
	free(so);
	free(kv);
}

static void test_workdir(void)
{
	const char *pwd[] = {"pwd", NULL};
	struct nox_exec_result res;
	struct nox_err err = {0};
	char *sub = tu_strf("%s/sub", ws), *subdir = tu_strf("%s/sub/dir", ws);
	char *file = tu_strf("%s/afile", ws);
	int r;

	CU_ASSERT_EQUAL(mkdir(sub, 0755), 0);
	CU_ASSERT_EQUAL(mkdir(subdir, 0755), 0);
	CU_ASSERT_EQUAL(tu_write_file(file, "x", 1), 0);

	CU_ASSERT_EQUAL(run_full(NULL, pwd, NULL, NULL, 10, &res, &err), 0);
	CU_ASSERT_STRING_EQUAL(res.out ? res.out : "", "/workspace\n");
	nox_exec_result_cleanup(&res);
	CU_ASSERT_EQUAL(
	    run_full(NULL, pwd, "/workspace/sub/dir/", NULL, 10, &res, &err),
	    0);
	CU_ASSERT_STRING_EQUAL(res.out ? res.out : "", "/workspace/sub/dir\n");
	nox_exec_result_cleanup(&res);
	CU_ASSERT_EQUAL(run_full(NULL, pwd, "sub", NULL, 10, &res, &err), 0);
	CU_ASSERT_STRING_EQUAL(res.out ? res.out : "", "/workspace/sub\n");
	nox_exec_result_cleanup(&res);

	CU_ASSERT_EQUAL(run_full(NULL, pwd, "/etc", NULL, 10, &res, &err),
			-EINVAL);
	CU_ASSERT_EQUAL(
	    run_full(NULL, pwd, "/workspace/../etc", NULL, 10, &res, &err),
	    -EINVAL);
	CU_ASSERT_EQUAL(
	    run_full(NULL, pwd, "/workspacex", NULL, 10, &res, &err), -EINVAL);
	CU_ASSERT_EQUAL(run_full(NULL, pwd, "sub/../..", NULL, 10, &res, &err),
			-EINVAL);
	r = run_full(NULL, pwd, "/workspace/missing", NULL, 10, &res, &err);
	CU_ASSERT_EQUAL(r, -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/workspace/missing"));
	CU_ASSERT_PTR_NULL(res.out);
	/* Not created as a side effect. */
	free(file);
	file = tu_strf("%s/missing", ws);
	CU_ASSERT_EQUAL(access(file, F_OK), -1);
	free(file);
	file = tu_strf("%s/afile", ws);
	CU_ASSERT_EQUAL(run_full(NULL, pwd, "afile", NULL, 10, &res, &err),
			-ENOTDIR);

	tu_rm_rf(sub);
	unlink(file);
	free(sub);
	free(subdir);
	free(file);
}

/* The note a cut stream leaves as the last line of stderr. */
static char *trunc_note(const char *which, size_t cap, unsigned long long seen)
{
	return tu_strf(NOX_EXEC_TRUNCATED_NOTE "%s kept %zu of %llu bytes "
					       "(output cap %zu)\n",
		       which, cap, seen, cap);
}

static void big_output_case(size_t cap, size_t want, bool trunc)
{
	const char *argv[] = {
	    "sh", "-c",
	    "head -c 5242880 /dev/zero | tr '\\0' a & "
	    "head -c 5242880 /dev/zero | tr '\\0' b >&2; wait",
	    NULL};
	struct sbx_exec_opts o = {.output_cap = cap};
	struct nox_exec_result res;
	struct nox_err err = {0};
	long long t0 = now_ms();
	char *note = NULL;
	size_t nl = 0;

	if (trunc) {
		note = tu_strf(NOX_EXEC_TRUNCATED_NOTE
			       "stdout kept %zu of 5242880 bytes, stderr kept "
			       "%zu of 5242880 bytes (output cap %zu)\n",
			       want, want, want);
		nl = strlen(note) + 1; /* 'b' * want does not end the line */
	}
	CU_ASSERT_EQUAL(run_full(&o, argv, NULL, NULL, 30, &res, &err), 0);
	CU_ASSERT_EQUAL(res.exit_code, 0);
	CU_ASSERT_EQUAL(res.out_len, want);
	CU_ASSERT_EQUAL(res.err_len, want + nl);
	CU_ASSERT_EQUAL(res.out_truncated, trunc);
	CU_ASSERT_EQUAL(res.err_truncated, trunc);
	if (res.out && res.out_len == want) {
		CU_ASSERT_TRUE(all_bytes(res.out, want, 'a'));
		CU_ASSERT_EQUAL(res.out[want], '\0');
	}
	if (res.err && res.err_len == want + nl) {
		CU_ASSERT_TRUE(all_bytes(res.err, want, 'b'));
		/* the note is the last line, on a line of its own */
		if (note) {
			CU_ASSERT_EQUAL(res.err[want], '\n');
			CU_ASSERT_STRING_EQUAL(res.err + want + 1, note);
		}
	}
	CU_ASSERT(now_ms() - t0 < 20000);
	nox_exec_result_cleanup(&res);
	free(note);
}

static void test_big_output(void)
{
	big_output_case(MIB, MIB, true);
	big_output_case(8 * MIB, 5 * MIB, false);
	big_output_case(5 * MIB, 5 * MIB, false); /* exactly the cap: whole */
}

/* A value from /proc/self/status ("VmRSS", "VmHWM") in KiB; -1 if none. */
static long proc_kib(const char *key)
{
	char *st = tu_read_file("/proc/self/status", NULL), *p;
	size_t kl = strlen(key);
	long v = -1;

	for (p = st; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "") {
		if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
			v = strtol(p + kl + 1, NULL, 10);
			break;
		}
	}
	free(st);
	return v;
}

struct rss_probe {
	const char *flag; /* host path the command creates when written */
	long kib;	  /* VmRSS 300 ms after that */
};

static void *rss_probe_main(void *p)
{
	struct rss_probe *pr = p;
	long long until = now_ms() + 30000;
	struct timespec ts = {0, 20 * 1000 * 1000};

	while (access(pr->flag, F_OK) != 0 && now_ms() < until)
		nanosleep(&ts, NULL);
	ts.tv_nsec = 300 * 1000 * 1000;
	nanosleep(&ts, NULL);
	pr->kib = proc_kib("VmRSS");
	return NULL;
}

/*
 * Default cap (64 MiB): 2 MiB of base64 arrive whole, 70 MiB are cut at
 * the cap, flagged and noted.  While the command runs its output is in a
 * file, not our heap (VmRSS sampled after it has written everything and
 * still runs), and at the end it is in memory once (VmHWM).
 */
static void test_default_cap(void)
{
	const char *two[] = {"sh", "-c",
			     "head -c 1572864 /dev/urandom | base64 -w0 | "
			     "tee two.b64",
			     NULL};
	const char *seventy[] = {
	    "sh", "-c",
	    "head -c 73400320 /dev/zero | tr '\\0' a; echo e >&2; "
	    ": > written; sleep 1.5",
	    NULL};
	char *spool = tu_mkdtemp("spool"), *b64 = tu_strf("%s/two.b64", ws);
	char *flag = tu_strf("%s/written", ws), *note, *file;
	struct sbx_exec_opts o = {.spool_dir = spool};
	struct rss_probe pr = {.flag = flag, .kib = -1};
	struct nox_exec_result res;
	struct nox_err err = {0};
	long base, hwm;
	size_t flen = 0;
	pthread_t t;
	int fd;
	DIR *d;

	CU_ASSERT_EQUAL(NOX_DEFAULT_OUTPUT_CAP, 64 * MIB);
	CU_ASSERT_EQUAL(run_full(&o, two, NULL, NULL, 30, &res, &err), 0);
	file = tu_read_file(b64, &flen);
	CU_ASSERT_EQUAL(res.out_len, 2 * MIB);
	CU_ASSERT(file && flen == res.out_len &&
		  memcmp(file, res.out, flen) == 0);
	CU_ASSERT_FALSE(res.out_truncated || res.err_truncated);
	CU_ASSERT_EQUAL(res.err_len, 0);
	nox_exec_result_cleanup(&res);
	free(file);
	unlink(b64);

	/* VmHWM restarts from the current RSS */
	fd = open("/proc/self/clear_refs", O_WRONLY);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, "5", 1), 1);
	close(fd);
	base = proc_kib("VmRSS");
	CU_ASSERT_FATAL(base > 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, rss_probe_main, &pr), 0);
	CU_ASSERT_EQUAL(run_full(&o, seventy, NULL, NULL, 60, &res, &err), 0);
	pthread_join(t, NULL);
	hwm = proc_kib("VmHWM");
	CU_ASSERT_EQUAL(res.exit_code, 0);
	CU_ASSERT_EQUAL(res.out_len, 64 * MIB);
	CU_ASSERT_TRUE(res.out_truncated);
	CU_ASSERT_FALSE(res.err_truncated);
	CU_ASSERT(res.out && all_bytes(res.out, 64 * MIB, 'a'));
	note = trunc_note("stdout", 64 * MIB, 73400320);
	CU_ASSERT_EQUAL(res.err_len, 2 + strlen(note));
	CU_ASSERT(res.err && strncmp(res.err, "e\n", 2) == 0 &&
		  strcmp(res.err + 2, note) == 0);
	if (res.err && res.err_len > 2 && strcmp(res.err + 2, note) != 0)
		fprintf(stderr, "stderr: %s", res.err);
	free(note);
	/* held while running: nothing like the 64 MiB (allow 16) */
	CU_ASSERT(pr.kib > 0 && pr.kib - base < 16 * 1024);
	/* at the end: once, not twice (64 MiB plus 16 of slack) */
	CU_ASSERT(hwm > 0 && hwm - base < 80 * 1024);
	fprintf(stderr, "rss: base %ld KiB, while running +%ld, peak +%ld\n",
		base, pr.kib - base, hwm - base);
	nox_exec_result_cleanup(&res);
	unlink(flag);

	/* the spool files were never linked in */
	d = opendir(spool);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	for (struct dirent *de = readdir(d); de; de = readdir(d))
		CU_ASSERT(strcmp(de->d_name, ".") == 0 ||
			  strcmp(de->d_name, "..") == 0);
	closedir(d);
	tu_rm_rf(spool);
	free(spool);
	free(b64);
	free(flag);
}

/*
 * The command's umask is 022 (or the one asked for) whatever ours is:
 * noxfs runs with umask 0.
 */
static void umask_case(bool unisolated, bool set, mode_t mask, const char *want)
{
	const char *argv[] = {"sh", "-c",
			      "rm -rf um_f um_d; touch um_f; mkdir um_d; "
			      "stat -c %a um_f um_d; umask",
			      NULL};
	struct sbx_exec_opts o = {
	    .unisolated = unisolated, .umask_set = set, .umask = mask};
	struct nox_exec_result res;
	struct nox_err err = {0};
	mode_t old = umask(0);

	CU_ASSERT_EQUAL(run_full(&o, argv, NULL, NULL, 10, &res, &err), 0);
	umask(old);
	CU_ASSERT_STRING_EQUAL(res.out ? res.out : "", want);
	nox_exec_result_cleanup(&res);
}

static void test_umask(void)
{
	char *f = tu_strf("%s/um_f", ws), *d = tu_strf("%s/um_d", ws);

	umask_case(false, false, 0, "644\n755\n0022\n");
	umask_case(true, false, 0, "644\n755\n0022\n");
	umask_case(false, true, 077, "600\n700\n0077\n");
	umask_case(true, true, 027, "640\n750\n0027\n");
	umask_case(false, true, 0, "666\n777\n0000\n"); /* asked for */
	unlink(f);
	rmdir(d);
	free(f);
	free(d);
}

static void test_argv_exact(void)
{
	const char *argv[] = {
	    "printf", "%s\n",	      "a b",   "'single'", "\"double\"",
	    "*",      "line1\nline2", "$HOME", "",	   "-n",
	    "`id`",   "; rm -rf /",   "\\",    NULL};
	const char *want = "a b\n'single'\n\"double\"\n*\nline1\nline2\n"
			   "$HOME\n\n-n\n`id`\n; rm -rf /\n\\\n";
	const char *printf_fmt[] = {"printf", "%s|", "x", NULL};
	struct nox_exec_result res;

	if (run_ok(argv, &res) == 0) {
		CU_ASSERT_EQUAL(res.exit_code, 0);
		CU_ASSERT_STRING_EQUAL(res.out, want);
	}
	nox_exec_result_cleanup(&res);
	if (run_ok(printf_fmt, &res) == 0)
		CU_ASSERT_STRING_EQUAL(res.out, "x|");
	nox_exec_result_cleanup(&res);
}

static void test_isolation_etc(void)
{
	char *name = tu_strf("/etc/nox-exec-test-%d", (int)getpid());
	const char *argv[] = {"touch", name, NULL};
	const char *usr[] = {"sh", "-c", "echo x > /usr/nox-exec-test", NULL};
	struct nox_exec_result res;

	if (run_ok(argv, &res) == 0)
		CU_ASSERT_NOT_EQUAL(res.exit_code, 0);
	CU_ASSERT_EQUAL(access(name, F_OK), -1);
	nox_exec_result_cleanup(&res);
	if (run_ok(usr, &res) == 0)
		CU_ASSERT_NOT_EQUAL(res.exit_code, 0);
	CU_ASSERT_EQUAL(access("/usr/nox-exec-test", F_OK), -1);
	nox_exec_result_cleanup(&res);
	unlink(name);
	free(name);
}

static void test_isolation_tmp(void)
{
	char path[] = "/tmp/nox-exec-secret-XXXXXX";
	const char *argv[] = {"cat", path, NULL};
	struct nox_exec_result res;
	int fd = mkstemp(path);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, "topsecret", 9), 9);
	close(fd);
	if (run_ok(argv, &res) == 0) {
		CU_ASSERT_NOT_EQUAL(res.exit_code, 0);
		CU_ASSERT_PTR_NULL(strstr(res.out, "topsecret"));
	}
	nox_exec_result_cleanup(&res);
	unlink(path);
}

/* Runs the /dev/tcp probe; returns whether the listener saw a connection. */
static bool net_probe(const struct sbx_exec_opts *o, int *exit_code)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	struct nox_exec_result res;
	char script[128];
	const char *argv[] = {"bash", "-c", script, NULL};
	bool got = false;
	int ls, c;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(ls >= 0);
	CU_ASSERT_FATAL(bind(ls, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CU_ASSERT_FATAL(listen(ls, 4) == 0);
	CU_ASSERT_FATAL(getsockname(ls, (struct sockaddr *)&sa, &sl) == 0);
	snprintf(script, sizeof(script), "echo hi > /dev/tcp/127.0.0.1/%d",
		 ntohs(sa.sin_port));
	*exit_code = -1;
	if (run_full(o, argv, NULL, NULL, 10, &res, NULL) == 0)
		*exit_code = res.exit_code;
	nox_exec_result_cleanup(&res);
	c = accept(ls, NULL, NULL);
	if (c >= 0) {
		got = true;
		close(c);
	} else {
		CU_ASSERT(errno == EAGAIN || errno == EWOULDBLOCK);
	}
	close(ls);
	return got;
}

static void test_isolation_network(void)
{
	struct sbx_exec_opts share = {.allow_network = true};
	int code;

	CU_ASSERT_FALSE(net_probe(NULL, &code));
	CU_ASSERT(code > 0);
	/* Control: with the host network the same probe connects. */
	CU_ASSERT_TRUE(net_probe(&share, &code));
	CU_ASSERT_EQUAL(code, 0);
}

static void test_workspace_writable(void)
{
	const char *argv[] = {"sh", "-c",
			      "echo hello > /workspace/out.txt && "
			      "mkdir -p d/e && echo x > d/e/f",
			      NULL};
	struct nox_exec_result res;
	char *p = tu_strf("%s/out.txt", ws), *q = tu_strf("%s/d/e/f", ws);
	char *txt;

	if (run_ok(argv, &res) == 0)
		CU_ASSERT_EQUAL(res.exit_code, 0);
	nox_exec_result_cleanup(&res);
	txt = tu_read_file(p, NULL);
	CU_ASSERT_STRING_EQUAL(txt ? txt : "", "hello\n");
	free(txt);
	txt = tu_read_file(q, NULL);
	CU_ASSERT_STRING_EQUAL(txt ? txt : "", "x\n");
	free(txt);
	unlink(p);
	free(p);
	free(q);
	p = tu_strf("%s/d", ws);
	tu_rm_rf(p);
	free(p);
}

/* Every line of ls /proc/self/fd must be 0, 1, 2 or ls's own 3. */
static void check_fds(const struct sbx_exec_opts *o)
{
	const char *argv[] = {"ls", "/proc/self/fd", NULL};
	struct nox_exec_result res;
	char *line, *save = NULL;
	int n = 0;

	CU_ASSERT_EQUAL(run_full(o, argv, NULL, NULL, 10, &res, NULL), 0);
	CU_ASSERT_EQUAL(res.exit_code, 0);
	for (line = strtok_r(res.out ? res.out : (char *)"", "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		CU_ASSERT(strcmp(line, "0") == 0 || strcmp(line, "1") == 0 ||
			  strcmp(line, "2") == 0 || strcmp(line, "3") == 0);
		if (strlen(line) != 1 || line[0] > '3')
			fprintf(stderr, "leaked fd %s\n", line);
		n++;
	}
	CU_ASSERT(n >= 3 && n <= 4);
	nox_exec_result_cleanup(&res);
}

static void test_no_fd_leak(void)
{
	struct sbx_exec_opts un = {.unisolated = true};
	int leak = open("/dev/null", O_RDONLY); /* deliberately no CLOEXEC */
	int p[2];

	CU_ASSERT(leak >= 0);
	CU_ASSERT_EQUAL(pipe(p), 0);
	check_fds(NULL);
	check_fds(&un);
	close(leak);
	close(p[0]);
	close(p[1]);
}

struct th_arg {
	int idx;
	int fails;
};

static void *conc_main(void *p)
{
	struct th_arg *a = p;
	char tag[32];
	const char *argv[] = {
	    "sh",
	    "-c",
	    "i=0; while [ $i -lt 3000 ]; do echo \"$1\"; i=$((i+1)); done; "
	    "echo \"$1\" >&2",
	    "sh",
	    tag,
	    NULL};
	struct nox_exec_result res;
	size_t tl, i;
	int k;

	snprintf(tag, sizeof(tag), "thread-%d", a->idx);
	tl = strlen(tag) + 1;
	for (k = 0; k < 3; k++) {
		if (run_full(NULL, argv, NULL, NULL, 60, &res, NULL) != 0) {
			a->fails++;
			continue;
		}
		if (res.exit_code != 0 || res.out_len != 3000 * tl ||
		    res.err_len != tl)
			a->fails++;
		for (i = 0; res.out && i + tl <= res.out_len; i += tl)
			if (memcmp(res.out + i, tag, tl - 1) != 0 ||
			    res.out[i + tl - 1] != '\n') {
				a->fails++;
				break;
			}
		nox_exec_result_cleanup(&res);
	}
	return NULL;
}

static void test_concurrent(void)
{
	struct th_arg a[4];
	pthread_t th[4];
	int i;

	for (i = 0; i < 4; i++) {
		a[i].idx = i;
		a[i].fails = 0;
		CU_ASSERT_EQUAL_FATAL(
		    pthread_create(&th[i], NULL, conc_main, &a[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT_EQUAL(a[i].fails, 0);
	}
}

static void test_memory_limit(void)
{
	const char *big[] = {"python3", "-c", "b = bytearray(3 << 30)", NULL};
	const char *small[] = {"python3", "-c",
			       "b = bytearray(100 << 20); print(len(b))", NULL};
	struct sbx_exec_opts o = {.memory_limit = 512ULL * MIB};
	struct nox_exec_result res;

	if (access("/usr/bin/python3", X_OK) != 0) {
		CU_FAIL("python3 is needed for the memory limit test");
		return;
	}
	CU_ASSERT_EQUAL(run_full(&o, big, NULL, NULL, 30, &res, NULL), 0);
	CU_ASSERT_NOT_EQUAL(res.exit_code, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(res.err ? res.err : "", "MemoryError"));
	nox_exec_result_cleanup(&res);
	/* Control: an allocation under the limit works. */
	CU_ASSERT_EQUAL(run_full(&o, small, NULL, NULL, 30, &res, NULL), 0);
	CU_ASSERT_EQUAL(res.exit_code, 0);
	CU_ASSERT_STRING_EQUAL(res.out ? res.out : "", "104857600\n");
	nox_exec_result_cleanup(&res);
	/* The default limit (2 GiB) stops 3 GiB too. */
	CU_ASSERT_EQUAL(run_full(NULL, big, NULL, NULL, 30, &res, NULL), 0);
	CU_ASSERT_NOT_EQUAL(res.exit_code, 0);
	nox_exec_result_cleanup(&res);
}

static void test_unisolated(void)
{
	const char *pwd[] = {"sh", "-c", "pwd; echo \"$HOME\"; touch marker",
			     NULL};
	const char *missing[] = {"nox-no-such-program-4711", NULL};
	const char *envv[] = {"env", NULL};
	struct sbx_exec_opts un = {.unisolated = true};
	struct nox_exec_result res;
	struct nox_err err = {0};
	char *want, *sub = tu_strf("%s/usub", ws);
	char *marker = tu_strf("%s/usub/marker", ws);

	CU_ASSERT_EQUAL(mkdir(sub, 0755), 0);
	CU_ASSERT_EQUAL(
	    run_full(&un, pwd, "/workspace/usub", NULL, 10, &res, &err), 0);
	want = tu_strf("%s/usub\n%s\n", ws_real, ws_real);
	CU_ASSERT_STRING_EQUAL(res.out ? res.out : "", want);
	CU_ASSERT_EQUAL(access(marker, F_OK), 0);
	free(want);
	nox_exec_result_cleanup(&res);

	CU_ASSERT_EQUAL(run_full(&un, missing, NULL, NULL, 10, &res, &err), 0);
	CU_ASSERT_EQUAL(res.exit_code, 127);
	nox_exec_result_cleanup(&res);

	setenv("NOX_EXEC_HOST_SECRET", "leaked", 1);
	CU_ASSERT_EQUAL(run_full(&un, envv, NULL, NULL, 10, &res, &err), 0);
	CU_ASSERT_PTR_NULL(strstr(res.out ? res.out : "", "leaked"));
	CU_ASSERT_PTR_NOT_NULL(strstr(res.out ? res.out : "", "LANG=C.UTF-8"));
	nox_exec_result_cleanup(&res);
	unsetenv("NOX_EXEC_HOST_SECRET");

	CU_ASSERT_EQUAL(run_full(&un, pwd, "/etc", NULL, 10, &res, &err),
			-EINVAL);
	CU_ASSERT_EQUAL(run_full(&un, pwd, "nothere", NULL, 10, &res, &err),
			-ENOENT);
	tu_rm_rf(sub);
	free(sub);
	free(marker);
}

static void test_bwrap_missing(void)
{
	const char *argv[] = {"true", NULL};
	struct sbx_exec_opts o = {.bwrap_path = "/nonexistent/bwrap"};
	struct sbx_exec_opts o2 = {.bwrap_path = "nox-no-such-bwrap"};
	struct nox_exec_result res;
	struct nox_err err = {0};

	CU_ASSERT_EQUAL(run_full(&o, argv, NULL, NULL, 5, &res, &err), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "apt-get install bubblewrap"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bwrap not found"));
	CU_ASSERT_PTR_NULL(res.out);
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(run_full(&o2, argv, NULL, NULL, 5, &res, &err),
			-ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "apt-get install bubblewrap"));
}

/* ---- cgroup limits (the process count is what root cannot rlimit) ---- */

/* True when NOX_NO_SKIP=1: a missing prerequisite is then a failure. */
static bool no_skip(void)
{
	const char *ns = getenv("NOX_NO_SKIP");

	return ns && strcmp(ns, "1") == 0;
}

/* Number of processes on the host, and of those naming needle. */
static int count_procs(const char *needle)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	for (;;) {
		char path[300], buf[4096];
		ssize_t len;
		int fd;

		de = readdir(d);
		if (!de)
			break;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if (!needle) {
			n++;
			continue;
		}
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf));
		close(fd);
		if (len > 0 && memmem(buf, (size_t)len, needle, strlen(needle)))
			n++;
	}
	closedir(d);
	return n;
}

/* Polls (up to ms) until no process names needle; the count left. */
static int wait_no_procs(const char *needle, int ms)
{
	long long until = now_ms() + ms;
	int n;

	for (;;) {
		n = count_procs(needle);
		if (n == 0 || now_ms() >= until)
			return n;
		usleep(20 * 1000);
	}
}

/* Whether a cgroup bounds the command: true, or reports why not. */
static bool cgroup_in_use(const char *what)
{
	if (sbx_exec_pids_limit() == SBX_PIDS_CGROUP1 ||
	    sbx_exec_pids_limit() == SBX_PIDS_CGROUP2)
		return true;
	fprintf(stderr, "\n  %s: no usable cgroup (mode %d)%s\n", what,
		sbx_exec_pids_limit(), no_skip() ? "" : ", check skipped");
	if (no_skip())
		CU_FAIL("no usable cgroup for the process limit");
	return false;
}

/* Our leftover cgroup directories (named <pid>-<n>) below noxfs/. */
static int own_cgroups(void)
{
	static const char *const parents[] = {"/sys/fs/cgroup/pids/noxfs",
					      "/sys/fs/cgroup/noxfs"};
	char prefix[32];
	struct dirent *de;
	size_t i;
	int n = 0;

	snprintf(prefix, sizeof(prefix), "%ld-", (long)getpid());
	for (i = 0; i < sizeof(parents) / sizeof(parents[0]); i++) {
		DIR *d = opendir(parents[i]);

		if (!d)
			continue;
		for (de = readdir(d); de; de = readdir(d))
			if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
				n++;
		closedir(d);
	}
	return n;
}

/*
 * Hostile: as root (RLIMIT_NPROC does not apply) a loop forks 'sleep'
 * 200 times, printing how many it started, with max_procs 16.  The
 * fork fails before 16; everything it started is gone on return.
 */
static void pids_case(const struct sbx_exec_opts *o)
{
	const char *argv[] = {
	    "sh", "-c",
	    "i=0; while [ $i -lt 200 ]; do sleep 30.4711 & i=$((i+1)); "
	    "echo $i; done",
	    NULL};
	struct nox_exec_result res;
	const char *last;
	long n = -1;

	CU_ASSERT_EQUAL(run_full(o, argv, NULL, NULL, 10, &res, NULL), 0);
	if (!cgroup_in_use("pids limit")) {
		nox_exec_result_cleanup(&res);
		return;
	}
	CU_ASSERT_NOT_EQUAL(res.exit_code, 0);
	CU_ASSERT_NOT_EQUAL(res.exit_code, 124); /* stopped by the limit */
	if (res.out && res.out_len > 0) {
		last = res.out + res.out_len - 1;
		while (last > res.out && last[-1] != '\n')
			last--;
		if (last > res.out)
			last--;
		while (last > res.out && last[-1] != '\n')
			last--;
		n = strtol(last, NULL, 10);
	}
	CU_ASSERT(n >= 1 && n < 16);
	if (!(n >= 1 && n < 16))
		fprintf(stderr, "\n  started %ld of 200 (limit 16): %.200s\n",
			n, res.err ? res.err : "");
	CU_ASSERT_EQUAL(wait_no_procs("30.4711", 2000), 0);
	CU_ASSERT_EQUAL(own_cgroups(), 0);
	nox_exec_result_cleanup(&res);
}

static void test_pids_limit(void)
{
	struct sbx_exec_opts iso = {.max_procs = 16};
	struct sbx_exec_opts un = {.max_procs = 16, .unisolated = true};

	pids_case(&iso);
	pids_case(&un);
}

/*
 * Hostile: the fork bomb, bounded: up to 100000 background
 * 'sleep 30.4712' with max_procs 64 and a 10 s timeout.  The command
 * ends within the timeout (non-zero or 124), afterwards no process of it
 * survives anywhere on the host, the host's process count is back where
 * it was (within what other users of this machine may start), and its
 * cgroup is gone.  Isolated and unisolated.
 */
static void bomb_case(const struct sbx_exec_opts *o)
{
	const char *argv[] = {"sh", "-c",
			      "i=0; while [ $i -lt 100000 ]; do "
			      "sleep 30.4712 & i=$((i+1)); done",
			      NULL};
	struct nox_exec_result res;
	int before = count_procs(NULL), after;
	long long t0 = now_ms(), until;

	CU_ASSERT_EQUAL(run_full(o, argv, NULL, NULL, 10, &res, NULL), 0);
	CU_ASSERT(now_ms() - t0 < 10000 + 3000);
	CU_ASSERT_NOT_EQUAL(res.exit_code, 0);
	CU_ASSERT_EQUAL(count_procs("30.4712"), 0);
	until = now_ms() + 3000;
	do {
		after = count_procs(NULL);
		if (after <= before + 8)
			break;
		usleep(50 * 1000);
	} while (now_ms() < until);
	CU_ASSERT(after <= before + 8);
	if (after > before + 8)
		fprintf(stderr, "\n  processes: %d before, %d after\n", before,
			after);
	if (cgroup_in_use("fork bomb"))
		CU_ASSERT_EQUAL(own_cgroups(), 0);
	nox_exec_result_cleanup(&res);
	/* Whatever happened, nothing of it may outlive the test. */
	wait_no_procs("30.4712", 1000);
}

static void test_fork_bomb(void)
{
	struct sbx_exec_opts iso = {.max_procs = 64};
	struct sbx_exec_opts un = {.max_procs = 64, .unisolated = true};

	bomb_case(&iso);
	bomb_case(&un);
}

/*
 * Hostile: fill the sandbox's private /tmp (a tmpfs, which RLIMIT_AS
 * does not bound: it is page cache, not address space) with 600 MiB
 * under a 128 MiB memory limit.  The cgroup stops it: the write fails or
 * the command is killed, and "filled" is never printed.
 */
static void test_memory_cgroup_tmpfs(void)
{
	const char *argv[] = {"sh", "-c",
			      "head -c 629145600 /dev/zero > /tmp/fill && "
			      "echo filled",
			      NULL};
	struct sbx_exec_opts o = {.memory_limit = 128ULL * MIB};
	struct nox_exec_result res;

	CU_ASSERT_EQUAL(run_full(&o, argv, NULL, NULL, 30, &res, NULL), 0);
	if (cgroup_in_use("memory cgroup")) {
		CU_ASSERT_NOT_EQUAL(res.exit_code, 0);
		CU_ASSERT_PTR_NULL(strstr(res.out ? res.out : "", "filled"));
	}
	nox_exec_result_cleanup(&res);
}

/*
 * Hostile: root in the sandbox tries to mount a cgroupfs (to raise its
 * own pids.max) and to create a device node: it holds no capability.
 */
static void test_no_capabilities(void)
{
	const char *argv[] = {
	    "sh", "-c",
	    "grep CapEff /proc/self/status; mkdir -p /tmp/c; "
	    "mount -t cgroup -o pids none /tmp/c 2>/dev/null && echo MOUNTED; "
	    "mknod /tmp/d b 8 0 2>/dev/null && echo MKNOD; true",
	    NULL};
	struct nox_exec_result res;

	if (geteuid() != 0)
		return; /* unprivileged bwrap never has them */
	if (run_ok(argv, &res) == 0) {
		CU_ASSERT_PTR_NOT_NULL(
		    strstr(res.out, "CapEff:\t0000000000000000"));
		CU_ASSERT_PTR_NULL(strstr(res.out, "MOUNTED"));
		CU_ASSERT_PTR_NULL(strstr(res.out, "MKNOD"));
	}
	nox_exec_result_cleanup(&res);
}

static bool have_bwrap(void)
{
	return access("/usr/bin/bwrap", X_OK) == 0 ||
	       access("/usr/local/bin/bwrap", X_OK) == 0 ||
	       access("/bin/bwrap", X_OK) == 0;
}

int main(void)
{
	static const struct tu_test tests[] = {
	    {"exit codes", test_exit_codes},
	    {"stdin is /dev/null", test_stdin_is_null},
	    {"bad requests", test_bad_requests},
	    {"timeout 124", test_timeout},
	    {"double fork killed", test_double_fork_killed},
	    {"unisolated double fork killed",
	     test_unisolated_double_fork_killed},
	    {"leftover writer", test_leftover_writer},
	    {"unisolated escaped writer", test_unisolated_escaped_writer},
	    {"127 and 126", test_not_found_127_126},
	    {"env", test_env},
	    {"env not given to bwrap", test_env_not_given_to_bwrap},
	    {"workdir", test_workdir},
	    {"big output", test_big_output},
	    {"default cap, output kept in files", test_default_cap},
	    {"umask", test_umask},
	    {"argv exact", test_argv_exact},
	    {"isolation /etc", test_isolation_etc},
	    {"isolation /tmp", test_isolation_tmp},
	    {"isolation network", test_isolation_network},
	    {"workspace writable", test_workspace_writable},
	    {"no fd leak", test_no_fd_leak},
	    {"concurrent", test_concurrent},
	    {"memory limit", test_memory_limit},
	    {"unisolated", test_unisolated},
	    {"bwrap missing", test_bwrap_missing},
	    {"pids limit", test_pids_limit},
	    {"fork bomb", test_fork_bomb},
	    {"memory cgroup tmpfs", test_memory_cgroup_tmpfs},
	    {"no capabilities", test_no_capabilities},
	    {NULL, NULL}};
	const char *ns = getenv("NOX_NO_SKIP");
	int rc;

	if (!have_bwrap()) {
		fprintf(stderr, "bwrap not installed\n");
		return ns && strcmp(ns, "1") == 0 ? 1 : 77;
	}
	ws = tu_mkdtemp("exec");
	ws_real = realpath(ws, NULL);
	if (!ws_real)
		return 1;
	rc = tu_main("exec", tests);
	tu_rm_rf(ws);
	free(ws);
	free(ws_real);
	return rc;
}
