#!/usr/bin/env bash
# A filesystem unmounted under the tracer. Two scratch btrfs filesystems, the
# tracer on both; A is unmounted mid-trace. Expected: no crash, one stderr
# line naming A (UUID, device, mount point) and saying the trace goes on,
# writes to B after the unmount still traced, a clean exit. With --mount on A:
# the line says this trace will see nothing more; B's unmount is not reported.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init fault_umount
scratch_btrfs_setup 512M || die "scratch btrfs setup failed"
A_MNT=$SCRATCH_MNT A_LOOP=$SCRATCH_LOOP A_FSID=$SCRATCH_FSID

# A second filesystem, B (the scratch helpers manage one).
B=$ITEST_TMP/b
mkdir -p "$B/mnt" && truncate -s 512M "$B/img" && mkfs.btrfs -q -f "$B/img" >/dev/null || die "mkfs of B failed"
B_LOOP=$(losetup --find --show "$B/img") || die "losetup of B failed"
ITEST_CLEANUPS+=("umount '$B/mnt' 2>/dev/null; losetup -d '$B_LOOP'")
mount -t btrfs "$B_LOOP" "$B/mnt" || die "mount of B failed"
mkdir "$B/mnt/nocow" && chattr +C "$B/mnt/nocow"
B_FSID=$(blkid -s UUID -o value "$B/img")

write() { dd if=/dev/zero of="$1" bs=64k count=4 oflag=direct conv=notrunc status=none; }
wait_line() {  # wait_line FILE REGEX: up to 5 s
    local i
    for i in $(seq 1 50); do grep -Eq "$2" "$1" && return 0; sleep 0.1; done
    return 1
}

# --- 1. no filter: A goes, B goes on
OUT=$ITEST_TMP/all.jsonl
start_tracer "$OUT" --events --format json
write "$SCRATCH_NOCOW/a" || fail "write to A failed"
write "$B/mnt/nocow/b1" || fail "write to B failed"
sleep 0.3
umount "$A_MNT" || die "umount of A failed"
if wait_line "$OUT.err" "unmounted"; then
    LINE=$(grep "unmounted" "$OUT.err")
    echo "    tracer: $LINE"
    [[ $LINE == *"$A_FSID"* && $LINE == *"$A_LOOP"* && $LINE == *"$A_MNT"* ]] &&
        pass "the line names A's UUID, device and mount point" || fail "the line does not name A: $LINE"
    [[ $LINE == *"goes on for the other filesystems"* ]] && pass "the line says the trace goes on" ||
        fail "the line does not say the trace goes on: $LINE"
else
    fail "no line about the unmount within 5 s: $(tail -n3 "$OUT.err")"
fi
[[ $(grep -c "unmounted" "$OUT.err") -eq 1 ]] || fail "more than one unmount line: $(grep unmounted "$OUT.err")"
write "$B/mnt/nocow/b2" || fail "write to B after the unmount failed"
sleep 0.3
kill -0 "$TRACER_PID" 2>/dev/null && pass "the tracer is still running" || fail "the tracer died"
stop_tracer && pass "clean exit (0)" || fail "tracer exited non-zero"
B2_INO=$(stat -c %i "$B/mnt/nocow/b2")
ITEST_DIR=$(dirname "$0") python3 - "$OUT" "$A_FSID" "$B_FSID" "$B2_INO" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import os, sys
sys.path.insert(0, os.environ["ITEST_DIR"])
from bdtcheck import load, Checker
out, a, b, b2 = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ev, _, others = load(out)
c = Checker()
begins = [e for e in ev if e["type"] == "dio_begin"]
c.check(len([e for e in begins if e["fs"] == a]) == 4, "A's 4 writes traced before the unmount")
c.check(len([e for e in begins if e["fs"] == b and e["ino"] == b2]) == 4, "B's 4 writes after the unmount traced")
c.check(any(o.get("type") == "summary" for o in others), "a summary at the end")
c.done()
PY

# --- 2. --mount on A: A goes, the line says nothing more will be seen
mount -t btrfs "$A_LOOP" "$A_MNT" || die "remount of A failed"
OUT=$ITEST_TMP/mount.jsonl
start_tracer "$OUT" --events --format json --mount "$A_MNT"
umount "$A_MNT" || die "second umount of A failed"
if wait_line "$OUT.err" "unmounted"; then
    LINE=$(grep "unmounted" "$OUT.err")
    echo "    tracer: $LINE"
    [[ $LINE == *"--mount $A_MNT named it"*"nothing more"* ]] && pass "--mount: the line says this trace sees nothing more" ||
        fail "--mount: unexpected line: $LINE"
else
    fail "--mount: no line about the unmount within 5 s"
fi
umount "$B/mnt" || fail "umount of B failed"
sleep 0.3
# B is not traced by this run: its unmount is not worth a line.
grep -q "$B_FSID" "$OUT.err" && fail "--mount: B's unmount reported: $(grep "$B_FSID" "$OUT.err")" ||
    pass "--mount: B's unmount (not traced) not reported"
stop_tracer && pass "--mount: clean exit (0)" || fail "--mount: tracer exited non-zero"
mount -t btrfs "$A_LOOP" "$A_MNT" || die "remount of A for cleanup failed"
itest_finish
