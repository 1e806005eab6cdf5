// Mounting tracefs and bpffs where they are expected (mounts.h).
#include "loader/mounts.h"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

namespace bdt::loader {

namespace {
bool exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}
bool fs_is(const char* path, unsigned long magic) {
  struct statfs sfs {};
  return statfs(path, &sfs) == 0 && static_cast<unsigned long>(sfs.f_type) == magic;
}
}  // namespace

Tracefs find_or_mount_tracefs() {
  for (const char* p : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"})
    if (exists(std::string(p) + "/events")) return {p, "mounted"};
  const char* where = "/sys/kernel/tracing";
  if (!exists(where))
    return {"", fmt::format("not mounted, and {} does not exist (a kernel without tracing?)", where)};
  if (mount("tracefs", where, "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    return {"", fmt::format("not mounted, and mounting it at {} failed: {}", where, std::strerror(errno))};
  if (!exists(std::string(where) + "/events"))
    return {"", fmt::format("mounted at {}, but it has no events/", where)};
  return {where, fmt::format("mounted at {} by btrfs-dio-trace", where)};
}

std::string mount_bpffs_for(const std::string& pin_dir) {
  const char* where = "/sys/fs/bpf";
  if (pin_dir.rfind(std::string(where) + "/", 0) != 0) return {};
  if (fs_is(where, BPF_FS_MAGIC) || !exists(where)) return {};
  if (mount("bpf", where, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") != 0)
    return fmt::format("cannot mount bpffs at {}: {}", where, std::strerror(errno));
  return fmt::format("mounted bpffs at {} (it was not mounted)", where);
}

}  // namespace bdt::loader
