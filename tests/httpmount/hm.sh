# hm.sh - helpers for the noxfs-over-HTTP tests (sourced after
# tests/mount/lib.sh): noxd's request counters, stopping and restarting
# noxd on the same port, a workspace made directly in the backend, and
# tree checksums.
#
# Counters come from noxd's GET /metrics (noxd_requests_total by
# endpoint).  The scripts need real noxd: NOX_TEST_BACKEND defaults to
# noxd here; "local" is refused (skip).

# hm_metrics: "endpoint count" lines, without the metrics endpoint.
hm_metrics() {
	python3 - "$NT_PORT" <<'PY'
import sys, urllib.request
u = "http://127.0.0.1:%s/metrics" % sys.argv[1]
try:
    t = urllib.request.urlopen(u, timeout=10).read().decode()
except Exception as e:
    print("error", e)
    sys.exit(1)
for line in t.splitlines():
    if line.startswith('noxd_requests_total{endpoint="'):
        ep = line.split('"')[1]
        if ep != "metrics":
            print(ep, line.split()[-1])
PY
}

# hm_snap: saves the counters in HM_SNAP.
hm_snap() { HM_SNAP=$(hm_metrics); }

# hm_delta [ENDPOINT]: requests since hm_snap (all endpoints, or one).
hm_delta() {
	local now
	now=$(hm_metrics)
	python3 - "${1:-}" "$HM_SNAP" "$now" <<'PY'
import sys
ep, a, b = sys.argv[1], sys.argv[2], sys.argv[3]
def parse(t):
    d = {}
    for l in t.splitlines():
        k, v = l.split()
        d[k] = int(float(v))
    return d
a, b = parse(a), parse(b)
if ep:
    print(b.get(ep, 0) - a.get(ep, 0))
else:
    print(sum(b.values()) - sum(a.values()))
PY
}

# hm_deltas: every non-zero delta as "ep=n ..." (for reports).
hm_deltas() {
	local now
	now=$(hm_metrics)
	python3 - "$HM_SNAP" "$now" <<'PY'
import sys
def parse(t):
    return {l.split()[0]: int(float(l.split()[1])) for l in t.splitlines()}
a, b = parse(sys.argv[1]), parse(sys.argv[2])
print(" ".join("%s=%d" % (k, b[k] - a.get(k, 0)) for k in sorted(b)
               if b[k] != a.get(k, 0)) or "none")
PY
}

# hm_noxd_stop: stops noxd (by PID).
hm_noxd_stop() {
	nt_stop_pid "$NT_NOXD_PID"
	NT_NOXD_PID=""
}

# hm_noxd_start [ARGS]: starts noxd again on the same port and base dir,
# with extra noxd options ARGS.
hm_noxd_start() {
	local noxd="$NT_BUILD/tools/noxd/noxd" v1=() i
	[ "$NT_BACKEND" = noxd-v1 ] && v1=(--v1-only)
	for i in $(seq 50); do
		"$noxd" --listen "127.0.0.1:$NT_PORT" --base-dir "$NT_BASE" \
			"${v1[@]}" "$@" >>"$NT_NOXD_LOG" 2>&1 &
		NT_NOXD_PID=$!
		sleep 0.2
		if nt_alive "$NT_NOXD_PID" && hm_metrics >/dev/null 2>&1; then
			return 0
		fi
		nt_stop_pid "$NT_NOXD_PID"
		sleep 0.2
	done
	nt_die "noxd did not restart on port $NT_PORT"
}

# hm_sums DIR: "sha256 path" of every regular file below DIR, sorted.
hm_sums() {
	(cd "$1" && find . -type f ! -path './.nox/*' -print0 |
		LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

# hm_wait_sums WHAT SRC DST SECONDS: waits until DST's files match SRC.
hm_wait_sums() {
	local what=$1 a b i
	a=$(hm_sums "$2")
	for i in $(seq $(($4 * 5 + 1))); do
		b=$(hm_sums "$3")
		[ "$a" = "$b" ] && break
		sleep 0.2
	done
	nt_check_eq "$what" "$a" "$b" "sha256 of every file, $2 vs $3"
}

# hm_populate DIR NDIRS PER: NDIRS directories of PER small files.
hm_populate() {
	python3 - "$@" <<'PY'
import os, sys
d, nd, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(nd):
    sub = os.path.join(d, "dir%03d" % i)
    os.makedirs(sub, exist_ok=True)
    for j in range(per):
        with open(os.path.join(sub, "f%03d.txt" % j), "w") as f:
            f.write("file %d/%d\n" % (i, j) * (1 + (i * j) % 7))
PY
}

# hm_require_noxd: these scripts mean nothing on the local backend.
hm_require_noxd() {
	case $NT_BACKEND in
	noxd | noxd-v1) ;;
	*) nt_skip "needs NOX_TEST_BACKEND=noxd or noxd-v1" ;;
	esac
}

# hm_relay_cleanup: the EXIT trap of a script that starts the relay
# (trap hm_relay_cleanup EXIT): stops the relay and HM_PID (another
# process of the script, if set), then nt_cleanup with the script's
# status.
RELAY_PID=""
HM_PID=""
hm_relay_cleanup() {
	local rc=$?
	nt_stop_pid "$HM_PID"
	nt_stop_pid "$RELAY_PID"
	(exit "$rc") # nt_cleanup exits with the status it finds
	nt_cleanup
}

# hm_wait_relay ERE: waits (at most 60 s) for a relay log line matching
# ERE; 1 if none came.
hm_wait_relay() {
	local i
	for i in $(seq 600); do
		grep -qE -- "$1" "$NT_TMP/relay.log" && return 0
		sleep 0.1
	done
	return 1
}

# hm_relay_start: starts tests/hostile/server.py --upstream in front of
# noxd (RELAY: its port, RELAY_PID; hm_relay_cleanup stops it).
hm_relay_start() {
	local i
	python3 -u "$NT_DIR/../hostile/server.py" --upstream "$NT_PORT" \
		>"$NT_TMP/relay.port" 2>"$NT_TMP/relay.log" &
	RELAY_PID=$!
	for i in $(seq 100); do
		[ -s "$NT_TMP/relay.port" ] && break
		sleep 0.1
	done
	RELAY=$(tr -dc 0-9 <"$NT_TMP/relay.port")
	[ -n "$RELAY" ] ||
		nt_die "the relay gave no port: $(cat "$NT_TMP/relay.log")"
	nt_log "relay pid $RELAY_PID port $RELAY -> noxd $NT_PORT"
}

# hm_relay_mode MODE: tells the relay how to behave from now on (MODE:
# see server.py; "release" lets what a gate or hold keeps go on).
hm_relay_mode() {
	python3 - "$RELAY" "$1" <<'PY' || nt_die "relay: cannot set $1"
import sys, urllib.request
u = "http://127.0.0.1:%s/_stall/%s" % (sys.argv[1], sys.argv[2])
urllib.request.urlopen(u, timeout=10).read()
PY
	nt_log "relay: $1"
}
