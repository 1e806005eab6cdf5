// Durations on the command line ("--duration 90", "1.5s", "500ms", "10m",
// "2h"): one parser for every option that takes seconds, so they all accept
// the same units and reject the same junk with the same message.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace bdt {

// Longest duration accepted (a year): anything longer is a typo, and the
// nanosecond arithmetic downstream stays far from overflow.
inline constexpr double kMaxDurationSeconds = 365.0 * 24 * 3600;

// Seconds for "N", "N.N" with an optional unit ms|s|m|h (no sign, no
// exponent, no spaces, at most 12 digits before the dot and 9 after it).
// nullopt when the text is not such a duration or is above the maximum.
std::optional<double> parse_duration_seconds(std::string_view text);

// The usage-error text for a rejected value ("" when it is a valid duration).
// allow_zero: 0 is a valid value for this option (e.g. "no rate limit").
std::string duration_error(std::string_view text, bool allow_zero);

}  // namespace bdt
