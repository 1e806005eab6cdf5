// The flight recorder read out of an ELF memory dump (src/live/vmcore.h), fed
// synthetic x86-64 cores: physical memory with 4-level page tables, a recorder
// map whose value pages are scattered physically, its meta, and the notes a
// QEMU dump-guest-memory or a kdump vmcore carries.
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "replay/trace_reader.h"
#include "live/vmcore.h"

using namespace bdt;
using namespace bdt::live;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kVmalloc = 0xffffc90000005000ULL;  // the map's first (header) page

struct FakeCore {
  uint32_t ncpus = 2, slots = 40;
  std::vector<uint8_t> ram = std::vector<uint8_t>(64 * kPage, 0);  // physical pages 0..63
  std::vector<bdt_rec_slot> rec;
  std::vector<uint64_t> head;
  uint64_t root = 1 * kPage;
  std::vector<uint64_t> value_pages = {40, 20, 35, 22};  // physical pages of the values, in order

  FakeCore() : rec(size_t{ncpus} * slots), head(ncpus, 0) { std::memset(rec.data(), 0, rec.size() * sizeof rec[0]); }

  void put64(uint64_t pa, uint64_t v) { std::memcpy(&ram[pa], &v, 8); }
  void write(uint32_t cpu, uint64_t ts, uint32_t pid) {
    const uint64_t seq = ++head[cpu];
    auto& s = rec[size_t{cpu} * slots + (seq - 1) % slots];
    std::memset(&s, 0, sizeof s);
    s.seq = s.seq_end = seq;
    s.ev.ts_ns = ts;
    s.ev.pid = s.ev.tid = pid;
    std::snprintf(s.ev.comm, sizeof s.ev.comm, "crashmark");
    s.ev.type = BDT_EV_DIO_BEGIN;
  }
  void map(uint64_t va, uint64_t pa_page) {  // 4-level tables at pages 1 (PML4), 2, 3, 4
    put64(root + ((va >> 39) & 511) * 8, 2 * kPage | 3);
    put64(2 * kPage + ((va >> 30) & 511) * 8, 3 * kPage | 3);
    put64(3 * kPage + ((va >> 21) & 511) * 8, 4 * kPage | 3);
    put64(4 * kPage + ((va >> 12) & 511) * 8, pa_page * kPage | 3);
  }
  // Lays the recorder out the way the kernel holds it; returns the file.
  std::vector<uint8_t> build(bool with_meta = true, bool qemu_note = true, std::string vmcoreinfo = "") {
    // header page (phys 10): struct bpf_map's map_type..max_entries, then its name
    const uint64_t h = 10 * kPage + kPage - 384;
    const uint32_t f[4] = {2, 4, sizeof(bdt_rec_slot), ncpus * slots};
    std::memcpy(&ram[h + 24], f, sizeof f);
    std::memcpy(&ram[h + 0x70], "recorder", 9);
    map(kVmalloc, 10);
    const auto* bytes = reinterpret_cast<const uint8_t*>(rec.data());
    const size_t total = rec.size() * sizeof rec[0];
    for (size_t i = 0; i < value_pages.size(); ++i) {
      if (value_pages[i]) map(kVmalloc + (i + 1) * kPage, value_pages[i]);
      const size_t n = std::min<size_t>(kPage, total - std::min(total, i * kPage));
      if (n && value_pages[i]) std::memcpy(&ram[value_pages[i] * kPage], bytes + i * kPage, n);
    }
    if (with_meta) {
      bdt_rec_meta m{};
      m.magic = BDT_REC_MAGIC;
      m.meta_version = BDT_REC_META_VERSION;
      m.raw_abi = BDT_RAW_ABI;
      m.slot_size = sizeof(bdt_rec_slot);
      m.slots_per_cpu = slots;
      m.ncpus = ncpus;
      m.tracer_pid = 4242;
      m.mono_to_realtime_ns = 1'700'000'000'000'000'000;
      std::snprintf(m.release, sizeof m.release, "6.1.0-57-cloud-amd64");
      std::snprintf(m.boot_id, sizeof m.boot_id, "0f0e0d0c-aaaa-bbbb-cccc-000000000001");
      std::snprintf(m.hooks, sizeof m.hooks, "btrfs_dio_write\tfentry\t1\n");
      std::memcpy(&ram[50 * kPage + 256], &m, sizeof m);
    }
    // notes
    std::vector<uint8_t> notes;
    auto note = [&](const std::string& name, uint32_t type, const std::vector<uint8_t>& desc) {
      Elf64_Nhdr nh{static_cast<Elf64_Word>(name.size() + 1), static_cast<Elf64_Word>(desc.size()), type};
      const auto* p = reinterpret_cast<const uint8_t*>(&nh);
      notes.insert(notes.end(), p, p + sizeof nh);
      notes.insert(notes.end(), name.begin(), name.end());
      notes.resize((notes.size() + 1 + 3) & ~size_t{3}, 0);
      notes.insert(notes.end(), desc.begin(), desc.end());
      notes.resize((notes.size() + 3) & ~size_t{3}, 0);
    };
    note("CORE", NT_PRSTATUS, std::vector<uint8_t>(336, 0));
    if (qemu_note) {
      std::vector<uint8_t> st(440, 0);
      const uint64_t cr3 = root | 0x5;  // PCID bits in the low 12 bits
      std::memcpy(&st[392 + 3 * 8], &cr3, 8);
      note("QEMU", 0, st);
    }
    if (!vmcoreinfo.empty()) note("VMCOREINFO", 0, std::vector<uint8_t>(vmcoreinfo.begin(), vmcoreinfo.end()));
    // ELF: header, 3 program headers (note, RAM below 32 pages, RAM above), notes, memory
    const size_t ph_off = sizeof(Elf64_Ehdr), notes_off = ph_off + 3 * sizeof(Elf64_Phdr);
    const size_t mem_off = (notes_off + notes.size() + kPage - 1) / kPage * kPage;
    std::vector<uint8_t> out(mem_off + ram.size(), 0);
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_CORE;
    eh.e_machine = EM_X86_64;
    eh.e_phoff = ph_off;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 3;
    std::memcpy(out.data(), &eh, sizeof eh);
    Elf64_Phdr ph[3]{};
    ph[0].p_type = PT_NOTE;
    ph[0].p_offset = notes_off;
    ph[0].p_filesz = notes.size();
    for (int i = 0; i < 2; ++i) {
      ph[1 + i].p_type = PT_LOAD;
      ph[1 + i].p_offset = mem_off + i * 32 * kPage;
      ph[1 + i].p_paddr = i * 32 * kPage;
      ph[1 + i].p_filesz = ph[1 + i].p_memsz = 32 * kPage;
    }
    std::memcpy(out.data() + ph_off, ph, sizeof ph);
    std::memcpy(out.data() + notes_off, notes.data(), notes.size());
    std::memcpy(out.data() + mem_off, ram.data(), ram.size());
    return out;
  }
};

TEST(Vmcore, FindsTheRecorderThroughThePageTables) {
  FakeCore c;
  for (uint32_t i = 1; i <= 30; ++i) c.write(i % 2, 1000 + i, 100 + i);  // 15 per CPU, none wrapped
  const auto file = c.build();
  const auto vs = scan_vmcore(file.data(), file.size());
  ASSERT_EQ(vs.recorders.size(), 1u) << vs.problem;
  const auto& r = vs.recorders[0];
  EXPECT_EQ(vs.root_source, "QEMU CPU note (cr3)");
  EXPECT_EQ(vs.paging_levels, 4);
  EXPECT_EQ(r.map_vaddr, kVmalloc + kPage);
  EXPECT_EQ(r.pages, 4u);
  EXPECT_EQ(r.pages_missing, 0u);
  EXPECT_EQ(r.meta.tracer_pid, 4242u);
  EXPECT_EQ(r.header.kernel.release, "6.1.0-57-cloud-amd64");
  ASSERT_EQ(r.header.hooks.size(), 1u);
  EXPECT_EQ(r.header.hooks[0].mechanism, "fentry");
  ASSERT_EQ(r.scan.records.size(), 30u);
  for (uint32_t i = 0; i < 30; ++i) {  // merged in time order, across the slots that straddle pages
    EXPECT_EQ(r.scan.records[i].ev.ts_ns, 1001 + i);
    EXPECT_EQ(r.scan.records[i].ev.pid, 101 + i);
  }
  EXPECT_EQ(r.scan.kept_per_cpu, (std::vector<uint64_t>{15, 15}));
  EXPECT_EQ(r.scan.torn, 0u);
}

TEST(Vmcore, KdumpVmcoreinfoGivesThePageTable) {
  FakeCore c;
  c.write(0, 5, 7);
  char info[160];
  std::snprintf(info, sizeof info, "OSRELEASE=6.1.0-57-cloud-amd64\nSYMBOL(init_top_pgt)=%llx\nNUMBER(phys_base)=0\n",
                static_cast<unsigned long long>(0xffffffff80000000ULL + c.root));
  const auto file = c.build(true, false, info);
  const auto vs = scan_vmcore(file.data(), file.size());
  ASSERT_EQ(vs.recorders.size(), 1u) << vs.problem;
  EXPECT_EQ(vs.root_source, "VMCOREINFO init_top_pgt");
  ASSERT_EQ(vs.recorders[0].scan.records.size(), 1u);
  EXPECT_EQ(vs.recorders[0].scan.records[0].ev.pid, 7u);
}

TEST(Vmcore, DamagedSlotsAndMissingPagesAreDroppedNotMisread) {
  FakeCore c;
  for (uint32_t i = 1; i <= 60; ++i) c.write(i % 2, 1000 + i, 100 + i);  // 30 per CPU
  c.rec[3].seq_end ^= 1u << 9;       // a bit flip: cpu 0's slot 3
  c.rec[40 + 5].ev.pid = 0xdead;     // inside a record: not detectable, kept as it is
  c.value_pages[3] = 0;              // the last value page is not mapped
  const auto file = c.build();
  const auto vs = scan_vmcore(file.data(), file.size());
  ASSERT_EQ(vs.recorders.size(), 1u) << vs.problem;
  const auto& r = vs.recorders[0];
  EXPECT_EQ(r.pages_missing, 1u);
  // slots 0..39 of cpu 1 span bytes 7360..14719: the part after byte 12288 is missing
  const size_t lost_cpu1 = 30 - (12288 - 40 * sizeof(bdt_rec_slot)) / sizeof(bdt_rec_slot);
  EXPECT_EQ(r.scan.kept_per_cpu[0], 29u);
  EXPECT_EQ(r.scan.kept_per_cpu[1], 30u - lost_cpu1);
  EXPECT_EQ(r.scan.torn, 1u + 1u);  // the bit flip; the slot cut by the missing page
  for (const auto& x : r.scan.records) EXPECT_NE(x.seq, 0u);
}

TEST(Vmcore, AMetaCopyCutByAPageBoundaryIsNotUsed) {
  FakeCore c;
  c.write(0, 5, 7);
  auto file = c.build();
  // a second copy whose tail (past a page boundary) is another page's bytes
  bdt_rec_meta m;
  const size_t mem_off = file.size() - c.ram.size();
  std::memcpy(&m, &file[mem_off + 50 * kPage + 256], sizeof m);
  m.tracer_pid = 1;
  std::memset(m.hooks + 100, 0x5a, 200);
  std::memcpy(&file[mem_off + 60 * kPage], &m, sizeof m);
  const auto vs = scan_vmcore(file.data(), file.size());
  ASSERT_EQ(vs.recorders.size(), 1u) << vs.problem;
  EXPECT_EQ(vs.metas, 1u);
  EXPECT_EQ(vs.recorders[0].meta.tracer_pid, 4242u);
}

TEST(Vmcore, NoRecorderSaysSo) {
  FakeCore c;
  c.write(0, 5, 7);
  const auto file = c.build(false);
  const auto vs = scan_vmcore(file.data(), file.size());
  EXPECT_TRUE(vs.recorders.empty());
  EXPECT_NE(vs.problem.find("no flight recorder"), std::string::npos) << vs.problem;
}

TEST(Vmcore, NotAnElfCoreIsAnInputError) {
  std::vector<uint8_t> junk(4096, 'x');
  EXPECT_THROW(scan_vmcore(junk.data(), junk.size()), InputError);
  FakeCore c;
  auto file = c.build();
  file.resize(sizeof(Elf64_Ehdr) + 10);  // program headers cut off
  EXPECT_THROW(scan_vmcore(file.data(), file.size()), InputError);
}

}  // namespace
