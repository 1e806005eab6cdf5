#!/usr/bin/env bash
# The acked_ioerr trigger of the lazy emission (bpf/ordered.bpf.h oe_call_end, oe_emit_call): a
# DIRECT ordered extent that fails after its write returned with bytes acknowledged emits that
# write (begin, its ordered extents' oe_add, end), so dio-acked-unbacked judges it in
# findings-only mode however long ago the write returned.
# A healthy kernel never does this (the rule holds); the failure is simulated where the tracer
# reads it: BDT_TEST_OE_IOERR=INO (bpf/config.bpf.h) reports the removal of every DIRECT ordered
# extent of the inodes numbered INO and above with IOERR, as btrfs_finish_ordered_io does when it
# fails in its worker after the write returned. Everything else is the real path: the kernel's
# writes, their ordered extents, the programs' tables and triggers, the detector. The
# recent-request window that the oe_ioerr trigger reaches back into is 0 (BDT_TEST_RECENT_MS=0):
# a write that returned before its extent failed is then held by nothing but acked_ioerr.
# Which writes those are is the kernel's timing (on 6.18 a synchronous write mostly returns after
# its extent was removed, an io_uring write often before), so each findings-only run has an
# --events twin (BDT_ITEST_TWIN) that says, per write, which came first. The first failure on a
# file makes it hot (every later record of it is emitted), so each file gets one write.
# Workload (each run): 60 files of 64 KiB created before the tracer starts, each written once by
# one 64 KiB O_DIRECT io_uring write (fio, one at a time); before them, 8 4 KiB O_DIRECT writes to
# a file whose inode is below INO (benign: its extents complete).
# Expected (findings only, BDT_TEST_RECENT_MS=0):
#   acked_ioerr on     one acked-unbacked finding per file, as its --events twin, and at least
#                      one of those writes returned before its extent failed
#   acked_ioerr off    a finding for each file whose write was in flight at the failure; of those
#                      that returned before it (on 6.18 io_uring writes return 3-30 us before)
#                      at least one without (not all: a write that returned microseconds before
#                      may still be held while its completion's program runs on another CPU)
#   never a finding on the benign file.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/patterns.sh"
itest_init acked-ioerr
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
SCRATCH_LOOP_SEEN=1

OK=$SCRATCH_NOCOW/other
dd if=/dev/urandom of="$OK" bs=64k count=1 oflag=direct status=none || die "setup write failed"
for i in $(seq 0 59); do
    dd if=/dev/urandom of="$SCRATCH_NOCOW/f.$i" bs=64k count=1 oflag=direct status=none || die "setup write failed"
done
sync
export BDT_TEST_OE_IOERR=$(stat -c %i "$SCRATCH_NOCOW/f.0")   # every tracer below
(( $(stat -c %i "$OK") < BDT_TEST_OE_IOERR )) || die "the benign file's inode is not below the failing ones"

# run OUT [ENV=VALUE...]: the workload under a findings-only tracer and its --events twin
# (OUT.events-twin)
run() {
    local out=$1 envs=() e i
    shift
    envs=("$@")
    for e in "${envs[@]}"; do export "${e?}"; done
    BDT_ITEST_TWIN=1 start_tracer "$out" --format json --mount "$SCRATCH_MNT"
    for e in "${envs[@]}"; do unset "${e%%=*}"; done
    for i in $(seq 0 7); do
        dd if=/dev/zero of="$OK" bs=4k count=1 seek="$i" oflag=direct conv=notrunc status=none ||
            fail "O_DIRECT write to $OK failed"
    done
    fio --name=acked --directory="$SCRATCH_NOCOW" --filename_format='f.$filenum' --nrfiles=60 \
        --filesize=64k --size=3840k --bs=64k --rw=write --file_service_type=sequential \
        --ioengine=io_uring --iodepth=1 --direct=1 >"$out.fio" 2>&1 ||
        fail "fio O_DIRECT writes failed: $(tail -n 3 "$out.fio")"
    sync
    sleep 6.5   # past the detector's settle time (5 s) and a judging tick
    stop_tracer || fail "tracer exited non-zero: $(tail -n 3 "$out.err")"
}

ON=$ITEST_TMP/on.jsonl OFF=$ITEST_TMP/off.jsonl
run "$ON" BDT_TEST_RECENT_MS=0
run "$OFF" BDT_TEST_RECENT_MS=0 BDT_TRIGGERS_OFF=acked_ioerr

pt_expect "dio-acked-unbacked on each of the 60 files (its write's ordered extent reported failed at removal) findings only as with --events; with acked_ioerr off not for the writes that returned before the failure; none on $OK"
for out in "$ON" "$OFF"; do
    trig=1
    [[ $out == "$OFF" ]] && trig=0
    pt_check "$out" "$SCRATCH_NOCOW" "$OK" "$trig" <<'PY'
d, ok, trig = ARGS[0], st(ARGS[1]), int(ARGS[2])
inos = {st(f"{d}/f.{i}").st_ino for i in range(60)}
twin_ev, twin_f, _ = load(OUT + ".events-twin")
def found(fs):
    return {f.get("ino") for f in fs if f.get("detector") == "dio-acked-unbacked"
            and f.get("ino") in inos and f.get("range") == [0, 65536]}
# per file, from the --events twin: its write's return, its extent's failed removal
ended, failed = {}, {}
for e in twin_ev:
    i, t = e.get("ino"), e.get("type")
    if i not in inos:
        continue
    if t == "dio_end" and e.get("ret", 0) > 0:
        ended.setdefault(i, e["ts_ns"])
    elif t == "oe_remove" and "IOERR" in e.get("flags", []):
        failed.setdefault(i, e["ts_ns"])
first = {i for i in inos if i in ended and i in failed and ended[i] < failed[i]}
held = {i for i in inos if i in ended and i in failed and failed[i] < ended[i]}
print(f"    --events twin: {len(inos)} files; returned before the failure: {len(first)}, "
      f"in flight at it: {len(held)}; "
      f"ns from return to failure: {sorted(failed[i] - ended[i] for i in inos if i in ended and i in failed)}")
c.check(found(twin_f) == inos, f"{OUT}: the --events twin reports each of the 60 files ({len(found(twin_f))})")
got = found(FINDINGS)
if trig:
    c.check(got == inos, f"{OUT}: findings only, each file reported as by the twin ({len(got)} of 60)")
    c.check(len(first) > 0, f"{OUT}: among them writes that returned before their extent failed ({len(first)})")
else:
    c.check(held <= got, f"{OUT}: acked_ioerr off: each write in flight at the failure reported ({len(held & got)} of {len(held)})")
    c.check(len(first - got) > 0, f"{OUT}: acked_ioerr off: writes that returned before their extent failed go unreported ({len(first - got)} of {len(first)}): what acked_ioerr covers")
c.check(not [f for f in FINDINGS + twin_f if f.get("ino") == ok.st_ino], f"{OUT}: no finding on the benign file")
expect_only({"dio-acked-unbacked"})
check_summary()
finish()
PY
done
itest_finish
