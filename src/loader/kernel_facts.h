// What the running kernel offers the tracer, gathered once before planning
// (src/loader/gather.cpp: BTF, tracefs, kallsyms, real fentry/kprobe
// attach probes) and the only input of plan_hooks (src/loader/plan.h). Plain
// data with a JSON form, so a kernel's facts can be recorded (`doctor
// --facts`) and the planning unit-tested on them (tests/fixtures/kernels/).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace bdt::loader {

struct FunctionFacts {
  // BTF (vmlinux, or the btrfs module's): a FUNC of this name, its number of
  // parameters and, per parameter, the struct it points to ("" otherwise).
  bool in_btf = false;
  std::vector<std::string> param_structs;
  // /proc/kallsyms: the text symbol a kprobe attaches to ("" = none; a ThinLTO
  // rename "name.llvm.N" when that is all there is).
  std::string ksym;
  bool kprobe_blacklisted = false;  // in /sys/kernel/debug/kprobes/blacklist
  // An empty fentry program loaded and attached on it for a moment (absent:
  // not probed, e.g. fentry refused everywhere or not asked for).
  std::optional<bool> fentry_ok;
  std::string fentry_why;  // the probe's error when it failed
};

struct KernelFacts {
  std::string release;  // uname -r
  bool vmlinux_btf = false;
  bool btrfs_module_btf = false;  // /sys/kernel/btf/btrfs
  bool btrfs_types = false;       // struct btrfs_fs_info in BTF (btrfs built in or loaded)
  std::string btf_error;          // why there is no vmlinux BTF
  // Tracepoints of the hook table with a btf_trace_<name> type in BTF.
  std::set<std::string> btf_tracepoints;
  // Their arguments as tp_btf programs get them (io_uring_complete: 7 on 6.1,
  // 3 since its cqe became one; absent in older recordings).
  std::map<std::string, int> tracepoint_nargs;
  // tracefs: where it is mounted ("" = nowhere, also after trying to mount it),
  // how ("mounted" = it was; "mounted by btrfs-dio-trace"; or why not), and
  // which "system/name" tracepoints of the hook table exist there.
  std::string tracefs;
  std::string tracefs_how;
  std::set<std::string> tracefs_events;
  // fentry: an empty program attached to a btrfs function for a moment
  // (absent: not probed: --backend kprobe / tracepoint).
  std::optional<bool> fentry_ok;
  std::string fentry_why;
  // kprobes: the kprobe PMU exists (absent: not probed).
  std::optional<bool> kprobe_pmu;
  // bpf_rdonly_cast(p, 0) (untyped read-only memory) loads in a probe program: tb_dio_begin
  // then reads the btrfs_inode fields it reaches by container_of directly (absent: not probed).
  std::optional<bool> rdonly_untyped;
  // Every candidate name of every function hook.
  std::map<std::string, FunctionFacts> functions;
  // Pointer members whose pointee changed: "btrfs_ordered_extent.inode" -> "btrfs_inode".
  std::map<std::string, std::string> member_structs;
  // Enumerators with the prefixes the programs and the decoder need
  // (BTRFS_ORDERED_, EXTENT_BUFFER_, EXTENT_FLAG_).
  std::map<std::string, int64_t> enumerators;

  const FunctionFacts* function(const std::string& name) const {
    auto it = functions.find(name);
    return it == functions.end() ? nullptr : &it->second;
  }
};

nlohmann::json to_json(const KernelFacts& f);
// Throws std::runtime_error (nlohmann's) on a malformed document.
KernelFacts facts_from_json(const nlohmann::json& j);

// The enumerator prefixes KernelFacts keeps.
inline constexpr const char* kFactEnumPrefixes[] = {"BTRFS_ORDERED_", "EXTENT_BUFFER_",
                                                    "EXTENT_FLAG_"};

}  // namespace bdt::loader
