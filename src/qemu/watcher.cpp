// --qemu: notice QEMU processes that start or exit while tracing (polls /proc),
// in the foreground or on a scan thread of its own (qemu.h, Watcher).
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "qemu/qemu.h"

namespace bdt::qemu {

namespace {
std::set<std::pair<uint64_t, uint64_t>> traced_set(const QemuProcess& p) {
  std::set<std::pair<uint64_t, uint64_t>> s;
  for (const auto& i : p.images)
    if (i.on_btrfs) s.insert({i.dev, i.ino});
  return s;
}
}  // namespace

// What the scan thread and the Watcher share (the thread keeps it alive).
struct Watcher::Background {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false, done = false;
  std::optional<std::vector<QemuProcess>> ready;  // the newest finished scan, not yet taken
  uint64_t slowest_ms = 0;
  std::atomic<bool> cancel{false};
  std::thread thread;

  void run(DiscoverOptions opts, uint64_t interval_ms) {
    pthread_setname_np(pthread_self(), "bdt-qemu-scan");
    opts.cancel = &cancel;
    std::unique_lock lk(mu);
    while (!stop) {
      lk.unlock();
      const auto t0 = std::chrono::steady_clock::now();
      auto found = discover(opts);
      const auto took = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
      lk.lock();
      if (stop) break;
      ready = std::move(found);
      slowest_ms = std::max(slowest_ms, took);
      cv.wait_for(lk, std::chrono::milliseconds(std::max(interval_ms, 2 * took)), [this] { return stop; });
    }
    done = true;
    cv.notify_all();
  }
};

Watcher::Watcher(DiscoverOptions opts, uint64_t interval_ms, bool background)
    : opts_(std::move(opts)), interval_ms_(interval_ms) {
  if (background) bg_ = std::make_shared<Background>();
}

Watcher::~Watcher() {
  if (!bg_ || !bg_->thread.joinable()) return;
  std::unique_lock lk(bg_->mu);
  bg_->stop = true;
  bg_->cancel = true;
  bg_->cv.notify_all();
  // A scan stuck on /proc of a process in uninterruptible sleep must not hold
  // up the tracer's exit: the thread keeps its own reference to the state.
  const bool done = bg_->cv.wait_for(lk, std::chrono::milliseconds(500), [this] { return bg_->done; });
  lk.unlock();
  if (done)
    bg_->thread.join();
  else
    bg_->thread.detach();
}

WatchDiff Watcher::poll(uint64_t now_ms) {
  if (bg_) {
    if (!bg_->thread.joinable())
      bg_->thread = std::thread([bg = bg_, opts = opts_, ms = interval_ms_] { bg->run(opts, ms); });
    std::optional<std::vector<QemuProcess>> found;
    {
      std::lock_guard lk(bg_->mu);
      found.swap(bg_->ready);
    }
    return found ? apply(std::move(*found)) : WatchDiff{};
  }
  if (last_ms_ && now_ms < *last_ms_ + interval_ms_) return {};
  last_ms_ = now_ms;
  return scan();
}

WatchDiff Watcher::scan() { return apply(discover(opts_)); }

uint64_t Watcher::slowest_scan_ms() const {
  if (!bg_) return 0;
  std::lock_guard lk(bg_->mu);
  return bg_->slowest_ms;
}

WatchDiff Watcher::apply(std::vector<QemuProcess> found) {
  ++scans_;
  WatchDiff d;
  std::map<uint32_t, QemuProcess> next;
  for (auto& p : found) next.emplace(p.pid, std::move(p));
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
