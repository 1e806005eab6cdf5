#!/usr/bin/env bash
# Overhead of btrfs-dio-trace on O_DIRECT I/O, measured as ratios within one run:
# fio 4 KiB O_DIRECT random read/write on a nocow file of a scratch btrfs,
# alternating runs without the tracer, with the tracer (findings only), with the
# tracer and its in-kernel flight recorder pinned (--pin-dir, released after each
# run), and with --events --format json to /dev/null. Prints IOPS per run and the
# median ratios.
#
# -s: also measure the BPF programs' own cost (kernel.bpf_stats_enabled=1 for the run,
# restored after): average ns per program run with the pinned flight recorder and without,
# which a busy machine disturbs much less than IOPS.
# -a: also run the tracer with --all-events (every record every hook can make, as
# before the emission policy of docs/performance.md), findings only, in the same rounds.
#
#   sudo scripts/bench/overhead.sh [-b BUILD_DIR] [-r RUNTIME_S] [-n ROUNDS] [-e ioengine] [-s] [-a]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$src/build runtime=5 rounds=3 engine=io_uring stats=0 all=0
while getopts "b:r:n:e:sah" o; do
    case $o in
        b) build=$OPTARG ;; r) runtime=$OPTARG ;; n) rounds=$OPTARG ;; e) engine=$OPTARG ;; s) stats=1 ;; a) all=1 ;;
        *) sed -n '2,15p' "$0"; exit 1 ;;
    esac
done
bin=$build/btrfs-dio-trace
depth=8; [[ $engine == psync || $engine == sync ]] && depth=1
[[ -x $bin ]] || { echo "build first: $bin missing" >&2; exit 1; }
source "$src/scripts/lib/scratch-btrfs.sh"
scratch_btrfs_require || exit 2
bdt_root_lock || exit 2
export SCRATCH_PREFIX=bdt-bench
tracer=
stats_was=$(cat /proc/sys/kernel/bpf_stats_enabled 2>/dev/null || echo 0)
pin=/sys/fs/bpf/bdt-bench-$$ bpffs_mounted=
cleanup() {
    [[ -n $tracer ]] && kill -INT "$tracer" 2>/dev/null && wait "$tracer" 2>/dev/null
    [[ -d $pin ]] && "$bin" dump --pin-dir "$pin" --release >/dev/null 2>&1
    [[ -n $bpffs_mounted ]] && umount /sys/fs/bpf
    [[ $stats == 1 ]] && echo "$stats_was" >/proc/sys/kernel/bpf_stats_enabled
    scratch_btrfs_cleanup
}
trap cleanup EXIT
if [[ $(stat -f -c %T /sys/fs/bpf 2>/dev/null) != bpf_fs ]]; then
    mount -t bpf bpf /sys/fs/bpf || { echo "no bpffs at /sys/fs/bpf and cannot mount one" >&2; exit 2; }
    bpffs_mounted=1
fi
scratch_btrfs_setup 2G >/dev/null
f=$SCRATCH_NOCOW/bench
fio --name=lay --filename="$f" --size=256M --rw=write --bs=1M --direct=1 --output=/dev/null

iops() {  # one fio run; prints total IOPS
    fio --name=b --filename="$f" --size=256M --rw=randrw --bs=4k --direct=1 --ioengine="$engine" \
        --iodepth="$depth" --numjobs=2 --thread --group_reporting --time_based --runtime="$runtime" \
        --output-format=json 2>/dev/null |
        python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; print(int(j["read"]["iops"]+j["write"]["iops"]))'
}
start() {
    "$bin" --mount "$SCRATCH_MNT" "$@" >/dev/null 2>"$SCRATCH_DIR/tracer.err" &
    tracer=$!
    for _ in $(seq 100); do grep -q "Ctrl-C" "$SCRATCH_DIR/tracer.err" && return; sleep 0.1; done
    echo "tracer did not start: $(cat "$SCRATCH_DIR/tracer.err")" >&2; exit 2
}
stop() { kill -INT "$tracer"; wait "$tracer" || true; tracer=; }
# -s: "ns_per_run runs" of the tracer's programs (skeleton names), read while it runs.
prog_ns() {
    bpftool prog show -j 2>/dev/null | python3 -c '
import json, sys
names = {l.strip()[:15] for l in open(sys.argv[1])}
t = n = 0
for p in json.load(sys.stdin):
    if p.get("name") in names:
        t += p.get("run_time_ns", 0); n += p.get("run_cnt", 0)
print(f"{t / n:.0f} {n}" if n else "0 0")' <(sed -n 's/.*struct bpf_program \*\([a-z0-9_]*\);.*/\1/p' "$build/bpf/bdt.skel.h")
}
if [[ $stats == 1 ]]; then echo 1 >/proc/sys/kernel/bpf_stats_enabled || { echo "cannot enable bpf_stats" >&2; exit 2; }; fi
declare -a ns_def=() ns_rec=()

declare -a base=() det=() ev=() norec=() alle=()
echo "kernel $(uname -r), fio randrw 4k direct=1 ioengine=$engine iodepth=$depth 2 threads, ${runtime}s x $rounds rounds"
for r in $(seq "$rounds"); do
    b=$(iops)
    start; d=$(iops); [[ $stats == 1 ]] && ns_def+=("$(prog_ns)"); stop
    start --pin-dir "$pin"; n=$(iops); [[ $stats == 1 ]] && ns_rec+=("$(prog_ns)"); stop
    "$bin" dump --pin-dir "$pin" --release >/dev/null 2>&1 || { echo "could not release $pin" >&2; exit 2; }
    start --events --format json; e=$(iops); stop
    a=
    if [[ $all == 1 ]]; then start --all-events; a=$(iops); stop; alle+=("$a"); fi
    base+=("$b") det+=("$d") ev+=("$e") norec+=("$n")
    echo "round $r: no tracer $b IOPS | tracer (findings) $d IOPS | tracer + pinned recorder $n IOPS | tracer --events json $e IOPS${a:+ | tracer --all-events $a IOPS}"
done
python3 - "${base[*]}" "${det[*]}" "${ev[*]}" "${norec[*]}" <<'PY'
import statistics, sys
b, d, e, n = ([int(x) for x in a.split()] for a in sys.argv[1:5])
rd = statistics.median([x / y for x, y in zip(d, b)])
re = statistics.median([x / y for x, y in zip(e, b)])
rn = statistics.median([x / y for x, y in zip(n, b)])
rr = statistics.median([x / y for x, y in zip(d, n)])
print(f"median IOPS ratio, tracer attached / not: findings only {rd:.3f} (with pinned recorder {rn:.3f}), --events json {re:.3f}")
print(f"median IOPS ratio, pinned flight recorder / none (findings only): {1 / rr:.3f}")
print("spread (min-max) of the per-round ratios: findings only "
      f"{min(x / y for x, y in zip(d, b)):.3f}-{max(x / y for x, y in zip(d, b)):.3f}, --events json "
      f"{min(x / y for x, y in zip(e, b)):.3f}-{max(x / y for x, y in zip(e, b)):.3f}")
PY
if [[ $all == 1 ]]; then
    python3 - "${base[*]}" "${alle[*]}" <<'PY'
import statistics, sys
b, a = ([int(x) for x in v.split()] for v in sys.argv[1:3])
r = [x / y for x, y in zip(a, b)]
print(f"median IOPS ratio, tracer --all-events / not: {statistics.median(r):.3f} (spread {min(r):.3f}-{max(r):.3f})")
PY
fi
if [[ $stats == 1 ]]; then
    python3 - "$(printf '%s\n' "${ns_rec[@]}")" "$(printf '%s\n' "${ns_def[@]}")" <<'PY'
import statistics, sys
on = [tuple(map(float, l.split())) for l in sys.argv[1].splitlines() if l.strip()]
off = [tuple(map(float, l.split())) for l in sys.argv[2].splitlines() if l.strip()]
for tag, v in (("pinned recorder", on), ("no recorder    ", off)):
    print(f"BPF programs, {tag}: ns per program run per round {[int(x) for x, _ in v]} (runs {[int(n) for _, n in v]})")
mon, moff = statistics.median(x for x, _ in on), statistics.median(x for x, _ in off)
print(f"median ns per BPF program run: pinned recorder {mon:.0f}, none {moff:.0f}, ratio {mon / moff:.3f}")
PY
fi
