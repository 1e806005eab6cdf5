#!/usr/bin/env bash
# Where the tracer's BPF programs spend their time, by source line (docs/performance.md): the
# default tracer on a scratch btrfs, fio 4 KiB O_DIRECT randrw on a nocow file (as overhead.sh),
# `perf record -a` during the run, then each sample in a program mapped to its source line
# through the program's JIT line table (scripts/bench/bpf_lines.py). perf cannot annotate BPF
# programs without libopcodes, nor bpftool dump JIT code without libbfd: this needs neither.
# bpf_stats stays off (its clock reads would be in the samples).
#
#   sudo scripts/bench/bpf-lines.sh [-b BUILD_DIR] [-e io_uring|psync] [-r RUNTIME_S] [-n LINES]
#                                   [-k DIR] [-- TRACER_ARGS...]
#   -k  keep perf.data, the xlated listings and the line table in DIR (default: a temp dir, removed)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$src/build engine=io_uring runtime=8 top=15 keep=
while getopts "b:e:r:n:k:h" o; do
    case $o in
        b) build=$OPTARG ;; e) engine=$OPTARG ;; r) runtime=$OPTARG ;; n) top=$OPTARG ;;
        k) keep=$OPTARG ;; *) sed -n '2,11p' "$0"; exit 1 ;;
    esac
done
shift $((OPTIND - 1))
bin=$build/btrfs-dio-trace
[[ -x $bin ]] || { echo "build first: $bin missing" >&2; exit 1; }
for t in fio perf bpftool python3; do
    command -v "$t" >/dev/null || { echo "SKIPPED: $t missing" >&2; exit 77; }
done
source "$src/scripts/lib/scratch-btrfs.sh"
scratch_btrfs_require || exit 77
bdt_root_lock
export SCRATCH_PREFIX=bdt-bpflines
out=${keep:-$(mktemp -d /tmp/bdt-bpflines-XXXXXX)}
mkdir -p "$out"
tracer=
cleanup() {
    if [[ -n $tracer ]]; then kill -INT "$tracer" 2>/dev/null || true; wait "$tracer" 2>/dev/null || true; fi
    scratch_btrfs_cleanup
    [[ -z $keep ]] && rm -rf "$out"
    return 0
}
trap cleanup EXIT INT TERM
scratch_btrfs_setup 2G >/dev/null
f=$SCRATCH_NOCOW/bench
fio --name=lay --filename="$f" --size=256M --rw=write --bs=1M --direct=1 --output=/dev/null
depth=8; [[ $engine == psync ]] && depth=1
: >"$out/tracer.err"
"$bin" --mount "$SCRATCH_MNT" "$@" >"$out/tracer.out" 2>"$out/tracer.err" &
tracer=$!
for _ in $(seq 200); do grep -q Ctrl-C "$out/tracer.err" && break; sleep 0.1; done
grep -q Ctrl-C "$out/tracer.err" || { echo "tracer did not start:" >&2; cat "$out/tracer.err" >&2; exit 2; }
# the tracer's programs (names from the skeleton, as overhead.sh; the root lock keeps other
# tracers away), their listings and JIT line tables
sed -n 's/.*struct bpf_program \*\([a-z0-9_]*\);.*/\1/p' "$build/bpf/bdt.skel.h" | cut -c1-15 | sort -u >"$out/names"
bpftool prog show -j | python3 -c '
import json, sys
names = {l.strip() for l in open(sys.argv[1])}
for p in json.load(sys.stdin):
    if p.get("name") in names:
        print(p["id"], p["name"])' "$out/names" >"$out/ids"
[[ -s $out/ids ]] || { echo "none of the tracer's programs is loaded" >&2; exit 2; }
while read -r id name; do bpftool prog dump xlated id "$id" linum >"$out/$name.xl"; done <"$out/ids"
# shellcheck disable=SC2046
python3 "$here/bpf_lines.py" info $(cut -d' ' -f1 "$out/ids") >"$out/info.json"
perf record -a -F 9999 -o "$out/perf.data" -- sleep "$runtime" >/dev/null 2>&1 &
pp=$!
fio --name=b --filename="$f" --size=256M --rw=randrw --bs=4k --direct=1 --ioengine="$engine" \
    --iodepth=$depth --numjobs=2 --thread --group_reporting --time_based --runtime="$runtime" \
    --output=/dev/null
wait $pp || true
kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true; tracer=
echo "kernel $(uname -r), engine $engine, ${runtime}s, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$here/bpf_lines.py" report "$out" "$top"
