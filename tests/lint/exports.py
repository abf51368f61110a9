#!/usr/bin/env python3
"""Checks that libnox.so exports exactly the functions of its installed headers.

The dynamic symbols of the built library (nm -D --defined-only) must equal the
functions declared in the headers meson installs (meson-info's
intro-installed.json), both ways: a private helper that leaks into the ABI
fails, and so does a public declaration that src/lib/nox.map forgot.

usage: exports.py LIBNOX_SO BUILD_ROOT
"""
import json
import os
import re
import subprocess
import sys


def strip_c(text):
    """The header without comments, preprocessor lines and string bodies."""
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    text = re.sub(r'//[^\n]*', ' ', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    out = []
    cont = False
    for line in text.split('\n'):
        if cont or line.lstrip().startswith('#'):
            cont = line.rstrip().endswith('\\')
            continue
        out.append(line)
    return '\n'.join(out)


def declared_functions(text):
    """Names of the functions a header declares at file scope.

    Splits the file-scope text into statements on ';' (outside braces) and
    keeps each statement that is not a typedef and whose declarator is a
    name followed by '(': a prototype.  Structs, enums, function-pointer
    typedefs ("(*name)(") and extern "C" blocks give nothing.
    """
    text = strip_c(text)
    # extern "C" { ... } wraps the whole header under C++: unwrap it.
    text = re.sub(r'extern\s*""\s*\{', ' ', text)
    names = []
    depth = 0
    stmt = []
    for ch in text:
        if ch == '{':
            depth += 1
        elif ch == '}':
            depth = max(depth - 1, 0)
        if depth == 0 and ch in ';}':
            s = ''.join(stmt)
            stmt = []
            if ch == ';':
                names += prototype_name(s)
            continue
        if depth == 0:
            stmt.append(ch)
    return names


def prototype_name(stmt):
    stmt = re.sub(r'__attribute__\s*\(\(.*\)\)', ' ', stmt, flags=re.S)
    stmt = stmt.strip()
    if not stmt or re.match(r'typedef\b', stmt):
        return []
    m = re.match(r'[\w\s\*]*?\b([A-Za-z_]\w*)\s*\(', stmt)
    if not m:
        return []
    return [m.group(1)]


def installed_headers(build_root):
    path = os.path.join(build_root, 'meson-info', 'intro-installed.json')
    with open(path) as f:
        installed = json.load(f)
    return sorted(src for src, dest in installed.items()
                  if src.endswith('.h') and '/include/nox/' in dest)


def exported(so):
    out = subprocess.run(['nm', '-D', '--defined-only', so], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, name = parts[1], parts[2].split('@')[0]
        # the version node itself (type A, "NOX_0") is not a symbol
        if kind == 'A':
            continue
        names.add(name)
    return names


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    so, build_root = sys.argv[1], sys.argv[2]
    headers = installed_headers(build_root)
    failed = 0
    passed = 0
    if not headers:
        print('FAIL: no installed headers under include/nox/ in meson-info')
        print('0 passed, 1 failed')
        return 1
    public = {}
    for h in headers:
        with open(h) as f:
            for name in declared_functions(f.read()):
                public[name] = os.path.basename(h)
    if len(public) < 10:
        # a parser that finds nothing would let every export "leak"
        print('FAIL: only %d declarations found in %s' % (len(public), headers))
        print('0 passed, 1 failed')
        return 1
    syms = exported(so)
    leaked = sorted(syms - set(public))
    missing = sorted(set(public) - syms)
    for name in leaked:
        print('FAIL: %s is exported by %s but declared in no installed '
              'header (drop it from src/lib/nox.map)'
              % (name, os.path.basename(so)))
    for name in missing:
        print('FAIL: %s is declared in nox/%s but not exported (add it to '
              'src/lib/nox.map)' % (name, public[name]))
    if leaked:
        failed += 1
    else:
        passed += 1
    if missing:
        failed += 1
    else:
        passed += 1
    bad = sorted(n for n in public if not n.startswith('nox_'))
    for name in bad:
        print('FAIL: public function %s lacks the nox_ prefix' % name)
    if bad:
        failed += 1
    else:
        passed += 1
    print('%d public functions in %d headers, %d exported symbols' %
          (len(public), len(headers), len(syms)))
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
