// The live session's reorder window (reorder.h): held events sorted by time.
#include "live/reorder.h"

#include <algorithm>

namespace bdt::live {

ReorderBuffer::ReorderBuffer(uint64_t window_ns, size_t reserve, size_t max_held)
    : window_ns_(window_ns), max_held_(max_held) {
  slots_.reserve(reserve);
}

Event& ReorderBuffer::slot() {
  if (free_.empty()) {
    cur_ = static_cast<uint32_t>(slots_.size());
    return slots_.emplace_back();
  }
  cur_ = free_.back();
  free_.pop_back();
  return slots_[cur_];
}

void ReorderBuffer::commit() {
  const Key k{slots_[cur_].ts_ns, cur_};
  // After the last key not later than it: a few steps back at most, usually none.
  auto at = held_.end();
  for (int steps = 0; at != held_.begin() && std::prev(at)->ts > k.ts; --at)
    if (++steps == 8) {  // far out of order: search
      at = std::upper_bound(held_.begin(), at, k.ts,
                            [](uint64_t t, const Key& x) { return t < x.ts; });
      break;
    }
  held_.insert(at, k);
}

size_t ReorderBuffer::release(uint64_t now_ns, const Deliver& cb) {
  return release_until(now_ns > window_ns_ ? now_ns - window_ns_ : 0, cb);
}

size_t ReorderBuffer::drain(const Deliver& cb) { return release_until(UINT64_MAX, cb); }

size_t ReorderBuffer::release_until(uint64_t cutoff, const Deliver& cb) {
  size_t n = 0;
  while (!held_.empty() && (held_.front().ts <= cutoff || held_.size() > max_held_)) {
    const uint32_t s = held_.front().slot;
    held_.pop_front();
    cb(slots_[s]);
    free_.push_back(s);
    ++n;
  }
  return n;
}

}  // namespace bdt::live
