// Output sinks: how events, findings and the summary are printed.
// Text (aligned, for people) and JSON lines (for log shippers and replay).
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bdt/errors.h"
#include "bdt/event.h"
#include "bdt/finding.h"
#include "bdt/trace_header.h"

namespace bdt {

struct Summary {
  double duration_s = 0;
  // Events by type. Live: what the kernel counted (every event, whether or
  // not a record was needed: events_from_kernel); replay: the records read.
  uint64_t events_total = 0;
  std::map<std::string, uint64_t> events_by_type;
  bool events_from_kernel = false;
  std::optional<uint64_t> records_total;  // live: records that reached the detectors
  std::vector<uint64_t> lost_per_cpu;  // live only
  uint64_t lost_total = 0;
  // Live only (empty/0 otherwise): records the kernel made, per CPU, and the
  // records read from the ring buffer; made = read + lost.
  std::vector<uint64_t> made_per_cpu;
  uint64_t records_made = 0, records_read = 0;
  std::map<std::string, uint64_t> findings_by_detector;  // "detector/level" -> n
  uint64_t findings_total = 0;
  std::vector<std::pair<std::string, std::string>> notes;  // key -> value lines (hooks, skipped...)
};

// How timestamps are shown in text output.
struct TimeBase {
  uint64_t origin_ns = 0;           // ts shown relative to this when wall is unknown
  int64_t mono_to_realtime_ns = 0;  // 0 = unknown
  // --wall-time: the full date and time in UTC (RFC 3339, as JSON's
  // "wall_time") instead of the local time of day.
  bool utc = false;
};

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void event(const Event& ev) = 0;
  virtual void finding(const Finding& f) = 0;
  virtual void lost(uint32_t cpu, uint64_t count) = 0;  // new losses since last report
  virtual void summary(const Summary& s) = 0;
  virtual void flush() = 0;
};

// Passes what stdio holds for `out` on and throws OutputError ("cannot write
// the output: REASON") if that or any earlier write to it failed (a full disk,
// EIO): every sink's flush() ends with it (src/sinks/output.cpp).
void flush_output(std::FILE* out);
// That error for errno `err` (0: "write error"): the one text of it.
OutputError output_error(int err);
// write(2) of all n bytes to fd, for a sink that bypasses stdio; throws
// OutputError as flush_output does when the descriptor refuses them.
void write_output(int fd, const char* p, size_t n);

std::unique_ptr<Sink> make_text_sink(std::FILE* out, TimeBase tb, bool color);
// JSON lines. The first line is the trace's header (append_header_json:
// schema, kernel, hostname, wall-clock offset, hooks), so `replay` reads the
// output back and its times line up with other hosts'. When the header has
// the offset, findings carry "wall_time" (UTC, RFC 3339, microseconds); with
// event_wall_times, event lines too, and "wall_ns" (ns since the epoch).
std::unique_ptr<Sink> make_json_sink(std::FILE* out, TraceHeader header = {}, bool event_wall_times = false);

// One-line text rendering of an event's type-specific fields ("ino=257 pos=0 ...").
std::string format_event_details(const Event& ev);
// The same, appended to `out` (no allocation once `out` has grown).
void append_event_details(std::string& out, const Event& ev);
// "HH:MM:SS.uuuuuu" (wall, local time), "2026-11-22T04:50:01.123456Z" (wall,
// tb.utc) or "+SSS.uuuuuu" (relative).
std::string format_time(uint64_t ts_ns, const TimeBase& tb);
std::string format_dev(uint64_t st_dev);  // "0:45"

}  // namespace bdt
