# Shared preamble of the VM tier's tests (tests/vm/test_vm_*.sh; not a test
# itself: the tier's glob is test_*.sh). Source it after `set -uo pipefail`:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   vm_init "${1:-}"          src, vmtest, kernel; build and bin when a build dir is given or found
#   vm_need_bin               SKIPPED (exit 77) unless $bin is built
#   vm_need_root WHY          SKIPPED unless root
#   vm_need_cmd CMD WHY       SKIPPED unless CMD is installed
#   vm_check [VMTEST_OPTS]    scripts/vmtest --check with those options: 121 = SKIPPED,
#                             any other failure = FAIL (exit 1); its output in $check
#   vm_itests BACKEND WHAT [RUN_OPTS...] -- TEST...
#                             the integration tests in one guest boot (scripts/vm/run-integration);
#                             prints "ok: BACKEND: WHAT" or FAIL; returns 1 unless all passed
# A test that cannot run prints "SKIPPED: reason" and exits 77 (ctest SKIP_RETURN_CODE).

vm_skip() { echo "SKIPPED: $*"; exit 77; }

# $1: the build dir argument ("" = $BDT_BUILD_DIR or <source>/build).
vm_init() {
  src=${BDT_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
  vmtest=$src/scripts/vmtest
  kernel=${BDT_VM_KERNEL:-6.1}
  build=$(cd "${1:-${BDT_BUILD_DIR:-$src/build}}" 2>/dev/null && pwd) || build=""
  bin=${build:+$build/btrfs-dio-trace}
}

vm_need_bin() {
  [[ -n $build ]] || vm_skip "no build dir"
  [[ -x $bin ]] || vm_skip "$bin is not built"
}

vm_need_root() { [[ $(id -u) -eq 0 ]] || vm_skip "$*"; }

vm_need_cmd() {
  local cmd=$1
  shift
  command -v "$cmd" >/dev/null || vm_skip "$*"
}

vm_check() {
  local rc
  check=$("$vmtest" "$@" --check 2>&1)
  rc=$?
  if [[ $rc -eq 121 ]]; then
    vm_skip "VM tier unavailable: $(tail -n1 <<<"$check")"
  elif [[ $rc -ne 0 ]]; then
    echo "$check"
    echo "FAIL: scripts/vmtest${*:+ $*} --check exited $rc"
    exit 1
  fi
}

vm_itests() {
  local be=$1 what=$2
  shift 2
  local opts=()
  while [[ $# -gt 0 && $1 != -- ]]; do opts+=("$1"); shift; done
  shift
  local tests=("$@") t0 out rc last
  t0=$(date +%s)
  out=$("$src/scripts/vm/run-integration" --backend "$be" --quiet --timeout 1500 "${opts[@]}" \
        "$build" "${tests[@]}" 2>&1)
  rc=$?
  echo "$out" | grep -vE '^(vmtest:|BDT-VM:)'
  echo "backend $be: run-integration exited $rc in $(( $(date +%s) - t0 )) s"
  last=$(grep -E '^vm integration' <<<"$out" | tail -n1)
  [[ $rc -eq 77 ]] && vm_skip "VM tier unavailable"
  if [[ $last =~ :\ ([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped ]] &&
     [[ ${BASH_REMATCH[1]} -eq ${#tests[@]} && $rc -eq 0 ]]; then
    echo "ok: $be: $what"
    return 0
  fi
  echo "FAIL: $be: want ${#tests[@]} passed, got '${last:-no summary}' (exit $rc)"
  return 1
}
