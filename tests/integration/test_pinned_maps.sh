#!/usr/bin/env bash
# Maps from elsewhere are checked (docs/flight-recorder.md): before `dump
# --pin-dir` or `status` reads a pinned map, its type, key size, value size,
# flags and entries are checked against what this build pins. Maps of another
# shape (made here with bpftool, as another build or anyone who can write to
# bpffs could leave them) are refused by `dump` with exit 1 and one line naming
# what was found and what is expected; `status` lists the directory with that
# reason; `--release` removes the pins without reading them.
#  1. a real recorder (trace --pin-dir, stopped cleanly): dump works; its `lost`
#     counter replaced by a per-CPU array of 64-byte values, then its recorder
#     by an array that is not mmapable: refused; a right-shape `lost` made
#     elsewhere: accepted.
#  2. rec_meta alone, too small, too large, a hash, 8-byte keys: refused.
# The cleanup removes every pin, whatever failed.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init pinned-maps
command -v bpftool >/dev/null || skip "bpftool not installed"
itest_bpffs
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
PIN=/sys/fs/bpf/bdt-itest-maps-$$
BAD=/sys/fs/bpf/bdt-itest-maps-bad-$$
ITEST_CLEANUPS+=("release_pin $PIN" "release_pin $BAD")

# dump_fails DIR WHAT PATTERN: dump exits 1 with one line matching PATTERN
dump_fails() {
    local err rc
    err=$("$BIN" dump --pin-dir "$1" 2>&1 >/dev/null)
    rc=$?
    if [[ $rc -eq 1 && $(wc -l <<<"$err") -eq 1 ]] && grep -qE -e "$3" <<<"$err"; then
        pass "$2: exit 1: $err"
    else
        fail "$2: want exit 1 and one line matching /$3/; got exit $rc: $err"
    fi
}
dump_works() {  # dump_works DIR WHAT
    "$BIN" dump --pin-dir "$1" --format json >"$ITEST_TMP/dump.json" 2>"$ITEST_TMP/dump.err"
    local rc=$?
    [[ $rc -eq 0 ]] && pass "$2: dump exit 0" || fail "$2: dump exit $rc: $(cat "$ITEST_TMP/dump.err")"
}
status_names() {  # status_names DIR PATTERN: `status` lists DIR with PATTERN, exit 0
    local out rc
    out=$("$BIN" status 2>&1)
    rc=$?
    if [[ $rc -eq 0 ]] && grep -A3 -F "$1" <<<"$out" | grep -qE -e "$2"; then
        pass "status lists $1 with /$2/"
    else
        fail "status: exit $rc, no /$2/ for $1: $out"
    fi
}
mk() {  # mk PATH bpftool-map-create-args...: a map made elsewhere, pinned at PATH
    local p=$1
    shift
    rm -f "$p"
    bpftool map create "$p" "$@" name "$(basename "$p")" || die "bpftool map create $p $* failed"
}
EXPECT="dump it with the btrfs-dio-trace build that pinned it, or release it"

# ---- 1. a real recorder, with maps replaced --------------------------------------
start_tracer "$ITEST_TMP/t.out" --mount "$SCRATCH_MNT" --pin-dir "$PIN"
stop_tracer || fail "tracer exit status $?: $(cat "$ITEST_TMP/t.out.err")"
[[ -e $PIN/rec_meta && -e $PIN/recorder && -e $PIN/lost ]] || die "no recorder pinned in $PIN: $(ls "$PIN")"
dump_works "$PIN" "the recorder as pinned"

mk "$PIN/lost" type percpu_array key 4 value 64 entries 1
dump_fails "$PIN" "lost with 64-byte values" \
    "^btrfs-dio-trace: .*map lost: type percpu_array, 4-byte keys, 64-byte values, 1 entries; this btrfs-dio-trace expects type percpu_array, 4-byte keys, 8-byte values: $EXPECT\$"
status_names "$PIN" "map lost: type percpu_array, 4-byte keys, 64-byte values"

mk "$PIN/lost" type percpu_array key 4 value 8 entries 1
dump_works "$PIN" "a lost counter of the right shape made elsewhere"

# The recorder: same value size and entries, but not mmapable (dump maps it).
read -r slot entries < <(bpftool map show pinned "$PIN/recorder" |
    sed -n 's/.*value \([0-9]*\)B *max_entries \([0-9]*\).*/\1 \2/p')
[[ -n ${slot:-} && -n ${entries:-} ]] || die "bpftool map show: no value size / entries for $PIN/recorder"
mk "$PIN/recorder" type array key 4 value "$slot" entries "$entries"
dump_fails "$PIN" "recorder not mmapable" \
    "map recorder: type array, 4-byte keys, $slot-byte values, $entries entries; this btrfs-dio-trace expects type array, 4-byte keys, $slot-byte values, mmapable: $EXPECT\$"
status_names "$PIN" "map recorder: type array"

"$BIN" dump --pin-dir "$PIN" --release >"$ITEST_TMP/rel1" 2>&1
rc=$?
[[ $rc -eq 0 && ! -e $PIN ]] && pass "released $PIN" || fail "release $PIN: exit $rc: $(cat "$ITEST_TMP/rel1")"

# ---- 2. rec_meta of other shapes ---------------------------------------------------
mkdir -p "$BAD"
mk "$BAD/recorder" type array key 4 value 8 entries 1
mk "$BAD/rec_meta" type array key 4 value 8 entries 1
meta=$("$BIN" dump --pin-dir "$BAD" 2>&1 | sed -n 's/.*expects type array, 4-byte keys, \([0-9]*\)-byte values.*/\1/p')
[[ -n $meta ]] || die "dump did not say the rec_meta value size it expects"
dump_fails "$BAD" "rec_meta too small" \
    "map rec_meta: type array, 4-byte keys, 8-byte values, 1 entries; this btrfs-dio-trace expects type array, 4-byte keys, $meta-byte values: $EXPECT\$"
# Larger than this build's struct: the lookup would have written past it.
mk "$BAD/rec_meta" type array key 4 value $((meta + 4096)) entries 1
dump_fails "$BAD" "rec_meta too large" "map rec_meta: type array, 4-byte keys, $((meta + 4096))-byte values"
mk "$BAD/rec_meta" type hash key 4 value "$meta" entries 1
dump_fails "$BAD" "rec_meta a hash" "map rec_meta: type hash, 4-byte keys, $meta-byte values"
mk "$BAD/rec_meta" type hash key 8 value "$meta" entries 1
dump_fails "$BAD" "rec_meta with 8-byte keys" "map rec_meta: type hash, 8-byte keys, $meta-byte values"
status_names "$BAD" "8-byte keys"
# A new recorder in a directory holding one of another shape is refused too.
"$BIN" trace --pin-dir "$BAD" --duration 1 >"$ITEST_TMP/t2.out" 2>&1
rc=$?
[[ $rc -eq 1 ]] && grep -q "already holds a flight recorder" "$ITEST_TMP/t2.out" &&
    pass "trace --pin-dir on it: exit 1" || fail "trace --pin-dir on it: exit $rc: $(cat "$ITEST_TMP/t2.out")"

"$BIN" dump --pin-dir "$BAD" --release >"$ITEST_TMP/rel2" 2>&1
rc=$?
[[ $rc -eq 0 && ! -e $BAD ]] && pass "released $BAD (not read)" || fail "release $BAD: exit $rc: $(cat "$ITEST_TMP/rel2")"

itest_finish
