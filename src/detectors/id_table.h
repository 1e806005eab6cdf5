// IdTable: objects keyed by ids the table hands out in increasing order, read
// oldest first; the detectors' DIO request tables (DioRequests in common.h,
// em-merge-race's), where a request's id is its begin order. Internal to
// src/detectors.
//
// Flat: a ring of kWindow slots indexed by id holds the newest ids' objects,
// so add, find and take by id are one index (no tree to rebalance, no links
// in other objects to touch). An object still in the table when its slot is
// needed again, kWindow ids later (a request in flight that long), moves to an
// ordered overflow map, whose ids are all older than the ring's and which is
// read first. Each object is its own allocation: its address stays while it
// is in the table and while a take()r holds it. Up to kSpare taken objects
// given back (recycle()) are reused by the next add()s, the last one first.
// Bounded by its user: it holds what was added and not taken, plus the ring's
// kWindow pointers and at most kSpare spares.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace bdt::det {

template <class T, size_t kWindow = 1024, size_t kSpare = 32>
class IdTable {
  static_assert(kWindow >= 2 && (kWindow & (kWindow - 1)) == 0, "kWindow: a power of two");

 public:
  using Ptr = std::unique_ptr<T>;
  static constexpr size_t window() { return kWindow; }
  static constexpr size_t spare_cap() { return kSpare; }

  IdTable() : ring_(kWindow) {}
  IdTable(const IdTable&) = delete;
  IdTable& operator=(const IdTable&) = delete;

  // A new object under the next id (the first is 1), written to `id`. A
  // reused one holds what its last user left: the caller sets every field.
  T& add(uint64_t& id) {
    id = ++last_;
    Ptr& s = ring_[id & kMask];
    if (s) {  // id - kWindow, still here: the oldest in the ring (lo_)
      overflow_.emplace_hint(overflow_.end(), id - kWindow, std::move(s));
      lo_ = id - kWindow + 1;
    }
    if (spare_.empty()) {
      s = std::make_unique<T>();
    } else {
      s = std::move(spare_.back());
      spare_.pop_back();
    }
    ++n_;
    advance();
    return *s;
  }

  // The object with this id (nullptr: none).
  T* find(uint64_t id) const {
    if (id == 0 || id > last_) return nullptr;
    if (in_ring(id)) return ring_[id & kMask].get();
    auto it = overflow_.find(id);
    return it == overflow_.end() ? nullptr : it->second.get();
  }

  // Out of the table, owned by the caller (empty: no such id).
  Ptr take(uint64_t id) {
    Ptr p;
    if (id == 0 || id > last_) return p;
    if (in_ring(id)) {
      p = std::move(ring_[id & kMask]);
      if (p && id == lo_) advance();
    } else if (auto it = overflow_.find(id); it != overflow_.end()) {
      p = std::move(it->second);
      overflow_.erase(it);
    }
    if (p) --n_;
    return p;
  }

  // A taken object back, for the next add()s (beyond kSpare: freed).
  void recycle(Ptr&& p) {
    if (p && spare_.size() < kSpare) spare_.push_back(std::move(p));
    p.reset();
  }

  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  size_t spares() const { return spare_.size(); }
  size_t overflowed() const { return overflow_.size(); }  // held outside the ring now

  // Oldest first (by id). Taking the object an iterator is at invalidates that
  // iterator only: take it after stepping past (`auto next = std::next(it)`).
  template <bool kConst>
  class Iter {
    using Table = std::conditional_t<kConst, const IdTable, IdTable>;
    using Over = std::conditional_t<kConst, typename std::map<uint64_t, Ptr>::const_iterator,
                                    typename std::map<uint64_t, Ptr>::iterator>;

   public:
    using value_type = T;
    using reference = std::conditional_t<kConst, const T&, T&>;
    using pointer = std::conditional_t<kConst, const T*, T*>;
    using difference_type = std::ptrdiff_t;
    using iterator_category = std::forward_iterator_tag;

    Iter() = default;
    reference operator*() const { return *get(); }
    pointer operator->() const { return get(); }
    uint64_t id() const { return o_ != t_->overflow_.end() ? o_->first : id_; }
    Iter& operator++() {
      if (o_ != t_->overflow_.end()) {
        if (++o_ == t_->overflow_.end()) id_ = t_->lo_;
        return *this;
      }
      do ++id_;
      while (id_ <= t_->last_ && !t_->ring_[id_ & kMask]);
      return *this;
    }
    Iter operator++(int) {
      Iter r = *this;
      ++*this;
      return r;
    }
    bool operator==(const Iter& o) const { return o_ == o.o_ && id_ == o.id_; }

   private:
    friend class IdTable;
    Iter(Table* t, Over o, uint64_t id) : t_(t), o_(o), id_(id) {}
    pointer get() const {
      return o_ != t_->overflow_.end() ? o_->second.get() : t_->ring_[id_ & kMask].get();
    }
    Table* t_ = nullptr;
    Over o_{};
    uint64_t id_ = 0;  // in the ring (when past the overflow)
  };
  using iterator = Iter<false>;
  using const_iterator = Iter<true>;

  iterator begin() { return {this, overflow_.begin(), overflow_.empty() ? lo_ : 0}; }
  iterator end() { return {this, overflow_.end(), last_ + 1}; }
  const_iterator begin() const { return {this, overflow_.begin(), overflow_.empty() ? lo_ : 0}; }
  const_iterator end() const { return {this, overflow_.end(), last_ + 1}; }

 private:
  static constexpr uint64_t kMask = kWindow - 1;
  // The ring holds the ids (last_ - kWindow, last_].
  bool in_ring(uint64_t id) const { return id + kWindow > last_; }
  // lo_ to the oldest id in the ring (last_ + 1 when it is empty).
  void advance() {
    while (lo_ <= last_ && !ring_[lo_ & kMask]) ++lo_;
  }

  std::vector<Ptr> ring_;
  std::map<uint64_t, Ptr> overflow_;
  std::vector<Ptr> spare_;
  uint64_t last_ = 0, lo_ = 1;
  size_t n_ = 0;
};

}  // namespace bdt::det
