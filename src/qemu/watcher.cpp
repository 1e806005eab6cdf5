// --qemu: notice QEMU processes that start or exit while tracing (polls /proc).
#include <set>

#include "bdt/qemu.h"

namespace bdt::qemu {

namespace {
std::set<std::pair<uint64_t, uint64_t>> traced_set(const QemuProcess& p) {
  std::set<std::pair<uint64_t, uint64_t>> s;
  for (const auto& i : p.images)
    if (i.on_btrfs) s.insert({i.dev, i.ino});
  return s;
}
}  // namespace

Watcher::Watcher(DiscoverOptions opts, uint64_t interval_ms)
    : opts_(std::move(opts)), interval_ms_(interval_ms) {}

WatchDiff Watcher::poll(uint64_t now_ms) {
  if (last_ms_ && now_ms < *last_ms_ + interval_ms_) return {};
  last_ms_ = now_ms;
  return scan();
}

WatchDiff Watcher::scan() {
  ++scans_;
  WatchDiff d;
  std::map<uint32_t, QemuProcess> next;
  for (auto& p : discover(opts_)) next.emplace(p.pid, std::move(p));
  for (auto& [pid, old] : current_) {
    auto it = next.find(pid);
    // same pid, different start time: the old process exited and the pid was reused
    if (it == next.end() || it->second.start_time != old.start_time) d.removed.push_back(old);
  }
  for (auto& [pid, p] : next) {
    auto it = current_.find(pid);
    if (it == current_.end() || it->second.start_time != p.start_time)
      d.added.push_back(p);
    else if (traced_set(it->second) != traced_set(p) || it->second.vm != p.vm)
      d.changed.push_back(p);
  }
  current_ = std::move(next);
  return d;
}

std::vector<uint32_t> Watcher::pids() const {
  std::vector<uint32_t> out;
  for (const auto& [pid, p] : current_) out.push_back(pid);
  return out;
}

}  // namespace bdt::qemu
