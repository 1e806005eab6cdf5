// Unit tests: the detectors' flat id table (src/detectors/id_table.h): the same
// contents and order as an ordered map under any mix of adds and takes,
// objects older than the ring's window kept (the overflow), addresses stable,
// spares bounded.
#include "detectors/id_table.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <iterator>
#include <map>
#include <random>
#include <vector>

namespace {

using bdt::det::IdTable;

// Counts the objects alive, to check what the table holds.
struct Obj {
  static inline long alive = 0;
  uint64_t v = 0;
  Obj() { ++alive; }
  ~Obj() { --alive; }
  Obj(const Obj&) = delete;
  Obj& operator=(const Obj&) = delete;
};

// A small window, so that ids leave it often.
using Small = IdTable<Obj, 8, 4>;

template <class Table>
void expect_same(const Table& t, const std::map<uint64_t, const Obj*>& model, const char* when) {
  ASSERT_EQ(t.size(), model.size()) << when;
  auto m = model.begin();
  for (auto it = t.begin(); it != t.end(); ++it, ++m) {
    ASSERT_NE(m, model.end()) << when << ": more in the table than in the map";
    EXPECT_EQ(it.id(), m->first) << when;
    EXPECT_EQ(&*it, m->second) << when << ": id " << m->first << " moved";
    EXPECT_EQ(it->v, m->first) << when;
  }
  EXPECT_EQ(m, model.end()) << when << ": fewer in the table than in the map";
  EXPECT_EQ(t.begin() == t.end(), model.empty()) << when;
}

TEST(IdTable, SameAsAnOrderedMap) {
  std::mt19937_64 rng(12);
  for (int round = 0; round < 40; ++round) {
    Small t;
    std::map<uint64_t, const Obj*> model;
    uint64_t last = 0;
    for (int op = 0; op < 400; ++op) {
      const unsigned k = rng() % 10;
      if (k < 5 || model.empty()) {  // add
        uint64_t id = 0;
        Obj& o = t.add(id);
        ASSERT_EQ(id, ++last);
        o.v = id;
        model[id] = &o;
      } else if (k < 8) {  // take one at random (round 0: mostly the newest)
        auto m = model.begin();
        std::advance(m, round == 0 ? model.size() - 1 : rng() % model.size());
        auto p = t.take(m->first);
        ASSERT_EQ(p.get(), m->second);
        model.erase(m);
        t.recycle(std::move(p));
      } else if (k < 9) {  // the oldest
        auto p = t.take(t.begin().id());
        ASSERT_EQ(p.get(), model.begin()->second);
        model.erase(model.begin());
        t.recycle(std::move(p));
      } else {  // ids not there: taken, never given, zero
        const uint64_t id = rng() % (last + 3);
        if (!model.count(id)) {
          EXPECT_EQ(t.find(id), nullptr) << "id " << id;
          EXPECT_FALSE(t.take(id)) << "id " << id;
        }
      }
      for (auto& [id, p] : model) ASSERT_EQ(t.find(id), p) << "id " << id;
      ASSERT_NO_FATAL_FAILURE(expect_same(t, model, "after an op"));
      // Bounded: what is in the table, plus at most the spares.
      ASSERT_LE(t.spares(), Small::spare_cap());
      ASSERT_EQ(Obj::alive, static_cast<long>(model.size() + t.spares()));
    }
  }
  EXPECT_EQ(Obj::alive, 0);
}

// An object in the table longer than the ring's window (a request in flight
// while kWindow later ones began and ended) is kept, found, read first and
// taken: without the overflow its slot would go to a later id.
TEST(IdTable, AnOldObjectOutlivesItsSlot) {
  Small t;
  uint64_t first = 0;
  Obj& old = t.add(first);
  old.v = 1;
  for (int i = 0; i < 3 * int(Small::window()) + 5; ++i) {
    uint64_t id = 0;
    Obj& o = t.add(id);
    o.v = id;
    if (i % 3) t.recycle(t.take(id));  // a third stay in
  }
  EXPECT_GT(t.overflowed(), 1u);
  EXPECT_EQ(t.find(first), &old);
  ASSERT_NE(t.begin(), t.end());
  EXPECT_EQ(t.begin().id(), first);
  EXPECT_EQ(&*t.begin(), &old);
  // ids in increasing order across the overflow and the ring
  uint64_t prev = 0;
  size_t n = 0;
  for (auto it = t.begin(); it != t.end(); ++it, ++n) {
    EXPECT_GT(it.id(), prev);
    EXPECT_EQ(it->v, it.id());
    prev = it.id();
  }
  EXPECT_EQ(n, t.size());
  EXPECT_EQ(t.take(first).get(), &old);
  EXPECT_EQ(t.find(first), nullptr);
}

// Taking the object an iterator was at, after stepping past it (the detectors'
// eviction loops), across the overflow and the ring.
TEST(IdTable, TakeBehindTheIterator) {
  Small t;
  std::vector<uint64_t> kept;
  for (int i = 0; i < 40; ++i) {
    uint64_t id = 0;
    Obj& o = t.add(id);
    o.v = id;
    if (i % 4 && i < 30) t.recycle(t.take(id));  // holes; the early ones overflow
  }
  ASSERT_GT(t.overflowed(), 0u);
  for (auto it = t.begin(); it != t.end();) {
    auto next = std::next(it);
    if (it.id() % 2) t.recycle(t.take(it.id()));
    else kept.push_back(it.id());
    it = next;
  }
  std::vector<uint64_t> seen;
  for (auto it = t.begin(); it != t.end(); ++it) seen.push_back(it.id());
  EXPECT_EQ(seen, kept);
  EXPECT_EQ(t.size(), kept.size());
}

// Taken objects come back through recycle() for the next add()s, the last
// one first, at most spare_cap() of them; the rest are freed.
TEST(IdTable, SparesReusedAndBounded) {
  {
    Small t;
    std::vector<uint64_t> ids;
    for (int i = 0; i < 10; ++i) {
      uint64_t id = 0;
      t.add(id);
      ids.push_back(id);
    }
    const Obj* last_kept = nullptr;
    for (uint64_t id : ids) {
      auto p = t.take(id);
      if (t.spares() == Small::spare_cap() - 1) last_kept = p.get();
      t.recycle(std::move(p));
    }
    EXPECT_EQ(t.spares(), Small::spare_cap());
    EXPECT_EQ(Obj::alive, static_cast<long>(Small::spare_cap()));  // the others freed
    uint64_t id = 0;
    EXPECT_EQ(&t.add(id), last_kept);
    EXPECT_EQ(t.spares(), Small::spare_cap() - 1);
  }
  EXPECT_EQ(Obj::alive, 0);
}

}  // namespace
