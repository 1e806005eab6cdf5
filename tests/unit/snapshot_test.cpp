// Anomaly snapshots (src/sinks/snapshot.cpp): the ring keeps the newest
// events by age and count, snapshots are rate-limited per detector, capped in
// number and size, and a snapshot file replays to the same finding.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include <cstdlib>
#include <filesystem>

#include "replay/trace_reader.h"
#include "detector_timeline.h"
#include "sinks/chrome.h"
#include "sinks/snapshot.h"

using namespace bdt;
using namespace bdt::test;

namespace {

Event ev_at(uint64_t ts, uint64_t ino = 257) {
  Event e;
  e.ts_ns = ts;
  e.pid = e.tid = 7;
  e.set_comm("w");
  e.type = EventType::GetExtent;
  e.fs = fs_a();
  e.dev = kDev;
  e.ino = ino;
  e.body = GetExtent{Phase::Exit, ts, 4096, 0, 4096, 0, 0};
  return e;
}

struct TmpDir {
  std::string path;
  TmpDir() {
    char t[] = "/tmp/bdt-snapshot-test-XXXXXX";
    path = mkdtemp(t);
  }
  ~TmpDir() { std::filesystem::remove_all(path); }
  std::vector<std::string> files() const {
    std::vector<std::string> r;
    for (auto& d : std::filesystem::directory_iterator(path)) r.push_back(d.path().string());
    std::sort(r.begin(), r.end());
    return r;
  }
};

Finding finding_at(uint64_t ts, std::string det = "dio-short-write") {
  Finding f;
  f.detector = std::move(det);
  f.kind = "continued-write";
  f.ts_ns = ts;
  f.pid = f.tid = 7;
  f.comm = "w";
  f.message = "a message";
  return f;
}

}  // namespace

TEST(EventRing, KeepsTheLastSecondsInOrder) {
  EventRing r(5 * kSec, 1000);
  for (uint64_t s = 0; s < 20; ++s) r.push(ev_at(kT0 + s * kSec));
  // 19 s newest: events at >= 14 s stay.
  ASSERT_EQ(r.size(), 6u);
  for (size_t i = 0; i < r.size(); ++i) EXPECT_EQ(r.at(i).ts_ns, kT0 + (14 + i) * kSec);
  EXPECT_EQ(r.dropped_for_count(), 0u);
}

TEST(EventRing, CountCapDropsTheOldestAndStopsGrowing) {
  EventRing r(1000 * kSec, 3000);
  for (uint64_t i = 0; i < 10000; ++i) r.push(ev_at(kT0 + i));
  EXPECT_EQ(r.size(), 3000u);
  EXPECT_EQ(r.capacity(), 3000u);
  EXPECT_EQ(r.dropped_for_count(), 7000u);
  for (size_t i = 0; i < r.size(); ++i) ASSERT_EQ(r.at(i).ts_ns, kT0 + 7000 + i);
}

TEST(EventRing, GrowsAcrossAWrappedBuffer) {
  // Age-out moves the head, then growth must keep the order.
  EventRing r(10, 1 << 20);
  uint64_t t = 0;
  for (int i = 0; i < 1000; ++i) r.push(ev_at(t += 1));
  for (int i = 0; i < 5000; ++i) r.push(ev_at(t));  // same ts: none ages out
  ASSERT_EQ(r.size(), 5000u + 11u);
  for (size_t i = 1; i < r.size(); ++i) ASSERT_LE(r.at(i - 1).ts_ns, r.at(i).ts_ns);
}

TEST(Snapshotter, RateLimitPerDetectorAndFileCap) {
  TmpDir d;
  SnapshotOptions o;
  o.dir = d.path;
  o.seconds = 5;
  o.max_files = 3;
  Snapshotter s(o, TraceHeader{});
  using W = SnapshotResult::What;
  for (uint64_t i = 0; i < 100; ++i) s.on_event(ev_at(kT0 + i * 100 * kMs));
  EXPECT_EQ(s.on_finding(finding_at(kT0 + 9 * kSec)).what, W::Written);
  EXPECT_EQ(s.on_finding(finding_at(kT0 + 9 * kSec + 1)).what, W::RateLimited);
  EXPECT_EQ(s.on_finding(finding_at(kT0 + 18 * kSec)).what, W::RateLimited);  // < 10 s later
  EXPECT_EQ(s.on_finding(finding_at(kT0 + 9 * kSec, "em-merge-race")).what, W::Written);
  EXPECT_EQ(s.on_finding(finding_at(kT0 + 19 * kSec)).what, W::Written);
  EXPECT_EQ(s.on_finding(finding_at(kT0 + 40 * kSec, "stale-eb-reuse")).what, W::LimitReached);
  EXPECT_EQ(s.written(), 3u);
  auto files = d.files();
  ASSERT_EQ(files.size(), 3u);
  for (auto& f : files) EXPECT_NE(f.find("snapshot-mono"), std::string::npos) << f;
}

TEST(Snapshotter, FileHoldsTheLastSecondsAndTheFinding) {
  TmpDir d;
  SnapshotOptions o;
  o.dir = d.path;
  o.seconds = 2;
  TraceHeader h;
  h.mono_to_realtime_ns = 1'763'776'000'000'000'000;
  h.kernel = *KernelVersion::parse("6.18.0");
  Snapshotter s(o, h);
  // As in the pipeline: the finding comes with the newest event (9 s).
  for (uint64_t i = 0; i <= 90; ++i) s.on_event(ev_at(kT0 + i * 100 * kMs));
  auto r = s.on_finding(finding_at(kT0 + 9 * kSec));
  ASSERT_EQ(r.what, SnapshotResult::What::Written) << r.error;
  EXPECT_NE(r.path.find("snapshot-20251122T020329.000Z-dio-short-write-continued-write"), std::string::npos)
      << r.path;
  // [7 s, 9 s]: 21 events.
  EXPECT_EQ(r.events, 21u);
  auto rd = open_trace(r.path);
  EXPECT_EQ(rd->header().mono_to_realtime_ns, h.mono_to_realtime_ns);
  EXPECT_EQ(rd->header().kernel.release, "6.18.0");
  Event e;
  std::vector<uint64_t> ts;
  while (rd->next(e)) ts.push_back(e.ts_ns);
  ASSERT_EQ(ts.size(), 21u);
  EXPECT_EQ(ts.front(), kT0 + 7 * kSec);
  EXPECT_EQ(ts.back(), kT0 + 9 * kSec);
  EXPECT_EQ(rd->skipped_findings(), 1u);
  std::vector<Finding> fs;
  read_finding_lines(r.path, [&](const Finding& f) { fs.push_back(f); });
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].message, "a message");
  EXPECT_EQ(d.files().size(), 1u) << "no temporary file left";
}

TEST(Snapshotter, NewFilesOnly0600NeverThroughASymlink) {
  TmpDir d;
  SnapshotOptions o;
  o.dir = d.path;
  o.seconds = 2;
  Snapshotter s(o, TraceHeader{});
  for (uint64_t i = 0; i <= 90; ++i) s.on_event(ev_at(kT0 + i * 100 * kMs));
  // A symlink planted at the name the snapshot would take, pointing at a
  // file that must stay as it is.
  const std::string victim = d.path + "/victim";
  { FILE* v = std::fopen(victim.c_str(), "w"); std::fputs("keep", v); std::fclose(v); }
  const std::string name = d.path + "/snapshot-mono1004.000-dio-short-write-continued-write.jsonl";
  ASSERT_EQ(::symlink(victim.c_str(), name.c_str()), 0);
  auto r = s.on_finding(finding_at(kT0 + 4 * kSec));
  ASSERT_EQ(r.what, SnapshotResult::What::Written) << r.error;
  EXPECT_EQ(r.path, d.path + "/snapshot-mono1004.000-dio-short-write-continued-write-2.jsonl");
  struct stat st {};
  ASSERT_EQ(::lstat(r.path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  char buf[8] = {};
  FILE* v = std::fopen(victim.c_str(), "r");
  ASSERT_TRUE(v);
  EXPECT_EQ(std::fread(buf, 1, sizeof buf, v), 4u);
  std::fclose(v);
  EXPECT_STREQ(buf, "keep");
  ASSERT_EQ(::lstat(name.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the planted link is left alone";
}

TEST(Snapshotter, SizeCapLeavesOutTheOldest) {
  TmpDir d;
  SnapshotOptions o;
  o.dir = d.path;
  o.seconds = 100;
  o.max_bytes = 8192;
  Snapshotter s(o, TraceHeader{});
  for (uint64_t i = 0; i < 1000; ++i) s.on_event(ev_at(kT0 + i));
  auto r = s.on_finding(finding_at(kT0 + 999));
  ASSERT_EQ(r.what, SnapshotResult::What::Written) << r.error;
  EXPECT_GT(r.left_out, 0u);
  EXPECT_EQ(r.events + r.left_out, 1000u);
  EXPECT_LE(std::filesystem::file_size(r.path), 8192u);
  auto rd = open_trace(r.path);
  Event e;
  uint64_t last = 0;
  size_t n = 0;
  while (rd->next(e)) last = e.ts_ns, ++n;
  EXPECT_EQ(n, r.events);
  EXPECT_EQ(last, kT0 + 999) << "the newest events are kept";
}

TEST(Snapshotter, UnwritableDirFailsWithoutThrowing) {
  SnapshotOptions o;
  o.dir = "/nonexistent/bdt-snapshot-dir";
  Snapshotter s(o, TraceHeader{});
  s.on_event(ev_at(kT0));
  auto r = s.on_finding(finding_at(kT0));
  EXPECT_EQ(r.what, SnapshotResult::What::Failed);
  EXPECT_NE(r.error.find("/nonexistent/bdt-snapshot-dir"), std::string::npos);
}

// A snapshot of each seed timeline (taken at its first finding, window large
// enough to hold the whole timeline) replays to that finding.
TEST(Snapshotter, SeedSnapshotsReplayToTheirFinding) {
  for (const auto& tl : all_cases()) {
    if (tl.benign()) continue;
    SCOPED_TRACE(tl.name());
    auto cfg = config_for(tl.kernel());
    Engine eng(cfg);
    TmpDir d;
    SnapshotOptions o;
    o.dir = d.path;
    o.seconds = 3600;
    Snapshotter s(o, TraceHeader{});
    std::string path;
    Finding first;
    Findings out;
    for (const auto& e : tl.events()) {
      s.on_event(e);
      out.clear();
      eng.feed(e, out);
      if (!out.empty() && path.empty()) {
        first = out.front();
        auto r = s.on_finding(first);
        ASSERT_EQ(r.what, SnapshotResult::What::Written) << r.error;
        path = r.path;
      }
    }
    if (path.empty()) continue;  // fires only on time/finish (stalls)
    auto rd = open_trace(path);
    std::vector<Event> evs;
    Event e;
    while (rd->next(e)) evs.push_back(e);
    auto again = run(evs, cfg);
    bool same = false;
    for (auto& f : again)
      same |= f.detector == first.detector && f.kind == first.kind && f.message == first.message;
    EXPECT_TRUE(same) << "replay of the snapshot does not give " << first.detector << "/" << first.kind;
  }
}
