#!/usr/bin/env bash
# Overhead of btrfs-dio-trace on O_DIRECT I/O, measured as ratios within one run:
# fio 4 KiB O_DIRECT random read/write on a nocow file of a scratch btrfs,
# alternating runs without the tracer, with the tracer (findings only), with the
# tracer and its in-kernel flight recorder off (--recorder-events 0), and with
# --events --format json to /dev/null. Prints IOPS per run and the median ratios.
#
#   sudo scripts/bench/overhead.sh [-b BUILD_DIR] [-r RUNTIME_S] [-n ROUNDS] [-e ioengine]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$src/build runtime=5 rounds=3 engine=io_uring
while getopts "b:r:n:e:h" o; do
    case $o in
        b) build=$OPTARG ;; r) runtime=$OPTARG ;; n) rounds=$OPTARG ;; e) engine=$OPTARG ;;
        *) sed -n '2,9p' "$0"; exit 1 ;;
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
cleanup() { [[ -n $tracer ]] && kill -INT "$tracer" 2>/dev/null && wait "$tracer" 2>/dev/null; scratch_btrfs_cleanup; }
trap cleanup EXIT
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

declare -a base=() det=() ev=() norec=()
echo "kernel $(uname -r), fio randrw 4k direct=1 ioengine=$engine iodepth=$depth 2 threads, ${runtime}s x $rounds rounds"
for r in $(seq "$rounds"); do
    b=$(iops)
    start; d=$(iops); stop
    start --recorder-events 0; n=$(iops); stop
    start --events --format json; e=$(iops); stop
    base+=("$b") det+=("$d") ev+=("$e") norec+=("$n")
    echo "round $r: no tracer $b IOPS | tracer (findings) $d IOPS | tracer, recorder off $n IOPS | tracer --events json $e IOPS"
done
python3 - "${base[*]}" "${det[*]}" "${ev[*]}" "${norec[*]}" <<'PY'
import statistics, sys
b, d, e, n = ([int(x) for x in a.split()] for a in sys.argv[1:5])
rd = statistics.median([x / y for x, y in zip(d, b)])
re = statistics.median([x / y for x, y in zip(e, b)])
rn = statistics.median([x / y for x, y in zip(n, b)])
rr = statistics.median([x / y for x, y in zip(d, n)])
print(f"median IOPS ratio, tracer attached / not: findings only {rd:.3f} (recorder off {rn:.3f}), --events json {re:.3f}")
print(f"median IOPS ratio, flight recorder on / off (findings only): {rr:.3f}")
PY
