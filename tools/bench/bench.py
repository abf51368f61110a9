#!/usr/bin/env python3
"""noxfs benchmark: the same workloads on the native directory, a FUSE
passthrough of it (libfuse's passthrough_ll example), sshfs over loopback,
noxfs on the local backend and noxfs over noxd on loopback (with extensions
and with noxd --v1-only).

    tools/bench.sh [--reps N] [--quick] [--only TARGET,...] [--out FILE]

Every workload runs on every target in turn, repetition by repetition
(interleaved, so a burst of load from elsewhere hits all targets alike);
the table gives medians and the ratio to the native directory, then each
target of issue 7 as met or missed, and W8 (exec latency) and memory
separately.  "cold" means a fresh mount (daemon restarted, noxfs's http
cache directory emptied) after the kernel's page, dentry and inode caches
were dropped (root only; otherwise noted).

Everything runs on this machine; servers bind 127.0.0.1 only, sshd uses a
throwaway key pair, every mount and process started is stopped by PID and
the work directory is removed at the end (--keep keeps it).

The output file keeps whatever follows the line "<!-- analysis -->" in the
existing file (the hand-written profile notes); everything above it is
rewritten from this run.

Limits: timings include process start-up of the tools run (tar, find,
grep, git, dd); the machine may be shared, so the load average at the
start and the end of the run is printed beside the table.
"""
import argparse
import getpass
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANALYSIS_MARK = "<!-- analysis -->"
CMD_TIMEOUT = 900


def run_blocking(cmd, timeout, **kw):
    """Runs cmd to its end and returns its exit status, or None when
    killed at timeout.  Waits with a blocking waitpid: subprocess's wait
    with a timeout polls with sleeps of up to 50 ms (0.5, 1, 2 ... 32 ms,
    then 50), which rounded every short timing up to 64 ms, 114 ms, ...
    The command runs in a session of its own, killed whole at timeout."""
    p = subprocess.Popen(cmd, shell=isinstance(cmd, str), start_new_session=True, **kw)
    fired = []

    def kill():
        fired.append(True)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    watchdog = threading.Timer(timeout, kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        rc = p.wait()
    finally:
        watchdog.cancel()
    return None if fired else rc


def sh(cmd, timeout=None, **kw):
    rc = run_blocking(cmd, timeout or CMD_TIMEOUT, **kw)
    if rc is None:
        raise subprocess.TimeoutExpired(cmd, timeout or CMD_TIMEOUT)
    if rc != 0:
        raise subprocess.CalledProcessError(rc, cmd)


def is_root():
    return os.geteuid() == 0


def mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def wait_mount(path, proc, log=None, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}{log_tail(log)}")
        if mounted(path):
            return
        time.sleep(0.02)
    raise RuntimeError(f"mount {path} did not appear in {timeout} s{log_tail(log)}")


def log_tail(log):
    if not log:
        return ""
    try:
        with open(log, errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError:
        return ""
    return (": " + lines[-1]) if lines else ""


def umount(path):
    if not mounted(path):
        return
    if subprocess.run(["fusermount3", "-u", path], stderr=subprocess.DEVNULL).returncode:
        time.sleep(0.5)
        if subprocess.run(["fusermount3", "-u", path], stderr=subprocess.DEVNULL).returncode:
            subprocess.run(["fusermount3", "-uz", path], stderr=subprocess.DEVNULL)


def stop(proc, timeout=60):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def drop_caches():
    if not is_root():
        return
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_status(pid, key):
    """VmRSS / VmHWM of pid in KiB, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


# ---- targets ------------------------------------------------------------

class Target:
    """A directory to run workloads in; remount() gives a cold cache."""

    kind = "other"

    def __init__(self, name, work):
        self.name = name
        self.work = work
        self.tag = "".join(c if c.isalnum() else "_" for c in name)
        self.proc = None
        self.mnt = None
        self.dir = None
        self.log = os.path.join(work, f"{self.tag}.log")

    def setup(self):
        pass

    def start(self):
        pass

    def remount(self):
        if self.mnt:
            umount(self.mnt)
            stop(self.proc)
            self.proc = None
            self.after_stop()
        drop_caches()
        self.start()

    def after_stop(self):
        pass

    def teardown(self):
        if self.mnt:
            umount(self.mnt)
        stop(self.proc)
        self.proc = None

    def daemon(self, args):
        with open(self.log, "a") as lf:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=lf,
                                         stdin=subprocess.DEVNULL)
        wait_mount(self.mnt, self.proc, self.log)

    def pid(self):
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def backing(self):
        """The on-disk directory behind self.dir (for bulk set-up)."""
        return self.dir


class Native(Target):
    kind = "native"

    def setup(self):
        self.dir = os.path.join(self.work, "native")
        os.makedirs(self.dir, exist_ok=True)


class Passthrough(Target):
    kind = "passthrough"

    def setup(self):
        self.src = os.path.join(self.work, "pt-src")
        self.mnt = os.path.join(self.work, "pt-mnt")
        os.makedirs(self.src, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        self.bin = os.path.join(self.work, "passthrough_ll")
        ex = "/usr/share/doc/libfuse3-dev/examples"
        flags = subprocess.check_output(["pkg-config", "--cflags", "--libs", "fuse3"],
                                        text=True).split()
        sh(["cc", "-O2", "-o", self.bin, f"{ex}/passthrough_ll.c", "-I", ex] + flags)
        self.dir = self.mnt
        self.start()

    def start(self):
        self.daemon([self.bin, "-f", "-o", f"source={self.src}", self.mnt])

    def backing(self):
        return self.src


class Sshfs(Target):
    kind = "sshfs"

    def setup(self):
        self.src = os.path.join(self.work, "ssh-src")
        self.mnt = os.path.join(self.work, "ssh-mnt")
        os.makedirs(self.src, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        d = os.path.join(self.work, "sshd")
        os.makedirs(d, exist_ok=True)
        for k in ("host", "user"):
            sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, k)])
        shutil.copy(os.path.join(d, "user.pub"), os.path.join(d, "authorized_keys"))
        os.chmod(os.path.join(d, "authorized_keys"), 0o600)
        self.port = free_port()
        cfg = os.path.join(d, "sshd_config")
        with open(cfg, "w") as f:
            f.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {d}/host
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile {d}/sshd.pid
Subsystem sftp internal-sftp
""")
        if is_root():
            os.makedirs("/run/sshd", exist_ok=True)
        self.sshd_log = os.path.join(self.work, "sshd.log")
        with open(self.sshd_log, "w") as lf:
            self.sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", cfg],
                                         stdout=subprocess.DEVNULL, stderr=lf)
        t0 = time.time()
        while True:
            if self.sshd.poll() is not None:
                raise RuntimeError(f"sshd exited{log_tail(self.sshd_log)}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if time.time() - t0 > 10:
                    raise RuntimeError("sshd does not listen")
                time.sleep(0.05)
        self.key = os.path.join(d, "user")
        self.dir = self.mnt
        self.start()

    def start(self):
        self.daemon(["sshfs", "-f", f"{getpass.getuser()}@127.0.0.1:{self.src}", self.mnt,
                     "-p", str(self.port), "-o", f"IdentityFile={self.key}",
                     "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                     "-o", "LogLevel=ERROR"])

    def backing(self):
        return self.src

    def teardown(self):
        super().teardown()
        stop(getattr(self, "sshd", None))


class Noxfs(Target):
    """noxfs -o session=bench, on the local backend or over a noxd."""

    def __init__(self, name, work, build, http=None):
        super().__init__(name, work)
        self.build = build
        self.http = http  # None, "ext" or "v1"
        self.noxd = None
        self.kind = "noxd" if http else "noxfs-local"

    def setup(self):
        self.base = os.path.join(self.work, f"{self.tag}-base")
        self.mnt = os.path.join(self.work, f"{self.tag}-mnt")
        self.cache = os.path.join(self.work, f"{self.tag}-cache")
        for d in (self.base, self.mnt, self.cache):
            os.makedirs(d, exist_ok=True)
        if self.http:
            pf = os.path.join(self.work, f"{self.tag}-port")
            args = [os.path.join(self.build, "tools/noxd/noxd"), "--listen", "127.0.0.1:0",
                    "--base-dir", self.base, "--port-file", pf]
            if self.http == "v1":
                args.append("--v1-only")
            self.noxd_log = os.path.join(self.work, f"{self.tag}-noxd.log")
            with open(self.noxd_log, "w") as lf:
                self.noxd = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=lf)
            t0 = time.time()
            while not (os.path.exists(pf) and open(pf).read().strip()):
                if time.time() - t0 > 10 or self.noxd.poll() is not None:
                    raise RuntimeError(f"noxd did not start{log_tail(self.noxd_log)}")
                time.sleep(0.05)
            self.url = f"http://127.0.0.1:{open(pf).read().strip()}"
            self.noxd_idle_kib = proc_status(self.noxd.pid, "VmRSS")
        self.dir = self.mnt
        self.start()

    def start(self):
        exe = os.path.join(self.build, "src/fs/noxfs")
        if self.http:
            args = [exe, "--url", self.url, "-f", "-o",
                    f"session=bench,cache_dir={self.cache}", self.mnt]
        else:
            args = [exe, f"--local={self.base}", "-f", "-o", "session=bench", self.mnt]
        self.daemon(args)

    def after_stop(self):
        # cold: nothing of the previous mount's http cache survives
        if self.http:
            shutil.rmtree(self.cache, ignore_errors=True)
            os.makedirs(self.cache, exist_ok=True)

    def backing(self):
        return os.path.join(self.base, "noxrunner_sandbox_bench", "workspace")

    def noxctl(self):
        exe = os.path.join(self.build, "tools/noxctl/noxctl")
        return [exe, "--url", self.url] if self.http else [exe, f"--local={self.base}"]

    def teardown(self):
        super().teardown()
        stop(self.noxd)


# ---- workloads ----------------------------------------------------------

def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_in(d, cmd, timeout=CMD_TIMEOUT):
    rc = run_blocking(cmd, timeout, cwd=d, stdout=subprocess.DEVNULL)
    if rc is None:
        raise RuntimeError(f"`{cmd}` did not finish in {timeout:.0f} s")
    if rc != 0:
        raise subprocess.CalledProcessError(rc, cmd)


def clean(d):
    for n in os.listdir(d):
        if n == ".nox":
            continue
        p = os.path.join(d, n)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)


def make_tarball(work, nfiles):
    """A tar of the first nfiles regular files of /usr/include (sorted)."""
    tb = os.path.join(work, "tree.tar")
    files = []
    for dp, dn, fn in os.walk("/usr/include"):
        dn.sort()
        for f in sorted(fn):
            p = os.path.join(dp, f)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(os.path.relpath(p, "/usr"))
            if len(files) >= nfiles:
                break
        if len(files) >= nfiles:
            break
    lst = os.path.join(work, "tree.list")
    with open(lst, "w") as f:
        f.write("\n".join(files) + "\n")
    sh(["tar", "cf", tb, "-C", "/usr", "-T", lst])
    return tb, len(files), os.path.getsize(tb)


class Sizes:
    def __init__(self, quick):
        self.tree = 3000
        self.big = 64 if quick else 512
        self.ttfb = 16 if quick else 100
        self.small = 200 if quick else 1000
        self.loop = 50 if quick else 200
        self.exec = 50 if quick else 200
        self.mem = 10000 if quick else 100000
        self.prep_timeout = 300.0


def workloads(sz, tb):
    def w1(t):
        clean(t.dir)
        return timed(lambda: run_in(t.dir, f"tar xf {tb}"))

    def prep_tree(t):
        if not os.path.isdir(os.path.join(t.dir, "include")):
            run_in(t.dir, f"tar xf {tb}")

    def cold(cmd):
        def fn(t):
            prep_tree(t)
            t.remount()
            return timed(lambda: run_in(t.dir, cmd))
        return fn

    def warm(cmd):
        def fn(t):
            prep_tree(t)
            run_in(t.dir, cmd)
            return timed(lambda: run_in(t.dir, cmd))
        return fn

    grep = "grep -r zzqqxx_nomatch include || true"

    def w4_write(t):
        p = os.path.join(t.dir, "big")
        if os.path.exists(p):
            os.unlink(p)
        dt = timed(lambda: run_in(t.dir, f"dd if=/dev/zero of=big bs=1M count={sz.big} "
                                         "conv=fsync status=none"))
        return sz.big * 1.048576 / dt  # MB/s

    def w4_read(t):
        if not os.path.exists(os.path.join(t.dir, "big")):
            run_in(t.dir, f"dd if=/dev/zero of=big bs=1M count={sz.big} status=none")
        t.remount()
        dt = timed(lambda: run_in(t.dir, "dd if=big of=/dev/null bs=1M status=none"))
        return sz.big * 1.048576 / dt

    def w5(t):
        d = os.path.join(t.dir, "small")
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(d)
        data = b"x" * 4096

        def go():
            for i in range(sz.small):
                with open(os.path.join(d, f"f{i}"), "wb") as f:
                    f.write(data)
            for i in range(sz.small):
                os.stat(os.path.join(d, f"f{i}"))
        return timed(go)

    def w6(t):
        p = os.path.join(t.dir, "over")

        def go():
            for i in range(sz.loop):
                with open(p, "wb") as f:
                    f.write(b"version %d\n" % i)
                with open(p, "rb") as f:
                    if f.read() != b"version %d\n" % i:
                        raise RuntimeError("W6 read back stale data")
        return timed(go)

    def w7(t):
        p = os.path.join(t.dir, "doc.txt")

        def go():
            for i in range(sz.loop):
                tmp = p + ".tmp"
                with open(tmp, "wb") as f:
                    f.write(b"saved %d\n" % i)
                    f.flush()
                    os.fsync(f.fileno())
                os.rename(tmp, p)
            with open(p, "rb") as f:
                if f.read() != b"saved %d\n" % (sz.loop - 1):
                    raise RuntimeError("W7 read back stale data")
        return timed(go)

    def w9_ttfb(t):
        p = os.path.join(t.dir, "ttfb")
        if not os.path.exists(p):
            run_in(t.dir, f"dd if=/dev/urandom of=ttfb bs=1M count={sz.ttfb} status=none")
        t.remount()

        def go():
            with open(p, "rb") as f:
                f.read(1)
        return timed(go)

    def prep_git(t):
        g = os.path.join(t.dir, "repo")
        if getattr(t, "git_failed", None):
            raise RuntimeError(t.git_failed)
        if not os.path.isdir(os.path.join(g, ".git")):
            os.makedirs(g, exist_ok=True)
            try:
                run_in(g, f"tar xf {tb} && git init -q && git add -A && "
                          "git -c user.name=b -c user.email=b@b commit -qm init",
                       timeout=sz.prep_timeout)
            except RuntimeError as e:
                t.git_failed = f"checkout set-up: {e}"
                shutil.rmtree(g, ignore_errors=True)
                raise RuntimeError(t.git_failed) from None
        return g

    def w9_git_cold(t):
        g = prep_git(t)
        t.remount()
        return timed(lambda: run_in(g, "git status --porcelain"))

    def w9_git_warm(t):
        g = prep_git(t)
        run_in(g, "git status --porcelain")
        return timed(lambda: run_in(g, "git status --porcelain"))

    # (key, label, function, unit)
    return [
        ("W1", f"W1 untar {sz.tree} files (s)", w1, "s"),
        ("W2fc", "W2 find | wc -l cold (s)", cold("find . | wc -l"), "s"),
        ("W2fw", "W2 find | wc -l warm (s)", warm("find . | wc -l"), "s"),
        ("W2lc", "W2 ls -lR cold (s)", cold("ls -lR > /dev/null"), "s"),
        ("W2lw", "W2 ls -lR warm (s)", warm("ls -lR > /dev/null"), "s"),
        ("W3c", "W3 grep -r cold (s)", cold(grep), "s"),
        ("W3w", "W3 grep -r warm (s)", warm(grep), "s"),
        ("W4w", f"W4 write {sz.big} MiB, fsync (MB/s)", w4_write, "MB/s"),
        ("W4r", f"W4 read {sz.big} MiB cold (MB/s)", w4_read, "MB/s"),
        ("W5", f"W5 {sz.small} x 4 KiB create, then stat all (s)", w5, "s"),
        ("W6", f"W6 {sz.loop} x overwrite + read back (s)", w6, "s"),
        ("W7", f"W7 {sz.loop} x editor save (s)", w7, "s"),
        ("W9t", f"W9 first byte of {sz.ttfb} MiB cold (s)", w9_ttfb, "s"),
        ("W9gc", f"W9 git status, {sz.tree} files, cold (s)", w9_git_cold, "s"),
        ("W9gw", f"W9 git status, {sz.tree} files, warm (s)", w9_git_warm, "s"),
    ]


# ---- W8 and memory ------------------------------------------------------

def w8_ctl(t, n):
    ctl = os.path.join(t.dir, ".nox", "exec")

    def go():
        for _ in range(n):
            fd = os.open(ctl, os.O_RDWR)
            try:
                os.write(fd, b'{"cmd":["true"]}')
                res = os.pread(fd, 4096, 0)
            finally:
                os.close(fd)
            if b'"exitCode":0' not in res.replace(b" ", b""):
                raise RuntimeError(f".nox/exec: unexpected result {res[:200]!r}")
    return timed(go)


def w8_noxctl(t, n):
    cmd = t.noxctl() + ["exec", "bench", "--", "true"]
    return timed(lambda: [sh(cmd, stdout=subprocess.DEVNULL) for _ in range(n)])


def w8_bwrap(work, n):
    ws = os.path.join(work, "bwrap-ws")
    os.makedirs(ws, exist_ok=True)
    bw = ["bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
          "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
          "--ro-bind", "/etc", "/etc", "--bind", ws, "/workspace", "--tmpfs", "/tmp",
          "--dev", "/dev", "--proc", "/proc", "--unshare-all", "--new-session",
          "--die-with-parent", "--chdir", "/workspace", "true"]
    return timed(lambda: [sh(bw) for _ in range(n)])


def mem_test(t, nfiles, limit):
    """noxfs RSS (KiB) after find over nfiles files made directly on disk."""
    root = os.path.join(t.backing(), "m100k")
    per = 1000
    for d in range((nfiles + per - 1) // per):
        dp = os.path.join(root, f"d{d:03d}")
        os.makedirs(dp, exist_ok=True)
        for i in range(min(per, nfiles - d * per)):
            os.close(os.open(os.path.join(dp, f"f{i:04d}"), os.O_CREAT | os.O_WRONLY, 0o644))
    try:
        t.remount()
        before = proc_status(t.pid(), "VmRSS")
        out = subprocess.run("find m100k | wc -l", shell=True, cwd=t.dir, check=True,
                             capture_output=True, text=True, timeout=limit).stdout
        seen = int(out.strip())
        after = proc_status(t.pid(), "VmRSS")
        hwm = proc_status(t.pid(), "VmHWM")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        t.remount()
    expect = nfiles + (nfiles + per - 1) // per + 1
    if seen != expect:
        raise RuntimeError(f"find saw {seen} entries, expected {expect}")
    return before, after, hwm


# ---- report -------------------------------------------------------------

def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError):
        pass
    osname = "?"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass

    def ver(cmd, want=""):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            lines = (r.stdout + r.stderr).strip().splitlines()
            return next(ln for ln in lines if want in ln)
        except (OSError, StopIteration, subprocess.TimeoutExpired):
            return "?"
    return (f"{cpu}, {os.cpu_count()} CPUs, {mem}; {osname}, Linux {platform.release()}; "
            f"libfuse {ver(['pkg-config', '--modversion', 'fuse3'])}, "
            f"{ver(['sshfs', '-V'], 'SSHFS')}, {ver(['ssh', '-V'])}")


def fmt(v, unit):
    if unit == "MB/s":
        return f"{v:.0f}"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def slower(v, ref, unit):
    """How many times slower v is than ref (>1 = slower)."""
    return v / ref if unit == "s" else ref / v


def evaluate(results, wls, targets, extra):
    """Issue 7's targets: list of (target, measured, limit, met)."""
    names = {t.kind: t.name for t in targets}
    noxd = [t.name for t in targets if t.kind == "noxd"]
    rows = []

    def get(tname, key):
        return results.get((tname, key))

    local = names.get("noxfs-local")
    pt = names.get("passthrough")
    ssh = names.get("sshfs")
    for key, label, _, unit in wls:
        short = label.rsplit(" (", 1)[0]
        if local and pt:
            v, r = get(local, key), get(pt, key)
            if key == "W4w" or key == "W4r":
                what = f"noxfs local {short}: >= 90% of passthrough MB/s"
                if v is None or r is None:
                    rows.append((what, "not measured", None))
                else:
                    rows.append((what, f"{100 * v / r:.0f}%", v >= 0.9 * r))
            else:
                what = f"noxfs local {short}: <= 1.3x passthrough"
                if v is None or r is None:
                    rows.append((what, "not measured", None))
                else:
                    rows.append((what, f"{v / r:.2f}x", v <= 1.3 * r))
        if local and ssh:
            v, r = get(local, key), get(ssh, key)
            what = f"noxfs local {short}: not slower than sshfs"
            if v is None or r is None:
                rows.append((what, "not measured", None))
            else:
                rows.append((what, f"{slower(v, r, unit):.2f}x sshfs", slower(v, r, unit) <= 1.0))
    for n in noxd:
        labels = {k: l.rsplit(" (", 1)[0] for k, l, _, _ in wls}
        for key in ("W1", "W3c", "W3w", "W5", "W7"):
            if key not in labels:
                continue
            label = labels[key]
            what = f"{n} {label}: faster than sshfs"
            v, r = get(n, key), get(ssh, key) if ssh else None
            if v is None or r is None:
                rows.append((what, "not measured", None))
            else:
                rows.append((what, f"{v / r:.2f}x sshfs", v < r))
        if "W3w" not in labels:
            continue
        what = f"{n} W3 grep -r warm: <= 1.5x passthrough"
        v, r = get(n, "W3w"), get(pt, "W3w") if pt else None
        if v is None or r is None:
            rows.append((what, "not measured", None))
        else:
            rows.append((what, f"{v / r:.2f}x", v <= 1.5 * r))
    for n, (ctl, cli) in extra.get("w8", {}).items():
        for tag, v in (("fresh mount", ctl), ("all nodes cached", extra["w8_full"].get(n))):
            what = f"W8 {n}, {tag}: .nox/exec <= 1.2x noxctl exec"
            if v is None or cli is None:
                rows.append((what, "not measured", None))
            else:
                rows.append((what, f"{v / cli:.2f}x", v <= 1.2 * cli))
    for n, m in extra.get("mem", {}).items():
        what = f"{n}: RSS after find over {extra['mem_files']} files < 64 MiB"
        if m is None:
            rows.append((what, "not measured", None))
        else:
            rows.append((what, f"{m[1] / 1024:.1f} MiB", m[1] < 64 * 1024))
    for n, (idle, _) in extra.get("noxd", {}).items():
        what = f"noxd ({n}) RSS idle < 32 MiB"
        if idle is None:
            rows.append((what, "not measured", None))
        else:
            rows.append((what, f"{idle / 1024:.1f} MiB", idle < 32 * 1024))
    return rows


def write_report(args, out, text):
    keep = ""
    try:
        with open(out) as f:
            old = f.read()
        i = old.find(ANALYSIS_MARK)
        if i >= 0:
            keep = old[i:]
    except OSError:
        pass
    if not keep:
        keep = ANALYSIS_MARK + "\n"
    with open(out, "w") as f:
        f.write(text + "\n" + keep)


def main():
    ap = argparse.ArgumentParser(description="noxfs benchmark (issue 7)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--only", default="", help="comma-separated target names (native is always run)")
    ap.add_argument("--skip", default="",
                    help="comma-separated workload keys to skip (W1,W2fc,...; W8, mem)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "performance.md"))
    ap.add_argument("--work", default=None, help="work directory (default: a new one in /var/tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--slow", type=float, default=60.0,
                    help="a repetition slower than this many seconds is not repeated")
    ap.add_argument("--prep-timeout", type=float, default=300.0,
                    help="time limit of the git checkout set-up (W9) per target")
    ap.add_argument("--mem-timeout", type=float, default=300.0,
                    help="time limit of the find in the memory test")
    ap.add_argument("--compare", default=None, metavar="OLD_BUILD",
                    help="also run each noxfs target from this build tree (an older "
                         "commit's release build), interleaved, and add a table of "
                         "new / old times")
    args = ap.parse_args()

    # a background job inherits SIGINT ignored; make SIGINT and SIGTERM
    # unwind through the finally below, which unmounts and stops by PID
    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sz = Sizes(args.quick)
    sz.prep_timeout = args.prep_timeout
    work = args.work or tempfile.mkdtemp(prefix="noxbench-", dir="/var/tmp")
    os.makedirs(work, exist_ok=True)
    build = args.build
    all_targets = [Native("native", work), Passthrough("passthrough_ll", work), Sshfs("sshfs", work),
                   Noxfs("noxfs local", work, build), Noxfs("noxfs noxd", work, build, "ext"),
                   Noxfs("noxfs noxd --v1-only", work, build, "v1")]
    targets = all_targets
    if args.only:
        keep = set(args.only.split(",")) | {"native"}
        targets = [t for t in all_targets if t.name in keep]
    twins = {}  # new target name -> its twin from --compare
    if args.compare:
        for t in [t for t in targets if isinstance(t, Noxfs)]:
            old = Noxfs(t.name + " @old", work, os.path.abspath(args.compare), t.http)
            old.kind = "old"  # not one of issue 7's targets
            twins[t.name] = old
            targets.insert(targets.index(t) + 1, old)
    load0 = os.getloadavg()
    t_start = time.time()
    tb, ntree, tbsize = make_tarball(work, sz.tree)
    wls = workloads(sz, tb)
    if args.skip:
        skip = set(args.skip.split(","))
        wls = [w for w in wls if w[0] not in skip]
    results, notes, failed, slow = {}, [], set(), set()
    active = []
    try:
        for t in targets:
            try:
                t.setup()
                active.append(t)
            except Exception as e:  # a target that cannot run is reported, not hidden
                notes.append(f"{t.name}: not measured ({e})")
                t.teardown()
        print("targets: " + ", ".join(t.name for t in active), flush=True)
        for key, label, fn, unit in wls:
            vals = {t.name: [] for t in active}
            for rep in range(args.reps):
                for t in list(active):
                    if (t.name, key) in failed:
                        continue
                    if (t.name, key) in slow:
                        continue
                    try:
                        t0 = time.time()
                        vals[t.name].append(fn(t))
                        if time.time() - t0 > args.slow and rep + 1 < args.reps:
                            slow.add((t.name, key))
                            notes.append(f"{t.name} / {label}: one repetition took "
                                         f"{time.time() - t0:.0f} s with its set-up "
                                         f"(> --slow {args.slow:.0f}); not repeated, "
                                         "the row is that one timing")
                    except Exception as e:
                        notes.append(f"{t.name} / {label}: failed ({e})")
                        failed.add((t.name, key))
                        try:  # leave the target usable for the next workloads
                            t.remount()
                        except Exception as e2:
                            notes.append(f"{t.name}: remount failed ({e2}); dropped")
                            active.remove(t)
                    if key == "W1":
                        for n in active:
                            if n.kind == "noxd" and n.noxd:
                                n.noxd_hwm = proc_status(n.noxd.pid, "VmHWM")
            line = f"{label:46s}"
            for t in active:
                if vals.get(t.name) and (t.name, key) not in failed:
                    results[(t.name, key)] = statistics.median(vals[t.name])
                    line += f" {t.name}={fmt(results[(t.name, key)], unit)}"
            print(line, flush=True)

        extra = {"w8": {}, "w8_full": {}, "w8_nodes": {}, "mem": {}, "noxd": {},
                 "mem_files": sz.mem}
        w8 = {}
        skipped = set(args.skip.split(","))
        for t in active:
            if not isinstance(t, Noxfs) or "W8" in skipped:
                continue
            nr = max(1, args.reps // 2)
            ctl = cli = ctl_full = None
            try:
                t.remount()  # few inodes in the kernel: the exec path alone
                ctl = statistics.median([w8_ctl(t, sz.exec) for _ in range(nr)])
                cli = statistics.median([w8_noxctl(t, sz.exec) for _ in range(nr)])
                # every node known to the kernel: the exec barrier invalidates each
                out = subprocess.run("ls -laR | wc -l", shell=True, cwd=t.dir, check=True,
                                     capture_output=True, text=True,
                                     timeout=CMD_TIMEOUT).stdout
                extra["w8_nodes"][t.name] = int(out.strip())
                ctl_full = statistics.median([w8_ctl(t, sz.exec) for _ in range(nr)])
            except Exception as e:
                notes.append(f"{t.name} / W8: failed ({e})")
            extra["w8"][t.name] = (ctl, cli)
            extra["w8_full"][t.name] = ctl_full
            print(f"W8 {t.name}: .nox/exec {ctl} noxctl {cli} .nox/exec after ls -lR {ctl_full}",
                  flush=True)
        try:
            if "W8" not in skipped:
                w8["direct bwrap"] = statistics.median([w8_bwrap(work, sz.exec)
                                                        for _ in range(max(1, args.reps // 2))])
        except Exception as e:
            notes.append(f"W8 direct bwrap: failed ({e})")
        for t in targets:
            if isinstance(t, Noxfs) and t.http:
                extra["noxd"][t.name] = (getattr(t, "noxd_idle_kib", None),
                                         getattr(t, "noxd_hwm", None))
        for t in active:
            if not isinstance(t, Noxfs) or "mem" in skipped:
                continue
            try:
                extra["mem"][t.name] = mem_test(t, sz.mem, args.mem_timeout)
                print(f"memory {t.name}: {extra['mem'][t.name]}", flush=True)
            except Exception as e:
                notes.append(f"{t.name} / memory: failed ({e})")
                extra["mem"][t.name] = None
    finally:
        for t in targets:
            try:
                t.teardown()
            except Exception as e:
                notes.append(f"{t.name}: teardown: {e}")
        if sys.exc_info()[0] is not None and not args.work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)  # interrupted: no report
    for t in all_targets:
        if isinstance(t, Noxfs) and t not in targets:
            notes.append(f"{t.name}: not measured (left out with --only)")
    load1 = os.getloadavg()
    elapsed = time.time() - t_start

    # ---- the report
    shown = [t for t in targets]
    L = []
    L.append("# noxfs performance\n")
    L.append("Written by `tools/bench.sh` (tools/bench/bench.py); the analysis below the "
             "tables is by hand. Re-run with `tools/bench.sh` (about "
             f"{elapsed / 60:.0f} minutes here); `--quick` for a smoke run.\n")
    L.append(f"- Machine: {machine()}.")
    L.append(f"- Work directory on: {fstype(work)}.")
    L.append(f"- Date: {time.strftime('%Y-%m-%d %H:%M %Z')}; load average "
             f"{load0[0]:.1f} at the start, {load1[0]:.1f} at the end "
             "(the machine was shared with other jobs).")
    L.append(f"- Medians of {args.reps} repetitions, each workload run on all targets in turn. "
             "In brackets the ratio to the native directory: time / native time; for MB/s "
             "native MB/s / MB/s; so above 1 is slower everywhere.")
    L.append(f"- Tree: the first {ntree} files of /usr/include ({tbsize / 1048576:.0f} MiB tar). "
             "cold = fresh mount after dropping the kernel caches" +
             ("" if is_root() else " (not root: kernel caches NOT dropped)") +
             "; for noxfs over noxd also an empty cache directory. warm = the same command "
             "run once before.")
    if args.quick:
        L.append("- Quick mode: smaller sizes than issue 7 asks for.")
    L.append("")
    L.append("| workload | " + " | ".join(t.name for t in shown) + " |")
    L.append("| --- | " + " | ".join("---:" for _ in shown) + " |")
    for key, label, _, unit in wls:
        row = [label.replace("|", "\\|")]
        nat = results.get(("native", key))
        for t in shown:
            v = results.get((t.name, key))
            if v is None:
                row.append("n/a")
            elif nat and t.kind != "native":
                row.append(f"{fmt(v, unit)} ({slower(v, nat, unit):.2f}x)")
            else:
                row.append(fmt(v, unit))
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    if twins:
        L.append(f"### Against the build in {args.compare}\n")
        L.append("Each noxfs target run beside its twin from the older build, interleaved "
                 "in the same repetitions; new / old above 1 is slower now (for MB/s, old "
                 "MB/s / new MB/s).\n")
        L.append("| workload | " + " | ".join(twins) + " |")
        L.append("| --- | " + " | ".join("---:" for _ in twins) + " |")
        for key, label, _, unit in wls:
            row = [label.replace("|", "\\|")]
            for n, old in twins.items():
                v, r = results.get((n, key)), results.get((old.name, key))
                row.append(f"{slower(v, r, unit):.2f}" if v and r else "n/a")
            L.append("| " + " | ".join(row) + " |")
        L.append("")
    L.append(f"### W8: {sz.exec} x `true`, seconds in all (per call in brackets)\n")
    L.append("Fresh mount (few inodes in the kernel), then .nox/exec again after `ls -laR` made "
             "the kernel hold a node for every file of the workspace (the exec barrier "
             "invalidates each).\n")
    L.append("| backend | .nox/exec, fresh mount | noxctl exec ID -- true | ratio "
             "| .nox/exec, all nodes cached | ratio |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: |")

    def per(v):
        return f"{v:.2f} ({1000 * v / sz.exec:.1f} ms)" if v else "n/a"
    for n, (ctl, cli) in extra["w8"].items():
        full = extra["w8_full"].get(n)
        nodes = extra["w8_nodes"].get(n)
        ratio = f"{ctl / cli:.2f}x" if ctl and cli else "n/a"
        ratio2 = f"{full / cli:.2f}x" if full and cli else "n/a"
        c3 = per(full) + (f", {nodes} lines of ls -laR" if nodes else "")
        L.append(f"| {n} | {per(ctl)} | {per(cli)} | {ratio} | {c3} | {ratio2} |")
    if "direct bwrap" in w8:
        L.append(f"| direct local `bwrap ... true` | | {per(w8['direct bwrap'])} | | | |")
    L.append("")
    L.append("### Memory\n")
    for n, m in extra["mem"].items():
        if m:
            L.append(f"- {n}: RSS {m[0] / 1024:.1f} MiB on a fresh mount, {m[1] / 1024:.1f} MiB "
                     f"after `find` over {sz.mem} files (peak {m[2] / 1024:.1f} MiB).")
        else:
            L.append(f"- {n}: not measured.")
    for n, (idle, hwm) in extra["noxd"].items():
        s = f"- noxd ({n}): RSS " + (f"{idle / 1024:.1f} MiB idle (started, before any mount)"
                                     if idle else "idle not measured")
        s += (f", peak {hwm / 1024:.1f} MiB by the end of W1." if hwm
              else "; under W1 not measured.")
        L.append(s)
    L.append("")
    L.append("### Targets of issue 7\n")
    L.append("| target | measured | met |")
    L.append("| --- | ---: | --- |")
    for what, meas, ok in evaluate(results, wls, targets, extra):
        what = what.replace("|", "\\|")
        L.append(f"| {what} | {meas} | {'yes' if ok else ('**no**' if ok is False else 'not measured')} |")
    L.append("")
    if notes:
        L.append("### Notes from this run\n")
        L.extend(f"- {n}" for n in notes)
        L.append("")
    text = "\n".join(L)
    print(text)
    write_report(args, args.out, text)
    print(f"written to {args.out}")
    if not args.work and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    elif args.keep:
        print(f"work directory kept: {work}")


def fstype(path):
    try:
        r = subprocess.run(["df", "-T", path], capture_output=True, text=True, timeout=10)
        f = r.stdout.splitlines()[-1].split()
        return f"{f[1]} ({f[0]})"
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


if __name__ == "__main__":
    main()
