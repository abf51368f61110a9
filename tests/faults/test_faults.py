#!/usr/bin/env python3
"""tests/faults/test_faults.py - noxd killed (SIGKILL) under a client.

Drives the real programs: $NOX_BUILD_ROOT/tools/noxd/noxd on 127.0.0.1 and
$NOX_BUILD_ROOT/tools/noxctl/noxctl --url (the libnox http backend).  noxd
is SIGKILLed in the middle of an upload, a download and an exec, then
restarted on the same base directory and the same port, and:

  * the client ends within its --timeout (plus a small margin) with exit
    status 69 (backend unavailable) or 70 and a message naming the
    failure, never a hang and never a command's exit status;
  * nothing half-written is visible: after a killed upload the
    workspace lists what it listed before; after a killed download
    neither the -o file nor its temp name exists;
  * the command of a killed exec dies with noxd (no process of it left),
    and an exec is never replayed on the restarted server (the command's
    side effect happened once);
  * the restarted noxd serves the sandboxes it had: listed, info, exec,
    download of earlier files with the same checksums; a retried upload
    succeeds and its checksum matches, inside the sandbox and downloaded;
  * a kill-and-restart while the client is in the middle of an upload or
    a download is absorbed by the client's retry (idempotent calls are
    replayed from the start of the tar): it succeeds, checksums match.

"In the middle" is made deterministic: the client is SIGSTOPped once the
transfer is under way (noxd's spool file, or noxctl's temp output file,
holds more than 1 MiB and less than all of it), noxd is SIGKILLed (and,
in the replay cases, restarted), then the client gets SIGCONT.

A kill while noxd is extracting an upload (after the whole body arrived)
is also tried: entries are installed one by one, each written into an
unnamed (O_TMPFILE) file and linked in only when complete, so a prefix of
the archive's files is there and nothing else; the test asserts that
every visible file is complete and that no ".nox-tar.*" temp name is
left, neither after the kill (the upload goes into a new directory, so
no name needs the temp-name-and-rename step) nor after the retried
upload.

Limits: needs bubblewrap (exit 77 without, a failure under
NOX_NO_SKIP=1); loopback only; every process is stopped by PID; about
60 s.  Processes of the command of a killed exec are found by an exact,
unique argv ("sleep 41.4142"), never by name.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BUILD = os.environ.get("NOX_BUILD_ROOT", "")
NOXD = os.path.join(BUILD, "tools", "noxd", "noxd")
NOXCTL = os.path.join(BUILD, "tools", "noxctl", "noxctl")
MIB = 1 << 20

PASS = 0
FAIL = 0
N = 0


def skip(msg):
    if os.environ.get("NOX_NO_SKIP") == "1":
        print("not ok - prerequisite missing: %s (NOX_NO_SKIP=1)" % msg)
        sys.exit(1)
    print("SKIP: " + msg)
    sys.exit(77)


def check(what, cond, detail=""):
    global PASS, FAIL, N
    N += 1
    if cond:
        PASS += 1
        print("ok %d - %s" % (N, what))
    else:
        FAIL += 1
        print("not ok %d - %s" % (N, what))
        for line in str(detail).splitlines()[:40]:
            print("#   " + line)
    sys.stdout.flush()
    return cond


def note(msg):
    print("# " + msg)
    sys.stdout.flush()


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(MIB)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()[0]
        return st != "Z"
    except OSError:
        return False


class Noxd:
    """noxd on 127.0.0.1 over one base dir; start() again reuses the port."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.base = os.path.join(tmp, "base")
        os.makedirs(self.base, exist_ok=True)
        self.port = 0
        self.proc = None
        self.n = 0
        self.logs = []

    def start(self):
        self.n += 1
        pf = os.path.join(self.tmp, "port.%d" % self.n)
        log = os.path.join(self.tmp, "noxd.%d.log" % self.n)
        self.logs.append(log)
        cmd = [NOXD, "--listen", "127.0.0.1:%d" % self.port,
               "--base-dir", self.base, "--port-file", pf]
        env = dict(os.environ)
        env.pop("NOXD_TOKEN", None)
        deadline = time.monotonic() + 15
        while True:
            with open(log, "wb") as lf:
                self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                             stderr=lf, env=env)
            while time.monotonic() < deadline:
                if os.path.exists(pf) and os.path.getsize(pf) > 0:
                    with open(pf) as f:
                        self.port = int(f.read().strip())
                    return self.proc.pid
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
            # the old port may still be held for a moment; retry, bounded
            if time.monotonic() >= deadline:
                raise AssertionError("noxd did not start: " + self.logtext())
            time.sleep(0.2)

    def logtext(self):
        try:
            with open(self.logs[-1], "rb") as f:
                return f.read().decode("utf-8", "replace")[-3000:]
        except OSError:
            return ""

    def kill(self):
        """SIGKILL by PID, reaped."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            return self.proc.returncode
        return None

    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def ws(self, sid):
        return os.path.join(self.base, "noxrunner_sandbox_" + sid,
                            "workspace")

    def fds(self):
        """(path, size) of noxd's open regular files."""
        out = []
        d = "/proc/%d/fd" % self.proc.pid
        try:
            names = os.listdir(d)
        except OSError:
            return out
        for n in names:
            try:
                link = os.readlink(os.path.join(d, n))
                st = os.stat(os.path.join(d, n))
            except OSError:
                continue
            if link.startswith("/"):
                out.append((link, st.st_size))
        return out


class Env:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="noxfs-faults-")
        self.noxd = Noxd(self.tmp)
        self.clients = []

    def ctl(self, *args, timeout=10, wait=True, **kw):
        cmd = [NOXCTL, "--url", self.noxd.url(), "--timeout", str(timeout),
               "-q"] + list(args)
        env = dict(os.environ)
        env.pop("NOXRUNNER_TOKEN", None)
        p = subprocess.Popen(cmd, stdout=kw.get("stdout", subprocess.PIPE),
                             stderr=subprocess.PIPE, env=env, cwd=self.tmp)
        self.clients.append(p)
        if not wait:
            return p
        try:
            out, err = p.communicate(timeout=timeout + 60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            return 999, out, err
        return p.returncode, out, err

    def cleanup(self):
        for p in self.clients:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                except OSError:
                    pass
                p.kill()
                p.wait(10)
        self.noxd.stop()
        if os.environ.get("NOX_TEST_KEEP") == "1":
            note("kept " + self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def wait_for(cond, secs, step=0.005):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return None


def finish_client(p, secs):
    """Waits for client p; (rc, out, err, seconds) or rc 'hung'."""
    t0 = time.monotonic()
    try:
        out, err = p.communicate(timeout=secs)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGCONT)
        p.kill()
        out, err = p.communicate()
        return "hung", out, err, time.monotonic() - t0
    return p.returncode, out, err, time.monotonic() - t0


def rand_file(path, size, seed):
    with open(path, "wb") as f:
        left = size
        h = hashlib.sha256(seed.encode()).digest()
        # incompressible, cheap: os.urandom
        while left > 0:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n
    return sha(path)


def ws_names(e, sid):
    try:
        return sorted(os.listdir(e.noxd.ws(sid)))
    except OSError as ex:
        return ["<%s>" % ex]


def sandbox_sha(e, sid, name):
    rc, out, err = e.ctl("exec", sid, "--", "sha256sum", name, timeout=60)
    if rc != 0:
        return "exit %s %s" % (rc, err.decode(errors="replace"))
    return out.decode().split()[0]


def cmd_procs(argv):
    """PIDs whose exact argv is argv."""
    want = ("\0".join(argv) + "\0").encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if f.read() == want:
                    out.append(int(d))
        except OSError:
            pass
    return out


def leftover_cgroups(pid):
    """Per-command cgroups named after the killed noxd pid (v1 and v2)."""
    out = []
    seen = set()
    for root in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory",
                 "/sys/fs/cgroup/unified", "/sys/fs/cgroup/noxfs"):
        for dp, dns, _ in os.walk(root):
            if os.path.basename(dp) == "noxfs" and dp not in seen:
                seen.add(dp)
                for dn in dns:
                    if dn.startswith("%d-" % pid):
                        out.append(os.path.join(dp, dn))
                dns[:] = []
            elif dp.count("/") > 8:
                dns[:] = []
    return out


def spool_size(e, limit):
    """Size of noxd's upload spool (its deleted temp file) if in (1 MiB,
    limit), else None."""
    for link, size in e.noxd.fds():
        if link.endswith("(deleted)") and MIB < size < limit:
            return size
    return None


def tmp_output(path):
    d, b = os.path.split(path)
    for n in os.listdir(d):
        if n.startswith(b + ".noxctl-"):
            return os.path.join(d, n)
    return None


# ---------------------------------------------------------------------------


def setup(e):
    e.noxd.start()
    note("noxd pid %d port %d" % (e.noxd.proc.pid, e.noxd.port))
    rc, out, err = e.ctl("create", "s1")
    check("create s1", rc == 0, err)
    rc, out, err = e.ctl("create", "s2")
    check("create s2", rc == 0, err)
    src = os.path.join(e.tmp, "src")
    os.mkdir(src)
    e.base_sum = rand_file(os.path.join(src, "base.bin"), 3 * MIB, "base")
    with open(os.path.join(src, "note.txt"), "w") as f:
        f.write("kept across restarts\n")
    rc, out, err = e.ctl("upload", "s1", "base.bin", "note.txt", "--dir",
                         src)
    check("upload the baseline files", rc == 0, err)
    rc, out, err = e.ctl("upload", "s2", "note.txt", "--dir", src)
    check("upload to s2", rc == 0, err)
    e.big_sum = rand_file(os.path.join(src, "big.bin"), 48 * MIB, "big")
    e.src = src
    e.before = ws_names(e, "s1")
    check("baseline workspace", e.before == ["base.bin", "note.txt"],
          e.before)


def killed_upload(e):
    """SIGKILL mid-body; no restart: the client fails within --timeout."""
    tmo = 10
    p = e.ctl("upload", "s1", "big.bin", "--dir", e.src, timeout=tmo,
              wait=False)
    t0 = time.monotonic()
    got = wait_for(lambda: spool_size(e, 40 * MIB), 60)
    if not check("upload under way (noxd spool grows past 1 MiB)", got,
                 "spool files: %s" % e.noxd.fds()):
        finish_client(p, 60)
        return
    os.kill(p.pid, signal.SIGSTOP)
    size = spool_size(e, 1 << 62)
    pid = e.noxd.proc.pid
    e.noxd.kill()
    os.kill(p.pid, signal.SIGCONT)
    note("noxd %d killed with %s bytes of the body spooled" % (pid, size))
    rc, out, err, dt = finish_client(p, tmo + 30)
    total = time.monotonic() - t0
    msg = err.decode(errors="replace").strip()
    check("killed upload: exit 69 or 70 (got %s: %s)" % (rc, msg[:120]),
          rc in (69, 70), msg)
    check("killed upload: ended within --timeout %d s + 5 (%.1f s)" %
          (tmo, total), total < tmo + 5)
    check("killed upload: a message on stderr", len(msg) > 0)
    after = ws_names(e, "s1")
    check("killed upload: workspace lists what it did before", after ==
          e.before, "before %s after %s" % (e.before, after))


def restart_serves(e):
    old = e.noxd.port
    e.noxd.kill()
    e.noxd.start()
    check("restart on the same port", e.noxd.port == old,
          "%d vs %d" % (e.noxd.port, old))
    rc, out, err = e.ctl("health")
    check("restarted: health", rc == 0, (rc, out, err))
    r = subprocess.run([NOXCTL, "--url", e.noxd.url(), "health"],
                       capture_output=True, timeout=30)
    rc, out, err = r.returncode, r.stdout, r.stderr
    check("restarted: health prints OK", rc == 0 and out.strip() == b"OK",
          (rc, out, err))
    rc, out, err = e.ctl("ls", "-q")
    ids = sorted(out.decode().split())
    check("restarted: lists s1 and s2 (ls)", rc == 0 and ids == ["s1", "s2"],
          (rc, ids, err))
    rc, out, err = e.ctl("info", "s1")
    check("restarted: info s1", rc == 0, err)
    rc, out, err = e.ctl("exec", "s2", "--", "cat", "note.txt")
    check("restarted: exec in s2", rc == 0 and
          out == b"kept across restarts\n", (rc, out, err))
    check("restarted: checksum of base.bin in the sandbox",
          sandbox_sha(e, "s1", "base.bin") == e.base_sum)
    dl = os.path.join(e.tmp, "dl1")
    rc, out, err = e.ctl("download", "s1", "--src", "/workspace/base.bin",
                         "--extract", dl)
    check("restarted: download base.bin", rc == 0, err)
    check("restarted: downloaded base.bin checksum",
          rc == 0 and sha(os.path.join(dl, "base.bin")) == e.base_sum)


def retried_upload(e):
    rc, out, err = e.ctl("upload", "s1", "big.bin", "--dir", e.src,
                         timeout=120)
    check("retried upload after the restart succeeds", rc == 0, err)
    check("retried upload: checksum in the sandbox",
          sandbox_sha(e, "s1", "big.bin") == e.big_sum)
    check("retried upload: checksum on the backend disk",
          sha(os.path.join(e.noxd.ws("s1"), "big.bin")) == e.big_sum)
    leftovers = [n for n in ws_names(e, "s1") if n.startswith(".nox")]
    check("no temp files in the workspace", not leftovers, leftovers)


def killed_download(e):
    tmo = 10
    out = os.path.join(e.tmp, "dl.tgz")
    p = e.ctl("download", "s1", "--src", "/workspace/big.bin", "-o", out,
              timeout=tmo, wait=False)
    t0 = time.monotonic()

    def under_way():
        t = tmp_output(out)
        try:
            return t and os.path.getsize(t) > MIB
        except OSError:
            return False
    got = wait_for(under_way, 60, 0.001)
    if not check("download under way (temp output past 1 MiB)", got):
        finish_client(p, 60)
        return
    os.kill(p.pid, signal.SIGSTOP)
    part = os.path.getsize(tmp_output(out))
    pid = e.noxd.proc.pid
    e.noxd.kill()
    os.kill(p.pid, signal.SIGCONT)
    note("noxd %d killed with %d bytes downloaded" % (pid, part))
    rc, o, err, dt = finish_client(p, tmo + 30)
    total = time.monotonic() - t0
    msg = err.decode(errors="replace").strip()
    check("killed download: exit 69 or 70 (got %s: %s)" % (rc, msg[:120]),
          rc in (69, 70), msg)
    check("killed download: ended within --timeout %d s + 5 (%.1f s)" %
          (tmo, total), total < tmo + 5)
    check("killed download: no -o file", not os.path.exists(out))
    check("killed download: no temp output left", tmp_output(out) is None,
          tmp_output(out))


def killed_exec(e):
    marker = os.path.join(e.noxd.ws("s1"), "exec-started")
    argv = ["sleep", "41.4142"]
    p = e.ctl("exec", "s1", "--timeout", "60", "--", "sh", "-c",
              'echo run >> exec-started; exec "$@"', "sh", *argv,
              timeout=10, wait=False)
    t0 = time.monotonic()
    got = wait_for(lambda: os.path.exists(marker) and cmd_procs(argv), 30)
    if not check("exec running (marker written, sleep seen)", got):
        finish_client(p, 100)
        return
    pid = e.noxd.proc.pid
    e.noxd.kill()
    t1 = time.monotonic()
    rc, o, err, dt = finish_client(p, 100)
    msg = err.decode(errors="replace").strip()
    check("killed exec: exit 69 or 70, not the command's (got %s: %s)" %
          (rc, msg[:120]), rc in (69, 70), msg)
    check("killed exec: client ended within 5 s of the kill (%.1f s)" %
          (time.monotonic() - t1), time.monotonic() - t1 < 5)
    left = wait_for(lambda: not cmd_procs(argv), 10, 0.05)
    procs = cmd_procs(argv)
    check("killed exec: the command died with noxd", left and not procs,
          procs)
    for q in procs:  # exact argv match only: ours
        os.kill(q, signal.SIGKILL)
    cg = leftover_cgroups(pid)
    if cg:
        note("per-command cgroups of the killed noxd: %s" % cg)
    # restart, and the exec must not have been replayed
    e.noxd.start()
    time.sleep(1)
    with open(marker) as f:
        runs = f.read()
    check("killed exec: the command ran once, not replayed", runs == "run\n",
          repr(runs))
    rc, o, err = e.ctl("exec", "s1", "--", "echo", "after")
    check("exec after restart", rc == 0 and o == b"after\n", (rc, o, err))
    # the first exec of the new noxd sweeps cgroups whose pid is dead
    cg = leftover_cgroups(pid)
    check("killed exec: its per-command cgroups swept by the new noxd",
          not cg, cg)
    os.unlink(marker)
    for c in cg:  # empty cgroup directories the killed noxd left
        try:
            os.rmdir(c)
        except OSError as ex:
            note("cannot remove %s: %s" % (c, ex))


def replay_upload(e):
    """Kill and restart while the client is stopped mid-body: retried."""
    src = e.src
    e.big2_sum = rand_file(os.path.join(src, "big2.bin"), 48 * MIB, "big2")
    p = e.ctl("upload", "s1", "big2.bin", "--dir", src, timeout=60,
              wait=False)
    got = wait_for(lambda: spool_size(e, 40 * MIB), 60)
    if not check("replay: upload under way", got):
        finish_client(p, 100)
        return
    os.kill(p.pid, signal.SIGSTOP)
    e.noxd.kill()
    e.noxd.start()
    os.kill(p.pid, signal.SIGCONT)
    rc, o, err, dt = finish_client(p, 100)
    check("replay: upload across a restart succeeds (retry)", rc == 0,
          (rc, err))
    check("replay: checksum in the sandbox",
          sandbox_sha(e, "s1", "big2.bin") == e.big2_sum)


def replay_download(e):
    out = os.path.join(e.tmp, "dl2.tgz")
    p = e.ctl("download", "s1", "--src", "/workspace/big2.bin", "-o", out,
              timeout=60, wait=False)

    def under_way():
        t = tmp_output(out)
        try:
            return t and os.path.getsize(t) > MIB
        except OSError:
            return False
    if not check("replay: download under way", wait_for(under_way, 60,
                                                         0.001)):
        finish_client(p, 100)
        return
    os.kill(p.pid, signal.SIGSTOP)
    e.noxd.kill()
    e.noxd.start()
    os.kill(p.pid, signal.SIGCONT)
    rc, o, err, dt = finish_client(p, 100)
    check("replay: download across a restart succeeds (retry)", rc == 0,
          (rc, err))
    if rc == 0:
        x = os.path.join(e.tmp, "x2")
        os.mkdir(x)
        r = subprocess.run(["tar", "-xzf", out, "-C", x], timeout=60,
                           capture_output=True)
        check("replay: downloaded tar is whole", r.returncode == 0, r.stderr)
        check("replay: downloaded checksum",
              r.returncode == 0 and
              sha(os.path.join(x, "big2.bin")) == e.big2_sum)


def killed_extract(e):
    """Kill after the body arrived, while noxd installs the entries."""
    src = os.path.join(e.tmp, "many")
    os.mkdir(src)
    sums = {}
    for i in range(1500):
        p = os.path.join(src, "f%04d" % i)
        with open(p, "wb") as f:
            f.write(os.urandom(64 * 1024))
        sums["f%04d" % i] = sha(p)
    dest = os.path.join(e.noxd.ws("s1"), "many")
    p = e.ctl("upload", "s1", ".", "--dir", src, "--dest",
              "/workspace/many", timeout=30, wait=False)
    got = wait_for(lambda: os.path.isdir(dest) and len(os.listdir(dest)) > 3,
                   60, 0.001)
    e.noxd.kill()
    rc, o, err, dt = finish_client(p, 60)
    if not check("extract: kill landed during extraction", got):
        return
    names = os.listdir(dest)
    temps = [n for n in names if n.startswith(".nox-tar.")]
    files = [n for n in names if not n.startswith(".nox-tar.")]
    bad = [n for n in files if n not in sums or
           sha(os.path.join(dest, n)) != sums[n]]
    note("kill during extraction left %d of 1500 files and %d temp "
         "file(s) %s; client exit %s" % (len(files), len(temps), temps, rc))
    check("extract: every visible file is complete", not bad, bad[:10])
    check("extract: no temp file left", len(temps) == 0, temps)
    check("extract: client reports the failure", rc in (69, 70), (rc, err))
    e.noxd.start()
    rc, o, err = e.ctl("upload", "s1", ".", "--dir", src, "--dest",
                       "/workspace/many", timeout=120)
    check("extract: upload again after restart", rc == 0, err)
    names = os.listdir(dest)
    bad = [n for n in sums if sha(os.path.join(dest, n)) != sums[n]]
    check("extract: all 1500 files whole after the retry", not bad, bad[:5])
    stale = [n for n in names if n.startswith(".nox-tar.")]
    check("extract: no temp name left after the retried upload",
          not stale, stale)
    e.stale = stale


def main():
    signal.signal(signal.SIGALRM, lambda *a: sys.exit("timeout: 400 s"))
    signal.alarm(400)
    for p in (NOXD, NOXCTL):
        if not os.access(p, os.X_OK):
            check("built: " + p, False, "NOX_BUILD_ROOT=%r" % BUILD)
            print("%d passed, %d failed" % (PASS, FAIL))
            return 1
    if not shutil.which("bwrap"):
        skip("bubblewrap (bwrap) not installed")
    e = Env()
    try:
        setup(e)
        for case in (killed_upload, restart_serves, retried_upload,
                     killed_download, killed_exec, replay_upload,
                     replay_download, killed_extract):
            note("--- " + case.__name__)
            if case is not restart_serves and e.noxd.proc.poll() is not None:
                e.noxd.start()
            try:
                case(e)
            except Exception:
                check(case.__name__ + " raised", False,
                      traceback.format_exc())
        rc = e.noxd.stop()
        check("noxd exits 0 on SIGTERM at the end", rc == 0,
              "rc %s: %s" % (rc, e.noxd.logtext()))
        errs = []
        for log in e.noxd.logs:
            with open(log, "rb") as f:
                for line in f.read().decode("utf-8", "replace").splitlines():
                    if "AddressSanitizer" in line or "runtime error" in line:
                        errs.append(line)
        check("no sanitizer reports in the noxd logs", not errs, errs[:10])
    finally:
        e.cleanup()
    print("%d passed, %d failed" % (PASS, FAIL))
    return 1 if FAIL else 0


if __name__ == "__main__":
    sys.exit(main())
