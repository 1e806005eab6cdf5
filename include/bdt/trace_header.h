// What a trace says about itself: the schema version, the traced kernel, the
// hooks and how each was attached, the clock offset and the host. Live traces,
// recorded files and every output format carry it (written first); readers
// (replay/trace_reader.h) return it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bdt/kernel_version.h"

namespace bdt {

struct HookInfo {
  std::string name;       // "iomap_dio_rw_begin"
  std::string mechanism;  // "tp_btf", "raw_tp", "fentry", "kprobe", "tracepoint", "none"
  bool attached = false;
};

struct TraceHeader {
  int schema_version = 1;
  KernelVersion kernel;           // unknown (major 0) for JSON lines without a header field
  std::vector<HookInfo> hooks;    // empty when unknown
  int64_t mono_to_realtime_ns = 0;  // add to ts_ns for wall-clock time; 0 if unknown
  std::string hostname;             // of the traced host; "" if unknown
};

// gethostname(2) of this host ("" if it cannot be read): what live traces and
// dumps put in TraceHeader::hostname.
std::string this_hostname();

// "2026-11-22T04:50:01.123456Z": ns since the epoch as UTC, microseconds (JSON's
// "wall_time", text output with --wall-time).
std::string format_wall_utc(int64_t wall_ns);
// CLOCK_MONOTONIC ns (an event's ts_ns) -> ns since the epoch, clamped to the
// int64_t range (a trace file may carry any time and any offset).
inline int64_t wall_ns(uint64_t mono_ns, int64_t mono_to_realtime_ns) {
  const __int128 t = static_cast<__int128>(mono_ns) + mono_to_realtime_ns;
  return t > INT64_MAX ? INT64_MAX : t < INT64_MIN ? INT64_MIN : static_cast<int64_t>(t);
}

}  // namespace bdt
