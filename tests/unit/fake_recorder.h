// A flight recorder written the way bpf/emission.bpf.h writes it (rec_reserve
// then bdt_submit: seq_end, magic/cpu/instance, the record, the check, seq),
// for the unit tests of the slot readers (recorder_scan_test, vmcore_test).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "events.h"

namespace bdt::testing {

// The check bdt_submit computes over a slot's header and record.
inline uint64_t slot_check(const bdt_rec_slot& s, uint64_t seq) {
  bdt_u64 w[BDT_REC_EV_WORDS];
  std::memcpy(w, &s.ev, sizeof w);
  return bdt_rec_check(s.instance, s.cpu, seq, w);
}

struct FakeRecorder {
  uint32_t ncpus, slots;
  uint64_t instance;
  std::vector<uint64_t> head;
  std::vector<bdt_rec_slot> mem;
  FakeRecorder(uint32_t n, uint32_t s, uint64_t inst = 0x1234abcd5678ef01ULL)
      : ncpus(n), slots(s), instance(inst), head(n, 0), mem(size_t{n} * s) {
    std::memset(mem.data(), 0, mem.size() * sizeof(bdt_rec_slot));
  }
  // rec_reserve: the slot of this CPU's next sequence number, record zeroed.
  bdt_rec_slot& reserve(uint32_t cpu, uint64_t ts, uint32_t tid) {
    const uint64_t seq = ++head[cpu];
    auto& sl = mem[size_t{cpu} * slots + (seq - 1) % slots];
    sl.seq_end = seq;
    sl.magic = BDT_REC_SLOT_MAGIC;
    sl.cpu = cpu;
    sl.instance = instance;
    std::memset(&sl.ev, 0, sizeof sl.ev);
    sl.ev.ts_ns = ts;
    sl.ev.pid = sl.ev.tid = tid;
    std::memcpy(sl.ev.comm, "crashmark", 10);
    sl.ev.type = BDT_EV_DIO_BEGIN;
    return sl;
  }
  // bdt_submit: the check, then seq.
  static void submit(bdt_rec_slot& sl) {
    sl.check = slot_check(sl, sl.seq_end);
    sl.seq = sl.seq_end;
  }
  void write(uint32_t cpu, uint64_t ts, uint32_t tid) { submit(reserve(cpu, ts, tid)); }
  const uint8_t* bytes() const { return reinterpret_cast<const uint8_t*>(mem.data()); }
};

}  // namespace bdt::testing
