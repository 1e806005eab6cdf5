#!/usr/bin/env bash
# Findings of the tracer's two emission modes on the same I/O (issue 12 item 7: a finding made
# from lazily emitted records carries the same actors, ranges and evidence as one made with
# every record emitted). Runs integration tests with BDT_ITEST_TWIN=1: each of their tracers has
# a twin in the other mode (findings only / --events) tracing the same workload at the same time
# (tests/integration/lib.sh start_tracer); keeps the outputs (BDT_ITEST_KEEP) and compares each
# pair with scripts/bench/compare_findings.py. Exit status 0 only if every test passed and every
# finding has its twin: the same, or differing only in a way docs/performance.md explains (-s:
# those fail too).
#   sudo scripts/bench/compare-findings.sh [-b BUILD_DIR] [-o OUT_DIR] [-s] [TEST...]
# TEST: test names (test_pattern_em_merge_race or pattern_em_merge_race); default: the tests whose
# workloads make findings: the pattern tests (tests/integration/test_pattern_*.sh),
# test_stall_trigger, test_fallback_writers and test_device_errors. A test that pins (--pin-dir)
# or signals its tracer itself cannot take a twin.
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$src/build out="" strict=()
while getopts "b:o:sh" o; do
    case $o in b) build=$OPTARG ;; o) out=$OPTARG ;; s) strict=(--strict) ;; *) sed -n '2,14p' "$0"; exit 2 ;; esac
done
shift $((OPTIND - 1))
build=$(cd "$build" && pwd) || exit 2
[[ -n $out ]] || out=$(mktemp -d /tmp/bdt-compare-findings-XXXXXX)
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)

tests=()
if [[ $# -eq 0 ]]; then
    tests=("$src"/tests/integration/test_pattern_*.sh)
    for t in stall_trigger fallback_writers device_errors; do tests+=("$src/tests/integration/test_$t.sh"); done
else
    for t in "$@"; do
        t=${t#test_}
        tests+=("$src/tests/integration/test_${t%.sh}.sh")
    done
fi

rc=0
for t in "${tests[@]}"; do
    name=$(basename "$t" .sh)
    [[ -f $t ]] || { echo "no such test: $t"; exit 2; }
    start=$(date +%s)
    trc=0
    BDT_ITEST_TWIN=1 BDT_ITEST_KEEP=$out BDT_SOURCE_DIR=$src bash "$t" "$build" >"$out/$name.log" 2>&1 || trc=$?
    case $trc in
        0) res=passed ;;
        77) res=$(grep -m1 "^SKIPPED" "$out/$name.log" || echo SKIPPED) ;;
        *) res="FAILED (exit $trc)"; rc=1 ;;
    esac
    printf '%-40s %s in %d s\n' "$name" "$res" $(($(date +%s) - start))
done
echo
python3 "$src/scripts/bench/compare_findings.py" "${strict[@]}" "$out" || rc=1
echo "outputs and test logs: $out"
exit $rc
