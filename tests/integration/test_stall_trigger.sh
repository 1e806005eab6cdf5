#!/usr/bin/env bash
# The stall trigger of the lazy emission (docs/performance.md "Lazy emission", bpf/lazy.bpf.h
# stall_scan): a DIO request still in flight past the stall threshold while a later request on the
# same filesystem completes is emitted, so dio-stuck reports it in findings-only mode (no
# --events: the kernel holds clean requests) exactly as with every event made.
# The stuck request: one 64 KiB O_DIRECT write from a block-I/O cgroup whose writes to the scratch
# loop device may move 8 KiB/s (blk-throttle: cgroup v1 blkio.throttle.write_bps_device or cgroup
# v2 io.max wbps), about 8 s in flight. Meanwhile O_DIRECT reads of another file on the same
# filesystem, from outside the cgroup, complete (4 every ~0.2 s from 0.3 s on). --stall-threshold 2.
# Expected, findings only and with --events: one dio-stuck stuck-request finding naming the
# written file and the writer's pid, and no other finding; it counts more than one later read
# completed (both modes: findings only the kernel counts them, bpf/lazy.bpf.h stall_scan; without
# that count it said 1, the read that revealed the stall; ~16 in a quiet run, fewer under load).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/patterns.sh"
itest_init stall-trigger
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
SCRATCH_LOOP_SEEN=1

pt_throttled_cgroup stall 8192

SLOW=$SCRATCH_NOCOW/slow FAST=$SCRATCH_NOCOW/fast
dd if=/dev/urandom of="$SLOW" bs=64k count=1 oflag=direct status=none || die "setup write failed"
dd if=/dev/urandom of="$FAST" bs=64k count=4 oflag=direct status=none || die "setup write failed"
sync

# run OUT ARGS...: the stuck write and the reads that complete meanwhile, traced
WRITER=
run() {
    local out=$1 t0 t1
    shift
    start_tracer "$out" --format json --mount "$SCRATCH_MNT" --stall-threshold 2 "$@"
    t0=$(date +%s.%N)
    sh -c 'echo $$ >"$1/cgroup.procs" && exec dd if=/dev/zero of="$2" bs=64k count=1 oflag=direct conv=notrunc status=none' \
        _ "$CG" "$SLOW" &
    WRITER=$!
    sleep 0.3
    for _ in $(seq 1 25); do
        dd if="$FAST" of=/dev/null bs=4k count=4 iflag=direct status=none || fail "O_DIRECT read failed"
        sleep 0.2
    done
    wait "$WRITER" || fail "the throttled O_DIRECT write failed"
    t1=$(date +%s.%N)
    echo "$* run: the throttled write and the reads took $(python3 -c "print(f'{$t1 - $t0:.1f}')") s"
    sleep 1.2   # a judging tick past the last completion
    stop_tracer || fail "tracer ($*) exited non-zero: $(tail -n 3 "$out.err")"
    echo "$WRITER" >"$out.writer"
}

pt_expect "dio-stuck stuck-request for the throttled write ($SLOW), findings only and with --events"
LAZY=$ITEST_TMP/lazy.jsonl EAGER=$ITEST_TMP/events.jsonl
run "$LAZY"
run "$EAGER" --events

for out in "$LAZY" "$EAGER"; do
    pt_check "$out" "$SLOW" "$(cat "$out.writer")" <<'PY'
s = st(ARGS[0])
writer = int(ARGS[1])
stuck = of("dio-stuck", kind="stuck-request")
mine = [f for f in stuck if f.get("ino") == s.st_ino and f.get("dev") == s.st_dev]
c.check(len(mine) == 1, f"{OUT}: one dio-stuck stuck-request on the throttled file (got {len(mine)} of {len(stuck)})")
c.check(all(f.get("pid") == writer for f in mine), f"{OUT}: it names the writer (pid {writer}: {[f.get('pid') for f in mine]})")
import re
counts = [int(m.group(1)) for f in mine for m in [re.search(r"while at least (\d+) DIO request", f.get("message", ""))] if m]
c.check(len(counts) == len(mine) and all(n >= 2 for n in counts),
        f"{OUT}: it counts the later reads that completed meanwhile (more than the one that revealed it: {counts})")
expect_only({("dio-stuck", "stuck-request")})
check_summary()
finish()
PY
done
itest_finish
