// Reading recorded traces: JSON lines (docs/events.md) and the binary --record
// format (docs/record-format.md). One interface for both; replay, dump and the
// tests use it.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bdt/event.h"
#include "bdt/kernel_version.h"

namespace bdt {

// Bad input: the message is one line naming the file and line/offset.
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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
};

class TraceReader {
 public:
  virtual ~TraceReader() = default;
  // Next event in timestamp order; false at a clean end. Throws InputError.
  virtual bool next(Event& ev) = 0;
  virtual const TraceHeader& header() const = 0;
  // Lines/records of unknown event types that were skipped (documented policy).
  virtual uint64_t skipped_unknown() const = 0;
};

// Opens FILE ("-" = stdin), detecting binary record vs JSON lines by content.
// salvage: for a binary file, stop quietly at the first corrupt record instead
// of throwing. Throws InputError.
std::unique_ptr<TraceReader> open_trace(const std::string& path, bool salvage = false);

// Binary --record writer (streaming; a crash loses at most the last buffer).
class TraceWriter {
 public:
  virtual ~TraceWriter() = default;
  virtual void write(const Event& ev) = 0;
  virtual void flush() = 0;
};
std::unique_ptr<TraceWriter> create_record(const std::string& path, const TraceHeader& h);

}  // namespace bdt
