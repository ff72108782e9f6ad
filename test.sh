#!/bin/sh
# ./test.sh [NAME...] - install what the tests need, build, run every
# tests/t-*.sh (or those whose names contain NAME), and end with
# "N passed, N failed".  Exit status 0 only if nothing failed.
#
# Each script gets the number of ports its "# ports: N" line asks for
# (20 without one), one block after another from PORT_BASE (16000), and a
# scratch directory TMP/NAME (TMP: tests/tmp).  Two runs on one machine
# with different PORT_BASE and TMP do not collide.
set -u
cd "$(dirname "$0")" || exit 1
TOP=$(pwd)
PORT_BASE=${PORT_BASE:-16000}
TMP=${TMP:-$TOP/tests/tmp}
DEFAULT_PORTS=20
sh tests/deps.sh test || exit 1
make -s WERROR=1 FB=dummy all tests >/dev/null || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
pass=0 failed=0 skipped=0 port=$PORT_BASE
for t in tests/t-*.sh; do
	name=$(basename "$t" .sh)
	if [ $# -gt 0 ]; then
		sel=0
		for want in "$@"; do case $name in *"$want"*) sel=1 ;; esac; done
		[ $sel -eq 1 ] || continue
	fi
	ports=$(sed -n '1,20s/^# ports: *\([0-9][0-9]*\).*/\1/p' "$t" | head -n 1)
	dir="$TMP/$name"
	rm -rf "$dir"
	mkdir -p "$dir"
	echo "== $name"
	out="$dir/output"
	TOP=$TOP PORT=$port T=$dir timeout -k 10 900 bash "$t" >"$out" 2>"$dir/stderr"
	rc=$?
	cat "$out" 2>/dev/null
	p=$(grep -a -c '^ok ' "$out" 2>/dev/null); p=${p:-0}
	f=$(grep -a -c '^FAIL ' "$out" 2>/dev/null); f=${f:-0}
	s=$(grep -a -c '^skip ' "$out" 2>/dev/null); s=${s:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL $name: script exited $rc: $(tail -n 3 "$dir/stderr" | tr '\n' ' ')"
		f=1
	elif [ $((p + f + s)) -eq 0 ]; then
		echo "FAIL $name: reported no result: $(tail -n 3 "$dir/stderr" | tr '\n' ' ')"
		f=1
	fi
	pass=$((pass + p)) failed=$((failed + f)) skipped=$((skipped + s))
	port=$((port + ${ports:-$DEFAULT_PORTS}))
done
echo "$pass passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
