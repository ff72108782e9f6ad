#!/usr/bin/python3
"""servedcert.py PORT SUBTYPE: the SHA-256 fingerprint (AB:CD:...) of the
certificate vncsasl presents inside VeNCrypt SUBTYPE (an X509 one), as the
viewer sees it in the TLS handshake.  Nothing is verified: this is what a
trust-on-first-use viewer would show the person."""
import hashlib
import os
import ssl
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rfb  # noqa: E402

port, sub = int(sys.argv[1]), int(sys.argv[2])
c, subs = rfb.vencrypt(port)
rfb.check(subs is not None and sub in subs, "subtype %d not offered: %s" % (sub, subs))
c.send(struct.pack(">I", sub))
rfb.check(c.u8() == 1, "subtype refused")
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(c.s, server_hostname="localhost")
der = t.getpeercert(binary_form=True)
print(":".join("%02X" % b for b in hashlib.sha256(der).digest()))
t.close()
