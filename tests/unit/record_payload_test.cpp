// Payloads of the binary --record format across versions (bdt/event_fields.h,
// "Adding a field"; docs/record-format.md, "Reading rules"): a body that ends
// at an appended field (an older writer's) reads with the missing fields at
// their defaults, a body that ends inside a field or before the payload's
// minimum is a one-line error, and bytes after the known fields (a newer
// writer's) are skipped. Shown on a payload list of this file's own, which has
// appended fields of every kind, and on every real type through the reader.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <variant>

#include "bdt/event_fields.h"
#include "core/event_json.h"
#include "replay/input.h"
#include "replay/record_codec.h"
#include "replay/trace_reader.h"
#include "trace_samples.h"

using namespace bdt;
using namespace bdt::testing_samples;
namespace recfmt = bdt::replay::recfmt;

// ---- a payload with appended fields ------------------------------------------------
namespace bdt {
// Two bools in the flag byte between two integers (its minimum: 8 + 4 + 1
// bytes), then appended: an integer, a plain bool, an optional bool, an enum
// and another integer, with defaults that are not zero.
struct Grown {
  uint64_t a = 0;
  bool f0 = false;
  int32_t b = 0;
  bool f1 = false;
  uint32_t c = 7;          // appended
  bool d = true;           // appended: a plain u8
  std::optional<bool> e;   // appended
  Phase ph = Phase::Exit;  // appended
  int64_t g = -3;          // appended
  bool operator==(const Grown&) const = default;
};
// Lists that break the rule, for well_formed().
template <int V>
struct BadGrown {
  uint64_t a = 0;
  uint64_t b = 0;
  bool f = false;
};
}  // namespace bdt

namespace bdt::fields {
// No raw source (these lists never decode BPF records); one type, so that a
// ?: can choose between two lines.
struct NoRaw {
  template <class C>
  constexpr int operator()(const bdt_raw_event&, const C&) const {
    return 0;
  }
};
#define NO_RAW raw(NoRaw{})
template <> struct FieldList<Grown> {
  using P = Grown;
  static constexpr auto list = std::tuple{
      field<&P::a>("a").required().NO_RAW,
      field<&P::f0>("f0").bit(0).NO_RAW,
      field<&P::b>("b").NO_RAW,
      field<&P::f1>("f1").bit(1).NO_RAW,
      field<&P::c>("c").appended().NO_RAW,
      field<&P::d>("d").appended().NO_RAW,
      field<&P::e>("e").appended().NO_RAW,
      field<&P::ph>("ph").appended().NO_RAW,
      field<&P::g>("g").appended().NO_RAW,
  };
};
// V 1: a field after an appended one is not appended. 2: an appended bool in
// the flag byte. 3: an appended field required. 0: valid.
template <int V> struct FieldList<BadGrown<V>> {
  using P = BadGrown<V>;
  static constexpr auto list = std::tuple{
      field<&P::a>("a").NO_RAW,
      V == 3 ? field<&P::b>("b").appended().required().NO_RAW : field<&P::b>("b").appended().NO_RAW,
      V == 1   ? field<&P::f>("f").NO_RAW
      : V == 2 ? field<&P::f>("f").appended().bit(0).NO_RAW
               : field<&P::f>("f").appended().NO_RAW,
  };
};
#undef NO_RAW
}  // namespace bdt::fields

// fields::detail::well_formed() (a static_assert for the real lists) holds for
// these and refuses the three ways of breaking the rule.
static_assert(fields::detail::well_formed<Grown>());
static_assert(fields::detail::well_formed<BadGrown<0>>());
static_assert(!fields::detail::well_formed<BadGrown<1>>(), "non-appended after appended");
static_assert(!fields::detail::well_formed<BadGrown<2>>(), "appended bool in the flag byte");
static_assert(!fields::detail::well_formed<BadGrown<3>>(), "appended and required");

TEST(RecordPayload, LengthsFollowTheList) {
  constexpr auto ends = recfmt::payload_ends<Grown>();
  EXPECT_EQ(std::vector<size_t>(ends.begin(), ends.end()),
            (std::vector<size_t>{13, 17, 18, 19, 20, 28}));
  EXPECT_EQ(recfmt::min_payload_size<Grown>(), 13u);
  EXPECT_EQ(recfmt::payload_size<Grown>(), 28u);
}

// Every length from 0 to a few bytes past the whole payload: a body cut at an
// appended field reads with that field and the ones after it at their
// defaults; one cut inside a field or before the minimum is an error; bytes
// past the list are left unread.
TEST(RecordPayload, ReadsEveryAppendedBoundaryAndRejectsTheRest) {
  const Grown full{0x1122334455667788, true, -5, true, 0xabcdef01, false, false, Phase::Enter,
                   -77};
  std::string bytes;
  recfmt::Out o{&bytes};
  recfmt::encode_payload(o, full);
  ASSERT_EQ(bytes.size(), 28u);
  bytes += std::string("\x09\x08\x07\x06", 4);  // a newer writer's appended field
  // What a body of each valid length reads as.
  auto want = [&](size_t len) {
    Grown g;
    g.a = full.a, g.f0 = full.f0, g.b = full.b, g.f1 = full.f1;
    if (len >= 17) g.c = full.c;
    if (len >= 18) g.d = full.d;
    if (len >= 19) g.e = full.e;
    if (len >= 20) g.ph = full.ph;
    if (len >= 28) g.g = full.g;
    return g;
  };
  const std::vector<size_t> valid = {13, 17, 18, 19, 20};
  size_t read = 0, refused = 0;
  for (size_t len = 0; len <= bytes.size(); ++len) {
    SCOPED_TRACE(len);
    recfmt::In in{reinterpret_cast<const uint8_t*>(bytes.data()), len};
    Grown got;
    const bool ok = len >= 28 || std::count(valid.begin(), valid.end(), len);
    try {
      recfmt::decode_payload(in, got, EventType::DioEnd);
      EXPECT_TRUE(ok) << "read a payload cut inside a field";
      EXPECT_EQ(got, want(len));
      EXPECT_EQ(got.g, len >= 28 ? full.g : -3);
      EXPECT_EQ(in.i, std::min<size_t>(len, 28));  // past the list: not read
      ++read;
    } catch (const recfmt::Corrupt& c) {
      EXPECT_FALSE(ok) << c.why;
      EXPECT_EQ(c.why.find('\n'), std::string::npos);
      if (len < 13) {
        EXPECT_EQ(c.why, "dio_end payload too short: " + std::to_string(len) +
                             " bytes (at least 13)");
      } else {
        EXPECT_EQ(c.why, "dio_end payload of " + std::to_string(len) +
                             " bytes ends inside a field (its fields end after 13, 17, 18, 19, "
                             "20 or 28 bytes)");
      }
      ++refused;
    }
  }
  EXPECT_EQ(read, 5u + 5u);  // the five cuts, the whole payload and 1..4 bytes more
  EXPECT_EQ(refused, 13u + 3u + 7u);  // 0..12, 14..16 and 21..27
}

// ---- the real payloads, through the record reader ------------------------------------
// The minimum of every payload: its fields as the first files of format 1
// wrote them (docs/record-format.md's payload table). An old file has bodies
// this long, so these numbers never change: a field added to a list without
// .appended() changes one and fails here (and such files would not read).
TEST(RecordPayload, MinimaAreTheFirstFormatOnePayloads) {
  EXPECT_EQ(recfmt::min_payload_size<DioBegin>(), 7 * 8 + 1u);
  EXPECT_EQ(recfmt::min_payload_size<DioEnd>(), 8 + 8 + 4 + 1u);
  EXPECT_EQ(recfmt::min_payload_size<GetExtent>(), 1 + 6 * 8u);
  EXPECT_EQ(recfmt::min_payload_size<EmAdd>(), 4 * 8u);
  EXPECT_EQ(recfmt::min_payload_size<EmExist>(), 6 * 8u);
  EXPECT_EQ(recfmt::min_payload_size<Ordered>(), 8 + 8 + 4 + 1u);
  EXPECT_EQ(recfmt::min_payload_size<ExtentBuffer>(), 1 + 8 + 4 + 4 + 8u);
  EXPECT_EQ(recfmt::min_payload_size<Ioctl>(), 4 + 1 + 8u);
  EXPECT_EQ(recfmt::min_payload_size<Reloc>(), 8 + 8u);
  EXPECT_EQ(recfmt::min_payload_size<CsumError>(), 8 + 8 + 4u);
  EXPECT_EQ(recfmt::min_payload_size<DioFallback>(), 8 + 8 + 4 + 1 + 1u);
  static_assert(std::variant_size_v<Payload> == 11, "a payload was added: state its minimum here");
}

namespace {

// A record file holding `head` (the file header) and one record whose body is
// `body`, framed with its length and CRC.
std::string with_record(const std::string& head, const std::string& body) {
  std::string b = head;
  uint8_t len[4];
  for (int k = 0; k < 4; ++k) len[k] = static_cast<uint8_t>(body.size() >> (8 * k));
  uint32_t crc = replay::crc32({len, 4});
  crc = replay::crc32({reinterpret_cast<const uint8_t*>(body.data()), body.size()}, crc);
  b.append(reinterpret_cast<const char*>(len), 4);
  for (int k = 0; k < 4; ++k) b.push_back(static_cast<char>(crc >> (8 * k)));
  return b + body;
}

// `e` as a reader gives it from a payload of `len` bytes: the appended fields
// that start at or after len keep their defaults.
Event cut_to(const Event& e, size_t len) {
  Event c = e;
  c.body = payload_for(e.type);
  std::visit(
      [&](auto& p) {
        using P = std::remove_cvref_t<decltype(p)>;
        const P& full = std::get<P>(e.body);
        size_t at = recfmt::flag_byte_at<P>() >= 0 ? 1 : 0;
        fields::for_each<P>([&](const auto& d) {
          if (!d.a.appended || at < len) d.ref(p) = d.ref(full);
          at += recfmt::field_size<P>(d);
        });
      },
      c.body);
  return c;
}

}  // namespace

// Every type: its record re-framed with the payload cut to every length up to
// the whole, and with bytes added after it. The lengths payload_ends() allows
// read (the missing appended fields at their defaults), the others give one
// line naming the record's offset; longer bodies read as the whole payload.
TEST(RecordPayload, ReaderTakesEveryAllowedLengthOfEveryType) {
  const std::string src = temp_path("payload-whole.bdt"), path = temp_path("payload-cut.bdt");
  size_t cuts_read = 0, refused = 0, longer = 0;
  for (const Event& e : one_of_each()) {
    std::visit(
        [&](const auto& p) {
          using P = std::remove_cvref_t<decltype(p)>;
          constexpr auto ends = recfmt::payload_ends<P>();
          { create_record(src, TraceHeader{})->write(e); }
          const std::string file = read_file(src);
          std::remove(src.c_str());
          const size_t whole = ends.back();
          // The file header (16 bytes, its body, its CRC), then the one record.
          const auto* b = reinterpret_cast<const uint8_t*>(file.data());
          const size_t rec_at = 16 + recfmt::get_le32(b + 12) + 4;
          const size_t body_at = file.size() - whole;  // the payload's offset
          ASSERT_EQ(rec_at + 8 + recfmt::get_le32(b + rec_at), file.size());
          const std::string head = file.substr(0, rec_at);
          const std::string common = file.substr(rec_at + 8, body_at - rec_at - 8);
          const std::string payload = file.substr(body_at);
          for (size_t len = 0; len <= whole + 4; ++len) {
            SCOPED_TRACE(std::string(to_string(e.type)) + " payload of " + std::to_string(len));
            std::string body = common + payload.substr(0, std::min(len, whole));
            if (len > whole) body += std::string(len - whole, '\x5a');
            write_file(path, with_record(head, body));
            const bool ok = len >= whole || std::count(ends.begin(), ends.end(), len);
            try {
              auto r = open_trace(path);
              auto got = read_all(*r);
              EXPECT_TRUE(ok) << "read";
              ASSERT_EQ(got.size(), 1u);
              EXPECT_TRUE(same_event(got[0], cut_to(e, len)));
              if (len < whole) ++cuts_read;
              if (len > whole) ++longer;
            } catch (const InputError& x) {
              const std::string msg = x.what();
              EXPECT_FALSE(ok) << msg;
              EXPECT_EQ(msg.rfind(path + ": at byte " + std::to_string(rec_at) + ": " +
                                      std::string(to_string(e.type)) + " payload ",
                                  0),
                        0u)
                  << msg;
              EXPECT_EQ(msg.find('\n'), std::string::npos);
              ++refused;
            }
          }
        },
        e.body);
  }
  std::remove(path.c_str());
  // Every cut at an appended field read (none today: no real list has one yet).
  size_t appended = 0;
  for (const Event& e : one_of_each())
    std::visit(
        [&](const auto& p) {
          using P = std::remove_cvref_t<decltype(p)>;
          (void)p;
          appended += recfmt::payload_ends<P>().size() - 1;
        },
        e.body);
  EXPECT_EQ(cuts_read, appended);
  EXPECT_EQ(longer, 4 * one_of_each().size());
  EXPECT_GT(refused, 0u);
}

// The JSON reader: a line without a type's optional keys (an older writer's,
// or one that leaves defaults out) reads with those fields at their defaults.
TEST(RecordPayload, JsonReaderDefaultsAbsentOptionalFields) {
  for (const Event& e : one_of_each()) {
    std::visit(
        [&](const auto& p) {
          using P = std::remove_cvref_t<decltype(p)>;
          Event want = e;
          want.body = payload_for(e.type);
          std::string line = "{\"ts_ns\":" + std::to_string(e.ts_ns) + ",\"type\":\"" +
                             std::string(to_string(e.type)) + "\"";
          // The required keys, as the writer writes them.
          std::string full;
          append_event_json(full, e);
          fields::for_each<P>([&](const auto& d) {
            if (!(d.a.required & fields::type_bit(e.type))) return;
            d.ref(std::get<P>(want.body)) = d.ref(p);
            const std::string key = std::string("\"") + d.name + "\":";
            size_t at = full.find("," + key);
            ASSERT_NE(at, std::string::npos) << d.name;
            size_t end = full.find_first_of(",}", at + 1 + key.size());
            line += full.substr(at, end - at);
          });
          line += "}";
          Event back;
          StringTable strings;
          event_from_json(line, back, strings);
          want.pid = back.pid, want.tid = back.tid, want.comm = back.comm, want.fs = back.fs;
          want.dev = back.dev, want.ino = back.ino, want.vm = back.vm, want.image = back.image;
          EXPECT_TRUE(same_event(want, back)) << line;
        },
        e.body);
  }
}
