#!/usr/bin/python3
"""Backpressure: slow and stopped viewers beside a normal one (stdlib only).

    slowclients.py PORT SERVER_PID FPS STALL_SECS

Against a vncsasl -s none serving a moving dummy picture at FPS frames/s
with -D STALL_SECS, this connects one normal viewer (ZRLE, asks again as
soon as an update is in), then STOPPED viewers that ask for Raw updates
and never read, and SLOW viewers with a 4 KiB receive buffer that read a
little now and then.  Prints "ok NAME" / "FAIL NAME: why" for:

  normal-viewer-keeps-rate   the normal viewer still gets >= 80 % of FPS
                             while the others are stuck
  memory-bounded             the server's VmRSS grew by < 64 MiB (each
                             stuck viewer costs about one frame at most)
  stopped-viewers-dropped    each stopped viewer is closed after
                             STALL_SECS (the server logs why)
  slow-viewer-kept           a slow viewer that keeps reading stays
Every socket has a timeout; the whole run takes about 2 * STALL_SECS + 8 s.
"""
import socket
import struct
import sys
import threading
import time

STOPPED = 4
SLOW = 2
RSS_GROWTH_MAX = 64 << 20


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for %d" % pid)


class Viewer:
    def __init__(self, port, encodings, rcvbuf=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(10)
        self.s.connect(("127.0.0.1", port))
        self.recv(12)
        self.s.sendall(b"RFB 003.008\n")
        n = self.recv(1)[0]
        if 1 not in self.recv(n):
            raise RuntimeError("security type None not offered")
        self.s.sendall(b"\x01")
        if struct.unpack(">I", self.recv(4))[0] != 0:
            raise RuntimeError("security result not ok")
        self.s.sendall(b"\x01")                     # shared
        self.w, self.h = struct.unpack(">HH", self.recv(4))
        self.recv(16)
        self.recv(struct.unpack(">I", self.recv(4))[0])
        self.s.sendall(struct.pack(">BxH", 2, len(encodings)) +
                       b"".join(struct.pack(">i", e) for e in encodings))

    def recv(self, n):
        b = bytearray()
        while len(b) < n:
            d = self.s.recv(min(n - len(b), 1 << 20))
            if not d:
                raise EOFError("closed after %d of %d bytes" % (len(b), n))
            b += d
        return bytes(b)

    def request(self, incremental):
        self.s.sendall(struct.pack(">BBHHHH", 3, incremental, 0, 0,
                                   self.w, self.h))

    def update(self):
        """Read one server message; True if it was a FramebufferUpdate."""
        t = self.recv(1)[0]
        if t == 3:                                  # ServerCutText
            self.recv(3)
            self.recv(struct.unpack(">I", self.recv(4))[0])
            return False
        if t != 0:
            raise RuntimeError("unexpected server message %d" % t)
        self.recv(1)
        for _ in range(struct.unpack(">H", self.recv(2))[0]):
            x, y, w, h, e = struct.unpack(">HHHHi", self.recv(12))
            if e == 0:
                self.recv(w * h * 4)
            elif e == 16:
                self.recv(struct.unpack(">I", self.recv(4))[0])
            elif e == -308:
                self.recv(3 + 16 * self.recv(1)[0])
            elif e != -223:
                raise RuntimeError("unexpected encoding %d" % e)
        return True


def main():
    port, pid, fps, stall = (int(a) for a in sys.argv[1:5])
    normal = Viewer(port, [16])
    normal.request(0)
    normal.update()
    times = []
    stop = threading.Event()
    errors = []

    def run_normal():
        try:
            while not stop.is_set():
                normal.request(1)
                if normal.update():
                    times.append(time.monotonic())
        except Exception as e:      # reported below
            errors.append("normal viewer: %r" % e)

    t = threading.Thread(target=run_normal, daemon=True)
    t.start()
    time.sleep(1.0)
    rss0 = rss(pid)

    def backlogged(n):
        """n viewers with small receive buffers and 20 requests each"""
        vs = []
        for _ in range(n):
            v = Viewer(port, [0], rcvbuf=4096)
            for _ in range(20):
                v.request(0)
            vs.append(v)
        return vs

    stopped = backlogged(STOPPED)
    slow = backlogged(SLOW)

    # the stuck viewers sit there; the slow ones sip
    t0 = time.monotonic()
    rss_max = rss0
    slow_ok = True
    while time.monotonic() - t0 < stall + 3:
        for v in slow:
            try:
                v.s.settimeout(0.05)
                v.s.recv(1024)
            except socket.timeout:
                pass
            except OSError as e:
                slow_ok = False
                errors.append("slow viewer: %r" % e)
        rss_max = max(rss_max, rss(pid))
        time.sleep(0.1)
    stop.set()
    t.join(5)

    window = [x for x in times if t0 <= x <= t0 + stall + 3]
    rate = len(window) / (stall + 3)
    if rate >= 0.8 * fps and not any(e.startswith("normal") for e in errors):
        print("ok normal-viewer-keeps-rate (%.1f updates/s, workload %d)" % (rate, fps))
    else:
        print("FAIL normal-viewer-keeps-rate: %.1f updates/s, workload %d %s" % (rate, fps, errors))
    growth = rss_max - rss0
    if growth < RSS_GROWTH_MAX:
        print("ok memory-bounded (VmRSS %+.1f MiB with %d stuck viewers)" % (growth / 2**20, STOPPED + SLOW))
    else:
        print("FAIL memory-bounded: VmRSS grew by %.1f MiB" % (growth / 2**20))

    closed = 0
    for v in stopped:
        try:
            v.s.settimeout(5)
            while v.s.recv(1 << 20):
                pass
            closed += 1
        except (ConnectionResetError, BrokenPipeError):
            closed += 1
        except socket.timeout:
            pass
    if closed == STOPPED:
        print("ok stopped-viewers-dropped")
    else:
        print("FAIL stopped-viewers-dropped: %d of %d closed" % (closed, STOPPED))
    if slow_ok:
        print("ok slow-viewer-kept")
    else:
        print("FAIL slow-viewer-kept: %s" % errors)


if __name__ == "__main__":
    main()
