#!/bin/bash
# The hostile-client suite (tests/hostile.py) against one server.
# ports: 1
. "$(dirname "$0")/lib.sh"
set -u
printf 'sekrit\n' >"$T/vncpw"; chmod 600 "$T/vncpw"
mkpasswd "$T/pw" alice secret
# glibc's debug malloc checks each heap block's bounds when it is freed,
# so a plain build aborts on an overflow past a block (the resize case)
# instead of living on with a corrupt heap.  Sanitizer builds (t-asan.sh
# runs this script with one) check more, and their runtime must come first.
# The library sits beside the C library the server links (multiarch
# systems may hold other architectures' copies too).
case $VNCSASL in
*asan*) ;;
*)	libc=$(ldd "$VNCSASL" 2>/dev/null | awk '/libc\.so/ { print $3 }')
	lib=${libc%/*}/libc_malloc_debug.so.0
	[ -n "$libc" ] && [ -f "$lib" ] && export LD_PRELOAD=$lib MALLOC_CHECK_=3 ;;
esac
start_server hostile -s none,vnc,tlssasl,sasl -w "$T/vncpw" -P "$T/pw" -l 127.0.0.1 -p $PORT \
    -U "$T/sock" -x 1024x768@30 -o fail-delay=1 || exit 1
unset LD_PRELOAD MALLOC_CHECK_
timeout 600 $PY "$TOP/tests/hostile.py" $SRV_PID $PORT "$T/sock" | grep -v ' passed, '
if kill -0 $SRV_PID 2>/dev/null; then ok hostile-server-survived
else fail hostile-server-survived "$(tail -n 5 "$SRV_LOG")"; fi
