// Anomaly snapshots (`trace --snapshot-dir DIR`): a ring of the last N seconds
// of events; when a finding fires, those events and the finding are written to
// a JSON-lines file that `replay` and `dump` read (docs/timeline.md).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bdt/event.h"
#include "bdt/finding.h"
#include "bdt/trace_header.h"

namespace bdt {

// The newest events, time-ordered, bounded by age (relative to the newest
// event pushed) and by count. Storage grows to the count cap and is then
// reused: pushing allocates nothing once grown. Events must arrive in
// timestamp order; their vm/image views must outlive the ring.
class EventRing {
 public:
  EventRing(uint64_t max_age_ns, size_t max_events);
  void push(const Event& ev);
  size_t size() const { return n_; }
  const Event& at(size_t i) const { return buf_[(head_ + i) % buf_.size()]; }  // 0 = oldest
  uint64_t dropped_for_count() const { return dropped_count_; }  // overwritten while still young
  size_t capacity() const { return buf_.size(); }

 private:
  uint64_t max_age_ns_;
  size_t max_events_;
  std::vector<Event> buf_;
  size_t head_ = 0, n_ = 0;
  uint64_t dropped_count_ = 0;
};

struct SnapshotOptions {
  std::string dir;
  double seconds = 5;                        // --snapshot-seconds
  size_t max_events = 1'000'000;             // ring bound in events
  uint64_t min_interval_ns = 10'000'000'000;  // per detector
  unsigned max_files = 20;                   // --snapshot-max
  uint64_t max_bytes = 64ull << 20;          // per file; the oldest events are left out beyond it
};

struct SnapshotResult {
  enum class What { Written, RateLimited, LimitReached, Failed } what = What::Failed;
  std::string path;   // Written
  size_t events = 0;  // events written
  size_t left_out = 0;  // oldest events left out for the size cap
  std::string error;  // Failed
};

class Snapshotter {
 public:
  // header: written as the file's first line (kernel, clock offset, hooks).
  Snapshotter(SnapshotOptions o, TraceHeader header);
  void on_event(const Event& ev) { ring_.push(ev); }
  // Decides (rate limit, file cap) and writes. Never throws for I/O errors.
  SnapshotResult on_finding(const Finding& f);
  const EventRing& ring() const { return ring_; }
  unsigned written() const { return written_; }

 private:
  std::string file_name(const Finding& f) const;
  SnapshotOptions o_;
  TraceHeader header_;
  EventRing ring_;
  std::map<std::string, uint64_t> last_by_detector_;  // finding ts_ns
  unsigned written_ = 0;
  std::string line_;
};

}  // namespace bdt
