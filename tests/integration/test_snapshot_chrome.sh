#!/usr/bin/env bash
# Anomaly snapshots and the timeline export on the live kernel.
# The tracer runs with --snapshot-dir on a scratch btrfs while dio-buf-fault -m self makes a DIO write
# from a shared mmap of the same file (dio-short-write hazards: self-mmap-write, continued-write).
# Expected: a snapshot file per finding detector (rate limit: one per detector per 10 s), named on stderr;
# `replay SNAPSHOT` gives that finding back (same detector, kind and message); `dump SNAPSHOT --format
# chrome` and `dump LIVE.jsonl --format chrome` parse as trace-event JSON with the write's DIO spans and
# the finding instants; `replay --format chrome` of a binary --record has the replayed findings.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/patterns.sh"
itest_init snapshot-chrome
WL=$WORKLOADS/dio-buf-fault
[[ -x $WL ]] || die "workload $WL not built"
scratch_btrfs_setup 2G || die "scratch btrfs setup failed"
SZ=$((8 << 20))
SNAP=$ITEST_TMP/snapshots
REC=$ITEST_TMP/live.bdt

pt_expect "snapshots in $SNAP for dio-short-write; replay of each gives its finding; chrome timelines parse"
OUT=$ITEST_TMP/live.jsonl
start_tracer "$OUT" --format json --mount "$SCRATCH_MNT" --snapshot-dir "$SNAP" --snapshot-seconds 5 \
    --record "$REC"
rc=0
pt_run 40 "$ITEST_TMP/self.log" "$WL" -m self -s $SZ -t 20 -k "$SCRATCH_NOCOW" || rc=$?
stop_tracer || fail "tracer exited non-zero"
[[ $rc -eq 0 ]] || fail "dio-buf-fault self exited $rc"
echo "tracer stderr:"
sed 's/^/  | /' "$OUT.err"

mapfile -t SNAPS < <(find "$SNAP" -maxdepth 1 -name 'snapshot-*.jsonl' | sort)
if [[ ${#SNAPS[@]} -eq 0 ]]; then
    fail "no snapshot file in $SNAP: $(ls -la "$SNAP" 2>&1)"
    itest_finish
fi
pass "${#SNAPS[@]} snapshot file(s): ${SNAPS[*]##*/}"
[[ -z $(find "$SNAP" -name '.*.tmp') ]] || fail "temporary snapshot files left in $SNAP"
for s in "${SNAPS[@]}"; do
    grep -qF "snapshot for dio-short-write/" "$OUT.err" && grep -qF "$s" "$OUT.err" \
        || fail "stderr does not name $s"
    [[ ${s##*/} == *dio-short-write* ]] || fail "snapshot name does not say the detector: ${s##*/}"
    "$BIN" replay "$s" --format json >"$s.replay" 2>"$s.replay.err" || fail "replay $s exited non-zero: $(cat "$s.replay.err")"
    "$BIN" dump "$s" --format chrome >"$s.chrome.json" 2>"$s.chrome.err" || fail "dump --format chrome $s exited non-zero"
    "$BIN" dump "$s" --format text >/dev/null 2>&1 || fail "dump $s (text) exited non-zero"
    python3 - "$s" "$s.replay" "$s.chrome.json" <<'PY' || fail "checks on $s"
import json, sys
snap, rep, chrome = sys.argv[1:4]
lines = [json.loads(l) for l in open(snap) if l.strip()]
head = lines[0]
assert "schema" in head and "snapshot" in head, f"header line: {head}"
meta = head["snapshot"]
found = [l for l in lines if l.get("type") == "finding"]
assert len(found) == 1, f"one finding line in the snapshot, got {len(found)}"
f = found[0]
assert f["detector"] == meta["detector"] == "dio-short-write" and f["kind"] == meta["kind"], (f, meta)
evs = [l for l in lines[1:] if l.get("type") != "finding"]
assert evs, "the snapshot holds events"
ts = [e["ts_ns"] for e in evs]
assert ts == sorted(ts), "events time-ordered"
assert ts[-1] <= f["ts_ns"] and ts[0] >= f["ts_ns"] - 5_000_000_000, "events from the 5 s before the finding"
assert any(e["type"] == "dio_begin" and e.get("write") for e in evs), "the DIO write's dio_begin is in it"
out = [json.loads(l) for l in open(rep) if l.strip()]
again = [o for o in out if o.get("type") == "finding" and o["detector"] == f["detector"] and o["kind"] == f["kind"]]
assert again, f"replay of the snapshot gives {f['detector']}/{f['kind']} back; got {[(o.get('detector'), o.get('kind')) for o in out if o.get('type') == 'finding']}"
assert again[0]["message"] == f["message"], f"same message:\n {again[0]['message']}\n {f['message']}"
doc = json.load(open(chrome))
tev = doc["traceEvents"]
for e in tev:
    for k in ("name", "ph", "ts", "pid", "tid"):
        assert k in e, f"trace event without {k}: {e}"
    if e["ph"] == "X":
        assert "dur" in e, e
dio = [e for e in tev if e["ph"] in ("X", "b") and e.get("cat") == "dio" and "write" in e["name"]]
assert dio, "DIO write spans in the timeline"
assert any(e["args"].get("end") for e in dio), "a DIO write span closed by its dio_end"
inst = [e for e in tev if e["ph"] == "i" and e.get("cat") == "finding"]
assert any(e["args"]["message"] == f["message"] for e in inst), "the finding is an instant with its message"
names = {e["args"]["name"] for e in tev if e["ph"] == "M"}
assert "dio-buf-fault" in names, f"thread/process named by comm: {sorted(names)[:10]}"
print(f"  {snap.split('/')[-1]}: {len(evs)} events, replay gives {f['kind']}, timeline {len(tev)} trace events, {len(dio)} DIO write spans")
PY
done
pass "each snapshot replays to its finding and exports a timeline"

# The live JSON output (events not printed: only findings) and the binary record.
"$BIN" dump "$OUT" --format chrome >"$ITEST_TMP/live.chrome.json" 2>/dev/null || fail "dump --format chrome of the live JSON output"
"$BIN" replay "$REC" --format chrome >"$ITEST_TMP/rec.chrome.json" 2>/dev/null || fail "replay --format chrome of the record"
"$BIN" dump "$REC" --format chrome >"$ITEST_TMP/rec.dump.chrome.json" 2>/dev/null || fail "dump --format chrome of the record"
python3 - "$ITEST_TMP/live.chrome.json" "$ITEST_TMP/rec.chrome.json" "$ITEST_TMP/rec.dump.chrome.json" "$OUT" <<'PY' || fail "timeline checks"
import json, sys
live, rec, recdump, out = sys.argv[1:5]
findings = [json.loads(l) for l in open(out) if '"type":"finding"' in l]
assert findings, "live run printed findings"
msgs = {f["message"] for f in findings}
d = json.load(open(live))["traceEvents"]
assert {e["args"]["message"] for e in d if e.get("cat") == "finding"} == msgs, "live output: every finding line is an instant"
r = json.load(open(rec))["traceEvents"]
assert msgs <= {e["args"]["message"] for e in r if e.get("cat") == "finding"}, "replay --format chrome: the live findings"
assert any(e.get("cat") == "dio" for e in r), "record timeline has DIO spans"
oe = [e for e in r if e.get("cat") == "ordered" and e["ph"] == "b"]
print(f"  record timeline: {len(r)} trace events, {len(oe)} ordered-extent spans")
rd = json.load(open(recdump))["traceEvents"]
assert len([e for e in rd if e.get("cat") == "dio"]) == len([e for e in r if e.get("cat") == "dio"]), "dump and replay show the same DIO spans"
PY
pass "timelines of the live JSON output and of the record"
itest_finish
