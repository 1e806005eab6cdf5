// JSON-lines encoding of events and findings (docs/events.md, docs/findings.md).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "bdt/event.h"
#include "bdt/finding.h"

namespace bdt {

inline constexpr std::string_view kEventSchema = "btrfs-dio-trace.events/1";

// Appends one JSON object (no trailing newline) for the event.
void append_event_json(std::string& out, const Event& ev);
// Appends one JSON object (no trailing newline) for the finding, with evidence.
void append_finding_json(std::string& out, const Finding& f);

}  // namespace bdt
