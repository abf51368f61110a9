"""
noxdtest.py - harness for the noxd HTTP tests (Python 3 standard library only).

Each test starts its own noxd on 127.0.0.1 port 0 with its own temporary base
directory, learns the port from --port-file, checks the one stdout line
"noxd listening on http://127.0.0.1:PORT", and stops noxd by its PID at the
end (also when a test fails or the harness is interrupted).  The stderr log
of every noxd is kept in its temp dir and printed when a test fails.

Environment: NOX_BUILD_ROOT (set by meson) locates tools/noxd/noxd.  A test
whose prerequisite is missing (bubblewrap) exits 77, or fails when
NOX_NO_SKIP=1.
"""

import atexit
import gzip
import http.client
import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import urllib.parse

BUILD = os.environ.get("NOX_BUILD_ROOT") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
NOXD = os.path.join(BUILD, "tools", "noxd", "noxd")

_live = []


def skip(msg):
    if os.environ.get("NOX_NO_SKIP") == "1":
        print("FAIL (NOX_NO_SKIP=1): " + msg)
        sys.exit(1)
    print("SKIP: " + msg)
    sys.exit(77)


def need_bwrap():
    if not shutil.which("bwrap"):
        skip("bubblewrap (bwrap) not installed")


def _cleanup_all():
    for d in list(_live):
        d.stop()


atexit.register(_cleanup_all)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


class Noxd:
    """One noxd process with its own base dir."""

    def __init__(self, *args, token=None, env=None, expect_fail=False):
        self.tmp = tempfile.mkdtemp(prefix="noxd-test-")
        self.base = os.path.join(self.tmp, "base")
        os.mkdir(self.base)
        self.port_file = os.path.join(self.tmp, "port")
        self.pid_file = os.path.join(self.tmp, "pid")
        self.log_path = os.path.join(self.tmp, "noxd.log")
        self.token = token
        cmd = [NOXD, "--listen", "127.0.0.1:0", "--base-dir", self.base,
               "--port-file", self.port_file, "--pid-file", self.pid_file]
        if token:
            cmd += ["--token", token]
        cmd += list(args)
        penv = dict(os.environ)
        penv.pop("NOXD_TOKEN", None)
        if env:
            penv.update(env)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=self.log, env=penv)
        _live.append(self)
        self.port = None
        if expect_fail:
            return
        self.line = self._read_line(10)
        deadline = time.time() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError("noxd did not start:\n" + self.logtext())
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        expect = "noxd listening on http://127.0.0.1:%d" % self.port
        if self.line != expect:
            raise AssertionError("stdout line %r, want %r" % (self.line, expect))

    def _read_line(self, secs):
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.time() + secs
        while not buf.endswith(b"\n"):
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("no listening line:\n" + self.logtext())
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 1)
                if not chunk:
                    raise AssertionError("noxd exited early:\n" + self.logtext())
                buf += chunk
        return buf.decode().rstrip("\n")

    def logtext(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def req(self, method, path, body=None, headers=None, token=True,
            timeout=60):
        h = {}
        if token and self.token:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        elif isinstance(body, str):
            body = body.encode()
        if headers:
            h.update(headers)
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return Resp(r.status, r.getheaders(), data)
        finally:
            c.close()

    # v1 shortcuts
    def create(self, sid, **kw):
        return self.req("PUT", "/v1/sandboxes/" + sid, kw if kw else None)

    def exec(self, sid, cmd, **kw):
        body = {"cmd": cmd}
        body.update(kw)
        return self.req("POST", "/v1/sandboxes/%s/exec" % sid, body)

    def upload(self, sid, data, dest=None):
        q = "?" + urllib.parse.urlencode({"dest": dest}) if dest else ""
        return self.req("POST", "/v1/sandboxes/%s/files/upload%s" % (sid, q),
                        data, {"Content-Type": "application/x-tar"})

    def download(self, sid, src=None):
        q = "?" + urllib.parse.urlencode({"src": src}) if src else ""
        return self.req("GET", "/v1/sandboxes/%s/files/download%s" % (sid, q))

    def metrics(self):
        r = self.req("GET", "/metrics")
        assert r.status == 200, r
        out = {}
        for line in r.body.decode().splitlines():
            m = re.match(r'^(\w+)\{endpoint="(\w+)"\} (\d+)$', line)
            if m:
                out[(m.group(1), m.group(2))] = int(m.group(3))
        return out

    def sandbox_dir(self, sid):
        return os.path.join(self.base, "noxrunner_sandbox_" + sid)

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait(self, secs=15):
        return self.proc.wait(timeout=secs)

    def stop(self):
        """Stops noxd (SIGTERM, SIGKILL after 20 s; by PID, never by name)
        and removes its files.  Returns a list of problems: a non-zero
        exit, sanitizer reports in the log."""
        problems = []
        if self in _live:
            _live.remove(self)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                problems.append("noxd ignored SIGTERM for 20 s")
                self.proc.kill()
                self.proc.wait(timeout=10)
            if self.proc.returncode not in (0, None):
                problems.append("noxd exited %s on SIGTERM"
                                % self.proc.returncode)
        log = self.logtext()
        for pat in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if pat in log:
                problems.append("sanitizer report in the noxd log")
                break
        if problems:
            print("--- noxd log (%s) ---\n%s" % (self.tmp, log[-8000:]))
        self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return problems


def make_tgz(entries):
    """entries: list of (name, data-or-None for dir, mode, kind) tuples;
    kind is 'file', 'dir', 'symlink' (data = target), 'hardlink', 'fifo',
    'chr'."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for e in entries:
            name, data = e[0], e[1]
            mode = e[2] if len(e) > 2 else 0o644
            kind = e[3] if len(e) > 3 else ("dir" if data is None else "file")
            ti = tarfile.TarInfo(name)
            ti.mode = mode
            ti.mtime = 1700000000
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            elif kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = data
                t.addfile(ti)
            elif kind == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = data
                t.addfile(ti)
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
                t.addfile(ti)
            elif kind == "chr":
                ti.type = tarfile.CHRTYPE
                ti.devmajor, ti.devminor = 1, 3
                t.addfile(ti)
            else:
                if isinstance(data, str):
                    data = data.encode()
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def read_tgz(data):
    """{name: (TarInfo, bytes or None)} of a (gzip) tar."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:
        for m in t.getmembers():
            f = t.extractfile(m) if m.isfile() else None
            out[m.name.rstrip("/")] = (m, f.read() if f else None)
    return out


def eq(got, want, what=""):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def run(tests):
    """Runs the test functions in order; exit status 1 if any failed."""
    failed = 0
    for t in tests:
        start = time.time()
        ok = True
        try:
            t()
        except Exception:
            ok = False
            print("FAIL %s" % t.__name__)
            traceback.print_exc()
            for d in list(_live):
                print("--- noxd log (%s) ---\n%s" % (d.tmp, d.logtext()[-6000:]))
        problems = []
        for d in list(_live):
            problems += d.stop()
        if ok and problems:
            ok = False
            print("FAIL %s: %s" % (t.__name__, "; ".join(problems)))
        if ok:
            print("ok   %-40s %.2fs" % (t.__name__, time.time() - start))
        else:
            failed += 1
    print("%d/%d passed" % (len(tests) - failed, len(tests)))
    sys.exit(1 if failed else 0)
