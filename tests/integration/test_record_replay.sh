#!/usr/bin/env bash
# Record -> replay gives the live findings: the live tracer runs with
# --record FILE (binary) and --events --format json while two workloads provoke
# findings; `replay FILE` and `replay` of the JSON-lines output must report the
# same findings (detector, kind, level, file, range) as the live run did.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init record-replay
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
[[ -x $WORKLOADS/dio-buf-fault && -x $WORKLOADS/dio-interleaved ]] || die "workloads not built"

OUT=$ITEST_TMP/live.jsonl REC=$ITEST_TMP/live.bdt
start_tracer "$OUT" --events --format json --mount "$SCRATCH_MNT" --record "$REC"
"$WORKLOADS/dio-buf-fault" -m self -t 20 "$SCRATCH_MNT" >/dev/null || fail "dio-buf-fault failed"
"$WORKLOADS/dio-buf-fault" -m copy -t 20 "$SCRATCH_MNT" >/dev/null || fail "dio-buf-fault copy failed"
# em-merge-race is a race: two rounds give it on the host; under TCG with kprobes (6.1 guest) two
# rounds once gave none. Repeat (at most 5 times) until the live tracer has printed one.
for try in 1 2 3 4 5; do
    "$WORKLOADS/dio-interleaved" -r 2 -t 20 "$SCRATCH_NOCOW" >/dev/null || fail "dio-interleaved failed"
    sleep 0.5
    grep -q '"detector":"em-merge-race"' "$OUT" && break
    echo "no em-merge-race finding after dio-interleaved run $try"
done
stop_tracer || fail "tracer exited non-zero"
ls -la "$REC"

"$BIN" replay "$REC" --format json >"$ITEST_TMP/replay-bin.jsonl" 2>"$ITEST_TMP/replay-bin.err" \
    || fail "replay of the binary record failed: $(cat "$ITEST_TMP/replay-bin.err")"
"$BIN" replay "$OUT" --format json >"$ITEST_TMP/replay-json.jsonl" 2>"$ITEST_TMP/replay-json.err" \
    || fail "replay of the JSON-lines output failed: $(cat "$ITEST_TMP/replay-json.err")"
"$BIN" dump "$REC" --format json >"$ITEST_TMP/dump.jsonl" 2>"$ITEST_TMP/dump.err" \
    || fail "dump of the binary record failed: $(cat "$ITEST_TMP/dump.err")"

ITEST_DIR=$(dirname "$0") python3 - "$OUT" "$ITEST_TMP/replay-bin.jsonl" "$ITEST_TMP/replay-json.jsonl" \
    "$ITEST_TMP/dump.jsonl" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import os, sys
sys.path.insert(0, os.environ["ITEST_DIR"])
from bdtcheck import load, Checker
c = Checker()
def key(f):
    return (f["detector"], f.get("kind"), f["level"], f.get("dev"), f.get("ino"),
            tuple(f["range"]) if f.get("range") else None, f["pid"])
live_ev, live_f, _ = load(sys.argv[1])
_, bin_f, _ = load(sys.argv[2])
_, json_f, _ = load(sys.argv[3])
dump_ev, _, _ = load(sys.argv[4])
lk = sorted(map(key, live_f))
print("live findings:", *lk, sep="\n  ")
c.check(len(lk) >= 3, f"the live run produced findings to compare ({len(lk)})")
c.check(sorted(map(key, bin_f)) == lk, f"replay of --record gives the live findings ({len(bin_f)} vs {len(lk)})")
c.check(sorted(map(key, json_f)) == lk, f"replay of the JSON-lines output gives the live findings ({len(json_f)} vs {len(lk)})")
c.check(len(dump_ev) == len(live_ev), f"dump of the record has every live event ({len(dump_ev)} vs {len(live_ev)})")
c.check(dump_ev[:50] == live_ev[:50], "the first 50 dumped events equal the live JSON events")
# Times people can line up: the live output's first line is the header (kernel, hostname,
# wall-clock offset, hooks); each finding's wall_time is its ts_ns plus that offset; replay's
# JSON output and the record carry the same header.
import datetime, json, platform, socket
heads = [json.loads(open(p).readline()) for p in sys.argv[1:4]]
h = heads[0]
c.check("schema" in h and h.get("kernel") == platform.release() and h.get("hostname") == socket.gethostname()
        and isinstance(h.get("mono_to_realtime_ns"), int) and len(h.get("hooks", [])) > 0,
        f"live JSON starts with the header: kernel {h.get('kernel')}, hostname {h.get('hostname')}, "
        f"offset {h.get('mono_to_realtime_ns')}, {len(h.get('hooks', []))} hooks")
c.check(all(x == h for x in heads[1:]), "replay of the record and of the JSON output print the same header")
bad = []
for f in live_f:
    want = datetime.datetime.fromtimestamp((f["ts_ns"] + h["mono_to_realtime_ns"]) // 1000 / 1e6,
                                           datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if f.get("wall_time") != want: bad.append((f.get("wall_time"), want))
c.check(live_f and not bad, f"every live finding's wall_time = ts_ns + offset, RFC 3339 UTC ({len(live_f)} findings; wrong: {bad[:2]})")
c.done()
PY
"$BIN" replay "$REC" --wall-time >"$ITEST_TMP/replay-wall.txt" 2>&1 || fail "replay --wall-time failed"
grep -qE '^[^ ]*20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-9:]{8}\.[0-9]{6}Z ' "$ITEST_TMP/replay-wall.txt" &&
    pass "replay --wall-time prints UTC RFC 3339 times: $(grep -m1 -oE '20[0-9-]+T[0-9:.]+Z' "$ITEST_TMP/replay-wall.txt")" ||
    fail "replay --wall-time: no RFC 3339 time in: $(head -n 3 "$ITEST_TMP/replay-wall.txt")"
itest_finish
