// Kernel exposure: which kernels carry each bug the detectors look for, and the
// commits that introduced and fixed it. Kept as data (src/detectors/exposure.cpp)
// so that doctor, the detectors and the docs say the same thing.
//
// Version numbers are a hint, not proof (stable backports): detectors prefer an
// observation (send returned -EAGAIN, a write reached iomap_dio_rw_begin) and
// every finding's `exposure` string says which of the two it used.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bdt/kernel_version.h"

namespace bdt {

struct KVer {
  int major = 0, minor = 0;  // 0.0: not applicable / unknown
  bool set() const { return major != 0; }
};

// A stable series that got the change as a backport: X.Y.Z and later X.Y.* have it.
struct KStable {
  int major = 0, minor = 0, patch = 0;
  bool set() const { return major != 0; }
};

struct BugExposure {
  std::string_view detector;    // detector id
  std::string_view key;         // row id, e.g. "send-reloc-bug"
  std::string_view what;        // one line: what goes wrong on an exposed kernel
  KVer introduced;              // first affected release (unset: always / unknown)
  std::string_view introduced_by;  // commit that introduced it ("" if unknown)
  KVer fixed;                   // first release with the fix (unset: not fixed)
  std::string_view fixed_by;    // fixing commit "sha title"
  std::string_view note;        // backports, disagreements between sources
  // Stable series that got the fix / the introducing change later than `fixed` /
  // `introduced` (a backport): inside such a series the patch level decides.
  KStable fixed_stable[2] = {};
  KStable introduced_stable[2] = {};
};

std::span<const BugExposure> exposure_table();
const BugExposure* exposure_row(std::string_view key);

enum class Exposed { Unknown, Yes, No };
// Is `k` inside [introduced, fixed), stable backports included? Unknown when k is unknown.
Exposed exposed(const BugExposure& row, const KernelVersion& k);

// "kernel 6.18.4 >= 6.4 (b73a6fd1b1ef ...)": the table entry used, for a
// finding's `exposure` string.
std::string exposure_text(const BugExposure& row, const KernelVersion& k);

// send and relocation on one filesystem, by kernel version.
enum class SendRelocRegime {
  Unknown,
  Bug,         // <= 5.2: they run concurrently and send can fail / crash / emit a wrong stream
  Refused,     // 5.3 - 5.16: the kernel refuses one of them with -EAGAIN
  Concurrent,  // >= 5.17 (and 5.16.15+): concurrent by design
};
SendRelocRegime send_reloc_regime(const KernelVersion& k);
std::string_view to_string(SendRelocRegime r);

// One line per table row for doctor: "em-merge-race: not exposed (fixed in 4.10 by ...)".
std::vector<std::string> exposure_lines(const KernelVersion& k);

}  // namespace bdt
