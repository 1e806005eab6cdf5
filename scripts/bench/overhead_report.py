#!/usr/bin/env python3
"""The round lines and the summaries of scripts/bench/overhead.sh's interleaved rounds.

FILE has one row per run: ROUND ENGINE COLUMN IOPS IOS CPU_NS RECORDS BUSY_NS RATE
(CPU_NS: the tracer's CPU time; BUSY_NS: the machine's busy CPU time; RATE: the IOPS fio
was held at in a fixed-rate round, 0 in an IOPS round). An IOPS round compares the
columns' IOPS; a fixed-rate round their busy CPU per I/O.

  overhead_report.py round FILE ROUND ENGINE COLUMN...   the round's line
  overhead_report.py summary FILE COLUMN...              medians (min-max), then the
                                                         RESULT (or RESULT-CPU) line
  overhead_report.py rate FILE ENGINE PCT                PCT% of the engine's median
                                                         IOPS without a tracer (-F)
"""
import os
import statistics
import sys


def load(path):
    by = {}
    for line in open(path):
        r, e, c, iops, ios, cpu, recs, busy, rate = line.split()
        by.setdefault(e, {}).setdefault(r, {})[c] = {
            "iops": int(iops), "ios": int(ios), "cpu": int(cpu), "recs": int(recs),
            "busy": int(busy), "rate": int(rate)}
    return by


def fixed(rows):
    return rows["none"]["rate"] > 0


def busy_per_io(v):
    return v["busy"] / max(v["ios"], 1)


def ratio(a, b, fixed_rate):
    """a to b: IOPS in an IOPS round, busy CPU per I/O in a fixed-rate one."""
    return busy_per_io(a) / busy_per_io(b) if fixed_rate else a["iops"] / b["iops"]


def round_line(path, rnd, eng, cols):
    rows = load(path)[eng][rnd]
    parts = []
    if fixed(rows):
        for c in cols:
            v = rows[c]
            s = f"{c} {busy_per_io(v):.0f} ns"
            if c != "none":
                s += f" ({ratio(v, rows['none'], True):.3f})"
            s += f", {v['iops']} IOPS"
            if v["iops"] < 0.97 * v["rate"]:
                s += " SHORT"
            parts.append(s)
        print(f"fixed round {rnd} {eng}: busy CPU per I/O: " + " | ".join(parts), flush=True)
        return
    for c in cols:
        v = rows[c]
        s = f"{c} {v['iops']}"
        if c != "none":
            s += f" ({ratio(v, rows['none'], False):.3f}"
            if v["ios"]:
                s += f", {v['cpu'] / v['ios']:.0f} ns CPU/IO"
                if c not in ("events", "all", "bevents") and v["recs"]:
                    s += f", {v['recs'] / v['ios']:.2f} rec/IO"
            s += ")"
        parts.append(s)
    print(f"round {rnd} {eng}: " + " | ".join(parts), flush=True)


def pairs(cols):
    """(column, the column it is compared to): each to none, then the comparisons."""
    out = [(c, "none") for c in cols if c != "none"]
    if "floor" in cols and "default" in cols:
        out.append(("default", "floor"))
    for other in ("nofb", "noinv", "base"):
        if other in cols and "default" in cols:
            out.append(("default", other))
    if "bevents" in cols and "events" in cols:
        out.append(("events", "bevents"))
    return out


def summary(path, cols):
    out, fixed_rate = [], False
    for e, rounds in load(path).items():
        fixed_rate = fixed(next(iter(rounds.values())))
        fields, detail = [], []
        for a, b in pairs(cols):
            x = [ratio(v[a], v[b], fixed_rate) for v in rounds.values()]
            name = a if b == "none" else f"{a}/{b}"
            fields.append(f"{name}={statistics.median(x):.3f}")
            detail.append(f"{name} {statistics.median(x):.3f} ({min(x):.3f}-{max(x):.3f})")
        if fixed_rate:
            med = {c: statistics.median(busy_per_io(v[c]) for v in rounds.values()) for c in cols}
            print(f"{e}: median busy CPU ns per I/O at the fixed rate: " +
                  ", ".join(f"{c} {x:.0f}" for c, x in med.items()))
            print(f"{e}: median ratio of busy CPU per I/O (min-max): " + ", ".join(detail))
        else:
            cpu = {c: statistics.median(v[c]["cpu"] / v[c]["ios"] for v in rounds.values())
                   for c in cols if c != "none"}
            rec = {c: statistics.median(v[c]["recs"] / v[c]["ios"] for v in rounds.values())
                   for c in ("floor", "default", "pin") if c in cols}
            print(f"{e}: median ratio to none (min-max): " + ", ".join(detail))
            print(f"{e}: median tracer CPU ns per I/O: " + ", ".join(f"{c} {x:.0f}" for c, x in cpu.items()) +
                  "; records per I/O: " + ", ".join(f"{c} {x:.2f}" for c, x in rec.items()))
        out.append(f"{e} " + " ".join(fields))
    warn = f"{os.path.dirname(path)}/attach.warn"
    mark = ""
    if os.path.exists(warn) and os.path.getsize(warn):
        cols_off = sorted({line.split(":")[0] for line in open(warn)})
        mark = " ; ATTACH DIFFERS (" + ", ".join(cols_off) + ": see the WARNING lines)"
    print(("RESULT-CPU " if fixed_rate else "RESULT ") + " ; ".join(out) + mark)


def rate(path, eng, pct):
    none = [v["none"]["iops"] for v in load(path)[eng].values()]
    print(max(4, int(statistics.median(none) * pct / 100)))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "rate":
        rate(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) >= 6 and sys.argv[1] == "round":
        round_line(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "summary":
        summary(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
