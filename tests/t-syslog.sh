#!/bin/bash
# tests/t-syslog.sh - -L syslog, and -i's default: events under LOG_DAEMON,
# authentication decisions under LOG_AUTH, nothing on stderr.
#
# glibc's syslog() writes to /dev/log.  A private mount namespace gets a
# /dev of its own whose "log" leads to a collector here, so no system
# logger is needed and nothing outside the namespace changes.
# ports: 2
set -u
. "$(dirname "$0")/lib.sh"

if ! unshare -m true 2>/dev/null; then
	skip syslog-auth-decisions-and-daemon-events "no mount namespaces here (unshare -m)"
	skip inetd-logs-to-syslog-by-default "no mount namespaces here (unshare -m)"
	exit 0
fi
mkpasswd "$T/pw" alice secret
printf 'allow alice from 127.0.0.1\ndeny *\n' >"$T/acl-lo"
chmod 600 "$T/acl-lo"

collect() {	# FILE: receive datagrams on $T/log.sock for at most 40 s
	rm -f "$T/log.sock"
	$PY - "$T/log.sock" "$1" <<'PYEOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(0.2)
end = time.time() + 40
with open(sys.argv[2], "ab", buffering=0) as f:
    while time.time() < end:
        try:
            f.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
        except socket.timeout:
            pass
PYEOF
	COLLECTOR=$!
	PIDS="$PIDS $COLLECTOR"
	for _ in $(seq 1 50); do [ -S "$T/log.sock" ] && break; sleep 0.1; done
}
# in_logns COMMAND: run COMMAND with /dev/log leading to $T/log.sock
in_logns() {
	mkdir -p "$T/dev"
	: >"$T/dev/null"
	ln -sf "$T/log.sock" "$T/dev/log"
	unshare -m sh -c 'mount --bind /dev/null "$1/dev/null" &&
	    mount --bind "$1/dev" /dev && shift && exec "$@"' sh "$T" "$@"
}

# -L syslog: one login, then -1 ends the server
collect "$T/syslog.txt"
in_logns "$VNCSASL" -1 -L syslog -s tlssasl -P "$T/pw" -A "$T/acl-lo" -p $PORT \
    -x 1024x768@0 2>"$T/syslog.err" &
sp=$!; PIDS="$PIDS $sp"
wait_for -t 15 "listening on" "$T/syslog.err"
timeout 30 $LVC -u alice -p secret -m SCRAM-SHA-256 -F0 127.0.0.1 $PORT >"$T/out" 2>&1
wait_exit $sp 10
sleep 0.3
kill $COLLECTOR 2>/dev/null
# <PRI> = facility * 8 + severity: LOG_AUTH 4 (32-39), LOG_DAEMON 3 (24-31)
facilities() {
	grep -Eq '^<3[2-9]>.*vncsasl\[[0-9]+\]: auth peer=127.0.0.1:.* user=alice .*result=ok acl=allow' "$T/syslog.txt" &&
	    grep -Eq '^<(2[4-9]|3[01])>.*vncsasl\[[0-9]+\]: connect peer=127.0.0.1:' "$T/syslog.txt" &&
	    ! grep -q 'auth peer' "$T/syslog.err" && return 0
	echo "$(tailof "$T/out" 1) $(tailof "$T/syslog.txt" 4)"
	return 1
}
check syslog-auth-decisions-and-daemon-events facilities

# -i logs to syslog unless told otherwise, in printable lines
collect "$T/syslog-i.txt"
in_logns socat TCP-LISTEN:$((PORT + 1)),bind=127.0.0.1,reuseaddr \
    EXEC:"$VNCSASL -i -s none -x 1024x768@0" 2>"$T/syslog-i.err" &
sp=$!; PIDS="$PIDS $sp"
wait_listen $((PORT + 1))
timeout 30 $LVC -a none -F0 127.0.0.1 $((PORT + 1)) >"$T/out" 2>&1
wait_exit $sp 10
sleep 0.3
kill $COLLECTOR 2>/dev/null
inetd_default() {
	grep -Eq '^<3[2-9]>.*auth peer=127.0.0.1:' "$T/syslog-i.txt" &&
	    [ ! -s "$T/syslog-i.err" ] &&
	    ! LC_ALL=C grep -q '[^[:print:]]' "$T/syslog-i.txt" &&
	    ! grep 'listening on' "$T/syslog-i.txt" | grep -Evq 'listening on [[:graph:]]' && return 0
	echo "stderr: $(tailof "$T/syslog-i.err" 2) syslog: $(LC_ALL=C grep -n '[^[:print:]]' "$T/syslog-i.txt" | cat -v | head -n 2 | tr '\n' ' ')"
	return 1
}
check inetd-logs-to-syslog-by-default inetd_default
