// The BPF ring buffer's sizes (ring.h).
#include "live/ring.h"

namespace bdt::live {

uint32_t ring_size(uint32_t want, uint32_t page) {
  uint32_t n = page;
  while (n < want && n < (1u << 30)) n <<= 1;
  return n;
}

uint32_t wake_batch(uint32_t ring_bytes, uint32_t ncpus, uint32_t record_bytes) {
  const uint64_t budget = ring_bytes / 16;
  const uint64_t per_batch = static_cast<uint64_t>(ncpus ? ncpus : 1) * (record_bytes ? record_bytes : 1);
  uint32_t n = 1024;
  while (n > 1 && n * per_batch > budget) n >>= 1;
  return n;
}

}  // namespace bdt::live
