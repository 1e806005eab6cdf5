// Decoding raw BPF records (bpf/events.h) into bdt::Event, and the other pure
// parts of the live backend: dev_t conversion, kernel-flag mapping, the
// mountinfo lookup behind --mount. No libbpf, no syscalls (bdt_live_pure), so
// the unit tests exercise exactly the code the live session runs.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bdt/event.h"
#include "events.h"

namespace bdt::live {

// ---- dev_t -------------------------------------------------------------------
// The kernel keeps dev_t as MKDEV(major, minor) = major << 20 | minor; stat(2)
// reports new_encode_dev() of it, which is what glibc's major()/minor() decode.
inline constexpr uint32_t kdev_major(uint64_t kdev) { return static_cast<uint32_t>(kdev >> 20); }
inline constexpr uint32_t kdev_minor(uint64_t kdev) {
  return static_cast<uint32_t>(kdev & ((1u << 20) - 1));
}
inline constexpr uint64_t kdev_make(uint32_t major, uint32_t minor) {
  return (static_cast<uint64_t>(major) << 20) | minor;
}
inline constexpr uint64_t kernel_dev_to_user(uint64_t kdev) {
  const uint64_t major = kdev_major(kdev), minor = kdev_minor(kdev);
  return (minor & 0xff) | (major << 8) | ((minor & ~0xffull) << 12);
}
// Inverse (userspace st_dev -> kernel dev_t), for filters configured from stat().
inline constexpr uint64_t user_dev_to_kernel(uint64_t udev) {
  const uint64_t major = (udev >> 8) & 0xfff, minor = (udev & 0xff) | ((udev >> 12) & 0xfff00);
  return kdev_make(static_cast<uint32_t>(major), static_cast<uint32_t>(minor));
}

// ---- kernel flag words -> canonical bits ---------------------------------------
// BTRFS_ORDERED_* and EXTENT_BUFFER_* are bit numbers in anonymous kernel enums
// whose numbering changed between versions. The live session reads the
// enumerators by name from the running kernel's BTF and builds this map once.
struct FlagMap {
  std::array<uint32_t, 64> canon{};  // kernel bit -> canonical bit (0: unknown)
  uint64_t known = 0;                // kernel bits that have a canonical name
  bool loaded = false;               // at least one enumerator was found

  uint32_t map(uint64_t kflags) const {
    uint32_t out = 0;
    for (uint64_t f = kflags & known; f; f &= f - 1) out |= canon[__builtin_ctzll(f)];
    return out;
  }
  // Offer one enumerator (full kernel name, value = bit number). Names that do
  // not start with prefix or have no canonical counterpart are ignored.
  bool add(std::string_view enumerator, int64_t value, std::string_view prefix,
           std::span<const FlagName> names);
};

struct FlagMaps {
  FlagMap ordered;  // BTRFS_ORDERED_*
  FlagMap eb;       // EXTENT_BUFFER_*
  void offer(std::string_view enumerator, int64_t value);
};
// From the running kernel's enumerators (KernelFacts::enumerators).
FlagMaps flag_maps_from(const std::map<std::string, int64_t>& enumerators);

// ---- raw record -> Event -------------------------------------------------------
// Fills out from r (each payload field from its raw source in bdt/event_fields.h).
// Returns false for a record of unknown type (counted by the
// caller, never delivered). No heap allocation.
bool decode_raw(const bdt_raw_event& r, const FlagMaps& fm, Event& out);

// ---- /proc/self/mountinfo ---------------------------------------------------------
struct MountEntry {
  uint64_t mount_id = 0;
  uint32_t major = 0, minor = 0;  // the superblock's dev (kernel's s_dev)
  std::string root;               // path inside the filesystem
  std::string mount_point;        // unescaped
  std::string fstype;
  std::string source;
};

// Undo mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash).
std::string unescape_mountinfo(std::string_view s);

// Parses one mountinfo line:
// "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
std::optional<MountEntry> parse_mountinfo_line(std::string_view line);

std::vector<MountEntry> parse_mountinfo(std::string_view text);

// The mount a canonical absolute path lives on: by mount id when known (statx
// STATX_MNT_ID), else the longest mount point that is a path prefix (the last
// such entry wins: later mounts shadow earlier ones on the same point).
std::optional<MountEntry> find_mount(const std::vector<MountEntry>& mounts, std::string_view path,
                                     std::optional<uint64_t> mount_id = std::nullopt);

// A mounted btrfs filesystem as the mount table shows it (one entry for all
// its mounts: subvolumes and bind mounts share the superblock's dev).
struct BtrfsMounted {
  uint32_t major = 0, minor = 0;
  std::string source;                     // the device of the first mount ("/dev/sdb1", "/dev/loop3")
  std::vector<std::string> mount_points;  // in table order
};
// The btrfs filesystems of a mount table, by superblock dev (major << 20 | minor).
std::map<uint64_t, BtrfsMounted> btrfs_mounted(const std::vector<MountEntry>& mounts);

}  // namespace bdt::live
