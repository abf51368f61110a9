#!/usr/bin/env bash
# bench-exec.sh - exec round trips per second through noxctl, one process
# per command, on the local backend and through a real noxd on loopback,
# plus the same through one "noxctl shell" process (no process start-up
# per command).
#   tools/noxctl/bench-exec.sh [BUILD_DIR] [N]     (defaults: build, 200)
# Prints one line per case: "case: N execs in S s = R/s".
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
n=${2:-200}
noxctl=$build/tools/noxctl/noxctl
noxd=$build/tools/noxd/noxd
tmp=$(mktemp -d /tmp/noxctl-bench.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# measure NAME CMD...: runs CMD n times
measure() {
	local name=$1 t0 t1 i
	shift
	t0=$(date +%s%N)
	for ((i = 0; i < n; i++)); do
		"$@" >/dev/null
	done
	t1=$(date +%s%N)
	report "$name" "$t0" "$t1"
}

report() {
	awk -v name="$1" -v n="$n" -v ns=$(($3 - $2)) \
		'BEGIN { s = ns / 1e9; printf "%s: %d execs in %.2f s = %.0f/s (%.2f ms each)\n", name, n, s, n / s, s * 1000 / n }'
}

# shell_measure NAME NOXCTL-ARGS...: n lines of "true" through one shell
shell_measure() {
	local name=$1 t0 t1
	shift
	t0=$(date +%s%N)
	"$noxctl" "$@" shell bench <"$tmp/lines" >/dev/null
	t1=$(date +%s%N)
	report "$name" "$t0" "$t1"
}

for ((i = 0; i < n; i++)); do echo true; done >"$tmp/lines"
"$noxctl" --local="$tmp/local" create bench >/dev/null
measure "local (bwrap) noxctl exec true" "$noxctl" --local="$tmp/local" exec bench -- true
measure "local unisolated noxctl exec true" "$noxctl" --local="$tmp/local" --unisolated -q exec bench -- true 2>/dev/null
shell_measure "local (bwrap) noxctl shell, true per line" --local="$tmp/local"

if [ -x "$noxd" ]; then
	mkdir -p "$tmp/srv"
	"$noxd" --listen 127.0.0.1:0 --base-dir "$tmp/srv" --port-file "$tmp/port" >/dev/null 2>"$tmp/noxd.log" &
	pid=$!
	for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
	url=http://127.0.0.1:$(tr -dc 0-9 <"$tmp/port")
	"$noxctl" --url "$url" create bench >/dev/null
	measure "http via noxd noxctl exec true" "$noxctl" --url "$url" exec bench -- true
	shell_measure "http via noxd noxctl shell, true per line" --url "$url"
else
	echo "noxd not built: http cases skipped"
fi
