#!/bin/bash
# pages.sh - the listing in pages (issue 15 item 5): noxd answers fs/tree
# in pages of at most 100 entries (--tree-page 100), so a tree of 3,000
# files (and 280 more entries) made in the backend spans 33 pages.  find
# and stat through the mount must see every file with its size, and one listing must be
# exactly that many fs/tree requests (each page one request).  Names
# where byte order and walk order differ ("a-b" sorts before "a/x" by
# bytes, after it in the walk) sit at page boundaries.  noxd refuses a
# bad cursor or limit with 400.  On noxd --v1-only there is no fs/tree:
# the find listing comes in slices, and with an output cap of 32 KiB
# (--output-cap 32K) the first slices are cut and halved down to 512
# records or fewer, so the same tree takes at least 7 slices (execs).
: "${NOX_TEST_BACKEND:=noxd}"
export NOX_TEST_BACKEND
NT_NOXD_ARGS="--tree-page 100"
[ "$NOX_TEST_BACKEND" = noxd-v1 ] && NT_NOXD_ARGS="--output-cap 32K"
. "$(dirname "$0")/../mount/lib.sh"
. "$(dirname "$0")/hm.sh"

nt_require python3 timeout stat find sort
hm_require_noxd
nt_init
# one listing for the whole walk: the attribute timeout outlasts it
nt_workspace pages1 "attr_timeout=120"

# 30 directories of 100 files, sizes 0..16 bytes; and the tricky names
python3 - "$B" <<'PY'
import os, sys
b = sys.argv[1]
for d in range(30):
    os.makedirs("%s/t/d%02d" % (b, d))
    for i in range(100):
        with open("%s/t/d%02d/f%03d" % (b, d, i), "w") as f:
            f.write("x" * ((d * 100 + i) % 17))
for n in ["a", "a-b", "a.b", "a0"]:
    os.makedirs("%s/o/%s/sub" % (b, n))
    for i in range(60):
        with open("%s/o/%s/sub/%s%d" % (b, n, n, i), "w") as f:
            f.write("y" * (i % 5))
PY
(cd "$B" && find . -mindepth 1 -printf '%P %y %s\n' | sed 's/ d [0-9]*$/ d/' |
	sort) >"$NT_TMP/want"
E=$(wc -l <"$NT_TMP/want")
PAGES=$((E / 100 + 1))
nt_log "$E entries: $PAGES pages of 100"

hm_snap
(cd "$W" && timeout -k 5 "$NT_T" find . -mindepth 1 -printf '%P %y %s\n' |
	sed 's/ d [0-9]*$/ d/' | sort) >"$NT_TMP/got"
d=$(hm_delta fs_tree)
x=$(hm_delta exec)
nt_check "find and stat show every entry with its size" \
	cmp "$NT_TMP/want" "$NT_TMP/got"
nt_check_out "stat of every file through the mount" "$((3000 + 240))" sh -c \
	"find '$W' -type f -print0 | xargs -0 stat -c %s -- | wc -l"
if [ "$NT_BACKEND" = noxd ]; then
	nt_check_eq "one listing: one fs/tree request per page" "$PAGES" "$d" \
		"$(hm_deltas)"
else
	nt_check_eq "no fs/tree on a v1-only server" 0 "$d" "$(hm_deltas)"
	nt_check "the find listing came in slices: >= 7 execs (got $x)" \
		test "$x" -ge 7
	nt_check "and no tar of the workspace" test "$(hm_delta download)" = 0
fi

# a command's change is in the next listing, also past the first page
nt_exec "rm t/d29/f099 && echo new > t/d29/g && rm -r o/a-b"
nt_check_not "a file removed by a command is gone" test -e "$W/t/d29/f099"
nt_check_content "a file made by a command is there" "$W/t/d29/g" $'new\n'
nt_check_not "a directory removed by a command is gone" test -e "$W/o/a-b"
nt_check_content "its neighbours stay" "$W/o/a.b/sub/a.b7" "yy"

if [ "$NT_BACKEND" = noxd ]; then
	# noxd's checks of the paging parameters
	for q in "after=..%2Fx" "after=%2Fabs" "limit=0" "limit=-1" \
		"limit=x"; do
		nt_check_out "fs/tree?$q is 400" 400 python3 - "$NT_PORT" "$q" <<'PY'
import sys, urllib.request, urllib.error
u = "http://127.0.0.1:%s/v1/sandboxes/pages1/fs/tree?%s" % (sys.argv[1], sys.argv[2])
try:
    urllib.request.urlopen(u, timeout=10)
    print(200)
except urllib.error.HTTPError as e:
    print(e.code)
PY
	done
fi
nt_finish
