#!/bin/bash
# bulk.sh - bulk fetch of small files (issue 15 item 2), through a real
# mount over real noxd (nox.files: one POST fs/files per directory) and
# noxd --v1-only (one directory download when everything below it is
# small), counted by noxd's GET /metrics.
#
# Workspace (made in the backend, cold cache): dir000..dir004 of 100
# small files each, names with a space and a newline in dir001, and
# mixed/ with 20 small files and a 5 MiB file.  Checked:
#   - one cat in dir000 fetches its siblings in the same request (their
#     cache tree files hold data), and in mixed/ never the 5 MiB file
#     (its cache tree file stays a sparse placeholder);
#   - grep -r over the workspace reads every byte as the backend has it,
#     with at most 10 (nox.files) / 30 (v1) downloads, where one request
#     per file would take over 500;
#   - a file written through the mount and still open (dirty) in a
#     directory that is bulk-fetched keeps the mount's content, and the
#     sandbox gets it at close;
#   - a second sandbox with names not UTF-8 (and a newline) arrives right.
: "${NOX_TEST_BACKEND:=noxd}"
export NOX_TEST_BACKEND
. "$(dirname "$0")/../mount/lib.sh"
. "$(dirname "$0")/hm.sh"

nt_require python3 grep sha256sum find xargs stat
hm_require_noxd
nt_init
trap hm_relay_cleanup EXIT

ID=bulk1
OPTS="attr_timeout=30,entry_timeout=30"
if [ "$NT_BACKEND" = noxd ]; then MAXDL=10; else MAXDL=30; fi

# downloads: what a read of an uncached file costs, either endpoint
downloads() {
	echo $(($(hm_delta download) + $(hm_delta fs_files)))
}

# blocks FILE: the cache tree file's allocated blocks (0: a placeholder)
blocks() {
	stat -c %b "$NT_TMP/cache/127.0.0.1_$NT_PORT/$ID/tree/$1"
}

nt_workspace "$ID"
nt_unmount
hm_populate "$B" 5 100
printf 'space\n' >"$B/dir001/with space.txt"
printf 'newline\n' >"$B/dir001/new"$'\n'"line.txt"
mkdir "$B/mixed"
for i in $(seq 20); do printf 'mixed %d\n' "$i" >"$B/mixed/m$i.txt"; done
head -c $((5 * 1024 * 1024)) /dev/urandom >"$B/mixed/big.bin"
rm -rf "$NT_TMP/cache"
nt_mount "$OPTS"
W="$NT_MNT/$ID"

# one open in dir000 brings the directory's small files
nt_check "ls the workspace (listing)" ls "$W"
hm_snap
nt_check_file "cat dir000/f000.txt" "$W/dir000/f000.txt" \
	"$B/dir000/f000.txt"
d=$(downloads)
nt_log "cat of one file: $(hm_deltas)"
nt_check "cat of one file: 1 download (got $d)" test "$d" -eq 1
nt_check "dir000/f099.txt came with it" test "$(blocks dir000/f099.txt)" -gt 0

# mixed/: the 5 MiB file is never part of a bulk fetch
hm_snap
nt_check_file "cat mixed/m1.txt" "$W/mixed/m1.txt" "$B/mixed/m1.txt"
nt_log "cat in mixed/: $(hm_deltas)"
nt_check_eq "mixed/big.bin is still a placeholder" 0 "$(blocks mixed/big.bin)"
if [ "$NT_BACKEND" = noxd ]; then
	nt_check "mixed/m20.txt came with m1.txt" \
		test "$(blocks mixed/m20.txt)" -gt 0
fi

# a dirty file (written, still open) in a directory not fetched yet
exec 3>"$W/dir002/f000.txt"
printf 'local\n' >&3

count() { (cd "$1" && grep -r -c '' . | LC_ALL=C sort); }
hm_snap
got=$(count "$W")
d=$(downloads)
nt_log "grep -r cold: $(hm_deltas)"
nt_check "grep -r cold: <= $MAXDL downloads (got $d)" test "$d" -le "$MAXDL"
if [ "$NT_BACKEND" = noxd ]; then
	nt_check "grep -r used fs/files" test "$(hm_delta fs_files)" -ge 4
else
	nt_check_eq "no fs/files on v1" 0 "$(hm_delta fs_files)"
fi

nt_check_content "the dirty file keeps the mount's content" \
	"$W/dir002/f000.txt" $'local\n'
exec 3>&-
nt_check_content "the sandbox has the dirty file at close" \
	"$B/dir002/f000.txt" $'local\n'
nt_check_eq "grep -r -c: every file, every line" "$(count "$B")" "$got"
nt_check_eq "every byte (sha256 of each file)" "$(hm_sums "$B")" \
	"$(hm_sums "$W")"
nt_unmount

# names that are not UTF-8 (the v1 listing is a tar then: fetched with
# it) and a newline, in a directory fetched in bulk with nox.files
ID=bulk2
nt_mount "$OPTS"
nt_workspace "$ID"
nt_unmount
mkdir "$B/odd"
for i in $(seq 10); do printf 'odd %d\n' "$i" >"$B/odd/o$i"; done
printf 'latin1\n' >"$B/odd/caf"$'\xe9'".txt"
printf 'bytes\n' >"$B/odd/"$'\xff\xfe'
printf 'nl\n' >"$B/odd/a"$'\n'"b"
rm -rf "$NT_TMP/cache"
nt_mount "$OPTS"
W="$NT_MNT/$ID"
hm_snap
nt_check_content "cat odd/o1" "$W/odd/o1" $'odd 1\n'
nt_log "cat in odd/: $(hm_deltas)"
nt_check_content "odd/caf\\xe9.txt" "$W/odd/caf"$'\xe9'".txt" $'latin1\n'
nt_check_content "odd/\\xff\\xfe" "$W/odd/"$'\xff\xfe' $'bytes\n'
nt_check_content "odd/a\\nb" "$W/odd/a"$'\n'"b" $'nl\n'
d=$(downloads)
nt_check "odd/: <= 2 downloads (got $d)" test "$d" -le 2
nt_check_eq "every byte of odd/ (sha256 of each file)" "$(hm_sums "$B")" \
	"$(hm_sums "$W")"
nt_unmount

# a bulk answer whose tar is cut in half (the relay's "halftar": HTTP
# intact, the gzip ends midway): the files that came whole are placed,
# the others stay placeholders and come by their own downloads; no file
# is ever left half
ID=bulk3
nt_mount "$OPTS"
nt_workspace "$ID"
nt_unmount
mkdir "$B/cut"
for i in $(seq 100); do
	head -c 1500 /dev/urandom | base64 -w 0 >"$B/cut/c$i.txt"
done
rm -rf "$NT_TMP/cache"
hm_relay_start
NT_PORT=$RELAY nt_mount "$OPTS"
W="$NT_MNT/$ID"
ls "$W/cut" >/dev/null
hm_relay_mode halftar
nt_check_file "cat cut/c50.txt through a halved answer" "$W/cut/c50.txt" \
	"$B/cut/c50.txt"
nt_check "the relay halved one answer" grep -q halved "$NT_TMP/relay.log"
placed=0
for i in $(seq 100); do
	[ "$(stat -c %b "$NT_TMP/cache/127.0.0.1_$RELAY/$ID/tree/cut/c$i.txt")" -gt 0 ] &&
		placed=$((placed + 1))
done
nt_check "some files came whole from the first half ($placed of 100)" \
	test "$placed" -ge 10
nt_check "the rest were left placeholders ($placed of 100)" \
	test "$placed" -le 90
nt_check_eq "every byte of cut/ (sha256 of each file)" "$(hm_sums "$B")" \
	"$(hm_sums "$W")"
nt_finish
