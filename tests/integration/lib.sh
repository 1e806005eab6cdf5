# shellcheck shell=bash
# Shared helpers for the root integration tests (CTest label `integration`).
# A test sources this, calls `itest_init NAME`, and uses the helpers below.
# Exit 77 means SKIPPED (CTest's SKIP_RETURN_CODE): always with the reason printed.

BUILD_DIR=${1:-${BUILD_DIR:-build}}
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
SRC_DIR=${BDT_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BIN=$BUILD_DIR/btrfs-dio-trace
WORKLOADS=$BUILD_DIR/workloads
# shellcheck source=../../scripts/lib/scratch-btrfs.sh
source "$SRC_DIR/scripts/lib/scratch-btrfs.sh"

TRACER_PID=
TWIN_PID=
ITEST_TMP=
ITEST_NAME=
ITEST_FAILS=0
declare -a ITEST_CLEANUPS=()

skip() {
    echo "SKIPPED: $*"
    exit 77
}
fail() {
    echo "FAIL: $*"
    ITEST_FAILS=$((ITEST_FAILS + 1))
}
pass() { echo "ok: $*"; }
die() {
    echo "FAIL: $*"
    exit 1
}

itest_cleanup() {
    local rc=$?
    local p
    for p in "$TRACER_PID" "$TWIN_PID"; do
        if [[ -z $p ]] || ! kill -0 "$p" 2>/dev/null; then continue; fi
        kill -INT "$p" 2>/dev/null
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.3; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    TRACER_PID="" TWIN_PID=""
    local c
    for c in "${ITEST_CLEANUPS[@]}"; do eval "$c" || true; done
    ITEST_CLEANUPS=()
    scratch_btrfs_cleanup
    # BDT_ITEST_KEEP=DIR: keep the test's files (tracer output, workload logs) in DIR/NAME
    if [[ -n ${BDT_ITEST_KEEP:-} && -n $ITEST_TMP && -d $ITEST_TMP ]]; then
        mkdir -p "$BDT_ITEST_KEEP" && rm -rf "${BDT_ITEST_KEEP:?}/$ITEST_NAME" &&
            cp -a "$ITEST_TMP" "$BDT_ITEST_KEEP/$ITEST_NAME"
    fi
    if [[ -z ${ITEST_TRACEFS_BEFORE-unset} && $(tracefs_mounted) == yes ]]; then
        umount /sys/kernel/tracing 2>/dev/null || true
    fi
    [[ -n $ITEST_TMP && -d $ITEST_TMP ]] && rm -rf "$ITEST_TMP"
    ITEST_TMP=
    return $rc
}

# Count our BPF programs currently loaded: the program names of the skeleton
# (build/bpf/bdt.skel.h), as the kernel keeps them (15 characters at most).
bdt_prog_names() {
    sed -n '/struct {/,/} progs;/s/.*struct bpf_program \*\([a-z0-9_]*\);.*/\1/p' \
        "$BUILD_DIR/bpf/bdt.skel.h" 2>/dev/null | cut -c1-15 | sort -u
}
bdt_prog_count() {
    bpftool prog show 2>/dev/null | sed -n 's/^[0-9]*: [a-z_]* *name \([^ ]*\).*/\1/p' \
        | grep -cxF -f <(bdt_prog_names) || true
}

itest_init() {
    local name=$1
    [[ $(id -u) -eq 0 ]] || skip "needs root (BPF and loop devices)"
    [[ -x $BIN ]] || die "binary $BIN not built"
    [[ -r /sys/kernel/btf/vmlinux ]] || skip "kernel has no BTF (/sys/kernel/btf/vmlinux): BPF CO-RE unavailable"
    command -v python3 >/dev/null || skip "python3 needed to check JSON output"
    local why
    why=$(scratch_btrfs_require 2>&1) || skip "cannot make a scratch btrfs: $why"
    bdt_root_lock || die "could not take the root-test lock"
    ITEST_NAME=$name
    ITEST_TMP=$(mktemp -d "/tmp/bdt-itest-$name-XXXXXX")
    trap itest_cleanup EXIT
    trap 'exit 130' INT TERM
    export SCRATCH_PREFIX="bdt-itest-$name"
    ITEST_PROGS_BEFORE=$(bdt_prog_count)
    ITEST_PINS_BEFORE=$(bdt_pins)
    # The tracer mounts tracefs when it is missing (as a user expects it); a test
    # leaves the machine's mounts as it found them.
    ITEST_TRACEFS_BEFORE=$(tracefs_mounted)
}

# "yes" when tracefs is mounted at /sys/kernel/tracing.
tracefs_mounted() {
    awk '$2 == "/sys/kernel/tracing" && $3 == "tracefs" { print "yes"; exit }' /proc/mounts
}

# Succeeds when bpffs is mounted at /sys/fs/bpf.
bpffs_mounted() { [[ $(stat -f -c %T /sys/fs/bpf 2>/dev/null) == bpf_fs ]]; }
# Everything pinned in /sys/fs/bpf, one per line (maps.debug and progs.debug are the kernel's own,
# in every bpffs).
bpffs_pins() { ls -A /sys/fs/bpf 2>/dev/null | grep -vx -e maps.debug -e progs.debug; }

# itest_bpffs: bpffs at its standard place for a test that pins (systemd mounts it; a bare
# container may not): mounted when missing (SKIPPED if it cannot be), unmounted again at the end
# if the test left it empty.
itest_bpffs() {
    bpffs_mounted && return 0
    mount -t bpf bpf /sys/fs/bpf || skip "no BPF filesystem at /sys/fs/bpf and cannot mount one"
    echo "note: mounted bpffs on /sys/fs/bpf"
    ITEST_CLEANUPS+=('[[ -z $(bpffs_pins) ]] && umount /sys/fs/bpf')
}

# bpffs pins of this tool (trace --pin-dir): /sys/fs/bpf/bdt-*, one per line.
bdt_pins() {
    ls -d /sys/fs/bpf/bdt-* 2>/dev/null | sort || true
}

# release_pin DIR: for a test's cleanup (ITEST_CLEANUPS): the tool's own
# release of a pinned recorder, then whatever is left in DIR.
release_pin() {
    [[ -e $1 ]] || return 0
    "$BIN" dump --pin-dir "$1" --release >/dev/null 2>&1
    rm -rf "$1"
}

# start_tracer OUTFILE ARGS... : runs the tracer in the background, waits until it is attached.
# BDT_ITEST_TWIN=1 (scripts/bench/compare-findings.sh): a second tracer traces the same I/O in the
# other emission mode, started first and stopped with the first: with --events when ARGS trace
# findings only (output OUTFILE.events-twin), findings only when ARGS have --events
# (OUTFILE.lazy-twin). Its exit status counts as the tracer's in stop_tracer. The findings-only
# one of the pair also prints the records its programs made (BDT_TEST_LAZY_EVENTS=1): the order
# it saw them in, which the comparison checks a reordering against.
start_tracer() {
    local out=$1
    shift
    if [[ -n ${BDT_ITEST_TWIN:-} ]]; then
        local a twin=() eager=0
        for a in "$@"; do
            if [[ $a == --events ]]; then eager=1; else twin+=("$a"); fi
        done
        if [[ $eager -eq 1 ]]; then
            BDT_TEST_LAZY_EVENTS=1 spawn_tracer "$out.lazy-twin" "${twin[@]}"
        else
            spawn_tracer "$out.events-twin" --events "$@"
        fi
        TWIN_PID=$TRACER_PID
        if [[ $eager -eq 0 ]]; then
            BDT_TEST_LAZY_EVENTS=1 spawn_tracer "$out" "$@"
            return
        fi
    fi
    spawn_tracer "$out" "$@"
}

# spawn_tracer OUTFILE ARGS... : start_tracer's one tracer (sets TRACER_PID).
spawn_tracer() {
    local out=$1
    shift
    local backend=()
    # The VM tier runs these tests with BDT_BACKEND=fentry|kprobe.
    [[ -n ${BDT_BACKEND:-} ]] && backend=(--backend "$BDT_BACKEND")
    # Emptied here: the background job's own redirection may run after the wait
    # below has read an earlier tracer's "Ctrl-C" from the same file.
    : >"$out"
    : >"$out.err"
    "$BIN" "$@" "${backend[@]}" >>"$out" 2>>"$out.err" &
    TRACER_PID=$!
    # Loading and verifying the programs takes well under a second here, but up to minutes in a
    # VM-tier guest (TCG, a loaded host): wait longer there (scripts/vm/init sets BDT_VM=1).
    local i limit=100
    [[ -n ${BDT_VM:-} ]] && limit=1800
    for i in $(seq 1 $limit); do
        grep -q "Ctrl-C to stop" "$out.err" 2>/dev/null && return 0
        if ! kill -0 "$TRACER_PID" 2>/dev/null; then
            wait "$TRACER_PID"
            local rc=$?
            TRACER_PID=
            echo "tracer exited with $rc before attaching:"
            cat "$out.err"
            if [[ $rc -eq 2 ]]; then skip "tracer cannot attach on this kernel: $(tail -n1 "$out.err")"; fi
            die "tracer failed to start"
        fi
        sleep 0.1
    done
    die "tracer did not attach within $((limit / 10)) s: $(cat "$out.err")"
}

# stop_tracer: SIGINT, wait, return its exit status (and the twin's, see start_tracer).
stop_tracer() {
    [[ -n $TRACER_PID ]] || return 0
    sleep 0.3   # let the reorder window drain
    kill -INT "$TRACER_PID"
    [[ -n $TWIN_PID ]] && kill -INT "$TWIN_PID"
    local rc=0
    wait "$TRACER_PID" || rc=$?
    if [[ -n $TWIN_PID ]]; then
        local twin_rc=0
        wait "$TWIN_PID" || twin_rc=$?
        [[ $rc -ne 0 ]] || rc=$twin_rc
    fi
    TRACER_PID="" TWIN_PID=""
    return $rc
}

# Checks nothing of ours is left behind; call at the end after cleanup of the scratch fs.
itest_check_leftovers() {
    local now i
    # A program's last reference can be dropped after the tracer has exited: links
    # on faultable tracepoints (the syscall ones, 6.13+) are released after an RCU
    # tasks-trace grace period. Allow that, not more.
    for i in $(seq 1 50); do
        now=$(bdt_prog_count)
        [[ $now -le ${ITEST_PROGS_BEFORE:-0} ]] && break
        sleep 0.2
    done
    if [[ $now -gt ${ITEST_PROGS_BEFORE:-0} ]]; then
        fail "BPF programs left loaded after the tracer exited: $now (before: $ITEST_PROGS_BEFORE)"
    else
        pass "no BPF programs left behind"
    fi
    local pins
    pins=$(comm -13 <(echo "${ITEST_PINS_BEFORE:-}") <(bdt_pins) | grep . || true)
    if [[ -n $pins ]]; then
        fail "bpffs pins left behind: $(echo $pins)"
    else
        pass "no bpffs pins (/sys/fs/bpf/bdt-*) left behind"
    fi
}

itest_finish() {
    stop_tracer || true
    itest_cleanup
    trap - EXIT
    itest_check_leftovers
    if [[ -n ${SCRATCH_LOOP_SEEN:-} ]] && losetup -a | grep -q "bdt-itest-"; then
        fail "loop devices left attached: $(losetup -a | grep bdt-itest-)"
    fi
    if grep -q "bdt-itest-" /proc/mounts; then fail "mounts left: $(grep bdt-itest- /proc/mounts)"; fi
    if [[ $ITEST_FAILS -gt 0 ]]; then
        echo "RESULT: $ITEST_FAILS check(s) failed"
        exit 1
    fi
    echo "RESULT: all checks passed"
    exit 0
}
