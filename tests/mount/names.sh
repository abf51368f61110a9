#!/usr/bin/env bash
# names.sh - hostile file names through a noxfs mount, on any backend
# (NOX_TEST_BACKEND=local|noxd|noxd-v1).  Each name is created, listed,
# read, stat'ed, renamed and removed through the mount, run and renamed
# and removed by commands in the sandbox (exec with an exact argv, never a
# shell string built from a name), created by a command and then seen
# through the mount, and checked on the backend's real workspace.  Then
# all names at once: the mount, the backend directory and the sandbox
# (listed by find -print0, hex-encoded inside the sandbox so no JSON or
# terminal mangles bytes) must show the same set; find -print0 | xargs -0,
# tar and cp -a through the mount; a 4095-byte relative path (the largest
# path one system call accepts: 4096 bytes with its NUL, 16 components of
# 255 bytes) created, read, renamed and removed in one system call each,
# through the mount, the backend and the sandbox.
# Hostile input tried: spaces (leading, trailing), newlines (inside and
# trailing), tab, CR, control bytes, single and double quotes, `-rf`,
# `--`, `-`, `--help`, `*`, `?`, `[ab]`, `$(touch pwned)`, backticks,
# `;rm -rf ~;`, `|`, `>`, `&`, backslashes, non-UTF-8 bytes (\xff\xfe,
# Latin-1, a broken UTF-8 sequence), UTF-8, leading dots, `%s%n`, `{a,b}`,
# 255-byte names (ASCII, 2-byte and 3-byte UTF-8), 256-byte names
# (ENAMETOOLONG), and the canary: no file named pwned appears anywhere.
# Names that are not valid UTF-8 cannot travel in a JSON argv (v1 exec is
# JSON); for those the argv carries each argument as octal escapes that a
# fixed script in the sandbox decodes with printf (the script is constant,
# the names are data).
# Limits: sequential (one exec at a time, so .nox/stdout is ours); the
# backend-side checks assume the local layout, which noxd also uses.
. "$(dirname "$0")/lib.sh"
nt_require find xargs tar cp od stat
nt_init
nt_workspace names1
NM="$NT_TMP/nm.py"

cd "$NT_TMP" || nt_die "cd"

cat >"$NM" <<'PY'
"""nm.py - helpers of names.sh: exact-bytes listings, argv execs."""
import json
import os
import sys

# Decodes each argument (octal escapes) in the sandbox and runs the argv.
WRAP = ('n=$#; for a; do v=$(printf "$a"; printf x); '
        'set -- "$@" "${v%x}"; done; shift $n; exec "$@"')


def arg(s):
    return os.fsencode(s)


def txn(ctl, req):
    fd = os.open(ctl, os.O_RDWR)
    try:
        data = req.encode()
        n = os.write(fd, data)
        if n != len(data):
            raise SystemExit("short write %d of %d" % (n, len(data)))
        os.lseek(fd, 0, os.SEEK_SET)
        out = b""
        while True:
            c = os.read(fd, 65536)
            if not c:
                break
            out += c
    finally:
        os.close(fd)
    return json.loads(out)


def argv_req(args):
    raw = [arg(a) for a in args]
    try:
        cmd = [r.decode("utf-8") for r in raw]
    except UnicodeDecodeError:
        cmd = ["sh", "-c", WRAP, "sh"] + [
            "".join("\\%03o" % c for c in r) for r in raw]
    return json.dumps({"cmd": cmd, "timeoutSeconds": 30})


def names_of(raw):
    out = []
    for n in raw:
        if n in (b".nox", b"", b".", b".."):
            continue
        out.append(n)
    return "".join(repr(n) + "\n" for n in sorted(out))


def main():
    op, a = sys.argv[1], sys.argv[2:]
    if op == "xargv":
        # xargv CTL ARG...: prints the command's stdout, exits with its
        # exit code (99: the exec write failed).
        try:
            r = txn(a[0], argv_req(a[1:]))
        except OSError as e:
            print("exec write failed: %s" % e, file=sys.stderr)
            return 99
        sys.stdout.write(r["stdout"])
        sys.stderr.write(r["stderr"])
        return r["exitCode"]
    if op == "sbxnames":
        # sbxnames CTL [DIR]: names in DIR of the sandbox, as bytes reprs.
        d = a[1] if len(a) > 1 else "."
        r = txn(a[0], json.dumps({"cmd": [
            "sh", "-c", "find \"$1\" -mindepth 1 -maxdepth 1 -print0 | "
            "od -An -v -tx1 | tr -d ' \\n'", "sh", d]}))
        if r["exitCode"] != 0:
            print("exit %d %s" % (r["exitCode"], r["stderr"]))
            return 1
        raw = bytes.fromhex(r["stdout"]).split(b"\0")
        pre = arg(d) + b"/"
        sys.stdout.write(names_of(n[len(pre):] for n in raw if n))
        return 0
    if op == "names":
        # names DIR: os.listdir as bytes reprs (.nox left out).
        sys.stdout.write(names_of(os.listdir(arg(a[0]))))
        return 0
    if op == "listed":
        print("yes" if arg(a[1]) in os.listdir(arg(a[0])) else "no")
        return 0
    if op == "repr":
        print(repr(arg(a[0])))
        return 0
    # Single system calls on paths relative to a directory (dir_fd), so a
    # 4095-byte path goes through one call.
    dfd = os.open(arg(a[0]), os.O_RDONLY | os.O_DIRECTORY)
    try:
        if op == "mkdirs":
            parts = arg(a[1]).split(b"/")
            for i in range(1, len(parts) + 1):
                os.mkdir(b"/".join(parts[:i]), 0o755, dir_fd=dfd)
        elif op == "put":
            fd = os.open(arg(a[1]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         0o644, dir_fd=dfd)
            os.write(fd, arg(a[2]))
            os.close(fd)
        elif op == "get":
            fd = os.open(arg(a[1]), os.O_RDONLY, dir_fd=dfd)
            sys.stdout.buffer.write(os.read(fd, 1 << 20))
            os.close(fd)
        elif op == "exists":
            try:
                os.stat(arg(a[1]), dir_fd=dfd, follow_symlinks=False)
                print("yes")
            except FileNotFoundError:
                print("no")
        elif op == "rename":
            os.rename(arg(a[1]), arg(a[2]), src_dir_fd=dfd, dst_dir_fd=dfd)
        elif op == "unlink":
            os.unlink(arg(a[1]), dir_fd=dfd)
        elif op == "mkdir":
            os.mkdir(arg(a[1]), 0o755, dir_fd=dfd)
        elif op == "rmdir":
            os.rmdir(arg(a[1]), dir_fd=dfd)
        elif op == "below":
            # below DIR REL NAME: creates, reads and removes NAME in REL
            # through openat from REL's own descriptor (so its path from
            # DIR is longer than REL).
            sub = os.open(arg(a[1]), os.O_RDONLY | os.O_DIRECTORY,
                          dir_fd=dfd)
            try:
                fd = os.open(arg(a[2]), os.O_RDWR | os.O_CREAT, 0o644,
                             dir_fd=sub)
                os.write(fd, b"below\n")
                os.close(fd)
                fd = os.open(arg(a[2]), os.O_RDONLY, dir_fd=sub)
                got = os.read(fd, 100)
                os.close(fd)
                os.unlink(arg(a[2]), dir_fd=sub)
            finally:
                os.close(sub)
            print("OK" if got == b"below\n" else "read back %r" % got)
        else:
            raise SystemExit("nm.py: unknown op " + op)
    except OSError as e:
        import errno
        print(errno.errorcode.get(e.errno, str(e.errno)))
        return 1
    finally:
        os.close(dfd)
    return 0


sys.exit(main())
PY

nm() { timeout -k 5 "$NT_T" python3 "$NM" "$@"; }
xargv() { nm xargv "$C/exec" "$@"; }

# derive NAME TAG: NAME+TAG, or TAG+NAME's tail when that would pass 255
# bytes (the harness runs with LC_ALL=C, so lengths are bytes).
derive() {
	if [ $((${#1} + ${#2})) -le 255 ]; then
		printf '%s%s' "$1" "$2"
	else
		printf '%s%s' "$2" "${1:${#2}}"
	fi
}

L255=$(printf 'L%.0s' $(seq 255))
E255=$(printf '\303\251%.0s' $(seq 127))x # 127 x "é" + "x"
U255=$(printf '\346\226\207%.0s' $(seq 85)) # 85 x "文"
NAMES=(
	'with space'
	' leading space'
	'trailing space '
	$'new\nline'
	$'trailing newline\n'
	$'tab\there'
	$'cr\rhere'
	$'ctl\001\002\033\177'
	"single'quote"
	'double"quote'
	"both'\"quotes"
	'-rf'
	'--'
	'-'
	'--help'
	'*'
	'?'
	'[ab]'
	'$(touch pwned)'
	'`touch pwned`'
	';rm -rf ~;'
	'|cat'
	'>redir'
	'&bg'
	'back\slash'
	'\'
	$'\xff\xfe not utf-8'
	$'caf\xe9 latin1'
	$'\xc3\x28 broken utf-8'
	'ünïcødé-文件'
	'...'
	'.hidden'
	'..dotdot'
	'a:b=c,d'
	'~tilde'
	'#hash'
	'%s%n%x'
	'{a,b}'
	'!bang'
	"$L255"
	"$E255"
	"$U255"
)
nt_log "${#NAMES[@]} names"
nt_check_eq "255-byte names are 255 bytes" "255 255 255" \
	"${#L255} ${#E255} ${#U255}"

# -- each name on its own ------------------------------------------------
i=0
for N in "${NAMES[@]}"; do
	i=$((i + 1))
	q=$(printf '%q' "$N")
	q="#$i ${q:0:40}"
	body=$(printf '#!/bin/sh\necho "ran %d $1"' "$i")

	# create, list, read, stat through the mount; the backend has it
	printf '%s' "$body" >"$W/$N"
	nt_check_content "$q: create and read" "$W/$N" "$body"
	nt_check_out "$q: listed in the mount" yes nm listed "$W" "$N"
	nt_check_out "$q: stat size" "${#body}" stat -c %s -- "$W/$N"
	nt_check_content "$q: on the backend" "$B/$N" "$body"

	# run through exec: read by cat, run as the program
	# ./NAME: cat takes a lone "-" as stdin even after "--"
	nt_check_out "$q: exec cat -- ./NAME" "$body" xargv cat -- "./$N"
	nt_check "$q: chmod +x" chmod +x -- "$W/$N"
	nt_check_out "$q: exec ./NAME arg" "ran $i a r g" \
		xargv "./$N" "a r g"

	# rename through the mount
	M=$(derive "$N" .mv)
	nt_check "$q: mv through the mount" mv -- "$W/$N" "$W/$M"
	nt_check_out "$q: old name gone, new listed" "no yes" \
		sh -c 'echo $(python3 "$1" listed "$2" "$3") \
			$(python3 "$1" listed "$2" "$4")' sh "$NM" "$W" "$N" "$M"
	nt_check_out "$q: renamed on the backend" "no yes" \
		sh -c 'echo $(python3 "$1" listed "$2" "$3") \
			$(python3 "$1" listed "$2" "$4")' sh "$NM" "$B" "$N" "$M"

	# rename and remove by commands in the sandbox
	X=$(derive "$N" .ex)
	nt_check_out "$q: exec mv -- OLD NEW" "" xargv mv -- "$M" "$X"
	nt_check_out "$q: exec's rename seen in the mount" "no yes" \
		sh -c 'echo $(python3 "$1" listed "$2" "$3") \
			$(python3 "$1" listed "$2" "$4")' sh "$NM" "$W" "$M" "$X"
	nt_check_content "$q: content after both renames" "$W/$X" "$body"

	# created by a command, seen through the mount
	K=$(derive "$N" .new)
	nt_check_out "$q: exec creates NAME" "" \
		xargv sh -c 'printf "%s" "$2" > "$1"' sh "$K" "made $i"
	nt_check_content "$q: exec-created file read in the mount" "$W/$K" \
		"made $i"

	# a directory of that name, holding a file of that name
	D=$(derive "$N" .d)
	nt_check "$q: mkdir" mkdir -- "$W/$D"
	printf 'inner %d' "$i" >"$W/$D/$N"
	nt_check_out "$q: exec cat -- DIR/NAME" "inner $i" \
		xargv cat -- "$D/$N"
	nt_check_content "$q: DIR/NAME on the backend" "$B/$D/$N" "inner $i"

	# remove: one through the mount, one and the directory by exec
	nt_check "$q: rm through the mount" rm -- "$W/$X"
	nt_check_out "$q: exec rm -- NAME" "" xargv rm -- "$K"
	nt_check_out "$q: exec rm -r -- DIR" "" xargv rm -r -- "$D"
	nt_check_out "$q: all gone in the mount" "no no no" \
		sh -c 'echo $(python3 "$1" listed "$2" "$3") \
			$(python3 "$1" listed "$2" "$4") \
			$(python3 "$1" listed "$2" "$5")' sh "$NM" "$W" "$X" "$K" "$D"
	nt_check_out "$q: all gone on the backend" "no no no" \
		sh -c 'echo $(python3 "$1" listed "$2" "$3") \
			$(python3 "$1" listed "$2" "$4") \
			$(python3 "$1" listed "$2" "$5")' sh "$NM" "$B" "$X" "$K" "$D"
done

# -- all names at once -------------------------------------------------
nt_check_out "workspace empty before the bulk part" "" nm names "$W"
i=0
for N in "${NAMES[@]}"; do
	i=$((i + 1))
	printf 'bulk %d\n' "$i" >"$W/$N"
done
# and the same names made by one command in a directory (argv, not text)
nt_check "mkdir made" mkdir "$W/made"
nt_check_out "one exec creates every name in made/" "" \
	xargv sh -c 'cd made && for n; do printf "%s" "$n" > "./$n"; done' sh \
	"${NAMES[@]}"
want=$(for N in "${NAMES[@]}"; do nm repr "$N"; done | LC_ALL=C sort)
want_ws=$( (printf '%s\n' "$want"; nm repr made) | LC_ALL=C sort)
# python sorts bytes reprs as strings; compare sorted the same way
srt() { LC_ALL=C sort; }
nt_check_eq "mount lists exactly the names" "$want_ws" \
	"$(nm names "$W" | srt)" "os.listdir(W)"
nt_check_eq "backend lists exactly the names" "$want_ws" \
	"$(nm names "$B" | srt)" "os.listdir(B)"
nt_check_eq "sandbox lists exactly the names" "$want_ws" \
	"$(nm sbxnames "$C/exec" | srt)" "find -print0 in the sandbox"
nt_check_eq "exec-made names listed in the mount" "$want" \
	"$(nm names "$W/made" | srt)" "os.listdir(W/made)"
nt_check_eq "exec-made names on the backend" "$want" \
	"$(nm names "$B/made" | srt)" "os.listdir(B/made)"
bad=""
for N in "${NAMES[@]}"; do
	got=$(cat -- "$W/made/$N" 2>&1; echo x)
	[ "${got%x}" = "$N" ] || bad+=" $(printf '%q' "$N")"
done
nt_check_eq "exec-made files hold their own name" "" "$bad"

nt_check_out "find -print0 | xargs -0 stat through the mount" \
	"$((${#NAMES[@]} * 2 + 1))" sh -c \
	'find "$1" -mindepth 1 -path "$1/.nox" -prune -o -print0 |
	 xargs -0 stat -c %i -- | wc -l' \
	sh "$W"
nt_check_out "ls -A counts every entry (newlines as ?)" \
	"$((${#NAMES[@]} + 1))" sh -c 'ls -A -q "$1" | grep -vx .nox | wc -l' \
	sh "$W"
mkdir "$NT_TMP/tar" "$NT_TMP/cp"
nt_check "tar out of the mount" sh -c \
	'tar -C "$1" --exclude=./.nox -cf - . | tar -C "$2" -xf -' sh "$W" \
	"$NT_TMP/tar"
nt_check_eq "tar copy equals the mount" "$(nt_tree_list "$B")" \
	"$(nt_tree_list "$NT_TMP/tar")" "nt_tree_list"
nt_check "cp -a out of the mount" cp -a -- "$W/." "$NT_TMP/cp/"
rm -rf "$NT_TMP/cp/.nox"
nt_check_eq "cp -a copy equals the mount" "$(nt_tree_list "$B")" \
	"$(nt_tree_list "$NT_TMP/cp")" "nt_tree_list"
nt_check "cp -a into the mount" cp -a -- "$NT_TMP/cp/made" "$W/made2"
nt_check_eq "cp -a copy in the mount, on the backend" "$want" \
	"$(nm names "$B/made2" | srt)" "os.listdir(B/made2)"
nt_check_out "exec sha256sum over made2 by glob (argv, ./*)" \
	"${#NAMES[@]}" xargv sh -c 'cd made2 && sha256sum -- ./* ./.[!.]* \
	./..?* 2>/dev/null | wc -l'

# -- limits ---------------------------------------------------------------
L256="${L255}M"
nt_check_errno "256-byte name: create → ENAMETOOLONG" ENAMETOOLONG creat \
	"$W/$L256"
nt_check_errno "256-byte name: mkdir → ENAMETOOLONG" ENAMETOOLONG mkdir \
	"$W/$L256"
nt_check_errno "256-byte name: rename onto → ENAMETOOLONG" ENAMETOOLONG \
	rename "$W/-rf" "$W/$L256"
nt_check_out "-rf still there" yes nm listed "$W" -rf

# 16 components of 255 bytes: 4095 bytes, 4096 with the NUL (PATH_MAX)
comp() { printf "$1"'%.0s' $(seq 255); }
DIRP=""
for k in $(seq 15); do DIRP+="$(comp "$(printf '\\x%x' $((96 + k)))")/"; done
LEAF=$(comp z)
LEAF2=$(comp y)
P="$DIRP$LEAF"
P2="$DIRP$LEAF2"
nt_check_eq "deep path is 4095 bytes" 4095 "${#P}"
nt_check_out "deep: mkdir 15 levels (one mkdirat each)" "" \
	nm mkdirs "$W" "${DIRP%/}"
nt_check_out "deep: create by the full 4095-byte path" "" \
	nm put "$W" "$P" "deep data"
nt_check_out "deep: read by the full path" "deep data" nm get "$W" "$P"
nt_check_out "deep: on the backend" "deep data" nm get "$B" "$P"
nt_check_out "deep: exec cat -- PATH" "deep data" xargv cat -- "$P"
nt_check_out "deep: exec find prints the path" "./$P" \
	xargv find . -type f -name "$LEAF"
nt_check_out "deep: rename by full paths" "" nm rename "$W" "$P" "$P2"
nt_check_out "deep: renamed on the backend" "no yes" sh -c \
	'echo $(python3 "$1" exists "$2" "$3") $(python3 "$1" exists "$2" "$4")' \
	sh "$NM" "$B" "$P" "$P2"
nt_check_out "deep: exec mv -- NEW OLD" "" xargv mv -- "$P2" "$P"
nt_check_out "deep: exec's rename seen in the mount" "deep data" \
	nm get "$W" "$P"
# A directory whose path is 4095 bytes: valid (libnox: < 4096), so it
# must reach the backend; a file in it has a 4097-byte path from the
# workspace.  The local mount serves from descriptors, so that works as
# on a disk; over HTTP libnox's path rule may refuse it (ENAMETOOLONG).
DP="$DIRP$(comp x)"
nt_check_out "deep: mkdir by a 4095-byte path" "" nm mkdir "$W" "$DP"
nt_check "deep: .nox/sync" sh -c 'printf x > "$1"' sh "$C/sync"
nt_check_out "deep: the 4095-byte directory is on the backend" yes \
	nm exists "$B" "$DP"
out=$(nm below "$W" "$DP" q)
case $NT_BACKEND in
local) nt_check_eq "deep: file below a 4095-byte dir (openat) works" OK \
	"$out" ;;
*) nt_check_out "deep: file below a 4095-byte dir: OK or ENAMETOOLONG" \
	yes sh -c 'case $1 in OK|ENAMETOOLONG) echo yes;; *) echo "$1";; esac' \
	sh "$out" ;;
esac
nt_check_out "deep: rmdir by the 4095-byte path" "" nm rmdir "$W" "$DP"
nt_check "deep: .nox/sync after rmdir" sh -c 'printf x > "$1"' sh "$C/sync"
nt_check_out "deep: the 4095-byte directory gone on the backend" no \
	nm exists "$B" "$DP"
nt_log "below a 4095-byte dir on $NT_BACKEND: $out"
nt_check_out "deep: unlink by the full path" "" nm unlink "$W" "$P"
nt_check_out "deep: gone on the backend" no nm exists "$B" "$P"
nt_check "deep: rm -rf the tree" rm -rf -- "$W/$(comp a)"
nt_check_out "deep: tree gone on the backend" no nm listed "$B" "$(comp a)"

# -- clean up through the mount ------------------------------------------
nt_check "find -delete removes every name" sh -c \
	'find "$1" -mindepth 1 -maxdepth 1 ! -name .nox -exec rm -rf -- {} +' \
	sh "$W"
nt_check_out "mount empty" "" nm names "$W"
nt_check_out "backend empty" "" nm names "$B"
nt_check_out "sandbox empty" "" nm sbxnames "$C/exec"
nt_check_out "canary: no file named pwned anywhere" "" sh -c \
	'find "$1" -name pwned 2>/dev/null; [ ! -e /tmp/pwned ] || echo /tmp/pwned' \
	sh "$NT_TMP"
nt_finish
