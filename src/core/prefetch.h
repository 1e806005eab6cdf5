// Asking the CPU for memory a little before it is used: a hint that changes no
// result. For state that is out of the cache by design when it is next used
// (the live reorder window's event slots, em-merge-race's recycled requests).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace bdt {

namespace detail {
template <bool kWrite, size_t... I>
[[gnu::always_inline]] inline void prefetch_lines(uintptr_t b, std::index_sequence<I...>) {
  (__builtin_prefetch(reinterpret_cast<const void*>(b + I * 64), kWrite ? 1 : 0), ...);
}
}  // namespace detail

// Every cache line of the N bytes at p, for writing (kWrite) or for reading:
// one prefetch per line, written out, always inlined. GCC 12 takes a function
// (or a loop) that only prefetches for one without effect and drops its calls
// when it is not inlined whole: a caller that only prefetches is always_inline
// too.
template <size_t N, bool kWrite>
[[gnu::always_inline]] inline void prefetch_bytes(const void* p) {
  static_assert(N > 0 && N <= 2048);
  const auto b = reinterpret_cast<uintptr_t>(p);
  detail::prefetch_lines<kWrite>(b, std::make_index_sequence<(N + 63) / 64>{});
  // the last line, when p is not at a line's start
  __builtin_prefetch(reinterpret_cast<const void*>(b + N - 1), kWrite ? 1 : 0);
}

}  // namespace bdt
