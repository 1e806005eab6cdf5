// The trace header every output starts with (JSON lines, binary records):
// kernel, hostname, wall-clock offset and hooks written in one place
// (append_header_json / the record header) and read back by replay; findings
// carry their wall-clock time.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/event_json.h"
#include "sinks/sink.h"
#include "replay/trace_reader.h"

using namespace bdt;

namespace {

TraceHeader sample_header() {
  TraceHeader h;
  h.kernel = *KernelVersion::parse("6.18.44-fc");
  h.kernel.release = "6.18.44-fc";
  h.hostname = "hv-07.example";
  h.mono_to_realtime_ns = 1795323001'123456789 - 5'000'000'000;
  h.hooks = {{"iomap_dio_rw_begin", "tp_btf", true}, {"free_extent_buffer()", "none", false}};
  return h;
}

std::string json_output(const TraceHeader& h, bool with_finding) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  {
    auto sink = make_json_sink(f, h);
    if (with_finding) {
      Event ev;
      ev.type = EventType::DioBegin;
      ev.ts_ns = 5'000'000'000;
      ev.pid = ev.tid = 7;
      sink->event(ev);
      Finding fi;
      fi.detector = "dio-short-write", fi.kind = "continued-write", fi.ts_ns = 5'000'000'000;
      fi.pid = fi.tid = 7;
      fi.message = "m";
      sink->finding(fi);
      Summary s;
      sink->summary(s);
    }
    sink->flush();
  }
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
  return out;
}

void expect_same(const TraceHeader& a, const TraceHeader& b) {
  EXPECT_EQ(a.kernel.release, b.kernel.release);
  EXPECT_EQ(a.hostname, b.hostname);
  EXPECT_EQ(a.mono_to_realtime_ns, b.mono_to_realtime_ns);
  ASSERT_EQ(a.hooks.size(), b.hooks.size());
  for (size_t i = 0; i < a.hooks.size(); ++i) {
    EXPECT_EQ(a.hooks[i].name, b.hooks[i].name);
    EXPECT_EQ(a.hooks[i].mechanism, b.hooks[i].mechanism);
    EXPECT_EQ(a.hooks[i].attached, b.hooks[i].attached);
  }
}

}  // namespace

TEST(TraceHeader, JsonOutputStartsWithTheHeaderEvenWithoutEvents) {
  const auto out = json_output(sample_header(), false);
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["schema"], "btrfs-dio-trace.events/1");
  EXPECT_EQ(j["hostname"], "hv-07.example");
  EXPECT_EQ(j["kernel"], "6.18.44-fc");
  EXPECT_EQ(j["mono_to_realtime_ns"], 1795323001'123456789 - 5'000'000'000);
  EXPECT_EQ(j["hooks"].size(), 2u);
}

TEST(TraceHeader, FindingsCarryWallTimeAndReplayReadsTheOutput) {
  const auto out = json_output(sample_header(), true);
  std::istringstream in(out);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(nlohmann::json::parse(line).count("schema"), 1u);
  std::getline(in, line);  // the event: no wall time unless asked for
  EXPECT_EQ(line.find("wall_time"), std::string::npos) << line;
  std::getline(in, line);
  auto fj = nlohmann::json::parse(line);
  EXPECT_EQ(fj["type"], "finding");
  EXPECT_EQ(fj["ts_ns"], 5'000'000'000u);
  EXPECT_EQ(fj["wall_time"], "2026-11-22T04:50:01.123456Z");

  const std::string path = ::testing::TempDir() + "/bdt-header.jsonl";
  std::ofstream(path) << out;
  auto r = open_trace(path);
  expect_same(r->header(), sample_header());
  Event back;
  ASSERT_TRUE(r->next(back));
  EXPECT_EQ(back.ts_ns, 5'000'000'000u);
  EXPECT_FALSE(r->next(back));
  EXPECT_EQ(r->skipped_findings(), 1u);
  std::remove(path.c_str());
}

TEST(TraceHeader, NoWallTimeWhenTheOffsetIsUnknown) {
  TraceHeader h;
  const auto out = json_output(h, true);
  EXPECT_EQ(out.find("wall_time"), std::string::npos) << out;
  EXPECT_EQ(out.substr(0, out.find('\n')), "{\"schema\":\"btrfs-dio-trace.events/1\"}");
}

TEST(TraceHeader, BinaryRecordKeepsTheHostname) {
  const std::string path = ::testing::TempDir() + "/bdt-header.bdt";
  std::remove(path.c_str());
  {
    auto w = create_record(path, sample_header());
    w->flush();
  }
  auto r = open_trace(path);
  expect_same(r->header(), sample_header());
  std::remove(path.c_str());
}

TEST(TraceHeader, TextWallTimeIsUtcRfc3339) {
  TimeBase tb{0, 1795323001'123456789 - 5'000'000'000, true};
  EXPECT_EQ(format_time(5'000'000'000, tb), "2026-11-22T04:50:01.123456Z");
  tb.utc = false;
  EXPECT_EQ(format_time(5'000'000'000, tb).size(), 15u);  // HH:MM:SS.uuuuuu, local time
}
