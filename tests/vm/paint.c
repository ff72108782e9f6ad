/*
 * paint.c - the display program of the VM tests (runs in the guest, built
 * static on the host): draws known pictures into a framebuffer device or a
 * DRM dumb buffer it puts on the screen, as a kiosk application would.
 * It uses libdrm's copy of the kernel headers (not fb-linux.c's own
 * definitions), so a wrong structure in either shows.
 *
 *   paint fb DEV PAT           draw PAT into fbdev DEV (any true-colour
 *                              layout, at its pan offset), then exit
 *   paint mode DEV W H BPP [VH]  set fbdev DEV to W x H at BPP, VH rows of
 *                              virtual height (vfb: 16 is RGB565 with red
 *                              at bit 0, 32 has red at bit 0)
 *   paint pan DEV Y            pan fbdev DEV to yoffset Y
 *   paint var DEV              its geometry and bitfields, one line
 *   paint dump DEV             its visible picture's bytes (rows packed)
 *   paint ref PAT W H R:N,G:N,B:N FILE   (on the host) the PPM a viewer
 *                              must get from a W x H framebuffer with these
 *                              bitfields showing PAT
 *   paint anim DEV SECS FPS    fbdev: full-screen changes for SECS seconds,
 *                              at most FPS a second (0: no limit); prints
 *                              how many
 *   paint drm DEV PAT [565]    become DRM master, put a dumb buffer
 *                              (XRGB8888, or RGB565) with PAT on the
 *                              first connected output, then read lines
 *                              from stdin: "PAT" draws PAT into the other
 *                              buffer and flips to it, "q" quits.  Prints
 *                              "shown PAT fb ID" after each.
 * PAT: A (gradient, squares: not symmetric, so a turn shows), B (A with a
 * block of noise and a small mark), C (A with a different small mark),
 * W (white).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/fb.h>
#include <drm.h>
#include <drm_fourcc.h>
#include <drm_mode.h>

#include "../../vncsasl.h"	/* fb_hash(), the hash of fb-dummy's noise */

static void
die(const char *fmt, const char *a)
{
	fprintf(stderr, "paint: ");
	fprintf(stderr, fmt, a, strerror(errno));
	fprintf(stderr, "\n");
	exit(1);
}

/* The pictures, as XRGB. */
static uint32_t
pixel(int pat, int x, int y, int w, int h, uint32_t frame)
{
	uint32_t r, g, b;

	if (pat == 'W')
		return 0xffffff;
	if (pat == 'N')
		return fb_hash((uint32_t)x * 0x9e3779b1u ^
		    (uint32_t)y * 0x85ebca77u ^ frame * 0xc2b2ae3du) & 0xffffff;
	if (pat == 'B' && x >= w / 3 && x < w / 3 + w / 4 && y >= h / 3 &&
	    y < h / 3 + h / 5)
		return fb_hash((uint32_t)x * 31u ^ (uint32_t)y << 12) &
		    0xffffff;
	if (pat == 'B' && x >= w - 20 && x < w - 17 && y >= h - 20 &&
	    y < h - 18)
		return 0x00ff00;	/* a 3x2 mark: small changes count */
	if (pat == 'C' && x >= 40 && x < 41 && y >= h - 9 && y < h - 8)
		return 0xff0000;	/* one pixel */
	if (x >= 16 && x < 64 && y >= 16 && y < 64)
		return 0xff0000;	/* top left: red */
	if (x >= w - 40 && x < w - 16 && y >= 16 && y < 40)
		return 0x00ff00;	/* top right: green */
	if (x >= 16 && x < 40 && y >= h - 40 && y < h - 16)
		return 0x0000ff;	/* bottom left: blue */
	r = (uint32_t)(x * 255 / (w > 1 ? w - 1 : 1));
	g = (uint32_t)(y * 255 / (h > 1 ? h - 1 : 1));
	b = ((x >> 5) + (y >> 5)) & 1 ? 0xc0 : 0x30;
	return r << 16 | g << 8 | b;
}

/* XRGB -> a pixel of a bitfield layout (the top bits of each channel) */
static uint32_t
to_dev(uint32_t p, const struct fb_bitfield *bf)
{
	uint32_t out = 0;
	int c;

	for (c = 0; c < 3; c++) {
		uint32_t v = p >> (16 - 8 * c) & 0xff;

		out |= (v >> (8 - bf[c].length)) << bf[c].offset;
	}
	return out;
}

static void
draw(uint8_t *base, size_t pitch, int bpp, const struct fb_bitfield *bf,
    int pat, int w, int h, uint32_t frame)
{
	int x, y, k;

	for (y = 0; y < h; y++) {
		uint8_t *row = base + (size_t)y * pitch;

		for (x = 0; x < w; x++) {
			uint32_t v = to_dev(pixel(pat, x, y, w, h, frame), bf);

			for (k = 0; k < bpp / 8; k++)	/* little-endian */
				row[x * (bpp / 8) + k] = (uint8_t)(v >> (8 * k));
		}
	}
}

static int
fb_open(const char *dev, struct fb_var_screeninfo *v,
    struct fb_fix_screeninfo *f, uint8_t **map)
{
	int fd = open(dev, O_RDWR);

	if (fd < 0)
		die("%s: %s", dev);
	if (ioctl(fd, FBIOGET_VSCREENINFO, v) < 0 ||
	    ioctl(fd, FBIOGET_FSCREENINFO, f) < 0)
		die("%s: FBIOGET: %s", dev);
	*map = mmap(NULL, f->smem_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	    0);
	if (*map == MAP_FAILED)
		die("%s: mmap: %s", dev);
	return fd;
}

static void
fb_paint(const char *dev, int pat, uint32_t frame)
{
	struct fb_var_screeninfo v;
	struct fb_fix_screeninfo f;
	struct fb_bitfield bf[3];
	uint8_t *m;
	int fd = fb_open(dev, &v, &f, &m);

	bf[0] = v.red;
	bf[1] = v.green;
	bf[2] = v.blue;
	draw(m + (size_t)v.yoffset * f.line_length + (size_t)v.xoffset *
	    (v.bits_per_pixel / 8), f.line_length, (int)v.bits_per_pixel, bf,
	    pat, (int)v.xres, (int)v.yres, frame);
	munmap(m, f.smem_len);
	close(fd);
}

static void
fb_mode(const char *dev, int w, int h, int bpp, int vh)
{
	struct fb_var_screeninfo v;
	int fd = open(dev, O_RDWR);

	if (fd < 0 || ioctl(fd, FBIOGET_VSCREENINFO, &v) < 0)
		die("%s: %s", dev);
	v.xres = v.xres_virtual = (uint32_t)w;
	v.yres = (uint32_t)h;
	v.yres_virtual = (uint32_t)(vh > h ? vh : h);
	v.xoffset = v.yoffset = 0;
	v.bits_per_pixel = (uint32_t)bpp;
	if (bpp == 16)		/* vfb: else RGBA5551 */
		memset(&v.transp, 0, sizeof v.transp);
	if (ioctl(fd, FBIOPUT_VSCREENINFO, &v) < 0)
		die("%s: FBIOPUT_VSCREENINFO: %s", dev);
	ioctl(fd, FBIOGET_VSCREENINFO, &v);
	printf("mode %ux%u %u bpp r%u:%u g%u:%u b%u:%u\n", v.xres, v.yres,
	    v.bits_per_pixel, v.red.offset, v.red.length, v.green.offset,
	    v.green.length, v.blue.offset, v.blue.length);
	close(fd);
}

static void
fb_pan(const char *dev, int y)
{
	struct fb_var_screeninfo v;
	int fd = open(dev, O_RDWR);

	if (fd < 0 || ioctl(fd, FBIOGET_VSCREENINFO, &v) < 0)
		die("%s: %s", dev);
	v.yoffset = (uint32_t)y;
	if (ioctl(fd, FBIOPAN_DISPLAY, &v) < 0)
		die("%s: FBIOPAN_DISPLAY: %s", dev);
	close(fd);
}

static void
fb_var(const char *dev)
{
	struct fb_var_screeninfo v;
	struct fb_fix_screeninfo f;
	uint8_t *m;
	int fd = fb_open(dev, &v, &f, &m);

	printf("w=%u h=%u bpp=%u stride=%u r=%u:%u g=%u:%u b=%u:%u\n", v.xres,
	    v.yres, v.bits_per_pixel, f.line_length, v.red.offset,
	    v.red.length, v.green.offset, v.green.length, v.blue.offset,
	    v.blue.length);
	close(fd);
}

/* the visible picture's bytes, rows packed, to stdout */
static void
fb_dump(const char *dev)
{
	struct fb_var_screeninfo v;
	struct fb_fix_screeninfo f;
	uint8_t *m;
	int fd = fb_open(dev, &v, &f, &m);
	uint32_t y;

	for (y = 0; y < v.yres; y++)
		if (fwrite(m + (size_t)(v.yoffset + y) * f.line_length +
		    (size_t)v.xoffset * (v.bits_per_pixel / 8), 1,
		    (size_t)v.xres * (v.bits_per_pixel / 8), stdout) == 0)
			exit(1);
	fflush(stdout);
	close(fd);
}

/*
 * On the host: the PPM a viewer must get from a framebuffer with these
 * bitfields showing PAT, each channel cut to its bits and widened again
 * by bit replication.
 */
static void
ref(int pat, int w, int h, const char *fields, const char *path)
{
	struct fb_bitfield bf[3];
	FILE *f;
	int x, y, c;

	if (sscanf(fields, "%u:%u,%u:%u,%u:%u", &bf[0].offset, &bf[0].length,
	    &bf[1].offset, &bf[1].length, &bf[2].offset, &bf[2].length) != 6 ||
	    (f = fopen(path, "wb")) == NULL)
		die("ref %s: %s", fields);
	fprintf(f, "P6\n%d %d\n255\n", w, h);
	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++) {
			uint32_t v = to_dev(pixel(pat, x, y, w, h, 0), bf);

			for (c = 0; c < 3; c++) {
				unsigned n = bf[c].length;
				unsigned k = v >> bf[c].offset & ((1u << n) - 1);
				unsigned o = 0, have = 0;

				while (have < 8) {
					o = o << n | k;
					have += n;
				}
				fputc((int)(o >> (have - 8)) & 0xff, f);
			}
		}
	if (fclose(f) != 0)
		die("%s: %s", path);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Two full-screen noise pictures, drawn once, copied in turn at most fps
 * times a second (0: as fast as it goes): what a video or a page
 * transition costs the server, not what drawing costs the painter. */
static void
fb_anim(const char *dev, double secs, double fps)
{
	struct fb_var_screeninfo v;
	struct fb_fix_screeninfo f;
	struct fb_bitfield bf[3];
	uint8_t *m, *pic[2], *base;
	size_t size;
	double t0 = now(), next = t0;
	uint32_t n = 0;
	int fd = fb_open(dev, &v, &f, &m), i;

	bf[0] = v.red;
	bf[1] = v.green;
	bf[2] = v.blue;
	size = (size_t)f.line_length * v.yres;
	base = m + (size_t)v.yoffset * f.line_length;
	for (i = 0; i < 2; i++) {
		if ((pic[i] = malloc(size)) == NULL)
			die("%s%s: out of memory", "");
		draw(pic[i], f.line_length, (int)v.bits_per_pixel, bf, 'N',
		    (int)v.xres, (int)v.yres, (uint32_t)i + 1);
	}
	while (now() - t0 < secs) {
		memcpy(base, pic[n++ & 1], size);
		if (fps > 0) {
			next += 1 / fps;
			while (now() < next)
				usleep(1000);
		}
	}
	printf("anim %u frames in %.1f s\n", n, now() - t0);
	close(fd);
}

/* ---- DRM ---- */

struct dumb {
	uint32_t handle, fb, pitch;
	uint64_t size;
	uint8_t *map;
};

static void
dumb_make(int fd, int w, int h, int bpp, struct dumb *d)
{
	struct drm_mode_create_dumb c;
	struct drm_mode_map_dumb m;
	struct drm_mode_fb_cmd2 f;

	memset(&c, 0, sizeof c);
	c.width = (uint32_t)w;
	c.height = (uint32_t)h;
	c.bpp = (uint32_t)bpp;
	if (ioctl(fd, DRM_IOCTL_MODE_CREATE_DUMB, &c) < 0)
		die("CREATE_DUMB%s: %s", "");
	memset(&f, 0, sizeof f);
	f.width = (uint32_t)w;
	f.height = (uint32_t)h;
	f.pixel_format = bpp == 16 ? DRM_FORMAT_RGB565 : DRM_FORMAT_XRGB8888;
	f.handles[0] = c.handle;
	f.pitches[0] = c.pitch;
	if (ioctl(fd, DRM_IOCTL_MODE_ADDFB2, &f) < 0)
		die("ADDFB2%s: %s", "");
	memset(&m, 0, sizeof m);
	m.handle = c.handle;
	if (ioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, &m) < 0)
		die("MAP_DUMB%s: %s", "");
	d->map = mmap(NULL, c.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	    (off_t)m.offset);
	if (d->map == MAP_FAILED)
		die("mmap dumb%s: %s", "");
	d->handle = c.handle;
	d->fb = f.fb_id;
	d->pitch = c.pitch;
	d->size = c.size;
}

static void
drm_paint(const char *dev, int pat, int bpp)
{
	static const struct fb_bitfield xrgb[3] = {
		{ 16, 8, 0 }, { 8, 8, 0 }, { 0, 8, 0 }
	}, rgb565[3] = {
		{ 11, 5, 0 }, { 5, 6, 0 }, { 0, 5, 0 }
	};
	struct drm_mode_card_res r;
	struct drm_mode_get_connector c;
	struct drm_mode_modeinfo modes[64], mode;
	struct drm_mode_crtc crtc;
	struct drm_mode_fb_dirty_cmd dirty;
	uint32_t conns[16], crtcs[16], conn = 0;
	struct dumb d[2];
	char line[64];
	unsigned i;
	int fd, cur = 0, w, h;

	if ((fd = open(dev, O_RDWR | O_CLOEXEC)) < 0)
		die("%s: %s", dev);
	ioctl(fd, DRM_IOCTL_SET_MASTER, 0);	/* if vncsasl was first */
	memset(&r, 0, sizeof r);
	r.connector_id_ptr = (uintptr_t)conns;
	r.count_connectors = 16;
	r.crtc_id_ptr = (uintptr_t)crtcs;
	r.count_crtcs = 16;
	if (ioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &r) < 0 || r.count_crtcs < 1)
		die("GETRESOURCES%s: %s", "");
	for (i = 0; i < r.count_connectors && i < 16 && !conn; i++) {
		memset(&c, 0, sizeof c);
		c.connector_id = conns[i];
		c.modes_ptr = (uintptr_t)modes;
		c.count_modes = 64;
		if (ioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &c) == 0 &&
		    c.connection == 1 && c.count_modes > 0)
			conn = conns[i];
	}
	if (!conn)
		die("no connected output%s: %s", "");
	/* the current mode if the CRTC is lit (the size QEMU shows) */
	memset(&crtc, 0, sizeof crtc);
	crtc.crtc_id = crtcs[0];
	mode = ioctl(fd, DRM_IOCTL_MODE_GETCRTC, &crtc) == 0 &&
	    crtc.mode_valid ? crtc.mode : modes[0];
	w = mode.hdisplay;
	h = mode.vdisplay;
	dumb_make(fd, w, h, bpp, &d[0]);
	dumb_make(fd, w, h, bpp, &d[1]);
	for (;;) {
		draw(d[cur].map, d[cur].pitch, bpp, bpp == 16 ? rgb565 : xrgb,
		    pat, w, h, 0);
		memset(&crtc, 0, sizeof crtc);
		crtc.crtc_id = crtcs[0];
		crtc.fb_id = d[cur].fb;
		crtc.set_connectors_ptr = (uintptr_t)&conn;
		crtc.count_connectors = 1;
		crtc.mode = mode;
		crtc.mode_valid = 1;
		if (ioctl(fd, DRM_IOCTL_MODE_SETCRTC, &crtc) < 0)
			die("SETCRTC%s: %s", "");
		memset(&dirty, 0, sizeof dirty);
		dirty.fb_id = d[cur].fb;
		ioctl(fd, DRM_IOCTL_MODE_DIRTYFB, &dirty);	/* virtio-gpu */
		printf("shown %c fb %u %dx%d\n", pat, d[cur].fb, w, h);
		fflush(stdout);
		if (fgets(line, sizeof line, stdin) == NULL || line[0] == 'q')
			break;
		pat = line[0];
		cur = !cur;
	}
	close(fd);
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "fb") == 0)
		fb_paint(argv[2], argv[3][0], 0);
	else if ((argc == 6 || argc == 7) && strcmp(argv[1], "mode") == 0)
		fb_mode(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]),
		    argc == 7 ? atoi(argv[6]) : 0);
	else if (argc == 7 && strcmp(argv[1], "ref") == 0)
		ref(argv[2][0], atoi(argv[3]), atoi(argv[4]), argv[5], argv[6]);
	else if (argc == 3 && strcmp(argv[1], "var") == 0)
		fb_var(argv[2]);
	else if (argc == 3 && strcmp(argv[1], "dump") == 0)
		fb_dump(argv[2]);
	else if (argc == 4 && strcmp(argv[1], "pan") == 0)
		fb_pan(argv[2], atoi(argv[3]));
	else if (argc == 5 && strcmp(argv[1], "anim") == 0)
		fb_anim(argv[2], atof(argv[3]), atof(argv[4]));
	else if ((argc == 4 || argc == 5) && strcmp(argv[1], "drm") == 0)
		drm_paint(argv[2], argv[3][0], argc == 5 ? 16 : 32);
	else {
		fprintf(stderr, "usage: paint fb|mode|pan|anim|drm ... (see "
		    "tests/vm/paint.c)\n");
		return 2;
	}
	return 0;
}
