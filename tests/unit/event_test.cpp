// Unit tests of the model basics: fsid and event-type names round-trip,
// kernel version parsing, byte ranges that run past 2^64.
#include <gtest/gtest.h>

#include "bdt/event.h"
#include "bdt/kernel_version.h"

using namespace bdt;

TEST(Fsid, RoundTrip) {
  auto f = Fsid::parse("0123abcd-4567-89ef-0123-456789abcdef");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->str(), "0123abcd-4567-89ef-0123-456789abcdef");
  EXPECT_FALSE(Fsid::parse("0123"));
  EXPECT_FALSE(Fsid::parse("zz23abcd-4567-89ef-0123-456789abcdef"));
}

TEST(EventType, NamesRoundTrip) {
  for (int i = 1; i <= kEventTypeCount; ++i) {
    auto t = static_cast<EventType>(i);
    EXPECT_EQ(event_type_from(to_string(t)), t);
  }
  EXPECT_FALSE(event_type_from("bogus"));
}

TEST(KernelVersion, Parse) {
  auto v = KernelVersion::parse("6.18.44-fc-v669");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->major, 6);
  EXPECT_EQ(v->minor, 18);
  EXPECT_EQ(v->patch, 44);
  EXPECT_TRUE((*KernelVersion::parse("5.2") < *KernelVersion::parse("5.3.1")));
  EXPECT_FALSE(KernelVersion::parse("garbage"));
}

TEST(Event, WrappingRangeNamesTheField) {
  const uint64_t top = UINT64_MAX;
  auto ev = [](Payload p) {
    Event e;
    e.body = p;
    return e;
  };
  // Each range of each payload: ending exactly at 2^64 is fine, one byte more is not.
  EXPECT_EQ(wrapping_range(ev(DioBegin{.pos = top - 4096, .count = 4096})), "");
  EXPECT_EQ(wrapping_range(ev(DioBegin{.pos = top - 4095, .count = 4097})), "pos + count");
  EXPECT_EQ(wrapping_range(ev(DioFallback{.pos = 1, .count = top})), "pos + count");
  EXPECT_EQ(wrapping_range(ev(GetExtent{.start = top, .len = 1})), "start + len");
  EXPECT_EQ(wrapping_range(ev(GetExtent{.em_start = 2, .em_len = top - 1})), "em_start + em_len");
  EXPECT_EQ(wrapping_range(ev(EmAdd{.start = top, .len = top})), "start + len");
  EXPECT_EQ(wrapping_range(ev(EmExist{.e_start = top, .e_len = 1})), "e_start + e_len");
  EXPECT_EQ(wrapping_range(ev(EmExist{.map_start = top, .map_len = 1})), "map_start + map_len");
  EXPECT_EQ(wrapping_range(ev(EmExist{.start = top, .len = 1})), "start + len");
  EXPECT_EQ(wrapping_range(ev(Ordered{.file_offset = top - 4095, .len = 8192})), "file_offset + len");
  EXPECT_EQ(wrapping_range(ev(CsumError{.offset = top, .len = 1})), "offset + len");
  EXPECT_EQ(wrapping_range(ev(CsumError{.offset = top, .len = 0})), "");
  // Payloads without a byte range.
  EXPECT_EQ(wrapping_range(ev(DioEnd{.pos = top})), "");
  EXPECT_EQ(wrapping_range(ev(ExtentBuffer{.eb_start = top})), "");
}
