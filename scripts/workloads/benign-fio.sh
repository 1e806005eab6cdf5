#!/usr/bin/env bash
# benign-fio.sh - the benign control workload: fio O_DIRECT random reads and writes with private,
# aligned buffers on a nocow file, of about the same volume as the hazard workloads. btrfs-dio-trace
# must report nothing for it.
#
# usage: benign-fio.sh [options] DIR
#   DIR                 a directory on btrfs; a nocow subdirectory benign-fio.<pid> holding the data file
#                       is created there and removed (fio re-creates files it lays out, so nocow comes
#                       from the directory's +C attribute, which new files inherit)
#   -r, --runtime SEC   time-based run length (default 5)
#   -s, --size SIZE     file size (default 64M)
#   -j, --jobs N        fio jobs (threads) sharing the file (default 2)
#   -b, --bs SIZE       block size (default 4k)
#   -k, --keep          keep the file
#   -h, --help          this help
# The file is laid out and fsync'ed by a first fio pass, then the timed randrw pass runs. Prints
# "benign-fio: ino=... read_ios=... write_ios=... errors=... elapsed=...". Exit: 0 ok, 1 usage/setup
# error, 3 fio reported I/O errors.
set -u

usage() { sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'; }

runtime=5
size=64M
jobs=2
bs=4k
keep=0
while [[ $# -gt 0 ]]; do
    case $1 in
        -r|--runtime) runtime=$2; shift 2;;
        -s|--size) size=$2; shift 2;;
        -j|--jobs) jobs=$2; shift 2;;
        -b|--bs) bs=$2; shift 2;;
        -k|--keep) keep=1; shift;;
        -h|--help) usage; exit 0;;
        -*) echo "benign-fio: unknown option $1" >&2; usage >&2; exit 1;;
        *) break;;
    esac
done
if [[ $# -ne 1 ]]; then usage >&2; exit 1; fi
dir=$1
command -v fio >/dev/null || { echo "benign-fio: fio is not installed" >&2; exit 1; }
[[ -d $dir ]] || { echo "benign-fio: $dir is not a directory" >&2; exit 1; }

sub=$dir/benign-fio.$$
file=$sub/data
out=$(mktemp /tmp/bdt-benign-XXXXXX)
# shellcheck disable=SC2317  # invoked from the EXIT trap
cleanup() { [[ $keep -eq 0 ]] && rm -rf "$sub"; rm -f "$out"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir "$sub" || exit 1
chattr +C "$sub" 2>/dev/null || echo "benign-fio: warning: cannot set nocow on $sub" >&2

t0=$(date +%s.%N)
# Lay the file out once (O_DIRECT sequential write), so the timed run overwrites in place.
if ! fio --name=layout --filename="$file" --size="$size" --rw=write --bs=1M --direct=1 \
        --ioengine=psync --end_fsync=1 --output-format=terse >/dev/null 2>"$out"; then
    echo "benign-fio: layout failed:" >&2; cat "$out" >&2; exit 1
fi
ino=$(stat -c %i "$file")
nocow=no; lsattr "$file" 2>/dev/null | awk '{exit !($1 ~ /C/)}' && nocow=yes
echo "benign-fio: file=$file ino=$ino nocow=$nocow size=$size jobs=$jobs bs=$bs runtime=${runtime}s"
fio --name=benign --filename="$file" --size="$size" --rw=randrw --rwmixread=50 --bs="$bs" \
    --direct=1 --ioengine=psync --numjobs="$jobs" --thread --group_reporting \
    --runtime="$runtime" --time_based --output-format=json >"$out" 2>&1
rc=$?
t1=$(date +%s.%N)
# Pull the totals out of fio's JSON without depending on jq.
read -r rios wios errs < <(awk '
    /"read" *: *\{/  { sect = "r" } /"write" *: *\{/ { sect = "w" } /"trim" *: *\{/ { sect = "" }
    /"total_ios"/ { gsub(/[^0-9]/, "", $0); if (sect == "r" && r == "") r = $0; else if (sect == "w" && w == "") w = $0 }
    /"error"/ { gsub(/[^0-9]/, "", $0); e += $0 }
    END { printf "%s %s %d\n", (r == "" ? 0 : r), (w == "" ? 0 : w), e }' "$out")
elapsed=$(awk -v a="$t1" -v b="$t0" 'BEGIN{printf "%.3f", a-b}')
echo "benign-fio: ino=$ino read_ios=$rios write_ios=$wios errors=$errs elapsed=$elapsed"
if [[ $rc -ne 0 ]]; then echo "benign-fio: fio failed (rc=$rc):" >&2; head -20 "$out" >&2; exit 1; fi
[[ $errs -ne 0 ]] && exit 3
exit 0
