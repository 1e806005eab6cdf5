#!/usr/bin/env bash
# measure-kernel-behaviour.sh - run every workload N times on a scratch btrfs with kernel tracepoints
# enabled (through scripts/measure-tracefs.sh, a private tracefs instance) and print, per run, which
# kernel events occurred. This is what docs/kernel-behaviour.md reports; it does not use
# btrfs-dio-trace itself.
#
# usage: measure-kernel-behaviour.sh [-n RUNS] [-b BUILD_DIR] [-o OUT_DIR] [PATTERN...]
#   PATTERN   any of: interleaved-read interleaved-write buf-fault-copy buf-fault-self
#             unstable-csum unstable-nocow send-balance benign   (default: all)
#   -n RUNS   runs per pattern (default 10)
#   -b DIR    build directory holding workloads/ (default: build)
#   -o DIR    keep every raw trace and log there (default: a temp dir that is removed)
# Needs root. Output: one "RUN pattern i key=value..." line per run and a "SUM" line per pattern.
set -u

here=$(cd "$(dirname "$0")/../.." && pwd)
runs=10
build=$here/build
outdir=
while getopts "n:b:o:h" opt; do
    case $opt in
        n) runs=$OPTARG;;
        b) build=$(cd "$OPTARG" && pwd);;
        o) outdir=$OPTARG;;
        h) sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'; exit 0;;
        *) exit 1;;
    esac
done
shift $((OPTIND - 1))
patterns=("$@")
[[ ${#patterns[@]} -eq 0 ]] && patterns=(interleaved-read interleaved-write buf-fault-copy buf-fault-self
                                        unstable-csum unstable-nocow send-balance benign)

# shellcheck source=scripts/lib/scratch-btrfs.sh
. "$here/scripts/lib/scratch-btrfs.sh"
scratch_btrfs_require || exit 77
measure=$here/scripts/measure-tracefs.sh
wl=$build/workloads
for w in dio-interleaved dio-buf-fault dio-unstable; do
    [[ -x $wl/$w ]] || { echo "missing $wl/$w (build first)" >&2; exit 1; }
done
keep_out=1
if [[ -z $outdir ]]; then outdir=$(mktemp -d /tmp/bdt-measure-out-XXXXXX); keep_out=0; fi
mkdir -p "$outdir"
SCRATCH_PREFIX=${SCRATCH_PREFIX:-bdt-measure}
# shellcheck disable=SC2317  # invoked from the EXIT trap
cleanup() { scratch_btrfs_cleanup; [[ $keep_out -eq 0 ]] && rm -rf "$outdir"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

ev_common=(-e iomap:iomap_dio_rw_begin -e iomap:iomap_dio_complete)
ev_oe=(-e btrfs:btrfs_ordered_extent_add -e btrfs:btrfs_ordered_extent_split -e btrfs:btrfs_finish_ordered_extent)

dmesg_mark() { dmesg 2>/dev/null | wc -l; }
dmesg_since() { dmesg 2>/dev/null | tail -n +$(($1 + 1)); }

# em_exist analysis: total, start inside the existing map, outside it, existing bigger than the new map
# (btrfs events: only those of the scratch filesystem, by fsid)
em_stats() {
    awk -v fsid="$SCRATCH_FSID" 'index($0, fsid) == 0 { next }
    / btrfs_handle_em_exist: / {
        match($0, / start=[0-9]+ /); s = substr($0, RSTART + 7, RLENGTH - 8) + 0
        match($0, /existing\(start=[0-9]+ len=[0-9]+\)/); x = substr($0, RSTART, RLENGTH); gsub(/[^0-9 ]/, "", x); split(x, E, " ")
        match($0, /em\(start=[0-9]+ len=[0-9]+\)/); y = substr($0, RSTART, RLENGTH); gsub(/[^0-9 ]/, "", y); split(y, M, " ")
        n++; if (s >= E[1] && s < E[1] + E[2]) inside++; else outside++
        if (E[2] > M[2]) merged++
    } END { printf "em_exist=%d inside=%d outside=%d existing_larger=%d", n, inside, outside, merged }' "$1"
}
# dio begins: total, continued (done_before > 0), with DIO_PARTIAL
# (only events of the scratch filesystem: iomap events carry the superblock's dev, which is the
# MAJ:MIN of the mount, not the st_dev of the subvolume)
dio_stats() {
    awk -v dev="dev $scratch_dev " 'index($0, dev) == 0 { next }
         / iomap_dio_rw_begin: / { n++; if ($0 !~ /done_before 0x0 /) cont++; if ($0 ~ /DIO_PARTIAL/) part++ }
         / iomap_dio_complete: / { if ($0 !~ / error 0 /) err++ }
         END { printf "dio_begin=%d continued=%d partial_flag=%d dio_errors=%d", n, cont, part, err }' "$1"
}
oe_stats() {
    awk -v fsid="$SCRATCH_FSID" 'index($0, fsid) == 0 { next }
         / btrfs_ordered_extent_add: / { a++; if ($0 ~ /flags=[A-Z|]*DIRECT/) d++; else b++ }
         / btrfs_ordered_extent_split: / { s++ }
         / btrfs_finish_ordered_extent: / { f++; if ($0 ~ /uptodate=0/) u++ }
         END { printf "oe_add=%d oe_direct=%d oe_buffered=%d oe_split=%d oe_finish=%d oe_not_uptodate=%d", a, d, b, s, f, u }' "$1"
}
# BTRFS_IOC_SEND / BTRFS_IOC_BALANCE_V2 as seen by the syscall tracepoints (x86_64 encodings):
# kernel-side intervals, return values, overlap in seconds
ioctl_stats() {
    awk '
    function ts(line,   a) { match(line, /[0-9]+\.[0-9]+: /); return substr(line, RSTART, RLENGTH - 2) + 0 }
    function pid(line,   a) { match(line, /-[0-9]+ +\[/); a = substr(line, RSTART + 1, RLENGTH - 1); gsub(/[^0-9]/, "", a); return a }
    / sys_ioctl\(/ { p = pid($0)
        if ($0 ~ /cmd: (0x)?40489426[,)]/) { kind[p] = "send"; t0[p] = ts($0) }
        else if ($0 ~ /cmd: (0x)?c4009420[,)]/) { kind[p] = "balance"; t0[p] = ts($0) }
        else kind[p] = "" }
    / sys_ioctl -> / { p = pid($0); if (kind[p] != "") { k = kind[p]; s[k] = t0[p]; e[k] = ts($0); r = $NF; ret[k] = r; kind[p] = "" } }
    END { lo = (s["send"] > s["balance"]) ? s["send"] : s["balance"]; hi = (e["send"] < e["balance"]) ? e["send"] : e["balance"]
          ov = hi - lo; if (ov < 0 || !("send" in s) || !("balance" in s)) ov = 0
          printf "k_send_ret=%s k_balance_ret=%s k_overlap_s=%.3f k_send_s=%.3f k_balance_s=%.3f",
                 ("send" in ret) ? ret["send"] : "none", ("balance" in ret) ? ret["balance"] : "none", ov,
                 e["send"] - s["send"], e["balance"] - s["balance"] }' "$1"
}
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" "$2" | tail -n 1; }
lost() { awk '/^measure-tracefs: lost [0-9]+ events/ { n = $3 } END { printf "lost=%d", n }' "$1"; }

run_pattern() {
    local p=$1 i rc tr log m extra
    for ((i = 1; i <= runs; i++)); do
        tr=$outdir/$p.$i.trace
        log=$outdir/$p.$i.log
        m=$(dmesg_mark)
        case $p in
            interleaved-read|interleaved-write)
                extra=(); [[ $p == interleaved-write ]] && extra=(-w)
                "$measure" -q -i "bdt-measure-$$" -o "$tr" -e btrfs:btrfs_handle_em_exist "${ev_common[@]}" -- \
                    "$wl/dio-interleaved" -r 1 "${extra[@]}" "$SCRATCH_NOCOW" >"$log" 2>&1; rc=$?
                echo "RUN $p $i rc=$rc errors=$(kv errors "$log") $(em_stats "$tr") $(dio_stats "$tr") elapsed=$(kv elapsed "$log") $(lost "$log")";;
            buf-fault-copy|buf-fault-self)
                "$measure" -q -i "bdt-measure-$$" -o "$tr" "${ev_common[@]}" "${ev_oe[@]}" -- \
                    "$wl/dio-buf-fault" -m "${p#buf-fault-}" -t 20 "$SCRATCH_MNT" >"$log" 2>&1; rc=$?
                echo "RUN $p $i rc=$rc short_writes=$(kv short_writes "$log") mismatches=$(kv mismatches "$log") hangs=$(kv hangs "$log") $(dio_stats "$tr") $(oe_stats "$tr") elapsed=$(kv elapsed "$log") $(lost "$log")";;
            unstable-csum|unstable-nocow)
                "$measure" -q -i "bdt-measure-$$" -o "$tr" "${ev_common[@]}" "${ev_oe[@]}" -- \
                    "$wl/dio-unstable" -m "${p#unstable-}" -d 3 "$SCRATCH_MNT" >"$log" 2>&1; rc=$?
                local w r b
                w=$(kv writes "$log"); r=$(kv reads "$log"); b=$(grep ' iomap_dio_rw_begin: ' "$tr" | grep -c -F "dev $scratch_dev ")
                echo "RUN $p $i rc=$rc writes=$w reads=$r eio=$(kv eio "$log") dio_write_begins=$((b - r)) $(oe_stats "$tr") csum_dmesg=$(dmesg_since "$m" | grep -c -i 'csum failed') $(lost "$log")";;
            send-balance)
                extra=(); [[ $i -gt 1 ]] && extra=(--reuse)
                "$measure" -q -i "bdt-measure-$$" -o "$tr" -f 'comm ~ "btrfs*"' -e btrfs:btrfs_reclaim_block_group \
                    -e btrfs:btrfs_remove_block_group -e syscalls:sys_enter_ioctl -e syscalls:sys_exit_ioctl -- \
                    "$here/scripts/workloads/send-vs-balance.sh" --keep "${extra[@]}" "$SCRATCH_MNT" >"$log" 2>&1; rc=$?
                local line; line=$(grep '^send-vs-balance: send_rc' "$log" | sed 's/^send-vs-balance: //')
                local sd bd
                sd=$(sed -n 's/.*send=\[\([0-9.]*\),\([0-9.]*\)\].*/\1 \2/p' "$log" | awk '{printf "%.3f", $2-$1}')
                bd=$(sed -n 's/.*balance=\[\([0-9.]*\),\([0-9.]*\)\].*/\1 \2/p' "$log" | awk '{printf "%.3f", $2-$1}')
                local gap
                gap=$(sed -n 's/.*send=\[[0-9.]*,\([0-9.]*\)\] balance=\[[0-9.]*,\([0-9.]*\)\].*/\1 \2/p' "$log" | awk '{printf "%.3f", $2-$1}')
                echo "RUN $p $i rc=$rc $line send_s=$sd balance_s=$bd balance_end_minus_send_end=$gap reclaim_tp=$(grep -c ' btrfs_reclaim_block_group: ' "$tr") remove_bg_tp=$(grep ' btrfs_remove_block_group: ' "$tr" | grep -c -F "$SCRATCH_FSID") $(ioctl_stats "$tr") $(lost "$log")";;
            benign)
                "$measure" -q -i "bdt-measure-$$" -b 65536 -o "$tr" -e btrfs:btrfs_handle_em_exist "${ev_common[@]}" "${ev_oe[@]}" -- \
                    "$here/scripts/workloads/benign-fio.sh" -r 3 "$SCRATCH_NOCOW" >"$log" 2>&1; rc=$?
                echo "RUN $p $i rc=$rc $(kv read_ios "$log" | sed 's/^/read_ios=/') $(kv write_ios "$log" | sed 's/^/write_ios=/') $(em_stats "$tr") $(dio_stats "$tr") $(oe_stats "$tr") $(lost "$log")";;
            *) echo "unknown pattern $p" >&2; return 1;;
        esac
        if dmesg_since "$m" | grep -q -E 'WARNING|extent map merge error|BUG|hung_task|blocked for more'; then
            echo "DMESG $p $i: $(dmesg_since "$m" | grep -E 'WARNING|extent map merge error|BUG|blocked for more' | head -3 | tr '\n' ' ')"
        fi
    done
}

for p in "${patterns[@]}"; do
    size=2G; [[ $p == send-balance ]] && size=4G
    scratch_btrfs_setup "$size" || exit 1
    scratch_dev=$(findmnt -n -o MAJ:MIN "$SCRATCH_MNT" | tr -d ' ')
    echo "# $p: $runs runs on $SCRATCH_LOOP ($SCRATCH_FSID), kernel $(uname -r)"
    run_pattern "$p" | tee "$outdir/$p.runs"
    # summary: for each numeric key, sum and number of runs where it was > 0
    awk -v p="$p" '/^RUN / { n++; for (i = 4; i <= NF; i++) { split($i, kvp, "="); if (kvp[2] ~ /^-?[0-9.]+$/) { s[kvp[1]] += kvp[2]; if (kvp[2] + 0 > 0) nz[kvp[1]]++; if (!(kvp[1] in seen)) { seen[kvp[1]] = 1; order[++k] = kvp[1] } } } }
        END { printf "SUM %s runs=%d", p, n; for (j = 1; j <= k; j++) printf " %s=%g(%d/%d>0)", order[j], s[order[j]], nz[order[j]] + 0, n; printf "\n" }' "$outdir/$p.runs"
    scratch_btrfs_cleanup
done
