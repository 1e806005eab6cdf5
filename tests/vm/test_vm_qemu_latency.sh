#!/usr/bin/env bash
# VM tier: --qemu's in-kernel pid filter and latency histograms with the function-hook backends
# (Debian 6.1 has no iomap DIO tracepoints: DIO begin/end come from btrfs_dio_read/_write and
# iomap_dio_complete, via fentry/fexit and via kprobe/kretprobe). In the guest (--host-root), a
# process that looks like QEMU (the host's dd copied as qemu-system-x86_64) reads an image on the
# guest's btrfs with O_DIRECT for a few seconds while `btrfs-dio-trace --qemu --format json` runs;
# the per-VM summary must show the reads on that image with latency percentiles from the kernel.
# Exits 77 (skipped, said loudly) when the VM tier or the binary is unavailable.
#   tests/vm/test_vm_qemu_latency.sh [BUILD_DIR]
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
vm_init "${1:-}"
vm_need_bin
vm_need_cmd python3 "python3 is needed to check the JSON"
vm_check --host-root

tmp=$(mktemp -d /tmp/bdt-vm-qemu-lat.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/guest.sh" <<EOF
cp /usr/bin/dd /tmp/qemu-system-x86_64
truncate -s 256M /mnt/img.raw
for b in fentry kprobe; do
  $bin --qemu --backend \$b --format json >/tmp/\$b.json 2>/tmp/\$b.err &
  T=\$!
  # loading under TCG takes seconds to minutes (host load): wait for the tracer, not a fixed time
  for i in \$(seq 600); do grep -q 'Ctrl-C to stop' /tmp/\$b.err && break; kill -0 \$T || break; sleep 0.2; done
  timeout 5 /tmp/qemu-system-x86_64 if=/mnt/img.raw of=/dev/null bs=4k iflag=direct status=none
  # the tracer notices the exit at its next /proc scan (every second, later under load)
  for i in \$(seq 300); do grep -q 'VM pid-[0-9]* (pid [0-9]*) exited' /tmp/\$b.err && break; sleep 0.2; done
  kill -INT \$T; wait \$T
  echo "QLAT \$b rc=\$?"
  sed "s/^/QLAT \$b err: /" /tmp/\$b.err
  grep '"type":"vm_stats"' /tmp/\$b.json | sed "s/^/QLAT \$b json: /"
done
EOF
"$vmtest" --host-root --timeout 600 --quiet --append no_timer_check --script "$tmp/guest.sh" \
  --log "$tmp/console" >"$tmp/vmtest.out" 2>&1
rc=$?
cat "$tmp/vmtest.out"
tr -d '\r' <"$tmp/console" | grep '^QLAT' >"$tmp/out"
grep -E '^QLAT [a-z]+ (rc=|err: VM)' "$tmp/out"
fails=0
[[ $rc -eq 0 ]] || { echo "FAIL: vmtest exited $rc"; fails=1; tail -n 30 "$tmp/console"; }
python3 - "$tmp/out" <<'PY' || fails=1
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
fails = 0
def check(c, what):
    global fails
    print(("ok: " if c else "FAIL: ") + what)
    fails += not c
for b in ("fentry", "kprobe"):
    err = [l.split(" err: ", 1)[1] for l in lines if l.startswith(f"QLAT {b} err: ")]
    js = [json.loads(l.split(" json: ", 1)[1]) for l in lines if l.startswith(f"QLAT {b} json: ")]
    check(f"QLAT {b} rc=0" in lines, f"{b}: tracer exit 0")
    check(any("not attached: iomap_dio_rw_begin" in l for l in err),
          f"{b}: no iomap DIO tracepoints here: DIO begin/end come from function hooks")
    vm = [m.group(1) for l in err for m in [re.match(r"VM (pid-\d+) \(pid \d+, \d+ threads\)", l)] if m]
    check(bool(vm), f"{b}: the QEMU-named process was found ({sorted(set(vm))})")
    check(any(re.match(r"VM pid-\d+ \(pid \d+\) exited", l) for l in err), f"{b}: and its exit reported")
    check(len(js) == 1, f"{b}: one vm_stats summary line")
    if not js or not vm:
        continue
    rows = [r for r in js[0]["vms"] if r["image"] == "/mnt/img.raw"]
    check(len(rows) == 1, f"{b}: a row for the image /mnt/img.raw")
    lh = js[0].get("latency_hist", {})
    check(lh.get("source") == "kernel" and lh.get("dropped") == 0, f"{b}: kernel histograms, none dropped ({lh})")
    for r in rows:
        lat = r["read_latency"]
        print(f"    {b}: reads={r['reads']} read latency count={lat['count']} p50={lat['p50_ns']} "
              f"p99={lat['p99_ns']} max={lat['max_ns']} ns")
        check(r["reads"] > 100, f"{b}: O_DIRECT reads counted ({r['reads']})")
        check(lat["count"] > 100 and 0 < lat["p50_ns"] <= lat["p99_ns"] <= lat["max_ns"],
              f"{b}: read latency from the kernel: p50 <= p99 <= max, all > 0")
sys.exit(1 if fails else 0)
PY
if ((fails)); then echo "test_vm_qemu_latency: FAIL"; exit 1; fi
echo "test_vm_qemu_latency: PASS"
