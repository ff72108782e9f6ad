/*
 * vncsasl.h - the framebuffer-source interface of vncsasl.
 *
 * Exactly one source is linked into the server, chosen at build time
 * (make FB=dummy, the default, or make FB=x11).  It exports one object,
 * `fb_source`, whose functions the server calls from its single poll()
 * loop; a source never blocks and never starts a thread.
 *
 * Pixels are 32-bit XRGB in host byte order (0x00RRGGBB), rows of
 * `stride` pixels.  The buffer belongs to the source and stays valid until
 * the next call of grab(), readable() or resize(), or until the source
 * tells the server it was resized.
 *
 * Life of a source:
 *   open(arg)           -> -x argument, NULL for the default
 *   frame()             -> current size and pixels
 *   fd(), next_ms()     -> what the poll loop waits on while a client wants
 *                          an update (no client waiting: the server does
 *                          not call the source at all)
 *   grab()              -> bring pixels up to date, report changed
 *                          rectangles through host->damage()
 *   key(), pointer(), cut_text()   -> input from clients
 *   release()           -> drop held keys and buttons (client went away)
 *   close()
 *
 * After the interface: small helpers a source may use (clock, clipping,
 * cut text, pixel layouts, tile comparison), then fb-dummy's picture for
 * tests.
 */
#ifndef VNCSASL_H
#define VNCSASL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define VNCSASL_VERSION "0.3"

struct fb;			/* a source's private state */

/* What the server offers a source. */
struct fb_host {
	void *srv;
	/* pixels inside this rectangle changed */
	void (*damage)(void *srv, int x, int y, int w, int h);
	/* size changed: frame() answers with the new geometry */
	void (*resized)(void *srv);
	/* the source's clipboard changed (Latin-1, as RFB carries it) */
	void (*cut_text)(void *srv, const char *text, size_t len);
	/* ... or as UTF-8 (LF line ends), for a source that has it: viewers
	 * with the Extended Clipboard get it whole, the others as Latin-1 */
	void (*cut_text_utf8)(void *srv, const char *text, size_t len);
	/* the pointer's shape changed: w*h pixels 0xAARRGGBB, alpha 0 is
	 * transparent; hotspot inside; w == 0 hides it */
	void (*cursor)(void *srv, int w, int h, int hotx, int hoty,
	    const uint32_t *argb);
	/* one line for the server's log (stderr or syslog, as -L says);
	 * prio is a syslog(3) priority, no newline at the end */
	void (*log)(void *srv, int prio, const char *fmt, ...)
#if defined(__GNUC__)
	    __attribute__((format(printf, 3, 4)))
#endif
	    ;
};

struct fb_frame {
	int width, height;
	int stride;			/* pixels per row */
	const uint32_t *pixels;		/* 0x00RRGGBB */
};

struct fb_source {
	const char *name;		/* "dummy", "x11" */
	const char *arg_help;		/* what -x means for this source */
	/* NULL on failure with a one-line reason in err, and errno EINVAL
	 * if the argument itself is bad (the server exits 2, else 1) */
	struct fb *(*open)(const char *arg, const struct fb_host *host,
	    char *err, size_t errlen);
	void (*close)(struct fb *);
	void (*frame)(struct fb *, struct fb_frame *);
	int (*fd)(struct fb *);		/* descriptor to poll, or -1 */
	int (*next_ms)(struct fb *);	/* ms until grab() has news, -1: never */
	void (*readable)(struct fb *);	/* fd() is readable */
	void (*grab)(struct fb *);
	void (*key)(struct fb *, uint32_t keysym, int down);
	/* optional (NULL: the source takes keysyms only): a key by its
	 * physical position, as a Linux evdev code (KEY_*, the codes of
	 * <linux/input-event-codes.h>, which every platform's table here
	 * uses), with the keysym the viewer meant as a fallback.  Viewers
	 * that send QEMU extended key events reach the source through this,
	 * so non-US layouts get exactly the key pressed. */
	void (*keycode)(struct fb *, unsigned evdev, uint32_t keysym, int down);
	void (*pointer)(struct fb *, int x, int y, unsigned buttons);
	void (*cut_text)(struct fb *, const char *text, size_t len);
	/* optional: a viewer's clipboard as UTF-8 (Extended Clipboard; LF
	 * line ends, no NUL); NULL: the server converts it to Latin-1 ('?'
	 * for what Latin-1 lacks) and calls cut_text */
	void (*cut_text_utf8)(struct fb *, const char *text, size_t len);
	/* a client asked for a new size; 0 if done, -1 if refused */
	int (*resize)(struct fb *, int w, int h);
	void (*release)(struct fb *);
	/* optional: 1 if some viewer cannot draw the cursor itself (no
	 * Cursor encoding), so the source should draw it into the picture */
	void (*draw_cursor)(struct fb *, int yes);
};

extern const struct fb_source fb_source;

/* Milliseconds on the monotonic clock: deadlines and frame times. */
static inline long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Clip a rectangle to a sw x sh screen; 0 if nothing of it is left. */
static inline int
rect_clip(int *x, int *y, int *w, int *h, int sw, int sh)
{
	if (*x < 0) {
		*w += *x;
		*x = 0;
	}
	if (*y < 0) {
		*h += *y;
		*y = 0;
	}
	if (*x + *w > sw)
		*w = sw - *x;
	if (*y + *h > sh)
		*h = sh - *y;
	return *w > 0 && *h > 0;
}

/* Latin-1 as UTF-8 (the two forms of cut text): out has room for 2n bytes. */
static inline size_t
utf8_of_latin1(const char *in, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch < 0x80) {
			out[o++] = (char)ch;
		} else {
			out[o++] = (char)(0xc0 | ch >> 6);
			out[o++] = (char)(0x80 | (ch & 0x3f));
		}
	}
	return o;
}

/*
 * Helpers for sources that read a real screen (fb-x11.c, fb-linux.c):
 * converting its pixels to XRGB, and comparing it in square tiles.
 */

static inline int
fb_host_big(void)			/* 1 on a big-endian CPU */
{
	const union {
		uint16_t s;
		uint8_t b[2];
	} endian = { 1 };

	return endian.b[0] == 0;
}

/*
 * A true-colour pixel layout: 8, 16, 24 or 32 bits, its bytes in either
 * order, red, green and blue as fields of 1 to 16 bits.  Set bpp, big,
 * shift and bits; fb_layout_setup() checks them and fills the rest.
 * Channels narrower than 8 bits are widened by bit replication (0x1f ->
 * 0xff, abc -> abcabcab), as pixman and so QEMU's screendump do; wider
 * ones keep their top 8 bits.
 */
struct fb_layout {
	int bpp;			/* bits per pixel */
	int big;			/* bytes most significant first */
	int shift[3], bits[3];		/* red, green, blue */
	int fast;			/* 32 bpp host order, r/g/b at 16/8/0 */
	uint8_t lut[3][256];		/* channel -> 8 bits, for bits <= 8 */
};

/* -1 if the fields are empty, wider than 16 bits or outside the pixel. */
static inline int
fb_layout_setup(struct fb_layout *l)
{
	int i, v;

	if (l->bpp != 8 && l->bpp != 16 && l->bpp != 24 && l->bpp != 32)
		return -1;
	for (i = 0; i < 3; i++) {
		int b = l->bits[i];

		if (b < 1 || b > 16 || l->shift[i] < 0 ||
		    l->shift[i] + b > l->bpp)
			return -1;
		for (v = 0; b <= 8 && v < 1 << b; v++) {
			unsigned o = 0;
			int have;

			for (have = 0; have < 8; have += b)
				o = o << b | (unsigned)v;
			l->lut[i][v] = (uint8_t)(o >> (have - 8));
		}
	}
	l->fast = l->bpp == 32 && l->big == fb_host_big() &&
	    l->shift[0] == 16 && l->shift[1] == 8 && l->shift[2] == 0 &&
	    l->bits[0] == 8 && l->bits[1] == 8 && l->bits[2] == 8;
	return 0;
}

/* n pixels from s (any alignment) to XRGB in d; d may be s when bpp is 32. */
static inline void
fb_layout_row(const struct fb_layout *l, const uint8_t *s, uint32_t *d,
    int n)
{
	int i, k, c, bytes = l->bpp / 8;

	if (l->fast) {
		for (i = 0; i < n; i++) {
			uint32_t v;

			memcpy(&v, s + (size_t)i * 4, 4);
			d[i] = v & 0xffffff;
		}
		return;
	}
	for (i = 0; i < n; i++, s += bytes) {
		uint32_t p = 0, out = 0;

		for (k = 0; k < bytes; k++)
			if (l->big)
				p = p << 8 | s[k];
			else
				p |= (uint32_t)s[k] << (8 * k);
		for (c = 0; c < 3; c++) {
			uint32_t v = p >> l->shift[c] &
			    ((1u << l->bits[c]) - 1);

			out = out << 8 | (l->bits[c] <= 8 ? l->lut[c][v] :
			    v >> (l->bits[c] - 8));
		}
		d[i] = out;
	}
}

/*
 * The row of a band of `tile` rows (a power of two) that scan pass `pass`
 * compares: pass numbers bit-reversed (0, 16, 8, 24, 4... for 32), x11vnc's
 * order, so a change at least tile / 2^j rows high is met within 2^j passes.
 */
static inline int
fb_scan_row(unsigned pass, int tile)
{
	int r = 0, b;

	for (b = 1; b < tile; b <<= 1, pass >>= 1)
		r = r << 1 | (int)(pass & 1);
	return r;
}

/*
 * Two copies of a row of len bytes, cut into tiles of tb bytes: mark in
 * map[] the tiles where they differ, comparing only tiles not marked yet.
 * 1 if it marked any.
 */
static inline int
fb_row_diff(uint8_t *map, const void *a, const void *b, size_t len,
    size_t tb)
{
	const uint8_t *pa = a, *pb = b;
	size_t o;
	int found = 0;

	for (o = 0; o < len; o += tb, map++)
		if (!*map && memcmp(pa + o, pb + o, len - o < tb ? len - o :
		    tb) != 0)
			*map = found = 1;
	return found;
}

/* First and last marked entry of map[0, n); 0 if none is. */
static inline int
fb_span(const uint8_t *map, int n, int *first, int *last)
{
	int i;

	*first = *last = -1;
	for (i = 0; i < n; i++)
		if (map[i]) {
			if (*first < 0)
				*first = i;
			*last = i;
		}
	return *first >= 0;
}

/*
 * Runs of marked tiles in the map of a w x h screen cut into tile x tile
 * tiles (a row of (w + tile - 1) / tile per band), band by band, left to
 * right; each is cleared as it is given.  Start from a zeroed struct:
 *
 *	struct fb_run r = { 0 };
 *
 *	while (fb_run_next(&r, map, TILE, w, h))
 *		host->damage(host->srv, r.x, r.y, r.w, r.h);
 */
struct fb_run {
	int ty, tx0, tx1;		/* band, columns [tx0, tx1) */
	int x, y, w, h;			/* its pixels, clipped to the screen */
};

static inline int
fb_run_next(struct fb_run *r, uint8_t *map, int tile, int w, int h)
{
	int tw = (w + tile - 1) / tile, th = (h + tile - 1) / tile;

	for (; r->ty < th; r->ty++, r->tx1 = 0) {
		uint8_t *c = map + (size_t)r->ty * tw;
		int tx = r->tx1;

		while (tx < tw && !c[tx])
			tx++;
		if (tx == tw)
			continue;
		r->tx0 = tx;
		while (tx < tw && c[tx])
			c[tx++] = 0;
		r->tx1 = tx;
		r->x = r->tx0 * tile;
		r->y = r->ty * tile;
		r->w = (tx * tile < w ? tx * tile : w) - r->x;
		r->h = (r->y + tile < h ? r->y + tile : h) - r->y;
		return 1;
	}
	return 0;
}

/*
 * fb-dummy's picture, exported so that tests can compute what a viewer
 * must receive.  The picture is a pure function of this state.
 */
struct dummy_state {
	uint32_t frame;			/* animation tick */
	uint16_t ptr_x, ptr_y;		/* last pointer position */
	uint8_t buttons;		/* last button mask */
	uint32_t key;			/* keysym of the last key pressed */
	uint16_t nkeys;			/* key presses so far (mod 65536) */
	uint16_t ncut;			/* bytes of the last cut text */
	uint8_t noise;			/* 1: -x ...,noise, 2: ...,photo
					   (encoder tests) */
};

#define DUMMY_CELL 8			/* side of one status-strip bit cell */
#define DUMMY_BITS 144			/* bits in the status strip */
#define DUMMY_MIN_W 128
#define DUMMY_MIN_H 96
#define DUMMY_MAX_WH 8192		/* 256 MiB of pixels at most */

/*
 * An integer hash (Chris Wellons' lowbias32): the dummy's noise, and the
 * noise that test and bench programs draw.
 */
static inline uint32_t
fb_hash(uint32_t a)
{
	a ^= a >> 16;
	a *= 0x7feb352du;
	a ^= a >> 15;
	a *= 0x846ca68bu;
	return a ^ a >> 16;
}

uint32_t dummy_pixel(int w, int h, const struct dummy_state *st, int x, int y);
/* read the state back from received pixels (XRGB); -1 if the strip is garbled */
int dummy_decode(const uint32_t *px, int stride, int w, int h,
    struct dummy_state *st);

#endif
