#!/bin/bash
# tests/t-cb.sh - SCRAM channel binding (SCRAM-SHA-*-PLUS) through
# tests/cbclient, a viewer on GNU SASL's client API inside VeNCrypt TLS:
# tls-unique on TLSSASL (anonymous TLS 1.2), tls-exporter on X509SASL
# (TLS 1.3), a corrupted binding (-B), the Cyrus naming workaround
# (mechanism sent without -PLUS, "p=" header), a -PLUS mechanism that was
# not offered, a wrong password, and the GS2 "y" flag (downgrade
# detection, RFC 5802 6).  Every case is bounded: the client has -t 20 and
# runs under timeout 30.
# ports: 2
. "$(dirname "$0")/lib.sh"

CB=$TOP/tests/cbclient
CERTS=$T/certs
PW=$T/passwd
USER_=alice
PASS_=cb-secret-1

if [ ! -x "$CB" ]; then
	skip cb-all "tests/cbclient not built"
	exit 0
fi
mkcerts "$CERTS"
rm -f "$PW"
if ! mkpasswd "$PW" "$USER_" "$PASS_" || [ ! -s "$PW" ]; then
	fail cb-setup "vncsasl -k could not write $PW"
	exit 0
fi

# cbrun ARGS...: run the client against 127.0.0.1:$SPORT; sets OUT, RC
cbrun() {
	OUT=$(timeout -k 5 30 "$CB" -t 20 "$@" 127.0.0.1 "$SPORT" 2>"$T/cb.err")
	RC=$?
	OUT=$(printf '%s' "$OUT" | tail -n 1)
}
# Server log lines written since logmark; waitlog ERE waits (<= 3 s) for one.
logmark() { LOGN=$(wc -l <"$SRV_LOG"); }
newlog() { tail -n +"$((LOGN + 1))" "$SRV_LOG"; }
waitlog() {
	wait_for -t 3 -n "$LOGN" -E "$1" "$SRV_LOG" && return 0
	echo "no server log line /$1/: $(newlog | tail -n 2 | tr '\n' ' ')"
	return 1
}
# session WANT LOG-ERE CLIENT-ARGS...: the client's last line starts with
# WANT, and a new server log line matches LOG-ERE
session() {
	local want=$1 pat=$2; shift 2
	logmark
	cbrun "$@"
	if [ "$RC" -ne 0 ] || [ "${OUT#"$want"}" = "$OUT" ]; then
		echo "client exit $RC: $OUT $(tail -n 2 "$T/cb.err" | tr '\n' ' ')"
		return 1
	fi
	waitlog "$pat"
}
# expect_ok NAME LOG-ERE CLIENT-ARGS...: authenticated, whole screen read,
# and a new server log line matching LOG-ERE.
expect_ok() {
	local name=$1; shift
	check "$name" session "ok: " "$@"
}
# expect_refused NAME LOG-ERE CLIENT-ARGS...: the server refused (failed
# SecurityResult or close during authentication), logged as LOG-ERE.
expect_refused() {
	local name=$1 pat=$2; shift 2
	check "$name" session "ok: refused" "$pat" -E "$@"
}

X509=(-S x509sasl -C "$CERTS/ca-cert.pem")
CRED=(-u "$USER_" -p "$PASS_")

# --- server 1: every SCRAM form, both VeNCrypt SASL subtypes ---
SPORT=$PORT
if ! start_server cb-plus -v -l 127.0.0.1 -p "$SPORT" -s x509sasl,tlssasl \
    -C "$CERTS/server-cert.pem" -K "$CERTS/server-key.pem" \
    -m SCRAM-SHA-256,SCRAM-SHA-256-PLUS,SCRAM-SHA-1,SCRAM-SHA-1-PLUS \
    -P "$PW" -x 1024x768@0; then
	fail cb-server "vncsasl did not start: $(tail -n 3 "$SRV_LOG" | tr '\n' ' ')"
	exit 0
fi

OKPLUS='sec=tlssasl mech=SCRAM-SHA-256-PLUS user=alice .*result=ok'
expect_ok cb-tls-unique-ok "$OKPLUS" "${CRED[@]}" -S tlssasl
case $OUT in *"tls=TLS1.2 cb=tls-unique"*) ;;
*) [ "$RC" -eq 0 ] && fail cb-tls-unique-kind "expected TLS1.2/tls-unique: $OUT" ;;
esac
expect_refused cb-tls-unique-bad 'sec=tlssasl mech=SCRAM-SHA-256-PLUS .*result=fail' \
    "${CRED[@]}" -S tlssasl -B

# X509SASL: tls-exporter when GnuTLS negotiates TLS 1.3
logmark
cbrun "${CRED[@]}" "${X509[@]}"
case "$RC:$OUT" in
0:*"tls=TLS1.3 cb=tls-exporter"*)
	check cb-tls-exporter-ok waitlog 'sec=x509sasl mech=SCRAM-SHA-256-PLUS user=alice .*result=ok'
	expect_refused cb-tls-exporter-bad 'sec=x509sasl mech=SCRAM-SHA-256-PLUS .*result=fail' \
	    "${CRED[@]}" "${X509[@]}" -B
	;;
0:*)
	skip cb-tls-exporter-ok "TLS 1.3 not negotiated: $OUT"
	skip cb-tls-exporter-bad "TLS 1.3 not negotiated"
	;;
*)
	fail cb-tls-exporter-ok "client exit $RC: $OUT $(tail -n 2 "$T/cb.err" | tr '\n' ' ')"
	;;
esac
# X509SASL capped at TLS 1.2: tls-unique over certificate TLS
expect_ok cb-x509-tls12-unique-ok 'sec=x509sasl mech=SCRAM-SHA-256-PLUS user=alice .*result=ok' \
    "${CRED[@]}" "${X509[@]}" -2

expect_ok cb-sha1-plus-ok 'sec=tlssasl mech=SCRAM-SHA-1-PLUS user=alice .*result=ok' \
    "${CRED[@]}" -m SCRAM-SHA-1-PLUS
expect_refused cb-sha1-plus-bad 'mech=SCRAM-SHA-1-PLUS .*result=fail' \
    "${CRED[@]}" -m SCRAM-SHA-1-PLUS -B

# Cyrus names the mechanism without -PLUS but sends "p=": the server runs
# the -PLUS mechanism (and logs it), on both bindings
expect_ok cb-cyrus-naming "$OKPLUS" "${CRED[@]}" -M SCRAM-SHA-256
expect_ok cb-cyrus-naming-exporter 'sec=x509sasl mech=SCRAM-SHA-256-PLUS user=alice .*result=ok' \
    "${CRED[@]}" "${X509[@]}" -M SCRAM-SHA-256
expect_refused cb-cyrus-naming-bad 'mech=SCRAM-SHA-256-PLUS .*result=fail' \
    "${CRED[@]}" -M SCRAM-SHA-256 -B

expect_refused cb-wrong-password 'mech=SCRAM-SHA-256-PLUS user=alice .*result=fail' \
    -u "$USER_" -p wrong-password
expect_refused cb-unknown-user 'mech=SCRAM-SHA-256-PLUS .*result=fail' \
    -u mallory -p "$PASS_"

# plain SCRAM still works next to -PLUS (GS2 flag "n")
expect_ok cb-plain-scram-ok 'sec=tlssasl mech=SCRAM-SHA-256 user=alice .*result=ok' \
    "${CRED[@]}" -m SCRAM-SHA-256
# GS2 flag "y" ("I can bind, you cannot") while -PLUS was offered: a
# downgrade, which RFC 5802 section 6 says the server MUST refuse
expect_refused cb-downgrade-y 'mech=SCRAM-SHA-256 .*result=fail' \
    "${CRED[@]}" -m SCRAM-SHA-256 -Y
expect_refused cb-downgrade-y-sha1 'mech=SCRAM-SHA-1 .*result=fail' \
    "${CRED[@]}" -m SCRAM-SHA-1 -Y

# the audit trail: failed logins leave printable, complete lines
if grep -a 'auth peer=' "$SRV_LOG" | LC_ALL=C grep -aq '[^[:print:]]'; then
	fail cb-audit-log "non-printable bytes in auth lines: $(grep -a 'auth peer=.*result=fail' "$SRV_LOG" | head -n 1 | cat -v)"
else
	ok cb-audit-log
fi
stop_server

# --- server 2: SCRAM-SHA-256 only, no channel binding offered ---
SPORT=$((PORT + 1))
if ! start_server cb-noplus -v -l 127.0.0.1 -p "$SPORT" -s tlssasl \
    -m SCRAM-SHA-256 -P "$PW" -x 1024x768@0; then
	fail cb-server-noplus "vncsasl did not start: $(tail -n 3 "$SRV_LOG" | tr '\n' ' ')"
	exit 0
fi
# asking for -PLUS that was not offered: the server closes
expect_refused cb-plus-not-offered "SCRAM-SHA-256-PLUS' was not offered" \
    "${CRED[@]}" -m SCRAM-SHA-256-PLUS
# "p=" under the base name, -PLUS not offered: no mapping, and gsasl's
# plain SCRAM cannot verify a binding, so it fails
expect_refused cb-cyrus-naming-no-plus 'mech=SCRAM-SHA-256 .*result=fail' \
    "${CRED[@]}" -M SCRAM-SHA-256
# "y" is right here: the server offers no binding
expect_ok cb-y-no-plus-ok 'sec=tlssasl mech=SCRAM-SHA-256 user=alice .*result=ok' \
    "${CRED[@]}" -m SCRAM-SHA-256 -Y
stop_server
exit 0
