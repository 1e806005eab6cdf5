"""Helpers for integration tests: read the tracer's JSON-lines output and assert on it."""
import json
import sys


def load(path):
    """Returns (events, findings, others) from a --format json output file."""
    events, findings, others = [], [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"FAIL: {path}:{n}: not JSON ({e}): {line[:120]}")
            t = obj.get("type")
            if t == "finding":
                findings.append(obj)
            elif t in ("summary", "lost") or "schema" in obj:
                others.append(obj)
            else:
                events.append(obj)
    return events, findings, others


class Checker:
    def __init__(self):
        self.failures = 0

    def check(self, cond, what):
        if cond:
            print(f"ok: {what}")
        else:
            print(f"FAIL: {what}")
            self.failures += 1
        return cond

    def done(self):
        if self.failures:
            print(f"{self.failures} check(s) failed")
            sys.exit(1)
        sys.exit(0)
