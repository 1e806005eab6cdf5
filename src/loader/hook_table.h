// The loader's view of bpf/hooks.def: for each hook, how it can be attached
// (kind, kernel names, program halves), how it relates to the other hooks
// (equivalent tracepoints), the argument layout it needs told, and which
// detectors need it. Pure data and pure functions (bdt_live_pure).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bdt/hooks.h"

namespace bdt::loader {

enum class HookKind : uint8_t {
  Tracepoint,  // tp_btf -> raw_tp
  Syscall,     // classic tracepoint -> tp_btf/raw_tp on the raw syscall tracepoint
  Function,    // fentry -> kprobe
};

enum class Equivalence : uint8_t {
  None,
  Replaces,   // planned: its equivalent tracepoints are not
  DefersTo,   // planned only where none of its equivalent tracepoints is
  Alongside,  // both run; the function reports the ioctl kinds in ioc_mask
};

// The u32 rodata variable a LAYOUT entry sets (bpf/hooks.def), in table order.
enum class LayoutVar : uint8_t {
#define BDT_TRACEPOINT(...)
#define BDT_SYSCALL(...)
#define BDT_DETECTOR(...)
#define NO_LAYOUT
#define LAYOUT(var, ...) var,
#define BDT_FUNCTION(id, name, candidates, halves, equivalents, layout, purpose) layout
#include "hooks.def"
#include "hooks_undef.h"
  None,
};
std::string_view layout_var_name(LayoutVar v);

struct LayoutRule {
  enum class Test : uint8_t { Chosen, Nargs, Param } test;
  const char* func;
  int n;             // Nargs: argument count; Param: argument index
  const char* strct; // Param: the struct the argument points to
  uint32_t value;
};

struct HookDef {
  HookId id{};
  HookKind kind{};
  const char* purpose = "";
  // Tracepoint / Syscall: tracefs system and name ("iomap", "iomap_dio_rw_begin";
  // "syscalls", "sys_enter_ioctl") and the raw tracepoint the tp_btf/raw_tp
  // programs attach to (the tracepoint itself, or "sys_enter" in "raw_syscalls").
  const char* system = "";
  const char* tracepoint = "";
  const char* raw_system = "";
  const char* raw_tracepoint = "";
  // Function: kernel names, first found wins; which halves have programs.
  std::vector<const char*> candidates;
  bool enter = false, exit = false;
  Equivalence equivalence = Equivalence::None;
  std::vector<HookId> equivalents;
  uint32_t ioc_mask = 0;  // Alongside: 1 << BDT_IOC_* it reports
  LayoutVar layout = LayoutVar::None;
  std::vector<LayoutRule> layout_rules;
};

std::span<const HookDef> hook_defs();
const HookDef& hook_def(HookId id);

// The mechanisms a hook can have, best first.
std::span<const Mechanism> mechanisms_of(HookKind kind);

// The BPF program names (in bpf/bdt.bpf.c) of a hook on a mechanism, with
// whether each is the return half (kretprobe/fexit). Empty for None.
struct ProgName {
  std::string name;
  bool ret = false;
};
std::vector<ProgName> programs_of(const HookDef& h, Mechanism m);

// ---- detectors ---------------------------------------------------------------------
struct DetectorDef {
  const char* id;
  std::vector<std::vector<HookId>> needs;  // each: one of these must be attached
  std::vector<HookId> full_with;           // all attached (or covered by an attached
                                           // function hook that replaces or defers to
                                           // them): full, else partial
  const char* partial_why;
  const char* unavailable_why;  // "" = list the missing hooks
  const char* findings_only;    // what it sees by default (lazy emission) vs --events
};
std::span<const DetectorDef> detector_defs();

struct Fidelity {
  std::string id;
  std::string fidelity;  // full / partial / unavailable
  std::string reason;
  std::string findings_only;  // DetectorDef::findings_only
};
// From what attached (one HookStatus per hook, any order).
std::vector<Fidelity> detector_fidelity(std::span<const HookStatus> hooks);

}  // namespace bdt::loader
