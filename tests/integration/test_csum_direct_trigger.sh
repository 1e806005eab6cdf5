#!/usr/bin/env bash
# The csum_direct trigger of the lazy emission (bpf/direct_writes.bpf.h): the kernel remembers the
# last acknowledged direct writes of a checksummed file that made no record, and emits them when a
# checksum failure hits the file, so dio-csum-after-direct-write judges in findings-only mode (no
# --events) as with every record made.
# Per run, on fresh files of a scratch btrfs (data checksums on):
#   direct     128 KiB written by one dd with O_DIRECT from its private buffer (no other trigger)
#   rewritten  the same, then rewritten through the page cache (the near-miss: its last write is
#              buffered)
# then, 2 s later (past the 1 s of requests a flush reaches back), block 2 of each is zeroed on
# the device under btrfs and the files are read back with O_DIRECT: checksum failures.
# Expected, findings only and with --events: one dio-csum-after-direct-write on `direct` naming
# the dd that wrote it and the failing block [8192, 12288), none on `rewritten`, nothing else but
# dio-unstable-pages' csum-error hazards. With the trigger off (BDT_TRIGGERS_OFF=csum_direct),
# findings only, the findings differ: the clean write is never emitted (no finding on `direct`),
# or where the write is emitted for another reason (6.1's function hooks hold more records per
# request than a request keeps) the buffered rewrite is not (a false finding on `rewritten`).
# Needs a kernel whose O_DIRECT writes to checksummed files go direct (6.1; 6.6+ stable and 6.15
# fall back to buffered writes) and the checksum hook (function hooks): in the VM tier
# (tests/vm/test_vm_invariants.sh); skips elsewhere.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/patterns.sh"
command -v btrfs-map-logical >/dev/null || skip "btrfs-map-logical not installed (btrfs-progs)"
command -v filefrag >/dev/null || skip "filefrag not installed (e2fsprogs)"
itest_init csum-direct
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
SCRATCH_LOOP_SEEN=1

# zero FILE's 4 KiB block B on the device (under btrfs: its checksum no longer matches)
corrupt() {
    local file=$1 b=$2 ext phys
    ext=$(filefrag -v "$file" | sed -n 's/^ *0: *0\.\. *[0-9]*: *\([0-9]*\)\.\..*/\1/p')
    [[ -n $ext ]] || die "no extent for $file: $(filefrag -v "$file")"
    phys=$(btrfs-map-logical -l $(((ext + b) * 4096)) "$SCRATCH_LOOP" 2>/dev/null |
        sed -n 's/.* physical \([0-9]*\) device.*/\1/p' | head -n1)
    [[ -n $phys ]] || die "btrfs-map-logical found no physical address for $file block $b"
    dd if=/dev/zero of="$SCRATCH_LOOP" bs=4096 count=1 seek=$((phys / 4096)) oflag=direct \
        conv=notrunc status=none || die "cannot write $SCRATCH_LOOP"
}

# run TAG OUT [ENV=VALUE...] -- [TRACER ARGS...]
run() {
    local tag=$1 out=$2 envs=() d r w
    shift 2
    while [[ $# -gt 0 && $1 != -- ]]; do envs+=("$1"); shift; done
    shift
    d=$SCRATCH_MNT/direct.$tag r=$SCRATCH_MNT/rewritten.$tag
    for e in "${envs[@]}"; do export "${e?}"; done
    start_tracer "$out" --format json --mount "$SCRATCH_MNT" "$@"
    for e in "${envs[@]}"; do unset "${e%%=*}"; done
    dd if=/dev/urandom of="$d" bs=64k count=2 oflag=direct status=none &
    w=$!
    wait "$w" || fail "O_DIRECT write of $d failed"
    dd if=/dev/urandom of="$r" bs=64k count=2 oflag=direct status=none || fail "O_DIRECT write of $r failed"
    dd if=/dev/urandom of="$r" bs=64k count=2 conv=notrunc status=none || fail "buffered rewrite of $r failed"
    sync
    sleep 2
    corrupt "$d" 2
    corrupt "$r" 2
    echo 3 >/proc/sys/vm/drop_caches
    dd if="$d" of=/dev/null bs=64k iflag=direct conv=noerror status=none 2>/dev/null
    dd if="$r" of=/dev/null bs=64k iflag=direct conv=noerror status=none 2>/dev/null
    sleep 1.2
    stop_tracer || fail "tracer ($tag) exited non-zero: $(tail -n 3 "$out.err")"
    echo "$w $d $r" >"$out.info"
}

EAGER=$ITEST_TMP/events.jsonl LAZY=$ITEST_TMP/lazy.jsonl OFF=$ITEST_TMP/off.jsonl
run events "$EAGER" -- --events
# Where writes to checksummed files fall back to buffered I/O nothing reaches iomap_dio_rw_begin
read -r _ D _ <"$EAGER.info"
python3 - "$EAGER" "$(stat -c %i "$D")" <<'PY' || skip "O_DIRECT writes to checksummed files do not go direct on this kernel ($(uname -r)), or no csum_error: nothing to remember"
import json, sys
ino = int(sys.argv[2])
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
w = [e for e in ev if e.get("type") == "dio_begin" and e.get("ino") == ino and e.get("write")]
c = [e for e in ev if e.get("type") == "csum_error" and e.get("ino") == ino]
print(f"events run: {len(w)} direct write(s), {len(c)} csum_error(s) on ino {ino}")
sys.exit(0 if w and c else 1)
PY
run lazy "$LAZY" --
run off "$OFF" BDT_TRIGGERS_OFF=csum_direct --

pt_expect "dio-csum-after-direct-write on direct.* at [8192, 12288) naming its writer, findings only and with --events; none on rewritten.*; with the trigger off the findings-only run is not that"
for out in "$EAGER" "$LAZY" "$OFF"; do
    read -r W D R <"$out.info"
    pt_check "$out" "$D" "$R" "$W" "$([[ $out == "$OFF" ]] && echo off)" <<'PY'
d, r = st(ARGS[0]), st(ARGS[1])
writer, off = int(ARGS[2]), len(ARGS) > 3 and ARGS[3] == "off"
cs = of("dio-csum-after-direct-write", kind="csum-after-direct-write")
for f in cs:  # what the finding rests on: the write's records and the checksum failure
    print(f"    evidence of ino {f.get('ino')}: " + ", ".join(
        f"{e.get('type')}@{e.get('ts_ns')}" for e in f.get("evidence", [])))
mine = [f for f in cs if f.get("ino") == d.st_ino and f.get("dev") == d.st_dev]
near = [f for f in cs if f.get("ino") == r.st_ino]
right = (len(mine) == 1 and mine[0].get("pid") == writer and mine[0].get("range") == [8192, 12288]
         and not near)
if off:
    # without csum_direct the clean direct write is not emitted (no finding on `direct`), or,
    # where it is emitted for another reason, the buffered rewrite is not (a finding on `rewritten`)
    c.check(not right, f"{OUT}: with the trigger off, not the --events findings ({len(mine)} on direct, {len(near)} on rewritten)")
else:
    c.check(len(mine) == 1, f"{OUT}: one dio-csum-after-direct-write on the direct file (got {len(mine)} of {len(cs)})")
    c.check(all(f.get("pid") == writer for f in mine), f"{OUT}: it names the writer (pid {writer}: {[f.get('pid') for f in mine]})")
    c.check(all(f.get("range") == [8192, 12288] for f in mine), f"{OUT}: at the zeroed block [8192, 12288) ({[f.get('range') for f in mine]})")
    c.check(not near, f"{OUT}: none on the file rewritten through the page cache ({len(near)})")
expect_only({("dio-csum-after-direct-write", "csum-after-direct-write"), "dio-unstable-pages"})
check_summary()
finish()
PY
done
itest_finish
