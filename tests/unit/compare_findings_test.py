#!/usr/bin/env python3
"""Unit test of scripts/bench/compare_findings.py, the twin comparison behind
integration.test_findings_lazy_vs_events: on synthetic twin outputs it must pass twins that
differ only in the order their two clocks gave a request's end and the finding's event (within
REORDER_NS), and fail every other difference in actors, ranges and evidence - a real one, or a
reordering stamped too far apart to be the clocks'.

  python3 tests/unit/compare_findings_test.py   (ctest: compare_findings, label unit)
"""
import copy
import importlib.util
import json
import os
import pathlib
import sys
import tempfile

SRC = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("compare_findings",
                                              SRC / "scripts/bench/compare_findings.py")
cf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cf)

T = 1_000_000_000  # the finding's event (em_exist), lazy twin's clock
SKEW = 700         # the --events twin's stamps of the same events are this much later


def rec(typ, ts, tid, **kw):
    return dict({"type": typ, "ts_ns": ts, "pid": 100, "tid": tid, "comm": "w", "dev": 1,
                 "ino": 257}, **kw)


BEGIN_Q = rec("dio_begin", T - 50_000, 12, pos=0, count=4096)
END_Q = rec("dio_end", T - 2_000, 12, pos=4096, ret=4096)  # the peer ends 2 us before


def finding(ts, ended, end_ts=None):
    """em-merge-race's hazard finding: the inserting thread's em_exist, the peer request as an
    actor ("(ended)" when its end came first) with its records as evidence."""
    # an actor as findings name one: the task (and the role), not the file
    peer = {k: BEGIN_Q[k] for k in ("ts_ns", "pid", "tid", "comm")}
    peer["role"] = "concurrent request" + (" (ended)" if ended else "")
    ev = [rec("em_exist", ts, 11, e_start=0, e_len=8192), BEGIN_Q]
    if ended:
        ev.append(dict(END_Q, ts_ns=end_ts))
    return {"type": "finding", "detector": "em-merge-race", "kind": "encompassing-em-merge",
            "level": "hazard", "severity": "warning", "ts_ns": ts, "pid": 100, "tid": 11,
            "comm": "w", "dev": 1, "ino": 257, "range": [0, 4096],
            "message": "2 thread(s)", "explanation": "", "exposure": "",
            "actors": [dict(rec("em_exist", ts, 11), role="inserting thread"), peer],
            "evidence": ev}


def write(d, name, lines):
    with open(os.path.join(d, name), "w") as fh:
        for o in lines:
            fh.write(json.dumps(o) + "\n")


def run(lazy, events, events_stream=(), lazy_stream=()):
    """compare_findings.py --strict over one twin pair (each twin's records: *_stream): its
    exit status."""
    with tempfile.TemporaryDirectory() as d:
        write(d, "t.jsonl", list(lazy_stream) + lazy + [{"type": "summary", "lost": 0}])
        write(d, "t.jsonl.events-twin", list(events_stream) + events +
              [{"type": "summary", "lost": 0}])
        return cf.main(["compare_findings.py", "--strict", d])


failures = 0


def expect(what, got, want):
    global failures
    ok = got == want
    failures += not ok
    print(f"{'ok' if ok else 'FAIL'}: {what} (exit {got}, want {want})")


# The --events twin saw the peer's end 2 us before the em_exist, the lazy twin after it.
ev_end = dict(END_Q, ts_ns=T - 2_000 + SKEW)
lazy_f = finding(T, ended=False)
events_f = finding(T + SKEW, ended=True, end_ts=ev_end["ts_ns"])
expect("identical twins pass", run([lazy_f], [copy.deepcopy(lazy_f)]), 0)
lazy_end = dict(END_Q, ts_ns=T + 3_000)  # the lazy twin's stamp of that end: after its em_exist
expect("a reordering within the clocks' skew passes",
       run([lazy_f], [events_f], [ev_end], [lazy_end]), 0)
expect("... but not when the findings-only twin did not print its records",
       run([lazy_f], [events_f], [ev_end]), 1)
expect("... nor when its end is not among them", run([lazy_f], [events_f], [ev_end], [
    dict(END_Q, ts_ns=T + 3_000, pos=0)]), 1)
expect("... nor when its end came long after the event there",
       run([lazy_f], [events_f], [ev_end], [dict(END_Q, ts_ns=T + 10 * cf.REORDER_NS)]), 1)
# The other way round: the lazy twin saw the end first (its stream is not known: the --events
# twin's must have the end just after its finding's event).
lazy_e = finding(T, ended=True, end_ts=T - 2_000)
events_n = finding(T + SKEW, ended=False)
expect("the other order passes", run([lazy_e], [events_n], [dict(END_Q, ts_ns=T + SKEW + 1_000)]), 0)
expect("... but not when the --events twin never saw that end",
       run([lazy_e], [events_n], []), 1)
expect("... nor when its end came long after",
       run([lazy_e], [events_n], [dict(END_Q, ts_ns=T + SKEW + 10 * cf.REORDER_NS)]), 1)

# Real differences fail.
far = finding(T + SKEW, ended=True, end_ts=T + SKEW - 10 * cf.REORDER_NS)
expect("an end stamped far before the event: not the clocks",
       run([lazy_f], [far], [dict(END_Q, ts_ns=T + SKEW - 10 * cf.REORDER_NS)], [lazy_end]), 1)
x = copy.deepcopy(events_f)
x["actors"][1]["pid"] = 999
expect("another actor", run([lazy_f], [x], [ev_end], [lazy_end]), 1)
x = copy.deepcopy(events_f)
x["actors"][1]["role"] = "concurrent request"
expect("the (ended) role without the other changes (only the end cited)",
       run([lazy_f], [x], [ev_end], [lazy_end]), 1)
x = copy.deepcopy(events_f)
x["evidence"].pop()
expect("the (ended) role without its end cited", run([lazy_f], [x], [ev_end], [lazy_end]), 1)
x = copy.deepcopy(events_f)
x["evidence"][-1]["ret"] = 512
expect("both cite the end, with another result", run([lazy_e], [x], [dict(ev_end, ret=512)]), 1)
x = copy.deepcopy(x)
x["actors"][1]["role"] = "concurrent request"
expect("... or one cites it ended with another result", run([lazy_e], [x], [dict(ev_end, ret=512)]), 1)
x = copy.deepcopy(events_f)
x["evidence"].append(rec("oe_add", T, 12, file_offset=0, len=4096))
expect("one more evidence record besides the end", run([lazy_f], [x], [ev_end], [lazy_end]), 1)
x = copy.deepcopy(events_f)
x["range"] = [0, 8192]
expect("another range", run([lazy_f], [x], [ev_end], [lazy_end]), 1)
x = copy.deepcopy(lazy_f)
x["evidence"][1]["count"] = 8192
expect("an evidence record differing in a field", run([lazy_f], [x]), 1)

print(f"{failures} check(s) failed" if failures else "RESULT: all checks passed")
sys.exit(1 if failures else 0)
