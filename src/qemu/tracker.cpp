// --qemu as the CLI drives it: watcher + attributor + statistics.
#include <algorithm>

#include "qemu/qemu.h"

namespace bdt::qemu {

namespace {
Tracker::Options checked(Tracker::Options o) {
  for (uint32_t pid : o.discover.only_pids) inspect(pid, o.discover);  // throws InputError
  return o;
}
}  // namespace

Tracker::Tracker(Options o)
    : watcher_(checked(o).discover, o.poll_ms, o.background), stats_(o.max_inflight) {}

WatchDiff Tracker::poll(uint64_t now_ms) {
  WatchDiff d = watcher_.poll(now_ms);
  // Last harvest of exiting VMs while their labels still exist; before a
  // VM's image set changes, so that earlier samples keep the labels their
  // events got.
  if (!d.removed.empty() || !d.changed.empty()) harvest_latency();
  attr_.update(d);
  for (const auto& p : d.removed)
    std::erase_if(hist_seen_, [&](const auto& kv) { return kv.first.pid == p.pid; });
  return d;
}

void Tracker::set_latency_source(std::function<LatencyHists()> src) {
  latency_src_ = std::move(src);
  stats_.set_kernel_counts(static_cast<bool>(latency_src_));
}

void Tracker::harvest_latency() {
  if (latency_src_) ingest_latency(latency_src_());
}

void Tracker::ingest_latency(const LatencyHists& h) {
  hist_overflow_ = h.overflow;
  hist_capacity_ = h.capacity;
  hist_used_ = h.hists.size();
  std::vector<uint64_t> delta;
  for (const auto& k : h.hists) {
    HistSeen& seen = hist_seen_[HistKey{k.pid, k.write, k.buffered, k.dev, k.ino}];
    // A key deleted and created again in the kernel starts from zero.
    bool reset = seen.buckets.size() != k.buckets.size();
    for (size_t i = 0; !reset && i < k.buckets.size(); ++i) reset = k.buckets[i] < seen.buckets[i];
    reset = reset || k.sum_ns < seen.sum_ns || k.requests < seen.requests || k.bytes < seen.bytes ||
            k.errors < seen.errors || k.again < seen.again || k.short_writes < seen.short_writes;
    if (reset) seen = HistSeen{std::vector<uint64_t>(k.buckets.size(), 0)};
    delta.assign(k.buckets.size(), 0);
    uint64_t n = 0;
    int top = -1;
    for (size_t i = 0; i < k.buckets.size(); ++i) {
      delta[i] = k.buckets[i] - seen.buckets[i];
      n += delta[i];
      if (delta[i]) top = static_cast<int>(i);
    }
    // The largest new sample: exact when the kernel's max grew since the last
    // read, else bounded by the top new bucket and the max so far.
    const uint64_t max_ns = k.max_ns > seen.max_ns ? k.max_ns
                                                     : std::min(Log2Histogram::bucket_high(top), k.max_ns);
    const uint64_t sum_ns = k.sum_ns - seen.sum_ns;
    const uint64_t requests = k.requests - seen.requests, bytes = k.bytes - seen.bytes,
                   errors = k.errors - seen.errors, again = k.again - seen.again,
                   short_writes = k.short_writes - seen.short_writes;
    seen = HistSeen{k.buckets, k.max_ns, k.sum_ns, k.requests, k.bytes, k.errors, k.again, k.short_writes};
    if (n == 0 && !requests && !bytes && !errors && !again && !short_writes) continue;
    std::string_view vm, image;
    if (!attr_.lookup(k.pid, k.dev, k.ino, vm, image) || vm.empty()) {
      hist_unattributed_ += n;  // latency samples, as before the counts came from the kernel
      continue;
    }
    if (k.buffered) {
      stats_.add_kernel_buffered(vm, image, requests, bytes);
      continue;
    }
    stats_.add_kernel_io(vm, image, k.write, requests, bytes, errors, again, short_writes);
    if (n) stats_.add_kernel_counts(vm, image, k.write, delta, max_ns, sum_ns);
  }
}

StatsCounters Tracker::counters() const {
  StatsCounters c = stats_.counters();
  c.kernel_hist_overflow = hist_overflow_;
  c.kernel_hist_capacity = hist_capacity_;
  c.kernel_hist_unattributed = hist_unattributed_;
  c.kernel_hist_used = hist_used_;
  return c;
}

void Tracker::on_event(Event& ev) {
  attr_.apply(ev);
  stats_.on_event(ev);
}

void Tracker::on_finding(Finding& f) {
  attr_.apply(f);
  stats_.on_finding(f);
}

}  // namespace bdt::qemu
