#!/bin/bash
# tests/t-inetd.sh - inetd mode (-i): vncsasl on the connection socat's
# EXEC hands it, with a real viewer; it exits when its client leaves, and
# the ACL's "from" rules see socat's peer (SOCAT_PEERADDR) or, when stdin
# is not an IP socket, a UCSPI super-server's TCPREMOTEIP.
# ports: 2
set -u
. "$(dirname "$0")/lib.sh"

mkpasswd "$T/pw" alice secret
printf 'allow alice from 127.0.0.1\ndeny *\n' >"$T/acl-lo"
printf 'allow alice from 10.*\ndeny *\n' >"$T/acl-ten"
printf 'allow alice from 10.1.2.3\ndeny *\n' >"$T/acl-ucspi"
chmod 600 "$T"/acl-*

# inetd NAME PORT COMMAND: socat on PORT runs COMMAND on each connection;
# its pid in SP, what it and COMMAND say in $T/NAME.log
inetd() {
	socat TCP-LISTEN:$2,bind=127.0.0.1,reuseaddr EXEC:"$3" >/dev/null 2>"$T/$1.log" &
	SP=$!; PIDS="$PIDS $SP"
	wait_listen $2
}

inetd inetd $PORT "$VNCSASL -i -L stderr -s none -x 1024x768@0"
check inetd-socat-lvc timeout 30 $LVC -a none -F0 127.0.0.1 $PORT
gone_after_client() {
	wait_exit $SP 10 || { echo "socat/vncsasl still running"; return 1; }
	has "$T/inetd.log" 'vncsasl: exit' && has "$T/inetd.log" 'connect peer=127.0.0.1:'
}
check inetd-exits-after-client gone_after_client

# login NAME ACL LOG-PATTERN LVC-ARGS...: one -i login through socat
# ($EXEC runs vncsasl); the viewer has what it wants (-F0: frames, -E:
# refused) and vncsasl logs LOG-PATTERN
login() {
	local name=$1 acl=$2 pat=$3 rc=0; shift 3
	inetd "$name" $((PORT + 1)) "$EXEC -i -L stderr -s tlssasl -P $T/pw -A $acl -x 1024x768@0"
	timeout 30 $LVC -m SCRAM-SHA-256 "$@" 127.0.0.1 $((PORT + 1)) || rc=$?
	wait_exit $SP 10 || kill $SP 2>/dev/null
	[ $rc -eq 0 ] || { echo "lvc exit $rc"; return 1; }
	has "$T/$name.log" "$pat"
}
EXEC=$VNCSASL
check inetd-acl-from-rule-allows login inetd-acl-allow "$T/acl-lo" \
    "auth peer=127.0.0.1:[0-9]* sec=tlssasl mech=SCRAM-SHA-256 user=alice .*result=ok acl=allow rule=$T/acl-lo:1" \
    -u alice -p secret -F0
check inetd-acl-from-rule-denies login inetd-acl-deny "$T/acl-ten" \
    "auth peer=127.0.0.1:[0-9]* .*user=alice .*result=fail acl=deny rule=$T/acl-ten:2" \
    -u alice -p secret -E
EXEC="env -u SOCAT_PEERADDR TCPREMOTEIP=10.1.2.3 TCPREMOTEPORT=4242 $VNCSASL"
check inetd-ucspi-peer-from-environment login inetd-ucspi "$T/acl-ucspi" \
    "auth peer=10.1.2.3:4242 .*user=alice .*result=ok acl=allow rule=$T/acl-ucspi:1" \
    -u alice -p secret -F0
