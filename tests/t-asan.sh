#!/bin/bash
# The protocol, real-viewer, hostile, audit and ContinuousUpdates tests once
# more, against the server built with AddressSanitizer +
# UndefinedBehaviorSanitizer (make asan); then one whole session (SCRAM over
# TLS, frames, input, close) under valgrind.
# ports: 28 (valgrind's, then t-proto's, t-viewers', t-hostile's, t-audit's
# and t-cu's, as many as each script's own "# ports:" line says, 20 without one)
. "$(dirname "$0")/lib.sh"
set -u
if ! make -s -C "$TOP" WERROR=1 asan >"$T/build.log" 2>&1; then
	fail asan-build "$(tail -n 5 "$T/build.log" | tr '\n' ' ')"
	exit 0
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
p=$((PORT + 1))
for t in proto viewers hostile audit cu; do
	n=$(sed -n '1,20s/^# ports: *\([0-9][0-9]*\).*/\1/p' "$TOP/tests/t-$t.sh" | head -n 1)
	if [ $((p + ${n:-20})) -gt $((PORT + 28)) ]; then
		fail "asan-$t" "t-$t.sh wants more ports than the 28 t-asan.sh says it uses"
		break
	fi
	mkdir -p "$T/$t"
	VNCSASL="$TOP/vncsasl-asan" T="$T/$t" PORT=$p timeout 900 \
	    bash "$TOP/tests/t-$t.sh" >"$T/$t.out" 2>"$T/$t.stderr"
	rc=$?
	sed 's/^\(ok\|FAIL\|skip\) /\1 asan-/' "$T/$t.out"
	if [ $rc -ne 0 ] || ! grep -q '^ok ' "$T/$t.out"; then
		fail "asan-$t" "exit $rc: $(tail -n 2 "$T/$t.stderr" | tr '\n' ' ')"
	fi
	p=$((p + ${n:-20}))
done
reports=$(grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*/*.log "$T"/*.stderr 2>/dev/null)
if [ -z "$reports" ]; then ok asan-no-sanitizer-reports
else fail asan-no-sanitizer-reports "$(grep -h -E -A3 'ERROR: |runtime error:' $reports | head -n 8 | tr '\n' ' ')"; fi

# valgrind: one full session, then a clean exit
mkcerts "$T/pki"
mkpasswd "$T/pw" alice secret
valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --log-file="$T/valgrind.txt" "$VNCSASL" -s x509sasl -C "$T/pki/server-cert.pem" \
    -K "$T/pki/server-key.pem" -P "$T/pw" -p $PORT -x 1024x768@10 2>"$T/vg-server.log" &
vg=$!
wait_for -t 20 -p $vg 'listening on' "$T/vg-server.log"
timeout 120 "$TOP/tests/lvc" -C "$T/pki/ca-cert.pem" -u alice -p secret -m SCRAM-SHA-256 \
    -f 3 -P 10,10,1 -K 0x61 -X clip -t 100 127.0.0.1 $PORT >"$T/vg-lvc.out" 2>&1
lrc=$?
kill -TERM $vg
wait $vg; vrc=$?
if [ $lrc -eq 0 ] && [ $vrc -eq 0 ] && grep -q 'ERROR SUMMARY: 0 errors' "$T/valgrind.txt"; then
	ok valgrind-clean-session
else
	fail valgrind-clean-session "viewer rc=$lrc valgrind rc=$vrc $(grep -E 'ERROR SUMMARY|definitely' "$T/valgrind.txt" | tr '\n' ' ') $(tail -n 1 "$T/vg-lvc.out")"
fi
