#!/usr/bin/env bash
# parallel.sh - concurrency on one noxfs mount: 8 writers on separate files
# (50 MiB of distinct content each, checksums verified in the mount and on
# the backend) while 4 execs run on 4 opens of .nox/exec (each must get its
# own result), then 8 parallel readers, then writers in two sandboxes at
# once with an exec in each.
# Limits: bounded by timeouts; the timing is reported, not asserted.
. "$(dirname "$0")/lib.sh"
nt_require sha256sum head
nt_init
nt_workspace par1
NT_T=300

for i in $(seq 1 8); do
	{
		head -c 50M /dev/urandom
	} >"$NT_TMP/src.$i"
done

t0=$(date +%s)
pids=()
for i in $(seq 1 8); do
	# 50 writes of 1 MiB, 40 ms apart: at least 2 s, so the execs
	# below run while every file is open and half written.
	timeout 300 python3 "$NT_PY" slowcopy "$NT_TMP/src.$i" "$W/w.$i" \
		0.04 >"$NT_TMP/w.$i.err" 2>&1 &
	pids+=($!)
done
sleep 0.3
execres=$(timeout 300 python3 "$NT_PY" exec-par "$C/exec" 4 2>&1)
busy=0
for p in "${pids[@]}"; do nt_alive "$p" && busy=$((busy + 1)); done
nt_log "writers still running when the execs returned: $busy"
nt_log "$(printf '%s\n' "$execres" | grep '^#' | sed 's/^# //')"
bad=""
for i in $(seq 1 8); do
	wait "${pids[$((i - 1))]}"
	[ "$(cat "$NT_TMP/w.$i.err")" = OK ] ||
		bad+=" writer$i($(head -c 200 "$NT_TMP/w.$i.err"))"
done
nt_log "8 writers + 4 execs took $(($(date +%s) - t0)) s"
nt_check_eq "8 parallel writers finished" "" "$bad" "nt.py slowcopy x8"
nt_check_eq "4 execs during the writes got their own results" OK \
	"$(printf '%s\n' "$execres" | grep -v '^#')" "nt.py exec-par 4"

sums=""
for i in $(seq 1 8); do
	sums+="$(sha256sum <"$NT_TMP/src.$i" | cut -d' ' -f1)"$'\n'
done
nt_check_eq "checksums of the mount copies" "$sums" "$(for i in $(seq 1 8); do
	timeout 300 sha256sum <"$W/w.$i" | cut -d' ' -f1; done)"$'\n' \
	"sha256sum W/w.*"
nt_check_eq "checksums of the backend copies" "$sums" "$(for i in $(seq 1 8); do
	sha256sum <"$B/w.$i" | cut -d' ' -f1; done)"$'\n' "sha256sum B/w.*"
nt_check_exec "checksums in the sandbox" \
	'for i in 1 2 3 4 5 6 7 8; do sha256sum < w.$i | cut -d" " -f1; done' \
	"$sums"

# -- 8 parallel readers -------------------------------------------------
python3 "$NT_PY" dropcache "$W"/w.? >/dev/null
pids=()
for i in $(seq 1 8); do
	(timeout 300 sha256sum <"$W/w.$i" | cut -d' ' -f1 >"$NT_TMP/r.$i") &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
nt_check_eq "8 parallel readers" "$sums" "$(for i in $(seq 1 8); do
	cat "$NT_TMP/r.$i"; done)"$'\n' "sha256sum x8 in parallel"

# -- 4 editors saving in one directory at once ---------------------------
mkdir "$W/ed"
pids=()
for j in 1 2 3 4; do
	(
		for i in $(seq 1 60); do
			printf 'editor %d save %d\n' "$j" "$i" >"$W/ed/.f$j.swp" &&
				mv -f "$W/ed/.f$j.swp" "$W/ed/f$j" || exit 1
			[ $((i % 10)) -eq 0 ] && ls "$W/ed" >/dev/null
		done
	) &
	pids+=($!)
done
bad=""
for p in "${pids[@]}"; do wait "$p" || bad+=" $p"; done
nt_check_eq "4 parallel editors, 60 saves each" "" "$bad" "write temp; mv"
got="" exp=""
for j in 1 2 3 4; do
	got+="$(cat "$W/ed/f$j")|$(cat "$B/ed/f$j")|"
	exp+="editor $j save 60|editor $j save 60|"
done
nt_check_eq "each file holds its last save (mount|backend)" "$exp" "$got" \
	"cat W/ed/fN B/ed/fN"
nt_check_out "no temp files left" "f1 f2 f3 f4" sh -c \
	"ls -A '$W/ed' | tr '\n' ' ' | sed 's/ \$//'"

# -- two sandboxes at once -----------------------------------------------
if [ "$NT_SESSION" != 1 ]; then
	mkdir "$NT_MNT/par2"
	B2=$(nt_backend_ws par2)
	pids=()
	for i in 1 2; do
		timeout 300 cp "$NT_TMP/src.$i" "$NT_MNT/par2/x.$i" &
		pids+=($!)
		timeout 300 cp "$NT_TMP/src.$((i + 2))" "$W/x.$i" &
		pids+=($!)
	done
	timeout 300 sh -c "echo 'sleep 1; echo a' > '$C/exec'" &
	pids+=($!)
	timeout 300 sh -c "echo 'sleep 1; echo b' > '$NT_MNT/par2/.nox/exec'" &
	pids+=($!)
	bad=""
	for p in "${pids[@]}"; do wait "$p" || bad+=" $p"; done
	nt_check_eq "writers and execs in two sandboxes" "" "$bad" "cp, exec"
	nt_check_content "exec result, sandbox 1" "$C/stdout" $'a\n'
	nt_check_content "exec result, sandbox 2" "$NT_MNT/par2/.nox/stdout" \
		$'b\n'
	nt_check "sandbox 2 copy (backend)" cmp "$NT_TMP/src.2" "$B2/x.2"
	nt_check "sandbox 1 copy (backend)" cmp "$NT_TMP/src.4" "$B/x.2"
	nt_check_not "sandbox 2 has no files of sandbox 1" test -e "$B2/w.1"
fi

rm -f "$NT_TMP"/src.*
nt_finish
