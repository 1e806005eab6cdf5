// /proc/kallsyms, over the file's text (the caller reads it, so the unit
// tests exercise exactly what the loader runs): the symbol a kprobe attaches
// to, and kernel addresses to "func+0x1a [module]" for error-origin stacks.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace bdt::loader {

// For every wanted function name: the text symbol to attach a kprobe to. An
// exact match wins; otherwise a ThinLTO rename "name.llvm.NNNN". Compiler
// split parts (.cold, .part.N, .isra.N, .constprop.N) are never taken for the
// function itself, and data symbols are ignored.
std::map<std::string, std::string> kallsyms_resolve_text(const std::string& text,
                                                         const std::set<std::string>& wanted);

// Text symbols by address, for symbolizing kernel stacks.
class KernelSymbols {
 public:
  static KernelSymbols parse(const std::string& text);
  bool empty() const { return syms_.empty(); }
  // "func+0x1a" or "func+0x1a [module]"; "0x..." when below every symbol.
  std::string symbolize(uint64_t ip) const;

 private:
  struct Sym {
    uint64_t addr;
    std::string name;  // "func" or "func [module]"
  };
  std::vector<Sym> syms_;  // sorted by addr
};

}  // namespace bdt::loader
