// MountWatch (mount_watch.h): poll() on /proc/self/mountinfo, the btrfs
// filesystems of the table, a line for each one that went away.
#include "live/mount_watch.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

namespace bdt::live {

namespace {

// The filesystem's UUID: btrfs lists each mounted filesystem's devices under
// /sys/fs/btrfs/UUID/devices/NAME (NAME as in /dev/NAME).
std::string uuid_of_device(const std::string& source) {
  namespace fs = std::filesystem;
  const auto slash = source.rfind('/');
  const std::string name = slash == std::string::npos ? source : source.substr(slash + 1);
  if (name.empty()) return {};
  std::error_code ec;
  for (const auto& d : fs::directory_iterator("/sys/fs/btrfs", ec)) {
    if (fs::exists(d.path() / "devices" / name, ec)) return d.path().filename().string();
  }
  return {};
}

}  // namespace

MountWatch::MountWatch(const std::string& mount_path) : mount_path_(mount_path) {
  fd_ = ::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  const auto mounts = read_mounts();
  learn(btrfs_mounted(mounts));
  if (mount_path.empty()) return;
  std::string real;
  if (char* r = ::realpath(mount_path.c_str(), nullptr)) {
    real = r;
    std::free(r);
  }
  if (auto m = find_mount(mounts, real); m && m->fstype == "btrfs")
    watched_ = (static_cast<uint64_t>(m->major) << 20) | m->minor;
}

MountWatch::~MountWatch() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<MountEntry> MountWatch::read_mounts() {
  if (fd_ < 0 || ::lseek(fd_, 0, SEEK_SET) != 0) return {};
  std::string text;
  char buf[16384];
  for (ssize_t n; (n = ::read(fd_, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  return parse_mountinfo(text);
}

void MountWatch::learn(const std::map<uint64_t, BtrfsMounted>& now) {
  for (const auto& [dev, m] : now) {
    auto it = known_.find(dev);
    if (it == known_.end())
      known_.emplace(dev, Known{m, uuid_of_device(m.source)});
    else
      it->second.m = m;  // mount points may have changed
  }
}

std::vector<std::string> MountWatch::check() {
  std::vector<std::string> lines;
  if (fd_ < 0) return lines;
  pollfd p{fd_, POLLPRI, 0};
  if (::poll(&p, 1, 0) <= 0 || !(p.revents & (POLLPRI | POLLERR))) return lines;
  const auto now = btrfs_mounted(read_mounts());  // poll() has taken the change
  for (auto it = known_.begin(); it != known_.end();) {
    if (now.count(it->first)) {
      ++it;
      continue;
    }
    const auto& k = it->second;
    std::string what = k.uuid.empty() ? fmt::format("btrfs filesystem on {}", k.m.source)
                                      : fmt::format("btrfs filesystem {} ({})", k.uuid, k.m.source);
    std::string where = k.m.mount_points.empty() ? std::string() : k.m.mount_points.front();
    for (size_t i = 1; i < k.m.mount_points.size(); ++i) where += ", " + k.m.mount_points[i];
    if (watched_ && it->first != watched_) {  // --mount: the others are not traced
      it = known_.erase(it);
      continue;
    }
    if (it->first == watched_)
      lines.push_back(fmt::format("{} was unmounted from {}: --mount {} named it, so this trace will see "
                                  "nothing more (start it again once the filesystem is mounted)",
                                  what, where, mount_path_));
    else
      lines.push_back(fmt::format("{} was unmounted from {}; tracing goes on for the other filesystems", what,
                                  where));
    it = known_.erase(it);
  }
  learn(now);
  return lines;
}

}  // namespace bdt::live
