// Reading the in-kernel flight recorder's slots (bpf/events.h: struct
// bdt_rec_slot, docs/flight-recorder.md): drop empty, torn and damaged slots,
// keep each CPU's newest records in sequence order, merge the CPUs by time;
// and checking the shape of each pinned map before it is read.
// Two ways in: the map's slot array in place (`dump --pin-dir`) and slots
// found one by one anywhere in memory (`dump --vmcore`: every slot carries
// its magic, recorder instance, CPU, sequence number and a check).
// No libbpf, no syscalls (bdt_live_pure), so the unit tests exercise exactly
// the code the dumps run over the memory and the maps' info.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bdt/trace_header.h"
#include "replay/trace_reader.h"
#include "events.h"

namespace bdt::live {

static_assert(sizeof(bdt_rec_slot) == BDT_REC_SLOT_SIZE && 4096 % BDT_REC_SLOT_SIZE == 0,
              "a recorder slot must divide a page (it never straddles a page boundary)");

struct RecordedRaw {
  uint32_t cpu = 0;
  uint64_t seq = 0;  // per-CPU sequence number (1 = the CPU's first record)
  bdt_raw_event ev{};
};

struct SlotScan {
  std::vector<RecordedRaw> records;      // merged: ts_ns, then cpu, then seq
  std::vector<uint64_t> kept_per_cpu;    // valid slots per CPU
  std::vector<uint64_t> newest_per_cpu;  // highest valid seq per CPU (0: none)
  uint64_t empty = 0;    // never written
  uint64_t torn = 0;     // being written while read, or abandoned half-way (seq != seq_end)
  uint64_t damaged = 0;  // magic, check, CPU or position wrong (a bit flip, an overwrite)
  uint64_t stale = 0;    // valid, but older than the CPU's newest slots_per_cpu (a leftover)
};

enum class SlotState { Valid, Empty, Torn, Damaged };

// One slot, read the way the writer's order makes safe: seq first, the rest,
// seq_end last (the writer stores seq_end, the rest, then seq). Valid when
// seq == seq_end != 0, the magic is right and the check matches; out gets
// the CPU, seq and record, *instance the slot's recorder instance.
SlotState read_slot(const uint8_t* p, RecordedRaw& out, uint64_t* instance);

// The map in place. base: ncpus * slots_per_cpu slots of `stride` bytes (CPU c
// owns slots [c * slots_per_cpu, (c + 1) * slots_per_cpu)); a valid slot of
// another instance, CPU or ring position counts as damaged.
SlotScan scan_slots(const uint8_t* base, size_t stride, uint32_t ncpus, uint32_t slots_per_cpu,
                    uint64_t instance);

// Valid slots of one instance found anywhere: the same sequence number seen
// twice is kept once; per CPU only the newest slots_per_cpu (0: unknown, all
// kept); merged by time. cpus: ncpus of the meta (grown to fit the records).
SlotScan collect_slots(std::vector<RecordedRaw> found, uint32_t ncpus, uint32_t slots_per_cpu);

// bdt_rec_meta.check: bdt_rec_mix over the meta's words with check zero.
uint64_t meta_check(const bdt_rec_meta& m);

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
