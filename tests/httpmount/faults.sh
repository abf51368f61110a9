#!/bin/bash
# faults.sh - nothing written through a noxfs http mount is lost (issue 5).
# Real noxd on loopback, stopped and restarted by PID on the same port;
# noxfs killed with SIGKILL.  Cases:
#   A  noxd stopped in the middle of a burst of writes (write-back mode),
#      then restarted: the journal drains by itself, every byte arrives
#   B  default mode, noxd down: close() fails with an errno, the data stays
#      journaled and arrives by itself once noxd is back
#   B2 default mode: closes fail (noxd down), a rename is journaled, a file
#      is open and written; noxfs SIGKILLed; noxd back, remount: all arrive
#   C  noxfs SIGKILLed with journaled files and one file open and written:
#      the next mount with the same cache dir replays before serving
#   D  unmount right after a burst of writes (write-back): every byte
#   E  200 editor-style saves (write temp, rename over) in write-back
#      mode: the sandbox ends with the last version, no temp file left
#   F  noxd down: a cached file reads, an uncached one fails with an
#      errno within the timeout
#   G  the sandbox deleted behind the mount's back: ENOENT/ESTALE, a log
#      line, and the unsent data kept under CACHE/<host>/lost/
#   H  a server with a small upload limit (413 for a batch): the batch is
#      split, every byte arrives
#   I  a server with a small output cap (the listing exec is cut): the
#      listing falls back to a tar of the workspace, every file is listed
#   J  write-back mode, files never read yet (placeholders): chmod then
#      cat, truncate then cat give the server's content, never zeros
# Every comparison is sha256 of every file (sandbox side read directly
# from noxd's base dir).  Hostile input: a server that vanishes mid-
# request, a sandbox that vanishes with data pending.
: "${NOX_TEST_BACKEND:=noxd}"
export NOX_TEST_BACKEND
. "$(dirname "$0")/../mount/lib.sh"
. "$(dirname "$0")/hm.sh"

nt_require sha256sum find xargs head
hm_require_noxd
nt_init

# hm_errno_close FILE TEXT: writes TEXT to FILE and closes; prints OK or
# the errno name of whichever call failed.
hm_errno_close() {
	timeout -k 5 "$NT_T" python3 - "$1" "$2" <<'PY'
import errno, os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, sys.argv[2].encode())
    os.close(fd)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
PY
}

# hm_read_errno FILE: prints OK or the errno name of the failed read.
hm_read_errno() {
	timeout -k 5 "$NT_T" python3 - "$1" <<'PY'
import errno, sys
try:
    open(sys.argv[1], "rb").read()
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
PY
}

# hm_kill_noxfs PID: SIGKILL of the noxfs daemon, then of the process PID
# holding a file open on the mount; the dead mount is detached.
hm_kill_noxfs() {
	kill -KILL "$NT_DPID"
	nt_wait_exit "$NT_DPID" 10
	NT_DPID=""
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	timeout -k 2 15 fusermount3 -uz "$NT_MNT" 2>/dev/null
}

# hm_burst SRC DST N: N files of random sizes into SRC, copied to DST.
hm_burst() {
	local i
	mkdir -p "$1" "$2"
	for i in $(seq "$3"); do
		head -c $(((i * 7919) % 60000 + 1)) /dev/urandom >"$1/f$i"
	done
}

ID=faults1
nt_workspace "$ID" "writeback_delay=300"

# ---- A: noxd stopped mid-burst, write-back -----------------------------
S="$NT_TMP/a-src"
hm_burst "$S" "$W/a" 120
mkdir -p "$W/a"
ok=0
for i in $(seq 120); do
	[ "$i" = 60 ] && hm_noxd_stop
	timeout -k 5 "$NT_T" cp "$S/f$i" "$W/a/f$i" && ok=$((ok + 1))
done
nt_check_eq "A: all 120 writes succeed with noxd down halfway" 120 "$ok"
nt_check_not "A: noxd is really down" hm_metrics
hm_noxd_start
hm_wait_sums "A: every byte arrives once noxd is back (no sync)" "$S" \
	"$B/a" 30
nt_check "A: .nox/sync returns 0" sh -c "echo > '$C/sync'"
nt_unmount

# ---- B: default mode, noxd down at close -------------------------------
nt_mount ""
nt_check "B: the sandbox is attached while noxd is up" ls "$W"
hm_noxd_stop
t0=$(date +%s)
got=$(hm_errno_close "$W/b.txt" "default mode data")
t1=$(date +%s)
nt_check_errno_in() { printf '%s' "$2" | grep -qxE "$1"; }
if nt_check_errno_in 'ECONNREFUSED|EIO|ETIMEDOUT|EAGAIN|EHOSTUNREACH' "$got"
then
	nt_pass "B: close() reports the failed upload ($got)"
else
	nt_fail "B: close() reports the failed upload" "write+close" \
		"ECONNREFUSED or another transport errno" "$got"
fi
nt_check "B: ...within 15 s ($((t1 - t0)) s)" test $((t1 - t0)) -le 15
nt_check_content "B: the data is still readable through the mount" \
	"$W/b.txt" "default mode data"
hm_noxd_start
for i in $(seq 100); do
	[ "$(cat "$B/b.txt" 2>/dev/null)" = "default mode data" ] && break
	sleep 0.2
done
nt_check_content "B: the journaled upload arrives by itself" "$B/b.txt" \
	"default mode data"
nt_unmount

# ---- B2: default mode: failed closes, then SIGKILL of noxfs -------------
# In the default mode entries live in memory while they are sent at once;
# a failed drain must write them to disk before close() reports: a noxfs
# killed after that loses nothing.  Also one file open and written (its
# dirty marker) and one closed and confirmed, then rewritten and open.
nt_mount ""
nt_check "B2: the sandbox is attached while noxd is up" ls "$W"
nt_check "B2: a file closed while noxd is up" sh -c \
	'printf "confirmed v1" > "$1"' sh "$W/b2-conf.txt"
nt_check "B2: another one" sh -c 'printf "kept" > "$1"' sh "$W/b2-keep.txt"
hm_noxd_stop
# a clean file (no dirty marker): only the journal entry can carry this
nt_check "B2: rename of a clean file while noxd is down" \
	mv "$W/b2-keep.txt" "$W/b2-moved.txt"
for i in 1 2 3; do
	got=$(hm_errno_close "$W/b2-$i.txt" "failed close $i")
	[ "$got" = OK ] && nt_fail "B2: close $i with noxd down fails" \
		"write+close" "an errno" "$got"
done
nt_check "B2: rename while noxd is down (journaled)" \
	mv "$W/b2-3.txt" "$W/b2-3r.txt"
python3 - "$W/b2-conf.txt" "$NT_TMP/b2.ready" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"rewritten, never closed")
open(sys.argv[2], "w").close()
time.sleep(60)
PY
HOLDER=$!
for i in $(seq 100); do [ -e "$NT_TMP/b2.ready" ] && break; sleep 0.1; done
hm_kill_noxfs "$HOLDER"
hm_noxd_start
nt_mount ""
for i in $(seq 100); do
	[ "$(cat "$B/b2-conf.txt" 2>/dev/null)" = "rewritten, never closed" ] &&
		[ -e "$B/b2-3r.txt" ] && [ -e "$B/b2-moved.txt" ] && break
	sleep 0.2
done
nt_check_content "B2: failed close 1 arrives after SIGKILL + remount" \
	"$B/b2-1.txt" "failed close 1"
nt_check_content "B2: failed close 2 arrives" "$B/b2-2.txt" "failed close 2"
nt_check_content "B2: the rename journaled while down arrives" \
	"$B/b2-3r.txt" "failed close 3"
nt_check "B2: ...and the old name is gone" test ! -e "$B/b2-3.txt"
nt_check_content "B2: the rename of the clean file arrives" \
	"$B/b2-moved.txt" "kept"
nt_check "B2: ...its old name is gone" test ! -e "$B/b2-keep.txt"
nt_check_content "B2: the open, written file arrives (dirty marker)" \
	"$B/b2-conf.txt" "rewritten, never closed"
nt_unmount

# ---- C: SIGKILL with journaled and open dirty files --------------------
nt_mount "writeback_delay=60000"
S="$NT_TMP/c-src"
hm_burst "$S" "$W/c" 40
for i in $(seq 40); do cp "$S/f$i" "$W/c/f$i"; done
head -c 100000 /dev/urandom >"$S/open.bin"
python3 - "$S/open.bin" "$W/c/open.bin" "$NT_TMP/c.ready" <<'PY' &
import os, sys, time
data = open(sys.argv[1], "rb").read()
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, data)
open(sys.argv[3], "w").close()
time.sleep(60)
PY
HOLDER=$!
for i in $(seq 100); do [ -e "$NT_TMP/c.ready" ] && break; sleep 0.1; done
nt_check "C: nothing of it reached the sandbox yet" \
	test ! -e "$B/c/f1" -a ! -e "$B/c/open.bin"
hm_kill_noxfs "$HOLDER"
nt_expect_log_error 'flush at unmount'
nt_mount ""
# no access to the mount: the replay runs at mount time
hm_wait_sums "C: after SIGKILL + remount every byte arrives" "$S" "$B/c" 20
# 40 files closed with their uploads journaled, one left open
nt_check "C: one line says the one open file was open for writing" \
	grep -aq 'faults1: 1 file was open for writing when noxfs stopped' \
	"$NT_LOG"
nt_unmount

# ---- D: unmount right after a burst (write-back) ----------------------
nt_mount "writeback_delay=60000"
S="$NT_TMP/d-src"
hm_burst "$S" "$W/d" 300
for i in $(seq 300); do cp "$S/f$i" "$W/d/f$i"; done
nt_unmount
hm_wait_sums "D: unmount waits: every byte is there at once" "$S" "$B/d" 0

# ---- E: 200 editor saves (write-back) ----------------------------------
nt_mount "writeback_delay=200"
for i in $(seq 200); do
	printf 'version %d\n%0*d\n' "$i" $((i * 37 % 3000)) 0 >"$W/ed.tmp" &&
		mv "$W/ed.tmp" "$W/ed.txt" || break
done
nt_check_eq "E: 200 saves done" 200 "$i"
nt_check "E: .nox/sync" sh -c "echo > '$C/sync'"
printf 'version %d\n%0*d\n' 200 $((200 * 37 % 3000)) 0 >"$NT_TMP/e.exp"
nt_check_file "E: the sandbox has the last version" "$B/ed.txt" \
	"$NT_TMP/e.exp"
nt_check "E: no temp file left in the sandbox" test ! -e "$B/ed.tmp"
nt_unmount

# ---- F: noxd down: cached vs uncached reads ----------------------------
printf 'cached\n' >"$B/f-cached.txt"
nt_mount ""
nt_exec "true" # a fresh listing shows the file
nt_check_content "F: read while up" "$W/f-cached.txt" "cached
"
# made after that read, or its bulk fetch would have brought it too
printf 'never read\n' >"$B/f-uncached.txt"
nt_exec "true" # a fresh listing shows it
nt_check "F: uncached file is listed" test -e "$W/f-uncached.txt"
hm_noxd_stop
nt_check_content "F: noxd down: the cached file reads" "$W/f-cached.txt" \
	"cached
"
t0=$(date +%s)
got=$(hm_read_errno "$W/f-uncached.txt")
t1=$(date +%s)
if nt_check_errno_in 'ECONNREFUSED|EIO|ETIMEDOUT|EAGAIN|EHOSTUNREACH' "$got"
then
	nt_pass "F: noxd down: the uncached file fails with $got"
else
	nt_fail "F: uncached read fails with a transport errno" \
		"open+read" "ECONNREFUSED or similar" "$got"
fi
nt_check "F: ...within 15 s ($((t1 - t0)) s)" test $((t1 - t0)) -le 15
hm_noxd_start
nt_check_content "F: noxd back: the uncached file reads" \
	"$W/f-uncached.txt" "never read
"
nt_unmount

# ---- G: sandbox deleted behind the mount's back -----------------------
nt_mount "writeback_delay=60000"
printf 'unsent\n' >"$W/g-unsent.txt"
python3 - "$NT_PORT" "$ID" <<'PY'
import sys, urllib.request
r = urllib.request.Request("http://127.0.0.1:%s/v1/sandboxes/%s" %
                           (sys.argv[1], sys.argv[2]), method="DELETE")
urllib.request.urlopen(r, timeout=10)
PY
got=$(timeout -k 5 "$NT_T" python3 "$NT_PY" errno write "$C/exec" 'true
' 2>&1)
if nt_check_errno_in 'ENOENT|ESTALE' "$got"; then
	nt_pass "G: exec on the deleted sandbox fails with $got"
else
	nt_fail "G: exec on the deleted sandbox" "write .nox/exec" \
		"ENOENT or ESTALE" "$got"
fi
nt_check "G: a log line says the sandbox is gone" \
	grep -aq "no longer exists on the server" "$NT_LOG"
nt_unmount
lost=$(grep -rlx --include='*.data' 'unsent' "$NT_TMP/cache" 2>/dev/null |
	grep '/lost/' | head -n 1)
nt_check "G: the unsent data is kept under lost/ ($lost)" test -n "$lost"

# ---- H: small upload limit ---------------------------------------------
ID=faults2
hm_noxd_stop
hm_noxd_start --max-body 150K
nt_workspace "$ID" "writeback_delay=60000"
S="$NT_TMP/h-src"
mkdir -p "$S" "$W/h"
for i in $(seq 12); do
	head -c 60000 /dev/urandom >"$S/f$i"
	cp "$S/f$i" "$W/h/f$i"
done
nt_check "H: .nox/sync with a 150 KiB upload limit" sh -c "echo > '$C/sync'"
hm_wait_sums "H: every byte arrives in smaller uploads" "$S" "$B/h" 0
nt_unmount

# ---- I: small output cap: the listing falls back to tar ----------------
hm_noxd_stop
hm_noxd_start --output-cap 2K
hm_populate "$B/i" 10 30
rm -rf "$NT_TMP/cache"
nt_mount ""
n=$(timeout -k 5 "$NT_T" find "$W/i" -type f | wc -l)
nt_check_eq "I: a cut listing falls back to tar: all 300 files listed" \
	300 "$n"
hm_wait_sums "I: and their contents match" "$B/i" "$W/i" 0
nt_unmount
hm_noxd_stop
hm_noxd_start

# ---- J: journaled changes to placeholders ------------------------------
printf 'mode change keeps content\n' >"$B/j-mode.txt"
printf '0123456789abcdef\n' >"$B/j-trunc.txt"
nt_mount "writeback_delay=60000"
nt_check "J: chmod of an unread file" chmod 600 "$W/j-mode.txt"
nt_check_content "J: then cat gives its content" "$W/j-mode.txt" \
	"mode change keeps content
"
nt_check "J: truncate of an unread file" truncate -s 10 "$W/j-trunc.txt"
nt_check_content "J: then cat gives the first 10 bytes" "$W/j-trunc.txt" \
	"0123456789"
nt_unmount
nt_check_out "J: the mode reached the sandbox" 600 stat -c %a "$B/j-mode.txt"
nt_check_content "J: the truncate reached the sandbox" "$B/j-trunc.txt" \
	"0123456789"
nt_finish
