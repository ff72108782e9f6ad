"""vm.py - a QEMU guest the tests drive: its shell on the serial port,
screendumps through QMP.

The guest's /init (mkinitrd.py) prints "@@READY" and then runs a shell
reading the serial port, echo off.  run() sends a command followed by
an echo of a numbered marker with its status, and reads up to that marker:
no prompt to parse.  QEMU waits for our serial connection before it starts
the guest, so nothing it prints is lost; everything read is kept in
NAME.serial.log.

Traps this avoids (measured): a connect to the hostfwd port succeeds before
the guest listens (callers wait for the server's log line in the guest);
screendump's reply can come before the file is complete (screendump()
waits until the PPM holds all its pixels).
"""
import json
import os
import re
import socket
import subprocess
import time


class VMError(Exception):
    pass


class VM:
    def __init__(self, name, tmp, kdir, initrd, port, display, mem=256,
                 append=""):
        self.name, self.tmp, self.port = name, tmp, port
        self.ser_path = os.path.join(tmp, name + ".ser")
        self.qmp_path = os.path.join(tmp, name + ".qmp")
        self.log = open(os.path.join(tmp, name + ".serial.log"), "wb")
        for p in (self.ser_path, self.qmp_path):
            if os.path.exists(p):
                os.unlink(p)
        self.cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max",
            "-m", str(mem), "-smp", "1", "-nodefaults", "-no-user-config",
            "-display", "none", "-vga", "none"] + display + [
            "-kernel", os.path.join(kdir, "vmlinuz"), "-initrd", initrd,
            "-append", "console=ttyS0 quiet loglevel=3 panic=-1 " + append,
            "-no-reboot",
            "-netdev", "user,id=n,restrict=off,hostfwd=tcp:127.0.0.1:%d-:5900,"
            "hostfwd=tcp:127.0.0.1:%d-:5901" % (port, port + 1),
            "-device", "virtio-net-pci,netdev=n",
            "-chardev", "socket,id=ser,path=%s,server=on,wait=on"
            % self.ser_path,
            "-serial", "chardev:ser",
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        self.qemu = subprocess.Popen(
            self.cmd, stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(tmp, name + ".qemu.log"), "wb"),
            stderr=subprocess.STDOUT)
        self.ser = self._connect(self.ser_path)
        self.buf = b""
        self.n = 0
        self.restarts = 0
        self.qmp = None
        self.t0 = time.monotonic()

    def _connect(self, path, secs=20):
        end = time.monotonic() + secs
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                return s
            except OSError:
                s.close()
                if self.qemu.poll() is not None:
                    raise VMError("qemu exited %s: %s" % (
                        self.qemu.returncode, self.qemu_log()))
                if time.monotonic() > end:
                    raise VMError("no socket %s after %ds" % (path, secs))
                time.sleep(0.05)

    def qemu_log(self):
        try:
            with open(os.path.join(self.tmp, self.name + ".qemu.log")) as f:
                return f.read()[-300:].replace("\n", " ")
        except OSError:
            return ""

    def _read_until(self, pattern, secs):
        rx = re.compile(pattern)
        end = time.monotonic() + secs
        while True:
            m = rx.search(self.buf)
            if m:
                return m
            left = end - time.monotonic()
            if left <= 0:
                tail = self.buf[-300:].decode(errors="replace")
                raise VMError("%s: no %r after %gs; serial ends: %r" % (
                    self.name, pattern.decode(errors="replace"), secs, tail))
            self.ser.settimeout(min(left, 1.0))
            try:
                d = self.ser.recv(65536)
            except socket.timeout:
                if self.qemu.poll() is not None:
                    raise VMError("qemu exited %s" % self.qemu.returncode)
                continue
            except OSError as e:
                time.sleep(0.5)
                raise VMError("%s: serial port: %s (qemu exit status %s): "
                              "%s" % (self.name, e, self.qemu.poll(),
                                      self.qemu_log()))
            if not d:
                raise VMError("%s: serial port closed (qemu exited %s)" % (
                    self.name, self.qemu.poll()))
            self.log.write(d)
            self.log.flush()
            self.buf += d.replace(b"\r", b"")

    def ready(self, secs):
        m = self._read_until(rb"@@READY ([^\n]*)\n", secs)
        self.buf = self.buf[m.end():]
        self.boot_secs = time.monotonic() - self.t0
        return m.group(1).decode()

    def run(self, cmd, secs=30, check=True):
        """run cmd in the guest shell: (status, output)"""
        self.n += 1
        mark = "@@DONE-%d" % self.n
        self.ser.sendall(("%s\necho %s:$?\n" % (cmd, mark)).encode())
        m = self._read_until(mark.encode() + rb":(\d+)\n|@@SHELL-EXITED",
                             secs)
        if m.group(0).startswith(b"@@SHELL"):
            # seen under load, cause unknown: init starts another shell;
            # the command may not have run: once more, in the new one
            self.restarts += 1
            self.buf = self.buf[m.end():]
            self.ser.sendall(b"export PS1=\n")
            self.ser.sendall(("%s\necho %s:$?\n" % (cmd, mark)).encode())
            m = self._read_until(mark.encode() + rb":(\d+)\n", secs)
        out = self.buf[:m.start()].decode(errors="replace")
        self.buf = self.buf[m.end():]
        rc = int(m.group(1))
        if check and rc != 0:
            raise VMError("guest: %r exited %d: %s" % (cmd, rc, out[-300:]))
        return rc, out

    def wait_guest(self, cond, secs, what):
        """poll a guest shell condition (a command that succeeds)"""
        end = time.monotonic() + secs
        while time.monotonic() < end:
            if self.run(cond, check=False)[0] == 0:
                return
            time.sleep(0.3)
        raise VMError("%s: %s not within %gs" % (self.name, what, secs))

    def _qmp(self, cmd, args=None, secs=30):
        if self.qmp is None:
            self.qmp = self._connect(self.qmp_path)
            self.qmp_f = self.qmp.makefile("rwb")
            self.qmp.settimeout(secs)
            json.loads(self.qmp_f.readline())      # greeting
            self._qmp("qmp_capabilities")
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.qmp_f.write(json.dumps(msg).encode() + b"\n")
        self.qmp_f.flush()
        while True:
            r = json.loads(self.qmp_f.readline())
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise VMError("qmp %s: %s" % (cmd, r["error"]))

    def screendump(self, path, secs=20, device=None):
        """the screen as QEMU shows it (of display device id `device`), a
        P6 PPM, complete"""
        tmp = path + ".part"
        if os.path.exists(tmp):
            os.unlink(tmp)
        args = {"filename": tmp}
        if device:
            args["device"] = device
        self._qmp("screendump", args)
        end = time.monotonic() + secs
        while True:
            try:
                with open(tmp, "rb") as f:
                    data = f.read()
                m = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data)
                if m and len(data) >= m.end() + \
                        int(m.group(1)) * int(m.group(2)) * 3:
                    break
            except OSError:
                pass
            if time.monotonic() > end:
                raise VMError("screendump %s incomplete after %gs" % (
                    tmp, secs))
            time.sleep(0.05)
        os.rename(tmp, path)
        return path

    def stop(self):
        try:
            self._qmp("quit", secs=5)
        except Exception:
            pass
        try:
            self.qemu.wait(5)
        except subprocess.TimeoutExpired:
            self.qemu.kill()
            self.qemu.wait()
        self.log.close()


def read_ppm(path):
    with open(path, "rb") as f:
        data = f.read()
    m = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data)
    if not m:
        raise VMError("%s: not a P6 PPM" % path)
    w, h = int(m.group(1)), int(m.group(2))
    return w, h, data[m.end():m.end() + w * h * 3]


def write_ppm(path, w, h, rgb):
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h))
        f.write(rgb)
    os.rename(tmp, path)


def rotate_ppm(src, dst, deg):
    """dst: src turned deg degrees clockwise"""
    w, h, rgb = read_ppm(src)
    px = [rgb[i:i + 3] for i in range(0, len(rgb), 3)]
    if deg == 90:       # new (x, y) = (h-1-oy, ox): new row y is old column y
        out = [px[(h - 1 - x) * w + y] for y in range(w) for x in range(h)]
        w, h = h, w
    elif deg == 180:
        out = px[::-1]
    elif deg == 270:
        out = [px[x * w + (w - 1 - y)] for y in range(w) for x in range(h)]
        w, h = h, w
    else:
        out = px
    write_ppm(dst, w, h, b"".join(out))
