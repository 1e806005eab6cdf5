// `doctor`: what this kernel lets the tool see, probed for real (gather the
// facts, plan, load, attach, detach) and reported per hook and per detector.
#pragma once

#include <string>
#include <vector>

#include "bdt/hooks.h"
#include "loader/hook_table.h"
#include "loader/kernel_facts.h"

namespace bdt::live {

struct DoctorReport {
  std::string kernel;  // uname -r
  bool vmlinux_btf = false;
  bool btrfs_module_btf = false;  // /sys/kernel/btf/btrfs (false when btrfs is built in)
  bool btrfs_builtin = false;
  bool root = false;
  std::vector<HookStatus> hooks;  // one per hook of bpf/hooks.def
  std::vector<loader::Fidelity> detectors;
  std::vector<std::string> warnings;  // refusals met on the way (what fell back, why)
  std::vector<std::string> exposure;  // known-bug exposure lines for this kernel
  std::string tracefs;                // where tracefs is and how it got there
  loader::KernelFacts facts;          // what the plan was made from
};

// Leaves nothing attached. Throws KernelError when it cannot probe at all
// (e.g. no permission, no BTF).
DoctorReport run_doctor(Backend backend = Backend::Auto);

}  // namespace bdt::live
