// The fuzz targets (docs/hardening.md): one function per parser of input the
// tool does not control. Each takes any bytes and must return 0 without a
// crash, a sanitizer report, a hang or unbounded memory; an input it rejects
// is an InputError, which the target catches. tests/fuzz/fuzz_main.cpp turns
// one of them into a libFuzzer binary (cmake -DBDT_FUZZ=ON); the unit tests
// (tests/unit/fuzz_regressions_test.cpp) replay every seed and every kept
// crash through all of them in an ordinary build.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace bdt::fuzz {

using Target = int (*)(const uint8_t* data, size_t size);

// The bytes as a JSON-lines trace file, read to the end (also with --salvage).
int jsonl(const uint8_t* data, size_t size);
// The bytes as a binary record file: as they are when they start with the
// record magic; otherwise first made checksum-correct (magic, version 1,
// header CRC, every record's CRC, over the same layout), so that the decoders
// behind the checksums are reached.
int record(const uint8_t* data, size_t size);
// The bytes as the pinned flight recorder's slots (first 2 bytes: CPUs and
// slots per CPU), scanned and decoded as `dump --pin-dir` does.
int recorder_scan(const uint8_t* data, size_t size);
// The bytes as raw BPF records (struct bdt_raw_event), decoded and written as
// JSON (which must read back) and text; each decoded also over reused events
// (the previous record's, one of every type with every field set), which must
// equal its fresh decode (the live window reuses its event slots).
int raw_event(const uint8_t* data, size_t size);
// The bytes as a QEMU command line (arguments separated by NUL).
int qemu_cmdline(const uint8_t* data, size_t size);
// The bytes as the /proc files of a QEMU process (cmdline, comm, stat, exe,
// cwd, an open file and its fdinfo, a thread's comm), /proc/self/mountinfo and
// /proc/kallsyms: sections separated by 0xff.
int procfs(const uint8_t* data, size_t size);
// The bytes as an HTTP request to the metrics endpoint, and as --metrics-addr.
int http(const uint8_t* data, size_t size);

struct Named {
  std::string_view name;
  Target fn;
};
inline constexpr Named kTargets[] = {
    {"jsonl", jsonl},         {"record", record},         {"recorder_scan", recorder_scan},
    {"raw_event", raw_event}, {"qemu_cmdline", qemu_cmdline}, {"procfs", procfs},
    {"http", http},
};

}  // namespace bdt::fuzz
