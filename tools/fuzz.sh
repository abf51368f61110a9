#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default
# 60) on a copy of its seed corpus.  Exits non-zero when a target finds a
# crash, a leak or a broken invariant.
#   tools/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
dir=build-fuzz
# The documented setup (tests/fuzz/meson.build), without the test suite.
opts=(-Dfuzzing=true -Dtests=false)
if [ -d "$dir" ]; then
	CC=clang meson setup --reconfigure "$dir" "${opts[@]}" >/dev/null
else
	CC=clang meson setup "$dir" "${opts[@]}" >/dev/null
fi
# Only the fuzz targets (and what they link): the rest is not run here.
mapfile -t build < <(ninja -C "$dir" -t targets all |
	sed -n 's|^\(tests/fuzz/fuzz-[A-Za-z0-9_]*\): .*|\1|p' | sort -u)
ninja -C "$dir" -j2 "${build[@]}" >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	targets=()
	for f in "$dir"/tests/fuzz/fuzz-*; do
		[ -f "$f" ] && [ -x "$f" ] && targets+=("$(basename "$f" | sed 's/^fuzz-//')")
	done
fi
pass=0 fail=0
work=$(mktemp -d /tmp/noxfuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
	mkdir -p "$work/$t"
	cp -r "tests/fuzz/corpus/$t/." "$work/$t/" 2>/dev/null || true
	log="$work/$t.log"
	if ASAN_OPTIONS=detect_leaks=1 "$dir/tests/fuzz/fuzz-$t" -max_total_time="$secs" \
		-rss_limit_mb=2048 -timeout=20 -print_final_stats=1 "$work/$t" >"$log" 2>&1; then
		execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
		echo "fuzz-$t: ok, ${execs:-?} executions in ${secs}s"
		pass=$((pass + 1))
	else
		echo "fuzz-$t: FAILED"
		tail -40 "$log"
		fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
