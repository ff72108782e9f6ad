/*
 * fb-x11.c - share a real X display (make FB=x11).
 *
 * Placeholder until the X11 source lands: it builds, and refuses to
 * start with a clear message.
 */
#include <stdio.h>

#include "vncsasl.h"

static struct fb *
x11_open(const char *arg, const struct fb_host *host, char *err,
    size_t errlen)
{
	(void)arg;
	(void)host;
	snprintf(err, errlen, "the X11 source is not built yet; use "
	    "make FB=dummy");
	return NULL;
}

const struct fb_source fb_source = {
	.name = "x11",
	.arg_help = "X display name (default $DISPLAY)",
	.open = x11_open,
};
