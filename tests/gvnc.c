/*
 * gvnc.c - a headless test viewer for vncsasl built on gtk-vnc's GVnc
 * library (VncConnection and VncBaseFramebuffer, no GTK widget), driven by
 * a GMainLoop.
 *
 * It checks the received picture against the one fb-dummy.c draws: the
 * status strip at the top is decoded back into a struct dummy_state, and
 * every pixel must then equal dummy_pixel() of that state (in the
 * quantised domain for 16 and 8 bpp).  gtk-vnc signals each rectangle but
 * not the end of a FramebufferUpdate, so the picture is checked in a
 * low-priority idle callback once the library has nothing more to do,
 * and the first picture that matches as a whole counts.  A mismatch that
 * stays while no update comes in for SETTLE seconds fails (exit 3); so
 * does one still there at the timeout.
 *
 * The framebuffer holds the pixels in the pixel format asked for (only the
 * byte order is the host's: gtk-vnc swaps big-endian pixels on the way
 * in), so what is checked is what the server sent.
 *
 * What does not depend on gtk-vnc (options, pixel check, goals, -N, -R,
 * the result line) is in tests/viewer.c, shared with tests/lvc.c.
 *
 * Build:
 *   cc -std=gnu99 -Wall -Wextra -O2 -I. -o tests/gvnc tests/gvnc.c \
 *       tests/viewer.c fb-dummy.c $(pkg-config --cflags --libs gvnc-1.0)
 *
 * Security: -a and -S choose, in the server's order, the first type and
 * VeNCrypt subtype offered that are allowed.  Credentials gtk-vnc asks for
 * come from -u and -p; the X509 "client name" is "vncsasl-test" (there is
 * no client certificate).  gtk-vnc lets Cyrus SASL choose the mechanism
 * from the server's list; the one used is read from gtk-vnc's debug log.
 *
 * CA certificate: gtk-vnc 1.3.1 does not read $HOME; it looks for
 * /etc/pki/CA/cacert.pem, then <home>/.pki/CA/cacert.pem with <home> from
 * getpwuid(getuid()), and falls back to GnuTLS's system trust.  This
 * program therefore interposes getpwuid() for its own uid: <home> becomes
 * $HOME (so a test that sets HOME gets $HOME/.pki/CA/cacert.pem), or, with
 * -C CAFILE, a private temporary directory holding a copy of CAFILE as
 * .pki/CA/cacert.pem (removed at exit).  If /etc/pki/CA/cacert.pem exists
 * it still wins, and -C says so on stderr.  The server's certificate must
 * name HOST (an IP SAN for 127.0.0.1).
 *
 * HOST may be a UNIX socket path with PORT "unix": the socket is connected
 * here and handed over with vnc_connection_open_fd (the X509 host name is
 * then "localhost").
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gvnc.h>

#include "viewer.h"

/* -W: choose as gtk-vnc's VncDisplay widget (remote-viewer, gvncviewer)
 * does: by its own order of preference (vncdisplay.c, vnc_display_init),
 * not the server's. */
static int widget_choice;

static int
lib_opt(int c, const char *arg)
{
	(void)arg;
	if (c != 'W')
		return -1;
	widget_choice = 1;
	return 0;
}

static void
usage_extra(void)
{
	fprintf(stderr,
"gvnc: Cyrus SASL picks the mechanism (there is no -m).  -C CAFILE is staged\n"
"as <tmpdir>/.pki/CA/cacert.pem for gtk-vnc; without -C, $HOME/.pki/CA/\n"
"cacert.pem is used if it exists, else GnuTLS's system trust.\n"
"  -W         choose the security type and VeNCrypt subtype as remote-viewer\n"
"             does (gtk-vnc's widget: X509SASL, X509Plain, X509Vnc, X509None,\n"
"             TLSSASL, TLSPlain, TLSVnc, TLSNone), not in the server's order\n");
}

/* seconds a mismatching picture may stay without any update coming in */
#define SETTLE 2.0
/* ask again for an update after this long without one */
#define REREQUEST 0.5

/* ---- where gtk-vnc looks for the CA certificate ---- */

static const char *pki_home;		/* what getpwuid() says is our home */

/*
 * gtk-vnc finds <home>/.pki/CA/cacert.pem through getpwuid(getuid()).
 * Executable symbols come first in the lookup scope, so this replaces
 * glibc's getpwuid() for libgvnc too.
 */
struct passwd *
getpwuid(uid_t uid)
{
	static struct passwd *(*real)(uid_t);
	static struct passwd pw;
	struct passwd *p;

	if (!real)
		real = (struct passwd *(*)(uid_t))dlsym(RTLD_NEXT, "getpwuid");
	p = real ? real(uid) : NULL;
	if (!pki_home || uid != getuid())
		return p;
	if (p)
		pw = *p;
	else {
		memset(&pw, 0, sizeof pw);
		pw.pw_name = (char *)"gvnc";
		pw.pw_passwd = (char *)"x";
		pw.pw_uid = uid;
		pw.pw_gid = getgid();
		pw.pw_gecos = (char *)"";
		pw.pw_shell = (char *)"/bin/sh";
	}
	pw.pw_dir = (char *)pki_home;
	return &pw;
}

static void
stage_cafile(void)
{
	static char dir[2048];
	const char *tmp = getenv("TMPDIR");
	char buf[65536];
	int in, out;
	ssize_t n;

	if (!O.cafile) {
		pki_home = getenv("HOME");
		if (pki_home)
			vlog(1, "CA: gtk-vnc will look in %s/.pki/CA/cacert.pem",
			    pki_home);
		return;
	}
	snprintf(dir, sizeof dir, "%s/gvnc-pki-XXXXXX",
	    tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		printf("FAIL: gvnc: mkdtemp %s: %s\n", dir, strerror(errno));
		exit(EX_USAGE);
	}
	snprintf(tmp_paths[2], sizeof tmp_paths[2], "%s/.pki", dir);
	snprintf(tmp_paths[1], sizeof tmp_paths[1], "%s/.pki/CA", dir);
	snprintf(tmp_paths[0], sizeof tmp_paths[0], "%s/.pki/CA/cacert.pem",
	    dir);
	if (mkdir(tmp_paths[2], 0700) < 0 || mkdir(tmp_paths[1], 0700) < 0 ||
	    (in = open(O.cafile, O_RDONLY)) < 0 ||
	    (out = open(tmp_paths[0], O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0) {
		printf("FAIL: gvnc: staging %s: %s\n", O.cafile,
		    strerror(errno));
		remove_tmp_paths();
		rmdir(dir);
		exit(EX_USAGE);
	}
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
	close(in);
	close(out);
	/* the directory itself goes last: reuse slot 2's parent */
	pki_home = dir;
	if (access("/etc/pki/CA/cacert.pem", F_OK) == 0)
		fprintf(stderr, "gvnc: warning: /etc/pki/CA/cacert.pem exists "
		    "and takes precedence over -C\n");
	vlog(1, "CA: %s staged as %s", O.cafile, tmp_paths[0]);
}

static void
remove_staged(void)
{
	remove_tmp_paths();
	if (O.cafile && pki_home)
		rmdir(pki_home);
}

/* ---- the connection ---- */

static VncConnection *conn;
static VncBaseFramebuffer *fbo;
static guint8 *fbbuf;
static int fbw, fbh;
static size_t fbstride;
static int connected, initialized, done;
static char err_msg[512], auth_msg[512], client_fail[512];
static int dirty;			/* update signals since the last check */
static guint check_id;
static double last_update_at, last_request_at;
static int last_check_bad;

static void __attribute__((format(printf, 2, 3), noreturn))
finish(int code, const char *fmt, ...)
{
	va_list ap;

	if (fbbuf && G.w && O.ppm) {
		/* the PPM shows the buffer as it is now */
		convert_frame(fbbuf, fbstride, fbw, fbh, 1);
		write_ppm(O.ppm, fbw, fbh);
	}
	va_start(ap, fmt);
	report(code, fmt, ap);
	va_end(ap);
	remove_staged();
	exit(code);
}

/* the failure worth reporting when the last picture did not match */
static void
finish_mismatch(const char *when)
{
	char d[300];

	/* count every differing pixel this time */
	check_frame(fbbuf, fbstride, fbw, fbh, 1, 0, &G.last);
	describe_check(&G.last, d, sizeof d);
	finish(EX_PROTO, "pixel mismatch %s (%d verified, %d checked): %s",
	    when, G.verified, G.checked, d);
}

static void
request_update(int incremental)
{
	if (!initialized || !fbo)
		return;
	vnc_connection_framebuffer_update_request(conn, incremental, 0, 0,
	    (guint16)fbw, (guint16)fbh);
	last_request_at = now_s();
}

/* the format asked for, and the same layout in host byte order */
static void
make_formats(VncPixelFormat *remote, VncPixelFormat *local)
{
	memset(remote, 0, sizeof *remote);
	remote->bits_per_pixel = (guint8)PF.bpp;
	remote->depth = (guint8)PF.depth;
	remote->byte_order = PF.big_endian ? G_BIG_ENDIAN : G_LITTLE_ENDIAN;
	remote->true_color_flag = 1;
	remote->red_max = (guint16)PF.rmax;
	remote->green_max = (guint16)PF.gmax;
	remote->blue_max = (guint16)PF.bmax;
	remote->red_shift = (guint8)PF.rshift;
	remote->green_shift = (guint8)PF.gshift;
	remote->blue_shift = (guint8)PF.bshift;
	/* gtk-vnc copies (or byte-swaps) into this: no conversion */
	*local = *remote;
	local->byte_order = G_BYTE_ORDER;
}

/* Give gtk-vnc a new framebuffer; after vnc_connection_set_pixel_format,
 * which picks the decoders' pixel size when the framebuffer is set. */
static void
setup_framebuffer(int w, int h)
{
	VncPixelFormat remote, local;
	VncBaseFramebuffer *old = fbo;
	guint8 *oldbuf = fbbuf;

	make_formats(&remote, &local);
	fbw = w;
	fbh = h;
	fbstride = (size_t)w * (PF.bpp / 8);
	fbbuf = g_malloc0(fbstride * (size_t)h + 1);
	fbo = vnc_base_framebuffer_new(fbbuf, (guint16)w, (guint16)h,
	    (int)fbstride, &local, &remote);
	vnc_connection_set_framebuffer(conn, VNC_FRAMEBUFFER(fbo));
	if (old)
		g_object_unref(old);
	g_free(oldbuf);
	G.w = w;
	G.h = h;
	dirty = 0;
	last_check_bad = 0;
	if (cover_reset(w, h) < 0)
		finish(EX_PROTO, "out of memory for %dx%d", w, h);
}

/*
 * The library has nothing more to do: take the picture as complete.  (For
 * -R, once every pixel has come; an update that takes the idle callback
 * more than one turn then counts more than once.)
 */
static gboolean
check_cb(gpointer data)
{
	int r;

	(void)data;
	check_id = 0;
	if (done || !dirty || !fbbuf)
		return FALSE;
	if (O.raw && cover_left()) {
		vlog(2, "%zu pixel(s) never received yet", cover_left());
		return FALSE;
	}
	dirty = 0;
	r = picture_complete(fbbuf, fbstride, fbw, fbh, 1, 1);
	if (r == PIC_FAIL)
		finish(G.fail_code, "%s", G.fail_msg);
	if (r == PIC_DONE) {
		done = 1;
		if (!echo_pending())
			finish(EX_OK, NULL);
		return FALSE;
	}
	if (r == PIC_BAD) {
		if (!last_check_bad)
			vlog(2, "picture does not match (yet)");
		last_check_bad = 1;
	} else
		last_check_bad = 0;
	/* a still picture sends nothing more by itself: ask for all again */
	request_update(!(r == PIC_MORE && O.still && G.verified < O.frames));
	return FALSE;
}

static void
on_update(VncConnection *c, int x, int y, int w, int h, gpointer d)
{
	(void)c;
	(void)d;
	vlog(3, "rect %d,%d %dx%d", x, y, w, h);
	cover_add(x, y, w, h);
	dirty++;
	last_update_at = now_s();
	if (!check_id && !done)
		check_id = g_idle_add_full(G_PRIORITY_LOW, check_cb, NULL,
		    NULL);
}

static gboolean
tick_cb(gpointer data)
{
	double t = now_s();

	(void)data;
	if (!done && initialized && G.verified && goals_met())
		done = 1;		/* the -N window ended */
	if (done && !echo_pending()) {
		finish(EX_OK, NULL);
		return FALSE;
	}
	if (!initialized || done)
		return TRUE;
	if (last_check_bad && !dirty && t - last_update_at > SETTLE)
		finish_mismatch("that stayed without further updates");
	if (t - last_update_at > REREQUEST && t - last_request_at > REREQUEST)
		request_update(1);
	return TRUE;
}

static gboolean
timeout_cb(gpointer data)
{
	(void)data;
	if (fbbuf && G.verified == 0 && G.checked > 0)
		finish_mismatch("until the timeout");
	finish(EX_TIMEOUT, "timeout after %gs: %s", O.timeout,
	    status_now());
	return FALSE;
}

static void
on_connected(VncConnection *c, gpointer d)
{
	(void)c;
	(void)d;
	connected = 1;
	vlog(1, "connected");
	update_status("authenticating");
}

/* tests/viewer.h's encodings as gtk-vnc's (a cursor: both its kinds) */
static const struct {
	int enc;
	gint32 gvnc;
} gvnc_encs[] = {
	{ ENC_RAW, VNC_CONNECTION_ENCODING_RAW },
	{ ENC_COPYRECT, VNC_CONNECTION_ENCODING_COPY_RECT },
	{ ENC_RRE, VNC_CONNECTION_ENCODING_RRE },
	{ ENC_HEXTILE, VNC_CONNECTION_ENCODING_HEXTILE },
	{ ENC_TIGHT, VNC_CONNECTION_ENCODING_TIGHT },
	{ ENC_ZRLE, VNC_CONNECTION_ENCODING_ZRLE },
	{ ENC_DESKTOPSIZE, VNC_CONNECTION_ENCODING_DESKTOP_RESIZE },
	{ ENC_LASTRECT, VNC_CONNECTION_ENCODING_LAST_RECT },
	{ ENC_CURSOR, VNC_CONNECTION_ENCODING_RICH_CURSOR },
	{ ENC_CURSOR, VNC_CONNECTION_ENCODING_XCURSOR },
	{ ENC_EXTDESKTOPSIZE, VNC_CONNECTION_ENCODING_EXTENDED_DESKTOP_RESIZE },
};

static void
on_initialized(VncConnection *c, gpointer d)
{
	gint32 encs[24];
	size_t j;
	int i, n = 0;

	(void)d;
	initialized = 1;
	if (O.expect_fail)
		finish(EX_PROTO, "expected a refusal, but authentication "
		    "succeeded (sec=%s%s%s)", G.sec[0] ? G.sec : "?",
		    G.mech[0] ? " mech=" : "", G.mech);
	vlog(1, "initialized: %dx%d, sec=%s%s%s, desktop '%s'",
	    vnc_connection_get_width(c), vnc_connection_get_height(c),
	    G.sec, G.mech[0] ? " mech=" : "", G.mech,
	    vnc_connection_get_name(c));
	{
		VncPixelFormat remote, local;

		make_formats(&remote, &local);
		vnc_connection_set_pixel_format(c, &remote);
	}
	setup_framebuffer(vnc_connection_get_width(c),
	    vnc_connection_get_height(c));
	for (i = 0; i < O.nencs; i++)
		for (j = 0; j < sizeof gvnc_encs / sizeof gvnc_encs[0]; j++)
			if (gvnc_encs[j].enc == O.encs[i] &&
			    n < (int)(sizeof encs / sizeof encs[0]))
				encs[n++] = gvnc_encs[j].gvnc;
	/* pseudo-encodings: -32 + Q, -256 + L */
	if (O.quality >= 0 && n < (int)(sizeof encs / sizeof encs[0]))
		encs[n++] = -32 + O.quality;
	if (O.compress >= 0 && n < (int)(sizeof encs / sizeof encs[0]))
		encs[n++] = -256 + O.compress;
	vnc_connection_set_encodings(c, n, encs);
	request_update(0);
	last_update_at = now_s();
	update_status("receiving");
}

static void
on_resize(VncConnection *c, int w, int h, gpointer d)
{
	(void)d;
	vlog(1, "desktop resized to %dx%d", w, h);
	if (!initialized)
		return;
	setup_framebuffer(w, h);
	(void)c;
	request_update(0);
	update_status("receiving");
}

static void
on_pixel_format(VncConnection *c, VncPixelFormat *f, gpointer d)
{
	(void)c;
	(void)d;
	finish(EX_PROTO, "the server imposed a pixel format (%d bpp, depth "
	    "%d): not what was asked for", f->bits_per_pixel, f->depth);
}

static void
on_cut_text(VncConnection *c, const char *text, gpointer d)
{
	(void)c;
	(void)d;
	got_server_cut(text, strlen(text));
	if (G.fail_code)
		finish(G.fail_code, "%s", G.fail_msg);
	if (done && !echo_pending())
		finish(EX_OK, NULL);
}

static void
on_error(VncConnection *c, const char *msg, gpointer d)
{
	(void)c;
	(void)d;
	vlog(1, "error: %s", msg);
	snprintf(err_msg, sizeof err_msg, "%s", msg);
}

static void
on_auth_failure(VncConnection *c, const char *reason, gpointer d)
{
	(void)c;
	(void)d;
	vlog(1, "authentication failure: %s", reason);
	snprintf(auth_msg, sizeof auth_msg, "%s", reason);
}

static void
on_auth_unsupported(VncConnection *c, unsigned int type, gpointer d)
{
	(void)c;
	(void)d;
	snprintf(auth_msg, sizeof auth_msg, "auth type %u unsupported", type);
}

static void
give_up(VncConnection *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(client_fail, sizeof client_fail, fmt, ap);
	va_end(ap);
	vlog(1, "giving up: %s", client_fail);
	vnc_connection_shutdown(c);
}

G_GNUC_BEGIN_IGNORE_DEPRECATIONS

static int
value_at(GValueArray *a, guint i)
{
	return g_value_get_enum(g_value_array_get_nth(a, i));
}

static void
on_choose_type(VncConnection *c, GValueArray *types, gpointer d)
{
	char offered[200] = "";
	int pick = 0;
	guint i;

	(void)d;
	for (i = 0; i < types->n_values; i++) {
		int t = value_at(types, i);

		snprintf(offered + strlen(offered),
		    sizeof offered - strlen(offered), "%s%d", i ? "," : "", t);
		if (!pick && allowed(O.types, O.ntypes, t))
			pick = t;
	}
	vlog(1, "server offers security types %s; choosing %d", offered,
	    pick);
	if (!pick) {
		give_up(c, "no allowed security type among the server's (%s)",
		    offered);
		return;
	}
	snprintf(G.sec, sizeof G.sec, "%s(%d)", num_name(sec_types, pick),
	    pick);
	vnc_connection_set_auth_type(c, (unsigned)pick);
}

static void
on_choose_subtype(VncConnection *c, unsigned int type, GValueArray *subs,
    gpointer d)
{
	char offered[200] = "";
	int pick = 0;
	guint i;

	static const int widget[] = { 263, 262, 261, 260, 264, 259, 258, 257 };
	guint k;

	(void)d;
	for (i = 0; i < subs->n_values; i++) {
		int t = value_at(subs, i);

		snprintf(offered + strlen(offered),
		    sizeof offered - strlen(offered), "%s%d", i ? "," : "", t);
		if (!pick && !widget_choice && type == 19 &&
		    allowed(O.subtypes, O.nsubtypes, t))
			pick = t;
	}
	for (k = 0; widget_choice && !pick && k < G_N_ELEMENTS(widget); k++)
		for (i = 0; i < subs->n_values; i++)
			if (value_at(subs, i) == widget[k] && type == 19)
				pick = widget[k];
	vlog(1, "server offers subtypes %s of type %u; choosing %d", offered,
	    type, pick);
	if (!pick) {
		give_up(c, "no allowed subtype of type %u among the server's "
		    "(%s)", type, offered);
		return;
	}
	snprintf(G.sec, sizeof G.sec, "%s/%s(%u/%d)", num_name(sec_types,
	    (int)type), num_name(vencrypt_subtypes, pick), type, pick);
	vnc_connection_set_auth_subtype(c, (unsigned)pick);
}

/* Hand gtk-vnc the credential it asked for (WHAT, from option OPT); 0 if
 * the command line has none, and the session is given up. */
static int
credential(VncConnection *c, int cred, const char *what, const char *v,
    const char *opt)
{
	vlog(1, "gtk-vnc asks for the %s", what);
	if (!v) {
		give_up(c, "gtk-vnc asks for a %s: give %s", what, opt);
		return 0;
	}
	vnc_connection_set_credential(c, cred, v);
	return 1;
}

static void
on_credential(VncConnection *c, GValueArray *creds, gpointer d)
{
	guint i;

	(void)d;
	for (i = 0; i < creds->n_values; i++) {
		switch (value_at(creds, i)) {
		case VNC_CONNECTION_CREDENTIAL_USERNAME:
			if (!credential(c, VNC_CONNECTION_CREDENTIAL_USERNAME,
			    "user name", O.user, "-u"))
				return;
			break;
		case VNC_CONNECTION_CREDENTIAL_PASSWORD:
			if (!credential(c, VNC_CONNECTION_CREDENTIAL_PASSWORD,
			    "password", O.pass, "-p"))
				return;
			break;
		case VNC_CONNECTION_CREDENTIAL_CLIENTNAME:
			vlog(1, "gtk-vnc asks for the X509 client name");
			vnc_connection_set_credential(c,
			    VNC_CONNECTION_CREDENTIAL_CLIENTNAME,
			    "vncsasl-test");
			break;
		default:
			give_up(c, "gtk-vnc asks for credential %d",
			    value_at(creds, i));
			return;
		}
	}
}

G_GNUC_END_IGNORE_DEPRECATIONS

static void
on_disconnected(VncConnection *c, gpointer d)
{
	const char *why;

	(void)c;
	(void)d;
	vlog(1, "disconnected");
	if (done)
		finish(EX_OK, NULL);
	if (!connected)
		finish(EX_TIMEOUT, "connect failed: %s",
		    err_msg[0] ? err_msg : "(no reason)");
	if (!initialized) {
		why = client_fail[0] ? client_fail : auth_msg[0] ? auth_msg :
		    err_msg[0] ? err_msg :
		    "server closed the connection before ServerInit";
		if (auth_msg[0] && err_msg[0] && strcmp(auth_msg, err_msg) &&
		    !client_fail[0]) {
			static char both[1100];

			snprintf(both, sizeof both, "%s (%s)", auth_msg, err_msg);
			why = both;
		}
		if (O.expect_fail) {
			printf("ok: gvnc %s:%s refused during authentication as "
			    "expected: %s%s%s\n", O.host, O.port, why,
			    G.sec[0] ? "; sec=" : "", G.sec);
			remove_staged();
			exit(EX_OK);
		}
		finish(EX_AUTH, "authentication failed: %s%s%s", why,
		    G.sec[0] ? "; sec=" : "", G.sec);
	}
	if (fbbuf && last_check_bad && G.verified == 0)
		finish_mismatch("when the connection was lost");
	finish(EX_PROTO, "connection lost (%d frame(s) verified): %s",
	    G.verified, err_msg[0] ? err_msg : "server closed the connection");
}

/* gtk-vnc's debug log: shown with -vv, and it names the SASL mechanism */
static GLogWriterOutput
log_writer(GLogLevelFlags level, const GLogField *fields, gsize n,
    gpointer data)
{
	const char *msg = NULL, *dom = NULL, *p;
	gsize i;

	(void)data;
	for (i = 0; i < n; i++) {
		if (strcmp(fields[i].key, "MESSAGE") == 0)
			msg = fields[i].value;
		else if (strcmp(fields[i].key, "GLIB_DOMAIN") == 0)
			dom = fields[i].value;
	}
	if (!msg)
		return G_LOG_WRITER_HANDLED;
	if ((p = strstr(msg, "negotiation with mech ")) != NULL) {
		snprintf(G.mech, sizeof G.mech, "%s", p + 22);
		G.mech[strcspn(G.mech, ". ")] = '\0';
	}
	if (O.verbose >= 2 || (level & (G_LOG_LEVEL_ERROR |
	    G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)))
		fprintf(stderr, "gvnc: %s: %s\n", dom ? dom : "log", msg);
	return G_LOG_WRITER_HANDLED;
}

static void
send_pointer(int x, int y, int buttons)
{
	vnc_connection_pointer_event(conn, (guint8)buttons, (guint16)x,
	    (guint16)y);
}

static void
send_key(uint32_t keysym, int down)
{
	vnc_connection_key_event(conn, down ? TRUE : FALSE, keysym, 0);
}

static void
send_cut(const char *text, size_t len)
{
	vnc_connection_client_cut_text(conn, text, len);
}

static const struct viewer_lib gvnc_lib = {
	.name = "gvnc", .optstring = "W", .opt = lib_opt,
	.usage_extra = usage_extra, .send_pointer = send_pointer,
	.send_key = send_key, .send_cut = send_cut,
};

static int
connect_unix(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(err_msg, sizeof err_msg, "socket path too long");
		return -1;
	}
	strcpy(sa.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		snprintf(err_msg, sizeof err_msg, "%s: %s", path,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int
main(int argc, char **argv)
{
	GMainLoop *loop;

	viewer_start(&gvnc_lib, argc, argv);
	/* the GLib timeout normally ends it; this is only a backstop */
	arm_backstop(O.timeout + 2);
	stage_cafile();

	g_log_set_writer_func(log_writer, NULL, NULL);
	vnc_util_set_debug(TRUE);	/* to learn the SASL mechanism */

	conn = vnc_connection_new();
	vnc_connection_set_shared(conn, TRUE);
	g_signal_connect(conn, "vnc-connected", G_CALLBACK(on_connected),
	    NULL);
	g_signal_connect(conn, "vnc-initialized", G_CALLBACK(on_initialized),
	    NULL);
	g_signal_connect(conn, "vnc-disconnected",
	    G_CALLBACK(on_disconnected), NULL);
	g_signal_connect(conn, "vnc-error", G_CALLBACK(on_error), NULL);
	g_signal_connect(conn, "vnc-auth-failure",
	    G_CALLBACK(on_auth_failure), NULL);
	g_signal_connect(conn, "vnc-auth-unsupported",
	    G_CALLBACK(on_auth_unsupported), NULL);
	g_signal_connect(conn, "vnc-auth-choose-type",
	    G_CALLBACK(on_choose_type), NULL);
	g_signal_connect(conn, "vnc-auth-choose-subtype",
	    G_CALLBACK(on_choose_subtype), NULL);
	g_signal_connect(conn, "vnc-auth-credential",
	    G_CALLBACK(on_credential), NULL);
	g_signal_connect(conn, "vnc-framebuffer-update",
	    G_CALLBACK(on_update), NULL);
	g_signal_connect(conn, "vnc-desktop-resize", G_CALLBACK(on_resize),
	    NULL);
	g_signal_connect(conn, "vnc-pixel-format-changed",
	    G_CALLBACK(on_pixel_format), NULL);
	g_signal_connect(conn, "vnc-server-cut-text",
	    G_CALLBACK(on_cut_text), NULL);

	if (O.unix_sock) {
		int fd = connect_unix(O.host);

		if (fd < 0)
			finish(EX_TIMEOUT, "connect failed: %s", err_msg);
		vnc_connection_open_fd(conn, fd);
	} else
		vnc_connection_open_host(conn, O.host, O.port);
	vlog(1, "connecting to %s:%s, %d bpp%s, encodings '%s'", O.host,
	    O.port, PF.bpp, PF.big_endian ? " big-endian" : "", O.enc_list);

	g_timeout_add((guint)(O.timeout * 1000), timeout_cb, NULL);
	g_timeout_add(100, tick_cb, NULL);
	loop = g_main_loop_new(NULL, FALSE);
	g_main_loop_run(loop);
	return EX_PROTO;
}
