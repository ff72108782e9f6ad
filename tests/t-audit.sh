#!/bin/bash
# The audit cases of issue 11 (tests/hostile.py audit): two sessions and a
# resize, view-only sessions, hang-up brute force against the login delay,
# inetd behind socat with an IPv6 peer, CA-signed certificates with hostile
# subjects, mixed password files, a password flood, a rotating-source
# pre-auth flood, TLS 1.0/1.1, -T, SIGHUP, EMFILE and file owners.  Each
# case starts its own server on $PORT+1 .. $PORT+17.
# ports: 18
. "$(dirname "$0")/lib.sh"
set -u
if [ ! -x "$TOP/tests/mkcert" ]; then
	fail audit-mkcert "tests/mkcert is not built (make tests)"
	exit 0
fi
VNCSASL=$VNCSASL timeout 400 $PY "$TOP/tests/hostile.py" audit $PORT "$T"
