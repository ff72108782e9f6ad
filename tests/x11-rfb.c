/*
 * x11-rfb.c - a tiny scriptable RFB 3.8 viewer for the X11 tests.
 *
 * It speaks just enough RFB to check what vncsasl-x11 sends and to drive
 * it: security None, Raw pixels (32 bpp, little endian, XRGB), DesktopSize
 * and ExtendedDesktopSize, LastRect and, with -c, the Cursor
 * pseudo-encoding.  tests/lvc and tests/gvnc check pixels against the
 * dummy picture; this one checks nothing by itself and dumps what it got,
 * so a script can compare it with xwd.  Sockets and libc only (the
 * Makefile's pattern rule links the X libraries, unused here).
 *
 *   x11-rfb [-c] [-t SECS] HOST PORT COMMAND...
 *
 * Commands run in order; each waits at most -t seconds (default 10):
 *   frame FILE.ppm      ask for the whole screen, write it as binary PPM
 *   update              one incremental update
 *   wait-size WxH       until the desktop size is WxH (prints "size WxH")
 *   wait-pixel X Y RRGGBB   until that pixel has that colour
 *   type TEXT           UTF-8 text as key presses ("\n" = Return)
 *   key KEYSYM          press and release (0xHEX or decimal)
 *   down KEYSYM / up KEYSYM
 *   ptr X Y MASK        a PointerEvent
 *   cut TEXT            ClientCutText with TEXT as Latin-1 (@FILE: the
 *                       file's bytes, as they are)
 *   wait-cut TEXT       until a ServerCutText equals TEXT (as Latin-1)
 *   wait-cut-len N      until a ServerCutText of N bytes arrives
 *   sleep MS            keep an update request pending for MS
 *   cursor              print the last Cursor shape ("cursor WxH+X+Y")
 *   size                print the desktop size
 * Exit status 0 if every command succeeded; else 1 with a reason on
 * stderr, 2 for usage errors.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

#define MAX_SIDE 16384
#define CUT_MAX (1 << 20)

static int sock = -1;
static double timeout_s = 10;
static int want_cursor;
static uint32_t *fbuf;
static int fw, fh;
static int pending;		/* an update request is outstanding */
static int updates;		/* FramebufferUpdates received */
static char *cut;		/* last ServerCutText */
static size_t cut_len;
static int cuts;
static int cur_w = -1, cur_h, cur_x, cur_y;

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "x11-rfb: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

/* Wait for input until `until`; 0 if none came. */
static int
readable(double until)
{
	struct pollfd p = { sock, POLLIN, 0 };
	double left = until - now();

	if (left < 0)
		left = 0;
	return poll(&p, 1, (int)(left * 1000)) > 0;
}

static void
rd(void *buf, size_t n)
{
	uint8_t *p = buf;
	double until = now() + timeout_s;

	while (n > 0) {
		ssize_t r;

		if (!readable(until))
			die("timed out in the middle of a message");
		r = read(sock, p, n);
		if (r == 0)
			die("server closed the connection");
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("read: %s", strerror(errno));
		}
		p += r;
		n -= (size_t)r;
	}
}

static void
wr(const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n > 0) {
		ssize_t r = write(sock, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("write: %s", strerror(errno));
		p += r;
		n -= (size_t)r;
	}
}

static void
skip(size_t n)
{
	uint8_t buf[4096];

	while (n > 0) {
		size_t k = n < sizeof buf ? n : sizeof buf;

		rd(buf, k);
		n -= k;
	}
}

static void
set_size(int w, int h)
{
	if (w < 1 || h < 1 || w > MAX_SIDE || h > MAX_SIDE)
		die("bad desktop size %dx%d", w, h);
	free(fbuf);
	if ((fbuf = calloc((size_t)w * h, 4)) == NULL)
		die("out of memory");
	fw = w;
	fh = h;
}

static void
request(int incremental)
{
	uint8_t m[10] = { 3, (uint8_t)incremental };

	put16(m + 6, (unsigned)fw);
	put16(m + 8, (unsigned)fh);
	wr(m, sizeof m);
	pending = 1;
}

static void
read_update(void)
{
	uint8_t h[3], r[12];
	unsigned n, i;

	rd(h, 3);
	n = be16(h + 1);
	for (i = 0; i < n; i++) {
		int x, y, w, hh, j;
		int32_t enc;

		rd(r, 12);
		x = (int)be16(r);
		y = (int)be16(r + 2);
		w = (int)be16(r + 4);
		hh = (int)be16(r + 6);
		enc = (int32_t)be32(r + 8);
		if (enc == 0) {
			uint8_t *row;

			if (x + w > fw || y + hh > fh)
				die("raw rectangle %dx%d+%d+%d outside %dx%d",
				    w, hh, x, y, fw, fh);
			if ((row = malloc((size_t)w * 4 + 1)) == NULL)
				die("out of memory");
			for (j = 0; j < hh; j++) {
				uint32_t *d = fbuf + (size_t)(y + j) * fw + x;
				int k;

				rd(row, (size_t)w * 4);
				for (k = 0; k < w; k++)
					d[k] = ((uint32_t)row[4 * k + 2] << 16 |
					    (uint32_t)row[4 * k + 1] << 8 |
					    row[4 * k]);
			}
			free(row);
		} else if (enc == -223) {
			set_size(w, hh);
		} else if (enc == -308) {
			uint8_t s[4];

			rd(s, 4);
			skip((size_t)s[0] * 16);
			if (y == 0)	/* status: success */
				set_size(w, hh);
		} else if (enc == -239) {
			skip((size_t)w * hh * 4 + (size_t)(w + 7) / 8 * hh);
			cur_w = w;
			cur_h = hh;
			cur_x = x;
			cur_y = y;
		} else if (enc == -224) {
			break;
		} else {
			die("unexpected encoding %d", enc);
		}
	}
	updates++;
	pending = 0;
}

static void
read_cut(void)
{
	uint8_t h[7];
	uint32_t n;

	rd(h, 7);
	n = be32(h + 3);
	if (n > CUT_MAX)
		die("ServerCutText of %lu bytes", (unsigned long)n);
	free(cut);
	if ((cut = malloc(n + 1)) == NULL)
		die("out of memory");
	rd(cut, n);
	cut[n] = '\0';
	cut_len = n;
	cuts++;
}

/* One server message if one arrives before `until`; 0 if none did. */
static int
pump(double until)
{
	uint8_t t;

	if (!readable(until))
		return 0;
	rd(&t, 1);
	switch (t) {
	case 0:
		read_update();
		break;
	case 1: {
		uint8_t h[5];

		rd(h, 5);
		skip((size_t)be16(h + 3) * 6);
		break;
	}
	case 2:
		break;
	case 3:
		read_cut();
		break;
	default:
		die("unexpected server message %u", t);
	}
	return 1;
}

static void
connect_to(const char *host, const char *port)
{
	struct addrinfo hints = { 0 }, *res, *ai;
	int e;

	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0)
		die("%s: %s", host, gai_strerror(e));
	for (ai = res; ai; ai = ai->ai_next) {
		if ((sock = socket(ai->ai_family, ai->ai_socktype, 0)) < 0)
			continue;
		if (connect(sock, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(sock);
		sock = -1;
	}
	freeaddrinfo(res);
	if (sock < 0)
		die("cannot connect to %s port %s", host, port);
}

static void
handshake(void)
{
	uint8_t v[12], n, types[255], r[4], init[24];
	uint8_t pf[20] = { 0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255,
	    16, 8, 0 };
	uint8_t enc[4 + 6 * 4] = { 2 };
	int32_t encs[6];
	unsigned i, ne = 0;
	uint32_t len;

	rd(v, 12);
	if (memcmp(v, "RFB 003.", 8) != 0)
		die("not an RFB server");
	wr("RFB 003.008\n", 12);
	rd(&n, 1);
	if (n == 0) {
		rd(r, 4);
		die("server refused: reason of %u bytes", be32(r));
	}
	rd(types, n);
	for (i = 0; i < n && types[i] != 1; i++)
		;
	if (i == n)
		die("server does not offer security None");
	wr("\1", 1);
	rd(r, 4);
	if (be32(r) != 0)
		die("security result %u", be32(r));
	wr("\1", 1);		/* shared */
	rd(init, 24);
	len = be32(init + 20);
	skip(len);
	set_size((int)be16(init), (int)be16(init + 2));
	wr(pf, sizeof pf);
	encs[ne++] = 0;		/* Raw */
	encs[ne++] = -223;	/* DesktopSize */
	encs[ne++] = -308;	/* ExtendedDesktopSize */
	encs[ne++] = -224;	/* LastRect */
	if (want_cursor)
		encs[ne++] = -239;
	put16(enc + 2, ne);
	for (i = 0; i < ne; i++)
		put32(enc + 4 + 4 * i, (uint32_t)encs[i]);
	wr(enc, 4 + 4 * ne);
}

static void
send_key(uint32_t ks, int down)
{
	uint8_t m[8] = { 4, (uint8_t)down };

	put32(m + 4, ks);
	wr(m, sizeof m);
}

static uint32_t
keysym_of(uint32_t cp)
{
	if (cp == '\n')
		return 0xff0d;		/* Return */
	if (cp == '\t')
		return 0xff09;		/* Tab */
	if ((cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff))
		return cp;
	if (cp == 0x20ac)
		return 0x20ac;		/* EuroSign */
	return 0x01000000 | cp;
}

/* Next code point of UTF-8 s; advances *i. */
static uint32_t
utf8_next(const char *s, size_t *i)
{
	const unsigned char *p = (const unsigned char *)s + *i;
	uint32_t cp;
	int len, k;

	len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 1;
	cp = len == 1 ? p[0] : p[0] & (0x7f >> len);
	for (k = 1; k < len; k++) {
		if ((p[k] & 0xc0) != 0x80)
			die("bad UTF-8 in argument");
		cp = cp << 6 | (p[k] & 0x3f);
	}
	*i += (size_t)len;
	return cp;
}

/* TEXT (UTF-8) as Latin-1; NUL-terminated, malloc'd. */
static char *
latin1(const char *s, size_t *n)
{
	size_t i = 0, o = 0, len = strlen(s);
	char *out = malloc(len + 1);

	if (out == NULL)
		die("out of memory");
	while (i < len) {
		uint32_t cp = utf8_next(s, &i);

		out[o++] = cp <= 0xff ? (char)cp : '?';
	}
	out[o] = '\0';
	*n = o;
	return out;
}

static char *
slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *buf;

	if (f == NULL)
		die("%s: %s", path, strerror(errno));
	if ((buf = malloc(CUT_MAX * 2)) == NULL)
		die("out of memory");
	*n = fread(buf, 1, CUT_MAX * 2, f);
	fclose(f);
	return buf;
}

static uint32_t
number(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end != '\0' || *s == '\0' || v > 0xffffffffUL) {
		fprintf(stderr, "x11-rfb: bad number '%s'\n", s);
		exit(2);
	}
	return (uint32_t)v;
}

/* Service the connection until `until`, keeping a request pending. */
static void
service(double until)
{
	while (now() < until) {
		if (!pending)
			request(1);
		pump(until);
	}
}

static void
write_ppm(const char *path)
{
	FILE *f = fopen(path, "wb");
	size_t i, n = (size_t)fw * fh;

	if (f == NULL)
		die("%s: %s", path, strerror(errno));
	fprintf(f, "P6\n%d %d\n255\n", fw, fh);
	for (i = 0; i < n; i++) {
		uint8_t rgb[3] = { (uint8_t)(fbuf[i] >> 16),
		    (uint8_t)(fbuf[i] >> 8), (uint8_t)fbuf[i] };

		fwrite(rgb, 1, 3, f);
	}
	if (fclose(f) != 0)
		die("%s: %s", path, strerror(errno));
}

static void
need(int argc, int i, int n, const char *cmd)
{
	if (i + n >= argc) {
		fprintf(stderr, "x11-rfb: %s needs %d argument(s)\n", cmd, n);
		exit(2);
	}
}

int
main(int argc, char **argv)
{
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-c") == 0) {
			want_cursor = 1;
			i++;
		} else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
			timeout_s = atof(argv[i + 1]);
			if (!(timeout_s > 0)) {
				fprintf(stderr, "x11-rfb: bad -t\n");
				return 2;
			}
			i += 2;
		} else {
			fprintf(stderr, "usage: x11-rfb [-c] [-t SECS] HOST PORT "
			    "COMMAND...\n");
			return 2;
		}
	}
	if (argc - i < 2) {
		fprintf(stderr, "usage: x11-rfb [-c] [-t SECS] HOST PORT "
		    "COMMAND...\n");
		return 2;
	}
	connect_to(argv[i], argv[i + 1]);
	handshake();
	for (i += 2; i < argc; i++) {
		const char *cmd = argv[i];
		double until = now() + timeout_s;

		if (strcmp(cmd, "frame") == 0) {
			int k, n;

			need(argc, i, 1, cmd);
			/*
			 * An incremental update may be on its way; the second
			 * full request is answered after the server saw the
			 * first, so after it the picture is whole.
			 */
			for (k = 0; k < 2; k++) {
				n = updates;
				request(0);
				while (updates == n && now() < until)
					pump(until);
				if (updates == n)
					die("no full update within %g s",
					    timeout_s);
			}
			write_ppm(argv[++i]);
		} else if (strcmp(cmd, "update") == 0) {
			int n = updates;

			while (updates == n && now() < until) {
				if (!pending)
					request(1);
				pump(until);
			}
			if (updates == n)
				die("no update within %g s", timeout_s);
		} else if (strcmp(cmd, "wait-size") == 0) {
			int w, h;

			need(argc, i, 1, cmd);
			if (sscanf(argv[++i], "%dx%d", &w, &h) != 2) {
				fprintf(stderr, "x11-rfb: bad size\n");
				return 2;
			}
			while ((fw != w || fh != h) && now() < until) {
				if (!pending)
					request(1);
				pump(until);
			}
			if (fw != w || fh != h)
				die("desktop is %dx%d, not %dx%d after %g s", fw,
				    fh, w, h, timeout_s);
			printf("size %dx%d\n", fw, fh);
		} else if (strcmp(cmd, "wait-pixel") == 0) {
			int x, y;
			uint32_t want;

			need(argc, i, 3, cmd);
			x = (int)number(argv[i + 1]);
			y = (int)number(argv[i + 2]);
			want = (uint32_t)strtoul(argv[i + 3], NULL, 16);
			i += 3;
			for (;;) {
				if (x < fw && y < fh &&
				    fbuf[(size_t)y * fw + x] == want)
					break;
				if (now() >= until)
					die("pixel (%d,%d) is %06x, not %06x "
					    "after %g s", x, y, x < fw && y < fh ?
					    fbuf[(size_t)y * fw + x] : 0, want,
					    timeout_s);
				if (!pending)
					request(1);
				pump(until);
			}
		} else if (strcmp(cmd, "type") == 0) {
			size_t k = 0, len;

			need(argc, i, 1, cmd);
			len = strlen(argv[++i]);
			while (k < len) {
				uint32_t ks = keysym_of(utf8_next(argv[i], &k));

				send_key(ks, 1);
				send_key(ks, 0);
			}
		} else if (strcmp(cmd, "key") == 0) {
			need(argc, i, 1, cmd);
			send_key(number(argv[++i]), 1);
			send_key(number(argv[i]), 0);
		} else if (strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0) {
			need(argc, i, 1, cmd);
			send_key(number(argv[i + 1]), cmd[0] == 'd');
			i++;
		} else if (strcmp(cmd, "ptr") == 0) {
			uint8_t m[6] = { 5 };

			need(argc, i, 3, cmd);
			m[1] = (uint8_t)number(argv[i + 3]);
			put16(m + 2, number(argv[i + 1]));
			put16(m + 4, number(argv[i + 2]));
			wr(m, sizeof m);
			i += 3;
		} else if (strcmp(cmd, "cut") == 0) {
			uint8_t h[8] = { 6 };
			size_t n;
			char *t;

			need(argc, i, 1, cmd);
			if (argv[++i][0] == '@')
				t = slurp(argv[i] + 1, &n);
			else
				t = latin1(argv[i], &n);
			put32(h + 4, (uint32_t)n);
			wr(h, sizeof h);
			wr(t, n);
			free(t);
		} else if (strcmp(cmd, "wait-cut") == 0) {
			size_t n;
			char *t;

			need(argc, i, 1, cmd);
			t = latin1(argv[++i], &n);
			while (!(cuts > 0 && cut_len == n &&
			    memcmp(cut, t, n) == 0) && now() < until) {
				if (!pending)
					request(1);
				pump(until);
			}
			if (!(cuts > 0 && cut_len == n && memcmp(cut, t, n) == 0))
				die("no ServerCutText '%s' within %g s (last: "
				    "%zu bytes '%.40s')", argv[i], timeout_s,
				    cut_len, cut ? cut : "");
			printf("cut %zu bytes\n", n);
			free(t);
		} else if (strcmp(cmd, "wait-cut-len") == 0) {
			size_t n;

			need(argc, i, 1, cmd);
			n = number(argv[++i]);
			while (!(cuts > 0 && cut_len == n) && now() < until) {
				if (!pending)
					request(1);
				pump(until);
			}
			if (!(cuts > 0 && cut_len == n))
				die("no ServerCutText of %zu bytes within %g s "
				    "(last: %zu)", n, timeout_s, cut_len);
			printf("cut %zu bytes\n", n);
		} else if (strcmp(cmd, "sleep") == 0) {
			need(argc, i, 1, cmd);
			service(now() + number(argv[++i]) / 1000.0);
		} else if (strcmp(cmd, "cursor") == 0) {
			if (cur_w < 0)
				die("no Cursor pseudo-rectangle received");
			printf("cursor %dx%d+%d+%d\n", cur_w, cur_h, cur_x,
			    cur_y);
		} else if (strcmp(cmd, "size") == 0) {
			printf("size %dx%d\n", fw, fh);
		} else {
			fprintf(stderr, "x11-rfb: unknown command '%s'\n", cmd);
			return 2;
		}
		fflush(stdout);
	}
	close(sock);
	return 0;
}
