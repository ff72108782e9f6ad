#!/bin/bash
# TigerVNC's vncviewer (a real viewer, Debian's tigervnc-viewer) against
# the X11 source: the Extended Clipboard in UTF-8 with letters Latin-1
# lacks, both ways (CLIPBOARD on the viewer's display <-> CLIPBOARD and
# PRIMARY on the shared one), and QEMU extended key events: keys pressed
# on the viewer's display (US layout) reach the shared one (German
# layout) by position, so AltGr+Q types '@' there, which the keysyms
# (Alt_R, q) would not.  Two Xvfb displays: S (shared by vncsasl-x11)
# and V (the viewer's window).  Every wait is bounded.
# ports: 1
. "$(dirname "$0")/lib.sh"

VNCSASL=${VNCSASL_X11:-$TOP/vncsasl-x11}
TOOL=$TOP/tests/x11-tool
XPIDS=
cleanup() {
	local p
	stop_server
	for p in $XPIDS; do kill "$p" 2>/dev/null; done
	for p in $XPIDS; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT
for cmd in Xvfb xdpyinfo setxkbmap vncviewer; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		skip tigervnc-x11-all "$cmd not installed (tests/deps.sh test)"
		exit 0
	fi
done
if ! make -s -C "$TOP" WERROR=1 vncsasl-x11 tests/x11-tool >"$T/build.log" 2>&1; then
	fail tigervnc-x11-build "$(tail -n 3 "$T/build.log" | tr '\n' ' ')"
	exit 0
fi
# two displays of our own (lib.sh's xvfb: Xvfb picks free numbers)
if ! xvfb "$T/xvfb-s.log" -screen 0 1024x768x24; then
	fail tigervnc-x11-xvfb "$(tailof "$T/xvfb-s.log")"
	exit 0
fi
S=$XD
if ! xvfb "$T/xvfb-v.log" -screen 0 1280x1024x24; then
	fail tigervnc-x11-xvfb "$(tailof "$T/xvfb-v.log")"
	exit 0
fi
V=$XD
wait_line() {	# FILE LINE SECS
	local i
	for i in $(seq 1 $(($3 * 10))); do
		grep -aqxF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# wait_clip DISPLAY TEXT SECS: CLIPBOARD on DISPLAY reads TEXT
wait_clip() {
	local i got
	for i in $(seq 1 $(($3 * 5))); do
		got=$(DISPLAY=:$1 timeout 5 "$TOOL" clip-get CLIPBOARD 2>/dev/null)
		[ "$got" = "$2" ] && return 0
		sleep 0.2
	done
	printf '%s' "$got" >"$T/clip-got"
	return 1
}
# the window that records what is typed on the shared display
DISPLAY=:$S timeout 300 "$TOOL" events 600 500 400 250 >"$T/ev.out" 2>&1 &
XPIDS="$XPIDS $!"
wait_line "$T/ev.out" ready 10 || { fail tigervnc-x11-events "x11-tool events did not start"; exit 0; }
if ! start_server tigervnc -s none -p "$PORT" -x ":$S" -v; then
	fail tigervnc-x11-start "$(tail -n 2 "$SRV_LOG" | tr '\n' ' ')"
	exit 0
fi
DISPLAY=:$V timeout 300 vncviewer -SecurityTypes None -Shared=1 \
    -AlertOnFatalError=0 -ReconnectOnError=0 -geometry 1024x768+0+0 \
    "127.0.0.1::$PORT" >"$T/vncviewer.log" 2>&1 &
VIEWER=$!
XPIDS="$XPIDS $VIEWER"
for _ in $(seq 1 100); do
	grep -q 'session peer=' "$SRV_LOG" && break
	sleep 0.1
done
if ! grep -q 'session peer=' "$SRV_LOG"; then
	fail tigervnc-x11-connect "$(tail -n 3 "$T/vncviewer.log" | tr '\n' ' ')"
	exit 0
fi
sleep 1
# the viewer's window takes the keyboard (TigerVNC sends and fetches the
# clipboard only while it has the focus)
DISPLAY=:$V timeout 20 "$TOOL" keys 500 400 s300 >/dev/null 2>&1

# --- Extended Clipboard, viewer -> shared display, UTF-8 beyond Latin-1
text='Grüße ☺ Ωμέγα → 東京'
DISPLAY=:$V timeout 30 "$TOOL" clip-set CLIPBOARD "$text" 20 >"$T/cs-v.out" 2>&1 &
CS=$!
if wait_clip "$S" "$text" 10; then
	ok tigervnc-x11-clip-to-x-utf8
else
	fail tigervnc-x11-clip-to-x-utf8 "shared CLIPBOARD: '$(cat "$T/clip-got")'"
fi
p=$(DISPLAY=:$S timeout 5 "$TOOL" clip-get PRIMARY 2>/dev/null)
if [ "$p" = "$text" ]; then ok tigervnc-x11-clip-to-x-primary
else fail tigervnc-x11-clip-to-x-primary "PRIMARY: '$p'"; fi
kill "$CS" 2>/dev/null; wait "$CS" 2>/dev/null

# --- Extended Clipboard, shared display -> viewer
text2='Ωμέγα ← ☺ naïve €'
DISPLAY=:$S timeout 30 "$TOOL" clip-set CLIPBOARD "$text2" 20 >"$T/cs-s.out" 2>&1 &
CS=$!
if wait_clip "$V" "$text2" 10; then
	ok tigervnc-x11-clip-from-x-utf8
else
	fail tigervnc-x11-clip-from-x-utf8 "viewer's CLIPBOARD: '$(cat "$T/clip-got")'"
fi
kill "$CS" 2>/dev/null; wait "$CS" 2>/dev/null
if grep -q 'Extended Clipboard\|clipboard of' "$SRV_LOG"; then
	fail tigervnc-x11-clip-log "$(grep 'lipboard' "$SRV_LOG" | head -n 2 | tr '\n' ' ')"
fi

# --- QEMU extended key events: AltGr+Q on the German shared display
if DISPLAY=:$S setxkbmap de 2>"$T/xkb.err"; then
	: >"$T/ev.out"
	# evdev keycodes + 8 on the viewer's (US) display: 108 Right Alt,
	# 24 Q, 56 B, 29 Y (Z on a German layout), 36 Return
	DISPLAY=:$V timeout 20 "$TOOL" keys 500 400 +108 24 -108 56 29 36 s300 \
	    >/dev/null 2>&1
	if wait_line "$T/ev.out" "line @bz" 10; then
		ok tigervnc-x11-qemu-keys-altgr
	else
		fail tigervnc-x11-qemu-keys-altgr "typed: $(grep -a '^line' "$T/ev.out" | tail -n 1)"
	fi
else
	skip tigervnc-x11-qemu-keys-altgr "setxkbmap de: $(head -n 1 "$T/xkb.err")"
fi
if kill -0 "$SRV_PID" 2>/dev/null && kill -0 "$VIEWER" 2>/dev/null; then
	ok tigervnc-x11-alive
else
	fail tigervnc-x11-alive "server or viewer gone: $(tail -n 2 "$T/vncviewer.log" | tr '\n' ' ')"
fi
