#!/bin/bash
# tests/t-ops.sh - operations: inetd mode through socat, systemd-style
# socket activation (tests/activate.py), reverse connections to a
# listening viewer (tests/revlisten.py), -1, clean exit on SIGTERM and
# SIGINT, syslog facilities, make install/uninstall, the man page, the
# clang -Werror build and the static build serving a real viewer.
#
# Ports: $PORT+20 .. $PORT+30 (the low ones of the range are the ones
# other scripts' concurrent runs are likeliest to hold).  Builds happen in a copy of the tree under
# $T/src, so ./vncsasl, which other tests use, is never rebuilt here.
set -u
. "$(dirname "$0")/lib.sh"

LVC=$TOP/tests/lvc
mkcerts "$T/pki"
CA="$T/pki/ca-cert.pem" CERT="$T/pki/server-cert.pem" KEY="$T/pki/server-key.pem"
mkpasswd "$T/pw" alice secret
PIDS=
cleanup() {
	local p
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	stop_server
}
trap cleanup EXIT

# tailof FILE [N]: the last lines of a file on one line, for FAIL messages
tailof() { tail -n "${2:-3}" "$1" 2>/dev/null | tr '\n' ' '; }
# wait_for FILE TEXT [SECONDS]: until TEXT shows in FILE (bounded)
wait_for() {
	local i
	for i in $(seq 1 $((${3:-10} * 10))); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# wait_listen PORT: until something listens on 127.0.0.1:PORT (<= 10 s)
wait_listen() {
	local hex i
	hex=$(printf '0100007F:%04X 00000000:0000 0A' "$1")
	for i in $(seq 1 100); do
		grep -q "$hex" /proc/net/tcp && return 0
		sleep 0.1
	done
	return 1
}
# wait_exit PID SECONDS: until PID ends; its status in $RC (124: still running)
wait_exit() {
	local i
	RC=124
	for i in $(seq 1 $(($2 * 10))); do
		kill -0 "$1" 2>/dev/null || { wait "$1"; RC=$?; return 0; }
		sleep 0.1
	done
	return 1
}
logged() { grep -q -- "$2" "$1"; }

printf 'allow alice from 127.0.0.1\ndeny *\n' >"$T/acl-lo"
printf 'allow alice from 10.*\ndeny *\n' >"$T/acl-ten"
printf 'allow alice from 10.1.2.3\ndeny *\n' >"$T/acl-ucspi"
chmod 600 "$T"/acl-*

# ---- inetd mode (-i) through socat EXEC, with real viewers ---------------
p=$((PORT + 20))
socat TCP-LISTEN:$p,bind=127.0.0.1,reuseaddr \
    EXEC:"$VNCSASL -i -L stderr -s none -x 1024x768@0" 2>"$T/inetd.log" &
sp=$!; PIDS="$PIDS $sp"
wait_listen $p
if timeout 30 $LVC -a none -F0 127.0.0.1 $p >"$T/out" 2>&1; then ok inetd-socat-lvc
else fail inetd-socat-lvc "$(tailof "$T/out") $(tailof "$T/inetd.log")"; fi
if wait_exit $sp 10 && logged "$T/inetd.log" 'vncsasl: exit' &&
    logged "$T/inetd.log" 'connect peer=127.0.0.1:'; then ok inetd-exits-after-client
else fail inetd-exits-after-client "socat/vncsasl still running or no exit: $(tailof "$T/inetd.log")"; fi

# the ACL's from rules see the socat peer (SOCAT_PEERADDR)
inetd_login() {	# NAME ACL LVC-ARGS...: one -i login through socat
	local name=$1 acl=$2; shift 2
	p=$((PORT + 21))
	socat TCP-LISTEN:$p,bind=127.0.0.1,reuseaddr EXEC:"$INETD_EXEC -i -L stderr -s tlssasl -P $T/pw -A $acl -x 1024x768@0" \
	    2>"$T/$name.log" &
	sp=$!; PIDS="$PIDS $sp"
	wait_listen $p
	timeout 30 $LVC -m SCRAM-SHA-256 "$@" 127.0.0.1 $p >"$T/$name.out" 2>&1
	LVC_RC=$?
	wait_exit $sp 10 || kill $sp 2>/dev/null
}
INETD_EXEC=$VNCSASL
inetd_login inetd-acl-allow "$T/acl-lo" -u alice -p secret -F0
if [ $LVC_RC -eq 0 ] && logged "$T/inetd-acl-allow.log" \
    "auth peer=127.0.0.1:[0-9]* sec=tlssasl mech=SCRAM-SHA-256 user=alice .*result=ok acl=allow rule=$T/acl-lo:1"
then ok inetd-acl-from-rule-allows
else fail inetd-acl-from-rule-allows "lvc $LVC_RC: $(tailof "$T/inetd-acl-allow.out") $(grep 'auth ' "$T/inetd-acl-allow.log")"; fi
inetd_login inetd-acl-deny "$T/acl-ten" -u alice -p secret -E
if [ $LVC_RC -eq 0 ] && logged "$T/inetd-acl-deny.log" \
    "auth peer=127.0.0.1:[0-9]* .*user=alice .*result=fail acl=deny rule=$T/acl-ten:2"
then ok inetd-acl-from-rule-denies
else fail inetd-acl-from-rule-denies "lvc $LVC_RC: $(tailof "$T/inetd-acl-deny.out") $(grep 'auth ' "$T/inetd-acl-deny.log")"; fi
# a UCSPI super-server's TCPREMOTEIP, when stdin is not an IP socket
INETD_EXEC="env -u SOCAT_PEERADDR TCPREMOTEIP=10.1.2.3 TCPREMOTEPORT=4242 $VNCSASL"
inetd_login inetd-ucspi "$T/acl-ucspi" -u alice -p secret -F0
if [ $LVC_RC -eq 0 ] && logged "$T/inetd-ucspi.log" \
    "auth peer=10.1.2.3:4242 .*user=alice .*result=ok acl=allow rule=$T/acl-ucspi:1"
then ok inetd-ucspi-peer-from-environment
else fail inetd-ucspi-peer-from-environment "lvc $LVC_RC: $(tailof "$T/inetd-ucspi.out") $(grep 'auth ' "$T/inetd-ucspi.log")"; fi

# ---- socket activation (LISTEN_FDS/LISTEN_PID) ----------------------------
p=$((PORT + 22))
$PY "$TOP/tests/activate.py" 127.0.0.1:$p -- "$VNCSASL" -1 -s tlssasl -P "$T/pw" \
    -x 1024x768@0 >"$T/act.out" 2>"$T/act.log" &
ap=$!; PIDS="$PIDS $ap"
if wait_for "$T/act.log" "listening on 127.0.0.1:$p\$" 15 &&
    ! logged "$T/act.log" "::1"; then ok activation-uses-inherited-socket
else fail activation-uses-inherited-socket "$(tailof "$T/act.log") $(tailof "$T/act.out")"; fi
if timeout 30 $LVC -u alice -p secret -m SCRAM-SHA-256 -F0 127.0.0.1 $p >"$T/out" 2>&1
then ok activation-lvc-scram
else fail activation-lvc-scram "$(tailof "$T/out") $(tailof "$T/act.log")"; fi
if wait_exit $ap 10 && [ $RC -eq 0 ]; then ok activation-run-once-exit-0
else fail activation-run-once-exit-0 "status $RC: $(tailof "$T/act.log")"; fi

# Accept=yes: one connected socket, served once
p=$((PORT + 23))
$PY "$TOP/tests/activate.py" -a 127.0.0.1:$p -- "$VNCSASL" -s none -x 1024x768@0 \
    >"$T/acta.out" 2>"$T/acta.log" &
ap=$!; PIDS="$PIDS $ap"
wait_for "$T/acta.out" "activate: listening" 15
if timeout 30 $LVC -a none -F0 127.0.0.1 $p >"$T/out" 2>&1 && wait_exit $ap 10 &&
    [ $RC -eq 0 ] && logged "$T/acta.log" "connect peer=127.0.0.1:"
then ok activation-accept-yes-connection
else fail activation-accept-yes-connection "status $RC: $(tailof "$T/out") $(tailof "$T/acta.log")"; fi

# ---- reverse connection (-c) to a listening viewer -----------------------
# reverse NAME PORT VNCSASL-ARGS... ; revlisten gets $REV_CA if set
reverse() {
	local name=$1 rp=$2; shift 2
	$PY "$TOP/tests/revlisten.py" "$rp" alice secret ${REV_CA:-} >"$T/$name.out" 2>&1 &
	local lp=$!
	PIDS="$PIDS $lp"
	wait_for "$T/$name.out" "revlisten: listening" 15
	timeout 40 "$VNCSASL" -1 -c 127.0.0.1:$rp -p 0 -x 1024x768@0 "$@" 2>"$T/$name.log"
	SRV_RC=$?
	wait_exit $lp 20 || kill $lp 2>/dev/null
	LST_RC=$RC
}
REV_CA=
reverse rev-tlssasl $((PORT + 24)) -P "$T/pw" -A "$T/acl-lo"
if [ $SRV_RC -eq 0 ] && [ "$LST_RC" -eq 0 ] && logged "$T/rev-tlssasl.out" "^ok: .*sec=tlssasl" &&
    logged "$T/rev-tlssasl.log" "auth peer=127.0.0.1:$((PORT + 24)) sec=tlssasl mech=SCRAM-SHA-256 user=alice .*result=ok acl=allow rule=$T/acl-lo:1"
then ok reverse-tlssasl-scram-acl-run-once
else fail reverse-tlssasl-scram-acl-run-once "server $SRV_RC listener $LST_RC: $(tailof "$T/rev-tlssasl.out" 2) $(tailof "$T/rev-tlssasl.log")"; fi
REV_CA=$CA
reverse rev-x509sasl $((PORT + 25)) -C "$CERT" -K "$KEY" -P "$T/pw"
if [ $SRV_RC -eq 0 ] && [ "$LST_RC" -eq 0 ] && logged "$T/rev-x509sasl.out" "^ok: .*sec=x509sasl"
then ok reverse-x509sasl-scram-run-once
else fail reverse-x509sasl-scram-run-once "server $SRV_RC listener $LST_RC: $(tailof "$T/rev-x509sasl.out" 2) $(tailof "$T/rev-x509sasl.log")"; fi
REV_CA=
timeout 20 "$VNCSASL" -c 127.0.0.1:$((PORT + 26)) -p 0 -P "$T/pw" >"$T/rev-refused.log" 2>&1
rc=$?
if [ $rc -eq 1 ]; then ok reverse-nobody-listening-exit-1
else fail reverse-nobody-listening-exit-1 "status $rc: $(tailof "$T/rev-refused.log")"; fi

# ---- -1, SIGTERM and SIGINT -------------------------------------------------
p=$((PORT + 27))
start_server once -1 -s none -p $p -x 1024x768@0 || exit 1
timeout 30 $LVC -a none -F0 127.0.0.1 $p >"$T/out" 2>&1
if wait_exit $SRV_PID 10 && [ $RC -eq 0 ]; then ok run-once-exits-0-after-client
else fail run-once-exits-0-after-client "status $RC: $(tailof "$T/out") $(tailof "$SRV_LOG")"; fi
SRV_PID=

# holder SOCKET: a raw viewer logged in (None) that then reports whether
# the server closed it with or without sending anything more
holder() {
	$PY - "$1" >"$T/holder.out" 2>&1 <<'PYEOF' &
import os, sys
sys.path.insert(0, os.path.join(os.environ["TOP"], "tests"))
import rfb
c = rfb.login_none(sys.argv[1])
rfb.server_init(c)
print("ready", flush=True)
c.s.settimeout(15)
try:
    d = c.s.recv(4096)
    print("eof" if not d else "got %d bytes" % len(d), flush=True)
except Exception as e:
    print("error %s" % e, flush=True)
PYEOF
	HOLDER=$!
	PIDS="$PIDS $HOLDER"
	wait_for "$T/holder.out" ready 10
}
export TOP
for sig in TERM INT; do
	sock=$T/vnc-$sig.sock
	start_server sig$sig -p 0 -U "$sock" -s none -x 1024x768@0 || exit 1
	holder "$sock"
	kill -$sig $SRV_PID
	if wait_exit $SRV_PID 10 && [ $RC -eq 0 ] && [ ! -e "$sock" ] &&
	    wait_exit $HOLDER 10 && logged "$T/holder.out" '^eof$'; then
		ok "sig$sig-exit-0-socket-removed-client-closed"
	else
		fail "sig$sig-exit-0-socket-removed-client-closed" "status $RC, socket $( [ -e "$sock" ] && echo left || echo gone), client: $(tailof "$T/holder.out") $(tailof "$SRV_LOG")"
	fi
	SRV_PID=
done
# with -u the server still removes its socket (it is chowned to USER)
if id nobody >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
	d=$T/sockdir; mkdir -p "$d"; chmod 1777 "$d"
	start_server sig-u -p 0 -U "$d/vnc.sock" -s none -x 1024x768@0 -u nobody || exit 1
	kill $SRV_PID
	if wait_exit $SRV_PID 10 && [ $RC -eq 0 ] && [ ! -e "$d/vnc.sock" ]; then
		ok sigterm-socket-removed-after-privilege-drop
	else
		fail sigterm-socket-removed-after-privilege-drop "status $RC, socket $(ls -l "$d/vnc.sock" 2>&1): $(tailof "$SRV_LOG")"
	fi
	SRV_PID=
else
	skip sigterm-socket-removed-after-privilege-drop "needs root and user nobody"
fi

# ---- syslog (-L syslog, and -i's default) --------------------------------
# glibc's syslog() writes to /dev/log.  A private mount namespace gets a
# /dev of its own whose "log" leads to a collector here, so no system
# logger is needed and nothing outside the namespace changes.
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
if unshare -m true 2>/dev/null; then
	p=$((PORT + 28))
	collect "$T/syslog.txt"
	in_logns "$VNCSASL" -1 -L syslog -s tlssasl -P "$T/pw" -A "$T/acl-lo" -p $p \
	    -x 1024x768@0 2>"$T/syslog.err" &
	sp=$!; PIDS="$PIDS $sp"
	wait_for "$T/syslog.err" "listening on" 15
	timeout 30 $LVC -u alice -p secret -m SCRAM-SHA-256 -F0 127.0.0.1 $p >"$T/out" 2>&1
	wait_exit $sp 10
	sleep 0.3
	# <PRI> = facility * 8 + severity: LOG_AUTH 4 (32-39), LOG_DAEMON 3 (24-31)
	if grep -Eq '^<3[2-9]>.*vncsasl\[[0-9]+\]: auth peer=127.0.0.1:.* user=alice .*result=ok acl=allow' "$T/syslog.txt" &&
	    grep -Eq '^<(2[4-9]|3[01])>.*vncsasl\[[0-9]+\]: connect peer=127.0.0.1:' "$T/syslog.txt" &&
	    ! grep -q 'auth peer' "$T/syslog.err"; then
		ok syslog-auth-decisions-and-daemon-events
	else
		fail syslog-auth-decisions-and-daemon-events "$(tailof "$T/out" 1) $(tailof "$T/syslog.txt" 4)"
	fi
	kill $COLLECTOR 2>/dev/null
	p=$((PORT + 29))
	collect "$T/syslog-i.txt"
	in_logns socat TCP-LISTEN:$p,bind=127.0.0.1,reuseaddr \
	    EXEC:"$VNCSASL -i -s none -x 1024x768@0" 2>"$T/syslog-i.err" &
	sp=$!; PIDS="$PIDS $sp"
	wait_listen $p
	timeout 30 $LVC -a none -F0 127.0.0.1 $p >"$T/out" 2>&1
	wait_exit $sp 10
	sleep 0.3
	if grep -Eq '^<3[2-9]>.*auth peer=127.0.0.1:' "$T/syslog-i.txt" &&
	    [ ! -s "$T/syslog-i.err" ] &&
	    ! LC_ALL=C grep -q '[^[:print:]]' "$T/syslog-i.txt" &&
	    ! grep 'listening on' "$T/syslog-i.txt" | grep -Evq 'listening on [[:graph:]]'; then
		ok inetd-logs-to-syslog-by-default
	else
		fail inetd-logs-to-syslog-by-default "stderr: $(tailof "$T/syslog-i.err" 2) syslog: $(LC_ALL=C grep -n '[^[:print:]]' "$T/syslog-i.txt" | cat -v | head -n 2 | tr '\n' ' ')"
	fi
	kill $COLLECTOR 2>/dev/null
else
	skip syslog-auth-decisions-and-daemon-events "no mount namespaces here (unshare -m)"
	skip inetd-logs-to-syslog-by-default "no mount namespaces here (unshare -m)"
fi

# ---- the man page --------------------------------------------------------
if command -v mandoc >/dev/null; then
	out=$(mandoc -Tlint "$TOP/vncsasl.8" 2>&1 | grep -v 'outdated mandoc.db')
	if [ -z "$out" ]; then ok mandoc-lint-clean
	else fail mandoc-lint-clean "$(printf '%s' "$out" | head -n 3 | tr '\n' ' ')"; fi
	# every option of -h is in the man page
	missing=
	for o in $("$VNCSASL" -h 2>&1 | sed -n 's/^  \(-[A-Za-z0-9]\) .*/\1/p'); do
		grep -q "^\.It Fl ${o#-}\( \|\$\)" "$TOP/vncsasl.8" || missing="$missing $o"
	done
	if [ -z "$missing" ]; then ok man-page-has-every-option
	else fail man-page-has-every-option "missing:$missing"; fi
else
	skip mandoc-lint-clean "mandoc not installed"
	skip man-page-has-every-option "mandoc not installed"
fi

# ---- builds in a copy of the tree ----------------------------------------
rm -rf "$T/src"
mkdir -p "$T/src"
tar -C "$TOP" --exclude=./.git --exclude=./tests/tmp --exclude='*.o' \
    --exclude=./vncsasl --exclude=./vncsasl-static --exclude=./vncsasl-x11 \
    -cf - . | tar -C "$T/src" -xf -
rm -f "$T/src"/.fbstamp-*

# make install / uninstall
if make -s -C "$T/src" install DESTDIR="$T/root" PREFIX=/usr >"$T/install.out" 2>&1; then
	files=$(cd "$T/root" && find . -type f | sort | tr '\n' ' ')
	modes=$(stat -c '%a' "$T/root/usr/bin/vncsasl" "$T/root/usr/share/man/man8/vncsasl.8" 2>/dev/null | tr '\n' ' ')
	if [ "$files" = "./usr/bin/vncsasl ./usr/share/man/man8/vncsasl.8 " ] &&
	    [ "$modes" = "755 644 " ]; then ok make-install-destdir
	else fail make-install-destdir "files: $files modes: $modes"; fi
	make -s -C "$T/src" uninstall DESTDIR="$T/root" PREFIX=/usr >>"$T/install.out" 2>&1
	left=$(cd "$T/root" && find . -type f | tr '\n' ' ')
	if [ -z "$left" ]; then ok make-uninstall
	else fail make-uninstall "left: $left"; fi
else
	fail make-install-destdir "$(tailof "$T/install.out")"
	skip make-uninstall "install failed"
fi

# clang, -std=c99 -Wall -Wextra -Werror, both framebuffer sources
if command -v clang >/dev/null; then
	make -s -C "$T/src" clean >/dev/null 2>&1
	for fb in dummy x11 linux; do
		if make -s -C "$T/src" CC=clang WERROR=1 FB=$fb vncsasl >"$T/clang-$fb.out" 2>&1 &&
		    "$T/src/vncsasl" -V | grep -q "framebuffer: $fb"; then ok "clang-werror-build-$fb"
		else fail "clang-werror-build-$fb" "$(tailof "$T/clang-$fb.out" 4)"; fi
	done
else
	skip clang-werror-build-dummy "clang not installed"
	skip clang-werror-build-x11 "clang not installed"
	skip clang-werror-build-linux "clang not installed"
fi

# make static: a statically linked dummy server that serves a real viewer
if make -s -C "$T/src" static >"$T/static.out" 2>&1 && [ -x "$T/src/vncsasl-static" ]; then
	ST=$T/src/vncsasl-static
	if LC_ALL=C ldd "$ST" 2>&1 | grep -q 'not a dynamic executable' &&
	    "$ST" -V | grep -q '^tls: on' && "$ST" -V | grep -q 'SCRAM-SHA-256'; then
		ok make-static-is-static
	else fail make-static-is-static "$(LC_ALL=C ldd "$ST" 2>&1 | head -n 2 | tr '\n' ' ')"; fi
	p=$((PORT + 30))
	VNCSASL=$ST start_server static -s x509sasl,tlssasl -C "$CERT" -K "$KEY" -P "$T/pw" \
	    -p $p -x 1024x768@0 || exit 1
	if timeout 30 $LVC -C "$CA" -u alice -p secret -m SCRAM-SHA-256 -F0 127.0.0.1 $p >"$T/out" 2>&1 &&
	    logged "$SRV_LOG" "auth .*sec=x509sasl mech=SCRAM-SHA-256 user=alice .*result=ok"
	then ok static-serves-lvc-x509sasl-scram
	else fail static-serves-lvc-x509sasl-scram "$(tailof "$T/out") $(tailof "$SRV_LOG")"; fi
	stop_server
	VNCSASL=$ST start_server static2 -s tlssasl -P "$T/pw" -p $p -x 1024x768@0 || exit 1
	if timeout 30 $LVC -u alice -p secret -m SCRAM-SHA-256 -F0 127.0.0.1 $p >"$T/out" 2>&1
	then ok static-serves-lvc-tlssasl-scram
	else fail static-serves-lvc-tlssasl-scram "$(tailof "$T/out") $(tailof "$SRV_LOG")"; fi
	stop_server
else
	fail make-static-is-static "$(grep -v 'statically linked applications\|in function' "$T/static.out" | tail -n 3 | tr '\n' ' ')"
	skip static-serves-lvc-x509sasl-scram "no static build"
	skip static-serves-lvc-tlssasl-scram "no static build"
fi

# ---- contrib/ --------------------------------------------------------------
if sh -n "$TOP/contrib/rc.d/vncsasl" 2>"$T/rcd.out" &&
    grep -q '^rcvar=' "$TOP/contrib/rc.d/vncsasl"; then ok contrib-rc.d-parses
else fail contrib-rc.d-parses "$(tailof "$T/rcd.out")"; fi
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$T/units"
	for u in vncsasl.socket vncsasl.service vncsasl@.service; do
		sed "s#/usr/local/bin/vncsasl#$VNCSASL#" "$TOP/contrib/$u" >"$T/units/$u"
	done
	out=$(cd "$T/units" && systemd-analyze verify --man=no ./vncsasl.socket \
	    ./vncsasl.service ./vncsasl@.service 2>&1)
	if [ -z "$out" ]; then ok contrib-systemd-units-verify
	else fail contrib-systemd-units-verify "$(printf '%s' "$out" | head -n 3 | tr '\n' ' ')"; fi
else
	skip contrib-systemd-units-verify "no systemd-analyze"
fi
