// Unit tests: the detectors' per-file lists (FileLists, src/detectors/common.h):
// an emptied list kept for the file's next entry, and at most kKeptEmpty empty
// lists (of bounded capacity) held at any time.
#include <gtest/gtest.h>

#include <cstdint>

#include "detectors/common.h"

namespace {

using bdt::det::FileLists;
using bdt::det::InoKey;
using Lists = FileLists<int>;

InoKey file(uint64_t ino) { return InoKey{{}, ino}; }

TEST(FileLists, AnEmptiedListIsKeptForTheFilesNextEntry) {
  Lists l;
  l.of(file(1)).push_back(7);
  const int* storage = l.of(file(1)).data();
  ASSERT_TRUE(l.erase_first(file(1), [](int v) { return v == 7; }));
  auto f = l.find(file(1));
  ASSERT_NE(f, l.end());
  EXPECT_TRUE(f->second.empty());  // reads as no entries
  auto& v = l.of(file(1));
  EXPECT_GT(v.capacity(), 0u);
  v.push_back(8);
  EXPECT_EQ(v.data(), storage) << "the file's list was made again";
  EXPECT_FALSE(l.erase_first(file(1), [](int v) { return v == 7; }));
  EXPECT_FALSE(l.erase_first(file(2), [](int) { return true; }));
}

// Many files, each emptied: only the last kKeptEmpty empty lists stay; the
// files with entries all do.
TEST(FileLists, AtMostKeptEmptyEmptyLists) {
  Lists l;
  constexpr uint64_t kFiles = 200, kBusy = 10;
  for (uint64_t i = 0; i < kFiles; ++i) l.of(file(i)).push_back(int(i));
  for (uint64_t i = 0; i < kBusy; ++i) l.of(file(i)).push_back(-1);  // these keep one entry
  for (uint64_t i = 0; i < kFiles; ++i)
    ASSERT_TRUE(l.erase_first(file(i), [i](int v) { return v == int(i); }));
  EXPECT_EQ(l.files(), kBusy + Lists::kKeptEmpty);
  for (uint64_t i = kFiles - Lists::kKeptEmpty; i < kFiles; ++i)
    EXPECT_NE(l.find(file(i)), l.end()) << "file " << i << " emptied last";
  for (uint64_t i = 0; i < kBusy; ++i) ASSERT_EQ(l.find(file(i))->second.size(), 1u);
  // the same file emptied again and again holds at most one kept list
  for (int k = 0; k < 100; ++k) {
    l.of(file(5000)).push_back(k);
    ASSERT_TRUE(l.erase_first(file(5000), [k](int v) { return v == k; }));
  }
  EXPECT_LE(l.files(), kBusy + Lists::kKeptEmpty);
}

// A list grown past kKeptCap is not kept empty (its memory goes).
TEST(FileLists, ALargeEmptiedListIsDropped) {
  Lists l;
  for (int i = 0; i < int(Lists::kKeptCap) + 1; ++i) l.of(file(3)).push_back(i);
  for (int i = 0; i < int(Lists::kKeptCap) + 1; ++i)
    ASSERT_TRUE(l.erase_first(file(3), [i](int v) { return v == i; }));
  EXPECT_EQ(l.find(file(3)), l.end());
  EXPECT_EQ(l.files(), 0u);
}

// The remembered last file never answers for another file or for a list
// that was dropped, across insertions that rehash the map.
TEST(FileLists, TheLastFileLookedUpStaysRight) {
  Lists l;
  for (int i = 0; i < 300; ++i) {
    l.of(file(1)).push_back(i);
    l.of(file(1000 + i)).push_back(-i);  // new files: the map grows and rehashes
    auto f = l.find(file(1));
    ASSERT_NE(f, l.end());
    ASSERT_EQ(f->second.size(), size_t(i + 1));
    ASSERT_EQ(l.find(file(1000 + i))->second.front(), -i);
  }
  // file 1's list (300 entries: too large to keep) emptied and dropped
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(l.erase_first(file(1), [i](int v) { return v == i; }));
  EXPECT_EQ(l.find(file(1)), l.end());
  EXPECT_TRUE(l.of(file(1)).empty());
}

}  // namespace
