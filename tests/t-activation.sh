#!/bin/bash
# tests/t-activation.sh - systemd-style socket activation (LISTEN_FDS,
# LISTEN_PID) through tests/activate.py: a listening socket served with
# -1, and Accept=yes's one connected socket.
# ports: 2
set -u
. "$(dirname "$0")/lib.sh"

mkpasswd "$T/pw" alice secret

# a listening socket: the server takes it instead of opening its own
$PY "$TOP/tests/activate.py" 127.0.0.1:$PORT -- "$VNCSASL" -1 -s tlssasl -P "$T/pw" \
    -x 1024x768@0 >"$T/act.out" 2>"$T/act.log" &
AP=$!; PIDS="$PIDS $AP"
inherited() {
	wait_for -t 15 "listening on 127.0.0.1:$PORT\$" "$T/act.log" ||
	    { echo "$(tailof "$T/act.log") $(tailof "$T/act.out")"; return 1; }
	! grep "::1" "$T/act.log"
}
check activation-uses-inherited-socket inherited
check activation-lvc-scram timeout 30 $LVC -u alice -p secret -m SCRAM-SHA-256 -F0 127.0.0.1 $PORT
check activation-run-once-exit-0 exits $AP 0 "$T/act.log"

# Accept=yes: one connected socket, served once
$PY "$TOP/tests/activate.py" -a 127.0.0.1:$((PORT + 1)) -- "$VNCSASL" -s none -x 1024x768@0 \
    >"$T/acta.out" 2>"$T/acta.log" &
AP=$!; PIDS="$PIDS $AP"
wait_for -t 15 "activate: listening" "$T/acta.out"
accepted() {
	timeout 30 $LVC -a none -F0 127.0.0.1 $((PORT + 1)) && exits $AP 0 "$T/acta.log" &&
	    has "$T/acta.log" "connect peer=127.0.0.1:"
}
check activation-accept-yes-connection accepted
