#!/bin/bash
# ContinuousUpdates and Fence: the exchange byte by byte with a client of
# our own (tests/cu.py: offer, fence echo, SyncNext, refusals, updates
# without requests, disable, area clipping, a viewer that never answers
# fences), then TigerVNC's vncviewer under Xvfb: it turns continuous
# updates on, answers our fences, and its window shows the moving dummy
# picture (every pixel checked by tests/dummyref, in two dumps of
# different frames).
# ports: 3
. "$(dirname "$0")/lib.sh"
set -u
p_still=$PORT p_moving=$((PORT + 1)) p_tiger=$((PORT + 2))
pids=
trap 'kill $pids 2>/dev/null; wait 2>/dev/null; stop_server' EXIT
start_server still -s none -p $p_still -x 1024x768@0 -n cu-test || exit 1
pids="$pids $SRV_PID"
start_server moving -s none -p $p_moving -x 1024x768@10 || exit 1
pids="$pids $SRV_PID"
timeout 180 $PY "$TOP/tests/cu.py" $p_still $p_moving "$SRV_PID" "$SRV_LOG"
for p in $pids; do
	kill -0 "$p" 2>/dev/null || fail "cu-server-alive-$p" "server died: $(tail -n 3 "$T"/still.log "$T"/moving.log)"
done
ok cu-servers-survived
kill $pids 2>/dev/null; wait $pids 2>/dev/null
pids= SRV_PID=

# -- TigerVNC's vncviewer (no SASL: None on loopback) --
if ! command -v vncviewer >/dev/null || ! vncviewer -h 2>&1 | grep -q TigerVNC; then
	skip cu-tigervnc "TigerVNC's vncviewer (Debian tigervnc-viewer) not installed"
	exit 0
fi
rm -f "$T/display"
Xvfb -displayfd 3 -screen 0 1280x900x24 -nolisten tcp -noreset 3>"$T/display" \
    >"$T/xvfb.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 1 50); do [ -s "$T/display" ] && break; sleep 0.1; done
if [ ! -s "$T/display" ]; then
	fail cu-tigervnc-xvfb "Xvfb did not start: $(tail -n 2 "$T/xvfb.log" | tr '\n' ' ')"
	exit 0
fi
export DISPLAY=":$(cat "$T/display")"
start_server tiger -s none -p $p_tiger -x 1024x768@10 -n cu-tiger -v || exit 1
timeout 60 vncviewer -SecurityTypes None -Shared -ReconnectOnError=0 \
    -AlertOnFatalError=0 -Log '*:stderr:30' "127.0.0.1::$p_tiger" >"$T/tigervnc.log" 2>&1 &
vpid=$!
pids="$pids $vpid"
win=
for _ in $(seq 1 100); do
	win=$(xwininfo -root -tree 2>/dev/null | awk '/cu-tiger - TigerVNC/ { print $1; exit }')
	[ -n "$win" ] && break
	sleep 0.1
done
if [ -z "$win" ]; then
	fail cu-tigervnc-window "no TigerVNC window: $(tail -n 3 "$T/tigervnc.log" | tr '\n' ' ')"
	exit 0
fi
# two dumps that both show the exact picture, of different frames (a
# dump may catch the viewer between rectangles: up to 12 tries)
frames=
for i in $(seq 1 12); do
	sleep 0.6
	xwd -id "$win" -silent >"$T/tiger$i.xwd" 2>/dev/null || continue
	f=$($PY "$TOP/tests/cu.py" --xwd "$T/tiger$i.xwd" | sed -n 's/^ok frame=//p')
	[ -n "$f" ] || continue
	case " $frames " in *" $f "*) ;; *) frames="$frames $f" ;; esac
	[ $(echo $frames | wc -w) -ge 2 ] && break
done
if [ $(echo $frames | wc -w) -ge 2 ]; then ok "cu-tigervnc-window-shows-frames$(echo $frames | tr ' ' '-' | sed 's/^/-/')"
else fail cu-tigervnc-window "frames seen:${frames:- none}; last: $($PY "$TOP/tests/cu.py" --xwd "$T/tiger$i.xwd")"; fi
if grep -q "continuous updates on in 1024x768+0+0" "$SRV_LOG" &&
    grep -q "Enabling continuous updates" "$T/tigervnc.log"; then ok cu-tigervnc-enabled-continuous-updates
else fail cu-tigervnc-enabled-continuous-updates "$(grep -i continuous "$SRV_LOG" "$T/tigervnc.log" | head -n 3 | tr '\n' ' ')"; fi
kill $vpid 2>/dev/null; wait $vpid 2>/dev/null
for _ in $(seq 1 30); do grep -q '^vncsasl: paced ' "$SRV_LOG" && break; sleep 0.1; done
line=$(grep '^vncsasl: paced ' "$SRV_LOG" | tail -n 1)
up=$(echo "$line" | sed -n 's/.* updates=\([0-9]*\).*/\1/p')
sent=$(echo "$line" | sed -n 's/.* fences=\([0-9]*\).*/\1/p')
ans=$(echo "$line" | sed -n 's/.* answered=\([0-9]*\).*/\1/p')
if [ "${up:-0}" -ge 10 ] && [ "${ans:-0}" -ge $((${sent:-0} - 2)) ] && [ "${ans:-0}" -ge 20 ]; then
	ok "cu-tigervnc-paced-$up-updates-$ans-of-$sent-fences-answered"
else fail cu-tigervnc-paced "server says: ${line:-nothing}"; fi
stop_server
