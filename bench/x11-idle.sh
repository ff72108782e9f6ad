#!/bin/bash
# bench/x11-idle.sh - what sharing an idle X display costs: the CPU of the
# server process over SECS seconds (default 5) with one viewer connected
# that keeps an incremental update request pending, as real viewers do.
# A figure, not an assertion.  Starts and stops its own Xvfb (1280x800x24)
# with a patterned window from tests/x11-tool on it.
#
#   bench/x11-idle.sh            (env: SECS, PORT, VNCSASL)
#
# Cases: one viewer with the Cursor pseudo-encoding; one without it (the
# cursor is drawn into the picture, so the pointer is polled); no viewer
# while the screen changes 20 times a second (nothing to do: the server
# only grabs for viewers that wait); and x11vnc, if installed, for
# reference.  CPU is user+system time from /proc/PID/stat (utime+stime,
# clock ticks), or /proc/PID/schedstat (nanoseconds) where the kernel has
# it, sampled after a 1.5 s warm-up.
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$(pwd)
SECS=${SECS:-5}
PORT=${PORT:-25900}
VNCSASL=${VNCSASL:-$TOP/vncsasl-x11}
TOOL=$TOP/tests/x11-tool
RFB=$TOP/tests/x11-rfb
T=$(mktemp -d)
PIDS=

say() { echo "x11-idle: $*"; }
# stop PID: TERM, up to 3 s, then KILL
stop() {
	kill "$1" 2>/dev/null || return 0
	for _ in $(seq 1 30); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
cleanup() {
	local p
	exec 7>&- 2>/dev/null
	# clients first (x11vnc hangs on TERM once its display is gone)
	for p in $PIDS; do [ "$p" = "${XVFB:-}" ] || stop "$p"; done
	[ -n "${XVFB:-}" ] && stop "$XVFB"
	rm -rf "$T"
}
trap cleanup EXIT

for cmd in Xvfb xdpyinfo; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		say "skipped: $cmd not installed (sh tests/deps.sh bench)"
		exit 0
	fi
done
if ! make -s vncsasl-x11 tests/x11-tool tests/x11-rfb >"$T/build.log" 2>&1; then
	say "build failed: $(tail -n 3 "$T/build.log" | tr '\n' ' ')"
	exit 1
fi

# cpu_ns PID: CPU time used so far, in nanoseconds
cpu_ns() {
	if [ -r "/proc/$1/schedstat" ]; then
		cut -d' ' -f1 "/proc/$1/schedstat"
	else
		# fields after the parenthesised command name: utime is 14, stime 15
		sed 's/.*) //' "/proc/$1/stat" |
		    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f\n", ($12 + $13) * 1e9 / hz }'
	fi
}
# measure PID...: CPU% of each over the same SECS, after a warm-up
measure() {
	local p a=() b=() i=0 out=
	sleep 1.5
	for p in "$@"; do a+=("$(cpu_ns "$p")"); done
	sleep "$SECS"
	for p in "$@"; do b+=("$(cpu_ns "$p")"); done
	for p in "$@"; do
		out="$out${out:+ }$(awk -v a="${a[$i]}" -v b="${b[$i]}" -v s="$SECS" \
		    'BEGIN { printf "%.2f%%", (b - a) / (s * 1e7) }')"
		i=$((i + 1))
	done
	echo "$out"
}
# wait_log FILE: the server's readiness line (<= 10 s)
wait_log() {
	local i
	for i in $(seq 1 100); do
		grep -q 'listening on' "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

D=250
while [ -e "/tmp/.X$D-lock" ] || [ -e "/tmp/.X11-unix/X$D" ]; do D=$((D + 1)); done
export DISPLAY=:$D
Xvfb ":$D" -screen 0 1280x800x24 +extension RANDR -nolisten tcp -noreset \
    >"$T/xvfb.log" 2>&1 &
XVFB=$!
PIDS="$PIDS $XVFB"
for _ in $(seq 1 100); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done
mkfifo "$T/draw.fifo"
"$TOOL" draw 40 30 900 600 <"$T/draw.fifo" >"$T/draw.out" 2>&1 &
PIDS="$PIDS $!"
exec 7>"$T/draw.fifo"
for _ in $(seq 1 100); do grep -q ready "$T/draw.out" && break; sleep 0.1; done

"$VNCSASL" -s none -p "$PORT" -x ":$D" 2>"$T/srv.log" &
SRV=$!
PIDS="$PIDS $SRV"
if ! wait_log "$T/srv.log"; then
	say "server did not start: $(tail -n 2 "$T/srv.log" | tr '\n' ' ')"
	exit 1
fi
say "1280x800x24 Xvfb; CPU of the server process over $SECS s"

# viewer ARGS...: one viewer requesting updates for the whole measurement
viewer() {
	local port=$1
	shift
	timeout 60 "$RFB" -t 30 "$@" 127.0.0.1 "$port" sleep \
	    "$(awk -v s="$SECS" 'BEGIN { print (s + 3) * 1000 }')" \
	    >/dev/null 2>"$T/viewer.err" &
	VIEWER=$!
}

viewer "$PORT" -c
set -- $(measure "$SRV" "$XVFB")
say "vncsasl-x11, one viewer (Cursor encoding), idle:  $1 (Xvfb: $2)"
wait "$VIEWER"
viewer "$PORT"
say "vncsasl-x11, one viewer (cursor drawn in), idle:  $(measure "$SRV")"
wait "$VIEWER"

( n=$(awk -v s="$SECS" 'BEGIN { print int((s + 2) * 20) }')
  for i in $(seq 1 "$n"); do
	printf 'rect 100 100 64 64 %02x8040\n' $((i % 256)) >&7
	sleep 0.05
  done ) &
FEED=$!
say "vncsasl-x11, no viewer, screen changing 20/s:     $(measure "$SRV")"
wait "$FEED"

if command -v x11vnc >/dev/null 2>&1; then
	x11vnc -display ":$D" -rfbport "$((PORT + 1))" -localhost -nopw \
	    -shared -forever -quiet -norc >"$T/x11vnc.log" 2>&1 &
	X11VNC=$!
	PIDS="$PIDS $X11VNC"
	for _ in $(seq 1 100); do
		grep -q 'PORT=' "$T/x11vnc.log" 2>/dev/null && break
		sleep 0.1
	done
	viewer "$((PORT + 1))" -c
	say "x11vnc (reference), one viewer, idle:             $(measure "$X11VNC")"
	wait "$VIEWER"
else
	say "x11vnc not installed: no reference figure"
fi
