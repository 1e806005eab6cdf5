// The kernel exposure table (src/detectors/exposure.h). Sources: the fixing
// commits named in each row, btrfs-progs' Documentation/Kernel-by-version.rst
// and fstests; where they disagree or a version is unverified the row's note
// says so.
#include "detectors/exposure.h"

#include <fmt/format.h>

namespace bdt {

namespace {
constexpr BugExposure kTable[] = {
    {"em-merge-race", "em-merge-eexist",
     "two DIO requests inside one extent race on extent-map insertion; the merge path overflows "
     "and pread/pwrite return EEXIST",
     {}, "8dff9c853410 (Btrfs: deal with duplciates during extent_map insertion in btrfs_get_extent)",
     {4, 10},
     "8e2bd3b7fac9 (Btrfs: deal with existing encompassing extent map in btrfs_get_extent())",
     "first affected release not verified; the logic now lives in btrfs_add_extent_mapping()"},
    {"stale-eb-reuse", "stale-eb-reuse",
     "find_extent_buffer() re-references a STALE extent buffer that free_extent_buffer() is "
     "releasing; the release hits BUG_ON(extent_buffer_under_io(eb))",
     {}, "",
     {4, 1},
     "062c19e9dd69 (Btrfs: fix race when reusing stale extent buffers that leads to BUG_ON)",
     "fixed release ~4.1 is unverified; extent buffers moved to folios (6.8) and to an xarray (6.16)"},
    {"dio-short-write", "dio-partial-hole",
     "a DIO write whose buffer faults part-way is continued; the first ordered extent is marked "
     "IOERR and dropped, so acknowledged bytes read back as zeros",
     {5, 16}, "51bd9563b678 (btrfs: fix deadlock due to page faults during direct IO reads and writes)",
     {6, 4}, "b73a6fd1b1ef (btrfs: split partial dio bios before submit)",
     "v1-v3 of the 2023 report's patch were never merged; the fix splits the ordered extent"},
    {"dio-short-write", "dio-self-mmap-deadlock",
     "a DIO write from an mmap of the same file range waits, in its page fault, on the ordered "
     "extent it holds itself (deadlock)",
     {}, "",
     {6, 4}, "b73a6fd1b1ef (btrfs: split partial dio bios before submit)",
     "before 5.16 the plain form deadlocked (fixed by 51bd9563b678); 5.16-6.3 the partially cached, "
     "overlapping form (the 2023 DIO short-write bug, fstests generic/729)"},
    {"send-vs-relocation", "send-reloc-bug",
     "send and relocation run concurrently: send fails (transid verify failed, missing backref), "
     "hits BUG_ON or emits a wrong stream",
     {}, "", {5, 3},
     "9e967495e0e0 (Btrfs: prevent send failures and crashes due to concurrent relocation)",
     "5.3-5.16 refuse the second operation with -EAGAIN"},
    {"send-vs-relocation", "send-reloc-concurrent",
     "send and relocation are allowed to run concurrently again, by design",
     {5, 17}, "d96b34248c2f (send and relocation run concurrently again)", {}, "",
     "also in 5.16.15; later follow-up fixes exist"},
    {"dio-unstable-pages", "dio-csum-unstable",
     "an O_DIRECT write to a file with data checksums from a buffer modified in flight stores "
     "checksums over other bytes than the ones written: later reads fail with EIO",
     {}, "", {6, 15},
     "968f19c5b1b7 (btrfs: always fallback to buffered write if the inode requires checksum)",
     "sources disagree on 6.14 vs 6.15; in 6.12.y since 6.12.77 (Debian's 6.12.118 changelog; "
     "seen in the VM tier: the writes never reach iomap_dio_rw_begin); a 6.6.y backport is "
     "unverified: trust the observation (did the write reach iomap_dio_rw_begin?) over the version",
     {{6, 12, 77}}},
    {"dio-buffered-fallback", "dio-csum-fallback",
     "O_DIRECT writes to files with data checksums are carried out as buffered writes",
     {6, 15},
     "968f19c5b1b7 (btrfs: always fallback to buffered write if the inode requires checksum)", {},
     "", "behaviour, not a bug; nocow (chattr +C, NODATASUM) files still do true O_DIRECT; in "
     "6.12.y since 6.12.77 (seen on 6.12.118); 6.12.75 also falls back for data profiles with "
     "duplication (DUP, RAID1*)",
     {}, {{6, 12, 77}}},
};

bool before(const KernelVersion& k, KVer v) {
  return k.major < v.major || (k.major == v.major && k.minor < v.minor);
}

// Inside a stable series listed in `s`: whether k has the backport; otherwise `dflt`.
bool with_backports(const KStable (&s)[2], const KernelVersion& k, bool dflt) {
  for (auto& b : s)
    if (b.set() && k.major == b.major && k.minor == b.minor) return k.patch >= b.patch;
  return dflt;
}

std::string stable_text(const KStable (&s)[2]) {
  std::string t;
  for (auto& b : s)
    if (b.set()) t += fmt::format(", {}.{}.y from {}.{}.{}", b.major, b.minor, b.major, b.minor, b.patch);
  return t;
}
}  // namespace

std::span<const BugExposure> exposure_table() { return kTable; }

const BugExposure* exposure_row(std::string_view key) {
  for (const auto& r : kTable)
    if (r.key == key) return &r;
  return nullptr;
}

Exposed exposed(const BugExposure& row, const KernelVersion& k) {
  if (!k.known()) return Exposed::Unknown;
  bool introduced = with_backports(row.introduced_stable, k,
                                   !row.introduced.set() || !before(k, row.introduced));
  bool fixed = with_backports(row.fixed_stable, k, row.fixed.set() && !before(k, row.fixed));
  return introduced && !fixed ? Exposed::Yes : Exposed::No;
}

static std::string ver(KVer v) { return fmt::format("{}.{}", v.major, v.minor); }

std::string exposure_text(const BugExposure& row, const KernelVersion& k) {
  std::string range;
  if (row.introduced.set() && row.fixed.set())
    range = fmt::format("affected {} to before {}", ver(row.introduced), ver(row.fixed));
  else if (row.fixed.set())
    range = fmt::format("fixed in {}", ver(row.fixed));
  else if (row.introduced.set())
    range = fmt::format("since {}", ver(row.introduced));
  range += stable_text(row.fixed.set() ? row.fixed_stable : row.introduced_stable);
  std::string fix = row.fixed_by.empty() ? std::string(row.introduced_by) : std::string(row.fixed_by);
  if (!k.known())
    return fmt::format("table: kernel version unknown, assuming exposed ({}; {})", range, fix);
  const char* verdict = exposed(row, k) == Exposed::Yes ? "exposed" : "not exposed";
  return fmt::format("table: kernel {} {} ({}; {})",
                     k.release.empty() ? fmt::format("{}.{}.{}", k.major, k.minor, k.patch)
                                       : k.release,
                     verdict, range, fix);
}

SendRelocRegime send_reloc_regime(const KernelVersion& k) {
  if (!k.known()) return SendRelocRegime::Unknown;
  if (before(k, {5, 3})) return SendRelocRegime::Bug;
  if (k.major == 5 && k.minor == 16 && k.patch >= 15) return SendRelocRegime::Concurrent;
  if (before(k, {5, 17})) return SendRelocRegime::Refused;
  return SendRelocRegime::Concurrent;
}

std::string_view to_string(SendRelocRegime r) {
  switch (r) {
    case SendRelocRegime::Bug: return "concurrent and unsafe (<= 5.2)";
    case SendRelocRegime::Refused: return "refused with -EAGAIN (5.3 - 5.16)";
    case SendRelocRegime::Concurrent: return "concurrent by design (>= 5.17)";
    default: return "unknown";
  }
}

std::vector<std::string> exposure_lines(const KernelVersion& k) {
  std::vector<std::string> out;
  for (const auto& r : kTable) {
    if (r.detector == "dio-buffered-fallback" || r.key == "send-reloc-concurrent") {
      auto e = exposed(r, k);
      out.push_back(fmt::format("{}: {}: {} ({})", r.detector, r.key,
                                e == Exposed::Yes ? "this kernel behaves so"
                                : e == Exposed::No ? "not on this kernel"
                                                   : "unknown kernel",
                                exposure_text(r, k)));
      continue;
    }
    auto e = exposed(r, k);
    out.push_back(fmt::format("{}: {}: {} ({})", r.detector, r.key,
                              e == Exposed::Yes ? "exposed"
                              : e == Exposed::No ? "not exposed"
                                                 : "unknown",
                              exposure_text(r, k)));
  }
  return out;
}

}  // namespace bdt
