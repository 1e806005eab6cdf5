// Reading the flight recorder's slots (recorder_scan.h).
#include "live/recorder_scan.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <sstream>

#include <fmt/core.h>
#include <linux/bpf.h>

namespace bdt::live {

bool read_slot(const uint8_t* p, uint32_t pos, uint32_t slots_per_cpu, RecordedRaw& out,
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

SlotScan scan_slots(const uint8_t* base, size_t stride, uint32_t ncpus, uint32_t slots_per_cpu) {
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

const MapShape* pinned_map_shape(const std::string& name) {
  static const MapShape meta{BPF_MAP_TYPE_ARRAY, 4, sizeof(bdt_rec_meta), 1, 0};
  static const MapShape recorder{BPF_MAP_TYPE_ARRAY, 4, sizeof(bdt_rec_slot), 1, BPF_F_MMAPABLE};
  static const MapShape counter{BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(uint64_t), 1, 0};
  if (name == "rec_meta") return &meta;
  if (name == "recorder") return &recorder;
  if (name == "rec_head" || name == "lost") return &counter;
  return nullptr;
}

std::string map_shape_problem(const std::string& name, const MapShape& found, const MapShape& want,
                              const char* (*type_name)(uint32_t)) {
  if (found.type == want.type && found.key_size == want.key_size && found.value_size == want.value_size &&
      (found.flags & want.flags) == want.flags && found.max_entries >= want.max_entries)
    return {};
  auto describe = [&](const MapShape& s, bool entries) {
    const char* t = type_name ? type_name(s.type) : nullptr;
    std::string d = t ? fmt::format("type {}", t) : fmt::format("type {}", s.type);
    d += fmt::format(", {}-byte keys, {}-byte values", s.key_size, s.value_size);
    if (s.flags & BPF_F_MMAPABLE) d += ", mmapable";
    if (entries) d += fmt::format(", {} entries", s.max_entries);
    return d;
  };
  return fmt::format("map {}: {}; this btrfs-dio-trace expects {}: dump it with the btrfs-dio-trace build "
                     "that pinned it, or release it",
                     name, describe(found, true), describe(want, false));
}

TraceHeader header_from_meta(const bdt_rec_meta& m) {
  TraceHeader h;
  h.schema_version = 1;
  const std::string rel(m.release, strnlen(m.release, sizeof m.release));
  if (auto kv = KernelVersion::parse(rel)) h.kernel = *kv;
  h.kernel.release = rel;
  h.mono_to_realtime_ns = m.mono_to_realtime_ns;
  std::istringstream hs(std::string(m.hooks, strnlen(m.hooks, sizeof m.hooks)));
  std::string line;
  while (std::getline(hs, line)) {
    auto t1 = line.find('\t'), t2 = line.rfind('\t');
    if (t1 == std::string::npos || t2 == t1) continue;
    h.hooks.push_back({line.substr(0, t1), line.substr(t1 + 1, t2 - t1 - 1), line.substr(t2 + 1) == "1"});
  }
  return h;
}

}  // namespace bdt::live
