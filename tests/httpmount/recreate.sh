#!/bin/bash
# recreate.sh - a sandbox deleted and made again with the same id shows
# the new sandbox, never the old one's files (issue 14 item 5).  Real
# noxd on loopback; the other client is noxctl.  Cases:
#   A  mkdir, a file, noxctl delete, mkdir through the mount: the old file
#      is neither listed nor readable, a new write lands in the new
#      sandbox and in the cache dir's <id>/tree; the old cache is gone
#   B  as A in write-back mode with the file still unsent at the delete:
#      the old cache, journal and all, is in lost/<id>.TIME with a log
#      line; nothing of it reaches the new sandbox
#   C  deleted and made again by noxctl while mounted, the mount looking
#      in between (it notices the 404) and not looking (the listing
#      settles it)
#   D  across a remount with the cache dir: made again between the
#      mounts; deleted between them and made again through the mount;
#      the same with a journal kept by a daemon killed with a write
#      unsent (replayed into the sandbox made again; kept in lost/ for
#      the deleted one)
# On the local backend (NOX_TEST_BACKEND=local: no cache) A, C and D1
# run, the checks of the cache dir left out.
# A reader holds the old sandbox's file open across each delete, so its
# struct and cache outlive the new sandbox's attach (the bug needed that
# order); then the kernel is made to forget unused nodes (drop_caches 2,
# as under memory pressure) and the new sandbox must be intact.
: "${NOX_TEST_BACKEND:=noxd}"
export NOX_TEST_BACKEND
. "$(dirname "$0")/../mount/lib.sh"
. "$(dirname "$0")/hm.sh"

nt_require python3
nt_init

CACHE="$NT_TMP/cache/127.0.0.1_$NT_PORT"
RC_HTTP=1
RC_WHERE=(--url "http://127.0.0.1:$NT_PORT")
if [ "$NT_BACKEND" = local ]; then
	RC_HTTP=""
	RC_WHERE=(--local="$NT_BASE")
fi

# rc_ctl ARGS: noxctl, the other client.
rc_ctl() {
	timeout -k 5 30 "$NT_BUILD/tools/noxctl/noxctl" -q "${RC_WHERE[@]}" \
		"$@" >/dev/null 2>&1
}

# rc_mkdir DIR: mkdir through the mount; a dentry the kernel still holds
# answers EEXIST until the entry timeout (1 s) passes, so retry for 5 s.
rc_mkdir() {
	local i
	for i in $(seq 25); do
		timeout -k 5 30 mkdir "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}

# rc_errno PATH: reads PATH; OK or the errno name.
rc_errno() {
	timeout -k 5 30 python3 - "$1" <<'PY'
import errno, sys
try:
    open(sys.argv[1], "rb").read()
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
PY
}

# rc_new WHAT ID: the sandbox at W is the new, empty one: no old f listed
# or readable; a new file g lands in the sandbox and in the cache's tree.
rc_new() {
	local what=$1 id=$2 list
	list=$(timeout -k 5 30 ls -A "$W" 2>&1)
	nt_check_eq "$what: the old file is not listed" "" \
		"$(printf '%s\n' "$list" | grep -x f)"
	nt_check_eq "$what: ...nor readable" ENOENT "$(rc_errno "$W/f")"
	printf 'new %s' "$what" >"$W/g"
	nt_check_content "$what: a new write lands in the new sandbox" \
		"$(nt_backend_ws "$id")/g" "new $what"
	nt_check_eq "$what: ...where nothing of the old one is" "no f" \
		"$(test -e "$(nt_backend_ws "$id")/f" && echo f || echo no f)"
	if [ -n "$RC_HTTP" ]; then
		nt_check_content "$what: ...and in the cache's tree" \
			"$CACHE/$id/tree/g" "new $what"
		nt_check_eq "$what: the cache's tree has no old file" "no f" \
			"$(test -e "$CACHE/$id/tree/f" && echo f || echo no f)"
	fi
	# the old sandbox's last node goes: its release must leave the new
	# sandbox's cache alone
	rc_release
	rc_forget
	nt_check_content "$what: the new file still reads back" "$W/g" \
		"new $what"
	[ -n "$RC_HTTP" ] &&
		nt_check_content "$what: ...and stays in the cache's tree" \
			"$CACHE/$id/tree/g" "new $what"
}

# rc_forget: the kernel forgets the nodes nothing uses, as under memory
# pressure, so the old sandbox's last references go now (its release
# must not touch the new sandbox's cache).
rc_forget() {
	sync
	echo 2 >/proc/sys/vm/drop_caches 2>/dev/null
	sleep 0.3
}

# rc_old ID TEXT: makes sandbox ID through the mount with f = TEXT, sent.
rc_old() {
	W="$NT_MNT/$1"
	rc_mkdir "$W" || nt_die "mkdir $W; log: $(tail -n 20 "$NT_LOG")"
	printf '%s' "$2" >"$W/f"
	nt_check_content "$1: the old file is in the old sandbox" \
		"$(nt_backend_ws "$1")/f" "$2"
	# a reader keeps the old sandbox's file open (and so its struct
	# and cache alive) until after the new one is attached
	rc_release
	exec {RC_FD}<"$W/f"
}

RC_FD=""

# rc_release: closes the reader of rc_old.
rc_release() {
	[ -n "$RC_FD" ] && exec {RC_FD}<&-
	RC_FD=""
}

# rc_lost ID: directories of ID below lost/.
rc_lost() { ls -d "$CACHE/lost/$1".* 2>/dev/null; }

# ---- A: delete by noxctl, mkdir through the mount ----------------------
nt_mount ""
rc_old ra "keep a"
rc_ctl delete ra || nt_die "noxctl delete ra"
nt_check "A: mkdir of the deleted sandbox works" rc_mkdir "$W"
rc_new A ra

# ---- C: deleted and made again by another client while mounted --------
rc_old rc "keep c"
rc_ctl delete rc || nt_die "noxctl delete rc"
sleep 1.2
nt_check_not "C1: the mount sees the sandbox gone" \
	timeout -k 5 30 ls "$W"
rc_ctl create rc || nt_die "noxctl create rc"
rc_new C1 rc
rc_old rd "keep d"
rc_ctl delete rd && rc_ctl create rd || nt_die "noxctl delete+create rd"
sleep 1.2
rc_new C2 rd
nt_unmount
[ -n "$RC_HTTP" ] &&
	nt_check_eq "A, C: no cache of the old sandboxes kept (nothing unsent)" \
		"" "$(rc_lost ra; rc_lost rc; rc_lost rd)"

if [ -z "$RC_HTTP" ]; then
	nt_mount ""
	rc_old re "keep e"
	rc_release
	nt_unmount
	rc_ctl delete re && rc_ctl create re || nt_die "noxctl delete+create re"
	nt_mount ""
	W="$NT_MNT/re"
	rc_new D1 re
	nt_unmount
	nt_finish
fi

# ---- B: unsent data at the delete --------------------------------------
nt_mount "writeback_delay=60000"
W="$NT_MNT/rb"
rc_mkdir "$W" || nt_die "mkdir $W"
printf 'unsent b' >"$W/f"
exec {RC_FD}<"$W/f"
rc_ctl delete rb || nt_die "noxctl delete rb"
nt_check "B: mkdir of the deleted sandbox works" rc_mkdir "$W"
nt_check_eq "B: the old file is not listed" "" \
	"$(timeout -k 5 30 ls -A "$W" | grep -x f)"
nt_check_eq "B: ...nor readable" ENOENT "$(rc_errno "$W/f")"
printf 'new B' >"$W/g"
printf 1 >"$W/.nox/sync"
nt_check_content "B: a new write lands in the new sandbox" \
	"$(nt_backend_ws rb)/g" "new B"
nt_check_content "B: ...and in the cache's tree" "$CACHE/rb/tree/g" "new B"
rc_release
rc_forget
nt_check_content "B: the new file still reads back" "$W/g" "new B"
L=$(rc_lost rb)
nt_check_eq "B: the old cache is in lost/ once" 1 \
	"$(printf '%s' "$L" | grep -c .)"
nt_check_content "B: ...its tree has the unsent file" "$L/tree/f" "unsent b"
nt_check "B: ...its journal the unsent operations" \
	test -n "$(ls "$L"/journal/*.op 2>/dev/null)"
nt_unmount
nt_check_eq "B: the old unsent file never reached the new sandbox" "no f" \
	"$(test -e "$(nt_backend_ws rb)/f" && echo f || echo no f)"
nt_check "B: a log line says where it is kept" \
	grep -aq "rb: unsent data of the vanished sandbox kept in $L" \
	"$NT_TMP/noxfs.$NT_MOUNTS.log"

# ---- D: across a remount with the cache dir -----------------------------
nt_mount ""
rc_old re "keep e"
rc_old rf "keep f"
rc_release
nt_unmount
rc_ctl delete re && rc_ctl create re || nt_die "noxctl delete+create re"
rc_ctl delete rf || nt_die "noxctl delete rf"
nt_mount ""
W="$NT_MNT/re"
rc_new D1 re
W="$NT_MNT/rf"
nt_check "D2: mkdir of the deleted sandbox works" rc_mkdir "$W"
rc_new D2 rf
nt_unmount

# D3, D4: a journal kept by a daemon that died (SIGKILL) with a write
# unsent; D3's sandbox is made again before the next mount, which
# replays the journal into it (no identity tells them apart: the writes
# are the user's, to that id); D4's is only deleted: the journal goes to
# lost/, and a mkdir through the mount makes an empty sandbox
nt_mount "writeback_delay=60000"
for id in rg rh; do
	W="$NT_MNT/$id"
	rc_mkdir "$W" || nt_die "mkdir $W"
	printf 'unsent %s' "$id" >"$W/f"
done
kill -KILL "$NT_DPID"
nt_wait_exit "$NT_DPID" 10
NT_DPID=""
timeout -k 2 15 fusermount3 -uz "$NT_MNT" 2>/dev/null
rc_ctl delete rg && rc_ctl create rg || nt_die "noxctl delete+create rg"
rc_ctl delete rh || nt_die "noxctl delete rh"
nt_mount ""
nt_check_content "D3: the kept journal is replayed into the sandbox of the id" \
	"$(nt_backend_ws rg)/f" "unsent rg"
L=$(rc_lost rh)
nt_check_content "D4: the journal of the deleted sandbox is kept in lost/" \
	"$L/tree/f" "unsent rh"
nt_check "D4: ...with a log line" \
	grep -aq "sandbox rh no longer exists on the server; its unsent \
changes are kept in $L" "$NT_LOG"
W="$NT_MNT/rh"
nt_check "D4: mkdir of the deleted sandbox works" rc_mkdir "$W"
rc_new D4 rh
nt_unmount
nt_finish
