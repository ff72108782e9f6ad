#!/bin/bash
# 1,000 SCRAM-over-TLS logins in a row: descriptors and memory must not grow.
# ports: 1
. "$(dirname "$0")/lib.sh"
set -u
mkcerts "$T/pki"
mkpasswd "$T/pw" alice secret
start_server endurance -s x509sasl -C "$T/pki/server-cert.pem" -K "$T/pki/server-key.pem" \
    -P "$T/pw" -p $PORT -x 1024x768@0 || exit 1
timeout 600 $PY "$TOP/tests/endurance.py" $SRV_PID $PORT "$T/pki/ca-cert.pem" ${CYCLES:-1000} ||
    fail endurance-run "$(tail -n 3 "$SRV_LOG" | tr '\n' ' ')"
