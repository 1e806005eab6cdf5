// StringTable (bdt/string_table.h).
#include "bdt/string_table.h"

#include <fmt/format.h>

#include "bdt/errors.h"

namespace bdt {

std::string_view StringTable::intern(std::string_view s) {
  if (s.empty()) return {};
  auto it = strings_.find(s);
  if (it == strings_.end()) {
    if (strings_.size() >= max_strings_ || s.size() > max_bytes_ - bytes_)
      throw InputError(fmt::format("more than {} distinct vm/image names or {} MiB of them (a "
                                   "trace's limit)",
                                   max_strings_, max_bytes_ >> 20));
    it = strings_.emplace(s).first;
    bytes_ += s.size();
  }
  return *it;
}

}  // namespace bdt
