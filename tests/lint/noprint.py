#!/usr/bin/env python3
"""Checks that libnox (src/lib) never prints, logs or exits outside log.c.

The library reports through struct nox_err; only log.c (nox_log, for the
programs) writes to stderr or syslog.  A call below that would print, log
or end the process is a failure unless ALLOWED names it with its reason.

usage: noprint.py SOURCE_ROOT
"""
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clex  # noqa: E402

# Calls that print, log or end the process whatever their arguments.
ALWAYS = [
    'printf', 'vprintf', 'puts', 'putchar', 'perror', 'psignal',
    'syslog', 'vsyslog', 'openlog',
    'exit', '_exit', '_Exit', 'quick_exit', 'abort', 'assert',
    'err', 'errx', 'verr', 'verrx', 'warn', 'warnx', 'vwarn', 'vwarnx',
    'error', 'error_at_line', 'nox_log', 'nox_log_errno',
]
# Calls that print when given the standard streams.
STREAM = ['fprintf', 'vfprintf', 'fputs', 'fputc', 'putc', 'fwrite',
          'fflush']
STREAM_ARG = re.compile(r'\b(stdout|stderr)\b')
# Calls that print when given descriptor 1 or 2 as first argument.
FD = ['write', 'dprintf', 'vdprintf', 'writev']
FD_ARG = re.compile(r'^\s*(1|2|STDOUT_FILENO|STDERR_FILENO)\s*$')

# (file, function, call): why the library may do it there.
ALLOWED = {
    ('sbx_exec.c', 'child_exec', '_exit'):
        'the forked child before execve: it must not return into the '
        'caller\'s code, and _exit is async-signal-safe',
    ('sbx_exec.c', 'child_fail', '_exit'):
        'the forked child reports its errno on the report pipe and ends',
}

CALL = re.compile(r'(?<![\w.>])(%s)\s*\(' %
                  '|'.join(map(re.escape, ALWAYS + STREAM + FD)))


def args_of(code, start):
    """The argument text of the call whose '(' is at start, split on
    top-level commas."""
    depth = 0
    args = ['']
    for ch in code[start:]:
        if ch == '(':
            depth += 1
            if depth == 1:
                continue
        elif ch == ')':
            depth -= 1
            if depth == 0:
                break
        if ch == ',' and depth == 1:
            args.append('')
        else:
            args[-1] += ch
    return args


def check_file(path, used):
    name = os.path.basename(path)
    with open(path) as f:
        code, _ = clex.split(f.read())
    code = clex.drop_preprocessor(code)
    owner = clex.functions_by_line(code)
    found = []
    for m in CALL.finditer(code):
        call = m.group(1)
        args = args_of(code, m.end() - 1)
        if call in STREAM and not STREAM_ARG.search(''.join(args)):
            continue
        if call in FD and not FD_ARG.match(args[0]):
            continue
        line = code.count('\n', 0, m.start()) + 1
        func = owner[line]
        key = (name, func, call)
        if key in ALLOWED:
            used.add(key)
            continue
        found.append('%s:%d: %s() in %s()' % (path, line, call, func))
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else '.'
    files = sorted(glob.glob(os.path.join(root, 'src', 'lib', '**', '*.[ch]'),
                           recursive=True))
    files = [f for f in files if os.path.basename(f) != 'log.c']
    if not files:
        print('FAIL: no sources under %s/src/lib' % root)
        print('0 passed, 1 failed')
        return 1
    used = set()
    failed = 0
    for path in files:
        for hit in check_file(path, used):
            print('FAIL: %s: libnox prints or exits outside log.c (fill '
                  'struct nox_err and return -errno instead)' % hit)
            failed += 1
    for key in sorted(set(ALLOWED) - used):
        # an entry that matches nothing hides the next real one: drop it
        print('FAIL: stale allow-list entry %s:%s():%s' % key)
        failed += 1
    print('%d files of src/lib checked, %d allowed calls' %
          (len(files), len(used)))
    print('%d passed, %d failed' % (1 if not failed else 0, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
