// JSON encoding of events and findings, and its inverse (event_from_json).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <random>

#include "core/event_json.h"
#include "replay/trace_reader.h"
#include "trace_samples.h"

using namespace bdt;
using namespace bdt::testing_samples;
using json = nlohmann::json;

namespace {
std::string enc(const Event& e) {
  std::string s;
  append_event_json(s, e);
  return s;
}
}  // namespace

TEST(EventJson, DioBeginExactText) {
  Event e = base_event(EventType::DioBegin, 123);
  e.body = DioBegin{4096, 8192, 0, true, false, true, true, 0, 0, 0, 0x1000, false, false};
  EXPECT_EQ(enc(e),
            "{\"ts_ns\":123,\"pid\":4242,\"tid\":4243,\"comm\":\"qemu-kvm\",\"type\":\"dio_begin\","
            "\"fs\":\"10171e25-2c33-3a41-484f-565d646b7279\",\"dev\":45,\"ino\":257,"
            "\"pos\":4096,\"count\":8192,\"done_before\":0,\"write\":true,\"aio\":false,"
            "\"buf_shared\":true,\"buf_writable\":true,\"buf_file_dev\":0,\"buf_file_ino\":0,"
            "\"buf_file_off\":0,\"buf_addr\":4096,\"nodatasum\":false,\"partial\":false}");
  EXPECT_EQ(test_fsid().str(), "10171e25-2c33-3a41-484f-565d646b7279");
}

TEST(EventJson, FieldsPerTypeAsDesign) {
  auto all = one_of_each();
  for (const Event& e : all) {
    json j = json::parse(enc(e));
    SCOPED_TRACE(j.dump());
    for (const char* k : {"ts_ns", "pid", "tid", "comm", "type", "fs", "dev", "ino"})
      EXPECT_TRUE(j.contains(k)) << k;
    EXPECT_EQ(j["type"], std::string(to_string(e.type)));
    EXPECT_EQ(j["fs"], e.fs.str());
  }
  json j = json::parse(enc(all[0]));
  EXPECT_EQ(j["vm"], "guest-01");
  EXPECT_EQ(j["image"], "/var/lib/libvirt/images/guest-01.raw");
  EXPECT_FALSE(json::parse(enc(all[1])).contains("vm"));
  EXPECT_FALSE(json::parse(enc(all[1])).contains("image"));

  // dio_end: negative errno, direction when known.
  j = json::parse(enc(all[1]));
  EXPECT_EQ(j["ret"], -17);
  EXPECT_EQ(j["error"], -17);
  EXPECT_EQ(j["write"], true);
  // get_extent enter: no result fields; exit: all of them.
  j = json::parse(enc(all[2]));
  EXPECT_EQ(j["phase"], "enter");
  EXPECT_FALSE(j.contains("em_start"));
  EXPECT_FALSE(j.contains("ret"));
  j = json::parse(enc(all[3]));
  EXPECT_EQ(j["phase"], "exit");
  for (const char* k : {"start", "len", "em_start", "em_len", "block_start", "ret"})
    EXPECT_TRUE(j.contains(k)) << k;
  // em_exist: the tracepoint's six fields.
  j = json::parse(enc(all[5]));
  for (const char* k : {"e_start", "e_len", "map_start", "map_len", "start", "len"})
    EXPECT_TRUE(j.contains(k)) << k;
  // ordered extents: flag names without prefix, in table order.
  j = json::parse(enc(all[9]));
  EXPECT_EQ(j["type"], "oe_mark_finished");
  EXPECT_EQ(j["flags"], json::parse(R"(["DIRECT","COMPLETE","IOERR"])"));
  EXPECT_EQ(j["uptodate"], false);
  // extent buffers.
  j = json::parse(enc(all[12]));
  EXPECT_EQ(j["type"], "eb_free");
  EXPECT_EQ(j["phase"], "enter");
  EXPECT_EQ(j["bflags"], json::parse(R"(["DIRTY","TREE_REF","STALE"])"));
  EXPECT_EQ(j["refs"], 1);
  EXPECT_EQ(j["eb_start"], 30408704);
  EXPECT_FALSE(json::parse(enc(all[13])).contains("phase"));  // Phase::None
  // ioctl: command by name.
  j = json::parse(enc(all[15]));
  EXPECT_EQ(j["cmd"], "send");
  EXPECT_EQ(json::parse(enc(all[16]))["cmd"], "balance_v2");
  EXPECT_EQ(json::parse(enc(all[16]))["ret"], -11);
  EXPECT_EQ(json::parse(enc(all[18]))["block_group"], 22020096);
  j = json::parse(enc(all[19]));
  EXPECT_EQ(j["offset"], 8192);
  EXPECT_EQ(j["mirror"], 2);
}

TEST(EventJson, UnnamedFlagBitsSurvive) {
  Event e = base_event(EventType::OeFinish, 5);
  e.body = Ordered{0, 4096, oef::IOERR | (1u << 20), false};
  json j = json::parse(enc(e));
  EXPECT_EQ(j["flags"], json::parse(R"(["IOERR","BIT20"])"));
  StringTable st;
  Event back;
  event_from_json(enc(e), back, st);
  EXPECT_TRUE(same_event(e, back));
}

TEST(EventJson, StringEscaping) {
  Event e = base_event(EventType::DioEnd, 9);
  e.body = DioEnd{};
  e.set_comm("a\"b\\c\n\x01\xc3\xa9");  // quote, backslash, newline, control, é
  std::string vm = "vm \"x\"\t\x7f";
  std::string image = std::string("/img/\xff\xfe.raw");  // invalid UTF-8
  e.vm = vm;
  e.image = image;
  std::string s = enc(e);
  EXPECT_EQ(s.find('\n'), std::string::npos);
  json j = json::parse(s);  // must be valid JSON (nlohmann rejects bad UTF-8)
  EXPECT_EQ(j["comm"], "a\"b\\c\n\x01\xc3\xa9");
  EXPECT_EQ(j["vm"], vm);
  EXPECT_EQ(j["image"], "/img/\xc3\xbf\xc3\xbe.raw");  // bytes read back as Latin-1
}

TEST(EventJson, RoundTripEveryType) {
  auto all = one_of_each();
  std::vector<bool> seen(kEventTypeCount + 1);
  StringTable st;
  for (const Event& e : all) {
    Event back;
    event_from_json(enc(e), back, st);
    EXPECT_TRUE(same_event(e, back)) << enc(e);
    seen[static_cast<int>(e.type)] = true;
  }
  for (int t = 1; t <= kEventTypeCount; ++t)
    EXPECT_TRUE(seen[t]) << "no sample for " << to_string(static_cast<EventType>(t));
}

TEST(EventJson, RoundTripRandomProperty) {
  std::mt19937_64 rng(20261122);
  std::deque<std::string> keep;
  StringTable st;
  for (int i = 0; i < 4000; ++i) {
    auto t = static_cast<EventType>(1 + i % kEventTypeCount);
    Event e = random_decodable_event(rng, t, rng(), keep);
    std::string s = enc(e);
    Event back;
    ASSERT_NO_THROW(event_from_json(s, back, st)) << s;
    ASSERT_TRUE(same_event(e, back)) << s;
    std::string again = enc(back);
    ASSERT_EQ(s, again);
  }
}

TEST(EventJson, DecodeDefaultsAndMinimalLines) {
  StringTable st;
  Event e;
  // Only what docs/events.md marks as required.
  event_from_json(R"({"ts_ns":7,"type":"dio_begin","pos":0,"count":4096})", e, st);
  EXPECT_EQ(e.ts_ns, 7u);
  EXPECT_EQ(e.pid, 0u);
  EXPECT_EQ(e.comm_view(), "");
  EXPECT_TRUE(e.fs.empty());
  ASSERT_TRUE(e.as<DioBegin>());
  EXPECT_FALSE(e.as<DioBegin>()->write);
  EXPECT_EQ(e.as<DioBegin>()->count, 4096u);
  event_from_json(R"({"ts_ns":7,"type":"oe_finish","file_offset":0,"len":4096})", e, st);
  EXPECT_TRUE(e.as<Ordered>()->uptodate);  // event.h default
  EXPECT_EQ(e.as<Ordered>()->flags, 0u);
  event_from_json(R"({"ts_ns":7,"type":"eb_find","eb_start":1})", e, st);
  EXPECT_EQ(e.as<ExtentBuffer>()->phase, Phase::None);
  event_from_json(R"({"ts_ns":7,"type":"dio_end","ret":-5})", e, st);
  EXPECT_FALSE(e.as<DioEnd>()->write.has_value());
  event_from_json(R"({"ts_ns":7,"type":"reloc_begin"})", e, st);
  EXPECT_TRUE(e.as<Reloc>());
  // Unknown fields are ignored (a newer writer's additions).
  event_from_json(R"({"ts_ns":7,"type":"csum_error","offset":1,"len":2,"future":[1,2]})", e,
                  st);
  EXPECT_EQ(e.as<CsumError>()->len, 2u);
  // comm is cut to 15 bytes as the kernel does.
  event_from_json(R"({"ts_ns":7,"type":"dio_end","ret":0,"comm":"qemu-system-x86_64"})", e, st);
  EXPECT_EQ(e.comm_view(), "qemu-system-x86");
  // get_extent without phase: exit (event.h default).
  event_from_json(R"({"ts_ns":7,"type":"get_extent","start":0,"len":4096,"ret":-17})", e, st);
  EXPECT_EQ(e.as<GetExtent>()->phase, Phase::Exit);
  EXPECT_EQ(e.as<GetExtent>()->ret, -17);
  // The kernel's prefixed flag spelling is accepted.
  event_from_json(
      R"({"ts_ns":7,"type":"oe_finish","file_offset":0,"len":1,"flags":["BTRFS_ORDERED_IOERR","DIRECT"]})",
      e, st);
  EXPECT_EQ(e.as<Ordered>()->flags, oef::IOERR | oef::DIRECT);
  event_from_json(R"({"ts_ns":7,"type":"eb_find","eb_start":1,"bflags":["EXTENT_BUFFER_STALE"]})",
                  e, st);
  EXPECT_EQ(e.as<ExtentBuffer>()->bflags, ebf::STALE);
  // A command name this version does not know reads as "other".
  event_from_json(R"({"ts_ns":7,"type":"ioctl_begin","cmd":"scrub"})", e, st);
  EXPECT_EQ(e.as<Ioctl>()->cmd, IoctlCmd::Other);
}

TEST(EventJson, DecodeErrorsNameTheField) {
  StringTable st;
  Event e;
  auto err = [&](const char* line) -> std::string {
    try {
      event_from_json(line, e, st);
    } catch (const InputError& x) {
      return x.what();
    }
    return "<no error>";
  };
  EXPECT_EQ(err(R"({"type":"dio_end","ret":0})"), "missing required field \"ts_ns\"");
  EXPECT_EQ(err(R"({"ts_ns":1,"ret":0})"), "missing required field \"type\"");
  EXPECT_EQ(err(R"({"ts_ns":1,"type":"dio_begin","count":1})"),
            "missing required field \"pos\"");
  EXPECT_EQ(err(R"({"ts_ns":1,"type":"dio_begin","pos":"0","count":1})"),
            "field \"pos\" must be a non-negative integer, got string");
  EXPECT_EQ(err(R"({"ts_ns":1,"type":"dio_begin","pos":-4096,"count":1})"),
            "field \"pos\" must be a non-negative integer, got -4096");
  EXPECT_EQ(err(R"({"ts_ns":1.5,"type":"dio_end","ret":0})"),
            "field \"ts_ns\" must be a non-negative integer, got a fractional number");
  EXPECT_EQ(err(R"({"ts_ns":1,"type":"dio_begin","pos":0,"count":1,"write":1})"),
            "field \"write\" must be true or false, got an integer");
  EXPECT_EQ(err(R"({"ts_ns":1,"type":"dio_end","ret":0,"pid":4294967296})"),
            "field \"pid\" out of range: 4294967296 (max 4294967295)");
  EXPECT_EQ(err(R"({"ts_ns":1,"type":"dio_end","ret":0,"fs":"nope"})"),
            "field \"fs\" is not a filesystem UUID: \"nope\"");
  EXPECT_EQ(err(R"({"ts_ns":1,"type":"get_extent","phase":"middle","start":0,"len":1})"),
            "field \"phase\" must be \"enter\" or \"exit\", got \"middle\"");
  EXPECT_NE(err(R"({"ts_ns":1,"type":"oe_add","file_offset":0,"len":1,"flags":["DIRECTIO"]})")
                .find("unknown ordered-extent flag \"DIRECTIO\""),
            std::string::npos);
  EXPECT_EQ(err(R"({"ts_ns":1,"type":"oe_add","file_offset":0,"len":1,"flags":6})"),
            "field \"flags\" must be an array of flag names, got an integer");
  EXPECT_EQ(err(R"({"ts_ns":1,"type":"bogus"})"), "unknown event type \"bogus\"");
  EXPECT_EQ(err(R"([1,2])"), "expected a JSON object, got array");
  EXPECT_NE(err(R"({"ts_ns":1,)").find("not valid JSON"), std::string::npos);
}

TEST(EventJson, InternedStringsAreShared) {
  StringTable st;
  Event a, b;
  event_from_json(R"({"ts_ns":1,"type":"reloc_begin","vm":"g1","image":"/i"})", a, st);
  event_from_json(R"({"ts_ns":2,"type":"reloc_begin","vm":"g1"})", b, st);
  EXPECT_EQ(a.vm.data(), b.vm.data());
  EXPECT_EQ(st.size(), 2u);
  EXPECT_EQ(a.image, "/i");
}

TEST(FindingJson, Contract) {
  Finding f = sample_finding();
  f.ts_ns = 99;
  f.explanation = "why";
  auto all = one_of_each();
  f.evidence = {all[0], all[1]};
  std::string s;
  append_finding_json(s, f);
  json j = json::parse(s);
  EXPECT_EQ(j["type"], "finding");
  EXPECT_EQ(j["detector"], "dio-short-write");
  EXPECT_EQ(j["kind"], "acked-hole");
  EXPECT_EQ(j["level"], "symptom");
  EXPECT_EQ(j["severity"], "critical");
  EXPECT_EQ(j["ts_ns"], 99);
  EXPECT_EQ(j["pid"], 10);
  EXPECT_EQ(j["tid"], 11);
  EXPECT_EQ(j["comm"], "fio");
  EXPECT_EQ(j["fs"], test_fsid().str());
  EXPECT_EQ(j["dev"], 45);
  EXPECT_EQ(j["ino"], 257);
  EXPECT_EQ(j["range"], json::parse("[4096,8192]"));
  EXPECT_EQ(j["message"], f.message);
  EXPECT_EQ(j["explanation"], "why");
  EXPECT_EQ(j["exposure"], "fixed in 6.x");
  ASSERT_EQ(j["actors"].size(), 2u);
  EXPECT_EQ(j["actors"][1]["role"], "worker");
  EXPECT_EQ(j["actors"][1]["tid"], 12);
  ASSERT_EQ(j["evidence"].size(), 2u);
  EXPECT_EQ(j["evidence"][0], json::parse(enc(all[0])));
  EXPECT_EQ(j["vm"], "guest");
  EXPECT_FALSE(j.contains("image"));
  EXPECT_FALSE(j.contains("stack"));

  Finding g;
  g.detector = "send-vs-relocation";
  g.stack = {"btrfs_ioctl_send+0x10", "__x64_sys_ioctl"};
  s.clear();
  append_finding_json(s, g);
  j = json::parse(s);
  EXPECT_EQ(j["level"], "hazard");
  EXPECT_EQ(j["severity"], "info");
  EXPECT_FALSE(j.contains("dev"));
  EXPECT_FALSE(j.contains("ino"));
  EXPECT_FALSE(j.contains("range"));
  EXPECT_EQ(j["stack"].size(), 2u);
  EXPECT_TRUE(j["evidence"].is_array());
  EXPECT_TRUE(j["actors"].is_array());
}

TEST(HeaderJson, Text) {
  TraceHeader h;
  std::string s;
  append_header_json(s, h);
  EXPECT_EQ(s, "{\"schema\":\"btrfs-dio-trace.events/1\"}");
  h.kernel = *KernelVersion::parse("6.18.44");
  h.mono_to_realtime_ns = 1763776000000000000;
  h.hooks = {{"iomap_dio_rw_begin", "tp_btf", true}};
  s.clear();
  append_header_json(s, h);
  json j = json::parse(s);
  EXPECT_EQ(j["kernel"], "6.18.44");
  EXPECT_EQ(j["mono_to_realtime_ns"], 1763776000000000000);
  EXPECT_EQ(j["hooks"][0]["mechanism"], "tp_btf");
}

// Damaged lines never crash the decoder and never escape as anything but
// InputError: every prefix of every sample line, and random byte changes.
TEST(EventJson, DamagedLinesOnlyGiveInputError) {
  auto all = one_of_each();
  Finding f;
  f.detector = "em-merge-race";
  f.actors = {{1, 2, "a", "reader"}};
  f.evidence = {all[0], all[9]};
  std::vector<std::string> lines;
  for (const Event& e : all) lines.push_back(enc(e));
  std::string fl;
  append_finding_json(fl, f);
  lines.push_back(fl);
  lines.push_back("[1,[2,{\"a\":[3]}],\"x\"]");
  lines.push_back("{\"ts_ns\":1,\"type\":\"oe_add\",\"file_offset\":0,\"len\":1,\"flags\":[[\"DIRECT\"],{}]}");
  StringTable st;
  Event e;
  std::mt19937_64 rng(3);
  size_t errors = 0, ok = 0;
  auto attempt = [&](const std::string& s) {
    try {
      event_from_json(s, e, st);
      ++ok;
    } catch (const InputError& x) {
      ++errors;
      EXPECT_EQ(std::string(x.what()).find('\n'), std::string::npos);
    }
  };
  const char kBytes[] = "{}[]\",:0-9aetfn\\ \x01\x80";
  for (const std::string& l : lines) {
    for (size_t n = 0; n <= l.size(); ++n) attempt(l.substr(0, n));
    for (int k = 0; k < 300; ++k) {
      std::string m = l;
      m[rng() % m.size()] = kBytes[rng() % (sizeof kBytes - 1)];
      attempt(m);
    }
  }
  EXPECT_GT(errors, 1000u);
  EXPECT_GT(ok, 20u);
}

// The fs id and the comm take shortcuts in the writer (the last fs id's text
// kept in a memo, one copy of a plain comm); their text must stay Fsid::str()
// and the comm's JSON string (up to its first NUL, or all 16 bytes without
// one), for any bytes, and a memo must not change a byte.
TEST(EventJson, FsAndCommAsTheirGeneralForms) {
  std::mt19937_64 rng(7);
  EventJsonMemo memo;
  Fsid last;
  const char special[] = {'"', '\\', '\n', '\x01', '\x1f', '\x7f', '\x80', '\xc3', '\xa9', '\xff', 0};
  for (int i = 0; i < 20000; ++i) {
    Event e = base_event(EventType::DioEnd, 1);
    e.body = DioEnd{};
    for (auto& b : e.fs.b) b = static_cast<uint8_t>(rng());
    if (i % 7 == 0) e.fs = Fsid{};
    if (i % 2 == 1) e.fs = last;  // the memo's fs again
    if (i % 10 == 5) e.fs.b[rng() % 16] ^= 1;  // one bit off the memo's
    last = e.fs;
    for (auto& c : e.comm) {
      const uint64_t r = rng() % 20;
      c = r < 15 ? static_cast<char>(' ' + rng() % 95) : special[rng() % sizeof special];
    }
    if (i % 3 == 0) e.comm[rng() % 16] = 0;  // a NUL inside, bytes after it to ignore
    std::string want_comm;
    append_json_string(want_comm, e.comm_view());
    const std::string s = enc(e);
    ASSERT_NE(s.find(",\"comm\":" + want_comm + ",\"type\":"), std::string::npos) << s;
    ASSERT_NE(s.find(",\"fs\":\"" + e.fs.str() + "\","), std::string::npos) << s;
    std::string with_memo(event_json_max(e), '\0');
    with_memo.resize(static_cast<size_t>(write_event_json(with_memo.data(), e, &memo) - with_memo.data()));
    ASSERT_EQ(with_memo, s);
  }
}

// A flag word's list comes from the memo when the word and its name table are
// one of the last two's: the same bytes as without a memo, for repeated, changed,
// unnamed (BITn) and long lists (too long to keep), ordered-extent and
// extent-buffer words interleaved.
TEST(EventJson, FlagsFromTheMemoAsWithout) {
  std::mt19937_64 rng(11);
  EventJsonMemo memo;
  uint32_t last = 0;
  size_t hits = 0, long_lists = 0;
  for (int i = 0; i < 20000; ++i) {
    const bool eb = rng() % 4 == 0;
    Event e = base_event(eb ? EventType::EbFind : EventType::OeRemove, 1);
    uint32_t bits = static_cast<uint32_t>(rng());
    switch (i % 5) {
      case 0: bits &= oef::NOCOW | oef::DIRECT | oef::IOERR; break;
      case 1: bits = last; ++hits; break;  // the memo's word again (if the table is the same)
      case 2: bits = last ^ (1u << (rng() % 32)); break;  // one bit off
      case 3: bits = 0; break;
      default: break;  // any bits: unnamed ones too, a list too long to keep
    }
    last = bits;
    if (eb) e.body = ExtentBuffer{Phase::None, 4096, 1, bits, 0};
    else e.body = Ordered{0, 4096, bits, true};
    const std::string s = enc(e);
    if (s.size() > 300) ++long_lists;
    std::string with_memo(event_json_max(e), '\0');
    with_memo.resize(static_cast<size_t>(write_event_json(with_memo.data(), e, &memo) - with_memo.data()));
    ASSERT_EQ(with_memo, s) << i;
  }
  EXPECT_GT(hits, 1000u);
  EXPECT_GT(long_lists, 100u);
}

// The comm's plain run is found eight bytes at a time: every byte value at
// every place, after a plain prefix, with a NUL right after it, later, or
// none, and one more such byte after it (bytes past a NUL are ignored) gives
// the comm's JSON string.
TEST(EventJson, CommEveryByteAtEveryPlace) {
  Event e = base_event(EventType::DioEnd, 1);
  e.body = DioEnd{};
  size_t checked = 0;
  for (int v = 0; v < 256; ++v)
    for (size_t at = 0; at < 16; ++at)
      for (int tail = 0; tail < 3; ++tail) {
        for (size_t i = 0; i < 16; ++i) e.comm[i] = static_cast<char>('a' + i);
        e.comm[at] = static_cast<char>(v);
        if (tail == 0 && at + 1 < 16) e.comm[at + 1] = 0;
        if (tail == 1 && at + 3 < 16) e.comm[at + 3] = 0, e.comm[at + 2] = static_cast<char>(255 - v);
        if (tail == 2 && at > 1) e.comm[at - 2] = 0;  // the byte is past the NUL
        std::string want;
        append_json_string(want, e.comm_view());
        const std::string s = enc(e);
        ASSERT_NE(s.find(",\"comm\":" + want + ",\"type\":"), std::string::npos) << v << " at " << at;
        ++checked;
      }
  EXPECT_EQ(checked, 256u * 16 * 3);
}

// The head's memo (the last four threads' `"pid"..."comm"` text, the last
// file's `"fs"..."ino"` text, the digits of ts_ns / 10^8): the same bytes as
// without a memo, for threads and files repeated, alternating among more than
// the memo keeps, one field off, comms too long to keep (escaped), the
// numbers' limits, and ts_ns across 10^8 boundaries and below 10^8.
TEST(EventJson, HeadFromTheMemoAsWithout) {
  std::mt19937_64 rng(13);
  EventJsonMemo memo;
  struct Thread {
    uint32_t pid, tid;
    std::string comm;
  };
  const std::vector<Thread> threads = {
      {100, 101, "fio"},
      {100, 102, "fio"},
      {38, 38, "kworker/u8:2"},
      {4294967295u, 0, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"},  // too long to keep
      {7, 7, "a\"b"},
      {100, 101, "fio2"},
      {0, 4294967295u, ""}};
  std::vector<Fsid> fss(3);
  for (auto& f : fss)
    for (auto& b : f.b) b = static_cast<uint8_t>(rng());
  const uint64_t big[] = {0, 9, 10, 99, 100, 999, 1000, 9999, 10000, 99999999, 100000000, UINT64_MAX};
  uint64_t ts = 99'999'990;
  size_t thread_hits = 0, file_hits = 0;
  for (int i = 0; i < 30000; ++i) {
    Event e = base_event(i % 3 ? EventType::DioEnd : EventType::DioBegin, 1);
    if (i % 3) e.body = DioEnd{};
    const size_t ti = rng() % 10 < 7 ? rng() % 3 : rng() % threads.size();  // mostly the first three
    e.pid = threads[ti].pid;
    e.tid = threads[ti].tid;
    e.set_comm(threads[ti].comm);
    if (i % 11 == 0) e.comm[15] = 'x';  // differs from the kept comm past its NUL only
    e.fs = fss[rng() % 10 < 8 ? 0 : rng() % fss.size()];
    e.dev = rng() % 10 < 8 ? 41 : big[rng() % std::size(big)];
    e.ino = rng() % 10 < 8 ? 258 : big[rng() % std::size(big)];
    switch (rng() % 8) {
      case 0: ts += 100'000'000 * (rng() % 3); break;  // another 0.1 s
      case 1: ts = rng() % 200'000'000; break;          // around the first boundary
      case 2: ts = big[rng() % std::size(big)]; break;
      default: ts += rng() % 1'000'000; break;
    }
    e.ts_ns = ts;
    const std::string s = enc(e);
    std::string with_memo(event_json_max(e), '\0');
    with_memo.resize(static_cast<size_t>(write_event_json(with_memo.data(), e, &memo) - with_memo.data()));
    ASSERT_EQ(with_memo, s) << i;
    if (ti < 3) ++thread_hits;
    if (e.dev == 41 && e.ino == 258) ++file_hits;
  }
  EXPECT_GT(thread_hits, 15000u);
  EXPECT_GT(file_hits, 15000u);
}
