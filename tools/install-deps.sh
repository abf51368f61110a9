#!/usr/bin/env bash
# Installs every Debian 12 package noxfs needs to build, run and test.
# Run as root (or with sudo).  Idempotent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
pkgs=(
	# build
	meson ninja-build pkg-config gcc clang libclang-rt-14-dev
	libfuse3-dev libcurl4-openssl-dev libarchive-dev libjson-c-dev
	libcunit1-dev libmicrohttpd-dev scdoc
	# run
	fuse3 bubblewrap ca-certificates
	# test
	python3 git valgrind attr psmisc procps man-db
)
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
