// /proc/kallsyms name resolution for kprobes (kallsyms.h).
#include "loader/kallsyms.h"

#include <sstream>

namespace bdt::loader {

std::map<std::string, std::string> kallsyms_resolve_text(const std::string& text,
                                                         const std::set<std::string>& wanted) {
  std::map<std::string, std::string> exact, llvm;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    // "ffffffffc0a1b2c0 t btrfs_get_extent\t[btrfs]"
    auto a = line.find(' ');
    if (a == std::string::npos || a + 1 >= line.size()) continue;
    auto b = line.find(' ', a + 1);
    if (b == std::string::npos) continue;
    const char type = line[a + 1];
    if (type != 't' && type != 'T') continue;
    auto end = line.find_first_of(" \t", b + 1);
    std::string name =
        line.substr(b + 1, end == std::string::npos ? std::string::npos : end - b - 1);
    if (wanted.count(name)) {
      exact.emplace(name, name);
      continue;
    }
    auto dot = name.find(".llvm.");
    if (dot != std::string::npos && wanted.count(name.substr(0, dot)))
      llvm.emplace(name.substr(0, dot), name);
  }
  for (auto& [k, v] : llvm) exact.emplace(k, v);  // an exact name wins
  return exact;
}

}  // namespace bdt::loader
