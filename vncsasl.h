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
 */
#ifndef VNCSASL_H
#define VNCSASL_H

#include <stddef.h>
#include <stdint.h>
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
	uint8_t noise;			/* 1: -x ...,noise (encoder tests) */
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
