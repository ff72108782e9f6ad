#!/bin/sh
# contrib/mkcerts.sh DIR [NAME...] - a CA and a server certificate for
# vncsasl, made by GnuTLS's certtool without a single question.
#
#   DIR/ca-cert.pem       give this to viewers (gtk-vnc: ~/.pki/CA/cacert.pem;
#                         TigerVNC: -X509CA; libvncclient: its CA file)
#   DIR/ca-key.pem        keep it offline; it signs more certificates
#   DIR/server-cert.pem   vncsasl -C
#   DIR/server-key.pem    vncsasl -K (mode 600)
#
# NAMEs are the host names and IP addresses viewers will connect to (the
# certificate must name the one they use: gtk-vnc checks it); default:
# this host's name, localhost, 127.0.0.1 and ::1.  An existing CA in DIR is
# reused, so run it again to add a server.  With -c CN, also a client
# certificate DIR/CN-cert.pem and DIR/CN-key.pem for vncsasl -T (its DN is
# CN=CN, O=$ORG, L=$LOCALITY, C=$COUNTRY when those are set).
set -eu
client=
if [ "${1:-}" = -c ]; then client=$2; shift 2; fi
[ $# -ge 1 ] || { echo "usage: $0 [-c CLIENT-CN] DIR [NAME...]" >&2; exit 2; }
dir=$1; shift
[ $# -gt 0 ] || set -- "$(hostname)" localhost 127.0.0.1 ::1
command -v certtool >/dev/null || { echo "$0: certtool missing (Debian: gnutls-bin)" >&2; exit 1; }
mkdir -p "$dir"
umask 077
tmpl=$(mktemp)
trap 'rm -f "$tmpl"' EXIT

# cert NAME [SIGNER]: DIR/NAME-key.pem and DIR/NAME-cert.pem from $tmpl
cert() {
	certtool --generate-privkey --key-type=ecdsa --outfile "$dir/$1-key.pem" 2>/dev/null
	if [ -n "${2:-}" ]; then
		certtool --generate-certificate --load-privkey "$dir/$1-key.pem" \
		    --load-ca-certificate "$dir/$2-cert.pem" --load-ca-privkey "$dir/$2-key.pem" \
		    --template "$tmpl" --outfile "$dir/$1-cert.pem" 2>/dev/null
	else
		certtool --generate-self-signed --load-privkey "$dir/$1-key.pem" \
		    --template "$tmpl" --outfile "$dir/$1-cert.pem" 2>/dev/null
	fi
	chmod 644 "$dir/$1-cert.pem"
}

if [ ! -f "$dir/ca-cert.pem" ]; then
	printf 'cn = "vncsasl CA on %s"\nca\ncert_signing_key\nexpiration_days = 3650\n' \
	    "$(hostname)" >"$tmpl"
	cert ca
fi
{
	printf 'cn = "%s"\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 825\n' "$1"
	for n in "$@"; do
		case $n in
		*:* | [0-9]*.[0-9]*.[0-9]*.[0-9]*) printf 'ip_address = "%s"\n' "$n" ;;
		*) printf 'dns_name = "%s"\n' "$n" ;;
		esac
	done
} >"$tmpl"
cert server ca
if [ -n "$client" ]; then
	{
		printf 'cn = "%s"\ntls_www_client\nsigning_key\nexpiration_days = 825\n' "$client"
		[ -n "${COUNTRY:-}" ] && printf 'country = "%s"\n' "$COUNTRY"
		[ -n "${ORG:-}" ] && printf 'organization = "%s"\n' "$ORG"
		[ -n "${LOCALITY:-}" ] && printf 'locality = "%s"\n' "$LOCALITY"
	} >"$tmpl"
	cert "$client" ca
fi
echo "$dir: ca-cert.pem (for viewers), server-cert.pem and server-key.pem (vncsasl -C, -K)${client:+, $client-cert.pem}"
