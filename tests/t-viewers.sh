#!/bin/bash
# Real viewers against the real server: libvncclient (tests/lvc) and
# gtk-vnc (tests/gvnc), each verifying every pixel of the dummy picture.
# ports: 1
. "$(dirname "$0")/lib.sh"
set -u
mkcerts "$T/pki"
CA="$T/pki/ca-cert.pem" CERT="$T/pki/server-cert.pem" KEY="$T/pki/server-key.pem"
printf 'sekrit\n' >"$T/vncpw"; chmod 600 "$T/vncpw"
mkpasswd "$T/pw" alice secret
mkpasswd "$T/pw" bob hunter2
p=$PORT

# logged USER MECH SEC: the server's audit line for the last login says so
logged() {
	grep -q "auth .*sec=$3 mech=$2 user=$1 ssf=[1-9][0-9]* result=ok" "$SRV_LOG"
}

# -- none and VNC authentication, moving picture, every pixel format --
start_server none -s none -p $p -x 1024x768@10 || exit 1
for bpp in 32 16 8; do
	check "lvc-none-${bpp}bpp-moving" timeout 30 $LVC -a none -b $bpp -f 3 127.0.0.1 $p
	check "gvnc-none-${bpp}bpp-moving" timeout 30 $GVNC -a none -b $bpp -f 3 127.0.0.1 $p
done
check lvc-none-32bpp-bigendian timeout 30 $LVC -a none -b 32 -B -f 2 127.0.0.1 $p
check gvnc-none-16bpp-bigendian timeout 30 $GVNC -a none -b 16 -B -f 2 127.0.0.1 $p
check lvc-input-reaches-screen timeout 30 $LVC -a none -P 100,200,1 -K 0x61 -X hello 127.0.0.1 $p
check gvnc-input-reaches-screen timeout 30 $GVNC -a none -P 300,400,0 -K 0x7a -X world 127.0.0.1 $p
# several viewers at once
pids=
for i in 1 2 3 4; do timeout 40 $LVC -a none -f 5 127.0.0.1 $p >"$T/multi$i" 2>&1 & pids="$pids $!"; done
for i in 1 2; do timeout 40 $GVNC -a none -f 5 127.0.0.1 $p >"$T/multig$i" 2>&1 & pids="$pids $!"; done
bad=0; for pid in $pids; do wait $pid || bad=$((bad + 1)); done
if [ $bad -eq 0 ]; then ok six-viewers-at-once; else fail six-viewers-at-once "$bad failed: $(cat "$T"/multi* | grep FAIL | head -2)"; fi
stop_server

start_server vnc -s vnc -w "$T/vncpw" -p $p -x 1024x768@10 || exit 1
check lvc-vnc-auth timeout 30 $LVC -a vnc -p sekrit -f 2 127.0.0.1 $p
check gvnc-vnc-auth timeout 30 $GVNC -a vnc -p sekrit -f 2 127.0.0.1 $p
check lvc-vnc-wrong-password-refused timeout 30 $LVC -a vnc -p wrong -E 127.0.0.1 $p
check gvnc-vnc-wrong-password-refused timeout 30 $GVNC -a vnc -p wrong -E 127.0.0.1 $p
stop_server

# -- SASL inside VeNCrypt, both subtypes, every mechanism --
for sub in x509sasl tlssasl; do
	start_server $sub -s $sub -C "$CERT" -K "$KEY" -P "$T/pw" \
	    -m SCRAM-SHA-256,SCRAM-SHA-1,PLAIN,LOGIN -p $p -x 1024x768@0 || exit 1
	for m in SCRAM-SHA-256 SCRAM-SHA-1 LOGIN; do
		if timeout 30 $LVC -C "$CA" -u alice -p secret -m $m -F0 127.0.0.1 $p >"$T/out" 2>&1 &&
		    logged alice $m $sub; then ok "lvc-$sub-$m"
		else fail "lvc-$sub-$m" "$(tail -n 2 "$T/out" | tr '\n' ' ') $(grep 'auth ' "$SRV_LOG" | tail -n 1)"; fi
	done
	# gtk-vnc lets Cyrus choose: the strongest on the list, SCRAM-SHA-256
	if timeout 30 $GVNC -C "$CA" -u alice -p secret -F0 127.0.0.1 $p >"$T/out" 2>&1 &&
	    logged alice SCRAM-SHA-256 $sub; then ok "gvnc-$sub-SCRAM-SHA-256"
	else fail "gvnc-$sub-SCRAM-SHA-256" "$(tail -n 2 "$T/out" | tr '\n' ' ')"; fi
	check "lvc-$sub-wrong-password-refused" timeout 30 $LVC -C "$CA" -u alice -p nope -m SCRAM-SHA-256 -E 127.0.0.1 $p
	check "gvnc-$sub-wrong-password-refused" timeout 30 $GVNC -C "$CA" -u alice -p nope -E 127.0.0.1 $p
	check "lvc-$sub-unknown-user-refused" timeout 30 $LVC -C "$CA" -u mallory -p secret -m SCRAM-SHA-256 -E 127.0.0.1 $p
	check "gvnc-$sub-unknown-user-refused" timeout 30 $GVNC -C "$CA" -u mallory -p secret -E 127.0.0.1 $p
	stop_server
done
# gtk-vnc with each other mechanism: the server's list decides what Cyrus may pick;
# the default security list, chosen from as remote-viewer does (-W: X509SASL)
for m in SCRAM-SHA-1 PLAIN LOGIN; do
	start_server gvnc-$m -C "$CERT" -K "$KEY" -P "$T/pw" -m $m -p $p -x 1024x768@0 || exit 1
	if timeout 30 $GVNC -W -u bob -p hunter2 -F0 127.0.0.1 $p >"$T/out" 2>&1 &&
	    logged bob $m x509sasl; then ok "gvnc-x509sasl-$m"
	else fail "gvnc-x509sasl-$m" "$(tail -n 2 "$T/out" | tr '\n' ' ')"; fi
	check "gvnc-x509sasl-$m-wrong-password-refused" timeout 30 $GVNC -W -u bob -p nope -E 127.0.0.1 $p
	stop_server
done

# -- VeNCrypt Plain (TigerVNC's way) through the same password file --
start_server plain -s x509plain,tlsplain -C "$CERT" -K "$KEY" -P "$T/pw" -p $p -x 1024x768@0 || exit 1
if timeout 30 $LVC -C "$CA" -u alice -p secret -F0 127.0.0.1 $p >"$T/out" 2>&1 &&
    logged alice PLAIN x509plain; then ok lvc-x509plain
else fail lvc-x509plain "$(tail -n 2 "$T/out" | tr '\n' ' ') $(grep 'auth ' "$SRV_LOG" | tail -n 1)"; fi
check lvc-x509plain-wrong-password-refused timeout 30 $LVC -C "$CA" -u alice -p nope -E 127.0.0.1 $p
check gvnc-tlsplain timeout 30 $GVNC -S tlsplain -u bob -p hunter2 -F0 127.0.0.1 $p
stop_server

# -- the UNIX socket: tlssasl first (gtk-vnc 1.3.1 wants SSF 56 without TLS) --
start_server unix -p 0 -U "$T/sock" -P "$T/pw" -x 1024x768@0 || exit 1
check gvnc-unix-tlssasl timeout 30 $GVNC -u alice -p secret -F0 "$T/sock" unix
stop_server

# -- the password file holds no password --
if grep -q -e secret -e hunter2 "$T/pw"; then fail passwd-file-has-no-password "a password is in $T/pw"
elif [ "$(grep -c '^alice:{SCRAM-SHA-256}4096,' "$T/pw")" = 1 ] && [ "$(stat -c %a "$T/pw")" = 600 ]; then ok passwd-file-has-no-password
else fail passwd-file-has-no-password "unexpected content or mode: $(stat -c %a "$T/pw")"; fi
# and gsasl --mkpasswd writes the same format
{ printf 'carol:'; gsasl --mkpasswd --mechanism SCRAM-SHA-256 --password pencil --iteration-count 4096; echo; } >>"$T/pw"
start_server mkpasswd -P "$T/pw" -C "$CERT" -K "$KEY" -p $p -x 1024x768@0 || exit 1
check gsasl-mkpasswd-record-works timeout 30 $LVC -C "$CA" -u carol -p pencil -m SCRAM-SHA-256 -F0 127.0.0.1 $p
stop_server
