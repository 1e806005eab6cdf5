#!/usr/bin/env bash
# VM tier: the harness's own failure handling (scripts/vmtest), with a stand-in for QEMU that
# writes a console log and hangs; no guest boots, so it takes seconds:
#  - a run under `flock LOCK` that is SIGKILLed releases LOCK within seconds: killing vmtest
#    alone (QEMU is killed by the watchdog) and killing the whole process group (the watchdog,
#    in its own session, holds no descriptor and exits)
# Exit 77 (SKIPPED: reason) when the VM tier is unavailable (it needs the kernel cache).
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
# alive PID: PID runs (exists and is not a zombie: an orphan's exit may be reaped late)
alive() { local s; read -r s 2>/dev/null </proc/"$1"/stat || return 1; s=${s##*) }; [[ $s != Z* ]]; }

# ---------------------------------------------------------------- the stand-in QEMU
vm_check
# Writes BDT_FAKE_CONSOLE (CRLF line ends) to the -serial file, its pid and its parent's (vmtest)
# to BDT_FAKE_PIDS, then exits with status 0 if BDT_FAKE_EXIT is set, else hangs.
cat >"$tmp/qemu" <<'EOF'
#!/bin/bash
[[ ${1:-} == --version ]] && { echo "QEMU emulator version 0 (a stand-in)"; exit 0; }
prev="" serial=""
for a in "$@"; do [[ $prev == -serial ]] && serial=${a#file:}; prev=$a; done
echo "$$ $PPID" >"$BDT_FAKE_PIDS"
printf '%s\n' "$BDT_FAKE_CONSOLE" | sed 's/$/\r/' >>"$serial"
[[ -n ${BDT_FAKE_EXIT:-} ]] && exit 0
exec sleep 1000
EOF
chmod +x "$tmp/qemu"
export BDT_VM_QEMU=$tmp/qemu BDT_FAKE_PIDS=$tmp/qemu.pids
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

# ---------------------------------------------------------------- a killed run releases the lock
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

if ((fails)); then echo "test_vm_harness: $fails failure(s)"; exit 1; fi
echo "test_vm_harness: PASS"
