#!/usr/bin/python3
"""bench/size-linux.py - what the Linux framebuffer source (make FB=linux)
costs on a small board's screens: binary size (as built and stripped),
shared libraries, and resident memory (VmRSS) with 0, 1 and 4 viewers at
800x480 RGB565 and 1280x720 XRGB8888.

    bench/size-linux.py [PORT]        (default 15980; 127.0.0.1 only)

The servers run in the VM of tests/t-linux.sh (a Debian kernel under QEMU
TCG; the dynamic build gets the host's shared libraries in its
initramfs), on a vfb framebuffer set to each mode with a still picture
painted.  Viewers are tests/lvc on the host (X509SASL, SCRAM-SHA-256, raw
32 bpp), each holding its connection after its first complete picture;
RSS is read from /proc/PID/status in the guest once they all have it.
Prints a Markdown table.  Needs what tests/t-linux.sh needs.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests/vm"))
from vm import VM  # noqa: E402

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 15980
CACHE = os.environ.get("VNCSASL_VM_CACHE", os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
    "vncsasl-vm"))


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def main():
    t = tempfile.mkdtemp(prefix="size-linux.")
    try:
        run(t)
    finally:
        shutil.rmtree(t, ignore_errors=True)


def run(t):
    src = os.path.join(t, "src")
    os.makedirs(os.path.join(src, "contrib"))
    for f in ("Makefile", "config.mk", "vncsasl.c", "vncsasl.h",
              "fb-linux.c"):
        shutil.copy(os.path.join(TOP, f), src)
    for f in os.listdir(os.path.join(TOP, "contrib")):
        if f.endswith(".c"):
            shutil.copy(os.path.join(TOP, "contrib", f),
                        os.path.join(src, "contrib"))
    sh("make -s -C %s FB=linux vncsasl >/dev/null 2>&1 && "
       "make -s -C %s FB=linux static >/dev/null 2>&1" % (src, src))
    dyn, sta = os.path.join(src, "vncsasl"), os.path.join(src, "vncsasl-static")
    sh("cc -std=gnu99 -O2 -static $(pkg-config --cflags libdrm) -o %s/paint "
       "%s/tests/vm/paint.c" % (t, TOP))
    sh("make -s -C %s tests/lvc >/dev/null" % TOP)
    kdir = subprocess.run([sys.executable, os.path.join(TOP, "tests/vm/mkinitrd.py"),
                           "kernel", CACHE], check=True, capture_output=True,
                          text=True).stdout.strip()
    libs = re.findall(r"(/\S+\.so[.\d]*)", subprocess.run(
        ["ldd", dyn], capture_output=True, text=True).stdout)
    # certificates and a password file as tests/lib.sh makes them
    env = dict(os.environ, HOME=os.path.join(t, "home"), TOP=TOP, T=t)
    sh("bash -c '. %s/tests/lib.sh; mkcerts %s/pki; "
       "printf \"secret\\n\" | %s -k %s/passwd alice' >/dev/null 2>&1"
       % (TOP, t, dyn, t), env=env)
    files = ["%s:bin/vncsasl" % dyn, "%s:bin/vncsasl-static" % sta,
             "%s/paint:bin/paint" % t,
             "%s/pki/server-cert.pem:pki/server-cert.pem" % t,
             "%s/pki/server-key.pem:pki/server-key.pem" % t,
             "%s/passwd:pki/passwd" % t]
    files += ["%s:%s" % (os.path.realpath(p), p) for p in libs]
    initrd = os.path.join(t, "initrd")
    subprocess.run([sys.executable, os.path.join(TOP, "tests/vm/mkinitrd.py"),
                    "initrd", kdir, initrd] + files, check=True)
    vm = VM("size", t, kdir, initrd, PORT, ["-device", "VGA"], mem=512)
    rows, ver = [], "?"
    try:
        ver = vm.ready(300)
        vm.run("export PS1=")
        vm.run("insmod /lib/modules/vfb.ko vfb_enable=1 "
               "videomemorysize=4194304")
        fb = vm.run("ls /sys/class/graphics | grep '^fb[0-9]' | tail -1"
                    )[1].split()[-1]
        for w, h, bpp, name in ((800, 480, 16, "800x480 RGB565"),
                                (1280, 720, 32, "1280x720 XRGB8888")):
            vm.run("paint mode /dev/%s %d %d %d && paint fb /dev/%s A" % (
                fb, w, h, bpp, fb))
            for binary, label, path in (("vncsasl", "dynamic (`make FB=linux`)", dyn),
                                        ("vncsasl-static",
                                         "static (`make static FB=linux`)", sta)):
                rss = measure(vm, t, binary, fb, env)
                size = os.path.getsize(path)
                sh("strip -o %s/stripped %s" % (t, path))
                stripped = os.path.getsize(os.path.join(t, "stripped"))
                rows.append("| %s | %s | %d | %d | %d | %s | %s | %s |" % (
                    label, name, size, stripped,
                    len(libs) if binary == "vncsasl" else 0, *rss))
    finally:
        vm.stop()
    print("| build | screen | binary (bytes) | stripped (bytes) | shared "
          "libraries | RSS 0 viewers (KiB) | RSS 1 viewer (KiB) | RSS 4 "
          "viewers (KiB) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(r)
    print()
    print("x86_64 guest (Debian %s under QEMU TCG), vfb framebuffer; viewers:"
          " X509SASL + SCRAM-SHA-256, raw 32 bpp, idle after one full picture"
          % ver)


def rss(vm):
    return vm.run("awk '/^VmRSS:/ { print $2 }' /proc/$(cat /tmp/v.pid)/status"
                  )[1].split()[-1]


def measure(vm, t, binary, fb, env):
    vm.run("%s -s x509sasl -C /pki/server-cert.pem -K /pki/server-key.pem "
           "-P /pki/passwd -m SCRAM-SHA-256 -l 0.0.0.0 -p 5900 -x /dev/%s "
           ">/tmp/v.log 2>&1 & echo $! >/tmp/v.pid" % (binary, fb))
    vm.wait_guest("grep -q 'listening on' /tmp/v.log", 30, "server")
    time.sleep(1)
    out = [rss(vm)]
    for n in (1, 4):
        ps = [subprocess.Popen(
            [os.path.join(TOP, "tests/lvc"), "-C",
             os.path.join(t, "pki/ca-cert.pem"), "-u", "alice", "-p",
             "secret", "-m", "SCRAM-SHA-256", "-R", "-d", "30", "-t", "90",
             "127.0.0.1", str(PORT)], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=env) for _ in range(n)]
        vm.wait_guest("[ $(grep -c ' session ' /tmp/v.log) -ge %d ]" % (
            {1: 1, 4: 5}[n]), 120, "%d viewers" % n)
        time.sleep(3 + 3 * n)   # their first full pictures
        out.append(rss(vm))
        for p in ps:
            p.kill()
            p.wait()
        time.sleep(1)
    vm.run("kill $(cat /tmp/v.pid); sleep 1")
    return out


if __name__ == "__main__":
    main()
