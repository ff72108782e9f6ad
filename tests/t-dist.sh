#!/bin/bash
# tests/t-dist.sh - what ships beside the binary: the man page (mandoc
# -Tlint clean, every option of -h in it), contrib/rc.d/vncsasl and the
# systemd units (systemd-analyze verify).
# ports: 0
set -u
. "$(dirname "$0")/lib.sh"

if command -v mandoc >/dev/null; then
	lint() { mandoc -Tlint "$TOP/vncsasl.8" 2>&1 | grep -v 'outdated mandoc.db'; }
	check mandoc-lint-clean silent lint
	every_option() {
		local o missing=
		for o in $("$VNCSASL" -h 2>&1 | sed -n 's/^  \(-[A-Za-z0-9]\) .*/\1/p'); do
			grep -q "^\.It Fl ${o#-}\( \|\$\)" "$TOP/vncsasl.8" || missing="$missing $o"
		done
		[ -z "$missing" ] || { echo "missing:$missing"; return 1; }
	}
	check man-page-has-every-option every_option
else
	skip mandoc-lint-clean "mandoc not installed"
	skip man-page-has-every-option "mandoc not installed"
fi

rcd() { sh -n "$TOP/contrib/rc.d/vncsasl" && grep -q '^rcvar=' "$TOP/contrib/rc.d/vncsasl"; }
check contrib-rc.d-parses rcd
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$T/units"
	for u in vncsasl.socket vncsasl.service vncsasl@.service; do
		sed "s#/usr/local/bin/vncsasl#$VNCSASL#" "$TOP/contrib/$u" >"$T/units/$u"
	done
	units() {
		cd "$T/units" && systemd-analyze verify --man=no ./vncsasl.socket \
		    ./vncsasl.service ./vncsasl@.service
	}
	check contrib-systemd-units-verify silent units
else
	skip contrib-systemd-units-verify "no systemd-analyze"
fi
