#!/bin/bash
# stream.sh - file contents at the network's pace (issue 15 items 1, 3).
# Real noxd behind tests/hostile/server.py --upstream, a relay that can
# hold a file's PUT ("gate") or a download's body ("hold", "cut"), so the
# order of events is fixed without timing:
#   a 64 MiB random file written with dd conv=fsync reaches the sandbox
#   byte-exact, with its mode and mtime; on nox.fs by PUT fs/file, not an
#   upload tar (noxd's /metrics);
#   nox.fs: while its PUT is held, the sandbox still has the old content
#   whole (the new one goes to a temporary name renamed over it), and the
#   new one after; a file with two links is written in place (both names
#   see it, one inode);
#   the first 4 KiB of a cold 64 MiB file read while the relay holds
#   back all but the first 2 MiB of the body (a read that waited for the
#   whole file would time out), then the whole file reads right; one GET
#   fs/file and no tar on nox.fs, one tar download (unpacked as it
#   arrives) on v1;
#   a download cut midway fails the read, and the next open downloads
#   again (no half file taken for the content).
: "${NOX_TEST_BACKEND:=noxd}"
export NOX_TEST_BACKEND
. "$(dirname "$0")/../mount/lib.sh"
. "$(dirname "$0")/hm.sh"

nt_require python3 timeout cmp dd stat
hm_require_noxd
nt_init

trap hm_relay_cleanup EXIT

hm_relay_start

# sm_wait_pid PID: waits (at most 120 s) for PID; its exit status.
sm_wait_pid() {
	local i
	for i in $(seq 1200); do
		nt_alive "$1" || break
		sleep 0.1
	done
	nt_alive "$1" && return 124
	wait "$1"
}

# sm_bytes_in ENDPOINT: noxd's request body bytes for ENDPOINT, since
# the start of noxd.
sm_bytes_in() {
	python3 - "$NT_PORT" "$1" <<'PY'
import sys, urllib.request
u = "http://127.0.0.1:%s/metrics" % sys.argv[1]
t = urllib.request.urlopen(u, timeout=10).read().decode()
want = 'noxd_bytes_in_total{endpoint="%s"}' % sys.argv[2]
print(sum(int(float(l.split()[-1])) for l in t.splitlines()
          if l.startswith(want)))
PY
}

EXT=1
[ "$NT_BACKEND" = noxd-v1 ] && EXT=0
MB=64
head -c $((MB << 20)) /dev/urandom >"$NT_TMP/a"
head -c $((MB << 20)) /dev/urandom >"$NT_TMP/b"

NT_PORT=$RELAY nt_mount ""
nt_workspace st1

# ---- an upload: byte-exact, mode and mtime, by PUT on nox.fs ------------
hm_snap
nt_check "dd conv=fsync of $MB MiB" sh -c \
	"umask 027; dd if='$NT_TMP/a' of='$W/big' bs=1M conv=fsync status=none"
nt_log "requests: $(hm_deltas)"
nt_check "the sandbox has it byte-exact" cmp "$NT_TMP/a" "$B/big"
nt_check_out "its mode (sandbox)" 640 stat -c %a "$B/big"
nt_check_out "its mtime (sandbox)" "$(stat -c %Y "$W/big")" stat -c %Y "$B/big"
if [ $EXT = 1 ]; then
	nt_check "sent by PUT fs/file" test "$(hm_delta fs_write)" -ge 1
	# the create that dd's open made goes in a tar of its own (empty)
	nt_check "no content in an upload tar" test \
		"$(sm_bytes_in upload)" -lt $((1 << 20))
else
	nt_check "sent as an upload tar (v1)" test "$(hm_delta upload)" -ge 1
fi
nt_check_not "no temporary name left (sandbox)" sh -c \
	"ls -a '$B' | grep -q noxfs-upload"

# ---- nox.fs: a reader never sees a partial file -------------------------
if [ $EXT = 1 ]; then
	hm_relay_mode gate
	# overwritten in place (notrunc): no truncate goes first
	dd if="$NT_TMP/b" of="$W/big" bs=1M conv=fsync,notrunc status=none &
	DD=$!
	nt_check "the PUT reached the relay" hm_wait_relay "gate PUT .*fs/file"
	nt_check "held: the sandbox has the old content whole" \
		cmp "$NT_TMP/a" "$B/big"
	hm_relay_mode release
	sm_wait_pid "$DD"
	nt_check_eq "the writer's fsync returned 0" 0 "$?" "dd's exit status"
	nt_check "released: the sandbox has the new content" \
		cmp "$NT_TMP/b" "$B/big"
	hm_relay_mode off

	# a file with two links is written in place: both names see it
	nt_check "ln big big2" ln "$W/big" "$W/big2"
	nt_check "dd through big2" dd if="$NT_TMP/a" of="$W/big2" bs=1M \
		conv=fsync,notrunc status=none
	nt_check "big has it (sandbox)" cmp "$NT_TMP/a" "$B/big"
	nt_check_out "big, big2 one inode (sandbox)" \
		"$(stat -c %i "$B/big")" stat -c %i "$B/big2"
	nt_check_out "big has 2 links (sandbox)" 2 stat -c %h "$B/big"
fi

# ---- reads that do not wait for the whole file --------------------------
cp "$NT_TMP/a" "$B/cold"
cp "$NT_TMP/b" "$B/cold2"
nt_check_exec "a command (the next lookup lists again)" 'echo ok' $'ok\n'
nt_check_out "the mount sees cold's size" $((MB << 20)) stat -c %s "$W/cold"

# sm_head N FILE: the first N bytes of FILE through the mount, as hex
# sha256 (within 60 s, or "timeout").
sm_head() {
	timeout -k 5 60 python3 - "$@" <<'PY' || echo timeout
import hashlib, sys
with open(sys.argv[2], "rb") as f:
    print(hashlib.sha256(f.read(int(sys.argv[1]))).hexdigest())
PY
}
want4k=$(head -c 4096 "$NT_TMP/a" | sha256sum | cut -d' ' -f1)
hm_snap
hm_relay_mode hold
nt_check_out "the first 4 KiB while the relay holds the rest" \
	"$want4k" sm_head 4096 "$W/cold"
hm_relay_mode release
nt_check "then the whole file reads right" cmp "$NT_TMP/a" "$W/cold"
hm_relay_mode off
if [ $EXT = 1 ]; then
	nt_check_eq "one GET fs/file" 1 "$(hm_delta fs_read)" "fs_read requests"
	nt_check_eq "no tar download" 0 "$(hm_delta download)" \
		"download requests"
else
	nt_check_eq "one tar download (v1)" 1 "$(hm_delta download)" \
		"download requests"
fi

# a body cut off midway: the reader gets an error, the next open
# downloads again
hm_relay_mode cut
nt_check_not "a read of a download cut midway fails" \
	cmp "$NT_TMP/b" "$W/cold2"
hm_relay_mode off
nt_check "the next open downloads again, byte-exact" cmp "$NT_TMP/b" \
	"$W/cold2"

nt_unmount
nt_finish
