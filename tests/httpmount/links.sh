#!/bin/bash
# links.sh - hard links over HTTP (issue 14 items 2 and 8): a write
# through one name reaches every name in the sandbox (the upload does not
# split the link); operations on a node whose remembered name was
# unlinked (chmod, ln) go through a name that exists; the mount shows the
# sandbox's inode sharing and link counts from the listing, also for links
# made by a command in the sandbox; an operation the server refuses is
# logged.  Every case is checked through the mount and in the sandbox
# (noxd's base dir), then again after the listing was refreshed (the
# attribute timeout is 1 s; the checks wait 3).
: "${NOX_TEST_BACKEND:=noxd}"
export NOX_TEST_BACKEND
. "$(dirname "$0")/../mount/lib.sh"
. "$(dirname "$0")/hm.sh"

nt_require python3 timeout stat
hm_require_noxd
nt_init
nt_workspace links1

# same_ino DIR A B: "same N" when A and B share an inode, N links each
same_ino() {
	local a b
	a=$(stat -c '%i %h' "$1/$2") || return 1
	b=$(stat -c '%i %h' "$1/$3") || return 1
	if [ "${a% *}" = "${b% *}" ] && [ "${a#* }" = "${b#* }" ]; then
		echo "same ${a#* }"
	else
		echo "differ: $a / $b"
	fi
}

# checks CASE-SUFFIX: every scenario's state, mount and sandbox.
checks() {
	local s=$1
	# item 2: a write through one name is a write to all
	nt_check_content "h1 has the append$s" "$W/h1" $'data\nappended\n'
	nt_check_content "h2 has the append$s" "$W/h2" $'data\nappended\n'
	nt_check_content "h1 has the append (sandbox)$s" "$B/h1" \
		$'data\nappended\n'
	nt_check_out "h1, h2 one inode, 2 links$s" "same 2" same_ino "$W" h1 h2
	nt_check_out "h1, h2 one inode, 2 links (sandbox)$s" "same 2" \
		same_ino "$B" h1 h2
	# item 8: chmod through a node whose remembered name went
	nt_check_out "p mode 600$s" 600 stat -c %a "$W/p"
	nt_check_out "p mode 600 (sandbox)$s" 600 stat -c %a "$B/p"
	nt_check_out "p has 1 link$s" 1 stat -c %h "$W/p"
	nt_check_out "w mode 640 (sandbox)$s" 640 stat -c %a "$B/w"
	nt_check_out "w mode 640$s" 640 stat -c %a "$W/w"
	# item 8: ln through a node whose remembered name went
	nt_check_out "a, c one inode, 2 links$s" "same 2" same_ino "$W" a c
	nt_check_out "a, c one inode, 2 links (sandbox)$s" "same 2" \
		same_ino "$B" a c
	nt_check_not "b is gone$s" test -e "$W/b"
	# a link made in the sandbox shows as one node through the mount
	nt_check_out "s1, s2 one inode, 2 links$s" "same 2" same_ino "$W" s1 s2
	nt_check_content "s1 has the append through s2$s" "$W/s1" \
		$'s\nmore\n'
	# a write through a link made in the sandbox reaches both names
	nt_check_content "s1 has the append (sandbox)$s" "$B/s1" \
		$'s\nmore\n'
	nt_check_out "s1, s2 still one inode (sandbox)$s" "same 2" \
		same_ino "$B" s1 s2
}

# item 2
printf 'data\n' >"$W/h1"
nt_check "ln h1 h2" ln "$W/h1" "$W/h2"
printf 'appended\n' >>"$W/h2"

# item 8, chmod
printf 'x\n' >"$W/p"
nt_check "ln p q" ln "$W/p" "$W/q"
nt_check "rm q" rm "$W/q"
nt_check "chmod 600 p" chmod 600 "$W/p"

# item 8 across directories: the kept name's directory has no other name
mkdir "$W/d"
printf 'w\n' >"$W/w"
nt_check "ln w d/w2" ln "$W/w" "$W/d/w2"
nt_check "rm d/w2" rm "$W/d/w2"
nt_check "chmod 640 w" chmod 640 "$W/w"

# item 8, link
printf 'a\n' >"$W/a"
nt_check "ln a b" ln "$W/a" "$W/b"
nt_check "rm b" rm "$W/b"
nt_check "ln a c" ln "$W/a" "$W/c"

# a link made by a command, then written through the mount
nt_check_exec "ln in the sandbox" 'printf "s\n" > s1 && ln s1 s2 && echo ok' \
	$'ok\n'
nt_check_out "s1 has 2 links (after the command)" 2 stat -c %h "$W/s1"
printf 'more\n' >>"$W/s2"

checks ""
sleep 3
checks " (after the next listing)"

# the listing's link count follows the sandbox: a name removed there
nt_check_exec "rm s2 in the sandbox" 'rm s2 && echo ok' $'ok\n'
nt_check_out "s1 has 1 link after the command" 1 stat -c %h "$W/s1"
nt_check_not "s2 is gone after the command" test -e "$W/s2"

# an operation the server refuses (its name went behind the mount's back)
# is logged, not a silent success that the next listing undoes
printf 'z\n' >"$W/gone"
nt_check_out "gone is in the sandbox" $'z' cat "$B/gone"
rm -f "$B/gone"
nt_check "chmod of a file the sandbox removed (journaled)" \
	chmod 600 "$W/gone"
for i in $(seq 50); do
	grep -q "gone" "$NT_LOG" && break
	sleep 0.1
done
nt_check "the refused chmod is logged" grep -E "warning: links1: .*gone" \
	"$NT_LOG"

nt_unmount
nt_finish
