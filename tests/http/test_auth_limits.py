#!/usr/bin/env python3
"""
test_auth_limits.py - bearer token and body limits.

Tried: no Authorization header, a wrong token, a token that is a prefix or
an extension of the right one, another scheme (Basic), "Bearer" alone, the
token in $NOXD_TOKEN; /healthz stays open, /metrics does not.  Bodies over
--max-body with Content-Length (with and without "Expect: 100-continue")
and chunked (no length known in advance) -> 413, and nothing extracted.
"""
import http.client
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from noxdtest import Noxd, check, eq, make_tgz, need_bwrap, run  # noqa

TOKEN = "s3cr3t-token-0123456789"


def test_token():
    d = Noxd(token=TOKEN)
    eq(d.req("GET", "/healthz", token=False).status, 200, "healthz open")
    for hdr in (None, "Bearer wrong", "Bearer " + TOKEN[:-1],
                "Bearer " + TOKEN + "x", "Basic " + TOKEN, "Bearer",
                "Bearer ", TOKEN):
        h = {"Authorization": hdr} if hdr is not None else {}
        for m, p in (("PUT", "/v1/sandboxes/a"), ("GET", "/metrics"),
                     ("GET", "/v1/extensions"), ("GET", "/nope"),
                     ("POST", "/v1/sandboxes/a/exec")):
            r = d.req(m, p, headers=h, token=False)
            eq(r.status, 401, "%s %s with %r" % (m, p, hdr))
            check("error" in r.json(), "401 JSON body")
            eq(r.headers.get("www-authenticate"), "Bearer", "WWW-Authenticate")
    check(not os.path.exists(d.sandbox_dir("a")), "created without token")
    eq(d.create("a").status, 200, "right token")
    eq(d.exec("a", ["true"]).status, 200, "right token exec")
    r = d.req("GET", "/metrics", headers={"Authorization": "bearer " + TOKEN},
              token=False)
    eq(r.status, 200, "scheme is case-insensitive")


def test_token_env():
    d = Noxd(env={"NOXD_TOKEN": TOKEN})
    eq(d.req("PUT", "/v1/sandboxes/e").status, 401, "env token enforced")
    r = d.req("PUT", "/v1/sandboxes/e",
              headers={"Authorization": "Bearer " + TOKEN})
    eq(r.status, 200, "env token accepted")


def test_max_body():
    d = Noxd("--max-body", "100000")
    d.create("b")
    small = make_tgz([("ok.txt", "ok")])
    eq(d.upload("b", small).status, 200, "small upload")
    big = make_tgz([("big.bin", os.urandom(300000))])
    check(len(big) > 100000, "archive is big")
    r = d.upload("b", big)
    eq(r.status, 413, "over --max-body")
    eq(r.json()["errno"], "EFBIG", "413 errno")
    # With Expect: 100-continue the server refuses before the body.
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=20)
    c.putrequest("POST", "/v1/sandboxes/b/files/upload")
    c.putheader("Content-Length", str(len(big)))
    c.putheader("Expect", "100-continue")
    c.endheaders()
    r = c.getresponse()
    eq(r.status, 413, "413 before 100-continue")
    c.close()
    # Chunked: the length is only known as it arrives.
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=20)
    c.request("POST", "/v1/sandboxes/b/files/upload",
              body=iter([big[i:i + 8192] for i in range(0, len(big), 8192)]),
              encode_chunked=True,
              headers={"Transfer-Encoding": "chunked"})
    r = c.getresponse()
    eq(r.status, 413, "chunked over --max-body")
    c.close()
    ws = os.path.join(d.sandbox_dir("b"), "workspace")
    eq(sorted(os.listdir(ws)), ["ok.txt"], "nothing extracted")
    # a huge Content-Length is refused without reading
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"POST /v1/sandboxes/b/files/upload HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: 99999999999999\r\n\r\n")
    data = s.recv(4096)
    s.close()
    check(data.startswith(b"HTTP/1.1 413"), "huge length: %r" % data[:60])
    eq(d.exec("b", ["true"]).status, 200, "alive")


if __name__ == "__main__":
    need_bwrap()
    run([test_token, test_token_env, test_max_body])
