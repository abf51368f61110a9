#!/bin/bash
# budgets.sh - round-trip budgets of noxfs over HTTP (issue 5), counted by
# real noxd's GET /metrics on loopback.  Runs against noxd with the nox.fs
# extension and with --v1-only (NOX_TEST_BACKEND=noxd / noxd-v1).
#
# Workspace: 3,000 files in 150 directories, made directly in the
# backend.  Budgets checked (requests of every endpoint but /metrics):
#   find MOUNT/ID | wc -l, cold cache          <= 2
#   the same again within the attribute timeout   0
#   cat of one file twice, unchanged              1 (a download: GET
#                                                 fs/file, a tar on v1,
#                                                 or with its directory's
#                                                 files)
#   appending to that file and closing it         1 (an upload)
#   a command through .nox/exec, nothing dirty    1 (an exec)
#   tar x of a 3,000-file archive with -o writeback_delay, then a
#   command through .nox/exec                    <= 10 uploads
#   rm -rf of that tree, then a command          <= 10 fs/ops (none of
#                                                 fs/op), <= 11 execs
#                                                 on v1
# and after the tar, every byte is in the sandbox (sha256 of each file),
# and after the rm -rf, nothing.
# Hostile input: none here (faults.sh); names are plain.
: "${NOX_TEST_BACKEND:=noxd}"
export NOX_TEST_BACKEND
. "$(dirname "$0")/../mount/lib.sh"
. "$(dirname "$0")/hm.sh"

nt_require tar sha256sum find xargs
hm_require_noxd
nt_init

ID=budget1
OPTS="attr_timeout=30,entry_timeout=30"

# the sandbox, made through a first mount; then files straight into noxd's
# base dir, and a cold cache for the measured mount
nt_workspace "$ID"
nt_unmount
hm_populate "$B" 150 20
rm -rf "$NT_TMP/cache"
nt_mount "$OPTS"
W="$NT_MNT/$ID"
C="$W/.nox"

hm_snap
n=$(timeout -k 5 "$NT_T" find "$W" | wc -l)
d=$(hm_delta)
nt_check_eq "cold find lists the workspace (not .nox)" 3151 "$n" "find $W | wc -l"
nt_log "cold find: $d requests ($(hm_deltas))"
nt_check "cold find costs <= 2 requests (got $d)" test "$d" -le 2

hm_snap
n=$(timeout -k 5 "$NT_T" find "$W" | wc -l)
d=$(hm_delta)
nt_check_eq "find again lists the same" 3151 "$n"
nt_check_eq "find again within the attribute timeout: 0 requests" 0 "$d" \
	"$(hm_deltas)"

F="$W/dir007/f003.txt"
hm_snap
a=$(timeout -k 5 "$NT_T" cat "$F")
b=$(timeout -k 5 "$NT_T" cat "$F")
nt_check_eq "cat twice gives the backend's content" \
	"$(cat "$B/dir007/f003.txt")" "$a"
nt_check_eq "cat twice: the same" "$a" "$b"
# one download: GET fs/file (nox.fs) or a tar (v1) of the file alone, or
# with its directory's small files (nox.files' fs/files; v1: the
# directory's download)
nt_check_eq "cat twice, unchanged: 1 download" 1 \
	"$(($(hm_delta fs_read) + $(hm_delta download) + $(hm_delta fs_files)))" \
	"$(hm_deltas)"
nt_check_eq "cat twice, unchanged: 1 request in all" 1 "$(hm_delta)" \
	"$(hm_deltas)"

hm_snap
timeout -k 5 "$NT_T" sh -c 'echo edited >> "$1"' sh "$F"
nt_check_eq "edit and close: 1 upload" 1 "$(hm_delta upload)" "$(hm_deltas)"
nt_check_eq "edit and close: 1 request in all" 1 "$(hm_delta)" \
	"$(hm_deltas)"
nt_check_content "the edit is in the sandbox" "$B/dir007/f003.txt" \
	"$a
edited
"

hm_snap
nt_exec "true"
nt_check_eq "exec with nothing dirty: exactly 1 exec" 1 "$(hm_delta exec)" \
	"$(hm_deltas)"
nt_check_eq "exec with nothing dirty: 1 request in all" 1 "$(hm_delta)" \
	"$(hm_deltas)"
nt_unmount

# tar x into a write-back mount, then one command.  The delay is longer
# than the tar can take, so the count does not depend on the machine's
# speed (with 3 s, a loaded machine drained the burst in more, smaller
# batches: 30 to 35 uploads): the command's barrier sends the burst.
mkdir -p "$NT_TMP/src"
hm_populate "$NT_TMP/src" 150 20
tar -C "$NT_TMP/src" -cf "$NT_TMP/src.tar" .
nt_mount "$OPTS,writeback_delay=600000"
mkdir "$W/untar" || nt_die "mkdir untar"
hm_snap
nt_check "tar x of 3,000 files into the mount" \
	tar -C "$W/untar" -xf "$NT_TMP/src.tar"
nt_exec "find untar -type f | wc -l"
u=$(hm_delta upload)
nt_log "tar x + exec: $(hm_deltas)"
nt_check "tar x + exec: <= 10 uploads (got $u)" test "$u" -le 10
nt_check_content "the command saw all 3,000 files" "$C/stdout" "3000
"
hm_wait_sums "every byte of the tar is in the sandbox" "$NT_TMP/src" \
	"$B/untar" 5

# rm -rf of those 3,000 files and 150 directories, then one command: the
# 3,151 unlinks and rmdirs go in runs of at most 500 (one fs/ops request
# each with nox.ops, one script exec each on v1), not a request each
hm_snap
nt_check "rm -rf of the untarred tree" rm -rf "$W/untar"
nt_exec 'test -e untar && echo still || echo gone'
nt_log "rm -rf + exec: $(hm_deltas)"
if [ "$NT_BACKEND" = noxd ]; then
	n=$(hm_delta fs_ops)
	nt_check "rm -rf: <= 10 fs/ops requests (got $n)" test "$n" -le 10
	nt_check_eq "rm -rf: no fs/op request" 0 "$(hm_delta fs_op)" \
		"$(hm_deltas)"
else
	n=$(hm_delta exec)
	nt_check "rm -rf + exec: <= 11 execs (got $n)" test "$n" -le 11
fi
nt_check_content "the command saw the tree gone" "$C/stdout" $'gone\n'
nt_check "the tree is gone in the sandbox" test ! -e "$B/untar"
nt_unmount
nt_finish
