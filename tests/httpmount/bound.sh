#!/bin/bash
# bound.sh - the cache's bound (issue 14, item 6) over real noxd on
# loopback, with the nox.fs extension and with --v1-only
# (NOX_TEST_BACKEND=noxd / noxd-v1).
#
# The cache dir is a 48 MiB tmpfs and the mount has -o cache_max=8M.
# Checked: df of a sandbox not listed yet costs no request beyond its
# listing (info or touch, fs/tree or find); du of files not downloaded yet
# counts their real size; df at the mount root shows the documented
# figures (size cache_max); df in a sandbox shows the server's disk (the
# one holding noxd's base dir), not the cache's; reading 24 MiB of files
# twice keeps the cache dir within the bound and every byte right; a file written and still journaled
# (writeback_delay) is never evicted and reaches the server whole; a file
# held open while others are read still reads right; a 16 MiB file (over
# cache_max) reads right and is evicted by the next download; a 64 MiB
# file (more than the cache disk) fails with ENOSPC and the mount goes on.
# Needs root (mount -t tmpfs); the tmpfs is always unmounted on exit.
: "${NOX_TEST_BACKEND:=noxd}"
export NOX_TEST_BACKEND
. "$(dirname "$0")/../mount/lib.sh"
. "$(dirname "$0")/hm.sh"

nt_require du stat sha256sum head cmp
hm_require_noxd
[ "$(id -u)" = 0 ] || nt_skip "needs root to mount a tmpfs"
nt_init

CACHE=$NT_TMP/cache
nt_tmpfs "$CACHE" 48
ID=bound1
OPTS="cache_max=8M,writeback_delay=60000,attr_timeout=30,entry_timeout=30"

# the sandbox, then its files straight into noxd's base dir
nt_workspace "$ID"
nt_unmount
for i in $(seq -w 1 12); do
	head -c 2M /dev/urandom >"$B/f$i.bin"
done
head -c 16M /dev/urandom >"$B/big.bin"
head -c 64M /dev/urandom >"$B/huge.bin"
rm -rf "${CACHE:?}"/*
nt_mount "$OPTS"
W="$NT_MNT/$ID"
C="$W/.nox"

# -- df first, on a sandbox not listed yet: the listing carries the figures
hm_snap
stat -f "$W" >/dev/null
ls "$W" >/dev/null
n=$(hm_delta)
nt_check "df then ls of a cold sandbox: <= 2 requests, the listing carries df (got $n: $(hm_deltas))" \
	test "$n" -le 2

# -- du and df, nothing downloaded ----------------------------------------
kib=$(du -sk "$W" | cut -f1)
nt_check "du of files not downloaded: their real size (>= 104 MiB, got $kib KiB)" \
	test "${kib:-0}" -ge $((104 * 1024))
nt_check_eq "st_blocks of a placeholder: size/512" 4096 \
	"$(stat -c %b "$W/f01.bin")"
nt_check_eq "df at the mount root: size cache_max (8 MiB)" $((8 << 20)) \
	"$(stat -f -c '%b %S' "$NT_MNT" | awk '{print $1 * $2}')"
srv=$(stat -f -c '%b %S' "$NT_BASE" | awk '{printf "%d", $1 * $2 / 1024}')
got=$(stat -f -c '%b %S' "$W" | awk '{printf "%d", $1 * $2 / 1024}')
nt_check_eq "df in the sandbox: the server's disk (KiB), not the cache's" \
	"$srv" "$got"
nt_check "df in the sandbox: not the cache tmpfs (48 MiB)" \
	test "$got" -ne $((48 * 1024))
hm_snap
for i in 1 2 3; do stat -f "$W" >/dev/null; done
n=$(hm_delta)
nt_check "df three times in a row: at most 1 request (got $n)" \
	test "$n" -le 1

# -- a dirty file, one held open, then 24 MiB read twice -------------------
head -c 3M /dev/urandom >"$NT_TMP/dirty.bin"
nt_check "write a file (journaled, upload delayed)" \
	cp "$NT_TMP/dirty.bin" "$W/dirty.bin"
nt_check_file "f01.bin through the mount" "$W/f01.bin" "$B/f01.bin"
exec 3<"$W/f01.bin"
ok=1
for pass in 1 2; do
	for i in $(seq -w 1 12); do
		cmp -s "$W/f$i.bin" "$B/f$i.bin" || ok=0
	done
	kib=$(du -sk "$CACHE" | cut -f1)
	nt_log "pass $pass: cache dir $kib KiB"
	# 8 MiB of downloads, the dirty file twice (the tree, its journal
	# snapshot), the rest metadata: 30 MiB and more without the bound
	nt_check "pass $pass: cache dir within the bound (<= 16 MiB; got $kib KiB)" \
		test "$kib" -le $((16 * 1024))
done
nt_check_eq "24 MiB read twice: every byte right" 1 "$ok"
nt_check "f01.bin held open reads right after the evictions" \
	cmp -s /dev/fd/3 "$B/f01.bin"
exec 3<&-
nt_check "the dirty file is not on the server yet (writeback_delay)" \
	test ! -e "$B/dirty.bin"
nt_check_file "the dirty file reads right through the mount" \
	"$W/dirty.bin" "$NT_TMP/dirty.bin"
nt_check "sync sends it" sh -c 'echo > "$1"' sh "$C/sync"
nt_check_file "the dirty file reached the server whole" "$B/dirty.bin" \
	"$NT_TMP/dirty.bin"

# -- over the bound, over the disk ----------------------------------------
nt_check_file "big.bin (16 MiB, over cache_max) reads right" "$W/big.bin" \
	"$B/big.bin"
nt_check_file "f02.bin after it" "$W/f02.bin" "$B/f02.bin"
kib=$(du -sk "$CACHE" | cut -f1)
nt_check "the next download evicted big.bin (cache dir <= 14 MiB, got $kib KiB)" \
	test "$kib" -le $((14 * 1024))
nt_check_errno "huge.bin (64 MiB, more than the 48 MiB cache disk): ENOSPC" \
	ENOSPC open "$W/huge.bin"
nt_check_file "the mount goes on: f03.bin" "$W/f03.bin" "$B/f03.bin"
nt_check "no download left behind in the cache dir (<= 14 MiB)" \
	test "$(du -sk "$CACHE" | cut -f1)" -le $((14 * 1024))
nt_check_exec "commands still run" "echo ok" "ok
"

nt_unmount
nt_finish
