#!/usr/bin/env bash
# Forced losses: the smallest ring buffer (1 MiB), every record made
# (--all-events), the tracer stopped (SIGSTOP) while a flood of O_DIRECT writes
# pinned to one CPU fills the ring, then a flood with the reader running.
# Expected: records are lost, the losses are reported per CPU (lost lines and
# the summary agree), and the kernel's count of records made equals the records
# the tracer read plus the records lost, in total and never less than the
# losses on any CPU; the flood's CPU is the one that lost.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init fault_lost
command -v fio >/dev/null || skip "fio not installed (scripts/install-deps installs it)"
command -v taskset >/dev/null || skip "taskset not installed (util-linux)"
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"

NCPU=$(nproc)
CPU=$((NCPU > 1 ? 1 : 0))
F=$SCRATCH_NOCOW/flood
touch "$F" && dd if=/dev/zero of="$F" bs=1M count=64 status=none && sync

OUT=$ITEST_TMP/out.jsonl
start_tracer "$OUT" --format json --all-events --ringbuf-size 1 --mount "$SCRATCH_MNT"

# 1. Nobody reads: 20000 direct writes make about 80000 records (dio_begin,
# dio_end, ordered-extent add/remove), a 1 MiB ring holds about 5400.
kill -STOP "$TRACER_PID"
taskset -c "$CPU" dd if=/dev/zero of="$F" bs=4k count=20000 oflag=direct conv=notrunc status=none ||
    fail "flood dd failed"
kill -CONT "$TRACER_PID"
sleep 1
# 2. A flood while the tracer reads (losses or not, the counts must add up).
fio --name=flood --filename="$F" --rw=randwrite --bs=4k --size=64M --direct=1 --ioengine=psync \
    --numjobs=2 --time_based --runtime=3 --group_reporting --output=/dev/null || fail "fio flood failed"
stop_tracer || fail "tracer exited non-zero"

ITEST_DIR=$(dirname "$0") python3 - "$OUT" "$CPU" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, os, sys
sys.path.insert(0, os.environ["ITEST_DIR"])
from bdtcheck import Checker
out, cpu = sys.argv[1], int(sys.argv[2])
c = Checker()
lost_lines, summary = {}, None
for line in open(out):
    o = json.loads(line)
    if o.get("type") == "lost":
        lost_lines[o["cpu"]] = lost_lines.get(o["cpu"], 0) + o["count"]
    elif o.get("type") == "summary":
        summary = o
if not c.check(summary is not None, "a summary line"):
    c.done()
lost, per_cpu = summary["lost"], summary["lost_per_cpu"]
made, read, made_cpu = summary.get("records_made"), summary.get("records_read"), summary.get("made_per_cpu")
print(f"    made {made} (per CPU {made_cpu}), read {read}, lost {lost} (per CPU {per_cpu}), "
      f"lost lines {lost_lines}, records {summary.get('records')}, events counted in the kernel {summary['events']}")
c.check(lost > 0, f"records were lost with a stopped reader and a 1 MiB ring ({lost})")
c.check(sum(per_cpu) == lost, "the per-CPU losses add up to the total")
c.check({k: v for k, v in enumerate(per_cpu) if v} == lost_lines,
        "every loss was reported as it happened, per CPU (lost lines = summary per CPU)")
c.check(cpu < len(per_cpu) and per_cpu[cpu] > 0, f"the flood's CPU {cpu} lost records")
if c.check(made is not None and read is not None and made_cpu is not None, "the summary counts records made and read"):
    c.check(made == read + lost, f"records made in the kernel = read + lost ({made} = {read} + {lost})")
    c.check(sum(made_cpu) == made and len(made_cpu) == len(per_cpu), "made per CPU adds up to the total")
    c.check(all(m >= l for m, l in zip(made_cpu, per_cpu)), "no CPU lost more records than it made")
    unknown = "unknown records" in summary.get("notes", {})
    c.check(unknown or read == summary.get("records"),
            f"every record read reached the detectors (records {summary.get('records')})")
    c.check(made >= 2 * 20000, f"at least a begin and an end per write of the stopped flood ({made})")
c.done()
PY
itest_finish
