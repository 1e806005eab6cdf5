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
#include "core/huge_pages.h"

namespace bdt::live {

class ReorderBuffer {
 public:
  using Deliver = std::function<void(const Event&)>;

  explicit ReorderBuffer(uint64_t window_ns, size_t reserve = 1 << 16, size_t max_held = 1 << 20);

  // A slot to decode into; commit() or discard() it before the next slot().
  // A released event's slot is reused: the decoder sets every field.
  Event& slot();
  void commit();
  void discard() { free_.push_back(cur_); }

  // Releases, in ts order (arrival order among equal ts), everything at least
  // window_ns older than now_ns (and the oldest beyond max_held, so memory
  // stays bounded).
  size_t release(uint64_t now_ns, const Deliver& cb);
  // Releases everything held.
  size_t drain(const Deliver& cb);
  size_t size() const { return n_; }

 private:
  size_t release_until(uint64_t cutoff, const Deliver& cb);

  // The events stay in their slots; the window orders small keys. Records
  // arrive almost in order, so a key is nearly always appended at the back
  // (or a few places before it): a sorted ring of keys costs O(1) per event
  // where a heap paid a dozen unpredictable compares (and, holding the events
  // themselves, a dozen 192-byte moves) per release. The ring grows by
  // doubling and never shrinks (a deque allocated and freed a block every
  // few dozen events).
  struct Key {
    uint64_t ts;
    uint32_t slot;
  };
  Key& key(size_t i) { return keys_[(head_ + i) & (keys_.size() - 1)]; }
  void grow();
  uint64_t window_ns_;
  size_t max_held_;
  // Huge pages (core/huge_pages.h): the window's slots are touched ms apart.
  std::vector<Event, HugePageAllocator<Event>> slots_;
  std::vector<uint32_t> free_;  // slots not holding an event
  // The held events by ts, arrival order among equal ts: n_ keys from head_,
  // in a ring whose size is a power of two.
  std::vector<Key> keys_;
  size_t head_ = 0, n_ = 0;
  uint32_t cur_ = 0;  // the slot handed out by slot()
};

}  // namespace bdt::live
