// --metrics-addr glue (cli/metrics_glue.h): the tracer's state as the metrics
// exporter reads it.
#include "cli/metrics_glue.h"

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/btrfs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "live/decode.h"
#include "loader/hook_table.h"
#include "metrics/process.h"

namespace bdt::cli {

namespace {
std::string_view backend_name(Backend b) {
  switch (b) {
    case Backend::Auto: return "auto";
    case Backend::Fentry: return "fentry";
    case Backend::Kprobe: return "kprobe";
    case Backend::Tracepoint: return "tracepoint";
  }
  return "auto";
}
}  // namespace

std::string btrfs_mountpoint(const Fsid& fs) {
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string best;
  bool best_top = false;
  for (const auto& m : live::parse_mountinfo(ss.str())) {
    if (m.fstype != "btrfs") continue;
    // The filesystem's UUID (the fsid btrfs tracepoints and events carry) from the mount itself.
    const int fd = ::open(m.mount_point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) continue;
    btrfs_ioctl_fs_info_args info{};
    const bool ok = ::ioctl(fd, BTRFS_IOC_FS_INFO, &info) == 0;
    ::close(fd);
    if (!ok || std::memcmp(info.fsid, fs.b.data(), sizeof info.fsid) != 0) continue;
    // Prefer the mount of the top-level subvolume, then the shortest path.
    const bool top = m.root == "/";
    if (best.empty() || (top && !best_top) || (top == best_top && m.mount_point.size() < best.size())) {
      best = m.mount_point;
      best_top = top;
    }
  }
  return best;
}

std::unique_ptr<metrics::Exporter> start_metrics(const TraceArgs& a) {
  if (a.metrics_addr.empty()) return nullptr;
  std::vector<std::string> ids;
  for (auto id : detector_ids()) ids.emplace_back(id);
  auto x = metrics::Exporter::start(a.metrics_addr, std::move(ids));
  x->set_mountpoint_resolver(btrfs_mountpoint);
  fmt::print(stderr, "btrfs-dio-trace: serving Prometheus metrics on http://{}/metrics\n", x->address());
  return x;
}

metrics::TracerState tracer_state(const live::Session& s, const Engine& e, qemu::Tracker* vms,
                                  const TraceArgs& a, double start_unix_s) {
  metrics::TracerState t;
  t.version = BDT_VERSION;
  t.libbpf_version = fmt::format("{}.{}", libbpf_major_version(), libbpf_minor_version());
  t.process = metrics::read_process_stats();
  t.kernel = metrics::kernel_release();
  t.hooks = s.hooks();
  for (const auto& d : loader::detector_fidelity(t.hooks)) t.detector_fidelity.emplace_back(d.id, d.fidelity);
  t.backend = metrics::backend_label(t.hooks);
  t.backend_requested = std::string(backend_name(a.live.backend));
  t.start_time_s = start_unix_s;
  t.live = s.stats();
  t.counts = s.counts();
  t.ringbuf_bytes = a.live.ringbuf_bytes;
  for (const auto& [id, st] : e.state()) t.detector_state.emplace_back(std::string(id), st);
  if (vms) {
    vms->harvest_latency();  // the kernel's latency histograms, up to now
    t.qemu = &vms->stats();
    t.qemu_counters = vms->counters();
    t.qemu_vms = vms->pids().size();
  }
  return t;
}

}  // namespace bdt::cli
