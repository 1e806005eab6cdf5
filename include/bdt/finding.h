// btrfs-dio-trace: what a detector reports.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bdt/event.h"

namespace bdt {

enum class Level : uint8_t { Hazard, Symptom };
enum class Severity : uint8_t { Info, Warning, Critical };
std::string_view to_string(Level);
std::string_view to_string(Severity);

// One process/thread that took part in a finding.
struct Actor {
  uint32_t pid = 0, tid = 0;
  std::string comm;
  std::string role;  // "reader", "writer", "send", "balance", "worker", ...
};

struct Finding {
  std::string detector;  // "em-merge-race", "stale-eb-reuse", "dio-short-write",
                         // "send-vs-relocation", "dio-unstable-pages", "dio-buffered-fallback"
  std::string kind;      // short machine-readable sub-kind, e.g. "eexist", "continued-write"
  Level level = Level::Hazard;
  Severity severity = Severity::Info;
  uint64_t ts_ns = 0;
  uint32_t pid = 0, tid = 0;
  std::string comm;
  Fsid fs;
  std::optional<uint64_t> dev, ino;
  std::optional<std::pair<uint64_t, uint64_t>> range;  // [start, end)
  std::string message;      // one plain sentence
  std::string explanation;  // what it means / what to do (may be empty)
  std::string exposure;     // why this severity on this kernel (table entry or observation)
  std::vector<Actor> actors;
  std::vector<Event> evidence;  // the events that justify it, in time order
  std::string vm, image;        // --qemu attribution
  std::vector<std::string> stack;  // symbolized kernel stack, when captured
  // Judged when the trace (or replay) ended, before the kernel finished with
  // what the finding is about (e.g. an ordered extent whose removal was not seen).
  bool trace_ended = false;
};

}  // namespace bdt
