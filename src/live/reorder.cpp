// The live session's reorder window (reorder.h): held events sorted by time.
#include "live/reorder.h"

#include "core/prefetch.h"

namespace bdt::live {

namespace {
// The window holds some 20 ms of records (hundreds of KiB of slots): a slot is
// out of the cache by the time it is delivered, or decoded into again.
// While one event is delivered, the one kAhead deliveries later is asked for,
// and the keys kKeysAhead places on (the keys, too, were last touched when
// their events came in: the load of the key that names the slot to ask for
// missed). A slot is asked for kSlotAhead records before a record is decoded
// into it (decoding one record takes less time than the miss).
constexpr size_t kAhead = 2, kKeysAhead = 16, kSlotAhead = 4;
}  // namespace

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
  if (free_.size() >= kSlotAhead)  // the slot of the record kSlotAhead on
    prefetch_bytes<sizeof(Event), true>(&slots_[free_[free_.size() - kSlotAhead]]);
  return slots_[cur_];
}

void ReorderBuffer::grow() {
  std::vector<Key> v(keys_.empty() ? 64 : 2 * keys_.size());
  for (size_t i = 0; i < n_; ++i) v[i] = key(i);
  keys_.swap(v);
  head_ = 0;
}

void ReorderBuffer::commit() {
  const Key k{slots_[cur_].ts_ns, cur_};
  if (n_ == keys_.size()) grow();
  // After the last key not later than it: a few steps back at most, usually none.
  size_t at = n_;
  for (int steps = 0; at > 0 && key(at - 1).ts > k.ts; --at)
    if (++steps == 8) {  // far out of order: the first later key in [0, at)
      size_t lo = 0;
      while (lo < at) {
        const size_t mid = lo + (at - lo) / 2;
        if (k.ts < key(mid).ts) at = mid;
        else lo = mid + 1;
      }
      break;
    }
  if (at >= n_ / 2) {  // the keys after it move back one place
    for (size_t i = n_; i > at; --i) key(i) = key(i - 1);
  } else {  // the keys before it move forward one place
    head_ = (head_ - 1) & (keys_.size() - 1);
    for (size_t i = 0; i < at; ++i) key(i) = key(i + 1);
  }
  key(at) = k;
  ++n_;
}

size_t ReorderBuffer::release(uint64_t now_ns, const Deliver& cb) {
  return release_until(now_ns > window_ns_ ? now_ns - window_ns_ : 0, cb);
}

size_t ReorderBuffer::drain(const Deliver& cb) { return release_until(UINT64_MAX, cb); }

size_t ReorderBuffer::release_until(uint64_t cutoff, const Deliver& cb) {
  size_t n = 0;
  while (n_ && (key(0).ts <= cutoff || n_ > max_held_)) {
    const uint32_t s = key(0).slot;
    head_ = (head_ + 1) & (keys_.size() - 1);
    --n_;
    if (n_ >= kAhead) prefetch_bytes<sizeof(Event), false>(&slots_[key(kAhead - 1).slot]);
    if (n_ >= kKeysAhead) __builtin_prefetch(&key(kKeysAhead - 1));
    cb(slots_[s]);
    free_.push_back(s);
    ++n;
  }
  return n;
}

}  // namespace bdt::live
