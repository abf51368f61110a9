#!/usr/bin/env python3
"""Many files over HTTP: peak memory of the noxfs daemon and of noxd.

    tools/bench/many.py [--files N] [--per-dir N] [--v1-only | --local]
                        [--opts O] [--keep]

Starts noxd on 127.0.0.1 (with --v1-only: no extensions) over a temp base
dir, mounts noxfs -o session=many on it (with --local: noxfs on the local
backend over the temp base dir, no noxd), lets a command in the sandbox
make N files (per-dir files in each directory, awk), then walks them
through the mount: find, and stat of every file.  Prints the time of each
step and the peak RSS (VmHWM of /proc/PID/status) of both processes, after
the find and at the end.  Not
part of the test suite (issue 15 item 5, issue 13: under 64 MiB each).
Every process started is stopped by PID and the temp dir removed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def wait_for(pred, what, timeout=30):
    t0 = time.time()
    while not pred():
        if time.time() - t0 > timeout:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stop(p):
    if p and p.poll() is None:
        p.terminate()
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    sys.stdout.reconfigure(line_buffering=True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=200000)
    ap.add_argument("--per-dir", type=int, default=1000)
    ap.add_argument("--v1-only", action="store_true")
    ap.add_argument("--local", action="store_true",
                    help="the local backend (no noxd)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--opts", default="",
                    help="more -o mount options (node_max=16384, ...)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="noxfs-many.")
    base, mnt, cache = (os.path.join(work, d) for d in ("base", "mnt", "cache"))
    for d in (base, mnt, cache):
        os.makedirs(d)
    noxd = fs = None
    try:
        if a.local:
            src = ["--local=" + base]
            opts = "session=many"
        else:
            pf = os.path.join(work, "port")
            args = [os.path.join(a.build, "tools/noxd/noxd"), "--listen", "127.0.0.1:0",
                    "--base-dir", base, "--port-file", pf, "--reap-interval", "0"]
            if a.v1_only:
                args.append("--v1-only")
            noxd = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                    stderr=open(os.path.join(work, "noxd.log"), "w"))
            wait_for(lambda: os.path.exists(pf) and open(pf).read().strip(), "noxd")
            src = ["--url", "http://127.0.0.1:" + open(pf).read().strip()]
            opts = f"session=many,cache_dir={cache}"
        if a.opts:
            opts += "," + a.opts
        fs = subprocess.Popen([os.path.join(a.build, "src/fs/noxfs")] + src + ["-f",
                               "-o", opts, mnt],
                              stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(work, "noxfs.log"), "w"))
        wait_for(lambda: os.path.exists(os.path.join(mnt, ".nox", "exec")), "the mount")
        dirs = (a.files + a.per_dir - 1) // a.per_dir
        script = ("mkdir t && cd t && for d in $(seq %d); do mkdir d$d && (cd d$d && "
                  "awk -v n=%d 'BEGIN { for (i = 1; i <= n; i++) { f = \"f\" i; "
                  "print i > f; close(f) } }') || exit 1; done" % (dirs, a.per_dir))
        t0 = time.time()
        with open(os.path.join(mnt, ".nox", "exec"), "w") as f:
            f.write(json.dumps({"cmd": ["sh", "-c", script], "timeoutSeconds": 3600}))
        st = open(os.path.join(mnt, ".nox", "status")).read().strip()
        if st != "0":
            raise RuntimeError(f"the command failed: {st}")
        make = time.time() - t0
        n = dirs * a.per_dir
        t0 = time.time()
        out = subprocess.run(f"find '{mnt}/t' | wc -l", shell=True, check=True,
                             capture_output=True, text=True).stdout.strip()
        tfind = time.time() - t0
        find_fs = status(fs.pid, "VmHWM")
        find_noxd = status(noxd.pid, "VmHWM") if noxd else 0
        t0 = time.time()
        sout = subprocess.run(f"find '{mnt}/t' -type f -print0 | xargs -0 stat -c %s -- "
                              "| wc -l", shell=True, check=True, capture_output=True,
                              text=True).stdout.strip()
        tstat = time.time() - t0
        hw_fs = status(fs.pid, "VmHWM")
        hw_noxd = status(noxd.pid, "VmHWM") if noxd else 0
        fds = len(os.listdir(f"/proc/{fs.pid}/fd"))
        backend = "local" if a.local else "noxd" + (" --v1-only" if a.v1_only else "")
        print(f"backend: {backend}; files: {n} in {dirs} dirs")
        print(f"make (command): {make:.1f} s")
        print(f"find: {tfind:.1f} s ({out} entries, want {n + dirs + 1}); peak RSS by then: "
              f"noxfs {find_fs / 1024:.1f} MiB, noxd {find_noxd / 1024:.1f} MiB")
        print(f"stat of all: {tstat:.1f} s ({sout} files)")
        print(f"peak RSS noxfs: {hw_fs / 1024:.1f} MiB")
        print(f"peak RSS noxd: {hw_noxd / 1024:.1f} MiB" if noxd else "noxd: none")
        print(f"noxfs descriptors at the end: {fds}")
        ok = out == str(n + dirs + 1) and sout == str(n)
        return 0 if ok else 1
    finally:
        if fs:
            subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
            stop(fs)
        stop(noxd)
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
