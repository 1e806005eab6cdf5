#include "loader/hooks.h"

#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/core.h>

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
    {"btrfs_get_extent()",
     {"btrfs_get_extent"}, "extent map lookup enter/exit with ERR_PTR return"},
    {"add_extent_mapping()",
     {"btrfs_add_extent_mapping", "add_extent_mapping"},
     "extent map insert and its return (em_add)"},
    {"btrfs_finish_ordered_io()",
     {"btrfs_finish_ordered_io", "btrfs_finish_one_ordered"},
     "ordered extent completion and its return"},
    {"free_extent_buffer()",
     {"free_extent_buffer"}, "extent buffer put (eb_free)"},
    {"find_extent_buffer()",
     {"find_extent_buffer"}, "extent buffer lookup (eb_find)"},
    {"btrfs_release_extent_buffer_pages()",
     {"btrfs_release_extent_buffer_pages", "btrfs_release_extent_buffer_folios",
      "release_extent_buffer"},
     "extent buffer pages released (eb_release)"},
    {"btrfs_ioctl_send()",
     {"btrfs_ioctl_send"}, "send begin/end"},
    {"btrfs_balance()",
     {"btrfs_balance"}, "balance begin/end"},
    {"btrfs_relocate_block_group()",
     {"btrfs_relocate_block_group"}, "relocation begin/end"},
    {"btrfs_check_data_csum()",
     {"btrfs_check_data_csum", "btrfs_print_data_csum_error", "btrfs_data_csum_ok"},
     "data checksum failures (csum_error)"},
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

}  // namespace bdt::loader
