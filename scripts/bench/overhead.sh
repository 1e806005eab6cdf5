#!/usr/bin/env bash
# Overhead of btrfs-dio-trace on O_DIRECT I/O (docs/performance.md): fio 4 KiB O_DIRECT
# random read/write, 2 threads, on a nocow file of a scratch btrfs on a loop device.
#
# In each round, for each engine (io_uring iodepth 8, psync), one fio run per column:
#   none     no tracer
#   floor    the tracer's hooks attached with the same mechanism each, every program
#            returning at once (the hidden --bench-floor): the least any tracer on
#            these hooks can cost
#   default  the tracer, findings only
#   events   --events --format json >/dev/null (every event printed)
#   pin      --pin-dir (the pinned flight recorder; released after each run)
#   nofb     (-f) the tracer without the hooks that see O_DIRECT writes fall back
#            (BDT_FALLBACK_HOOKS=0: write-family syscalls, io_submit, io_uring; the
#            btrfs_direct_write() function hook): default/nofb is what the exact
#            buffered-fallback check costs
#   noinv    (-i) the tracer without the triggers only the invariant detectors need
#            (BDT_TRIGGERS_OFF=stall,oe_stall,csum_direct,acked_ioerr: dio-stuck's scans of
#            the requests and the DIRECT ordered extents in flight, the table of those
#            extents and the writes kept with them (acked_ioerr, dio-acked-unbacked); the
#            last direct writes of checksummed files; BDT_BENCH_NOINV_OFF=LIST replaces the
#            list, e.g. acked_ioerr alone for what that trigger adds); their other triggers,
#            errno, oe_ioerr and csum, are also other detectors', and they need no hook
#            of their own): default/noinv is what the invariant detectors cost the
#            kernel side; with -i the bpf_stats runs below include noinv
#   base     (-B BUILD) the default tracer of another build (findings only): a
#            before/after comparison of two builds in the same interleaved rounds;
#            RESULT adds default/base, and the bpf_stats runs below include base
#   bevents  (-B BUILD, when the columns include events) the other build's
#            --events --format json: RESULT adds events/bevents, and the tracer CPU
#            per I/O of both builds' --events compares their userspace consumers
# The columns run in a different order each round (rotated), so a drift of the
# machine's load does not always hit the same column. IOPS ratios to `none` are
# taken within a round; the script prints every round and ends with one RESULT
# line: the median ratio of each column to `none` and of default to floor (the
# round lines and the summaries: scripts/bench/overhead_report.py).
# Per run it also prints the tracer's CPU time per I/O (utime+stime from
# /proc/PID/stat) and its records per I/O (the summary's "records" line).
# Every tracer run's hooks are read from the kernel (the programs the process holds, named
# by mechanism): a hook attached with another mechanism than in the floor column (without
# a floor: default, else the first column of this build), e.g. a verifier refusal that
# made one hook fall back from tp_btf to raw_tp, prints a WARNING line, and RESULT ends
# with "ATTACH DIFFERS (...)".
#
# With -F PCT, then the same columns in fixed-rate rounds (as many, rotated alike): fio
# capped at PCT% of the engine's median `none` IOPS of the rounds above (below what every
# column reaches, the machine is not saturated), and for each run the machine's busy CPU
# time per I/O (/proc/stat: user, nice, system, irq, softirq of every CPU; not idle,
# iowait or steal): fio, the kernel, the tracer and its programs, and anything else
# running. Its ratio to `none` is the cost at the same work, resolved far more finely than
# an IOPS ratio on a small machine (IOPS at saturation fall by about the share of CPU a
# column adds). Each round's line also has the IOPS each run did. A last RESULT-CPU line has the medians of each column's CPU per I/O to
# none's and of default's to floor's; a run that fell more than 3% short of the rate is
# marked SHORT (its CPU per I/O still counts: the I/Os it did).
#
# Then, unless -S: BPF time per I/O from bpf_stats (kernel.bpf_stats_enabled=1 only
# for these runs, restored after; it adds its own clock reads to every program run, so
# it is kept out of the IOPS rounds): one run each of floor and default per engine, the
# tracer's programs' run_time_ns summed over the run divided by fio's I/Os, and per
# program (with -k N, N such runs per column in rotated order, then the median per
# column: before/after comparisons of BPF time in one run; -s "COLUMNS" adds columns,
# e.g. -s events for the BPF time of making every record). And the tracer's memory after a default run: VmHWM and the locked memory of
# its BPF maps (memlock of each map fd in /proc/PID/fdinfo).
# Unless -R: replay speed of a binary record of a default-policy --record run, on one
# CPU (taskset -c 0), three times: events per second of wall time and of the
# replay's own CPU time (on a shared machine the wall time includes waiting for CPU 0).
#
#   sudo scripts/bench/overhead.sh [-b BUILD_DIR] [-r RUNTIME_S] [-n ROUNDS] [-e "ENGINES"]
#                                  [-c "COLUMNS"] [-S] [-R] [-a] [-f] [-i] [-B BUILD] [-k N]
#                                  [-s "COLUMNS"] [-F PCT]
#   -e  engines, default "io_uring psync"      -c  columns, default "none floor default events pin"
#   -a  adds the column `all` (--all-events: every record every hook can make)
#   -f  adds the column `nofb` (see above)          -i  adds the column `noinv` (see above)
#   -B  adds the column `base` (see above)          -k  bpf_stats runs per column (default 1)
#   -s  more bpf_stats columns (events, pin, all, nofb, bevents ...; default: floor default)
#   -F  fixed-rate rounds at PCT% of none's IOPS (see above; needs -n 1 or more)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$src/build runtime=5 rounds=5 engines="io_uring psync" stats=1 replay=1 base= kstats=1 xstats=
fixed=
columns="none floor default events pin"
while getopts "b:r:n:e:c:SRafihB:k:s:F:" o; do
    case $o in
        b) build=$OPTARG ;; r) runtime=$OPTARG ;; n) rounds=$OPTARG ;; e) engines=$OPTARG ;;
        c) columns=$OPTARG ;; S) stats=0 ;; R) replay=0 ;; a) columns="$columns all" ;;
        f) columns="$columns nofb" ;;
        i) columns="$columns noinv" ;;
        B) base=$OPTARG ;;
        k) kstats=$OPTARG ;;
        s) xstats=$OPTARG ;;
        F) fixed=$OPTARG ;;
        *) awk 'NR > 1 { if (/^set -euo/) exit; print }' "$0"; exit 1 ;;
    esac
done
bin=$build/btrfs-dio-trace
[[ -x $bin ]] || { echo "build first: $bin missing" >&2; exit 1; }
if [[ -n $base ]]; then
    [[ -x $base/btrfs-dio-trace ]] || { echo "-B: $base/btrfs-dio-trace missing" >&2; exit 1; }
    columns="$columns base"
    [[ " $columns " == *" events "* ]] && columns="$columns bevents"
fi
[[ " $columns " == *" none "* ]] || { echo "the columns must include none (ratios are to it)" >&2; exit 1; }
if [[ -n $fixed ]]; then
    [[ $fixed =~ ^[0-9]+$ && $fixed -ge 1 && $fixed -le 100 ]] || { echo "-F: a percentage 1-100, not '$fixed'" >&2; exit 1; }
    [[ $rounds -ge 1 ]] || { echo "-F needs -n 1 or more (the rate is a share of none's IOPS in those rounds)" >&2; exit 1; }
fi
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
    echo "$stats_was" >/proc/sys/kernel/bpf_stats_enabled 2>/dev/null || true
    scratch_btrfs_cleanup
}
trap cleanup EXIT
if [[ $(stat -f -c %T /sys/fs/bpf 2>/dev/null) != bpf_fs ]]; then
    mount -t bpf bpf /sys/fs/bpf || { echo "no bpffs at /sys/fs/bpf and cannot mount one" >&2; exit 2; }
    bpffs_mounted=1
fi
scratch_btrfs_setup 2G >/dev/null
f=$SCRATCH_NOCOW/bench
out=$SCRATCH_DIR
fio --name=lay --filename="$f" --size=256M --rw=write --bs=1M --direct=1 --output=/dev/null

# fio ENGINE [IOPS]: one run (IOPS: capped at that total rate); prints "IOPS IOS" (IOS =
# I/Os completed)
fio_run() {
    local depth=8 rate=()
    [[ $1 == psync || $1 == sync ]] && depth=1
    # fio's rate_iops is per job and per direction: 2 jobs, reads and writes
    [[ -n ${2:-} ]] && rate=(--rate_iops=$(( ($2 + 3) / 4 )))
    fio --name=b --filename="$f" --size=256M --rw=randrw --bs=4k --direct=1 --ioengine="$1" \
        --iodepth="$depth" --numjobs=2 --thread --group_reporting --time_based --runtime="$runtime" \
        ${rate[@]+"${rate[@]}"} --output-format=json 2>/dev/null |
        python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]
print(int(j["read"]["iops"] + j["write"]["iops"]), j["read"]["total_ios"] + j["write"]["total_ios"])'
}
# the binary start_tracer runs: $bin, or the base build's for the column base; and
# VAR=VALUE words its environment gets
tbin=$bin tracer_env=()
start_tracer() {
    # emptied here, not by the background job's redirection: that may run after
    # the wait below has read the previous run's "Ctrl-C" (fio then started
    # before the programs were attached: up to 38% of a run seen untraced)
    : >"$out/tracer.out"
    : >"$out/tracer.err"
    env ${tracer_env[@]+"${tracer_env[@]}"} "$tbin" --mount "$SCRATCH_MNT" "$@" >>"$out/tracer.out" 2>>"$out/tracer.err" &
    tracer=$!
    for _ in $(seq 100); do grep -q "Ctrl-C" "$out/tracer.err" && return; sleep 0.1; done
    echo "tracer did not start: $(cat "$out/tracer.err")" >&2; exit 2
}
stop_tracer() { kill -INT "$tracer"; wait "$tracer" || true; tracer=; }
# start_col COLUMN: the tracer of that column (tbin: this build's or the base build's).
# BDT_BENCH_TEST_ENV="COLUMN VAR=VALUE" (testing aid, tests/integration/test_bench_attach.sh):
# that column's tracer also gets VAR=VALUE, e.g. BDT_TEST_REFUSE=dio_complete:tp_btf to make one
# hook fall back to another mechanism in one column only.
start_col() {
    local col=$1 tenv=()
    tbin=$bin; [[ $col == base || $col == bevents ]] && tbin=$base/btrfs-dio-trace
    [[ $col == nofb ]] && tenv+=(BDT_FALLBACK_HOOKS=0)
    [[ $col == noinv ]] && tenv+=("BDT_TRIGGERS_OFF=$noinv_off")
    if [[ -n ${BDT_BENCH_TEST_ENV:-} && ${BDT_BENCH_TEST_ENV%% *} == "$col" ]]; then
        tenv+=("${BDT_BENCH_TEST_ENV#* }")
    fi
    tracer_env=("${tenv[@]}")
    # shellcheck disable=SC2046
    start_tracer $(tracer_args "$col")
    tracer_env=()
    attach_map "$tracer" >"$out/attach.$col.new"
}
# attach_map PID: how each hook of that tracer is attached, from the kernel: one line per hook,
# "HOOK MECH" (a program's name is MECH_HOOK, bpf/hooks.def: tb tp_btf, rt raw_tp, tp tracepoint,
# fe/fx fentry/fexit, kp/kr kprobe/kretprobe; names cut at 15 characters), for the programs whose
# fds (programs or links) the process holds.
attach_map() {
    local ids
    ids=$(for fd in /proc/"$1"/fd/*; do
        case $(readlink "$fd" 2>/dev/null) in anon_inode:bpf-prog | anon_inode:bpf_link) ;; *) continue ;; esac
        awk '/^prog_id:/{print $2}' "/proc/$1/fdinfo/${fd##*/}" 2>/dev/null
    done | sort -u | tr '\n' ' ')
    bpftool prog show -j 2>/dev/null | python3 -c '
import json, sys
ids = {int(x) for x in sys.argv[1].split()}
hooks = {}
for p in json.load(sys.stdin):
    n = p.get("name", "")
    if p.get("id") in ids and len(n) > 3 and n[2] == "_":
        hooks.setdefault(n[3:], set()).add(n[:2])
for h in sorted(hooks):
    print(h, "+".join(sorted(hooks[h])))' "$ids"
}
# attach_check LABEL COLUMN...: compares each column's last attach map (attach.COL.new, kept as
# attach.COL) with the reference's (the floor, else default, else the first other column of
# this build): a hook attached with another mechanism, or (same build, not nofb) not attached
# at all, prints a WARNING line and is kept in attach.warn for RESULT. A base build's columns are compared on the hooks both builds have.
attach_check() {
    local c label=$1
    shift
    for c in "$@"; do [[ -f $out/attach.$c.new ]] && mv "$out/attach.$c.new" "$out/attach.$c"; done
    python3 - "$out" "$label" "$@" <<'PY'
import os, sys
out, label, cols = sys.argv[1], sys.argv[2], sys.argv[3:]
def load(c):
    p = f"{out}/attach.{c}"
    if not os.path.exists(p):
        return None
    return dict(l.split() for l in open(p) if l.strip())
ref = next((c for c in ("floor", "default", *cols) if c not in ("none", "nofb", "base", "bevents")
            and load(c) is not None), None)
if ref is None:
    sys.exit(0)
r = load(ref)
for c in cols:
    m = load(c)
    if c == ref or m is None:
        continue
    other_build = c in ("base", "bevents")
    diffs = []
    for h in sorted(set(r) | set(m)):
        a, b = r.get(h), m.get(h)
        if a == b:
            continue
        if a and b:
            diffs.append(f"{h} {a}->{b}")
        elif not other_build and not (c == "nofb" and b is None):
            diffs.append(f"{h} {a or 'none'}->{b or 'none'}")
    if not m:
        diffs.append("no programs found")
    if diffs:
        msg = f"{c}: " + ", ".join(diffs)
        print(f"WARNING ({label}): attach mechanism differs from the {ref} column: {msg} "
              "(its numbers are not comparable)", flush=True)
        with open(f"{out}/attach.warn", "a") as f:
            f.write(msg + "\n")
PY
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# the machine's busy ticks: user, nice, system, irq, softirq of every CPU (not idle, iowait, steal)
busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
# the summary's record count (text sink: "records N"; older binaries: "events N")
records() {
    local n
    n=$(sed -n 's/^records  *\([0-9][0-9]*\).*/\1/p' "$out/tracer.out" | tail -n1)
    [[ -n $n ]] || n=$(sed -n 's/^events  *\([0-9][0-9]*\).*/\1/p' "$out/tracer.out" | tail -n1)
    echo "${n:-0}"
}
tracer_args() {
    case $1 in
        floor) echo --bench-floor ;;
        default) echo ;;
        events) echo --events --format json ;;
        pin) echo --pin-dir "$pin" ;;
        all) echo --all-events ;;
        nofb) echo ;;
        noinv) echo ;;
        base) echo ;;
        bevents) echo --events --format json ;;
    esac
}
hz=$(getconf CLK_TCK)
noinv_off=${BDT_BENCH_NOINV_OFF:-stall,oe_stall,csum_direct,acked_ioerr}
# run ENGINE COLUMN [RATE] -> "IOPS IOS CPU_NS RECORDS BUSY_NS": one fio run (held at RATE
# IOPS if given); the tracer's CPU time and records (0 without a tracer) and the machine's
# busy CPU time over it
run() {
    local engine=$1 col=$2 rate=${3:-} r t0=0 t1=0 b0 b1
    if [[ $col != none ]]; then
        start_col "$col"
        t0=$(cpu_ticks "$tracer")
    fi
    b0=$(busy_ticks)
    r=$(fio_run "$engine" "$rate")
    b1=$(busy_ticks)
    if [[ $col == none ]]; then
        echo "$r 0 0 $(( (b1 - b0) * 1000000000 / hz ))"; return
    fi
    t1=$(cpu_ticks "$tracer")
    stop_tracer; tbin=$bin
    [[ $col == pin ]] && { "$bin" dump --pin-dir "$pin" --release >/dev/null 2>&1 || { echo "could not release $pin" >&2; exit 2; }; }
    echo "$r $(( (t1 - t0) * 1000000000 / hz )) $(records) $(( (b1 - b0) * 1000000000 / hz ))"
}
# rounds FILE [fixed]: the interleaved rounds; per round and engine one run per column, in
# an order rotated from round to round (fixed: each held at the engine's rate), each
# appended to FILE (scripts/bench/overhead_report.py reads it), then the round's line
rounds() {
    local file=$1 kind=${2:-} r engine n i col rt=
    : >"$file"
    for r in $(seq "$rounds"); do
        for engine in "${engs[@]}"; do
            [[ $kind == fixed ]] && rt=${rate[$engine]}
            n=${#cols[@]}
            for i in $(seq 0 $((n - 1))); do
                col=${cols[$(( (i + r - 1) % n ))]}
                run "$engine" "$col" "$rt" >"$out/run"   # not in a subshell: cleanup must see $tracer
                echo "$r $engine $col $(cat "$out/run") ${rt:-0}" >>"$file"
            done
            python3 "$here/overhead_report.py" round "$file" "$r" "$engine" "${cols[@]}"
            attach_check "${kind:+$kind }round $r $engine" "${cols[@]}"
        done
    done
}

read -r -a cols <<<"$columns"
read -r -a engs <<<"$engines"
echo "kernel $(uname -r), $(nproc) CPUs; fio randrw 4k direct=1 2 threads, ${runtime}s per run, $rounds rounds;" \
     "columns: ${cols[*]}; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
results=$out/results
rounds "$results"
echo "load average after the rounds: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$here/overhead_report.py" summary "$results" "${cols[@]}"

if [[ -n $fixed ]]; then
    declare -A rate
    for engine in "${engs[@]}"; do
        rate[$engine]=$(python3 "$here/overhead_report.py" rate "$results" "$engine" "$fixed")
    done
    echo "fixed-rate rounds at $fixed% of none's median IOPS:" \
         "$(for e in "${engs[@]}"; do printf '%s %s IOPS ' "$e" "${rate[$e]}"; done)"
    rounds "$out/fixed" fixed
    python3 "$here/overhead_report.py" summary "$out/fixed" "${cols[@]}"
fi

# names of the tracer's programs (skeleton), as the kernel keeps them (15 characters)
prog_names() {
    sed -n 's/.*struct bpf_program \*\([a-z0-9_]*\);.*/\1/p' "$build/bpf/bdt.skel.h" \
        ${base:+"$base/bpf/bdt.skel.h"} | cut -c1-15 | sort -u
}
# "name run_time_ns run_cnt" of each of the tracer's programs, now
prog_stats() {
    bpftool prog show -j 2>/dev/null | python3 -c '
import json, sys
names = {l.strip() for l in open(sys.argv[1])}
for p in json.load(sys.stdin):
    if p.get("name") in names and p.get("run_cnt", 0):
        print(p["name"], p.get("run_time_ns", 0), p.get("run_cnt", 0))' <(prog_names)
}
if [[ $stats == 1 ]]; then
    echo 1 >/proc/sys/kernel/bpf_stats_enabled || { echo "cannot enable bpf_stats" >&2; exit 2; }
    scols=(floor default)
    [[ " $columns " == *" noinv "* ]] && scols+=(noinv)
    [[ -n $base ]] && scols+=(base)
    for c in $xstats; do [[ " ${scols[*]} " == *" $c "* ]] || scols+=("$c"); done
    : >"$out/stats"
    for k in $(seq "$kstats"); do
    for engine in "${engs[@]}"; do
        n=${#scols[@]}
        for i in $(seq 0 $((n - 1))); do
            col=${scols[$(( (i + k - 1) % n ))]}
            start_col "$col"
            read -r iops ios < <(fio_run "$engine")
            prog_stats >"$out/progs"
            if [[ $col == default && $k == 1 ]]; then
                hwm=$(awk '/VmHWM/{print $2}' "/proc/$tracer/status")
                memlock=$(for fd in /proc/$tracer/fd/*; do
                    [[ $(readlink "$fd") == anon_inode:bpf-map ]] || continue
                    awk '/^map_id/{id=$2} /^memlock/{m=$2} END{print id, m}' "/proc/$tracer/fdinfo/${fd##*/}"
                done | sort -u | awk '{s += $2} END{print s}')
            fi
            stop_tracer; tbin=$bin
            [[ $col == pin ]] && { "$bin" dump --pin-dir "$pin" --release >/dev/null 2>&1 || { echo "could not release $pin" >&2; exit 2; }; }
            attach_check "bpf_stats $k $engine" "$col"
            python3 - "$out/progs" "$engine" "$col" "$ios" "$out/stats" <<'PY'
import sys
progs, eng, col, ios, acc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
rows = [l.split() for l in open(progs) if l.strip()]
total = sum(int(t) for _, t, _ in rows)
per = ", ".join(f"{n} {int(t) / int(c):.0f} ns x {int(c) / ios:.2f}/IO" for n, t, c in sorted(rows, key=lambda r: -int(r[1])))
print(f"bpf_stats {eng} {col}: {total / ios:.0f} ns of BPF time per I/O ({ios} I/Os; {per})")
with open(acc, "a") as f:
    f.write(f"{eng} {col} {total / ios:.1f}\n")
PY
            if [[ $col == default && $k == 1 ]]; then
                echo "memory $engine default: tracer VmHWM $((hwm / 1024)) MiB, BPF maps locked $(python3 -c "print(f'{$memlock / 1048576:.1f}')") MiB"
            fi
        done
    done
    done
    if [[ $kstats -gt 1 ]]; then
        python3 - "$out/stats" <<'PY'
import statistics, sys
by = {}
for l in open(sys.argv[1]):
    e, c, v = l.split()
    by.setdefault(e, {}).setdefault(c, []).append(float(v))
for e, cols in by.items():
    print(f"bpf_stats {e} median ns of BPF time per I/O (min-max): " +
          ", ".join(f"{c} {statistics.median(v):.0f} ({min(v):.0f}-{max(v):.0f})" for c, v in cols.items()))
PY
    fi
    echo "$stats_was" >/proc/sys/kernel/bpf_stats_enabled
fi

if [[ $replay == 1 ]]; then
    rec=$out/bench.rec
    start_tracer --record "$rec"
    fio_run io_uring >/dev/null
    stop_tracer
    # three replays on CPU 0: wall time (the machine is shared: it includes waiting
    # for the CPU) and the replay's own CPU time (user + system, from wait4)
    python3 - "$bin" "$rec" "$out/replay.out" <<'PY'
import os, re, subprocess, sys, time
binary, rec, rout = sys.argv[1], sys.argv[2], sys.argv[3]
for i in range(3):
    with open(rout, "w") as o:
        t0 = time.monotonic()
        p = subprocess.Popen(["taskset", "-c", "0", binary, "replay", rec], stdout=o)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
    m = re.search(r"^events\s+(\d+)", open(rout).read(), re.M)
    n = int(m.group(1)) if m else 0
    cpu = ru.ru_utime + ru.ru_stime
    print(f"replay {i + 1}: {n} events ({os.path.getsize(rec) / 1e6:.0f} MB record) on CPU 0: "
          f"{wall:.2f} s wall, {n / wall / 1e6:.2f} M events/s; {cpu:.2f} s CPU, "
          f"{n / cpu / 1e6 if cpu else 0:.2f} M events/s of CPU time")
PY
fi
