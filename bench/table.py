#!/usr/bin/python3
"""bench/table.py RESULTS - the tables and targets of make bench (markdown).

RESULTS has one line per run, as bench/run.sh writes them:
"size=WxH scene=S srv=X link=L prof=P n=N run=R key=value ...", the keys
after run= from bench/bclient (see bclient.c).  For each case the median of
the runs is shown as "vncsasl / x11vnc / x0vncserver (ratio)", the ratio
being vncsasl over the best peer of that case: the peer that delivered
more (frames/s equivalent; in the cells scene, updates/s).  Then the
targets of issue 13, met or MISSED, each MISSED line with the figure that
limits it.
"""
import os
import statistics
import sys

FPS = 30		# the workload's frames a second (bench/run.sh)
CEILING = 0.95 * FPS	# delivering this much is keeping up
SERVERS = ["vncsasl", "x11vnc", "x0vncserver"]
PEERS = SERVERS[1:]
SCENES = ["full", "scroll", "cells"]
LINKS = ["loopback", "50mbit", "10mbit", "50mbit-rtt40"]
PROFILES = ["gtk", "lvc", "tiger", "zrle", "raw"]
LINK_BPS = {"50mbit": 50e6, "10mbit": 10e6, "50mbit-rtt40": 50e6}
LINK_TEXT = {
    "loopback": "loopback, no shaping",
    "50mbit": "50 Mbit/s (tbf)",
    "10mbit": "10 Mbit/s (tbf)",
    "50mbit-rtt40": "50 Mbit/s (tbf) + 40 ms round trip (bench/relay)",
}
PROF_TEXT = {"gtk": "gtk-vnc", "lvc": "libvncclient", "tiger": "TigerVNC",
             "zrle": "ZRLE only", "raw": "Raw only"}
NUM = ("fps", "fps_min", "ups", "ups_min", "mpxs", "mbs", "kbf", "kbu", "lat",
       "cpu", "xcpu", "rss", "ttff", "ttff_max")


def load(path, meta):
    runs = {}
    for line in open(path):
        f = line.split()
        kv = dict(x.split("=", 1) for x in f if "=" in x)
        if line.startswith("#"):
            meta.update(kv)
            continue
        if "srv" not in kv or kv.get("link", "-") == "-":
            continue
        key = (kv["size"], kv["scene"], kv["link"], kv["prof"], int(kv["n"]),
               kv["srv"])
        if "failed" in kv:
            runs.setdefault(key, []).append(None)
            continue
        v = {k: float(kv[k]) for k in NUM if k in kv}
        v = {k: x for k, x in v.items() if x == x}	# no NaN
        for k in ("kbf", "kbu", "lat"):	# -1: nothing measured
            if v.get(k, -1) < 0:
                v[k] = None
        # what was delivered, per viewer: frames/s equivalent and KB per
        # frame; in the cells scene, where a frame is a few cells, updates/s
        # up to the workload's rate (a server that splits a frame into
        # twenty updates delivers one frame, not twenty) and KB per
        # delivered frame (bytes a second over those updates)
        if kv["scene"] == "cells":
            u = min(v.get("ups", 0), FPS)
            v["rate"] = min(v.get("ups_min", 0), FPS)
            v["rate_mean"] = u
            v["kbr"] = v["mbs"] * 1e3 / int(kv["n"]) / u if u > 0 else None
        else:
            v["rate"] = v.get("fps_min")
            v["rate_mean"] = v.get("fps")
            v["kbr"] = v.get("kbf")
        v["used"] = kv.get("used", "-")
        v["cu"] = kv.get("cu", "0") == "1"
        runs.setdefault(key, []).append(v)
    return runs


class Cases:
    def __init__(self, runs):
        self.runs = runs

    def med(self, key, col):
        vals = [r[col] for r in self.runs.get(key, [])
                if r is not None and r.get(col) is not None]
        return statistics.median(vals) if vals else None

    def failed(self, key):
        rs = self.runs.get(key, [])
        return rs and all(r is None for r in rs)

    def used(self, key):
        """the encodings of the median-fps run: 'jpeg', 'tight+jpeg'..."""
        rs = [r for r in self.runs.get(key, []) if r is not None]
        if not rs:
            return "-"
        rs.sort(key=lambda r: r["fps"])
        u = rs[len(rs) // 2]["used"]
        if u == "-":
            return "-"
        parts = sorted(((float(p.split(":")[1]), p.split(":")[0])
                        for p in u.split(",")), reverse=True)
        return "+".join(n for pct, n in parts if pct >= 10 or n == parts[0][1])


def rate_col(scene):
    """what was delivered (see load) and its bytes"""
    return ("rate", "kbr")


def best_peer(c, key5, scene):
    """the peer that delivered more in this case (ties: fewer bytes)"""
    rc, bc = rate_col(scene)
    best, bkey = None, None
    for p in PEERS:
        r = c.med(key5 + (p,), rc)
        if r is None:
            continue
        b = c.med(key5 + (p,), bc) or 1e12
        k = (round(r / 0.02) if r > 0 else 0, -b)	# within 2%: bytes decide
        if bkey is None or k > bkey:
            best, bkey = p, k
    return best


def fmt(v, f):
    if v is None:
        return "-"
    if v >= 1e8:
        return "never"
    return f % v


def cell(c, key5, col, f, best):
    vals = [c.med(key5 + (s,), col) for s in SERVERS]
    text = " / ".join("fail" if c.failed(key5 + (s,)) else fmt(v, f)
                      for s, v in zip(SERVERS, vals))
    b = c.med(key5 + (best,), col) if best else None
    if vals[0] is not None and b and vals[0] < 1e8 and b < 1e8:
        r = vals[0] / b
        text += " (%.2f)" % r if r < 100 else " (>99)"
    return text


def link_tables(c, out):
    keys = {k[:5] for k in c.runs if k[4] == 1}
    for link in [l for l in LINKS if any(k[2] == l for k in keys)]:
        out.append("\n#### %s, one viewer\n" % LINK_TEXT[link])
        out.append("| size | scene | viewer | frames/s | KB per frame | "
                   "server CPU % | "
                   "latency ms | first frame ms | encoding |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        rows = sorted((k for k in keys if k[2] == link),
                      key=lambda k: (int(k[0].split("x")[0]),
                                     SCENES.index(k[1]), PROFILES.index(k[3])))
        for k in rows:
            size, scene, _, prof, _ = k
            rc, bc = rate_col(scene)
            best = best_peer(c, k, scene)
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                size, scene, PROF_TEXT[prof],
                cell(c, k, rc, "%.1f", best), cell(c, k, bc, "%.0f", best),
                cell(c, k, "cpu", "%.0f", best), cell(c, k, "lat", "%.0f", best),
                cell(c, k, "ttff", "%.0f", best),
                " / ".join(c.used(k + (s,)) for s in SERVERS)))


def multi_table(c, out):
    keys = {k[:5] for k in c.runs if k[4] > 1}
    if not keys:
        return
    size = sorted(keys)[0][0]
    out.append("\n#### %s, loopback, several viewers (each figure per viewer "
               "unless it says all)\n" % size)
    out.append("| scene | viewer | viewers | frames/s (mean) | slowest: frames/s "
               "| slowest: updates/s | server CPU % | KB per frame | "
               "first frame ms (median of the viewers) |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    ones = {k[:4] + (1,) for k in keys}
    rows = sorted(keys | {k for k in ones if k + ("vncsasl",) in c.runs or
                          k + ("x11vnc",) in c.runs},
                  key=lambda k: (SCENES.index(k[1]), PROFILES.index(k[3]), k[4]))
    for k in rows:
        best = best_peer(c, k, k[1])
        out.append("| %s | %s | %d | %s | %s | %s | %s | %s | %s |" % (
            k[1], PROF_TEXT[k[3]], k[4], cell(c, k, "rate_mean", "%.1f", best),
            cell(c, k, "rate", "%.1f", best), cell(c, k, "ups_min", "%.1f", best),
            cell(c, k, "cpu", "%.0f", best), cell(c, k, "kbr", "%.0f", best),
            cell(c, k, "ttff", "%.0f", best)))


def limit(c, key5, link, scene):
    """what holds vncsasl back in this case, in figures"""
    k = key5 + ("vncsasl",)
    rc, bc = rate_col(scene)
    fps, kb, cpu, lat = (c.med(k, x) for x in (rc, bc, "cpu", "lat"))
    b = best_peer(c, key5, scene)
    pkb = c.med(key5 + (b,), bc) if b else None
    peer = " (%s: %.0f)" % (b, pkb) if pkb else ""
    why = []
    if link in LINK_BPS and kb:
        cap = LINK_BPS[link] / 8 / (kb * 1e3)
        if fps is not None and fps >= 0.7 * cap:
            why.append("bytes: %.0f KB per frame%s, so the link carries at "
                       "most %.1f frames/s" % (kb, peer, cap))
    if cpu is not None and cpu >= 85:
        why.append("server CPU: %.0f%% of a core" % cpu)
    if link == "50mbit-rtt40" and lat and not why:
        why.append("round trips: %.0f ms from request to update, at most "
                   "%.0f updates a second with one request in flight" %
                   (lat, 1000 / lat))
    if not why and kb is not None:
        why.append("%.0f KB per frame%s, %.0f%% CPU, latency %s ms" % (
            kb, peer, cpu or 0, fmt(lat, "%.0f")))
    return "; ".join(why) if why else "nothing measured"


def targets(c, out):
    out.append("\n#### Targets (issue 13)\n")
    v = lambda k, col: c.med(k + ("vncsasl",), col)

    def line(ok, text, k=None, link=None, scene=None, why=None):
        if ok is None:
            out.append("- not measured: " + text)
            return
        t = "- %s %s" % ("met:" if ok else "MISSED:", text)
        if not ok and (why or k is not None):
            t += " - limited by " + (why or limit(c, k, link, scene))
        out.append(t)

    def peer(k, col, scene):
        b = best_peer(c, k, scene)
        return (b, c.med(k + (b,), col)) if b else (None, None)

    big = "1920x1080"
    for scene in ("full", "scroll"):
        k = (big, scene, "50mbit", "gtk", 1)
        a = v(k, "rate")
        b, bv = peer(k, "rate", scene)
        line(None if a is None else a >= 28.5,
             "50 Mbit/s, %s, %s, gtk-vnc's encodings: %s frames/s (>= 28.5)%s"
             % (big, scene, fmt(a, "%.1f"), "; best peer %s %.1f (%.2fx)" %
                (b, bv, a / bv) if a is not None and bv else ""), k, "50mbit", scene)
    for scene in ("full", "scroll"):
        k = (big, scene, "50mbit", "lvc", 1)
        a = v(k, "rate")
        b, bv = peer(k, "rate", scene)
        ok = None if a is None or not bv else a >= 2 * bv or a >= CEILING
        line(ok, "50 Mbit/s, %s, %s, libvncclient's lossless list: %s frames/s, "
             "%s the best peer's (%s %s; >= 2x)" % (
                 big, scene, fmt(a, "%.1f"),
                 "%.2fx" % (a / bv) if ok is not None else "-", b,
                 fmt(bv, "%.1f")), k, "50mbit", scene)

    # 10 Mbit/s: every case >= 1.5x; any link: no case below 0.9x
    slow, low, n10, nall = [], [], 0, 0
    for k in sorted({k[:5] for k in c.runs if k[4] == 1}):
        scene, link = k[1], k[2]
        rc, _ = rate_col(scene)
        a = v(k, rc)
        b, bv = peer(k, rc, scene)
        if a is None or not bv:
            continue
        r = a / bv
        nall += 1
        # a case at the workload's rate cannot do better than its peers
        if link == "10mbit":
            n10 += 1
            if r < 1.5 and a < CEILING:
                slow.append((r, k, b, a, bv))
        if r < 0.9 and a < CEILING:
            low.append((r, k, b, a, bv))

    def name(k):
        return "%s %s %s %s" % (k[0], k[1], k[2], PROF_TEXT[k[3]])

    if n10:
        slow.sort(key=lambda t: t[0])
        line(not slow, "10 Mbit/s, every size, scene and viewer: %d of %d cases "
             ">= 1.5x the best peer or at the workload's %d frames/s%s" % (
                 n10 - len(slow), n10, FPS,
                                          "; worst: %s %.2fx (%s %.2f vs %s %.2f)"
                                          % (name(slow[0][1]), slow[0][0], "vncsasl",
                                             slow[0][3], slow[0][2], slow[0][4])
                                          if slow else ""),
             slow[0][1] if slow else None, "10mbit", slow[0][1][1] if slow else None)
    else:
        line(None, "10 Mbit/s cases")
    if nall:
        low.sort(key=lambda t: t[0])
        line(not low, "every link: %d of %d cases >= 0.9x the best peer or "
             "at the workload's rate%s" % (nall - len(low), nall, "; below: " + ", ".join(
                "%s %.2fx" % (name(t[1]), t[0]) for t in low[:12]) +
            (" and %d more" % (len(low) - 12) if len(low) > 12 else "")
            if low else ""),
            low[0][1] if low else None, low[0][1][2] if low else None,
            low[0][1][1] if low else None)

    # small cells: bytes per update <= x0vncserver's
    cells = [k for k in sorted({k[:5] for k in c.runs if k[4] == 1})
             if k[1] == "cells"]
    worse = []
    for k in cells:
        a, t = v(k, "kbr"), c.med(k + ("x0vncserver",), "kbr")
        if a is not None and t:
            worse.append((a / t, k, a, t))
    if worse:
        worse.sort(key=lambda w: -w[0])
        bad = [w for w in worse if w[0] > 1]
        wk = worse[0][1]
        line(not bad, "small cells: KB per delivered frame <= x0vncserver's in "
             "%d of %d cases; worst %s: %.1f vs %.1f KB (%.2fx)" % (
                 len(worse) - len(bad), len(worse), name(wk),
                 worse[0][2], worse[0][3], worse[0][0]),
             wk, wk[2], "cells",
             "bytes per cell: both deliver %s and %s frames/s; vncsasl "
             "sent %s, x0vncserver %s; the other cases over %.1fx: %s" % (
                 fmt(v(wk, "rate_mean"), "%.1f"),
                 fmt(c.med(wk + ("x0vncserver",), "rate_mean"), "%.1f"),
                 c.used(wk + ("vncsasl",)),
                 c.used(wk + ("x0vncserver",)), 1.0,
                 ", ".join("%s %.2fx" % (name(w[1]), w[0]) for w in bad[1:])
                 or "none"))
    else:
        line(None, "small cells against x0vncserver")

    multi = sorted({k[:5] for k in c.runs if k[4] == 16 and k[1] == "full"
                    and k[2] == "loopback"}, key=lambda k: PROFILES.index(k[3]))
    for k in multi:
        a, cpu = v(k, "ups_min"), v(k, "cpu")
        line(None if a is None else a >= 28 and cpu < 100,
             "loopback, 16 viewers, full-screen change, %s, %s: the slowest "
             "viewer %s updates/s (>= 28), server CPU %s%% (< 100)" % (
                 k[0], PROF_TEXT[k[3]], fmt(a, "%.1f"), fmt(cpu, "%.0f")),
             k, "loopback", "full")
    if not multi:
        line(None, "16 viewers on loopback, full-screen change")
    for prof in ("zrle", "gtk"):
        k = (big, "full", "loopback", prof, 1)
        a, cpu = v(k, "fps_min"), v(k, "cpu")
        if a is None:
            continue
        peers = ", ".join("%s %s%%" % (p, fmt(c.med(k[:5] + (p,), "cpu"), "%.0f"))
                          for p in ("x11vnc", "x0vncserver")
                          if c.med(k[:5] + (p,), "cpu") is not None)
        line(a >= 28.5 and cpu <= 35, "loopback, 1 viewer, %s full-screen change, "
             "%s: %.1f frames/s (30) at %.0f%% CPU (<= 35)" % (
                 big, PROF_TEXT[prof], a, cpu), k, "loopback", "full",
             "server CPU: %.1f ms of a core a frame at %.0f frames/s, "
             "%.0f KB a frame%s" % (
                 cpu * 10 / a, a, v(k, "kbf") or 0,
                 " (the peers' CPU: %s)" % peers if peers else ""))


def main():
    meta = {}
    c = Cases(load(sys.argv[1], meta))
    out = []
    runs = {len(r) for r in c.runs.values()}
    if "load_before" in meta:
        busy = float(meta["load_before"]) >= 0.5
        out.append("%s: %s CPUs, load average %s before the run%s%s." % (
            meta.get("date", "?"), meta.get("cpus", "?"), meta["load_before"],
            " - other work shared the machine, so these figures are noisy"
            if busy else " (a quiet machine)",
            ", %.0f minutes" % (int(meta["seconds"]) / 60)
            if "seconds" in meta else ""))
        out.append("")
    out.append("Medians of %s runs; each cell: vncsasl / x11vnc / x0vncserver, "
               "(ratio) = vncsasl / the best peer of the row; '-': nothing "
               "measured, 'fail': every run failed." %
               "/".join(str(n) for n in sorted(runs)))
    link_tables(c, out)
    multi_table(c, out)
    targets(c, out)
    print("\n".join(out))


if __name__ == "__main__":
    main()
