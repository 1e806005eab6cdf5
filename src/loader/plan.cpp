// plan_hooks (plan.h): per hook, the best mechanism the kernel's facts allow,
// skipping the ones it refused.
#include "loader/plan.h"

#include <fmt/format.h>

namespace bdt::loader {

namespace {

bool refused(std::span<const Refusal> r, HookId id, Mechanism m) {
  for (const auto& x : r)
    if (x.id == id && x.mechanism == m) return true;
  return false;
}

// "tp_btf refused by the verifier: ...; raw_tp attach failed: ..." for id.
std::string refusal_note(std::span<const Refusal> r, HookId id) {
  std::string s;
  for (const auto& x : r)
    if (x.id == id) s += fmt::format("{}{} {}", s.empty() ? "" : "; ", to_string(x.mechanism), x.reason);
  return s;
}

std::string with_note(std::string reason, const std::string& note) {
  return note.empty() ? reason : fmt::format("{} ({})", reason, note);
}

std::string slash_names(const HookDef& h) {
  std::string s;
  for (auto* c : h.candidates) s += fmt::format("{}{}", s.empty() ? "" : "/", c);
  return s;
}

const char* kEveryCall = "runs on every system call of the machine";

PlannedHook plan_tracepoint(const HookDef& h, const KernelFacts& f, const PlanOptions& o,
                            std::span<const Refusal> r) {
  PlannedHook p;
  p.id = h.id;
  const std::string sys = h.system, tp = h.tracepoint, rsys = h.raw_system, rtp = h.raw_tracepoint;
  const bool have_btf = f.btf_tracepoints.count(rtp) > 0;
  const bool have_raw = f.tracefs.empty() || f.tracefs_events.count(rsys + "/" + rtp) > 0;
  const bool have_classic = !f.tracefs.empty() && f.tracefs_events.count(sys + "/" + tp) > 0;
  const bool syscall = h.kind == HookKind::Syscall;
  const std::string note = refusal_note(r, h.id);
  for (Mechanism m : mechanisms_of(h.kind)) {
    if (refused(r, h.id, m)) continue;
    switch (m) {
      case Mechanism::Tracepoint:
        if (o.force_fallback || !have_classic) continue;
        p.mechanism = m;
        p.reason = fmt::format("classic tracepoint {}:{}, which only {} runs{}", sys, tp,
                               tp.rfind("sys_enter_", 0) == 0 ? tp.substr(10) + "(2)"
                               : tp.rfind("sys_exit_", 0) == 0 ? tp.substr(9) + "(2)"
                                                               : std::string("its call"),
                               f.tracefs_how.empty() || f.tracefs_how == "mounted"
                                   ? ""
                                   : fmt::format("; tracefs {}", f.tracefs_how));
        break;
      case Mechanism::TpBtf:
        if (!have_btf || (!syscall && o.force_fallback && have_raw)) continue;
        p.mechanism = m;
        if (!syscall) {
          p.reason = fmt::format("btf_trace_{} in kernel BTF", rtp);
        } else {
          const std::string why =
              o.force_fallback ? std::string("BDT_FORCE_FALLBACK")
              : f.tracefs.empty()
                  ? fmt::format("tracepoint {}:{} cannot be resolved without tracefs ({})", sys, tp,
                                f.tracefs_how.empty() ? "not mounted" : f.tracefs_how)
                  : fmt::format("tracepoint {}:{} missing", sys, tp);
          p.reason = fmt::format("{}; raw {} filtered by syscall number ({})", why, rtp, kEveryCall);
        }
        break;
      case Mechanism::RawTp:
        if (!have_raw) continue;
        p.mechanism = m;
        if (syscall)
          p.reason = fmt::format("raw tracepoint {} filtered by syscall number ({})", rtp, kEveryCall);
        else if (have_btf)
          p.reason = o.force_fallback ? "raw tracepoint (BDT_FORCE_FALLBACK)" : "raw tracepoint";
        else
          p.reason = fmt::format("no btf_trace_{} in kernel BTF; raw tracepoint", rtp);
        break;
      default: continue;
    }
    p.reason = with_note(p.reason, note);
    return p;
  }
  p.reason = note.empty() ? fmt::format("tracepoint {} not in this kernel", tp) : note;
  return p;
}

// The first candidate that passes ok(), or nullptr.
template <class F>
const char* first_candidate(const HookDef& h, F ok) {
  for (auto* c : h.candidates)
    if (ok(c)) return c;
  return nullptr;
}

PlannedHook plan_function(const HookDef& h, const KernelFacts& f, const PlanOptions& o,
                          std::span<const Refusal> r) {
  PlannedHook p;
  p.id = h.id;
  const bool allow_fentry = o.backend == Backend::Auto || o.backend == Backend::Fentry;
  const bool allow_kprobe = o.backend == Backend::Auto || o.backend == Backend::Kprobe;
  const std::string note = refusal_note(r, h.id);
  const std::string names = slash_names(h);

  // fentry: allowed, the function in BTF, and its own probe (if made) attached
  std::string wf;
  if (!allow_fentry) {
    wf = "fentry not selected";
  } else if (!f.fentry_ok.value_or(false)) {
    wf = f.fentry_why.empty() ? std::string("fentry not probed") : f.fentry_why;
  } else if (refused(r, h.id, Mechanism::Fentry)) {
    wf.clear();  // said in the note
  } else {
    std::string probe_fail;
    const char* c = first_candidate(h, [&](const char* name) {
      const auto* fn = f.function(name);
      if (!fn || !fn->in_btf) return false;
      if (fn->fentry_ok && !*fn->fentry_ok) {
        if (probe_fail.empty()) probe_fail = fmt::format("fentry on {}: {}", name, fn->fentry_why);
        return false;
      }
      return true;
    });
    if (c) {
      p.mechanism = Mechanism::Fentry;
      p.candidate = p.target = c;
      p.reason = with_note(
          fmt::format("fentry{} on {}", h.exit ? (h.enter ? "+fexit" : " (fexit)") : "", c), note);
      return p;
    }
    wf = probe_fail.empty() ? fmt::format("no {} in kernel BTF", names) : probe_fail;
  }

  std::string wk;
  if (!allow_kprobe) {
    wk = "kprobe not selected";
  } else if (!f.kprobe_pmu.value_or(false)) {
    wk = "kprobes unavailable on this kernel (no kprobe PMU)";
  } else if (refused(r, h.id, Mechanism::Kprobe)) {
    wk.clear();
  } else {
    std::string blacklisted;
    const char* c = first_candidate(h, [&](const char* name) {
      const auto* fn = f.function(name);
      if (!fn || fn->ksym.empty()) return false;
      if (fn->kprobe_blacklisted) {
        if (blacklisted.empty()) blacklisted = fmt::format("{} is in the kprobe blacklist", fn->ksym);
        return false;
      }
      return true;
    });
    if (c) {
      p.mechanism = Mechanism::Kprobe;
      p.candidate = c;
      p.target = f.function(c)->ksym;
      p.reason = with_note(fmt::format("kprobe{} on {}",
                                       h.exit ? (h.enter ? "+kretprobe" : " (kretprobe)") : "",
                                       p.target),
                           note);
      return p;
    }
    wk = blacklisted.empty() ? fmt::format("no {} in /proc/kallsyms (missing or inlined)", names)
                             : blacklisted;
  }
  std::string reason = wf;
  if (!wk.empty()) reason += (reason.empty() ? "" : "; ") + wk;
  if (!note.empty()) reason += (reason.empty() ? "" : "; ") + note;
  p.reason = reason;
  return p;
}

// The candidate a layout is computed for: the planned one, else the first in BTF.
std::string layout_candidate(const HookDef& h, const PlannedHook& p, const KernelFacts& f) {
  if (!p.candidate.empty()) return p.candidate;
  const char* c = first_candidate(h, [&](const char* name) {
    const auto* fn = f.function(name);
    return fn && fn->in_btf;
  });
  return c ? c : "";
}

uint32_t layout_value(const HookDef& h, const std::string& chosen, const KernelFacts& f) {
  for (const auto& rule : h.layout_rules) {
    if (chosen != rule.func) continue;
    const auto* fn = f.function(rule.func);
    switch (rule.test) {
      case LayoutRule::Test::Chosen: return rule.value;
      case LayoutRule::Test::Nargs:
        if (fn && fn->in_btf && static_cast<int>(fn->param_structs.size()) == rule.n) return rule.value;
        break;
      case LayoutRule::Test::Param:
        if (fn && fn->in_btf && rule.n >= 0 &&
            static_cast<size_t>(rule.n) < fn->param_structs.size() &&
            fn->param_structs[static_cast<size_t>(rule.n)] == rule.strct)
          return rule.value;
        break;
    }
  }
  return 0;
}

KernelConstants constants_of(const KernelFacts& f) {
  KernelConstants k;
  auto m = f.member_structs.find("btrfs_ordered_extent.inode");
  k.oe_inode_is_btrfs = m != f.member_structs.end() && m->second == "btrfs_inode";
  auto n = f.tracepoint_nargs.find("io_uring_complete");
  k.uring_cmpl_cqe = n != f.tracepoint_nargs.end() && n->second == 3;
  k.rdonly_untyped = f.rdonly_untyped.value_or(false);
  for (const auto& [name, value] : f.enumerators) {
    if (name == "BTRFS_ORDERED_IOERR" && value >= 0 && value < 64) k.oe_ioerr_bit = static_cast<uint32_t>(value);
    if (name == "BTRFS_ORDERED_DIRECT" && value >= 0 && value < 64) k.oe_direct_bit = static_cast<uint32_t>(value);
    if (name == "EXTENT_BUFFER_STALE" && value >= 0 && value < 64) k.eb_stale_bit = static_cast<uint32_t>(value);
    if (name == "EXTENT_FLAG_COMPRESS_ZLIB" || name == "EXTENT_FLAG_COMPRESS_LZO" ||
        name == "EXTENT_FLAG_COMPRESS_ZSTD")
      k.em_compress_mask |= static_cast<uint32_t>(value);
    if (name.rfind("BTRFS_ORDERED_", 0) == 0) k.ordered_flags_known = true;
  }
  return k;
}

}  // namespace

size_t Plan::planned() const {
  size_t n = 0;
  for (const auto& h : hooks) n += h.mechanism != Mechanism::None;
  return n;
}

std::string backend_impossible(const KernelFacts& f, Backend backend) {
  if (backend == Backend::Fentry && !f.fentry_ok.value_or(false))
    return fmt::format("--backend fentry: {}; use --backend auto (falls back to kprobes or "
                       "tracepoints) or see `btrfs-dio-trace doctor`",
                       f.fentry_why.empty() ? "fentry not probed" : f.fentry_why);
  if (backend == Backend::Kprobe && !f.kprobe_pmu.value_or(false))
    return "--backend kprobe: kprobes unavailable on this kernel (no kprobe PMU); use --backend "
           "auto or see `btrfs-dio-trace doctor`";
  return {};
}

Plan plan_hooks(const KernelFacts& f, const PlanOptions& o, std::span<const Refusal> r) {
  Plan plan;
  const auto defs = hook_defs();
  plan.hooks.resize(defs.size());
  // Tracepoints first: function hooks that defer to one look at them.
  for (const auto& h : defs)
    if (h.kind != HookKind::Function) plan.hooks[index_of(h.id)] = plan_tracepoint(h, f, o, r);
  for (const auto& h : defs) {
    if (h.kind != HookKind::Function) continue;
    PlannedHook& p = plan.hooks[index_of(h.id)];
    p.id = h.id;
    if (o.backend == Backend::Tracepoint) {
      p.reason = "--backend tracepoint";
      continue;
    }
    if (h.equivalence == Equivalence::DefersTo) {
      const HookDef* have = nullptr;
      for (auto t : h.equivalents)
        if (plan.at(t).mechanism != Mechanism::None) have = &hook_def(t);
      if (have) {
        p.reason = fmt::format("tracepoint {} used instead", hook_name(have->id));
        continue;
      }
    }
    p = plan_function(h, f, o, r);
  }
  // Tracepoints that a planned function hook replaces are not planned.
  for (const auto& h : defs) {
    const PlannedHook& p = plan.at(h.id);
    if (h.equivalence != Equivalence::Replaces || p.mechanism == Mechanism::None) continue;
    for (auto t : h.equivalents) {
      PlannedHook& tp = plan.hooks[index_of(t)];
      if (tp.mechanism == Mechanism::None) continue;
      tp.mechanism = Mechanism::None;
      tp.reason = fmt::format("replaced by {} {}", to_string(p.mechanism), hook_name(h.id));
    }
  }
  if (o.no_fallback_hooks) {
    auto drop = [&](HookId id) {
      PlannedHook& p = plan.hooks[index_of(id)];
      p = PlannedHook{};
      p.id = id;
      p.reason = "BDT_FALLBACK_HOOKS=0";
    };
    drop(HookId::direct_w);
    for (auto t : hook_def(HookId::direct_w).equivalents) drop(t);
  }
  for (const auto& h : defs)
    if (h.layout != LayoutVar::None)
      plan.layouts.emplace_back(h.layout, layout_value(h, layout_candidate(h, plan.at(h.id), f), f));
  plan.constants = constants_of(f);
  return plan;
}

}  // namespace bdt::loader
