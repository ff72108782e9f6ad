/*
 * vncsasl - a minimal VNC (RFB) server that authenticates viewers with
 * GNU SASL inside VeNCrypt TLS and authorizes them with a flat-file ACL.
 *
 * How it works, in the order you will meet it below.
 *
 * One process, one poll() loop (serve()).  Every socket is non-blocking.
 * Each turn rebuilds the pollfd set from state: listeners only while
 * below the client cap, a client's POLLOUT only while it has queued
 * output, the framebuffer source's descriptor if it has one.  The poll
 * timeout is the nearest deadline: handshake and stall deadlines, lingering
 * closes, and - only while some viewer waits for an update - the moment
 * the source says it will have news.  Nothing is ever done for a screen no
 * one is waiting to see.
 *
 * Each connection is a struct client with an explicit state (enum state)
 * and a "call this handler when N bytes are buffered" pair (cl_expect(),
 * after QEMU's vnc_read_when()).  Handlers see the buffered bytes through a
 * bounds-checked reader (struct rd) whose error is sticky, so a handler
 * reads all fields and checks once.  Every length that comes off the wire
 * has a named limit below; needing more than the limit is a protocol
 * error that closes that one client with a logged reason.  A failing
 * client is only marked dead; the loop reaps it after the pass, so no
 * client is freed inside its own handler.
 *
 * Security types are a table (sectypes[]) shared by the plain RFB list and
 * the VeNCrypt subtype list; client messages are a table (msgtab[])
 * indexed by message type.
 *
 * Updates: the source reports damaged rectangles; every initialised
 * client accumulates them in its own tile map.  A client gets an update
 * only while it has an outstanding FramebufferUpdateRequest and its
 * output queue is below OUT_LOW (backpressure: a slow viewer costs at most
 * about one frame of memory and never slows the others).  Adjacent dirty
 * tiles are merged into rectangles and translated into the client's pixel
 * format with per-channel lookup tables.
 *
 * Start reading at main().
 */
#if defined(__linux__) || defined(__GLIBC__)
#define _DEFAULT_SOURCE		/* POSIX 2008 + setgroups() under -std=c99 */
#endif

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <nettle/des.h>
#include <nettle/memops.h>

#include "vncsasl.h"

/* ---------------------------------------------------------------------
 * Limits.  Each says why it is what it is.
 * ------------------------------------------------------------------- */

#define MAX_CLIENTS	64	/* default cap; -M changes it */
#define MAX_LISTENERS	16	/* -l addresses times address families */
#define IN_CHUNK	16384	/* bytes read per client per turn: fairness */
#define CUT_TEXT_MAX	(1 << 20) /* ClientCutText: a big Latin-1 clipboard */
#define ENCODINGS_MAX	256	/* SetEncodings entries; viewers send < 40 */
#define SCREENS_MAX	16	/* SetDesktopSize screens; we have one */
#define NAME_MAX_LEN	255	/* desktop name sent in ServerInit */
#define REASON_MAX	255	/* failure reasons we send */
#define OUT_LOW		(256 * 1024) /* encode updates only below this */
#define OUT_SLACK	(2 * CUT_TEXT_MAX + 65536) /* non-update output on
				   top of one frame before a client is cut */
#define HANDSHAKE_MS	30000	/* connect to ServerInit, slow links too */
#define STALL_MS	60000	/* queued output not drained at all */
#define LINGER_MS	2000	/* time to deliver a failure reason */
#define TILE		64	/* damage granularity in pixels */
#define VNC_PASSWD_MAX	8	/* RFB VNC auth uses 8 key bytes */

#define RFB_GREETING	"RFB 003.008\n"

/* RFB numbers (rfbproto.rst) */
enum {
	SEC_INVALID = 0, SEC_NONE = 1, SEC_VNC = 2, SEC_VENCRYPT = 19,
	SEC_SASL = 20,
};
enum {
	MSG_SET_PIXEL_FORMAT = 0, MSG_SET_ENCODINGS = 2, MSG_UPDATE_REQUEST = 3,
	MSG_KEY = 4, MSG_POINTER = 5, MSG_CUT_TEXT = 6, MSG_SET_DESKTOP_SIZE = 251,
};
enum {
	SMSG_UPDATE = 0, SMSG_CUT_TEXT = 3,
};
enum {
	ENC_RAW = 0,
	ENC_DESKTOP_SIZE = -223,
	ENC_EXT_DESKTOP_SIZE = -308,
};

/* ---------------------------------------------------------------------
 * Types.
 * ------------------------------------------------------------------- */

enum state {
	ST_VERSION,		/* waiting for the client's ProtocolVersion */
	ST_SECURITY,		/* waiting for the chosen security type */
	ST_AUTH,		/* a security type's own exchange */
	ST_INIT,		/* waiting for ClientInit */
	ST_NORMAL,		/* client messages */
	ST_CLOSING,		/* flushing a failure, then close */
};

static const char *const state_name[] = {
	"version", "security", "auth", "init", "normal", "closing",
};

struct buf {
	uint8_t *data;
	size_t off, len, cap;	/* valid bytes are data[off..len) */
};

/* A bounds-checked reader over buffered wire bytes; errors are sticky. */
struct rd {
	const uint8_t *p;
	size_t n;
	int err;
};

struct pixfmt {
	uint8_t bpp, depth, bigendian, truecolour;
	uint16_t max[3];
	uint8_t shift[3];
};

struct rect {
	int x, y, w, h;
};

struct server;
struct client;
struct sectype;

/* Returns bytes consumed; 0 after raising c->need above what is there. */
typedef size_t (*handler_fn)(struct client *, const uint8_t *, size_t);

struct client {
	struct server *srv;
	struct client *next;
	int fd;
	int pfd;		/* index in this turn's pollfd set, or -1 */
	enum state state;
	handler_fn handler;
	size_t need;
	struct buf in, out;
	int dead;
	char why[160];		/* close reason for the log */
	long long t_start, deadline, last_out;

	int minor;		/* RFB 3.minor in use: 3, 7 or 8 */
	const struct sectype *sec;
	char peer[INET6_ADDRSTRLEN + 8];	/* "1.2.3.4:5" or "unix" */
	char addr[INET6_ADDRSTRLEN];		/* for ACL "from" rules */
	int is_unix;
	char user[256];		/* authenticated identity, "" if none */
	uint8_t challenge[16];

	/* initialised clients */
	struct pixfmt pf;
	int bytes_pp, native;
	uint32_t tr[3][256];	/* 8-bit channel -> shifted client value */
	unsigned enc_desktop_size : 1, enc_ext_desktop_size : 1;
	unsigned want_update : 1;	/* a FramebufferUpdateRequest waits */
	unsigned size_changed : 1;	/* tell the new size, alone */
	unsigned size_announce : 1;	/* ExtendedDesktopSize, first update */
	uint8_t size_reason, size_status;	/* ExtendedDesktopSize x, y */
	uint8_t *dirty;		/* tile map, srv->tw * srv->th */
};

struct listener {
	int fd;
	int is_unix;
	char name[INET6_ADDRSTRLEN + 16];
};

struct sectype {
	const char *name;	/* -s spelling */
	int type;		/* RFB security type */
	int subtype;		/* VeNCrypt subtype, 0 for plain RFB */
	void (*start)(struct client *);
};

#define NSECTYPES 11

struct server {
	/* configuration */
	struct listener lst[MAX_LISTENERS];
	int nlst;
	const char *unix_path;
	const struct sectype *sec_tcp[NSECTYPES], *sec_unix[NSECTYPES];
	int nsec_tcp, nsec_unix;
	struct des_ctx vnc_des;
	int have_vnc_key;
	char name[NAME_MAX_LEN + 1];
	int max_clients, verbose, once, use_syslog;

	/* state */
	struct fb *fb;
	struct fb_host host;
	struct fb_frame frame;
	int tw, th;		/* tile grid */
	struct rect *rects;	/* scratch: tw * th */
	int *open_a, *open_b;	/* scratch: tw each */
	struct client *clients;
	int nclients, served;
	long long grab_due;
};

/* ---------------------------------------------------------------------
 * Prototypes of the handlers, referenced by tables before definition.
 * ------------------------------------------------------------------- */

static void auth_none(struct client *);
static void auth_vnc(struct client *);
static void cl_fail(struct client *, const char *, ...);
static void cl_reject(struct client *, const char *);
static void cl_expect(struct client *, handler_fn, size_t);
static void start_init(struct client *);

static const struct sectype sectypes[NSECTYPES] = {
	{ "x509sasl", SEC_VENCRYPT, 263, NULL },
	{ "tlssasl", SEC_VENCRYPT, 264, NULL },
	{ "sasl", SEC_SASL, 0, NULL },
	{ "x509plain", SEC_VENCRYPT, 262, NULL },
	{ "tlsplain", SEC_VENCRYPT, 259, NULL },
	{ "x509vnc", SEC_VENCRYPT, 261, NULL },
	{ "tlsvnc", SEC_VENCRYPT, 258, NULL },
	{ "x509none", SEC_VENCRYPT, 260, NULL },
	{ "tlsnone", SEC_VENCRYPT, 257, NULL },
	{ "vnc", SEC_VNC, 0, auth_vnc },
	{ "none", SEC_NONE, 0, auth_none },
};

/* ---------------------------------------------------------------------
 * Signals: flags only.
 * ------------------------------------------------------------------- */

static volatile sig_atomic_t got_stop, got_hup;

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_stop = 1;
}

/* ---------------------------------------------------------------------
 * Logging.  Events go to LOG_DAEMON, decisions to LOG_AUTH.
 * ------------------------------------------------------------------- */

static void
vlogx(const struct server *s, int prio, const char *fmt, va_list ap)
{
	if (LOG_PRI(prio) == LOG_DEBUG && !s->verbose)
		return;
	if (s->use_syslog) {
		vsyslog(prio, fmt, ap);
		return;
	}
	fputs("vncsasl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static void
logx(const struct server *s, int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlogx(s, prio, fmt, ap);
	va_end(ap);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
die(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("vncsasl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

/* ---------------------------------------------------------------------
 * Buffers, wire readers and writers.
 * ------------------------------------------------------------------- */

static int
buf_reserve(struct buf *b, size_t more)
{
	size_t want, cap;
	uint8_t *p;

	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->cap - b->len >= more)
		return 0;
	if (b->off > 0) {	/* compact before growing */
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= more)
			return 0;
	}
	want = b->len + more;
	for (cap = b->cap ? b->cap : 4096; cap < want; cap *= 2)
		;
	if ((p = realloc(b->data, cap)) == NULL)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

static void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

static size_t
buf_used(const struct buf *b)
{
	return b->len - b->off;
}

static uint8_t
rd_u8(struct rd *r)
{
	if (r->err || r->n < 1) {
		r->err = 1;
		return 0;
	}
	r->n--;
	return *r->p++;
}

static uint16_t
rd_u16(struct rd *r)
{
	uint16_t v = (uint16_t)(rd_u8(r) << 8);

	return v | rd_u8(r);
}

static uint32_t
rd_u32(struct rd *r)
{
	uint32_t v = (uint32_t)rd_u16(r) << 16;

	return v | rd_u16(r);
}

static const uint8_t *
rd_bytes(struct rd *r, size_t n)
{
	const uint8_t *p = r->p;

	if (r->err || r->n < n) {
		r->err = 1;
		return NULL;
	}
	r->p += n;
	r->n -= n;
	return p;
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
	    p[3];
}

/*
 * Output.  Queueing past the client's bound is a failure of that client
 * (CVE-2017-15124 was QEMU queueing without one).
 */
static size_t
out_limit(const struct client *c)
{
	const struct server *s = c->srv;

	return (size_t)s->frame.width * s->frame.height * 4 + OUT_LOW +
	    OUT_SLACK;
}

static uint8_t *
wr_space(struct client *c, size_t n)
{
	uint8_t *p;

	if (c->dead)
		return NULL;
	if (buf_used(&c->out) + n > out_limit(c)) {
		cl_fail(c, "output queue over its limit (%zu bytes)",
		    buf_used(&c->out) + n);
		return NULL;
	}
	if (buf_reserve(&c->out, n) < 0) {
		cl_fail(c, "out of memory for output");
		return NULL;
	}
	p = c->out.data + c->out.len;
	c->out.len += n;
	return p;
}

static void
wr_bytes(struct client *c, const void *data, size_t n)
{
	uint8_t *p = wr_space(c, n);

	if (p != NULL && n > 0)
		memcpy(p, data, n);
}

static void
wr_u8(struct client *c, uint8_t v)
{
	wr_bytes(c, &v, 1);
}

static void
wr_u16(struct client *c, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	wr_bytes(c, b, 2);
}

static void
wr_u32(struct client *c, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
	    (uint8_t)(v >> 8), (uint8_t)v };

	wr_bytes(c, b, 4);
}

static void
wr_string(struct client *c, const char *s)
{
	size_t n = strlen(s);

	wr_u32(c, (uint32_t)n);
	wr_bytes(c, s, n);
}

/* ---------------------------------------------------------------------
 * Pixel formats.
 * ------------------------------------------------------------------- */

static const struct pixfmt native_pf = {
	32, 24, 0, 1, { 255, 255, 255 }, { 16, 8, 0 },
};

static int
host_little_endian(void)
{
	const uint16_t one = 1;

	return *(const uint8_t *)&one;
}

static int
bits_of_max(unsigned max)	/* k if max == 2^k - 1, else -1 */
{
	int k = 0;

	while (max & 1) {
		max >>= 1;
		k++;
	}
	return max == 0 && k > 0 ? k : -1;
}

/* NULL if the format is one we serve, else why not. */
static const char *
pixfmt_check(const struct pixfmt *pf)
{
	int i, k;

	if (pf->bpp != 8 && pf->bpp != 16 && pf->bpp != 32)
		return "bits-per-pixel is not 8, 16 or 32";
	if (!pf->truecolour)
		return "colour-map pixel formats are not supported";
	for (i = 0; i < 3; i++) {
		if ((k = bits_of_max(pf->max[i])) < 0)
			return "a colour maximum is not 2^n-1";
		if (pf->shift[i] + k > pf->bpp)
			return "a colour does not fit in the pixel";
	}
	return NULL;
}

static void
pixfmt_apply(struct client *c, const struct pixfmt *pf)
{
	unsigned i, v;

	c->pf = *pf;
	c->bytes_pp = pf->bpp / 8;
	for (i = 0; i < 3; i++)
		for (v = 0; v < 256; v++)
			c->tr[i][v] = (uint32_t)((v * pf->max[i] + 127) / 255)
			    << pf->shift[i];
	/* the source's XRGB words can be copied as they are */
	c->native = pf->bpp == 32 && pf->max[0] == 255 && pf->max[1] == 255 &&
	    pf->max[2] == 255 && pf->shift[0] == 16 && pf->shift[1] == 8 &&
	    pf->shift[2] == 0 && (pf->bigendian == 0) == host_little_endian();
}

static void
wr_pixfmt(struct client *c, const struct pixfmt *pf)
{
	wr_u8(c, pf->bpp);
	wr_u8(c, pf->depth);
	wr_u8(c, pf->bigendian);
	wr_u8(c, pf->truecolour);
	wr_u16(c, pf->max[0]);
	wr_u16(c, pf->max[1]);
	wr_u16(c, pf->max[2]);
	wr_u8(c, pf->shift[0]);
	wr_u8(c, pf->shift[1]);
	wr_u8(c, pf->shift[2]);
	wr_bytes(c, "\0\0\0", 3);
}

/* Translate n source pixels into the client's format at dst. */
static void
put_pixels(const struct client *c, uint8_t *dst, const uint32_t *src, int n)
{
	int i;

	if (c->native) {
		memcpy(dst, src, (size_t)n * 4);
		return;
	}
	for (i = 0; i < n; i++) {
		uint32_t p = src[i];
		uint32_t v = c->tr[0][p >> 16 & 0xff] | c->tr[1][p >> 8 & 0xff] |
		    c->tr[2][p & 0xff];

		switch (c->bytes_pp) {
		case 1:
			*dst++ = (uint8_t)v;
			break;
		case 2:
			if (c->pf.bigendian) {
				*dst++ = (uint8_t)(v >> 8);
				*dst++ = (uint8_t)v;
			} else {
				*dst++ = (uint8_t)v;
				*dst++ = (uint8_t)(v >> 8);
			}
			break;
		default:
			if (c->pf.bigendian) {
				*dst++ = (uint8_t)(v >> 24);
				*dst++ = (uint8_t)(v >> 16);
				*dst++ = (uint8_t)(v >> 8);
				*dst++ = (uint8_t)v;
			} else {
				*dst++ = (uint8_t)v;
				*dst++ = (uint8_t)(v >> 8);
				*dst++ = (uint8_t)(v >> 16);
				*dst++ = (uint8_t)(v >> 24);
			}
		}
	}
}

/* ---------------------------------------------------------------------
 * Encoders.
 * ------------------------------------------------------------------- */

static void
wr_rect_header(struct client *c, int x, int y, int w, int h, int32_t enc)
{
	wr_u16(c, (uint16_t)x);
	wr_u16(c, (uint16_t)y);
	wr_u16(c, (uint16_t)w);
	wr_u16(c, (uint16_t)h);
	wr_u32(c, (uint32_t)enc);
}

static void
enc_raw(struct client *c, const struct rect *r)
{
	const struct fb_frame *f = &c->srv->frame;
	size_t row = (size_t)r->w * c->bytes_pp;
	uint8_t *p;
	int y;

	wr_rect_header(c, r->x, r->y, r->w, r->h, ENC_RAW);
	if ((p = wr_space(c, row * r->h)) == NULL)
		return;
	for (y = 0; y < r->h; y++, p += row)
		put_pixels(c, p,
		    f->pixels + (size_t)(r->y + y) * f->stride + r->x, r->w);
}

/* ---------------------------------------------------------------------
 * Damage and updates.
 * ------------------------------------------------------------------- */

static void
dirty_mark(struct client *c, int x, int y, int w, int h)
{
	const struct server *s = c->srv;
	int tx0, ty0, tx1, ty1, tx, ty;

	if (c->dirty == NULL || w <= 0 || h <= 0)
		return;
	tx0 = x / TILE;
	ty0 = y / TILE;
	tx1 = (x + w - 1) / TILE;
	ty1 = (y + h - 1) / TILE;
	if (tx1 >= s->tw)
		tx1 = s->tw - 1;
	if (ty1 >= s->th)
		ty1 = s->th - 1;
	for (ty = ty0; ty <= ty1; ty++)
		for (tx = tx0; tx <= tx1; tx++)
			c->dirty[ty * s->tw + tx] = 1;
}

static void
srv_damage(void *p, int x, int y, int w, int h)
{
	struct server *s = p;
	struct client *c;

	if (x < 0) {
		w += x;
		x = 0;
	}
	if (y < 0) {
		h += y;
		y = 0;
	}
	if (x + w > s->frame.width)
		w = s->frame.width - x;
	if (y + h > s->frame.height)
		h = s->frame.height - y;
	for (c = s->clients; c != NULL; c = c->next)
		if (c->state == ST_NORMAL)
			dirty_mark(c, x, y, w, h);
}

/* (Re)build the tile grid for the source's current geometry. */
static int
grid_setup(struct server *s)
{
	fb_source.frame(s->fb, &s->frame);
	s->tw = (s->frame.width + TILE - 1) / TILE;
	s->th = (s->frame.height + TILE - 1) / TILE;
	free(s->rects);
	free(s->open_a);
	free(s->open_b);
	s->rects = calloc((size_t)s->tw * s->th, sizeof *s->rects);
	s->open_a = calloc((size_t)s->tw, sizeof *s->open_a);
	s->open_b = calloc((size_t)s->tw, sizeof *s->open_b);
	return s->rects && s->open_a && s->open_b ? 0 : -1;
}

static int
cl_grid(struct client *c)
{
	const struct server *s = c->srv;

	free(c->dirty);
	c->dirty = calloc((size_t)s->tw * s->th, 1);
	if (c->dirty == NULL) {
		cl_fail(c, "out of memory for the tile map");
		return -1;
	}
	return 0;
}

static void
srv_resized(void *p)
{
	struct server *s = p;
	struct client *c;

	if (grid_setup(s) < 0)
		die(1, "out of memory after a resize");
	logx(s, LOG_INFO, "desktop resized to %dx%d", s->frame.width,
	    s->frame.height);
	for (c = s->clients; c != NULL; c = c->next) {
		if (c->state != ST_NORMAL)
			continue;
		if (!c->enc_desktop_size && !c->enc_ext_desktop_size) {
			cl_fail(c, "desktop resized and the viewer cannot "
			    "follow (no DesktopSize encoding)");
			continue;
		}
		if (cl_grid(c) < 0)
			continue;
		dirty_mark(c, 0, 0, s->frame.width, s->frame.height);
		if (!c->size_changed) {
			c->size_reason = 2;	/* by another client */
			c->size_status = 0;
		}
		c->size_changed = 1;
	}
}

static void
srv_cut_text(void *p, const char *text, size_t len)
{
	struct server *s = p;
	struct client *c;

	if (len > CUT_TEXT_MAX)
		len = CUT_TEXT_MAX;
	for (c = s->clients; c != NULL; c = c->next) {
		if (c->state != ST_NORMAL)
			continue;
		wr_u8(c, SMSG_CUT_TEXT);
		wr_bytes(c, "\0\0\0", 3);
		wr_u32(c, (uint32_t)len);
		wr_bytes(c, text, len);
	}
}

/* Dirty tiles as rectangles: runs in a row, merged down equal runs. */
static int
collect_rects(struct server *s, struct client *c)
{
	int n = 0, tx, ty, *prev = s->open_a, *cur = s->open_b, *t;

	for (tx = 0; tx < s->tw; tx++)
		prev[tx] = -1;
	for (ty = 0; ty < s->th; ty++) {
		const uint8_t *row = c->dirty + (size_t)ty * s->tw;

		for (tx = 0; tx < s->tw; tx++)
			cur[tx] = -1;
		for (tx = 0; tx < s->tw;) {
			int x0 = tx, k;

			if (!row[tx]) {
				tx++;
				continue;
			}
			while (tx < s->tw && row[tx])
				tx++;
			k = prev[x0];
			if (k >= 0 && s->rects[k].w == (tx - x0) * TILE) {
				s->rects[k].h += TILE;
			} else {
				k = n++;
				s->rects[k].x = x0 * TILE;
				s->rects[k].y = ty * TILE;
				s->rects[k].w = (tx - x0) * TILE;
				s->rects[k].h = TILE;
			}
			cur[x0] = k;
		}
		t = prev;
		prev = cur;
		cur = t;
	}
	for (tx = 0; tx < n; tx++) {	/* clip the right and bottom edges */
		struct rect *r = &s->rects[tx];

		if (r->x + r->w > s->frame.width)
			r->w = s->frame.width - r->x;
		if (r->y + r->h > s->frame.height)
			r->h = s->frame.height - r->y;
	}
	memset(c->dirty, 0, (size_t)s->tw * s->th);
	return n;
}

static void
wr_size_rect(struct client *c)
{
	const struct server *s = c->srv;

	if (c->enc_ext_desktop_size) {
		wr_rect_header(c, c->size_reason, c->size_status,
		    s->frame.width, s->frame.height, ENC_EXT_DESKTOP_SIZE);
		wr_u8(c, 1);		/* one screen */
		wr_bytes(c, "\0\0\0", 3);
		wr_u32(c, 0);		/* its id */
		wr_u16(c, 0);
		wr_u16(c, 0);
		wr_u16(c, (uint16_t)s->frame.width);
		wr_u16(c, (uint16_t)s->frame.height);
		wr_u32(c, 0);		/* flags */
	} else {
		wr_rect_header(c, 0, 0, s->frame.width, s->frame.height,
		    ENC_DESKTOP_SIZE);
	}
}

/* One FramebufferUpdate, if the client waits and there is news. */
static void
cl_update(struct client *c)
{
	struct server *s = c->srv;
	int i, n;

	if (c->size_changed) {
		/* RFB: a new size is the last rectangle of its update; the
		 * new picture follows in the next one without waiting for the
		 * viewer's request, as it lost its old picture anyway */
		wr_u8(c, SMSG_UPDATE);
		wr_u8(c, 0);
		wr_u16(c, 1);
		wr_size_rect(c);
		c->size_changed = c->size_announce = 0;
		return;
	}
	n = collect_rects(s, c);
	if (n == 0 && !c->size_announce)
		return;
	wr_u8(c, SMSG_UPDATE);
	wr_u8(c, 0);
	wr_u16(c, (uint16_t)(n + c->size_announce));
	for (i = 0; i < n && !c->dead; i++)
		enc_raw(c, &s->rects[i]);
	if (c->size_announce)
		wr_size_rect(c);
	c->size_announce = 0;
	c->want_update = 0;
}

static int
cl_waiting(const struct client *c)
{
	return c->state == ST_NORMAL && !c->dead && c->want_update;
}

/* ---------------------------------------------------------------------
 * The client state machine.
 * ------------------------------------------------------------------- */

static void
cl_expect(struct client *c, handler_fn fn, size_t n)
{
	c->handler = fn;
	c->need = n;
}

static void
cl_vclose(struct client *c, const char *fmt, va_list ap)
{
	if (c->dead)
		return;
	c->dead = 1;
	vsnprintf(c->why, sizeof c->why, fmt, ap);
}

/* Close now, logging why; nothing more is sent. */
static void
cl_fail(struct client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cl_vclose(c, fmt, ap);
	va_end(ap);
}

/* Deliver what is queued, then close (failure reasons). */
static void
cl_linger(struct client *c, const char *why)
{
	snprintf(c->why, sizeof c->why, "%s", why);
	c->state = ST_CLOSING;
	c->deadline = now_ms() + LINGER_MS;
}

static void
wr_failure_reason(struct client *c, const char *reason)
{
	if (c->minor >= 8)
		wr_string(c, reason);
}

/* SecurityResult failed, version-correct, then close. */
static void
cl_reject(struct client *c, const char *why)
{
	wr_u32(c, 1);
	wr_failure_reason(c, "Authentication failed");
	cl_linger(c, why);
}

static void
sec_ok(struct client *c)
{
	wr_u32(c, 0);
	start_init(c);
}

/* -- security type None -- */

static void
auth_none(struct client *c)
{
	logx(c->srv, LOG_AUTH | LOG_NOTICE, "auth peer=%s sec=%s user=- "
	    "result=ok", c->peer, c->sec->name);
	/* RFB 3.3 and 3.7 send no SecurityResult for None */
	if (c->minor >= 8 || c->sec->subtype != 0)
		sec_ok(c);
	else
		start_init(c);
}

/* -- security type VNC authentication (DES challenge) -- */

static size_t
h_vnc_response(struct client *c, const uint8_t *p, size_t n)
{
	uint8_t want[16];
	int ok;

	(void)n;
	des_encrypt(&c->srv->vnc_des, 16, want, c->challenge);
	ok = memeql_sec(want, p, 16);
	logx(c->srv, LOG_AUTH | (ok ? LOG_NOTICE : LOG_WARNING),
	    "auth peer=%s sec=%s user=- result=%s", c->peer, c->sec->name,
	    ok ? "ok" : "fail reason=wrong-password");
	if (ok)
		sec_ok(c);
	else
		cl_reject(c, "wrong VNC password");
	return 16;
}

static void
auth_vnc(struct client *c)
{
	if (gnutls_rnd(GNUTLS_RND_NONCE, c->challenge, sizeof c->challenge)) {
		cl_fail(c, "no random bytes for the challenge");
		return;
	}
	c->state = ST_AUTH;
	wr_bytes(c, c->challenge, sizeof c->challenge);
	cl_expect(c, h_vnc_response, 16);
}

/* -- ProtocolVersion and the security list -- */

static const struct sectype *const *
cl_sectypes(const struct client *c, int *n)
{
	const struct server *s = c->srv;

	*n = c->is_unix ? s->nsec_unix : s->nsec_tcp;
	return c->is_unix ? s->sec_unix : s->sec_tcp;
}

static void
sec_start(struct client *c, const struct sectype *st)
{
	c->sec = st;
	c->state = ST_AUTH;
	logx(c->srv, LOG_DEBUG, "peer=%s security %s", c->peer, st->name);
	st->start(c);
}

static size_t
h_sectype(struct client *c, const uint8_t *p, size_t n)
{
	const struct sectype *const *list;
	int i, k;

	(void)n;
	list = cl_sectypes(c, &k);
	for (i = 0; i < k; i++)
		if (list[i]->subtype == 0 && list[i]->type == p[0]) {
			sec_start(c, list[i]);
			return 1;
		}
	/* QEMU and the spec: SecurityResult failed (+ reason in 3.8) */
	logx(c->srv, LOG_AUTH | LOG_WARNING, "auth peer=%s sec=%u result=fail "
	    "reason=type-not-offered", c->peer, p[0]);
	wr_u32(c, 1);
	wr_failure_reason(c, "Security type not offered");
	cl_linger(c, "chose a security type that was not offered");
	return 1;
}

static void
send_sectypes(struct client *c)
{
	const struct sectype *const *list;
	uint8_t types[NSECTYPES];
	int i, j, k, n = 0;

	list = cl_sectypes(c, &k);
	if (c->minor == 3) {
		/* 3.3: the server picks; only None and VNC exist there */
		for (i = 0; i < k; i++)
			if (list[i]->subtype == 0 &&
			    (list[i]->type == SEC_NONE || list[i]->type == SEC_VNC))
				break;
		if (i == k) {
			wr_u32(c, SEC_INVALID);
			wr_string(c, "No security type offered to RFB 3.3 "
			    "viewers; use a viewer that speaks RFB 3.8");
			cl_linger(c, "RFB 3.3 viewer, nothing it can use");
			return;
		}
		wr_u32(c, (uint32_t)list[i]->type);
		sec_start(c, list[i]);
		return;
	}
	for (i = 0; i < k; i++) {	/* first occurrence order */
		for (j = 0; j < n; j++)
			if (types[j] == list[i]->type)
				break;
		if (j == n)
			types[n++] = (uint8_t)list[i]->type;
	}
	wr_u8(c, (uint8_t)n);
	wr_bytes(c, types, (size_t)n);
	c->state = ST_SECURITY;
	cl_expect(c, h_sectype, 1);
}

static size_t
h_version(struct client *c, const uint8_t *p, size_t n)
{
	int major = 0, minor = 0, i;

	(void)n;
	for (i = 0; i < 12; i++)
		if ((i < 4 && p[i] != "RFB "[i]) || (i == 7 && p[i] != '.') ||
		    (i == 11 && p[i] != '\n') ||
		    (i != 7 && i >= 4 && i < 11 && (p[i] < '0' || p[i] > '9'))) {
			cl_fail(c, "not an RFB ProtocolVersion");
			return 12;
		}
	for (i = 4; i < 7; i++)
		major = major * 10 + (p[i] - '0');
	for (i = 8; i < 11; i++)
		minor = minor * 10 + (p[i] - '0');
	/* 3.4 and 3.6 (UltraVNC), 3.5 (spec: read as 3.3), 3.889 (Apple) */
	if (major == 3 && minor >= 3 && minor <= 6)
		c->minor = 3;
	else if (major == 3 && (minor == 7 || minor == 8))
		c->minor = minor;
	else if (major == 3 && minor == 889)
		c->minor = 8;
	else {
		c->minor = 3;
		wr_u32(c, SEC_INVALID);
		wr_string(c, "Unsupported RFB protocol version");
		cl_linger(c, "unsupported RFB version");
		logx(c->srv, LOG_INFO, "peer=%s unsupported version %03d.%03d",
		    c->peer, major, minor);
		return 12;
	}
	logx(c->srv, LOG_DEBUG, "peer=%s RFB %d.%d (asked %d.%d)", c->peer,
	    3, c->minor, major, minor);
	send_sectypes(c);
	return 12;
}

/* -- ClientInit / ServerInit -- */

static void
close_others(struct client *c)
{
	struct client *o;

	for (o = c->srv->clients; o != NULL; o = o->next)
		if (o != c && o->state == ST_NORMAL)
			cl_fail(o, "another viewer asked for exclusive access");
}

static size_t h_message(struct client *, const uint8_t *, size_t);

static size_t
h_client_init(struct client *c, const uint8_t *p, size_t n)
{
	const struct server *s = c->srv;

	(void)n;
	if (p[0] == 0)
		close_others(c);
	pixfmt_apply(c, &native_pf);
	if (cl_grid(c) < 0)
		return 1;
	wr_u16(c, (uint16_t)s->frame.width);
	wr_u16(c, (uint16_t)s->frame.height);
	wr_pixfmt(c, &native_pf);
	wr_string(c, s->name);
	c->state = ST_NORMAL;
	c->deadline = 0;
	dirty_mark(c, 0, 0, s->frame.width, s->frame.height);
	cl_expect(c, h_message, 1);
	logx(s, LOG_INFO, "session peer=%s shared=%d %dx%d", c->peer, p[0] != 0,
	    s->frame.width, s->frame.height);
	return 1;
}

static void
start_init(struct client *c)
{
	c->state = ST_INIT;
	cl_expect(c, h_client_init, 1);
}

/* -- client messages (RFB 7.5) -- */

static void
msg_set_pixel_format(struct client *c, struct rd *r)
{
	struct pixfmt pf;
	const char *why;
	int i;

	rd_bytes(r, 3);
	pf.bpp = rd_u8(r);
	pf.depth = rd_u8(r);
	pf.bigendian = rd_u8(r) != 0;
	pf.truecolour = rd_u8(r) != 0;
	for (i = 0; i < 3; i++)
		pf.max[i] = rd_u16(r);
	for (i = 0; i < 3; i++)
		pf.shift[i] = rd_u8(r);
	if ((why = pixfmt_check(&pf)) != NULL) {
		cl_fail(c, "SetPixelFormat bpp=%u: %s", pf.bpp, why);
		return;
	}
	pixfmt_apply(c, &pf);
	logx(c->srv, LOG_DEBUG, "peer=%s pixel format %ubpp max %u/%u/%u "
	    "shift %u/%u/%u %s", c->peer, pf.bpp, pf.max[0], pf.max[1],
	    pf.max[2], pf.shift[0], pf.shift[1], pf.shift[2],
	    pf.bigendian ? "big-endian" : "little-endian");
}

static size_t
len_set_encodings(struct client *c, const uint8_t *p)
{
	size_t n = (size_t)p[2] << 8 | p[3];

	if (n > ENCODINGS_MAX) {
		cl_fail(c, "SetEncodings with %zu entries (limit %d)", n,
		    ENCODINGS_MAX);
		return 0;
	}
	return 4 * n;
}

static void
msg_set_encodings(struct client *c, struct rd *r)
{
	unsigned n, i;
	int had_ext = c->enc_ext_desktop_size;

	rd_u8(r);
	n = rd_u16(r);
	c->enc_desktop_size = c->enc_ext_desktop_size = 0;
	for (i = 0; i < n; i++) {
		int32_t e = (int32_t)rd_u32(r);

		if (e == ENC_DESKTOP_SIZE)
			c->enc_desktop_size = 1;
		else if (e == ENC_EXT_DESKTOP_SIZE)
			c->enc_ext_desktop_size = 1;
	}
	/* ExtendedDesktopSize: the first update announces the screen */
	if (c->enc_ext_desktop_size && !had_ext) {
		c->size_announce = 1;
		c->size_reason = 0;
		c->size_status = 0;
	}
}

static void
msg_update_request(struct client *c, struct rd *r)
{
	const struct server *s = c->srv;
	int incremental = rd_u8(r);
	int x = rd_u16(r), y = rd_u16(r), w = rd_u16(r), h = rd_u16(r);

	/* clip to the screen */
	if (x > s->frame.width)
		x = s->frame.width;
	if (y > s->frame.height)
		y = s->frame.height;
	if (w > s->frame.width - x)
		w = s->frame.width - x;
	if (h > s->frame.height - y)
		h = s->frame.height - y;
	if (!incremental)
		dirty_mark(c, x, y, w, h);
	c->want_update = 1;
}

static void
msg_key(struct client *c, struct rd *r)
{
	int down = rd_u8(r);
	uint32_t keysym;

	rd_u16(r);
	keysym = rd_u32(r);
	fb_source.key(c->srv->fb, keysym, down);
}

static void
msg_pointer(struct client *c, struct rd *r)
{
	const struct server *s = c->srv;
	unsigned buttons = rd_u8(r);
	int x = rd_u16(r), y = rd_u16(r);

	if (x >= s->frame.width)
		x = s->frame.width - 1;
	if (y >= s->frame.height)
		y = s->frame.height - 1;
	fb_source.pointer(s->fb, x, y, buttons);
}

static size_t
len_cut_text(struct client *c, const uint8_t *p)
{
	uint32_t n = be32(p + 4);

	if (n > CUT_TEXT_MAX) {
		cl_fail(c, "ClientCutText of %lu bytes (limit %d)",
		    (unsigned long)n, CUT_TEXT_MAX);
		return 0;
	}
	return n;
}

static void
msg_cut_text(struct client *c, struct rd *r)
{
	uint32_t n;
	const uint8_t *text;

	rd_bytes(r, 3);
	n = rd_u32(r);
	if ((text = rd_bytes(r, n)) != NULL)
		fb_source.cut_text(c->srv->fb, (const char *)text, n);
}

static size_t
len_set_desktop_size(struct client *c, const uint8_t *p)
{
	if (p[6] > SCREENS_MAX) {
		cl_fail(c, "SetDesktopSize with %u screens (limit %d)", p[6],
		    SCREENS_MAX);
		return 0;
	}
	return (size_t)p[6] * 16;
}

static void
msg_set_desktop_size(struct client *c, struct rd *r)
{
	struct server *s = c->srv;
	int w, h, nscreens, ok;

	rd_u8(r);
	w = rd_u16(r);
	h = rd_u16(r);
	nscreens = rd_u8(r);
	if (!c->enc_ext_desktop_size) {
		cl_fail(c, "SetDesktopSize without ExtendedDesktopSize");
		return;
	}
	if (w == s->frame.width && h == s->frame.height)
		ok = 0;
	else if (nscreens < 1 || fb_source.resize == NULL)
		ok = -1;
	else
		ok = fb_source.resize(s->fb, w, h);
	logx(s, LOG_INFO, "peer=%s asked for %dx%d: %s", c->peer, w, h,
	    ok == 0 ? "done" : "refused");
	/* RFB: the requester hears reason 1 with the status */
	c->size_changed = 1;
	c->size_reason = 1;
	c->size_status = ok == 0 ? 0 : (nscreens < 1 ? 3 : 1);
}

struct msgtype {
	const char *name;
	size_t len;		/* fixed part, type byte included */
	size_t (*extra)(struct client *, const uint8_t *);
	void (*fn)(struct client *, struct rd *);
};

static const struct msgtype msgtab[256] = {
	[MSG_SET_PIXEL_FORMAT] = { "SetPixelFormat", 20, NULL,
	    msg_set_pixel_format },
	[MSG_SET_ENCODINGS] = { "SetEncodings", 4, len_set_encodings,
	    msg_set_encodings },
	[MSG_UPDATE_REQUEST] = { "FramebufferUpdateRequest", 10, NULL,
	    msg_update_request },
	[MSG_KEY] = { "KeyEvent", 8, NULL, msg_key },
	[MSG_POINTER] = { "PointerEvent", 6, NULL, msg_pointer },
	[MSG_CUT_TEXT] = { "ClientCutText", 8, len_cut_text, msg_cut_text },
	[MSG_SET_DESKTOP_SIZE] = { "SetDesktopSize", 8, len_set_desktop_size,
	    msg_set_desktop_size },
};

static size_t
h_message(struct client *c, const uint8_t *p, size_t n)
{
	const struct msgtype *m = &msgtab[p[0]];
	size_t len;
	struct rd r;

	if (m->name == NULL) {
		cl_fail(c, "unknown client message type %u", p[0]);
		return n;
	}
	len = m->len;
	if (n < len) {
		cl_expect(c, h_message, len);
		return 0;
	}
	if (m->extra != NULL) {
		len += m->extra(c, p);
		if (c->dead)
			return n;
		if (n < len) {
			cl_expect(c, h_message, len);
			return 0;
		}
	}
	r.p = p + 1;
	r.n = len - 1;
	r.err = 0;
	m->fn(c, &r);
	if (r.err && !c->dead)
		cl_fail(c, "%s shorter than its fields", m->name);
	cl_expect(c, h_message, 1);
	return len;
}

/* ---------------------------------------------------------------------
 * Client I/O.
 * ------------------------------------------------------------------- */

static void
cl_process(struct client *c)
{
	while (!c->dead && c->state != ST_CLOSING) {
		size_t avail = buf_used(&c->in), used;

		if (avail < c->need)
			break;
		used = c->handler(c, c->in.data + c->in.off, avail);
		if (used == 0) {
			if (c->need <= avail && !c->dead)
				cl_fail(c, "internal: %s handler stalled",
				    state_name[c->state]);
			break;
		}
		c->in.off += used;
	}
	if (c->in.off == c->in.len)
		c->in.off = c->in.len = 0;
}

static void
cl_read(struct client *c)
{
	size_t room = IN_CHUNK;
	ssize_t r;

	if (c->state == ST_CLOSING) {	/* drain and ignore */
		uint8_t junk[512];

		if (read(c->fd, junk, sizeof junk) == 0)
			cl_fail(c, "%s", c->why);
		return;
	}
	if (c->need > buf_used(&c->in) && c->need - buf_used(&c->in) > room)
		room = c->need - buf_used(&c->in);
	if (buf_reserve(&c->in, room) < 0) {
		cl_fail(c, "out of memory for input");
		return;
	}
	r = read(c->fd, c->in.data + c->in.len, room);
	if (r == 0) {
		cl_fail(c, "viewer closed the connection in state %s",
		    state_name[c->state]);
		return;
	}
	if (r < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			cl_fail(c, "read: %s", strerror(errno));
		return;
	}
	c->in.len += (size_t)r;
	cl_process(c);
}

static void
cl_flush(struct client *c)
{
	ssize_t w;

	while (!c->dead && buf_used(&c->out) > 0) {
		w = write(c->fd, c->out.data + c->out.off, buf_used(&c->out));
		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				cl_fail(c, "write: %s", strerror(errno));
			return;
		}
		c->out.off += (size_t)w;
		c->last_out = now_ms();
	}
	if (buf_used(&c->out) == 0) {
		c->out.off = c->out.len = 0;
		if (c->state == ST_CLOSING)
			cl_fail(c, "%s", c->why);
	}
}

static void
cl_free(struct client *c)
{
	struct server *s = c->srv;
	double secs = (now_ms() - c->t_start) / 1000.0;

	logx(s, LOG_AUTH | LOG_INFO, "close peer=%s user=%s secs=%.1f reason=%s",
	    c->peer, c->user[0] ? c->user : "-", secs, c->why);
	if (c->state == ST_NORMAL)
		fb_source.release(s->fb);
	close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c->dirty);
	free(c);
}

static void
peer_name(struct client *c, const struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, in6->sin6_addr.s6_addr + 12, host,
			    sizeof host);
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
	} else {
		c->is_unix = 1;
		snprintf(c->addr, sizeof c->addr, "unix");
		snprintf(c->peer, sizeof c->peer, "unix");
		return;
	}
	snprintf(c->addr, sizeof c->addr, "%s", host);
	snprintf(c->peer, sizeof c->peer, ss->ss_family == AF_INET6 &&
	    strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static struct client *
cl_new(struct server *s, int fd, const struct sockaddr_storage *ss)
{
	struct client *c;
	int one = 1;

	if (set_nonblock(fd) < 0 || (c = calloc(1, sizeof *c)) == NULL) {
		logx(s, LOG_ERR, "cannot take a connection: %s",
		    strerror(errno));
		close(fd);
		return NULL;
	}
	c->srv = s;
	c->fd = fd;
	c->pfd = -1;
	c->t_start = c->last_out = now_ms();
	c->deadline = c->t_start + HANDSHAKE_MS;
	peer_name(c, ss);
	if (!c->is_unix)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->state = ST_VERSION;
	cl_expect(c, h_version, 12);
	c->next = s->clients;
	s->clients = c;
	s->nclients++;
	logx(s, LOG_INFO, "connect peer=%s", c->peer);
	/* the greeting goes at once: gtk-vnc waits 2 s for it otherwise */
	wr_bytes(c, RFB_GREETING, 12);
	cl_flush(c);
	return c;
}

/* ---------------------------------------------------------------------
 * Listeners and the poll loop.
 * ------------------------------------------------------------------- */

static void
accept_all(struct server *s, const struct listener *l)
{
	while (s->nclients < s->max_clients) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd;

		memset(&ss, 0, sizeof ss);
		fd = accept(l->fd, (struct sockaddr *)&ss, &sl);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				logx(s, LOG_ERR, "accept on %s: %s", l->name,
				    strerror(errno));
			return;
		}
		if (l->is_unix)
			ss.ss_family = AF_UNIX;
		cl_new(s, fd, &ss);
		s->served++;
	}
}

static void
reap(struct server *s)
{
	struct client **pp = &s->clients, *c;

	while ((c = *pp) != NULL) {
		if (c->dead) {
			*pp = c->next;
			s->nclients--;
			cl_free(c);
		} else {
			pp = &c->next;
		}
	}
}

static void
check_deadlines(struct server *s, long long now)
{
	struct client *c;

	for (c = s->clients; c != NULL; c = c->next) {
		if (c->dead)
			continue;
		if (c->deadline && now >= c->deadline)
			cl_fail(c, c->state == ST_CLOSING ? "%s" :
			    "handshake not finished in time (state %s)",
			    c->state == ST_CLOSING ? c->why :
			    state_name[c->state]);
		else if (buf_used(&c->out) > 0 && now - c->last_out >= STALL_MS)
			cl_fail(c, "viewer read nothing for %d s", STALL_MS /
			    1000);
	}
}

static int
min_timeout(int t, long long due, long long now)
{
	long long d = due - now;

	if (d < 0)
		d = 0;
	if (d > INT_MAX)
		d = INT_MAX;
	return t < 0 || d < t ? (int)d : t;
}

static void
send_updates(struct server *s, long long now)
{
	struct client *c;
	int waiting = 0;

	for (c = s->clients; c != NULL; c = c->next)
		if (cl_waiting(c) && buf_used(&c->out) < OUT_LOW)
			waiting = 1;
	if (!waiting)
		return;
	if (now >= s->grab_due) {
		int ms;

		fb_source.grab(s->fb);
		ms = fb_source.next_ms(s->fb);
		s->grab_due = ms < 0 ? LLONG_MAX : now + ms;
	}
	for (c = s->clients; c != NULL; c = c->next)
		if (cl_waiting(c) && buf_used(&c->out) < OUT_LOW) {
			cl_update(c);
			cl_flush(c);
		}
}

static int
serve(struct server *s)
{
	struct pollfd *pfd;
	size_t npfd = (size_t)s->nlst + s->max_clients + 1;
	struct client *c;
	int i, n, timeout, fbfd = fb_source.fd(s->fb), fbi = -1;

	if ((pfd = calloc(npfd, sizeof *pfd)) == NULL)
		die(1, "out of memory");
	while (!got_stop) {
		long long now = now_ms();

		n = 0;
		timeout = -1;
		if (s->nclients < s->max_clients)
			for (i = 0; i < s->nlst; i++) {
				pfd[n].fd = s->lst[i].fd;
				pfd[n++].events = POLLIN;
			}
		if (fbfd >= 0) {
			fbi = n;
			pfd[n].fd = fbfd;
			pfd[n++].events = POLLIN;
		}
		for (c = s->clients; c != NULL; c = c->next) {
			c->pfd = n;
			pfd[n].fd = c->fd;
			pfd[n].events = POLLIN;
			if (buf_used(&c->out) > 0)
				pfd[n].events |= POLLOUT;
			n++;
			if (c->deadline)
				timeout = min_timeout(timeout, c->deadline, now);
			if (buf_used(&c->out) > 0)
				timeout = min_timeout(timeout,
				    c->last_out + STALL_MS, now);
			if (cl_waiting(c) && buf_used(&c->out) < OUT_LOW &&
			    s->grab_due != LLONG_MAX)
				timeout = min_timeout(timeout, s->grab_due, now);
		}
		if (poll(pfd, (nfds_t)n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			die(1, "poll: %s", strerror(errno));
		}
		now = now_ms();
		if (s->nclients < s->max_clients)
			for (i = 0; i < s->nlst; i++)
				if (pfd[i].revents & POLLIN)
					accept_all(s, &s->lst[i]);
		if (fbfd >= 0 && (pfd[fbi].revents & POLLIN)) {
			fb_source.readable(s->fb);
			s->grab_due = now;
		}
		for (c = s->clients; c != NULL; c = c->next) {
			if (c->pfd < 0 || c->dead)
				continue;
			if (pfd[c->pfd].revents & (POLLIN | POLLHUP | POLLERR))
				cl_read(c);
			if (!c->dead && (pfd[c->pfd].revents & POLLOUT))
				cl_flush(c);
			c->pfd = -1;
		}
		check_deadlines(s, now);
		send_updates(s, now);
		for (c = s->clients; c != NULL; c = c->next)
			if (!c->dead && buf_used(&c->out) > 0)
				cl_flush(c);
		reap(s);
		if (s->once && s->served > 0 && s->nclients == 0)
			break;
	}
	free(pfd);
	return 0;
}

static int
listen_on(struct server *s, const struct addrinfo *ai, int v6only,
    const char *what)
{
	struct listener *l;
	int fd, one = 1;
	char host[INET6_ADDRSTRLEN] = "?";

	if (s->nlst >= MAX_LISTENERS)
		die(2, "too many listening addresses (limit %d)", MAX_LISTENERS);
	if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0 ||
	    set_nonblock(fd) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	l = &s->lst[s->nlst++];
	l->fd = fd;
	l->is_unix = 0;
	if (ai->ai_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr,
		    host, sizeof host);
		snprintf(l->name, sizeof l->name, "[%s]:%s", host, what);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr,
		    host, sizeof host);
		snprintf(l->name, sizeof l->name, "%s:%s", host, what);
	}
	return 0;
}

/* -l ADDR for each address; a default address that this host lacks
 * (no IPv6) is skipped, an explicit one is an error. */
static void
listen_tcp(struct server *s, char **addrs, int naddrs, const char *port)
{
	static char *defaults[] = { "127.0.0.1", "::1" };
	int i, explicit = naddrs > 0, any_v4 = 0;

	if (!explicit) {
		addrs = defaults;
		naddrs = 2;
	}
	for (i = 0; i < naddrs; i++)
		if (strchr(addrs[i], ':') == NULL)
			any_v4 = 1;
	for (i = 0; i < naddrs; i++) {
		struct addrinfo hints, *res, *ai;
		int e;

		memset(&hints, 0, sizeof hints);
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE;
		if ((e = getaddrinfo(addrs[i], port, &hints, &res)) != 0)
			die(explicit ? 2 : 1, "-l %s: %s", addrs[i],
			    gai_strerror(e));
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			/* "::" alone means every address, IPv4 too */
			int v6only = !(strcmp(addrs[i], "::") == 0 && !any_v4);

			if (listen_on(s, ai, v6only, port) == 0)
				continue;
			if (!explicit && (errno == EADDRNOTAVAIL ||
			    errno == EAFNOSUPPORT)) {
				logx(s, LOG_WARNING, "not listening on %s: %s",
				    addrs[i], strerror(errno));
				continue;
			}
			die(1, "cannot listen on %s port %s: %s", addrs[i],
			    port, strerror(errno));
		}
		freeaddrinfo(res);
	}
}

static void
listen_unix(struct server *s, const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	struct listener *l;
	int fd;

	if (strlen(path) >= sizeof sun.sun_path)
		die(2, "-U %s: path too long (limit %zu)", path,
		    sizeof sun.sun_path - 1);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (lstat(path, &st) == 0) {
		/* a stale socket from a dead server may go; anything else not */
		int probe = socket(AF_UNIX, SOCK_STREAM, 0);

		if (!S_ISSOCK(st.st_mode))
			die(1, "-U %s: exists and is not a socket", path);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sun,
		    sizeof sun) == 0)
			die(1, "-U %s: another server is listening there", path);
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 ||
	    listen(fd, 16) < 0 || set_nonblock(fd) < 0)
		die(1, "cannot listen on %s: %s", path, strerror(errno));
	if (s->nlst >= MAX_LISTENERS)
		die(2, "too many listening addresses (limit %d)", MAX_LISTENERS);
	l = &s->lst[s->nlst++];
	l->fd = fd;
	l->is_unix = 1;
	snprintf(l->name, sizeof l->name, "unix:%s", path);
	s->unix_path = path;
}

/* ---------------------------------------------------------------------
 * Configuration files.
 * ------------------------------------------------------------------- */

/* Open a secret file; refuse it if group or others may read or write. */
static FILE *
open_secret(const char *opt, const char *path)
{
	struct stat st;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		die(1, "%s %s: %s", opt, path, strerror(errno));
	if (fstat(fileno(f), &st) < 0)
		die(1, "%s %s: %s", opt, path, strerror(errno));
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		die(2, "%s %s: group or others may access it; chmod 600 it",
		    opt, path);
	return f;
}

static void
load_vnc_password(struct server *s, const char *path)
{
	char line[256];
	uint8_t key[8] = { 0 };
	size_t n, i;
	FILE *f = open_secret("-w", path);

	if (fgets(line, sizeof line, f) == NULL)
		die(2, "-w %s: empty file", path);
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n == 0)
		die(2, "-w %s: the password is empty", path);
	if (n > VNC_PASSWD_MAX)
		logx(s, LOG_WARNING, "-w %s: VNC authentication uses only the "
		    "first %d characters", path, VNC_PASSWD_MAX);
	/* RFB's DES key: each byte's bits reversed (rfbproto, VNC Auth) */
	for (i = 0; i < VNC_PASSWD_MAX && i < n; i++) {
		uint8_t b = (uint8_t)line[i], r = 0;
		int k;

		for (k = 0; k < 8; k++)
			if (b & (1 << k))
				r |= (uint8_t)(0x80 >> k);
		key[i] = r;
	}
	memset(line, 0, sizeof line);
	if (!des_set_key(&s->vnc_des, key))
		die(2, "-w %s: this password makes a weak DES key; choose "
		    "another", path);
	memset(key, 0, sizeof key);
	s->have_vnc_key = 1;
}

static const struct sectype *
sectype_by_name(const char *name, size_t len)
{
	int i;

	for (i = 0; i < NSECTYPES; i++)
		if (strlen(sectypes[i].name) == len &&
		    strncmp(sectypes[i].name, name, len) == 0)
			return &sectypes[i];
	return NULL;
}

static void
parse_sectypes(struct server *s, const char *list)
{
	const char *p = list;

	s->nsec_tcp = 0;
	while (*p) {
		size_t len = strcspn(p, ",");
		const struct sectype *st = sectype_by_name(p, len);
		int i;

		if (st == NULL)
			die(2, "-s: unknown security type '%.*s' (known: "
			    "x509sasl,tlssasl,sasl,x509plain,tlsplain,x509vnc,"
			    "tlsvnc,x509none,tlsnone,vnc,none)", (int)len, p);
		if (st->start == NULL)
			die(2, "-s %s: this build has no support for it yet",
			    st->name);
		for (i = 0; i < s->nsec_tcp; i++)
			if (s->sec_tcp[i] == st)
				die(2, "-s: %s listed twice", st->name);
		s->sec_tcp[s->nsec_tcp++] = st;
		p += len;
		if (*p == ',')
			p++;
	}
	if (s->nsec_tcp == 0)
		die(2, "-s: empty list");
	memcpy(s->sec_unix, s->sec_tcp, sizeof s->sec_tcp);
	s->nsec_unix = s->nsec_tcp;
}

/* ---------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------- */

static void
usage(FILE *f)
{
	fprintf(f,
"usage: vncsasl [-1vV] [-l addr]... [-p port] [-U path] [-s types]\n"
"               [-w file] [-x arg] [-n name] [-M max] [-L stderr|syslog]\n"
"  -l ADDR   listen address, repeatable (default 127.0.0.1 and ::1)\n"
"  -p PORT   TCP port, 0 for none (default 5900)\n"
"  -U PATH   also listen on a UNIX socket\n"
"  -s LIST   security types offered, in order (none,vnc)\n"
"  -w FILE   VNC authentication password (first line, mode 600)\n"
"  -x ARG    framebuffer source: %s\n"
"  -n NAME   desktop name (default: host name)\n"
"  -M N      most clients at once (default %d)\n"
"  -1        exit after the first client leaves\n"
"  -L DEST   log to stderr (default) or syslog\n"
"  -v        verbose log\n"
"  -V        print version and build options\n",
	    fb_source.arg_help, MAX_CLIENTS);
}

static void
version(void)
{
	printf("vncsasl %s\n", VNCSASL_VERSION);
	printf("framebuffer: %s\n", fb_source.name);
	printf("tls: gnutls %s (VeNCrypt not in this build yet)\n",
	    gnutls_check_version(NULL));
	printf("security: none vnc\n");
	printf("encodings: raw; pseudo: DesktopSize ExtendedDesktopSize\n");
}

static long
parse_num(int opt, const char *arg, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (end == arg || *end != '\0' || errno || v < lo || v > hi)
		die(2, "-%c %s: want a number from %ld to %ld", opt, arg, lo, hi);
	return v;
}

int
main(int argc, char **argv)
{
	static struct server srv;
	struct server *s = &srv;
	char *addrs[MAX_LISTENERS], err[256];
	const char *port = "5900", *fbarg = NULL, *seclist = NULL;
	const char *vncpass = NULL, *unix_path = NULL;
	int naddrs = 0, ch, i;
	struct sigaction sa;

	s->max_clients = MAX_CLIENTS;
	opterr = 0;		/* our own one-line errors, exit status 2 */
	while ((ch = getopt(argc, argv, ":1hl:p:U:s:w:x:n:M:L:vV")) != -1) {
		switch (ch) {
		case '1':
			s->once = 1;
			break;
		case 'l':
			if (naddrs >= MAX_LISTENERS)
				die(2, "-l: too many addresses (limit %d)",
				    MAX_LISTENERS);
			addrs[naddrs++] = optarg;
			break;
		case 'p':
			parse_num('p', optarg, 0, 65535);
			port = optarg;
			break;
		case 'U':
			unix_path = optarg;
			break;
		case 's':
			seclist = optarg;
			break;
		case 'w':
			vncpass = optarg;
			break;
		case 'x':
			fbarg = optarg;
			break;
		case 'n':
			if (strlen(optarg) > NAME_MAX_LEN)
				die(2, "-n: name longer than %d bytes",
				    NAME_MAX_LEN);
			snprintf(s->name, sizeof s->name, "%s", optarg);
			break;
		case 'M':
			s->max_clients = (int)parse_num('M', optarg, 1, 4096);
			break;
		case 'L':
			if (strcmp(optarg, "syslog") == 0)
				s->use_syslog = 1;
			else if (strcmp(optarg, "stderr") != 0)
				die(2, "-L %s: want stderr or syslog", optarg);
			break;
		case 'v':
			s->verbose = 1;
			break;
		case 'V':
			version();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			die(2, "option -%c needs a value (vncsasl -h for help)",
			    optopt);
			break;
		default:
			die(2, "unknown option -%c (vncsasl -h for help)", optopt);
		}
	}
	if (optind != argc)
		die(2, "unexpected argument '%s'", argv[optind]);

	if (seclist == NULL)
		die(2, "-s: no security type given; this build offers none,vnc");
	parse_sectypes(s, seclist);
	if (vncpass != NULL)
		load_vnc_password(s, vncpass);
	for (i = 0; i < s->nsec_tcp; i++)
		if (s->sec_tcp[i]->start == auth_vnc && !s->have_vnc_key)
			die(2, "-s %s needs a password file (-w)",
			    s->sec_tcp[i]->name);
	if (s->name[0] == '\0' && gethostname(s->name, sizeof s->name - 1) < 0)
		snprintf(s->name, sizeof s->name, "vncsasl");

	if (s->use_syslog)
		openlog("vncsasl", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	if (gnutls_global_init() < 0)
		die(1, "cannot initialise GnuTLS");
	s->host.srv = s;
	s->host.damage = srv_damage;
	s->host.resized = srv_resized;
	s->host.cut_text = srv_cut_text;
	if ((s->fb = fb_source.open(fbarg, &s->host, err, sizeof err)) == NULL)
		die(1, "framebuffer %s: %s", fb_source.name, err);
	if (grid_setup(s) < 0)
		die(1, "out of memory");

	if (strcmp(port, "0") != 0)
		listen_tcp(s, addrs, naddrs, port);
	else if (naddrs > 0)
		die(2, "-l given but -p 0 disables TCP");
	if (unix_path != NULL)
		listen_unix(s, unix_path);
	if (s->nlst == 0)
		die(2, "nothing to listen on (-p 0 and no -U)");

	{
		char line[MAX_LISTENERS * (INET6_ADDRSTRLEN + 24)];
		size_t off = 0;

		for (i = 0; i < s->nlst; i++)
			off += (size_t)snprintf(line + off, sizeof line - off,
			    "%s%s", i ? " " : "", s->lst[i].name);
		/* the readiness line scripts wait for; always on stderr */
		fprintf(stderr, "vncsasl: listening on %s\n", line);
		if (s->use_syslog)
			logx(s, LOG_INFO, "listening on %s", line);
	}
	serve(s);

	while (s->clients != NULL) {
		struct client *c = s->clients;

		s->clients = c->next;
		if (!c->dead)
			snprintf(c->why, sizeof c->why, "server shutting down");
		cl_free(c);
	}
	for (i = 0; i < s->nlst; i++)
		close(s->lst[i].fd);
	if (s->unix_path != NULL)
		unlink(s->unix_path);
	fb_source.close(s->fb);
	gnutls_global_deinit();
	logx(s, LOG_INFO, "exit");
	return 0;
}
