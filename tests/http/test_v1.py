#!/usr/bin/env python3
"""
test_v1.py - every NoxRunner v1 endpoint of noxd on its happy path, with the
status codes and JSON shapes of docs/protocol.md: healthz, create (idempotent,
expiresAt format), touch, exec (exit codes, 124 timeout, 127, env, workdir,
output cap), upload + download round trip (modes, binary data, a single file),
the download streamed as it is packed (and stopped when its client leaves),
delete (204, then 404).
"""
import calendar
import http.client
import os
import re
import socket
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from noxdtest import (Noxd, check, eq, make_tgz, need_bwrap, read_tgz,  # noqa
                      run)

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def iso_to_epoch(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


def test_healthz():
    d = Noxd()
    r = d.req("GET", "/healthz")
    eq(r.status, 200, "status")
    eq(r.body, b"OK", "body")
    check(r.headers["content-type"].startswith("text/plain"), r.headers)


def test_create_idempotent():
    d = Noxd()
    now = time.time()
    r = d.create("s1", ttlSeconds=300)
    eq(r.status, 200, "create")
    j = r.json()
    check(j.get("podName"), "podName missing: %r" % j)
    check(ISO.match(j["expiresAt"]), "expiresAt format %r" % j["expiresAt"])
    exp = iso_to_epoch(j["expiresAt"])
    check(abs(exp - (now + 300)) <= 5, "expiresAt %s not now+300" % j["expiresAt"])
    check(os.path.isdir(os.path.join(d.sandbox_dir("s1"), "workspace")),
          "workspace dir missing")
    # A file written between two creates survives: create is "ensure".
    eq(d.exec("s1", ["sh", "-c", "echo keep > k"]).status, 200, "write")
    r2 = d.create("s1", ttlSeconds=300)
    eq(r2.status, 200, "second create")
    eq(r2.json()["podName"], j["podName"], "podName stable")
    eq(d.exec("s1", ["cat", "k"]).json()["stdout"], "keep\n", "file kept")
    # Empty body: defaults (ttl 900).
    r3 = d.req("PUT", "/v1/sandboxes/s2")
    eq(r3.status, 200, "empty-body create")
    exp = iso_to_epoch(r3.json()["expiresAt"])
    check(abs(exp - (time.time() + 900)) <= 5, "default ttl 900")


def test_touch():
    d = Noxd()
    r = d.create("t1", ttlSeconds=100)
    exp1 = iso_to_epoch(r.json()["expiresAt"])
    r = d.req("POST", "/v1/sandboxes/t1/touch")
    eq(r.status, 200, "touch")
    j = r.json()
    check(ISO.match(j["expiresAt"]), "touch expiresAt %r" % j)
    check(iso_to_epoch(j["expiresAt"]) >= exp1, "expiry not moved back")
    r = d.req("POST", "/v1/sandboxes/nope/touch")
    eq(r.status, 404, "touch unknown")
    eq(r.json()["errno"], "ENOENT", "errno")


def test_exec_basics():
    d = Noxd()
    d.create("e1")
    r = d.exec("e1", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    eq(r.status, 200, "exec")
    j = r.json()
    eq(sorted(j.keys()), ["durationMs", "exitCode", "stderr", "stdout"], "keys")
    eq(j["exitCode"], 3, "exit code")
    eq(j["stdout"], "out\n", "stdout")
    eq(j["stderr"], "err\n", "stderr")
    check(isinstance(j["durationMs"], int) and j["durationMs"] >= 0, "durationMs")
    eq(d.exec("e1", ["true"]).json()["exitCode"], 0, "true")
    eq(d.exec("e1", ["false"]).json()["exitCode"], 1, "false")
    j = d.exec("e1", ["no-such-program-xyz"]).json()
    eq(j["exitCode"], 127, "missing program")
    # default workdir is /workspace
    eq(d.exec("e1", ["pwd"]).json()["stdout"], "/workspace\n", "pwd")
    d.exec("e1", ["mkdir", "-p", "/workspace/sub/dir"])
    eq(d.exec("e1", ["pwd"], workdir="/workspace/sub/dir").json()["stdout"],
       "/workspace/sub/dir\n", "workdir absolute")
    eq(d.exec("e1", ["pwd"], workdir="sub").json()["stdout"],
       "/workspace/sub\n", "workdir relative")
    j = d.exec("e1", ["sh", "-c", 'printf %s "$A:$B"'],
               env={"A": "one", "B": "two words 'q'"}).json()
    eq(j["stdout"], "one:two words 'q'", "env")
    # argv is passed as is: no shell expansion
    eq(d.exec("e1", ["echo", "$HOME", "*"]).json()["stdout"], "$HOME *\n",
       "literal argv")


def test_exec_timeout():
    d = Noxd()
    d.create("to")
    t0 = time.time()
    j = d.exec("to", ["sleep", "20"], timeoutSeconds=1).json()
    eq(j["exitCode"], 124, "timeout exit code")
    check(time.time() - t0 < 10, "timeout took %.1fs" % (time.time() - t0))


def test_exec_output_cap():
    d = Noxd()
    d.create("cap")
    # 5 MiB on stdout and 5 MiB on stderr; default cap 1 MiB each.
    j = d.exec("cap", ["sh", "-c",
                       "head -c 5242880 /dev/zero | tr '\\0' a; "
                       "head -c 5242880 /dev/zero | tr '\\0' b >&2; "
                       "echo done"], timeoutSeconds=60).json()
    eq(j["exitCode"], 0, "exit")
    out, err = j["stdout"], j["stderr"]
    check(1 << 19 <= len(out) <= (1 << 20) + 4096,
          "stdout not capped near 1 MiB: %d" % len(out))
    check(1 << 19 <= len(err) <= (1 << 20) + 4096,
          "stderr not capped near 1 MiB: %d" % len(err))
    check(set(out[:1000]) == {"a"}, "stdout content")
    # exactly 1 MiB kept of each, flagged in the extension member, and
    # the last line of stderr says so
    eq(out, "a" * (1 << 20), "stdout: the first 1 MiB")
    eq(j.get("truncated"), {"stdout": True, "stderr": True}, "truncated")
    note = ("nox: truncated: stdout kept 1048576 of 5242885 bytes, "
            "stderr kept 1048576 of 5242880 bytes (output cap 1048576)\n")
    eq(err, "b" * (1 << 20) + "\n" + note, "stderr: 1 MiB, then the note")
    # nothing cut: plain v1, no member
    j = d.exec("cap", ["sh", "-c", "echo hi"]).json()
    eq(sorted(j.keys()), ["durationMs", "exitCode", "stderr", "stdout"],
       "no 'truncated' when nothing was cut")
    # --output-cap changes it
    d2 = Noxd("--output-cap", "1000")
    d2.create("cap")
    j = d2.exec("cap", ["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' z"]).json()
    check(len(j["stdout"]) <= 1000 + 100, "--output-cap: %d" % len(j["stdout"]))
    eq(len(j["stdout"]), 1000, "--output-cap 1000: 1000 bytes")
    eq(j.get("truncated"), {"stdout": True, "stderr": False},
       "--output-cap: truncated")
    eq(j["stderr"], "nox: truncated: stdout kept 1000 of 100000 bytes "
       "(output cap 1000)\n", "--output-cap: the note")
    # --v1-only: no extension member, the note still ends stderr
    d3 = Noxd("--v1-only")
    d3.create("cap")
    j = d3.exec("cap", ["sh", "-c", "head -c 2000000 /dev/zero"]).json()
    eq(len(j["stdout"]), 1 << 20, "--v1-only: cut at 1 MiB")
    eq(sorted(j.keys()), ["durationMs", "exitCode", "stderr", "stdout"],
       "--v1-only: plain v1 keys")
    check(j["stderr"].endswith("(output cap 1048576)\n"),
          "--v1-only: the note: %r" % j["stderr"][-200:])
    # the cap is bounded so a result's JSON fits a client's 64 MiB
    for bad in ("6M", "0"):
        d4 = Noxd("--output-cap", bad, expect_fail=True)
        eq(d4.wait(10), 2, "--output-cap %s refused" % bad)
        check("bad --output-cap" in d4.logtext(), "--output-cap %s: message" % bad)
        d4.stop()


def test_exec_bytes():
    """nox.bytes: output that is not UTF-8 also comes as exact base64."""
    import base64
    d = Noxd()
    d.create("b")
    cmd = ["sh", "-c", "printf '\\377\\376\\000x\\n'; "
           "printf 'e\\377' >&2"]
    r = d.exec("b", cmd)
    eq(r.status, 200, "exec")
    j = r.json()
    # the v1 members as before, for v1 clients: U+FFFD for each bad byte
    eq(j["stdout"], "\ufffd\ufffd\x00x\n", "stdout, lossy v1 text")
    eq(j["stderr"], "e\ufffd", "stderr, lossy v1 text")
    eq(base64.b64decode(j["stdoutBase64"], validate=True),
       b"\377\376\000x\n", "stdoutBase64: the exact bytes")
    eq(base64.b64decode(j["stderrBase64"], validate=True), b"e\377",
       "stderrBase64: the exact bytes")
    # only the stream that needs it
    j = d.exec("b", ["sh", "-c", "printf '\\377'; echo ok >&2"]).json()
    check("stdoutBase64" in j and "stderrBase64" not in j,
          "only stdout gets a base64 member: %r" % sorted(j))
    # valid UTF-8 (a real U+FFFD included): plain v1, no member
    j = d.exec("b", ["printf", "\u00e9\ufffd"]).json()
    eq(j["stdout"], "\u00e9\ufffd", "valid UTF-8 kept")
    eq(sorted(j.keys()), ["durationMs", "exitCode", "stderr", "stdout"],
       "no base64 member for valid UTF-8")
    # discovered at run time
    eq(d.req("GET", "/v1/extensions").json()["extensions"].get("nox.bytes"),
       1, "nox.bytes 1 in /v1/extensions")
    # --v1-only: plain v1, the loss stays
    d2 = Noxd("--v1-only")
    d2.create("b")
    j = d2.exec("b", cmd).json()
    eq(sorted(j.keys()), ["durationMs", "exitCode", "stderr", "stdout"],
       "--v1-only: plain v1 keys")
    eq(j["stdout"], "\ufffd\ufffd\x00x\n", "--v1-only: lossy stdout")


def test_exec_umask():
    d = Noxd()
    d.create("um")
    cmd = ["sh", "-c", "touch f; mkdir d; stat -c %a f d; umask"]
    eq(d.exec("um", cmd).json()["stdout"], "644\n755\n0022\n", "default 022")
    d2 = Noxd("--exec-umask", "027")
    d2.create("um")
    eq(d2.exec("um", cmd).json()["stdout"], "640\n750\n0027\n",
       "--exec-umask 027")
    d3 = Noxd("--exec-umask", "8", expect_fail=True)
    eq(d3.wait(10), 2, "--exec-umask 8 refused")
    d3.stop()


def test_upload_download_roundtrip():
    d = Noxd()
    d.create("u1")
    blob = os.urandom(300000)
    tgz = make_tgz([
        ("dir", None, 0o755),
        ("dir/a.txt", "hello\n", 0o644),
        ("dir/run.sh", "#!/bin/sh\necho ran\n", 0o755),
        ("dir/nested/deep/blob.bin", blob, 0o600),
        ("top.txt", "top", 0o640),
    ])
    r = d.upload("u1", tgz, dest="/workspace/in")
    eq(r.status, 200, "upload %r" % r)
    eq(r.json(), {}, "upload body")
    # visible to commands, modes kept
    eq(d.exec("u1", ["sh", "in/dir/run.sh"]).json()["stdout"], "ran\n", "run")
    ws = os.path.join(d.sandbox_dir("u1"), "workspace")
    eq(stat.S_IMODE(os.stat(os.path.join(ws, "in/dir/run.sh")).st_mode), 0o755,
       "mode kept")
    r = d.download("u1", src="/workspace/in")
    eq(r.status, 200, "download")
    check(r.headers["content-type"] == "application/x-tar", r.headers)
    eq(r.body[:2], b"\x1f\x8b", "gzip magic")
    t = read_tgz(r.body)
    eq(t["dir/a.txt"][1], b"hello\n", "a.txt")
    eq(t["dir/nested/deep/blob.bin"][1], blob, "blob")
    eq(t["top.txt"][1], b"top", "top")
    eq(t["dir/run.sh"][0].mode & 0o777, 0o755, "run.sh mode")
    eq(t["dir/nested/deep/blob.bin"][0].mode & 0o777, 0o600, "blob mode")
    check(not any(n.startswith("/") or ".." in n.split("/") for n in t),
          "names relative")
    # a single file gives one entry named by its base name
    r = d.download("u1", src="in/dir/a.txt")
    eq(r.status, 200, "download file")
    t = read_tgz(r.body)
    eq(list(t.keys()), ["a.txt"], "single entry")
    eq(t["a.txt"][1], b"hello\n", "single content")
    # default dest and src are /workspace
    eq(d.upload("u1", make_tgz([("root.txt", "r")])).status, 200, "upload default")
    t = read_tgz(d.download("u1").body)
    check("root.txt" in t and "in/top.txt" in t, "default src: %r" % list(t))
    # a missing src is 404
    eq(d.download("u1", src="/workspace/nope").status, 404, "missing src")


def _noxd_fds(pid):
    """Targets of noxd's open descriptors."""
    out = []
    d = "/proc/%d/fd" % pid
    for n in os.listdir(d):
        try:
            out.append(os.readlink(os.path.join(d, n)))
        except OSError:
            pass  # closed meanwhile
    return out


def _threads(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def test_download_streamed():
    """A download is sent as it is packed: while a client holds the first
    bytes of a 32 MiB file's archive, noxd is still reading the file and
    keeps no staged copy of the archive (the old code packed it whole into
    an unlinked temp file first).  A client that leaves midway stops the
    packer: noxd's threads and descriptors return to what they were."""
    d = Noxd()
    d.create("st")
    ws = os.path.join(d.sandbox_dir("st"), "workspace")
    blob = os.urandom(32 << 20)  # incompressible: pipe and socket fill up
    big = os.path.join(ws, "big.bin")
    with open(big, "wb") as f:
        f.write(blob)
    pid = d.proc.pid
    fds0, th0 = len(_noxd_fds(pid)), _threads(pid)
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
    c.request("GET", "/v1/sandboxes/st/files/download?src=big.bin")
    r = c.getresponse()
    eq(r.status, 200, "download status")
    eq(r.getheader("content-length"), None, "no Content-Length")
    eq(r.getheader("transfer-encoding"), "chunked", "chunked")
    eq(r.read(4096)[:2], b"\x1f\x8b", "gzip magic first")
    fds = _noxd_fds(pid)
    check(big in fds, "the file is still being read: %r" % fds)
    check(not any(t.endswith(" (deleted)") for t in fds),
          "a staged archive is open: %r" % fds)
    # leave midway
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    deadline = time.time() + 15
    while time.time() < deadline and (len(_noxd_fds(pid)) > fds0 or
                                      _threads(pid) > th0):
        time.sleep(0.1)
    eq(len(_noxd_fds(pid)), fds0, "descriptors after a client left: %r"
       % _noxd_fds(pid))
    eq(_threads(pid), th0, "threads after a client left")
    check(d.proc.poll() is None, "noxd alive")
    # the whole archive, read to its end, is right
    r = d.download("st", src="big.bin")
    eq(r.status, 200, "second download")
    eq(read_tgz(r.body)["big.bin"][1], blob, "content")


def test_delete():
    d = Noxd()
    d.create("d1")
    check(os.path.isdir(d.sandbox_dir("d1")), "dir exists")
    r = d.req("DELETE", "/v1/sandboxes/d1")
    eq(r.status, 204, "delete")
    eq(r.body, b"", "204 body")
    check(not os.path.exists(d.sandbox_dir("d1")), "dir removed")
    r = d.req("DELETE", "/v1/sandboxes/d1")
    eq(r.status, 404, "second delete")
    eq(d.exec("d1", ["true"]).status, 404, "exec after delete")


if __name__ == "__main__":
    need_bwrap()
    run([test_healthz, test_create_idempotent, test_touch, test_exec_basics,
         test_exec_timeout, test_exec_output_cap, test_exec_bytes,
         test_exec_umask,
         test_upload_download_roundtrip, test_download_streamed,
         test_delete])
