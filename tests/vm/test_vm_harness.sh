#!/usr/bin/env bash
# VM tier: the harness's own failure handling (scripts/vmtest, scripts/vm/run-integration), with
# a stand-in for QEMU that writes a console log and hangs; no guest boots, so it takes seconds:
#  1. console logs with guest kernel failures (`vmtest --scan-log`): the kind and the report of
#     the first one (soft lockup, RCU stall, hung task, NULL pointer, GPF, panic; lines the
#     guest command printed in between left out); none in a log with btrfs errors and a WARNING
#  2. a guest whose console shows a soft lockup is stopped after --bug-grace (not at --timeout):
#     exit 125, the kind and its stack printed; an oops in a guest whose command then exits 0
#     is 125 too; a clean console gives the command's status
#  3. a run under `flock LOCK` that is SIGKILLed releases LOCK within seconds: killing vmtest
#     alone (QEMU is killed by the watchdog) and killing the whole process group (the watchdog,
#     in its own session, holds no descriptor and exits)
#  4. (root, virtiofsd) run-integration names the test a guest kernel failure stopped and the
#     kind, prints the report, and the tests after it as not run; an oops after every test passed
#     fails the run, with the report; a test named several times (a flaky one reproduced) runs
#     that often, each run numbered and counted, and a failure in any run fails the run (the
#     stand-in then runs the guest script itself, over a copy of the harness whose
#     tests/integration holds a stand-in test that fails in its second run)
# Exit 77 (SKIPPED: reason) when the VM tier is unavailable (parts 2-4 need the kernel cache).
#   tests/vm/test_vm_harness.sh [BUILD_DIR]   (BUILD_DIR is not needed)
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
vm_init ""
tmp=$(mktemp -d /tmp/bdt-vm-harness.XXXXXX)
started=()   # stand-in QEMU processes and watchdogs this test left, killed at exit
cleanup() {
  local p
  for p in "${started[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
# want FILE BRE WHAT: a line of FILE matches BRE, else a failure that WHAT is missing
want() { grep -q -- "$2" "$1" || fail "$3"; }
# alive PID: PID runs (exists and is not a zombie: an orphan's exit may be reaped late)
alive() { local s; read -r s 2>/dev/null </proc/"$1"/stat || return 1; s=${s##*) }; [[ $s != Z* ]]; }

# ---------------------------------------------------------------- 1. console logs
# A 6.1 guest's soft lockup report (softlockup_all_cpu_backtrace=1), trimmed, with a line of the
# guest command's output in the middle and CRLF line ends as the serial console writes them.
cat >"$tmp/softlockup.log" <<'EOF'
BDT-VM: READY kernel 6.1.0-57-cloud-amd64, btrfs /dev/vda mounted at /mnt, t=3.49
=== VM-ITEST start test_fallback_writers
[   40.331262] BTRFS error (device loop0): bdev /dev/loop0 errs: wr 0, rd 0, flush 0, corrupt 1, gen 0
  | dio-unstable: mode=nocow ino=270 writes=40 reads=0 short_writes=0 write_errors=0
[  248.721395] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [fio:775]
[  248.722962] Modules linked in: overlay virtiofs fuse dm_flakey dm_mod loop btrfs
[  248.723885] CPU: 1 PID: 775 Comm: fio Not tainted 6.1.0-57-cloud-amd64 #1  Debian 6.1.192-3
[  248.723885] RIP: 0010:free_extent_buffer+0x0/0x90 [btrfs]
[  248.723885] Call Trace:
[  248.723885]  <TASK>
[  248.723885]  btrfs_release_path+0x13/0x70 [btrfs]
ok: a line of the guest command
[  248.723885]  btrfs_free_path+0x13/0x30 [btrfs]
[  248.723885]  btrfs_lookup_csums_range+0x1f1/0x4b0 [btrfs]
[  248.723885]  </TASK>
[  248.723885] Sending NMI from CPU 1 to CPUs 0:
[  248.748016] NMI backtrace for cpu 0
[  276.629046] watchdog: BUG: soft lockup - CPU#0 stuck for 48s! [kworker/u4:2:31]
EOF
sed -i 's/$/\r/' "$tmp/softlockup.log"
# scan LOG WANT_KIND WANT_FIRST_LINE: vmtest --scan-log names WANT_KIND and the report (in $out)
# starts at WANT_FIRST_LINE
scan() {
  local log=$1 kind=$2 first=$3 rc n=$fails
  out=$("$vmtest" --scan-log "$log"); rc=$?
  [[ $rc -eq 0 ]] || { fail "$(basename "$log"): vmtest --scan-log exited $rc, want 0"; return 1; }
  [[ $(sed -n 1p <<<"$out") == "$kind" ]] || fail "$(basename "$log"): kind '$(sed -n 1p <<<"$out")', want '$kind'"
  [[ $(sed -n 2p <<<"$out") == "$first" ]] || fail "$(basename "$log"): report starts '$(sed -n 2p <<<"$out")', want '$first'"
  [[ $fails -eq $n ]]
}
if scan "$tmp/softlockup.log" "soft lockup" "[  248.721395] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [fio:775]"; then
  grep -q ' btrfs_lookup_csums_range+' <<<"$out" || fail "soft lockup: the stack is not in the report"
  grep -qE 'a line of the guest command|dio-unstable|BTRFS error' <<<"$out" &&
    fail "soft lockup: the report has lines that are not the kernel's after the failure"
  grep -q $'\r' <<<"$out" && fail "soft lockup: the report has carriage returns"
  [[ $(wc -l <<<"$out") -eq 14 ]] || fail "soft lockup: want the kind and 13 kernel lines, got $(wc -l <<<"$out") lines"
  ok "soft lockup: kind, first line and stack from the console log"
fi

# One failure of each other kind, each after kernel lines that are not failures; the kernel line
# of the first one behind the command's output on the same line (no newline between them).
benign='[    3.749248] BTRFS info (device vda): first mount of filesystem a511f250
[  194.194447] BTRFS warning (device loop0): csum failed root 5 ino 263 off 32768 csum 0x381c969c expected csum 0xb86cf0aa mirror 1
[   60.100000] ------------[ cut here ]------------
[   60.100001] WARNING: CPU: 1 PID: 812 at fs/btrfs/transaction.c:1985 btrfs_commit_transaction+0x5f1/0xd40 [btrfs]
[   60.100002] Call Trace:
FAIL: a test that prints Oops: and general protection fault without a time stamp
[   60.100003] ---[ end trace 0000000000000000 ]---'
i=0
while IFS='|' read -r kind line; do
  i=$((i + 1))
  printf '%s\nrunning%s\n[  300.000001]  some_function+0x1/0x2\n' "$benign" "$line" >"$tmp/kind$i.log"
  scan "$tmp/kind$i.log" "$kind" "$line" && ok "$kind: '$line'"
done <<'EOF'
RCU stall|[  239.887390] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
RCU stall|[  239.887390] rcu: INFO: rcu_preempt self-detected stall on CPU
hung task|[  363.200000] INFO: task fio:348 blocked for more than 120 seconds.
NULL pointer dereference|[   80.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008
general protection fault|[   80.000000] Oops: general protection fault, probably for non-canonical address 0xdead000000000122: 0000 [#1] PREEMPT SMP NOPTI
oops|[   80.000000] Oops: 0002 [#1] PREEMPT SMP NOPTI
kernel BUG|[   80.000000] kernel BUG at fs/btrfs/extent_io.c:4178!
panic|[   55.207838] Kernel panic - not syncing: sysrq triggered crash
EOF
printf '%s\n' "$benign" >"$tmp/clean.log"
"$vmtest" --scan-log "$tmp/clean.log" >"$tmp/clean.out"
rc=$?
[[ $rc -eq 1 && ! -s $tmp/clean.out ]] &&
  ok "no failure in a log with btrfs info, warning and error lines, a WARNING and its trace" ||
  fail "a log without a kernel failure: --scan-log exited $rc, want 1: $(cat "$tmp/clean.out")"
((fails)) && { echo "test_vm_harness: $fails failure(s)"; exit 1; }

# ---------------------------------------------------------------- the stand-in QEMU
vm_check
# Writes BDT_FAKE_CONSOLE (CRLF line ends) to the -serial file, its pid and its parent's (vmtest)
# to BDT_FAKE_PIDS, then exits with status 0 if BDT_FAKE_EXIT is set, else hangs. With
# BDT_FAKE_GUEST set it is the guest instead: it runs the command (bdt/cmd.sh of the -initrd's
# last newc archive) with sh on this host, its output and the end marker to the console.
cat >"$tmp/qemu" <<'EOF'
#!/bin/bash
[[ ${1:-} == --version ]] && { echo "QEMU emulator version 0 (a stand-in)"; exit 0; }
prev="" serial="" initrd=""
for a in "$@"; do
  [[ $prev == -serial ]] && serial=${a#file:}
  [[ $prev == -initrd ]] && initrd=$a
  prev=$a
done
echo "$$ $PPID" >"$BDT_FAKE_PIDS"
printf '%s\n' "$BDT_FAKE_CONSOLE" | sed 's/$/\r/' >>"$serial"
if [[ -n ${BDT_FAKE_GUEST:-} ]]; then
  cmd=$(dirname "$BDT_FAKE_PIDS")/guest-cmd.sh
  python3 - "$initrd" "$cmd" <<'PY'
import sys
d, i, cmd = open(sys.argv[1], "rb").read(), 0, b""
while i + 110 <= len(d):
    if d[i:i + 6] != b"070701":
        i += 4  # the padding after an archive's trailer
        continue
    size, namesize = int(d[i + 54:i + 62], 16), int(d[i + 94:i + 102], 16)
    name = d[i + 110:i + 109 + namesize].decode()
    j = (i + 110 + namesize + 3) & ~3
    if name.endswith("bdt/cmd.sh"):
        cmd = d[j:j + size]
    i = (j + size + 3) & ~3
open(sys.argv[2], "wb").write(cmd)
PY
  sh "$cmd" 2>&1 | sed 's/$/\r/' >>"$serial"
  printf '<<<BDT-VM-EXIT status=%s>>>\r\n' "${PIPESTATUS[0]}" >>"$serial"
  exit 0
fi
[[ -n ${BDT_FAKE_EXIT:-} ]] && exit 0
exec sleep 1000
EOF
chmod +x "$tmp/qemu"
export BDT_VM_QEMU=$tmp/qemu BDT_FAKE_PIDS=$tmp/qemu.pids
lockup_console=$(tr -d '\r' <"$tmp/softlockup.log")
# fake_started: wait up to 30 s for the stand-in QEMU (the initramfs is built first); sets
# fake_pid and run_pid (its parent, vmtest)
fake_started() {
  local i
  for i in $(seq 300); do
    [[ -s $BDT_FAKE_PIDS ]] && read -r fake_pid run_pid <"$BDT_FAKE_PIDS" && { started+=("$fake_pid"); return 0; }
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------- 2. stopped after the grace
rm -f "$BDT_FAKE_PIDS"
t0=$(date +%s)
BDT_FAKE_CONSOLE=$lockup_console "$vmtest" --quiet --timeout 90 --bug-grace 3 --run true >"$tmp/lockup.out" 2>&1
rc=$?
took=$(( $(date +%s) - t0 ))
cat "$tmp/lockup.out"
if [[ $rc -eq 125 ]] && grep -q '^vmtest: guest kernel soft lockup: \[  248.721395\] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! \[fio:775\] (QEMU stopped 3 s after it; console log: ' "$tmp/lockup.out" &&
   grep -q '^vmtest: | \[  248.723885\]  btrfs_release_path+0x13/0x70 \[btrfs\]' "$tmp/lockup.out"; then
  ok "soft lockup on the console: QEMU stopped, exit 125 after $took s (--bug-grace 3, --timeout 90) with the report"
else
  fail "soft lockup on the console: vmtest exited $rc after $took s, want 125 with the kind and the stack"
fi
fake_started && alive "$fake_pid" && fail "the stand-in QEMU (pid $fake_pid) still runs after vmtest exited"

rm -f "$BDT_FAKE_PIDS"
BDT_FAKE_EXIT=1 BDT_FAKE_CONSOLE=$'BDT-VM: READY kernel 6.1.0\n[   80.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008\n[   80.000001] Oops: 0000 [#1] PREEMPT SMP NOPTI\n<<<BDT-VM-EXIT status=0>>>' \
  "$vmtest" --quiet --timeout 90 --run true >"$tmp/oops.out" 2>&1
rc=$?
cat "$tmp/oops.out"
[[ $rc -eq 125 ]] && grep -q '^vmtest: guest kernel NULL pointer dereference: .*(the guest command exited with status 0; ' "$tmp/oops.out" &&
  ok "an oops in a guest whose command exits 0: exit 125" ||
  fail "an oops in a guest whose command exits 0: vmtest exited $rc, want 125"

rm -f "$BDT_FAKE_PIDS"
BDT_FAKE_EXIT=1 BDT_FAKE_CONSOLE=$'BDT-VM: READY kernel 6.1.0\n'"$benign"$'\n<<<BDT-VM-EXIT status=7>>>' \
  "$vmtest" --quiet --timeout 90 --run true >"$tmp/clean.out" 2>&1
rc=$?
[[ $rc -eq 7 ]] && ok "a console without a kernel failure: the command's status (7)" ||
  { cat "$tmp/clean.out"; fail "a console without a kernel failure: vmtest exited $rc, want the command's 7"; }

# ---------------------------------------------------------------- 3. a killed run releases the lock
# holders FILE: the processes that have FILE open
holders() { local f; for f in /proc/[0-9]*/fd/*; do [[ $(readlink "$f" 2>/dev/null) == "$1" ]] && echo "${f#/proc/}"; done | cut -d/ -f1 | sort -u; }
# watchdog_of QEMU_PID: the pid of the vmtest watchdog that is to kill that QEMU
watchdog_of() {
  local c
  for c in /proc/[0-9]*/cmdline; do
    tr '\0' ' ' 2>/dev/null <"$c" | grep -qE "vmtest-watchdog [0-9]+ [0-9]+ $1( |$)" && { c=${c#/proc/}; echo "${c%/cmdline}"; }
  done
}
for how in vmtest group; do
  lock=$tmp/vm-$how.lock
  rm -f "$BDT_FAKE_PIDS"
  BDT_FAKE_CONSOLE="BDT-VM: READY kernel 6.1.0" setsid flock "$lock" "$vmtest" --quiet --timeout 1500 --run true \
    >"$tmp/kill-$how.out" 2>&1 &
  flock_pid=$!
  if ! fake_started; then fail "kill ($how): the stand-in QEMU did not start"; cat "$tmp/kill-$how.out"; continue; fi
  wd=$(watchdog_of "$fake_pid")
  [[ -n $wd ]] && started+=("$wd")
  sleep 2
  alive "$fake_pid" || fail "kill ($how): the stand-in QEMU is gone while the run still runs"
  if [[ $how == vmtest ]]; then kill -KILL "$run_pid"; else kill -KILL -- "-$flock_pid"; fi
  wait "$flock_pid" 2>/dev/null
  t0=$(date +%s)
  if flock -w 20 "$lock" true; then
    ok "kill ($how): the lock was free $(( $(date +%s) - t0 )) s after the SIGKILL"
  else
    fail "kill ($how): the lock is still held 20 s after the SIGKILL, by pids $(holders "$lock" | tr '\n' ' ')(the watchdog: ${wd:-not found})"
  fi
  sleep 2
  alive "$fake_pid" && fail "kill ($how): the stand-in QEMU (pid $fake_pid) still runs"
  [[ -n $wd ]] && alive "$wd" && fail "kill ($how): the watchdog (pid $wd) still runs"
done

# ---------------------------------------------------------------- 4. run-integration
if [[ $(id -u) -ne 0 ]] || ! "$vmtest" --host-root --check >/dev/null 2>&1; then
  echo "note: part 4 (run-integration) not run: it needs root and virtiofsd (--host-root)"
else
  rm -f "$BDT_FAKE_PIDS"
  n=$fails o=$tmp/ri.out
  BDT_FAKE_CONSOLE=$(sed 's/^=== VM-ITEST start .*/VM-ITEST test_cli_errors 0\n=== VM-ITEST start test_demo/' <<<"$lockup_console") \
    "$src/scripts/vm/run-integration" --quiet --bug-grace 2 --timeout 90 "$tmp" test_cli_errors test_demo test_mounts \
    >"$o" 2>&1
  rc=$?
  cat "$o"
  [[ $rc -eq 1 ]] || fail "run-integration: exited $rc, want 1"
  want "$o" "^VM-ITEST test_demo did not finish: guest kernel soft lockup (console log: " \
    "run-integration: 'VM-ITEST test_demo did not finish: guest kernel soft lockup (console log: ...)'"
  want "$o" '^    \[  248.723885\]  btrfs_release_path+0x13/0x70 \[btrfs\]' "run-integration: the report's stack"
  want "$o" '^VM-ITEST test_mounts did not run (the guest stopped in test_demo)' "run-integration: test_mounts did not run"
  want "$o" '^vm integration: 1 passed, 2 failed, 0 skipped' "run-integration: 1 passed, 2 failed"
  ((fails == n)) && ok "run-integration names the test the soft lockup stopped, prints the report"
  # every test finished, but the kernel oopsed meanwhile: the run fails, with the report
  rm -f "$BDT_FAKE_PIDS"
  n=$fails o=$tmp/ri2.out
  BDT_FAKE_EXIT=1 BDT_FAKE_CONSOLE=$'=== VM-ITEST start test_cli_errors\nVM-ITEST test_cli_errors 0\n[   80.000001] Oops: 0002 [#1] PREEMPT SMP NOPTI\n[   80.000002] RIP: 0010:btrfs_get_extent+0x1/0x2 [btrfs]\n<<<BDT-VM-EXIT status=0>>>' \
    "$src/scripts/vm/run-integration" --quiet --timeout 90 "$tmp" test_cli_errors >"$o" 2>&1
  rc=$?
  cat "$o"
  [[ $rc -eq 1 ]] || fail "run-integration, oops after the tests: exited $rc, want 1"
  want "$o" "^guest kernel oops during the run (console log: " "run-integration: 'guest kernel oops during the run'"
  want "$o" '^    \[   80.000002\] RIP: 0010:btrfs_get_extent+0x1/0x2 \[btrfs\]' "run-integration: the oops report"
  ((fails == n)) && ok "run-integration fails a run whose tests passed while the kernel oopsed, with the report"
  # a flaky test named three times (its second run fails) around another test: each run counted
  frepo=$tmp/repo
  mkdir -p "$frepo/scripts/vm" "$frepo/tests/integration"
  cp "$src/scripts/vmtest" "$frepo/scripts/"
  cp "$src/scripts/vm/init" "$src/scripts/vm/run-integration" "$frepo/scripts/vm/"
  cat >"$frepo/tests/integration/test_flaky.sh" <<'EOF'
n=$(( $(cat "$BDT_FAKE_RUNS" 2>/dev/null || echo 0) + 1 ))
echo $n >"$BDT_FAKE_RUNS"
[ $n -eq 2 ] && { echo "FAIL: test_flaky failed in run $n"; exit 1; }
echo "ok: test_flaky run $n"
EOF
  echo 'echo "ok: test_steady"' >"$frepo/tests/integration/test_steady.sh"
  rm -f "$BDT_FAKE_PIDS" "$tmp/runs"
  n=$fails o=$tmp/ri3.out
  BDT_FAKE_GUEST=1 BDT_FAKE_RUNS=$tmp/runs BDT_FAKE_CONSOLE="BDT-VM: READY kernel 6.1.0" \
    "$frepo/scripts/vm/run-integration" --quiet --timeout 90 "$tmp" test_flaky test_steady test_flaky test_flaky \
    >"$o" 2>&1
  rc=$?
  cat "$o"
  runs=$(cat "$tmp/runs" 2>/dev/null || echo 0)
  [[ $runs == 3 ]] || fail "run-integration, a test named 3 times: it ran $runs times"
  [[ $rc -eq 1 ]] || fail "run-integration, a test named 3 times, its run 2 failing: exited $rc, want 1"
  want "$o" '^VM-ITEST test_flaky#2 failed with status 1:$' "run-integration: 'VM-ITEST test_flaky#2 failed with status 1:'"
  want "$o" '^    FAIL: test_flaky failed in run 2$' "run-integration: the FAIL line of test_flaky's run 2"
  grep -q '^VM-ITEST test_flaky#[13] failed' "$o" && fail "run-integration: a run of test_flaky that passed reported as failed"
  for k in 1 2 3; do
    want "$o" "^VM-ITEST-TIME test_flaky#$k [0-9]* s$" "run-integration: the time of test_flaky's run $k"
  done
  want "$o" '^VM-ITEST-TIME test_steady [0-9]* s$' "run-integration: test_steady (named once) under its own name"
  want "$o" '^vm integration: 3 passed, 1 failed, 0 skipped$' "run-integration: '3 passed, 1 failed, 0 skipped' (every run counted)"
  ((fails == n)) && ok "run-integration runs a test named 3 times 3 times, counts every run, fails on the failing one"
fi

if ((fails)); then echo "test_vm_harness: $fails failure(s)"; exit 1; fi
echo "test_vm_harness: PASS"
