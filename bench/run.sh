#!/bin/bash
# bench/run.sh - make bench: vncsasl, x11vnc and TigerVNC's x0vncserver
# serving one X display, measured by bench/bclient over links of several
# speeds, all inside a private network namespace.
#
# The script makes a network namespace (ip netns add), brings its
# loopback up and runs itself inside it; everything (Xvfb, workload,
# servers, relay, bench clients) lives there on 127.0.0.1, and the
# namespace and every process in it are removed at the end, also on
# failure or Ctrl-C.  Links, set on the namespace's lo between cases:
#
#   loopback      no shaping (MTU 65536)
#   50mbit        tc tbf rate 50mbit burst 64kbit latency 50ms, MTU 1500
#   10mbit        the same at 10mbit
#   50mbit-rtt40  50mbit, and the viewer connects through bench/relay,
#                 which delays each direction by 20 ms (netem is not
#                 available on every kernel; tbf is)
#
# (tbf drops every packet larger than its bucket, and lo's 64 KiB MTU is
# larger than 64 kbit, so shaped links use a 1500-byte MTU, as real ones.)
#
# For each screen size, Xvfb runs with bench/workload drawing one scene at
# 30 frames/s (full: every pixel changes; scroll: a page of text
# scrolling; cells: small cells over a still desktop).  Each server in
# turn serves it (one at a time, never two measured together), and for
# each link, bench/bclient connects one viewer with the encodings and
# request pattern of each real viewer profile (gtk: gtk-vnc, lvc:
# libvncclient, tiger: TigerVNC with ContinuousUpdates + Fence, zrle: ZRLE
# alone; bclient.c has them from the viewers' sources), RUNS times, each
# a fresh connection measured over SECS seconds after its first full
# picture.  On loopback at MULTI_SIZE, 4 and 16 viewers too.  Then
# bench/table.py prints the tables and the targets of issue 13.
#
# Environment (defaults in brackets):
#   BENCH_QUICK=1     a subset in a few minutes: 1920x1080, full and cells,
#                     loopback, 50mbit and 10mbit, gtk lvc tiger, 1 run
#   BENCH_SIZES       [1280x800 1920x1080]
#   BENCH_SCENES      [full scroll cells]
#   BENCH_LINKS       [loopback 50mbit 10mbit 50mbit-rtt40]
#   BENCH_PROFILES    [gtk lvc tiger zrle]
#   BENCH_SERVERS     [vncsasl x11vnc x0vncserver]
#   BENCH_RTT_SIZES   [1920x1080] sizes measured on 50mbit-rtt40
#   BENCH_VIEWERS     [4 16] (loopback, MULTI_SIZE, MULTI_PROFILES,
#                     MULTI_SCENES)
#   BENCH_MULTI_SIZE  [1280x800]    BENCH_MULTI_PROFILES [zrle gtk]
#   BENCH_MULTI_SCENES [full cells]
#   BENCH_RUNS [3]    BENCH_SECS [1.5] window, BENCH_LOOP_SECS [1] on
#                     loopback, BENCH_SLOW_SECS [2] on 10mbit
#   BENCH_PORT [37900]    BENCH_LIMIT [4500] seconds for all of it
# About 30 minutes on 2 cores (BENCH_QUICK: 2).
# Results: bench/out/results.txt (one line per run), table.md, logs.
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$(pwd)
OUT=$TOP/bench/out
FPS=30

if [ -n "${BENCH_QUICK:-}" ]; then
	: "${BENCH_SIZES:=1920x1080}" "${BENCH_SCENES:=full cells}"
	: "${BENCH_LINKS:=loopback 50mbit 10mbit}" "${BENCH_PROFILES:=gtk lvc tiger}"
	: "${BENCH_RUNS:=1}" "${BENCH_VIEWERS:=}"
fi
RTT_SIZES=${BENCH_RTT_SIZES:-1920x1080}
MULTI_SCENES=${BENCH_MULTI_SCENES:-full cells}
SLOW_SECS=${BENCH_SLOW_SECS:-2}
LOOP_SECS=${BENCH_LOOP_SECS:-1}
SIZES=${BENCH_SIZES:-1280x800 1920x1080}
SCENES=${BENCH_SCENES:-full scroll cells}
LINKS=${BENCH_LINKS:-loopback 50mbit 10mbit 50mbit-rtt40}
PROFILES=${BENCH_PROFILES:-gtk lvc tiger zrle}
SERVERS=${BENCH_SERVERS:-vncsasl x11vnc x0vncserver}
VIEWERS=${BENCH_VIEWERS-4 16}
MULTI_SIZE=${BENCH_MULTI_SIZE:-1280x800}
MULTI_PROFILES=${BENCH_MULTI_PROFILES:-zrle gtk}
RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECS:-1.5}
LIMIT=${BENCH_LIMIT:-4500}
export BENCH_SIZES=$SIZES BENCH_SCENES=$SCENES BENCH_LINKS=$LINKS \
    BENCH_PROFILES=$PROFILES BENCH_SERVERS=$SERVERS BENCH_VIEWERS=$VIEWERS \
    BENCH_MULTI_SIZE=$MULTI_SIZE BENCH_MULTI_PROFILES=$MULTI_PROFILES \
    BENCH_RUNS=$RUNS BENCH_SECS=$SECS BENCH_RTT_SIZES=$RTT_SIZES \
    BENCH_MULTI_SCENES=$MULTI_SCENES BENCH_SLOW_SECS=$SLOW_SECS \
    BENCH_LOOP_SECS=$LOOP_SECS

# end PID...: TERM, up to 5 s to go, then KILL; never waits unbounded
end() {
	local p alive
	[ $# -eq 0 ] && return 0
	for p in "$@"; do kill "$p" 2>/dev/null; done
	for _ in $(seq 1 50); do
		alive=
		for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	for p in "$@"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	return 0
}

# ---------------------------------------------------------------- outside
if [ "${1:-}" != --inside ]; then
	mkdir -p "$OUT"
	rm -f "$OUT"/results.txt "$OUT"/*.log "$OUT"/*.sock "$OUT"/table.md
	sh tests/deps.sh bench || exit 1
	echo "bench: building" >&2
	make -s vncsasl-x11 >/dev/null ||
	    { echo "bench: make vncsasl-x11 failed" >&2; exit 1; }
	cc -std=gnu99 -O2 -Wall -o "$OUT/workload" bench/workload.c \
	    $(pkg-config --cflags --libs x11 xext) -lm &&
	    cc -std=c99 -O2 -Wall -o "$OUT/bclient" bench/bclient.c &&
	    cc -std=c99 -O2 -Wall -o "$OUT/relay" bench/relay.c ||
	    { echo "bench: building the bench tools failed" >&2; exit 1; }

	# namespaces a killed run left behind (its script is gone, and so
	# is every process in it)
	for ns in $(ip netns list 2>/dev/null | sed -n 's/^\(vncbench-[0-9]*\).*/\1/p'); do
		kill -0 "${ns#vncbench-}" 2>/dev/null && continue
		if [ -z "$(ip netns pids "$ns" 2>/dev/null)" ]; then
			ip netns del "$ns"
		else
			echo "bench: $ns is left from a killed run, with processes" \
			    "in it: $(ip netns pids "$ns" | tr '\n' ' ')" >&2
		fi
	done

	NS=vncbench-$$
	INNER=
	ns_cleanup() {
		local pids
		trap - EXIT INT TERM
		[ -n "$INNER" ] && end "$INNER"
		pids=$(ip netns pids "$NS" 2>/dev/null)
		# shellcheck disable=SC2086
		[ -n "$pids" ] && end $pids
		ip netns del "$NS" 2>/dev/null
	}
	t0=$(date +%s)
	# what else the machine was doing: the table says so
	echo "# cpus=$(nproc) load_before=$(cut -d' ' -f1 /proc/loadavg)" \
	    "date=$(date -u +%Y-%m-%dT%H:%MZ)" >"$OUT/results.txt"
	if [ "$(id -u)" -eq 0 ] && ip netns add "$NS" 2>/dev/null; then
		trap ns_cleanup EXIT
		trap 'exit 130' INT
		trap 'exit 143' TERM
		ip netns exec "$NS" ip link set lo up || exit 1
		timeout -s TERM "$LIMIT" ip netns exec "$NS" bash "$0" --inside &
		INNER=$!
		wait "$INNER"
		rc=$?
		INNER=
		ns_cleanup
	else
		echo "bench: cannot make a network namespace (needs root and" \
		    "iproute2): loopback only, in this one" >&2
		BENCH_LINKS=loopback timeout -s TERM "$LIMIT" bash "$0" --inside
		rc=$?
	fi
	echo "bench: $(( $(date +%s) - t0 )) s" >&2
	echo "# seconds=$(( $(date +%s) - t0 ))" >>"$OUT/results.txt"
	grep -q '^size=' "$OUT/results.txt" ||
	    { echo "bench: no results" >&2; exit 1; }
	python3 bench/table.py "$OUT/results.txt" | tee "$OUT/table.md"
	exit "$rc"
fi

# ----------------------------------------------------------------- inside
port=${BENCH_PORT:-37900}
PIDS=
XPID=0
cleanup() {
	# shellcheck disable=SC2086
	end $PIDS
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# listening PORT: is a TCP socket listening on PORT? (this namespace's)
listening() {
	grep -q ":$(printf '%04X' "$1") 00000000:0000 0A" /proc/net/tcp \
	    2>/dev/null
}

# next_port: advance $port to one no socket uses (TIME_WAIT of the last)
next_port() {
	for _ in $(seq 1 200); do
		grep -q ":$(printf '%04X' $port) " /proc/net/tcp /proc/net/tcp6 \
		    2>/dev/null || return 0
		port=$((port + 1))
	done
}

# wait_for PID PORT LOG: the server listens within 10 s, or give up
wait_for() {
	for _ in $(seq 1 100); do
		listening "$2" && return 0
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench: server did not start: $(tail -n 2 "$3")" >&2
	return 1
}

# drop PID from PIDS once it is ended
forget() {
	PIDS=$(echo " $PIDS " | sed "s/ $1 / /")
}

# set_link LINK: shape this namespace's loopback
set_link() {
	case $1 in
	loopback)
		tc qdisc del dev lo root 2>/dev/null
		ip link set lo mtu 65536 ;;
	50mbit|50mbit-rtt40|10mbit)
		ip link set lo mtu 1500 &&
		    tc qdisc replace dev lo root tbf rate "${1%%mbit*}mbit" \
		    burst 64kbit latency 50ms ;;
	*)
		echo "bench: unknown link $1" >&2; return 1 ;;
	esac
}

# warm-up: how long a first picture may take on each link
warm_for() {
	case $1 in
	loopback) echo 5 ;;
	10mbit) echo 15 ;;
	*) echo 10 ;;
	esac
}

# start_xvfb WxH: sets DISP.  Xvfb picks a free display number (lock files
# are system-wide) and listens only on its abstract socket, which belongs
# to this network namespace: a client elsewhere that guesses the number
# (/tmp/.X11-unix is shared by every namespace) cannot draw on our screen.
start_xvfb() {
	local d=
	rm -f "$OUT/xvfb.fd"
	Xvfb -displayfd 5 -screen 0 "$1"x24 -nolisten tcp -nolisten unix \
	    5>"$OUT/xvfb.fd" >"$OUT/xvfb.log" 2>&1 &
	XPID=$!
	PIDS="$PIDS $XPID"
	for _ in $(seq 1 100); do
		d=$(cat "$OUT/xvfb.fd" 2>/dev/null)
		[ -n "$d" ] && break
		sleep 0.1
	done
	[ -n "$d" ] || { echo "bench: Xvfb did not start:" \
	    "$(tail -n 2 "$OUT/xvfb.log")" >&2; exit 1; }
	DISP=:$d
}

# changing: does the screen change (the workload draws)?  Two pictures
# of the root window a fifth of a second apart must differ.
changing() {
	local a b
	a=$(xwd -root -display $DISP -silent 2>/dev/null | md5sum)
	sleep 0.2
	b=$(xwd -root -display $DISP -silent 2>/dev/null | md5sum)
	[ "$a" != "$b" ]
}

# start SERVER: sets SPID and PORT
start_server() {
	local log
	next_port
	log="$OUT/$1-$port.log"
	case $1 in
	vncsasl)
		./vncsasl-x11 -s none -l 127.0.0.1 -p $port -x $DISP 2>"$log" & ;;
	x11vnc)
		# its own session: when killed, x11vnc signals its process
		# group, which would otherwise be this script
		setsid x11vnc -display $DISP -rfbport $port -localhost -nopw \
		    -shared -forever -quiet -norc >"$log" 2>&1 & ;;
	x0vncserver)
		# the binary, not the x0vncserver wrapper (a Perl script that
		# starts it in the background)
		X0tigervnc -display $DISP -rfbport $port -localhost \
		    -SecurityTypes None -AlwaysShared >"$log" 2>&1 & ;;
	esac
	SPID=$!
	PORT=$port
	port=$((port + 1))
	PIDS="$PIDS $SPID"
	wait_for $SPID $PORT "$log"
}

# measure TAG N PROFILE: RUNS runs of bclient, one line each
measure() {
	local tag="$1 prof=$3 n=$2" n=$2 prof=$3 r line to warm secs=$SECS
	warm=$(warm_for "$link")
	[ "$link" = 10mbit ] && secs=$SLOW_SECS
	[ "$link" = loopback ] && secs=$LOOP_SECS
	to=$((warm + ${secs%.*} + 30))
	for r in $(seq 1 "$RUNS"); do
		if [ "$link" = 50mbit-rtt40 ]; then
			set -- -U "$RELAY_SOCK"
		else
			set -- -p "$PORT"
		fi
		if line=$(timeout $to "$OUT/bclient" "$@" -e "$prof" -n "$n" \
		    -w "$warm" -t "$secs" -P "$SPID" -X "$XPID" 2>&1); then
			echo "$tag run=$r $line" >>"$OUT/results.txt"
			printf '.' >&2
		else
			echo "$tag run=$r failed=1 why=$(echo "$line" |
			    tail -n 1 | tr ' =' '_:')" >>"$OUT/results.txt"
			printf 'x' >&2
			kill -0 "$SPID" 2>/dev/null || return 1
		fi
	done
}

command -v X0tigervnc >/dev/null 2>&1 ||
    SERVERS=$(echo " $SERVERS " | sed 's/ x0vncserver / /')
command -v x11vnc >/dev/null 2>&1 ||
    SERVERS=$(echo " $SERVERS " | sed 's/ x11vnc / /')
echo "bench: $(nproc) CPUs; $(x11vnc -version 2>/dev/null | head -n 1);" \
    "$(X0tigervnc -version 2>&1 | sed -n 's/^TigerVNC Server version \([^,]*\).*/x0vncserver \1/p')" >&2
echo "bench: sizes: $SIZES; scenes: $SCENES; links: $LINKS; profiles:" \
    "$PROFILES; servers: $SERVERS; $RUNS runs of $SECS s ($LOOP_SECS s on" \
    "loopback, $SLOW_SECS s on 10mbit)" >&2

for size in $SIZES; do
	start_xvfb "$size"
	for scene in $SCENES; do
		wlog=$OUT/workload-$size-$scene.log
		"$OUT/workload" -d $DISP -s "$scene" -r $FPS -t 3600 \
		    >"$wlog" 2>&1 &
		wpid=$!
		PIDS="$PIDS $wpid"
		sleep 1
		for srv in $SERVERS; do
			printf 'bench: %s %s %-11s ' "$size" "$scene" "$srv" >&2
			tag="size=$size scene=$scene srv=$srv"
			if ! kill -0 $wpid 2>/dev/null || ! changing; then
				echo "the screen does not change: workload" \
				    "$(ps -o stat=,wchan= -p $wpid 2>/dev/null ||
				    echo gone), $(tail -n 2 "$wlog" | tr '\n' ' ')" >&2
				echo "$tag link=- prof=- n=1 run=1 failed=1 why=workload" \
				    >>"$OUT/results.txt"
				continue
			fi
			if ! start_server "$srv"; then
				echo "$tag link=- prof=- n=1 run=1 failed=1 why=start" \
				    >>"$OUT/results.txt"
				echo >&2
				continue
			fi
			for link in $LINKS; do
				[ "$link" = 50mbit-rtt40 ] &&
				    ! echo " $RTT_SIZES " | grep -q " $size " && continue
				set_link "$link" || continue
				RELAY=
				if [ "$link" = 50mbit-rtt40 ]; then
					RELAY_SOCK=$OUT/relay-$PORT.sock
					"$OUT/relay" -l "$RELAY_SOCK" -p "$PORT" -d 20 \
					    -t 3600 2>"$OUT/relay.log" &
					RELAY=$!
					PIDS="$PIDS $RELAY"
					for _ in $(seq 1 50); do
						[ -S "$RELAY_SOCK" ] && break
						sleep 0.1
					done
				fi
				for prof in $PROFILES; do
					measure "$tag link=$link" 1 "$prof" || break
				done
				if [ "$link" = loopback ] && [ "$size" = "$MULTI_SIZE" ] &&
				    echo " $MULTI_SCENES " | grep -q " $scene "; then
					for n in $VIEWERS; do
						for prof in $MULTI_PROFILES; do
							measure "$tag link=$link" "$n" \
							    "$prof" || break
						done
					done
				fi
				[ -n "$RELAY" ] && { end "$RELAY"; forget "$RELAY"; }
				printf ' ' >&2
			done
			set_link loopback
			end "$SPID"
			forget "$SPID"
			echo >&2
		done
		end "$wpid"
		forget "$wpid"
	done
	end "$XPID"
	forget "$XPID"
done
