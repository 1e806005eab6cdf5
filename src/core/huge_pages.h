// Memory for big, long-lived state that is touched milliseconds apart (the
// live reorder window's event slots), asked to be backed by transparent huge
// pages: an anonymous mapping aligned to 2 MiB with madvise(MADV_HUGEPAGE).
// Where THP is "madvise" only (a common default), malloc's memory is 4 KiB
// pages, and each first touch of such state missed the TLB as well as the
// cache; one 2 MiB page's translation covers 512 of them. A hint: where the
// kernel gives no huge page, the memory is ordinary pages. Memory use grows by
// at most one 2 MiB page per region (only touched pages count; a huge page is
// faulted in whole).
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

namespace bdt {

inline constexpr size_t kHugePage = size_t{2} << 20;

// bytes rounded up to kHugePage, kHugePage-aligned, zero-filled; throws
// std::bad_alloc when the mapping fails. huge_free() takes the same bytes.
void* huge_alloc(size_t bytes);
void huge_free(void* p, size_t bytes) noexcept;

// For a std::vector whose capacity is reserved once and large (no small
// allocations: every allocation is at least one huge page of address space).
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}
  T* allocate(size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(huge_alloc(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept { huge_free(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
};

}  // namespace bdt
