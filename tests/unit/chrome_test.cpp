// Timeline export (src/sinks/chrome_sink.cpp): the output is valid Chrome
// trace-event JSON, every event has the keys the format requires, spans close
// and nest, threads and filesystems are named, and requests are matched to
// their completions.
#include <gtest/gtest.h>
#include <stdio.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/event_json.h"
#include "detector_timeline.h"
#include "sinks/chrome.h"

using namespace bdt;
using namespace bdt::test;
using json = nlohmann::json;

namespace {

struct Mem {
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  ~Mem() { std::free(buf); }
  std::string str() {
    std::fflush(f);
    return std::string(buf, len);
  }
};

json export_timeline(const std::vector<Event>& evs, const Findings& fs, int64_t off = 0) {
  Mem m;
  TraceHeader h;
  h.mono_to_realtime_ns = off;
  {
    auto sink = make_chrome_sink(m.f, h);
    for (const auto& e : evs) sink->event(e);
    for (const auto& f : fs) sink->finding(f);
    sink->summary(Summary{});
  }
  std::fclose(m.f);
  m.f = nullptr;
  std::string s(m.buf, m.len);
  auto j = json::parse(s, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not valid JSON:\n" << s.substr(0, 2000);
  return j;
}

// Checks the trace-event format's requirements; returns the events.
const json& check_format(const json& doc) {
  EXPECT_TRUE(doc.is_object());
  EXPECT_EQ(doc.value("displayTimeUnit", ""), "ns");
  const json& evs = doc.at("traceEvents");
  EXPECT_TRUE(evs.is_array());
  std::set<std::pair<uint64_t, uint64_t>> named_threads;
  std::set<uint64_t> named_pids;
  for (const auto& e : evs)
    if (e.at("ph") == "M") {
      if (e.at("name") == "process_name") named_pids.insert(e.at("pid").get<uint64_t>());
      if (e.at("name") == "thread_name")
        named_threads.insert({e.at("pid").get<uint64_t>(), e.at("tid").get<uint64_t>()});
      EXPECT_TRUE(e.at("args").at("name").is_string());
    }
  std::map<std::tuple<uint64_t, std::string, std::string>, std::vector<double>> open_async;
  std::map<std::pair<uint64_t, uint64_t>, std::vector<std::pair<double, double>>> x_by_thread;
  for (const auto& e : evs) {
    for (const char* k : {"name", "ph", "ts", "pid", "tid"})
      EXPECT_TRUE(e.contains(k)) << "missing " << k << ": " << e.dump();
    EXPECT_TRUE(e.at("name").is_string());
    EXPECT_TRUE(e.at("ts").is_number());
    EXPECT_GE(e.at("ts").get<double>(), 0);
    EXPECT_TRUE(e.at("pid").is_number_unsigned());
    EXPECT_TRUE(e.at("tid").is_number_unsigned());
    std::string ph = e.at("ph");
    EXPECT_TRUE(ph == "M" || ph == "X" || ph == "i" || ph == "b" || ph == "e") << ph;
    uint64_t pid = e.at("pid"), tid = e.at("tid");
    if (ph != "M") {
      EXPECT_TRUE(named_pids.count(pid)) << "process not named: " << e.dump();
      if (ph == "X" || ph == "i") {
        EXPECT_TRUE(named_threads.count({pid, tid})) << "thread not named: " << e.dump();
      }
    }
    if (ph == "X") {
      EXPECT_TRUE(e.contains("dur") && e.at("dur").is_number()) << e.dump();
      EXPECT_GE(e.at("dur").get<double>(), 0);
      double ts = e.at("ts");
      x_by_thread[{pid, tid}].push_back({ts, ts + e.at("dur").get<double>()});
    }
    if (ph == "i") {
      EXPECT_TRUE(e.contains("s"));
    }
    if (ph == "b" || ph == "e") {
      EXPECT_TRUE(e.contains("id") && e.contains("cat")) << e.dump();
      auto key = std::make_tuple(pid, e.at("cat").get<std::string>(), e.at("id").get<std::string>());
      if (ph == "b") {
        open_async[key].push_back(e.at("ts"));
      } else {
        auto it = open_async.find(key);
        EXPECT_TRUE(it != open_async.end() && !it->second.empty()) << "e without b: " << e.dump();
        if (it == open_async.end() || it->second.empty()) continue;
        EXPECT_GE(e.at("ts").get<double>(), it->second.back());
        it->second.pop_back();
      }
    }
  }
  for (const auto& [k, v] : open_async) EXPECT_TRUE(v.empty()) << "async span never ended";
  // Complete events on one thread nest (or are disjoint): a viewer rejects overlaps.
  for (auto& [thr, spans] : x_by_thread) {
    std::sort(spans.begin(), spans.end(),
              [](auto& a, auto& b) { return a.first < b.first || (a.first == b.first && a.second > b.second); });
    std::vector<double> stack;
    for (auto [s, e] : spans) {
      while (!stack.empty() && stack.back() <= s) stack.pop_back();
      if (!stack.empty()) {
        EXPECT_LE(e, stack.back()) << "overlapping spans on tid " << thr.second;
      }
      stack.push_back(e);
    }
  }
  return evs;
}

std::vector<json> named(const json& evs, const std::string& ph, const std::string& name_prefix) {
  std::vector<json> r;
  for (const auto& e : evs)
    if (e.at("ph") == ph && e.at("name").get<std::string>().rfind(name_prefix, 0) == 0) r.push_back(e);
  return r;
}

const Who kWriter{812, 815, "qemu-kvm"}, kWriter2{812, 816, "qemu-kvm"}, kWorker{97, 97, "kworker/u8:3"},
    kWorker2{98, 98, "kworker/u8:4"},
    kBalance{900, 900, "btrfs"}, kSend{901, 901, "btrfs"};

TL mixed() {
  TL t("mixed", false, "6.18.0");
  DioBegin w;
  w.pos = 0, w.count = 65536, w.write = true;
  t.at(1000).ev(kWriter, EventType::DioBegin, w, 257);
  t.at(2000).ev(kWriter, EventType::OeAdd, Ordered{0, 65536, oef::DIRECT, true}, 257);
  DioBegin a;
  a.pos = 1 << 20, a.count = 4096, a.write = true, a.aio = true;
  t.at(2500).ev(kWriter2, EventType::DioBegin, a, 257);
  t.at(3000).ev(kWriter, EventType::EmExist, EmExist{0, 8192, 4096, 4096, 4096, 4096}, 257);
  t.at(4000).ev(kWorker, EventType::OeSplit, Ordered{0, 4096, oef::DIRECT, true}, 257);
  t.at(5000).ev(kWorker, EventType::OeFinish, Ordered{0, 65536, oef::DIRECT | oef::IO_DONE, true}, 257);
  // aio completion in the worker: ki_pos = pos + ret.
  DioEnd ae;
  ae.pos = (1 << 20) + 4096, ae.ret = 4096;
  t.at(5500).ev(kWorker, EventType::DioEnd, ae, 257);
  t.at(6000).ev(kWorker, EventType::OeRemove, Ordered{0, 4096, oef::DIRECT, true}, 257);
  t.at(6500).ev(kWorker, EventType::OeRemove, Ordered{4096, 65536 - 4096, oef::DIRECT, true}, 257);
  DioEnd we;
  we.pos = 65536, we.ret = 65536;
  t.at(7000).ev(kWriter, EventType::DioEnd, we, 257);
  t.at(8000).ev(kBalance, EventType::IoctlBegin, Ioctl{3, IoctlCmd::BalanceV2, 0});
  t.at(8100).ev(kBalance, EventType::RelocBegin, Reloc{1 << 30, 0});
  t.at(8200).ev(kSend, EventType::IoctlBegin, Ioctl{4, IoctlCmd::Send, 0}, 256, 0x2e);
  t.at(8300).ev(kSend, EventType::IoctlEnd, Ioctl{4, IoctlCmd::Send, -11}, 256, 0x2e);
  t.at(9000).ev(kBalance, EventType::RelocEnd, Reloc{1 << 30, 0});
  t.at(9100).ev(kBalance, EventType::IoctlEnd, Ioctl{3, IoctlCmd::BalanceV2, 0});
  // A read that never ends (trace cut): closed as unfinished.
  DioBegin r;
  r.pos = 0, r.count = 4096;
  t.at(9500).ev(kWriter2, EventType::DioBegin, r, 258);
  t.at(9600).ev(kWorker, EventType::OeAdd, Ordered{1 << 20, 4096, oef::DIRECT, true}, 258);
  return t;
}

}  // namespace

TEST(Chrome, MixedTimelineSpansAndTracks) {
  auto t = mixed();
  Finding f;
  f.detector = "send-vs-relocation", f.kind = "overlap", f.ts_ns = kT0 + 8300, f.pid = kSend.pid,
  f.tid = kSend.tid, f.comm = "btrfs", f.message = "send ran during a balance";
  auto doc = export_timeline(t.events(), {f});
  const auto& evs = check_format(doc);

  auto w = named(evs, "X", "dio write");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].at("tid"), 815);
  EXPECT_DOUBLE_EQ(w[0].at("ts").get<double>(), (kT0 + 1000) / 1000.0);
  EXPECT_DOUBLE_EQ(w[0].at("dur").get<double>(), 6.0);
  EXPECT_EQ(w[0]["args"]["end"]["ret"], 65536);

  auto aw = named(evs, "b", "adio write");
  ASSERT_EQ(aw.size(), 1u);
  EXPECT_EQ(aw[0].at("tid"), 816) << "async span on the submitter";
  EXPECT_EQ(aw[0]["args"]["end"]["tid"], 97) << "matched to the worker's completion";

  auto ur = named(evs, "X", "dio read");
  ASSERT_EQ(ur.size(), 1u);
  EXPECT_TRUE(ur[0]["args"].value("unfinished", false));

  // Ordered extent [0, 64K) split and removed in two pieces, on the fs track.
  auto oe = named(evs, "b", "ordered extent ino 257");
  ASSERT_EQ(oe.size(), 2u);
  for (auto& o : oe) {
    EXPECT_GE(o.at("pid").get<uint64_t>(), 1'000'000'000u);
    EXPECT_TRUE(o["args"].contains("end"));
  }
  auto oe2 = named(evs, "b", "ordered extent ino 258");
  ASSERT_EQ(oe2.size(), 1u);
  EXPECT_TRUE(oe2[0]["args"].value("unfinished", false));

  EXPECT_EQ(named(evs, "b", "balance_v2").size(), 1u);
  EXPECT_EQ(named(evs, "b", "send").size(), 1u);
  EXPECT_EQ(named(evs, "b", "relocate block group").size(), 1u);
  EXPECT_EQ(named(evs, "X", "ioctl send").size(), 1u);

  auto ex = named(evs, "i", "em_exist");
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0]["args"]["e_len"], 8192);

  auto fi = named(evs, "i", "finding: send-vs-relocation/overlap");
  ASSERT_EQ(fi.size(), 1u);
  EXPECT_EQ(fi[0]["args"]["message"], "send ran during a balance");
  EXPECT_EQ(fi[0]["tid"], 901);

  // Names: threads by comm, the filesystem's pseudo-process and its worker tracks.
  std::set<std::string> names;
  for (auto& e : evs)
    if (e["ph"] == "M") names.insert(e["args"]["name"].get<std::string>());
  EXPECT_TRUE(names.count("qemu-kvm"));
  EXPECT_TRUE(names.count("kworker/u8:3"));
  EXPECT_TRUE(names.count("btrfs " + fs_a().str()));
  EXPECT_TRUE(names.count("ordered extents"));
  EXPECT_TRUE(names.count("send / balance / relocation"));
}

TEST(Chrome, WallClockMicroseconds) {
  auto t = mixed();
  const int64_t off = 1'763'776'000'123'456'789;
  auto doc = export_timeline(t.events(), {}, off);
  const auto& evs = check_format(doc);
  auto w = named(evs, "X", "dio write");
  ASSERT_EQ(w.size(), 1u);
  // Exact in the text: parse the raw number.
  EXPECT_NEAR(w[0]["ts"].get<double>(), (double(kT0 + 1000) + double(off)) / 1000.0, 1.0);
  EXPECT_EQ(doc["otherData"]["clock"], "realtime");
  EXPECT_EQ(doc["otherData"]["mono_to_realtime_ns"], off);
}

TEST(Chrome, EmptyTraceIsValid) {
  auto doc = export_timeline({}, {});
  check_format(doc);
  EXPECT_TRUE(doc["traceEvents"].empty());
}

// Every seed and benign timeline, with the findings the detectors compute:
// well-formed output, nothing left open.
TEST(Chrome, EverySeedTimeline) {
  for (const auto& tl : all_cases()) {
    SCOPED_TRACE(tl.name());
    auto fs = run(tl.events(), config_for(tl.kernel()));
    auto doc = export_timeline(tl.events(), fs);
    const auto& evs = check_format(doc);
    size_t findings = 0;
    for (auto& e : evs) findings += e["ph"] == "i" && e["cat"] == "finding";
    EXPECT_EQ(findings, fs.size());
    size_t dio_begins = 0, dio_spans = 0;
    for (auto& e : tl.events()) dio_begins += e.type == EventType::DioBegin;
    for (auto& e : evs) dio_spans += (e["ph"] == "X" || e["ph"] == "b") && e["cat"] == "dio";
    EXPECT_EQ(dio_spans, dio_begins) << "one span per DIO call";
  }
}

TEST(Chrome, ReadFindingLines) {
  char path[] = "/tmp/bdt-chrome-test-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  Finding f;
  f.detector = "dio-short-write", f.kind = "continued-write", f.ts_ns = 42, f.pid = 1, f.tid = 2;
  f.comm = "w", f.ino = 257, f.dev = 45, f.range = {{0, 4096}}, f.message = "m \"q\"";
  f.level = Level::Symptom, f.severity = Severity::Critical;
  std::string s = "{\"schema\":\"btrfs-dio-trace.events/1\"}\n{\"ts_ns\":1,\"type\":\"get_extent\",\"start\":0,\"len\":1}\n";
  append_finding_json(s, f);
  s += "\n";
  std::ofstream(path) << s;
  std::vector<Finding> got;
  EXPECT_EQ(read_finding_lines(path, [&](const Finding& g) { got.push_back(g); }), 1u);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].detector, f.detector);
  EXPECT_EQ(got[0].kind, f.kind);
  EXPECT_EQ(got[0].message, f.message);
  EXPECT_EQ(got[0].ts_ns, 42u);
  EXPECT_EQ(got[0].level, Level::Symptom);
  EXPECT_EQ(got[0].severity, Severity::Critical);
  EXPECT_EQ(got[0].range, f.range);
  EXPECT_EQ(got[0].ino, f.ino);
  unlink(path);
}

// Two async writes of one thread in flight, continued (done_before), completing
// out of order in other contexts; a sync end that cannot name the file.
TEST(Chrome, AsyncCompletionsMatchedByPosition) {
  TL t("aio", false, "6.18.0");
  DioBegin a;
  a.pos = 0, a.count = 8192, a.write = true, a.aio = true;
  t.at(100).ev(kWriter, EventType::DioBegin, a, 257);
  DioBegin b = a;
  b.pos = 65536, b.done_before = 4096;  // a continuation: ki_pos moves by ret - done_before
  t.at(200).ev(kWriter, EventType::DioBegin, b, 257);
  DioEnd eb;
  eb.pos = 65536 + 8192 - 4096, eb.ret = 8192;
  t.at(300).ev(kWorker, EventType::DioEnd, eb, 257);
  DioEnd ea;
  ea.pos = 8192, ea.ret = 8192;
  t.at(400).ev(kWorker2, EventType::DioEnd, ea, 257);
  DioBegin s;
  s.pos = 0, s.count = 4096;
  t.at(500).ev(kWriter2, EventType::DioBegin, s, 258);
  DioEnd se;
  se.ret = 4096;
  t.at(600).ev(kWriter2, EventType::DioEnd, se, 0);
  DioEnd stray;
  stray.pos = 1, stray.ret = 1;
  t.at(700).ev(kWorker, EventType::DioEnd, stray, 999);
  auto doc = export_timeline(t.events(), {});
  const auto& evs = check_format(doc);
  auto spans = named(evs, "b", "adio write");
  ASSERT_EQ(spans.size(), 2u);
  for (auto& sp : spans) {
    uint64_t pos = sp["args"]["begin"]["pos"];
    uint64_t end_ts = sp["args"]["end"]["ts_ns"];
    EXPECT_EQ(end_ts, kT0 + (pos == 0 ? 400 : 300)) << "request at " << pos;
  }
  auto sync = named(evs, "X", "dio read");
  ASSERT_EQ(sync.size(), 1u);
  EXPECT_FALSE(sync[0]["args"].value("unfinished", false));
  EXPECT_EQ(named(evs, "i", "dio_end (no matching dio_begin)").size(), 1u);
}
