#!/usr/bin/python3
"""Encode once, send to many: N raw-protocol viewers with one pixel format
ask a still dummy screen for the whole picture at the same moment, twice;
every viewer must receive byte for byte the same update (the rectangles
are parsed to their boundaries: Tight's control bytes and lengths, ZRLE's
length).  Their decoding is left to the real viewers (t-shared.sh).

    shared.py PORT ENCODING N W H
Prints "ok NAME" or "FAIL NAME: why"; every socket has a timeout.
"""
import struct
import sys

import rfb

ENC = {"tight": 7, "zrle": 16, "hextile": 5}


def compact(c):
    b = c.u8()
    n, raw = b & 0x7f, bytes([b])
    if b & 0x80:
        b = c.u8()
        raw += bytes([b])
        n |= (b & 0x7f) << 7
        if b & 0x80:
            b = c.u8()
            raw += bytes([b])
            n |= b << 14
    return n, raw


def tight_rect(c, w, h, tpx):
    ctl = c.u8()
    out = bytes([ctl])
    kind = ctl >> 4
    if kind == 8:                       # fill
        return out + c.recv(tpx)
    if kind == 9:                       # JPEG
        n, raw = compact(c)
        return out + raw + c.recv(n)
    rfb.check(kind <= 7, "Tight control 0x%02x" % ctl)
    filt = 0
    if kind & 4:
        filt = c.u8()
        out += bytes([filt])
    if filt == 1:
        ncol = c.u8() + 1
        out += bytes([ncol - 1]) + c.recv(ncol * tpx)
        size = h * ((w + 7) // 8) if ncol == 2 else w * h
    else:
        rfb.check(filt in (0, 2), "Tight filter %d" % filt)
        size = w * h * tpx
    if size < 12:
        return out + c.recv(size)
    n, raw = compact(c)
    return out + raw + c.recv(n)


def hextile_rect(c, w, h, bpp):
    out = b""
    for ty in range(0, h, 16):
        for tx in range(0, w, 16):
            tw, th = min(16, w - tx), min(16, h - ty)
            s = c.u8()
            out += bytes([s])
            if s & 1:
                out += c.recv(tw * th * bpp)
                continue
            out += c.recv(bpp * (bool(s & 2) + bool(s & 4)))
            if s & 8:
                n = c.u8()
                out += bytes([n]) + c.recv(n * (2 + (bpp if s & 16 else 0)))
    return out


def update(c, enc, tpx, bpp):
    """One FramebufferUpdate as bytes (ServerCutText skipped)."""
    while True:
        t = c.u8()
        if t != 3:
            break
        c.recv(3)
        c.recv(c.u32())
    rfb.check(t == 0, "server message %d" % t)
    c.recv(1)
    n = c.u16()
    out = struct.pack(">H", n)
    for _ in range(n):
        hdr = c.recv(12)
        x, y, w, h, e = struct.unpack(">HHHHi", hdr)
        out += hdr
        if e == 7:
            out += tight_rect(c, w, h, tpx)
        elif e == 16:
            length = c.recv(4)
            out += length + c.recv(struct.unpack(">I", length)[0])
        elif e == 5:
            out += hextile_rect(c, w, h, bpp)
        elif e == 0:
            out += c.recv(w * h * bpp)
        else:
            rfb.check(e in (-223, -308, -239), "encoding %d" % e)
            rfb.check(e != -308, "ExtendedDesktopSize not asked for")
    return out


def main():
    port, enc, n, w, h = (int(sys.argv[1]), sys.argv[2], int(sys.argv[3]),
                          int(sys.argv[4]), int(sys.argv[5]))
    name = "shared-%s-%d-viewers" % (enc, n)
    try:
        conns = []
        for _ in range(n):
            c = rfb.login_none(port)
            sw, sh, _, _ = rfb.server_init(c)
            rfb.check((sw, sh) == (w, h), "screen %dx%d" % (sw, sh))
            rfb.set_pixel_format(c, 32, 24, 0, 255, 255, 255, 16, 8, 0)
            rfb.set_encodings(c, [ENC[enc]])
            conns.append(c)
        for turn in range(2):
            for c in conns:             # all asked before any is read
                rfb.request(c, 0, 0, 0, w, h)
            got = [update(c, enc, 3, 4) for c in conns]
            rfb.check(len(got[0]) > 100, "a short update")
            for i in range(1, n):
                rfb.check(got[i] == got[0], "viewer %d's update %d differs "
                          "from viewer 0's (%d and %d bytes)" %
                          (i, turn + 1, len(got[i]), len(got[0])))
        for c in conns:
            c.close()
        print("ok " + name)
    except Exception as e:
        print("FAIL %s: %s: %s" % (name, type(e).__name__, e))


if __name__ == "__main__":
    main()
