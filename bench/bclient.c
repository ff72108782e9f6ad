/*
 * bclient.c - the benchmark viewer for make bench: N RFB 3.8 connections
 * in one poll() loop, security None, 32-bit XRGB pixels, one encoding
 * (Raw or ZRLE).  Each connection asks for the whole screen, then for an
 * incremental update as soon as the previous one is in, and counts
 * updates, bytes and pixels.  Messages are parsed to their boundaries
 * only (Raw: w*h*4 bytes, ZRLE: a U32 length), never decoded.
 *
 *   bclient -p PORT -e raw|zrle [-n N] [-w WARMUP] [-t SECS] [-P PID] [-X PID]
 *
 * Connections are opened at most HANDSHAKES_MAX at a time before their
 * ServerInit (servers cap unauthenticated connections per address).
 * After every connection has received its first full picture (or after
 * WARMUP seconds at most) the measurement window of SECS seconds starts.
 * With -P, the server's CPU time (/proc/PID/stat) over the window and its
 * VmRSS at the end are measured too; with -X, the X server's CPU time.
 * One line on stdout:
 *
 *   n=N ups=MEAN ups_min=MIN mpxs=M mbs=M cpu=PCT xcpu=PCT rss=MIB
 *   ttff=MS ttff_max=MS
 *
 * ups: FramebufferUpdates a second per connection (mean, slowest); mpxs,
 * mbs: megapixels and megabytes a second, all connections together; ttff:
 * milliseconds from connect() to the end of the first update that
 * completed the picture (median over connections, and the slowest).
 * Exit 1 if a connection fails.  Every wait is bounded.
 */
#define _POSIX_C_SOURCE 200809L

#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CONNS_MAX	64
#define RD_CHUNK	(256 * 1024)
#define NAME_MAX_LEN	4096	/* desktop name we accept */
#define CONNECT_SECS	10	/* the server may still be starting */
#define HANDSHAKES_MAX	4	/* connections before ServerInit at once */

enum st {
	S_VERSION, S_NSEC, S_SECTYPES, S_SECRESULT, S_INIT, S_NAME,
	S_MSG, S_UPD, S_RECT, S_ZLEN, S_EXTDS, S_CUT, S_CMAP, S_SKIP,
};

struct conn {
	int fd;
	enum st st;
	uint8_t hdr[32];
	size_t need, have;	/* header bytes wanted and buffered */
	uint64_t skip;		/* bytes to skip (S_SKIP) */
	enum st after;		/* state after the skip */
	int rects;		/* rectangles left in this update */
	int w, h;		/* screen */
	int rx, ry, rw, rh;	/* current rectangle */
	double t0, ttff;
	uint8_t *cover;		/* pixels seen, until the picture is whole */
	size_t uncovered;
	uint64_t updates, bytes, pixels;	/* in the window */
	uint64_t upd_pixels;
};

static const char *enc_name = "zrle";
static int32_t enc_num = 16;
static int measuring;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *fmt, const char *arg)
{
	fprintf(stderr, "bclient: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

static void
send_all(struct conn *c, const void *p, size_t n)
{
	const uint8_t *b = p;
	double t_end = now_s() + 5;

	while (n > 0) {
		ssize_t w = write(c->fd, b, n);

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pfd = { c->fd, POLLOUT, 0 };

			if (now_s() > t_end)
				die("%s", "write timed out");
			poll(&pfd, 1, 100);
			continue;
		}
		if (w <= 0)
			die("write: %s", strerror(errno));
		b += w;
		n -= (size_t)w;
	}
}

static void
request(struct conn *c, int incremental)
{
	uint8_t m[10] = { 3, (uint8_t)incremental, 0, 0, 0, 0,
	    (uint8_t)(c->w >> 8), (uint8_t)c->w, (uint8_t)(c->h >> 8),
	    (uint8_t)c->h };

	send_all(c, m, sizeof m);
}

static uint32_t
be(const uint8_t *p, int n)
{
	uint32_t v = 0;

	while (n-- > 0)
		v = v << 8 | *p++;
	return v;
}

static void
expect(struct conn *c, enum st st, size_t n)
{
	c->st = st;
	c->need = n;
	c->have = 0;
}

static void
skip_then(struct conn *c, uint64_t n, enum st after, size_t need)
{
	c->skip = n;
	c->after = after;
	c->st = S_SKIP;
	c->need = need;
	c->have = 0;
	if (n == 0)
		expect(c, after, need);
}

static void
cover(struct conn *c)
{
	int y;

	if (c->cover == NULL)
		return;
	for (y = c->ry; y < c->ry + c->rh && y < c->h; y++) {
		uint8_t *row = c->cover + (size_t)y * c->w;
		int x;

		for (x = c->rx; x < c->rx + c->rw && x < c->w; x++)
			if (!row[x]) {
				row[x] = 1;
				c->uncovered--;
			}
	}
}

static void
update_done(struct conn *c)
{
	if (c->cover != NULL && c->uncovered == 0) {
		c->ttff = now_s() - c->t0;
		free(c->cover);
		c->cover = NULL;
	}
	if (measuring && c->upd_pixels > 0) {
		c->updates++;
		c->pixels += c->upd_pixels;
	}
	c->upd_pixels = 0;
	request(c, 1);
	expect(c, S_MSG, 1);
}

static void
next_rect(struct conn *c)
{
	if (c->rects-- > 0)
		expect(c, S_RECT, 12);
	else
		update_done(c);
}

/* A header of c->need bytes is complete in c->hdr. */
static void
step(struct conn *c)
{
	uint8_t *h = c->hdr;
	uint32_t n;
	int32_t e;

	switch (c->st) {
	case S_VERSION:
		send_all(c, "RFB 003.008\n", 12);
		expect(c, S_NSEC, 1);
		break;
	case S_NSEC:
		if (h[0] == 0)
			die("%s", "the server refused the connection");
		expect(c, S_SECTYPES, h[0]);
		break;
	case S_SECTYPES:
		if (memchr(h, 1, c->need) == NULL)
			die("%s", "security type None not offered");
		send_all(c, "\001", 1);
		expect(c, S_SECRESULT, 4);
		break;
	case S_SECRESULT:
		if (be(h, 4) != 0)
			die("%s", "security result: failed");
		send_all(c, "\001", 1);		/* shared */
		expect(c, S_INIT, 24);
		break;
	case S_INIT:
		c->w = (int)be(h, 2);
		c->h = (int)be(h + 2, 2);
		n = be(h + 20, 4);
		if (n > NAME_MAX_LEN)
			die("%s", "desktop name too long");
		skip_then(c, n, S_NAME, 0);
		if (n == 0)
			step(c);
		break;
	case S_NAME: {
		/* 32 bpp, depth 24, little-endian XRGB: the same for both */
		static const uint8_t pf[20] = { 0, 0, 0, 0, 32, 24, 0, 1, 0, 255,
		    0, 255, 0, 255, 16, 8, 0, 0, 0, 0 };
		uint8_t se[8] = { 2, 0, 0, 1 };

		se[4] = (uint8_t)((uint32_t)enc_num >> 24);
		se[5] = (uint8_t)((uint32_t)enc_num >> 16);
		se[6] = (uint8_t)((uint32_t)enc_num >> 8);
		se[7] = (uint8_t)enc_num;
		send_all(c, pf, sizeof pf);
		send_all(c, se, sizeof se);
		c->cover = calloc((size_t)c->w * c->h, 1);
		if (c->cover == NULL)
			die("%s", "out of memory");
		c->uncovered = (size_t)c->w * c->h;
		request(c, 0);
		expect(c, S_MSG, 1);
		break;
	}
	case S_MSG:
		switch (h[0]) {
		case 0:
			expect(c, S_UPD, 3);
			break;
		case 1:
			expect(c, S_CMAP, 5);
			break;
		case 2:			/* Bell */
			expect(c, S_MSG, 1);
			break;
		case 3:
			expect(c, S_CUT, 7);
			break;
		default:
			fprintf(stderr, "bclient: server message %u\n", h[0]);
			exit(1);
		}
		break;
	case S_UPD:
		c->rects = (int)be(h + 1, 2);
		next_rect(c);
		break;
	case S_RECT:
		c->rx = (int)be(h, 2);
		c->ry = (int)be(h + 2, 2);
		c->rw = (int)be(h + 4, 2);
		c->rh = (int)be(h + 6, 2);
		e = (int32_t)be(h + 8, 4);
		if (e == 0 || e == 16) {
			c->upd_pixels += (uint64_t)c->rw * c->rh;
			cover(c);
		}
		if (e == 0)
			skip_then(c, (uint64_t)c->rw * c->rh * 4, S_RECT, 0);
		else if (e == 16)
			expect(c, S_ZLEN, 4);
		else if (e == -308)
			expect(c, S_EXTDS, 4);
		else if (e == -223)
			skip_then(c, 0, S_RECT, 0);
		else if (e == -224) {	/* LastRect */
			c->rects = 0;
			skip_then(c, 0, S_RECT, 0);
		} else {
			fprintf(stderr, "bclient: encoding %d\n", e);
			exit(1);
		}
		if (e == -223 && (c->rw != c->w || c->rh != c->h))
			die("%s", "the desktop size changed");
		if (c->st == S_RECT && c->need == 0)
			next_rect(c);
		break;
	case S_ZLEN:
		skip_then(c, be(h, 4), S_RECT, 0);
		if (c->st == S_RECT)
			next_rect(c);
		break;
	case S_EXTDS:
		skip_then(c, 16u * h[0], S_RECT, 0);
		if (c->st == S_RECT)
			next_rect(c);
		break;
	case S_CUT:
		skip_then(c, be(h + 3, 4), S_MSG, 1);
		break;
	case S_CMAP:
		skip_then(c, 6u * be(h + 3, 2), S_MSG, 1);
		break;
	default:
		break;
	}
}

/* Consume n bytes from the wire. */
static void
feed(struct conn *c, const uint8_t *p, size_t n)
{
	if (measuring)
		c->bytes += n;
	while (n > 0) {
		if (c->st == S_SKIP) {
			size_t k = c->skip < n ? (size_t)c->skip : n;

			c->skip -= k;
			p += k;
			n -= k;
			if (c->skip == 0) {
				expect(c, c->after, c->need);
				if (c->st == S_RECT)
					next_rect(c);
				else if (c->st == S_NAME)
					step(c);
			}
			continue;
		}
		while (n > 0 && c->have < c->need) {
			c->hdr[c->have++] = *p++;
			n--;
		}
		if (c->have == c->need)
			step(c);
	}
}

static int
connect_to(int port)
{
	struct sockaddr_in sa;
	double t_end = now_s() + CONNECT_SECS;
	int fd, one = 1;

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (;;) {
		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
			die("socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			break;
		close(fd);
		if (now_s() > t_end)
			die("connect: %s", strerror(errno));
		poll(NULL, 0, 50);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* utime + stime of a process in seconds, -1 if unknown */
static double
cpu_of(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double
rss_mib(int pid)
{
	char path[64], line[256];
	double kb = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmRSS: %lf", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb / 1024;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	static struct conn conns[CONNS_MAX];
	static uint8_t buf[RD_CHUNK];
	struct pollfd pfd[CONNS_MAX];
	int port = 0, n = 1, pid = 0, xpid = 0, ch, i, all, opened = 0;
	double warm = 3, secs = 3, t_start = 0, t_win = 0, cpu0 = 0, xcpu0 = 0;
	double ups_min = 1e9, ups_sum = 0, ttff[CONNS_MAX], ttff_max = 0;
	uint64_t bytes = 0, pixels = 0;

	while ((ch = getopt(argc, argv, "p:e:n:w:t:P:X:")) != -1) {
		switch (ch) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'e':
			enc_name = optarg;
			if (strcmp(optarg, "raw") == 0)
				enc_num = 0;
			else if (strcmp(optarg, "zrle") == 0)
				enc_num = 16;
			else
				die("-e %s: want raw or zrle", optarg);
			break;
		case 'n':
			n = atoi(optarg);
			break;
		case 'w':
			warm = atof(optarg);
			break;
		case 't':
			secs = atof(optarg);
			break;
		case 'P':
			pid = atoi(optarg);
			break;
		case 'X':
			xpid = atoi(optarg);
			break;
		default:
			die("%s", "usage: bclient -p PORT -e raw|zrle [-n N] "
			    "[-w WARMUP] [-t SECS] [-P PID] [-X PID]");
		}
	}
	if (port <= 0 || n < 1 || n > CONNS_MAX || secs <= 0 || secs > 600 ||
	    warm < 0 || warm > 600)
		die("%s", "bad arguments (bclient.c says how)");

	t_start = now_s();
	for (;;) {
		double t = now_s();

		/* a few handshakes at a time, as servers that cap
		 * unauthenticated connections per address expect */
		for (i = 0, all = 0; i < opened; i++)
			all += conns[i].w == 0;
		while (opened < n && all++ < HANDSHAKES_MAX) {
			conns[opened].t0 = now_s();
			conns[opened].ttff = -1;
			conns[opened].fd = connect_to(port);
			expect(&conns[opened++], S_VERSION, 12);
		}
		if (!measuring) {
			for (i = 0, all = opened == n; i < opened; i++)
				if (conns[i].ttff < 0)
					all = 0;
			if (all || t - t_start >= warm) {
				measuring = 1;
				t_win = t;
				cpu0 = cpu_of(pid);
				xcpu0 = cpu_of(xpid);
			}
		} else if (t - t_win >= secs) {
			break;
		}
		for (i = 0; i < opened; i++) {
			pfd[i].fd = conns[i].fd;
			pfd[i].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)opened, 50) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		for (i = 0; i < opened; i++) {
			ssize_t r;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(conns[i].fd, buf, sizeof buf);
			if (r == 0)
				die("%s", "the server closed a connection");
			if (r < 0 && errno != EAGAIN && errno != EINTR)
				die("read: %s", strerror(errno));
			if (r > 0)
				feed(&conns[i], buf, (size_t)r);
		}
	}
	t_win = now_s() - t_win;
	{
		double cpu = cpu_of(pid), xcpu = cpu_of(xpid), rss = rss_mib(pid);

		for (i = 0; i < n; i++) {
			double u = conns[i].updates / t_win;

			ups_sum += u;
			if (u < ups_min)
				ups_min = u;
			bytes += conns[i].bytes;
			pixels += conns[i].pixels;
			ttff[i] = conns[i].ttff < 0 ? 1e9 : conns[i].ttff * 1000;
			if (ttff[i] > ttff_max)
				ttff_max = ttff[i];
		}
		qsort(ttff, (size_t)n, sizeof ttff[0], cmp_double);
		printf("n=%d enc=%s ups=%.2f ups_min=%.2f mpxs=%.2f mbs=%.2f "
		    "cpu=%.1f xcpu=%.1f rss=%.1f ttff=%.1f ttff_max=%.1f\n", n,
		    enc_name, ups_sum / n, ups_min, pixels / t_win / 1e6,
		    bytes / t_win / 1e6,
		    pid > 0 ? (cpu - cpu0) / t_win * 100 : -1,
		    xpid > 0 ? (xcpu - xcpu0) / t_win * 100 : -1, rss,
		    ttff[(n - 1) / 2], ttff_max);
	}
	return 0;
}
