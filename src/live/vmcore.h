// The flight recorder read out of an ELF memory dump of a crashed (or
// stopped) kernel: QEMU/libvirt `dump-guest-memory` (paging off) or kdump's
// vmcore saved as ELF (docs/flight-recorder.md, "After a kernel crash").
// No debug info, no symbols and no page tables are needed: the recorder's
// memory describes itself (bpf/events.h). One pass over the physical memory
// finds
//  - the meta (struct bdt_rec_meta) by its magic, accepted when its check,
//    version, raw ABI and slot size are right;
//  - every slot (struct bdt_rec_slot, BDT_REC_SLOT_SIZE bytes at an address
//    that is a multiple of it, never straddling a page) by its magic, kept
//    when its check is right, grouped by recorder instance id, CPU and
//    sequence number; the map's pages may be scattered anywhere.
// Each instance's slots are then windowed and merged like `dump --pin-dir`'s.
// Pure: works on the dump's bytes in memory (the caller maps the file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "replay/trace_reader.h"
#include "events.h"
#include "live/recorder_scan.h"

namespace bdt::live {

struct VmcoreRecorder {
  uint64_t instance = 0;
  bool has_meta = false;           // its meta was found (else: no clock offset, no window)
  bdt_rec_meta meta{};
  TraceHeader header;              // from the meta (hostname unknown)
  SlotScan scan;                   // torn / damaged: slots carrying this instance id
};

struct VmcoreScan {
  uint64_t bytes = 0;              // physical memory in the dump
  size_t metas = 0;                // distinct valid recorder metas
  size_t other_build_metas = 0;    // metas of another meta version / raw ABI / slot size
  size_t damaged_metas = 0;        // a meta magic with a failing check (a copy cut by a page boundary, a bit flip)
  size_t duplicate_metas = 0;      // valid metas differing from another of the same instance
  uint64_t unattributed = 0;       // slot magics whose slot is torn or damaged and names no known instance
  std::vector<VmcoreRecorder> recorders;  // per instance: with a meta first, then most records
  std::string problem;             // why nothing was read ("" when recorders is not empty)
};

// Scans the dump (the whole ELF file's bytes). Throws InputError for a file
// that is not an x86-64 ELF core with memory segments.
VmcoreScan scan_vmcore(const uint8_t* data, size_t size);

}  // namespace bdt::live
