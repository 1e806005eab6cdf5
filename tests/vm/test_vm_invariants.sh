#!/usr/bin/env bash
# VM tier: the buffered-fallback writers and the invariant detectors on a guest kernel with
# function hooks, once with --backend fentry and once with --backend kprobe
# (scripts/vm/run-integration, one boot each, device-mapper modules loaded):
#   test_fallback_writers  write-only O_DIRECT writers (fio psync/pvsync2/libaio/io_uring, a
#                          changing buffer, unaligned dd) into checksummed and nocow files: on
#                          6.1 aligned writes to checksummed files go direct (no fallback), only
#                          the unaligned ones fall back, seen by the function hook on
#                          btrfs_do_write_iter() (6.1 inlines btrfs_direct_write); on 6.12 the
#                          hook is btrfs_direct_write() itself
#   test_device_errors     dm error/flakey targets fail every I/O: the EIO requests are seen and
#                          no invariant fires
#   test_csum_direct_trigger  a checksum failure on data a direct write stored 2 s before (no
#                          other trigger): the --events dio-csum-after-direct-write finding
#                          findings only (the csum_direct trigger); a buffered rewrite is silent;
#                          with the trigger off, not the --events findings. Only on the default
#                          kernel (6.1): elsewhere writes to checksummed files fall back
#   test_acked_ioerr_trigger  an ordered extent that fails after its write returned (simulated at
#                          removal): the --events dio-acked-unbacked findings findings only (the
#                          acked_ioerr trigger). In the guest only that run and the one with the
#                          race of a write's return and its extent's failure made likelier
#                          (BDT_ACKED_RUNS="on race": the kernel's part, when writes return and
#                          extents fail; the completion spins 3 ms, BDT_ACKED_SPIN_US: TCG runs
#                          the kernel ~100x slower than the host's 300 us assume), 20 + 10 files
#                          (BDT_ACKED_FILES=20); the host also runs it with the trigger off and
#                          with table slots taken, 60 + 30 files
# The guest kernel is the VM tier's default (Debian 6.1); BDT_VM_KERNEL_PKG selects another
# (linux-image-6.12-cloud-amd64: Debian 12's 6.12 LTS). Fails if any test fails or skips in the
# guest; exit 77 (SKIPPED: reason) when the VM tier, root or the build are missing.
#   tests/vm/test_vm_invariants.sh [BUILD_DIR]
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
vm_init "${1:-}"
vm_need_bin
vm_need_root "the guest runs with --host-root, which needs root"
vm_need_cmd dmsetup "dmsetup not installed (the guest uses the host's)"
vm_check
tests=(test_fallback_writers test_device_errors test_acked_ioerr_trigger)
[[ -z ${BDT_VM_KERNEL_PKG:-} ]] && tests+=(test_csum_direct_trigger)
fails=0
for be in fentry kprobe; do
  vm_itests "$be" "${tests[*]} passed in the guest (${BDT_VM_KERNEL_PKG:-default kernel})" \
    --module dm_mod --module dm_flakey --env BDT_ACKED_FILES=20 --env "BDT_ACKED_RUNS=on race" \
    --env BDT_ACKED_SPIN_US=3000 -- "${tests[@]}" ||
    fails=$((fails + 1))
done
exit $((fails > 0))
