#!/bin/bash
# start.sh - noxfs over HTTP refuses to mount, within -o start_timeout and
# with one line naming what was tried and what answered, when the server
# is unreachable, is not a NoxRunner server or refuses the token (issue
# 14 item 3); the right URL and token still mount.
# Hostile servers tried (all on 127.0.0.1): a closed port; a server that
# accepts connections and never answers (the start deadline, 2 s and the
# default 10 s, must end it); a plain HTTP file server (404 on /healthz);
# noxd under a wrong URL path; https against plain http; noxd with a token
# given no token and a wrong one.
: "${NOX_TEST_BACKEND:=noxd}"
export NOX_TEST_BACKEND
. "$(dirname "$0")/../mount/lib.sh"
. "$(dirname "$0")/hm.sh"

nt_require python3 timeout
hm_require_noxd
nt_init

EXTRA_PIDS=()
start_cleanup() {
	local rc=$? p
	for p in "${EXTRA_PIDS[@]}"; do nt_stop_pid "$p"; done
	(exit "$rc") # nt_cleanup exits with the status it finds
	nt_cleanup
}
trap start_cleanup EXIT

# a listener that accepts and never answers
python3 -u -c '
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
' >"$NT_TMP/stall.port" 2>/dev/null &
EXTRA_PIDS+=($!)
# a plain HTTP server: not NoxRunner
mkdir -p "$NT_TMP/www"
python3 -u -c '
import http.server, functools, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
s = http.server.HTTPServer(("127.0.0.1", 0), h)
print(s.server_address[1], flush=True)
s.serve_forever()
' "$NT_TMP/www" >"$NT_TMP/www.port" 2>/dev/null &
EXTRA_PIDS+=($!)
for i in $(seq 50); do
	[ -s "$NT_TMP/stall.port" ] && [ -s "$NT_TMP/www.port" ] && break
	sleep 0.1
done
STALL=$(tr -dc 0-9 <"$NT_TMP/stall.port")
WWW=$(tr -dc 0-9 <"$NT_TMP/www.port")
[ -n "$STALL" ] && [ -n "$WWW" ] || nt_die "helper servers gave no port"
# a closed port: bind one, note it, close it
CLOSED=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

M2="$NT_TMP/m2"
mkdir -p "$M2"

# refused URL OPTS WANT_ERE MAX_SECONDS: noxfs exits 1 within MAX_SECONDS,
# prints one line matching WANT_ERE, and leaves nothing mounted.
refused() {
	local url=$1 opts=$2 want=$3 max=$4 rc=0 t0 t1 out="$NT_TMP/refused.out"
	local args=(--url "$url" -f)
	[ -n "$opts" ] && args+=(-o "$opts")
	t0=$(date +%s%N)
	timeout -k 5 60 "$NT_NOXFS" "${args[@]}" "$M2" >"$out" 2>&1 || rc=$?
	t1=$(date +%s%N)
	nt_check_eq "$url [$opts]: refused (exit 1)" 1 "$rc" "noxfs exit code"
	nt_check_out "$url [$opts]: one line" 1 sh -c "wc -l <'$out'"
	nt_check_out "$url [$opts]: says why" 1 sh -c \
		"grep -cE '$want' '$out'"
	nt_check "$url [$opts]: within ${max} s (took $(((t1 - t0) / 1000000)) ms)" \
		test $(((t1 - t0) / 1000000)) -le $((max * 1000))
	nt_check_not "$url [$opts]: nothing mounted" nt_mounted "$M2"
	nt_log "said: $(cat "$out")"
}

refused "http://127.0.0.1:$CLOSED" "" 'cannot reach .*Could.?n.t connect' 3
refused "http://127.0.0.1:$STALL" "start_timeout=2" \
	'no answer from .* within 2 s' 5
refused "http://127.0.0.1:$STALL" "" 'no answer from .* within 10 s' 14
refused "http://127.0.0.1:$WWW" "" 'is not a NoxRunner server: GET /healthz: HTTP 404' 3
refused "http://127.0.0.1:$NT_PORT/wrong" "" \
	'/wrong is not a NoxRunner server: GET /healthz: HTTP 404' 3
refused "https://127.0.0.1:$NT_PORT" "" 'is not a NoxRunner server|cannot reach' 3

# noxd with a token: no token and a wrong one are refused, the right one
# mounts
hm_noxd_stop
v1=()
[ "$NT_BACKEND" = noxd-v1 ] && v1=(--v1-only)
for i in $(seq 50); do
	"$NT_BUILD/tools/noxd/noxd" --listen "127.0.0.1:$NT_PORT" \
		--base-dir "$NT_BASE" --token sekrit "${v1[@]}" \
		>>"$NT_NOXD_LOG" 2>&1 &
	NT_NOXD_PID=$!
	sleep 0.2
	nt_alive "$NT_NOXD_PID" && break
done
nt_alive "$NT_NOXD_PID" || nt_die "noxd --token did not start on $NT_PORT"
refused "http://127.0.0.1:$NT_PORT" "" 'refused the token: .*401' 3
refused "http://127.0.0.1:$NT_PORT" "token=wrong" 'refused the token: .*401' 3
nt_mount "token=sekrit"
nt_check "the right token mounts" mkdir "$NT_MNT/s1"
nt_check "and serves" sh -c "echo hi > '$NT_MNT/s1/f' && test \"\$(cat '$NT_MNT/s1/f')\" = hi"
nt_unmount
nt_finish
