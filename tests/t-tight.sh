#!/bin/bash
# ports: 1
# Tight (RFB 7.7.5) through both real decoders: libvncclient (tests/lvc)
# and gtk-vnc (tests/gvnc) verify every pixel of the dummy picture.
#   - lossless, every true-colour pixel format, on a picture that makes the
#     server use every Tight subencoding (the 576-pixel-wide status strip
#     has two colours: mono; the noise bands: fill, indexed, full colour;
#     the gradient: the gradient filter); the server's log must show each;
#   - JPEG at quality levels 0, 5 and 9 on ",photo" (a grainy texture
#     moving every frame), every picture within a stated mean error per
#     channel (0-255 scale): 7 at level 0, 5 at 5, 2 at 9;
#   - the lossless refresh: on a still picture the first JPEG picture is
#     followed, once the screen is quiet, by an exact one.
# The JPEG servers assume a 10 Mbit/s link (-o link-kbit), so the cost
# model picks JPEG for the photo however fast this machine is.
. "$(dirname "$0")/lib.sh"
set -u
LVC="$TOP/tests/lvc" GVNC="$TOP/tests/gvnc"
p=$PORT

# kinds_sent NAME KIND...: the server's close lines count rectangles of
# each kind ("rects: fill=N/...K ...")
kinds_sent() {
	local name=$1 k n; shift
	for k in "$@"; do
		n=$(grep -o " $k=[0-9]*" "$SRV_LOG" | awk -F= '{ s += $2 } END { print s + 0 }')
		if [ "$n" -gt 0 ]; then ok "$name-$k"
		else fail "$name-$k" "no $k rectangle in: $(grep 'rects:' "$SRV_LOG" | head -n 2 | tr '\n' ' ')"; fi
	done
}

# lossy NAME COMMAND...: the viewer verified its pictures, lossy ones too
lossy() {
	local name=$1 out; shift
	if ! out=$("$@" 2>&1); then
		fail "$name" "$(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
	elif printf '%s' "$out" | grep -q ' lossy=[1-9]'; then
		ok "$name"
	else
		fail "$name" "no lossy picture: $(printf '%s' "$out" | tail -n 1)"
	fi
}

start_server tight -v -s none -p $p -x 576x432@30,noise || exit 1
for fmt in 32 32r 32be 16 16be 8; do
	bpp=${fmt%be} big=
	[ "$fmt" != "$bpp" ] && big=-B
	for v in lvc gvnc; do
		name="$v-tight-$fmt"
		if [ $v = lvc ] && [ "$fmt" != "$bpp" ]; then
			skip "$name" "libvncclient 0.9.14's Tight decoder ignores the pixel format's byte order (fixed upstream after 0.9.14; gvnc-tight-$fmt covers it)"
			continue
		fi
		bin=$LVC; [ $v = gvnc ] && bin=$GVNC
		check "$name" timeout 40 $bin -a none -e tight -b $bpp $big -f 6 127.0.0.1 $p
	done
done
wait_closed
stop_server
kinds_sent tight-sent fill mono indexed full gradient

# JPEG: quality levels and their mean error bound
start_server jpeg -v -s none -p $p -o link-kbit=10000 -x 576x432@30,photo || exit 1
for qm in 0:7 5:5 9:2; do
	q=${qm%:*} mean=${qm#*:}
	for fmt in 32 32r 16 32be; do
		bpp=${fmt%be} big=
		[ "$fmt" != "$bpp" ] && big=-B
		for v in lvc gvnc; do
			name="$v-jpeg$q-$fmt"
			if [ $v = lvc ] && [ "$fmt" != "$bpp" ]; then
				skip "$name" "libvncclient 0.9.14's Tight decoder ignores the pixel format's byte order"
				continue
			fi
			if [ $v = gvnc ] && { [ "$fmt" = 16 ] || [ "$fmt" = 32r ]; }; then
				skip "$name" "gtk-vnc 1.3.1 writes JPEG pixels as 0xRRGGBB into any local format (RGB24_BLT); its VncDisplay draws into that one, this viewer into the wire's (lvc-jpeg$q-$fmt covers it)"
				continue
			fi
			bin=$LVC; [ $v = gvnc ] && bin=$GVNC
			# at 16 bpp JPEG's best is no smaller than lossless
			# Tight, and the server may rightly send that
			how=lossy
			[ $q = 9 ] && [ $bpp = 16 ] && how=check
			$how "$name" timeout 40 $bin -a none -e tight -q $q -J $mean,255 -b $bpp $big -f 6 127.0.0.1 $p
		done
	done
done
wait_closed
stop_server
kinds_sent jpeg-sent jpeg

# a depth-24 format without 8-bit channels: gtk-vnc would read 3-byte
# TPIXELs, libvncclient 4, so a viewer that lists only Tight gets Raw
start_server ambiguous -s none -p $p -x 576x432@0 || exit 1
check tight-refused-for-an-ambiguous-format timeout 20 $PY - $p "$TOP/tests" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import rfb
c = rfb.login_none(int(sys.argv[1]))
w, h, _, _ = rfb.server_init(c)
rfb.set_pixel_format(c, 32, 24, 0, 127, 127, 127, 16, 8, 0)
rfb.set_encodings(c, [7])
rfb.request(c, 0, 0, 0, w, h)
kind, rects = rfb.read_update(c, 32, bytearray(w * h * 4), w)
encs = set(r[4] for r in rects)
rfb.check(encs == {0}, "encodings %s, not Raw alone" % encs)
PY
stop_server

# the lossless refresh: a still picture ends exact after a JPEG one
start_server refresh -v -s none -p $p -o link-kbit=10000 -x 576x432@0,photo || exit 1
for v in lvc gvnc; do
	bin=$LVC; [ $v = gvnc ] && bin=$GVNC
	if out=$(timeout 40 $bin -a none -e tight -q 5 -J 5,255 -L -F0 -f 1 127.0.0.1 $p 2>&1) &&
	    printf '%s' "$out" | grep -q ' lossy=[1-9][0-9]* exact=[1-9]'; then
		ok "$v-lossless-refresh"
	else
		fail "$v-lossless-refresh" "want a lossy then an exact picture: $(printf '%s' "$out" | tail -n 1)"
	fi
done
stop_server

# on a fast link (loopback, nothing capped) a still picture goes exact at
# once: a JPEG one and then its exact copy would cost both; what moves
# still goes as JPEG
start_server fast-still -v -s none -p $p -x 576x432@0,photo || exit 1
out=$(timeout 40 $LVC -a none -e tight -q 5 -J 5,255 -L -F0 -f 1 127.0.0.1 $p 2>&1)
if printf '%s' "$out" | grep -q ' lossy=0 exact=[1-9]' &&
    ! grep -q ' jpeg=[1-9]' "$SRV_LOG"; then
	ok fast-link-still-picture-exact-at-once
else
	fail fast-link-still-picture-exact-at-once "want no lossy picture: $(printf '%s' "$out" | tail -n 1); $(grep 'rects:' "$SRV_LOG" | head -n 2 | tr '\n' ' ')"
fi
stop_server
start_server fast-moving -v -s none -p $p -x 576x432@30,photo || exit 1
lossy fast-link-moving-picture-jpeg timeout 40 $LVC -a none -e tight -q 5 -J 5,255 -f 6 127.0.0.1 $p
wait_closed
stop_server
kinds_sent fast-link-moving jpeg

# a third decoder: TightVNC 1.3's own viewer (xtightvncviewer), asking for
# Tight with JPEG, full screen on an Xvfb of the picture's size; after
# the lossless refresh its screen equals a verified frame
if command -v xtightvncviewer >/dev/null && command -v Xvfb >/dev/null; then
	XPIDS=
	trap 'stop_server; for x in $XPIDS; do kill $x 2>/dev/null; done' EXIT
	start_server xtight -v -s none -p $p -o link-kbit=10000 -x 640x480@0,photo || exit 1
	if xvfb "$T/xvfb.log" -screen 0 640x480x24; then
		DISPLAY=:$XD xtightvncviewer -fullscreen -encodings "tight copyrect" \
		    -quality 5 127.0.0.1::$p >"$T/xtight.out" 2>&1 &
		XPIDS="$XPIDS $!"
		if ! wait_for -t 20 ' rect\| encoding tight level [0-9]* quality 5' "$SRV_LOG" ||
		    ! out=$(timeout 30 $LVC -a none -F0 -w "$T/ref.ppm" 127.0.0.1 $p 2>&1); then
			fail xtightvncviewer-shows-the-picture "no session or reference: $out $(tailof "$T/xtight.out")"
		else
			same=
			for _ in $(seq 1 20); do
				DISPLAY=:$XD "$TOP/tests/x11-tool" xwd "$T/root.xwd" 2>/dev/null &&
				    out=$("$TOP/tests/x11-tool" cmp "$T/root.xwd" "$T/ref.ppm" 2>&1) &&
				    { same=1; break; }
				sleep 0.5
			done
			if [ -n "$same" ]; then ok xtightvncviewer-shows-the-picture
			else fail xtightvncviewer-shows-the-picture "$out; $(tailof "$T/xtight.out")"; fi
		fi
	else
		fail xtightvncviewer-xvfb "$(tailof "$T/xvfb.log")"
	fi
	for x in $XPIDS; do kill $x 2>/dev/null; done
	XPIDS=
	wait_closed
	stop_server
	kinds_sent xtightvncviewer-got jpeg
else
	skip xtightvncviewer-shows-the-picture "no xtightvncviewer or Xvfb"
fi
