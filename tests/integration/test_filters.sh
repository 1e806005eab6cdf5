#!/usr/bin/env bash
# In-kernel filters: --pid traces every thread of one process and nothing else;
# --comm traces only tasks with that name. Expected: the traced process's
# O_DIRECT requests appear, the concurrent decoy's do not.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init filters
command -v fio >/dev/null || skip "fio not installed (scripts/install-deps installs it)"
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"

T=$SCRATCH_NOCOW/target D=$SCRATCH_NOCOW/decoy
for f in "$T" "$D"; do touch "$f"; chattr +C "$f"; dd if=/dev/zero of="$f" bs=1M count=1 status=none; done
sync
DECOY_DD=$ITEST_TMP/decoy-dd
cp "$(command -v dd)" "$DECOY_DD"   # same program, different comm: "decoy-dd"

# --- --pid: a process that waits on a FIFO, then execs fio with 2 threads (numjobs uses
# processes; --thread makes them threads of one process).
FIFO=$ITEST_TMP/go
mkfifo "$FIFO"
bash -c "read -r _ < '$FIFO'; exec fio --name=t --thread --numjobs=2 --filename='$T' --rw=randwrite \
    --bs=4k --size=256k --direct=1 --ioengine=psync --output=/dev/null" &
TARGET_PID=$!
OUT=$ITEST_TMP/pid.jsonl
start_tracer "$OUT" --events --format json --pid "$TARGET_PID"
echo go >"$FIFO" &
"$DECOY_DD" if=/dev/zero of="$D" bs=4k count=32 oflag=direct conv=notrunc status=none
wait "$TARGET_PID" || fail "fio target failed"
stop_tracer || fail "tracer exited non-zero"

ITEST_DIR=$(dirname "$0") python3 - "$OUT" "$TARGET_PID" "$T" "$D" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import os, sys
sys.path.insert(0, os.environ["ITEST_DIR"])
from bdtcheck import load, Checker
out, pid, t, d = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ev, _, _ = load(out)
c = Checker()
ti, di = os.stat(t).st_ino, os.stat(d).st_ino
begins = [e for e in ev if e["type"] == "dio_begin"]
mine = [e for e in begins if e["ino"] == ti]
c.check(len(mine) == 128, f"--pid {pid}: all 2 x 64 direct writes of the target seen (got {len(mine)})")
c.check(len({e["tid"] for e in mine}) == 2, f"--pid covers both fio threads (tids {sorted({e['tid'] for e in mine})})")
c.check(all(e["pid"] == pid for e in begins), f"--pid: every dio_begin is from pid {pid}")
c.check(not [e for e in ev if e.get("ino") == di], "--pid: nothing from the decoy process")
c.done()
PY

# --- --comm
OUT=$ITEST_TMP/comm.jsonl
start_tracer "$OUT" --events --format json --comm decoy-dd
dd if=/dev/zero of="$T" bs=4k count=16 oflag=direct conv=notrunc status=none
"$DECOY_DD" if=/dev/zero of="$D" bs=4k count=8 oflag=direct conv=notrunc status=none
stop_tracer || fail "tracer exited non-zero"
ITEST_DIR=$(dirname "$0") python3 - "$OUT" "$T" "$D" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import os, sys
sys.path.insert(0, os.environ["ITEST_DIR"])
from bdtcheck import load, Checker
out, t, d = sys.argv[1:4]
ev, _, _ = load(out)
c = Checker()
begins = [e for e in ev if e["type"] == "dio_begin"]
di, ti = os.stat(d).st_ino, os.stat(t).st_ino
c.check(len([e for e in begins if e["ino"] == di]) == 8, f"--comm decoy-dd: its 8 writes seen (got {len([e for e in begins if e['ino'] == di])})")
c.check(all(e["comm"] == "decoy-dd" for e in begins), "--comm: every dio_begin is from decoy-dd")
c.check(not [e for e in ev if e.get("ino") == ti and e["type"].startswith("dio")], "--comm: nothing from dd on the target")
c.done()
PY
itest_finish
