/*
 * cbclient.c - a minimal RFB viewer that authenticates with GNU SASL's
 * client API inside VeNCrypt TLS, to test SCRAM channel binding
 * (SCRAM-SHA-*-PLUS: tls-unique on TLS 1.2, tls-exporter on TLS 1.3)
 * against vncsasl.  Neither gtk-vnc nor libvncclient can do that: both use
 * Cyrus SASL and never set channel-binding data (PROTOCOL.md 2.2).
 *
 * What it speaks, in order (PROTOCOL.md 1, 2, 6):
 *   RFB 3.8 version exchange; security list; type 19 (VeNCrypt);
 *   VeNCrypt 0.2; subtype 264 TLSSASL (anonymous TLS 1.2) or 263 X509SASL
 *   (certificate TLS, verified against -C, TLS 1.3 allowed); TLS
 *   handshake; SASL (type 20 framing) with gsasl_client_start/gsasl_step;
 *   SecurityResult; ClientInit; ServerInit; SetEncodings Raw; one full
 *   FramebufferUpdateRequest, read until the whole screen has arrived.
 *
 * Usage: cbclient [options] HOST PORT
 *   -u USER -p PASS   credentials (GSASL_AUTHID, GSASL_PASSWORD)
 *   -z AUTHZID        also answer GSASL_AUTHZID
 *   -m MECH           mechanism gsasl runs (default SCRAM-SHA-256-PLUS)
 *   -M NAME           mechanism name sent on the wire (default: MECH);
 *                     "-M SCRAM-SHA-256 -m SCRAM-SHA-256-PLUS" is what a
 *                     Cyrus client does (cyrus-sasl #552)
 *   -S SUB            tlssasl (default) or x509sasl
 *   -C CAFILE         CA for x509sasl (required there)
 *   -c CERT -k KEY    client certificate for x509sasl
 *   -2                x509sasl: cap TLS at 1.2 (tls-unique instead)
 *   -B                bad binding: flip one byte of the channel-binding
 *                     data before base64; the server must refuse
 *   -Y                run MECH (SCRAM-SHA-1 or SCRAM-SHA-256) with the GS2
 *                     flag "y" (client can bind, thinks the server cannot):
 *                     a server that offered the -PLUS form must refuse it
 *                     as a downgrade (RFC 5802 section 6).  libgsasl 2.2.0's
 *                     client cannot send "y" (given a binding for a non-PLUS
 *                     SCRAM, gsasl_step fails with AUTHENTICATION_ERROR),
 *                     so this SCRAM client is our own, built on
 *                     gsasl_scram_secrets_from_password and gnutls_hmac_fast
 *   -E                expect refusal: exit 0 when the SecurityResult is a
 *                     failure or the server closes during authentication
 *   -t SECS           total time limit (default 20)
 *   -v                trace to stderr
 *
 * Output: one final line on stdout, "ok: ..." or "FAIL: ...".  On success:
 *   ok: WxH name=NAME mech=MECH result=0 tls=VERSION cb=BINDING
 * Exit: 0 success (or the refusal -E expected), 1 authentication refused,
 * 2 usage, 3 protocol error, 4 timeout or connection error, 5 success
 * although -E expected a refusal.
 *
 * Build: make tests/cbclient (cc -std=gnu99 -Wall -Wextra -Werror ...
 * $(pkg-config --cflags --libs gnutls libgsasl)).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gsasl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "tool.h"

enum {
	EX_SUCCESS = 0, EX_REFUSED = 1, EX_USAGE = 2, EX_PROTO = 3,
	EX_TIMEOUT = 4, EX_UNEXPECTED = 5
};

#define SEC_VENCRYPT	19
#define SUB_X509SASL	263
#define SUB_TLSSASL	264
#define MECHLIST_MAX	300		/* gtk-vnc and libvncclient refuse more */
#define SASL_DATA_MAX	(1024 * 1024)	/* both viewers and QEMU */
#define REASON_MAX	4096
#define NAME_MAX_LEN	65536
#define SASL_ROUNDS_MAX	16		/* SCRAM needs 2 */

static struct {
	const char *host, *port, *user, *pass, *authz, *mech, *wire_mech;
	const char *cafile, *certfile, *keyfile;
	unsigned sub;
	int bad_cb, force_y, expect_fail, tls12, verbose, secs;
} o;

static int fd = -1;
static gnutls_session_t tls;
static int tls_up;
static int in_auth;		/* a close now means "refused" */
static const char *cb_used = "none";

static void
vlog(const char *fmt, ...)
{
	va_list ap;

	if (!o.verbose)
		return;
	va_start(ap, fmt);
	fputs("cbclient: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void __attribute__((noreturn, format(printf, 2, 3)))
die(int code, const char *fmt, ...)
{
	va_list ap;

	fflush(stderr);
	fputs("FAIL: ", stdout);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	exit(code);
}

/* The server said no: a failed SecurityResult or a close during auth. */
static void __attribute__((noreturn, format(printf, 1, 2)))
refused(const char *fmt, ...)
{
	va_list ap;

	fputs(o.expect_fail ? "ok: refused as expected: " :
	    "FAIL: authentication refused: ", stdout);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	exit(o.expect_fail ? EX_SUCCESS : EX_REFUSED);
}

static char alarm_msg[64];

static void
on_alarm(int sig)
{
	ssize_t r;

	(void)sig;
	r = write(STDOUT_FILENO, alarm_msg, strlen(alarm_msg));
	(void)r;
	_exit(EX_TIMEOUT);
}

/* -- I/O: plain socket before TLS, GnuTLS after -- */

static void __attribute__((noreturn))
closed(const char *what, const char *why)
{
	if (in_auth)
		refused("server closed the connection while we %s (%s)",
		    what, why);
	die(EX_PROTO, "server closed the connection while we %s (%s)", what,
	    why);
}

static void
rd(void *buf, size_t n, const char *what)
{
	uint8_t *p = buf;
	char why[128];

	while (n > 0) {
		ssize_t r;

		if (tls_up) {
			r = gnutls_record_recv(tls, p, n);
			if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
				continue;
			if (r == 0)
				closed(what, "EOF");
			if (r < 0) {
				snprintf(why, sizeof why, "TLS: %s",
				    gnutls_strerror((int)r));
				closed(what, why);
			}
		} else {
			r = recv(fd, p, n, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r == 0)
				closed(what, "EOF");
			if (r < 0)
				closed(what, strerror(errno));
		}
		p += r;
		n -= (size_t)r;
	}
}

static void
wr(const void *buf, size_t n, const char *what)
{
	const uint8_t *p = buf;
	char why[128];

	while (n > 0) {
		ssize_t r;

		if (tls_up) {
			r = gnutls_record_send(tls, p, n);
			if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
				continue;
			if (r < 0) {
				snprintf(why, sizeof why, "TLS: %s",
				    gnutls_strerror((int)r));
				closed(what, why);
			}
		} else {
			r = send(fd, p, n, MSG_NOSIGNAL);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				closed(what, strerror(errno));
		}
		p += r;
		n -= (size_t)r;
	}
}

static uint8_t
rd_u8(const char *what)
{
	uint8_t v;

	rd(&v, 1, what);
	return v;
}

static uint16_t
rd_u16(const char *what)
{
	uint8_t b[2];

	rd(b, 2, what);
	return (uint16_t)be16(b);
}

static uint32_t
rd_u32(const char *what)
{
	uint8_t b[4];

	rd(b, 4, what);
	return be32(b);
}

static void
skip(size_t n, const char *what)
{
	uint8_t buf[16384];

	while (n > 0) {
		size_t k = n < sizeof buf ? n : sizeof buf;

		rd(buf, k, what);
		n -= k;
	}
}

/* -- connect, RFB version, security type, VeNCrypt -- */

static void
tcp_connect(void)
{
	struct addrinfo hints, *res, *ai;
	int r, err = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(o.host, o.port, &hints, &res)) != 0)
		die(EX_TIMEOUT, "%s port %s: %s", o.host, o.port,
		    gai_strerror(r));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		die(EX_TIMEOUT, "connect %s port %s: %s", o.host, o.port,
		    strerror(err));
	vlog("connected to %s port %s", o.host, o.port);
}

static void
rfb_version(void)
{
	char v[13];
	int maj, min;

	rd(v, 12, "read the ProtocolVersion");
	v[12] = '\0';
	if (sscanf(v, "RFB %3d.%3d\n", &maj, &min) != 2 || v[11] != '\n')
		die(EX_PROTO, "bad ProtocolVersion from server");
	vlog("server version %d.%d", maj, min);
	if (maj != 3 || min < 8)
		die(EX_PROTO, "server speaks RFB %d.%d, we need 3.8", maj, min);
	wr("RFB 003.008\n", 12, "sent our ProtocolVersion");
}

static void
security_type(void)
{
	uint8_t n, types[255], t = SEC_VENCRYPT;
	char list[255 * 4 + 1];
	size_t off = 0;
	int i, found = 0;

	n = rd_u8("read the security type count");
	if (n == 0) {
		uint32_t len = rd_u32("read the failure reason length");
		char reason[REASON_MAX + 1];

		if (len > REASON_MAX)
			die(EX_PROTO, "security list failure reason of %lu "
			    "bytes", (unsigned long)len);
		rd(reason, len, "read the failure reason");
		reason[len] = '\0';
		die(EX_PROTO, "server offers no security type: %s", reason);
	}
	rd(types, n, "read the security types");
	list[0] = '\0';
	for (i = 0; i < n; i++) {
		off += (size_t)snprintf(list + off, sizeof list - off, "%s%u",
		    i ? "," : "", types[i]);
		if (types[i] == SEC_VENCRYPT)
			found = 1;
	}
	vlog("security types: %s", list);
	if (!found)
		die(EX_PROTO, "server does not offer VeNCrypt (19): %s", list);
	wr(&t, 1, "chose VeNCrypt");
}

static void
vencrypt(void)
{
	uint8_t v[2], ver[2] = { 0, 2 }, b[4], n, ack;
	char list[256 * 11 + 1];
	size_t off = 0;
	int i, found = 0;

	rd(v, 2, "read the VeNCrypt version");
	if (v[0] != 0 || v[1] != 2)
		die(EX_PROTO, "VeNCrypt version %u.%u, we need 0.2", v[0],
		    v[1]);
	wr(ver, 2, "sent the VeNCrypt version");
	if ((ack = rd_u8("read the VeNCrypt version ack")) != 0)
		die(EX_PROTO, "VeNCrypt version refused (%u)", ack);
	n = rd_u8("read the VeNCrypt subtype count");
	if (n == 0)
		die(EX_PROTO, "server offers no VeNCrypt subtype");
	list[0] = '\0';
	for (i = 0; i < n; i++) {
		uint32_t s = rd_u32("read the VeNCrypt subtypes");

		off += (size_t)snprintf(list + off, sizeof list - off,
		    "%s%lu", i ? "," : "", (unsigned long)s);
		if (s == o.sub)
			found = 1;
	}
	vlog("VeNCrypt subtypes: %s", list);
	if (!found)
		die(EX_PROTO, "server does not offer subtype %u: %s", o.sub,
		    list);
	put32(b, o.sub);
	wr(b, 4, "chose the VeNCrypt subtype");
	if ((ack = rd_u8("read the VeNCrypt subtype ack")) != 1)
		die(EX_PROTO, "VeNCrypt subtype %u refused (%u)", o.sub, ack);
}

/* -- TLS -- */

static void
tls_start(void)
{
	gnutls_anon_client_credentials_t anon;
	gnutls_certificate_credentials_t x509;
	struct in6_addr a6;
	const char *prio, *err = NULL;
	char *desc;
	int r;

	if ((r = gnutls_init(&tls, GNUTLS_CLIENT)) < 0)
		die(EX_PROTO, "gnutls_init: %s", gnutls_strerror(r));
	if (o.sub == SUB_TLSSASL) {
		/* what gtk-vnc asks for; the server caps anon TLS at 1.2 */
		prio = "NORMAL:+ANON-ECDH:+ANON-DH";
		if ((r = gnutls_anon_allocate_client_credentials(&anon)) < 0 ||
		    (r = gnutls_credentials_set(tls, GNUTLS_CRD_ANON,
		    anon)) < 0)
			die(EX_PROTO, "anon credentials: %s",
			    gnutls_strerror(r));
	} else {
		prio = o.tls12 ? "NORMAL:-VERS-TLS1.3" : "NORMAL";
		if ((r = gnutls_certificate_allocate_credentials(&x509)) < 0)
			die(EX_PROTO, "certificate credentials: %s",
			    gnutls_strerror(r));
		r = gnutls_certificate_set_x509_trust_file(x509, o.cafile,
		    GNUTLS_X509_FMT_PEM);
		if (r <= 0)
			die(EX_USAGE, "no CA certificate in %s: %s", o.cafile,
			    r < 0 ? gnutls_strerror(r) : "empty");
		if (o.certfile != NULL && (r =
		    gnutls_certificate_set_x509_key_file(x509, o.certfile,
		    o.keyfile, GNUTLS_X509_FMT_PEM)) < 0)
			die(EX_USAGE, "client certificate %s / %s: %s",
			    o.certfile, o.keyfile, gnutls_strerror(r));
		if ((r = gnutls_credentials_set(tls, GNUTLS_CRD_CERTIFICATE,
		    x509)) < 0)
			die(EX_PROTO, "gnutls_credentials_set: %s",
			    gnutls_strerror(r));
		/* the name is checked against the certificate (IPs too) */
		gnutls_session_set_verify_cert(tls, o.host, 0);
		if (inet_pton(AF_INET6, o.host, &a6) != 1 &&
		    inet_pton(AF_INET, o.host, &a6) != 1)
			gnutls_server_name_set(tls, GNUTLS_NAME_DNS, o.host,
			    strlen(o.host));
	}
	if ((r = gnutls_priority_set_direct(tls, prio, &err)) < 0)
		die(EX_PROTO, "TLS priority '%s' at '%s': %s", prio,
		    err ? err : "?", gnutls_strerror(r));
	gnutls_transport_set_int(tls, fd);
	do
		r = gnutls_handshake(tls);
	while (r < 0 && !gnutls_error_is_fatal(r));
	if (r < 0) {
		gnutls_datum_t st = { NULL, 0 };

		if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR &&
		    gnutls_certificate_verification_status_print(
		    gnutls_session_get_verify_cert_status(tls),
		    GNUTLS_CRT_X509, &st, 0) == 0)
			die(EX_PROTO, "TLS handshake: %s", st.data);
		die(EX_PROTO, "TLS handshake: %s", gnutls_strerror(r));
	}
	tls_up = 1;
	desc = gnutls_session_get_desc(tls);
	vlog("TLS up: %s", desc ? desc : "?");
	gnutls_free(desc);
}

static const char *
tls_version(void)
{
	const char *v = gnutls_protocol_get_name(
	    gnutls_protocol_get_version(tls));

	return v ? v : "?";
}

/* -- SASL -- */

/* Base64 of tls-unique (TLS <= 1.2) or tls-exporter (TLS 1.3). */
static int
cb_answer(Gsasl_session *sctx, Gsasl_property prop)
{
	int t13 = gnutls_protocol_get_version(tls) == GNUTLS_TLS1_3;
	int unique = prop == GSASL_CB_TLS_UNIQUE;
	const char *name = unique ? "tls-unique" : "tls-exporter";
	gnutls_datum_t cb = { NULL, 0 };
	char *b64 = NULL;
	int r;

	vlog("gsasl asks for %s", name);
	if (strstr(o.mech, "-PLUS") == NULL) {
		vlog("  not answered: %s is no -PLUS mechanism", o.mech);
		return GSASL_NO_CALLBACK;
	}
	if (unique == t13) {
		vlog("  not answered: %s is not the binding for %s", name,
		    tls_version());
		return GSASL_NO_CALLBACK;
	}
	r = gnutls_session_channel_binding(tls, unique ? GNUTLS_CB_TLS_UNIQUE :
	    GNUTLS_CB_TLS_EXPORTER, &cb);
	if (r < 0) {
		vlog("  not answered: gnutls_session_channel_binding: %s",
		    gnutls_strerror(r));
		return GSASL_NO_CALLBACK;
	}
	if (o.bad_cb && cb.size > 0)
		cb.data[cb.size / 2] ^= 0xff;
	r = gsasl_base64_to((const char *)cb.data, cb.size, &b64, NULL);
	gnutls_free(cb.data);
	if (r != GSASL_OK)
		return r;
	vlog("  answered %s%s: %s", name, o.bad_cb ? " (corrupted, -B)" : "",
	    b64);
	r = gsasl_property_set(sctx, prop, b64);
	gsasl_free(b64);
	if (r == GSASL_OK)
		cb_used = unique ? "tls-unique" : "tls-exporter";
	return r;
}

static int
sasl_callback(Gsasl *ctx, Gsasl_session *sctx, Gsasl_property prop)
{
	(void)ctx;
	switch (prop) {
	case GSASL_AUTHID:
		return o.user ? gsasl_property_set(sctx, prop, o.user) :
		    GSASL_NO_CALLBACK;
	case GSASL_PASSWORD:
		return o.pass ? gsasl_property_set(sctx, prop, o.pass) :
		    GSASL_NO_CALLBACK;
	case GSASL_AUTHZID:
		return o.authz ? gsasl_property_set(sctx, prop, o.authz) :
		    GSASL_NO_CALLBACK;
	case GSASL_CB_TLS_UNIQUE:
	case GSASL_CB_TLS_EXPORTER:
		return cb_answer(sctx, prop);
	default:
		vlog("gsasl asks for property %d: not answered", (int)prop);
		return GSASL_NO_CALLBACK;
	}
}

/*
 * -Y: SCRAM with the GS2 flag "y" (RFC 5802 5.1, 6), done by hand because
 * libgsasl 2.2.0's client cannot send it.  Names are sent as given (the
 * tests use plain ASCII user names without ',' or '=').
 */
static struct {
	Gsasl_hash hash;
	gnutls_mac_algorithm_t mac;
	int step;
	char *gs2, *bare, *cnonce, *servsig;	/* bare: client-first-bare */
} ys;

static char *
xstrdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		die(EX_PROTO, "out of memory");
	return p;
}

/* "r=...,s=...,i=..." (extensions are not expected from gsasl) */
static int
ys_parse_first(const char *in, char **nonce, char **salt, unsigned *iter)
{
	char *copy = strdup(in), *tok, *save = NULL;

	*nonce = *salt = NULL;
	*iter = 0;
	if (copy == NULL)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (strncmp(tok, "r=", 2) == 0)
			*nonce = strdup(tok + 2);
		else if (strncmp(tok, "s=", 2) == 0)
			*salt = strdup(tok + 2);
		else if (strncmp(tok, "i=", 2) == 0)
			*iter = (unsigned)strtoul(tok + 2, NULL, 10);
	}
	free(copy);
	return *nonce && *salt && *iter > 0 ? 0 : -1;
}

static int
ys_step(const char *in, size_t inlen, char **out, size_t *outlen)
{
	char salted[GSASL_HASH_MAX_SIZE], ckey[GSASL_HASH_MAX_SIZE];
	char skey[GSASL_HASH_MAX_SIZE], stkey[GSASL_HASH_MAX_SIZE];
	char csig[GSASL_HASH_MAX_SIZE], ssig[GSASL_HASH_MAX_SIZE];
	char *nonce, *salt64, *salt, *gs2_64, *cfwp, *authmsg, *proof64;
	char cnonce_raw[18];
	size_t hl = gsasl_hash_length(ys.hash), saltlen, i;
	unsigned iter;
	int r;

	*out = NULL;
	*outlen = 0;
	switch (ys.step++) {
	case 0:
		if (o.user == NULL || o.pass == NULL)
			return GSASL_NO_AUTHID;
		if (gsasl_nonce(cnonce_raw, sizeof cnonce_raw) != GSASL_OK ||
		    gsasl_base64_to(cnonce_raw, sizeof cnonce_raw, &ys.cnonce,
		    NULL) != GSASL_OK)
			return GSASL_CRYPTO_ERROR;
		ys.gs2 = o.authz ? xstrdup_printf("y,a=%s,", o.authz) :
		    xstrdup_printf("y,,");
		ys.bare = xstrdup_printf("n=%s,r=%s", o.user, ys.cnonce);
		*out = xstrdup_printf("%s%s", ys.gs2, ys.bare);
		*outlen = strlen(*out);
		return GSASL_NEEDS_MORE;
	case 1:
		if (in == NULL || strlen(in) != inlen ||
		    ys_parse_first(in, &nonce, &salt64, &iter) < 0)
			return GSASL_MECHANISM_PARSE_ERROR;
		if (strncmp(nonce, ys.cnonce, strlen(ys.cnonce)) != 0)
			return GSASL_AUTHENTICATION_ERROR;
		if ((r = gsasl_base64_from(salt64, strlen(salt64), &salt,
		    &saltlen)) != GSASL_OK)
			return r;
		r = gsasl_scram_secrets_from_password(ys.hash, o.pass, iter,
		    salt, saltlen, salted, ckey, skey, stkey);
		gsasl_free(salt);
		if (r != GSASL_OK)
			return r;
		if ((r = gsasl_base64_to(ys.gs2, strlen(ys.gs2), &gs2_64,
		    NULL)) != GSASL_OK)
			return r;
		cfwp = xstrdup_printf("c=%s,r=%s", gs2_64, nonce);
		gsasl_free(gs2_64);
		authmsg = xstrdup_printf("%s,%s,%s", ys.bare, in, cfwp);
		if (gnutls_hmac_fast(ys.mac, stkey, hl, authmsg,
		    strlen(authmsg), csig) < 0 ||
		    gnutls_hmac_fast(ys.mac, skey, hl, authmsg,
		    strlen(authmsg), ssig) < 0)
			return GSASL_CRYPTO_ERROR;
		for (i = 0; i < hl; i++)
			csig[i] ^= ckey[i];	/* ClientProof */
		if ((r = gsasl_base64_to(csig, hl, &proof64, NULL)) !=
		    GSASL_OK || (r = gsasl_base64_to(ssig, hl, &ys.servsig,
		    NULL)) != GSASL_OK)
			return r;
		*out = xstrdup_printf("%s,p=%s", cfwp, proof64);
		*outlen = strlen(*out);
		gsasl_free(proof64);
		free(cfwp);
		free(authmsg);
		free(nonce);
		free(salt64);
		return GSASL_NEEDS_MORE;
	case 2:
		if (in == NULL || inlen < 2 || strncmp(in, "v=", 2) != 0)
			return GSASL_MECHANISM_PARSE_ERROR;
		if (strlen(ys.servsig) != inlen - 2 ||
		    memcmp(in + 2, ys.servsig, inlen - 2) != 0)
			return GSASL_AUTHENTICATION_ERROR;
		return GSASL_OK;
	default:
		return GSASL_MECHANISM_CALLED_TOO_MANY_TIMES;
	}
}

static Gsasl_session *g_sctx;

static int
mech_step(const char *in, size_t inlen, char **out, size_t *outlen)
{
	if (o.force_y)
		return ys_step(in, inlen, out, outlen);
	return gsasl_step(g_sctx, in, inlen, out, outlen);
}

/* U32 len+1, data, NUL; or U32 0 for NULL (PROTOCOL.md 2.4) */
static void
sasl_send(const char *prefix, size_t plen, const char *data, size_t len,
    const char *what)
{
	size_t n = plen + 4 + (data ? len + 1 : 0);
	uint8_t *buf;

	if (len >= SASL_DATA_MAX)
		die(EX_PROTO, "our SASL data of %zu bytes is too long", len);
	if ((buf = malloc(n)) == NULL)
		die(EX_PROTO, "out of memory");
	memcpy(buf, prefix, plen);
	put32(buf + plen, data ? (uint32_t)len + 1 : 0);
	if (data) {
		memcpy(buf + plen + 4, data, len);
		buf[n - 1] = '\0';
	}
	if (plen > 4)
		vlog("C: mechanism %.*s", (int)(plen - 4), prefix + 4);
	vlog("C: %.*s", data ? (int)len : 6, data ? data : "(NULL)");
	wr(buf, n, what);
	free(buf);
}

/* ServerReply: U32 len (0 = NULL, else data + NUL), U8 complete. */
static char *
sasl_reply(size_t *lenp, int *complete)
{
	uint32_t len = rd_u32("read the SASL reply length");
	char *data = NULL;
	uint8_t c;

	if (len > SASL_DATA_MAX)
		die(EX_PROTO, "SASL reply of %lu bytes (limit %d)",
		    (unsigned long)len, SASL_DATA_MAX);
	if (len > 0) {
		if ((data = malloc(len)) == NULL)
			die(EX_PROTO, "out of memory");
		rd(data, len, "read the SASL reply");
		if (data[len - 1] != '\0')
			die(EX_PROTO, "SASL reply without its NUL pad");
	}
	c = rd_u8("read the SASL complete flag");
	if (c > 1)
		die(EX_PROTO, "SASL complete flag %u", c);
	*complete = c;
	*lenp = len > 0 ? len - 1 : 0;
	vlog("S: %s complete=%u", data ? data : "(NULL)", c);
	return data;
}

static void
sasl_auth(void)
{
	uint32_t len = rd_u32("read the SASL mechlist length");
	char list[MECHLIST_MAX + 1], *out = NULL, *in;
	Gsasl *ctx;
	size_t outlen = 0, inlen, nlen = strlen(o.wire_mech);
	uint8_t prefix[4 + 100];
	int r, complete, client_ok, rounds = 0;
	uint32_t result;

	if (len > MECHLIST_MAX)
		die(EX_PROTO, "SASL mechlist of %lu bytes (viewers allow %d)",
		    (unsigned long)len, MECHLIST_MAX);
	rd(list, len, "read the SASL mechlist");
	list[len] = '\0';
	if (strlen(list) != len)
		die(EX_PROTO, "NUL inside the SASL mechlist");
	vlog("mechlist: %s", list);
	if (nlen < 1 || nlen > 100)
		die(EX_USAGE, "mechanism name of %zu bytes", nlen);

	if ((r = gsasl_init(&ctx)) != GSASL_OK)
		die(EX_PROTO, "gsasl_init: %s", gsasl_strerror(r));
	gsasl_callback_set(ctx, sasl_callback);
	if (o.force_y) {
		if (strcmp(o.mech, "SCRAM-SHA-1") == 0) {
			ys.hash = GSASL_HASH_SHA1;
			ys.mac = GNUTLS_MAC_SHA1;
		} else if (strcmp(o.mech, "SCRAM-SHA-256") == 0) {
			ys.hash = GSASL_HASH_SHA256;
			ys.mac = GNUTLS_MAC_SHA256;
		} else
			die(EX_USAGE, "-Y needs -m SCRAM-SHA-1 or "
			    "SCRAM-SHA-256");
		cb_used = "y-flag";
	} else if ((r = gsasl_client_start(ctx, o.mech, &g_sctx)) != GSASL_OK)
		die(EX_PROTO, "gsasl_client_start(%s): %s", o.mech,
		    gsasl_strerror(r));
	r = mech_step(NULL, 0, &out, &outlen);
	if (r != GSASL_OK && r != GSASL_NEEDS_MORE)
		die(EX_PROTO, "client SASL start (%s): %s", o.mech,
		    gsasl_strerror(r));
	client_ok = r == GSASL_OK;

	/* ClientStart: mechname, then the initial response */
	in_auth = 1;
	put32(prefix, (uint32_t)nlen);
	memcpy(prefix + 4, o.wire_mech, nlen);
	sasl_send((const char *)prefix, 4 + nlen, out, outlen,
	    "sent ClientStart");
	gsasl_free(out);
	out = NULL;

	for (;;) {
		in = sasl_reply(&inlen, &complete);
		if (complete) {
			/* the final token (SCRAM v=) comes with complete=1 */
			if (in != NULL && !client_ok) {
				r = mech_step(in, inlen, &out, &outlen);
				gsasl_free(out);
				out = NULL;
				if (r != GSASL_OK)
					die(EX_PROTO, "server's final SASL "
					    "token refused by our client: %s",
					    gsasl_strerror(r));
				client_ok = 1;
			}
			free(in);
			break;
		}
		if (++rounds > SASL_ROUNDS_MAX)
			die(EX_PROTO, "more than %d SASL rounds",
			    SASL_ROUNDS_MAX);
		r = mech_step(in, inlen, &out, &outlen);
		free(in);
		if (r != GSASL_OK && r != GSASL_NEEDS_MORE)
			die(EX_PROTO, "client SASL step: %s",
			    gsasl_strerror(r));
		client_ok = r == GSASL_OK;
		sasl_send(NULL, 0, out, outlen, "sent ClientStep");
		gsasl_free(out);
		out = NULL;
	}

	result = rd_u32("read the SecurityResult");
	if (result == 1) {
		uint32_t rlen = rd_u32("read the failure reason length");
		char reason[REASON_MAX + 1];

		if (rlen > REASON_MAX)
			die(EX_PROTO, "failure reason of %lu bytes",
			    (unsigned long)rlen);
		rd(reason, rlen, "read the failure reason");
		reason[rlen] = '\0';
		refused("SecurityResult 1 reason=\"%s\"", reason);
	}
	if (result != 0)
		die(EX_PROTO, "SecurityResult %lu", (unsigned long)result);
	in_auth = 0;
	if (!client_ok)
		die(EX_PROTO, "SecurityResult ok, but our SASL client never "
		    "verified the server (no final token)");
	vlog("SecurityResult ok, mechanism %s (sent as %s), binding %s",
	    o.mech, o.wire_mech, cb_used);
	if (g_sctx != NULL)
		gsasl_finish(g_sctx);
	gsasl_done(ctx);
}

/* -- after authentication: Init and one full Raw update -- */

static void
rfb_session(void)
{
	uint8_t shared = 1, pf[16], msg[20];
	uint16_t w, h;
	uint32_t nlen;
	char *name;
	unsigned bpp;
	uint64_t need, got = 0;

	wr(&shared, 1, "sent ClientInit");
	w = rd_u16("read ServerInit");
	h = rd_u16("read ServerInit");
	rd(pf, 16, "read ServerInit");
	nlen = rd_u32("read ServerInit");
	if (nlen > NAME_MAX_LEN)
		die(EX_PROTO, "desktop name of %lu bytes",
		    (unsigned long)nlen);
	if ((name = malloc(nlen + 1)) == NULL)
		die(EX_PROTO, "out of memory");
	rd(name, nlen, "read the desktop name");
	name[nlen] = '\0';
	bpp = pf[0];
	vlog("ServerInit %ux%u bpp=%u depth=%u be=%u tc=%u name=%s", w, h,
	    bpp, pf[1], pf[2], pf[3], name);
	if (bpp != 8 && bpp != 16 && bpp != 32)
		die(EX_PROTO, "ServerInit bpp %u", bpp);
	if (w == 0 || h == 0)
		die(EX_PROTO, "ServerInit %ux%u", w, h);

	/* SetEncodings: Raw only */
	memset(msg, 0, sizeof msg);
	msg[0] = 2;
	put16(msg + 2, 1);
	put32(msg + 4, 0);
	wr(msg, 8, "sent SetEncodings");
	/* FramebufferUpdateRequest, not incremental, whole screen */
	memset(msg, 0, sizeof msg);
	msg[0] = 3;
	put16(msg + 6, w);
	put16(msg + 8, h);
	wr(msg, 10, "sent FramebufferUpdateRequest");

	need = (uint64_t)w * h;
	while (got < need) {
		uint8_t type = rd_u8("read a server message");

		switch (type) {
		case 0: {	/* FramebufferUpdate */
			uint16_t n, i;

			rd_u8("read FramebufferUpdate");
			n = rd_u16("read FramebufferUpdate");
			for (i = 0; i < n; i++) {
				uint8_t r[12];
				unsigned rx, ry, rw, rh;
				int32_t enc;

				rd(r, 12, "read a rectangle header");
				rx = (unsigned)r[0] << 8 | r[1];
				ry = (unsigned)r[2] << 8 | r[3];
				rw = (unsigned)r[4] << 8 | r[5];
				rh = (unsigned)r[6] << 8 | r[7];
				enc = (int32_t)((uint32_t)r[8] << 24 |
				    (uint32_t)r[9] << 16 |
				    (uint32_t)r[10] << 8 | r[11]);
				if (enc != 0)
					die(EX_PROTO, "rectangle encoding %ld "
					    "(we asked for Raw only)",
					    (long)enc);
				if (rx + rw > w || ry + rh > h)
					die(EX_PROTO, "rectangle %ux%u+%u+%u "
					    "outside %ux%u", rw, rh, rx, ry,
					    w, h);
				skip((size_t)rw * rh * (bpp / 8),
				    "read Raw pixels");
				got += (uint64_t)rw * rh;
			}
			vlog("FramebufferUpdate: %u rectangles, %llu of %llu "
			    "pixels", n, (unsigned long long)got,
			    (unsigned long long)need);
			break;
		}
		case 1: {	/* SetColourMapEntries */
			uint16_t k;

			rd(msg, 5, "read SetColourMapEntries");
			k = (uint16_t)(msg[3] << 8 | msg[4]);
			skip((size_t)k * 6, "read SetColourMapEntries");
			break;
		}
		case 2:		/* Bell */
			break;
		case 3: {	/* ServerCutText */
			uint32_t len;

			rd(msg, 3, "read ServerCutText");
			len = rd_u32("read ServerCutText");
			if (len > (1u << 24))
				die(EX_PROTO, "ServerCutText of %lu bytes",
				    (unsigned long)len);
			skip(len, "read ServerCutText");
			break;
		}
		default:
			die(EX_PROTO, "unknown server message type %u", type);
		}
	}
	if (o.expect_fail) {
		printf("FAIL: authenticated (%ux%u mech=%s) although a "
		    "refusal was expected\n", w, h, o.mech);
		exit(EX_UNEXPECTED);
	}
	printf("ok: %ux%u name=%s mech=%s result=0 tls=%s cb=%s\n", w, h,
	    name, o.mech, tls_version(), cb_used);
	fflush(stdout);
	free(name);
	gnutls_bye(tls, GNUTLS_SHUT_WR);
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: cbclient [-BEYv2] [-u user] [-p pass] "
	    "[-z authzid] [-m mech] [-M wirename]\n"
	    "                [-S tlssasl|x509sasl] [-C cafile] [-c cert -k key]"
	    " [-t secs] host port\n");
	exit(EX_USAGE);
}

int
main(int argc, char **argv)
{
	int ch;

	o.mech = "SCRAM-SHA-256-PLUS";
	o.sub = SUB_TLSSASL;
	o.secs = 20;
	while ((ch = getopt(argc, argv, "BC:c:Ek:M:m:p:S:t:u:vYz:2")) != -1) {
		switch (ch) {
		case 'B': o.bad_cb = 1; break;
		case 'C': o.cafile = optarg; break;
		case 'c': o.certfile = optarg; break;
		case 'E': o.expect_fail = 1; break;
		case 'k': o.keyfile = optarg; break;
		case 'M': o.wire_mech = optarg; break;
		case 'm': o.mech = optarg; break;
		case 'p': o.pass = optarg; break;
		case 'S':
			if (strcmp(optarg, "tlssasl") == 0)
				o.sub = SUB_TLSSASL;
			else if (strcmp(optarg, "x509sasl") == 0)
				o.sub = SUB_X509SASL;
			else
				usage();
			break;
		case 't': o.secs = atoi(optarg); break;
		case 'u': o.user = optarg; break;
		case 'v': o.verbose = 1; break;
		case 'Y': o.force_y = 1; break;
		case 'z': o.authz = optarg; break;
		case '2': o.tls12 = 1; break;
		default: usage();
		}
	}
	if (argc - optind != 2 || o.secs <= 0 ||
	    (o.sub == SUB_X509SASL && o.cafile == NULL) ||
	    (o.certfile == NULL) != (o.keyfile == NULL))
		usage();
	o.host = argv[optind];
	o.port = argv[optind + 1];
	if (o.wire_mech == NULL)
		o.wire_mech = o.mech;

	snprintf(alarm_msg, sizeof alarm_msg, "FAIL: timeout after %d s\n",
	    o.secs);
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)o.secs);
	if (gnutls_global_init() < 0)
		die(EX_PROTO, "gnutls_global_init failed");

	tcp_connect();
	rfb_version();
	security_type();
	vencrypt();
	tls_start();
	sasl_auth();
	rfb_session();
	close(fd);
	return EX_SUCCESS;
}
