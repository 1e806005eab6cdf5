// Command-line durations (src/core/duration.h): units, bounds, and the
// messages a usage error gives.
#include <gtest/gtest.h>

#include <string>

#include "core/duration.h"

using namespace bdt;

TEST(Duration, AcceptsSecondsAndUnits) {
  EXPECT_EQ(parse_duration_seconds("90"), 90.0);
  EXPECT_EQ(parse_duration_seconds("1.5"), 1.5);
  EXPECT_EQ(parse_duration_seconds("1s"), 1.0);
  EXPECT_EQ(parse_duration_seconds("500ms"), 0.5);
  EXPECT_EQ(parse_duration_seconds("10m"), 600.0);
  EXPECT_EQ(parse_duration_seconds("2h"), 7200.0);
  EXPECT_EQ(parse_duration_seconds("0"), 0.0);
  EXPECT_EQ(parse_duration_seconds("8760h"), kMaxDurationSeconds);
}

TEST(Duration, RejectsJunk) {
  for (const char* bad : {"", "s", "-1", "+1", "1x", "1 s", " 1", "1.", ".5", "1e3", "1.5.2", "2y", "1S",
                          "0x10", "inf", "nan", "1ms5"})
    EXPECT_FALSE(parse_duration_seconds(bad)) << "'" << bad << "'";
}

TEST(Duration, RejectsTooLongWithoutOverflow) {
  EXPECT_FALSE(parse_duration_seconds("8761h"));
  EXPECT_FALSE(parse_duration_seconds(std::string(300, '9')));
  EXPECT_FALSE(parse_duration_seconds("1.0000000001"));  // more than 9 decimals
  EXPECT_NE(duration_error(std::string(300, '9'), false).find("too long"), std::string::npos);
  // The message does not repeat a huge value in full.
  EXPECT_LT(duration_error(std::string(300, '9'), false).size(), 120u);
}

TEST(Duration, Messages) {
  EXPECT_EQ(duration_error("10s", false), "");
  EXPECT_EQ(duration_error("0", true), "");
  EXPECT_NE(duration_error("0", false).find("more than 0"), std::string::npos);
  EXPECT_NE(duration_error("1x", false).find("not a duration"), std::string::npos);
  EXPECT_NE(duration_error("1x", false).find("500ms"), std::string::npos);
}
