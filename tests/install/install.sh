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
# a sanitizer build's libnox needs the program built with the same runtime
san=$(meson introspect "$build" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="b_sanitize"][0])')
sanflags=()
[ "$san" != none ] && sanflags=(-fsanitize="$san")
if cc "${sanflags[@]}" -o "$tmp/prog" "$tmp/prog.c" $(pkg-config --cflags --libs nox) 2>"$tmp/cc.log"; then
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

# mount(8): type fuse.noxfs runs mount.fuse3, which runs "noxfs SOURCE MNT -o
# ...", finding noxfs through /bin/sh's default PATH (mount clears PATH).  So
# that it finds the DESTDIR copy, the mounts run in a private mount
# namespace where the installed bin directory is bound over /usr/local/bin,
# which is where a default (prefix /usr/local) install puts it.
mkdir -p "$mnt" "$tmp/base"
if [ -e /dev/fuse ] && command -v mount.fuse3 >/dev/null && command -v unshare >/dev/null; then
	printf 'local:%s %s fuse.noxfs defaults,exec_timeout=20 0 0\n' "$tmp/base" "$mnt" > "$tmp/fstab"
	cat > "$tmp/ns.sh" <<NS
set -u
# whatever happens, leave no mount (and so no daemon) in this namespace
trap 'grep -q " $mnt " /proc/self/mountinfo && fusermount3 -uz "$mnt"' EXIT
mount --bind "$P/bin" /usr/local/bin || { echo "FAIL: bind"; exit 1; }
if timeout 30 mount -t fuse.noxfs "local:$tmp/base" "$mnt" -o exec_timeout=20; then
	echo "ok: mount -t fuse.noxfs"
	mkdir "$mnt/m1" && echo hi > "$mnt/m1/f"
	grep -q hi "$tmp/base/noxrunner_sandbox_m1/workspace/f" && echo "ok: a file written through mount -t reaches the sandbox" || echo "FAIL: file through mount -t"
	echo 'echo ran > out' > "$mnt/m1/.nox/exec" && grep -q ran "$mnt/m1/out" && echo "ok: .nox/exec through mount -t" || echo "FAIL: exec through mount -t"
	fusermount3 -u "$mnt" || { echo "FAIL: unmount after mount -t"; fusermount3 -uz "$mnt"; }
else
	echo "FAIL: mount -t fuse.noxfs"
fi
if timeout 30 mount -T "$tmp/fstab" "$mnt"; then
	echo "ok: mount through an fstab line"
	test -f "$mnt/m1/f" && echo "ok: the fstab mount lists the sandbox" || echo "FAIL: fstab mount content"
	fusermount3 -u "$mnt" || { echo "FAIL: unmount after fstab mount"; fusermount3 -uz "$mnt"; }
else
	echo "FAIL: mount through an fstab line"
fi
NS
	out=$(unshare -m --propagation private bash "$tmp/ns.sh" 2>&1)
	echo "$out"
	pass=$((pass + $(grep -c '^ok:' <<<"$out")))
	fail=$((fail + $(grep -c '^FAIL' <<<"$out")))
	[ "$(grep -c '^ok:' <<<"$out")" -ge 5 ] || bad "fewer mount checks passed than expected"
else
	if [ "${NOX_NO_SKIP:-}" = 1 ]; then bad "no /dev/fuse, mount.fuse3 or unshare"; else echo "skip: no /dev/fuse"; fi
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
