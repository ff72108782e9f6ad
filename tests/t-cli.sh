#!/bin/bash
# The command-line contract (DESIGN.md 3): one-line errors with status 2,
# -V, secret files refused when others can read them, password-file
# errors naming file and line, -k, -1, -u.  ("make run": tests/t-build.sh.)
# ports: 2
. "$(dirname "$0")/lib.sh"
set -u

# usage NAME ARGS...: exit status 2 and exactly one line naming the option
usage_error() {
	local name=$1 out rc; shift
	out=$("$VNCSASL" "$@" 2>&1); rc=$?
	if [ $rc -eq 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]; then ok "cli-$name"
	else fail "cli-$name" "rc=$rc: $out"; fi
}
usage_error unknown-option -q
usage_error missing-value -p
usage_error bad-port -p 70000
usage_error bad-port-text -p http
usage_error bad-sectype -s none,bogus
usage_error duplicate-sectype -s none,none
printf 'secret\n' | "$VNCSASL" -k "$T/pw0" alice 2>/dev/null
usage_error x509-without-cert -P "$T/pw0" -s x509sasl
usage_error vnc-without-password -s vnc
usage_error bad-mech -m SCRAM-SHA-256,CRAM-MD5
usage_error gssapi-without-keytab -m GSSAPI
usage_error cert-without-key -C /etc/hostname
usage_error ca-without-cert -T /etc/hostname
usage_error bad-geometry -x 10x10
usage_error bad-log -L file
usage_error sasl-only-on-tcp -s sasl
usage_error stray-argument -s none extra
usage_error k-without-user -k "$T/pw"
out=$("$VNCSASL" -V); rc=$?
if [ $rc -eq 0 ] && printf '%s' "$out" | grep -q '^framebuffer: dummy' &&
    printf '%s' "$out" | grep -q '^tls: on' && printf '%s' "$out" | grep -q 'SCRAM-SHA-256' &&
    printf '%s' "$out" | grep -q '^encodings: raw'; then ok cli-version
else fail cli-version "rc=$rc: $out"; fi
check cli-help "$VNCSASL" -h

# secrets refused when group/others may read them
printf 'sekrit\n' >"$T/vncpw"; chmod 640 "$T/vncpw"
usage_error vnc-password-file-readable -s vnc -w "$T/vncpw"
printf 'secret\n' | "$VNCSASL" -k "$T/pw" alice 2>/dev/null
chmod 644 "$T/pw"
usage_error passwd-file-readable -P "$T/pw"
chmod 600 "$T/pw"
chown nobody "$T/pw" 2>/dev/null && usage_error passwd-file-owned-by-another -P "$T/pw"
chown "$(id -u)" "$T/pw"

# -w: plain text, or TigerVNC's vncpasswd format (8 DES-obfuscated bytes)
if command -v vncpasswd >/dev/null; then
	printf 'sekrit\n' | vncpasswd -f >"$T/vncpw-tiger" 2>/dev/null; chmod 600 "$T/vncpw-tiger"
	start_server vncpasswd -s vnc -w "$T/vncpw-tiger" -p $((PORT + 1)) -x 320x200@0 &&
	    check cli-w-vncpasswd-format "$TOP/tests/lvc" -a vnc -p sekrit -F0 127.0.0.1 $((PORT + 1)) &&
	    check cli-w-vncpasswd-wrong-refused "$TOP/tests/lvc" -a vnc -p wrong -E 127.0.0.1 $((PORT + 1))
	stop_server
else
	skip cli-w-vncpasswd-format "no vncpasswd (tigervnc-tools)"
fi
printf '\001\002\003\n' >"$T/vncpw-bad"; chmod 600 "$T/vncpw-bad"
usage_error w-refuses-binary -s vnc -w "$T/vncpw-bad"

# password file errors: FILE:LINE: reason
pwbad() {	# pwbad NAME LINE TEXT (file body on stdin)
	local name=$1 line=$2 msg=$3 out rc
	cat >"$T/pw-$name"; chmod 600 "$T/pw-$name"
	out=$("$VNCSASL" -P "$T/pw-$name" -p 0 -U "$T/sock" 2>&1 </dev/null); rc=$?
	if [ $rc -eq 2 ] && printf '%s' "$out" | grep -q "$T/pw-$name:$line: .*$msg"; then ok "passwd-error-$name"
	else fail "passwd-error-$name" "rc=$rc: $out"; fi
}
printf '# c\nalice\n' | pwbad no-colon 2 "no ':'"
printf 'alice:{SHA}x\n' | pwbad scheme 1 "unknown scheme"
printf 'alice:{SCRAM-SHA-256}4096,c2FsdA==,AAAA\n' | pwbad fields 1 "want ITER"
printf 'alice:{SCRAM-SHA-256}70000,c2FsdA==,%s,%s\n' "$(head -c 32 /dev/zero | base64)" "$(head -c 32 /dev/zero | base64)" | pwbad iterations 1 "65536"
printf 'alice:{SCRAM-SHA-256}4096,c2FsdA==,AAAA,AAAA\n' | pwbad key-size 1 "hash size"
{ grep SCRAM-SHA-256 "$T/pw"; grep SCRAM-SHA-256 "$T/pw"; } | pwbad duplicate 2 "second record"
printf 'alice:{SCRAM-SHA-256}4096,c2FsdA==,%s,%s,ff00\n' "$(head -c 32 /dev/zero | base64)" "$(head -c 32 /dev/zero | base64)" | pwbad salted-password 1 "salted password"

# -k replaces a user and keeps other lines
printf '# my users\n' >"$T/pw2"; chmod 600 "$T/pw2"
printf 'one\n' | "$VNCSASL" -k "$T/pw2" alice 2>/dev/null
printf 'two\n' | "$VNCSASL" -k "$T/pw2" bob 2>/dev/null
printf 'three\n' | "$VNCSASL" -k "$T/pw2" alice 2>/dev/null
if [ "$(grep -c '^alice:' "$T/pw2")" = 2 ] && [ "$(grep -c '^bob:' "$T/pw2")" = 2 ] &&
    head -n 1 "$T/pw2" | grep -q '^# my users'; then ok cli-k-replaces-user
else fail cli-k-replaces-user "$(cat "$T/pw2")"; fi
check_fails cli-k-bad-user sh -c "printf 'x\n' | '$VNCSASL' -k '$T/pw2' 'a:b'"
check_fails cli-k-empty-password sh -c "printf '\n' | '$VNCSASL' -k '$T/pw2' carol"

# -1: the server exits after its first client leaves
start_server once -1 -s none -p $PORT -x 1024x768@0 || exit 1
timeout 20 $LVC -a none -F0 127.0.0.1 $PORT >/dev/null 2>&1
check cli-run-once exits $SRV_PID 0
SRV_PID=

# -u: privileges dropped after everything is open; the server still serves
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
	start_server runas -s tlssasl -P "$T/pw" -u nobody -p $((PORT + 1)) -x 1024x768@0 || exit 1
	uid=$(awk '/^Uid:/ {print $2, $3, $4, $5}' /proc/$SRV_PID/status)
	nobody=$(id -u nobody)
	if [ "$uid" = "$nobody $nobody $nobody $nobody" ] &&
	    timeout 30 $LVC -u alice -p secret -m SCRAM-SHA-256 -F0 127.0.0.1 $((PORT + 1)) >/dev/null 2>&1 &&
	    grep -q "running as nobody" "$SRV_LOG"; then ok cli-u-drops-privileges
	else fail cli-u-drops-privileges "uids '$uid', log: $(tail -n 2 "$SRV_LOG" | tr '\n' ' ')"; fi
	stop_server
	usage_error u-unknown-user -s none -p $((PORT + 1)) -u no-such-user-here
else
	skip cli-u-drops-privileges "not root"
fi
