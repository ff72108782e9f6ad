/*
 * workload.c - a deterministic X client for make bench: it covers the
 * screen with one override-redirect window and draws one of four scenes.
 *
 *   workload -d DISPLAY -s static|cells|full|scroll [-r FPS] [-t SECS]
 *
 *   static  a desktop-like picture (gradient, windows, text-like glyphs),
 *           drawn once; then nothing changes.
 *   cells   the same picture; every frame CELLS cells of CELL x CELL
 *           pixels (two colours each, positions from a fixed LCG) are
 *           drawn, like clocks, spinners and terminal cursors, and the
 *           last frame's cells give way to the picture again (so every
 *           frame changes 2 x CELLS cells, and the screen stays the
 *           picture and CELLS cells however long it runs).
 *   full    every pixel changes every frame: two thirds of the screen are
 *           a text-like document that scrolls by SCROLL rows a frame on a
 *           background whose grey level steps every frame, one third is a
 *           smooth colour gradient that moves.  Few colours per tile in
 *           the document, many in the gradient: desktop content, not
 *           video noise.
 *   scroll  a web page scrolling SCROLL rows a frame: dark glyphs on
 *           white with a photo-like picture now and then, under a still
 *           title bar, moved with XCopyArea and the new rows drawn below
 *           as browsers do; almost every pixel changes every frame, most
 *           of the page has two colours, the pictures many.
 *
 * Frames are drawn at absolute deadlines, FPS a second (default 30), with
 * MIT-SHM when the display allows it; each frame ends with XSync, so the
 * X server has drawn it.  The program exits after SECS seconds (default
 * 900) or when the display goes away.
 */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <X11/extensions/XShm.h>

#include "../vncsasl.h"		/* fb_hash() */

#define CELL	32		/* side of a changing cell */
#define CELLS	12		/* cells redrawn per frame */
#define SCROLL	4		/* document rows scrolled per frame */
#define LINE_H	20		/* text line height */
#define GLYPH_W	10		/* glyph cell width */
#define GLYPHS	80		/* shapes in the alphabet */
#define TITLE_H	24		/* still title bar of the scroll scene */
#define PIC_EVERY 720		/* scroll: a picture every this many rows, */
#define PIC_TOP	120		/* starting this far down, */
#define PIC_H	300		/* this high */
#define FPS_MAX	240
#define OPEN_TRIES 100		/* XOpenDisplay, 0.1 s apart */
#define SECS_MAX 3600

/*
 * A text-like glyph pixel: line `line`, glyph column gx, pixel (px, py).
 * Glyphs come from an alphabet of GLYPHS shapes, as letters do.
 */
static int
glyph_on(uint32_t line, int gx, int px, int py)
{
	uint32_t g = fb_hash(line * 7919u + (uint32_t)gx) % GLYPHS;

	if (g % 8 == 0 || py < 4 || py >= 16 || px >= 8)
		return 0;	/* spaces, line spacing, letter spacing */
	return (fb_hash(g * 977u + (uint32_t)py * 131u) >> (px * 3) & 3) == 0;
}

static uint32_t
static_pixel(int w, int h, int x, int y)
{
	int wx = w / 8, wy = h / 8, ww = w / 2, wh = h / 2;

	/* two "windows": title bar, then a page of glyphs */
	if ((x >= wx && x < wx + ww && y >= wy && y < wy + wh) ||
	    (x >= w / 2 && x < w / 2 + w / 3 && y >= h / 3 && y < h / 3 + h / 2)) {
		int ox = x >= w / 2 && y >= h / 3 && !(x < wx + ww && y < wy + wh) ?
		    w / 2 : wx;
		int oy = ox == wx ? wy : h / 3, lx = x - ox, ly = y - oy;

		if (ly < 24)
			return 0x3060a0;
		return glyph_on((uint32_t)(ly - 24) / LINE_H + (uint32_t)oy,
		    lx / GLYPH_W, lx % GLYPH_W, (ly - 24) % LINE_H) ?
		    0x202020 : 0xf0f0f0;
	}
	return (uint32_t)(x * 64 / w + 32) << 16 | (uint32_t)(y * 96 / h + 64) << 8 |
	    (uint32_t)(160 + (x + y) * 64 / (w + h));
}

/*
 * The document rows of the full and scroll scenes, as glyph masks: row yy
 * of the endless document lives at yy % h of a ring of h rows, so a frame
 * that scrolls by SCROLL rows computes SCROLL new rows, not h (glyph_on
 * for every pixel of a 1920x1080 frame cost a third of a core).
 */
struct doc {
	uint8_t *mask;		/* h rows of w bytes: 1 = glyph pixel */
	int w, h, margin;	/* margin: blank pixels left of a column */
	int cols;		/* text columns across the width */
	uint32_t next;		/* first document row not yet computed */
};

static void
doc_row(struct doc *d, uint32_t yy)
{
	uint8_t *row = d->mask + (size_t)(yy % (uint32_t)d->h) * d->w;
	int x;

	for (x = 0; x < d->w; x++)
		row[x] = x % (d->w / d->cols) >= d->margin && glyph_on(yy / LINE_H,
		    x / GLYPH_W, x % GLYPH_W, (int)(yy % LINE_H));
}

/* make rows [top, top + h) of the document available */
static const uint8_t *
doc_rows(struct doc *d, uint32_t top)
{
	uint32_t yy = d->next > top ? d->next : top;

	for (; yy < top + (uint32_t)d->h; yy++)
		doc_row(d, yy);
	d->next = yy;
	return d->mask;
}

static void
full_frame(uint32_t *px, size_t stride, int w, int h, struct doc *d,
    uint32_t f)
{
	uint32_t top = f * SCROLL, bg = 200 + f % 40;
	uint32_t fg = f % 2 ? 0x101010 : 0x303030, bgpx = bg << 16 | bg << 8 | bg;
	const uint8_t *mask = doc_rows(d, top);
	int x, y;

	for (y = 0; y < h; y++) {
		uint32_t *row = px + (size_t)y * stride;
		const uint8_t *m = mask + (size_t)((top + (uint32_t)y) %
		    (uint32_t)h) * w;

		for (x = 0; x < 2 * w / 3; x++)
			row[x] = m[x] ? fg : bgpx;
		for (; x < w; x++)
			row[x] = ((uint32_t)x * 2 + f * 3) % 256 << 16 |
			    ((uint32_t)y * 2 + f * 5) % 256 << 8 |
			    ((uint32_t)(x + y) + f * 7) % 256;
	}
}

struct canvas {
	Display *dpy;
	Window win;
	GC gc;
	XImage *img;
	XShmSegmentInfo shm;
	int use_shm, w, h;
};

static int shm_failed;

static int
on_xerror(Display *dpy, XErrorEvent *e)
{
	(void)dpy;
	(void)e;
	shm_failed = 1;
	return 0;
}

static void
canvas_image(struct canvas *cv)
{
	Visual *vis = DefaultVisual(cv->dpy, DefaultScreen(cv->dpy));
	int depth = DefaultDepth(cv->dpy, DefaultScreen(cv->dpy));

	if (XShmQueryExtension(cv->dpy)) {
		cv->img = XShmCreateImage(cv->dpy, vis, (unsigned)depth, ZPixmap,
		    NULL, &cv->shm, (unsigned)cv->w, (unsigned)cv->h);
		if (cv->img != NULL) {
			cv->shm.shmid = shmget(IPC_PRIVATE, (size_t)cv->img->bytes_per_line *
			    cv->img->height, IPC_CREAT | 0600);
			cv->shm.shmaddr = cv->img->data = shmat(cv->shm.shmid, NULL, 0);
			cv->shm.readOnly = False;
			XSetErrorHandler(on_xerror);
			XShmAttach(cv->dpy, &cv->shm);
			XSync(cv->dpy, False);
			shmctl(cv->shm.shmid, IPC_RMID, NULL);
			if (!shm_failed && cv->shm.shmaddr != (void *)-1) {
				cv->use_shm = 1;
				return;
			}
			XDestroyImage(cv->img);
		}
	}
	cv->img = XCreateImage(cv->dpy, vis, (unsigned)depth, ZPixmap, 0,
	    malloc((size_t)cv->w * cv->h * 4), (unsigned)cv->w, (unsigned)cv->h,
	    32, 0);
	if (cv->img == NULL || cv->img->data == NULL) {
		fprintf(stderr, "workload: out of memory\n");
		exit(1);
	}
}

/* rows [y, y + n) of the image to the window */
static void
canvas_put_rows(struct canvas *cv, int y, int n)
{
	if (cv->use_shm)
		XShmPutImage(cv->dpy, cv->win, cv->gc, cv->img, 0, y, 0, y,
		    (unsigned)cv->w, (unsigned)n, False);
	else
		XPutImage(cv->dpy, cv->win, cv->gc, cv->img, 0, y, 0, y,
		    (unsigned)cv->w, (unsigned)n);
}

/* an area of the image to the window */
static void
canvas_put_area(struct canvas *cv, int x, int y, int w, int h)
{
	if (cv->use_shm)
		XShmPutImage(cv->dpy, cv->win, cv->gc, cv->img, x, y, x, y,
		    (unsigned)w, (unsigned)h, False);
	else
		XPutImage(cv->dpy, cv->win, cv->gc, cv->img, x, y, x, y,
		    (unsigned)w, (unsigned)h);
}

static void
canvas_put(struct canvas *cv)
{
	canvas_put_rows(cv, 0, cv->h);
}

static void
fill(struct canvas *cv, uint32_t (*px)(int, int, int, int, uint32_t),
    uint32_t f)
{
	int x, y;

	for (y = 0; y < cv->h; y++) {
		uint32_t *row = (uint32_t *)(void *)(cv->img->data +
		    (size_t)y * cv->img->bytes_per_line);

		for (x = 0; x < cv->w; x++)
			row[x] = px(cv->w, cv->h, x, y, f);
	}
}

static uint32_t
px_static(int w, int h, int x, int y, uint32_t f)
{
	(void)f;
	return static_pixel(w, h, x, y);
}

/*
 * A pixel of the scroll scene's page: dark glyphs on white, and every
 * PIC_EVERY rows an illustration (a photo-like picture: smooth colour
 * waves with grain, many colours per tile) in the right half.
 */
static uint32_t
page_pixel(int w, int x, uint32_t yy, int glyph)
{
	uint32_t py = yy % PIC_EVERY;

	if (x >= w - 16)
		return 0xc8c8c8;		/* scroll bar */
	if (py >= PIC_TOP && py < PIC_TOP + PIC_H && x >= w / 2 &&
	    x < w / 2 + w / 3) {
		double fx = x, fy = yy;
		int grain = (int)(fb_hash((uint32_t)x * 7919u + yy) & 15) - 8;
		int r = 128 + (int)(90 * sin(fx * 0.021 + fy * 0.013)) + grain;
		int g = 128 + (int)(90 * sin(fx * 0.017 - fy * 0.019 + 1)) + grain;
		int b = 128 + (int)(90 * sin((fx + fy) * 0.011 + 2)) + grain;

		r = r < 0 ? 0 : r > 255 ? 255 : r;
		g = g < 0 ? 0 : g > 255 ? 255 : g;
		b = b < 0 ? 0 : b > 255 ? 255 : b;
		return (uint32_t)r << 16 | (uint32_t)g << 8 | (uint32_t)b;
	}
	return glyph ? 0x202020 : 0xffffff;
}

/*
 * Scroll: move the page up by SCROLL rows in the X server, then draw the
 * SCROLL new rows at the bottom (from the image, rows h - SCROLL..h).
 */
static void
scroll_frame(struct canvas *cv, struct doc *d, uint32_t f)
{
	int page = cv->h - TITLE_H, x, y;
	uint32_t top = f * SCROLL;
	const uint8_t *mask = doc_rows(d, top);

	for (y = page - SCROLL; y < page; y++) {
		uint32_t *row = (uint32_t *)(void *)(cv->img->data +
		    (size_t)(TITLE_H + y) * cv->img->bytes_per_line);
		const uint8_t *m = mask + (size_t)((top + (uint32_t)y) %
		    (uint32_t)d->h) * d->w;

		for (x = 0; x < cv->w; x++)
			row[x] = page_pixel(cv->w, x, top + (uint32_t)y, m[x]);
	}
	XCopyArea(cv->dpy, cv->win, cv->win, cv->gc, 0, TITLE_H + SCROLL,
	    (unsigned)cv->w, (unsigned)(page - SCROLL), 0, TITLE_H);
	canvas_put_rows(cv, cv->h - SCROLL, SCROLL);
}

/* the scroll scene's first picture: title bar and the first page */
static void
scroll_first(struct canvas *cv, struct doc *d)
{
	int x, y;
	const uint8_t *mask = doc_rows(d, 0);

	for (y = 0; y < cv->h; y++) {
		uint32_t *row = (uint32_t *)(void *)(cv->img->data +
		    (size_t)y * cv->img->bytes_per_line);
		const uint8_t *m = mask + (size_t)(y < TITLE_H ? 0 :
		    y - TITLE_H) * d->w;

		for (x = 0; x < cv->w; x++)
			row[x] = y < TITLE_H ? 0x3060a0 : page_pixel(cv->w, x,
			    (uint32_t)(y - TITLE_H), m[x]);
	}
}

static void
usage(void)
{
	fprintf(stderr, "usage: workload -d DISPLAY -s static|cells|full|scroll "
	    "[-r FPS] [-t SECS]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *display = NULL, *scene = NULL;
	int fps = 30, secs = 900, ch, i;
	struct canvas cv;
	struct doc doc;
	XSetWindowAttributes wa;
	struct timespec next;
	uint32_t f, lcg = 12345;
	int cell_x[CELLS], cell_y[CELLS];
	long long frames;

	while ((ch = getopt(argc, argv, "d:s:r:t:")) != -1) {
		switch (ch) {
		case 'd':
			display = optarg;
			break;
		case 's':
			scene = optarg;
			break;
		case 'r':
			fps = atoi(optarg);
			break;
		case 't':
			secs = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (scene == NULL || (strcmp(scene, "static") != 0 &&
	    strcmp(scene, "cells") != 0 && strcmp(scene, "full") != 0 &&
	    strcmp(scene, "scroll") != 0) ||
	    fps < 1 || fps > FPS_MAX || secs < 1 || secs > SECS_MAX)
		usage();
	memset(&cv, 0, sizeof cv);
	/* a display busy with a server that just left can turn a connection
	 * away (seen in make bench after x0vncserver ends): try for a while */
	for (i = 0; (cv.dpy = XOpenDisplay(display)) == NULL; i++) {
		struct timespec pause = { 0, 100 * 1000 * 1000 };

		if (i == OPEN_TRIES) {
			fprintf(stderr, "workload: cannot open display %s: %s\n",
			    display ? display : "$DISPLAY", strerror(errno));
			return 1;
		}
		nanosleep(&pause, NULL);
	}
	if (i > 0)
		fprintf(stderr, "workload: display open after %d tries\n", i + 1);
	if (DefaultDepth(cv.dpy, DefaultScreen(cv.dpy)) != 24) {
		fprintf(stderr, "workload: want a 24-bit display\n");
		return 1;
	}
	cv.w = DisplayWidth(cv.dpy, DefaultScreen(cv.dpy));
	cv.h = DisplayHeight(cv.dpy, DefaultScreen(cv.dpy));
	wa.override_redirect = True;
	wa.background_pixel = 0;
	cv.win = XCreateWindow(cv.dpy, DefaultRootWindow(cv.dpy), 0, 0,
	    (unsigned)cv.w, (unsigned)cv.h, 0, CopyFromParent, InputOutput,
	    CopyFromParent, CWOverrideRedirect | CWBackPixel, &wa);
	cv.gc = XCreateGC(cv.dpy, cv.win, 0, NULL);
	XSetGraphicsExposures(cv.dpy, cv.gc, False);	/* no NoExpose queue */
	XMapRaised(cv.dpy, cv.win);
	canvas_image(&cv);
	doc.w = cv.w;
	doc.h = cv.h;
	doc.next = 0;
	doc.mask = malloc((size_t)cv.w * cv.h);
	if (doc.mask == NULL) {
		fprintf(stderr, "workload: out of memory\n");
		return 1;
	}
	if (scene[1] == 'c') {		/* scroll: one column of text */
		doc.margin = 40;
		doc.cols = 1;
		scroll_first(&cv, &doc);
	} else {
		doc.margin = 8;
		doc.cols = 3;
		fill(&cv, px_static, 0);
	}
	canvas_put(&cv);
	XSync(cv.dpy, False);
	printf("workload: %s %dx%d at %d frames/s%s\n", scene, cv.w, cv.h, fps,
	    cv.use_shm ? " (MIT-SHM)" : "");
	fflush(stdout);

	clock_gettime(CLOCK_MONOTONIC, &next);
	for (f = 1, frames = (long long)secs * fps; f <= frames; f++) {
		next.tv_nsec += 1000000000L / fps;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next,
		    NULL) == EINTR)
			;
		if (scene[0] == 's' && scene[1] == 't')
			continue;
		if (scene[0] == 'f') {
			full_frame((uint32_t *)(void *)cv.img->data,
			    (size_t)cv.img->bytes_per_line / 4, cv.w, cv.h, &doc, f);
			canvas_put(&cv);
		} else if (scene[1] == 'c') {
			scroll_frame(&cv, &doc, f);
		} else {
			for (i = 0; i < CELLS; i++) {
				int x, y;

				/* last frame's cell goes back to the desktop, so
				 * the screen stays the desktop and CELLS cells: what
				 * a frame costs does not drift as cells pile up */
				if (f > 1)
					canvas_put_area(&cv, cell_x[i], cell_y[i],
					    CELL, CELL);
				lcg = lcg * 1103515245u + 12345u;
				x = cell_x[i] = (int)(lcg >> 8) % (cv.w / CELL) * CELL;
				lcg = lcg * 1103515245u + 12345u;
				y = cell_y[i] = (int)(lcg >> 8) % (cv.h / CELL) * CELL;
				XSetForeground(cv.dpy, cv.gc, fb_hash(f * 64 + (uint32_t)i) & 0xffffff);
				XFillRectangle(cv.dpy, cv.win, cv.gc, x, y, CELL, CELL);
				XSetForeground(cv.dpy, cv.gc, fb_hash(f * 64 + (uint32_t)i + 32) & 0xffffff);
				XFillRectangle(cv.dpy, cv.win, cv.gc, x + CELL / 4, y + CELL / 4,
				    CELL / 2, CELL / 2);
			}
		}
		XSync(cv.dpy, False);
	}
	return 0;
}
