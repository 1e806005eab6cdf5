#!/usr/bin/env bash
# send-vs-balance.sh - `btrfs send` of a read-only snapshot while `btrfs balance` relocates the same
# filesystem (the 2019 send/relocation race, send-vs-relocation; fstests btrfs/187 and btrfs/252 do the same).
#
# usage: send-vs-balance.sh [options] MNT
#   MNT                 mount point of the (scratch!) btrfs; a subvolume, a snapshot and a stream file
#                       are created in it and removed at the end. Balance acts on the WHOLE filesystem.
#   -s, --size MB       data to create (default 400), as files of --file-kb each
#   -b, --file-kb KB    size of each file (default 128: many extents and a lot of metadata)
#   -B, --balance ARGS  balance filter arguments (default: --full-balance, i.e. data+metadata+system)
#   -t, --timeout SEC   limit for each of send and balance (default 120)
#   -V, --verify        receive the stream into MNT and compare it with the snapshot (diff -r)
#   -k, --keep          keep the subvolume, snapshot and stream
#   -r, --reuse         reuse the data and snapshot of a previous --keep run (faster repetitions)
#   -h, --help          this help
# Balance is started first; send starts as soon as `btrfs balance status` says it is running.
# Prints one summary line:
#   send-vs-balance: send_rc=N balance_rc=N send=[t0,t1] balance=[t0,t1] overlap=yes|no overlap_s=X
#                    eagain=yes|no verify=ok|mismatch|skipped
# (times in seconds since the script started). Exit: 0 both succeeded (and verify ok), 1 usage/setup
# error, 3 send or balance failed or the received copy differs.
set -u

usage() { sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'; }

size_mb=400
file_kb=128
balance_args=(--full-balance)
timeout_s=120
verify=0
keep=0
reuse=0
while [[ $# -gt 0 ]]; do
    case $1 in
        -s|--size) size_mb=$2; shift 2;;
        -b|--file-kb) file_kb=$2; shift 2;;
        -B|--balance) read -r -a balance_args <<<"$2"; shift 2;;
        -t|--timeout) timeout_s=$2; shift 2;;
        -V|--verify) verify=1; shift;;
        -k|--keep) keep=1; shift;;
        -r|--reuse) reuse=1; shift;;
        -h|--help) usage; exit 0;;
        -*) echo "send-vs-balance: unknown option $1" >&2; usage >&2; exit 1;;
        *) break;;
    esac
done
if [[ $# -ne 1 ]]; then usage >&2; exit 1; fi
mnt=$1
if [[ $(id -u) -ne 0 ]]; then echo "send-vs-balance: needs root" >&2; exit 1; fi
if [[ $(stat -f -c %T "$mnt" 2>/dev/null) != btrfs ]]; then
    echo "send-vs-balance: $mnt is not on btrfs" >&2; exit 1
fi
for t in btrfs split head timeout; do
    command -v $t >/dev/null || { echo "send-vs-balance: missing $t" >&2; exit 1; }
done

src=$mnt/bdt-svb-src
snap=$mnt/bdt-svb-snap
recv=$mnt/bdt-svb-recv
stream=${BDT_SVB_STREAM:-$mnt/bdt-svb.stream}
work=$(mktemp -d /tmp/bdt-svb-XXXXXX)
balance_pid=
send_pid=

# shellcheck disable=SC2317  # invoked from the EXIT trap
cleanup() {
    [[ -n $send_pid ]] && kill "$send_pid" 2>/dev/null
    if [[ -n $balance_pid ]] && kill -0 "$balance_pid" 2>/dev/null; then
        btrfs balance cancel "$mnt" >/dev/null 2>&1
        kill "$balance_pid" 2>/dev/null
    fi
    wait 2>/dev/null
    if [[ $keep -eq 0 ]]; then
        [[ -d $recv/bdt-svb-snap ]] && btrfs subvolume delete "$recv/bdt-svb-snap" >/dev/null 2>&1
        rm -rf "$recv" "$stream"
        [[ -d $snap ]] && btrfs subvolume delete "$snap" >/dev/null 2>&1
        [[ -d $src ]] && btrfs subvolume delete "$src" >/dev/null 2>&1
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t_start=$(date +%s.%N)
ts() { awk -v a="$(date +%s.%N)" -v b="$t_start" 'BEGIN{printf "%.3f", a-b}'; }

if [[ $reuse -eq 1 && -d $snap ]]; then
    echo "send-vs-balance: reusing $snap"
else
    [[ -e $src || -e $snap ]] && { echo "send-vs-balance: $src or $snap exists (use --reuse or remove)" >&2; exit 1; }
    btrfs subvolume create "$src" >/dev/null || { echo "send-vs-balance: cannot create subvolume" >&2; exit 1; }
    echo "send-vs-balance: writing ${size_mb} MiB as ${file_kb} KiB files into $src"
    mkdir -p "$src/d"
    head -c "${size_mb}M" /dev/urandom | (cd "$src/d" && split -a 6 -b "${file_kb}K" - f.) ||
        { echo "send-vs-balance: data creation failed" >&2; exit 1; }
    sync
    btrfs subvolume snapshot -r "$src" "$snap" >/dev/null || { echo "send-vs-balance: snapshot failed" >&2; exit 1; }
    sync
fi
nfiles=$(find "$snap/d" -type f | wc -l)
echo "send-vs-balance: snapshot $snap has $nfiles files; balance ${balance_args[*]}; send to $stream"

# Balance first.
b0=$(ts)
timeout "$timeout_s" btrfs balance start "${balance_args[@]}" "$mnt" >"$work/balance.out" 2>&1 &
balance_pid=$!
for _ in $(seq 1 200); do
    btrfs balance status "$mnt" 2>/dev/null | grep -q -i "running" && break
    kill -0 "$balance_pid" 2>/dev/null || break
    sleep 0.01
done
s0=$(ts)
timeout "$timeout_s" btrfs send -q -f "$stream" "$snap" >"$work/send.out" 2>&1 &
send_pid=$!
wait "$send_pid"; send_rc=$?; s1=$(ts); send_pid=
wait "$balance_pid"; balance_rc=$?; b1=$(ts); balance_pid=

overlap=$(awk -v a0="$b0" -v a1="$b1" -v c0="$s0" -v c1="$s1" 'BEGIN{
    lo = (a0 > c0) ? a0 : c0; hi = (a1 < c1) ? a1 : c1; d = hi - lo; if (d < 0) d = 0; printf "%.3f", d }')
ov=no; awk -v d="$overlap" 'BEGIN{exit !(d > 0)}' && ov=yes
eagain=no
grep -q -i -E "resource temporarily unavailable|EAGAIN|balance.*in progress|relocation.*in progress" \
    "$work/send.out" && eagain=yes
[[ $send_rc -ne 0 ]] && { echo "send-vs-balance: send failed (rc=$send_rc):"; sed 's/^/    /' "$work/send.out"; }
[[ $balance_rc -ne 0 ]] && { echo "send-vs-balance: balance failed (rc=$balance_rc):"; sed 's/^/    /' "$work/balance.out"; }

verify_res=skipped
if [[ $verify -eq 1 && $send_rc -eq 0 ]]; then
    mkdir -p "$recv"
    if btrfs receive -q -f "$stream" "$recv" >"$work/recv.out" 2>&1 &&
       diff -r -q "$snap" "$recv/bdt-svb-snap" >"$work/diff.out" 2>&1; then
        verify_res=ok
    else
        verify_res=mismatch
        sed 's/^/    /' "$work/recv.out" "$work/diff.out" | head -20
    fi
fi

echo "send-vs-balance: send_rc=$send_rc balance_rc=$balance_rc send=[$s0,$s1] balance=[$b0,$b1]" \
     "overlap=$ov overlap_s=$overlap eagain=$eagain verify=$verify_res"
if [[ $send_rc -ne 0 || $balance_rc -ne 0 || $verify_res == mismatch ]]; then exit 3; fi
exit 0
