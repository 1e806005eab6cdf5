// The trace readers' limits (bdt::ReadLimits, docs/hardening.md): each one
// refuses its input with a one-line error naming the line or byte, and input
// just inside each limit still reads. Peak memory of whole runs is checked by
// tests/bad_input/catalogue.py, which starts the binary per input.
#include <gtest/gtest.h>

#include <string>

#include "core/event_json.h"
#include "replay/trace_reader.h"
#include "trace_samples.h"

using namespace bdt;
using namespace bdt::testing_samples;

namespace {

// The error of reading `text` as a JSON-lines trace ("" if it read cleanly);
// *n gets the number of events read.
std::string jsonl_error(const std::string& text, size_t* n = nullptr) {
  const std::string path = temp_path("limits.jsonl");
  write_file(path, text);
  std::string err;
  try {
    auto r = open_trace(path);
    auto evs = read_all(*r);
    if (n) *n = evs.size();
  } catch (const InputError& e) {
    err = e.what();
  }
  std::remove(path.c_str());
  return err;
}

std::string nested(int depth) {
  return std::string(static_cast<size_t>(depth), '[') + std::string(static_cast<size_t>(depth), ']');
}

const std::string kEnd = R"({"ts_ns":1,"type":"dio_end","ret":0)";

}  // namespace

TEST(ReadLimits, NestingDepth) {
  // 32 levels: the object itself and 31 arrays inside it.
  EXPECT_EQ(jsonl_error(kEnd + R"(,"x":)" + nested(ReadLimits::kMaxDepth - 1) + "}\n"), "");
  EXPECT_EQ(jsonl_error(kEnd + R"(,"x":)" + nested(ReadLimits::kMaxDepth) + "}\n"),
            temp_path("limits.jsonl") + ":1: JSON nested deeper than 32 levels");
  // In a header, and on a later line.
  EXPECT_NE(jsonl_error(R"({"schema":"btrfs-dio-trace.events/1","hooks":)" + nested(100000) + "}\n")
                .find(":1: JSON nested deeper than 32 levels"),
            std::string::npos);
  EXPECT_NE(jsonl_error(kEnd + "}\n" + kEnd + R"(,"y":{"a":)" + nested(40) + "}}\n")
                .find(":2: JSON nested deeper than 32 levels"),
            std::string::npos);
}

TEST(ReadLimits, ArraysOfKnownKeys) {
  auto oe = [](size_t n) {
    std::string s = R"({"ts_ns":1,"type":"oe_add","file_offset":0,"len":1,"flags":[)";
    for (size_t i = 0; i < n; ++i) s += i ? ",\"DIRECT\"" : "\"DIRECT\"";
    return s + "]}\n";
  };
  EXPECT_EQ(jsonl_error(oe(ReadLimits::kMaxArrayElements)), "");
  EXPECT_NE(jsonl_error(oe(ReadLimits::kMaxArrayElements + 1))
                .find(":1: field \"flags\": more than 64 elements"),
            std::string::npos);
}

TEST(ReadLimits, UnknownKeysAreSkippedWhateverTheySize) {
  // Big arrays, long strings and repeated unknown keys: not kept, not refused.
  std::string big = kEnd + R"(,"future":[)";
  for (int i = 0; i < 200000; ++i) big += i ? ",1" : "1";
  big += R"(],"note":")" + std::string(100000, 'n') + "\"";
  for (int i = 0; i < 1000; ++i) big += ",\"k" + std::to_string(i) + "\":{\"a\":[1,2,3]}";
  size_t n = 0;
  EXPECT_EQ(jsonl_error(big + "}\n" + big + "}\n", &n), "");
  EXPECT_EQ(n, 2u);
}

TEST(ReadLimits, RepeatedKnownKeysLastOneWins) {
  std::string s = R"({"ts_ns":1,"type":"dio_end","ret":0)";
  for (int i = 0; i < 100000; ++i) s += ",\"pos\":" + std::to_string(i);
  const std::string path = temp_path("dup.jsonl");
  write_file(path, s + "}\n");
  auto r = open_trace(path);
  auto evs = read_all(*r);
  std::remove(path.c_str());
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].as<DioEnd>()->pos, 99999u);
}

TEST(ReadLimits, HeaderSizeAndHooks) {
  const std::string schema = R"({"schema":"btrfs-dio-trace.events/1")";
  std::string pad(ReadLimits::kMaxHeaderBytes, 'x');
  EXPECT_NE(jsonl_error(schema + R"(,"kernel":")" + pad + "\"}\n").find(":1: header line longer than 65536 bytes"),
            std::string::npos);
  auto hooks = [&](size_t n) {
    std::string s = schema + R"(,"hooks":[)";
    for (size_t i = 0; i < n; ++i) s += (i ? ",\"h" : "\"h") + std::to_string(i) + "\"";
    return s + "]}\n";
  };
  EXPECT_EQ(jsonl_error(hooks(ReadLimits::kMaxHooks)), "");
  EXPECT_NE(jsonl_error(hooks(ReadLimits::kMaxHooks + 1)).find(":1: field \"hooks\": more than 1024 hooks"),
            std::string::npos);
}

TEST(ReadLimits, LineLength) {
  // A line longer than the limit: named by number, also without a newline.
  std::string ok = kEnd + "}\n";
  std::string huge = kEnd + R"(,"x":")" + std::string(ReadLimits::kMaxLineBytes, 'x') + "\"}";
  EXPECT_EQ(jsonl_error(ok + huge + "\n"),
            temp_path("limits.jsonl") + ":2: line longer than 4194304 bytes");
  EXPECT_EQ(jsonl_error(huge), temp_path("limits.jsonl") + ":1: line longer than 4194304 bytes");
  // --salvage keeps the events before it.
  const std::string path = temp_path("long-salvage.jsonl");
  write_file(path, ok + huge + "\n" + ok);
  auto r = open_trace(path, true);
  EXPECT_EQ(read_all(*r).size(), 1u);
  EXPECT_EQ(r->salvage_stop(), path + ":2: line longer than 4194304 bytes");
  std::remove(path.c_str());
}

TEST(ReadLimits, DistinctNames) {
  std::string s;
  for (size_t i = 0; i <= ReadLimits::kMaxStrings; ++i)
    s += R"({"ts_ns":1,"type":"dio_end","ret":0,"vm":"vm-)" + std::to_string(i) + "\"}\n";
  size_t n = 0;
  EXPECT_NE(jsonl_error(s, &n).find(":65537: more than 65536 distinct vm/image names"), std::string::npos);
  // Repeats of a few names are fine, however many lines.
  std::string r;
  for (int i = 0; i < 200000; ++i)
    r += R"({"ts_ns":1,"type":"dio_end","ret":0,"vm":"vm-)" + std::to_string(i % 7) + "\"}\n";
  EXPECT_EQ(jsonl_error(r, &n), "");
  EXPECT_EQ(n, 200000u);
}

TEST(ReadLimits, BinaryRecordDistinctNames) {
  // The binary reader shares the string-table limit; it names the byte offset.
  const std::string path = temp_path("names.bdt");
  {
    auto w = create_record(path, TraceHeader{});
    std::vector<std::string> names;
    names.reserve(ReadLimits::kMaxStrings + 1);
    for (size_t i = 0; i <= ReadLimits::kMaxStrings; ++i) {
      Event e = base_event(EventType::RelocBegin, 1);
      e.body = Reloc{1, 0};
      names.push_back("vm-" + std::to_string(i));
      e.vm = names.back();
      w->write(e);
    }
  }
  const std::string err = read_error(path);
  std::remove(path.c_str());
  EXPECT_NE(err.find(": at byte "), std::string::npos) << err;
  EXPECT_NE(err.find("more than 65536 distinct vm/image names"), std::string::npos) << err;
}
