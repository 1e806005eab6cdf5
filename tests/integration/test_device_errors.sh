#!/usr/bin/env bash
# A failing device is not a kernel bug: the invariant detectors (rules that hold on any correct
# kernel) must stay silent while a real device returns errors. btrfs on a device-mapper device
# over a loop file; files written while the device works (a nocow file with O_DIRECT, a
# checksummed one buffered); then the table is switched to the `error` target (every I/O fails)
# and later to `flakey` with the device down (up 0 s, down 600 s, no features: every I/O fails),
# and O_DIRECT reads and writes of both files run against it.
# Expected: the tracer sees the failing requests (dio_end with -EIO), and reports nothing: no
# dio-unexpected-errno (EIO, and EROFS once btrfs forces itself read-only, are documented), no
# dio-acked-unbacked (a failed write acknowledges nothing), no dio-stuck (errors return at once),
# no dio-csum-after-direct-write (an I/O error is not a checksum mismatch), no other finding.
# Needs device-mapper (dm_mod, dm_flakey; in the VM tier: scripts/vmtest --module dm_mod
# --module dm_flakey) and dmsetup.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/patterns.sh"
command -v dmsetup >/dev/null || skip "dmsetup not installed (Debian: dmsetup)"
command -v mkfs.btrfs >/dev/null || skip "mkfs.btrfs not installed"
itest_init device-errors
# libdevmapper makes the /dev/mapper nodes itself (the VM tier's guest runs no udev)
export DM_DISABLE_UDEV=1
modprobe dm_mod 2>/dev/null; modprobe dm_flakey 2>/dev/null
[[ -e /dev/mapper/control ]] || skip "no device-mapper in this kernel (/dev/mapper/control missing)"
grep -qw flakey <(dmsetup targets 2>/dev/null) || skip "no dm-flakey target (modprobe dm_flakey)"

IMG=$ITEST_TMP/img
MNT=$ITEST_TMP/mnt
DM=bdt-itest-err-$$
mkdir -p "$MNT"
truncate -s 1G "$IMG" || die "cannot create $IMG"
LOOP=$(losetup --find --show "$IMG") || die "losetup failed"
SECTORS=$(blockdev --getsz "$LOOP")
dm_cleanup() {
    umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
    dmsetup remove "$DM" 2>/dev/null
    losetup -d "$LOOP" 2>/dev/null
}
ITEST_CLEANUPS+=("dm_cleanup")
dmsetup create "$DM" --table "0 $SECTORS linear $LOOP 0" || die "dmsetup create failed"
mkfs.btrfs -q -f "/dev/mapper/$DM" >/dev/null || die "mkfs.btrfs failed"
mount "/dev/mapper/$DM" "$MNT" || die "mount failed"
mkdir "$MNT/nocow" && chattr +C "$MNT/nocow"
dd if=/dev/urandom of="$MNT/nocow/data" bs=64k count=64 oflag=direct status=none || die "setup write failed"
dd if=/dev/urandom of="$MNT/csum-data" bs=64k count=64 status=none && sync || die "setup write failed"

switch() {  # switch TABLE...: every I/O from now on goes to the new table
    dmsetup suspend --noflush "$DM" && dmsetup load "$DM" --table "$*" && dmsetup resume "$DM"
}

pt_expect "EIO seen at dio_end for O_DIRECT reads and writes on the failing device; no finding at all"
OUT=$ITEST_TMP/errors.jsonl
start_tracer "$OUT" --events --format json --mount "$MNT"
echo 3 >/proc/sys/vm/drop_caches
for target in error flakey; do
    if [[ $target == error ]]; then switch "0 $SECTORS error" || die "cannot load the error table"
    else switch "0 $SECTORS flakey $LOOP 0 0 600" || die "cannot load the flakey table"; fi
    echo "--- $target: $(dmsetup table "$DM")"
    for f in "$MNT/nocow/data" "$MNT/csum-data"; do
        dd if="$f" of=/dev/null bs=64k count=4 iflag=direct status=none 2>"$ITEST_TMP/rd.err" &&
            fail "$target: O_DIRECT read of $f succeeded on a failing device"
        echo "    read $f: $(head -c 200 "$ITEST_TMP/rd.err")"
    done
    dd if=/dev/zero of="$MNT/nocow/data" bs=64k count=4 oflag=direct conv=notrunc status=none \
        2>"$ITEST_TMP/wr.err" && fail "$target: O_DIRECT write succeeded on a failing device"
    echo "    write $MNT/nocow/data: $(head -c 200 "$ITEST_TMP/wr.err")"
    # the device works again for the next round (btrfs may stay read-only: EROFS is allowed)
    switch "0 $SECTORS linear $LOOP 0" || die "cannot restore the linear table"
    echo 3 >/proc/sys/vm/drop_caches
done
sleep 1
stop_tracer || fail "tracer exited non-zero"
dmesg | grep -iE "btrfs.*(error|errno|forced readonly)" | tail -n 5 | sed 's/^/    dmesg: /'

pt_check "$OUT" "$MNT/nocow/data" "$MNT/csum-data" <<'PY'
ends = [e for e in EV if e.get("type") == "dio_end"]
errs = sorted({e.get("ret") for e in ends if e.get("ret", 0) < 0})
eio = [e for e in ends if e.get("ret") == -5 or e.get("error") == -5]
print(f"    {len(ends)} dio_end, errors returned: {errs}, {len(eio)} with EIO")
c.check(len(eio) >= 2, f"the failing requests are seen: {len(eio)} dio_end with EIO")
for p in ARGS:
    s = st(p)
    mine = [e for e in eio if e.get("ino") == s.st_ino]
    c.check(mine, f"EIO on {p} seen ({len(mine)})")
inv = [f for f in FINDINGS if f.get("detector") in ("dio-unexpected-errno", "dio-acked-unbacked",
                                                   "dio-stuck", "dio-csum-after-direct-write")]
c.check(not inv, f"no invariant fired on device errors (got {[brief(f) for f in inv]})")
expect_only(set())
check_summary()
finish()
PY
itest_finish
