#!/usr/bin/env bash
# VM tier: `scripts/vmtest --host-root` runs the command chrooted into the
# host's / (virtiofs, read-only, tmpfs overlay) on the guest's kernel: the
# source tree and the host's python3 are there, the btrfs is at /mnt, tracefs
# is inside, and a write to the overlay never reaches the host. Exits 77
# (skipped, said loudly) when QEMU, virtiofsd, root or the kernel are missing.
#   tests/vm/test_vm_host_root.sh [BUILD_DIR]   (BUILD_DIR is not needed)
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
vm_init ""
vm_check --host-root
command -v python3 >/dev/null || { echo "SKIPPED: no python3 on the host to run in the guest"; exit 77; }

marker=/var/tmp/bdt-vm-host-root-$$     # the guest writes it in its overlay only
rm -f "$marker"
out=$(mktemp /tmp/bdt-vm-hostroot.XXXXXX)
trap 'rm -f "$out" "$marker"' EXIT
"$vmtest" --host-root --timeout 180 --run "
cd $(printf %q "$src") && test -f scripts/vmtest && echo 'CHECK: source tree visible'
python3 -c 'import platform; print(\"CHECK: python3 runs on\", platform.release())'
grep -q '^/dev/vda /mnt btrfs ' /proc/mounts && echo 'CHECK: btrfs at /mnt'
test -d /sys/kernel/tracing/events/btrfs && echo 'CHECK: tracefs inside'
test -s /sys/kernel/btf/btrfs && echo 'CHECK: module BTF inside'
echo x > $marker && echo 'CHECK: overlay writable'
exit 0" >"$out" 2>&1
rc=$?
cat "$out"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
[[ $rc -eq 0 ]] || fail "vmtest --host-root exited $rc"
for c in "source tree visible" "python3 runs on 6.1." "btrfs at /mnt" "tracefs inside" \
         "module BTF inside" "overlay writable"; do
  grep -q "^CHECK: $c" "$out" || fail "guest check missing: $c"
done
[[ -e $marker ]] && fail "the guest's write reached the host ($marker)"
if ((fails)); then echo "test_vm_host_root: $fails failure(s)"; exit 1; fi
echo "test_vm_host_root: PASS"
