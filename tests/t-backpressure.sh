#!/bin/bash
# Backpressure: stopped and slow viewers beside a normal one.  The normal
# viewer keeps the picture's rate, the server's memory stays bounded, and
# a viewer that reads nothing for -D seconds is dropped with a reason.
# ports: 1
. "$(dirname "$0")/lib.sh"
set -u
p=$PORT
stall=3
start_server bp -s none -p $p -D $stall -x 1024x768@30 || exit 1
timeout 60 $PY "$TOP/tests/slowclients.py" $p "$SRV_PID" 30 $stall
n=$(grep -c "reason=viewer read nothing for $stall s (-D)" "$SRV_LOG")
if [ "$n" -eq 4 ]; then ok stall-reason-logged
else fail stall-reason-logged "$n of 4 closes say why: $(grep 'close ' "$SRV_LOG" | tail -n 2 | tr '\n' ' ')"; fi
stop_server
