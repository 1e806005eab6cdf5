// The tracer's own process, for the standard process_* metrics (start time,
// CPU, memory, file descriptors), read from /proc/self like every Prometheus
// client library does. The parsers are pure (unit-tested).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace bdt::metrics {

struct ProcessStats {
  double start_time_s = 0;    // Unix time the process started
  double cpu_seconds = 0;     // user + system
  uint64_t resident_bytes = 0, virtual_bytes = 0;
  uint64_t open_fds = 0, max_fds = 0;
};

// From the text of /proc/PID/stat, the kernel's clock ticks per second, the
// page size and the boot time (btime of /proc/stat, Unix seconds). nullopt
// when the text is not a stat line. open_fds / max_fds are left 0.
std::optional<ProcessStats> parse_proc_stat(std::string_view stat, long ticks_per_s, long page_bytes,
                                            uint64_t boot_time_s);
// "btime N" of /proc/stat.
std::optional<uint64_t> parse_boot_time(std::string_view proc_stat);

// This process, now (nullopt if /proc cannot be read).
std::optional<ProcessStats> read_process_stats();

}  // namespace bdt::metrics
