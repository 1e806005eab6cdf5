#!/usr/bin/env bash
# VM tier: the tool's `doctor` in the Debian 6.1 guest. The binary runs there
# with its shared libraries, sees vmlinux and btrfs module BTF, and finds the
# function hooks (btrfs_get_extent, free_extent_buffer, find_extent_buffer)
# attachable with fentry or kprobe, which this host refuses. Exits 77 (skipped,
# said loudly) when the binary is not built or the VM tier is unavailable.
#   tests/vm/test_vm_doctor.sh [BUILD_DIR]
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
vm_init "${1:-}"
vm_need_bin
vm_need_cmd python3 "python3 is needed to check the JSON"
vm_check

out=$(mktemp /tmp/bdt-vm-doctor.XXXXXX)
trap 'rm -f "$out"' EXIT
"$vmtest" --timeout 300 --add "$bin:/usr/local/bin/btrfs-dio-trace" --run '
btrfs-dio-trace doctor
btrfs-dio-trace doctor --format json >/tmp/doctor.json
rc=$?
echo "DOCTOR-JSON: $(tr -d "\n" </tmp/doctor.json)"
exit $rc' >"$out" 2>&1
rc=$?
cat "$out"
if [[ $rc -ne 0 ]]; then echo "FAIL: doctor in the guest exited $rc"; exit 1; fi

json=$(sed -n 's/^DOCTOR-JSON: //p' "$out" | tr -d '\r' | tail -n1)
python3 - "$json" <<'PY'
import json, sys
fails = []
try:
    d = json.loads(sys.argv[1])
except Exception as e:
    print(f"FAIL: doctor --format json printed no valid JSON in the guest: {e}")
    sys.exit(1)
kernel = str(d.get("kernel", ""))
if not kernel.startswith("6.1."):
    fails.append(f"kernel is {kernel!r}, expected Debian 6.1")
btf = d.get("btf", {})
if not btf.get("vmlinux"):
    fails.append("doctor does not see vmlinux BTF")
if not btf.get("btrfs_module"):
    fails.append("doctor does not see the btrfs module BTF")
hooks = {h.get("name"): h for h in d.get("hooks", [])}
for fn in ("btrfs_get_extent()", "free_extent_buffer()", "find_extent_buffer()"):
    h = hooks.get(fn)
    if h is None:
        fails.append(f"no hook {fn} in doctor output")
        continue
    mech, reason = h.get("mechanism"), h.get("reason")
    if mech not in ("fentry", "fexit", "kprobe", "kretprobe"):
        fails.append(f"{fn}: mechanism {mech!r} ({reason}), expected fentry or kprobe in the 6.1 guest")
    else:
        print(f"ok: {fn} -> {mech} (attached={h.get('attached')}): {reason}")
for f in fails:
    print("FAIL: " + f)
sys.exit(1 if fails else 0)
PY
rc=$?
[[ $rc -eq 0 ]] && echo "test_vm_doctor: PASS"
exit $rc
