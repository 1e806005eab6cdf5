// The reorder window of the live session: one BPF ring buffer is filled from
// several CPUs, so records arrive almost, but not exactly, in time order.
// Events are held until they are older than the window and released in ts
// order; no heap allocation per event once the capacity is reached.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "bdt/event.h"

namespace bdt::live {

class ReorderBuffer {
 public:
  using Deliver = std::function<void(const Event&)>;

  explicit ReorderBuffer(uint64_t window_ns, size_t reserve = 1 << 16, size_t max_held = 1 << 20);

  // A slot to decode into; commit() or discard() it before the next slot().
  Event& slot() { return held_.emplace_back(); }
  void commit();
  void discard() { held_.pop_back(); }

  // Releases, in ts order, everything at least window_ns older than now_ns
  // (and the oldest beyond max_held, so memory stays bounded).
  size_t release(uint64_t now_ns, const Deliver& cb);
  // Releases everything held.
  size_t drain(const Deliver& cb);
  size_t size() const { return held_.size(); }

 private:
  size_t release_until(uint64_t cutoff, const Deliver& cb);

  uint64_t window_ns_;
  size_t max_held_;
  std::vector<Event> held_;  // a min-heap on ts_ns (after commit)
};

}  // namespace bdt::live
