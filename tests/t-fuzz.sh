#!/bin/bash
# Bounded libFuzzer runs of the client state machine (make fuzz), with
# AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer: any
# crash, UB report or leak fails.  The seed corpus is copied, not grown.
# fuzz-multi drives several viewers on one server at once (issue 11): its
# seeds hold the resize overflow of finding 1, so a server that has it
# fails at once.  FUZZ_SECS (default 60) bounds each target,
# FUZZ_MULTI_SECS (default FUZZ_SECS) fuzz-multi.
. "$(dirname "$0")/lib.sh"
set -u
SECS=${FUZZ_SECS:-60}
MSECS=${FUZZ_MULTI_SECS:-$SECS}
if ! make -s -C "$TOP" fuzz >"$T/build.log" 2>&1; then
	fail fuzz-build "$(tail -n 5 "$T/build.log" | tr '\n' ' ')"
	exit 0
fi
ok fuzz-build
for f in preauth postauth multi; do
	secs=$SECS
	[ $f = multi ] && secs=$MSECS
	rm -rf "$T/corpus-$f" "$T/art-$f"; mkdir -p "$T/art-$f"
	cp -r "$TOP/tests/fuzz-corpus/$f" "$T/corpus-$f"
	timeout $((secs + 60)) "$TOP/tests/fuzz-$f" -max_total_time=$secs -max_len=8192 \
	    -timeout=10 -rss_limit_mb=2048 -close_fd_mask=2 -detect_leaks=1 \
	    -artifact_prefix="$T/art-$f/" "$T/corpus-$f" >"$T/fuzz-$f.log" 2>&1
	rc=$?
	runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$T/fuzz-$f.log")
	if [ $rc -eq 0 ] && [ -z "$(ls "$T/art-$f")" ] && [ -n "$runs" ]; then
		ok "fuzz-$f-${secs}s-$runs-runs"
	else
		fail "fuzz-$f" "rc=$rc artifacts: $(ls "$T/art-$f" | tr '\n' ' ') $(grep -E 'ERROR|SUMMARY|^fuzz-multi:' "$T/fuzz-$f.log" | head -n 3 | tr '\n' ' ')"
	fi
done
