// The flight recorder read out of an ELF memory dump (vmcore.h).
#include "live/vmcore.h"

#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>

namespace bdt::live {

namespace {

constexpr uint32_t kMaxSlotsPerCpu = 1u << 20;  // trace --recorder-events bound

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

struct Segment {
  uint64_t paddr, size;
  const uint8_t* data;
};

bool this_build(const bdt_rec_meta& m) {
  return m.meta_version == BDT_REC_META_VERSION && m.raw_abi == BDT_RAW_ABI && m.slot_size == sizeof(bdt_rec_slot);
}

bool sane_meta(const bdt_rec_meta& m) {
  return m.instance && m.ncpus && m.ncpus <= 8192 && m.slots_per_cpu && m.slots_per_cpu <= kMaxSlotsPerCpu;
}

struct Instance {
  std::vector<bdt_rec_meta> metas;  // distinct valid ones
  std::vector<RecordedRaw> slots;
  uint64_t torn = 0, damaged = 0;
};

}  // namespace

VmcoreScan scan_vmcore(const uint8_t* data, size_t size) {
  VmcoreScan r;
  if (size < sizeof(Elf64_Ehdr) || std::memcmp(data, ELFMAG, SELFMAG) != 0)
    throw InputError("not an ELF file (a kdump compressed dump? see docs/flight-recorder.md for the "
                     "makedumpfile command that writes ELF)");
  const auto eh = load<Elf64_Ehdr>(data);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_type != ET_CORE ||
      eh.e_machine != EM_X86_64)
    throw InputError("not a 64-bit little-endian x86-64 ELF core file");
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > size ||
      (size - eh.e_phoff) / sizeof(Elf64_Phdr) < eh.e_phnum)
    throw InputError("ELF program headers out of the file (truncated dump?)");

  std::vector<Segment> segs;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    const auto ph = load<Elf64_Phdr>(data + eh.e_phoff + i * sizeof(Elf64_Phdr));
    if (ph.p_type != PT_LOAD || ph.p_offset > size) continue;
    const uint64_t avail = std::min<uint64_t>(ph.p_filesz, size - ph.p_offset);  // a truncated dump: what is there
    if (avail) segs.push_back({ph.p_paddr, avail, data + ph.p_offset});
  }
  if (segs.empty()) throw InputError("the ELF core has no memory segments");

  // One pass: metas by their magic (8-byte aligned), slots by theirs (at
  // physical addresses that are multiples of the slot size).
  std::map<uint64_t, Instance> found;
  uint64_t slot_magics_lost = 0;  // torn/damaged slots, before their instance is known to be real
  std::vector<std::pair<uint64_t, bool>> bad_slots;  // instance, torn
  constexpr uint64_t kSlot = sizeof(bdt_rec_slot);
  for (const auto& s : segs) {
    r.bytes += s.size;
    for (uint64_t off = 0; off + 16 <= s.size; off += 8) {
      const uint8_t* p = s.data + off;
      if (load<uint64_t>(p) == BDT_REC_MAGIC && s.size - off >= sizeof(bdt_rec_meta)) {
        const auto m = load<bdt_rec_meta>(p);
        if (!this_build(m)) {
          // the magic alone also occurs elsewhere (the tracer's code loads it as
          // an immediate): counted only when the versions look like versions
          r.other_build_metas += m.meta_version >= 1 && m.meta_version < 64 && m.raw_abi >= 1 && m.raw_abi < 64;
        } else if (m.check != meta_check(m) || !sane_meta(m)) {
          ++r.damaged_metas;
        } else {
          auto& ms = found[m.instance].metas;
          if (std::none_of(ms.begin(), ms.end(), [&](const bdt_rec_meta& x) { return !std::memcmp(&x, &m, sizeof m); }))
            ms.push_back(m);
        }
      }
      if ((s.paddr + off) % kSlot || s.size - off < kSlot || load<uint32_t>(p + 8) != BDT_REC_SLOT_MAGIC) continue;
      RecordedRaw rec;
      uint64_t inst = 0;
      switch (read_slot(p, rec, &inst)) {
        case SlotState::Valid: found[inst].slots.push_back(rec); break;
        case SlotState::Torn: bad_slots.push_back({load<uint64_t>(p + 16), true}); break;
        case SlotState::Damaged: bad_slots.push_back({load<uint64_t>(p + 16), false}); break;
        case SlotState::Empty: break;
      }
    }
  }
  for (const auto& [inst, torn] : bad_slots) {
    auto it = found.find(inst);
    if (it == found.end()) {
      ++slot_magics_lost;
      continue;
    }
    (torn ? it->second.torn : it->second.damaged) += 1;
  }
  r.unattributed = slot_magics_lost;

  for (auto& [inst, in] : found) {
    VmcoreRecorder rec;
    rec.instance = inst;
    r.metas += !in.metas.empty();
    if (!in.metas.empty()) {
      rec.has_meta = true;
      rec.meta = in.metas.front();
      rec.header = header_from_meta(rec.meta);
      r.duplicate_metas += in.metas.size() - 1;
    }
    rec.scan = collect_slots(std::move(in.slots), rec.has_meta ? rec.meta.ncpus : 0,
                             rec.has_meta ? rec.meta.slots_per_cpu : 0);
    rec.scan.torn = in.torn;
    rec.scan.damaged = in.damaged;
    r.recorders.push_back(std::move(rec));
  }
  std::stable_sort(r.recorders.begin(), r.recorders.end(), [](const VmcoreRecorder& a, const VmcoreRecorder& b) {
    if (a.has_meta != b.has_meta) return a.has_meta;
    return a.scan.records.size() > b.scan.records.size();
  });
  if (r.recorders.empty())
    r.problem = r.other_build_metas
                    ? fmt::format("{} recorder descriptions of another btrfs-dio-trace build (meta version, raw ABI or "
                                  "slot size differs): read the dump with the build that recorded it",
                                  r.other_build_metas)
                    : "no flight recorder in this memory (no recorder description or slot found: was the tracer "
                      "running with --pin-dir?)";
  return r;
}

}  // namespace bdt::live
