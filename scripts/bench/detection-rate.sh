#!/usr/bin/env bash
# Detection rate of each pattern workload with the live tracer: runs every
# tests/integration/test_pattern_*.sh N times and counts the runs in which the
# expected finding (and nothing unexpected) was reported, plus how many tries
# the racy em-merge-race workload needed.
#   sudo scripts/bench/detection-rate.sh [-b BUILD_DIR] [-n RUNS]
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$src/build runs=10
while getopts "b:n:h" o; do
    case $o in b) build=$OPTARG ;; n) runs=$OPTARG ;; *) sed -n '2,6p' "$0"; exit 1 ;; esac
done
build=$(cd "$build" && pwd)
log=$(mktemp -d /tmp/bdt-detect-XXXXXX)
for t in "$src"/tests/integration/test_pattern_*.sh; do
    name=$(basename "$t" .sh)
    ok=0 tries=()
    for i in $(seq "$runs"); do
        if BDT_SOURCE_DIR=$src bash "$t" "$build" >"$log/$name.$i.log" 2>&1; then
            ok=$((ok + 1))
        fi
        tr=$(grep -oE 'reported after [0-9]+ cold round' "$log/$name.$i.log" | grep -oE '[0-9]+' | head -n1)
        [[ -n $tr ]] && tries+=("$tr")
    done
    printf '%-40s %2d/%d runs detected as expected%s\n' "$name" "$ok" "$runs" \
        "${tries:+ (tries per run: ${tries[*]})}"
done
echo "logs: $log"
