/*
 * dummyref.c - check a framebuffer received from fb-dummy, for tests that
 * speak RFB themselves (raw sockets, in Python).
 *
 *   tests/dummyref W H BPP BIGENDIAN RMAX GMAX BMAX RSHIFT GSHIFT BSHIFT
 *
 * reads exactly W*H*(BPP/8) bytes from stdin: the picture as received in
 * that RFB pixel format (true colour), rows top to bottom, no padding.
 * The pixels are converted with the viewers' code (tests/viewer.c), the
 * status strip is decoded, and every pixel is compared with dummy_pixel()
 * of the decoded state in the quantised domain (the server maps an 8-bit
 * channel v to (v*max+127)/255).  One line on stdout:
 *
 *   ok frame=F ptr=X,Y buttons=B key=0xK nkeys=N ncut=C        exit 0
 *   mismatch: N pixels differ, first at X,Y got RRGGBB want RRGGBB
 *                                                              exit 1
 *   garbled: ...                                               exit 1
 *   usage: ... / error: ...                                    exit 2
 *
 * RRGGBB are the quantised channels scaled back to 0-255 (what a viewer
 * would show), so for 32 bpp with 8-bit channels they are the raw values.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "viewer.h"

static void __attribute__((noreturn))
bad_usage(const char *why, const char *arg)
{
	printf("usage: dummyref W H BPP BIGENDIAN RMAX GMAX BMAX RSHIFT GSHIFT "
	    "BSHIFT < pixels: %s%s%s\n", why, arg ? " " : "", arg ? arg : "");
	exit(EX_USAGE);
}

static long
number(const char *s, long min, long max, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || errno || v < min || v > max) {
		char why[120];

		snprintf(why, sizeof why, "%s must be %ld to %ld, not", what,
		    min, max);
		bad_usage(why, s);
	}
	return v;
}

/* a channel: max 2^n-1, inside bpp bits; mask of its bits */
static uint32_t
channel(long max, long shift, int bpp, const char *name)
{
	uint64_t mask = (uint64_t)max << shift;

	if ((max & (max + 1)) != 0)
		bad_usage(name, "max must be 2^n-1");
	if (mask >> bpp)
		bad_usage(name, "max << shift does not fit in BPP bits");
	return (uint32_t)mask;
}

int
main(int argc, char **argv)
{
	struct pixfmt f;
	struct check ck;
	uint32_t rm, gm, bm;
	uint8_t *buf;
	size_t need, got = 0;
	int w, h;

	prog = "dummyref";
	if (argc != 11)
		bad_usage("want 10 arguments", NULL);
	memset(&f, 0, sizeof f);
	w = (int)number(argv[1], DUMMY_MIN_W, DUMMY_MAX_WH, "W");
	h = (int)number(argv[2], DUMMY_MIN_H, DUMMY_MAX_WH, "H");
	f.bpp = (int)number(argv[3], 8, 32, "BPP");
	if (f.bpp != 8 && f.bpp != 16 && f.bpp != 32)
		bad_usage("BPP must be 8, 16 or 32, not", argv[3]);
	f.big_endian = (int)number(argv[4], 0, 1, "BIGENDIAN");
	f.rmax = (int)number(argv[5], 1, 65535, "RMAX");
	f.gmax = (int)number(argv[6], 1, 65535, "GMAX");
	f.bmax = (int)number(argv[7], 1, 65535, "BMAX");
	f.rshift = (int)number(argv[8], 0, 31, "RSHIFT");
	f.gshift = (int)number(argv[9], 0, 31, "GSHIFT");
	f.bshift = (int)number(argv[10], 0, 31, "BSHIFT");
	rm = channel(f.rmax, f.rshift, f.bpp, "red");
	gm = channel(f.gmax, f.gshift, f.bpp, "green");
	bm = channel(f.bmax, f.bshift, f.bpp, "blue");
	if ((rm & gm) || (rm & bm) || (gm & bm))
		bad_usage("the channels overlap", NULL);
	f.depth = __builtin_popcount(rm | gm | bm);
	pixfmt_set(&f);

	need = (size_t)w * h * (size_t)(f.bpp / 8);
	if ((buf = malloc(need)) == NULL) {
		printf("error: out of memory for %zu bytes\n", need);
		return EX_USAGE;
	}
	while (got < need) {
		ssize_t n = read(0, buf + got, need - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			printf("error: stdin: %zu of %zu bytes (%dx%d at %d "
			    "bpp)%s%s\n", got, need, w, h, f.bpp, n < 0 ?
			    ": " : "", n < 0 ? strerror(errno) : "");
			return EX_USAGE;
		}
		got += (size_t)n;
	}

	if (check_frame(buf, (size_t)w * (size_t)(f.bpp / 8), w, h, 0, 0,
	    &ck) == 0) {
		printf("ok frame=%u ptr=%u,%u buttons=%u key=0x%x nkeys=%u "
		    "ncut=%u\n", ck.st.frame, ck.st.ptr_x, ck.st.ptr_y,
		    ck.st.buttons, ck.st.key, ck.st.nkeys, ck.st.ncut);
		return EX_OK;
	}
	if (ck.garbled) {
		printf("garbled: the status strip does not read as bits (not "
		    "the dummy picture, or another pixel format?)\n");
		return 1;
	}
	printf("mismatch: %ld pixels differ, first at %d,%d got %06x want "
	    "%06x\n", ck.mismatches, ck.x, ck.y,
	    widen_rgb(ck.got[0], ck.got[1], ck.got[2]),
	    widen_rgb(ck.want[0], ck.want[1], ck.want[2]));
	return 1;
}
