#!/usr/bin/env python3
"""
test_lifecycle.py - what noxd does over time and at its edges: TTL expiry
reaping, SIGTERM/SIGINT shutdown (exit 0, pid and port files removed), the
--daemon mode, exact metrics counters, and the access log (one line per
request: METHOD PATH STATUS BYTES_IN BYTES_OUT DURATION_MS).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from noxdtest import NOXD, Noxd, check, eq, make_tgz, need_bwrap, run  # noqa


def test_reaper():
    d = Noxd("--reap-interval", "1")
    eq(d.create("short", ttlSeconds=1).status, 200, "create short")
    eq(d.create("long", ttlSeconds=600).status, 200, "create long")
    d.exec("short", ["sh", "-c", "echo x > f"])
    check(os.path.isdir(d.sandbox_dir("short")), "dir exists")
    deadline = time.time() + 8
    while time.time() < deadline and os.path.exists(d.sandbox_dir("short")):
        time.sleep(0.2)
    check(not os.path.exists(d.sandbox_dir("short")),
          "expired sandbox directory still there")
    eq(d.exec("short", ["true"]).status, 404, "expired sandbox is gone")
    check(os.path.isdir(d.sandbox_dir("long")), "live sandbox reaped")
    eq(d.exec("long", ["true"]).status, 200, "live sandbox works")
    check(re.search(r"reaper: deleted expired sandbox short", d.logtext()),
          "reaping logged")
    # touched in time: kept
    d.create("kept", ttlSeconds=3)
    for _ in range(6):
        time.sleep(1)
        eq(d.req("POST", "/v1/sandboxes/kept/touch").status, 200, "touch")
    check(os.path.isdir(d.sandbox_dir("kept")), "touched sandbox reaped")


def test_sigterm():
    for sig in (signal.SIGTERM, signal.SIGINT):
        d = Noxd()
        check(os.path.exists(d.pid_file) and os.path.exists(d.port_file),
              "pid and port files")
        eq(int(open(d.pid_file).read()), d.proc.pid, "pid file content")
        d.create("s")
        d.signal(sig)
        eq(d.wait(15), 0, "exit status after %s" % sig)
        check(not os.path.exists(d.pid_file), "pid file removed")
        check(not os.path.exists(d.port_file), "port file removed")
        check(os.path.isdir(d.sandbox_dir("s")), "sandboxes survive restart")


def test_sigterm_during_exec():
    d = Noxd()
    d.create("busy")
    import threading
    res = {}

    def run_exec():
        try:
            res["r"] = d.exec("busy", ["sleep", "2"])
        except Exception as e:  # connection closed by the shutdown
            res["e"] = e
    t = threading.Thread(target=run_exec)
    t.start()
    time.sleep(0.5)
    d.signal(signal.SIGTERM)
    eq(d.wait(30), 0, "exit status with a running exec")
    t.join(30)
    check(not os.path.exists(d.pid_file), "pid file removed")


def test_daemon():
    tmp = tempfile.mkdtemp(prefix="noxd-daemon-")
    base = os.path.join(tmp, "base")
    os.mkdir(base)
    pidf = os.path.join(tmp, "pid")
    portf = os.path.join(tmp, "port")
    out = subprocess.run([NOXD, "--daemon", "--listen", "127.0.0.1:0",
                          "--base-dir", base, "--pid-file", pidf,
                          "--port-file", portf], capture_output=True,
                         timeout=20)
    pid = None
    try:
        eq(out.returncode, 0, "daemon parent exit: %r" % out.stderr)
        port = int(open(portf).read())
        eq(out.stdout.decode().strip(),
           "noxd listening on http://127.0.0.1:%d" % port, "daemon line")
        pid = int(open(pidf).read())
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port,
                                    timeout=10) as r:
            eq(r.read(), b"OK", "daemon answers")
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 15
        while time.time() < deadline and os.path.exists(pidf):
            time.sleep(0.1)
        check(not os.path.exists(pidf), "daemon removed its pid file")
        pid = None
    finally:
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["rm", "-rf", tmp])


def test_metrics_exact():
    d = Noxd()
    m0 = d.metrics()
    eq(m0[("noxd_requests_total", "exec")], 0, "exec starts at 0")
    d.create("m")
    for _ in range(3):
        eq(d.exec("m", ["true"]).status, 200, "exec")
    eq(d.req("POST", "/v1/sandboxes/m/exec", {"cmd": []}).status, 400, "bad")
    tgz = make_tgz([("f", os.urandom(5000))])
    eq(d.upload("m", tgz).status, 200, "upload")
    dl = d.download("m")
    eq(d.req("GET", "/nope").status, 404, "other")
    m = d.metrics()
    eq(m[("noxd_requests_total", "exec")], 4, "exec requests")
    eq(m[("noxd_request_errors_total", "exec")], 1, "exec errors")
    eq(m[("noxd_requests_total", "create")], 1, "create requests")
    eq(m[("noxd_request_errors_total", "create")], 0, "create errors")
    eq(m[("noxd_bytes_in_total", "upload")], len(tgz), "upload bytes in")
    eq(m[("noxd_bytes_out_total", "download")], len(dl.body), "download out")
    eq(m[("noxd_requests_total", "other")], 1, "other")
    eq(m[("noxd_request_errors_total", "other")], 1, "other errors")
    eq(m[("noxd_requests_total", "metrics")], 2, "metrics counts itself")
    labels = {k[1] for k in m}
    eq(labels, set("healthz create touch exec upload download delete "
                   "extensions sandboxes info fs_stat fs_list fs_tree fs_read "
                   "fs_write fs_op fs_statfs fs_files fs_ops metrics other".split()), "labels")
    r = d.req("GET", "/metrics")
    check(r.headers["content-type"].startswith("text/plain"), "metrics type")


def test_access_log():
    d = Noxd()
    d.create("l")
    body = {"cmd": ["echo", "hi"]}
    d.exec("l", ["echo", "hi"])
    d.req("GET", "/nope")
    d.req("DELETE", "/v1/sandboxes/l")
    # A line is written when its request completes, after the reply has
    # gone out: wait for them, and do not rely on their order.
    deadline = time.time() + 5
    while True:
        lines = [ln for ln in d.logtext().splitlines()
                 if re.match(r"^[A-Z]+ /\S* \d{3} \d+ \d+ \d+$", ln)]
        if len(lines) >= 4 or time.time() > deadline:
            break
        time.sleep(0.05)
    want = [("PUT", "/v1/sandboxes/l", "200"),
            ("POST", "/v1/sandboxes/l/exec", "200"),
            ("GET", "/nope", "404"),
            ("DELETE", "/v1/sandboxes/l", "204")]
    got = [tuple(ln.split()[:3]) for ln in lines]
    eq(sorted(got), sorted(want), "access log lines")
    exec_line = [ln for ln in lines if "/exec" in ln][0].split()
    eq(int(exec_line[3]), len(__import__("json").dumps(body)), "bytes in")
    check(int(exec_line[4]) > 0, "bytes out")


if __name__ == "__main__":
    need_bwrap()
    run([test_reaper, test_sigterm, test_sigterm_during_exec, test_daemon,
         test_metrics_exact, test_access_log])
