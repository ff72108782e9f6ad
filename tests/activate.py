#!/usr/bin/python3
"""activate.py - pass sockets to a program the way systemd does.

    activate.py [-a] [-u PATH] ADDR:PORT... -- PROGRAM ARGS...

Opens a listening TCP socket on each ADDR:PORT (and a UNIX one on PATH
with -u), moves them to fd 3, 4, ... in that order, sets LISTEN_FDS to
their number and LISTEN_PID to the pid of the process that then execs
PROGRAM (set in the child, right before exec, as systemd does), and waits
for it, exiting with its status.

-a is Accept=yes: wait (at most 30 s) for one connection on the first
socket and pass that connected socket alone, as fd 3, instead.

Used by tests/t-activation.sh; needs nothing beyond the standard library.
"""
import fcntl
import os
import select
import signal
import socket
import sys


def usage():
    sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
    sys.exit(2)


def main():
    args = sys.argv[1:]
    accept = False
    unix_path = None
    if "--" not in args:
        usage()
    sep = args.index("--")
    opts, prog = args[:sep], args[sep + 1:]
    addrs = []
    while opts:
        o = opts.pop(0)
        if o == "-a":
            accept = True
        elif o == "-u" and opts:
            unix_path = opts.pop(0)
        elif ":" in o:
            host, port = o.rsplit(":", 1)
            addrs.append((host.strip("[]"), int(port)))
        else:
            usage()
    if not prog or not (addrs or unix_path):
        usage()

    socks = []
    for host, port in addrs:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(16)
        socks.append(s)
    if unix_path:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(unix_path)
        s.listen(16)
        socks.append(s)
    print("activate: listening", flush=True)

    if accept:
        r, _, _ = select.select([socks[0]], [], [], 30.0)
        if not r:
            sys.exit("activate: no connection in 30 s")
        conn, _ = socks[0].accept()
        for s in socks:
            s.close()
        socks = [conn]

    pid = os.fork()
    if pid == 0:
        # move the sockets out of the way, then to 3, 4, ... in order
        high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 100) for s in socks]
        for i, fd in enumerate(high):
            os.dup2(fd, 3 + i)          # inheritable, as exec needs
            os.close(fd)
        os.environ["LISTEN_FDS"] = str(len(socks))
        os.environ["LISTEN_PID"] = str(os.getpid())
        os.environ.pop("LISTEN_FDNAMES", None)
        try:
            os.execvp(prog[0], prog)
        except OSError as e:
            sys.stderr.write("activate: %s: %s\n" % (prog[0], e))
            os._exit(127)
    # the service manager passes SIGTERM/SIGINT on to the service
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda n, _f: os.kill(pid, n))
    for s in socks:
        s.close()
    _, status = os.waitpid(pid, 0)
    if unix_path:
        try:
            os.unlink(unix_path)
        except OSError:
            pass
    sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status)
             else 128 + os.WTERMSIG(status))


if __name__ == "__main__":
    main()
