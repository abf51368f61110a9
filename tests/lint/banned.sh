#!/usr/bin/env bash
# Fails when project C code calls a function the house style bans
# (strcpy, strcat, sprintf, vsprintf, gets, atoi, atol, strtok).
set -u
root=${1:-.}
hits2=$(grep -rnE '(^|[^a-z_])(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|strtok)[[:space:]]*\(' \
	--include='*.c' --include='*.h' "$root/src" "$root/tools" "$root/include" "$root/tests" 2>/dev/null || true)
if [ -n "$hits2" ]; then
	echo "banned functions used:"
	echo "$hits2"
	echo "0 passed, 1 failed"
	exit 1
fi
echo "1 passed, 0 failed"
