#!/usr/bin/env bash
# The service's restart path (docs/deployment.md): a tracer that pinned its
# flight recorder is killed; `status` lists the recorder (owner gone, programs
# still recording, size, age); a new `trace --pin-dir` on the same directory is
# refused (what would make a service loop); `dump --pin-dir --post-mortem DEST`
# saves it as a record file (mode 0600) that `replay` reads, releases the pins
# and programs, and a new tracer then starts on the same directory. Also: a
# clean stop leaves a recorder the next post-mortem saves too, --keep prunes
# the oldest, nothing pinned is exit 0, a running owner is exit 1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init post-mortem
itest_bpffs
scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
PIN=/sys/fs/bpf/bdt-itest-pm-$$
PM=$ITEST_TMP/state/post-mortem
ITEST_CLEANUPS+=("release_pin $PIN")
F=$SCRATCH_NOCOW/pm-file
dd if=/dev/zero of="$F" bs=64k count=16 status=none && sync

# ---- a run that dies: kill -9 -------------------------------------------------
start_tracer "$ITEST_TMP/t1.out" --mount "$SCRATCH_MNT" --pin-dir "$PIN"
dd if=/dev/zero of="$F" bs=64k count=16 oflag=direct conv=notrunc status=none
sleep 0.5
OLD_PID=$TRACER_PID
kill -KILL "$TRACER_PID"; wait "$TRACER_PID" 2>/dev/null; TRACER_PID=
# The programs go on recording through the pinned links.
dd if=/dev/zero of="$F" bs=64k count=8 oflag=direct conv=notrunc status=none

"$BIN" status >"$ITEST_TMP/status.txt" 2>&1 || fail "status failed: $(cat "$ITEST_TMP/status.txt")"
cat "$ITEST_TMP/status.txt"
grep -qE "^$PIN +pid $OLD_PID gone .* attached +[0-9]+ +[0-9]+ +[0-9.]+ MiB" "$ITEST_TMP/status.txt" &&
    pass "status lists $PIN: owner pid $OLD_PID gone, programs attached" || fail "status does not list $PIN as expected"
"$BIN" status -f json >"$ITEST_TMP/status.json" || fail "status -f json failed"
python3 - "$ITEST_TMP/status.json" "$PIN" "$OLD_PID" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, sys
j = json.load(open(sys.argv[1])); pin, pid = sys.argv[2], int(sys.argv[3])
r = [x for x in j["recorders"] if x["pin_dir"] == pin]
ok = len(r) == 1 and r[0]["tracer_pid"] == pid and not r[0]["tracer_running"] and r[0]["recording"] \
     and r[0]["recorded"] >= 24 and r[0]["kernel_bytes"] >= r[0]["ncpus"] * r[0]["slots_per_cpu"] * 256 \
     and 0 <= r[0]["age_s"] < 120
print(f"{'ok' if ok else 'FAIL'}: status JSON for {pin}: {r}")
sys.exit(0 if ok else 1)
PY

# What a plain restart would do: refused, exit 1 (the loop the post-mortem step prevents).
"$BIN" trace --pin-dir "$PIN" --mount "$SCRATCH_MNT" -d 1 >/dev/null 2>"$ITEST_TMP/again.err"; rc=$?
[[ $rc -eq 1 ]] && grep -q "already holds a flight recorder" "$ITEST_TMP/again.err" &&
    pass "a new trace on the same --pin-dir is refused: $(cat "$ITEST_TMP/again.err")" ||
    fail "second trace on $PIN: exit $rc: $(cat "$ITEST_TMP/again.err")"

# ---- the post-mortem: save, release -------------------------------------------
"$BIN" dump --pin-dir "$PIN" --post-mortem "$PM" >"$ITEST_TMP/pm1.out" 2>"$ITEST_TMP/pm1.err"; rc=$?
cat "$ITEST_TMP/pm1.err"
[[ $rc -eq 0 ]] && pass "post-mortem exit 0" || fail "post-mortem exit $rc"
[[ ! -s $ITEST_TMP/pm1.out ]] || fail "post-mortem printed on stdout: $(head -n 3 "$ITEST_TMP/pm1.out")"
pm_files() { find "$PM" -maxdepth 1 -name "${1:-post-mortem-*.bdt}" 2>/dev/null | sort; }
mapfile -t files < <(pm_files "post-mortem-*-pid$OLD_PID.bdt")
if [[ ${#files[@]} -eq 1 ]]; then
    PMF=${files[0]}
    pass "saved $PMF ($(stat -c %s "$PMF") bytes)"
    [[ $(stat -c %a "$PMF") == 600 && $(stat -c %a "$PM") == 700 ]] && pass "mode 0600 in a 0700 directory" ||
        fail "modes: file $(stat -c %a "$PMF"), dir $(stat -c %a "$PM")"
    "$BIN" replay "$PMF" -f json --events >"$ITEST_TMP/pm1.jsonl" 2>"$ITEST_TMP/pm1-replay.err" ||
        fail "replay of the post-mortem failed: $(cat "$ITEST_TMP/pm1-replay.err")"
    python3 - "$ITEST_TMP/pm1.jsonl" "$F" "$(hostname)" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, os, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
h, st = lines[0], os.stat(sys.argv[2])
w = [e for e in lines if e.get("type") == "dio_begin" and e.get("ino") == st.st_ino and e.get("write")]
ok = h.get("hostname") == sys.argv[3] and h.get("mono_to_realtime_ns") and len(w) >= 24
print(f"{'ok' if ok else 'FAIL'}: the post-mortem replays: header hostname {h.get('hostname')}, "
      f"{len(w)} DIO writes to the file (24 made, 8 of them after the kill)")
sys.exit(0 if ok else 1)
PY
else
    fail "want one post-mortem file for pid $OLD_PID in $PM: $(ls -la "$PM" 2>&1)"
fi
[[ ! -e $PIN ]] && pass "the pins are released ($PIN removed)" || fail "$PIN still there: $(ls "$PIN")"
# The kernel frees a detached link's program asynchronously: allow it a moment.
for _ in $(seq 1 30); do [[ $(bdt_prog_count) -le $ITEST_PROGS_BEFORE ]] && break; sleep 0.1; done
[[ $(bdt_prog_count) -le $ITEST_PROGS_BEFORE ]] && pass "the dead tracer's programs are detached" ||
    fail "programs still loaded: $(bdt_prog_count)"
"$BIN" status | grep -qF "$PIN" && fail "status still lists $PIN" || pass "status no longer lists it"

# Nothing pinned: exit 0, says so.
out=$("$BIN" dump --pin-dir "$PIN" --post-mortem "$PM" 2>&1); rc=$?
[[ $rc -eq 0 && $out == *"nothing to save"* ]] && pass "nothing pinned: exit 0 ($out)" || fail "nothing pinned: exit $rc: $out"

# ---- the next run starts on the same directory; a clean stop; --keep -------------
start_tracer "$ITEST_TMP/t2.out" --mount "$SCRATCH_MNT" --pin-dir "$PIN"
pass "a new tracer starts on $PIN after the post-mortem"
out=$("$BIN" dump --pin-dir "$PIN" --post-mortem "$PM" 2>&1); rc=$?
[[ $rc -eq 1 && $out == *"still running"* ]] && pass "owner running: exit 1 ($out)" || fail "owner running: exit $rc: $out"
[[ -e $PIN/rec_meta ]] || fail "the refused post-mortem touched the running tracer's pins"
dd if=/dev/zero of="$F" bs=64k count=4 oflag=direct conv=notrunc status=none
sleep 1.1   # the post-mortems' names are to the second of their run's start
stop_tracer || fail "tracer exited non-zero"
"$BIN" dump --pin-dir "$PIN" --post-mortem "$PM" --keep 1 2>"$ITEST_TMP/pm2.err"; rc=$?
cat "$ITEST_TMP/pm2.err"
mapfile -t files < <(pm_files)
[[ $rc -eq 0 && ${#files[@]} -eq 1 && ${files[0]} != "${PMF:-}" ]] &&
    grep -q "removed the old" "$ITEST_TMP/pm2.err" && pass "a clean stop's recorder saved too; --keep 1 removed the older one" ||
    fail "second post-mortem: exit $rc, files: ${files[*]}"
[[ ! -e $PIN ]] || fail "$PIN left after the second post-mortem"
itest_finish
