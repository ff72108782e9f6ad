#!/bin/bash
# The ACL: the matcher through "vncsasl -A FILE -t ..." (the same code
# the server runs), every parse error, then real viewers over TLS:
# allow, deny, no rule, view-only, and SIGHUP reloads.
# ports: 1
. "$(dirname "$0")/lib.sh"
set -u

# decide NAME WANT FILE USER [ADDR [DN]]: the ACL answers WANT (a prefix
# of "ACTION rule=...")
decide() {
	local name=$1 want=$2 file=$3 out; shift 3
	out=$("$VNCSASL" -A "$file" -t "$@" 2>&1)
	case $out in "$want"*) ok "$name" ;; *) fail "$name" "got '$out', want '$want'" ;; esac
}
acl() { cat >"$T/$1"; chmod 644 "$T/$1"; }

# -- the matcher --
acl order1 <<'X'
deny alice
allow alice
X
acl order2 <<'X'
allow alice
deny alice
X
decide acl-first-match-deny "deny rule=$T/order1:1" "$T/order1" alice
decide acl-first-match-allow "allow rule=$T/order2:1" "$T/order2" alice
decide acl-no-policy-denies "deny rule=$T/order1:policy" "$T/order1" zed
acl globs <<'X'
policy allow
deny a*
view b?b
deny [xy]z
allow *@EXAMPLE.COM
deny *
X
decide acl-glob-star deny "$T/globs" abc
decide acl-glob-question view "$T/globs" bob
decide acl-glob-question-no deny "$T/globs" boob
decide acl-glob-set "deny rule=$T/globs:4" "$T/globs" yz
decide acl-glob-realm "allow rule=$T/globs:5" "$T/globs" zoe@EXAMPLE.COM
decide acl-glob-realm-case "deny rule=$T/globs:6" "$T/globs" zoe@example.com
acl policyallow <<'X'
policy allow
deny mallory
X
decide acl-policy-allow "allow rule=$T/policyallow:policy" "$T/policyallow" anyone
acl dn <<'X'
allow "dn:CN=alice,O=ACME Ltd,C=GB"
view dn:C=GB,O=ACME,L=London,CN=*
deny dn:*
allow *
X
decide acl-dn-rfc4514 "allow rule=$T/dn:1" "$T/dn" x 127.0.0.1 "CN=alice,O=ACME Ltd,C=GB"
decide acl-dn-x500-order "view rule=$T/dn:2" "$T/dn" x 127.0.0.1 "CN=bob,L=London,O=ACME,C=GB"
decide acl-dn-other "deny rule=$T/dn:3" "$T/dn" x 127.0.0.1 "CN=eve,O=Evil,C=XX"
decide acl-dn-rule-needs-certificate "allow rule=$T/dn:4" "$T/dn" x 127.0.0.1
acl from <<'X'
allow carol from 192.168.1.*
allow carol from unix
view carol from 2001:db8::*
allow * from 127.0.0.1
X
decide acl-from-match "allow rule=$T/from:1" "$T/from" carol 192.168.1.20
decide acl-from-ipv4-mapped "allow rule=$T/from:1" "$T/from" carol ::ffff:192.168.1.20
decide acl-from-unix "allow rule=$T/from:2" "$T/from" carol unix
decide acl-from-ipv6 "view rule=$T/from:3" "$T/from" carol 2001:db8::7
decide acl-from-no-match "deny rule=$T/from:policy" "$T/from" carol 10.1.1.1
decide acl-nameless-identity "allow rule=$T/from:4" "$T/from" "" 127.0.0.1
decide acl-example-loads "allow rule=$TOP/acl.txt.example:" "$TOP/acl.txt.example" alice

# -- every parse error: exit 2, FILE:LINE: reason --
bad() {	# bad NAME LINE-NUMBER TEXT-IN-MESSAGE  (file on stdin)
	local name=$1 line=$2 msg=$3 out rc
	cat >"$T/bad-$name"; chmod 644 "$T/bad-$name"
	out=$("$VNCSASL" -A "$T/bad-$name" -t x 2>&1); rc=$?
	if [ $rc -eq 2 ] && printf '%s' "$out" | grep -q "$T/bad-$name:$line: .*$msg"; then ok "acl-error-$name"
	else fail "acl-error-$name" "rc=$rc: $out"; fi
}
printf 'allow a\npermit b\n' | bad unknown-keyword 2 "unknown keyword"
printf '\nallow\n' | bad missing-pattern 2 "missing pattern"
printf 'allow dn:\n' | bad empty-dn 1 "empty pattern"
printf 'policy maybe\n' | bad bad-policy 1 "policy allow|deny"
printf 'policy deny\npolicy allow\n' | bad second-policy 2 "second policy"
printf 'allow a b\n' | bad extra-word 1 "want: allow"
printf 'allow a from\n' | bad from-without-glob 1 "want: allow"
printf 'allow a from x y\n' | bad trailing-words 1 "want: allow"
printf 'allow "dn:CN=a\n' | bad unterminated-quote 1 "unterminated quote"
{ printf '# long\nallow '; head -c 1100 /dev/zero | tr '\0' a; echo; } | bad line-too-long 2 "longer than"
{ for i in $(seq 1 1025); do echo "allow user$i"; done; } | bad too-many-rules 1025 "too many rules"
printf 'allow alice\n' >"$T/gw"; chmod 664 "$T/gw"
out=$("$VNCSASL" -A "$T/gw" -t x 2>&1); rc=$?
if [ $rc -eq 2 ] && printf '%s' "$out" | grep -q "group or others may write"; then ok acl-error-group-writable
else fail acl-error-group-writable "rc=$rc: $out"; fi
out=$("$VNCSASL" -A "$T/none" -t x 2>&1); rc=$?
if [ $rc -eq 2 ] && printf '%s' "$out" | grep -q "No such file"; then ok acl-error-missing-file
else fail acl-error-missing-file "rc=$rc: $out"; fi
check_fails acl-bad-file-stops-startup "$VNCSASL" -A "$T/bad-unknown-keyword" -s none -p $PORT

# -- real viewers over TLS --
mkpasswd "$T/pw" alice a-pass
mkpasswd "$T/pw" bob b-pass
mkpasswd "$T/pw" carol c-pass
mkpasswd "$T/pw" guest g-pass
mkpasswd "$T/pw" dave d-pass
acl rules <<'X'
policy deny
allow alice
allow dave
view guest
deny bob
X
p=$PORT
start_server acl -s tlssasl -P "$T/pw" -A "$T/rules" -p $p -x 1024x768@10 || exit 1
check acl-allowed-user-gets-frames timeout 30 $LVC -u alice -p a-pass -m SCRAM-SHA-256 -f 2 127.0.0.1 $p
check acl-denied-user-refused timeout 30 $LVC -u bob -p b-pass -m SCRAM-SHA-256 -E 127.0.0.1 $p
check acl-unmatched-user-refused timeout 30 $GVNC -u carol -p c-pass -E 127.0.0.1 $p
if grep -q "user=bob .*result=fail acl=deny rule=$T/rules:5" "$SRV_LOG" &&
    grep -q "user=carol .*result=fail acl=deny rule=$T/rules:policy" "$SRV_LOG" &&
    grep -q "user=alice .*result=ok acl=allow rule=$T/rules:2" "$SRV_LOG"; then ok acl-audit-lines
else fail acl-audit-lines "$(grep 'auth ' "$SRV_LOG" | tail -n 3 | tr '\n' ' ')"; fi
check acl-view-user-gets-frames timeout 30 $GVNC -u guest -p g-pass -f 2 127.0.0.1 $p
check acl-view-user-input-dropped timeout 30 $LVC -u guest -p g-pass -m SCRAM-SHA-256 -N -P 500,300,1 -K 0x71 -X nope 127.0.0.1 $p
check acl-view-gvnc-input-dropped timeout 30 $GVNC -u guest -p g-pass -N -P 501,301,1 -K 0x72 127.0.0.1 $p
if grep -q "view-only peer=.* user=guest: dropping" "$SRV_LOG"; then ok acl-view-logged; else fail acl-view-logged "no view-only line"; fi

# SIGHUP: carol becomes allowed, alice becomes denied, dave unchanged
timeout 40 $LVC -u alice -p a-pass -m SCRAM-SHA-256 -f 60 127.0.0.1 $p >"$T/alice.out" 2>&1 & alice=$!
timeout 40 $LVC -u dave -p d-pass -m SCRAM-SHA-256 -f 50 127.0.0.1 $p >"$T/dave.out" 2>&1 & dave=$!
timeout 40 $LVC -u guest -p g-pass -m SCRAM-SHA-256 -f 50 127.0.0.1 $p >"$T/guest.out" 2>&1 & guest=$!
sleep 2
acl rules <<'X'
policy deny
allow carol
allow dave
allow guest
deny alice
X
kill -HUP $SRV_PID
sleep 1
check acl-reload-allows-carol timeout 30 $GVNC -u carol -p c-pass -F0 127.0.0.1 $p
wait $alice; rc=$?
if [ $rc -ne 0 ] && grep -q "recheck peer=.* user=alice acl=deny" "$SRV_LOG" &&
    grep -q "close peer=.* user=alice .*reason=access withdrawn by $T/rules:5" "$SRV_LOG"; then ok acl-reload-closes-now-denied
else fail acl-reload-closes-now-denied "lvc rc=$rc $(tail -n 1 "$T/alice.out")"; fi
if wait $dave; then ok acl-reload-keeps-unchanged-session; else fail acl-reload-keeps-unchanged-session "$(tail -n 1 "$T/dave.out")"; fi
if wait $guest && grep -q "recheck peer=.* user=guest acl=allow" "$SRV_LOG"; then ok acl-reload-view-to-allow
else fail acl-reload-view-to-allow "$(tail -n 1 "$T/guest.out")"; fi

# a broken file on SIGHUP: old rules stay, error logged
printf 'allow alice\nwhatever\n' >"$T/rules"
kill -HUP $SRV_PID
sleep 1
if grep -q "reload: $T/rules:2: unknown keyword.*keeping the old rules" "$SRV_LOG"; then ok acl-broken-reload-logged
else fail acl-broken-reload-logged "$(tail -n 2 "$SRV_LOG")"; fi
check acl-broken-reload-keeps-rules timeout 30 $LVC -u carol -p c-pass -m SCRAM-SHA-256 -F0 127.0.0.1 $p
check acl-broken-reload-alice-still-denied timeout 30 $LVC -u alice -p a-pass -m SCRAM-SHA-256 -E 127.0.0.1 $p
stop_server

# syslog: events under LOG_DAEMON, decisions under LOG_AUTH.  Without a
# syslog daemon (CI), the test listens on /dev/log itself, then removes it.
if [ -e /dev/log ] || [ "$(id -u)" -ne 0 ]; then
	skip acl-syslog-facilities "/dev/log belongs to a running syslog, or not root"
else
	$PY - "$T/syslog.txt" <<'PYEOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
s.settimeout(1)
end = time.time() + 40
with open(sys.argv[1], "w") as out:
    while time.time() < end:
        try:
            out.write(s.recv(4096).decode(errors="replace") + "\n")
            out.flush()
        except socket.timeout:
            pass
PYEOF
	sl=$!
	trap 'stop_server; kill $sl 2>/dev/null; rm -f /dev/log' EXIT
	for _ in $(seq 1 50); do [ -S /dev/log ] && break; sleep 0.1; done
	printf 'allow carol\ndeny alice\n' >"$T/rules-syslog"
	start_server syslog -L syslog -s tlssasl -P "$T/pw" -A "$T/rules-syslog" -p $p || exit 1
	timeout 30 $LVC -u carol -p c-pass -m SCRAM-SHA-256 -F0 127.0.0.1 $p >/dev/null 2>&1
	timeout 30 $LVC -u alice -p a-pass -m SCRAM-SHA-256 -E 127.0.0.1 $p >/dev/null 2>&1
	stop_server
	sleep 1
	kill $sl 2>/dev/null; wait $sl 2>/dev/null
	rm -f /dev/log
	trap 'stop_server' EXIT
	# <PRI> = facility * 8 + severity: LOG_AUTH is 4 (32-39), LOG_DAEMON 3 (24-31)
	if grep -Eq '^<3[2-9]>.*auth peer=.* user=carol .*result=ok' "$T/syslog.txt" &&
	    grep -Eq '^<3[2-9]>.*auth peer=.* user=alice .*result=fail acl=deny' "$T/syslog.txt" &&
	    grep -Eq '^<(2[4-9]|3[01])>.*security tcp=' "$T/syslog.txt" &&
	    grep -q 'vncsasl: listening on' "$SRV_LOG"; then ok acl-syslog-facilities
	else fail acl-syslog-facilities "$(head -c 600 "$T/syslog.txt" | tr '\n' ' ')"; fi
fi
