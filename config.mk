# config.mk - build knobs.  Defaults suit Debian/Ubuntu with pkg-config;
# uncomment a stanza below for other systems.

PREFIX ?= /usr/local
MANDIR ?= $(PREFIX)/share/man

CC ?= cc
CFLAGS ?= -O2 -g
WARN = -std=c99 -Wall -Wextra
PKG_CONFIG ?= pkg-config

# Libraries of the server core, and of each framebuffer source.
CORE_PKGS = gnutls nettle libgsasl zlib libjpeg
X11_PKGS = x11 xext xtst xdamage xfixes xrandr

CORE_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(CORE_PKGS))
CORE_LIBS = $(shell $(PKG_CONFIG) --libs $(CORE_PKGS))
X11_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(X11_PKGS))
X11_LIBS = $(shell $(PKG_CONFIG) --libs $(X11_PKGS))

# FreeBSD (pkg install gnutls nettle libgsasl libjpeg-turbo pkgconf): uncomment
#CORE_CFLAGS = -I/usr/local/include
#CORE_LIBS = -L/usr/local/lib -lgnutls -lnettle -lgsasl -lz -ljpeg
#X11_CFLAGS = -I/usr/local/include
#X11_LIBS = -L/usr/local/lib -lX11 -lXext -lXtst -lXdamage -lXfixes -lXrandr

# OpenBSD (pkg_add gnutls libgsasl jpeg; X in /usr/X11R6): uncomment
#MANDIR = $(PREFIX)/man
#CORE_CFLAGS = -I/usr/local/include
#CORE_LIBS = -L/usr/local/lib -lgnutls -lnettle -lgsasl -lz -ljpeg
#X11_CFLAGS = -I/usr/X11R6/include
#X11_LIBS = -L/usr/X11R6/lib -lX11 -lXext -lXtst -lXdamage -lXfixes -lXrandr

# NetBSD (pkgin install gnutls nettle gsasl libjpeg-turbo): uncomment
#MANDIR = $(PREFIX)/man
#CORE_CFLAGS = -I/usr/pkg/include
#CORE_LIBS = -L/usr/pkg/lib -Wl,-R/usr/pkg/lib -lgnutls -lnettle -lgsasl -lz -ljpeg
#X11_CFLAGS = -I/usr/X11R7/include
#X11_LIBS = -L/usr/X11R7/lib -Wl,-R/usr/X11R7/lib -lX11 -lXext -lXtst -lXdamage -lXfixes -lXrandr

# Solaris/illumos: add the socket libraries
#CORE_LIBS += -lsocket -lnsl
