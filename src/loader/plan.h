// Hook planning: which mechanism attaches each hook on a kernel, decided from
// its KernelFacts alone (no syscalls), so it is unit-tested on the recorded
// facts of real kernels (tests/fixtures/kernels/). The session loads what the
// plan says; a program the kernel then refuses (verifier, attach) comes back
// as a Refusal and the hook is planned again without that mechanism.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "bdt/hooks.h"
#include "loader/hook_table.h"
#include "loader/kernel_facts.h"

namespace bdt::loader {

struct PlanOptions {
  Backend backend = Backend::Auto;
  // Testing aid (BDT_FORCE_FALLBACK=1): the second choice everywhere (raw_tp
  // instead of tp_btf, the raw syscall tracepoints instead of the classic
  // ones), so the fallbacks run on a kernel that has it all.
  bool force_fallback = false;
  // Benchmark aid (BDT_FALLBACK_HOOKS=0): none of the hooks that see O_DIRECT
  // writes fall back (btrfs_direct_write() and the hooks it replaces), so
  // scripts/bench/overhead.sh -f measures what they cost.
  bool no_fallback_hooks = false;
};

// A mechanism the kernel refused for one hook, found while loading or
// attaching. reason completes "<mechanism> ...", e.g. "refused by the
// verifier: R1 invalid mem access 'scalar'" or "attach failed: Permission denied".
struct Refusal {
  HookId id{};
  Mechanism mechanism = Mechanism::None;
  std::string reason;
};

struct PlannedHook {
  HookId id{};
  Mechanism mechanism = Mechanism::None;
  std::string candidate;  // function hooks: the kernel function name in use
  std::string target;     // fentry: that name; kprobe: its /proc/kallsyms symbol
  std::string reason;     // why this mechanism / why none (and what was refused)
};

// Values the programs need from the running kernel besides the hooks.
struct KernelConstants {
  bool oe_inode_is_btrfs = false;  // btrfs_ordered_extent::inode is a btrfs_inode * (6.3+)
  uint32_t oe_ioerr_bit = 64;      // BTRFS_ORDERED_IOERR (64: unknown)
  uint32_t oe_direct_bit = 64;     // BTRFS_ORDERED_DIRECT (64: unknown)
  uint32_t eb_stale_bit = 64;      // EXTENT_BUFFER_STALE (64: unknown)
  uint32_t em_compress_mask = 0;   // EXTENT_FLAG_COMPRESS_*
  bool ordered_flags_known = false;  // any BTRFS_ORDERED_* enumerator
  bool uring_cmpl_cqe = false;       // io_uring_complete(ctx, req, cqe) (6.4+)
  bool rdonly_untyped = false;       // bpf_rdonly_cast(p, 0) loads (KernelFacts)
};

struct Plan {
  std::vector<PlannedHook> hooks;  // one per hook of the table, in table order
  std::vector<std::pair<LayoutVar, uint32_t>> layouts;  // every LAYOUT variable
  KernelConstants constants;
  const PlannedHook& at(HookId id) const { return hooks.at(index_of(id)); }
  size_t planned() const;  // hooks with a mechanism
};

// "" when the kernel can give the backend, else why not (exit 2), e.g.
// "--backend fentry: fentry refused by this kernel (EPERM: ...); use --backend auto ...".
std::string backend_impossible(const KernelFacts& facts, Backend backend);

Plan plan_hooks(const KernelFacts& facts, const PlanOptions& opts,
                std::span<const Refusal> refused = {});

}  // namespace bdt::loader
