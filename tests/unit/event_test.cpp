// Unit tests of the model basics: fsid and event-type names round-trip,
// kernel version parsing.
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
