# lib.sh - shared helpers for the noxctl tests (sourced, bash).
#
# Each test gets its own temp dir $T (local base dir, files, logs) that the
# EXIT trap removes, after stopping any noxd it started (by PID).
# Checks count into "N passed, N failed"; the script fails if any failed.
set -u

: "${NOX_BUILD_ROOT:?run through meson test (NOX_BUILD_ROOT unset)}"
NOXCTL=$NOX_BUILD_ROOT/tools/noxctl/noxctl
NOXD=$NOX_BUILD_ROOT/tools/noxd/noxd
export NO_COLOR=1
unset NOXRUNNER_BASE_URL NOXRUNNER_TOKEN

pass=0
fail=0
noxd_pids=()
T=$(mktemp -d /tmp/noxctl-test.XXXXXX)

cli_cleanup() {
	local p
	for p in "${noxd_pids[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$T"
}
trap cli_cleanup EXIT

ok() {
	pass=$((pass + 1))
	echo "ok - $*"
}

not_ok() {
	fail=$((fail + 1))
	echo "not ok - $*"
}

# skip REASON: exit 77, or fail when NOX_NO_SKIP=1 (CI).
skip() {
	if [ "${NOX_NO_SKIP:-}" = 1 ]; then
		echo "not ok - prerequisite missing: $*"
		echo "0 passed, 1 failed"
		exit 1
	fi
	echo "SKIP: $*"
	exit 77
}

# run CMD...: runs it with stdin from /dev/null unless redirected by the
# caller; sets rc, and out/err (file contents; files in $T/out, $T/err).
run() {
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	out=$(cat "$T/out")
	err=$(cat "$T/err")
}

# check DESC WANT_RC CMD...: run CMD, compare its exit status.
check() {
	local desc=$1 want=$2
	shift 2
	run "$@" </dev/null
	if [ "$rc" -eq "$want" ]; then
		ok "$desc"
	else
		not_ok "$desc: exit $rc, want $want; stderr: $err"
	fi
}

# expect DESC COND...: a test(1)-style or any command condition.
expect() {
	local desc=$1
	shift
	if "$@"; then
		ok "$desc"
	else
		not_ok "$desc"
	fi
}

not() { ! "$@"; }

# pids_with TEXT: processes whose command line starts with TEXT
pids_with() {
	local d c
	for d in /proc/[0-9]*; do
		c=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
		[[ $c == "$1"* ]] && echo "${d#/proc/}"
	done
	return 0
}

# check_ctrl_c NAME NOXCTL-ARGS...: runs noxctl ARGS exec ID -- (a command
# of two 60 s sleeps, one in the background) in the background, sends
# SIGINT once the command runs (Ctrl-C), and checks that noxctl exits 130
# within 2 s with "interrupted" on stderr and that no process of the
# command is left 1 s after.  NAME: the sandbox.
check_ctrl_c() {
	local id=$1 mark i pid rc t0 t1
	shift
	mark="60.$$$RANDOM"
	"$@" exec "$id" -- sh -c "sleep $mark & sleep $mark; wait" \
		>"$T/cc.out" 2>"$T/cc.err" &
	pid=$!
	for i in $(seq 200); do
		[ -n "$(pids_with "sleep $mark")" ] && break
		sleep 0.05
	done
	expect "Ctrl-C: the command runs" [ -n "$(pids_with "sleep $mark")" ]
	t0=$(date +%s%N)
	kill -INT "$pid"
	rc=0
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.02
	done
	t1=$(date +%s%N)
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
	fi
	wait "$pid" || rc=$?
	expect "Ctrl-C: noxctl exits 130 (got $rc)" [ "$rc" -eq 130 ]
	expect "Ctrl-C: within 2 s ($(((t1 - t0) / 1000000)) ms)" \
		[ $(((t1 - t0) / 1000000)) -lt 2000 ]
	expect "Ctrl-C: stderr says interrupted" grep -q interrupted "$T/cc.err"
	sleep 1
	expect "Ctrl-C: no process of the command left" \
		[ -z "$(pids_with "sleep $mark")" ]
	pids_with "sleep $mark" | xargs -r kill -KILL
}

quiet() { "$@" >/dev/null 2>&1; }

contains() { case $1 in *"$2"*) return 0 ;; esac; return 1; }

json_ok() { python3 -c 'import json,sys; json.load(sys.stdin)' <"$1"; }

# json_get FILE PYEXPR: prints eval of PYEXPR with j = the parsed JSON.
json_get() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

need_bwrap() {
	command -v bwrap >/dev/null || skip "bwrap not installed"
	bwrap --ro-bind / / --dev /dev --proc /proc true 2>/dev/null ||
		skip "bwrap cannot create a sandbox here"
}

# start_noxd NAME [ARGS...]: starts noxd on 127.0.0.1:0 with base dir
# $T/NAME; sets url.  Waits at most 10 s for its port file.
start_noxd() {
	local name=$1 i port
	shift
	[ -x "$NOXD" ] || skip "noxd not built ($NOXD)"
	mkdir -p "$T/$name"
	"$NOXD" --listen 127.0.0.1:0 --base-dir "$T/$name" \
		--port-file "$T/$name.port" "$@" >"$T/$name.stdout" 2>"$T/$name.log" &
	noxd_pids+=($!)
	for i in $(seq 100); do
		if [ -s "$T/$name.port" ]; then
			break
		fi
		if ! kill -0 "${noxd_pids[-1]}" 2>/dev/null; then
			echo "noxd exited early:"; cat "$T/$name.log"
			return 1
		fi
		sleep 0.1
	done
	port=$(tr -dc 0-9 <"$T/$name.port")
	[ -n "$port" ] || { echo "noxd wrote no port"; cat "$T/$name.log"; return 1; }
	url=http://127.0.0.1:$port
}

finish() {
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}
