// The binary --record format: round trips, byte layout, streaming writes,
// corruption and truncation with and without salvage.
#include <gtest/gtest.h>

#include <random>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>

#include "replay/trace_reader.h"
#include "replay/input.h"
#include "trace_samples.h"

using namespace bdt;
using namespace bdt::testing_samples;

namespace {

const std::string kBad = std::string(BDT_FIXTURES_DIR) + "/bad/";

uint64_t file_size(const std::string& p) {
  struct stat st {};
  if (stat(p.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_size);
}

TraceHeader sample_header() {
  TraceHeader h;
  h.kernel = *KernelVersion::parse("6.1.0-27-amd64");
  h.mono_to_realtime_ns = 1763776000123456789;
  h.hooks = {{"iomap_dio_rw_begin", "tp_btf", true},
             {"free_extent_buffer", "none", false},
             {"btrfs_get_extent", "fentry", true}};
  return h;
}

// Writes events, flushing after each so the record offsets are observable.
std::vector<uint64_t> write_with_offsets(const std::string& path, const std::vector<Event>& evs) {
  std::vector<uint64_t> offs;
  auto w = create_record(path, sample_header());
  for (const Event& e : evs) {
    offs.push_back(file_size(path));
    w->write(e);
    w->flush();
  }
  offs.push_back(file_size(path));
  return offs;
}

}  // namespace

TEST(Crc32, KnownVector) {
  const std::string s = "123456789";
  EXPECT_EQ(replay::crc32({reinterpret_cast<const uint8_t*>(s.data()), s.size()}), 0xCBF43926u);
  EXPECT_EQ(replay::crc32({}), 0u);
  // Continuation equals one pass.
  auto* p = reinterpret_cast<const uint8_t*>(s.data());
  EXPECT_EQ(replay::crc32({p + 4, 5}, replay::crc32({p, 4})), 0xCBF43926u);
}

// The table-driven CRC (16, 8, 4 bytes at a time, then bytewise) against the
// bit-by-bit definition, for every length up to 100 at every alignment, each
// continued from a random CRC and split at a random place.
TEST(Crc32, EveryLengthAsBitByBit) {
  auto bitwise = [](const uint8_t* p, size_t n, uint32_t crc) {
    crc = ~crc;
    for (size_t i = 0; i < n; ++i) {
      crc ^= p[i];
      for (int k = 0; k < 8; ++k) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
    }
    return ~crc;
  };
  std::mt19937 rng(5);
  std::vector<uint8_t> buf(128);
  size_t checked = 0;
  for (size_t n = 0; n <= 100; ++n)
    for (size_t off = 0; off < 8; ++off) {
      for (auto& b : buf) b = static_cast<uint8_t>(rng());
      const uint32_t seed = static_cast<uint32_t>(rng());
      const uint8_t* p = buf.data() + off;
      const uint32_t want = bitwise(p, n, seed);
      ASSERT_EQ(replay::crc32({p, n}, seed), want) << n << " at " << off;
      const size_t cut = n ? rng() % (n + 1) : 0;
      ASSERT_EQ(replay::crc32({p + cut, n - cut}, replay::crc32({p, cut}, seed)), want) << n;
      ++checked;
    }
  EXPECT_EQ(checked, 101u * 8);
}

TEST(Record, RoundTripEveryTypeAndHeader) {
  auto all = one_of_each();
  std::string path = temp_path("all.bdt");
  {
    auto w = create_record(path, sample_header());
    for (const Event& e : all) w->write(e);
    EXPECT_EQ(w->records_written(), all.size());
  }  // destructor flushes
  auto r = open_trace(path);
  EXPECT_EQ(r->format(), "binary");
  const TraceHeader& h = r->header();
  EXPECT_EQ(h.schema_version, 1);
  EXPECT_EQ(h.kernel.release, "6.1.0-27-amd64");
  EXPECT_EQ(h.kernel.major, 6);
  EXPECT_EQ(h.kernel.minor, 1);
  EXPECT_EQ(h.mono_to_realtime_ns, 1763776000123456789);
  ASSERT_EQ(h.hooks.size(), 3u);
  EXPECT_EQ(h.hooks[1].name, "free_extent_buffer");
  EXPECT_EQ(h.hooks[1].mechanism, "none");
  EXPECT_FALSE(h.hooks[1].attached);
  EXPECT_TRUE(h.hooks[2].attached);
  auto got = read_all(*r);
  ASSERT_EQ(got.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_TRUE(same_event(all[i], got[i])) << i;
  EXPECT_EQ(got[0].vm, "guest-01");
  EXPECT_EQ(r->skipped_unknown(), 0u);
  EXPECT_EQ(r->salvage_stop(), "");
  std::remove(path.c_str());
}

TEST(Record, RandomRoundTripProperty) {
  std::mt19937_64 rng(99);
  std::deque<std::string> keep;
  std::vector<Event> evs;
  uint64_t ts = 0;
  for (int i = 0; i < 20000; ++i) {  // several write buffers' worth
    ts += rng() % 1000;
    evs.push_back(random_decodable_event(rng, static_cast<EventType>(1 + rng() % kEventTypeCount), ts, keep));
  }
  std::string path = temp_path("random.bdt");
  {
    auto w = create_record(path, TraceHeader{});
    for (const Event& e : evs) w->write(e);
  }
  auto r = open_trace(path);
  auto got = read_all(*r);
  ASSERT_EQ(got.size(), evs.size());
  for (size_t i = 0; i < evs.size(); ++i) ASSERT_TRUE(same_event(evs[i], got[i])) << i;
  std::remove(path.c_str());
}

TEST(Record, ByteLayoutIsExplicitLittleEndian) {
  Event e = base_event(EventType::CsumError, 0x0102030405060708);
  e.body = CsumError{0x1122334455667788, 4096, 7};
  std::string path = temp_path("layout.bdt");
  TraceHeader h;  // empty kernel, no hooks
  { create_record(path, h)->write(e); }
  std::string b = read_file(path);
  ASSERT_GE(b.size(), 16u);
  EXPECT_EQ(b.substr(0, 8), std::string("\x89" "BDTREC\n"));
  EXPECT_EQ(b.substr(8, 2), std::string("\x01\x00", 2));  // format version 1
  // Header body: u32 schema, i64 clock offset, u16 kernel len (0), u16 hooks (0), u16 hostname
  // len (0) = 18 bytes.
  EXPECT_EQ(b.substr(12, 4), std::string("\x12\x00\x00\x00", 4));
  size_t rec = 16 + 18 + 4;
  // Record: length = 72 common + 20 payload = 92.
  EXPECT_EQ(b.substr(rec, 4), std::string("\x5c\x00\x00\x00", 4));
  size_t body = rec + 8;
  EXPECT_EQ(b.substr(body, 2), std::string("\x13\x00", 2));  // type 19 = csum_error
  EXPECT_EQ(b.substr(body + 4, 8), std::string("\x08\x07\x06\x05\x04\x03\x02\x01", 8));
  EXPECT_EQ(b.substr(body + 72, 8), std::string("\x88\x77\x66\x55\x44\x33\x22\x11", 8));
  EXPECT_EQ(b.size(), body + 92);
  uint32_t stored = uint8_t(b[rec + 4]) | uint8_t(b[rec + 5]) << 8 | uint8_t(b[rec + 6]) << 16 |
                    uint32_t(uint8_t(b[rec + 7])) << 24;
  uint32_t crc = replay::crc32({reinterpret_cast<const uint8_t*>(b.data()) + rec, 4});
  crc = replay::crc32({reinterpret_cast<const uint8_t*>(b.data()) + body, 92}, crc);
  EXPECT_EQ(stored, crc);
  std::remove(path.c_str());
}

TEST(Record, DetectsBinaryVsJsonByContent) {
  std::string path = temp_path("detect");
  { create_record(path, TraceHeader{})->write(one_of_each()[0]); }
  EXPECT_EQ(open_trace(path)->format(), "binary");
  write_file(path, "{\"ts_ns\":1,\"type\":\"reloc_begin\"}\n");
  EXPECT_EQ(open_trace(path)->format(), "jsonl");
  std::remove(path.c_str());
}

TEST(Record, StreamingWriteLosesAtMostTheBuffer) {
  std::string path = temp_path("stream.bdt");
  auto w = create_record(path, sample_header());
  uint64_t header_size = file_size(path);
  EXPECT_GT(header_size, 16u);  // the header is on disk at once
  {
    auto r = open_trace(path);  // a header-only file is a valid empty trace
    Event e;
    EXPECT_FALSE(r->next(e));
  }
  Event e = base_event(EventType::DioEnd, 1000);
  e.body = DioEnd{0, 4096, 0, true};
  w->write(e);
  EXPECT_EQ(file_size(path), header_size);  // buffered
  // Keep writing within one second of trace time: only full buffers reach the file.
  int n = 1;
  while (file_size(path) == header_size && n < 100000) {
    e.ts_ns += 10;
    w->write(e);
    ++n;
  }
  uint64_t sz = file_size(path);
  EXPECT_GT(sz, header_size);
  EXPECT_LE(sz - header_size, (64u << 10) + 200u);
  // What reached the file is a clean prefix of whole records: readable without
  // salvage, as after a crash at this moment.
  {
    auto r = open_trace(path);
    auto got = read_all(*r);
    EXPECT_EQ(got.size(), static_cast<size_t>(n));
    EXPECT_EQ(r->salvage_stop(), "");
  }
  // An event more than a second of trace time later is written out at once.
  e.ts_ns += 2'000'000'000;
  w->write(e);
  {
    auto r = open_trace(path);
    EXPECT_EQ(read_all(*r).size(), static_cast<size_t>(n + 1));
  }
  w->write(e);
  w->flush();
  {
    auto r = open_trace(path);
    EXPECT_EQ(read_all(*r).size(), static_cast<size_t>(n + 2));
  }
  w.reset();
  std::remove(path.c_str());
}

TEST(Record, CorruptCrcNamesOffsetAndSalvageKeepsPrefix) {
  auto all = one_of_each();
  std::string path = temp_path("corrupt.bdt");
  auto offs = write_with_offsets(path, all);
  std::string b = read_file(path);
  // Flip one bit inside the 6th record's payload.
  b[offs[5] + 8 + 60] ^= 0x10;
  write_file(path, b);
  std::string msg = read_error(path);
  EXPECT_EQ(msg.rfind(path + ": at byte " + std::to_string(offs[5]) +
                          ": record checksum mismatch (stored 0x",
                      0),
            0u)
      << msg;
  auto r = open_trace(path, /*salvage=*/true);
  auto got = read_all(*r);
  ASSERT_EQ(got.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_TRUE(same_event(all[i], got[i]));
  EXPECT_NE(r->salvage_stop().find("at byte " + std::to_string(offs[5])), std::string::npos);
  Event e;
  EXPECT_FALSE(r->next(e));  // stays stopped
  std::remove(path.c_str());
}

TEST(Record, RangePast2To64IsCorrupt) {
  // The writer writes what it is given; the reader refuses a range no kernel reports.
  std::vector<Event> evs = {base_event(EventType::DioBegin, 10), base_event(EventType::DioFallback, 20)};
  evs[0].body = DioBegin{.pos = 4096, .count = 4096};
  evs[1].body = DioFallback{.pos = UINT64_MAX - 100, .count = 4096};
  std::string path = temp_path("wraps.bdt");
  auto offs = write_with_offsets(path, evs);
  EXPECT_EQ(read_error(path), path + ": at byte " + std::to_string(offs[1]) +
                                  ": dio_fallback pos + count runs past 2^64");
  auto r = open_trace(path, /*salvage=*/true);
  EXPECT_EQ(read_all(*r).size(), 1u);
  std::remove(path.c_str());
}

TEST(Record, TruncatedAtEveryByte) {
  auto all = one_of_each();
  std::string path = temp_path("trunc.bdt");
  auto offs = write_with_offsets(path, all);
  std::string full = read_file(path);
  std::string cut = temp_path("trunc-cut.bdt");
  // Every interesting cut of every record: inside the length/CRC prefix, at
  // the body's start, in its middle, one byte short (and every byte of the
  // last record). Rewriting the file for every byte of all records is slow on
  // some /tmp filesystems, hence the selection.
  std::set<size_t> lens;
  for (size_t i = 0; i + 1 < offs.size(); ++i) {
    size_t rl = offs[i + 1] - offs[i];
    for (size_t d : {size_t(0), size_t(1), size_t(4), size_t(7), size_t(8), size_t(9), rl / 2,
                     rl - 1})
      lens.insert(offs[i] + d);
  }
  for (size_t len = offs[offs.size() - 2]; len <= full.size(); ++len) lens.insert(len);
  for (size_t len : lens) {
    write_file(cut, full.substr(0, len));
    size_t whole = 0;  // complete records in the prefix
    while (whole < all.size() && offs[whole + 1] <= len) ++whole;
    bool boundary = offs[whole] == len;
    std::string msg = read_error(cut);
    if (boundary) {
      EXPECT_EQ(msg, "") << len;
    } else {
      EXPECT_EQ(msg.rfind(cut + ": at byte " + std::to_string(offs[whole]) + ": truncated record",
                          0),
                0u)
          << len << ": " << msg;
    }
    auto r = open_trace(cut, true);
    auto got = read_all(*r);
    ASSERT_EQ(got.size(), whole) << len;
    if (whole) {
      EXPECT_TRUE(same_event(got.back(), all[whole - 1]));
    }
    EXPECT_EQ(r->salvage_stop().empty(), boundary) << len;
  }
  // Inside the header: an error even with salvage (there is no valid prefix).
  write_file(cut, full.substr(0, offs[0] - 3));
  EXPECT_NE(read_error(cut, true).find("truncated file header"), std::string::npos);
  write_file(cut, full.substr(0, 5));
  EXPECT_NE(read_error(cut, true).find("truncated file header (file is 5 bytes)"),
            std::string::npos);
  std::remove(path.c_str());
  std::remove(cut.c_str());
}

TEST(Record, HeaderCorruptionIsFatal) {
  std::string path = temp_path("hdr.bdt");
  write_with_offsets(path, one_of_each());
  std::string b = read_file(path);
  b[30] ^= 1;  // inside the kernel release string
  write_file(path, b);
  EXPECT_NE(read_error(path, true).find(": at byte 0: file header checksum mismatch"),
            std::string::npos);
  std::remove(path.c_str());
}

// Python-written fixtures (docs/record-format.md, independently implemented).
TEST(Record, ReadsTheIndependentlyWrittenFixtures) {
  auto r = open_trace(kBad + "truncated.bdt", /*salvage=*/true);
  EXPECT_EQ(r->header().kernel.release, "6.18.44");
  ASSERT_EQ(r->header().hooks.size(), 1u);
  EXPECT_EQ(r->header().hooks[0].mechanism, "tp_btf");
  EXPECT_EQ(r->header().mono_to_realtime_ns, 1'763'776'000'000'000'000);
  auto got = read_all(*r);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].type, EventType::DioBegin);
  EXPECT_EQ(got[0].comm_view(), "fio");
  EXPECT_EQ(got[0].fs.str(), "0123abcd-4567-89ef-0123-456789abcdef");
  EXPECT_EQ(got[0].dev, 45u);
  EXPECT_EQ(got[0].ino, 257u);
  const DioBegin* d = got[0].as<DioBegin>();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->pos, 4096u);
  EXPECT_EQ(d->count, 8192u);
  EXPECT_EQ(d->buf_addr, 0x7f00u);
  EXPECT_TRUE(d->write);
  EXPECT_FALSE(d->aio);
  const Ordered* o = got[1].as<Ordered>();
  ASSERT_TRUE(o);
  EXPECT_EQ(got[1].type, EventType::OeFinish);
  EXPECT_EQ(got[1].comm_view(), "kworker/u8:2");
  EXPECT_EQ(o->flags, oef::DIRECT | oef::IOERR);
  EXPECT_FALSE(o->uptodate);
  EXPECT_NE(r->salvage_stop().find("at byte 310: truncated record"), std::string::npos);

  auto c = open_trace(kBad + "corrupt-crc.bdt", true);
  EXPECT_EQ(read_all(*c).size(), 1u);

  // Unknown record types are skipped and counted; the bytes after a payload's
  // whole field list (appended fields included) are ignored.
  auto u = open_trace(kBad + "unknown-event-type.bdt");
  auto ev = read_all(*u);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(u->skipped_unknown(), 1u);
  ASSERT_EQ(ev[2].type, EventType::DioEnd);
  const auto* e = ev[2].as<DioEnd>();
  EXPECT_EQ(e->ret, 8192);
  EXPECT_EQ(e->write, std::optional<bool>(true));
  EXPECT_EQ(e->later_done, 3u);  // the appended fields, as the generator wrote them
  EXPECT_EQ(e->stalled_begin_ns, 1000u);
  EXPECT_EQ(e->stalled_tid, 11u);
  EXPECT_EQ(e->stalled_ino, 258u);
}

TEST(Record, OutOfOrderIsAnError) {
  std::string path = temp_path("ooo.bdt");
  auto all = one_of_each();
  {
    auto w = create_record(path, TraceHeader{});
    w->write(all[3]);
    w->write(all[1]);
  }
  std::string msg = read_error(path);
  EXPECT_NE(msg.find("event out of timestamp order"), std::string::npos) << msg;
  std::remove(path.c_str());
}

TEST(Record, CreateFailsWithInputError) {
  try {
    create_record("/nonexistent-dir/x.bdt", TraceHeader{});
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()),
              "/nonexistent-dir/x.bdt: cannot create record file: No such file or directory");
  }
}

TEST(Record, CreatesNewFiles0600AndRefusesExistingOrSymlink) {
  char t[] = "/tmp/bdt-record-excl-XXXXXX";
  ASSERT_TRUE(mkdtemp(t));
  const std::string dir = t, path = dir + "/r.bdt", link = dir + "/l.bdt", victim = dir + "/victim";
  { create_record(path, TraceHeader{}); }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  try {
    create_record(path, TraceHeader{});
    ADD_FAILURE() << "an existing file was overwritten";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("File exists (not overwritten"), std::string::npos) << e.what();
  }
  { FILE* v = std::fopen(victim.c_str(), "w"); std::fputs("keep", v); std::fclose(v); }
  ASSERT_EQ(::symlink(victim.c_str(), link.c_str()), 0);
  EXPECT_THROW(create_record(link, TraceHeader{}), InputError);
  ASSERT_EQ(::stat(victim.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 4);
  std::filesystem::remove_all(dir);
}

// Replaying a trace gives the same findings whatever form it was saved in:
// each detector timeline fixture is replayed as JSON lines, then re-encoded as
// JSON lines and as a binary record, and replayed again. Findings are compared
// as their full JSON (message, range, actors, evidence events, ...).
#include <filesystem>

#include "detectors/engine.h"
#include "core/event_json.h"

namespace {
std::vector<std::string> replay_findings(const std::string& path, size_t* events = nullptr) {
  auto rd = open_trace(path);
  DetectorConfig cfg;
  cfg.kernel = rd->header().kernel;
  Engine eng(cfg);
  Findings out;
  Event e;
  uint64_t last = 0;
  size_t n = 0;
  while (rd->next(e)) {
    last = e.ts_ns;
    eng.feed(e, out);
    ++n;
  }
  eng.finish(last, out);
  if (events) *events = n;
  std::vector<std::string> v;
  for (const Finding& f : out) {
    std::string s;
    append_finding_json(s, f);
    v.push_back(s);
  }
  return v;
}
}  // namespace

TEST(Record, SameFindingsFromJsonAndBinary) {
  namespace fsys = std::filesystem;
  size_t files = 0, with_findings = 0;
  for (const char* sub : {"seeds", "benign"}) {
    fsys::path dir = fsys::path(BDT_FIXTURES_DIR) / sub;
    if (!fsys::exists(dir)) continue;
    for (auto& ent : fsys::directory_iterator(dir)) {
      if (ent.path().extension() != ".jsonl") continue;
      SCOPED_TRACE(ent.path().string());
      ++files;
      size_t n = 0;
      auto want = replay_findings(ent.path().string(), &n);
      if (!want.empty()) ++with_findings;

      std::string bin = temp_path("replay.bdt"), js = temp_path("replay.jsonl");
      {
        auto rd = open_trace(ent.path().string());
        auto w = create_record(bin, rd->header());
        std::string text;
        append_header_json(text, rd->header());
        text += '\n';
        Event e;
        while (rd->next(e)) {
          w->write(e);
          append_event_json(text, e);
          text += '\n';
        }
        write_file(js, text);
      }
      size_t nb = 0, nj = 0;
      EXPECT_EQ(replay_findings(bin, &nb), want);
      EXPECT_EQ(replay_findings(js, &nj), want);
      EXPECT_EQ(nb, n);
      EXPECT_EQ(nj, n);
      std::remove(bin.c_str());
      std::remove(js.c_str());
    }
  }
  if (files == 0) GTEST_SKIP() << "no detector fixtures under " << BDT_FIXTURES_DIR;
  EXPECT_GT(with_findings, 0u);
}

// Random damage to a record file: only InputError (or a clean read where the
// damage hit nothing that matters, which the CRCs make essentially impossible
// past the header), never a crash; with salvage never an error past the header.
TEST(Record, RandomDamageOnlyGivesInputError) {
  std::string path = temp_path("fuzz.bdt"), bad = temp_path("fuzz-bad.bdt");
  auto offs = write_with_offsets(path, one_of_each());
  std::string full = read_file(path);
  std::mt19937_64 rng(5);
  size_t errors = 0;
  for (int k = 0; k < 200; ++k) {
    std::string m = full;
    size_t at = offs[0] + rng() % (m.size() - offs[0]);
    m[at] = static_cast<char>(m[at] ^ (1 + rng() % 255));
    write_file(bad, m);
    std::string err = read_error(bad);
    if (!err.empty()) ++errors;
    EXPECT_EQ(read_error(bad, true), "");
  }
  EXPECT_EQ(errors, 200u);
  std::remove(path.c_str());
  std::remove(bad.c_str());
}
