// /proc/kallsyms name resolution for kprobes. Header-only (no libbpf, no
// syscalls) so the unit tests can exercise exactly what the loader runs.
#pragma once

#include <map>
#include <set>
#include <sstream>
#include <string>

namespace bdt::loader {

// For every wanted function name: the text symbol to attach a kprobe to. An
// exact match wins; otherwise a ThinLTO rename "name.llvm.NNNN". Compiler
// split parts (.cold, .part.N, .isra.N, .constprop.N) are never taken for the
// function itself, and data symbols are ignored.
inline std::map<std::string, std::string> kallsyms_resolve_text(
    const std::string& text, const std::set<std::string>& wanted) {
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
