#!/bin/bash
# noVNC in a real browser: headless Chromium (Debian's), driven by
# playwright-core, loads a page served by vncsasl itself (-F: a minimal
# page on noVNC 1.7's RFB class, tests/novnc/index.html, with core/ and
# vendor/ of npm's @novnc/novnc beside it), logs in over wss:// with a
# user name and password (VeNCrypt Plain through GNU SASL PLAIN against
# the password file), and the canvas must show the dummy picture; a key
# arrives, the clipboard comes back in UTF-8, a wrong password is
# refused, a view user's keys do not arrive (tests/browser.js).  npm
# packages are cached outside tests/tmp (VNCSASL_CACHE, default
# ~/.cache/vncsasl-browser); every step has a timeout.
# ports: 2
REAL_HOME=${HOME:-/root}
. "$(dirname "$0")/lib.sh"
set -u
NOVNC_VER=1.7.0 PLAYWRIGHT_VER=1.65.2
CACHE=${VNCSASL_CACHE:-$REAL_HOME/.cache/vncsasl-browser}
for cmd in chromium node npm; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		skip novnc-all "$cmd not installed (tests/deps.sh test installs chromium and nodejs)"
		exit 0
	fi
done
have() { [ "$(sed -n 's/^ *"version": "\(.*\)",$/\1/p' "$CACHE/node_modules/$1/package.json" 2>/dev/null | head -n 1)" = "$2" ]; }
if ! have @novnc/novnc "$NOVNC_VER" || ! have playwright-core "$PLAYWRIGHT_VER"; then
	mkdir -p "$CACHE"
	if ! npm_config_cache="$CACHE/npm" timeout -k 10 300 npm install --no-audit \
	    --no-fund --no-package-lock --no-save --prefix "$CACHE" \
	    "@novnc/novnc@$NOVNC_VER" "playwright-core@$PLAYWRIGHT_VER" \
	    >"$T/npm.log" 2>&1; then
		fail novnc-npm "npm install: $(tail -n 3 "$T/npm.log" | tr '\n' ' ')"
		exit 0
	fi
fi
W="$T/www"
rm -rf "$W"; mkdir -p "$W"
cp "$TOP/tests/novnc/index.html" "$W/"
cp -R "$CACHE/node_modules/@novnc/novnc/core" "$CACHE/node_modules/@novnc/novnc/vendor" "$W/"
mkcerts "$T/pki"
mkpasswd "$T/pw" alice secret
mkpasswd "$T/pw" viewer watch
printf 'view viewer\nallow alice\n' >"$T/acl"; chmod 644 "$T/acl"
WS=$((PORT + 1))
start_server novnc -p 0 -W "$WS" -F "$W" -C "$T/pki/server-cert.pem" \
    -K "$T/pki/server-key.pem" -P "$T/pw" -A "$T/acl" -x 1024x768@0 -v || exit 1
: >"$T/console.log"
timeout -k 10 240 node "$TOP/tests/browser.js" "$CACHE" "https://127.0.0.1:$WS/" "$T" \
    "$TOP/tests/dummyref" alice secret viewer watch 2>"$T/browser.err"
rc=$?
[ $rc -eq 0 ] || [ $rc -eq 1 ] || fail novnc-browser "exit $rc: $(tail -n 3 "$T/browser.err" | tr '\n' ' ')"
if grep -q "auth peer=127.0.0.1:[0-9]* sec=wss-plain mech=PLAIN user=alice ssf=[1-9][0-9]* result=ok acl=allow" "$SRV_LOG" &&
    grep -q "sec=wss-plain mech=PLAIN user=alice ssf=[1-9][0-9]* result=fail reason=wrong password" "$SRV_LOG" &&
    grep -q "sec=wss-plain mech=PLAIN user=viewer .*result=ok acl=view" "$SRV_LOG"; then
	ok novnc-audit-lines
else
	fail novnc-audit-lines "$(grep 'auth peer' "$SRV_LOG" | tail -n 2 | tr '\n' ' ')"
fi
# noVNC sent the key by its position (QEMU extended key event): Q is
# scancode 0x10, evdev KEY_Q (16), and the keysym came along
if grep -q 'dummy: keycode 16 keysym 0x71 down' "$SRV_LOG"; then
	ok novnc-qemu-key-event
else
	fail novnc-qemu-key-event "no keycode in the log: $(grep 'dummy:' "$SRV_LOG" | head -n 2 | tr '\n' ' ')"
fi
if kill -0 "$SRV_PID" 2>/dev/null; then ok novnc-server-survived
else fail novnc-server-survived "$(tail -n 3 "$SRV_LOG" | tr '\n' ' ')"; fi

# --- noVNC's own page (Debian's novnc, 1.3: /usr/share/novnc, or its
# package unpacked into the cache), served whole by -F: Connect, the
# credentials dialog, the screen.  Only the page is used, not websockify.
UI=/usr/share/novnc
if [ ! -f "$UI/vnc.html" ]; then
	UI="$CACHE/debian-novnc/usr/share/novnc"
	if [ ! -f "$UI/vnc.html" ] && command -v apt-get >/dev/null 2>&1; then
		rm -rf "$CACHE/debian-novnc" "$T/deb"; mkdir -p "$T/deb"
		( cd "$T/deb" && timeout -k 5 120 apt-get download novnc ) >"$T/apt.log" 2>&1 &&
		    timeout 60 dpkg-deb -x "$T"/deb/novnc_*.deb "$CACHE/debian-novnc" 2>>"$T/apt.log"
	fi
fi
if [ -f "$UI/vnc.html" ]; then
	stop_server
	start_server novnc-ui -p 0 -W "$WS" -F "$UI" -C "$T/pki/server-cert.pem" \
	    -K "$T/pki/server-key.pem" -P "$T/pw" -x 1024x768@0 -v || exit 1
	NOVNC_UI=1 timeout -k 10 120 node "$TOP/tests/browser.js" "$CACHE" \
	    "https://127.0.0.1:$WS/vnc.html" "$T" "$TOP/tests/dummyref" alice secret \
	    2>>"$T/browser.err"
else
	skip novnc-ui-login-picture "no noVNC page at /usr/share/novnc (Debian's novnc) and apt-get download novnc failed: $(tailof "$T/apt.log" 1)"
fi
