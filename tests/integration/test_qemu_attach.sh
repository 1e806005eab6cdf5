#!/usr/bin/env bash
# --qemu with real hypervisors: two qemu-system-x86_64 (TCG) booting the VM tier's Debian kernel
# (scripts/vmtest, its cache BDT_VM_CACHE) whose raw images live on the scratch btrfs, one nocow
# (chattr +C) and one with data checksums, opened with cache=none and aio=threads, native, io_uring
# (one tracer and two concurrent VMs per mode). The guest init (qemu/guest-dio.sh) does O_DIRECT
# reads, writes and reads on /dev/vda and powers off. The tracer, started first with
# `--qemu --events --format json`, must
#   - label the VMs' events and findings with the right "vm" and "image",
#   - show per-VM request counts and (in-kernel) latency percentiles in the summary and in the
#     --interval tables,
#   - report dio-buffered-fallback for the checksummed image (6.18 falls back; docs/kernel-behaviour.md)
#     and not for the nocow one,
#   - see nothing of a dd O_DIRECT on the same filesystem by another process.
# It also prints which threads issued the DIO in each mode (docs/qemu.md). The guests boot with
# no_timer_check: under TCG on a loaded host the 6.1 kernel's IO-APIC timer check can fail and panic
# ("IO-APIC + timer doesn't work!"), seen once with two VMs and a busy machine.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
VMTEST=$SRC_DIR/scripts/vmtest
GUEST=$SRC_DIR/tests/integration/qemu/guest-dio.sh
MODES=${BDT_QEMU_MODES:-threads native io_uring}

command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (Debian: qemu-system-x86)"
itest_init qemu-attach
export BDT_VM_CACHE=${BDT_VM_CACHE:-$SRC_DIR/.vm-cache}
if ! why=$("$VMTEST" --check 2>&1); then
    skip "guest kernel unavailable (scripts/vmtest --check): $(tail -n1 <<<"$why")"
fi
echo "$why"
scratch_btrfs_setup 2G || die "scratch btrfs setup failed"
NOCOW=$SCRATCH_NOCOW/vm-nocow.raw
CSUM=$SCRATCH_MNT/vm-csum.raw
for img in "$NOCOW" "$CSUM"; do
    : >"$img" && fallocate -l 64M "$img" || die "cannot create $img"
done
lsattr "$NOCOW" | cut -c1-22 | grep -q C || die "$NOCOW is not nocow"
lsattr "$CSUM" | cut -c1-22 | grep -q C && die "$CSUM is nocow"
OTHER=$SCRATCH_NOCOW/not-a-vm.dat

declare -a VMPIDS=()
kill_vms() { local p; for p in "${VMPIDS[@]}"; do kill "$p" 2>/dev/null; done; VMPIDS=(); }
ITEST_CLEANUPS+=("kill_vms")

for mode in $MODES; do
    echo "=== aio=$mode"
    OUT=$ITEST_TMP/$mode.jsonl
    start_tracer "$OUT" --qemu --events --format json --interval 3
    VMPIDS=()
    for vm in nocow csum; do
        img=$NOCOW
        [[ $vm == csum ]] && img=$CSUM
        "$VMTEST" --disk "$img" --no-mount --name "vm-$vm" --drive-opts "cache=none,aio=$mode" \
            --script "$GUEST" --timeout 150 --quiet --append no_timer_check --log "$ITEST_TMP/$mode-$vm.console" \
            >"$ITEST_TMP/$mode-$vm.vmtest" 2>&1 &
        VMPIDS+=($!)
    done
    # Another process's O_DIRECT I/O on the same filesystem, while the VMs run.
    sleep 2
    dd if=/dev/zero of="$OTHER" bs=64k count=16 oflag=direct status=none || fail "dd on $OTHER failed"
    dd if="$OTHER" of=/dev/null bs=64k iflag=direct status=none || fail "dd read of $OTHER failed"
    i=0
    for vm in nocow csum; do
        rc=0
        wait "${VMPIDS[$i]}" || rc=$?
        i=$((i + 1))
        if [[ $rc -ne 0 ]]; then
            fail "aio=$mode vm-$vm: scripts/vmtest exited $rc: $(tail -n3 "$ITEST_TMP/$mode-$vm.vmtest" | tr '\n' ' ')"
            tail -n 20 "$ITEST_TMP/$mode-$vm.console"
        else
            echo "    vm-$vm: $(grep -o 'guest command exited.*' "$ITEST_TMP/$mode-$vm.vmtest")"
        fi
    done
    VMPIDS=()
    # The watcher notices the exits (1 s polls); then one more --interval table, printed after
    # both exits, so the tables hold every request (a tick's place against the guests' few
    # seconds of I/O is otherwise chance: a run could print one table, or none with I/O).
    for _ in $(seq 50); do
        [[ $(grep -cE '^VM vm-(nocow|csum) \(pid [0-9]+\) exited' "$OUT.err") -ge 2 ]] && break
        sleep 0.2
    done
    tables=$(grep -c '"interval_s"' "$OUT" || true)
    for _ in $(seq 50); do
        [[ $(grep -c '"interval_s"' "$OUT" || true) -gt $tables ]] && break
        sleep 0.2
    done
    stop_tracer || fail "aio=$mode: tracer exited non-zero"
    grep -E '^VM |exited|waiting' "$OUT.err" | sed 's/^/    tracer: /'
    python3 - "$OUT" "$mode" "$NOCOW" "$CSUM" "$OTHER" "$OUT.err" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, os, re, sys, collections
out, mode, nocow, csum, other, errf = sys.argv[1:]
fails = 0
def check(cond, what):
    global fails
    print(("ok: " if cond else "FAIL: ") + f"aio={mode}: {what}")
    fails += not cond
objs = [json.loads(l) for l in open(out) if l.strip()]
ev = [o for o in objs if o.get("type") not in ("finding", "summary", "vm_stats", "lost")]
fi = [o for o in objs if o.get("type") == "finding"]
stats = [o for o in objs if o.get("type") == "vm_stats" and "interval_s" not in o]
ivs = [o for o in objs if o.get("type") == "vm_stats" and o.get("interval_s") == 3]
err = open(errf).read()
started = {m.group(1): int(m.group(2)) for m in re.finditer(r"^VM (vm-\w+) \(pid (\d+), \d+ threads\)", err, re.M)}
exited = set(re.findall(r"VM (vm-\w+) \(pid \d+\) exited", err))
check(set(started) == {"vm-nocow", "vm-csum"}, f"the tracer saw both VMs start (got {started})")
check(exited >= {"vm-nocow", "vm-csum"}, f"and exit (got {sorted(exited)})")
imgs = {"vm-nocow": nocow, "vm-csum": csum}
st = {v: os.stat(p) for v, p in imgs.items()}
so = os.stat(other)
for vm, path in imgs.items():
    s = st[vm]
    mine = [e for e in ev if e.get("ino") == s.st_ino and e.get("dev") == s.st_dev]
    dio = [e for e in mine if e["type"] in ("dio_begin", "dio_end")]
    rd = [e for e in mine if e["type"] == "dio_begin" and not e.get("write")]
    wr = [e for e in mine if e["type"] == "dio_begin" and e.get("write")]
    check(len(rd) > 0, f"{vm}: O_DIRECT reads of its image seen ({len(rd)} dio_begin reads)")
    bad = [e for e in mine if e.get("vm") != vm or e.get("image") != path]
    check(not bad, f"{vm}: every event on its image says vm={vm} image={path} "
          f"({len(mine)} events; wrong: {[(e.get('type'), e.get('vm'), e.get('image')) for e in bad[:3]]})")
    qpid = started.get(vm)
    wrongpid = [e for e in dio if e.get("pid") != qpid]
    check(not wrongpid, f"{vm}: every DIO event is from QEMU pid {qpid} (threads included)")
    # which threads submitted: comm (digits as N), main thread or not, distinct tids
    by = collections.defaultdict(lambda: [0, set()])
    for e in mine:
        if e["type"] != "dio_begin":
            continue
        k = (re.sub(r"\d+", "N", e["comm"]), "main" if e["tid"] == e["pid"] else "thread",
             "write" if e.get("write") else "read")
        by[k][0] += 1
        by[k][1].add(e["tid"])
    print(f"    {vm}: DIO submitted by: " + "; ".join(
        f"{c} [{m}] {d} x{n} from {len(t)} tid(s)" for (c, m, d), (n, t) in sorted(by.items())))
    ends = [e for e in mine if e["type"] == "dio_end"]
    again = sum(1 for e in ends if e.get("ret") == -11)
    if again:
        print(f"    {vm}: {again} dio_end with -EAGAIN (nowait attempts)")
    if vm == "vm-nocow":
        check(len(wr) > 0, f"{vm}: O_DIRECT writes go direct on nocow ({len(wr)} dio_begin writes)")
    else:
        oe = [e for e in mine if e["type"] == "oe_add"]
        check(not wr and oe and not any("DIRECT" in e.get("flags", []) for e in oe),
              f"{vm}: writes fell back to buffered ({len(wr)} DIO writes, {len(oe)} oe_add, none DIRECT)")
fb = [f for f in fi if f.get("detector") == "dio-buffered-fallback"]
check(any(f.get("vm") == "vm-csum" and f.get("image") == csum for f in fb),
      f"dio-buffered-fallback for vm-csum on {csum} (got {[(f.get('vm'), f.get('image')) for f in fb]})")
check(not any(f.get("vm") == "vm-nocow" for f in fb), "no dio-buffered-fallback for vm-nocow")
# exact: every guest write QEMU made was seen falling back, through this aio mode's path, and
# reported once for the (QEMU process, image)
s = st["vm-csum"]
fbe = [e for e in ev if e.get("type") == "dio_fallback" and e.get("ino") == s.st_ino and e.get("dev") == s.st_dev]
fbc = [f for f in fb if f.get("vm") == "vm-csum"]
via = {"threads": "syscall", "native": "libaio", "io_uring": "io_uring"}[mode]
print(f"    vm-csum: {len(fbe)} dio_fallback events via {sorted({e.get('via') for e in fbe})}, "
      f"{sum(e.get('count', 0) for e in fbe)} bytes; findings: {[f.get('message') for f in fbc]}")
check(len(fbc) == 1 and fbc[0].get("kind") == "buffered-fallback",
      f"exactly one exact buffered-fallback finding for vm-csum (got {[(f.get('kind'), f.get('pid')) for f in fbc]})")
check(fbe and all(e.get("via") == via and e.get("pid") == started.get("vm-csum") for e in fbe),
      f"its dio_fallback events come from QEMU pid {started.get('vm-csum')} via {via}")
covered = sorted((e["pos"], e["pos"] + e["count"]) for e in fbe)
end = 0
for a, b in covered:
    if a <= end:
        end = max(end, b)
check(end >= 64 * 65536, f"the fallbacks cover the guest's 4 MiB of writes from offset 0 (up to {end})")
if fbc and fbe:
    m = re.search(r"carried out (\d+) write\(s\)", fbc[0].get("message", ""))
    t0 = min(e["ts_ns"] for e in fbe)
    lo = sum(1 for e in fbe if e["ts_ns"] - t0 < 5_000_000_000)
    check(m and lo <= int(m.group(1)) <= len(fbe),
          f"the finding counts the writes gathered in its first 5 s ({m and m.group(1)}; {lo}..{len(fbe)})")
nolabel = [f for f in fi if not f.get("vm")]
check(not nolabel, f"every finding names its VM (unlabelled: {[f.get('detector') for f in nolabel]})")
check(not [e for e in ev if e.get("ino") == so.st_ino and e.get("dev") == so.st_dev],
      "nothing of the dd on the same filesystem (its file)")
check(not [e for e in ev if e.get("comm") == "dd"], "no event from a dd")
check(not [e for e in ev if e.get("type", "").startswith("dio") and not e.get("vm")],
      "no DIO event without a VM")
check(len(stats) == 1, f"one per-VM summary line (got {len(stats)})")
if stats:
    rows = {(r["vm"], r["image"]): r for r in stats[-1]["vms"]}
    lh = stats[-1].get("latency_hist", {})
    check(lh.get("source") == "kernel" and lh.get("dropped") == 0,
          f"latency histograms from the kernel, none dropped ({lh})")
    for vm, path in imgs.items():
        r = rows.get((vm, path))
        check(r is not None, f"summary row for {vm} {path}")
        if not r:
            continue
        lat = r["read_latency"]
        print(f"    {vm}: reads={r['reads']} ({r['read_bytes']} B) writes={r['writes']} ({r['write_bytes']} B) "
              f"buffered={r['buffered_bytes']} B again={r['again']} read p50={lat['p50_ns']} p99={lat['p99_ns']} "
              f"max={lat['max_ns']} ns; write p50={r['write_latency']['p50_ns']} p99={r['write_latency']['p99_ns']} "
              f"max={r['write_latency']['max_ns']} ns")
        check(r["reads"] > 0 and r["read_bytes"] >= 64 * 65536, f"{vm}: read requests and bytes counted")
        check(lat["count"] > 0 and 0 < lat["p50_ns"] <= lat["p99_ns"] <= lat["max_ns"],
              f"{vm}: read latency p50 <= p99 <= max, all > 0")
        if vm == "vm-nocow":
            wl = r["write_latency"]
            check(r["writes"] > 0 and wl["count"] > 0 and 0 < wl["p50_ns"] <= wl["p99_ns"] <= wl["max_ns"],
                  f"{vm}: write requests and write latency percentiles")
        else:
            check(r["buffered_bytes"] >= 64 * 65536 and r["buffered_fallback_findings"] >= 1,
                  f"{vm}: buffered bytes and the fallback finding counted")
check(len(ivs) >= 2, f"--interval 3 printed per-VM tables ({len(ivs)})")
if stats:
    tot = {(r["vm"], r["image"]): r for r in stats[-1]["vms"]}
    for vm, path in imgs.items():
        rs = [r for o in ivs for r in o["vms"] if r["vm"] == vm and r["image"] == path]
        n = sum(r["read_latency"]["count"] for r in rs)
        t = tot.get((vm, path), {}).get("read_latency", {}).get("count", 0)
        check(any(r["read_latency"]["count"] > 0 and r["read_latency"]["p50_ns"] > 0 for r in rs) and 0 < n == t,
              f"{vm}: interval tables carry every read latency ({n} samples in intervals, {t} in the summary)")
sys.exit(1 if fails else 0)
PY
done
itest_finish
