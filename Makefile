# vncsasl - see README.md.  make [FB=dummy|x11] [WERROR=1]
include config.mk

FB ?= dummy
ifeq ($(FB),x11)
FB_CFLAGS = $(X11_CFLAGS)
FB_LIBS = $(X11_LIBS)
else ifeq ($(FB),dummy)
FB_CFLAGS =
FB_LIBS =
else
$(error FB must be dummy or x11)
endif
ifeq ($(WERROR),1)
WARN += -Werror
endif

ALL_CFLAGS = $(WARN) $(CFLAGS) $(CORE_CFLAGS) $(FB_CFLAGS)
TEST_CFLAGS = -std=gnu99 -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -O2 -g -I.

all: vncsasl

# The source is part of the binary's identity: rebuild when FB changes.
.fbstamp-$(FB):
	rm -f .fbstamp-* vncsasl.o fb-*.o
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

tests/lvc: tests/lvc.c fb-dummy.c vncsasl.h
	$(CC) $(TEST_CFLAGS) -o $@ tests/lvc.c fb-dummy.c $(shell $(PKG_CONFIG) --cflags --libs libvncclient)

tests/gvnc: tests/gvnc.c fb-dummy.c vncsasl.h
	$(CC) $(TEST_CFLAGS) -o $@ tests/gvnc.c fb-dummy.c $(shell $(PKG_CONFIG) --cflags --libs gvnc-1.0)

tests/dummyref: tests/dummyref.c fb-dummy.c vncsasl.h
	$(CC) $(TEST_CFLAGS) -o $@ tests/dummyref.c fb-dummy.c

tests/cbclient: tests/cbclient.c
	$(CC) $(TEST_CFLAGS) -o $@ tests/cbclient.c $(shell $(PKG_CONFIG) --cflags --libs gnutls libgsasl)

tests/x11-%: tests/x11-%.c
	$(CC) $(TEST_CFLAGS) -o $@ $< $(X11_CFLAGS) $(X11_LIBS)

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

install: vncsasl
	mkdir -p $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANDIR)/man8
	cp vncsasl $(DESTDIR)$(PREFIX)/bin/vncsasl
	chmod 755 $(DESTDIR)$(PREFIX)/bin/vncsasl

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/vncsasl

clean:
	rm -f vncsasl vncsasl-x11 *.o .fbstamp-* $(TESTS)

.PHONY: all tests deps run check test install uninstall clean
