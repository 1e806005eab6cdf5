// The detector timelines: each seed's interleaving (symptom on an affected
// kernel, hazard only as a fixed kernel handles it) and close benign ones.
// Expectations are "detector level kind" per finding.
#include <algorithm>

#include "detector_timeline.h"

namespace bdt::test {

namespace {
constexpr uint32_t DIRECT = oef::DIRECT, IOERR = oef::IOERR, REGULAR = oef::REGULAR,
                   NOCOW = oef::NOCOW;

DioBegin rd(uint64_t pos, uint64_t count) { return DioBegin{.pos = pos, .count = count}; }
DioBegin wr(uint64_t pos, uint64_t count, uint64_t done_before = 0) {
  return DioBegin{.pos = pos, .count = count, .done_before = done_before, .write = true,
                  .buf_addr = 0x7f3a00000000};
}
DioEnd end(uint64_t pos, int64_t ret, int32_t error = 0) {
  return DioEnd{.pos = pos, .ret = ret, .error = error};
}
Ordered oe(uint64_t off, uint64_t len, uint32_t flags, bool uptodate = true) {
  return Ordered{.file_offset = off, .len = len, .flags = flags, .uptodate = uptodate};
}
GetExtent ge_exit(uint64_t start, uint64_t len, uint64_t em_start, uint64_t em_len, int64_t ret) {
  return GetExtent{.phase = Phase::Exit, .start = start, .len = len, .em_start = em_start,
                   .em_len = em_len, .block_start = em_start + 0x1500000, .ret = ret};
}
ExtentBuffer eb(Phase ph, uint64_t start, int32_t refs, uint32_t bflags) {
  return ExtentBuffer{.phase = ph, .eb_start = start, .refs = refs, .bflags = bflags,
                      .eb_id = 0xffff8881234a8000};
}
Ioctl ioc(IoctlCmd cmd, int64_t ret = 0, int32_t fd = 3) {
  return Ioctl{.fd = fd, .cmd = cmd, .ret = ret};
}

// ---- the 2016 extent-map merge race: em-merge-race -------------------------------------------------
// Extents on disk: [0,8192) and [8192,16384), adjacent; the map cache holds only
// {8192, 8192}. T1 reads [0,4096), T2 reads [4096,8192) (O_DIRECT, nocow image).
const Who T1{3100, 3101, "qemu-system-x86"}, T2{3100, 3102, "qemu-system-x86"};
constexpr uint64_t kImg = 257;

void em_race(TL& t, bool fixed) {
  t.at(0).ev(T1, EventType::DioBegin, rd(0, 4096), kImg);
  t.at(10'000).ev(T2, EventType::DioBegin, rd(4096, 4096), kImg);
  // T2 misses the cache, reads [0,8192) from the b-tree and inserts it; it is
  // merged with {8192,8192} into {0,16384}.
  t.at(30'000).ev(T2, EventType::EmAdd, EmAdd{.start = 0, .len = 8192, .block_start = 0x1500000}, kImg);
  t.at(31'000).ev(T2, EventType::GetExtent, ge_exit(4096, 4096, 0, 16384, 0), kImg);
  // T1's insertion of {0,8192} hits EEXIST; the existing map encompasses it.
  // The tracepoint has no inode: ino 0, attributed through T1's request.
  t.at(40'000).ev(T1, EventType::EmExist,
                  EmExist{.e_start = 0, .e_len = 16384, .map_start = 0, .map_len = 8192,
                          .start = 0, .len = 4096},
                  0, 0);
  t.at(41'000).ev(T1, EventType::GetExtent, ge_exit(0, 4096, 0, fixed ? 16384 : 0, fixed ? 0 : -17),
                  kImg);
  t.at(90'000).ev(T2, EventType::DioEnd, end(8192, 4096), kImg);
  t.at(95'000).ev(T1, EventType::DioEnd, fixed ? end(4096, 4096) : end(0, -17), kImg);
}

// ---- the 2015 stale extent buffer race: stale-eb-reuse ------------------------------------------------
const Who FREER{412, 412, "btrfs-transacti"}, FINDER{977, 977, "kworker/u8:2"};
constexpr uint64_t kEb = 30408704;
constexpr uint32_t STALE = ebf::STALE, TREE_REF = ebf::TREE_REF, UPTODATE = ebf::UPTODATE,
                   DIRTY = ebf::DIRTY;

// ---- the 2023 DIO short-write bug: dio-short-write -----------------------------------------------
const Who W{4200, 4200, "dio-buf-fault"}, KW{88, 88, "kworker/u8:3"}, IRQ{0, 0, "swapper/1"};
constexpr uint64_t kSrc = 300, kDst = 301, kMiB = 1048576, kPart = 65536;

void partial_write(TL& t, bool fixed) {
  auto b = wr(0, kMiB);
  b.buf_file_ino = kSrc;  // mmap of another file, only partly in memory
  b.buf_file_dev = kDev;
  b.partial = true;
  t.at(0).ev(W, EventType::DioBegin, b, kDst);
  t.at(100'000).ev(W, EventType::OeAdd, oe(0, kMiB, DIRECT | NOCOW), kDst);
  // the bio is cut at the first non-resident page
  if (fixed) t.at(150'000).ev(W, EventType::OeSplit, oe(0, kMiB, DIRECT | NOCOW), kDst);
  // btrfs_dio_iomap_end marks the unsubmitted rest finished, not uptodate
  t.at(200'000).ev(W, EventType::OeFinish, oe(kPart, kMiB - kPart, DIRECT | NOCOW, false), kDst);
  t.at(400'000).ev(IRQ, EventType::OeFinish, oe(0, kPart, DIRECT | NOCOW, true), kDst);
  t.at(410'000).ev(W, EventType::DioEnd, end(kPart, kPart), kDst);
  if (fixed) {
    t.at(500'000).ev(KW, EventType::OeRemove, oe(0, kPart, DIRECT | NOCOW), kDst);
    t.at(510'000).ev(KW, EventType::OeRemove, oe(kPart, kMiB - kPart, DIRECT | NOCOW | IOERR),
                     kDst);
  } else {
    // finish_ordered_io sees IOERR and just drops the whole ordered extent
    t.at(500'000).ev(KW, EventType::OeRemove, oe(0, kMiB, DIRECT | NOCOW | IOERR), kDst);
  }
  // fault_in_iov_iter_readable, then the write continues
  auto c = wr(kPart, kMiB - kPart, kPart);
  c.buf_file_ino = kSrc;
  c.buf_file_dev = kDev;
  c.buf_file_off = kPart;
  c.partial = true;
  t.at(2'000'000).ev(W, EventType::DioBegin, c, kDst);
  t.at(2'100'000).ev(W, EventType::OeAdd, oe(kPart, kMiB - kPart, DIRECT | NOCOW), kDst);
  t.at(3'000'000).ev(IRQ, EventType::OeFinish, oe(kPart, kMiB - kPart, DIRECT | NOCOW), kDst);
  t.at(3'010'000).ev(W, EventType::DioEnd, end(kMiB, kMiB), kDst);
  t.at(3'100'000).ev(KW, EventType::OeRemove, oe(kPart, kMiB - kPart, DIRECT | NOCOW), kDst);
}

// ---- the 2019 send/relocation race: send-vs-relocation --------------------------------------------
const Who SEND{5100, 5100, "btrfs"}, BAL{5200, 5200, "btrfs"}, CLEANER{301, 301, "btrfs-cleaner"};

// ---- the 2011 unstable-pages checksum bug: dio-unstable-pages --------------------------------------------
const Who REPRO{6100, 6100, "dio-unstable"}, CSUMW{90, 90, "kworker/u8:5"};
constexpr uint64_t kTest = 400;
DioBegin shared_wr(uint64_t pos, uint64_t count) {
  auto b = wr(pos, count);
  b.buf_shared = true;
  b.buf_writable = true;
  b.buf_addr = 0x7f1200000000;
  return b;
}

}  // namespace

std::vector<TL> all_cases() {
  std::vector<TL> v;
  // ===================== em-merge-race =====================
  {
    TL t("em_merge_race_4.9", false, "4.9.0");
    em_race(t, false);
    t.expect("em-merge-race hazard encompassing-em-merge");
    t.expect("em-merge-race symptom eexist-get-extent");
    t.expect("dio-unexpected-errno symptom unexpected-errno");
    v.push_back(t);
  }
  {
    TL t("em_merge_race_fixed_6.1", false, "6.1.0");
    em_race(t, true);
    t.expect("em-merge-race hazard encompassing-em-harmless");
    v.push_back(t);
  }
  {  // as measured on 6.18 with dio-interleaved (live trace, tracepoint backend):
     // T2 inserts the merged map and finishes its whole read 8 us before T1,
     // which started first, reaches btrfs_handle_em_exist
    TL t("em_merge_race_measured_6.18", false, "6.18.44");
    const Who A{18313, 18335, "dio-interleaved"}, B{18313, 18313, "dio-interleaved"};
    t.at(116'135).ev(A, EventType::DioBegin, rd(5005312, 4096), 261);
    t.at(166'941).ev(B, EventType::DioBegin, rd(5009408, 4096), 261);
    t.at(462'791).ev(B, EventType::GetExtent, ge_exit(5005312, 3383296, 5005312, 3383296, 0), 261);
    t.at(466'096).ev(B, EventType::DioEnd, end(5013504, 4096), 261);
    t.at(474'699).ev(A, EventType::EmExist,
                     EmExist{.e_start = 5005312, .e_len = 3383296, .map_start = 5005312,
                             .map_len = 8192, .start = 5005312, .len = 4096},
                     261);
    t.at(475'540).ev(A, EventType::GetExtent, ge_exit(5005312, 3383296, 5005312, 3383296, 0), 261);
    t.at(477'924).ev(A, EventType::DioEnd, end(5009408, 4096), 261);
    t.expect("em-merge-race hazard encompassing-em-harmless");
    v.push_back(t);
  }
  {  // EEXIST seen only at the DIO level (no get_extent hook), unknown kernel
    TL t("em_merge_race_dio_eexist_unknown_kernel", false, "");
    t.at(0).ev(T1, EventType::DioBegin, wr(0, 4096), kImg);
    t.at(50'000).ev(T1, EventType::DioEnd, end(0, -17), kImg);
    t.expect("em-merge-race symptom eexist-dio");
    t.expect("dio-unexpected-errno symptom unexpected-errno");
    v.push_back(t);
  }
  {
    TL t("em_sequential_reads", true, "4.9.0");
    t.at(0).ev(T1, EventType::DioBegin, rd(0, 4096), kImg);
    t.at(1'000).ev(T1, EventType::EmAdd, EmAdd{.start = 0, .len = 8192}, kImg);
    t.at(2'000).ev(T1, EventType::GetExtent, ge_exit(0, 4096, 0, 16384, 0), kImg);
    t.at(3'000).ev(T1, EventType::DioEnd, end(4096, 4096), kImg);
    t.at(10'000).ev(T2, EventType::DioBegin, rd(4096, 4096), kImg);
    // an em_exist with nobody else in flight (e.g. readahead raced earlier)
    t.at(11'000).ev(T2, EventType::EmExist,
                    EmExist{.e_start = 0, .e_len = 16384, .map_start = 0, .map_len = 8192,
                            .start = 4096, .len = 4096},
                    0, 0);
    t.at(12'000).ev(T2, EventType::GetExtent, ge_exit(4096, 4096, 0, 16384, 0), kImg);
    t.at(13'000).ev(T2, EventType::DioEnd, end(8192, 4096), kImg);
    v.push_back(t);
  }
  {
    TL t("em_other_inode_other_fs", true, "4.9.0");
    t.at(0).ev(T2, EventType::DioBegin, rd(4096, 4096), kImg + 1);              // other inode
    t.at(1'000).ev(Who{3300, 3301, "qemu-b"}, EventType::DioBegin, rd(0, 4096), kImg, kDev,
                   fs_b());                                                     // other fs
    t.at(2'000).ev(T1, EventType::DioBegin, rd(0, 4096), kImg);
    t.at(3'000).ev(T1, EventType::EmExist,
                   EmExist{.e_start = 0, .e_len = 16384, .map_start = 0, .map_len = 8192,
                           .start = 0, .len = 4096},
                   0, 0);
    t.at(4'000).ev(T1, EventType::GetExtent, ge_exit(0, 4096, 0, 16384, 0), kImg);
    t.at(5'000).ev(T1, EventType::DioEnd, end(4096, 4096), kImg);
    t.at(6'000).ev(T2, EventType::DioEnd, end(8192, 4096), kImg + 1);
    t.at(7'000).ev(Who{3300, 3301, "qemu-b"}, EventType::DioEnd, end(4096, 4096), kImg, kDev,
                   fs_b());
    v.push_back(t);
  }
  {  // em_exist where the existing map only overlaps (no encompassing): the
     // ordinary duplicate case, even with a concurrent request
    TL t("em_exist_not_encompassing", true, "6.1.0");
    t.at(0).ev(T1, EventType::DioBegin, rd(0, 4096), kImg);
    t.at(1'000).ev(T2, EventType::DioBegin, rd(4096, 4096), kImg);
    t.at(2'000).ev(T1, EventType::EmExist,
                   EmExist{.e_start = 0, .e_len = 8192, .map_start = 0, .map_len = 16384,
                           .start = 0, .len = 4096},
                   0, 0);
    t.at(3'000).ev(T1, EventType::DioEnd, end(4096, 4096), kImg);
    t.at(4'000).ev(T2, EventType::DioEnd, end(8192, 4096), kImg);
    v.push_back(t);
  }
  {  // the same events in the other order: T2 finished before T1's em_exist
    TL t("em_other_order", true, "4.9.0");
    t.at(0).ev(T2, EventType::DioBegin, rd(4096, 4096), kImg);
    t.at(1'000).ev(T2, EventType::EmAdd, EmAdd{.start = 0, .len = 8192}, kImg);
    t.at(2'000).ev(T2, EventType::GetExtent, ge_exit(4096, 4096, 0, 16384, 0), kImg);
    t.at(3'000).ev(T2, EventType::DioEnd, end(8192, 4096), kImg);
    t.at(4'000).ev(T1, EventType::DioBegin, rd(0, 4096), kImg);
    t.at(5'000).ev(T1, EventType::GetExtent, ge_exit(0, 4096, 0, 16384, 0), kImg);
    t.at(6'000).ev(T1, EventType::DioEnd, end(4096, 4096), kImg);
    v.push_back(t);
  }

  {  // completions in other contexts: T1's io_uring read completes in interrupt
     // context while T2 runs (so the event carries T2's tid); it must end T1's
     // request, not T2's. T2's later em_exist then has nobody in flight beside it.
    TL t("em_aio_completion_in_other_context", true, "6.1.0");
    auto a = rd(0, 4096);
    a.aio = true;
    t.at(0).ev(T1, EventType::DioBegin, a, kImg);
    t.at(1'000).ev(T2, EventType::DioBegin, rd(4096, 4096), kImg);
    t.at(2'000).ev(T2, EventType::DioEnd, end(4096, 4096), kImg);  // T1's completion
    t.at(5'000).ev(T2, EventType::DioEnd, end(8192, 4096), kImg);  // T2's own
    // T2's next request starts after T1's ended: nobody else did I/O during it
    t.at(6'000).ev(T2, EventType::DioBegin, rd(12288, 4096), kImg);
    t.at(7'000).ev(T2, EventType::EmExist,
                   EmExist{.e_start = 8192, .e_len = 16384, .map_start = 12288, .map_len = 4096,
                           .start = 12288, .len = 4096},
                   kImg);  // a function-hook source knows the inode
    t.at(8'000).ev(T2, EventType::GetExtent, ge_exit(12288, 4096, 8192, 16384, 0), kImg);
    t.at(9'000).ev(T2, EventType::DioEnd, end(16384, 4096), kImg);
    v.push_back(t);
  }
  {  // an io_uring write completed by a worker thread, its ordered extent by another
    TL t("dio_aio_write_completed_by_worker", true, "6.2.0");
    auto a = wr(0, kPart);
    a.aio = true;
    t.at(0).ev(W, EventType::DioBegin, a, kDst);
    t.at(10'000).ev(W, EventType::OeAdd, oe(0, kPart, DIRECT | NOCOW), kDst);
    t.at(20'000).ev(Who{4200, 4210, "iou-wrk-4200"}, EventType::DioBegin, wr(kPart, kPart), kDst);
    t.at(200'000).ev(IRQ, EventType::OeFinish, oe(0, kPart, DIRECT | NOCOW), kDst);
    t.at(210'000).ev(KW, EventType::DioEnd, end(kPart, kPart), kDst);
    t.at(220'000).ev(Who{4200, 4210, "iou-wrk-4200"}, EventType::OeAdd, oe(kPart, kPart, DIRECT | NOCOW), kDst);
    t.at(300'000).ev(KW, EventType::OeRemove, oe(0, kPart, DIRECT | NOCOW), kDst);
    t.at(400'000).ev(IRQ, EventType::OeFinish, oe(kPart, kPart, DIRECT | NOCOW), kDst);
    t.at(410'000).ev(Who{4200, 4210, "iou-wrk-4200"}, EventType::DioEnd, end(2 * kPart, kPart), kDst);
    t.at(500'000).ev(KW, EventType::OeRemove, oe(kPart, kPart, DIRECT | NOCOW), kDst);
    v.push_back(t);
  }

  // ===================== stale-eb-reuse =====================
  {
    TL t("stale_eb_reuse_4.0", false, "4.0.0");
    t.at(0).ev(FREER, EventType::EbFree, eb(Phase::Enter, kEb, 2, STALE | TREE_REF | UPTODATE), 0, 0);
    t.at(1'000).ev(FINDER, EventType::EbFind, eb(Phase::None, kEb, 3, STALE | TREE_REF | UPTODATE), 0, 0);
    // the finder clears STALE and dirties the buffer, drops its ref; the freeing
    // task drops two refs and releases a dirty buffer
    t.at(3'000).ev(FREER, EventType::EbRelease, eb(Phase::None, kEb, 0, DIRTY | TREE_REF | UPTODATE), 0, 0);
    t.at(4'000).ev(FREER, EventType::EbFree, eb(Phase::Exit, kEb, 0, DIRTY | UPTODATE), 0, 0);
    t.expect("stale-eb-reuse hazard stale-reref");
    t.expect("stale-eb-reuse symptom release-under-io");
    v.push_back(t);
  }
  {
    TL t("stale_eb_reuse_fixed_4.1", false, "4.1.0");
    t.at(0).ev(FREER, EventType::EbFree, eb(Phase::Enter, kEb, 2, STALE | TREE_REF | UPTODATE), 0, 0);
    t.at(1'000).ev(FINDER, EventType::EbFind, eb(Phase::None, kEb, 3, STALE | TREE_REF | UPTODATE), 0, 0);
    // find_extent_buffer waited on refs_lock: free saw refs 3, dropped one
    t.at(2'000).ev(FREER, EventType::EbFree, eb(Phase::Exit, kEb, 2, TREE_REF | UPTODATE), 0, 0);
    t.expect("stale-eb-reuse hazard stale-reref");
    v.push_back(t);
  }
  {
    TL t("stale_eb_benign", true, "4.0.0");
    // find after the free finished; release of a clean buffer; other fs; other buffer
    t.at(0).ev(FREER, EventType::EbFree, eb(Phase::Enter, kEb, 1, STALE | UPTODATE), 0, 0);
    t.at(500).ev(FINDER, EventType::EbFind, eb(Phase::None, kEb, 2, STALE | UPTODATE), 0, 0, fs_b());
    t.at(600).ev(FINDER, EventType::EbFind, eb(Phase::None, kEb + 16384, 2, STALE | UPTODATE), 0, 0);
    t.at(1'000).ev(FREER, EventType::EbRelease, eb(Phase::None, kEb, 0, STALE | UPTODATE), 0, 0);
    t.at(2'000).ev(FREER, EventType::EbFree, eb(Phase::Exit, kEb, 0, STALE | UPTODATE), 0, 0);
    t.at(3'000).ev(FINDER, EventType::EbFind, eb(Phase::None, kEb, 1, UPTODATE), 0, 0);
    v.push_back(t);
  }

  // ===================== dio-short-write =====================
  {
    TL t("dio_short_write_6.2", false, "6.2.0");
    partial_write(t, false);
    t.expect("dio-short-write hazard continued-write");
    t.expect("dio-short-write symptom acknowledged-hole");
    t.expect("dio-acked-unbacked symptom acked-unbacked");
    v.push_back(t);
  }
  {
    TL t("dio_short_write_fixed_6.6", false, "6.6.0");
    partial_write(t, true);
    t.expect("dio-short-write hazard continued-write");
    v.push_back(t);
  }
  {  // the 2023 DIO short-write bug, second part: buffer is an mmap of the same file, overlapping
    TL t("dio_self_mmap_deadlock_6.2", false, "6.2.0");
    auto b = wr(4 * kMiB / 4, 2 * kMiB);  // write [1M, 3M) of a 4M file
    b.buf_file_ino = kDst;
    b.buf_file_dev = kDev;
    b.buf_file_off = 0;  // buffer maps [0, 2M) of the same file
    b.buf_shared = true;
    t.at(0).ev(W, EventType::DioBegin, b, kDst);
    t.at(100'000).ev(W, EventType::OeAdd, oe(kMiB, 2 * kMiB, DIRECT | REGULAR), kDst);
    // nothing more from this writer; the clock moves on with other activity
    t.at(31 * kSec).ev(Who{4300, 4300, "cat"}, EventType::DioBegin, rd(0, 4096), 999);
    t.at(31 * kSec + 1000).ev(Who{4300, 4300, "cat"}, EventType::DioEnd, end(4096, 4096), 999);
    t.expect("dio-short-write hazard self-mmap-write");
    t.expect("dio-short-write symptom self-mmap-stall");
    t.expect("dio-stuck symptom stuck-request");
    v.push_back(t);
  }
  {
    TL t("dio_self_mmap_fixed_6.6", false, "6.6.0");
    auto b = wr(kMiB, 2 * kMiB);
    b.buf_file_ino = kDst;
    b.buf_file_dev = kDev;
    b.buf_file_off = 0;
    b.buf_shared = true;
    t.at(0).ev(W, EventType::DioBegin, b, kDst);
    t.at(100'000).ev(W, EventType::OeAdd, oe(kMiB, 2 * kMiB, DIRECT | REGULAR), kDst);
    t.at(900'000).ev(IRQ, EventType::OeFinish, oe(kMiB, 2 * kMiB, DIRECT | REGULAR), kDst);
    t.at(910'000).ev(W, EventType::DioEnd, end(3 * kMiB, 2 * kMiB), kDst);
    t.at(990'000).ev(KW, EventType::OeRemove, oe(kMiB, 2 * kMiB, DIRECT | REGULAR), kDst);
    t.at(31 * kSec).ev(Who{4300, 4300, "cat"}, EventType::DioBegin, rd(0, 4096), 999);
    t.expect("dio-short-write hazard self-mmap-write");
    v.push_back(t);
  }
  {  // the trace ends after the kernel marked the first ordered extent IOERR
     // (the whole extent: 5.16-6.3) but before it removed it: judged at the end
    TL t("dio_short_write_trace_ended_6.2", false, "6.2.0");
    auto b = wr(0, kMiB);
    b.partial = true;
    t.at(0).ev(W, EventType::DioBegin, b, kDst);
    t.at(100'000).ev(W, EventType::OeAdd, oe(0, kMiB, DIRECT | NOCOW), kDst);
    t.at(200'000).ev(W, EventType::OeFinish, oe(kPart, kMiB - kPart, DIRECT | NOCOW, false), kDst);
    t.at(410'000).ev(W, EventType::DioEnd, end(kPart, kPart), kDst);
    t.at(450'000).ev(KW, EventType::OeMarkFinished, oe(0, kMiB, DIRECT | NOCOW | IOERR), kDst);
    t.expect("dio-short-write symptom acknowledged-hole");
    t.expect("dio-acked-unbacked symptom acked-unbacked");
    v.push_back(t);
  }
  {  // the trace ends while the continuation's ordered extent is open: the
     // failed rest of the first one may still be written by it, so nothing
     // is judged a hole (only the continuation hazard)
    TL t("dio_short_write_trace_ended_pending_6.6", false, "6.6.0");
    auto b = wr(0, kMiB);
    b.partial = true;
    t.at(0).ev(W, EventType::DioBegin, b, kDst);
    t.at(100'000).ev(W, EventType::OeAdd, oe(0, kMiB, DIRECT | NOCOW), kDst);
    t.at(150'000).ev(W, EventType::OeSplit, oe(0, kMiB, DIRECT | NOCOW), kDst);
    t.at(200'000).ev(W, EventType::OeFinish, oe(kPart, kMiB - kPart, DIRECT | NOCOW, false), kDst);
    t.at(410'000).ev(W, EventType::DioEnd, end(kPart, kPart), kDst);
    auto c = wr(kPart, kMiB - kPart, kPart);
    c.partial = true;
    t.at(2'000'000).ev(W, EventType::DioBegin, c, kDst);
    t.at(2'100'000).ev(W, EventType::OeAdd, oe(kPart, kMiB - kPart, DIRECT | NOCOW), kDst);
    t.at(3'010'000).ev(W, EventType::DioEnd, end(kMiB, kMiB), kDst);
    t.expect("dio-short-write hazard continued-write");
    v.push_back(t);
  }
  {  // a large write split per bio on a current kernel is not a partial write
    TL t("dio_large_write_split_per_bio", true, "6.6.0");
    t.at(0).ev(W, EventType::DioBegin, wr(0, 8 * kMiB), kDst);
    t.at(10'000).ev(W, EventType::OeAdd, oe(0, 8 * kMiB, DIRECT | NOCOW), kDst);
    for (int i = 0; i < 3; ++i)
      t.at(20'000 + i * 1000).ev(W, EventType::OeSplit, oe(i * 2 * kMiB, (8 - 2 * i) * kMiB, DIRECT | NOCOW), kDst);
    for (int i = 0; i < 4; ++i)
      t.at(500'000 + i * 1000).ev(IRQ, EventType::OeFinish, oe(i * 2 * kMiB, 2 * kMiB, DIRECT | NOCOW), kDst);
    t.at(600'000).ev(W, EventType::DioEnd, end(8 * kMiB, 8 * kMiB), kDst);
    // completions on worker threads, in any order
    int k = 0;
    for (int i : {2, 0, 3, 1})
      t.at(700'000 + (k++) * 1000).ev(Who{88u + i, 88u + i, "kworker/u8:1"}, EventType::OeRemove,
                                  oe(i * 2 * kMiB, 2 * kMiB, DIRECT | NOCOW), kDst);
    v.push_back(t);
  }
  {  // a device error: nothing acknowledged, the IOERR extent is not a hole
    TL t("dio_write_eio_not_acknowledged", true, "6.2.0");
    t.at(0).ev(W, EventType::DioBegin, wr(0, kPart), kDst);
    t.at(10'000).ev(W, EventType::OeAdd, oe(0, kPart, DIRECT | REGULAR), kDst);
    t.at(200'000).ev(IRQ, EventType::OeFinish, oe(0, kPart, DIRECT | REGULAR, false), kDst);
    t.at(210'000).ev(W, EventType::DioEnd, end(0, -5, -5), kDst);
    t.at(300'000).ev(KW, EventType::OeRemove, oe(0, kPart, DIRECT | REGULAR | IOERR), kDst);
    v.push_back(t);
  }
  {  // buffer is an mmap of the same file but of another range; other inode's
     // failure does not touch this write
    TL t("dio_mmap_same_file_other_range", true, "6.2.0");
    auto b = wr(0, kPart);
    b.buf_file_ino = kDst;
    b.buf_file_dev = kDev;
    b.buf_file_off = 4 * kMiB;
    t.at(0).ev(W, EventType::DioBegin, b, kDst);
    t.at(10'000).ev(W, EventType::OeAdd, oe(0, kPart, DIRECT | REGULAR), kDst);
    t.at(20'000).ev(KW, EventType::OeRemove, oe(0, kPart, DIRECT | REGULAR | IOERR), kDst + 1);
    t.at(200'000).ev(IRQ, EventType::OeFinish, oe(0, kPart, DIRECT | REGULAR), kDst);
    t.at(210'000).ev(W, EventType::DioEnd, end(kPart, kPart), kDst);
    t.at(300'000).ev(KW, EventType::OeRemove, oe(0, kPart, DIRECT | REGULAR), kDst, 0);  // dev unknown
    v.push_back(t);
  }

  // ===================== send-vs-relocation =====================
  {
    TL t("send_vs_relocation_5.0", false, "5.0.0");
    t.at(0).ev(BAL, EventType::IoctlBegin, ioc(IoctlCmd::BalanceV2), 0, kDev);
    t.at(100 * kMs).ev(BAL, EventType::RelocBegin, Reloc{.block_group = 1103101952}, 0, 0);
    t.at(2 * kSec).ev(SEND, EventType::IoctlBegin, ioc(IoctlCmd::Send, 0, 5), 0, kSnapDev);
    t.at(9 * kSec).ev(BAL, EventType::RelocEnd, Reloc{.block_group = 1103101952}, 0, 0);
    t.at(9 * kSec + 1000).ev(BAL, EventType::RelocBegin, Reloc{.block_group = 1371537408}, 0, 0);
    // parent transid verify failed -> send returns EIO
    t.at(12 * kSec).ev(SEND, EventType::IoctlEnd, ioc(IoctlCmd::Send, -5, 5), 0, kSnapDev);
    t.at(15 * kSec).ev(BAL, EventType::RelocEnd, Reloc{.block_group = 1371537408}, 0, 0);
    t.at(15 * kSec + 1000).ev(BAL, EventType::IoctlEnd, ioc(IoctlCmd::BalanceV2), 0, kDev);
    t.expect("send-vs-relocation hazard overlap");
    t.expect("send-vs-relocation symptom send-failed");
    v.push_back(t);
  }
  {  // 5.3-5.16: the kernel refuses send while balance runs
    TL t("send_refused_during_balance_5.10", false, "5.10.0");
    t.at(0).ev(BAL, EventType::IoctlBegin, ioc(IoctlCmd::BalanceV2), 0, kDev);
    t.at(2 * kSec).ev(SEND, EventType::IoctlBegin, ioc(IoctlCmd::Send, 0, 5), 0, kSnapDev);
    t.at(2 * kSec + 40'000).ev(SEND, EventType::IoctlEnd, ioc(IoctlCmd::Send, -11, 5), 0, kSnapDev);
    t.at(15 * kSec).ev(BAL, EventType::IoctlEnd, ioc(IoctlCmd::BalanceV2), 0, kDev);
    t.expect("send-vs-relocation hazard refused");
    v.push_back(t);
  }
  {  // and balance while send runs
    TL t("balance_refused_during_send_5.10", false, "5.10.0");
    t.at(0).ev(SEND, EventType::IoctlBegin, ioc(IoctlCmd::Send, 0, 5), 0, kSnapDev);
    t.at(1 * kSec).ev(BAL, EventType::IoctlBegin, ioc(IoctlCmd::BalanceV2), 0, kDev);
    t.at(1 * kSec + 30'000).ev(BAL, EventType::IoctlEnd, ioc(IoctlCmd::BalanceV2, -11), 0, kDev);
    t.at(5 * kSec).ev(SEND, EventType::IoctlEnd, ioc(IoctlCmd::Send, 0, 5), 0, kSnapDev);
    t.expect("send-vs-relocation hazard refused");
    v.push_back(t);
  }
  {  // >= 5.17: concurrent by design, both succeed -> info hazard
    TL t("send_vs_relocation_fixed_6.1", false, "6.1.0");
    t.at(0).ev(BAL, EventType::IoctlBegin, ioc(IoctlCmd::BalanceV2), 0, kDev);
    t.at(2 * kSec).ev(SEND, EventType::IoctlBegin, ioc(IoctlCmd::Send, 0, 5), 0, kSnapDev);
    t.at(3 * kSec).ev(CLEANER, EventType::RelocBegin, Reloc{.block_group = 22020096}, 0, 0);
    t.at(12 * kSec).ev(SEND, EventType::IoctlEnd, ioc(IoctlCmd::Send, 0, 5), 0, kSnapDev);
    t.at(15 * kSec).ev(BAL, EventType::IoctlEnd, ioc(IoctlCmd::BalanceV2), 0, kDev);
    t.expect("send-vs-relocation hazard overlap");
    v.push_back(t);
  }
  {
    TL t("send_balance_other_fs_and_after_window", true, "5.0.0");
    // balance on fs B while send on fs A
    t.at(0).ev(BAL, EventType::IoctlBegin, ioc(IoctlCmd::BalanceV2), 0, kDev, fs_b());
    t.at(1 * kSec).ev(SEND, EventType::IoctlBegin, ioc(IoctlCmd::Send, 0, 5), 0, kSnapDev);
    t.at(3 * kSec).ev(SEND, EventType::IoctlEnd, ioc(IoctlCmd::Send, -5, 5), 0, kSnapDev);
    t.at(4 * kSec).ev(BAL, EventType::IoctlEnd, ioc(IoctlCmd::BalanceV2), 0, kDev, fs_b());
    // balance on fs A finished, then send on fs A (events after the window)
    t.at(5 * kSec).ev(BAL, EventType::IoctlBegin, ioc(IoctlCmd::Balance), 0, kDev);
    t.at(9 * kSec).ev(BAL, EventType::IoctlEnd, ioc(IoctlCmd::Balance), 0, kDev);
    t.at(30 * kSec).ev(SEND, EventType::IoctlBegin, ioc(IoctlCmd::Send, 0, 5), 0, kSnapDev);
    t.at(31 * kSec).ev(SEND, EventType::IoctlEnd, ioc(IoctlCmd::Send, -5, 5), 0, kSnapDev);
    // same events in the other order: send ends before balance begins
    t.at(40 * kSec).ev(SEND, EventType::IoctlBegin, ioc(IoctlCmd::Send, 0, 5), 0, kSnapDev);
    t.at(41 * kSec).ev(SEND, EventType::IoctlEnd, ioc(IoctlCmd::Send, 0, 5), 0, kSnapDev);
    t.at(41 * kSec + 1).ev(BAL, EventType::IoctlBegin, ioc(IoctlCmd::BalanceV2), 0, kDev);
    t.at(50 * kSec).ev(BAL, EventType::IoctlEnd, ioc(IoctlCmd::BalanceV2), 0, kDev);
    v.push_back(t);
  }

  // ===================== dio-unstable-pages =====================
  {
    TL t("dio_unstable_pages_5.10", false, "5.10.0");
    t.at(0).ev(REPRO, EventType::DioBegin, shared_wr(0, kMiB), kTest);
    t.at(2 * kMs).ev(REPRO, EventType::DioEnd, end(kMiB, kMiB), kTest);
    t.at(3 * kMs).ev(REPRO, EventType::DioBegin, rd(0, kMiB), kTest);
    t.at(5 * kMs).ev(CSUMW, EventType::CsumError, CsumError{.offset = 0, .len = 4096, .mirror = 1}, kTest);
    t.at(6 * kMs).ev(REPRO, EventType::DioEnd, end(0, -5, -5), kTest);
    t.expect("dio-unstable-pages hazard shared-buffer-write");
    t.expect("dio-unstable-pages symptom csum-error");
    t.expect("dio-csum-after-direct-write symptom csum-after-direct-write");
    v.push_back(t);
  }
  {  // a read of a torn 1 MiB write fails on many blocks: one symptom with every failing range
    // (as on 6.1: one csum_error per 4 KiB block from the end-io worker, then the read's EIO)
    TL t("dio_unstable_pages_many_blocks_6.1", false, "6.1.0");
    t.at(0).ev(REPRO, EventType::DioBegin, shared_wr(0, kMiB), kTest);
    t.at(2 * kMs).ev(REPRO, EventType::DioEnd, end(kMiB, kMiB), kTest);
    t.at(3 * kMs).ev(REPRO, EventType::DioBegin, rd(0, kMiB), kTest);
    for (uint64_t off : {0ull, 4096ull, 8192ull, 65536ull})
      t.at(5 * kMs + off).ev(CSUMW, EventType::CsumError, CsumError{.offset = off, .len = 4096, .mirror = 1}, kTest);
    t.at(6 * kMs).ev(REPRO, EventType::DioEnd, end(0, -5, -5), kTest);
    // the next read of the same write fails again: already reported
    t.at(7 * kMs).ev(REPRO, EventType::DioBegin, rd(0, kMiB), kTest);
    t.at(8 * kMs).ev(CSUMW, EventType::CsumError, CsumError{.offset = 0, .len = 4096, .mirror = 1}, kTest);
    t.at(9 * kMs).ev(REPRO, EventType::DioEnd, end(0, -5, -5), kTest);
    t.expect("dio-unstable-pages hazard shared-buffer-write");
    t.expect("dio-unstable-pages symptom csum-error");
    t.expect("dio-csum-after-direct-write symptom csum-after-direct-write");
    v.push_back(t);
  }
  {  // a buffered read of the range (no direct read to end): reported once the failures stop
    TL t("dio_unstable_pages_buffered_read_6.1", false, "6.1.0");
    t.at(0).ev(REPRO, EventType::DioBegin, shared_wr(0, kMiB), kTest);
    t.at(2 * kMs).ev(REPRO, EventType::DioEnd, end(kMiB, kMiB), kTest);
    for (uint64_t off : {524288ull, 528384ull, 532480ull})
      t.at(10 * kMs + off / 4096).ev(CSUMW, EventType::CsumError, CsumError{.offset = off, .len = 4096, .mirror = 1}, kTest);
    t.expect("dio-unstable-pages hazard shared-buffer-write");
    t.expect("dio-unstable-pages symptom csum-error");
    t.expect("dio-csum-after-direct-write symptom csum-after-direct-write");
    v.push_back(t);
  }
  {  // only the EIO at the read is visible (no checksum-failure hook)
    TL t("dio_unstable_pages_read_eio_5.10", false, "5.10.0");
    t.at(0).ev(REPRO, EventType::DioBegin, shared_wr(0, kMiB), kTest);
    t.at(2 * kMs).ev(REPRO, EventType::DioEnd, end(kMiB, kMiB), kTest);
    t.at(3 * kMs).ev(REPRO, EventType::DioBegin, rd(0, kMiB), kTest);
    t.at(6 * kMs).ev(REPRO, EventType::DioEnd, end(0, -5, -5), kTest);
    t.expect("dio-unstable-pages hazard shared-buffer-write");
    t.expect("dio-unstable-pages symptom read-eio");
    v.push_back(t);
  }
  {  // the buffer was not modified in flight this time: hazard only
    TL t("dio_unstable_pages_no_error_5.10", false, "5.10.0");
    t.at(0).ev(REPRO, EventType::DioBegin, shared_wr(0, kMiB), kTest);
    t.at(2 * kMs).ev(REPRO, EventType::DioEnd, end(kMiB, kMiB), kTest);
    t.at(3 * kMs).ev(REPRO, EventType::DioBegin, rd(0, kMiB), kTest);
    t.at(6 * kMs).ev(REPRO, EventType::DioEnd, end(kMiB, kMiB), kTest);
    t.expect("dio-unstable-pages hazard shared-buffer-write");
    v.push_back(t);
  }
  {
    TL t("dio_unstable_benign", true, "5.10.0");
    // nocow file: shared buffer but no checksums
    auto n = shared_wr(0, kMiB);
    n.nodatasum = true;
    t.at(0).ev(REPRO, EventType::DioBegin, n, kTest + 1);
    t.at(1 * kMs).ev(REPRO, EventType::DioEnd, end(kMiB, kMiB), kTest + 1);
    // private buffer on a checksummed file
    t.at(2 * kMs).ev(REPRO, EventType::DioBegin, wr(0, kMiB), kTest);
    t.at(3 * kMs).ev(REPRO, EventType::DioEnd, end(kMiB, kMiB), kTest);
    // a checksum error on an inode never written from a shared buffer
    t.at(4 * kMs).ev(CSUMW, EventType::CsumError, CsumError{.offset = 0, .len = 4096}, kTest + 2);
    v.push_back(t);
  }
  {  // the hazardous range was overwritten from a private buffer before the error
     // (the writer still gets its hazard finding)
    TL t("dio_unstable_overwritten_before_error", false, "5.10.0");
    t.at(0).ev(REPRO, EventType::DioBegin, shared_wr(0, kMiB), kTest);
    t.at(1 * kMs).ev(REPRO, EventType::DioEnd, end(kMiB, kMiB), kTest);
    t.at(2 * kMs).ev(REPRO, EventType::DioBegin, wr(0, kMiB), kTest);
    t.at(3 * kMs).ev(REPRO, EventType::DioEnd, end(kMiB, kMiB), kTest);
    t.at(4 * kMs).ev(CSUMW, EventType::CsumError, CsumError{.offset = 0, .len = 4096}, kTest);
    t.expect("dio-unstable-pages hazard shared-buffer-write");
    t.expect("dio-csum-after-direct-write symptom csum-after-direct-write");
    v.push_back(t);
  }

  // ===================== dio-buffered-fallback =====================
  const Who Q{7100, 7100, "qemu-system-x86"}, Q2{7100, 7105, "worker"};
  constexpr uint64_t kQcow = 500;
  {
    TL t("dio_buffered_fallback_6.18", false, "6.18.0");
    t.at(0).ev(Q, EventType::DioBegin, rd(0, 65536), kQcow);
    t.at(1 * kMs).ev(Q, EventType::DioEnd, end(65536, 65536), kQcow);
    // QEMU's writes went to the page cache; its fdatasync writes them back in
    // its own context: buffered ordered extents (no DIRECT)
    t.at(50 * kMs).ev(Q2, EventType::OeAdd, oe(1048576, 65536, REGULAR), kQcow, 0);
    t.at(51 * kMs).ev(Q2, EventType::OeAdd, oe(2097152, 65536, REGULAR), kQcow, 0);
    t.expect("dio-buffered-fallback hazard buffered-fallback-inferred");
    v.push_back(t);
  }
  {  // as measured on 6.18 (docs/kernel-behaviour.md): the fallen-back O_DIRECT
     // pwrite writes back synchronously in the writer's own task, before the
     // first O_DIRECT read; the write never reaches iomap_dio_rw_begin
    TL t("dio_buffered_fallback_write_first_6.18", false, "6.18.0");
    const Who U{7200, 7200, "dio-unstable"};
    t.at(0).ev(U, EventType::OeAdd, oe(0, 1048576, REGULAR), 600, 0);
    t.at(3 * kMs).ev(KW, EventType::OeFinish, oe(0, 1048576, REGULAR), 600, 0);
    t.at(4 * kMs).ev(KW, EventType::OeRemove, oe(0, 1048576, REGULAR), 600, 0);
    t.at(5 * kMs).ev(U, EventType::DioBegin, rd(0, 1048576), 600);
    t.at(7 * kMs).ev(U, EventType::DioEnd, end(1048576, 1048576), 600);
    t.at(8 * kMs).ev(U, EventType::OeAdd, oe(0, 1048576, REGULAR), 600, 0);
    t.expect("dio-buffered-fallback hazard buffered-fallback-inferred");
    v.push_back(t);
  }
  {  // a buffered writer that fsyncs (oe_add in its own task) but never uses
     // O_DIRECT, next to an O_DIRECT reader of the same file
    TL t("buffered_writer_fsync_no_odirect", true, "6.18.0");
    const Who BW{7300, 7300, "rsync"};
    t.at(0).ev(BW, EventType::OeAdd, oe(0, 65536, REGULAR), kQcow, 0);
    t.at(1 * kMs).ev(Q, EventType::DioBegin, rd(0, 65536), kQcow);
    t.at(2 * kMs).ev(Q, EventType::DioEnd, end(65536, 65536), kQcow);
    t.at(3 * kMs).ev(BW, EventType::OeAdd, oe(65536, 65536, REGULAR), kQcow, 0);
    v.push_back(t);
  }
  // exact: dio_fallback events (the kernel saw the write return without
  // reaching iomap_dio_rw)
  auto fb = [](uint64_t pos, uint64_t count, FallbackVia via, bool nodatasum = false,
               bool unaligned = false) {
    return DioFallback{.pos = pos, .count = count, .fd = via == FallbackVia::Call ? -1 : 5,
                       .via = via, .nodatasum = nodatasum, .unaligned = unaligned,
                       .requested = via == FallbackVia::Libaio};
  };
  {  // a write-only O_DIRECT user (a database log): two threads, pwrite64, on a
     // checksummed file; later fallbacks are counted, not reported again; its
     // nocow file takes true DIO writes (dio_begin): nothing for that one
    TL t("dio_buffered_fallback_writer_6.18", false, "6.18.0");
    const Who L1{7400, 7400, "pg-wal"}, L2{7400, 7402, "pg-wal"};
    t.at(0).ev(L1, EventType::DioFallback, fb(0, 8192, FallbackVia::Syscall), 700);
    t.at(1 * kMs).ev(L2, EventType::DioFallback, fb(8192, 8192, FallbackVia::Syscall), 700);
    t.at(2 * kMs).ev(L1, EventType::DioFallback, fb(65536, 4096, FallbackVia::Syscall), 700);
    t.at(3 * kMs).ev(L1, EventType::DioBegin, wr(0, 8192), 701);
    t.at(4 * kMs).ev(L1, EventType::DioEnd, end(8192, 8192), 701);
    t.at(6 * kSec).ev(L1, EventType::DioFallback, fb(16384, 8192, FallbackVia::Syscall), 700);
    t.at(9 * kSec).ev(L1, EventType::DioFallback, fb(24576, 8192, FallbackVia::Syscall), 700);
    t.expect("dio-buffered-fallback hazard buffered-fallback");
    v.push_back(t);
  }
  {  // QEMU aio=io_uring on a checksummed image: the nowait attempt returns
     // EAGAIN, the io-wq worker's retry is carried out buffered; another VM on
     // an unaligned write; a third process is still gathering when the trace ends
    TL t("dio_buffered_fallback_io_uring_6.18", false, "6.18.0");
    const Who IOW{7100, 7133, "iou-wrk-7100"}, V2{7500, 7500, "qemu-system-x86"},
        LATE{7600, 7600, "backup"};
    t.at(0).ev(IOW, EventType::DioFallback, fb(1048576, 65536, FallbackVia::IoUring), kQcow);
    t.at(1 * kMs).ev(IOW, EventType::DioFallback, fb(1114112, 65536, FallbackVia::IoUring), kQcow);
    t.at(2 * kMs).ev(V2, EventType::DioFallback, fb(512, 3584, FallbackVia::Call, true, true), kQcow + 2);
    t.at(8 * kSec).ev(LATE, EventType::DioFallback, fb(0, 1048576, FallbackVia::Libaio), kQcow + 3);
    t.expect("dio-buffered-fallback hazard buffered-fallback");
    t.expect("dio-buffered-fallback hazard buffered-fallback");
    t.expect("dio-buffered-fallback hazard buffered-fallback");
    v.push_back(t);
  }
  {
    TL t("dio_buffered_fallback_benign", true, "6.18.0");
    t.at(0).ev(Q, EventType::DioBegin, rd(0, 65536), kQcow);
    t.at(1 * kMs).ev(Q, EventType::DioEnd, end(65536, 65536), kQcow);
    // writeback by the flusher: cannot be attributed, not reported
    t.at(10 * kMs).ev(Who{77, 77, "kworker/u8:0"}, EventType::OeAdd, oe(0, 4096, REGULAR), kQcow, 0);
    // a nocow image where writes really go direct
    t.at(20 * kMs).ev(Q, EventType::DioBegin, rd(0, 65536), kQcow + 1);
    t.at(21 * kMs).ev(Q, EventType::DioBegin, wr(0, 65536), kQcow + 1);
    t.at(22 * kMs).ev(Q, EventType::OeAdd, oe(0, 65536, DIRECT | NOCOW), kQcow + 1, 0);
    t.at(23 * kMs).ev(Q, EventType::DioEnd, end(65536, 65536), kQcow + 1);
    t.at(30 * kMs).ev(Q, EventType::OeAdd, oe(0, 4096, NOCOW), kQcow + 1, 0);
    // same inode number in another filesystem
    t.at(40 * kMs).ev(Q, EventType::OeAdd, oe(0, 4096, REGULAR), kQcow, kDev, fs_b());
    v.push_back(t);
  }
  // ===================== invariants =====================
  // rules that hold on any correct kernel: each violation and its near-misses
  const Who A{8100, 8101, "db"}, B{8100, 8102, "db"}, C{8200, 8200, "vm-b"};
  constexpr uint64_t kF = 800;
  {  // errnos no read/write documents: EUCLEAN from a read (its get_extent
     // failed the same way), ENOENT from a read, ESTALE from a write
    TL t("invariant_unexpected_errno", false, "6.12.0");
    t.at(0).ev(A, EventType::DioBegin, rd(0, 4096), kF);
    t.at(10'000).ev(A, EventType::GetExtent, GetExtent{.phase = Phase::Exit, .start = 0, .len = 4096, .ret = -117}, kF);
    t.at(20'000).ev(A, EventType::DioEnd, end(0, -117, -117), kF);
    t.at(30'000).ev(B, EventType::DioBegin, rd(8192, 4096), kF);
    t.at(40'000).ev(B, EventType::DioEnd, end(8192, -2, -2), kF);
    t.at(50'000).ev(C, EventType::DioBegin, wr(0, 65536), kF + 1);
    t.at(60'000).ev(C, EventType::DioEnd, end(0, -116, -116), kF + 1);
    t.expect("dio-unexpected-errno symptom unexpected-errno");
    t.expect("dio-unexpected-errno symptom unexpected-errno");
    t.expect("dio-unexpected-errno symptom unexpected-errno");
    v.push_back(t);
  }
  {  // a write's errno returned by a read: ENOSPC and EROFS are documented for
     // writes only
    TL t("invariant_unexpected_errno_write_errno_on_read", false, "6.12.0");
    t.at(0).ev(A, EventType::DioBegin, rd(0, 4096), kF);
    t.at(10'000).ev(A, EventType::DioEnd, end(0, -28, -28), kF);
    t.expect("dio-unexpected-errno symptom unexpected-errno");
    v.push_back(t);
  }
  {  // near-misses: every errno below is documented (or a device error the block
     // layer reports, or consumed by the kernel before userspace)
    TL t("invariant_errno_allowed", true, "6.12.0");
    uint64_t at = 0;
    auto req = [&](const Who& w, DioBegin b, int64_t ret) {
      t.at(at += 10'000).ev(w, EventType::DioBegin, b, kF);
      t.at(at += 10'000).ev(w, EventType::DioEnd, end(b.pos, ret, ret), kF);
    };
    req(A, rd(0, 4096), -5);       // EIO: a failing device
    req(A, rd(0, 4096), -4);       // EINTR
    req(A, rd(0, 4096), -14);      // EFAULT
    req(A, rd(1, 4096), -22);      // EINVAL
    req(A, rd(0, 4096), -110);     // ETIMEDOUT (block layer)
    req(A, rd(0, 4096), -61);      // ENODATA (block layer: medium error)
    req(A, rd(0, 4096), -125);     // ECANCELED (io_uring)
    req(A, wr(0, 4096), -28);      // ENOSPC
    req(A, wr(0, 4096), -122);     // EDQUOT
    req(A, wr(0, 4096), -30);      // EROFS (forced read-only after an error)
    req(A, wr(0, 4096), -15);      // ENOTBLK: btrfs falls back to buffered
    req(A, wr(0, 4096), -512);     // ERESTARTSYS
    auto nw = wr(0, 4096);
    nw.aio = true;
    req(B, nw, -11);               // EAGAIN: io_uring's nowait attempt
    // a dio_end whose begin was not seen, direction unknown: any documented errno
    t.at(at += 10'000).ev(C, EventType::DioEnd, end(0, -28, -28), kF);
    v.push_back(t);
  }
  {  // a full (not partial) direct write acknowledged whose ordered extent was
     // dropped with IOERR: no pattern, the rule alone
    TL t("invariant_acked_unbacked", false, "6.12.0");
    t.at(0).ev(A, EventType::DioBegin, wr(0, kPart), kF);
    t.at(10'000).ev(A, EventType::OeAdd, oe(0, kPart, DIRECT | REGULAR), kF);
    t.at(200'000).ev(IRQ, EventType::OeFinish, oe(0, kPart, DIRECT | REGULAR), kF);
    t.at(210'000).ev(A, EventType::DioEnd, end(kPart, kPart), kF);
    t.at(300'000).ev(KW, EventType::OeRemove, oe(0, kPart, DIRECT | REGULAR | IOERR), kF);
    t.expect("dio-acked-unbacked symptom acked-unbacked");
    v.push_back(t);
  }
  {  // near-misses: a failed ordered extent whose range a later extent of the
     // same call completed; acknowledged bytes no ordered extent was seen for
     // (the trace missed them); a write that failed acknowledged nothing
    TL t("invariant_acked_backed", true, "6.12.0");
    t.at(0).ev(A, EventType::DioBegin, wr(0, 2 * kPart), kF);
    t.at(10'000).ev(A, EventType::OeAdd, oe(0, kPart, DIRECT | REGULAR), kF);
    t.at(20'000).ev(A, EventType::OeAdd, oe(0, 2 * kPart, DIRECT | REGULAR), kF);
    t.at(200'000).ev(A, EventType::DioEnd, end(2 * kPart, 2 * kPart), kF);
    t.at(300'000).ev(KW, EventType::OeRemove, oe(0, kPart, DIRECT | REGULAR | IOERR), kF);
    t.at(310'000).ev(KW, EventType::OeRemove, oe(0, 2 * kPart, DIRECT | REGULAR), kF);
    t.at(400'000).ev(B, EventType::DioBegin, wr(0, kPart), kF + 1);
    t.at(500'000).ev(B, EventType::DioEnd, end(kPart, kPart), kF + 1);
    t.at(600'000).ev(C, EventType::DioBegin, wr(0, kPart), kF + 2);
    t.at(610'000).ev(C, EventType::OeAdd, oe(0, kPart, DIRECT | REGULAR), kF + 2);
    t.at(700'000).ev(C, EventType::DioEnd, end(0, -5, -5), kF + 2);
    t.at(710'000).ev(KW, EventType::OeRemove, oe(0, kPart, DIRECT | REGULAR | IOERR), kF + 2);
    v.push_back(t);
  }
  {  // a read that never returns while the filesystem completes later requests
    TL t("invariant_stuck_request", false, "6.12.0");
    t.at(0).ev(A, EventType::DioBegin, rd(0, 4096), kF);
    for (uint64_t s = 1; s <= 40; ++s) {
      auto b = rd(s * 4096, 4096);
      t.at(s * kSec).ev(B, EventType::DioBegin, b, kF + 1);
      t.at(s * kSec + 100'000).ev(B, EventType::DioEnd, end(s * 4096 + 4096, 4096), kF + 1);
    }
    t.expect("dio-stuck symptom stuck-request");
    v.push_back(t);
  }
  {  // a direct write returned but its ordered extent is never removed, while
     // later writes' ordered extents are
    TL t("invariant_stuck_ordered_extent", false, "6.12.0");
    t.at(0).ev(A, EventType::DioBegin, wr(0, kPart), kF);
    t.at(10'000).ev(A, EventType::OeAdd, oe(0, kPart, DIRECT | REGULAR), kF);
    t.at(100'000).ev(A, EventType::DioEnd, end(kPart, kPart), kF);
    for (uint64_t s = 1; s <= 40; ++s) {
      t.at(s * kSec).ev(B, EventType::DioBegin, wr(s * kPart, kPart), kF + 1);
      t.at(s * kSec + 10'000).ev(B, EventType::OeAdd, oe(s * kPart, kPart, DIRECT | REGULAR), kF + 1);
      t.at(s * kSec + 100'000).ev(B, EventType::DioEnd, end((s + 1) * kPart, kPart), kF + 1);
      t.at(s * kSec + 200'000).ev(KW, EventType::OeRemove, oe(s * kPart, kPart, DIRECT | REGULAR), kF + 1);
    }
    t.expect("dio-stuck symptom stuck-ordered-extent");
    v.push_back(t);
  }
  {  // a write that does not return for 43 s, its ordered extent open too (2 s
     // longer), while later writes and their ordered extents complete: the
     // request is reported, not its extent (whichever completion is seen first,
     // and after the request ended)
    TL t("invariant_stuck_write_and_its_extent", false, "6.12.0");
    t.at(0).ev(A, EventType::DioBegin, wr(0, kPart), kF);
    t.at(10'000).ev(A, EventType::OeAdd, oe(0, kPart, DIRECT | REGULAR), kF);
    for (uint64_t s = 1; s <= 40; ++s) {
      t.at(s * kSec).ev(B, EventType::OeAdd, oe(s * kPart, kPart, DIRECT | REGULAR), kF + 1);
      t.at(s * kSec + 200'000).ev(KW, EventType::OeRemove, oe(s * kPart, kPart, DIRECT | REGULAR), kF + 1);
    }
    t.at(41 * kSec).ev(B, EventType::DioBegin, wr(41 * kPart, kPart), kF + 1);
    t.at(41 * kSec + 100'000).ev(B, EventType::DioEnd, end(42 * kPart, kPart), kF + 1);
    t.at(43 * kSec).ev(A, EventType::DioEnd, end(kPart, kPart), kF);
    t.at(45 * kSec).ev(KW, EventType::OeRemove, oe(0, kPart, DIRECT | REGULAR), kF);
    t.expect("dio-stuck symptom stuck-request");
    v.push_back(t);
  }
  {  // near-misses: a slow device (nothing that began later completes before
     // the old request does); a 1 GiB request that takes 40 s while small ones
     // complete (its size allows it); another filesystem completing
    TL t("invariant_slow_not_stuck", true, "6.12.0");
    t.at(0).ev(A, EventType::DioBegin, rd(0, 4096), kF);
    t.at(1 * kSec).ev(B, EventType::DioBegin, rd(4096, 4096), kF);
    t.at(2 * kSec).ev(C, EventType::DioBegin, rd(0, 4096), kF, kDev, fs_b());
    t.at(3 * kSec).ev(C, EventType::DioEnd, end(4096, 4096), kF, kDev, fs_b());
    t.at(35 * kSec).ev(A, EventType::DioEnd, end(4096, 4096), kF);
    t.at(35 * kSec + 1000).ev(B, EventType::DioEnd, end(8192, 4096), kF);
    const Who BIG{8300, 8300, "backup"};
    t.at(36 * kSec).ev(BIG, EventType::DioBegin, wr(0, 1ull << 30), kF + 5);
    for (uint64_t s = 37; s <= 76; ++s) {
      t.at(s * kSec).ev(B, EventType::DioBegin, rd(0, 4096), kF);
      t.at(s * kSec + 1000).ev(B, EventType::DioEnd, end(4096, 4096), kF);
    }
    t.at(77 * kSec).ev(BIG, EventType::DioEnd, end(1ull << 30, 1ull << 30), kF + 5);
    v.push_back(t);
  }
  {  // a checksum failure on data a direct write (private buffer) stored and
     // acknowledged
    TL t("invariant_csum_after_direct_write_6.1", false, "6.1.0");
    t.at(0).ev(A, EventType::DioBegin, wr(0, kMiB), kF);
    t.at(2 * kMs).ev(A, EventType::DioEnd, end(kMiB, kMiB), kF);
    t.at(3 * kMs).ev(A, EventType::DioBegin, rd(0, kMiB), kF);
    t.at(5 * kMs).ev(CSUMW, EventType::CsumError, CsumError{.offset = 8192, .len = 4096, .mirror = 1}, kF);
    t.at(6 * kMs).ev(A, EventType::DioEnd, end(0, -5, -5), kF);
    t.expect("dio-csum-after-direct-write symptom csum-after-direct-write");
    v.push_back(t);
  }
  {  // near-misses: the range was rewritten buffered after the direct write; a
     // direct write that failed; a nocow file's write; a range never written
     // in the trace (a device may have corrupted it: not this rule)
    TL t("invariant_csum_not_after_direct_write", true, "6.1.0");
    t.at(0).ev(A, EventType::DioBegin, wr(0, kMiB), kF);
    t.at(1 * kMs).ev(A, EventType::DioEnd, end(kMiB, kMiB), kF);
    t.at(2 * kMs).ev(A, EventType::OeAdd, oe(0, kMiB, REGULAR), kF);
    t.at(3 * kMs).ev(CSUMW, EventType::CsumError, CsumError{.offset = 0, .len = 4096}, kF);
    t.at(4 * kMs).ev(A, EventType::DioBegin, wr(0, kMiB), kF + 1);
    t.at(5 * kMs).ev(A, EventType::DioEnd, end(0, -5, -5), kF + 1);
    t.at(6 * kMs).ev(CSUMW, EventType::CsumError, CsumError{.offset = 0, .len = 4096}, kF + 1);
    auto n = wr(0, kMiB);
    n.nodatasum = true;
    t.at(7 * kMs).ev(A, EventType::DioBegin, n, kF + 2);
    t.at(8 * kMs).ev(A, EventType::DioEnd, end(kMiB, kMiB), kF + 2);
    t.at(9 * kMs).ev(CSUMW, EventType::CsumError, CsumError{.offset = 0, .len = 4096}, kF + 2);
    t.at(10 * kMs).ev(A, EventType::DioBegin, wr(0, kMiB), kF + 3);
    t.at(11 * kMs).ev(A, EventType::DioEnd, end(kMiB, kMiB), kF + 3);
    t.at(12 * kMs).ev(CSUMW, EventType::CsumError, CsumError{.offset = 2 * kMiB, .len = 4096}, kF + 3);
    v.push_back(t);
  }
  return v;
}

DetectorConfig config_for(const std::string& kernel) {
  DetectorConfig c;
  if (!kernel.empty()) c.kernel = KernelVersion::parse(kernel).value_or(KernelVersion{});
  return c;
}

Findings run(const std::vector<Event>& evs, const DetectorConfig& cfg) {
  Engine eng(cfg);
  Findings out;
  for (auto& e : evs) eng.feed(e, out);
  eng.finish(evs.empty() ? 0 : evs.back().ts_ns, out);
  return out;
}

std::vector<std::string> summary(const Findings& f) {
  std::vector<std::string> v;
  for (auto& x : f)
    v.push_back(x.detector + (x.level == Level::Symptom ? " symptom " : " hazard ") + x.kind);
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace bdt::test
