#!/bin/bash
# replay.sh - unmount after a journal replay, and unmount with noxd down
# (issue 14 items 1 and 7).  Real noxd on loopback, stopped and restarted
# by PID on the same port.  Cases:
#   A  mount, noxd stopped, a file written (close fails, journaled),
#      unmount (journal kept), noxd back, mount (replay at start),
#      unmount: the daemon exits each time within the bound; twice over;
#      the next mount serves (no EBUSY) and every byte is in the sandbox
#   C  as A with the daemon in the background (no -f: it forks after
#      the replay at start), as a user mounts: the daemon exits each time
#   B  noxd down at unmount with -o unmount_timeout=S: the daemon exits
#      within S (plus slack) and says how many entries stay journaled;
#      the data reaches the server at the next mount
: "${NOX_TEST_BACKEND:=noxd}"
export NOX_TEST_BACKEND
. "$(dirname "$0")/../mount/lib.sh"
. "$(dirname "$0")/hm.sh"

nt_require sha256sum python3
hm_require_noxd
nt_init

ID=rp
UT=5 # -o unmount_timeout where noxd is down at unmount
# ...and where it is up: a daemon stuck at exit would be ended by this
# bound only, later than the 20 s the checks allow
RT=60

# rp_close FILE TEXT: writes TEXT to FILE and closes; OK or the errno name.
rp_close() {
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

# rp_unmount WHAT SECONDS: fusermount3 -u; the daemon must be gone within
# SECONDS (any status: with noxd down the flush at unmount fails).
rp_unmount() {
	local t0 t1
	t0=$(date +%s)
	timeout -k 2 30 fusermount3 -u "$NT_MNT" 2>/dev/null ||
		timeout -k 2 15 fusermount3 -uz "$NT_MNT" 2>/dev/null
	if nt_wait_exit "$NT_DPID" "$2"; then
		t1=$(date +%s)
		nt_pass "$1: the daemon exited within $2 s ($((t1 - t0)) s, \
status $NT_RC)"
	else
		nt_fail "$1: the daemon exited" "fusermount3 -u; wait" \
			"exit within $2 s" "still running; log: \
$(tail -n 20 "$NT_LOG")"
		nt_stop_pid "$NT_DPID"
	fi
	NT_DPID=""
	nt_check "$1: the mount is gone" nt_not_mounted
	nt_check_log
}
nt_not_mounted() { ! nt_mounted "$NT_MNT"; }

# rp_daemon_pid: the PID of the backgrounded noxfs serving NT_MNT (found
# by its binary and mount point in /proc, not by name).
rp_daemon_pid() {
	local p exe
	exe=$(readlink -f "$NT_NOXFS")
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/exe" 2>/dev/null)" = "$exe" ] || continue
		tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qxF "$NT_MNT" &&
			echo "${p#/proc/}" && return 0
	done
	return 1
}

# rp_mount_bg OPTS: mounts like nt_mount, but without -f: the daemon
# forks once the mount exists (what a user gets); sets NT_DPID.
rp_mount_bg() {
	NT_MOUNTS=$((NT_MOUNTS + 1))
	NT_LOG="$NT_TMP/noxfs.$NT_MOUNTS.log"
	nt_log "mount: noxfs --url http://127.0.0.1:$NT_PORT -o \
cache_dir=$NT_TMP/cache,$1 $NT_MNT (background)"
	timeout -k 5 60 "$NT_NOXFS" --url "http://127.0.0.1:$NT_PORT" \
		-o "cache_dir=$NT_TMP/cache,$1" "$NT_MNT" >"$NT_LOG" 2>&1 ||
		nt_die "background mount failed: $(tail -n 20 "$NT_LOG")"
	nt_mounted "$NT_MNT" || nt_die "background mount: not mounted"
	NT_DPID=$(rp_daemon_pid) || nt_die "no daemon for $NT_MNT"
	nt_log "daemon pid $NT_DPID"
}

# rp_ops WHAT: the mount serves: a listing, a write, a read (no EBUSY).
rp_ops() {
	nt_check "$1: ls of the sandbox works" timeout -k 5 60 ls "$W"
	nt_check_eq "$1: a write through the mount works" OK \
		"$(rp_close "$W/probe.txt" "probe $1")"
	nt_check_content "$1: ...and reads back" "$W/probe.txt" "probe $1"
}

# ---- A: replay at mount, then unmount; twice ---------------------------
nt_expect_log_error 'flush at unmount'
B=$(nt_backend_ws "$ID")
nt_mount "unmount_timeout=$UT"
W="$NT_MNT/$ID"
timeout -k 5 60 mkdir "$W" || nt_die "mkdir $W; log: $(tail -n 20 "$NT_LOG")"
for round in 1 2; do
	nt_check "A$round: the sandbox is attached while noxd is up" ls "$W"
	hm_noxd_stop
	got=$(rp_close "$W/a$round.txt" "round $round data")
	nt_log "A$round: close with noxd down: $got"
	nt_check_content "A$round: the data reads back through the mount" \
		"$W/a$round.txt" "round $round data"
	rp_unmount "A$round: unmount with noxd down" $((UT + 15))
	nt_check "A$round: the journal is kept" \
		test -n "$(ls "$NT_TMP/cache"/*/"$ID"/journal 2>/dev/null)"
	hm_noxd_start
	nt_mount "unmount_timeout=$RT"
	grep -aq 'replaying' "$NT_LOG" || sleep 1
	nt_check "A$round: the mount replays the journal" \
		grep -aq 'replaying [0-9]* journaled operations' "$NT_LOG"
	# the file was closed (its upload journaled), not left open
	nt_check_not "A$round: no file is said to have been open for writing" \
		grep -aq 'open for writing' "$NT_LOG"
	nt_check_content "A$round: the data reached the sandbox" \
		"$B/a$round.txt" "round $round data"
	rp_unmount "A$round: unmount after the replay" 20
	nt_check_eq "A$round: ...with status 0" 0 "$NT_RC"
	nt_mount "unmount_timeout=$UT"
	rp_ops "A$round: mount after it"
done
nt_check_content "A: round 1 data is still there" "$B/a1.txt" "round 1 data"
nt_check_content "A: round 2 data is still there" "$B/a2.txt" "round 2 data"
nt_check_content "A: the probe reached the sandbox" "$B/probe.txt" \
	"probe A2: mount after it"
nt_unmount

# ---- C: as A, the daemon in the background ----------------------------
for round in 1 2; do
	rp_mount_bg "unmount_timeout=$UT"
	nt_check "C$round: the sandbox is attached while noxd is up" ls "$W"
	hm_noxd_stop
	got=$(rp_close "$W/c$round.txt" "bg round $round")
	nt_log "C$round: close with noxd down: $got"
	rp_unmount "C$round: unmount with noxd down" $((UT + 15))
	hm_noxd_start
	rp_mount_bg "unmount_timeout=$RT"
	nt_check "C$round: the mount replays the journal" \
		grep -aq 'replaying [0-9]* journaled operations' "$NT_LOG"
	nt_check_content "C$round: the data reached the sandbox" \
		"$B/c$round.txt" "bg round $round"
	rp_unmount "C$round: unmount after the replay" 20
	rp_mount_bg "unmount_timeout=$UT"
	rp_ops "C$round: mount after it"
	rp_unmount "C$round: unmount of that mount" $((UT + 15))
done
nt_check_content "C: round 1 data is still there" "$B/c1.txt" "bg round 1"
nt_check_content "C: round 2 data is still there" "$B/c2.txt" "bg round 2"

# ---- B: noxd down at unmount: bounded wait, a message ------------------
nt_mount "unmount_timeout=$UT,writeback_delay=60000"
nt_check "B: the sandbox is attached while noxd is up" ls "$W"
head -c 300000 /dev/urandom >"$NT_TMP/b.bin"
cp "$NT_TMP/b.bin" "$W/b.bin"
printf 'b text' >"$W/b.txt"
hm_noxd_stop
# noxd also refuses nothing now: stop answering at all (a listener that
# accepts and never replies), so the drain at unmount waits on the network
python3 - "$NT_PORT" "$NT_TMP/hang.ready" <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
open(sys.argv[2], "w").close()
conns = []
end = time.time() + 120
s.settimeout(1)
while time.time() < end:
    try:
        conns.append(s.accept()[0])
    except socket.timeout:
        pass
PY
HANG=$!
for i in $(seq 50); do [ -e "$NT_TMP/hang.ready" ] && break; sleep 0.1; done
rp_unmount "B: unmount with the server not answering" $((UT + 10))
nt_check "B: one line says how many entries stay journaled" \
	test "$(grep -acE "unmount_timeout \($UT s\) passed with uploads \
pending; [1-9][0-9]* operations stay in the journal for the next mount" \
		"$NT_LOG")" = 1
nt_log "B: $(grep -aE 'stay in the journal' "$NT_LOG" | head -n 2)"
nt_stop_pid "$HANG"
hm_noxd_start
nt_mount "unmount_timeout=$UT"
for i in $(seq 100); do
	cmp -s "$NT_TMP/b.bin" "$B/b.bin" && break
	sleep 0.2
done
nt_check "B: the big file reached the server at the next mount" \
	cmp "$NT_TMP/b.bin" "$B/b.bin"
nt_check_content "B: the text file too" "$B/b.txt" "b text"
nt_unmount
nt_finish
