#!/bin/bash
# types.sh - FIFOs, sockets and device nodes over HTTP (issue 13 item 1):
# mkfifo through the mount makes a FIFO in the sandbox; a FIFO made by a
# command shows as a FIFO through the mount, also after the next listing;
# chmod, touch, rename, ln and rm of a FIFO reach the sandbox; the
# mount's FIFO is a pipe between local processes; a socket bound in the
# mount is a socket in the sandbox on a server with nox.fs (EPERM on a
# v1-only server: nothing portable makes one there); device nodes are
# refused (EPERM) on both.  Checked through the mount and in noxd's base
# dir.
: "${NOX_TEST_BACKEND:=noxd}"
export NOX_TEST_BACKEND
. "$(dirname "$0")/../mount/lib.sh"
. "$(dirname "$0")/hm.sh"

nt_require python3 timeout stat mkfifo
hm_require_noxd
nt_init
nt_workspace types1

# mknod_errno DIR NAME KIND: mknod(2) of KIND (sock, chr) as root, run
# in DIR (a socket's address is short); prints OK or the errno name.
mknod_errno() {
	(cd "$1" && timeout -k 5 "$NT_T" python3 - "$2" "$3" <<'PY'
import errno, os, socket, stat, sys
name, kind = sys.argv[1], sys.argv[2]
try:
    if kind == "sock":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(name)
        s.close()
    else:
        os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(1, 3))
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
else:
    print("OK")
PY
	)
}

# types: every case's state, mount and sandbox.
types() {
	local s=$1
	nt_check "f1 is a FIFO$s" test -p "$W/f1"
	nt_check "f1 is a FIFO (sandbox)$s" test -p "$B/f1"
	nt_check_out "f1 mode 640 (sandbox)$s" 640 stat -c %a "$B/f1"
	nt_check_out "f1 mode 640$s" 640 stat -c %a "$W/f1"
	nt_check "cmdf (made by a command) is a FIFO$s" test -p "$W/cmdf"
	nt_check_out "cmdf is listed as a FIFO$s" "fifo" \
		stat -c %F "$W/cmdf"
	nt_check "moved is a FIFO (sandbox)$s" test -p "$B/moved"
	nt_check_not "f2 is gone (sandbox)$s" test -e "$B/f2"
	nt_check_not "f2 is gone$s" test -e "$W/f2"
	nt_check_out "moved mode 600 (sandbox)$s" 600 stat -c %a "$B/moved"
	nt_check_out "moved mtime (sandbox)$s" 1000000000 \
		stat -c %Y "$B/moved"
	nt_check_out "moved mtime$s" 1000000000 stat -c %Y "$W/moved"
	nt_check_out "moved and hl one inode (sandbox)$s" 2 \
		stat -c %h "$B/hl"
	nt_check_not "f3 is gone (sandbox)$s" test -e "$B/f3"
	nt_check_not "f3 is gone$s" test -e "$W/f3"
	if [ "$NT_BACKEND" = noxd ]; then
		nt_check "sock is a socket (sandbox)$s" test -S "$B/sock"
		nt_check "sock is a socket$s" test -S "$W/sock"
	else
		nt_check_not "no sock (sandbox)$s" test -e "$B/sock"
		nt_check_not "no sock$s" test -e "$W/sock"
	fi
	nt_check_not "no dev (sandbox)$s" test -e "$B/dev"
	nt_check_not "no dev$s" test -e "$W/dev"
}

# mkfifo through the mount
nt_check "mkfifo -m 640 f1" mkfifo -m 640 "$W/f1"
# made by a command in the sandbox
nt_check_exec "mkfifo in the sandbox" 'mkfifo cmdf && echo ok' $'ok\n'
# rename, chmod, utimens, link of a FIFO made through the mount
nt_check "mkfifo f2" mkfifo "$W/f2"
nt_check "mv f2 moved" mv "$W/f2" "$W/moved"
nt_check "chmod 600 moved" chmod 600 "$W/moved"
nt_check "touch -d moved" touch -h -d @1000000000 "$W/moved"
nt_check "ln moved hl" ln "$W/moved" "$W/hl"
nt_check "mkfifo f3" mkfifo "$W/f3"
nt_check "rm f3" rm "$W/f3"

# the mount's FIFO carries data between two local processes
nt_check_out "a pipe through f1" "through the pipe" timeout -k 5 20 \
	bash -c 'test -p "$1" || exit 1
		cat "$1" & echo "through the pipe" >"$1"; wait' sh "$W/f1"

# sockets: a bind(2) is a mknod; devices are refused
if [ "$NT_BACKEND" = noxd ]; then
	nt_check_out "bind an AF_UNIX socket" OK mknod_errno "$W" sock sock
else
	nt_check_out "bind an AF_UNIX socket (v1: EPERM)" EPERM \
		mknod_errno "$W" sock sock
fi
nt_check_out "mknod of a char device (EPERM)" EPERM mknod_errno "$W" dev chr

types ""
# the next listing keeps the types (the attribute timeout is 1 s)
sleep 3
types " (after the next listing)"
# nothing was refused by the server or uploaded from a FIFO
nt_check_not "no warning in the daemon log" grep -E "warning:" "$NT_LOG"

nt_unmount
nt_finish
