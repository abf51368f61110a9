#!/usr/bin/env python3
"""
test_compat.py - noxd against the NoxRunner Python reference client's wire
behaviour.

The reference client (noxrunner, NoxRunnerClient) cannot be installed here
(no PyPI), so its own integration suite (tests/test_remote_sandbox_
integration.py) cannot run.  This test replays, with urllib, exactly the
requests its HTTP backend sends, in the order that suite sends them:
  - JSON bodies as json.dumps(dict) with only "Content-Type: application/json";
  - touch and delete with no body and no Content-Type;
  - uploads: a gzip tar built by tarfile "w:gz" from {name: content} with
    TarInfo defaults (no directory entries, mode 0644), POSTed with
    "Content-Type: application/x-tar" to files/upload?dest=... (urlencode);
  - downloads: GET files/download?src=... opened with tarfile "r:*";
  - the session id unencoded in the path, no Authorization header;
  - wait_for_pod_ready: exec ["echo", "ready"] with timeoutSeconds 5;
and checks what the client and that suite expect back (status 200 or 204,
"OK" in the health body, podName/expiresAt, exitCode/stdout/durationMs).
"""
import io
import json
import os
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from noxdtest import Noxd, check, eq, need_bwrap, run  # noqa

BASE = None


def _request(method, path, data=None, content_type=None):
    """The reference client's _request, request for request."""
    url = f"{BASE}{path}"
    headers = {}
    body = None
    if data is not None:
        if isinstance(data, dict):
            body = json.dumps(data).encode("utf-8")
            headers["Content-Type"] = content_type or "application/json"
        else:
            body = data
            headers["Content-Type"] = content_type or "application/octet-stream"
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.getcode(), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _json(method, path, data=None):
    status, body = _request(method, path, data)
    check(200 <= status < 300, "%s %s: %d %r" % (method, path, status, body))
    return json.loads(body.decode("utf-8")) if body else {}


def health_check():
    status, body = _request("GET", "/healthz")
    return status == 200 and b"OK" in body


def create_sandbox(sid, ttl_seconds=900):
    return _json("PUT", f"/v1/sandboxes/{sid}", {"ttlSeconds": ttl_seconds})


def touch(sid):
    return _request("POST", f"/v1/sandboxes/{sid}/touch")[0] == 200


def exec_(sid, cmd, workdir="/workspace", env=None, timeout_seconds=30):
    data = {"cmd": cmd, "workdir": workdir, "timeoutSeconds": timeout_seconds}
    if env:
        data["env"] = env
    return _json("POST", f"/v1/sandboxes/{sid}/exec", data)


def exec_shell(sid, command, shell="sh", **kw):
    return exec_(sid, [shell, "-c", command], **kw)


def upload_files(sid, files, dest="/workspace"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            b = content.encode("utf-8") if isinstance(content, str) else content
            info = tarfile.TarInfo(name=name)
            info.size = len(b)
            tar.addfile(info, io.BytesIO(b))
    buf.seek(0)
    path = f"/v1/sandboxes/{sid}/files/upload?" + urllib.parse.urlencode(
        {"dest": dest})
    status, _ = _request("POST", path, data=buf.read(),
                         content_type="application/x-tar")
    return status == 200


def download_files(sid, src="/workspace"):
    path = f"/v1/sandboxes/{sid}/files/download?" + urllib.parse.urlencode(
        {"src": src})
    status, body = _request("GET", path)
    eq(status, 200, "download")
    return body


def delete_sandbox(sid):
    return _request("DELETE", f"/v1/sandboxes/{sid}")[0] in (200, 204)


def wait_for_pod_ready(sid, timeout=60, interval=2):
    start = time.time()
    while time.time() - start < timeout:
        try:
            if exec_(sid, ["echo", "ready"],
                     timeout_seconds=5).get("stdout", "").strip() == "ready":
                return True
        except AssertionError:
            pass
        time.sleep(interval)
    return False


def test_reference_sequence():
    global BASE
    d = Noxd()
    BASE = d.url()
    sid = f"test-integration-{int(time.time())}"
    check(health_check(), "health")
    r = create_sandbox(sid, ttl_seconds=300)
    check("podName" in r and "expiresAt" in r and r["podName"], "create %r" % r)
    create_sandbox(sid)
    check(wait_for_pod_ready(sid), "ready")
    r = exec_(sid, ["echo", "hello", "world"])
    check(r["exitCode"] == 0 and "hello" in r["stdout"] and "durationMs" in r,
          "echo")
    exec_(sid, ["mkdir", "-p", "/workspace/subdir"])
    r = exec_(sid, ["pwd"], workdir="/workspace/subdir")
    check(r["exitCode"] == 0 and "/workspace/subdir" in r["stdout"], "workdir")
    r = exec_(sid, ["printenv", "TEST_VAR"], env={"TEST_VAR": "test_value_123"})
    eq(r["stdout"].strip(), "test_value_123", "printenv")
    r = exec_(sid, ["sh", "-c", "echo $TEST_VAR"],
              env={"TEST_VAR": "sh_test_value_456"})
    eq(r["stdout"].strip(), "sh_test_value_456", "sh -c")
    r = exec_(sid, ["bash", "-c", "echo $TEST_VAR"],
              env={"TEST_VAR": "bash_test_value_789"})
    eq((r["exitCode"], r["stdout"].strip()), (0, "bash_test_value_789"),
       "bash -c")
    r = exec_(sid, ["python3", "-c", "import os; print(os.environ['TEST_VAR'])"],
              env={"TEST_VAR": "python_test_value_abc"})
    eq((r["exitCode"], r["stdout"].strip()), (0, "python_test_value_abc"),
       "python3 -c")
    r = exec_(sid, ["sh", "-c", "echo $VAR1:$VAR2:$VAR3"],
              env={"VAR1": "value1", "VAR2": "value2", "VAR3": "value3"})
    eq(r["stdout"].strip(), "value1:value2:value3", "multi env")
    special = "test value with spaces and 'quotes'"
    r = exec_(sid, ["sh", "-c", 'echo "$TEST_VAR"'], env={"TEST_VAR": special})
    eq(r["stdout"].strip(), special, "special env")
    r = exec_(sid, ["sh", "-c", "echo $BASE/$SUBDIR"],
              env={"BASE": "/workspace", "SUBDIR": "test"})
    eq(r["stdout"].strip(), "/workspace/test", "nested env")
    r = exec_(sid, ["echo", "$TEST_VAR"], env={"TEST_VAR": "should_not_appear"})
    eq(r["stdout"].strip(), "$TEST_VAR", "literal argv")
    r = exec_(sid, ["sleep", "10"], timeout_seconds=2)
    check(r["exitCode"] != 0, "timeout exit code %r" % r["exitCode"])
    check(upload_files(sid, {"test.txt": "Hello, World!",
                             "script.py": "print('test')",
                             "data.bin": b"\x00\x01\x02\x03"}), "upload")
    r = exec_(sid, ["ls", "-la", "/workspace"])
    for n in ("test.txt", "script.py", "data.bin"):
        check(n in r["stdout"], "ls shows %s" % n)
    upload_files(sid, {"file1.txt": "content1", "file2.txt": "content2",
                       "subdir/file3.txt": "content3"})
    tar_data = download_files(sid, src="/workspace")
    check(len(tar_data) > 0, "download size")
    with tarfile.open(fileobj=io.BytesIO(tar_data), mode="r:*") as tar:
        names = tar.getnames()
        for n in ("file1.txt", "file2.txt", "subdir/file3.txt"):
            check(any(n in x for x in names), "%s in %r" % (n, names))
        eq(tar.extractfile("subdir/file3.txt").read(), b"content3", "file3")
    create_sandbox(sid, ttl_seconds=300)
    check(touch(sid), "touch")
    r = exec_shell(sid, "echo hello world")
    eq(r["stdout"].strip(), "hello world", "exec_shell")
    exec_(sid, ["sh", "-c", "echo -e 'line1\\nline2\\nline3\\nline4' > test.txt"])
    r = exec_shell(sid, "cat test.txt | head -2")
    check("line1" in r["stdout"] and "line4" not in r["stdout"], "pipes")
    r = exec_shell(sid, "echo $BASH_VERSION", shell="bash")
    eq(r["exitCode"], 0, "bash")
    r = exec_shell(sid, "pwd", workdir="/workspace/subdir")
    check("/workspace/subdir" in r["stdout"], "exec_shell workdir")
    check(delete_sandbox(sid), "delete")
    status, _ = _request("POST", f"/v1/sandboxes/{sid}/exec",
                         {"cmd": ["echo", "test"], "workdir": "/workspace",
                          "timeoutSeconds": 5})
    eq(status, 404, "exec after delete")


def test_full_workflow_and_concurrent():
    global BASE
    d = Noxd()
    BASE = d.url()
    sid = f"workflow-test-{int(time.time())}"
    r = create_sandbox(sid, ttl_seconds=600)
    check("podName" in r, "podName")
    check(wait_for_pod_ready(sid), "ready")
    check(upload_files(sid, {
        "script.py": "#!/usr/bin/env python3\nprint('Hello from script!')\n",
        "data.txt": "test data"}), "upload")
    r = exec_(sid, ["python3", "/workspace/script.py"])
    check(r["exitCode"] == 0 and "Hello from script!" in r["stdout"], "script")
    check(len(download_files(sid)) > 0, "download")
    check(touch(sid), "touch")
    check(delete_sandbox(sid), "delete")
    ids = [f"concurrent-{i}-{int(time.time())}" for i in range(3)]
    for s in ids:
        create_sandbox(s, ttl_seconds=300)
    for s in ids:
        check(wait_for_pod_ready(s), "ready %s" % s)
    for s in ids:
        eq(exec_(s, ["echo", f"session-{s}"])["exitCode"], 0, "exec %s" % s)
    for s in ids:
        check(delete_sandbox(s), "delete %s" % s)
    eq(os.listdir(d.base), [], "all deleted")


if __name__ == "__main__":
    need_bwrap()
    run([test_reference_sequence, test_full_workflow_and_concurrent])
