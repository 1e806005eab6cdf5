// Decimal text of integers for the JSON event writer's hot path
// (src/core/event_json.cpp): the same digits as fmt/printf ("0", "-17",
// "18446744073709551615"), eight at a time with a few multiplications on one
// 64-bit word instead of a division per pair of digits; a number below 10^4
// (a size, an inode, a pid) as two pairs of digits from a table.
//
// write_decimal() may store up to 8 bytes past the digits it writes (it never
// stores past p + 20, the longest number, "-9223372036854775808" and
// "18446744073709551615" both fit): the caller reserves 20 bytes per number.
// tests/unit/decimal_test.cpp checks every value below 10^8 and the edges.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace bdt::decimal {

inline constexpr size_t kMaxChars = 20;

// The eight decimal digits of v < 10^8 (leading zeros included) as ASCII, the
// most significant in the lowest byte (memory order on little-endian).
inline uint64_t eight_digits(uint32_t v) {
  // Two lanes of 32 bits: the upper and lower four digits.
  uint64_t x = (v / 10000) | (uint64_t(v % 10000) << 32);
  // Each lane / 100 (10486 / 2^20 is exact for lanes below 10000), then four
  // lanes of 16 bits: the pairs of digits.
  uint64_t q = ((x * 10486) >> 20) & 0x0000007F0000007Full;
  x = q | ((x - q * 100) << 16);
  // Each pair / 10 (103 / 2^10 is exact below 100): eight bytes, one digit each.
  q = ((x * 103) >> 10) & 0x000F000F000F000Full;
  x = q | ((x - q * 10) << 8);
  return x | 0x3030303030303030ull;
}

static_assert(std::endian::native == std::endian::little, "eight_digits' byte order");

// The two digits of every value below 100, "00" to "99".
inline constexpr auto kDigitPairs = [] {
  std::array<char, 200> t{};
  for (int i = 0; i < 100; ++i) {
    t[2 * i] = static_cast<char>('0' + i / 10);
    t[2 * i + 1] = static_cast<char>('0' + i % 10);
  }
  return t;
}();

// v's digits at p for v >= 10 (write_decimal's out-of-line part).
[[gnu::noinline]] inline char* write_decimal_from_10(char* p, uint64_t v) {
  if (v < 100) {
    std::memcpy(p, &kDigitPairs[2 * v], 2);
    return p + 2;
  }
  if (v < 10'000) {
    const auto hi = static_cast<uint32_t>(v) / 100, lo = static_cast<uint32_t>(v) % 100;
    if (v < 1'000) {
      *p = static_cast<char>('0' + hi);
      std::memcpy(p + 1, &kDigitPairs[2 * lo], 2);
      return p + 3;
    }
    std::memcpy(p, &kDigitPairs[2 * hi], 2);
    std::memcpy(p + 2, &kDigitPairs[2 * lo], 2);
    return p + 4;
  }
  if (v < 100'000'000) {
    const uint64_t d = eight_digits(static_cast<uint32_t>(v));
    // leading '0' bytes: v > 0, so some digit byte is not '0'
    const int skip = std::countr_zero(d & 0x0F0F0F0F0F0F0F0Full) / 8;
    const uint64_t w = d >> (8 * skip);
    std::memcpy(p, &w, 8);
    return p + 8 - skip;
  }
  const uint64_t low = v % 100'000'000;
  const uint64_t high = v / 100'000'000;  // at most 12 digits: one more split at most
  if (high < 10) *p++ = static_cast<char>('0' + high);
  else p = write_decimal_from_10(p, high);
  const uint64_t d = eight_digits(static_cast<uint32_t>(low));
  std::memcpy(p, &d, 8);
  return p + 8;
}

// v's digits at p; returns the end. See the note at the top on the bytes past
// it. A single digit (most often a 0) is written inline, without a call.
[[gnu::always_inline]] inline char* write_decimal(char* p, uint64_t v) {
  if (v < 10) {
    *p = static_cast<char>('0' + v);
    return p + 1;
  }
  return write_decimal_from_10(p, v);
}

template <class T>
inline char* write_integer(char* p, T v) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  if constexpr (std::is_signed_v<T>) {
    if (v < 0) {
      *p++ = '-';
      return write_decimal(p, 0 - static_cast<uint64_t>(static_cast<int64_t>(v)));
    }
  }
  return write_decimal(p, static_cast<uint64_t>(v));
}

}  // namespace bdt::decimal
