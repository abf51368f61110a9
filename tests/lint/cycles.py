#!/usr/bin/env python3
"""tests/lint/cycles.py - no two modules call each other, directly or
round a longer loop (issue 12: inode.c and sandbox.c once did).

Usage: cycles.py BUILD_ROOT

Reads the objects of libnox_internal and noxfs_internal with nm: an
object's module is its source file, and the parts of one module split by
role (X_PART.c beside X.c, as OpenBSD httpd's server_http.c beside
server.c: cache_list.c, http_fs.c) count as X.  An edge A -> B is a
symbol A uses that B defines; any strongly connected set of more than one
module is reported with the symbols that make it.  Ends "N passed, N
failed".
"""
import glob
import os
import subprocess
import sys

LIBS = ["src/lib/libnox_internal.a.p", "src/fs/libnoxfs_internal.a.p"]


def module_of(objdir, obj, names):
    base = os.path.basename(obj).split(".c.o")[0]
    head = base.split("_")[0]
    return os.path.basename(objdir) + ":" + (head if head != base and head in names else base)


def graph(objdir):
    objs = sorted(glob.glob(os.path.join(objdir, "*.c.o")))
    names = {os.path.basename(o).split(".c.o")[0] for o in objs}
    defs, uses = {}, {}
    for o in objs:
        m = module_of(objdir, o, names)
        uses.setdefault(m, set())
        out = subprocess.run(["nm", o], capture_output=True, text=True,
                             check=True).stdout
        for line in out.splitlines():
            p = line.split()
            if len(p) == 3 and p[1] in "TDBR":
                defs[p[2]] = m
            elif len(p) == 2 and p[0] == "U":
                uses[m].add(p[1])
    edges = {m: {defs[s] for s in u if s in defs and defs[s] != m}
             for m, u in uses.items()}
    return defs, uses, edges


def sccs(edges):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    root = sys.argv[1]
    passed = failed = 0
    for lib in LIBS:
        objdir = os.path.join(root, lib)
        if not glob.glob(os.path.join(objdir, "*.c.o")):
            print(f"no objects in {objdir}")
            failed += 1
            continue
        defs, uses, edges = graph(objdir)
        bad = sccs(edges)
        for comp in bad:
            print("modules calling each other:", " ".join(comp))
            for a in comp:
                for b in comp:
                    if b in edges[a]:
                        syms = sorted(s for s in uses[a] if defs.get(s) == b)
                        print(f"  {a} -> {b}: {' '.join(syms[:6])}")
        if bad:
            failed += 1
        else:
            passed += 1
            print(f"{lib}: {len(edges)} modules, no cycle")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
