#!/bin/bash
# tests/t-x11.sh - the X11 source (fb-x11.c) sharing an Xvfb display that
# this script starts and stops.  Content is drawn by tests/x11-tool (a
# small X client: xsetroot does not change what Xvfb's root returns to a
# capture), received by tests/x11-rfb (a raw RFB viewer) and by the real
# viewers tests/lvc and tests/gvnc in raw mode, and compared with xwd.
# Keys typed through RFB KeyEvents reach an x11-tool window that records
# what XLookupString made of them, US and German (setxkbmap de) layouts;
# pointer and wheel, the clipboard both ways (capped, and by INCR), RandR
# resizes, the cursor as a pseudo-encoding and drawn into the picture.
# Every wait is bounded; helper programs run under timeout.
# ports: 3
. "$(dirname "$0")/lib.sh"

VNCSASL=${VNCSASL_X11:-$TOP/vncsasl-x11}	# VNCSASL_X11: e.g. a sanitizer build
TOOL=$TOP/tests/x11-tool
RFB=$TOP/tests/x11-rfb
XPIDS=

cleanup() {
	local p
	stop_server
	exec 7>&- 6>&- 2>/dev/null
	for p in $XPIDS; do kill "$p" 2>/dev/null; done
	for p in $XPIDS; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT

for cmd in Xvfb xdpyinfo setxkbmap xrandr xmodmap; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		skip x11-all "$cmd not installed (tests/deps.sh test)"
		exit 0
	fi
done
if ! make -s -C "$TOP" WERROR=1 vncsasl-x11 tests/x11-tool tests/x11-rfb \
    >"$T/build.log" 2>&1; then
	fail x11-build "$(tail -n 3 "$T/build.log" | tr '\n' ' ')"
	exit 0
fi

if ! xvfb "$T/xvfb.log" -screen 0 1280x800x24 +extension RANDR; then
	fail x11-xvfb "Xvfb did not start: $(tailof "$T/xvfb.log" 2)"
	exit 0
fi
D=$XD
export DISPLAY=:$D

# rfb ARGS...: tests/x11-rfb against our server; output in $T/rfb.out
rfb() {
	timeout -k 5 40 "$RFB" -t 15 127.0.0.1 "$PORT" "$@" >"$T/rfb.out" 2>&1
}
rfbc() {
	timeout -k 5 40 "$RFB" -c -t 15 127.0.0.1 "$PORT" "$@" >"$T/rfb.out" 2>&1
}
rfb_why() { tail -n 2 "$T/rfb.out" | tr '\n' ' '; }
# dump FILE: the screen as XWD, by xwd (x11-apps) or else by x11-tool
dump() {
	if [ "$HAVE_XWD" = 1 ]; then xwd -root -silent >"$1"
	else "$TOOL" xwd "$1"; fi
}
if [ "${X11_XWD:-}" != tool ] && command -v xwd >/dev/null 2>&1; then	# X11_XWD=tool: x11-tool's dump
	HAVE_XWD=1
else
	HAVE_XWD=0
	skip x11-xwd "xwd (x11-apps) not installed: pictures are compared with x11-tool's own XGetImage dump"
fi
# same_as_xwd NAME PPM: the picture equals an xwd dump of the display now
same_as_xwd() {
	local out
	dump "$T/$1.xwd" || { fail "$1" "xwd failed"; return; }
	if out=$("$TOOL" cmp "$T/$1.xwd" "$2" 2>&1); then ok "$1"
	else fail "$1" "viewer picture vs xwd: $out"; fi
}

# --- the display cannot be opened: message and exit status 1
out=$(timeout 10 "$VNCSASL" -s none -p "$((PORT + 1))" -x ":$((D + 300))" 2>&1)
rc=$?
if [ "$rc" -eq 1 ] && printf '%s' "$out" | grep -q "cannot open X display"; then
	ok x11-open-fail
else
	fail x11-open-fail "exit $rc: $(printf '%s' "$out" | tail -n 1)"
fi

# --- known content: a patterned window, fed drawing commands by a FIFO
mkfifo "$T/draw.fifo"
timeout 600 "$TOOL" draw 40 30 900 600 <"$T/draw.fifo" >"$T/draw.out" 2>&1 &
XPIDS="$XPIDS $!"
exec 7>"$T/draw.fifo"
if ! wait_for -xF ready "$T/draw.out"; then
	fail x11-draw "x11-tool draw: $(tail -n 1 "$T/draw.out")"
	exit 0
fi
# a window recording input, away from the drawing
timeout 600 "$TOOL" events 960 560 300 220 >>"$T/ev.out" 2>&1 &
XPIDS="$XPIDS $!"
if ! wait_for -xF ready "$T/ev.out"; then
	fail x11-events "x11-tool events: $(tail -n 1 "$T/ev.out")"
	exit 0
fi

if ! start_server x11 -s none -p "$PORT" -x ":$D"; then
	fail x11-start "$(tail -n 2 "$SRV_LOG" | tr '\n' ' ')"
	exit 0
fi

# --- pixels: raw viewer (Cursor encoding: no cursor in the picture)
if rfbc frame "$T/p1.ppm"; then same_as_xwd x11-pixels-rfb "$T/p1.ppm"
else fail x11-pixels-rfb "$(rfb_why)"; fi

# --- pixels: real viewers in raw mode, several encodings
for v in "lvc raw" "lvc zrle" "lvc hextile" "gvnc raw" "gvnc zrle"; do
	set -- $v
	name=x11-pixels-$1-$2
	if [ ! -x "$TOP/tests/$1" ] ||
	    ! "$TOP/tests/$1" -h 2>&1 | grep -q -- '-R '; then
		skip "$name" "tests/$1 has no raw mode (-R)"
		continue
	fi
	if out=$(timeout -k 5 40 "$TOP/tests/$1" -R -a none -e "$2,cursor" \
	    -t 20 -w "$T/$name.ppm" 127.0.0.1 "$PORT" 2>&1); then
		same_as_xwd "$name" "$T/$name.ppm"
	else
		fail "$name" "$(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
	fi
done

# --- damage: drawing shows up at the viewer (a large and a 3x2 change)
( sleep 1; echo "rect 100 100 200 120 ff0000" >&7; sleep 0.3
  echo "rect 500 300 3 2 00ff00" >&7 ) &
FEED=$!
if rfbc frame "$T/d0.ppm" wait-pixel 299 219 ff0000 wait-pixel 541 331 00ff00 \
    frame "$T/d1.ppm"; then same_as_xwd x11-damage "$T/d1.ppm"
else fail x11-damage "$(rfb_why)"; fi
wait "$FEED"

# --- cursor: the shape as a pseudo-encoding...
if rfbc ptr 600 400 0 sleep 300 cursor && grep -q '^cursor [1-9]' "$T/rfb.out"; then
	ok x11-cursor-shape
else
	fail x11-cursor-shape "$(rfb_why)"
fi
# ...and drawn into the picture, where the pointer is, for viewers without it
cursor_near() {	# NAME X Y: the picture differs from xwd only near (X,Y)
	local out
	dump "$T/$1.xwd"
	out=$("$TOOL" cmp "$T/$1.xwd" "$T/$1.ppm")
	set -- "$1" "$2" "$3" $(printf '%s' "$out" | tr ',-' '  ')
	# differ N X0 Y0 X1 Y1
	if [ "${4:-}" = differ ] && [ "$6" -ge $(($2 - 64)) ] &&
	    [ "$8" -le $(($2 + 64)) ] && [ "$7" -ge $(($3 - 64)) ] &&
	    [ "$9" -le $(($3 + 64)) ]; then
		ok "$1"
	else
		fail "$1" "want a cursor-sized difference near $2,$3: $out"
	fi
}
# with the pointer left at 600,400, xwd is taken just after the viewer
if rfb ptr 600 400 0 sleep 500 frame "$T/x11-cursor-drawn.ppm"; then
	cursor_near x11-cursor-drawn 600 400
else
	fail x11-cursor-drawn "$(rfb_why)"
fi
# it follows the pointer: nothing left at 600,400
if rfb ptr 600 400 0 sleep 300 frame "$T/x11-cursor-before.ppm" \
    ptr 700 500 0 sleep 500 frame "$T/x11-cursor-moved.ppm"; then
	cursor_near x11-cursor-moved 700 500
else
	fail x11-cursor-moved "$(rfb_why)"
fi

# typed LINE RFB-ARGS...: after the viewer's RFB-ARGS, the events window
# has read LINE (ended by Return)
typed() {
	local line=$1; shift
	: >"$T/ev.out"
	rfb "$@" && wait_for -xF "line $line" "$T/ev.out" && return 0
	echo "$(grep -a '^line' "$T/ev.out" | tail -n 1) $(rfb_why)"
	return 1
}
# --- keys, US layout: shifted symbols typed as keysyms alone
text='Hello, World! ~{}|:"<>? 1+1=2'
check x11-keys-us typed "$text" type "$text
" sleep 200
# the viewer holds Shift (as real viewers do) and sends a lowercase keysym
check x11-keys-held-shift typed aB1 down 0xffe1 type 'aB1
' up 0xffe1 sleep 200

# a viewer's auto-repeat (downs without ups) is not passed on: X repeats
# held keys itself, and both would double the rate
: >"$T/ev.out"
rep=$(for _ in $(seq 1 20); do printf 'down 0x62 '; done)
if rfb $rep up 0x62 key 0xff0d sleep 300 &&
    [ "$(grep -ac '^key 0x62 ' "$T/ev.out")" -eq 1 ]; then
	ok x11-keys-repeat
else
	fail x11-keys-repeat "$(grep -ac '^key 0x62 ' "$T/ev.out") presses of b for 20 downs in a row $(rfb_why)"
fi

# --- keys, German layout: AltGr (ISO_Level3_Shift) and shifted symbols
if setxkbmap de 2>"$T/xkb.err"; then
	text='@€{[]}\~|µ²³ !"§$%&/()=? äöüß ÄÖÜ yz YZ'
	check x11-keys-de typed "$text" type "$text
" sleep 200
else
	skip x11-keys-de "setxkbmap de: $(head -n 1 "$T/xkb.err")"
fi

# --- keysyms no key produces: bound to a spare keycode, then restored
check x11-keys-unbound typed '☺ŭ→' type '☺ŭ→
' sleep 3000
if xmodmap -pke | grep -qE 'U263A|U016D|U2192'; then
	fail x11-keys-spare-restored "still bound: $(xmodmap -pke | grep -E 'U263A|U016D|U2192' | tr '\n' ' ')"
else
	ok x11-keys-spare-restored
fi

# --- nothing stays pressed when a viewer goes away holding keys and a button
rfb ptr 1000 600 0 down 0xffe1 down 0xfe03 down 0xffe3 down 0x61 \
    ptr 1000 600 1 sleep 300
pressed=$(grep -ac 'button 1 press' "$T/ev.out")
for _ in $(seq 1 20); do
	q=$("$TOOL" query)
	printf '%s\n' "$q" | grep -qx 'keys 0' && break
	sleep 0.1
done
if [ "$pressed" -ge 1 ] && printf '%s\n' "$q" | grep -qx 'keys 0' &&
    printf '%s\n' "$q" | grep -q '^mods 0x0 ' &&
    printf '%s\n' "$q" | grep -q '^pointer 1000 600 0x0$'; then
	ok x11-release
else
	fail x11-release "after the viewer left: $(printf '%s' "$q" | tr '\n' ' ') (button presses seen: $pressed)"
fi

# --- pointer: moves, clicks, the wheel as buttons 4-7
: >"$T/ev.out"
if rfb ptr 1010 610 0 ptr 1011 612 1 ptr 1011 612 0 ptr 1100 700 4 \
    ptr 1100 700 0 ptr 1100 700 8 ptr 1100 700 0 ptr 1100 700 16 \
    ptr 1100 700 0 ptr 1100 700 32 ptr 1100 700 0 ptr 1100 700 64 \
    ptr 1100 700 0 sleep 300; then
	want="button 1 press 1011 612;button 1 release 1011 612;button 3 press 1100 700;button 3 release 1100 700;button 4 press 1100 700;button 4 release 1100 700;button 5 press 1100 700;button 5 release 1100 700;button 6 press 1100 700;button 6 release 1100 700;button 7 press 1100 700;button 7 release 1100 700;"
	for _ in $(seq 1 30); do
		got=$(grep -a '^button' "$T/ev.out" | tr '\n' ';')
		[ "$got" = "$want" ] && break
		sleep 0.1
	done
	q=$("$TOOL" query | grep '^pointer')
	if [ "$got" = "$want" ] && [ "$q" = "pointer 1100 700 0x0" ] &&
	    grep -aqx 'motion 1010 610' "$T/ev.out"; then
		ok x11-pointer
	else
		fail x11-pointer "events: $got; $q"
	fi
else
	fail x11-pointer "$(rfb_why)"
fi

# --- clipboard, viewer -> X: CLIPBOARD and PRIMARY, Latin-1 -> UTF-8
if rfb cut 'from the viewer: café ½' sleep 200; then
	c=$("$TOOL" clip-get CLIPBOARD 2>&1)
	p=$("$TOOL" clip-get PRIMARY 2>&1)
	if [ "$c" = 'from the viewer: café ½' ] && [ "$p" = "$c" ]; then
		ok x11-clip-to-x
	else
		fail x11-clip-to-x "CLIPBOARD '$c' PRIMARY '$p'"
	fi
else
	fail x11-clip-to-x "$(rfb_why)"
fi
# a full 1 MiB of Latin-1 (the server's limit) arrives whole
head -c 1048576 /dev/zero | tr '\0' '\351' >"$T/l1.txt"
if rfb cut "@$T/l1.txt" sleep 300 &&
    [ "$("$TOOL" clip-get CLIPBOARD | wc -c)" -eq 2097152 ]; then
	ok x11-clip-to-x-1mib
else
	fail x11-clip-to-x-1mib "$(rfb_why) X has $("$TOOL" clip-get CLIPBOARD | wc -c) bytes"
fi

# --- clipboard, X -> viewer: UTF-8 -> Latin-1 ('?' for what it cannot hold)
# owner ARGS...: an X client owning a selection from 1 s on (OWNER: its pid)
owner() {
	( sleep 1; exec timeout 20 "$TOOL" clip-set "$@" 15 ) >"$T/cs.out" 2>&1 &
	OWNER=$!
}
owner_done() { kill "$OWNER" 2>/dev/null; wait "$OWNER" 2>/dev/null; }
owner CLIPBOARD 'from X: naïve € x'
if rfb wait-cut 'from X: naïve ? x'; then ok x11-clip-from-x
else fail x11-clip-from-x "$(rfb_why)"; fi
owner_done
# a viewer echoing it back does not take the selection from its owner
owner CLIPBOARD 'echo me'
if rfb wait-cut 'echo me' cut 'echo me' sleep 300 && sleep 0.2 &&
    ! grep -q lost "$T/cs.out" && kill -0 "$OWNER" 2>/dev/null; then
	ok x11-clip-echo
else
	fail x11-clip-echo "$(rfb_why) owner: $(tr '\n' ' ' <"$T/cs.out")"
fi
owner_done
owner PRIMARY 'primary text'
if rfb wait-cut 'primary text'; then ok x11-clip-from-x-primary
else fail x11-clip-from-x-primary "$(rfb_why)"; fi
owner_done
# capped at 1 MiB
head -c 1500000 /dev/zero | tr '\0' a >"$T/big.txt"
owner CLIPBOARD "@$T/big.txt"
if rfb wait-cut-len 1048576; then ok x11-clip-from-x-capped
else fail x11-clip-from-x-capped "$(rfb_why)"; fi
owner_done
# an INCR transfer (the owner sends 64 KiB chunks)
printf 'é%.0s' $(seq 1 100000) >"$T/incr.txt"
owner -i CLIPBOARD "@$T/incr.txt"
if rfb wait-cut-len 100000 && sleep 0.2 && grep -q 'by INCR' "$T/cs.out"; then
	ok x11-clip-from-x-incr
else
	fail x11-clip-from-x-incr "$(rfb_why) $(tail -n 1 "$T/cs.out")"
fi
owner_done

# --- resize with xrandr (Xvfb has one mode: x11-tool adds 1024x768 first)
# xr MODE: switch the screen to MODE in 1 s (XR: the pid)
xr() {
	( sleep 1; exec xrandr --output screen --mode "$1" ) >"$T/xrandr.out" 2>&1 &
	XR=$!
}
# resized NAME MODE: after xrandr's switch to MODE the raw viewer gets the
# new size and a picture equal to xwd's
resized() {
	xr "$2"
	if rfbc wait-size "$2" frame "$T/$1.ppm"; then
		same_as_xwd "$1" "$T/$1.ppm"
	else
		fail "$1" "$(rfb_why) $(cat "$T/xrandr.out")"
	fi
	wait "$XR"
}
"$TOOL" addmode 1024 768 >/dev/null 2>&1
resized x11-resize-smaller 1024x768
resized x11-resize-back 1280x800
# a real viewer follows too (gtk-vnc): the screen keeps changing so that it
# counts updates after the resize; its last picture is 1024x768.  (tests/lvc
# is not used here: libvncclient 0.9.14 keeps its old size when the server
# announces a new one with ExtendedDesktopSize.)
if [ -x "$TOP/tests/gvnc" ] && "$TOP/tests/gvnc" -h 2>&1 | grep -q -- '-R '; then
	timeout -k 5 40 "$TOP/tests/gvnc" -R -a none -e raw,cursor,desktopsize \
	    -f 25 -t 20 -w "$T/gvnc-resize.ppm" 127.0.0.1 "$PORT" \
	    >"$T/gvnc-resize.out" 2>&1 &
	VIEWER=$!
	xr 1024x768
	( for i in $(seq 1 80); do
		kill -0 "$VIEWER" 2>/dev/null || break
		printf 'rect 120 120 40 40 %02x4080\n' $((i * 3)) >&7
		sleep 0.1
	  done ) &
	FEED=$!
	wait "$VIEWER"
	wait "$XR" "$FEED"
	if grep -q '^ok: ' "$T/gvnc-resize.out" &&
	    [ "$(head -n 2 "$T/gvnc-resize.ppm" | tail -n 1)" = "1024 768" ]; then
		ok x11-resize-gvnc
	else
		fail x11-resize-gvnc "$(tail -n 1 "$T/gvnc-resize.out") last frame: $(head -n 2 "$T/gvnc-resize.ppm" 2>&1 | tail -n 1)"
	fi
	xrandr --output screen --mode 1280x800 >/dev/null 2>&1
else
	skip x11-resize-gvnc "tests/gvnc has no raw mode (-R)"
fi

# --- a 16-bit display with neither DAMAGE nor MIT-SHM: XGetImage captures,
# changes found by scan lines alone
xvfb "$T/xvfb2.log" -screen 0 800x600x16 -extension DAMAGE -extension MIT-SHM
D2=$XD
mkfifo "$T/draw2.fifo"
DISPLAY=:$D2 timeout 300 "$TOOL" draw 20 20 500 400 <"$T/draw2.fifo" \
    >"$T/draw2.out" 2>&1 &
XPIDS="$XPIDS $!"
exec 6>"$T/draw2.fifo"
# drawn before the server starts: without DAMAGE, what changes later is
# found by scan lines within a few passes, not at once
wait_for -xF ready "$T/draw2.out"
"$VNCSASL" -s none -p "$((PORT + 2))" -x ":$D2" 2>"$T/x11b.log" &
S2=$!
XPIDS="$XPIDS $S2"
if ! wait_for -xF ready "$T/draw2.out" || ! wait_for -p $S2 'listening on' "$T/x11b.log"; then
	fail x11-fallback "no second display or server: $(tail -n 1 "$T/x11b.log") $(tail -n 1 "$T/draw2.out")"
else
	rfb2() {
		timeout -k 5 40 "$RFB" -c -t 15 127.0.0.1 "$((PORT + 2))" "$@" \
		    >"$T/rfb.out" 2>&1
	}
	if ! grep -q 'no MIT-SHM' "$T/x11b.log"; then
		fail x11-fallback-pixels "no word of the XGetImage fallback in the log"
	elif rfb2 frame "$T/f1.ppm"; then
		DISPLAY=:$D2 same_as_xwd x11-fallback-pixels "$T/f1.ppm"
	else
		fail x11-fallback-pixels "$(rfb_why)"
	fi
	( sleep 1; echo "rect 100 100 30 30 00ff00" >&6; sleep 0.2
	  echo "rect 300 300 2 1 0000ff" >&6 ) &
	FEED=$!
	if rfb2 wait-pixel 130 130 00ff00 wait-pixel 320 320 0000ff \
	    frame "$T/f2.ppm"; then
		DISPLAY=:$D2 same_as_xwd x11-fallback-changes "$T/f2.ppm"
	else
		fail x11-fallback-changes "$(rfb_why)"
	fi
	wait "$FEED"
fi

# --- the server survived all of it
if kill -0 "$SRV_PID" 2>/dev/null; then ok x11-alive
else fail x11-alive "server died: $(tail -n 2 "$SRV_LOG" | tr '\n' ' ')"; fi
