// Command-line durations: see src/core/duration.h.
#include "core/duration.h"

#include <fmt/format.h>

#include <cctype>

namespace bdt {

namespace {

enum class Parse { Ok, Syntax, TooLong };

Parse parse(std::string_view s, double& out) {
  size_t i = 0, int_digits = 0, frac_digits = 0;
  double v = 0, scale = 1;
  auto digit = [&](size_t k) { return k < s.size() && std::isdigit(static_cast<unsigned char>(s[k])); };
  for (; digit(i); ++i, ++int_digits) v = v * 10 + (s[i] - '0');
  if (int_digits == 0) return Parse::Syntax;
  if (i < s.size() && s[i] == '.') {
    for (++i; digit(i); ++i, ++frac_digits) v += (s[i] - '0') * (scale /= 10);
    if (frac_digits == 0) return Parse::Syntax;
  }
  const std::string_view unit = s.substr(i);
  if (unit == "ms") v /= 1000;
  else if (unit == "m") v *= 60;
  else if (unit == "h") v *= 3600;
  else if (!unit.empty() && unit != "s") return Parse::Syntax;
  // Digit counts bound the arithmetic (a 300-digit number is too long, not a
  // floating-point range error).
  if (int_digits > 12 || frac_digits > 9 || v > kMaxDurationSeconds) return Parse::TooLong;
  out = v;
  return Parse::Ok;
}

}  // namespace

std::optional<double> parse_duration_seconds(std::string_view s) {
  double v = 0;
  if (parse(s, v) != Parse::Ok) return std::nullopt;
  return v;
}

std::string duration_error(std::string_view text, bool allow_zero) {
  double v = 0;
  const auto shown = text.size() > 24 ? fmt::format("{}...", text.substr(0, 20)) : std::string(text);
  switch (parse(text, v)) {
    case Parse::Ok:
      return v > 0 || allow_zero ? std::string() : fmt::format("'{}': must be more than 0", shown);
    case Parse::TooLong:
      return fmt::format("'{}': too long (at most one year, {:.0f} s; at most 9 decimals)", shown,
                         kMaxDurationSeconds);
    case Parse::Syntax: break;
  }
  return fmt::format("'{}' is not a duration: give seconds, optionally with a unit "
                     "(90, 1.5s, 500ms, 10m, 2h)",
                     shown);
}

}  // namespace bdt
