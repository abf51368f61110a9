#!/usr/bin/env bash
# posix.sh - POSIX conformance of a noxfs mount compared with ext4, check
# by check, plus locks and device nodes (issue 13).
#
# posix.py (the rules it covers are listed in its head: file types, sticky
# directories, set-id bits, ctime and link counts, open flags and errors)
# runs as root in a plain directory under TMPDIR (ext4 here) and in a
# workspace of a mount with -o allow_other,default_permissions, taking
# uids 1001 and 1002 for the other users.  Any difference fails, except
# those listed for the backend in expect.txt, each with its reason; an
# expectation that no longer occurs fails too.  One line per rule gives
# its pass count for the backend.
#
# Then, local backend: a host process's flock and fcntl (POSIX) lock taken
# through the mount refuses a command's (flock -n, python3 fcntl), which
# succeeds once released, and the reverse; a host sqlite transaction
# through the mount makes a command's write wait (issue 13's report); a device node made by root is
# refused to a command (the workspace is nodev in the sandbox), and mknod
# of one by root without CAP_MKNOD fails.  Over HTTP: locks are local to
# the mount (two host processes exclude each other through it; a command
# does not see them), mknod of a FIFO makes one in the sandbox and of a
# device node gives EPERM (docs/cache.md, docs/security.md).
#
# Needs root (other uids, device nodes), python3, flock and setpriv.
. "$(dirname "$0")/../mount/lib.sh"
nt_require flock setpriv mknod
[ "$(id -u)" = 0 ] || nt_skip "needs root (other uids, device nodes)"
python3 -c 'import sqlite3' 2>/dev/null || nt_skip "python3 has no sqlite3"
NT_SESSION=0
nt_init
HERE=$(cd "$(dirname "$0")" && pwd)
# uids 1001/1002 must reach the reference dir and the mount point
chmod 755 "$NT_TMP"
REF="$NT_TMP/ref"
mkdir -m 755 "$REF"
case $(stat -f -c %T "$REF") in
ext2/ext3) ;;
*) nt_skip "the reference directory $REF is not on ext4" ;;
esac

nt_workspace px "allow_other,default_permissions"
# (a chmod of the workspace root is not sent over HTTP: only if needed)
[ "$(stat -c %a "$W")" = 755 ] || chmod 755 "$W"
mkdir -m 755 "$W/posix"

# -- the rules, against ext4 ----------------------------------------------
timeout -k 5 300 python3 "$HERE/posix.py" run "$REF" "$NT_TMP/ref.txt" ||
	nt_die "posix.py on ext4 failed"
timeout -k 5 "$NT_T" python3 "$HERE/posix.py" run "$W/posix" \
	"$NT_TMP/got.txt" || nt_die "posix.py on the mount failed"
while IFS= read -r line; do
	case $line in
	"ok "*) nt_pass "${line#ok }" ;;
	"not ok "*) nt_fail "${line#not ok }" "posix.py compare" \
		"the same results as ext4" "see the DIFF lines above" ;;
	*) printf '%s\n' "$line" ;;
	esac
done < <(python3 "$HERE/posix.py" compare "$NT_TMP/ref.txt" \
	"$NT_TMP/got.txt" "$NT_BACKEND" "$HERE/expect.txt")

# -- locks ------------------------------------------------------------------
F="$W/lockfile"
: >"$F"
# hold_lock KIND: a host process holding an exclusive KIND (flock|fcntl)
# lock on F through the mount, until killed; sets HOLDER; waits until held
hold_lock() {
	rm -f "$NT_TMP/held"
	python3 -c '
import fcntl, os, sys, time
fd = os.open(sys.argv[2], os.O_RDWR)
if sys.argv[1] == "flock":
    fcntl.flock(fd, fcntl.LOCK_EX)
else:
    fcntl.lockf(fd, fcntl.LOCK_EX)
open(sys.argv[3], "w").close()
time.sleep(120)' "$1" "$F" "$NT_TMP/held" &
	HOLDER=$!
	for _ in $(seq 100); do
		[ -e "$NT_TMP/held" ] && return 0
		sleep 0.1
	done
	nt_die "the lock holder did not start"
}
release_lock() {
	kill "$HOLDER" 2>/dev/null
	wait "$HOLDER" 2>/dev/null
}
# the command's try of a non-blocking lock of KIND: prints 0 (got) or 1
FCNTL_TRY='python3 -c "import fcntl,os
fd = os.open(\"lockfile\", os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print(0)
except OSError:
    print(1)"'

if [ "$NT_BACKEND" = local ]; then
	hold_lock flock
	nt_check_exec "locks: a host flock through the mount refuses the \
command's flock -n" 'flock -n lockfile true; echo $?' $'1\n'
	nt_check_not "locks: and another host process's flock -n" \
		flock -n "$F" true
	release_lock
	nt_check_exec "locks: released, the command's flock -n succeeds" \
		'flock -n lockfile true; echo $?' $'0\n'
	hold_lock fcntl
	nt_check_exec "locks: a host fcntl lock through the mount refuses \
the command's" "$FCNTL_TRY" $'1\n'
	release_lock
	nt_check_exec "locks: released, the command's fcntl lock succeeds" \
		"$FCNTL_TRY" $'0\n'
	# the reverse: the command holds the lock while the host tries
	rm -f "$B/cmd-held"
	nt_exec 'flock -x lockfile sh -c ": > cmd-held; sleep 3"' &
	CMD=$!
	for _ in $(seq 100); do
		[ -e "$B/cmd-held" ] && break
		sleep 0.1
	done
	nt_check_not "locks: a command's flock refuses the host's flock -n \
through the mount" flock -n "$F" true
	nt_check "locks: the host's blocking flock gets it once the command \
ends" flock -w 30 "$F" true
	wait "$CMD"
	rm -f "$B/cmd-held"
	nt_exec 'python3 -c "import fcntl,os,time
fd = os.open(\"lockfile\", os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
open(\"cmd-held\", \"w\").close()
time.sleep(3)"' &
	CMD=$!
	for _ in $(seq 100); do
		[ -e "$B/cmd-held" ] && break
		sleep 0.1
	done
	nt_check_out "locks: a command's fcntl lock refuses the host's \
through the mount" 1 python3 -c '
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print(0)
except OSError:
    print(1)' "$F"
	wait "$CMD"
	# issue 13's report: a sqlite writer in a command ignored a host
	# transaction through the mount, whose commit then failed
	cat >"$W/sqlw.py" <<'EOF2'
import sqlite3, sys
c = sqlite3.connect("db", timeout=0)
try:
    c.execute("insert into t values(%s)" % sys.argv[1])
    c.commit()
    print("wrote")
except sqlite3.OperationalError as e:
    print("refused:", e)
EOF2
	nt_check_out "locks: sqlite: a command's write waits for a host's \
exclusive transaction through the mount, and both commits land" \
		$'refused: database is locked\ncommitted\nwrote\n[1, 3]' \
		python3 -c '
import sqlite3, sys
w = sys.argv[1]
c = sqlite3.connect(w + "/db", timeout=0, isolation_level=None)
c.execute("create table t(x)")
c.execute("BEGIN EXCLUSIVE")
c.execute("insert into t values(1)")
open(w + "/.nox/exec", "w").write("python3 sqlw.py 2\n")
print(open(w + "/.nox/stdout").read().strip())
c.execute("COMMIT")
print("committed")
open(w + "/.nox/exec", "w").write("python3 sqlw.py 3\n")
print(open(w + "/.nox/stdout").read().strip())
print(sorted(r[0] for r in c.execute("select x from t")))' "$W"
	# a blocked waiter is interrupted by a signal (EINTR reply)
	hold_lock flock
	# 80 blocked waiters (more than the session's 64 workers) leave the
	# mount serving other requests: each waits on a thread of its own
	WAITERS=()
	for _ in $(seq 80); do
		timeout -k 5 60 flock -x "$F" true &
		WAITERS+=($!)
	done
	sleep 1
	t0=$SECONDS
	nt_check_out "locks: 80 blocked waiters do not stop other requests" \
		hi sh -c "echo hi > '$W/other' && cat '$W/other'"
	nt_check_eq "locks: ... which are served at once" "within 5 s" \
		"within $((SECONDS - t0 <= 5 ? 5 : SECONDS - t0)) s"
	kill "${WAITERS[@]}" 2>/dev/null
	wait "${WAITERS[@]}" 2>/dev/null
	# (without the interrupt the killed waiter would stay until the
	# holder's 120 s end: the kernel waits for the reply of a sent request)
	t0=$SECONDS
	rc=$(timeout -s KILL 2 flock -x "$F" true >/dev/null 2>&1; echo $?)
	nt_check_eq "locks: a waiter killed while blocked goes at once" \
		"137 within 5 s" "$rc within $((SECONDS - t0 <= 5 ? 5 : \
SECONDS - t0)) s"
	release_lock

	# -- device nodes and nodev ----------------------------------------
	nt_check "devices: root makes a char device in the workspace" \
		mknod "$W/null" c 1 3
	chmod 666 "$W/null"
	nt_check_exec "devices: a command cannot open it (workspace nodev)" \
		'echo x > null 2>/dev/null; echo $?' $'2\n'
	nt_check_exec "devices: the command sees /workspace nodev" \
		'grep -c " /workspace .*nodev" /proc/self/mountinfo' $'1\n'
	nt_check_exec "devices: a command cannot make one" \
		'mknod made c 1 3 2>/dev/null; echo $?' $'1\n'
	nt_check_not "devices: root without CAP_MKNOD cannot make one" \
		setpriv --inh-caps=-mknod --bounding-set=-mknod \
		mknod "$W/nocap" c 1 3
	nt_check_not "devices: uid 1002 cannot make one" \
		setpriv --reuid=1002 --regid=1002 --clear-groups \
		mknod "$W/posix/byb" c 1 3
	nt_check "devices: a FIFO made through the mount is one for the \
command" test -p "$B/posix/open/fifo"
else
	hold_lock flock
	nt_check_not "locks (http): a host flock through the mount refuses \
another host process's flock -n through it" flock -n "$F" true
	nt_check_exec "locks (http): local to the mount, the command does \
not see it" 'flock -n lockfile true; echo $?' $'0\n'
	release_lock
	nt_check "locks (http): released, the host's flock -n succeeds" \
		flock -n "$F" true
	nt_check_out "mknod (http): a FIFO is made" OK python3 -c '
import errno, os, sys
try:
    os.mkfifo(sys.argv[1]); print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])' "$W/fifo"
	nt_check "mknod (http): the FIFO is one in the sandbox" test -p "$B/fifo"
	nt_check_out "mknod (http): a device node gives EPERM" EPERM python3 -c '
import errno, os, stat, sys
try:
    os.mknod(sys.argv[1], stat.S_IFCHR | 0o600, os.makedev(1, 3))
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])' "$W/null"
fi
nt_finish
