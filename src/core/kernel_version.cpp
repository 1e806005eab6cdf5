// Parsing and printing kernel versions (bdt/kernel_version.h).
#include "bdt/kernel_version.h"

#include <sys/utsname.h>

#include <charconv>

namespace bdt {

std::optional<KernelVersion> KernelVersion::parse(std::string_view rel) {
  KernelVersion v;
  v.release = std::string(rel);
  int* parts[] = {&v.major, &v.minor, &v.patch};
  const char* p = rel.data();
  const char* end = rel.data() + rel.size();
  for (int i = 0; i < 3; ++i) {
    auto [next, ec] = std::from_chars(p, end, *parts[i]);
    if (ec != std::errc()) {
      if (i < 2) return std::nullopt;
      break;
    }
    p = next;
    if (p < end && *p == '.') ++p;
    else break;
  }
  return v;
}

KernelVersion KernelVersion::running() {
  utsname u{};
  if (uname(&u) != 0) return {};
  return parse(u.release).value_or(KernelVersion{});
}

}  // namespace bdt
