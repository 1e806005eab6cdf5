// What the running kernel allows for function hooks, learned by trying:
// an empty fentry program loaded and attached for a moment (the same test as
// libbpf-tools' fentry_can_attach, written for this project), the kprobe PMU,
// and the exact symbol names in /proc/kallsyms.
#pragma once

#include <map>
#include <set>
#include <string>

#include "loader/kallsyms.h"
#include "loader/kernel_btf.h"

namespace bdt::loader {

struct MechProbe {
  bool ok = false;
  std::string reason;  // what was probed, or why not
};

// Loads and attaches an empty fentry program on func, then detaches.
MechProbe probe_fentry(const std::string& func, const KernelBtf& btf);
// Loads and attaches an empty kprobe on func, then detaches.
MechProbe probe_kprobe(const std::string& func);
// Is there a kprobe PMU (/sys/bus/event_source/devices/kprobe)?
bool kprobe_pmu();
// Does the verifier take bpf_rdonly_cast(p, 0), untyped read-only memory loaded from at an
// offset (bpf/kernel_shims.bpf.h, BDT_RDU)? A probe program with the call, loaded and closed.
bool probe_rdonly_untyped(const KernelBtf& btf);

// For every wanted function name: the symbol to attach a kprobe to, from
// /proc/kallsyms. An exact match wins; otherwise a ThinLTO rename
// "name.llvm.NNNN". Compiler split parts (.cold, .part.N, .isra.N,
// .constprop.N) are never taken for the function itself.
std::map<std::string, std::string> kallsyms_resolve(const std::set<std::string>& wanted);
}  // namespace bdt::loader
