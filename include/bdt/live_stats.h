// What a live session measures besides events: ring-buffer losses and the
// kernel's DIO latency histograms. Plain data, read by the CLI, the metrics
// and the QEMU statistics.
#pragma once

#include <cstdint>
#include <vector>

namespace bdt {

struct LiveStats {
  std::vector<uint64_t> lost_per_cpu;  // records dropped because the ring was full
  uint64_t lost_total = 0;
  uint64_t events = 0;            // records decoded
  uint64_t unknown_records = 0;   // records of an unknown type (skipped, counted)
};

// The kernel's DIO latency histograms (LiveOptions::latency_hist): cumulative
// since the session opened (or since the key was removed by remove_pid).
struct LatencyHist {
  uint32_t pid = 0;  // tgid of the submitter
  bool write = false;
  uint64_t dev = 0, ino = 0;  // st_dev (subvolume) and inode of the file
  // log2 buckets: [0] = 0..1 ns, [i] = [2^i, 2^(i+1)) ns; the last one also
  // holds everything larger. kLatencyBuckets entries.
  std::vector<uint64_t> buckets;
  uint64_t max_ns = 0, sum_ns = 0;
};
inline constexpr int kLatencyBuckets = 48;  // BDT_LAT_BUCKETS (bpf/events.h)
struct LatencyHists {
  std::vector<LatencyHist> hists;
  uint64_t overflow = 0;   // samples dropped: the map was full
  uint32_t capacity = 0;   // max keys
};

}  // namespace bdt
