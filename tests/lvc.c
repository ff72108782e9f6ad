/*
 * lvc.c - a headless test viewer for vncsasl built on libvncclient.
 *
 * It connects like any libvncclient application, asks for a pixel format
 * and encodings, and checks every complete FramebufferUpdate against the
 * picture fb-dummy.c draws: the status strip at the top is decoded back
 * into a struct dummy_state, and every pixel must then equal
 * dummy_pixel() of that state (in the quantised domain for 16 and 8 bpp).
 * libvncclient tells the end of each update (FinishedFrameBufferUpdate),
 * so here the check is strict: once the whole screen has been received,
 * every complete update must match exactly.
 *
 * What does not depend on libvncclient (options, pixel check, goals, -N,
 * -R, the result line) is in tests/viewer.c, shared with tests/gvnc.c.
 *
 * Build:
 *   cc -std=gnu99 -Wall -Wextra -O2 -I. -o tests/lvc tests/lvc.c \
 *       tests/viewer.c fb-dummy.c $(pkg-config --cflags --libs libvncclient)
 *
 * Limits of libvncclient 0.9.14 that shape this program:
 *   - -a works through SetClientAuthSchemes(), which only filters the
 *     top-level security types.  VeNCrypt subtypes cannot be restricted:
 *     ReadVeNCryptSecurityType() takes the first subtype in the server's
 *     list, preferring a TLS/X509 one over None/VNC/Plain.  -S is therefore
 *     ignored for choosing; the subtype chosen is reported, with a warning
 *     on stderr if it is not in the -S list.
 *   - SASL needs an IP literal host (sasl_client_new gets serverHost) and a
 *     user name from GetUser, or Cyrus asks for interaction, which
 *     libvncclient cannot answer.  -m picks the mechanism through
 *     GetSASLMechanism; without it Cyrus picks from the server's list.
 *     Mechanisms the server must finish in one message (PLAIN) do not work
 *     with libvncclient.  The mechanism used is read from the library's log.
 *   - rfbInitClient() frees the client when it fails, so nothing touches
 *     it afterwards; the reason is taken from the library's log, which this
 *     program captures by replacing rfbClientLog/rfbClientErr.
 *   - WaitForMessage() only select()s on the socket: data already read
 *     into libvncclient's buffer, GnuTLS's record buffer or the SASL
 *     decoder would not wake it, so those are checked first
 *     (gnutls_record_check_pending is looked up at run time, to keep the
 *     link line as pkg-config gives it).
 *   - Encodings: raw, copyrect, rre, hextile, tight, zrle go into
 *     appData.encodingsString; desktopsize sets canHandleNewFBSize, cursor
 *     sets appData.useRemoteCursor.  libvncclient itself decides about
 *     lastrect (asked for with tight) and ExtendedDesktopSize (always
 *     asked for), so those two names change nothing here.  Tight JPEG is
 *     off unless -q asks for it (then -J says how lossy a picture may
 *     be); -q and -c reach the server only with tight (or zlib) listed.
 *   - HOST may be a UNIX socket path with PORT "unix": libvncclient
 *     connects to it when stat() says it is a socket.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rfb/rfbclient.h>

#include "viewer.h"

static int
lib_opt(int c, const char *arg)
{
	if (c != 'm')
		return -1;
	O.mech = arg;
	return 0;
}

static void
usage_extra(void)
{
	fprintf(stderr,
"  -m MECH    SASL mechanism to pick from the server's list (lvc only)\n"
"lvc cannot restrict VeNCrypt subtypes (libvncclient picks the first TLS or\n"
"X509 one the server offers); -S is only compared with what was chosen.\n");
}

static rfbClient *cl;

/* what the library said, for the reason of a failure */
#define LOG_LINES 16
static char log_ring[LOG_LINES][300];
static int log_next, log_count;
static int seen_version, seen_connect_fail, malloc_called;

static void
lib_log(const char *fmt, ...)
{
	char line[300];
	const char *p;
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (O.verbose >= 2)
		fprintf(stderr, "lvc: libvncclient: %s\n", line);
	if (strstr(line, "supports protocol version"))
		seen_version = 1;
	if (strstr(line, "Unable to connect") ||
	    strstr(line, "Couldn't convert"))
		seen_connect_fail = 1;
	if ((p = strstr(line, "negotiation with mech ")) != NULL) {
		snprintf(G.mech, sizeof G.mech, "%s", p + 22);
		G.mech[strcspn(G.mech, ". ")] = '\0';
	}
	snprintf(log_ring[log_next], sizeof log_ring[0], "%s", line);
	log_next = (log_next + 1) % LOG_LINES;
	if (log_count < LOG_LINES)
		log_count++;
}

/* the most telling recent line of the library's log */
static const char *
log_reason(void)
{
	static const char *const words[] = {
		"fail", "refus", "denied", "nknown", "rror", "not ", "nvalid",
		"nable", "closed", "too ", "certificate", NULL
	};
	int i, k;

	for (i = 1; i <= log_count; i++) {
		const char *l = log_ring[(log_next - i + LOG_LINES) % LOG_LINES];

		for (k = 0; words[k]; k++)
			if (strstr(l, words[k]))
				return l;
	}
	if (log_count)
		return log_ring[(log_next - 1 + LOG_LINES) % LOG_LINES];
	return "(libvncclient said nothing)";
}

static char *
get_password(rfbClient *c)
{
	(void)c;
	vlog(1, "library asks for the password%s", O.pass ? "" : " (none given)");
	return O.pass ? strdup(O.pass) : NULL;	/* freed by the library */
}

static rfbCredential *
get_credential(rfbClient *c, int type)
{
	rfbCredential *cr = calloc(1, sizeof *cr);

	(void)c;
	if (!cr)
		return NULL;
	if (type == rfbCredentialTypeX509) {
		vlog(1, "library asks for X509 credentials (CA %s)",
		    O.cafile ? O.cafile : "system trust");
		cr->x509Credential.x509CACertFile =
		    O.cafile ? strdup(O.cafile) : NULL;
		cr->x509Credential.x509CrlVerifyMode = rfbX509CrlVerifyNone;
		return cr;
	}
	if (type == rfbCredentialTypeUser) {
		vlog(1, "library asks for user+password");
		cr->userCredential.username = strdup(O.user ? O.user : "");
		cr->userCredential.password = strdup(O.pass ? O.pass : "");
		return cr;
	}
	free(cr);
	return NULL;
}

static char *
get_user(rfbClient *c)
{
	(void)c;
	vlog(1, "library asks for the SASL user name");
	return (char *)O.user;		/* not freed by the library */
}

static char *
get_sasl_mech(rfbClient *c, char *mechlist)
{
	(void)c;
	vlog(1, "server offers SASL mechanisms: %s", mechlist);
	return O.mech ? strdup(O.mech) : NULL;	/* freed by the library */
}

static int done;

static rfbBool
malloc_fb(rfbClient *c)
{
	size_t n = (size_t)c->width * c->height;

	malloc_called = 1;
	if (c->width <= 0 || c->height <= 0 || c->width > 32767 ||
	    c->height > 32767) {
		set_fail(EX_PROTO, "bad framebuffer size %dx%d", c->width,
		    c->height);
		return FALSE;
	}
	free(c->frameBuffer);
	c->frameBuffer = calloc(n, c->format.bitsPerPixel / 8);
	if (cover_reset(c->width, c->height) < 0 || !c->frameBuffer) {
		set_fail(EX_PROTO, "out of memory for %dx%d", c->width,
		    c->height);
		return FALSE;
	}
	if (G.w && (G.w != c->width || G.h != c->height))
		vlog(1, "desktop resized to %dx%d", c->width, c->height);
	G.w = c->width;
	G.h = c->height;
	update_status("receiving");
	return TRUE;
}

static void
got_update(rfbClient *c, int x, int y, int w, int h)
{
	(void)c;
	vlog(3, "rect %d,%d %dx%d", x, y, w, h);
	cover_add(x, y, w, h);
}

static void
finished_update(rfbClient *c)
{
	if (G.fail_code || done)
		return;
	if (cover_left()) {
		vlog(2, "update done, %zu pixel(s) never received yet",
		    cover_left());
		return;
	}
	switch (picture_complete(c->frameBuffer, (size_t)c->width *
	    (PF.bpp / 8), c->width, c->height, 0, 0)) {
	case PIC_BAD: {
		char d[300];

		describe_check(&G.last, d, sizeof d);
		set_fail(EX_PROTO, "pixel mismatch after a complete update (%d "
		    "verified before): %s", G.verified, d);
		return;
	}
	case PIC_FAIL:
		return;
	case PIC_DONE:
		done = 1;
		return;
	}
	/* a still picture sends nothing more by itself: ask for it again */
	if (O.still && G.verified < O.frames)
		SendFramebufferUpdateRequest(c, 0, 0, c->width, c->height,
		    FALSE);
}

static void
got_cut_text(rfbClient *c, const char *text, int len)
{
	(void)c;
	got_server_cut(text, len > 0 ? (size_t)len : 0);
}

static void
send_pointer(int x, int y, int buttons)
{
	SendPointerEvent(cl, x, y, buttons);
}

static void
send_key(uint32_t keysym, int down)
{
	SendKeyEvent(cl, keysym, down ? TRUE : FALSE);
}

static void
send_cut(const char *text, size_t len)
{
	SendClientCutText(cl, (char *)text, (int)len);
}

static const struct viewer_lib lvc_lib = {
	.name = "lvc", .optstring = "m:", .opt = lib_opt,
	.usage_extra = usage_extra, .send_pointer = send_pointer,
	.send_key = send_key, .send_cut = send_cut,
};

static int (*tls_check_pending)(void *);

/* data the library holds that select() on the socket cannot see */
static int
lib_pending(rfbClient *c)
{
	if (c->buffered > 0)
		return 1;
#ifdef LIBVNCSERVER_HAVE_SASL
	if (c->saslconn && c->saslDecoded)
		return 1;
#endif
	if (c->tlsSession && tls_check_pending &&
	    tls_check_pending(c->tlsSession) > 0)
		return 1;
	return 0;
}

static void
describe_sec(rfbClient *c)
{
	const char *t = num_name(sec_types, (int)c->authScheme);

	if (c->authScheme == 19) {
		snprintf(G.sec, sizeof G.sec, "%s/%s(%u/%u)", t,
		    num_name(vencrypt_subtypes, (int)c->subAuthScheme),
		    c->authScheme, c->subAuthScheme);
		if (O.subtypes_given && !allowed(O.subtypes, O.nsubtypes,
		    (int)c->subAuthScheme))
			fprintf(stderr, "lvc: warning: libvncclient chose VeNCrypt "
			    "subtype %u, which is not in -S (lvc cannot restrict "
			    "subtypes)\n", c->subAuthScheme);
	} else
		snprintf(G.sec, sizeof G.sec, "%s(%u)", t, c->authScheme);
}

static void __attribute__((format(printf, 2, 3), noreturn))
finish(int code, const char *fmt, ...)
{
	va_list ap;

	if (G.w)
		write_ppm(O.ppm, G.w, G.h);
	va_start(ap, fmt);
	report(code, fmt, ap);
	va_end(ap);
	if (cl) {
		free(cl->frameBuffer);	/* the application's, not the library's */
		cl->frameBuffer = NULL;
		rfbClientCleanup(cl);
	}
	exit(code);
}

int
main(int argc, char **argv)
{
	uint32_t schemes[9];
	char encs[128] = "";
	double deadline;
	int i;

	viewer_start(&lvc_lib, argc, argv);
	/* libvncclient can block in connect and authentication */
	arm_backstop(O.timeout);
	deadline = now_s() + O.timeout;

	rfbClientLog = lib_log;
	rfbClientErr = lib_log;
	tls_check_pending = (int (*)(void *))dlsym(RTLD_DEFAULT,
	    "gnutls_record_check_pending");

	cl = rfbGetClient(8, 3, 4);
	if (!cl)
		finish(EX_PROTO, "rfbGetClient failed");
	cl->format.bitsPerPixel = (uint8_t)PF.bpp;
	cl->format.depth = (uint8_t)PF.depth;
	cl->format.bigEndian = PF.big_endian ? TRUE : FALSE;
	cl->format.trueColour = TRUE;
	cl->format.redMax = (uint16_t)PF.rmax;
	cl->format.greenMax = (uint16_t)PF.gmax;
	cl->format.blueMax = (uint16_t)PF.bmax;
	cl->format.redShift = (uint8_t)PF.rshift;
	cl->format.greenShift = (uint8_t)PF.gshift;
	cl->format.blueShift = (uint8_t)PF.bshift;
	cl->appData.requestedDepth = PF.depth;

	for (i = 0; i < O.nencs; i++) {
		const char *n = num_name(enc_names, O.encs[i]);

		if (O.encs[i] & (ENC_RAW | ENC_COPYRECT | ENC_RRE |
		    ENC_HEXTILE | ENC_TIGHT | ENC_ZRLE)) {
			if (encs[0])
				strcat(encs, " ");
			strcat(encs, n);
		}
	}
	if (!encs[0])
		strcpy(encs, "raw");
	cl->appData.encodingsString = encs;
	/* libvncclient asks for these only with tight (or zlib) listed */
	cl->appData.enableJPEG = O.quality >= 0 ? TRUE : FALSE;
	if (O.quality >= 0)
		cl->appData.qualityLevel = O.quality;
	if (O.compress >= 0)
		cl->appData.compressLevel = O.compress;
	cl->appData.useRemoteCursor = has_enc(ENC_CURSOR) ? TRUE : FALSE;
	cl->appData.shareDesktop = TRUE;
	cl->canHandleNewFBSize = has_enc(ENC_DESKTOPSIZE) ? TRUE : FALSE;
	cl->connectTimeout = (unsigned)(O.timeout + 1);

	for (i = 0; i < O.ntypes; i++)
		schemes[i] = (uint32_t)O.types[i];
	schemes[i] = 0;
	SetClientAuthSchemes(cl, schemes, O.ntypes);

	cl->GetPassword = get_password;
	cl->GetCredential = get_credential;
#ifdef LIBVNCSERVER_HAVE_SASL
	if (O.user)
		cl->GetUser = get_user;
	cl->GetSASLMechanism = get_sasl_mech;
#else
	(void)get_user;
	(void)get_sasl_mech;
#endif
	cl->MallocFrameBuffer = malloc_fb;
	cl->GotFrameBufferUpdate = got_update;
	cl->FinishedFrameBufferUpdate = finished_update;
	cl->GotXCutText = got_cut_text;

	free(cl->serverHost);
	cl->serverHost = strdup(O.host);
	cl->serverPort = O.unix_sock ? 0 : atoi(O.port);
	if (O.unix_sock) {
		struct stat sb;

		if (stat(O.host, &sb) != 0 || !S_ISSOCK(sb.st_mode)) {
			cl = NULL;	/* leaked on purpose: exiting */
			finish(EX_TIMEOUT, "connect: %s is not a UNIX socket",
			    O.host);
		}
	}

	update_status("connecting/authenticating");
	vlog(1, "connecting to %s:%s, %d bpp%s, encodings '%s'", O.host,
	    O.port, PF.bpp, PF.big_endian ? " big-endian" : "", encs);
	if (!rfbInitClient(cl, NULL, NULL)) {
		/* the library has freed cl */
		cl = NULL;
		if (G.fail_code)
			finish(G.fail_code, "%s", G.fail_msg);
		if (seen_connect_fail || !seen_version) {
			if (seen_connect_fail)
				finish(EX_TIMEOUT, "connect failed: %s",
				    log_reason());
			finish(EX_PROTO, "no RFB version from the server: %s",
			    log_reason());
		}
		if (!malloc_called) {
			if (O.expect_fail) {
				printf("ok: lvc %s:%s refused during "
				    "authentication as expected: %s\n", O.host,
				    O.port, log_reason());
				exit(EX_OK);
			}
			finish(EX_AUTH, "authentication failed: %s",
			    log_reason());
		}
		finish(EX_PROTO, "initialisation failed after authentication: "
		    "%s", log_reason());
	}
	/* from here on the loop below keeps the time itself */
	arm_backstop(deadline - now_s() + 1);
	describe_sec(cl);
	if (O.expect_fail)
		finish(EX_PROTO, "expected a refusal, but authentication "
		    "succeeded (sec=%s%s%s)", G.sec, G.mech[0] ? " mech=" : "",
		    G.mech);
	vlog(1, "connected: %dx%d, sec=%s%s%s, desktop '%s'", cl->width,
	    cl->height, G.sec, G.mech[0] ? " mech=" : "", G.mech,
	    cl->desktopName ? cl->desktopName : "");
	update_status("receiving");

	while (!done || echo_pending()) {
		double left = deadline - now_s();
		int n;

		if (G.fail_code)
			finish(G.fail_code, "%s", G.fail_msg);
		if (!done && G.verified && goals_met()) {
			done = 1;	/* the -N window ended */
			continue;
		}
		if (left <= 0) {
			alarm(0);
			finish(EX_TIMEOUT, "timeout after %gs: %s", O.timeout,
			    status_now());
		}
		if (lib_pending(cl))
			n = 1;
		else
			n = WaitForMessage(cl, (unsigned)(left > 0.1 ? 100000 :
			    left * 1e6 + 1));
		if (n < 0)
			finish(EX_PROTO, "connection lost: %s", log_reason());
		if (n == 0)
			continue;
		if (!HandleRFBServerMessage(cl)) {
			if (G.fail_code)
				finish(G.fail_code, "%s", G.fail_msg);
			finish(EX_PROTO, "connection lost or protocol error "
			    "(%d frame(s) verified): %s", G.verified,
			    log_reason());
		}
	}
	alarm(0);
	if (G.fail_code)
		finish(G.fail_code, "%s", G.fail_msg);
	if (O.cut && G.echo == 2 && !O.raw)
		finish(EX_PROTO, "server echoed different cut text (%zu bytes, "
		    "'%s')", G.echo_len, G.echo_head);
	finish(EX_OK, NULL);
	return 0;
}
