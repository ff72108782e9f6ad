/*
 * fb-linux.c - a Linux screen without X (make FB=linux): the framebuffer
 * device (/dev/fbN) or the framebuffer a DRM/KMS CRTC scans out
 * (/dev/dri/cardN), with input through a uinput virtual device.
 *
 * -x DEVICE[,OPTION]...   (default /dev/fb0; see arg_help at the end)
 *   rotate=0|90|180|270  viewers get the picture turned this many degrees
 *                        clockwise (a panel mounted on its side shows
 *                        upright); the pointer is turned back
 *   rate=HZ              compare passes per second at most (1-120, 30)
 *   touch                the input device is a touchscreen (BTN_TOUCH and
 *                        one ABS_MT_* contact) instead of a mouse
 *   view                 no input device: viewers only watch
 *   crtc=ID              DRM: this CRTC (default: the first one lit)
 *   dmabuf               DRM: read the buffer through a dma-buf export even
 *                        where MAP_DUMB works (where it does not, that is
 *                        the way anyway)
 * The device kind comes from the node's major number (29 fbdev, 226 DRM).
 *
 * Pixels.  Neither fbdev nor KMS tells a reader what changed, so the
 * picture is compared with `shadow`, a copy of the device's bytes as last
 * seen, in TILE x TILE tiles.  A compare pass runs at most `rate` times a
 * second, and only from grab(), which the server calls only while a viewer
 * waits for an update: with no viewer nothing at all runs.  A pass reads
 * one row in every band of TILE rows (a different row each pass, in
 * bit-reversed order, x11vnc's trick), which finds any change at least
 * TILE/2^k rows high within 2^k passes; tiles whose scan row differs, and
 * those that changed in the previous pass or next to one, are then read
 * whole.  So a still screen costs 1/TILE of a full read per pass (on
 * boards whose framebuffer memory is uncached, reading it is what costs),
 * and a changing area is followed at the full rate.  After an idle gap
 * (no viewer waited for IDLE_FULL_MS) a pass reads everything, so a viewer
 * that comes back never sees an old picture.  Rows are copied out of the
 * mapping in one sequential read, then compared.  Changed tiles are
 * converted to XRGB into `px` (turned by `rotate`) and reported as
 * horizontal runs.  Channels narrower than 8 bits are widened by bit
 * replication (0x1f -> 0xff), as pixman and so QEMU's screendump do.
 * Where a device pixel is 32 bits and the picture is not turned, rows are
 * converted as they are read and compared with px itself: one copy of the
 * screen instead of two.
 *
 * fbdev: FBIOGET_VSCREENINFO/FSCREENINFO, a read-only mmap of the whole
 * video memory, line_length and the red/green/blue bitfields honoured, 16,
 * 24 or 32 bits per true-colour pixel; the visible area starts at
 * xoffset/yoffset, so a double-buffered application that pans shows its
 * front buffer.  Every pass asks again: a new mode (size, depth, layout)
 * rebuilds everything and reaches the server as a resize; a pan only makes
 * the next pass read everything.
 *
 * DRM: the ioctls directly (no libdrm), the few uapi structures they need
 * defined below, as the kernel lays them out (Debian's linux-libc-dev has
 * no drm/ headers).  The CRTC's framebuffer (GETCRTC) is looked up with GETFB2
 * (Linux 5.7; GETFB before that, formats from bpp/depth), its first plane
 * mapped with MAP_DUMB, or exported as a dma-buf and read between
 * DMA_BUF_IOCTL_SYNC calls where the buffer is not a dumb one.  Every pass
 * asks GETCRTC again: a page flip (new fb id) maps the new buffer, a new
 * mode is a resize.  Only linear buffers can be read: a tiled or compressed
 * one (a format modifier) or a planar format is refused with its name.
 * Only the primary plane is shown (no cursor or overlay planes).  The
 * kernel hands out buffer handles only to the DRM master or to
 * CAP_SYS_ADMIN: the server must keep root (no -u) to follow flips.  Being
 * the first to open the card makes us master, which would lock the real
 * display program out: open() drops it at once.
 *
 * Input goes to one uinput device, "vncsasl", made in open() (before the
 * server drops privileges; the descriptor outlives the drop) and removed
 * in close(); nothing is ever written to real input nodes.  It is a
 * keyboard (keysyms through a US layout: Shift pressed or released around
 * a key whose symbol needs it, as the viewer's own Shift state allows;
 * keycode() takes Linux KEY_* codes straight) and either an absolute
 * mouse (ABS_X/Y over the screen at open in device pixels, BTN_LEFT/
 * MIDDLE/RIGHT, the wheel as REL_WHEEL/REL_HWHEEL) or, with `touch`, a
 * single-contact touchscreen.  A viewer's auto-repeat becomes repeat
 * events (value 2); the device has no EV_REP, so the kernel adds none.
 * KEY_SYSRQ (Print, Sys_Req) is never sent: with Alt it is the kernel's
 * magic SysRq, the console's power to reboot or kill, not a viewer's.
 * Keys, buttons and a touch held through us are let go by release().
 * Without /dev/uinput the server runs view-only and says so once.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <unistd.h>

#include <linux/dma-buf.h>
#include <linux/fb.h>
#include <linux/input.h>
#include <linux/uinput.h>

#include "vncsasl.h"

/* ---- limits ---- */

#define TILE		32	/* compare tile side and scan period (rows) */
#define MAX_WH		16384	/* screen side: 1 GiB of XRGB at most */
#define DEFAULT_RATE	30	/* compare passes per second */
#define MAX_RATE	120	/* above a panel's refresh: no use */
#define IDLE_FULL_MS	1000	/* longer without a pass: read everything */
#define CRTC_MAX	32	/* CRTCs looked at on one card */
#define UNKNOWN_LOGGED	8	/* keysyms without a key: log the first ones */
#define EV_BATCH	16	/* input events written in one go */
#define FBDEV_MAJOR	29	/* <linux/major.h> FB_MAJOR */
#define DRM_MAJOR	226	/* <linux/major.h> DRM_MAJOR */

/* ---- the DRM uapi we use (include/uapi/drm/drm.h, drm_mode.h) ---- */

struct drm_gem_close {
	uint32_t handle, pad;
};

struct drm_prime_handle {
	uint32_t handle, flags;
	int32_t fd;
};

struct drm_mode_card_res {
	uint64_t fb_id_ptr, crtc_id_ptr, connector_id_ptr, encoder_id_ptr;
	uint32_t count_fbs, count_crtcs, count_connectors, count_encoders;
	uint32_t min_width, max_width, min_height, max_height;
};

struct drm_mode_modeinfo {
	uint32_t clock;
	uint16_t hdisplay, hsync_start, hsync_end, htotal, hskew;
	uint16_t vdisplay, vsync_start, vsync_end, vtotal, vscan;
	uint32_t vrefresh, flags, type;
	char name[32];
};

struct drm_mode_crtc {
	uint64_t set_connectors_ptr;
	uint32_t count_connectors, crtc_id, fb_id, x, y, gamma_size,
	    mode_valid;
	struct drm_mode_modeinfo mode;
};

struct drm_mode_fb_cmd {
	uint32_t fb_id, width, height, pitch, bpp, depth, handle;
};

struct drm_mode_fb_cmd2 {
	uint32_t fb_id, width, height, pixel_format, flags;
	uint32_t handles[4], pitches[4], offsets[4];
	uint64_t modifier[4];
};

struct drm_mode_map_dumb {
	uint32_t handle, pad;
	uint64_t offset;
};

#define DRM_IOCTL_DROP_MASTER	_IO('d', 0x1f)
#define DRM_IOCTL_GEM_CLOSE	_IOW('d', 0x09, struct drm_gem_close)
#define DRM_IOCTL_PRIME_HANDLE_TO_FD _IOWR('d', 0x2d, struct drm_prime_handle)
#define DRM_IOCTL_MODE_GETRESOURCES _IOWR('d', 0xa0, struct drm_mode_card_res)
#define DRM_IOCTL_MODE_GETCRTC	_IOWR('d', 0xa1, struct drm_mode_crtc)
#define DRM_IOCTL_MODE_GETFB	_IOWR('d', 0xad, struct drm_mode_fb_cmd)
#define DRM_IOCTL_MODE_MAP_DUMB	_IOWR('d', 0xb3, struct drm_mode_map_dumb)
#define DRM_IOCTL_MODE_GETFB2	_IOWR('d', 0xce, struct drm_mode_fb_cmd2)
#define DRM_MODE_FB_MODIFIERS	2
#define DRM_FORMAT_MOD_LINEAR	0
#define DRM_FORMAT_BIG_ENDIAN	(1u << 31)
#define FOURCC(a, b, c, d)	((uint32_t)(a) | (uint32_t)(b) << 8 | \
				(uint32_t)(c) << 16 | (uint32_t)(d) << 24)

/* ---- types ---- */

enum kind { FBDEV, DRM };

struct fb {
	const struct fb_host *host;
	enum kind kind;
	char path[PATH_MAX];
	int fd;
	int rot;		/* 0, 90, 180, 270 */
	int period_ms;		/* 1000 / rate */
	int touch, view;
	int want_dmabuf;	/* DRM: read through a dma-buf even if
				 * MAP_DUMB would do */
	uint32_t crtc_want;	/* 0: the first lit */

	/* what the device shows */
	int dw, dh;		/* device picture */
	size_t pitch;		/* bytes from one device row to the next */
	int bypp;		/* bytes per device pixel */
	struct fb_layout lay;	/* how a device pixel holds its colour */
	const uint8_t *base;	/* top-left visible pixel */
	void *map;		/* the mapping base points into */
	size_t map_len;
	struct fb_var_screeninfo var;	/* fbdev: as last seen */
	struct fb_fix_screeninfo fix;
	uint32_t crtc_id, fb_id;	/* DRM: as last seen */
	uint32_t handle;	/* GEM handle of the mapped buffer */
	int dmabuf;		/* its dma-buf, or -1 */
	uint32_t fourcc;
	int crtc_x, crtc_y;
	int stale;		/* the picture cannot be read: said why */

	/* comparison */
	uint8_t *shadow;	/* dh rows of dw * bypp bytes */
	int shared;		/* shadow is px: 32-bit pixels not turned
				 * are converted in place, and compared as
				 * viewers get them: one copy, not two */
	uint8_t *row;		/* one device row read out */
	uint32_t *xrow;		/* one row in XRGB */
	int tw, th;
	uint8_t *suspect, *changed, *hot;
	unsigned pass;
	long long last_pass;
	int full;		/* next pass reads everything */

	/* what viewers get */
	int vw, vh;
	uint32_t *px;

	/* input */
	int ui;			/* uinput descriptor, -1: view-only */
	int abs_w, abs_h;	/* ABS_X/ABS_Y span: the screen at open */
	uint8_t held[KEY_CNT / 8];	/* keys pressed through us */
	unsigned buttons;	/* RFB button mask as last applied */
	int touching;
	int tracking;		/* ABS_MT_TRACKING_ID of the next contact */
	int ax, ay;		/* last absolute position sent */
	struct input_event ev[EV_BATCH];
	int nev;
	int unknown;		/* keysyms without a key so far */
};

/* ---- helpers ---- */

static int
is_set(const uint8_t *bits, unsigned n)
{
	return bits[n / 8] >> (n % 8) & 1;
}

static void
set_bit(uint8_t *bits, unsigned n, int on)
{
	if (on)
		bits[n / 8] |= (uint8_t)(1u << (n % 8));
	else
		bits[n / 8] &= (uint8_t)~(1u << (n % 8));
}

static const char *
fourcc_name(uint32_t f, char out[8])
{
	int i;

	for (i = 0; i < 4; i++) {
		int c = (int)(f >> (8 * i) & 0xff);

		out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[4] = '\0';
	return out;
}

/* ---- pixel layouts ---- */

/* "RGB565", "XRGB8888"... for the log; "r16:8 g8:8 b0:8 32bpp" otherwise */
static void
layout_name(const struct fb_layout *l, char *out, size_t len)
{
	static const struct {
		int bpp, sr, br, sg, bg, sb, bb;
		const char *name;
	} known[] = {
		{ 32, 16, 8, 8, 8, 0, 8, "XRGB8888" },
		{ 32, 0, 8, 8, 8, 16, 8, "XBGR8888" },
		{ 32, 24, 8, 16, 8, 8, 8, "RGBX8888" },
		{ 32, 8, 8, 16, 8, 24, 8, "BGRX8888" },
		{ 24, 16, 8, 8, 8, 0, 8, "RGB888" },
		{ 24, 0, 8, 8, 8, 16, 8, "BGR888" },
		{ 16, 11, 5, 5, 6, 0, 5, "RGB565" },
		{ 16, 0, 5, 5, 6, 11, 5, "BGR565" },
		{ 16, 10, 5, 5, 5, 0, 5, "XRGB1555" },
		{ 32, 20, 10, 10, 10, 0, 10, "XRGB2101010" },
		{ 32, 0, 10, 10, 10, 20, 10, "XBGR2101010" },
	};
	size_t i;

	for (i = 0; i < sizeof known / sizeof known[0]; i++)
		if (known[i].bpp == l->bpp && known[i].sr == l->shift[0] &&
		    known[i].br == l->bits[0] && known[i].sg == l->shift[1] &&
		    known[i].bg == l->bits[1] && known[i].sb == l->shift[2] &&
		    known[i].bb == l->bits[2]) {
			snprintf(out, len, "%s%s", known[i].name,
			    l->big ? " big-endian" : "");
			return;
		}
	snprintf(out, len, "%d bpp r%d:%d g%d:%d b%d:%d%s", l->bpp,
	    l->shift[0], l->bits[0], l->shift[1], l->bits[1], l->shift[2],
	    l->bits[2], l->big ? " big-endian" : "");
}

/* ---- geometry and buffers ---- */

static void
buffers_free(struct fb *fb)
{
	if (!fb->shared)
		free(fb->shadow);
	free(fb->row);
	free(fb->xrow);
	free(fb->suspect);
	free(fb->changed);
	free(fb->hot);
	free(fb->px);
	fb->shadow = fb->row = fb->suspect = fb->changed = fb->hot = NULL;
	fb->xrow = fb->px = NULL;
}

/*
 * Buffers for a dw x dh device picture; -1 if too big or no memory.  px
 * is kept when the viewers' size stays: the server holds it until told of
 * a resize.
 */
static int
buffers_setup(struct fb *fb)
{
	size_t n = (size_t)fb->dw * fb->dh, tiles;
	int vw = fb->rot % 180 ? fb->dh : fb->dw;
	int vh = fb->rot % 180 ? fb->dw : fb->dh;
	uint32_t *px = fb->px;

	if (fb->dw < 1 || fb->dh < 1 || fb->dw > MAX_WH || fb->dh > MAX_WH)
		return -1;
	if (px == NULL || vw != fb->vw || vh != fb->vh) {
		if ((px = calloc(n, sizeof *px)) == NULL)
			return -1;
		free(fb->px);
	}
	fb->px = NULL;
	buffers_free(fb);
	fb->px = px;
	fb->vw = vw;
	fb->vh = vh;
	fb->tw = (fb->dw + TILE - 1) / TILE;
	fb->th = (fb->dh + TILE - 1) / TILE;
	tiles = (size_t)fb->tw * fb->th;
	fb->shared = fb->bypp == 4 && fb->rot == 0;
	fb->shadow = fb->shared ? (uint8_t *)px : malloc(n * (size_t)fb->bypp);
	fb->row = malloc((size_t)fb->dw * fb->bypp);
	fb->xrow = malloc((size_t)fb->dw * sizeof *fb->xrow);
	fb->suspect = calloc(tiles, 1);
	fb->changed = calloc(tiles, 1);
	fb->hot = calloc(tiles, 1);
	if (!fb->shadow || !fb->row || !fb->xrow || !fb->suspect ||
	    !fb->changed || !fb->hot)
		return -1;
	fb->full = 1;
	return 0;
}

/*
 * Rectangle (x, y, w, h) of a sw x sh picture, in place: where it lies
 * once the picture is turned rot degrees clockwise.
 */
static void
turn(int rot, int sw, int sh, int *x, int *y, int *w, int *h)
{
	int ox = *x, oy = *y, ow = *w, oh = *h;

	switch (rot) {
	case 90:
		*x = sh - oy - oh;
		*y = ox;
		*w = oh;
		*h = ow;
		break;
	case 180:
		*x = sw - ox - ow;
		*y = sh - oy - oh;
		break;
	case 270:
		*x = oy;
		*y = sw - ox - ow;
		*w = oh;
		*h = ow;
		break;
	}
}

/* Device point of viewer point (vx, vy): the viewer's picture turned back. */
static void
unrot_point(const struct fb *fb, int vx, int vy, int *x, int *y)
{
	int w = 1, h = 1, turned = fb->rot % 180 != 0;

	*x = vx;
	*y = vy;
	turn((360 - fb->rot) % 360, turned ? fb->dh : fb->dw,
	    turned ? fb->dw : fb->dh, x, y, &w, &h);
}

/* Row y of device pixels [x0, x0 + n) from the shadow into px, turned. */
static void
put_row(struct fb *fb, int x0, int y, int n)
{
	const uint8_t *s = fb->shadow + ((size_t)y * fb->dw + x0) * fb->bypp;
	uint32_t *d;
	int i;
	ptrdiff_t step;

	if (fb->shared)
		return;		/* compare_suspects() wrote px already */
	fb_layout_row(&fb->lay, s, fb->xrow, n);
	switch (fb->rot) {
	case 90:	/* device (x, y) -> viewer (dh-1-y, x) */
		d = fb->px + (size_t)x0 * fb->vw + (fb->dh - 1 - y);
		step = fb->vw;
		break;
	case 180:	/* -> (dw-1-x, dh-1-y) */
		d = fb->px + (size_t)(fb->dh - 1 - y) * fb->vw +
		    (fb->dw - 1 - x0);
		step = -1;
		break;
	case 270:	/* -> (y, dw-1-x) */
		d = fb->px + (size_t)(fb->dw - 1 - x0) * fb->vw + y;
		step = -(ptrdiff_t)fb->vw;
		break;
	default:
		memcpy(fb->px + (size_t)y * fb->vw + x0, fb->xrow,
		    (size_t)n * sizeof *fb->xrow);
		return;
	}
	for (i = 0; i < n; i++, d += step)
		*d = fb->xrow[i];
}

/* ---- reading the device ---- */

static void
sync_dmabuf(struct fb *fb, int end)
{
	struct dma_buf_sync s;

	if (fb->dmabuf < 0)
		return;
	s.flags = DMA_BUF_SYNC_READ | (end ? DMA_BUF_SYNC_END :
	    DMA_BUF_SYNC_START);
	while (ioctl(fb->dmabuf, DMA_BUF_IOCTL_SYNC, &s) < 0 && errno == EINTR)
		;
}

/* Device row y, pixels [x0, x1), into fb->row (at offset x0); with a
 * shared shadow, as px holds it (the X byte cleared). */
static const uint8_t *
read_row(struct fb *fb, int y, int x0, int x1)
{
	size_t off = (size_t)x0 * fb->bypp;

	memcpy(fb->row + off, fb->base + (size_t)y * fb->pitch + off,
	    (size_t)(x1 - x0) * fb->bypp);
	if (fb->shared)
		fb_layout_row(&fb->lay, fb->row + off, (uint32_t *)(void *)
		    (fb->row + off), x1 - x0);
	return fb->row;
}

/*
 * Scan: one row in every band.  Tiles whose scan row differs become
 * suspect.
 */
static void
scan(struct fb *fb)
{
	size_t rowb = (size_t)fb->dw * fb->bypp, tb = (size_t)TILE * fb->bypp;
	int ty, row = fb_scan_row(fb->pass, TILE);

	for (ty = 0; ty < fb->th; ty++) {
		int rows = fb->dh - ty * TILE < TILE ? fb->dh - ty * TILE : TILE;
		int y = ty * TILE + row % rows;

		fb_row_diff(fb->suspect + (size_t)ty * fb->tw,
		    read_row(fb, y, 0, fb->dw), fb->shadow + (size_t)y * rowb,
		    rowb, tb);
	}
}

/* Read suspect tiles whole; those that differ become changed. */
static void
compare_suspects(struct fb *fb)
{
	size_t rowb = (size_t)fb->dw * fb->bypp, tb = (size_t)TILE * fb->bypp;
	int ty, tx, j;

	for (ty = 0; ty < fb->th; ty++) {
		uint8_t *s = fb->suspect + (size_t)ty * fb->tw;
		uint8_t *c = fb->changed + (size_t)ty * fb->tw;
		int x0, x1, y0 = ty * TILE;
		int y1 = y0 + TILE < fb->dh ? y0 + TILE : fb->dh;

		if (!fb_span(s, fb->tw, &x0, &x1))
			continue;
		for (j = y0; j < y1; j++) {
			int px1 = (x1 + 1) * TILE < fb->dw ? (x1 + 1) * TILE :
			    fb->dw;
			const uint8_t *r = read_row(fb, j, x0 * TILE, px1);
			uint8_t *old = fb->shadow + (size_t)j * rowb;

			for (tx = x0; tx <= x1; tx++) {
				size_t o = (size_t)tx * tb;
				size_t n = o + tb <= rowb ? tb : rowb - o;

				if (s[tx] && memcmp(r + o, old + o, n) != 0) {
					memcpy(old + o, r + o, n);
					c[tx] = 1;
				}
			}
		}
		memset(s + x0, 0, (size_t)(x1 - x0 + 1));
	}
}

/* Changed tiles into px, reported as runs; they and their neighbours
 * are read whole in the next pass too. */
static void
report(struct fb *fb)
{
	struct fb_run r = { 0 };
	int j, k;

	memset(fb->hot, 0, (size_t)fb->tw * fb->th);
	while (fb_run_next(&r, fb->changed, TILE, fb->dw, fb->dh)) {
		for (j = r.y; j < r.y + r.h; j++)
			put_row(fb, r.x, j, r.w);
		for (k = r.tx0 > 0 ? r.tx0 - 1 : 0; k <= r.tx1 && k < fb->tw;
		    k++) {
			fb->hot[(size_t)r.ty * fb->tw + k] = 1;
			if (r.ty > 0)
				fb->hot[(size_t)(r.ty - 1) * fb->tw + k] = 1;
			if (r.ty + 1 < fb->th)
				fb->hot[(size_t)(r.ty + 1) * fb->tw + k] = 1;
		}
		turn(fb->rot, fb->dw, fb->dh, &r.x, &r.y, &r.w, &r.h);
		fb->host->damage(fb->host->srv, r.x, r.y, r.w, r.h);
	}
}

/* One compare pass; report: tell the server what changed. */
static void
compare(struct fb *fb, int report_it)
{
	size_t tiles = (size_t)fb->tw * fb->th, i;

	sync_dmabuf(fb, 0);
	if (fb->full) {
		memset(fb->suspect, 1, tiles);
		fb->full = 0;
	} else {
		for (i = 0; i < tiles; i++)
			fb->suspect[i] |= fb->hot[i];
		scan(fb);
		fb->pass++;
	}
	compare_suspects(fb);
	sync_dmabuf(fb, 1);
	if (report_it)
		report(fb);
	else
		memset(fb->changed, 0, tiles);
}

/* Read the whole device picture into shadow and px, nothing reported. */
static void
capture_all(struct fb *fb)
{
	int y;

	sync_dmabuf(fb, 0);
	for (y = 0; y < fb->dh; y++) {
		memcpy(fb->shadow + (size_t)y * fb->dw * fb->bypp,
		    fb->base + (size_t)y * fb->pitch, (size_t)fb->dw *
		    fb->bypp);
		if (fb->shared)	/* in place: the X byte cleared */
			fb_layout_row(&fb->lay, fb->shadow + (size_t)y *
			    fb->dw * 4, fb->px + (size_t)y * fb->dw, fb->dw);
		else
			put_row(fb, 0, y, fb->dw);
	}
	sync_dmabuf(fb, 1);
	fb->full = 0;
	memset(fb->hot, 0, (size_t)fb->tw * fb->th);
}

/* ---- fbdev ---- */

static void
unmap(struct fb *fb)
{
	if (fb->map != NULL && fb->map != MAP_FAILED)
		munmap(fb->map, fb->map_len);
	fb->map = NULL;
	fb->base = NULL;
}

/*
 * Layout, geometry and mapping from var/fix; -1 with the reason in err.
 * Maps again only when the video memory changed.
 */
static int
fbdev_setup(struct fb *fb, const struct fb_var_screeninfo *v,
    const struct fb_fix_screeninfo *f, char *err, size_t errlen)
{
	struct fb_layout l;
	long page = sysconf(_SC_PAGESIZE);
	size_t off, need;

	memset(&l, 0, sizeof l);
	if (f->type != FB_TYPE_PACKED_PIXELS || (f->visual !=
	    FB_VISUAL_TRUECOLOR && f->visual != FB_VISUAL_DIRECTCOLOR) ||
	    v->grayscale != 0) {
		snprintf(err, errlen, "%s: type %u visual %u grayscale %u: only "
		    "true-colour packed pixels can be read (no palette or "
		    "planar modes)", fb->path, f->type, f->visual, v->grayscale);
		return -1;
	}
	l.bpp = (int)v->bits_per_pixel;
	l.shift[0] = (int)v->red.offset;
	l.bits[0] = (int)v->red.length;
	l.shift[1] = (int)v->green.offset;
	l.bits[1] = (int)v->green.length;
	l.shift[2] = (int)v->blue.offset;
	l.bits[2] = (int)v->blue.length;
	l.big = fb_host_big();	/* fbdev: CPU order */
	if (l.bpp < 16 || fb_layout_setup(&l) < 0) {
		snprintf(err, errlen, "%s: %u bpp with red %u:%u green %u:%u "
		    "blue %u:%u: not a layout this source reads (16, 24 or "
		    "32 bpp)", fb->path, v->bits_per_pixel, v->red.offset,
		    v->red.length, v->green.offset, v->green.length,
		    v->blue.offset, v->blue.length);
		return -1;
	}
	off = (size_t)(f->smem_start % (unsigned long)page);
	need = (size_t)(v->yoffset + v->yres - 1) * f->line_length +
	    (size_t)(v->xoffset + v->xres) * (v->bits_per_pixel / 8);
	if (v->xres < 1 || v->yres < 1 || v->xres > MAX_WH || v->yres > MAX_WH ||
	    f->line_length < v->xres * (v->bits_per_pixel / 8) ||
	    need > f->smem_len) {
		snprintf(err, errlen, "%s: %ux%u at +%u+%u, line %u bytes, in "
		    "%u bytes of video memory: does not fit (or over %d)",
		    fb->path, v->xres, v->yres, v->xoffset, v->yoffset,
		    f->line_length, f->smem_len, MAX_WH);
		return -1;
	}
	if (fb->map == NULL || f->smem_start != fb->fix.smem_start ||
	    f->smem_len != fb->fix.smem_len) {
		void *m;
		size_t len = off + f->smem_len;

		m = mmap(NULL, len, PROT_READ, MAP_SHARED, fb->fd, 0);
		if (m == MAP_FAILED) {
			snprintf(err, errlen, "%s: mmap of %zu bytes: %s",
			    fb->path, len, strerror(errno));
			return -1;
		}
		unmap(fb);
		fb->map = m;
		fb->map_len = len;
	}
	fb->lay = l;
	fb->bypp = l.bpp / 8;
	fb->dw = (int)v->xres;
	fb->dh = (int)v->yres;
	fb->pitch = f->line_length;
	fb->base = (const uint8_t *)fb->map + off + (size_t)v->yoffset *
	    f->line_length + (size_t)v->xoffset * fb->bypp;
	fb->var = *v;
	fb->fix = *f;
	return 0;
}

static int
fbdev_query(struct fb *fb, struct fb_var_screeninfo *v,
    struct fb_fix_screeninfo *f)
{
	if (ioctl(fb->fd, FBIOGET_VSCREENINFO, v) < 0 ||
	    ioctl(fb->fd, FBIOGET_FSCREENINFO, f) < 0)
		return -1;
	return 0;
}

/* What changed since the last look: 0 nothing, 1 a pan, 2 the mode. */
static int
fbdev_changed(const struct fb *fb, const struct fb_var_screeninfo *v,
    const struct fb_fix_screeninfo *f)
{
	const struct fb_var_screeninfo *o = &fb->var;

	if (v->xres != o->xres || v->yres != o->yres ||
	    v->bits_per_pixel != o->bits_per_pixel ||
	    memcmp(&v->red, &o->red, sizeof v->red) ||
	    memcmp(&v->green, &o->green, sizeof v->green) ||
	    memcmp(&v->blue, &o->blue, sizeof v->blue) ||
	    v->grayscale != o->grayscale ||
	    f->line_length != fb->fix.line_length ||
	    f->smem_start != fb->fix.smem_start ||
	    f->smem_len != fb->fix.smem_len || f->visual != fb->fix.visual ||
	    f->type != fb->fix.type)
		return 2;
	if (v->xoffset != o->xoffset || v->yoffset != o->yoffset)
		return 1;
	return 0;
}

/* ---- DRM ---- */

static void
gem_close(const struct fb *fb, uint32_t handle)
{
	struct drm_gem_close c = { handle, 0 };

	if (handle != 0)
		ioctl(fb->fd, DRM_IOCTL_GEM_CLOSE, &c);
}

static void
drm_unmap(struct fb *fb)
{
	unmap(fb);
	if (fb->dmabuf >= 0)
		close(fb->dmabuf);
	fb->dmabuf = -1;
	gem_close(fb, fb->handle);
	fb->handle = 0;
}

/* The layout of a fourcc (little-endian unless DRM_FORMAT_BIG_ENDIAN). */
static int
drm_layout(uint32_t fourcc, struct fb_layout *l)
{
	static const struct {
		uint32_t fourcc;
		int bpp, sr, br, sg, bg, sb, bb;
	} fmt[] = {
		{ FOURCC('X', 'R', '2', '4'), 32, 16, 8, 8, 8, 0, 8 },
		{ FOURCC('A', 'R', '2', '4'), 32, 16, 8, 8, 8, 0, 8 },
		{ FOURCC('X', 'B', '2', '4'), 32, 0, 8, 8, 8, 16, 8 },
		{ FOURCC('A', 'B', '2', '4'), 32, 0, 8, 8, 8, 16, 8 },
		{ FOURCC('R', 'X', '2', '4'), 32, 24, 8, 16, 8, 8, 8 },
		{ FOURCC('R', 'A', '2', '4'), 32, 24, 8, 16, 8, 8, 8 },
		{ FOURCC('B', 'X', '2', '4'), 32, 8, 8, 16, 8, 24, 8 },
		{ FOURCC('B', 'A', '2', '4'), 32, 8, 8, 16, 8, 24, 8 },
		{ FOURCC('R', 'G', '2', '4'), 24, 16, 8, 8, 8, 0, 8 },
		{ FOURCC('B', 'G', '2', '4'), 24, 0, 8, 8, 8, 16, 8 },
		{ FOURCC('R', 'G', '1', '6'), 16, 11, 5, 5, 6, 0, 5 },
		{ FOURCC('B', 'G', '1', '6'), 16, 0, 5, 5, 6, 11, 5 },
		{ FOURCC('X', 'R', '1', '5'), 16, 10, 5, 5, 5, 0, 5 },
		{ FOURCC('A', 'R', '1', '5'), 16, 10, 5, 5, 5, 0, 5 },
		{ FOURCC('X', 'R', '3', '0'), 32, 20, 10, 10, 10, 0, 10 },
		{ FOURCC('A', 'R', '3', '0'), 32, 20, 10, 10, 10, 0, 10 },
		{ FOURCC('X', 'B', '3', '0'), 32, 0, 10, 10, 10, 20, 10 },
		{ FOURCC('A', 'B', '3', '0'), 32, 0, 10, 10, 10, 20, 10 },
	};
	size_t i;

	memset(l, 0, sizeof *l);
	for (i = 0; i < sizeof fmt / sizeof fmt[0]; i++)
		if (fmt[i].fourcc == (fourcc & ~DRM_FORMAT_BIG_ENDIAN)) {
			l->bpp = fmt[i].bpp;
			l->big = (fourcc & DRM_FORMAT_BIG_ENDIAN) != 0;
			l->shift[0] = fmt[i].sr;
			l->bits[0] = fmt[i].br;
			l->shift[1] = fmt[i].sg;
			l->bits[1] = fmt[i].bg;
			l->shift[2] = fmt[i].sb;
			l->bits[2] = fmt[i].bb;
			return fb_layout_setup(l);
		}
	return -1;
}

/* GETFB's bpp/depth as a fourcc (pre-5.7 kernels have no GETFB2). */
static uint32_t
drm_legacy_fourcc(uint32_t bpp, uint32_t depth)
{
	if (bpp == 32 && depth == 24)
		return FOURCC('X', 'R', '2', '4');
	if (bpp == 32 && depth == 32)
		return FOURCC('A', 'R', '2', '4');
	if (bpp == 32 && depth == 30)
		return FOURCC('X', 'R', '3', '0');
	if (bpp == 24 && depth == 24)
		return FOURCC('R', 'G', '2', '4');
	if (bpp == 16 && depth == 16)
		return FOURCC('R', 'G', '1', '6');
	if (bpp == 16 && depth == 15)
		return FOURCC('X', 'R', '1', '5');
	return 0;
}

/* A framebuffer as GETFB2 (or GETFB) describes its first plane. */
struct drm_buf {
	uint32_t width, height, fourcc, handle, pitch, offset;
};

/*
 * Framebuffer fb_id's geometry, format and a GEM handle of ours to its
 * buffer; -1 with the reason in err, and no handle left open.
 */
static int
drm_buf_info(struct fb *fb, uint32_t fb_id, struct drm_buf *b, char *err,
    size_t errlen)
{
	struct drm_mode_fb_cmd2 f2;
	char name[8];
	int i;

	memset(&f2, 0, sizeof f2);
	memset(b, 0, sizeof *b);
	f2.fb_id = fb_id;
	if (ioctl(fb->fd, DRM_IOCTL_MODE_GETFB2, &f2) < 0) {
		struct drm_mode_fb_cmd f;

		if (errno != EINVAL && errno != ENOTTY) {
			snprintf(err, errlen, "GETFB2 %u: %s", fb_id,
			    strerror(errno));
			return -1;
		}
		memset(&f, 0, sizeof f);	/* Linux before 5.7 */
		f.fb_id = fb_id;
		if (ioctl(fb->fd, DRM_IOCTL_MODE_GETFB, &f) < 0) {
			snprintf(err, errlen, "GETFB %u: %s", fb_id,
			    strerror(errno));
			return -1;
		}
		b->width = f.width;
		b->height = f.height;
		b->handle = f.handle;
		b->pitch = f.pitch;
		if ((b->fourcc = drm_legacy_fourcc(f.bpp, f.depth)) == 0) {
			gem_close(fb, b->handle);
			snprintf(err, errlen, "framebuffer %u: %u bpp depth %u: "
			    "not a layout this source reads", fb_id, f.bpp,
			    f.depth);
			return -1;
		}
	} else {
		b->width = f2.width;
		b->height = f2.height;
		b->fourcc = f2.pixel_format;
		b->handle = f2.handles[0];
		b->pitch = f2.pitches[0];
		b->offset = f2.offsets[0];
		for (i = 1; i < 4; i++)	/* one handle per object */
			if (f2.handles[i] != b->handle &&
			    f2.handles[i] != f2.handles[i - 1])
				gem_close(fb, f2.handles[i]);
		if ((f2.flags & DRM_MODE_FB_MODIFIERS) &&
		    f2.modifier[0] != DRM_FORMAT_MOD_LINEAR) {
			gem_close(fb, b->handle);
			snprintf(err, errlen, "framebuffer %u: %s with format "
			    "modifier 0x%016llx (tiled or compressed): only "
			    "linear buffers can be read", fb_id,
			    fourcc_name(b->fourcc, name),
			    (unsigned long long)f2.modifier[0]);
			return -1;
		}
		if (f2.handles[1] != 0 || f2.pitches[1] != 0) {
			gem_close(fb, b->handle);
			snprintf(err, errlen, "framebuffer %u: %s has several "
			    "planes: only packed RGB can be read", fb_id,
			    fourcc_name(b->fourcc, name));
			return -1;
		}
	}
	if (b->handle == 0) {
		snprintf(err, errlen, "framebuffer %u: the kernel gives its "
		    "buffer only to the DRM master or CAP_SYS_ADMIN (run "
		    "without -u, as root)", fb_id);
		return -1;
	}
	return 0;
}

/*
 * The buffer mapped read-only, at least need bytes: MAP_DUMB, else (or
 * with -x ...,dmabuf) a dma-buf export, whose descriptor goes to *dmabuf.
 * MAP_FAILED with the reason in err.
 */
static void *
drm_buf_map(struct fb *fb, const struct drm_buf *b, size_t need,
    size_t *len, int *dmabuf, char *err, size_t errlen)
{
	struct drm_mode_map_dumb md;
	struct drm_prime_handle ph;
	void *m;
	off_t size;

	*dmabuf = -1;
	memset(&md, 0, sizeof md);
	md.handle = b->handle;
	if (!fb->want_dmabuf &&
	    ioctl(fb->fd, DRM_IOCTL_MODE_MAP_DUMB, &md) == 0 &&
	    (m = mmap(NULL, need, PROT_READ, MAP_SHARED, fb->fd,
	    (off_t)md.offset)) != MAP_FAILED) {
		*len = need;
		return m;
	}
	memset(&ph, 0, sizeof ph);
	ph.handle = b->handle;
	ph.flags = O_CLOEXEC;
	if (ioctl(fb->fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &ph) < 0) {
		snprintf(err, errlen, "neither MAP_DUMB nor a dma-buf export "
		    "works: %s", strerror(errno));
		return MAP_FAILED;
	}
	size = lseek(ph.fd, 0, SEEK_END);
	*len = size > 0 ? (size_t)size : need;
	if (*len < need || (m = mmap(NULL, *len, PROT_READ, MAP_SHARED, ph.fd,
	    0)) == MAP_FAILED) {
		snprintf(err, errlen, "dma-buf of %zu bytes (%zu needed): %s",
		    *len, need, *len < need ? "too small" : strerror(errno));
		close(ph.fd);
		return MAP_FAILED;
	}
	*dmabuf = ph.fd;
	return m;
}

/*
 * Map framebuffer fb_id, shown from (x, y) at w x h.  On success the old
 * mapping is gone and fb describes the new one; -1 leaves fb as it was,
 * with the reason in err.
 */
static int
drm_map_fb(struct fb *fb, uint32_t fb_id, int x, int y, int w, int h,
    char *err, size_t errlen)
{
	struct drm_buf b;
	struct fb_layout l;
	size_t len, need;
	void *m;
	int dmabuf, bypp;
	char name[8], why[160];

	if (drm_buf_info(fb, fb_id, &b, err, errlen) < 0)
		return -1;
	if (drm_layout(b.fourcc, &l) < 0) {
		snprintf(err, errlen, "framebuffer %u: format %s (0x%08x) is "
		    "not one this source reads (packed RGB, 16-32 bpp)", fb_id,
		    fourcc_name(b.fourcc, name), b.fourcc);
		goto fail;
	}
	bypp = l.bpp / 8;
	if (w < 1 || h < 1 || w > MAX_WH || h > MAX_WH || x < 0 || y < 0 ||
	    (uint32_t)(x + w) > b.width || (uint32_t)(y + h) > b.height ||
	    b.pitch < b.width * (uint32_t)bypp) {
		snprintf(err, errlen, "framebuffer %u: %ux%u, pitch %u: the "
		    "CRTC shows %dx%d at +%d+%d: does not fit (or over %d)",
		    fb_id, b.width, b.height, b.pitch, w, h, x, y, MAX_WH);
		goto fail;
	}
	need = (size_t)b.offset + (size_t)(b.height - 1) * b.pitch +
	    (size_t)b.width * bypp;
	if ((m = drm_buf_map(fb, &b, need, &len, &dmabuf, why, sizeof why)) ==
	    MAP_FAILED) {
		snprintf(err, errlen, "framebuffer %u: %s", fb_id, why);
		goto fail;
	}
	drm_unmap(fb);
	fb->lay = l;
	fb->map = m;
	fb->map_len = len;
	fb->dmabuf = dmabuf;
	fb->handle = b.handle;
	fb->fourcc = b.fourcc;
	fb->fb_id = fb_id;
	fb->bypp = bypp;
	fb->pitch = b.pitch;
	fb->dw = w;
	fb->dh = h;
	fb->crtc_x = x;
	fb->crtc_y = y;
	fb->base = (const uint8_t *)m + b.offset + (size_t)y * b.pitch +
	    (size_t)x * bypp;
	return 0;
fail:
	gem_close(fb, b.handle);
	return -1;
}

static int
drm_getcrtc(struct fb *fb, uint32_t id, struct drm_mode_crtc *c)
{
	memset(c, 0, sizeof *c);
	c->crtc_id = id;
	return ioctl(fb->fd, DRM_IOCTL_MODE_GETCRTC, c);
}

/* The CRTC to show: crtc_want, else the first lit; 0 if none is lit. */
static int
drm_find_crtc(struct fb *fb, char *err, size_t errlen)
{
	struct drm_mode_card_res r;
	struct drm_mode_crtc c;
	uint32_t ids[CRTC_MAX], i, n;

	memset(&r, 0, sizeof r);
	r.crtc_id_ptr = (uint64_t)(uintptr_t)ids;
	r.count_crtcs = CRTC_MAX;
	if (ioctl(fb->fd, DRM_IOCTL_MODE_GETRESOURCES, &r) < 0) {
		snprintf(err, errlen, "%s: GETRESOURCES: %s (not a KMS "
		    "device?)", fb->path, strerror(errno));
		return -1;
	}
	n = r.count_crtcs < CRTC_MAX ? r.count_crtcs : CRTC_MAX;
	fb->crtc_id = 0;
	for (i = 0; i < n; i++) {
		if (fb->crtc_want != 0 && ids[i] != fb->crtc_want)
			continue;
		if (fb->crtc_want != 0) {
			fb->crtc_id = ids[i];
			return 0;
		}
		if (drm_getcrtc(fb, ids[i], &c) == 0 && c.mode_valid &&
		    c.fb_id != 0) {
			fb->crtc_id = ids[i];
			return 0;
		}
	}
	if (fb->crtc_want != 0) {
		snprintf(err, errlen, "%s: no CRTC %u (it has %u)", fb->path,
		    fb->crtc_want, r.count_crtcs);
		return -1;
	}
	snprintf(err, errlen, "%s: no CRTC is lit (nothing on the screen; "
	    "crtc=ID picks one)", fb->path);
	return -1;
}

/* ---- following the device ---- */

/*
 * New geometry or layout: rebuild the buffers and read everything; the
 * server hears of a new size, or of everything changed.  Exits if the
 * memory is not there, like a resize the server cannot follow.
 */
static void
geometry_changed(struct fb *fb)
{
	int ovw = fb->vw, ovh = fb->vh;

	if (buffers_setup(fb) < 0) {
		fb->host->log(fb->host->srv, LOG_ERR, "linux: %s: cannot follow "
		    "the screen to %dx%d (limit %d, or out of memory)",
		    fb->path, fb->dw, fb->dh, MAX_WH);
		exit(1);
	}
	capture_all(fb);
	if (fb->vw == ovw && fb->vh == ovh)
		fb->host->damage(fb->host->srv, 0, 0, fb->vw, fb->vh);
	else
		fb->host->resized(fb->host->srv);
}

static void
log_mode(struct fb *fb, const char *what)
{
	char l[64];

	layout_name(&fb->lay, l, sizeof l);
	fb->host->log(fb->host->srv, LOG_INFO, "linux: %s %s %dx%d %s, "
	    "pitch %zu%s", what, fb->path, fb->dw, fb->dh, l, fb->pitch,
	    fb->rot == 90 ? ", turned 90" : fb->rot == 180 ? ", turned 180" :
	    fb->rot == 270 ? ", turned 270" : "");
}

/* Once per trouble: the picture stays as it was until it is over. */
static void
stale(struct fb *fb, const char *err)
{
	if (!fb->stale)
		fb->host->log(fb->host->srv, LOG_ERR, "linux: %s; showing the "
		    "last picture", err);
	fb->stale = 1;
}

/*
 * Has the device picture moved, flipped or changed mode?  Follow it.
 * 1: rebuilt and read whole (nothing to compare), -1: cannot be read now,
 * 0: compare.
 */
static int
follow(struct fb *fb)
{
	char err[PATH_MAX + 256];
	int obypp = fb->bypp, odw = fb->dw, odh = fb->dh;

	if (fb->kind == FBDEV) {
		struct fb_var_screeninfo v;
		struct fb_fix_screeninfo f;
		int what;

		if (fbdev_query(fb, &v, &f) < 0)
			return fb->stale ? -1 : 0;
		if ((what = fbdev_changed(fb, &v, &f)) == 0)
			return fb->stale ? -1 : 0;
		if (fbdev_setup(fb, &v, &f, err, sizeof err) < 0) {
			fb->var = v;	/* tried: not again each pass */
			fb->fix = f;
			stale(fb, err);
			return -1;
		}
		fb->stale = 0;
		if (what == 1) {
			fb->full = 1;	/* panned: another buffer shows */
			return 0;
		}
	} else {
		struct drm_mode_crtc c;

		if (drm_getcrtc(fb, fb->crtc_id, &c) < 0)
			return fb->stale ? -1 : 0;
		if (!c.mode_valid || c.fb_id == 0) {
			snprintf(err, sizeof err, "%s: CRTC %u is off",
			    fb->path, fb->crtc_id);
			stale(fb, err);
			fb->fb_id = 0;
			return -1;
		}
		if (c.fb_id == fb->fb_id && (int)c.x == fb->crtc_x &&
		    (int)c.y == fb->crtc_y && c.mode.hdisplay == fb->dw &&
		    c.mode.vdisplay == fb->dh)
			return fb->stale ? -1 : 0;
		if (drm_map_fb(fb, c.fb_id, (int)c.x, (int)c.y,
		    c.mode.hdisplay, c.mode.vdisplay, err, sizeof err) < 0) {
			fb->fb_id = c.fb_id;	/* not again each pass */
			stale(fb, err);
			return -1;
		}
		fb->stale = 0;
		if (fb->dw == odw && fb->dh == odh && fb->bypp == obypp) {
			fb->full = 1;	/* flipped: read it all */
			return 0;
		}
	}
	log_mode(fb, "mode changed:");
	geometry_changed(fb);
	return 1;
}

/* ---- input: uinput ---- */

static void
ev_flush(struct fb *fb)
{
	ssize_t n;

	if (fb->nev == 0 || fb->ui < 0)
		return;
	n = write(fb->ui, fb->ev, (size_t)fb->nev * sizeof fb->ev[0]);
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		fb->host->log(fb->host->srv, LOG_ERR, "linux: uinput write: %s",
		    strerror(errno));
	fb->nev = 0;
}

static void
ev_put(struct fb *fb, unsigned type, unsigned code, int value)
{
	struct input_event *e;

	if (fb->ui < 0)
		return;
	if (fb->nev == EV_BATCH)
		ev_flush(fb);
	e = &fb->ev[fb->nev++];
	memset(e, 0, sizeof *e);
	e->type = (uint16_t)type;
	e->code = (uint16_t)code;
	e->value = value;
}

static void
ev_syn(struct fb *fb)
{
	ev_put(fb, EV_SYN, SYN_REPORT, 0);
	ev_flush(fb);
}

/* Key code down (1), up (0) or repeated (2), held state kept. */
static void
key_event(struct fb *fb, unsigned code, int value)
{
	/* Alt+SysRq reaches the kernel's magic SysRq (reboot, kill all):
	 * that is the console's, not a viewer's */
	if (code == 0 || code >= KEY_CNT || code == KEY_SYSRQ)
		return;
	if (value == 0 && !is_set(fb->held, code))
		return;
	if (value == 1 && is_set(fb->held, code))
		value = 2;	/* the viewer repeats */
	ev_put(fb, EV_KEY, code, value);
	ev_syn(fb);
	set_bit(fb->held, code, value != 0);
}

/* Keys the device has: the whole keyboard range (KEY_* below BTN_MISC). */
static int
is_key(unsigned code)
{
	return code >= 1 && code < BTN_MISC;
}

static int
uinput_open(struct fb *fb, char *why, size_t whylen)
{
	struct uinput_user_dev u;
	unsigned k;
	int fd;

	fd = open("/dev/uinput", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		fd = open("/dev/input/uinput", O_WRONLY | O_NONBLOCK |
		    O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "/dev/uinput: %s", strerror(errno));
		return -1;
	}
	memset(&u, 0, sizeof u);
	snprintf(u.name, sizeof u.name, "vncsasl");
	u.id.bustype = BUS_VIRTUAL;
	u.id.vendor = 0x5653;	/* "VS" */
	u.id.product = fb->touch ? 2 : 1;
	u.id.version = 1;
	fb->abs_w = fb->dw;
	fb->abs_h = fb->dh;
	if (ioctl(fd, UI_SET_EVBIT, EV_SYN) < 0 ||
	    ioctl(fd, UI_SET_EVBIT, EV_KEY) < 0 ||
	    ioctl(fd, UI_SET_EVBIT, EV_ABS) < 0)
		goto fail;
	for (k = 1; k < BTN_MISC; k++)
		if (ioctl(fd, UI_SET_KEYBIT, k) < 0)
			goto fail;
	if (ioctl(fd, UI_SET_ABSBIT, ABS_X) < 0 ||
	    ioctl(fd, UI_SET_ABSBIT, ABS_Y) < 0)
		goto fail;
	u.absmax[ABS_X] = fb->abs_w - 1;
	u.absmax[ABS_Y] = fb->abs_h - 1;
	if (fb->touch) {
		if (ioctl(fd, UI_SET_KEYBIT, BTN_TOUCH) < 0 ||
		    ioctl(fd, UI_SET_ABSBIT, ABS_MT_SLOT) < 0 ||
		    ioctl(fd, UI_SET_ABSBIT, ABS_MT_TRACKING_ID) < 0 ||
		    ioctl(fd, UI_SET_ABSBIT, ABS_MT_POSITION_X) < 0 ||
		    ioctl(fd, UI_SET_ABSBIT, ABS_MT_POSITION_Y) < 0 ||
		    ioctl(fd, UI_SET_PROPBIT, INPUT_PROP_DIRECT) < 0)
			goto fail;
		u.absmax[ABS_MT_SLOT] = 0;
		u.absmax[ABS_MT_TRACKING_ID] = 65535;
		u.absmax[ABS_MT_POSITION_X] = fb->abs_w - 1;
		u.absmax[ABS_MT_POSITION_Y] = fb->abs_h - 1;
	} else {
		if (ioctl(fd, UI_SET_EVBIT, EV_REL) < 0 ||
		    ioctl(fd, UI_SET_RELBIT, REL_WHEEL) < 0 ||
		    ioctl(fd, UI_SET_RELBIT, REL_HWHEEL) < 0 ||
		    ioctl(fd, UI_SET_KEYBIT, BTN_LEFT) < 0 ||
		    ioctl(fd, UI_SET_KEYBIT, BTN_RIGHT) < 0 ||
		    ioctl(fd, UI_SET_KEYBIT, BTN_MIDDLE) < 0 ||
		    ioctl(fd, UI_SET_KEYBIT, BTN_SIDE) < 0)
			goto fail;
	}
	/* struct uinput_user_dev, not UI_DEV_SETUP: Linux before 4.5 too */
	if (write(fd, &u, sizeof u) != (ssize_t)sizeof u ||
	    ioctl(fd, UI_DEV_CREATE) < 0)
		goto fail;
	fb->ui = fd;
	fb->ax = fb->ay = -1;
	return 0;
fail:
	snprintf(why, whylen, "/dev/uinput: cannot make the device: %s",
	    strerror(errno));
	close(fd);
	return -1;
}

/*
 * keysym -> KEY_* on a US keyboard.  shift: 1 the symbol needs Shift, 0 it
 * needs Shift up, -1 it does not care (keys that type no symbol).
 */
struct keymap {
	uint32_t keysym;
	uint16_t code;
	int8_t shift;
};

static const uint16_t letter[26] = {
	KEY_A, KEY_B, KEY_C, KEY_D, KEY_E, KEY_F, KEY_G, KEY_H, KEY_I,
	KEY_J, KEY_K, KEY_L, KEY_M, KEY_N, KEY_O, KEY_P, KEY_Q, KEY_R,
	KEY_S, KEY_T, KEY_U, KEY_V, KEY_W, KEY_X, KEY_Y, KEY_Z,
};

static const struct keymap keymap[] = {
	{ ' ', KEY_SPACE, -1 }, { '!', KEY_1, 1 }, { '"', KEY_APOSTROPHE, 1 },
	{ '#', KEY_3, 1 }, { '$', KEY_4, 1 }, { '%', KEY_5, 1 },
	{ '&', KEY_7, 1 }, { '\'', KEY_APOSTROPHE, 0 }, { '(', KEY_9, 1 },
	{ ')', KEY_0, 1 }, { '*', KEY_8, 1 }, { '+', KEY_EQUAL, 1 },
	{ ',', KEY_COMMA, 0 }, { '-', KEY_MINUS, 0 }, { '.', KEY_DOT, 0 },
	{ '/', KEY_SLASH, 0 }, { '0', KEY_0, 0 }, { '1', KEY_1, 0 },
	{ '2', KEY_2, 0 }, { '3', KEY_3, 0 }, { '4', KEY_4, 0 },
	{ '5', KEY_5, 0 }, { '6', KEY_6, 0 }, { '7', KEY_7, 0 },
	{ '8', KEY_8, 0 }, { '9', KEY_9, 0 }, { ':', KEY_SEMICOLON, 1 },
	{ ';', KEY_SEMICOLON, 0 }, { '<', KEY_COMMA, 1 }, { '=', KEY_EQUAL, 0 },
	{ '>', KEY_DOT, 1 }, { '?', KEY_SLASH, 1 }, { '@', KEY_2, 1 },
	{ '[', KEY_LEFTBRACE, 0 }, { '\\', KEY_BACKSLASH, 0 },
	{ ']', KEY_RIGHTBRACE, 0 }, { '^', KEY_6, 1 }, { '_', KEY_MINUS, 1 },
	{ '`', KEY_GRAVE, 0 }, { '{', KEY_LEFTBRACE, 1 },
	{ '|', KEY_BACKSLASH, 1 }, { '}', KEY_RIGHTBRACE, 1 },
	{ '~', KEY_GRAVE, 1 },
	{ 0xfe03, KEY_RIGHTALT, -1 },		/* ISO_Level3_Shift */
	{ 0xff08, KEY_BACKSPACE, -1 }, { 0xff09, KEY_TAB, -1 },
	{ 0xff0a, KEY_LINEFEED, -1 }, { 0xff0d, KEY_ENTER, -1 },
	{ 0xff13, KEY_PAUSE, -1 }, { 0xff14, KEY_SCROLLLOCK, -1 },
	{ 0xff1b, KEY_ESC, -1 },
	{ 0xff50, KEY_HOME, -1 }, { 0xff51, KEY_LEFT, -1 },
	{ 0xff52, KEY_UP, -1 }, { 0xff53, KEY_RIGHT, -1 },
	{ 0xff54, KEY_DOWN, -1 }, { 0xff55, KEY_PAGEUP, -1 },
	{ 0xff56, KEY_PAGEDOWN, -1 }, { 0xff57, KEY_END, -1 },
	{ 0xff63, KEY_INSERT, -1 },
	{ 0xff67, KEY_COMPOSE, -1 }, { 0xff7f, KEY_NUMLOCK, -1 },
	{ 0xff8d, KEY_KPENTER, -1 },
	{ 0xff95, KEY_KP7, -1 }, { 0xff96, KEY_KP4, -1 },
	{ 0xff97, KEY_KP8, -1 }, { 0xff98, KEY_KP6, -1 },
	{ 0xff99, KEY_KP2, -1 }, { 0xff9a, KEY_KP9, -1 },
	{ 0xff9b, KEY_KP3, -1 }, { 0xff9c, KEY_KP1, -1 },
	{ 0xff9d, KEY_KP5, -1 }, { 0xff9e, KEY_KP0, -1 },
	{ 0xff9f, KEY_KPDOT, -1 },
	{ 0xffaa, KEY_KPASTERISK, -1 }, { 0xffab, KEY_KPPLUS, -1 },
	{ 0xffac, KEY_KPCOMMA, -1 }, { 0xffad, KEY_KPMINUS, -1 },
	{ 0xffae, KEY_KPDOT, -1 }, { 0xffaf, KEY_KPSLASH, -1 },
	{ 0xffb0, KEY_KP0, -1 }, { 0xffb1, KEY_KP1, -1 },
	{ 0xffb2, KEY_KP2, -1 }, { 0xffb3, KEY_KP3, -1 },
	{ 0xffb4, KEY_KP4, -1 }, { 0xffb5, KEY_KP5, -1 },
	{ 0xffb6, KEY_KP6, -1 }, { 0xffb7, KEY_KP7, -1 },
	{ 0xffb8, KEY_KP8, -1 }, { 0xffb9, KEY_KP9, -1 },
	{ 0xffbd, KEY_KPEQUAL, -1 },
	{ 0xffbe, KEY_F1, -1 }, { 0xffbf, KEY_F2, -1 }, { 0xffc0, KEY_F3, -1 },
	{ 0xffc1, KEY_F4, -1 }, { 0xffc2, KEY_F5, -1 }, { 0xffc3, KEY_F6, -1 },
	{ 0xffc4, KEY_F7, -1 }, { 0xffc5, KEY_F8, -1 }, { 0xffc6, KEY_F9, -1 },
	{ 0xffc7, KEY_F10, -1 }, { 0xffc8, KEY_F11, -1 },
	{ 0xffc9, KEY_F12, -1 },
	{ 0xffe1, KEY_LEFTSHIFT, -1 }, { 0xffe2, KEY_RIGHTSHIFT, -1 },
	{ 0xffe3, KEY_LEFTCTRL, -1 }, { 0xffe4, KEY_RIGHTCTRL, -1 },
	{ 0xffe5, KEY_CAPSLOCK, -1 }, { 0xffe7, KEY_LEFTMETA, -1 },
	{ 0xffe8, KEY_RIGHTMETA, -1 }, { 0xffe9, KEY_LEFTALT, -1 },
	{ 0xffea, KEY_RIGHTALT, -1 }, { 0xffeb, KEY_LEFTMETA, -1 },
	{ 0xffec, KEY_RIGHTMETA, -1 }, { 0xffff, KEY_DELETE, -1 },
	{ 0x1008ff11, KEY_VOLUMEDOWN, -1 }, { 0x1008ff12, KEY_MUTE, -1 },
	{ 0x1008ff13, KEY_VOLUMEUP, -1 }, { 0x1008ff2a, KEY_POWER, -1 },
};

/* 0 if no key of a US keyboard types keysym. */
static unsigned
key_lookup(uint32_t keysym, int *shift)
{
	size_t i;

	if (keysym >= 'a' && keysym <= 'z') {
		*shift = 0;
		return letter[keysym - 'a'];
	}
	if (keysym >= 'A' && keysym <= 'Z') {
		*shift = 1;
		return letter[keysym - 'A'];
	}
	if (keysym >= 0xffca && keysym <= 0xffd5) {	/* F13-F24 */
		*shift = -1;
		return KEY_F13 + (keysym - 0xffca);
	}
	for (i = 0; i < sizeof keymap / sizeof keymap[0]; i++)
		if (keymap[i].keysym == keysym) {
			*shift = keymap[i].shift;
			return keymap[i].code;
		}
	return 0;
}

/*
 * Press or repeat code so that Shift is as `shift` wants: the Shift keys
 * held through us are released (or Left Shift pressed) around the key and
 * put back right after it.
 */
static void
press_shifted(struct fb *fb, unsigned code, int shift)
{
	int l = is_set(fb->held, KEY_LEFTSHIFT);
	int r = is_set(fb->held, KEY_RIGHTSHIFT);

	if (shift == 1 && !l && !r) {
		ev_put(fb, EV_KEY, KEY_LEFTSHIFT, 1);
		ev_syn(fb);
		key_event(fb, code, 1);
		ev_put(fb, EV_KEY, KEY_LEFTSHIFT, 0);
		ev_syn(fb);
	} else if (shift == 0 && (l || r)) {
		if (l)
			ev_put(fb, EV_KEY, KEY_LEFTSHIFT, 0);
		if (r)
			ev_put(fb, EV_KEY, KEY_RIGHTSHIFT, 0);
		ev_syn(fb);
		key_event(fb, code, 1);
		if (l)
			ev_put(fb, EV_KEY, KEY_LEFTSHIFT, 1);
		if (r)
			ev_put(fb, EV_KEY, KEY_RIGHTSHIFT, 1);
		ev_syn(fb);
	} else
		key_event(fb, code, 1);
}

/* Device coordinates of viewer point (x, y), in the ABS_X/Y span. */
static void
abs_point(const struct fb *fb, int x, int y, int *ax, int *ay)
{
	int dx, dy;

	unrot_point(fb, x, y, &dx, &dy);
	if (dx < 0)
		dx = 0;
	if (dx >= fb->dw)
		dx = fb->dw - 1;
	if (dy < 0)
		dy = 0;
	if (dy >= fb->dh)
		dy = fb->dh - 1;
	/* the span is the screen at open: a later mode is scaled into it */
	*ax = fb->dw == fb->abs_w || fb->dw < 2 ? dx :
	    (int)((long long)dx * (fb->abs_w - 1) / (fb->dw - 1));
	*ay = fb->dh == fb->abs_h || fb->dh < 2 ? dy :
	    (int)((long long)dy * (fb->abs_h - 1) / (fb->dh - 1));
}

static void
touch_event(struct fb *fb, int ax, int ay, int down)
{
	if (down && !fb->touching) {
		ev_put(fb, EV_ABS, ABS_MT_SLOT, 0);
		ev_put(fb, EV_ABS, ABS_MT_TRACKING_ID, fb->tracking);
		fb->tracking = (fb->tracking + 1) % 65536;
		ev_put(fb, EV_ABS, ABS_MT_POSITION_X, ax);
		ev_put(fb, EV_ABS, ABS_MT_POSITION_Y, ay);
		ev_put(fb, EV_KEY, BTN_TOUCH, 1);
		ev_put(fb, EV_ABS, ABS_X, ax);
		ev_put(fb, EV_ABS, ABS_Y, ay);
		fb->touching = 1;
	} else if (down && (ax != fb->ax || ay != fb->ay)) {
		if (ax != fb->ax) {
			ev_put(fb, EV_ABS, ABS_MT_POSITION_X, ax);
			ev_put(fb, EV_ABS, ABS_X, ax);
		}
		if (ay != fb->ay) {
			ev_put(fb, EV_ABS, ABS_MT_POSITION_Y, ay);
			ev_put(fb, EV_ABS, ABS_Y, ay);
		}
	} else if (!down && fb->touching) {
		ev_put(fb, EV_ABS, ABS_MT_TRACKING_ID, -1);
		ev_put(fb, EV_KEY, BTN_TOUCH, 0);
		fb->touching = 0;
	} else
		return;		/* hovering: a finger is not seen */
	fb->ax = ax;
	fb->ay = ay;
	ev_syn(fb);
}

/* ---- the fb_source functions ---- */

/* -x DEVICE[,OPTION]...: the options, and whether they take a number */
enum { OPT_ROTATE, OPT_RATE, OPT_TOUCH, OPT_VIEW, OPT_CRTC, OPT_DMABUF };

static const struct {
	const char *name;
	int number;
} options[] = {
	[OPT_ROTATE] = { "rotate", 1 }, [OPT_RATE] = { "rate", 1 },
	[OPT_TOUCH] = { "touch", 0 }, [OPT_VIEW] = { "view", 0 },
	[OPT_CRTC] = { "crtc", 1 }, [OPT_DMABUF] = { "dmabuf", 0 },
};

/* One option (NUL-terminated, value after '=' if any) into fb; -1 with
 * the reason in err. */
static int
parse_option(struct fb *fb, char *opt, unsigned *seen, char *err,
    size_t errlen)
{
	char *eq = strchr(opt, '='), *end = NULL;
	size_t i, n = sizeof options / sizeof options[0];
	long v = 0;

	if (eq)
		*eq++ = '\0';
	for (i = 0; i < n && strcmp(opt, options[i].name) != 0; i++)
		;
	if (i == n) {
		snprintf(err, errlen, "unknown option '%s' (rotate=, rate=, "
		    "touch, view, crtc=, dmabuf)", opt);
		return -1;
	}
	if (*seen & 1u << i) {
		snprintf(err, errlen, "option '%s' given twice", opt);
		return -1;
	}
	*seen |= 1u << i;
	if (!options[i].number && eq != NULL) {
		snprintf(err, errlen, "option '%s' takes no value", opt);
		return -1;
	}
	if (options[i].number) {
		errno = 0;
		v = eq && *eq >= '0' && *eq <= '9' ? strtol(eq, &end, 10) : -1;
		if (v < 0 || errno || *end != '\0') {
			snprintf(err, errlen, "option '%s' wants a number", opt);
			return -1;
		}
	}
	switch (i) {
	case OPT_ROTATE:
		if (v != 0 && v != 90 && v != 180 && v != 270) {
			snprintf(err, errlen, "rotate=%s: want 0, 90, 180 or 270",
			    eq);
			return -1;
		}
		fb->rot = (int)v;
		break;
	case OPT_RATE:
		if (v < 1 || v > MAX_RATE) {
			snprintf(err, errlen, "rate=%s: want 1-%d passes a second",
			    eq, MAX_RATE);
			return -1;
		}
		fb->period_ms = (int)(1000 / v);
		break;
	case OPT_CRTC:
		if (v < 1 || v > UINT32_MAX / 2) {
			snprintf(err, errlen, "crtc=%s: want a CRTC id", eq);
			return -1;
		}
		fb->crtc_want = (uint32_t)v;
		break;
	case OPT_TOUCH:
		fb->touch = 1;
		break;
	case OPT_VIEW:
		fb->view = 1;
		break;
	case OPT_DMABUF:
		fb->want_dmabuf = 1;
		break;
	}
	return 0;
}

static int
parse_arg(struct fb *fb, const char *arg, char *err, size_t errlen)
{
	const char *p, *comma;
	unsigned seen = 0;
	size_t n;

	snprintf(fb->path, sizeof fb->path, "/dev/fb0");
	fb->period_ms = 1000 / DEFAULT_RATE;
	if (arg == NULL)
		return 0;
	comma = strchr(arg, ',');
	n = comma ? (size_t)(comma - arg) : strlen(arg);
	if (n >= sizeof fb->path) {
		snprintf(err, errlen, "device path too long");
		return -1;
	}
	if (n > 0) {
		memcpy(fb->path, arg, n);
		fb->path[n] = '\0';
	}
	for (p = comma; p != NULL; p = comma) {
		char opt[32];

		p++;
		comma = strchr(p, ',');
		n = comma ? (size_t)(comma - p) : strlen(p);
		if (n == 0 || n >= sizeof opt) {
			snprintf(err, errlen, "empty or overlong option in '%s'",
			    arg);
			return -1;
		}
		memcpy(opt, p, n);
		opt[n] = '\0';
		if (parse_option(fb, opt, &seen, err, errlen) < 0)
			return -1;
	}
	if (fb->touch && fb->view) {
		snprintf(err, errlen, "touch and view exclude each other");
		return -1;
	}
	return 0;
}

static void linux_close(struct fb *);

/*
 * Open the device -x names and see what it shows; -1 with the reason in
 * err, -2 where the argument itself is wrong (not a device of ours).
 */
static int
device_open(struct fb *fb, char *err, size_t errlen)
{
	struct stat st;

	if ((fb->fd = open(fb->path, O_RDWR | O_CLOEXEC)) < 0 &&
	    (errno != EACCES ||
	    (fb->fd = open(fb->path, O_RDONLY | O_CLOEXEC)) < 0)) {
		snprintf(err, errlen, "%s: %s", fb->path, strerror(errno));
		return -1;
	}
	if (fstat(fb->fd, &st) < 0 || !S_ISCHR(st.st_mode) ||
	    (major(st.st_rdev) != FBDEV_MAJOR &&
	    major(st.st_rdev) != DRM_MAJOR)) {
		snprintf(err, errlen, "%s: not a framebuffer (/dev/fbN) or DRM "
		    "card (/dev/dri/cardN)", fb->path);
		return -2;
	}
	fb->kind = major(st.st_rdev) == DRM_MAJOR ? DRM : FBDEV;
	if (fb->kind == FBDEV && (fb->crtc_want || fb->want_dmabuf)) {
		snprintf(err, errlen, "crtc= and dmabuf are for DRM devices, and "
		    "%s is a framebuffer", fb->path);
		return -2;
	}
	if (fb->kind == FBDEV) {
		struct fb_var_screeninfo v;
		struct fb_fix_screeninfo f;

		if (fbdev_query(fb, &v, &f) < 0) {
			snprintf(err, errlen, "%s: FBIOGET_*SCREENINFO: %s",
			    fb->path, strerror(errno));
			return -1;
		}
		return fbdev_setup(fb, &v, &f, err, errlen);
	} else {
		struct drm_mode_crtc c;

		/* the first opener is master: leave that to the display */
		ioctl(fb->fd, DRM_IOCTL_DROP_MASTER, 0);
		if (drm_find_crtc(fb, err, errlen) < 0)
			return -1;
		if (drm_getcrtc(fb, fb->crtc_id, &c) < 0) {
			snprintf(err, errlen, "%s: GETCRTC %u: %s", fb->path,
			    fb->crtc_id, strerror(errno));
			return -1;
		}
		if (!c.mode_valid || c.fb_id == 0) {
			snprintf(err, errlen, "%s: CRTC %u is off", fb->path,
			    fb->crtc_id);
			return -1;
		}
		return drm_map_fb(fb, c.fb_id, (int)c.x, (int)c.y,
		    c.mode.hdisplay, c.mode.vdisplay, err, errlen);
	}
}

/* The input device, or view-only; either way said once. */
static void
input_open(struct fb *fb)
{
	char why[160] = "";

	if (fb->view)
		fb->host->log(fb->host->srv, LOG_NOTICE, "linux: view-only "
		    "(-x ...,view): viewers' input goes nowhere");
	else if (uinput_open(fb, why, sizeof why) < 0)
		fb->host->log(fb->host->srv, LOG_WARNING, "linux: %s: running "
		    "view-only, viewers' input goes nowhere", why);
	else
		fb->host->log(fb->host->srv, LOG_INFO, "linux: input through "
		    "uinput device \"vncsasl\" (%s, %dx%d)", fb->touch ?
		    "touchscreen" : "keyboard and absolute mouse", fb->abs_w,
		    fb->abs_h);
}

static struct fb *
linux_open(const char *arg, const struct fb_host *host, char *err,
    size_t errlen)
{
	struct fb *fb;
	int r = -1;

	if ((fb = calloc(1, sizeof *fb)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	fb->host = host;
	fb->fd = fb->ui = fb->dmabuf = -1;
	if (parse_arg(fb, arg, err, errlen) < 0) {
		free(fb);
		errno = EINVAL;
		return NULL;
	}
	if ((r = device_open(fb, err, errlen)) < 0)
		goto fail;
	if (buffers_setup(fb) < 0) {
		snprintf(err, errlen, "%s: out of memory for %dx%d", fb->path,
		    fb->dw, fb->dh);
		goto fail;
	}
	capture_all(fb);
	fb->last_pass = mono_ms();
	log_mode(fb, fb->kind == DRM ? "DRM" : "fbdev");
	if (fb->kind == DRM)
		fb->host->log(fb->host->srv, LOG_INFO, "linux: CRTC %u, "
		    "framebuffer %u%s", fb->crtc_id, fb->fb_id, fb->dmabuf >= 0 ?
		    " (dma-buf)" : "");
	input_open(fb);
	return fb;
fail:
	linux_close(fb);
	errno = r == -2 ? EINVAL : 0;	/* the server exits 2, else 1 */
	return NULL;
}

static void
release_all(struct fb *fb)
{
	unsigned k;

	if (fb->ui < 0)
		return;
	for (k = 1; k < KEY_CNT; k++)
		if (is_set(fb->held, k)) {
			ev_put(fb, EV_KEY, k, 0);
			set_bit(fb->held, k, 0);
		}
	if (fb->touching) {
		ev_put(fb, EV_ABS, ABS_MT_TRACKING_ID, -1);
		ev_put(fb, EV_KEY, BTN_TOUCH, 0);
		fb->touching = 0;
	}
	if (!fb->touch) {
		if (fb->buttons & 1)
			ev_put(fb, EV_KEY, BTN_LEFT, 0);
		if (fb->buttons & 2)
			ev_put(fb, EV_KEY, BTN_MIDDLE, 0);
		if (fb->buttons & 4)
			ev_put(fb, EV_KEY, BTN_RIGHT, 0);
		if (fb->buttons & 128)
			ev_put(fb, EV_KEY, BTN_SIDE, 0);
	}
	fb->buttons = 0;
	ev_syn(fb);
}

static void
linux_close(struct fb *fb)
{
	if (fb == NULL)
		return;
	if (fb->ui >= 0) {
		release_all(fb);
		ioctl(fb->ui, UI_DEV_DESTROY);
		close(fb->ui);
	}
	if (fb->kind == DRM)
		drm_unmap(fb);
	else
		unmap(fb);
	if (fb->fd >= 0)
		close(fb->fd);
	buffers_free(fb);
	free(fb);
}

static void
linux_frame(struct fb *fb, struct fb_frame *f)
{
	f->width = fb->vw;
	f->height = fb->vh;
	f->stride = fb->vw;
	f->pixels = fb->px;
}

static int
linux_fd(struct fb *fb)
{
	(void)fb;
	return -1;
}

static int
linux_next_ms(struct fb *fb)
{
	long long d = fb->last_pass + fb->period_ms - mono_ms();

	return d <= 0 ? 0 : d > INT_MAX ? INT_MAX : (int)d;
}

static void
linux_readable(struct fb *fb)
{
	(void)fb;
}

static void
linux_grab(struct fb *fb)
{
	long long now = mono_ms();

	if (now < fb->last_pass + fb->period_ms)
		return;
	if (now - fb->last_pass > IDLE_FULL_MS)
		fb->full = 1;
	fb->last_pass = now;
	if (follow(fb) == 0)
		compare(fb, 1);
}

static void
linux_key(struct fb *fb, uint32_t keysym, int down)
{
	unsigned code;
	int shift;

	if (fb->ui < 0)
		return;
	if ((code = key_lookup(keysym, &shift)) == 0) {
		if (down && fb->unknown++ < UNKNOWN_LOGGED)
			fb->host->log(fb->host->srv, LOG_INFO, "linux: no key "
			    "types keysym 0x%x on a US keyboard: dropped%s",
			    keysym, fb->unknown == UNKNOWN_LOGGED ?
			    " (no more of these are logged)" : "");
		return;
	}
	if (down)
		press_shifted(fb, code, shift);
	else
		key_event(fb, code, 0);
}

static void
linux_keycode(struct fb *fb, unsigned evdev, uint32_t keysym, int down)
{
	if (fb->ui < 0)
		return;
	if (!is_key(evdev)) {
		linux_key(fb, keysym, down);
		return;
	}
	key_event(fb, evdev, down ? 1 : 0);
}

static void
linux_pointer(struct fb *fb, int x, int y, unsigned buttons)
{
	static const struct {
		unsigned bit, code;
	} btn[] = {
		{ 1, BTN_LEFT }, { 2, BTN_MIDDLE }, { 4, BTN_RIGHT },
		{ 128, BTN_SIDE },
	};
	unsigned pressed = buttons & ~fb->buttons;
	int ax, ay;
	size_t i;

	if (fb->ui < 0)
		return;
	abs_point(fb, x, y, &ax, &ay);
	if (fb->touch) {
		touch_event(fb, ax, ay, buttons & 1);
		fb->buttons = buttons;
		return;
	}
	if (ax != fb->ax)
		ev_put(fb, EV_ABS, ABS_X, ax);
	if (ay != fb->ay)
		ev_put(fb, EV_ABS, ABS_Y, ay);
	fb->ax = ax;
	fb->ay = ay;
	for (i = 0; i < sizeof btn / sizeof btn[0]; i++)
		if ((buttons ^ fb->buttons) & btn[i].bit)
			ev_put(fb, EV_KEY, btn[i].code,
			    (buttons & btn[i].bit) != 0);
	/* RFB bits 3-6 are wheel clicks: up, down, left, right */
	if (pressed & 8)
		ev_put(fb, EV_REL, REL_WHEEL, 1);
	if (pressed & 16)
		ev_put(fb, EV_REL, REL_WHEEL, -1);
	if (pressed & 32)
		ev_put(fb, EV_REL, REL_HWHEEL, -1);
	if (pressed & 64)
		ev_put(fb, EV_REL, REL_HWHEEL, 1);
	fb->buttons = buttons;
	if (fb->nev > 0)
		ev_syn(fb);
}

/* A framebuffer has no clipboard. */
static void
linux_cut_text(struct fb *fb, const char *text, size_t len)
{
	(void)fb;
	(void)text;
	(void)len;
}

/* A viewer may not change the mode of someone's real screen. */
static int
linux_resize(struct fb *fb, int w, int h)
{
	(void)fb;
	(void)w;
	(void)h;
	return -1;
}

static void
linux_release(struct fb *fb)
{
	release_all(fb);
}

const struct fb_source fb_source = {
	.name = "linux",
	.arg_help = "DEVICE[,rotate=0|90|180|270][,rate=HZ][,touch][,view]"
	    "[,crtc=ID][,dmabuf]: /dev/fbN (default /dev/fb0) or "
	    "/dev/dri/cardN; the picture turned clockwise, compares per second "
	    "(1-120, default 30), a touchscreen instead of a mouse, no input, "
	    "a DRM CRTC, DRM buffers read through a dma-buf",
	.open = linux_open,
	.close = linux_close,
	.frame = linux_frame,
	.fd = linux_fd,
	.next_ms = linux_next_ms,
	.readable = linux_readable,
	.grab = linux_grab,
	.key = linux_key,
	.keycode = linux_keycode,
	.pointer = linux_pointer,
	.cut_text = linux_cut_text,
	.resize = linux_resize,
	.release = linux_release,
};
