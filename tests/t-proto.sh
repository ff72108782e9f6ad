#!/bin/bash
# Protocol cases with a raw-socket client of our own (tests/rfb.py):
# versions, security types, pixel formats, client messages, SASL type 20
# byte by byte on a UNIX socket, VeNCrypt edge cases.
# ports: 3
. "$(dirname "$0")/lib.sh"
set -u
printf 'sekrit\n' >"$T/vncpw"; chmod 600 "$T/vncpw"
mkpasswd "$T/pw" alice secret
p_none=$PORT p_vnc=$((PORT + 1)) p_moving=$((PORT + 2)) sock="$T/vnc.sock"
pids=
start_server none -s none -p $p_none -x 1024x768@0 -n proto-test || exit 1
pids="$pids $SRV_PID"
start_server vnc -s vnc,none -w "$T/vncpw" -p $p_vnc -x 1024x768@0 || exit 1
pids="$pids $SRV_PID"
start_server moving -s none -p $p_moving -x 1024x768@10 || exit 1
pids="$pids $SRV_PID"
start_server unix -p 0 -U "$sock" -P "$T/pw" -m SCRAM-SHA-256,SCRAM-SHA-1,PLAIN,LOGIN -x 1024x768@0 || exit 1
pids="$pids $SRV_PID"
trap 'kill $pids 2>/dev/null; wait 2>/dev/null' EXIT
timeout 300 $PY "$TOP/tests/rfb.py" $p_none $p_vnc "$sock" $p_moving
# every server survived all of that
for p in $pids; do
	kill -0 "$p" 2>/dev/null || fail "server-alive-$p" "server died: $(tail -n 3 "$T"/*.log)"
done
ok servers-survived
# SIGTERM: clean exit, UNIX socket removed
kill -TERM $pids
sleep 0.5
if [ -e "$sock" ]; then fail unix-socket-unlinked "$sock still exists"; else ok unix-socket-unlinked; fi
