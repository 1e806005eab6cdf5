#!/usr/bin/env python3
# Where the tracer's BPF programs spend their time, by source line (scripts/bench/bpf-lines.sh).
#
#   bpf_lines.py info ID...         the programs' JIT line table as JSON (BPF_OBJ_GET_INFO_BY_FD:
#                                   jited_line_info, line_info), while they are loaded
#   bpf_lines.py report DIR [N]     perf samples (DIR/perf.data) in those programs -> the xlated
#                                   instruction of the line-info record at or before each sample's
#                                   address -> its source line (DIR/NAME.xl, `bpftool prog dump
#                                   xlated id ID linum`); the N (default 15) busiest lines per program
# A sample's address is the instruction after the one that was executing, so a line can take
# the time of the one before it (a cache miss shows on the line after the load).
import bisect
import collections
import ctypes
import json
import re
import struct
import subprocess
import sys

NR_BPF = 321  # x86_64
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
INFO_LEN = 232  # struct bpf_prog_info up to attach_btf_id


def bpf(libc, cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(NR_BPF, cmd, buf, 128)
    if r < 0:
        raise OSError(ctypes.get_errno(), f"bpf({cmd})")
    return r


def prog_info(libc, fd, info):
    b = ctypes.create_string_buffer(bytes(info), INFO_LEN)
    bpf(libc, BPF_OBJ_GET_INFO_BY_FD, struct.pack("IIQ", fd, INFO_LEN, ctypes.addressof(b)))
    return bytearray(b.raw)


def info(ids):
    libc = ctypes.CDLL(None, use_errno=True)
    out = {}
    for pid in ids:
        fd = bpf(libc, BPF_PROG_GET_FD_BY_ID, struct.pack("III", pid, 0, 0))
        i = prog_info(libc, fd, bytearray(INFO_LEN))
        name = bytes(i[64:80]).split(b"\0")[0].decode()
        (nli,) = struct.unpack_from("I", i, 148)
        (njli,) = struct.unpack_from("I", i, 168)
        lirs, jlirs = struct.unpack_from("II", i, 172)
        li = ctypes.create_string_buffer(max(nli * lirs, 1))
        jli = (ctypes.c_uint64 * max(njli, 1))()
        q = bytearray(INFO_LEN)
        struct.pack_into("I", q, 148, nli)
        struct.pack_into("Q", q, 152, ctypes.addressof(li))
        struct.pack_into("Q", q, 160, ctypes.addressof(jli))
        struct.pack_into("I", q, 168, njli)
        struct.pack_into("II", q, 172, lirs, jlirs)
        prog_info(libc, fd, q)
        out[name] = {"id": pid, "jited_line": list(jli)[:njli],
                     "line_insn": [struct.unpack_from("I", li.raw, k * lirs)[0] for k in range(nli)]}
    json.dump(out, sys.stdout)


def xlated_lines(path):
    """xlated instruction index -> 'file:line source' from a `dump xlated linum` listing"""
    m, cur = {}, None
    for line in open(path):
        s = re.match(r"^; (.*) \[file:(\S+) line_num:(\d+)", line)
        if s:
            cur = f"{s.group(2).split('/')[-1]}:{s.group(3)} {s.group(1).strip()[:90]}"
            continue
        s = re.match(r"^\s*(\d+): ", line)
        if s:
            m[int(s.group(1))] = cur
    return m


def report(d, top):
    progs = json.load(open(f"{d}/info.json"))
    xl = {n: xlated_lines(f"{d}/{n}.xl") for n in progs}
    ps = subprocess.run(["perf", "script", "-i", f"{d}/perf.data", "-F", "ip,sym"],
                        capture_output=True, text=True, check=True).stdout
    total, lines, other = collections.Counter(), collections.defaultdict(collections.Counter), collections.Counter()
    for row in ps.splitlines():
        p = row.split()
        if len(p) < 2:
            continue
        if "bpf_prog_" not in p[1]:
            other[p[1]] += 1
            continue
        name = re.sub(r"^bpf_prog_[0-9a-f]+_", "", p[1])
        if name not in progs:
            continue
        v = progs[name]
        j = bisect.bisect_right(v["jited_line"], int(p[0], 16)) - 1
        total[name] += 1
        lines[name][xl[name].get(v["line_insn"][j], "?") if j >= 0 else "(prologue)"] += 1
    helpers = ["bpf_trace_run", "bpf_task_storage_get", "copy_from_kernel_nofault", "bpf_probe_read_kernel",
               "ktime_get_mono_fast_ns", "bpf_get_current_comm", "bpf_find_vma", "bpf_ringbuf"]
    print("samples in the programs: " + ", ".join(f"{n} {c}" for n, c in total.most_common()))
    print("samples in BPF helpers and the tracepoint trampoline: " +
          ", ".join(f"{h}* {sum(c for s, c in other.items() if s.startswith(h))}" for h in helpers))
    for n, c in total.most_common():
        print(f"== {n}: {c} samples")
        for k, x in lines[n].most_common(top):
            print(f"  {x:5d} {100 * x / c:5.1f}%  {k}")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "info":
        info([int(a) for a in sys.argv[2:]])
    elif len(sys.argv) >= 3 and sys.argv[1] == "report":
        report(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 15)
    else:
        sys.exit("usage: bpf_lines.py info ID... | report DIR [N]")
