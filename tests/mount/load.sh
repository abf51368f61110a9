#!/usr/bin/env bash
# load.sh - 16 parallel clients on one noxfs mount for a bounded time
# (NOX_LOAD_SECONDS, default 20), on any backend (NOX_TEST_BACKEND).
# tools/soak.sh runs it for minutes on every backend (a benchmark, not a
# test: the suite keeps the same work mix, bounded).
#
# Each client is its own process with its own directory cN/ and a model
# of what it wrote (name -> sha256).  It does, at random: writes of new
# and existing files (0 B to 2 MiB), reads verified against the model,
# editor saves (write .tmp, rename over), renames onto other names,
# unlinks, listings compared with the model, and execs on its own open
# of .nox/exec (sha256sum of up to 3 of its files, compared with the
# model: the exec barrier under load).  All clients also race for 4
# token files in shared/: each moves shared/tJ to a name of its own,
# checks the content and moves it back; losing the race (ENOENT) is the
# only expected error, and at the end all 4 tokens must be back, intact.
# Any other error, a short read or a wrong byte is a failure.
#
# At the end: every client's files are compared with its model through
# the mount, on the backend directory and in the sandbox (one exec per
# client); the daemon log must hold no error line.
#
# Resources of the noxfs process (and noxd's on HTTP), sampled every
# 0.25 s from /proc/PID/status: peak VmRSS (and the kernel's own VmHWM)
# must stay below NOX_LOAD_RSS_MIB (default 128).
# File descriptors: counted in /proc/PID/fd before anything is created
# (the workspace root looked up and settled) and again after every file
# and directory the load made has been removed through the mount.  An
# unlinked or removed node has no name left, so the kernel drops its
# dentry and evicts the inode, which sends FUSE_FORGET; a node the daemon
# still holds after that is a leak, not a cache.  (Dropping the page and
# dentry caches would also force FORGETs, but it is machine-wide and
# would disturb the other tests.)  Descriptors of files and directories
# must come back to the first count within 20 s; pipes (libfuse's
# per-thread splice pipes) may grow with the worker threads, at most 2
# per thread; sockets (the HTTP backend's keep-alive pool) must stay
# below 64.  Each figure is printed.
#
# Limits: timing-dependent only in how much work gets done; the figures
# are printed as "# load:" lines.
. "$(dirname "$0")/lib.sh"
nt_require sha256sum
nt_init
nt_workspace load1
LD="$NT_TMP/ld.py"
SECS=${NOX_LOAD_SECONDS:-20}
RSS_MIB=${NOX_LOAD_RSS_MIB:-128}
# Under AddressSanitizer the quarantine (256 MiB by default) and shadow
# memory dominate RSS; the 128 MiB bound is the plain build's, checked by
# the plain pass of the suite.  An ASan build gets a bound that still
# catches unbounded growth.
if [ -z "${NOX_LOAD_RSS_MIB:-}" ] &&
	ldd "$NOX_BUILD_ROOT/src/fs/noxfs" 2>/dev/null | grep -q libasan; then
	RSS_MIB=768
fi
NW=16

cat >"$LD" <<'PY'
"""ld.py - load.sh's clients, driver, sampler and checks."""
import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

MIB = 1 << 20
NOEXEC = os.environ.get("NOX_LOAD_NO_EXEC") == "1"  # diagnosis only


def h(b):
    return hashlib.sha256(b).hexdigest()


def exec_txn(ctl, cmd):
    fd = os.open(ctl, os.O_RDWR)
    try:
        req = json.dumps({"cmd": cmd, "timeoutSeconds": 60}).encode()
        n = os.write(fd, req)
        if n != len(req):
            raise RuntimeError("short exec write %d" % n)
        os.lseek(fd, 0, os.SEEK_SET)
        out = b""
        while True:
            c = os.read(fd, 1 << 16)
            if not c:
                break
            out += c
    finally:
        os.close(fd)
    return json.loads(out)


def read_all(p):
    with open(p, "rb") as f:
        return f.read()


def write_file(p, data, rng):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        off = 0
        while off < len(data):
            n = rng.choice((4096, 65536, 1 << 20))
            w = os.write(fd, data[off:off + n])
            if w <= 0:
                raise RuntimeError("write returned %d" % w)
            off += w
    finally:
        os.close(fd)


def worker(ws, i, secs, out):
    rng = random.Random(1000 + i)
    d = os.path.join(ws, "c%d" % i)
    ctl = os.path.join(ws, ".nox", "exec")
    model = {}
    ops = {}
    bad = []
    lost = 0
    ver = 0

    def count(k):
        ops[k] = ops.get(k, 0) + 1

    def payload():
        nonlocal ver
        ver += 1
        r = rng.random()
        size = (0 if r < 0.05 else rng.randint(1, 4096) if r < 0.5 else
                rng.randint(4096, 256 * 1024) if r < 0.95 else
                rng.randint(256 * 1024, 2 * MIB))
        head = ("c%d v%d\n" % (i, ver)).encode()
        return (head + rng.randbytes(max(0, size - len(head))))[:size] \
            if size >= len(head) else head[:size]

    t_end = time.monotonic() + secs
    while time.monotonic() < t_end:
        op = rng.random()
        name = "f%d" % rng.randrange(20)
        p = os.path.join(d, name)
        try:
            if op < 0.28:
                data = payload()
                write_file(p, data, rng)
                model[name] = h(data)
                count("write")
            elif op < 0.52:
                if not model:
                    continue
                name = rng.choice(sorted(model))
                got = h(read_all(os.path.join(d, name)))
                if got != model[name]:
                    bad.append("read %s: content differs from the model"
                               % name)
                count("read")
            elif op < 0.66:
                data = payload()
                tmp = os.path.join(d, "." + name + ".tmp")
                write_file(tmp, data, rng)
                os.rename(tmp, p)
                model[name] = h(data)
                count("save+rename")
            elif op < 0.75:
                if not model:
                    continue
                src = rng.choice(sorted(model))
                os.rename(os.path.join(d, src), p)
                if src != name:
                    model[name] = model.pop(src)
                count("rename")
            elif op < 0.80:
                if name not in model:
                    continue
                os.unlink(p)
                del model[name]
                count("unlink")
            elif op < 0.85:
                names = sorted(os.listdir(d))
                if names != sorted(model):
                    bad.append("listdir: %s, model %s" % (names,
                                                          sorted(model)))
                count("listdir")
            elif op < 0.95:
                if not model or NOEXEC:
                    continue
                pick = rng.sample(sorted(model), min(3, len(model)))
                r = exec_txn(ctl, ["sha256sum", "--"] +
                             ["c%d/%s" % (i, n) for n in pick])
                want = "".join("%s  c%d/%s\n" % (model[n], i, n)
                               for n in pick)
                if r["exitCode"] != 0 or r["stdout"] != want:
                    bad.append("exec sha256sum %s: exit %s stdout %r "
                               "stderr %r" % (pick, r["exitCode"],
                                              r["stdout"], r["stderr"]))
                count("exec")
            else:
                j = rng.randrange(4)
                a = os.path.join(ws, "shared", "t%d" % j)
                b = os.path.join(ws, "shared", "t%d.c%d" % (j, i))
                try:
                    os.rename(a, b)
                except FileNotFoundError:
                    lost += 1
                    count("token-lost")
                    continue
                try:
                    if read_all(b) != b"token %d\n" % j:
                        bad.append("token %d content %r" % (j, read_all(b)))
                finally:
                    os.rename(b, a)
                count("token")
        except Exception as e:  # every error is unexpected here
            en = getattr(e, "errno", None)
            bad.append("%s on %s: %s %r" % (
                "op%.2f" % op, name,
                errno.errorcode.get(en, en) if en else "", e))
            if len(bad) > 50:
                break
    with open(out, "w") as f:
        json.dump({"model": model, "ops": ops, "bad": bad,
                   "expected_errors": lost}, f)


def status(pid):
    v = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, rest = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    v[k] = int(rest.split()[0])
    except OSError:
        pass
    return v


def top_stack(pid, tid=None):
    p = "/proc/%d/task/%s/stack" % (pid, tid) if tid else \
        "/proc/%d/stack" % pid
    try:
        with open(p) as f:
            fr = [ln.split()[1].split("+")[0] for ln in f if ln.strip()]
    except (OSError, IndexError):
        return "?"
    return " < ".join(fr[:4])


def fds(pid):
    """Counts of pid's descriptors by kind, and its thread count."""
    k = {"path": 0, "pipe": 0, "socket": 0, "other": 0}
    paths = []
    d = "/proc/%d/fd" % pid
    for n in os.listdir(d):
        try:
            link = os.readlink(os.path.join(d, n))
        except OSError:
            continue
        kind = ("path" if link.startswith("/") else
                link.split(":")[0] if link.split(":")[0] in k else "other")
        k[kind] += 1
        if kind == "path":
            paths.append(link)
    k["threads"] = status(pid).get("Threads", 0)
    k["paths"] = sorted(paths)
    return k


def drive(ws, secs, nw, tmp, pids):
    pids = [int(p) for p in pids.split(",") if p]
    peak = {p: 0 for p in pids}
    thr = {p: 0 for p in pids}
    samples = 0
    stop = threading.Event()

    def sample():
        nonlocal samples
        while not stop.is_set():
            for p in pids:
                s = status(p)
                peak[p] = max(peak[p], s.get("VmRSS", 0))
                thr[p] = max(thr[p], s.get("Threads", 0))
            samples += 1
            stop.wait(0.25)
    st = threading.Thread(target=sample)
    st.start()
    procs = []
    t0 = time.monotonic()
    for i in range(nw):
        # not our stdout: a client stuck in the kernel must not keep
        # load.sh's command substitution open
        with open(os.path.join(tmp, "w%d.err" % i), "wb") as ef:
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "worker", ws, str(i), str(secs),
                 os.path.join(tmp, "w%d.json" % i)],
                stdin=subprocess.DEVNULL, stdout=ef, stderr=ef))
    hung = []
    for i, p in enumerate(procs):
        try:
            p.wait(timeout=max(1, secs + 120 - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            hung.append(i)
    stacks = {}
    if hung:
        # what the clients and the daemon's threads wait for (kernel)
        for i in hung:
            stacks["client %d" % i] = top_stack(procs[i].pid)
        for p in pids[:1]:
            for t in os.listdir("/proc/%d/task" % p):
                k = "noxfs thread: " + top_stack(p, t)
                stacks[k] = stacks.get(k, 0) + 1
        for i in hung:
            procs[i].kill()  # dies once load.sh aborts the connection
    wall = time.monotonic() - t0
    stop.set()
    st.join()
    res = {"wall": wall, "hung": hung, "samples": samples, "peak": {},
           "threads": {}, "hwm": {}, "stacks": stacks}
    for p in pids:
        res["peak"][str(p)] = peak[p]
        res["threads"][str(p)] = thr[p]
        res["hwm"][str(p)] = status(p).get("VmHWM", 0)
    with open(os.path.join(tmp, "drive.json"), "w") as f:
        json.dump(res, f)


def summary(tmp, nw):
    ops, bad, lost, missing = {}, [], 0, []
    for i in range(nw):
        try:
            with open(os.path.join(tmp, "w%d.json" % i)) as f:
                r = json.load(f)
        except (OSError, ValueError) as e:
            missing.append("client %d: no result (%s)" % (i, e))
            continue
        for k, v in r["ops"].items():
            ops[k] = ops.get(k, 0) + v
        bad += ["client %d: %s" % (i, b) for b in r["bad"]]
        lost += r["expected_errors"]
    print(json.dumps({"ops": ops, "total": sum(ops.values()), "bad": bad,
                      "missing": missing, "expected_errors": lost}))


def verify(root, tmp, nw):
    """Every client's directory under root equals its model."""
    probs = []
    files = 0
    for i in range(nw):
        with open(os.path.join(tmp, "w%d.json" % i)) as f:
            model = json.load(f)["model"]
        d = os.path.join(root, "c%d" % i)
        names = sorted(os.listdir(d))
        if names != sorted(model):
            probs.append("c%d lists %s, model %s" % (i, names,
                                                     sorted(model)))
        for n, s in model.items():
            try:
                if h(read_all(os.path.join(d, n))) != s:
                    probs.append("c%d/%s differs" % (i, n))
                files += 1
            except OSError as e:
                probs.append("c%d/%s: %s" % (i, n, e))
    print("OK %d" % files if not probs else "; ".join(probs[:20]))


def verify_exec(ctl, tmp, nw):
    probs = []
    for i in range(nw):
        with open(os.path.join(tmp, "w%d.json" % i)) as f:
            model = json.load(f)["model"]
        r = exec_txn(ctl, ["sh", "-c", 'cd "c$1" && for f in *; do '
                           '[ -e "$f" ] && sha256sum -- "$f"; done; true',
                           "sh", str(i)])
        got = {}
        for line in r["stdout"].splitlines():
            s, n = line.split("  ", 1)
            got[n] = s
        if r["exitCode"] != 0 or got != model:
            probs.append("c%d in the sandbox: exit %s, %d files, model %d"
                         % (i, r["exitCode"], len(got), len(model)))
    print("OK" if not probs else "; ".join(probs))


def tokens(shared):
    names = sorted(os.listdir(shared))
    want = ["t0", "t1", "t2", "t3"]
    if names != want:
        print("shared/ lists %s" % names)
        return
    for n in want:
        if read_all(os.path.join(shared, n)) != b"token %s\n" % n[1:].encode():
            print("%s content differs" % n)
            return
    print("OK")


def fdwait(pid, want, secs):
    """Polls until pid's file and directory fds <= want; prints fds()."""
    t_end = time.monotonic() + secs
    while True:
        k = fds(pid)
        if k["path"] <= want or time.monotonic() > t_end:
            print(json.dumps(k, sort_keys=True))
            return
        time.sleep(0.5)


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "worker":
        worker(a[1], int(a[2]), float(a[3]), a[4])
    elif a[0] == "drive":
        drive(a[1], float(a[2]), int(a[3]), a[4], a[5])
    elif a[0] == "summary":
        summary(a[1], int(a[2]))
    elif a[0] == "verify":
        verify(a[1], a[2], int(a[3]))
    elif a[0] == "verify-exec":
        verify_exec(a[1], a[2], int(a[3]))
    elif a[0] == "tokens":
        tokens(a[1])
    elif a[0] == "fds":
        print(json.dumps(fds(int(a[1])), sort_keys=True))
    elif a[0] == "fdwait":
        fdwait(int(a[1]), int(a[2]), float(a[3]))
PY

ld() { timeout -k 5 "$NT_T" python3 "$LD" "$@"; }

# A deadlocked mount cannot be unmounted and its daemon cannot exit (its
# threads sleep uninterruptibly in the kernel): abort this mount's FUSE
# connection (fusectl, mounted for that if it is not), so every waiter
# gets ENOTCONN and the cleanup can run.
nt_abort_conn() {
	local dev minor c=/sys/fs/fuse/connections
	dev=$(awk -v m="$NT_MNT" '$5 == m { print $3 }' /proc/self/mountinfo)
	minor=${dev#0:}
	[ -n "$dev" ] && [ "$minor" != "$dev" ] || return 0
	[ -d "$c/$minor" ] || mount -t fusectl fusectl "$c" 2>/dev/null
	nt_log "aborting FUSE connection $minor of $NT_MNT"
	echo 1 >"$c/$minor/abort" 2>/dev/null
	sleep 2
	timeout -k 2 15 fusermount3 -uz "$NT_MNT" 2>/dev/null
	nt_stop_pid "$NT_DPID"
	NT_DPID=""
}
pyget() { python3 -c 'import json,sys; print(eval(sys.argv[2], {}, json.loads(sys.argv[1])))' "$@"; }

# -- baseline: the workspace root is known, nothing of the load yet ------
ls -la "$W" >/dev/null
nt_exec true
sleep 2
fd0=$(ld fds "$NT_DPID")
nt_log "load: noxfs fds before: $fd0"

mkdir "$W/shared" || nt_die "mkdir shared"
for j in 0 1 2 3; do printf 'token %d\n' $j >"$W/shared/t$j"; done
for i in $(seq 0 $((NW - 1))); do mkdir "$W/c$i" || nt_die "mkdir c$i"; done

# -- the load ------------------------------------------------------------
pids=$NT_DPID
[ -n "$NT_NOXD_PID" ] && pids+=",$NT_NOXD_PID"
nt_log "load: $NW clients for $SECS s on $NT_BACKEND"
timeout -k 5 $((SECS + 240)) python3 "$LD" drive "$W" "$SECS" "$NW" \
	"$NT_TMP" "$pids" </dev/null >"$NT_TMP/drive.out" 2>&1
drv=$(cat "$NT_TMP/drive.json" 2>/dev/null)
[ -n "$drv" ] || { nt_abort_conn; nt_die "driver gave no result: \
$(tail -c 2000 "$NT_TMP/drive.out")"; }
nt_log "load: driver: $drv"
sum=$(python3 "$LD" summary "$NT_TMP" "$NW")
nt_log "load: operations: $(pyget "$sum" 'ops') total $(pyget "$sum" total)"
nt_log "load: expected errors (token race lost, ENOENT): $(pyget "$sum" \
	expected_errors)"
if [ "$(pyget "$drv" hung)" != "[]" ]; then
	nt_log "load: kernel stacks: $(pyget "$drv" stacks)"
	nt_fail "no client hung" "$NW clients for $SECS s" \
		"all done within $SECS + 120 s" "hung: $(pyget "$drv" hung) \
(kernel stacks above)"
	nt_abort_conn
	nt_finish
fi
nt_pass "no client hung"
nt_check_eq "every client reported" "[]" "$(pyget "$sum" missing)"
nt_check_eq "no unexpected error, short read or wrong byte" "[]" \
	"$(pyget "$sum" 'bad[:20]')"
nt_check "a real load ran (>= 50 operations per client)" \
	test "$(pyget "$sum" total)" -ge $((NW * 50))
nt_check "execs ran during the load" \
	test "$(pyget "$sum" 'ops.get("exec", 0)')" -ge "$NW"
nt_check "the token race was run" \
	test "$(pyget "$sum" 'ops.get("token", 0)')" -ge "$NW"

peak=$(pyget "$drv" "peak['$NT_DPID']")
hwm=$(pyget "$drv" "hwm['$NT_DPID']")
nt_log "load: noxfs peak VmRSS $((peak / 1024)) MiB ($peak kB, \
$(pyget "$drv" samples) samples), VmHWM $((hwm / 1024)) MiB, threads \
peak $(pyget "$drv" "threads['$NT_DPID']")"
nt_check "noxfs peak VmRSS < $RSS_MIB MiB (got $((peak / 1024)) MiB)" \
	test "$peak" -gt 0 -a "$peak" -lt $((RSS_MIB * 1024))
nt_check "noxfs VmHWM < $RSS_MIB MiB (got $((hwm / 1024)) MiB)" \
	test "$hwm" -gt 0 -a "$hwm" -lt $((RSS_MIB * 1024))
if [ -n "$NT_NOXD_PID" ]; then
	npeak=$(pyget "$drv" "peak['$NT_NOXD_PID']")
	nt_log "load: noxd peak VmRSS $((npeak / 1024)) MiB"
	nt_check "noxd peak VmRSS < $RSS_MIB MiB" \
		test "$npeak" -gt 0 -a "$npeak" -lt $((RSS_MIB * 1024))
fi

# -- content -------------------------------------------------------------
v=$(ld verify "$W" "$NT_TMP" "$NW")
nt_check_eq "every client's files as modelled, through the mount" OK \
	"${v%% *}" "$v"
nt_log "load: files verified at the end: ${v#OK }"
v=$(ld verify "$B" "$NT_TMP" "$NW")
nt_check_eq "every client's files as modelled, on the backend" OK \
	"${v%% *}" "$v"
nt_check_out "every client's files as modelled, in the sandbox" OK \
	ld verify-exec "$C/exec" "$NT_TMP" "$NW"
nt_check_out "all 4 tokens back in shared/, intact" OK ld tokens \
	"$W/shared"
nt_check_out "... also on the backend" OK ld tokens "$B/shared"

# -- descriptors ---------------------------------------------------------
nt_check "rm -rf everything the load made" rm -rf -- "$W/shared" \
	"$W"/c*
p0=$(pyget "$fd0" path)
fd1=$(ld fdwait "$NT_DPID" "$p0" 20)
nt_log "load: noxfs fds after removal: $fd1"
p1=$(pyget "$fd1" path)
# Every file and directory the load made is gone: a descriptor still open
# on one of them (a path below the workspace, or a deleted file) is a
# leak.  The workspace root itself may be held once or twice (the sandbox
# and, while the kernel keeps it, its root node), so it is not counted.
leak=$(python3 -c '
import json, sys
k = json.loads(sys.argv[1]); ws = sys.argv[2].rstrip("/")
print(" ".join(p for p in k["paths"]
               if p.endswith(" (deleted)") or p.startswith(ws + "/")))' "$fd1" "$B")
nt_check_eq "no descriptor left on a removed file or directory (path fds $p0 -> $p1)" \
	"" "$leak"
# libfuse gives each worker thread its own splice pipe pair: pipes follow
# the thread count (at most 64 workers), they are not per request.
pp=$(pyget "$fd1" pipe)
th=$(pyget "$fd1" threads)
nt_check "pipes <= 2 per thread + the base ones (got $pp, $th threads)" \
	test "$pp" -le $((2 * th + $(pyget "$fd0" pipe)))
nt_check "other fds unchanged" test "$(pyget "$fd1" other)" -le \
	"$(pyget "$fd0" other)"
sk=$(pyget "$fd1" socket)
nt_check "sockets bounded (< 64, got $sk)" test "$sk" -lt 64
nt_check_exec "mount still serves execs" 'echo alive' $'alive\n'
nt_finish
