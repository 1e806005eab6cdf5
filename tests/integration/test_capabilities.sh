#!/usr/bin/env bash
# Least privilege (docs/deployment.md, "Capabilities"):
#  1. As root: once attached, the tracer's main thread keeps only what the rest
#     of the run needs (--qemu: cap_sys_ptrace + cap_dac_read_search; cap_bpf
#     only on kernels that refuse bpf() on held objects without it, before 6.5),
#     with the same bounding set and no_new_privs; the metrics thread has none.
#     After the drop: a VM started later by another user, whose disk image is
#     passed as a file descriptor only (as libvirt does), is found and its
#     writes counted; metrics are served; a clean stop removes the link pins.
#  2. With exactly the service unit's CapabilityBoundingSet (setpriv as root):
#     the same works.
#  3. That set without cap_perfmon: exit 2, saying what is missing.
#  4. That set without cap_sys_ptrace/cap_dac_read_search: tracing works, a
#     warning says what --qemu cannot see, and the fd-only image is not found.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init capabilities
command -v setpriv >/dev/null || skip "setpriv (util-linux) not installed"
itest_bpffs
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
chmod 755 "$SCRATCH_DIR" "$SCRATCH_MNT" "$SCRATCH_NOCOW"
PIN=/sys/fs/bpf/bdt-itest-caps-$$
ITEST_CLEANUPS+=("$BIN dump --pin-dir $PIN --release >/dev/null 2>&1; rm -rf $PIN")
UNIT=$SRC_DIR/deploy/systemd/btrfs-dio-trace.service.in
UNIT_CAPS=$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT")
[[ -n $UNIT_CAPS ]] || die "no CapabilityBoundingSet= in $UNIT"
setpriv_set() {  # "CAP_BPF CAP_PERFMON" -> "+bpf,+perfmon"
    local out= c
    for c in $1; do c=${c#CAP_}; out+=",+${c,,}"; done
    echo "${out#,}"
}
hexcaps() {  # "cap_a,cap_b" -> the hex mask /proc/PID/status prints
    python3 - "$1" <<'PY'
import sys
n = {"cap_dac_override": 1, "cap_dac_read_search": 2, "cap_sys_ptrace": 19, "cap_sys_admin": 21,
     "cap_syslog": 34, "cap_perfmon": 38, "cap_bpf": 39}
m = 0
for c in filter(None, sys.argv[1].split(",")): m |= 1 << n[c]
print(f"{m:016x}")
PY
}
task_status() {  # PID THREAD_NAME FIELD
    local t
    for t in /proc/$1/task/*; do
        [[ $(cat "$t/comm" 2>/dev/null) == "$2" ]] || continue
        sed -n "s/^$3:[[:space:]]*//p" "$t/status"; return
    done
}
IMG=$SCRATCH_NOCOW/vm-fd.raw
dd if=/dev/zero of="$IMG" bs=1M count=4 status=none && sync && chown 65534:65534 "$IMG"
# A stand-in QEMU run by another user: its image only as an fd (-add-fd/-drive file=/dev/fdset/N),
# as libvirt passes it; 16 O_DIRECT writes after a pause (the tracer rescans /proc every second).
FDVM=$SCRATCH_DIR/fdvm.py  # readable by the other user (ITEST_TMP is 0700)
cat >"$FDVM" <<'PY'
import mmap, os, sys, time
fd = int(sys.argv[sys.argv.index("-add-fd") + 1].split(",")[0].split("=")[1])
time.sleep(3)
buf = mmap.mmap(-1, 65536); buf.write(b"q" * 65536)
for i in range(16): os.pwrite(fd, buf, i * 65536)
time.sleep(1.5)
PY
run_fd_vm() {  # as nobody; fd 3 is the image, opened O_DIRECT by the "hypervisor" user itself
    setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all -- /usr/bin/python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_DIRECT)
os.dup2(fd, 3); os.close(fd)
os.execv("/usr/bin/python3", ["qemu-system-x86_64", sys.argv[2], "-name", "guest=caps-vm",
         "-add-fd", "fd=3,set=1", "-drive", "file=/dev/fdset/1,format=raw,cache=none,aio=threads"])
' "$IMG" "$FDVM"
}
kernel_needs_bpf_cap() {  # before 6.5 every bpf() command checks kernel.unprivileged_bpf_disabled
    local r; r=$(uname -r)
    local maj=${r%%.*} min=${r#*.}; min=${min%%.*}
    [[ $(cat /proc/sys/kernel/unprivileged_bpf_disabled) != 0 ]] && ((maj < 6 || (maj == 6 && min < 5)))
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
metric() {  # PORT NAME_AND_LABELS -> value
    python3 - "$1" "$2" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
for l in body.splitlines():
    if l.startswith(sys.argv[2] + " "): print(l.split()[-1]); break
PY
}
check_vm_seen() {  # OUT PORT -> 0 when the fd image was traced and its 16 writes counted
    local i v
    for i in $(seq 1 30); do
        v=$(metric "$2" "btrfs_dio_trace_qemu_requests_total{vm=\"caps-vm\",image=\"$IMG\",direction=\"write\"}" 2>/dev/null)
        [[ $v == 16 ]] && break
        sleep 0.5
    done
    grep -qF "traced     $IMG" "$1.err" && [[ $v == 16 ]]
}

# ---- 1. root: what is kept after attaching ------------------------------------------
PORT=$(free_port)
start_tracer "$ITEST_TMP/t1.out" --qemu -f json --metrics-addr "127.0.0.1:$PORT" --pin-dir "$PIN" \
    --snapshot-dir "$ITEST_TMP/snaps"
want=cap_dac_read_search,cap_sys_ptrace
kernel_needs_bpf_cap && want+=",cap_bpf"
grep "capabilities kept" "$ITEST_TMP/t1.out.err"
main_prm=$(sed -n 's/^CapPrm:[[:space:]]*//p' /proc/$TRACER_PID/status)
main_eff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/$TRACER_PID/status)
main_bnd=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/$TRACER_PID/status)
main_nnp=$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' /proc/$TRACER_PID/status)
[[ $main_prm == $(hexcaps "$want") && $main_eff == "$main_prm" && $main_bnd == "$main_prm" && $main_nnp == 1 ]] &&
    pass "main thread after attaching: permitted = effective = bounding = $want ($main_prm), no_new_privs" ||
    fail "main thread: CapPrm $main_prm CapEff $main_eff CapBnd $main_bnd NoNewPrivs $main_nnp (want $(hexcaps "$want") = $want)"
h_prm=$(task_status "$TRACER_PID" bdt-metrics CapPrm)
h_eff=$(task_status "$TRACER_PID" bdt-metrics CapEff)
h_nnp=$(task_status "$TRACER_PID" bdt-metrics NoNewPrivs)
[[ $h_prm == 0000000000000000 && $h_eff == 0000000000000000 && $h_nnp == 1 ]] &&
    pass "metrics thread: no capability at all, no_new_privs" || fail "metrics thread: CapPrm '$h_prm' CapEff '$h_eff' NNP '$h_nnp'"
run_fd_vm || fail "stand-in VM failed"
check_vm_seen "$ITEST_TMP/t1.out" "$PORT" &&
    pass "after the drop: another user's VM with its image passed as an fd is found ($(grep -F "$IMG" "$ITEST_TMP/t1.out.err" | head -n1 | sed 's/^ *//')) and its 16 writes counted" ||
    fail "the fd-only VM image was not traced after the drop: $(grep -A3 caps-vm "$ITEST_TMP/t1.out.err")"
lost=$(metric "$PORT" 'btrfs_dio_trace_lost_events_total{cpu="0"}')
[[ -n $lost ]] && pass "the loss counters are read from the kernel map after the drop (cpu 0: $lost)" || fail "no lost_events_total"
stop_tracer || fail "tracer exited non-zero"
ls "$PIN"/link-* >/dev/null 2>&1 && fail "link pins left in $PIN after a clean stop" || pass "clean stop: link pins removed"
"$BIN" dump --pin-dir "$PIN" --release >/dev/null 2>&1 || fail "release of $PIN"

# ---- 2. exactly the unit's bounding set -------------------------------------------------
SET=$(setpriv_set "$UNIT_CAPS")
PORT=$(free_port)
run_limited() {  # SETPRIV_CAPS OUT ARGS...
    local caps=$1 out=$2
    shift 2
    setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all,"$caps" -- "$BIN" "$@" >"$out" 2>"$out.err" &
    TRACER_PID=$!
    for _ in $(seq 1 100); do
        grep -q "Ctrl-C to stop" "$out.err" 2>/dev/null && return 0
        kill -0 "$TRACER_PID" 2>/dev/null || { wait "$TRACER_PID"; local rc=$?; TRACER_PID=; return $rc; }
        sleep 0.1
    done
    return 99
}
if run_limited "$SET" "$ITEST_TMP/t2.out" --qemu -f json --metrics-addr "127.0.0.1:$PORT" --pin-dir "$PIN"; then
    pass "with the unit's CapabilityBoundingSet ($UNIT_CAPS) it attaches: $(grep 'hooks attached' "$ITEST_TMP/t2.out.err")"
    run_fd_vm || fail "stand-in VM failed"
    check_vm_seen "$ITEST_TMP/t2.out" "$PORT" && pass "unit's set: the fd-only VM image is traced" ||
        fail "unit's set: fd-only VM image not traced: $(grep -A3 caps-vm "$ITEST_TMP/t2.out.err")"
    stop_tracer || fail "tracer (unit's set) exited non-zero"
else
    fail "with the unit's set ($SET) it does not start: $(cat "$ITEST_TMP/t2.out.err")"
fi
"$BIN" dump --pin-dir "$PIN" --post-mortem "$ITEST_TMP/pm" >/dev/null 2>&1 || fail "post-mortem after the unit's set"

# ---- 3. without cap_perfmon: refused ---------------------------------------------------
run_limited "${SET//,+perfmon/}" "$ITEST_TMP/t3.out" -d 2; rc=$?
[[ $rc -eq 2 ]] && pass "without cap_perfmon: exit 2: $(tail -n1 "$ITEST_TMP/t3.out.err" | cut -c1-160)" ||
    fail "without cap_perfmon: exit $rc (want 2): $(cat "$ITEST_TMP/t3.out.err")"
stop_tracer 2>/dev/null

# ---- 4. without cap_sys_ptrace and cap_dac_read_search: --qemu degrades, said -------------
PORT=$(free_port)
LESS=${SET//,+sys_ptrace/}
LESS=${LESS//,+dac_read_search/}
if run_limited "$LESS" "$ITEST_TMP/t4.out" --qemu -f json --metrics-addr "127.0.0.1:$PORT"; then
    grep -q "warning: --qemu without cap_sys_ptrace" "$ITEST_TMP/t4.out.err" &&
        pass "without them: the tracer says what --qemu cannot see" || fail "no warning about --qemu in: $(cat "$ITEST_TMP/t4.out.err")"
    run_fd_vm || fail "stand-in VM failed"
    sleep 2
    grep -qF "traced     $IMG" "$ITEST_TMP/t4.out.err" && fail "the fd-only image was found without cap_sys_ptrace" ||
        pass "without them: the VM is listed but its fd-only image cannot be seen: $(grep -A2 'VM caps-vm' "$ITEST_TMP/t4.out.err" | tr '\n' ' ' | cut -c1-200)"
    stop_tracer || fail "tracer (no ptrace) exited non-zero"
else
    fail "without sys_ptrace/dac_read_search it does not start: $(cat "$ITEST_TMP/t4.out.err")"
fi
itest_finish
