/*
 * viewer.c - the part of the test viewers that does not depend on their
 * VNC library; see viewer.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "viewer.h"

/* -N: how long the picture must not show the input sent */
#define NOGO_WINDOW 2.0
/* the echo of our cut text is a bonus: wait for it at most this long */
#define ECHO_GRACE 1.0

const struct name_num sec_types[] = {
	{ "none", 1 }, { "vnc", 2 }, { "vencrypt", 19 }, { "sasl", 20 },
	{ NULL, 0 }
};

const struct name_num vencrypt_subtypes[] = {
	{ "plain", 256 }, { "tlsnone", 257 }, { "tlsvnc", 258 },
	{ "tlsplain", 259 }, { "x509none", 260 }, { "x509vnc", 261 },
	{ "x509plain", 262 }, { "x509sasl", 263 }, { "tlssasl", 264 },
	{ NULL, 0 }
};

const struct name_num enc_names[] = {
	{ "raw", ENC_RAW }, { "copyrect", ENC_COPYRECT }, { "rre", ENC_RRE },
	{ "hextile", ENC_HEXTILE }, { "tight", ENC_TIGHT },
	{ "zrle", ENC_ZRLE }, { "desktopsize", ENC_DESKTOPSIZE },
	{ "lastrect", ENC_LASTRECT }, { "cursor", ENC_CURSOR },
	{ "extdesktopsize", ENC_EXTDESKTOPSIZE },
	{ NULL, 0 }
};

const char *
num_name(const struct name_num *t, int num)
{
	for (; t->name; t++)
		if (t->num == num)
			return t->name;
	return "?";
}

struct opts O;
struct pixfmt PF;
struct progress G;
const char *prog = "viewer";
char who[300];
char tmp_paths[3][4096];

static const struct viewer_lib *lib;
/* reference quantisation: 8-bit channel -> channel of PF */
static uint16_t QR[256], QG[256], QB[256];

void
pixfmt_set(const struct pixfmt *f)
{
	int v;

	PF = *f;
	for (v = 0; v < 256; v++) {
		QR[v] = (uint16_t)((v * PF.rmax + 127) / 255);
		QG[v] = (uint16_t)((v * PF.gmax + 127) / 255);
		QB[v] = (uint16_t)((v * PF.bmax + 127) / 255);
	}
}

void
pixfmt_init(int bpp, int big_endian)
{
	/* bpp, depth, big_endian, rmax, gmax, bmax, rshift, gshift, bshift */
	static const struct pixfmt std[] = {
		{ 32, 24, 0, 255, 255, 255, 16, 8, 0 },
		{ 16, 16, 0, 31, 63, 31, 11, 5, 0 },	/* RGB565 */
		{ 8, 8, 0, 7, 7, 3, 0, 3, 6 },		/* BGR233 */
	};
	struct pixfmt f = std[bpp == 32 ? 0 : bpp == 16 ? 1 : 2];

	f.big_endian = big_endian;
	pixfmt_set(&f);
}

void
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

static void __attribute__((format(printf, 1, 2)))
set_status(const char *fmt, ...)
{
	int next = !status_idx;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(status_buf[next], sizeof status_buf[next], fmt, ap);
	va_end(ap);
	status_idx = next;
}

const char *
status_now(void)
{
	return status_buf[status_idx];
}

void
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

void
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

double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- option parsing ---- */

void
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
"  -b BPP     pixel format to ask for: 32 (default), 32r (red in the low\n"
"             byte), 16 (RGB565), 8 (BGR233)\n"
"  -B         big-endian pixels\n"
"  -e ENCS    encodings: raw (default),copyrect,rre,hextile,tight,zrle,\n"
"             desktopsize,lastrect,cursor,extdesktopsize\n"
"  -f N       verified frames to receive (default 1); N>1 also wants motion\n"
"  -F0        the server shows a still picture: do not require motion\n"
"  -P X,Y,BTN send a pointer event, wait until the picture shows it (several\n"
"             -P: sent in order, the last one checked)\n"
"  -K KEYSYM  send key down+up (0x.. hex or decimal), wait until shown\n"
"  -X TEXT    send ClientCutText, wait until shown (and echoed)\n"
"  -T TEXT    type TEXT as a US keyboard does: key down+up for each\n"
"             character, Shift_L around those that need Shift (-R only)\n"
"  -D KEYSYM  press a key and hold it until the end (-R only; repeatable)\n"
"  -M FILE    -R: wait until a complete picture equals this PPM (P6); with\n"
"             several -M, each in turn; a file that is not there yet is\n"
"             waited for; prints \"match N FILE\" as each one matches\n"
"  -d SECS    -R: after the first complete picture, receive for SECS and\n"
"             report the complete updates counted (updates=N rate=N/s)\n"
"  -N         the input of -P/-K/-X must not arrive (view-only): after sending\n"
"             it, verify frames for 2s; fail (3) if one shows it, or if the\n"
"             cut text is echoed\n"
"  -R         raw: any picture (not the dummy source), nothing decoded or\n"
"             checked; a frame is any complete update once the whole screen\n"
"             came (-f counts them, no motion wanted); -P/-K/-X are sent but\n"
"             not checked; the ok line ends with cut=TEXT (the last\n"
"             ServerCutText, escaped: \\\\ \\n \\t \\r \\xHH, space is \\x20)\n"
"  -q Q       ask for Tight JPEG at quality level Q (0-9)\n"
"  -c L       ask for CompressLevel L (0-9)\n"
"  -J M,X     lossy pictures pass: mean error per channel <= M and none over X\n"
"             (0-255 scale); the ok line counts lossy and exact ones\n"
"  -L         the last picture must be exact (a lossless refresh)\n"
"  -E         expect the connection to be refused during authentication\n"
"  -t SECS    overall timeout (default 20)\n"
"  -w FILE    write the last received frame as a PPM (P6)\n"
"  -v         verbose (twice: library debug output too)\n"
"exit: 0 ok, 1 authentication failed/refused, 2 usage, 3 pixel mismatch or\n"
"protocol error, 4 timeout or connect failure\n", prog);
	if (lib && lib->usage_extra)
		lib->usage_extra();
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

static void
parse_args(int argc, char **argv)
{
	char optstring[96];
	int c, i;

	O.bpp = 32;
	O.frames = 1;
	O.timeout = 20;
	O.enc_list = "raw";
	O.quality = O.compress = -1;
	for (i = 0; sec_types[i].name; i++)
		O.types[O.ntypes++] = sec_types[i].num;
	for (i = 0; vencrypt_subtypes[i].name; i++)
		O.subtypes[O.nsubtypes++] = vencrypt_subtypes[i].num;
	snprintf(optstring, sizeof optstring,
	    "a:S:u:p:C:b:Be:f:F:P:K:X:NREt:w:vhT:D:M:d:q:c:J:L%s",
	    lib->optstring);
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
			if (strcmp(optarg, "32") && strcmp(optarg, "32r") &&
			    strcmp(optarg, "16") && strcmp(optarg, "8"))
				usage("-b wants 32, 32r, 16 or 8");
			O.bpp = atoi(optarg);
			O.red_low = optarg[2] == 'r';
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
			if (O.nptrs == 16)
				usage("at most 16 -P");
			O.ptrs[O.nptrs][0] = O.ptr_x;
			O.ptrs[O.nptrs][1] = O.ptr_y;
			O.ptrs[O.nptrs++][2] = O.ptr_btn;
			O.want_ptr = 1;
			break;
		case 'T':
			O.text = optarg;
			break;
		case 'D':
			if (parse_uint(optarg, 0xffffffffUL, &v) < 0 ||
			    O.nhold == 8)
				usage("bad -D '%s' (at most 8)", optarg);
			O.hold[O.nhold++] = (uint32_t)v;
			break;
		case 'M':
			if (O.nmatch == 8)
				usage("at most 8 -M");
			O.match[O.nmatch++] = optarg;
			break;
		case 'd':
			O.duration = strtod(optarg, &end);
			if (*end != '\0' || !(O.duration > 0) || O.duration > 1e5)
				usage("bad -d '%s'", optarg);
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
		case 'N':
			O.nogo = 1;
			break;
		case 'R':
			O.raw = 1;
			break;
		case 'q':
		case 'c':
			if (parse_uint(optarg, 9, &v) < 0)
				usage("bad -%c '%s': want 0-9", c, optarg);
			*(c == 'q' ? &O.quality : &O.compress) = (int)v;
			break;
		case 'J':
			if (sscanf(optarg, "%lf,%d", &O.tol_mean, &O.tol_max) != 2 ||
			    !(O.tol_mean >= 0) || O.tol_max < 1 || O.tol_max > 255)
				usage("bad -J '%s': want MEAN,MAX", optarg);
			break;
		case 'L':
			O.exact_end = 1;
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
			if (lib->opt(c, optarg) < 0)
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
	if (O.nogo && O.raw)
		usage("-N checks the dummy picture: not with -R");
	if ((O.text || O.nhold || O.nmatch || O.duration > 0) && !O.raw)
		usage("-T, -D, -M and -d are for -R");
	if (O.nogo && !O.want_ptr && !O.want_key && !O.cut)
		usage("-N wants the input to send: -P, -K or -X");
	pixfmt_init(O.bpp, O.big_endian);
	if (O.red_low) {	/* what rfbGetClient(8, 3, 4) asks for */
		struct pixfmt f = PF;

		f.rshift = 0;
		f.bshift = 16;
		pixfmt_set(&f);
	}
}

void
viewer_start(const struct viewer_lib *l, int argc, char **argv)
{
	lib = l;
	prog = l->name;
	setvbuf(stdout, NULL, _IOLBF, 0);
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	update_status("connecting");
}

int
allowed(const int *list, int n, int v)
{
	int i;

	for (i = 0; i < n; i++)
		if (list[i] == v)
			return 1;
	return 0;
}

int
has_enc(int e)
{
	return allowed(O.encs, O.nencs, e);
}

/* ---- received pictures ---- */

static uint32_t *conv_raw;		/* raw pixel values, w*h */
static uint32_t *conv_xrgb;		/* the same, widened to XRGB */
static size_t conv_cap;
static int conv_w, conv_h;		/* what they hold */
/* -M: the reference being waited for, loaded once it is there */
static uint32_t *ref_px;
static int ref_w, ref_h, ref_for = -1;

/* Read pixel x of a row in format PF; `native`: host-order pixels. */
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

uint32_t
widen_rgb(unsigned r, unsigned g, unsigned b)
{
	r = (r * 255 + (unsigned)PF.rmax / 2) / (unsigned)PF.rmax;
	g = (g * 255 + (unsigned)PF.gmax / 2) / (unsigned)PF.gmax;
	b = (b * 255 + (unsigned)PF.bmax / 2) / (unsigned)PF.bmax;
	return (uint32_t)r << 16 | (uint32_t)g << 8 | b;
}

static inline uint32_t
widen(uint32_t raw)
{
	return widen_rgb(raw >> PF.rshift & PF.rmax, raw >> PF.gshift & PF.gmax,
	    raw >> PF.bshift & PF.bmax);
}

void
convert_frame(const uint8_t *buf, size_t stride, int w, int h, int native)
{
	size_t n = (size_t)w * h;
	int x, y;

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
	conv_w = w;
	conv_h = h;
}

int
check_frame(const uint8_t *buf, size_t stride, int w, int h, int native,
    int stop_first, struct check *ck)
{
	const unsigned max[3] = { (unsigned)PF.rmax, (unsigned)PF.gmax,
	    (unsigned)PF.bmax };
	double sum = 0;
	int x, y, k;

	memset(ck, 0, sizeof *ck);
	convert_frame(buf, stride, w, h, native);
	if (dummy_decode(conv_xrgb, w, w, h, &ck->st) < 0) {
		ck->garbled = 1;
		return -1;
	}
	for (y = 0; y < h; y++) {
		const uint32_t *r = conv_raw + (size_t)y * w;

		for (x = 0; x < w; x++) {
			uint32_t ref = dummy_pixel(w, h, &ck->st, x, y);
			unsigned want[3] = { QR[ref >> 16 & 0xff],
			    QG[ref >> 8 & 0xff], QB[ref & 0xff] };
			unsigned got[3] = { r[x] >> PF.rshift & PF.rmax,
			    r[x] >> PF.gshift & PF.gmax,
			    r[x] >> PF.bshift & PF.bmax };

			if (got[0] == want[0] && got[1] == want[1] &&
			    got[2] == want[2])
				continue;
			if (O.tol_max > 0)	/* lossy: in 0-255 units */
				for (k = 0; k < 3; k++) {
					int e = abs((int)got[k] - (int)want[k]) *
					    255 / (int)max[k];

					sum += e;
					if (e > ck->max_err)
						ck->max_err = e;
				}
			if (ck->mismatches++ == 0) {
				ck->x = x;
				ck->y = y;
				memcpy(ck->got, got, sizeof got);
				memcpy(ck->want, want, sizeof want);
				if (stop_first && O.tol_max == 0)
					return -1;
			}
		}
	}
	ck->mean_err = sum / (3.0 * w * h);
	if (ck->mismatches == 0)
		return 0;
	if (O.tol_max > 0 && ck->mean_err <= O.tol_mean &&
	    ck->max_err <= O.tol_max)
		return 0;
	return -1;
}

void
describe_check(const struct check *ck, char *out, size_t len)
{
	if (ck->garbled)
		snprintf(out, len, "status strip garbled (not a dummy picture?)");
	else
		snprintf(out, len, "frame #%u: %ld pixel(s) differ, first at "
		    "(%d,%d): got r/g/b %u/%u/%u want %u/%u/%u (max %d/%d/%d)"
		    "; error mean %.2f max %d", ck->st.frame, ck->mismatches,
		    ck->x, ck->y, ck->got[0], ck->got[1], ck->got[2],
		    ck->want[0], ck->want[1], ck->want[2], PF.rmax, PF.gmax,
		    PF.bmax, ck->mean_err, ck->max_err);
}

void
write_ppm(const char *path, int w, int h)
{
	FILE *f;
	size_t i, n = (size_t)w * h;

	if (!path || !conv_xrgb || w != conv_w || h != conv_h || n == 0)
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

static uint8_t *cover;			/* received pixels since a reset */
static int cover_w, cover_h;
static size_t uncovered;

int
cover_reset(int w, int h)
{
	size_t n = (size_t)w * h;

	free(cover);
	cover = calloc(n ? n : 1, 1);
	cover_w = w;
	cover_h = h;
	uncovered = cover ? n : 0;
	return cover ? 0 : -1;
}

void
cover_add(int x, int y, int w, int h)
{
	int i, j;

	if (!uncovered)
		return;
	if (x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > cover_w ||
	    y + h > cover_h)
		return;
	for (j = y; j < y + h; j++) {
		uint8_t *row = cover + (size_t)j * cover_w;

		for (i = x; i < x + w; i++)
			if (!row[i]) {
				row[i] = 1;
				uncovered--;
			}
	}
}

size_t
cover_left(void)
{
	return uncovered;
}

/* ---- what the test waits for ---- */

void
set_fail(int code, const char *fmt, ...)
{
	va_list ap;

	if (G.fail_code)
		return;			/* the first reason stands */
	va_start(ap, fmt);
	vsnprintf(G.fail_msg, sizeof G.fail_msg, fmt, ap);
	va_end(ap);
	G.fail_code = code;
}

void
update_status(const char *phase)
{
	char what[160] = "";

	if (G.verified < O.frames)
		snprintf(what + strlen(what), sizeof what - strlen(what),
		    " %d more %s", O.frames - G.verified,
		    O.raw ? "update(s)" : "frame(s)");
	if (O.frames > 1 && !O.still && !O.raw && !G.motion)
		strncat(what, " motion", sizeof what - strlen(what) - 1);
	if (O.exact_end && !O.raw && !G.last_exact)
		strncat(what, " exact-picture", sizeof what - strlen(what) - 1);
	if (O.nogo) {
		if (!G.actions_sent || now_s() - G.sent_at < NOGO_WINDOW)
			strncat(what, " the end of the -N window",
			    sizeof what - strlen(what) - 1);
	} else {
		if (O.want_ptr && !G.ptr_ok && !O.raw)
			strncat(what, " pointer", sizeof what - strlen(what) - 1);
		if (O.want_key && !G.key_ok && !O.raw)
			strncat(what, " key", sizeof what - strlen(what) - 1);
		if (O.cut && !G.cut_ok)
			strncat(what, " cut-text", sizeof what - strlen(what) - 1);
	}
	if (O.nmatch && G.matched < O.nmatch) {
		size_t l = strlen(what);

		if (G.match_diff < 0)
			snprintf(what + l, sizeof what - l, " match %d/%d (size "
			    "differs: %dx%d, reference %dx%d)", G.matched + 1,
			    O.nmatch, conv_w, conv_h, ref_w, ref_h);
		else
			snprintf(what + l, sizeof what - l, " match %d/%d (%s: "
			    "%ld pixel(s) differ, first at %d,%d)", G.matched + 1,
			    O.nmatch, ref_for == G.matched ? "last picture" :
			    "no reference yet", G.match_diff, G.match_x,
			    G.match_y);
	}
	if (G.checked && G.verified == 0) {
		char d[300];

		describe_check(&G.last, d, sizeof d);
		set_status("%s; %dx%d; %d picture(s) checked, none matched; "
		    "last: %s", phase, G.w, G.h, G.checked, d);
	} else if (O.raw)
		set_status("%s; %dx%d; %d complete update(s) (raw); still "
		    "waiting for:%s; sec=%s%s%s", phase, G.w, G.h, G.verified,
		    what[0] ? what : " -", G.sec[0] ? G.sec : "?",
		    G.mech[0] ? " mech=" : "", G.mech);
	else
		set_status("%s; %dx%d; %d frame(s) verified (#%u..#%u); "
		    "still waiting for:%s; sec=%s%s%s", phase, G.w, G.h,
		    G.verified, G.first_no, G.last_no, what[0] ? what : " -",
		    G.sec[0] ? G.sec : "?", G.mech[0] ? " mech=" : "", G.mech);
}

/* -T: what a US keyboard sends for each character */
static void
type_text(const char *t)
{
	static const char shifted[] = "~!@#$%^&*()_+{}|:\"<>?";

	vlog(1, "typing '%s'", t);
	for (; *t; t++) {
		unsigned char c = (unsigned char)*t;
		uint32_t ks = c == '\n' ? 0xff0d : c;
		int shift = (c >= 'A' && c <= 'Z') ||
		    (c != '\0' && strchr(shifted, c) != NULL);

		if (shift)
			lib->send_key(0xffe1, 1);
		lib->send_key(ks, 1);
		lib->send_key(ks, 0);
		if (shift)
			lib->send_key(0xffe1, 0);
	}
}

/* The first picture: send -P/-K/-X.  -1 if -N could not tell them. */
static int
send_actions(const struct dummy_state *st)
{
	int i;

	G.actions_sent = 1;
	if (O.nogo && O.want_ptr && st->ptr_x == O.ptr_x &&
	    st->ptr_y == O.ptr_y && st->buttons == O.ptr_btn) {
		set_fail(EX_USAGE, "-N cannot tell: frame #%u already shows the "
		    "pointer at %d,%d buttons %d before it was sent; choose "
		    "another -P", st->frame, O.ptr_x, O.ptr_y, O.ptr_btn);
		return -1;
	}
	if (O.nogo && O.cut && st->ncut == (uint16_t)strlen(O.cut)) {
		set_fail(EX_USAGE, "-N cannot tell: frame #%u already shows a "
		    "cut text of %zu bytes before it was sent; choose another "
		    "length of -X", st->frame, strlen(O.cut));
		return -1;
	}
	for (i = 0; i < O.nptrs; i++) {
		vlog(1, "sending pointer %d,%d buttons %d", O.ptrs[i][0],
		    O.ptrs[i][1], O.ptrs[i][2]);
		lib->send_pointer(O.ptrs[i][0], O.ptrs[i][1], O.ptrs[i][2]);
	}
	if (O.want_key) {
		vlog(1, "sending key 0x%x down+up", O.keysym);
		lib->send_key(O.keysym, 1);
		lib->send_key(O.keysym, 0);
	}
	if (O.text)
		type_text(O.text);
	for (i = 0; i < O.nhold; i++) {
		vlog(1, "sending key 0x%x down, to hold", O.hold[i]);
		lib->send_key(O.hold[i], 1);
	}
	if (O.cut) {
		vlog(1, "sending cut text (%zu bytes)", strlen(O.cut));
		lib->send_cut(O.cut, strlen(O.cut));
	}
	G.sent_at = now_s();
	if (O.raw && O.cut) {
		/* nothing to see in the picture: only the echo to wait for */
		G.cut_ok = 1;
		G.cut_ok_at = G.sent_at;
	}
	return 0;
}

/* -N: which of the input sent the picture shows; NULL: none */
static const char *
input_shown(const struct dummy_state *st)
{
	static char buf[200];

	buf[0] = '\0';
	if (O.want_ptr && st->ptr_x == O.ptr_x && st->ptr_y == O.ptr_y &&
	    st->buttons == O.ptr_btn)
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf),
		    ", pointer %d,%d buttons %d", O.ptr_x, O.ptr_y, O.ptr_btn);
	if (O.want_key && st->key == O.keysym &&
	    (uint16_t)(st->nkeys - G.nkeys_base) != 0)
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf),
		    ", key 0x%x (%u press(es))", O.keysym,
		    (uint16_t)(st->nkeys - G.nkeys_base));
	if (O.cut && st->ncut == (uint16_t)strlen(O.cut))
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf),
		    ", cut text of %zu bytes", strlen(O.cut));
	return buf[0] ? buf + 2 : NULL;
}

/* a P6 PPM with maxval 255 into ref_px; -1 if absent or not that */
static int
load_ref(const char *path)
{
	FILE *f = fopen(path, "rb");
	int w, h, max, c;
	size_t i, n;

	if (f == NULL)
		return -1;
	if (fscanf(f, "P6 %d %d %d", &w, &h, &max) != 3 || max != 255 ||
	    w < 1 || h < 1 || w > 16384 || h > 16384 ||
	    (c = fgetc(f)) == EOF || !(c == ' ' || c == '\n' || c == '\t' || c == '\r')) {
		fclose(f);
		return -1;
	}
	n = (size_t)w * h;
	free(ref_px);
	if ((ref_px = malloc(n * sizeof *ref_px)) == NULL) {
		fclose(f);
		return -1;
	}
	for (i = 0; i < n; i++) {
		uint8_t rgb[3];

		if (fread(rgb, 1, 3, f) != 3) {
			fclose(f);
			free(ref_px);
			ref_px = NULL;
			return -1;
		}
		ref_px[i] = (uint32_t)rgb[0] << 16 | (uint32_t)rgb[1] << 8 |
		    rgb[2];
	}
	fclose(f);
	ref_w = w;
	ref_h = h;
	return 0;
}

/* Compare the last picture with the -M references still to match. */
static void
try_match(void)
{
	while (G.matched < O.nmatch && conv_xrgb != NULL) {
		size_t i, n = (size_t)conv_w * conv_h;

		if (ref_for != G.matched) {
			if (load_ref(O.match[G.matched]) < 0)
				return;		/* not there yet */
			ref_for = G.matched;
		}
		G.match_diff = 0;
		if (ref_w != conv_w || ref_h != conv_h) {
			G.match_diff = -1;
			return;
		}
		for (i = 0; i < n; i++) {
			uint32_t r = ref_px[i], g = conv_raw[i];

			if (QR[r >> 16 & 0xff] == (g >> PF.rshift & PF.rmax) &&
			    QG[r >> 8 & 0xff] == (g >> PF.gshift & PF.gmax) &&
			    QB[r & 0xff] == (g >> PF.bshift & PF.bmax))
				continue;
			if (G.match_diff++ == 0) {
				G.match_x = (int)(i % (size_t)conv_w);
				G.match_y = (int)(i / (size_t)conv_w);
			}
		}
		if (G.match_diff)
			return;
		printf("match %d %s\n", G.matched + 1, O.match[G.matched]);
		fflush(stdout);
		G.matched++;
	}
}

/* A picture matched (st; NULL for -R): account for it. */
static int
frame_counted(const struct dummy_state *st)
{
	G.verified++;
	if (!st) {
		vlog(1, "complete update %d (raw)", G.verified);
		if (G.verified == 1)
			G.first_at = now_s();
		if (O.nmatch)
			try_match();
		if (!G.actions_sent)
			send_actions(&(struct dummy_state){ 0 });
		update_status("receiving");
		return goals_met() ? PIC_DONE : PIC_MORE;
	}
	G.last_exact = G.last.mismatches == 0;
	if (G.last_exact)
		G.exact++;
	else
		G.lossy++;
	if (G.last.mean_err > G.worst_mean)
		G.worst_mean = G.last.mean_err;
	if (G.last.max_err > G.worst_max)
		G.worst_max = G.last.max_err;
	if (G.verified == 1) {
		G.first_no = st->frame;
		G.nkeys_base = st->nkeys;
	} else if (st->frame != G.last_no)
		G.motion = 1;
	G.last_no = st->frame;
	vlog(1, "verified frame %d: #%u ptr %u,%u btn %u key 0x%x nkeys %u "
	    "ncut %u", G.verified, st->frame, st->ptr_x, st->ptr_y,
	    st->buttons, st->key, st->nkeys, st->ncut);
	if (!G.actions_sent) {
		if (send_actions(st) < 0)
			return PIC_FAIL;
	} else if (O.nogo) {
		const char *what = input_shown(st);

		if (what) {
			set_fail(EX_PROTO, "input arrived although -N: frame #%u "
			    "shows %s (%.1fs after sending)", st->frame, what,
			    now_s() - G.sent_at);
			return PIC_FAIL;
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
	return goals_met() ? PIC_DONE : PIC_MORE;
}

int
goals_met(void)
{
	if (O.nmatch && G.verified) {
		try_match();	/* a reference may have come meanwhile */
		if (G.matched < O.nmatch)
			return 0;
	}
	if (O.duration > 0)
		return G.verified && now_s() - G.first_at >= O.duration;
	if (G.verified < O.frames)
		return 0;
	if (O.frames > 1 && !O.still && !O.raw && !G.motion)
		return 0;
	if (O.exact_end && !O.raw && !G.last_exact)
		return 0;
	if (O.nogo)
		return now_s() - G.sent_at >= NOGO_WINDOW;
	if (O.raw)
		return 1;
	if ((O.want_ptr && !G.ptr_ok) || (O.want_key && !G.key_ok) ||
	    (O.cut && !G.cut_ok))
		return 0;
	return 1;
}

int
picture_complete(const uint8_t *buf, size_t stride, int w, int h,
    int native, int stop_first)
{
	if (O.raw) {
		convert_frame(buf, stride, w, h, native);
		return frame_counted(NULL);
	}
	G.checked++;
	if (check_frame(buf, stride, w, h, native, stop_first, &G.last) < 0) {
		update_status("receiving");
		return PIC_BAD;
	}
	return frame_counted(&G.last.st);
}

int
echo_pending(void)
{
	return O.cut && G.cut_ok && G.echo == 0 &&
	    now_s() - G.cut_ok_at < ECHO_GRACE;
}

void
got_server_cut(const char *text, size_t len)
{
	char *copy = malloc(len + 1);

	vlog(1, "ServerCutText, %zu bytes", len);
	if (copy) {
		memcpy(copy, text, len);
		copy[len] = '\0';
		free(G.server_cut);
		G.server_cut = copy;
		G.server_cut_len = len;
	}
	G.echo_len = len;
	snprintf(G.echo_head, sizeof G.echo_head, "%.*s",
	    (int)(len < 32 ? len : 32), text);
	if (O.cut && len == strlen(O.cut) && memcmp(text, O.cut, len) == 0) {
		G.echo = 1;
		if (O.nogo && G.actions_sent)
			set_fail(EX_PROTO, "input arrived although -N: the "
			    "server echoed our cut text (%zu bytes)", len);
	} else if (O.cut && G.actions_sent && G.echo != 1)
		G.echo = 2;
}

/* text as one token: \\ \n \r \t, \xHH for space and other bytes */
static void
print_escaped(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\')
			fputs("\\\\", stdout);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\r')
			fputs("\\r", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c <= ' ' || c >= 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

static void
print_ok(void)
{
	char extra[512] = "", frames[64];
	size_t l;

	if (O.want_ptr)
		snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
		    " ptr=%d,%d,%d", O.ptr_x, O.ptr_y, O.ptr_btn);
	if (O.want_key)
		snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
		    " key=0x%x", O.keysym);
	if (O.cut && O.raw) {
		l = strlen(extra);
		snprintf(extra + l, sizeof extra - l, " sentcut=%zu echo=%s",
		    strlen(O.cut), G.echo == 1 ? "yes" :
		    G.echo == 2 ? "different" : "none");
	} else if (O.cut) {
		l = strlen(extra);
		snprintf(extra + l, sizeof extra - l, " cut=%zu echo=%s",
		    strlen(O.cut), G.echo == 1 ? "yes" :
		    G.echo == 2 ? "different" : "none");
	}
	if (O.nogo)
		snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
		    " input=dropped(%.0fs)", NOGO_WINDOW);
	if (O.nmatch)
		snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
		    " matched=%d", G.matched);
	if (O.duration > 0) {
		double t = now_s() - G.first_at;

		snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
		    " updates=%d secs=%.1f rate=%.1f/s", G.verified - 1, t,
		    t > 0 ? (G.verified - 1) / t : 0.0);
	}
	if (O.tol_max > 0)
		snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
		    " lossy=%d exact=%d err=%.2f/%d", G.lossy, G.exact,
		    G.worst_mean, G.worst_max);
	if (O.raw)
		snprintf(frames, sizeof frames, "(raw)");
	else
		snprintf(frames, sizeof frames, "(#%u..#%u%s)", G.first_no,
		    G.last_no, O.frames > 1 ? (G.motion ? ", moving" :
		    ", still") : "");
	printf("ok: %s %s:%s %dx%d bpp=%d%s enc=%s frames=%d %s "
	    "sec=%s%s%s%s", prog, O.host, O.port, G.w, G.h, PF.bpp,
	    PF.big_endian ? "be" : "", O.enc_list, G.verified, frames,
	    G.sec[0] ? G.sec : "?", G.mech[0] ? " mech=" : "", G.mech, extra);
	if (O.raw && G.server_cut) {
		fputs(" cut=", stdout);
		print_escaped(G.server_cut, G.server_cut_len);
	}
	putchar('\n');
}

void
report(int code, const char *fmt, va_list ap)
{
	if (code == EX_OK && !fmt)
		print_ok();
	else {
		printf("FAIL: %s: ", who);
		vprintf(fmt, ap);
		printf("\n");
	}
	fflush(stdout);
}
