#!/usr/bin/env bash
# noxctl against a real noxd on 127.0.0.1 (port 0): the core commands,
# a dead server (exit 69 within --timeout), a wrong bearer token (exit 70
# with the server's refusal), $NOXRUNNER_BASE_URL selection, and output that
# is not UTF-8 (exact through nox.bytes, flagged lossy over v1-only).
# Hostile inputs tried: an unused port, a wrong token, an invalid ID that
# must never reach the server.
. "$(dirname "$0")/lib.sh"
need_bwrap
start_noxd srv || { not_ok "noxd starts"; finish; exit 1; }
X=("$NOXCTL" --url "$url" --timeout 20)

check "health" 0 "${X[@]}" health
expect "health prints OK" [ "$out" = OK ]
check "create" 0 "${X[@]}" create web --ttl 300
expect "create prints podName" contains "$out" "podName: "
check "create --json" 0 "${X[@]}" --json create web
expect "create --json parses" json_ok "$T/out"
check "create --wait" 0 "${X[@]}" create web --wait
check "touch" 0 "${X[@]}" touch web
check "exec status passes through" 9 "${X[@]}" exec web -- sh -c 'echo o; echo e >&2; exit 9'
expect "exec stdout" [ "$out" = o ]
expect "exec stderr" [ "$err" = e ]
check "exec --json" 0 "${X[@]}" exec web --json -- sh -c 'printf x; exit 2'
expect "exec --json exitCode" [ "$(json_get "$T/out" 'j["exitCode"]')" = 2 ]
expect "exec --json stdout" [ "$(json_get "$T/out" 'j["stdout"]')" = x ]
# bytes that are not UTF-8 come through noxd's nox.bytes exactly
printf '\377\376\000x\n' >"$T/raw.exp"
printf 'e\377' >"$T/rawerr.exp"
check "exec: raw bytes" 0 "${X[@]}" exec web -- sh -c "printf '\\377\\376\\000x\\n'; printf 'e\\377' >&2"
expect "exec: stdout byte for byte" cmp -s "$T/out" "$T/raw.exp"
expect "exec: stderr byte for byte" cmp -s "$T/err" "$T/rawerr.exp"
check "exec --json: raw bytes" 0 "${X[@]}" exec web --json -- printf '\377\376'
# Ctrl-C stops the command: noxd offers nox.cancel
check_ctrl_c web "${X[@]}"
expect "exec --json: stdoutBase64" [ "$(json_get "$T/out" 'j["stdoutBase64"]')" = //4= ]
check "exec --env --workdir" 0 "${X[@]}" exec web --env K=v --workdir /workspace -- sh -c 'echo "$K $PWD"'
expect "env and workdir" [ "$out" = "v /workspace" ]
check "exec --timeout" 124 "${X[@]}" exec web --timeout 1 -- sleep 10
check "sh" 0 "${X[@]}" sh web 'mkdir -p d/e && echo made'
printf 'cd d\ncd e\npwd\ncd nope\npwd\n' | "${X[@]}" shell web >"$T/out" 2>"$T/err"
expect "shell over http tracks cd" [ "$(cat "$T/out")" = "/workspace/d/e
/workspace/d/e" ]

mkdir -p "$T/src/t/s"
printf 'one\n' >"$T/src/t/f"
printf '#!/bin/sh\necho x\n' >"$T/src/t/s/x.sh"
chmod 0751 "$T/src/t/s/x.sh"
ln -s f "$T/src/t/l"
check "upload" 0 "${X[@]}" upload web t --dir "$T/src" --dest /workspace/in
check "uploaded script runs" 0 "${X[@]}" exec web -- /workspace/in/t/s/x.sh
check "download --extract" 0 "${X[@]}" download web --src /workspace/in/t --extract "$T/dst"
expect "round trip: diff -r" diff -r "$T/src/t" "$T/dst"
expect "round trip: mode kept" [ "$(stat -c %a "$T/dst/s/x.sh")" = 751 ]
check "download -o" 0 "${X[@]}" download web --src /workspace/in -o "$T/in.tgz"
expect "download -o is a gzip tar" quiet tar tzf "$T/in.tgz" t/f

check "info" 0 "${X[@]}" info web
run "${X[@]}" ls
if [ $rc -eq 0 ]; then
	expect "ls lists web (server can list)" grep -q '^web ' "$T/out"
else
	expect "ls: backend without listing says so" contains "$err" "this backend cannot list sandboxes"
	expect "ls: without listing exit 70" [ $rc -eq 70 ]
fi

export NOXRUNNER_BASE_URL=$url
check "NOXRUNNER_BASE_URL selects http" 0 "$NOXCTL" exec web -- test -f /workspace/in/t/f
check "--local overrides NOXRUNNER_BASE_URL" 0 "$NOXCTL" --local="$T/lb" health
expect "--local used the local dir" [ -d "$T/lb" ]
unset NOXRUNNER_BASE_URL

check "invalid ID never reaches the server" 64 "${X[@]}" create ../x
expect "nothing created outside the server dir" [ ! -e "$T/x" ]

check "delete" 0 "${X[@]}" delete web
check "touch after delete" 70 "${X[@]}" touch web

# ---- dead server ----------------------------------------------------------
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
t0=$(date +%s%N)
check "dead server: health exits 69" 69 "$NOXCTL" --url "http://127.0.0.1:$dead" --timeout 3 health
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
expect "dead server: gave up within --timeout (+1 s): ${ms} ms" [ "$ms" -lt 4000 ]
check "dead server: exec exits 69" 69 "$NOXCTL" --url "http://127.0.0.1:$dead" --timeout 3 exec x -- true
expect "dead server: message on stderr" [ "${err#noxctl: }" != "$err" ]

# ---- a server that never answers: the timeout must bound it ---------------
python3 - "$T/hang.port" <<'PY' &
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
conns = []
end = time.time() + 30
s.settimeout(0.5)
while time.time() < end:
    try:
        c, _ = s.accept(); conns.append(c)   # accept, never answer
    except socket.timeout:
        pass
PY
noxd_pids+=($!)
for i in $(seq 50); do [ -s "$T/hang.port" ] && break; sleep 0.1; done
t0=$(date +%s%N)
check "silent server: health exits 69" 69 "$NOXCTL" --url "http://127.0.0.1:$(cat "$T/hang.port")" --timeout 2 health
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
expect "silent server: gave up within --timeout (+1 s): ${ms} ms" [ "$ms" -lt 3000 ]

# ---- a v1-only server: no listing, core commands still work -------------
start_noxd v1 --v1-only || { not_ok "noxd --v1-only starts"; finish; exit 1; }
V=("$NOXCTL" --url "$url" --timeout 20)
check "v1-only: create" 0 "${V[@]}" create plain
check "v1-only: exec" 0 "${V[@]}" sh plain 'echo v1 > f && cat f'
expect "v1-only: exec output" [ "$out" = v1 ]
# plain v1 cannot carry them: U+FFFD for each, and the loss named last
printf '\357\277\275\357\277\275\000x\n' >"$T/raw.v1"
check "v1-only: exec raw bytes" 0 "${V[@]}" exec plain -- printf '\377\376\000x\n'
expect "v1-only: stdout holds U+FFFD" cmp -s "$T/out" "$T/raw.v1"
expect "v1-only: the loss named in stderr" [ "$err" = "nox: lossy: stdout may hold U+FFFD for bytes that were not UTF-8 (the server lacks nox.bytes)" ]
check "v1-only: exec --json raw bytes" 0 "${V[@]}" exec plain --json -- printf '\377'
expect "v1-only: --json lossy" [ "$(json_get "$T/out" 'j["lossy"]["stdout"]')" = True ]
check "v1-only: upload" 0 "${V[@]}" upload plain t --dir "$T/src"
check "v1-only: download" 0 "${V[@]}" download plain --src /workspace/t --extract "$T/dst1"
expect "v1-only: round trip" diff -r "$T/src/t" "$T/dst1"
check "v1-only: ls is refused" 70 "${V[@]}" ls
expect "v1-only: ls says why" contains "$err" "this backend cannot list sandboxes"
check "v1-only: delete" 0 "${V[@]}" delete plain

# ---- wrong token --------------------------------------------------------
start_noxd tok --token s3cret || { not_ok "noxd --token starts"; finish; exit 1; }
check "right token" 0 "$NOXCTL" --url "$url" --token s3cret create t1
check "wrong token" 70 "$NOXCTL" --url "$url" --token wrong create t1
expect "wrong token: 401/permission message" grep -qiE '401|permission|unauthori|token' "$T/err"
check "no token" 70 "$NOXCTL" --url "$url" exec t1 -- true
check "ls with a wrong token fails" 70 "$NOXCTL" --url "$url" --token wrong ls
expect "ls with a wrong token names the 401, not a missing listing" \
	grep -q '401' "$T/err"
expect "ls with a wrong token: not 'cannot list'" \
	sh -c "! grep -q 'cannot list' '$T/err'"
NOXRUNNER_TOKEN=s3cret check "token from NOXRUNNER_TOKEN" 0 "$NOXCTL" --url "$url" exec t1 -- true

finish
