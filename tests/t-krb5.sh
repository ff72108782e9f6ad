#!/bin/bash
# tests/t-krb5.sh - SASL GSSAPI (and GS2-KRB5) against a private MIT KDC
# on loopback, with the real gtk-vnc viewer (tests/gvnc, Cyrus SASL).
#
# Realm VNCSASL.TEST lives entirely under $T: krb5.conf (KRB5_CONFIG),
# kdc.conf (KRB5_KDC_PROFILE), the database, the stash, the KDC log, the
# user's credential cache and the service keytab (vnc/localhost).  The
# KDC listens on 127.0.0.1:$((PORT+1)), UDP and TCP.  Viewers connect to
# "localhost", which must match the service principal (rdns=false and
# dns_canonicalize_hostname=false, so nothing is canonicalised).
# ports: 2
set -u
. "$(dirname "$0")/lib.sh"

REALM=VNCSASL.TEST
KPORT=$((PORT + 1))
KDC_PID=
# the cases that need a realm
CASES="krb5-gssapi-login krb5-identity-logged krb5-gs2-login
    krb5-identity-from-ticket krb5-no-ticket-refused"

# ---- 6. -m GSSAPI without -G: refused at start, exit status 2 -------------
# (needs no realm, so it runs even without the Kerberos tools)
check krb5-needs-keytab status 2 timeout 10 "$VNCSASL" -p "$PORT" -s tlssasl \
    -m GSSAPI -H localhost -x 64x64@0

for p in krb5kdc kdb5_util kadmin.local kinit kdestroy; do
	if ! PATH=$PATH:/usr/sbin:/sbin command -v "$p" >/dev/null 2>&1; then
		for n in $CASES; do
			skip "$n" "$p not installed (apt-get install krb5-kdc krb5-admin-server krb5-user)"
		done
		exit 0
	fi
done
export PATH=$PATH:/usr/sbin:/sbin
if [ ! -x "$GVNC" ]; then
	for n in $CASES; do fail "$n" "$GVNC not built (make tests/gvnc)"; done
	exit 0
fi
trap 'stop_all; stop_pid "$KDC_PID"' EXIT

# ---- the realm ------------------------------------------------------------
K=$T/krb5
rm -rf "$K"
mkdir -p "$K/db" "$K/rcache"
chmod 700 "$K" "$K/rcache"
export KRB5_CONFIG=$K/krb5.conf
export KRB5_KDC_PROFILE=$K/kdc.conf
export KRB5RCACHEDIR=$K/rcache		# the acceptor's replay cache
export KRB5CCNAME=FILE:$T/cc
export KRB5_TRACE=$K/trace.log		# client and server side, for failures
unset KRB5_KTNAME KRB5_CLIENT_KTNAME

cat >"$KRB5_CONFIG" <<EOF
[libdefaults]
	default_realm = $REALM
	rdns = false
	dns_canonicalize_hostname = false
	dns_lookup_kdc = false
	dns_lookup_realm = false
	udp_preference_limit = 1
	ignore_acceptor_hostname = false
[realms]
	$REALM = {
		kdc = 127.0.0.1:$KPORT
	}
[domain_realm]
	localhost = $REALM
EOF
cat >"$KRB5_KDC_PROFILE" <<EOF
[kdcdefaults]
	kdc_listen = 127.0.0.1:$KPORT
	kdc_tcp_listen = 127.0.0.1:$KPORT
[realms]
	$REALM = {
		database_name = $K/db/principal
		key_stash_file = $K/db/stash
		acl_file = $K/kadm5.acl
		kdc_listen = 127.0.0.1:$KPORT
		kdc_tcp_listen = 127.0.0.1:$KPORT
		max_life = 1h
		max_renewable_life = 0
	}
[logging]
	kdc = FILE:$K/kdc.log
	admin_server = FILE:$K/kadmin.log
	default = FILE:$K/krb5lib.log
EOF
: >"$K/kadm5.acl"

MPW=master-$$-$RANDOM
APW=alice-pw-$RANDOM
realm_fail() {
	for n in $CASES; do fail "$n" "$1"; done
}
setup_realm() {
	local out
	out=$(timeout 60 kdb5_util create -s -P "$MPW" -r "$REALM" 2>&1) ||
	    { realm_fail "kdb5_util create: $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"; return 1; }
	out=$(timeout 30 kadmin.local -r "$REALM" -q "addprinc -pw $APW alice" 2>&1 &&
	    timeout 30 kadmin.local -r "$REALM" -q "addprinc -randkey vnc/localhost" 2>&1 &&
	    timeout 30 kadmin.local -r "$REALM" -q "ktadd -k $T/vnc.keytab vnc/localhost" 2>&1) ||
	    { realm_fail "kadmin.local: $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"; return 1; }
	chmod 600 "$T/vnc.keytab"
	krb5kdc -n -r "$REALM" >"$K/krb5kdc.out" 2>&1 &
	KDC_PID=$!
	if ! wait_for -p "$KDC_PID" 'commencing operation' "$K/kdc.log"; then
		realm_fail "krb5kdc did not start: $(tailof "$K/kdc.log" 3) $(tailof "$K/krb5kdc.out" 3)"
		return 1
	fi
	out=$(printf '%s\n' "$APW" | timeout 30 kinit alice@"$REALM" 2>&1) ||
	    { realm_fail "kinit alice: $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ') kdc: $(tailof "$K/kdc.log" 2)"; return 1; }
	return 0
}

# gvnc_run NAME EXPECT(ok|refused) ARGS...: one gtk-vnc session against
# localhost:$PORT; output in $T/NAME.gvnc.  Returns gvnc's status.  With
# GSSAPI gtk-vnc 1.3.1 asks for no credentials; with GS2-KRB5 Cyrus asks
# for a user name (gvnc fails without -u), which it then does not send:
# the identity always comes from the ticket.
gvnc_run() {
	local name=$1 want=$2 rc; shift 2
	local e=
	[ "$want" = refused ] && e=-E
	timeout -k 5 40 "$GVNC" $e -F0 -t 30 "$@" localhost "$PORT" \
	    >"$T/$name.gvnc" 2>&1
	rc=$?
	return $rc
}
# why NAME: gvnc's last lines + the server's last lines + the KDC's
why() {
	printf 'gvnc: %s| server: %s| kdc: %.200s' "$(tailof "$T/$1.gvnc" 2)" \
	    "$(tailof "$SRV_LOG" 4)" "$(grep -v 'closing down' "$K/kdc.log" | tail -n 1)"
}

if ! setup_realm; then
	exit 0
fi

# ---- 3. GSSAPI with a ticket ------------------------------------------------
if ! start_server krb5 -p "$PORT" -s tlssasl -m GSSAPI -G "$T/vnc.keytab" \
    -H localhost -x 1024x768@0 -v 2>"$T/start.err"; then
	fail krb5-gssapi-login "$(cat "$T/start.err")"
	fail krb5-identity-logged "no server"
	fail krb5-identity-from-ticket "no server"
	fail krb5-no-ticket-refused "no server"
else
	gvnc_run gssapi ok -u alice
	rc=$?
	if [ $rc -eq 0 ]; then
		ok krb5-gssapi-login
		if wait_for -t 3 'result=ok' "$SRV_LOG" &&
		    grep 'result=ok' "$SRV_LOG" | grep -q "mech=GSSAPI user=alice@$REALM "; then
			ok krb5-identity-logged
		else
			fail krb5-identity-logged "no 'mech=GSSAPI user=alice@$REALM ... result=ok' audit line: $(tailof "$SRV_LOG" 4)"
		fi
	else
		fail krb5-gssapi-login "gvnc exit $rc: $(why gssapi)"
		fail krb5-identity-logged "login failed"
	fi

	# the user name the viewer types is not the identity: the ticket is
	n_ok=$(grep -c 'result=ok' "$SRV_LOG")
	gvnc_run otheruser ok -u bob
	rc=$?
	sleep 0.3
	if [ $rc -ne 0 ]; then
		fail krb5-identity-from-ticket "gvnc -u bob exit $rc: $(why otheruser)"
	elif [ "$(grep 'result=ok' "$SRV_LOG" | grep -c "user=alice@$REALM ")" -le "$n_ok" ] ||
	    grep -q 'user=bob' "$SRV_LOG"; then
		fail krb5-identity-from-ticket "want alice@$REALM, not bob: $(tailof "$SRV_LOG" 3)"
	else
		ok krb5-identity-from-ticket
	fi

	# ---- 5. no ticket: Cyrus has no fallback, the login must fail ------
	n_ok=$(grep -c 'result=ok' "$SRV_LOG")
	KRB5CCNAME=FILE:$T/no-such-cc gvnc_run noticket refused -u alice
	rc=$?
	sleep 0.3
	if [ $rc -ne 0 ]; then
		fail krb5-no-ticket-refused "gvnc -E exit $rc: $(why noticket)"
	elif [ "$(grep -c 'result=ok' "$SRV_LOG")" -ne "$n_ok" ]; then
		fail krb5-no-ticket-refused "server logged result=ok: $(tailof "$SRV_LOG" 3)"
	else
		ok krb5-no-ticket-refused
	fi
	stop_server
fi

# ---- 4. GS2-KRB5, if the Cyrus client has the GS2 plugin ------------------
gs2=
for d in /usr/lib/*/sasl2 /usr/lib/sasl2 /usr/lib64/sasl2; do
	[ -e "$d/libgs2.so" ] || [ -e "$d/libgs2.so.2" ] && gs2=$d
done
if [ -z "$gs2" ]; then
	skip krb5-gs2-login "Cyrus GS2 client plugin (libgs2.so) not installed"
elif ! start_server krb5-gs2 -p "$PORT" -s tlssasl -m GS2-KRB5 \
    -G "$T/vnc.keytab" -H localhost -x 1024x768@0 -v 2>"$T/start.err"; then
	fail krb5-gs2-login "$(cat "$T/start.err")"
else
	gvnc_run gs2 ok -u alice
	rc=$?
	if [ $rc -eq 0 ]; then
		if wait_for -t 3 'result=ok' "$SRV_LOG" &&
		    grep 'result=ok' "$SRV_LOG" | grep -q "mech=GS2-KRB5 user=alice@$REALM "; then
			ok krb5-gs2-login
		else
			fail krb5-gs2-login "no 'mech=GS2-KRB5 user=alice@$REALM ... result=ok' audit line: $(tailof "$SRV_LOG" 4)"
		fi
	elif grep -q -i 'no worthy mech\|no mechanism' "$T/gs2.gvnc"; then
		skip krb5-gs2-login "Cyrus client does not offer GS2-KRB5: $(tailof "$T/gs2.gvnc" 2)"
	else
		fail krb5-gs2-login "gvnc exit $rc: $(why gs2)"
	fi
	stop_server
fi

timeout 10 kdestroy -q 2>/dev/null
exit 0
