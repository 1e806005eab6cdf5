// Safe text for terminals, logs and metric labels: see safe_text.h.
#include "core/safe_text.h"

#include <cstdint>

namespace bdt {

namespace {

constexpr char kHex[] = "0123456789abcdef";

bool plain_ascii(unsigned char c) { return c >= 0x20 && c < 0x7f && c != '\\'; }

// Code points shown escaped even though they are valid UTF-8.
bool invisible_control(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

uint32_t code_point(std::string_view s, size_t i, size_t n) {
  auto c = static_cast<unsigned char>(s[i]);
  uint32_t cp = n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
  for (size_t k = 1; k < n; ++k) cp = cp << 6 | (static_cast<unsigned char>(s[i + k]) & 0x3f);
  return cp;
}

void put_byte_escape(std::string& out, unsigned char c) {
  out += "\\x";
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 15]);
}

}  // namespace

size_t utf8_sequence_length(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    auto d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (d & 0x3F);
  }
  // Reject overlong forms, surrogates and out-of-range code points.
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
      (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    return 0;
  return n;
}

bool is_safe_text(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (plain_ascii(c)) {
      ++i;
      continue;
    }
    if (c < 0x80) return false;
    const size_t n = utf8_sequence_length(s, i);
    if (!n || invisible_control(code_point(s, i, n))) return false;
    i += n;
  }
  return true;
}

void append_safe_text(std::string& out, std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && plain_ascii(static_cast<unsigned char>(s[j]))) ++j;
    out.append(s.data() + i, j - i);
    if (j == s.size()) break;
    i = j;
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      out += "\\\\";
      ++i;
      continue;
    }
    const size_t n = c >= 0x80 ? utf8_sequence_length(s, i) : 0;
    if (!n) {
      put_byte_escape(out, c);
      ++i;
      continue;
    }
    const uint32_t cp = code_point(s, i, n);
    if (invisible_control(cp)) {
      out += fmt::format("\\u{{{:04x}}}", cp);
    } else {
      out.append(s.data() + i, n);
    }
    i += n;
  }
}

std::string safe_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  append_safe_text(out, s);
  return out;
}

void append_label_safe(std::string& out, std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 && c != '\n') put_byte_escape(out, c);  // newline: the exposition escapes it
      else if (c == 0x7f) put_byte_escape(out, c);
      else out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    const size_t n = utf8_sequence_length(s, i);
    if (!n) {
      put_byte_escape(out, c);
      ++i;
      continue;
    }
    out.append(s.data() + i, n);
    i += n;
  }
}

}  // namespace bdt
