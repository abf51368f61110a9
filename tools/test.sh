#!/usr/bin/env bash
# Builds noxfs and runs the whole test suite (unit, http, mount, lint).
#   tools/test.sh              build in ./build, run everything
#   tools/test.sh --sanitize   the same under ASan+UBSan, in ./build-asan,
#                              less the suite plain-only
# Tests run two at a time (meson test --num-processes 2; those registered
# is_parallel: false run alone, and the heavy ones last), with the system
# python3 first on PATH (NOX_TEST_PYTHON to choose another).
# Exits non-zero if any test fails; ends with "N passed, N failed,
# N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build
setup=(--werror)
if [ "${1:-}" = "--sanitize" ]; then
	dir=build-asan
	setup+=(-Db_sanitize=address,undefined -Db_lundef=false)
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	# size-bound tests (tests/mount/many.sh) run a tenth of their size
	export NOX_SANITIZED=1
fi
if [ -d "$dir" ]; then
	meson setup --reconfigure "$dir" "${setup[@]}" >/dev/null
else
	meson setup "$dir" "${setup[@]}" >/dev/null
fi
ninja -C "$dir"
# The tests' python3 is the system one (tools/install-deps.sh installs it;
# meson runs on it too), or NOX_TEST_PYTHON.  A pyenv-style shim first on
# PATH costs ~0.4 s per start, and the mount scripts start python3 about a
# thousand times per pass (names.sh alone: 500 s instead of 220 s).
py=${NOX_TEST_PYTHON:-/usr/bin/python3}
if [ -x "$py" ] && [ "$(command -v python3)" != "$py" ]; then
	mkdir -p "$dir/test-bin"
	ln -sfn "$py" "$dir/test-bin/python3"
	export PATH="$PWD/$dir/test-bin:$PATH"
fi
rc=0
# The sanitizer pass leaves out the suite 'plain-only' (the five longest
# mount scripts over --v1-only; tests/httpmount/meson.build says why).
only=()
[ "$dir" = build-asan ] && only=(--no-suite plain-only)
meson test -C "$dir" --print-errorlogs --num-processes 2 "${only[@]}" || rc=$?
log="$dir/meson-logs/testlog.json"
if [ -f "$log" ]; then
	python3 - "$log" <<'PY'
import json, sys
ok = bad = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"):
        ok += 1
    elif r == "SKIP":
        skip += 1
    else:
        bad += 1
print(f"{ok} passed, {bad} failed, {skip} skipped")
PY
fi
exit $rc
