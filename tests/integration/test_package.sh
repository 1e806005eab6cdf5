#!/usr/bin/env bash
# The Debian package (`cpack -G DEB`) and what it installs:
#  - Depends are the runtime libraries dpkg-shlibdeps finds (libbpf1, whose own
#    Depends bring libelf1 and zlib1g, libfmt9, libsystemd0, libc, libstdc++)
#    plus btrfs-progs and mount for demo; fio is only recommended; no build or
#    test tool (qemu, prometheus, nodejs, clang, gtest, cmake, python3, bpftool)
#    is required; /etc/default/btrfs-dio-trace is a conffile; the maintainer
#    scripts are valid sh; dpkg accepts it on this host (--dry-run);
#  - unpacked into a scratch root, it holds the FHS files and nothing of the
#    tests; the installed binary is stripped, says the CMake version, runs
#    doctor, replays a fixture to the same findings as the build tree's binary;
#    `man -l` renders the installed page;
#  - `demo` from the installed copy, with the source tree and the build
#    directory hidden (empty tmpfs over them in a private mount namespace) and
#    / as the working directory: finds its workloads in libexec, runs every
#    pattern and finds what it should.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
itest_init package
command -v cpack >/dev/null && command -v dpkg-deb >/dev/null && command -v dpkg-shlibdeps >/dev/null ||
    skip "cpack, dpkg-deb or dpkg-shlibdeps missing (Debian: cmake, dpkg, dpkg-dev)"
command -v fio >/dev/null || skip "fio not installed (scripts/install-deps installs it): demo's benign control needs it"
PKG=$ITEST_TMP/pkg
mkdir -p "$PKG"
t0=$(date +%s)
(cd "$BUILD_DIR" && cpack -G DEB -B "$PKG") >"$ITEST_TMP/cpack.log" 2>&1 || die "cpack failed: $(tail -n 20 "$ITEST_TMP/cpack.log")"
DEB=$(ls "$PKG"/btrfs-dio-trace_*.deb 2>/dev/null | head -n1)
[[ -f $DEB ]] || die "no .deb in $PKG: $(ls "$PKG")"
pass "cpack -G DEB: $(basename "$DEB"), $(( $(stat -c %s "$DEB") / 1024 )) KiB, in $(( $(date +%s) - t0 )) s"

# ---- the control data ------------------------------------------------------------------
dep=$(dpkg-deb -f "$DEB" Depends)
rec=$(dpkg-deb -f "$DEB" Recommends)
echo "Depends: $dep"
echo "Recommends: $rec"
for p in libbpf1 libfmt9 libsystemd0 libc6 libstdc++6 btrfs-progs mount; do
    [[ ", $dep," == *", $p"[,\ ]* ]] || fail "Depends lacks $p"
done
for p in qemu prometheus nodejs npm clang llvm gtest googletest cmake python3 bpftool fio; do
    [[ $dep == *"$p"* ]] && fail "Depends names the build/test tool $p"
done
[[ $rec == *fio* ]] && pass "fio is recommended, not required (demo's benign control)" || fail "Recommends: $rec"
for p in libelf1 zlib1g; do
    dpkg-query -W -f='${Depends}' libbpf1 2>/dev/null | grep -q "$p" && pass "$p comes with libbpf1's own Depends" ||
        fail "$p: neither in Depends nor in libbpf1's"
done
ctl=$ITEST_TMP/control
dpkg-deb -e "$DEB" "$ctl"
[[ $(cat "$ctl/conffiles") == /etc/default/btrfs-dio-trace ]] && pass "conffile: /etc/default/btrfs-dio-trace" ||
    fail "conffiles: $(cat "$ctl/conffiles" 2>&1)"
for s in postinst prerm postrm; do
    [[ -x $ctl/$s ]] && sh -n "$ctl/$s" || fail "maintainer script $s missing or not valid sh"
done
dry=$(dpkg --dry-run -i "$DEB" 2>&1); rc=$?
[[ $rc -eq 0 ]] && pass "dpkg --dry-run -i accepts it on this host" || fail "dpkg --dry-run -i (rc $rc): $dry"

# ---- unpacked into a scratch root ------------------------------------------------------
ROOT=$ITEST_TMP/root
dpkg-deb -x "$DEB" "$ROOT"
for f in usr/sbin/btrfs-dio-trace usr/share/man/man8/btrfs-dio-trace.8.gz usr/lib/systemd/system/btrfs-dio-trace.service \
         etc/default/btrfs-dio-trace usr/share/bash-completion/completions/btrfs-dio-trace \
         usr/share/zsh/vendor-completions/_btrfs-dio-trace usr/share/btrfs-dio-trace/prometheus/alerts.yml \
         usr/share/btrfs-dio-trace/grafana/btrfs-dio-trace.json usr/share/doc/btrfs-dio-trace/README.md \
         usr/libexec/btrfs-dio-trace/workloads/dio-buf-fault usr/libexec/btrfs-dio-trace/workloads/send-vs-balance.sh; do
    [[ -e $ROOT/$f ]] || fail "not installed: /$f"
done
pass "$(find "$ROOT" -type f | wc -l) files in FHS places (/usr/sbin, /usr/libexec, /usr/share, /etc/default, /usr/lib/systemd)"
stray=$(find "$ROOT" \( -name 'unit_tests' -o -path '*/tests/*' -o -name '*.jsonl' -o -name '*.bpf.o' -o -name '*.a' \) | head -n 3)
[[ -z $stray ]] && pass "nothing of the tests or the build in it" || fail "stray files: $stray"
IBIN=$ROOT/usr/sbin/btrfs-dio-trace
file -b "$IBIN" | grep -q "not stripped" && fail "the installed binary is not stripped" || pass "the installed binary is stripped ($(( $(stat -c %s "$IBIN") / 1024 )) KiB)"
want=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")
[[ $("$IBIN" --version) == "btrfs-dio-trace $want" && $(dpkg-deb -f "$DEB" Version) == "$want" ]] &&
    pass "installed --version and the package version: $want" || fail "versions: $("$IBIN" --version), $(dpkg-deb -f "$DEB" Version), want $want"
"$IBIN" doctor >"$ITEST_TMP/doctor.txt" 2>&1 && pass "installed doctor: $(grep -c ' yes ' "$ITEST_TMP/doctor.txt") hooks attach" ||
    fail "installed doctor failed: $(tail -n 3 "$ITEST_TMP/doctor.txt")"
FIX=$SRC_DIR/tests/fixtures/seeds/dio_short_write_6.2.jsonl
"$IBIN" replay -f json "$FIX" 2>/dev/null | grep '"type":"finding"' >"$ITEST_TMP/replay-inst.json"
"$BIN" replay -f json "$FIX" 2>/dev/null | grep '"type":"finding"' >"$ITEST_TMP/replay-build.json"
[[ -s $ITEST_TMP/replay-inst.json ]] && cmp -s "$ITEST_TMP/replay-inst.json" "$ITEST_TMP/replay-build.json" &&
    pass "installed replay of $(basename "$FIX"): the build's $(wc -l <"$ITEST_TMP/replay-inst.json") findings" ||
    fail "installed replay differs from the build's"
warn=$(MANWIDTH=100 man --warnings -l "$ROOT/usr/share/man/man8/btrfs-dio-trace.8.gz" 2>&1 >"$ITEST_TMP/man.txt")
[[ -z $warn && $(grep -c '^EXIT STATUS' "$ITEST_TMP/man.txt") -eq 1 ]] && pass "man -l renders the installed page" ||
    fail "man -l: $warn"

# ---- demo from the installed copy, no source tree ------------------------------------------
# Inside a private mount namespace the source tree and the build directory are empty tmpfs.
hide=("$SRC_DIR")
[[ $BUILD_DIR != "$SRC_DIR"/* ]] && hide+=("$BUILD_DIR")
OUT=$ITEST_TMP/demo.jsonl
rc=0
env -u BDT_SOURCE_DIR -u BDT_WORKLOAD_DIR unshare -m --propagation private bash -c '
    ibin=$1 out=$2; shift 2
    for d in "$@"; do mount -t tmpfs -o size=1m,mode=0755 hidden "$d" || exit 97; done
    for d in "$@"; do [[ -z $(ls -A "$d") ]] || exit 98; done
    cd / && exec timeout 300 "$ibin" demo --format json >"$out" 2>"$out.err"
' _ "$IBIN" "$OUT" "${hide[@]}" || rc=$?
sed -n '/=== demo/,$p' "$OUT.err"
[[ $rc -eq 0 ]] && pass "installed demo, source tree and build directory hidden, cwd /: exit 0" ||
    fail "installed demo exited $rc: $(tail -n 5 "$OUT.err")"
grep -q "not found" "$OUT.err" && fail "demo did not find a workload: $(grep 'not found' "$OUT.err")"
grep -q "/usr/libexec/btrfs-dio-trace/workloads/dio-buf-fault\|$ROOT/usr/libexec/btrfs-dio-trace/workloads/dio-buf-fault" "$OUT.err" &&
    pass "its workloads ran from libexec: $(grep -o '[^ ]*/libexec/btrfs-dio-trace/workloads/dio-buf-fault' "$OUT.err" | head -n1)" ||
    fail "no workload from libexec in: $(grep 'demo: ==' "$OUT.err" | head -n 3)"
n_ok=$(grep -c "workload exit 0" "$OUT.err")
[[ $n_ok -ge 6 ]] && pass "$n_ok workloads exited 0" || fail "only $n_ok workloads exited 0: $(grep 'demo: workload' "$OUT.err")"
grep -q '"detector":"dio-short-write"' "$OUT" && pass "the installed demo reports dio-short-write findings" ||
    fail "no dio-short-write finding in the installed demo's output"
itest_finish
