# config.mk - build knobs, read by the Makefile (GNU make and BSD make).
# Defaults suit Debian/Ubuntu with pkg-config; uncomment a stanza below for
# other systems, or give any of these on the command line:
#     make CC=clang CFLAGS='-O2' CORE_LIBS='-L/opt/lib -lgnutls ...'

PREFIX ?= /usr/local
MANDIR ?= $(PREFIX)/share/man

CC ?= cc
CFLAGS = -O2 -g
WARN = -std=c99 -Wall -Wextra
PKG_CONFIG = pkg-config

# Libraries of the server core, and of each framebuffer source that needs
# any (fb-dummy.c and fb-linux.c need none; the Makefile maps FB=x11 to
# X11_CFLAGS and X11_LIBS).
#
# pkg-config runs in the shell of each command that uses these (backquotes,
# as st's config.mk does), not in make: $(shell) is GNU make's alone, and
# "!=" is missing from GNU make before 4.0 (macOS ships 3.81).  Backquotes
# work in every make, and the X11 query runs only when an X11 binary is
# built.  A stanza below replaces them with plain flags.
CORE_PKGS = gnutls nettle libgsasl zlib libjpeg
X11_PKGS = x11 xext xtst xdamage xfixes xrandr

CORE_CFLAGS = `$(PKG_CONFIG) --cflags $(CORE_PKGS)` $(PAM_CFLAGS)
CORE_LIBS = `$(PKG_CONFIG) --libs $(CORE_PKGS)` $(PAM_LIBS)

# PAM, for -P pam:SERVICE (Linux-PAM, or OpenPAM on FreeBSD and NetBSD).
# OpenBSD has no PAM: empty both (make PAM_CFLAGS= PAM_LIBS=), and -P pam:
# says so.  make static leaves PAM out (its modules are loaded with
# dlopen, which a static binary cannot do reliably).
PAM_CFLAGS = -DHAVE_PAM
PAM_LIBS = -lpam
X11_CFLAGS = `$(PKG_CONFIG) --cflags $(X11_PKGS)`
X11_LIBS = `$(PKG_CONFIG) --libs $(X11_PKGS)`

# FreeBSD (pkg install gnutls nettle libgsasl libjpeg-turbo pkgconf): uncomment
#CORE_CFLAGS = -I/usr/local/include
#CORE_LIBS = -L/usr/local/lib -lgnutls -lnettle -lgsasl -lz -ljpeg
#X11_CFLAGS = -I/usr/local/include
#X11_LIBS = -L/usr/local/lib -lX11 -lXext -lXtst -lXdamage -lXfixes -lXrandr

# OpenBSD (pkg_add gnutls libgsasl jpeg; X in /usr/X11R6): uncomment
#MANDIR = $(PREFIX)/man
#PAM_CFLAGS =
#PAM_LIBS =
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

# Solaris/illumos: add the socket libraries (after the stanza you use)
#CORE_LIBS += -lsocket -lnsl
