// Timeline export: Chrome trace-event JSON, as Perfetto (ui.perfetto.dev) and
// chrome://tracing load it. See docs/timeline.md for the tracks and spans.
//
// The sink is stream-written: each event is encoded as it arrives and only the
// spans still open (DIO requests in flight, ordered extents in the tree,
// ioctls and relocations under way) are kept in memory.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "bdt/finding.h"
#include "sinks/sink.h"
#include "bdt/errors.h"
#include "bdt/trace_header.h"

namespace bdt {

// Events (Sink::event) become spans and instants, findings (Sink::finding)
// instants, lost records global instants. Sink::summary (or destruction)
// closes the spans still open (marked "unfinished") and the JSON document.
// Timestamps are wall-clock microseconds when h.mono_to_realtime_ns is known,
// else CLOCK_MONOTONIC microseconds.
std::unique_ptr<Sink> make_chrome_sink(std::FILE* out, const TraceHeader& h);

// Calls fn for every `"type":"finding"` line of a JSON-lines trace (the lines
// the trace reader skips): the finding's identity, message and range; its
// evidence is not decoded. Returns how many. Throws InputError naming the
// line for a finding line that is not valid JSON or lacks ts_ns/detector.
uint64_t read_finding_lines(const std::string& path, const std::function<void(const Finding&)>& fn);

}  // namespace bdt
