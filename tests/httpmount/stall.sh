#!/bin/bash
# stall.sh - a server that accepts connections and never answers costs
# noxfs over HTTP one op_timeout per operation, and every such operation
# fails with an errno (never an empty listing or a close returning 0);
# what the cache holds is still served (issue 14).
# Real noxd behind tests/hostile/server.py --upstream, a relay told to
# stall ("request": reads the request, never answers; "body": headers and
# half the body, then nothing) or to read uploads slowly ("slow").
# Checked with -o op_timeout=2 (each bound below is that plus slack):
#   the mount is refused within start_timeout, with one line; a server
#   that passes the start checks and stalls the extension probe is
#   refused after that one deadline;
#   stalled: ls of a cached directory shows its entries, stat and cat of
#   cached files work; cat of a file never read, write+close of a new
#   file, mkdir of a new sandbox and ls in it fail within the bound;
#   a command fails within its own deadline (exec_timeout + 30 s);
#   body stalled: cat of a file never read fails within the bound;
#   server back: the journaled file arrives by itself; slow uploads
#   (longer than op_timeout in all) are not cut.
: "${NOX_TEST_BACKEND:=noxd}"
export NOX_TEST_BACKEND
. "$(dirname "$0")/../mount/lib.sh"
. "$(dirname "$0")/hm.sh"

nt_require python3 timeout
hm_require_noxd
nt_init

OPT=2		# -o op_timeout
SLACK=1500	# ms over it that an operation may take
EXEC_T=1	# -o exec_timeout: a command's deadline is this + 30 s

trap hm_relay_cleanup EXIT

hm_relay_start

# st_mode MODE: tells the relay how to behave from now on.
st_mode() { hm_relay_mode "$1"; }

# st_op OP PATH [ARG]: one operation through the mount; prints
# "RESULT MS" where RESULT is OK:<what it saw> or the errno name.
st_op() {
	timeout -k 5 120 python3 - "$@" <<'PY'
import errno, os, sys, time
op, path = sys.argv[1], sys.argv[2]
arg = sys.argv[3] if len(sys.argv) > 3 else ""
t0 = time.monotonic()
try:
    if op == "ls":
        got = ",".join(sorted(os.listdir(path)))
    elif op == "stat":
        got = str(os.stat(path).st_size)
    elif op == "cat":
        with open(path, "rb") as f:
            got = f.read().decode("latin-1").strip()
    elif op in ("put", "exec"):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, arg.encode())
        finally:
            os.close(fd)  # where an upload's failure is reported
        got = "written"
    elif op == "mkdir":
        os.mkdir(path)
        got = "made"
    else:
        raise SystemExit("unknown op " + op)
    res = "OK:" + got
except OSError as e:
    res = errno.errorcode.get(e.errno, str(e.errno))
print(res, int((time.monotonic() - t0) * 1000))
PY
}

# st_check WHAT WANT_ERE MAX_MS OP PATH [ARG]: OP's result matches
# WANT_ERE (whole) and it returned within MAX_MS.
st_check() {
	local what=$1 want=$2 max=$3 out res ms
	shift 3
	out=$(st_op "$@")
	res=${out% *}
	ms=${out##* }
	nt_check_eq "$what: result" 1 \
		"$(printf '%s\n' "$res" | grep -cxE -- "$want")" \
		"$* gave '$res', wanted /$want/"
	nt_check "$what: within $max ms (took $ms ms)" test "${ms:-999999}" -le "$max"
}

# ---- the mount is refused within the start deadline ---------------------
M2="$NT_TMP/m2"
mkdir -p "$M2"

# st_refused WHAT OPTS WANT_ERE MAX_MS: noxfs through the relay exits 1
# within MAX_MS with one line matching WANT_ERE, nothing mounted.
st_refused() {
	local what=$1 opts=$2 want=$3 max=$4 rc=0 t0 ms out="$NT_TMP/refused.out"
	t0=$(date +%s%N)
	timeout -k 5 60 "$NT_NOXFS" --url "http://127.0.0.1:$RELAY" -f \
		-o "$opts,cache_dir=$NT_TMP/cache2" "$M2" >"$out" 2>&1 || rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	nt_check_eq "$what: refused" 1 "$rc" "noxfs exit code"
	nt_check_out "$what: one line" 1 sh -c "wc -l <'$out'"
	nt_check_out "$what: says so" 1 sh -c "grep -cE '$want' '$out'"
	nt_check "$what: within $max ms (took $ms ms)" test "$ms" -le "$max"
	nt_check_not "$what: nothing mounted" nt_mounted "$M2"
	nt_log "said: $(cat "$out")"
}

st_mode request
st_refused "stalled at start" "start_timeout=3,op_timeout=$OPT" \
	'no answer from .* within 3 s' $((3000 + SLACK))
# the start checks pass, then the extension probe stalls: refused after
# that one deadline, not one more per request (the session's create)
st_mode ext
st_refused "stalled after the start checks" \
	"start_timeout=3,op_timeout=$OPT,session=s9" \
	"no answer from .* within $OPT s: GET /v1/extensions" \
	$((OPT * 1000 + SLACK))
st_mode off

# ---- a healthy mount through the relay, with a cache -----------------
NT_PORT=$RELAY nt_mount "op_timeout=$OPT,exec_timeout=$EXEC_T"
W="$NT_MNT/s1"
C="$W/.nox"
B=$(nt_backend_ws s1)
nt_check "sandbox s1" mkdir "$W"
nt_check "a directory" mkdir "$W/d"
st_check "a file written through the mount" 'OK:written' 10000 \
	put "$W/d/clean.txt" "clean"
mkdir -p "$B/d"
printf 'fetched\n' >"$B/d/fetched.txt"
sleep 1.2 # older than the listing's ttl: the next lookup lists again
st_check "read once (now cached)" 'OK:fetched' 10000 cat "$W/d/fetched.txt"
# made after that read, or its bulk fetch would have brought them too
printf 'remote\n' >"$B/d/remote.txt"
printf 'body\n' >"$B/d/body.txt"
sleep 1.2
st_check "listed" 'OK:body.txt,clean.txt,fetched.txt,remote.txt' 10000 \
	ls "$W/d"

# ---- the server stalls --------------------------------------------------
st_mode request
sleep 1.2 # the listing is stale again: the next lookup asks the server
# a command: its own deadline (exec_timeout + 30 s), not op_timeout; it
# runs beside the other checks
st_op exec "$C/exec" "echo hi" >"$NT_TMP/exec.out" &
EXEC_PID=$!
sleep 0.3
MAX=$((OPT * 1000 + SLACK))
st_check "stalled: ls of a cached directory (from the cache)" \
	'OK:body.txt,clean.txt,fetched.txt,remote.txt' "$MAX" ls "$W/d"
st_check "stalled: stat of a cached file" 'OK:5' "$MAX" stat "$W/d/clean.txt"
st_check "stalled: a written file reads from the cache" 'OK:clean' "$MAX" \
	cat "$W/d/clean.txt"
st_check "stalled: a fetched clean file reads from the cache" 'OK:fetched' \
	"$MAX" cat "$W/d/fetched.txt"
st_check "stalled: cat of a file never read fails" 'ETIMEDOUT|EIO' "$MAX" \
	cat "$W/d/remote.txt"
st_check "stalled: write+close of a new file fails" 'ETIMEDOUT|EIO' "$MAX" \
	put "$W/d/new.txt" "journaled"
st_check "stalled: the written file still reads back" 'OK:journaled' "$MAX" \
	cat "$W/d/new.txt"
st_check "stalled: mkdir of a new sandbox fails" 'ETIMEDOUT|EIO' "$MAX" \
	mkdir "$NT_MNT/s2"
st_check "stalled: ls of it fails (no empty success)" \
	'ENOENT|ETIMEDOUT|EIO' "$MAX" ls "$NT_MNT/s2"

# headers, then half the body, then nothing
st_mode body
st_check "body stalled: cat of a file never read fails" 'ETIMEDOUT|EIO' \
	"$MAX" cat "$W/d/body.txt"

# ---- the server is back -------------------------------------------------
st_mode off
# the flusher's retries reach the sandbox by themselves (one may have
# gone through in "body" mode, its answer cut: it ends on its stall);
# .nox/sync succeeds once nothing is pending nor in flight
for i in $(seq 40); do
	out=$(st_op put "$C/sync" x)
	[ "${out% *}" = OK:written ] && break
	sleep 0.5
done
nt_check_eq "back: .nox/sync succeeds" OK:written "${out% *}" "write .nox/sync"
nt_check_eq "back: the journaled file arrived by itself" journaled \
	"$(cat "$B/d/new.txt" 2>/dev/null)" "cat $B/d/new.txt"
st_check "back: the file never read reads" 'OK:remote' 10000 \
	cat "$W/d/remote.txt"

# slow, not stalled: 320 KiB at 64 KiB/s is 5 s, over op_timeout in all
st_mode slow
head -c $((320 << 10)) /dev/urandom >"$NT_TMP/big"
out=$(timeout -k 5 120 python3 - "$NT_TMP/big" "$W/d/big" <<'PY'
import errno, os, sys, time
data = open(sys.argv[1], "rb").read()
t0 = time.monotonic()
try:
    fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        off = 0
        while off < len(data):
            off += os.write(fd, data[off:])
    finally:
        os.close(fd)
    res = "OK"
except OSError as e:
    res = errno.errorcode.get(e.errno, str(e.errno))
print(res, int((time.monotonic() - t0) * 1000))
PY
)
st_mode off
nt_check_eq "slow upload: close returned 0" OK "${out% *}" "write+close: $out"
nt_check "slow upload: longer than op_timeout (took ${out##* } ms)" \
	test "${out##* }" -gt $((OPT * 1000))
nt_check_file "slow upload: all of it in the sandbox" "$B/d/big" "$NT_TMP/big"

# the command that met a stalled server
wait "$EXEC_PID"
out=$(cat "$NT_TMP/exec.out")
nt_check_eq "stalled command: fails" 1 \
	"$(printf '%s\n' "${out% *}" | grep -cxE 'ETIMEDOUT|EIO')" \
	"exec gave '$out'"
# (its path's lookup may first cost one op_timeout: nothing was known of
# the server's state when it started)
nt_check "stalled command: within exec_timeout + 30 s + op_timeout + slack (took ${out##* } ms)" \
	test "${out##* }" -le $(((EXEC_T + 30 + OPT) * 1000 + SLACK))

nt_unmount
nt_finish
