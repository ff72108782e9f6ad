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
 * Build:
 *   cc -std=gnu99 -Wall -Wextra -O2 -I. -o tests/gvnc tests/gvnc.c fb-dummy.c \
 *       $(pkg-config --cflags --libs gvnc-1.0)
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
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <gvnc.h>

#include "vncsasl.h"

/* ==== shared by tests/lvc.c and tests/gvnc.c: keep the two copies in sync ==== */

enum { EX_OK = 0, EX_AUTH = 1, EX_USAGE = 2, EX_PROTO = 3, EX_TIMEOUT = 4 };

struct name_num {
	const char *name;
	int num;
};

static const struct name_num sec_types[] = {
	{ "none", 1 }, { "vnc", 2 }, { "vencrypt", 19 }, { "sasl", 20 },
	{ NULL, 0 }
};

static const struct name_num vencrypt_subtypes[] = {
	{ "plain", 256 }, { "tlsnone", 257 }, { "tlsvnc", 258 },
	{ "tlsplain", 259 }, { "x509none", 260 }, { "x509vnc", 261 },
	{ "x509plain", 262 }, { "x509sasl", 263 }, { "tlssasl", 264 },
	{ NULL, 0 }
};

/* encodings both viewers accept by name (-e) */
enum {
	ENC_RAW = 1 << 0, ENC_COPYRECT = 1 << 1, ENC_RRE = 1 << 2,
	ENC_HEXTILE = 1 << 3, ENC_TIGHT = 1 << 4, ENC_ZRLE = 1 << 5,
	ENC_DESKTOPSIZE = 1 << 6, ENC_LASTRECT = 1 << 7, ENC_CURSOR = 1 << 8,
	ENC_EXTDESKTOPSIZE = 1 << 9,
};

static const struct name_num enc_names[] = {
	{ "raw", ENC_RAW }, { "copyrect", ENC_COPYRECT }, { "rre", ENC_RRE },
	{ "hextile", ENC_HEXTILE }, { "tight", ENC_TIGHT },
	{ "zrle", ENC_ZRLE }, { "desktopsize", ENC_DESKTOPSIZE },
	{ "lastrect", ENC_LASTRECT }, { "cursor", ENC_CURSOR },
	{ "extdesktopsize", ENC_EXTDESKTOPSIZE },
	{ NULL, 0 }
};

static const char *
num_name(const struct name_num *t, int num)
{
	for (; t->name; t++)
		if (t->num == num)
			return t->name;
	return "?";
}

struct opts {
	const char *host, *port;
	int unix_sock;
	int types[8], ntypes;		/* allowed security types */
	int subtypes[16], nsubtypes;	/* allowed VeNCrypt subtypes */
	int subtypes_given;
	const char *user, *pass, *mech, *cafile, *ppm;
	int bpp, big_endian;
	const char *enc_list;		/* as given */
	int encs[16], nencs;		/* ENC_* in the order given */
	int frames, still;
	int want_ptr, ptr_x, ptr_y, ptr_btn;
	int want_key;
	uint32_t keysym;
	const char *cut;
	int expect_fail;
	double timeout;
	int verbose;
};

static struct opts O;

/* the pixel format the viewer asks for */
struct pixfmt {
	int bpp, depth, big_endian;
	int rmax, gmax, bmax, rshift, gshift, bshift;
};

static struct pixfmt PF;
/* reference quantisation: 8-bit channel -> channel of PF */
static uint16_t QR[256], QG[256], QB[256];

static void
pixfmt_init(int bpp, int big_endian)
{
	int v;

	memset(&PF, 0, sizeof PF);
	PF.bpp = bpp;
	PF.big_endian = big_endian;
	switch (bpp) {
	case 32:
		PF.depth = 24;
		PF.rmax = PF.gmax = PF.bmax = 255;
		PF.rshift = 16;
		PF.gshift = 8;
		PF.bshift = 0;
		break;
	case 16:		/* RGB565 */
		PF.depth = 16;
		PF.rmax = 31;
		PF.gmax = 63;
		PF.bmax = 31;
		PF.rshift = 11;
		PF.gshift = 5;
		PF.bshift = 0;
		break;
	default:		/* 8: BGR233 */
		PF.depth = 8;
		PF.rmax = 7;
		PF.gmax = 7;
		PF.bmax = 3;
		PF.rshift = 0;
		PF.gshift = 3;
		PF.bshift = 6;
		break;
	}
	for (v = 0; v < 256; v++) {
		QR[v] = (uint16_t)((v * PF.rmax + 127) / 255);
		QG[v] = (uint16_t)((v * PF.gmax + 127) / 255);
		QB[v] = (uint16_t)((v * PF.bmax + 127) / 255);
	}
}

static const char *prog;		/* "lvc" or "gvnc" */
static char who[300];			/* "lvc HOST:PORT", for FAIL lines */

static void
vlog(int level, const char *fmt, ...)
{
	va_list ap;

	if (O.verbose < level)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- the status line a timeout reports ---- */

static char status_buf[2][640];
static volatile sig_atomic_t status_idx;
static volatile sig_atomic_t timeout_code = EX_TIMEOUT;

static void
set_status(const char *fmt, ...)
{
	int next = !status_idx;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(status_buf[next], sizeof status_buf[next], fmt, ap);
	va_end(ap);
	status_idx = next;
}

static char tmp_paths[3][4096];		/* removed by the alarm handler too */

static void
remove_tmp_paths(void)
{
	if (tmp_paths[0][0])
		unlink(tmp_paths[0]);
	if (tmp_paths[1][0])
		rmdir(tmp_paths[1]);
	if (tmp_paths[2][0])
		rmdir(tmp_paths[2]);
}

static void
write_str(const char *s)
{
	ssize_t r = write(1, s, strlen(s));

	(void)r;
}

/* Backstop for phases the viewer's own loop cannot bound. */
static void
on_alarm(int sig)
{
	(void)sig;
	write_str("FAIL: ");
	write_str(who[0] ? who : prog);
	write_str(": timeout (-t expired while the library was blocked): ");
	write_str(status_buf[status_idx]);
	write_str("\n");
	remove_tmp_paths();
	_exit(timeout_code);
}

static void
arm_backstop(double secs)
{
	struct itimerval it;

	memset(&it, 0, sizeof it);
	it.it_value.tv_sec = (time_t)secs;
	it.it_value.tv_usec = (suseconds_t)((secs - (double)(time_t)secs) * 1e6);
	if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0)
		it.it_value.tv_usec = 1;
	signal(SIGALRM, on_alarm);
	setitimer(ITIMER_REAL, &it, NULL);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- option parsing ---- */

static void usage_extra(void);

static void
usage(const char *why, ...)
{
	va_list ap;

	fprintf(stderr,
"usage: %s [options] HOST PORT     (PORT \"unix\": HOST is a UNIX socket path)\n"
"  -a TYPES   security types to accept: none,vnc,sasl,vencrypt (default all)\n"
"  -S SUBS    VeNCrypt subtypes to accept: x509sasl,tlssasl,x509plain,tlsplain,\n"
"             x509none,tlsnone,x509vnc,tlsvnc,plain (names or numbers)\n"
"  -u USER    user name (SASL, VeNCrypt Plain)\n"
"  -p PASS    password (VNC auth, SASL, Plain)\n"
"  -C CAFILE  CA certificate (PEM) for the X509 subtypes\n"
"  -b BPP     pixel format to ask for: 32 (default), 16 (RGB565), 8 (BGR233)\n"
"  -B         big-endian pixels\n"
"  -e ENCS    encodings: raw (default),copyrect,rre,hextile,tight,zrle,\n"
"             desktopsize,lastrect,cursor,extdesktopsize\n"
"  -f N       verified frames to receive (default 1); N>1 also wants motion\n"
"  -F0        the server shows a still picture: do not require motion\n"
"  -P X,Y,BTN send a pointer event, wait until the picture shows it\n"
"  -K KEYSYM  send key down+up (0x.. hex or decimal), wait until shown\n"
"  -X TEXT    send ClientCutText, wait until shown (and echoed)\n"
"  -E         expect the connection to be refused during authentication\n"
"  -t SECS    overall timeout (default 20)\n"
"  -w FILE    write the last received frame as a PPM (P6)\n"
"  -v         verbose (twice: library debug output too)\n"
"exit: 0 ok, 1 authentication failed/refused, 2 usage, 3 pixel mismatch or\n"
"protocol error, 4 timeout or connect failure\n", prog);
	usage_extra();
	va_start(ap, why);
	printf("FAIL: %s: usage: ", prog);
	vprintf(why, ap);
	printf("\n");
	va_end(ap);
	exit(EX_USAGE);
}

/* comma list of names (or numbers) from table t into out[]; -1 on error */
static int
parse_names(const char *s, const struct name_num *t, int numeric_ok,
    int *out, int max)
{
	char buf[256], *tok, *save = NULL;
	int n = 0;

	if (strlen(s) >= sizeof buf)
		return -1;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok;
	    tok = strtok_r(NULL, ",", &save)) {
		const struct name_num *e;
		int v = -1;

		for (e = t; e->name; e++)
			if (strcasecmp(e->name, tok) == 0)
				v = e->num;
		if (v < 0 && numeric_ok) {
			char *end;
			long l = strtol(tok, &end, 10);

			if (*end == '\0' && end != tok)
				for (e = t; e->name; e++)
					if (e->num == l)
						v = e->num;
		}
		if (v < 0 || n >= max)
			return -1;
		out[n++] = v;
	}
	return n;
}

static int
parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (*s == '\0' || *s == '-')
		return -1;
	errno = 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		v = strtoul(s + 2, &end, 16);
	else
		v = strtoul(s, &end, 10);
	if (errno || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

static int lib_specific_opt(int c, const char *arg);
static const char *lib_optstring;

static void
parse_args(int argc, char **argv)
{
	char optstring[64];
	int c, i;

	O.bpp = 32;
	O.frames = 1;
	O.timeout = 20;
	O.enc_list = "raw";
	for (i = 0; sec_types[i].name; i++)
		O.types[O.ntypes++] = sec_types[i].num;
	for (i = 0; vencrypt_subtypes[i].name; i++)
		O.subtypes[O.nsubtypes++] = vencrypt_subtypes[i].num;
	snprintf(optstring, sizeof optstring,
	    "a:S:u:p:C:b:Be:f:F:P:K:X:Et:w:vh%s", lib_optstring);
	while ((c = getopt(argc, argv, optstring)) != -1) {
		unsigned long v;
		char *end;

		switch (c) {
		case 'a':
			O.ntypes = parse_names(optarg, sec_types, 1, O.types, 8);
			if (O.ntypes <= 0)
				usage("bad -a '%s'", optarg);
			break;
		case 'S':
			O.nsubtypes = parse_names(optarg, vencrypt_subtypes, 1,
			    O.subtypes, 16);
			if (O.nsubtypes <= 0)
				usage("bad -S '%s'", optarg);
			O.subtypes_given = 1;
			break;
		case 'u':
			O.user = optarg;
			break;
		case 'p':
			O.pass = optarg;
			break;
		case 'C':
			O.cafile = optarg;
			if (access(optarg, R_OK) != 0)
				usage("-C %s: %s", optarg, strerror(errno));
			break;
		case 'b':
			if (strcmp(optarg, "32") && strcmp(optarg, "16") &&
			    strcmp(optarg, "8"))
				usage("-b wants 32, 16 or 8");
			O.bpp = atoi(optarg);
			break;
		case 'B':
			O.big_endian = 1;
			break;
		case 'e':
			O.enc_list = optarg;
			break;
		case 'f':
			if (parse_uint(optarg, 1000000, &v) < 0 || v < 1)
				usage("bad -f '%s'", optarg);
			O.frames = (int)v;
			break;
		case 'F':
			if (strcmp(optarg, "0") != 0)
				usage("only -F0 is known");
			O.still = 1;
			break;
		case 'P':
			if (sscanf(optarg, "%d,%d,%d", &O.ptr_x, &O.ptr_y,
			    &O.ptr_btn) != 3 || O.ptr_x < 0 || O.ptr_x > 65535 ||
			    O.ptr_y < 0 || O.ptr_y > 65535 || O.ptr_btn < 0 ||
			    O.ptr_btn > 255)
				usage("bad -P '%s': want X,Y,BUTTONS", optarg);
			O.want_ptr = 1;
			break;
		case 'K':
			if (parse_uint(optarg, 0xffffffffUL, &v) < 0)
				usage("bad -K '%s'", optarg);
			O.keysym = (uint32_t)v;
			O.want_key = 1;
			break;
		case 'X':
			O.cut = optarg;
			break;
		case 'E':
			O.expect_fail = 1;
			break;
		case 't':
			O.timeout = strtod(optarg, &end);
			if (*end != '\0' || !(O.timeout > 0) || O.timeout > 1e6)
				usage("bad -t '%s'", optarg);
			break;
		case 'w':
			O.ppm = optarg;
			break;
		case 'v':
			O.verbose++;
			break;
		case 'h':
			usage("help");
			break;
		default:
			if (lib_specific_opt(c, optarg) < 0)
				usage("unknown option");
			break;
		}
	}
	if (argc - optind != 2)
		usage("want HOST PORT");
	O.host = argv[optind];
	O.port = argv[optind + 1];
	if (strcmp(O.port, "unix") == 0)
		O.unix_sock = 1;
	else if (parse_uint(O.port, 65535, &(unsigned long){ 0 }) < 0)
		usage("bad port '%s'", O.port);
	snprintf(who, sizeof who, "%s %s:%s", prog, O.host, O.port);
	O.nencs = parse_names(O.enc_list, enc_names, 0, O.encs, 16);
	if (O.nencs <= 0)
		usage("bad -e '%s'", O.enc_list);
	pixfmt_init(O.bpp, O.big_endian);
}

static int
allowed(const int *list, int n, int v)
{
	int i;

	for (i = 0; i < n; i++)
		if (list[i] == v)
			return 1;
	return 0;
}

static int __attribute__((unused))
has_enc(int e)
{
	return allowed(O.encs, O.nencs, e);
}

/* ---- checking a received picture ---- */

static uint32_t *conv_raw;		/* raw pixel values, w*h */
static uint32_t *conv_xrgb;		/* the same, widened to XRGB */
static size_t conv_cap;

/* Read pixel (x,y) of a buffer in format PF; `native`: the buffer holds
 * host-order pixels (gtk-vnc), else the wire byte order (libvncclient). */
static inline uint32_t
raw_pixel(const uint8_t *row, int x, int native)
{
	const uint8_t *p;
	uint32_t v;

	switch (PF.bpp) {
	case 32:
		p = row + (size_t)x * 4;
		if (native) {
			memcpy(&v, p, 4);
			return v;
		}
		if (PF.big_endian)
			return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
			    (uint32_t)p[2] << 8 | p[3];
		return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
		    (uint32_t)p[1] << 8 | p[0];
	case 16:
		p = row + (size_t)x * 2;
		if (native) {
			uint16_t s;

			memcpy(&s, p, 2);
			return s;
		}
		if (PF.big_endian)
			return (uint32_t)p[0] << 8 | p[1];
		return (uint32_t)p[1] << 8 | p[0];
	default:
		return row[x];
	}
}

static inline uint32_t
widen(uint32_t raw)
{
	uint32_t r = raw >> PF.rshift & PF.rmax, g = raw >> PF.gshift & PF.gmax,
	    b = raw >> PF.bshift & PF.bmax;

	r = (r * 255 + PF.rmax / 2) / PF.rmax;
	g = (g * 255 + PF.gmax / 2) / PF.gmax;
	b = (b * 255 + PF.bmax / 2) / PF.bmax;
	return r << 16 | g << 8 | b;
}

struct check {
	int garbled;			/* status strip unreadable */
	long mismatches;		/* pixels (a lower bound if stopped early) */
	int x, y;			/* first mismatch */
	unsigned got[3], want[3];
	struct dummy_state st;		/* decoded state */
};

/* 0: the picture is exactly what fb-dummy draws for its own status strip */
static int
check_frame(const uint8_t *buf, size_t stride, int w, int h, int native,
    int stop_first, struct check *ck)
{
	size_t n = (size_t)w * h;
	int x, y;

	memset(ck, 0, sizeof *ck);
	if (n > conv_cap) {
		free(conv_raw);
		free(conv_xrgb);
		conv_raw = malloc(n * sizeof *conv_raw);
		conv_xrgb = malloc(n * sizeof *conv_xrgb);
		if (!conv_raw || !conv_xrgb) {
			fprintf(stderr, "%s: out of memory\n", prog);
			exit(EX_PROTO);
		}
		conv_cap = n;
	}
	for (y = 0; y < h; y++) {
		const uint8_t *row = buf + (size_t)y * stride;
		uint32_t *r = conv_raw + (size_t)y * w;
		uint32_t *o = conv_xrgb + (size_t)y * w;

		for (x = 0; x < w; x++) {
			r[x] = raw_pixel(row, x, native);
			o[x] = widen(r[x]);
		}
	}
	if (dummy_decode(conv_xrgb, w, w, h, &ck->st) < 0) {
		ck->garbled = 1;
		return -1;
	}
	for (y = 0; y < h; y++) {
		const uint32_t *r = conv_raw + (size_t)y * w;

		for (x = 0; x < w; x++) {
			uint32_t ref = dummy_pixel(w, h, &ck->st, x, y);
			unsigned wr = QR[ref >> 16 & 0xff], wg = QG[ref >> 8 & 0xff],
			    wb = QB[ref & 0xff];
			unsigned gr = r[x] >> PF.rshift & PF.rmax,
			    gg = r[x] >> PF.gshift & PF.gmax,
			    gb = r[x] >> PF.bshift & PF.bmax;

			if (gr == wr && gg == wg && gb == wb)
				continue;
			if (ck->mismatches++ == 0) {
				ck->x = x;
				ck->y = y;
				ck->got[0] = gr;
				ck->got[1] = gg;
				ck->got[2] = gb;
				ck->want[0] = wr;
				ck->want[1] = wg;
				ck->want[2] = wb;
				if (stop_first)
					return -1;
			}
		}
	}
	return ck->mismatches ? -1 : 0;
}

static void
describe_check(const struct check *ck, char *out, size_t len)
{
	if (ck->garbled)
		snprintf(out, len, "status strip garbled (not a dummy picture?)");
	else
		snprintf(out, len, "frame #%u: %ld pixel(s) differ, first at "
		    "(%d,%d): got r/g/b %u/%u/%u want %u/%u/%u (max %d/%d/%d)",
		    ck->st.frame, ck->mismatches, ck->x, ck->y, ck->got[0],
		    ck->got[1], ck->got[2], ck->want[0], ck->want[1],
		    ck->want[2], PF.rmax, PF.gmax, PF.bmax);
}

/* last received picture as XRGB (valid after check_frame) -> PPM */
static void
write_ppm(const char *path, int w, int h)
{
	FILE *f;
	size_t i, n = (size_t)w * h;

	if (!path || !conv_xrgb || n > conv_cap || n == 0)
		return;
	if ((f = fopen(path, "wb")) == NULL) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return;
	}
	fprintf(f, "P6\n%d %d\n255\n", w, h);
	for (i = 0; i < n; i++) {
		uint8_t rgb[3] = { conv_xrgb[i] >> 16 & 0xff,
		    conv_xrgb[i] >> 8 & 0xff, conv_xrgb[i] & 0xff };

		fwrite(rgb, 1, 3, f);
	}
	if (fclose(f) != 0)
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
	else
		vlog(1, "wrote %s", path);
}

/* ---- what the test waits for ---- */

static struct {
	int w, h;
	int verified;			/* complete verified frames */
	uint32_t first_no, last_no;
	int motion;
	int actions_sent;
	uint16_t nkeys_base;
	int ptr_ok, key_ok, cut_ok;
	int echo;			/* 0 none yet, 1 same text, 2 other text */
	size_t echo_len;
	char echo_head[40];
	double cut_ok_at;
	struct check last;		/* last check */
	int checked;			/* pictures checked */
	char sec[96];			/* security type chosen */
	char mech[64];			/* SASL mechanism */
} G;

/* the viewer-specific senders */
static void send_pointer(int x, int y, int buttons);
static void send_key(uint32_t keysym, int down);
static void send_cut(const char *text, size_t len);

static void
update_status(const char *phase)
{
	char what[160] = "";

	if (G.verified < O.frames)
		snprintf(what + strlen(what), sizeof what - strlen(what),
		    " %d more frame(s)", O.frames - G.verified);
	if (O.frames > 1 && !O.still && !G.motion)
		strncat(what, " motion", sizeof what - strlen(what) - 1);
	if (O.want_ptr && !G.ptr_ok)
		strncat(what, " pointer", sizeof what - strlen(what) - 1);
	if (O.want_key && !G.key_ok)
		strncat(what, " key", sizeof what - strlen(what) - 1);
	if (O.cut && !G.cut_ok)
		strncat(what, " cut-text", sizeof what - strlen(what) - 1);
	if (G.checked && G.verified == 0) {
		char d[300];

		describe_check(&G.last, d, sizeof d);
		set_status("%s; %dx%d; %d picture(s) checked, none matched; "
		    "last: %s", phase, G.w, G.h, G.checked, d);
	} else
		set_status("%s; %dx%d; %d frame(s) verified (#%u..#%u); "
		    "still waiting for:%s; sec=%s%s%s", phase, G.w, G.h,
		    G.verified, G.first_no, G.last_no, what[0] ? what : " -",
		    G.sec[0] ? G.sec : "?", G.mech[0] ? " mech=" : "", G.mech);
}

/* A picture matched: account for it.  Returns 1 when everything is done. */
static int
frame_verified(const struct dummy_state *st)
{
	if (G.verified == 0) {
		G.first_no = st->frame;
		G.nkeys_base = st->nkeys;
	} else if (st->frame != G.last_no)
		G.motion = 1;
	G.last_no = st->frame;
	G.verified++;
	vlog(1, "verified frame %d: #%u ptr %u,%u btn %u key 0x%x nkeys %u "
	    "ncut %u", G.verified, st->frame, st->ptr_x, st->ptr_y,
	    st->buttons, st->key, st->nkeys, st->ncut);
	if (!G.actions_sent) {
		G.actions_sent = 1;
		if (O.want_ptr) {
			vlog(1, "sending pointer %d,%d buttons %d", O.ptr_x,
			    O.ptr_y, O.ptr_btn);
			send_pointer(O.ptr_x, O.ptr_y, O.ptr_btn);
		}
		if (O.want_key) {
			vlog(1, "sending key 0x%x down+up", O.keysym);
			send_key(O.keysym, 1);
			send_key(O.keysym, 0);
		}
		if (O.cut) {
			vlog(1, "sending cut text (%zu bytes)", strlen(O.cut));
			send_cut(O.cut, strlen(O.cut));
		}
	} else {
		/* reactions count only on pictures after the first */
		if (O.want_ptr && st->ptr_x == O.ptr_x && st->ptr_y == O.ptr_y &&
		    st->buttons == O.ptr_btn)
			G.ptr_ok = 1;
		if (O.want_key && st->key == O.keysym &&
		    (uint16_t)(st->nkeys - G.nkeys_base) != 0)
			G.key_ok = 1;
		if (O.cut && !G.cut_ok &&
		    st->ncut == (uint16_t)strlen(O.cut)) {
			G.cut_ok = 1;
			G.cut_ok_at = now_s();
		}
	}
	update_status("receiving");
	if (G.verified < O.frames)
		return 0;
	if (O.frames > 1 && !O.still && !G.motion)
		return 0;
	if ((O.want_ptr && !G.ptr_ok) || (O.want_key && !G.key_ok) ||
	    (O.cut && !G.cut_ok))
		return 0;
	return 1;
}

/* the echo of our cut text is a bonus: wait for it at most this long */
#define ECHO_GRACE 1.0

static int
echo_pending(void)
{
	return O.cut && G.cut_ok && G.echo == 0 &&
	    now_s() - G.cut_ok_at < ECHO_GRACE;
}

static void
got_server_cut(const char *text, size_t len)
{
	vlog(1, "ServerCutText, %zu bytes", len);
	G.echo_len = len;
	snprintf(G.echo_head, sizeof G.echo_head, "%.*s",
	    (int)(len < 32 ? len : 32), text);
	if (O.cut && len == strlen(O.cut) && memcmp(text, O.cut, len) == 0)
		G.echo = 1;
	else if (O.cut && G.actions_sent && G.echo != 1)
		G.echo = 2;
}

/* the key facts of a success */
static void
print_ok(void)
{
	char extra[512] = "";
	size_t l;

	if (O.want_ptr)
		snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
		    " ptr=%d,%d,%d", O.ptr_x, O.ptr_y, O.ptr_btn);
	if (O.want_key)
		snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
		    " key=0x%x", O.keysym);
	if (O.cut) {
		l = strlen(extra);
		snprintf(extra + l, sizeof extra - l, " cut=%zu echo=%s",
		    strlen(O.cut), G.echo == 1 ? "yes" :
		    G.echo == 2 ? "different" : "none");
	}
	printf("ok: %s %s:%s %dx%d bpp=%d%s enc=%s frames=%d (#%u..#%u%s) "
	    "sec=%s%s%s%s\n", prog, O.host, O.port, G.w, G.h, PF.bpp,
	    PF.big_endian ? "be" : "", O.enc_list, G.verified, G.first_no,
	    G.last_no, O.frames > 1 ? (G.motion ? ", moving" : ", still") : "",
	    G.sec[0] ? G.sec : "?", G.mech[0] ? " mech=" : "", G.mech, extra);
}

/* ==== end of the shared part ==== */

/* ---- gtk-vnc specifics ---- */

static const char *lib_optstring = "";

static int
lib_specific_opt(int c, const char *arg)
{
	(void)c;
	(void)arg;
	return -1;
}

static void
usage_extra(void)
{
	fprintf(stderr,
"gvnc: Cyrus SASL picks the mechanism (there is no -m).  -C CAFILE is staged\n"
"as <tmpdir>/.pki/CA/cacert.pem for gtk-vnc; without -C, $HOME/.pki/CA/\n"
"cacert.pem is used if it exists, else GnuTLS's system trust.\n");
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

static void
finish(int code, const char *fmt, ...)
{
	va_list ap;

	if (fbbuf && G.w) {
		/* the PPM shows the buffer as it is now */
		struct check ck;

		check_frame(fbbuf, fbstride, fbw, fbh, 1, 1, &ck);
		write_ppm(O.ppm, fbw, fbh);
	}
	if (code == EX_OK && !fmt)
		print_ok();
	else {
		printf("FAIL: %s: ", who);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
	}
	fflush(stdout);
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
}

static gboolean
check_cb(gpointer data)
{
	int ok;

	(void)data;
	check_id = 0;
	if (done || !dirty || !fbbuf)
		return FALSE;
	dirty = 0;
	G.checked++;
	ok = check_frame(fbbuf, fbstride, fbw, fbh, 1, 1, &G.last) == 0;
	if (ok) {
		last_check_bad = 0;
		if (frame_verified(&G.last.st)) {
			done = 1;
			if (!echo_pending())
				finish(EX_OK, NULL);
			return FALSE;
		}
	} else {
		if (!last_check_bad)
			vlog(2, "picture does not match (yet)");
		last_check_bad = 1;
		update_status("receiving");
	}
	/* a still picture sends nothing more by itself: ask for all again */
	request_update(!(ok && O.still && G.verified < O.frames));
	return FALSE;
}

static void
on_update(VncConnection *c, int x, int y, int w, int h, gpointer d)
{
	(void)c;
	(void)d;
	vlog(3, "rect %d,%d %dx%d", x, y, w, h);
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
	    status_buf[status_idx]);
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

static void
on_initialized(VncConnection *c, gpointer d)
{
	gint32 encs[24];
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
	for (i = 0; i < O.nencs; i++) {
		switch (O.encs[i]) {
		case ENC_RAW:
			encs[n++] = VNC_CONNECTION_ENCODING_RAW;
			break;
		case ENC_COPYRECT:
			encs[n++] = VNC_CONNECTION_ENCODING_COPY_RECT;
			break;
		case ENC_RRE:
			encs[n++] = VNC_CONNECTION_ENCODING_RRE;
			break;
		case ENC_HEXTILE:
			encs[n++] = VNC_CONNECTION_ENCODING_HEXTILE;
			break;
		case ENC_TIGHT:
			encs[n++] = VNC_CONNECTION_ENCODING_TIGHT;
			break;
		case ENC_ZRLE:
			encs[n++] = VNC_CONNECTION_ENCODING_ZRLE;
			break;
		case ENC_DESKTOPSIZE:
			encs[n++] = VNC_CONNECTION_ENCODING_DESKTOP_RESIZE;
			break;
		case ENC_LASTRECT:
			encs[n++] = VNC_CONNECTION_ENCODING_LAST_RECT;
			break;
		case ENC_CURSOR:
			encs[n++] = VNC_CONNECTION_ENCODING_RICH_CURSOR;
			encs[n++] = VNC_CONNECTION_ENCODING_XCURSOR;
			break;
		case ENC_EXTDESKTOPSIZE:
			encs[n++] = VNC_CONNECTION_ENCODING_EXTENDED_DESKTOP_RESIZE;
			break;
		}
	}
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

	(void)d;
	for (i = 0; i < subs->n_values; i++) {
		int t = value_at(subs, i);

		snprintf(offered + strlen(offered),
		    sizeof offered - strlen(offered), "%s%d", i ? "," : "", t);
		if (!pick && type == 19 && allowed(O.subtypes, O.nsubtypes, t))
			pick = t;
	}
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

static void
on_credential(VncConnection *c, GValueArray *creds, gpointer d)
{
	guint i;

	(void)d;
	for (i = 0; i < creds->n_values; i++) {
		switch (value_at(creds, i)) {
		case VNC_CONNECTION_CREDENTIAL_USERNAME:
			vlog(1, "gtk-vnc asks for the user name");
			if (!O.user) {
				give_up(c, "gtk-vnc asks for a user name: "
				    "give -u");
				return;
			}
			vnc_connection_set_credential(c,
			    VNC_CONNECTION_CREDENTIAL_USERNAME, O.user);
			break;
		case VNC_CONNECTION_CREDENTIAL_PASSWORD:
			vlog(1, "gtk-vnc asks for the password");
			if (!O.pass) {
				give_up(c, "gtk-vnc asks for a password: "
				    "give -p");
				return;
			}
			vnc_connection_set_credential(c,
			    VNC_CONNECTION_CREDENTIAL_PASSWORD, O.pass);
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

	prog = "gvnc";
	setvbuf(stdout, NULL, _IOLBF, 0);
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	update_status("connecting");
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
