#!/usr/bin/python3
"""Hostile clients against vncsasl: every known VNC-server bug class.

Each case opens fresh connections, misbehaves, and then checks that the
server still serves a well-behaved viewer (None login, a full frame whose
every pixel is checked).  One line per case, then "N passed, N failed".

    hostile.py SERVER_PID TCP_PORT UNIX_SOCKET
The server runs with -s none,vnc,tlssasl,sasl (type 20 only on the UNIX
socket), a moving dummy screen, and -o fail-delay=1 so that the failed-login
case stays short.  Every wait is bounded.
"""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rfb  # noqa: E402
from rfb import Conn, check, version, sectypes, server_init  # noqa: E402

PID, PORT, SOCK = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
NATIVE = (32, 0, 255, 255, 255, 16, 8, 0)
results = [0, 0]


def rss_kib():
    with open("/proc/%d/status" % PID) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def well_behaved():
    """The server still works: a whole verified frame, within seconds."""
    c = rfb.login_none(PORT)
    server_init(c)
    rfb.full_frame(c, 32, NATIVE)
    c.close()


def src(addr):
    """A connection from another loopback address (Linux: all of 127/8)."""
    c = Conn.__new__(Conn)
    c.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.s.settimeout(5)
    c.s.bind((addr, 0))
    c.s.connect(("127.0.0.1", PORT))
    return c


def case(name):
    def wrap(fn):
        def run():
            try:
                fn()
                well_behaved()
                print("ok hostile-" + name)
                results[0] += 1
            except Exception as e:
                print("FAIL hostile-%s: %s: %s" % (name, type(e).__name__, e))
                results[1] += 1
            sys.stdout.flush()
        CASES.append(run)
        return fn
    return wrap


CASES = []


def after_init():
    c = rfb.login_none(PORT)
    server_init(c)
    return c


@case("garbage-and-unknown-versions")
def _():
    for v in (os.urandom(12), b"RFB 004.001\n", b"RFB 003.010\n", b"RFB 999.999\n",
              b"\xff" * 12, b"RFB 003.008\r\n"[:12]):
        c = Conn(PORT)
        c.recv(12)
        c.send(v)
        check(c.closes(), "%r kept open" % v)


@case("unoffered-security-type")
def _():
    for t in (0, 2, 20, 255):
        c = Conn(PORT)
        version(c)
        check(t not in sectypes(c) or t == 2, "type list")
        if t == 2:
            continue
        c.send(bytes([t]))
        check(c.u32() == 1, "type %d accepted" % t)


@case("closing-at-every-step")
def _():
    steps = [b"", b"RFB 00", b"RFB 003.008\n", b"RFB 003.008\n\x13",
             b"RFB 003.008\n\x13\x00\x02", b"RFB 003.008\n\x13\x00\x02\x00\x00\x01\x08",
             b"RFB 003.008\n\x13\x00\x02\x00\x00\x01\x08\x16\x03\x01",
             b"RFB 003.008\n\x02", b"RFB 003.008\n\x01", b"RFB 003.008\n\x01\x01",
             b"RFB 003.008\n\x01\x01\x03\x00\x00\x00"]
    for st in steps:
        c = Conn(PORT)
        c.recv(12)
        c.send(st)
        time.sleep(0.05)
        c.close()
    for st in (b"", b"\x00\x00", b"\x00\x00\x00\x0dSCRAM-SHA-256\x00\x00\x00\x05n,"):
        c, _ = rfb.sasl_start(SOCK)
        c.send(st)
        c.close()


@case("one-byte-per-second")
def _():
    c = Conn(PORT)
    c.recv(12)
    for b in b"RFB 0":                  # 5 s, bounded; others keep working
        c.send(bytes([b]))
        well_behaved()
        time.sleep(1)
    c.close()


@case("sasl-lengths")
def _():
    for payload in (struct.pack(">I", 0), struct.pack(">I", 1) + b"S",
                    struct.pack(">I", 101) + b"S" * 101, struct.pack(">I", 0xFFFFFFFF)):
        c, _ = rfb.sasl_start(SOCK)
        c.send(payload)
        check(c.closes(), "mechname %r kept open" % payload[:8])
    mech = struct.pack(">I", 13) + b"SCRAM-SHA-256"
    for n in (65537, 0xFFFFFFFF):
        c, _ = rfb.sasl_start(SOCK)
        c.send(mech + struct.pack(">I", n))
        check(c.closes(), "data length %d kept open" % n)
    for data in (struct.pack(">I", 0), struct.pack(">I", 1) + b"\0",
                 struct.pack(">I", 6) + b"n,,n=x"):      # NULL, "", no NUL pad
        c, _ = rfb.sasl_start(SOCK)
        c.send(mech + data)
        c.closes(2)                     # any answer; the server must live


@case("vencrypt-bad-version-subtype-tls-garbage")
def _():
    for ver in (b"\x00\x01", b"\x01\x02", b"\xff\xff"):
        c, subs = rfb.vencrypt(PORT, ver)
        check(subs is None and c.closes(), "VeNCrypt %r accepted" % ver)
    for sub in (0, 256, 263, 0xFFFFFFFF):
        c, subs = rfb.vencrypt(PORT)
        c.send(struct.pack(">I", sub))
        check(c.u8() == 0 and c.closes(), "subtype %d accepted" % sub)
    c, subs = rfb.vencrypt(PORT)
    c.send(struct.pack(">I", 264))
    check(c.u8() == 1, "TLSSASL refused")
    # a whole handshake record whose ClientHello is nonsense: refused now
    c.send(b"\x16\x03\x01\x00\x10" + b"\x01\x00\x00\x0c" + bytes(12))
    check(c.closes(), "TLS garbage kept open")
    # random bytes may announce a record longer than what follows: GnuTLS
    # then waits for the rest, and the handshake deadline ends it; the
    # server only has to stay well (checked after every case)
    c, subs = rfb.vencrypt(PORT)
    c.send(struct.pack(">I", 264))
    check(c.u8() == 1, "TLSSASL refused")
    c.send(os.urandom(1024))
    c.close()


@case("set-pixel-format-absurd")
def _():
    for f in ((0, 24, 0, 255, 255, 255, 16, 8, 0), (7, 8, 0, 7, 7, 3, 0, 3, 6),
              (64, 24, 0, 255, 255, 255, 16, 8, 0), (32, 24, 0, 255, 255, 255, 200, 8, 0),
              (8, 8, 0, 0xFFFF, 0xFFFF, 0xFFFF, 0, 0, 0), (32, 24, 0, 0, 0, 0, 0, 0, 0),
              (16, 16, 0, 31, 63, 31, 255, 255, 255)):
        c = after_init()
        rfb.set_pixel_format(c, *f)
        check(c.closes(), "%r accepted" % (f,))


@case("set-encodings-65535-and-truncated")
def _():
    c = after_init()
    c.send(struct.pack(">BxH", 2, 65535) + b"\0" * 4000)
    check(c.closes(), "65535 encodings accepted")
    c = after_init()
    c.send(struct.pack(">BxH", 2, 10) + b"\0" * 12)     # 3 of 10, then gone
    c.close()


@case("update-request-outside-and-empty")
def _():
    c = after_init()
    for x, y, w, h in ((5000, 5000, 10, 10), (0, 0, 0, 0), (1023, 767, 65535, 65535),
                       (65535, 65535, 65535, 65535), (0, 0, 1, 0)):
        rfb.request(c, 0, x, y, w, h)
    rfb.request(c, 0)
    deadline = time.time() + 5
    while time.time() < deadline:
        kind, rects = rfb.read_update(c, 32)
        check(all(x + w <= 1024 and y + h <= 768 for x, y, w, h, e in rects if e == 0),
              "rectangle outside the screen: %r" % rects)
        if any(w == 1024 for x, y, w, h, e in rects):
            break


@case("cut-text-4gib")
def _():
    c = after_init()
    c.send(struct.pack(">B3xI", 6, 0xFFFFFFFF) + b"x" * 1000)
    check(c.closes(), "4 GiB ClientCutText kept open")
    c = after_init()
    c.send(struct.pack(">B3xI", 6, 0x80000000))        # "extended" sign bit
    check(c.closes(), "negative ClientCutText kept open")


@case("unknown-message-types")
def _():
    for t in (1, 7, 8, 9, 127, 150, 248, 250, 252, 253, 255):
        c = after_init()
        c.send(bytes([t]) + bytes(40))
        check(c.closes(), "message type %d kept open" % t)


@case("key-and-pointer-floods")
def _():
    c = after_init()
    burst = (struct.pack(">BBxxI", 4, 1, 0x61) + struct.pack(">BBxxI", 4, 0, 0x61)) * 50000
    burst += struct.pack(">BBHH", 5, 0, 10, 10) * 100000
    t = threading.Thread(target=c.s.sendall, args=(burst,), daemon=True)
    t.start()
    t.join(60)
    check(not t.is_alive(), "flood not consumed in 60 s")
    c.s.settimeout(60)                  # sanitizer builds are slower
    rfb.full_frame(c, 32, NATIVE)       # the flooder itself still gets frames


@case("never-reading-client-memory-bounded")
def _():
    before = rss_kib()
    c = after_init()
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    for _ in range(2000):
        rfb.request(c, 0)               # full frames asked for, never read
    time.sleep(4)                       # the screen moves at 30 frames/s
    grown = rss_kib() - before
    check(grown < 48 * 1024, "server RSS grew by %d KiB" % grown)
    print("    (server RSS %d KiB -> %d KiB with a stuck viewer)" % (before, before + grown))
    c.close()


@case("200-half-open-connections")
def _():
    held = []
    try:
        for i in range(200):            # 25 addresses x 8: every cap is hit
            try:
                c = src("127.0.0.%d" % (2 + i // 8))
                c.recv(12)
                held.append(c)
            except (OSError, rfb.Closed):
                pass                    # refused at a cap: as intended
        well_behaved()                  # while they are all still open
    finally:
        for c in held:
            c.close()


@case("parallel-failed-logins")
def _():
    """Failed logins from one address take turns: 4 connections at a time
    get no more guesses than one after the other.  The server runs with
    -o fail-delay=1: after failure k the address's next attempt waits
    min(0.25 * 2^(k-1), 1) s before the server even sends its challenge."""
    ends = []
    lock = threading.Lock()

    def attempt(k):
        for _ in range(k):
            c = src("127.0.0.99")
            c.s.settimeout(25)
            version(c)
            sectypes(c)
            c.send(b"\x02")
            c.recv(16)                  # arrives when it is our turn
            c.send(bytes(16))
            r = c.u32()
            with lock:
                ends.append(time.time())
            check(r == 1, "wrong response accepted")
            c.close()
    threads = [threading.Thread(target=attempt, args=(3,), daemon=True)
               for i in range(4)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    n = len(ends)
    check(n == 12, "only %d of 12 attempts finished" % n)
    want = sum(min(0.25 * 2 ** k, 1.0) for k in range(n - 1))
    span = max(ends) - min(ends)
    check(span >= 0.9 * want, "12 failures in %.1f s: not taking turns "
          "(documented delays add up to %.1f s)" % (span, want))
    t1 = time.time()
    well_behaved()                      # another address is not slowed
    check(time.time() - t1 < 2, "a good viewer from another address was slowed")
    print("    (12 failures from one address, 4 at a time, in %.1f s; "
          "the delays add up to %.1f s)" % (t1 - t0, want))


EXT_CLIP, QEMU_KEY = -1063131698, -258


def ext_session():
    """A viewer with the Extended Clipboard and QEMU key events: reads the
    server's caps and the QEMU pseudo-rectangle that SetEncodings brings."""
    c = after_init()
    rfb.set_encodings(c, [0, EXT_CLIP, QEMU_KEY])
    got = set()
    while got != {"caps", "qemu"}:
        t = c.u8()
        if t == 3:
            c.recv(3)
            n = struct.unpack(">i", c.recv(4))[0]
            check(n < 0, "Latin-1 cut text before the caps")
            flags = c.u32()
            c.recv(-n - 4)
            check(flags & (1 << 24) and flags & 1, "caps flags 0x%08x" % flags)
            got.add("caps")
        else:
            check(t == 0, "message %d" % t)
            c.recv(1)
            for _ in range(c.u16()):
                x, y, w, h, e = struct.unpack(">HHHHi", c.recv(12))
                check(e == QEMU_KEY and w == 0 and h == 0, "rect %r" % ((x, y, w, h, e),))
            got.add("qemu")
    return c


def ext_cut(flags, data=b""):
    return struct.pack(">B3xiI", 6, -(4 + len(data)), flags) + data


@case("extended-clipboard-and-qemu-abuse")
def _():
    import zlib
    provide = (1 << 28) | 1
    # a size over the limit is not inflated at all; a stream that would
    # inflate to 64 MiB is inflated only to the size it declares
    before = rss_kib()
    for size, payload in ((0x7fffffff, b"x" * 100), (2 * 1048576 + 1, bytes(64 << 20))):
        c = ext_session()
        c.send(ext_cut(provide, zlib.compress(struct.pack(">I", size) + payload, 9)))
        rfb.request(c, 0)
        deadline = time.time() + 10
        while time.time() < deadline:
            if c.u8() == 0:
                break
        c.close()
    grown = rss_kib() - before
    check(grown < 32 * 1024, "server RSS grew by %d KiB" % grown)
    bad = [ext_cut(provide, b"not zlib at all"),                    # bad stream
           ext_cut(provide, zlib.compress(struct.pack(">I", 50) + b"short")),  # short
           ext_cut((1 << 25) | (1 << 27) | 1),                       # two actions
           ext_cut(1),                                               # no action
           struct.pack(">B3xi", 6, -3) + b"abc",                      # under 4 bytes
           struct.pack(">B3xi", 6, -(2 * 1048576 + 65537)),           # over the limit
           struct.pack(">BBHII", 255, 1, 0, 0, 0),                   # QEMU audio
           ]
    for b in bad:
        c = ext_session()
        c.send(b)
        check(c.closes(), "%r kept open" % b[:12])
    # keycodes no keyboard has, keysym 0: nothing happens
    c = ext_session()
    c.send(b"".join(struct.pack(">BBHII", 255, 0, d, 0, k)
                    for k in (0, 0x7f, 0xff, 0x100, 0xffffffff) for d in (1, 0)))
    rfb.full_frame(c, 32, NATIVE)
    c.close()


def main():
    well_behaved()
    for run in CASES:
        run()
    print("%d passed, %d failed" % tuple(results))
    try:
        os.kill(PID, 0)
    except OSError:
        print("FAIL hostile-server-alive: the server died")


if __name__ == "__main__":
    main()
