#!/usr/bin/env bash
# --cgroup PATH: the in-kernel cgroup v2 filter. A dd inside a fresh cgroup (as a libvirt machine
# scope would hold a QEMU) and a dd in a child of it are traced; the same dd outside is not.
# Bad input: a path that does not exist, and a directory that is not cgroup v2, are exit 1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init cgroup
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"

# The cgroup v2 hierarchy: wherever it is mounted (/sys/fs/cgroup on a unified host,
# /sys/fs/cgroup/unified on a hybrid one); else mount one for the test.
CG_ROOT=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
CG_MOUNTED=
if [[ -z $CG_ROOT ]]; then
    CG_ROOT=$ITEST_TMP/cgroup2
    mkdir -p "$CG_ROOT"
    mount -t cgroup2 none "$CG_ROOT" || skip "no cgroup v2 hierarchy and cannot mount one"
    CG_MOUNTED=1
fi
CG=$CG_ROOT/bdt-itest-cgroup-$$
mkdir -p "$CG/child" || skip "cannot create a cgroup under $CG_ROOT"
# Cleanups run in order: the child first (a cgroup with children cannot be removed), the
# mount (if this test made it) last.
ITEST_CLEANUPS+=("rmdir '$CG/child' 2>/dev/null" "rmdir '$CG' 2>/dev/null")
[[ -n $CG_MOUNTED ]] && ITEST_CLEANUPS+=("umount '$CG_ROOT'")
echo "cgroup: $CG"

IN=$SCRATCH_NOCOW/in CHILD=$SCRATCH_NOCOW/child OUTSIDE=$SCRATCH_NOCOW/outside
for f in "$IN" "$CHILD" "$OUTSIDE"; do touch "$f"; chattr +C "$f"; done

OUT=$ITEST_TMP/cg.jsonl
start_tracer "$OUT" --events --format json --mount "$SCRATCH_MNT" --cgroup "$CG"
# Each writer joins its cgroup first, then execs dd (so dd's own I/O is in the cgroup).
sh -c 'echo $$ >"$1/cgroup.procs" && exec dd if=/dev/zero of="$2" bs=4k count=8 oflag=direct status=none' \
    _ "$CG" "$IN" || fail "dd in the cgroup failed"
sh -c 'echo $$ >"$1/cgroup.procs" && exec dd if=/dev/zero of="$2" bs=4k count=6 oflag=direct status=none' \
    _ "$CG/child" "$CHILD" || fail "dd in the child cgroup failed"
dd if=/dev/zero of="$OUTSIDE" bs=4k count=5 oflag=direct status=none || fail "dd outside failed"
stop_tracer || fail "tracer exited non-zero: $(tail -3 "$OUT.err")"

ITEST_DIR=$(dirname "$0") python3 - "$OUT" "$IN" "$CHILD" "$OUTSIDE" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import os, sys
sys.path.insert(0, os.environ["ITEST_DIR"])
from bdtcheck import load, Checker
out, fin, fchild, fout = sys.argv[1:5]
ev, _, _ = load(out)
c = Checker()
begins = [e for e in ev if e["type"] == "dio_begin"]
def n(path):
    ino = os.stat(path).st_ino
    return len([e for e in begins if e["ino"] == ino and e["write"]])
c.check(n(fin) == 8, f"--cgroup: the 8 writes of the dd inside the cgroup seen (got {n(fin)})")
c.check(n(fchild) == 6, f"--cgroup: the 6 writes of the dd in a child cgroup seen (got {n(fchild)})")
c.check(n(fout) == 0, f"--cgroup: nothing from the same dd outside the cgroup (got {n(fout)})")
c.check(all(e["comm"] == "dd" for e in begins), "--cgroup: every dio_begin is from dd")
c.done()
PY

# Bad input: exit 1 with the reason.
"$BIN" --cgroup "$CG_ROOT/bdt-no-such-cgroup-$$" --duration 1 >"$ITEST_TMP/e1" 2>&1
rc=$?
[[ $rc -eq 1 ]] && grep -q "No such file" "$ITEST_TMP/e1" && pass "--cgroup of a missing path: exit 1: $(cat "$ITEST_TMP/e1")" \
    || fail "--cgroup of a missing path: want exit 1 'No such file', got $rc: $(cat "$ITEST_TMP/e1")"
"$BIN" --cgroup "$ITEST_TMP" --duration 1 >"$ITEST_TMP/e2" 2>&1
rc=$?
[[ $rc -eq 1 ]] && grep -q "not a cgroup v2 directory" "$ITEST_TMP/e2" && pass "--cgroup of a non-cgroup directory: exit 1: $(cat "$ITEST_TMP/e2")" \
    || fail "--cgroup of a non-cgroup directory: want exit 1 'not a cgroup v2 directory', got $rc: $(cat "$ITEST_TMP/e2")"
itest_finish
