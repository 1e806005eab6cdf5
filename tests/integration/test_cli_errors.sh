#!/usr/bin/env bash
# Bad input and impossible requests: exit 1 with a one-line reason for usage and
# input errors, exit 2 when the kernel or permissions make it impossible.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
[[ -x $BIN ]] || die "binary $BIN not built"
ITEST_TMP=$(mktemp -d /tmp/bdt-itest-cli-XXXXXX)
trap 'rm -rf "$ITEST_TMP"' EXIT

expect() {  # expect CODE PATTERN -- CMD...
    local want=$1 pat=$2
    shift 3
    local err rc
    err=$("$@" 2>&1 >/dev/null)
    rc=$?
    if [[ $rc -eq $want ]] && grep -qE -e "$pat" <<<"$err" && [[ $(wc -l <<<"$err") -le 3 ]]; then
        pass "exit $rc for: $* ($err)"
    else
        fail "want exit $want matching /$pat/ for: $*; got exit $rc: $err"
    fi
}
expect 1 "not on a btrfs" -- "$BIN" --mount /proc --duration 1
expect 1 "No such file|does not exist" -- "$BIN" --mount /nonexistent/path --duration 1
expect 1 "format" -- "$BIN" --format yaml
expect 1 "pid 999999: no such process" -- "$BIN" --pid 999999 --duration 1
expect 1 "" -- "$BIN" --no-such-option
expect 1 "No such file|cannot open" -- "$BIN" replay /nonexistent.jsonl
printf 'this is not a trace\n' >"$ITEST_TMP/garbage"
expect 1 "garbage.*1" -- "$BIN" replay "$ITEST_TMP/garbage"
printf '{"schema":"btrfs-dio-trace.events/99"}\n' >"$ITEST_TMP/v99.jsonl"
expect 1 "99" -- "$BIN" replay "$ITEST_TMP/v99.jsonl"
# CLI conventions: the version from CMake's project(), usage errors that say what was wrong and
# point to --help, durations with units or a clean rejection.
want_ver=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")
for v in --version -V; do
    got=$("$BIN" $v 2>&1); rc=$?
    [[ $rc -eq 0 && $got == "btrfs-dio-trace $want_ver" ]] && pass "$v: $got" ||
        fail "$v: want 'btrfs-dio-trace $want_ver' exit 0, got $rc: $got"
done
expect 1 "^btrfs-dio-trace: unknown command 'replya'" -- "$BIN" replya x
expect 1 "Try 'btrfs-dio-trace trace --help'" -- "$BIN" --no-such-option
expect 1 "Try 'btrfs-dio-trace replay --help'" -- "$BIN" replay
expect 1 "--duration: '1x' is not a duration" -- "$BIN" --duration 1x
expect 1 "--duration: '99999999999999999999...': too long" -- "$BIN" -d "$(printf '9%.0s' {1..300})"
expect 1 "--interval: '-1' is not a duration" -- "$BIN" --qemu --interval -1
expect 1 "--duration: '0': must be more than 0" -- "$BIN" -d 0
expect 1 "--output .*: File exists" -- "$BIN" replay "$SRC_DIR/tests/fixtures/seeds/em_merge_race_4.9.jsonl" -o "$ITEST_TMP"
for h in "" trace replay doctor dump demo; do
    out=$("$BIN" $h --help 2>&1); rc=$?
    [[ $rc -eq 0 && $(grep -n '^EXAMPLES:' <<<"$out" | cut -d: -f1) -gt $(grep -n -- '--help' <<<"$out" | head -n1 | cut -d: -f1) ]] &&
        pass "${h:-top-level} --help ends with EXAMPLES" || fail "${h:-top-level} --help: no EXAMPLES section at the end (rc $rc)"
done
# -d takes units: 1.5s runs about 1.5 s (root only: it attaches).
if [[ $(id -u) -eq 0 ]]; then
    t0=$(date +%s%N)
    "$BIN" -d 1500ms -f json >"$ITEST_TMP/d.json" 2>"$ITEST_TMP/d.err"; rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    if [[ $rc -eq 2 ]]; then
        echo "NOTE: tracer cannot attach here ($(tail -n1 "$ITEST_TMP/d.err")): -d 1500ms not timed"
    else
        dur=$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1])][-1]["duration_s"])' "$ITEST_TMP/d.json")
        python3 -c "import sys; sys.exit(0 if 1.4 < $dur < 3 else 1)" && pass "-d 1500ms traced for $dur s ($ms ms in all)" ||
            fail "-d 1500ms: summary duration $dur s (rc $rc)"
    fi
fi
# flight recorder (docs/flight-recorder.md)
expect 1 "give FILE, --pin-dir DIR or --vmcore FILE" -- "$BIN" dump
expect 1 "requires --pin-dir" -- "$BIN" dump "$ITEST_TMP/garbage" --release
expect 1 "excludes" -- "$BIN" dump "$ITEST_TMP/garbage" --pin-dir /sys/fs/bpf/x
expect 1 "not an ELF file" -- "$BIN" dump --vmcore "$ITEST_TMP/garbage"
expect 1 "excludes" -- "$BIN" dump --vmcore "$ITEST_TMP/garbage" --pin-dir /sys/fs/bpf/x
expect 1 "recorder-events" -- "$BIN" --recorder-events 2000000 --duration 1
expect 1 "flight recorder, which is only kept" -- "$BIN" --recorder-events 1024 --duration 1
if [[ $(id -u) -eq 0 ]]; then
    expect 1 "needs the flight recorder" -- "$BIN" --recorder-events 0 --pin-dir /sys/fs/bpf/bdt-itest-cli --duration 1
    expect 1 "not on a BPF filesystem" -- "$BIN" --pin-dir "$ITEST_TMP/pins" --duration 1
    expect 1 "no flight recorder" -- "$BIN" dump --pin-dir "$ITEST_TMP/nothing"
    expect 1 "no flight recorder" -- "$BIN" dump --pin-dir "$ITEST_TMP/nothing" --release
fi
if [[ $(id -u) -eq 0 ]] && command -v setpriv >/dev/null; then
    # Without root/CAP_BPF+CAP_PERFMON the tracer cannot load: exit 2, saying so.
    expect 2 "root|CAP_BPF|permission" -- setpriv --reuid=65534 --regid=65534 --clear-groups \
        --inh-caps=-all --bounding-set=-all "$BIN" --duration 1
    expect 2 "root|CAP_BPF|permission" -- setpriv --reuid=65534 --regid=65534 --clear-groups \
        --inh-caps=-all --bounding-set=-all "$BIN" doctor
else
    echo "NOTE: not root or no setpriv: the no-permission case is not exercised"
fi
if [[ $ITEST_FAILS -gt 0 ]]; then echo "RESULT: $ITEST_FAILS failed"; exit 1; fi
echo "RESULT: all checks passed"
