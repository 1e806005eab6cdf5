// The flight recorder read out of an ELF memory dump (vmcore.h).
#include "live/vmcore.h"

#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <string_view>

namespace bdt::live {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kPhysMask = 0x000ffffffffff000ULL;  // address bits of a page-table entry
constexpr uint64_t kStartKernelMap = 0xffffffff80000000ULL;  // __START_KERNEL_map (x86-64)
constexpr uint32_t kArrayMap = 2;                            // BPF_MAP_TYPE_ARRAY
constexpr uint32_t kMaxSlotsPerCpu = 1u << 20;               // trace --recorder-events bound

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

class Memory {
 public:
  std::vector<Segment> segs;  // sorted by paddr

  // size bytes at physical address pa, when one segment holds them all.
  const uint8_t* at(uint64_t pa, uint64_t size) const {
    auto it = std::upper_bound(segs.begin(), segs.end(), pa,
                               [](uint64_t a, const Segment& s) { return a < s.paddr; });
    if (it == segs.begin()) return nullptr;
    --it;
    if (pa - it->paddr > it->size || it->size - (pa - it->paddr) < size) return nullptr;
    return it->data + (pa - it->paddr);
  }
};

// x86-64 page tables (4 or 5 levels) rooted at a physical address.
struct PageTables {
  const Memory& mem;
  uint64_t root;
  int levels;

  uint64_t entry(uint64_t table, unsigned idx) const {
    const uint8_t* p = mem.at(table + idx * 8ULL, 8);
    return p ? load<uint64_t>(p) : 0;
  }
  // Physical address of va, or ~0 when not mapped (or its tables are not in the dump).
  uint64_t translate(uint64_t va) const {
    uint64_t table = root;
    for (int level = levels; level >= 1; --level) {
      const unsigned shift = 12 + 9 * (level - 1);
      const uint64_t e = entry(table, (va >> shift) & 511);
      if (!(e & 1)) return ~0ULL;
      if (level == 1) return (e & kPhysMask) | (va & (kPage - 1));
      if ((level == 2 || level == 3) && (e & 0x80)) {  // 2 MiB / 1 GiB page
        const uint64_t span = 1ULL << shift;
        return (e & kPhysMask & ~(span - 1)) | (va & (span - 1));
      }
      table = e & kPhysMask;
    }
    return ~0ULL;
  }
  // Every 4 KiB mapping of the kernel half whose page is in `want`: want page -> virtual addresses.
  void find_aliases(const std::set<uint64_t>& want, std::map<uint64_t, std::vector<uint64_t>>& out) const {
    walk(root, levels, 0, true, want, out);
  }

 private:
  void walk(uint64_t table, int level, uint64_t va, bool top, const std::set<uint64_t>& want,
            std::map<uint64_t, std::vector<uint64_t>>& out) const {
    const uint8_t* t = mem.at(table, kPage);
    if (!t) return;
    const unsigned shift = 12 + 9 * (level - 1);
    for (unsigned i = top ? 256 : 0; i < 512; ++i) {  // the top level: the kernel half only
      const uint64_t e = load<uint64_t>(t + i * 8);
      if (!(e & 1)) continue;
      uint64_t v = va | (static_cast<uint64_t>(i) << shift);
      if (top) v |= levels == 5 ? 0xfe00000000000000ULL : 0xffff000000000000ULL;  // canonical
      if (level == 1) {
        if (want.count(e & kPhysMask)) out[e & kPhysMask].push_back(v);
        continue;
      }
      if (e & 0x80) continue;  // a large page: the direct map or the kernel image, not vmalloc
      walk(e & kPhysMask, level - 1, v, false, want, out);
    }
  }
};

struct Root {
  uint64_t pa;
  int levels;
  std::string source;
};

void parse_notes(const uint8_t* p, uint64_t size, std::vector<Root>& roots, std::string& vmcoreinfo) {
  uint64_t off = 0;
  auto pad4 = [](uint64_t n) { return (n + 3) & ~uint64_t{3}; };
  while (off + sizeof(Elf64_Nhdr) <= size) {
    const auto nh = load<Elf64_Nhdr>(p + off);
    off += sizeof nh;
    if (pad4(nh.n_namesz) > size - off) break;
    const std::string_view name(reinterpret_cast<const char*>(p + off), nh.n_namesz ? nh.n_namesz - 1 : 0);
    off += pad4(nh.n_namesz);
    if (pad4(nh.n_descsz) > size - off) break;
    const uint8_t* desc = p + off;
    off += pad4(nh.n_descsz);
    if (name == "VMCOREINFO") {
      vmcoreinfo.assign(reinterpret_cast<const char*>(desc), nh.n_descsz);
    } else if (name == "QEMU" && nh.n_descsz >= 432) {
      // QEMU's QEMUCPUState (target/i386/arch_dump.c): version, size, 18 registers,
      // 10 segments of 24 bytes, then cr[0..4] at byte 392.
      const uint64_t cr3 = load<uint64_t>(desc + 392 + 3 * 8), cr4 = load<uint64_t>(desc + 392 + 4 * 8);
      if (cr3 & kPhysMask)
        roots.push_back({cr3 & kPhysMask, (cr4 & (1u << 12)) ? 5 : 4, "QEMU CPU note (cr3)"});
    }
  }
}

// "KEY=value" of VMCOREINFO; hex for SYMBOL(), decimal for NUMBER().
bool info_value(const std::string& info, const std::string& key, int base, uint64_t& out) {
  const auto at = info.find(key + "=");
  if (at == std::string::npos || (at && info[at - 1] != '\n')) return false;
  const std::string v = info.substr(at + key.size() + 1, info.find('\n', at) - at - key.size() - 1);
  try {
    out = base == 16 ? std::stoull(v, nullptr, 16) : static_cast<uint64_t>(std::stoll(v, nullptr, 10));
  } catch (...) {
    return false;
  }
  return true;
}

// A text field as the tracer writes it (snprintf into a zeroed struct):
// printable up to its NUL, zeros after. A copy of the meta that straddles a
// page boundary of some process's memory (physically discontiguous) fails this.
bool clean_text(const char* p, size_t n, bool lines) {
  size_t i = 0;
  for (; i < n && p[i]; ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    if (!((c >= 0x20 && c < 0x7f) || (lines && (c == '\t' || c == '\n')))) return false;
  }
  if (i == n) return false;
  for (; i < n; ++i)
    if (p[i]) return false;
  return true;
}

bool plausible_meta(const bdt_rec_meta& m) {
  if (m.meta_version != BDT_REC_META_VERSION || m.raw_abi != BDT_RAW_ABI || m.slot_size != sizeof(bdt_rec_slot))
    return false;
  if (!m.ncpus || m.ncpus > 8192 || !m.slots_per_cpu || m.slots_per_cpu > kMaxSlotsPerCpu) return false;
  return clean_text(m.release, sizeof m.release, false) && clean_text(m.boot_id, sizeof m.boot_id, false) &&
         clean_text(m.hooks, sizeof m.hooks, true);
}

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

  Memory mem;
  std::vector<Root> roots;
  std::string vmcoreinfo;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    const auto ph = load<Elf64_Phdr>(data + eh.e_phoff + i * sizeof(Elf64_Phdr));
    if (ph.p_offset > size) continue;
    const uint64_t avail = std::min<uint64_t>(ph.p_filesz, size - ph.p_offset);  // a truncated dump: what is there
    if (ph.p_type == PT_NOTE) parse_notes(data + ph.p_offset, avail, roots, vmcoreinfo);
    if (ph.p_type == PT_LOAD && avail) mem.segs.push_back({ph.p_paddr, avail, data + ph.p_offset});
  }
  if (mem.segs.empty()) throw InputError("the ELF core has no memory segments");
  std::sort(mem.segs.begin(), mem.segs.end(), [](const Segment& a, const Segment& b) { return a.paddr < b.paddr; });
  // kdump: the kernel's own page table first (a QEMU dump has VMCOREINFO only when
  // the guest has the vmcoreinfo device).
  uint64_t pgt = 0, phys_base = 0, l5 = 0;
  if (info_value(vmcoreinfo, "SYMBOL(init_top_pgt)", 16, pgt) && info_value(vmcoreinfo, "NUMBER(phys_base)", 10, phys_base)) {
    info_value(vmcoreinfo, "NUMBER(pgtable_l5_enabled)", 10, l5);
    roots.insert(roots.begin(), {pgt - kStartKernelMap + phys_base, l5 ? 5 : 4, "VMCOREINFO init_top_pgt"});
  }

  // One pass over memory: recorder metas (by magic) and bpf_map headers
  // (map_type, key_size, value_size, max_entries are consecutive u32s).
  std::vector<bdt_rec_meta> metas;
  size_t other_builds = 0;
  struct Header {
    uint64_t pa;
    uint32_t max_entries;
  };
  std::vector<Header> headers;
  static constexpr char kName[] = "recorder";
  for (const auto& s : mem.segs) {
    r.bytes += s.size;
    for (uint64_t off = 0; off + 16 <= s.size; off += 8) {
      const uint8_t* p = s.data + off;
      const uint64_t w = load<uint64_t>(p);
      if (w == BDT_REC_MAGIC && s.size - off >= sizeof(bdt_rec_meta)) {
        const auto m = load<bdt_rec_meta>(p);
        if (!plausible_meta(m)) {
          other_builds += m.meta_version != BDT_REC_META_VERSION || m.raw_abi != BDT_RAW_ABI;
          continue;
        }
        if (std::none_of(metas.begin(), metas.end(),
                         [&](const bdt_rec_meta& x) { return std::memcmp(&x, &m, sizeof m) == 0; }))
          metas.push_back(m);
      } else if (w == (uint64_t{4} << 32 | kArrayMap) && load<uint32_t>(p + 8) == sizeof(bdt_rec_slot)) {
        // the map's name (char[16]) follows in the same struct, in the same page
        const uint64_t page_end = kPage - ((s.paddr + off) & (kPage - 1));
        const uint64_t span = std::min<uint64_t>(std::min<uint64_t>(page_end, 1024), s.size - off);
        const auto* hit = static_cast<const uint8_t*>(memmem(p, span, kName, sizeof kName));
        if (hit) headers.push_back({s.paddr + off, load<uint32_t>(p + 12)});
      }
    }
  }
  r.metas = metas.size();
  if (metas.empty()) {
    r.problem = other_builds ? fmt::format("{} recorder descriptions of another btrfs-dio-trace build (meta version "
                                           "or raw ABI differs): read the dump with the build that recorded it",
                                           other_builds)
                             : "no flight recorder in this memory (no recorder description found: was the "
                               "tracer running with --pin-dir?)";
    return r;
  }
  if (roots.empty()) {
    r.problem = "the dump has neither VMCOREINFO nor QEMU CPU notes: the kernel's page tables cannot be found";
    return r;
  }

  for (const auto& h : headers)
    r.map_headers += std::any_of(metas.begin(), metas.end(), [&](const bdt_rec_meta& m) {
      return h.max_entries == uint64_t{m.ncpus} * m.slots_per_cpu;
    });
  for (const auto& root : roots) {
    PageTables pt{mem, root.pa, root.levels};
    std::set<uint64_t> want;
    for (const auto& h : headers) want.insert(h.pa & ~(kPage - 1));
    std::map<uint64_t, std::vector<uint64_t>> aliases;
    pt.find_aliases(want, aliases);
    for (const auto& m : metas) {
      const uint64_t entries = uint64_t{m.ncpus} * m.slots_per_cpu;
      const size_t stride = (sizeof(bdt_rec_slot) + 7) & ~size_t{7};
      const uint64_t pages = (entries * stride + kPage - 1) / kPage;
      VmcoreRecorder best;
      bool found = false;
      for (const auto& h : headers) {
        if (h.max_entries != entries) continue;
        auto it = aliases.find(h.pa & ~(kPage - 1));
        if (it == aliases.end()) continue;
        for (uint64_t va : it->second) {
          // the values start at the next page (kernel/bpf/arraymap.c: a
          // BPF_F_MMAPABLE array's header ends where the page-aligned values begin)
          VmcoreRecorder rec;
          rec.map_vaddr = va + kPage;
          rec.pages = pages;
          std::vector<uint8_t> buf(pages * kPage, 0);
          for (uint64_t i = 0; i < pages; ++i) {
            const uint64_t pa = pt.translate(rec.map_vaddr + i * kPage);
            const uint8_t* src = pa == ~0ULL ? nullptr : mem.at(pa, kPage);
            if (src)
              std::memcpy(buf.data() + i * kPage, src, kPage);
            else
              ++rec.pages_missing;
          }
          rec.scan = scan_slots(buf.data(), stride, m.ncpus, m.slots_per_cpu);
          if (!found || rec.scan.records.size() > best.scan.records.size()) {
            best = std::move(rec);
            found = true;
          }
        }
      }
      if (!found) continue;
      if (std::any_of(r.recorders.begin(), r.recorders.end(),
                      [&](const VmcoreRecorder& x) { return x.map_vaddr == best.map_vaddr; })) {
        ++r.duplicate_metas;  // another copy of this recorder's meta that differs (kept: the first)
        continue;
      }
      best.meta = m;
      best.header = header_from_meta(m);
      r.recorders.push_back(std::move(best));
    }
    if (!r.recorders.empty()) {
      r.root_source = root.source;
      r.paging_levels = root.levels;
      break;
    }
  }
  std::sort(r.recorders.begin(), r.recorders.end(), [](const VmcoreRecorder& a, const VmcoreRecorder& b) {
    return a.scan.records.size() > b.scan.records.size();
  });
  if (r.recorders.empty())
    r.problem = fmt::format("{} recorder description(s) found, but no recorder map mapped in the kernel's page "
                            "tables ({} candidate map headers, root: {}): its memory was freed before the dump, or is "
                            "not in it",
                            metas.size(), r.map_headers, roots.front().source);
  return r;
}

}  // namespace bdt::live
