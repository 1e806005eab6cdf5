// The payload field lists (include/bdt/event_fields.h) drive every codec: each
// field of each list, given a value of its own, survives the JSON and binary
// round trips, shows in the JSON, record and text output when its attributes
// say so, and is filled by the raw BPF record decoder (every field of it, over
// whatever a reused event held before).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>
#include <string>
#include <variant>

#include "bdt/event_fields.h"
#include "core/event_json.h"
#include "sinks/sink.h"
#include "replay/trace_reader.h"
#include "live/decode.h"
#include "trace_samples.h"

using namespace bdt;
using namespace bdt::testing_samples;

namespace {

// A value of T that is not its event.h default, distinct per field (salt).
template <class D, class T>
T distinct_value(const D& d, [[maybe_unused]] const T& dflt, int salt) {
  if constexpr (std::is_same_v<T, bool>) {
    return !dflt;
  } else if constexpr (std::is_same_v<T, std::optional<bool>>) {
    return true;
  } else if constexpr (std::is_same_v<T, Phase>) {
    return Phase::Exit;  // exit: every field is written
  } else if constexpr (std::is_same_v<T, IoctlCmd>) {
    return IoctlCmd::Send;
  } else if constexpr (std::is_same_v<T, FallbackVia>) {
    return FallbackVia::IoUring;
  } else if constexpr (std::is_same_v<T, uint32_t>) {
    if (d.is_flags()) return d.a.flag_names()[1].bit | d.a.flag_names()[salt % 5 + 2].bit;
    return 1000u + 37u * static_cast<uint32_t>(salt);
  } else if constexpr (std::is_signed_v<T>) {
    return static_cast<T>(-5 - salt);
  } else {
    return static_cast<T>(100000 + 37 * salt);
  }
}

// Another value, for "does changing this field change the output".
template <class D, class T>
T changed_value(const D& d, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return !v;
  } else if constexpr (std::is_same_v<T, std::optional<bool>>) {
    return !v.value_or(false);
  } else if constexpr (std::is_same_v<T, Phase>) {
    return v == Phase::Enter ? Phase::Exit : Phase::Enter;
  } else if constexpr (std::is_same_v<T, IoctlCmd>) {
    return v == IoctlCmd::Resize ? IoctlCmd::Send : IoctlCmd::Resize;
  } else if constexpr (std::is_same_v<T, FallbackVia>) {
    return v == FallbackVia::Libaio ? FallbackVia::Syscall : FallbackVia::Libaio;
  } else if constexpr (std::is_same_v<T, uint32_t>) {
    if (d.is_flags()) return v ^ d.a.flag_names()[0].bit;
    return v + 1;
  } else {
    return static_cast<T>(v + 1);
  }
}

// One event of type t with every payload field set to a distinct non-default value.
Event full_event(EventType t, uint64_t ts) {
  Event e = base_event(t, ts);
  e.body = payload_for(t);
  std::visit(
      [](auto& p) {
        using P = std::remove_cvref_t<decltype(p)>;
        int salt = 0;
        fields::for_each<P>([&](const auto& d) {
          d.ref(p) = distinct_value(d, d.ref(p), salt++);
        });
      },
      e.body);
  return e;
}

std::string json_of(const Event& e) {
  std::string s;
  append_event_json(s, e);
  return s;
}

std::string record_of(const Event& e) {
  const std::string path = temp_path("fields.bdt");
  {
    auto w = create_record(path, TraceHeader{});
    w->write(e);
  }
  std::string bytes = read_file(path);
  std::remove(path.c_str());
  return bytes;
}

std::vector<EventType> all_types() {
  std::vector<EventType> v;
  for (int i = 1; i <= kEventTypeCount; ++i) v.push_back(static_cast<EventType>(i));
  return v;
}

// Every ordered-extent and extent-buffer flag known, at its canonical bit number.
live::FlagMaps all_flag_maps() {
  live::FlagMaps fm;
  for (const auto& n : ordered_flag_names())
    fm.offer(std::string("BTRFS_ORDERED_") + std::string(n.name), __builtin_ctz(n.bit));
  for (const auto& n : eb_flag_names())
    fm.offer(std::string("EXTENT_BUFFER_") + std::string(n.name), __builtin_ctz(n.bit));
  return fm;
}

// A raw BPF record of type t, every other byte random (small: each byte 0..3,
// so that enumerations and flag words hit their known range).
bdt_raw_event random_raw(std::mt19937_64& rng, EventType t, bool small) {
  bdt_raw_event r;
  auto* b = reinterpret_cast<uint8_t*>(&r);
  for (size_t k = 0; k < sizeof r; ++k) b[k] = static_cast<uint8_t>(small ? rng() % 4 : rng());
  r.type = static_cast<uint16_t>(t);
  r.flags = static_cast<uint32_t>(rng());
  r.phase = static_cast<uint8_t>(rng() % 3);
  return r;
}

}  // namespace

TEST(EventFields, EveryFieldRoundTripsThroughJsonAndRecord) {
  std::vector<Event> events;
  uint64_t ts = 1000;
  for (EventType t : all_types()) events.push_back(full_event(t, ts += 10));

  for (const Event& e : events) {
    Event back;
    StringTable strings;
    event_from_json(json_of(e), back, strings);
    EXPECT_TRUE(same_event(e, back)) << json_of(e);
  }

  const std::string path = temp_path("fields-all.bdt");
  {
    auto w = create_record(path, TraceHeader{});
    for (const Event& e : events) w->write(e);
  }
  auto r = open_trace(path);
  auto back = read_all(*r);
  std::remove(path.c_str());
  ASSERT_EQ(back.size(), events.size());
  for (size_t i = 0; i < events.size(); ++i) EXPECT_TRUE(same_event(events[i], back[i]));
}

// Changing one field changes the JSON line (when its json_when holds), the
// record bytes (always) and the text (unless it is hidden or not shown for
// this type): no codec ignores a field of the list.
TEST(EventFields, EveryFieldReachesEveryOutput) {
  for (EventType t : all_types()) {
    const Event base = full_event(t, 1000);
    std::visit(
        [&](const auto& bp) {
          using P = std::remove_cvref_t<decltype(bp)>;
          fields::for_each<P>([&](const auto& d) {
            Event e = base;
            P& p = std::get<P>(e.body);
            d.ref(p) = changed_value(d, d.ref(p));
            const std::string what = std::string(to_string(t)) + "." + d.name;
            if (fields::holds(d.a.json_when, d, p) && fields::holds(d.a.json_when, d, bp)) {
              EXPECT_NE(json_of(base), json_of(e)) << what << " not in the JSON line";
            }
            EXPECT_NE(record_of(base), record_of(e)) << what << " not in the record";
            const bool shown = d.a.style != fields::Style::Hidden &&
                               (d.a.text_types & fields::type_bit(t)) &&
                               fields::holds(d.a.text_when, d, bp) &&
                               fields::holds(d.a.text_when, d, p);
            if (shown) {
              EXPECT_NE(format_event_details(base), format_event_details(e))
                  << what << " not in the text: " << format_event_details(e);
            }
          });
        },
        base.body);
  }
}

// The text of every type, as the fields' text attributes lay it out.
TEST(EventFields, TextLayout) {
  auto text = [](EventType t) { return format_event_details(full_event(t, 1)); };
  EXPECT_EQ(text(EventType::DioBegin),
            "dev=0:45 ino=257 write pos=100000 count=100037 done_before=100074 aio partial "
            "nodatasum buf=file(dev=391:163 ino=100296 off=100333),shared,writable");
  EXPECT_EQ(text(EventType::DioEnd),
            "dev=0:45 ino=257 pos=100000 ret=-6 error=-7 write later_done=100148");
  EXPECT_EQ(text(EventType::GetExtent),
            "dev=0:45 ino=257 exit start=100037 len=100074 em=[100111,+100148) "
            "block_start=100185 ret=-11 (EAGAIN)");
  EXPECT_EQ(text(EventType::EmExist),
            "dev=0:45 ino=257 existing=[100000,+100037) map=[100074,+100111) "
            "asked=[100148,+100185)");
  EXPECT_EQ(text(EventType::OeAdd), "dev=0:45 ino=257 file_offset=100000 len=100037 flags=NOCOW|DIRECT");
  EXPECT_EQ(text(EventType::OeFinish),
            "dev=0:45 ino=257 file_offset=100000 len=100037 flags=NOCOW|DIRECT uptodate=0");
  EXPECT_EQ(text(EventType::EbFree), "dev=0:45 ino=257 exit eb_start=100037 refs=-7 bflags=DIRTY|UNMAPPED");
  EXPECT_EQ(text(EventType::IoctlBegin), "dev=0:45 ino=257 cmd=send fd=-5");
  EXPECT_EQ(text(EventType::IoctlEnd), "dev=0:45 ino=257 cmd=send fd=-5 ret=-7");
  EXPECT_EQ(text(EventType::RelocEnd), "dev=0:45 ino=257 block_group=100000 ret=-6");
}

// Every field of every type takes more than one value when decoded from raw
// BPF records of that type: each has a live raw source.
TEST(EventFields, RawDecoderFillsEveryField) {
  const live::FlagMaps fm = all_flag_maps();
  std::mt19937_64 rng(7);
  for (EventType t : all_types()) {
    std::map<std::string, std::set<std::string>> seen;
    for (int n = 0; n < 3000; ++n) {
      const bdt_raw_event r = random_raw(rng, t, n % 2);
      Event e;
      ASSERT_TRUE(live::decode_raw(r, fm, e));
      ASSERT_EQ(e.type, t);
      std::visit(
          [&](const auto& p) {
            using P = std::remove_cvref_t<decltype(p)>;
            fields::for_each<P>([&](const auto& d) {
              const auto& v = d.ref(p);
              std::string s;
              if constexpr (std::is_same_v<std::remove_cvref_t<decltype(v)>, std::optional<bool>>)
                s = v ? (*v ? "1" : "0") : "-";
              else
                s = std::to_string(static_cast<int64_t>(v));
              seen[d.name].insert(s);
            });
          },
          e.body);
    }
    for (const auto& [name, values] : seen)
      EXPECT_GT(values.size(), 1u) << to_string(t) << "." << name << " is constant";
  }
}

// The live --events reorder window decodes each record into a reused event
// slot (live/reorder.h), so the decoder must set every field of the event,
// head and payload: whatever a slot held before (an event of another type or
// of the same one, every field non-default, vm/image and an error-origin
// stack set) must not show through. Each record of each type, decoded over
// each such slot, equals its decode into a fresh event, field by field.
TEST(EventFields, RawDecoderOverwritesAReusedSlot) {
  const live::FlagMaps fm = all_flag_maps();
  // What a slot may hold: every type with every field set (full_event), the
  // samples of every type (one_of_each: vm/image on the first), a decode of a
  // random record of every type.
  std::mt19937_64 rng(11);
  std::vector<Event> dirty = one_of_each();
  for (EventType t : all_types()) {
    Event e = full_event(t, 77);
    e.vm = "guest-dirty";
    e.image = "/images/dirty.qcow2";
    dirty.push_back(e);
    Event d;
    ASSERT_TRUE(live::decode_raw(random_raw(rng, t, false), fm, d));
    dirty.push_back(d);
  }
  for (Event& e : dirty) {
    e.stack_id = 99;
    e.comm.fill('z');  // no terminator: the decoder writes one
  }
  size_t checked = 0;
  for (EventType t : all_types()) {
    // A record with nothing but its type (every field at zero: the ones a
    // stale value would show through most plainly), and random ones.
    std::vector<bdt_raw_event> records;
    bdt_raw_event zero;
    std::memset(&zero, 0, sizeof zero);
    zero.type = static_cast<uint16_t>(t);
    records.push_back(zero);
    for (int n = 0; n < 40; ++n) records.push_back(random_raw(rng, t, n % 2));
    for (const bdt_raw_event& r : records) {
      Event fresh{};
      ASSERT_TRUE(live::decode_raw(r, fm, fresh));
      for (const Event& d : dirty) {
        Event slot = d;
        ASSERT_TRUE(live::decode_raw(r, fm, slot));
        ASSERT_TRUE(same_event(fresh, slot))
            << to_string(t) << " decoded over a slot that held " << to_string(d.type);
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, size_t{kEventTypeCount} * 41 * dirty.size());
}

// The trace readers decode each event into the caller's Event, reused from
// one to the next (TraceReader::next, as replay does): an event that leaves
// fields out (no vm/image, no direction, no eb_id, a get_extent enter without
// its results, the rest at their defaults) reads as itself after an event of
// the same type with every field set, from JSON lines and from a record file.
TEST(EventFields, ReadersTakeNothingFromThePreviousEvent) {
  std::vector<Event> events;
  uint64_t ts = 1000;
  for (EventType t : all_types()) {
    Event full = full_event(t, ts += 10);
    full.vm = "guest-01";
    full.image = "/images/guest-01.raw";
    events.push_back(full);
    Event bare;
    bare.type = t;
    bare.ts_ns = ts += 10;
    bare.body = payload_for(t);
    if (auto* g = bare.as<GetExtent>()) g->phase = Phase::Enter;
    events.push_back(bare);
  }
  const std::string jsonl = temp_path("reuse.jsonl"), rec = temp_path("reuse.bdt");
  std::string text;
  for (const Event& e : events) {
    append_event_json(text, e);
    text += '\n';
  }
  write_file(jsonl, text);
  {
    auto w = create_record(rec, TraceHeader{});
    for (const Event& e : events) w->write(e);
  }
  for (const std::string& path : {jsonl, rec}) {
    auto r = open_trace(path);
    auto back = read_all(*r);
    std::remove(path.c_str());
    ASSERT_EQ(back.size(), events.size()) << path;
    for (size_t i = 0; i < events.size(); ++i)
      EXPECT_TRUE(same_event(events[i], back[i])) << r->format() << ", event " << i;
  }
}

TEST(EventFields, RawEnumsAreTheModels) {
  EXPECT_EQ(fields::event_type_from_raw(BDT_EV_NONE), std::nullopt);
  EXPECT_EQ(fields::event_type_from_raw(BDT_EV_MAX), std::nullopt);
  EXPECT_EQ(fields::event_type_from_raw(BDT_EV_CSUM_ERROR), EventType::CsumError);
  EXPECT_EQ(fields::ioctl_cmd_from_raw(BDT_IOC_RESIZE), IoctlCmd::Resize);
  EXPECT_EQ(fields::ioctl_cmd_from_raw(BDT_IOC_RESIZE + 1), IoctlCmd::Other);
}
