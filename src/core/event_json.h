// JSON-lines encoding of events and findings (docs/events.md, docs/findings.md).
//
// The encoder is on the live hot path: it writes into caller-owned memory
// (write_event_json) or appends to a caller-owned string, never through a JSON
// DOM, and allocates only when `out` must grow.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "bdt/event.h"
#include "bdt/finding.h"

namespace bdt {

inline constexpr std::string_view kEventSchema = "btrfs-dio-trace.events/1";
inline constexpr int kEventSchemaVersion = 1;

struct TraceHeader;
class StringTable;

// Appends one JSON object (no trailing newline) for the event.
void append_event_json(std::string& out, const Event& ev);
// What write_event_json may keep from one event to the next of the same
// writer (one per writer, not shared between threads): text that the next
// events nearly always repeat. Of the last four threads (pid, tid and comm),
// `,"pid":P,"tid":T,"comm":"C"`; of the last file (fs id, dev, ino),
// `"FSID","dev":D,"ino":I`; of the last ts_ns of 10^8 or more, the digits
// of ts_ns / 10^8 (they change every 0.1 s); of the last two flag words (by
// name table and bits: an ordered extent's added and removed flags
// alternate, each nearly always the same), the list.
struct EventJsonMemo {
  struct ThreadText {
    uint32_t pid = 0, tid = 0;
    std::array<char, 16> comm{};
    size_t len = 0;  // 0: none kept here
    std::array<char, 64> text{};  // a longer text (an escaped comm) is not kept
  };
  std::array<ThreadText, 4> threads{};
  size_t threads_next = 0;  // the one a new thread replaces
  Fsid fs;
  uint64_t dev = 0, ino = 0;
  size_t file_len = 0;  // 0: none kept
  std::array<char, 96> file_text{};
  uint64_t ts_high = 0;  // 0: none kept
  size_t ts_high_len = 0;
  std::array<char, 16> ts_high_text{};
  struct FlagText {
    const FlagName* names = nullptr;  // nullptr: none kept here
    uint32_t bits = 0;
    size_t len = 0;
    std::array<char, 96> text{};  // a longer list is not kept
  };
  std::array<FlagText, 2> flags{};
  size_t flags_next = 0;  // the one a new word replaces
};
// The same object written at p, which has room for event_json_max(ev) bytes;
// returns the end of what was written (the hot path: no allocation, no size
// check per field). The same bytes with or without a memo.
char* write_event_json(char* p, const Event& ev, EventJsonMemo* memo = nullptr);
// The most bytes write_event_json writes for ev.
size_t event_json_max(const Event& ev);
// Appends one JSON object (no trailing newline) for the finding, with evidence.
// mono_to_realtime_ns != 0 (the trace's offset): also "wall_time", the
// finding's ts_ns as UTC RFC 3339 with microseconds.
void append_finding_json(std::string& out, const Finding& f, int64_t mono_to_realtime_ns = 0);
// Appends the optional first line of a JSON-lines trace (no trailing newline):
// {"schema":"btrfs-dio-trace.events/1","kernel":"6.18.44","hostname":"hv1","mono_to_realtime_ns":N,
//  "hooks":[...]} (kernel / hostname / mono_to_realtime_ns / hooks only when known).
void append_header_json(std::string& out, const TraceHeader& h);
// Appends s as a JSON string literal (with the quotes). Invalid UTF-8 bytes
// are written as \u00XX (i.e. read back as Latin-1).
void append_json_string(std::string& out, std::string_view s);

// Decodes one JSON event object (one line of a trace) into ev. vm/image are
// interned in `strings`, which must outlive ev. Throws InputError with a
// reason but without file/line (the trace reader adds those). An unknown
// "type" or a "finding" line is an error here; the trace reader skips them.
void event_from_json(std::string_view json, Event& ev, StringTable& strings);

}  // namespace bdt
