#!/usr/bin/env bash
# Pattern send-vs-relocation (the 2019 send/relocation race) on the live kernel: `btrfs send` of a read-only snapshot while
# `btrfs balance start --full-balance` relocates the same filesystem (send-vs-balance.sh, small size).
# Expected on this kernel (docs/kernel-behaviour.md, 10/10 runs): the send and balance ioctls overlap
# and both succeed (never EAGAIN: concurrent by design since 5.17). The tracer must report one
# send-vs-relocation HAZARD (kind overlap, severity info on >= 5.17) naming the filesystem, the send
# and the balance processes; no symptom (send did not fail) and no refusal.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/patterns.sh"
itest_init pattern-send-reloc
WL=$SRC_DIR/scripts/workloads/send-vs-balance.sh
[[ -x $WL ]] || die "workload $WL missing"
command -v btrfs >/dev/null || skip "btrfs-progs (btrfs) not installed"
scratch_btrfs_setup 2G || die "scratch btrfs setup failed"
SIZE_MB=${BDT_SVB_MB:-160}
LIMIT=50
# the VM tier (TCG, function hooks; kprobes trap on every hooked call) needs far more time
[[ -n ${BDT_VM:-} ]] && LIMIT=300

pt_expect "send-vs-relocation/overlap hazard, severity info, no symptom: measured 10/10 runs with the" \
    "BTRFS_IOC_SEND and BTRFS_IOC_BALANCE_V2 ioctls overlapping, both returning 0 (5.17+: concurrent by design)"

OUT=$ITEST_TMP/trace.jsonl
start_tracer "$OUT" --format json --mount "$SCRATCH_MNT"
rc=0
t0=$(date +%s.%N)
pt_run "$LIMIT" "$ITEST_TMP/wl.log" "$WL" -s "$SIZE_MB" -t $((LIMIT - 10)) "$SCRATCH_MNT" || rc=$?
t1=$(date +%s.%N)
stop_tracer || fail "tracer exited non-zero"
echo "workload took $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s ($SIZE_MB MiB)"
[[ $rc -eq 0 ]] || fail "send-vs-balance.sh exited $rc (3 = send or balance failed: not what 6.18 does)"
grep -q "overlap=yes" "$ITEST_TMP/wl.log" ||
    echo "note: the script's user-space intervals did not overlap; the kernel-side ioctls decide"

pt_check "$OUT" "$SCRATCH_FSID" <<'PY'
fsid = ARGS[0]
ov = of("send-vs-relocation", kind="overlap")
c.check(len(ov) == 1, f"exactly one send-vs-relocation overlap finding (one send, one balance), got {len(ov)}")
for f in ov:
    c.check(f.get("level") == "hazard", f"level hazard (got {f.get('level')})")
    c.check(f.get("severity") == "info", f"severity info: >= 5.17 runs them concurrently by design (got {f.get('severity')})")
    c.check(f.get("fs") == fsid, f"names the scratch filesystem {fsid} (got {f.get('fs')})")
    c.check("dev" not in f and "ino" not in f and "range" not in f,
            "no file/range: the overlap is filesystem-wide")
    c.check(f.get("comm") == "btrfs", f"the send process is btrfs (got {f.get('comm')} pid {f.get('pid')})")
    roles = {a.get("role"): a for a in f.get("actors", [])}
    c.check("send" in roles and len(roles) == 2 and all(a.get("comm") == "btrfs" for a in roles.values()),
            f"actors: the send and the balance btrfs processes (got {[(a.get('comm'), a.get('pid'), a.get('role')) for a in f.get('actors', [])]})")
    pids = {a.get("pid") for a in f.get("actors", [])}
    c.check(len(pids) == 2 and f.get("pid") == roles.get("send", {}).get("pid"),
            f"send and balance are two processes, the finding's pid is the sender's (pids {sorted(pids)})")
    ev = f.get("evidence", [])
    cmds = sorted(e.get("cmd") for e in ev if e.get("type") == "ioctl_begin")
    if FN_HOOKS:
        # btrfs_relocate_block_group() hooked: the partner is the relocation activity open when
        # send began - the balance call itself or the block group it was relocating (both seen on
        # 6.1 with fentry), always by the balance process
        bal = pids - {roles.get("send", {}).get("pid")}
        rl = [e for e in ev if e.get("type") == "reloc_begin" or e.get("type") == "ioctl_begin"
              and e.get("cmd") == "balance_v2"]
        c.check("send" in cmds and "send" in roles and len(rl) >= 1 and all(e.get("pid") in bal for e in rl),
                f"evidence: the BTRFS_IOC_SEND ioctl_begin and the balance process's balance_v2 call or "
                f"reloc_begin (got {cmds}, reloc_begin {[(e.get('pid'), e.get('block_group')) for e in rl if e.get('type') == 'reloc_begin']})")
    else:
        c.check("send" in cmds and "balance_v2" in cmds,
                f"evidence: the BTRFS_IOC_SEND and BTRFS_IOC_BALANCE_V2 ioctl_begin events (got {cmds})")
no_symptoms()
expect_only({("send-vs-relocation", "overlap")})
check_summary()
finish()
PY
itest_finish
