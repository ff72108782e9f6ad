/*
 * mkcert.c - a client certificate whose subject is exactly what the test
 * says, signed by the test CA: the RDNs in the order given (DER order,
 * first = outermost, e.g. C then O then CN) and each value's bytes as
 * given, backslashes and newlines included.  certtool's templates cannot
 * say that (they read an RFC 4514 string and escape it), and a hostile
 * CA customer can: tests/hostile.py uses it for the certificate DN and
 * log cases of issue 11.
 *
 *   tests/mkcert CA-CERT CA-KEY CERT-OUT KEY-OUT TYPE=VALUE...
 *
 * TYPE is C, ST, L, O, OU or CN (or a dotted OID).  The new key is ECDSA
 * P-256; the certificate is a TLS client certificate valid for 30 days.
 * Exit 0, or 1 with a message on stderr.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gnutls/crypto.h>

#define DAYS 30

static void
die(const char *what, int r)
{
	fprintf(stderr, "mkcert: %s: %s\n", what, r ? gnutls_strerror(r) : "bad");
	exit(1);
}

static void
load(const char *path, gnutls_datum_t *d)
{
	int r = gnutls_load_file(path, d);

	if (r < 0)
		die(path, r);
}

static void
save(const char *path, const gnutls_datum_t *d, int mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "w");

	if (f == NULL || fwrite(d->data, 1, d->size, f) != d->size ||
	    fclose(f) != 0)
		die(path, 0);
}

static const char *
oid_of(const char *type, size_t n)
{
	static const struct { const char *name, *oid; } t[] = {
		{ "C", GNUTLS_OID_X520_COUNTRY_NAME },
		{ "ST", GNUTLS_OID_X520_STATE_OR_PROVINCE_NAME },
		{ "L", GNUTLS_OID_X520_LOCALITY_NAME },
		{ "O", GNUTLS_OID_X520_ORGANIZATION_NAME },
		{ "OU", GNUTLS_OID_X520_ORGANIZATIONAL_UNIT_NAME },
		{ "CN", GNUTLS_OID_X520_COMMON_NAME },
	};
	static char oid[64];
	size_t i;

	for (i = 0; i < sizeof t / sizeof t[0]; i++)
		if (strlen(t[i].name) == n && strncmp(t[i].name, type, n) == 0)
			return t[i].oid;
	if (n == 0 || n >= sizeof oid || strspn(type, "0123456789.") < n)
		return NULL;
	memcpy(oid, type, n);
	oid[n] = '\0';
	return oid;
}

int
main(int argc, char **argv)
{
	gnutls_x509_crt_t ca, crt;
	gnutls_x509_privkey_t cakey, key;
	gnutls_datum_t d, out;
	unsigned char serial[16];
	time_t now = time(NULL);
	int i, r;

	if (argc < 6) {
		fprintf(stderr, "usage: mkcert CA-CERT CA-KEY CERT-OUT KEY-OUT "
		    "TYPE=VALUE...\n");
		return 2;
	}
	if ((r = gnutls_global_init()) < 0)
		die("gnutls_global_init", r);
	gnutls_x509_crt_init(&ca);
	gnutls_x509_privkey_init(&cakey);
	load(argv[1], &d);
	if ((r = gnutls_x509_crt_import(ca, &d, GNUTLS_X509_FMT_PEM)) < 0)
		die(argv[1], r);
	gnutls_free(d.data);
	load(argv[2], &d);
	if ((r = gnutls_x509_privkey_import(cakey, &d, GNUTLS_X509_FMT_PEM)) < 0)
		die(argv[2], r);
	gnutls_free(d.data);

	gnutls_x509_privkey_init(&key);
	if ((r = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0)
		die("key", r);
	gnutls_x509_crt_init(&crt);
	gnutls_x509_crt_set_version(crt, 3);
	if ((r = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial)) < 0)
		die("serial", r);
	serial[0] &= 0x7f;		/* a positive INTEGER */
	gnutls_x509_crt_set_serial(crt, serial, sizeof serial);
	gnutls_x509_crt_set_activation_time(crt, now - 3600);
	gnutls_x509_crt_set_expiration_time(crt, now + DAYS * 86400L);
	for (i = 5; i < argc; i++) {
		const char *eq = strchr(argv[i], '='), *oid;

		if (eq == NULL ||
		    (oid = oid_of(argv[i], (size_t)(eq - argv[i]))) == NULL)
			die(argv[i], 0);
		/* one call, one RDN, appended: the order given is DER order */
		if ((r = gnutls_x509_crt_set_dn_by_oid(crt, oid, 0, eq + 1,
		    (unsigned)strlen(eq + 1))) < 0)
			die(argv[i], r);
	}
	if ((r = gnutls_x509_crt_set_key(crt, key)) < 0)
		die("set_key", r);
	gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
	gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
	gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0);
	if ((r = gnutls_x509_crt_sign2(crt, ca, cakey, GNUTLS_DIG_SHA256, 0)) < 0)
		die("sign", r);

	if ((r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out)) < 0)
		die("export", r);
	save(argv[3], &out, 0644);
	gnutls_free(out.data);
	if ((r = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &out)) < 0)
		die("export key", r);
	save(argv[4], &out, 0600);
	gnutls_free(out.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_privkey_deinit(key);
	gnutls_x509_privkey_deinit(cakey);
	gnutls_global_deinit();
	return 0;
}
