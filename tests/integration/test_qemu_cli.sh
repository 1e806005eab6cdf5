#!/usr/bin/env bash
# --qemu bad input and edge cases (no guest kernel needed):
#   1. no QEMU running: the tracer keeps waiting and says so (run in its own pid namespace with its
#      own /proc, so QEMUs of other users of this machine are not seen);
#   2. --pid of a process that is not QEMU together with --qemu: usage error, exit 1, one line;
#   3. a VM whose images are not on btrfs (a paused QEMU with one image on this host's /tmp and one on
#      tmpfs) is listed as not traced, with the reason;
#   4. a VM found before it opens its image (a stand-in: python named qemu-system-x86_64 that waits,
#      then writes its nocow image with O_DIRECT at once): the ordered extents btrfs' workers remove
#      before the next /proc scan knows the image are still delivered (each oe_add of the image
#      has its oe_remove; dio-stuck would otherwise call them stuck 30 s later).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (Debian: qemu-system-x86)"
command -v unshare >/dev/null || skip "unshare (util-linux) not installed"
itest_init qemu-cli

# --- 1. nothing to attach to: keeps waiting
t0=$(date +%s.%N)
rc=0
unshare --pid --fork --mount-proc "$BIN" --qemu --duration 3 >"$ITEST_TMP/none.out" 2>"$ITEST_TMP/none.err" || rc=$?
t1=$(date +%s.%N)
el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
if [[ $rc -eq 2 ]] && grep -q "cannot\|refused\|needs" "$ITEST_TMP/none.err"; then
    skip "tracer cannot attach here: $(tail -n1 "$ITEST_TMP/none.err")"
fi
[[ $rc -eq 0 ]] && pass "no QEMU: exit 0 after --duration" || fail "no QEMU: exit $rc: $(cat "$ITEST_TMP/none.err")"
grep -q "no QEMU process is running; waiting for one" "$ITEST_TMP/none.err" &&
    pass "no QEMU: says it is waiting" || fail "no QEMU: no waiting message in: $(cat "$ITEST_TMP/none.err")"
awk -v e="$el" 'BEGIN { exit !(e >= 2.8) }' && pass "no QEMU: kept waiting (${el} s of --duration 3)" ||
    fail "no QEMU: gave up after ${el} s"
[[ $(grep -c "waiting for one" "$ITEST_TMP/none.err") -eq 1 ]] && pass "no QEMU: said once, not every poll" ||
    fail "no QEMU: the waiting message repeats"

# --- 2. --pid of something that is not QEMU
sleep 60 &
NOTQ=$!
ITEST_CLEANUPS+=("kill $NOTQ 2>/dev/null")
# Until the forked shell has exec'd sleep, the process is still called bash.
for _ in $(seq 50); do [[ $(cat /proc/$NOTQ/comm 2>/dev/null) == sleep ]] && break; sleep 0.02; done
rc=0
"$BIN" --qemu --pid "$NOTQ" --duration 1 >"$ITEST_TMP/pid.out" 2>"$ITEST_TMP/pid.err" || rc=$?
[[ $rc -eq 1 ]] && pass "--pid <sleep> --qemu: exit 1" || fail "--pid <sleep> --qemu: exit $rc (want 1)"
[[ $(wc -l <"$ITEST_TMP/pid.err") -eq 1 ]] && grep -q "process $NOTQ (sleep.*) is not a QEMU process" "$ITEST_TMP/pid.err" &&
    pass "--pid <sleep> --qemu: one line: $(cat "$ITEST_TMP/pid.err")" ||
    fail "--pid <sleep> --qemu: stderr: $(cat "$ITEST_TMP/pid.err")"
grep -q "Ctrl-C to stop" "$ITEST_TMP/pid.err" && fail "--pid <sleep> --qemu attached before failing"

# --- 3. a VM whose images are not on btrfs
EXT=$ITEST_TMP/vm-elsewhere.raw
SHM=$(mktemp /dev/shm/bdt-itest-qemu-cli-XXXXXX.raw)
ITEST_CLEANUPS+=("rm -f $SHM")
truncate -s 16M "$EXT" "$SHM"
fstype=$(stat -f -c %T "$EXT")
# Descriptors the test inherited are closed first: a file QEMU has open is one of its images (the
# lock of `flock LOCK ctest ...` would be listed as a third).
(for fd in /proc/self/fd/*; do fd=${fd##*/}; ((fd > 2)) && eval "exec $fd>&-"; done
 exec qemu-system-x86_64 -S -accel tcg -nodefaults -no-user-config -display none -monitor none \
    -name guest=vm-elsewhere,debug-threads=on \
    -drive "file=$EXT,if=virtio,format=raw,cache=none,aio=native" \
    -drive "file=$SHM,if=virtio,format=raw,cache=writeback") </dev/null >"$ITEST_TMP/qemu.out" 2>&1 &
QPID=$!
ITEST_CLEANUPS+=("kill $QPID 2>/dev/null")
for _ in $(seq 50); do [[ -n $(ls -l /proc/$QPID/fd 2>/dev/null | grep -F "$SHM") ]] && break; sleep 0.1; done
kill -0 $QPID 2>/dev/null || die "paused QEMU did not start: $(cat "$ITEST_TMP/qemu.out")"
start_tracer "$ITEST_TMP/else.out" --qemu --pid "$QPID" --format json
sleep 1.5
stop_tracer || fail "tracer exited non-zero"
E=$ITEST_TMP/else.out.err
grep -q "^VM vm-elsewhere (pid $QPID, [0-9]* threads): 0 of 2 images traced" "$E" &&
    pass "listed: $(grep '^VM vm-elsewhere' "$E")" || fail "VM not listed as 0 of 2 traced: $(cat "$E")"
grep -qF "not traced $EXT cache=none aio=native O_DIRECT — not on btrfs (${fstype/ext2\/ext3/ext4})" "$E" &&
    pass "image on $fstype: $(grep -F "$EXT" "$E" | sed 's/^ *//')" ||
    fail "image on $fstype not listed with its reason: $(cat "$E")"
grep -qF "not traced $SHM cache=writeback buffered — not on btrfs (tmpfs)" "$E" &&
    pass "image on tmpfs: $(grep -F "$SHM" "$E" | sed 's/^ *//')" ||
    fail "image on tmpfs not listed with its reason: $(cat "$E")"
kill $QPID 2>/dev/null
wait $QPID 2>/dev/null

# --- 4. a VM that opens its image after it was found
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
LATE=$SCRATCH_NOCOW/vm-late.raw
fallocate -l 64M "$LATE" || die "cannot create $LATE"
start_tracer "$ITEST_TMP/late.out" --qemu --events --format json
PY3=$(python3 -c "import sys; print(sys.executable)")  # the interpreter itself: argv[0] is kept
(LATE=$LATE LATE_ERR=$ITEST_TMP/late.out.err exec -a qemu-system-x86_64 "$PY3" - -name guest=vm-late <<'PY'
import mmap, os, sys, time
img, errf = os.environ["LATE"], os.environ["LATE_ERR"]
# found by the tracer's /proc scan with no image open
for _ in range(100):
    if "VM vm-late" in open(errf).read():
        break
    time.sleep(0.05)
fd = os.open(img, os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
t, i = time.time() + 2.5, 0
while time.time() < t:
    i += 1
    os.pwrite(fd, buf, (i * 7919 % 16384) * 4096)
os.close(fd)
PY
) || fail "the stand-in VM failed"
sleep 1.5
stop_tracer || fail "tracer exited non-zero"
python3 - "$ITEST_TMP/late.out" "$LATE" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import collections, json, os, sys
out, img = sys.argv[1:]
s = os.stat(img)
ev = [json.loads(l) for l in open(out) if l.strip()]
mine = [e for e in ev if e.get("ino") == s.st_ino and e.get("dev") == s.st_dev]
n = collections.Counter(e["type"] for e in mine)
add = collections.Counter(e["file_offset"] for e in mine if e["type"] == "oe_add")
rem = collections.Counter(e["file_offset"] for e in mine if e["type"] == "oe_remove")
left = sum((add - rem).values())
unl = sum(1 for e in mine if e["type"] == "oe_remove" and not e.get("vm"))
ok = n["oe_add"] > 0 and left == 0
print(("ok: " if ok else "FAIL: ") + f"late image: {n['oe_add']} oe_add, {n['oe_remove']} oe_remove "
      f"({unl} before the image was known), {left} adds without a removal; {n['dio_begin']} dio_begin")
bad = [f for f in ev if f.get("type") == "finding" and f.get("detector") == "dio-stuck"]
print(("ok: " if not bad else "FAIL: ") + f"no dio-stuck finding ({len(bad)})")
sys.exit(0 if ok and not bad else 1)
PY
itest_finish
