#!/usr/bin/env bash
# exec.sh - the .nox control directory of a noxfs mount: the exec barrier
# (files written through the mount, closed or still open, are what the
# command sees), cache invalidation after a command (mounted with 60 s
# attr/entry timeouts so only invalidation can explain fresh results),
# JSON requests (argv with spaces and quotes, env, workdir, timeout),
# status/stdout/stderr files, the result read on the same open and on a
# fresh open, request errors (EINVAL, and a warning, not an error, in the
# log), 4 parallel transactions, .nox listing/EPERM/info/sync, and .nox
# never reaching the workspace.
# Hostile input tried: {"cmd": 5}, {"cmd": []}, a JSON syntax error, a
# missing cmd, shell metacharacters in argv, an open fd across an exec.
. "$(dirname "$0")/lib.sh"
nt_require stat ls tar
nt_init
nt_workspace exec1 "attr_timeout=60,entry_timeout=60"
ID=exec1

# -- the control directory -------------------------------------------
# .nox is hidden from readdir (like ZFS's .zfs) but reachable by name
nt_check_out "ls -a does not list .nox" 0 sh -c "ls -a '$W' | grep -cx .nox; true"
nt_check_out "find does not see .nox" 0 sh -c "find '$W' | grep -c '/\.nox'; true"
nt_check_out "ls .nox" $'exec\ninfo\nstatus\nstderr\nstdout\nsync' \
	sh -c "ls '$C' | LC_ALL=C sort"
nt_check_out "stat .nox is a directory" directory stat -c %F "$C"
nt_check_out ".nox/info id" "$ID" python3 "$NT_PY" json "$C/info" id
for k in podName expiresAt backend; do
	nt_check_not ".nox/info has $k" sh -c \
		"python3 '$NT_PY' json '$C/info' $k | grep -x '<missing>\|ERR.*'"
done
nt_check_out ".nox/info ends with a newline" 0a sh -c \
	"cat '$C/info' | tail -c 1 | od -An -tx1 | tr -d ' '"
nt_check ".nox/sync write succeeds" sh -c "echo x > '$C/sync'"
nt_check_out ".nox/sync reads empty" "" cat "$C/sync"
nt_check_errno "create in .nox → EPERM" EPERM creat "$C/newfile"
nt_check_errno "mkdir in .nox → EPERM" EPERM mkdir "$C/newdir"
nt_check_errno "unlink .nox/exec → EPERM" EPERM unlink "$C/exec"
nt_check_errno "rename in .nox → EPERM" EPERM rename "$C/stdout" "$C/x"
nt_check_errno "rename .nox/stdout out → EPERM" EPERM rename "$C/stdout" \
	"$W/stolen"
printf 'in\n' >"$W/intruder"
nt_check_errno "rename a file into .nox → EPERM" EPERM rename \
	"$W/intruder" "$C/intruder"
nt_check_errno "symlink in .nox → EPERM" EPERM symlink x "$C/l"
nt_check_errno "rmdir .nox → EPERM" EPERM rmdir "$C"
nt_check_errno "rename .nox → EPERM" EPERM rename "$C" "$W/nox2"
nt_check_errno_re "mkdir .nox → EEXIST or EPERM" "EEXIST|EPERM" mkdir "$C"
nt_check_errno_re "O_EXCL create of .nox fails" "EEXIST|EPERM|EISDIR" \
	excl "$C"
nt_check_not ".nox not in the backend workspace" test -e "$B/.nox"

# -- status, stdout, stderr -----------------------------------------------
nt_check "shell write of 'true'" nt_exec true
nt_check_content "status 0" "$C/status" $'0\n'
nt_check "non-zero exit is a successful write" nt_exec 'exit 3'
nt_check_content "status 3" "$C/status" $'3\n'
nt_check_out "fresh open of exec gives the last result" 3 \
	python3 "$NT_PY" json "$C/exec" exitCode
nt_check "echo out; echo err >&2" nt_exec 'echo out; echo err >&2; exit 1'
nt_check_content "stdout file" "$C/stdout" $'out\n'
nt_check_content "stderr file" "$C/stderr" $'err\n'
nt_check_content "status 1" "$C/status" $'1\n'
nt_check_exec "shell text with pipes and quotes" \
	"printf '%s\\n' \"a  b\" | tr a-z A-Z | cat" $'A  B\n'
nt_check_exec "command runs in /workspace" pwd $'/workspace\n'
nt_check "shell text without final newline runs at close" \
	sh -c "printf 'echo noeol' > '$C/exec'"
nt_check_content "noeol result" "$C/stdout" $'noeol\n'
nt_check_exec "100000 bytes of stdout" \
	'head -c 100000 /dev/zero | tr "\0" a' \
	"$(head -c 100000 /dev/zero | tr '\0' a)"
nt_check_out "exec sees a file just written" "" sh -c \
	"printf '%s\n' 'ls -A /workspace | grep -x intruder >/dev/null || \
echo missing' > '$C/exec' && cat '$C/stdout'"

# -- scripts: everything written on one open is one sh -------------------
# bash's printf writes a string of several lines one write(2) per line;
# a block of echos, a heredoc and cat of a script file are one script too
nt_check_exec_bash() { # WHAT BASH-CODE EXPECTED-STDOUT
	local got
	timeout -k 5 "$NT_T" bash -c "$2" bash "$C/exec"
	got=$(timeout -k 5 "$NT_T" cat "$C/stdout"; echo x)
	nt_check_eq "$1" "$3" "${got%x}" "stderr: $(head -c 300 "$C/stderr")"
}
nt_check_exec_bash "bash printf of two lines is one script" \
	'printf '\''X=5\necho "X is $X"\n'\'' > "$1"' $'X is 5\n'
nt_check_exec_bash "if ... fi over several lines" \
	'printf '\''if true\nthen\n  echo yes\nfi\n'\'' > "$1"' $'yes\n'
nt_check_exec_bash "a block of echos is one script" \
	'{ echo B=2; echo '\''echo "B is $B"'\''; } > "$1"' $'B is 2\n'
nt_check_exec_bash "a heredoc is one script" 'cat > "$1" <<'\''EOS'\''
Y=7
for i in 1 2; do
  echo "Y is $Y $i"
done
EOS' $'Y is 7 1\nY is 7 2\n'
nt_check_exec_bash "a script piped in slowly (cat writes twice) is one sh" \
	'{ echo V=start; sleep 0.3; echo '\''echo "V is $V"'\''; } | cat > "$1"' \
	$'V is start\n'
nt_check_out "lines written on one open, then read on it: one script" \
	"Z is 9" python3 -c '
import json, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.write(fd, b"Z=9\n")
os.write(fd, b"echo \"Z is $Z\"\n")
r = json.loads(os.pread(fd, 65536, 0))
os.close(fd)
print(r["stdout"].strip() if r.get("exitCode") == 0 else r)' "$C/exec"

# -- same-open transaction, JSON requests -------------------------------
res=$(python3 "$NT_PY" exec-rw "$C/exec" '{"cmd": ["sh", "-c", "echo rw; echo e >&2; exit 4"]}')
nt_check_out "same open: result JSON" \
	$'4\nrw\n\ne\n\nint' python3 -c '
import json, sys
r = json.loads(sys.argv[1])
print(r["exitCode"]); print(r["stdout"]); print(r["stderr"])
print(type(r["durationMs"]).__name__)' "$res"
raw_end=$(python3 "$NT_PY" exec-rw "$C/exec" '{"cmd":["true"]}' | tail -c 1 |
	od -An -tx1 | tr -d ' ')
nt_check_eq "result JSON + \\n" "0a" "$raw_end" "tail -c 1 of result"
nt_check_out "shell text on the same open" "0 'hi\n'" python3 -c '
import json, subprocess, sys
out = subprocess.run(["python3", sys.argv[1], "exec-rw", sys.argv[2],
                      "echo hi\n"], capture_output=True, timeout=60).stdout
r = json.loads(out)
print(r["exitCode"], repr(r["stdout"]))' "$NT_PY" "$C/exec"
nt_check_out "JSON argv passed exactly" \
	"a b|q\"uo'te|\$HOME|*|;rm -rf /|" python3 -c '
import json, subprocess, sys
req = json.dumps({"cmd": ["printf", "%s|", "a b", "q\"uo'"'"'te", "$HOME", "*",
                          ";rm -rf /"]})
out = subprocess.run(["python3", sys.argv[1], "exec-rw", sys.argv[2], req],
                     capture_output=True, timeout=60).stdout
print(json.loads(out)["stdout"])' "$NT_PY" "$C/exec"
nt_check_content "JSON argv stdout file" "$C/stdout" \
	"a b|q\"uo'te|\$HOME|*|;rm -rf /|"
nt_check_out "JSON env" OK python3 "$NT_PY" errno write "$C/exec" \
	'{"cmd":["sh","-c","printf %s \"$FOO\""],"env":{"FOO":"bar baz \"q\""}}'
nt_check_content "env passed" "$C/stdout" 'bar baz "q"'
mkdir -p "$W/sub/dir"
nt_check_out "JSON workdir" OK python3 "$NT_PY" errno write "$C/exec" \
	'{"cmd":["pwd"],"workdir":"/workspace/sub/dir"}'
nt_check_content "workdir used" "$C/stdout" $'/workspace/sub/dir\n'
nt_check_out "JSON request split over two writes" OK python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.write(fd, b"{\"cmd\": [\"echo\", ")
os.write(fd, b"\"split\"]}")
os.lseek(fd, 0, 0)
import json
r = json.loads(os.read(fd, 65536))
os.close(fd)
print("OK" if r["stdout"] == "split\n" else r)' "$C/exec"
nt_check_errno "workdir outside /workspace → EINVAL" EINVAL write \
	"$C/exec" '{"cmd":["pwd"],"workdir":"/etc"}'
nt_check_errno "workdir with .. → EINVAL" EINVAL write "$C/exec" \
	'{"cmd":["pwd"],"workdir":"/workspace/../etc"}'
t=$(python3 "$NT_PY" exec-time "$C/exec" '{"cmd":["cat"]}')
nt_check_eq "a command reading stdin gets EOF" "OK 0" \
	"$(echo "$t" | cut -d' ' -f1,3)" "exec-time: $t"
nt_check "... at once (${t#* })" python3 -c \
	'import sys; sys.exit(0 if float(sys.argv[1]) < 5 else 1)' \
	"$(echo "$t" | cut -d' ' -f2)"
t=$(python3 "$NT_PY" exec-time "$C/exec" 'sleep 20 & echo started
')
nt_check_eq "a background child does not hold the result" "OK 0" \
	"$(echo "$t" | cut -d' ' -f1,3)" "exec-time: $t"
nt_check "... returned within 5 s (${t#* })" python3 -c \
	'import sys; sys.exit(0 if float(sys.argv[1]) < 5 else 1)' \
	"$(echo "$t" | cut -d' ' -f2)"
nt_check_out "missing program → exitCode 127, write ok" "OK 127" sh -c \
	"python3 '$NT_PY' exec-time '$C/exec' '{\"cmd\":[\"/no/such/prog\"]}' |
	 cut -d' ' -f1,3"

# -- timeouts ------------------------------------------------------------
t=$(python3 "$NT_PY" exec-time "$C/exec" '{"cmd":["sleep","10"],"timeoutSeconds":1}')
nt_check_eq "timeoutSeconds 1, sleep 10 → write ok, exitCode 124" "OK 124" \
	"$(echo "$t" | cut -d' ' -f1,3)" "exec-time: $t"
secs=$(echo "$t" | cut -d' ' -f2)
nt_check "timed-out write returned within 6 s ($secs s)" \
	python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 6 else 1)' \
	"${secs:-99}"
nt_check_content "status 124" "$C/status" $'124\n'

# -- malformed requests --------------------------------------------------
warn0=$(grep -ac 'noxfs: warning:' "$NT_LOG")
nt_check_errno '{"cmd": 5} → EINVAL' EINVAL write "$C/exec" '{"cmd": 5}'
warn1=$(grep -ac 'noxfs: warning:' "$NT_LOG")
nt_check "a warning line says why" test "$warn1" -gt "$warn0"
nt_check_errno '{"cmd": []} → EINVAL' EINVAL write "$C/exec" '{"cmd": []}'
nt_check_errno '{"nocmd": 1} → EINVAL' EINVAL write "$C/exec" '{"nocmd": 1}'
nt_check_errno 'JSON syntax error → EINVAL' EINVAL write "$C/exec" \
	'{"cmd": ]}'
nt_check_errno '{"cmd": ["true"], "env": 3} → EINVAL' EINVAL write \
	"$C/exec" '{"cmd": ["true"], "env": 3}'
nt_check_errno 'JSON still incomplete at close → EINVAL (close)' EINVAL \
	write "$C/exec" '{"cmd": ["echo", "never"'
{ printf '{"cmd": ["echo", "'; head -c 1100000 /dev/zero | tr '\0' x
	printf '"]}'; } >"$NT_TMP/huge.json"
nt_check_errno_re 'request over 1 MiB fails with an errno' 'E[A-Z0-9]+' \
	writefile "$C/exec" "$NT_TMP/huge.json"
nt_check_out "shell sees the write fail" 1 sh -c \
	"printf '{\"cmd\": 5}' > '$C/exec' 2>/dev/null; echo \$?"
nt_check_content "a failed request's reason is the status" "$C/status" \
	"error: exec request: 'cmd' must be an array of strings"$'\n'
nt_check_content "... and stderr" "$C/stderr" \
	"exec request: 'cmd' must be an array of strings"$'\n'

# -- a failed request replaces the last result, says why ------------------
nt_check_exec "a command with output" 'echo before' $'before\n'
timeout -k 5 "$NT_T" bash -c 'printf '\''{"cmd": ['\'' > "$1"' bash "$C/exec"
nt_check_content "incomplete JSON at close: status says truncated JSON" \
	"$C/status" $'error: truncated JSON\n'
nt_check_content "... stderr says it" "$C/stderr" $'truncated JSON\n'
nt_check_content "... the earlier output is gone" "$C/stdout" ""
nt_check_out "... the JSON result has error and errno" \
	$'truncated JSON\nEINVAL' sh -c "python3 '$NT_PY' json '$C/exec' error &&
python3 '$NT_PY' json '$C/exec' errno"
nt_check_errno "JSON workdir missing → ENOTDIR" ENOTDIR write "$C/exec" \
	'{"cmd":["pwd"],"workdir":"/workspace/no-such-dir"}'
nt_check "... status says error" grep -q '^error: .*no-such-dir' "$C/status"
nt_check_content "... no stdout" "$C/stdout" ""
printf 'f\n' >"$W/plainfile"
nt_check_errno "JSON workdir a file → ENOTDIR" ENOTDIR write "$C/exec" \
	'{"cmd":["pwd"],"workdir":"/workspace/plainfile"}'
nt_check_out "... the JSON result's errno" ENOTDIR \
	python3 "$NT_PY" json "$C/exec" errno
nt_check_exec "exec still works after bad requests" 'echo fine' $'fine\n'

# -- output ------------------------------------------------------------
nt_check "raw bytes on stdout" nt_exec "printf '\\377\\376\\000x\\n'"
if [ "$NT_BACKEND" != noxd-v1 ]; then
	# local keeps bytes; noxd sends them in nox.bytes' "stdoutBase64"
	printf '\377\376\000x\n' >"$NT_TMP/raw.exp"
	nt_check_file ".nox/stdout holds the raw bytes" "$C/stdout" "$NT_TMP/raw.exp"
	nt_check_content "... stderr untouched" "$C/stderr" ""
	nt_check_out "... not flagged lossy in .nox/exec" "<missing>" \
		python3 "$NT_PY" json "$C/exec" lossy
else
	# plain v1 carries stdout in a JSON string: each invalid UTF-8 byte
	# arrives as U+FFFD (docs/protocol.md), the NUL and the rest exactly
	printf '\357\277\275\357\277\275\000x\n' >"$NT_TMP/raw.exp"
	nt_check_file ".nox/stdout: invalid UTF-8 as U+FFFD, the rest exact" \
		"$C/stdout" "$NT_TMP/raw.exp"
	# ... and the client, seeing U+FFFD from a server without nox.bytes,
	# flags the loss in .nox/exec and in .nox/stderr's last line
	nt_check_out "... flagged lossy in .nox/exec" \
		'{"stdout": true, "stderr": false}' \
		python3 "$NT_PY" json "$C/exec" lossy
	nt_check_content "... and named in .nox/stderr's last line" \
		"$C/stderr" "nox: lossy: stdout may hold U+FFFD for bytes that \
were not UTF-8 (the server lacks nox.bytes)"$'\n'
fi
# The local backend keeps 64 MiB per stream; noxd serves v1's 1 MiB.  A
# cut stream is flagged in the result JSON ("truncated", an extension
# noxd --v1-only does not send) and named in stderr's last line.
nt_check "4 MB of base64 on stdout" nt_exec \
	'head -c 3000000 /dev/urandom | base64 -w0 > r.b64; cat r.b64;
	 echo done >&2'
nt_check_content "status 0 after a big output" "$C/status" $'0\n'
nt_check_out "r.b64 is 4,000,000 bytes" 4000000 stat -c %s "$B/r.b64"
cut_note='nox: truncated: stdout kept 1048576 of 4000000 bytes (output cap 1048576)'
if [ "$NT_BACKEND" = local ]; then
	nt_check_out "... arrives whole through .nox/stdout (sha256)" \
		"$(sha256sum <"$B/r.b64")" sh -c "timeout 60 cat '$C/stdout' | sha256sum"
	nt_check_out "... not flagged in .nox/exec" "<missing>" \
		python3 "$NT_PY" json "$C/exec" truncated
	nt_check_content "... stderr untouched" "$C/stderr" $'done\n'
else
	nt_check_out "... cut at noxd's 1 MiB: the first 1 MiB (sha256)" \
		"$(head -c 1048576 "$B/r.b64" | sha256sum)" \
		sh -c "timeout 60 cat '$C/stdout' | sha256sum"
	if [ "$NT_BACKEND" = noxd ]; then
		nt_check_out "... flagged in .nox/exec" \
			'{"stdout": true, "stderr": false}' \
			python3 "$NT_PY" json "$C/exec" truncated
	else
		nt_check_out "... not flagged by a v1-only server" "<missing>" \
			python3 "$NT_PY" json "$C/exec" truncated
	fi
	nt_check_content "... and named in .nox/stderr's last line" \
		"$C/stderr" "done"$'\n'"$cut_note"$'\n'
fi
rm -f "$B/r.b64"

# -- umask -----------------------------------------------------------------
# noxfs runs with umask 0 (the kernel applies the caller's); a command
# gets 022 unless -o exec_umask= says otherwise
nt_check_exec "touch f; mkdir d in a command: 0644 and 0755" \
	'touch um_f; mkdir um_d; stat -c %a um_f um_d; umask' $'644\n755\n0022\n'
nt_check_out "... as the mount shows them" $'644\n755' stat -c %a \
	"$W/um_f" "$W/um_d"
rm -rf "$W/um_f" "$W/um_d"
nt_check "command writes a 20 MiB file" nt_exec \
	'head -c 20971520 /dev/urandom > gen.bin && sha256sum < gen.bin'
nt_check_out "sha256 of the file through the mount" \
	"$(timeout 60 cat "$C/stdout")" sh -c "sha256sum < '$W/gen.bin'"
rm -f "$W/gen.bin"

# -- parallel transactions -------------------------------------------------
nt_check_out "4 parallel execs on 4 opens get their own results" OK \
	python3 "$NT_PY" exec-par "$C/exec" 4

# -- the exec barrier --------------------------------------------------
bad=""
for i in $(seq 1 20); do
	printf 'barrier %d %s\n' "$i" "$RANDOM" >"$W/bar.txt"
	timeout 60 sh -c "echo 'cat bar.txt' > '$C/exec'" || bad+=" w$i"
	cmp -s "$W/bar.txt" "$C/stdout" || bad+=" $i"
done
nt_check_eq "write file, exec cat at once (20 times)" "" "$bad" \
	"printf > f; echo 'cat f' > .nox/exec; cmp f .nox/stdout"
head -c 3000000 /dev/urandom >"$NT_TMP/big.bin"
cp "$NT_TMP/big.bin" "$W/big.bin"
nt_check_exec "3 MB file just copied in: sha256 in the sandbox" \
	'sha256sum big.bin' "$(cd "$NT_TMP" && sha256sum big.bin)"$'\n'
nt_check_out "file still open for writing is seen by the command" OK \
	python3 "$NT_PY" barrier-open "$W/openbar.txt" "$C/exec"
mkdir -p "$W/bd/x"
printf 'nested\n' >"$W/bd/x/n.txt"
mv "$W/bd/x" "$W/bd/y"
nt_check_exec "rename just done is seen by the command" \
	'cat bd/y/n.txt; test -e bd/x && echo stale' $'nested\n'

# -- invalidation after a command ------------------------------------------
printf 'old-content\n' >"$W/a.txt"
printf 'short\n' >"$W/grow.txt"
printf 'gone\n' >"$W/b.txt"
printf 'm\n' >"$W/mv1"
mkdir -p "$W/olddir" "$W/deep/er"
printf 'deep-old\n' >"$W/deep/er/d.txt"
# Cache everything: contents, attrs, listings, and a negative lookup.
cat "$W/a.txt" "$W/grow.txt" "$W/b.txt" "$W/deep/er/d.txt" >/dev/null
stat "$W/a.txt" "$W/grow.txt" "$W/olddir" "$W/mv1" >/dev/null
ls -la "$W" "$W/deep/er" >/dev/null
stat "$W/created.txt" >/dev/null 2>&1
nt_check "command changes files and dirs" nt_exec \
	'printf "new-content\n" > a.txt && printf "much longer now\n" > grow.txt &&
	 rm b.txt && rmdir olddir && mkdir newdir && echo c > created.txt &&
	 mv mv1 mv2 && chmod 700 a.txt && printf "deep-new\n" > deep/er/d.txt &&
	 touch -d "2001-01-01 UTC" grow.txt'
nt_check_content "cat shows new content (same size)" "$W/a.txt" \
	$'new-content\n'
nt_check_out "stat -c %s of a grown file" 16 stat -c %s "$W/grow.txt"
nt_check_content "cat of grown file" "$W/grow.txt" $'much longer now\n'
nt_check_out "mtime changed by the command" 978307200 stat -c %Y \
	"$W/grow.txt"
nt_check_out "mode changed by the command" 700 stat -c %a "$W/a.txt"
nt_check_errno "deleted file → ENOENT" ENOENT open "$W/b.txt"
nt_check_not "removed dir gone (stat)" stat "$W/olddir"
nt_check "new dir there (stat)" test -d "$W/newdir"
nt_check "created file there (after a cached miss)" test -f \
	"$W/created.txt"
nt_check_content "created file content" "$W/created.txt" $'c\n'
nt_check_out "ls shows the changes" "created.txt mv2 newdir" sh -c \
	"ls '$W' | grep -xE 'b.txt|olddir|newdir|created.txt|mv1|mv2' |
	 LC_ALL=C sort | tr '\n' ' ' | sed 's/ \$//'"
nt_check_content "nested file changed" "$W/deep/er/d.txt" $'deep-new\n'
printf 'AAAA\n' >"$W/c.txt"
nt_check_out "fd kept open across an exec reads the new data" BBBB \
	python3 "$NT_PY" reread "$W/c.txt" "$C/exec" \
	'{"cmd":["sh","-c","printf \"BBBB\\n\" > c.txt"]}'

# -- what the exec barrier may skip ---------------------------------------
# The local backend invalidates after a command only the nodes whose
# fstat differs from what was served, plus those served within 2 s of
# the command's start, and writes back before it only files with a write
# handle; these cases fail if either filter misses something.  Fixtures
# are made first and served after a 2.5 s pause, so the checks on them
# rely on the fstat comparison, not on the 2 s rule; (a) serves and
# changes within the same second.
printf 'abcdef\n' >"$W/old-sed.txt"
printf 'abcdef\n' >"$W/old-inplace.txt"
mkdir -p "$W/lst"
for i in $(seq 1 20); do printf '%d\n' "$i" >"$W/lst/f$i"; done
# (d) ~2,000 files in a tree, made behind the mount
for d in $(seq -w 1 40); do
	mkdir -p "$B/big/d$d/sub"
	for i in $(seq -w 1 50); do printf 'v%s-%s\n' "$d" "$i" \
		>"$B/big/d$d/sub/f$i"; done
done
sleep 2.5
# same_second FILE CMD WANT NAME: 5 times, FILE written, stat'ed and read
# through the mount, then changed by command CMD in the same second; the
# mount must show WANT right after the exec
same_second() {
	local bad="" got i
	for i in 1 2 3 4 5; do
		printf 'abcdef\n' >"$W/$1"
		stat "$W/$1" >/dev/null
		cat "$W/$1" >/dev/null
		nt_exec "$2" || bad+=" w$i"
		got=$(cat "$W/$1")
		[ "$got" = "$3" ] || bad+=" $i:$got"
	done
	nt_check_eq "$4" "" "$bad" \
		"printf abcdef > $1; stat; cat; exec '$2'; cat"
}
# (a) served, then changed by a command in the same second, same size
same_second ss.txt 'sed -i s/c/X/ ss.txt' abXdef \
	"(a) stat, then sed -i of one byte in the same second: new content (5 times)"
same_second ip.txt 'printf Z 1<>ip.txt' Zbcdef \
	"(a) ... and an in-place one-byte overwrite (same inode, 5 times)"
# served 2.5 s after their last change: only the fstat comparison sees it
stat "$W/old-sed.txt" "$W/old-inplace.txt" >/dev/null
cat "$W/old-sed.txt" "$W/old-inplace.txt" >/dev/null
nt_check "(a) commands rewrite files served long after their last change" \
	nt_exec 'sed -i s/c/X/ old-sed.txt && printf Z 1<>old-inplace.txt'
nt_check_content "(a) sed -i result shown" "$W/old-sed.txt" $'abXdef\n'
nt_check_content "(a) in-place result shown" "$W/old-inplace.txt" $'Zbcdef\n'
nt_check_out "(a) size unchanged and right" $'7\n7' \
	stat -c %s "$W/old-sed.txt" "$W/old-inplace.txt"
# (b) a listed directory (listed twice: the second listing may be kept
# by the kernel) changed by renames, deletes and creates.  Names are
# checked one by one first: a listing would refresh the dentries itself.
ls -la "$W/lst" >/dev/null
ls -la "$W/lst" >/dev/null
stat "$W/lst/f1" "$W/lst/f4" "$W/lst/f15" "$W/lst/f7" "$W/lst/f8" >/dev/null
cat "$W/lst/f15" >/dev/null
nt_check "(b) command renames, deletes and creates in a listed dir" nt_exec \
	'cd lst && mv f1 g1 && rm f2 f3 && echo new > n1 && mv f4 f15 &&
	 mkdir sub && mv f6 sub/f6 && ln f7 h7 && chmod 600 f8'
nt_check_errno "(b) deleted name → ENOENT" ENOENT open "$W/lst/f2"
nt_check_errno "(b) old name of a renamed file → ENOENT" ENOENT open \
	"$W/lst/f1"
nt_check_content "(b) renamed-over name has the moved file" "$W/lst/f15" \
	$'4\n'
nt_check_out "(b) ... and its size and link count" "2 1" \
	stat -c '%s %h' "$W/lst/f15"
# over http a link made by a command reaches the cache as a second file
# (the tree comes by listing and tar): link counts are checked on local
lfmt=""
if [ "$NT_BACKEND" = local ]; then
	lfmt="%h "
	nt_check_out "(b) link count of a file given a second name" 2 \
		stat -c %h "$W/lst/f7"
fi
nt_check_out "(b) mode changed by the command" 600 stat -c %a "$W/lst/f8"
nt_check_content "(b) renamed file under its new name" "$W/lst/g1" $'1\n'
nt_check_content "(b) file moved into a new subdir" "$W/lst/sub/f6" $'6\n'
nt_check_content "(b) created file" "$W/lst/n1" $'new\n'
nt_check_out "(b) listing after the exec matches the sandbox" \
	"$(cd "$B/lst" && ls -a | LC_ALL=C sort | tr '\n' ' ')" \
	sh -c "cd '$W/lst' && ls -a | LC_ALL=C sort | tr '\n' ' '"
nt_check_out "(b) names, sizes, links and modes after the exec match" \
	"$(cd "$B/lst" && stat -c "%n %s $lfmt%a %F" * | LC_ALL=C sort)" \
	sh -c "cd '$W/lst' && stat -c '%n %s $lfmt%a %F' * | LC_ALL=C sort"
# (c) a shared writable mapping written through the mount, neither
# msync'ed nor unmapped: the exec must see its bytes (pre-exec write-back
# of files with a write handle; here only the mapping holds the handle)
head -c 8192 /dev/zero | tr '\0' . >"$W/mm.bin"
nt_check_out "(c) mmap written, no msync/munmap: exec cat sees the bytes" \
	"MMAP-ONE MMAP-TWO" python3 -c '
import json, mmap, os, sys
path, ctl = sys.argv[1], sys.argv[2]
def run():
    c = os.open(ctl, os.O_RDWR)
    try:
        os.write(c, b"{\"cmd\":[\"head\",\"-c\",\"8\",\"mm.bin\"]}")
        return json.loads(os.pread(c, 1 << 20, 0))["stdout"]
    finally:
        os.close(c)
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
os.close(fd)  # the mapping alone keeps the FUSE handle open
m[0:8] = b"MMAP-ONE"
one = run()
m[0:8] = b"MMAP-TWO"  # still mapped: the next barrier must write it too
two = run()
m.close()
print(one, two)' "$W/mm.bin" "$C/exec"
nt_check_out "(c) mapping with its fd still open, after an earlier barrier" \
	"MMAP-3RD" python3 -c '
import json, mmap, os, sys
path, ctl = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
c = os.open(ctl, os.O_RDWR)
os.write(c, b"{\"cmd\":[\"true\"]}")
os.close(c)
m[0:8] = b"MMAP-3RD"
c = os.open(ctl, os.O_RDWR)
os.write(c, b"{\"cmd\":[\"head\",\"-c\",\"8\",\"mm.bin\"]}")
print(json.loads(os.pread(c, 1 << 20, 0))["stdout"])
os.close(c)
m.close()
os.close(fd)' "$W/mm.bin" "$C/exec"
# (d) every node of a ~2,000-file tree cached, 50 commands that change
# nothing, then one deep change
n=$(timeout -k 5 "$NT_T" ls -laR "$W/big" | wc -l)
nt_check "(d) ls -laR of the 2,000-file tree ($n lines)" test "$n" -gt 2000
cat "$W/big/d37/sub/f42" >/dev/null
t0=$(date +%s.%N)
bad=""
for i in $(seq 1 50); do nt_exec true || bad+=" $i"; done
t1=$(date +%s.%N)
nt_check_eq "(d) 50 execs of true" "" "$bad" "echo true > .nox/exec"
nt_log "50 execs with the tree cached: $(python3 -c \
	'import sys; print("%.3f s" % (float(sys.argv[2]) - float(sys.argv[1])))' \
	"$t0" "$t1")"
nt_check "(d) a command changes files deep in the tree" nt_exec \
	'cd big/d37/sub && sed -i s/v37/V37/ f42 && printf more >> f40 &&
	 chmod 600 f41 && echo n > added'
nt_check_content "(d) the deep change is visible (sed -i)" \
	"$W/big/d37/sub/f42" $'V37-42\n'
nt_check_out "(d) size of an appended file" 11 stat -c %s "$W/big/d37/sub/f40"
nt_check_out "(d) mode of a chmod'ed file" 600 stat -c %a "$W/big/d37/sub/f41"
nt_check_content "(d) an untouched neighbour still right" \
	"$W/big/d37/sub/f39" $'v37-39\n'
nt_check_out "(d) the deep listing shows the new file" "51" sh -c \
	"ls '$W/big/d37/sub' | wc -l"
rm -rf "$B/big"

# -- .nox stays out of the workspace --------------------------------------
nt_check_exec "ls -A /workspace in the sandbox has no .nox" \
	'ls -A /workspace | grep -c "^\.nox$"; true' $'0\n'
nt_check_exec "tar c of /workspace in the sandbox has no .nox" \
	'tar c -C /workspace . | tar t | grep -c "\.nox"; true' $'0\n'
nt_check_not ".nox still not in the backend workspace" test -e "$B/.nox"
printf 'real file\n' >"$B/.nox"
nt_check_out "a workspace file named .nox is hidden by the control dir" \
	directory stat -c %F "$C"
nt_check_out ".nox/info still served" "$ID" python3 "$NT_PY" json "$C/info" id
rm -f "$B/.nox"

# -- a signal interrupts the command (issue 16 item 2) --------------------
# The writer waits in the kernel; a signal sends FUSE_INTERRUPT, noxfs
# stops the command (locally: its bwrap, pid namespace and cgroup; over
# noxd: the request is dropped and noxd, offering nox.cancel, kills the
# command when the connection closes) and the write fails with EINTR.
# The command is two sleeps (one in the background) named by a seed, so
# /proc shows whether any of its tree is left.  Tried: a handled signal
# during a JSON write (EINTR; writing the same bytes again on the open
# gives ECANCELED and runs nothing), SIGKILL of the writer (it must end:
# a killed writer stays in D state until the reply), and SIGINT to a
# shell's `echo 'sleep ..' > exec` (the close is what is interrupted).
# --v1-only: a plain v1 server has no way to stop a command, so the write
# returns EINTR just as fast and the command runs on to its end (here
# 6 s): checked, and waited for.
intr_secs=60
[ "$NT_BACKEND" = noxd-v1 ] && intr_secs=6
intr_check() { # MODE WANT_RESULT WANT_RETRY
	local t res retry tret tgone
	t=$(python3 "$NT_PY" exec-intr "$C/exec" "$1" "$$$RANDOM" "$intr_secs")
	read -r res retry tret tgone <<<"$t"
	nt_check_eq "interrupt ($1): the writer ends with $2" "$2 $3" \
		"$res $retry" "exec-intr: $t"
	nt_check "interrupt ($1): the writer ended within 2 s ($tret s)" \
		python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 2 else 1)' \
		"${tret:-99}"
	if [ "$NT_BACKEND" = noxd-v1 ]; then
		nt_check "interrupt ($1), --v1-only: the command ran on to its end and is gone ($tgone s)" \
			python3 -c 'import sys; sys.exit(0 if 4 < float(sys.argv[1]) < 20 else 1)' \
			"${tgone:-99}"
	else
		nt_check "interrupt ($1): no process of the command left within 1 s of the writer's end ($tgone s)" \
			python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) - float(sys.argv[2]) < 1 else 1)' \
			"${tgone:-99}" "${tret:-0}"
	fi
}
intr_check json EINTR ECANCELED
nt_check "interrupted: status is 'error: ...interrupted...'" grep -q \
	'^error: .*interrupted' "$C/status"
intr_check kill SIG9 -
intr_check shell SIG2 -
nt_check_exec "after the interrupts a command runs as before" 'echo again' \
	$'again\n'

# -- sandboxes are separate -------------------------------------------
if [ "$NT_SESSION" != 1 ]; then
	mkdir "$NT_MNT/exec2"
	nt_check_out "a fresh sandbox's .nox/exec reads empty" "" \
		cat "$NT_MNT/exec2/.nox/exec"
	nt_check "exec in a second sandbox" sh -c \
		"echo 'exit 5' > '$NT_MNT/exec2/.nox/exec'"
	nt_check_content "second sandbox status" "$NT_MNT/exec2/.nox/status" \
		$'5\n'
	nt_check_exec "first sandbox unaffected" 'echo one' $'one\n'
	nt_check_content "second sandbox still 5" "$NT_MNT/exec2/.nox/status" \
		$'5\n'
	nt_check_out "second sandbox info id" exec2 python3 "$NT_PY" json \
		"$NT_MNT/exec2/.nox/info" id
fi

if [ "$NT_SESSION" != 1 ]; then
	mkdir "$NT_MNT/gone1"
	rm -rf "$NT_BASE/noxrunner_sandbox_gone1"
	nt_check_errno "exec in a sandbox deleted behind the mount → ENOENT" \
		ENOENT write "$NT_MNT/gone1/.nox/exec" $'echo hi\n'
fi
nt_unmount

# -- exec_timeout, exec_output_max and exec_umask options ---------------
# (the last two are the local backend's; over http the server decides)
xo="exec_timeout=2,exec_output_max=1M,exec_umask=077"
if [ "$NT_SESSION" = 1 ]; then
	nt_mount "session=$ID,$xo"
	W=$NT_MNT
else
	nt_mount "$xo"
	W="$NT_MNT/$ID"
fi
C="$W/.nox"
nt_check "3 MiB on stdout, 2 MiB on stderr" nt_exec \
	'head -c 3145728 /dev/zero | tr "\0" o; head -c 2097152 /dev/zero >&2'
nt_check_out "stdout cut at 1 MiB" 1048576 sh -c "timeout 60 cat '$C/stdout' | wc -c"
if [ "$NT_BACKEND" = noxd-v1 ]; then
	nt_check_out "not flagged by a v1-only server" "<missing>" \
		python3 "$NT_PY" json "$C/exec" truncated
else
	nt_check_out "flagged in .nox/exec" '{"stdout": true, "stderr": true}' \
		python3 "$NT_PY" json "$C/exec" truncated
fi
both_note='nox: truncated: stdout kept 1048576 of 3145728 bytes, stderr kept 1048576 of 2097152 bytes (output cap 1048576)'
nt_check_out ".nox/stderr's last line names both" "$both_note" sh -c \
	"timeout 60 tail -n 1 '$C/stderr'"
nt_check_out "... after 1 MiB of stderr and a newline" 1048577 sh -c \
	"timeout 60 head -n 1 '$C/stderr' | wc -c"
nt_check_content "status 0 after cut output" "$C/status" $'0\n'
if [ "$NT_BACKEND" = local ]; then
	umw=$'600\n700\n0077\n'
else
	umw=$'644\n755\n0022\n'
fi
nt_check_exec "-o exec_umask=077 (local; over http noxd's 022)" \
	'touch um_f; mkdir um_d; stat -c %a um_f um_d; umask' "$umw"
rm -rf "$W/um_f" "$W/um_d"
t=$(python3 "$NT_PY" exec-time "$C/exec" 'sleep 20
')
nt_check_eq "-o exec_timeout=2: shell text times out → exitCode 124" \
	"OK 124" "$(echo "$t" | cut -d' ' -f1,3)" "exec-time: $t"
secs=$(echo "$t" | cut -d' ' -f2)
nt_check "exec_timeout write returned within 8 s ($secs s)" \
	python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 8 else 1)' \
	"${secs:-99}"
nt_check_out "fresh mount: files kept" "new-content" cat "$W/a.txt"

nt_finish
