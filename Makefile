# vncsasl - see README.md.  make [FB=dummy|x11|linux] [WERROR=1]
include config.mk

FB ?= dummy
ifeq ($(FB),x11)
FB_CFLAGS = $(X11_CFLAGS)
FB_LIBS = $(X11_LIBS)
else ifeq ($(FB),dummy)
FB_CFLAGS =
FB_LIBS =
else ifeq ($(FB),linux)
FB_CFLAGS =
FB_LIBS =
else
$(error FB must be dummy, x11 or linux)
endif
ifeq ($(WERROR),1)
WARN += -Werror
endif

ALL_CFLAGS = $(WARN) $(CFLAGS) $(CORE_CFLAGS) $(FB_CFLAGS)
TEST_CFLAGS = -std=gnu99 -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -O2 -g -I.

all: vncsasl

# The source is part of the binary's identity: rebuild when FB changes.
.fbstamp-$(FB):
	rm -f .fbstamp-* vncsasl.o fb-*.o vncsasl-static
	touch $@

vncsasl.o: vncsasl.c vncsasl.h .fbstamp-$(FB)
	$(CC) $(ALL_CFLAGS) -c vncsasl.c

fb-$(FB).o: fb-$(FB).c vncsasl.h .fbstamp-$(FB)
	$(CC) $(ALL_CFLAGS) -c fb-$(FB).c

vncsasl: vncsasl.o fb-$(FB).o
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ vncsasl.o fb-$(FB).o $(CORE_LIBS) $(FB_LIBS)

# The X11 server beside the default one, for tests and benchmarks.
vncsasl-x11: vncsasl.c vncsasl.h fb-x11.c
	$(CC) $(WARN) $(CFLAGS) $(CORE_CFLAGS) $(X11_CFLAGS) -o $@ vncsasl.c fb-x11.c $(CORE_LIBS) $(X11_LIBS)

# Test programs (tests/): real viewers and helpers.
TESTS = tests/lvc tests/gvnc tests/dummyref tests/cbclient \
	$(patsubst %.c,%,$(wildcard tests/x11-*.c))

tests: $(TESTS)

tests/lvc: tests/lvc.c tests/viewer.c tests/viewer.h fb-dummy.c vncsasl.h
	$(CC) $(TEST_CFLAGS) -o $@ tests/lvc.c tests/viewer.c fb-dummy.c $(shell $(PKG_CONFIG) --cflags --libs libvncclient)

tests/gvnc: tests/gvnc.c tests/viewer.c tests/viewer.h fb-dummy.c vncsasl.h
	$(CC) $(TEST_CFLAGS) -o $@ tests/gvnc.c tests/viewer.c fb-dummy.c $(shell $(PKG_CONFIG) --cflags --libs gvnc-1.0)

tests/dummyref: tests/dummyref.c tests/viewer.c tests/viewer.h fb-dummy.c vncsasl.h
	$(CC) $(TEST_CFLAGS) -o $@ tests/dummyref.c tests/viewer.c fb-dummy.c

tests/cbclient: tests/cbclient.c
	$(CC) $(TEST_CFLAGS) -o $@ tests/cbclient.c $(shell $(PKG_CONFIG) --cflags --libs gnutls libgsasl)

tests/x11-%: tests/x11-%.c
	$(CC) $(TEST_CFLAGS) -o $@ $< $(X11_CFLAGS) $(X11_LIBS)

# libFuzzer targets: the client state machine fed through a socketpair.
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
fuzz: tests/fuzz-preauth tests/fuzz-postauth

tests/fuzz-preauth: tests/fuzz.c vncsasl.c vncsasl.h fb-dummy.c
	clang $(FUZZ_FLAGS) $(CORE_CFLAGS) -I. -o $@ tests/fuzz.c fb-dummy.c $(CORE_LIBS)

tests/fuzz-postauth: tests/fuzz.c vncsasl.c vncsasl.h fb-dummy.c
	clang $(FUZZ_FLAGS) -DFUZZ_POSTAUTH $(CORE_CFLAGS) -I. -o $@ tests/fuzz.c fb-dummy.c $(CORE_LIBS)

# The server with AddressSanitizer and UndefinedBehaviorSanitizer.
asan: vncsasl-asan
vncsasl-asan: vncsasl.c vncsasl.h fb-dummy.c
	$(CC) $(WARN) -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer $(CORE_CFLAGS) -o $@ vncsasl.c fb-dummy.c $(CORE_LIBS)

deps:
	sh tests/deps.sh build

# vncsasl against x11vnc on one Xvfb, and alone (bench/run.sh says how).
bench:
	bash bench/run.sh

.PHONY: bench

# A demo on 127.0.0.1:5900: TLSSASL with SCRAM-SHA-256, user "demo" with a
# fresh password printed once (only SCRAM keys are stored, in demo/passwd).
run: deps
	$(MAKE) FB=dummy
	@mkdir -p demo && chmod 700 demo
	@pw=$$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n'); \
	printf '%s\n' "$$pw" | ./vncsasl -k demo/passwd demo 2>/dev/null && \
	echo "vncsasl demo: user 'demo', password '$$pw' (shown once)" && \
	echo "connect with: remote-viewer vnc://127.0.0.1:5900   (Ctrl-C stops the server)"
	./vncsasl -l 127.0.0.1 -p 5900 -s tlssasl -m SCRAM-SHA-256 -P demo/passwd -n "vncsasl demo"

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

# A statically linked server (FB=dummy or FB=linux) from Debian's static archives.
# What each library needs (pkg-config --static, objdump -p NEEDED):
# libgsasl: libidn, libntlm, libgssglue (missing from libgsasl.pc);
# libgnutls: libidn2, libunistring (libunistring-dev), libtasn1, nettle,
# hogweed, gmp, libatomic, p11-kit.  p11-kit has no static archive: its
# calls fail in contrib/p11-kit-stub.c, so no PKCS#11 tokens.  glibc
# warns that getaddrinfo, getpwnam and dlopen (libgssglue loading the
# Kerberos mechanism) need the same glibc's shared libraries at run time.
STATIC_LIBS = -lgsasl -lidn -lntlm -lgssglue -lgnutls -lidn2 -lunistring \
	-ltasn1 -lhogweed -lnettle -lgmp -latomic -lz

static: vncsasl-static

vncsasl-static: vncsasl.c vncsasl.h fb-$(FB).c contrib/p11-kit-stub.c .fbstamp-$(FB)
	@missing=; for l in $(STATIC_LIBS:-l%=%); do \
	    case $$($(CC) -print-file-name=lib$$l.a) in /*) ;; \
	    *) missing="$$missing lib$$l.a" ;; esac; done; \
	    [ -z "$$missing" ] || { echo "make static: no static archive:$$missing" \
	    "(Debian: libunistring-dev libidn-dev libntlm0-dev libgssglue-dev)" >&2; exit 1; }
	$(CC) $(WARN) $(CFLAGS) $(CORE_CFLAGS) $(shell $(PKG_CONFIG) --cflags p11-kit-1) \
	    -static -o $@ vncsasl.c fb-$(FB).c contrib/p11-kit-stub.c $(STATIC_LIBS)

.PHONY: static

clean:
	rm -f vncsasl vncsasl-x11 vncsasl-asan vncsasl-static *.o .fbstamp-* $(TESTS) tests/fuzz-preauth tests/fuzz-postauth

.PHONY: all tests deps run check test install uninstall clean fuzz asan
