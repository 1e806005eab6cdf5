#!/usr/bin/env bash
# Pattern em-merge-race (the 2016 extent-map merge race) on the live kernel: two threads read the two halves of each of
# 1024 preallocated 8 KiB extents of a nocow file with a cold extent-map cache (dio-interleaved,
# one cold round per try). Expected on this kernel (docs/kernel-behaviour.md, 10/10 runs): the race
# precursor btrfs_handle_em_exist fires, always with the requested start inside the existing map,
# so btrfs takes the harmless branch and no read fails. The tracer must report an em-merge-race
# HAZARD (kind encompassing-em-harmless, severity info on a fixed kernel) naming the file, the
# process and the extent-map range, saying the harmless branch was taken; never the EEXIST symptom.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/patterns.sh"
itest_init pattern-em-merge
WL=$WORKLOADS/dio-interleaved
[[ -x $WL ]] || die "workload $WL not built"
scratch_btrfs_setup 2G || die "scratch btrfs setup failed"

pt_expect "em-merge-race hazard (harmless branch), no symptom: measured 10/10 cold rounds with >=1" \
    "btrfs_handle_em_exist (3-7 per round), requested start inside the existing map 464/464, 0 I/O errors"
pt_expect "the race needs two threads to miss the extent-map cache together: retrying up to" \
    "MAX_TRIES cold rounds until the hazard is reported"

MAX_TRIES=${BDT_EM_TRIES:-5}
OUT=$ITEST_TMP/trace.jsonl
start_tracer "$OUT" --format json --mount "$SCRATCH_MNT"
files=() pids=() tries=0 fired=0
for ((try = 1; try <= MAX_TRIES; try++)); do
    tries=$try
    LOG=$ITEST_TMP/wl.$try.log
    rc=0
    pt_run 30 "$LOG" "$WL" -r 1 -k "$SCRATCH_NOCOW" || rc=$?
    [[ $rc -eq 0 ]] || fail "try $try: dio-interleaved exited $rc (3 = an O_DIRECT read failed: EEXIST symptom?)"
    f=$(sed -n 's/^dio-interleaved: file \([^ ]*\) ino=.*/\1/p' "$LOG")
    [[ -n $f && -e $f ]] || { fail "try $try: cannot find the workload's file in its output"; continue; }
    files+=("$f")
    pids+=("${f##*.}")
    sleep 1   # findings are printed as soon as the em_exist event leaves the reorder window
    if pt_wait_finding "$OUT" em-merge-race; then fired=1; break; fi
done
stop_tracer || fail "tracer exited non-zero"
if [[ $fired -eq 1 ]]; then
    echo "em-merge-race reported after $tries cold round(s) (max $MAX_TRIES)"
else
    echo "em-merge-race NOT reported in $tries cold round(s)"
fi

pt_check "$OUT" "$tries" "${#files[@]}" "${files[@]}" "${pids[@]}" <<'PY'
tries, n = int(ARGS[0]), int(ARGS[1])
files, pids = ARGS[2:2 + n], [int(p) for p in ARGS[2 + n:2 + 2 * n]]
stats = {os.stat(p).st_ino: (os.stat(p), pid, p) for p, pid in zip(files, pids)}
em = of("em-merge-race")
c.check(len(em) >= 1, f"em-merge-race reported ({len(em)} finding(s)) within {tries} cold round(s)")
for f in em:
    s = stats.get(f.get("ino"))
    c.check(s is not None, f"finding names one of the workload's files by inode (ino={f.get('ino')}, "
            f"files: {[(v[2], k) for k, v in stats.items()]})")
    if s is None:
        continue
    s, pid, path = s
    c.check(f.get("dev") == s.st_dev, f"dev is the file's st_dev {s.st_dev} (got {f.get('dev')})")
    c.check(f.get("level") == "hazard" and f.get("kind") == "encompassing-em-harmless",
            f"hazard, kind encompassing-em-harmless (got {f.get('level')}/{f.get('kind')})")
    c.check(f.get("severity") == "info", f"severity info: 6.18 has 8e2bd3b7fac9 (got {f.get('severity')})")
    c.check("harmless branch" in f.get("message", ""), "message says the kernel took the harmless branch")
    c.check(f.get("pid") == pid and f.get("comm") == "dio-interleaved",
            f"process is dio-interleaved pid {pid} (got {f.get('comm')} pid {f.get('pid')})")
    r = f.get("range")
    c.check(bool(r) and 0 <= r[0] < r[1] <= s.st_size and r[0] % 4096 == 0,
            f"extent-map range {r} is block-aligned and inside the {s.st_size}-byte file")
    acts = f.get("actors", [])
    c.check(len(acts) >= 2 and all(a.get("pid") == pid for a in acts) and len({a.get("tid") for a in acts}) >= 2,
            f"actors: the inserting thread and >=1 other thread of pid {pid} "
            f"(got {[(a.get('tid'), a.get('role')) for a in acts]})")
    c.check(any(e.get("type") == "em_exist" for e in f.get("evidence", [])), "evidence holds the em_exist event")
no_symptoms()
expect_only({("em-merge-race", "encompassing-em-harmless")})
check_summary()
finish()
PY
itest_finish
