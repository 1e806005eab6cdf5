// Huge-page-backed anonymous mappings (huge_pages.h).
#include "core/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>

namespace bdt {

namespace {
size_t rounded(size_t bytes) { return (bytes + kHugePage - 1) & ~(kHugePage - 1); }
}  // namespace

void* huge_alloc(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes > SIZE_MAX - 2 * kHugePage) throw std::bad_alloc();
  const size_t len = rounded(bytes);
  // Map one huge page more and trim both ends to an aligned run: the kernel
  // backs a range with huge pages only where it covers whole aligned 2 MiB.
  void* m = ::mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  const auto base = reinterpret_cast<uintptr_t>(m);
  const uintptr_t start = (base + kHugePage - 1) & ~(kHugePage - 1);
  if (start > base) ::munmap(m, start - base);
  if (const uintptr_t end = base + len + kHugePage; end > start + len)
    ::munmap(reinterpret_cast<void*>(start + len), end - (start + len));
  void* p = reinterpret_cast<void*>(start);
  (void)::madvise(p, len, MADV_HUGEPAGE);  // a hint: EINVAL without THP changes nothing
  return p;
}

void huge_free(void* p, size_t bytes) noexcept {
  if (p) ::munmap(p, rounded(bytes == 0 ? 1 : bytes));
}

}  // namespace bdt
