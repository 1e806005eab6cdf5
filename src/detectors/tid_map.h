// TidMap: a value per thread id, for the detectors' per-thread indexes (a
// thread's synchronous request in DioRequests, its current request in
// em-merge-race, its write call in WriteCalls). Internal to src/detectors.
//
// Flat: open addressing with linear probing in a power-of-two array, the
// thread id hashed by one multiplication; an erase shifts the entries after
// it back (no tombstones). No allocation per entry: a thread's entry added
// and erased for every request it makes costs no malloc/free, and a lookup
// no division (std::unordered_map's bucket index). The array doubles when it
// is half full and never shrinks: bounded by its user, at most four slots per
// entry it held at once.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace bdt::det {

template <class V>
class TidMap {
 public:
  TidMap() : slots_(kMinSlots) {}

  size_t size() const { return n_; }
  // The thread's value; nullptr: none. Valid until the next insert or erase.
  V* find(uint32_t tid) {
    for (size_t i = home(tid);; i = next(i)) {
      Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.tid == tid) return &s.v;
    }
  }
  // The thread's value, a value-initialized one added if there was none.
  V& operator[](uint32_t tid) {
    if (2 * (n_ + 1) > slots_.size()) grow();
    size_t i = home(tid);
    for (; slots_[i].used; i = next(i))
      if (slots_[i].tid == tid) return slots_[i].v;
    slots_[i] = Slot{tid, true, V{}};
    ++n_;
    return slots_[i].v;
  }
  // Takes the thread's entry out; false: there was none.
  bool erase(uint32_t tid) {
    size_t i = home(tid);
    for (; slots_[i].used; i = next(i))
      if (slots_[i].tid == tid) {
        erase_at(i);
        return true;
      }
    return false;
  }
  // Takes out every entry whose value pred(v) holds for.
  template <class Pred>
  void erase_if(Pred pred) {
    std::vector<Slot> old(slots_.size());
    old.swap(slots_);
    n_ = 0;
    for (Slot& s : old)
      if (s.used && !pred(s.v)) (*this)[s.tid] = std::move(s.v);
  }

 private:
  static constexpr size_t kMinSlots = 16;
  struct Slot {
    uint32_t tid = 0;
    bool used = false;
    V v{};
  };
  // Fibonacci hashing: the top bits of tid * 2^32 / phi (thread ids are
  // dense, often consecutive; the multiplication spreads them).
  size_t home(uint32_t tid) const { return (uint64_t{tid} * 0x9E3779B97F4A7C15ull) >> shift_; }
  size_t next(size_t i) const { return (i + 1) & (slots_.size() - 1); }
  void grow() {
    std::vector<Slot> old(2 * slots_.size());
    old.swap(slots_);
    --shift_;
    n_ = 0;
    for (Slot& s : old)
      if (s.used) (*this)[s.tid] = std::move(s.v);
  }
  // Backward-shift deletion: each later entry of the run that may sit at
  // the freed slot (its home is not in (hole, its place]) moves into it.
  void erase_at(size_t hole) {
    const size_t mask = slots_.size() - 1;
    for (size_t j = next(hole); slots_[j].used; j = next(j)) {
      const size_t h = home(slots_[j].tid);
      if (((j - h) & mask) >= ((j - hole) & mask)) {
        slots_[hole] = std::move(slots_[j]);
        hole = j;
      }
    }
    slots_[hole] = Slot{};
    --n_;
  }

  std::vector<Slot> slots_;
  size_t n_ = 0;
  unsigned shift_ = 64 - std::countr_zero(kMinSlots);  // log2(size) bits of the hash
};

}  // namespace bdt::det
