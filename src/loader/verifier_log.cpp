// verifier_excerpt (verifier_log.h). The verifier's log ends with the error
// and a summary:
//   23: (79) r1 = *(u64 *)(r8 +0)
//   R8 invalid mem access 'trusted_ptr_or_null_'
//   processed 24 insns (limit 1000000) max_states_per_insn 0 total_states 1 ...
// preceded, with BTF line info, by source lines "; <code> @ <file>:<line>".
#include "loader/verifier_log.h"

#include <cctype>
#include <vector>

#include <fmt/format.h>

namespace bdt::loader {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool starts(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// The verifier's closing lines, not part of the error.
bool summary_line(std::string_view s) {
  return starts(s, "processed ") || starts(s, "verification time") || starts(s, "stack depth") ||
         starts(s, "max_states_per_insn") || starts(s, "mark_read") || starts(s, "peak_states") ||
         starts(s, "-- END") || starts(s, "Validating ");
}

// "23: (79) r1 = *(u64 *)(r8 +0)" (an instruction, not a register-state line "23: R1=...")
bool insn_line(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  return i > 0 && s.substr(i, 3) == ": (";
}

std::vector<std::string_view> lines_of(std::string_view log) {
  std::vector<std::string_view> v;
  size_t i = 0;
  while (i < log.size()) {
    size_t j = log.find('\n', i);
    if (j == std::string_view::npos) j = log.size();
    auto l = trim(log.substr(i, j - i));
    if (!l.empty()) v.push_back(l);
    i = j + 1;
  }
  return v;
}

}  // namespace

bool verifier_log_complete(std::string_view log) {
  for (auto l : lines_of(log))
    if (starts(l, "processed ")) return true;
  return false;
}

std::string verifier_excerpt(std::string_view log) {
  const auto lines = lines_of(log);
  size_t e = lines.size();
  while (e > 0 && summary_line(lines[e - 1])) --e;
  if (e == 0) return {};
  const std::string_view error = lines[e - 1];
  if (insn_line(error) || starts(error, ";")) return {};  // cut short: no error line
  std::string out(error);
  // The instruction it stopped at and the source line before it, if close by.
  for (size_t k = e - 1, seen = 0; k > 0 && seen < 40; --k, ++seen) {
    const auto l = lines[k - 1];
    if (insn_line(l)) {
      out += fmt::format(" at insn {}", l.substr(0, l.find(':')));
      auto insn = l.substr(l.find(") ") + 2);  // after "23: (79) "
      if (auto state = insn.find(" ;"); state != std::string_view::npos) insn = trim(insn.substr(0, state));
      out += fmt::format(": {}", insn);
      for (size_t m = k - 1, s2 = 0; m > 0 && s2 < 20; --m, ++s2) {
        const auto src = lines[m - 1];
        if (!starts(src, ";")) continue;
        auto code = trim(src.substr(1));
        const auto at = code.rfind(" @ ");
        std::string where;
        if (at != std::string_view::npos) {
          where = std::string(trim(code.substr(at + 3)));
          code = trim(code.substr(0, at));
        }
        out += where.empty() ? fmt::format(" ({})", code) : fmt::format(" ({} @ {})", code, where);
        break;
      }
      break;
    }
  }
  if (out.size() > 400) out = out.substr(0, 397) + "...";
  return out;
}

}  // namespace bdt::loader
