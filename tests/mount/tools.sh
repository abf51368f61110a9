#!/usr/bin/env bash
# tools.sh - ordinary programs on a noxfs mount: cp -a of a tree (a copy of
# /usr/include/linux plus a generated tree with modes, symlinks, a hard
# link, empty dirs and odd names) in and out with diff -r and a listing of
# types/modes/sizes/mtimes/link targets; tar x into and tar c out of the
# mount; git init/add/commit/status/branch/checkout/log/fsck; an editor's
# atomic save (write temp, fsync, mv over) 50 times, checked in the mount
# and on the backend after every save; rm -rf of the tree.
# Hostile input tried: names with newline, quotes, "$(...)", backslash,
# leading dash, unicode and 255-byte names.
. "$(dirname "$0")/lib.sh"
nt_require cp diff tar git find sort sha256sum
nt_init
nt_workspace tools1

src="$NT_TMP/src"
mkdir -p "$src"
nt_make_tree "$src/gen"
if [ -d /usr/include/linux ]; then
	cp -a /usr/include/linux "$src/linux"
fi
# Hard links across the whole tree must survive cp -a.
srclist=$(nt_tree_list "$src")

# -- cp -a in and out -------------------------------------------------
nt_check "cp -a tree into the mount" cp -a "$src" "$W/tree"
nt_check "diff -r source vs mount" diff -r --no-dereference "$src" "$W/tree"
nt_check_eq "listing (types, modes, sizes, mtimes, links) in the mount" \
	"$srclist" "$(nt_tree_list "$W/tree")" "nt_tree_list"
nt_check_eq "listing on the backend" "$srclist" "$(nt_tree_list "$B/tree")" \
	"nt_tree_list backend"
nt_check "diff -r source vs backend" diff -r --no-dereference "$src" "$B/tree"
nt_check_eq "hard link kept by cp -a" \
	"$(stat -c %i "$W/tree/gen/a/hello.txt")" \
	"$(stat -c %i "$W/tree/gen/a/hardlink")" "stat -c %i"
nt_check "cp -a tree out of the mount" cp -a "$W/tree" "$NT_TMP/out"
nt_check "diff -r source vs copy out" diff -r --no-dereference "$src" \
	"$NT_TMP/out"
nt_check_eq "listing of the copy out" "$srclist" \
	"$(nt_tree_list "$NT_TMP/out")" "nt_tree_list out"
nt_check_out "du -s works" 0 sh -c "du -s '$W/tree' >/dev/null; echo \$?"
nt_check_out "find | wc -l agrees" "$(find "$src" | wc -l)" \
	sh -c "find '$W/tree' | wc -l"
nt_check_out "grep -r finds a define" \
	"$(grep -rl 'define' "$src" | sed "s|^$src||" | LC_ALL=C sort |
		sha256sum)" \
	sh -c "grep -rl define '$W/tree' | sed 's|^$W/tree||' | LC_ALL=C sort |
		sha256sum"

# -- tar x and tar c ----------------------------------------------------
tar -C "$src" -cf "$NT_TMP/in.tar" .
mkdir "$W/tarx"
nt_check "tar x into the mount" tar -C "$W/tarx" -xpf "$NT_TMP/in.tar"
nt_check "diff -r after tar x" diff -r --no-dereference "$src" "$W/tarx"
nt_check_eq "listing after tar x" "$srclist" "$(nt_tree_list "$W/tarx")" \
	"nt_tree_list tarx"
nt_check "tar c out of the mount" tar -C "$W/tarx" -cf "$NT_TMP/out.tar" .
nt_check_eq "tar listings equal (tar tv)" \
	"$(tar -tvf "$NT_TMP/in.tar" | LC_ALL=C sort)" \
	"$(tar -tvf "$NT_TMP/out.tar" | LC_ALL=C sort)" "tar -tvf"
mkdir "$NT_TMP/tarout"
tar -C "$NT_TMP/tarout" -xpf "$NT_TMP/out.tar"
nt_check "diff -r after tar c round trip" diff -r --no-dereference "$src" \
	"$NT_TMP/tarout"
nt_check "tar c | tar x inside the mount" sh -c \
	"mkdir '$W/tarx2' && tar -C '$W/tarx' -cf - . | tar -C '$W/tarx2' -xpf -"
nt_check "diff -r tar pipe inside the mount" diff -r --no-dereference \
	"$src" "$W/tarx2"

# -- git --------------------------------------------------------------
g() { git -C "$W/repo" -c user.name=Tester -c user.email=t@example.com \
	-c init.defaultBranch=main -c core.fsync=all "$@"; }
mkdir "$W/repo"
nt_check "git init" g init -q
cp -a "$src/gen" "$W/repo/gen"
printf 'first\n' >"$W/repo/README"
nt_check "git add" g add -A
nt_check "git commit" g commit -q -m first
nt_check_out "git status clean" "" g status --porcelain
printf 'second\n' >>"$W/repo/README"
nt_check_out "git status sees a change" " M README" g status --porcelain
nt_check "git commit -a" g commit -q -a -m second
nt_check "git branch" g branch feature
nt_check "git checkout feature" g checkout -q feature
printf 'feature\n' >"$W/repo/feat.txt"
rm "$W/repo/gen/a/hello.txt"
nt_check "git add/commit on feature" sh -c \
	"git -C '$W/repo' -c user.name=T -c user.email=t@e add -A &&
	 git -C '$W/repo' -c user.name=T -c user.email=t@e commit -q -m feat"
nt_check "git checkout main" g checkout -q main
nt_check_not "feature file gone on main" test -e "$W/repo/feat.txt"
nt_check_content "deleted file back on main" "$W/repo/gen/a/hello.txt" \
	$'hello\n'
nt_check_content "README on main" "$W/repo/README" $'first\nsecond\n'
nt_check_out "git log count" 2 g rev-list --count HEAD
nt_check_out "git log count feature" 3 g rev-list --count feature
nt_check "git merge feature" g merge -q --no-edit feature
nt_check_out "git status clean after merge" "" g status --porcelain
nt_check "git fsck" g fsck --strict --no-progress
nt_check "git gc" g gc -q
nt_check "git fsck after gc" g fsck --strict --no-progress
nt_check_out "backend repo status clean" "" \
	git -C "$B/repo" status --porcelain
nt_check_out "backend repo HEAD equal" "$(g rev-parse HEAD)" \
	git -C "$B/repo" rev-parse HEAD
nt_check_exec "git in the sandbox sees the commits" \
	'git -C repo rev-list --count HEAD' $'3\n'
nt_check "git clone out of the mount" git clone -q "$W/repo" "$NT_TMP/clone"
nt_check "git clone into the mount" git clone -q "$NT_TMP/clone" "$W/clone2"
nt_check_out "clone in mount at HEAD" "$(g rev-parse HEAD)" \
	git -C "$W/clone2" rev-parse HEAD

# -- editor-style atomic save, 50 times --------------------------------
printf 'version 0\n' >"$W/doc.txt"
cat "$W/doc.txt" >/dev/null
bad=""
for i in $(seq 1 50); do
	tmp="$W/.doc.txt.swp"
	if [ $((i % 2)) -eq 0 ]; then
		python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, sys.argv[2].encode())
os.fsync(fd)
os.close(fd)' "$tmp" "version $i"$'\n' || bad+=" write$i"
	else
		printf 'version %d\n' "$i" |
			dd of="$tmp" conv=fsync status=none || bad+=" dd$i"
	fi
	timeout 60 mv -f "$tmp" "$W/doc.txt" || bad+=" mv$i"
	got=$(timeout 60 cat "$W/doc.txt")
	[ "$got" = "version $i" ] || bad+=" mount$i=[$got]"
	got=$(cat "$B/doc.txt")
	[ "$got" = "version $i" ] || bad+=" backend$i=[$got]"
done
nt_check_eq "50 atomic saves, each visible at once (mount, backend)" "" \
	"$bad" "write temp, fsync, mv over; cat"
nt_check_content "final content" "$W/doc.txt" $'version 50\n'
nt_check_content "final content (backend)" "$B/doc.txt" $'version 50\n'
nt_check_not "no temp file left" test -e "$W/.doc.txt.swp"
nt_check_not "no temp file left (backend)" test -e "$B/.doc.txt.swp"
nt_check_exec "exec sees the final version" 'cat doc.txt' $'version 50\n'

# -- rm -rf --------------------------------------------------------------
nt_check "rm -rf tree" rm -rf "$W/tree" "$W/tarx" "$W/tarx2"
nt_check_not "tree gone" test -e "$W/tree"
nt_check_not "tree gone (backend)" test -e "$B/tree"
nt_check "rm -rf repo" rm -rf "$W/repo" "$W/clone2"
nt_check_out "workspace has only doc.txt" "doc.txt" ls "$W"
nt_check_out "backend has only doc.txt" "doc.txt" ls -A "$B"

# -- .nox stays out of tree walkers ----------------------------------------
# git at the workspace root neither shows nor commits the control files;
# cp -a of a whole sandbox copies its files only (it used to write the
# old result into the other sandbox's .nox/exec).
nt_check "git init at the workspace root" git -C "$W" init -q
nt_check_out "git status: only doc.txt, no .nox" "?? doc.txt" \
	git -C "$W" status --porcelain
nt_check "git add -A at the root" git -C "$W" add -A
nt_check_out "git add -A staged doc.txt only" "doc.txt" \
	git -C "$W" diff --cached --name-only
rm -rf "$W/.git"
if [ "$NT_SESSION" != 1 ]; then
	mkdir "$NT_MNT/tools2"
	nt_check "cp -a of a sandbox into another" cp -a "$W/." "$NT_MNT/tools2/"
	nt_check_out "the copy holds the files only" "doc.txt" \
		ls -A "$(nt_backend_ws tools2)"
	nt_check_out "no command ran in the other sandbox" "" \
		cat "$NT_MNT/tools2/.nox/status"
	nt_check "rm -rf of the copy deletes that sandbox" rm -rf "$NT_MNT/tools2"
	nt_check_not "rm -rf: gone on the backend" test -e \
		"$NT_BASE/noxrunner_sandbox_tools2"
fi

nt_finish
