// The BPF ring buffer's sizes (bpf/emission.bpf.h): the map size the kernel
// gets for a wanted size, and how many records each CPU makes between two
// wakeups of the consumer. Pure (bdt_live_pure): unit-tested as the session
// runs it.
#pragma once

#include <cstdint>

namespace bdt::live {

// The ring buffer map's size for `want` bytes: the next power of two of at
// least one page (what the kernel takes), at most 1 GiB.
uint32_t ring_size(uint32_t want, uint32_t page);

// Records a CPU makes between two wakeups of the consumer (a power of two, the
// BPF side's wake_mask + 1). A wakeup costs an irq_work and a wakeup, so the
// fewer the better; but the records nobody was woken for must leave the ring
// room while the woken consumer waits for a CPU: all CPUs' unannounced records
// together take at most a sixteenth of the ring (with a quarter, a psync flood
// of every event lost records in a 1 MiB ring, docs/performance.md). At most
// 1024, at least 1.
uint32_t wake_batch(uint32_t ring_bytes, uint32_t ncpus, uint32_t record_bytes);

}  // namespace bdt::live
