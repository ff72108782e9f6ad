#!/bin/bash
# tests/cu-link.sh [SECS] - how fresh the picture is over a slow
# link: request/response, ContinuousUpdates paced by fence answers, and
# ContinuousUpdates without answers (queue pacing only: what a server
# without congestion control does).  Root: a private network namespace
# whose loopback is shaped by tbf (10 Mbit/s), and the same with 40 ms
# round trip added by tests/relay.py (20 ms each way; its bytes cross the
# shaped loopback twice, so tbf runs at 20 Mbit/s there).  Loopback
# addresses only; the namespace is removed at the end.  Not part of
# ./test.sh: it prints figures (tests/cu-link.py says what they mean).
set -u
cd "$(dirname "$0")/.." || exit 1
SECS=${1:-10} FPS=30 PORT=${PORT:-25100}
ns=cu-link-$$
ip netns add "$ns" || exit 1
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; ip netns del "$ns"' EXIT
ip -n "$ns" link set lo mtu 1500 up	# tbf drops packets over its burst
in_ns() { ip netns exec "$ns" "$@"; }
# big updates (Raw, 240 KB) and small ones (ZRLE, about 60 KB)
for run in "640x480 0 raw" "1024x768 16 zrle"; do
set -- $run
SIZE=$1 ENC=$2 ENAME=$3
for link in 10mbit 10mbit+40ms; do
	case $link in
	*+40ms) rate=20mbit port=$((PORT + 1)) ;;
	*) rate=10mbit port=$PORT ;;
	esac
	tc -n "$ns" qdisc replace dev lo root tbf rate $rate burst 64kbit latency 50ms
	echo "== $SIZE at $FPS frames/s, $ENAME, link $link (tbf on lo: $rate)"
	for mode in rr cu deaf; do
		t0=$(python3 -c 'import time; print(time.monotonic())')
		ip netns exec "$ns" ./vncsasl -s none -l 127.0.0.1 -p $PORT -x "$SIZE@$FPS" 2>/tmp/cu-link-$$.log &
		srv=$!
		relay=
		if [ $port != $PORT ]; then
			ip netns exec "$ns" python3 tests/relay.py $port $PORT 20 &
			relay=$!
		fi
		sleep 0.5
		in_ns timeout $((SECS + 30)) python3 tests/cu-link.py $port $mode "$SECS" "$t0" $FPS $ENC
		kill $srv $relay 2>/dev/null; wait $srv $relay 2>/dev/null
		grep -a '^vncsasl: paced' /tmp/cu-link-$$.log | sed 's/^/     /'
	done
done
done
rm -f /tmp/cu-link-$$.log
