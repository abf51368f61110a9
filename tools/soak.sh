#!/usr/bin/env bash
# tools/soak.sh - the 16-client load test (tests/mount/load.sh) for minutes
# instead of the suite's 20 s, on each backend in turn: the long run that
# finds slow leaks and rare races, kept out of CI's time budget.
#   tools/soak.sh [SECONDS [BACKEND...]]   default 300 s; local noxd noxd-v1
# Builds ./build (tools/test.sh's tree) when missing.  Each run prints its
# "# load:" figures (operations, peak RSS, descriptors) and its checks;
# exits non-zero when any backend's run failed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
shift || true
backends=("$@")
[ ${#backends[@]} -gt 0 ] || backends=(local noxd noxd-v1)
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
rc=0
for b in "${backends[@]}"; do
	echo "# soak: load.sh on $b for $secs s"
	NOX_TEST_BACKEND=$b NOX_LOAD_SECONDS=$secs \
		NOX_BUILD_ROOT=$PWD/build NOX_SOURCE_ROOT=$PWD \
		bash tests/mount/load.sh || rc=1
done
exit $rc
