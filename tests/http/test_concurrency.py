#!/usr/bin/env python3
"""
test_concurrency.py - noxd serving many clients at once: 8 threads each run
create, exec, upload, download and delete on their own sandbox (3 rounds);
a long-running exec must not hold up other requests (one thread per
connection); keep-alive connections carry several requests; --conn-timeout closes idle
connections but never cuts a request whose handler runs long.
"""
import http.client
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from noxdtest import Noxd, check, eq, make_tgz, need_bwrap, read_tgz, run  # noqa


def test_parallel_sessions():
    d = Noxd()
    errors = []

    def worker(n):
        try:
            for rnd in range(3):
                sid = "c%d-%d" % (n, rnd)
                eq(d.create(sid, ttlSeconds=120).status, 200, "create")
                j = d.exec(sid, ["sh", "-c", "echo $0-%d" % rnd, sid]).json()
                eq(j["stdout"], "%s-%d\n" % (sid, rnd), "exec output")
                blob = os.urandom(100000 + n)
                eq(d.upload(sid, make_tgz([("d/b.bin", blob)])).status, 200,
                   "upload")
                t = read_tgz(d.download(sid, src="/workspace/d").body)
                eq(t["b.bin"][1], blob, "round trip for %s" % sid)
                eq(d.req("DELETE", "/v1/sandboxes/" + sid).status, 204,
                   "delete")
                eq(d.exec(sid, ["true"]).status, 404, "gone")
        except Exception as e:
            errors.append("worker %d: %r" % (n, e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    eq(errors, [], "worker errors")
    eq(os.listdir(d.base), [], "all sandboxes deleted")
    m = d.metrics()
    eq(m[("noxd_requests_total", "create")], 24, "creates counted")
    eq(m[("noxd_requests_total", "exec")], 48, "execs counted")


def test_long_exec_does_not_block():
    d = Noxd()
    d.create("slow")
    d.create("fast")
    done = {}

    def slow():
        done["slow"] = d.exec("slow", ["sleep", "3"], timeoutSeconds=10)
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    t0 = time.time()
    for _ in range(5):
        eq(d.req("GET", "/healthz").status, 200, "healthz during exec")
        eq(d.exec("fast", ["true"]).status, 200, "exec during exec")
    took = time.time() - t0
    check(took < 2, "requests waited for the long exec (%.1fs)" % took)
    t.join(20)
    eq(done["slow"].json()["exitCode"], 0, "slow exec result")


def test_conn_timeout():
    d = Noxd("--conn-timeout", "1")
    d.create("ct")
    # a command running longer than the idle timeout still gets its answer
    r = d.exec("ct", ["sleep", "2.5"], timeoutSeconds=10)
    eq((r.status, r.json()["exitCode"]), (200, 0), "long exec, short timeout")
    # an idle connection is closed by the server
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    t0 = time.time()
    data = s.recv(100)
    s.close()
    eq(data, b"", "idle connection closed")
    check(time.time() - t0 < 5, "closed after %.1fs" % (time.time() - t0))


def test_keepalive():
    d = Noxd()
    d.create("k")
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=20)
    try:
        for i in range(20):
            c.request("POST", "/v1/sandboxes/k/exec",
                      body=b'{"cmd":["echo","%d"]}' % i,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            body = __import__("json").loads(r.read())
            eq(r.status, 200, "keep-alive request %d" % i)
            eq(body["stdout"], "%d\n" % i, "keep-alive output %d" % i)
            check(not r.will_close, "server closed a keep-alive connection")
    finally:
        c.close()


if __name__ == "__main__":
    need_bwrap()
    run([test_parallel_sessions, test_long_exec_does_not_block, test_conn_timeout,
         test_keepalive])
