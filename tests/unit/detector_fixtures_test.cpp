// The detector timelines as JSON-lines fixtures anyone can replay:
//   tests/fixtures/seeds/<name>.jsonl   + <name>.expect ("detector level kind" per line)
//   tests/fixtures/benign/<name>.jsonl  (must give no finding at all)
// ReplayAll reads every fixture through open_trace() and the Engine, exactly
// as `btrfs-dio-trace replay` does, with the kernel version from the header.
// Regenerate after changing detector_cases.cpp:
//   BDT_WRITE_FIXTURES=1 build/tests/unit_tests --gtest_filter='DetectorFixtures.*'
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "detectors/engine.h"
#include "core/event_json.h"
#include "replay/trace_reader.h"
#include "detector_timeline.h"

using namespace bdt;
using namespace bdt::test;
namespace fsys = std::filesystem;

namespace {
const fsys::path kDir = BDT_FIXTURES_DIR;

std::vector<std::string> read_expect(const fsys::path& p) {
  std::vector<std::string> v;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    v.push_back(line);
  }
  std::sort(v.begin(), v.end());
  return v;
}
}  // namespace

TEST(DetectorFixtures, Write) {
  if (!std::getenv("BDT_WRITE_FIXTURES")) GTEST_SKIP() << "set BDT_WRITE_FIXTURES=1 to regenerate";
  for (auto& t : all_cases()) {
    auto dir = kDir / (t.benign() ? "benign" : "seeds");
    fsys::create_directories(dir);
    std::ofstream out(dir / (t.name() + ".jsonl"));
    out << "{\"schema\":\"" << kEventSchema << "\"";
    if (!t.kernel().empty()) out << ",\"kernel\":\"" << t.kernel() << "\"";
    out << "}\n";
    std::string line;
    for (auto& e : t.events()) {
      line.clear();
      append_event_json(line, e);
      out << line << "\n";
    }
    if (!t.benign()) {
      auto want = t.expected();
      std::sort(want.begin(), want.end());
      std::ofstream ex(dir / (t.name() + ".expect"));
      ex << "# detector level kind, one line per expected finding (kernel "
         << (t.kernel().empty() ? "unknown" : t.kernel()) << ")\n";
      for (auto& w : want) ex << w << "\n";
    }
  }
}

TEST(DetectorFixtures, ReplayAll) {
  size_t n = 0;
  for (const char* sub : {"seeds", "benign"}) {
    if (!fsys::exists(kDir / sub)) continue;
    for (auto& ent : fsys::directory_iterator(kDir / sub)) {
      if (ent.path().extension() != ".jsonl") continue;
      SCOPED_TRACE(ent.path().string());
      ++n;
      auto rd = open_trace(ent.path().string());
      DetectorConfig cfg;
      cfg.kernel = rd->header().kernel;
      Engine eng(cfg);
      Findings out;
      Event e;
      uint64_t last = 0;
      while (rd->next(e)) {
        last = e.ts_ns;
        eng.feed(e, out);
      }
      eng.finish(last, out);
      EXPECT_EQ(rd->skipped_unknown(), 0u);
      std::vector<std::string> want;
      if (std::string(sub) == "seeds") {
        auto ex = ent.path();
        ex.replace_extension(".expect");
        ASSERT_TRUE(fsys::exists(ex)) << "missing " << ex;
        want = read_expect(ex);
        EXPECT_FALSE(want.empty());
      }
      EXPECT_EQ(summary(out), want);
    }
  }
  EXPECT_GE(n, 10u) << "fixtures missing under " << kDir;
}

// The fixtures on disk are the timelines in detector_cases.cpp.
TEST(DetectorFixtures, MatchTheCode) {
  for (auto& t : all_cases()) {
    auto p = kDir / (t.benign() ? "benign" : "seeds") / (t.name() + ".jsonl");
    SCOPED_TRACE(p.string());
    ASSERT_TRUE(fsys::exists(p)) << "regenerate with BDT_WRITE_FIXTURES=1";
    auto rd = open_trace(p.string());
    Event e;
    size_t i = 0;
    std::string a, b;
    while (rd->next(e)) {
      ASSERT_LT(i, t.events().size());
      a.clear();
      b.clear();
      append_event_json(a, e);
      append_event_json(b, t.events()[i]);
      EXPECT_EQ(a, b);
      ++i;
    }
    EXPECT_EQ(i, t.events().size());
  }
}

// The engine gives a detector only the event types of its events(): every
// fixture trace and every timeline, each with and without fallback events,
// gives the same findings (all of each finding's JSON) as with every detector
// fed every event.
TEST(DetectorFixtures, EventSetsChangeNoFinding) {
  auto run = [](const std::vector<Event>& evs, DetectorConfig cfg, bool every) {
    Engine eng(cfg, every);
    Findings out;
    uint64_t last = 0;
    for (const auto& e : evs) {
      last = e.ts_ns;
      eng.feed(e, out);
    }
    eng.finish(last, out);
    std::string s;
    for (const auto& f : out) {
      append_finding_json(s, f);
      s += '\n';
    }
    return std::pair{s, out.size()};
  };
  size_t traces = 0, findings = 0;
  auto check = [&](const std::string& name, const std::vector<Event>& evs, const KernelVersion& k) {
    SCOPED_TRACE(name);
    ++traces;
    for (bool fallback_events : {false, true}) {
      DetectorConfig cfg;
      cfg.kernel = k;
      cfg.fallback_events = fallback_events;
      auto masked = run(evs, cfg, false), every = run(evs, cfg, true);
      EXPECT_EQ(masked.first, every.first) << "fallback_events " << fallback_events;
      findings += every.second;
    }
  };
  for (auto& ent : fsys::recursive_directory_iterator(kDir)) {
    const auto ext = ent.path().extension();
    if (ext != ".jsonl" && ext != ".bdt") continue;
    std::vector<Event> evs;
    KernelVersion k;
    try {
      auto rd = open_trace(ent.path().string());
      k = rd->header().kernel;
      Event e;
      while (rd->next(e)) evs.push_back(e);
    } catch (const InputError&) {
      continue;  // the bad inputs: refused before any detector sees them
    }
    check(ent.path().string(), evs, k);
  }
  for (auto& t : all_cases()) check(t.name(), t.events(), config_for(t.kernel()).kernel);
  EXPECT_GE(traces, 100u);
  EXPECT_GE(findings, 100u);  // the traces do reach the detectors' findings
}
