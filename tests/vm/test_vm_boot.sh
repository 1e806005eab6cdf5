#!/usr/bin/env bash
# VM tier smoke test: scripts/vmtest boots the Debian kernel under QEMU/TCG,
# btrfs is mounted at /mnt in the guest, module BTF and btrfs symbols are
# there, the guest command's exit status comes back, and a timeout is
# reported as 124. Exits 77 (skipped, said loudly) when QEMU or the kernel
# package cannot be had.
#   tests/vm/test_vm_boot.sh [BUILD_DIR]   (BUILD_DIR is not needed)
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
vm_init ""
vm_check
echo "$check"

out=$(mktemp /tmp/bdt-vm-boot.XXXXXX)
trap 'rm -f "$out"' EXIT
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

if ((fails)); then echo "test_vm_boot: $fails failure(s)"; exit 1; fi
echo "test_vm_boot: PASS"
