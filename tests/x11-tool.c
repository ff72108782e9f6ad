/*
 * x11-tool.c - the X side of the X11 tests: small X clients that draw
 * known content, record input, use the clipboard, add RandR modes, and
 * compare an xwd dump with a viewer's picture.
 *
 *   x11-tool draw X Y W H      an override-redirect window with a fixed
 *                              pattern; prints "ready"; then reads
 *                              "rect X Y W H RRGGBB" lines from stdin
 *                              (window coordinates; "ok" after each), EOF
 *                              ends it
 *   x11-tool events X Y W H    a focused window that prints "key 0xKS NAME"
 *                              for each KeyPress (keysym as XLookupString
 *                              sees it), "line TEXT" on Return (the
 *                              UTF-8 text typed since the last one),
 *                              "button N press|release X Y" and "motion X Y"
 *   x11-tool query             "pointer X Y MASK" and "mods EFF LOCKED"
 *                              and "keys N" (keys down)
 *   x11-tool clip-get SEL      print the selection (PRIMARY, CLIPBOARD) as
 *                              UTF-8, no newline added; exit 1 if empty
 *   x11-tool clip-set SEL TEXT [SECS]   own SEL with TEXT (UTF-8) and
 *                              serve it for SECS (default 30); "owned",
 *                              "served TARGET" for each request, "lost";
 *                              TEXT @FILE: the file's content; SEL -i SEL:
 *                              send UTF8_STRING by INCR, in 64 KiB chunks
 *   x11-tool addmode W H       add a WxH mode to the first RandR output
 *                              (Xvfb has one mode; xrandr can switch to
 *                              it afterwards)
 *   x11-tool keys X Y ITEM...  a person at the keyboard, through XTEST:
 *                              the pointer to X,Y, the input focus to the
 *                              top-level window there, then per ITEM
 *                              "+KC" press, "-KC" release, "KC" both
 *                              (X keycodes), "sMS" wait MS; "done"
 *   x11-tool xwd FILE          the root window as an XWD file, like
 *                              xwd -root (for systems without x11-apps)
 *   x11-tool cmp A.xwd B.ppm   "same", or "differ N X0,Y0-X1,Y1" (count and
 *                              bounding box of different pixels), exit 1;
 *                              16 and 32 bpp dumps, channels widened to
 *                              8 bits by bit replication, as the server
 *                              does (vncsasl.h, fb_layout)
 *
 * The display is $DISPLAY.  Every wait is bounded.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <locale.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <X11/XKBlib.h>
#include <X11/Xatom.h>
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <X11/extensions/Xrandr.h>
#include <X11/extensions/XTest.h>

#include "tool.h"

static Display *dpy;

static uint8_t *slurp(const char *path, size_t *n);

static void
die(const char *msg)
{
	fprintf(stderr, "x11-tool: %s\n", msg);
	exit(1);
}

static void
open_display(void)
{
	if ((dpy = XOpenDisplay(NULL)) == NULL)
		die("cannot open the display");
}

/* Wait for an X event until `until`; 0 on timeout. */
static int
next_event(XEvent *ev, double until)
{
	while (!XPending(dpy)) {
		struct pollfd p = { ConnectionNumber(dpy), POLLIN, 0 };
		double left = until - now();

		if (left <= 0)
			return 0;
		poll(&p, 1, (int)(left * 1000) + 1);
	}
	XNextEvent(dpy, ev);
	return 1;
}

static int
geometry(char **argv, int *x, int *y, int *w, int *h)
{
	*x = atoi(argv[0]);
	*y = atoi(argv[1]);
	*w = atoi(argv[2]);
	*h = atoi(argv[3]);
	return *w > 0 && *h > 0 ? 0 : -1;
}

static Window
make_window(int x, int y, int w, int h, int override, long mask)
{
	XSetWindowAttributes a;
	Window win;
	XEvent ev;
	double until = now() + 10;

	a.override_redirect = override;
	a.background_pixel = BlackPixel(dpy, DefaultScreen(dpy));
	a.event_mask = mask | StructureNotifyMask | ExposureMask;
	win = XCreateWindow(dpy, DefaultRootWindow(dpy), x, y, (unsigned)w,
	    (unsigned)h, 0, CopyFromParent, InputOutput, CopyFromParent,
	    CWOverrideRedirect | CWBackPixel | CWEventMask, &a);
	XMapRaised(dpy, win);
	do {
		if (!next_event(&ev, until))
			die("window not mapped within 10 s");
	} while (ev.type != MapNotify);
	return win;
}

/* ---- draw ---- */

static uint32_t
pattern(int x, int y)
{
	/* gradients, a checkerboard and stripes: every channel varies */
	uint32_t r = (uint32_t)(x * 255 / 1279) & 0xff;
	uint32_t g = (uint32_t)(y * 255 / 799) & 0xff;
	uint32_t b = (uint32_t)((((x >> 3) ^ (y >> 3)) & 1) * 0xa0 + (x + y) % 61);

	return r << 16 | g << 8 | (b & 0xff);
}

/* 0xRRGGBB as a pixel value of a true-colour visual */
static unsigned long
rgb_pixel(const Visual *v, uint32_t rgb)
{
	const unsigned long mask[3] = { v->red_mask, v->green_mask,
	    v->blue_mask };
	unsigned long p = 0;
	int i;

	for (i = 0; i < 3; i++) {
		unsigned long m = mask[i], c = rgb >> (16 - 8 * i) & 0xff;
		int shift = 0, bits = 0;

		while (m && !(m & 1)) {
			m >>= 1;
			shift++;
		}
		while (m & 1) {
			m >>= 1;
			bits++;
		}
		p |= (bits >= 8 ? c << (bits - 8) : c >> (8 - bits)) << shift;
	}
	return p;
}

static int
cmd_draw(char **argv)
{
	int x, y, w, h, i, j, scr;
	Window win;
	Pixmap pm;
	GC gc;
	XImage *img;
	char line[256];

	if (geometry(argv, &x, &y, &w, &h) < 0)
		die("draw X Y W H");
	open_display();
	scr = DefaultScreen(dpy);
	if (DefaultVisual(dpy, scr)->class != TrueColor)
		die("want a true-colour display");
	win = make_window(x, y, w, h, 1, 0);
	pm = XCreatePixmap(dpy, win, (unsigned)w, (unsigned)h,
	    (unsigned)DefaultDepth(dpy, scr));
	gc = XCreateGC(dpy, pm, 0, NULL);
	img = XCreateImage(dpy, DefaultVisual(dpy, scr),
	    (unsigned)DefaultDepth(dpy, scr), ZPixmap, 0, NULL, (unsigned)w,
	    (unsigned)h, 32, 0);
	if (img == NULL || (img->data = malloc((size_t)img->bytes_per_line *
	    h)) == NULL)
		die("out of memory");
	for (j = 0; j < h; j++)
		for (i = 0; i < w; i++)
			XPutPixel(img, i, j, rgb_pixel(DefaultVisual(dpy, scr),
			    pattern(x + i, y + j)));
	XPutImage(dpy, pm, gc, img, 0, 0, 0, 0, (unsigned)w, (unsigned)h);
	XSetForeground(dpy, gc, WhitePixel(dpy, scr));
	XDrawString(dpy, pm, gc, 20, 30, "vncsasl x11 test 0123456789", 27);
	XSetWindowBackgroundPixmap(dpy, win, pm);
	XClearWindow(dpy, win);
	XSync(dpy, False);
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof line, stdin) != NULL) {
		int rx, ry, rw, rh;
		unsigned long c;

		if (sscanf(line, "rect %d %d %d %d %lx", &rx, &ry, &rw, &rh,
		    &c) != 5) {
			printf("bad command\n");
			fflush(stdout);
			continue;
		}
		XSetForeground(dpy, gc, rgb_pixel(DefaultVisual(dpy, scr),
		    (uint32_t)c));
		XFillRectangle(dpy, pm, gc, rx, ry, (unsigned)rw, (unsigned)rh);
		XClearArea(dpy, win, rx, ry, (unsigned)rw, (unsigned)rh, False);
		XSync(dpy, False);
		printf("ok\n");
		fflush(stdout);
	}
	return 0;
}

/* ---- events ---- */

static size_t
utf8_put(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* The character a keysym types (the subset the tests use), 0 if none. */
static uint32_t
keysym_char(KeySym ks)
{
	if ((ks >= 0x20 && ks <= 0x7e) || (ks >= 0xa0 && ks <= 0xff))
		return (uint32_t)ks;
	if (ks == 0x20ac)
		return 0x20ac;			/* EuroSign */
	if ((ks & 0xff000000) == 0x01000000)
		return (uint32_t)(ks & 0xffffff);
	return 0;
}

static int
cmd_events(char **argv)
{
	int x, y, w, h;
	Window win;
	XEvent ev;
	char line[4096];
	size_t len = 0;

	if (geometry(argv, &x, &y, &w, &h) < 0)
		die("events X Y W H");
	open_display();
	win = make_window(x, y, w, h, 1, KeyPressMask | KeyReleaseMask |
	    ButtonPressMask | ButtonReleaseMask | PointerMotionMask);
	XSetInputFocus(dpy, win, RevertToParent, CurrentTime);
	XSync(dpy, False);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		XNextEvent(dpy, &ev);
		switch (ev.type) {
		case KeyPress: {
			KeySym ks = NoSymbol;
			char buf[16];
			uint32_t c;
			const char *name;

			XLookupString(&ev.xkey, buf, sizeof buf, &ks, NULL);
			name = XKeysymToString(ks);
			printf("key 0x%lx %s state 0x%x\n", (unsigned long)ks,
			    name ? name : "?", ev.xkey.state);
			if (ks == XK_Return) {
				printf("line %.*s\n", (int)len, line);
				len = 0;
			} else if ((c = keysym_char(ks)) != 0 &&
			    len + 4 < sizeof line) {
				len += utf8_put(line + len, c);
			}
			break;
		}
		case ButtonPress:
		case ButtonRelease:
			printf("button %u %s %d %d\n", ev.xbutton.button,
			    ev.type == ButtonPress ? "press" : "release",
			    ev.xbutton.x_root, ev.xbutton.y_root);
			break;
		case MotionNotify:
			printf("motion %d %d\n", ev.xmotion.x_root,
			    ev.xmotion.y_root);
			break;
		case MappingNotify:
			XRefreshKeyboardMapping(&ev.xmapping);
			break;
		}
		fflush(stdout);
	}
	return 0;
}

/* ---- query ---- */

static int
cmd_query(void)
{
	Window r, c;
	int x, y, wx, wy, kc, n = 0;
	unsigned mask;
	XkbStateRec st;
	char keys[32];

	open_display();
	if (XQueryPointer(dpy, DefaultRootWindow(dpy), &r, &c, &x, &y, &wx,
	    &wy, &mask))
		printf("pointer %d %d 0x%x\n", x, y, mask);
	if (XkbGetState(dpy, XkbUseCoreKbd, &st) == Success)
		printf("mods 0x%x 0x%x\n", st.mods, st.locked_mods);
	XQueryKeymap(dpy, keys);
	for (kc = 0; kc < 256; kc++)
		if (keys[kc / 8] & (1 << (kc % 8)))
			n++;
	printf("keys %d\n", n);
	return 0;
}

/* ---- clipboard ---- */

static Atom
selection(const char *name)
{
	if (strcmp(name, "PRIMARY") == 0)
		return XA_PRIMARY;
	if (strcmp(name, "CLIPBOARD") == 0)
		return XInternAtom(dpy, "CLIPBOARD", False);
	die("selection must be PRIMARY or CLIPBOARD");
	return None;
}

static int
cmd_clip_get(char **argv)
{
	Atom sel, utf8, prop, type;
	Window win;
	XEvent ev;
	double until;
	int format;
	unsigned long n, after;
	unsigned char *data = NULL;

	open_display();
	sel = selection(argv[0]);
	utf8 = XInternAtom(dpy, "UTF8_STRING", False);
	prop = XInternAtom(dpy, "X11_TOOL_SEL", False);
	win = XCreateSimpleWindow(dpy, DefaultRootWindow(dpy), 0, 0, 1, 1, 0,
	    0, 0);
	XConvertSelection(dpy, sel, utf8, prop, win, CurrentTime);
	until = now() + 5;
	do {
		if (!next_event(&ev, until))
			die("no SelectionNotify within 5 s");
	} while (ev.type != SelectionNotify);
	if (ev.xselection.property == None)
		die("the selection owner refused UTF8_STRING (or no owner)");
	if (XGetWindowProperty(dpy, win, prop, 0, 1 << 22, True,
	    AnyPropertyType, &type, &format, &n, &after, &data) != Success ||
	    format != 8)
		die("cannot read the property");
	fwrite(data, 1, n, stdout);
	XFree(data);
	return n > 0 ? 0 : 1;
}

/* Serve one INCR transfer to `req`; bounded by `until`. */
static void
incr_send(Window req, Atom prop, Atom type, const char *text, size_t len,
    double until)
{
	size_t off = 0, n;
	XEvent ev;

	for (;;) {
		do {
			if (!next_event(&ev, until))
				return;
		} while (ev.type != PropertyNotify ||
		    ev.xproperty.window != req || ev.xproperty.atom != prop ||
		    ev.xproperty.state != PropertyDelete);
		n = len - off < 65536 ? len - off : 65536;
		XChangeProperty(dpy, req, prop, type, 8, PropModeReplace,
		    (const unsigned char *)text + off, (int)n);
		XFlush(dpy);
		if (n == 0)
			return;
		off += n;
	}
}

static int
cmd_clip_set(char **argv, int argc)
{
	Atom sel, utf8, targets, incr;
	Window win;
	XEvent ev;
	double until;
	const char *text;
	size_t len;
	int use_incr = 0;

	if (strcmp(argv[0], "-i") == 0) {
		use_incr = 1;
		argv++;
		argc--;
		if (argc < 2)
			die("clip-set -i SEL TEXT");
	}
	until = now() + (argc > 2 ? atof(argv[2]) : 30);
	text = argv[1];
	len = strlen(text);
	if (text[0] == '@') {
		text = (const char *)slurp(text + 1, &len);
	}
	open_display();
	sel = selection(argv[0]);
	utf8 = XInternAtom(dpy, "UTF8_STRING", False);
	targets = XInternAtom(dpy, "TARGETS", False);
	incr = XInternAtom(dpy, "INCR", False);
	win = XCreateSimpleWindow(dpy, DefaultRootWindow(dpy), 0, 0, 1, 1, 0,
	    0, 0);
	XSetSelectionOwner(dpy, sel, win, CurrentTime);
	if (XGetSelectionOwner(dpy, sel) != win)
		die("could not own the selection");
	printf("owned\n");
	fflush(stdout);
	while (next_event(&ev, until)) {
		XSelectionRequestEvent *rq = &ev.xselectionrequest;
		XSelectionEvent re;

		if (ev.type == SelectionClear) {
			printf("lost\n");
			break;
		}
		if (ev.type != SelectionRequest)
			continue;
		memset(&re, 0, sizeof re);
		re.type = SelectionNotify;
		re.requestor = rq->requestor;
		re.selection = rq->selection;
		re.target = rq->target;
		re.time = rq->time;
		re.property = rq->property;
		if (rq->target == targets) {
			long t[2] = { (long)utf8, (long)XA_STRING };

			XChangeProperty(dpy, rq->requestor, rq->property,
			    XA_ATOM, 32, PropModeReplace, (unsigned char *)t, 2);
		} else if (rq->target == utf8 && use_incr) {
			long size = (long)len;

			XSelectInput(dpy, rq->requestor, PropertyChangeMask);
			XChangeProperty(dpy, rq->requestor, rq->property, incr,
			    32, PropModeReplace, (unsigned char *)&size, 1);
		} else if (rq->target == utf8) {
			XChangeProperty(dpy, rq->requestor, rq->property, utf8,
			    8, PropModeReplace, (const unsigned char *)text,
			    (int)len);
		} else {
			re.property = None;
		}
		XSendEvent(dpy, rq->requestor, False, 0, (XEvent *)&re);
		XFlush(dpy);
		if (rq->target == utf8 && use_incr)
			incr_send(rq->requestor, rq->property, utf8, text, len,
			    until);
		printf("served %s%s\n", XGetAtomName(dpy, rq->target),
		    use_incr && rq->target == utf8 ? " by INCR" : "");
		fflush(stdout);
	}
	return 0;
}

/* ---- RandR ---- */

static int
cmd_addmode(char **argv)
{
	int w = atoi(argv[0]), h = atoi(argv[1]);
	XRRScreenResources *res;
	XRRModeInfo *mi;
	char name[32];
	RRMode mode;
	Window root;

	if (w <= 0 || h <= 0)
		die("addmode W H");
	open_display();
	root = DefaultRootWindow(dpy);
	if ((res = XRRGetScreenResources(dpy, root)) == NULL ||
	    res->noutput < 1)
		die("no RandR outputs");
	snprintf(name, sizeof name, "%dx%d", w, h);
	mi = XRRAllocModeInfo(name, (int)strlen(name));
	mi->width = (unsigned)w;
	mi->height = (unsigned)h;
	mi->hTotal = (unsigned)w + 160;
	mi->vTotal = (unsigned)h + 30;
	mi->hSyncStart = (unsigned)w + 48;
	mi->hSyncEnd = (unsigned)w + 80;
	mi->vSyncStart = (unsigned)h + 3;
	mi->vSyncEnd = (unsigned)h + 10;
	mi->dotClock = (unsigned long)mi->hTotal * mi->vTotal * 60;
	mode = XRRCreateMode(dpy, root, mi);
	XRRAddOutputMode(dpy, res->outputs[0], mode);
	XSync(dpy, False);
	printf("mode %s\n", name);
	return 0;
}

/* ---- xwd ---- */

static void
put32be(FILE *f, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
	    (uint8_t)(v >> 8), (uint8_t)v };

	fwrite(b, 1, 4, f);
}

static int
cmd_xwd(char **argv)
{
	XWindowAttributes wa;
	XImage *img;
	Visual *v;
	FILE *f;
	uint32_t hdr[25];
	int i;

	open_display();
	XGetWindowAttributes(dpy, DefaultRootWindow(dpy), &wa);
	img = XGetImage(dpy, DefaultRootWindow(dpy), 0, 0, (unsigned)wa.width,
	    (unsigned)wa.height, AllPlanes, ZPixmap);
	if (img == NULL)
		die("XGetImage failed");
	v = wa.visual;
	hdr[0] = 100 + 1;		/* header, then an empty window name */
	hdr[1] = 7;			/* XWD_FILE_VERSION */
	hdr[2] = ZPixmap;
	hdr[3] = (uint32_t)img->depth;
	hdr[4] = (uint32_t)img->width;
	hdr[5] = (uint32_t)img->height;
	hdr[6] = 0;
	hdr[7] = (uint32_t)img->byte_order;
	hdr[8] = (uint32_t)img->bitmap_unit;
	hdr[9] = (uint32_t)img->bitmap_bit_order;
	hdr[10] = (uint32_t)img->bitmap_pad;
	hdr[11] = (uint32_t)img->bits_per_pixel;
	hdr[12] = (uint32_t)img->bytes_per_line;
	hdr[13] = (uint32_t)v->class;
	hdr[14] = (uint32_t)v->red_mask;
	hdr[15] = (uint32_t)v->green_mask;
	hdr[16] = (uint32_t)v->blue_mask;
	hdr[17] = (uint32_t)v->bits_per_rgb;
	hdr[18] = (uint32_t)v->map_entries;
	hdr[19] = 0;			/* no colours follow */
	hdr[20] = (uint32_t)wa.width;
	hdr[21] = (uint32_t)wa.height;
	hdr[22] = hdr[23] = hdr[24] = 0;
	if ((f = fopen(argv[0], "wb")) == NULL)
		die("cannot write the XWD file");
	for (i = 0; i < 25; i++)
		put32be(f, hdr[i]);
	fputc(0, f);
	fwrite(img->data, 1, (size_t)img->bytes_per_line * img->height, f);
	if (fclose(f) != 0)
		die("cannot write the XWD file");
	return 0;
}

/* ---- cmp ---- */

static uint8_t *
slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, r;

	if (f == NULL) {
		fprintf(stderr, "x11-tool: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	*n = 0;
	do {
		if (*n == cap) {
			cap = cap ? cap * 2 : 1 << 20;
			if ((buf = realloc(buf, cap)) == NULL)
				die("out of memory");
		}
		r = fread(buf + *n, 1, cap - *n, f);
		*n += r;
	} while (r > 0);
	fclose(f);
	return buf;
}

static uint32_t
rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/*
 * A channel of v under mask m in 8 bits: the top 8 of a wider one; a
 * narrower one repeated until 8 bits are filled (5 bits abcde: abcdeabc),
 * as pixman and the server widen it.  Written here on its own, not taken
 * from vncsasl.h, so that a mistake there shows.
 */
static uint32_t
chan8(uint32_t v, uint32_t m)
{
	int bits = 0, have;
	uint32_t max, o;

	if (m == 0)
		return 0;
	while (!(m & 1)) {
		m >>= 1;
		v >>= 1;
	}
	for (max = m; m & 1; m >>= 1)
		bits++;
	v &= max;
	if (bits >= 8)
		return v >> (bits - 8);
	for (o = v, have = bits; have < 8; have += bits)
		o = o << bits | v;
	return o >> (have - 8);
}

/* XWD file -> XRGB; the header is 25 big-endian 32-bit fields. */
static uint32_t *
read_xwd(const char *path, int *w, int *h)
{
	size_t n, off;
	uint8_t *f = slurp(path, &n);
	uint32_t hsize, bpp, bpl, order, ncolors, rm, gm, bm, *px;
	int x, y;

	if (n < 100 || rd32(f + 4) != 7 || rd32(f + 8) != ZPixmap)
		die("not a ZPixmap XWD file");
	hsize = rd32(f);
	*w = (int)rd32(f + 16);
	*h = (int)rd32(f + 20);
	order = rd32(f + 28);
	bpp = rd32(f + 44);
	bpl = rd32(f + 48);
	rm = rd32(f + 56);
	gm = rd32(f + 60);
	bm = rd32(f + 64);
	ncolors = rd32(f + 76);
	off = hsize + (size_t)ncolors * 12;
	if ((bpp != 32 && bpp != 16) || *w <= 0 || *h <= 0 ||
	    off + (size_t)bpl * *h > n)
		die("unsupported XWD (want 16 or 32 bits per pixel)");
	if ((px = malloc((size_t)*w * *h * 4)) == NULL)
		die("out of memory");
	for (y = 0; y < *h; y++)
		for (x = 0; x < *w; x++) {
			const uint8_t *p = f + off + (size_t)y * bpl +
			    (size_t)x * (bpp / 8);
			uint32_t v;

			if (bpp == 16)
				v = order == MSBFirst ? (uint32_t)p[0] << 8 | p[1] :
				    (uint32_t)p[1] << 8 | p[0];
			else
				v = order == MSBFirst ? rd32(p) :
				    (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
				    (uint32_t)p[1] << 8 | p[0];
			px[(size_t)y * *w + x] = chan8(v, rm) << 16 |
			    chan8(v, gm) << 8 | chan8(v, bm);
		}
	free(f);
	return px;
}

static uint32_t *
read_ppm(const char *path, int *w, int *h)
{
	size_t n, off, i;
	uint8_t *f = slurp(path, &n);
	uint32_t *px;
	int maxv, used = 0;

	if (sscanf((char *)f, "P6 %d %d %d%n", w, h, &maxv, &used) != 3 ||
	    maxv != 255 || *w <= 0 || *h <= 0)
		die("not a binary PPM");
	off = (size_t)used + 1;
	if (off + (size_t)*w * *h * 3 > n)
		die("short PPM");
	if ((px = malloc((size_t)*w * *h * 4)) == NULL)
		die("out of memory");
	for (i = 0; i < (size_t)*w * *h; i++)
		px[i] = (uint32_t)f[off + 3 * i] << 16 |
		    (uint32_t)f[off + 3 * i + 1] << 8 | f[off + 3 * i + 2];
	free(f);
	return px;
}

static int
cmd_cmp(char **argv)
{
	int aw, ah, bw, bh, x, y, x0 = -1, y0 = -1, x1 = -1, y1 = -1;
	uint32_t *a = read_xwd(argv[0], &aw, &ah);
	uint32_t *b = read_ppm(argv[1], &bw, &bh);
	long diff = 0;

	if (aw != bw || ah != bh) {
		printf("size %dx%d vs %dx%d\n", aw, ah, bw, bh);
		return 1;
	}
	for (y = 0; y < ah; y++)
		for (x = 0; x < aw; x++) {
			if (a[(size_t)y * aw + x] == b[(size_t)y * aw + x])
				continue;
			if (diff++ == 0) {
				x0 = x1 = x;
				y0 = y1 = y;
			}
			x0 = x < x0 ? x : x0;
			x1 = x > x1 ? x : x1;
			y0 = y < y0 ? y : y0;
			y1 = y > y1 ? y : y1;
		}
	if (diff == 0) {
		printf("same %dx%d\n", aw, ah);
		return 0;
	}
	printf("differ %ld %d,%d-%d,%d\n", diff, x0, y0, x1, y1);
	return 1;
}

static void
nap(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int
cmd_keys(char **argv, int argc)
{
	Window root, child, top;
	int x = atoi(argv[0]), y = atoi(argv[1]), i, rx, ry, wx, wy, ev, er,
	    maj, min;
	unsigned mask;

	open_display();
	if (!XTestQueryExtension(dpy, &ev, &er, &maj, &min))
		die("no XTEST");
	XTestFakeMotionEvent(dpy, DefaultScreen(dpy), x, y, CurrentTime);
	XSync(dpy, False);
	/* the top-level window under the pointer takes the keyboard (no
	 * window manager gives it, and FLTK wants a real FocusIn) */
	XQueryPointer(dpy, DefaultRootWindow(dpy), &root, &child, &rx, &ry, &wx,
	    &wy, &mask);
	top = child;
	if (top != None)
		XSetInputFocus(dpy, top, RevertToPointerRoot, CurrentTime);
	XSync(dpy, False);
	nap(200);
	for (i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (a[0] == 's') {
			XSync(dpy, False);
			nap(atoi(a + 1));
		} else if (a[0] == '+' || a[0] == '-') {
			XTestFakeKeyEvent(dpy, (unsigned)atoi(a + 1), a[0] == '+',
			    CurrentTime);
		} else {
			XTestFakeKeyEvent(dpy, (unsigned)atoi(a), True, CurrentTime);
			XTestFakeKeyEvent(dpy, (unsigned)atoi(a), False, CurrentTime);
		}
		XSync(dpy, False);
		nap(30);	/* a typist's pace: viewers read events in turns */
	}
	printf("done\n");
	return 0;
}

int
main(int argc, char **argv)
{
	setlocale(LC_ALL, "");
	if (argc >= 6 && strcmp(argv[1], "draw") == 0)
		return cmd_draw(argv + 2);
	if (argc >= 6 && strcmp(argv[1], "events") == 0)
		return cmd_events(argv + 2);
	if (argc >= 2 && strcmp(argv[1], "query") == 0)
		return cmd_query();
	if (argc >= 3 && strcmp(argv[1], "clip-get") == 0)
		return cmd_clip_get(argv + 2);
	if (argc >= 4 && strcmp(argv[1], "clip-set") == 0)
		return cmd_clip_set(argv + 2, argc - 2);
	if (argc >= 4 && strcmp(argv[1], "addmode") == 0)
		return cmd_addmode(argv + 2);
	if (argc >= 3 && strcmp(argv[1], "xwd") == 0)
		return cmd_xwd(argv + 2);
	if (argc >= 4 && strcmp(argv[1], "keys") == 0)
		return cmd_keys(argv + 2, argc - 2);
	if (argc >= 4 && strcmp(argv[1], "cmp") == 0)
		return cmd_cmp(argv + 2);
	fprintf(stderr, "usage: x11-tool draw|events X Y W H | query | "
	    "clip-get SEL | clip-set SEL TEXT [SECS] | addmode W H | "
	    "xwd FILE | cmp A.xwd B.ppm | keys X Y ITEM...\n");
	return 2;
}
