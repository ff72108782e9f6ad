#!/bin/bash
# ports: 1
# Encode once, send to many.
#   - 4 raw-protocol viewers with one pixel format ask a still screen for
#     the whole picture at once, twice: byte-identical updates (Tight,
#     ZRLE, Hextile; tests/shared.py), and the server's log says 3 of the
#     4 got them made by another (shared=);
#   - real viewers decode what was made for others: 2 libvncclient and 2
#     gtk-vnc viewers on a moving picture, one of them joining late (its
#     ZRLE stream starts with rectangles made for viewers whose streams
#     are long under way), each verifying every pixel.
. "$(dirname "$0")/lib.sh"
set -u
LVC="$TOP/tests/lvc" GVNC="$TOP/tests/gvnc"
p=$PORT

# shared_since N: rectangles viewers got made by others, in close lines
# after line N of the log
shared_since() {
	tail -n +"$(($1 + 1))" "$SRV_LOG" | grep -o ' shared=[0-9]*' |
	    awk -F= '{ s += $2 } END { print s + 0 }'
}

start_server still -v -s none -p $p -x 576x432@0,noise || exit 1
for enc in tight zrle hextile; do
	before=$(wc -l <"$SRV_LOG")
	timeout 60 $PY "$TOP/tests/shared.py" $p $enc 4 576 432
	wait_closed
	# each update's rectangles: the 3 later viewers took every one
	got=$(tail -n +"$((before + 1))" "$SRV_LOG" | grep -c ' shared=[1-9]')
	if [ "$got" -ge 3 ]; then ok "shared-$enc-made-once"
	else fail "shared-$enc-made-once" "$got viewers with shared rectangles: $(tail -n +"$((before + 1))" "$SRV_LOG" | grep ' rects:' | tr '\n' ' ')"; fi
done
stop_server

start_server moving -v -s none -p $p -x 1024x768@30,noise || exit 1
for enc in zrle tight; do
	before=$(wc -l <"$SRV_LOG")
	pids=
	for v in lvc gvnc lvc; do
		bin=$LVC; [ $v = gvnc ] && bin=$GVNC
		timeout 60 $bin -a none -e $enc -f 30 -t 40 127.0.0.1 $p >"$T/$enc-$v-$!.out" 2>&1 &
		pids="$pids $!"
	done
	sleep 1
	timeout 60 $GVNC -a none -e $enc -f 10 -t 40 127.0.0.1 $p >"$T/$enc-late.out" 2>&1 &
	pids="$pids $!"
	bad=
	for pid in $pids; do wait $pid || bad=1; done
	if [ -z "$bad" ]; then ok "shared-$enc-viewers-decode"
	else fail "shared-$enc-viewers-decode" "$(cat "$T"/$enc-*.out | grep -v '^ok' | head -n 3 | tr '\n' ' ')"; fi
	if grep -q '^ok' "$T/$enc-late.out"; then ok "shared-$enc-late-viewer"
	else fail "shared-$enc-late-viewer" "$(tail -n 1 "$T/$enc-late.out")"; fi
	wait_closed
	n=$(shared_since "$before")
	if [ "$n" -gt 0 ]; then ok "shared-$enc-in-step ($n rectangles made once for several)"
	else fail "shared-$enc-in-step" "no rectangle was shared: $(tail -n +"$((before + 1))" "$SRV_LOG" | grep ' rects:' | tr '\n' ' ')"; fi
done
stop_server
