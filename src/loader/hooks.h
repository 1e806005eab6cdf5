// Every hook the tool knows, and how the loader picks a mechanism for each.
//
// "How is hook Y attached?" is answered here: tracepoint_hooks() lists each
// tracepoint with the BPF programs (bpf/bdt.bpf.c) that can serve it, in order
// of preference; plan_tracepoints() decides per hook on the running kernel;
// attach_plan() attaches and records a HookStatus for each. function_hooks()
// lists the fentry/kprobe hooks from DESIGN "Hooks" (probed by the doctor; the
// fentry and kprobe backends plug in here as further mechanisms).
#pragma once

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bdt/live.h"
#include "loader/kernel_btf.h"

struct bpf_object;
struct bpf_link;

namespace bdt::loader {

struct TracepointHook {
  const char* name;          // HookStatus name, e.g. "iomap_dio_rw_begin"
  const char* system;        // tracefs system, e.g. "iomap"
  const char* btf_tp;        // raw tracepoint the tp_btf/raw_tp programs attach to
  const char* tp_btf_prog;   // program names in bdt.bpf.c (nullptr: no such variant)
  const char* raw_tp_prog;
  const char* classic_prog;  // classic tracepoint program (system/name)
  const char* purpose;
};
std::span<const TracepointHook> tracepoint_hooks();

struct HookPlan {
  const TracepointHook* hook = nullptr;
  std::string mechanism = "none";  // tp_btf / raw_tp / tracepoint / none
  const char* prog = nullptr;      // the program that will attach
  std::string reason;
};

struct FunctionHook {
  const char* name;                      // as doctor prints it, e.g. "btrfs_get_extent()"
  std::vector<const char*> candidates;   // kernel function names, first found wins
  const char* purpose;
  const char* prog = nullptr;  // program suffix in bdt.bpf.c: fe_/fx_ (fentry), kp_/kr_ (kprobe)
  bool enter = false, exit = false;  // which halves the hook has
  // Tracepoint hooks that deliver the same events. prefer_tp: the function
  // hook is used only where none of them exists (the tracepoint is exact and
  // cheaper); otherwise the function hook replaces them (it sees more).
  std::vector<const char*> tp_equiv = {};
  bool prefer_tp = false;
  const char* no_prog_reason = nullptr;  // hooks without programs: why none is needed
};
std::span<const FunctionHook> function_hooks();

struct FnPlan {
  const FunctionHook* hook = nullptr;
  std::string mechanism = "none";  // fentry / kprobe / none
  std::string func;                // BTF name (fentry) or exact kallsyms symbol (kprobe)
  std::string candidate;           // the candidate name chosen (without ThinLTO suffix)
  std::string reason;
};

// What the kernel allows, probed once per session.
struct FnEnv {
  bool fentry_ok = false;
  std::string fentry_why;
  bool kprobe_ok = false;
  std::string kprobe_why;
  std::map<std::string, std::string> ksyms;  // candidate -> symbol to kprobe
};

// Probes fentry (on btrfs_get_extent) and kprobes as far as backend needs.
FnEnv probe_env(const KernelBtf& btf, Backend backend);

// Per function hook: fentry if allowed and the function is in BTF, else kprobe
// if allowed and the symbol is in kallsyms, else none (backend restricts the
// choice). Adjusts tp_plan: tracepoints a function hook replaces are dropped,
// function hooks that defer to an existing tracepoint are dropped.
std::vector<FnPlan> plan_functions(const KernelBtf& btf, const FnEnv& env, Backend backend,
                                   std::vector<HookPlan>& tp_plan);
// Downgrade one function hook after its program failed to load (fentry ->
// kprobe when allowed, else none). Returns false if it was not a function program.
bool downgrade(std::vector<FnPlan>& plan, const FnEnv& env, Backend backend,
               const std::string& prog, const std::string& why);

// Tracepoints that the chosen function hooks replace are planned "none".
void drop_replaced_tracepoints(const std::vector<FnPlan>& plan, std::vector<HookPlan>& tp_plan);

// Before load: autoload and target the function programs of plan.
void apply_fn_plan(struct bpf_object* obj, const std::vector<FnPlan>& plan);
// After load: attach; appends links and one HookStatus per function hook.
void attach_fn_plan(struct bpf_object* obj, const std::vector<FnPlan>& plan,
                    std::vector<struct bpf_link*>& links, std::vector<HookStatus>& out);


// Where tracefs is mounted ("" if nowhere); never mounts anything.
std::string tracefs_root();

// Decides per hook from the kernel's BTF and tracefs.
std::vector<HookPlan> plan_tracepoints(const KernelBtf& btf);

// Before load: autoload exactly the chosen programs.
void apply_plan(struct bpf_object* obj, const std::vector<HookPlan>& plan);

// After load: attach the chosen programs; appends links (caller destroys them).
std::vector<HookStatus> attach_plan(struct bpf_object* obj, const std::vector<HookPlan>& plan,
                                    std::vector<struct bpf_link*>& links);

}  // namespace bdt::loader
