"""The BPF maps a process holds (the tracer's, found through its file descriptors) and their
contents, read with bpftool. Shared by scripts/soak.sh and the integration tests that look into
the tracer's kernel state (tests/integration/test_fault_qemu_kill.sh); import it with
PYTHONPATH=SRC/scripts/lib."""
import glob
import json
import re
import subprocess


def map_ids(pid):
    """The ids of the BPF maps process pid has open (map_id in /proc/PID/fdinfo)."""
    ids = set()
    for f in glob.glob(f"/proc/{pid}/fdinfo/*"):
        try:
            m = re.search(r"^map_id:\s*(\d+)", open(f).read(), re.M)
        except OSError:
            continue
        if m:
            ids.add(int(m.group(1)))
    return ids


def maps(pid):
    """`bpftool -j map show` of each map process pid has open, in id order ({} for a map that
    went away meanwhile)."""
    return [json.loads(subprocess.run(["bpftool", "-j", "map", "show", "id", str(i)],
                                      capture_output=True, text=True).stdout or "{}")
            for i in sorted(map_ids(pid))]


def dump(map_id, check=False):
    """`bpftool -j map dump` of one map: its entries as bpftool prints them."""
    out = subprocess.run(["bpftool", "-j", "map", "dump", "id", str(map_id)],
                         capture_output=True, text=True, check=check).stdout
    return json.loads(out)
