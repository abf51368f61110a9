#!/usr/bin/env bash
# agents_doc.sh - the Python block of docs/agents.md, run as written against
# a real mount: the guide's read/write sequence must keep working.
. "$(dirname "$0")/lib.sh"
nt_require python3
nt_init
nt_workspace task1
py="$NT_TMP/agents_doc.py"
awk '/^```python$/{on=1; next} /^```$/{if(on){exit}} on' \
	"$NOX_SOURCE_ROOT/docs/agents.md" >"$py"
if [ ! -s "$py" ]; then
	nt_fail "docs/agents.md has a python block" "awk" "a block" "none"
	nt_finish
fi
nt_check_out "the guide's run() gives exit code and stdout" \
	"3 hi from /workspace" timeout 60 python3 "$py" "$W"
nt_check_content ".nox/status agrees" "$C/status" $'3\n'
nt_finish
