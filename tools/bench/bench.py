#!/usr/bin/env python3
"""noxfs benchmark: the same workloads on the native directory, a FUSE
passthrough of it (libfuse's passthrough_ll), sshfs over loopback, noxfs on the
local backend and noxfs over noxd on loopback (with extensions and --v1-only).

    tools/bench.sh [--reps N] [--quick] [--only TARGET,...] [--out docs/performance.md]

Prints a table of medians and ratios to native and writes it (with the machine
description) to the output file.  Everything runs on this machine; servers bind
127.0.0.1 only and every mount and process started is cleaned up by PID.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def wait_mount(path, proc, timeout=15):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"daemon for {path} exited with {proc.returncode}")
        with open("/proc/self/mountinfo") as f:
            if any(line.split()[4] == path for line in f):
                return
        time.sleep(0.05)
    raise RuntimeError(f"mount {path} did not appear")


def umount(path):
    if subprocess.run(["fusermount3", "-u", path], stderr=subprocess.DEVNULL).returncode:
        subprocess.run(["fusermount3", "-uz", path], stderr=subprocess.DEVNULL)


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def drop_caches():
    try:
        sh("sync")
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


class Target:
    """A directory to run workloads in; remount() gives a cold cache."""

    def __init__(self, name, work):
        self.name = name
        self.work = work
        self.procs = []
        self.mnt = None

    def setup(self):
        pass

    def remount(self):
        pass

    def teardown(self):
        if self.mnt:
            umount(self.mnt)
        for p in self.procs:
            stop(p)
        self.procs = []

    def pid(self):
        return None


class Native(Target):
    def setup(self):
        self.dir = os.path.join(self.work, "native")
        os.makedirs(self.dir, exist_ok=True)

    def remount(self):
        drop_caches()


class Passthrough(Target):
    def setup(self):
        self.src = os.path.join(self.work, "pt-src")
        self.mnt = os.path.join(self.work, "pt-mnt")
        os.makedirs(self.src, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        self.bin = os.path.join(self.work, "passthrough_ll")
        if not os.path.exists(self.bin):
            ex = "/usr/share/doc/libfuse3-dev/examples"
            flags = subprocess.check_output(["pkg-config", "--cflags", "--libs", "fuse3"], text=True).split()
            sh(["cc", "-O2", "-o", self.bin, f"{ex}/passthrough_ll.c", "-I", ex] + flags)
        self.remount(first=True)
        self.dir = self.mnt

    def remount(self, first=False):
        if not first:
            umount(self.mnt)
            for p in self.procs:
                stop(p)
            self.procs = []
        drop_caches()
        p = subprocess.Popen([self.bin, "-f", "-o", f"source={self.src}", self.mnt],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs = [p]
        wait_mount(self.mnt, p)


class Sshfs(Target):
    def setup(self):
        self.src = os.path.join(self.work, "ssh-src")
        self.mnt = os.path.join(self.work, "ssh-mnt")
        os.makedirs(self.src, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        d = os.path.join(self.work, "sshd")
        os.makedirs(d, exist_ok=True)
        for k in ("host", "user"):
            kp = os.path.join(d, k)
            if not os.path.exists(kp):
                sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", kp])
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
UsePAM no
StrictModes no
PidFile {d}/sshd.pid
Subsystem sftp internal-sftp
""")
        os.makedirs("/run/sshd", exist_ok=True)
        self.sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", cfg],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        self.key = os.path.join(d, "user")
        self.remount(first=True)
        self.dir = self.mnt

    def remount(self, first=False):
        if not first:
            umount(self.mnt)
            for p in self.procs:
                stop(p)
        drop_caches()
        p = subprocess.Popen(["sshfs", "-f", f"root@127.0.0.1:{self.src}", self.mnt,
                              "-p", str(self.port), "-o", f"IdentityFile={self.key}",
                              "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                              "-o", "LogLevel=ERROR"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs = [p]
        wait_mount(self.mnt, p)

    def teardown(self):
        super().teardown()
        stop(self.sshd)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Noxfs(Target):
    def __init__(self, name, work, build, http=None):
        super().__init__(name, work)
        self.build = build
        self.http = http  # None, "ext" or "v1"
        self.noxd = None

    def setup(self):
        tag = self.name.replace(" ", "_").replace("(", "").replace(")", "").replace("-", "_")
        self.base = os.path.join(self.work, f"{tag}-base")
        self.mnt = os.path.join(self.work, f"{tag}-mnt")
        self.cache = os.path.join(self.work, f"{tag}-cache")
        for d in (self.base, self.mnt, self.cache):
            os.makedirs(d, exist_ok=True)
        if self.http:
            pf = os.path.join(self.work, f"{tag}-port")
            args = [os.path.join(self.build, "tools/noxd/noxd"), "--listen", "127.0.0.1:0",
                    "--base-dir", self.base, "--port-file", pf]
            if self.http == "v1":
                args.append("--v1-only")
            self.noxd = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t0 = time.time()
            while not os.path.exists(pf):
                if time.time() - t0 > 10 or self.noxd.poll() is not None:
                    raise RuntimeError("noxd did not start")
                time.sleep(0.05)
            self.url = f"http://127.0.0.1:{open(pf).read().strip()}"
        self.remount(first=True)
        self.dir = self.mnt

    def remount(self, first=False):
        if not first:
            umount(self.mnt)
            for p in self.procs:
                stop(p)
        drop_caches()
        exe = os.path.join(self.build, "src/fs/noxfs")
        if self.http:
            args = [exe, "--url", self.url, "-f", "-o", f"session=bench,cache_dir={self.cache}", self.mnt]
        else:
            args = [exe, f"--local={self.base}", "-f", "-o", "session=bench", self.mnt]
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs = [p]
        wait_mount(self.mnt, p)

    def pid(self):
        return self.procs[0].pid if self.procs else None

    def teardown(self):
        super().teardown()
        stop(self.noxd)


# ---- workloads --------------------------------------------------------------

def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_in(d, cmd):
    subprocess.run(cmd, shell=True, cwd=d, check=True, stdout=subprocess.DEVNULL)


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
    tb = os.path.join(work, "tree.tar")
    if os.path.exists(tb):
        return tb
    src = "/usr/include"
    files = []
    for dp, dn, fn in os.walk(src):
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
    return tb


def workloads(args, work):
    tb = make_tarball(work, 3000)
    big = 512 if not args.quick else 64
    ttfb = 100 if not args.quick else 16
    n_small = 1000 if not args.quick else 200
    n_loop = 200 if not args.quick else 50

    def w1(t):
        clean(t.dir)
        return timed(lambda: run_in(t.dir, f"tar xf {tb}"))

    def prep_tree(t):
        if not os.path.isdir(os.path.join(t.dir, "include")):
            run_in(t.dir, f"tar xf {tb}")

    def w2_find_cold(t):
        prep_tree(t)
        t.remount()
        return timed(lambda: run_in(t.dir, "find . | wc -l"))

    def w2_find_warm(t):
        prep_tree(t)
        run_in(t.dir, "find . | wc -l")
        return timed(lambda: run_in(t.dir, "find . | wc -l"))

    def w2_lslr_warm(t):
        prep_tree(t)
        run_in(t.dir, "ls -lR > /dev/null")
        return timed(lambda: run_in(t.dir, "ls -lR > /dev/null"))

    def w3_cold(t):
        prep_tree(t)
        t.remount()
        return timed(lambda: run_in(t.dir, "grep -r zzqqxx_nomatch include || true"))

    def w3_warm(t):
        prep_tree(t)
        run_in(t.dir, "grep -r zzqqxx_nomatch include || true")
        return timed(lambda: run_in(t.dir, "grep -r zzqqxx_nomatch include || true"))

    def w4_write(t):
        p = os.path.join(t.dir, "big")
        dt = timed(lambda: run_in(t.dir, f"dd if=/dev/zero of=big bs=1M count={big} conv=fsync status=none"))
        return big / dt  # MB/s

    def w4_read(t):
        if not os.path.exists(os.path.join(t.dir, "big")):
            run_in(t.dir, f"dd if=/dev/zero of=big bs=1M count={big} status=none")
        t.remount()
        dt = timed(lambda: run_in(t.dir, "dd if=big of=/dev/null bs=1M status=none"))
        return big / dt

    def w5(t):
        d = os.path.join(t.dir, "small")
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(d)
        data = b"x" * 4096

        def go():
            for i in range(n_small):
                with open(os.path.join(d, f"f{i}"), "wb") as f:
                    f.write(data)
            for i in range(n_small):
                os.stat(os.path.join(d, f"f{i}"))
        return timed(go)

    def w6(t):
        p = os.path.join(t.dir, "over")

        def go():
            for i in range(n_loop):
                with open(p, "wb") as f:
                    f.write(b"version %d\n" % i)
                with open(p, "rb") as f:
                    assert f.read() == b"version %d\n" % i
        return timed(go)

    def w7(t):
        p = os.path.join(t.dir, "doc.txt")

        def go():
            for i in range(n_loop):
                tmp = p + ".tmp"
                with open(tmp, "wb") as f:
                    f.write(b"saved %d\n" % i)
                    f.flush()
                    os.fsync(f.fileno())
                os.rename(tmp, p)
        return timed(go)

    def w9_ttfb(t):
        p = os.path.join(t.dir, "ttfb")
        if not os.path.exists(p):
            run_in(t.dir, f"dd if=/dev/urandom of=ttfb bs=1M count={ttfb} status=none")
        t.remount()

        def go():
            with open(p, "rb") as f:
                f.read(1)
        return timed(go)

    def prep_git(t):
        g = os.path.join(t.dir, "repo")
        if not os.path.isdir(os.path.join(g, ".git")):
            os.makedirs(g, exist_ok=True)
            run_in(g, f"tar xf {tb} && git init -q && git add -A && git -c user.name=b -c user.email=b@b commit -qm init")
        return g

    def w9_git_cold(t):
        g = prep_git(t)
        t.remount()
        return timed(lambda: run_in(g, "git status --porcelain"))

    def w9_git_warm(t):
        g = prep_git(t)
        run_in(g, "git status --porcelain")
        return timed(lambda: run_in(g, "git status --porcelain"))

    def w8_exec(t):
        ctl = os.path.join(t.dir, ".nox", "exec")
        if not os.path.exists(ctl):
            return None

        def go():
            for _ in range(n_loop):
                fd = os.open(ctl, os.O_WRONLY)
                os.write(fd, b'{"cmd":["true"]}')
                os.close(fd)
        return timed(go)

    return [
        ("W1 untar 3000 files (s)", w1, "s"),
        ("W2 find|wc cold (s)", w2_find_cold, "s"),
        ("W2 find|wc warm (s)", w2_find_warm, "s"),
        ("W2 ls -lR warm (s)", w2_lslr_warm, "s"),
        ("W3 grep -r cold (s)", w3_cold, "s"),
        ("W3 grep -r warm (s)", w3_warm, "s"),
        (f"W4 write {big} MiB (MB/s)", w4_write, "MB/s"),
        (f"W4 read {big} MiB cold (MB/s)", w4_read, "MB/s"),
        (f"W5 {n_small} x 4 KiB create+stat (s)", w5, "s"),
        (f"W6 {n_loop} x overwrite+read (s)", w6, "s"),
        (f"W7 {n_loop} x editor save (s)", w7, "s"),
        (f"W9 first byte of {ttfb} MiB cold (s)", w9_ttfb, "s"),
        ("W9 git status cold (s)", w9_git_cold, "s"),
        ("W9 git status warm (s)", w9_git_warm, "s"),
        (f"W8 {n_loop} x .nox/exec true (s)", w8_exec, "s"),
    ]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def exec_baselines(args, work, build):
    """W8 references: noxctl exec and a direct bwrap, n times `true`."""
    n = 200 if not args.quick else 50
    base = os.path.join(work, "w8-base")
    os.makedirs(base, exist_ok=True)
    noxctl = os.path.join(build, "tools/noxctl/noxctl")
    out = {}
    if os.path.exists(noxctl):
        sh([noxctl, f"--local={base}", "create", "w8"], stdout=subprocess.DEVNULL)
        out["noxctl exec (local)"] = timed(lambda: [sh([noxctl, f"--local={base}", "exec", "w8", "--", "true"]) for _ in range(n)])
    ws = os.path.join(base, "noxrunner_sandbox_w8", "workspace")
    os.makedirs(ws, exist_ok=True)
    bw = ["bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
          "--symlink", "usr/lib64", "/lib64", "--ro-bind", "/etc", "/etc", "--bind", ws, "/workspace",
          "--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc", "--unshare-all", "--die-with-parent",
          "--chdir", "/workspace", "true"]
    out["direct bwrap"] = timed(lambda: [sh(bw) for _ in range(n)])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--only", default="", help="comma-separated target names")
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "performance.md"))
    ap.add_argument("--work", default=None)
    args = ap.parse_args()

    work = args.work or tempfile.mkdtemp(prefix="noxbench-", dir="/var/tmp")
    build = args.build
    targets = [Native("native", work), Passthrough("passthrough_ll", work), Sshfs("sshfs", work),
               Noxfs("noxfs local", work, build), Noxfs("noxfs noxd", work, build, "ext"),
               Noxfs("noxfs noxd --v1-only", work, build, "v1")]
    if args.only:
        keep = set(args.only.split(","))
        targets = [t for t in targets if t.name in keep]
    wls = workloads(args, work)
    results = {}
    notes = []
    rss = {}
    for t in targets:
        print(f"== {t.name}", flush=True)
        try:
            t.setup()
        except Exception as e:  # a target that cannot run is reported, not hidden
            notes.append(f"{t.name}: not measured ({e})")
            t.teardown()
            continue
        try:
            for name, fn, unit in wls:
                vals = []
                for _ in range(args.reps):
                    try:
                        v = fn(t)
                    except Exception as e:
                        notes.append(f"{t.name} / {name}: failed ({e})")
                        v = None
                        break
                    if v is None:
                        break
                    vals.append(v)
                if vals:
                    results[(t.name, name)] = statistics.median(vals)
                    print(f"   {name:40s} {results[(t.name, name)]:.3f}", flush=True)
            if t.pid():
                rss[t.name] = rss_kib(t.pid())
        finally:
            t.teardown()
    base8 = exec_baselines(args, work, build)

    lines = []
    lines.append("| workload | " + " | ".join(t.name for t in targets) + " |")
    lines.append("| --- | " + " | ".join("---" for _ in targets) + " |")
    for name, _, unit in wls:
        row = [name]
        nat = results.get(("native", name))
        for t in targets:
            v = results.get((t.name, name))
            if v is None:
                row.append("n/a")
            elif nat and t.name != "native":
                ratio = (v / nat) if unit == "s" else (nat / v)
                row.append(f"{v:.3f} ({ratio:.2f}x)")
            else:
                row.append(f"{v:.3f}")
        lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines)
    print(table)
    mach = f"{platform.node()}: {platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}"
    try:
        mem = open("/proc/meminfo").readline().split()[1]
        mach += f", {int(mem) // 1024 // 1024} GiB RAM"
    except OSError:
        pass
    with open(args.out, "w") as f:
        f.write("# noxfs performance\n\n")
        f.write("Measured by `tools/bench.sh` (see the script for the workloads). Medians of "
                f"{args.reps} repetitions; in brackets the ratio to the native directory "
                "(time / native time; for MB/s, native MB/s / MB/s, so higher is slower everywhere).\n\n")
        f.write(f"Machine: {mach}. Date: {time.strftime('%Y-%m-%d')}."
                f"{' Quick mode (smaller sizes).' if args.quick else ''}\n\n")
        f.write(table + "\n\n")
        if base8:
            f.write("W8 references (same count of `true`):\n\n")
            for k, v in base8.items():
                f.write(f"- {k}: {v:.3f} s\n")
            f.write("\n")
        if rss:
            f.write("noxfs RSS after the run (KiB): " + ", ".join(f"{k}: {v}" for k, v in rss.items()) + "\n\n")
        if notes:
            f.write("Notes:\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    print(f"written to {args.out}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
