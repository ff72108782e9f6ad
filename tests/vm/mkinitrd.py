#!/usr/bin/python3
"""mkinitrd.py - a Debian kernel and a small initramfs for the VM tests.

  mkinitrd.py kernel CACHE          -> prints the kernel directory (vmlinuz,
                                       modules/, modules.order), made once
  mkinitrd.py initrd KDIR OUT SRC:DST...  -> OUT, an uncompressed newc cpio
                                       with busybox, /init, the modules of
                                       KDIR and the files given

The kernel comes from Debian's package, fetched with apt-get download and
kept in CACHE (outside tests/tmp, which ./test.sh wipes), with the subset
the tests use beside it.  The version is
pinned; when the mirror has moved on (security updates replace the
package), the one linux-image-amd64 depends on now is taken instead.
Only the modules the tests load are unpacked (a few MB, not 400), with
their dependencies read from each module's modinfo "depends=".
"""
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys

PIN = "6.1.0-57-amd64"
# what the guest loads at boot, in this order after their dependencies;
# vfb is kept but loaded by the tests (it would take /dev/fb0 first)
MODULES = ["virtio_pci", "virtio_net", "evdev", "uinput", "bochs", "cirrus",
           "virtio_gpu", "vfb"]
BOOT_SKIP = {"vfb"}


def sh(*args, **kw):
    return subprocess.run(list(args), check=True, **kw)


def fetch(cache):
    """the .deb of the pinned kernel, or of the current one"""
    dl = os.path.join(cache, "dl")
    os.makedirs(dl, exist_ok=True)
    names = ["linux-image-" + PIN]
    try:
        dep = subprocess.run(["apt-cache", "depends", "linux-image-amd64"],
                             capture_output=True, text=True).stdout
        m = re.search(r"Depends: (linux-image-[0-9][^\s]*)", dep)
        if m and m.group(1) not in names:
            names.append(m.group(1))
    except OSError:
        pass
    for updated in (False, True):
        for name in names:
            if not glob.glob(os.path.join(dl, name + "_*.deb")):
                subprocess.run(["apt-get", "download", name], cwd=dl,
                               capture_output=True, text=True)
            debs = glob.glob(os.path.join(dl, name + "_*.deb"))
            if debs:        # fetched now, or kept from an earlier run
                return name[len("linux-image-"):], debs[0]
        if updated or os.geteuid() != 0:
            break
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
    sys.exit("mkinitrd: cannot download %s (apt-get download)" %
             " or ".join(names))


def modinfo_depends(path):
    with open(path, "rb") as f:
        data = f.read()
    for s in data.split(b"\0"):
        if s.startswith(b"depends="):
            return [d for d in s[8:].decode().split(",") if d]
    return []


def kernel(cache):
    """the kernel's directory: vmlinuz, modules/, modules.order; named by
    the version and the module list, so a new list makes a new one (from
    the package kept in CACHE/dl)"""
    tag = hashlib.sha256(" ".join(MODULES).encode()).hexdigest()[:8]
    kdir = os.path.join(cache, "linux-%s-%s" % (PIN, tag))
    if os.path.exists(os.path.join(kdir, "modules.order")):
        return kdir
    ver, deb = fetch(cache)
    kdir = os.path.join(cache, "linux-%s-%s" % (ver, tag))
    if os.path.exists(os.path.join(kdir, "modules.order")):
        return kdir
    x = os.path.join(cache, "x")
    shutil.rmtree(x, ignore_errors=True)
    sh("dpkg-deb", "-x", deb, x)
    root = glob.glob(os.path.join(x, "lib/modules/*"))[0]
    index = {}
    for p in glob.glob(os.path.join(root, "kernel/**/*.ko"), recursive=True):
        index[os.path.basename(p)[:-3].replace("-", "_")] = p
    order, seen = [], set()

    def add(name):
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        if name not in index:       # built in
            return
        for d in modinfo_depends(index[name]):
            add(d)
        order.append(name)
    for m in MODULES:
        add(m)
    tmp = kdir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "modules"))
    shutil.copy(glob.glob(os.path.join(x, "boot/vmlinuz-*"))[0],
                os.path.join(tmp, "vmlinuz"))
    for name in order:
        shutil.copy(index[name], os.path.join(tmp, "modules", name + ".ko"))
    with open(os.path.join(tmp, "modules.order"), "w") as f:
        for name in order:
            f.write(name + "\n")
    shutil.rmtree(kdir, ignore_errors=True)
    os.rename(tmp, kdir)
    shutil.rmtree(x, ignore_errors=True)
    return kdir


INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in $(cat /etc/modules.boot); do insmod /lib/modules/$m.ko; done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
# the console must not blink its cursor into the framebuffer
for v in /sys/class/vtconsole/vtcon*; do
	grep -q 'frame buffer' $v/name && echo 0 >$v/bind
done
echo 2 >/proc/sys/kernel/printk
stty -F /dev/ttyS0 -echo
echo "@@READY $(uname -r)" >/dev/ttyS0
# The shell writes into a pipe, so it is not interactive (busybox ash is
# when both ends are a terminal), and an interactive one's line editing
# takes a SIGCHLD (a background job ending) during its read for the end of
# its input.  init must not exit (the kernel panics): a shell that ends is
# reported and replaced.
while :; do
	sh </dev/ttyS0 2>&1 | cat >/dev/ttyS0
	echo "@@SHELL-EXITED $?" >/dev/ttyS0
done
"""


def cpio_newc(out, entries):
    """entries: (path, mode, data or None for a directory or link target)"""
    ino = 1
    with open(out, "wb") as f:
        def put(name, mode, data):
            nonlocal ino
            nb = name.encode() + b"\0"
            hdr = "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X" % (
                ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0)
            ino += 1
            f.write(hdr.encode() + nb)
            f.write(b"\0" * ((4 - (110 + len(nb)) % 4) % 4))
            f.write(data)
            f.write(b"\0" * ((4 - len(data) % 4) % 4))
        for name, mode, data in entries:
            put(name, mode, data)
        put("TRAILER!!!", 0, b"")


def initrd(kdir, out, files):
    e = []
    for d in ["bin", "dev", "etc", "lib", "lib/modules", "proc", "sys",
              "tmp", "root"]:
        e.append((d, 0o40755, b""))
    with open("/bin/busybox", "rb") as f:
        e.append(("bin/busybox", 0o100755, f.read()))
    e.append(("init", 0o100755, INIT.encode()))
    with open(os.path.join(kdir, "modules.order")) as f:
        order = f.read().split()
    e.append(("etc/modules.boot", 0o100644,
              "".join(m + "\n" for m in order if m not in BOOT_SKIP).encode()))
    for m in order:
        with open(os.path.join(kdir, "modules", m + ".ko"), "rb") as f:
            e.append(("lib/modules/%s.ko" % m, 0o100644, f.read()))
    e.append(("etc/passwd", 0o100644,
              b"root:x:0:0:root:/root:/bin/sh\n"
              b"nobody:x:65534:65534:nobody:/:/bin/false\n"))
    e.append(("etc/group", 0o100644, b"root:x:0:\nnogroup:x:65534:\n"))
    dirs = set()
    for spec in files:
        src, dst = spec.split(":", 1)
        dst = dst.lstrip("/")
        parts = dst.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs and d not in ("bin", "etc", "lib", "tmp"):
                dirs.add(d)
                e.append((d, 0o40755, b""))
        with open(src, "rb") as f:
            mode = 0o100755 if os.access(src, os.X_OK) else 0o100600
            e.append((dst, mode, f.read()))
    cpio_newc(out, e)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "kernel":
        print(kernel(sys.argv[2]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "initrd":
        initrd(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)
