#!/usr/bin/python3
"""revlisten.py - a listening viewer for vncsasl -c (reverse connections).

    revlisten.py PORT USER PASSWORD [CAFILE]

Listens on 127.0.0.1:PORT, prints "revlisten: listening", accepts the one
connection the server dials (waiting at most 30 s), and speaks RFB 3.8 as
the viewer: VeNCrypt X509SASL when CAFILE is given (the server's
certificate is verified against it, host name 127.0.0.1), else TLSSASL
(anonymous ECDH/DH, TLS 1.2), then SASL SCRAM-SHA-256 with the server's
signature checked, ServerInit, and one full frame checked pixel by pixel
by tests/dummyref.  Prints "ok: ..." and exits 0, or "FAIL: ..." and 1.
Every socket operation has a timeout.  The wire helpers are tests/rfb.py's.
"""
import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rfb  # noqa: E402

X509SASL, TLSSASL = 263, 264


def tls_wrap(sock, cafile):
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
        return ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2   # anonymous suites end there
    ctx.set_ciphers("aNULL:@SECLEVEL=0")
    return ctx.wrap_socket(sock)


def scram_sha256(c, user, password):
    """SCRAM-SHA-256 (RFC 5802/7677) over the RFB SASL messages; returns
    the SecurityResult word."""
    mechs = c.recv(c.u32()).decode().split(",")
    rfb.check("SCRAM-SHA-256" in mechs, "mechanisms %r" % mechs)
    mech = b"SCRAM-SHA-256"
    nonce = base64.b64encode(os.urandom(18))
    first_bare = b"n=" + user + b",r=" + nonce
    c.send(struct.pack(">I", len(mech)) + mech)
    rfb.sasl_send(c, b"n,," + first_bare)
    sfirst, done = rfb.sasl_reply(c)
    rfb.check(done == 0 and sfirst.startswith(b"r=" + nonce), "server-first %r" % sfirst)
    f = dict(kv.split(b"=", 1) for kv in sfirst.split(b","))
    salted = hashlib.pbkdf2_hmac("sha256", password, base64.b64decode(f[b"s"]), int(f[b"i"]))
    ck = hmac.new(salted, b"Client Key", "sha256").digest()
    final_wo = b"c=biws,r=" + f[b"r"]
    authmsg = first_bare + b"," + sfirst + b"," + final_wo
    sig = hmac.new(hashlib.sha256(ck).digest(), authmsg, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(ck, sig))
    rfb.sasl_send(c, final_wo + b",p=" + base64.b64encode(proof))
    sfinal, done = rfb.sasl_reply(c)
    rfb.check(done == 1, "SASL not complete after client-final")
    result = c.u32()
    if result == 0:
        sk = hmac.new(salted, b"Server Key", "sha256").digest()
        want = b"v=" + base64.b64encode(hmac.new(sk, authmsg, "sha256").digest())
        rfb.check(sfinal == want, "server signature")
    return result


def viewer(sock, user, password, cafile):
    """The viewer's side of RFB on a connected socket, up to one verified
    full frame; returns (rfb connection, description).  Also used by
    bench/size.sh for clients that connect."""
    c = rfb.Conn.__new__(rfb.Conn)      # rfb's reader on an accepted socket
    c.s = sock
    rfb.version(c)
    types = rfb.sectypes(c)
    rfb.check(19 in types, "VeNCrypt not offered: %r" % types)
    c.send(b"\x13")
    rfb.check(c.recv(2) == b"\x00\x02", "VeNCrypt version")
    c.send(b"\x00\x02")
    rfb.check(c.u8() == 0, "VeNCrypt 0.2 refused")
    subs = [c.u32() for _ in range(c.u8())]
    want = X509SASL if cafile else TLSSASL
    rfb.check(want in subs, "subtype %d not offered: %r" % (want, subs))
    c.send(struct.pack(">I", want))
    rfb.check(c.u8() == 1, "subtype refused")
    c.s = tls_wrap(sock, cafile)
    result = scram_sha256(c, user, password)
    if result != 0:
        reason = c.recv(c.u32()).decode(errors="replace")
        raise AssertionError("login refused: %s" % reason)
    w, h, _, name = rfb.server_init(c)
    fmt = rfb.FORMATS["32le"]
    rfb.set_pixel_format(c, *fmt)
    rfb.set_encodings(c, [0])
    _, st = rfb.full_frame(c, 32, (fmt[0], fmt[2]) + fmt[3:], w, h)
    return c, "%s %dx%d sec=%s %s name=%s frame=%s" % (
        c.s.version(), w, h, "x509sasl" if cafile else "tlssasl",
        c.s.cipher()[0], name.decode(errors="replace"), st.get("frame", "?"))


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__.split("\n\n")[1])
    port, user, password = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()
    cafile = sys.argv[4] if len(sys.argv) == 5 else None
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(1)
    ls.settimeout(30.0)
    print("revlisten: listening", flush=True)
    try:
        sock, peer = ls.accept()
        ls.close()
        sock.settimeout(10.0)
        c, info = viewer(sock, user, password, cafile)
        c.close()
    except Exception as e:
        print("FAIL: revlisten: %s: %s" % (type(e).__name__, e), flush=True)
        return 1
    print("ok: revlisten from %s:%d %s" % (peer[0], peer[1], info), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
