#!/usr/bin/env python3
# Two rules of the source tree, checked on every file git knows (a unit test:
# ctest -L unit runs it as source_rules; run it by hand as
# `python3 tests/source_rules.py [REPO]`).
#
# 1. Layers: include/bdt/ is the shared model (events, findings, the detector
#    interface, errors, hooks, the trace header); each module's own headers sit
#    beside its .cpp in src/<module>/. The model includes only the model and
#    the raw record headers of bpf/; a module includes the model, bpf/ headers,
#    its own files and the modules listed for it in LOWER below, never a module
#    above it. A new edge between modules is a design change: add it to LOWER
#    deliberately (and to the layout in README.md).
# 2. Purpose comments: every source, header, script and test opens with a
#    comment saying what it is for (after the #! line of a script; a Python
#    module's docstring counts).
#
# Prints one line per violation and exits 1 if there is any.
import pathlib
import re
import subprocess
import sys

# module -> the modules it may include (besides itself and the model).
LOWER = {
    "core": set(),
    "detectors": {"core"},
    "replay": {"core"},
    "sinks": {"core"},
    "qemu": {"core"},
    "metrics": {"core", "qemu"},
    "loader": {"core"},
    "live": {"core", "loader", "replay"},
    "cli": {"core", "detectors", "replay", "sinks", "qemu", "metrics", "loader", "live"},
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def git_files(repo: pathlib.Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "ls-files"], check=True,
                         capture_output=True, text=True).stdout
    return [f for f in out.splitlines() if (repo / f).is_file()]


def check_layers(repo: pathlib.Path, files: list[str]) -> list[str]:
    bad = []
    bpf = {p.name for p in (repo / "bpf").iterdir()}
    for f in files:
        if not re.match(r"(include/bdt|src/[a-z_]+)/[^/]+\.(h|cpp)$", f):
            continue
        parts = f.split("/")
        mod = None if parts[0] == "include" else parts[1]
        if mod is not None and mod not in LOWER:
            bad.append(f"{f}: module src/{mod} is not in the layer table (tests/source_rules.py LOWER)")
            continue
        for n, line in enumerate((repo / f).read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            inc = m.group(1)
            if "/" not in inc:
                if inc in bpf or inc.endswith(".skel.h"):
                    continue
                bad.append(f"{f}:{n}: \"{inc}\": include a header by its path (bdt/... or module/...)")
                continue
            top = inc.split("/")[0]
            if top == "bdt":
                if not (repo / "include" / inc).is_file():
                    bad.append(f"{f}:{n}: \"{inc}\" is not in include/bdt")
                continue
            if mod is None:
                bad.append(f"{f}:{n}: the model (include/bdt) includes module header \"{inc}\"")
            elif top != mod and top not in LOWER[mod]:
                bad.append(f"{f}:{n}: src/{mod} includes \"{inc}\": src/{top} is not below it")
    return bad


def opens_with_comment(path: pathlib.Path) -> bool:
    lines = [l.strip() for l in path.read_text(errors="replace").splitlines()]
    lines = [l for l in lines if l]
    if not lines:
        return False
    first = lines[0]
    if first.startswith("#!"):
        lines, first = lines[1:], (lines[1] if len(lines) > 1 else "")
    if path.suffix in {".c", ".cpp", ".h", ".def", ".mjs"}:
        return first.startswith("//") or first.startswith("/*")
    if path.suffix == ".py" and first.startswith('"""'):
        return True  # the module's docstring
    return first.startswith("#") and not first.startswith("#!")  # shell, python, cmake


def check_comments(repo: pathlib.Path, files: list[str]) -> list[str]:
    bad = []
    for f in files:
        if not re.match(r"(src|bpf|include|scripts|tests)/", f) or f.startswith("tests/fixtures/"):
            continue
        p = repo / f
        code = p.suffix in {".c", ".cpp", ".h", ".def", ".mjs", ".sh", ".py"} or p.name == "CMakeLists.txt"
        if not code:
            with p.open("rb") as fh:
                code = fh.read(2) == b"#!"
        if code and not opens_with_comment(p):
            bad.append(f"{f}: does not open with a comment saying what it is for")
    return bad


def main() -> int:
    repo = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[1])
    files = git_files(repo)
    bad = check_layers(repo, files) + check_comments(repo, files)
    for b in bad:
        print(b)
    if bad:
        print(f"source_rules: {len(bad)} violation(s)")
        return 1
    print(f"source_rules: {len(files)} files, layers and opening comments OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
