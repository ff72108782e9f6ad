#!/bin/bash
# bench/verify.sh - is bench/bclient right?  Its counts against the
# servers' own: x0vncserver logs, per connection, the rectangles, pixels
# and bytes its EncodeManager sent; x11vnc (libvncserver's rfbPrintStats)
# the rectangles and bytes per encoding and their raw equivalent (12 +
# 4 bytes a pixel per rectangle).  bclient -c counts from the first byte,
# stops asking after SECS seconds, reads until the server is quiet and
# prints its totals; they must be the same, to the byte.  It also prints
# what the kernel says the connection received (TCP_INFO), which must equal
# what it parsed (so no byte went uncounted, for vncsasl too).
#
#   bench/verify.sh [PORT]      (default 23500; loopback; about 2 minutes)
#
# Each server serves an Xvfb (1280x800) showing bench/workload's full and
# cells scenes, to every profile and to single-encoding lists that reach
# the other parsers (Hextile, RRE, Zlib, ZRLE, Raw).  Prints one line per
# case: ok, or MISMATCH with both sides' figures; exit 1 on any mismatch.
set -u
cd "$(dirname "$0")/.." || exit 1
PORT=${1:-23500}
SECS=${SECS:-2}
T=$(mktemp -d)
PIDS=
# stop PID...: TERM, up to 3 s to go, then KILL
stop() {
	local p alive
	for p in "$@"; do kill "$p" 2>/dev/null; done
	for _ in $(seq 1 30); do
		alive=
		for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	for p in "$@"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	return 0
}
cleanup() {
	# shellcheck disable=SC2086
	stop $PIDS
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

make -s vncsasl-x11 >/dev/null || exit 1
cc -std=gnu99 -O2 -Wall -o "$T/workload" bench/workload.c \
    $(pkg-config --cflags --libs x11 xext) -lm &&
    cc -std=c99 -O2 -Wall -o "$T/bclient" bench/bclient.c || exit 1

# a display of our own, on its abstract socket only (see bench/run.sh)
Xvfb -displayfd 5 -screen 0 1280x800x24 -nolisten tcp -nolisten unix \
    5>"$T/xvfb.fd" >"$T/xvfb.log" 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 1 100); do
	d=$(cat "$T/xvfb.fd" 2>/dev/null)
	[ -n "$d" ] && break
	sleep 0.1
done
[ -n "$d" ] || { echo "verify: Xvfb did not start" >&2; exit 1; }

bad=0
# bclient_totals FILE: "rects pixels bytes" of the data rectangles
bclient_totals() {
	awk '/^check   / { r += $4; p += $(NF - 2); b += $NF }
	    END { printf "%.0f %.0f %.0f\n", r, p, b }' "$1"
}
# x0_totals LOG: the last connection's EncodeManager Total, in units
x0_totals() {
	awk '
	function num(v, u) {
		if (u == "KiB") return v * 1024
		if (u == "MiB") return v * 1048576
		if (u == "GiB") return v * 1073741824
		if (u ~ /^k/) return v * 1e3
		if (u ~ /^M/) return v * 1e6
		if (u ~ /^G/) return v * 1e9
		return v
	}
	/EncodeManager:   Total:/ { r = num($3, $4); p = num($5, $6);
		getline; b = num($2, $3) }
	END { printf "%.0f %.0f %.0f\n", r, p, b }' "$1"
}
# x11vnc_totals LOG: rects, pixels (from the raw equivalent), bytes of the
# data encodings in the last Transmit statistics
x11vnc_totals() {
	awk '
	/Statistics .*Transmit/ { r = raw = b = 0; on = 1; next }
	/Statistics .*Received/ { on = 0 }
	on && tolower($3) ~ /^(raw|copyrect|rre|corre|hextile|zlib|tight|zrle|zywrle|ultra|tightpng|zlibhex|trle)$/ {
		line = $0
		sub(/.*\| */, "", line)	# "bytes/ rawequiv (saved)"
		sub(/ *\(.*/, "", line)
		split(line, x, "/")
		r += $5; b += x[1]; raw += x[2]
	}
	END { printf "%.0f %.0f %.0f\n", r, (raw - 12 * r) / 4, b }' "$1"
}
# same A B [MASK]: "rects pixels bytes" equal, to the digits the server
# prints (x0vncserver: 4 for rectangles, 5 for pixels, 6 for bytes), for
# the figures MASK marks 1 (default 111)
same() {
	awk -v a="$1" -v b="$2" -v m="${3:-111}" 'BEGIN { split(a, x); split(b, y)
		tol[1] = 1e-3; tol[2] = 1e-4; tol[3] = 1e-5
		for (i = 1; i <= 3; i++) {
			if (substr(m, i, 1) != "1") continue
			d = x[i] - y[i]; if (d < 0) d = -d
			if (d > 0.5 + tol[i] * (y[i] < 0 ? -y[i] : y[i])) exit 1 }
		exit 0 }'
}

for scene in full cells; do
	"$T/workload" -d :$d -s $scene -t 600 >/dev/null 2>&1 &
	wpid=$!
	PIDS="$PIDS $wpid"
	sleep 1
	for srv in x0vncserver x11vnc vncsasl; do
		PORT=$((PORT + 1))
		log=$T/$srv-$PORT.log
		case $srv in
		x0vncserver)
			command -v X0tigervnc >/dev/null || continue
			X0tigervnc -display :$d -rfbport $PORT -localhost \
			    -SecurityTypes None -AlwaysShared >"$log" 2>&1 &
			lists="gtk tiger lvc zrle raw hextile:5 rre:2" ;;
		x11vnc)
			command -v x11vnc >/dev/null || continue
			# no -quiet: the statistics are what we compare
			setsid x11vnc -display :$d -rfbport $PORT -localhost -nopw \
			    -shared -forever -norc >"$log" 2>&1 &
			lists="gtk tiger lvc zrle raw hextile:5 zlib:6 rre:2" ;;
		vncsasl)
			./vncsasl-x11 -s none -l 127.0.0.1 -p $PORT -x :$d \
			    2>"$log" &
			lists="gtk lvc tiger zrle raw" ;;
		esac
		spid=$!
		PIDS="$PIDS $spid"
		for _ in $(seq 1 100); do
			grep -q ":$(printf '%04X' $PORT) 00000000:0000 0A" \
			    /proc/net/tcp && break
			sleep 0.1
		done
		sleep 0.5
		for l in $lists; do
			prof=${l%%:*}
			set -- -e "$prof"
			case $l in *:*) set -- -e zrle -E "${l#*:}" ;; esac
			if ! timeout 60 "$T/bclient" -c -p $PORT "$@" -t "$SECS" \
			    >"$T/out" 2>"$T/chk"; then
				echo "MISMATCH $scene $srv $l: bclient failed:" \
				    "$(tail -n 1 "$T/chk")"
				bad=1
				continue
			fi
			sleep 1.5	# the server logs the connection's end
			mine=$(bclient_totals "$T/chk")
			tcp=$(sed -n 's/.* \([0-9]*\) bytes parsed.*TCP says \([0-9]*\) received.*/\1 \2/p' \
			    "$T/chk")
			mask=111
			case $srv in
			x0vncserver) theirs=$(x0_totals "$log") ;;
			x11vnc) theirs=$(x11vnc_totals "$log")
				# libvncserver's statistics leave out Hextile's
				# colours, and its raw equivalent of ZRLE and Zlib
				# is not w*h*4 (rfbStatRecordEncodingSent calls)
				case $l in
				hextile*) mask=110 ;;
				zrle*|zlib*) mask=101 ;;
				esac ;;
			*) theirs= ;;
			esac
			set -- $tcp
			if [ $# -ne 2 ] || [ "$1" != "$2" ]; then
				echo "MISMATCH $scene $srv $l: parsed/TCP bytes: $tcp"
				bad=1
			elif [ -n "$theirs" ] && ! same "$mine" "$theirs" $mask; then
				echo "MISMATCH $scene $srv $l: rects pixels bytes:" \
				    "bclient $mine, server $theirs"
				bad=1
			else
				echo "ok $scene $srv $l: rects pixels bytes $mine${theirs:+ (server: $theirs, compared $mask)}; TCP ${tcp% *}; $(sed -n 's/.*\(used=.*\)/\1/p' "$T/out")"
			fi
		done
		stop $spid
	done
	stop $wpid
done
exit $bad
