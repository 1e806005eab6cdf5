#!/usr/bin/env python3
"""Compares the findings of the tracer's two emission modes (issue 12 item 7: a finding made
from lazily emitted records must carry the same actors, ranges and evidence as one made with
every record emitted).

  compare_findings.py [--strict] DIR
      Twin outputs under DIR (integration tests run with BDT_ITEST_TWIN=1 and BDT_ITEST_KEEP=DIR,
      see scripts/bench/compare-findings.sh): X.jsonl next to X.jsonl.events-twin or
      X.jsonl.lazy-twin, two tracers that traced the same I/O at the same time, one findings only
      (lazy emission), one with --events. Strict: the same findings with the same process, file,
      range, actors (role, pid, tid, comm) and evidence records (every field but the timestamps),
      and the same texts once numbers are blanked. One difference is not the modes' but the
      clocks': each tracer stamps a kernel event in its own program, so two events on two CPUs
      microseconds apart can be ordered one way by one twin and the other way by the other
      (REORDERED below). Such a pair passes, also with --strict, when the difference is exactly
      that, each twin's own records (the findings-only one prints them with
      BDT_TEST_LAZY_EVENTS=1, as tests/integration/lib.sh's twins do) show it the order its
      finding says, and its stamps put the two events within REORDER_NS of each other.
  compare_findings.py --runs DIR_A DIR_B
      Two BDT_ITEST_KEEP directories of separate runs (before and after a change): every *.jsonl
      present in both. Loose, as pids, inodes and offsets differ from run to run: findings grouped
      by (detector, kind, level, severity), paired in order; actor roles, range lengths and
      evidence record types compared.

A twin difference that docs/performance.md ("What can differ from every record being made")
explains is counted as known (KNOWN below), shown, and not a failure unless --strict is given.
Prints one table row per output and then every difference; exit status 0 if every finding has its
twin (the same, or differing only in a known way), 1 if not, 2 if there was nothing to compare.
"""
import json
import os
import re
import sys
from collections import Counter

TIME_KEYS = {"ts_ns", "wall_time"}
NUM = re.compile(r"\d+(\.\d+)?")


# Two events closer than this in both twins' stamps may be ordered one way by one twin and the
# other way by the other: each tracer stamps an event in its own program, before or after the
# other's, so its stamp is late by the other's run time at that hook (10-20 us measured here with
# the --events twin first; a flush scan of the findings-only one takes longer). Each twin's own
# order is checked in its own records, so this only bounds how far apart they may be.
REORDER_NS = 1_000_000
# Record types whose order against a finding's own event a finding depends on (REORDERED).
REORDERED_TYPES = ("dio_end",)
KEPT = re.compile(r'"type":\s*"(finding|summary|' + "|".join(REORDERED_TYPES) + ')"')


def load(path, with_events=False):
    """(findings, summary or None, events) of one tracer output (JSON lines; other lines
    skipped). events (with_events): the times of each REORDERED_TYPES record, by its untimed
    form."""
    findings, summary, events = [], None, {}
    with open(path, errors="replace") as fh:
        for line in fh:
            if not line.startswith("{"):
                continue
            if with_events and not KEPT.search(line):
                continue
            try:
                o = json.loads(line)
            except json.JSONDecodeError:
                continue
            if o.get("type") == "finding":
                findings.append(o)
            elif o.get("type") == "summary":
                summary = o
            elif o.get("type") in REORDERED_TYPES and "ts_ns" in o:
                events.setdefault(canon(untimed(o)), []).append(o["ts_ns"])
    return findings, summary, events


# Fields only the findings-only tracer's programs fill: the stall trigger's count on the dio_end
# it fired at (and stalled_begin_ns, a time); the --events twin's programs do not scan.
LAZY_ONLY_KEYS = {"later_done", "stalled_tid", "stalled_ino"}


def untimed(rec):
    """A record without its timestamps (each tracer stamps the same kernel event itself) and
    without what only the findings-only mode's programs fill (LAZY_ONLY_KEYS)."""
    return {k: v for k, v in rec.items()
            if k not in TIME_KEYS and k not in LAZY_ONLY_KEYS and not k.endswith("_ns")}


def canon(x):
    return json.dumps(x, sort_keys=True)


def strict_key(f):
    r = f.get("range")
    return (f.get("detector"), f.get("kind"), f.get("level"), f.get("severity"), f.get("pid"),
            f.get("tid"), f.get("comm"), f.get("dev"), f.get("ino"), tuple(r) if r else None)


def strict_parts(f):
    """What must be equal between the twins, by name."""
    return {
        "actors": sorted(canon(untimed(a)) for a in f.get("actors", [])),
        "evidence": sorted(canon(untimed(e)) for e in f.get("evidence", [])),
        "texts": [NUM.sub("N", f.get(k, "")) for k in ("message", "explanation", "exposure")],
        "other": canon({k: v for k, v in untimed(f).items() if k not in (
            "actors", "evidence", "message", "explanation", "exposure")}),
    }


def stuck_names_its_revealer(a, b, pa, pb):
    """dio-stuck findings only: the lazy finding cites the stuck request and the completion that
    revealed it (the stall trigger, at the first scan past the threshold: it may come after the
    --events finding was made, which cites the last completions before it), the --events one
    other completions on the filesystem meanwhile; everything else the same."""
    if a.get("detector") != "dio-stuck":
        return None
    if any(pa[k] != pb[k] for k in pa if k not in ("evidence", "actors")):
        return None
    ends = ("dio_end", "dio_begin", "oe_remove", "oe_add")
    for part, only_lazy_ok in (("evidence", lambda r: r.get("type") in ends),
                               ("actors", lambda r: r.get("role") == "completed meanwhile")):
        diff = (Counter(pa[part]) - Counter(pb[part])) + (Counter(pb[part]) - Counter(pa[part]))
        if not all(only_lazy_ok(json.loads(r)) for r in diff):
            return None
    extra = sum((Counter(pb["evidence"]) - Counter(pa["evidence"])).values())
    return (f"known: dio-stuck cites the completion that revealed the stuck request, the --events "
            f"twin {extra} other request record(s) of the completions before its finding")


# Differences between the lazy twin (A) and the --events twin (B) that docs/performance.md
# explains: f(lazy finding, events finding, their strict_parts) -> a line saying which, or None.
KNOWN = [stuck_names_its_revealer]

ENDED = " (ended)"


def reordered(a, b, pa, pb, streams):
    """The twins ordered a request's end and the finding's own event differently (not a
    difference of the modes: of the tracers' clocks). Exactly this, and nothing else, differs:
    one twin's finding names a request's actor with the role R + " (ended)" and cites its end
    (a REORDERED_TYPES record), the other names the same actor (every field but the role the
    same) with the role R and does not cite that end; in the first, the end is stamped before
    the finding's event and within REORDER_NS of it; in the second, the same end is among the
    records it made, stamped after the finding's event and within REORDER_NS. streams: each
    twin's REORDERED_TYPES records (load()); a twin that printed none cannot show its order:
    None."""
    if any(pa[k] != pb[k] for k in pa if k not in ("actors", "evidence")):
        return None
    twins = ((a, pa, streams[0]), (b, pb, streams[1]))
    # the actors only in one twin: "R (ended)" there (as "R"), "R" in the other; the same
    ended, plain = [Counter(), Counter()], [Counter(), Counter()]
    for side in (0, 1):
        p, q = twins[side][1], twins[1 - side][1]
        for act, n in (Counter(p["actors"]) - Counter(q["actors"])).items():
            x = json.loads(act)
            if x.get("role", "").endswith(ENDED):
                ended[side][canon(dict(x, role=x["role"][:-len(ENDED)]))] += n
            else:
                plain[side][act] += n
    if ended[0] != plain[1] or ended[1] != plain[0]:
        return None
    moved = 0
    for side in (0, 1):
        (f, p, _), (g, q, gstream) = twins[side], twins[1 - side]
        ends = Counter(p["evidence"]) - Counter(q["evidence"])
        for act, n in ended[side].items():
            x = json.loads(act)
            # its end: cited here, not there
            end = [r for r in ends if json.loads(r).get("type") in REORDERED_TYPES and all(
                json.loads(r).get(k) == x[k] for k in ("pid", "tid", "comm", "dev", "ino")
                if k in x)]
            if len(end) != 1 or ends[end[0]] != n:
                return None
            for t in when_ns(f, "evidence", end[0]):
                if not 0 <= f["ts_ns"] - t <= REORDER_NS:
                    return None
            # the other twin's records: the end there, just after
            if not gstream or not any(0 <= t - g["ts_ns"] <= REORDER_NS
                                      for t in gstream.get(end[0], [])):
                return None
            del ends[end[0]]
            moved += n
        if ends:  # evidence only here that no such actor explains
            return None
    if not moved:
        return None
    return (f"reordered: the twins' clocks put {moved} request end(s) on the other side of the "
            f"finding's event, within {REORDER_NS // 1000} us (not a difference of the modes)")


def when_ns(f, field, rec):
    """The ts_ns of every record of f's field (actors/evidence) whose untimed form is rec."""
    return [r["ts_ns"] for r in f.get(field, []) if "ts_ns" in r and canon(untimed(r)) == rec]


def loose_key(f):
    return (f.get("detector"), f.get("kind"), f.get("level"), f.get("severity"))


def loose_parts(f):
    r = f.get("range")
    return {
        "actor roles": sorted(a.get("role", "") for a in f.get("actors", [])),
        "range length": (r[1] - r[0]) if r else None,
        "evidence types": sorted(Counter(
            e.get("type", "") + ("/" + e["phase"] if e.get("phase") else "")
            for e in f.get("evidence", [])).items()),
    }


def brief(f):
    r = f.get("range")
    return (f"{f.get('detector')}/{f.get('kind')} {f.get('level')} {f.get('severity')} "
            f"pid={f.get('pid')} ino={f.get('ino')} range={r}")


def when(f, field, rec):
    """Where a record of f's actors/evidence lies in time: its ts_ns minus the finding's (each
    tracer's own clock), for reading a difference."""
    for r in f.get(field, []):
        if canon(untimed(r)) == rec and "ts_ns" in r and "ts_ns" in f:
            return f" at {(r['ts_ns'] - f['ts_ns']) / 1e3:+.0f} us from the finding"
    return ""


def evidence_diff(fa, fb, field, pa, pb, names):
    ca, cb = Counter(pa), Counter(pb)
    out = []
    for rec, n in (ca - cb).items():
        out.append(f"      only in {names[0]} ({n}x){when(fa, field, rec)}: {rec}")
    for rec, n in (cb - ca).items():
        out.append(f"      only in {names[1]} ({n}x){when(fb, field, rec)}: {rec}")
    return out


def compare(fa, fb, key, parts, names, known, streams=None):
    """Pairs A's and B's findings by key (exact twins first) and returns (same, known, differ,
    only_a, only_b, reordered, detail lines). streams: see reordered() (None: no such check)."""
    groups = {}
    for side, fs in ((0, fa), (1, fb)):
        for f in fs:
            groups.setdefault(key(f), ([], []))[side].append(f)
    same = nknown = differ = only_a = only_b = nreordered = 0
    lines = []
    for k in sorted(groups, key=str):
        xa, xb = groups[k]
        pa, pb = [parts(f) for f in xa], [parts(f) for f in xb]
        # exact twins first, then the rest in order
        used_b = set()
        rest_a = []
        for i, p in enumerate(pa):
            j = next((j for j, q in enumerate(pb) if j not in used_b and q == p), None)
            if j is None:
                rest_a.append(i)
            else:
                used_b.add(j)
                same += 1
        rest_b = [j for j in range(len(pb)) if j not in used_b]
        for i, j in zip(rest_a, rest_b):
            moved = streams and reordered(xa[i], xb[j], pa[i], pb[j], streams)
            why = None if moved else next(
                (w for w in (k(xa[i], xb[j], pa[i], pb[j]) for k in known) if w), None)
            if moved:
                nreordered += 1
                lines.append(f"  {moved}: {brief(xa[i])}")
            elif why:
                nknown += 1
                lines.append(f"  {why}: {brief(xa[i])}")
            else:
                differ += 1
                lines.append(f"  DIFFERENT {brief(xa[i])}")
            for field in pa[i]:
                if pa[i][field] == pb[j][field]:
                    continue
                if field in ("evidence", "actors") and isinstance(pa[i][field], list) and \
                        all(isinstance(x, str) for x in pa[i][field] + pb[j][field]):
                    lines.append(f"    {field}: {len(pa[i][field])} in {names[0]}, "
                                 f"{len(pb[j][field])} in {names[1]}")
                    lines.extend(evidence_diff(xa[i], xb[j], field, pa[i][field], pb[j][field],
                                               names))
                else:
                    lines.append(f"    {field}: {names[0]} {pa[i][field]!r}")
                    lines.append(f"    {' ' * len(field)}  {names[1]} {pb[j][field]!r}")
        for i in rest_a[len(rest_b):]:
            only_a += 1
            lines.append(f"  only in {names[0]}: {brief(xa[i])}")
        for j in rest_b[len(rest_a):]:
            only_b += 1
            lines.append(f"  only in {names[1]}: {brief(xb[j])}")
    return same, nknown, differ, only_a, only_b, nreordered, lines


def twin_pairs(root):
    """(label, lazy output, events output) for every twin under root."""
    pairs = []
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            label = os.path.relpath(p, root)
            if n.endswith(".events-twin"):
                pairs.append((label[:-len(".events-twin")], p[:-len(".events-twin")], p))
            elif n.endswith(".lazy-twin"):
                pairs.append((label[:-len(".lazy-twin")], p, p[:-len(".lazy-twin")]))
    return sorted(pairs)


def run_pairs(a, b):
    pairs = []
    for d, _, names in os.walk(a):
        for n in names:
            if n.endswith(".jsonl"):
                rel = os.path.relpath(os.path.join(d, n), a)
                if os.path.exists(os.path.join(b, rel)):
                    pairs.append((rel, os.path.join(a, rel), os.path.join(b, rel)))
    return sorted(pairs)


def main(argv):
    strict = "--strict" in argv
    argv = [a for a in argv if a != "--strict"]
    if len(argv) == 2 and argv[1] not in ("-h", "--help"):
        pairs, names = twin_pairs(argv[1]), ("lazy", "events")
        key, parts, known = strict_key, strict_parts, KNOWN
    elif len(argv) == 4 and argv[1] == "--runs":
        pairs, names = run_pairs(argv[2], argv[3]), ("A", "B")
        key, parts, known = loose_key, loose_parts, []
    else:
        sys.stderr.write(__doc__)
        return 2
    if not pairs:
        print("nothing to compare: no twin outputs found" if names[0] == "lazy"
              else "nothing to compare: no tracer output (*.jsonl) in both directories")
        return 2
    rows, details, bad = [], [], 0
    for label, pa, pb in pairs:
        twins = names[0] == "lazy"
        fa, sa, ea = load(pa, with_events=twins)
        fb, sb, eb = load(pb, with_events=twins)
        same, nknown, differ, only_a, only_b, nre, lines = compare(
            fa, fb, key, parts, names, known, (ea, eb) if twins else None)
        lost = [s.get("lost") if s else "no summary" for s in (sa, sb)]
        ok = differ == only_a == only_b == 0 and not (strict and nknown)
        bad += not ok
        rows.append((label, len(fa), len(fb), same + nre, nknown, differ, only_a, only_b,
                     f"{lost[0]}/{lost[1]}",
                     "DIFFERENT" if not ok else "known" if nknown else
                     "reordered" if nre else "same"))
        if lines:
            details.append(f"{label}:")
            details.extend(lines)
    head = ("output", names[0], names[1], "same", "known", "differ", f"{names[0]} only",
            f"{names[1]} only", "lost", "result")
    w = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(str(v).ljust(w[i]) if i == 0 else str(v).rjust(w[i]) for i, v in enumerate(r)))
    total = [sum(r[i] for r in rows) for i in range(1, 8)]
    print(f"TOTAL {len(rows)} outputs, findings {names[0]} {total[0]}, {names[1]} {total[1]}: "
          f"same {total[2]}, known differences {total[3]}, different {total[4]}, only "
          f"{names[0]} {total[5]}, only {names[1]} {total[6]}; {len(rows) - bad} of {len(rows)} "
          f"outputs pass{' (--strict: known differences fail)' if strict else ''}")
    for line in details:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
