#!/usr/bin/env bash
# Fault test: a QEMU process SIGKILLed mid-I/O while `trace --qemu --metrics-addr` traces it.
# Three stand-in VMs (fio run as `qemu-system-x86_64 --name vm-X`: argv[0] makes it QEMU, `--name`
# names the VM, its open O_DIRECT file is the image; --thread keeps every job in one process;
# traced with --qemu --pid for each, so that other QEMUs on the machine do not count) do
# direct I/O on nocow images of a scratch btrfs: vm-aio (libaio, 16 in flight) and vm-uring
# (io_uring, 16 in flight) are SIGKILLed while their request counters are growing; vm-sync (psync)
# keeps going. Then:
#   - the tracer neither crashes nor stops: "VM vm-aio (pid N) exited" (and vm-uring) once each,
#     nothing else on stderr, vm-sync's requests keep being counted, exit 0 on SIGINT;
#   - metrics (docs/metrics.md): qemu_vms drops from 3 to 1; the killed VMs' series stay with at
#     least the values scraped before the kill and never decrease (sticky series);
#   - nothing of the killed processes is left in the kernel: no pid_filter entry and no lat_hist
#     key for their pids (bpftool map dump of the tracer's maps);
#   - the summary has a row for each of the three VMs; no programs, pins, mounts left.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
command -v fio >/dev/null || skip "fio not installed"
command -v bpftool >/dev/null || skip "bpftool not installed"
itest_init fault-qemu-kill
scratch_btrfs_setup 2G || die "scratch btrfs setup failed"
PORT=$((20000 + RANDOM % 20000))

declare -A VMPID=()
kill_vms() { local p; for p in "${VMPID[@]}"; do kill -KILL "$p" 2>/dev/null; done; }
ITEST_CLEANUPS+=("kill_vms")

start_vm() { # NAME ENGINE DEPTH
    local img=$SCRATCH_NOCOW/$1.raw
    fallocate -l 64M "$img" || die "cannot create $img"
    (exec -a qemu-system-x86_64 fio --name "$1" --thread --filename="$img" --direct=1 \
        --ioengine="$2" --iodepth="$3" --rw=randrw --bs=4k --size=64M --time_based --runtime=60 \
        --output=/dev/null) >"$ITEST_TMP/$1.out" 2>&1 &
    VMPID[$1]=$!
}
start_vm vm-aio libaio 16
start_vm vm-uring io_uring 16
start_vm vm-sync psync 1
# --pid for each: QEMUs of other users of this machine (the VM tier's) are not counted
OUT=$ITEST_TMP/trace.jsonl
start_tracer "$OUT" --qemu --format json --metrics-addr "127.0.0.1:$PORT" \
    -p "${VMPID[vm-aio]}" -p "${VMPID[vm-uring]}" -p "${VMPID[vm-sync]}"

scrape() { python3 - "$PORT" "$@" <<'PY'
# prints "NAME{labels} value" lines of the qemu series (no buckets)
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
for l in body.splitlines():
    if l.startswith("btrfs_dio_trace_qemu") and "_bucket" not in l:
        print(l)
PY
}
# value NAME_WITH_LABELS FILE
value() { awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print "none" }' "$2"; }
req() { echo "btrfs_dio_trace_qemu_requests_total{vm=\"$1\",image=\"$SCRATCH_NOCOW/$1.raw\",direction=\"write\"}"; }

# Wait until the tracer counts all three VMs and every one's writes are growing.
ok=
for _ in $(seq 100); do
    scrape >"$ITEST_TMP/s1" 2>/dev/null
    if [[ $(value btrfs_dio_trace_qemu_vms "$ITEST_TMP/s1") == 3 ]] &&
        ! grep -q none <(for v in vm-aio vm-uring vm-sync; do value "$(req $v)" "$ITEST_TMP/s1"; done); then
        ok=1
        break
    fi
    sleep 0.2
done
[[ -n $ok ]] || die "the tracer did not start counting the three VMs: $(cat "$OUT.err"; cat "$ITEST_TMP/s1")"
sleep 0.5
scrape >"$ITEST_TMP/s2"
# The kill, right after a scrape that shows the killed VMs' I/O still growing.
grew=()
for v in vm-aio vm-uring; do
    a=$(value "$(req $v)" "$ITEST_TMP/s1")
    b=$(value "$(req $v)" "$ITEST_TMP/s2")
    grew+=("$v: $a -> $b writes in 0.5 s")
    awk -v a="$a" -v b="$b" 'BEGIN { exit !(b > a) }' || fail "$v was not doing I/O before the kill ($a -> $b)"
done
kill -0 "${VMPID[vm-aio]}" && kill -0 "${VMPID[vm-uring]}" || die "a stand-in VM ended before the kill"
KILLED="${VMPID[vm-aio]} ${VMPID[vm-uring]}"
# (stderr: not the shell's "Killed" job notices)
{ kill -KILL $KILLED; wait $KILLED; } 2>/dev/null
pass "killed vm-aio and vm-uring (SIGKILL) mid-I/O (${grew[*]})"

# The watcher notices at its next /proc scan (every second, later under load: up to 30 s here).
for _ in $(seq 300); do
    [[ $(grep -c "^VM vm-\(aio\|uring\) (pid [0-9]*) exited$" "$OUT.err") -ge 2 ]] && break
    sleep 0.1
done
kill -0 "$TRACER_PID" 2>/dev/null && pass "the tracer is still running after the kills" ||
    die "the tracer died: $(cat "$OUT.err")"
for v in vm-aio vm-uring; do
    n=$(grep -c "^VM $v (pid ${VMPID[$v]}) exited$" "$OUT.err")
    [[ $n -eq 1 ]] && pass "\"VM $v (pid ${VMPID[$v]}) exited\" said once" ||
        fail "\"VM $v (pid ${VMPID[$v]}) exited\" said $n times: $(cat "$OUT.err")"
done
grep -q "^VM vm-sync (pid [0-9]*) exited" "$OUT.err" && fail "vm-sync reported as exited"
sleep 1.5
scrape >"$ITEST_TMP/s3"

# The kernel's state for the dead pids: pid filter and latency keys gone.
PYTHONPATH=$SRC_DIR/scripts/lib python3 - "$TRACER_PID" $KILLED <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import sys
import bpf_maps
tracer, killed = int(sys.argv[1]), {int(p) for p in sys.argv[2:]}
mine = {m["name"]: m["id"] for m in bpf_maps.maps(tracer) if m.get("name")}
fails = 0
for name in ("pid_filter", "lat_hist"):
    if name not in mine:
        print(f"FAIL: the tracer's {name} map not found among {sorted(mine)}"); fails += 1; continue
    dump = bpf_maps.dump(mine[name], check=True)
    def pid_of(e):
        f = e.get("formatted", {}).get("key")
        if isinstance(f, dict): return int(f["pid"])
        if isinstance(f, int): return f
        return int.from_bytes(bytes(int(b, 16) for b in e["key"][:4]), "little")
    pids = [pid_of(e) for e in dump]
    left = sorted(set(pids) & killed)
    print(("ok: " if not left else "FAIL: ") + f"{name}: {len(pids)} entries, none for the killed pids" +
          (f" (left: {left})" if left else ""))
    fails += bool(left)
    if name == "pid_filter":
        ok = len(set(pids)) == 1
        print(("ok: " if ok else "FAIL: ") + f"pid_filter holds only the running VM ({sorted(set(pids))})"); fails += not ok
sys.exit(1 if fails else 0)
PY
sleep 1
scrape >"$ITEST_TMP/s4"
stop_tracer && pass "tracer exit 0 after the kills" || fail "tracer exited non-zero: $(cat "$OUT.err")"
{ kill -KILL "${VMPID[vm-sync]}"; wait "${VMPID[vm-sync]}"; } 2>/dev/null
VMPID=()
other=$(grep -v -e "^VM vm-[a-z]* (pid [0-9]*" -e "^  " -e "Ctrl-C to stop" -e "^btrfs-dio-trace: tracing" \
    -e "no QEMU process is running" "$OUT.err" | grep -iE "error|fail|cannot|abort|terminate|warn" || true)
[[ -z $other ]] && pass "no error lines on stderr" || fail "stderr: $other"

python3 - "$ITEST_TMP" "$SCRATCH_NOCOW" "$OUT" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, sys
tmp, nocow, out = sys.argv[1:]
fails = 0
def check(c, what):
    global fails
    print(("ok: " if c else "FAIL: ") + what)
    fails += not c
def load(n):
    d = {}
    for l in open(f"{tmp}/{n}"):
        if not l.startswith("#"):
            k, v = l.rsplit(" ", 1)
            d[k] = float(v)
    return d
s2, s3, s4 = load("s2"), load("s3"), load("s4")
check(s2.get("btrfs_dio_trace_qemu_vms") == 3 and s3.get("btrfs_dio_trace_qemu_vms") == 1,
      f"qemu_vms: {s2.get('btrfs_dio_trace_qemu_vms')} before the kills, {s3.get('btrfs_dio_trace_qemu_vms')} after")
def req(vm, d="write"):
    return f'btrfs_dio_trace_qemu_requests_total{{vm="{vm}",image="{nocow}/{vm}.raw",direction="{d}"}}'
for vm in ("vm-aio", "vm-uring"):
    keys = [k for k in s2 if f'vm="{vm}"' in k and "_total" in k]
    gone = [k for k in keys if k not in s4]
    down = [k for k in keys if k in s4 and s4[k] < s2[k]]
    check(keys and not gone and not down,
          f"{vm}: its {len(keys)} counter series stay after it exited, none lower than before the kill "
          f"(writes {s2.get(req(vm))} -> {s4.get(req(vm))}; gone {gone[:2]}, lower {down[:2]})")
    check(s3.get(req(vm)) == s4.get(req(vm)), f"{vm}: and stay still once it is gone ({s3.get(req(vm))} = {s4.get(req(vm))})")
check(s4.get(req("vm-sync"), 0) > s3.get(req("vm-sync"), 0) > s2.get(req("vm-sync"), 0),
      f"vm-sync's writes keep being counted ({s2.get(req('vm-sync'))} -> {s3.get(req('vm-sync'))} -> {s4.get(req('vm-sync'))})")
objs = [json.loads(l) for l in open(out) if l.strip()]
st = [o for o in objs if o.get("type") == "vm_stats" and "interval_s" not in o]
rows = {r["vm"]: r for r in st[-1]["vms"]} if st else {}
check(set(rows) >= {"vm-aio", "vm-uring", "vm-sync"} and all(rows[v]["writes"] > 0 for v in ("vm-aio", "vm-uring", "vm-sync")),
      "the summary has a row with writes for each VM: " + ", ".join(f"{v} {r.get('writes')} writes" for v, r in sorted(rows.items())))
check(any(o.get("type") == "summary" for o in objs), "a summary line was printed")
sys.exit(1 if fails else 0)
PY
itest_finish
