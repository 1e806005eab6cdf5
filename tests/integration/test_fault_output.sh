#!/usr/bin/env bash
# Output that cannot be written (a full disk) under a live tracer. The tracer
# writes --events to a file on a 256 KiB tmpfs (--output), then a --record
# file there, while O_DIRECT writes make far more than fits. Expected: it stops
# within seconds with exit status 1 and one stderr line saying why (not exit 0
# with the events silently gone), and leaves no programs behind.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init fault_output
scratch_btrfs_setup 512M || die "scratch btrfs setup failed"
TINY=$ITEST_TMP/tiny
mkdir -p "$TINY" && mount -t tmpfs -o size=256k tmpfs "$TINY" || die "cannot mount a tmpfs"
ITEST_CLEANUPS+=("umount '$TINY' 2>/dev/null")

# run_full NAME EXPECTED_LINE ARGS...: a tracer with ARGS on the scratch fs, O_DIRECT writes
# until it exits (at most 20 s of them), then its status and last stderr line.
run_full() {
    local name=$1 want=$2 err=$ITEST_TMP/$1.err i rc
    shift 2
    rm -f "$TINY"/*
    : >"$err"
    "$BIN" --mount "$SCRATCH_MNT" "$@" >/dev/null 2>"$err" &
    TRACER_PID=$!
    for i in $(seq 1 100); do grep -q "Ctrl-C to stop" "$err" && break; sleep 0.1; done
    grep -q "Ctrl-C to stop" "$err" || { fail "$name: tracer did not start: $(tail -n2 "$err")"; return; }
    local start=$SECONDS
    i=0
    while kill -0 "$TRACER_PID" 2>/dev/null && ((SECONDS - start < 20)); do
        dd if=/dev/zero of="$SCRATCH_NOCOW/f" bs=4k count=1000 oflag=direct conv=notrunc status=none ||
            { fail "$name: the workload's writes failed"; break; }
        i=$((i + 1))
        sleep 0.2
    done
    if kill -0 "$TRACER_PID" 2>/dev/null; then
        fail "$name: the tracer still runs after 20 s of writes ($i rounds) to a full output"
        stop_tracer
        return
    fi
    rc=0
    wait "$TRACER_PID" || rc=$?
    TRACER_PID=
    echo "    $name: exit $rc after $((SECONDS - start)) s ($i rounds of 1000 writes); stderr: $(tail -n1 "$err")"
    [[ $rc -eq 1 ]] && pass "$name: exit status 1" || fail "$name: exit status $rc, not 1"
    [[ $(tail -n1 "$err") == "$want" ]] && pass "$name: one line says why" ||
        fail "$name: last stderr line is not '$want': $(tail -n3 "$err")"
    grep -q "internal error" "$err" && fail "$name: reported as an internal error"
}

run_full events-json "btrfs-dio-trace: cannot write the output: No space left on device" \
    --events --format json -o "$TINY/out.jsonl"
run_full events-text "btrfs-dio-trace: cannot write the output: No space left on device" \
    --events -o "$TINY/out.txt"
run_full record "btrfs-dio-trace: $TINY/rec.bdt: cannot write the record file: No space left on device" \
    --record "$TINY/rec.bdt"
itest_finish
