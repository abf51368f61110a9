#!/usr/bin/env python3
# posix.py - POSIX conformance checks for noxfs, compared with ext4.
#
#   posix.py run DIR OUT      runs every check in DIR (as root), writes
#                             "rule<TAB>check<TAB>result" lines to OUT
#   posix.py compare REF GOT BACKEND EXPECT
#                             compares GOT with REF (ext4) check by check;
#                             a difference fails unless EXPECT lists it for
#                             BACKEND; prints one TAP-like line per rule
#                             with its pass count, and every difference
#
# A result is what a call gave (an errno name, a mode, a link count,
# "changed"/"same" for a timestamp), never a raw time or inode number, so
# two file systems compare.  Other users are children that fork and take
# uid 1001 (A) or 1002 (B) with no supplementary groups.
#
# Rules covered (the "rule" column):
#   types   every file type (regular, dir, symlink, fifo, socket; char and
#           block device as root): made, seen with its type, chmod, chown,
#           link, rename, unlink/rmdir; mknod of each by a non-root user
#   sticky  a 1777 directory: unlink, rmdir, rename from and rename over
#           another user's entry of every type (EPERM), by the owner of
#           the entry and of the directory (allowed)
#   setid   a write, append and truncate by a non-owner of a setuid /
#           setgid file (accepted, bits cleared as ext4 does; setgid
#           without group-exec kept); a write by the owner and by root;
#           chown by root clearing them; chmod by an owner outside the
#           file's group dropping S_ISGID; chmod by a non-owner (EPERM)
#   times   ctime and link counts after link, unlink, rename, chown,
#           chmod and truncate; a directory's link count after mkdir and
#           rmdir; mtime of a directory after an entry is made
#   open    O_CREAT|O_EXCL on an existing name (EEXIST), O_DIRECTORY on a
#           file (ENOTDIR), O_NOFOLLOW on a symlink (ELOOP), O_TRUNC
#           without write permission, EACCES for another uid (read, write,
#           search, create in a directory without write), EISDIR for a
#           write open of a directory, ENOTDIR through a file component,
#           ENAMETOOLONG, FIFO opens (O_NONBLOCK reader, ENXIO writer),
#           socket open (ENXIO), device open
#
# Limits: Linux only (fork, setuid, mknod); run as root.
import errno
import fnmatch
import os
import socket
import stat
import sys
import time

A, B = 1001, 1002
TYPES = ['reg', 'dir', 'symlink', 'fifo', 'sock', 'chr', 'blk']
OUT = []


def rec(rule, name, value):
    OUT.append((rule, name, str(value)))


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def tryit(fn):
    """fn's result ('ok' for None) or the errno name it raised."""
    try:
        v = fn()
    except OSError as e:
        return ename(e)
    return 'ok' if v is None else v


def as_user(uid, fn, gid=None):
    """tryit(fn) in a child running as uid (gid: uid's own)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(uid if gid is None else gid)
            os.setuid(uid)
            os.write(w, str(tryit(fn)).encode())
        except BaseException as e:  # noqa: B902 - the child must exit
            os.write(w, ('child: %r' % e).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    data = b''
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return data.decode()


def make(path, t, mode=0o644):
    if t == 'reg':
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
    elif t == 'dir':
        os.mkdir(path, mode | 0o111)
    elif t == 'symlink':
        os.symlink('target-' + path, path)
    elif t == 'fifo':
        os.mkfifo(path, mode)
    elif t == 'sock':
        s = socket.socket(socket.AF_UNIX)
        try:
            s.bind(path)  # relative: cwd is the test dir (108-byte limit)
        finally:
            s.close()
    elif t == 'chr':
        os.mknod(path, mode | stat.S_IFCHR, os.makedev(1, 3))
    elif t == 'blk':
        os.mknod(path, mode | stat.S_IFBLK, os.makedev(7, 200))


def remove(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        for n in os.listdir(path):
            remove(os.path.join(path, n))
        os.rmdir(path)
    else:
        os.unlink(path)


def typename(path):
    try:
        m = os.lstat(path).st_mode
    except OSError as e:
        return ename(e)
    for t, f in (('reg', stat.S_ISREG), ('dir', stat.S_ISDIR),
                 ('symlink', stat.S_ISLNK), ('fifo', stat.S_ISFIFO),
                 ('sock', stat.S_ISSOCK), ('chr', stat.S_ISCHR),
                 ('blk', stat.S_ISBLK)):
        if f(m):
            return t
    return '?'


def lmode(path):
    return '%o' % stat.S_IMODE(os.lstat(path).st_mode)


def owner(path):
    st = os.lstat(path)
    return '%d:%d' % (st.st_uid, st.st_gid)


def rm(path):
    if stat.S_ISDIR(os.lstat(path).st_mode):
        os.rmdir(path)
    else:
        os.unlink(path)


def ctime(path):
    return os.lstat(path).st_ctime_ns


def tick():
    # past the file system's timestamp granularity
    time.sleep(0.02)


def changed(path, fn, after=None):
    """ctime of path 'changed' or 'same' by fn (then at after, if given)."""
    before = ctime(path)
    tick()
    r = tryit(fn)
    if r != 'ok':
        return r
    return 'changed' if ctime(after or path) != before else 'same'


# ---- rules ---------------------------------------------------------------

def rule_types():
    os.mkdir('types')
    for t in TYPES:
        p = 'types/' + t
        rec('types', t + ' made', tryit(lambda: make(p, t)))
        rec('types', t + ' type', typename(p))
        if t != 'symlink':
            rec('types', t + ' chmod 600',
                tryit(lambda: os.chmod(p, 0o600)))
            rec('types', t + ' mode', tryit(lambda: lmode(p)))
        rec('types', t + ' lchown A',
            tryit(lambda: os.lchown(p, A, A)))
        rec('types', t + ' owner', tryit(lambda: owner(p)))
        rec('types', t + ' link',
            tryit(lambda: os.link(p, p + '.l', follow_symlinks=False)))
        rec('types', t + ' nlink', tryit(lambda: os.lstat(p).st_nlink))
        rec('types', t + ' link by B (protected_hardlinks)',
            as_user(B, lambda: os.link(p, p + '.lb',
                                       follow_symlinks=False)))
        rec('types', t + ' rename', tryit(lambda: os.rename(p, p + '.r')))
        rec('types', t + ' renamed type', typename(p + '.r'))
        if t != 'dir':
            rec('types', t + ' unlink link',
                tryit(lambda: os.unlink(p + '.l')))
            rec('types', t + ' nlink after unlink',
                tryit(lambda: os.lstat(p + '.r').st_nlink))
        rec('types', t + ' remove', tryit(lambda: rm(p + '.r')))
        rec('types', t + ' gone', typename(p + '.r'))
        if t != 'dir' and t != 'symlink' and t != 'sock':
            rec('types', t + ' mknod by B',
                as_user(B, lambda: os.mknod(
                    'types/b-' + t, 0o644 | {
                        'reg': stat.S_IFREG, 'fifo': stat.S_IFIFO,
                        'chr': stat.S_IFCHR, 'blk': stat.S_IFBLK}[t],
                    os.makedev(1, 3))))
    rec('types', 'sock made by B',
        as_user(B, lambda: make('types/b-sock', 'sock')))
    rec('types', 'sock by B owner', tryit(lambda: owner('types/b-sock')))


def rule_sticky():
    os.mkdir('sticky')
    os.chmod('sticky', 0o1777)
    os.mkdir('sticky-b')  # a sticky directory that B owns
    os.chmod('sticky-b', 0o1777)
    os.chown('sticky-b', B, B)
    for t in TYPES:
        p = 'sticky/' + t
        r = tryit(lambda: make(p, t))
        rec('sticky', t + ' made', r)
        if r != 'ok':
            continue
        os.lchown(p, A, A)
        rm_fn = (lambda: os.rmdir(p)) if t == 'dir' else \
            (lambda: os.unlink(p))
        rec('sticky', t + ' removed by B', as_user(B, rm_fn))
        rec('sticky', t + ' renamed by B',
            as_user(B, lambda: os.rename(p, p + '.b')))
        # B's own entry of the same kind renamed over A's
        bp = 'sticky/b-' + t
        rec('sticky', t + ' B makes its own',
            as_user(B, lambda: make(bp, 'dir' if t == 'dir' else 'reg')))
        rec('sticky', t + ' renamed over by B',
            as_user(B, lambda: os.rename(bp, p)))
        rec('sticky', t + ' still A', tryit(lambda: owner(p)))
        rec('sticky', t + ' renamed by A',
            as_user(A, lambda: os.rename(p, p + '.a')))
        rec('sticky', t + ' removed by A',
            as_user(A, (lambda: os.rmdir(p + '.a')) if t == 'dir'
                    else (lambda: os.unlink(p + '.a'))))
        # in B's sticky directory, B may remove A's entry
        q = 'sticky-b/' + t
        if tryit(lambda: make(q, t)) != 'ok':
            continue
        os.lchown(q, A, A)
        rec('sticky', t + ' removed by the dir owner',
            as_user(B, (lambda: os.rmdir(q)) if t == 'dir'
                    else (lambda: os.unlink(q))))


def rule_setid():
    os.mkdir('setid')
    os.chmod('setid', 0o777)

    def f(name, mode, uid=0, gid=0):
        p = 'setid/' + name
        make(p, 'reg', 0o644)
        os.chown(p, uid, gid)
        os.chmod(p, mode)
        return p

    def write(p, flags=os.O_WRONLY):
        def fn():
            fd = os.open(p, flags)
            try:
                os.write(fd, b'x')
            finally:
                os.close(fd)
        return fn

    for mode in (0o4777, 0o2777, 0o6777, 0o2767, 0o6767):
        p = f('w%o' % mode, mode)
        rec('setid', 'write by B to %o' % mode, as_user(B, write(p)))
        rec('setid', 'mode after write by B to %o' % mode, lmode(p))
        p = f('a%o' % mode, mode)
        rec('setid', 'append by B to %o' % mode,
            as_user(B, write(p, os.O_WRONLY | os.O_APPEND)))
        rec('setid', 'mode after append by B to %o' % mode, lmode(p))
        p = f('t%o' % mode, mode)
        rec('setid', 'truncate by B of %o' % mode,
            as_user(B, lambda: os.truncate(p, 3)))
        rec('setid', 'mode after truncate by B of %o' % mode, lmode(p))
        rec('setid', 'size after truncate by B of %o' % mode,
            os.lstat(p).st_size)
    p = f('owner', 0o6755, A, A)
    rec('setid', 'write by the owner', as_user(A, write(p)))
    rec('setid', 'mode after write by the owner', lmode(p))
    p = f('root', 0o6777)
    rec('setid', 'write by root', tryit(write(p)))
    rec('setid', 'mode after write by root', lmode(p))
    p = f('nowrite', 0o6755)
    rec('setid', 'write by B without permission', as_user(B, write(p)))
    rec('setid', 'mode after a refused write', lmode(p))
    p = f('chown', 0o6755)
    rec('setid', 'chown by root', tryit(lambda: os.chown(p, A, A)))
    rec('setid', 'mode after chown by root', lmode(p))
    p = f('chown-sgid-nox', 0o2745)
    rec('setid', 'chown by root (setgid, no group-exec)',
        tryit(lambda: os.chown(p, A, A)))
    rec('setid', 'mode after chown by root (setgid, no group-exec)',
        lmode(p))
    p = f('chgrp', 0o6755)
    rec('setid', 'chgrp by root', tryit(lambda: os.chown(p, -1, A)))
    rec('setid', 'mode after chgrp by root', lmode(p))
    p = f('foreign-group', 0o755, A, 2000)
    rec('setid', 'chmod 2755 by an owner outside the group',
        as_user(A, lambda: os.chmod(p, 0o2755)))
    rec('setid', 'mode after chmod by an owner outside the group', lmode(p))
    p = f('own-group', 0o755, A, A)
    rec('setid', 'chmod 6755 by the owner in the group',
        as_user(A, lambda: os.chmod(p, 0o6755)))
    rec('setid', 'mode after chmod by the owner in the group', lmode(p))
    rec('setid', 'chmod by B (not the owner)',
        as_user(B, lambda: os.chmod(p, 0o755)))
    rec('setid', 'mode after chmod by B', lmode(p))
    rec('setid', 'chmod clearing set-id bits by B',
        as_user(B, lambda: os.chmod(p, 0o755)))
    os.mkdir('setid/d')
    os.chmod('setid/d', 0o2777)
    rec('setid', 'file made by B in a setgid dir',
        as_user(B, lambda: make('setid/d/f', 'reg')))
    rec('setid', 'its group (the directory\'s)', owner('setid/d/f'))
    rec('setid', 'dir made by B in a setgid dir inherits setgid',
        as_user(B, lambda: os.mkdir('setid/d/sub', 0o755)))
    rec('setid', 'its mode', lmode('setid/d/sub'))


def rule_times():
    os.mkdir('times')
    p = 'times/f'
    make(p, 'reg')
    rec('times', 'nlink new', os.lstat(p).st_nlink)
    rec('times', 'ctime after link',
        changed(p, lambda: os.link(p, 'times/g')))
    rec('times', 'nlink after link', os.lstat(p).st_nlink)
    rec('times', 'ctime after unlink of the other name',
        changed(p, lambda: os.unlink('times/g')))
    rec('times', 'nlink after unlink', os.lstat(p).st_nlink)
    rec('times', 'ctime after rename',
        changed(p, lambda: os.rename(p, 'times/h'), 'times/h'))
    p = 'times/h'
    rec('times', 'ctime after chown',
        changed(p, lambda: os.chown(p, A, A)))
    rec('times', 'ctime after chmod',
        changed(p, lambda: os.chmod(p, 0o600)))
    rec('times', 'ctime after truncate',
        changed(p, lambda: os.truncate(p, 10)))
    m = os.lstat(p).st_mtime_ns
    tick()
    os.truncate(p, 5)
    rec('times', 'mtime after truncate',
        'changed' if os.lstat(p).st_mtime_ns != m else 'same')
    rec('times', 'ctime after chmod to the same mode',
        changed(p, lambda: os.chmod(p, 0o600)))
    d = 'times'
    rec('times', 'dir nlink', os.lstat(d).st_nlink)
    rec('times', 'dir ctime after mkdir',
        changed(d, lambda: os.mkdir('times/sub')))
    rec('times', 'dir nlink after mkdir', os.lstat(d).st_nlink)
    m = os.lstat(d).st_mtime_ns
    tick()
    make('times/x', 'reg')
    rec('times', 'dir mtime after create',
        'changed' if os.lstat(d).st_mtime_ns != m else 'same')
    rec('times', 'dir ctime after rmdir',
        changed(d, lambda: os.rmdir('times/sub')))
    rec('times', 'dir nlink after rmdir', os.lstat(d).st_nlink)
    os.mkdir('times/s1')
    os.mkdir('times/s2')
    os.mkdir('times/s1/m')
    os.rename('times/s1/m', 'times/s2/m')
    rec('times', 'nlink of source dir after moving a subdir',
        os.lstat('times/s1').st_nlink)
    rec('times', 'nlink of target dir after moving a subdir',
        os.lstat('times/s2').st_nlink)
    for t in TYPES:
        q = 'times/t-' + t
        r = tryit(lambda: make(q, t))
        rec('times', t + ' made', r)
        if r != 'ok':
            continue
        if t != 'dir':
            rec('times', t + ' ctime after link',
                changed(q, lambda: os.link(q, q + '.l',
                                           follow_symlinks=False)))
            rec('times', t + ' nlink after link', os.lstat(q).st_nlink)
        rec('times', t + ' ctime after rename',
            changed(q, lambda: os.rename(q, q + '.r'), q + '.r'))
        q = q + '.r'
        rec('times', t + ' ctime after lchown',
            changed(q, lambda: os.lchown(q, A, A)))
        if t != 'symlink':
            rec('times', t + ' ctime after chmod',
                changed(q, lambda: os.chmod(q, 0o640)))


def rule_open():
    os.mkdir('open')
    os.chmod('open', 0o755)
    make('open/f', 'reg', 0o644)
    make('open/ro', 'reg', 0o444)
    os.chown('open/ro', A, A)
    make('open/priv', 'reg', 0o600)
    os.chown('open/priv', A, A)
    os.mkdir('open/d')
    os.mkdir('open/nox', 0o700)
    os.chown('open/nox', A, A)
    os.symlink('f', 'open/l')

    def o(path, flags, mode=0o644):
        def fn():
            os.close(os.open(path, flags, mode))
        return fn

    rec('open', 'O_CREAT|O_EXCL on existing',
        tryit(o('open/f', os.O_CREAT | os.O_EXCL | os.O_WRONLY)))
    rec('open', 'O_CREAT|O_EXCL on a symlink',
        tryit(o('open/l', os.O_CREAT | os.O_EXCL | os.O_WRONLY)))
    rec('open', 'O_CREAT on existing',
        tryit(o('open/f', os.O_CREAT | os.O_WRONLY)))
    rec('open', 'O_DIRECTORY on a file',
        tryit(o('open/f', os.O_RDONLY | os.O_DIRECTORY)))
    rec('open', 'O_DIRECTORY on a dir',
        tryit(o('open/d', os.O_RDONLY | os.O_DIRECTORY)))
    rec('open', 'O_NOFOLLOW on a symlink',
        tryit(o('open/l', os.O_RDONLY | os.O_NOFOLLOW)))
    rec('open', 'a symlink followed', tryit(o('open/l', os.O_RDONLY)))
    rec('open', 'O_TRUNC without write permission (B)',
        as_user(B, o('open/ro', os.O_RDONLY | os.O_TRUNC)))
    rec('open', 'O_TRUNC|O_WRONLY by the owner of a 0444 file',
        as_user(A, o('open/ro', os.O_WRONLY | os.O_TRUNC)))
    rec('open', 'O_RDONLY of a 0444 file by B',
        as_user(B, o('open/ro', os.O_RDONLY)))
    rec('open', 'read of a 0600 file by B',
        as_user(B, o('open/priv', os.O_RDONLY)))
    rec('open', 'write of a 0600 file by B',
        as_user(B, o('open/priv', os.O_WRONLY)))
    rec('open', 'read of a 0600 file by its owner',
        as_user(A, o('open/priv', os.O_RDONLY)))
    rec('open', 'search through a 0700 dir by B',
        as_user(B, lambda: os.stat('open/nox/x')))
    rec('open', 'create in a 0755 root dir by B',
        as_user(B, o('open/new', os.O_CREAT | os.O_WRONLY)))
    rec('open', 'write open of a dir',
        tryit(o('open/d', os.O_WRONLY)))
    rec('open', 'read-write open of a dir',
        tryit(o('open/d', os.O_RDWR)))
    rec('open', 'O_CREAT of a dir name',
        tryit(o('open/d', os.O_CREAT | os.O_WRONLY)))
    rec('open', 'ENOTDIR via a file component',
        tryit(o('open/f/x', os.O_RDONLY)))
    rec('open', 'O_CREAT via a file component',
        tryit(o('open/f/x', os.O_CREAT | os.O_WRONLY)))
    rec('open', 'missing name', tryit(o('open/missing', os.O_RDONLY)))
    rec('open', 'missing component',
        tryit(o('open/missing/x', os.O_CREAT | os.O_WRONLY)))
    rec('open', 'name of 255 bytes',
        tryit(o('open/' + 'n' * 255, os.O_CREAT | os.O_WRONLY)))
    rec('open', 'ENAMETOOLONG (256-byte name)',
        tryit(o('open/' + 'n' * 256, os.O_CREAT | os.O_WRONLY)))
    rec('open', 'ENAMETOOLONG (256-byte name, lookup)',
        tryit(lambda: os.stat('open/' + 'n' * 256)))
    rec('open', 'FIFO made', tryit(lambda: make('open/fifo', 'fifo')))
    rec('open', 'FIFO O_RDONLY|O_NONBLOCK',
        tryit(o('open/fifo', os.O_RDONLY | os.O_NONBLOCK)))
    rec('open', 'FIFO O_WRONLY|O_NONBLOCK without a reader',
        tryit(o('open/fifo', os.O_WRONLY | os.O_NONBLOCK)))

    def fifo_roundtrip():
        r = os.open('open/fifo', os.O_RDONLY | os.O_NONBLOCK)
        w = os.open('open/fifo', os.O_WRONLY | os.O_NONBLOCK)
        os.write(w, b'through')
        data = os.read(r, 100)
        os.close(w)
        os.close(r)
        return data.decode()
    rec('open', 'FIFO carries data', tryit(fifo_roundtrip))
    rec('open', 'socket made', tryit(lambda: make('open/sock', 'sock')))
    rec('open', 'open of a socket', tryit(o('open/sock', os.O_RDONLY)))

    def sock_roundtrip():
        s = socket.socket(socket.AF_UNIX)
        s.bind('open/live')
        s.listen(1)
        c = socket.socket(socket.AF_UNIX)
        c.connect('open/live')
        a, _ = s.accept()
        c.sendall(b'hello')
        data = a.recv(10)
        for x in (a, c, s):
            x.close()
        return data.decode()
    rec('open', 'socket carries data', tryit(sock_roundtrip))
    rec('open', 'char device made',
        tryit(lambda: make('open/null', 'chr', 0o666)))
    rec('open', 'open of a char device (1,3)',
        tryit(o('open/null', os.O_WRONLY)))


RULES = [('types', rule_types), ('sticky', rule_sticky),
         ('setid', rule_setid), ('times', rule_times), ('open', rule_open)]


def run(d, out):
    os.chdir(d)
    os.umask(0o022)
    for name, fn in RULES:
        try:
            fn()
        except OSError as e:
            rec(name, 'rule aborted', ename(e) + ' ' + str(e))
    with open(out, 'w') as f:
        for r in OUT:
            f.write('\t'.join(x.replace('\t', ' ').replace('\n', ' ')
                              for x in r) + '\n')
    return 0


def load(path):
    res = {}
    order = []
    with open(path) as f:
        for line in f:
            rule, name, val = line.rstrip('\n').split('\t')
            res[(rule, name)] = val
            order.append((rule, name))
    return res, order


def load_expect(path, backend):
    """(backend glob, rule, check glob, reason) lines for backend."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            parts = line.split('|')
            if len(parts) != 4:
                sys.exit('bad line in %s: %s' % (path, line))
            be, rule, check, reason = (p.strip() for p in parts)
            if fnmatch.fnmatchcase(backend, be):
                out.append((rule, check, reason))
    return out


def compare(ref_path, got_path, backend, expect_path):
    ref, order = load(ref_path)
    got, _ = load(got_path)
    expect = load_expect(expect_path, backend)
    used = set()
    per_rule = {}
    bad = 0
    for key in order:
        rule, name = key
        s = per_rule.setdefault(rule, [0, 0, 0])  # pass, expected, fail
        g = got.get(key, '(missing)')
        if g == ref[key]:
            s[0] += 1
            continue
        why = None
        for i, (er, ec, reason) in enumerate(expect):
            if er == rule and fnmatch.fnmatchcase(name, ec):
                why = reason
                used.add(i)
                break
        if why:
            s[1] += 1
            print('# %s: %s: ext4 %s, %s %s (expected: %s)' %
                  (rule, name, ref[key], backend, g, why))
        else:
            s[2] += 1
            bad += 1
            print('# DIFF %s: %s: ext4 %s, %s %s' %
                  (rule, name, ref[key], backend, g))
    for key in got:
        if key not in ref:
            bad += 1
            print('# DIFF %s: %s: only on %s' % (key[0], key[1], backend))
    for rule, (p, e, f) in per_rule.items():
        print('%s %s: %d of %d checks as ext4, %d documented differences, '
              '%d failed (%s)' % ('ok' if f == 0 else 'not ok', rule, p,
                                  p + e + f, e, f, backend))
    for i, (er, ec, reason) in enumerate(expect):
        if i not in used:
            bad += 1
            print('not ok stale expectation: %s | %s (%s) did not occur' %
                  (er, ec, reason))
    return 1 if bad else 0


def main():
    if len(sys.argv) == 4 and sys.argv[1] == 'run':
        return run(sys.argv[2], sys.argv[3])
    if len(sys.argv) == 6 and sys.argv[1] == 'compare':
        return compare(*sys.argv[2:])
    sys.exit(__doc__ or 'usage: posix.py run DIR OUT | compare REF GOT '
             'BACKEND EXPECT')


if __name__ == '__main__':
    sys.exit(main())
