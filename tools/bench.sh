#!/usr/bin/env bash
# tools/bench.sh - the noxfs benchmark in one command (issue 7).
#
# Installs what is missing (Debian packages, through tools/install-deps.sh
# and apt-get; needs root or sudo only then), builds noxfs, noxd and noxctl
# (release) in build-bench, then runs tools/bench/bench.py, which builds
# libfuse's passthrough_ll example, starts an sshd on a loopback port with a
# throwaway key for sshfs and a noxd on loopback, runs the workloads and
# writes docs/performance.md.  Arguments are passed on:
#   --reps N  --quick  --only TARGET,...  --skip W1,...  --out FILE  --keep
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
need=(meson ninja-build pkg-config gcc libfuse3-dev fuse3 libcurl4-openssl-dev
	libarchive-dev libjson-c-dev libmicrohttpd-dev bubblewrap git python3
	sshfs openssh-server openssh-client)
missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "bench: installing ${missing[*]}" >&2
	bash tools/install-deps.sh
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get install -y -qq --no-install-recommends sshfs \
		openssh-server openssh-client >/dev/null
fi
if [ -f build-bench/build.ninja ]; then
	meson setup --reconfigure build-bench --buildtype=release \
		-Dtests=false >/dev/null
else
	meson setup build-bench --buildtype=release -Dtests=false >/dev/null
fi
ninja -C build-bench >/dev/null
exec python3 tools/bench/bench.py --build "$PWD/build-bench" "$@"
