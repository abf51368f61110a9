#!/usr/bin/env python3
"""tests/hostile/server.py - a loopback NoxRunner server that misbehaves.

Usage: server.py [MODE]   (MODE is accepted for symmetry and ignored: one
process serves every case, chosen per request.)
       server.py --upstream PORT

With --upstream it is instead a relay in front of a real server (noxd on
127.0.0.1:PORT) that can be told to stall, for mounts that must start
against a healthy server and then lose it.  GET /_stall/MODE (answered by
the relay itself) switches every later request, on new and kept-alive
connections alike:
  off      relay faithfully (the start)
  request  read the request, never answer
  body     relay the status line, headers and half the body, then stall
  slow     read the request body at 64 KiB/s, then relay: slow, not stalled
  ext      stall GET /v1/extensions only (after the start checks)
  gate     hold each PUT fs/file (its body read) until GET /_stall/release
  hold     relay the first 2 MiB of a download (fs/file, files/download),
           the rest once GET /_stall/release came (a body of 2 MiB or less,
           a ranged read's, goes as it is)
  cut      relay the first 2 MiB of a download, then close the connection
  holdnorange  as hold, and a GET with a Range header gets 403
  halftar  once: the next answer of POST fs/files or a files/download
           is cut to its first half, sent as if whole (HTTP intact, the
           tar broken), then "off" again

Listens on 127.0.0.1, port 0, and prints the port on stdout.  The
behaviour of a request is chosen by:

  * the sandbox id in the path (/v1/sandboxes/CASE/...): see CASES below;
    "ok" answers every v1 and extension endpoint correctly, so the client's
    encoding can be checked through /_last/CASE;
  * the bearer token, for endpoints without an id: "wrong" gets 401 for
    everything, "v1only" a 404 on /v1/extensions, "extgarbage" a non-JSON
    answer, "extv2" only unknown extension versions, "badlist" a sandbox
    listing holding a hostile id.

Test helpers: GET /_count/KEY (requests seen for a case, or "ext" for
/v1/extensions) and GET /_last/KEY (JSON of the last request of a case).
Standard library only; every response carries Content-Length (or is
chunked) so keep-alive works; the process is killed by PID by the test.
"""
import base64
import io
import json
import socket
import struct
import sys
import tarfile
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
COUNTS = {}
LAST = {}
UPLOADS = {}
CACHE = {}

FILE_DATA = bytes(range(256)) * 4          # served by fs/file, 1024 bytes
T_NS = 1500000000123456789


def stat_obj(name=None, typ="file", **kw):
    o = {"type": typ, "mode": 0o644 if typ != "dir" else 0o755,
         "size": len(FILE_DATA) if typ == "file" else 4096, "nlink": 1,
         "uid": 1000, "gid": 1000, "ino": 42, "mtimeNs": T_NS,
         "atimeNs": -1, "ctimeNs": T_NS}
    if name is not None:
        o["name"] = name
    o.update(kw)
    return o


def targz(entries, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=fmt) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def ti(name, typ=tarfile.REGTYPE, size=0, linkname="", mode=0o644):
    i = tarfile.TarInfo(name)
    i.type = typ
    i.size = size
    i.linkname = linkname
    i.mode = mode
    i.mtime = 1700000000
    return i


def hostile_tar(kind):
    with LOCK:
        if kind in CACHE:
            return CACHE[kind]
    if kind == "tar_dotdot":
        data = targz([(ti("ok.txt", size=2), b"ok"),
                      (ti("../x", size=4), b"evil")])
    elif kind == "tar_abs":
        data = targz([(ti("/tmp/nox-hostile-abs-evil", size=4), b"evil")])
    elif kind == "tar_symlink":
        data = targz([(ti("l", tarfile.SYMTYPE, linkname="../outside"), None),
                      (ti("l/evil", size=4), b"evil")])
    elif kind == "tar_dev":
        i = ti("dev", tarfile.CHRTYPE)
        i.devmajor, i.devminor = 1, 3
        data = targz([(i, None)])
    elif kind == "tar_bomb":
        # one entry claiming 256 MiB of zeros: about 250 KiB compressed
        size = 256 << 20
        hdr = ti("bomb", size=size).tobuf(tarfile.GNU_FORMAT)
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        parts = [z.compress(hdr)]
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            parts.append(z.compress(chunk))
        parts.append(z.compress(bytes(1024)))
        parts.append(z.flush())
        data = b"".join(parts)
    else:
        return None
    with LOCK:
        CACHE[kind] = data
    return data


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostile/1"

    def log_message(self, fmt, *args):
        pass

    # ---- plumbing -------------------------------------------------------
    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = []
            while True:
                line = self.rfile.readline()
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out.append(self.rfile.read(n))
                self.rfile.readline()
            return b"".join(out)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, body=b"", ctype="application/json", headers=()):
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    # paged fs/tree (case tp*): page 1 is "a", "a/x", then page 2 is
    # hostile per case (tpgood: "a-b", "b", the last page)
    TREE_P2 = {
        "tpgood": ({"entries": ["a-b", "b"]}, None),
        "tprepeat": ({"entries": ["a/x", "b"]}, None),
        "tpback": ({"entries": ["a"]}, None),
        "tporder": ({"entries": ["b", "a-b"], "next": "a-b"}, None),
        "tpcursor": ({"entries": ["a-b", "b"], "next": "a-b"}, None),
        "tpempty": ({"entries": [], "next": "a/x"}, None),
        "tptrunc": (None, b'{"entries": [{"type": "file", "path": "b"'),
    }

    def tree_page(self, case, after):
        if case not in self.TREE_P2:
            return self.send(404, {"error": "no case", "errno": "ENOENT"})
        if after is None:
            body = {"entries": ["a", "a/x"], "next": "a/x"}
        elif after == "a/x":
            body, raw = self.TREE_P2[case]
            if raw is not None:
                return self.send(200, raw)
        else:
            return self.send(400, {"error": "bad after", "errno": "EINVAL"})
        out = dict(body)
        out["entries"] = [stat_obj(typ="dir" if p == "a" else "file",
                                   path=p) for p in body["entries"]]
        return self.send(200, out)

    def partial(self, declared, sent):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        self.wfile.write(sent)
        self.wfile.flush()

    def reset(self):
        # SO_LINGER 0: close() sends a RST instead of a FIN
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def huge(self, chunked):
        head = b'{"exitCode": 0, "stderr": "", "stdout": "'
        tail = b'"}'
        total = 100 << 20
        block = b"A" * (1 << 20)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length",
                             str(len(head) + total + len(tail)))
        self.end_headers()
        try:
            parts = [head] + [block] * (total >> 20) + [tail]
            for p in parts:
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
                else:
                    self.wfile.write(p)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        self.close_connection = True

    # ---- dispatch -------------------------------------------------------
    def do_GET(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def dispatch(self):
        try:
            self.route()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def route(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        body = self.read_body()
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        seg = u.path.split("/")
        if token == "wrong":
            return self.send(401, {"error": "bad token"})
        if u.path.startswith("/_count/"):
            with LOCK:
                n = COUNTS.get(seg[2], 0)
            return self.send(200, str(n), "text/plain")
        if u.path.startswith("/_last/"):
            with LOCK:
                last = LAST.get(seg[2], {})
            return self.send(200, last)
        if u.path == "/healthz":
            return self.send(200, "OK", "text/plain")
        if u.path == "/v1/extensions":
            self.count("ext")
            if token == "v1only":
                return self.send(404, {"error": "not found"})
            if token == "extgarbage":
                return self.send(200, "<html>hello</html>", "text/html")
            if token == "extv2":
                return self.send(200, {"extensions": {"nox.fs": 2,
                                                      "nox.sandboxes": 2}})
            return self.send(200, {"extensions": {"nox.fs": 1,
                                                  "nox.sandboxes": 1}})
        if u.path == "/v1/sandboxes":
            ids = ["ok", "two"] + (["../etc"] if token == "badlist" else [])
            return self.send(200, {"sandboxes": [
                {"id": i, "podName": "pod-" + i,
                 "expiresAt": "2030-01-01T00:00:00Z"} for i in ids]})
        if len(seg) < 4 or seg[1] != "v1" or seg[2] != "sandboxes":
            return self.send(404, {"error": "no route " + u.path})
        case = urllib.parse.unquote(seg[3])
        rest = "/".join(seg[4:])
        n = self.count(case)
        with LOCK:
            LAST[case] = {"method": self.command, "path": u.path,
                          "query": {k: v[0] for k, v in q.items()},
                          "rawquery": u.query, "auth": auth,
                          "ctype": self.headers.get("Content-Type", ""),
                          "range": self.headers.get("Range", ""),
                          "body": body.decode("latin-1"),
                          "bodylen": len(body),
                          "peer": self.client_address[1]}
        return self.case(case, rest, q, body, n)

    def count(self, key):
        with LOCK:
            COUNTS[key] = COUNTS.get(key, 0) + 1
            return COUNTS[key]

    # ---- cases ----------------------------------------------------------
    def case(self, case, rest, q, body, n):
        simple = {
            "malformed": '{"exitCode": 0, "stdout": "a" "b", "stderr": ""}',
            "truncated": '{"exitCode": 0, "stdout": "abc',
            "wrongexit": '{"exitCode": "0", "stdout": "", "stderr": ""}',
            "wrongstdout": '{"exitCode": 0, "stdout": 5, "stderr": ""}',
            "missing": '{"exitCode": 0}',
            "notobject": '[1, 2, 3]',
            "trailing": '{"exitCode": 0, "stdout": "", "stderr": ""} xyz',
            "deep": "[" * 10000,
            "nul": '{"exitCode": 0, "stdout": "", "stderr": ""}\0',
            "bigpod": json.dumps({"podName": "p" * 1000,
                                  "expiresAt": "2030-01-01T00:00:00Z"}),
        }
        if case in simple:
            return self.send(200, simple[case])
        if case in ("huge", "hugechunked"):
            return self.huge(case == "hugechunked")
        if case.startswith("tar_"):
            data = hostile_tar(case)
            if data is None:
                return self.send(404, {"error": "no such tar"})
            return self.send(200, data, "application/x-tar")
        if case == "stall":
            self.partial(1000, b'{"exitCode"')
            time.sleep(20)
            self.close_connection = True
            return None
        if case == "reset":
            self.partial(1000, b'{"exitCode": 0, "std')
            return self.reset()
        if case == "trickle":
            # 8 KiB at 4 KiB/s: slow, never stalled
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", "8192")
            self.end_headers()
            for _ in range(8):
                self.wfile.write(b"t" * 1024)
                self.wfile.flush()
                time.sleep(0.25)
            return None
        if case == "resetonce" and rest == "files/download":
            with LOCK:
                first = not CACHE.get("resetonce")
                CACHE["resetonce"] = True
            if first:
                self.partial(1000, b"stale partial bytes")
                return self.reset()
        if case == "gone" and self.command == "DELETE":
            # deletes, then drops the answer: the retry sees 404
            # (after some bytes, or curl itself would replay the request
            # on a fresh connection)
            if n == 1:
                self.partial(100, b"{")
                return self.reset()
            return self.send(404, {"error": "no such sandbox",
                                   "errno": "ENOENT"})
        if case == "storm500":
            return self.send(500, {"error": "storm"})
        if case == "storm500errno":
            return self.send(500, {"error": "disk on fire", "errno": "EIO"})
        if case == "storm502":
            return self.send(502, "bad gateway", "text/plain")
        if case.startswith("flaky503") and n % 2 == 1:
            return self.send(503, {"error": "not ready yet"})
        if case == "errno":
            return self.send(409, {"error": "x marks the spot",
                                   "errno": "ENOTEMPTY"})
        if case == "errnobad":
            return self.send(409, {"error": "conflict", "errno": "EWHATEVER"})
        if case == "errnonum":
            return self.send(404, {"error": "gone", "errno": 39})
        if case == "plain404":
            return self.send(404, "no such sandbox here\n", "text/plain")
        if case == "status418":
            return self.send(418, "teapot", "text/plain")
        if case == "e400":
            return self.send(400, {"error": "empty command"})
        if case == "e403":
            return self.send(403, {"error": "forbidden"})
        if case == "e413":
            return self.send(413, {"error": "body too large"})
        if case == "e503":
            return self.send(503, {"error": "not ready"})
        if case == "redirect":
            return self.send(302, "", "text/plain",
                             [("Location", "http://127.0.0.1:1/x")])
        return self.ok(case, rest, q, body)

    def ok(self, case, rest, q, body):
        """A correct server (cases "ok", "flaky503" on even requests, and
        the fs* cases, which break one fs endpoint each)."""
        m = self.command
        path = q.get("path", [""])[0]
        if rest == "" and m == "PUT":
            return self.send(200, {"podName": "pod-" + case,
                                   "expiresAt": "2030-01-01T00:00:00Z"})
        if rest == "" and m == "GET":
            return self.send(200, {"id": case, "podName": "pod-" + case,
                                   "expiresAt": "2030-01-01T00:00:00Z",
                                   "ttlSeconds": 900})
        if rest == "" and m == "DELETE":
            return self.send(204)
        if rest == "touch":
            return self.send(200, {"expiresAt": "2031-01-01T00:00:00Z"})
        if rest == "exec":
            return self.send(200, {"exitCode": 3,
                                   "stdout": body.decode("utf-8", "replace"),
                                   "stderr": "e\u0000r", "durationMs": 7})
        if rest == "files/upload":
            with LOCK:
                UPLOADS[(case, q.get("dest", [""])[0])] = body
            return self.send(200, {})
        if rest == "files/download":
            with LOCK:
                data = UPLOADS.get((case, q.get("src", [""])[0]))
            if data is None:
                return self.send(404, {"error": "nothing uploaded there",
                                       "errno": "ENOENT"})
            return self.send(200, data, "application/x-tar")
        if rest == "fs/stat":
            if case == "fsbad":
                return self.send(200, stat_obj(mode="0644"))
            typ = "dir" if path in ("", ".") else (
                "symlink" if path == "link" else "file")
            if path == "other":
                typ = "other"
            if path == "missing":
                return self.send(404, {"error": "no such file",
                                       "errno": "ENOENT"})
            return self.send(200, stat_obj(typ=typ))
        if rest == "fs/list":
            ents = [stat_obj("a"), stat_obj(typ="dir", name="d")]
            e64 = stat_obj()
            e64["name64"] = base64.b64encode(b"\xff\xfe").decode()
            ents.append(e64)
            if case == "fsbad":
                ents.append(stat_obj("../evil"))
            if case == "fsslash":
                ents.append(stat_obj("a/b"))
            return self.send(200, {"entries": ents})
        if rest == "fs/tree":
            return self.tree_page(case, q.get("after", [None])[0])
        if rest == "fs/file" and m == "GET":
            return self.read_file(case)
        if rest == "fs/file" and m == "PUT":
            w = len(body) + (1 if case == "fsover" else 0)
            return self.send(200, {"written": w})
        if rest == "fs/op":
            op = json.loads(body.decode("utf-8", "surrogateescape"))
            if op.get("op") == "readlink":
                return self.send(200, {"target64": base64.b64encode(
                    b"tgt\xff/x").decode()})
            if op.get("op") == "rmdir" and op.get("path") == "full":
                return self.send(409, {"error": "directory not empty",
                                       "errno": "ENOTEMPTY"})
            return self.send(200, {})
        if rest == "fs/statfs":
            return self.send(200, {"bsize": 4096, "frsize": 4096,
                                   "blocks": 1000, "bfree": 500,
                                   "bavail": 400, "files": 100,
                                   "ffree": 50, "namemax": 255})
        return self.send(404, {"error": "no route " + rest})

    def read_file(self, case):
        rng = self.headers.get("Range", "")
        if case == "fsnorange" or not rng.startswith("bytes="):
            return self.send(200, FILE_DATA, "application/octet-stream")
        a, b = rng[6:].split("-")
        a, b = int(a), int(b)
        if a >= len(FILE_DATA):
            return self.send(416, "", "text/plain",
                             [("Content-Range", "bytes */%d" %
                               len(FILE_DATA))])
        b = min(b, len(FILE_DATA) - 1)
        data = FILE_DATA[a:b + 1]
        if case == "fsbig":
            data = FILE_DATA[a:]
            b = len(FILE_DATA) - 1
            data = data + b"x" * 4096
        if case == "fsshift":
            a += 1
        return self.send(206, data, "application/octet-stream",
                         [("Content-Range", "bytes %d-%d/%d" %
                           (a, b, len(FILE_DATA)))])


STALL = {"mode": "off"}
SLOW_RATE = 64 << 10  # bytes/s of the "slow" mode
GATE = threading.Event()  # set by GET /_stall/release
HOLD_BYTES = 2 << 20  # what "hold" and "cut" let through of a download


class Relay(BaseHTTPRequestHandler):
    """Relays to the upstream server; stalls as /_stall/MODE said."""
    protocol_version = "HTTP/1.1"
    upstream = 0

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.relay()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def stall(self):
        # hold the connection open and silent; the client must give up
        self.close_connection = True
        time.sleep(3600)

    def read_body(self, slow):
        n = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return Handler.read_body(self)
        out = []
        while n > 0:
            k = min(n, SLOW_RATE // 10 if slow else 1 << 20)
            b = self.rfile.read(k)
            if not b:
                break
            out.append(b)
            n -= len(b)
            if slow:
                time.sleep(0.1)
        return b"".join(out)

    def relay(self):
        import http.client
        if self.path.startswith("/_stall/"):
            if self.path[8:] == "release":
                GATE.set()  # the mode stays; what waits goes on
            else:
                STALL["mode"] = self.path[8:]
                GATE.clear()
            body = STALL["mode"].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        mode = STALL["mode"]
        rng = self.headers.get("Range")
        rng = " range=" + rng if rng else ""
        # one line per request on stderr: what a failed test met
        sys.stderr.write("%.3f %s %s %s%s\n" % (time.monotonic(), mode,
                                                 self.command, self.path,
                                                 rng))
        try:
            body = self.read_body(mode == "slow")
            if mode == "request" or (mode == "ext" and
                                     self.path == "/v1/extensions"):
                return self.stall()
            if mode == "gate" and self.command == "PUT" and \
                    "/fs/file" in self.path:
                # a file's PUT waits (its body read) until released
                GATE.wait(600)
            if mode == "holdnorange" and rng:
                body = b"range refused by the relay"
                self.send_response(403)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                sys.stderr.write("%.3f refused 403 %s%s\n" % (
                    time.monotonic(), self.path, rng))
                return
            up = http.client.HTTPConnection("127.0.0.1", self.upstream,
                                            timeout=600)
            hdrs = {k: v for k, v in self.headers.items()
                    if k.lower() not in ("transfer-encoding", "connection",
                                         "content-length")}
            up.request(self.command, self.path, body=body, headers=hdrs)
            resp = up.getresponse()
            data = resp.read()
            up.close()
            if mode == "halftar" and resp.status == 200 and \
                    ("/fs/files" in self.path or
                     "/files/download" in self.path):
                STALL["mode"] = "off"
                data = data[:len(data) // 2]
                sys.stderr.write("%.3f halved %s\n" % (time.monotonic(),
                                                         self.path))
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection",
                                     "content-length", "date", "server"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if mode in ("hold", "holdnorange", "cut") and \
                    self.command == "GET" and len(data) > HOLD_BYTES and \
                    resp.status in (200, 206) and \
                    ("/fs/file" in self.path or
                     "/files/download" in self.path):
                # a download's first HOLD_BYTES, then (cut) the
                # connection closes, or (hold) the rest once released
                self.wfile.write(data[:HOLD_BYTES])
                self.wfile.flush()
                if mode == "cut":
                    self.close_connection = True
                    return
                GATE.wait(600)
                self.wfile.write(data[HOLD_BYTES:])
                return
            if mode == "body":
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                return self.stall()
            if self.command != "HEAD":
                self.wfile.write(data)
            sys.stderr.write("%.3f done %d %s%s\n" % (
                time.monotonic(), resp.status, self.path, rng))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--upstream":
        Relay.upstream = int(sys.argv[2])
        srv = Server(("127.0.0.1", 0), Relay, bind_and_activate=False)
        # a small receive window, inherited by every connection: a slow
        # reader here is a slow link, not megabytes acked and unread
        srv.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        srv.server_bind()
        srv.server_activate()
        sys.stdout.write("%d\n" % srv.server_address[1])
        sys.stdout.flush()
        srv.serve_forever()
        return
    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=hostile_tar, args=("tar_bomb",), daemon=True).start()
    sys.stdout.write("%d\n" % srv.server_address[1])
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
