#!/usr/bin/env bash
# Benign control on the live kernel: fio O_DIRECT 4 KiB random reads and writes (50/50, 2 threads,
# psync) with private aligned buffers on a 64 MiB nocow file (benign-fio.sh), about the volume of the
# hazard workloads. Expected (docs/kernel-behaviour.md, 10/10 runs): 0 em_exist, 0 continued DIO
# writes, 0 ordered-extent splits, 0 non-DIRECT ordered extents, 0 DIO errors. The tracer must print
# ZERO findings of any detector.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/patterns.sh"
itest_init pattern-benign
command -v fio >/dev/null || skip "fio not installed (scripts/install-deps installs it)"
WL=$SRC_DIR/scripts/workloads/benign-fio.sh
[[ -x $WL ]] || die "workload $WL missing"
scratch_btrfs_setup 2G || die "scratch btrfs setup failed"
SECS=${BDT_BENIGN_SECS:-3}

pt_expect "zero findings: measured 0 of every hazard signal in 10/10 runs (about 40 000 DIO requests" \
    "per run, all ordered extents NOCOW|DIRECT)"

OUT=$ITEST_TMP/trace.jsonl
start_tracer "$OUT" --format json --mount "$SCRATCH_MNT"
rc=0
pt_run 60 "$ITEST_TMP/wl.log" "$WL" -r "$SECS" "$SCRATCH_NOCOW" || rc=$?
stop_tracer || fail "tracer exited non-zero"
[[ $rc -eq 0 ]] || fail "benign-fio.sh exited $rc"
pt_check "$OUT" <<'PY'
s = [o for o in OTHERS if o.get("type") == "summary"]
ev = s[0].get("events_by_type", {}) if s else {}
print(f"    traced: {ev}")
c.check(ev.get("dio_begin", 0) > 1000, f"the tracer saw the workload's DIO ({ev.get('dio_begin', 0)} dio_begin)")
c.check(not FINDINGS, f"zero findings for the benign workload (got {len(FINDINGS)})")
check_summary()
finish()
PY
itest_finish
