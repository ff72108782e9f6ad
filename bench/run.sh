#!/bin/bash
# bench/run.sh - make bench: vncsasl against x11vnc on the same X display.
#
# Starts Xvfb (1280x800x24) with bench/workload drawing one scene at a
# time (static, cells, full; see workload.c), and serves it with vncsasl
# (FB=x11) and with x11vnc in turn - one server at a time, so neither
# takes CPU from the other.  bench/bclient drives each server with 1, 4
# and 16 viewers asking for Raw or ZRLE (no authentication, continuous
# incremental requests) and measures what bclient.c says.  Every case is
# run RUNS times against a freshly started server; the table shows
# medians and the ratio vncsasl/x11vnc.  Then vncsasl with FB=dummy (no X
# server at all) shows the cost of the server itself.
#
# Environment: BENCH_SECS (measurement window, default 2), BENCH_RUNS
# (default 3), BENCH_PORT (first TCP port, default 37900), BENCH_SCENES
# (default "static cells full").  Results go to
# bench/out/ (results.txt, table.md, logs).  About 8 minutes.
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$(pwd)
OUT=$TOP/bench/out
SECS=${BENCH_SECS:-2}
RUNS=${BENCH_RUNS:-3}
WARM=3			# at most this long for every viewer's first picture
port=${BENCH_PORT:-37900}
W=1280 H=800 FPS=30
mkdir -p "$OUT"
rm -f "$OUT"/results.txt "$OUT"/*.log

sh tests/deps.sh bench || exit 1
echo "bench: building" >&2
make -s FB=dummy vncsasl >/dev/null || { echo "bench: make failed" >&2; exit 1; }
cp vncsasl "$OUT/vncsasl-dummy"
make -s vncsasl-x11 >/dev/null || { echo "bench: make vncsasl-x11 failed" >&2; exit 1; }
cc -std=gnu99 -O2 -Wall -o "$OUT/workload" bench/workload.c \
    $(pkg-config --cflags --libs x11 xext) || exit 1
cc -std=c99 -O2 -Wall -o "$OUT/bclient" bench/bclient.c || exit 1

PIDS=
# end PID...: TERM, up to 5 s to go, then KILL; never waits unbounded
end() {
	local p i alive
	for p in "$@"; do kill "$p" 2>/dev/null; done
	for i in $(seq 1 50); do
		alive=
		for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	for p in "$@"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
}
cleanup() {
	end $PIDS
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# listening PORT: is a TCP socket listening on PORT? (from /proc: no tools)
listening() {
	local hex
	hex=$(printf '%04X' "$1")
	grep -q ":$hex 00000000:0000 0A" /proc/net/tcp 2>/dev/null
}

# next_port: advance $port to one no socket uses (other benchmarks, or
# connections of the last server still in TIME_WAIT)
next_port() {
	local i
	for i in $(seq 1 200); do
		grep -q ":$(printf '%04X' $port) " /proc/net/tcp /proc/net/tcp6 \
		    2>/dev/null || return 0
		port=$((port + 1))
	done
}

# wait_for PID PORT LOG: the server listens within 10 s, or give up
wait_for() {
	local i
	for i in $(seq 1 100); do
		listening "$2" && return 0
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench: server did not start: $(tail -n 2 "$3")" >&2
	return 1
}

# a display nobody uses
for d in $(seq 40 99); do
	[ -e /tmp/.X11-unix/X$d ] || [ -e /tmp/.X$d-lock ] || break
done
Xvfb :$d -screen 0 ${W}x${H}x24 -nolisten tcp >"$OUT/xvfb.log" 2>&1 &
XPID=$!
PIDS="$PIDS $XPID"
for i in $(seq 1 100); do
	[ -e /tmp/.X11-unix/X$d ] && break
	sleep 0.1
done
[ -e /tmp/.X11-unix/X$d ] || { echo "bench: Xvfb :$d did not start" >&2; exit 1; }
echo "bench: Xvfb :$d ${W}x${H}, $(nproc) CPUs, $(x11vnc -version 2>/dev/null | head -n 1)" >&2

# Does this tree have the real X11 source, or its placeholder?
HAVE_X11=1
next_port
./vncsasl-x11 -s none -l 127.0.0.1 -p $port -x :$d >"$OUT/probe.log" 2>&1 &
probe=$!
if ! wait_for $probe $port "$OUT/probe.log"; then
	HAVE_X11=0
	echo "bench: vncsasl-x11 cannot serve :$d ($(tail -n 1 "$OUT/probe.log")): x11 rows skipped" >&2
fi
end $probe
port=$((port + 1))

# start SERVER: sets SPID (and PORT); SERVER is vncsasl, x11vnc, or
# dummy:ARG for vncsasl FB=dummy -x ARG
start() {
	local log
	next_port
	log="$OUT/${1%%:*}-$port.log"
	case $1 in
	vncsasl)
		./vncsasl-x11 -s none -l 127.0.0.1 -p $port -x :$d 2>"$log" & ;;
	x11vnc)
		# its own session: when killed, x11vnc signals its process
		# group, which would otherwise be this script
		setsid x11vnc -display :$d -rfbport $port -localhost -nopw \
		    -shared -forever -quiet -norc >"$log" 2>&1 & ;;
	dummy:*)
		"$OUT/vncsasl-dummy" -s none -l 127.0.0.1 -p $port \
		    -x "${1#dummy:}" 2>"$log" & ;;
	esac
	SPID=$!
	PORT=$port
	port=$((port + 1))
	wait_for $SPID $PORT "$log"
}

stop() {
	end "$SPID"
}

# measure LABEL SERVER ENC N
measure() {
	local label=$1 srv=$2 enc=$3 n=$4 r line
	start "$srv" || { echo "$label srv=${srv%%:*} enc=$enc n=$n failed=1" >>"$OUT/results.txt"; return; }
	for r in $(seq 1 "$RUNS"); do
		if line=$(timeout 60 "$OUT/bclient" -p $PORT -e $enc -n $n -w $WARM \
		    -t "$SECS" -P $SPID -X $XPID 2>&1); then
			echo "$label srv=${srv%%:*} run=$r $line" >>"$OUT/results.txt"
		else
			echo "$label srv=${srv%%:*} enc=$enc n=$n run=$r failed=1 $line" >>"$OUT/results.txt"
		fi
	done
	stop
	printf '.' >&2
}

t0=$(date +%s)
for scene in ${BENCH_SCENES:-static cells full}; do
	"$OUT/workload" -d :$d -s $scene -r $FPS -t 900 >"$OUT/workload.log" 2>&1 &
	wpid=$!
	PIDS="$PIDS $wpid"
	sleep 1
	printf 'bench: %s ' $scene >&2
	for srv in vncsasl x11vnc; do
		[ $srv = vncsasl ] && [ $HAVE_X11 = 0 ] && continue
		for enc in raw zrle; do
			for n in 1 4 16; do
				measure "x11 scene=$scene" $srv $enc $n
			done
		done
	done
	end $wpid
	echo >&2
done

# the server alone: FB=dummy, a still picture and the moving one
printf 'bench: dummy ' >&2
for scene in static cells; do
	arg=${W}x${H}@0
	[ $scene = cells ] && arg=${W}x${H}@$FPS
	for enc in raw zrle; do
		for n in 1 4 16; do
			XPID=0 measure "dummy scene=$scene" dummy:$arg $enc $n
		done
	done
done
echo >&2
echo "bench: $(( $(date +%s) - t0 )) s of measurements" >&2

python3 bench/table.py "$OUT/results.txt" "$HAVE_X11" | tee "$OUT/table.md"
