// The in-kernel flight recorder (docs/flight-recorder.md): its meta record,
// pinning it (and the programs' links) in bpffs with `trace --pin-dir`, and
// reading / releasing a pinned one (`dump --pin-dir [--release]`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bdt/errors.h"
#include "bdt/trace_header.h"
#include "live/recorder_scan.h"

namespace bdt::live {

class Session;

// Bytes one recorder slot takes (per event, per CPU).
size_t recorder_slot_bytes();
// Largest --recorder-events accepted.
inline constexpr uint32_t kMaxRecorderEvents = 1u << 20;

// A new recorder's instance id (never 0), written into every slot and the
// meta: from this boot's id, the pid, the time and random bytes, so recorders
// of other runs or boots found in the same memory are told apart.
uint64_t new_recorder_instance();

// Before loading: DIR must be on bpffs (created if missing, its parent must be
// on bpffs; under /sys/fs/bpf, bpffs is mounted there when missing) and must
// not hold a recorder already. Throws InputError. Returns what was mounted
// ("" = nothing) for the user to be told.
std::string check_pin_dir(const std::string& dir);

// After attaching: writes the meta record; with a pin dir, pins the recorder
// maps and the links (the session's pins). Throws KernelError.
void setup_recorder(Session& s, const std::string& pin_dir);

struct PinnedDump {
  bdt_rec_meta meta{};
  TraceHeader header;
  SlotScan scan;
  std::vector<uint64_t> recorded_per_cpu;  // rec_head: records written per CPU
  std::vector<uint64_t> lost_per_cpu;      // ring-buffer losses (e.g. after the tracer died)
  std::vector<std::string> link_pins;      // links still pinned (programs attached)
  bool tracer_alive = false;
};

// Reads a pinned recorder. Throws InputError (no recorder, ABI / meta mismatch,
// another boot) or KernelError (permission).
PinnedDump read_pinned(const std::string& dir);

// Removes the pins (links first: their programs detach once nothing else holds
// them) and DIR itself when it is left empty. Returns what it removed, one line
// each. Throws InputError when DIR holds no recorder.
std::vector<std::string> release_pinned(const std::string& dir);

// A pinned recorder as `status` lists it: read from its pins without the
// checks a dump needs (another build's or another boot's recorder is listed
// too, with what is wrong with it).
struct PinnedSummary {
  std::string dir;
  bool meta_ok = false;      // rec_meta readable and described by this build
  std::string problem;       // why not ("" when meta_ok)
  bdt_rec_meta meta{};       // valid when meta_ok
  bool tracer_alive = false; // meta.tracer_pid still runs (and is this tool)
  size_t link_pins = 0;      // > 0: programs still attached (recording)
  uint64_t recorded = 0;     // events written, all CPUs
  uint64_t lost = 0;         // ring-buffer losses, all CPUs
  uint64_t kernel_bytes = 0; // the recorder map's memory
};
// DIR's recorder (nullopt when DIR holds none). Throws KernelError without permission.
std::optional<PinnedSummary> summarize_pinned(const std::string& dir);
// Every directory under ROOT (a bpffs mount, searched 4 levels deep) that
// holds a recorder, sorted by path. Throws KernelError without permission.
std::vector<PinnedSummary> list_pinned(const std::string& root = "/sys/fs/bpf");

}  // namespace bdt::live
