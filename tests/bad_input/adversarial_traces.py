#!/usr/bin/env python3
"""Valid JSON-lines traces built to fill the detectors' and sinks' state:
every line is an event a kernel could report, but the shapes push each piece
of per-key state to its cap (docs/hardening.md, "Limits of the detectors and
sinks"). Used by catalogue.py (replay of each shape stays within the RSS and
time bounds, and RSS does not grow with the file's length) and by hand:

  adversarial_traces.py SHAPE N OUT.jsonl     # write one trace
  adversarial_traces.py --list                # the shapes

N is the shape's size (requests, threads, inodes, ...); a shape writes a
few lines per unit of N. Times advance 1 us per line, so every trace ends
well within the detectors' idle age (nothing is evicted for age: the caps do
the work), except the `stalls` shape, which spaces requests past the stall
threshold so that findings (and their evidence) flow to the sinks.
"""
import sys

FS = '5a1c0b3e-0d1e-4f2a-9b8c-7d6e5f4a3b2c'
HEADER = '{"schema":"btrfs-dio-trace.events/1","kernel":"6.1.0"}\n'


class Writer:
    def __init__(self, f, step_ns=1000):
        self.f = f
        self.ts = 1_000_000_000_000
        self.step = step_ns

    def ev(self, typ, tid, ino, body, pid=None, comm='adv', dev=45, fs=FS):
        self.ts += self.step
        self.f.write('{"ts_ns":%d,"pid":%d,"tid":%d,"comm":"%s","type":"%s","fs":"%s","dev":%d,'
                     '"ino":%d,%s}\n' % (self.ts, pid if pid is not None else tid, tid, comm, typ,
                                         fs, dev, ino, body))

    def begin(self, tid, ino, pos, count, write=True, aio=False, shared=False, done_before=0, pid=None):
        self.ev('dio_begin', tid, ino,
                '"pos":%d,"count":%d,"done_before":%d,"write":%s,"aio":%s,"buf_shared":%s,'
                '"buf_writable":%s,"buf_file_dev":0,"buf_file_ino":0,"buf_file_off":0,"buf_addr":4096,'
                '"nodatasum":false,"partial":false'
                % (pos, count, done_before, b(write), b(aio), b(shared), b(shared)), pid=pid)

    def end(self, tid, ino, pos, ret, pid=None):
        self.ev('dio_end', tid, ino, '"pos":%d,"ret":%d,"error":%d' % (pos, ret, ret if ret < 0 else 0),
                pid=pid)

    def oe(self, typ, ino, off, ln, flags='"DIRECT","REGULAR"', uptodate=True, tid=90):
        self.ev(typ, tid, ino, '"file_offset":%d,"len":%d,"flags":[%s],"uptodate":%s'
                % (off, ln, flags, b(uptodate)), comm='kworker', dev=0)


def b(x):
    return 'true' if x else 'false'


# ---- shapes: each writes N units ------------------------------------------------
def inflight_aio(w, n):
    """N asynchronous requests that never complete (one per thread and inode),
    then N completions of other asynchronous requests of those inodes seen on
    a worker thread: each end is matched by (fs, ino, position), never by tid."""
    for i in range(n):
        w.begin(100000 + i, 1000 + i, 0, 4096, write=(i % 2 == 0), aio=True)
    for i in range(n):
        ino = 1000 + (i * 7919) % n
        w.begin(300000 + i, ino, 1 << 30, 4096, aio=True)
        w.end(77, ino, (1 << 30) + 4096, 4096, pid=77)


def threads(w, n):
    """N threads, each beginning a synchronous request that never ends, and an
    ioctl (send), a relocation and an extent-buffer free that never end."""
    for i in range(n):
        t = 400000 + i
        w.begin(t, 5000 + i % 64, i * 4096, 4096, write=(i % 2 == 1))
        w.ev('get_extent', t, 5000 + i % 64, '"phase":"enter","start":%d,"len":4096' % (i * 4096))
        w.ev('ioctl_begin', t + n, 0, '"fd":5,"cmd":"send","ret":0', comm='btrfs')
        w.ev('reloc_begin', t + 2 * n, 0, '"block_group":%d,"ret":0' % (i << 30), comm='btrfs')
        w.ev('eb_free', t + 3 * n, 0, '"phase":"enter","eb_start":%d,"refs":2,"bflags":["UPTODATE","STALE"],'
             '"eb_id":%d' % (i << 14, 1 << 40 | i), comm='btrfs-transacti', dev=0)


def ordered(w, n):
    """N direct writes, each acknowledged, whose ordered extents are added but
    never removed (N open ordered extents over N/16 inodes)."""
    for i in range(n):
        t, ino, pos = 500000 + i % 256, 20000 + i % (n // 16 + 1), (i // 16) * 65536
        w.begin(t, ino, pos, 65536)
        w.oe('oe_add', ino, pos, 65536)
        w.end(t, ino, pos + 65536, 65536)


def inodes(w, n):
    """N direct writes from shared writable buffers, each to its own inode,
    completed, their ordered extents removed (the per-inode "last direct
    write" state), and a buffered fallback per inode."""
    for i in range(n):
        t, ino = 600000 + i % 512, 100000 + i
        w.begin(t, ino, 0, 4096, shared=True)
        w.oe('oe_add', ino, 0, 4096)
        w.end(t, ino, 4096, 4096)
        w.oe('oe_remove', ino, 0, 4096)
        w.ev('dio_fallback', t, ino, '"pos":0,"count":4096,"fd":5,"via":"call","nodatasum":false,'
             '"unaligned":false,"requested":false', pid=600000 + i)


def evidence(w, n):
    """Long chains on one request, one write call and one inode: a request
    with N get_extent/em_add pairs, a write call with N ordered extents, N
    checksum failures on one written range, N em_exist while a peer is in
    flight."""
    w.begin(700001, 42, 0, n * 4096)
    w.begin(700002, 42, 1 << 40, 4096, aio=True)
    for i in range(n):
        w.ev('get_extent', 700001, 42, '"phase":"enter","start":%d,"len":4096' % (i * 4096))
        w.ev('em_add', 700001, 42, '"start":%d,"len":4096,"block_start":%d,"ret":0' % (i * 4096, i << 12))
        w.ev('get_extent', 700001, 42, '"phase":"exit","start":%d,"len":4096,"em_start":%d,"em_len":4096,'
             '"block_start":%d,"ret":0' % (i * 4096, i * 4096, i << 12))
        w.oe('oe_add', 42, i * 4096, 4096)
    w.end(700001, 42, n * 4096, n * 4096)
    w.begin(700003, 43, 0, 4096, shared=True)
    w.end(700003, 43, 4096, 4096)
    for i in range(n):
        w.ev('csum_error', 91, 43, '"offset":0,"len":4096,"mirror":%d' % (i % 3), comm='kworker')
        w.ev('em_exist', 700002, 0, '"e_start":0,"e_len":16384,"map_start":0,"map_len":8192,'
             '"start":%d,"len":4096' % (i % 2 * 4096), dev=0)


def stalls(w, n):
    """N requests on N threads that stall while later requests on the same
    filesystem complete, and N unexpected errnos: a flood of findings with
    evidence (spaced 40 s apart, past the 30 s stall threshold)."""
    w.step = 1_000_000
    for i in range(n):
        t, ino = 800000 + i, 900000 + i
        w.begin(t, ino, 0, 4096)
        w.ts += 40_000_000_000
        w.begin(t + n, ino, 8192, 4096)
        w.end(t + n, ino, 8192 + 4096, 4096)
        w.begin(t + 2 * n, ino, 0, 4096, write=False)
        w.end(t + 2 * n, ino, 0, -2)


BASIC = (inflight_aio, threads, ordered, inodes, evidence, stalls)
SHAPES = {f.__name__: f for f in BASIC}


def mixed(w, n):
    """Every shape above, N/4 units each (stalls: N/256)."""
    for f in BASIC:
        f(w, max(1, n // (256 if f is stalls else 4)))


SHAPES['mixed'] = mixed


def write_trace(path, shape, n):
    with open(path, 'w') as f:
        f.write(HEADER)
        SHAPES[shape](Writer(f), n)
    return path


if __name__ == '__main__':
    if sys.argv[1:] == ['--list']:
        for k, f in SHAPES.items():
            print(f'{k}: {" ".join(f.__doc__.split())}')
        sys.exit(0)
    if len(sys.argv) != 4 or sys.argv[1] not in SHAPES:
        sys.exit(__doc__)
    write_trace(sys.argv[3], sys.argv[1], int(sys.argv[2]))
