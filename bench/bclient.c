/*
 * bclient.c - the benchmark viewer of make bench: N RFB 3.8 connections in
 * one poll() loop, security None, that ask for what a real viewer asks
 * for and count what arrives.  Nothing is decoded: every message is parsed
 * to its boundaries (for Tight and ZRLE the lengths are enough), and the
 * pixels of each finished rectangle are counted.
 *
 *   bclient -p PORT | -U PATH  -e PROFILE [-n N] [-w WARMUP] [-t SECS]
 *           [-P PID] [-X PID] [-v]
 *
 * -U connects through a UNIX socket (bench/relay's, for a link with a
 * round-trip time) instead of TCP to 127.0.0.1:PORT.  A PROFILE is what
 * one real viewer sends, taken from its source:
 *
 *   gtk    gtk-vnc 1.3.1 VncDisplay with lossy encoding allowed
 *          (vncdisplay.c on_initialized): TightJPEG5, Tight, ..., ZRLE,
 *          Hextile, RRE, CopyRect, Raw; the server's own pixel format;
 *          an incremental request after every data rectangle, as its
 *          framebuffer-update handler does.
 *   lvc    libvncclient 0.9.14 SetFormatAndEncodings with no encodings
 *          string and JPEG off (lossless): CopyRect, Tight, Hextile, Zlib,
 *          ZRLE, ...; CompressLevel 3; the pixel format rfbGetClient(8,3,4)
 *          makes (red at bit 0, so XRGB servers translate); the next
 *          request once an update is complete.  (On the same host it
 *          would put Raw first; a bench link stands for a remote one.)
 *   tiger  TigerVNC 1.12 vncviewer defaults (CConnection::updateEncodings):
 *          cursors, ExtendedClipboard, ContinuousUpdates, Fence, Tight
 *          first, CompressLevel 2, QualityLevel 8; the next request when
 *          an update starts; continuous updates enabled after the first
 *          update once the server sent EndOfContinuousUpdates; fences
 *          answered.  Without them it stays request/response.
 *   zrle   ZRLE alone, the next request once an update is complete.
 *   raw    Raw alone, likewise (for checking the instrument).
 *
 * Connections are opened at most HANDSHAKES_MAX at a time before their
 * ServerInit (servers cap unauthenticated connections per address).  After
 * every connection has its first full picture (or after WARMUP seconds)
 * the measurement window of SECS seconds starts.  -P: the server's CPU
 * time over the window (/proc/PID/stat, all threads) and VmRSS at its end;
 * -X: the X server's CPU time.  One line on stdout:
 *
 *   n=N prof=P fps=F fps_min=F ups=U ups_min=U mpxs=M mbs=M kbf=K kbu=K
 *   lat=MS lat_n=C cpu=PCT xcpu=PCT rss=MIB ttff=MS ttff_max=MS cu=0|1
 *   fence=0|1 noinit=K used=ENC:PCT,...
 *
 * fps: frames a second *equivalent* per connection - pixels of finished
 * rectangles a second over the screen's pixels (servers split a frame
 * into different numbers of updates, so update counts mislead); mean and
 * slowest.  ups: FramebufferUpdates with pixels a second, likewise.  mpxs,
 * mbs: megapixels and megabytes (everything the servers sent) a second, all
 * connections.  kbf: kilobytes per frame equivalent; kbu: kilobytes per
 * update (-1: nothing delivered).  lat: median milliseconds from the oldest
 * unanswered FramebufferUpdateRequest to the end of the update that
 * answers it, or, with continuous updates, the round trip of a Fence sent
 * every FENCE_EVERY (queued behind the updates already on their way);
 * lat_n samples; -1 none.  ttff: milliseconds from connect() to the end of
 * the update that completed the first picture (median and slowest;
 * 1e9 = never).  cu, fence: continuous updates were on, the server spoke
 * Fence.  noinit: connections that never got their ServerInit (counted as
 * delivering nothing).  used: share of the pixels per encoding ("jpeg" for
 * Tight JPEG, "fill" for its solid rectangles).
 * Exit 1 with a reason if a connection fails or the server sends what this
 * does not parse.  Every wait is bounded.
 */
#define _DEFAULT_SOURCE

#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CONNS_MAX	64
#define RD_CHUNK	(256 * 1024)
#define NAME_MAX_LEN	4096	/* desktop name we accept */
#define CONNECT_SECS	10	/* the server may still be starting */
#define HANDSHAKES_MAX	4	/* connections before ServerInit at once */
#define LAT_MAX		8192	/* latency samples kept per connection */
#define FENCE_EVERY	0.1	/* seconds between latency fences (CU) */
#define WRITE_SECS	5	/* a write that cannot finish: the server hangs */
#define SCREEN_MAX	16384	/* width or height we accept */
#define TIGHT_MIN_ZLIB	12	/* Tight data shorter than this is not zlib'd */

enum {				/* RFB numbers */
	ENC_RAW = 0, ENC_COPYRECT = 1, ENC_RRE = 2, ENC_CORRE = 4,
	ENC_HEXTILE = 5, ENC_ZLIB = 6, ENC_TIGHT = 7, ENC_ULTRA = 9,
	ENC_ZRLE = 16, ENC_ZYWRLE = 17,
	ENC_QUALITY5 = -27, ENC_QUALITY8 = -24, ENC_COMPRESS2 = -254,
	ENC_COMPRESS3 = -253,
	ENC_DESKTOPSIZE = -223, ENC_LASTRECT = -224, ENC_POINTERPOS = -232,
	ENC_CURSOR = -239, ENC_XCURSOR = -240, ENC_POINTERCHANGE = -257,
	ENC_QEMUKEY = -258, ENC_AUDIO = -259, ENC_LEDSTATE = -261,
	ENC_DESKTOPNAME = -307, ENC_EXTDESKTOPSIZE = -308, ENC_XVP = -309,
	ENC_FENCE = -312, ENC_CU = -313, ENC_ALPHACURSOR = -314,
	ENC_WMVI = 0x574D5669, ENC_VMCURSOR = 0x574d5664,
	ENC_VMCURSORPOS = 0x574d5666, ENC_VMLED = 0x574d5668,
	ENC_EXTCLIPBOARD = (int32_t)0xC0A1E5CE,
	ENC_ULTRAZIP = (int32_t)0xFFFF0009, ENC_KBDLED = (int32_t)0xFFFE0000,
	ENC_SUPMSGS = (int32_t)0xFFFE0001, ENC_SUPENCS = (int32_t)0xFFFE0002,
	ENC_SERVERID = (int32_t)0xFFFE0003,
};

enum pace { PACE_UPDATE, PACE_RECT, PACE_START };
enum pf { PF_SERVER, PF_XRGB, PF_RGBX };

struct profile {
	const char *name;
	enum pf pf;
	enum pace pace;
	int cu;			/* ContinuousUpdates + Fence, as TigerVNC */
	const int32_t *encs;
	int nencs;
};

static const int32_t encs_gtk[] = {
	ENC_QUALITY5, ENC_TIGHT, ENC_XVP, ENC_QEMUKEY, ENC_LEDSTATE,
	ENC_EXTDESKTOPSIZE, ENC_DESKTOPSIZE, ENC_DESKTOPNAME, ENC_LASTRECT,
	ENC_WMVI, ENC_AUDIO, ENC_ALPHACURSOR, ENC_CURSOR, ENC_XCURSOR,
	ENC_POINTERCHANGE, ENC_ZRLE, ENC_HEXTILE, ENC_RRE, ENC_COPYRECT,
	ENC_RAW,
};
static const int32_t encs_lvc[] = {
	ENC_COPYRECT, ENC_TIGHT, ENC_HEXTILE, ENC_ZLIB, ENC_ZRLE, ENC_ZYWRLE,
	ENC_ULTRA, ENC_ULTRAZIP, ENC_CORRE, ENC_RRE, ENC_COMPRESS3,
	ENC_KBDLED, ENC_DESKTOPSIZE, ENC_EXTDESKTOPSIZE, ENC_LASTRECT,
	ENC_SUPMSGS, ENC_SUPENCS, ENC_SERVERID, ENC_XVP, ENC_QEMUKEY,
};
static const int32_t encs_tiger[] = {
	ENC_ALPHACURSOR, ENC_VMCURSOR, ENC_CURSOR, ENC_XCURSOR,
	ENC_VMCURSORPOS, ENC_DESKTOPSIZE, ENC_EXTDESKTOPSIZE, ENC_DESKTOPNAME,
	ENC_LASTRECT, ENC_EXTCLIPBOARD, ENC_CU, ENC_FENCE, ENC_QEMUKEY,
	ENC_TIGHT, ENC_COPYRECT, ENC_ZRLE, ENC_HEXTILE, ENC_RRE, ENC_RAW,
	ENC_COMPRESS2, ENC_QUALITY8,
};
static const int32_t encs_zrle[] = { ENC_ZRLE };
static const int32_t encs_raw[] = { ENC_RAW };

#define LEN(a)	((int)(sizeof(a) / sizeof((a)[0])))
static const struct profile profiles[] = {
	{ "gtk", PF_SERVER, PACE_RECT, 0, encs_gtk, LEN(encs_gtk) },
	{ "lvc", PF_RGBX, PACE_UPDATE, 0, encs_lvc, LEN(encs_lvc) },
	{ "tiger", PF_XRGB, PACE_START, 1, encs_tiger, LEN(encs_tiger) },
	{ "zrle", PF_XRGB, PACE_UPDATE, 0, encs_zrle, LEN(encs_zrle) },
	{ "raw", PF_XRGB, PACE_UPDATE, 0, encs_raw, LEN(encs_raw) },
};

/* what the pixels came in, for "used=" */
enum used { U_RAW, U_COPYRECT, U_RRE, U_HEXTILE, U_ZLIB, U_TIGHT, U_FILL,
	U_JPEG, U_ZRLE, U_OTHER, U_N };
static const char *used_name[U_N] = { "raw", "copyrect", "rre", "hextile",
	"zlib", "tight", "fill", "jpeg", "zrle", "other" };

enum st {
	S_VERSION, S_NSEC, S_SECTYPES, S_SECRESULT, S_INIT, S_NAME,
	S_MSG, S_UPD, S_RECT, S_RECT_END, S_NEXT_RECT, S_LEN32, S_EXTDS, S_CUT, S_CMAP,
	S_FENCE, S_FENCE_DATA, S_XVP, S_ALPHA, S_VMCURSOR, S_RRE, S_HEX_TILE,
	S_HEX_HDR, S_TIGHT_CTL, S_TIGHT_FILTER, S_TIGHT_PAL, S_TIGHT_PAL_END,
	S_TIGHT_LEN, S_WMVI, S_SKIP,
};

struct conn {
	int fd;
	enum st st;
	uint8_t hdr[80];	/* fence payloads are at most 64 bytes */
	size_t need, have;	/* header bytes wanted and buffered */
	uint64_t skip;		/* bytes to skip (S_SKIP) */
	enum st after;		/* state after the skip */
	size_t after_need;
	int rects;		/* rectangles left in this update, -1: LastRect */
	int w, h;		/* screen */
	int bpp, tpx;		/* bytes per pixel; per Tight TPIXEL */
	int rx, ry, rw, rh;	/* current rectangle */
	int32_t enc;
	enum used used;		/* of the current rectangle */
	int hx, hy;		/* Hextile: current tile */
	int hsub;		/* Hextile: subencoding of the tile */
	int tfilter, tcolors;	/* Tight: filter, palette size */
	uint32_t tlen;		/* Tight: compact length so far */
	int tlen_bytes;
	double t0, ttff;
	uint8_t *cover;		/* pixels seen, until the picture is whole */
	size_t uncovered;
	int srv_cu, srv_fence, cu_on;
	uint32_t fence_flags;	/* of the Fence being read */
	double req_oldest;	/* unanswered request, 0: none */
	int last_incr;		/* incremental flag of the last request */
	double upd_req;		/* the request this update answers */
	double fence_sent;	/* our latency fence in flight, 0: none */
	double fence_last;	/* when the last one was sent */
	uint32_t fence_seq;
	uint64_t updates, bytes, pixels, upd_pixels;	/* in the window */
	uint64_t used_px[U_N];
	uint64_t pos;		/* bytes the parser has consumed */
	uint64_t rect_start;	/* pos at the current rectangle's header */
	uint64_t chk_rects[U_N][3], chk_px[U_N], chk_bytes[U_N];	/* -c */
	uint64_t chk_updates;
	double lat[LAT_MAX];
	int nlat;
};

static const struct profile *prof;
static int check, draining;	/* -c: count everything, then drain */
static struct profile custom;		/* -E: a profile with another list */
static int32_t custom_encs[64];
static int measuring, verbose;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *fmt, long arg)
{
	fprintf(stderr, "bclient: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

static void
dies(const char *fmt, const char *arg)
{
	fprintf(stderr, "bclient: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

static void
send_all(struct conn *c, const void *p, size_t n)
{
	const uint8_t *b = p;
	double t_end = now_s() + WRITE_SECS;

	while (n > 0) {
		ssize_t w = write(c->fd, b, n);

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pfd = { c->fd, POLLOUT, 0 };

			if (now_s() > t_end)
				dies("%s", "write timed out");
			poll(&pfd, 1, 100);
			continue;
		}
		if (w <= 0)
			dies("write: %s", strerror(errno));
		b += w;
		n -= (size_t)w;
	}
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
be(const uint8_t *p, int n)
{
	uint32_t v = 0;

	while (n-- > 0)
		v = v << 8 | *p++;
	return v;
}

static void
request(struct conn *c, int incremental)
{
	uint8_t m[10] = { 3, (uint8_t)incremental, 0, 0, 0, 0,
	    (uint8_t)(c->w >> 8), (uint8_t)c->w, (uint8_t)(c->h >> 8),
	    (uint8_t)c->h };

	if (draining)
		return;
	if (c->req_oldest == 0)
		c->req_oldest = now_s();
	c->last_incr = incremental;
	send_all(c, m, sizeof m);
}

/*
 * gtk-vnc 1.3.1 after a pseudo-rectangle (vnc_connection_framebuffer_update
 * and VncDisplay's resize handler): cursors, LED state, key-event and name
 * notices resend the last request as it was; DesktopSize asks for the
 * whole screen, ExtendedDesktopSize likewise but incremental.  Without
 * this a server that answers a request with a notice alone (TigerVNC
 * does) would wait for a request that never comes.
 */
static void
gtk_after_pseudo(struct conn *c)
{
	switch (c->enc) {
	case ENC_POINTERCHANGE:
	case ENC_LEDSTATE:
	case ENC_CURSOR:
	case ENC_XCURSOR:
	case ENC_QEMUKEY:
	case ENC_DESKTOPNAME:
	case ENC_ALPHACURSOR:
		request(c, c->last_incr);
		break;
	case ENC_DESKTOPSIZE:
		request(c, 0);
		break;
	case ENC_EXTDESKTOPSIZE:
		request(c, 1);
		break;
	default:
		break;
	}
}

/* a Fence request whose answer times the queue to us (CU latency) */
static void
fence_probe(struct conn *c)
{
	uint8_t m[13] = { 248, 0, 0, 0, 0x80, 0, 0, 0, 4 };

	put32(m + 9, ++c->fence_seq);
	c->fence_sent = c->fence_last = now_s();
	send_all(c, m, sizeof m);
}

static void step(struct conn *);

/* the profile lists encoding e */
static int
asked(int32_t e)
{
	int i;

	for (i = 0; i < prof->nencs; i++)
		if (prof->encs[i] == e)
			return 1;
	return 0;
}
static void expect(struct conn *, enum st, size_t);

/* A Fence's payload is in: answer a request (flags 0, as TigerVNC's
 * viewer does), or time the answer to our own. */
static void
fence_done(struct conn *c)
{
	size_t len = c->need;

	if (c->fence_flags & 0x80000000u) {
		uint8_t m[9 + 64] = { 248 };

		m[8] = (uint8_t)len;
		memcpy(m + 9, c->hdr, len);
		send_all(c, m, 9 + len);
	} else if (len == 4 && c->fence_sent > 0 &&
	    be(c->hdr, 4) == c->fence_seq) {
		if (measuring && c->nlat < LAT_MAX)
			c->lat[c->nlat++] = now_s() - c->fence_sent;
		c->fence_sent = 0;
	}
	expect(c, S_MSG, 1);
}

static void
expect(struct conn *c, enum st st, size_t n)
{
	if (n > sizeof c->hdr)
		die("internal: header of %ld bytes", (long)n);
	c->st = st;
	c->need = n;
	c->have = 0;
	if (n == 0)
		step(c);
}

static void
skip_then(struct conn *c, uint64_t n, enum st after, size_t need)
{
	if (n == 0) {
		expect(c, after, need);
		return;
	}
	c->skip = n;
	c->after = after;
	c->after_need = need;
	c->st = S_SKIP;
	c->need = 0;
	c->have = 0;
}

static void
cover(struct conn *c)
{
	int y;

	if (c->cover == NULL)
		return;
	for (y = c->ry; y < c->ry + c->rh && y < c->h; y++) {
		uint8_t *row = c->cover + (size_t)y * c->w;
		int x;

		for (x = c->rx; x < c->rx + c->rw && x < c->w; x++)
			if (!row[x]) {
				row[x] = 1;
				c->uncovered--;
			}
	}
}

static void
update_done(struct conn *c)
{
	double t = now_s();

	if (c->cover != NULL && c->uncovered == 0) {
		c->ttff = t - c->t0;
		free(c->cover);
		c->cover = NULL;
	}
	if (measuring && c->upd_pixels > 0)
		c->updates++;
	if (measuring)
		c->chk_updates++;
	if (measuring && c->upd_req > 0 && !c->cu_on && c->nlat < LAT_MAX)
		c->lat[c->nlat++] = t - c->upd_req;
	c->upd_req = 0;
	c->upd_pixels = 0;
	/* TigerVNC turns continuous updates on when its first update ends,
	 * if EndOfContinuousUpdates has come by then (servers send it at
	 * once, answering SetEncodings); here also if it comes later */
	if (prof->cu && c->srv_cu && !c->cu_on && !draining) {
		uint8_t m[10] = { 150, 1, 0, 0, 0, 0, (uint8_t)(c->w >> 8),
		    (uint8_t)c->w, (uint8_t)(c->h >> 8), (uint8_t)c->h };

		send_all(c, m, sizeof m);
		c->cu_on = 1;
	}
	if (prof->pace == PACE_UPDATE)
		request(c, 1);
	expect(c, S_MSG, 1);
}

static void
next_rect(struct conn *c)
{
	if (c->rects == 0) {
		update_done(c);
		return;
	}
	if (c->rects > 0)
		c->rects--;
	expect(c, S_RECT, 12);
}

/* A data rectangle is over: count it, and go on. */
static void
rect_done(struct conn *c)
{
	uint64_t px = (uint64_t)c->rw * c->rh;

	c->upd_pixels += px;
	if (measuring) {
		c->pixels += px;
		c->used_px[c->used] += px;
		c->chk_rects[c->used][c->tfilter < 0 ? 0 : c->tfilter]++;
		c->chk_px[c->used] += px;
		c->chk_bytes[c->used] += c->pos - c->rect_start;
	}
	cover(c);
	if (verbose > 1)
		fprintf(stderr, "rect %d,%d %dx%d enc %d (%s) filter %d bytes %llu\n", c->rx, c->ry,
		    c->rw, c->rh, c->enc, used_name[c->used], c->tfilter,
		    (unsigned long long)(c->pos - c->rect_start));
	if (prof->pace == PACE_RECT)
		request(c, 1);
	next_rect(c);
}

/* skip N bytes of the current data rectangle, then it is over */
static void
rect_skip(struct conn *c, uint64_t n)
{
	skip_then(c, n, S_RECT_END, 0);
}

/* Hextile: the next 16x16 tile, or the end of the rectangle */
static void
hex_next(struct conn *c)
{
	c->hx += 16;
	if (c->hx >= c->rx + c->rw) {
		c->hx = c->rx;
		c->hy += 16;
	}
	if (c->hy >= c->ry + c->rh)
		expect(c, S_RECT_END, 0);
	else
		expect(c, S_HEX_TILE, 1);
}

static int
hex_tw(struct conn *c)
{
	return c->rx + c->rw - c->hx < 16 ? c->rx + c->rw - c->hx : 16;
}

static int
hex_th(struct conn *c)
{
	return c->ry + c->rh - c->hy < 16 ? c->ry + c->rh - c->hy : 16;
}

/* Tight basic compression: the data of the filter, raw or zlib'd */
static void
tight_data(struct conn *c)
{
	uint64_t n;

	if (c->tfilter == 1)		/* palette: 1 bit or 1 byte a pixel */
		n = c->tcolors == 2 ? (uint64_t)((c->rw + 7) / 8) * c->rh :
		    (uint64_t)c->rw * c->rh;
	else				/* copy, gradient: TPIXELs */
		n = (uint64_t)c->rw * c->rh * c->tpx;
	if (n < TIGHT_MIN_ZLIB) {
		rect_skip(c, n);
		return;
	}
	c->tlen = 0;
	c->tlen_bytes = 0;
	expect(c, S_TIGHT_LEN, 1);
}

static void
start_rect(struct conn *c)
{
	uint64_t area = (uint64_t)c->rw * c->rh;

	c->tfilter = 0;

	switch (c->enc) {
	case ENC_RAW:
		c->used = U_RAW;
		rect_skip(c, area * c->bpp);
		break;
	case ENC_COPYRECT:
		c->used = U_COPYRECT;
		rect_skip(c, 4);
		break;
	case ENC_RRE:
	case ENC_CORRE:
		c->used = U_RRE;
		expect(c, S_RRE, 4 + (size_t)c->bpp);
		break;
	case ENC_HEXTILE:
		c->used = U_HEXTILE;
		c->hx = c->rx;
		c->hy = c->ry;
		if (area == 0)
			expect(c, S_RECT_END, 0);
		else
			expect(c, S_HEX_TILE, 1);
		break;
	case ENC_ZLIB:
	case ENC_ULTRA:
		c->used = c->enc == ENC_ZLIB ? U_ZLIB : U_OTHER;
		expect(c, S_LEN32, 4);
		break;
	case ENC_ZRLE:
	case ENC_ZYWRLE:
		c->used = c->enc == ENC_ZRLE ? U_ZRLE : U_OTHER;
		expect(c, S_LEN32, 4);
		break;
	case ENC_TIGHT:
		c->used = U_TIGHT;
		expect(c, S_TIGHT_CTL, 1);
		break;
	default:
		die("encoding %ld not parsed", (long)c->enc);
	}
}

/* after the rectangle header: pseudo-encodings or data */
static void
rect_header(struct conn *c)
{
	uint64_t w = (uint64_t)c->rw, h = (uint64_t)c->rh;

	switch (c->enc) {
	case ENC_LASTRECT:
		c->rects = 0;
		next_rect(c);
		return;
	case ENC_DESKTOPSIZE:
	case ENC_EXTDESKTOPSIZE:
		if (c->rw != c->w || c->rh != c->h)
			dies("%s", "the desktop size changed");
		if (c->enc == ENC_EXTDESKTOPSIZE)
			expect(c, S_EXTDS, 4);
		else
			expect(c, S_NEXT_RECT, 0);
		return;
	case ENC_CURSOR:
		skip_then(c, w * h * c->bpp + (w + 7) / 8 * h, S_NEXT_RECT, 0);
		return;
	case ENC_XCURSOR:
		skip_then(c, w && h ? 6 + 2 * ((w + 7) / 8) * h : 0, S_NEXT_RECT,
		    0);
		return;
	case ENC_ALPHACURSOR:
		expect(c, S_ALPHA, 4);
		return;
	case ENC_VMCURSOR:
		expect(c, S_VMCURSOR, 2);
		return;
	case ENC_POINTERPOS:
	case ENC_POINTERCHANGE:
	case ENC_QEMUKEY:
	case ENC_VMCURSORPOS:
	case ENC_KBDLED:
		expect(c, S_NEXT_RECT, 0);
		return;
	case ENC_LEDSTATE:
		skip_then(c, 1, S_NEXT_RECT, 0);
		return;
	case ENC_VMLED:
		skip_then(c, 4, S_NEXT_RECT, 0);
		return;
	case ENC_DESKTOPNAME:
		expect(c, S_LEN32, 4);
		return;
	case ENC_WMVI:
		expect(c, S_WMVI, 16);
		return;
	case ENC_SUPMSGS:
	case ENC_SUPENCS:
	case ENC_SERVERID:		/* libvncserver: the payload is w bytes */
		skip_then(c, w, S_NEXT_RECT, 0);
		return;
	default:
		if (c->rx + w > (uint64_t)c->w || c->ry + h > (uint64_t)c->h)
			die("rectangle outside the screen (encoding %ld)",
			    (long)c->enc);
		start_rect(c);
		return;
	}
}

/* A header of c->need bytes is complete in c->hdr. */
static void
step(struct conn *c)
{
	uint8_t *h = c->hdr;
	uint32_t n;

	switch (c->st) {
	case S_VERSION:
		if (memcmp(h, "RFB 003.", 8) != 0)
			dies("%s", "not an RFB server");
		send_all(c, "RFB 003.008\n", 12);
		expect(c, S_NSEC, 1);
		break;
	case S_NSEC:
		if (h[0] == 0)
			dies("%s", "the server refused the connection");
		expect(c, S_SECTYPES, h[0]);
		break;
	case S_SECTYPES:
		if (memchr(h, 1, c->need) == NULL)
			dies("%s", "security type None not offered");
		send_all(c, "\001", 1);
		expect(c, S_SECRESULT, 4);
		break;
	case S_SECRESULT:
		if (be(h, 4) != 0)
			dies("%s", "security result: failed");
		send_all(c, "\001", 1);		/* shared */
		expect(c, S_INIT, 24);
		break;
	case S_INIT:
		c->w = (int)be(h, 2);
		c->h = (int)be(h + 2, 2);
		if (c->w < 1 || c->h < 1 || c->w > SCREEN_MAX || c->h > SCREEN_MAX)
			die("screen width %ld out of range", (long)c->w);
		n = be(h + 20, 4);
		if (n > NAME_MAX_LEN)
			die("desktop name of %ld bytes", (long)n);
		{
			/* the pixel format: the server's, or the profile's */
			uint8_t pf[20] = { 0 };

			memcpy(pf + 4, h + 4, 16);
			if (prof->pf == PF_XRGB || prof->pf == PF_RGBX) {
				static const uint8_t xrgb[16] = { 32, 24, 0, 1,
				    0, 255, 0, 255, 0, 255, 16, 8, 0 };

				memcpy(pf + 4, xrgb, 16);
				if (prof->pf == PF_RGBX) {
					pf[14] = 0;
					pf[16] = 16;
				}
			}
			if (pf[7] == 0)
				dies("%s", "the server's pixel format is not true colour");
			c->bpp = pf[4] / 8;
			if (c->bpp != 1 && c->bpp != 2 && c->bpp != 4)
				die("%ld bits per pixel", (long)pf[4]);
			c->tpx = pf[4] == 32 && pf[5] == 24 && be(pf + 8, 2) == 255 &&
			    be(pf + 10, 2) == 255 && be(pf + 12, 2) == 255 ? 3 : c->bpp;
			send_all(c, pf, sizeof pf);
		}
		skip_then(c, n, S_NAME, 0);
		break;
	case S_NAME: {
		uint8_t se[4 + 4 * 64] = { 2, 0 };
		int i;

		se[2] = (uint8_t)(prof->nencs >> 8);
		se[3] = (uint8_t)prof->nencs;
		for (i = 0; i < prof->nencs; i++)
			put32(se + 4 + 4 * i, (uint32_t)prof->encs[i]);
		send_all(c, se, 4 + 4 * (size_t)prof->nencs);
		c->cover = calloc((size_t)c->w * c->h, 1);
		if (c->cover == NULL)
			dies("%s", "out of memory");
		c->uncovered = (size_t)c->w * c->h;
		request(c, 0);
		expect(c, S_MSG, 1);
		break;
	}
	case S_MSG:
		switch (h[0]) {
		case 0:
			expect(c, S_UPD, 3);
			break;
		case 1:
			expect(c, S_CMAP, 5);
			break;
		case 2:			/* Bell */
			expect(c, S_MSG, 1);
			break;
		case 3:
			expect(c, S_CUT, 7);
			break;
		case 150:		/* EndOfContinuousUpdates */
			c->srv_cu = 1;
			expect(c, S_MSG, 1);
			break;
		case 248:
			expect(c, S_FENCE, 8);
			break;
		case 250:
			expect(c, S_XVP, 3);
			break;
		default:
			die("server message %ld not parsed", (long)h[0]);
		}
		break;
	case S_UPD:
		c->rects = (int)be(h + 1, 2);
		if (c->rects == 0xffff && asked(ENC_LASTRECT))
			c->rects = -1;		/* LastRect ends it */
		/* this update answers every request sent so far */
		c->upd_req = c->req_oldest;
		c->req_oldest = 0;
		if (prof->pace == PACE_START && !c->cu_on)
			request(c, 1);
		next_rect(c);
		break;
	case S_RECT:
		c->rect_start = c->pos - 12;
		c->rx = (int)be(h, 2);
		c->ry = (int)be(h + 2, 2);
		c->rw = (int)be(h + 4, 2);
		c->rh = (int)be(h + 6, 2);
		c->enc = (int32_t)be(h + 8, 4);
		rect_header(c);
		break;
	case S_RECT_END:
		rect_done(c);
		break;
	case S_NEXT_RECT:		/* a pseudo-rectangle is over */
		if (prof->pace == PACE_RECT)
			gtk_after_pseudo(c);
		next_rect(c);
		break;
	case S_LEN32:
		n = be(h, 4);
		if (c->enc == ENC_DESKTOPNAME) {
			if (n > NAME_MAX_LEN)
				die("desktop name of %ld bytes", (long)n);
			skip_then(c, n, S_NEXT_RECT, 0);
		} else {
			rect_skip(c, n);
		}
		break;
	case S_EXTDS:
		skip_then(c, 16u * h[0], S_NEXT_RECT, 0);
		break;
	case S_ALPHA:
		if (be(h, 4) != ENC_RAW)
			die("cursor with alpha in encoding %ld", (long)be(h, 4));
		skip_then(c, (uint64_t)c->rw * c->rh * 4, S_NEXT_RECT, 0);
		break;
	case S_VMCURSOR:
		skip_then(c, (uint64_t)c->rw * c->rh *
		    (h[0] == 0 ? 2 * (uint64_t)c->bpp : 4), S_NEXT_RECT, 0);
		break;
	case S_WMVI:
		if (h[0] / 8 != c->bpp)
			dies("%s", "the server changed the pixel format (WMVi)");
		expect(c, S_NEXT_RECT, 0);
		break;
	case S_RRE:
		n = be(h, 4);
		rect_skip(c, (uint64_t)n * (c->bpp + (c->enc == ENC_RRE ? 8 : 4)));
		break;
	case S_HEX_TILE: {
		int sub = h[0], k = 0;

		c->hsub = sub;
		if (sub & 1) {		/* Raw tile */
			skip_then(c, (uint64_t)hex_tw(c) * hex_th(c) * c->bpp,
			    S_HEX_HDR, 0);
			c->hsub = -1;
			break;
		}
		k += sub & 2 ? c->bpp : 0;	/* background */
		k += sub & 4 ? c->bpp : 0;	/* foreground */
		k += sub & 8 ? 1 : 0;		/* subrectangle count */
		expect(c, S_HEX_HDR, (size_t)k);
		break;
	}
	case S_HEX_HDR:
		if (c->hsub >= 0 && (c->hsub & 8)) {
			uint64_t each = 2 + (c->hsub & 16 ? c->bpp : 0);

			c->hsub = -1;
			skip_then(c, h[c->need - 1] * each, S_HEX_HDR, 0);
			break;
		}
		hex_next(c);
		break;
	case S_TIGHT_CTL: {
		int ctl = h[0] >> 4;

		if (ctl == 8) {			/* fill */
			c->used = U_FILL;
			rect_skip(c, (uint64_t)c->tpx);
		} else if (ctl == 9) {		/* JPEG */
			c->used = U_JPEG;
			c->tlen = 0;
			c->tlen_bytes = 0;
			expect(c, S_TIGHT_LEN, 1);
		} else if (ctl & 8) {
			die("Tight compression control 0x%lx", (long)h[0]);
		} else if (ctl & 4) {		/* explicit filter */
			expect(c, S_TIGHT_FILTER, 1);
		} else {
			c->tfilter = 0;
			tight_data(c);
		}
		break;
	}
	case S_TIGHT_FILTER:
		c->tfilter = h[0];
		if (h[0] == 1)
			expect(c, S_TIGHT_PAL, 1);
		else if (h[0] == 0 || h[0] == 2)
			tight_data(c);
		else
			die("Tight filter %ld", (long)h[0]);
		break;
	case S_TIGHT_PAL:
		c->tcolors = h[0] + 1;
		skip_then(c, (uint64_t)c->tcolors * c->tpx, S_TIGHT_PAL_END, 0);
		break;
	case S_TIGHT_PAL_END:
		tight_data(c);
		break;
	case S_TIGHT_LEN:
		c->tlen |= (uint32_t)(h[0] & (c->tlen_bytes == 2 ? 0xff : 0x7f)) <<
		    (7 * c->tlen_bytes);
		if (c->tlen_bytes < 2 && (h[0] & 0x80)) {
			c->tlen_bytes++;
			expect(c, S_TIGHT_LEN, 1);
			break;
		}
		rect_skip(c, c->tlen);
		break;
	case S_CUT: {
		int32_t len = (int32_t)be(h + 3, 4);	/* < 0: extended */

		skip_then(c, len < 0 ? -(int64_t)len : len, S_MSG, 1);
		break;
	}
	case S_CMAP:
		skip_then(c, 6u * be(h + 3, 2), S_MSG, 1);
		break;
	case S_FENCE:
		c->srv_fence = 1;
		c->fence_flags = be(h + 3, 4);
		if (h[7] > 64)
			die("fence payload of %ld bytes", (long)h[7]);
		expect(c, S_FENCE_DATA, h[7]);
		break;
	case S_FENCE_DATA:
		fence_done(c);
		break;
	case S_XVP:
		expect(c, S_MSG, 1);
		break;
	default:
		break;
	}
}

/* Consume n bytes from the wire. */
static void
feed(struct conn *c, const uint8_t *p, size_t n)
{
	if (measuring)
		c->bytes += n;
	while (n > 0) {
		if (c->st == S_SKIP) {
			size_t k = c->skip < n ? (size_t)c->skip : n;

			c->skip -= k;
			c->pos += k;
			p += k;
			n -= k;
			if (c->skip == 0)
				expect(c, c->after, c->after_need);
			continue;
		}
		while (n > 0 && c->have < c->need) {
			c->hdr[c->have++] = *p++;
			c->pos++;
			n--;
		}
		if (c->have == c->need)
			step(c);
	}
}

static int
connect_to(int port, const char *path)
{
	struct sockaddr_in sa;
	struct sockaddr_un su;
	double t_end = now_s() + CONNECT_SECS;
	int fd, one = 1;

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(&su, 0, sizeof su);
	su.sun_family = AF_UNIX;
	if (path != NULL) {
		if (strlen(path) >= sizeof su.sun_path)
			dies("%s: path too long", path);
		strcpy(su.sun_path, path);
	}
	for (;;) {
		int r;

		if ((fd = socket(path ? AF_UNIX : AF_INET, SOCK_STREAM, 0)) < 0)
			dies("socket: %s", strerror(errno));
		r = path ? connect(fd, (struct sockaddr *)&su, sizeof su) :
		    connect(fd, (struct sockaddr *)&sa, sizeof sa);
		if (r == 0)
			break;
		close(fd);
		if (now_s() > t_end)
			dies("connect: %s", strerror(errno));
		poll(NULL, 0, 50);
	}
	if (path == NULL)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* utime + stime of a process (all its threads) in seconds, -1 if unknown */
static double
cpu_of(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double
rss_mib(int pid)
{
	char path[64], line[256];
	double kb = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmRSS: %lf", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb / 1024;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * -c: ask for nothing more (and stop continuous updates), read until the
 * server has been quiet for a second, then print every rectangle's bytes
 * by encoding, from the connection's first byte: the figures a server's
 * own statistics (x0vncserver's EncodeManager, x11vnc's rfbPrintStats)
 * and a packet capture must agree with.
 */
static void
drain(struct conn *conns, int n, uint8_t *buf, size_t size)
{
	double t_end = now_s() + 10, quiet = now_s() + 1;
	int i, k;

	draining = 1;
	for (i = 0; i < n; i++)
		if (conns[i].cu_on) {
			uint8_t m[10] = { 150, 0 };

			send_all(&conns[i], m, sizeof m);
		}
	while (now_s() < t_end && now_s() < quiet) {
		struct pollfd pfd[CONNS_MAX];

		for (i = 0; i < n; i++) {
			pfd[i].fd = conns[i].fd;
			pfd[i].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)n, 50) <= 0)
			continue;
		for (i = 0; i < n; i++) {
			ssize_t r;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(conns[i].fd, buf, size);
			if (r > 0) {
				feed(&conns[i], buf, (size_t)r);
				quiet = now_s() + 1;
			}
		}
	}
	for (i = 0; i < n; i++) {
		struct conn *c = &conns[i];
		uint8_t ti[256];
		socklen_t tl = sizeof ti;
		uint64_t rcvd;

		fprintf(stderr, "check conn %d: %llu bytes parsed, state %d, "
		    "%llu updates", i, (unsigned long long)c->pos, (int)c->st,
		    (unsigned long long)c->chk_updates);
#ifdef __linux__
		/* Linux's struct tcp_info has tcpi_bytes_received at byte 128
		 * (since 4.1); glibc's copy of the struct stops earlier */
		if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, ti, &tl) == 0 &&
		    tl >= 136) {
			memcpy(&rcvd, ti + 128, 8);
			fprintf(stderr, ", TCP says %llu received",
			    (unsigned long long)rcvd);
		}
#endif
		fputc('\n', stderr);
		for (k = 0; k < U_N; k++)
			if (c->chk_rects[k][0] + c->chk_rects[k][1] +
			    c->chk_rects[k][2] > 0)
				fprintf(stderr, "check   %-8s rects %llu (filter "
				    "copy %llu palette %llu gradient %llu) pixels "
				    "%llu bytes %llu\n", used_name[k],
				    (unsigned long long)(c->chk_rects[k][0] +
				    c->chk_rects[k][1] + c->chk_rects[k][2]),
				    (unsigned long long)c->chk_rects[k][0],
				    (unsigned long long)c->chk_rects[k][1],
				    (unsigned long long)c->chk_rects[k][2],
				    (unsigned long long)c->chk_px[k],
				    (unsigned long long)c->chk_bytes[k]);
	}
}

static void
usage(void)
{
	dies("%s", "usage: bclient -p PORT | -U PATH  -e gtk|lvc|tiger|zrle|raw "
	    "[-E ENC,...] [-n N] [-w WARMUP] [-t SECS] [-P PID] [-X PID] [-v]");
}

/* the results line (see the top of this file) */
static void
report(struct conn *conns, int n, double t_win, double cpu, double xcpu,
    double rss)
{
	static double lat[CONNS_MAX * LAT_MAX];
	double ttff[CONNS_MAX], ttff_max = 0, fps_sum = 0, fps_min = 1e9;
	double ups_sum = 0, ups_min = 1e9, screen;
	uint64_t bytes = 0, pixels = 0, updates = 0, used[U_N] = { 0 }, shown;
	int i, k, nlat = 0, cu = 1, fence = 1, noinit = 0;

	for (i = 0, screen = 0; i < n; i++)
		if (conns[i].w > 0)
			screen = (double)conns[i].w * conns[i].h;
	for (i = 0; i < n; i++) {
		struct conn *c = &conns[i];
		double f, u;

		/* a connection the server never got to (no ServerInit in
		 * time, as an overloaded server does) delivered nothing */
		noinit += c->w == 0;
		f = screen > 0 ? c->pixels / screen / t_win : 0;
		u = c->updates / t_win;
		fps_sum += f;
		fps_min = f < fps_min ? f : fps_min;
		ups_sum += u;
		ups_min = u < ups_min ? u : ups_min;
		bytes += c->bytes;
		pixels += c->pixels;
		updates += c->updates;
		for (k = 0; k < U_N; k++)
			used[k] += c->used_px[k];
		for (k = 0; k < c->nlat; k++)
			lat[nlat++] = c->lat[k] * 1000;
		ttff[i] = c->ttff < 0 ? 1e9 : c->ttff * 1000;
		ttff_max = ttff[i] > ttff_max ? ttff[i] : ttff_max;
		cu &= c->cu_on;
		fence &= c->srv_fence;
	}
	qsort(ttff, (size_t)n, sizeof ttff[0], cmp_double);
	qsort(lat, (size_t)nlat, sizeof lat[0], cmp_double);
	printf("n=%d prof=%s fps=%.3f fps_min=%.3f ups=%.2f ups_min=%.2f "
	    "mpxs=%.3f mbs=%.3f kbf=%.1f kbu=%.2f lat=%.1f lat_n=%d cpu=%.1f "
	    "xcpu=%.1f rss=%.1f ttff=%.1f ttff_max=%.1f cu=%d fence=%d "
	    "noinit=%d used=",
	    n, prof->name, fps_sum / n, fps_min, ups_sum / n, ups_min,
	    pixels / t_win / 1e6, bytes / t_win / 1e6,
	    pixels > 0 && screen > 0 ? bytes / (pixels / screen) / 1e3 : -1,
	    updates > 0 ? (double)bytes / updates / 1e3 : -1,
	    nlat > 0 ? lat[(nlat - 1) / 2] : -1, nlat, cpu, xcpu, rss,
	    ttff[(n - 1) / 2], ttff_max, cu, fence, noinit);
	for (k = 0, shown = 0; k < U_N; k++)
		if (used[k] > 0)
			printf("%s%s:%.0f", shown++ ? "," : "", used_name[k],
			    100.0 * used[k] / pixels);
	printf("%s\n", shown ? "" : "-");
}

int
main(int argc, char **argv)
{
	static struct conn conns[CONNS_MAX];
	static uint8_t buf[RD_CHUNK];
	struct pollfd pfd[CONNS_MAX];
	const char *path = NULL;
	int port = 0, n = 1, pid = 0, xpid = 0, ch, i, all, opened = 0;
	double warm = 3, secs = 3, t_start, t_win = 0, cpu0 = 0, xcpu0 = 0;

	prof = NULL;
	while ((ch = getopt(argc, argv, "cp:U:e:E:n:w:t:P:X:v")) != -1) {
		switch (ch) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'U':
			path = optarg;
			break;
		case 'e':
			for (i = 0; i < LEN(profiles); i++)
				if (strcmp(optarg, profiles[i].name) == 0)
					prof = &profiles[i];
			if (prof == NULL)
				dies("-e %s: no such profile", optarg);
			break;
		case 'E': {		/* -E LIST: for checking the instrument */
			char *q = optarg;

			custom.nencs = 0;
			while (*q != '\0' && custom.nencs < LEN(custom_encs)) {
				custom_encs[custom.nencs++] =
				    (int32_t)strtoll(q, &q, 0);
				if (*q == ',')
					q++;
			}
			custom.encs = custom_encs;
			break;
		}
		case 'n':
			n = atoi(optarg);
			break;
		case 'w':
			warm = atof(optarg);
			break;
		case 't':
			secs = atof(optarg);
			break;
		case 'P':
			pid = atoi(optarg);
			break;
		case 'X':
			xpid = atoi(optarg);
			break;
		case 'v':
			verbose++;
			break;
		case 'c':
			check = 1;
			break;
		default:
			usage();
		}
	}
	if (prof != NULL && custom.encs != NULL) {
		custom.name = prof->name;
		custom.pf = prof->pf;
		custom.pace = prof->pace;
		custom.cu = prof->cu;
		prof = &custom;
	}
	if ((port <= 0 && path == NULL) || prof == NULL || n < 1 ||
	    n > CONNS_MAX || secs <= 0 || secs > 600 || warm < 0 || warm > 600)
		usage();

	if (check)
		warm = 0;
	t_start = now_s();
	for (;;) {
		double t = now_s();

		/* a few handshakes at a time, as servers that cap
		 * unauthenticated connections per address expect */
		for (i = 0, all = 0; i < opened; i++)
			all += conns[i].w == 0;
		while (opened < n && all++ < HANDSHAKES_MAX) {
			struct conn *c = &conns[opened++];

			c->t0 = now_s();
			c->ttff = -1;
			c->fd = connect_to(port, path);
			expect(c, S_VERSION, 12);
		}
		if (!measuring) {
			for (i = 0, all = opened == n; i < opened; i++)
				if (conns[i].ttff < 0)
					all = 0;
			if (all || t - t_start >= warm) {
				measuring = 1;
				t_win = t;
				cpu0 = cpu_of(pid);
				xcpu0 = cpu_of(xpid);
			}
		} else if (t - t_win >= secs) {
			break;
		}
		for (i = 0; i < opened; i++) {
			struct conn *c = &conns[i];

			if (c->cu_on && c->srv_fence && c->fence_sent == 0 &&
			    t - c->fence_last >= FENCE_EVERY)
				fence_probe(c);
			pfd[i].fd = c->fd;
			pfd[i].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)opened, 20) < 0 && errno != EINTR)
			dies("poll: %s", strerror(errno));
		for (i = 0; i < opened; i++) {
			ssize_t r;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(conns[i].fd, buf, sizeof buf);
			if (r == 0)
				dies("%s", "the server closed a connection");
			if (r < 0 && errno != EAGAIN && errno != EINTR)
				dies("read: %s", strerror(errno));
			if (r > 0)
				feed(&conns[i], buf, (size_t)r);
		}
	}
	t_win = now_s() - t_win;
	if (check)
		drain(conns, n, buf, sizeof buf);
	report(conns, n, t_win, pid > 0 ? (cpu_of(pid) - cpu0) / t_win * 100 : -1,
	    xpid > 0 ? (cpu_of(xpid) - xcpu0) / t_win * 100 : -1, rss_mib(pid));
	return 0;
}
