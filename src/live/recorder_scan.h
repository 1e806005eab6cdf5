// Reading the in-kernel flight recorder's slots (bpf/events.h: struct
// bdt_rec_slot, docs/flight-recorder.md): drop empty and torn slots, keep each
// CPU's records in sequence order, merge the CPUs by time.
//
// Header-only on purpose: no libbpf, no syscalls, so the unit tests exercise
// exactly the code `dump --pin-dir` runs over the mmap'ed map.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#include "events.h"

namespace bdt::live {

struct RecordedRaw {
  uint32_t cpu = 0;
  uint64_t seq = 0;  // per-CPU sequence number (1 = the CPU's first record)
  bdt_raw_event ev{};
};

struct SlotScan {
  std::vector<RecordedRaw> records;      // merged: ts_ns, then cpu, then seq
  std::vector<uint64_t> kept_per_cpu;    // valid slots per CPU
  std::vector<uint64_t> newest_per_cpu;  // highest valid seq per CPU (0: none)
  uint64_t empty = 0;  // never written
  uint64_t torn = 0;   // being written while read, or abandoned half-way
};

// One slot, read the way the writer's order makes safe: seq first, the record,
// seq_end last (the writer stores seq_end, the record, then seq). The slot is
// valid when both match, are non-zero, and the sequence number belongs in this
// position of the ring. Returns false (torn) / false with *empty set.
inline bool read_slot(const uint8_t* p, uint32_t pos, uint32_t slots_per_cpu, RecordedRaw& out,
                      bool* empty) {
  const auto* s = reinterpret_cast<const bdt_rec_slot*>(p);
  const uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
  std::memcpy(&out.ev, &s->ev, sizeof out.ev);
  std::atomic_thread_fence(std::memory_order_acquire);
  const uint64_t seq_end = __atomic_load_n(&s->seq_end, __ATOMIC_RELAXED);
  *empty = seq == 0 && seq_end == 0;
  if (seq == 0 || seq != seq_end) return false;
  if ((seq - 1) % slots_per_cpu != pos) return false;  // not this position's record
  out.seq = seq;
  return true;
}

// base: ncpus * slots_per_cpu slots of `stride` bytes (CPU c owns slots
// [c * slots_per_cpu, (c + 1) * slots_per_cpu)).
inline SlotScan scan_slots(const uint8_t* base, size_t stride, uint32_t ncpus,
                           uint32_t slots_per_cpu) {
  SlotScan r;
  r.kept_per_cpu.assign(ncpus, 0);
  r.newest_per_cpu.assign(ncpus, 0);
  if (!slots_per_cpu || stride < sizeof(bdt_rec_slot)) return r;
  RecordedRaw rec;
  for (uint32_t cpu = 0; cpu < ncpus; ++cpu) {
    const size_t first = r.records.size();
    for (uint32_t i = 0; i < slots_per_cpu; ++i) {
      const uint8_t* p = base + (static_cast<size_t>(cpu) * slots_per_cpu + i) * stride;
      bool empty = false;
      if (!read_slot(p, i, slots_per_cpu, rec, &empty)) {
        (empty ? r.empty : r.torn) += 1;
        continue;
      }
      rec.cpu = cpu;
      r.records.push_back(rec);
    }
    // The ring wrapped: slots older than newest - slots_per_cpu were
    // overwritten; anything below that window is a stale leftover (a record
    // reserved and never finished is torn already).
    uint64_t newest = 0;
    for (size_t k = first; k < r.records.size(); ++k) newest = std::max(newest, r.records[k].seq);
    const uint64_t floor = newest > slots_per_cpu ? newest - slots_per_cpu : 0;
    auto mid = std::remove_if(r.records.begin() + static_cast<std::ptrdiff_t>(first), r.records.end(),
                              [&](const RecordedRaw& x) { return x.seq <= floor; });
    r.torn += static_cast<uint64_t>(r.records.end() - mid);
    r.records.erase(mid, r.records.end());
    r.kept_per_cpu[cpu] = r.records.size() - first;
    r.newest_per_cpu[cpu] = newest;
  }
  std::sort(r.records.begin(), r.records.end(), [](const RecordedRaw& a, const RecordedRaw& b) {
    if (a.ev.ts_ns != b.ev.ts_ns) return a.ev.ts_ns < b.ev.ts_ns;
    if (a.cpu != b.cpu) return a.cpu < b.cpu;
    return a.seq < b.seq;
  });
  return r;
}

// CLOCK_MONOTONIC ns (the records' ts_ns) -> ns since the epoch.
inline int64_t wall_ns(uint64_t mono_ns, int64_t mono_to_realtime_ns) {
  return static_cast<int64_t>(mono_ns) + mono_to_realtime_ns;
}

}  // namespace bdt::live
