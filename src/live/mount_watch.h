// Notices btrfs filesystems that are unmounted while a trace runs, so the
// tracer says so in one line and goes on tracing the others (the in-kernel
// --mount filter names a superblock that is gone for good once unmounted).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "live/decode.h"

namespace bdt::live {

class MountWatch {
 public:
  // Reads the mount table once. mount_path: the trace's --mount PATH ("" none),
  // named in the line when its filesystem goes.
  explicit MountWatch(const std::string& mount_path = {});
  ~MountWatch();
  MountWatch(const MountWatch&) = delete;
  MountWatch& operator=(const MountWatch&) = delete;

  // One line per btrfs filesystem no longer mounted anywhere since the last
  // call (with --mount: only for that filesystem). Cheap when the mount table did not change: one poll() that does
  // not wait (the kernel flags /proc/self/mountinfo on every change).
  std::vector<std::string> check();

 private:
  struct Known {
    BtrfsMounted m;
    std::string uuid;  // from /sys/fs/btrfs/UUID/devices/, "" when not found
  };
  std::vector<MountEntry> read_mounts();
  void learn(const std::map<uint64_t, BtrfsMounted>& now);

  int fd_ = -1;
  std::map<uint64_t, Known> known_;
  uint64_t watched_ = 0;  // superblock dev of --mount's filesystem (0: none)
  std::string mount_path_;
};

}  // namespace bdt::live
