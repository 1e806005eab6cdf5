// What a live session measures besides events: ring-buffer losses, the
// kernel's traffic counts and its DIO latency histograms. Plain data, read by
// the CLI, the metrics and the QEMU statistics.
#pragma once

#include <cstdint>
#include <vector>

#include "bdt/event.h"

namespace bdt {

struct LiveStats {
  std::vector<uint64_t> lost_per_cpu;  // records dropped because the ring was full
  uint64_t lost_total = 0;
  // Records the BPF programs made, per CPU: each was read (events +
  // unknown_records) or lost. Exact once the programs are detached and the
  // ring drained (Session::drain).
  std::vector<uint64_t> made_per_cpu;
  uint64_t made_total = 0;
  uint64_t events = 0;            // records decoded
  uint64_t unknown_records = 0;   // records of an unknown type (skipped, counted)
};

// The kernel's per-file DIO counts and latency histograms
// (LiveOptions::latency_hist): cumulative since the session opened (or since
// the key was removed by remove_pid).
struct LatencyHist {
  uint32_t pid = 0;  // tgid of the submitter (0 for buffered)
  bool write = false;
  // Not DIO: ordered extents written through the page cache on this file, by
  // any process (requests = extents, bytes = their length; no latency).
  bool buffered = false;
  uint64_t dev = 0, ino = 0;  // st_dev (subvolume) and inode of the file
  // log2 buckets: [0] = 0..1 ns, [i] = [2^i, 2^(i+1)) ns; the last one also
  // holds everything larger. kLatencyBuckets entries.
  std::vector<uint64_t> buckets;
  uint64_t max_ns = 0, sum_ns = 0;
  // Requests completed (not -EAGAIN), bytes done, errors, -EAGAIN attempts,
  // short writes: as DioCounts.
  uint64_t requests = 0, bytes = 0, errors = 0, again = 0, short_writes = 0;
};
inline constexpr int kLatencyBuckets = 48;  // BDT_LAT_BUCKETS (bpf/events.h)
struct LatencyHists {
  std::vector<LatencyHist> hists;
  uint64_t overflow = 0;   // samples dropped: the map was full
  uint32_t capacity = 0;   // max keys
};

// Traffic counts the BPF programs keep per CPU (summed over CPUs here), for
// every request and event whether or not a record was made (bpf/counts.bpf.h).
// What they count is defined in docs/metrics.md.
struct DioCounts {
  uint64_t requests = 0;      // completed, -EAGAIN attempts not included
  uint64_t bytes = 0;         // the request's own part (ret - done_before)
  uint64_t errors = 0;        // ret < 0 or error != 0, not -EAGAIN
  uint64_t again = 0;         // -EAGAIN attempts
  uint64_t short_writes = 0;  // writes that completed 0 <= bytes < count
  uint64_t lat_sum_ns = 0;
  std::vector<uint64_t> lat_buckets;  // kLatencyBuckets log2 buckets (as LatencyHist)
};
struct FsCounts {
  Fsid fs;                // empty for the shared slot of the later filesystems
  bool overflow = false;  // the filesystems beyond the first kernel slots, together
  DioCounts read, write, unknown;  // unknown: ends whose begin was not seen
};
struct KernelCounts {
  bool valid = false;  // false: this session keeps no counts
  // Events by type (index: EventType value): what --events would print,
  // whether or not a record was made.
  std::vector<uint64_t> events_by_type;
  std::vector<FsCounts> fs;
  uint64_t dio_begins = 0, dio_ends = 0, dio_unmatched = 0;
  // DIRECT ordered extents the kernel's table of those in flight could not keep (all slots
  // taken): findings only, dio-acked-unbacked and dio-stuck's extent rule miss them
  uint64_t oe_untracked = 0;
  uint64_t dio_inflight = 0;  // requests in the kernel's in-flight map now
};

}  // namespace bdt
