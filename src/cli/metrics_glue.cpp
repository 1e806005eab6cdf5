#include "cli/metrics_glue.h"

#include <fmt/format.h>

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

std::unique_ptr<metrics::Exporter> start_metrics(const TraceArgs& a) {
  if (a.metrics_addr.empty()) return nullptr;
  std::vector<std::string> ids;
  for (auto id : detector_ids()) ids.emplace_back(id);
  auto x = metrics::Exporter::start(a.metrics_addr, std::move(ids));
  fmt::print(stderr, "btrfs-dio-trace: serving Prometheus metrics on http://{}/metrics\n", x->address());
  return x;
}

metrics::TracerState tracer_state(const LiveSession& s, const Engine& e, qemu::Tracker* vms,
                                  const TraceArgs& a, double start_unix_s) {
  metrics::TracerState t;
  t.version = BDT_VERSION;
  t.kernel = metrics::kernel_release();
  t.hooks = s.hooks();
  t.backend = metrics::backend_label(t.hooks);
  t.backend_requested = std::string(backend_name(a.live.backend));
  t.start_time_s = start_unix_s;
  t.live = s.stats();
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
