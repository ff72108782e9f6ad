# tests/lib.sh - shared by every tests/t-*.sh script (sourced).
#
# A test script prints one line per case: "ok NAME", "FAIL NAME: why" or
# "skip NAME: why".  ./test.sh counts them.  Every wait is bounded.
# Environment from test.sh: TOP (repo root), PORT (first of 20 ports this
# script may use), T (a private scratch directory).

: "${TOP:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${PORT:=15900}"
: "${T:=$(mktemp -d)}"
VNCSASL=${VNCSASL:-$TOP/vncsasl}
PY=/usr/bin/python3
export HOME="$T/home"		# gtk-vnc reads $HOME/.pki/CA/cacert.pem
mkdir -p "$HOME"

ok()   { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "skip $1: $2"; }
# check NAME COMMAND...: ok if the command succeeds, else FAIL with its output
check() {
	local name=$1 out; shift
	if out=$("$@" 2>&1); then ok "$name"
	else fail "$name" "$(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"; fi
}
# check_fails NAME COMMAND...: ok if the command fails
check_fails() {
	local name=$1 out; shift
	if out=$("$@" 2>&1); then fail "$name" "succeeded: $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
	else ok "$name"; fi
}

# start_server NAME ARGS...: run vncsasl in the background, wait (<= 10 s)
# for its readiness line; sets SRV_PID and SRV_LOG.
start_server() {
	local name=$1 i; shift
	SRV_LOG="$T/$name.log"
	"$VNCSASL" "$@" 2>"$SRV_LOG" &
	SRV_PID=$!
	for i in $(seq 1 100); do
		grep -q 'listening on' "$SRV_LOG" 2>/dev/null && return 0
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "server $name did not start: $(tail -n 3 "$SRV_LOG")" >&2
	return 1
}
stop_server() {
	[ -n "${SRV_PID:-}" ] || return 0
	kill "$SRV_PID" 2>/dev/null
	for _ in $(seq 1 50); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$SRV_PID" 2>/dev/null
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
}
trap 'stop_server' EXIT

# mkcerts DIR: a CA, a server certificate for localhost/127.0.0.1 and a
# client certificate (CN=alice), all by certtool.  Also installs the CA
# where gtk-vnc looks for it.
mkcerts() {
	local d=$1
	mkdir -p "$d"
	[ -f "$d/server-cert.pem" ] && return 0
	certtool --generate-privkey --key-type=ecdsa --outfile "$d/ca-key.pem" 2>/dev/null
	cat >"$d/ca.tmpl" <<TMPL
cn = "vncsasl test CA"
ca
cert_signing_key
expiration_days = 30
TMPL
	certtool --generate-self-signed --load-privkey "$d/ca-key.pem" \
	    --template "$d/ca.tmpl" --outfile "$d/ca-cert.pem" 2>/dev/null
	certtool --generate-privkey --key-type=ecdsa --outfile "$d/server-key.pem" 2>/dev/null
	cat >"$d/server.tmpl" <<TMPL
organization = "vncsasl test"
cn = "localhost"
dns_name = "localhost"
ip_address = "127.0.0.1"
ip_address = "::1"
tls_www_server
encryption_key
signing_key
expiration_days = 30
TMPL
	certtool --generate-certificate --load-privkey "$d/server-key.pem" \
	    --load-ca-certificate "$d/ca-cert.pem" --load-ca-privkey "$d/ca-key.pem" \
	    --template "$d/server.tmpl" --outfile "$d/server-cert.pem" 2>/dev/null
	certtool --generate-privkey --key-type=ecdsa --outfile "$d/client-key.pem" 2>/dev/null
	cat >"$d/client.tmpl" <<TMPL
country = "GB"
organization = "ACME"
locality = "London"
cn = "alice"
tls_www_client
signing_key
expiration_days = 30
TMPL
	certtool --generate-certificate --load-privkey "$d/client-key.pem" \
	    --load-ca-certificate "$d/ca-cert.pem" --load-ca-privkey "$d/ca-key.pem" \
	    --template "$d/client.tmpl" --outfile "$d/client-cert.pem" 2>/dev/null
	chmod 600 "$d"/*-key.pem
	mkdir -p "$HOME/.pki/CA"
	cp "$d/ca-cert.pem" "$HOME/.pki/CA/cacert.pem"
}

# mkpasswd FILE USER PASS: a password file entry through vncsasl -k
mkpasswd() {
	printf '%s\n' "$3" | "$VNCSASL" -k "$1" "$2" 2>/dev/null
}
