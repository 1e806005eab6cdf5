#!/usr/bin/env bash
# VM tier: the flight recorder read out of a crashed kernel's memory
# (`dump --vmcore`, docs/flight-recorder.md "After a kernel crash").
#  1. A Debian 6.1 (or 6.12) guest (--host-root) runs the tracer with --backend fentry and
#     the recorder pinned; a process named crashmark makes 64 O_DIRECT writes of
#     64 KiB to a nocow file and then panics the kernel itself (sysrq c). scripts/vmtest
#     --dump-on-panic stops the guest and dumps its memory over QMP (ELF).
#     `dump --vmcore --format json` shows the 64 writes' dio_begin in order, with
#     the process name, pid and inode the guest printed, the last one within
#     seconds before the panic; `replay -` reads that output.
#  2. The same dump with one bit flipped in the record of every 8th crashmark
#     slot (which only the slot's check can see) and in the seq_end of every
#     8th from the 5th (torn): those writes are dropped and counted (damaged,
#     torn), every other one is still there, in order.
#  3. A guest that panics with no tracer: `dump --vmcore` says there is no
#     recorder, exit 1.
# BDT_VM_KERNEL=6.12 runs it on Debian 12's 6.12 kernel (the default run: 6.1).
# Exit 77 (SKIPPED: reason) when QEMU, the kernel package, root or the build are missing.
#   [BDT_VM_KERNEL=6.1|6.12] tests/vm/test_vm_crashdump.sh [BUILD_DIR]
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
vm_init "${1:-}"
vm_need_bin
vm_need_root "--host-root needs root"
vm_need_cmd python3 "python3 is needed (QMP client, JSON checks)"
vm_check --kernel "$kernel" --host-root

work=$(mktemp -d "${BDT_VM_CACHE:-/tmp}/crashdump.XXXXXX")   # two memory dumps of --mem each
guest=$(mktemp "$build/.vm-crashdump-guest.XXXXXX.sh")      # the guest sees the host's / read-only
trap 'rm -rf "$work" "$guest"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok   $*"; }

cat >"$guest" <<GUEST
#!/bin/bash
BIN=$bin
GUEST
cat >>"$guest" <<'GUEST'
set -u
cd /tmp
stat -f -c %T /sys/fs/bpf 2>/dev/null | grep -q bpf || mount -t bpf bpf /sys/fs/bpf
"$BIN" --backend fentry --mount /mnt --pin-dir /sys/fs/bpf/bdt --recorder-events 4096 >/tmp/t.out 2>/tmp/t.err &
for _ in $(seq 1 240); do grep -q "Ctrl-C" /tmp/t.err 2>/dev/null && break; sleep 0.5; done
grep -q "Ctrl-C" /tmp/t.err || { echo "CRASH tracer not ready"; cat /tmp/t.err; exit 1; }
# nocow: the writes go direct on both kernels (6.12.118 and 6.15+ turn O_DIRECT writes to a
# checksummed file into buffered ones, which make no dio_begin)
touch /mnt/crash.dat && chattr +C /mnt/crash.dat || { echo "CRASH chattr +C failed"; exit 1; }
python3 - <<'PY'
import ctypes, mmap, os, time
ctypes.CDLL(None).prctl(15, b"crashmark", 0, 0, 0)  # PR_SET_NAME: the comm the records carry
fd = os.open("/mnt/crash.dat", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
buf = mmap.mmap(-1, 65536)
buf.write(b"c" * 65536)
print("CRASH pid", os.getpid(), "ino", os.fstat(fd).st_ino, flush=True)
for i in range(64):
    os.pwrite(fd, buf, i * 65536)
print("CRASH wrote 64, realtime", time.time_ns(), flush=True)
with open("/proc/sysrq-trigger", "w") as f:
    f.write("c")
PY
echo "CRASH still alive after sysrq c"
exit 1
GUEST

t0=$(date +%s)
"$vmtest" --kernel "$kernel" --host-root --timeout 600 --mem 768M --append loglevel=1 --dump-on-panic "$work/crash.core" \
  --run "bash $guest" >"$work/guest.out" 2>&1
rc=$?
grep -E "^CRASH|^vmtest:|Kernel panic" "$work/guest.out"
[[ $rc -eq 0 && -s $work/crash.core ]] || fail "vmtest --dump-on-panic exited $rc without a dump"
echo "guest run and dump: $(( $(date +%s) - t0 )) s"

if [[ -s $work/crash.core ]]; then
  t1=$(date +%s.%N)
  "$bin" dump --vmcore "$work/crash.core" --format json >"$work/dump.json" 2>"$work/dump.err"
  drc=$?
  echo "dump --vmcore: exit $drc, $(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
  cat "$work/dump.err"
  [[ $drc -eq 0 ]] || fail "dump --vmcore exited $drc"
  "$bin" replay - <"$work/dump.json" >"$work/replay.out" 2>&1 || fail "replay - of dump --vmcore's JSON failed: $(tail -3 "$work/replay.out")"
  python3 - "$work/guest.out" "$work/dump.json" "$work/crash.core" <<'PY' || fails=$((fails + 1))
import json, re, struct, sys
out, dump, core = sys.argv[1:4]
text = open(out, errors="replace").read()
m = re.search(r"CRASH pid (\d+) ino (\d+)", text)
r = re.search(r"CRASH wrote 64, realtime (\d+)", text)
if not m or not r:
    print("FAIL: the guest did not run the workload"); sys.exit(1)
pid, ino, panic_ns = int(m[1]), int(m[2]), int(r[1])
evs = [e for e in map(json.loads, open(dump)) if "ts_ns" in e]  # not the header line
mine = [e for e in evs if e.get("comm") == "crashmark"]
w = [e for e in mine if e.get("type") == "dio_begin" and e.get("write")]
bad = 0
def check(c, what):
    global bad
    print(("ok   " if c else "FAIL: ") + what)
    bad += not c
check([e["pos"] for e in w] == [i * 65536 for i in range(64)],
      f"64 dio_begin writes by crashmark, in order ({len(w)}: {[e['pos'] // 65536 for e in w][:70]})")
check(all(e.get("pid") == pid and e.get("ino") == ino for e in w), f"pid {pid} and inode {ino} on every one")
ts = [e["ts_ns"] for e in evs]
check(ts == sorted(ts), "events merged in time order")
if w:
    last = w[-1]["wall_ns"]
    check(panic_ns - 10_000_000_000 <= last <= panic_ns + 1_000_000,
          f"the last write {(panic_ns - last) / 1e6:.1f} ms before the workload's realtime reading at the panic")
# 2. corrupt the dump in place (struct bdt_rec_slot, 256 bytes: seq, magic at 8,
#    cpu, instance, check, the record at 32 whose comm is at byte 48, seq_end at 200)
data = open(core, "r+b")
import mmap
mm = mmap.mmap(data.fileno(), 0)
slots, at = [], mm.find(b"crashmark\0")
while at >= 0:
    s = at - 48
    if s >= 0 and s + 256 <= len(mm) and struct.unpack_from("<I", mm, s + 8)[0] == 0x7a5d7b1c:
        seq, seq_end = struct.unpack_from("<Q", mm, s)[0], struct.unpack_from("<Q", mm, s + 200)[0]
        if seq and seq == seq_end:
            slots.append(s)
    at = mm.find(b"crashmark\0", at + 1)
body, torn = slots[::8], slots[4::8]
for s in body:      # a zero byte of the comm's tail: seq and seq_end still agree
    mm[s + 48 + 13] ^= 0x04
for s in torn:
    struct.pack_into("<Q", mm, s + 200, struct.unpack_from("<Q", mm, s + 200)[0] ^ (1 << 20))
flipped = body + torn
mm.flush(); mm.close(); data.close()
open(core + ".flips", "w").write(f"{len(body)} {len(torn)}\n")
print(f"CORRUPTED {len(flipped)} of {len(slots)} crashmark slots")
check(len(slots) >= 64, f"the crashmark records are in the dump as recorder slots ({len(slots)})")
sys.exit(1 if bad else 0)
PY
  "$bin" dump --vmcore "$work/crash.core" --format json >"$work/dump2.json" 2>"$work/dump2.err"
  drc=$?
  cat "$work/dump2.err"
  [[ $drc -eq 0 ]] || fail "dump --vmcore of the damaged dump exited $drc"
  python3 - "$work/dump.json" "$work/dump2.json" "$work/dump2.err" "$work/crash.core.flips" <<'PY' || fails=$((fails + 1))
import json, re, sys
a = [e for e in map(json.loads, open(sys.argv[1])) if "ts_ns" in e]  # not the header line
b = [e for e in map(json.loads, open(sys.argv[2])) if "ts_ns" in e]
err = open(sys.argv[3]).read()
nbody, ntorn = map(int, open(sys.argv[4]).read().split())
key = lambda e: (e["ts_ns"], e["type"], e.get("tid"))
ka, kb = [key(e) for e in a], [key(e) for e in b]
lost = len(ka) - len(kb)
m = re.search(r"(\d+) slots dropped", err)
dropped = int(m[1]) if m else 0
bad = 0
def check(c, what):
    global bad
    print(("ok   " if c else "FAIL: ") + what)
    bad += not c
check(set(kb) <= set(ka) and lost > 0, f"the damaged dump recovers a subset ({len(kb)} of {len(ka)} events)")
check(dropped >= lost, f"the damaged slots are dropped and counted ({dropped} dropped, {lost} events fewer)")
m = re.search(r"(\d+) torn .*, (\d+) damaged", err)
check(bool(m) and int(m[1]) >= ntorn and int(m[2]) >= nbody and lost == nbody + ntorn,
      f"{nbody} records with a flipped bit dropped as damaged, {ntorn} flipped seq_end as torn ({m[0] if m else err})")
wb = [e["pos"] for e in b if e.get("comm") == "crashmark" and e["type"] == "dio_begin" and e.get("write")]
check(wb == sorted(wb) and len(wb) >= 64 - lost, f"the intact writes are there, in order ({len(wb)})")
sys.exit(1 if bad else 0)
PY
fi

# 3. no tracer: the dump has no recorder
rm -f "$work/crash.core"
"$vmtest" --kernel "$kernel" --timeout 300 --mem 768M --append loglevel=1 --dump-on-panic "$work/none.core" \
  --run 'echo c > /proc/sysrq-trigger; exit 1' >"$work/none.out" 2>&1
rc=$?
grep -E "^vmtest:" "$work/none.out"
if [[ $rc -eq 0 && -s $work/none.core ]]; then
  "$bin" dump --vmcore "$work/none.core" >"$work/none.json" 2>"$work/none.err"
  nrc=$?
  cat "$work/none.err"
  [[ $nrc -eq 1 ]] && grep -q "no flight recorder" "$work/none.err" && ok "a dump without a recorder: exit 1, says so" ||
    fail "a dump without a recorder: exit $nrc ($(cat "$work/none.err"))"
else
  fail "the guest without a tracer was not dumped (vmtest exit $rc)"
fi

if ((fails)); then echo "test_vm_crashdump: $fails failure(s)"; exit 1; fi
echo "test_vm_crashdump: PASS"
