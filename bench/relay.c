/*
 * relay.c - a delay line for make bench's link with a round-trip time.
 *
 *   relay -l PATH -p PORT -d MS [-t SECS]
 *
 * Listens on the UNIX socket PATH; each connection accepted there is
 * joined to a new TCP connection to 127.0.0.1:PORT, and every byte read on
 * one side is written to the other MS milliseconds after it was read, in
 * order.  With -d 20 a viewer sees a 40 ms round trip on top of the link.
 *
 * Why a UNIX socket on the viewer's side: bench/run.sh shapes the
 * namespace's loopback with tbf, and a relay on TCP at both ends would
 * cross it twice, halving the rate.  So the server's TCP connection
 * carries the shaped bytes (server -> relay: the bottleneck), and the
 * delay follows it (the propagation), as on a real path.  The relay reads
 * as fast as the shaped link delivers, so it keeps the link's pacing; it
 * stops reading a side when QUEUE_MAX bytes wait to be written to the
 * other, so a viewer that stops reading pushes back on the server as TCP
 * would.  Everything runs in one poll() loop; exits after SECS seconds
 * (default 3600) or on SIGTERM/SIGINT.
 */
#define _DEFAULT_SOURCE

#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAIRS_MAX	64		/* viewers at once: bclient opens <= 64 */
#define CHUNK		(64 * 1024)	/* bytes per read */
#define QUEUE_MAX	(8 * 1024 * 1024)	/* bytes held per direction */
#define DELAY_MAX	10000		/* ms */

struct chunk {
	struct chunk *next;
	double due;			/* when it may be written */
	size_t len, off;
	uint8_t data[];
};

struct dir {				/* one direction of a pair */
	int from, to;
	struct chunk *head, *tail;
	size_t queued;
};

struct pair {
	int used;
	struct dir d[2];		/* viewer -> server, server -> viewer */
};

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
fail(const char *what)
{
	fprintf(stderr, "relay: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int
connect_server(int port)
{
	struct sockaddr_in sa;
	int fd, one = 1;

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	nonblock(fd);
	return fd;
}

static void
pair_close(struct pair *p)
{
	int k;

	for (k = 0; k < 2; k++) {
		struct chunk *c = p->d[k].head, *n;

		for (; c != NULL; c = n) {
			n = c->next;
			free(c);
		}
	}
	close(p->d[0].from);
	close(p->d[0].to);
	memset(p, 0, sizeof *p);
}

/* read what is there on d->from, to be written d seconds later */
static int
dir_read(struct dir *d, double delay)
{
	struct chunk *c = malloc(sizeof *c + CHUNK);
	ssize_t r;

	if (c == NULL)
		return -1;
	r = read(d->from, c->data, CHUNK);
	if (r <= 0) {
		free(c);
		return r < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	}
	c->next = NULL;
	c->due = now_s() + delay;
	c->len = (size_t)r;
	c->off = 0;
	if (d->tail != NULL)
		d->tail->next = c;
	else
		d->head = c;
	d->tail = c;
	d->queued += (size_t)r;
	return 0;
}

/* write every chunk that is due; -1 if the other side is gone */
static int
dir_write(struct dir *d, double t)
{
	while (d->head != NULL && d->head->due <= t) {
		struct chunk *c = d->head;
		ssize_t w = write(d->to, c->data + c->off, c->len - c->off);

		if (w < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		c->off += (size_t)w;
		d->queued -= (size_t)w;
		if (c->off < c->len)
			return 0;
		d->head = c->next;
		if (d->head == NULL)
			d->tail = NULL;
		free(c);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static struct pair pairs[PAIRS_MAX];
	struct pollfd pfd[1 + 2 * PAIRS_MAX];
	struct sockaddr_un su;
	const char *path = NULL;
	int port = 0, ch, lfd, i, k;
	double delay = -1, secs = 3600, t_end;

	while ((ch = getopt(argc, argv, "l:p:d:t:")) != -1) {
		switch (ch) {
		case 'l':
			path = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'd':
			delay = atof(optarg);
			break;
		case 't':
			secs = atof(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (path == NULL || port <= 0 || port > 65535 || delay < 0 ||
	    delay > DELAY_MAX || secs <= 0 || strlen(path) >= sizeof su.sun_path) {
usage:
		fprintf(stderr, "usage: relay -l PATH -p PORT -d MS [-t SECS]\n");
		return 2;
	}
	delay /= 1000;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);

	memset(&su, 0, sizeof su);
	su.sun_family = AF_UNIX;
	strcpy(su.sun_path, path);
	unlink(path);
	if ((lfd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
		fail("socket");
	if (bind(lfd, (struct sockaddr *)&su, sizeof su) < 0)
		fail(path);
	if (listen(lfd, 16) < 0)
		fail("listen");
	nonblock(lfd);
	t_end = now_s() + secs;

	while (!stop) {
		double t = now_s(), next = t + 1;
		int n = 0, timeout;
		struct pollfd *pp[PAIRS_MAX][2];

		if (t >= t_end)
			break;
		pfd[n].fd = lfd;
		pfd[n++].events = POLLIN;
		for (i = 0; i < PAIRS_MAX; i++) {
			if (!pairs[i].used)
				continue;
			for (k = 0; k < 2; k++) {
				struct dir *d = &pairs[i].d[k];

				if (dir_write(d, t) < 0) {
					pair_close(&pairs[i]);
					break;
				}
				if (d->head != NULL && d->head->due < next)
					next = d->head->due;
			}
			if (!pairs[i].used)
				continue;
			/* one pollfd per socket: read it while its queue has
			 * room, wait for it to take what is due */
			for (k = 0; k < 2; k++) {
				struct dir *d = &pairs[i].d[k], *o = &pairs[i].d[1 - k];

				pfd[n].fd = d->from;
				pfd[n].events = (d->queued < QUEUE_MAX ? POLLIN : 0) |
				    (o->head != NULL && o->head->due <= t ? POLLOUT : 0);
				pp[i][k] = &pfd[n++];
			}
		}
		timeout = (int)((next - t) * 1000 + 0.999);
		if (poll(pfd, (nfds_t)n, timeout < 0 ? 0 : timeout) < 0) {
			if (errno == EINTR)
				continue;
			fail("poll");
		}
		if (pfd[0].revents & POLLIN) {
			int vfd = accept(lfd, NULL, NULL), sfd;

			for (i = 0; vfd >= 0 && i < PAIRS_MAX && pairs[i].used; i++)
				;
			if (vfd >= 0 && i < PAIRS_MAX &&
			    (sfd = connect_server(port)) >= 0) {
				nonblock(vfd);
				pairs[i].used = 1;
				pairs[i].d[0].from = vfd;
				pairs[i].d[0].to = sfd;
				pairs[i].d[1].from = sfd;
				pairs[i].d[1].to = vfd;
				continue;	/* pp[] is stale now */
			} else if (vfd >= 0) {
				fprintf(stderr, "relay: connection refused "
				    "(server down or %d pairs)\n", PAIRS_MAX);
				close(vfd);
			}
		}
		for (i = 0; i < PAIRS_MAX; i++) {
			if (!pairs[i].used)
				continue;
			for (k = 0; k < 2 && pairs[i].used; k++) {
				struct pollfd *q = pp[i][k];

				if ((q->revents & (POLLIN | POLLHUP | POLLERR)) &&
				    pairs[i].d[k].queued < QUEUE_MAX &&
				    dir_read(&pairs[i].d[k], delay) < 0)
					pair_close(&pairs[i]);
			}
		}
	}
	for (i = 0; i < PAIRS_MAX; i++)
		if (pairs[i].used)
			pair_close(&pairs[i]);
	close(lfd);
	unlink(path);
	return 0;
}
