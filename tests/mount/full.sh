#!/usr/bin/env bash
# full.sh - a full disk under a noxfs mount, on any backend.
#   local:          the base directory (so the workspace) is an 8 MiB tmpfs;
#   noxd, noxd-v1:  the mount's cache_dir is an 8 MiB tmpfs (the server's
#                   disk has room).
# Files closed before the disk fills must stay intact; a writer filling
# it gets ENOSPC (from write, or at the latest from close/fsync), and
# every byte a write acknowledged is in the file; a small write to a new
# file on the full disk gets ENOSPC too; the daemon stays alive, listings,
# reads and execs keep working while full (a command writing in the
# sandbox fails by itself, the exec write does not); after the big file
# is removed, writes succeed again and reach the backend, and nothing
# written earlier is lost.  The daemon log must hold no error line other
# than the expected reports of a full disk.
# Hostile input tried: a writer that keeps writing after the first short
# write, as cp and dd do; writes of 1 byte when 0 bytes are free.
# Needs root (mount -t tmpfs); the tmpfs is always unmounted on exit.
. "$(dirname "$0")/lib.sh"
nt_require cmp sha256sum head stat
[ "$(id -u)" = 0 ] || nt_skip "needs root to mount a tmpfs"
nt_init
TSIZE_MIB=8

case $NT_BACKEND in
local) FULLDIR=$NT_BASE ;;
*) FULLDIR=$NT_TMP/cache ;;
esac
nt_tmpfs "$FULLDIR" "$TSIZE_MIB"
nt_log "tmpfs of $TSIZE_MIB MiB on $FULLDIR"

# cp/dd-like writer: 256 KiB writes until one fails; prints
# "WRITE-ERRNO CLOSE-ERRNO ACKED-BYTES" and keeps the data it tried in
# $2 so the file can be compared with what was acknowledged.
cat >"$NT_TMP/fill.py" <<'PY'
import errno, os, sys
path, keep, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
en = lambda e: errno.errorcode.get(e.errno, str(e.errno))
werr, cerr, acked = "none", "OK", 0
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
data = bytearray()
while acked < limit:
    chunk = os.urandom(256 * 1024)
    try:
        n = os.write(fd, chunk)
    except OSError as e:
        werr = en(e)
        break
    data += chunk[:n]
    acked += n
try:
    os.fsync(fd)
except OSError as e:
    cerr = "fsync:" + en(e)
try:
    os.close(fd)
except OSError as e:
    cerr = "close:" + en(e)
with open(keep, "wb") as f:
    f.write(data)
print(werr, cerr, acked)
PY

nt_workspace full1
head -c 1M /dev/urandom >"$NT_TMP/a.bin"
head -c 1M /dev/urandom >"$NT_TMP/b.bin"
nt_check "write a.bin (1 MiB) before the disk fills" cp "$NT_TMP/a.bin" "$W/a.bin"
nt_check "write b.bin (1 MiB)" cp "$NT_TMP/b.bin" "$W/b.bin"
mkdir "$W/d" && printf 'small\n' >"$W/d/small.txt"
nt_check_file "a.bin on the backend" "$B/a.bin" "$NT_TMP/a.bin"

# -- fill it ---------------------------------------------------------------
res=$(timeout -k 5 120 python3 "$NT_TMP/fill.py" "$W/fill" "$NT_TMP/fill.sent" \
	$((64 * 1024 * 1024)) 2>&1)
nt_log "filling writer: $res (write errno, close, bytes acknowledged)"
read -r werr cerr acked <<<"$res"
nt_check_out "the writer gets ENOSPC (write, fsync or close)" yes sh -c \
	'case "$1 $2" in *ENOSPC*) echo yes;; *) echo "$1 $2";; esac' sh \
	"$werr" "$cerr"
nt_check "it wrote less than 64 MiB before ENOSPC" \
	test "${acked:-0}" -lt $((64 * 1024 * 1024))
if [ "$NT_BACKEND" = local ]; then
	nt_check_out "statfs through the mount shows the small disk" yes sh -c \
		'set -- $(stat -f -c "%b %S" "$1"); t=$(($1 * $2))
		 [ $t -le $((9 << 20)) ] && [ $t -ge $((6 << 20)) ] && echo yes ||
		 echo "$t bytes"' sh "$W"
fi

# -- while full ----------------------------------------------------------------
nt_check "daemon alive after ENOSPC" nt_alive "$NT_DPID"
nt_check_file "a.bin intact (mount)" "$W/a.bin" "$NT_TMP/a.bin"
nt_check_file "b.bin intact (mount)" "$W/b.bin" "$NT_TMP/b.bin"
nt_check_file "a.bin intact (backend)" "$B/a.bin" "$NT_TMP/a.bin"
nt_check_file "b.bin intact (backend)" "$B/b.bin" "$NT_TMP/b.bin"
nt_check_content "d/small.txt intact" "$W/d/small.txt" $'small\n'
nt_check_out "acknowledged bytes of the filling file are all there" yes \
	python3 -c '
import sys
a = open(sys.argv[1], "rb").read(); s = open(sys.argv[2], "rb").read()
print("yes" if a[:len(s)] == s and len(s) == int(sys.argv[3])
      else "file %d bytes, acknowledged %d, prefix equal %s" % (
          len(a), len(s), a[:len(s)] == s))' "$W/fill" "$NT_TMP/fill.sent" \
	"${acked:-0}"
nt_check_out "ls works while full" "a.bin b.bin d fill" sh -c \
	'ls "$1" | tr "\n" " " | sed "s/ $//"' sh "$W"
nt_check_out "a 1-byte write to a new file on the full disk: ENOSPC" ENOSPC \
	python3 -c '
import errno, os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x" * 65536)
        os.write(fd, b"x" * 65536)
        os.fsync(fd)
    finally:
        os.close(fd)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))' "$W/more"
rm -f "$W/more"
if [ "$NT_BACKEND" = local ]; then
	nt_check_exec "exec works while full" 'echo alive; cat d/small.txt' \
		$'alive\nsmall\n'
else
	# the exec barrier must upload the dirty, half-written fill file,
	# which the full cache cannot stage: running or an errno, no hang
	nt_check_errno_re "exec while the cache is full: runs or fails with an errno" \
		'OK|ENOSPC|EIO' write "$C/exec" $'echo alive\n'
fi
if [ "$NT_BACKEND" = local ]; then
	nt_exec 'head -c 1048576 /dev/zero > z.bin'
	nt_check_content "a command filling the sandbox fails by itself" \
		"$C/status" $'1\n'
	nt_check_out "... with ENOSPC in its stderr" yes sh -c \
		'grep -q "No space left" "$1" && echo yes' sh "$C/stderr"
	rm -f "$W/z.bin"
fi

# -- after freeing space -----------------------------------------------------
nt_check "rm the big file" rm -f "$W/fill"
nt_log "after rm: $(df -k --output=used,avail "$FULLDIR" | tail -n 1) kB used/avail; \
largest: $(du -a -k "$FULLDIR" 2>/dev/null | sort -n | tail -n 4 | tr '\n' ' ')"
# 1 MiB: over HTTP a dirty file needs about three times its size in the
# cache while it is uploaded (tree copy, journal snapshot, tar)
head -c 1M /dev/urandom >"$NT_TMP/c.bin"
nt_check "write c.bin (1 MiB) after freeing space" cp "$NT_TMP/c.bin" \
	"$W/c.bin"
nt_check_file "c.bin (mount)" "$W/c.bin" "$NT_TMP/c.bin"
nt_check_file "c.bin (backend)" "$B/c.bin" "$NT_TMP/c.bin"
nt_check_exec "exec sees c.bin" 'sha256sum c.bin | cut -d" " -f1' \
	"$(sha256sum <"$NT_TMP/c.bin" | cut -d' ' -f1)"$'\n'
nt_check_file "a.bin still intact" "$W/a.bin" "$NT_TMP/a.bin"
nt_check_file "b.bin still intact (backend)" "$B/b.bin" "$NT_TMP/b.bin"
nt_expect_log_error 'No space left|ENOSPC'
nt_unmount
nt_finish
