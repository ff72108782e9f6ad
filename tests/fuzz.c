/*
 * tests/fuzz.c - libFuzzer entry points for vncsasl's client state machine.
 *
 * The server's own code (vncsasl.c is included here, so every static
 * function is reachable) serves one client whose bytes come from the
 * fuzzer through a socketpair, an in-memory transport: the same reads,
 * handlers, writes and reaping as a real connection.
 *
 *   fuzz-preauth:  the first byte picks a configuration (None, VNC auth,
 *                  SASL type 20 on a "UNIX" peer, VeNCrypt TLSSASL /
 *                  TLSPlain, all of them, or a wss:// connection without
 *                  its TLS: HTTP, then WebSocket frames), the rest is what
 *                  the viewer sends from the ProtocolVersion (or the HTTP
 *                  request) on.
 *   fuzz-postauth: a viewer already past ServerInit: the input is client
 *                  messages (SetPixelFormat, SetEncodings, updates, input,
 *                  cut text, SetDesktopSize, ...).
 *   fuzz-multi:    several viewers on one server at once, the input a
 *                  program of connects, messages, loop turns, hang-ups,
 *                  source resizes and frames (see the FUZZ_MULTI section).
 *
 * make fuzz builds all three (clang -fsanitize=fuzzer,address,undefined);
 * tests/fuzz-corpus/{preauth,postauth,multi} hold seeds.
 */
#ifdef FUZZ_MULTI
/* The server calls fz_source (fb-dummy's functions, some wrapped: see
 * fz_multi_begin) and reads a clock the fuzzer may move forward (TIME),
 * both declared before the server's code; the feature macro is the
 * server's, which defines it again. */
#if defined(__linux__) || defined(__GLIBC__)
#define _DEFAULT_SOURCE
#endif
#include "../vncsasl.h"
#undef _DEFAULT_SOURCE
static struct fb_source fz_source;
static long long fz_skew;	/* ms the program has let pass */

static long long
fz_mono_ms(void)
{
	return mono_ms() + fz_skew;
}
#define fb_source fz_source
#define mono_ms fz_mono_ms
#endif
#define main vncsasl_main
#include "../vncsasl.c"
#undef main
#undef fb_source		/* fb-dummy's own from here: fz_source wraps it */

static struct server fz;

/* A file for the server to read, as an operator would give it. */
static const char *
fz_file(char *path, const char *text)
{
	int fd;

	if ((fd = mkstemp(path)) < 0 ||
	    write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	return path;
}

/* The server's own set-up steps (main's), with a fuzzer's options. */
static void
fz_setup(void)
{
	static char pw[] = "/tmp/vncsasl-fuzz-pw-XXXXXX";
	static char vnc[] = "/tmp/vncsasl-fuzz-vnc-XXXXXX";
	struct opts o;

	memset(&o, 0, sizeof o);
	server_defaults(&fz);
	fz.fail_delay_cap = 0;		/* no waiting in a fuzzer */
	fz.hash_rate = 0;
	snprintf(fz.name, sizeof fz.name, "fuzz");
	fz.sasl_host = "localhost";
	fz.passwd_path = fz_file(pw,
	    "alice:{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n");
	o.vncpass = fz_file(vnc, "sekrit\n");
	o.port = "0";
	o.mechs = "SCRAM-SHA-256,SCRAM-SHA-1,PLAIN,LOGIN";
	o.seclist = "none";		/* fz_sectypes() picks per input */
	setup_signals();
	setup_auth(&fz, &o);
	setup_source(&fz, "128x96@0,noise");
	unlink(pw);
	unlink(vnc);
	fz.passwd_path = NULL;		/* nothing to reload */
}

static void
fz_sectypes(const char *list)
{
	const struct sectype *v[nitems(sectypes)];
	int i, n = parse_seclist(list, v);

	fz.nsec_tcp = fz.nsec_unix = fz.nsec_ws = 0;
	for (i = 0; i < n; i++) {
		if (v[i]->tls == TLS_WSS) {
			fz.sec_ws[fz.nsec_ws++] = v[i];
			continue;
		}
		fz.sec_unix[fz.nsec_unix++] = v[i];
		fz.sec_tcp[fz.nsec_tcp++] = v[i];
	}
}

#ifndef FUZZ_MULTI
/* Run the loop's per-client work until the client is done or idle. */
static void
fz_run(int peer, const uint8_t *data, size_t size, int unix_peer)
{
	struct sockaddr_storage ss;
	struct client *c;
	uint8_t junk[65536];
	size_t off = 0;
	int turn;

	memset(&ss, 0, sizeof ss);
	ss.ss_family = unix_peer ? AF_UNIX : AF_INET;
	(void)ss;
	for (turn = 0; turn < 256 && fz.clients != NULL; turn++) {
		ssize_t w = 0;

		c = fz.clients;
		if (off < size) {	/* chunk sizes vary with the input */
			size_t chunk = 1 + (turn * 131 + data[off]) % 4096;

			if (chunk > size - off)
				chunk = size - off;
			w = write(peer, data + off, chunk);
			if (w > 0)
				off += (size_t)w;
		} else if (off == size) {
			shutdown(peer, SHUT_WR);
			off++;
		}
		while (read(peer, junk, sizeof junk) > 0)	/* what we sent */
			;
		if (!c->dead)
			cl_read(c);
		check_deadlines(&fz, mono_ms());
		if (!c->dead && c->gate_until)	/* no waiting in a fuzzer */
			cl_resume(c);
		send_updates(&fz, mono_ms());
		if (!c->dead)
			cl_flush(c);
		if (c->state == ST_CLOSING && buf_used(&c->out) == 0)
			c->dead = 1;
		reap(&fz);
	}
	while (fz.clients != NULL) {
		fz.clients->dead = 1;
		reap(&fz);
	}
}

static int
fz_one(const char *seclist, int unix_peer, const uint8_t *prefix,
    size_t plen, const uint8_t *data, size_t size)
{
	struct sockaddr_storage ss;
	uint8_t *buf;
	int sv[2];

	if (fz.fb == NULL)
		fz_setup();
	fz_sectypes(seclist);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	set_nonblock(sv[1]);
	memset(&ss, 0, sizeof ss);
	if (unix_peer == 1) {
		ss.ss_family = AF_UNIX;
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)(void *)&ss;

		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(0x7f000001);
	}
	if (unix_peer == 2) {	/* wss without its TLS: HTTP, then frames */
		struct client *c = cl_alloc(&fz, sv[0], sv[0], &ss);

		if (c == NULL) {
			close(sv[1]);
			return 0;
		}
		if (ws_attach(c) == 0)
			c->state = ST_HTTP;
	} else if (cl_new(&fz, sv[0], sv[0], &ss) == NULL) {
		close(sv[1]);
		return 0;
	}
	if ((buf = malloc(plen + size + 1)) == NULL)
		abort();
	if (plen > 0)
		memcpy(buf, prefix, plen);
	memcpy(buf + plen, data, size);
	fz_run(sv[1], buf, plen + size, unix_peer);
	free(buf);
	close(sv[1]);
	return 0;
}

#endif

#ifdef FUZZ_MULTI
/*
 * fuzz-multi: up to FZ_SLOTS viewers on one server at once, driven by a
 * program decoded from the fuzzer's bytes.  Each operation is one byte,
 * op = b & 15 and slot k = (b >> 4) % FZ_SLOTS, then its arguments:
 *
 *   OPEN k p q    connect a viewer in slot k (if free).  p & 3: 0 stops
 *                 after the greeting (the program writes the handshake),
 *                 1 after authentication (waits for ClientInit), 2-3 past
 *                 ServerInit.  p: 0x04 DesktopSize, 0x08 ExtendedDesktop-
 *                 Size, 0x10 Cursor, 0x20 view-only (set between auth and
 *                 ClientInit, where an ACL "view" rule sets it), 0x40
 *                 ClientInit shared=0, 0x80 a full update request.
 *                 q & 7 pixel format, q >> 3 & 3 encoding, q >> 5 & 3 RFB
 *                 3.8/3.7/3.3/3.8, q & 0x80 a compression level.
 *   WRITE k n ..  n raw bytes from viewer k
 *   DSIZE k s     viewer k sends SetDesktopSize: size class s & 15,
 *                 s >> 4 & 3 screens (0, 1, 2, 1)
 *   UPDATE k r    FramebufferUpdateRequest: r & 1 incremental, region r >> 1
 *   ENCS k m      SetEncodings: m & 3 raw, raw, Hextile, ZRLE first, m &
 *                 0x1c as OPEN's p, m & 0x20 CompressLevel 3 * (m >> 6)
 *   PIXFMT k i    SetPixelFormat, format i & 7
 *   INPUT k a b c pointer, key or cut text from viewer k
 *   TURN          one turn of the server loop (as serve(), poll timeout 0)
 *   ANIM          a turn while the picture moves: every grab() in it
 *                 shows a new frame (fb-dummy's default 10 fps after 100 ms)
 *   CLOSE k h     viewer k hangs up (h & 1: half-close, shutdown SHUT_WR)
 *   KILL k        the server fails client k (cl_fail) and reaps it at the
 *                 end of the next turn: dead but listed until then
 *   RESIZE s      the source changes to size class s & 15 (fb_source.resize:
 *                 host->resized at once, whoever waits); s & 16: and
 *                 reports a new frame's damage in the same call, as
 *                 fb-x11's grab() does when it finds a RandR change
 *   SOURCE a b c  the source's picture (pointer, key), cursor shape or
 *                 clipboard changes
 *   GRAB          the source has a new frame and reports its damage now
 *                 (fb-x11 does so from readable() and grab(), whether or
 *                 not a viewer waits)
 *   DRAIN k d     viewer k reads what it gets (d & 1) or stops reading:
 *                 a slow viewer, backpressure, output limits
 *   TIME t        t & 3: 1 s, 3 s (linger), 31 s (handshake), 61 s (-D
 *                 stall) pass on the server's clock (mono_ms)
 *
 * After the program, FZ_END_TURNS animated turns run what is queued.
 *
 * The source is fb-dummy, 128x96 at the start of every input, at most
 * FZ_MAX_WH on a side, still (0 frames per second) but in ANIM turns and
 * for GRAB: then a frame is a key press and a pointer move in the dummy
 * (strip and crosshair redrawn), so runs are deterministic.  Every input
 * starts from the same server state and frees what it allocated, so a
 * crash reproduces from its file alone and LeakSanitizer sees only real
 * leaks.  The seeds (tests/fuzz-corpus/multi) are written by
 * tests/fuzz-multi-seeds.py.
 *
 * One property is checked besides memory safety (FUZZ_MULTI_VIEWCHECK=0
 * turns it off): input from a view-only viewer has no effect on anyone
 * else; it neither resizes the desktop nor closes another viewer.
 * FUZZ_MULTI_NOSOURCE=1 makes RESIZE, SOURCE and GRAB do nothing: every
 * change then comes from the viewers' bytes (to measure what the fuzzer
 * finds through them alone).
 */
#include <sanitizer/common_interface_defs.h>

#define FZ_SLOTS	4	/* viewers at once */
#define FZ_MAX_WH	1024	/* source sides: a run stays fast */
#define FZ_OPS		1024	/* operations per input */
#define FZ_TURNS	48	/* loop turns per input (+ FZ_END_TURNS) */
#define FZ_BUDGET	(24L << 20) /* pixels drawn or encoded per input, at
				   most: Hextile, the slowest, takes ~4 s
				   for that under ASan; -timeout=10 */
#define FZ_END_TURNS	2	/* turns after the program: time passes */
#define FZ_CLIENTS	8	/* listed at once: hung-up slots are reused
				   before the server notices */
#define FZ_PREAUTH_MAX	3	/* so that handshakes evict each other */

enum {
	OP_OPEN, OP_WRITE, OP_DSIZE, OP_UPDATE, OP_ENCS, OP_PIXFMT, OP_INPUT,
	OP_TURN, OP_CLOSE, OP_KILL, OP_RESIZE, OP_SOURCE, OP_GRAB, OP_DRAIN,
	OP_TIME, OP_ANIM,
};

struct fz_slot {
	int peer;		/* the viewer's end, -1: slot free */
	int sfd;		/* the server's end while it is listed, or -1 */
	int drain;		/* the viewer reads what it is sent */
};

struct fz_in {			/* the program: reads past its end give 0 */
	const uint8_t *p;
	size_t n;
};

static struct fz_slot slot[FZ_SLOTS];
static struct client *fz_reading;	/* its input is being handled */
static int fz_viewcheck = 1;
static int fz_nosource;		/* RESIZE, SOURCE and GRAB do nothing */
static long fz_budget;		/* pixels this input may still cost */
static int fz_animating;	/* each grab() shows a new frame */
static unsigned fz_frame;	/* frames shown in this input */

/* Sizes: the start, grows (few big ones: fb-dummy draws a 1024x768
 * picture in ~0.1 s under ASan), shrinks, odd tile edges, tall and wide
 * ones (bands), and sizes the source refuses. */
static const struct { int w, h; } fz_sizes[16] = {
	{ 128, 96 }, { 1024, 768 }, { 1024, 1024 }, { 640, 480 },
	{ 129, 97 }, { 200, 500 }, { 500, 200 }, { 320, 240 },
	{ 127, 95 }, { 2048, 2048 }, { 256, 192 }, { 1024, 96 },
	{ 128, 1024 }, { 65, 65 }, { 0, 0 }, { 192, 160 },
};

static const struct pixfmt fz_formats[8] = {
	{ 32, 24, 0, 1, { 255, 255, 255 }, { 16, 8, 0 } },	/* native */
	{ 32, 24, 1, 1, { 255, 255, 255 }, { 16, 8, 0 } },
	{ 32, 24, 0, 1, { 255, 255, 255 }, { 0, 8, 16 } },
	{ 16, 16, 0, 1, { 31, 63, 31 }, { 11, 5, 0 } },
	{ 16, 15, 1, 1, { 31, 31, 31 }, { 10, 5, 0 } },
	{ 8, 8, 0, 1, { 7, 7, 3 }, { 0, 3, 6 } },
	{ 8, 3, 0, 1, { 1, 1, 1 }, { 0, 1, 2 } },
	{ 32, 24, 1, 1, { 255, 255, 255 }, { 24, 16, 8 } },
};

/* A property does not hold: say which (through the sanitizers' report
 * descriptor: libFuzzer's -close_fd_mask=2 closes stderr) and crash. */
static void
fz_broken(const char *fmt, ...)
{
	char line[512] = "fuzz-multi: ";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line + strlen(line), sizeof line - strlen(line), fmt, ap);
	va_end(ap);
	__sanitizer_report_error_summary(line);
	abort();
}

static uint8_t
fz_u8(struct fz_in *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

/* The source as the server sees it: fb-dummy, refusing big sizes as a
 * real source refuses what it cannot do (fuzz time goes to logic). */
static int
fz_resize(struct fb *fb, int w, int h)
{
	if (fz_viewcheck && fz_reading != NULL && fz_reading->view_only)
		fz_broken("view-only peer=%s resized the desktop to %dx%d",
		    fz_reading->peer, w, h);
	if (w > FZ_MAX_WH || h > FZ_MAX_WH)
		return -1;
	fz_budget -= (long)w * h;	/* it draws the new picture */
	return fb_source.resize(fb, w, h);
}

/* A new frame of the animation: the status strip and the crosshair move. */
static void
fz_animate(void)
{
	fz_frame++;
	fz_source.key(fz.fb, 0x20 + fz_frame % 95, 1);
	fz_source.pointer(fz.fb, (int)(fz_frame * 389 % (unsigned)fz.frame.width),
	    (int)(fz_frame * 283 % (unsigned)fz.frame.height), 0);
}

/* While animating, a new frame is always due, as for a moving picture
 * once its frame time has passed. */
static int
fz_next_ms(struct fb *fb)
{
	return fz_animating ? 0 : fb_source.next_ms(fb);
}

static void
fz_grab(struct fb *fb)
{
	if (fz_animating)
		fz_animate();
	fb_source.grab(fb);
}

/* The server's client in slot k, if it still lists it. */
static struct client *
fz_client(int k)
{
	struct client *c;

	if (slot[k].sfd < 0)
		return NULL;
	for (c = fz.clients; c != NULL; c = c->next)
		if (c->fd == slot[k].sfd)
			return c;
	return NULL;
}

/* After reap(): forget server ends it closed (their numbers get reused). */
static void
fz_sync(void)
{
	int k;

	for (k = 0; k < FZ_SLOTS; k++)
		if (fz_client(k) == NULL)
			slot[k].sfd = -1;
}

/* What does not fit (the server stopped reading) or finds the server
 * gone is dropped; an interrupted write is not (libFuzzer's SIGALRM
 * checks for timeouts: a run must not depend on when it fires). */
static void
fz_send(int k, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (slot[k].peer >= 0 && n > 0) {
		if ((w = write(slot[k].peer, p, n)) < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* A viewer that reads takes whatever has arrived. */
static void
fz_drain(int k)
{
	static uint8_t junk[65536];
	ssize_t r;

	if (slot[k].peer < 0 || !slot[k].drain)
		return;
	while ((r = read(slot[k].peer, junk, sizeof junk)) > 0 ||
	    (r < 0 && errno == EINTR))
		;
}

static size_t
put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return 2;
}

static size_t
put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	return 2 + put16(p + 2, v & 0xffff);
}

/* SetEncodings: m & 3 raw/raw/hextile/zrle first, m & 4 DesktopSize,
 * m & 8 ExtendedDesktopSize, m & 16 Cursor, z: CompressLevel z - 1. */
static size_t
msg_encodings(uint8_t *p, unsigned m, int z)
{
	static const int32_t first[4] = { ENC_RAW, ENC_RAW, ENC_HEXTILE,
	    ENC_ZRLE };
	int32_t e[8];
	size_t n = 0, i, o = 0;

	if (m & 3)
		e[n++] = first[m & 3];
	if (m & 4)
		e[n++] = ENC_DESKTOP_SIZE;
	if (m & 8)
		e[n++] = ENC_EXT_DESKTOP_SIZE;
	if (m & 16)
		e[n++] = ENC_CURSOR;
	if (z)
		e[n++] = ENC_COMPRESS_0 + z - 1;
	p[o++] = MSG_SET_ENCODINGS;
	p[o++] = 0;
	o += put16(p + o, (unsigned)n);
	for (i = 0; i < n; i++)
		o += put32(p + o, (uint32_t)e[i]);
	return o;
}

static size_t
msg_pixfmt(uint8_t *p, int i)
{
	const struct pixfmt *pf = &fz_formats[i & 7];
	size_t o = 0;

	memset(p, 0, 20);
	p[o] = MSG_SET_PIXEL_FORMAT;
	o = 4;
	p[o++] = pf->bpp;
	p[o++] = pf->depth;
	p[o++] = pf->bigendian;
	p[o++] = pf->truecolour;
	o += put16(p + o, pf->max[0]);
	o += put16(p + o, pf->max[1]);
	o += put16(p + o, pf->max[2]);
	p[o++] = pf->shift[0];
	p[o++] = pf->shift[1];
	p[o++] = pf->shift[2];
	return 20;
}

/* r & 1 incremental; r >> 1 & 3: all, a corner, a middle, off-screen. */
static size_t
msg_update(uint8_t *p, unsigned r)
{
	static const uint16_t reg[4][4] = {
		{ 0, 0, 65535, 65535 }, { 0, 0, 64, 64 },
		{ 100, 50, 300, 200 }, { 2000, 2000, 10, 10 },
	};
	const uint16_t *g = reg[r >> 1 & 3];
	size_t o = 0;

	p[o++] = MSG_UPDATE_REQUEST;
	p[o++] = r & 1;
	o += put16(p + o, g[0]);
	o += put16(p + o, g[1]);
	o += put16(p + o, g[2]);
	o += put16(p + o, g[3]);
	return o;
}

/* SetDesktopSize: size class s & 15, s >> 4 & 3 screens (0, 1, 2, 1). */
static size_t
msg_dsize(uint8_t *p, unsigned s)
{
	static const int screens[4] = { 0, 1, 2, 1 };
	int w = fz_sizes[s & 15].w, h = fz_sizes[s & 15].h;
	int i, n = screens[s >> 4 & 3];
	size_t o = 0;

	p[o++] = MSG_SET_DESKTOP_SIZE;
	p[o++] = 0;
	o += put16(p + o, (unsigned)w);
	o += put16(p + o, (unsigned)h);
	p[o++] = (uint8_t)n;
	p[o++] = 0;
	for (i = 0; i < n; i++) {
		o += put32(p + o, (uint32_t)i);		/* id */
		o += put16(p + o, 0);
		o += put16(p + o, 0);
		o += put16(p + o, (unsigned)w);
		o += put16(p + o, (unsigned)h);
		o += put32(p + o, 0);			/* flags */
	}
	return o;
}

/* Pointer (a & 3 == 0), key down/up (1), cut text (2), key down (3). */
static size_t
msg_input(uint8_t *p, unsigned a, unsigned b, unsigned c)
{
	static const size_t cut[4] = { 0, 9, 4100, 70000 };
	size_t o = 0, n;

	switch (a & 3) {
	case 0:
		p[o++] = MSG_POINTER;
		p[o++] = (uint8_t)(a >> 2);
		o += put16(p + o, b * 8);
		o += put16(p + o, c * 8);
		return o;
	case 1:
	case 3:
		p[o++] = MSG_KEY;
		p[o++] = 1;
		o += put16(p + o, 0);
		o += put32(p + o, 0xff00 | b);
		if ((a & 3) == 3)
			return o;
		memcpy(p + o, p, 8);
		p[o + 1] = 0;
		return o + 8;
	default:
		n = cut[b & 3];
		p[o++] = MSG_CUT_TEXT;
		p[o++] = 0;
		p[o++] = 0;
		p[o++] = 0;
		o += put32(p + o, (uint32_t)n);
		memset(p + o, 'a' + (int)(c % 26), n);
		return o + n;
	}
}

/* The server handles what viewer c sent.  Input from a view-only viewer
 * must leave everyone else alone: nobody else is closed by it (and
 * fz_resize checks that it resizes nothing). */
static void
fz_read(struct client *c)
{
	struct client *o;
	int before = 0, after = 0;

	for (o = fz.clients; o != NULL; o = o->next)
		before += o != c && !o->dead;
	fz_reading = c;
	cl_read(c);
	fz_reading = NULL;
	for (o = fz.clients; o != NULL; o = o->next)
		after += o != c && !o->dead;
	if (fz_viewcheck && c->view_only && after != before)
		fz_broken("input of view-only peer=%s closed %d other "
		    "viewer(s)", c->peer, before - after);
}

/* Connect a viewer; bring it as far as p says, the way a viewer would. */
static void
fz_open(int k, unsigned p, unsigned q)
{
	static const char *const version[4] = { "RFB 003.008\n",
	    "RFB 003.007\n", "RFB 003.003\n", "RFB 003.008\n" };
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)(void *)&ss;
	uint8_t m[128];
	struct client *c;
	int sv[2], minor = q >> 5 & 3;
	size_t o = 0;

	if (slot[k].peer >= 0 || fz.nclients >= FZ_CLIENTS)
		return;
	memset(&ss, 0, sizeof ss);
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(0x7f000001 + (uint32_t)k);
	in->sin_port = htons((uint16_t)(40000 + k));
	if (preauth_refused(&fz, &ss))		/* as accept_all() */
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	set_nonblock(sv[1]);
	if ((c = cl_new(&fz, sv[0], sv[0], &ss)) == NULL) {
		close(sv[1]);
		return;
	}
	slot[k].peer = sv[1];
	slot[k].sfd = sv[0];
	slot[k].drain = 1;
	fz_drain(k);
	if ((p & 3) == 0)
		return;
	memcpy(m, version[minor], 12);
	o = 12;
	if (minor != 2)
		m[o++] = SEC_NONE;	/* 3.3: the server chooses */
	fz_send(k, m, o);
	cl_read(c);
	cl_flush(c);
	fz_drain(k);
	if (c->dead || c->state != ST_INIT)
		return;
	if (p & 0x20)
		c->view_only = 1;
	if ((p & 3) == 1)
		return;
	o = 0;
	m[o++] = (p & 0x40) ? 0 : 1;
	if ((q & 7) != 0)
		o += msg_pixfmt(m + o, (int)(q & 7));
	o += msg_encodings(m + o, (q >> 3 & 3) | (p & 0x1c),
	    (q & 0x80) ? 1 + (int)(p % 10) : 0);
	if (p & 0x80)
		o += msg_update(m + o, 0);
	fz_send(k, m, o);
	fz_read(c);
	cl_flush(c);
	fz_drain(k);
}

/*
 * One turn of serve() with poll() timeout 0: the server's own pollfd set
 * (poll_set), then the server's own clients_dispatch() and turn_end() -
 * poll_dispatch() without listeners and source - with fz_read() for
 * cl_read(), so that a view-only viewer's effects are seen as its own.
 * -1: over the budget, as a turn may encode the whole screen for every
 * viewer.
 */
static int
fz_turn(void)
{
	struct pollfd pfd[2 * FZ_CLIENTS + 2];
	struct client *c;
	long long now;
	long cost = (long)fz.frame.width * fz.frame.height;
	int k, n;

	for (c = fz.clients; c != NULL; c = c->next)	/* may ask, this turn */
		cost += (long)fz.frame.width * fz.frame.height;
	if (cost > fz_budget)
		return -1;
	fz_budget -= cost;
	for (k = 0; k < FZ_SLOTS; k++)
		fz_drain(k);
	if (fz.nclients > FZ_CLIENTS)
		abort();	/* fz_open() keeps them fewer */
	n = poll_set(&fz, pfd);
	while (poll(pfd, (nfds_t)n, 0) < 0)	/* libFuzzer's SIGALRM */
		if (errno != EINTR)
			abort();
	now = mono_ms();
	clients_dispatch(&fz, pfd, fz_read);	/* poll_dispatch(), less the
						   listeners and the source */
	turn_end(&fz, now);
	fz_sync();
	return 0;
}

/* Time passes for the server (the source is still: no clock of its own). */
static void
fz_time(unsigned t)
{
	static const long long ms[4] = { 1000, 3000, 31000, 61000 };

	fz_skew += ms[t & 3];
}

/* The source's own changes: its picture, its cursor, its clipboard. */
static void
fz_source_change(unsigned a, unsigned b, unsigned c)
{
	static const int side[4] = { 0, 1, 17, 64 };
	uint32_t argb[64 * 64];
	int w, h, i;

	switch (a & 3) {
	case 0:
		fz_source.pointer(fz.fb, (int)b * 8, (int)c * 8, a >> 2 & 1);
		break;
	case 1:
		fz_source.key(fz.fb, 0xff00 | b, 1);
		break;
	case 2:
		w = side[b & 3];
		h = side[b >> 2 & 3];
		for (i = 0; i < w * h; i++)
			argb[i] = (i + c) % 3 ? 0xff000000u | (uint32_t)i * 0x10101u
			    : 0;
		fz.host.cursor(fz.host.srv, w, h, (int)(b >> 4), (int)c % 70,
		    argb);
		break;
	default:
		/* fb-dummy echoes a viewer's clipboard to every viewer */
		fz_source.cut_text(fz.fb, "fuzz-clipboard", c % 15);
		break;
	}
}

/* Every input starts from the same server: a fresh 128x96 still source,
 * no cursor, no failure records.  What the server keeps between inputs
 * (TLS, SASL, credentials) does not change with them. */
static void
fz_multi_begin(void)
{
	static int ready;
	const char *e;
	char err[256];
	int k;

	if (!ready) {
		ready = 1;
		fz_source = fb_source;
		fz_source.resize = fz_resize;
		fz_source.next_ms = fz_next_ms;
		fz_source.grab = fz_grab;
		fz_setup();
		fz_source.close(fz.fb);
		fz_sectypes("none,vnc");
		fz.preauth_max = FZ_PREAUTH_MAX;
		if ((e = getenv("FUZZ_MULTI_VIEWCHECK")) != NULL)
			fz_viewcheck = atoi(e) != 0;
		if ((e = getenv("FUZZ_MULTI_NOSOURCE")) != NULL)
			fz_nosource = atoi(e) != 0;
	}
	fz.cursor_w = fz.cursor_h = fz.cursor_x = fz.cursor_y = 0;
	fz.cursor_serial = 0;
	fz.cursor_drawn = 0;
	fz.naddrs = 0;
	fz.hash_tat = 0;
	fz.accept_paused = 0;
	fz.grab_due = 0;
	fz.enc.gen = 0;
	fz_frame = 0;
	fz_animating = 0;
	fz_budget = FZ_BUDGET;
	fz_skew = 0;
	if ((fz.fb = fz_source.open("128x96@0", &fz.host, err,
	    sizeof err)) == NULL || grid_setup(&fz) < 0)
		abort();
	for (k = 0; k < FZ_SLOTS; k++) {
		slot[k].peer = slot[k].sfd = -1;
		slot[k].drain = 1;
	}
}

/* Close every viewer, then free what the input made (source, tile grid,
 * encoder caches, cursor): an input frees all it allocates, so libFuzzer
 * runs LeakSanitizer only when something did leak. */
static void
fz_multi_end(void)
{
	int k;

	for (k = 0; k < FZ_SLOTS; k++) {
		if (slot[k].peer >= 0)
			close(slot[k].peer);
		slot[k].peer = slot[k].sfd = -1;
	}
	while (fz.clients != NULL) {
		fz.clients->dead = 1;
		reap(&fz);
	}
	fz_source.close(fz.fb);
	fz.fb = NULL;
	enc_teardown(&fz);
	free(fz.cursor);
	fz.cursor = NULL;
}

/* Run the program's next operation; 1 if it was a turn. */
static int
fz_step(struct fz_in *in)
{
	static uint8_t m[16 + 70000];
	unsigned b = fz_u8(in), a1, a2, a3;
	int k = (int)(b >> 4) % FZ_SLOTS;
	struct client *c;
	size_t n;

	switch (b & 15) {
	case OP_OPEN:
		a1 = fz_u8(in);
		a2 = fz_u8(in);
		fz_open(k, a1, a2);
		break;
	case OP_WRITE:
		n = fz_u8(in);
		if (n > in->n)
			n = in->n;
		fz_send(k, in->p, n);
		in->p += n;
		in->n -= n;
		break;
	case OP_DSIZE:
		fz_send(k, m, msg_dsize(m, fz_u8(in)));
		break;
	case OP_UPDATE:
		fz_send(k, m, msg_update(m, fz_u8(in)));
		break;
	case OP_ENCS:
		a1 = fz_u8(in);
		fz_send(k, m, msg_encodings(m, a1 & 31,
		    (a1 & 32) ? (int)(a1 >> 6) * 3 + 1 : 0));
		break;
	case OP_PIXFMT:
		fz_send(k, m, msg_pixfmt(m, fz_u8(in)));
		break;
	case OP_INPUT:
		a1 = fz_u8(in);
		a2 = fz_u8(in);
		a3 = fz_u8(in);
		fz_send(k, m, msg_input(m, a1, a2, a3));
		break;
	case OP_TURN:
	case OP_ANIM:
		fz_animating = (b & 15) == OP_ANIM;
		if (fz_turn() < 0)
			fz_budget = 0;
		fz_animating = 0;
		return 1;
	case OP_CLOSE:
		a1 = fz_u8(in);
		if (slot[k].peer < 0)
			break;
		if (a1 & 1) {
			shutdown(slot[k].peer, SHUT_WR);
		} else {
			close(slot[k].peer);
			slot[k].peer = -1;
		}
		break;
	case OP_KILL:
		if ((c = fz_client(k)) != NULL)
			cl_fail(c, "fuzz: failed by the server");
		break;
	case OP_RESIZE:
		a1 = fz_u8(in);
		if (fz_nosource)
			break;
		fz_source.resize(fz.fb, fz_sizes[a1 & 15].w,
		    fz_sizes[a1 & 15].h);
		if (a1 & 16) {
			fz_animate();
			fz_source.grab(fz.fb);
		}
		break;
	case OP_SOURCE:
		a1 = fz_u8(in);
		a2 = fz_u8(in);
		a3 = fz_u8(in);
		if (!fz_nosource)
			fz_source_change(a1, a2, a3);
		break;
	case OP_GRAB:
		if (fz_nosource)
			break;
		fz_animate();
		fz_source.grab(fz.fb);
		break;
	case OP_DRAIN:
		slot[k].drain = fz_u8(in) & 1;
		break;
	case OP_TIME:
		fz_time(fz_u8(in));
		break;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	int ops, turns = 0;

	fz_multi_begin();
	for (ops = 0; ops < FZ_OPS && in.n > 0 && turns < FZ_TURNS &&
	    fz_budget > 0; ops++)
		turns += fz_step(&in);
	fz_animating = 1;
	for (turns = 0; turns < FZ_END_TURNS && fz_turn() == 0; turns++)
		;
	fz_animating = 0;
	fz_multi_end();
	return 0;
}
#elif defined(FUZZ_POSTAUTH)
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* version 3.8, None, shared: straight into client messages */
	static const uint8_t hello[] = "RFB 003.008\n\x01\x01";

	return fz_one("none", 0, hello, sizeof hello - 1, data, size);
}
#else
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct {
		const char *list;
		int unix_peer;
	} conf[] = {
		{ "none", 0 }, { "vnc", 0 }, { "sasl", 1 }, { "tlssasl", 0 },
		{ "tlsplain,tlsvnc,tlsnone", 0 },
		{ "tlssasl,sasl,tlsplain,tlsnone,tlsvnc,vnc,none", 1 },
		{ "wss-plain,wss-sasl,wss-vnc,wss-none", 2 },
	};
	int k;

	if (size < 1)
		return 0;
	k = data[0] % (int)(sizeof conf / sizeof conf[0]);
	return fz_one(conf[k].list, conf[k].unix_peer, NULL, 0, data + 1,
	    size - 1);
}
#endif
