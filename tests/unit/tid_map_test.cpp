// Unit tests: the detectors' per-thread map (src/detectors/tid_map.h): the
// same contents as std::unordered_map under any mix of inserts, lookups,
// erases and erase_if, for consecutive thread ids, ids that share a home slot
// and ids spread over the whole range, through the array's growth.
#include "detectors/tid_map.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace {

using bdt::det::TidMap;

// Every key of the reference found with its value, and absent keys not found.
void expect_same(TidMap<uint64_t>& m, const std::unordered_map<uint32_t, uint64_t>& ref,
                 const std::vector<uint32_t>& keys) {
  ASSERT_EQ(m.size(), ref.size());
  for (uint32_t k : keys) {
    const uint64_t* v = m.find(k);
    auto it = ref.find(k);
    if (it == ref.end()) {
      ASSERT_EQ(v, nullptr) << "tid " << k;
    } else {
      ASSERT_NE(v, nullptr) << "tid " << k;
      ASSERT_EQ(*v, it->second) << "tid " << k;
    }
  }
}

void run_mix(const std::vector<uint32_t>& keys, uint64_t seed) {
  std::mt19937_64 rng(seed);
  TidMap<uint64_t> m;
  std::unordered_map<uint32_t, uint64_t> ref;
  for (int i = 0; i < 40000; ++i) {
    const uint32_t k = keys[rng() % keys.size()];
    const uint64_t r = rng() % 100;
    if (r < 45) {
      const uint64_t v = rng() % 4;  // zeros for erase_if
      m[k] = v;
      ref[k] = v;
    } else if (r < 90) {
      ASSERT_EQ(m.erase(k), ref.erase(k) == 1) << "tid " << k;
    } else if (r < 99) {
      ASSERT_EQ(m.find(k) != nullptr, ref.count(k) == 1);
    } else {
      m.erase_if([](uint64_t v) { return v == 0; });
      std::erase_if(ref, [](const auto& kv) { return kv.second == 0; });
    }
    if (i % 97 == 0) expect_same(m, ref, keys);
  }
  expect_same(m, ref, keys);
}

}  // namespace

TEST(TidMap, ConsecutiveThreadIds) {
  std::vector<uint32_t> keys;
  for (uint32_t t = 8000; t < 8300; ++t) keys.push_back(t);
  run_mix(keys, 1);
}

// Ids whose home is the same slot of a 16-slot array (the top 4 bits of the
// hash): long runs, erases from their middle.
TEST(TidMap, IdsSharingAHomeSlot) {
  std::vector<uint32_t> keys;
  for (uint32_t t = 0; keys.size() < 40; ++t)
    if (((uint64_t{t} * 0x9E3779B97F4A7C15ull) >> 60) == 5) keys.push_back(t);
  for (uint32_t t = 0; t < 20; ++t) keys.push_back(t);  // and others among them
  run_mix(keys, 2);
}

TEST(TidMap, AnyThreadId) {
  std::mt19937_64 rng(3);
  std::vector<uint32_t> keys = {0, 1, UINT32_MAX, UINT32_MAX - 1};
  while (keys.size() < 2000) keys.push_back(static_cast<uint32_t>(rng()));
  run_mix(keys, 3);
}

// An entry added and erased again and again (a thread's request after
// request) leaves the map as it was; operator[] of a present thread is its value.
TEST(TidMap, OneThreadAgainAndAgain) {
  TidMap<uint64_t> m;
  m[7] = 70;
  for (uint64_t i = 1; i <= 1000; ++i) {
    m[42] = i;
    ASSERT_EQ(*m.find(42), i);
    ASSERT_EQ(m[42], i);
    ASSERT_TRUE(m.erase(42));
    ASSERT_EQ(m.find(42), nullptr);
    ASSERT_FALSE(m.erase(42));
  }
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(*m.find(7), 70u);
}
