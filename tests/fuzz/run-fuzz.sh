#!/usr/bin/env bash
# run-fuzz.sh BINARY TARGET SECONDS WORKDIR SEED_DIR...: runs one libFuzzer
# target for SECONDS from its seeds (CTest label `fuzz`, docs/hardening.md).
# New inputs go to WORKDIR/corpus/TARGET, a crash to WORKDIR/artifacts/; the
# test fails then, saying how to keep the crash as a regression input.
set -uo pipefail
bin=$1 target=$2 secs=$3 work=$4
shift 4
corpus=$work/corpus/$target
artifacts=$work/artifacts/$target
mkdir -p "$corpus" "$artifacts"
seeds=()
for d in "$@"; do [[ -d $d ]] && seeds+=("$d"); done
log=$work/$target.log
# -timeout: one input may take 10 s at most (a hang is a finding);
# -rss_limit_mb: the tool promises bounded memory, so does each target;
# -max_len: inputs up to 64 KiB (more executions per second; the size limits
# themselves are the bad-input catalogue's, tests/bad_input/catalogue.py).
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=512 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$corpus" "${seeds[@]}" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1)
if [[ $rc -ne 0 ]]; then
    tail -n 60 "$log"
    crash=$(ls -t "$artifacts"/* 2>/dev/null | head -n1)
    echo "FAIL: fuzz target $target found a problem after ${execs:-?} executions: ${crash:-see above}"
    echo "Reproduce: $bin $crash"
    echo "Keep it as a regression input (the unit tests replay it): cp $crash tests/fuzz/regressions/$target/"
    exit 1
fi
echo "ok: fuzz target $target: ${execs:-?} executions in $secs s, $cov, corpus $(ls "$corpus" | wc -l) new inputs"
