#!/usr/bin/env bash
# noxctl against the local backend: every command's happy path, exit
# status passthrough, stdout/stderr separation (binary bytes too), JSON
# output, the shell loop over a pipe (cd tracking, failing cd), an
# upload/download round trip with modes, symlinks and awkward names
# (spaces, leading dash), and errors after delete.
# Hostile inputs tried: FILE arguments with "..", absolute FILEs, a cd to
# a missing directory, a name starting with "-".
. "$(dirname "$0")/lib.sh"
need_bwrap

B=$T/base
X=("$NOXCTL" --local="$B")

check "health" 0 "${X[@]}" health
expect "health prints OK" [ "$out" = OK ]

check "create" 0 "${X[@]}" create demo --ttl 600
expect "create prints podName" contains "$out" "podName: "
expect "create prints expiresAt" contains "$out" "expiresAt: "
expect "create made the local sandbox" [ -d "$B/noxrunner_sandbox_demo/workspace" ]
check "create is idempotent" 0 "${X[@]}" create demo
check "create --json" 0 "${X[@]}" --json create demo
expect "create --json parses" json_ok "$T/out"
check "create --wait" 0 "${X[@]}" --timeout 20 create waited --wait

check "info" 0 "${X[@]}" info demo
expect "info shows ttl" contains "$out" "ttl: "
check "info --json" 0 "${X[@]}" info demo --json
expect "info --json has podName" [ "$(json_get "$T/out" 'j["podName"] != ""')" = True ]
expect "info --json id" [ "$(json_get "$T/out" 'j["id"]')" = demo ]

check "touch" 0 "${X[@]}" touch demo

check "ls" 0 "${X[@]}" ls
expect "ls header" contains "$(head -1 "$T/out")" "ID"
expect "ls lists demo" grep -q '^demo ' "$T/out"
check "ls -q" 0 "${X[@]}" -q ls
expect "ls -q gives bare ids" [ "$out" = "demo
waited" ]
check "ls --json" 0 "${X[@]}" --json ls
expect "ls --json is an array with demo" \
	[ "$(json_get "$T/out" 'sorted(x["id"] for x in j)')" = "['demo', 'waited']" ]

# ---- exec -----------------------------------------------------------------
check_ctrl_c demo "${X[@]}"
check "exec exit status passes through" 7 "${X[@]}" exec demo -- sh -c 'exit 7'
check "exec true" 0 "${X[@]}" exec demo -- true
check "exec stdout/stderr" 3 "${X[@]}" exec demo -- sh -c 'echo out; echo err >&2; exit 3'
expect "stdout only has stdout" [ "$out" = out ]
expect "stderr only has stderr" [ "$err" = err ]
"${X[@]}" exec demo -- printf 'a\000b\377\n' >"$T/bin" 2>/dev/null
expect "binary stdout is byte-exact" [ "$(od -An -tx1 "$T/bin" | tr -d ' \n')" = "610062ff0a" ]
check "exec --json" 0 "${X[@]}" exec demo --json -- sh -c 'echo hi; exit 5'
expect "exec --json parses" json_ok "$T/out"
expect "exec --json exitCode" [ "$(json_get "$T/out" 'j["exitCode"]')" = 5 ]
expect "exec --json stdout" [ "$(json_get "$T/out" 'repr(j["stdout"])')" = "'hi\\n'" ]
check "exec --env" 0 "${X[@]}" exec demo --env FOO=bar --env 'A=b c' -- sh -c 'echo "$FOO/$A"'
expect "env reached the command" [ "$out" = "bar/b c" ]
"${X[@]}" exec demo -- mkdir -p sub/deeper
check "exec --workdir" 0 "${X[@]}" exec demo --workdir /workspace/sub -- pwd
expect "workdir used" [ "$out" = /workspace/sub ]
check "exec --timeout" 124 "${X[@]}" exec demo --timeout 1 -- sleep 10
check "exec missing program" 127 "${X[@]}" exec demo -- no-such-program-nox
check "exec argv is not a shell string" 0 "${X[@]}" exec demo -- echo '$(id)' ';' '*'
expect "argv kept verbatim" [ "$out" = '$(id) ; *' ]

# ---- sh -------------------------------------------------------------------
check "sh" 4 "${X[@]}" sh demo 'echo one two; exit 4'
expect "sh output" [ "$out" = "one two" ]
check "sh --workdir" 0 "${X[@]}" sh demo --workdir sub 'pwd'
expect "sh relative workdir" [ "$out" = /workspace/sub ]

# ---- shell ----------------------------------------------------------------
printf 'cd sub\npwd\n' | "${X[@]}" shell demo >"$T/out" 2>"$T/err"
rc=$?
expect "shell over a pipe: cd then pwd" [ "$(cat "$T/out")" = /workspace/sub ]
expect "shell: no prompt without a tty" [ ! -s "$T/err" ]
expect "shell exit status 0" [ $rc -eq 0 ]
printf 'cd sub\ncd deeper\npwd\ncd nope-missing\npwd\ncd ..\npwd\ncd -\ncd\npwd\ncd /workspace/sub\npwd\nfalse\n' |
	"${X[@]}" shell demo >"$T/out" 2>"$T/err"
rc=$?
expect "shell: cd tracking, failing cd keeps dir, cd - and bare cd" \
	[ "$(cat "$T/out")" = "/workspace/sub/deeper
/workspace/sub/deeper
/workspace/sub
/workspace/sub/deeper
/workspace
/workspace/sub" ]
expect "shell: failing cd reports an error" grep -q 'nope-missing' "$T/err"
expect "shell: status of the last command" [ $rc -eq 1 ]
printf 'echo a\nexit 6\necho never\n' | "${X[@]}" shell demo >"$T/out" 2>"$T/err"
rc=$?
expect "shell: exit N" [ $rc -eq 6 ]
expect "shell: nothing runs after exit" [ "$(cat "$T/out")" = a ]
printf 'cd "sub"\n  pwd  \n\n' | "${X[@]}" shell demo >"$T/out" 2>&1
expect "shell: quoted cd target, blank lines" [ "$(cat "$T/out")" = /workspace/sub ]
printf 'cd $(touch /workspace/pwned)\n' | "${X[@]}" shell demo >/dev/null 2>&1
expect "shell: cd target is never run as shell" [ ! -e "$B/noxrunner_sandbox_demo/workspace/pwned" ]

# ---- upload / download ---------------------------------------------------
S=$T/src
mkdir -p "$S/tree/empty" "$S/tree/sub dir"
printf 'hello\n' >"$S/tree/a.txt"
printf '#!/bin/sh\necho run\n' >"$S/tree/run.sh"
head -c 300000 /dev/urandom >"$S/tree/sub dir/blob.bin"
printf 'dash\n' >"$S/tree/-dash"
printf 'secret\n' >"$S/tree/private"
ln -s a.txt "$S/tree/link"
chmod 0755 "$S/tree/run.sh"
chmod 0600 "$S/tree/private"
chmod 0750 "$S/tree/sub dir"
check "upload a tree" 0 "${X[@]}" upload demo tree --dir "$S" --dest /workspace/up
check "uploaded file runs with its mode" 0 "${X[@]}" exec demo -- /workspace/up/tree/run.sh
expect "uploaded script output" [ "$out" = run ]
check "download --extract" 0 "${X[@]}" download demo --src /workspace/up/tree --extract "$T/dst/tree"
expect "round trip: same contents (diff -r)" diff -r "$S/tree" "$T/dst/tree"
modes() { (cd "$1" && find . -printf '%y %m %p\n' | sort); }
expect "round trip: same modes and types" [ "$(modes "$S/tree")" = "$(modes "$T/dst/tree")" ]
expect "round trip: symlink kept" [ "$(readlink "$T/dst/tree/link")" = a.txt ]

check "upload '.' with default dest" 0 "${X[@]}" upload demo . --dir "$S/tree/sub dir"
check "uploaded into /workspace" 0 "${X[@]}" exec demo -- test -f /workspace/blob.bin
(cd "$S/tree" && "${X[@]}" upload demo a.txt ./run.sh --dest /workspace/cwd >/dev/null 2>&1)
check "upload relative to cwd" 0 "${X[@]}" exec demo -- cat /workspace/cwd/a.txt /workspace/cwd/run.sh

check "download -o FILE" 0 "${X[@]}" download demo --src /workspace/up -o "$T/up.tgz"
expect "download -o gives a gzip tar" quiet tar tzf "$T/up.tgz" tree/a.txt
expect "no temp file left next to -o" [ -z "$(ls "$T" | grep noxctl-)" ]
"${X[@]}" download demo --src /workspace/up/tree/a.txt -o - >"$T/one.tgz"
expect "download -o - of one file" [ "$(tar xzOf "$T/one.tgz" a.txt)" = hello ]
check "download of a missing path fails" 70 "${X[@]}" download demo --src /workspace/none -o "$T/none.tgz"
expect "failed download leaves no file" [ ! -e "$T/none.tgz" ]

check "upload FILE with .. is a usage error" 64 "${X[@]}" upload demo ../x --dir "$S"
check "upload absolute FILE is a usage error" 64 "${X[@]}" upload demo /etc/passwd
check "upload missing FILE" 70 "${X[@]}" upload demo nope --dir "$S"

# ---- delete ---------------------------------------------------------------
check "delete" 0 "${X[@]}" delete demo
expect "delete removed the directory" [ ! -e "$B/noxrunner_sandbox_demo" ]
check "touch after delete fails" 70 "${X[@]}" touch demo
expect "touch after delete: message names the sandbox" contains "$err" "demo"
expect "error lines start with noxctl:" [ "${err#noxctl: }" != "$err" ]
check "info after delete" 70 "${X[@]}" info demo
check "exec after delete" 70 "${X[@]}" exec demo -- true
check "delete twice" 70 "${X[@]}" delete demo

# ---- unisolated --------------------------------------------------------
check "--unisolated works" 0 "${X[@]}" --unisolated health
expect "--unisolated warns on stderr" contains "$err" "unisolated"
check "--unisolated warns even with -q" 0 "${X[@]}" --unisolated -q health
expect "warning not silenced" contains "$err" "warning"

# ---- -d ----------------------------------------------------------------
check "-d info of a missing sandbox" 70 "${X[@]}" -d info nosuch
expect "-d names the backend" contains "$err" "debug: local backend"
expect "-d gives the errno" contains "$err" "ENOENT"
expect "-d gives the time" contains "$err" "info took"
check "--debug health" 0 "${X[@]}" --debug health
expect "--debug timing on success" contains "$err" "health took"

finish
