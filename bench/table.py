#!/usr/bin/python3
"""bench/table.py RESULTS HAVE_X11 - the table of make bench (markdown).

RESULTS has one line per run: "x11|dummy key=value ...", as bench/run.sh
writes them from bench/bclient's output.  For each case the median of the
runs is shown; for the X11 cases "vncsasl / x11vnc (ratio)".  Then the
targets of issue 6, each with what was measured.
"""
import statistics
import sys

COLS = [  # key, heading, format
    ("ups", "updates/s per viewer", "%.1f"),
    ("ups_min", "slowest viewer", "%.1f"),
    ("mpxs", "Mpx/s (all)", "%.1f"),
    ("mbs", "MB/s (all)", "%.1f"),
    ("cpu", "server CPU %", "%.1f"),
    ("mspx", "CPU ms per Mpx", "%.2f"),
    ("rss", "RSS MiB", "%.1f"),
    ("ttff", "first frame ms", "%.0f"),
    ("xcpu", "Xvfb CPU %", "%.1f"),
]
SCENES = ["static", "cells", "full"]


def load(path):
    runs = {}
    for line in open(path):
        f = line.split()
        if not f:
            continue
        kv = dict(x.split("=", 1) for x in f[1:] if "=" in x)
        key = (f[0], kv["scene"], kv["srv"], kv["enc"], int(kv["n"]))
        if "failed" in kv:
            runs.setdefault(key, []).append(None)
            continue
        v = {k: float(kv[k]) for k in ("ups", "ups_min", "mpxs", "mbs", "cpu",
                                        "xcpu", "rss", "ttff")}
        v["mspx"] = v["cpu"] * 10 / v["mpxs"] if v["mpxs"] > 0.05 else None
        runs.setdefault(key, []).append(v)
    return runs


def median(runs, key, col):
    vals = [r[col] for r in runs.get(key, []) if r is not None and r[col] is not None]
    return statistics.median(vals) if vals else None


def fmt(v, f):
    if v is None:
        return "-"
    if v >= 1e8:
        return "never"
    return f % v


def ratio(a, b):
    if a is None or b is None or b == 0 or a >= 1e8 or b >= 1e8:
        return "-"
    return "%.2f" % (a / b)


def main():
    runs = load(sys.argv[1])
    have_x11 = len(sys.argv) < 3 or sys.argv[2] == "1"
    cases = sorted({(k[1], k[3], k[4]) for k in runs if k[0] == "x11"},
                   key=lambda c: (SCENES.index(c[0]), c[1] != "raw", c[2]))
    print("### X11: vncsasl / x11vnc (ratio), 1280x800, medians of the runs\n")
    print("| scene | enc | viewers | " + " | ".join(c[1] for c in COLS) + " |")
    print("|---" * (3 + len(COLS)) + "|")
    for scene, enc, n in cases:
        cells = []
        for col, _, f in COLS:
            a = median(runs, ("x11", scene, "vncsasl", enc, n), col)
            b = median(runs, ("x11", scene, "x11vnc", enc, n), col)
            if not have_x11:
                cells.append("- / %s" % fmt(b, f))
            else:
                cells.append("%s / %s (%s)" % (fmt(a, f), fmt(b, f), ratio(a, b)))
        print("| %s | %s | %d | %s |" % (scene, enc, n, " | ".join(cells)))
    if not have_x11:
        print("\n(vncsasl FB=x11 not measured: this tree has the placeholder fb-x11.c)")

    dcases = sorted({(k[1], k[3], k[4]) for k in runs if k[0] == "dummy"},
                    key=lambda c: (SCENES.index(c[0]), c[1] != "raw", c[2]))
    if dcases:
        print("\n### FB=dummy: the server alone (static: still; cells: the moving "
              "dummy picture at 30 frames/s)\n")
        dcols = [c for c in COLS if c[0] != "xcpu"]
        print("| scene | enc | viewers | " + " | ".join(c[1] for c in dcols) + " |")
        print("|---" * (3 + len(dcols)) + "|")
        for scene, enc, n in dcases:
            print("| %s | %s | %d | %s |" % (scene, enc, n, " | ".join(
                fmt(median(runs, ("dummy", scene, "dummy", enc, n), c), f)
                for c, _, f in dcols)))

    if not have_x11:
        return
    print("\n### Targets\n")
    v = lambda s, e, n, c: median(runs, ("x11", s, "vncsasl", e, n), c)
    x = lambda s, e, n, c: median(runs, ("x11", s, "x11vnc", e, n), c)

    def line(ok, text):
        print("- %s %s" % ("met:" if ok else "MISSED:", text))

    a, b = v("full", "zrle", 1, "ups"), x("full", "zrle", 1, "ups")
    if a is not None and b:
        line(a >= 28 and a >= 2.5 * b, "full-screen change, ZRLE, 1 viewer: %.1f updates/s "
             "(>= 28), %.2fx x11vnc's %.1f (>= 2.5x)" % (a, a / b, b))
    a = v("cells", "zrle", 16, "ups_min")
    if a is not None:
        line(a >= 0.9 * 30, "small cells, ZRLE, 16 viewers: the slowest gets %.1f "
             "updates/s of the workload's 30" % a)
    a, b = v("cells", "zrle", 16, "mspx"), x("cells", "zrle", 16, "mspx")
    if a is not None and b:
        line(a <= 0.5 * b, "small cells, ZRLE, 16 viewers: CPU per delivered megapixel "
             "%.2f ms, %.2fx x11vnc's %.2f (<= 0.5x)" % (a, a / b, b))
    a = v("static", "zrle", 1, "cpu")
    if a is not None:
        line(a <= 1.0, "idle with a viewer connected (static, ZRLE, 1): %.1f %% CPU" % a)
    t = [v(s, "zrle", 1, "ttff") for s in SCENES]
    t = [q for q in t if q is not None]
    if t:
        line(max(t) <= 50, "first full frame, ZRLE, 1 viewer: %s ms (<= 50)" %
             ", ".join("%.0f" % q for q in t))
    for s in ("cells", "full"):
        a, b = v(s, "zrle", 16, "rss"), x(s, "zrle", 16, "rss")
        if a is not None and b:
            line(a <= 0.5 * b, "RSS with 16 ZRLE viewers (%s): %.1f MiB, %.2fx x11vnc's "
                 "%.1f (<= 0.5x)" % (s, a, a / b, b))


if __name__ == "__main__":
    main()
