#!/usr/bin/env bash
# The write buffer's VMA as dio_begin reports it (buf_shared, buf_writable, buf_file_ino/off) when
# one thread's buffers keep the same address while what is mapped there changes: the programs
# keep each thread's last VMA (bpf/dio.bpf.h buf_vma(), valid while the address space's
# mm_lock_seq does not move) and must not report a mapping that is gone.
# One thread, one address A, five O_DIRECT pwrite()s of 4 KiB to a nocow file, in order:
#   1 A    private anonymous read-write memory
#   2 A+4K the same mapping (the cached VMA)
#   3 A    a MAP_SHARED|MAP_FIXED read-write mapping of another file G replaced it
#   4 A+4K mprotect(PROT_READ) of that mapping
#   5 A    anonymous memory again (MAP_FIXED)
# Expected, in this order: anon/private/writable twice; G's inode (off 0) shared+writable; G's
# inode (off 4096) shared, not writable; anon/private/writable.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init buf-vma

scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
F=$SCRATCH_NOCOW/f G=$SCRATCH_MNT/g
touch "$F" && chattr +C "$F" && dd if=/dev/zero of="$F" bs=64k count=1 status=none
dd if=/dev/urandom of="$G" bs=64k count=1 status=none && sync

OUT=$ITEST_TMP/trace.jsonl
start_tracer "$OUT" --events --format json --mount "$SCRATCH_MNT"
python3 - "$F" "$G" <<'PY' || fail "workload failed"
import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
RW = mmap.PROT_READ | mmap.PROT_WRITE
FIXED = 0x10
N = 65536
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_DIRECT)
g = os.open(sys.argv[2], os.O_RDWR)

def mp(addr, prot, flags, f):
    a = libc.mmap(addr, N, prot, flags, f, 0)
    if a in (None, ctypes.c_void_p(-1).value):
        sys.exit(f"mmap: {os.strerror(ctypes.get_errno())}")
    return a

def write(addr, pos):
    buf = (ctypes.c_char * 4096).from_address(addr)
    if os.pwrite(fd, memoryview(buf).cast("B"), pos) != 4096:
        sys.exit("short write")

a = mp(None, RW, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1)
ctypes.memset(a, 7, N)
write(a, 0)
write(a + 4096, 4096)
mp(a, RW, mmap.MAP_SHARED | FIXED, g)
write(a, 8192)
if libc.mprotect(a, N, mmap.PROT_READ):
    sys.exit("mprotect failed")
write(a + 4096, 12288)
mp(a, RW, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | FIXED, -1)
write(a, 16384)
print(f"wrote 5 x 4 KiB from {a:#x}")
PY
stop_tracer || fail "tracer exited non-zero"

ITEST_DIR=$(dirname "$0") python3 - "$OUT" "$F" "$G" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import os, sys
sys.path.insert(0, os.environ.get("ITEST_DIR", "."))
from bdtcheck import load, Checker
out, f, g = sys.argv[1:4]
ev, findings, others = load(out)
c = Checker()
ino_f, ino_g = os.stat(f).st_ino, os.stat(g).st_ino
w = [e for e in ev if e["type"] == "dio_begin" and e["write"] and e["ino"] == ino_f]
c.check(len(w) == 5, f"5 O_DIRECT writes to the file traced, got {len(w)}")
want = [(0, 0, False, True), (4096, 0, False, True), (8192, ino_g, True, True),
        (12288, ino_g, True, False), (16384, 0, False, True)]
for i, (pos, ino, shared, writable) in enumerate(want):
    got = [e for e in w if e["pos"] == pos]
    if not got:
        c.check(False, f"write {i + 1} at {pos}: traced")
        continue
    e = got[0]
    have = (e.get("buf_file_ino", 0), bool(e.get("buf_shared")), bool(e.get("buf_writable")))
    c.check(have == (ino, shared, writable),
            f"write {i + 1} at {pos}: buffer (file ino, shared, writable) {(ino, shared, writable)}, got {have}")
    if ino:
        off = 0 if pos == 8192 else 4096
        c.check(e.get("buf_file_off") == off, f"write {i + 1}: buffer at offset {off} of the file, got {e.get('buf_file_off')}")
c.done()
PY
itest_finish
