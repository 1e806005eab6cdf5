// Reading recorded traces: JSON lines (docs/events.md) and the binary --record
// format (docs/record-format.md). One interface for both; replay, dump and the
// tests use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bdt/errors.h"
#include "bdt/event.h"
#include "bdt/string_table.h"
#include "bdt/trace_header.h"

namespace bdt {

// What a trace reader holds at most, whatever the input (docs/hardening.md):
// beyond these a file is refused with a one-line InputError, so reading any
// file takes bounded memory, and reading a valid one does not grow with its
// length.
struct ReadLimits {
  static constexpr size_t kMaxLineBytes = 4u << 20;    // one JSON line
  static constexpr int kMaxDepth = 32;                 // JSON nesting (own output: 4)
  static constexpr size_t kMaxArrayElements = 64;      // a known key's array (flag names)
  static constexpr size_t kMaxHeaderBytes = 64u << 10; // the JSON header line
  static constexpr size_t kMaxHooks = 1024;            // hooks listed in a header
  static constexpr size_t kMaxStrings = 65536;         // distinct vm/image names per trace
  static constexpr size_t kMaxStringBytes = 16u << 20; // their total size
};

class TraceReader {
 public:
  virtual ~TraceReader() = default;
  // Next event in timestamp order; false at a clean end. Throws InputError.
  virtual bool next(Event& ev) = 0;
  virtual const TraceHeader& header() const = 0;
  // Lines/records of unknown event types that were skipped (documented policy).
  virtual uint64_t skipped_unknown() const = 0;
  // JSON lines of "type":"finding" (a --format json live output mixes them in)
  // that were skipped. Always 0 for binary records.
  virtual uint64_t skipped_findings() const { return 0; }
  // With salvage: why reading stopped before the end of the file ("" if it did
  // not), e.g. "trace.bdt: at byte 8200: record checksum mismatch ...".
  virtual std::string salvage_stop() const { return {}; }
  // "binary" or "jsonl".
  virtual std::string_view format() const { return {}; }
};

// Opens FILE ("-" = stdin), detecting binary record vs JSON lines by content.
// salvage: for a binary file, stop quietly at the first corrupt record instead
// of throwing (also for JSON lines: stop at the first bad line). Throws
// InputError. vm/image views in returned events point into the reader's
// StringTable: they stay valid until the reader is destroyed.
std::unique_ptr<TraceReader> open_trace(const std::string& path, bool salvage = false);

// Binary --record writer (streaming; a crash loses at most the last buffer).
// Records are appended to an in-memory buffer (64 KiB) that is written out when
// it fills, on flush(), when an event is more than 1 s (ts_ns) newer than the
// last write-out, and on destruction. Callers should also flush() when idle.
// create_record throws InputError when FILE cannot be created; write/flush
// throw OutputError on I/O errors (e.g. ENOSPC).
class TraceWriter {
 public:
  virtual ~TraceWriter() = default;
  virtual void write(const Event& ev) = 0;
  virtual void flush() = 0;
  virtual uint64_t records_written() const { return 0; }
};
std::unique_ptr<TraceWriter> create_record(const std::string& path, const TraceHeader& h);

}  // namespace bdt
