/*
 * fb-dummy.c - a synthetic, deterministic screen for headless test rigs.
 *
 * The picture is a pure function of a small state (struct dummy_state in
 * vncsasl.h), so a test can compute every pixel a viewer must receive:
 *
 *   - a status strip at the top: DUMMY_BITS cells of DUMMY_CELL pixels,
 *     white for 1 and black for 0, spelling the animation frame, the last
 *     pointer position and buttons, the last key pressed, the number of
 *     key presses and the size of the last cut text (MSB first, in that
 *     order, in raster order across the width);
 *   - a square moving across a horizontal band below the strip, changing
 *     colour every frame: the known region that changes at a steady rate;
 *   - a crosshair at the pointer position;
 *   - with ",photo", the bottom quarter is a photograph-like texture
 *     (smooth colours with a grain of a few levels) that moves every
 *     frame: many colours, and neither runs nor a gradient predict it -
 *     what JPEG is for;
 *   - with ",noise", the bottom quarter changes completely every frame,
 *     in bands that make encoders use every way they have: random
 *     colours, runs from a 96-colour palette, pixels from 2-, 4- and
 *     12-colour palettes, solid 64x64 blocks;
 *   - a static gradient everywhere else.
 *
 * -x WxH[@FPS][,noise|,photo]: size (default 1024x768), frames per second
 * (default 10, 0 for a still picture), and the noise bands or the photo.  The frame number is derived from the monotonic
 * clock, so nothing runs while no viewer asks for an update: the server
 * only calls grab() for waiting clients.  A client's ClientCutText is
 * echoed back as the source's clipboard, so every viewer sees it (in
 * UTF-8 when it came so).  Keys by position (QEMU extended key events)
 * show their keysym like any key, and their evdev code in the -v log.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "vncsasl.h"

#define DEFAULT_W 1024
#define DEFAULT_H 768
#define DEFAULT_FPS 10
#define MAX_FPS 1000
#define SQUARE 64		/* side of the moving square, at most */
#define SQUARE_STEP 8		/* pixels it moves per frame */
#define CROSS 5			/* crosshair arm length */
#define CUT_MAX 4096		/* clipboard bytes echoed back */

struct fb {
	const struct fb_host *host;
	int w, h, fps;
	uint32_t *px;
	struct dummy_state st;		/* what the picture must show */
	struct dummy_state shown;	/* what px shows */
	int drawn;			/* px holds the picture of shown */
	long long t0;			/* ms, monotonic: frame 0 */
	char cut[CUT_MAX];
};


/* ---- the picture ---- */

static int
strip_height(int w)
{
	int cols = w / DUMMY_CELL;

	return (DUMMY_BITS + cols - 1) / cols * DUMMY_CELL;
}

static int
square_side(int w, int h)
{
	int s = SQUARE, room = h - strip_height(w);

	if (s > room)
		s = room;
	if (s > w / 2)
		s = w / 2;
	return s;
}

static void
square_pos(int w, int h, uint32_t frame, int *x, int *y)
{
	int s = square_side(w, h), travel = w - s;
	uint32_t p = (uint32_t)((uint64_t)frame * SQUARE_STEP % (2u * travel));

	*x = p < (uint32_t)travel ? (int)p : (int)(2u * travel - p);
	*y = strip_height(w) + (h - strip_height(w) - s) / 2;
}

static int
status_bit(const struct dummy_state *st, int bit)
{
	static const int width[] = { 32, 16, 16, 8, 32, 16, 16, 8 };
	uint32_t v[8];
	int i;

	v[0] = st->frame;
	v[1] = st->ptr_x;
	v[2] = st->ptr_y;
	v[3] = st->buttons;
	v[4] = st->key;
	v[5] = st->nkeys;
	v[6] = st->ncut;
	v[7] = st->noise;
	for (i = 0; i < 8; i++) {
		if (bit < width[i])
			return (v[i] >> (width[i] - 1 - bit)) & 1;
		bit -= width[i];
	}
	return 0;
}

static int
noise_top(int h)
{
	return h - h / 4;
}

static uint32_t
noise_pixel(int w, uint32_t frame, int x, int y)
{
	uint32_t r = fb_hash((uint32_t)x * 0x9e3779b1u ^
	    (uint32_t)y * 0x85ebca77u ^ frame * 0xc2b2ae3du);

	if (x < w / 3)			/* every colour */
		return r & 0xffffff;
	if (x < 2 * w / 3)		/* runs of 1, 2, 4, 8 from 96 colours */
		return fb_hash(fb_hash((uint32_t)(x >> (y % 4)) ^
		    (uint32_t)y << 16 ^ frame << 8) % 96 + 1) & 0xffffff;
	if (x < 5 * w / 6)		/* 2, 4 or 12 colours, no runs */
		return fb_hash(r % (y / 16 % 3 == 0 ? 2 : y / 16 % 3 == 1 ?
		    4 : 12) + 1000) & 0xffffff;
	return fb_hash((uint32_t)(x / 64) ^ (uint32_t)(y / 64) << 12 ^
	    frame << 20) & 0xffffff;	/* solid blocks */
}

/* Smooth waves of colour plus a grain of +-12 levels per channel. */
static uint32_t
photo_pixel(uint32_t frame, int x, int y)
{
	uint32_t g = fb_hash((uint32_t)x * 0x9e3779b1u ^
	    (uint32_t)y * 0x85ebca77u ^
	    frame * 0xc2b2ae3du), v = 0;
	int k;

	for (k = 0; k < 3; k++) {
		int t = (x * (k + 2) + y * (3 - k) + (int)frame * 4 * (k + 1)) %
		    512, c = (t < 256 ? t : 511 - t) / 2 + 64 +
		    (int)(g >> (8 * k) & 0x1f) - 16;

		v = v << 8 | (uint32_t)(c < 0 ? 0 : c > 255 ? 255 : c);
	}
	return v;
}

uint32_t
dummy_pixel(int w, int h, const struct dummy_state *st, int x, int y)
{
	static const uint32_t colour[7] = {
		0xe02020, 0x20c040, 0x2040e0, 0xf0d020, 0x20d0d0, 0xd020d0,
		0xff8000,
	};
	int cols = w / DUMMY_CELL, sx, sy, s;

	if (y < strip_height(w)) {
		int bit = (y / DUMMY_CELL) * cols + x / DUMMY_CELL;

		if (x / DUMMY_CELL < cols && bit < DUMMY_BITS)
			return status_bit(st, bit) ? 0xffffff : 0x000000;
		return 0x404040;
	}
	if ((y == st->ptr_y && abs(x - st->ptr_x) <= CROSS) ||
	    (x == st->ptr_x && abs(y - st->ptr_y) <= CROSS))
		return st->buttons ? 0xffff00 : 0xff00ff;
	s = square_side(w, h);
	square_pos(w, h, st->frame, &sx, &sy);
	if (x >= sx && x < sx + s && y >= sy && y < sy + s)
		return colour[st->frame % 7];
	if (st->noise == 2 && y >= noise_top(h))
		return photo_pixel(st->frame, x, y);
	if (st->noise && y >= noise_top(h))
		return noise_pixel(w, st->frame, x, y);
	return (uint32_t)(x * 256 / w) << 16 | (uint32_t)(y * 256 / h) << 8 |
	    (uint32_t)(((x >> 4) ^ (y >> 4)) * 16 & 0xff);
}

int
dummy_decode(const uint32_t *px, int stride, int w, int h,
    struct dummy_state *st)
{
	uint32_t v[8] = { 0 };
	static const int width[] = { 32, 16, 16, 8, 32, 16, 16, 8 };
	int cols, bit, f = 0, left;

	if (w < DUMMY_MIN_W || h < DUMMY_MIN_H)
		return -1;
	cols = w / DUMMY_CELL;
	left = width[0];
	for (bit = 0; bit < DUMMY_BITS; bit++) {
		int x = (bit % cols) * DUMMY_CELL + DUMMY_CELL / 2;
		int y = (bit / cols) * DUMMY_CELL + DUMMY_CELL / 2;
		uint32_t p = px[(size_t)y * stride + x];
		int r = p >> 16 & 0xff, g = p >> 8 & 0xff, b = p & 0xff;
		int one = r > 160 && g > 160 && b > 160;

		if (!one && (r > 96 || g > 96 || b > 96))
			return -1;
		v[f] = v[f] << 1 | (uint32_t)one;
		if (--left == 0 && ++f < 8)
			left = width[f];
	}
	st->frame = v[0];
	st->ptr_x = (uint16_t)v[1];
	st->ptr_y = (uint16_t)v[2];
	st->buttons = (uint8_t)v[3];
	st->key = v[4];
	st->nkeys = (uint16_t)v[5];
	st->ncut = (uint16_t)v[6];
	st->noise = (uint8_t)v[7];
	return 0;
}

/* ---- drawing into the source's buffer ---- */

static void
draw(struct fb *fb, int x, int y, int w, int h, int report)
{
	int i, j;

	if (!rect_clip(&x, &y, &w, &h, fb->w, fb->h))
		return;
	for (j = y; j < y + h; j++)
		for (i = x; i < x + w; i++)
			fb->px[(size_t)j * fb->w + i] =
			    dummy_pixel(fb->w, fb->h, &fb->st, i, j);
	if (report)
		fb->host->damage(fb->host->srv, x, y, w, h);
}

/* Redraw what differs between the drawn state `old` and fb->st. */
static void
update(struct fb *fb, const struct dummy_state *old)
{
	int s = square_side(fb->w, fb->h), ox, oy, nx, ny;

	if (!fb->drawn) {
		draw(fb, 0, 0, fb->w, fb->h, 1);
		fb->drawn = 1;
		return;
	}
	if (memcmp(old, &fb->st, sizeof *old) == 0)
		return;
	draw(fb, 0, 0, fb->w, strip_height(fb->w), 1);
	if (old->frame != fb->st.frame) {
		square_pos(fb->w, fb->h, old->frame, &ox, &oy);
		square_pos(fb->w, fb->h, fb->st.frame, &nx, &ny);
		if (nx < ox) {
			int t = nx;
			nx = ox;
			ox = t;
		}
		draw(fb, ox, oy, nx - ox + s, s, 1);
		if (fb->st.noise)
			draw(fb, 0, noise_top(fb->h), fb->w,
			    fb->h - noise_top(fb->h), 1);
	}
	if (old->ptr_x != fb->st.ptr_x || old->ptr_y != fb->st.ptr_y ||
	    !!old->buttons != !!fb->st.buttons) {
		draw(fb, old->ptr_x - CROSS, old->ptr_y - CROSS,
		    2 * CROSS + 1, 2 * CROSS + 1, 1);
		draw(fb, fb->st.ptr_x - CROSS, fb->st.ptr_y - CROSS,
		    2 * CROSS + 1, 2 * CROSS + 1, 1);
	}
}

/* ---- the fb_source functions ---- */

static int
parse_arg(const char *arg, int *w, int *h, int *fps, int *noise)
{
	const char *stop;
	char *end;
	long v;

	*w = DEFAULT_W;
	*h = DEFAULT_H;
	*fps = DEFAULT_FPS;
	*noise = 0;
	if (arg == NULL)
		return 0;
	stop = arg + strlen(arg);
	if (stop - arg >= 6 && strcmp(stop - 6, ",noise") == 0) {
		*noise = 1;
		stop -= 6;
	} else if (stop - arg >= 6 && strcmp(stop - 6, ",photo") == 0) {
		*noise = 2;
		stop -= 6;
	}
	if (stop == arg)
		return 0;
	errno = 0;
	v = strtol(arg, &end, 10);
	if (end == arg || *end != 'x' || errno || v < DUMMY_MIN_W ||
	    v > DUMMY_MAX_WH)
		return -1;
	*w = (int)v;
	arg = end + 1;
	v = strtol(arg, &end, 10);
	if (end == arg || (end != stop && *end != '@') || errno ||
	    v < DUMMY_MIN_H || v > DUMMY_MAX_WH)
		return -1;
	*h = (int)v;
	if (end != stop) {
		arg = end + 1;
		v = strtol(arg, &end, 10);
		if (end == arg || end != stop || errno || v < 0 ||
		    v > MAX_FPS)
			return -1;
		*fps = (int)v;
	}
	return 0;
}

static struct fb *
dummy_open(const char *arg, const struct fb_host *host, char *err,
    size_t errlen)
{
	struct fb *fb;
	int w, h, fps, noise;

	if (parse_arg(arg, &w, &h, &fps, &noise) < 0) {
		errno = EINVAL;
		snprintf(err, errlen, "bad dummy geometry '%s': want WxH[@FPS][,noise|,photo], "
		    "%dx%d to %dx%d, FPS 0-%d", arg, DUMMY_MIN_W, DUMMY_MIN_H,
		    DUMMY_MAX_WH, DUMMY_MAX_WH, MAX_FPS);
		return NULL;
	}
	if ((fb = calloc(1, sizeof *fb)) == NULL ||
	    (fb->px = calloc((size_t)w * h, sizeof *fb->px)) == NULL) {
		free(fb);
		snprintf(err, errlen, "out of memory for a %dx%d screen", w, h);
		return NULL;
	}
	fb->host = host;
	fb->w = w;
	fb->h = h;
	fb->fps = fps;
	fb->st.noise = (uint8_t)noise;
	fb->t0 = mono_ms();
	return fb;
}

static void
dummy_close(struct fb *fb)
{
	if (fb == NULL)
		return;
	free(fb->px);
	free(fb);
}

static void
dummy_frame(struct fb *fb, struct fb_frame *f)
{
	if (!fb->drawn) {
		draw(fb, 0, 0, fb->w, fb->h, 0);
		fb->drawn = 1;
		fb->shown = fb->st;
	}
	f->width = fb->w;
	f->height = fb->h;
	f->stride = fb->w;
	f->pixels = fb->px;
}

static int
dummy_fd(struct fb *fb)
{
	(void)fb;
	return -1;
}

static uint32_t
frame_at(const struct fb *fb, long long t)
{
	return fb->fps ? (uint32_t)((t - fb->t0) * fb->fps / 1000) : 0;
}

static int
dummy_next_ms(struct fb *fb)
{
	long long t = mono_ms(), next;
	uint32_t f;

	if (memcmp(&fb->st, &fb->shown, sizeof fb->st) != 0)
		return 0;	/* input to show */
	if (fb->fps == 0)
		return -1;
	f = frame_at(fb, t);
	if (f != fb->shown.frame)
		return 0;
	next = fb->t0 + ((long long)f + 1) * 1000 / fb->fps;
	while (next <= t)	/* integer rounding of the division */
		next++;
	return (int)(next - t);
}

static void
dummy_readable(struct fb *fb)
{
	(void)fb;
}

/* Input only records the state; grab() draws it once, however many
 * events came in between (a flood costs one redraw, not one each). */
static void
dummy_grab(struct fb *fb)
{
	fb->st.frame = frame_at(fb, mono_ms());
	update(fb, &fb->shown);
	fb->shown = fb->st;
}

static void
dummy_key(struct fb *fb, uint32_t keysym, int down)
{
	if (!down)
		return;
	fb->st.key = keysym;
	fb->st.nkeys++;
}

/* A key by its position (QEMU extended key events): shown by its keysym
 * like any key; the evdev code goes to the log (-v), for tests. */
static void
dummy_keycode(struct fb *fb, unsigned evdev, uint32_t keysym, int down)
{
	fb->host->log(fb->host->srv, LOG_DEBUG, "dummy: keycode %u keysym "
	    "0x%lx %s", evdev, (unsigned long)keysym, down ? "down" : "up");
	dummy_key(fb, keysym, down);
}

static void
dummy_pointer(struct fb *fb, int x, int y, unsigned buttons)
{
	fb->st.ptr_x = (uint16_t)x;
	fb->st.ptr_y = (uint16_t)y;
	fb->st.buttons = (uint8_t)buttons;
}

/* A viewer's clipboard: counted in the state, given back through `to`. */
static void
cut_echo(struct fb *fb, const char *text, size_t len,
    void (*to)(void *, const char *, size_t))
{
	fb->st.ncut = (uint16_t)len;
	if (len > CUT_MAX)
		len = CUT_MAX;
	memcpy(fb->cut, text, len);
	to(fb->host->srv, fb->cut, len);
}

static void
dummy_cut_text(struct fb *fb, const char *text, size_t len)
{
	cut_echo(fb, text, len, fb->host->cut_text);
}

/* UTF-8 from an Extended Clipboard viewer: echoed the same way. */
static void
dummy_cut_text_utf8(struct fb *fb, const char *text, size_t len)
{
	cut_echo(fb, text, len, fb->host->cut_text_utf8);
}

static int
dummy_resize(struct fb *fb, int w, int h)
{
	uint32_t *px;

	if (w < DUMMY_MIN_W || h < DUMMY_MIN_H || w > DUMMY_MAX_WH ||
	    h > DUMMY_MAX_WH)
		return -1;
	if ((px = calloc((size_t)w * h, sizeof *px)) == NULL)
		return -1;
	free(fb->px);
	fb->px = px;
	fb->w = w;
	fb->h = h;
	if (fb->st.ptr_x >= w)
		fb->st.ptr_x = (uint16_t)(w - 1);
	if (fb->st.ptr_y >= h)
		fb->st.ptr_y = (uint16_t)(h - 1);
	draw(fb, 0, 0, w, h, 0);
	fb->drawn = 1;
	fb->shown = fb->st;
	fb->host->resized(fb->host->srv);
	return 0;
}

static void
dummy_release(struct fb *fb)
{
	(void)fb;
}

const struct fb_source fb_source = {
	.name = "dummy",
	.arg_help = "WxH[@FPS][,noise|,photo] of the synthetic screen (default "
	    "1024x768@10)",
	.open = dummy_open,
	.close = dummy_close,
	.frame = dummy_frame,
	.fd = dummy_fd,
	.next_ms = dummy_next_ms,
	.readable = dummy_readable,
	.grab = dummy_grab,
	.key = dummy_key,
	.keycode = dummy_keycode,
	.pointer = dummy_pointer,
	.cut_text = dummy_cut_text,
	.cut_text_utf8 = dummy_cut_text_utf8,
	.resize = dummy_resize,
	.release = dummy_release,
};
