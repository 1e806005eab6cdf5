// The flight recorder read out of an x86-64 ELF memory dump of a crashed (or
// stopped) kernel: QEMU/libvirt `dump-guest-memory` (paging off) or kdump's
// vmcore saved as ELF (docs/flight-recorder.md, "After a kernel crash").
// No debug info and no symbols are needed:
//  - the recorder's meta (struct bdt_rec_meta) is found by its magic;
//  - the recorder map is found by its struct bpf_map header (an ARRAY map of
//    4-byte keys, sizeof(bdt_rec_slot)-byte values and ncpus x slots_per_cpu
//    entries, named "recorder"), which the kernel puts right before the
//    page-aligned values of a BPF_F_MMAPABLE array, in the first page of the
//    same vmalloc area;
//  - that page's virtual address is found by walking the kernel's page tables
//    (the root: CR3 from QEMU's per-CPU note, or init_top_pgt from VMCOREINFO)
//    for a 4 KiB mapping of it, and the values' pages are the following
//    virtual pages, translated one by one (physically they are scattered);
//  - the slots are then read by scan_slots, like `dump --pin-dir` does.
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
  bdt_rec_meta meta{};
  TraceHeader header;              // from the meta (hostname unknown)
  uint64_t map_vaddr = 0;          // kernel virtual address of the first slot
  SlotScan scan;
  uint64_t pages = 0;              // pages the slots take
  uint64_t pages_missing = 0;      // not mapped or not in the dump (their slots read as empty)
};

struct VmcoreScan {
  std::string root_source;         // "QEMU CPU note (cr3)", "VMCOREINFO init_top_pgt", or ""
  int paging_levels = 0;           // 4 or 5
  uint64_t bytes = 0;              // physical memory in the dump
  size_t metas = 0;                // distinct recorder metas found
  size_t map_headers = 0;          // bpf_map headers that fit a meta
  size_t duplicate_metas = 0;      // differing metas that describe an already found recorder
  std::vector<VmcoreRecorder> recorders;  // the best-read recorder per distinct meta, most records first
  std::string problem;             // why nothing was read ("" when recorders is not empty)
};

// Scans the dump (the whole ELF file's bytes). Throws InputError for a file
// that is not an x86-64 ELF core with memory segments.
VmcoreScan scan_vmcore(const uint8_t* data, size_t size);

}  // namespace bdt::live
