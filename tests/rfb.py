#!/usr/bin/python3
"""Raw-socket RFB protocol cases for vncsasl (stdlib only).

Run by tests/t-proto.sh with the servers it started:
    rfb.py NONE_PORT VNC_PORT UNIX_SOCKET MOVING_PORT [CASE...]
Prints "ok NAME" or "FAIL NAME: why" per case.  Every socket operation
has a timeout; no case waits more than a few seconds.
"""
import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DUMMYREF = os.path.join(TOP, "tests", "dummyref")
W, H = 1024, 768


class Closed(Exception):
    pass


class Conn:
    """where: a TCP port on host (127.0.0.1, or e.g. "::1"), or a UNIX
    socket path.  src: the source address (Linux lets a socket bind any
    127/8 address, and ::1): a test can be many peers at once."""
    def __init__(self, where, timeout=5.0, src=None, host="127.0.0.1"):
        if isinstance(where, str):
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.s = socket.socket(fam, socket.SOCK_STREAM)
            where = (host, where)
            if src is not None:
                self.s.bind((src, 0))
        self.s.settimeout(timeout)
        try:
            self.s.connect(where)
        except BaseException:
            self.s.close()
            raise

    def send(self, b):
        self.s.sendall(b)

    def recv(self, n):
        b = b""
        while len(b) < n:
            d = self.s.recv(n - len(b))
            if not d:
                raise Closed("server closed after %d of %d bytes" % (len(b), n))
            b += d
        return b

    def u8(self):
        return self.recv(1)[0]

    def u16(self):
        return struct.unpack(">H", self.recv(2))[0]

    def u32(self):
        return struct.unpack(">I", self.recv(4))[0]

    def closes(self, secs=3.0):
        """True if the server closes (EOF or reset) within secs, reading
        and discarding anything it still sends."""
        self.s.settimeout(secs)
        end = time.time() + secs
        try:
            while time.time() < end:
                if not self.s.recv(4096):
                    return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True     # reset, or TLS ended without close_notify
        return False

    def close(self):
        self.s.close()


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def version(c, v=b"RFB 003.008\n"):
    check(c.recv(12) == b"RFB 003.008\n", "greeting")
    c.send(v)


def sectypes(c):
    n = c.u8()
    if n == 0:
        raise AssertionError("no types: " + c.recv(c.u32()).decode())
    return list(c.recv(n))


def vencrypt(where, ver=b"\x00\x02", **kw):
    """Pick VeNCrypt and send its version.  Returns (conn, subtypes), or
    (conn, None) when the server refuses the version (its ack byte).
    kw: Conn's (src, host, timeout)."""
    c = Conn(where, **kw)
    version(c)
    check(19 in sectypes(c), "VeNCrypt not offered")
    c.send(bytes([19]))
    check(c.recv(2) == b"\x00\x02", "VeNCrypt 0.2")
    c.send(ver)
    if c.u8() != 0:
        return c, None
    return c, [c.u32() for _ in range(c.u8())]


# ---- VeNCrypt TLS (PROTOCOL.md 6.1) ------------------------------------

SUBTYPES = {"plain": 256, "tlsnone": 257, "tlsvnc": 258, "tlsplain": 259,
            "x509none": 260, "x509vnc": 261, "x509plain": 262,
            "x509sasl": 263, "tlssasl": 264}
ANON_SUBTYPES = (257, 258, 259, 264)


def tls_context(cafile=None, cert=None, key=None, version=None):
    """A client TLS context: anonymous (EC)DH when cafile is None (TLS 1.2
    at most: anonymous suites end there), else the server's certificate
    verified against cafile (host name 127.0.0.1), with cert/key as the
    client certificate.  version (an ssl.TLSVersion) pins one version;
    security level 0 lets OpenSSL speak TLS 1.0 and 1.1 at all."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers("aNULL:@SECLEVEL=0")
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        ctx.load_verify_locations(cafile)
        if version is not None and version < ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers("ALL:@SECLEVEL=0")
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    if version is not None:
        if cafile is None:
            ctx.set_ciphers("aNULL:@SECLEVEL=0")
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


def start_tls(c, ctx):
    """The TLS handshake on c's socket; c then reads and writes through it."""
    c.s = ctx.wrap_socket(c.s, server_hostname="127.0.0.1"
                          if ctx.check_hostname else None)
    return c


def vencrypt_tls(where, sub, ctx=None, **kw):
    """VeNCrypt up to an established TLS session in subtype sub (a number
    or a SUBTYPES name); ctx defaults to anonymous TLS.  kw: Conn's."""
    sub = SUBTYPES.get(sub, sub)
    c, subs = vencrypt(where, **kw)
    check(subs is not None and sub in subs, "subtype %d not offered: %r" % (sub, subs))
    c.send(struct.pack(">I", sub))
    check(c.u8() == 1, "subtype %d refused" % sub)
    return start_tls(c, ctx or tls_context())


def plain_login(c, user, password):
    """VeNCrypt Plain credentials (inside TLSPlain/X509Plain); returns the
    SecurityResult word (0 ok) and the failure reason."""
    c.send(struct.pack(">II", len(user), len(password)) + user + password)
    r = c.u32()
    return r, (c.recv(c.u32()) if r else b"")


def mechlist(c):
    """The SASL mechanism list the server sends first (type 20 framing)."""
    return c.recv(c.u32()).decode().split(",")


def login_none(where):
    c = Conn(where)
    version(c)
    check(1 in sectypes(c), "None not offered")
    c.send(b"\x01")
    check(c.u32() == 0, "SecurityResult")
    return c


def server_init(c, shared=1):
    c.send(bytes([shared]))
    w, h = struct.unpack(">HH", c.recv(4))
    pf = c.recv(16)
    name = c.recv(c.u32())
    return w, h, pf, name


def set_pixel_format(c, bpp, depth, be, rmax, gmax, bmax, rs, gs, bs, tc=1):
    c.send(struct.pack(">B3xBBBBHHHBBB3x", 0, bpp, depth, be, tc,
                       rmax, gmax, bmax, rs, gs, bs))


def set_encodings(c, encs):
    c.send(struct.pack(">BxH", 2, len(encs)) + b"".join(struct.pack(">i", e) for e in encs))


def request(c, incremental=0, x=0, y=0, w=W, h=H):
    c.send(struct.pack(">BBHHHH", 3, incremental, x, y, w, h))


def read_update(c, bpp, fb=None, width=W):
    """Read one server message; apply a FramebufferUpdate to fb (bytes
    per pixel = bpp/8, rows of width).  Returns (kind, info)."""
    t = c.u8()
    if t == 3:                      # ServerCutText
        c.recv(3)
        return "cut", c.recv(c.u32())
    check(t == 0, "unexpected server message %d" % t)
    c.recv(1)
    n = c.u16()
    rects = []
    bp = bpp // 8
    for _ in range(n):
        x, y, w, h, e = struct.unpack(">HHHHi", c.recv(12))
        if e == 0:
            data = c.recv(w * h * bp)
            if fb is not None:
                for row in range(h):
                    o = ((y + row) * width + x) * bp
                    fb[o:o + w * bp] = data[row * w * bp:(row + 1) * w * bp]
        elif e == -308:
            ns = c.u8()
            c.recv(3 + 16 * ns)
        elif e == -223:
            pass
        else:
            raise AssertionError("unexpected encoding %d" % e)
        rects.append((x, y, w, h, e))
    return "update", rects


def verify(fb, fmt, w=W, h=H):
    args = [DUMMYREF, str(w), str(h)] + [str(v) for v in fmt]
    p = subprocess.run(args, input=bytes(fb), capture_output=True, timeout=20)
    out = p.stdout.decode().strip()
    check(p.returncode == 0, "dummyref: " + out + p.stderr.decode())
    return dict(kv.split("=") for kv in out.split()[1:])


def full_frame(c, bpp, fmt, w=W, h=H):
    fb = bytearray(w * h * bpp // 8)
    request(c, 0, 0, 0, w, h)
    while True:
        kind, _ = read_update(c, bpp, fb, w)
        if kind == "update":
            return fb, verify(fb, fmt, w, h)


# ---- cases -----------------------------------------------------------

FORMATS = {
    # name: bpp depth bigendian rmax gmax bmax rshift gshift bshift
    "32le": (32, 24, 0, 255, 255, 255, 16, 8, 0),
    "32be": (32, 24, 1, 255, 255, 255, 16, 8, 0),
    "32bgr": (32, 24, 0, 255, 255, 255, 0, 8, 16),
    "32-10bit": (32, 30, 0, 1023, 1023, 1023, 20, 10, 0),
    "16le-565": (16, 16, 0, 31, 63, 31, 11, 5, 0),
    "16be-565": (16, 16, 1, 31, 63, 31, 11, 5, 0),
    "16le-555": (16, 15, 0, 31, 31, 31, 10, 5, 0),
    "8-bgr233": (8, 8, 0, 7, 7, 3, 0, 3, 6),
    "8-rgb332": (8, 8, 0, 7, 7, 3, 5, 2, 0),
    "8-rgb111": (8, 3, 0, 1, 1, 1, 2, 1, 0),
}


def case_pixel_formats(P):
    for name, f in FORMATS.items():
        c = login_none(P["none"])
        w, h, pf, _ = server_init(c)
        check((w, h) == (W, H), "size %dx%d" % (w, h))
        set_pixel_format(c, *f)
        fb, st = full_frame(c, f[0], (f[0], f[2]) + f[3:])
        c.close()
        print("ok pixel-format-%s" % name)


def case_server_init(P):
    c = login_none(P["none"])
    w, h, pf, name = server_init(c)
    check((w, h) == (W, H), "size")
    bpp, depth, be, tc, rm, gm, bm, rs, gs, bs = struct.unpack(">BBBBHHHBBB3x", pf)
    check((bpp, depth, tc, rm, gm, bm, rs, gs, bs) == (32, 24, 1, 255, 255, 255, 16, 8, 0),
          "pixel format %r" % (pf,))
    check(name == b"proto-test", "name %r" % name)
    fb, st = full_frame(c, 32, (32, be, 255, 255, 255, 16, 8, 0))


def case_versions(P):
    for v, minor in ((b"RFB 003.008\n", 8), (b"RFB 003.007\n", 7),
                     (b"RFB 003.003\n", 3), (b"RFB 003.005\n", 3),
                     (b"RFB 003.006\n", 3), (b"RFB 003.004\n", 3),
                     (b"RFB 003.889\n", 8)):
        c = Conn(P["none"])
        version(c, v)
        if minor == 3:
            check(c.u32() == 1, "%r: 3.3 server-chosen type should be None" % v)
        else:
            check(sectypes(c) == [1], "%r: type list" % v)
            c.send(b"\x01")
            if minor == 8:
                check(c.u32() == 0, "%r: SecurityResult" % v)
        w, h, _, _ = server_init(c)
        check((w, h) == (W, H), "%r: ServerInit" % v)
        c.close()
        print("ok version-%s" % v[4:11].decode())


def case_bad_versions(P):
    for v in (b"RFB 004.000\n", b"RFB 003.002\n", b"RFB 003.009\n"):
        c = Conn(P["none"])
        version(c, v)
        check(c.u32() == 0, "%r: want type 0 (invalid)" % v)
        reason = c.recv(c.u32())
        check(b"version" in reason, "reason %r" % reason)
        check(c.closes(), "%r: not closed" % v)
    for v in (b"GET / HTTP/1.0\r\n", b"RFB 003.00x\n", b"\x00" * 12):
        c = Conn(P["none"])
        c.recv(12)
        c.send(v)
        check(c.closes(), "%r: garbage not closed" % v)
    print("ok bad-versions")


def case_fragmented_greeting(P):
    c = Conn(P["none"])
    check(c.recv(12) == b"RFB 003.008\n", "greeting sent at once")
    c.send(b"RFB ")             # gtk-vnc's 2-second fallback does this
    time.sleep(0.3)
    c.send(b"003.")
    time.sleep(0.2)
    for ch in b"008\n":
        c.send(bytes([ch]))
        time.sleep(0.05)
    check(sectypes(c) == [1], "types after a fragmented version")
    c.send(b"\x01")
    check(c.u32() == 0, "result")
    print("ok fragmented-greeting")


def case_refused_type(P):
    # 3.8: failure with a reason; 3.7: failure, then close
    for v, reason in ((b"RFB 003.008\n", True), (b"RFB 003.007\n", False)):
        c = Conn(P["none"])
        version(c, v)
        sectypes(c)
        c.send(b"\x02")             # VNC auth was not offered
        check(c.u32() == 1, "want failure")
        if reason:
            r = c.recv(c.u32())
            check(r, "3.8 reason missing")
        check(c.closes(), "not closed")
    print("ok refused-security-type")


def case_vnc_auth_wrong(P):
    for v, minor in ((b"RFB 003.008\n", 8), (b"RFB 003.007\n", 7), (b"RFB 003.003\n", 3)):
        c = Conn(P["vnc"])
        version(c, v)
        if minor == 3:
            check(c.u32() == 2, "3.3: server should pick VNC auth")
        else:
            check(sectypes(c) == [2, 1], "types in -s order")
            c.send(b"\x02")
        chal = c.recv(16)
        check(len(set(chal)) > 4, "challenge looks random")
        c.send(bytes(16))
        check(c.u32() == 1, "wrong response accepted")
        if minor == 8:
            check(c.recv(c.u32()) == b"Authentication failed", "3.8 reason")
        check(c.closes(), "not closed")
        print("ok vnc-auth-wrong-%d" % minor)


def case_vnc_challenge_random(P):
    seen = set()
    for _ in range(3):
        c = Conn(P["vnc"])
        version(c)
        sectypes(c)
        c.send(b"\x02")
        seen.add(c.recv(16))
        c.close()
    check(len(seen) == 3, "challenges repeat")
    print("ok vnc-challenge-fresh")


def case_bad_pixel_formats(P):
    bad = {
        "colour-map": (8, 8, 0, 7, 7, 3, 0, 3, 6, 0),
        "bpp-24": (24, 24, 0, 255, 255, 255, 16, 8, 0, 1),
        "bpp-0": (0, 0, 0, 255, 255, 255, 16, 8, 0, 1),
        "bpp-64": (64, 24, 0, 255, 255, 255, 16, 8, 0, 1),
        "max-0": (32, 24, 0, 0, 255, 255, 16, 8, 0, 1),
        "max-not-2n-1": (32, 24, 0, 200, 255, 255, 16, 8, 0, 1),
        "shift-overflow": (16, 16, 0, 31, 63, 31, 12, 5, 0, 1),
    }
    for name, f in bad.items():
        c = login_none(P["none"])
        server_init(c)
        set_pixel_format(c, *f)
        check(c.closes(), "%s accepted" % name)
        print("ok bad-pixel-format-%s" % name)


def case_update_request_clipped(P):
    c = login_none(P["none"])
    server_init(c)
    request(c, 0, 1000, 700, 500, 500)          # runs off the screen
    kind, rects = read_update(c, 32)
    for x, y, w, h, e in rects:
        check(x + w <= W and y + h <= H, "rect %r outside the screen" % ((x, y, w, h),))
    request(c, 0, 5000, 5000, 10, 10)           # entirely outside
    request(c, 0, 0, 0, 8, 8)
    kind, rects = read_update(c, 32)
    check(all(x + w <= W and y + h <= H for x, y, w, h, e in rects), "clipping")
    print("ok update-request-clipped")


def case_unknown_message(P):
    c = login_none(P["none"])
    server_init(c)
    c.send(b"\x77" + bytes(16))
    check(c.closes(), "unknown message type accepted")
    print("ok unknown-message-closes")


def case_cut_text_limit(P):
    c = login_none(P["none"])
    server_init(c)
    c.send(struct.pack(">B3xI", 6, 0xFFFFFFFF))
    check(c.closes(), "ClientCutText of 4 GiB accepted")
    c = login_none(P["none"])
    server_init(c)
    set_encodings(c, [0] * 300)                 # over the named limit
    check(c.closes(), "SetEncodings with 300 entries accepted")
    print("ok declared-lengths-over-limits-close")


def state_of(c, bpp=32, fmt=(32, 0, 255, 255, 255, 16, 8, 0), fb=None):
    if fb is None:
        fb, st = full_frame(c, bpp, fmt)
        return fb, st
    request(c, 1)
    while True:
        kind, _ = read_update(c, bpp, fb)
        if kind == "update":
            return fb, verify(fb, fmt)


def case_input_reaches_source(P):
    c = login_none(P["none"])
    server_init(c)
    fb, st = state_of(c)
    c.send(struct.pack(">BBHH", 5, 1, 321, 123))            # pointer
    c.send(struct.pack(">BBxxI", 4, 1, 0x41) + struct.pack(">BBxxI", 4, 0, 0x41))
    c.send(struct.pack(">B3xI", 6, 5) + b"hello")
    deadline = time.time() + 5
    cut = None
    while time.time() < deadline:
        request(c, 1)
        kind, info = read_update(c, 32, fb)
        if kind == "cut":
            cut = info
            continue
        st = verify(fb, (32, 0, 255, 255, 255, 16, 8, 0))
        if st["ptr"] == "321,123" and st["key"] == "0x41" and st["ncut"] == "5" and cut:
            break
    check(st["ptr"] == "321,123" and st["buttons"] == "1", "pointer: %r" % st)
    check(st["key"] == "0x41" and int(st["nkeys"]) >= 1, "key: %r" % st)
    check(st["ncut"] == "5" and cut == b"hello", "cut text: %r %r" % (st, cut))
    print("ok input-reaches-source")


def case_desktop_size(P):
    a = login_none(P["none"])
    server_init(a)
    set_encodings(a, [0, -308])
    b = login_none(P["none"])
    server_init(b)
    set_encodings(b, [0, -223])
    request(a, 1)
    kind, rects = read_update(a, 32)     # first update announces the screen
    check(any(e == -308 for *_, e in rects), "ExtendedDesktopSize not announced")
    a.send(struct.pack(">BxHHBx", 251, 800, 600, 1) + struct.pack(">IHHHHI", 0, 0, 0, 800, 600, 0))
    request(a, 1)                   # the answer comes in an update
    got = None
    for _ in range(5):
        kind, rects = read_update(a, 32)
        for x, y, w, h, e in rects:
            if e == -308 and x == 1:
                got = (y, w, h)
        if got:
            break
    check(got == (0, 800, 600), "requester's answer %r" % (got,))
    request(b, 1)
    kind, rects = read_update(b, 32)
    check(rects[-1][2:] == (800, 600, -223), "DesktopSize to the other viewer: %r" % rects)
    fb, st = full_frame(b, 32, (32, 0, 255, 255, 255, 16, 8, 0), 800, 600)
    # back to the standard size for the other cases
    a.send(struct.pack(">BxHHBx", 251, W, H, 1) + struct.pack(">IHHHHI", 0, 0, 0, W, H, 0))
    request(a, 1)
    for _ in range(5):
        kind, rects = read_update(a, 32)
        if any(e == -308 and x == 1 and w == W for x, y, w, h, e in rects):
            break
    else:
        raise AssertionError("no answer to the resize back")
    print("ok desktop-size")


def case_exclusive(P):
    a = login_none(P["none"])
    server_init(a, shared=1)
    b = login_none(P["none"])
    server_init(b, shared=1)
    request(a, 0)
    read_update(a, 32)              # shared: a keeps working
    c = login_none(P["none"])
    server_init(c, shared=0)        # exclusive: a and b are dropped
    check(a.closes() and b.closes(), "shared-flag 0 did not disconnect others")
    fb, st = full_frame(c, 32, (32, 0, 255, 255, 255, 16, 8, 0))
    print("ok shared-and-exclusive")


def case_repeated_full_request(P):
    """gtk-vnc repeats its first, non-incremental request when the cursor
    comes ahead of the picture.  Asked again while the whole picture is
    still on its way (a small receive window holds it in the server's
    socket), the server sends it once; asked after it arrived, again
    (RFB: the viewer may have lost it).  The picture is still (@0)."""
    c = Conn(P["none"])
    c.s.close()
    c.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    c.s.settimeout(5.0)
    c.s.connect(("127.0.0.1", P["none"]))
    version(c)
    check(1 in sectypes(c), "None not offered")
    c.send(b"\x01")
    check(c.u32() == 0, "SecurityResult")
    w, h, _, _ = server_init(c)
    set_encodings(c, [0])
    request(c, 0, 0, 0, w, h)
    time.sleep(0.3)                 # the picture fills the socket
    request(c, 0, 0, 0, w, h)       # asked again before it is read
    time.sleep(0.3)
    px = 0
    c.s.settimeout(1.5)
    try:
        while True:
            kind, rects = read_update(c, 32, None, w)
            px += sum(r[2] * r[3] for r in rects if r[4] == 0)
    except socket.timeout:
        pass
    check(px == w * h, "%d pixels for two requests made before the "
          "picture arrived, want one picture (%d)" % (px, w * h))
    c.s.settimeout(5.0)
    request(c, 0, 0, 0, w, h)       # after it arrived: the whole again
    px = 0
    while px < w * h:
        kind, rects = read_update(c, 32, None, w)
        px += sum(r[2] * r[3] for r in rects if r[4] == 0)
    check(px == w * h, "a request after the picture arrived got %d "
          "pixels, want %d" % (px, w * h))
    c.close()
    print("ok repeated-full-request-while-on-its-way-sent-once")


def case_stuck_reader(P):
    """A viewer that asks for updates and never reads must not slow the
    others down (the moving server: 10 frames/s)."""
    bad = login_none(P["moving"])
    bad.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server_init(bad)
    for _ in range(50):
        request(bad, 0)
    good = login_none(P["moving"])
    server_init(good)
    fb, st = full_frame(good, 32, (32, 0, 255, 255, 255, 16, 8, 0))
    f0 = int(st["frame"])
    t0 = time.time()
    n = 0
    while time.time() - t0 < 2.0:
        fb, st = state_of(good, fb=fb)
        n += 1
    f1 = int(st["frame"])
    check(f1 - f0 >= 12, "good viewer saw frames %d..%d in 2 s" % (f0, f1))
    bad.close()
    print("ok stuck-reader-does-not-stall-others")


def case_many_clients(P):
    cs = []
    for _ in range(8):
        c = login_none(P["none"])
        server_init(c)
        cs.append(c)
    for c in cs:
        request(c, 0)
    for c in cs:
        fb = bytearray(W * H * 4)
        read_update(c, 32, fb)
        verify(fb, (32, 0, 255, 255, 255, 16, 8, 0))
    print("ok eight-clients-at-once")


# ---- SASL type 20 on the UNIX socket (PROTOCOL.md 2) ------------------

def sasl_start(where):
    c = Conn(where)
    version(c)
    types = sectypes(c)
    check(20 in types, "SASL not offered on the UNIX socket: %r" % types)
    c.send(bytes([20]))
    mechs = c.recv(c.u32()).decode()
    return c, mechs


def sasl_send(c, data, pad=b"\0"):
    if data is None:
        c.send(struct.pack(">I", 0))
    else:
        c.send(struct.pack(">I", len(data) + 1) + data + pad)


def sasl_reply(c):
    n = c.u32()
    data = None
    if n:
        data = c.recv(n)
        check(data[-1:] == b"\0", "server data without its NUL")
        data = data[:-1]
    return data, c.u8()


def scram(where, user, password, mech=b"SCRAM-SHA-256", pad=b"\0"):
    """A whole SCRAM login on type 20; returns (server_first, result, reason)."""
    c, mechs = sasl_start(where)
    return scram_on(c, user, password, mech, pad)


def scram_start(c, user, mech=b"SCRAM-SHA-256", pad=b"\0"):
    """After the mechlist: the mechanism name and client-first.  Returns
    the state scram_finish needs; state["sfirst"] is the server-first
    message and state["f"] its fields (r, s, i)."""
    nonce = base64.b64encode(os.urandom(18))
    first_bare = b"n=" + user + b",r=" + nonce
    c.send(struct.pack(">I", len(mech)) + mech)
    sasl_send(c, b"n,," + first_bare, pad)
    sfirst, done = sasl_reply(c)
    check(done == 0 and sfirst is not None and sfirst.startswith(b"r=" + nonce),
          "server-first %r" % sfirst)
    f = dict(kv.split(b"=", 1) for kv in sfirst.split(b","))
    return {"mech": mech, "first_bare": first_bare, "sfirst": sfirst, "f": f}


def scram_finish(c, st, password, pad=b"\0"):
    """client-final with the proof for password; returns (SecurityResult
    word, reason).  On success the server's signature has been checked
    and the connection stands at ClientInit."""
    hname = "sha256" if b"256" in st["mech"] else "sha1"
    f = st["f"]
    salted = hashlib.pbkdf2_hmac(hname, password, base64.b64decode(f[b"s"]), int(f[b"i"]))
    ck = hmac.new(salted, b"Client Key", hname).digest()
    final_wo = b"c=biws,r=" + f[b"r"]
    authmsg = st["first_bare"] + b"," + st["sfirst"] + b"," + final_wo
    sig = hmac.new(hashlib.new(hname, ck).digest(), authmsg, hname).digest()
    proof = bytes(a ^ b for a, b in zip(ck, sig))
    sasl_send(c, final_wo + b",p=" + base64.b64encode(proof), pad)
    sfinal, done = sasl_reply(c)
    check(done == 1, "complete byte %d" % done)
    result = c.u32()
    reason = c.recv(c.u32()) if result else b""
    if result == 0:
        sk = hmac.new(salted, b"Server Key", hname).digest()
        check(sfinal == b"v=" + base64.b64encode(hmac.new(sk, authmsg, hname).digest()),
              "server signature")
    return result, reason


def scram_on(c, user, password, mech=b"SCRAM-SHA-256", pad=b"\0"):
    """SCRAM after the mechlist was read, then SecurityResult and, if it
    succeeded, ServerInit; closes the connection."""
    st = scram_start(c, user, mech, pad)
    result, reason = scram_finish(c, st, password, pad)
    if result == 0:
        w, h, _, _ = server_init(c)
        check((w, h) == (W, H), "ServerInit after SASL")
    c.close()
    return st["sfirst"], result, reason


def case_sasl_mechlist(P):
    c, mechs = sasl_start(P["unix"])
    check(mechs == "SCRAM-SHA-256,SCRAM-SHA-1", "mechlist %r (PLAIN/LOGIN must not be offered without TLS)" % mechs)
    print("ok sasl-mechlist-without-tls")


def case_sasl_scram(P):
    for mech in (b"SCRAM-SHA-256", b"SCRAM-SHA-1"):
        _, result, _ = scram(P["unix"], b"alice", b"secret", mech)
        check(result == 0, "%s login refused" % mech)
        print("ok sasl-%s-login" % mech.decode().lower())


def case_sasl_failures_look_alike(P):
    s1, r1, why1 = scram(P["unix"], b"alice", b"wrong")
    s2, r2, why2 = scram(P["unix"], b"nobody", b"wrong")
    s3, r3, why3 = scram(P["unix"], b"nobody", b"wrong")
    check(r1 == r2 == 1 and why1 == why2 == b"Authentication failed",
          "wrong password %r vs unknown user %r" % ((r1, why1), (r2, why2)))
    salt = lambda s: dict(kv.split(b"=", 1) for kv in s.split(b","))[b"s"]
    it = lambda s: dict(kv.split(b"=", 1) for kv in s.split(b","))[b"i"]
    check(salt(s2) == salt(s3), "unknown user's salt changes between tries")
    check(len(base64.b64decode(salt(s1))) == len(base64.b64decode(salt(s2))) and it(s1) == it(s2),
          "unknown user's salt/iterations differ in shape from a real user's")
    print("ok sasl-unknown-user-looks-like-wrong-password")


def sasl_expect_close(where, payload, name):
    c, mechs = sasl_start(where)
    c.send(payload)
    check(c.closes(), name + ": not closed")
    print("ok sasl-" + name)


def case_sasl_edges(P):
    u = P["unix"]
    sasl_expect_close(u, struct.pack(">I", 0), "mechname-empty")
    sasl_expect_close(u, struct.pack(">I", 101) + b"A" * 101, "mechname-too-long")
    sasl_expect_close(u, struct.pack(">I", 0xFFFFFFFF), "mechname-length-4g")
    sasl_expect_close(u, struct.pack(">I", 5) + b"PLAIN" + struct.pack(">I", 0), "mechname-not-offered")
    sasl_expect_close(u, struct.pack(">I", 10) + b"SCRAM-SHA-" + struct.pack(">I", 0), "mechname-prefix-only")
    mech = struct.pack(">I", 13) + b"SCRAM-SHA-256"
    sasl_expect_close(u, mech + struct.pack(">I", 65537), "data-over-cap")
    sasl_expect_close(u, mech + struct.pack(">I", 0xFFFFFFFF), "data-length-4g")

    # the pad byte is dropped, not trusted: Cyrus viewers send whatever
    # followed their token in memory (GSSAPI, GS2-KRB5)
    _, result, _ = scram(u, b"alice", b"secret", pad=b"Z")
    check(result == 0, "login with a non-NUL pad byte")
    print("ok sasl-pad-byte-dropped-not-trusted")
    # a client that stops mid-handshake does not hold anyone up
    c, _ = sasl_start(u)
    c.send(mech[:6])
    _, result, _ = scram(u, b"alice", b"secret")
    check(result == 0, "login while another client sits mid-handshake")
    c.close()
    print("ok sasl-client-stopping-mid-handshake")


def case_vencrypt_edges(P):
    c, subs = vencrypt(P["unix"], b"\x00\x01")
    check(subs is None and c.closes(), "VeNCrypt 0.1 accepted")
    c, subs = vencrypt(P["unix"])
    check(subs == [264], "subtypes %r" % subs)
    c.send(struct.pack(">I", 263))
    check(c.u8() == 0 and c.closes(), "unoffered subtype accepted")
    c, subs = vencrypt(P["unix"])
    c.send(struct.pack(">I", 264))
    check(c.u8() == 1, "TLSSASL refused")
    # a handshake record whose ClientHello is nonsense
    c.send(b"\x16\x03\x01\x00\x10" + b"\x01\x00\x00\x0c" + bytes(12))
    check(c.closes(), "TLS garbage not closed")
    print("ok vencrypt-bad-version-subtype-tls-garbage")

CASES = [
    case_server_init, case_versions, case_bad_versions, case_fragmented_greeting,
    case_refused_type, case_vnc_auth_wrong, case_vnc_challenge_random,
    case_pixel_formats, case_bad_pixel_formats, case_update_request_clipped,
    case_unknown_message, case_cut_text_limit, case_input_reaches_source,
    case_desktop_size, case_exclusive, case_many_clients, case_stuck_reader,
    case_repeated_full_request,
    case_sasl_mechlist, case_sasl_scram, case_sasl_failures_look_alike,
    case_sasl_edges, case_vencrypt_edges,
]


def run_cases(cases, P, want, prefix=""):
    """Run each case_NAME(P) whose name contains one of want (all if
    empty); a case that raises prints one FAIL line."""
    for case in cases:
        name = case.__name__[5:].replace("_", "-")
        if want and not any(w in name for w in want):
            continue
        try:
            case(P)
        except Exception as e:          # one line per failed case
            print("FAIL %s%s: %s: %s" % (prefix, name, type(e).__name__, e))
        sys.stdout.flush()


def main():
    P = {"none": int(sys.argv[1]), "vnc": int(sys.argv[2]),
         "unix": sys.argv[3], "moving": int(sys.argv[4])}
    run_cases(CASES, P, sys.argv[5:])


if __name__ == "__main__":
    main()
