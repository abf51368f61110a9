#!/usr/bin/env bash
# An agent-style loop over a mounted sandbox: write code and its test, run the
# test through .nox/exec, read the result, fix the code, run it again.
#
#   examples/agent-loop.sh SANDBOX_DIR      (e.g. /mnt/nox/demo)
#
# Exits 0 when the test passes after the fix.  python3 -B: the fix keeps
# the file size and may land in the same second, so a cached .pyc would
# look fresh and hide it.
set -euo pipefail
sb=${1:?usage: agent-loop.sh SANDBOX_DIR}

run() {	# run a shell line in the sandbox; print status and output
	printf '%s\n' "$1" > "$sb/.nox/exec"
	status=$(cat "$sb/.nox/status")
	echo "\$ $1  -> exit $status"
	sed 's/^/  | /' "$sb/.nox/stdout" "$sb/.nox/stderr"
}

# 1. The "agent" writes a module with a bug, and a test for it.
mkdir -p "$sb/proj"
cat > "$sb/proj/calc.py" <<'PY'
def add(a, b):
    return a - b
PY
cat > "$sb/proj/test_calc.py" <<'PY'
import unittest
from calc import add

class T(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)

if __name__ == "__main__":
    unittest.main()
PY

# 2. Run the test; it must fail.
run 'cd proj && python3 -B -m unittest -q test_calc'
if [ "$status" = 0 ]; then
	echo "agent-loop: the buggy version passed?" >&2
	exit 1
fi
grep -q 'AssertionError' "$sb/.nox/stderr" || { echo "agent-loop: no assertion in stderr" >&2; exit 1; }

# 3. Read the failure, fix the file (as an editor would: temp file, rename).
sed 's/a - b/a + b/' "$sb/proj/calc.py" > "$sb/proj/.calc.py.tmp"
mv "$sb/proj/.calc.py.tmp" "$sb/proj/calc.py"

# 4. Run again; it must pass.
run 'cd proj && python3 -B -m unittest -q test_calc'
[ "$status" = 0 ] || { echo "agent-loop: still failing after the fix" >&2; exit 1; }
echo "agent-loop: fixed and passing"
