// Unit tests: huge-page-backed mappings (src/core/huge_pages.h).
#include "core/huge_pages.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace bdt;

TEST(HugePages, AlignedZeroFilledAndWritable) {
  for (size_t bytes : {size_t{1}, size_t{4096}, kHugePage - 1, kHugePage, kHugePage + 1, 3 * kHugePage}) {
    auto* p = static_cast<unsigned char*>(huge_alloc(bytes));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kHugePage, 0u) << bytes;
    EXPECT_EQ(p[0], 0);
    EXPECT_EQ(p[bytes - 1], 0);
    std::memset(p, 0xa5, bytes);
    EXPECT_EQ(p[bytes - 1], 0xa5);
    huge_free(p, bytes);
  }
}

TEST(HugePages, VectorKeepsItsElementsAcrossGrowth) {
  std::vector<uint64_t, HugePageAllocator<uint64_t>> v;
  v.reserve(16);
  for (uint64_t i = 0; i < 3 * kHugePage / sizeof(uint64_t); ++i) v.push_back(i * 7);
  for (uint64_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], i * 7);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % kHugePage, 0u);
}

// The mapping is marked for huge pages: /proc/self/smaps says THPeligible for
// it wherever the kernel has THP in "always" or "madvise" mode.
TEST(HugePages, MappingIsHugePageEligible) {
  std::ifstream mode("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string m((std::istreambuf_iterator<char>(mode)), {});
  if (m.empty() || m.find("[never]") != std::string::npos)
    GTEST_SKIP() << "SKIPPED: transparent huge pages unavailable on this kernel";
  const size_t bytes = 2 * kHugePage;
  void* p = huge_alloc(bytes);
  static_cast<char*>(p)[0] = 1;
  std::ifstream smaps("/proc/self/smaps");
  std::string line, eligible;
  bool in = false;
  const auto start = reinterpret_cast<uintptr_t>(p);
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream s(line);
    if (s >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(' ') > line.find('-')) {
      in = lo <= start && start < hi;
      continue;
    }
    if (in && line.rfind("THPeligible:", 0) == 0) eligible = line;
  }
  huge_free(p, bytes);
  if (eligible.empty()) GTEST_SKIP() << "SKIPPED: /proc/self/smaps has no THPeligible line";
  EXPECT_NE(eligible.find('1'), std::string::npos) << eligible;
}
