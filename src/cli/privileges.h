// What `trace` keeps of its privileges once the programs are attached
// (docs/deployment.md, "Capabilities"): loading and attaching needs
// CAP_BPF/CAP_PERFMON and more; the rest of the run needs far less.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.h"

namespace bdt::cli {

struct KeptCapabilities {
  uint64_t bits = 0;
  std::vector<std::pair<uint64_t, std::string>> why;  // the capabilities of one reason, the reason
};

// The capabilities the rest of a trace with these options needs.
KeptCapabilities capabilities_after_attach(const TraceArgs& a);

// Keeps only those in this thread (the main one; the metrics server's thread
// drops all of its own) and says on stderr what was kept and dropped.
void drop_capabilities_after_attach(const TraceArgs& a);

}  // namespace bdt::cli
