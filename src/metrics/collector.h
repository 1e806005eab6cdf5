// What --metrics-addr exports: counts kept from the event and finding stream
// (in the trace thread, no locks), plus the tracer's own state read at
// snapshot time. Every metric, label and cardinality bound is documented in
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
#include "bdt/qemu.h"
#include "metrics/exposition.h"
#include "metrics/process.h"

namespace bdt::metrics {

struct CollectorOptions {
  size_t max_fs = 16;             // fs label values; later filesystems count as fs="(overflow)"
  size_t max_qemu_series = 64;    // (vm, image) pairs; later pairs count as vm/image="(overflow)"
  size_t max_inflight = 16384;    // DIO requests matched begin -> end (latency, short writes)
};

// The tracer's state at snapshot time (read in the trace thread).
struct TracerState {
  std::string version, kernel, backend, backend_requested;
  std::string libbpf_version;               // for build_info ("" = not linked / unknown)
  std::optional<ProcessStats> process;      // process_* metrics (absent if /proc unreadable)
  double start_time_s = 0;  // unix time the trace started
  LiveStats live;
  std::vector<HookStatus> hooks;
  uint64_t ringbuf_bytes = 0;
  std::vector<std::pair<std::string, StateSize>> detector_state;
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
  // Every event the detectors see, in timestamp order.
  void on_event(const Event& ev);
  void on_finding(const Finding& f);
  // Where a filesystem is mounted, for the `mountpoint` label next to `fs`;
  // asked once per filesystem, when its first event arrives (the label then
  // stays, so series stay continuous). Without a resolver: "(unknown)".
  void set_mountpoint_resolver(std::function<std::string(const Fsid&)> r) { mountpoint_of_ = std::move(r); }
  // The whole exposition (this collector's counts + the tracer's state).
  Exposition snapshot(const TracerState& t) const;

 private:
  struct Dio {
    uint64_t requests = 0, bytes = 0, errors = 0, again = 0, short_writes = 0;
    qemu::Log2Histogram lat;
    uint64_t lat_sum_ns = 0;
  };
  struct FsDio {
    Dio read, write, unknown;  // unknown: an end whose begin was not seen and that does not say
  };
  struct Pending {
    uint64_t ts = 0, count = 0, done_before = 0;
    bool write = false;
    size_t fs = 0;
  };
  struct Key {
    uint64_t a, b, c, d;  // sync: (1, tid, dev, ino); aio: (2, dev, ino, pos)
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  size_t fs_index(const Fsid& fs);
  void remember(const Key& k, const Pending& p);
  std::string qemu_key_label(std::string_view s) const;

  CollectorOptions opts_;
  std::vector<std::string> detector_ids_;
  uint64_t events_[kEventTypeCount + 1] = {};
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> findings_;  // detector, level, severity
  std::vector<std::string> fs_names_;  // index -> label; the last one may be "(overflow)"
  std::vector<std::string> fs_mounts_;  // index -> mountpoint label
  std::function<std::string(const Fsid&)> mountpoint_of_;
  std::map<Fsid, size_t> fs_index_;
  std::vector<FsDio> fs_dio_;
  std::unordered_map<Key, Pending, KeyHash> pending_;
  uint64_t unmatched_ends_ = 0, evicted_ = 0;
  // Sticky (vm, image) -> own series; the set only grows (monotone counters).
  mutable std::map<std::pair<std::string, std::string>, bool> qemu_series_;
};

}  // namespace bdt::metrics
