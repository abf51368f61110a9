#!/usr/bin/env bash
# agent.sh - runs examples/agent-loop.sh (write code and its test into a
# mounted sandbox, run the test through .nox/exec, read the failure, fix the
# file, run again) against a real mount, and checks the fixed file reached
# the sandbox.
. "$(dirname "$0")/lib.sh"
nt_require python3
nt_init
nt_workspace agent
out=$(timeout 120 bash "$NOX_SOURCE_ROOT/examples/agent-loop.sh" "$W" 2>&1)
rc=$?
nt_log "$out"
nt_check_eq "agent loop exits 0" "$rc" 0
if grep -q 'fixed and passing' <<<"$out"; then
	nt_pass "agent loop reports the fix"
else
	nt_fail "agent loop reports the fix" "examples/agent-loop.sh" \
		"fixed and passing" "$out"
fi
nt_check_content "the fix is in the sandbox" "$B/proj/calc.py" \
	$'def add(a, b):\n    return a + b\n'
nt_finish
