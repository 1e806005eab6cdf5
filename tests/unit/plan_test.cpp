// Hook planning without a kernel: the hook table (bpf/hooks.def), plan_hooks
// on synthetic facts and on the recorded facts of real kernels
// (tests/fixtures/kernels/*.json, from `btrfs-dio-trace doctor --facts`),
// refusals and their fallbacks, detector fidelity, verifier-log excerpts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "loader/hook_table.h"
#include "loader/kernel_facts.h"
#include "loader/plan.h"
#include "loader/verifier_log.h"

using namespace bdt;
using namespace bdt::loader;

namespace {

// A kernel that offers everything: every tracepoint with BTF and in tracefs,
// every function in BTF and kallsyms, fentry and kprobes allowed.
KernelFacts everything() {
  KernelFacts f;
  f.release = "9.9.0-test";
  f.vmlinux_btf = true;
  f.tracefs = "/sys/kernel/tracing";
  f.tracefs_how = "mounted";
  for (const auto& h : hook_defs()) {
    if (h.kind == HookKind::Function) {
      for (auto* c : h.candidates) {
        FunctionFacts fn;
        fn.in_btf = true;
        fn.param_structs = {"", "", ""};
        fn.ksym = c;
        fn.fentry_ok = true;
        f.functions[c] = fn;
      }
      continue;
    }
    f.btf_tracepoints.insert(h.raw_tracepoint);
    f.tracefs_events.insert(std::string(h.system) + "/" + h.tracepoint);
    f.tracefs_events.insert(std::string(h.raw_system) + "/" + h.raw_tracepoint);
  }
  f.fentry_ok = true;
  f.kprobe_pmu = true;
  return f;
}

// This host's kind of kernel: tracepoints only.
KernelFacts tracepoints_only() {
  KernelFacts f = everything();
  f.fentry_ok = false;
  f.fentry_why = "fentry refused by this kernel (EPERM: function tracing with BPF blocked)";
  f.kprobe_pmu = false;
  for (auto& [n, fn] : f.functions) fn.fentry_ok.reset();
  return f;
}

Mechanism mech(const Plan& p, HookId id) { return p.at(id).mechanism; }

std::vector<HookStatus> attach_all_planned(const Plan& p) {
  std::vector<HookStatus> v;
  for (const auto& h : p.hooks) v.push_back({h.id, h.mechanism, h.mechanism != Mechanism::None, h.reason});
  return v;
}

std::string fmt_replaced(Mechanism m) {
  return "replaced by " + std::string(to_string(m)) + " btrfs_get_extent()";
}

std::string fidelity_of(const std::vector<Fidelity>& fs, const std::string& id) {
  for (const auto& f : fs)
    if (f.id == id) return f.fidelity;
  return "?";
}

}  // namespace

TEST(HookTable, EveryHookHasNameTokenAndPrograms) {
  EXPECT_EQ(hook_defs().size(), kHookCount);
  std::set<std::string> tokens, progs;
  for (size_t i = 0; i < hook_defs().size(); ++i) {
    const auto& h = hook_defs()[i];
    EXPECT_EQ(index_of(h.id), i);
    EXPECT_FALSE(hook_name(h.id).empty());
    EXPECT_TRUE(tokens.insert(std::string(hook_token(h.id))).second) << hook_token(h.id);
    EXPECT_EQ(hook_from_token(hook_token(h.id)), h.id);
    EXPECT_LE(hook_token(h.id).size(), 12u) << "program names keep 15 characters";
    for (Mechanism m : mechanisms_of(h.kind)) {
      auto ps = programs_of(h, m);
      EXPECT_FALSE(ps.empty()) << hook_name(h.id) << " " << to_string(m);
      for (const auto& p : ps) EXPECT_TRUE(progs.insert(p.name).second) << p.name;
    }
    if (h.kind == HookKind::Function) {
      EXPECT_FALSE(h.candidates.empty());
      EXPECT_TRUE(h.enter || h.exit);
      EXPECT_EQ(hook_name(h.id).substr(hook_name(h.id).size() - 2), "()");
    }
    for (auto e : h.equivalents) EXPECT_NE(hook_def(e).kind, HookKind::Function);
  }
  // The names doctor has always printed.
  EXPECT_EQ(hook_name(HookId::dio_begin), "iomap_dio_rw_begin");
  EXPECT_EQ(hook_name(HookId::ioctl_enter), "sys_enter_ioctl");
  EXPECT_EQ(hook_name(HookId::get_ext), "btrfs_get_extent()");
  EXPECT_EQ(programs_of(hook_def(HookId::em_add), Mechanism::Kprobe).size(), 2u);  // kp_ keeps args
  EXPECT_EQ(programs_of(hook_def(HookId::em_add), Mechanism::Fentry).size(), 1u);  // fx_ only
}

TEST(HookTable, MechanismNames) {
  for (auto m : {Mechanism::None, Mechanism::TpBtf, Mechanism::RawTp, Mechanism::Tracepoint,
                 Mechanism::Fentry, Mechanism::Kprobe})
    EXPECT_EQ(mechanism_from_string(to_string(m)), m);
  EXPECT_EQ(to_string(Mechanism::TpBtf), "tp_btf");
  EXPECT_FALSE(mechanism_from_string("fexit"));
}

TEST(HookTable, DetectorsNameKnownHooks) {
  std::set<std::string> ids;
  for (const auto& d : detector_defs()) {
    EXPECT_TRUE(ids.insert(d.id).second);
    for (const auto& any : d.needs) EXPECT_FALSE(any.empty()) << d.id;
  }
  EXPECT_EQ(ids, (std::set<std::string>{"em-merge-race", "stale-eb-reuse", "dio-short-write",
                                        "send-vs-relocation", "dio-unstable-pages",
                                        "dio-buffered-fallback", "dio-unexpected-errno",
                                        "dio-acked-unbacked", "dio-stuck",
                                        "dio-csum-after-direct-write"}));
}

TEST(Plan, EverythingPrefersFunctionsExceptWhereTheTracepointIsExact) {
  const auto p = plan_hooks(everything(), {});
  // tracepoints that function hooks defer to stay, and the function hooks are not planned
  EXPECT_EQ(mech(p, HookId::dio_begin), Mechanism::TpBtf);
  EXPECT_EQ(mech(p, HookId::dio_w), Mechanism::None);
  EXPECT_EQ(p.at(HookId::dio_w).reason, "tracepoint iomap_dio_rw_begin used instead");
  EXPECT_EQ(mech(p, HookId::oe_fin), Mechanism::None);
  // function hooks that see more replace theirs
  EXPECT_EQ(mech(p, HookId::get_ext), Mechanism::Fentry);
  EXPECT_EQ(p.at(HookId::get_ext).reason, "fentry+fexit on btrfs_get_extent");
  EXPECT_EQ(mech(p, HookId::get_extent), Mechanism::None);
  EXPECT_EQ(p.at(HookId::get_extent).reason, "replaced by fentry btrfs_get_extent()");
  EXPECT_EQ(mech(p, HookId::reclaim_bg), Mechanism::None);
  // classic syscall tracepoints with tracefs
  EXPECT_EQ(mech(p, HookId::ioctl_enter), Mechanism::Tracepoint);
  EXPECT_EQ(p.at(HookId::ioctl_enter).reason,
            "classic tracepoint syscalls:sys_enter_ioctl, which only ioctl(2) runs");
  // send/balance run alongside the syscall hooks
  EXPECT_EQ(mech(p, HookId::send), Mechanism::Fentry);
  EXPECT_EQ(hook_def(HookId::send).equivalence, Equivalence::Alongside);
  // btrfs_direct_write() replaces the write-family syscall and io_uring hooks
  EXPECT_EQ(mech(p, HookId::direct_w), Mechanism::Fentry);
  EXPECT_EQ(mech(p, HookId::fbe_pwrite64), Mechanism::None);
  EXPECT_EQ(p.at(HookId::uring_cmpl).reason, "replaced by fentry btrfs_direct_write()");
  // every tracepoint and syscall hook but those a function hook replaces, every
  // function hook but those that defer to a tracepoint (28 - 16 + 14 - 4 when
  // this was written; counted from the table so that a new hook needs no edit here)
  size_t tracepoints = 0, replaced = 0, functions = 0, deferring = 0;
  for (const auto& h : hook_defs()) {
    if (h.kind != HookKind::Function) {
      ++tracepoints;
    } else {
      ++functions;
      if (h.equivalence == Equivalence::Replaces) replaced += h.equivalents.size();
      if (h.equivalence == Equivalence::DefersTo) ++deferring;
    }
  }
  EXPECT_EQ(p.planned(), tracepoints - replaced + functions - deferring);
  // the benchmark's BDT_FALLBACK_HOOKS=0: none of the fallback hooks
  PlanOptions nofb;
  nofb.no_fallback_hooks = true;
  const auto q = plan_hooks(everything(), nofb);
  EXPECT_EQ(mech(q, HookId::direct_w), Mechanism::None);
  EXPECT_EQ(mech(q, HookId::fbe_write), Mechanism::None);
  EXPECT_EQ(q.at(HookId::uring_sub).reason, "BDT_FALLBACK_HOOKS=0");
  EXPECT_EQ(q.planned(), p.planned() - 1);  // direct_w (its equivalents were not planned)
}

TEST(Plan, TracepointsOnlyKernel) {
  const auto f = tracepoints_only();
  const auto p = plan_hooks(f, {});
  for (const auto& h : hook_defs()) {
    if (h.kind == HookKind::Function) {
      EXPECT_EQ(mech(p, h.id), Mechanism::None) << hook_name(h.id);
    } else {
      EXPECT_NE(mech(p, h.id), Mechanism::None) << hook_name(h.id);
    }
  }
  EXPECT_EQ(p.at(HookId::eb_free).reason,
            "fentry refused by this kernel (EPERM: function tracing with BPF blocked); kprobes "
            "unavailable on this kernel (no kprobe PMU)");
  EXPECT_EQ(p.at(HookId::em_exist).reason, "btf_trace_btrfs_handle_em_exist in kernel BTF");
  EXPECT_NE(backend_impossible(f, Backend::Fentry).find("--backend fentry: fentry refused"),
            std::string::npos);
  EXPECT_NE(backend_impossible(f, Backend::Kprobe).find("no kprobe PMU"), std::string::npos);
  EXPECT_EQ(backend_impossible(f, Backend::Tracepoint), "");
  // doctor's fidelity: as this host has always reported it
  const auto fid = detector_fidelity(attach_all_planned(p));
  EXPECT_EQ(fidelity_of(fid, "em-merge-race"), "partial");
  EXPECT_EQ(fidelity_of(fid, "stale-eb-reuse"), "unavailable");
  EXPECT_EQ(fidelity_of(fid, "dio-short-write"), "full");
  EXPECT_EQ(fidelity_of(fid, "send-vs-relocation"), "partial");
  EXPECT_EQ(fidelity_of(fid, "dio-unstable-pages"), "partial");
  EXPECT_EQ(fidelity_of(fid, "dio-buffered-fallback"), "full");
  EXPECT_EQ(fidelity_of(fid, "dio-unexpected-errno"), "partial");
  EXPECT_EQ(fidelity_of(fid, "dio-acked-unbacked"), "full");
  EXPECT_EQ(fidelity_of(fid, "dio-stuck"), "full");
  EXPECT_EQ(fidelity_of(fid, "dio-csum-after-direct-write"), "unavailable");
  // every detector says what it sees by default (findings only, lazy emission)
  for (const auto& x : fid) EXPECT_FALSE(x.findings_only.empty()) << x.id;
  for (const auto& x : fid)
    if (x.id == "dio-csum-after-direct-write") {
      EXPECT_NE(x.findings_only.find("csum_direct"), std::string::npos);
    } else if (x.id == "dio-acked-unbacked") {
      EXPECT_NE(x.findings_only.find("acked_ioerr"), std::string::npos);
    }
  for (const auto& x : fid)
    if (x.id == "stale-eb-reuse") {
      EXPECT_EQ(x.reason,
                "needs function hooks on free_extent_buffer/find_extent_buffer (no tracepoint "
                "exists): fentry refused by this kernel (EPERM: function tracing with BPF "
                "blocked); kprobes unavailable on this kernel (no kprobe PMU)");
    }
}

TEST(Plan, WithoutTracefsTheSyscallHooksUseTheRawTracepointAndSaySo) {
  auto f = tracepoints_only();
  f.tracefs.clear();
  f.tracefs_how = "not mounted, and mounting it at /sys/kernel/tracing failed: Operation not permitted";
  f.tracefs_events.clear();
  const auto p = plan_hooks(f, {});
  EXPECT_EQ(mech(p, HookId::ioctl_enter), Mechanism::TpBtf);
  EXPECT_EQ(p.at(HookId::ioctl_enter).reason,
            "tracepoint syscalls:sys_enter_ioctl cannot be resolved without tracefs (not mounted, "
            "and mounting it at /sys/kernel/tracing failed: Operation not permitted); raw "
            "sys_enter filtered by syscall number (runs on every system call of the machine)");
  f.tracefs = "/sys/kernel/tracing";
  f.tracefs_how = "mounted at /sys/kernel/tracing by btrfs-dio-trace";
  f.tracefs_events = tracepoints_only().tracefs_events;
  const auto q = plan_hooks(f, {});
  EXPECT_EQ(mech(q, HookId::ioctl_exit), Mechanism::Tracepoint);
  EXPECT_EQ(q.at(HookId::ioctl_exit).reason,
            "classic tracepoint syscalls:sys_exit_ioctl, which only ioctl(2) runs; tracefs mounted "
            "at /sys/kernel/tracing by btrfs-dio-trace");
}

TEST(Plan, RefusedTracepointFallsBackToRawTpThenNone) {
  const auto f = tracepoints_only();
  std::vector<Refusal> r{{HookId::em_exist, Mechanism::TpBtf,
                          "program tb_em_exist refused by the verifier: R8 invalid mem access"}};
  auto p = plan_hooks(f, {}, r);
  EXPECT_EQ(mech(p, HookId::em_exist), Mechanism::RawTp);
  EXPECT_EQ(p.at(HookId::em_exist).reason,
            "raw tracepoint (tp_btf program tb_em_exist refused by the verifier: R8 invalid mem "
            "access)");
  EXPECT_EQ(mech(p, HookId::dio_begin), Mechanism::TpBtf);  // the others are untouched
  r.push_back({HookId::em_exist, Mechanism::RawTp, "program rt_em_exist refused by the verifier: x"});
  p = plan_hooks(f, {}, r);
  EXPECT_EQ(mech(p, HookId::em_exist), Mechanism::None);
  EXPECT_EQ(p.at(HookId::em_exist).reason,
            "tp_btf program tb_em_exist refused by the verifier: R8 invalid mem access; raw_tp "
            "program rt_em_exist refused by the verifier: x");
  const auto fid = detector_fidelity(attach_all_planned(p));
  EXPECT_EQ(fidelity_of(fid, "em-merge-race"), "unavailable");
  EXPECT_EQ(fidelity_of(fid, "dio-short-write"), "full");
}

TEST(Plan, RefusedSyscallTracepointFallsBackToTheRawOne) {
  const auto f = tracepoints_only();
  std::vector<Refusal> r{{HookId::ioctl_enter, Mechanism::Tracepoint, "attach failed: x"}};
  auto p = plan_hooks(f, {}, r);
  EXPECT_EQ(mech(p, HookId::ioctl_enter), Mechanism::TpBtf);
  r.push_back({HookId::ioctl_enter, Mechanism::TpBtf, "refused by the verifier: y"});
  p = plan_hooks(f, {}, r);
  EXPECT_EQ(mech(p, HookId::ioctl_enter), Mechanism::RawTp);
  EXPECT_EQ(mech(p, HookId::ioctl_exit), Mechanism::Tracepoint);
}

TEST(Plan, RefusedFunctionFallsBackToKprobeThenToItsTracepoint) {
  const auto f = everything();
  std::vector<Refusal> r{{HookId::get_ext, Mechanism::Fentry, "refused by the verifier: z"}};
  auto p = plan_hooks(f, {}, r);
  EXPECT_EQ(mech(p, HookId::get_ext), Mechanism::Kprobe);
  EXPECT_EQ(p.at(HookId::get_ext).target, "btrfs_get_extent");
  EXPECT_EQ(p.at(HookId::get_ext).reason,
            "kprobe+kretprobe on btrfs_get_extent (fentry refused by the verifier: z)");
  EXPECT_EQ(mech(p, HookId::get_extent), Mechanism::None);
  r.push_back({HookId::get_ext, Mechanism::Kprobe, "attach failed: w"});
  p = plan_hooks(f, {}, r);
  EXPECT_EQ(mech(p, HookId::get_ext), Mechanism::None);
  EXPECT_EQ(mech(p, HookId::get_extent), Mechanism::TpBtf);  // its tracepoint comes back
  // --backend fentry never falls back to kprobes
  p = plan_hooks(f, {Backend::Fentry}, std::vector<Refusal>{r.front()});
  EXPECT_EQ(mech(p, HookId::get_ext), Mechanism::None);
  EXPECT_EQ(p.at(HookId::get_ext).reason, "kprobe not selected; fentry refused by the verifier: z");
}

TEST(Plan, DeferringFunctionTakesOverWhenItsTracepointIsRefused) {
  auto f = everything();
  std::vector<Refusal> r{{HookId::dio_begin, Mechanism::TpBtf, "a"}, {HookId::dio_begin, Mechanism::RawTp, "b"}};
  const auto p = plan_hooks(f, {}, r);
  EXPECT_EQ(mech(p, HookId::dio_begin), Mechanism::None);
  EXPECT_EQ(mech(p, HookId::dio_w), Mechanism::Fentry);
  EXPECT_EQ(mech(p, HookId::dio_r), Mechanism::Fentry);
  EXPECT_EQ(mech(p, HookId::dio_cmpl), Mechanism::None);  // iomap_dio_complete is still there
}

TEST(Plan, PerTargetProbeAndCandidates) {
  auto f = everything();
  f.functions.at("add_extent_mapping").fentry_ok = false;
  f.functions.at("add_extent_mapping").fentry_why = "fentry program on add_extent_mapping not loadable: x";
  f.functions.at("btrfs_add_extent_mapping").param_structs = {"btrfs_inode", "extent_map", "", ""};
  auto p = plan_hooks(f, {});
  EXPECT_EQ(mech(p, HookId::em_add), Mechanism::Fentry);
  EXPECT_EQ(p.at(HookId::em_add).candidate, "btrfs_add_extent_mapping");
  for (const auto& [var, v] : p.layouts)
    if (var == LayoutVar::em_add_layout) {
      EXPECT_EQ(v, 3u);
    }
  // a ThinLTO-renamed static for kprobes
  f = everything();
  f.fentry_ok = false;
  f.functions.at("btrfs_get_extent").ksym = "btrfs_get_extent.llvm.123";
  f.functions.at("free_extent_buffer").kprobe_blacklisted = true;
  f.functions.at("btrfs_check_data_csum").in_btf = false;
  f.functions.at("btrfs_check_data_csum").ksym.clear();
  p = plan_hooks(f, {});
  EXPECT_EQ(p.at(HookId::get_ext).target, "btrfs_get_extent.llvm.123");
  EXPECT_EQ(p.at(HookId::get_ext).candidate, "btrfs_get_extent");
  EXPECT_EQ(mech(p, HookId::eb_free), Mechanism::None);
  EXPECT_NE(p.at(HookId::eb_free).reason.find("free_extent_buffer is in the kprobe blacklist"),
            std::string::npos);
  EXPECT_EQ(p.at(HookId::csum).candidate, "btrfs_data_csum_ok");
  for (const auto& [var, v] : p.layouts)
    if (var == LayoutVar::csum_layout) {
      EXPECT_EQ(v, 1u);
    }
}

TEST(Plan, ArgumentLayoutsFollowThePrototypes) {
  auto f = everything();
  f.functions.at("btrfs_get_extent").param_structs = {"btrfs_inode", "folio", "", ""};
  f.functions.at("add_extent_mapping").param_structs = {"extent_map_tree", "extent_map", ""};
  f.functions.at("btrfs_ioctl_send").param_structs = {"btrfs_root", "btrfs_ioctl_send_args"};
  auto p = plan_hooks(f, {});
  std::map<std::string, uint32_t> v;
  for (const auto& [var, x] : p.layouts) v[std::string(layout_var_name(var))] = x;
  EXPECT_EQ(v, (std::map<std::string, uint32_t>{
                   {"ge_folio_args", 1}, {"em_add_layout", 0}, {"send_layout", 2}, {"csum_layout", 0},
                   {"fb_fn_layout", 0}}));
  f.functions.at("btrfs_get_extent").param_structs = {"btrfs_inode", "page", "", "", ""};
  f.functions.at("add_extent_mapping").param_structs = {"btrfs_inode", "extent_map", ""};
  f.functions.at("btrfs_ioctl_send").param_structs = {"inode", "btrfs_ioctl_send_args"};
  p = plan_hooks(f, {Backend::Tracepoint});  // layouts also when no function hook is planned
  v.clear();
  for (const auto& [var, x] : p.layouts) v[std::string(layout_var_name(var))] = x;
  EXPECT_EQ(v, (std::map<std::string, uint32_t>{
                   {"ge_folio_args", 0}, {"em_add_layout", 1}, {"send_layout", 0}, {"csum_layout", 0},
                   {"fb_fn_layout", 0}}));
}

TEST(Plan, KernelConstants) {
  auto f = everything();
  f.member_structs["btrfs_ordered_extent.inode"] = "btrfs_inode";
  f.enumerators = {{"BTRFS_ORDERED_IOERR", 7}, {"EXTENT_BUFFER_STALE", 3},
                   {"EXTENT_FLAG_COMPRESS_ZLIB", 4}, {"EXTENT_FLAG_COMPRESS_ZSTD", 16}};
  const auto k = plan_hooks(f, {}).constants;
  EXPECT_TRUE(k.oe_inode_is_btrfs);
  EXPECT_EQ(k.oe_ioerr_bit, 7u);
  EXPECT_EQ(k.eb_stale_bit, 3u);
  EXPECT_EQ(k.em_compress_mask, 20u);
  EXPECT_TRUE(k.ordered_flags_known);
  EXPECT_FALSE(k.rdonly_untyped);  // not probed: read with bpf_probe_read_kernel
  EXPECT_FALSE(plan_hooks(everything(), {}).constants.ordered_flags_known);
  f.rdonly_untyped = false;
  EXPECT_FALSE(plan_hooks(f, {}).constants.rdonly_untyped);
  f.rdonly_untyped = true;
  EXPECT_TRUE(plan_hooks(f, {}).constants.rdonly_untyped);
}

TEST(Plan, ForceFallbackTakesTheSecondChoice) {
  const auto p = plan_hooks(tracepoints_only(), {Backend::Auto, true});
  EXPECT_EQ(mech(p, HookId::dio_begin), Mechanism::RawTp);
  EXPECT_EQ(p.at(HookId::dio_begin).reason, "raw tracepoint (BDT_FORCE_FALLBACK)");
  EXPECT_EQ(mech(p, HookId::ioctl_enter), Mechanism::TpBtf);
}

TEST(KernelFacts, JsonRoundTrip) {
  auto f = everything();
  f.functions.at("btrfs_get_extent").kprobe_blacklisted = true;
  f.functions.at("btrfs_get_extent").fentry_why = "x";
  f.enumerators["BTRFS_ORDERED_IOERR"] = 5;
  f.member_structs["btrfs_ordered_extent.inode"] = "inode";
  f.rdonly_untyped = false;
  const auto j = to_json(f);
  EXPECT_EQ(j.at("rdonly_untyped"), false);
  const auto g = facts_from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(to_json(g), j);
}

// ---- recorded kernels ---------------------------------------------------------------
namespace {
std::vector<std::pair<std::string, KernelFacts>> recorded() {
  std::vector<std::pair<std::string, KernelFacts>> out;
  const std::filesystem::path dir = std::filesystem::path(BDT_FIXTURES_DIR) / "kernels";
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".json") continue;
    std::ifstream in(e.path());
    out.emplace_back(e.path().filename().string(), facts_from_json(nlohmann::json::parse(in)));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}
const KernelFacts* recorded_kernel(const std::string& release_prefix) {
  static const auto all = recorded();
  for (const auto& [name, f] : all)
    if (f.release.rfind(release_prefix, 0) == 0) return &f;
  return nullptr;
}
}  // namespace

TEST(RecordedKernels, EveryBackendPlansEveryDetectorThatCanWork) {
  const auto all = recorded();
  ASSERT_GE(all.size(), 2u);
  for (const auto& [name, f] : all)
    for (auto b : {Backend::Auto, Backend::Fentry, Backend::Kprobe, Backend::Tracepoint}) {
      if (!backend_impossible(f, b).empty()) continue;
      const auto p = plan_hooks(f, {b});
      ASSERT_EQ(p.hooks.size(), kHookCount);
      bool any = false;
      for (const auto& d : detector_fidelity(attach_all_planned(p))) any |= d.fidelity != "unavailable";
      EXPECT_TRUE(any) << name << " backend " << static_cast<int>(b);
      // a planned hook always names its mechanism, an unplanned one why
      for (const auto& h : p.hooks) EXPECT_FALSE(h.reason.empty()) << name << " " << hook_name(h.id);
    }
}

TEST(RecordedKernels, Host618TracepointsOnly) {
  const auto* f = recorded_kernel("6.18.");
  ASSERT_TRUE(f) << "tests/fixtures/kernels has no 6.18 kernel";
  const auto p = plan_hooks(*f, {});
  for (const auto& h : hook_defs())
    EXPECT_EQ(mech(p, h.id) == Mechanism::None, h.kind == HookKind::Function) << hook_name(h.id);
  EXPECT_EQ(mech(p, HookId::em_exist), Mechanism::TpBtf);
  EXPECT_EQ(mech(p, HookId::ioctl_enter), Mechanism::Tracepoint);
  EXPECT_FALSE(backend_impossible(*f, Backend::Fentry).empty());
  EXPECT_FALSE(backend_impossible(*f, Backend::Kprobe).empty());
  const auto& k = p.constants;
  EXPECT_TRUE(k.oe_inode_is_btrfs);
  EXPECT_LT(k.oe_ioerr_bit, 64u);
  EXPECT_LT(k.eb_stale_bit, 64u);
}

TEST(RecordedKernels, Debian61FunctionHooksWhereIomapHasNoTracepoints) {
  const auto* f = recorded_kernel("6.1.");
  ASSERT_TRUE(f) << "tests/fixtures/kernels has no 6.1 kernel";
  for (auto b : {Backend::Auto, Backend::Fentry, Backend::Kprobe}) {
    const Mechanism fn = b == Backend::Kprobe ? Mechanism::Kprobe : Mechanism::Fentry;
    const auto p = plan_hooks(*f, {b});
    EXPECT_EQ(mech(p, HookId::dio_begin), Mechanism::None);
    EXPECT_EQ(mech(p, HookId::oe_finish), Mechanism::None);
    for (auto id : {HookId::dio_w, HookId::dio_r, HookId::dio_cmpl, HookId::get_ext, HookId::em_add,
                    HookId::oe_fin, HookId::eb_free, HookId::eb_find, HookId::eb_rel, HookId::reloc,
                    HookId::csum, HookId::send, HookId::balance})
      EXPECT_EQ(mech(p, id), fn) << hook_name(id);
    EXPECT_EQ(p.at(HookId::get_extent).reason, fmt_replaced(fn));
    EXPECT_EQ(mech(p, HookId::em_exist), Mechanism::TpBtf);
    EXPECT_EQ(mech(p, HookId::ioctl_enter), Mechanism::Tracepoint);
    EXPECT_EQ(p.at(HookId::em_add).candidate, "add_extent_mapping");
    EXPECT_EQ(p.at(HookId::csum).candidate, "btrfs_check_data_csum");
    std::map<std::string, uint32_t> v;
    for (const auto& [var, x] : p.layouts) v[std::string(layout_var_name(var))] = x;
    // 6.1: btrfs_get_extent(inode, page, pg_offset, start, len), add_extent_mapping(tree, em,
    // modified), btrfs_check_data_csum(inode, ...), btrfs_ioctl_send(struct inode *, ...),
    // btrfs_direct_write inlined: btrfs_do_write_iter(iocb, from, encoded)
    EXPECT_EQ(v, (std::map<std::string, uint32_t>{
                     {"ge_folio_args", 0}, {"em_add_layout", 0}, {"send_layout", 0}, {"csum_layout", 0},
                     {"fb_fn_layout", 1}}));
    EXPECT_FALSE(p.constants.oe_inode_is_btrfs);
    for (const auto& d : detector_fidelity(attach_all_planned(p))) EXPECT_EQ(d.fidelity, "full") << d.id;
  }
  // tracepoints only: no DIO begin/end on 6.1
  const auto p = plan_hooks(*f, {Backend::Tracepoint});
  const auto fid = detector_fidelity(attach_all_planned(p));
  EXPECT_EQ(fidelity_of(fid, "dio-short-write"), "unavailable");
  EXPECT_EQ(fidelity_of(fid, "send-vs-relocation"), "partial");
}

TEST(RecordedKernels, Debian612TracepointsWhereExactFunctionsElsewhere) {
  const auto* f = recorded_kernel("6.12.");
  ASSERT_TRUE(f) << "tests/fixtures/kernels has no 6.12 kernel";
  const auto p = plan_hooks(*f, {});
  EXPECT_EQ(mech(p, HookId::dio_begin), Mechanism::TpBtf);
  EXPECT_EQ(mech(p, HookId::oe_finish), Mechanism::TpBtf);
  EXPECT_EQ(mech(p, HookId::dio_w), Mechanism::None);
  EXPECT_EQ(mech(p, HookId::get_ext), Mechanism::Fentry);
  EXPECT_EQ(p.at(HookId::csum).candidate, "btrfs_data_csum_ok");
  std::map<std::string, uint32_t> v;
  for (const auto& [var, x] : p.layouts) v[std::string(layout_var_name(var))] = x;
  // 6.12: btrfs_get_extent(inode, folio, start, len), add_extent_mapping(btrfs_inode, em,
  // modified), btrfs_data_csum_ok(bbio, dev, bio_offset, paddr)
  EXPECT_EQ(v.at("ge_folio_args"), 1u);
  EXPECT_EQ(v.at("em_add_layout"), 1u);
  EXPECT_EQ(v.at("csum_layout"), 1u);
  EXPECT_TRUE(p.constants.oe_inode_is_btrfs);
  for (const auto& d : detector_fidelity(attach_all_planned(p))) EXPECT_EQ(d.fidelity, "full") << d.id;
  // Tracepoints only: the write-family syscalls' own tracepoints and io_uring's
  // (in the recorded tracefs and BTF), not the raw sys_enter/sys_exit
  const auto t = plan_hooks(*f, {Backend::Tracepoint});
  EXPECT_EQ(mech(t, HookId::fbe_write), Mechanism::Tracepoint);
  EXPECT_EQ(mech(t, HookId::fbe_writev), Mechanism::Tracepoint);
  EXPECT_EQ(mech(t, HookId::uring_sub), Mechanism::TpBtf);
  EXPECT_EQ(mech(t, HookId::uring_cmpl), Mechanism::TpBtf);
  // The verifier refusing tb_em_exist (as 6.12 did before its pointer arguments
  // were NULL-checked): raw_tp takes over, every other hook keeps its plan.
  const std::vector<Refusal> r{{HookId::em_exist, Mechanism::TpBtf, "program tb_em_exist refused"}};
  const auto q = plan_hooks(*f, {}, r);
  EXPECT_EQ(mech(q, HookId::em_exist), Mechanism::RawTp);
  for (const auto& h : hook_defs())
    if (h.id != HookId::em_exist) {
      EXPECT_EQ(mech(q, h.id), mech(p, h.id)) << hook_name(h.id);
    }
}

// ---- verifier logs --------------------------------------------------------------------
TEST(VerifierLog, ExcerptIsTheErrorTheInstructionAndTheSourceLine) {
  // As 6.12 refused tb_em_exist (pointer arguments typed trusted_ptr_or_null)
  const char* log =
      "func#0 @0\n"
      "0: R1=ctx() R10=fp0\n"
      "; int tb_em_exist(u64 *ctx) @ bdt.bpf.c:120\n"
      "0: (79) r6 = *(u64 *)(r1 +8)          ; R1=ctx() R6_w=trusted_ptr_or_null_extent_map(id=1)\n"
      "; e->u.emx.e_start = BPF_CORE_READ(existing, start); @ extent_maps.bpf.h:151\n"
      "23: (79) r1 = *(u64 *)(r6 +0)\n"
      "R6 invalid mem access 'trusted_ptr_or_null_'\n"
      "processed 24 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1 mark_read 1\n";
  EXPECT_TRUE(verifier_log_complete(log));
  EXPECT_EQ(verifier_excerpt(log),
            "R6 invalid mem access 'trusted_ptr_or_null_' at insn 23: r1 = *(u64 *)(r6 +0) "
            "(e->u.emx.e_start = BPF_CORE_READ(existing, start); @ extent_maps.bpf.h:151)");
  // 6.1: no "@ file:line", the instruction line carries the register state
  const char* log61 =
      "; return *(volatile int *)(unsigned long)bpf_get_prandom_u32();\n"
      "14: (85) call bpf_get_prandom_u32#7     ; R0_w=scalar()\n"
      "15: (61) r0 = *(u32 *)(r0 +0)\n"
      "R0 invalid mem access 'scalar'\n"
      "verification time 37 usec\n"
      "stack depth 0\n"
      "processed 16 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1\n";
  EXPECT_EQ(verifier_excerpt(log61),
            "R0 invalid mem access 'scalar' at insn 15: r0 = *(u32 *)(r0 +0) (return *(volatile "
            "int *)(unsigned long)bpf_get_prandom_u32();)");
  // cut short by its buffer (before 6.4 the log keeps its start): no summary
  const char* cut = "func#0 @0\n0: R1=ctx() R10=fp0\n0: (79) r6 = *(u64 *)(r1 +8)\n";
  EXPECT_FALSE(verifier_log_complete(cut));
  EXPECT_EQ(verifier_excerpt(cut), "");
  EXPECT_EQ(verifier_excerpt(""), "");
}
