#!/usr/bin/env bash
# One command benchmark: installs what it needs, builds noxfs (release) and
# runs tools/bench/bench.py.  Arguments are passed on (--reps N, --quick,
# --only a,b, --out FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends sshfs openssh-server openssh-client >/dev/null
if [ -d build-bench ]; then
	meson setup --reconfigure build-bench --buildtype=release -Dtests=false >/dev/null
else
	meson setup build-bench --buildtype=release -Dtests=false >/dev/null
fi
ninja -C build-bench >/dev/null
exec python3 tools/bench/bench.py --build "$PWD/build-bench" "$@"
