// A kernel's version (6.18.44) and release string: parsed from uname -r or a
// trace header, compared to decide which kernel behaviour and exposure apply.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bdt {
struct KernelVersion {
  int major = 0, minor = 0, patch = 0;
  std::string release;  // uname -r, or from a trace header; empty when unknown
  bool known() const { return major != 0; }
  auto operator<=>(const KernelVersion& o) const {
    if (auto c = major <=> o.major; c != 0) return c;
    if (auto c = minor <=> o.minor; c != 0) return c;
    return patch <=> o.patch;
  }
  bool operator==(const KernelVersion& o) const {
    return major == o.major && minor == o.minor && patch == o.patch;
  }
  static std::optional<KernelVersion> parse(std::string_view release);  // "6.18.44-fc"
  static KernelVersion running();                                       // uname(2)
};
}  // namespace bdt
