// Every hook the tool knows, and how the loader picks a mechanism for each.
//
// "How is hook Y attached?" is answered here: tracepoint_hooks() lists each
// tracepoint with the BPF programs (bpf/bdt.bpf.c) that can serve it, in order
// of preference; plan_tracepoints() decides per hook on the running kernel;
// attach_plan() attaches and records a HookStatus for each. function_hooks()
// lists the fentry/kprobe hooks from DESIGN "Hooks" (probed by the doctor; the
// fentry and kprobe backends plug in here as further mechanisms).
#pragma once

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

struct FunctionHook {
  const char* name;                      // as doctor prints it
  std::vector<const char*> candidates;   // kernel function names, first found wins
  const char* purpose;
};
std::span<const FunctionHook> function_hooks();

struct HookPlan {
  const TracepointHook* hook = nullptr;
  std::string mechanism = "none";  // tp_btf / raw_tp / tracepoint / none
  const char* prog = nullptr;      // the program that will attach
  std::string reason;
};

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
