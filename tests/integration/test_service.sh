#!/usr/bin/env bash
# btrfs-dio-trace.service, as installed (`cmake --install` into a scratch root,
# prefix /usr):
#  1. `systemd-analyze verify` accepts the unit (no message at all);
#  2. its commands run as systemd would run them (tests/integration/svcemu.py:
#     Environment= overridden by the /etc/default file, ${VAR}/$VAR expansion,
#     the unit's CapabilityBoundingSet= and NoNewPrivileges=, NOTIFY_SOCKET,
#     WATCHDOG_USEC, stdout a journal stream, a journald stand-in on the native
#     protocol), with the shipped settings (--qemu) but a free metrics port and
#     a test pin directory:
#       - ExecStartPre with nothing pinned: exit 0;
#       - READY=1 only once the programs are attached and the capabilities
#         dropped (the main process keeps cap_sys_ptrace + cap_dac_read_search);
#         STATUS lines; WATCHDOG=1 pings;
#       - a stand-in VM's self-mapped O_DIRECT write becomes a journal entry with
#         DETECTOR, KIND, LEVEL, SEVERITY, PRIORITY, VM, IMAGE, INODE, FS, TS_NS,
#         WALL_TIME, MESSAGE_ID and FINDING_JSON, and is not printed on stdout;
#       - kill -9, ExecStopPost: the recorder is saved and released, the next
#         ExecStartPre has nothing to do, the service starts again;
#       - kill -9 with no ExecStopPost (the leftover path): ExecStartPre saves
#         then releases it, and the service starts again instead of looping on
#         "already holds a flight recorder";
#       - SIGTERM: exit 0 after STOPPING=1; ExecStopPost saves and releases.
#     Every post-mortem replays; the first holds the VM's writes.
# Runs in a private mount namespace (tmpfs on /run/systemd and /var/lib), so
# nothing reaches the host's journal or /var/lib.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init service
command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed (Debian: systemd)"
command -v setpriv >/dev/null && command -v unshare >/dev/null || skip "setpriv/unshare (util-linux) not installed"
itest_bpffs
ROOT=$ITEST_TMP/root
DESTDIR=$ROOT cmake --install "$BUILD_DIR" --prefix /usr >"$ITEST_TMP/install.log" 2>&1 ||
    die "cmake --install into $ROOT failed: $(tail -n 5 "$ITEST_TMP/install.log")"
UNIT=$ROOT/usr/lib/systemd/system/btrfs-dio-trace.service
DEFAULTS=$ROOT/etc/default/btrfs-dio-trace
[[ -f $UNIT && -f $DEFAULTS ]] || die "the install has no unit or defaults file"

# ---- 1. systemd-analyze verify ----------------------------------------------------------
# The units it depends on (sysinit.target, ...) come from this host's systemd.
mkdir -p "$ROOT/usr/lib/systemd/system"
for d in /lib/systemd/system /usr/lib/systemd/system; do
    [[ -d $d ]] && cp -rn "$d"/. "$ROOT/usr/lib/systemd/system/" 2>/dev/null
done
out=$(systemd-analyze verify --man=no --root="$ROOT" /usr/lib/systemd/system/btrfs-dio-trace.service 2>&1); rc=$?
[[ $rc -eq 0 && -z $out ]] && pass "systemd-analyze $(systemd-analyze --version | head -n1 | awk '{print $2}') verify: the unit is clean" ||
    fail "systemd-analyze verify (rc $rc): $out"
# It does catch mistakes: a misspelt key is reported.
sed 's/^NoNewPrivileges=/NoNewPrivilegez=/' "$UNIT" >"$ROOT/usr/lib/systemd/system/bdt-bad.service"
out=$(systemd-analyze verify --man=no --root="$ROOT" /usr/lib/systemd/system/bdt-bad.service 2>&1)
[[ $out == *"Unknown key"* ]] && pass "(and reports a misspelt key in a copy)" || fail "verify did not report a misspelt key: $out"
exp=$(systemd-analyze security --offline=yes --root="$ROOT" /usr/lib/systemd/system/btrfs-dio-trace.service 2>/dev/null | tail -n1)
echo "note: systemd-analyze security: ${exp#→ }"

# ---- 2. the unit's commands, as systemd runs them ---------------------------------------
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
chmod 755 "$SCRATCH_DIR" "$SCRATCH_MNT" "$SCRATCH_NOCOW"
PIN=/sys/fs/bpf/bdt-itest-svc-$$
ITEST_CLEANUPS+=("$BIN dump --pin-dir $PIN --release >/dev/null 2>&1; rm -rf $PIN")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
IMG=$SCRATCH_NOCOW/svc-vm.raw  # nocow: a DIO write to a checksummed file goes buffered on 6.14+
VMPY=$SCRATCH_DIR/svc-vm.py
# A stand-in QEMU: a DIO write from a shared mmap of the very range it writes (a dio-short-write hazard).
cat >"$VMPY" <<'PY'
import mmap, os, sys, time
img = sys.argv[sys.argv.index("-drive") + 1].split(",")[0].split("=", 1)[1]
time.sleep(3)
fd = os.open(img, os.O_RDWR | os.O_DIRECT)
m = mmap.mmap(fd, 1 << 20, mmap.MAP_SHARED)
os.pwrite(fd, memoryview(m)[0:1 << 20], 0)
for i in range(8):
    os.pwrite(fd, memoryview(m)[0:65536], (1 << 20) + i * 65536)
m.close(); os.close(fd)
time.sleep(1.5)
PY
dd if=/dev/urandom of="$IMG" bs=1M count=4 status=none && sync
env -u JOURNAL_STREAM -u NOTIFY_SOCKET unshare -m --propagation private bash -c '
  set -e
  mount -t tmpfs -o mode=0755 tmpfs /run/systemd
  mount -t tmpfs -o mode=0755 tmpfs /var/lib
  install -d -m 0700 /var/lib/btrfs-dio-trace   # StateDirectory=btrfs-dio-trace, StateDirectoryMode=0700
  exec python3 "$@"
' _ - "$SRC_DIR/tests/integration" "$UNIT" "$DEFAULTS" "$ITEST_TMP" "$PIN" "$PORT" "$IMG" "$VMPY" "$BUILD_DIR" \
    "$ROOT/usr/sbin/btrfs-dio-trace" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import datetime, glob, json, os, re, subprocess, sys, time, urllib.request
sys.path.insert(0, sys.argv[1])
import svcemu
unit, defaults, tmp, pin, port, img, vmpy, build, bin_ = sys.argv[2:11]
bad = 0
def check(ok, what):
    global bad
    bad += not ok
    print(f"{'ok' if ok else 'FAIL'}: {what}")
    return ok

journal = svcemu.Journal()
notify = svcemu.Notify(os.path.join(tmp, "notify.sock"))
env = svcemu.parse_env_file(defaults)
# The shipped settings, with a free port and a test pin directory.
args = env["BDT_ARGS"].replace("127.0.0.1:9089", f"127.0.0.1:{port}")
check(args != env["BDT_ARGS"] and "--qemu" in args, f"shipped BDT_ARGS: {env['BDT_ARGS']}")
svc = svcemu.Service(unit, defaults, notify.path, tmp, {"BDT_ARGS": args, "BDT_PIN_DIR": pin}, watchdog_usec=2_000_000)
check(svc.argv("ExecStart")[0] == "/usr/sbin/btrfs-dio-trace", f"ExecStart: {' '.join(svc.argv('ExecStart'))}")
# Run the installed binary from the scratch root in place of /usr/sbin (nothing is installed on the host).
for k in ("ExecStartPre", "ExecStart", "ExecStopPost"):
    svc.unit[k] = [svc.unit[k][0].replace("/usr/sbin/btrfs-dio-trace", bin_, 1)]
pm_dir = "/var/lib/btrfs-dio-trace/post-mortem"

def prog_count():
    out = subprocess.run(["bpftool", "prog", "show"], capture_output=True, text=True).stdout
    return len(re.findall(r" name (tb|fe|fx|kp|kr|tp|rt)_", out))

def status(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return line.split()[1]

def start(tag):
    notify.messages.clear()
    t0 = time.monotonic()
    p = svc.start(os.path.join(tmp, f"{tag}.out"), os.path.join(tmp, f"{tag}.err"))
    t, kv = notify.first("READY", "1", 60)
    if not check(t is not None, f"{tag}: READY=1 ({(t or t0) - t0:.1f} s after start): {kv}"):
        print(open(os.path.join(tmp, f"{tag}.err")).read())
        return None
    err = open(os.path.join(tmp, f"{tag}.err")).read()
    check("capabilities kept" in err and "hooks attached" in err and prog_count() > 0,
          f"{tag}: ready only once attached and the capabilities dropped ({prog_count()} programs loaded)")
    return p

# a. nothing pinned: the pre-start step has nothing to do
rc, _, err = svc.run("ExecStartPre")
check(rc == 0 and "nothing to save" in err, f"ExecStartPre, nothing pinned: exit {rc}: {err.strip()}")

# b. start: ready, status, watchdog, capabilities
p = start("run1")
if p:
    pid = svc.tracer_pid()
    caps = int(status(pid, "CapPrm"), 16)
    want = (1 << 19) | (1 << 2)  # cap_sys_ptrace, cap_dac_read_search (+ cap_bpf on kernels before 6.5)
    capnum = {"bpf": 39, "perfmon": 38, "syslog": 34, "sys_ptrace": 19, "dac_read_search": 2}
    unit_caps = sum(1 << capnum[c.lstrip("+")] for c in svc.caps.split(","))
    check(caps & ~(1 << 39) == want and int(status(pid, "CapBnd"), 16) == unit_caps and status(pid, "NoNewPrivs") == "1",
          f"the service's main process keeps CapPrm {caps:#x} (its bounding set stays the unit's {unit_caps:#x}: without cap_setpcap it cannot shrink it; no_new_privs)")
    time.sleep(3.2)
    pings = [t for t, kv in notify.messages if kv.get("WATCHDOG") == "1"]
    check(len(pings) >= 2, f"WATCHDOG=1 pinged {len(pings)} times in 3 s (WATCHDOG_USEC=2 s)")
    sts = [kv["STATUS"] for t, kv in notify.messages if "STATUS" in kv]
    check(any("hooks attached" in s for s in sts), f"STATUS: {sts[-1] if sts else None}")
    # c. a finding from a VM: a journal entry with its fields, not a stdout line
    vm = subprocess.run(["bash", "-c", 'exec -a qemu-system-x86_64 /usr/bin/python3 "$0" -name guest=svc-vm '
                         '-drive "file=$1,format=raw,cache=none,aio=threads"', vmpy, img])
    check(vm.returncode == 0, "the stand-in VM ran")
    ent = None
    for _ in range(100):
        ent = next((e for e in journal.entries if e.get("DETECTOR") == "dio-short-write"), None)
        if ent: break
        time.sleep(0.1)
    if check(ent is not None, f"a dio-short-write finding reached the journal ({len(journal.entries)} entries, "
                              f"errors {journal.errors})") or print(open(os.path.join(tmp, "run1.err")).read()[-3000:]):
        st = os.stat(img)
        fj = json.loads(ent["FINDING_JSON"])
        wall = ent.get("WALL_TIME", "")
        check(ent.get("LEVEL") == fj["level"] and ent.get("SEVERITY") == fj["severity"]
              and ent.get("PRIORITY") == {"critical": "2", "warning": "4", "info": "6"}[fj["severity"]]
              and ent.get("KIND") == fj["kind"] and ent.get("VM") == "svc-vm" and ent.get("IMAGE") == img
              and ent.get("INODE") == str(st.st_ino) and ent.get("FS") == fj["fs"] and ent.get("TS_NS") == str(fj["ts_ns"])
              and wall == fj.get("wall_time") and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", wall)
              and ent.get("MESSAGE_ID") == "6f1c2b7e0a8d4c39b5e2d17a9c3f4e21"
              and ent.get("SYSLOG_IDENTIFIER") == "btrfs-dio-trace" and ent.get("MESSAGE", "").startswith("HAZARD"),
              "journal fields: " + ", ".join(f"{k}={ent.get(k)}" for k in
                  ("DETECTOR", "KIND", "LEVEL", "SEVERITY", "PRIORITY", "VM", "IMAGE", "INODE", "TS_NS", "WALL_TIME")))
        print(f"   MESSAGE={ent['MESSAGE'][:160]}")
    snaps = glob.glob("/var/lib/btrfs-dio-trace/snapshots/snapshot-*dio-short-write*")
    check(len(snaps) >= 1, f"the finding's snapshot written after the drop: {[os.path.basename(s) for s in snaps]}")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    check("btrfs_dio_trace_build_info{" in body, "metrics served on the configured port")
    # d. a crash, then systemd's ExecStopPost: saved and released
    svc.stop(9)
    out = open(os.path.join(tmp, "run1.out")).read()
    check("HAZARD" not in out and "dio-short-write" not in out, "the finding was not printed on stdout (the journal has it)")
    rc, _, err = svc.run("ExecStopPost")
    check(rc == 0 and "post-mortem:" in err and "saved to" in err and not os.path.exists(pin),
          f"kill -9, ExecStopPost: exit {rc}, recorder saved and {pin} released")
    rc, _, err = svc.run("ExecStartPre")
    check(rc == 0 and "nothing to save" in err, f"ExecStartPre after it: nothing to do ({err.strip()})")

# e. the leftover path: a crash whose ExecStopPost never ran
p = start("run2")
if p:
    svc.stop(9)
    check(os.path.exists(os.path.join(pin, "rec_meta")), "kill -9 without ExecStopPost leaves the recorder pinned")
    rc, _, err = svc.run("ExecStartPre")
    check(rc == 0 and "saved to" in err and "removed" in err and not os.path.exists(pin),
          f"ExecStartPre saved, then released it (exit {rc})")
    p = start("run3")
    if p:
        # f. a clean stop
        notify.messages.clear()
        rc = svc.stop(15)
        t, kv = notify.first("STOPPING", "1", 1)
        check(rc == 0 and t is not None, f"SIGTERM: exit {rc}, STOPPING=1 sent")
        rc, _, err = svc.run("ExecStopPost")
        check(rc == 0 and "saved to" in err and not os.path.exists(pin), f"ExecStopPost after a clean stop: saved, released")

pms = sorted(glob.glob(os.path.join(pm_dir, "post-mortem-*.bdt")))
check(len(pms) == 3, f"{len(pms)} post-mortems in {pm_dir}: {[os.path.basename(x) for x in pms]}")
writes = 0
for i, f in enumerate(pms):
    r = subprocess.run([bin_, "replay", "--events", "-f", "json", f], capture_output=True, text=True)
    check(r.returncode == 0, f"replay {os.path.basename(f)}: exit {r.returncode}")
    if i == 0:
        writes = sum(1 for l in r.stdout.splitlines() if '"type":"dio_begin"' in l and '"write":true' in l)
check(writes >= 9, f"the first run's post-mortem holds the VM's DIO writes ({writes})")
sys.exit(1 if bad else 0)
PY
itest_finish
