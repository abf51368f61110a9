#!/usr/bin/env python3
"""nt.py - system-call level helpers for the noxfs mount tests.

Used by tests/mount/*.sh for what shell tools cannot do or cannot report
precisely: the errno of one call, renameat2 flags, O_EXCL, mmap, unlink of
an open file, and .nox/exec transactions on one open file.  Each
subcommand prints its result on stdout; the shell compares it.  Exit
status is 0 unless the helper itself was misused or a check inside it
failed (then a message says what).

Limits: Linux only (renameat2 through libc, falling back to the x86_64 /
aarch64 syscall numbers).
"""
import ctypes
import errno
import json
import os
import signal
import sys
import threading
import time

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def ename(e):
    return errno.errorcode.get(e, str(e))


def renameat2(a, b, flags):
    libc = ctypes.CDLL(None, use_errno=True)
    fa, fb = os.fsencode(a), os.fsencode(b)
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        rc = fn(AT_FDCWD, fa, AT_FDCWD, fb, ctypes.c_uint(flags))
    else:
        nr = {"x86_64": 316, "aarch64": 276}[os.uname().machine]
        rc = libc.syscall(nr, AT_FDCWD, fa, AT_FDCWD, fb,
                          ctypes.c_uint(flags))
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def write_all(fd, data):
    # One write call, as a tool's single write(2) would do.
    n = os.write(fd, data)
    if n != len(data):
        raise SystemExit(f"short write {n} of {len(data)}")


def op_write(path, data):
    fd = os.open(path, os.O_WRONLY)
    try:
        write_all(fd, data.encode())
    finally:
        os.close(fd)


def op_writefile(path, src):
    # As cat would: write until all is written or a write fails.
    with open(src, "rb") as fh:
        data = fh.read()
    fd = os.open(path, os.O_WRONLY)
    try:
        off = 0
        while off < len(data):
            off += os.write(fd, data[off:])
    finally:
        os.close(fd)


OPS = {
    "mkdir": lambda p: os.mkdir(p),
    "rmdir": lambda p: os.rmdir(p),
    "unlink": lambda p: os.unlink(p),
    "open": lambda p: os.close(os.open(p, os.O_RDONLY)),
    "creat": lambda p: os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)),
    "excl": lambda p: os.close(
        os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)),
    "rename": lambda a, b: os.rename(a, b),
    "symlink": lambda t, p: os.symlink(t, p),
    "link": lambda a, b: os.link(a, b),
    "noreplace": lambda a, b: renameat2(a, b, RENAME_NOREPLACE),
    "exchange": lambda a, b: renameat2(a, b, RENAME_EXCHANGE),
    "write": op_write,
    "writefile": lambda p, src: op_writefile(p, src),
    "listdir": lambda p: os.listdir(p),
    "truncate": lambda p, n: os.truncate(p, int(n)),
    "chmod": lambda p, m: os.chmod(p, int(m, 8)),
}


def cmd_errno(args):
    op = OPS[args[0]]
    try:
        op(*args[1:])
    except OSError as e:
        print(ename(e.errno))
        return 0
    print("OK")
    return 0


def cmd_unlink_open(args):
    """open, unlink, then write/read through the still-open fd."""
    p = args[0]
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    write_all(fd, b"before-unlink\n")
    os.unlink(p)
    if os.path.lexists(p):
        print("name still there after unlink")
        return 0
    write_all(fd, b"after-unlink\n")
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, 4096)
    st = os.fstat(fd)
    os.close(fd)
    if os.path.lexists(p):
        print("name came back after close")
        return 0
    print(f"{data!r} nlink={st.st_nlink}")
    return 0


def pattern(size, seed):
    out = bytearray()
    i = 0
    while len(out) < size:
        out += f"{seed}:{i:08d}\n".encode()
        i += 1
    return bytes(out[:size])


def cmd_pattern(args):
    sys.stdout.buffer.write(pattern(int(args[0]), args[1]))
    return 0


def cmd_mmap(args):
    """Writes pattern(size, seed) into a new file through a shared map."""
    import mmap
    p, size, seed = args[0], int(args[1]), args[2]
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, size)
    m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    m[:] = pattern(size, seed)
    m.flush()
    m.close()
    os.close(fd)
    print("OK")
    return 0


def exec_txn(ctl, req, seek=True):
    """One transaction on one open: write req, read the result."""
    fd = os.open(ctl, os.O_RDWR)
    try:
        t0 = time.monotonic()
        try:
            write_all(fd, req.encode())
        except OSError as e:
            return None, ename(e.errno), time.monotonic() - t0
        dt = time.monotonic() - t0
        if seek:
            os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks), "OK", dt
    finally:
        os.close(fd)


def cmd_exec_rw(args):
    """exec-rw CTL REQ [noseek]: prints the result JSON read back."""
    data, err, _ = exec_txn(args[0], args[1], len(args) < 3)
    if data is None:
        print(err)
        return 0
    sys.stdout.buffer.write(data)
    return 0


def cmd_exec_time(args):
    """exec-time CTL REQ: prints "ERRNO SECONDS EXITCODE"."""
    data, err, dt = exec_txn(args[0], args[1])
    code = "-"
    if data:
        try:
            code = json.loads(data)["exitCode"]
        except (ValueError, KeyError) as e:
            code = f"bad-json({e})"
    print(f"{err} {dt:.1f} {code}")
    return 0


def cmd_exec_par(args):
    """exec-par CTL N: N threads, each its own open; prints mismatches."""
    ctl, n = args[0], int(args[1])
    res = [None] * n

    def run(i):
        req = json.dumps({"cmd": ["sh", "-c",
                                  f"sleep 1; echo par-{i}; exit {i}"]})
        try:
            data, err, _ = exec_txn(ctl, req)
            res[i] = (err, json.loads(data) if data else None)
        except Exception as e:  # reported below
            res[i] = ("EXC", repr(e))

    th = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in th:
        t.start()
    for t in th:
        t.join(120)
    bad = []
    for i, r in enumerate(res):
        if r is None:
            bad.append(f"{i}: no result (hung?)")
        elif r[0] != "OK" or not isinstance(r[1], dict):
            bad.append(f"{i}: {r}")
        elif r[1].get("stdout") != f"par-{i}\n" or r[1].get("exitCode") != i:
            bad.append(f"{i}: got {r[1]}")
    print("OK" if not bad else "; ".join(bad))
    print(f"# {n} execs took {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0


def cmd_barrier_open(args):
    """barrier-open FILE CTL: data written to a still-open file is seen by
    a command run before close."""
    f, ctl = args[0], args[1]
    token = f"open-barrier-{os.getpid()}-{time.time()}"
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, token.encode())
        name = os.path.basename(f)
        req = json.dumps({"cmd": ["cat", name]})
        data, err, _ = exec_txn(ctl, req)
    finally:
        os.close(fd)
    if data is None:
        print(f"exec write failed {err}")
        return 0
    got = json.loads(data).get("stdout")
    print("OK" if got == token else f"command saw {got!r}, wrote {token!r}")
    return 0


def cmd_reread(args):
    """reread FILE CTL REQ: reads FILE on an fd kept open while REQ runs,
    then prints what the same fd reads from offset 0."""
    fd = os.open(args[0], os.O_RDONLY)
    try:
        os.read(fd, 65536)
        data, err, _ = exec_txn(args[1], args[2])
        if data is None:
            print(f"exec write failed {err}")
            return 0
        sys.stdout.buffer.write(os.pread(fd, 65536, 0))
    finally:
        os.close(fd)
    return 0


def cmd_json(args):
    """json FILE KEY: prints KEY of the JSON object in FILE (or ERR)."""
    raw = b""
    try:
        with open(args[0], "rb") as fh:
            raw = fh.read()
        obj = json.loads(raw)
    except (OSError, ValueError) as e:
        print(f"ERR {e}: {raw[:300]!r}")
        return 0
    v = obj.get(args[1], "<missing>") if isinstance(obj, dict) else "<!obj>"
    print(v if isinstance(v, str) else json.dumps(v))
    return 0


def cmd_fsync(args):
    """fsync FILE DATA: write, fsync, close; prints errno of each."""
    fd = os.open(args[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    write_all(fd, args[1].encode())
    os.fsync(fd)
    os.fdatasync(fd)
    os.close(fd)
    print("OK")
    return 0


def cmd_slowcopy(args):
    """slowcopy SRC DST DELAY: copies in 1 MiB writes, sleeping DELAY
    seconds between them, so the copy overlaps with other work."""
    src, dst, delay = args[0], args[1], float(args[2])
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with open(src, "rb") as fh:
        while True:
            b = fh.read(1 << 20)
            if not b:
                break
            off = 0
            while off < len(b):
                off += os.write(fd, b[off:])
            time.sleep(delay)
    os.close(fd)
    print("OK")
    return 0


def cmd_dropcache(args):
    """dropcache FILE...: drops the clean cached pages of these files only
    (so the next read goes to the file system), prints OK."""
    for p in args:
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    print("OK")
    return 0


def procs_with(needle, skip=()):
    """PIDs whose command line holds needle (bytes), but those in skip."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in skip:
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if needle in f.read():
                    out.append(int(d))
        except OSError:
            pass
    return out


def cmd_exec_intr(args):
    """exec-intr CTL MODE SEED SECS: starts a command that runs SECS
    seconds (a background and a foreground sleep named SECS.SEED, so the
    tree is two processes), in a child process: MODE json writes a JSON
    request with libc's write (no retry on EINTR) and SIGALRM (a handler:
    the write returns EINTR), then writes again on the same open; MODE
    kill writes it and gets SIGKILL; MODE shell is sh -c "echo 'sleep ..'
    > CTL" and gets SIGINT (the close is interrupted).  Once the command
    runs, signals the child.  Prints "RESULT RETRY T_RETURN T_GONE":
    RESULT the write's errno (json), or how the child ended; RETRY the
    errno of the second write (json; "-" else); T_RETURN seconds from the
    signal to the child's end; T_GONE seconds from the signal until no
    process of the command is left (99 if one is still there after 20 s).
    """
    ctl, mode, seed, secs = args[0], args[1], args[2], args[3]
    mark = f"{secs}.{seed}"
    script = f"sleep {mark} & sleep {mark}; wait"
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rd)
        code = 0
        try:
            if mode == "shell":
                os.execvp("sh", ["sh", "-c", f"echo '{script}' > '{ctl}'"])
            libc = ctypes.CDLL(None, use_errno=True)
            signal.signal(signal.SIGALRM, lambda *a: None)
            fd = os.open(ctl, os.O_RDWR)
            req = json.dumps({"cmd": ["sh", "-c", script]}).encode()
            n = libc.write(fd, req, len(req))
            e1 = "OK" if n == len(req) else ename(ctypes.get_errno())
            n = libc.write(fd, req, len(req))
            e2 = "OK" if n == len(req) else ename(ctypes.get_errno())
            os.write(wr, f"{e1} {e2}".encode())
        except BaseException as e:  # reported through the pipe
            os.write(wr, f"EXC-{type(e).__name__} -".encode())
            code = 1
        os._exit(code)
    os.close(wr)
    needle = mark.encode()
    t_end = time.monotonic() + 30
    while not procs_with(needle, (pid,)) and time.monotonic() < t_end:
        time.sleep(0.05)
    if not procs_with(needle, (pid,)):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print("NOT-STARTED - 99 99")
        return 0
    time.sleep(0.3)  # the writer is waiting in the kernel by now
    sig = {"json": signal.SIGALRM, "kill": signal.SIGKILL,
           "shell": signal.SIGINT}[mode]
    t0 = time.monotonic()
    os.kill(pid, sig)
    t_ret = 99.0
    status = None
    while time.monotonic() - t0 < 20:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            t_ret = time.monotonic() - t0
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    t_gone = 99.0
    while time.monotonic() - t0 < 20:
        if not procs_with(needle, (pid,)):
            t_gone = time.monotonic() - t0
            break
        time.sleep(0.02)
    said = os.read(rd, 256).decode().split() if mode == "json" else []
    os.close(rd)
    if mode == "json":
        res, retry = (said + ["-", "-"])[:2] if said else ("NONE", "-")
    elif status is None:
        res, retry = "HUNG", "-"
    elif os.WIFSIGNALED(status):
        res, retry = "SIG" + str(os.WTERMSIG(status)), "-"
    else:
        res, retry = "EXIT" + str(os.WEXITSTATUS(status)), "-"
    print(f"{res} {retry} {t_ret:.2f} {t_gone:.2f}")
    return 0


CMDS = {
    "errno": cmd_errno,
    "unlink-open": cmd_unlink_open,
    "pattern": cmd_pattern,
    "mmap": cmd_mmap,
    "exec-rw": cmd_exec_rw,
    "exec-time": cmd_exec_time,
    "exec-par": cmd_exec_par,
    "barrier-open": cmd_barrier_open,
    "reread": cmd_reread,
    "json": cmd_json,
    "fsync": cmd_fsync,
    "slowcopy": cmd_slowcopy,
    "dropcache": cmd_dropcache,
    "exec-intr": cmd_exec_intr,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in CMDS:
        sys.exit("usage: nt.py " + "|".join(CMDS) + " ARGS...")
    try:
        sys.exit(CMDS[sys.argv[1]](sys.argv[2:]))
    except OSError as e:
        print(f"{ename(e.errno)} ({e})")
        sys.exit(0)
