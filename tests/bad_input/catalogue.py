#!/usr/bin/env python3
"""The bad-input catalogue: every bad input the tool is known to meet, given to
the real binary, must give exit status 1 and exactly one line on stderr, within
a bound of CPU time and (outside sanitizer builds) a peak-RSS bound; valid inputs of
the known expensive shapes must read within the same bounds, with a peak RSS
that does not grow with the file's length (docs/hardening.md).

Usage: catalogue.py BINARY FIXTURES_DIR [--sanitized]
  --sanitized: the binary is an ASan/UBSan build (no RSS bound, slower).
Inputs are generated into a temporary directory, one case at a time.
"""
import os
import re
import selectors
import shutil
import signal
import struct
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import adversarial_traces  # noqa: E402

RSS_LIMIT_MB = 128
GROWTH_LIMIT_MB = 8
# Detector and sink state: N units of every adversarial shape, then 4N.
ADVERSARIAL_N = 20000

BIN = sys.argv[1]
FIXTURES = sys.argv[2]
SANITIZED = '--sanitized' in sys.argv[3:]
# CPU seconds one run may take (its wall time varies with the machine's load);
# a run still going after twice it of wall time is killed. The sanitizer build
# reads ~35 times slower (the 50 MB trace: 1.4 s of CPU, 49 s with ASan+UBSan).
TIME_LIMIT_S = 120 if SANITIZED else 20

failures = []
passed = 0


def run(args, kill_after=None):
    """Runs BIN args (stdin /dev/null); returns (rc, stdout, stderr, wall
    seconds, CPU seconds and peak RSS in MB from wait4), killing it after
    kill_after seconds of wall time (default: twice the time limit)."""
    t0 = time.monotonic()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.execv(BIN, [BIN] + args)
        finally:
            os._exit(127)
    os.close(out_w)
    os.close(err_w)
    bufs = {out_r: bytearray(), err_r: bytearray()}
    sel = selectors.DefaultSelector()
    for fd in bufs:
        sel.register(fd, selectors.EVENT_READ)
    deadline = t0 + (kill_after if kill_after is not None else TIME_LIMIT_S * 2)
    killed = False
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0 and not killed:
            os.kill(pid, signal.SIGKILL)
            killed = True
        for key, _ in sel.select(timeout=max(left, 0.1)):
            chunk = os.read(key.fd, 1 << 16)
            if chunk:
                if len(bufs[key.fd]) < (1 << 20):  # keep the first MiB of output
                    bufs[key.fd] += chunk
            else:
                sel.unregister(key.fd)
                os.close(key.fd)
    _, status, ru = os.wait4(pid, 0)
    secs = time.monotonic() - t0
    rc = os.waitstatus_to_exitcode(status)
    cpu = ru.ru_utime + ru.ru_stime
    return rc, bytes(bufs[out_r]), bytes(bufs[err_r]), secs, cpu, ru.ru_maxrss / 1024.0


T0 = time.monotonic()


def check(name, ok, why):
    global passed
    name = f'{time.monotonic() - T0:6.1f}s {name}'
    if ok:
        passed += 1
        print(f'ok: {name}')
    else:
        failures.append(f'{name}: {why}')
        print(f'FAIL: {name}: {why}')


def expect_error(name, args, pattern=None):
    rc, out, err, secs, cpu, mb = run(args)
    text = err.decode('utf-8', 'replace')
    lines = text.splitlines()
    why = []
    if rc != 1:
        why.append(f'exit {rc} (want 1)')
    if len(lines) != 1 or not text.endswith('\n'):
        why.append(f'{len(lines)} stderr lines (want 1): {text[:300]!r}')
    elif pattern and not re.search(pattern, lines[0]):
        why.append(f'stderr {lines[0][:300]!r} does not match /{pattern}/')
    if any(b < 0x20 and b not in (0x0a,) for b in err):
        why.append(f'raw control bytes on stderr: {err[:200]!r}')
    if cpu > TIME_LIMIT_S:
        why.append(f'took {cpu:.1f} s of CPU (limit {TIME_LIMIT_S})')
    if not SANITIZED and mb > RSS_LIMIT_MB:
        why.append(f'peak RSS {mb:.0f} MB (limit {RSS_LIMIT_MB})')
    check(f'{name} [{secs:.2f} s, {cpu:.2f} s CPU, {mb:.0f} MB]', not why, '; '.join(why))


def expect_ok(name, args):
    rc, out, err, secs, cpu, mb = run(args)
    why = []
    if rc != 0:
        why.append(f'exit {rc}: {err.decode("utf-8", "replace")[:300]!r}')
    if cpu > TIME_LIMIT_S:
        why.append(f'took {cpu:.1f} s of CPU (limit {TIME_LIMIT_S})')
    if not SANITIZED and mb > RSS_LIMIT_MB:
        why.append(f'peak RSS {mb:.0f} MB (limit {RSS_LIMIT_MB})')
    check(f'{name} [{secs:.2f} s, {cpu:.2f} s CPU, {mb:.0f} MB]', not why, '; '.join(why))
    return mb


# ---- generators ----------------------------------------------------------------
def write(path, data):
    with open(path, 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return path


def big_unknown_arrays(path, mb):
    """A valid trace whose lines carry a 20000-element array under an unknown
    key, after a varying number of other unknown keys (this shape once kept
    every array in per-position buffers that never shrank: 633 MB for 25 MB)."""
    arr = ','.join(['1'] * 20000)
    with open(path, 'w') as f:
        f.write('{"schema":"btrfs-dio-trace.events/1"}\n')
        n = 0
        while f.tell() < mb << 20:
            pad = ''.join(',"p%d":0' % i for i in range(n % 400))
            f.write('{"ts_ns":%d,"type":"dio_end","ret":0%s,"x":[%s]}\n' % (n + 1, pad, arr))
            n += 1
    return path


def deep_first_line(path, depth):
    """A header whose hooks list nests `depth` arrays (66 MB of it once took
    2.5 GB: the header was parsed into a whole JSON tree)."""
    with open(path, 'w') as f:
        f.write('{"schema":"btrfs-dio-trace.events/1","hooks":')
        f.write('[' * depth)
        f.write(']' * depth)
        f.write('}\n')
    return path


def record(path, header_body=None, records=(), hooks=None):
    """A binary record file (docs/record-format.md) with correct CRCs."""
    if header_body is None:
        body = struct.pack('<Iq', 1, 0) + struct.pack('<H', 0)
        hk = hooks or []
        body += struct.pack('<H', len(hk) & 0xFFFF)
        for name in hk:
            body += struct.pack('<H', len(name)) + name + b'\x00\x00' + b'\x01'
    else:
        body = header_body
    head = b'\x89BDTREC\n' + struct.pack('<HHI', 1, 0, len(body)) + body
    parts = [head, struct.pack('<I', zlib.crc32(head))]
    for rb in records:
        ln = struct.pack('<I', len(rb))
        parts += [ln, struct.pack('<I', zlib.crc32(rb, zlib.crc32(ln))), rb]
    return write(path, b''.join(parts))


def reloc_record(ts, vm=b''):
    common = struct.pack('<HHQII', 17, 0, ts, 1, 1) + b'x' * 16 + b'\x00' * 16 + struct.pack('<QQ', 0, 0)
    common += struct.pack('<H', len(vm)) + vm + struct.pack('<H', 0)
    return common + struct.pack('<Qq', 1, 0)


def detector_state(tmp):
    n = ADVERSARIAL_N
    rss, secs = {}, {}
    for size in (n, 4 * n):
        p = adversarial_traces.write_trace(os.path.join(tmp, f'adv-{size}.jsonl'), 'mixed', size)
        mb = os.path.getsize(p) / 1e6
        for fmt in ('text', 'chrome') if size == n else ('text',):
            o = os.path.join(tmp, f'adv-{size}.{fmt}')
            # the wall bound scales with the input (4N: 4 times it); growth is bounded by CPU below
            rc, out, err, wall, t, m = run(['replay', '--format', fmt, '-o', o, p],
                                           kill_after=TIME_LIMIT_S * 2 * size // n)
            why = []
            if rc != 0:
                why.append(f'exit {rc}: {err.decode("utf-8", "replace")[:300]!r}')
            if not SANITIZED and m > RSS_LIMIT_MB:
                why.append(f'peak RSS {m:.0f} MB (limit {RSS_LIMIT_MB})')
            if os.path.exists(o):
                with open(o, 'rb') as f:  # the summary (text) or the last instants (chrome)
                    f.seek(max(0, os.path.getsize(o) - (64 << 10)))
                    if b'state cap reached' not in f.read():
                        why.append('the output does not say "state cap reached"')
                os.unlink(o)
            check(f'adversarial trace, every detector state full, N={size} ({mb:.0f} MB), '
                  f'--format {fmt} [{wall:.2f} s, {t:.2f} s CPU, {m:.0f} MB]', not why, '; '.join(why))
            if fmt == 'text':
                rss[size], secs[size] = m, t
        os.unlink(p)
    check(f'detector state: peak RSS does not grow with the file ({rss[n]:.0f} MB -> {rss[4 * n]:.0f} MB)',
          SANITIZED or rss[4 * n] - rss[n] < GROWTH_LIMIT_MB, f'grew by {rss[4 * n] - rss[n]:.0f} MB')
    check(f'detector state: CPU time grows linearly ({secs[n]:.1f} s -> {secs[4 * n]:.1f} s)',
          secs[4 * n] <= 8 * secs[n] + 2, f'{secs[4 * n] / max(secs[n], 0.01):.1f} times as long for 4 times the input')


def main():
    tmp = tempfile.mkdtemp(prefix='bdt-bad-input-')
    try:
        # 1. Every bad fixture, through replay and dump.
        bad = os.path.join(FIXTURES, 'bad')
        for f in sorted(os.listdir(bad)):
            if f.endswith('.py'):
                continue
            for cmd in ('replay', 'dump'):
                if f.startswith('unknown-event-type.'):
                    # Not an error: unknown types are skipped and counted (docs/events.md).
                    expect_ok(f'fixture {f} ({cmd}) reads, skipping the unknown type',
                              [cmd, os.path.join(bad, f)])
                else:
                    expect_error(f'fixture {f} ({cmd})', [cmd, os.path.join(bad, f)])

        # 2. The two known expensive shapes.
        p = big_unknown_arrays(os.path.join(tmp, 'arrays.jsonl'), 25)
        small = expect_ok('valid 25 MB trace with big arrays under unknown keys', ['replay', p])
        os.unlink(p)
        p = big_unknown_arrays(os.path.join(tmp, 'arrays2.jsonl'), 50)
        large = expect_ok('the same shape, 50 MB', ['replay', p])
        os.unlink(p)
        check(f'peak RSS does not grow with the file ({small:.0f} MB -> {large:.0f} MB)',
              SANITIZED or large - small < GROWTH_LIMIT_MB, f'grew by {large - small:.0f} MB')
        p = deep_first_line(os.path.join(tmp, 'deep66.jsonl'), 33 << 20)
        expect_error('66 MB deeply nested first line', ['replay', p], r':1: line longer than \d+ bytes')
        os.unlink(p)
        p = deep_first_line(os.path.join(tmp, 'deep3.jsonl'), 1 << 20)
        expect_error('2 MB deeply nested first line', ['replay', p], r':1: JSON nested deeper than 32 levels')
        os.unlink(p)

        # 3. Each reader limit.
        end = '{"ts_ns":1,"type":"dio_end","ret":0'
        expect_error('a later line nested 40 deep',
                     ['replay', write(os.path.join(tmp, 'deep-later.jsonl'),
                                      end + '}\n' + end + ',"x":' + '[' * 40 + ']' * 40 + '}\n')],
                     r':2: JSON nested deeper than 32 levels')
        expect_error('a 5 MB line without a newline',
                     ['replay', write(os.path.join(tmp, 'long.jsonl'), end + ',"x":"' + 'x' * (5 << 20) + '"}')],
                     r':1: line longer than 4194304 bytes')
        expect_error('a 70 KB header',
                     ['replay', write(os.path.join(tmp, 'bighdr.jsonl'),
                                      '{"schema":"btrfs-dio-trace.events/1","kernel":"' + 'k' * 70000 + '"}\n')],
                     r':1: header line longer than 65536 bytes')
        hooks = ','.join('"h%d"' % i for i in range(1025))
        expect_error('a header with 1025 hooks',
                     ['replay', write(os.path.join(tmp, 'hooks.jsonl'),
                                      '{"schema":"btrfs-dio-trace.events/1","hooks":[' + hooks + ']}\n')],
                     r':1: field "hooks": more than 1024 hooks')
        flags = ','.join(['"IOERR"'] * 65)
        expect_error('a flags array of 65 names',
                     ['replay', write(os.path.join(tmp, 'flags.jsonl'),
                                      '{"ts_ns":1,"type":"oe_add","file_offset":0,"len":1,"flags":[' + flags + ']}\n')],
                     r':1: field "flags": more than 64 elements')
        names = ''.join('{"ts_ns":%d,"type":"dio_end","ret":0,"vm":"vm-%d"}\n' % (i, i) for i in range(65537))
        expect_error('65537 distinct VM names', ['replay', write(os.path.join(tmp, 'names.jsonl'), names)],
                     r':65537: more than 65536 distinct vm/image names')

        # 4. Valid traces built to fill the detectors' and sinks' state
        # (adversarial_traces.py): within the RSS bound, RSS that does not grow
        # from N to 4N, and time that grows linearly (a quadratic scan would take
        # 16 times as long; allowed: 8 times, plus start-up).
        detector_state(tmp)

        # 5. Binary records.
        expect_error('record header length over 1 MiB',
                     ['replay', write(os.path.join(tmp, 'hlen.bdt'),
                                      b'\x89BDTREC\n' + struct.pack('<HHI', 1, 0, 0x7FFFFFFF))],
                     r'at byte 12: invalid header length')
        expect_error('record header with 1025 hooks',
                     ['replay', record(os.path.join(tmp, 'rhooks.bdt'), hooks=[b'h%d' % i for i in range(1025)])],
                     r'more than 1024 hooks')
        expect_error('record length over 1 MiB',
                     ['replay', write(os.path.join(tmp, 'rlen.bdt'),
                                      open(record(os.path.join(tmp, 'empty.bdt')), 'rb').read()
                                      + struct.pack('<II', 0x7FFFFFF0, 0))],
                     r'invalid record length')
        expect_error('65537 distinct VM names in a record file',
                     ['replay', record(os.path.join(tmp, 'rnames.bdt'),
                                       records=[reloc_record(i, b'vm-%d' % i) for i in range(65537)])],
                     r'more than 65536 distinct vm/image names')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f'{passed} passed, {len(failures)} failed')
    for f in failures:
        print('FAIL:', f)
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
