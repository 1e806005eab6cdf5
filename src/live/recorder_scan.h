// Reading the in-kernel flight recorder's slots (bpf/events.h: struct
// bdt_rec_slot, docs/flight-recorder.md): drop empty and torn slots, keep each
// CPU's records in sequence order, merge the CPUs by time; and checking the
// shape of each pinned map before it is read.
// No libbpf, no syscalls (bdt_live_pure), so the unit tests exercise exactly
// the code `dump --pin-dir` runs over the mmap'ed map and the maps' info.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bdt/trace_header.h"
#include "replay/trace_reader.h"
#include "events.h"

namespace bdt::live {

struct RecordedRaw {
  uint32_t cpu = 0;
  uint64_t seq = 0;  // per-CPU sequence number (1 = the CPU's first record)
  bdt_raw_event ev{};
};

struct SlotScan {
  std::vector<RecordedRaw> records;      // merged: ts_ns, then cpu, then seq
  std::vector<uint64_t> kept_per_cpu;    // valid slots per CPU
  std::vector<uint64_t> newest_per_cpu;  // highest valid seq per CPU (0: none)
  uint64_t empty = 0;  // never written
  uint64_t torn = 0;   // being written while read, or abandoned half-way
};

// One slot, read the way the writer's order makes safe: seq first, the record,
// seq_end last (the writer stores seq_end, the record, then seq). The slot is
// valid when both match, are non-zero, and the sequence number belongs in this
// position of the ring. Returns false (torn) / false with *empty set.
bool read_slot(const uint8_t* p, uint32_t pos, uint32_t slots_per_cpu, RecordedRaw& out,
               bool* empty);

// base: ncpus * slots_per_cpu slots of `stride` bytes (CPU c owns slots
// [c * slots_per_cpu, (c + 1) * slots_per_cpu)).
SlotScan scan_slots(const uint8_t* base, size_t stride, uint32_t ncpus, uint32_t slots_per_cpu);

// The trace header a recorder's meta describes: kernel release, clock offset,
// hooks ("name\tmechanism\t0|1" lines); the hostname is left to the caller.
TraceHeader header_from_meta(const bdt_rec_meta& m);

// A BPF map's shape, as bpf_obj_get_info_by_fd reports it (struct bpf_map_info).
struct MapShape {
  uint32_t type = 0;  // enum bpf_map_type
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
  uint32_t flags = 0;  // map_flags
};

// The shapes this build pins under --pin-dir (bpf/emission.bpf.h): rec_meta
// (array of struct bdt_rec_meta), recorder (mmapable array of struct
// bdt_rec_slot; its entries are checked against the meta), rec_head and lost
// (per-CPU arrays of u64). nullptr for any other name (stacks is never read).
const MapShape* pinned_map_shape(const std::string& name);

// Empty when FOUND (the map pinned as NAME) has WANT's type, key size and
// value size, WANT's flags, and at least WANT's entries; otherwise one
// sentence saying what the map is and what this build expects. TYPE_NAME
// names a map type (libbpf's; nullptr or a null result: "type N").
std::string map_shape_problem(const std::string& name, const MapShape& found, const MapShape& want,
                              const char* (*type_name)(uint32_t) = nullptr);

// CLOCK_MONOTONIC ns (the records' ts_ns) -> ns since the epoch.
using bdt::wall_ns;

}  // namespace bdt::live
