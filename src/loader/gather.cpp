// gather_facts and tracefs (gather.h).
#include "loader/gather.h"

#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/core.h>

#include "loader/hook_table.h"
#include "loader/probe.h"

namespace bdt::loader {

namespace {

bool exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

// /sys/kernel/debug/kprobes/blacklist: "0xffffffff81000000-0xffffffff81000010\tfunc [mod]"
std::set<std::string> kprobe_blacklist() {
  std::set<std::string> out;
  std::ifstream in("/sys/kernel/debug/kprobes/blacklist");
  std::string range, name;
  while (in >> range >> name) {
    out.insert(name);
    in.ignore(4096, '\n');
  }
  return out;
}

}  // namespace

std::map<std::string, int64_t> fact_enumerators(const KernelBtf& btf) {
  std::map<std::string, int64_t> out;
  btf.for_each_enumerator([&](std::string_view name, int64_t value) {
    for (const char* p : kFactEnumPrefixes)
      if (name.substr(0, std::strlen(p)) == p) out.emplace(std::string(name), value);
  });
  return out;
}

KernelFacts gather_facts(const KernelBtf& btf, Backend backend, const Tracefs& tracefs) {
  KernelFacts f;
  utsname u{};
  uname(&u);
  f.release = u.release;
  f.vmlinux_btf = btf.vmlinux();
  f.btrfs_module_btf = btf.btrfs_module();
  f.btrfs_types = btf.has_struct("btrfs_fs_info");
  f.btf_error = btf.error();
  f.tracefs = tracefs.path;
  f.tracefs_how = tracefs.how;
  std::set<std::string> wanted;
  for (const auto& h : hook_defs()) {
    if (h.kind == HookKind::Function) {
      for (auto* c : h.candidates) wanted.insert(c);
      continue;
    }
    if (btf.has_tracepoint_type(h.raw_tracepoint)) {
      f.btf_tracepoints.insert(h.raw_tracepoint);
      if (h.kind == HookKind::Tracepoint)
        f.tracepoint_nargs[h.raw_tracepoint] = btf.tracepoint_nargs(h.raw_tracepoint);
    }
    if (f.tracefs.empty()) continue;
    for (const std::string& ev : {fmt::format("{}/{}", h.system, h.tracepoint),
                                 fmt::format("{}/{}", h.raw_system, h.raw_tracepoint)})
      if (exists(fmt::format("{}/events/{}", f.tracefs, ev))) f.tracefs_events.insert(ev);
  }
  const auto ksyms = kallsyms_resolve(wanted);
  const auto blacklist = kprobe_blacklist();
  for (const auto& name : wanted) {
    FunctionFacts fn;
    fn.in_btf = btf.has_func(name);
    if (fn.in_btf)
      for (int i = 0, n = btf.func_nargs(name); i < n; ++i)
        fn.param_structs.push_back(btf.func_param_struct(name, i));
    if (auto it = ksyms.find(name); it != ksyms.end()) {
      fn.ksym = it->second;
      fn.kprobe_blacklisted = blacklist.count(it->second) > 0;
    }
    f.functions.emplace(name, std::move(fn));
  }
  f.member_structs["btrfs_ordered_extent.inode"] = btf.member_struct("btrfs_ordered_extent", "inode");
  f.enumerators = fact_enumerators(btf);

  // fentry: once on btrfs_get_extent (is BPF function tracing allowed at all?),
  // then on the first candidate in BTF of every function hook.
  if (backend == Backend::Auto || backend == Backend::Fentry) {
    if (!f.function("btrfs_get_extent") || !f.function("btrfs_get_extent")->in_btf) {
      f.fentry_ok = false;
      f.fentry_why = "btrfs_get_extent not in kernel BTF (no btrfs module BTF?)";
    } else {
      auto r = probe_fentry("btrfs_get_extent", btf);
      f.fentry_ok = r.ok;
      f.fentry_why = r.reason;
    }
    if (*f.fentry_ok)
      for (const auto& h : hook_defs()) {
        if (h.kind != HookKind::Function) continue;
        for (auto* c : h.candidates) {
          auto& fn = f.functions.at(c);
          if (!fn.in_btf) continue;
          if (!fn.fentry_ok) {
            auto r = std::string(c) == "btrfs_get_extent" ? MechProbe{true, ""} : probe_fentry(c, btf);
            fn.fentry_ok = r.ok;
            if (!r.ok) fn.fentry_why = r.reason;
          }
          if (*fn.fentry_ok) break;  // the plan takes the first that attaches
        }
      }
  } else {
    f.fentry_why = backend == Backend::Kprobe ? "--backend kprobe" : "--backend tracepoint";
  }
  if (backend == Backend::Auto || backend == Backend::Kprobe) f.kprobe_pmu = kprobe_pmu();
  if (f.vmlinux_btf) f.rdonly_untyped = probe_rdonly_untyped(btf);
  return f;
}

}  // namespace bdt::loader
