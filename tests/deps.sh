#!/bin/sh
# tests/deps.sh build|test|bench - install what is missing (Debian/Ubuntu,
# as root), or print the exact command to run.  Used by make run, ./test.sh
# and make bench.
set -u
BUILD="gcc make pkg-config libgnutls28-dev nettle-dev libgsasl-dev gsasl zlib1g-dev libpam0g-dev
 libjpeg62-turbo-dev
 libx11-dev libxext-dev libxtst-dev libxdamage-dev libxfixes-dev libxrandr-dev"
TEST="$BUILD clang python3 gnutls-bin libvncserver-dev libgvnc-1.0-dev
 libsasl2-modules libsasl2-modules-gssapi-mit krb5-kdc krb5-admin-server
 krb5-user xvfb x11-utils x11-apps x11-xkb-utils x11-xserver-utils xauth socat
 procps valgrind mandoc libclang-rt-14-dev libunistring-dev bmake
 tigervnc-tools tigervnc-viewer xtightvncviewer passwd
 qemu-system-x86 busybox-static libdrm-dev chromium nodejs"
BENCH="$BUILD xvfb x11-utils x11vnc tigervnc-scraping-server iproute2 procps
 python3"
case "${1:-build}" in
build) want=$BUILD ;;
test) want=$TEST ;;
bench) want=$BENCH ;;
*) echo "usage: tests/deps.sh build|test|bench" >&2; exit 2 ;;
esac
if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps: not a Debian system; make sure these (or your system's" \
	    "equivalents) are installed: $want" >&2
	exit 0
fi
missing=
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
	    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing:$missing" >&2
	echo "deps: run: sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null &&
    apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
    { echo "deps: apt-get install failed" >&2; exit 1; }
