/*
 * sbx_exec.c - run one command in a local sandbox, isolated by bubblewrap.
 *
 * The command's argv is run as  /bin/sh -c 'exec "$0" "$@"' ARGV...  so a
 * missing program gives 127 and a non-executable one 126, as a shell
 * would, while the argv reaches the program unchanged (no shell string is
 * ever built from it).  Isolated, that runs inside bwrap: the host's /usr
 * and /etc read-only, the workspace bound read-write at /workspace, a
 * private /tmp, /dev and /proc, every namespace unshared (no network
 * unless asked for) and a clean environment.
 *
 * The command runs with umask 022 (or the one configured), whatever the
 * caller's is: noxfs runs with umask 0, as a FUSE server must.
 *
 * Output is kept in unlinked temp files (in spool_dir, else /tmp), not in
 * memory, while the command runs, and read back into the result's buffers
 * once at the end, so a command near the cap costs its output once in the
 * heap.  A cut stream is flagged and named in a last line of stderr
 * (NOX_EXEC_TRUNCATED_NOTE).
 *
 * Limits: wall-clock timeout (exit code 124, the whole process tree is
 * killed), RLIMIT_AS, RLIMIT_CORE 0, a per-stream output cap (the rest is
 * read and dropped so the command never blocks on a full pipe), and a
 * process-count and memory limit for the whole command through a cgroup
 * made for it: cgroup v2 (ROOT/noxfs/<pid>-<n>, when the unified mount
 * offers "pids" and is writable) or else v1 (<our pids cgroup>/noxfs/...
 * with pids.max, and the same below our memory cgroup with
 * memory.limit_in_bytes and memsw).  The child enters it before exec;
 * when the command ends everything still in it is killed (v2 cgroup.kill;
 * v1 pids.max 0, then SIGKILL to each pid in cgroup.procs until empty)
 * and the directory is removed.  With no usable cgroup only RLIMIT_NPROC
 * remains, which root ignores: a fork bomb run as root is then bounded by
 * the timeout alone, and the sandbox's /tmp (a tmpfs) by nothing.
 * sbx_exec_pids_limit() tells which applied.  The v2 path has not been
 * exercised on this project's CI machine (cgroup v1 there).
 *
 * Run as root, the sandbox also drops every capability (--cap-drop ALL):
 * with CAP_SYS_ADMIN in its namespaces it could mount a cgroupfs and
 * raise its own limits.  The host's secrets in /etc (shadow, gshadow,
 * ssh host keys, /etc/ssl/private) are covered, since root inside owns
 * them as root outside does.
 *
 * When the command's main process exits, whatever it left behind dies
 * with it: bwrap's pid namespace takes care of that isolated; unisolated
 * we kill the process group.  Output is collected for at most a short
 * grace period after that, so a writer that escaped can never hang us.
 *
 * Thread-safe: everything the child needs is built before fork(); the
 * child only makes async-signal-safe calls.  Children are reaped with
 * waitpid() on their own pid, never through a SIGCHLD handler, so the
 * process must not set SIGCHLD to SIG_IGN.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nox/id.h>

#include "array_i.h"
#include "fdio_i.h"
#include "sbx_exec_i.h"

#define SBX_SANDBOX_PATH                                                       \
	"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SBX_DEFAULT_MEMORY (2ULL * 1024 * 1024 * 1024)
#define SBX_DEFAULT_PROCS  256
#define SBX_EXEC_SCRIPT	   "exec \"$0\" \"$@\""
#define SBX_GRACE_MS	   1000
#define SBX_NS_WAIT_MS	   2000
#define SBX_BWRAP_HINT                                                         \
	"bwrap not found: install bubblewrap (apt-get install bubblewrap)"

/* Child fds at fixed numbers, so the argv built before fork can name them. */
#define SBX_FD_REPORT 3 /* CLOEXEC: EOF means execve succeeded */
#define SBX_FD_INFO   4 /* bwrap --info-fd */
#define SBX_FD_MIN    5 /* parent fds are moved at or above this */

/* What the child reports through SBX_FD_REPORT when it cannot exec. */
enum { SBX_STAGE_CHDIR = 1, SBX_STAGE_EXEC = 2, SBX_STAGE_CGROUP = 3 };

/* A growable NULL-terminated array of strings it owns. */
struct strv {
	char **v;
	size_t n, alloc;
	bool oom;
};

/* Everything the child needs, built before fork. */
struct plan {
	char *exe; /* bwrap or /bin/sh, host path */
	struct strv argv;
	struct strv envp;     /* the command's environment */
	struct strv exe_envp; /* what exe itself gets */
	char *chdir_dir;      /* unisolated only: host directory */
	bool isolated;	      /* bwrap with --info-fd */
	struct rlimit lim_as, lim_nproc, lim_core;
	unsigned procs;		/* pids.max of the command's cgroup */
	uint64_t mem;		/* its memory limit */
	const char *cg_join[2]; /* cgroup.procs to enter; NULL: none */
	int max_fd;		/* for the close() fallback loop */
	mode_t umask;		/* the command's */
	const char *spool_dir;	/* where output is kept; never NULL */
	struct sigaction dfl;
	sigset_t empty;
};

/* One captured stream, kept in an unlinked file until the command ends. */
struct capture {
	int fd;			 /* pipe read end, -1 once closed */
	int spool;		 /* what is kept; -1 until the first byte */
	const char *dir;	 /* where the spool is made */
	size_t len, cap;	 /* bytes kept; the most to keep */
	unsigned long long seen; /* bytes read, kept or not */
	int spool_err;		 /* errno of the first failure to keep output */
	bool in_memory;		 /* the spool moved to a memfd (disk full) */
	char last;		 /* the last byte kept */
};

static void strv_free(struct strv *sv)
{
	size_t i;

	for (i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	memset(sv, 0, sizeof(*sv));
}

/* Appends a copy of s; failures are remembered in sv->oom. */
static void strv_add(struct strv *sv, const char *s)
{
	char **nv;
	char *c;

	if (sv->oom)
		return;
	nv = nox_array_grow(sv->v, &sv->alloc, sv->n + 2, sizeof(*nv));
	if (!nv) {
		sv->oom = true;
		return;
	}
	sv->v = nv;
	c = strdup(s);
	if (!c) {
		sv->oom = true;
		return;
	}
	sv->v[sv->n++] = c;
	sv->v[sv->n] = NULL;
}

static void strv_add2(struct strv *sv, const char *a, const char *b)
{
	strv_add(sv, a);
	strv_add(sv, b);
}

static void strv_add3(struct strv *sv, const char *a, const char *b,
		      const char *c)
{
	strv_add(sv, a);
	strv_add(sv, b);
	strv_add(sv, c);
}

/* Adds "key=value" to an environment, replacing an earlier key. */
static void env_put(struct strv *env, const char *key, size_t klen,
		    const char *value)
{
	size_t i, vlen = strlen(value);
	char *kv;

	if (env->oom)
		return;
	kv = malloc(klen + vlen + 2);
	if (!kv) {
		env->oom = true;
		return;
	}
	memcpy(kv, key, klen);
	kv[klen] = '=';
	memcpy(kv + klen + 1, value, vlen + 1);
	for (i = 0; i < env->n; i++) {
		if (strncmp(env->v[i], key, klen) == 0 &&
		    env->v[i][klen] == '=') {
			free(env->v[i]);
			env->v[i] = kv;
			return;
		}
	}
	strv_add(env, kv);
	free(kv);
}

static void plan_cleanup(struct plan *pl)
{
	free(pl->exe);
	free(pl->chdir_dir);
	strv_free(&pl->argv);
	strv_free(&pl->envp);
	strv_free(&pl->exe_envp);
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Closes *fd if open and marks it closed. */
static void fd_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/*
 * Moves *fd to a number >= SBX_FD_MIN (still close-on-exec), so the
 * child's dup2() onto 0..4 never overwrites a source it still needs.
 */
static int fd_move_high(int *fd)
{
	int nfd;

	if (*fd >= SBX_FD_MIN)
		return 0;
	nfd = fcntl(*fd, F_DUPFD_CLOEXEC, SBX_FD_MIN);
	if (nfd < 0)
		return -errno;
	close(*fd);
	*fd = nfd;
	return 0;
}

static int pipe_high(int p[2])
{
	int r;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	r = fd_move_high(&p[0]);
	if (r == 0)
		r = fd_move_high(&p[1]);
	return r;
}

static bool is_exec_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	       access(path, X_OK) == 0;
}

/* Finds bwrap; *out is malloc'd, caller frees. */
static int find_bwrap(const char *want, char **out, struct nox_err *err)
{
	const char *name = want && want[0] ? want : "bwrap";
	const char *path, *p, *colon;
	char buf[PATH_MAX];
	size_t dl;

	*out = NULL;
	if (strchr(name, '/')) {
		if (!is_exec_file(name))
			return nox_err_set(err, ENOENT, "%s (tried %s)",
					   SBX_BWRAP_HINT, name);
		*out = strdup(name);
		return *out ? 0 : nox_err_set(err, ENOMEM, "out of memory");
	}
	path = getenv("PATH");
	if (!path || !path[0])
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path;; p = colon + 1) {
		colon = strchr(p, ':');
		dl = colon ? (size_t)(colon - p) : strlen(p);
		if (dl == 0) {
			/* An empty PATH entry is the cwd: never trust it. */
		} else if (dl + 1 + strlen(name) < sizeof(buf)) {
			snprintf(buf, sizeof(buf), "%.*s/%s", (int)dl, p, name);
			if (is_exec_file(buf)) {
				*out = strdup(buf);
				return *out ? 0
					    : nox_err_set(err, ENOMEM,
							  "out of memory");
			}
		}
		if (!colon)
			break;
	}
	return nox_err_set(err, ENOENT, "%s", SBX_BWRAP_HINT);
}

/*
 * The sandbox environment: fixed PATH, HOME and LANG, then the request's
 * "K=V" entries (which may override them).
 */
static int build_env(struct strv *env, const char *home,
		     const char *const *req_env, struct nox_err *err)
{
	size_t i;
	const char *eq;

	env_put(env, "PATH", 4, SBX_SANDBOX_PATH);
	env_put(env, "HOME", 4, home);
	env_put(env, "LANG", 4, "C.UTF-8");
	for (i = 0; req_env && req_env[i]; i++) {
		eq = strchr(req_env[i], '=');
		if (!eq || eq == req_env[i])
			return nox_err_set(err, EINVAL,
					   "environment entry '%s' is not "
					   "KEY=VALUE with a non-empty key",
					   req_env[i]);
		env_put(env, req_env[i], (size_t)(eq - req_env[i]), eq + 1);
	}
	return env->oom ? nox_err_set(err, ENOMEM, "out of memory") : 0;
}

/* --symlink or --ro-bind-try for a top-level directory, as on the host. */
static void bwrap_toplevel(struct strv *a, const char *dir)
{
	char target[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (lstat(dir, &st) < 0)
		return;
	if (S_ISLNK(st.st_mode)) {
		n = readlink(dir, target, sizeof(target) - 1);
		if (n <= 0)
			return;
		target[n] = '\0';
		strv_add3(a, "--symlink", target, dir);
	} else if (S_ISDIR(st.st_mode)) {
		strv_add3(a, "--ro-bind-try", dir, dir);
	}
}

/*
 * The host's /etc is visible read-only, and root in the sandbox owns what
 * root owns there: its password hashes and private keys are covered with
 * an empty file (or directory) so the command cannot read them.
 */
static void mask_secrets(struct strv *a)
{
	static const char *const files[] = {
	    "/etc/shadow",   "/etc/shadow-",	 "/etc/gshadow",
	    "/etc/gshadow-", "/etc/krb5.keytab", "/etc/security/opasswd"};
	static const char *const dirs[] = {"/etc/ssl/private"};
	char path[PATH_MAX];
	struct dirent *de;
	struct stat st;
	size_t i, n;
	DIR *d;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (lstat(files[i], &st) == 0 && S_ISREG(st.st_mode))
			strv_add3(a, "--ro-bind", "/dev/null", files[i]);
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (lstat(dirs[i], &st) == 0 && S_ISDIR(st.st_mode))
			strv_add2(a, "--tmpfs", dirs[i]);
	/* ssh_host_*_key, not the .pub halves. */
	d = opendir("/etc/ssh");
	if (!d)
		return;
	for (;;) {
		de = readdir(d);
		if (!de)
			break;
		n = strlen(de->d_name);
		if (strncmp(de->d_name, "ssh_host_", 9) != 0 || n < 13 ||
		    strcmp(de->d_name + n - 4, "_key") != 0)
			continue;
		snprintf(path, sizeof(path), "/etc/ssh/%s", de->d_name);
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
			strv_add3(a, "--ro-bind", "/dev/null", path);
	}
	closedir(d);
}

static void add_command(struct strv *a, const char *const *argv)
{
	size_t i;

	strv_add3(a, "/bin/sh", "-c", SBX_EXEC_SCRIPT);
	for (i = 0; argv[i]; i++)
		strv_add(a, argv[i]);
}

static int build_plan(const struct sbx_exec_opts *opts, const char *ws,
		      const char *rel, const char *host_wd,
		      const struct nox_exec_req *req, struct plan *pl,
		      struct nox_err *err)
{
	static const char *const tops[] = {"/bin", "/lib", "/lib64", "/sbin",
					   "/lib32"};
	struct rlimit cur;
	uint64_t mem =
	    opts->memory_limit ? opts->memory_limit : SBX_DEFAULT_MEMORY;
	unsigned procs = opts->max_procs ? opts->max_procs : SBX_DEFAULT_PROCS;
	struct strv *a = &pl->argv;
	char wd[PATH_MAX + 16];
	size_t i;
	long mx;
	int r;

	pl->isolated = !opts->unisolated;
	pl->umask =
	    opts->umask_set ? opts->umask & 0777 : NOX_DEFAULT_EXEC_UMASK;
	pl->spool_dir =
	    opts->spool_dir && opts->spool_dir[0] ? opts->spool_dir : "/tmp";
	r = build_env(&pl->envp, pl->isolated ? NOX_WORKSPACE : ws, req->env,
		      err);
	if (r < 0)
		return r;

	if (!pl->isolated) {
		pl->exe = strdup("/bin/sh");
		pl->chdir_dir = strdup(host_wd);
		strv_add2(a, "sh", "-c");
		strv_add(a, SBX_EXEC_SCRIPT);
		for (i = 0; req->argv[i]; i++)
			strv_add(a, req->argv[i]);
	} else {
		r = find_bwrap(opts->bwrap_path, &pl->exe, err);
		if (r < 0)
			return r;
		strv_add(a, "bwrap");
		strv_add3(a, "--ro-bind", "/usr", "/usr");
		for (i = 0; i < sizeof(tops) / sizeof(tops[0]); i++)
			bwrap_toplevel(a, tops[i]);
		strv_add3(a, "--ro-bind", "/etc", "/etc");
		mask_secrets(a);
		strv_add3(a, "--bind", ws, NOX_WORKSPACE);
		strv_add2(a, "--tmpfs", "/tmp");
		strv_add2(a, "--dev", "/dev");
		strv_add2(a, "--proc", "/proc");
		strv_add(a, "--unshare-all");
		if (opts->allow_network)
			strv_add(a, "--share-net");
		/* Root in the sandbox keeps no capability: with them it
		 * could mount a cgroupfs and lift its own limits. */
		if (geteuid() == 0)
			strv_add2(a, "--cap-drop", "ALL");
		strv_add(a, "--die-with-parent");
		strv_add(a, "--new-session");
		strv_add2(a, "--hostname", "nox");
		strv_add2(a, "--info-fd", "4");
		strv_add(a, "--clearenv");
		for (i = 0; i < pl->envp.n; i++) {
			char *kv = pl->envp.v[i];
			char *eq = strchr(kv, '=');

			*eq = '\0';
			strv_add3(a, "--setenv", kv, eq + 1);
			*eq = '=';
		}
		snprintf(wd, sizeof(wd), "%s%s%s", NOX_WORKSPACE,
			 rel[0] ? "/" : "", rel);
		strv_add2(a, "--chdir", wd);
		/*
		 * bwrap runs on the host, outside the sandbox: it must never
		 * see the request's environment (LD_PRELOAD=/workspace/x.so
		 * would run sandbox code on the host).  It gets a fixed one.
		 */
		env_put(&pl->exe_envp, "PATH", 4, SBX_SANDBOX_PATH);
		env_put(&pl->exe_envp, "LANG", 4, "C.UTF-8");
		strv_add(a, "--");
		add_command(a, req->argv);
	}
	if (!pl->exe || (!pl->isolated && !pl->chdir_dir) || a->oom ||
	    pl->exe_envp.oom)
		return nox_err_set(err, ENOMEM, "out of memory");

	/* Never raise a hard limit we were given; only lower it. */
	pl->lim_as.rlim_cur = pl->lim_as.rlim_max = (rlim_t)mem;
	pl->lim_nproc.rlim_cur = pl->lim_nproc.rlim_max = (rlim_t)procs;
	pl->procs = procs;
	pl->mem = mem;
	if (getrlimit(RLIMIT_AS, &cur) == 0 &&
	    cur.rlim_max < pl->lim_as.rlim_max)
		pl->lim_as.rlim_cur = pl->lim_as.rlim_max = cur.rlim_max;
	if (getrlimit(RLIMIT_NPROC, &cur) == 0 &&
	    cur.rlim_max < pl->lim_nproc.rlim_max)
		pl->lim_nproc.rlim_cur = pl->lim_nproc.rlim_max = cur.rlim_max;
	mx = sysconf(_SC_OPEN_MAX);
	pl->max_fd = mx > 0 && mx < INT_MAX ? (int)mx : 65536;
	memset(&pl->dfl, 0, sizeof(pl->dfl));
	pl->dfl.sa_handler = SIG_DFL;
	sigemptyset(&pl->dfl.sa_mask);
	sigemptyset(&pl->empty);
	return 0;
}

/* ---- per-exec cgroup ---------------------------------------------------- */

/*
 * Where cgroups live, found once per process: the cgroup2 mount if it
 * offers the pids controller and we may write it, and our own v1 pids and
 * memory cgroup directories.  v1 cgroups are made below our own (limits
 * are hierarchical, so a command never escapes ours); v2 ones below
 * ROOT/noxfs, because v2 forbids a cgroup holding processes (ours) from
 * handing controllers to children.
 */
struct cg_env {
	char v2_root[PATH_MAX]; /* "" when unusable */
	bool v2_memory;		/* the memory controller is there too */
	char v1_pids[PATH_MAX];
	char v1_mem[PATH_MAX];
};

static struct cg_env cg_env;
static pthread_once_t cg_env_once = PTHREAD_ONCE_INIT;
static atomic_uint cg_seq;
static atomic_int cg_last_mode = SBX_PIDS_UNKNOWN;

/* Writes s to path (no O_CREAT); 0 or -errno. */
static int cg_write(const char *path, const char *s)
{
	size_t len = strlen(s);
	ssize_t n;
	int fd, e;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, s, len);
	e = errno;
	close(fd);
	if (n < 0)
		return -e;
	return (size_t)n == len ? 0 : -EIO;
}

/* Reads at most sz-1 bytes of path into buf; length or -errno. */
static ssize_t cg_read(const char *path, char *buf, size_t sz)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len < sz - 1) {
		n = read(fd, buf + len, sz - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

/* True when word appears in list as a whole item split by any of seps. */
static bool has_word(const char *list, const char *word, const char *seps)
{
	size_t wl = strlen(word);
	const char *p = list;

	while (*p) {
		size_t n = strcspn(p, seps);

		if (n == wl && strncmp(p, word, wl) == 0)
			return true;
		p += n;
		if (*p)
			p++;
	}
	return false;
}

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape_octal(char *s)
{
	char *o = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
}

/* Our cgroup path in the v1 hierarchy with controller ctl ("" if none). */
static void cg_own_path(const char *ctl, char *out, size_t sz)
{
	char line[4096], *c1, *c2;
	FILE *f;

	out[0] = '\0';
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		c1 = strchr(line, ':');
		c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		if (has_word(c1 + 1, ctl, ",")) {
			snprintf(out, sz, "%s", c2 + 1);
			break;
		}
	}
	fclose(f);
}

/* dir = mountpoint + (own path relative to the mount's root). */
static void cg_v1_dir(const char *ctl, const char *root, const char *mnt,
		      char *dir, size_t sz)
{
	char own[PATH_MAX];
	const char *rel;
	size_t rl = strlen(root);
	struct stat st;

	cg_own_path(ctl, own, sizeof(own));
	if (strcmp(root, "/") == 0)
		rel = own;
	else if (strncmp(own, root, rl) == 0 &&
		 (own[rl] == '/' || own[rl] == '\0'))
		rel = own + rl;
	else
		rel = ""; /* cannot place ourselves: use the mount's top */
	if (strcmp(rel, "/") == 0)
		rel = "";
	if (snprintf(dir, sz, "%s%s", mnt, rel) >= (int)sz ||
	    stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK) < 0)
		dir[0] = '\0';
}

static void cg_env_init(void)
{
	char line[8192], ctl[PATH_MAX + 32], buf[512];
	char *f[6], *sep, *fstype, *super, *save;
	FILE *mi;
	int i;

	mi = fopen("/proc/self/mountinfo", "re");
	if (!mi)
		return;
	while (fgets(line, sizeof(line), mi)) {
		line[strcspn(line, "\n")] = '\0';
		sep = strstr(line, " - ");
		if (!sep)
			continue;
		*sep = '\0';
		/* id parent maj:min root mountpoint ... */
		save = line;
		for (i = 0; i < 5; i++) {
			f[i] = strsep(&save, " ");
			if (!f[i])
				break;
		}
		if (i < 5)
			continue;
		save = sep + 3;
		fstype = strsep(&save, " ");
		strsep(&save, " "); /* source */
		super = save ? save : "";
		unescape_octal(f[3]);
		unescape_octal(f[4]);
		if (fstype && strcmp(fstype, "cgroup2") == 0 &&
		    !cg_env.v2_root[0] && strcmp(f[3], "/") == 0) {
			snprintf(ctl, sizeof(ctl), "%s/cgroup.controllers",
				 f[4]);
			if (cg_read(ctl, buf, sizeof(buf)) > 0 &&
			    has_word(buf, "pids", " \n") &&
			    access(f[4], W_OK) == 0 &&
			    strlen(f[4]) < sizeof(cg_env.v2_root) - 64) {
				snprintf(cg_env.v2_root, sizeof(cg_env.v2_root),
					 "%s", f[4]);
				cg_env.v2_memory =
				    has_word(buf, "memory", " \n");
			}
		} else if (fstype && strcmp(fstype, "cgroup") == 0) {
			if (!cg_env.v1_pids[0] && has_word(super, "pids", ","))
				cg_v1_dir("pids", f[3], f[4], cg_env.v1_pids,
					  sizeof(cg_env.v1_pids) - 64);
			if (!cg_env.v1_mem[0] && has_word(super, "memory", ","))
				cg_v1_dir("memory", f[3], f[4], cg_env.v1_mem,
					  sizeof(cg_env.v1_mem) - 64);
		}
	}
	fclose(mi);
}

/* One command's cgroups; paths malloc'd, NULL when not made. */
struct sbx_cg {
	int mode;      /* enum sbx_pids_limit */
	char *pids;    /* v1 pids or v2 cgroup directory */
	char *mem;     /* v1 memory directory */
	char *join[2]; /* cgroup.procs files the child writes "0" to */
};

/* Removes dirs that crashed runs left (rmdir fails while populated). */
static void cg_sweep(const char *parent)
{
	struct dirent *de;
	DIR *d;

	d = opendir(parent);
	if (!d)
		return;
	for (;;) {
		char *end;
		long pid;

		de = readdir(d);
		if (!de)
			break;
		errno = 0;
		pid = strtol(de->d_name, &end, 10);
		if (errno || end == de->d_name || *end != '-' || pid <= 0 ||
		    pid > INT_MAX || pid == (long)getpid())
			continue;
		if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
			unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

/*
 * mkdir parent/noxfs, then parent/noxfs/<name>; malloc'd path or NULL.
 * noxfs is removed again when the last command leaves it (a parent left
 * behind would keep whoever owns our cgroup from removing it), so a
 * concurrent exec may remove it between our two mkdirs: retried.
 */
static char *cg_mkdir(const char *parent, const char *name)
{
	char top[PATH_MAX], dir[PATH_MAX + 64];
	int i;

	snprintf(top, sizeof(top), "%s/noxfs", parent);
	snprintf(dir, sizeof(dir), "%s/%s", top, name);
	for (i = 0; i < 8; i++) {
		if (mkdir(top, 0755) < 0 && errno != EEXIST)
			return NULL;
		if ((atomic_load(&cg_seq) & 255) == 1)
			cg_sweep(top);
		if (mkdir(dir, 0755) == 0)
			return strdup(dir);
		if (errno != ENOENT)
			return NULL;
	}
	return NULL;
}

static char *cg_file(const char *dir, const char *file)
{
	size_t n = strlen(dir) + strlen(file) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", dir, file);
	return p;
}

static int cg_set(const char *dir, const char *file, const char *value)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return cg_write(path, value);
}

/* SIGKILLs every process in dir until it is empty (bounded). */
static void cg_kill_dir(const char *dir, bool v2)
{
	char path[PATH_MAX + 32], buf[65536], *p, *end;
	int round;

	if (v2 && cg_set(dir, "cgroup.kill", "1") == 0)
		return;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	for (round = 0; round < 200; round++) {
		bool any = false;

		if (cg_read(path, buf, sizeof(buf)) < 0)
			return;
		for (p = buf; *p;) {
			long pid;

			errno = 0;
			pid = strtol(p, &end, 10);
			if (end == p)
				break;
			if (!errno && pid > 1 && pid <= INT_MAX &&
			    pid != (long)getpid()) {
				kill((pid_t)pid, SIGKILL);
				any = true;
			}
			p = end;
		}
		if (!any)
			return;
		{
			struct timespec ts = {0, 2 * 1000 * 1000};

			nanosleep(&ts, NULL);
		}
	}
}

/* Kills everything left in the command's cgroups. */
static void cg_kill(const struct sbx_cg *cg)
{
	if (cg->pids) {
		/* v1: no more forks while we look (v2 has cgroup.kill). */
		if (cg->mode == SBX_PIDS_CGROUP1)
			cg_set(cg->pids, "pids.max", "0");
		cg_kill_dir(cg->pids, cg->mode == SBX_PIDS_CGROUP2);
	}
	if (cg->mem)
		cg_kill_dir(cg->mem, false);
}

/* rmdir, retried while the last killed processes finish exiting. */
static void cg_rmdir(const char *dir, bool v2)
{
	int i;

	for (i = 0; i < 500; i++) {
		struct timespec ts = {0, 4 * 1000 * 1000};

		if (rmdir(dir) == 0 || errno == ENOENT) {
			char top[PATH_MAX];
			char *slash;

			/* The noxfs parent too, once nobody else uses it. */
			snprintf(top, sizeof(top), "%s", dir);
			slash = strrchr(top, '/');
			if (slash) {
				*slash = '\0';
				rmdir(top);
			}
			return;
		}
		if (errno != EBUSY)
			return;
		cg_kill_dir(dir, v2);
		nanosleep(&ts, NULL);
	}
}

/* Kills what is left and removes the cgroups; cg may be unset. */
static void cg_destroy(struct sbx_cg *cg)
{
	cg_kill(cg);
	if (cg->pids)
		cg_rmdir(cg->pids, cg->mode == SBX_PIDS_CGROUP2);
	if (cg->mem)
		cg_rmdir(cg->mem, false);
	free(cg->pids);
	free(cg->mem);
	free(cg->join[0]);
	free(cg->join[1]);
	memset(cg, 0, sizeof(*cg));
	cg->mode = SBX_PIDS_RLIMIT;
}

/* v2: ROOT/noxfs/NAME with pids.max (and memory.max); 0 or -errno. */
static int cg_setup_v2(struct sbx_cg *cg, const char *name, const char *procs,
		       const char *mem)
{
	char top[PATH_MAX];
	bool memory = cg_env.v2_memory;

	/* Both levels must hand the controllers down. */
	cg_set(cg_env.v2_root, "cgroup.subtree_control", "+pids");
	if (memory)
		cg_set(cg_env.v2_root, "cgroup.subtree_control", "+memory");
	snprintf(top, sizeof(top), "%s/noxfs", cg_env.v2_root);
	if (mkdir(top, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (cg_set(top, "cgroup.subtree_control", "+pids") < 0)
		return -EPERM;
	if (memory && cg_set(top, "cgroup.subtree_control", "+memory") < 0)
		memory = false;
	cg->pids = cg_mkdir(cg_env.v2_root, name);
	if (!cg->pids)
		return -errno;
	cg->mode = SBX_PIDS_CGROUP2;
	if (cg_set(cg->pids, "pids.max", procs) < 0)
		return -EPERM;
	if (memory && cg_set(cg->pids, "memory.max", mem) == 0)
		cg_set(cg->pids, "memory.swap.max", "0");
	cg->join[0] = cg_file(cg->pids, "cgroup.procs");
	return cg->join[0] ? 0 : -ENOMEM;
}

/* v1: OURS/noxfs/NAME in pids (and memory); 0 or -errno. */
static int cg_setup_v1(struct sbx_cg *cg, const char *name, const char *procs,
		       const char *mem)
{
	int n = 0;

	if (cg_env.v1_pids[0]) {
		cg->pids = cg_mkdir(cg_env.v1_pids, name);
		if (!cg->pids)
			return -errno;
		cg->mode = SBX_PIDS_CGROUP1;
		if (cg_set(cg->pids, "pids.max", procs) < 0)
			return -EPERM;
		cg->join[n] = cg_file(cg->pids, "cgroup.procs");
		if (!cg->join[n++])
			return -ENOMEM;
	}
	if (cg_env.v1_mem[0]) {
		cg->mem = cg_mkdir(cg_env.v1_mem, name);
		if (cg->mem &&
		    cg_set(cg->mem, "memory.limit_in_bytes", mem) == 0)
			cg->join[n] = cg_file(cg->mem, "cgroup.procs");
		if (cg->mem && !cg->join[n]) {
			rmdir(cg->mem);
			free(cg->mem);
			cg->mem = NULL;
		}
		/* No swap either, where the kernel accounts it. */
		if (cg->mem)
			cg_set(cg->mem, "memory.memsw.limit_in_bytes", mem);
	}
	return cg->pids ? 0 : -ENOENT;
}

/*
 * Makes the command's cgroups: cgroup v2 if usable, else v1.  On failure
 * (no cgroup usable) cg->mode is SBX_PIDS_RLIMIT and only RLIMIT_NPROC
 * bounds the command.  Never fails the exec.
 */
static void cg_setup(struct sbx_cg *cg, unsigned procs, uint64_t mem)
{
	char name[64], p[32], m[32];

	memset(cg, 0, sizeof(*cg));
	cg->mode = SBX_PIDS_RLIMIT;
	pthread_once(&cg_env_once, cg_env_init);
	snprintf(name, sizeof(name), "%ld-%u", (long)getpid(),
		 atomic_fetch_add(&cg_seq, 1) + 1);
	snprintf(p, sizeof(p), "%u", procs);
	snprintf(m, sizeof(m), "%llu", (unsigned long long)mem);
	if (cg_env.v2_root[0]) {
		if (cg_setup_v2(cg, name, p, m) == 0)
			goto out;
		cg_destroy(cg);
	}
	if (cg_env.v1_pids[0]) {
		if (cg_setup_v1(cg, name, p, m) == 0)
			goto out;
		cg_destroy(cg);
	}
out:
	atomic_store(&cg_last_mode, cg->mode);
}

int sbx_exec_pids_limit(void)
{
	return atomic_load(&cg_last_mode);
}

/* In the child: tell the parent why we could not exec, then die. */
__attribute__((noreturn)) static void child_fail(int stage, int e)
{
	int msg[2] = {stage, e};
	ssize_t n;

	n = write(SBX_FD_REPORT, msg, sizeof(msg));
	(void)n;
	_exit(127);
}

/*
 * The child between fork() and execve(): async-signal-safe calls only.
 * Every fd it is given is >= SBX_FD_MIN (see fd_move_high).
 */
__attribute__((noreturn)) static void child_exec(const struct plan *pl,
						 int devnull, int out_w,
						 int err_w, int rep_w,
						 int info_w)
{
	int sig, first_close, i;

	setsid();
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &pl->dfl, NULL);
	setrlimit(RLIMIT_AS, &pl->lim_as);
	setrlimit(RLIMIT_NPROC, &pl->lim_nproc); /* best effort */
	setrlimit(RLIMIT_CORE, &pl->lim_core);
	if (dup2(devnull, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
		_exit(127);
	if (dup3(rep_w, SBX_FD_REPORT, O_CLOEXEC) < 0)
		_exit(127);
	first_close = SBX_FD_REPORT + 1;
	if (info_w >= 0) {
		if (dup2(info_w, SBX_FD_INFO) < 0)
			_exit(127);
		first_close = SBX_FD_INFO + 1;
	}
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)first_close, ~0U, 0) < 0)
#endif
	{
		int fd;

		for (fd = first_close; fd < pl->max_fd; fd++)
			close(fd);
	}
	for (i = 0; i < 2 && pl->cg_join[i]; i++) {
		int fd = open(pl->cg_join[i], O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, "0", 1) != 1)
			child_fail(SBX_STAGE_CGROUP, errno);
		close(fd);
	}
	if (pl->chdir_dir && chdir(pl->chdir_dir) < 0)
		child_fail(SBX_STAGE_CHDIR, errno);
	/* noxfs itself runs with umask 0; bwrap passes ours on. */
	umask(pl->umask);
	sigprocmask(SIG_SETMASK, &pl->empty, NULL);
	execve(pl->exe, pl->argv.v, pl->isolated ? pl->exe_envp.v : pl->envp.v);
	child_fail(SBX_STAGE_EXEC, errno);
}

static void capture_init(struct capture *c, int fd, size_t cap, const char *dir)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->spool = -1;
	c->cap = cap;
	c->dir = dir;
}

/*
 * An unlinked read-write file in dir: O_TMPFILE, else a mkstemp name
 * unlinked at once, else (dir unusable) an anonymous memfd.  -errno.
 * A spool whose disk fills up moves to a memfd (spool_to_memory).
 */
static int spool_open(const char *dir)
{
	char path[PATH_MAX];
	int fd, e;

	fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	e = errno;
	if (snprintf(path, sizeof(path), "%s/.nox-exec-out-XXXXXX", dir) <
	    (int)sizeof(path)) {
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0) {
			unlink(path);
			return fd;
		}
	}
#ifdef SYS_memfd_create
	{
		long mfd = syscall(SYS_memfd_create, "nox-exec-out", 1U);

		if (mfd >= 0)
			return (int)mfd;
	}
#endif
	return -e;
}

/*
 * The spool's disk is full (the workspace's, when the base directory
 * holds both): what was kept moves to an anonymous memfd and the rest
 * follows it there, up to the cap, so a command that runs while the
 * sandbox's disk is full still has its output.  0 or -errno.
 */
static int spool_to_memory(struct capture *c)
{
#ifdef SYS_memfd_create
	char buf[65536];
	size_t got = 0;
	long m = syscall(SYS_memfd_create, "nox-exec-out", 1U);
	ssize_t n;

	if (m < 0)
		return -errno;
	while (got < c->len) {
		size_t want = c->len - got < sizeof(buf) ? c->len - got
							 : sizeof(buf);

		n = pread(c->spool, buf, want, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || fdio_write_all((int)m, buf, (size_t)n) < 0) {
			close((int)m);
			return n < 0 ? -errno : -EIO;
		}
		got += (size_t)n;
	}
	close(c->spool);
	c->spool = (int)m;
	c->in_memory = true;
	return 0;
#else
	return -ENOSPC;
#endif
}

/* Keeps at most c->cap bytes; the rest is only counted. */
static void capture_add(struct capture *c, const char *data, size_t n)
{
	size_t room = c->cap - c->len, take = n < room ? n : room;
	ssize_t w;

	c->seen += n;
	if (take == 0 || c->spool_err)
		return;
	if (c->spool < 0) {
		c->spool = spool_open(c->dir);
		if (c->spool < 0) {
			c->spool_err = -c->spool;
			return;
		}
	}
	while (take > 0) {
		w = write(c->spool, data, take);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == ENOSPC || errno == EDQUOT) &&
		    !c->in_memory && spool_to_memory(c) == 0)
			continue;
		if (w <= 0) {
			c->spool_err = w < 0 ? errno : EIO;
			return;
		}
		c->len += (size_t)w;
		c->last = data[w - 1];
		data += w;
		take -= (size_t)w;
	}
}

static bool capture_cut(const struct capture *c)
{
	return c->seen > c->len;
}

/* Reads what is available; closes the fd at EOF or on a hard error. */
static void capture_read(struct capture *c)
{
	char chunk[65536];
	ssize_t n;

	for (;;) {
		n = read(c->fd, chunk, sizeof(chunk));
		if (n > 0) {
			capture_add(c, chunk, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		fd_close(&c->fd);
		return;
	}
}

/*
 * Reads what was kept into a new NUL-terminated buffer (*out, malloc'd,
 * the caller frees), followed by tail (our notices; NULL or "": none) on a
 * line of its own.  -ENOMEM, or -EIO when the spool reads short.
 */
static int capture_take(struct capture *c, const char *tail, char **out,
			size_t *len)
{
	size_t tl = tail ? strlen(tail) : 0, got = 0;
	bool nl = tl > 0 && c->len > 0 && c->last != '\n';
	ssize_t n;
	char *b;

	*out = NULL;
	*len = 0;
	if (c->len > SIZE_MAX - tl - 2)
		return -ENOMEM;
	b = malloc(c->len + nl + tl + 1);
	if (!b)
		return -ENOMEM;
	while (got < c->len) {
		n = pread(c->spool, b + got, c->len - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(b);
			return n < 0 ? -errno : -EIO;
		}
		got += (size_t)n;
	}
	if (nl)
		b[got++] = '\n';
	if (tl)
		memcpy(b + got, tail, tl);
	got += tl;
	b[got] = '\0';
	*out = b;
	*len = got;
	return 0;
}

static void capture_cleanup(struct capture *c)
{
	fd_close(&c->fd);
	fd_close(&c->spool);
}

/*
 * The notices that end stderr: the timeout (secs > 0), then one line
 * naming each stream that was cut (NOX_EXEC_TRUNCATED_NOTE), last so a
 * reader finds it as the last line.
 */
static void notes_build(char *buf, size_t size, int timeout_secs,
			const struct capture *out, const struct capture *err)
{
	const struct capture *cs[2] = {out, err};
	static const char *const names[2] = {"stdout", "stderr"};
	size_t n = 0, cap = out->cap;
	int i, e = out->spool_err ? out->spool_err : err->spool_err;
	bool first = true;

	buf[0] = '\0';
	if (timeout_secs > 0)
		n += (size_t)snprintf(
		    buf, size, "command timed out after %d s\n", timeout_secs);
	if (!capture_cut(out) && !capture_cut(err))
		return;
	for (i = 0; i < 2 && n < size; i++) {
		if (!capture_cut(cs[i]))
			continue;
		n += (size_t)snprintf(buf + n, size - n,
				      "%s%s kept %zu of %llu bytes",
				      first ? NOX_EXEC_TRUNCATED_NOTE : ", ",
				      names[i], cs[i]->len, cs[i]->seen);
		first = false;
	}
	if (n < size && e)
		n += (size_t)snprintf(buf + n, size - n,
				      " (output cap %zu; cannot keep more: "
				      "%s)\n",
				      cap, strerror(e));
	else if (n < size)
		n += (size_t)snprintf(buf + n, size - n, " (output cap %zu)\n",
				      cap);
	(void)n;
}

static int pidfd_open_compat(pid_t pid)
{
#ifdef SYS_pidfd_open
	long fd = syscall(SYS_pidfd_open, pid, 0);

	if (fd >= 0) {
		int ifd = (int)fd;

		/* pidfds are CLOEXEC already; keep it clear of 0..4 too. */
		if (fd_move_high(&ifd) < 0) {
			close(ifd);
			return -1;
		}
		return ifd;
	}
#else
	(void)pid;
#endif
	return -1;
}

/* True once pid has exited; leaves it a zombie so its pid stays ours. */
static bool child_exited(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == ECHILD;
	return si.si_pid == pid;
}

/*
 * Reads bwrap's --info-fd JSON for the sandbox's pid 1.  Returns 0 when
 * absent or unparsable.  The fd is non-blocking: bwrap writes it before
 * it runs anything, so after bwrap has exited all of it is there.
 */
static pid_t info_child_pid(int fd)
{
	char buf[4096], *p, *end;
	size_t len = 0;
	ssize_t n;
	long v;

	while (len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	p = strstr(buf, "\"child-pid\"");
	if (!p)
		return 0;
	p = strchr(p, ':');
	if (!p)
		return 0;
	errno = 0;
	v = strtol(p + 1, &end, 10);
	if (errno || end == p + 1 || v <= 1 || v > INT_MAX)
		return 0;
	return (pid_t)v;
}

/*
 * Waits (bounded) for the sandbox's pid 1 to be gone: the kernel kills
 * the whole pid namespace before that process finishes exiting, so after
 * this no process of the command survives.
 */
static void wait_ns_gone(pid_t init_pid)
{
	long long until = mono_ms() + SBX_NS_WAIT_MS;
	struct pollfd pfd;
	int fd;

	if (init_pid <= 1)
		return;
	fd = pidfd_open_compat(init_pid);
	if (fd >= 0) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		for (;;) {
			long long left = until - mono_ms();
			int n;

			if (left <= 0)
				break;
			n = poll(&pfd, 1, (int)left);
			if (n > 0 || (n < 0 && errno != EINTR))
				break;
		}
		close(fd);
		return;
	}
	while (mono_ms() < until && kill(init_pid, 0) == 0) {
		struct timespec ts = {0, 10 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
}

struct run_state {
	const struct sbx_cg *cg;
	pid_t pid;
	int pidfd;
	struct capture out, err;
	const struct nox_cancel *cancel; /* NULL: none */
	bool exited, timed_out, cancelled;
};

/* Kills the command's whole tree: bwrap's group and cgroup (its pid
 * namespace dies with bwrap, whose child has --die-with-parent). */
static void run_kill(struct run_state *st)
{
	kill(-st->pid, SIGKILL);
	kill(st->pid, SIGKILL);
	cg_kill(st->cg);
}

/* Polls the pipes and the child until done, the timeout or the grace. */
static void run_loop(struct run_state *st, long long deadline)
{
	long long grace = 0, now, wait;
	struct pollfd pfd[4];
	int nfd, i_out, i_err, i_pid, i_cancel;

	for (;;) {
		now = mono_ms();
		if (!st->exited && !st->timed_out && now >= deadline) {
			run_kill(st);
			st->timed_out = true;
			grace = now + SBX_GRACE_MS;
		}
		if (st->out.fd < 0 && st->err.fd < 0 &&
		    (st->exited || st->timed_out))
			break;
		if ((st->exited || st->timed_out) && now >= grace)
			break;
		wait = (st->exited || st->timed_out) ? grace - now
						     : deadline - now;
		if (!st->exited && !st->timed_out && st->pidfd < 0 && wait > 20)
			wait = 20; /* no pidfd: look at the child often */
		if (wait > INT_MAX)
			wait = INT_MAX;
		nfd = 0;
		i_out = i_err = i_pid = i_cancel = -1;
		if (st->out.fd >= 0) {
			pfd[nfd] =
			    (struct pollfd){.fd = st->out.fd, .events = POLLIN};
			i_out = nfd++;
		}
		if (st->err.fd >= 0) {
			pfd[nfd] =
			    (struct pollfd){.fd = st->err.fd, .events = POLLIN};
			i_err = nfd++;
		}
		if (!st->exited && st->pidfd >= 0) {
			pfd[nfd] =
			    (struct pollfd){.fd = st->pidfd, .events = POLLIN};
			i_pid = nfd++;
		}
		if (!st->exited && !st->timed_out && st->cancel &&
		    st->cancel->fd >= 0) {
			pfd[nfd] = (struct pollfd){.fd = st->cancel->fd,
						   .events = st->cancel->events};
			i_cancel = nfd++;
		}
		if (poll(pfd, (nfds_t)nfd, (int)wait) < 0) {
			if (errno == EINTR)
				continue;
			/* Cannot happen with valid fds; never spin or hang. */
			kill(-st->pid, SIGKILL);
			kill(st->pid, SIGKILL);
			break;
		}
		if (i_cancel >= 0 && pfd[i_cancel].revents) {
			/* stopped as by the timeout, reported as EINTR */
			run_kill(st);
			st->timed_out = st->cancelled = true;
			grace = mono_ms() + SBX_GRACE_MS;
		}
		if (i_out >= 0 && pfd[i_out].revents)
			capture_read(&st->out);
		if (i_err >= 0 && pfd[i_err].revents)
			capture_read(&st->err);
		if (!st->exited &&
		    (st->pidfd < 0 || (i_pid >= 0 && pfd[i_pid].revents))) {
			if (child_exited(st->pid)) {
				st->exited = true;
				/* Leftovers in its group (unisolated) go now;
				 * the zombie keeps the pgid from reuse. */
				kill(-st->pid, SIGKILL);
				cg_kill(st->cg);
				if (!st->timed_out)
					grace = mono_ms() + SBX_GRACE_MS;
			}
		}
	}
}

static int spawn_and_wait(struct plan *pl, int timeout_s, size_t cap,
			  const struct nox_cancel *cancel,
			  struct nox_exec_result *res, struct nox_err *err)
{
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, repp[2] = {-1, -1};
	int infop[2] = {-1, -1}, devnull = -1, status = 0, r = 0;
	int report[2] = {0, 0};
	char notes[384];
	struct run_state st;
	struct sbx_cg cg;
	long long start = mono_ms();
	sigset_t all, old;
	pid_t init_pid;
	ssize_t n;

	memset(&st, 0, sizeof(st));
	cg_setup(&cg, pl->procs, pl->mem);
	pl->cg_join[0] = cg.join[0];
	pl->cg_join[1] = cg.join[1];
	st.cg = &cg;
	st.cancel = cancel;
	st.pid = -1;
	st.pidfd = -1;
	capture_init(&st.out, -1, cap, pl->spool_dir);
	capture_init(&st.err, -1, cap, pl->spool_dir);

	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0) {
		r = nox_err_set(err, errno, "cannot open /dev/null: %s",
				strerror(errno));
		goto out;
	}
	r = fd_move_high(&devnull);
	if (r == 0)
		r = pipe_high(outp);
	if (r == 0)
		r = pipe_high(errp);
	if (r == 0)
		r = pipe_high(repp);
	if (r == 0 && pl->isolated)
		r = pipe_high(infop);
	if (r < 0) {
		r = nox_err_set(err, -r, "cannot create pipes: %s",
				strerror(-r));
		goto out;
	}
	if (fcntl(outp[0], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(errp[0], F_SETFL, O_NONBLOCK) < 0 ||
	    (infop[0] >= 0 && fcntl(infop[0], F_SETFL, O_NONBLOCK) < 0)) {
		r = nox_err_set(err, errno, "fcntl: %s", strerror(errno));
		goto out;
	}

	/* No handler of ours may run in the child before it resets them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	st.pid = fork();
	if (st.pid == 0)
		child_exec(pl, devnull, outp[1], errp[1], repp[1], infop[1]);
	r = st.pid < 0 ? -errno : 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		r = nox_err_set(err, -r, "fork: %s", strerror(-r));
		goto out;
	}
	fd_close(&devnull);
	fd_close(&outp[1]);
	fd_close(&errp[1]);
	fd_close(&repp[1]);
	fd_close(&infop[1]);

	/* EOF: execve worked.  Otherwise {stage, errno} from child_fail. */
	do {
		n = read(repp[0], report, sizeof(report));
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(report)) {
		while (waitpid(st.pid, &status, 0) < 0 && errno == EINTR)
			;
		st.pid = -1;
		if (report[0] == SBX_STAGE_CGROUP)
			r = nox_err_set(err, report[1],
					"cannot enter the command's cgroup "
					"%s: %s",
					cg.pids ? cg.pids : "?",
					strerror(report[1]));
		else if (report[0] == SBX_STAGE_CHDIR)
			r = nox_err_set(err, report[1],
					"cannot enter working directory %s: %s",
					pl->chdir_dir, strerror(report[1]));
		else
			r = nox_err_set(err, report[1], "cannot execute %s: %s",
					pl->exe, strerror(report[1]));
		goto out;
	}

	st.pidfd = pidfd_open_compat(st.pid);
	st.out.fd = outp[0];
	st.err.fd = errp[0];
	outp[0] = errp[0] = -1;
	run_loop(&st, start + (long long)timeout_s * 1000);
	fd_close(&st.out.fd);
	fd_close(&st.err.fd);
	while (waitpid(st.pid, &status, 0) < 0) {
		if (errno == EINTR)
			continue;
		r = nox_err_set(err, errno,
				"cannot collect the command's status: %s "
				"(is SIGCHLD ignored?)",
				strerror(errno));
		st.pid = -1;
		goto out;
	}
	st.pid = -1;
	/*
	 * A bwrap that exits by itself has waited for its pid namespace to
	 * empty; one we killed has not, so wait for the namespace here.
	 */
	if (infop[0] >= 0 && (st.timed_out || WIFSIGNALED(status))) {
		init_pid = info_child_pid(infop[0]);
		wait_ns_gone(init_pid);
	}

	if (st.cancelled) {
		r = nox_err_set(err, EINTR, "interrupted: the command was "
					    "killed after %lld ms",
				mono_ms() - start);
		goto out;
	}
	if (st.timed_out) {
		res->exit_code = 124;
	} else if (WIFEXITED(status)) {
		res->exit_code = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		res->exit_code = 128 + WTERMSIG(status);
	} else {
		res->exit_code = 255;
	}
	res->out_truncated = capture_cut(&st.out);
	res->err_truncated = capture_cut(&st.err);
	notes_build(notes, sizeof(notes), st.timed_out ? timeout_s : 0, &st.out,
		    &st.err);
	r = capture_take(&st.out, NULL, &res->out, &res->out_len);
	if (r == 0)
		r = capture_take(&st.err, notes, &res->err, &res->err_len);
	if (r < 0) {
		r = nox_err_set(err, -r, "cannot read back the output: %s",
				strerror(-r));
		goto out;
	}
	res->duration_ms = (long)(mono_ms() - start);
	r = 0;
out:
	if (st.pid > 0) {
		kill(-st.pid, SIGKILL);
		kill(st.pid, SIGKILL);
		while (waitpid(st.pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	cg_destroy(&cg);
	pl->cg_join[0] = pl->cg_join[1] = NULL;
	fd_close(&st.pidfd);
	capture_cleanup(&st.out);
	capture_cleanup(&st.err);
	fd_close(&devnull);
	fd_close(&outp[0]);
	fd_close(&outp[1]);
	fd_close(&errp[0]);
	fd_close(&errp[1]);
	fd_close(&repp[0]);
	fd_close(&repp[1]);
	fd_close(&infop[0]);
	fd_close(&infop[1]);
	return r;
}

int sbx_exec_run(const struct sbx_exec_opts *opts, const char *workspace_dir,
		 const struct nox_exec_req *req, struct nox_exec_result *res,
		 struct nox_err *err)
{
	static const struct sbx_exec_opts defaults = {0};
	char rel[PATH_MAX], *ws = NULL, *host_wd = NULL;
	struct plan pl;
	struct stat stb;
	size_t cap;
	int r, timeout;

	memset(res, 0, sizeof(*res));
	memset(&pl, 0, sizeof(pl));
	if (!opts)
		opts = &defaults;
	if (!req || !req->argv || !req->argv[0] || !req->argv[0][0])
		return nox_err_set(err, EINVAL, "empty command");
	if (req->timeout_seconds < 0)
		return nox_err_set(err, EINVAL, "negative timeout");
	timeout = req->timeout_seconds ? req->timeout_seconds
				       : NOX_DEFAULT_EXEC_TIMEOUT;
	cap = opts->output_cap ? opts->output_cap : NOX_DEFAULT_OUTPUT_CAP;
	if (cap > SIZE_MAX / 4)
		cap = SIZE_MAX / 4; /* keeps the buffer arithmetic sane */
	r = nox_path_from_sandbox(req->workdir ? req->workdir : NOX_WORKSPACE,
				  rel, sizeof(rel), err);
	if (r < 0)
		return nox_err_wrap(err, -r, "bad workdir");
	if (!workspace_dir || !workspace_dir[0])
		return nox_err_set(err, EINVAL, "no workspace directory");
	ws = realpath(workspace_dir, NULL);
	if (!ws || stat(ws, &stb) < 0 || !S_ISDIR(stb.st_mode)) {
		r = nox_err_set(err, ENOENT,
				"workspace directory %s is missing",
				workspace_dir);
		goto out;
	}
	host_wd = malloc(strlen(ws) + strlen(rel) + 2);
	if (!host_wd) {
		r = nox_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	snprintf(host_wd, strlen(ws) + strlen(rel) + 2, "%s%s%s", ws,
		 rel[0] ? "/" : "", rel);
	if (stat(host_wd, &stb) < 0) {
		r = nox_err_set(err, errno == ENOTDIR ? ENOTDIR : ENOENT,
				"working directory %s%s%s does not exist",
				NOX_WORKSPACE, rel[0] ? "/" : "", rel);
		goto out;
	}
	if (!S_ISDIR(stb.st_mode)) {
		r = nox_err_set(err, ENOTDIR,
				"working directory %s/%s is not a directory",
				NOX_WORKSPACE, rel);
		goto out;
	}
	r = build_plan(opts, ws, rel, host_wd, req, &pl, err);
	if (r < 0)
		goto out;
	/* interrupted before it started (during the exec barrier's
	 * uploads): never start it */
	if (nox_cancel_fired(req->cancel)) {
		r = nox_err_set(err, EINTR, "interrupted before the command "
					    "started");
		goto out;
	}
	r = spawn_and_wait(&pl, timeout, cap, req->cancel, res, err);
out:
	if (r < 0)
		nox_exec_result_cleanup(res);
	plan_cleanup(&pl);
	free(host_wd);
	free(ws);
	return r;
}
