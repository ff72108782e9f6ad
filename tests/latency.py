#!/usr/bin/python3
"""latency.py PORT SECS: a viewer logged in with None watches a moving dummy
screen: it asks for an update, waits for it, asks again, for SECS seconds,
and prints "latency n=N median=MS max=MS" (request to update)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rfb  # noqa: E402

port, secs = int(sys.argv[1]), float(sys.argv[2])
c = rfb.login_none(port)
w, h, _, _ = rfb.server_init(c)
c.s.settimeout(10)
rfb.set_encodings(c, [0])
rfb.request(c, 0, 0, 0, w, h)
while rfb.read_update(c, 32, None, w)[0] != "update":
    pass
lat = []
end = time.time() + secs
while time.time() < end:
    t0 = time.time()
    rfb.request(c, 1, 0, 0, w, h)
    while rfb.read_update(c, 32, None, w)[0] != "update":
        pass
    lat.append((time.time() - t0) * 1000)
lat.sort()
print("latency n=%d median=%.0f max=%.0f" % (len(lat), lat[len(lat) // 2], lat[-1]))
