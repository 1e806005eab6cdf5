// Gathering KernelFacts on the running kernel: BTF (types, functions,
// prototypes, enumerators), tracefs (mounts.h), /proc/kallsyms and the kprobe
// blacklist, and real probes: an
// empty fentry program attached for a moment to each function target the
// plan may use (in the spirit of libbpf-tools' fentry_can_attach), the kprobe
// PMU. Needs root; no BPF program stays loaded.
#pragma once

#include <string>

#include "bdt/hooks.h"
#include "loader/kernel_btf.h"
#include "loader/kernel_facts.h"
#include "loader/mounts.h"

namespace bdt::loader {

// backend decides which probes are made (no fentry probes for --backend kprobe,
// none at all for --backend tracepoint).
KernelFacts gather_facts(const KernelBtf& btf, Backend backend, const Tracefs& tracefs);

// Every enumerator with the prefixes KernelFacts keeps (kFactEnumPrefixes).
std::map<std::string, int64_t> fact_enumerators(const KernelBtf& btf);

}  // namespace bdt::loader
