#!/usr/bin/env bash
# noxctl's command line: --help and --version for the program and every
# command, usage errors (exit 64), and invalid sandbox IDs rejected before
# anything is created.
# Hostile inputs tried: IDs "../x", "a/b", "..", "-rf", "", ".hidden",
# 200 bytes, a newline; unknown commands and options; exec without "--".
. "$(dirname "$0")/lib.sh"

B=$T/base
X=("$NOXCTL" --local="$B")
cmds="health create exec sh shell upload download touch delete info ls"

check "--version" 0 "$NOXCTL" --version
expect "--version prints 'noxctl VERSION'" grep -qE '^noxctl [0-9]+\.[0-9]+' "$T/out"
check "-V" 0 "$NOXCTL" -V
check "--help" 0 "$NOXCTL" --help
for c in $cmds; do
	expect "--help lists $c" contains "$out" "  $c "
done
expect "--help documents exit status 64" contains "$out" "64"
expect "--help documents exit status 69" contains "$out" "69"
expect "--help documents exit status 70" contains "$out" "70"
for c in $cmds; do
	check "$c --help" 0 "$NOXCTL" "$c" --help
	expect "$c --help shows its usage" contains "$out" "usage: noxctl [GLOBAL OPTIONS] $c"
	check "help $c" 0 "$NOXCTL" help "$c"
done
check "exec ID --help (before --)" 0 "$NOXCTL" exec demo --help
check "help of an unknown command" 64 "$NOXCTL" help nosuch

check "no command" 64 "$NOXCTL"
check "unknown command" 64 "${X[@]}" frobnicate
expect "unknown command is named" contains "$err" "frobnicate"
check "unknown global option" 64 "$NOXCTL" --bogus health
check "global option without its argument" 64 "$NOXCTL" --url
check "bad --timeout" 64 "$NOXCTL" --timeout abc health
check "negative --timeout" 64 "$NOXCTL" --timeout -1 health
check "--url with --local" 64 "$NOXCTL" --url http://127.0.0.1:1 --local health
check "--token with local" 64 "${X[@]}" --token t health
check "unknown command option" 64 "${X[@]}" touch demo --bogus
for c in create exec sh shell upload download touch delete info; do
	check "$c without ID" 64 "${X[@]}" "$c"
done
check "exec without --" 64 "${X[@]}" exec demo ls -l
expect "exec without -- explains" contains "$err" "'--'"
check "exec with nothing after --" 64 "${X[@]}" exec demo --
check "exec with two IDs" 64 "${X[@]}" exec demo other -- true
check "exec --env without =" 64 "${X[@]}" exec demo --env FOO -- true
check "exec --timeout 0" 64 "${X[@]}" exec demo --timeout 0 -- true
check "sh with two lines" 64 "${X[@]}" sh demo echo hi
check "sh without line" 64 "${X[@]}" sh demo
check "create --ttl junk" 64 "${X[@]}" create demo --ttl 5x
check "download without target" 64 "${X[@]}" download demo
check "download with both targets" 64 "${X[@]}" download demo -o f --extract d
check "upload without files" 64 "${X[@]}" upload demo
check "touch with extra argument" 64 "${X[@]}" touch demo extra
check "ls with an argument" 64 "${X[@]}" ls extra
expect "no backend touched by usage errors" [ ! -e "$B" ]

# invalid IDs: rejected up front, nothing created anywhere
mkdir -p "$T/inner"
before=$(cd "$T" && find . | sort)
long=$(printf 'a%.0s' $(seq 200))
for id in "../x" "a/b" ".." "." "-rf" "" ".hidden" "$long" "$(printf 'a\nb')" "a b"; do
	check "create rejects ID $(printf %q "$id")" 64 "$NOXCTL" --local="$T/inner" create -- "$id"
	expect "  with a clear message" contains "$err" "invalid sandbox ID"
	check "exec rejects ID $(printf %q "$id")" 64 "$NOXCTL" --local="$T/inner" exec "$id" -- true
done
after=$(cd "$T" && find . | grep -v -e '^./out$' -e '^./err$' | sort)
before=$(printf '%s\n' "$before" | grep -v -e '^./out$' -e '^./err$')
expect "invalid IDs created nothing" [ "$before" = "$after" ]
expect "nothing named x next to the base dir" [ ! -e "$T/x" ]

finish
