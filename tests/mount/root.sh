#!/usr/bin/env bash
# root.sh - the mount root and the daemon's life cycle: mkdir MNT/ID
# creates a sandbox on the backend, ls MNT lists sandboxes (also one the
# backend created directly), invalid ids fail with EINVAL, rmdir of a
# non-empty sandbox fails with ENOTEMPTY and of an empty one deletes it on
# the backend, files at the root fail with EPERM; -o session=ID mounts one
# workspace at MNT with MNT/.nox (and attaches again later); unmount with
# an open file (fusermount3 -u busy, -uz works, daemon exits 0 once the
# file is closed); SIGTERM and SIGINT unmount cleanly with exit 0;
# daemonising without -f returns once mounted; --help and --version.
# Hostile input tried: ids with space, leading '-' or '.', ':', unicode,
# 129 bytes; a session id that is invalid.
. "$(dirname "$0")/lib.sh"
nt_require stat ls sleep
nt_init

# -- CLI -------------------------------------------------------------
nt_check "noxfs --help exits 0" "$NT_NOXFS" --help
nt_check_out "noxfs --version prints a version" 1 sh -c \
	"'$NT_NOXFS' --version | grep -c '[0-9]\\.[0-9]'"
nt_check_not "noxfs without a mount point fails" "$NT_NOXFS" --local="$NT_BASE" -f
mkdir -p "$NT_TMP/m2"
rc=0
"$NT_NOXFS" -o bogus=1 --local="$NT_BASE" -f "$NT_TMP/m2" \
	>"$NT_TMP/bogus.out" 2>&1 || rc=$?
nt_check_eq "unknown -o fails" 1 "$rc" "exit code"
nt_check_out "unknown -o is one line naming it" \
	"noxfs: error: fuse: unknown option(s): \`-o bogus=1'" cat "$NT_TMP/bogus.out"
# conflicting sources are refused, not one of them silently ignored
for argv in "--url http://127.0.0.1:9 -o session=s word" \
	"--url http://127.0.0.1:9 --local=$NT_BASE" \
	"-o session=s local:$NT_BASE#t" \
	"--local=$NT_BASE http://127.0.0.1:9"; do
	rc=0
	# shellcheck disable=SC2086
	timeout 20 "$NT_NOXFS" $argv -f "$NT_TMP/m2" >"$NT_TMP/conflict.out" 2>&1 ||
		rc=$?
	nt_check_eq "conflicting sources refused: $argv" 1 "$rc" "exit code"
	nt_check_out "conflicting sources: one clear line: $argv" 1 sh -c \
		"grep -cE 'conflicts with|name two backends' '$NT_TMP/conflict.out'"
	nt_check_not "conflicting sources: nothing mounted: $argv" \
		nt_mounted "$NT_TMP/m2"
done

if [ "$NT_SESSION" = 1 ]; then
	nt_log "root.sh ignores NOX_TEST_SESSION"
	NT_SESSION=0
fi
nt_mount ""

# -- the root ---------------------------------------------------------
nt_check_out "fresh root lists nothing" "" ls -A "$NT_MNT"
nt_check "mkdir MNT/sb1" mkdir "$NT_MNT/sb1"
nt_check "sandbox dir appears on the backend" test -d "$(nt_backend_ws sb1)"
nt_check_out "MNT/sb1 is a directory" directory stat -c %F "$NT_MNT/sb1"
nt_check_out "ls MNT lists sb1" sb1 ls "$NT_MNT"
nt_check_errno "mkdir existing sandbox → EEXIST" EEXIST mkdir "$NT_MNT/sb1"
mkdir -p "$(nt_backend_ws ext1)"
printf 'made outside\n' >"$(nt_backend_ws ext1)/outside.txt"
if [ "$NT_BACKEND" = noxd-v1 ]; then
	# v1 cannot list sandboxes: the root shows those this mount knows;
	# another one is reachable by name, and known from then on
	nt_check_out "v1: ls MNT lists the sandboxes the mount knows" sb1 \
		sh -c "ls '$NT_MNT' | LC_ALL=C sort"
	nt_check "v1: a sandbox the backend created is reachable by name" \
		test -d "$NT_MNT/ext1"
fi
nt_check_out "ls MNT lists a sandbox the backend created" $'ext1\nsb1' \
	sh -c "ls '$NT_MNT' | LC_ALL=C sort"
nt_check_content "its files are readable" "$NT_MNT/ext1/outside.txt" \
	$'made outside\n'
nt_check "its .nox/exec works" sh -c "echo 'cat outside.txt' > \
'$NT_MNT/ext1/.nox/exec'"
nt_check_content "its exec output" "$NT_MNT/ext1/.nox/stdout" \
	$'made outside\n'
for bad in "bad id" "-lead" ".hidden" "a:b" "ünï" \
	"$(printf 'x%.0s' $(seq 129))"; do
	nt_check_errno "mkdir invalid id '${bad:0:20}' → EINVAL" EINVAL mkdir \
		"$NT_MNT/$bad"
done
nt_check_not "no backend dir for an invalid id" test -e \
	"$NT_BASE/noxrunner_sandbox_bad id"
long=$(printf 'y%.0s' $(seq 128))
nt_check_errno "mkdir 128-byte id works" OK mkdir "$NT_MNT/$long"
nt_check "128-byte id on the backend" test -d "$(nt_backend_ws "$long")"
nt_check_errno "create a file at the root → EPERM" EPERM creat \
	"$NT_MNT/file"
nt_check_errno "symlink at the root → EPERM" EPERM symlink sb1 \
	"$NT_MNT/link"
nt_check_not "shell redirect at the root fails" sh -c ": > '$NT_MNT/f2'"
nt_check_out "root still lists only sandboxes" $'ext1\nsb1\n'"$long" \
	sh -c "ls '$NT_MNT' | LC_ALL=C sort"

printf 'data\n' >"$NT_MNT/sb1/f"
mkdir "$NT_MNT/sb1/d"
nt_check_errno "rmdir sandbox with files → ENOTEMPTY" ENOTEMPTY rmdir \
	"$NT_MNT/sb1"
nt_check "sandbox kept on the backend" test -f "$(nt_backend_ws sb1)/f"
rm -r "$NT_MNT/sb1/f" "$NT_MNT/sb1/d"
printf 'h\n' >"$NT_MNT/sb1/.hidden"
nt_check_errno "rmdir sandbox with a dotfile → ENOTEMPTY" ENOTEMPTY rmdir \
	"$NT_MNT/sb1"
rm "$NT_MNT/sb1/.hidden"
nt_check_errno "rmdir empty sandbox" OK rmdir "$NT_MNT/sb1"
nt_check_not "sandbox removed on the backend" test -e \
	"$NT_BASE/noxrunner_sandbox_sb1"
nt_check_out "ls MNT no longer lists it" $'ext1\n'"$long" \
	sh -c "ls '$NT_MNT' | LC_ALL=C sort"
nt_check_errno "stat of the removed sandbox → ENOENT" ENOENT open \
	"$NT_MNT/sb1"
rm "$NT_MNT/ext1/outside.txt"
nt_check_errno "rmdir the outside-made sandbox" OK rmdir "$NT_MNT/ext1"
nt_check_not "removed on the backend" test -e "$NT_BASE/noxrunner_sandbox_ext1"
nt_check "mkdir again after rmdir" mkdir "$NT_MNT/sb1"
nt_check_out "recreated sandbox is empty" "" ls -A "$NT_MNT/sb1" \
	--ignore=.nox

if [ "$NT_BACKEND" = local ]; then
	source_want="local:$NT_BASE"
else
	source_want="http://127.0.0.1:$NT_PORT"
fi
nt_check_out "fsname is the source, type fuse.noxfs" \
	"fuse.noxfs $source_want" sh -c \
	"awk -v m='$NT_MNT' '\$5 == m { for (i = 7; \$i != \"-\"; i++); \
print \$(i + 1), \$(i + 2) }' /proc/self/mountinfo"

# rm -rf of a sandbox directory deletes the sandbox (.nox is not listed,
# so rm never tries to remove the control files)
mkdir "$NT_MNT/rmrf" && mkdir -p "$NT_MNT/rmrf/d/e" &&
	printf 'x\n' >"$NT_MNT/rmrf/d/e/f" && printf 'y\n' >"$NT_MNT/rmrf/g"
nt_check "rm -rf MNT/ID" rm -rf "$NT_MNT/rmrf"
nt_check_not "rm -rf deleted the sandbox on the backend" test -e \
	"$NT_BASE/noxrunner_sandbox_rmrf"
nt_check_errno "rm -rf: the sandbox is gone from the mount" ENOENT open \
	"$NT_MNT/rmrf"

# a second noxfs on the same mount point is refused, the first stays
rc=0
timeout 20 "$NT_NOXFS" --local="$NT_BASE" -f "$NT_MNT" \
	>"$NT_TMP/stack.out" 2>&1 || rc=$?
nt_check_eq "a second noxfs on MNT fails" 1 "$rc" "exit code"
nt_check_out "it says MNT is already a noxfs mount" 1 \
	grep -c "is already a noxfs mount" "$NT_TMP/stack.out"
nt_check_out "one mount on MNT" 1 sh -c \
	"awk -v m='$NT_MNT' '\$5 == m' /proc/self/mountinfo | wc -l"
nt_check "the first mount still serves" test -d "$NT_MNT/sb1"
nt_unmount

# -- options passed through, -d, NOXRUNNER_BASE_URL with --local ----------
NOXRUNNER_BASE_URL=http://127.0.0.1:9 nt_mount \
	"fsname=myfs,subtype=mysub,allow_other,default_permissions"
nt_check_out "-o fsname=myfs,subtype=mysub" "fuse.mysub myfs" sh -c \
	"awk -v m='$NT_MNT' '\$5 == m { for (i = 7; \$i != \"-\"; i++); \
print \$(i + 1), \$(i + 2) }' /proc/self/mountinfo"
if [ "$NT_BACKEND" = local ]; then
	nt_check_out "--local wins over NOXRUNNER_BASE_URL" local python3 "$NT_PY" \
		json "$NT_MNT/sb1/.nox/info" backend
else	# the harness mounts with --url here: the backend must say so
	nt_check_out ".nox/info names the http backend" http python3 "$NT_PY" \
		json "$NT_MNT/sb1/.nox/info" backend
fi
printf 'pub\n' >"$NT_MNT/sb1/pub"
printf 'priv\n' >"$NT_MNT/sb1/priv"
chmod 644 "$NT_MNT/sb1/pub"
chmod 600 "$NT_MNT/sb1/priv"
chmod 755 "$NT_MNT/sb1"
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	chmod 711 "$NT_TMP" # mktemp -d made it 700: let nobody reach MNT
	nt_check_out "allow_other: another user reads a 644 file" pub \
		"${nobody[@]}" cat "$NT_MNT/sb1/pub"
	nt_check_not "default_permissions: another user can't read 600" \
		"${nobody[@]}" cat "$NT_MNT/sb1/priv"
	nt_check_not "default_permissions: another user can't write 644" \
		"${nobody[@]}" sh -c "echo x >> '$NT_MNT/sb1/pub'"
	if [ "$NT_BACKEND" != local ]; then
		# the HTTP cache holds the same files: only their owner gets in
		cd_host=$(ls -d "$NT_TMP"/cache/*/ | head -n 1)
		nt_check_out "http cache: CACHE/<host> is mode 700" 700 \
			stat -c %a "$cd_host"
		nt_check_out "http cache: CACHE/<host>/<id> is mode 700" 700 \
			stat -c %a "$cd_host/sb1"
		nt_check "http cache: the 644 file is in the cache tree" \
			test -f "$cd_host/sb1/tree/pub"
		nt_check_not "http cache: another user can't read it there" \
			"${nobody[@]}" cat "$cd_host/sb1/tree/pub"
		nt_check_not "http cache: nor list the journal" \
			"${nobody[@]}" ls "$cd_host/sb1/journal"
	fi
fi
nt_unmount
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	nt_mount ""
	nt_check_not "without allow_other another user is refused" \
		"${nobody[@]}" cat "$NT_MNT/sb1/pub"
	nt_unmount
fi
rm -f "$(nt_backend_ws sb1)/pub" "$(nt_backend_ws sb1)/priv"
NT_MOUNTS=$((NT_MOUNTS + 1))
NT_LOG="$NT_TMP/noxfs.$NT_MOUNTS.log"
"$NT_NOXFS" --local="$NT_BASE" -d "$NT_MNT" >"$NT_LOG" 2>&1 &
NT_DPID=$!
for i in $(seq 100); do
	nt_mounted "$NT_MNT" && break
	nt_alive "$NT_DPID" || break
	sleep 0.1
done
nt_check "-d stays in the foreground and mounts" nt_mounted "$NT_MNT"
ls "$NT_MNT/sb1" >/dev/null 2>&1
nt_check "-d logs debug lines" grep -q 'debug' "$NT_LOG"
nt_unmount

# -- -o ro ---------------------------------------------------------------
nt_mount "ro"
printf 'r\n' >"$(nt_backend_ws sb1)/r.txt"
nt_check_content "ro: file readable" "$NT_MNT/sb1/r.txt" $'r\n'
nt_check_errno "ro: create → EROFS" EROFS creat "$NT_MNT/sb1/new"
nt_check_errno "ro: mkdir sandbox → EROFS" EROFS mkdir "$NT_MNT/sb2"
nt_check_errno "ro: unlink → EROFS" EROFS unlink "$NT_MNT/sb1/r.txt"
rm -f "$(nt_backend_ws sb1)/r.txt"
nt_unmount

# -- keepalive ---------------------------------------------------------
nt_mount "ttl=6"
mkdir "$NT_MNT/ka"
st="$NT_BASE/noxrunner_sandbox_ka/nox-state.json"
e0=$(python3 "$NT_PY" json "$NT_MNT/ka/.nox/info" expiresAt)
s0=$(python3 "$NT_PY" json "$st" expiresAt)
sleep 4.5
s1=$(python3 "$NT_PY" json "$st" expiresAt)
nt_check "ttl=6: touched within 4.5 s (backend expiresAt $s0 → $s1)" \
	test "$s1" != "$s0" -a -n "$s1"
e1=$(python3 "$NT_PY" json "$NT_MNT/ka/.nox/info" expiresAt)
nt_log "info expiresAt $e0 → $e1"
sleep 3
nt_check "ttl=6: sandbox alive after 7.5 s" test -d "$(nt_backend_ws ka)"
C="$NT_MNT/ka/.nox"
nt_check_exec "ttl=6: exec works after 7.5 s" 'echo alive' $'alive\n'
rmdir "$NT_MNT/ka"
nt_unmount

# -- unmount with an open file ------------------------------------------
nt_mount ""
mkdir "$NT_MNT/busy"
printf 'held\n' >"$NT_MNT/busy/f"
# The file is held by this shell and closed by it, not by a process that
# is killed: a process that dies of a signal sends FLUSH with a fatal
# signal pending, the kernel follows it with FUSE_INTERRUPT, and when the
# reply wins that race libfuse 3.14 keeps the INTERRUPT request until the
# next request comes, which after a lazy unmount never does. LeakSanitizer
# then reports it (128 bytes from fuse_session_process_buf_int) at exit.
exec {holder}<"$NT_MNT/busy/f"
nt_check_not "fusermount3 -u with an open file fails (busy)" \
	fusermount3 -u "$NT_MNT"
nt_check "still mounted" nt_mounted "$NT_MNT"
nt_check "daemon still alive" nt_alive "$NT_DPID"
nt_check_content "mount still works" "$NT_MNT/busy/f" $'held\n'
nt_check "fusermount3 -uz (lazy)" fusermount3 -uz "$NT_MNT"
nt_check_not "mount gone from mountinfo" nt_mounted "$NT_MNT"
exec {holder}<&-
nt_wait_exit "$NT_DPID" 15
nt_check_eq "daemon exits 0 after the last file closes" 0 "$NT_RC" \
	"wait daemon"
NT_DPID=""
nt_check_content "data kept (backend)" "$(nt_backend_ws busy)/f" $'held\n'
nt_check_log

# -- SIGTERM and SIGINT ---------------------------------------------------
for sig in TERM INT; do
	nt_mount ""
	printf 'before %s\n' "$sig" >"$NT_MNT/busy/sig.txt"
	kill -"$sig" "$NT_DPID"
	nt_wait_exit "$NT_DPID" 15
	nt_check_eq "SIG$sig: daemon exits 0" 0 "$NT_RC" "kill -$sig; wait"
	[ "$NT_RC" = timeout ] && nt_stop_pid "$NT_DPID"
	NT_DPID=""
	nt_check_not "SIG$sig: mount gone" nt_mounted "$NT_MNT"
	nt_mounted "$NT_MNT" && fusermount3 -uz "$NT_MNT"
	nt_check_content "SIG$sig: data on the backend" \
		"$(nt_backend_ws busy)/sig.txt" "before $sig"$'\n'
	nt_check_log
done

# -- SIGKILL: the mount dies, does not hang, and can be cleaned up ----------
nt_mount ""
printf 'before kill\n' >"$NT_MNT/busy/kill.txt"
kill -KILL "$NT_DPID"
nt_wait_exit "$NT_DPID" 10
NT_DPID=""
nt_check_errno "SIGKILL: access fails with ENOTCONN, no hang" ENOTCONN \
	open "$NT_MNT/busy/kill.txt"
nt_check "SIGKILL: fusermount3 -u cleans up" fusermount3 -u "$NT_MNT"
nt_mounted "$NT_MNT" && fusermount3 -uz "$NT_MNT"
nt_mount ""
nt_check_content "SIGKILL: data there after remount" "$NT_MNT/busy/kill.txt" \
	$'before kill\n'
nt_unmount

# -- daemonising (no -f) ---------------------------------------------------
out=$(timeout 20 "$NT_NOXFS" --local="$NT_BASE" "$NT_MNT" 2>&1)
rc=$?
nt_check_eq "noxfs without -f returns 0" 0 "$rc" "noxfs --local MNT: $out"
nt_check "mounted when it returns" nt_mounted "$NT_MNT"
nt_check_content "works" "$NT_MNT/busy/f" $'held\n'
dpid=""
for p in /proc/[0-9]*; do
	if tr '\0' '\n' 2>/dev/null <"$p/cmdline" | grep -qxF "$NT_MNT" &&
		tr '\0' '\n' 2>/dev/null <"$p/cmdline" | grep -q noxfs; then
		dpid=${p#/proc/}
	fi
done
nt_check "fusermount3 -u of the daemonised mount" fusermount3 -u "$NT_MNT"
if [ -n "$dpid" ]; then
	ok=1
	for i in $(seq 100); do
		nt_alive "$dpid" || { ok=0; break; }
		sleep 0.1
	done
	nt_check_eq "daemonised noxfs exits after unmount" 0 "$ok" \
		"pid $dpid"
	nt_alive "$dpid" && kill -KILL "$dpid"
else
	nt_fail "found the daemonised noxfs" "/proc/*/cmdline" "a pid" "none"
fi
nt_mounted "$NT_MNT" && fusermount3 -uz "$NT_MNT"

# -- session mode -------------------------------------------------------
NT_SESSION=1
nt_workspace sess1
nt_check "session: backend sandbox created" test -d "$B"
nt_check_out "session: ls -a MNT does not list .nox" 0 sh -c \
	"ls -a '$NT_MNT' | grep -cx .nox; true"
nt_check_out "session: .nox reachable by name" directory stat -c %F "$C"
# mountinfo escapes '#' as \043
nt_check_out "session: mountinfo shows the source with the session" \
	"$source_want\\043sess1" sh -c \
	"awk -v m='$NT_MNT' '\$5 == m { for (i = 7; \$i != \"-\"; i++); \
print \$(i + 2) }' /proc/self/mountinfo"
nt_check "session: write a file at MNT" sh -c "printf 'sess\n' > '$W/a'"
nt_check_content "session: on the backend" "$B/a" $'sess\n'
nt_check "session: mkdir" mkdir "$W/d"
nt_check_exec "session: MNT/.nox/exec" 'cat a; ls -d d' $'sess\nd\n'
nt_check_out "session: info id" sess1 python3 "$NT_PY" json "$C/info" id
nt_check_errno "session: rmdir .nox → EPERM" EPERM rmdir "$C"
nt_unmount
nt_workspace sess1
nt_check_content "session: attach again keeps files" "$W/a" $'sess\n'
nt_unmount
out=$(timeout 20 "$NT_NOXFS" --local="$NT_BASE" -f -o "session=bad id" \
	"$NT_MNT" 2>&1)
rc=$?
nt_check "session=invalid id: fails" test "$rc" -ne 0 -a "$rc" -ne 124
nt_check_not "session=invalid id: not mounted" nt_mounted "$NT_MNT"
nt_check "session=invalid id: says why" sh -c \
	"printf '%s' \"\$1\" | grep -qi 'id'" sh "$out"
nt_mounted "$NT_MNT" && fusermount3 -uz "$NT_MNT"

nt_finish
