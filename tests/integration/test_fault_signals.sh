#!/usr/bin/env bash
# SIGTERM and SIGINT at the worst moments.
# 1. While the programs load and attach (with --pin-dir, so a half-made
#    recorder could be left): exit 0, "stopped while attaching", no program and
#    no pin left. A signal that lands after the attach is a normal stop: the
#    recorder stays pinned as documented, complete (dump reads it).
# 2. During a flood of O_DIRECT writes with every record made: exit 0 within
#    2 s of the signal (the loop hands work back at least every 100 ms), the
#    summary printed, nothing left loaded.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init fault_signals
command -v fio >/dev/null || skip "fio not installed (scripts/install-deps installs it)"
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
PIN=/sys/fs/bpf/bdt-itest-signals
ITEST_CLEANUPS+=("'$BIN' dump --pin-dir '$PIN' --release >/dev/null 2>&1; rm -rf '$PIN'")

# Has the tracer installed its SIGINT and SIGTERM handlers? (/proc/PID/status SigCgt)
# Only once it is the tracer: between fork and exec the child is this shell,
# which catches both (lib.sh's traps), and exec resets them to the default.
BIN_EXE=$(readlink -f "$BIN")
catches_int_term() {
    local mask
    [[ $(readlink "/proc/$1/exe" 2>/dev/null) == "$BIN_EXE" ]] || return 1
    mask=$(awk '/^SigCgt:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $mask ]] && (((0x$mask & 0x4002) == 0x4002))  # bits of signals 2 and 15
}
now_ms() { date +%s%3N; }

# --- 1. during attach
during=0
n=0
for delay in 0 0.1 0.25 0.4; do
    for sig in TERM INT; do
        n=$((n + 1))
        ERR=$ITEST_TMP/attach-$n.err
        "$BIN" --pin-dir "$PIN" --format json >"$ITEST_TMP/attach-$n.out" 2>"$ERR" &
        P=$!
        caught=0
        for _ in $(seq 1 1000); do catches_int_term "$P" && caught=1 && break; sleep 0.01; done
        if [[ $caught -eq 0 ]]; then
            fail "SIG$sig after ${delay}s: the tracer did not install its handlers within 10 s: $(tail -n3 "$ERR")"
            kill -KILL "$P" 2>/dev/null
            wait "$P" 2>/dev/null
            "$BIN" dump --pin-dir "$PIN" --release >/dev/null 2>&1
            continue
        fi
        sleep "$delay"
        kill -"$sig" "$P"
        rc=0
        wait "$P" || rc=$?
        if grep -q "stopped while attaching" "$ERR"; then
            during=$((during + 1))
            [[ $rc -eq 0 ]] || fail "SIG$sig after ${delay}s, during attach: exit $rc (want 0): $(tail -n2 "$ERR")"
            [[ -e $PIN ]] && fail "SIG$sig after ${delay}s, during attach: $PIN left: $(ls "$PIN")"
            echo "    SIG$sig ${delay}s after the handlers: stopped while attaching, exit $rc, nothing pinned"
        elif grep -q "Ctrl-C to stop" "$ERR"; then
            [[ $rc -eq 0 ]] || fail "SIG$sig after ${delay}s, after attach: exit $rc (want 0)"
            "$BIN" dump --pin-dir "$PIN" --format json >/dev/null 2>"$ITEST_TMP/dump.err" ||
                fail "SIG$sig after ${delay}s, after attach: the kept recorder is unreadable: $(cat "$ITEST_TMP/dump.err")"
            "$BIN" dump --pin-dir "$PIN" --release >/dev/null 2>&1 || fail "release of $PIN failed"
            echo "    SIG$sig ${delay}s after the handlers: after the attach, exit $rc, recorder kept and read"
        else
            fail "SIG$sig after ${delay}s: exit $rc, neither attached nor stopped: $(tail -n3 "$ERR")"
        fi
        [[ -e $PIN ]] && fail "pins left after run $n: $(ls "$PIN")"
    done
done
[[ $during -gt 0 ]] && pass "$during of $n signals landed while attaching: each a clean exit with nothing pinned" ||
    fail "no signal landed while attaching (the attach took less than the shortest delay?)"

# --- 2. during a flood
F=$SCRATCH_NOCOW/flood
touch "$F" && dd if=/dev/zero of="$F" bs=1M count=64 status=none && sync
for sig in TERM INT; do
    OUT=$ITEST_TMP/flood-$sig.jsonl
    start_tracer "$OUT" --format json --all-events --ringbuf-size 1
    fio --name=flood --filename="$F" --rw=randwrite --bs=4k --size=64M --direct=1 --ioengine=psync \
        --numjobs=2 --time_based --runtime=8 --group_reporting --output=/dev/null &
    FIO=$!
    sleep 2
    t0=$(now_ms)
    kill -"$sig" "$TRACER_PID"
    rc=0
    wait "$TRACER_PID" || rc=$?
    t1=$(now_ms)
    TRACER_PID=
    wait "$FIO" || fail "fio failed"
    ms=$((t1 - t0))
    echo "    SIG$sig during the flood: exit $rc after $ms ms; $(grep -o '"events":[0-9]*' "$OUT" | tail -n1), $(grep -o '"lost":[0-9]*' "$OUT" | tail -n1)"
    [[ $rc -eq 0 ]] && pass "SIG$sig during a flood: exit 0" || fail "SIG$sig during a flood: exit $rc: $(tail -n2 "$OUT.err")"
    [[ $ms -le 2000 ]] && pass "SIG$sig during a flood: gone within 2 s ($ms ms)" ||
        fail "SIG$sig during a flood: took $ms ms to exit"
    tail -n1 "$OUT" | grep -q '"type":"summary"' && pass "SIG$sig during a flood: summary printed" ||
        fail "SIG$sig during a flood: no summary at the end of the output"
done
itest_finish
