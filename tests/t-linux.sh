#!/bin/bash
# fb-linux.c (make FB=linux) on a real Linux kernel: a Debian kernel boots
# under QEMU TCG with bochs, Cirrus and virtio-gpu devices; the static server runs
# in the guest, real viewers on the host (tests/vm/run.py says what is
# checked).  Skips only where qemu-system-x86_64 cannot be had.
# ports: 2
CACHE=${VNCSASL_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vncsasl-vm}
. "$(dirname "$0")/lib.sh"
set -u
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
	skip linux-vm "no qemu-system-x86_64 (Debian: apt-get install qemu-system-x86)"
	exit 0
fi
for p in busybox dpkg-deb apt-get; do
	command -v $p >/dev/null 2>&1 || { skip linux-vm "no $p"; exit 0; }
done
mkdir -p "$CACHE" "$T/src/contrib" "$T/guest"
# the static server, built from a copy: the tree's objects stay as they are
cp "$TOP"/Makefile "$TOP"/config.mk "$TOP"/vncsasl.c "$TOP"/vncsasl.h \
    "$TOP"/fb-linux.c "$T/src/" && cp "$TOP"/contrib/*.c "$T/src/contrib/"
if ! make -s -C "$T/src" static FB=linux WERROR=1 >"$T/build.log" 2>&1; then
	fail linux-static-build "$(grep -m3 -i error "$T/build.log" | tr '\n' ' ')"
	exit 0
fi
ok linux-static-build
# -x is parsed strictly, before anything is opened: status 2 and the reason
# for a bad argument, 1 for a device that is not there
xarg() {	# xarg NAME STATUS MESSAGE ARG
	local out rc
	out=$(timeout 10 "$T/src/vncsasl-static" -p 0 -U "$T/x.sock" -x "$4" 2>&1); rc=$?
	if [ $rc -eq "$2" ] && printf '%s' "$out" | grep -q -- "$3"; then ok "$1"
	else fail "$1" "status $rc: $out"; fi
}
xarg linux-x-bad-rotate 2 "rotate=45: want 0, 90, 180 or 270" /dev/fb0,rotate=45
xarg linux-x-bad-rate 2 "rate=0: want 1-120" ,rate=0
xarg linux-x-unknown-option 2 "unknown option 'bogus'" ,bogus
xarg linux-x-option-twice 2 "given twice" ,rotate=90,rotate=90
xarg linux-x-flag-with-value 2 "takes no value" ,touch=1
xarg linux-x-touch-and-view 2 "exclude each other" ,touch,view
xarg linux-x-not-a-framebuffer 2 "not a framebuffer" /dev/null
xarg linux-x-no-such-device 1 "No such file" /nonexistent/fb9
GCC="cc -std=gnu99 -Wall -Wextra -Werror -O2 -static"
$GCC $(pkg-config --cflags libdrm) -o "$T/guest/paint" "$TOP/tests/vm/paint.c" &&
    $GCC -o "$T/guest/evread" "$TOP/tests/vm/evread.c" ||
    { fail linux-guest-programs "cc failed"; exit 0; }
if ! KDIR=$(python3 "$TOP/tests/vm/mkinitrd.py" kernel "$CACHE" 2>"$T/kernel.log"); then
	fail linux-kernel "$(tail -n 2 "$T/kernel.log" | tr '\n' ' ')"
	exit 0
fi
# the arm64 cross build, run under qemu-user in the guest, where the cross
# toolchain and arm64 static archives are there (not installed by
# tests/deps.sh: Debian's :arm64 -dev packages would replace the host's)
mkdir -p "$T/arm64"
rm -f "$T/arm64/vncsasl-static" "$T/arm64/why"
A64CC=${ARM64_CC:-aarch64-linux-gnu-gcc}
ARM64=
if command -v "${A64CC%% *}" >/dev/null 2>&1 &&
    command -v qemu-aarch64-static >/dev/null 2>&1; then
	rm -rf "$T/arm64/src" && cp -r "$T/src" "$T/arm64/src" &&
	    rm -f "$T/arm64/src/"*.o "$T/arm64/src/vncsasl-static" "$T/arm64/src/".fbstamp-*
	if make -s -C "$T/arm64/src" static FB=linux CC="$A64CC" \
	    PKG_CONFIG=aarch64-linux-gnu-pkg-config \
	    ${ARM64_CORE_CFLAGS:+CORE_CFLAGS="$ARM64_CORE_CFLAGS"} \
	    >"$T/arm64/build.log" 2>&1; then
		cp "$T/arm64/src/vncsasl-static" "$T/arm64/vncsasl-static"
		ARM64="$T/arm64/vncsasl-static:arm64/vncsasl $(command -v qemu-aarch64-static):bin/qemu-aarch64"
	else
		echo "make static FB=linux CC=$A64CC failed: $(grep -m1 -e 'make static' -e 'rror' "$T/arm64/build.log")" >"$T/arm64/why"
	fi
else
	echo "no $A64CC or qemu-aarch64-static (crossbuild-essential-arm64, qemu-user-static and the :arm64 -dev packages: README, Embedded Linux)" >"$T/arm64/why"
fi
mkcerts "$T/pki"
mkpasswd "$T/passwd" alice secret
python3 "$TOP/tests/vm/mkinitrd.py" initrd "$KDIR" "$T/initrd" \
    "$T/src/vncsasl-static:bin/vncsasl" "$T/guest/paint:bin/paint" \
    "$T/guest/evread:bin/evread" "$T/pki/server-cert.pem:pki/server-cert.pem" \
    "$T/pki/server-key.pem:pki/server-key.pem" "$T/passwd:pki/passwd" $ARM64 ||
    { fail linux-initrd "mkinitrd.py failed"; exit 0; }
VM_CASES=${VM_CASES:-} TOP=$TOP T=$T PORT=$PORT timeout -k 5 600 python3 "$TOP/tests/vm/run.py" "$KDIR" "$T/initrd"
rc=$?
[ $rc -eq 124 ] && fail linux-vm "run.py timed out (600 s)"
exit 0
