// Reading the flight recorder's slots (recorder_scan.h).
#include "live/recorder_scan.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <sstream>

#include <fmt/core.h>
#include <linux/bpf.h>

namespace bdt::live {

SlotState read_slot(const uint8_t* p, RecordedRaw& out, uint64_t* instance) {
  const auto* s = reinterpret_cast<const bdt_rec_slot*>(p);
  const uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
  bdt_rec_slot copy;
  std::memcpy(&copy, s, sizeof copy);
  std::atomic_thread_fence(std::memory_order_acquire);
  const uint64_t seq_end = __atomic_load_n(&s->seq_end, __ATOMIC_RELAXED);
  if (seq == 0 && seq_end == 0 && copy.magic == 0) return SlotState::Empty;
  if (seq == 0 || seq != seq_end) return SlotState::Torn;
  bdt_u64 words[BDT_REC_EV_WORDS];
  std::memcpy(words, &copy.ev, sizeof words);
  if (copy.magic != BDT_REC_SLOT_MAGIC || copy.seq != seq ||
      copy.check != bdt_rec_check(copy.instance, copy.cpu, seq, words))
    return SlotState::Damaged;
  out.cpu = copy.cpu;
  out.seq = seq;
  out.ev = copy.ev;
  *instance = copy.instance;
  return SlotState::Valid;
}

namespace {

// Per CPU: the newest window, counts; then everything merged by time.
SlotScan finish(std::vector<RecordedRaw> recs, uint32_t ncpus, uint32_t slots_per_cpu, SlotScan r) {
  for (const auto& x : recs) ncpus = std::max(ncpus, x.cpu + 1);
  r.kept_per_cpu.assign(ncpus, 0);
  r.newest_per_cpu.assign(ncpus, 0);
  for (const auto& x : recs) r.newest_per_cpu[x.cpu] = std::max(r.newest_per_cpu[x.cpu], x.seq);
  // The ring wrapped: slots older than newest - slots_per_cpu were
  // overwritten; anything below that window is a stale leftover.
  auto mid = std::remove_if(recs.begin(), recs.end(), [&](const RecordedRaw& x) {
    const uint64_t newest = r.newest_per_cpu[x.cpu];
    return slots_per_cpu && newest > slots_per_cpu && x.seq <= newest - slots_per_cpu;
  });
  r.stale += static_cast<uint64_t>(recs.end() - mid);
  recs.erase(mid, recs.end());
  for (const auto& x : recs) ++r.kept_per_cpu[x.cpu];
  std::sort(recs.begin(), recs.end(), [](const RecordedRaw& a, const RecordedRaw& b) {
    if (a.ev.ts_ns != b.ev.ts_ns) return a.ev.ts_ns < b.ev.ts_ns;
    if (a.cpu != b.cpu) return a.cpu < b.cpu;
    return a.seq < b.seq;
  });
  r.records = std::move(recs);
  return r;
}

}  // namespace

SlotScan scan_slots(const uint8_t* base, size_t stride, uint32_t ncpus, uint32_t slots_per_cpu,
                    uint64_t instance) {
  SlotScan r;
  std::vector<RecordedRaw> recs;
  if (!slots_per_cpu || stride < sizeof(bdt_rec_slot)) return finish({}, ncpus, slots_per_cpu, r);
  RecordedRaw rec;
  for (uint32_t cpu = 0; cpu < ncpus; ++cpu)
    for (uint32_t i = 0; i < slots_per_cpu; ++i) {
      const uint8_t* p = base + (static_cast<size_t>(cpu) * slots_per_cpu + i) * stride;
      uint64_t inst = 0;
      switch (read_slot(p, rec, &inst)) {
        case SlotState::Empty: ++r.empty; continue;
        case SlotState::Torn: ++r.torn; continue;
        case SlotState::Damaged: ++r.damaged; continue;
        case SlotState::Valid: break;
      }
      // not this position's record: another recorder's, or misplaced
      if (inst != instance || rec.cpu != cpu || (rec.seq - 1) % slots_per_cpu != i) {
        ++r.damaged;
        continue;
      }
      recs.push_back(rec);
    }
  return finish(std::move(recs), ncpus, slots_per_cpu, r);
}

SlotScan collect_slots(std::vector<RecordedRaw> found, uint32_t ncpus, uint32_t slots_per_cpu) {
  std::sort(found.begin(), found.end(), [](const RecordedRaw& a, const RecordedRaw& b) {
    return a.cpu != b.cpu ? a.cpu < b.cpu : a.seq < b.seq;
  });
  found.erase(std::unique(found.begin(), found.end(),
                          [](const RecordedRaw& a, const RecordedRaw& b) { return a.cpu == b.cpu && a.seq == b.seq; }),
              found.end());
  return finish(std::move(found), ncpus, slots_per_cpu, SlotScan{});
}

uint64_t meta_check(const bdt_rec_meta& m) {
  bdt_rec_meta z = m;
  z.check = 0;
  static_assert(sizeof z % 8 == 0);
  bdt_u64 words[sizeof z / 8];
  std::memcpy(words, &z, sizeof z);
  uint64_t h = bdt_rec_mix(BDT_REC_MAGIC, sizeof z);
  for (uint64_t w : words) h = bdt_rec_mix(h, w);
  return h;
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
