# lib.sh - harness for the noxfs mount tests (sourced by every tests/mount
# script; not run on its own).
#
# Each script gets its own temp dir holding a mount point, a backend base
# dir and one daemon log per mount.  The backend is chosen by
# NOX_TEST_BACKEND:
#   local    (default) noxfs --local=BASE -f [-o OPTS] MNT
#   noxd     real tools/noxd/noxd on 127.0.0.1 over BASE, then
#            noxfs --url http://127.0.0.1:PORT -f -o cache_dir=DIR MNT
#   noxd-v1  the same with noxd --v1-only (no extensions)
# NOX_TEST_SESSION=1 makes nt_workspace mount with -o session=ID instead of
# mkdir MNT/ID, so the same cases run on a session mount.
# NOX_TEST_WRAPPER (e.g. "valgrind -q") is put in front of the daemon.
# NOX_TEST_OPTS (e.g. "fd_cache=4") is added to every mount's -o.
# NOX_TEST_NATIVE=1 (harness self-check only): no mount at all, W is the
# backend directory and nt_exec runs sh -c there, writing C/stdout etc.;
# shows which checks are wrong on a real local file system.
#
# The daemon runs in the foreground in the background; the harness waits
# (bounded) for the mount to show in /proc/self/mountinfo while the daemon
# lives, and on exit always unmounts (fusermount3 -u, then -uz), stops the
# daemon and noxd by PID (TERM, 5 s, KILL) and removes the temp dir.  Every
# clean unmount checks the daemon's log for "noxfs: error:" lines (and
# sanitizer reports) not declared with nt_expect_log_error.
#
# Checks print "ok N - what" or "not ok N - what" with what was tried,
# expected and got; nt_finish prints "N passed, N failed" and exits 1 on
# any failure.  Missing prerequisites exit 77 (skip), or fail when
# NOX_NO_SKIP=1.
#
# Limits: Linux only; needs bash, python3, coreutils and util-linux; the
# backend-side paths (nt_backend_ws) assume the local layout
# BASE/noxrunner_sandbox_ID/workspace, which noxd over BASE also uses.

set -u

NT_SCRIPT=$(basename "$0" .sh)
NT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NT_PY="$NT_DIR/nt.py"
NT_PASS=0
NT_FAIL=0
NT_N=0
NT_BACKEND=${NOX_TEST_BACKEND:-local}
NT_NATIVE=${NOX_TEST_NATIVE:-0}
NT_SESSION=${NOX_TEST_SESSION:-0}
NT_BUILD=${NOX_BUILD_ROOT:-}
NT_NOXFS=""
NT_TMP=""
NT_MNT=""
NT_BASE=""
NT_LOG=""
NT_DPID=""
NT_NOXD_PID=""
NT_NOXD_LOG=""
NT_PORT=""
NT_MOUNTS=0
NT_EXPECT_ERR=()
NT_MOUNT_WAIT=${NOX_TEST_MOUNT_TIMEOUT:-10}
NT_T=60 # seconds for any single command through the mount
# Over HTTP every metadata operation is a round trip (on a v1-only server an
# exec: ~30 ms, more under ASan), so a 3,000-file rm -rf legitimately takes
# minutes: the hang guard is wider there, the same checks still apply.
case ${NOX_TEST_BACKEND:-local} in
local) ;;
*) NT_T=300 ;;
esac

# ---- reporting ---------------------------------------------------------

nt_log() { printf '# %s\n' "$*"; }

nt_pass() {
	NT_N=$((NT_N + 1))
	NT_PASS=$((NT_PASS + 1))
	printf 'ok %d - %s\n' "$NT_N" "$1"
}

# nt_fail WHAT TRIED EXPECTED GOT
nt_fail() {
	NT_N=$((NT_N + 1))
	NT_FAIL=$((NT_FAIL + 1))
	printf 'not ok %d - %s\n' "$NT_N" "$1"
	printf '#   tried:    %s\n' "${2:0:1000}"
	printf '#   expected: %s\n' "$3"
	printf '#   got:      %s\n' "$4" | head -c 4000
	printf '\n'
}

# A missing prerequisite: skip (77), or fail under NOX_NO_SKIP=1.
nt_skip() {
	if [ "${NOX_NO_SKIP:-0}" = 1 ]; then
		echo "not ok - prerequisite missing: $* (NOX_NO_SKIP=1)"
		echo "0 passed, 1 failed"
		exit 1
	fi
	echo "SKIP: $*"
	exit 77
}

# Fatal: cannot go on (setup broke).  Counts as a failure.
nt_die() {
	nt_fail "$NT_SCRIPT: fatal" "setup" "setup to work" "$*"
	nt_finish
}

# Quote a command for the report.
nt_q() {
	local s="" a
	for a in "$@"; do s+="$(printf '%q' "$a") "; done
	printf '%s' "${s% }"
}

# nt_run CMD...: runs CMD bounded by NT_T; shell functions run as they are
# (those used with the checks bound their own commands).
nt_run() {
	if [ "$(type -t "$1")" = function ]; then
		"$@"
	else
		timeout -k 5 "$NT_T" "$@"
	fi
}

# nt_check WHAT CMD...: passes when CMD (bounded by NT_T) exits 0.
nt_check() {
	local what=$1 out rc
	shift
	out=$(nt_run "$@" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		nt_pass "$what"
	else
		nt_fail "$what" "$(nt_q "$@")" "exit 0" "exit $rc: $out"
	fi
	return $rc
}

# nt_check_not WHAT CMD...: passes when CMD exits non-zero (not timeout).
nt_check_not() {
	local what=$1 out rc
	shift
	out=$(nt_run "$@" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 137 ]; then
		nt_pass "$what"
		return 0
	fi
	nt_fail "$what" "$(nt_q "$@")" "non-zero exit (not a timeout)" \
		"exit $rc: $out"
	return 1
}

# nt_check_eq WHAT EXPECTED GOT [TRIED]
nt_check_eq() {
	if [ "$2" = "$3" ]; then
		nt_pass "$1"
		return 0
	fi
	nt_fail "$1" "${4:-compare}" "$(printf '%q' "$2")" \
		"$(printf '%q' "$3")"
	return 1
}

# nt_check_out WHAT EXPECTED CMD...: CMD's stdout (exit 0) equals EXPECTED.
nt_check_out() {
	local what=$1 exp=$2 out rc
	shift 2
	out=$(nt_run "$@" 2>"$NT_TMP/stderr.out")
	rc=$?
	if [ $rc -eq 0 ] && [ "$out" = "$exp" ]; then
		nt_pass "$what"
		return 0
	fi
	nt_fail "$what" "$(nt_q "$@")" "exit 0, $(printf '%q' "$exp")" \
		"exit $rc, $(printf '%q' "$out") stderr: $(head -c 800 \
		"$NT_TMP/stderr.out")"
	return 1
}

# nt_check_errno WHAT ERRNAME OP ARGS...: runs "nt.py errno OP ARGS" and
# expects it to print ERRNAME (or OK).
nt_check_errno() {
	local what=$1 exp=$2 out
	shift 2
	out=$(timeout -k 5 "$NT_T" python3 "$NT_PY" errno "$@" 2>&1)
	[ $? -eq 124 ] && out="TIMEOUT $out"
	nt_check_eq "$what" "$exp" "$out" "nt.py errno $(nt_q "$@")"
}

# nt_check_errno_re WHAT ERE OP ARGS...: as nt_check_errno, any errno name
# matching ERE (whole) passes.
nt_check_errno_re() {
	local what=$1 exp=$2 out
	shift 2
	out=$(timeout -k 5 "$NT_T" python3 "$NT_PY" errno "$@" 2>&1)
	if printf '%s' "$out" | grep -qxE -- "$exp"; then
		nt_pass "$what"
		return 0
	fi
	nt_fail "$what" "nt.py errno $(nt_q "$@")" "$exp" "$out"
	return 1
}

# nt_check_file WHAT FILE EXPECTED-FILE: byte-equal (cmp).
nt_check_file() {
	local out
	out=$(timeout -k 5 "$NT_T" cmp "$2" "$3" 2>&1)
	case $? in
	0) nt_pass "$1"; return 0 ;;
	esac
	nt_fail "$1" "cmp $(nt_q "$2" "$3")" "identical" "$out"
	return 1
}

# nt_check_content WHAT FILE STRING: FILE holds exactly STRING (bytes).
nt_check_content() {
	local got
	got=$(timeout -k 5 "$NT_T" cat "$2" 2>&1; echo x)
	got=${got%x}
	nt_check_eq "$1" "$3" "$got" "cat $(nt_q "$2")"
}

# ---- prerequisites -----------------------------------------------------

# nt_require PROG...: each must be on PATH (fuse, python3 always checked).
nt_require() {
	local p
	[ -c /dev/fuse ] || nt_skip "no /dev/fuse"
	[ -r /dev/fuse ] && [ -w /dev/fuse ] || nt_skip "/dev/fuse not usable"
	for p in fusermount3 python3 timeout "$@"; do
		command -v "$p" >/dev/null 2>&1 || nt_skip "no $p"
	done
	if [ "$NT_BACKEND" = local ]; then
		command -v bwrap >/dev/null 2>&1 || nt_skip "no bwrap"
	fi
}

# ---- setup and teardown ------------------------------------------------

nt_mounted() { # MNT
	awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

nt_alive() { # PID; a zombie counts as dead
	local st
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ]
}

# nt_stop_pid PID: TERM, up to 5 s, then KILL; reaps it if our child.
nt_stop_pid() {
	local pid=$1 i
	[ -n "$pid" ] || return 0
	if nt_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		for i in $(seq 50); do
			nt_alive "$pid" || break
			sleep 0.1
		done
		nt_alive "$pid" && kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

nt_cleanup() {
	local rc=$? m
	trap - EXIT
	if [ -n "$NT_MNT" ] && nt_mounted "$NT_MNT"; then
		timeout -k 2 15 fusermount3 -u "$NT_MNT" 2>/dev/null ||
			timeout -k 2 15 fusermount3 -uz "$NT_MNT" 2>/dev/null
	fi
	nt_stop_pid "$NT_DPID"
	nt_stop_pid "$NT_NOXD_PID"
	# the daemons are gone: nothing holds the tmpfs mounts now
	for m in "${NT_TMPFS[@]}"; do
		nt_mounted "$m" || continue
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	if [ -n "$NT_TMP" ] && [ -d "$NT_TMP" ]; then
		if [ -n "$NT_MNT" ] && nt_mounted "$NT_MNT"; then
			echo "# still mounted, leaving $NT_TMP" >&2
		elif [ "${NOX_TEST_KEEP:-0}" = 1 ]; then
			echo "# kept $NT_TMP" >&2
		else
			rm -rf "$NT_TMP"
		fi
	fi
	exit $rc
}

# nt_tmpfs DIR MIB: a tmpfs of MIB MiB (mode 0700) on DIR, unmounted by
# nt_cleanup once the daemons have stopped.  Skips (fails with
# NOX_NO_SKIP=1) when it cannot mount.
NT_TMPFS=()
nt_tmpfs() {
	mount -t tmpfs -o "size=${2}m,mode=0700" tmpfs "$1" ||
		nt_skip "cannot mount a tmpfs on $1"
	NT_TMPFS+=("$1")
}

# nt_init: temp dir, trap, programs.  Call once, after nt_require.
nt_init() {
	[ -n "$NT_BUILD" ] || nt_die "NOX_BUILD_ROOT is not set"
	NT_NOXFS="$NT_BUILD/src/fs/noxfs"
	[ "$NT_NATIVE" = 1 ] && NT_NOXFS=/bin/false
	[ -x "$NT_NOXFS" ] || {
		NT_TMP=""
		nt_fail "noxfs binary" "test -x $NT_NOXFS" "built" "missing"
		nt_finish
	}
	NT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/noxfs-mt-$NT_SCRIPT.XXXXXX") ||
		nt_die "mktemp"
	trap nt_cleanup EXIT
	trap 'exit 130' INT TERM
	NT_MNT="$NT_TMP/mnt"
	NT_BASE="$NT_TMP/base"
	mkdir -p "$NT_MNT" "$NT_BASE" "$NT_TMP/home" "$NT_TMP/cache"
	export HOME="$NT_TMP/home" GIT_CONFIG_NOSYSTEM=1 LC_ALL=C
	nt_log "backend $NT_BACKEND, temp $NT_TMP"
	case $NT_BACKEND in
	local) ;;
	noxd | noxd-v1) nt_start_noxd ;;
	*) nt_die "unknown NOX_TEST_BACKEND=$NT_BACKEND" ;;
	esac
}

nt_start_noxd() {
	local noxd="$NT_BUILD/tools/noxd/noxd" pf="$NT_TMP/noxd.port" i
	local v1=()
	[ -x "$noxd" ] || nt_die "no $noxd"
	[ "$NT_BACKEND" = noxd-v1 ] && v1=(--v1-only)
	# NT_NOXD_ARGS: more options, split at white space (pages.sh)
	NT_NOXD_LOG="$NT_TMP/noxd.log"
	"$noxd" --listen 127.0.0.1:0 --base-dir "$NT_BASE" --port-file "$pf" \
		"${v1[@]}" ${NT_NOXD_ARGS:-} >"$NT_NOXD_LOG" 2>&1 &
	NT_NOXD_PID=$!
	for i in $(seq 100); do
		[ -s "$pf" ] && break
		nt_alive "$NT_NOXD_PID" || break
		sleep 0.1
	done
	NT_PORT=$(tr -dc 0-9 <"$pf" 2>/dev/null)
	if [ -z "$NT_PORT" ]; then
		nt_die "noxd gave no port; log: $(tail -n 20 "$NT_NOXD_LOG")"
	fi
	nt_log "noxd pid $NT_NOXD_PID port $NT_PORT"
}

# nt_mount [OPTS]: mounts at NT_MNT with -o OPTS (comma list, may be "").
nt_mount() {
	local opts=${1:-} i args=()
	# NOX_TEST_OPTS: options added to every mount (fd_cache=4 runs a
	# suite with node descriptors closed and reopened all the time)
	[ -n "${NOX_TEST_OPTS:-}" ] && opts="${opts:+$opts,}$NOX_TEST_OPTS"
	if nt_mounted "$NT_MNT"; then
		nt_fail "mount" "nt_mount" "$NT_MNT not mounted yet" \
			"already mounted (a test did not unmount)"
		nt_finish
	fi
	NT_MOUNTS=$((NT_MOUNTS + 1))
	NT_LOG="$NT_TMP/noxfs.$NT_MOUNTS.log"
	case $NT_BACKEND in
	local)
		args=(--local="$NT_BASE" -f)
		;;
	*)
		args=(--url "http://127.0.0.1:$NT_PORT" -f)
		opts="cache_dir=$NT_TMP/cache${opts:+,$opts}"
		;;
	esac
	[ -n "$opts" ] && args+=(-o "$opts")
	nt_log "mount: noxfs $(nt_q "${args[@]}" "$NT_MNT")"
	# shellcheck disable=SC2086
	${NOX_TEST_WRAPPER:-} "$NT_NOXFS" "${args[@]}" "$NT_MNT" \
		>"$NT_LOG" 2>&1 &
	NT_DPID=$!
	for i in $(seq $((NT_MOUNT_WAIT * 10))); do
		nt_mounted "$NT_MNT" && break
		nt_alive "$NT_DPID" || break
		sleep 0.1
	done
	if ! nt_mounted "$NT_MNT"; then
		nt_fail "mount" "noxfs $(nt_q "${args[@]}" "$NT_MNT")" \
			"mounted within $NT_MOUNT_WAIT s" \
			"$(nt_alive "$NT_DPID" && echo "daemon alive, no mount" ||
				echo "daemon exited"); log: $(tail -n 30 "$NT_LOG")"
		nt_stop_pid "$NT_DPID"
		NT_DPID=""
		nt_finish
	fi
}

# nt_expect_log_error ERE: "noxfs: error:" lines matching ERE are expected.
nt_expect_log_error() { NT_EXPECT_ERR+=("$1"); }

# nt_check_log: no unexpected error lines in the current daemon log.
nt_check_log() {
	local lines p
	[ -n "$NT_LOG" ] && [ -f "$NT_LOG" ] || return 0
	lines=$(grep -aE 'noxfs: error:|AddressSanitizer|LeakSanitizer|runtime error:' \
		"$NT_LOG")
	for p in "${NT_EXPECT_ERR[@]}"; do
		[ -n "$lines" ] || break
		lines=$(printf '%s\n' "$lines" | grep -Ev -- "$p")
	done
	if [ -z "$lines" ]; then
		nt_pass "no unexpected error lines in daemon log $NT_MOUNTS"
	else
		nt_fail "no unexpected error lines in daemon log $NT_MOUNTS" \
			"grep 'noxfs: error:' $NT_LOG" "none" "$lines"
	fi
	nt_print_sanitizer "$NT_LOG"
}

# nt_print_sanitizer LOG: prints every sanitizer report in LOG whole
# (stacks included), as comments: the log itself goes with the temp dir.
nt_print_sanitizer() {
	grep -aqE 'Sanitizer|runtime error:' "$1" 2>/dev/null || return 0
	echo "# --- sanitizer report in $1 ---"
	sed -n '/runtime error:/p; /==[0-9]*==ERROR/,/^SUMMARY:/p' "$1" |
		sed 's/^/# /'
}

# nt_wait_exit PID SECONDS: waits for PID to end; sets NT_RC to its status
# (or "timeout").
nt_wait_exit() {
	local pid=$1 n=$(($2 * 10)) i
	NT_RC=timeout
	for i in $(seq "$n"); do
		nt_alive "$pid" || break
		sleep 0.1
	done
	nt_alive "$pid" && return 1
	wait "$pid" 2>/dev/null
	NT_RC=$?
	return 0
}

# nt_unmount: fusermount3 -u; checks it worked, the daemon exited 0 and
# the log is clean.
nt_unmount() {
	local out
	[ -n "$NT_DPID" ] || return 0
	out=$(timeout -k 2 30 fusermount3 -u "$NT_MNT" 2>&1)
	if [ $? -ne 0 ]; then
		nt_fail "fusermount3 -u" "fusermount3 -u $NT_MNT" "exit 0" "$out"
		timeout -k 2 15 fusermount3 -uz "$NT_MNT" 2>/dev/null
	fi
	nt_wait_exit "$NT_DPID" 15
	if [ "$NT_RC" = 0 ]; then
		nt_pass "daemon exited 0 after unmount"
	else
		nt_fail "daemon exited 0 after unmount" "wait $NT_DPID" \
			"exit 0 within 15 s" "$NT_RC; log: $(tail -n 20 "$NT_LOG")"
		nt_stop_pid "$NT_DPID"
	fi
	NT_DPID=""
	if nt_mounted "$NT_MNT"; then
		nt_fail "mount gone" "mountinfo" "no $NT_MNT" "still mounted"
		timeout -k 2 15 fusermount3 -uz "$NT_MNT" 2>/dev/null
	fi
	nt_check_log
}

# nt_finish: unmount if still mounted, print the summary, exit.
nt_finish() {
	if [ -n "$NT_DPID" ]; then
		nt_unmount
	fi
	if [ "$NT_BACKEND" != local ] && [ -n "$NT_NOXD_LOG" ] &&
		grep -aq 'noxd: error:' "$NT_NOXD_LOG" 2>/dev/null; then
		nt_fail "no error lines in noxd log" "grep $NT_NOXD_LOG" "none" \
			"$(grep -a 'noxd: error:' "$NT_NOXD_LOG" | head -n 20)"
	fi
	if [ "$NT_FAIL" -ne 0 ] && [ -n "$NT_LOG" ] && [ -f "$NT_LOG" ]; then
		echo "# --- last daemon log lines ($NT_LOG) ---"
		tail -n 40 "$NT_LOG" | sed 's/^/# /'
	fi
	echo "$NT_PASS passed, $NT_FAIL failed"
	[ "$NT_FAIL" -eq 0 ] && exit 0
	exit 1
}

# ---- sandboxes ---------------------------------------------------------

# nt_backend_ws ID: the backend's real workspace directory.
nt_backend_ws() { printf '%s/noxrunner_sandbox_%s/workspace' "$NT_BASE" "$1"; }

# nt_workspace ID [OPTS]: mounts (if needed) and opens sandbox ID; sets
# W (workspace in the mount), C (its .nox dir), B (backend workspace).
# NOX_TEST_SESSION=1: mounts with -o session=ID (W is the mount itself).
nt_workspace() {
	local id=$1 opts=${2:-}
	B=$(nt_backend_ws "$id")
	if [ "$NT_NATIVE" = 1 ]; then
		mkdir -p "$B" "$NT_TMP/nox"
		W=$B
		C="$NT_TMP/nox"
		return 0
	fi
	if [ "$NT_SESSION" = 1 ]; then
		nt_mount "session=$id${opts:+,$opts}"
		W=$NT_MNT
	else
		[ -n "$NT_DPID" ] || nt_mount "$opts"
		W="$NT_MNT/$id"
		timeout -k 5 "$NT_T" mkdir "$W" ||
			nt_die "mkdir $W failed; log: $(tail -n 20 "$NT_LOG")"
	fi
	C="$W/.nox"
	nt_log "workspace $W (backend $B)"
}

# nt_exec TEXT: runs shell TEXT through C/exec (one write, as echo does).
nt_exec() {
	if [ "$NT_NATIVE" = 1 ]; then
		(cd "$W" && timeout 60 sh -c "$1" >"$C/stdout" 2>"$C/stderr"
			echo $? >"$C/status")
		return 0
	fi
	timeout -k 5 "$NT_T" sh -c 'printf "%s\n" "$1" > "$2"' sh "$1" "$C/exec"
}

# nt_check_exec WHAT TEXT EXPECTED-STDOUT: runs TEXT, compares .nox/stdout.
nt_check_exec() {
	local out rc got
	out=$(nt_exec "$2" 2>&1)
	rc=$?
	got=$(timeout -k 5 "$NT_T" cat "$C/stdout" 2>&1; echo x)
	got=${got%x}
	if [ $rc -eq 0 ] && [ "$got" = "$3" ]; then
		nt_pass "$1"
		return 0
	fi
	nt_fail "$1" "echo $(printf '%q' "$2") > .nox/exec; cat .nox/stdout" \
		"write ok, stdout $(printf '%q' "$3")" \
		"write exit $rc $out, stdout $(printf '%q' "$got"), stderr \
$(timeout 10 head -c 500 "$C/stderr" 2>&1)"
	return 1
}

# nt_tree_list DIR: a listing of DIR with type, mode, size of files,
# symlink targets and file mtimes, sorted (for comparing trees).
nt_tree_list() {
	(cd "$1" && find . -mindepth 1 \
		\( -type f -printf '%p f %m %s %Ts\n' \) -o \
		\( -type l -printf '%p l %l\n' \) -o \
		\( -type d -printf '%p d %m\n' \) -o -printf '%p ? %y\n' |
		LC_ALL=C sort)
}

# nt_make_tree DIR: a tree with modes, symlinks, empty dirs, a hard link
# and odd names (spaces, quotes, newline, unicode, leading dash, 255 bytes).
nt_make_tree() {
	local d=$1 long
	mkdir -p "$d/a/b/c" "$d/empty" "$d/empty2/deeper" "$d/sp ace dir"
	printf 'hello\n' >"$d/a/hello.txt"
	printf 'x%.0s' $(seq 1000) >"$d/a/b/k.txt"
	head -c 300000 /dev/urandom >"$d/a/b/c/bin.dat"
	: >"$d/a/empty-file"
	printf '#!/bin/sh\necho run\n' >"$d/a/script.sh"
	chmod 755 "$d/a/script.sh"
	printf 'secret\n' >"$d/a/private"
	chmod 600 "$d/a/private"
	printf 'ro\n' >"$d/a/readonly"
	chmod 444 "$d/a/readonly"
	chmod 700 "$d/a/b"
	printf 'q\n' >"$d/sp ace dir/file with spaces"
	printf 'q\n' >"$d/it's \"quoted\""
	printf 'n\n' >"$d/new
line"
	printf 'u\n' >"$d/ünïcødé-文件"
	printf 'dash\n' >"$d/-leading-dash"
	printf 'dollar\n' >"$d/\$(echo pwned)"
	printf 'bs\n' >"$d/back\\slash"
	long=$(printf 'L%.0s' $(seq 250))
	printf 'long\n' >"$d/${long}.txt"
	ln -s hello.txt "$d/a/rel-link"
	ln -s ../a/b/k.txt "$d/empty2/up-link"
	ln -s /nonexistent/target "$d/a/dangling"
	ln -s b "$d/a/dirlink"
	ln "$d/a/hello.txt" "$d/a/hardlink"
	touch -d '2001-02-03 04:05:06' "$d/a/hello.txt"
	touch -h -d '2002-03-04 05:06:07' "$d/a/rel-link"
}
