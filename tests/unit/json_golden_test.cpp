// Byte-exact JSON output: every event type, string escaping, flag words,
// optional and phase fields, findings with evidence, and the JSON-lines sink
// (header, events with and without wall times, lost, summary), compared with
// tests/fixtures/json/*.jsonl. The other JSON tests parse what is written; these
// pin the bytes a log shipper or a diff of two traces sees, so a faster
// writer cannot change them unnoticed.
// Regenerate (only for an intended change of the output, documented in
// docs/events.md):
//   BDT_WRITE_FIXTURES=1 build/tests/unit_tests --gtest_filter='JsonGolden.*'
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "bdt/event_fields.h"
#include "core/event_json.h"
#include "sinks/sink.h"
#include "trace_samples.h"

using namespace bdt;
using namespace bdt::testing_samples;

namespace {

const std::string kDir = std::string(BDT_FIXTURES_DIR) + "/json/";

// Strings that exercise every escaping rule: quotes, backslash, the named
// control characters, other controls, DEL, valid 2/3/4-byte UTF-8, invalid and
// truncated sequences.
const std::string kNasty[] = {
    std::string("a\"b\\c"),
    std::string("nl\ntab\tcr\r"),
    std::string("\x01\x02\x1f\x7f", 4),
    std::string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xbe"),
    std::string("bad\xff\xfe lone\x80 trunc\xe2\x82"),
    std::string("\xc0\xaf overlong \xed\xa0\x80 surrogate"),
    std::string(""),
};

// one_of_each(), `per_type` random events of every type, then the edge cases.
std::vector<Event> golden_events(std::deque<std::string>& strings, int per_type) {
  std::vector<Event> v = one_of_each();
  uint64_t ts = 2'000'000'000;
  // Random events of every type, a fixed seed (std::mt19937_64 is specified).
  std::mt19937_64 rng(20261206);
  for (int i = 1; i <= kEventTypeCount; ++i)
    for (int k = 0; k < per_type; ++k) v.push_back(random_event(rng, static_cast<EventType>(i), ts += 7, strings));
  // Escaping in comm, vm and image.
  for (const auto& s : kNasty) {
    Event e = base_event(EventType::DioEnd, ts += 7);
    e.body = DioEnd{1, -5, -5, std::nullopt};
    e.set_comm(s.substr(0, 15));
    strings.push_back(s);
    e.vm = strings.back();
    strings.push_back("/img/" + s);
    e.image = strings.back();
    v.push_back(e);
  }
  // Extremes and the optional / phase / flag cases.
  Event e = base_event(EventType::DioEnd, std::numeric_limits<uint64_t>::max());
  e.pid = e.tid = std::numeric_limits<uint32_t>::max();
  e.dev = e.ino = std::numeric_limits<uint64_t>::max();
  e.body = DioEnd{std::numeric_limits<uint64_t>::max(), std::numeric_limits<int64_t>::min(),
                  std::numeric_limits<int32_t>::min(), false};
  v.push_back(e);
  e.body = DioEnd{0, std::numeric_limits<int64_t>::max(), std::numeric_limits<int32_t>::max(), true};
  v.push_back(e);
  for (int p = 0; p < 3; ++p) {
    Event x = base_event(EventType::EbFree, ts += 7);
    x.body = ExtentBuffer{static_cast<Phase>(p), 30408704, -1, 0xffffffffu, 7};
    v.push_back(x);
    Event g = base_event(EventType::GetExtent, ts += 7);
    g.body = GetExtent{static_cast<Phase>(p), 0, 4096, 0, 4096, 0, 0};
    v.push_back(g);
  }
  for (uint32_t fl : {0u, 0xffffffffu, 1u << 31, (1u << 20) | 1u}) {
    Event o = base_event(EventType::OeFinish, ts += 7);
    o.body = Ordered{4096, 4096, fl, fl != 0};
    v.push_back(o);
  }
  return v;
}

Finding golden_finding(const std::vector<Event>& evs) {
  Finding f = sample_finding();
  f.ts_ns = 1'000'005'000;
  f.explanation = "why\nand how";
  f.evidence = {evs[0], evs[1], evs[2]};
  f.image = "/var/lib/images/guest.raw";
  f.stack = {"btrfs_ioctl_send+0x10", "__x64_sys_ioctl"};
  f.trace_ended = true;
  return f;
}

// The golden file's text, or (BDT_WRITE_FIXTURES=1) writes it.
void check_golden(const std::string& name, const std::string& got) {
  const std::string path = kDir + name;
  if (std::getenv("BDT_WRITE_FIXTURES")) {
    write_file(path, got);
    GTEST_SKIP() << "wrote " << path;
  }
  const std::string want = read_file(path);
  ASSERT_FALSE(want.empty()) << path << " missing: BDT_WRITE_FIXTURES=1 writes it";
  if (got == want) return;
  // Name the first line that differs, not a 200 KB blob.
  size_t at = 0, line = 1;
  while (at < got.size() && at < want.size() && got[at] == want[at]) {
    if (got[at] == '\n') ++line;
    ++at;
  }
  auto line_at = [](const std::string& s, size_t pos) {
    const size_t b = s.rfind('\n', pos ? pos - 1 : 0);
    const size_t start = (b == std::string::npos || pos == 0) ? 0 : b + 1;
    return s.substr(start, s.find('\n', pos) - start);
  };
  FAIL() << name << ": line " << line << " differs at byte " << at << "\n  want: " << line_at(want, at)
         << "\n  got:  " << line_at(got, at);
}

}  // namespace

TEST(JsonGolden, EventsAndFindings) {
  std::deque<std::string> strings;
  const auto evs = golden_events(strings, 12);
  std::string out, line;
  for (const auto& e : evs) {
    line.clear();
    append_event_json(line, e);
    out += line;
    out += '\n';
    // Appended after other text, as a finding's evidence and the sinks do.
    std::string prefixed = "x";
    append_event_json(prefixed, e);
    EXPECT_EQ(prefixed.substr(1), line);
  }
  line.clear();
  append_finding_json(line, golden_finding(evs));
  out += line + '\n';
  line.clear();
  append_finding_json(line, golden_finding(evs), 1'700'000'000'000'000'000);
  out += line + '\n';
  check_golden("golden-events.jsonl", out);
}

TEST(JsonGolden, Sink) {
  std::deque<std::string> strings;
  const auto evs = golden_events(strings, 1);
  TraceHeader h;
  h.kernel = *KernelVersion::parse("6.1.0-28-cloud-amd64");
  h.hostname = "hv\"1";
  h.mono_to_realtime_ns = 1'700'000'000'000'000'000;
  h.hooks = {{"iomap_dio_rw_begin", "tp_btf", true}, {"free_extent_buffer", "none", false}};
  std::string out;
  for (bool wall : {false, true}) {
    std::FILE* f = std::tmpfile();
    ASSERT_NE(f, nullptr);
    {
      auto sink = make_json_sink(f, h, wall);
      for (const auto& e : evs) sink->event(e);
      sink->finding(golden_finding(evs));
      sink->lost(1, 42);
      Summary s;
      s.duration_s = 1.5;
      s.events_total = evs.size();
      s.events_by_type = {{"dio_begin", 3}, {"oe_\"add", 1}};
      s.records_total = 12;
      s.lost_per_cpu = {0, 42};
      s.lost_total = 42;
      s.made_per_cpu = {5, 49};
      s.records_made = 54;
      s.records_read = 12;
      s.findings_by_detector = {{"dio-short-write/symptom", 1}};
      s.findings_total = 1;
      s.notes = {{"kernel", "6.1.0"}, {"state x", "1 entries\t(cap 2)"}};
      sink->summary(s);
      sink->flush();
    }
    std::fflush(f);
    std::rewind(f);
    char buf[65536];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    std::fclose(f);
  }
  check_golden("golden-sink.jsonl", out);
}

// The JSON writer writes the model's names (event types, phases, ioctl
// commands, fallback paths, flag names) between quotes without escaping them.
TEST(JsonGolden, ModelNamesArePlain) {
  auto plain = [](std::string_view s) {
    for (char c : s)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
        return false;
    return true;
  };
  for (int i = 1; i <= kEventTypeCount; ++i) EXPECT_TRUE(plain(to_string(static_cast<EventType>(i)))) << i;
  for (auto p : {Phase::None, Phase::Enter, Phase::Exit}) EXPECT_TRUE(plain(to_string(p)));
  for (int i = 0; i <= static_cast<int>(fields::kLastIoctlCmd) + 1; ++i)
    EXPECT_TRUE(plain(to_string(static_cast<IoctlCmd>(i)))) << i;
  for (int i = 0; i <= static_cast<int>(fields::kLastFallbackVia) + 1; ++i)
    EXPECT_TRUE(plain(to_string(static_cast<FallbackVia>(i)))) << i;
  for (const auto& f : ordered_flag_names()) EXPECT_TRUE(plain(f.name)) << f.name;
  for (const auto& f : eb_flag_names()) EXPECT_TRUE(plain(f.name)) << f.name;
}

// write_event_json writes without a size check into event_json_max(ev)
// bytes: the bound must hold for the longest event of every type (every
// string byte escaped as \u00XX, every number at its longest, every flag bit).
TEST(JsonGolden, BoundHoldsForTheLongestEvents) {
  const std::string ctl(300, '\x01');
  for (int i = 1; i <= kEventTypeCount; ++i) {
    for (int phase = 0; phase < 3; ++phase) {
      Event e;
      e.type = static_cast<EventType>(i);
      e.ts_ns = std::numeric_limits<uint64_t>::max();
      e.pid = e.tid = std::numeric_limits<uint32_t>::max();
      e.set_comm(ctl.substr(0, 15));
      e.dev = e.ino = std::numeric_limits<uint64_t>::max();
      e.vm = ctl;
      e.image = ctl;
      e.body = payload_for(e.type);
      std::visit(
          [&](auto& p) {
            fields::for_each<std::remove_cvref_t<decltype(p)>>([&](const auto& d) {
              auto& v = d.ref(p);
              using T = std::remove_cvref_t<decltype(v)>;
              if constexpr (std::is_same_v<T, Phase>) v = static_cast<Phase>(phase);
              else if constexpr (std::is_same_v<T, std::optional<bool>>) v = false;
              else if constexpr (std::is_same_v<T, bool>) v = false;
              else if constexpr (std::is_same_v<T, IoctlCmd>) v = fields::kLastIoctlCmd;
              else if constexpr (std::is_same_v<T, FallbackVia>) v = fields::kLastFallbackVia;
              else if constexpr (std::is_signed_v<T>) v = std::numeric_limits<T>::min();
              else v = std::numeric_limits<T>::max();
            });
          },
          e.body);
      // Written with room to spare, so a bound too small fails here rather
      // than corrupting memory.
      const size_t max = event_json_max(e);
      std::vector<char> buf(max + 8 * ctl.size());
      const size_t n = static_cast<size_t>(write_event_json(buf.data(), e) - buf.data());
      ASSERT_LE(n, max) << to_string(e.type);
      EXPECT_GT(n, 2 * 6 * ctl.size()) << "vm and image: every byte escaped";
      std::string s;
      append_event_json(s, e);
      EXPECT_EQ(s, std::string(buf.data(), n));
    }
  }
}
