// Decoding raw BPF records (bpf/events.h) into events: the pure half of the
// live backend (src/live/decode.h).
#include <gtest/gtest.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <random>
#include <vector>

#include "live/decode.h"
#include "live/reorder.h"
#include "trace_samples.h"

using namespace bdt;
using namespace bdt::live;

namespace {

bdt_raw_event raw(uint16_t type) {
  bdt_raw_event r;
  std::memset(&r, 0, sizeof r);
  r.type = type;
  r.ts_ns = 123456789;
  r.pid = 100;
  r.tid = 101;
  std::memcpy(r.comm, "qemu-system-x86", 15);
  for (int i = 0; i < 16; ++i) r.fsid[i] = static_cast<uint8_t>(0xd0 + i);
  r.flags = BDT_F_HAS_DEV;
  r.dev = kdev_make(0, 42);
  r.sb_dev = kdev_make(0, 41);
  r.ino = 257;
  r.root = 5;
  return r;
}

// The 6.18 numbering, as the kernel BTF enumerators give it.
FlagMaps maps_618() {
  FlagMaps fm;
  const char* ordered[] = {"REGULAR", "NOCOW",   "PREALLOC",  "COMPRESSED", "DIRECT",
                           "IO_DONE", "COMPLETE", "IOERR",    "TRUNCATED",  "LOGGED",
                           "LOGGED_CSUM", "PENDING", "ENCODED"};
  for (int i = 0; i < 13; ++i) fm.offer(std::string("BTRFS_ORDERED_") + ordered[i], i);
  const char* eb[] = {"UPTODATE", "DIRTY", "TREE_REF", "STALE", "WRITEBACK",
                      "UNMAPPED", "WRITE_ERR", "ZONED_ZEROOUT", "READING"};
  for (int i = 0; i < 9; ++i) fm.offer(std::string("EXTENT_BUFFER_") + eb[i], i);
  return fm;
}

}  // namespace

TEST(DevConversion, MatchesGlibcMakedev) {
  // Small anonymous devs (btrfs subvolumes): 0:42 -> 42.
  EXPECT_EQ(kernel_dev_to_user(kdev_make(0, 42)), makedev(0, 42));
  EXPECT_EQ(kernel_dev_to_user(kdev_make(0, 42)), 42u);
  // Block device 8:1 and 259:3 (nvme), and large minors (> 255).
  EXPECT_EQ(kernel_dev_to_user(kdev_make(8, 1)), makedev(8, 1));
  EXPECT_EQ(kernel_dev_to_user(kdev_make(259, 3)), makedev(259, 3));
  EXPECT_EQ(kernel_dev_to_user(kdev_make(0, 300)), makedev(0, 300));
  EXPECT_EQ(kernel_dev_to_user(kdev_make(4095, 0xfffff)), makedev(4095, 0xfffff));
  for (uint64_t u : {makedev(0, 42), makedev(8, 1), makedev(0, 70000), makedev(259, 3)})
    EXPECT_EQ(kernel_dev_to_user(user_dev_to_kernel(u)), u);
  EXPECT_EQ(kdev_major(kdev_make(259, 3)), 259u);
  EXPECT_EQ(kdev_minor(kdev_make(259, 3)), 3u);
}

TEST(Decode, DioBeginAllFields) {
  auto r = raw(BDT_EV_DIO_BEGIN);
  r.flags |= BDT_F_WRITE | BDT_F_AIO | BDT_F_BUF_SHARED | BDT_F_BUF_WRITABLE | BDT_F_BUF_FOUND |
             BDT_F_NODATASUM | BDT_F_PARTIAL;
  r.u.dio.pos = 4096;
  r.u.dio.count = 8192;
  r.u.dio.done_before = 512;
  r.u.dio.buf_addr = 0x7f0000002000;
  r.u.dio.buf_file_ino = 258;
  r.u.dio.buf_file_dev = kdev_make(0, 42);
  r.u.dio.buf_file_off = 8192;
  Event e;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  EXPECT_EQ(e.type, EventType::DioBegin);
  EXPECT_EQ(e.ts_ns, 123456789u);
  EXPECT_EQ(e.pid, 100u);
  EXPECT_EQ(e.tid, 101u);
  EXPECT_EQ(e.comm_view(), "qemu-system-x86");
  EXPECT_EQ(e.fs.str(), "d0d1d2d3-d4d5-d6d7-d8d9-dadbdcdddedf");
  EXPECT_EQ(e.dev, 42u);
  EXPECT_EQ(e.ino, 257u);
  const auto* d = e.as<DioBegin>();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->pos, 4096u);
  EXPECT_EQ(d->count, 8192u);
  EXPECT_EQ(d->done_before, 512u);
  EXPECT_TRUE(d->write);
  EXPECT_TRUE(d->aio);
  EXPECT_TRUE(d->buf_shared);
  EXPECT_TRUE(d->buf_writable);
  EXPECT_EQ(d->buf_file_ino, 258u);
  EXPECT_EQ(d->buf_file_dev, 42u);
  EXPECT_EQ(d->buf_file_off, 8192u);
  EXPECT_TRUE(d->nodatasum);
  EXPECT_TRUE(d->partial);
  EXPECT_TRUE(payload_matches(e));
}

TEST(Decode, DioBeginAnonymousReadBuffer) {
  auto r = raw(BDT_EV_DIO_BEGIN);
  r.flags |= BDT_F_BUF_FOUND | BDT_F_BUF_WRITABLE;
  r.u.dio.buf_file_dev = kdev_make(0, 9);  // garbage without an inode: must not leak out
  r.u.dio.buf_file_off = 77;
  Event e;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  const auto* d = e.as<DioBegin>();
  EXPECT_FALSE(d->write);
  EXPECT_FALSE(d->aio);
  EXPECT_FALSE(d->buf_shared);
  EXPECT_EQ(d->buf_file_ino, 0u);
  EXPECT_EQ(d->buf_file_dev, 0u);
  EXPECT_EQ(d->buf_file_off, 0u);
  EXPECT_FALSE(d->nodatasum);
}

TEST(Decode, DioEndDirectionOnlyWhenKnown) {
  auto r = raw(BDT_EV_DIO_END);
  r.u.dio.pos = 4096;
  r.u.dio.ret = -17;
  r.u.dio.error = -17;
  Event e;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  const auto* d = e.as<DioEnd>();
  EXPECT_EQ(d->ret, -17);
  EXPECT_EQ(d->error, -17);
  EXPECT_FALSE(d->write.has_value());
  r.flags |= BDT_F_DIR_KNOWN | BDT_F_WRITE;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  ASSERT_TRUE(e.as<DioEnd>()->write.has_value());
  EXPECT_TRUE(*e.as<DioEnd>()->write);
}

TEST(Decode, NoDevWithoutHasDev) {
  auto r = raw(BDT_EV_EM_EXIST);
  r.flags = 0;  // em_exist outside a DIO request: no inode known
  r.u.emx = {0, 8192, 4096, 4096, 4096, 4096};
  Event e;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  EXPECT_EQ(e.dev, 0u);
  EXPECT_EQ(e.ino, 0u);
  const auto* x = e.as<EmExist>();
  EXPECT_EQ(x->e_len, 8192u);
  EXPECT_EQ(x->map_start, 4096u);
  EXPECT_FALSE(e.fs.empty());
}

TEST(Decode, GetExtentExit) {
  auto r = raw(BDT_EV_GET_EXTENT);
  r.phase = BDT_PHASE_EXIT;
  r.u.ext.start = r.u.ext.em_start = 0;
  r.u.ext.len = r.u.ext.em_len = 65536;
  r.u.ext.block_start = 13631488;
  Event e;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  const auto* g = e.as<GetExtent>();
  EXPECT_EQ(g->phase, Phase::Exit);
  EXPECT_EQ(g->em_len, 65536u);
  EXPECT_EQ(g->block_start, 13631488u);
}

TEST(Decode, OrderedFlagsByName) {
  auto r = raw(BDT_EV_OE_REMOVE);
  // 6.18: REGULAR=0 DIRECT=4 IO_DONE=5 COMPLETE=6 IOERR=7
  r.u.oe.kflags = (1u << 0) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 7) | (1ull << 40);
  r.u.oe.file_offset = 4096;
  r.u.oe.len = 8192;
  Event e;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  const auto* o = e.as<Ordered>();
  EXPECT_EQ(o->flags, oef::REGULAR | oef::DIRECT | oef::IO_DONE | oef::COMPLETE | oef::IOERR);
  EXPECT_FALSE(o->uptodate);  // IOERR
  EXPECT_EQ(o->file_offset, 4096u);
  EXPECT_EQ(o->len, 8192u);
}

TEST(Decode, OrderedFlagsOtherKernelNumbering) {
  // An older kernel numbered the ordered flags differently (e.g. IO_DONE=0,
  // COMPLETE=1, NOCOW=2, ..., DIRECT=5): the names carry the meaning.
  FlagMaps fm;
  fm.offer("BTRFS_ORDERED_IO_DONE", 0);
  fm.offer("BTRFS_ORDERED_COMPLETE", 1);
  fm.offer("BTRFS_ORDERED_NOCOW", 2);
  fm.offer("BTRFS_ORDERED_DIRECT", 5);
  fm.offer("BTRFS_ORDERED_IOERR", 4);
  fm.offer("BTRFS_ORDERED_NOT_A_FLAG", 9);  // unknown names are ignored
  fm.offer("SOMETHING_ELSE", 3);
  EXPECT_EQ(fm.ordered.map((1u << 0) | (1u << 5)), oef::IO_DONE | oef::DIRECT);
  EXPECT_EQ(fm.ordered.map(1u << 4), oef::IOERR);
  EXPECT_EQ(fm.ordered.map((1u << 9) | (1u << 3)), 0u);
  EXPECT_TRUE(fm.ordered.loaded);
  EXPECT_FALSE(fm.eb.loaded);
}

TEST(Decode, OeFinishUptodateFromFlag) {
  auto r = raw(BDT_EV_OE_FINISH);
  r.u.oe.file_offset = 0;
  r.u.oe.len = 4096;
  Event e;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  EXPECT_FALSE(e.as<Ordered>()->uptodate);
  r.flags |= BDT_F_UPTODATE;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  EXPECT_TRUE(e.as<Ordered>()->uptodate);
  EXPECT_EQ(e.type, EventType::OeFinish);
}

TEST(Decode, ExtentBufferFlags) {
  auto r = raw(BDT_EV_EB_FIND);
  r.u.eb.kbflags = (1u << 3) | (1u << 2) | (1u << 1);  // STALE TREE_REF DIRTY (6.18)
  r.u.eb.eb_start = 30408704;
  r.u.eb.refs = 2;
  Event e;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  const auto* b = e.as<ExtentBuffer>();
  EXPECT_EQ(b->bflags, ebf::STALE | ebf::TREE_REF | ebf::DIRTY);
  EXPECT_EQ(b->refs, 2);
  EXPECT_EQ(b->eb_start, 30408704u);
}

TEST(Decode, IoctlAndReloc) {
  auto r = raw(BDT_EV_IOCTL_END);
  r.u.ioc.fd = 3;
  r.u.ioc.cmd = BDT_IOC_BALANCE_V2;
  r.u.ioc.ret = -11;
  Event e;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  EXPECT_EQ(e.as<Ioctl>()->cmd, IoctlCmd::BalanceV2);
  EXPECT_EQ(e.as<Ioctl>()->fd, 3);
  EXPECT_EQ(e.as<Ioctl>()->ret, -11);
  r.u.ioc.cmd = 200;  // out of range -> other
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  EXPECT_EQ(e.as<Ioctl>()->cmd, IoctlCmd::Other);

  auto q = raw(BDT_EV_RELOC_BEGIN);
  q.u.rel.block_group = 1103101952;
  ASSERT_TRUE(decode_raw(q, maps_618(), e));
  EXPECT_EQ(e.type, EventType::RelocBegin);
  EXPECT_EQ(e.as<Reloc>()->block_group, 1103101952u);
}

TEST(Decode, RejectsUnknownTypes) {
  Event e;
  EXPECT_FALSE(decode_raw(raw(BDT_EV_NONE), maps_618(), e));
  EXPECT_FALSE(decode_raw(raw(BDT_EV_MAX), maps_618(), e));
  EXPECT_FALSE(decode_raw(raw(999), maps_618(), e));
}

TEST(Decode, EveryTypeProducesMatchingPayload) {
  for (uint16_t t = 1; t < BDT_EV_MAX; ++t) {
    Event e;
    ASSERT_TRUE(decode_raw(raw(t), maps_618(), e)) << t;
    EXPECT_EQ(static_cast<uint16_t>(e.type), t);
    EXPECT_TRUE(payload_matches(e)) << to_string(e.type);
  }
}

TEST(Decode, CommAlwaysTerminated) {
  auto r = raw(BDT_EV_DIO_END);
  std::memset(r.comm, 'x', sizeof r.comm);
  Event e;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  EXPECT_EQ(e.comm_view().size(), 15u);
}

TEST(RawLayout, FixedSize) {
  // One record size for ring buffer, flight recorder and record files.
  static_assert(sizeof(bdt_raw_event) % 8 == 0);
  EXPECT_EQ(offsetof(bdt_raw_event, u) % 8, 0u);
  EXPECT_LE(sizeof(bdt_raw_event), 256u);
}

// ---- reorder window (src/live/reorder.h) ----------------------------------------
namespace {
void push(ReorderBuffer& rb, uint64_t ts) {
  Event& e = rb.slot();
  e.ts_ns = ts;
  e.body = DioEnd{};
  rb.commit();
}
}  // namespace

TEST(Reorder, HoldsForTheWindowThenReleasesInTsOrder) {
  ReorderBuffer rb(20'000'000);  // 20 ms
  // Arrival order from two CPUs: 1000, 1003, 1001, 1002 (ms)
  for (uint64_t ms : {1000, 1003, 1001, 1002}) push(rb, ms * 1'000'000);
  std::vector<uint64_t> out;
  auto cb = [&](const Event& e) { out.push_back(e.ts_ns / 1'000'000); };
  EXPECT_EQ(rb.release(1010 * 1'000'000ull, cb), 0u);  // all younger than 20 ms
  EXPECT_EQ(rb.release(1021'500'000ull, cb), 2u);      // 1000, 1001
  EXPECT_EQ(out, (std::vector<uint64_t>{1000, 1001}));
  push(rb, 1001'500'000);  // a late record that is still in the window's reach
  EXPECT_EQ(rb.release(1030 * 1'000'000ull, cb), 3u);
  EXPECT_EQ(out, (std::vector<uint64_t>{1000, 1001, 1001, 1002, 1003}));
  EXPECT_EQ(rb.size(), 0u);
}

TEST(Reorder, FarOutOfOrderAndEqualTimes) {
  ReorderBuffer rb(0);
  // 20 in order, then one older than all of them (past the short scan back),
  // then three with the same time: arrival order among equal times.
  for (uint64_t t = 100; t < 120; ++t) push(rb, t);
  push(rb, 50);
  for (uint32_t id : {1u, 2u, 3u}) {
    Event& e = rb.slot();
    e.ts_ns = 110;
    e.pid = id;
    e.body = DioEnd{};
    rb.commit();
  }
  std::vector<uint64_t> ts;
  std::vector<uint32_t> same;
  rb.drain([&](const Event& e) {
    ts.push_back(e.ts_ns);
    if (e.ts_ns == 110 && e.pid) same.push_back(e.pid);
  });
  EXPECT_TRUE(std::is_sorted(ts.begin(), ts.end()));
  EXPECT_EQ(ts.size(), 24u);
  EXPECT_EQ(ts.front(), 50u);
  EXPECT_EQ(same, (std::vector<uint32_t>{1, 2, 3}));
}

TEST(Reorder, DrainReleasesEverything) {
  ReorderBuffer rb(20'000'000);
  for (uint64_t t : {5u, 3u, 4u}) push(rb, t);
  std::vector<uint64_t> out;
  EXPECT_EQ(rb.drain([&](const Event& e) { out.push_back(e.ts_ns); }), 3u);
  EXPECT_EQ(out, (std::vector<uint64_t>{3, 4, 5}));
}

TEST(Reorder, DiscardedSlotIsNotDelivered) {
  ReorderBuffer rb(0);
  push(rb, 7);
  rb.slot().ts_ns = 1;
  rb.discard();
  std::vector<uint64_t> out;
  rb.drain([&](const Event& e) { out.push_back(e.ts_ns); });
  EXPECT_EQ(out, (std::vector<uint64_t>{7}));
}

TEST(Reorder, BoundedHolding) {
  ReorderBuffer rb(UINT64_MAX / 2, 4, 3);  // a huge window, at most 3 held
  for (uint64_t t : {10u, 20u, 30u, 40u, 50u}) push(rb, t);
  std::vector<uint64_t> out;
  rb.release(0, [&](const Event& e) { out.push_back(e.ts_ns); });
  EXPECT_EQ(out, (std::vector<uint64_t>{10, 20}));  // oldest released early
  EXPECT_EQ(rb.size(), 3u);
}

// Against a model (every key sorted by time, arrival order among equal times):
// records a few places, a few dozen and thousands of places out of order,
// released at random cut-offs and sometimes past the holding bound, so keys are
// inserted near both ends of the held ones and the ring wraps and grows.
TEST(Reorder, SameOrderAsASortOfEverything) {
  std::mt19937_64 rng(12);
  for (const uint64_t spread : {3ull, 40ull, 5000ull}) {
    ReorderBuffer rb(1000, 4, 3000);
    std::vector<std::pair<uint64_t, uint32_t>> model;  // held: (ts, arrival)
    std::vector<std::pair<uint64_t, uint32_t>> got, want;
    auto keep = [&](const Event& e) { got.emplace_back(e.ts_ns, e.pid); };
    uint64_t now = 10'000;
    for (uint32_t n = 1; n <= 20'000; ++n) {
      now += rng() % 4;
      Event& e = rb.slot();
      e.ts_ns = now - rng() % spread;
      e.pid = n;
      e.body = DioEnd{};
      rb.commit();
      model.emplace_back(e.ts_ns, n);
      if (rng() % 16 == 0) {
        const uint64_t cutoff = now - 1000;
        std::stable_sort(model.begin(), model.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        size_t k = 0;
        while (k < model.size() && (model[k].first <= cutoff || model.size() - k > 3000))
          want.push_back(model[k++]);
        model.erase(model.begin(), model.begin() + static_cast<ptrdiff_t>(k));
        ASSERT_EQ(rb.release(now, keep), k) << "spread " << spread << " record " << n;
        ASSERT_EQ(rb.size(), model.size());
      }
    }
    std::stable_sort(model.begin(), model.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    want.insert(want.end(), model.begin(), model.end());
    rb.drain(keep);
    ASSERT_EQ(got, want) << "spread " << spread;
  }
}

// The window hands out released slots again: what is delivered is exactly the
// decode of its record, whatever the slot held before (records of every type,
// a few held at a time, so each slot is reused many times over other types).
TEST(Reorder, ReusedSlotsDeliverTheirRecordsOnly) {
  std::mt19937_64 rng(5);
  std::vector<bdt_raw_event> records;
  for (int n = 0; n < 2000; ++n) {
    auto r = raw(static_cast<uint16_t>(1 + rng() % (BDT_EV_MAX - 1)));
    auto* b = reinterpret_cast<uint8_t*>(&r.u);
    for (size_t k = 0; k < sizeof r.u; ++k) b[k] = static_cast<uint8_t>(n % 3 ? 0 : rng());
    r.ts_ns = 1000 + 10 * static_cast<uint64_t>(n);
    r.flags = n % 2 ? static_cast<uint32_t>(rng()) : 0;
    r.phase = static_cast<uint8_t>(rng() % 3);
    r.stack_id = n % 5 ? 0 : static_cast<uint32_t>(n);
    r.comm[0] = n % 7 ? 'a' : 0;
    records.push_back(r);
  }
  ReorderBuffer rb(25, 4);  // 25 ns: two or three records held
  std::vector<Event> out;
  auto keep = [&](const Event& e) { out.push_back(e); };
  for (const auto& r : records) {
    ASSERT_TRUE(decode_raw(r, maps_618(), rb.slot()));
    rb.commit();
    rb.release(r.ts_ns, keep);
  }
  rb.drain(keep);
  ASSERT_EQ(out.size(), records.size());
  for (size_t i = 0; i < out.size(); ++i) {
    Event fresh{};
    ASSERT_TRUE(decode_raw(records[i], maps_618(), fresh));
    ASSERT_TRUE(testing_samples::same_event(fresh, out[i])) << "record " << i;
  }
}

// Function-hook records: the error-origin stack id (record ABI 2) reaches
// Event::stack_id; a reused event slot never keeps an old id.
TEST(Decode, StackIdOfErrorOrigin) {
  static_assert(sizeof(bdt_raw_event) % 8 == 0);
  static_assert(BDT_RAW_ABI >= 2);
  auto r = raw(BDT_EV_CSUM_ERROR);
  r.source = BDT_SRC_FENTRY;
  r.stack_id = 7;
  r.u.csum.offset = 8192;
  r.u.csum.len = 4096;
  r.u.csum.mirror = 1;
  Event e;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  EXPECT_EQ(e.stack_id, 7u);
  auto* c = e.as<CsumError>();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->offset, 8192u);
  EXPECT_EQ(c->len, 4096u);
  EXPECT_EQ(c->mirror, 1u);
  auto r2 = raw(BDT_EV_DIO_END);
  ASSERT_TRUE(decode_raw(r2, maps_618(), e));
  EXPECT_EQ(e.stack_id, 0u);
}

// get_extent from fentry: an enter half with the requested range, and an
// exit half carrying an ERR_PTR return as -errno.
TEST(Decode, GetExtentEnterAndErrPtrExit) {
  auto r = raw(BDT_EV_GET_EXTENT);
  r.phase = BDT_PHASE_ENTER;
  r.u.ext.start = 4096;
  r.u.ext.len = 8192;
  Event e;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  auto* g = e.as<GetExtent>();
  ASSERT_TRUE(g);
  EXPECT_EQ(g->phase, Phase::Enter);
  EXPECT_EQ(g->start, 4096u);
  EXPECT_EQ(g->len, 8192u);
  r.phase = BDT_PHASE_EXIT;
  r.flags |= BDT_F_ERR_PTR;
  r.u.ext.ret = -17;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  g = e.as<GetExtent>();
  EXPECT_EQ(g->phase, Phase::Exit);
  EXPECT_EQ(g->ret, -17);
}

// eb_free enter/exit and eb_find from the function hooks: the kernel address is
// the buffer's identity, flags by name.
TEST(Decode, ExtentBufferFreeEnterExit) {
  auto r = raw(BDT_EV_EB_FREE);
  r.flags = 0;  // extent buffers have no inode
  r.phase = BDT_PHASE_EXIT;
  r.u.eb.eb_start = 30408704;
  r.u.eb.eb_ptr = 0xffff888012345000ull;
  r.u.eb.refs = 2;
  r.u.eb.kbflags = 1ull << 3;  // STALE in the 6.18 numbering
  Event e;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  auto* b = e.as<ExtentBuffer>();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->phase, Phase::Exit);
  EXPECT_EQ(b->eb_id, 0xffff888012345000ull);
  EXPECT_EQ(b->refs, 2);
  EXPECT_EQ(b->bflags, ebf::STALE);
  EXPECT_EQ(e.dev, 0u);
  EXPECT_EQ(e.ino, 0u);
}

// dio_fallback: an O_DIRECT write that never reached iomap_dio_rw.
TEST(Decode, DioFallback) {
  auto r = raw(BDT_EV_DIO_FALLBACK);
  r.flags |= BDT_F_HAS_DEV | BDT_F_UNALIGNED | BDT_F_REQUESTED;
  r.ino = 260;
  r.u.fb.pos = 4096;
  r.u.fb.count = 65536;
  r.u.fb.fd = 5;
  r.u.fb.via = BDT_FB_LIBAIO;
  Event e;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  EXPECT_EQ(e.type, EventType::DioFallback);
  auto* b = e.as<DioFallback>();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->pos, 4096u);
  EXPECT_EQ(b->count, 65536u);
  EXPECT_EQ(b->fd, 5);
  EXPECT_EQ(b->via, FallbackVia::Libaio);
  EXPECT_FALSE(b->nodatasum);
  EXPECT_TRUE(b->unaligned);
  EXPECT_TRUE(b->requested);
  r.u.fb.via = 99;  // a way of observing this decoder does not know
  r.flags |= BDT_F_NODATASUM;
  ASSERT_TRUE(decode_raw(r, maps_618(), e));
  EXPECT_EQ(e.as<DioFallback>()->via, FallbackVia::Call);
  EXPECT_TRUE(e.as<DioFallback>()->nodatasum);
}
