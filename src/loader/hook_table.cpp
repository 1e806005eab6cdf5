// The hook table (hook_table.h), built from bpf/hooks.def, and the detector
// fidelity judged from it.
#include "loader/hook_table.h"

#include <array>
#include <fmt/format.h>

#include "events.h"

namespace bdt::loader {

namespace {

// BDT_IDS(a, b, c) -> HookId::a, HookId::b, HookId::c (up to 16; none -> nothing)
#define BDT_ID_1(a) HookId::a
#define BDT_ID_2(a, ...) HookId::a, BDT_ID_1(__VA_ARGS__)
#define BDT_ID_3(a, ...) HookId::a, BDT_ID_2(__VA_ARGS__)
#define BDT_ID_4(a, ...) HookId::a, BDT_ID_3(__VA_ARGS__)
#define BDT_ID_5(a, ...) HookId::a, BDT_ID_4(__VA_ARGS__)
#define BDT_ID_6(a, ...) HookId::a, BDT_ID_5(__VA_ARGS__)
#define BDT_ID_7(a, ...) HookId::a, BDT_ID_6(__VA_ARGS__)
#define BDT_ID_8(a, ...) HookId::a, BDT_ID_7(__VA_ARGS__)
#define BDT_ID_9(a, ...) HookId::a, BDT_ID_8(__VA_ARGS__)
#define BDT_ID_10(a, ...) HookId::a, BDT_ID_9(__VA_ARGS__)
#define BDT_ID_11(a, ...) HookId::a, BDT_ID_10(__VA_ARGS__)
#define BDT_ID_12(a, ...) HookId::a, BDT_ID_11(__VA_ARGS__)
#define BDT_ID_13(a, ...) HookId::a, BDT_ID_12(__VA_ARGS__)
#define BDT_ID_14(a, ...) HookId::a, BDT_ID_13(__VA_ARGS__)
#define BDT_ID_15(a, ...) HookId::a, BDT_ID_14(__VA_ARGS__)
#define BDT_ID_16(a, ...) HookId::a, BDT_ID_15(__VA_ARGS__)
#define BDT_ID_PICK(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, \
                    NAME, ...)                                                              \
  NAME
#define BDT_IDS(...)                                                                          \
  __VA_OPT__(BDT_ID_PICK(__VA_ARGS__, BDT_ID_16, BDT_ID_15, BDT_ID_14, BDT_ID_13, BDT_ID_12, \
                         BDT_ID_11, BDT_ID_10, BDT_ID_9, BDT_ID_8, BDT_ID_7, BDT_ID_6,       \
                         BDT_ID_5, BDT_ID_4, BDT_ID_3, BDT_ID_2, BDT_ID_1)(__VA_ARGS__))

HookDef tracepoint(HookId id, const char* system, const char* tp, const char* purpose) {
  HookDef h;
  h.id = id;
  h.kind = HookKind::Tracepoint;
  h.system = h.raw_system = system;
  h.tracepoint = h.raw_tracepoint = tp;
  h.purpose = purpose;
  return h;
}

HookDef syscall(HookId id, const char* system, const char* tp, const char* raw_system,
                const char* raw_tp, const char* purpose) {
  HookDef h;
  h.id = id;
  h.kind = HookKind::Syscall;
  h.system = system;
  h.tracepoint = tp;
  h.raw_system = raw_system;
  h.raw_tracepoint = raw_tp;
  h.purpose = purpose;
  return h;
}

HookDef function(HookId id, std::vector<const char*> candidates, bool enter, bool exit,
                 Equivalence eq, std::vector<HookId> equivalents, uint32_t ioc_mask,
                 LayoutVar layout, std::vector<LayoutRule> rules, const char* purpose) {
  HookDef h;
  h.id = id;
  h.kind = HookKind::Function;
  h.candidates = std::move(candidates);
  h.enter = enter;
  h.exit = exit;
  h.equivalence = eq;
  h.equivalents = std::move(equivalents);
  h.ioc_mask = ioc_mask;
  h.layout = layout;
  h.layout_rules = std::move(rules);
  h.purpose = purpose;
  return h;
}

const std::vector<HookDef>& table() {
  static const std::vector<HookDef> t = {
#define BDT_TRACEPOINT(id, system, tp, call, purpose) tracepoint(HookId::id, #system, #tp, purpose),
#define BDT_SYSCALL(id, system, tp, raw_system, raw_tp, cctx, ccall, rcall, purpose) \
  syscall(HookId::id, #system, #tp, #raw_system, #raw_tp, purpose),
#define BDT_FUNCTION(id, name, candidates, halves, equivalents, layout, purpose) \
  function(HookId::id, candidates, halves, equivalents, layout, purpose),
#define BDT_DETECTOR(...)
#define CANDIDATES(...) std::vector<const char*>{__VA_ARGS__}
#define ENTER(e) true, false
#define EXIT(x) false, true
#define BOTH(e, x) true, true
#define REPLACES(...) Equivalence::Replaces, std::vector<HookId>{BDT_IDS(__VA_ARGS__)}, 0u
#define DEFERS_TO(...) Equivalence::DefersTo, std::vector<HookId>{BDT_IDS(__VA_ARGS__)}, 0u
#define ALONGSIDE(ioc, ...) \
  Equivalence::Alongside, std::vector<HookId>{BDT_IDS(__VA_ARGS__)}, static_cast<uint32_t>(ioc)
#define NO_EQUIVALENT Equivalence::None, std::vector<HookId>{}, 0u
#define LAYOUT(var, ...) LayoutVar::var, std::vector<LayoutRule>{__VA_ARGS__}
#define NO_LAYOUT LayoutVar::None, std::vector<LayoutRule>{}
#define IF_CHOSEN(f, v) LayoutRule{LayoutRule::Test::Chosen, f, 0, nullptr, v}
#define IF_NARGS(f, n, v) LayoutRule{LayoutRule::Test::Nargs, f, n, nullptr, v}
#define IF_PARAM(f, i, s, v) LayoutRule{LayoutRule::Test::Param, f, i, s, v}
#include "hooks.def"
#include "hooks_undef.h"
  };
  return t;
}

const std::vector<DetectorDef>& detectors() {
  static const std::vector<DetectorDef> d = {
#define BDT_TRACEPOINT(...)
#define BDT_SYSCALL(...)
#define BDT_FUNCTION(...)
#define BDT_DETECTOR(id, needs, full_with, partial_why, unavailable_why, findings_only) \
  DetectorDef{id, needs, full_with, partial_why, unavailable_why, findings_only},
#define NEEDS(...) std::vector<std::vector<HookId>>{__VA_ARGS__}
#define ANY(...) std::vector<HookId>{BDT_IDS(__VA_ARGS__)}
#define FULL_WITH(...) std::vector<HookId>{BDT_IDS(__VA_ARGS__)}
#include "hooks.def"
#include "hooks_undef.h"
  };
  return d;
}

constexpr std::array<std::string_view, static_cast<size_t>(LayoutVar::None)> kLayoutNames = {
#define BDT_TRACEPOINT(...)
#define BDT_SYSCALL(...)
#define BDT_DETECTOR(...)
#define NO_LAYOUT
#define LAYOUT(var, ...) #var,
#define BDT_FUNCTION(id, name, candidates, halves, equivalents, layout, purpose) layout
#include "hooks.def"
#include "hooks_undef.h"
};

}  // namespace

std::string_view layout_var_name(LayoutVar v) {
  const auto i = static_cast<size_t>(v);
  return i < kLayoutNames.size() ? kLayoutNames[i] : "";
}

std::span<const HookDef> hook_defs() { return table(); }

const HookDef& hook_def(HookId id) { return table().at(index_of(id)); }

std::span<const Mechanism> mechanisms_of(HookKind kind) {
  static constexpr Mechanism tp[] = {Mechanism::TpBtf, Mechanism::RawTp};
  static constexpr Mechanism sc[] = {Mechanism::Tracepoint, Mechanism::TpBtf, Mechanism::RawTp};
  static constexpr Mechanism fn[] = {Mechanism::Fentry, Mechanism::Kprobe};
  switch (kind) {
    case HookKind::Tracepoint: return tp;
    case HookKind::Syscall: return sc;
    case HookKind::Function: return fn;
  }
  return {};
}

std::vector<ProgName> programs_of(const HookDef& h, Mechanism m) {
  const std::string t(hook_token(h.id));
  switch (m) {
    case Mechanism::None: return {};
    case Mechanism::TpBtf: return {{"tb_" + t}};
    case Mechanism::RawTp: return {{"rt_" + t}};
    case Mechanism::Tracepoint: return {{"tp_" + t}};
    case Mechanism::Fentry: {
      std::vector<ProgName> v;
      if (h.enter) v.push_back({"fe_" + t});
      if (h.exit) v.push_back({"fx_" + t, true});
      return v;
    }
    case Mechanism::Kprobe: {
      // an exit-only hook's kprobe keeps the arguments for its kretprobe
      std::vector<ProgName> v{{"kp_" + t}};
      if (h.exit) v.push_back({"kr_" + t, true});
      return v;
    }
  }
  return {};
}

std::span<const DetectorDef> detector_defs() { return detectors(); }

std::vector<Fidelity> detector_fidelity(std::span<const HookStatus> hooks) {
  std::array<const HookStatus*, kHookCount> by_id{};
  for (const auto& h : hooks)
    if (index_of(h.id) < kHookCount) by_id[index_of(h.id)] = &h;
  auto attached = [&](HookId id) {
    const auto* s = by_id[index_of(id)];
    return s && s->attached;
  };
  // A FULL_WITH hook is also covered by an attached function hook that replaces
  // it or defers to it (it delivers the same events).
  auto covered = [&](HookId id) {
    if (attached(id)) return true;
    for (const auto& h : table())
      if ((h.equivalence == Equivalence::Replaces || h.equivalence == Equivalence::DefersTo) &&
          attached(h.id))
        for (auto e : h.equivalents)
          if (e == id) return true;
    return false;
  };
  std::vector<Fidelity> out;
  for (const auto& d : detectors()) {
    Fidelity f;
    f.id = d.id;
    const std::vector<HookId>* first_missing = nullptr;
    std::string missing;
    for (const auto& any : d.needs) {
      bool have = false;
      for (auto id : any) have = have || attached(id);
      if (have) continue;
      if (!first_missing) first_missing = &any;
      std::string alt;
      for (auto id : any) alt += fmt::format("{}{}", alt.empty() ? "" : "|", hook_name(id));
      missing += (missing.empty() ? "" : ", ") + alt;
    }
    if (first_missing) {
      f.fidelity = "unavailable";
      if (*d.unavailable_why) {
        const auto* s = first_missing->empty() ? nullptr : by_id[index_of(first_missing->front())];
        f.reason = fmt::format("{}: {}", d.unavailable_why, s ? s->reason : "not planned");
      } else {
        f.reason = fmt::format("hooks not attached: {}", missing);
      }
    } else {
      bool full = true;
      for (auto id : d.full_with) full = full && covered(id);
      f.fidelity = full ? "full" : "partial";
      f.reason = full ? "all hooks attached" : d.partial_why;
    }
    f.findings_only = d.findings_only;
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace bdt::loader
