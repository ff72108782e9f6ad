#!/bin/bash
# bench/size.sh - what vncsasl costs: binary size (as built and stripped),
# shared libraries loaded, and resident memory (VmRSS) with 0, 1 and 16
# viewers connected, for the dynamic build (./vncsasl, FB=dummy) and the
# static one (make static -> ./vncsasl-static).
#
#   bench/size.sh [PORT]        (default 15990; loopback only)
#
# The server runs the default dummy screen (1024x768, 10 frames/s) and
# offers TLSSASL with SCRAM-SHA-256.  Each viewer is a stdlib Python client
# (tests/revlisten.py's viewer: anonymous TLS 1.2, SCRAM-SHA-256, one full
# 32 bpp frame checked by tests/dummyref) that then sits idle; RSS is read
# from /proc/PID/status once they all have their frame.  Prints a Markdown
# table.  Every wait is bounded.
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$(pwd)
PORT=${1:-15990}
PY=/usr/bin/python3
T=$(mktemp -d)
SRV=
HOLD=
cleanup() {
	[ -n "$HOLD" ] && kill "$HOLD" 2>/dev/null
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

make -s FB=dummy vncsasl tests/dummyref >/dev/null || { echo "size.sh: build failed" >&2; exit 1; }
make -s static 2>"$T/static.err" >/dev/null ||
    { echo "size.sh: make static failed:" >&2; grep -v 'statically linked\|in function' "$T/static.err" >&2; exit 1; }
printf 'secret\n' | ./vncsasl -k "$T/pw" bench 2>/dev/null

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# clients N: connect N idle viewers (each with its first full frame);
# they stay connected until killed.  Sets HOLD.
clients() {
	$PY - "$PORT" "$1" >"$T/hold.out" 2>&1 <<'PYEOF' &
import os, socket, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
import revlisten
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(20)
    c, _ = revlisten.viewer(s, b"bench", b"secret", None)
    held.append(c)
print("ready %d" % len(held), flush=True)
time.sleep(120)              # killed long before
PYEOF
	HOLD=$!
	for _ in $(seq 1 600); do
		grep -q '^ready' "$T/hold.out" && return 0
		kill -0 "$HOLD" 2>/dev/null || break
		sleep 0.1
	done
	echo "size.sh: clients did not connect: $(tail -n 2 "$T/hold.out")" >&2
	return 1
}

# measure BINARY: one table row
measure() {
	local bin=$1 name=$2 size stripped libs r0 r1 r16
	size=$(stat -c %s "$bin")
	strip -o "$T/stripped" "$bin"
	stripped=$(stat -c %s "$T/stripped")
	if ldd "$bin" >"$T/ldd" 2>/dev/null; then
		libs=$(grep -c '/' "$T/ldd")	# files: not linux-vdso
	else
		libs=0
	fi
	"$bin" -s tlssasl -m SCRAM-SHA-256 -P "$T/pw" -l 127.0.0.1 -p "$PORT" \
	    2>"$T/srv.log" &
	SRV=$!
	for _ in $(seq 1 100); do
		grep -q 'listening on' "$T/srv.log" && break
		sleep 0.1
	done
	sleep 0.5
	r0=$(rss $SRV)
	clients 1 || return 1
	sleep 1
	r1=$(rss $SRV)
	kill $HOLD; wait $HOLD 2>/dev/null; HOLD=
	sleep 0.5
	clients 16 || return 1
	sleep 1
	r16=$(rss $SRV)
	kill $HOLD; wait $HOLD 2>/dev/null; HOLD=
	kill $SRV; wait $SRV 2>/dev/null; SRV=
	printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$size" \
	    "$stripped" "$libs" "$r0" "$r1" "$r16"
}

echo "| build | binary (bytes) | stripped (bytes) | shared libraries | RSS 0 viewers (KiB) | RSS 1 viewer (KiB) | RSS 16 viewers (KiB) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
measure ./vncsasl "dynamic (\`make\`)" || exit 1
measure ./vncsasl-static "static (\`make static\`)" || exit 1
echo
echo "$(uname -sm), $(./vncsasl -V | sed -n 's/^tls: on (\(.*\)).*/\1/p'), $(./vncsasl -V | sed -n 's/^sasl: \([^:]*\):.*/\1/p'); dummy 1024x768@10; viewers: TLSSASL + SCRAM-SHA-256, idle after one full 32 bpp frame"
