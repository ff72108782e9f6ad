#!/usr/bin/env python3
"""Write the seed corpus of fuzz-multi (tests/fuzz-corpus/multi/).

The program format is described at the top of the FUZZ_MULTI section of
tests/fuzz.c; the constants here must match it.  Run from the top of the
tree: python3 tests/fuzz-multi-seeds.py
"""
import os

(OPEN, WRITE, DSIZE, UPDATE, ENCS, PIXFMT, INPUT, TURN, CLOSE, KILL,
 RESIZE, SOURCE, GRAB, DRAIN, TIME, ANIM) = range(16)

# OPEN p: stage, then flags
RAW, AT_INIT, READY = 0, 1, 2
DS, EXTDS, CURSOR, VIEW, EXCL, REQ = 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
# OPEN q: pixel format 0-7, encoding << 3, version << 5, 0x80 compression
HEXTILE, ZRLE = 2 << 3, 3 << 3
V37, V33 = 1 << 5, 2 << 5
# size classes (fz_sizes)
S128x96, S1024x768, S1024x1024, S640x480, S129x97 = 0, 1, 2, 3, 4
S200x500, S500x200, S320x240, S127x95, S2048x2048 = 5, 6, 7, 8, 9
S256x192, S1024x96, S128x1024, S65x65, S0x0, S192x160 = range(10, 16)
ONE_SCREEN = 1 << 4
WITH_FRAME = 1 << 4     # RESIZE: and report a new frame in the same call


def op(code, k=0, *args):
    return bytes([code | k << 4, *args])


def turn(n=1):
    return op(TURN) * n


SEEDS = {
    # Finding 1 of issue 11, as the audit found it: a viewer with
    # ExtendedDesktopSize asks for a bigger desktop while another that
    # never announced DesktopSize waits for an update, and the picture
    # moves (the default dummy animates): the turn's grab marks damage at
    # the new size in the dead viewer's old tile map.
    "finding1-resize-overflow":
        op(OPEN, 0, READY | EXTDS | REQ, 0) +
        op(OPEN, 1, READY | REQ, 0) +
        op(DSIZE, 0, ONE_SCREEN | S1024x768) +
        op(ANIM) + turn(2),
    # The same when the picture is still but the requester moves the
    # pointer after its SetDesktopSize, in the same turn.
    "finding1-resize-pointer":
        op(OPEN, 0, READY | EXTDS | REQ, 0) +
        op(OPEN, 1, READY | REQ, 3 | HEXTILE) +
        op(DSIZE, 0, ONE_SCREEN | S256x192) +
        op(INPUT, 0, 0, 40, 30) +
        turn(2),
    # The same from a view-only session (findings 1 and 2).
    "finding1-viewonly-requester":
        op(OPEN, 1, READY | REQ, 3 | HEXTILE) +
        op(OPEN, 0, READY | EXTDS | VIEW | REQ, ZRLE) +
        op(DSIZE, 0, ONE_SCREEN | S1024x1024) +
        op(ANIM) + turn(2),
    # Finding 1 as libFuzzer found it from an empty corpus through the
    # viewers' bytes alone (FUZZ_MULTI_NOSOURCE=1, 23 s; its requester
    # was view-only, made a full viewer here so that this is finding 1
    # whether or not the view-only check runs): a viewer asks for
    # exclusive access and 320x240 with two screens, a viewer without
    # DesktopSize connects, the end's animated turn resizes and grabs.
    "finding1-found-by-fuzzer":
        bytes.fromhex("20df01 2267 000246 fc 6000"),
    # Finding 1 with no attacker: the source grows (an X RandR change)
    # and reports damage while a viewer without DesktopSize is listed.
    "source-grow-no-desktopsize":
        op(OPEN, 0, READY | REQ, 5) +
        op(RESIZE, 0, S1024x768) +
        op(GRAB) +
        turn(2),
    # ... all in one source call, as fb-x11's grab() finds a RandR change
    # and reports the new frame.
    "source-grow-one-call":
        op(OPEN, 2, READY | EXTDS | REQ, 1) +
        op(OPEN, 3, READY, 4) +
        op(RESIZE, 0, WITH_FRAME | S640x480),
    # ... and with viewers that follow, one that cannot, turns between.
    "source-resizes-followers":
        op(OPEN, 0, READY | DS | REQ, 3 | ZRLE) +
        op(OPEN, 1, READY | EXTDS | CURSOR | REQ, 1 | HEXTILE) +
        op(OPEN, 2, READY | REQ, 6) +
        turn(1) +
        op(RESIZE, 0, S640x480) + turn(2) +
        op(UPDATE, 0, 1) + op(UPDATE, 1, 1) +
        op(SOURCE, 0, 0, 70, 50) + turn(2) +
        op(RESIZE, 0, S129x97) + op(GRAB) + op(ANIM) +
        op(RESIZE, 0, S200x500) + op(ANIM, 0) * 2 +
        op(UPDATE, 0, 0) + op(UPDATE, 1, 0) + turn(2),
    # Finding 2: a view-only viewer asks for a new size ...
    "finding2-viewonly-dsize":
        op(OPEN, 0, READY | DS | REQ, 0) +
        op(OPEN, 1, READY | EXTDS | VIEW | REQ, 2) +
        op(DSIZE, 1, ONE_SCREEN | S320x240) +
        turn(2),
    # ... or for exclusive access (ClientInit shared=0).
    "finding2-viewonly-exclusive":
        op(OPEN, 0, READY | DS | REQ, 0) +
        op(OPEN, 1, READY | VIEW | EXCL | REQ, 4) +
        turn(2),
    # Every pixel format and encoding at once, cursor and clipboard too.
    "formats-encodings":
        op(OPEN, 0, READY | DS | CURSOR | REQ, 0 | ZRLE | 0x80) +
        op(OPEN, 1, READY | EXTDS | REQ, 3 | HEXTILE) +
        op(OPEN, 2, READY | DS | CURSOR | REQ, 5 | ZRLE | V37) +
        op(OPEN, 3, READY | EXTDS | REQ, 7 | V33) +
        op(SOURCE, 0, 2, 0x0f, 5) + op(ANIM) * 2 +
        op(PIXFMT, 0, 6) + op(ENCS, 1, 3 | 8 | 16 | 32 | 0x80) +
        op(UPDATE, 0, 0) + op(UPDATE, 1, 1) + op(UPDATE, 2, 1) +
        op(UPDATE, 3, 4) +
        op(INPUT, 1, 0, 20, 20) + op(INPUT, 2, 2, 1, 3) + turn(2) +
        op(DSIZE, 1, ONE_SCREEN | S500x200) + turn(3),
    # A viewer that stops reading: backpressure, the output limit, -D.
    "slow-viewer":
        op(OPEN, 0, READY | DS | REQ, 2) +
        op(OPEN, 1, READY | DS | REQ, 0) +
        op(DRAIN, 1, 0) +
        op(RESIZE, 0, S1024x1024) + turn(2) +
        op(UPDATE, 0, 0) + op(UPDATE, 1, 0) + turn(2) +
        op(UPDATE, 1, 0) + turn(1) +
        op(TIME, 0, 3) + turn(1) +
        op(DRAIN, 1, 1) + turn(1),
    # Handshakes written byte by byte beside a running session; one
    # viewer waits at ClientInit while the desktop changes size.
    "handshakes":
        op(OPEN, 0, READY | DS | REQ, 0) +
        op(OPEN, 1, RAW, 0) +
        op(WRITE, 1, 12) + b"RFB 003.008\n" + turn(1) +
        op(WRITE, 1, 1) + b"\x02" + turn(1) +
        op(WRITE, 1, 16) + bytes(16) + turn(1) +
        op(OPEN, 2, AT_INIT | VIEW, 0) +
        op(RESIZE, 0, S320x240) + turn(1) +
        op(WRITE, 2, 1) + b"\x01" + turn(1) +
        op(TIME, 0, 1) + turn(1) +
        op(OPEN, 3, RAW, 0) + op(TIME, 0, 2) + turn(1),
    # Viewers going away at every moment: hang-up, half-close, a server
    # failure left listed while the desktop changes, a slot reused.
    "hangups":
        op(OPEN, 0, READY | DS | REQ, 0) +
        op(OPEN, 1, READY | EXTDS | REQ, 1) +
        op(OPEN, 2, READY | REQ, 2) +
        op(KILL, 2) + op(RESIZE, 0, S1024x768) + op(GRAB) +
        op(CLOSE, 0, 0) + op(OPEN, 0, READY | DS | REQ, 3) +
        op(CLOSE, 1, 1) + turn(2) +
        op(DSIZE, 0, ONE_SCREEN | S128x96) + turn(2),
}


def main():
    top = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "fuzz-corpus", "multi")
    os.makedirs(top, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(top, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
