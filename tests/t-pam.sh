#!/bin/bash
# PAM as a second back end (-P pam:SERVICE): a system account the test
# creates, checked by pam_unix through a service file the test writes,
# beside a stored-key file.  The conversation runs in the PAM helper: the
# loop keeps serving another viewer while pam_unix waits after a wrong
# password (its latency is printed and must stay far below that wait).
# ports: 2
. "$(dirname "$0")/lib.sh"
set -u
if [ "$(id -u)" -ne 0 ] || ! command -v useradd >/dev/null; then
	skip pam "needs root and useradd (a system account and /etc/pam.d)"
	exit 0
fi
if ! "$VNCSASL" -V | grep -q '^pam: yes'; then
	skip pam "this vncsasl was built without PAM"
	exit 0
fi
acct=vspam$$
svc=vncsasl-test-$$
cleanup() {
	stop_server
	userdel "$acct" 2>/dev/null
	rm -f "/etc/pam.d/$svc"
}
trap cleanup EXIT
useradd -M -N -s /usr/sbin/nologin "$acct" || { fail pam-useradd "useradd $acct"; exit 0; }
printf '%s:%s\n' "$acct" 'Pam-pw-42' | chpasswd
printf 'auth required pam_unix.so\naccount required pam_unix.so\n' >"/etc/pam.d/$svc"
mkpasswd "$T/pw" alice secret
start_server pam -P "$T/pw" -P "pam:$svc" -s tlsplain,tlssasl,none -m SCRAM-SHA-256 \
    -p $PORT -x 800x600@30 -o fail-delay=1 || exit 0

check pam-good-password "$TOP/tests/lvc" -S tlsplain -u "$acct" -p 'Pam-pw-42' 127.0.0.1 $PORT
check pam-identity-logged has "$SRV_LOG" "sec=tlsplain mech=PLAIN user=$acct .*result=ok"
check pam-file-user-scram-too "$TOP/tests/gvnc" -S tlssasl -u alice -p secret 127.0.0.1 $PORT

# a wrong password: pam_unix answers after ~2 s; meanwhile another viewer
# is served as ever
"$TOP/tests/lvc" -S tlsplain -u "$acct" -p wrong -E -t 30 127.0.0.1 $PORT >"$T/wrong.out" 2>&1 &
wrong=$!
lat=$($PY "$TOP/tests/latency.py" $PORT 3 2>&1)
if wait $wrong; then ok pam-wrong-password-refused
else fail pam-wrong-password-refused "$(tailof "$T/wrong.out")"; fi
echo "    (a viewer's update latency while PAM waited: $lat)"
max=$(printf '%s' "$lat" | sed -n 's/.* max=\([0-9]*\).*/\1/p')
if [ -n "$max" ] && [ "$max" -lt 1000 ]; then ok pam-loop-not-blocked
else fail pam-loop-not-blocked "$lat (pam_unix waits ~2000 ms)"; fi
check pam-failure-logged has "$SRV_LOG" "user=$acct .*result=fail reason=wrong password"

usermod -L "$acct"
check pam-locked-account-refused "$TOP/tests/lvc" -S tlsplain -u "$acct" -p 'Pam-pw-42' -E -t 30 \
    127.0.0.1 $PORT
usermod -U "$acct"
chage -E 0 "$acct"
check pam-expired-account-refused "$TOP/tests/lvc" -S tlsplain -u "$acct" -p 'Pam-pw-42' -E -t 30 \
    127.0.0.1 $PORT
check pam-account-refusal-logged has "$SRV_LOG" "user=$acct .*reason=PAM: account refused"
chage -E -1 "$acct"
check pam-unknown-user-refused "$TOP/tests/lvc" -S tlsplain -u "nosuch$$" -p x -E -t 30 \
    127.0.0.1 $PORT
stop_server
check_fails pam-bad-service-name "$VNCSASL" -P pam:../x -p $((PORT + 1))
