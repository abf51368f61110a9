#!/usr/bin/env bash
# many.sh - a tree far larger than the daemon's descriptor cache: a
# command makes NOX_MANY_FILES files, then find, stat of every file, grep
# -r and rm -rf walk it through the mount.  Default sizes: 200,000 on the
# local backend and over noxd (where the listing comes in pages, files in
# bulk, and every unlink is a request: about 4 minutes here); 2,000 over
# noxd --v1-only, where the rm -rf is a script exec per 500 names (20,000
# took 10 minutes).  Under
# the sanitizers (NOX_SANITIZED=1) a tenth, at least 1,000: always well
# above the 256 descriptors the mount may keep.  The daemon's open descriptors are
# sampled all along and must stay under the bound docs/design.md gives
# (fd_cache + 256), and a command must still run afterwards (it failed
# with EMFILE once every node held a descriptor), and the daemon's peak
# RSS must stay under 64 MiB (the node budget, -o node_max; over HTTP
# also the manifest's 40 bytes a file).
# Hostile input: none; the size is the point.
. "$(dirname "$0")/lib.sh"
nt_require find xargs stat grep awk
nt_init
NT_T=900 # one command walks the whole tree here

case $NT_BACKEND in
local | noxd) N=200000 ;;
*) N=2000 ;;
esac
[ "${NOX_SANITIZED:-0}" = 1 ] && N=$((N / 10 > 1000 ? N / 10 : 1000))
N=${NOX_MANY_FILES:-$N}
PER=500
D=$(((N + PER - 1) / PER))
N=$((D * PER))
CACHE=256
BOUND=$((CACHE + 256))
# the default node budget (16,384, well under N); over --v1-only, where
# N is smaller, a budget of N/4 makes the kernel forget files in the
# middle of every walk there too
OPTS="fd_cache=$CACHE"
if [ "$NT_BACKEND" = noxd-v1 ]; then OPTS="$OPTS,node_max=$((N / 4))"; fi
nt_workspace many1 "$OPTS"
nt_log "$N files in $D directories; descriptor bound $BOUND"

# the daemon's open descriptors, sampled every 0.1 s into $NT_TMP/fds
fds_now() { ls "/proc/$NT_DPID/fd" 2>/dev/null | wc -l; }
sampler_start() {
	local i
	(while :; do fds_now; sleep 0.1; done) >"$NT_TMP/fds" 2>/dev/null &
	SAMPLER=$!
	# its first sample is in before the walk starts (a walk can end
	# before a sampler slowed down by the sanitizers wrote any)
	for i in $(seq 100); do
		[ -s "$NT_TMP/fds" ] && break
		sleep 0.05
	done
}
sampler_stop() { # WHAT: checks the peak
	local peak
	nt_stop_pid "$SAMPLER"
	fds_now >>"$NT_TMP/fds" # and one at the walk's end
	peak=$(sort -n "$NT_TMP/fds" | tail -n 1)
	nt_check "$1: descriptors stayed <= $BOUND (peak ${peak:-?})" \
		test "${peak:-99999}" -le "$BOUND"
}

req=$(printf '{"cmd": ["sh", "-c", "mkdir t && cd t && for d in $(seq %d); do mkdir d$d && (cd d$d && awk -v n=%d '"'"'BEGIN { for (i = 1; i <= n; i++) { f = \\"f\\" i; print i > f; close(f) } }'"'"') || exit 1; done"], "timeoutSeconds": 900}' "$D" "$PER")
printf '%s' "$req" >"$C/exec"
nt_check_out "a command made $N files" 0 cat "$C/status"

sampler_start
nt_check_out "find lists them all" "$((N + D + 1))" sh -c "find '$W/t' | wc -l"
sampler_stop "find"
# fs/tree pages noxd served so far (one line each in its log)
tree_pages() { grep -ac '/fs/tree' "$NT_NOXD_LOG" || true; }
[ "$NT_BACKEND" = noxd ] && pages0=$(tree_pages)
sampler_start
nt_check_out "stat of every file" "$N" sh -c \
	"find '$W/t' -type f -print0 | xargs -0 stat -c %s -- | wc -l"
sampler_stop "stat of all"
want=$(grep -rl 7 "$B/t" | wc -l)
sampler_start
nt_check_out "grep -r reads them all ($want match)" "$want" sh -c \
	"grep -rl 7 '$W/t' | wc -l"
sampler_stop "grep -r"
# the listing's age (cache_list.c, LIST_AGE): a listing that takes longer
# than the attribute timeout is not taken again at once, so stat of all
# and grep -r cost a few listings (200,000 files: 49 pages each), not one
# after another for as long as they run (4,500 pages before, grep -r not
# done in 8 minutes).  Not under the sanitizers, where the tree is small
# and its listing quicker than the timeout.
if [ "$NT_BACKEND" = noxd ] && [ "${NOX_SANITIZED:-0}" != 1 ]; then
	per=$(((N + D + 1 + 4095) / 4096))
	got=$(($(tree_pages) - pages0))
	nt_check "stat of all and grep -r: <= 6 listings of fs/tree ($got pages, $per a listing)" \
		test "$got" -le $((6 * per))
fi
nt_check_exec "a command still runs afterwards" 'echo ok' $'ok\n'
# the node budget (-o node_max, default 16,384): the kernel is asked to
# forget cold files, so the daemon's memory does not grow with the tree
# (200,000 nodes were 75 MiB); over HTTP the manifest adds 40 bytes a
# file (docs/performance.md).  Not under the sanitizers, whose shadow
# memory is most of the RSS.
if [ "${NOX_SANITIZED:-0}" != 1 ]; then
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$NT_DPID/status")
	nt_check "the daemon's peak RSS stayed under 64 MiB (${hwm:-?} KiB)" \
		test "${hwm:-999999}" -lt 65536
fi
sampler_start
nt_check "rm -rf of the tree" rm -rf "$W/t"
sampler_stop "rm -rf"
nt_check_not "the tree is gone in the mount" test -e "$W/t"
nt_check_exec "and in the sandbox" 'ls -A' ''
nt_finish
