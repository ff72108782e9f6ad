#!/usr/bin/python3
"""wss:// (-W) cases for vncsasl: a WebSocket client of our own (stdlib
only: ssl, socket) under tests/rfb.py's RFB helpers, good and hostile.

    ws.py SERVER_PID WSS_PORT WWW_DIR USER PASSWORD VIEWUSER VIEWPASS

The server runs with -W WSS_PORT -F WWW_DIR (which holds index.html and
sub/a.js), a password file with USER and VIEWUSER (ACL "view"), and
-s wss-plain,wss-sasl,wss-none is NOT given: the default wss types.
One line per case, then "N passed, N failed".  Every wait is bounded.
"""
import base64
import hashlib
import os
import socket
import ssl
import struct
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rfb  # noqa: E402
from rfb import check  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
NATIVE = (32, 0, 255, 255, 255, 16, 8, 0)


CLIENT_CERT = None     # (cert, key) PEM files to show the server (-T)


def tls(port, timeout=5.0):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if CLIENT_CERT:
        ctx.load_cert_chain(*CLIENT_CERT)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.settimeout(timeout)
    return s


def http_head(s):
    """Read a response head (and nothing more); returns (status, headers)."""
    b = b""
    while b"\r\n\r\n" not in b:
        d = s.recv(1)
        if not d:
            raise rfb.Closed("closed in the response head: %r" % b)
        b += d
        check(len(b) < 16384, "response head too long")
    lines = b.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdr = {}
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            hdr[k.strip().lower()] = v.strip()
    return status, hdr


def get(port, path, extra=b"", s=None):
    """GET path; returns (status, headers, body, socket)."""
    s = s or tls(port)
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
              + extra + b"\r\n")
    st, hdr = http_head(s)
    n = int(hdr.get("content-length", "0"))
    body = b""
    while len(body) < n:
        d = s.recv(n - len(body))
        if not d:
            break
        body += d
    return st, hdr, body, s


def upgrade_request(port, key=None, extra=b"", path=b"/websockify"):
    key = key or base64.b64encode(os.urandom(16))
    return (b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port +
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n"
            + extra + b"\r\n"), key


def frame(payload, op=2, fin=True, mask=True, rsv=0, length=None, key=None):
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | rsv << 4 | op
    m = 0x80 if mask else 0
    if n < 126:
        h = struct.pack(">BB", b0, m | n)
    elif n < 65536:
        h = struct.pack(">BBH", b0, m | 126, n)
    else:
        h = struct.pack(">BBQ", b0, m | 127, n)
    if not mask:
        return h + payload
    key = key if key is not None else os.urandom(4)
    return h + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class WsConn(rfb.Conn):
    """rfb.Conn over wss: send() frames (masked, binary), recv() reads
    the payload of the server's frames, answering nothing itself."""

    def __init__(self, port, timeout=5.0, split=None, extra=b""):
        self.s = tls(port, timeout)
        req, key = upgrade_request(port, extra=extra)
        self.s.sendall(req)
        st, hdr = http_head(self.s)
        check(st == 101, "upgrade answered %d" % st)
        want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        check(hdr.get("sec-websocket-accept") == want, "bad Sec-WebSocket-Accept")
        self.buf = b""
        self.split = split      # send each message in frames of this size
        self.controls = []      # (opcode, payload) seen

    def send(self, b):
        if self.split:
            parts = [b[i:i + self.split] for i in range(0, len(b), self.split)] or [b""]
            out = b""
            for i, p in enumerate(parts):
                out += frame(p, op=2 if i == 0 else 0, fin=i == len(parts) - 1)
            self.s.sendall(out)
        else:
            self.s.sendall(frame(b))

    def raw(self, b):
        self.s.sendall(b)

    def frame_in(self):
        h = self._exact(2)
        op, n = h[0] & 15, h[1] & 127
        check(not h[1] & 0x80, "masked frame from the server")
        if n == 126:
            n = struct.unpack(">H", self._exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._exact(8))[0]
        return op, self._exact(n)

    def _exact(self, n):
        b = b""
        while len(b) < n:
            d = self.s.recv(n - len(b))
            if not d:
                raise rfb.Closed("server closed after %d of %d bytes" % (len(b), n))
            b += d
        return b

    def recv(self, n):
        while len(self.buf) < n:
            op, p = self.frame_in()
            if op == 2 or op == 0:
                self.buf += p
            else:
                self.controls.append((op, p))
                if op == 8:
                    raise rfb.Closed("close frame %r" % p[:2])
        b, self.buf = self.buf[:n], self.buf[n:]
        return b

    def closes(self, secs=3.0):
        """True if the server closes (a close frame, EOF or reset) in secs."""
        end = time.time() + secs
        self.s.settimeout(secs)
        try:
            while time.time() < end:
                op, p = self.frame_in()
                if op == 8:
                    self.controls.append((op, p))
                    return True
        except (rfb.Closed, ConnectionResetError, ssl.SSLError, OSError):
            return True
        except socket.timeout:
            return False
        return False

    def close_code(self):
        for op, p in self.controls:
            if op == 8 and len(p) >= 2:
                return struct.unpack(">H", p[:2])[0]
        return None


def plain_login(port, user, password, **kw):
    """VeNCrypt Plain (256) over wss, as noVNC does it: the subtype and
    the credentials in one go, no ack byte read."""
    c = WsConn(port, **kw)
    rfb.version(c)
    types = rfb.sectypes(c)
    check(types[0] == 19, "VeNCrypt not first: %r" % types)
    check(1 not in types and 2 not in types, "None or VNC offered on wss: %r" % types)
    c.send(b"\x13")
    check(c.recv(2) == b"\x00\x02", "VeNCrypt version")
    c.send(b"\x00\x02")
    check(c.u8() == 0, "VeNCrypt 0.2 refused")
    subs = [c.u32() for _ in range(c.u8())]
    check(subs == [256], "subtypes %r" % subs)
    u, p = user.encode(), password.encode()
    c.send(struct.pack(">I", 256) + struct.pack(">II", len(u), len(p)) + u + p)
    return c, c.u32()


results = [0, 0]
CASES = []


def case(name):
    def wrap(fn):
        CASES.append((name, fn))
        return fn
    return wrap


def well_behaved():
    c, r = plain_login(PORT, USER, PASS)
    check(r == 0, "login failed")
    rfb.server_init(c)
    rfb.full_frame(c, 32, NATIVE)
    c.close()


@case("login-and-frame")
def _():
    c, r = plain_login(PORT, USER, PASS)
    check(r == 0, "SecurityResult %d" % r)
    w, h, pf, name = rfb.server_init(c)
    check((w, h) == (1024, 768), "size %dx%d" % (w, h))
    fb, st = rfb.full_frame(c, 32, NATIVE)
    c.close()


@case("login-fragmented-1-byte-frames")
def _():
    # every RFB message in frames of one byte: continuation frames
    c, r = plain_login(PORT, USER, PASS, split=1)
    check(r == 0, "SecurityResult %d" % r)
    rfb.server_init(c)
    rfb.full_frame(c, 32, NATIVE)
    c.close()


@case("many-messages-one-frame")
def _():
    c, r = plain_login(PORT, USER, PASS)
    check(r == 0, "SecurityResult")
    rfb.server_init(c)
    key = (struct.pack(">BBxxI", 4, 1, 0x61) + struct.pack(">BBxxI", 4, 0, 0x61)) * 20
    c.send(key + struct.pack(">BBHHHH", 3, 0, 0, 0, 1024, 768))
    fb, st = rfb.full_frame(c, 32, NATIVE)
    c.close()


@case("wrong-password-refused")
def _():
    c, r = plain_login(PORT, USER, PASS + "x")
    check(r == 1, "wrong password accepted (%d)" % r)
    reason = c.recv(c.u32())
    check(b"failed" in reason, "reason %r" % reason)


@case("sasl-scram-over-wss")
def _():
    c = WsConn(PORT)
    rfb.version(c)
    check(20 in rfb.sectypes(c), "type 20 not offered")
    c.send(b"\x14")
    mechs = c.recv(c.u32())
    check(b"SCRAM-SHA-256" in mechs, "mechlist %r" % mechs)
    _, r, why = rfb.scram_on(c, USER.encode(), PASS.encode())
    check(r == 0, "SCRAM over wss: %r %r" % (r, why))


@case("ping-pong-and-ping-flood")
def _():
    c, r = plain_login(PORT, USER, PASS)
    rfb.server_init(c)
    c.raw(frame(b"hello", op=9))
    op, p = c.frame_in()
    check((op, p) == (10, b"hello"), "pong %r" % ((op, p),))
    # 20000 pings in one go: at most the latest is answered, and the
    # connection still works afterwards
    burst = b"".join(frame(b"%d" % i, op=9) for i in range(20000))
    t = threading.Thread(target=c.s.sendall, args=(burst,), daemon=True)
    t.start()
    t.join(60)
    check(not t.is_alive(), "ping flood not consumed in 60 s")
    rfb.request(c, 0)
    n = 0
    while True:
        kind, rects = rfb.read_update(c, 32)
        if kind == "update":
            break
    pongs = sum(1 for op, p in c.controls if op == 10)
    check(pongs < 20000, "every ping of the flood got a pong (%d)" % pongs)
    print("    (%d pongs for 20000 pings)" % pongs)
    c.close()


@case("close-frame-echoed")
def _():
    c, r = plain_login(PORT, USER, PASS)
    rfb.server_init(c)
    c.raw(frame(struct.pack(">H", 1001) + b"bye", op=8))
    check(c.closes() and c.close_code() == 1001, "close not echoed: %r" % c.controls)


@case("unmasked-client-frame")
def _():
    c = WsConn(PORT)
    rfb.version(c)
    rfb.sectypes(c)
    c.raw(frame(b"\x13", mask=False))
    check(c.closes() and c.close_code() == 1002, "unmasked frame kept open")


@case("text-frame")
def _():
    c = WsConn(PORT)
    c.recv(12)
    c.raw(frame(b"RFB 003.008\n", op=1))
    check(c.closes() and c.close_code() == 1003, "text frame kept open")


@case("frame-length-2-63-and-over-limit")
def _():
    for n in (1 << 63, (1 << 64) - 1, (1 << 24) + 1, 1 << 40):
        c = WsConn(PORT)
        c.recv(12)
        c.raw(struct.pack(">BBQ", 0x82, 0x80 | 127, n) + os.urandom(4) + b"RFB 003.008\n")
        check(c.closes(), "length %d kept open" % n)
        check(c.close_code() in (1002, 1009), "length %d: close %r" % (n, c.close_code()))


@case("bad-frames")
def _():
    bad = [frame(b"x", rsv=4),                         # RSV bits
           frame(b"x", op=0),                          # continuation first
           frame(b"x", op=3),                          # reserved opcode
           frame(b"x", op=11),                         # reserved control
           frame(b"x" * 126, op=9),                    # long ping
           frame(b"x", op=9, fin=False),               # fragmented ping
           frame(b"x", op=8),                          # 1-byte close body
           frame(b"x", fin=False) + frame(b"y", op=2),  # message in message
           struct.pack(">BBH", 0x82, 0x80 | 126, 5) + os.urandom(4) + b"hello",  # not shortest
           ]
    for b in bad:
        c = WsConn(PORT)
        c.recv(12)
        c.raw(b)
        check(c.closes(), "%r kept open" % b[:8])


@case("bad-upgrade-requests")
def _():
    port = PORT
    key = base64.b64encode(os.urandom(16))
    reqs = {
        "no key": b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n",
        "short key": upgrade_request(port, key=b"c2hvcnQ=")[0],
        "version 8": upgrade_request(port)[0].replace(b"Version: 13", b"Version: 8"),
        "not websocket": upgrade_request(port)[0].replace(b"Upgrade: websocket", b"Upgrade: h2c"),
        "no Connection": upgrade_request(port)[0].replace(b"Connection: Upgrade\r\n", b""),
        "text protocol": upgrade_request(port, extra=b"Sec-WebSocket-Protocol: base64\r\n")[0],
        "foreign origin": upgrade_request(port, extra=b"Origin: https://evil.example\r\n")[0],
        "null origin": upgrade_request(port, extra=b"Origin: null\r\n")[0],
        "POST": upgrade_request(port)[0].replace(b"GET ", b"POST "),
        "HTTP/1.0": upgrade_request(port)[0].replace(b"HTTP/1.1", b"HTTP/1.0"),
        "two keys": upgrade_request(port, extra=b"Sec-WebSocket-Key: " + key + b"\r\n")[0],
        "two hosts": upgrade_request(port, extra=b"Host: other\r\n")[0],
        "no host": upgrade_request(port)[0].replace(b"Host: 127.0.0.1:%d\r\n" % port, b""),
        "bare LF": upgrade_request(port)[0].replace(b"Upgrade: websocket\r\n", b"Upgrade: websocket\n"),
        "obs-fold": upgrade_request(port)[0].replace(b"Connection: Upgrade\r\n", b"Connection:\r\n Upgrade\r\n"),
        "NUL": upgrade_request(port)[0].replace(b"websocket", b"web\0socket"),
        "space before colon": upgrade_request(port)[0].replace(b"Upgrade:", b"Upgrade :"),
        "body": upgrade_request(port, extra=b"Content-Length: 5\r\n")[0] + b"hello",
        "absolute target": upgrade_request(port, path=b"http://x/")[0],
        "garbage": os.urandom(300) + b"\r\n\r\n",
    }
    for name, req in reqs.items():
        s = tls(port)
        s.sendall(req)
        try:
            st, hdr = http_head(s)
        except (rfb.Closed, OSError, ssl.SSLError) as e:
            raise AssertionError("%s: no answer (%s)" % (name, e))
        check(st in (400, 403, 405, 426, 505), "%s answered %d" % (name, st))
        s.close()
    # allowed: the page's own origin, and binary among the subprotocols
    c = WsConn(PORT, extra=b"Origin: https://127.0.0.1:%d\r\n" % PORT)
    check(c.recv(12) == b"RFB 003.008\n", "same-origin greeting")
    s = tls(PORT)
    s.sendall(upgrade_request(PORT, extra=b"Sec-WebSocket-Protocol: base64, binary\r\n")[0])
    st, hdr = http_head(s)
    check(st == 101 and hdr.get("sec-websocket-protocol") == "binary", "binary: %d %r" % (st, hdr))


@case("oversize-request-head-and-headers")
def _():
    s = tls(PORT)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    st, hdr = http_head(s)
    check(st == 431, "9 KB head answered %d" % st)
    s = tls(PORT)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 70 + b"\r\n")
    st, hdr = http_head(s)
    check(st == 431, "70 headers answered %d" % st)
    s = tls(PORT)
    s.sendall(b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    st, hdr = http_head(s)
    check(st == 400, "2 KB target answered %d" % st)
    # a head that never ends: answered once it passes the limit
    s = tls(PORT)
    s.sendall(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 1500)
    st, hdr = http_head(s)
    check(st == 431, "endless head answered %d" % st)


@case("files-served")
def _():
    st, hdr, body, s = get(PORT, b"/")
    check(st == 200 and body == open(os.path.join(WWW, "index.html"), "rb").read(),
          "index.html: %d" % st)
    check(hdr["content-type"].startswith("text/html"), "type %r" % hdr)
    # kept alive: the next request on the same connection
    st, hdr, body, s = get(PORT, b"/sub/a.js?x=1", s=s)
    check(st == 200 and hdr["content-type"].startswith("text/javascript"), "a.js %d %r" % (st, hdr))
    st, hdr, body, s = get(PORT, b"/sub/%61.js", s=s)
    check(st == 200 and body.startswith(b"//"), "percent-encoded name: %d" % st)
    st, hdr, body, s = get(PORT, b"/nothing.html", s=s)
    check(st == 404, "missing file %d" % st)


@case("path-traversal")
def _():
    for path in (b"/../secret.html", b"/sub/../../secret.html", b"/%2e%2e/secret.html",
                 b"/%2E%2E%2Fsecret.html", b"/sub/%2e%2e/%2e%2e/secret.html",
                 b"/..%2fsecret.html", b"/.hidden.html", b"//etc/passwd", b"/sub//a.js",
                 b"/%00.html", b"/sub\\..\\a.js", b"/%zz.html"):
        st, hdr, body, s = get(PORT, path)
        check(st == 400, "%r answered %d" % (path, st))
        check(b"topsecret" not in body, "%r leaked the secret" % path)
    # a symbolic link inside the directory, to a file outside it, a
    # directory, an unknown type: none served
    for path in (b"/link.html", b"/linkdir/x.html", b"/sub", b"/sub/", b"/notes.txt",
                 b"/fifo.html"):
        st, hdr, body, s = get(PORT, path)
        check(st == 404, "%r answered %d" % (path, st))
        check(b"topsecret" not in body, "%r leaked the secret" % path)


@case("view-user-keys-dropped")
def _():
    c, r = plain_login(PORT, VUSER, VPASS)
    check(r == 0, "view user refused")
    rfb.server_init(c)
    _, st0 = rfb.full_frame(c, 32, NATIVE)
    c.send(struct.pack(">BBxxI", 4, 1, 0x7a) + struct.pack(">BBxxI", 4, 0, 0x7a))
    time.sleep(0.5)
    _, st1 = rfb.full_frame(c, 32, NATIVE)
    check(st1["nkeys"] == st0["nkeys"], "a view user's key arrived")
    c.close()


def main():
    global PID, PORT, WWW, USER, PASS, VUSER, VPASS
    PID, PORT, WWW = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    USER, PASS, VUSER, VPASS = sys.argv[4:8]
    only = sys.argv[8:]
    for name, fn in CASES:
        if only and name not in only:
            continue
        try:
            fn()
            well_behaved()
            print("ok wss-" + name)
            results[0] += 1
        except Exception as e:
            print("FAIL wss-%s: %s: %s" % (name, type(e).__name__, e))
            results[1] += 1
        sys.stdout.flush()
    print("%d passed, %d failed" % tuple(results))
    try:
        os.kill(PID, 0)
    except OSError:
        print("FAIL wss-server-alive: the server died")


if __name__ == "__main__":
    main()
