#!/usr/bin/env bash
# The in-kernel flight recorder pinned in bpffs (docs/flight-recorder.md):
#  1. trace --pin-dir; an O_DIRECT workload on a nocow file logs the wall-clock
#     time around each pwrite; the tracer is killed with SIGKILL after 50 writes
#     (the workload waits for it) and the workload's 1450 further writes overflow
#     the (1 MiB) ring buffer, read by nobody. `dump --pin-dir --format json` shows its
#     dio events from before AND after the kill, each within 1 ms of the times
#     the workload logged; `--format chrome` is a valid trace-event document.
#  2. --recorder-events 256: the ring wraps, keeping exactly the newest events
#     (the workload's last write is there, its dumped writes are the newest
#     ones, at most 256 per CPU); dump works while the tracer runs and after a
#     clean exit (programs detached, recorder kept).
#  3. --release removes the pins and the programs; bad --pin-dir uses fail
#     with exit 1 and a reason. The cleanup releases pins even on failure.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init flight-recorder
itest_bpffs
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"

PIN=/sys/fs/bpf/bdt-itest-fr-$$
PIN2=/sys/fs/bpf/bdt-itest-fr2-$$
ITEST_CLEANUPS+=("release_pin $PIN" "release_pin $PIN2")

# The workload: O_DIRECT 4 KiB pwrites at increasing offsets; one JSON line per
# write with CLOCK_REALTIME just before and just after it. With PAUSE_AT, after
# that many writes it creates LOG.paused and waits for LOG.go (at most 60 s).
WL=$ITEST_TMP/dio-writer.py
cat >"$WL" <<'PY'
import json, mmap, os, sys, time
path, n, gap, log = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
pause_at = int(sys.argv[5]) if len(sys.argv) > 5 else -1
buf = mmap.mmap(-1, 4096)
buf.write(b"x" * 4096)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
with open(log, "w") as out:
    for i in range(n):
        if i == pause_at:
            open(log + ".paused", "w").close()
            deadline = time.time() + 60
            while not os.path.exists(log + ".go") and time.time() < deadline:
                time.sleep(0.001)
        t0 = time.time_ns()
        os.pwritev(fd, [buf], i * 4096)
        t1 = time.time_ns()
        out.write(json.dumps({"i": i, "pos": i * 4096, "t0": t0, "t1": t1}) + "\n")
        out.flush()
        if gap:
            time.sleep(gap)
os.close(fd)
PY

# ---- 1. kill -9 mid-workload ---------------------------------------------------
F=$SCRATCH_NOCOW/fr-kill
# A 1 MiB ring buffer (about 5700 records) that nobody reads after the kill
# fills up: the recorder must keep every event anyway. --all-events: 7 records
# per write (by default 4). The workload pauses after 50 writes until the
# tracer is killed, so the 1450 writes after the kill (about 10000 records)
# overflow the ring however slowly the machine runs.
start_tracer "$ITEST_TMP/t1.out" --mount "$SCRATCH_MNT" --pin-dir "$PIN" --ringbuf-size 1 --all-events
[[ -e $PIN/recorder && -e $PIN/rec_meta ]] || fail "recorder pinned in $PIN"
python3 "$WL" "$F" 1500 0.001 "$ITEST_TMP/wl1.jsonl" 50 &
WLPID=$!
for _ in $(seq 1 1200); do [[ -e $ITEST_TMP/wl1.jsonl.paused ]] && break; sleep 0.05; done
[[ -e $ITEST_TMP/wl1.jsonl.paused ]] || fail "the workload did not reach its pause after 50 writes"
KILL_NS=$(date +%s%N)
kill -KILL "$TRACER_PID"
wait "$TRACER_PID" 2>/dev/null
TRACER_PID=
progs_after_kill=$(bdt_prog_count)
touch "$ITEST_TMP/wl1.jsonl.go"
# Dump while the programs write (the workload goes on): torn slots are dropped,
# what is printed is valid and in time order.
sleep 0.3
"$BIN" dump --pin-dir "$PIN" --format json >"$ITEST_TMP/d1-during.jsonl" 2>"$ITEST_TMP/d1-during.err" \
    || fail "dump while recording failed: $(cat "$ITEST_TMP/d1-during.err")"
kill -0 "$WLPID" 2>/dev/null && pass "dumped while the workload was still writing" \
    || echo "note: the workload ended before the concurrent dump"
python3 - "$ITEST_TMP/d1-during.jsonl" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ev = [e for e in ev if "type" in e]
ts = [e["ts_ns"] for e in ev]
ok = ev and ts == sorted(ts) and any(e["type"] == "dio_begin" for e in ev) and all("wall_ns" in e for e in ev)
print(("ok: " if ok else "FAIL: ") + f"a dump taken while recording is valid and time-ordered ({len(ev)} events)")
sys.exit(0 if ok else 1)
PY
wait "$WLPID" || fail "workload failed"
if [[ $progs_after_kill -gt ${ITEST_PROGS_BEFORE:-0} ]]; then
    pass "programs stay loaded after kill -9 ($progs_after_kill bdt_ programs)"
else
    fail "programs gone after kill -9 ($progs_after_kill)"
fi

# A second tracer on the same DIR: refused, naming dump/release.
"$BIN" trace --pin-dir "$PIN" --duration 1 >"$ITEST_TMP/busy.out" 2>&1
rc=$?
[[ $rc -eq 1 ]] && grep -q "already holds a flight recorder" "$ITEST_TMP/busy.out" \
    && grep -q -- "--release" "$ITEST_TMP/busy.out" \
    && pass "a DIR holding a recorder is refused: $(cat "$ITEST_TMP/busy.out")" \
    || fail "second tracer on $PIN: exit $rc: $(cat "$ITEST_TMP/busy.out")"

"$BIN" dump --pin-dir "$PIN" --format json >"$ITEST_TMP/d1.jsonl" 2>"$ITEST_TMP/d1.err" \
    || fail "dump --pin-dir failed: $(cat "$ITEST_TMP/d1.err")"
cat "$ITEST_TMP/d1.err"
"$BIN" dump --pin-dir "$PIN" --format chrome >"$ITEST_TMP/d1.chrome.json" 2>/dev/null \
    || fail "dump --pin-dir --format chrome failed"
"$BIN" dump --pin-dir "$PIN" >"$ITEST_TMP/d1.txt" 2>/dev/null || fail "dump --pin-dir (text) failed"
grep -q "not delivered live" "$ITEST_TMP/d1.err" \
    && pass "the ring buffer overflowed after the kill (losses counted) while the recorder kept recording" \
    || fail "expected ring-buffer losses after the kill: $(cat "$ITEST_TMP/d1.err")"
INO=$(stat -c %i "$F")
ITEST_DIR=$(dirname "$0") python3 - "$ITEST_TMP/d1.jsonl" "$ITEST_TMP/wl1.jsonl" "$INO" "$KILL_NS" \
    "$ITEST_TMP/d1.chrome.json" "$ITEST_TMP/d1.txt" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, os, sys
sys.path.insert(0, os.environ["ITEST_DIR"])
from bdtcheck import Checker
dump, wl, ino, kill_ns, chrome, txt = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
c = Checker()
check = c.check
lines = [json.loads(l) for l in open(dump) if l.strip()]
evs = [l for l in lines if "type" in l]
writes = [json.loads(l) for l in open(wl)]
begins = {e["pos"]: e for e in evs if e["type"] == "dio_begin" and e.get("ino") == ino and e.get("write")}
ends = [e for e in evs if e["type"] == "dio_end" and e.get("ino") == ino]
check(all("wall_ns" in e and "wall_time" in e for e in evs), f"every dumped event has wall_ns/wall_time ({len(evs)} events)")
ts = [e["ts_ns"] for e in evs]
check(ts == sorted(ts), "events merged in time order")
before = [w for w in writes if w["t1"] < kill_ns]
after = [w for w in writes if w["t0"] > kill_ns + 50_000_000]
check(len(before) >= 40 and len(after) >= 40, f"the workload wrote before ({len(before)}) and after ({len(after)}) the kill")
check(all(w["pos"] in begins for w in before), f"every write before the kill has its dio_begin ({sum(w['pos'] in begins for w in before)}/{len(before)})")
check(all(w["pos"] in begins for w in after), f"every write after the kill has its dio_begin ({sum(w['pos'] in begins for w in after)}/{len(after)})")
check(len(ends) >= len(writes), f"dio_end events for the writes ({len(ends)})")
# wall clock right to the millisecond: each dio_begin lies between the times
# the workload read just before and just after its pwrite.
bad = [(w["pos"], begins[w["pos"]]["wall_ns"] - w["t0"], w["t1"] - begins[w["pos"]]["wall_ns"])
       for w in writes if w["pos"] in begins
       and not (w["t0"] - 1_000_000 <= begins[w["pos"]]["wall_ns"] <= w["t1"] + 1_000_000)]
slack = max((max(w["t0"] - begins[w["pos"]]["wall_ns"], begins[w["pos"]]["wall_ns"] - w["t1"], 0)
             for w in writes if w["pos"] in begins), default=None)
check(not bad, f"every dio_begin's wall-clock time is within 1 ms of the workload's own clock readings "
               f"(worst excess {slack} ns; bad: {bad[:3]})")
w0 = writes[0]
wt = begins[w0["pos"]]["wall_time"] if w0["pos"] in begins else ""
import datetime
exp = datetime.datetime.fromtimestamp(begins[w0["pos"]]["wall_ns"] / 1e9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] if wt else "?"
check(wt.startswith(exp), f"wall_time is the UTC form of wall_ns ({wt} vs {exp})")
# chrome: a trace-event document with the keys the format requires
doc = json.load(open(chrome))
tev = doc["traceEvents"]
miss = [e for e in tev if any(k not in e for k in ("name", "ph", "ts", "pid", "tid")) or (e["ph"] == "X" and "dur" not in e)]
check(not miss, f"every chrome trace event has name/ph/ts/pid/tid (+dur for X) ({len(tev)} events; bad: {miss[:2]})")
dio = [e for e in tev if e.get("cat") == "dio" and e["ph"] in ("X", "b")]
check(len(dio) >= len(writes), f"a DIO span per write in the timeline ({len(dio)})")
check(all(isinstance(e["ts"], (int, float)) for e in tev), "numeric ts")
t = open(txt).read()
check("dio_begin" in t, "text dump prints the events")
c.done()
PY

# ---- 2. a small recorder wraps keeping the newest -------------------------------
F2=$SCRATCH_NOCOW/fr-wrap
start_tracer "$ITEST_TMP/t2.out" --mount "$SCRATCH_MNT" --pin-dir "$PIN2" --recorder-events 256
taskset -c 0 python3 "$WL" "$F2" 1500 0 "$ITEST_TMP/wl2.jsonl" || fail "wrap workload failed"
sleep 0.2
"$BIN" dump --pin-dir "$PIN2" --format json >"$ITEST_TMP/d2-live.jsonl" 2>"$ITEST_TMP/d2-live.err" \
    || fail "dump while the tracer runs failed: $(cat "$ITEST_TMP/d2-live.err")"
grep -q "still recording" "$ITEST_TMP/d2-live.err" && grep -q "running" "$ITEST_TMP/d2-live.err" \
    && pass "dump while the tracer runs says it is still recording" \
    || fail "dump while running: $(cat "$ITEST_TMP/d2-live.err")"
stop_tracer || fail "tracer exited non-zero"
grep -q "the flight recorder stays in $PIN2" "$ITEST_TMP/t2.out.err" \
    && pass "a clean exit says where the recorder stays" || fail "clean exit message: $(tail -2 "$ITEST_TMP/t2.out.err")"
"$BIN" dump --pin-dir "$PIN2" --format json >"$ITEST_TMP/d2.jsonl" 2>"$ITEST_TMP/d2.err" \
    || fail "dump after a clean exit failed: $(cat "$ITEST_TMP/d2.err")"
cat "$ITEST_TMP/d2.err"
grep -q "detached" "$ITEST_TMP/d2.err" && pass "after a clean exit the programs are detached" \
    || fail "dump after clean exit: $(cat "$ITEST_TMP/d2.err")"
INO2=$(stat -c %i "$F2")
ITEST_DIR=$(dirname "$0") python3 - "$ITEST_TMP/d2.jsonl" "$ITEST_TMP/wl2.jsonl" "$INO2" "$ITEST_TMP/d2.err" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, os, re, sys
sys.path.insert(0, os.environ["ITEST_DIR"])
from bdtcheck import Checker
dump, wl, ino, err = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = Checker()
check = c.check
evs = [json.loads(l) for l in open(dump) if l.strip()]
evs = [e for e in evs if "type" in e]
writes = [json.loads(l) for l in open(wl)]
pos = [e["pos"] for e in evs if e["type"] == "dio_begin" and e.get("ino") == ino and e.get("write")]
allpos = [w["pos"] for w in writes]
cpus = [tuple(map(int, m)) for m in re.findall(r"cpu (\d+): (\d+) events kept of (\d+) recorded", open(err).read())]
check(cpus and all(k <= 256 for _, k, _ in cpus), f"at most 256 events kept per CPU: {cpus}")
check(any(r > 256 for _, _, r in cpus), "the ring wrapped (more recorded than kept on a CPU)")
check(len(evs) <= 256 * len(cpus), f"{len(evs)} events dumped, bounded by 256 x {len(cpus)} CPUs")
check(allpos[-1] in pos, f"the workload's last write (pos {allpos[-1]}) is in the recorder")
check(0 < len(pos) < len(allpos), f"only part of the {len(allpos)} writes kept ({len(pos)})")
# the newest: the dumped writes are exactly the last len(pos) writes, in order
check(pos == allpos[-len(pos):], f"the kept writes are the newest ones, in order (first kept: {pos[:1]}, expected {allpos[-len(pos):][:1]})")
c.done()
PY

# ---- 3. errors, release ------------------------------------------------------------
"$BIN" trace --pin-dir "$ITEST_TMP/not-bpffs" --duration 1 >"$ITEST_TMP/e1" 2>&1
rc=$?
[[ $rc -eq 1 ]] && grep -q "not on a BPF filesystem" "$ITEST_TMP/e1" \
    && pass "--pin-dir off bpffs: exit 1: $(cat "$ITEST_TMP/e1")" || fail "--pin-dir off bpffs: exit $rc: $(cat "$ITEST_TMP/e1")"
"$BIN" dump --pin-dir /sys/fs/bpf/bdt-itest-none-$$ >"$ITEST_TMP/e2" 2>&1
rc=$?
[[ $rc -eq 1 ]] && grep -q "no flight recorder" "$ITEST_TMP/e2" \
    && pass "dump of a DIR without a recorder: exit 1" || fail "dump of nothing: exit $rc: $(cat "$ITEST_TMP/e2")"
# A meta map of another layout (an older/newer build): clear error, exit 1.
BAD=/sys/fs/bpf/bdt-itest-fr-bad-$$
ITEST_CLEANUPS+=("rm -rf $BAD")
if mkdir "$BAD" && bpftool map create "$BAD/rec_meta" type array key 4 value 8 entries 1 name rec_meta \
    && bpftool map create "$BAD/recorder" type array key 4 value 8 entries 1 name recorder; then
    "$BIN" dump --pin-dir "$BAD" >"$ITEST_TMP/e3" 2>&1
    rc=$?
    [[ $rc -eq 1 ]] && grep -q "build that pinned it" "$ITEST_TMP/e3" \
        && pass "meta mismatch: exit 1: $(cat "$ITEST_TMP/e3")" || fail "meta mismatch: exit $rc: $(cat "$ITEST_TMP/e3")"
else
    fail "could not create the mismatching maps with bpftool"
fi
rm -rf "$BAD"

for p in "$PIN" "$PIN2"; do
    "$BIN" dump --pin-dir "$p" --release >"$ITEST_TMP/rel-${p##*/}" 2>&1 || fail "--release $p failed: $(cat "$ITEST_TMP/rel-${p##*/}")"
    cat "$ITEST_TMP/rel-${p##*/}"
    [[ ! -e $p ]] && pass "--release removed $p" || fail "$p still there: $(ls "$p")"
done
grep -q "link pins" "$ITEST_TMP/rel-${PIN##*/}" && pass "--release of the killed tracer's recorder removed its link pins" \
    || fail "no link pins removed for the killed tracer"
grep -q "link pins" "$ITEST_TMP/rel-${PIN2##*/}" && fail "the cleanly stopped tracer left link pins" || true
for _ in $(seq 1 50); do [[ $(bdt_prog_count) -le ${ITEST_PROGS_BEFORE:-0} ]] && break; sleep 0.1; done
[[ $(bdt_prog_count) -le ${ITEST_PROGS_BEFORE:-0} ]] && pass "no bdt_ programs left after --release" \
    || fail "bdt_ programs still loaded after --release: $(bdt_prog_count)"

itest_finish
