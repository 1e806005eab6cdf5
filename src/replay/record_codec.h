// The binary --record format's bytes (docs/record-format.md): little-endian
// writing and bounds-checked reading, and each payload as its field list in
// bdt/event_fields.h says, including the rule for appended fields (a body that
// ends before them leaves them at their defaults). Used by src/replay/record.cpp
// for the header, the records' common part and the payloads; a header so that
// the unit tests can run the payload codec on payload lists of their own.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "bdt/event.h"
#include "bdt/event_fields.h"

namespace bdt::replay::recfmt {

// ---- bytes -------------------------------------------------------------------
// Writes through a raw pointer into space the caller reserved, or appends to a string.
struct Out {
  std::string* grow = nullptr;  // append mode
  uint8_t* p = nullptr;         // pointer mode

  void raw(const void* src, size_t n) {
    if (grow) {
      grow->append(static_cast<const char*>(src), n);
    } else if (n) {  // an empty string_view may have a null data()
      std::memcpy(p, src, n);
      p += n;
    }
  }
  template <class U>
  void le(U v) {
    uint8_t b[sizeof(U)];
    for (size_t i = 0; i < sizeof(U); ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
    raw(b, sizeof b);
  }
  void u8(uint8_t v) { raw(&v, 1); }
  void u16(uint16_t v) { le(v); }
  void u32(uint32_t v) { le(v); }
  void u64(uint64_t v) { le(v); }
  void i32(int32_t v) { le(static_cast<uint32_t>(v)); }
  void i64(int64_t v) { le(static_cast<uint64_t>(v)); }
  void bytes(const void* src, size_t n) { raw(src, n); }
  void str(std::string_view s) {
    if (s.size() > 0xFFFF) s = s.substr(0, 0xFFFF);
    u16(static_cast<uint16_t>(s.size()));
    raw(s.data(), s.size());
  }
};

inline uint32_t get_le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// A damaged header or record: why (one line).
struct Corrupt {
  std::string why;
};

// The throws, out of line (src/replay/record.cpp) so that the readers below
// stay small enough to inline.
[[noreturn]] void throw_too_short(size_t body);
// `have` bytes of payload that are not one of `ends` (n lengths) and fewer than the last.
[[noreturn]] void throw_payload_length(EventType type, size_t have, const size_t* ends, size_t n);
// An invalid value v of field `name` (with the type's name when `typed`).
[[noreturn]] void throw_invalid(EventType type, bool typed, const char* name, unsigned v);

// Reads from n bytes at p; throws Corrupt past the end.
struct In {
  const uint8_t* p;
  size_t n, i = 0;
  void need(size_t k) {
    if (n - i < k) [[unlikely]] throw_too_short(n);
  }
  uint8_t u8() {
    need(1);
    return p[i++];
  }
  uint16_t u16() {
    need(2);
    uint16_t v = uint16_t(p[i] | p[i + 1] << 8);
    i += 2;
    return v;
  }
  uint32_t u32() {
    need(4);
    uint32_t v = get_le32(p + i);
    i += 4;
    return v;
  }
  uint64_t u64() {
    need(8);
    uint64_t lo = get_le32(p + i), hi = get_le32(p + i + 4);
    i += 8;
    return lo | hi << 32;
  }
  int32_t i32() { return static_cast<int32_t>(u32()); }
  int64_t i64() { return static_cast<int64_t>(u64()); }
  void bytes(void* dst, size_t k) {
    need(k);
    std::memcpy(dst, p + i, k);
    i += k;
  }
  std::string_view str() {
    size_t k = u16();
    need(k);
    std::string_view s(reinterpret_cast<const char*>(p + i), k);
    i += k;
    return s;
  }
  // Any integer type, little-endian.
  template <class T>
  T le() {
    if constexpr (sizeof(T) == 8) return static_cast<T>(u64());
    else if constexpr (sizeof(T) == 4) return static_cast<T>(u32());
    else if constexpr (sizeof(T) == 2) return static_cast<T>(u16());
    else return static_cast<T>(u8());
  }
};

// ---- payloads: every field of the type's list, in order -------------------------
// Bools marked .bit(n) share one flag byte, written where the last of them is.
template <class P>
constexpr int flag_byte_at() {
  int at = -1, i = 0;
  fields::for_each<P>([&](const auto& d) {
    if (d.a.bit >= 0) at = i;
    ++i;
  });
  return at;
}

// Bytes field d of P takes (0 for a bool in the flag byte).
template <class P, class D>
constexpr size_t field_size(const D& d) {
  using T = typename D::Type;
  if constexpr (std::is_same_v<T, bool>) return d.a.bit >= 0 ? 0 : 1;
  else if constexpr (std::is_enum_v<T> || std::is_same_v<T, std::optional<bool>>) return 1;
  else return sizeof(T);
}

// The lengths a payload of P may have in a record, shortest first: its minimum
// (the fields before the first .appended() one, and the flag byte), then one
// more for each appended field, the last being the whole list. A longer
// payload is a newer writer's: the bytes after the last are not read.
template <class P>
constexpr auto payload_ends() {
  constexpr size_t kAppended = [] {
    size_t k = 0;
    fields::for_each<P>([&](const auto& d) { k += d.a.appended; });
    return k;
  }();
  std::array<size_t, kAppended + 1> ends{};
  size_t n = flag_byte_at<P>() >= 0 ? 1 : 0, k = 0;
  fields::for_each<P>([&](const auto& d) {
    if (d.a.appended) ends[k++] = n;
    n += field_size<P>(d);
  });
  ends[k] = n;
  return ends;
}
template <class P>
constexpr size_t payload_size() {
  return payload_ends<P>().back();
}
template <class P>
constexpr size_t min_payload_size() {
  return payload_ends<P>().front();
}

// Appends the payload p (every field).
template <class P>
void encode_payload(Out& o, const P& p) {
  constexpr int byte_at = flag_byte_at<P>();
  uint8_t bits = 0;
  fields::for_each<P>([&](const auto& d) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(d.ref(p))>, bool>)
      if (d.a.bit >= 0) bits |= static_cast<uint8_t>(uint8_t(d.ref(p)) << d.a.bit);
  });
  int i = 0;
  fields::for_each<P>([&](const auto& d) {
    const auto& v = d.ref(p);
    using T = std::remove_cvref_t<decltype(v)>;
    if constexpr (std::is_same_v<T, bool>) {
      if (d.a.bit < 0) o.u8(v ? 1 : 0);
    } else if constexpr (std::is_same_v<T, std::optional<bool>>) {
      o.u8(v ? (*v ? 2 : 1) : 0);
    } else if constexpr (std::is_enum_v<T>) {
      o.u8(static_cast<uint8_t>(v));
    } else if constexpr (std::is_signed_v<T>) {
      o.le(static_cast<std::make_unsigned_t<T>>(v));
    } else {
      o.le(v);
    }
    if (i++ == byte_at) o.u8(bits);
  });
}

// Reads the payload of an event of `type` into p, which holds P's defaults:
// the rest of the body (in.i to in.n) must be one of payload_ends<P>() long,
// or longer; the appended fields a shorter body lacks keep their defaults.
template <class P>
void decode_payload(In& in, P& p, EventType type) {
  static constexpr auto ends = payload_ends<P>();
  if (in.n - in.i < ends.back()) [[unlikely]] {
    if (std::find(ends.begin(), ends.end(), in.n - in.i) == ends.end())
      throw_payload_length(type, in.n - in.i, ends.data(), ends.size());
  }
  constexpr int byte_at = flag_byte_at<P>();
  uint8_t bits = 0;
  int i = 0;
  fields::for_each<P>([&](const auto& d) {
    // An older writer's body ends before this appended field (and the ones
    // after it, which see the same end).
    if (d.a.appended && in.i == in.n) return;
    auto& v = d.ref(p);
    using T = std::remove_cvref_t<decltype(v)>;
    if constexpr (std::is_same_v<T, bool>) {
      if (d.a.bit < 0) v = in.u8() != 0;
    } else if constexpr (std::is_same_v<T, std::optional<bool>>) {
      uint8_t w = in.u8();
      if (w > 2) throw_invalid(type, true, d.name, w);
      if (w) v = (w == 2);
    } else if constexpr (std::is_same_v<T, Phase>) {
      uint8_t x = in.u8();
      if (x > 2) throw_invalid(type, false, d.name, x);
      v = static_cast<Phase>(x);
    } else if constexpr (std::is_same_v<T, IoctlCmd>) {
      // A command a newer writer knows and this reader does not: "other".
      v = fields::ioctl_cmd_from_raw(in.u8());
    } else if constexpr (std::is_same_v<T, FallbackVia>) {
      v = fields::fallback_via_from_raw(in.u8());
    } else {
      v = in.le<T>();
    }
    if (i++ == byte_at) bits = in.u8();
  });
  if constexpr (byte_at >= 0) {
    fields::for_each<P>([&](const auto& d) {
      if constexpr (std::is_same_v<std::remove_cvref_t<decltype(d.ref(p))>, bool>)
        if (d.a.bit >= 0) d.ref(p) = (bits >> d.a.bit) & 1;
    });
  }
}

}  // namespace bdt::replay::recfmt
