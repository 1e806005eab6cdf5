#!/usr/bin/env bash
# soak.sh - a long run of `trace --qemu --metrics-addr --snapshot-dir` under mixed direct I/O, to see
# that the tracer's resources stay flat (not a CI test: 10 minutes by default, needs root and the
# machine's root-test lock). docs/deployment.md ("Long runs") has the numbers of a run.
#
# usage: scripts/soak.sh [options]
#   -d, --duration SEC   how long the traffic and the tracer run (default 600)
#   -b, --build DIR      build directory holding btrfs-dio-trace (default: build)
#   -k, --keep DIR       keep the samples (CSV), the tracer's output and stderr in DIR
#   -h, --help           this help
#
# On a scratch btrfs (scripts/lib/scratch-btrfs.sh), stand-in VMs (fio run as qemu-system-x86_64
# --name NAME --thread: discovery finds it by argv[0], its open O_DIRECT file is its image), all
# rate-limited so that a shared machine stays usable:
#   vm-aio    libaio randrw 4 KiB, iodepth 8, 250 IOPS, nocow image        (direct)
#   vm-uring  io_uring randrw 64 KiB, iodepth 4, 100 IOPS, nocow image     (direct)
#   vm-csum   psync randwrite 16 KiB, 50 IOPS, checksummed image           (falls back to buffered)
#   vm-churn  io_uring randrw 4 KiB, 100 IOPS on a checksummed image, restarted every 30 s (a new
#             QEMU pid each time: VM started/exited, a new dio-buffered-fallback finding, a snapshot)
#   not a VM  fio psync randrw 4 KiB, 200 IOPS on the same filesystem (filtered out in the kernel)
# The tracer runs `trace --qemu --metrics-addr 127.0.0.1:PORT --snapshot-dir DIR --format json -o FILE`;
# /metrics is scraped every second; every 10 s the tracer's RSS, open fds, threads, CPU time, the
# entries of its hash maps (bpftool map dump of the maps its fds hold) and a few of its own metrics
# are sampled and printed as a table row. At the end: the verdict, comparing the samples of the
# first minute with those of the last (the first and last third for runs under 3 minutes):
#   RSS       last max <= first max + max(4 MiB, 10 %)
#   fds       last max <= first max + 2            (a scrape's connection may be open)
#   threads   last max <= first max
#   map entries (sum over hash maps), detector state entries
#             last mean <= first mean x 1.25 + 64 (they follow the request rate)
#   CPU       last mean <= first mean x 1.5 + 1 percentage point (the machine is shared)
#   scrapes   none failed; lost records 0; the tracer exits 0 with its summary
# Exit: 0 flat, 1 not flat (or the tracer failed), 77 cannot run here.
set -uo pipefail

usage() { sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; }
SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=600
BUILD=$SRC_DIR/build
KEEP=
while [[ $# -gt 0 ]]; do
    case $1 in
        -d|--duration) DURATION=$2; shift 2;;
        -b|--build) BUILD=$2; shift 2;;
        -k|--keep) KEEP=$2; shift 2;;
        -h|--help) usage; exit 0;;
        *) echo "soak: unknown argument $1" >&2; usage >&2; exit 1;;
    esac
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 30 ]] || { echo "soak: --duration wants whole seconds, at least 30" >&2; exit 1; }
BIN=$(cd "$BUILD" 2>/dev/null && pwd)/btrfs-dio-trace
[[ -x $BIN ]] || { echo "SKIPPED: $BIN is not built"; exit 77; }
[[ $(id -u) -eq 0 ]] || { echo "SKIPPED: needs root"; exit 77; }
for t in fio bpftool python3; do
    command -v $t >/dev/null || { echo "SKIPPED: $t not installed"; exit 77; }
done
# shellcheck source=lib/scratch-btrfs.sh
source "$SRC_DIR/scripts/lib/scratch-btrfs.sh"
why=$(scratch_btrfs_require 2>&1) || { echo "SKIPPED: $why"; exit 77; }
bdt_root_lock || { echo "SKIPPED: could not take the root-test lock"; exit 77; }

WORK=$(mktemp -d /tmp/bdt-soak-XXXXXX)
TRACER=
declare -a JOBS=()
CHURN_STOP=$WORK/churn.stop
cleanup() {
    local rc=$?
    : >"$CHURN_STOP"
    local p
    for p in "${JOBS[@]}" $(cat "$WORK/churn.pid" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    { for p in "${JOBS[@]}"; do wait "$p"; done; } 2>/dev/null
    if [[ -n $TRACER ]] && kill -0 "$TRACER" 2>/dev/null; then
        kill -INT "$TRACER"; sleep 2; kill -KILL "$TRACER" 2>/dev/null; wait "$TRACER" 2>/dev/null
    fi
    scratch_btrfs_cleanup
    if [[ -n $KEEP ]]; then mkdir -p "$KEEP" && cp -a "$WORK"/. "$KEEP"/; fi
    rm -rf "$WORK"
    return $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SCRATCH_PREFIX=bdt-soak scratch_btrfs_setup 4G || { echo "soak: scratch btrfs setup failed"; exit 1; }
for f in "$SCRATCH_NOCOW/vm-aio.raw" "$SCRATCH_NOCOW/vm-uring.raw" "$SCRATCH_MNT/vm-csum.raw" \
    "$SCRATCH_MNT/vm-churn.raw" "$SCRATCH_NOCOW/not-a-vm.dat"; do
    fallocate -l 256M "$f" || { echo "soak: cannot create $f"; exit 1; }
done
PORT=$((20000 + RANDOM % 20000))
mkdir -m 0700 "$WORK/snap"
"$BIN" trace --qemu --metrics-addr "127.0.0.1:$PORT" --snapshot-dir "$WORK/snap" --format json \
    -o "$WORK/trace.jsonl" 2>"$WORK/trace.err" &
TRACER=$!
for _ in $(seq 300); do
    grep -q "Ctrl-C to stop" "$WORK/trace.err" && break
    kill -0 "$TRACER" 2>/dev/null || { echo "soak: the tracer did not start:"; cat "$WORK/trace.err"; exit 1; }
    sleep 0.1
done
grep -q "Ctrl-C to stop" "$WORK/trace.err" || { echo "soak: the tracer did not attach in 30 s"; exit 1; }

RUN=$((DURATION + 30))   # the workloads outlast the sampling; they are killed at the end
vm() { # NAME ARGS... : a stand-in QEMU (fio named qemu-system-x86_64), in the background
    local name=$1
    shift
    (exec -a qemu-system-x86_64 fio --name "$name" --thread --direct=1 --time_based --output=/dev/null "$@") \
        >>"$WORK/$name.log" 2>&1 &
    JOBS+=($!)
}
vm vm-aio --filename="$SCRATCH_NOCOW/vm-aio.raw" --ioengine=libaio --iodepth=8 --rw=randrw --bs=4k \
    --rate_iops=250 --runtime=$RUN
vm vm-uring --filename="$SCRATCH_NOCOW/vm-uring.raw" --ioengine=io_uring --iodepth=4 --rw=randrw --bs=64k \
    --rate_iops=100 --runtime=$RUN
vm vm-csum --filename="$SCRATCH_MNT/vm-csum.raw" --ioengine=psync --rw=randwrite --bs=16k \
    --rate_iops=50 --runtime=$RUN
(while [[ ! -e $CHURN_STOP ]]; do
    (exec -a qemu-system-x86_64 fio --name vm-churn --thread --direct=1 --time_based --output=/dev/null \
        --filename="$SCRATCH_MNT/vm-churn.raw" --ioengine=io_uring --iodepth=4 --rw=randrw --bs=4k \
        --rate_iops=100 --runtime=25) >>"$WORK/vm-churn.log" 2>&1 &
    echo $! >"$WORK/churn.pid"
    wait $!
    sleep 5
done) &
JOBS+=($!)
(exec fio --name not-a-vm --thread --direct=1 --time_based --output=/dev/null \
    --filename="$SCRATCH_NOCOW/not-a-vm.dat" --ioengine=psync --rw=randrw --bs=4k --rate_iops=200 \
    --runtime=$RUN) >>"$WORK/not-a-vm.log" 2>&1 &
JOBS+=($!)

echo "soak: $DURATION s, tracer pid $TRACER, metrics 127.0.0.1:$PORT, snapshots $WORK/snap, kernel $(uname -r), $(nproc) CPUs"
echo "soak: command: $BIN trace --qemu --metrics-addr 127.0.0.1:$PORT --snapshot-dir $WORK/snap --format json -o $WORK/trace.jsonl"
PYTHONPATH=$SRC_DIR/scripts/lib python3 - "$TRACER" "$PORT" "$DURATION" "$WORK" <<'PY'
# Scrapes /metrics every second and samples the tracer every 10 s; writes samples.csv; prints rows.
import csv, glob, json, os, re, subprocess, sys, threading, time
import bpf_maps
pid, port, duration, work = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
import urllib.request
hz = os.sysconf("SC_CLK_TCK")
lock = threading.Lock()
scr = {"ok": 0, "fail": 0, "max_ms": 0.0, "last": ""}
stop = threading.Event()

def scraper():
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            ms = (time.monotonic() - t0) * 1000
            with lock:
                scr["ok"] += 1
                scr["max_ms"] = max(scr["max_ms"], ms)
                scr["last"] = body
        except Exception as e:
            with lock:
                scr["fail"] += 1
            print(f"soak: scrape failed: {e}", flush=True)
        stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))

def metric(body, name):
    tot, seen = 0.0, False
    for m in re.finditer(rf"^btrfs_dio_trace_{name}(?:\{{[^}}]*\}})? (\S+)$", body, re.M):
        tot += float(m.group(1)); seen = True
    return tot if seen else float("nan")

def maps():
    """Entries of each hash map the tracer holds, by map name."""
    out = {}
    for info in bpf_maps.maps(pid):
        if "hash" not in info.get("type", ""):
            continue
        try:
            out[info.get("name", str(info.get("id")))] = len(bpf_maps.dump(info["id"]))
        except ValueError:
            pass
    return out

def proc():
    st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(st[11]) + int(st[12])) / hz   # utime + stime (fields 14, 15)
    status = open(f"/proc/{pid}/status").read()
    kb = lambda k: int(re.search(rf"^{k}:\s+(\d+)", status, re.M).group(1))
    return cpu, kb("VmRSS") / 1024, kb("VmHWM") / 1024, len(os.listdir(f"/proc/{pid}/fd")), kb("Threads")

threading.Thread(target=scraper, daemon=True).start()
cols = ["t_s", "rss_mib", "hwm_mib", "fds", "threads", "cpu_pct", "map_entries", "state_entries",
        "lat_keys", "inflight", "vms", "findings", "lost", "scrapes_ok", "scrapes_fail", "scrape_max_ms",
        "snapshots", "out_kib", "load1", "maps"]
rows = []
w = csv.writer(open(f"{work}/samples.csv", "w", newline=""))
w.writerow(cols)
print(f"{'t_s':>5} {'RSS':>6} {'HWM':>6} {'fds':>4} {'thr':>4} {'CPU%':>5} {'mapent':>7} {'state':>6} "
      f"{'latk':>5} {'infl':>5} {'vms':>3} {'find':>5} {'lost':>5} {'scr ok/fail':>11} {'scr ms':>6} "
      f"{'snap':>4} {'outKiB':>6} {'load1':>5}", flush=True)
t0 = time.monotonic()
cpu0, *_ = proc()
prev_t, prev_cpu = t0, cpu0
for k in range(1, duration // 10 + 1):
    time.sleep(max(0.0, t0 + 10 * k - time.monotonic()))
    try:
        cpu, rss, hwm, fds, thr = proc()
    except (OSError, AttributeError):
        print("soak: the tracer is gone", flush=True)
        sys.exit(1)
    now = time.monotonic()
    m = maps()
    with lock:
        body, ok, fail, mx = scr["last"], scr["ok"], scr["fail"], scr["max_ms"]
        scr["max_ms"] = 0.0
    r = dict(t_s=10 * k, rss_mib=round(rss, 1), hwm_mib=round(hwm, 1), fds=fds, threads=thr,
             cpu_pct=round(100 * (cpu - prev_cpu) / (now - prev_t), 2), map_entries=sum(m.values()),
             state_entries=metric(body, "detector_state_entries"), lat_keys=metric(body, "qemu_latency_kernel_keys"),
             inflight=metric(body, "dio_inflight"), vms=metric(body, "qemu_vms"),
             findings=metric(body, "findings_total"), lost=metric(body, "lost_events_total"),
             scrapes_ok=ok, scrapes_fail=fail, scrape_max_ms=round(mx, 1),
             snapshots=len(os.listdir(f"{work}/snap")),
             out_kib=os.path.getsize(f"{work}/trace.jsonl") // 1024 if os.path.exists(f"{work}/trace.jsonl") else 0,
             load1=float(open("/proc/loadavg").read().split()[0]),
             maps=" ".join(f"{n}={v}" for n, v in sorted(m.items()) if v))
    prev_t, prev_cpu = now, cpu
    rows.append(r)
    w.writerow([r[c] for c in cols])
    print(f"{r['t_s']:>5} {r['rss_mib']:>6} {r['hwm_mib']:>6} {r['fds']:>4} {r['threads']:>4} {r['cpu_pct']:>5} "
          f"{r['map_entries']:>7} {r['state_entries']:>6.0f} {r['lat_keys']:>5.0f} {r['inflight']:>5.0f} "
          f"{r['vms']:>3.0f} {r['findings']:>5.0f} {r['lost']:>5.0f} {str(ok) + '/' + str(fail):>11} "
          f"{r['scrape_max_ms']:>6} {r['snapshots']:>4} {r['out_kib']:>6} {r['load1']:>5}", flush=True)
stop.set()
json.dump(rows, open(f"{work}/samples.json", "w"))
PY
mon=$?
echo "soak: stopping the workloads and the tracer"
: >"$CHURN_STOP"
for p in "${JOBS[@]}" $(cat "$WORK/churn.pid" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
{ for p in "${JOBS[@]}"; do wait "$p"; done; } 2>/dev/null
JOBS=()
kill -INT "$TRACER"
trc=0
{ wait "$TRACER" || trc=$?; } 2>/dev/null   # (not the shell's notices of the killed jobs)
TRACER=
echo "soak: tracer exit $trc; its last stderr lines:"
tail -n 5 "$WORK/trace.err" | sed 's/^/    /'
[[ $mon -eq 0 && -s $WORK/samples.json ]] || { echo "soak: VERDICT: FAILED (sampling stopped: the tracer died?)"; exit 1; }
python3 - "$WORK" "$trc" <<'PY'
# The verdict: first minute against last minute (first/last third for short runs).
import json, math, sys
work, trc = sys.argv[1], int(sys.argv[2])
rows = json.load(open(f"{work}/samples.json"))
span = rows[-1]["t_s"]
win = 60 if span >= 180 else span / 3
first = [r for r in rows if r["t_s"] <= win]
last = [r for r in rows if r["t_s"] > span - win]
mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)
mx = lambda rs, k: max(r[k] for r in rs)
bad = 0
def judge(what, a, b, limit, ok):
    global bad
    bad += not ok
    print(f"  {'ok  ' if ok else 'FAIL'} {what:<34} first {a:>9.2f}  last {b:>9.2f}  limit {limit:>9.2f}")
print(f"soak: verdict over {span} s: first {win:.0f} s ({len(first)} samples) against the last {win:.0f} s ({len(last)} samples)")
a, b = mx(first, "rss_mib"), mx(last, "rss_mib"); lim = a + max(4, a * 0.10); judge("RSS MiB (max)", a, b, lim, b <= lim)
a, b = mx(first, "fds"), mx(last, "fds"); judge("open fds (max)", a, b, a + 2, b <= a + 2)
a, b = mx(first, "threads"), mx(last, "threads"); judge("threads (max)", a, b, a, b <= a)
for k, name in (("map_entries", "BPF hash map entries (mean)"), ("state_entries", "detector state entries (mean)")):
    a, b = mean(first, k), mean(last, k)
    if math.isnan(a) or math.isnan(b):
        bad += 1; print(f"  FAIL {name}: not sampled"); continue
    lim = a * 1.25 + 64; judge(name, a, b, lim, b <= lim)
a, b = mean(first, "cpu_pct"), mean(last, "cpu_pct"); lim = a * 1.5 + 1; judge("CPU % of one core (mean)", a, b, lim, b <= lim)
fails = rows[-1]["scrapes_fail"]; judge("failed scrapes (total)", 0, fails, 0, fails == 0)
lost = rows[-1]["lost"]; judge("lost records (total)", 0, lost, 0, lost == 0)
judge("tracer exit status", 0, trc, 0, trc == 0)
summ = [json.loads(l) for l in open(f"{work}/trace.jsonl") if '"type":"summary"' in l]
judge("summary lines", 1, len(summ), 1, len(summ) == 1)
print(f"soak: {rows[-1]['scrapes_ok']} scrapes, {rows[-1]['findings']:.0f} findings, {rows[-1]['snapshots']} snapshot files, "
      f"load average (1 min) {min(r['load1'] for r in rows)}-{max(r['load1'] for r in rows)}, "
      f"RSS {min(r['rss_mib'] for r in rows)}-{max(r['rss_mib'] for r in rows)} MiB, HWM {rows[-1]['hwm_mib']} MiB")
print(f"soak: maps at the end: {rows[-1]['maps']}")
import collections
fk = collections.Counter((o.get("detector"), o.get("kind"), o.get("vm")) for o in
                         (json.loads(l) for l in open(f"{work}/trace.jsonl") if '"type":"finding"' in l))
print("soak: findings: " + (", ".join(f"{d}/{k} {v}: {n}" for (d, k, v), n in sorted(fk.items())) or "none"))
print("soak: VERDICT: " + ("FLAT" if not bad else f"NOT FLAT ({bad} check(s) failed)"))
sys.exit(1 if bad else 0)
PY
