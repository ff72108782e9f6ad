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
 * Build:
 *   cc -std=gnu99 -Wall -Wextra -O2 -I. -o tests/lvc tests/lvc.c fb-dummy.c \
 *       $(pkg-config --cflags --libs libvncclient)
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
 *     off (appData.enableJPEG = FALSE): the check is lossless.
 *   - HOST may be a UNIX socket path with PORT "unix": libvncclient
 *     connects to it when stat() says it is a socket.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <rfb/rfbclient.h>

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

/* ---- libvncclient specifics ---- */

static const char *lib_optstring = "m:";

static int
lib_specific_opt(int c, const char *arg)
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

/* the picture state */
static uint8_t *cover;			/* received pixels since a resize */
static size_t uncovered;
static int fail_code;			/* set by callbacks: stop with this */
static char fail_msg[512];
static int done;

static rfbBool
malloc_fb(rfbClient *c)
{
	size_t n = (size_t)c->width * c->height;

	malloc_called = 1;
	if (c->width <= 0 || c->height <= 0 || c->width > 32767 ||
	    c->height > 32767) {
		snprintf(fail_msg, sizeof fail_msg, "bad framebuffer size %dx%d",
		    c->width, c->height);
		fail_code = EX_PROTO;
		return FALSE;
	}
	free(c->frameBuffer);
	free(cover);
	c->frameBuffer = calloc(n, c->format.bitsPerPixel / 8);
	cover = calloc(n, 1);
	if (!c->frameBuffer || !cover) {
		snprintf(fail_msg, sizeof fail_msg, "out of memory for %dx%d",
		    c->width, c->height);
		fail_code = EX_PROTO;
		return FALSE;
	}
	uncovered = n;
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
	int i, j;

	vlog(3, "rect %d,%d %dx%d", x, y, w, h);
	if (!uncovered)
		return;
	if (x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > c->width ||
	    y + h > c->height)
		return;
	for (j = y; j < y + h; j++) {
		uint8_t *row = cover + (size_t)j * c->width;

		for (i = x; i < x + w; i++)
			if (!row[i]) {
				row[i] = 1;
				uncovered--;
			}
	}
}

static void
finished_update(rfbClient *c)
{
	if (fail_code || done)
		return;
	if (uncovered) {
		vlog(2, "update done, %zu pixel(s) never received yet",
		    uncovered);
		return;
	}
	G.checked++;
	if (check_frame(c->frameBuffer, (size_t)c->width * (PF.bpp / 8),
	    c->width, c->height, 0, 0, &G.last) < 0) {
		char d[300];

		describe_check(&G.last, d, sizeof d);
		snprintf(fail_msg, sizeof fail_msg, "pixel mismatch after a "
		    "complete update (%d verified before): %s", G.verified, d);
		fail_code = EX_PROTO;
		return;
	}
	if (frame_verified(&G.last.st)) {
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

static void
finish(int code, const char *fmt, ...)
{
	va_list ap;

	if (G.w && conv_xrgb)
		write_ppm(O.ppm, G.w, G.h);
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

	prog = "lvc";
	setvbuf(stdout, NULL, _IOLBF, 0);
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	update_status("connecting");
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
	cl->appData.enableJPEG = FALSE;
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
		if (fail_code)
			finish(fail_code, "%s", fail_msg);
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

		if (fail_code)
			finish(fail_code, "%s", fail_msg);
		if (left <= 0) {
			alarm(0);
			finish(EX_TIMEOUT, "timeout after %gs: %s", O.timeout,
			    status_buf[status_idx]);
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
			if (fail_code)
				finish(fail_code, "%s", fail_msg);
			finish(EX_PROTO, "connection lost or protocol error "
			    "(%d frame(s) verified): %s", G.verified,
			    log_reason());
		}
	}
	alarm(0);
	if (O.cut && G.echo == 2)
		finish(EX_PROTO, "server echoed different cut text (%zu bytes, "
		    "'%s')", G.echo_len, G.echo_head);
	finish(EX_OK, NULL);
	return 0;
}
