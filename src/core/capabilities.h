// Linux capabilities of the calling thread: what it has, and dropping all but
// a given set for good (effective, permitted, inheritable, ambient and the
// bounding set, with no_new_privs), so that neither this thread nor anything
// it starts or execs can get the others back. Capabilities are per thread:
// each thread that must run with fewer calls keep_only() itself; threads
// created afterwards inherit the reduced sets. Raw capget/capset/prctl, no
// libcap. docs/deployment.md lists what the tracer keeps and why.
#pragma once

#include <cstdint>
#include <string>

namespace bdt::caps {

// Capability numbers (linux/capability.h), as bits: bit(kBpf) ...
inline constexpr int kDacOverride = 1, kDacReadSearch = 2, kSetpcap = 8, kNetBindService = 10,
                     kSysPtrace = 19, kSysAdmin = 21, kSysResource = 24, kSyslog = 34, kPerfmon = 38,
                     kBpf = 39;
constexpr uint64_t bit(int cap) { return uint64_t{1} << cap; }

struct Sets {
  uint64_t effective = 0, permitted = 0, inheritable = 0;
};
// This thread's sets; all zero if they cannot be read.
Sets current();
// "cap_bpf,cap_perfmon" (lower case, as capsh and setpriv print them); "none" for 0.
std::string names(uint64_t bits);

// Keeps only `keep` (intersected with what this thread has): drops every other
// capability from the bounding set (while CAP_SETPCAP is still there), clears
// the ambient set, sets no_new_privs, then sets effective = permitted = keep,
// inheritable = 0. Returns "" or what failed (nothing is half-done silently:
// the caller decides whether that is fatal).
std::string keep_only(uint64_t keep);

}  // namespace bdt::caps
