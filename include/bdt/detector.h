// btrfs-dio-trace: the detector interface and the engine that drives detectors.
//
// Detectors are pure: they consume Events in timestamp order and emit Findings.
// No I/O, no clocks (the event's ts_ns is the clock), no globals. The same
// code runs for live tracing and for replay.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "bdt/event.h"
#include "bdt/finding.h"
#include "bdt/kernel_version.h"

namespace bdt {

using Findings = std::vector<Finding>;

struct StateSize {
  size_t entries = 0;  // tracked objects (requests, inodes, buffers, ...)
  size_t capacity = 0; // configured cap
  size_t evicted = 0;  // total evicted because of cap or age
};

struct DetectorConfig {
  uint64_t stall_threshold_ns = 30'000'000'000ull;  // --stall-threshold
  uint64_t max_age_ns = 120'000'000'000ull;         // evict idle state older than this
  size_t max_entries = 65536;                       // per detector
  KernelVersion kernel;                             // exposure of the running/recorded kernel
  // How long after a DIO write returned its ordered extents may still be
  // completed by btrfs workers before dio-short-write judges the write.
  uint64_t settle_ns = 5'000'000'000ull;
  // send-vs-relocation: a send failing up to this long after it last
  // overlapped a relocation is still attributed to the overlap; a relocation
  // event without an end (btrfs_reclaim_block_group) counts as in flight this long.
  uint64_t overlap_window_ns = 10'000'000'000ull;
  // Repeated hazards of one kind on one object (inode, process, fs) are
  // reported at most once per this interval; the next finding says how many
  // were suppressed.
  uint64_t repeat_ns = 60'000'000'000ull;
  size_t max_evidence = 32;                          // evidence events per finding
};

class Detector {
 public:
  virtual ~Detector() = default;
  virtual std::string_view id() const = 0;
  virtual void on_event(const Event& ev, Findings& out) = 0;
  virtual void on_time(uint64_t /*now_ns*/, Findings& /*out*/) {}
  // End of the trace (replay) or of the session (live): report what can still
  // be decided. Default: one last on_time.
  virtual void on_finish(uint64_t now_ns, Findings& out) { on_time(now_ns, out); }
  virtual StateSize state_size() const = 0;
};

// Ids of the built-in detectors, in report order.
std::vector<std::string_view> detector_ids();

// All built-in detectors, configured.
std::vector<std::unique_ptr<Detector>> make_detectors(const DetectorConfig& cfg);

}  // namespace bdt
