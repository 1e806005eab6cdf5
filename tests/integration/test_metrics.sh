#!/usr/bin/env bash
# --metrics-addr scraped by a real Prometheus server (Debian's prometheus).
# The tracer serves 127.0.0.1:PORT; a throw-away Prometheus (temp config and
# storage, scrape interval 1 s) scrapes it while dd does a known number of
# O_DIRECT writes and reads on a scratch btrfs; the test then asks
# Prometheus's HTTP API (/api/v1/query) for the btrfs_dio_trace_* series and
# compares them with what the workload did. `promtool check metrics` must
# accept the exposition. Also: 404 for other paths, usage errors for a bad
# address and a port in use. Then with --qemu: per-VM/per-image series for a
# stand-in QEMU process (argv[0] qemu-system-x86_64 and a -drive command line)
# doing a known number of O_DIRECT writes to its image. Then the monitoring that ships
# with the package: `promtool check rules` and `promtool test rules` on
# deploy/prometheus/alerts.yml, and every query of the Grafana dashboard
# (deploy/grafana/btrfs-dio-trace.json) run against this Prometheus: each must
# parse and return data. Expected: every check passes.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init metrics
command -v prometheus >/dev/null && command -v promtool >/dev/null ||
    skip "prometheus/promtool not installed (scripts/install-deps installs Debian's prometheus package)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
PPORT=$(free_port)
while [[ $PPORT == "$PORT" ]]; do PPORT=$(free_port); done
http_get() { # URL -> body on stdout; prints "HTTP <code>" on stderr for non-200
    python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
except urllib.error.HTTPError as e:
    print(f"HTTP {e.code}", file=sys.stderr); sys.exit(3)
PY
}

# Usage errors come before anything is attached: exit 1, one line naming the option.
err=$("$BIN" trace --metrics-addr nonsense 2>&1 >/dev/null); rc=$?
[[ $rc -eq 1 && $err == *"--metrics-addr"* ]] && pass "bad address: exit 1 ($err)" ||
    fail "bad address: want exit 1 naming --metrics-addr, got $rc: $err"

scratch_btrfs_setup 1G || die "scratch btrfs setup failed"
F=$SCRATCH_NOCOW/f
dd if=/dev/zero of="$F" bs=1M count=2 status=none && sync

OUT=$ITEST_TMP/trace.jsonl
start_tracer "$OUT" --events --format json --mount "$SCRATCH_MNT" --metrics-addr "127.0.0.1:$PORT"
grep -q "serving Prometheus metrics on http://127.0.0.1:$PORT/metrics" "$OUT.err" &&
    pass "tracer says where it serves" || fail "no 'serving Prometheus metrics' line: $(cat "$OUT.err")"

err=$("$BIN" trace --metrics-addr "127.0.0.1:$PORT" 2>&1 >/dev/null); rc=$?
[[ $rc -eq 1 && $err == *"already in use"* ]] && pass "port in use: exit 1 ($err)" ||
    fail "port in use: want exit 1 'already in use', got $rc: $err"

# A throw-away Prometheus scraping the tracer every second.
PDIR=$ITEST_TMP/prometheus
mkdir -p "$PDIR/data"
cat >"$PDIR/prometheus.yml" <<EOF2
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: btrfs-dio-trace   # the job name deploy/prometheus/alerts.yml and the dashboard use
    static_configs:
      - targets: ['127.0.0.1:$PORT']
EOF2
promtool check config "$PDIR/prometheus.yml" >/dev/null 2>&1 || die "promtool rejects the test's config: $(promtool check config "$PDIR/prometheus.yml" 2>&1)"
prometheus --config.file="$PDIR/prometheus.yml" --storage.tsdb.path="$PDIR/data" \
    --web.listen-address="127.0.0.1:$PPORT" --log.level=warn >"$PDIR/log" 2>&1 &
PROM_PID=$!
# Runs before lib.sh removes $ITEST_TMP, also on failure.
ITEST_CLEANUPS+=("kill $PROM_PID 2>/dev/null; wait $PROM_PID 2>/dev/null")
PROM=http://127.0.0.1:$PPORT
for _ in $(seq 1 60); do
    http_get "$PROM/-/ready" >/dev/null 2>&1 && break
    kill -0 "$PROM_PID" 2>/dev/null || die "prometheus exited: $(tail -n 5 "$PDIR/log")"
    sleep 0.5
done
http_get "$PROM/-/ready" >/dev/null 2>&1 || die "prometheus not ready after 30 s: $(tail -n 5 "$PDIR/log")"
pass "prometheus $(prometheus --version 2>&1 | head -n1 | awk '{print $3}') scraping 127.0.0.1:$PORT"

# The workload: 24 x 64 KiB O_DIRECT writes, 8 x 64 KiB O_DIRECT reads.
W=24 R=8
dd if=/dev/zero of="$F" bs=64k count=$W oflag=direct conv=notrunc status=none
dd if="$F" of=/dev/null bs=64k count=$R iflag=direct status=none
sync

# The exposition itself: promtool accepts it, other paths are 404.
SCRAPE=$ITEST_TMP/scrape.txt
http_get "http://127.0.0.1:$PORT/metrics" >"$SCRAPE" || fail "GET /metrics failed"
lint=$(promtool check metrics <"$SCRAPE" 2>&1); rc=$?
[[ $rc -eq 0 && $(grep -c '^btrfs_dio_trace_' "$SCRAPE") -gt 50 ]] &&
    pass "promtool check metrics accepts $(grep -c '^btrfs_dio_trace_' "$SCRAPE") samples" ||
    fail "promtool check metrics (rc $rc): $lint; $(wc -l <"$SCRAPE") lines"
grep -v '^#' "$SCRAPE" | grep -v '^btrfs_dio_trace_' | grep -v '^process_' | head -n 3 | grep -q . &&
    fail "samples without the btrfs_dio_trace_ prefix (other than process_*): $(grep -v '^#' "$SCRAPE" | grep -v '^btrfs_dio_trace_' | grep -v '^process_' | head -n 3)"
for m in process_cpu_seconds_total process_start_time_seconds process_resident_memory_bytes \
         process_virtual_memory_bytes process_open_fds process_max_fds; do
    grep -qE "^$m [0-9.e+]+$" "$SCRAPE" && pass "$(grep "^$m " "$SCRAPE")" || fail "no $m sample"
done
ver=$("$BIN" --version | awk '{print $2}')
grep -qE "^btrfs_dio_trace_build_info\{version=\"$ver\",libbpf=\"[0-9]+\.[0-9]+\"\} 1$" "$SCRAPE" &&
    pass "$(grep '^btrfs_dio_trace_build_info' "$SCRAPE")" || fail "build_info: $(grep build_info "$SCRAPE")"
# The mountpoint label names where the traced filesystem is mounted.
grep -qF "btrfs_dio_trace_dio_requests_total{fs=\"$SCRATCH_FSID\",mountpoint=\"$SCRATCH_MNT\",direction=\"write\"}" "$SCRAPE" &&
    pass "fs $SCRATCH_FSID has mountpoint=\"$SCRATCH_MNT\"" ||
    fail "no mountpoint=\"$SCRATCH_MNT\" label: $(grep -m2 '^btrfs_dio_trace_dio_requests_total' "$SCRAPE")"
code=$(http_get "http://127.0.0.1:$PORT/nope" 2>&1 >/dev/null)
[[ $code == "HTTP 404" ]] && pass "GET /nope: 404" || fail "GET /nope: want HTTP 404, got '$code'"
landing=$(http_get "http://127.0.0.1:$PORT/" 2>&1)
[[ $landing == *'<a href="/metrics">'* && $landing == *"version $ver"* ]] && pass "GET /: landing page linking /metrics" ||
    fail "GET /: no landing page: $landing"

# What Prometheus stored (wait for scrapes after the workload).
python3 - "$PROM" "$SCRATCH_FSID" "$(uname -r)" $W $R "$ITEST_TMP/read_bytes" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, sys, time, urllib.parse, urllib.request
prom, fsid, kernel, W, R = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def query(q):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    r = json.load(urllib.request.urlopen(url, timeout=10))
    if r.get("status") != "success":
        raise SystemExit(f"FAIL: query {q}: {r}")
    return r["data"]["result"]
def value(q):
    res = query(q)
    return float(res[0]["value"][1]) if res else None
K = 65536
fs = f'fs="{fsid}"'
want = {
    f'sum(btrfs_dio_trace_dio_requests_total{{{fs},direction="write"}})': W,
    f'sum(btrfs_dio_trace_dio_bytes_total{{{fs},direction="write"}})': W * K,
    f'sum(btrfs_dio_trace_dio_requests_total{{{fs},direction="read"}})': R,
    f'sum(btrfs_dio_trace_dio_request_latency_seconds_count{{{fs},direction="write"}})': W,
    f'sum(btrfs_dio_trace_dio_request_latency_seconds_bucket{{{fs},direction="write",le="+Inf"}})': W,
    'sum(btrfs_dio_trace_events_total{type="dio_begin"})': W + R,
    'sum(btrfs_dio_trace_events_total{type="dio_end"})': W + R,
    f'sum(btrfs_dio_trace_dio_errors_total{{{fs}}})': 0,
    f'sum(btrfs_dio_trace_dio_short_writes_total{{{fs}}})': 0,
    'sum(btrfs_dio_trace_lost_events_total)': 0,
    'up{job="btrfs-dio-trace"}': 1,
    f'btrfs_dio_trace_info{{kernel="{kernel}",backend_requested="auto"}}': 1,
}
got = {}
deadline = time.time() + 40
while time.time() < deadline:
    got = {q: value(q) for q in want}
    if all(got[q] == v for q, v in want.items()):
        break
    time.sleep(1)
bad = 0
for q, v in want.items():
    ok = got[q] == v
    bad += not ok
    print(f"{'ok' if ok else 'FAIL'}: prometheus {q} = {got[q]} (want {v})")
# Checks that hold without an exact expected value.
hooks = value("sum(btrfs_dio_trace_hooks_attached)")
ok = hooks is not None and hooks > 0; bad += not ok
print(f"{'ok' if ok else 'FAIL'}: hooks attached per Prometheus: {hooks}")
series = value('count({__name__=~"btrfs_dio_trace_.+"})')
ok = series is not None and series >= 100; bad += not ok
print(f"{'ok' if ok else 'FAIL'}: {series} btrfs_dio_trace_* series stored")
p50 = value(f'histogram_quantile(0.5, sum by (le) (btrfs_dio_trace_dio_request_latency_seconds_bucket{{{fs},direction="write"}}))')
ok = p50 is not None and 0 < p50 < 10; bad += not ok
print(f"{'ok' if ok else 'FAIL'}: median DIO write latency from the histogram: {p50} s")
# Read bytes: compared with the tracer's own events below (a DIO read into a
# buffer dd never touched can end with 0 bytes: btrfs then reads buffered).
rb = value(f'sum(btrfs_dio_trace_dio_bytes_total{{{fs},direction="read"}})')
open(sys.argv[6], "w").write(str(rb))
sys.exit(1 if bad else 0)
PY

stop_tracer || fail "tracer exited non-zero"
cp "$OUT" /tmp/bdt-last-metrics.jsonl 2>/dev/null || true
echo "--- tracer stderr"; cat "$OUT.err"
ITEST_DIR=$(dirname "$0") python3 - "$OUT" "$F" "$(cat "$ITEST_TMP/read_bytes" 2>/dev/null)" $R <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import os, sys
sys.path.insert(0, os.environ.get("ITEST_DIR", "."))
from bdtcheck import load
out, path, prom_rb, R = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ev, _, _ = load(out)
st = os.stat(path)
ends = [e for e in ev if e["type"] == "dio_end" and e["dev"] == st.st_dev and e["ino"] == st.st_ino
        and e.get("write") is False]
want = sum(max(e["ret"], 0) for e in ends)
ok = len(ends) == R and prom_rb and float(prom_rb) == want and 0 < want <= R * 65536
print(f"{'ok' if ok else 'FAIL'}: DIO read bytes per Prometheus {prom_rb} = sum of the {len(ends)} read dio_end events {want}")
sys.exit(0 if ok else 1)
PY

# --qemu: per-VM series. A stand-in hypervisor: a process whose argv[0] is
# qemu-system-x86_64 with a QEMU command line naming its disk image (that is
# all discovery looks at), doing O_DIRECT writes to the image once the tracer
# has had time to find it (/proc is rescanned every second).
IMG=$SCRATCH_NOCOW/vm-disk.raw
dd if=/dev/zero of="$IMG" bs=1M count=4 status=none && sync
QW=16
cat >"$ITEST_TMP/fake-vm.py" <<'PY'
import mmap, os, sys, time
img, n = sys.argv[sys.argv.index("-drive") + 1].split(",")[0].split("=", 1)[1], int(os.environ["QW"])
time.sleep(3)
fd = os.open(img, os.O_RDWR | os.O_DIRECT)
# The first write's buffer is a shared mmap of the very range it writes: a dio-short-write hazard,
# so the VM has a finding (btrfs_dio_trace_qemu_findings_total, the dashboard's findings panels).
own = mmap.mmap(fd, 65536, mmap.MAP_SHARED)
os.pwrite(fd, memoryview(own), 0)
own.close()
buf = mmap.mmap(-1, 65536)
buf.write(b"\x5a" * 65536)
for i in range(1, n):
    os.pwrite(fd, buf, i * 65536)
os.close(fd)
time.sleep(1)
PY
OUT2=$ITEST_TMP/trace-qemu.jsonl
start_tracer "$OUT2" --qemu --format json --metrics-addr "127.0.0.1:$PORT"
PY3=$(python3 -c "import sys; print(sys.executable)")  # the interpreter itself, not a wrapper script that would lose argv[0]
(QW=$QW exec -a qemu-system-x86_64 "$PY3" "$ITEST_TMP/fake-vm.py" -name guest=bdt-metrics-vm \
    -drive "file=$IMG,format=raw,cache=none,aio=threads") || fail "stand-in VM failed"
python3 - "$PROM" "$IMG" $QW <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, sys, time, urllib.parse, urllib.request
prom, img, QW = sys.argv[1], sys.argv[2], int(sys.argv[3])
def value(q):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    res = json.load(urllib.request.urlopen(url, timeout=10))["data"]["result"]
    return float(res[0]["value"][1]) if res else None
sel = f'vm="bdt-metrics-vm",image="{img}",direction="write"'
want = {
    f"btrfs_dio_trace_qemu_requests_total{{{sel}}}": QW,
    f"btrfs_dio_trace_qemu_request_latency_seconds_count{{{sel}}}": QW,
    f'btrfs_dio_trace_qemu_errors_total{{vm="bdt-metrics-vm",image="{img}"}}': 0,
    f'btrfs_dio_trace_qemu_findings_total{{vm="bdt-metrics-vm",image="{img}",detector="dio-short-write"}}': 1,
}
got = {}
deadline = time.time() + 30
while time.time() < deadline:
    got = {q: value(q) for q in want}
    if all(got[q] == v for q, v in want.items()):
        break
    time.sleep(1)
bad = 0
for q, v in want.items():
    ok = got[q] == v
    bad += not ok
    print(f"{'ok' if ok else 'FAIL'}: prometheus {q} = {got[q]} (want {v})")
# The self-mapped write may complete part (or none) of its 64 KiB through the DIO path (btrfs then
# writes the rest buffered): every other write is 64 KiB.
qb = value(f"btrfs_dio_trace_qemu_bytes_total{{{sel}}}")
ok = qb is not None and (QW - 1) * 65536 <= qb <= QW * 65536; bad += not ok
print(f"{'ok' if ok else 'FAIL'}: prometheus qemu_bytes_total{{{sel}}} = {qb} (want {QW - 1} to {QW} x 64 KiB)")
p99 = value(f"histogram_quantile(0.99, btrfs_dio_trace_qemu_request_latency_seconds_bucket{{{sel}}})")
ok = p99 is not None and 0 < p99 < 35; bad += not ok
print(f"{'ok' if ok else 'FAIL'}: p99 write latency of the VM's image (kernel histogram): {p99} s")
sys.exit(1 if bad else 0)
PY
http_get "http://127.0.0.1:$PORT/metrics" | grep '^btrfs_dio_trace_qemu' | grep -v _bucket >"$ITEST_TMP/qemu-scrape.txt"

# The detectors' fidelity, as doctor computes it from the hooks that attached: one series per state, 1 for the current.
http_get "http://127.0.0.1:$PORT/metrics" >"$ITEST_TMP/scrape2.txt"
doc=$("$BIN" doctor -f json 2>/dev/null)
python3 - "$ITEST_TMP/scrape2.txt" "$doc" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, re, sys
scrape, doc = open(sys.argv[1]).read(), json.loads(sys.argv[2])
want = {d["id"]: d["fidelity"] for d in doc["detectors"]}
got = {m.group(1): m.group(2) for m in re.finditer(r'btrfs_dio_trace_detector_fidelity\{detector="([^"]+)",fidelity="([^"]+)"\} 1\n', scrape)}
ok = got == want and len(re.findall(r"^btrfs_dio_trace_detector_fidelity\{", scrape, re.M)) == 3 * len(want)
print(f"{'ok' if ok else 'FAIL'}: detector_fidelity matches doctor: {got}")
sys.exit(0 if ok else 1)
PY

# The shipped alerting rules: promtool accepts them and their unit tests pass.
RULES=$SRC_DIR/deploy/prometheus
out=$(promtool check rules "$RULES/alerts.yml" 2>&1) && pass "promtool check rules: $(grep -o '[0-9]* rules found' <<<"$out")" ||
    fail "promtool check rules: $out"
out=$(cd "$RULES" && promtool test rules alerts_test.yml 2>&1) && pass "promtool test rules alerts_test.yml: SUCCESS" ||
    fail "promtool test rules: $out"

# Every query of the Grafana dashboard, against this Prometheus (now scraping the --qemu tracer, whose
# VM did I/O): it parses, and returns data. Grafana's variables get values a dashboard would give them.
python3 - "$PROM" "$SRC_DIR/deploy/grafana/btrfs-dio-trace.json" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, sys, urllib.parse, urllib.request
prom, dash = sys.argv[1], json.load(open(sys.argv[2]))
subst = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "10m", "$instance": ".*"}
def query(q):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    try:
        return json.load(urllib.request.urlopen(url, timeout=10))
    except urllib.error.HTTPError as e:
        return json.load(e)
bad = n = 0
for p in dash["panels"]:
    for t in p.get("targets", []):
        expr = t["expr"]
        for k, v in subst.items(): expr = expr.replace(k, v)
        r = query(expr)
        n += 1
        res = r.get("data", {}).get("result", [])
        ok = r.get("status") == "success" and len(res) > 0
        bad += not ok
        print(f"{'ok' if ok else 'FAIL'}: panel '{p['title']}' {t['refId']}: {r.get('status')}, {len(res)} series"
              + ("" if ok else f": {r.get('error', '')} {expr}"))
print(f"{n} dashboard queries run")
sys.exit(1 if bad or n < 15 else 0)
PY
stop_tracer || fail "--qemu tracer exited non-zero"
if ((ITEST_FAILS)); then
    echo "--- --qemu tracer stderr"; cat "$OUT2.err"
    echo "--- its qemu series"; cat "$ITEST_TMP/qemu-scrape.txt"
fi
itest_finish
