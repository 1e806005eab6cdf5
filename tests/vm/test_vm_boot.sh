#!/usr/bin/env bash
# VM tier smoke test: scripts/vmtest boots the Debian kernel under QEMU/TCG,
# btrfs is mounted at /mnt in the guest, module BTF and btrfs symbols are
# there, the guest command's exit status comes back, a timeout is reported
# as 124, a bad mount option as 123, and the console shows the kernel's stack
# dumps (KERN_DEFAULT: sysrq l's NMI backtraces) but not KERN_INFO, and a soft
# lockup line stops the guest after --bug-grace with 125 (scripts/vmtest
# watching its console; tests/vm/test_vm_harness.sh tests that watcher without
# a guest). Exits 77 (skipped, said loudly) when QEMU or the kernel package
# cannot be had.
#   tests/vm/test_vm_boot.sh [BUILD_DIR]   (BUILD_DIR is not needed)
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
vm_init ""
vm_check
echo "$check"

out=$(mktemp /tmp/bdt-vm-boot.XXXXXX)
trap 'rm -f "$out" "$out.log"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# 1. Boot, check the guest, and return a distinctive status.
start=$(date +%s)
"$vmtest" --timeout 180 --run '
grep -q "^/dev/vda /mnt btrfs " /proc/mounts && echo "CHECK: btrfs mounted at /mnt"
test -s /sys/kernel/btf/vmlinux && echo "CHECK: vmlinux BTF present"
test -s /sys/kernel/btf/btrfs && echo "CHECK: btrfs module BTF present"
grep -q " btrfs_get_extent\s*\[btrfs\]" /proc/kallsyms && echo "CHECK: btrfs_get_extent in kallsyms"
test -d /sys/kernel/tracing/events/btrfs && echo "CHECK: btrfs tracepoints in tracefs"
grep -q " /sys/fs/bpf bpf " /proc/mounts && echo "CHECK: bpffs mounted"
echo hello >/mnt/f && sync && test "$(cat /mnt/f)" = hello && echo "CHECK: write+read on /mnt"
exit 42' >"$out" 2>&1
rc=$?
cat "$out"
echo "test_vm_boot: boot+check+poweroff took $(( $(date +%s) - start )) s"
[[ $rc -eq 42 ]] || fail "vmtest exited $rc, expected the guest command's status 42"
for c in "btrfs mounted at /mnt" "vmlinux BTF present" "btrfs module BTF present" \
         "btrfs_get_extent in kallsyms" "btrfs tracepoints in tracefs" "bpffs mounted" \
         "write+read on /mnt"; do
  grep -q "^CHECK: $c" "$out" || fail "guest check missing: $c"
done
grep -q "^BDT-VM: READY kernel 6\." "$out" || fail "no READY line"

# 2. The hard timeout is reported as 124 and QEMU is gone afterwards.
"$vmtest" --quiet --timeout 3 --run 'sleep 600' >"$out" 2>&1
rc=$?
cat "$out"
[[ $rc -eq 124 ]] || fail "a 3 s timeout exited $rc, expected 124"
grep -q "timeout" "$out" || fail "no timeout reason printed"

# 3. A guest setup failure (bad mount option) is 123 with the reason.
"$vmtest" --quiet --timeout 180 --mount-opts no-such-option --run 'true' >"$out" 2>&1
rc=$?
cat "$out"
[[ $rc -eq 123 ]] || fail "a bad mount option exited $rc, expected 123"
grep -q "guest setup failed: mount" "$out" || fail "no setup-failure reason printed"

# 4. Stack dumps on the console, and a guest kernel failure ends the run: sysrq l prints each busy
#    CPU's stack (NMI backtrace, KERN_DEFAULT, as a soft lockup report with the other CPUs'
#    stacks does); /dev/kmsg lines at KERN_INFO, KERN_WARNING and no level (KERN_DEFAULT); then
#    a soft lockup line: the guest is stopped 3 s later (--bug-grace), not at --timeout.
start=$(date +%s)
"$vmtest" --quiet --timeout 180 --bug-grace 3 --log "$out.log" --run '
echo "<6>bdt-check: info level" >/dev/kmsg
echo "<4>bdt-check: warning level" >/dev/kmsg
echo "bdt-check: default level" >/dev/kmsg
echo l >/proc/sysrq-trigger
sleep 2
echo "<0>watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [bdt-check:1]" >/dev/kmsg
sleep 600' >"$out" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
cat "$out"
echo "test_vm_boot: the kernel failure run took $took s"
[[ $rc -eq 125 ]] || fail "a soft lockup line on the console exited $rc after $took s, expected 125"
grep -q '^vmtest: guest kernel soft lockup: .*\[bdt-check:1\] (QEMU stopped 3 s after it; ' "$out" ||
  fail "no 'guest kernel soft lockup' with the line and how the guest was stopped"
tr -d '\r' <"$out.log" >"$out"
# The CPU that runs the echo prints "NMI backtrace for cpu N" and its stack (dump_stack); an idle
# one only "NMI backtrace for cpu N skipped: idling at ...".
grep -qE '\] NMI backtrace for cpu [0-9]+$' "$out" || fail "no 'NMI backtrace for cpu N' (KERN_WARNING) on the console"
grep -A40 -E '\] NMI backtrace for cpu [0-9]+$' "$out" | grep -qE '\] Call Trace:$' ||
  fail "no stack (KERN_DEFAULT) after the NMI backtrace header on the console"
grep -q 'bdt-check: warning level' "$out" || fail "a KERN_WARNING line is not on the console"
grep -q 'bdt-check: default level' "$out" || fail "a line without a level (KERN_DEFAULT) is not on the console"
grep -q 'bdt-check: info level' "$out" && fail "a KERN_INFO line is on the console (loglevel too high)"
((fails)) && { echo "the console from the sysrq on:"; sed -n '/sysrq/,$p' "$out" | head -n 60; }

if ((fails)); then echo "test_vm_boot: $fails failure(s)"; exit 1; fi
echo "test_vm_boot: PASS"
