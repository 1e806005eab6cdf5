// /proc/kallsyms name resolution for kprobes, over the file's text (the
// caller reads it), so the unit tests exercise exactly what the loader runs.
#pragma once

#include <map>
#include <set>
#include <string>

namespace bdt::loader {

// For every wanted function name: the text symbol to attach a kprobe to. An
// exact match wins; otherwise a ThinLTO rename "name.llvm.NNNN". Compiler
// split parts (.cold, .part.N, .isra.N, .constprop.N) are never taken for the
// function itself, and data symbols are ignored.
std::map<std::string, std::string> kallsyms_resolve_text(const std::string& text,
                                                         const std::set<std::string>& wanted);

}  // namespace bdt::loader
