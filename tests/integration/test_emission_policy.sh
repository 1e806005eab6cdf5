#!/usr/bin/env bash
# The kernel side's emission policy (docs/performance.md). With every event
# wanted (--events): no record for clean ordered-extent completions (oe_finish
# uptodate, oe_mark_finished without IOERR), no tracepoint get_extent outside an
# em_exist, no VMA lookup for DIO reads; --all-events makes all of them. Findings
# only (lazy emission): no record at all for these clean requests, while the
# summary still counts every event. The same I/O is traced each way: 4 x 64 KiB
# O_DIRECT writes and 2 x 128 KiB O_DIRECT reads (dd) on a nocow file.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init emission-policy

scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
F=$SCRATCH_NOCOW/f
dd if=/dev/zero of="$F" bs=1M count=1 status=none && sync

io() {
    dd if=/dev/zero of="$F" bs=64k count=4 oflag=direct conv=notrunc status=none
    dd if="$F" of=/dev/null bs=128k count=2 iflag=direct status=none
    sync
}
DEF=$ITEST_TMP/default.jsonl ALL=$ITEST_TMP/all.jsonl LAZY=$ITEST_TMP/lazy.jsonl
start_tracer "$DEF" --events --format json --mount "$SCRATCH_MNT"
io
stop_tracer || fail "tracer (default) exited non-zero"
start_tracer "$ALL" --events --format json --all-events --mount "$SCRATCH_MNT"
io
stop_tracer || fail "tracer (--all-events) exited non-zero"
start_tracer "$LAZY" --format json --mount "$SCRATCH_MNT"
io
stop_tracer || fail "tracer (findings only) exited non-zero"

ITEST_DIR=$(dirname "$0") python3 - "$DEF" "$ALL" "$F" "${BDT_BACKEND:-}" "$LAZY" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import os, sys
sys.path.insert(0, os.environ.get("ITEST_DIR", "."))
from bdtcheck import load, Checker
dpath, apath, f, backend, lpath = sys.argv[1:6]
st = os.stat(f)
c = Checker()
def mine(path):
    ev, findings, _ = load(path)
    return [e for e in ev if e.get("ino") == st.st_ino and e.get("dev") == st.st_dev], findings
d, dfind = mine(dpath)
a, afind = mine(apath)
def of(ev, t, cond=lambda e: True):
    return [e for e in ev if e["type"] == t and cond(e)]
clean_fin = lambda e: e.get("uptodate", True) and "IOERR" not in e.get("flags", [])
for name, ev in (("default", d), ("--all-events", a)):
    w = of(ev, "dio_begin", lambda e: e.get("write"))
    r = of(ev, "dio_begin", lambda e: not e.get("write"))
    # 6.1 retries a DIO read that ended -EFAULT on the same range: one more begin/end pair
    c.check(len(w) == 4 and len(r) >= 2, f"{name}: 4 write and at least 2 read dio_begin (got {len(w)}, {len(r)})")
    c.check(len(of(ev, "dio_end")) == len(w) + len(r),
            f"{name}: a dio_end per dio_begin (got {len(of(ev, 'dio_end'))} for {len(w) + len(r)})")
    c.check(len(of(ev, "oe_add")) >= 4 and len(of(ev, "oe_remove")) >= 4,
            f"{name}: every write's oe_add and oe_remove (got {len(of(ev, 'oe_add'))}, {len(of(ev, 'oe_remove'))})")
c.check(len(of(d, "oe_add")) == len(of(a, "oe_add")), f"oe_add kept: {len(of(d, 'oe_add'))} vs {len(of(a, 'oe_add'))}")
c.check(not of(d, "oe_finish", clean_fin), f"default: no clean oe_finish (got {len(of(d, 'oe_finish', clean_fin))})")
c.check(not of(d, "oe_mark_finished", clean_fin), f"default: no clean oe_mark_finished (got {len(of(d, 'oe_mark_finished', clean_fin))})")
c.check(len(of(a, "oe_finish", clean_fin)) >= 4, f"--all-events: clean oe_finish of every write (got {len(of(a, 'oe_finish', clean_fin))})")
c.check(all(not e.get("buf_writable") and not e.get("buf_shared") for e in of(d, "dio_begin", lambda e: not e.get("write"))),
        "default: no VMA lookup for reads (buf_writable/buf_shared false)")
c.check(all(e.get("buf_writable") for e in of(a, "dio_begin")), "--all-events: dd's buffers are writable memory (VMA looked up)")
c.check(all(e.get("buf_writable") for e in of(d, "dio_begin", lambda e: e.get("write"))),
        "default: the VMA of write buffers is still looked up")
if not backend:  # the tracepoint get_extent (fentry/kprobe keep enter/exit: docs/events.md)
    ge, emx = of(d, "get_extent"), of(d, "em_exist")
    c.check(len(ge) <= len(emx), f"default: tracepoint get_extent only around an em_exist ({len(ge)} vs {len(emx)})")
    c.check(len(of(a, "get_extent")) >= 6, f"--all-events: a get_extent per request (got {len(of(a, 'get_extent'))})")
c.check(not dfind and not afind, f"no findings ({len(dfind)}, {len(afind)})")
# findings only: the clean requests made no record, the kernel counted them all
lev, lfind, lother = load(lpath)
summ = [o for o in lother if o.get("type") == "summary"]
if c.check(len(summ) == 1, "findings only: one summary line"):
    s = summ[0]
    by = s.get("events_by_type", {})
    nw, nr = len(of(d, "dio_begin", lambda e: e.get("write"))), len(of(d, "dio_begin", lambda e: not e.get("write")))
    c.check(s.get("records") == 0, f"findings only: no record for clean requests (got {s.get('records')})")
    c.check(not lev, f"findings only: no event printed (got {len(lev)})")
    c.check(by.get("dio_begin", 0) >= nw + nr and by.get("dio_end", 0) >= nw + nr,
            f"findings only: the summary counts every request ({by.get('dio_begin')} dio_begin, "
            f"{by.get('dio_end')} dio_end for {nw + nr})")
    c.check(by.get("oe_add", 0) >= 4, f"findings only: and every oe_add (got {by.get('oe_add')})")
    c.check(not lfind, f"findings only: no findings (got {len(lfind)})")
c.done()
PY
itest_finish
