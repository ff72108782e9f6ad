# tests/lib.sh - shared by every tests/t-*.sh script (sourced).
#
# A test script prints one line per case: "ok NAME", "FAIL NAME: why" or
# "skip NAME: why".  ./test.sh counts them.  Every wait is bounded.
# Each script says how many ports it uses in a line "# ports: N" near its
# top; test.sh gives it that many, from PORT on.  Environment from
# test.sh: TOP (repo root), PORT (its first port), T (a private scratch
# directory).

: "${TOP:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${PORT:=15900}"
: "${T:=$(mktemp -d)}"
VNCSASL=${VNCSASL:-$TOP/vncsasl}
LVC=$TOP/tests/lvc GVNC=$TOP/tests/gvnc
PY=/usr/bin/python3
export HOME="$T/home"		# gtk-vnc reads $HOME/.pki/CA/cacert.pem
mkdir -p "$HOME"

ok()   { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "skip $1: $2"; }
# check NAME COMMAND...: ok if the command succeeds, else FAIL with the
# last lines of its output (and status 1).  It runs in this shell: a
# function may wait for this shell's children and set variables.
check() {
	local name=$1; shift
	if "$@" >"$T/check.out" 2>&1; then ok "$name"
	else fail "$name" "$(tailof "$T/check.out")"; return 1; fi
}
# check_fails NAME COMMAND...: ok if the command fails
check_fails() {
	local name=$1; shift
	if "$@" >"$T/check.out" 2>&1; then fail "$name" "succeeded: $(tailof "$T/check.out" 2)"; return 1
	else ok "$name"; fi
}
# status N COMMAND...: COMMAND exits with status N
status() {
	local want=$1 rc=0; shift
	"$@" || rc=$?
	[ "$rc" -eq "$want" ] || { echo "exit status $rc, want $want"; return 1; }
}
# silent COMMAND...: COMMAND prints nothing (what it prints is the failure)
silent() {
	local out
	out=$("$@" 2>&1)
	[ -z "$out" ] || { printf '%s\n' "$out" | head -n 3; return 1; }
}
# tailof FILE [N]: its last N (3) lines on one line, for FAIL messages
tailof() { tail -n "${2:-3}" "$1" 2>/dev/null | tr '\n' ' '; }
# has FILE PATTERN: a line of FILE matches PATTERN (else says what is there)
has() {
	grep -aq -- "$2" "$1" 2>/dev/null && return 0
	echo "no /$2/ in ${1##*/}: $(tailof "$1")"
	return 1
}

# wait_for [-t SECS] [-n LINE] [-p PID] [GREP-OPTION...] PATTERN FILE:
# until a line of FILE (after its first LINE lines) matches PATTERN, as
# grep matches it (-E, -xF...); 0 if one did within SECS (10), 1 if not
# or if process PID ended first.  The one way tests wait for a log line.
wait_for() {
	local n=100 from=1 pid=
	while :; do
		case $1 in
		-t) n=$(($2 * 10)); shift 2 ;;
		-n) from=$(($2 + 1)); shift 2 ;;
		-p) pid=$2; shift 2 ;;
		*) break ;;
		esac
	done
	local file=${!#} pat=${@:$#-1:1} opts=("${@:1:$#-2}")
	until tail -n "+$from" "$file" 2>/dev/null | grep -aq "${opts[@]}" -- "$pat"; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		[ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
}
# wait_exit PID SECS: until PID (a child) ends; its status in $RC (124:
# still running, and wait_exit fails)
wait_exit() {
	local n=$(($2 * 10))
	RC=124
	while kill -0 "$1" 2>/dev/null; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		sleep 0.1
	done
	wait "$1"
	RC=$?
}
# exits PID STATUS [LOG]: PID ends within 10 s with STATUS (else says
# what it did, and the end of LOG)
exits() {
	wait_exit "$1" 10 && [ "$RC" -eq "$2" ] && return 0
	echo "status $RC, want $2: $(tailof "${3:-/dev/null}")"
	return 1
}
# wait_listen PORT: until something listens on 127.0.0.1:PORT (<= 10 s)
wait_listen() {
	local hex n=100
	hex=$(printf '0100007F:%04X 00000000:0000 0A' "$1")
	until grep -q "$hex" /proc/net/tcp; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		sleep 0.1
	done
}
# stop_pid PID: SIGTERM, up to 5 s to go, then SIGKILL; reaped either way
stop_pid() {
	[ -n "${1:-}" ] || return 0
	kill "$1" 2>/dev/null
	wait_exit "$1" 5 || { kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
	return 0
}

# start_server NAME ARGS...: run vncsasl in the background, wait (<= 10 s)
# for its readiness line; sets SRV_PID and SRV_LOG.
start_server() {
	local name=$1; shift
	SRV_LOG="$T/$name.log"
	: >"$SRV_LOG"	# not an earlier server's "listening on" (t-build)
	"$VNCSASL" "$@" 2>"$SRV_LOG" &
	SRV_PID=$!
	wait_for -p "$SRV_PID" 'listening on' "$SRV_LOG" && return 0
	echo "server $name did not start: $(tail -n 3 "$SRV_LOG")" >&2
	return 1
}
stop_server() { stop_pid "${SRV_PID:-}"; SRV_PID=; }

# wait_closed: the server (started with -v) logged a close for every
# connect, within 5 s (a viewer's rects line comes with its close)
wait_closed() {
	local i
	for i in $(seq 1 50); do
		[ "$(grep -c ' connect peer=' "$SRV_LOG")" -le "$(grep -c ' close peer=' "$SRV_LOG")" ] && return
		sleep 0.1
	done
}
# PIDS: what else a script runs in the background, ended at exit
PIDS=
stop_all() {
	local p
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	stop_server
}
trap stop_all EXIT

# mkcerts DIR: a CA, a server certificate for localhost/127.0.0.1/::1 and a
# client certificate (C=GB, O=ACME, L=London, CN=alice), made the way the
# README tells users to (contrib/mkcerts.sh).  Also installs the CA where
# gtk-vnc looks for it.
mkcerts() {
	local d=$1
	[ -f "$d/server-cert.pem" ] && return 0
	COUNTRY=GB ORG=ACME LOCALITY=London sh "$TOP/contrib/mkcerts.sh" -c alice "$d" \
	    localhost 127.0.0.1 ::1 >/dev/null || return 1
	mv "$d/alice-cert.pem" "$d/client-cert.pem"
	mv "$d/alice-key.pem" "$d/client-key.pem"
	mkdir -p "$HOME/.pki/CA"
	cp "$d/ca-cert.pem" "$HOME/.pki/CA/cacert.pem"
}
# mkpasswd FILE USER PASS: a password file entry through vncsasl -k
mkpasswd() {
	printf '%s\n' "$3" | "$VNCSASL" -k "$1" "$2" 2>/dev/null
}

# xvfb LOG ARGS...: an Xvfb on a display number it picks itself
# (-displayfd: no race with other runs), which it writes to LOG.fd once it
# accepts clients; that number in XD
xvfb() {
	local log=$1; shift
	XD=
	Xvfb -displayfd 5 "$@" -nolisten tcp -noreset 5>"$log.fd" >"$log" 2>&1 &
	XPIDS="${XPIDS:-} $!"
	wait_for -p $! '^[0-9][0-9]*$' "$log.fd" || return 1
	XD=$(cat "$log.fd")
}
