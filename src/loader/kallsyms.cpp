// /proc/kallsyms: kprobe symbols and stack symbolization (kallsyms.h).
#include "loader/kallsyms.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include <fmt/format.h>

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

KernelSymbols KernelSymbols::parse(const std::string& text) {
  KernelSymbols k;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string addr, type, name, mod;
    if (!(ls >> addr >> type >> name)) continue;
    if (type != "t" && type != "T") continue;
    ls >> mod;
    const uint64_t a = std::strtoull(addr.c_str(), nullptr, 16);
    if (!a) continue;  // addresses hidden (kptr_restrict)
    k.syms_.push_back({a, mod.empty() ? name : name + " " + mod});
  }
  std::sort(k.syms_.begin(), k.syms_.end(), [](const Sym& x, const Sym& y) { return x.addr < y.addr; });
  return k;
}

std::string KernelSymbols::symbolize(uint64_t ip) const {
  auto it = std::upper_bound(syms_.begin(), syms_.end(), ip,
                             [](uint64_t v, const Sym& s) { return v < s.addr; });
  if (it == syms_.begin()) return fmt::format("{:#x}", ip);
  --it;
  const auto sp = it->name.find(' ');
  if (sp == std::string::npos) return fmt::format("{}+{:#x}", it->name, ip - it->addr);
  return fmt::format("{}+{:#x}{}", it->name.substr(0, sp), ip - it->addr, it->name.substr(sp));
}

}  // namespace bdt::loader
