// `btrfs-dio-trace status`: the flight recorders pinned on this host (under
// /sys/fs/bpf), with their owner (the tracer that pinned them, running or
// gone), age, memory, whether their programs still record, and how much they
// recorded and lost. What an operator looks at before `dump` or `--release`.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <time.h>

#include "bdt/trace_header.h"
#include "cli/commands.h"
#include "live/session.h"
#include "live/flight_recorder.h"

namespace bdt::cli {

namespace {

std::string age_text(double s) {
  if (s < 0) return "?";
  const auto t = static_cast<uint64_t>(s);
  if (t < 120) return fmt::format("{}s", t);
  if (t < 7200) return fmt::format("{}m{:02}s", t / 60, t % 60);
  if (t < 2 * 86400) return fmt::format("{}h{:02}m", t / 3600, t / 60 % 60);
  return fmt::format("{}d{:02}h", t / 86400, t / 3600 % 24);
}

std::string mib(uint64_t b) { return fmt::format("{:.1f} MiB", static_cast<double>(b) / (1 << 20)); }

}  // namespace

int run_status(const StatusArgs& a) {
  const std::string root = "/sys/fs/bpf";
  struct statfs sfs {};
  if (statfs(root.c_str(), &sfs) != 0 || static_cast<unsigned long>(sfs.f_type) != BPF_FS_MAGIC) {
    if (a.format == Format::Json)
      fmt::print("{}\n", nlohmann::json{{"bpffs", root}, {"mounted", false}, {"recorders", nlohmann::json::array()}}.dump());
    else
      fmt::print("no BPF filesystem is mounted at {}: no flight recorder can be pinned there\n", root);
    return 0;
  }
  live::check_privileges();
  const auto list = live::list_pinned(root);
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  const double now_s = static_cast<double>(now.tv_sec) + now.tv_nsec / 1e9;
  if (a.format == Format::Json) {
    nlohmann::ordered_json j;
    j["bpffs"] = root;
    j["mounted"] = true;
    j["recorders"] = nlohmann::ordered_json::array();
    for (const auto& p : list) {
      nlohmann::ordered_json r;
      r["pin_dir"] = p.dir;
      if (!p.meta_ok) {
        r["problem"] = p.problem;
        r["link_pins"] = p.link_pins;
      } else {
        const auto& m = p.meta;
        r["tracer_pid"] = m.tracer_pid;
        r["tracer_running"] = p.tracer_alive;
        r["started"] = format_wall_utc(static_cast<int64_t>(m.start_realtime_ns));
        r["age_s"] = now_s - static_cast<double>(m.start_realtime_ns) / 1e9;
        r["recording"] = p.link_pins > 0;
        r["link_pins"] = p.link_pins;
        r["recorded"] = p.recorded;
        r["lost"] = p.lost;
        r["kernel_bytes"] = p.kernel_bytes;
        r["slots_per_cpu"] = m.slots_per_cpu;
        r["ncpus"] = m.ncpus;
        r["kernel"] = std::string(m.release, strnlen(m.release, sizeof m.release));
      }
      j["recorders"].push_back(std::move(r));
    }
    fmt::print("{}\n", j.dump());
    return 0;
  }
  if (list.empty()) {
    fmt::print("no flight recorder pinned under {}\n", root);
    return 0;
  }
  fmt::print("{:<36} {:<18} {:<30} {:<10} {:>12} {:>8} {:>10}\n", "PIN DIR", "TRACER", "STARTED (AGE)", "PROGRAMS",
             "RECORDED", "LOST", "MEMORY");
  for (const auto& p : list) {
    if (!p.meta_ok) {
      fmt::print("{:<36} {}\n", p.dir, p.problem);
      continue;
    }
    const auto& m = p.meta;
    fmt::print("{:<36} {:<18} {:<30} {:<10} {:>12} {:>8} {:>10}\n", p.dir,
               fmt::format("pid {} {}", m.tracer_pid, p.tracer_alive ? "running" : "gone"),
               fmt::format("{} ({})", format_wall_utc(static_cast<int64_t>(m.start_realtime_ns)).substr(0, 19) + "Z",
                           age_text(now_s - static_cast<double>(m.start_realtime_ns) / 1e9)),
               p.link_pins ? "attached" : "detached", p.recorded, p.lost, mib(p.kernel_bytes));
  }
  fmt::print("\nread one with `btrfs-dio-trace dump --pin-dir DIR`; free it with `btrfs-dio-trace dump --pin-dir DIR "
             "--release`\n");
  return 0;
}

}  // namespace bdt::cli
