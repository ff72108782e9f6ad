#!/usr/bin/python3
"""run.py - fb-linux.c on a real kernel: the cases of tests/t-linux.sh.

Two guests boot a Debian kernel under QEMU TCG (no KVM): one with a
bochs VGA (fbdev XRGB8888, DRM, input, rotation, touch, the benchmark, the
arm64 build under qemu-user where a cross toolchain is there), one with a
Cirrus VGA (fbdev RGB565), vfb (R at bit 0, panning, a mode change) and a
virtio-gpu (DRM read through a dma-buf).
The static server runs in the guest behind hostfwd on 127.0.0.1; the real
viewers (tests/lvc, tests/gvnc) log in with SCRAM-SHA-256 over X509SASL and
must receive exactly what QEMU's screendump shows.  vfb has no display, so
its reference is the framebuffer's own bytes, read through a second
forwarded port and converted here by its bitfields.  Prints one ok/FAIL/
skip line per case and "bench:" lines.
"""
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vm import VM, VMError, read_ppm, write_ppm, rotate_ppm  # noqa: E402

TOP, T, PORT = os.environ["TOP"], os.environ["T"], int(os.environ["PORT"])
KDIR, INITRD = sys.argv[1], sys.argv[2]
LVC, GVNC = os.path.join(TOP, "tests/lvc"), os.path.join(TOP, "tests/gvnc")
CA = os.path.join(T, "pki/ca-cert.pem")
SERVER = ("vncsasl -s x509sasl -C /pki/server-cert.pem -K /pki/server-key.pem "
          "-P /pki/passwd -m SCRAM-SHA-256 -l 0.0.0.0 -p 5900")
BOOT_SECS = 180          # a loaded 2-core machine: measured 10-40 s
failed = 0


def ok(name):
    print("ok " + name, flush=True)


def fail(name, why):
    global failed
    failed += 1
    print("FAIL %s: %s" % (name, " ".join(str(why).split())[:600]),
          flush=True)


# ---- viewers on the host ----

class Viewer:
    n = 0

    def __init__(self, kind, args, secs=60):
        Viewer.n += 1
        self.out = os.path.join(T, "viewer%d.%s.out" % (Viewer.n, kind))
        auth = (["-C", CA, "-u", "alice", "-p", "secret", "-m",
                 "SCRAM-SHA-256"] if kind == "lvc" else
                ["-u", "alice", "-p", "secret"])
        self.cmd = [LVC if kind == "lvc" else GVNC] + auth + [
            "-R", "-t", str(secs)] + args + ["127.0.0.1", str(PORT)]
        self.p = subprocess.Popen(
            ["timeout", str(secs + 15)] + self.cmd,
            stdout=open(self.out, "w"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)

    def text(self):
        with open(self.out) as f:
            return f.read()

    def wait_line(self, pattern, secs):
        end = time.monotonic() + secs
        while time.monotonic() < end:
            if re.search(pattern, self.text(), re.M):
                return True
            if self.p.poll() is not None:
                return bool(re.search(pattern, self.text(), re.M))
            time.sleep(0.1)
        return False

    def finish(self, secs=90):
        try:
            self.p.wait(secs)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        return self.p.returncode, self.text()


def view(name, kind, args, secs=60):
    """run a viewer to its end: ok if it exits 0"""
    rc, out = Viewer(kind, args, secs).finish(secs + 20)
    if rc == 0:
        ok(name)
    else:
        fail(name, out.strip().splitlines()[-1] if out.strip() else
             "exit %d" % rc)
    return rc == 0, out


# ---- the guest side ----

def start_server(vm, xarg, extra="", wrap=""):
    vm.run("rm -f /tmp/v.log; %s%s %s -x %s >/tmp/v.log 2>&1 & echo $! >/tmp/v.pid"
           % (wrap, SERVER, extra, xarg))
    try:
        vm.wait_guest("grep -q 'listening on' /tmp/v.log", 60,
                      "server listening")
    except VMError:
        raise VMError("server -x %s: %s" % (xarg, vm.run(
            "cat /tmp/v.log", check=False)[1][-400:]))


def stop_server(vm):
    vm.run("kill $(cat /tmp/v.pid) 2>/dev/null; for i in 1 2 3 4 5 6 7 8 9 10; "
           "do kill -0 $(cat /tmp/v.pid) 2>/dev/null || break; sleep 0.2; "
           "done", check=False)


def server_log(vm):
    return vm.run("cat /tmp/v.log", check=False)[1]


def start_evread(vm):
    rc, dev = vm.run("evread find vncsasl", check=False)
    dev = dev.strip().splitlines()[-1] if dev.strip() else ""
    if rc != 0 or not dev.startswith("/dev/input/"):
        raise VMError("no vncsasl input device: %s" % dev)
    vm.run("evread log %s >/tmp/ev.log 2>&1 & echo $! >/tmp/ev.pid" % dev)
    vm.wait_guest("grep -q ready /tmp/ev.log", 10, "evread ready")
    return dev


def stop_evread(vm, dev):
    time.sleep(0.5)      # the server's release after the viewer left
    _, log = vm.run("kill $(cat /tmp/ev.pid); cat /tmp/ev.log")
    _, state = vm.run("evread state %s" % dev)
    ev = []
    for line in log.splitlines():
        f = line.split()
        if len(f) == 3 and all(re.match(r"-?\d+$", x) for x in f):
            t, c, v = map(int, f)
            if t != 0:
                ev.append((t, c, v))
    return ev, state


# ---- what the guest must see ----

EV_KEY, EV_ABS = 1, 3
BTN_LEFT, BTN_RIGHT, BTN_TOUCH = 0x110, 0x111, 0x14a
KEY_LEFTSHIFT, KEY_LEFTCTRL = 42, 29
ABS_MT_POSITION_X, ABS_MT_POSITION_Y, ABS_MT_TRACKING_ID = 0x35, 0x36, 0x39
# <linux/input-event-codes.h>, the US keyboard: character -> (code, shift)
US = {}
for row, codes in (("1234567890", range(2, 12)), ("qwertyuiop", range(16, 26)),
                   ("asdfghjkl", range(30, 39)), ("zxcvbnm", range(44, 51))):
    for ch, code in zip(row, codes):
        US[ch] = (code, False)
        if ch.isalpha():
            US[ch.upper()] = (code, True)
for ch, code, sh in (("!", 2, 1), ("@", 3, 1), ("#", 4, 1), ("$", 5, 1),
                     ("%", 6, 1), ("^", 7, 1), ("&", 8, 1), ("*", 9, 1),
                     ("(", 10, 1), (")", 11, 1), ("-", 12, 0), ("_", 12, 1),
                     ("=", 13, 0), ("+", 13, 1), ("[", 26, 0), ("{", 26, 1),
                     ("]", 27, 0), ("}", 27, 1), (";", 39, 0), (":", 39, 1),
                     ("'", 40, 0), ('"', 40, 1), ("`", 41, 0), ("~", 41, 1),
                     ("\\", 43, 0), ("|", 43, 1), (",", 51, 0), ("<", 51, 1),
                     (".", 52, 0), (">", 52, 1), ("/", 53, 0), ("?", 53, 1),
                     (" ", 57, 0)):
    US[ch] = (code, bool(sh))


def typed(text):
    """the key events a US keyboard makes typing text, Shift as the viewer
    sends it (Shift_L around each shifted character)"""
    ev = []
    for ch in text:
        code, shift = US[ch]
        if shift:
            ev.append((EV_KEY, KEY_LEFTSHIFT, 1))
        ev += [(EV_KEY, code, 1), (EV_KEY, code, 0)]
        if shift:
            ev.append((EV_KEY, KEY_LEFTSHIFT, 0))
    return ev


def nothing_held(state):
    m = re.search(r"keys:([^\n]*)", state)
    return m is not None and m.group(1).strip() == ""


def check_events(name, got, want, state):
    if got != want:
        i = next((k for k in range(min(len(got), len(want)))
                  if got[k] != want[k]), min(len(got), len(want)))
        fail(name, "event %d: got %s want %s (%d got, %d wanted)" % (
            i, got[i:i + 4], want[i:i + 4], len(got), len(want)))
    elif not nothing_held(state):
        fail(name, "still held after the viewer left: %s" % state.strip())
    else:
        ok(name)


def pixel(path, x, y):
    w, _, rgb = read_ppm(path)
    i = (y * w + x) * 3
    return rgb[i] << 16 | rgb[i + 1] << 8 | rgb[i + 2]


def painted(path, pat="A"):
    """the screendump shows paint.c's picture (its corner squares)"""
    w, h, _ = read_ppm(path)
    want = [(20, 20, 0xff0000), (w - 30, 20, 0x00ff00), (20, h - 30, 0x0000ff)]
    return all(pixel(path, x, y) == c for x, y, c in want)


def settle(vm):
    """let the fbdev emulation's damage worker reach the screen"""
    vm.run("sleep 0.3")


# ---- the cases ----

def case_fbdev(vm, tag, prefix):
    vm.run("paint fb /dev/fb0 A")
    settle(vm)
    a = vm.screendump(os.path.join(T, tag + "-A.ppm"))
    b = os.path.join(T, tag + "-B.ppm")
    if not painted(a):
        fail(prefix + "-screendump-shows-painting", "no paint.c picture in "
             "the screendump %s" % a)
        return
    v = Viewer("lvc", ["-M", a, "-M", b], 120)
    if v.wait_line(r"^match 1 ", 90):
        ok(prefix + "-lvc-pixels-equal-screendump")
    else:
        fail(prefix + "-lvc-pixels-equal-screendump", v.finish(1)[1][-300:])
        return
    vm.run("paint fb /dev/fb0 B")
    settle(vm)
    vm.screendump(b)
    rc, out = v.finish(60)
    if rc == 0:
        ok(prefix + "-change-followed")
    else:
        fail(prefix + "-change-followed", out[-300:])
    view(prefix + "-gvnc-pixels-equal-screendump", "gvnc", ["-M", b], 90)


def case_input_mouse(vm):
    dev = start_evread(vm)
    text = "Hi, World! ~(x_y)"
    Viewer("lvc", ["-d", "1", "-P", "100,200,0", "-P", "100,200,1", "-P",
                   "100,200,0", "-P", "640,480,4", "-T", text, "-D", "0xffe3"],
           60).finish()
    got, state = stop_evread(vm, dev)
    want = [(EV_ABS, 0, 100), (EV_ABS, 1, 200), (EV_KEY, BTN_LEFT, 1),
            (EV_KEY, BTN_LEFT, 0), (EV_ABS, 0, 640), (EV_ABS, 1, 480),
            (EV_KEY, BTN_RIGHT, 1)] + typed(text) + [
            (EV_KEY, KEY_LEFTCTRL, 1),
            # the viewer left: what it held is let go
            (EV_KEY, KEY_LEFTCTRL, 0), (EV_KEY, BTN_RIGHT, 0)]
    check_events("uinput-lvc-keys-clicks-and-release", got, want, state)
    dev = start_evread(vm)
    text = "gtk-vnc: A&b|Z"
    # Print (0xff61) would be KEY_SYSRQ, the kernel's magic SysRq with
    # Alt: never sent
    Viewer("gvnc", ["-d", "1", "-T", text, "-P", "5,6,2", "-P", "5,6,0",
                    "-K", "0xff61", "-D", "0x61", "-D", "0x61"], 60).finish()
    got, state = stop_evread(vm, dev)
    want = [(EV_ABS, 0, 5), (EV_ABS, 1, 6), (EV_KEY, 0x112, 1),
            (EV_KEY, 0x112, 0)] + typed(text) + [
            # a viewer's auto-repeat is a repeat event; let go at the end
            (EV_KEY, 30, 1), (EV_KEY, 30, 2), (EV_KEY, 30, 0)]
    check_events("uinput-gvnc-keys-middle-click-repeat-no-sysrq", got, want,
                 state)


def case_rotate(vm, b):
    stop_server(vm)
    start_server(vm, "/dev/fb0,rotate=90")
    r = os.path.join(T, "rot90.ppm")
    rotate_ppm(b, r, 90)
    dev = start_evread(vm)
    ok_, _ = view("rotate90-lvc-pixels-turned", "lvc", [
        "-M", r, "-d", "1", "-P", "100,300,1", "-P", "100,300,0"], 90)
    got, state = stop_evread(vm, dev)
    # viewer (100, 300) on the turned picture is device (300, 767-100)
    want = [(EV_ABS, 0, 300), (EV_ABS, 1, 667), (EV_KEY, BTN_LEFT, 1),
            (EV_KEY, BTN_LEFT, 0)]
    check_events("rotate90-pointer-turned-back", got, want, state)
    view("rotate90-gvnc-pixels-turned", "gvnc", ["-M", r], 90)


def case_touch(vm):
    stop_server(vm)
    start_server(vm, "/dev/fb0,touch")
    dev = start_evread(vm)
    Viewer("lvc", ["-d", "1", "-P", "300,400,1", "-P", "320,410,1", "-P",
                   "320,410,0", "-P", "500,100,1"], 60).finish()
    got, state = stop_evread(vm, dev)

    def values(t, c):
        return [v for (tt, cc, v) in got if tt == t and cc == c]
    have = (values(EV_KEY, BTN_TOUCH), values(EV_ABS, ABS_MT_TRACKING_ID),
            values(EV_ABS, ABS_MT_POSITION_X), values(EV_ABS, ABS_MT_POSITION_Y))
    want = ([1, 0, 1, 0], [0, -1, 1, -1], [300, 320, 500], [400, 410, 100])
    if have != want:
        fail("touch-mt-contacts", "BTN_TOUCH/TRACKING_ID/MT_X/MT_Y got %s "
             "want %s" % (have, want))
    elif not nothing_held(state) or not re.search(r"slot0 tracking -1\b", state):
        fail("touch-mt-contacts", "still touching after the viewer left: %s"
             % state.strip())
    else:
        ok("touch-mt-contacts")
    stop_server(vm)
    rc, out = vm.run("evread find vncsasl", check=False)
    if rc != 0:
        ok("uinput-device-removed-at-exit")
    else:
        fail("uinput-device-removed-at-exit", "still there: %s" % out)


def case_viewonly(vm):
    stop_server(vm)
    vm.run("mv /dev/uinput /dev/uinput.off")
    start_server(vm, "/dev/fb0")
    log = server_log(vm)
    rc, _ = vm.run("evread find vncsasl", check=False)
    vm.run("mv /dev/uinput.off /dev/uinput")
    if rc != 0 and len(re.findall(r"view-only", log)) == 1:
        ok("no-uinput-runs-view-only-and-says-so-once")
    else:
        fail("no-uinput-runs-view-only-and-says-so-once", log[-300:])
    stop_server(vm)


def case_drm(vm):
    stop_server(vm)
    # the server first: it must leave DRM master to the display program
    start_server(vm, "/dev/dri/card0")
    if "DRM /dev/dri/card0" not in server_log(vm):
        fail("drm-source-opens", server_log(vm)[-300:])
        return
    # commands through a fifo the painter holds open for writing too
    vm.run("mkfifo /tmp/pf; paint drm /dev/dri/card0 A <>/tmp/pf "
           ">/tmp/paint.log 2>&1 &")
    vm.wait_guest("grep -q 'shown A' /tmp/paint.log", 20, "painter shows A")
    a = vm.screendump(os.path.join(T, "drm-A.ppm"))
    c = os.path.join(T, "drm-C.ppm")
    if not painted(a):
        fail("drm-screendump-shows-painting", "%s" % a)
        return
    v = Viewer("lvc", ["-M", a, "-M", c], 120)
    if v.wait_line(r"^match 1 ", 90):
        ok("drm-lvc-pixels-equal-screendump")
    else:
        fail("drm-lvc-pixels-equal-screendump", v.finish(1)[1][-300:] +
             server_log(vm)[-300:])
        return
    vm.run("echo C >/tmp/pf")
    vm.wait_guest("grep -q 'shown C' /tmp/paint.log", 20, "painter shows C")
    vm.screendump(c)
    rc, out = v.finish(60)
    if rc == 0:
        ok("drm-page-flip-followed")
    else:
        fail("drm-page-flip-followed", out[-300:] + server_log(vm)[-300:])
    view("drm-gvnc-pixels-equal-screendump", "gvnc", ["-M", c], 90)
    # the display program quits: its framebuffer goes, the CRTC is off
    v = Viewer("lvc", ["-d", "4"], 60)
    time.sleep(2)
    vm.run("echo q >/tmp/pf", check=False)
    rc, out = v.finish(60)
    log = server_log(vm)
    if rc == 0 and log.count("is off; showing the last picture") == 1:
        ok("drm-crtc-off-keeps-the-last-picture-and-says-so-once")
    else:
        fail("drm-crtc-off-keeps-the-last-picture-and-says-so-once",
             out[-200:] + log[-300:])
    # without root the kernel gives no buffer handles: a flip is logged
    stop_server(vm)
    vm.run("paint drm /dev/dri/card0 A <>/tmp/pf >/tmp/paint.log 2>&1 &")
    vm.wait_guest("grep -q 'shown A' /tmp/paint.log", 20, "painter shows A")
    start_server(vm, "/dev/dri/card0", "-u nobody")
    v = Viewer("lvc", ["-d", "4"], 60)
    time.sleep(1)
    vm.run("echo C >/tmp/pf")
    vm.wait_guest("grep -q 'shown C' /tmp/paint.log", 20, "painter shows C")
    rc, out = v.finish(60)
    log = server_log(vm)
    if rc == 0 and "only to the DRM master or CAP_SYS_ADMIN" in log:
        ok("drm-as-nobody-says-why-a-flip-cannot-be-followed")
    else:
        fail("drm-as-nobody-says-why-a-flip-cannot-be-followed",
             out[-200:] + log[-300:])
    vm.run("echo q >/tmp/pf", check=False)


def case_arm64(vm):
    """the arm64 static build (make static FB=linux CC=aarch64-linux-gnu-gcc)
    under qemu-user in the guest, on the real fbdev: qemu-user passes the
    fbdev ioctls but not uinput's, so it runs view-only and says so"""
    if not os.path.exists(os.path.join(T, "arm64/vncsasl-static")):
        print("skip arm64-static-under-qemu-user: %s" % open(os.path.join(
            T, "arm64/why")).read().strip(), flush=True)
        return
    stop_server(vm)
    vm.run("paint fb /dev/fb0 C")
    settle(vm)
    c = vm.screendump(os.path.join(T, "arm64-C.ppm"))
    start_server(vm, "/dev/fb0", wrap="qemu-aarch64 /arm64/")
    view("arm64-static-under-qemu-user-pixels-equal-screendump", "lvc",
         ["-M", c], 120)
    log = server_log(vm)
    if "running view-only" in log:
        ok("arm64-under-qemu-user-no-uinput-view-only")
    else:
        fail("arm64-under-qemu-user-no-uinput-view-only", log[-300:])
    stop_server(vm)


def case_drm_virtio(vm):
    """virtio-gpu: another DRM driver (shmem buffers, DIRTYFB), read through
    a dma-buf export with DMA_BUF_IOCTL_SYNC (-x ...,dmabuf)"""
    rc, out = vm.run("for c in /sys/class/drm/card[0-9]; do grep -q "
                     "PCI_ID=1AF4:1050 $c/device/uevent 2>/dev/null && "
                     "echo /dev/dri/${c##*/}; done", check=False)
    card = out.split()[-1] if out.split() else ""
    if not card.startswith("/dev/dri/"):
        fail("drm-virtio-gpu-card", "no virtio-gpu card: %s" % out)
        return
    vm.run("mkfifo /tmp/pv; paint drm %s A <>/tmp/pv >/tmp/pv.log 2>&1 &"
           % card)
    vm.wait_guest("grep -q 'shown A' /tmp/pv.log", 20, "painter shows A")
    start_server(vm, card + ",dmabuf")
    if "(dma-buf)" not in server_log(vm):
        fail("drm-virtio-gpu-dmabuf", server_log(vm)[-300:])
        return
    time.sleep(0.5)
    a = vm.screendump(os.path.join(T, "virtio-A.ppm"), device="vgpu")
    c = os.path.join(T, "virtio-C.ppm")
    if not painted(a):
        fail("drm-virtio-gpu-screendump-shows-painting", a)
        return
    v = Viewer("lvc", ["-M", a, "-M", c], 120)
    if v.wait_line(r"^match 1 ", 90):
        ok("drm-virtio-gpu-dmabuf-lvc-pixels-equal-screendump")
    else:
        fail("drm-virtio-gpu-dmabuf-lvc-pixels-equal-screendump",
             v.finish(1)[1][-300:] + server_log(vm)[-300:])
        return
    vm.run("echo C >/tmp/pv")
    vm.wait_guest("grep -q 'shown C' /tmp/pv.log", 20, "painter shows C")
    time.sleep(0.5)
    vm.screendump(c, device="vgpu")
    rc, out = v.finish(60)
    if rc == 0:
        ok("drm-virtio-gpu-dmabuf-page-flip-followed")
    else:
        fail("drm-virtio-gpu-dmabuf-page-flip-followed", out[-300:] +
             server_log(vm)[-300:])
    vm.run("echo q >/tmp/pv", check=False)
    stop_server(vm)


def cpu_ticks(vm):
    _, out = vm.run("echo ticks $(cut -d' ' -f14,15 /proc/$(cat /tmp/v.pid)/stat)")
    m = re.search(r"ticks (\d+) (\d+)", out)
    return int(m.group(1)) + int(m.group(2))


def case_bench(vm, label):
    stop_server(vm)
    vm.run("paint fb /dev/fb0 A")
    start_server(vm, "/dev/fb0")
    v = Viewer("lvc", ["-d", "14"], 60)
    time.sleep(2)
    t0, c0 = time.monotonic(), cpu_ticks(vm)
    vm.run("sleep 10")
    t1, c1 = time.monotonic(), cpu_ticks(vm)
    v.finish()
    idle = (c1 - c0) / (t1 - t0)        # ticks of 10 ms per second: %
    v = Viewer("lvc", ["-d", "10"], 60)
    time.sleep(2)
    c0 = cpu_ticks(vm)
    _, anim = vm.run("paint anim /dev/fb0 10 30", 60)
    c1 = cpu_ticks(vm)
    rc, out = v.finish()
    m = re.search(r"rate=([\d.]+)/s", out)
    a = re.search(r"anim (\d+) frames in ([\d.]+)", anim)
    print("bench: %s fb-linux 1024x768 XRGB8888, TCG guest, 1 viewer "
          "(raw, TLS): idle cpu %.1f%% on a still screen; full-screen "
          "changes: painter %s frames/s (at most 30), viewer %s updates/s, server cpu "
          "%.0f%%" % (label, idle, "%.1f" % (int(a.group(1)) / float(a.group(2)))
                      if a else "?", m.group(1) if m else "?",
                      (c1 - c0) / 10.0), flush=True)
    stop_server(vm)


def case_vfb(vm):
    """vfb (no display device): red at bit 0 at 32 bpp, double-buffered by
    panning, then a mode change to 16 bpp at another size: one gtk-vnc
    viewer connected throughout must see each (libvncclient 0.9.14 does
    not follow ExtendedDesktopSize)"""
    vm.run("insmod /lib/modules/vfb.ko vfb_enable=1 videomemorysize=4194304")
    fb = vm.run("ls /sys/class/graphics | grep '^fb[0-9]' | tail -1")[1].split()[-1]
    dev = "/dev/" + fb
    front, back, small = (os.path.join(T, "vfb-%s.ppm" % n)
                          for n in ("front", "back", "16"))
    vm.run("paint mode %s 640 480 32 960 && paint fb %s A" % (dev, dev))
    mode = guest_ref(vm, fb, "A", front)
    vm.run("paint pan %s 480 && paint fb %s B" % (dev, dev))
    guest_ref(vm, fb, "B", back)
    stop_server(vm)
    start_server(vm, dev)
    v = Viewer("gvnc", ["-e", "raw,desktopsize", "-M", back, "-M", front,
                        "-M", small], 120)
    if v.wait_line(r"^match 1 ", 90):
        ok("vfb-xbgr8888-gvnc-pixels-equal-framebuffer")
        print("info: vfb %s" % mode, flush=True)
    else:
        fail("vfb-xbgr8888-gvnc-pixels-equal-framebuffer", v.finish(1)[1][-300:])
        return
    vm.run("paint pan %s 0" % dev)
    if v.wait_line(r"^match 2 ", 60):
        ok("vfb-pan-shows-the-front-buffer")
    else:
        fail("vfb-pan-shows-the-front-buffer", v.finish(1)[1][-300:])
        return
    vm.run("paint mode %s 800 600 16 && paint fb %s B" % (dev, dev))
    mode16 = guest_ref(vm, fb, "B", small)
    rc, out = v.finish(60)
    if rc == 0 and "desktop resized to 800x600" in server_log(vm):
        ok("vfb-mode-change-to-bgr565-800x600-reaches-viewer-as-resize")
        print("info: vfb then %s" % mode16, flush=True)
    else:
        fail("vfb-mode-change-to-bgr565-800x600-reaches-viewer-as-resize",
             out[-300:] + server_log(vm)[-300:])
    stop_server(vm)


def guest_ref(vm, fb, pat, out):
    """vfb has no display: the reference is paint.c's picture cut to the
    framebuffer's bitfields, drawn on the host"""
    _, var = vm.run("paint var /dev/%s" % fb)
    f = dict(kv.split("=") for kv in var.split() if "=" in kv)
    subprocess.run([os.path.join(T, "guest/paint"), "ref", pat, f["w"],
                    f["h"], "%s,%s,%s" % (f["r"], f["g"], f["b"]), out],
                   check=True)
    return var.strip().splitlines()[-1]


def want(case):
    """VM_CASES=drm,bench (for a developer): only those"""
    sel = os.environ.get("VM_CASES")
    return not sel or case in sel.split(",")


def main():
    display = ["-device", "VGA,xres=1024,yres=768"]
    vm = VM("bochs", T, KDIR, INITRD, PORT, display)
    try:
        ver = vm.ready(BOOT_SECS)
        print("info: %s booted in %.1f s (QEMU TCG, bochs VGA)" % (
            ver, vm.boot_secs), flush=True)
        vm.run("export PS1=")
        _, bpp = vm.run("cat /sys/class/graphics/fb0/bits_per_pixel")
        start_server(vm, "/dev/fb0", "-u nobody")
        if "running as nobody" in server_log(vm):
            ok("devices-opened-before-dropping-privileges")
        else:
            fail("devices-opened-before-dropping-privileges",
                 server_log(vm)[-300:])
        if want("fbdev"):
            case_fbdev(vm, "bochs", "fbdev-xrgb8888")
        if want("input"):
            case_input_mouse(vm)
        if want("rotate"):
            case_rotate(vm, os.path.join(T, "bochs-B.ppm"))
        if want("touch"):
            case_touch(vm)
        if want("viewonly"):
            case_viewonly(vm)
        if want("drm"):
            case_drm(vm)
        if want("bench"):
            case_bench(vm, "bochs")
        if want("arm64"):
            case_arm64(vm)
    except VMError as e:
        fail("vm-bochs", e)
    finally:
        if vm.restarts:
            print("info: the guest shell ended %d time(s) and was replaced"
                  % vm.restarts, flush=True)
        vm.stop()
        if vm.qemu.returncode not in (0, None):
            fail("vm-bochs-qemu-exit", "qemu exited %s" % vm.qemu.returncode)
    if not want("cirrus") and not want("vfb") and not want("virtio"):
        return 1 if failed else 0

    display = ["-device", "cirrus-vga", "-device", "virtio-gpu-pci,id=vgpu"]
    vm = VM("cirrus", T, KDIR, INITRD, PORT, display)
    try:
        ver = vm.ready(BOOT_SECS)
        print("info: %s booted in %.1f s (QEMU TCG, Cirrus VGA, virtio-gpu)" % (
            ver, vm.boot_secs), flush=True)
        vm.run("export PS1=")
        _, bpp = vm.run("cat /sys/class/graphics/fb0/bits_per_pixel")
        if bpp.split()[-1] != "16":
            fail("cirrus-fb0-is-rgb565", "fb0 has %s bpp" % bpp.strip())
        start_server(vm, "/dev/fb0")
        if "RGB565" not in server_log(vm):
            fail("fbdev-rgb565-layout", server_log(vm)[-300:])
        if want("cirrus"):
            case_fbdev(vm, "cirrus", "fbdev-rgb565")
        stop_server(vm)
        if want("vfb"):
            case_vfb(vm)
        if want("virtio"):
            case_drm_virtio(vm)
    except VMError as e:
        fail("vm-cirrus", e)
    finally:
        vm.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
