#!/bin/bash
# range.sh - a read far into a cold file does not wait for the bytes
# before it (issue 15 item 1, nox.fs only: ranged GET fs/file).
# Real noxd behind tests/hostile/server.py --upstream, whose "hold" lets
# the first 2 MiB of the file's streamed download through and keeps the
# rest until released, so no read can be served by the stream past 2 MiB
# and nothing here is timed:
#   a 128 MiB file made by a command in the sandbox: tail -c 4096 and
#   reads at scattered offsets (one across a block boundary, one in the
#   first 2 MiB) give the sandbox's bytes while the stream is held, by
#   ranged GETs (206, each for at most 1 MiB) that the relay saw;
#   released, the whole file reads right through the mount, and the
#   cache's tree file is byte-exact (the ranged bytes written ahead and
#   the stream did not spoil each other);
#   a ranged GET refused (403, relay "holdnorange"): the far read waits
#   for the stream instead, and gives the right bytes once released
#   (never the sparse file's zeros).
: "${NOX_TEST_BACKEND:=noxd}"
export NOX_TEST_BACKEND
. "$(dirname "$0")/../mount/lib.sh"
. "$(dirname "$0")/hm.sh"

nt_require python3 timeout cmp dd stat sha256sum
hm_require_noxd
[ "$NT_BACKEND" = noxd ] || nt_skip "ranged reads need nox.fs (noxd)"
nt_init

trap hm_relay_cleanup EXIT

hm_relay_start

# rg_at FILE OFF LEN: sha256 of LEN bytes of FILE at OFF (within 60 s, or
# "timeout").  Read with one pread, as an application would.
rg_at() {
	timeout -k 5 60 python3 - "$@" <<'PY' || echo timeout
import hashlib, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
b = os.pread(fd, int(sys.argv[3]), int(sys.argv[2]))
os.close(fd)
print(hashlib.sha256(b).hexdigest())
PY
}

# rg_ranges NAME: the ranged GET fs/file of NAME the relay answered with
# 206, one "first last" per line.
rg_ranges() {
	python3 - "$NT_TMP/relay.log" "$1" <<'PY'
import re, sys, urllib.parse
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r" done 206 (\S+) range=bytes=(\d+)-(\d+)$", line)
    if not m or "/fs/file" not in m.group(1):
        continue
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(m.group(1)).query)
    if q.get("path") == [sys.argv[2]]:
        print(m.group(2), m.group(3))
PY
}

MB=128
SIZE=$((MB << 20))
# an op_timeout well past what the held reads take: the held stream must
# not be given up (a stall) while they run, even under the sanitizers
NT_PORT=$RELAY nt_mount "op_timeout=30"
nt_workspace rg1
nt_check_exec "a command makes two $MB MiB files" \
	"head -c $SIZE /dev/urandom >big && head -c $SIZE /dev/urandom >big2 && echo ok" \
	$'ok\n'
nt_check_out "the mount sees big's size" $SIZE stat -c %s "$W/big"
nt_check_out "and big2's" $SIZE stat -c %s "$W/big2"

# ---- far reads while the stream is held ---------------------------------
hm_snap
hm_relay_mode hold
want=$(tail -c 4096 "$B/big" | sha256sum | cut -d' ' -f1)
got=$(timeout -k 5 60 tail -c 4096 "$W/big" | sha256sum | cut -d' ' -f1)
# a read that waits for the stream ends at the stall (op_timeout): one
# such failure is enough, the reads below would each wait as long
nt_check_eq "tail -c 4096 of a cold $MB MiB file while the stream is held" \
	"$want" "$got" "sha256 of the last 4 KiB" || HELD_FAILED=1
nt_check "the stream came while the relay held downloads" \
	hm_wait_relay "hold GET .*fs/file\?path=big$"
nt_check_not "and was not relayed whole" \
	grep -qE "done 200 .*fs/file\?path=big$" "$NT_TMP/relay.log"
ranges=$(rg_ranges big)
nt_log "ranged GETs of big: $(echo $ranges)"
nt_check "a 206 for the tail's range, of at most 1 MiB" python3 - \
	"$SIZE" "$ranges" <<'PY'
import sys
size = int(sys.argv[1])
r = [tuple(map(int, l.split())) for l in sys.argv[2].splitlines() if l]
sys.exit(0 if any(a <= size - 4096 and b == size - 1 and
                  b - a + 1 <= 1 << 20 for a, b in r) else 1)
PY
# scattered reads, as a database's: each its own block, one across a
# block boundary (64 MiB), one below what the stream let through
[ -n "${HELD_FAILED:-}" ] && hm_relay_mode release
for at in $((100 << 20))+123:4096 $((37 << 20)):65536 $((5 << 20)):1 \
	$(((64 << 20) - 4096)):8192 $((SIZE - 200000)):100000 \
	$((1 << 20)):4096 $((100 << 20)):4096; do
	off=${at%:*}
	len=${at#*:}
	off=$((off))
	[ -n "${HELD_FAILED:-}" ] && break
	nt_check_out "pread $len at $off while held" \
		"$(rg_at "$B/big" "$off" "$len")" rg_at "$W/big" "$off" "$len"
done
nt_check "every ranged GET was of at most 1 MiB" python3 - \
	"$(rg_ranges big)" <<'PY'
import sys
r = [tuple(map(int, l.split())) for l in sys.argv[1].splitlines() if l]
sys.exit(0 if r and all(b - a + 1 <= 1 << 20 for a, b in r) else 1)
PY
nt_log "ranged GETs of big: $(echo $(rg_ranges big))"
nt_log "requests while held: $(hm_deltas)"
hm_relay_mode release
nt_check "released: the whole file reads right" cmp "$B/big" "$W/big"
hm_relay_mode off
tree=$(find "$NT_TMP/cache" -path '*/rg1/tree/big' -type f | head -n 1)
nt_check "the cache's tree file is byte-exact" cmp "$B/big" "$tree"

# ---- a ranged GET refused: the read waits for the stream ----------------
hm_relay_mode holdnorange
want=$(tail -c 4096 "$B/big2" | sha256sum | cut -d' ' -f1)
(timeout -k 5 120 tail -c 4096 "$W/big2" | sha256sum | cut -d' ' -f1 \
	>"$NT_TMP/tail2") &
HM_PID=$!
nt_check "the ranged GET was refused" \
	hm_wait_relay "refused 403 .*fs/file\?path=big2 range="
hm_relay_mode release
for i in $(seq 1200); do
	nt_alive "$HM_PID" || break
	sleep 0.1
done
wait "$HM_PID"
HM_PID=""
nt_check_eq "then the stream's bytes, not the sparse file's zeros" \
	"$want" "$(cat "$NT_TMP/tail2")" "sha256 of the last 4 KiB"
hm_relay_mode off
nt_check "and the whole file reads right" cmp "$B/big2" "$W/big2"

nt_unmount
nt_finish
