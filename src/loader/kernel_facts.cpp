// KernelFacts <-> JSON (kernel_facts.h). The JSON is what `doctor --facts`
// prints and tests/fixtures/kernels/ holds; absent keys read as defaults, so
// older recordings stay readable.
#include "loader/kernel_facts.h"

#include <nlohmann/json.hpp>

namespace bdt::loader {

using json = nlohmann::json;

json to_json(const KernelFacts& f) {
  json j;
  j["release"] = f.release;
  j["vmlinux_btf"] = f.vmlinux_btf;
  j["btrfs_module_btf"] = f.btrfs_module_btf;
  j["btrfs_types"] = f.btrfs_types;
  if (!f.btf_error.empty()) j["btf_error"] = f.btf_error;
  j["btf_tracepoints"] = f.btf_tracepoints;
  if (!f.tracepoint_nargs.empty()) j["tracepoint_nargs"] = f.tracepoint_nargs;
  j["tracefs"] = f.tracefs;
  j["tracefs_how"] = f.tracefs_how;
  j["tracefs_events"] = f.tracefs_events;
  if (f.fentry_ok) {
    j["fentry_ok"] = *f.fentry_ok;
    j["fentry_why"] = f.fentry_why;
  }
  if (f.kprobe_pmu) j["kprobe_pmu"] = *f.kprobe_pmu;
  if (f.rdonly_untyped) j["rdonly_untyped"] = *f.rdonly_untyped;
  json fns = json::object();
  for (const auto& [name, fn] : f.functions) {
    json x;
    x["in_btf"] = fn.in_btf;
    if (fn.in_btf) x["param_structs"] = fn.param_structs;
    x["ksym"] = fn.ksym;
    if (fn.kprobe_blacklisted) x["kprobe_blacklisted"] = true;
    if (fn.fentry_ok) {
      x["fentry_ok"] = *fn.fentry_ok;
      if (!fn.fentry_why.empty()) x["fentry_why"] = fn.fentry_why;
    }
    fns[name] = std::move(x);
  }
  j["functions"] = std::move(fns);
  j["member_structs"] = f.member_structs;
  j["enumerators"] = f.enumerators;
  return j;
}

KernelFacts facts_from_json(const json& j) {
  KernelFacts f;
  f.release = j.value("release", "");
  f.vmlinux_btf = j.value("vmlinux_btf", false);
  f.btrfs_module_btf = j.value("btrfs_module_btf", false);
  f.btrfs_types = j.value("btrfs_types", false);
  f.btf_error = j.value("btf_error", "");
  if (j.contains("btf_tracepoints")) f.btf_tracepoints = j.at("btf_tracepoints").get<std::set<std::string>>();
  if (j.contains("tracepoint_nargs"))
    f.tracepoint_nargs = j.at("tracepoint_nargs").get<std::map<std::string, int>>();
  f.tracefs = j.value("tracefs", "");
  f.tracefs_how = j.value("tracefs_how", "");
  if (j.contains("tracefs_events")) f.tracefs_events = j.at("tracefs_events").get<std::set<std::string>>();
  if (j.contains("fentry_ok")) {
    f.fentry_ok = j.at("fentry_ok").get<bool>();
    f.fentry_why = j.value("fentry_why", "");
  }
  if (j.contains("kprobe_pmu")) f.kprobe_pmu = j.at("kprobe_pmu").get<bool>();
  if (j.contains("rdonly_untyped")) f.rdonly_untyped = j.at("rdonly_untyped").get<bool>();
  if (j.contains("functions"))
    for (const auto& [name, x] : j.at("functions").items()) {
      FunctionFacts fn;
      fn.in_btf = x.value("in_btf", false);
      if (x.contains("param_structs")) fn.param_structs = x.at("param_structs").get<std::vector<std::string>>();
      fn.ksym = x.value("ksym", "");
      fn.kprobe_blacklisted = x.value("kprobe_blacklisted", false);
      if (x.contains("fentry_ok")) fn.fentry_ok = x.at("fentry_ok").get<bool>();
      fn.fentry_why = x.value("fentry_why", "");
      f.functions.emplace(name, std::move(fn));
    }
  if (j.contains("member_structs"))
    f.member_structs = j.at("member_structs").get<std::map<std::string, std::string>>();
  if (j.contains("enumerators")) f.enumerators = j.at("enumerators").get<std::map<std::string, int64_t>>();
  return f;
}

}  // namespace bdt::loader
