#!/usr/bin/python3
"""1,000 connect / authenticate / disconnect cycles against vncsasl:
VeNCrypt X509SASL (TLS, the test CA), SCRAM-SHA-256, ServerInit, close.
Prints the server's open descriptors and RSS before and after.

    endurance.py SERVER_PID PORT CAFILE CYCLES
"""
import os
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rfb  # noqa: E402

PID, PORT, CA, N = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=CA)


def usage():
    time.sleep(0.5)                     # let the server reap the last one
    fds = len(os.listdir("/proc/%d/fd" % PID))
    with open("/proc/%d/status" % PID) as f:
        rss = [int(l.split()[1]) for l in f if l.startswith("VmRSS:")][0]
    return fds, rss


def cycle():
    c, subs = rfb.vencrypt(PORT)
    rfb.check(subs is not None and 263 in subs, "no X509SASL: %r" % subs)
    c.send(struct.pack(">I", 263))
    rfb.check(c.u8() == 1, "X509SASL refused")
    c.s = ctx.wrap_socket(c.s, server_hostname="localhost")
    mechs = c.recv(c.u32())
    rfb.check(b"SCRAM-SHA-256" in mechs, "mechlist %r" % mechs)
    _, result, why = rfb.scram_on(c, b"alice", b"secret")
    rfb.check(result == 0, "login refused: %r" % why)


for _ in range(20):                     # warm up allocator and TLS caches
    cycle()
f0, r0 = usage()
for i in range(N):
    cycle()
f1, r1 = usage()
print("    (%d cycles: server fds %d -> %d, RSS %d KiB -> %d KiB)" % (N, f0, f1, r0, r1))
if f1 != f0:
    print("FAIL endurance-fds: %d -> %d open descriptors" % (f0, f1))
else:
    print("ok endurance-fds-steady")
if r1 - r0 > 2048:
    print("FAIL endurance-rss: grew %d KiB over %d cycles" % (r1 - r0, N))
else:
    print("ok endurance-rss-steady")
