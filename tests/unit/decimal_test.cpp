// The JSON writer's integers (src/core/decimal.h): the same text as fmt for
// every value below 10^8 (each eight-digit block of a longer number is one of
// those; below 10^5 through write_integer too), around every power of ten, at the type limits and for random
// values; and no byte stored past p + 20.
#include <gtest/gtest.h>
#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <string_view>

#include "core/decimal.h"

using bdt::decimal::eight_digits;
using bdt::decimal::kMaxChars;
using bdt::decimal::write_integer;

namespace {

// What write_integer writes for v, checked against fmt; the bytes after
// p + kMaxChars must stay untouched.
template <class T>
void expect_same(T v) {
  std::array<char, kMaxChars + 8> buf;
  buf.fill('#');
  char* end = write_integer(buf.data(), v);
  ASSERT_LE(end - buf.data(), static_cast<long>(kMaxChars));
  EXPECT_EQ(std::string_view(buf.data(), static_cast<size_t>(end - buf.data())), fmt::format("{}", v))
      << "value " << fmt::format("{}", v);
  for (size_t i = kMaxChars; i < buf.size(); ++i) ASSERT_EQ(buf[i], '#') << "stored past 20 bytes for " << v;
}

}  // namespace

TEST(Decimal, EveryEightDigitBlock) {
  // The reference counts up in ASCII: one carry per step, no division.
  char ref[8];
  std::memset(ref, '0', 8);
  size_t bad = 0;
  for (uint32_t v = 0; v < 100'000'000; ++v) {
    uint64_t d = eight_digits(v);
    if (std::memcmp(&d, ref, 8) != 0 && ++bad <= 5)
      ADD_FAILURE() << "eight_digits(" << v << ") = " << std::string(reinterpret_cast<char*>(&d), 8);
    for (int i = 7; i >= 0 && ++ref[i] > '9'; --i) ref[i] = '0';
  }
  EXPECT_EQ(bad, 0u);
}

// Every value below 10^5: the one- to four-digit paths and the first
// eight-digit ones.
TEST(Decimal, EverySmallValue) {
  for (uint64_t v = 0; v < 100'000; ++v) {
    expect_same<uint64_t>(v);
    expect_same<int64_t>(-static_cast<int64_t>(v));
  }
}

TEST(Decimal, SameTextAsFmt) {
  for (uint64_t p = 1, k = 0; k <= 19; ++k, p *= 10) {
    for (uint64_t d : {0ull, 1ull, 2ull}) {
      expect_same<uint64_t>(p - d);
      expect_same<uint64_t>(p + d);
      expect_same<int64_t>(-static_cast<int64_t>(p - d));
    }
    if (k == 19) break;
  }
  expect_same<uint64_t>(std::numeric_limits<uint64_t>::max());
  expect_same<uint64_t>(std::numeric_limits<uint64_t>::max() - 1);
  expect_same<int64_t>(std::numeric_limits<int64_t>::min());
  expect_same<int64_t>(std::numeric_limits<int64_t>::max());
  expect_same<uint32_t>(std::numeric_limits<uint32_t>::max());
  expect_same<int32_t>(std::numeric_limits<int32_t>::min());
  expect_same<int32_t>(std::numeric_limits<int32_t>::max());
  expect_same<uint16_t>(std::numeric_limits<uint16_t>::max());
  expect_same<int16_t>(std::numeric_limits<int16_t>::min());
  expect_same<uint8_t>(255);
  expect_same<int8_t>(-128);
  std::mt19937_64 rng(12);
  for (int i = 0; i < 200'000; ++i) {
    const uint64_t v = rng() >> (rng() % 64);  // every length
    expect_same<uint64_t>(v);
    expect_same<int64_t>(static_cast<int64_t>(v));
    expect_same<uint32_t>(static_cast<uint32_t>(v));
    expect_same<int32_t>(static_cast<int32_t>(v));
  }
}
