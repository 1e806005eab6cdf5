#!/usr/bin/env bash
# scripts/bench/overhead.sh warns when a column's hooks were attached with another mechanism than
# the floor's (a verifier refusal that makes one hook fall back, e.g. tp_btf -> raw_tp, changes
# what the column costs): one round with the default column's dio_complete refused on tp_btf
# (BDT_BENCH_TEST_ENV + BDT_TEST_REFUSE) must print a WARNING naming that hook and mark RESULT;
# the same round without it must print neither. That round also runs the fixed-rate round (-F):
# fio held at the rate asked, the machine's busy CPU per I/O of each column and a RESULT-CPU line.
# Takes no root lock itself: overhead.sh takes it.
set -uo pipefail
BUILD_DIR=$(cd "${1:-build}" && pwd)
SRC_DIR=${BDT_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
[[ $(id -u) -eq 0 ]] || { echo "SKIPPED: needs root (BPF and loop devices)"; exit 77; }
command -v fio >/dev/null || { echo "SKIPPED: no fio"; exit 77; }
command -v bpftool >/dev/null || { echo "SKIPPED: no bpftool"; exit 77; }

OUT=$(mktemp -d /tmp/bdt-itest-bench-attach-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
fails=0
bench() {  # one round, psync, 1 s runs, no bpf_stats, no replay (and "$@")
    "$SRC_DIR/scripts/bench/overhead.sh" -b "$BUILD_DIR" -n 1 -r 1 -e psync -c "none floor default" -S -R "$@"
}
BDT_BENCH_TEST_ENV="default BDT_TEST_REFUSE=dio_complete:tp_btf" bench >"$OUT/refused.log" 2>&1
rc=$?
if [[ $rc -eq 2 ]] && grep -q "scratch-btrfs:\|cannot mount\|no bpffs" "$OUT/refused.log"; then
    echo "SKIPPED: overhead.sh cannot run here: $(head -n3 "$OUT/refused.log")"
    exit 77
fi
[[ $rc -eq 0 ]] || { echo "FAIL: overhead.sh with a refused hook exited $rc"; cat "$OUT/refused.log"; exit 1; }
if grep -q "^WARNING (round 1 psync): attach mechanism differs from the floor column: default: .*dio_complete tb->rt" "$OUT/refused.log"; then
    echo "ok: a hook refused on tp_btf in the default column is named in a WARNING line"
else
    echo "FAIL: no WARNING naming dio_complete tb->rt"; fails=$((fails + 1))
fi
if grep -q "^RESULT .*ATTACH DIFFERS (default: see the WARNING lines)" "$OUT/refused.log"; then
    echo "ok: RESULT is marked"
else
    echo "FAIL: RESULT not marked"; fails=$((fails + 1))
fi
if grep "^WARNING" "$OUT/refused.log" | grep -v "dio_complete tb->rt" | grep -q .; then
    echo "FAIL: a WARNING about other hooks"; fails=$((fails + 1))
fi

bench -F 50 >"$OUT/clean.log" 2>&1 || { echo "FAIL: overhead.sh exited $?"; cat "$OUT/clean.log"; exit 1; }
if grep -q "WARNING\|ATTACH DIFFERS" "$OUT/clean.log"; then
    echo "FAIL: a WARNING or a marked RESULT without any refusal"; fails=$((fails + 1))
else
    echo "ok: no WARNING and an unmarked RESULT when every column attached alike"
fi
grep -q "^RESULT psync floor=" "$OUT/clean.log" || { echo "FAIL: no RESULT line"; fails=$((fails + 1)); }
# -F 50: the rate is half of none's IOPS in the round; every fixed-rate run stays at or under it
if python3 - "$OUT/clean.log" <<'PY'
import re, sys
log = open(sys.argv[1]).read()
none = int(re.search(r"^round 1 psync: none (\d+)", log, re.M).group(1))
rate = int(re.search(r"^fixed-rate rounds at 50% of none's median IOPS: psync (\d+) IOPS", log, re.M).group(1))
line = re.search(r"^fixed round 1 psync: busy CPU per I/O: (.*)$", log, re.M).group(1)
runs = re.findall(r"(\w+) (\d+) ns(?: \(([\d.]+)\))?, (\d+) IOPS", line)
assert rate == none // 2, (rate, none)
assert [r[0] for r in runs] == ["none", "floor", "default"], runs
for col, ns, ratio, iops in runs:
    assert int(ns) > 0 and int(iops) <= rate * 1.05, (col, ns, iops, rate)
res = re.search(r"^RESULT-CPU psync floor=([\d.]+) default=([\d.]+) default/floor=([\d.]+)$", log, re.M)
assert res and all(float(x) > 0 for x in res.groups()), res
PY
then
    echo "ok: -F 50: the runs held at half of none's IOPS, busy CPU per I/O per column, RESULT-CPU"
else
    echo "FAIL: the fixed-rate round (-F 50)"; fails=$((fails + 1))
fi
if [[ $fails -ne 0 ]]; then
    echo "--- with the refusal:"; cat "$OUT/refused.log"
    echo "--- without:"; cat "$OUT/clean.log"
    echo "RESULT: $fails check(s) failed"
    exit 1
fi
echo "RESULT: all checks passed"
