// Reading JSON-lines traces: header, skip policies, and every bad-input case
// (tests/fixtures/bad/*, each one checked for its exact one-line message).
#include <gtest/gtest.h>

#include <dirent.h>

#include <map>
#include <set>

#include "core/event_json.h"
#include "replay/trace_reader.h"
#include "trace_samples.h"

using namespace bdt;
using namespace bdt::testing_samples;

namespace {

const std::string kBad = std::string(BDT_FIXTURES_DIR) + "/bad/";

std::string jsonl(const std::vector<Event>& evs, bool header = true) {
  std::string s;
  if (header) {
    TraceHeader h;
    append_header_json(s, h);
    s += '\n';
  }
  for (const Event& e : evs) {
    append_event_json(s, e);
    s += '\n';
  }
  return s;
}

}  // namespace

TEST(JsonlReader, RoundTripEveryTypeThroughAFile) {
  auto all = one_of_each();
  std::string path = temp_path("all.jsonl");
  write_file(path, jsonl(all));
  auto r = open_trace(path);
  EXPECT_EQ(r->format(), "jsonl");
  EXPECT_EQ(r->header().schema_version, 1);
  auto got = read_all(*r);
  ASSERT_EQ(got.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_TRUE(same_event(all[i], got[i])) << i;
  EXPECT_EQ(r->skipped_unknown(), 0u);
  // Views into the reader's string table stay valid while the reader lives.
  EXPECT_EQ(got[0].vm, "guest-01");
  EXPECT_EQ(got[0].image, "/var/lib/libvirt/images/guest-01.raw");
  std::remove(path.c_str());
}

TEST(JsonlReader, RandomRoundTripProperty) {
  std::mt19937_64 rng(7);
  std::deque<std::string> keep;
  std::vector<Event> evs;
  uint64_t ts = 0;
  for (int i = 0; i < 3000; ++i) {
    ts += rng() % 3;  // equal timestamps are allowed
    evs.push_back(random_decodable_event(rng, static_cast<EventType>(1 + rng() % kEventTypeCount), ts, keep));
  }
  std::string path = temp_path("random.jsonl");
  write_file(path, jsonl(evs, false));
  auto r = open_trace(path);
  auto got = read_all(*r);
  ASSERT_EQ(got.size(), evs.size());
  for (size_t i = 0; i < evs.size(); ++i) ASSERT_TRUE(same_event(evs[i], got[i])) << i;
  std::remove(path.c_str());
}

TEST(JsonlReader, HeaderFields) {
  std::string path = temp_path("hdr.jsonl");
  write_file(path,
             "{\"schema\":\"btrfs-dio-trace.events/1\",\"kernel\":\"6.18.44\","
             "\"mono_to_realtime_ns\":1763776000000000000,"
             "\"hooks\":[{\"name\":\"iomap_dio_rw_begin\",\"mechanism\":\"tp_btf\",\"attached\":true},"
             "{\"name\":\"free_extent_buffer\",\"mechanism\":\"none\",\"attached\":false},"
             "\"btrfs_get_extent\"]}\n");
  auto r = open_trace(path);
  const TraceHeader& h = r->header();
  EXPECT_EQ(h.kernel.major, 6);
  EXPECT_EQ(h.kernel.minor, 18);
  EXPECT_EQ(h.kernel.release, "6.18.44");
  EXPECT_EQ(h.mono_to_realtime_ns, 1763776000000000000);
  ASSERT_EQ(h.hooks.size(), 3u);
  EXPECT_EQ(h.hooks[0].mechanism, "tp_btf");
  EXPECT_FALSE(h.hooks[1].attached);
  EXPECT_EQ(h.hooks[2].name, "btrfs_get_extent");
  EXPECT_TRUE(h.hooks[2].attached);
  Event e;
  EXPECT_FALSE(r->next(e));
  std::remove(path.c_str());
}

TEST(JsonlReader, NoHeaderMeansVersion1) {
  std::string path = temp_path("nohdr.jsonl");
  write_file(path, "\n{\"ts_ns\":5,\"type\":\"reloc_begin\",\"block_group\":9}\n");
  auto r = open_trace(path);
  EXPECT_EQ(r->header().schema_version, 1);
  EXPECT_FALSE(r->header().kernel.known());
  Event e;
  ASSERT_TRUE(r->next(e));
  EXPECT_EQ(e.as<Reloc>()->block_group, 9u);
  EXPECT_FALSE(r->next(e));
  std::remove(path.c_str());
}

TEST(JsonlReader, EmptyFileIsAnEmptyTrace) {
  std::string path = temp_path("empty.jsonl");
  write_file(path, "");
  auto r = open_trace(path);
  Event e;
  EXPECT_FALSE(r->next(e));
  std::remove(path.c_str());
}

// A `--format json` live output: header, events and findings interleaved.
TEST(JsonlReader, FindingLinesAreSkipped) {
  auto all = one_of_each();
  Finding f;
  f.detector = "em-merge-race";
  f.ts_ns = all[1].ts_ns;
  f.evidence = {all[0], all[1]};
  std::string s;
  TraceHeader h;
  append_header_json(s, h);
  s += '\n';
  append_event_json(s, all[0]);
  s += '\n';
  append_event_json(s, all[1]);
  s += '\n';
  append_finding_json(s, f);
  s += '\n';
  append_event_json(s, all[2]);
  s += '\n';
  std::string path = temp_path("mixed.jsonl");
  write_file(path, s);
  auto r = open_trace(path);
  auto got = read_all(*r);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_TRUE(same_event(got[2], all[2]));
  EXPECT_EQ(r->skipped_findings(), 1u);
  EXPECT_EQ(r->skipped_unknown(), 0u);
  std::remove(path.c_str());
}

TEST(JsonlReader, SalvageStopsAtFirstBadLine) {
  auto r = open_trace(kBad + "garbage-line3.jsonl", /*salvage=*/true);
  auto got = read_all(*r);
  EXPECT_EQ(got.size(), 1u);
  EXPECT_NE(r->salvage_stop().find("garbage-line3.jsonl:3: not valid JSON"), std::string::npos)
      << r->salvage_stop();
  auto t = open_trace(kBad + "truncated.jsonl", true);
  EXPECT_EQ(read_all(*t).size(), 1u);
  EXPECT_NE(t->salvage_stop().find("truncated.jsonl:3:"), std::string::npos);
  // A clean file leaves salvage_stop empty.
  auto u = open_trace(kBad + "unknown-event-type.jsonl", true);
  read_all(*u);
  EXPECT_EQ(u->salvage_stop(), "");
}

TEST(JsonlReader, UnknownEventTypesAreSkippedAndCounted) {
  auto r = open_trace(kBad + "unknown-event-type.jsonl");
  auto got = read_all(*r);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].type, EventType::DioBegin);
  EXPECT_EQ(got[1].type, EventType::DioEnd);
  EXPECT_EQ(r->skipped_unknown(), 1u);
}

TEST(JsonlReader, StdinIsDash) {
  // open_trace("-") reads stdin; exercised here through a redirected fd 0.
  std::string path = temp_path("stdin.jsonl");
  write_file(path, jsonl(one_of_each()));
  int saved = dup(0);
  FILE* f = std::fopen(path.c_str(), "r");
  ASSERT_TRUE(f);
  dup2(fileno(f), 0);
  size_t n = 0;
  {
    auto r = open_trace("-");
    n = read_all(*r).size();
  }
  dup2(saved, 0);
  close(saved);
  std::fclose(f);
  EXPECT_EQ(n, one_of_each().size());
  std::remove(path.c_str());
}

TEST(JsonlReader, LongLinesAndNoFinalNewline) {
  Event e = base_event(EventType::RelocBegin, 1);
  e.body = Reloc{1, 0};
  std::string big(600000, 'x');
  e.image = big;  // a line far longer than the read buffer
  std::string s = jsonl({e}, false);
  s.pop_back();  // no final newline
  std::string path = temp_path("long.jsonl");
  write_file(path, s);
  auto r = open_trace(path);
  auto got = read_all(*r);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].image.size(), big.size());
  std::remove(path.c_str());
}

// Every file in tests/fixtures/bad/ must have an expectation here, so a new
// fixture cannot sit there untested.
TEST(BadInput, EveryFixtureGivesItsOneLineError) {
  // file -> exact error message (path prefix added below)
  const std::map<std::string, std::string> expected = {
      {"garbage.jsonl",
       ":1: not valid JSON at column 2: syntax error while parsing value - invalid literal; "
       "last read: 'th'"},
      {"garbage-line3.jsonl",
       ":3: not valid JSON at column 32: syntax error while parsing object - invalid literal; "
       "last read: '\"dio_end\" g'; expected '}'"},
      {"truncated.jsonl",
       ":3: not valid JSON at column 61: syntax error while parsing value - invalid string: "
       "missing closing quote; last read: '\"dio_end'"},
      {"unknown-schema-version.jsonl",
       ":1: unsupported schema version 2 (\"btrfs-dio-trace.events/2\"); this btrfs-dio-trace "
       "reads version 1 (\"btrfs-dio-trace.events/1\")"},
      {"unknown-schema-name.jsonl",
       ":1: unknown schema \"ftrace.events/1\" (expected \"btrfs-dio-trace.events/1\")"},
      {"schema-not-first.jsonl",
       ":2: a \"schema\" header is only allowed on the first line"},
      {"wrong-field-type.jsonl", ":2: field \"pos\" must be a non-negative integer, got string"},
      {"negative-unsigned.jsonl", ":2: field \"ino\" must be a non-negative integer, got -1"},
      {"missing-field.jsonl", ":2: missing required field \"count\""},
      {"missing-type.jsonl", ":2: missing required field \"type\""},
      {"missing-ts.jsonl", ":2: missing required field \"ts_ns\""},
      {"out-of-order.jsonl", ":3: event out of timestamp order: ts_ns 1000 after 2000 (line 2)"},
      {"bad-fs.jsonl", ":2: field \"fs\" is not a filesystem UUID: "
                       "\"0123abcd-XXXX-89ef-0123-456789abcdef\""},
      {"bad-flag.jsonl",
       ":2: field \"flags\": unknown ordered-extent flag \"IO_ERR\" (known: REGULAR NOCOW "
       "PREALLOC COMPRESSED DIRECT IO_DONE COMPLETE IOERR TRUNCATED LOGGED LOGGED_CSUM PENDING "
       "ENCODED)"},
      {"not-object.jsonl", ":2: expected a JSON object, got array"},
      {"range-wraps.jsonl", ":2: file_offset + len runs past 2^64"},
      {"binary-junk.jsonl",
       ":1: not valid JSON at column 1: control byte 0x00 (not a JSON-lines trace?)"},
      {"unknown-event-type.jsonl", ""},  // policy: skipped and counted, not an error
      // Binary records (written by make-binary-fixtures.py from docs/record-format.md).
      {"corrupt-crc.bdt",
       ": at byte 209: record checksum mismatch (stored 0xaed792f7, computed 0x"},
      {"truncated.bdt", ": at byte 310: truncated record: file ends after 20 of its 101 bytes"},
      {"truncated-header.bdt", ": at byte 12: truncated file header (file is 12 bytes)"},
      {"bad-magic.bdt",
       ": at byte 0: not a btrfs-dio-trace record file (bad magic) and not JSON lines"},
      {"bad-format-version.bdt",
       ": at byte 8: unsupported record format version 2 (this btrfs-dio-trace reads version 1)"},
      {"bad-record-length.bdt",
       ": at byte 209: invalid record length 3 (valid: 72..1048576)"},
      {"out-of-order.bdt", ": at byte 173: event out of timestamp order: ts_ns 1000 after 2000"},
      {"unknown-event-type.bdt", ""},
  };
  std::set<std::string> files;
  DIR* d = opendir(kBad.c_str());
  ASSERT_TRUE(d) << kBad;
  while (auto* de = readdir(d)) {
    std::string n = de->d_name;
    if (n.ends_with(".jsonl") || n.ends_with(".bdt")) files.insert(n);
  }
  closedir(d);
  for (const auto& f : files) {
    SCOPED_TRACE(f);
    auto it = expected.find(f);
    ASSERT_NE(it, expected.end()) << "fixture without an expectation: " << f;
    std::string msg = read_error(kBad + f);
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    if (it->second.empty()) {
      EXPECT_EQ(msg, "");
    } else {
      std::string want = kBad + f + it->second;
      EXPECT_EQ(msg.substr(0, want.size()), want);
    }
  }
  for (const auto& [f, _] : expected) EXPECT_TRUE(files.count(f)) << "missing fixture " << f;
}

TEST(BadInput, MissingFile) {
  std::string msg = read_error("/nonexistent/trace.jsonl");
  EXPECT_EQ(msg, "/nonexistent/trace.jsonl: cannot open: No such file or directory");
}

TEST(BadInput, Directory) {
  std::string msg = read_error("/");
  EXPECT_NE(msg.find("/: read error at byte 0: Is a directory"), std::string::npos) << msg;
}

TEST(BadInput, GzipIsNamed) {
  std::string path = temp_path("x.jsonl.gz");
  write_file(path, std::string("\x1f\x8b\x08\x00junk", 8));
  EXPECT_NE(read_error(path).find("gzip-compressed"), std::string::npos);
  std::remove(path.c_str());
}
