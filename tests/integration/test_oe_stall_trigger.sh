#!/usr/bin/env bash
# The oe_stall trigger of the lazy emission (bpf/ordered.bpf.h oe_stall_scan): a DIRECT ordered
# extent still open past the stall threshold while a later one on the same filesystem is removed
# is emitted with that later one, so dio-stuck judges it in findings-only mode.
# The stuck extent: one 64 KiB O_DIRECT write from a block-I/O cgroup whose writes to the scratch
# loop device may move 8 KiB/s (as in test_stall_trigger.sh), about 8 s in flight; meanwhile
# 4 KiB O_DIRECT writes to another file of the same filesystem, from outside the cgroup, complete
# (their ordered extents are removed). --stall-threshold 1.
# A healthy kernel holds the write's request as long as its ordered extent, so the request half
# (trigger stall) finds the same write; it is turned off (BDT_TRIGGERS_OFF=stall) to show what
# oe_stall finds alone. Expected:
#   --events                        one dio-stuck finding on the throttled file, naming the writer
#   findings only, stall off        the same finding (found through oe_stall)
#   findings only, stall and oe_stall off   no dio-stuck finding (what oe_stall adds)
#   findings only, a slow device (the 4 KiB writes from the throttled cgroup too: they complete
#   after the stuck one)            no dio-stuck finding
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/patterns.sh"
itest_init oe-stall
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
SCRATCH_LOOP_SEEN=1

pt_throttled_cgroup oestall 8192

SLOW=$SCRATCH_NOCOW/slow FAST=$SCRATCH_NOCOW/fast
dd if=/dev/urandom of="$SLOW" bs=64k count=1 oflag=direct status=none || die "setup write failed"
dd if=/dev/urandom of="$FAST" bs=64k count=4 oflag=direct status=none || die "setup write failed"
sync

# run OUT N_FAST FAST_IN_CGROUP(0|1) [ENV=VALUE...] -- [TRACER ARGS...]: the stuck write and the
# writes that complete meanwhile, traced
WRITER=
run() {
    local out=$1 nfast=$2 incg=$3 envs=() i e
    shift 3
    while [[ $# -gt 0 && $1 != -- ]]; do envs+=("$1"); shift; done
    shift
    for e in "${envs[@]}"; do export "${e?}"; done
    start_tracer "$out" --format json --mount "$SCRATCH_MNT" --stall-threshold 1 "$@"
    for e in "${envs[@]}"; do unset "${e%%=*}"; done
    sh -c 'echo $$ >"$1/cgroup.procs" && exec dd if=/dev/zero of="$2" bs=64k count=1 oflag=direct conv=notrunc status=none' \
        _ "$CG" "$SLOW" &
    WRITER=$!
    sleep 1.5
    for i in $(seq 1 "$nfast"); do
        if [[ $incg == 1 ]]; then
            sh -c 'echo $$ >"$1/cgroup.procs" && exec dd if=/dev/zero of="$2" bs=4k count=1 seek="$3" oflag=direct conv=notrunc status=none' \
                _ "$CG" "$FAST" "$i" || fail "O_DIRECT write failed"
        else
            dd if=/dev/zero of="$FAST" bs=4k count=1 seek="$i" oflag=direct conv=notrunc status=none || fail "O_DIRECT write failed"
        fi
        sleep 0.2
    done
    wait "$WRITER" || fail "the throttled O_DIRECT write failed"
    sleep 1.2   # a judging tick past the last completion
    stop_tracer || fail "tracer exited non-zero: $(tail -n 3 "$out.err")"
    echo "$WRITER" >"$out.writer"
}

EAGER=$ITEST_TMP/events.jsonl OE=$ITEST_TMP/oe.jsonl NONE=$ITEST_TMP/none.jsonl SLOWDEV=$ITEST_TMP/slowdev.jsonl
run "$EAGER" 15 0 -- --events
run "$OE" 15 0 BDT_TRIGGERS_OFF=stall --
run "$NONE" 15 0 BDT_TRIGGERS_OFF=stall,oe_stall --
run "$SLOWDEV" 3 1 --

pt_expect "dio-stuck on the throttled write ($SLOW) with --events, and the same findings only through oe_stall alone; none without it; none on a slow device"
KIND=$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l) if l.startswith("{") else {}
    if o.get("detector") == "dio-stuck": print(o.get("kind")); break' "$EAGER")
echo "--events: dio-stuck ${KIND:-none}"
for out in "$EAGER" "$OE" "$NONE" "$SLOWDEV"; do
    want=1
    [[ $out == "$NONE" || $out == "$SLOWDEV" ]] && want=0
    pt_check "$out" "$SLOW" "$(cat "$out.writer")" "$want" "${KIND:-none}" <<'PY'
s = st(ARGS[0])
writer, want, kind = int(ARGS[1]), int(ARGS[2]), ARGS[3]
stuck = of("dio-stuck")
mine = [f for f in stuck if f.get("ino") == s.st_ino and f.get("dev") == s.st_dev]
c.check(len(mine) == want, f"{OUT}: {want} dio-stuck finding on the throttled file (got {len(mine)} of {len(stuck)})")
c.check(all(f.get("pid") == writer for f in mine), f"{OUT}: it names the writer (pid {writer}: {[f.get('pid') for f in mine]})")
c.check(all(f.get("kind") == kind for f in mine), f"{OUT}: of the kind --events gives, {kind} ({[f.get('kind') for f in mine]})")
expect_only({"dio-stuck"} if want else set())
check_summary()
finish()
PY
done
itest_finish
