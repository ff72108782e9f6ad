#!/usr/bin/python3
"""ContinuousUpdates and Fence, byte by byte (stdlib only; tests/rfb.py's
client).  Run by tests/t-cu.sh:

    cu.py STILL_PORT MOVING_PORT SERVER_PID MOVING_LOG [CASE...]

STILL_PORT serves a still 1024x768 dummy picture, MOVING_PORT one at 10
frames/s (its server's pid and log file for the never-answering-viewer
case).  Prints "ok NAME" or "FAIL NAME: why" per case; every socket
operation has a timeout.
"""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rfb  # noqa: E402
from rfb import (W, H, Conn, check, login_none, server_init, set_encodings,  # noqa: E402
                 set_pixel_format, request, verify)

ENC_FENCE, ENC_CU = -312, -313
REQUEST, BLOCK_BEFORE, BLOCK_AFTER, SYNC_NEXT = 1 << 31, 1, 2, 4
FMT32 = (32, 0, 255, 255, 255, 16, 8, 0)
FENCES_MAX = 16                 # vncsasl.c: our fences unanswered at once


def fence(c, flags, payload):
    c.send(struct.pack(">B3xIB", 248, flags, len(payload)) + payload)


def enable_cu(c, on, x=0, y=0, w=W, h=H):
    c.send(struct.pack(">BBHHHH", 150, on, x, y, w, h))


def offered(c):
    """SetEncodings with Fence and ContinuousUpdates: the server's first
    ServerFence (our ping: Request|BlockBefore, "vs" + number 0) and
    EndOfContinuousUpdates, exactly."""
    set_encodings(c, [0, ENC_FENCE, ENC_CU])
    got = c.recv(16)
    want = struct.pack(">B3xIB", 248, REQUEST | BLOCK_BEFORE, 6) + b"vs\0\0\0\0" + b"\x96"
    check(got == want, "offer: got %r want %r" % (got, want))
    return got[9:15]


class Reader:
    """Reads server messages; answers our server's fences unless deaf;
    applies raw rectangles to a 32-bpp picture."""

    def __init__(self, c, answer=True):
        self.c, self.answer = c, answer
        self.fb = bytearray(W * H * 4)
        self.updates = self.fences = self.eocu = 0
        self.rects = []             # (x, y, w, h, enc) of the last update
        self.log = []               # message kinds in order

    def one(self):
        c = self.c
        t = c.u8()
        if t == 248:
            c.recv(3)
            flags = c.u32()
            data = c.recv(c.u8())
            check(flags & REQUEST, "server fence without Request: noVNC drops the connection")
            self.fences += 1
            self.log.append("fence")
            if self.answer:
                fence(c, flags & (BLOCK_BEFORE | BLOCK_AFTER), data)
            return "fence", data
        if t == 150:
            self.eocu += 1
            self.log.append("eocu")
            return "eocu", None
        if t == 3:
            c.recv(3)
            return "cut", c.recv(c.u32())
        check(t == 0, "unexpected server message %d" % t)
        c.recv(1)
        self.rects = []
        for _ in range(c.u16()):
            x, y, w, h, e = struct.unpack(">HHHHi", c.recv(12))
            if e == 0:
                data = c.recv(w * h * 4)
                for row in range(h):
                    o = ((y + row) * W + x) * 4
                    self.fb[o:o + w * 4] = data[row * w * 4:(row + 1) * w * 4]
            elif e == -308:
                ns = c.u8()
                c.recv(3 + 16 * ns)
            elif e != -223:
                raise AssertionError("unexpected encoding %d" % e)
            self.rects.append((x, y, w, h, e))
        self.updates += 1
        self.log.append("update")
        return "update", self.rects

    def until(self, kind, secs=5.0):
        end = time.time() + secs
        while time.time() < end:
            k, v = self.one()
            if k == kind:
                return v
        raise AssertionError("no %s in %.1f s" % (kind, secs))

    def quiet(self, secs):
        """Read for secs; returns the kinds that came."""
        self.c.s.settimeout(0.2)
        got, end = [], time.time() + secs
        while time.time() < end:
            try:
                got.append(self.one()[0])
            except socket.timeout:
                pass
        self.c.s.settimeout(5.0)
        return got


def session(port, encs=None):
    c = login_none(port)
    server_init(c)
    return c


# ---- cases -----------------------------------------------------------

def case_offer_once(P):
    c = session(P["still"])
    ping = offered(c)
    # the same list again: no second offer; the next thing we read is
    # the answer to our own request fence
    set_encodings(c, [0, ENC_FENCE, ENC_CU])
    fence(c, REQUEST, b"next")
    got = c.recv(13)
    check(got == struct.pack(">B3xIB", 248, 0, 4) + b"next", "after a second SetEncodings: %r" % got)
    # answering the server's fence is accepted (the session goes on)
    fence(c, BLOCK_BEFORE, ping)
    fence(c, REQUEST, b"")
    check(c.recv(9) == struct.pack(">B3xIB", 248, 0, 0), "empty-payload fence echo")
    print("ok cu-offer-once-byte-exact")


def case_fence_echo(P):
    c = session(P["still"])
    # unknown flag bits are cleared, known ones kept, Request cleared
    fence(c, REQUEST | BLOCK_BEFORE | BLOCK_AFTER | 1 << 3 | 1 << 20, b"hello")
    check(c.recv(14) == struct.pack(">B3xIB", 248, 3, 5) + b"hello", "echo with flags 3")
    big = bytes(range(64))
    fence(c, REQUEST | BLOCK_AFTER, big)
    check(c.recv(9 + 64) == struct.pack(">B3xIB", 248, 2, 64) + big, "64-byte payload echo")
    print("ok cu-fence-echo-flags-cleared")


def case_sync_next(P):
    """SyncNext: the answer follows the next message's effect - here a
    SetPixelFormat, so the update after the answer is in the new format."""
    c = session(P["still"])
    fence(c, REQUEST | SYNC_NEXT | BLOCK_BEFORE, b"sync")
    set_pixel_format(c, 16, 16, 0, 31, 63, 31, 11, 5, 0)
    request(c, 0)
    got = c.recv(13)
    check(got == struct.pack(">B3xIB", 248, SYNC_NEXT | BLOCK_BEFORE, 4) + b"sync",
          "SyncNext answer %r" % got)
    check(c.u8() == 0, "an update after the answer")
    c.recv(1)
    fb = bytearray(W * H * 2)
    for _ in range(c.u16()):
        x, y, w, h, e = struct.unpack(">HHHHi", c.recv(12))
        check(e == 0, "raw")
        data = c.recv(w * h * 2)
        for row in range(h):
            o = ((y + row) * W + x) * 2
            fb[o:o + w * 2] = data[row * w * 2:(row + 1) * w * 2]
    verify(fb, (16, 0, 31, 63, 31, 11, 5, 0))
    # SyncNext then a fence: both answered, in order
    fence(c, REQUEST | SYNC_NEXT, b"a")
    fence(c, REQUEST, b"b")
    got = c.recv(20)
    check(got == struct.pack(">B3xIB", 248, 0, 1) + b"b" + struct.pack(">B3xIB", 248, SYNC_NEXT, 1) + b"a",
          "SyncNext over a fence: %r" % got)
    print("ok cu-sync-next-after-next-message")


def case_refusals(P):
    bad = [
        ("enable-without-offer", [0], lambda c: enable_cu(c, 1)),
        ("enable-without-fence", [0, ENC_CU], lambda c: enable_cu(c, 1)),
        ("payload-65", [0], lambda c: fence(c, REQUEST, bytes(65))),
        ("answer-to-nothing", [0], lambda c: fence(c, BLOCK_BEFORE, b"vs\0\0\0\0")),
        ("answer-wrong-payload", [0, ENC_FENCE], lambda c: (c.recv(15), fence(c, BLOCK_BEFORE, b"vs\0\0\0\1"))),
        ("answer-extra-flags", [0, ENC_FENCE], lambda c: (c.recv(15), fence(c, BLOCK_BEFORE | SYNC_NEXT, b"vs\0\0\0\0"))),
    ]
    for name, encs, act in bad:
        c = session(P["still"])
        set_encodings(c, encs)
        if encs == [0, ENC_CU]:
            fence(c, REQUEST, b"x")     # no EndOfContinuousUpdates without Fence
            check(c.recv(10) == struct.pack(">B3xIB", 248, 0, 1) + b"x", "offered CU without Fence")
        act(c)
        check(c.closes(), name + " accepted")
        print("ok cu-refuses-" + name)


def case_updates_without_requests(P):
    c = session(P["moving"])
    ping = offered(c)
    fence(c, BLOCK_BEFORE, ping)
    rd = Reader(c)
    request(c, 0)                   # the first picture, as TigerVNC asks
    rd.until("update")
    enable_cu(c, 1)
    t0 = time.time()
    rd.updates = 0
    f0 = int(verify(rd.fb, FMT32)["frame"])
    while time.time() - t0 < 2.0:
        rd.one()
    f1 = int(verify(rd.fb, FMT32)["frame"])    # every pixel right, and new
    check(rd.updates >= 10 and f1 - f0 >= 10,
          "%d updates, frames %d..%d in 2 s without a request" % (rd.updates, f0, f1))
    # each update is fenced: a ping before (measures) and after (acks)
    seq = "".join("u" if k == "update" else "f" for k in rd.log if k in ("update", "fence"))
    check("fuf" in seq and "uu" not in seq, "updates not between fences: %s" % seq[:60])
    # disable: EndOfContinuousUpdates at once, then nothing unasked
    enable_cu(c, 0)
    rd.until("eocu")
    got = rd.quiet(0.7)
    check("update" not in got, "updates after EndOfContinuousUpdates: %r" % got)
    request(c, 1)                   # asked again: one update
    rd.until("update")
    # disable when already off: EndOfContinuousUpdates again
    enable_cu(c, 0)
    rd.until("eocu")
    print("ok cu-updates-without-requests-%d-in-2s" % rd.updates)
    print("ok cu-disable-ends-them")


def case_big_first_frame_then_paced(P):
    """A slow fence answer while the first full frame is still on its way
    (the link's first round trip looks long), then ContinuousUpdates:
    updates must follow within the second.  (Regression: the first frame,
    sent on request, had no fence after it, so the window counted its
    megabytes as in flight for many seconds; make bench's TigerVNC
    profile got nothing in its first second.)"""
    c = session(P["moving"])
    ping = offered(c)
    rd = Reader(c)
    request(c, 0)                   # the first picture, 3 MiB of Raw
    time.sleep(0.3)                 # the answer comes late
    fence(c, BLOCK_BEFORE, ping)
    rd.until("update")
    enable_cu(c, 1)
    t0, rd.updates = time.time(), 0
    while time.time() - t0 < 1.0:
        rd.one()
    check(rd.updates >= 3, "%d updates in the second after enabling" % rd.updates)
    print("ok cu-big-first-frame-then-paced-%d-in-1s" % rd.updates)


def case_area(P):
    c = session(P["moving"])
    fence(c, BLOCK_BEFORE, offered(c))
    rd = Reader(c)
    request(c, 0)
    rd.until("update")
    ax, ay, aw, ah = 0, 0, W, 8     # the status strip's top row: the frame number
    enable_cu(c, 1, ax, ay, aw, ah)
    n, end = 0, time.time() + 1.5
    while time.time() < end:
        if rd.one()[0] != "update":
            continue
        n += 1
        for x, y, w, h, e in rd.rects:
            check(x < ax + aw and ax < x + w and y < ay + ah and ay < y + h,
                  "rect %r outside the area" % ((x, y, w, h),))
    check(n >= 5, "%d updates of the area in 1.5 s" % n)
    # a non-incremental request outside the area is honoured
    request(c, 0, 500, 600, 32, 32)
    end = time.time() + 3
    while time.time() < end:
        if rd.one()[0] == "update" and any(x <= 500 < x + w and y <= 600 < y + h
                                           for x, y, w, h, e in rd.rects):
            break
    else:
        raise AssertionError("non-incremental request outside the area not answered")
    print("ok cu-area-clipping-%d-updates" % n)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rr_rate(port, secs):
    """Frames a request/response viewer sees in secs."""
    c = session(port)
    rd = Reader(c)
    request(c, 0)
    rd.until("update")
    f0 = int(verify(rd.fb, FMT32)["frame"])
    end = time.time() + secs
    while time.time() < end:
        request(c, 1)
        rd.until("update")
    f1 = int(verify(rd.fb, FMT32)["frame"])
    c.close()
    return f1 - f0


def case_deaf(P):
    """A viewer that never answers fences: at most FENCES_MAX of them, no
    memory growth, others unaffected; after the timeout it is paced by its
    queue and gets updates again."""
    pid, log = P["pid"], P["log"]
    rss0 = rss_kb(pid)
    deaf = session(P["moving"])
    offered(deaf)                   # its first ping stays unanswered
    rd = Reader(deaf, answer=False)
    request(deaf, 0)
    rd.until("update")
    enable_cu(deaf, 1)
    # a second one that reads nothing at all
    mute = Conn(P["moving"])
    mute.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    mute.recv(12)
    mute.send(b"RFB 003.008\n")
    mute.recv(2)
    mute.send(b"\x01")
    mute.recv(4)
    server_init(mute)
    set_encodings(mute, [0, ENC_FENCE, ENC_CU])
    enable_cu(mute, 1)
    t0 = time.time()
    rate = rr_rate(P["moving"], 2.0)        # a normal viewer meanwhile
    check(rate >= 12, "a normal viewer saw %d frames in 2 s beside them" % rate)
    while time.time() - t0 < 4.0:
        rd.quiet(0.2)
    check(rd.fences <= FENCES_MAX, "%d fences unanswered (cap %d)" % (rd.fences, FENCES_MAX))
    before = rd.updates
    end = time.time() + 8
    while time.time() < end and "fences unanswered" not in open(log).read():
        rd.quiet(0.2)
    check("fences unanswered" in open(log).read(), "no fallback logged")
    rd.quiet(2.0)
    check(rd.updates - before >= 5, "after the fallback: %d updates in 2 s" % (rd.updates - before))
    check(rd.fences <= FENCES_MAX, "fences after the fallback: %d" % rd.fences)
    rss1 = rss_kb(pid)
    check(rss1 - rss0 < 24 * 1024, "server RSS grew %d KiB" % (rss1 - rss0))
    rate = rr_rate(P["moving"], 2.0)
    check(rate >= 12, "a normal viewer saw %d frames in 2 s after" % rate)
    deaf.close()
    mute.close()
    print("ok cu-deaf-viewer-%d-more-fences-rss+%dk-others-%d-fps" % (rd.fences, rss1 - rss0, rate // 2))


CASES = [case_offer_once, case_fence_echo, case_sync_next, case_refusals,
         case_updates_without_requests, case_big_first_frame_then_paced, case_area, case_deaf]


def xwd_check(path):
    """An xwd dump of TigerVNC's window: the dummy picture, every pixel
    (tests/dummyref); prints dummyref's line (the decoded frame number)."""
    b = open(path, "rb").read()
    hdr = struct.unpack(">25I", b[:100])
    hsize, w, h, order, bpp, bpl = hdr[0], hdr[4], hdr[5], hdr[7], hdr[11], hdr[12]
    masks, ncolors = hdr[14:17], hdr[19]
    check((w, h) == (W, H), "window %dx%d" % (w, h))
    check(bpp == 32 and masks == (0xff0000, 0xff00, 0xff), "xwd format %d bpp masks %r" % (bpp, masks))
    off = hsize + 12 * ncolors
    px = bytearray()
    for y in range(h):
        row = b[off + y * bpl:off + y * bpl + w * 4]
        px += row if order == 0 else b"".join(row[i:i + 4][::-1] for i in range(0, len(row), 4))
    st = verify(px, FMT32)
    print("ok frame=%s" % st["frame"])


def main():
    if sys.argv[1] == "--xwd":
        try:
            xwd_check(sys.argv[2])
        except Exception as e:
            print("FAIL %s" % e)
        return
    P = {"still": int(sys.argv[1]), "moving": int(sys.argv[2]),
         "pid": int(sys.argv[3]), "log": sys.argv[4]}
    rfb.run_cases(CASES, P, sys.argv[5:], "cu-")


if __name__ == "__main__":
    main()
