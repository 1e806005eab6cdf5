#!/usr/bin/env bash
# "A viewer opens the timeline": the chrome output of a --record file and of a
# pinned flight-recorder dump are loaded with Chrome DevTools' trace engine
# (the Performance panel's parser, npm @paulirish/trace_engine, installed by
# scripts/install-deps), run headless under node. The parsed model must have
# the workload's thread, named by its comm, holding one DIO span per O_DIRECT
# write, within the trace's bounds.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
NODE_MODULES=${BDT_NODE_DIR:-/usr/local/lib/btrfs-dio-trace-node}/node_modules
command -v node >/dev/null || skip "node not installed (scripts/install-deps)"
[[ -f $NODE_MODULES/@paulirish/trace_engine/models/trace/trace.js ]] \
    || skip "Chrome DevTools trace engine not installed in $NODE_MODULES (scripts/install-deps)"
itest_init chrome-viewer
itest_bpffs
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
PIN=/sys/fs/bpf/bdt-itest-viewer-$$
ITEST_CLEANUPS+=("[[ -e $PIN ]] && { \"$BIN\" dump --pin-dir $PIN --release >/dev/null 2>&1; rm -rf $PIN; }")

REC=$ITEST_TMP/t.bdt
start_tracer "$ITEST_TMP/t.out" --mount "$SCRATCH_MNT" --record "$REC" --pin-dir "$PIN"
N=40
dd if=/dev/zero of="$SCRATCH_NOCOW/v" bs=4k count=$N oflag=direct status=none || fail "dd failed"
stop_tracer || fail "tracer exited non-zero"
"$BIN" dump "$REC" --format chrome >"$ITEST_TMP/rec.json" 2>"$ITEST_TMP/rec.err" || fail "dump FILE --format chrome: $(cat "$ITEST_TMP/rec.err")"
"$BIN" dump --pin-dir "$PIN" --format chrome >"$ITEST_TMP/pin.json" 2>"$ITEST_TMP/pin.err" || fail "dump --pin-dir --format chrome: $(cat "$ITEST_TMP/pin.err")"
"$BIN" dump --pin-dir "$PIN" --release >/dev/null 2>&1 || fail "--release failed"

for f in rec pin; do
    node "$(dirname "$0")/chrome_viewer.mjs" "$NODE_MODULES" "$ITEST_TMP/$f.json" >"$ITEST_TMP/$f.parsed" 2>"$ITEST_TMP/$f.node.err" \
        || { fail "the trace engine could not load the $f timeline: $(tail -3 "$ITEST_TMP/$f.node.err")"; continue; }
    python3 - "$ITEST_TMP/$f.parsed" "$ITEST_TMP/$f.json" "$N" "$f" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, sys
parsed, doc, n, what = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3]), sys.argv[4]
fails = 0
def check(c, m):
    global fails
    print(("ok: " if c else "FAIL: ") + f"{what}: " + m)
    fails += 0 if c else 1
dd = [t for t in parsed["threads"] if t["name"] == "dd"]
check(bool(dd), f"the viewer has a thread named dd ({[t['name'] for t in parsed['threads']][:8]})")
file_spans = [e for e in doc["traceEvents"] if e.get("cat") == "dio" and e["ph"] == "X"]
check(sum(t["dio"] for t in dd) >= n, f"the dd thread holds a DIO span per write ({sum(t['dio'] for t in dd)} >= {n})")
check(parsed["dio_spans"] == len(file_spans), f"every DIO span of the file was parsed ({parsed['dio_spans']} of {len(file_spans)})")
check(any(x.startswith("write") or "write" in x for x in parsed["dio_names"]), f"DIO write spans by name: {parsed['dio_names'][:4]}")
check(parsed["bounds_us"]["range"] > 0, f"trace bounds {parsed['bounds_us']}")
sys.exit(1 if fails else 0)
PY
done
itest_finish
