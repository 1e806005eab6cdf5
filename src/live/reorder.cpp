// The live session's reorder window (reorder.h): a min-heap of held events.
#include "live/reorder.h"

#include <algorithm>

namespace bdt::live {

namespace {
struct Later {
  bool operator()(const Event& a, const Event& b) const { return a.ts_ns > b.ts_ns; }
};
}  // namespace

ReorderBuffer::ReorderBuffer(uint64_t window_ns, size_t reserve, size_t max_held)
    : window_ns_(window_ns), max_held_(max_held) {
  held_.reserve(reserve);
}

void ReorderBuffer::commit() { std::push_heap(held_.begin(), held_.end(), Later{}); }

size_t ReorderBuffer::release(uint64_t now_ns, const Deliver& cb) {
  return release_until(now_ns > window_ns_ ? now_ns - window_ns_ : 0, cb);
}

size_t ReorderBuffer::drain(const Deliver& cb) { return release_until(UINT64_MAX, cb); }

size_t ReorderBuffer::release_until(uint64_t cutoff, const Deliver& cb) {
  size_t n = 0;
  while (!held_.empty() && (held_.front().ts_ns <= cutoff || held_.size() > max_held_)) {
    std::pop_heap(held_.begin(), held_.end(), Later{});
    cb(held_.back());
    held_.pop_back();
    ++n;
  }
  return n;
}

}  // namespace bdt::live
