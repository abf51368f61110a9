#!/bin/bash
# coalesce.sh - metadata write-back that coalesces (issue 15 item 4),
# through a real mount over noxd and noxd --v1-only, requests counted by
# noxd's GET /metrics.  Write-back mounts with a delay longer than the
# test, so what is sent is what .nox/sync drains:
#   50 editor saves (write a temp file, chmod it, rename it over the
#   target), then .nox/sync: the sandbox has the last content and mode,
#   no temp file, and the saves took <= 2 uploads and <= 2 execs or
#   fs/op calls (the old drain sent a tar and a rename per save);
#   a burst of mkdir, chmod, rename, unlink of files the sandbox has:
#   the sandbox matches; on v1 it is <= 3 execs (20 tars and 80 execs
#   before); with nox.fs one fs/op each, as before;
#   a batch where one rename's source was removed in the sandbox
#   meanwhile: that rename is logged by name, the others are applied,
#   and nothing stays in the journal;
#   50 saves that fsync the temp file, with write-back: on v1 <= 3 execs
#   (50 before), the sandbox has the last content, no temp file.
: "${NOX_TEST_BACKEND:=noxd}"
export NOX_TEST_BACKEND
. "$(dirname "$0")/../mount/lib.sh"
. "$(dirname "$0")/hm.sh"

nt_require stat
hm_require_noxd
nt_init

ID=coal1
nt_workspace "$ID"
nt_unmount
B=$(nt_backend_ws "$ID")
W="$NT_MNT/$ID"
C="$W/.nox"
# long attribute timeouts: no listing (an exec on v1) comes between
OPTS="attr_timeout=30,entry_timeout=30"
nt_mount "$OPTS,writeback_delay=600000"

sync_mount() {
	timeout -k 5 "$NT_T" sh -c 'echo > "$1"' sh "$C/sync"
}

# ---- editor saves
printf 'v0\n' >"$W/doc.txt"
sync_mount
hm_snap
for i in $(seq 50); do
	printf 'saved %d\n' "$i" >"$W/doc.txt.tmp" || nt_die "write temp"
	chmod 640 "$W/doc.txt.tmp" || nt_die "chmod temp"
	mv "$W/doc.txt.tmp" "$W/doc.txt" || nt_die "rename"
done
nt_check "sync after 50 saves" sync_mount
nt_log "50 editor saves + sync: $(hm_deltas)"
d=$(hm_delta upload)
nt_check "50 editor saves + sync: <= 2 uploads (got $d)" test "$d" -le 2
d=$(($(hm_delta exec) + $(hm_delta fs_op)))
nt_check "50 editor saves + sync: <= 2 execs and fs/op calls (got $d)" \
	test "$d" -le 2
nt_check_content "the sandbox has the last save" "$B/doc.txt" "saved 50
"
nt_check_eq "the sandbox has the saved mode" 640 \
	"$(stat -c %a "$B/doc.txt" 2>&1)"
nt_check_not "no temp file in the sandbox" test -e "$B/doc.txt.tmp"
nt_check_content "the mount has the last save" "$W/doc.txt" "saved 50
"

# ---- a burst of metadata operations on files the sandbox has
for i in $(seq 20); do
	printf 'f%d\n' "$i" >"$W/f$i"
	printf 'g%d\n' "$i" >"$W/g$i"
done
sync_mount
hm_snap
for i in $(seq 20); do
	mkdir "$W/d$i" || nt_die "mkdir d$i"
	chmod 700 "$W/d$i" || nt_die "chmod d$i"
	mv "$W/f$i" "$W/d$i/f" || nt_die "mv f$i"
	chmod 600 "$W/d$i/f" || nt_die "chmod d$i/f"
	rm "$W/g$i" || nt_die "rm g$i"
done
nt_check "sync after the burst" sync_mount
nt_log "burst of 100 operations + sync: $(hm_deltas)"
if [ "$NT_BACKEND" = noxd-v1 ]; then
	d=$(hm_delta exec)
	nt_check "burst on v1: <= 3 execs (got $d)" test "$d" -le 3
	nt_check_eq "burst on v1: no upload" 0 "$(hm_delta upload)" \
		"$(hm_deltas)"
fi
bad=""
for i in $(seq 20); do
	[ -d "$B/d$i" ] && [ "$(stat -c %a "$B/d$i")" = 700 ] || bad="$bad d$i"
	[ "$(cat "$B/d$i/f" 2>/dev/null)" = "f$i" ] || bad="$bad d$i/f"
	[ "$(stat -c %a "$B/d$i/f" 2>/dev/null)" = 600 ] || bad="$bad mode:d$i/f"
	[ -e "$B/f$i" ] && bad="$bad f$i"
	[ -e "$B/g$i" ] && bad="$bad g$i"
done
nt_check_eq "the sandbox matches the burst" "" "$bad"

# ---- one failing operation in a batch
printf 'a\n' >"$W/ra"
printf 'b\n' >"$W/rb"
printf 'c\n' >"$W/rc"
sync_mount
rm -f "$B/rb" # the sandbox removes rb meanwhile
mv "$W/ra" "$W/ra2" || nt_die "mv ra"
mv "$W/rb" "$W/rb2" || nt_die "mv rb"
mv "$W/rc" "$W/rc2" || nt_die "mv rc"
chmod 600 "$W/rc2" || nt_die "chmod rc2"
nt_check "sync after the failing batch" sync_mount
nt_check_content "ra was renamed in the sandbox" "$B/ra2" "a
"
nt_check_content "rc was renamed in the sandbox" "$B/rc2" "c
"
nt_check_eq "rc2 has its mode" 600 "$(stat -c %a "$B/rc2" 2>&1)"
nt_check_not "no ra left" test -e "$B/ra"
nt_check "the failed rename is logged by name" \
	grep -aE "rename rb: |rename rb " "$NT_LOG"
nt_check_eq "nothing stays in the journal" "" \
	"$(find "$NT_TMP/cache" -path "*/$ID/journal/*.op" 2>&1)"
nt_expect_log_error "rename rb"
nt_unmount

# ---- editor saves that fsync the temp file, with write-back: the fsync
# sends it, so the rename cannot fold into its tar; on v1 it goes as an
# upload of the target, and the temp name's removal folds into the next
# save's tar (an exec per save before)
nt_mount "$OPTS,writeback_delay=600000"
hm_snap
nt_check "50 saves with fsync" python3 - "$W/doc.txt" <<'PY'
import os, sys
p = sys.argv[1]
for i in range(1, 51):
    with open(p + ".tmp", "wb") as f:
        f.write(b"fsynced %d\n" % i)
        f.flush()
        os.fsync(f.fileno())
    os.rename(p + ".tmp", p)
PY
nt_check "sync after 50 fsynced saves" sync_mount
nt_log "50 fsynced saves + sync: $(hm_deltas)"
if [ "$NT_BACKEND" = noxd-v1 ]; then
	d=$(hm_delta exec)
	nt_check "fsynced saves on v1: <= 3 execs (got $d)" test "$d" -le 3
fi
nt_check_content "the sandbox has the last fsynced save" \
	"$B/doc.txt" "fsynced 50
"
nt_check_eq "the sandbox has its mode" 644 "$(stat -c %a "$B/doc.txt" 2>&1)"
nt_check_not "no temp file left in the sandbox" test -e "$B/doc.txt.tmp"
nt_check_content "the mount has the last fsynced save" "$W/doc.txt" \
	"fsynced 50
"
nt_unmount
nt_finish
