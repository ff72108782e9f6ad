#!/usr/bin/python3
"""Freshness of the picture over a slow link: request/response against
ContinuousUpdates with fence answers (paced by the window) and without
(a viewer that never answers: paced by its queue only).  A measurement
for tests/cu-link.sh, not a test: it prints figures.

    cu-link.py PORT MODE SECS T0 FPS [ENCODING]
      MODE  rr | cu | deaf
      T0    CLOCK_MONOTONIC seconds at which the server started (frame 0
            of fb-dummy is no earlier, so ages are upper bounds by the
            server's start-up time, a few ms)

ENCODING 0 (Raw, the default) or 16 (ZRLE, small updates).  For each
update: the frame number shown (fb-dummy's status strip) and its age on
arrival = now - (T0 + frame / FPS).  Prints one line:
    MODE updates/s age-median age-p90 age-max (ms) KB/update
"""
import os
import socket
import struct
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rfb import login_none, server_init, set_encodings, request  # noqa: E402


def frame_of(fb, w):
    cols = w // 8
    f = 0
    for i in range(32):
        x, y = (i % cols) * 8 + 4, (i // cols) * 8 + 4
        f = f << 1 | (fb[(y * w + x) * 4 + 1] > 128)
    return f


def zrle_rect(c, z, fb, w, x0, y0, rw, rh):
    """Decode a ZRLE rectangle (32 bpp, 3-byte cpixels) into fb, only the
    tiles that hold the status strip's top rows; the rest is parsed past."""
    raw = c.recv(c.u32())
    data = z.decompress(raw)
    i = 0
    for ty in range(y0, y0 + rh, 64):
        for tx in range(x0, x0 + rw, 64):
            tw, th = min(64, x0 + rw - tx), min(64, y0 + rh - ty)
            keep = ty < 64
            sub = data[i]
            i += 1
            px = []
            if sub == 0:
                px = [data[i + 3 * k:i + 3 * k + 3] for k in range(tw * th)]
                i += 3 * tw * th
            elif sub == 1:
                px = [data[i:i + 3]] * (tw * th)
                i += 3
            elif sub <= 16:
                pal = [data[i + 3 * k:i + 3 * k + 3] for k in range(sub)]
                i += 3 * sub
                bits = 1 if sub == 2 else 2 if sub <= 4 else 4
                rowb = (tw * bits + 7) // 8
                for yy in range(th):
                    row = data[i + yy * rowb:i + (yy + 1) * rowb]
                    for xx in range(tw):
                        b = xx * bits
                        px.append(pal[(row[b // 8] >> (8 - bits - b % 8)) & ((1 << bits) - 1)])
                i += rowb * th
            else:
                pal = []
                if sub > 128:
                    pal = [data[i + 3 * k:i + 3 * k + 3] for k in range(sub - 128)]
                    i += 3 * (sub - 128)
                while len(px) < tw * th:
                    if pal:
                        idx = data[i]
                        i += 1
                        v = pal[idx & 127]
                        if not idx & 128:
                            px.append(v)
                            continue
                    else:
                        v = data[i:i + 3]
                        i += 3
                    n = 1
                    while True:
                        b = data[i]
                        i += 1
                        n += b
                        if b != 255:
                            break
                    px.extend([v] * n)
            if keep:
                for yy in range(th):
                    for xx in range(tw):
                        o = ((ty + yy) * w + tx + xx) * 4
                        fb[o:o + 3] = px[yy * tw + xx]
    return 4 + len(raw)


def main():
    port, mode, secs = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    t0, fps = float(sys.argv[4]), int(sys.argv[5])
    c = login_none(port)
    c.s.settimeout(30)
    w, h, _, _ = server_init(c)
    fb = bytearray(w * h * 4)
    enc = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    z = zlib.decompressobj()
    set_encodings(c, [enc, -312, -313] if mode != "rr" else [enc])
    request(c, 0, 0, 0, w, h)
    ages, nbytes, n, cu = [], 0, 0, False
    start = time.monotonic()
    warm = 6.0 if mode == "deaf" else 2.0
    while time.monotonic() - start < warm + secs:
        t = c.u8()
        if t == 248:
            c.recv(3)
            flags = c.u32()
            data = c.recv(c.u8())
            if mode == "cu":
                c.send(struct.pack(">B3xIB", 248, flags & 3, len(data)) + data)
            continue
        if t == 150:
            continue
        assert t == 0, t
        c.recv(1)
        size = 4
        for _ in range(c.u16()):
            x, y, rw, rh, e = struct.unpack(">HHHHi", c.recv(12))
            if e == 16:
                size += 12 + zrle_rect(c, z, fb, w, x, y, rw, rh)
                continue
            data = c.recv(rw * rh * 4)
            size += 12 + len(data)
            for row in range(rh):
                o = ((y + row) * w + x) * 4
                fb[o:o + rw * 4] = data[row * rw * 4:(row + 1) * rw * 4]
        now = time.monotonic()
        if mode == "rr":
            request(c, 1, 0, 0, w, h)
        elif not cu:
            c.send(struct.pack(">BBHHHH", 150, 1, 0, 0, w, h))
            cu = True
        if now - start >= warm:
            ages.append((now - (t0 + frame_of(fb, w) / fps)) * 1000)
            nbytes += size
            n += 1
    ages.sort()
    pick = lambda q: ages[min(len(ages) - 1, int(q * len(ages)))] if ages else -1
    print("%-4s %5.1f updates/s  age ms: median %4.0f  p90 %5.0f  max %5.0f  %4.0f KB/update"
          % (mode, n / secs, pick(0.5), pick(0.9), pick(1.0), nbytes / max(n, 1) / 1024))


if __name__ == "__main__":
    main()
