# Run by the guest's busybox sh (scripts/vmtest --script) of tests/integration/test_qemu_attach.sh:
# O_DIRECT reads, writes, reads on the raw virtio disk (the host image), then the VM powers off.
set -e
N=${GUEST_BLOCKS:-64}
dd if=/dev/vda of=/dev/null bs=64k count="$N" iflag=direct 2>/dev/null
dd if=/dev/urandom of=/tmp/pattern bs=64k count="$N" 2>/dev/null
dd if=/tmp/pattern of=/dev/vda bs=64k count="$N" oflag=direct 2>/dev/null
dd if=/dev/vda of=/tmp/back bs=64k count="$N" iflag=direct 2>/dev/null
cmp /tmp/pattern /tmp/back
echo "guest-dio: $N blocks of 64 KiB read, written, read back with O_DIRECT on /dev/vda"
