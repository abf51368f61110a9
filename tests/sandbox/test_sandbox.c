/*
 * test_sandbox.c - the hostile-sandbox suite: code inside a local sandbox
 * (and files it leaves in its workspace) attacking the host, another
 * sandbox and the daemon that serves the workspace.
 *
 * Everything goes through the public interface, nox_backend_local_new()
 * and nox_backend_exec() / download / delete / list / stat, with a fresh
 * base directory under $TMPDIR holding sandboxes "a" (the attacker) and
 * "b" (the victim), and a host secret file beside the base directory.
 * Each test says what the command tried and what must hold afterwards.
 *
 * Needs bwrap (exit 77 without it, failure when NOX_NO_SKIP=1).  Runs as
 * root here; the /root and /home probes are skipped for other users.
 * Leaves nothing behind: every marker, process and directory it made is
 * removed by name or pid.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <nox/backend.h>

#include "testutil.h"

#define MIB (1024ULL * 1024)

static char *top;	       /* the test's temp dir: base/, host-secret */
static char *base;	       /* the backend's base directory */
static char *ws_a;	       /* host path of sandbox a's workspace */
static char *ws_b;	       /* host path of sandbox b's workspace */
static char marker[64];	       /* "nox-sbx-<pid>": names of every host marker */
static struct nox_backend *bk; /* isolated, defaults */
static struct nox_backend *bk_un; /* unisolated: the controls */

static bool no_skip(void)
{
	const char *ns = getenv("NOX_NO_SKIP");

	return ns && strcmp(ns, "1") == 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs sh -c script in sandbox id; asserts it started. */
static int sh(struct nox_backend *b, const char *id, const char *script,
	      int timeout, struct nox_exec_result *res)
{
	const char *argv[] = {"sh", "-c", script, NULL};
	struct nox_exec_req req = {.argv = argv, .timeout_seconds = timeout};
	struct nox_err err = {0};
	int r;

	memset(res, 0, sizeof(*res));
	r = nox_backend_exec(b, id, &req, res, &err);
	CU_ASSERT_EQUAL(r, 0);
	if (r != 0)
		fprintf(stderr, "\n  exec: %d %s\n", r, err.msg);
	if (!res->out)
		res->out = strdup("");
	if (!res->err)
		res->err = strdup("");
	return r;
}

static bool host_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Number of host processes whose command line holds needle. */
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

/* ---- writes outside /workspace ---------------------------------------- */

/*
 * Tried: create a file in /etc, /usr, /root, the host directory holding
 * the base directory, the base directory itself, the sandbox directory
 * above the workspace (/workspace/..) and sandbox b's workspace by its host
 * path.  /etc and /usr must refuse (read-only); whatever the others did
 * inside the sandbox's own root, none of those host paths exists after.
 */
static void test_write_outside(void)
{
	char *script, *paths[7];
	struct nox_exec_result res;
	size_t i;

	paths[0] = tu_strf("/etc/%s", marker);
	paths[1] = tu_strf("/usr/%s", marker);
	paths[2] = tu_strf("/root/%s", marker);
	paths[3] = tu_strf("%s/%s", top, marker);
	paths[4] = tu_strf("%s/%s", base, marker);
	paths[5] = tu_strf("%s/noxrunner_sandbox_a/%s", base, marker);
	paths[6] = tu_strf("%s/%s", ws_b, marker);
	script = tu_strf(
	    "M=%s T=%s B=%s W=%s; "
	    "for p in /etc/$M /usr/$M; do "
	    "  (echo x > $p) 2>/dev/null && echo WROTE:$p || echo RO:$p; "
	    "done; "
	    "mkdir -p /root $T $B 2>/dev/null; "
	    "for p in /root/$M $T/$M $B/$M /workspace/../$M $W/$M; do "
	    "  (echo x > $p) 2>/dev/null; done; true",
	    marker, top, base, ws_b);
	if (sh(bk, "a", script, 20, &res) == 0) {
		CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "RO:/etc/"));
		CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "RO:/usr/"));
		CU_ASSERT_PTR_NULL(strstr(res.out, "WROTE:"));
	}
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		CU_ASSERT_FALSE(host_exists(paths[i]));
		if (host_exists(paths[i])) {
			fprintf(stderr, "\n  host file appeared: %s\n",
				paths[i]);
			unlink(paths[i]);
		}
		free(paths[i]);
	}
	nox_exec_result_cleanup(&res);
	free(script);
}

/* ---- reads outside the read-only set ---------------------------------- */

/*
 * Tried: read host files planted in /root, /home, /var/tmp, the host /tmp
 * (beside the base directory), sandbox b's workspace (by host path and by
 * /workspace/../../noxrunner_sandbox_b), its own state file beside the
 * workspace, and the host's /etc/shadow and ssh host keys (root inside
 * owns what root owns outside: they are masked); then search the whole
 * visible tree for any file named with the marker.  Nothing may show.
 */
static void test_read_outside(void)
{
	char *planted[4], *script, *secret_b, *secret_top;
	struct nox_exec_result res;
	size_t i, n = 0;

	if (geteuid() == 0) {
		planted[n++] = tu_strf("/root/%s", marker);
		if (host_exists("/home"))
			planted[n++] = tu_strf("/home/%s", marker);
	}
	if (host_exists("/var/tmp"))
		planted[n++] = tu_strf("/var/tmp/%s", marker);
	for (i = 0; i < n; i++)
		CU_ASSERT(tu_write_file(planted[i], "HOSTSECRET", 10) == 0);
	secret_top = tu_strf("%s/%s-top", top, marker);
	secret_b = tu_strf("%s/%s-b", ws_b, marker);
	CU_ASSERT(tu_write_file(secret_top, "HOSTSECRET", 10) == 0);
	CU_ASSERT(tu_write_file(secret_b, "HOSTSECRET", 10) == 0);
	script = tu_strf(
	    "M=%s; for p in /root/$M /home/$M /var/tmp/$M %s %s "
	    "  /workspace/../../noxrunner_sandbox_b/workspace/$M-b "
	    "  /workspace/../nox-state.json /tmp/$M-top; do "
	    "  cat $p 2>/dev/null; done; "
	    "cat /etc/shadow /etc/gshadow /etc/ssh/ssh_host_*_key "
	    "  2>/dev/null | head -c 4096; "
	    "find / -path /proc -prune -o -name \"$M*\" -print 2>/dev/null; "
	    "echo END",
	    marker, secret_top, secret_b);
	if (sh(bk, "a", script, 60, &res) == 0) {
		CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "END"));
		CU_ASSERT_PTR_NULL(strstr(res.out, "HOSTSECRET"));
		CU_ASSERT_PTR_NULL(strstr(res.out, marker));
		CU_ASSERT_PTR_NULL(strstr(res.out, "ttlSeconds"));
		CU_ASSERT_PTR_NULL(strstr(res.out, "root:"));
		CU_ASSERT_PTR_NULL(strstr(res.out, "PRIVATE KEY"));
		if (strstr(res.out, "HOSTSECRET") || strstr(res.out, marker))
			fprintf(stderr, "\n  leaked: %.300s\n", res.out);
	}
	nox_exec_result_cleanup(&res);
	/* Control: unisolated, the same reads do see them (so the probe
	 * itself works). */
	if (sh(bk_un, "a", script, 60, &res) == 0)
		CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "HOSTSECRET"));
	nox_exec_result_cleanup(&res);
	for (i = 0; i < n; i++) {
		unlink(planted[i]);
		free(planted[i]);
	}
	unlink(secret_top);
	unlink(secret_b);
	free(secret_top);
	free(secret_b);
	free(script);
}

/*
 * Tried: kill this test process by its host pid, count the processes it
 * can see, read the caller's environment (a variable set in it), and learn
 * the host name.  Own pid namespace, clean environment, own host name.
 */
static void test_host_processes_env(void)
{
	struct nox_exec_result res;
	char *script;

	setenv("NOX_SBX_SECRET", "ENVSECRET", 1);
	script = tu_strf("kill -9 %ld 2>/dev/null && echo KILLED; "
			 "echo NPROC=$(ls -d /proc/[0-9]* | wc -l); env; "
			 "echo HOST=$(hostname)",
			 (long)getpid());
	if (sh(bk, "a", script, 20, &res) == 0) {
		const char *np = strstr(res.out, "NPROC=");
		long n = np ? strtol(np + 6, NULL, 10) : -1;

		CU_ASSERT_PTR_NULL(strstr(res.out, "KILLED"));
		/* Its own few processes, not the host's. */
		CU_ASSERT(n >= 1 && n < 10);
		CU_ASSERT(count_procs(NULL) > 10);
		CU_ASSERT_PTR_NULL(strstr(res.out, "ENVSECRET"));
		CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "HOST=nox"));
	}
	nox_exec_result_cleanup(&res);
	unsetenv("NOX_SBX_SECRET");
	free(script);
}

/* ---- network ---------------------------------------------------------- */

static int tcp_listener(int *port)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

/* An abstract AF_UNIX listener named "\0<marker>" (per network ns). */
static int unix_listener(void)
{
	struct sockaddr_un su;
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	memset(&su, 0, sizeof(su));
	su.sun_family = AF_UNIX;
	memcpy(su.sun_path + 1, marker, strlen(marker));
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			  strlen(marker));
	if (fd < 0 || bind(fd, (struct sockaddr *)&su, len) < 0 ||
	    listen(fd, 8) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Connections waiting on a non-blocking listener (accepts and closes). */
static int pending(int lfd)
{
	int n = 0, c;

	for (;;) {
		c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			return n;
		close(c);
		n++;
	}
}

/*
 * Tried: connect to a TCP listener on the host's 127.0.0.1 and to an
 * abstract AF_UNIX socket of the host (the X11 / D-Bus kind of escape).
 * Both fail inside, and the host listeners see no connection.  Control:
 * unisolated, both connect and the listeners see them.
 */
static void test_loopback(void)
{
	struct nox_exec_result res;
	int tfd, ufd, port = 0;
	char *script;

	tfd = tcp_listener(&port);
	ufd = unix_listener();
	CU_ASSERT_FATAL(tfd >= 0 && ufd >= 0);
	script = tu_strf(
	    "bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d' 2>/dev/null && "
	    "echo TCP_CONNECTED; "
	    "python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); "
	    "s.connect(\"\\0%s\")' 2>/dev/null && echo UNIX_CONNECTED; "
	    "echo END",
	    port, marker);
	if (sh(bk, "a", script, 20, &res) == 0) {
		CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "END"));
		CU_ASSERT_PTR_NULL(strstr(res.out, "TCP_CONNECTED"));
		CU_ASSERT_PTR_NULL(strstr(res.out, "UNIX_CONNECTED"));
	}
	CU_ASSERT_EQUAL(pending(tfd), 0);
	CU_ASSERT_EQUAL(pending(ufd), 0);
	nox_exec_result_cleanup(&res);
	if (sh(bk_un, "a", script, 20, &res) == 0) {
		CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "TCP_CONNECTED"));
		CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "UNIX_CONNECTED"));
	}
	CU_ASSERT_EQUAL(pending(tfd), 1);
	CU_ASSERT_EQUAL(pending(ufd), 1);
	nox_exec_result_cleanup(&res);
	close(tfd);
	close(ufd);
	free(script);
}

/* ---- resources -------------------------------------------------------- */

struct sampler {
	volatile bool stop;
	int peak; /* most 'sleep 30.4721' seen at once */
};

static void *sampler_main(void *ud)
{
	struct sampler *sm = ud;
	int n;

	while (!sm->stop) {
		n = count_procs("30.4721");
		if (n > sm->peak)
			sm->peak = n;
		usleep(20 * 1000);
	}
	return NULL;
}

/*
 * Tried: the fork bomb of the issue, bounded: up to 100000 background
 * 'sleep 30.4721' with max_procs 64 and a 10 s timeout, run as root
 * (whom RLIMIT_NPROC does not bound).  While it runs, the host never
 * holds more than 64 of them; the command ends within the timeout
 * (non-zero); then no process of it is left on the host and the host's
 * process count is back (within what the machine's other users may start
 * meanwhile).
 */
static void test_fork_bomb(void)
{
	struct nox_local_opts o = {.base_dir = base, .max_procs = 64};
	struct nox_backend *b = NULL;
	struct sampler sm = {false, 0};
	struct nox_exec_result res;
	struct nox_err err = {0};
	long long t0, until;
	int before, after;
	pthread_t th;

	CU_ASSERT_FATAL(nox_backend_local_new(&o, &b, &err) == 0);
	before = count_procs(NULL);
	t0 = now_ms();
	CU_ASSERT_FATAL(pthread_create(&th, NULL, sampler_main, &sm) == 0);
	if (sh(b, "a",
	       "i=0; while [ $i -lt 100000 ]; do sleep 30.4721 & "
	       "i=$((i+1)); done",
	       10, &res) == 0) {
		CU_ASSERT(now_ms() - t0 < 13000);
		CU_ASSERT_NOT_EQUAL(res.exit_code, 0);
	}
	sm.stop = true;
	pthread_join(th, NULL);
	CU_ASSERT(sm.peak <= 64);
	if (sm.peak > 64)
		fprintf(stderr, "\n  %d bomb processes at once\n", sm.peak);
	CU_ASSERT_EQUAL(count_procs("30.4721"), 0);
	until = now_ms() + 3000;
	do {
		after = count_procs(NULL);
		if (after <= before + 8)
			break;
		usleep(50 * 1000);
	} while (now_ms() < until);
	CU_ASSERT(after <= before + 8);
	nox_exec_result_cleanup(&res);
	nox_backend_free(b);
}

/*
 * Tried, with a 256 MiB memory limit: allocate 1 GiB in one process,
 * then fill the sandbox's /tmp (a tmpfs: page cache, which no rlimit
 * bounds) with 1 GiB, then four processes of 100 MiB each at once.
 * Each fails or is killed; the host (this process) is fine and the
 * sandbox still runs commands afterwards.
 */
static void test_memory(void)
{
	struct nox_local_opts o = {.base_dir = base, .memory_limit = 256 * MIB};
	struct nox_backend *b = NULL;
	struct nox_exec_result res;
	struct nox_err err = {0};

	CU_ASSERT_FATAL(nox_backend_local_new(&o, &b, &err) == 0);
	if (sh(b, "a",
	       "python3 -c 'b = bytearray(1 << 30); print(\"ALLOCATED\")'", 30,
	       &res) == 0) {
		CU_ASSERT_NOT_EQUAL(res.exit_code, 0);
		CU_ASSERT_PTR_NULL(strstr(res.out, "ALLOCATED"));
	}
	nox_exec_result_cleanup(&res);
	if (sh(b, "a",
	       "head -c 1073741824 /dev/zero > /tmp/fill && echo FILLED", 30,
	       &res) == 0) {
		CU_ASSERT_NOT_EQUAL(res.exit_code, 0);
		CU_ASSERT_PTR_NULL(strstr(res.out, "FILLED"));
	}
	nox_exec_result_cleanup(&res);
	if (sh(b, "a",
	       "for i in 1 2 3 4; do python3 -c 'import time; "
	       "b = b\"x\" * (100 << 20); time.sleep(3); "
	       "print(\"SURVIVED\", flush=True)' & done; wait",
	       30, &res) == 0) {
		/* The four allocate within a fraction of a second and hold
		 * for 3 s: all surviving would mean 400 MiB at once. */
		const char *q;
		int held = 0;

		for (q = strstr(res.out, "SURVIVED"); q;
		     q = strstr(q + 8, "SURVIVED"))
			held++;
		CU_ASSERT(held < 4);
	}
	nox_exec_result_cleanup(&res);
	if (sh(b, "a", "echo alive", 20, &res) == 0) {
		CU_ASSERT_EQUAL(res.exit_code, 0);
		CU_ASSERT_STRING_EQUAL(res.out, "alive\n");
	}
	nox_exec_result_cleanup(&res);
	nox_backend_free(b);
}

/*
 * Tried: outlive the command by a double fork, by setsid and by nohup
 * (each 'sleep 60.4722'), once with the command exiting at once and once
 * with it running into its 2 s timeout; isolated and unisolated.  After
 * each return none of them is alive on the host.
 */
static void outlive_case(struct nox_backend *b, bool timeout)
{
	struct nox_exec_result res;
	char *script;

	script = tu_strf("(sh -c 'sleep 60.4722 &' &); "
			 "setsid sleep 60.4722 & "
			 "nohup sleep 60.4722 >/dev/null 2>&1 & "
			 "sleep 0.3; %s",
			 timeout ? "sleep 100" : "echo done");
	if (sh(b, "a", script, 2, &res) == 0)
		CU_ASSERT_EQUAL(res.exit_code, timeout ? 124 : 0);
	CU_ASSERT_EQUAL(count_procs("60.4722"), 0);
	if (count_procs("60.4722") != 0)
		fprintf(stderr, "\n  survivors (%s, %s)\n",
			b == bk ? "isolated" : "unisolated",
			timeout ? "timeout" : "exit");
	nox_exec_result_cleanup(&res);
	free(script);
}

static void test_outlive(void)
{
	outlive_case(bk, false);
	outlive_case(bk, true);
	outlive_case(bk_un, false);
	outlive_case(bk_un, true);
}

/* ---- what the daemon does with hostile workspace content -------------- */

struct tar_seen {
	int entries;
	int links;	    /* symlink entries */
	bool below_link;    /* an entry under a symlink's name */
	bool host_data;	    /* file data from /etc or sandbox b */
	char names[16][64]; /* the symlinks' names */
};

/* Downloads src of sandbox id into a temp file and reads the tar back. */
static int download_seen(const char *id, const char *src, struct tar_seen *s,
			 struct nox_err *err)
{
	char *path = tu_strf("%s/dl.tgz", top);
	struct archive_entry *e;
	struct archive *a;
	char buf[8192];
	int fd, r, i;
	ssize_t n;

	memset(s, 0, sizeof(*s));
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	r = nox_backend_download(bk, id, src, fd, err);
	if (r < 0)
		goto out;
	a = archive_read_new();
	archive_read_support_filter_all(a);
	archive_read_support_format_all(a);
	lseek(fd, 0, SEEK_SET);
	CU_ASSERT_FATAL(archive_read_open_fd(a, fd, 65536) == ARCHIVE_OK);
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);

		s->entries++;
		for (i = 0; i < s->links && i < 16; i++) {
			size_t l = strlen(s->names[i]);

			if (strncmp(name, s->names[i], l) == 0 &&
			    name[l] == '/')
				s->below_link = true;
		}
		if (archive_entry_filetype(e) == AE_IFLNK) {
			if (s->links < 16)
				snprintf(s->names[s->links],
					 sizeof(s->names[0]), "%s", name);
			s->links++;
		}
		for (;;) {
			n = archive_read_data(a, buf, sizeof(buf) - 1);
			if (n <= 0)
				break;
			buf[n] = '\0';
			if (strstr(buf, "root:") || strstr(buf, "BSECRET"))
				s->host_data = true;
		}
	}
	archive_read_free(a);
out:
	close(fd);
	unlink(path);
	free(path);
	return r;
}

/*
 * Tried: the sandbox leaves symlinks for the daemon to follow: etc -> /etc,
 * bws -> sandbox b's workspace by host path, bws_rel -> the same by
 * ../../noxrunner_sandbox_b/workspace, and passwd -> /etc/passwd.  A
 * download of the workspace holds the four links as links (nothing below
 * them, no data from /etc or b); a download of each link alone is that one
 * link; a download *through* a link (etc/passwd, bws/bsecret) is refused.
 */
static void test_symlink_download(void)
{
	static const char *const through[] = {"etc/passwd", "bws/bsecret",
					      "bws_rel/bsecret"};
	struct nox_exec_result res;
	struct nox_err err = {0};
	struct tar_seen s;
	char *script;
	size_t i;
	int r;

	script = tu_strf("mkdir -p /workspace/dl && cd /workspace/dl && "
			 "ln -s /etc etc && ln -s %s bws && "
			 "ln -s ../../../noxrunner_sandbox_b/workspace "
			 "bws_rel && ln -s /etc/passwd passwd && echo ok",
			 ws_b);
	if (sh(bk, "a", script, 20, &res) == 0)
		CU_ASSERT_STRING_EQUAL(res.out, "ok\n");
	nox_exec_result_cleanup(&res);
	free(script);
	r = download_seen("a", "/workspace/dl", &s, &err);
	CU_ASSERT_EQUAL(r, 0);
	if (r < 0)
		fprintf(stderr, "\n  download: %s\n", err.msg);
	CU_ASSERT_EQUAL(s.links, 4);
	CU_ASSERT_EQUAL(s.entries, 4);
	CU_ASSERT_FALSE(s.below_link);
	CU_ASSERT_FALSE(s.host_data);
	/* The whole workspace, too. */
	CU_ASSERT_EQUAL(download_seen("a", NULL, &s, &err), 0);
	CU_ASSERT_FALSE(s.below_link);
	CU_ASSERT_FALSE(s.host_data);
	/* The link itself is one symlink entry; through it, an error. */
	CU_ASSERT_EQUAL(download_seen("a", "/workspace/dl/etc", &s, &err), 0);
	CU_ASSERT_EQUAL(s.entries, 1);
	CU_ASSERT_EQUAL(s.links, 1);
	for (i = 0; i < sizeof(through) / sizeof(through[0]); i++) {
		char *p = tu_strf("/workspace/dl/%s", through[i]);

		r = download_seen("a", p, &s, &err);
		CU_ASSERT(r < 0);
		CU_ASSERT_FALSE(s.host_data);
		free(p);
	}
}

/*
 * Tried: delete sandbox a while its workspace holds etc -> /etc, bws ->
 * b's workspace (absolute and relative), passwd -> /etc/passwd and a
 * hard link to a file of its own.  Host /etc/passwd and sandbox b are
 * intact afterwards; a is gone.  (Runs last of the workspace tests: it
 * removes a, and re-creates it for the tests after.)
 */
static void test_symlink_delete(void)
{
	struct nox_exec_result res;
	struct nox_err err = {0};
	struct stat before, after;
	char *bsecret = tu_strf("%s/bsecret", ws_b), *data, *script;

	CU_ASSERT_FATAL(stat("/etc/passwd", &before) == 0);
	script = tu_strf("mkdir -p /workspace/del && cd /workspace/del && "
			 "ln -sf /etc etc && ln -sf %s bws && "
			 "ln -sf ../../../noxrunner_sandbox_b/workspace "
			 "bws_rel && ln -sf /etc/passwd passwd && "
			 "echo x > own && ln own own2 && echo ok",
			 ws_b);
	if (sh(bk, "a", script, 20, &res) == 0)
		CU_ASSERT_STRING_EQUAL(res.out, "ok\n");
	nox_exec_result_cleanup(&res);
	free(script);
	CU_ASSERT_EQUAL(nox_backend_delete(bk, "a", &err), 0);
	CU_ASSERT_EQUAL(nox_backend_info(bk, "a", NULL, &err), -ENOENT);
	CU_ASSERT(stat("/etc/passwd", &after) == 0 &&
		  after.st_ino == before.st_ino &&
		  after.st_size == before.st_size);
	CU_ASSERT(host_exists("/etc/hostname") || host_exists("/etc/hosts"));
	data = tu_read_file(bsecret, NULL);
	CU_ASSERT(data && strcmp(data, "BSECRET") == 0);
	free(data);
	free(bsecret);
	CU_ASSERT_FATAL(nox_backend_create(bk, "a", NULL, NULL, &err) == 0);
}

struct dl_child {
	const char *src;
	bool read_fifo; /* nox_backend_read of it, not a download */
};

/* In a child (so a hang is caught): 0 when the call returned. */
static int bounded_call(const struct dl_child *c, int limit_ms, int *rc)
{
	long long until = now_ms() + limit_ms;
	int status;
	pid_t pid;

	pid = fork();
	if (pid == 0) {
		struct nox_err err = {0};
		char buf[16];
		int fd, r;

		alarm((unsigned)(limit_ms / 1000 + 2));
		if (c->read_fifo) {
			r = (int)nox_backend_read(bk, "a", c->src, 0, buf,
						  sizeof(buf), &err);
		} else {
			fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
			r = nox_backend_download(bk, "a", c->src, fd, &err);
			close(fd);
		}
		_exit(r >= 0 ? 0 : (-r & 0x7f));
	}
	CU_ASSERT_FATAL(pid > 0);
	while (now_ms() < until) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			*rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			return 0;
		}
		usleep(20 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/*
 * Tried: the sandbox makes a FIFO (nobody ever writes it) in the
 * workspace; the daemon downloads the workspace, the directory holding
 * it, and the FIFO itself, and reads it with nox_backend_read.  Each
 * returns within 10 s (the FIFO is skipped or refused, never opened for
 * a blocking read).
 */
static void test_fifo(void)
{
	static const struct dl_child calls[] = {{NULL, false},
						{"/workspace/ff", false},
						{"/workspace/ff/pipe", false},
						{"ff/pipe", true}};
	struct nox_exec_result res;
	size_t i;
	int rc = -1;

	if (sh(bk, "a", "mkdir -p ff && mkfifo ff/pipe && echo ok", 20, &res) ==
	    0)
		CU_ASSERT_STRING_EQUAL(res.out, "ok\n");
	nox_exec_result_cleanup(&res);
	for (i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		CU_ASSERT_EQUAL(bounded_call(&calls[i], 10000, &rc), 0);
		/* The directories download fine without it. */
		if (i < 2)
			CU_ASSERT_EQUAL(rc, 0);
	}
	if (sh(bk, "a", "rm -r ff", 20, &res) == 0)
		CU_ASSERT_EQUAL(res.exit_code, 0);
	nox_exec_result_cleanup(&res);
}

/*
 * Tried: a 10 GiB sparse file made inside the sandbox: stat and list
 * report it without reading it; downloading it is skipped here (minutes
 * of gzip at 10 GiB), a 1 GiB sparse one is downloaded within 60 s into
 * a tar that stays small, with memory flat (it streams).
 */
static void test_huge_sparse(void)
{
	struct nox_exec_result res;
	struct nox_err err = {0};
	struct dl_child c = {"/workspace/sp/one", false};
	struct stat st;
	int rc = -1;

	if (sh(bk, "a",
	       "mkdir -p sp && truncate -s 10G huge && truncate -s 1G sp/one "
	       "&& echo ok",
	       20, &res) == 0)
		CU_ASSERT_STRING_EQUAL(res.out, "ok\n");
	nox_exec_result_cleanup(&res);
	CU_ASSERT_EQUAL(nox_backend_stat(bk, "a", "huge", &st, &err), 0);
	CU_ASSERT_EQUAL(st.st_size, 10LL * 1024 * 1024 * 1024);
	fprintf(stderr, "(10 GiB download skipped: minutes of gzip) ");
	CU_ASSERT_EQUAL(bounded_call(&c, 60000, &rc), 0);
	CU_ASSERT_EQUAL(rc, 0);
	if (sh(bk, "a", "rm -r huge sp", 20, &res) == 0)
		CU_ASSERT_EQUAL(res.exit_code, 0);
	nox_exec_result_cleanup(&res);
}

static const char *const odd_names[] = {
    "-rf", "--help",	     "new\nline",   " lead space", "tab\tname",
    "*",   "$(touch pwned)", "back\\slash", "quote'\"",	   NULL};

static int list_collect(const char *name, const struct stat *st, void *ud)
{
	int *found = ud;
	size_t i;

	(void)st;
	for (i = 0; odd_names[i]; i++)
		if (strcmp(name, odd_names[i]) == 0)
			found[i]++;
	return 0;
}

/*
 * Tried: files named "-rf", "--help", with a newline, a leading space, a
 * tab, "*", "$(touch pwned)", a backslash and quotes, made by the sandbox.
 * list shows each exactly once, stat finds each, a download holds each
 * under its exact name, nothing named "pwned" appears, and removing them
 * with an argv (rm -- NAME) removes exactly them.
 */
static void test_hostile_names(void)
{
	struct nox_exec_result res;
	struct nox_err err = {0};
	int found[16] = {0};
	struct stat st;
	size_t i;

	if (sh(bk, "a",
	       "mkdir -p names && cd names && for n in -rf --help "
	       "\"$(printf 'new\\nline')\" ' lead space' \"$(printf "
	       "'tab\\tname')\" '*' '$(touch pwned)' 'back\\slash' "
	       "\"quote'\\\"\"; do printf x > ./\"$n\"; done; "
	       "find . -mindepth 1 -maxdepth 1 -printf x | wc -c",
	       20, &res) == 0)
		CU_ASSERT_STRING_EQUAL(res.out, "9\n");
	nox_exec_result_cleanup(&res);
	CU_ASSERT_EQUAL(
	    nox_backend_list(bk, "a", "names", list_collect, found, &err), 0);
	for (i = 0; odd_names[i]; i++) {
		char *p = tu_strf("names/%s", odd_names[i]);

		CU_ASSERT_EQUAL(found[i], 1);
		CU_ASSERT_EQUAL(nox_backend_stat(bk, "a", p, &st, &err), 0);
		CU_ASSERT_EQUAL(st.st_size, 1);
		free(p);
	}
	{
		struct tar_seen s;

		CU_ASSERT_EQUAL(
		    download_seen("a", "/workspace/names", &s, &err), 0);
		CU_ASSERT_EQUAL(s.entries, 9);
	}
	CU_ASSERT_FALSE(host_exists("pwned"));
	{
		char *p = tu_strf("%s/names/pwned", ws_a);

		CU_ASSERT_FALSE(host_exists(p));
		free(p);
	}
	for (i = 0; odd_names[i]; i++) {
		const char *argv[] = {"rm", "--", odd_names[i], NULL};
		struct nox_exec_req req = {.argv = argv,
					   .workdir = "/workspace/names"};

		CU_ASSERT_EQUAL(nox_backend_exec(bk, "a", &req, &res, &err), 0);
		CU_ASSERT_EQUAL(res.exit_code, 0);
		nox_exec_result_cleanup(&res);
	}
	if (sh(bk, "a", "find names -mindepth 1 -printf x | wc -c; rmdir names",
	       20, &res) == 0)
		CU_ASSERT_STRING_EQUAL(res.out, "0\n");
	nox_exec_result_cleanup(&res);
}

/* writes the eventfd in ud after 300 ms */
static void *fire_later(void *ud)
{
	uint64_t one = 1;
	struct timespec ts = {0, 300 * 1000000L};

	nanosleep(&ts, NULL);
	(void)!write(*(int *)ud, &one, sizeof(one));
	return NULL;
}

/*
 * Tried: a cancel that fired before the exec (-EINTR, and its touch
 * leaves no file: a kill at the first poll would mostly win that race
 * too, so that nothing is even sent is checked over http, where noxd's
 * access log tells: test_http_client), and one fired 300 ms into a
 * command of two sleeps (one in the background): -EINTR within 2 s and
 * no process of it left.
 */
static void test_cancel(void)
{
	const char *touch[] = {"sh", "-c", "touch cancel-started", NULL};
	const char *sleeps[] = {"sh", "-c",
				"sleep 60.5511 & sleep 60.5511; wait", NULL};
	struct nox_cancel nc = {.events = POLLIN};
	struct nox_exec_req req = {.argv = touch, .timeout_seconds = 30,
				   .cancel = &nc};
	struct nox_exec_result res;
	struct nox_err err = {0};
	uint64_t one = 1;
	pthread_t th;
	long long t0;
	char *p;
	int r;

	nc.fd = eventfd(0, EFD_CLOEXEC);
	CU_ASSERT_FATAL(nc.fd >= 0);
	CU_ASSERT_FALSE(nox_cancel_fired(&nc));
	CU_ASSERT_FALSE(nox_cancel_fired(NULL));
	CU_ASSERT_EQUAL(write(nc.fd, &one, sizeof(one)), (ssize_t)sizeof(one));
	CU_ASSERT_TRUE(nox_cancel_fired(&nc));
	r = nox_backend_exec(bk, "a", &req, &res, &err);
	CU_ASSERT_EQUAL(r, -EINTR);
	p = tu_strf("%s/noxrunner_sandbox_a/workspace/cancel-started", base);
	CU_ASSERT_FALSE(host_exists(p));
	free(p);
	close(nc.fd);

	nc.fd = eventfd(0, EFD_CLOEXEC);
	CU_ASSERT_FATAL(nc.fd >= 0);
	req.argv = sleeps;
	CU_ASSERT_EQUAL(pthread_create(&th, NULL, fire_later, &nc.fd), 0);
	t0 = now_ms();
	r = nox_backend_exec(bk, "a", &req, &res, &err);
	CU_ASSERT_EQUAL(r, -EINTR);
	CU_ASSERT(now_ms() - t0 < 2000);
	CU_ASSERT_EQUAL(count_procs("60.5511"), 0);
	pthread_join(th, NULL);
	close(nc.fd);
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
	    {"write outside /workspace", test_write_outside},
	    {"read outside the read-only set", test_read_outside},
	    {"host processes and environment", test_host_processes_env},
	    {"loopback and abstract sockets", test_loopback},
	    {"fork bomb", test_fork_bomb},
	    {"memory", test_memory},
	    {"outlive the command", test_outlive},
	    {"cancel before and during a command", test_cancel},
	    {"symlinks on download", test_symlink_download},
	    {"FIFO on download and read", test_fifo},
	    {"huge sparse file", test_huge_sparse},
	    {"hostile names", test_hostile_names},
	    {"symlinks on delete", test_symlink_delete},
	    {NULL, NULL}};
	struct nox_local_opts o = {0}, ou = {.unisolated = true};
	struct nox_err err = {0};
	char *p;
	int rc;

	if (!have_bwrap()) {
		fprintf(stderr, "bwrap not installed\n");
		return no_skip() ? 1 : 77;
	}
	snprintf(marker, sizeof(marker), "nox-sbx-%ld", (long)getpid());
	top = tu_mkdtemp("sandbox");
	base = tu_strf("%s/base", top);
	o.base_dir = ou.base_dir = base;
	if (nox_backend_local_new(&o, &bk, &err) < 0 ||
	    nox_backend_local_new(&ou, &bk_un, &err) < 0 ||
	    nox_backend_create(bk, "a", NULL, NULL, &err) < 0 ||
	    nox_backend_create(bk, "b", NULL, NULL, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return 1;
	}
	ws_a = tu_strf("%s/noxrunner_sandbox_a/workspace", base);
	ws_b = tu_strf("%s/noxrunner_sandbox_b/workspace", base);
	p = tu_strf("%s/bsecret", ws_b);
	if (tu_write_file(p, "BSECRET", 7) < 0)
		return 1;
	free(p);
	rc = tu_main("sandbox", tests);
	nox_backend_free(bk);
	nox_backend_free(bk_un);
	tu_rm_rf(top);
	free(top);
	free(base);
	free(ws_a);
	free(ws_b);
	return rc;
}
