#!/usr/bin/env python3
"""
test_errors.py - noxd against hostile and malformed requests.

Tried: unknown sandbox on every endpoint (404, errno ENOENT); malformed JSON,
trailing garbage, wrong types, empty cmd, unknown id shapes (".", "..", "-x",
".hidden", spaces, "%00", "%2F", 129 bytes, non-ASCII) -> 400 or 404 by
route, never a crash, and every single-segment invalid id (an encoded slash
"%2F" or backslash "%5C" included) 400 on every /v1/sandboxes/{id}
endpoint; workdir/dest/src outside /workspace (absolute, "..");
hostile tar archives ("../x", "/abs", a symlink then a file through it, a
hard link to /etc/passwd, a device node, garbage bytes) -> 400 and nothing
written outside the workspace; unknown paths 404; wrong methods 405 with
Allow; JSON bodies over 1 MiB -> 413; raw protocol garbage on the socket.
"""
import errno
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from noxdtest import Noxd, check, eq, make_tgz, need_bwrap, run  # noqa


def test_unknown_sandbox():
    d = Noxd()
    tgz = make_tgz([("a", "a")])
    for m, p, body in (
            ("POST", "/v1/sandboxes/ghost/exec", {"cmd": ["true"]}),
            ("POST", "/v1/sandboxes/ghost/touch", None),
            ("POST", "/v1/sandboxes/ghost/files/upload", tgz),
            ("GET", "/v1/sandboxes/ghost/files/download", None),
            ("DELETE", "/v1/sandboxes/ghost", None),
            ("GET", "/v1/sandboxes/ghost", None),
            ("GET", "/v1/sandboxes/ghost/fs/stat?path=", None),
            ("GET", "/v1/sandboxes/ghost/fs/list?path=", None),
            ("POST", "/v1/sandboxes/ghost/fs/op", {"op": "mkdir", "path": "a"})):
        r = d.req(m, p, body)
        eq(r.status, 404, "%s %s" % (m, p))
        j = r.json()
        eq(j.get("errno"), "ENOENT", "errno for %s" % p)
        check(isinstance(j.get("error"), str) and j["error"], "error text")
    check(not os.path.exists(d.sandbox_dir("ghost")), "nothing created")


def test_malformed_exec():
    d = Noxd()
    d.create("m")
    for body in (b"", b"{", b"[]", b"null", b'"cmd"', b'{"cmd": "ls"}',
                 b'{"cmd": []}', b'{"cmd": [""]}', b'{"cmd": [1, 2]}',
                 b'{"cmd": ["ls"]} trailing', b'{"cmd": ["ls"], "env": []}',
                 b'{"cmd": ["ls"], "env": {"A=B": "x"}}',
                 b'{"cmd": ["ls"], "timeoutSeconds": "5"}',
                 b'{"cmd": ["ls"], "timeoutSeconds": -1}',
                 b'{"cmd": ["ls"], "workdir": 7}',
                 b'\xff\xfe{"cmd": ["ls"]}'):
        r = d.req("POST", "/v1/sandboxes/m/exec", body,
                  {"Content-Type": "application/json"})
        eq(r.status, 400, "exec body %r" % body)
        eq(r.json()["errno"], "EINVAL", "errno for %r" % body)
    r = d.req("POST", "/v1/sandboxes/m/exec", {"cmd": []})
    check("empty" in r.json()["error"], "empty command message: %r" % r)
    for wd in ("/etc", "/workspace/../etc", "../x", "/", "/workspacefoo"):
        r = d.exec("m", ["pwd"], workdir=wd)
        eq(r.status, 400, "workdir %r" % wd)
    for body in (b"{", b'{"ttlSeconds": "x"}', b'{"ttlSeconds": -5}', b"[1]"):
        eq(d.req("PUT", "/v1/sandboxes/m", body).status, 400,
           "create body %r" % body)
    # too large JSON body: 413 (cap 1 MiB)
    big = b'{"cmd": ["echo", "' + b"a" * (1 << 20) + b'"]}'
    r = d.req("POST", "/v1/sandboxes/m/exec", big)
    eq(r.status, 413, "JSON over 1 MiB")
    eq(r.json()["errno"], "EFBIG", "413 errno")
    # the server still works
    eq(d.exec("m", ["true"]).status, 200, "alive")


def test_bad_ids():
    d = Noxd()
    for raw in (".", "..", "-x", ".hidden", "a%20b", "a%00b", "x" * 129,
                "%C3%A9t%C3%A9", "a%3Bb", "a*b"):
        r = d.req("PUT", "/v1/sandboxes/" + raw)
        check(r.status in (400, 404), "id %r: %r" % (raw, r))
        if r.status == 400:
            eq(r.json()["errno"], "EINVAL", "errno for id %r" % raw)
        r = d.req("POST", "/v1/sandboxes/%s/exec" % raw, {"cmd": ["true"]})
        check(r.status in (400, 404), "exec id %r: %r" % (raw, r))
    # these are single segments, so the route matches and the id is refused
    for raw in ("-x", ".hidden", "a%20b", "x" * 129, "a*b"):
        eq(d.req("PUT", "/v1/sandboxes/" + raw).status, 400, "400 for %r" % raw)
    # an encoded slash (or backslash) would decode into another path: the
    # raw id is refused as invalid (400, as the reference API says), on
    # every /v1/sandboxes/{id} endpoint, like any other invalid id
    d.create("ok")
    tgz = make_tgz([("a", "a")])
    for raw in ("..%2F..%2Fetc", "a%2Fb", "a%2fb", "..%5C..%5Cetc", "ok%2F",
                "-x", ".hidden", "a%20b", "x" * 129, "a*b", "%C3%A9t%C3%A9"):
        for m, suffix, body in (
                ("PUT", "", None), ("GET", "", None), ("DELETE", "", None),
                ("POST", "/touch", None), ("POST", "/exec", {"cmd": ["true"]}),
                ("POST", "/files/upload", tgz),
                ("GET", "/files/download", None),
                ("GET", "/fs/stat?path=", None), ("GET", "/fs/list?path=", None),
                ("GET", "/fs/tree?path=", None), ("GET", "/fs/file?path=a", None),
                ("PUT", "/fs/file?path=a", b"x"),
                ("POST", "/fs/op", {"op": "mkdir", "path": "a"}),
                ("GET", "/fs/statfs", None)):
            p = "/v1/sandboxes/%s%s" % (raw, suffix)
            r = d.req(m, p, body)
            eq(r.status, 400, "%s %s" % (m, p))
            eq(r.json()["errno"], "EINVAL", "errno for %s %s" % (m, p))
    eq(os.listdir(d.base), [os.path.basename(d.sandbox_dir("ok"))],
       "nothing created for bad ids")


def test_hostile_paths():
    d = Noxd()
    d.create("h")
    tgz = make_tgz([("a.txt", "a")])
    for dest in ("/etc", "/workspace/../etc", "../x", "/tmp"):
        r = d.upload("h", tgz, dest=dest)
        eq(r.status, 400, "dest %r" % dest)
    for src in ("/etc", "/workspace/../etc", "../x", "/etc/passwd"):
        r = d.download("h", src=src)
        eq(r.status, 400, "src %r" % src)
        check(b"root:" not in r.body, "leak")
    # an encoded NUL must not cut a value short ("a%00/../x" -> "a")
    d.exec("h", ["touch", "a"])
    for p in ("/v1/sandboxes/h/files/download?src=a%00b",
              "/v1/sandboxes/h/fs/stat?path=a%00b",
              "/v1/sandboxes/h%00x/files/download"):
        r = d.req("GET", p)
        eq(r.status, 400, "NUL in %s" % p)


def test_hostile_tar():
    d = Noxd()
    d.create("t")
    outside = os.path.join(d.tmp, "outside")
    os.mkdir(outside)
    ws = os.path.join(d.sandbox_dir("t"), "workspace")
    os.symlink(outside, os.path.join(ws, "out-link"))
    cases = {
        "dotdot": make_tgz([("../../../../outside/x", "evil")]),
        "dotdot-mid": make_tgz([("a/../../outside/x", "evil")]),
        "absolute": make_tgz([(outside + "/abs", "evil")]),
        "through-symlink": make_tgz([("out-link/x", "evil")]),
        "symlink-then-file": make_tgz([("l", outside, 0o777, "symlink"),
                                       ("l/x", "evil")]),
        "hardlink-out": make_tgz([("hl", "/etc/passwd", 0o644, "hardlink")]),
        "device": make_tgz([("dev", None, 0o644, "chr")]),
        "garbage": b"\x1f\x8b" + os.urandom(200),
        "not-gzip": b"this is not an archive at all",
    }
    for name, data in cases.items():
        r = d.upload("t", data)
        eq(r.status, 400, "hostile tar %s: %r" % (name, r))
        check("error" in r.json(), "error body for %s" % name)
    eq(os.listdir(outside), [], "something escaped the workspace")
    check(not os.path.exists(os.path.join(ws, "dev")), "device node created")
    if os.path.exists(os.path.join(ws, "hl")):
        check(os.stat(os.path.join(ws, "hl")).st_ino !=
              os.stat("/etc/passwd").st_ino, "hard link to /etc/passwd")
    eq(d.exec("t", ["true"]).status, 200, "alive")


def test_routes_and_methods():
    d = Noxd()
    d.create("r")
    for p in ("/", "/v1", "/v2/sandboxes/r", "/v1/sandboxes/r/", "/healthz/x",
              "/v1/sandboxes/r/exec/x", "/v1/sandboxes/r/files",
              "/v1/sandboxes/r/fs/nope", "/v1/sandboxes/r/nope", "/metricsx"):
        eq(d.req("GET", p).status, 404, "GET %s" % p)
    for m, p, allow in (("GET", "/v1/sandboxes/r/exec", "POST"),
                        ("POST", "/healthz", "GET"),
                        ("DELETE", "/v1/sandboxes/r/touch", "POST"),
                        ("POST", "/v1/sandboxes/r", None),
                        ("PATCH", "/v1/sandboxes/r/fs/file", None),
                        ("PUT", "/v1/sandboxes/r/files/download", "GET")):
        r = d.req(m, p)
        eq(r.status, 405, "%s %s" % (m, p))
        check("allow" in r.headers, "Allow header")
        if allow:
            eq(r.headers["allow"], allow, "Allow for %s %s" % (m, p))
    r = d.req("POST", "/v1/sandboxes/r")
    eq(set(r.headers["allow"].split(", ")), {"PUT", "DELETE", "GET"}, "Allow")
    # HEAD acts as GET without a body
    r = d.req("HEAD", "/healthz")
    eq((r.status, r.body), (200, b""), "HEAD healthz")


def test_garbage_on_socket():
    d = Noxd()
    for junk in (b"\x00\x01\x02garbage\r\n\r\n", b"GET\r\n\r\n",
                 b"GET / HTTP/9.9\r\n\r\n", b"POST /v1/sandboxes/x/exec "
                 b"HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"POST /v1/sandboxes/x/exec HTTP/1.1\r\nHost: a\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
                 b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        try:
            # noxd may answer and close before the junk is all sent (the
            # 100,000-byte request line: 414 at once), so the client's
            # send or shutdown can find the connection gone: that is a
            # refusal too; what is checked is that noxd lives on
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                s.recv(4096)
            except (ConnectionResetError, BrokenPipeError, socket.timeout):
                pass
            except OSError as e:
                if e.errno != errno.ENOTCONN:
                    raise
        finally:
            s.close()
    time.sleep(0.2)
    check(d.proc.poll() is None, "noxd died on garbage")
    eq(d.req("GET", "/healthz").status, 200, "alive after garbage")


if __name__ == "__main__":
    need_bwrap()
    run([test_unknown_sandbox, test_malformed_exec, test_bad_ids,
         test_hostile_paths, test_hostile_tar, test_routes_and_methods,
         test_garbage_on_socket])
