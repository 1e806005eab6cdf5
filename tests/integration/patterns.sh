# shellcheck shell=bash
# Helpers for the per-pattern integration tests (tests/integration/test_pattern_*.sh).
# Source lib.sh first, then this file.
#
#   pt_expect TEXT...           print what the test expects and why (one line each call)
#   pt_run SECS LOG CMD...      run a workload bounded by SECS seconds (4 x SECS in a VM-tier
#                               guest; SIGTERM, then SIGKILL 5 s later); its output goes to LOG and
#                               is echoed indented; returns its exit status (124 = timed out)
#   pt_wait_finding OUT DET     0 if OUT already holds a finding of detector DET
#   pt_throttled_cgroup NAME BPS  make a cgroup whose writes to $SCRATCH_LOOP may move BPS bytes/s
#                               (blk-throttle: cgroup v1 blkio.throttle.write_bps_device, else
#                               cgroup v2 io.max wbps); sets CG to its path; removed at cleanup;
#                               skips the test when the kernel has neither
#   pt_check OUT ARGS... <<'PY' run a python check with the prelude below; a failing check counts
#                               as one failed check of the test (ITEST_FAILS)
#
# Python prelude (available to the pt_check snippet):
#   OUT, ARGS                   the tracer output file and the remaining arguments
#   EV, FINDINGS, OTHERS        events, findings, other lines (bdtcheck.load)
#   c                           a bdtcheck.Checker
#   brief(f), show(fs, title)   one line per finding
#   of(det, **fields)           findings of detector det whose fields equal the given values
#   st(path)                    os.stat(path) (st_dev/st_ino are what findings must carry)
#   expect_only(allowed)        check that every finding's (detector, kind) is in allowed, a set of
#                               (detector, kind) pairs or detector names
#   no_symptoms()               check that no finding has level "symptom"
#   check_summary()             check the closing summary line is present, that no record was lost
#                               and that it counts the printed findings
#   finish()                    print all findings (always: the test output says what the tracer
#                               reported), then exit 1 if any check failed

PT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

pt_expect() { echo "EXPECT: $*"; }

pt_run() {
    local secs=$1 log=$2
    shift 2
    # a VM-tier guest (TCG, shared host) runs workloads 5-20x slower: the limit only catches hangs
    [[ -n ${BDT_VM:-} ]] && secs=$((secs * 4))
    echo "+ $* (limit ${secs} s)"
    local rc=0
    timeout --signal=TERM --kill-after=5 "$secs" "$@" >"$log" 2>&1 || rc=$?
    sed 's/^/  | /' "$log"
    [[ $rc -eq 124 ]] && echo "  (timed out after ${secs} s)"
    return $rc
}

pt_wait_finding() {
    local out=$1 det=$2
    grep -q "\"type\":\"finding\",\"detector\":\"$det\"" "$out" 2>/dev/null
}

PT_PRELUDE=$(cat <<'PY'
import os, sys, json
sys.path.insert(0, os.environ["PT_DIR"])
from bdtcheck import load, Checker
OUT = sys.argv[1]
ARGS = sys.argv[2:]
EV, FINDINGS, OTHERS = load(OUT)
c = Checker()

def brief(f):
    rng = f.get("range")
    rng = f"[{rng[0]}, {rng[1]})" if rng else "-"
    return (f"{f.get('detector')}/{f.get('kind')} level={f.get('level')} severity={f.get('severity')} "
            f"pid={f.get('pid')} comm={f.get('comm')} dev={f.get('dev')} ino={f.get('ino')} range={rng}: "
            f"{f.get('message')}")

def show(fs=None, title="findings the tracer printed"):
    fs = FINDINGS if fs is None else fs
    print(f"--- {title}: {len(fs)}")
    for f in fs:
        print("    " + brief(f))

def of(det, **kw):
    return [f for f in FINDINGS if f.get("detector") == det and all(f.get(k) == v for k, v in kw.items())]

def st(path):
    return os.stat(path)

def expect_only(allowed):
    bad = [f for f in FINDINGS
           if f.get("detector") not in allowed and (f.get("detector"), f.get("kind")) not in allowed]
    names = sorted({f"{d}/{k}" if k else d for d, k in
                    ((a, None) if isinstance(a, str) else a for a in allowed)})
    c.check(not bad, f"no other finding than {names or 'none'}"
            + (f"; unexpected: {[brief(f) for f in bad]}" if bad else ""))

def no_symptoms():
    sy = [f for f in FINDINGS if f.get("level") == "symptom"]
    c.check(not sy, "no symptom finding" + (f"; got: {[brief(f) for f in sy]}" if sy else ""))

def check_summary():
    s = [o for o in OTHERS if o.get("type") == "summary"]
    if c.check(len(s) == 1, "closing summary line present"):
        lost = s[0].get("lost")
        print(f"    summary: events={s[0].get('events')} lost={lost} findings={s[0].get('findings')} "
              f"by_detector={s[0].get('findings_by_detector')}")
        c.check(lost == 0, f"no trace records lost (lost={lost}): the findings rest on the whole event stream")
        c.check(s[0].get("findings") == len(FINDINGS),
                f"summary counts the {len(FINDINGS)} printed findings (says {s[0].get('findings')})")

def finish():
    show()
    c.done()

# Kernel behaviour that differs between the kernels these tests were measured on: the 6.18 host
# (tests/integration) and the Debian 6.1 guest (scripts/vm/run-integration). See pt_kernel_like.
import re as _re
KREL = tuple(int(x) for x in _re.match(r"(\d+)\.(\d+)", os.uname().release).groups())
KLIKE = os.environ.get("PT_KLIKE", "")
# the function-hook backends (the VM tier runs the tests with BDT_BACKEND=fentry|kprobe)
FN_HOOKS = os.environ.get("BDT_BACKEND", "") in ("fentry", "kprobe")
PY
)

# pt_kernel_like: prints which measured kernel this one behaves like for the behaviours the
# tests depend on, or "" when it lies between them:
#   6.1   (< 6.6): O_DIRECT writes to checksummed files go direct (no 968f19c5b1b7, which reached
#         stable 6.6+ and mainline 6.15); a DIO read whose user buffer is not resident yet is
#         tried twice (btrfs_direct_read: the nofault attempt ends -EFAULT, faults in, retries)
#   6.18  (>= 6.15): such writes fall back to buffered writes
pt_kernel_like() {
    local r maj min
    r=$(uname -r)
    maj=${r%%.*}; min=${r#*.}; min=${min%%[!0-9]*}
    if (( maj < 6 || (maj == 6 && min < 6) )); then echo 6.1
    elif (( maj > 6 || (maj == 6 && min >= 15) )); then echo 6.18
    else echo ""; fi
}
export PT_KLIKE=$(pt_kernel_like)

pt_throttled_cgroup() {
    local name=$1 bps=$2 devno cg_root enabled=
    devno=$(printf '%d:%d' "0x$(stat -c %t "$SCRATCH_LOOP")" "0x$(stat -c %T "$SCRATCH_LOOP")")
    if [[ -d /sys/fs/cgroup/blkio && -e /sys/fs/cgroup/blkio/blkio.throttle.write_bps_device ]]; then
        CG=/sys/fs/cgroup/blkio/bdt-itest-$name-$$
        mkdir "$CG" || skip "cannot create a blkio cgroup under /sys/fs/cgroup/blkio"
        ITEST_CLEANUPS+=("rmdir '$CG' 2>/dev/null")
        echo "$devno $bps" >"$CG/blkio.throttle.write_bps_device" ||
            skip "cannot throttle $SCRATCH_LOOP ($devno) in $CG"
    else
        cg_root=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
        [[ -n $cg_root ]] && grep -qw io "$cg_root/cgroup.controllers" 2>/dev/null ||
            skip "no block-I/O throttling: neither cgroup v1 blkio nor a cgroup v2 io controller"
        if ! grep -qw io "$cg_root/cgroup.subtree_control"; then
            echo +io >"$cg_root/cgroup.subtree_control" || skip "cannot enable the io controller in $cg_root"
            enabled=1
        fi
        CG=$cg_root/bdt-itest-$name-$$
        mkdir "$CG" || skip "cannot create a cgroup under $cg_root"
        # cleanups run in order: the cgroup goes before the controller it was made under
        ITEST_CLEANUPS+=("rmdir '$CG' 2>/dev/null")
        [[ -n $enabled ]] && ITEST_CLEANUPS+=("echo -io >'$cg_root/cgroup.subtree_control' 2>/dev/null")
        echo "$devno wbps=$bps" >"$CG/io.max" || skip "cannot throttle $SCRATCH_LOOP ($devno) in $CG (io.max)"
    fi
    echo "throttled cgroup: $CG ($devno: $bps bytes/s of writes)"
}

pt_check() {
    local code
    code=$(cat)
    PT_DIR=$PT_DIR python3 -c "$PT_PRELUDE
$code" "$@" || ITEST_FAILS=$((ITEST_FAILS + 1))
}
