#!/usr/bin/env bash
# big.sh - large and sparse files through a noxfs mount: a 1 GiB random
# file made on disk outside, cp'd in and read back (sha256 of the mount
# copy and of the backend copy equal to the original; the command in the
# sandbox sees it too), cp'd out again; a sparse write past 4 GiB (dd
# seek) with its size, its data and the hole checked; overwrite in the
# middle of a large file; truncate of a large file.
# Under the sanitizers (NOX_SANITIZED=1, tools/test.sh --sanitize) the
# random file is 256 MiB (NOX_BIG_MB sets it): the same paths, a quarter
# of the time; the plain pass keeps 1 GiB.
# Limits: needs about 3 GiB of free space in TMPDIR.
. "$(dirname "$0")/lib.sh"
nt_require dd sha256sum cmp stat
nt_init
avail=$(df -Pk "$NT_TMP" | awk 'NR == 2 { print $4 }')
[ "${avail:-0}" -gt $((4 * 1024 * 1024)) ] ||
	nt_skip "less than 4 GiB free in $NT_TMP"
nt_workspace big1
NT_T=300
MB=1024
[ "${NOX_SANITIZED:-0}" = 1 ] && MB=256
MB=${NOX_BIG_MB:-$MB}
SIZE=$((MB * 1024 * 1024))
HALF=$((MB / 2))

# -- 1 GiB (256 MiB under the sanitizers) ------------------------------
dd if=/dev/urandom of="$NT_TMP/g1" bs=1M count="$MB" status=none ||
	nt_die "dd of the $MB MiB source"
sum=$(sha256sum <"$NT_TMP/g1" | cut -d' ' -f1)
t0=$(date +%s)
nt_check "cp $MB MiB in" cp "$NT_TMP/g1" "$W/g1"
nt_log "cp in took $(($(date +%s) - t0)) s"
nt_check_out "size $MB MiB" "$SIZE" stat -c %s "$W/g1"
nt_check_out "sha256 of the backend copy" "$sum" sh -c \
	"sha256sum < '$B/g1' | cut -d' ' -f1"
# Drop this file's cached pages so the read goes through the daemon.
python3 "$NT_PY" dropcache "$W/g1" >/dev/null
t0=$(date +%s)
nt_check_out "sha256 of the mount copy" "$sum" sh -c \
	"sha256sum < '$W/g1' | cut -d' ' -f1"
nt_log "read back took $(($(date +%s) - t0)) s"
nt_check_exec "sha256 in the sandbox" 'sha256sum < g1 | cut -d" " -f1' \
	"$sum"$'\n'
nt_check "cp $MB MiB out" cp "$W/g1" "$NT_TMP/g1.out"
nt_check "copy out identical" cmp "$NT_TMP/g1" "$NT_TMP/g1.out"
rm -f "$NT_TMP/g1.out"

# -- overwrite in the middle, then truncate ------------------------------
printf 'MIDDLE-PATCH' >"$NT_TMP/patch"
nt_check "dd overwrite at $HALF MiB (notrunc)" dd if="$NT_TMP/patch" \
	of="$W/g1" bs=1M seek="$HALF" conv=notrunc status=none
dd if="$NT_TMP/patch" of="$NT_TMP/g1" bs=1M seek="$HALF" conv=notrunc \
	status=none
nt_check_out "size unchanged" "$SIZE" stat -c %s "$W/g1"
nt_check_out "patched bytes read back" MIDDLE-PATCH \
	dd if="$W/g1" bs=1M skip="$HALF" count=12 iflag=count_bytes status=none
nt_check "backend copy equals patched original" cmp "$NT_TMP/g1" "$B/g1"
nt_check "truncate the $MB MiB file to 100 MiB + 1" truncate -s 104857601 "$W/g1"
truncate -s 104857601 "$NT_TMP/g1"
nt_check_out "size after truncate" 104857601 stat -c %s "$W/g1"
nt_check "content after truncate" cmp "$NT_TMP/g1" "$W/g1"
rm -f "$NT_TMP/g1"
nt_check "rm big file" rm "$W/g1"
nt_check_not "big file gone (backend)" test -e "$B/g1"

# -- sparse past 4 GiB --------------------------------------------------
off=$((4 * 1024 * 1024 * 1024 + 12345))
printf 'tail-data' >"$NT_TMP/tail"
nt_check "dd seek past 4 GiB" dd if="$NT_TMP/tail" of="$W/sparse" bs=1 \
	seek="$off" status=none
nt_check_out "sparse size" $((off + 9)) stat -c %s "$W/sparse"
nt_check_out "sparse size (backend)" $((off + 9)) stat -c %s "$B/sparse"
nt_check_out "data past 4 GiB reads back" tail-data dd if="$W/sparse" \
	bs=1 skip="$off" count=9 status=none
nt_check_out "hole reads as zeros" 0000000000000000 sh -c \
	"dd if='$W/sparse' bs=4096 skip=1000 count=1 status=none |
	 od -An -tx1 | tr -d ' \n' | cut -c1-16"
if [ "$NT_BACKEND" = local ]; then
	nt_check_out "allocated blocks small on the backend" small sh -c \
		"b=\$(stat -c %b '$B/sparse'); [ \"\$b\" -lt 20480 ] &&
		 echo small || echo \"\$b blocks\""
fi
nt_check "write just before 4 GiB boundary" dd if="$NT_TMP/tail" \
	of="$W/sparse" bs=1 seek=$((4 * 1024 * 1024 * 1024 - 4)) \
	conv=notrunc status=none
nt_check_out "write across 4 GiB read back" tail-data dd if="$W/sparse" \
	bs=1 skip=$((4 * 1024 * 1024 * 1024 - 4)) count=9 status=none
nt_check_exec "sandbox sees the sparse size" 'stat -c %s sparse' \
	"$((off + 9))"$'\n'
nt_check "rm sparse" rm "$W/sparse"

nt_finish
