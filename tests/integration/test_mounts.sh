#!/usr/bin/env bash
# Mount what a user would expect: on a machine without tracefs (or bpffs) mounted,
# the tracer mounts tracefs at /sys/kernel/tracing, so the ioctl hooks use the
# syscalls:sys_{enter,exit}_ioctl tracepoints (only ioctl(2) runs them) instead of
# the raw sys_enter/sys_exit (every system call of the machine runs those), and
# says so (doctor's tracefs line and hook reasons, a line at trace startup); and
# `trace --pin-dir /sys/fs/bpf/...` mounts bpffs at /sys/fs/bpf. The test unmounts
# them first and leaves the mounts as it found them.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init mounts

# --- tracefs
if [[ $(tracefs_mounted) == yes ]]; then
    umount /sys/kernel/tracing || die "cannot unmount tracefs for the test"
    ITEST_CLEANUPS+=("[[ \$(tracefs_mounted) == yes ]] || mount -t tracefs tracefs /sys/kernel/tracing")
    ITEST_TRACEFS_BEFORE=yes
fi
if [[ -e /sys/kernel/debug/tracing/events ]]; then
    # debugfs is mounted: its tracing/ automounts tracefs, which the tracer finds there
    want_tracefs="/sys/kernel/debug/tracing (mounted)"
else
    want_tracefs="/sys/kernel/tracing (mounted at /sys/kernel/tracing by btrfs-dio-trace)"
fi
"$BIN" doctor --format json >"$ITEST_TMP/doctor.json" 2>"$ITEST_TMP/doctor.err" \
    || die "doctor failed: $(cat "$ITEST_TMP/doctor.err")"
python3 - "$ITEST_TMP/doctor.json" "$want_tracefs" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, sys
d, want = json.load(open(sys.argv[1])), sys.argv[2]
h = {x["name"]: x for x in d["hooks"]}
fails = 0
def check(cond, what):
    global fails
    print(("ok: " if cond else "FAIL: ") + what)
    fails += not cond
check(d["tracefs"] == want, f"doctor's tracefs: {d['tracefs']!r} (want {want!r})")
for n in ("sys_enter_ioctl", "sys_exit_ioctl"):
    check(h[n]["mechanism"] == "tracepoint" and h[n]["attached"]
          and "which only ioctl(2) runs" in h[n]["reason"],
          f"{n}: {h[n]['mechanism']}: {h[n]['reason']}")
sys.exit(1 if fails else 0)
PY
if [[ $want_tracefs == /sys/kernel/tracing* ]]; then
    [[ $(tracefs_mounted) == yes ]] && pass "tracefs is mounted at /sys/kernel/tracing after doctor" \
        || fail "tracefs is not mounted after doctor"
    umount /sys/kernel/tracing
    "$BIN" trace --duration 0.5 >"$ITEST_TMP/trace.out" 2>"$ITEST_TMP/trace.err" \
        || fail "trace failed: $(cat "$ITEST_TMP/trace.err")"
    grep -q "tracefs was not mounted: mounted at /sys/kernel/tracing by btrfs-dio-trace" "$ITEST_TMP/trace.err" \
        && pass "trace says it mounted tracefs" || fail "trace did not say it mounted tracefs: $(cat "$ITEST_TMP/trace.err")"
    grep -q "not attached: sys_e" "$ITEST_TMP/trace.err" \
        && fail "syscall hooks not attached: $(cat "$ITEST_TMP/trace.err")" || pass "the syscall hooks attached"
fi

# --- bpffs for --pin-dir
# (bpffs_mounted, bpffs_pins: lib.sh)
if bpffs_mounted && [[ -n $(bpffs_pins) ]]; then
    echo "note: bpffs at /sys/fs/bpf holds pins ($(bpffs_pins | head -3 | tr '\n' ' ')...): not unmounted, its mounting not tested"
else
    if bpffs_mounted; then
        umount /sys/fs/bpf || die "cannot unmount bpffs for the test"
        ITEST_CLEANUPS+=("bpffs_mounted || mount -t bpf bpf /sys/fs/bpf")
    else
        ITEST_CLEANUPS+=("bpffs_mounted && [[ -z \$(bpffs_pins) ]] && umount /sys/fs/bpf")
    fi
    DIR=/sys/fs/bpf/bdt-itest-mounts
    "$BIN" trace --pin-dir "$DIR" --duration 0.5 >"$ITEST_TMP/pin.out" 2>"$ITEST_TMP/pin.err" \
        || fail "trace --pin-dir without bpffs failed: $(cat "$ITEST_TMP/pin.err")"
    grep -q "mounted bpffs at /sys/fs/bpf (it was not mounted)" "$ITEST_TMP/pin.err" \
        && pass "trace --pin-dir mounted bpffs and said so" || fail "no bpffs mount line: $(cat "$ITEST_TMP/pin.err")"
    bpffs_mounted && pass "/sys/fs/bpf is bpffs" || fail "/sys/fs/bpf is not bpffs"
    [[ -e $DIR/rec_meta ]] && pass "the recorder is pinned in $DIR" || fail "nothing pinned in $DIR"
    "$BIN" dump --pin-dir "$DIR" --release >/dev/null 2>&1 || fail "dump --release failed"
fi
itest_finish
