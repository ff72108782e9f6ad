#!/bin/bash
# tests/t-reverse.sh - reverse connections (-c): vncsasl -1 dials a
# listening viewer (tests/revlisten.py) and runs the same TLS, SASL and
# ACL, then exits 0; with nobody listening it exits 1.
# ports: 3
set -u
. "$(dirname "$0")/lib.sh"

mkcerts "$T/pki"
mkpasswd "$T/pw" alice secret
printf 'allow alice from 127.0.0.1\ndeny *\n' >"$T/acl-lo"
chmod 600 "$T/acl-lo"

# reverse NAME PORT VNCSASL-ARGS...: revlisten.py on PORT (X509SASL
# against $REV_CA if set, else TLSSASL), vncsasl dials it; both exit 0
reverse() {
	local name=$1 rp=$2 lp rc=0; shift 2
	$PY "$TOP/tests/revlisten.py" "$rp" alice secret ${REV_CA:-} >"$T/$name.out" 2>&1 &
	lp=$!; PIDS="$PIDS $lp"
	wait_for -t 15 "revlisten: listening" "$T/$name.out"
	timeout 40 "$VNCSASL" -1 -c 127.0.0.1:$rp -p 0 -x 1024x768@0 "$@" 2>"$T/$name.log" || rc=$?
	wait_exit $lp 20 || kill $lp 2>/dev/null
	[ $rc -eq 0 ] && [ "$RC" -eq 0 ] && return 0
	echo "server $rc listener $RC: $(tailof "$T/$name.out" 2) $(tailof "$T/$name.log")"
	return 1
}
tlssasl() {
	reverse rev-tlssasl $PORT -P "$T/pw" -A "$T/acl-lo" &&
	    has "$T/rev-tlssasl.out" "^ok: .*sec=tlssasl" &&
	    has "$T/rev-tlssasl.log" "auth peer=127.0.0.1:$PORT sec=tlssasl mech=SCRAM-SHA-256 user=alice .*result=ok acl=allow rule=$T/acl-lo:1"
}
x509sasl() {
	REV_CA=$T/pki/ca-cert.pem reverse rev-x509sasl $((PORT + 1)) \
	    -C "$T/pki/server-cert.pem" -K "$T/pki/server-key.pem" -P "$T/pw" &&
	    has "$T/rev-x509sasl.out" "^ok: .*sec=x509sasl"
}
check reverse-tlssasl-scram-acl-run-once tlssasl
check reverse-x509sasl-scram-run-once x509sasl
check reverse-nobody-listening-exit-1 status 1 \
    timeout 20 "$VNCSASL" -c 127.0.0.1:$((PORT + 2)) -p 0 -P "$T/pw"
