#!/bin/bash
# The ad-hoc mode: no -P, no keytab, no -w: a one-time user and password
# and an in-memory self-signed certificate, printed once; then each kind
# of viewer logs in the way the printed lines tell it.  Nothing may be
# written to disk.
# ports: 3
. "$(dirname "$0")/lib.sh"
set -u
mkdir -p "$T/cwd" "$T/adhome"
log="$T/adhoc.log"
(cd "$T/cwd" && HOME="$T/adhome" exec "$VNCSASL" -p $PORT -x 800x600@10) 2>"$log" &
SRV_PID=$!
wait_for -t 15 'listening on' "$log" || { fail adhoc-start "$(tailof "$log")"; exit 0; }
line=$(grep '^ad-hoc: user=' "$log")
user=$(printf '%s' "$line" | sed -n 's/.* user=\([^ ]*\) .*/\1/p')
pass=$(printf '%s' "$line" | sed -n 's/.* password=\([^ ]*\) .*/\1/p')
fp=$(printf '%s' "$line" | sed -n 's/.* sha256=\([0-9A-F:]*\)$/\1/p')
if [ -n "$user" ] && [ ${#pass} -ge 20 ] && [ ${#fp} -eq 95 ]; then ok adhoc-line-printed
else fail adhoc-line-printed "no 'ad-hoc: user=.. password=.. sha256=..' line: $(tailof "$log" 5)"; fi
sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$log" >"$T/adhoc-cert.pem"
check adhoc-offers-x509plain-then-tlssasl grep -q 'security tcp=x509plain,tlssasl ' "$log"

# the fingerprint printed is the certificate's, and the one viewers see
pem_fp=$(certtool -i --infile "$T/adhoc-cert.pem" 2>/dev/null |
    sed -n 's/^[[:space:]]*sha256:\([0-9a-f]*\)/\1/p' | head -n 1 |
    tr a-f A-F | sed 's/../&:/g; s/:$//')
served=$($PY "$TOP/tests/servedcert.py" $PORT 262 2>&1)
if [ "$fp" = "$pem_fp" ] && [ "$fp" = "$served" ]; then ok adhoc-fingerprint-is-the-served-certificate
else fail adhoc-fingerprint-is-the-served-certificate "printed $fp, PEM $pem_fp, served $served"; fi

# gtk-vnc over TLSSASL (SCRAM), with nothing but the printed password
check adhoc-gtkvnc-tlssasl "$TOP/tests/gvnc" -S tlssasl -u "$user" -p "$pass" -f 2 127.0.0.1 $PORT
# libvncclient (Remmina's library) takes the first subtype: X509Plain
check adhoc-libvncclient-x509plain "$TOP/tests/lvc" -C "$T/adhoc-cert.pem" -S x509plain \
    -u "$user" -p "$pass" -f 2 127.0.0.1 $PORT
# remote-viewer's choice (gtk-vnc's widget prefers X509 subtypes): with the
# printed certificate saved as its CA it logs in over X509Plain ...
check adhoc-remote-viewer-choice-with-saved-cert "$TOP/tests/gvnc" -W -C "$T/adhoc-cert.pem" \
    -u "$user" -p "$pass" 127.0.0.1 $PORT
# ... and without it gtk-vnc refuses the certificate, which the log names
rm -rf "$HOME/.pki"
check_fails adhoc-remote-viewer-choice-without-cert "$TOP/tests/gvnc" -W -u "$user" -p "$pass" \
    -t 10 127.0.0.1 $PORT
check adhoc-untrusted-certificate-logged wait_for -t 5 'does it trust the certificate' "$log"
check adhoc-wrong-password-refused "$TOP/tests/gvnc" -S tlssasl -u "$user" -p "wrong-$pass" -E 127.0.0.1 $PORT
check adhoc-wrong-user-refused "$TOP/tests/lvc" -C "$T/adhoc-cert.pem" -u "x$user" -p "$pass" -E \
    127.0.0.1 $PORT
stop_server
left=$(find "$T/cwd" "$T/adhome" -mindepth 1 2>/dev/null | head -n 3)
if [ -z "$left" ]; then ok adhoc-nothing-written
else fail adhoc-nothing-written "$left"; fi
if grep -q "$pass" "$log" && [ "$(grep -c -- "$pass" "$log")" -le 2 ]; then
	ok adhoc-password-printed-once-only
else fail adhoc-password-printed-once-only "$(grep -c -- "$pass" "$log") lines"; fi

# not ad-hoc when there are credentials, or None is asked for
mkpasswd "$T/pw" alice secret
start_server withfile -P "$T/pw" -p $((PORT + 1)) -x 320x200@0 || exit 0
check_fails adhoc-not-with-a-password-file grep -q '^ad-hoc:' "$SRV_LOG"
stop_server
start_server withnone -s none -p $((PORT + 2)) -x 320x200@0 || exit 0
check_fails adhoc-not-with-none grep -q '^ad-hoc:' "$SRV_LOG"
stop_server
