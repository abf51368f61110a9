#!/usr/bin/env python3
"""Checks that the functions comments cite still exist, and that every C
file opens with a comment.

A comment in src/, tools/ or include/ that cites `name()` (or a snake_case
`some_name(args)`) must name an identifier of the tree's C code
(src, tools, include, tests), one declared by a system header the tree
includes (preprocessed with the build's own flags from
compile_commands.json), or one of the few in ALLOWED.

usage: names.py SOURCE_ROOT BUILD_ROOT
"""
import glob
import json
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clex  # noqa: E402

CHECKED = ['src', 'tools', 'include']
KNOWN = ['src', 'tools', 'include', 'tests']

# Cited names that are neither in the tree nor in an included header.
ALLOWED = {
}

CITE = re.compile(r'(?<![\w.>/-])([A-Za-z_]\w*)\((?:\)|(?=[^)]))')


def c_files(root, dirs):
    out = []
    for d in dirs:
        out += glob.glob(os.path.join(root, d, '**', '*.[ch]'),
                         recursive=True)
    return sorted(out)


def cited(comment):
    """(offset, name) of each function a comment cites."""
    for m in CITE.finditer(comment):
        name = m.group(1)
        empty = comment[m.end() - 1:m.end()] == ')'
        if empty or '_' in name.strip('_'):
            yield m.start(), name


def compile_flags(build_root):
    """The compiler and the -I/-D/-std flags of the build, all units."""
    with open(os.path.join(build_root, 'compile_commands.json')) as f:
        units = json.load(f)
    cc = None
    flags = []
    for u in units:
        argv = u.get('arguments') or shlex.split(u['command'])
        cc = cc or argv[0]
        i = 1
        while i < len(argv):
            a = argv[i]
            if a in ('-I', '-isystem', '-D') and i + 1 < len(argv):
                a += argv[i + 1]
                i += 1
            if a.startswith('-I') or a.startswith('-isystem'):
                k = 2 if a.startswith('-I') else 8
                p = a[k:]
                if not os.path.isabs(p):
                    p = os.path.normpath(os.path.join(u['directory'], p))
                a = a[:k] + p
            if (a.startswith(('-I', '-isystem', '-D', '-std=')) or
                    a == '-pthread') and a not in flags:
                flags.append(a)
            i += 1
    return cc, flags


def system_names(root, build_root, files):
    """Identifiers declared or defined by the system headers the tree
    includes, one preprocessor run per header (some pairs conflict)."""
    headers = set()
    for path in files:
        with open(path) as f:
            for h in re.findall(r'^\s*#\s*include\s*<([^>]+)>', f.read(),
                                re.M):
                if not h.startswith('nox/'):
                    headers.add(h)
    cc, flags = compile_flags(build_root)
    flags = [f for f in flags if not f.startswith('-DFUSE_USE_VERSION')]
    names = set()
    bad = []
    for h in sorted(headers):
        src = '#define FUSE_USE_VERSION 312\n#include <%s>\n' % h
        r = subprocess.run([cc, '-E', '-dD', '-x', 'c', '-'] + flags,
                           input=src, capture_output=True, text=True)
        if r.returncode != 0:
            bad.append('%s: %s' % (h, r.stderr.strip()[:200]))
            continue
        names |= set(re.findall(r'\b[A-Za-z_]\w*', r.stdout))
    return names, sorted(headers), bad


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    root, build_root = sys.argv[1], sys.argv[2]
    known_files = c_files(root, KNOWN)
    idents = set()
    for path in known_files:
        with open(path) as f:
            code, _ = clex.split(f.read())
        idents |= set(re.findall(r'\b[A-Za-z_]\w*', code))
    checked = c_files(root, CHECKED)
    failed = 0
    unknown = []
    ncited = 0
    for path in checked:
        with open(path) as f:
            text = f.read()
        code, comments = clex.split(text)
        if text.lstrip()[:2] not in ('/*', '//'):
            print('FAIL: %s does not open with a comment saying what it '
                  'is' % path)
            failed += 1
        for line, body in comments:
            for off, name in cited(body):
                ncited += 1
                if name in idents or name in ALLOWED:
                    continue
                unknown.append((path, line + body.count('\n', 0, off),
                                name))
    sysnames = set()
    if unknown:
        sysnames, headers, bad = system_names(root, build_root, known_files)
        for b in bad:
            print('FAIL: cannot preprocess %s' % b)
            failed += 1
    for path, line, name in unknown:
        if name in sysnames:
            continue
        print('FAIL: %s:%d: a comment cites %s(), which is defined '
              'nowhere (stale name?)' % (path, line, name))
        failed += 1
    print('%d files checked, %d citations' % (len(checked), ncited))
    print('%d passed, %d failed' % (1 if not failed else 0, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
