/*
 * workload.c - a deterministic X client for make bench: it covers the
 * screen with one override-redirect window and draws one of three scenes.
 *
 *   workload -d DISPLAY -s static|cells|full [-r FPS] [-t SECS]
 *
 *   static  a desktop-like picture (gradient, windows, text-like glyphs),
 *           drawn once; then nothing changes.
 *   cells   the same picture; every frame CELLS cells of CELL x CELL
 *           pixels (two colours each, positions from a fixed LCG) are
 *           redrawn, like clocks, spinners and terminal cursors.
 *   full    every pixel changes every frame: two thirds of the screen are
 *           a text-like document that scrolls by SCROLL rows a frame on a
 *           background whose grey level steps every frame, one third is a
 *           smooth colour gradient that moves.  Few colours per tile in
 *           the document, many in the gradient: desktop content, not
 *           video noise.
 *
 * Frames are drawn at absolute deadlines, FPS a second (default 30), with
 * MIT-SHM when the display allows it; each frame ends with XSync, so the
 * X server has drawn it.  The program exits after SECS seconds (default
 * 900) or when the display goes away.
 */
#define _XOPEN_SOURCE 700

#include <errno.h>
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
#define FPS_MAX	240
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

static uint32_t
full_pixel(int w, uint32_t f, int x, int y)
{
	if (x < 2 * w / 3) {
		uint32_t yy = (uint32_t)y + f * SCROLL;
		uint32_t bg = 200 + f % 40, fg = f % 2 ? 0x101010 : 0x303030;

		if (x % (w / 3) >= 8 && glyph_on(yy / LINE_H, x / GLYPH_W,
		    x % GLYPH_W, (int)(yy % LINE_H)))
			return fg;
		return bg << 16 | bg << 8 | bg;
	}
	return ((uint32_t)x * 2 + f * 3) % 256 << 16 |
	    ((uint32_t)y * 2 + f * 5) % 256 << 8 | ((uint32_t)(x + y) + f * 7) % 256;
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

static void
canvas_put(struct canvas *cv)
{
	if (cv->use_shm)
		XShmPutImage(cv->dpy, cv->win, cv->gc, cv->img, 0, 0, 0, 0,
		    (unsigned)cv->w, (unsigned)cv->h, False);
	else
		XPutImage(cv->dpy, cv->win, cv->gc, cv->img, 0, 0, 0, 0,
		    (unsigned)cv->w, (unsigned)cv->h);
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

static uint32_t
px_full(int w, int h, int x, int y, uint32_t f)
{
	(void)h;
	return full_pixel(w, f, x, y);
}

static void
usage(void)
{
	fprintf(stderr, "usage: workload -d DISPLAY -s static|cells|full "
	    "[-r FPS] [-t SECS]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *display = NULL, *scene = NULL;
	int fps = 30, secs = 900, ch, i;
	struct canvas cv;
	XSetWindowAttributes wa;
	struct timespec next;
	uint32_t f, lcg = 12345;
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
	    strcmp(scene, "cells") != 0 && strcmp(scene, "full") != 0) ||
	    fps < 1 || fps > FPS_MAX || secs < 1 || secs > SECS_MAX)
		usage();
	memset(&cv, 0, sizeof cv);
	if ((cv.dpy = XOpenDisplay(display)) == NULL) {
		fprintf(stderr, "workload: cannot open display %s\n",
		    display ? display : "$DISPLAY");
		return 1;
	}
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
	XMapRaised(cv.dpy, cv.win);
	canvas_image(&cv);
	fill(&cv, px_static, 0);
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
		if (scene[0] == 's')
			continue;
		if (scene[0] == 'f') {
			fill(&cv, px_full, f);
			canvas_put(&cv);
		} else {
			for (i = 0; i < CELLS; i++) {
				int x, y;

				lcg = lcg * 1103515245u + 12345u;
				x = (int)(lcg >> 8) % (cv.w / CELL) * CELL;
				lcg = lcg * 1103515245u + 12345u;
				y = (int)(lcg >> 8) % (cv.h / CELL) * CELL;
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
