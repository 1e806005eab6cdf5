// The reorder window of the live session: one BPF ring buffer is filled from
// several CPUs, so records arrive almost, but not exactly, in time order.
// Events are held until they are older than the window and released in ts
// order. Pure and header-only (unit-tested without the kernel); no heap
// allocation per event once the capacity is reached.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "bdt/event.h"

namespace bdt::live {

class ReorderBuffer {
 public:
  explicit ReorderBuffer(uint64_t window_ns, size_t reserve = 1 << 16, size_t max_held = 1 << 20)
      : window_ns_(window_ns), max_held_(max_held) {
    held_.reserve(reserve);
  }

  // A slot to decode into; commit() or discard() it before the next slot().
  Event& slot() { return held_.emplace_back(); }
  void commit() { std::push_heap(held_.begin(), held_.end(), Later{}); }
  void discard() { held_.pop_back(); }

  // Releases, in ts order, everything at least window_ns older than now_ns
  // (and the oldest beyond max_held, so memory stays bounded).
  template <class F>
  size_t release(uint64_t now_ns, F&& cb) {
    return release_until(now_ns > window_ns_ ? now_ns - window_ns_ : 0, cb);
  }
  template <class F>
  size_t drain(F&& cb) {
    return release_until(UINT64_MAX, cb);
  }
  size_t size() const { return held_.size(); }

 private:
  struct Later {
    bool operator()(const Event& a, const Event& b) const { return a.ts_ns > b.ts_ns; }
  };
  template <class F>
  size_t release_until(uint64_t cutoff, F& cb) {
    size_t n = 0;
    while (!held_.empty() && (held_.front().ts_ns <= cutoff || held_.size() > max_held_)) {
      std::pop_heap(held_.begin(), held_.end(), Later{});
      cb(held_.back());
      held_.pop_back();
      ++n;
    }
    return n;
  }

  uint64_t window_ns_;
  size_t max_held_;
  std::vector<Event> held_;
};

}  // namespace bdt::live
