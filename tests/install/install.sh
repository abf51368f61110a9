#!/usr/bin/env bash
# Installs the build into a DESTDIR and checks each installed piece is there
# and works: the three programs (--version), the man pages (man -l), the
# pkg-config file, a program compiled and run against the installed libnox,
# the systemd units, bash completion; then mounts a sandbox with
# `mount -t fuse.noxfs` and through an fstab line (mount -T FILE).
set -u
build=${NOX_BUILD_ROOT:?}
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what: $*"; fi; }

tmp=$(mktemp -d /tmp/noxinst.XXXXXX)
mnt=$tmp/mnt
cleanup() {
	if grep -q " $mnt " /proc/self/mountinfo 2>/dev/null; then
		fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
D=$tmp/dest
if ! meson install -C "$build" --destdir "$D" --no-rebuild --quiet >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log"
	bad "meson install"
	echo "$pass passed, $fail failed"
	exit 1
fi
ok "meson install into DESTDIR"
prefix=$(meson introspect "$build" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
P=$D$prefix
libdir=$(meson introspect "$build" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="libdir"][0])')
case $libdir in /*) L=$D$libdir ;; *) L=$P/$libdir ;; esac

for p in noxfs noxctl noxd; do
	check "$p --version" bash -c "LD_LIBRARY_PATH='$L' '$P/bin/$p' --version | grep -q '^$p '"
done
for m in man1/noxfs.1 man1/noxctl.1 man8/noxd.8; do
	check "man -l $m" bash -c "man -l '$P/share/man/$m' | grep -q NAME"
done
for h in nox.h backend.h err.h id.h tar.h v1.h log.h; do
	check "header nox/$h" test -f "$P/include/nox/$h"
done
check "libnox.so installed" bash -c "ls '$L'/libnox.so.0* >/dev/null"
export PKG_CONFIG_SYSROOT_DIR=$D PKG_CONFIG_PATH=$L/pkgconfig
check "pkg-config --cflags nox" bash -c "pkg-config --cflags nox | grep -q -- '-I$P/include'"
cat > "$tmp/prog.c" <<'C'
#include <errno.h>
#include <stdio.h>
#include <nox/nox.h>
int main(void)
{
	struct nox_err err;
	if (nox_id_validate("../x", &err) != -EINVAL)
		return 1;
	printf("%s\n", err.msg);
	return nox_id_validate("ok-id", NULL);
}
C
if cc -o "$tmp/prog" "$tmp/prog.c" $(pkg-config --cflags --libs nox) 2>"$tmp/cc.log"; then
	check "program against installed libnox runs" env LD_LIBRARY_PATH="$L" "$tmp/prog"
else
	cat "$tmp/cc.log"
	bad "compile against installed libnox"
fi
check "noxd.service" test -f "$D$prefix/lib/systemd/system/noxd.service"
check "noxfs@.service" test -f "$D$prefix/lib/systemd/system/noxfs@.service"
comp=$(find "$D" -path '*bash-completion/completions/noxctl' | head -1)
check "bash completion installed" test -n "$comp"
[ -n "$comp" ] && check "bash completion parses" bash -n "$comp"

# mount(8): type fuse.noxfs runs mount.fuse3, which runs "noxfs SOURCE MNT -o ...".
mkdir -p "$mnt" "$tmp/base"
if [ -e /dev/fuse ] && command -v mount.fuse3 >/dev/null; then
	export PATH="$P/bin:$PATH" LD_LIBRARY_PATH="$L"
	if timeout 30 mount -t fuse.noxfs "local:$tmp/base" "$mnt" -o exec_timeout=20 2>"$tmp/mount.log"; then
		ok "mount -t fuse.noxfs"
		mkdir "$mnt/m1" && echo hi > "$mnt/m1/f" &&
			check "file through mount -t reaches the sandbox" grep -q hi "$tmp/base/noxrunner_sandbox_m1/workspace/f"
		fusermount3 -u "$mnt" || bad "unmount after mount -t"
	else
		cat "$tmp/mount.log"
		bad "mount -t fuse.noxfs"
	fi
	printf 'local:%s %s fuse.noxfs defaults,exec_timeout=20 0 0\n' "$tmp/base" "$mnt" > "$tmp/fstab"
	if timeout 30 mount -T "$tmp/fstab" "$mnt" 2>"$tmp/mount2.log"; then
		ok "mount through an fstab line"
		check "fstab mount lists the sandbox" test -f "$mnt/m1/f"
		fusermount3 -u "$mnt" || bad "unmount after fstab mount"
	else
		cat "$tmp/mount2.log"
		bad "mount through an fstab line"
	fi
else
	if [ "${NOX_NO_SKIP:-}" = 1 ]; then bad "no /dev/fuse or mount.fuse3"; else echo "skip: no /dev/fuse"; fi
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
