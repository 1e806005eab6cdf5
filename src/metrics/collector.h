// What --metrics-addr exports: findings counted from the finding stream (in
// the trace thread, no locks), the kernel's traffic counts (events by type,
// DIO requests per filesystem and direction: KernelCounts, counted by the BPF
// programs whether or not a record was made) and the tracer's own state, read
// at snapshot time. Every metric, label and cardinality bound is documented in
// docs/metrics.md; keep the two in step.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <tuple>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bdt/detector.h"
#include "bdt/event.h"
#include "bdt/finding.h"
#include "bdt/hooks.h"
#include "bdt/live_stats.h"
#include "qemu/qemu.h"
#include "metrics/exposition.h"
#include "metrics/process.h"

namespace bdt::metrics {

struct CollectorOptions {
  // fs label values; later filesystems count as fs="(overflow)" (the kernel
  // counts the first BDT_FS_SLOTS = 16 filesystems apart, the rest together)
  size_t max_fs = 16;
  size_t max_qemu_series = 64;    // (vm, image) pairs; later pairs count as vm/image="(overflow)"
};

// The tracer's state at snapshot time (read in the trace thread).
struct TracerState {
  std::string version, kernel, backend, backend_requested;
  std::string libbpf_version;               // for build_info ("" = not linked / unknown)
  std::optional<ProcessStats> process;      // process_* metrics (absent if /proc unreadable)
  double start_time_s = 0;  // unix time the trace started
  LiveStats live;
  KernelCounts counts;  // live::Session::counts()
  std::vector<HookStatus> hooks;
  uint64_t ringbuf_bytes = 0;
  std::vector<std::pair<std::string, StateSize>> detector_state;
  std::vector<std::pair<std::string, std::string>> detector_fidelity;  // detector -> full|partial|unavailable
  const qemu::StatsCollector* qemu = nullptr;  // --qemu only (latency harvested before the snapshot)
  qemu::StatsCounters qemu_counters;           // qemu::Tracker::counters()
  size_t qemu_vms = 0;
  uint64_t http_requests = 0, http_rejected = 0;
};

// Latency buckets exported from a Log2Histogram: log2 buckets kLoBucket..kHiBucket
// (upper bounds 2^(b+1)-1 ns, i.e. ~1 us .. ~34 s) plus +Inf.
inline constexpr int kLoBucket = 9, kHiBucket = 34;
// Converts a log2 histogram (ns) into a Prometheus histogram series (seconds).
HistogramSample to_histogram(const qemu::Log2Histogram& h, Labels labels, std::optional<double> sum_s);

class Collector {
 public:
  explicit Collector(CollectorOptions o = {}, std::vector<std::string> detector_ids = {});
  void on_finding(const Finding& f);
  // Where a filesystem is mounted, for the `mountpoint` label next to `fs`;
  // asked once per filesystem, at the first snapshot that has it (the label
  // then stays, so series stay continuous). Without a resolver: "(unknown)".
  void set_mountpoint_resolver(std::function<std::string(const Fsid&)> r) { mountpoint_of_ = std::move(r); }
  // The whole exposition (this collector's counts + the tracer's state).
  Exposition snapshot(const TracerState& t) const;

 private:
  std::string qemu_key_label(std::string_view s) const;

  CollectorOptions opts_;
  std::vector<std::string> detector_ids_;
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> findings_;  // detector, level, severity
  std::function<std::string(const Fsid&)> mountpoint_of_;
  // the mountpoint label of each filesystem, found once (then sticky)
  mutable std::map<Fsid, std::string> mounts_;
  std::string mountpoint(const Fsid& fs) const;
  // Sticky (vm, image) -> own series; the set only grows (monotone counters).
  mutable std::map<std::pair<std::string, std::string>, bool> qemu_series_;
};

}  // namespace bdt::metrics
