// The pseudo-filesystems the tracer needs, mounted where a user expects them
// when they are missing (as bpftool does for bpffs): tracefs at
// /sys/kernel/tracing, without which the classic syscall tracepoints cannot
// be resolved (their ids live there), and bpffs at /sys/fs/bpf for --pin-dir.
#pragma once

#include <string>

namespace bdt::loader {

// Where tracefs is ("" = nowhere) and how: "mounted" (it was), "mounted at
// /sys/kernel/tracing by btrfs-dio-trace", or why it is not.
struct Tracefs {
  std::string path;
  std::string how;
};
Tracefs find_or_mount_tracefs();

// For a --pin-dir under /sys/fs/bpf: mounts bpffs at /sys/fs/bpf when that is
// not bpffs yet. Returns what it did ("" = nothing to do) or why it could not
// ("cannot mount ...: reason"); the caller's own checks then fail with that.
std::string mount_bpffs_for(const std::string& pin_dir);

}  // namespace bdt::loader
