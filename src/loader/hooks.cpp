#include "loader/hooks.h"

#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include <fmt/core.h>

#include "loader/probe.h"

namespace bdt::loader {

namespace {
// Order matters only for display.
const TracepointHook kTracepoints[] = {
    {"iomap_dio_rw_begin", "iomap", "iomap_dio_rw_begin", "tb_dio_begin", "rt_dio_begin", nullptr,
     "DIO request begin (dio_begin)"},
    {"iomap_dio_rw_queued", "iomap", "iomap_dio_rw_queued", "tb_dio_queued", "rt_dio_queued",
     nullptr, "async DIO submitted (bookkeeping for em_exist attribution)"},
    {"iomap_dio_complete", "iomap", "iomap_dio_complete", "tb_dio_complete", "rt_dio_complete",
     nullptr, "DIO request end (dio_end)"},
    {"btrfs_get_extent", "btrfs", "btrfs_get_extent", "tb_get_extent", "rt_get_extent", nullptr,
     "extent map lookup result (get_extent exit)"},
    {"btrfs_handle_em_exist", "btrfs", "btrfs_handle_em_exist", "tb_em_exist", "rt_em_exist",
     nullptr, "extent map insert collided (em_exist)"},
    {"btrfs_ordered_extent_add", "btrfs", "btrfs_ordered_extent_add", "tb_oe_add", "rt_oe_add",
     nullptr, "ordered extent created (oe_add)"},
    {"btrfs_ordered_extent_split", "btrfs", "btrfs_ordered_extent_split", "tb_oe_split",
     "rt_oe_split", nullptr, "ordered extent split (oe_split)"},
    {"btrfs_ordered_extent_start", "btrfs", "btrfs_ordered_extent_start", "tb_oe_start",
     "rt_oe_start", nullptr, "waiting on an ordered extent (oe_start)"},
    {"btrfs_ordered_extent_mark_finished", "btrfs", "btrfs_ordered_extent_mark_finished",
     "tb_oe_mark_fin", "rt_oe_mark_fin", nullptr, "ordered extent I/O done (oe_mark_finished)"},
    {"btrfs_ordered_extent_remove", "btrfs", "btrfs_ordered_extent_remove", "tb_oe_remove",
     "rt_oe_remove", nullptr, "ordered extent removed (oe_remove)"},
    {"btrfs_finish_ordered_extent", "btrfs", "btrfs_finish_ordered_extent", "tb_oe_finish",
     "rt_oe_finish", nullptr, "ordered extent finished, uptodate or not (oe_finish)"},
    {"btrfs_reclaim_block_group", "btrfs", "btrfs_reclaim_block_group", "tb_reclaim_bg",
     "rt_reclaim_bg", nullptr, "automatic block group reclaim starts relocation (reloc_begin)"},
    {"sys_enter_ioctl", "syscalls", "sys_enter", "tb_sys_enter", nullptr, "tp_ioctl_enter",
     "btrfs send/balance/rm_dev/resize ioctl begin (ioctl_begin)"},
    {"sys_exit_ioctl", "syscalls", "sys_exit", "tb_sys_exit", nullptr, "tp_ioctl_exit",
     "btrfs send/balance/rm_dev/resize ioctl end (ioctl_end)"},
};

const FunctionHook kFunctions[] = {
    // DIO begin/end where iomap has no tracepoints (6.1): btrfs' own calls into
    // __iomap_dio_rw (which fentry cannot take on 6.1: 7 arguments) and iomap_dio_complete.
    {"btrfs_dio_write()", {"btrfs_dio_write"}, "DIO write begin (dio_begin) without iomap tracepoints",
     "dio_w", true, true, {"iomap_dio_rw_begin"}, true},
    {"btrfs_dio_read()", {"btrfs_dio_read"}, "DIO read begin (dio_begin) without iomap tracepoints",
     "dio_r", true, true, {"iomap_dio_rw_begin"}, true},
    {"iomap_dio_complete()", {"iomap_dio_complete"}, "DIO request end (dio_end) without iomap tracepoints",
     "dio_cmpl", true, true, {"iomap_dio_complete"}, true},
    {"btrfs_get_extent()",
     {"btrfs_get_extent"}, "extent map lookup enter/exit with ERR_PTR return (get_extent)",
     "get_ext", true, true, {"btrfs_get_extent"}, false},
    {"add_extent_mapping()",
     {"add_extent_mapping", "btrfs_add_extent_mapping"},
     "extent map insert and its return (em_add)", "em_add", false, true},
    {"btrfs_finish_ordered_io()",
     {"btrfs_finish_ordered_io", "btrfs_finish_one_ordered"},
     "ordered extent completion (oe_finish) without the btrfs_finish_ordered_extent tracepoint",
     "oe_fin", true, false, {"btrfs_finish_ordered_extent"}, true},
    {"free_extent_buffer()",
     {"free_extent_buffer"}, "extent buffer put, enter/exit (eb_free)", "eb_free", true, true},
    {"find_extent_buffer()",
     {"find_extent_buffer"}, "extent buffer lookup result (eb_find)", "eb_find", false, true},
    {"btrfs_release_extent_buffer_pages()",
     {"btrfs_release_extent_buffer_pages", "btrfs_release_extent_buffer_folios",
      "release_extent_buffer"},
     "extent buffer pages released (eb_release)", "eb_rel", true, false},
    // send and balance where btrfs runs them; the syscall hooks keep only fd/cmd
    // for these then (ioc_fn_mask), so each call is reported once.
    {"btrfs_ioctl_send()",
     {"btrfs_ioctl_send"}, "send begin/end (ioctl_begin/ioctl_end, cmd send)", "send", true, true},
    {"btrfs_balance()",
     {"btrfs_balance"},
     "balance begin/end (ioctl_begin/ioctl_end, cmd balance), also a balance resumed at mount",
     "balance", true, true},
    {"btrfs_relocate_block_group()",
     {"btrfs_relocate_block_group"},
     "relocation of one block group begin/end (balance, device remove, resize, reclaim)",
     "reloc", true, true, {"btrfs_reclaim_block_group"}, false},
    {"btrfs_check_data_csum()",
     {"btrfs_check_data_csum", "btrfs_data_csum_ok"},
     "data checksum failures (csum_error)", "csum", false, true},
};

bool exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}
}  // namespace

std::span<const TracepointHook> tracepoint_hooks() { return kTracepoints; }
std::span<const FunctionHook> function_hooks() { return kFunctions; }

std::string tracefs_root() {
  for (const char* p : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"})
    if (exists(std::string(p) + "/events")) return p;
  return {};
}

std::vector<HookPlan> plan_tracepoints(const KernelBtf& btf) {
  const std::string tfs = tracefs_root();
  // Testing aid: BDT_FORCE_FALLBACK=1 takes the second choice everywhere
  // (raw_tp instead of tp_btf, raw sys_enter/sys_exit instead of the syscall
  // tracepoints), so the fallbacks can be exercised on a kernel that has it all.
  const char* force_env = std::getenv("BDT_FORCE_FALLBACK");
  const bool force = force_env && *force_env && std::string_view(force_env) != "0";
  std::vector<HookPlan> plan;
  for (const auto& h : kTracepoints) {
    HookPlan p;
    p.hook = &h;
    const std::string classic = tfs.empty() ? "" : tfs + "/events/" + h.system + "/" + h.name;
    if (h.classic_prog && !force && !classic.empty() && exists(classic)) {
      p.mechanism = "tracepoint";
      p.prog = h.classic_prog;
      p.reason = fmt::format("classic tracepoint {}:{}", h.system, h.name);
    } else if (h.tp_btf_prog && !(force && h.raw_tp_prog) && btf.has_tracepoint_type(h.btf_tp)) {
      p.mechanism = "tp_btf";
      p.prog = h.tp_btf_prog;
      p.reason = h.classic_prog
                     ? fmt::format("{}; raw {} filtered by syscall number",
                                   force ? "BDT_FORCE_FALLBACK"
                                         : fmt::format("tracepoint {}:{} missing", h.system, h.name),
                                   h.btf_tp)
                     : fmt::format("btf_trace_{} in kernel BTF", h.btf_tp);
    } else if (h.raw_tp_prog && (tfs.empty() || exists(tfs + "/events/" + h.system + "/" + h.btf_tp))) {
      // No btf_trace_* type (or no BTF for the module): raw tracepoint, same CO-RE reads.
      p.mechanism = "raw_tp";
      p.prog = h.raw_tp_prog;
      p.reason = force ? fmt::format("raw tracepoint (BDT_FORCE_FALLBACK)")
                       : fmt::format("no btf_trace_{} in kernel BTF; raw tracepoint", h.btf_tp);
    } else {
      p.mechanism = "none";
      p.reason = fmt::format("tracepoint {} not in this kernel", h.name);
    }
    plan.push_back(std::move(p));
  }
  return plan;
}

void apply_plan(struct bpf_object* obj, const std::vector<HookPlan>& plan) {
  struct bpf_program* prog;
  bpf_object__for_each_program(prog, obj) bpf_program__set_autoload(prog, false);
  for (const auto& p : plan) {
    if (!p.prog) continue;
    if (auto* pr = bpf_object__find_program_by_name(obj, p.prog))
      bpf_program__set_autoload(pr, true);
  }
}

std::vector<HookStatus> attach_plan(struct bpf_object* obj, const std::vector<HookPlan>& plan,
                                    std::vector<struct bpf_link*>& links) {
  std::vector<HookStatus> out;
  for (const auto& p : plan) {
    HookStatus s;
    s.name = p.hook->name;
    s.mechanism = p.mechanism;
    s.reason = p.reason;
    if (p.prog) {
      auto* pr = bpf_object__find_program_by_name(obj, p.prog);
      struct bpf_link* l = pr ? bpf_program__attach(pr) : nullptr;
      if (l) {
        links.push_back(l);
        s.attached = true;
      } else {
        const int err = errno;
        s.reason = fmt::format("{} attach failed: {} ({})", p.mechanism, std::strerror(err),
                               p.reason);
        s.mechanism = "none";
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}


// ---- function hooks ------------------------------------------------------------
FnEnv probe_env(const KernelBtf& btf, Backend backend) {
  FnEnv env;
  if (backend == Backend::Tracepoint) {
    env.fentry_why = env.kprobe_why = "--backend tracepoint";
    return env;
  }
  if (backend != Backend::Kprobe) {
    const char* target = btf.has_func("btrfs_get_extent") ? "btrfs_get_extent" : nullptr;
    if (!target) {
      env.fentry_why = "btrfs_get_extent not in kernel BTF (no btrfs module BTF?)";
    } else {
      auto r = probe_fentry(target);
      env.fentry_ok = r.ok;
      env.fentry_why = r.reason;
    }
  } else {
    env.fentry_why = "--backend kprobe";
  }
  if (backend != Backend::Fentry) {
    env.kprobe_ok = kprobe_pmu();
    env.kprobe_why = env.kprobe_ok ? "kprobe PMU present"
                                   : "kprobes unavailable on this kernel (no kprobe PMU)";
  } else {
    env.kprobe_why = "--backend fentry";
  }
  std::set<std::string> wanted;
  for (const auto& f : kFunctions)
    for (auto* c : f.candidates) wanted.insert(c);
  env.ksyms = kallsyms_resolve(wanted);
  return env;
}

namespace {
// Chooses a mechanism for one hook (no tracepoint interplay).
FnPlan choose(const FunctionHook& h, const KernelBtf& btf, const FnEnv& env, bool allow_fentry,
              bool allow_kprobe) {
  FnPlan p;
  p.hook = &h;
  std::string in_btf, in_syms;
  for (auto* c : h.candidates) {
    if (in_btf.empty() && btf.has_func(c)) in_btf = c;
    if (in_syms.empty() && env.ksyms.count(c)) in_syms = c;
  }
  if (allow_fentry && env.fentry_ok && !in_btf.empty()) {
    p.mechanism = "fentry";
    p.func = p.candidate = in_btf;
    p.reason = fmt::format("fentry{} on {}", h.exit ? (h.enter ? "+fexit" : " (fexit)") : "",
                           in_btf);
    return p;
  }
  if (allow_kprobe && env.kprobe_ok && !in_syms.empty()) {
    p.mechanism = "kprobe";
    p.candidate = in_syms;
    p.func = env.ksyms.at(in_syms);
    p.reason = fmt::format("kprobe{} on {}", h.exit ? (h.enter ? "+kretprobe" : " (kretprobe)") : "",
                           p.func);
    return p;
  }
  std::string names;
  for (auto* c : h.candidates) names += (names.empty() ? "" : "/") + std::string(c);
  std::string wf = !allow_fentry ? std::string("fentry not selected")
                   : !env.fentry_ok ? env.fentry_why
                   : fmt::format("no {} in kernel BTF", names);
  std::string wk = !allow_kprobe ? std::string("kprobe not selected")
                   : !env.kprobe_ok ? env.kprobe_why
                   : fmt::format("no {} in /proc/kallsyms (missing or inlined)", names);
  p.reason = fmt::format("{}; {}", wf, wk);
  return p;
}

HookPlan* tp_of(std::vector<HookPlan>& tp, const char* name) {
  for (auto& p : tp)
    if (p.hook && std::string_view(p.hook->name) == name) return &p;
  return nullptr;
}
}  // namespace

std::vector<FnPlan> plan_functions(const KernelBtf& btf, const FnEnv& env, Backend backend,
                                   std::vector<HookPlan>& tp_plan) {
  std::vector<FnPlan> out;
  const bool allow_fentry = backend == Backend::Auto || backend == Backend::Fentry;
  const bool allow_kprobe = backend == Backend::Auto || backend == Backend::Kprobe;
  for (const auto& h : kFunctions) {
    FnPlan p;
    p.hook = &h;
    if (!h.prog) {
      p.reason = h.no_prog_reason;
      out.push_back(std::move(p));
      continue;
    }
    if (backend == Backend::Tracepoint) {
      p.reason = "--backend tracepoint";
      out.push_back(std::move(p));
      continue;
    }
    if (h.prefer_tp) {
      std::string have;
      for (auto* t : h.tp_equiv)
        if (auto* tp = tp_of(tp_plan, t); tp && tp->prog) have = t;
      if (!have.empty()) {
        p.reason = fmt::format("tracepoint {} used instead", have);
        out.push_back(std::move(p));
        continue;
      }
    }
    p = choose(h, btf, env, allow_fentry, allow_kprobe);
    out.push_back(std::move(p));
  }
  return out;
}

bool downgrade(std::vector<FnPlan>& plan, const FnEnv& env, Backend backend,
               const std::string& prog, const std::string& why) {
  for (auto& p : plan) {
    if (!p.hook->prog || p.mechanism == "none") continue;
    const std::string s = p.hook->prog;
    const bool mine = prog == "fe_" + s || prog == "fx_" + s || prog == "kp_" + s || prog == "kr_" + s;
    if (!mine) continue;
    if (p.mechanism == "fentry" && backend == Backend::Auto && env.kprobe_ok &&
        env.ksyms.count(p.candidate)) {
      p.mechanism = "kprobe";
      p.func = env.ksyms.at(p.candidate);
      p.reason = fmt::format("kprobe on {} (fentry refused at load: {})", p.func, why);
    } else {
      p.reason = fmt::format("{} on {} refused at load: {}", p.mechanism, p.func, why);
      p.mechanism = "none";
    }
    return true;
  }
  return false;
}

// Drops the tracepoints that function hooks replace (after the final plan).
void drop_replaced_tracepoints(const std::vector<FnPlan>& plan, std::vector<HookPlan>& tp_plan) {
  for (const auto& p : plan) {
    if (p.mechanism == "none" || p.hook->prefer_tp) continue;
    for (auto* t : p.hook->tp_equiv)
      if (auto* tp = tp_of(tp_plan, t); tp && tp->prog) {
        tp->prog = nullptr;
        tp->mechanism = "none";
        tp->reason = fmt::format("replaced by {} {}", p.mechanism, p.hook->name);
      }
  }
}

namespace {
std::vector<std::pair<std::string, bool>> progs_of(const FnPlan& p) {
  // (program name, is the return half)
  std::vector<std::pair<std::string, bool>> v;
  if (!p.hook->prog) return v;
  const std::string s = p.hook->prog;
  if (p.mechanism == "fentry") {
    if (p.hook->enter) v.push_back({"fe_" + s, false});
    if (p.hook->exit) v.push_back({"fx_" + s, true});
  } else if (p.mechanism == "kprobe") {
    v.push_back({"kp_" + s, false});  // exit-only hooks: keeps the arguments for the kretprobe
    if (p.hook->exit) v.push_back({"kr_" + s, true});
  }
  return v;
}
}  // namespace

void apply_fn_plan(struct bpf_object* obj, const std::vector<FnPlan>& plan) {
  for (const auto& p : plan) {
    if (!p.hook->prog) continue;
    for (const auto& [name, ret] : progs_of(p)) {
      auto* pr = bpf_object__find_program_by_name(obj, name.c_str());
      if (!pr) continue;
      bpf_program__set_autoload(pr, true);
      if (p.mechanism == "fentry") bpf_program__set_attach_target(pr, 0, p.func.c_str());
    }
  }
}

void attach_fn_plan(struct bpf_object* obj, const std::vector<FnPlan>& plan,
                    std::vector<struct bpf_link*>& links, std::vector<HookStatus>& out) {
  for (const auto& p : plan) {
    HookStatus s;
    s.name = p.hook->name;
    s.mechanism = p.mechanism;
    s.reason = p.reason;
    bool ok = p.mechanism != "none";
    for (const auto& [name, ret] : progs_of(p)) {
      auto* pr = bpf_object__find_program_by_name(obj, name.c_str());
      struct bpf_link* l = nullptr;
      if (pr)
        l = p.mechanism == "fentry" ? bpf_program__attach(pr)
                                    : bpf_program__attach_kprobe(pr, ret, p.func.c_str());
      if (l) {
        links.push_back(l);
      } else {
        const int err = errno;
        ok = false;
        s.reason = fmt::format("{} attach to {} failed: {}", name, p.func, std::strerror(err));
      }
    }
    s.attached = ok;
    if (!ok && p.mechanism != "none") s.mechanism = "none";
    out.push_back(std::move(s));
  }
}

}  // namespace bdt::loader
