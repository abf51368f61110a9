#!/usr/bin/env bash
# Builds a plain debug tree (build-valgrind) and runs every unit test
# binary under valgrind memcheck: definite leaks and memory errors fail a
# test.  Prints one line per test and ends with "N passed, N failed";
# exits non-zero when any failed.
#   tools/valgrind.sh [TEST...]      (names as in test-NAME; default: all)
# valgrind 3.19 lacks openat2: libnox then resolves paths with its
# fallback walk (src/lib/resolve.c), so the suite runs fully.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-valgrind
if ! command -v valgrind >/dev/null; then
	echo "valgrind not installed (apt-get install valgrind)" >&2
	exit 77
fi
if [ -d "$dir" ]; then
	meson setup --reconfigure "$dir" --buildtype=debug >/dev/null
else
	meson setup "$dir" --buildtype=debug >/dev/null
fi
# Only the unit tests: the rest of the tree is not run here.
mapfile -t targets < <(ninja -C "$dir" -t targets all |
	sed -n 's|^\(tests/unit/test-[A-Za-z0-9_]*\): .*|\1|p' | sort -u)
# test-http_client runs a real noxd: build it too
ninja -C "$dir" -j2 "${targets[@]}" tools/noxd/noxd >/dev/null
tests=()
if [ $# -gt 0 ]; then
	for n in "$@"; do tests+=("$dir/tests/unit/test-$n"); done
else
	for f in "$dir"/tests/unit/test-*; do
		[ -x "$f" ] && [ -f "$f" ] && tests+=("$f")
	done
fi
logdir=$dir/valgrind-logs
mkdir -p "$logdir"
export NOX_BUILD_ROOT=$PWD/$dir NOX_SOURCE_ROOT=$PWD
pass=0 fail=0
for t in "${tests[@]}"; do
	name=$(basename "$t")
	log=$logdir/$name.log
	# --trace-children=no: bwrap and sh run natively, only libnox code
	# is checked.
	if timeout 1200 valgrind --leak-check=full \
		--errors-for-leak-kinds=definite --error-exitcode=1 \
		--track-fds=no --trace-children=no --num-callers=30 \
		"$t" >"$log" 2>&1; then
		echo "$name: ok"
		pass=$((pass + 1))
	else
		rc=$?
		if [ "$rc" -eq 77 ]; then
			echo "$name: skipped"
			pass=$((pass + 1))
			continue
		fi
		echo "$name: FAILED (exit $rc, log $log)"
		grep -E '==[0-9]+== (Invalid|Conditional|Syscall param|Mismatched|.*definitely lost|ERROR SUMMARY)' \
			"$log" | head -10 || true
		grep -E 'FAILED|Run Summary' -A4 "$log" | tail -8 || true
		fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
