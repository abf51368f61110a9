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
work=$(mktemp -d /tmp/noxfuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
# One target: its verdict goes to $work/T.res ("ok ..." or "FAILED").
fuzz_one() {
	local t=$1 log="$work/$1.log" execs
	mkdir -p "$work/$t"
	cp -r "tests/fuzz/corpus/$t/." "$work/$t/" 2>/dev/null || true
	if ASAN_OPTIONS=detect_leaks=1 "$dir/tests/fuzz/fuzz-$t" -max_total_time="$secs" \
		-rss_limit_mb=2048 -timeout=20 -print_final_stats=1 "$work/$t" >"$log" 2>&1; then
		execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
		echo "ok, ${execs:-?} executions in ${secs}s" >"$work/$t.res"
	else
		echo FAILED >"$work/$t.res"
	fi
}
# NOX_FUZZ_LANES targets at a time (default 1); each runs SECONDS of wall
# time either way, so two lanes halve the wall time.
lanes=${NOX_FUZZ_LANES:-1}
i=0
for t in "${targets[@]}"; do
	fuzz_one "$t" &
	i=$((i + 1))
	[ $((i % lanes)) -eq 0 ] && wait
done
wait
pass=0 fail=0
for t in "${targets[@]}"; do
	res=$(cat "$work/$t.res" 2>/dev/null || echo FAILED)
	echo "fuzz-$t: $res"
	if [ "$res" = FAILED ]; then
		tail -40 "$work/$t.log"
		fail=$((fail + 1))
	else
		pass=$((pass + 1))
	fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
