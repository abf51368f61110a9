#!/usr/bin/env bash
# session.sh - the file-operation cases of files.sh and the control-file
# cases of exec.sh on a -o session=ID mount (the workspace is the mount
# point itself, the control dir MNT/.nox).  root.sh checks the session
# mount's own rules (attach again, invalid id).
here=$(dirname "$0")
export NOX_TEST_SESSION=1
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT
rc=0 pass=0 fail=0
for s in files exec; do
	echo "# $s.sh with -o session=${s}1"
	bash "$here/$s.sh" | tee "$out"
	r=${PIPESTATUS[0]}
	[ "$r" -eq 77 ] && exit 77
	[ "$r" -ne 0 ] && rc=1
	set -- $(tail -n 1 "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' |
		tr -dc '0-9 ')
	if [ $# -eq 2 ]; then
		pass=$((pass + $1))
		fail=$((fail + $2))
	else
		fail=$((fail + 1))
		rc=1
	fi
done
echo "$pass passed, $fail failed"
exit $rc
