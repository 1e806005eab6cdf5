// Strings from outside the tool (process names, VM names, image paths, file
// names, messages quoting input) made safe for a terminal, a log line and a
// Prometheus label value (docs/hardening.md, "Safe output"). JSON has its own
// escaping (append_json_string), which already keeps every byte valid.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace bdt {

// Appends s for text output and stderr lines. Printable ASCII and valid UTF-8
// stay as they are; these are written as escapes instead:
// - control bytes (0x00-0x1f, 0x7f), newline and tab included, and bytes that
//   are not part of valid UTF-8: \xHH (lower-case hex);
// - C1 control characters (U+0080-U+009F; some terminals act on them) and the
//   bidirectional overrides/isolates (U+200E, U+200F, U+202A-U+202E,
//   U+2066-U+2069: they reorder what is shown): \u{HHHH};
// - a backslash: \\ (so that an escape in the output always means one).
void append_safe_text(std::string& out, std::string_view s);
std::string safe_text(std::string_view s);
// True when append_safe_text would copy s unchanged.
bool is_safe_text(std::string_view s);

// Appends s as a Prometheus label value before the exposition's own escaping
// (of \, " and newline): valid UTF-8 as it is, control bytes and invalid bytes
// as the text \xHH, so one bad name cannot break the scrape.
void append_label_safe(std::string& out, std::string_view s);

// Length of the valid UTF-8 sequence that starts at s[i] (1 for ASCII), or 0
// when the bytes there are not valid UTF-8 (overlong forms, surrogates and
// code points above U+10FFFF included).
size_t utf8_sequence_length(std::string_view s, size_t i);

// For fmt: fmt::print(out, "{:<16}", shown(comm)) prints safe_text(comm),
// with the width and alignment applied to the escaped text.
struct Shown {
  std::string_view s;
};
inline Shown shown(std::string_view s) { return {s}; }

}  // namespace bdt

template <>
struct fmt::formatter<bdt::Shown> : fmt::formatter<std::string_view> {
  template <typename Ctx>
  auto format(const bdt::Shown& v, Ctx& ctx) const -> decltype(ctx.out()) {
    if (bdt::is_safe_text(v.s)) return fmt::formatter<std::string_view>::format(v.s, ctx);
    const std::string t = bdt::safe_text(v.s);
    return fmt::formatter<std::string_view>::format(t, ctx);
  }
};
