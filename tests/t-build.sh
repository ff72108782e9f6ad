#!/bin/bash
# tests/t-build.sh - the Makefile, run by GNU make and by BSD make (bmake:
# NetBSD's make, which FreeBSD's is built from), each in a copy of the
# tree, so ./vncsasl, which other tests use, is never rebuilt here.
# Both makes: install and uninstall into a DESTDIR, an unknown FB
# refused, "make run" as a newcomer runs it (a real viewer logs in with
# the printed password), "make static" serving a real viewer, clean.
# GNU make: clang -std=c99 -Werror builds of the framebuffer sources.
# bmake: all, FB=x11 and back (the objects follow FB), the test programs
# (its server serves its viewer), asan and fuzz.
# ports: 4
set -u
. "$(dirname "$0")/lib.sh"

mkcerts "$T/pki"
CA="$T/pki/ca-cert.pem" CERT="$T/pki/server-cert.pem" KEY="$T/pki/server-key.pem"
mkpasswd "$T/pw" alice secret
RUN_PID=
trap 'stop_all; [ -z "$RUN_PID" ] || kill -- -$RUN_PID 2>/dev/null' EXIT

# srccopy MAKE DIR: the tree in DIR (not .git, no test scratch: TMP may be
# in the tree), cleaned by MAKE
srccopy() {
	local tmp=${T%/*}
	rm -rf "$2"
	mkdir -p "$2"
	tar -C "$TOP" --exclude=./.git --exclude=./tests/tmp --exclude="./${tmp#"$TOP"/}" \
	    --exclude=./demo -cf - . | tar -C "$2" -xf -
	$1 -s -C "$2" clean
}
# builds MAKE DIR FB MAKE-ARGS...: vncsasl built with WERROR=1 for FB
# says so in -V
builds() {
	local m=$1 d=$2 fb=$3; shift 3
	$m -s -C "$d" WERROR=1 FB="$fb" "$@" vncsasl &&
	    "$d/vncsasl" -V | grep "framebuffer: $fb" || { "$d/vncsasl" -V | head -n 1; return 1; }
}
# refuses_fb MAKE DIR: FB=nope stops the build with a clear message
refuses_fb() {
	local out
	out=$($1 -C "$2" FB=nope 2>&1) && { echo "built with FB=nope"; return 1; }
	printf '%s\n' "$out" | grep 'FB=nope: no such framebuffer source' ||
	    { printf '%s\n' "$out" | tail -n 3; return 1; }
}
# installs MAKE DIR: install into a DESTDIR: two files, modes 755 and 644
installs() {
	local files modes
	rm -rf "$2/root"
	$1 -s -C "$2" install DESTDIR="$2/root" PREFIX=/usr || return 1
	files=$(cd "$2/root" && find . -type f | sort | tr '\n' ' ')
	modes=$(stat -c '%a' "$2/root/usr/bin/vncsasl" "$2/root/usr/share/man/man8/vncsasl.8" 2>/dev/null | tr '\n' ' ')
	[ "$files" = "./usr/bin/vncsasl ./usr/share/man/man8/vncsasl.8 " ] &&
	    [ "$modes" = "755 644 " ] || { echo "files: $files modes: $modes"; return 1; }
}
# uninstalls MAKE DIR: uninstall leaves no file in the DESTDIR
uninstalls() {
	local left
	$1 -s -C "$2" uninstall DESTDIR="$2/root" PREFIX=/usr || return 1
	left=$(cd "$2/root" && find . -type f | tr '\n' ' ')
	[ -z "$left" ] || { echo "left: $left"; return 1; }
}
# demo MAKE DIR PORT: "make run" on PORT, its user logged in with the
# password it printed (in RUN_PW)
demo() {
	local log=$2/run.log
	# its own process group: make, the shell and the server end together
	setsid $1 -C "$2" run RUN_PORT=$3 >"$log" 2>&1 &
	RUN_PID=$!
	wait_for -t 30 -p $RUN_PID 'listening on' "$log" || { tailof "$log"; return 1; }
	RUN_PW=$(sed -n "s/.*password '\([0-9a-f]*\)'.*/\1/p" "$log")
	[ -n "$RUN_PW" ] || { echo "no password printed: $(tailof "$log")"; return 1; }
	timeout 30 $LVC -u demo -p "$RUN_PW" -m SCRAM-SHA-256 -f 2 127.0.0.1 $3 &&
	    has "$log" 'sec=tlssasl mech=SCRAM-SHA-256 user=demo'
}
# stored_keys DIR: demo/passwd has the user's SCRAM keys, not the password
stored_keys() {
	has "$1/demo/passwd" "^demo:{SCRAM" || return 1
	! grep "${RUN_PW:-no password printed}" "$1/demo/passwd"
}
runs() {
	check "$1-run" demo "$@"
	kill -- -$RUN_PID 2>/dev/null
	wait $RUN_PID 2>/dev/null
	RUN_PID=
	check "$1-run-no-password-stored" stored_keys "$2"
}
# is_static FILE: a static binary, with TLS and SCRAM
is_static() {
	LC_ALL=C ldd "$1" 2>&1 | grep -q 'not a dynamic executable' &&
	    "$1" -V | grep -q '^tls: on' && "$1" -V | grep -q 'SCRAM-SHA-256' ||
	    { LC_ALL=C ldd "$1" 2>&1 | head -n 2; return 1; }
}
# statics MAKE DIR PREFIX: "make static" is static and serves lvc logins
statics() {
	local m=$1 st=$2/vncsasl-static pre=$3
	if ! $m -s -C "$2" static >"$2/static.out" 2>&1 || [ ! -x "$st" ]; then
		fail "$m-static-is-static" "$(grep -v 'statically linked\|in function' "$2/static.out" | tail -n 3 | tr '\n' ' ')"
		skip "${pre}static-serves-lvc-x509sasl-scram" "no static build"
		skip "${pre}static-serves-lvc-tlssasl-scram" "no static build"
		return 1
	fi
	check "$m-static-is-static" is_static "$st"
	VNCSASL=$st start_server static -s x509sasl,tlssasl -C "$CERT" -K "$KEY" -P "$T/pw" \
	    -p $PORT -x 1024x768@0 || exit 1
	check "${pre}static-serves-lvc-x509sasl-scram" x509sasl_login
	stop_server
	VNCSASL=$st start_server static2 -s tlssasl -P "$T/pw" -p $PORT -x 1024x768@0 || exit 1
	check "${pre}static-serves-lvc-tlssasl-scram" \
	    timeout 30 $LVC -u alice -p secret -m SCRAM-SHA-256 -F0 127.0.0.1 $PORT
	stop_server
}
x509sasl_login() {
	timeout 30 $LVC -C "$CA" -u alice -p secret -m SCRAM-SHA-256 -F0 127.0.0.1 $PORT &&
	    has "$SRV_LOG" "auth .*sec=x509sasl mech=SCRAM-SHA-256 user=alice .*result=ok"
}
# cleans MAKE DIR: clean leaves nothing built
cleans() {
	local left
	$1 -s -C "$2" clean || return 1
	left=$(cd "$2" && ls -d vncsasl vncsasl-* *.o .fbstamp-* tests/lvc tests/fuzz-preauth 2>/dev/null)
	[ -z "$left" ] || { echo "left:" $left; return 1; }
}

# ---- GNU make ----------------------------------------------------------------
G=$T/gnu
srccopy make "$G"
if check make-install-destdir installs make "$G"; then
	check make-uninstall uninstalls make "$G"
else
	skip make-uninstall "install failed"
fi
check make-unknown-fb-refused refuses_fb make "$G"
if command -v clang >/dev/null; then
	check clang-werror-build-dummy builds make "$G" dummy CC=clang
	check clang-werror-build-x11 builds make "$G" x11 CC=clang
	check clang-werror-build-linux builds make "$G" linux CC=clang
else
	skip clang-werror-build-dummy "clang not installed"
	skip clang-werror-build-x11 "clang not installed"
	skip clang-werror-build-linux "clang not installed"
fi
statics make "$G" ""
have_static=$?
runs make "$G" $((PORT + 2))
check make-clean cleans make "$G"

# ---- BSD make ----------------------------------------------------------------
if ! command -v bmake >/dev/null; then
	skip bmake-all "bmake not installed (tests/deps.sh test)"
	exit 0
fi
B=$T/bsd
srccopy bmake "$B"
check bmake-all builds bmake "$B" dummy
tests_built() {
	bmake -s -C "$B" WERROR=1 tests || return 1
	for p in lvc gvnc dummyref cbclient x11-rfb x11-tool; do
		[ -x "$B/tests/$p" ] || { echo "no tests/$p"; return 1; }
	done
}
check bmake-tests tests_built
VNCSASL=$B/vncsasl start_server bsd -s none -p $((PORT + 1)) -x 1024x768@10 || exit 1
check bmake-server-serves-bmake-lvc timeout 30 "$B/tests/lvc" -a none -f 2 127.0.0.1 $((PORT + 1))
stop_server
runs bmake "$B" $((PORT + 3))
if check bmake-install-destdir installs bmake "$B"; then
	check bmake-uninstall uninstalls bmake "$B"
else
	skip bmake-uninstall "install failed"
fi
check bmake-unknown-fb-refused refuses_fb bmake "$B"
check bmake-fb-x11 builds bmake "$B" x11
check bmake-fb-back-to-dummy builds bmake "$B" dummy
check bmake-asan sh -c "bmake -s -C '$B' WERROR=1 asan && '$B/vncsasl-asan' -V"
fuzzers() {
	local f
	bmake -s -C "$B" fuzz || return 1
	for f in preauth postauth multi; do
		"$B/tests/fuzz-$f" -runs=1 >"$T/fuzz-$f.out" 2>&1 ||
		    { echo "fuzz-$f: $(tailof "$T/fuzz-$f.out")"; return 1; }
	done
}
check bmake-fuzz fuzzers
if [ $have_static -eq 0 ]; then
	statics bmake "$B" bmake-
else
	skip bmake-static-is-static "GNU make's static build failed (make-static-is-static)"
fi
check bmake-clean cleans bmake "$B"
