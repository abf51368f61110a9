#!/usr/bin/env python3
"""
test_ext.py - the noxd extensions: discovery, nox.sandboxes (list, info) and
every nox.fs endpoint (stat, list, tree and its pages, file read with ranges, file write at
an offset, each fs/op, statfs), nox.ops (fs/ops), and --v1-only turning them all off while v1
and /metrics keep working.

Hostile input tried: paths with "..", absolute paths, a symlink inside the
workspace pointing at /etc (read through it, write through it), names that
are not UTF-8 (must come back as name64), bad offsets, unknown ops, wrong
field types.
"""
import base64
import json
import os
import socket
import stat
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from noxdtest import Noxd, check, eq, need_bwrap, run  # noqa

FS = "/v1/sandboxes/%s/fs/"


def q(path):
    return urllib.parse.quote(path, safe="")


def fs_get(d, sid, ep, path=None, headers=None):
    url = FS % sid + ep
    if path is not None:
        url += "?path=" + q(path)
    return d.req("GET", url, headers=headers)


def op(d, sid, body):
    return d.req("POST", FS % sid + "op", body)


def setup(d, sid="x"):
    eq(d.create(sid).status, 200, "create")
    ws = os.path.join(d.sandbox_dir(sid), "workspace")
    os.makedirs(os.path.join(ws, "dir/sub"))
    with open(os.path.join(ws, "dir/f.txt"), "w") as f:
        f.write("0123456789")
    with open(os.path.join(ws, "dir/sub/g"), "w") as f:
        f.write("g")
    os.symlink("f.txt", os.path.join(ws, "dir/link"))
    os.symlink("/etc", os.path.join(ws, "etc-link"))
    return ws


def test_discovery():
    d = Noxd()
    r = d.req("GET", "/v1/extensions")
    eq(r.status, 200, "extensions")
    eq(r.json(), {"extensions": {"nox.fs": 1, "nox.sandboxes": 1,
                                 "nox.files": 1, "nox.bytes": 1,
                                 "nox.ops": 1, "nox.cancel": 1}}, "body")


def test_sandboxes():
    d = Noxd()
    d.create("a1", ttlSeconds=100)
    d.create("b2", ttlSeconds=200)
    r = d.req("GET", "/v1/sandboxes")
    eq(r.status, 200, "list")
    got = sorted(r.json()["sandboxes"], key=lambda s: s["id"])
    eq([s["id"] for s in got], ["a1", "b2"], "ids")
    for s in got:
        check(s["podName"] and s["expiresAt"], "fields %r" % s)
    r = d.req("GET", "/v1/sandboxes/b2")
    eq(r.status, 200, "info")
    j = r.json()
    eq(j["id"], "b2", "id")
    eq(j["ttlSeconds"], 200, "ttl")
    check(j["podName"] and j["expiresAt"], "info fields")
    r = d.req("GET", "/v1/sandboxes/zz")
    eq(r.status, 404, "info unknown")
    check(not os.path.exists(d.sandbox_dir("zz")), "info never creates")


def test_stat_list_tree():
    d = Noxd()
    ws = setup(d)
    r = fs_get(d, "x", "stat", "dir/f.txt")
    eq(r.status, 200, "stat")
    j = r.json()
    st = os.lstat(os.path.join(ws, "dir/f.txt"))
    eq(j["type"], "file", "type")
    eq(j["size"], 10, "size")
    eq(j["mode"], stat.S_IMODE(st.st_mode), "mode")
    eq(j["ino"], st.st_ino, "ino")
    eq(j["mtimeNs"], st.st_mtime_ns, "mtimeNs")
    for k in ("nlink", "uid", "gid", "atimeNs", "ctimeNs"):
        check(k in j, "stat has %s" % k)
    j = fs_get(d, "x", "stat", "dir/link").json()
    eq((j["type"], j["target"]), ("symlink", "f.txt"), "lstat symlink")
    eq(fs_get(d, "x", "stat", "").json()["type"], "dir", "root stat")
    eq(fs_get(d, "x", "stat", "nope").status, 404, "stat missing")

    r = fs_get(d, "x", "list", "dir")
    eq(r.status, 200, "list")
    ents = {e["name"]: e for e in r.json()["entries"]}
    eq(sorted(ents), ["f.txt", "link", "sub"], "list names")
    eq(ents["sub"]["type"], "dir", "sub type")
    eq(ents["link"]["target"], "f.txt", "list target")
    eq(fs_get(d, "x", "list", "dir/f.txt").status, 400, "list a file: ENOTDIR")
    eq(fs_get(d, "x", "list", "dir/f.txt").json()["errno"], "ENOTDIR", "errno")

    r = fs_get(d, "x", "tree", "")
    eq(r.status, 200, "tree")
    paths = [e["path"] for e in r.json()["entries"]]
    eq(sorted(paths), sorted(["dir", "dir/f.txt", "dir/link", "dir/sub",
                              "dir/sub/g", "etc-link"]), "tree paths")
    for p in paths:
        if "/" in p:
            check(paths.index(p.rsplit("/", 1)[0]) < paths.index(p),
                  "parent before child: %s" % p)
    sub = [e["path"] for e in fs_get(d, "x", "tree", "dir").json()["entries"]]
    eq(sorted(sub), ["f.txt", "link", "sub", "sub/g"], "tree relative to P")


def test_non_utf8_names():
    d = Noxd()
    ws = setup(d)
    raw = b"caf\xe9"  # Latin-1, not UTF-8
    with open(os.path.join(ws.encode(), b"dir/" + raw), "wb") as f:
        f.write(b"x")
    ents = fs_get(d, "x", "list", "dir").json()["entries"]
    named = [e for e in ents if "name64" in e]
    eq(len(named), 1, "one name64 entry")
    eq(base64.b64decode(named[0]["name64"]), raw, "name64 bytes")
    check("name" not in named[0], "no name next to name64")
    # op with path64 addresses it
    p64 = base64.b64encode(b"dir/" + raw).decode()
    eq(op(d, "x", {"op": "unlink", "path64": p64}).status, 200, "unlink path64")
    check(not os.path.exists(os.path.join(ws.encode(), b"dir/" + raw)), "gone")


def test_tree_pages():
    """Paged fs/tree: pages of every size concatenate to the walk order
    (parents first, siblings by bytes, "a-b" after all of "a/"), with a
    name that is not UTF-8 as the cursor (next64 sent back as raw bytes);
    --tree-page caps the limit; an unpaged request is whole."""
    d = Noxd("--tree-page", "3")
    eq(d.create("p").status, 200, "create")
    ws = os.path.join(d.sandbox_dir("p"), "workspace").encode()
    for rel in (b"a/x/y", b"a-b/z", b"a.b", b"a0", b"caf\xe9/in", b"b"):
        parent, _, name = rel.rpartition(b"/")
        os.makedirs(os.path.join(ws, parent), exist_ok=True)
        with open(os.path.join(ws, rel), "wb") as f:
            f.write(b"x")
    want = [b"a", b"a/x", b"a/x/y", b"a-b", b"a-b/z", b"a.b", b"a0", b"b",
            b"caf\xe9", b"caf\xe9/in"]

    def path_of(e, key="path"):
        if key + "64" in e:
            return base64.b64decode(e[key + "64"])
        return e[key].encode()

    for limit in (1, 2, 3, 10):
        got, after, pages = [], None, 0
        while True:
            url = FS % "p" + "tree?path=&limit=%d" % limit
            if after is not None:
                url += "&after=" + urllib.parse.quote(after, safe="")
            r = d.req("GET", url)
            eq(r.status, 200, "page %d of limit %d" % (pages, limit))
            j = r.json()
            pages += 1
            check(len(j["entries"]) <= min(limit, 3), "page within the cap")
            got += [path_of(e) for e in j["entries"]]
            if "next" not in j and "next64" not in j:
                check("statfs" in j, "the last page carries statfs")
                break
            after = path_of(j, "next")
            eq(after, got[-1], "next is the page's last path")
            check(pages < 20, "the walk ends")
        eq(got, want, "limit %d: the walk order" % limit)
    whole = d.req("GET", FS % "p" + "tree?path=").json()
    check("next" not in whole, "unpaged: one answer")
    eq(len(whole["entries"]), len(want), "unpaged: whole")
    sub = d.req("GET", FS % "p" + "tree?path=a&limit=1&after=x").json()
    eq([e["path"] for e in sub["entries"]], ["x/y"], "relative to P")
    for bad in ("after=", "after=..%2Fa", "after=%2Fa", "after=a%2F.%2Fb",
                "limit=0", "limit=-3", "limit=1x"):
        r = d.req("GET", FS % "p" + "tree?path=&" + bad)
        eq((r.status, r.json().get("errno")), (400, "EINVAL"), bad)


def test_file_read_ranges():
    d = Noxd()
    setup(d)
    r = fs_get(d, "x", "file", "dir/f.txt")
    eq((r.status, r.body), (200, b"0123456789"), "full read")
    r = fs_get(d, "x", "file", "dir/f.txt", {"Range": "bytes=2-4"})
    eq((r.status, r.body), (206, b"234"), "range")
    eq(r.headers["content-range"], "bytes 2-4/10", "content-range")
    r = fs_get(d, "x", "file", "dir/f.txt", {"Range": "bytes=7-"})
    eq((r.status, r.body), (206, b"789"), "open range")
    r = fs_get(d, "x", "file", "dir/f.txt", {"Range": "bytes=-3"})
    eq((r.status, r.body), (206, b"789"), "suffix range")
    r = fs_get(d, "x", "file", "dir/f.txt", {"Range": "bytes=5-100"})
    eq((r.status, r.body), (206, b"56789"), "range clipped")
    r = fs_get(d, "x", "file", "dir/f.txt", {"Range": "bytes=10-"})
    eq(r.status, 416, "unsatisfiable")
    eq(r.headers["content-range"], "bytes */10", "416 content-range")
    r = fs_get(d, "x", "file", "dir/f.txt", {"Range": "junk"})
    eq((r.status, r.body), (200, b"0123456789"), "bad range ignored")
    eq(fs_get(d, "x", "file", "dir").status, 400, "read a dir")
    eq(fs_get(d, "x", "file", "dir").json()["errno"], "EISDIR", "EISDIR")
    eq(fs_get(d, "x", "file", None).status, 400, "path required")
    eq(fs_get(d, "x", "file", "dir/link").status, 400, "symlink not followed")
    # big file streams whole
    blob = os.urandom(3 << 20)
    with open(os.path.join(d.sandbox_dir("x"), "workspace/big"), "wb") as f:
        f.write(blob)
    eq(fs_get(d, "x", "file", "big").body, blob, "3 MiB read")


def test_file_write():
    d = Noxd()
    ws = setup(d)
    url = FS % "x" + "file?path=" + q("dir/f.txt") + "&offset=3"
    r = d.req("PUT", url, b"ABC")
    eq(r.status, 200, "write")
    eq(r.json(), {"written": 3}, "written")
    eq(open(os.path.join(ws, "dir/f.txt"), "rb").read(), b"012ABC6789", "data")
    url = FS % "x" + "file?path=" + q("dir/f.txt") + "&offset=12"
    eq(d.req("PUT", url, b"Z").status, 200, "write past end")
    eq(open(os.path.join(ws, "dir/f.txt"), "rb").read(),
       b"012ABC6789\0\0Z", "sparse extend")
    blob = os.urandom(2 << 20)
    url = FS % "x" + "file?path=" + q("dir/sub/g")
    eq(d.req("PUT", url, blob).json(), {"written": len(blob)}, "2 MiB write")
    eq(open(os.path.join(ws, "dir/sub/g"), "rb").read(), blob, "2 MiB data")
    url = FS % "x" + "file?path=" + q("newfile")
    eq(d.req("PUT", url, b"x").status, 404, "file must exist")
    for bad in ("-1", "abc", "1x", "99999999999999999999"):
        url = FS % "x" + "file?path=" + q("dir/f.txt") + "&offset=" + bad
        eq(d.req("PUT", url, b"x").status, 400, "offset %s" % bad)


def test_fs_ops():
    d = Noxd()
    ws = setup(d)
    P = lambda p: os.path.join(ws, p)  # noqa
    eq(op(d, "x", {"op": "create", "path": "n.txt", "mode": 0o600}).status,
       200, "create")
    eq(stat.S_IMODE(os.stat(P("n.txt")).st_mode), 0o600, "create mode")
    r = op(d, "x", {"op": "create", "path": "n.txt", "excl": True})
    eq((r.status, r.json()["errno"]), (409, "EEXIST"), "create excl")
    eq(op(d, "x", {"op": "create", "path": "n.txt"}).status, 200,
       "create non-excl existing")
    eq(op(d, "x", {"op": "truncate", "path": "dir/f.txt", "size": 4}).status,
       200, "truncate")
    eq(os.path.getsize(P("dir/f.txt")), 4, "truncated")
    eq(op(d, "x", {"op": "mkdir", "path": "m", "mode": 0o700}).status, 200,
       "mkdir")
    eq(stat.S_IMODE(os.stat(P("m")).st_mode), 0o700, "mkdir mode")
    r = op(d, "x", {"op": "rmdir", "path": "dir"})
    eq((r.status, r.json()["errno"]), (409, "ENOTEMPTY"), "rmdir non-empty")
    eq(op(d, "x", {"op": "rmdir", "path": "m"}).status, 200, "rmdir")
    check(not os.path.exists(P("m")), "rmdir done")
    r = op(d, "x", {"op": "rename", "from": "n.txt", "to": "dir/f.txt",
                    "flags": 1})
    eq((r.status, r.json()["errno"]), (409, "EEXIST"), "rename noreplace")
    eq(op(d, "x", {"op": "rename", "from": "n.txt", "to": "dir/f.txt",
                   "flags": 2}).status, 200, "rename exchange")
    eq(os.path.getsize(P("n.txt")), 4, "exchanged")
    eq(op(d, "x", {"op": "rename", "from": "n.txt", "to": "r.txt"}).status,
       200, "rename")
    check(os.path.exists(P("r.txt")) and not os.path.exists(P("n.txt")), "moved")
    eq(op(d, "x", {"op": "chmod", "path": "r.txt", "mode": 0o751}).status,
       200, "chmod")
    eq(stat.S_IMODE(os.stat(P("r.txt")).st_mode), 0o751, "chmod mode")
    eq(op(d, "x", {"op": "utimens", "path": "r.txt",
                   "atimeNs": 1000000000123, "mtimeNs": 2000000000456}).status,
       200, "utimens")
    st = os.stat(P("r.txt"))
    eq((st.st_atime_ns, st.st_mtime_ns), (1000000000123, 2000000000456),
       "times")
    eq(op(d, "x", {"op": "utimens", "path": "r.txt", "atimeNs": -2,
                   "mtimeNs": -1}).status, 200, "utimens omit/now")
    st2 = os.stat(P("r.txt"))
    eq(st2.st_atime_ns, 1000000000123, "atime omitted")
    check(st2.st_mtime_ns > 2000000000456, "mtime now")
    eq(op(d, "x", {"op": "symlink", "target": "../outside", "path": "sl"}).status,
       200, "symlink stored as given")
    eq(os.readlink(P("sl")), "../outside", "symlink target")
    r = op(d, "x", {"op": "readlink", "path": "sl"})
    eq((r.status, r.json()), (200, {"target": "../outside"}), "readlink")
    eq(op(d, "x", {"op": "link", "from": "r.txt", "to": "hl"}).status, 200,
       "link")
    eq(os.stat(P("hl")).st_ino, os.stat(P("r.txt")).st_ino, "hard link")
    eq(op(d, "x", {"op": "unlink", "path": "hl"}).status, 200, "unlink")
    check(not os.path.exists(P("hl")), "unlinked")
    eq(op(d, "x", {"op": "unlink", "path": "hl"}).status, 404, "unlink missing")
    # FIFOs and sockets (exact mode: noxd's umask not applied); listed as
    # "other" with their "kind"; no kind makes a device node
    eq(op(d, "x", {"op": "mknod", "path": "fifo", "mode": 0o666,
                   "kind": "fifo"}).status, 200, "mknod fifo")
    st = os.lstat(P("fifo"))
    check(stat.S_ISFIFO(st.st_mode), "a FIFO")
    eq(stat.S_IMODE(st.st_mode), 0o666, "FIFO mode")
    eq(op(d, "x", {"op": "mknod", "path": "sock", "kind": "socket"}).status,
       200, "mknod socket")
    check(stat.S_ISSOCK(os.lstat(P("sock")).st_mode), "a socket")
    r = op(d, "x", {"op": "mknod", "path": "fifo", "kind": "fifo"})
    eq((r.status, r.json()["errno"]), (409, "EEXIST"), "mknod existing")
    for kind in ("chr", "blk", "file", 3):
        r = op(d, "x", {"op": "mknod", "path": "dev", "mode": 0o600,
                        "kind": kind})
        eq(r.status, 400, "mknod kind %r refused" % (kind,))
    r = op(d, "x", {"op": "mknod", "path": "dev"})
    eq(r.status, 400, "mknod without a kind refused")
    check(not os.path.lexists(P("dev")), "no device node made")
    j = fs_get(d, "x", "stat", "fifo").json()
    eq((j["type"], j.get("kind")), ("other", "fifo"), "stat of a FIFO")
    kinds = {e["path"]: (e["type"], e.get("kind"))
             for e in fs_get(d, "x", "tree", "").json()["entries"]}
    eq(kinds["sock"], ("other", "socket"), "tree: a socket")
    eq(kinds["r.txt"], ("file", None), "tree: a file has no kind")
    eq(op(d, "x", {"op": "unlink", "path": "fifo"}).status, 200,
       "unlink a FIFO")
    # malformed requests
    for bad in ({"op": "frobnicate", "path": "a"}, {"path": "a"},
                {"op": "unlink"}, {"op": "unlink", "path": 5},
                {"op": "chmod", "path": "r.txt"},
                {"op": "chmod", "path": "r.txt", "mode": "755"},
                {"op": "truncate", "path": "r.txt", "size": -1},
                {"op": "rename", "from": "r.txt", "to": "q", "flags": 4},
                {"op": "create", "path": "c", "excl": "yes"},
                {"op": "utimens", "path": "r.txt", "atimeNs": -5}, [1, 2]):
        r = op(d, "x", bad)
        eq(r.status, 400, "malformed %r" % (bad,))
    eq(d.req("POST", FS % "x" + "op", b"{not json").status, 400, "bad json")
    eq(d.req("POST", FS % "x" + "op", b'{"op":"unlink","path":"r.txt"} x').status,
       400, "trailing garbage")


def ops(d, sid, body):
    return d.req("POST", FS % sid + "ops", body)


def test_fs_ops_batch():
    """POST fs/ops: every op runs, in order, one result each; one failing
    does not stop the next; a malformed op (or readlink, or none, or more
    than 500) fails the request before any runs; a path out of the
    workspace is refused like fs/op's."""
    d = Noxd()
    ws = setup(d)
    P = lambda p: os.path.join(ws, p)  # noqa
    for i in range(3):
        with open(P("b%d" % i), "w") as f:
            f.write("x")
    r = ops(d, "x", {"ops": [
        {"op": "unlink", "path": "b0"},
        {"op": "unlink", "path": "no-such"},
        {"op": "rename", "from": "b1", "to": "r1"},
        {"op": "chmod", "path": "r1", "mode": 0o600},
        {"op": "rmdir", "path": "dir"},
        {"op": "link", "from": "b2", "to": "l2"},
        {"op": "truncate", "path": "b2", "size": 0},
        {"op": "utimens", "path": "r1", "atimeNs": -2,
         "mtimeNs": 1000000000},
        {"op": "mknod", "path": "fifo", "mode": 0o644, "kind": "fifo"},
    ]})
    eq(r.status, 200, "ops")
    res = r.json()["results"]
    eq(len(res), 9, "one result per op")
    eq([x.get("errno") for x in res],
       [None, "ENOENT", None, None, "ENOTEMPTY", None, None, None, None],
       "results in order")
    check("error" in res[1] and res[1]["error"], "a failure says why")
    eq(os.path.exists(P("b0")), False, "unlink ran")
    eq(os.path.exists(P("r1")) and not os.path.exists(P("b1")), True,
       "rename ran after a failed op")
    eq(stat.S_IMODE(os.stat(P("r1")).st_mode), 0o600, "chmod ran")
    eq(os.stat(P("r1")).st_mtime, 1.0, "utimens ran")
    eq(os.path.isdir(P("dir")), True, "rmdir of a full dir refused")
    eq(os.stat(P("l2")).st_ino, os.stat(P("b2")).st_ino, "link ran")
    eq(os.path.getsize(P("l2")), 0, "truncate ran")
    eq(stat.S_ISFIFO(os.lstat(P("fifo")).st_mode), True, "mknod ran")
    # refused whole: nothing runs
    with open(P("keep"), "w") as f:
        f.write("k")
    for body, why in (
            ({"ops": [{"op": "unlink", "path": "keep"},
                      {"op": "bogus", "path": "a"}]}, "an unknown op"),
            ({"ops": [{"op": "unlink", "path": "keep"},
                      {"op": "readlink", "path": "dir/link"}]}, "readlink"),
            ({"ops": [{"op": "unlink", "path": "keep"},
                      {"op": "unlink", "path": "../etc/passwd"}]}, "'..'"),
            ({"ops": [{"op": "unlink", "path": "keep"},
                      {"op": "unlink", "path": "/etc/passwd"}]},
             "an absolute path"),
            ({"ops": [{"op": "unlink", "path": "keep"}, "unlink"]},
             "an op that is not an object"),
            ({"ops": [{"op": "unlink", "path": "keep"},
                      {"op": "mknod", "path": "dev", "kind": "block"}]},
             "a device node"),
            ({"ops": []}, "no ops"),
            ({"ops": [{"op": "unlink", "path": "keep"}] * 501}, "501 ops"),
            ({"ops": {"op": "unlink", "path": "keep"}}, "ops not an array"),
            ({}, "no 'ops'")):
        r = ops(d, "x", body)
        eq((r.status, r.json().get("errno")), (400, "EINVAL"), why)
        eq(os.path.exists(P("keep")), True, "nothing ran: " + why)
    # a symlink in the workspace pointing out: not followed (noxd's
    # confinement says EXDEV), and the host file keeps its mode
    before = os.stat("/etc/passwd").st_mode
    r = ops(d, "x", {"ops": [{"op": "chmod", "path": "etc-link/passwd",
                              "mode": 0o600}]})
    eq(r.status, 200, "chmod through a symlink: a result")
    eq(r.json()["results"][0].get("errno"), "EXDEV",
       "chmod through a symlink refused")
    eq(os.stat("/etc/passwd").st_mode, before, "host file untouched")
    eq(ops(d, "nope", {"ops": [{"op": "unlink", "path": "a"}]}).status, 404,
       "unknown sandbox")
    m = d.metrics()
    check(m[("noxd_requests_total", "fs_ops")] >= 3, "fs_ops counted")


def test_fs_confinement():
    d = Noxd()
    ws = setup(d)
    for p in ("../x", "/etc/passwd", "dir/../../x", "a//b", "dir/"):
        r = fs_get(d, "x", "stat", p)
        eq(r.status, 400, "stat %r" % p)
    # through a symlink that points out of the workspace
    r = fs_get(d, "x", "file", "etc-link/passwd")
    check(r.status in (400, 403, 404), "read via symlink: %r" % r)
    check(b"root:" not in r.body, "host file leaked")
    eq(fs_get(d, "x", "list", "etc-link").status // 100, 4, "list via symlink")
    r = op(d, "x", {"op": "create", "path": "etc-link/noxd-test-evil"})
    check(r.status // 100 == 4, "create via symlink: %r" % r)
    check(not os.path.exists("/etc/noxd-test-evil"), "escaped!")
    r = op(d, "x", {"op": "mkdir", "path": "../escape"})
    eq(r.status, 400, "mkdir ..")
    check(not os.path.exists(os.path.join(ws, "..", "escape")), "escaped mkdir")


def test_statfs():
    d = Noxd()
    setup(d)
    r = fs_get(d, "x", "statfs")
    eq(r.status, 200, "statfs")
    j = r.json()
    eq(sorted(j), sorted(["bsize", "frsize", "blocks", "bfree", "bavail",
                          "files", "ffree", "namemax"]), "statfs keys")
    check(j["namemax"] > 0 and j["blocks"] > 0, "values %r" % j)
    eq(fs_get(d, "nope", "statfs").status, 404, "statfs unknown sandbox")


def procs_with(needle):
    out = []
    for d in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if d.isdigit() and needle in f.read():
                    out.append(d)
        except OSError:
            pass
    return out


def exec_then_hang_up(d, sid, secs):
    """Sends POST exec of a command of secs seconds (two sleeps, one in
    the background) on a raw connection, closes it once the command
    runs; returns (seconds until its processes are gone after the close,
    or None when still there after 20 s)."""
    mark = ("%d.%d%d" % (secs, os.getpid(), int(time.time() * 1000) % 100000))
    body = json.dumps({"cmd": ["sh", "-c", "sleep %s & sleep %s; wait"
                               % (mark, mark)]}).encode()
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"POST /v1/sandboxes/%s/exec HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n"
              b"\r\n" % (sid.encode(), len(body)) + body)
    t_end = time.time() + 20
    while not procs_with(mark.encode()) and time.time() < t_end:
        time.sleep(0.05)
    check(procs_with(mark.encode()), "the command started")
    s.close()
    t0 = time.time()
    while time.time() - t0 < 20:
        if not procs_with(mark.encode()):
            return time.time() - t0
        time.sleep(0.02)
    return None


def test_exec_cancel():
    """nox.cancel: a client that closes its connection while its exec
    runs stops the command, its whole tree, within a second; noxd lives
    on and serves the next request.  --v1-only keeps running it, as a
    plain v1 server does."""
    d = Noxd()
    eq(d.create("c").status, 200, "create")
    t = exec_then_hang_up(d, "c", 60)
    check(t is not None and t < 1.0, "tree gone within 1 s (%r)" % t)
    eq(d.exec("c", ["echo", "on"]).json()["stdout"], "on\n", "next exec")
    check("the client went away" in d.logtext(), "noxd logged why")
    v = Noxd("--v1-only")
    eq(v.create("c").status, 200, "create")
    t = exec_then_hang_up(v, "c", 3)
    check(t is not None and t > 1.5, "--v1-only: ran on to its end (%r)" % t)


def test_v1_only():
    d = Noxd("--v1-only")
    eq(d.req("GET", "/v1/extensions").status, 404, "extensions off")
    eq(d.create("v").status, 200, "create works")
    eq(d.exec("v", ["echo", "hi"]).json()["stdout"], "hi\n", "exec works")
    for m, p in (("GET", "/v1/sandboxes"), ("GET", "/v1/sandboxes/v"),
                 ("GET", FS % "v" + "stat?path="), ("GET", FS % "v" + "list"),
                 ("GET", FS % "v" + "tree"), ("GET", FS % "v" + "file?path=a"),
                 ("PUT", FS % "v" + "file?path=a"), ("POST", FS % "v" + "op"),
                 ("POST", FS % "v" + "ops"),
                 ("GET", FS % "v" + "statfs")):
        r = d.req(m, p)
        eq(r.status, 404, "%s %s with --v1-only" % (m, p))
    m = d.metrics()
    eq(m[("noxd_requests_total", "exec")], 1, "metrics with --v1-only")


if __name__ == "__main__":
    need_bwrap()
    run([test_discovery, test_sandboxes, test_stat_list_tree,
         test_non_utf8_names, test_tree_pages, test_file_read_ranges,
         test_file_write, test_fs_ops, test_fs_ops_batch,
         test_fs_confinement, test_statfs, test_exec_cancel,
         test_v1_only])
