// Detector unit tests: seed timelines fire, fixed-kernel timelines give only
// the hazard, benign ones stay silent, state stays bounded.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "detectors/exposure.h"
#include "detector_timeline.h"

using namespace bdt;
using namespace bdt::test;

namespace {

const TL& find_case(const std::vector<TL>& v, const std::string& name) {
  for (auto& t : v)
    if (t.name() == name) return t;
  throw std::runtime_error("no case " + name);
}

std::vector<const Finding*> of(const Findings& f, std::string_view det, std::string_view kind) {
  std::vector<const Finding*> r;
  for (auto& x : f)
    if (x.detector == det && x.kind == kind) r.push_back(&x);
  return r;
}

class Cases : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(Cases, Expected) {
  static const auto all = all_cases();
  const TL& t = find_case(all, GetParam());
  ASSERT_TRUE(std::is_sorted(t.events().begin(), t.events().end(),
                             [](const Event& a, const Event& b) { return a.ts_ns < b.ts_ns; }));
  auto f = run(t.events(), config_for(t.kernel()));
  auto want = t.expected();
  std::sort(want.begin(), want.end());
  EXPECT_EQ(summary(f), want) << t.name();
  if (t.benign()) {
    EXPECT_TRUE(f.empty());
  }
  for (auto& x : f) {
    SCOPED_TRACE(x.detector + " " + x.kind);
    EXPECT_FALSE(x.message.empty());
    EXPECT_FALSE(x.explanation.empty());
    EXPECT_FALSE(x.exposure.empty());
    EXPECT_FALSE(x.actors.empty());
    EXPECT_FALSE(x.evidence.empty());
    EXPECT_FALSE(x.fs.empty());
    EXPECT_NE(x.pid, 0u);
    EXPECT_TRUE(std::is_sorted(x.evidence.begin(), x.evidence.end(),
                               [](const Event& a, const Event& b) { return a.ts_ns < b.ts_ns; }));
    if (x.range) {
      EXPECT_LT(x.range->first, x.range->second);
    }
  }
}

static std::vector<std::string> case_names() {
  std::vector<std::string> v;
  for (auto& t : all_cases()) v.push_back(t.name());
  return v;
}
INSTANTIATE_TEST_SUITE_P(Timelines, Cases, ::testing::ValuesIn(case_names()),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (auto& c : s)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return s;
                         });

TEST(EmMergeRace, SeedDetails) {
  auto all = all_cases();
  auto& t = find_case(all, "em_merge_race_4.9");
  auto f = run(t.events(), config_for(t.kernel()));
  auto hz = of(f, "em-merge-race", "encompassing-em-merge");
  ASSERT_EQ(hz.size(), 1u);
  EXPECT_EQ(hz[0]->severity, Severity::Critical);
  EXPECT_EQ(hz[0]->ino, 257u);  // em_exist had ino 0: attributed via the tid's request
  EXPECT_EQ(hz[0]->tid, 3101u);
  ASSERT_EQ(hz[0]->actors.size(), 2u);
  EXPECT_EQ(hz[0]->actors[1].tid, 3102u);
  EXPECT_NE(hz[0]->message.find("merge path"), std::string::npos);
  auto sy = of(f, "em-merge-race", "eexist-get-extent");
  ASSERT_EQ(sy.size(), 1u);
  EXPECT_EQ(sy[0]->range, (std::pair<uint64_t, uint64_t>{0, 4096}));
  EXPECT_EQ(sy[0]->severity, Severity::Critical);

  auto& fx = find_case(all, "em_merge_race_fixed_6.1");
  auto g = run(fx.events(), config_for(fx.kernel()));
  auto hh = of(g, "em-merge-race", "encompassing-em-harmless");
  ASSERT_EQ(hh.size(), 1u);
  EXPECT_EQ(hh[0]->severity, Severity::Info);
  EXPECT_NE(hh[0]->message.find("harmless branch"), std::string::npos);
}

TEST(EmMergeRace, UnknownKernelIsConservative) {
  auto all = all_cases();
  auto& fx = find_case(all, "em_merge_race_fixed_6.1");
  auto g = run(fx.events(), config_for(""));
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].severity, Severity::Warning);
  EXPECT_NE(g[0].exposure.find("unknown"), std::string::npos);
}

TEST(EmMergeRace, RepeatedHazardsAreRateLimited) {
  auto all = all_cases();
  auto& fx = find_case(all, "em_merge_race_fixed_6.1");
  std::vector<Event> evs;
  for (int i = 0; i < 5; ++i)
    for (auto e : fx.events()) {
      e.ts_ns += uint64_t(i) * kSec;
      evs.push_back(e);
    }
  auto g = run(evs, config_for("6.1.0"));
  EXPECT_EQ(g.size(), 1u);  // repeat_ns = 60 s
  evs.clear();
  for (int i = 0; i < 3; ++i)
    for (auto e : fx.events()) {
      e.ts_ns += uint64_t(i) * 61 * kSec;
      evs.push_back(e);
    }
  EXPECT_EQ(run(evs, config_for("6.1.0")).size(), 3u);
}

TEST(DioShortWrite, HoleIsExact) {
  auto all = all_cases();
  auto& t = find_case(all, "dio_short_write_6.2");
  auto f = run(t.events(), config_for(t.kernel()));
  auto h = of(f, "dio-short-write", "acknowledged-hole");
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0]->range, (std::pair<uint64_t, uint64_t>{0, 65536}));
  EXPECT_EQ(h[0]->ino, 301u);
  EXPECT_EQ(h[0]->pid, 4200u);
  EXPECT_EQ(h[0]->severity, Severity::Critical);
  auto c = of(f, "dio-short-write", "continued-write");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0]->severity, Severity::Warning);  // 6.2 is in [5.16, 6.4)

  auto& fx = find_case(all, "dio_short_write_fixed_6.6");
  auto g = run(fx.events(), config_for(fx.kernel()));
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].severity, Severity::Info);
}

TEST(DioShortWrite, OrderOfCompletionsDoesNotMatter) {
  // the dropped IOERR extent removed after the continuation's good one
  auto all = all_cases();
  auto evs = find_case(all, "dio_short_write_6.2").events();
  for (auto& e : evs)
    if (e.type == EventType::OeRemove && e.as<Ordered>()->flags & oef::IOERR) e.ts_ns += 3'000'000;
  std::stable_sort(evs.begin(), evs.end(), [](auto& a, auto& b) { return a.ts_ns < b.ts_ns; });
  auto f = run(evs, config_for("6.2.0"));
  auto h = of(f, "dio-short-write", "acknowledged-hole");
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0]->range, (std::pair<uint64_t, uint64_t>{0, 65536}));
}

TEST(DioShortWrite, StallNeedsThreshold) {
  auto all = all_cases();
  auto evs = find_case(all, "dio_self_mmap_deadlock_6.2").events();
  auto cfg = config_for("6.2.0");
  cfg.stall_threshold_ns = 60 * kSec;  // not reached in the 31 s timeline
  auto f = run(evs, cfg);
  EXPECT_TRUE(of(f, "dio-short-write", "self-mmap-stall").empty());
  EXPECT_EQ(of(f, "dio-short-write", "self-mmap-write").size(), 1u);
}

TEST(SendVsRelocation, Severities) {
  auto all = all_cases();
  auto f = run(find_case(all, "send_vs_relocation_5.0").events(), config_for("5.0.0"));
  auto o = of(f, "send-vs-relocation", "overlap");
  ASSERT_EQ(o.size(), 1u);
  EXPECT_EQ(o[0]->severity, Severity::Critical);
  EXPECT_FALSE(o[0]->ino.has_value());
  auto s = of(f, "send-vs-relocation", "send-failed");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0]->pid, 5100u);
  EXPECT_GE(s[0]->actors.size(), 2u);
  EXPECT_NE(s[0]->message.find("EIO"), std::string::npos);

  auto r = run(find_case(all, "send_refused_during_balance_5.10").events(), config_for(""));
  ASSERT_EQ(r.size(), 1u);  // observation, even with the kernel unknown
  EXPECT_EQ(r[0].severity, Severity::Info);
  EXPECT_NE(r[0].exposure.find("observed"), std::string::npos);

  auto c = run(find_case(all, "send_vs_relocation_fixed_6.1").events(), config_for("6.1.0"));
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].severity, Severity::Info);
  auto u = run(find_case(all, "send_vs_relocation_fixed_6.1").events(), config_for(""));
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].severity, Severity::Warning);
}

TEST(SendVsRelocation, FailureShortlyAfterOverlap) {
  TL t("x", false, "5.0.0");
  const Who S{1, 1, "btrfs"}, B{2, 2, "btrfs"};
  t.at(0).ev(B, EventType::IoctlBegin, Ioctl{.cmd = IoctlCmd::BalanceV2});
  t.at(2 * kSec).ev(S, EventType::IoctlBegin, Ioctl{.cmd = IoctlCmd::Send});
  t.at(4 * kSec).ev(B, EventType::IoctlEnd, Ioctl{.cmd = IoctlCmd::BalanceV2});
  t.at(8 * kSec).ev(S, EventType::IoctlEnd, Ioctl{.cmd = IoctlCmd::Send, .ret = -2});
  auto f = run(t.events(), config_for("5.0.0"));
  EXPECT_EQ(of(f, "send-vs-relocation", "send-failed").size(), 1u);
  auto cfg = config_for("5.0.0");
  cfg.overlap_window_ns = 2 * kSec;  // the failure came 4 s after the overlap
  auto g = run(t.events(), cfg);
  EXPECT_TRUE(of(g, "send-vs-relocation", "send-failed").empty());
  EXPECT_EQ(of(g, "send-vs-relocation", "overlap").size(), 1u);
}

TEST(DioUnstablePages, NamesWriterBufferAndRange) {
  auto all = all_cases();
  auto f = run(find_case(all, "dio_unstable_pages_read_eio_5.10").events(), config_for("5.10.0"));
  auto s = of(f, "dio-unstable-pages", "read-eio");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0]->range, (std::pair<uint64_t, uint64_t>{0, 1048576}));
  EXPECT_NE(s[0]->message.find("0x7f1200000000"), std::string::npos);
  bool writer = false;
  for (auto& a : s[0]->actors) writer |= a.role == "writer" && a.pid == 6100;
  EXPECT_TRUE(writer);
  auto h = of(f, "dio-unstable-pages", "shared-buffer-write");
  ASSERT_EQ(h.size(), 1u);
  EXPECT_NE(h[0]->exposure.find("observed"), std::string::npos);
}

TEST(DioUnstablePages, OneSymptomWithEveryFailingRange) {
  auto all = all_cases();
  auto f = run(find_case(all, "dio_unstable_pages_many_blocks_6.1").events(), config_for("6.1.0"));
  auto s = of(f, "dio-unstable-pages", "csum-error");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0]->range, (std::pair<uint64_t, uint64_t>{0, 69632}));
  EXPECT_NE(s[0]->message.find("4 data checksum errors (16384 bytes in [0, 12288), [65536, 69632))"),
            std::string::npos)
      << s[0]->message;
  EXPECT_NE(s[0]->message.find("failed with EIO"), std::string::npos);
  bool writer = false, reader = false;
  for (auto& a : s[0]->actors) {
    writer |= a.role == "writer" && a.pid == 6100;
    reader |= a.role == "reader" && a.pid == 6100;
  }
  EXPECT_TRUE(writer && reader);
  size_t csum = 0;
  for (auto& e : s[0]->evidence) csum += e.type == EventType::CsumError;
  EXPECT_EQ(csum, 4u);

  auto g = run(find_case(all, "dio_unstable_pages_buffered_read_6.1").events(), config_for("6.1.0"));
  auto b = of(g, "dio-unstable-pages", "csum-error");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0]->range, (std::pair<uint64_t, uint64_t>{524288, 536576}));
  EXPECT_EQ(b[0]->comm, "kworker/u8:5");
}

TEST(StaleEbReuse, EbIdDistinguishesBuffers) {
  TL t("x", true, "4.0.0");
  const Who A{1, 1, "a"}, B{2, 2, "b"};
  ExtentBuffer fr{.phase = Phase::Enter, .eb_start = 4096, .refs = 2, .bflags = ebf::STALE, .eb_id = 0x1000};
  ExtentBuffer fd{.phase = Phase::None, .eb_start = 4096, .refs = 3, .bflags = ebf::STALE, .eb_id = 0x2000};
  t.at(0).ev(A, EventType::EbFree, fr);
  t.at(1).ev(B, EventType::EbFind, fd);  // same start, another object
  EXPECT_TRUE(run(t.events(), config_for("4.0.0")).empty());
}

// ---- bounds ------------------------------------------------------------------

TEST(Bounds, FloodOfInodesStaysUnderCap) {
  DetectorConfig cfg = config_for("5.10.0");
  cfg.max_entries = 64;
  cfg.max_requests = 64;
  Engine eng(cfg);
  Findings out;
  for (uint32_t i = 0; i < 5000; ++i) {
    Event e;
    e.ts_ns = kT0 + i * 1000;
    e.pid = 100 + i;
    e.tid = 100 + i;
    e.set_comm("flood");
    e.fs = fs_a();
    e.dev = kDev;
    e.ino = 1000 + i;
    e.type = EventType::DioBegin;
    DioBegin d{.pos = 0, .count = 4096, .write = (i % 2) == 0, .buf_shared = true, .buf_writable = true};
    e.body = d;
    eng.feed(e, out);
    Event f = e;
    f.type = EventType::EbFree;
    f.body = ExtentBuffer{.phase = Phase::Enter, .eb_start = 4096ull * i};
    eng.feed(f, out);
    Event s = e;
    s.type = i % 3 ? EventType::IoctlBegin : EventType::RelocBegin;
    if (i % 3) s.body = Ioctl{.cmd = i % 2 ? IoctlCmd::Send : IoctlCmd::Balance};
    else s.body = Reloc{.block_group = i};
    eng.feed(s, out);
    if (i % 500 == 0)
      for (auto& [id, st] : eng.state()) {
        SCOPED_TRACE(std::string(id));
        EXPECT_LE(st.entries, st.capacity);
      }
  }
  for (auto& [id, st] : eng.state()) {
    SCOPED_TRACE(std::string(id));
    EXPECT_LE(st.entries, st.capacity);
    EXPECT_GT(st.evicted, 0u);
    EXPECT_GT(st.capped, 0u);  // said in the summary: "state cap reached"
    EXPECT_LE(st.capped, st.evicted);
  }
  // age eviction: two minutes of silence empties everything
  eng.tick(kT0 + 5000 * 1000 + cfg.max_age_ns + 10 * kSec, out);
  eng.tick(kT0 + 5000 * 1000 + 2 * cfg.max_age_ns + 20 * kSec, out);
  for (auto& [id, st] : eng.state()) {
    SCOPED_TRACE(std::string(id));
    EXPECT_EQ(st.entries, 0u);
  }
}

// ---- exposure table -----------------------------------------------------------

TEST(Exposure, Table) {
  auto k = [](const char* s) { return *KernelVersion::parse(s); };
  EXPECT_EQ(send_reloc_regime(k("5.2.21")), SendRelocRegime::Bug);
  EXPECT_EQ(send_reloc_regime(k("5.3.0")), SendRelocRegime::Refused);
  EXPECT_EQ(send_reloc_regime(k("5.16.2")), SendRelocRegime::Refused);
  EXPECT_EQ(send_reloc_regime(k("5.16.15")), SendRelocRegime::Concurrent);
  EXPECT_EQ(send_reloc_regime(k("6.18.0")), SendRelocRegime::Concurrent);
  EXPECT_EQ(send_reloc_regime(KernelVersion{}), SendRelocRegime::Unknown);
  auto* hole = exposure_row("dio-partial-hole");
  ASSERT_TRUE(hole);
  EXPECT_EQ(exposed(*hole, k("5.15.0")), Exposed::No);
  EXPECT_EQ(exposed(*hole, k("5.16.0")), Exposed::Yes);
  EXPECT_EQ(exposed(*hole, k("6.3.13")), Exposed::Yes);
  EXPECT_EQ(exposed(*hole, k("6.4.0")), Exposed::No);
  EXPECT_EQ(exposed(*hole, KernelVersion{}), Exposed::Unknown);
  // stable backports: 968f19c5b1b7 is in 6.12.y from 6.12.77 (6.15 mainline)
  auto* unstable = exposure_row("dio-csum-unstable");
  auto* fallback = exposure_row("dio-csum-fallback");
  ASSERT_TRUE(unstable && fallback);
  for (auto [rel, exp] : {std::pair{"6.1.0", Exposed::Yes}, {"6.12.76", Exposed::Yes},
                          {"6.12.118+deb12-cloud-amd64", Exposed::No}, {"6.13.2", Exposed::Yes},
                          {"6.15.0", Exposed::No}, {"6.18.44", Exposed::No}}) {
    EXPECT_EQ(exposed(*unstable, k(rel)), exp) << rel;
    EXPECT_EQ(exposed(*fallback, k(rel)), exp == Exposed::Yes ? Exposed::No : Exposed::Yes) << rel;
  }
  EXPECT_NE(exposure_text(*unstable, k("6.12.118")).find("fixed in 6.15, 6.12.y from 6.12.77"),
            std::string::npos)
      << exposure_text(*unstable, k("6.12.118"));
  for (auto& r : exposure_table()) {
    EXPECT_FALSE(r.detector.empty());
    EXPECT_TRUE(!r.fixed_by.empty() || !r.introduced_by.empty()) << r.key;
  }
  auto ids = detector_ids();
  for (auto& r : exposure_table())
    EXPECT_NE(std::find(ids.begin(), ids.end(), r.detector), ids.end()) << r.detector;
  EXPECT_EQ(exposure_lines(k("6.18.0")).size(), exposure_table().size());
}

TEST(Engine, RegistryMatchesIds) {
  auto d = make_detectors(DetectorConfig{});
  auto ids = detector_ids();
  ASSERT_EQ(d.size(), ids.size());
  for (size_t i = 0; i < d.size(); ++i) EXPECT_EQ(d[i]->id(), ids[i]);
}

TEST(EmMergeRace, SeveralAioRequestsPerThread) {
  // io_uring: one thread submits two reads; completions carry the submitter's tid
  const Who A{10, 11, "qemu"}, B{10, 12, "qemu"};
  auto run_with = [&](bool complete_first) {
    TL t("x", true, "6.1.0");
    t.at(0).ev(A, EventType::DioBegin, DioBegin{.pos = 0, .count = 4096, .aio = true}, 257);
    t.at(1000).ev(A, EventType::DioBegin, DioBegin{.pos = 65536, .count = 4096, .aio = true}, 257);
    if (complete_first) {
      t.at(2000).ev(A, EventType::DioEnd, DioEnd{.pos = 4096, .ret = 4096}, 257);
      t.at(2100).ev(A, EventType::DioEnd, DioEnd{.pos = 69632, .ret = 4096}, 257);
    }
    t.at(3000).ev(B, EventType::DioBegin, DioBegin{.pos = 8192, .count = 4096}, 257);
    t.at(4000).ev(B, EventType::EmExist,
                  EmExist{.e_start = 0, .e_len = 16384, .map_start = 8192, .map_len = 4096,
                          .start = 8192, .len = 4096},
                  0, 0);
    return run(t.events(), config_for("6.1.0"));
  };
  EXPECT_EQ(run_with(false).size(), 1u);  // both of A's requests in flight
  EXPECT_TRUE(run_with(true).empty());   // both completed, matched by position
}

TEST(DioShortWrite, SeveralAioWritesPerThread) {
  // two io_uring writes from one thread; the first one's ordered extent fails
  // and nothing was acknowledged for it: no hole. The second completes fine.
  const Who A{10, 11, "qemu"}, K{2, 2, "kworker"};
  TL t("x", true, "6.2.0");
  t.at(0).ev(A, EventType::DioBegin, DioBegin{.pos = 0, .count = 4096, .write = true, .aio = true}, 300);
  t.at(10).ev(A, EventType::OeAdd, Ordered{.file_offset = 0, .len = 4096, .flags = oef::DIRECT}, 300);
  t.at(20).ev(A, EventType::DioBegin, DioBegin{.pos = 8192, .count = 4096, .write = true, .aio = true}, 300);
  t.at(30).ev(A, EventType::OeAdd, Ordered{.file_offset = 8192, .len = 4096, .flags = oef::DIRECT}, 300);
  t.at(100).ev(A, EventType::DioEnd, DioEnd{.pos = 12288, .ret = 4096}, 300);
  t.at(110).ev(A, EventType::DioEnd, DioEnd{.pos = 0, .ret = -5, .error = -5}, 300);
  t.at(200).ev(K, EventType::OeRemove, Ordered{.file_offset = 0, .len = 4096, .flags = oef::DIRECT | oef::IOERR}, 300);
  t.at(210).ev(K, EventType::OeRemove, Ordered{.file_offset = 8192, .len = 4096, .flags = oef::DIRECT}, 300);
  EXPECT_TRUE(run(t.events(), config_for("6.2.0")).empty());
  // and if the first one had been acknowledged, its IOERR extent is a hole:
  // the rule dio-acked-unbacked checks; not a partial write, so not the 2023 DIO short-write bug's
  auto evs = t.events();
  for (auto& e : evs)
    if (e.type == EventType::DioEnd && e.ts_ns == kT0 + 110) e.body = DioEnd{.pos = 4096, .ret = 4096};
  auto f = run(evs, config_for("6.2.0"));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].detector, "dio-acked-unbacked");
  EXPECT_EQ(f[0].range, (std::pair<uint64_t, uint64_t>{0, 4096}));
}

TEST(DioShortWrite, AContinuationPastTheAskedEndIsFollowed) {
  // A short write continued with more bytes than it first asked for: the
  // ordered extent past the first ask is the call's (its file entry's range
  // grew with it), and its failure a hole in what was acknowledged.
  const Who A{10, 11, "qemu"}, K{2, 2, "kworker"};
  TL t("x", false, "6.2.0");
  t.at(0).ev(A, EventType::DioBegin, DioBegin{.pos = 0, .count = 4096, .write = true}, 300);
  t.at(10).ev(A, EventType::DioEnd, DioEnd{.pos = 2048, .ret = 2048}, 300);
  t.at(20).ev(A, EventType::DioBegin, DioBegin{.pos = 2048, .count = 8192, .done_before = 2048, .write = true}, 300);
  t.at(30).ev(A, EventType::OeAdd, Ordered{.file_offset = 4096, .len = 6144, .flags = oef::DIRECT}, 300);
  t.at(40).ev(A, EventType::DioEnd, DioEnd{.pos = 10240, .ret = 10240}, 300);
  t.at(50).ev(K, EventType::OeRemove, Ordered{.file_offset = 4096, .len = 6144, .flags = oef::DIRECT | oef::IOERR}, 300);
  auto f = run(t.events(), config_for("6.2.0"));
  auto h = of(f, "dio-short-write", "acknowledged-hole");
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0]->range, (std::pair<uint64_t, uint64_t>{4096, 10240}));
}

#include <random>

#include "bdt/event_fields.h"
#include "detectors/common.h"
#include "trace_samples.h"

TEST(IntervalSet, MatchesABitmap) {
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    det::IntervalSet s;
    std::vector<bool> bits(256, false);
    for (int op = 0; op < 40; ++op) {
      uint64_t a = rng() % 256, b = rng() % 256;
      if (a > b) std::swap(a, b);
      bool add = rng() % 2;
      if (add) s.add(a, b);
      else s.subtract(a, b);
      for (uint64_t i = a; i < b; ++i) bits[i] = add;
      // compare
      std::vector<bool> got(256, false);
      uint64_t prev_end = 0;
      bool first = true;
      for (auto [x, y] : s.items()) {
        ASSERT_LT(x, y);
        if (!first) {
          ASSERT_LT(prev_end, x);  // disjoint, sorted, not adjacent
        }
        first = false;
        prev_end = y;
        for (uint64_t i = x; i < y; ++i) got[i] = true;
      }
      ASSERT_EQ(got, bits) << "round " << round << " op " << op;
    }
  }
}

// An event of this type and time by thread `tid` on inode `ino` (the DioRequests tests).
static Event dio_event(EventType t, uint64_t ts, uint32_t tid, uint64_t ino, Payload p) {
  Event e = testing_samples::base_event(t, ts);
  e.tid = tid;
  e.ino = ino;
  e.body = p;
  return e;
}

// DioRequests keeps the storage of ended requests for the next ones (begin()
// resets a reused request's evidence and sets every other field): a request
// begun in reused storage equals, field by field and evidence included, the
// same request begun in a table that never ended one.
TEST(DioRequests, ReusedNodeStartsFresh) {
  using Req = det::DioRequests::Req;
  static_assert(fields::detail::aggregate_members<Req>() == 8,
                "a member was added to DioRequests::Req: compare it here and set it in begin()");
  const auto ev = dio_event;
  // What the storage held: an asynchronous write continued past done_before,
  // its evidence full and dropping.
  det::DioRequests a(64);
  Req* old = &a.begin(ev(EventType::DioBegin, 100, 7, 300,
                         DioBegin{.pos = 8192, .count = 4096, .done_before = 4096,
                                  .write = true, .aio = true}));
  for (uint64_t i = 0; i < 20; ++i)
    old->ev.push(ev(EventType::EmAdd, 101 + i, 7, 300, EmAdd{.start = i, .len = 4096}));
  ASSERT_GT(old->ev.dropped(), 0u);
  {
    auto ended = a.end(ev(EventType::DioEnd, 200, 8, 300, DioEnd{.pos = 8192, .ret = 4096}));
    ASSERT_TRUE(ended);
  }  // its storage goes back to the table's spares
  // The next request: a synchronous read of another file by another thread.
  const Event next = ev(EventType::DioBegin, 300, 9, 400, DioBegin{.pos = 0, .count = 512});
  const Req& reused = a.begin(next);
  ASSERT_EQ(&reused, old) << "the ended request's storage was not reused";

  det::DioRequests b(64);  // the same ids, nothing ended: fresh storage
  b.begin(ev(EventType::DioBegin, 100, 11, 500, DioBegin{.pos = 0, .count = 4096, .aio = true}));
  const Req& fresh = b.begin(next);

  EXPECT_EQ(reused.id, fresh.id);
  EXPECT_TRUE(testing_samples::same_event(reused.begin, fresh.begin));
  EXPECT_EQ(reused.first_ts, fresh.first_ts);
  EXPECT_EQ(reused.start, fresh.start);
  EXPECT_EQ(reused.write, fresh.write);
  EXPECT_EQ(reused.aio, fresh.aio);
  EXPECT_EQ(reused.ev.dropped(), fresh.ev.dropped());
  ASSERT_EQ(reused.ev.events().size(), fresh.ev.events().size());
  for (size_t i = 0; i < fresh.ev.events().size(); ++i)
    EXPECT_TRUE(testing_samples::same_event(reused.ev.events()[i], fresh.ev.events()[i]));
  EXPECT_EQ(reused.file, fresh.file);
  // and the table follows it: its dio_end ends it
  EXPECT_TRUE(a.end(ev(EventType::DioEnd, 310, 9, 400, DioEnd{.pos = 0, .ret = 512})));
}

// A request in flight while many times the table's window of later ones
// begin and end (a stuck request among busy ones: ids are kept in a ring by
// id, the older ones outside it) stays the oldest open one, is found by id,
// and its dio_end still ends it.
TEST(DioRequests, ARequestOutlivesThousandsOfLaterOnes) {
  const auto ev = dio_event;
  det::DioRequests t(64);
  const auto& stuck = t.begin(ev(EventType::DioBegin, 1, 7, 300, DioBegin{.pos = 0, .count = 4096}));
  const uint64_t id = stuck.id;
  const size_t later = 3 * det::DioRequests::Table::window() + 7;
  for (uint64_t i = 0; i < later; ++i) {
    const uint64_t pos = (1 + i % 64) * 4096, ino = 400 + i % 7;
    t.begin(ev(EventType::DioBegin, 10 + 2 * i, 8, ino, DioBegin{.pos = pos, .count = 4096, .aio = true}));
    if (i % 300 != 0) {  // a few stay in flight too
      ASSERT_TRUE(t.end(ev(EventType::DioEnd, 11 + 2 * i, 9, ino, DioEnd{.pos = pos + 4096, .ret = 4096})));
    }
  }
  ASSERT_EQ(t.find(id), &stuck);
  ASSERT_NE(t.open().begin(), t.open().end());
  EXPECT_EQ(&*t.open().begin(), &stuck);
  uint64_t prev = 0;
  size_t n = 0;
  for (const auto& r : t.open()) {  // in begin order
    EXPECT_GT(r.id, prev);
    prev = r.id;
    ++n;
  }
  EXPECT_EQ(n, 1 + (later + 299) / 300);
  EXPECT_EQ(t.size(), n);
  auto ended = t.end(ev(EventType::DioEnd, 1'000'000, 7, 300, DioEnd{.pos = 4096, .ret = 4096}));
  ASSERT_TRUE(ended);
  EXPECT_EQ(ended->id, id);
  EXPECT_EQ(t.find(id), nullptr);
}

// Issue: a failed ordered extent whose removal the trace never saw is judged
// at the end of the trace, and the finding says so.
TEST(DioShortWrite, JudgedWhenTheTraceEnds) {
  auto all = all_cases();
  auto& t = find_case(all, "dio_short_write_trace_ended_6.2");
  auto f = run(t.events(), config_for(t.kernel()));
  auto h = of(f, "dio-short-write", "acknowledged-hole");
  ASSERT_EQ(h.size(), 1u);
  EXPECT_TRUE(h[0]->trace_ended);
  EXPECT_EQ(h[0]->range, (std::pair<uint64_t, uint64_t>{0, 65536}));
  EXPECT_NE(h[0]->explanation.find("trace ended"), std::string::npos);
  // a hole decided from a removal seen in the trace is not marked
  auto& s = find_case(all, "dio_short_write_6.2");
  auto g = run(s.events(), config_for(s.kernel()));
  auto h2 = of(g, "dio-short-write", "acknowledged-hole");
  ASSERT_EQ(h2.size(), 1u);
  EXPECT_FALSE(h2[0]->trace_ended);
}

// Exact fallbacks: one finding per (process, file), ranges and writes counted,
// the reason, the threads; gathered for gather_ns, later ones not reported.
TEST(DioBufferedFallback, ExactOncePerProcessAndFile) {
  auto all = all_cases();
  auto& t = find_case(all, "dio_buffered_fallback_writer_6.18");
  auto f = run(t.events(), config_for(t.kernel()));
  auto x = of(f, "dio-buffered-fallback", "buffered-fallback");
  ASSERT_EQ(x.size(), 1u);
  const Finding& g = *x[0];
  EXPECT_EQ(g.pid, 7400u);
  EXPECT_EQ(g.ino, 700u);
  EXPECT_EQ(g.level, Level::Hazard);
  EXPECT_EQ(g.severity, Severity::Info);
  // the first three writes (gathered for 5 s); those at 6 s and 9 s are not reported
  EXPECT_NE(g.message.find("3 write(s), 20480 bytes"), std::string::npos) << g.message;
  EXPECT_NE(g.message.find("[0, 16384), [65536, 69632)"), std::string::npos) << g.message;
  EXPECT_NE(g.message.find("the file has data checksums"), std::string::npos);
  EXPECT_EQ(g.range, (std::pair<uint64_t, uint64_t>{0, 69632}));
  ASSERT_EQ(g.actors.size(), 2u);  // both threads
  EXPECT_EQ(g.actors[1].tid, 7402u);
  EXPECT_EQ(g.evidence.size(), 3u);
  EXPECT_FALSE(g.trace_ended);
}

TEST(DioBufferedFallback, ReasonsAndTraceEnd) {
  auto all = all_cases();
  auto& t = find_case(all, "dio_buffered_fallback_io_uring_6.18");
  auto f = run(t.events(), config_for(t.kernel()));
  auto x = of(f, "dio-buffered-fallback", "buffered-fallback");
  ASSERT_EQ(x.size(), 3u);
  std::map<uint32_t, const Finding*> by_pid;
  for (auto* p : x) by_pid[p->pid] = p;
  ASSERT_TRUE(by_pid.count(7100) && by_pid.count(7500) && by_pid.count(7600));
  EXPECT_EQ(by_pid[7100]->tid, 7133u);  // the io-wq worker that wrote
  EXPECT_NE(by_pid[7100]->explanation.find("io_uring"), std::string::npos);
  EXPECT_NE(by_pid[7500]->message.find("not aligned"), std::string::npos);
  EXPECT_TRUE(by_pid[7600]->trace_ended);
  EXPECT_NE(by_pid[7600]->explanation.find("requested size"), std::string::npos);
  EXPECT_FALSE(by_pid[7100]->trace_ended);
}

// Where a fallback hook attached, the read-based inference is off: it cannot
// tell more than the exact events, and would repeat them.
TEST(DioBufferedFallback, NoInferenceWithExactHooks) {
  auto all = all_cases();
  auto& t = find_case(all, "dio_buffered_fallback_6.18");
  auto cfg = config_for(t.kernel());
  EXPECT_EQ(run(t.events(), cfg).size(), 1u);
  cfg.fallback_events = true;
  EXPECT_TRUE(run(t.events(), cfg).empty());
  // the hooks that make it exact
  DetectorConfig c;
  apply_hooks(c, [](std::string_view h) { return h == "btrfs_direct_write()"; });
  EXPECT_TRUE(c.fallback_events);
  apply_hooks(c, [](std::string_view h) { return h == "iomap_dio_rw_begin"; });
  EXPECT_FALSE(c.fallback_events);
}

// ---- invariants: the details a user acts on ---------------------------------
TEST(Invariants, UnexpectedErrnoNamesTheRuleAndKeepsTheOrigin) {
  auto all = all_cases();
  auto& t = find_case(all, "invariant_unexpected_errno");
  auto f = run(t.events(), config_for(t.kernel()));
  auto x = of(f, "dio-unexpected-errno", "unexpected-errno");
  ASSERT_EQ(x.size(), 3u);
  const Finding& g = *x[0];
  EXPECT_EQ(g.level, Level::Symptom);
  EXPECT_EQ(g.severity, Severity::Critical);
  EXPECT_EQ(g.tid, 8101u);
  EXPECT_EQ(g.range, (std::pair<uint64_t, uint64_t>{0, 4096}));
  EXPECT_NE(g.message.find("EUCLEAN"), std::string::npos) << g.message;
  EXPECT_NE(g.message.find("rule"), std::string::npos);
  EXPECT_NE(g.explanation.find("btrfs-dio-trace dump"), std::string::npos);
  // the failing get_extent (whose stack a function hook captures) is evidence
  bool ge = false;
  for (auto& e : g.evidence) ge = ge || e.type == EventType::GetExtent;
  EXPECT_TRUE(ge);
  EXPECT_NE(x[1]->message.find("ENOENT"), std::string::npos);
  EXPECT_NE(x[2]->message.find("ESTALE"), std::string::npos);
  EXPECT_NE(x[2]->message.find("direct write"), std::string::npos);
  auto& r = find_case(all, "invariant_unexpected_errno_write_errno_on_read");
  auto h = run(r.events(), config_for(r.kernel()));
  ASSERT_EQ(h.size(), 1u);
  EXPECT_NE(h[0].explanation.find("other direction only"), std::string::npos);
}

TEST(Invariants, AckedUnbackedIsExact) {
  auto all = all_cases();
  auto& t = find_case(all, "invariant_acked_unbacked");
  auto f = run(t.events(), config_for(t.kernel()));
  ASSERT_EQ(f.size(), 1u);  // not a partial write: dio-short-write stays silent
  EXPECT_EQ(f[0].detector, "dio-acked-unbacked");
  EXPECT_EQ(f[0].range, (std::pair<uint64_t, uint64_t>{0, 65536}));
  EXPECT_NE(f[0].message.find("65536 byte(s)"), std::string::npos) << f[0].message;
}

TEST(Invariants, StuckSaysWhyItIsNotASlowDisk) {
  auto all = all_cases();
  auto& t = find_case(all, "invariant_stuck_request");
  auto f = run(t.events(), config_for(t.kernel()));
  auto x = of(f, "dio-stuck", "stuck-request");
  ASSERT_EQ(x.size(), 1u);
  EXPECT_EQ(x[0]->tid, 8101u);
  // how many: one request a second from 1 s, reported at 31 s (30 s threshold)
  EXPECT_NE(x[0]->message.find("while at least 30 DIO requests on the same filesystem that began "
                               "after it completed"),
            std::string::npos)
      << x[0]->message;
  bool other = false;
  for (auto& a : x[0]->actors) other = other || a.role == "completed meanwhile";
  EXPECT_TRUE(other);
  // records lost while it was open: its end may be among them, not judged
  Engine eng(config_for(t.kernel()));
  Findings out;
  eng.feed(t.events()[0], out);
  eng.lost(3);
  for (size_t i = 1; i < t.events().size(); ++i) eng.feed(t.events()[i], out);
  eng.finish(t.events().back().ts_ns, out);
  EXPECT_TRUE(out.empty());
}

// A stuck ordered extent's count of later ones is said as a lower bound: findings
// only, it is of the removals that were emitted (the kernel counts none per
// filesystem), usually the one that revealed it.
TEST(Invariants, StuckExtentCountIsALowerBound) {
  auto all = all_cases();
  auto& t = find_case(all, "invariant_stuck_ordered_extent");
  auto f = run(t.events(), config_for(t.kernel()));  // (x points into it)
  auto x = of(f, "dio-stuck", "stuck-ordered-extent");
  ASSERT_EQ(x.size(), 1u);
  EXPECT_NE(x[0]->message.find("while at least 30 ordered extents on the same filesystem added after "
                               "it did"),
            std::string::npos)
      << x[0]->message;
}

// The count of later completions is a lower bound once the detector's ring
// of begin times per filesystem (256) has overflowed; earlier ones and those
// that began before the stuck request are not counted.
TEST(Invariants, StuckCountsLaterCompletions) {
  const Who A{8100, 8101, "db"}, B{8100, 8102, "db"};
  for (uint64_t n : {3ull, 300ull}) {
    TL t("stuck_count", false, "6.12.0");
    t.at(0).ev(B, EventType::DioBegin, DioBegin{.pos = 0, .count = 4096}, 801);  // began before
    t.at(1 * kMs).ev(A, EventType::DioBegin, DioBegin{.pos = 0, .count = 4096}, 800);
    t.at(2 * kMs).ev(B, EventType::DioEnd, DioEnd{.pos = 4096, .ret = 4096}, 801);
    for (uint64_t k = 0; k < n; ++k) {
      t.at(kSec + k * 10 * kMs).ev(B, EventType::DioBegin, DioBegin{.pos = 0, .count = 4096}, 801);
      t.at(kSec + k * 10 * kMs + kMs).ev(B, EventType::DioEnd, DioEnd{.pos = 4096, .ret = 4096}, 801);
    }
    t.at(40 * kSec).ev(B, EventType::DioBegin, DioBegin{.pos = 0, .count = 4096}, 802);
    auto f = run(t.events(), config_for(t.kernel()));
    auto x = of(f, "dio-stuck", "stuck-request");
    ASSERT_EQ(x.size(), 1u) << n;
    auto want = n == 3 ? "while at least 3 DIO requests" : "while at least 256 DIO requests";
    EXPECT_NE(x[0]->message.find(want), std::string::npos) << x[0]->message;
  }
}

// Findings only, clean completions make no record: the kernel counts them and
// the dio_end at which the stall trigger fired carries the count for the
// stalled request (bpf/lazy.bpf.h stall_scan). The finding says the same count
// as with every record made; a count for another request, or another
// filesystem, is not taken, and a smaller one does not lower what was seen.
TEST(Invariants, StuckCountIsTheSameFindingsOnly) {
  auto all = all_cases();
  auto& every = find_case(all, "invariant_stuck_request");  // the --events view
  auto says = [](const Findings& f) {
    auto x = of(f, "dio-stuck", "stuck-request");
    return x.size() == 1 ? x[0]->message : std::string("no single finding");
  };
  const std::string thirty = "while at least 30 DIO requests on the same filesystem that began "
                             "after it completed";
  EXPECT_NE(says(run(every.events(), config_for(every.kernel()))).find(thirty), std::string::npos);

  // The default mode's view of the same I/O: the stuck read, emitted by the
  // trigger 31 s late (so the detectors get it stamped as the record before
  // it, another filesystem's at 20 s: Engine::feed), and the completion that
  // revealed it, carrying what the kernel counted: requests 2..31 completed
  // since its scan at 1 s saw the read (30).
  const Who A{8100, 8101, "db"}, B{8200, 8201, "db"}, C{8300, 8301, "other"};
  auto lazy = [&](uint64_t later, uint32_t tid, uint64_t ino, Fsid fs) {
    TL t("stuck_lazy", false, "6.12.0");
    t.at(20 * kSec).ev(C, EventType::DioBegin, DioBegin{.pos = 0, .count = 4096}, 900, kDev, fs_b());
    t.at(20 * kSec + 1000).ev(C, EventType::DioEnd, DioEnd{.pos = 4096, .ret = 4096}, 900, kDev, fs_b());
    t.at(0).ev(A, EventType::DioBegin, DioBegin{.pos = 0, .count = 4096}, 800);
    t.at(31 * kSec).ev(B, EventType::DioBegin, DioBegin{.pos = 31 * 4096, .count = 4096}, 801);
    t.at(31 * kSec + 100'000)
        .ev(B, EventType::DioEnd,
            DioEnd{.pos = 32 * 4096, .ret = 4096, .later_done = later, .stalled_begin_ns = kT0,
                   .stalled_tid = tid, .stalled_ino = ino},
            801, kDev, fs);
    t.at(52 * kSec).ev(B, EventType::DioBegin, DioBegin{.pos = 0, .count = 4096}, 802);
    return says(run(t.events(), config_for(t.kernel())));
  };
  EXPECT_NE(lazy(30, A.tid, 800, fs_a()).find(thirty), std::string::npos)
      << lazy(30, A.tid, 800, fs_a());
  // how long it has been open: from the kernel's stamp of its begin (0 s), not the late
  // record's (20 s); the finding is made at the completion that revealed it (31 s), as with
  // every record made, not a threshold after the late record (50 s, said at 52 s)
  EXPECT_NE(lazy(30, A.tid, 800, fs_a()).find("has not completed for 31 s while"), std::string::npos)
      << lazy(30, A.tid, 800, fs_a());
  const std::string one = "while at least 1 DIO request on the same filesystem";
  // near-misses: the count of another thread's stalled request; of another
  // inode's; none (the filesystems beyond the kernel's 16 counted apart)
  EXPECT_NE(lazy(30, B.tid, 800, fs_a()).find(one), std::string::npos) << lazy(30, B.tid, 800, fs_a());
  EXPECT_NE(lazy(30, A.tid, 801, fs_a()).find(one), std::string::npos) << lazy(30, A.tid, 801, fs_a());
  EXPECT_NE(lazy(0, A.tid, 800, fs_a()).find(one), std::string::npos) << lazy(0, A.tid, 800, fs_a());
  {
    // another filesystem's completion carries it: not this request's (and that
    // completion is not one of this filesystem's: nothing to report)
    auto m = lazy(30, A.tid, 800, fs_b());
    EXPECT_EQ(m.find("30 DIO"), std::string::npos) << m;
  }
  // every record made, and a (smaller) kernel count too: the larger is said
  auto evs = every.events();
  for (auto& e : evs)
    if (e.type == EventType::DioEnd && e.ts_ns == kT0 + 31 * kSec + 100'000) {
      auto d = *e.as<DioEnd>();
      d.later_done = 2;
      d.stalled_begin_ns = kT0;
      d.stalled_tid = 8101;
      d.stalled_ino = 800;  // the stuck read (invariant_stuck_request)
      e.body = d;
    }
  EXPECT_NE(says(run(evs, config_for(every.kernel()))).find(thirty), std::string::npos);
}

TEST(Invariants, CsumAfterDirectWriteNamesTheWriter) {
  auto all = all_cases();
  auto& t = find_case(all, "invariant_csum_after_direct_write_6.1");
  auto f = run(t.events(), config_for(t.kernel()));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].range, (std::pair<uint64_t, uint64_t>{8192, 12288}));
  EXPECT_EQ(f[0].pid, 8100u);
  EXPECT_NE(f[0].explanation.find("Check the device first"), std::string::npos);
}

// Every detector in the one list doctor, the engine and the docs use.
TEST(Invariants, Registered) {
  auto ids = detector_ids();
  for (auto id : {"dio-unexpected-errno", "dio-acked-unbacked", "dio-stuck",
                  "dio-csum-after-direct-write"})
    EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << id;
  auto d = make_detectors(DetectorConfig{});
  ASSERT_EQ(d.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(d[i]->id(), ids[i]);
}
