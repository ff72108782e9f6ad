/*
 * evread.c - the input side of the VM tests (runs in the guest, built
 * static on the host): what an application reading evdev sees of the
 * vncsasl virtual device.
 *
 *   evread find NAME   the /dev/input/eventN whose device is named NAME
 *   evread log DEV     one line per event, "type code value", until killed
 *   evread state DEV   what is held now: "keys: CODE..." (EVIOCGKEY),
 *                      then "abs CODE value min max" for each axis, and
 *                      "slot0 tracking ID" for a touchscreen (-1: up)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/input.h>

static int
find(const char *name)
{
	DIR *d = opendir("/dev/input");
	struct dirent *e;

	if (d == NULL)
		return 1;
	while ((e = readdir(d)) != NULL) {
		char path[300], n[256] = "";
		int fd;

		if (strncmp(e->d_name, "event", 5) != 0)
			continue;
		snprintf(path, sizeof path, "/dev/input/%s", e->d_name);
		if ((fd = open(path, O_RDONLY)) < 0)
			continue;
		if (ioctl(fd, EVIOCGNAME(sizeof n - 1), n) >= 0 &&
		    strcmp(n, name) == 0) {
			printf("%s\n", path);
			return 0;
		}
		close(fd);
	}
	return 1;
}

static int
logev(const char *dev)
{
	struct input_event ev[64];
	int fd = open(dev, O_RDONLY);
	ssize_t n;

	if (fd < 0) {
		perror(dev);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while ((n = read(fd, ev, sizeof ev)) > 0) {
		size_t i;

		for (i = 0; i < (size_t)n / sizeof ev[0]; i++)
			printf("%u %u %d\n", ev[i].type, ev[i].code,
			    ev[i].value);
		fflush(stdout);
	}
	return 0;
}

static int
state(const char *dev)
{
	static const unsigned axes[] = {
		ABS_X, ABS_Y, ABS_MT_SLOT, ABS_MT_TRACKING_ID,
		ABS_MT_POSITION_X, ABS_MT_POSITION_Y,
	};
	uint8_t keys[KEY_CNT / 8], absbits[ABS_CNT / 8];
	int fd = open(dev, O_RDONLY), k;
	size_t i;

	if (fd < 0) {
		perror(dev);
		return 1;
	}
	memset(keys, 0, sizeof keys);
	memset(absbits, 0, sizeof absbits);
	ioctl(fd, EVIOCGKEY(sizeof keys), keys);
	ioctl(fd, EVIOCGBIT(EV_ABS, sizeof absbits), absbits);
	printf("keys:");
	for (k = 0; k < KEY_CNT; k++)
		if (keys[k / 8] >> (k % 8) & 1)
			printf(" %d", k);
	printf("\n");
	for (i = 0; i < sizeof axes / sizeof axes[0]; i++) {
		struct input_absinfo a;

		if (!(absbits[axes[i] / 8] >> (axes[i] % 8) & 1) ||
		    ioctl(fd, EVIOCGABS(axes[i]), &a) < 0)
			continue;
		printf("abs %u %d %d %d\n", axes[i], a.value, a.minimum,
		    a.maximum);
	}
	if (absbits[ABS_MT_TRACKING_ID / 8] >> (ABS_MT_TRACKING_ID % 8) & 1) {
		int32_t mt[2] = { ABS_MT_TRACKING_ID, 0 };

		/* EVIOCGABS has no per-slot values: slot 0's tracking id */
		if (ioctl(fd, EVIOCGMTSLOTS(sizeof mt), mt) == 0)
			printf("slot0 tracking %d\n", mt[1]);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "find") == 0)
		return find(argv[2]);
	if (argc == 3 && strcmp(argv[1], "log") == 0)
		return logev(argv[2]);
	if (argc == 3 && strcmp(argv[1], "state") == 0)
		return state(argv[2]);
	fprintf(stderr, "usage: evread find NAME | log DEV | state DEV\n");
	return 2;
}
