/*
 * fb-x11.c - share a real X display (make FB=x11).
 *
 * -x names the display (default $DISPLAY).  The source is one X client;
 * everything runs from the server's poll loop, which polls the X
 * connection's descriptor always and calls grab() only while a viewer
 * waits for an update.
 *
 * Pixels.  `shot` is an XRGB copy of what the root window showed when it
 * was last compared; `px`, what the server encodes, is shot plus the
 * cursor when some viewer cannot draw the cursor itself.  The screen is cut
 * into TILE x TILE tiles.  A tile becomes *suspect* when XDamage reports
 * drawing in it (a hint: one DamageNotify per empty-to-non-empty change of
 * the damage region, fetched with XDamageSubtract) or when a scan line
 * crossing it differs from shot (every TILE-th row, a different row on
 * each pass, x11vnc's trick: it finds what damage misses, or everything
 * when the server has no DAMAGE).  Suspect tiles are captured, one request
 * per band of tiles, with MIT-SHM (XGetImage for displays where the shared
 * segment cannot be attached, e.g. remote ones), converted (vncsasl.h's
 * fb_layout: channels under 8 bits, as on 16-bit displays, widened by bit
 * replication) and compared row by row with shot; only tiles whose pixels
 * really differ are reported to the server, as horizontal runs.  Captures
 * after damage are capped at one per FRAME_MS, scans run every SCAN_MS
 * (SCAN_DAMAGE_MS when XDamage is there and scans are a safety net),
 * slowing down to SCAN_BACKOFF times that while they find nothing, so an
 * idle display costs a few small requests a second, and nothing at all
 * while no viewer waits.
 *
 * Events.  Every entry point ends by draining Xlib's queue: a round trip
 * (XSync, a reply) can leave events in the queue, and queued events no
 * longer make the descriptor readable.
 *
 * Input goes through XTEST.  A keysym is looked up in the XKB map of the
 * current group: among the keys and levels that produce it, the one that
 * needs the fewest modifier changes (Shift, ISO_Level3_Shift...) wins; the
 * needed modifiers are pressed or released around the key and restored
 * right after it, so an AltGr symbol typed from a US viewer, or an
 * unshifted symbol while the viewer holds Shift, comes out right.  A keysym
 * that no key produces is bound to a spare keycode, which is restored
 * SPARE_HOLD_MS after its release (clients look the symbol up after the
 * event arrives, so restoring at once would race them) and at close().
 * Keys and buttons pressed through this source are tracked, and release()
 * lets them go.  A viewer's auto-repeat is dropped: X repeats a key held
 * through XTEST by itself.
 *
 * Cursor: XFixes cursor images go to the server (host->cursor) for viewers
 * with the Cursor pseudo-encoding; when one lacks it (draw_cursor(fb, 1))
 * the cursor is blended into px at the pointer position, polled every
 * CURSOR_MS.
 *
 * Keys by position (QEMU extended key events, keycode()): with an evdev
 * keymap (Xorg's evdev driver, Xvfb) the X keycode is the evdev code + 8,
 * pressed as it is, so the display's layout decides what it types; other
 * keymaps, and keys the keymap leaves empty, go the keysym way.
 *
 * Clipboard: a viewer's text (ClientCutText in Latin-1, or UTF-8 from the
 * Extended Clipboard) makes an unmapped window of ours the owner of
 * CLIPBOARD and PRIMARY, answering TARGETS, UTF8_STRING, STRING (Latin-1,
 * '?' for the rest), TEXT and TIMESTAMP.  XFixes tells when another client
 * takes either selection; it is converted (UTF8_STRING, else STRING; INCR
 * transfers too), capped at SEL_IN_MAX, and given to the server as UTF-8.
 *
 * Size: RandR (and the root's ConfigureNotify) report a new screen size;
 * the buffers are rebuilt, the screen captured whole, and host->resized()
 * called.  Viewers cannot resize the display (resize() refuses): it is
 * someone's real screen.
 *
 * X errors (a window gone while answering it, a capture racing a resize)
 * are recorded by an error handler and handled where they matter; losing
 * the connection itself ends the process with a message, like the server's
 * other fatal errors.
 */
#define _XOPEN_SOURCE 700

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <syslog.h>
#include <time.h>

#include <X11/Xatom.h>
#include <X11/XKBlib.h>
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <X11/extensions/XShm.h>
#include <X11/extensions/XTest.h>
#include <X11/extensions/Xdamage.h>
#include <X11/extensions/Xfixes.h>
#include <X11/extensions/Xrandr.h>
#include <X11/keysym.h>

#include "vncsasl.h"

/* ---- limits ---- */

#define TILE		32	/* comparison tile side, and scan line period */
#define MAX_WH		16384	/* screen side: 2 x 1 GiB of XRGB at most */
#define FRAME_MS	25	/* at most 40 captures a second after damage */
#define SCAN_MS		50	/* scan period without XDamage */
#define SCAN_DAMAGE_MS	250	/* scan period when XDamage does the work */
#define SCAN_BACKOFF	4	/* idle scans slow down to this many periods */
#define CURSOR_MS	50	/* pointer position poll while drawing it */
#define DAMAGE_RECTS_MAX 256	/* more rectangles: use their bounding box */
#define CURSOR_SIDE_MAX	256	/* the server's CURSOR_MAX */
#define CUT_MAX		(1 << 20)	/* clipboard bytes, both ways (the
					 * server's CUT_TEXT_MAX) */
#define SEL_IN_MAX	(2 * CUT_MAX)	/* UTF-8 read for CUT_MAX Latin-1 */
#define SEL_TIMEOUT_MS	5000	/* a selection owner that never answers */
#define HELD_MAX	64	/* keys held down through this source */
#define SPARE_MAX	8	/* keycodes we bind keysyms to */
#define SPARE_HOLD_MS	2000	/* binding kept after the key's release */
#define BUTTONS		8	/* RFB button mask bits: X buttons 1-8 */

/* ---- types ---- */

struct rect {
	int x, y, w, h;
};

/* Keyboard state as XTEST must work around it. */
struct kstate {
	unsigned eff;		/* effective modifiers */
	unsigned fixed;		/* locked or latched: not ours */
	int group;		/* effective group */
};

/* A way to type a keysym: this key with these modifiers (of `care`). */
struct keyplan {
	int kc;
	unsigned want, care;
	int cost;
};

struct held {
	uint32_t keysym;
	int kc;
};

struct spare {
	int kc;
	KeySym ks;
	int down;
	long long used;		/* ms: last release */
};

struct fb {
	const struct fb_host *host;
	Display *dpy;
	int scr;
	Window root, win;	/* win: selection owner, never mapped */
	Visual *vis;
	int depth;
	int w, h, tw, th;
	uint32_t *shot;		/* XRGB as last compared */
	uint32_t *px;		/* what the server reads */
	uint32_t *row;		/* one converted row */
	uint8_t *suspect;	/* per tile: may differ from shot */
	uint8_t *changed;	/* per tile: differs, not reported yet */
	struct fb_layout lay;	/* how X's pixels map to XRGB */

	int shm_ok, shm_warned;
	XShmSegmentInfo shm;
	size_t shm_size;

	int have_damage, damage_ev;
	Damage damage;
	XserverRegion region;
	int damaged;		/* DamageNotify since the last fetch */
	int have_fixes, fixes_ev;
	int have_randr, randr_ev;
	int have_xkb, xkb_ev;
	int have_xtest;

	long long last_cap, next_scan, last_ptr;
	unsigned scan_pass;
	int scan_ms;		/* current scan period */

	/* cursor */
	int draw_cursor;	/* some viewer needs it in the picture */
	int cursor_dirty;	/* shape or policy changed: redraw */
	uint32_t *cur;		/* premultiplied ARGB (XFixes') */
	int cur_w, cur_h, cur_hx, cur_hy;
	unsigned long cur_serial;
	int cur_x, cur_y;	/* top-left of the drawn cursor, unclipped */
	struct rect drawn;	/* where px holds the cursor (w 0: nowhere) */

	/* keyboard and pointer */
	XkbDescPtr xkb;
	KeySym *core;		/* core map when the server has no XKB */
	int core_per, min_kc, max_kc;
	unsigned mode_switch;	/* core: modifier of Mode_switch */
	uint8_t kcmods[256];	/* modifiers each keycode sets (modmap) */
	int setter[8];		/* keycode to press for each modifier */
	int map_stale;
	int evdev;		/* keycodes are evdev's + 8 (xkb "evdev") */
	struct held held[HELD_MAX];
	int nheld;
	struct spare spare[SPARE_MAX];
	int nspare;
	unsigned buttons;
	int ptr_x, ptr_y;

	/* clipboard */
	Atom a_clipboard, a_targets, a_utf8, a_text, a_incr, a_timestamp,
	    a_prop, a_time;
	char *cut;		/* Latin-1 we own the selections with */
	char *cut_utf8;
	size_t cut_len, cut_utf8_len;
	Time cut_time;
	int own_clipboard, own_primary;
	uint64_t sent_hash;	/* the last text given to the server, */
	size_t sent_len;	/* to know its echo from a viewer: */
	uint64_t sent_hash8;	/* as Latin-1 (old viewers), and as */
	size_t sent_len8;	/* UTF-8 (Extended Clipboard) */
	int sent;
	Atom in_sel, in_target;	/* a conversion in progress */
	Time in_time;
	int in_incr, in_utf8;
	char *in;
	size_t in_len;
	long long in_deadline;
};

/*
 * Xlib reports errors through a process-wide handler without a context
 * pointer, so the last error code lives here (set by the handler, read by
 * trap_end); the server has one X source, hence one connection.
 */
static int x_error;

/* ---- helpers ---- */


static int
on_x_error(Display *dpy, XErrorEvent *e)
{
	(void)dpy;
	x_error = e->error_code;
	return 0;
}

static int
on_x_io_error(Display *dpy)
{
	fprintf(stderr, "vncsasl: lost the connection to X display %s\n",
	    DisplayString(dpy));
	exit(1);
}

static void
trap_start(void)
{
	x_error = 0;
}

/* Nonzero if a request since trap_start() failed. */
static int
trap_end(Display *dpy)
{
	XSync(dpy, False);
	return x_error;
}

static int
popcount(unsigned v)
{
	int n = 0;

	for (; v; v &= v - 1)
		n++;
	return n;
}

/* ---- pixel formats ---- */

/* The layout of X's images from one of them and the visual's masks. */
static int
layout_setup(struct fb_layout *l, const XImage *img, const Visual *vis)
{
	const unsigned long mask[3] = { vis->red_mask, vis->green_mask,
	    vis->blue_mask };
	int i;

	l->bpp = img->bits_per_pixel;
	l->big = img->byte_order == MSBFirst;
	for (i = 0; i < 3; i++) {
		unsigned long m = mask[i];

		if (m == 0)
			return -1;
		for (l->shift[i] = 0; !(m & 1); m >>= 1)
			l->shift[i]++;
		for (l->bits[i] = 0; m & 1; m >>= 1)
			l->bits[i]++;
		if (m != 0)
			return -1;	/* not one contiguous field */
	}
	return fb_layout_setup(l);
}

/* ---- capture ---- */

/* Pixels of a rectangle of the root window in X's format, or NULL. */
static XImage *
capture(struct fb *fb, int x, int y, int w, int h)
{
	XImage *img;

	if (!fb->shm_ok)
		return XGetImage(fb->dpy, fb->root, x, y, (unsigned)w,
		    (unsigned)h, AllPlanes, ZPixmap);
	img = XShmCreateImage(fb->dpy, fb->vis, (unsigned)fb->depth, ZPixmap,
	    fb->shm.shmaddr, &fb->shm, (unsigned)w, (unsigned)h);
	if (img == NULL)
		return NULL;
	if ((size_t)img->bytes_per_line * h > fb->shm_size ||
	    !XShmGetImage(fb->dpy, fb->root, img, x, y, AllPlanes)) {
		XDestroyImage(img);	/* frees the header, not the segment */
		return NULL;
	}
	return img;
}

static const unsigned char *
img_at(const XImage *img, int x, int y)
{
	return (const unsigned char *)img->data + (size_t)y *
	    img->bytes_per_line + (size_t)x * (img->bits_per_pixel / 8);
}

static void
shm_teardown(struct fb *fb)
{
	if (!fb->shm_ok)
		return;
	XShmDetach(fb->dpy, &fb->shm);
	XSync(fb->dpy, False);
	shmdt(fb->shm.shmaddr);
	fb->shm_ok = 0;
}

/*
 * A shared segment for the whole screen, attached and then checked: on a
 * remote display XShmAttach fails, or, worse, attaches a segment of the
 * same id over there; a test capture that must land in our memory and
 * agree with XGetImage catches both.
 */
static int
shm_setup(struct fb *fb)	/* -2: no MIT-SHM at all */
{
	XImage *img, *ref;
	int id, ok;
	size_t size;
	uint32_t a = 0, b;

	if (!XShmQueryExtension(fb->dpy))
		return -2;
	img = XShmCreateImage(fb->dpy, fb->vis, (unsigned)fb->depth, ZPixmap,
	    NULL, &fb->shm, (unsigned)fb->w, (unsigned)fb->h);
	if (img == NULL)
		return -1;
	size = (size_t)img->bytes_per_line * img->height;
	XDestroyImage(img);
	if ((id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600)) < 0)
		return -1;
	fb->shm.shmid = id;
	fb->shm.shmaddr = shmat(id, NULL, 0);
	fb->shm.readOnly = False;
	if (fb->shm.shmaddr == (char *)-1) {
		shmctl(id, IPC_RMID, NULL);
		return -1;
	}
	trap_start();
	XShmAttach(fb->dpy, &fb->shm);
	ok = trap_end(fb->dpy) == 0;
	/* gone once both sides detach, even if we crash */
	shmctl(id, IPC_RMID, NULL);
	if (!ok) {
		shmdt(fb->shm.shmaddr);
		return -1;
	}
	fb->shm_ok = 1;
	fb->shm_size = size;
	if ((ref = XGetImage(fb->dpy, fb->root, 0, 0, 1, 1, AllPlanes,
	    ZPixmap)) == NULL) {
		shm_teardown(fb);
		return -1;
	}
	memcpy(&a, ref->data, (size_t)ref->bits_per_pixel / 8);
	memset(fb->shm.shmaddr, ~ref->data[0] & 0xff,
	    (size_t)ref->bits_per_pixel / 8);
	img = capture(fb, 0, 0, 1, 1);
	ok = img != NULL;
	if (ok) {
		b = a;
		memcpy(&b, img->data, (size_t)ref->bits_per_pixel / 8);
		ok = a == b;
		XDestroyImage(img);
	}
	XDestroyImage(ref);
	if (!ok)
		shm_teardown(fb);
	return ok ? 0 : -1;
}

static void
mark_rect(struct fb *fb, int x, int y, int w, int h)
{
	int tx, ty;

	if (!rect_clip(&x, &y, &w, &h, fb->w, fb->h))
		return;
	for (ty = y / TILE; ty <= (y + h - 1) / TILE; ty++)
		for (tx = x / TILE; tx <= (x + w - 1) / TILE; tx++)
			fb->suspect[ty * fb->tw + tx] = 1;
}

/* Suspect tiles of band ty: first and last column, 0 if none. */
static int
band_span(const struct fb *fb, int ty, int *x0, int *x1)
{
	return fb_span(fb->suspect + (size_t)ty * fb->tw, fb->tw, x0, x1);
}

/* Compare tile (tx,ty) of img (whose top-left is screen ox,oy) with shot. */
static void
compare_tile(struct fb *fb, const XImage *img, int ox, int oy, int tx, int ty)
{
	int x = tx * TILE, y = ty * TILE, j;
	int w = fb->w - x < TILE ? fb->w - x : TILE;
	int h = fb->h - y < TILE ? fb->h - y : TILE;

	for (j = 0; j < h; j++) {
		uint32_t *dst = fb->shot + (size_t)(y + j) * fb->w + x;

		fb_layout_row(&fb->lay, img_at(img, x - ox, y + j - oy),
		    fb->row, w);
		if (memcmp(fb->row, dst, (size_t)w * 4) != 0) {
			memcpy(dst, fb->row, (size_t)w * 4);
			fb->changed[ty * fb->tw + tx] = 1;
		}
	}
	fb->suspect[ty * fb->tw + tx] = 0;
}

/*
 * Capture suspect tiles, one request per run of bands with the same span
 * (a full-width change is one request), and compare them.  -1 if a
 * capture failed: the screen may have changed size under us.
 */
static int
capture_suspects(struct fb *fb)
{
	int ty, ty1, tx, x0, x1, a0, a1;

	for (ty = 0; ty < fb->th; ty = ty1) {
		XImage *img;
		int px0, py0, pw, ph, b;

		ty1 = ty + 1;
		if (!band_span(fb, ty, &x0, &x1))
			continue;
		while (ty1 < fb->th && band_span(fb, ty1, &a0, &a1) &&
		    a0 == x0 && a1 == x1)
			ty1++;
		px0 = x0 * TILE;
		py0 = ty * TILE;
		pw = ((x1 + 1) * TILE < fb->w ? (x1 + 1) * TILE : fb->w) - px0;
		ph = (ty1 * TILE < fb->h ? ty1 * TILE : fb->h) - py0;
		if ((img = capture(fb, px0, py0, pw, ph)) == NULL)
			return -1;
		for (b = ty; b < ty1; b++)
			for (tx = x0; tx <= x1; tx++)
				if (fb->suspect[b * fb->tw + tx])
					compare_tile(fb, img, px0, py0, tx, b);
		XDestroyImage(img);
	}
	return 0;
}

/*
 * One scan row in every band, a different row each pass (bit-reversed
 * order, so a change of any height is found within a few passes).
 * 1 if a row differs, -1 if a capture failed.
 */
static int
scan(struct fb *fb)
{
	int y, found = 0;

	for (y = fb_scan_row(fb->scan_pass++, TILE); y < fb->h; y += TILE) {
		XImage *img;

		if ((img = capture(fb, 0, y, fb->w, 1)) == NULL)
			return -1;
		fb_layout_row(&fb->lay, (const unsigned char *)img->data,
		    fb->row, fb->w);
		XDestroyImage(img);
		if (fb_row_diff(fb->suspect + (size_t)(y / TILE) * fb->tw,
		    fb->row, fb->shot + (size_t)y * fb->w, (size_t)fb->w * 4,
		    TILE * 4))
			found = 1;
	}
	return found;
}

static void
damage_fetch(struct fb *fb)
{
	XRectangle *r, bounds;
	int n = 0, i;

	fb->damaged = 0;
	XDamageSubtract(fb->dpy, fb->damage, None, fb->region);
	r = XFixesFetchRegionAndBounds(fb->dpy, fb->region, &n, &bounds);
	if (r == NULL)
		return;
	if (n > DAMAGE_RECTS_MAX)
		mark_rect(fb, bounds.x, bounds.y, bounds.width, bounds.height);
	else
		for (i = 0; i < n; i++)
			mark_rect(fb, r[i].x, r[i].y, r[i].width, r[i].height);
	XFree(r);
}

/* ---- the cursor in the picture ---- */

/*
 * The shape used when the server has no XFixes: X for the outline, . for
 * the inside.
 */
static const char *const arrow[] = {
	"X          ", "XX         ", "X.X        ", "X..X       ",
	"X...X      ", "X....X     ", "X.....X    ", "X......X   ",
	"X.......X  ", "X........X ", "X.....XXXXX", "X..X..X    ",
	"X.X X..X   ", "XX  X..X   ", "X    X..X  ", "     X..X  ",
	"      XX   ",
};

static void
cursor_set(struct fb *fb, int w, int h, int hx, int hy, uint32_t *premul,
    unsigned long serial)
{
	uint32_t *straight;
	int i;

	if ((straight = malloc((size_t)w * h * sizeof *straight)) == NULL) {
		free(premul);
		return;
	}
	for (i = 0; i < w * h; i++) {
		uint32_t p = premul[i], a = p >> 24, r, g, b;

		if (a == 0) {
			straight[i] = 0;
			continue;
		}
		/* RFB cursors have no alpha: undo the premultiplication */
		r = (p >> 16 & 0xff) * 255 / a;
		g = (p >> 8 & 0xff) * 255 / a;
		b = (p & 0xff) * 255 / a;
		straight[i] = a << 24 | (r > 255 ? 255 : r) << 16 |
		    (g > 255 ? 255 : g) << 8 | (b > 255 ? 255 : b);
	}
	fb->host->cursor(fb->host->srv, w, h, hx, hy, straight);
	free(straight);
	free(fb->cur);
	fb->cur = premul;
	fb->cur_w = w;
	fb->cur_h = h;
	fb->cur_hx = hx;
	fb->cur_hy = hy;
	fb->cur_serial = serial;
	fb->cursor_dirty = 1;
}

static void
cursor_fetch(struct fb *fb)
{
	XFixesCursorImage *ci;
	uint32_t *premul;
	int i, n;

	if ((ci = XFixesGetCursorImage(fb->dpy)) == NULL)
		return;
	if ((ci->cursor_serial == fb->cur_serial && fb->cur != NULL) ||
	    ci->width == 0 || ci->height == 0 ||
	    ci->width > CURSOR_SIDE_MAX || ci->height > CURSOR_SIDE_MAX) {
		XFree(ci);
		return;
	}
	n = ci->width * ci->height;
	if ((premul = malloc((size_t)n * sizeof *premul)) != NULL) {
		for (i = 0; i < n; i++)	/* unsigned long per pixel */
			premul[i] = (uint32_t)ci->pixels[i];
		cursor_set(fb, ci->width, ci->height, ci->xhot, ci->yhot,
		    premul, ci->cursor_serial);
	}
	XFree(ci);
}

static void
cursor_default(struct fb *fb)
{
	int w = (int)strlen(arrow[0]), h = (int)(sizeof arrow / sizeof *arrow);
	uint32_t *p;
	int x, y;

	if ((p = calloc((size_t)w * h, sizeof *p)) == NULL)
		return;
	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++)
			p[y * w + x] = arrow[y][x] == 'X' ? 0xff000000 :
			    arrow[y][x] == '.' ? 0xffffffff : 0;
	cursor_set(fb, w, h, 0, 0, p, 0);
}

static void
copy_rect(struct fb *fb, const struct rect *r)
{
	int j;

	for (j = r->y; j < r->y + r->h; j++)
		memcpy(fb->px + (size_t)j * fb->w + r->x,
		    fb->shot + (size_t)j * fb->w + r->x, (size_t)r->w * 4);
}

/* Blend the cursor over px at (cx,cy); returns the clipped rectangle. */
static struct rect
cursor_blend(struct fb *fb, int cx, int cy)
{
	struct rect r = { cx, cy, fb->cur_w, fb->cur_h };
	int i, j;

	if (r.x < 0) {
		r.w += r.x;
		r.x = 0;
	}
	if (r.y < 0) {
		r.h += r.y;
		r.y = 0;
	}
	if (r.x + r.w > fb->w)
		r.w = fb->w - r.x;
	if (r.y + r.h > fb->h)
		r.h = fb->h - r.y;
	if (r.w <= 0 || r.h <= 0)
		return (struct rect){ 0, 0, 0, 0 };
	for (j = r.y; j < r.y + r.h; j++) {
		const uint32_t *c = fb->cur + (size_t)(j - cy) * fb->cur_w +
		    (r.x - cx);
		uint32_t *d = fb->px + (size_t)j * fb->w + r.x;

		for (i = 0; i < r.w; i++) {
			uint32_t s = c[i], a = s >> 24, k = 255 - a, o = 0;
			int sh;

			if (a == 0)
				continue;
			for (sh = 0; sh <= 16; sh += 8) {
				uint32_t v = (s >> sh & 0xff) +
				    (d[i] >> sh & 0xff) * k / 255;

				o |= (v > 255 ? 255 : v) << sh;
			}
			d[i] = o;
		}
	}
	return r;
}

/* ---- reporting ---- */

/*
 * Copy changed tiles into px and report them as runs; keep the drawn
 * cursor where the pointer is.
 */
static void
report(struct fb *fb, long long now)
{
	struct fb_run run = { 0 };
	int any = 0, moved = 0, cx = 0, cy = 0, show = 0;

	while (fb_run_next(&run, fb->changed, TILE, fb->w, fb->h)) {
		struct rect r = { run.x, run.y, run.w, run.h };

		copy_rect(fb, &r);
		fb->host->damage(fb->host->srv, r.x, r.y, r.w, r.h);
		any = 1;
	}
	if (fb->draw_cursor && fb->cur != NULL &&
	    (fb->cursor_dirty || any || now - fb->last_ptr >= CURSOR_MS)) {
		Window rr, cr;
		int wx, wy;
		unsigned mask;

		fb->last_ptr = now;
		if (XQueryPointer(fb->dpy, fb->root, &rr, &cr, &cx, &cy, &wx,
		    &wy, &mask)) {
			cx -= fb->cur_hx;
			cy -= fb->cur_hy;
			show = 1;
		}
		moved = !show || cx != fb->cur_x || cy != fb->cur_y;
	}
	if (!(fb->cursor_dirty || any || moved) ||
	    (!fb->draw_cursor && fb->drawn.w == 0 && !fb->cursor_dirty))
		return;
	if (fb->drawn.w > 0) {
		copy_rect(fb, &fb->drawn);
		fb->host->damage(fb->host->srv, fb->drawn.x, fb->drawn.y,
		    fb->drawn.w, fb->drawn.h);
		fb->drawn.w = 0;
	}
	if (fb->draw_cursor && show) {
		fb->drawn = cursor_blend(fb, cx, cy);
		fb->cur_x = cx;
		fb->cur_y = cy;
		if (fb->drawn.w > 0)
			fb->host->damage(fb->host->srv, fb->drawn.x,
			    fb->drawn.y, fb->drawn.w, fb->drawn.h);
	}
	fb->cursor_dirty = 0;
}

/* ---- geometry ---- */

static int
geometry_set(struct fb *fb, int w, int h)
{
	size_t n = (size_t)w * h, tiles;
	int r;

	if (w < 1 || h < 1 || w > MAX_WH || h > MAX_WH)
		return -1;
	shm_teardown(fb);
	free(fb->shot);
	free(fb->px);
	free(fb->row);
	free(fb->suspect);
	free(fb->changed);
	fb->w = w;
	fb->h = h;
	fb->tw = (w + TILE - 1) / TILE;
	fb->th = (h + TILE - 1) / TILE;
	tiles = (size_t)fb->tw * fb->th;
	fb->shot = calloc(n, sizeof *fb->shot);
	fb->px = calloc(n, sizeof *fb->px);
	fb->row = calloc((size_t)w, sizeof *fb->row);
	fb->suspect = malloc(tiles);
	fb->changed = calloc(tiles, 1);
	fb->drawn.w = 0;
	fb->cursor_dirty = 1;
	if (!fb->shot || !fb->px || !fb->row || !fb->suspect || !fb->changed)
		return -1;
	r = shm_setup(fb);
	if (r < 0 && !fb->shm_warned) {
		fb->shm_warned = 1;	/* once, not at every resize */
		if (r == -2)
			fb->host->log(fb->host->srv, LOG_NOTICE, "x11: no "
			    "MIT-SHM on display %s: capturing with XGetImage",
			    DisplayString(fb->dpy));
		else
			fb->host->log(fb->host->srv, LOG_NOTICE, "x11: cannot "
			    "share memory with display %s (remote?): capturing "
			    "with XGetImage", DisplayString(fb->dpy));
	}
	return 0;
}

/* The whole screen into shot and px, nothing reported. */
static int
capture_all(struct fb *fb)
{
	memset(fb->suspect, 1, (size_t)fb->tw * fb->th);
	if (capture_suspects(fb) < 0)
		return -1;
	memset(fb->changed, 0, (size_t)fb->tw * fb->th);
	memcpy(fb->px, fb->shot, (size_t)fb->w * fb->h * sizeof *fb->px);
	return 0;
}

/*
 * The root window changed size (or may have): follow it.  Once the
 * buffers are rebuilt the server must hear of it, whatever happens next:
 * it still points at the old ones.
 */
static void
size_check(struct fb *fb)
{
	Window r;
	int x, y, tries, rebuilt = 0;
	unsigned w, h, bw, d;

	for (tries = 0; tries < 3; tries++) {
		if (!XGetGeometry(fb->dpy, fb->root, &r, &x, &y, &w, &h, &bw,
		    &d) || ((int)w == fb->w && (int)h == fb->h))
			break;
		if (geometry_set(fb, (int)w, (int)h) < 0) {
			fb->host->log(fb->host->srv, LOG_ERR, "x11: cannot "
			    "follow the screen to %ux%u (limit %d, or out of "
			    "memory)", w, h, MAX_WH);
			exit(1);
		}
		rebuilt = 1;
		if (capture_all(fb) == 0)
			break;
		/* resized again while capturing: look again */
	}
	if (rebuilt)
		fb->host->resized(fb->host->srv);
}

/* ---- keyboard ---- */

static KeySym
sym0(const struct fb *fb, int kc)
{
	if (fb->xkb != NULL)
		return XkbKeyNumSyms(fb->xkb, kc) > 0 ?
		    XkbKeySymEntry(fb->xkb, kc, 0, 0) : NoSymbol;
	return fb->core[(size_t)(kc - fb->min_kc) * fb->core_per];
}

static int
key_unbound(const struct fb *fb, int kc)
{
	int i;

	if (fb->kcmods[kc])
		return 0;
	if (fb->xkb != NULL)
		return XkbKeyNumSyms(fb->xkb, kc) == 0 ||
		    (XkbKeyNumSyms(fb->xkb, kc) == 1 &&
		    XkbKeySymEntry(fb->xkb, kc, 0, 0) == NoSymbol);
	for (i = 0; i < fb->core_per; i++)
		if (fb->core[(size_t)(kc - fb->min_kc) * fb->core_per + i])
			return 0;
	return 1;
}

/*
 * Modifier keys we may press to set a modifier: plain set-while-held
 * keys.  Lock keys would latch, and under XKB Mode_switch moves the group
 * rather than setting its modifier.
 */
static int
setter_rank(const struct fb *fb, KeySym ks)
{
	static const KeySym pref[] = {
		XK_Shift_L, XK_Shift_R, XK_Control_L, XK_Control_R,
		XK_ISO_Level3_Shift, XK_Alt_L, XK_Alt_R, XK_Meta_L, XK_Meta_R,
		XK_Super_L, XK_Super_R, XK_Hyper_L, XK_Hyper_R,
		XK_ISO_Level5_Shift, XK_Mode_switch,
	};
	int i, n = (int)(sizeof pref / sizeof *pref);

	if (fb->xkb != NULL)
		n--;
	for (i = 0; i < n; i++)
		if (pref[i] == ks)
			return n - i;
	return 0;
}

static void
keymap_load(struct fb *fb)
{
	XModifierKeymap *mm;
	int m, i, kc, rank[8] = { 0 };

	if (fb->xkb != NULL)
		XkbFreeKeyboard(fb->xkb, 0, True);
	fb->xkb = NULL;
	if (fb->core != NULL)
		XFree(fb->core);
	fb->core = NULL;
	XDisplayKeycodes(fb->dpy, &fb->min_kc, &fb->max_kc);
	if (fb->have_xkb)
		fb->xkb = XkbGetMap(fb->dpy, XkbKeyTypesMask | XkbKeySymsMask,
		    XkbUseCoreKbd);
	fb->evdev = 0;
	if (fb->xkb != NULL) {
		fb->min_kc = fb->xkb->min_key_code;
		fb->max_kc = fb->xkb->max_key_code;
		/* Xorg's evdev driver, Xvfb, Xwayland: X keycode = evdev + 8;
		 * the older "xfree86" numbering is not that */
		if (XkbGetNames(fb->dpy, XkbKeycodesNameMask, fb->xkb) ==
		    Success && fb->xkb->names != NULL &&
		    fb->xkb->names->keycodes != None) {
			char *n = XGetAtomName(fb->dpy, fb->xkb->names->keycodes);

			fb->evdev = n != NULL && strncmp(n, "evdev", 5) == 0;
			if (n != NULL)
				XFree(n);
		}
	} else {
		fb->core = XGetKeyboardMapping(fb->dpy, (KeyCode)fb->min_kc,
		    fb->max_kc - fb->min_kc + 1, &fb->core_per);
		if (fb->core == NULL)
			fb->max_kc = fb->min_kc - 1;	/* no keys */
	}
	memset(fb->kcmods, 0, sizeof fb->kcmods);
	memset(fb->setter, 0, sizeof fb->setter);
	fb->mode_switch = 0;
	if ((mm = XGetModifierMapping(fb->dpy)) != NULL) {
		for (m = 0; m < 8; m++)
			for (i = 0; i < mm->max_keypermod; i++) {
				kc = mm->modifiermap[m * mm->max_keypermod + i];
				if (kc < fb->min_kc || kc > fb->max_kc)
					continue;
				fb->kcmods[kc] |= (uint8_t)(1u << m);
				if (sym0(fb, kc) == XK_Mode_switch)
					fb->mode_switch = 1u << m;
				if (setter_rank(fb, sym0(fb, kc)) > rank[m]) {
					rank[m] = setter_rank(fb, sym0(fb, kc));
					fb->setter[m] = kc;
				}
			}
		XFreeModifiermap(mm);
	}
	fb->map_stale = 0;
}

static void
kstate_get(struct fb *fb, struct kstate *st)
{
	XkbStateRec x;
	Window r, c;
	int i;
	unsigned mask;

	memset(st, 0, sizeof *st);
	if (fb->have_xkb && XkbGetState(fb->dpy, XkbUseCoreKbd, &x) ==
	    Success) {
		st->eff = x.mods;
		st->fixed = x.locked_mods | x.latched_mods;
		st->group = x.group;
		return;
	}
	/* core: what no key holds down is locked */
	if (XQueryPointer(fb->dpy, fb->root, &r, &c, &i, &i, &i, &i, &mask)) {
		char keys[32];
		unsigned held = 0;
		int kc;

		st->eff = mask & 0xff;
		XQueryKeymap(fb->dpy, keys);
		for (kc = 0; kc < 256; kc++)
			if (keys[kc / 8] & (1 << (kc % 8)))
				held |= fb->kcmods[kc];
		st->fixed = st->eff & ~held;
	}
}

static void
plan_consider(const struct fb *fb, const struct kstate *st, int kc,
    unsigned want, unsigned care, struct keyplan *best)
{
	unsigned add = want & ~st->eff & care, del = st->eff & ~want & care;
	int m, cost;

	if (del & st->fixed)
		return;
	for (m = 0; m < 8; m++)
		if ((add & 1u << m) && fb->setter[m] == 0)
			return;
	cost = popcount(add) + popcount(del);
	if (best->kc == 0 || cost < best->cost) {
		best->kc = kc;
		best->want = want;
		best->care = care;
		best->cost = cost;
	}
}

static int
xkb_group(const XkbDescRec *xkb, int kc, int group)
{
	int n = XkbKeyNumGroups(xkb, kc), info = XkbKeyGroupInfo(xkb, kc);

	if (n == 0)
		return -1;
	if (group < n)
		return group;
	switch (XkbOutOfRangeGroupAction(info)) {
	case XkbClampIntoRange:
		return n - 1;
	case XkbRedirectIntoRange:
		group = XkbOutOfRangeGroupNumber(info);
		return group < n ? group : 0;
	default:
		return group % n;
	}
}

static int
type_level(const XkbKeyTypeRec *t, unsigned mods)
{
	int i;

	for (i = 0; i < t->map_count; i++)
		if (t->map[i].active && t->map[i].mods.mask ==
		    (mods & t->mods.mask))
			return t->map[i].level;
	return 0;
}

/* The cheapest way to type ks in the current state; kc 0 if none. */
static struct keyplan
plan_key(const struct fb *fb, const struct kstate *st, KeySym ks)
{
	struct keyplan best = { 0, 0, 0, 0 };
	int kc, lvl, i;

	for (kc = fb->min_kc; kc <= fb->max_kc; kc++) {
		if (fb->xkb != NULL) {
			const XkbDescRec *x = fb->xkb;
			int g = xkb_group(x, kc, st->group);
			const XkbKeyTypeRec *t;
			unsigned care, sub;

			if (g < 0)
				continue;
			t = XkbKeyKeyType(x, kc, g);
			care = t->mods.mask;
			for (lvl = 0; lvl < XkbKeyGroupWidth(x, kc, g); lvl++) {
				if (XkbKeySymEntry(x, kc, lvl, g) != ks)
					continue;
				/* every modifier combination giving lvl */
				for (sub = care;; sub = (sub - 1) & care) {
					if (type_level(t, sub) == lvl)
						plan_consider(fb, st, kc, sub,
						    care, &best);
					if (sub == 0)
						break;
				}
			}
			continue;
		}
		for (i = 0; i < fb->core_per && i < 4; i++) {
			unsigned want = (i & 1 ? ShiftMask : 0) |
			    (i & 2 ? fb->mode_switch : 0);

			if (fb->core[(size_t)(kc - fb->min_kc) * fb->core_per +
			    i] != ks || ((i & 2) && !fb->mode_switch))
				continue;
			plan_consider(fb, st, kc, want, ShiftMask |
			    fb->mode_switch, &best);
		}
	}
	return best;
}

static void
spare_unbind(struct fb *fb, int i)
{
	KeySym none = NoSymbol;

	trap_start();
	XChangeKeyboardMapping(fb->dpy, fb->spare[i].kc, 1, &none, 1);
	trap_end(fb->dpy);
	fb->spare[i] = fb->spare[--fb->nspare];
	fb->map_stale = 1;
}

/* Give idle bindings back (all of them, or those held long enough). */
static void
spare_expire(struct fb *fb, long long now, int all)
{
	int i;

	for (i = fb->nspare - 1; i >= 0; i--)
		if (!fb->spare[i].down && (all ||
		    now - fb->spare[i].used >= SPARE_HOLD_MS))
			spare_unbind(fb, i);
}

/* Bind ks to a keycode no key uses; 0 if none can be had. */
static int
spare_bind(struct fb *fb, KeySym ks)
{
	KeySym syms[2] = { ks, ks };
	int i, kc = 0, lru = -1;

	for (i = 0; i < fb->nspare; i++)
		if (!fb->spare[i].down && (lru < 0 ||
		    fb->spare[i].used < fb->spare[lru].used))
			lru = i;
	if (fb->nspare == SPARE_MAX) {
		if (lru < 0)
			return 0;
		spare_unbind(fb, lru);
		keymap_load(fb);
	}
	for (kc = fb->max_kc; kc >= fb->min_kc && kc > 8; kc--) {
		for (i = 0; i < fb->nspare; i++)
			if (fb->spare[i].kc == kc)
				break;
		if (i == fb->nspare && key_unbound(fb, kc))
			break;
	}
	if (kc < fb->min_kc || kc <= 8)
		return 0;
	trap_start();
	XChangeKeyboardMapping(fb->dpy, kc, 2, syms, 1);
	if (trap_end(fb->dpy))
		return 0;
	fb->spare[fb->nspare].kc = kc;
	fb->spare[fb->nspare].ks = ks;
	fb->spare[fb->nspare].down = 0;
	fb->spare[fb->nspare].used = mono_ms();
	fb->nspare++;
	keymap_load(fb);
	return kc;
}

static void
spare_mark(struct fb *fb, int kc, int down)
{
	int i;

	for (i = 0; i < fb->nspare; i++)
		if (fb->spare[i].kc == kc) {
			fb->spare[i].down = down;
			fb->spare[i].used = mono_ms();
		}
}

/* Press p->kc with the modifiers it needs, then put them back. */
static void
press_planned(struct fb *fb, const struct kstate *st, const struct keyplan *p)
{
	unsigned add = p->want & ~st->eff & p->care;
	unsigned del = st->eff & ~p->want & p->care;
	int pressed[8], released[256], np = 0, nr = 0, m, kc, i;

	for (m = 0; m < 8; m++)
		if (add & 1u << m) {
			XTestFakeKeyEvent(fb->dpy, (unsigned)fb->setter[m],
			    True, CurrentTime);
			pressed[np++] = fb->setter[m];
		}
	if (del) {
		char keys[32];

		XQueryKeymap(fb->dpy, keys);
		for (kc = 8; kc < 256; kc++)
			if ((keys[kc / 8] & (1 << (kc % 8))) &&
			    (fb->kcmods[kc] & del) && kc != p->kc) {
				XTestFakeKeyEvent(fb->dpy, (unsigned)kc, False,
				    CurrentTime);
				released[nr++] = kc;
			}
	}
	XTestFakeKeyEvent(fb->dpy, (unsigned)p->kc, True, CurrentTime);
	for (i = np - 1; i >= 0; i--)
		XTestFakeKeyEvent(fb->dpy, (unsigned)pressed[i], False,
		    CurrentTime);
	for (i = 0; i < nr; i++)
		XTestFakeKeyEvent(fb->dpy, (unsigned)released[i], True,
		    CurrentTime);
}

static void
key_down(struct fb *fb, uint32_t keysym)
{
	struct kstate st;
	struct keyplan p;
	KeySym ks = keysym;
	int i;

	/*
	 * The viewer's auto-repeat (downs without ups): the X server repeats
	 * keys held through XTEST itself, at the user's rate, so passing
	 * these on would double the repeat.
	 */
	for (i = 0; i < fb->nheld; i++)
		if (fb->held[i].keysym == keysym)
			return;
	if (fb->nheld == HELD_MAX)
		return;		/* a key we could not release later */
	if (ks == NoSymbol || ks == XK_VoidSymbol)
		return;		/* would match every empty level */
	/* X defines no Unicode keysyms for Latin-1: they are the legacy ones */
	if ((ks & 0xffffff00) == 0x01000000 && ((ks & 0xff) >= 0xa0 ||
	    ((ks & 0xff) >= 0x20 && (ks & 0xff) < 0x7f)))
		ks &= 0xff;
	if (fb->map_stale)
		keymap_load(fb);
	kstate_get(fb, &st);
	p = plan_key(fb, &st, ks);
	if (p.kc == 0 && spare_bind(fb, ks) != 0)
		p = plan_key(fb, &st, ks);
	if (p.kc == 0)
		return;		/* no key, no spare keycode: dropped */
	press_planned(fb, &st, &p);
	spare_mark(fb, p.kc, 1);
	/* as the viewer named it: its key-up names it so */
	fb->held[fb->nheld].keysym = keysym;
	fb->held[fb->nheld].kc = p.kc;
	fb->nheld++;
}

/* Does key kc produce ks in some group and level? */
static int
key_has(const struct fb *fb, int kc, KeySym ks)
{
	int i, n;

	if (kc < fb->min_kc || kc > fb->max_kc)
		return 0;
	if (fb->xkb != NULL) {
		const KeySym *syms = XkbKeySymsPtr(fb->xkb, kc);

		n = XkbKeyNumSyms(fb->xkb, kc);
		for (i = 0; i < n; i++)
			if (syms[i] == ks)
				return 1;
		return 0;
	}
	for (i = 0; i < fb->core_per; i++)
		if (fb->core[(size_t)(kc - fb->min_kc) * fb->core_per +
		    i] == ks)
			return 1;
	return 0;
}

static void
key_up(struct fb *fb, uint32_t keysym)
{
	int i;

	for (i = 0; i < fb->nheld; i++)
		if (fb->held[i].keysym == keysym)
			break;
	/* some viewers release 'A' after pressing 'a' (Shift came between):
	 * the key that makes either */
	if (i == fb->nheld)
		for (i = 0; i < fb->nheld; i++)
			if (key_has(fb, fb->held[i].kc, keysym))
				break;
	if (i == fb->nheld)
		return;		/* not pressed through us */
	XTestFakeKeyEvent(fb->dpy, (unsigned)fb->held[i].kc, False,
	    CurrentTime);
	spare_mark(fb, fb->held[i].kc, 0);
	fb->held[i] = fb->held[--fb->nheld];
}

/* ---- clipboard ---- */

/* In place; what Latin-1 cannot hold, and broken sequences, become '?'. */
static size_t
utf8_to_latin1(char *s, size_t n)
{
	size_t i = 0, o = 0;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		unsigned long cp;
		int len, k;

		if (c < 0x80) {
			s[o++] = (char)c;
			i++;
			continue;
		}
		len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
		cp = c & (0x7f >> len);
		for (k = 1; k < len && i + k < n &&
		    ((unsigned char)s[i + k] & 0xc0) == 0x80; k++)
			cp = cp << 6 | ((unsigned char)s[i + k] & 0x3f);
		if (k < len || len == 1) {
			s[o++] = '?';
			i += (size_t)k;
			continue;
		}
		s[o++] = cp >= 0x80 && cp <= 0xff ? (char)cp : '?';
		i += (size_t)len;
	}
	return o;
}

static int
predicate_time(Display *dpy, XEvent *ev, XPointer arg)
{
	const struct fb *fb = (const struct fb *)arg;

	(void)dpy;
	return ev->type == PropertyNotify && ev->xproperty.window == fb->win &&
	    ev->xproperty.atom == fb->a_time;
}

/* A server timestamp for selection ownership (ICCCM: not CurrentTime). */
static Time
server_time(struct fb *fb)
{
	XEvent ev;

	XChangeProperty(fb->dpy, fb->win, fb->a_time, XA_STRING, 8,
	    PropModeAppend, (const unsigned char *)"", 0);
	XSync(fb->dpy, False);
	if (XCheckIfEvent(fb->dpy, &ev, predicate_time, (XPointer)fb))
		return ev.xproperty.time;
	return CurrentTime;
}

static int
sel_owned(const struct fb *fb, Atom sel)
{
	return (sel == fb->a_clipboard && fb->own_clipboard) ||
	    (sel == XA_PRIMARY && fb->own_primary);
}

/* Largest property we can write in one request. */
static size_t
prop_max(const struct fb *fb)
{
	long units = XExtendedMaxRequestSize(fb->dpy);

	if (units <= 0)
		units = XMaxRequestSize(fb->dpy);
	return (size_t)units * 4 - 64;
}

static void
sel_request(struct fb *fb, const XSelectionRequestEvent *rq)
{
	XSelectionEvent ev;
	Atom prop = rq->property != None ? rq->property : rq->target;
	Atom t = rq->target;

	memset(&ev, 0, sizeof ev);
	ev.type = SelectionNotify;
	ev.display = fb->dpy;
	ev.requestor = rq->requestor;
	ev.selection = rq->selection;
	ev.target = rq->target;
	ev.property = None;
	ev.time = rq->time;
	trap_start();
	if (!sel_owned(fb, rq->selection) || (rq->time != CurrentTime &&
	    fb->cut_time != CurrentTime && rq->time < fb->cut_time)) {
		/* not ours, or asked about an older ownership: refuse */
	} else if (t == fb->a_targets) {
		long targets[5];

		targets[0] = (long)fb->a_targets;
		targets[1] = (long)fb->a_timestamp;
		targets[2] = (long)fb->a_utf8;
		targets[3] = (long)XA_STRING;
		targets[4] = (long)fb->a_text;
		XChangeProperty(fb->dpy, rq->requestor, prop, XA_ATOM, 32,
		    PropModeReplace, (unsigned char *)targets, 5);
		ev.property = prop;
	} else if (t == fb->a_timestamp) {
		long ts = (long)fb->cut_time;

		XChangeProperty(fb->dpy, rq->requestor, prop, XA_INTEGER, 32,
		    PropModeReplace, (unsigned char *)&ts, 1);
		ev.property = prop;
	} else if (t == fb->a_utf8 && fb->cut_utf8_len <= prop_max(fb)) {
		XChangeProperty(fb->dpy, rq->requestor, prop, fb->a_utf8, 8,
		    PropModeReplace, (unsigned char *)fb->cut_utf8,
		    (int)fb->cut_utf8_len);
		ev.property = prop;
	} else if ((t == XA_STRING || t == fb->a_text) &&
	    fb->cut_len <= prop_max(fb)) {
		/* TEXT: we choose the type, and STRING is Latin-1 */
		XChangeProperty(fb->dpy, rq->requestor, prop, XA_STRING, 8,
		    PropModeReplace, (unsigned char *)fb->cut,
		    (int)fb->cut_len);
		ev.property = prop;
	}
	/* MULTIPLE, INCR-sized data and other targets are refused */
	XSendEvent(fb->dpy, rq->requestor, False, NoEventMask, (XEvent *)&ev);
	trap_end(fb->dpy);	/* the requestor may be gone: not our error */
}

static void
sel_in_reset(struct fb *fb)
{
	free(fb->in);
	fb->in = NULL;
	fb->in_len = 0;
	fb->in_sel = None;
	fb->in_incr = 0;
}

/* FNV-1a: tells our own text coming back, without keeping a copy */
static uint64_t
text_hash(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
	return h;
}

/*
 * The selection's text goes to the server as UTF-8 (which viewers with
 * the Extended Clipboard get whole, the others as Latin-1); its hashes in
 * both forms tell a viewer's echo of it.
 */
static void
sel_in_done(struct fb *fb)
{
	size_t n = fb->in_len;
	char *u = fb->in, *l;

	if (fb->in == NULL) {
		sel_in_reset(fb);
		return;
	}
	if (!fb->in_utf8 && (u = malloc(2 * n + 1)) != NULL)
		n = utf8_of_latin1(fb->in, n, u);	/* STRING is Latin-1 */
	if (u != NULL && (l = malloc(n + 1)) != NULL) {
		size_t ln;

		memcpy(l, u, n);
		ln = utf8_to_latin1(l, n);
		if (ln > CUT_MAX)
			ln = CUT_MAX;
		fb->sent = 1;
		fb->sent_len = ln;
		fb->sent_hash = text_hash(l, ln);
		fb->sent_len8 = n;
		fb->sent_hash8 = text_hash(u, n);
		if (fb->host->cut_text_utf8 != NULL)
			fb->host->cut_text_utf8(fb->host->srv, u, n);
		else
			fb->host->cut_text(fb->host->srv, l, ln);
		free(l);
	}
	if (u != fb->in)
		free(u);
	sel_in_reset(fb);
}

static void
sel_in_append(struct fb *fb, const unsigned char *d, size_t n)
{
	if (fb->in == NULL && (fb->in = malloc(SEL_IN_MAX)) == NULL)
		return;
	if (n > SEL_IN_MAX - fb->in_len)
		n = SEL_IN_MAX - fb->in_len;	/* the rest is dropped */
	memcpy(fb->in + fb->in_len, d, n);
	fb->in_len += n;
}

static void
sel_convert(struct fb *fb, Atom target)
{
	fb->in_target = target;
	XDeleteProperty(fb->dpy, fb->win, fb->a_prop);
	XConvertSelection(fb->dpy, fb->in_sel, target, fb->a_prop, fb->win,
	    fb->in_time);
}

/* Another client took a selection: fetch its text. */
static void
sel_changed(struct fb *fb, const XFixesSelectionNotifyEvent *e)
{
	if (e->owner == None || e->owner == fb->win)
		return;
	sel_in_reset(fb);
	fb->in_sel = e->selection;
	fb->in_time = e->selection_timestamp;
	fb->in_deadline = mono_ms() + SEL_TIMEOUT_MS;
	sel_convert(fb, fb->a_utf8);
}

/* Read (and delete) our property; 0: done, 1: INCR transfer begins. */
static int
sel_read_prop(struct fb *fb)
{
	Atom type;
	int format;
	unsigned long n, after;
	unsigned char *data = NULL;

	if (XGetWindowProperty(fb->dpy, fb->win, fb->a_prop, 0,
	    SEL_IN_MAX / 4 + 1, False, AnyPropertyType, &type, &format, &n,
	    &after, &data) != Success) {
		sel_in_reset(fb);
		return 0;
	}
	XDeleteProperty(fb->dpy, fb->win, fb->a_prop);
	if (type == fb->a_incr) {
		XFree(data);
		return 1;
	}
	if (format == 8 && data != NULL) {
		if (!fb->in_incr)
			fb->in_utf8 = type == fb->a_utf8;
		sel_in_append(fb, data, n);
	}
	XFree(data);
	if (!fb->in_incr || n == 0)
		sel_in_done(fb);
	return 0;
}

static void
sel_notify(struct fb *fb, const XSelectionEvent *e)
{
	if (fb->in_sel == None || e->selection != fb->in_sel ||
	    e->requestor != fb->win || e->target != fb->in_target)
		return;
	if (e->property == None) {
		if (fb->in_target == fb->a_utf8)
			sel_convert(fb, XA_STRING);	/* an older owner */
		else
			sel_in_reset(fb);
		return;
	}
	fb->in_utf8 = fb->in_target == fb->a_utf8;
	if (sel_read_prop(fb) == 1) {
		fb->in_incr = 1;	/* chunks come as PropertyNotify */
		fb->in_deadline = mono_ms() + SEL_TIMEOUT_MS;
	}
}

/* ---- events ---- */

static void
handle_event(struct fb *fb, XEvent *ev)
{
	if (fb->have_damage && ev->type == fb->damage_ev + XDamageNotify) {
		fb->damaged = 1;
		return;
	}
	if (fb->have_fixes && ev->type == fb->fixes_ev + XFixesCursorNotify) {
		cursor_fetch(fb);
		return;
	}
	if (fb->have_fixes && ev->type == fb->fixes_ev +
	    XFixesSelectionNotify) {
		sel_changed(fb, (XFixesSelectionNotifyEvent *)ev);
		return;
	}
	if (fb->have_randr && ev->type == fb->randr_ev +
	    RRScreenChangeNotify) {
		XRRUpdateConfiguration(ev);
		size_check(fb);
		return;
	}
	if (fb->have_xkb && ev->type == fb->xkb_ev) {
		fb->map_stale = 1;	/* map or keyboard changed */
		return;
	}
	switch (ev->type) {
	case ConfigureNotify:
		if (ev->xconfigure.window == fb->root)
			size_check(fb);
		break;
	case MappingNotify:
		XRefreshKeyboardMapping(&ev->xmapping);
		fb->map_stale = 1;
		break;
	case SelectionRequest:
		sel_request(fb, &ev->xselectionrequest);
		break;
	case SelectionClear:
		if (ev->xselectionclear.selection == fb->a_clipboard)
			fb->own_clipboard = 0;
		else if (ev->xselectionclear.selection == XA_PRIMARY)
			fb->own_primary = 0;
		break;
	case SelectionNotify:
		sel_notify(fb, &ev->xselection);
		break;
	case PropertyNotify:
		if (fb->in_incr && ev->xproperty.window == fb->win &&
		    ev->xproperty.atom == fb->a_prop &&
		    ev->xproperty.state == PropertyNewValue)
			sel_read_prop(fb);
		break;
	}
}

/* Handle everything the X server sent so far; never waits. */
static void
events(struct fb *fb)
{
	XEvent ev;

	while (XPending(fb->dpy) > 0) {
		XNextEvent(fb->dpy, &ev);
		handle_event(fb, &ev);
	}
	if (fb->in_sel != None && mono_ms() > fb->in_deadline)
		sel_in_reset(fb);	/* the owner never finished */
}

/* ---- the fb_source functions ---- */

static void
query_extensions(struct fb *fb)
{
	int err, major = XkbMajorVersion, minor = XkbMinorVersion, op;

	fb->have_xtest = XTestQueryExtension(fb->dpy, &op, &err, &major,
	    &minor);
	fb->have_damage = XDamageQueryExtension(fb->dpy, &fb->damage_ev, &err);
	fb->have_fixes = XFixesQueryExtension(fb->dpy, &fb->fixes_ev, &err);
	if (fb->have_fixes) {
		major = 2;	/* regions (for damage), selection and cursor
				 * events */
		minor = 0;
		XFixesQueryVersion(fb->dpy, &major, &minor);
		fb->have_fixes = major >= 2;
	}
	if (!fb->have_fixes)
		fb->have_damage = 0;	/* its regions are XFixes' */
	fb->have_randr = XRRQueryExtension(fb->dpy, &fb->randr_ev, &err);
	major = XkbMajorVersion;
	minor = XkbMinorVersion;
	fb->have_xkb = XkbQueryExtension(fb->dpy, &op, &fb->xkb_ev, &err,
	    &major, &minor);
}

static void x11_close(struct fb *);

static struct fb *
x11_open(const char *arg, const struct fb_host *host, char *err,
    size_t errlen)
{
	struct fb *fb;
	XImage *img;
	XWindowAttributes wa;
	const char *name = arg != NULL && *arg != '\0' ? arg : NULL;

	if ((fb = calloc(1, sizeof *fb)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	fb->host = host;
	if ((fb->dpy = XOpenDisplay(name)) == NULL) {
		snprintf(err, errlen, "cannot open X display '%s'",
		    XDisplayName(name));
		free(fb);
		return NULL;
	}
	XSetErrorHandler(on_x_error);
	XSetIOErrorHandler(on_x_io_error);
	fb->scr = DefaultScreen(fb->dpy);
	fb->root = RootWindow(fb->dpy, fb->scr);
	fb->vis = DefaultVisual(fb->dpy, fb->scr);
	fb->depth = DefaultDepth(fb->dpy, fb->scr);
	if (fb->vis->class != TrueColor && fb->vis->class != DirectColor) {
		snprintf(err, errlen, "X display %s: the root visual is not "
		    "true colour (depth %d): not supported",
		    DisplayString(fb->dpy), fb->depth);
		goto fail;
	}
	query_extensions(fb);
	XGetWindowAttributes(fb->dpy, fb->root, &wa);
	if (geometry_set(fb, wa.width, wa.height) < 0) {
		snprintf(err, errlen, "X display %s: cannot hold a %dx%d "
		    "screen (limit %d, or out of memory)",
		    DisplayString(fb->dpy), wa.width, wa.height, MAX_WH);
		goto fail;
	}
	if ((img = XGetImage(fb->dpy, fb->root, 0, 0, 1, 1, AllPlanes,
	    ZPixmap)) == NULL) {
		snprintf(err, errlen, "X display %s: cannot read the screen",
		    DisplayString(fb->dpy));
		goto fail;
	}
	if (layout_setup(&fb->lay, img, fb->vis) < 0) {
		snprintf(err, errlen, "X display %s: pixel format of %d bpp, "
		    "masks %lx/%lx/%lx not supported", DisplayString(fb->dpy),
		    img->bits_per_pixel, fb->vis->red_mask,
		    fb->vis->green_mask, fb->vis->blue_mask);
		XDestroyImage(img);
		goto fail;
	}
	XDestroyImage(img);
	if (capture_all(fb) < 0) {
		snprintf(err, errlen, "X display %s: cannot capture the screen",
		    DisplayString(fb->dpy));
		goto fail;
	}

	fb->win = XCreateSimpleWindow(fb->dpy, fb->root, -10, -10, 1, 1, 0, 0,
	    0);
	XSelectInput(fb->dpy, fb->win, PropertyChangeMask);
	XSelectInput(fb->dpy, fb->root, StructureNotifyMask);
	fb->a_clipboard = XInternAtom(fb->dpy, "CLIPBOARD", False);
	fb->a_targets = XInternAtom(fb->dpy, "TARGETS", False);
	fb->a_utf8 = XInternAtom(fb->dpy, "UTF8_STRING", False);
	fb->a_text = XInternAtom(fb->dpy, "TEXT", False);
	fb->a_incr = XInternAtom(fb->dpy, "INCR", False);
	fb->a_timestamp = XInternAtom(fb->dpy, "TIMESTAMP", False);
	fb->a_prop = XInternAtom(fb->dpy, "VNCSASL_SELECTION", False);
	fb->a_time = XInternAtom(fb->dpy, "VNCSASL_TIME", False);

	if (fb->have_damage) {
		fb->damage = XDamageCreate(fb->dpy, fb->root,
		    XDamageReportNonEmpty);
		fb->region = XFixesCreateRegion(fb->dpy, NULL, 0);
		fb->damaged = 1;	/* drawing since capture_all */
	}
	if (fb->have_fixes) {
		XFixesSelectCursorInput(fb->dpy, fb->root,
		    XFixesDisplayCursorNotifyMask);
		XFixesSelectSelectionInput(fb->dpy, fb->win, fb->a_clipboard,
		    XFixesSetSelectionOwnerNotifyMask);
		XFixesSelectSelectionInput(fb->dpy, fb->win, XA_PRIMARY,
		    XFixesSetSelectionOwnerNotifyMask);
		cursor_fetch(fb);
	}
	if (fb->cur == NULL)
		cursor_default(fb);
	if (fb->have_randr)
		XRRSelectInput(fb->dpy, fb->root, RRScreenChangeNotifyMask);
	if (fb->have_xkb)
		XkbSelectEvents(fb->dpy, XkbUseCoreKbd,
		    XkbNewKeyboardNotifyMask | XkbMapNotifyMask,
		    XkbNewKeyboardNotifyMask | XkbMapNotifyMask);
	if (!fb->have_xtest)
		fb->host->log(fb->host->srv, LOG_WARNING, "x11: display %s "
		    "has no XTEST: view only", DisplayString(fb->dpy));
	keymap_load(fb);
	fb->ptr_x = fb->ptr_y = -1;
	fb->next_scan = mono_ms() + SCAN_MS;
	XSync(fb->dpy, False);
	events(fb);
	return fb;
fail:
	x11_close(fb);
	return NULL;
}

/* Let go of every key and button pressed through us. */
static void
release_all(struct fb *fb)
{
	int i;

	if (!fb->have_xtest)
		return;
	for (i = fb->nheld - 1; i >= 0; i--) {
		XTestFakeKeyEvent(fb->dpy, (unsigned)fb->held[i].kc, False,
		    CurrentTime);
		spare_mark(fb, fb->held[i].kc, 0);
	}
	fb->nheld = 0;
	for (i = 0; i < BUTTONS; i++)
		if (fb->buttons & 1u << i)
			XTestFakeButtonEvent(fb->dpy, (unsigned)i + 1, False,
			    CurrentTime);
	fb->buttons = 0;
}

static void
x11_release(struct fb *fb)
{
	release_all(fb);
	spare_expire(fb, mono_ms(), 0);
	events(fb);
}

static void
x11_close(struct fb *fb)
{
	if (fb == NULL)
		return;
	if (fb->dpy != NULL) {
		release_all(fb);
		spare_expire(fb, 0, 1);
		if (fb->have_damage && fb->damage)
			XDamageDestroy(fb->dpy, fb->damage);
		shm_teardown(fb);
		if (fb->xkb != NULL)
			XkbFreeKeyboard(fb->xkb, 0, True);
		if (fb->core != NULL)
			XFree(fb->core);
		XCloseDisplay(fb->dpy);
	}
	free(fb->shot);
	free(fb->px);
	free(fb->row);
	free(fb->suspect);
	free(fb->changed);
	free(fb->cur);
	free(fb->cut);
	free(fb->cut_utf8);
	free(fb->in);
	free(fb);
}

static void
x11_frame(struct fb *fb, struct fb_frame *f)
{
	f->width = fb->w;
	f->height = fb->h;
	f->stride = fb->w;
	f->pixels = fb->px;
}

static int
x11_fd(struct fb *fb)
{
	return ConnectionNumber(fb->dpy);
}

static int
x11_next_ms(struct fb *fb)
{
	long long now = mono_ms(), due = fb->next_scan;
	int i;

	if ((fb->damaged || fb->cursor_dirty) && fb->last_cap + FRAME_MS < due)
		due = fb->last_cap + FRAME_MS;
	if (fb->draw_cursor && fb->last_ptr + CURSOR_MS < due)
		due = fb->last_ptr + CURSOR_MS;
	for (i = 0; i < fb->nspare; i++)
		if (!fb->spare[i].down && fb->spare[i].used + SPARE_HOLD_MS <
		    due)
			due = fb->spare[i].used + SPARE_HOLD_MS;
	if (due <= now)
		return 0;
	return due - now > INT_MAX ? INT_MAX : (int)(due - now);
}

static void
x11_readable(struct fb *fb)
{
	events(fb);
}

static void
x11_grab(struct fb *fb)
{
	long long now = mono_ms();
	int work = 0;

	events(fb);
	spare_expire(fb, now, 0);
	if (fb->damaged && now - fb->last_cap >= FRAME_MS) {
		damage_fetch(fb);
		work = 1;
	}
	if (now >= fb->next_scan) {
		int base = fb->have_damage ? SCAN_DAMAGE_MS : SCAN_MS, found;

		if ((found = scan(fb)) < 0)
			size_check(fb);
		if (found > 0 || fb->damaged || fb->scan_ms < base)
			fb->scan_ms = base;
		else if (fb->scan_ms < base * SCAN_BACKOFF)
			fb->scan_ms += base;
		fb->next_scan = now + fb->scan_ms;
		work = 1;
	}
	if (work) {
		fb->last_cap = now;
		if (capture_suspects(fb) < 0)
			size_check(fb);
	}
	report(fb, now);
	events(fb);
}

static void
x11_key(struct fb *fb, uint32_t keysym, int down)
{
	if (!fb->have_xtest)
		return;
	/* a round trip first: keymap changes made before this key arrive */
	XSync(fb->dpy, False);
	events(fb);
	if (down)
		key_down(fb, keysym);
	else
		key_up(fb, keysym);
	events(fb);
}

/*
 * A key by its position (QEMU extended key events): with an evdev
 * keymap the X keycode is evdev + 8, pressed as it is, no modifier
 * planned around it (the viewer sends its Shift and AltGr as keys too),
 * so the display's own layout decides what it types.  Otherwise, or for
 * a key the keymap leaves empty, the keysym the viewer meant.
 */
static void
x11_keycode(struct fb *fb, unsigned evdev, uint32_t keysym, int down)
{
	int kc = (int)evdev + 8, i;

	if (!fb->have_xtest)
		return;
	XSync(fb->dpy, False);
	events(fb);
	if (fb->map_stale)
		keymap_load(fb);
	if (!fb->evdev || kc < fb->min_kc || kc > fb->max_kc || kc > 255 ||
	    key_unbound(fb, kc)) {
		if (keysym == 0)
			return;
		if (down)
			key_down(fb, keysym);
		else
			key_up(fb, keysym);
		events(fb);
		return;
	}
	for (i = 0; i < fb->nheld; i++)
		if (fb->held[i].kc == kc)
			break;
	if (down && i == fb->nheld && fb->nheld < HELD_MAX) {
		/* downs of a held key are the viewer's auto-repeat: dropped,
		 * X repeats by itself */
		XTestFakeKeyEvent(fb->dpy, (unsigned)kc, True, CurrentTime);
		fb->held[fb->nheld].keysym = keysym;
		fb->held[fb->nheld].kc = kc;
		fb->nheld++;
	} else if (!down && i < fb->nheld) {
		XTestFakeKeyEvent(fb->dpy, (unsigned)kc, False, CurrentTime);
		fb->held[i] = fb->held[--fb->nheld];
	}
	events(fb);
}

static void
x11_pointer(struct fb *fb, int x, int y, unsigned buttons)
{
	int i;

	if (!fb->have_xtest)
		return;
	/* moved, or clicking: the local mouse may have moved meanwhile */
	if (x != fb->ptr_x || y != fb->ptr_y || buttons != fb->buttons) {
		XTestFakeMotionEvent(fb->dpy, fb->scr, x, y, CurrentTime);
		fb->ptr_x = x;
		fb->ptr_y = y;
	}
	/* bits 3-6: the wheel as buttons 4-7 (up, down, left, right) */
	for (i = 0; i < BUTTONS; i++)
		if ((buttons ^ fb->buttons) & 1u << i)
			XTestFakeButtonEvent(fb->dpy, (unsigned)i + 1,
			    buttons & 1u << i ? True : False, CurrentTime);
	fb->buttons = buttons & ((1u << BUTTONS) - 1);
	events(fb);
}

/* Own CLIPBOARD and PRIMARY with this text (l: Latin-1, u: UTF-8). */
static void
sel_own(struct fb *fb, char *l, size_t ln, char *u, size_t un)
{
	free(fb->cut);
	free(fb->cut_utf8);
	fb->cut = l;
	fb->cut_len = ln;
	fb->cut_utf8 = u;
	fb->cut_utf8_len = un;
	fb->cut_time = server_time(fb);
	XSetSelectionOwner(fb->dpy, fb->a_clipboard, fb->win, fb->cut_time);
	XSetSelectionOwner(fb->dpy, XA_PRIMARY, fb->win, fb->cut_time);
	fb->own_clipboard = XGetSelectionOwner(fb->dpy, fb->a_clipboard) ==
	    fb->win;
	fb->own_primary = XGetSelectionOwner(fb->dpy, XA_PRIMARY) == fb->win;
	events(fb);
}

/* UTF-8 from a viewer with the Extended Clipboard (LF line ends). */
static void
x11_cut_text_utf8(struct fb *fb, const char *text, size_t len)
{
	char *l, *u;
	size_t ln;

	if (len > SEL_IN_MAX)	/* at a character */
		for (len = SEL_IN_MAX; len > 0 &&
		    ((unsigned char)text[len] & 0xc0) == 0x80; len--)
			;
	if (fb->sent && len == fb->sent_len8 &&
	    text_hash(text, len) == fb->sent_hash8)
		return;		/* its echo: see x11_cut_text() */
	l = malloc(len + 1);
	u = malloc(len + 1);
	if (l == NULL || u == NULL) {
		free(l);
		free(u);
		return;
	}
	memcpy(u, text, len);
	memcpy(l, text, len);
	ln = utf8_to_latin1(l, len);
	sel_own(fb, l, ln, u, len);
}

static void
x11_cut_text(struct fb *fb, const char *text, size_t len)
{
	char *l, *u;

	if (len > CUT_MAX)
		len = CUT_MAX;
	/*
	 * Viewers that set their clipboard from ServerCutText may send it
	 * straight back: taking the selections for it would only take them
	 * from the application that has them.
	 */
	if (fb->sent && len == fb->sent_len &&
	    text_hash(text, len) == fb->sent_hash)
		return;
	l = malloc(len + 1);
	u = malloc(2 * len + 1);
	if (l == NULL || u == NULL) {
		free(l);
		free(u);
		return;
	}
	memcpy(l, text, len);
	sel_own(fb, l, len, u, utf8_of_latin1(text, len, u));
}

/* A viewer may not resize someone's real screen. */
static int
x11_resize(struct fb *fb, int w, int h)
{
	(void)fb;
	(void)w;
	(void)h;
	return -1;
}

static void
x11_draw_cursor(struct fb *fb, int yes)
{
	fb->draw_cursor = yes;
	fb->cursor_dirty = 1;
}

const struct fb_source fb_source = {
	.name = "x11",
	.arg_help = "X display name (default $DISPLAY)",
	.open = x11_open,
	.close = x11_close,
	.frame = x11_frame,
	.fd = x11_fd,
	.next_ms = x11_next_ms,
	.readable = x11_readable,
	.grab = x11_grab,
	.key = x11_key,
	.keycode = x11_keycode,
	.pointer = x11_pointer,
	.cut_text = x11_cut_text,
	.cut_text_utf8 = x11_cut_text_utf8,
	.resize = x11_resize,
	.release = x11_release,
	.draw_cursor = x11_draw_cursor,
};
