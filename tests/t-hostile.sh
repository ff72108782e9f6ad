#!/bin/bash
# The hostile-client suite (tests/hostile.py) against one server.
. "$(dirname "$0")/lib.sh"
set -u
printf 'sekrit\n' >"$T/vncpw"; chmod 600 "$T/vncpw"
mkpasswd "$T/pw" alice secret
start_server hostile -s none,vnc,tlssasl,sasl -w "$T/vncpw" -P "$T/pw" -l 127.0.0.1 -p $PORT \
    -U "$T/sock" -x 1024x768@30 -o fail-delay=1 || exit 1
timeout 600 $PY "$TOP/tests/hostile.py" $SRV_PID $PORT "$T/sock" | grep -v ' passed, '
if kill -0 $SRV_PID 2>/dev/null; then ok hostile-server-survived
else fail hostile-server-survived "$(tail -n 5 "$SRV_LOG")"; fi
