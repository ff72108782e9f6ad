#!/usr/bin/python3
"""A TCP relay that adds a fixed delay each way, as a link with that
propagation time would: relay.py LISTEN_PORT TARGET_PORT ONE_WAY_MS [BUF]

Loopback only.  It holds at most BUF bytes (default 65536) in each
direction's delay line and stops reading while that is full, so a slow
consumer still pushes back on the sender's socket as a real link does,
instead of the relay soaking up the sender's queue.  Serves connections
until killed (each by two threads).
"""
import collections
import socket
import sys
import threading
import time


def pump(src, dst, delay, cap):
    line = collections.deque()      # (due, bytes)
    held = [0]
    cv = threading.Condition()
    done = [False]

    def writer():
        while True:
            with cv:
                while not line and not done[0]:
                    cv.wait()
                if not line:
                    break
                due, data = line[0]
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                dst.sendall(data)
            except OSError:
                break
            with cv:
                line.popleft()
                held[0] -= len(data)
                cv.notify_all()
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    while True:
        with cv:
            while held[0] >= cap:
                cv.wait()
        try:
            data = src.recv(16384)
        except OSError:
            data = b""
        with cv:
            if not data:
                done[0] = True
                cv.notify_all()
                break
            line.append((time.monotonic() + delay, data))
            held[0] += len(data)
            cv.notify_all()
    t.join()


def main():
    lport, tport, ms = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    cap = int(sys.argv[4]) if len(sys.argv) > 4 else 65536
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", lport))
    ls.listen(8)
    while True:
        a, _ = ls.accept()
        b = socket.create_connection(("127.0.0.1", tport))
        for s in (a, b):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for x, y in ((a, b), (b, a)):
            threading.Thread(target=pump, args=(x, y, ms / 1000.0, cap), daemon=True).start()


if __name__ == "__main__":
    main()
