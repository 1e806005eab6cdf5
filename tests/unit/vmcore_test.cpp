// The flight recorder read out of an ELF memory dump (src/live/vmcore.h), fed
// synthetic x86-64 cores: physical memory in two PT_LOAD segments holding the
// recorder's slots on scattered pages (as a vmalloc'ed map is), its meta, and
// the damage a crash or a bad dump brings: torn slots, bit flips, copies cut
// by a page boundary, a second recorder.
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "replay/trace_reader.h"
#include "fake_recorder.h"
#include "live/recorder_scan.h"
#include "live/vmcore.h"

using namespace bdt;
using namespace bdt::live;
using bdt::testing::FakeRecorder;

namespace {

constexpr uint64_t kPage = 4096;
constexpr size_t kPerPage = kPage / sizeof(bdt_rec_slot);

bdt_rec_meta meta_of(const FakeRecorder& r, uint32_t pid = 4242) {
  bdt_rec_meta m{};
  m.magic = BDT_REC_MAGIC;
  m.meta_version = BDT_REC_META_VERSION;
  m.raw_abi = BDT_RAW_ABI;
  m.slot_size = sizeof(bdt_rec_slot);
  m.slots_per_cpu = r.slots;
  m.ncpus = r.ncpus;
  m.tracer_pid = pid;
  m.instance = r.instance;
  m.mono_to_realtime_ns = 1'700'000'000'000'000'000;
  std::snprintf(m.release, sizeof m.release, "6.1.0-57-cloud-amd64");
  std::snprintf(m.boot_id, sizeof m.boot_id, "0f0e0d0c-aaaa-bbbb-cccc-000000000001");
  std::snprintf(m.hooks, sizeof m.hooks, "btrfs_dio_write\tfentry\t1\n");
  m.check = meta_check(m);
  return m;
}

struct FakeCore {
  std::vector<uint8_t> ram = std::vector<uint8_t>(64 * kPage, 0);  // physical pages 0..63

  // The recorder's map pages, in the map's order, put on these physical pages.
  void place(const FakeRecorder& r, const std::vector<uint64_t>& pages) {
    const size_t total = r.mem.size() * sizeof(bdt_rec_slot);
    for (size_t i = 0; i < pages.size() && i * kPage < total; ++i)
      std::memcpy(&ram[pages[i] * kPage], r.bytes() + i * kPage, std::min<size_t>(kPage, total - i * kPage));
  }
  void put_meta(const bdt_rec_meta& m, uint64_t pa) { std::memcpy(&ram[pa], &m, sizeof m); }
  bdt_rec_slot* slot_at(uint64_t page, size_t k) {
    return reinterpret_cast<bdt_rec_slot*>(&ram[page * kPage + k * sizeof(bdt_rec_slot)]);
  }
  // ELF: header, 2 program headers (RAM below 32 pages, RAM above), memory.
  std::vector<uint8_t> build() const {
    const size_t ph_off = sizeof(Elf64_Ehdr), mem_off = kPage;
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
    eh.e_phnum = 2;
    std::memcpy(out.data(), &eh, sizeof eh);
    Elf64_Phdr ph[2]{};
    for (int i = 0; i < 2; ++i) {
      ph[i].p_type = PT_LOAD;
      ph[i].p_offset = mem_off + i * 32 * kPage;
      ph[i].p_paddr = i * 32 * kPage;
      ph[i].p_filesz = ph[i].p_memsz = 32 * kPage;
    }
    std::memcpy(out.data() + ph_off, ph, sizeof ph);
    std::memcpy(out.data() + mem_off, ram.data(), ram.size());
    return out;
  }
};

VmcoreScan scan(const FakeCore& c) {
  const auto file = c.build();
  return scan_vmcore(file.data(), file.size());
}

// 2 CPUs x 40 slots = 80 slots = 5 pages, scattered (one across the two segments' boundary).
const std::vector<uint64_t> kScattered = {40, 20, 35, 31, 32};

TEST(Vmcore, FindsScatteredSlotsWithoutPageTables) {
  FakeRecorder r(2, 40);
  for (uint32_t i = 1; i <= 30; ++i) r.write(i % 2, 1000 + i, 100 + i);  // 15 per CPU
  FakeCore c;
  c.place(r, kScattered);
  c.put_meta(meta_of(r), 50 * kPage + 256);
  const auto vs = scan(c);
  ASSERT_EQ(vs.recorders.size(), 1u) << vs.problem;
  const auto& x = vs.recorders[0];
  EXPECT_TRUE(x.has_meta);
  EXPECT_EQ(x.instance, r.instance);
  EXPECT_EQ(x.meta.tracer_pid, 4242u);
  EXPECT_EQ(x.header.kernel.release, "6.1.0-57-cloud-amd64");
  ASSERT_EQ(x.header.hooks.size(), 1u);
  EXPECT_EQ(x.header.hooks[0].mechanism, "fentry");
  ASSERT_EQ(x.scan.records.size(), 30u);
  for (uint32_t i = 0; i < 30; ++i) {  // merged in time order
    EXPECT_EQ(x.scan.records[i].ev.ts_ns, 1001 + i);
    EXPECT_EQ(x.scan.records[i].ev.pid, 101 + i);
  }
  EXPECT_EQ(x.scan.kept_per_cpu, (std::vector<uint64_t>{15, 15}));
  EXPECT_EQ(x.scan.newest_per_cpu, (std::vector<uint64_t>{15, 15}));
  EXPECT_EQ(x.scan.torn + x.scan.damaged, 0u);
}

TEST(Vmcore, WrappedRingKeepsEachCpusNewest) {
  FakeRecorder r(2, 40);
  for (uint32_t i = 1; i <= 200; ++i) r.write(i % 2, 1000 + i, i);  // 100 per CPU, 40 kept each
  FakeCore c;
  c.place(r, kScattered);
  c.put_meta(meta_of(r), 50 * kPage);
  const auto vs = scan(c);
  ASSERT_EQ(vs.recorders.size(), 1u) << vs.problem;
  const auto& s = vs.recorders[0].scan;
  EXPECT_EQ(s.kept_per_cpu, (std::vector<uint64_t>{40, 40}));
  EXPECT_EQ(s.newest_per_cpu, (std::vector<uint64_t>{100, 100}));
  ASSERT_EQ(s.records.size(), 80u);
  EXPECT_EQ(s.records.front().ev.pid, 121u);
  EXPECT_EQ(s.records.back().ev.pid, 200u);
}

TEST(Vmcore, TornAndBitFlippedSlotsAreDroppedNotMisread) {
  FakeRecorder r(2, 40);
  for (uint32_t i = 1; i <= 60; ++i) r.write(i % 2, 1000 + i, 100 + i);  // 30 per CPU
  FakeCore c;
  c.place(r, kScattered);
  c.put_meta(meta_of(r), 50 * kPage);
  // cpu 0 slot 3 (page 40, slot 3): being rewritten when the kernel stopped
  c.slot_at(40, 3)->seq_end += 40;
  // cpu 1 slot 5 = slot 45 = page 2 of the map (physical 35), slot 13: one bit
  // of the record's pid flipped, which seq/seq_end cannot see
  c.slot_at(35, 45 - 2 * kPerPage)->ev.pid ^= 1u << 4;
  const auto vs = scan(c);
  ASSERT_EQ(vs.recorders.size(), 1u) << vs.problem;
  const auto& s = vs.recorders[0].scan;
  EXPECT_EQ(s.torn, 1u);
  EXPECT_EQ(s.damaged, 1u);
  EXPECT_EQ(s.kept_per_cpu, (std::vector<uint64_t>{29, 29}));
  // cpu 0's seq 4 is pid 108 (torn); cpu 1's seq 6 is pid 111, flipped to 127
  // (which is also cpu 1's seq 14): neither is there, 127 only once
  size_t n127 = 0;
  for (const auto& x : s.records) {
    EXPECT_NE(x.ev.pid, 108u);
    EXPECT_NE(x.ev.pid, 111u);
    n127 += x.ev.pid == 127u;
  }
  EXPECT_EQ(n127, 1u);
}

TEST(Vmcore, ASlotCopyAcrossAPageBoundaryIsNotRead) {
  FakeRecorder r(1, 16);
  for (uint32_t i = 1; i <= 16; ++i) r.write(0, 1000 + i, i);  // one full page
  FakeCore c;
  c.place(r, {12});
  c.put_meta(meta_of(r), 50 * kPage);
  // Slots sit at multiples of their size, so in the map none straddles a page
  // (static_assert in recorder_scan.h). Copies elsewhere: one straddling the
  // boundary of physical pages 8 and 9 (not slot-aligned: not looked at),
  // one slot-aligned whose second half is other bytes (as when the next
  // physical page is not the copy's next page): its check fails.
  std::memcpy(&c.ram[9 * kPage - 128], r.mem.data() + 15, sizeof(bdt_rec_slot));
  auto* cut = c.slot_at(20, 0);
  std::memcpy(cut, r.mem.data() + 14, sizeof(bdt_rec_slot));
  std::memset(reinterpret_cast<uint8_t*>(cut) + 100, 0x5a, 100);
  const auto vs = scan(c);
  ASSERT_EQ(vs.recorders.size(), 1u) << vs.problem;
  const auto& s = vs.recorders[0].scan;
  EXPECT_EQ(s.records.size(), 16u);
  EXPECT_EQ(s.damaged, 1u);  // the cut copy
}

TEST(Vmcore, IdenticalCopiesOfASlotCountOnce) {
  FakeRecorder r(1, 16);
  for (uint32_t i = 1; i <= 5; ++i) r.write(0, 1000 + i, i);
  FakeCore c;
  c.place(r, {12});
  c.place(r, {44});  // the same page twice (a copy of it elsewhere)
  c.put_meta(meta_of(r), 50 * kPage);
  const auto vs = scan(c);
  ASSERT_EQ(vs.recorders.size(), 1u) << vs.problem;
  EXPECT_EQ(vs.recorders[0].scan.records.size(), 5u);
}

TEST(Vmcore, TwoRecordersAreToldApartByInstance) {
  FakeRecorder a(1, 16, 0xaaaa), b(1, 16, 0xbbbb);
  for (uint32_t i = 1; i <= 3; ++i) a.write(0, 1000 + i, 10 + i);
  for (uint32_t i = 1; i <= 7; ++i) b.write(0, 2000 + i, 20 + i);
  FakeCore c;
  c.place(a, {12});
  c.place(b, {13});
  c.put_meta(meta_of(a, 1), 50 * kPage);
  c.put_meta(meta_of(b, 2), 51 * kPage);
  const auto vs = scan(c);
  ASSERT_EQ(vs.recorders.size(), 2u) << vs.problem;
  EXPECT_EQ(vs.metas, 2u);
  // most events first; each recorder only its own slots
  EXPECT_EQ(vs.recorders[0].instance, 0xbbbbu);
  EXPECT_EQ(vs.recorders[0].meta.tracer_pid, 2u);
  ASSERT_EQ(vs.recorders[0].scan.records.size(), 7u);
  for (const auto& x : vs.recorders[0].scan.records) EXPECT_GT(x.ev.pid, 20u);
  EXPECT_EQ(vs.recorders[1].instance, 0xaaaau);
  EXPECT_EQ(vs.recorders[1].meta.tracer_pid, 1u);
  ASSERT_EQ(vs.recorders[1].scan.records.size(), 3u);
  for (const auto& x : vs.recorders[1].scan.records) EXPECT_LT(x.ev.pid, 20u);
}

TEST(Vmcore, SlotsWithoutTheirMetaAreStillRead) {
  FakeRecorder r(2, 40);
  for (uint32_t i = 1; i <= 10; ++i) r.write(i % 2, 1000 + i, i);
  FakeCore c;
  c.place(r, kScattered);
  const auto vs = scan(c);
  ASSERT_EQ(vs.recorders.size(), 1u) << vs.problem;
  EXPECT_FALSE(vs.recorders[0].has_meta);
  EXPECT_EQ(vs.recorders[0].scan.records.size(), 10u);
}

TEST(Vmcore, AMetaCopyCutByAPageBoundaryIsNotUsed) {
  FakeRecorder r(1, 16);
  r.write(0, 5, 7);
  FakeCore c;
  c.place(r, {12});
  c.put_meta(meta_of(r), 50 * kPage + 256);
  // a second copy whose tail (past a page boundary) is another page's bytes
  auto m = meta_of(r, 1);
  std::memset(m.hooks + 100, 0x5a, 200);
  c.put_meta(m, 60 * kPage);
  const auto vs = scan(c);
  ASSERT_EQ(vs.recorders.size(), 1u) << vs.problem;
  EXPECT_EQ(vs.metas, 1u);
  EXPECT_EQ(vs.damaged_metas, 1u);
  EXPECT_EQ(vs.recorders[0].meta.tracer_pid, 4242u);
}

TEST(Vmcore, AnotherBuildsMetaIsNamed) {
  FakeRecorder r(1, 16);
  auto m = meta_of(r);
  m.meta_version = 1;
  FakeCore c;
  c.put_meta(m, 50 * kPage);
  // the magic followed by anything else (as in the tracer's code): not counted
  const uint64_t magic = BDT_REC_MAGIC;
  std::memcpy(&c.ram[30 * kPage + 64], &magic, 8);
  std::memset(&c.ram[30 * kPage + 72], 0xc3, 64);
  const auto vs = scan(c);
  EXPECT_TRUE(vs.recorders.empty());
  EXPECT_EQ(vs.other_build_metas, 1u);
  EXPECT_NE(vs.problem.find("another btrfs-dio-trace build"), std::string::npos) << vs.problem;
}

TEST(Vmcore, NoRecorderSaysSo) {
  FakeCore c;
  std::memset(&c.ram[10 * kPage], 0x11, kPage);
  const auto vs = scan(c);
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
