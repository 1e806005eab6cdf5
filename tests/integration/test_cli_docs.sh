#!/usr/bin/env bash
# The man page and the shell completions cannot drift from the CLI:
#   - every option of every command's --help has an entry in that command's
#     section of btrfs-dio-trace(8), in the bash completion's *_opts list and in
#     the zsh completion's *_opts array, and none of them names an option the
#     CLI does not have;
#   - every JSON key the tool writes (replay --events -f json over every
#     fixture: header, events, findings, summary; doctor -f json as root) is
#     named in the man page's OUTPUT section;
#   - `man -l` renders the page without a groff warning, with its sections;
#   - the bash completion completes commands, options and option values in a
#     real bash with bash-completion; zsh accepts the zsh completion's syntax.
# No root needed (doctor's keys are checked only as root).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
[[ -x $BIN ]] || die "binary $BIN not built"
MAN=$BUILD_DIR/man/btrfs-dio-trace.8
BASHC=$SRC_DIR/deploy/completion/btrfs-dio-trace.bash
ZSHC=$SRC_DIR/deploy/completion/_btrfs-dio-trace
[[ -f $MAN ]] || die "man page $MAN not generated (cmake --build)"
ITEST_TMP=$(mktemp -d /tmp/bdt-itest-cli-docs-XXXXXX)
trap 'rm -rf "$ITEST_TMP"' EXIT

# --- options: --help vs man page vs completions -----------------------------------
for c in trace replay doctor dump demo status; do "$BIN" $c --help >"$ITEST_TMP/help-$c.txt" || fail "$c --help"; done
"$BIN" --help >"$ITEST_TMP/help-top.txt" || fail "--help"
python3 - "$ITEST_TMP" "$MAN" "$BASHC" "$ZSHC" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import re, sys
tmp, man, bashc, zshc = sys.argv[1:5]
cmds = ["trace", "replay", "doctor", "dump", "demo", "status"]
OPT = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")

def cli_opts(cmd):
    out = set()
    for line in open(f"{tmp}/help-{cmd}.txt"):
        if line.startswith("EXAMPLES"):
            break
        m = re.match(r"^  (-[a-zA-Z],)?(--[a-z][a-z0-9-]*)", line)
        if m:
            if m.group(1): out.add(m.group(1)[:-1])
            out.add(m.group(2))
    return out - {"-h", "--help"}

text = open(man).read().replace("\\-", "-")
sections = {}
cur = None
lines = text.splitlines()
for i, line in enumerate(lines):
    m = re.match(r'^\.SS "btrfs-dio-trace (\[trace\]|\w+)', line)
    if m:
        cur = m.group(1).strip("[]")
        sections[cur] = set()
        continue
    if line.startswith(".SH"):
        cur = None
    if cur and i > 0 and lines[i - 1] == ".TP" and line.startswith("\\fB-"):
        # the entry's own options only: \fB-x\fR, \fB--long\fR (not what its text mentions)
        sections[cur] |= set(re.findall(r"\\fB(--?[a-zA-Z][a-z0-9-]*)\\fR", line))

bash = {m.group(1): set(m.group(2).split()) for m in re.finditer(r'local (\w+)_opts="([^"]*)"', open(bashc).read())}
zsh = {}
for m in re.finditer(r"^(\w+)_opts=\(\n(.*?)^\)", open(zshc).read(), re.S | re.M):
    body = re.sub(r"\[[^\]]*\]", "", m.group(2))  # descriptions may mention other options
    zsh[m.group(1)] = set(OPT.findall(body))

bad = 0
def same(what, cmd, got, want):
    global bad
    missing, extra = sorted(want - got), sorted(got - want)
    if missing or extra:
        bad += 1
        print(f"FAIL: {what} for {cmd}: missing {missing}, not in the CLI {extra}")
    else:
        print(f"ok: {what} for {cmd}: the {len(want)} options of --help")
for c in cmds:
    want = cli_opts(c)
    if not want and c != "status":
        bad += 1
        print(f"FAIL: no options parsed from {c} --help")
    same("man page section", c, sections.get(c, set()), want)
    same("bash completion", c, bash.get(c, set()), want)
    same("zsh completion", c, zsh.get(c, set()), want)
top = open(f"{tmp}/help-top.txt").read()
ok = "-V,--version" in top and "-V | --version" in re.sub(r"[{}]", "", text.replace(".RB ", ""))
bad += not ok
print(f"{'ok' if ok else 'FAIL'}: -V/--version in --help and in the man page's SYNOPSIS")
sys.exit(1 if bad else 0)
PY

# --- JSON keys named in OUTPUT ------------------------------------------------------
for f in "$SRC_DIR"/tests/fixtures/seeds/*.jsonl "$SRC_DIR"/tests/fixtures/benign/*.jsonl "$SRC_DIR"/tests/fixtures/qemu/*.jsonl; do
    [[ -f $f ]] || continue
    "$BIN" replay --events -f json "$f" >>"$ITEST_TMP/keys.jsonl" 2>/dev/null || true
done
if [[ $(id -u) -eq 0 ]]; then
    "$BIN" doctor -f json >"$ITEST_TMP/doctor.json" 2>/dev/null || echo "NOTE: doctor -f json failed here: its keys are not checked"
fi
"$BIN" status -f json >"$ITEST_TMP/status.json" 2>/dev/null || true
python3 - "$MAN" "$ITEST_TMP" <<'PY' || ITEST_FAILS=$((ITEST_FAILS + 1))
import json, os, re, sys
man, tmp = sys.argv[1:3]
text = open(man).read().replace("\\-", "-")
out = text[text.index(".SH OUTPUT"):text.index(".SH METRICS")]
named = set(re.findall(r"\\fB([a-z_0-9]+)\\fR", out))
keys = {}
def walk(o, where):
    if isinstance(o, dict):
        for k, v in o.items():
            keys.setdefault(k, where)
            walk(v, f"{where}.{k}")
    elif isinstance(o, list):
        for v in o: walk(v, where)
n = 0
for name in ("keys.jsonl", "doctor.json", "status.json"):
    p = os.path.join(tmp, name)
    if not os.path.exists(p): continue
    for line in open(p):
        if line.strip():
            o = json.loads(line); n += 1
            t = o.get("type", "header" if "schema" in o else name)
            # keys of the maps whose keys are data (event types, detector/level, note names)
            for k in ("events_by_type", "findings_by_detector", "notes"):
                if isinstance(o.get(k), dict): o[k] = {}
            walk(o, t)
missing = sorted(k for k in keys if k not in named)
types = sorted({json.loads(l).get("type") for l in open(os.path.join(tmp, "keys.jsonl")) if l.strip()} - {None})
print(f"{n} JSON lines read ({', '.join(types)}); {len(keys)} distinct keys")
if missing:
    for k in missing: print(f"FAIL: JSON key '{k}' (in {keys[k]}) is not named in the man page's OUTPUT section")
    sys.exit(1)
print("ok: every JSON key written is named in OUTPUT")
PY

# --- the page renders ---------------------------------------------------------------
if command -v man >/dev/null; then
    warn=$(MANWIDTH=100 man --warnings -l "$MAN" 2>&1 >"$ITEST_TMP/man.txt")
    [[ -z $warn ]] && pass "man -l renders it without warnings ($(wc -l <"$ITEST_TMP/man.txt") lines)" ||
        fail "man -l warnings: $warn"
    for s in NAME SYNOPSIS DESCRIPTION COMMANDS OUTPUT METRICS "EXIT STATUS" ENVIRONMENT FILES EXAMPLES "SEE ALSO"; do
        grep -q "^$s" "$ITEST_TMP/man.txt" || fail "rendered page has no $s section"
    done
    gz=$BUILD_DIR/man/btrfs-dio-trace.8.gz
    [[ -f $gz ]] && cmp -s <(gzip -dc "$gz") "$MAN" && pass "the installed form ($gz) is the same page" ||
        fail "$gz missing or not the page"
else
    fail "man (man-db) is not installed: scripts/install-deps installs it"
fi

# --- the completions work in their shells -------------------------------------------
if [[ -r /usr/share/bash-completion/bash_completion ]]; then
    got=$(bash --norc --noprofile -c '
        source /usr/share/bash-completion/bash_completion
        source "$1"
        complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
                           COMPREPLY=(); _btrfs_dio_trace; printf "%s " "${COMPREPLY[@]}"; echo; }
        complete_words btrfs-dio-trace ""
        complete_words btrfs-dio-trace dump --p
        complete_words btrfs-dio-trace -f ""
        complete_words btrfs-dio-trace replay -f ""
        complete_words btrfs-dio-trace --backend k
        complete_words btrfs-dio-trace -
    ' _ "$BASHC" 2>&1)
    mapfile -t r <<<"$got"
    [[ ${r[0]} == *"status"* && ${r[0]} == *"replay"* ]] && pass "bash: commands: ${r[0]}" || fail "bash: commands: ${r[0]}"
    [[ ${r[1]} == "--pin-dir --post-mortem " ]] && pass "bash: dump --p -> ${r[1]}" || fail "bash: dump --p -> '${r[1]}'"
    [[ ${r[2]} == "text json " ]] && pass "bash: -f -> ${r[2]}" || fail "bash: -f -> '${r[2]}'"
    [[ ${r[3]} == "text json chrome " ]] && pass "bash: replay -f -> ${r[3]}" || fail "bash: replay -f -> '${r[3]}'"
    [[ ${r[4]} == "kprobe " ]] && pass "bash: --backend k -> ${r[4]}" || fail "bash: --backend k -> '${r[4]}'"
    [[ ${r[5]} == *"--version"* && ${r[5]} == *"--qemu"* ]] && pass "bash: - offers trace's options and --version" ||
        fail "bash: - -> '${r[5]}'"
else
    fail "bash-completion is not installed (scripts/install-deps installs it): the bash completion is not exercised"
fi
if command -v zsh >/dev/null; then
    err=$(zsh -n "$ZSHC" 2>&1) && pass "zsh -n accepts the zsh completion" || fail "zsh -n: $err"
else
    fail "zsh is not installed (scripts/install-deps installs it): the zsh completion's syntax is not checked"
fi

if [[ $ITEST_FAILS -gt 0 ]]; then echo "RESULT: $ITEST_FAILS failed"; exit 1; fi
echo "RESULT: all checks passed"
