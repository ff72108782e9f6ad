#!/bin/bash
# Bounded libFuzzer runs of the client state machine (make fuzz), with
# AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer: any
# crash, UB report or leak fails.  The seed corpus is copied, not grown.
. "$(dirname "$0")/lib.sh"
set -u
SECS=${FUZZ_SECS:-60}
if ! make -s -C "$TOP" fuzz >"$T/build.log" 2>&1; then
	fail fuzz-build "$(tail -n 5 "$T/build.log" | tr '\n' ' ')"
	exit 0
fi
ok fuzz-build
for f in preauth postauth; do
	rm -rf "$T/corpus-$f" "$T/art-$f"; mkdir -p "$T/art-$f"
	cp -r "$TOP/tests/fuzz-corpus/$f" "$T/corpus-$f"
	timeout $((SECS + 60)) "$TOP/tests/fuzz-$f" -max_total_time=$SECS -max_len=8192 \
	    -timeout=10 -rss_limit_mb=2048 -close_fd_mask=2 -detect_leaks=1 \
	    -artifact_prefix="$T/art-$f/" "$T/corpus-$f" >"$T/fuzz-$f.log" 2>&1
	rc=$?
	runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$T/fuzz-$f.log")
	if [ $rc -eq 0 ] && [ -z "$(ls "$T/art-$f")" ] && [ -n "$runs" ]; then
		ok "fuzz-$f-${SECS}s-$runs-runs"
	else
		fail "fuzz-$f" "rc=$rc artifacts: $(ls "$T/art-$f" | tr '\n' ' ') $(grep -E 'ERROR|SUMMARY' "$T/fuzz-$f.log" | head -n 3 | tr '\n' ' ')"
	fi
done
