#!/bin/bash
# TigerVNC's vncviewer (no SASL) against the default security list when a
# certificate is given: it logs in over X509Plain with the user and
# password from VNC_USERNAME/VNC_PASSWORD and the test CA (-X509CA), full
# screen on an Xvfb of the same size; its screen must equal the picture.
# And xtightvncviewer (TightVNC 1.3: VNC authentication only) with the
# vncpasswd file vncsasl -w reads.
# ports: 2
. "$(dirname "$0")/lib.sh"
set -u
for cmd in vncviewer Xvfb; do
	command -v $cmd >/dev/null || { skip tigervnc "no $cmd"; exit 0; }
done
XPIDS=
trap 'stop_server; for p in $XPIDS; do kill $p 2>/dev/null; done' EXIT
mkcerts "$T/pki"
mkpasswd "$T/pw" alice secret
start_server tiger -C "$T/pki/server-cert.pem" -K "$T/pki/server-key.pem" -P "$T/pw" \
    -p $PORT -x 1024x768@0 || exit 0
check tigervnc-default-list-has-x509plain has "$SRV_LOG" 'security tcp=x509plain,'
xvfb "$T/xvfb.log" -screen 0 1024x768x24 || { fail tigervnc-xvfb "$(tailof "$T/xvfb.log")"; exit 0; }
DISPLAY=:$XD VNC_USERNAME=alice VNC_PASSWORD=secret vncviewer -X509CA "$T/pki/ca-cert.pem" \
    -X509CRL /dev/null -FullScreen -Shared 127.0.0.1::$PORT >"$T/tiger.log" 2>&1 &
XPIDS="$XPIDS $!"
check tigervnc-logs-in-over-x509plain wait_for -t 20 'sec=x509plain mech=PLAIN user=alice .*result=ok' \
    "$SRV_LOG"
# what the picture is now (TigerVNC's own pointer may have moved the
# dummy's crosshair): a verified frame from libvncclient
sleep 2
"$TOP/tests/lvc" -C "$T/pki/ca-cert.pem" -u alice -p secret -F0 -w "$T/ref.ppm" 127.0.0.1 $PORT \
    >"$T/lvc.out" 2>&1 || { fail tigervnc-reference "$(tailof "$T/lvc.out")"; exit 0; }
same=
for _ in $(seq 1 20); do
	DISPLAY=:$XD "$TOP/tests/x11-tool" xwd "$T/root.xwd" 2>/dev/null &&
	    out=$("$TOP/tests/x11-tool" cmp "$T/root.xwd" "$T/ref.ppm" 2>&1) && { same=1; break; }
	sleep 0.5
done
if [ -n "$same" ]; then ok tigervnc-window-shows-the-picture
else fail tigervnc-window-shows-the-picture "$out; vncviewer: $(tailof "$T/tiger.log")"; fi
stop_server

if command -v xtightvncviewer >/dev/null && command -v vncpasswd >/dev/null; then
	printf 'tiger1\n' | vncpasswd -f >"$T/vncpw"; chmod 600 "$T/vncpw"
	start_server tight -s vnc -w "$T/vncpw" -p $((PORT + 1)) -x 640x480@5 || exit 0
	DISPLAY=:$XD xtightvncviewer -passwd "$T/vncpw" 127.0.0.1::$((PORT + 1)) >"$T/xtight.out" 2>&1 &
	XPIDS="$XPIDS $!"
	check xtightvncviewer-vnc-auth-with-vncpasswd-file wait_for -t 20 \
	    'sec=vnc mech=- user=- ssf=0 result=ok' "$SRV_LOG"
else
	skip xtightvncviewer-vnc-auth-with-vncpasswd-file "no xtightvncviewer or vncpasswd"
fi
