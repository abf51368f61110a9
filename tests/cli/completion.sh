#!/usr/bin/env bash
# The bash completion file: parses (bash -n), completes command names,
# global and per-command options, and sandbox IDs from "noxctl ls" with
# the global options given on the line (--local=DIR split by bash at '=').
. "$(dirname "$0")/lib.sh"
F=$NOX_SOURCE_ROOT/tools/noxctl/noxctl.bash-completion

expect "completion file parses (bash -n)" bash -n "$F"
# shellcheck disable=SC1090
. "$F"
expect "completion function is registered" quiet complete -p noxctl
expect "_noxctl is defined" quiet declare -F _noxctl

# comp WORDS...: completes the last word; result in COMPREPLY
comp() {
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE="$*"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_noxctl noxctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
}
has() {
	local w
	for w in "${COMPREPLY[@]}"; do [ "$w" = "$1" ] && return 0; done
	return 1
}

comp noxctl ""
expect "empty word: all commands, exec among them" has exec
expect "empty word: ls among them" has ls
expect "empty word: no options" not has --url
comp noxctl ex
expect "'ex' completes to exec" [ "${COMPREPLY[*]}" = exec ]
comp noxctl --url http://x --timeout 5 sh
expect "after global options: 'sh' gives sh and shell" [ "${COMPREPLY[*]}" = "sh shell" ]
comp noxctl --ur
expect "global option --url" [ "${COMPREPLY[*]}" = --url ]
comp noxctl exec demo --wo
expect "exec option --workdir" [ "${COMPREPLY[*]}" = --workdir ]
comp noxctl create demo --
expect "create options include --ttl" has --ttl
expect "create options include --wait" has --wait
comp noxctl help up
expect "help completes command names" [ "${COMPREPLY[*]}" = upload ]
comp noxctl --url ""
expect "no command suggested as a value of --url" [ ${#COMPREPLY[@]} -eq 0 ]

# sandbox IDs through a real local backend
PATH=$NOX_BUILD_ROOT/tools/noxctl:$PATH
B=$T/base
if "$NOXCTL" --local="$B" create demo1 >/dev/null 2>&1 &&
	"$NOXCTL" --local="$B" create other >/dev/null 2>&1; then
	comp noxctl --local = "$B" touch de
	expect "IDs from ls with --local=DIR" [ "${COMPREPLY[*]}" = demo1 ]
	comp noxctl --local = "$B" exec ""
	expect "exec's first argument lists all IDs" [ "${COMPREPLY[*]}" = "demo1 other" ]
	comp noxctl --local = "$B" exec demo1 -- ech
	expect "after --: program names" has echo
else
	not_ok "creating local sandboxes for ID completion"
fi

finish
