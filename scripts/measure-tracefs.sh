#!/usr/bin/env bash
# measure-tracefs.sh - run a command with some kernel tracepoints enabled in a private tracefs
# instance, save the trace, print how often each event fired. Independent of btrfs-dio-trace itself:
# it is how docs/kernel-behaviour.md was measured, and a cross-check for the tool.
#
# usage: measure-tracefs.sh [-e SYS:EVENT]... [-o TRACE_FILE] [-i INSTANCE] [-b KB] [-f FILTER] -- CMD [ARGS...]
#   -e SYS:EVENT  event to enable (repeatable); default: the btrfs/iomap events btrfs-dio-trace uses
#   -o FILE       where to save the raw trace text (default: a temp file that is removed)
#   -i NAME       tracefs instance name (default bdt-measure-$$); created and removed by this script
#   -b KB         per-CPU buffer size in KiB (default 16384)
#   -f FILTER     tracefs filter applied to every enabled event that accepts it (e.g. 'ino == 257')
#   -q            do not print the per-event counts
# Output (stdout, after the command finished): one line per enabled event "count SYS:EVENT", plus
# "lost N" (ring-buffer overruns; non-zero means the counts are a lower bound).
# Exit status: the command's exit status (2 if tracing could not be set up).
set -u

TRACEFS=/sys/kernel/tracing
[[ -d $TRACEFS/instances ]] || TRACEFS=/sys/kernel/debug/tracing

default_events=(
    btrfs:btrfs_get_extent btrfs:btrfs_handle_em_exist
    btrfs:btrfs_ordered_extent_add btrfs:btrfs_ordered_extent_split
    btrfs:btrfs_ordered_extent_remove btrfs:btrfs_finish_ordered_extent
    btrfs:btrfs_reclaim_block_group
    iomap:iomap_dio_rw_begin iomap:iomap_dio_complete
)
events=()
out=
instance=bdt-measure-$$
bufkb=16384
filter=
quiet=0

usage() { sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'; }

while getopts "e:o:i:b:f:qh" opt; do
    case $opt in
        e) events+=("$OPTARG");;
        o) out=$OPTARG;;
        i) instance=$OPTARG;;
        b) bufkb=$OPTARG;;
        f) filter=$OPTARG;;
        q) quiet=1;;
        h) usage; exit 0;;
        *) usage >&2; exit 1;;
    esac
done
shift $((OPTIND - 1))
[[ ${1:-} == -- ]] && shift
if [[ $# -eq 0 ]]; then usage >&2; exit 1; fi
[[ ${#events[@]} -eq 0 ]] && events=("${default_events[@]}")

if [[ $(id -u) -ne 0 ]]; then echo "measure-tracefs: needs root" >&2; exit 2; fi
if [[ ! -d $TRACEFS/instances ]]; then echo "measure-tracefs: tracefs not mounted at $TRACEFS" >&2; exit 2; fi

inst=$TRACEFS/instances/$instance
tmp_out=
# shellcheck disable=SC2317  # invoked from the EXIT trap
cleanup() {
    if [[ -d $inst ]]; then
        echo 0 > "$inst/tracing_on" 2>/dev/null
        local ev
        for ev in "${events[@]}"; do
            echo 0 > "$inst/events/${ev%%:*}/${ev#*:}/enable" 2>/dev/null
        done
        : > "$inst/trace" 2>/dev/null
        rmdir "$inst" 2>/dev/null || echo "measure-tracefs: could not remove $inst" >&2
    fi
    [[ -n $tmp_out ]] && rm -f "$tmp_out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -e $inst ]]; then echo "measure-tracefs: instance $inst already exists" >&2; trap - EXIT; exit 2; fi
mkdir "$inst" || { echo "measure-tracefs: cannot create $inst" >&2; exit 2; }
echo "$bufkb" > "$inst/buffer_size_kb" 2>/dev/null
for ev in "${events[@]}"; do
    d=$inst/events/${ev%%:*}/${ev#*:}
    if [[ ! -e $d/enable ]]; then echo "measure-tracefs: no such event $ev" >&2; exit 2; fi
    if [[ -n $filter ]]; then
        echo "$filter" > "$d/filter" 2>/dev/null || echo "measure-tracefs: filter not accepted by $ev" >&2
    fi
    echo 1 > "$d/enable" || exit 2
done
: > "$inst/trace"
echo 1 > "$inst/tracing_on"

"$@"
rc=$?

echo 0 > "$inst/tracing_on"
if [[ -z $out ]]; then tmp_out=$(mktemp /tmp/bdt-measure-XXXXXX); out=$tmp_out; fi
cat "$inst/trace" > "$out"
lost=0
for s in "$inst"/per_cpu/cpu*/stats; do
    n=$(awk '/^overrun:/ {print $2}' "$s" 2>/dev/null)
    lost=$((lost + ${n:-0}))
done
if [[ $quiet -eq 0 ]]; then
    for ev in "${events[@]}"; do
        name=${ev#*:}
        case $ev in   # syscall events print as "sys_NAME(args)" and "sys_NAME -> ret"
            syscalls:sys_enter_*) pat=" sys_${name#sys_enter_}(";;
            syscalls:sys_exit_*) pat=" sys_${name#sys_exit_} -> ";;
            *) pat=" $name: ";;
        esac
        printf '%d %s\n' "$(grep -c -F -- "$pat" "$out")" "$ev"
    done
    echo "lost $lost"
elif [[ $lost -gt 0 ]]; then
    echo "measure-tracefs: lost $lost events (ring buffer overrun; raise -b)" >&2
fi
exit $rc
