// btrfs-dio-trace: the detector interface and the engine that drives detectors.
//
// Detectors are pure: they consume Events in timestamp order and emit Findings.
// No I/O, no clocks (the event's ts_ns is the clock), no globals. The same
// code runs for live tracing and for replay.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "bdt/event.h"
#include "bdt/finding.h"
#include "bdt/kernel_version.h"

namespace bdt {

using Findings = std::vector<Finding>;

// Triggers of the lazy emission (docs/performance.md "Lazy emission"): by
// default the kernel holds a DIO request's records and drops them when it
// ends cleanly; a trigger makes it emit what it holds for the request's
// inode (its requests in flight and those that just ended) and every later
// record of that inode for a while. The same enumerators as enum bdt_trigger
// (bpf/events.h); the conditions are one line each in bpf/triggers.bpf.h.
// Records of events that are not DIO requests (ioctls, relocation, extent
// buffers, em_exist) are always made.
enum class Trigger : uint8_t {
  Errno = 0,       // a request or extent-map call failed (not -EAGAIN)
  Eexist = 1,      // ... with -EEXIST
  Continued = 2,   // a DIO write continued (done_before > 0)
  ShortWrite = 3,  // a DIO write completed fewer bytes than asked
  EmExist = 4,     // btrfs_handle_em_exist in a request
  BufShared = 5,   // a DIO write to a checksummed file from a shared writable buffer
  BufFile = 6,     // a DIO write from a mapping of a file
  OeBuffered = 7,  // a non-DIRECT ordered extent created in a user process
  OeIoerr = 8,     // an ordered extent failed (IOERR, not uptodate)
  Csum = 9,        // a data checksum failure
  Stall = 10,      // a request still in flight past the stall threshold
  CsumDirect = 11, // a checksum failure on a file with remembered direct writes
  OeStall = 12,    // a DIRECT ordered extent open past the stall threshold
  AckedIoerr = 13, // a DIRECT ordered extent of an acknowledged write failed
};
inline constexpr int kTriggerCount = 14;
using TriggerSet = uint32_t;  // 1 << Trigger
constexpr TriggerSet triggers_of(std::initializer_list<Trigger> ts) {
  TriggerSet s = 0;
  for (auto t : ts) s |= TriggerSet{1} << static_cast<int>(t);
  return s;
}
std::string_view to_string(Trigger t);  // "errno", "eexist", ...

// The event types a detector's on_event() acts on (1 << EventType): the
// engine calls it for those only (Detector::events()).
using EventSet = uint32_t;
static_assert(kEventTypeCount < 32);
inline constexpr EventSet kEveryEvent = ~EventSet{0};
constexpr EventSet events_of(std::initializer_list<EventType> ts) {
  EventSet s = 0;
  for (auto t : ts) s |= EventSet{1} << static_cast<int>(t);
  return s;
}

struct StateSize {
  size_t entries = 0;  // tracked objects (requests, inodes, buffers, ...)
  size_t capacity = 0; // configured cap
  size_t evicted = 0;  // total evicted because of cap or age
  size_t capped = 0;   // of those, dropped because a cap was reached
};

struct DetectorConfig {
  uint64_t stall_threshold_ns = 30'000'000'000ull;  // --stall-threshold
  uint64_t max_age_ns = 120'000'000'000ull;         // evict idle state older than this
  // Caps on what a detector tracks (docs/hardening.md, "Limits of the
  // detectors and sinks"): beyond one, the oldest is dropped and counted
  // (StateSize::capped, said in the summary).
  size_t max_entries = 65536;                       // small entries, per detector
  size_t max_requests = 4096;  // DIO requests, files, ordered extents followed at once, per detector
  KernelVersion kernel;                             // exposure of the running/recorded kernel
  // How long after a DIO write returned its ordered extents may still be
  // completed by btrfs workers before dio-short-write judges the write.
  uint64_t settle_ns = 5'000'000'000ull;
  // send-vs-relocation: a send failing up to this long after it last
  // overlapped a relocation is still attributed to the overlap; a relocation
  // event without an end (btrfs_reclaim_block_group) counts as in flight this long.
  uint64_t overlap_window_ns = 10'000'000'000ull;
  // Repeated hazards of one kind on one object (inode, process, fs) are
  // reported at most once per this interval; the next finding says how many
  // were suppressed.
  uint64_t repeat_ns = 60'000'000'000ull;
  size_t max_evidence = 32;                          // evidence events per finding
  // dio-buffered-fallback: the trace's hooks report every O_DIRECT write that
  // fell back to buffered I/O as a dio_fallback event (set from the hooks that
  // attached: cli::apply_hooks); otherwise fallbacks are inferred from O_DIRECT
  // reads and buffered ordered extents.
  bool fallback_events = false;
  // dio-buffered-fallback gathers one process's fallbacks on one file for this
  // long after the first, then reports them once.
  uint64_t gather_ns = 5'000'000'000ull;
};

class Detector {
 public:
  virtual ~Detector() = default;
  virtual std::string_view id() const = 0;
  virtual void on_event(const Event& ev, Findings& out) = 0;
  virtual void on_time(uint64_t /*now_ns*/, Findings& /*out*/) {}
  // End of the trace (replay) or of the session (live): report what can still
  // be decided. Default: one last on_time.
  virtual void on_finish(uint64_t now_ns, Findings& out) { on_time(now_ns, out); }
  // The kernel lost `count` records (ring buffer full) by now_ns: what was
  // open then may never see its end. Default: nothing.
  virtual void on_lost(uint64_t /*now_ns*/, uint64_t /*count*/) {}
  virtual StateSize state_size() const = 0;
  // What this detector needs the kernel to emit records for (lazy emission),
  // stated next to its rules. Records of its other inputs must be ones the
  // programs always make, or arrive because a listed trigger made the inode hot.
  virtual TriggerSet triggers() const = 0;
  // The event types on_event() acts on; the engine gives it no other (an
  // event of another type must change nothing: no finding, no state).
  // Stated next to on_event(). Default: every type.
  virtual EventSet events() const { return kEveryEvent; }
};

// Sets what the trace's hooks let the detectors see (DetectorConfig::
// fallback_events) from the hooks that attached: live, the session's; replay,
// the trace header's (none listed: nothing assumed).
void apply_hooks(DetectorConfig& cfg, const std::function<bool(std::string_view hook)>& attached);

// Ids of the built-in detectors, in report order.
std::vector<std::string_view> detector_ids();

// All built-in detectors, configured.
std::vector<std::unique_ptr<Detector>> make_detectors(const DetectorConfig& cfg);

// The union of the built-in detectors' triggers (LiveOptions::triggers).
TriggerSet detector_triggers(const DetectorConfig& cfg);

}  // namespace bdt
