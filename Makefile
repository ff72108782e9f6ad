# vncsasl - see README.md.  make [FB=dummy|x11|linux] [WERROR=1]
#
# A POSIX Makefile: GNU make and BSD make (bmake: NetBSD's and FreeBSD's
# make; OpenBSD's make reads the same subset) run it.  So no conditionals,
# no $(shell), no pattern rules: what FB and WERROR choose are variables
# named by other variables ($(FB_CFLAGS_$(FB))), which every make expands,
# objects come from the POSIX .c.o suffix rule, and the platform is
# config.mk's menu.
include config.mk

# FB=NAME builds the framebuffer source FB_OBJ_NAME names, with
# FB_CFLAGS_NAME and FB_LIBS_NAME (empty unless set here).  An unknown
# NAME has no object, so no rule names a file that is not there.
FB = dummy
FB_OBJ_dummy = fb-dummy.o
FB_OBJ_x11 = fb-x11.o
FB_OBJ_linux = fb-linux.o
FB_CFLAGS_x11 = $(X11_CFLAGS)
FB_LIBS_x11 = $(X11_LIBS)
FB_OBJ = $(FB_OBJ_$(FB))
FB_CFLAGS = $(FB_CFLAGS_$(FB))
FB_LIBS = $(FB_LIBS_$(FB))

# WERROR=1 makes warnings errors (what CI builds).
WERROR_1 = -Werror
CWARN = $(WARN) $(WERROR_$(WERROR))
TEST_CFLAGS = -std=gnu99 -Wall -Wextra $(WERROR_$(WERROR)) -O2 -g -I.

OBJ = vncsasl.o $(FB_OBJ)

all: vncsasl

# The source is part of the binary's identity: a stamp per FB, newer than
# the objects of another FB, rebuilds them when FB changes.  Everything
# built for FB waits for it, so an unknown FB stops here, clearly.
.fbstamp-$(FB):
	@[ -n "$(FB_OBJ)" ] || { echo "FB=$(FB): no such framebuffer source; FB is one of:" \
	    `ls fb-*.c | sed 's/^fb-//; s/[.]c$$//'` >&2; exit 1; }
	@rm -f .fbstamp-* $(OBJ) fb-*.o
	@touch $@

.SUFFIXES:
.SUFFIXES: .c .o
.c.o:
	$(CC) $(CWARN) $(CFLAGS) $(CORE_CFLAGS) $(FB_CFLAGS) -c -o $@ $<

$(OBJ): vncsasl.h .fbstamp-$(FB)

vncsasl: .fbstamp-$(FB) $(OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(CORE_LIBS) $(FB_LIBS)

# The X11 server beside the default one, for tests and benchmarks.
vncsasl-x11: vncsasl.c vncsasl.h fb-x11.c
	$(CC) $(CWARN) $(CFLAGS) $(CORE_CFLAGS) $(X11_CFLAGS) -o $@ vncsasl.c fb-x11.c $(CORE_LIBS) $(X11_LIBS)

# The server with AddressSanitizer and UndefinedBehaviorSanitizer.
asan: vncsasl-asan
vncsasl-asan: vncsasl.c vncsasl.h fb-dummy.c
	$(CC) $(CWARN) -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer $(CORE_CFLAGS) -o $@ vncsasl.c fb-dummy.c $(CORE_LIBS)

# Test programs (tests/): real viewers and helpers.
TESTS = tests/lvc tests/gvnc tests/dummyref tests/cbclient tests/mkcert tests/x11-rfb \
	tests/x11-tool
VIEWER = tests/viewer.c tests/viewer.h fb-dummy.c vncsasl.h
VIEWER_BUILD = $(CC) $(TEST_CFLAGS) -o $@ tests/viewer.c fb-dummy.c

tests: $(TESTS)

tests/lvc: tests/lvc.c $(VIEWER)
	$(VIEWER_BUILD) tests/lvc.c `$(PKG_CONFIG) --cflags --libs libvncclient`
tests/gvnc: tests/gvnc.c $(VIEWER)
	$(VIEWER_BUILD) tests/gvnc.c `$(PKG_CONFIG) --cflags --libs gvnc-1.0`
tests/dummyref: tests/dummyref.c $(VIEWER)
	$(VIEWER_BUILD) tests/dummyref.c
tests/cbclient: tests/cbclient.c tests/tool.h
	$(CC) $(TEST_CFLAGS) -o $@ tests/cbclient.c `$(PKG_CONFIG) --cflags --libs gnutls libgsasl`
tests/mkcert: tests/mkcert.c
	$(CC) $(TEST_CFLAGS) -o $@ tests/mkcert.c `$(PKG_CONFIG) --cflags --libs gnutls`
tests/x11-rfb: tests/x11-rfb.c tests/tool.h
	$(CC) $(TEST_CFLAGS) -o $@ tests/x11-rfb.c $(X11_CFLAGS) $(X11_LIBS)
tests/x11-tool: tests/x11-tool.c tests/tool.h
	$(CC) $(TEST_CFLAGS) -o $@ tests/x11-tool.c $(X11_CFLAGS) $(X11_LIBS)

# libFuzzer targets: the client state machine fed through a socketpair,
# before authentication, after it, and with several clients at once.
FUZZ_CC = clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ = tests/fuzz-preauth tests/fuzz-postauth tests/fuzz-multi
FUZZ_SRC = tests/fuzz.c vncsasl.c vncsasl.h fb-dummy.c
FUZZ_BUILD = $(FUZZ_CC) $(FUZZ_FLAGS) $(CORE_CFLAGS) -I. -o $@ tests/fuzz.c fb-dummy.c $(CORE_LIBS)

fuzz: $(FUZZ)

tests/fuzz-preauth: $(FUZZ_SRC)
	$(FUZZ_BUILD)
tests/fuzz-postauth: $(FUZZ_SRC)
	$(FUZZ_BUILD) -DFUZZ_POSTAUTH
# fuzz-multi: the dummy source is the fixture, not the code under test;
# built without instrumentation it draws resized screens 6 times faster.
tests/fuzz-multi: $(FUZZ_SRC)
	$(FUZZ_CC) -g -O2 -c -o tests/fuzz-multi-fb.o fb-dummy.c
	$(FUZZ_CC) $(FUZZ_FLAGS) $(CORE_CFLAGS) -I. -DFUZZ_MULTI -o $@ tests/fuzz.c tests/fuzz-multi-fb.o $(CORE_LIBS)

# A statically linked server (FB=dummy unless told) from Debian's static
# archives.  What each library needs (pkg-config --static, objdump -p
# NEEDED): libgsasl: libidn, libntlm, libgssglue (missing from
# libgsasl.pc); libgnutls: libidn2, libunistring (libunistring-dev),
# libtasn1, nettle, hogweed, gmp, libatomic, p11-kit.  p11-kit has no
# static archive: its calls fail in contrib/p11-kit-stub.c, so no PKCS#11
# tokens.  glibc warns that getaddrinfo, getpwnam and dlopen (libgssglue
# loading the Kerberos mechanism) need the same glibc's shared libraries
# at run time.
STATIC_LIBS = -lgsasl -lidn -lntlm -lgssglue -lgnutls -lidn2 -lunistring \
	-ltasn1 -lhogweed -lnettle -lgmp -latomic -lz -ljpeg

static: vncsasl-static

vncsasl-static: .fbstamp-$(FB) vncsasl.c vncsasl.h $(FB_OBJ:.o=.c) contrib/p11-kit-stub.c
	@missing=; for l in $(STATIC_LIBS); do l=$${l#-l}; \
	    case $$($(CC) -print-file-name=lib$$l.a) in /*) ;; \
	    *) missing="$$missing lib$$l.a" ;; esac; done; \
	    [ -z "$$missing" ] || { echo "make static: no static archive:$$missing" \
	    "(Debian: libunistring-dev libidn-dev libntlm0-dev libgssglue-dev)" >&2; exit 1; }
	$(CC) $(CWARN) $(CFLAGS) $(CORE_CFLAGS) -UHAVE_PAM $(FB_CFLAGS) `$(PKG_CONFIG) --cflags p11-kit-1` \
	    -static -o $@ vncsasl.c $(FB_OBJ:.o=.c) contrib/p11-kit-stub.c $(STATIC_LIBS) $(FB_LIBS)

deps:
	sh tests/deps.sh build

# vncsasl, x11vnc and x0vncserver over shaped links, as root (bench/run.sh says how).
bench:
	bash bench/run.sh

# A demo on 127.0.0.1:5900 (RUN_PORT): TLSSASL with SCRAM-SHA-256, user
# "demo" with a fresh password printed once (only SCRAM keys are stored,
# in demo/passwd).
RUN_PORT = 5900
run: deps
	$(MAKE) FB=dummy
	@mkdir -p demo && chmod 700 demo
	@pw=$$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n'); \
	printf '%s\n' "$$pw" | ./vncsasl -k demo/passwd demo 2>/dev/null && \
	echo "vncsasl demo: user 'demo', password '$$pw' (shown once)" && \
	echo "connect with: remote-viewer vnc://127.0.0.1:$(RUN_PORT)   (Ctrl-C stops the server)"
	./vncsasl -l 127.0.0.1 -p $(RUN_PORT) -s tlssasl -m SCRAM-SHA-256 -P demo/passwd -n "vncsasl demo"

check test:
	./test.sh

install: vncsasl vncsasl.8
	mkdir -p $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANDIR)/man8
	cp vncsasl $(DESTDIR)$(PREFIX)/bin/vncsasl
	chmod 755 $(DESTDIR)$(PREFIX)/bin/vncsasl
	cp vncsasl.8 $(DESTDIR)$(MANDIR)/man8/vncsasl.8
	chmod 644 $(DESTDIR)$(MANDIR)/man8/vncsasl.8

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/vncsasl $(DESTDIR)$(MANDIR)/man8/vncsasl.8

clean:
	rm -f vncsasl vncsasl-x11 vncsasl-asan vncsasl-static *.o .fbstamp-* $(TESTS) $(FUZZ) \
	    tests/fuzz-multi-fb.o

.PHONY: all tests fuzz asan static deps bench run check test install uninstall clean
