#!/usr/bin/env bash
# Lazy emission against every record (issue 12 item 7, docs/performance.md "Lazy emission"): the
# em-merge-race and dio-short-write pattern tests, whose findings cite other requests as actors and
# a call's parts as evidence, run with a twin tracer (scripts/bench/compare-findings.sh): each
# workload is traced at the same time findings only and with --events, and every finding must be
# the same in both - process, file, range, actors and evidence records (timestamps aside). Takes no
# root lock itself: each pattern test it runs takes it.
set -uo pipefail
BUILD_DIR=$(cd "${1:-build}" && pwd)
SRC_DIR=${BDT_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
[[ $(id -u) -eq 0 ]] || { echo "SKIPPED: needs root (BPF and loop devices)"; exit 77; }

OUT=$(mktemp -d /tmp/bdt-itest-lazy-vs-events-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
rc=0
"$SRC_DIR/scripts/bench/compare-findings.sh" -b "$BUILD_DIR" -o "$OUT" -s \
    pattern_em_merge_race pattern_dio_short_write || rc=$?
for log in "$OUT"/test_*.log; do
    if ! grep -q "^RESULT: all checks passed" "$log" && ! grep -q "^SKIPPED" "$log"; then
        echo "--- $(basename "$log") (the pattern test failed):"
        tail -n 40 "$log"
    fi
done
ran=0
for log in "$OUT"/test_*.log; do grep -q "^SKIPPED" "$log" || ran=$((ran + 1)); done
if [[ $rc -ne 0 && $ran -eq 0 ]]; then
    echo "SKIPPED: every pattern test skipped: $(grep -h -m1 "^SKIPPED" "$OUT"/test_*.log | head -n1)"
    exit 77
fi
if [[ $rc -eq 0 ]]; then
    echo "RESULT: all checks passed"
else
    echo "RESULT: the pattern tests or the comparison failed (exit $rc)"
fi
exit $rc
