#!/bin/bash
# wss:// (-W): the WebSocket layer, the HTTP requests before it, the files
# of -F and the security types offered there, with tests/ws.py (a
# WebSocket client of our own under tests/rfb.py's RFB helpers): logins,
# fragmented RFB messages, pings, closes, every malformed frame and
# upgrade, oversize heads, path traversal, a view user; then the options.
# ports: 2
. "$(dirname "$0")/lib.sh"
set -u
mkcerts "$T/pki"
mkpasswd "$T/pw" alice secret
mkpasswd "$T/pw" viewer watch
printf 'view viewer\nallow alice\n' >"$T/acl"; chmod 644 "$T/acl"
# the page directory, and what must never be served from it
W="$T/www"
rm -rf "$W" "$T/outside"; mkdir -p "$W/sub" "$T/outside"
printf '<!doctype html><title>vncsasl test</title>\n' >"$W/index.html"
printf '// a.js\n' >"$W/sub/a.js"
printf 'topsecret\n' >"$T/secret.html"
printf 'topsecret\n' >"$T/outside/x.html"
printf 'notes\n' >"$W/notes.txt"
printf 'hidden\n' >"$W/.hidden.html"
ln -s "$T/secret.html" "$W/link.html"
ln -s "$T/outside" "$W/linkdir"
mkfifo "$W/fifo.html"
WS=$((PORT + 1))
start_server wss -p "$PORT" -W "$WS" -F "$W" -C "$T/pki/server-cert.pem" \
    -K "$T/pki/server-key.pem" -P "$T/pw" -A "$T/acl" -x 1024x768@30 \
    -o fail-delay=1 -v || exit 1
timeout 300 $PY "$TOP/tests/ws.py" "$SRV_PID" "$WS" "$W" alice secret viewer watch |
    grep -v ' passed, '
if kill -0 "$SRV_PID" 2>/dev/null; then ok wss-server-survived
else fail wss-server-survived "$(tail -n 5 "$SRV_LOG")"; fi
# the audit line says the login came over wss
if grep -q 'auth peer=127.0.0.1:[0-9]* sec=wss-plain mech=PLAIN user=alice ssf=[1-9][0-9]* result=ok' "$SRV_LOG" &&
    grep -q 'auth peer=.* sec=wss-sasl mech=SCRAM-SHA-256 user=alice .*result=ok' "$SRV_LOG" &&
    grep -q 'sec=wss-plain .*user=viewer .*acl=view' "$SRV_LOG"; then
	ok wss-audit-lines
else
	fail wss-audit-lines "$(grep 'auth peer' "$SRV_LOG" | tail -n 2 | tr '\n' ' ')"
fi
stop_server

# --- options: -W needs a certificate (unless ad hoc); -F and -O need -W;
# -i excludes -W
out=$(timeout 10 "$VNCSASL" -W "$WS" -p 0 -P "$T/pw" 2>&1); rc=$?
if [ $rc -eq 2 ] && printf '%s' "$out" | grep -q -- '-W needs a certificate'; then
	ok wss-needs-certificate
else
	fail wss-needs-certificate "exit $rc: $out"
fi
check_fails wss-F-without-W "$VNCSASL" -F "$W" -p "$PORT"
check_fails wss-O-without-W "$VNCSASL" -O '*' -p "$PORT"
check_fails wss-F-not-a-directory "$VNCSASL" -W "$WS" -F "$W/index.html" \
    -C "$T/pki/server-cert.pem" -K "$T/pki/server-key.pem"
check_fails wss-inetd "$VNCSASL" -i -W "$WS"
# -s names wss types: only those on -W, TCP keeps its default
if start_server wss2 -p 0 -W "$WS" -C "$T/pki/server-cert.pem" \
    -K "$T/pki/server-key.pem" -P "$T/pw" -s wss-sasl -O 'https://a.example,*' \
    -x 1024x768@0; then
	if grep -q 'security tcp=x509plain,x509sasl,tlssasl unix=tlssasl,sasl wss=wss-sasl ' "$SRV_LOG" &&
	    grep -q "listening on wss://127.0.0.1:$WS" "$SRV_LOG"; then
		ok wss-seclist
	else
		fail wss-seclist "$(grep -E 'security|listening' "$SRV_LOG" | tr '\n' ' ')"
	fi
	stop_server
else
	fail wss-seclist "did not start: $(tail -n 2 "$SRV_LOG")"
fi

# --- -T: a browser must show a client certificate on -W too
# login_with [CERT KEY]: 0 if a wss-plain login works
login_with() {
	TOP=$TOP $PY - "$WS" "$@" <<'PY'
import os, sys
sys.path.insert(0, os.environ["TOP"] + "/tests")
import ws
if len(sys.argv) > 2:
    ws.CLIENT_CERT = (sys.argv[2], sys.argv[3])
try:
    c, r = ws.plain_login(int(sys.argv[1]), "alice", "secret")
except Exception as e:
    print("refused: %s" % e)
    sys.exit(1)
sys.exit(0 if r == 0 else 1)
PY
}
if start_server wss3 -p 0 -W "$WS" -C "$T/pki/server-cert.pem" \
    -K "$T/pki/server-key.pem" -T "$T/pki/ca-cert.pem" -P "$T/pw" -x 1024x768@0; then
	check wss-client-cert-shown login_with "$T/pki/client-cert.pem" "$T/pki/client-key.pem"
	check_fails wss-client-cert-missing login_with
	if grep -q 'tls peer=.* wss .*dn=CN=alice' "$SRV_LOG"; then ok wss-client-cert-dn
	else fail wss-client-cert-dn "$(grep 'tls peer' "$SRV_LOG" | head -n 2 | tr '\n' ' ')"; fi
	stop_server
else
	fail wss-client-cert "did not start: $(tail -n 2 "$SRV_LOG")"
fi

# --- ad hoc: no password file, no certificate: the one-time user and the
# in-memory certificate serve -W too, and the browser's URL is printed
if start_server wss4 -p 0 -W "$WS" -F "$W" -x 1024x768@0; then
	pw=$(sed -n 's/^ad-hoc: user=vnc password=\([^ ]*\) .*/\1/p' "$SRV_LOG")
	if grep -q "^    https://127.0.0.1:$WS/\$" "$SRV_LOG"; then ok wss-adhoc-url
	else fail wss-adhoc-url "$(grep -A1 'a browser' "$SRV_LOG" | tr '\n' ' ')"; fi
	adhoc_login() {
		TOP=$TOP $PY - "$WS" "$1" <<'PY'
import os, sys
sys.path.insert(0, os.environ["TOP"] + "/tests")
import ws
c, r = ws.plain_login(int(sys.argv[1]), "vnc", sys.argv[2])
sys.exit(0 if r == 0 else 1)
PY
	}
	check wss-adhoc-login adhoc_login "$pw"
	stop_server
else
	fail wss-adhoc "did not start: $(tail -n 2 "$SRV_LOG")"
fi

