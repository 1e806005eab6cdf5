// What --metrics-addr exports, counted from findings and the kernel's
// counts (metrics/collector.h).
#include "metrics/collector.h"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>

namespace bdt::metrics {

namespace {
constexpr std::string_view kOverflow = "(overflow)";

std::string dir_name(int d) { return d == 0 ? "read" : d == 1 ? "write" : "unknown"; }
}  // namespace

HistogramSample to_histogram(const qemu::Log2Histogram& h, Labels labels, std::optional<double> sum_s) {
  HistogramSample s;
  s.labels = std::move(labels);
  s.count = h.count();
  s.sum = sum_s;
  const auto& b = h.buckets();
  uint64_t low = 0;
  for (int i = 0; i < kLoBucket; ++i) low += b[i];
  for (int i = kLoBucket; i <= kHiBucket; ++i) {
    // bucket i holds [2^i, 2^(i+1)) ns: every value in it is <= 2^(i+1)-1 ns
    double le = static_cast<double>(qemu::Log2Histogram::bucket_high(i)) / 1e9;
    s.buckets.emplace_back(le, b[i] + (i == kLoBucket ? low : 0));
  }
  return s;
}

Collector::Collector(CollectorOptions o, std::vector<std::string> detector_ids)
    : opts_(o), detector_ids_(std::move(detector_ids)) {
  if (opts_.max_fs == 0) opts_.max_fs = 1;
  // Zero series for every detector/level/severity, so that increase() and
  // alerts work from the first scrape on.
  for (const auto& d : detector_ids_)
    for (auto l : {Level::Hazard, Level::Symptom})
      for (auto s : {Severity::Info, Severity::Warning, Severity::Critical})
        findings_[{d, std::string(to_string(l)), std::string(to_string(s))}] = 0;
}

std::string Collector::mountpoint(const Fsid& fs) const {
  auto it = mounts_.find(fs);
  if (it == mounts_.end()) {
    std::string mp = mountpoint_of_ ? mountpoint_of_(fs) : std::string();
    it = mounts_.emplace(fs, mp.empty() ? "(unknown)" : std::move(mp)).first;
  }
  return it->second;
}

void Collector::on_finding(const Finding& f) {
  ++findings_[{f.detector, std::string(to_string(f.level)), std::string(to_string(f.severity))}];
}

std::string Collector::qemu_key_label(std::string_view s) const { return s.empty() ? "(none)" : std::string(s); }

Exposition Collector::snapshot(const TracerState& t) const {
  Exposition x;
  x.gauge("info", "Tracer build and environment (value is always 1).")
      .add({{"version", t.version}, {"kernel", t.kernel}, {"backend", t.backend}, {"backend_requested", t.backend_requested}}, 1);
  x.gauge("start_time_seconds", "Unix time the trace started.").add({}, t.start_time_s);
  x.gauge("build_info", "The build of btrfs-dio-trace (value is always 1): its version and the libbpf it runs with.")
      .add({{"version", t.version}, {"libbpf", t.libbpf_version.empty() ? "unknown" : t.libbpf_version}}, 1);
  if (t.process) {
    const auto& p = *t.process;
    x.standard_counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.").add({}, p.cpu_seconds);
    x.standard_gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.")
        .add({}, p.start_time_s);
    x.standard_gauge("process_resident_memory_bytes", "Resident memory size in bytes.")
        .add({}, static_cast<double>(p.resident_bytes));
    x.standard_gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.")
        .add({}, static_cast<double>(p.virtual_bytes));
    x.standard_gauge("process_open_fds", "Number of open file descriptors.").add({}, static_cast<double>(p.open_fds));
    x.standard_gauge("process_max_fds", "Maximum number of open file descriptors.").add({}, static_cast<double>(p.max_fds));
  }

  auto& ev = x.counter("events_total", "Events the tracer saw, by type (whether or not a record was needed).");
  for (int i = 1; i <= kEventTypeCount; ++i) {
    const auto n = static_cast<size_t>(i) < t.counts.events_by_type.size() ? t.counts.events_by_type[i] : 0;
    ev.add({{"type", std::string(to_string(static_cast<EventType>(i)))}}, static_cast<double>(n));
  }
  x.counter("records_decoded_total", "Ring-buffer records the consumer decoded.").add({}, static_cast<double>(t.live.events));
  x.counter("unknown_records_total", "Ring-buffer records of an unknown type (skipped).").add({}, static_cast<double>(t.live.unknown_records));
  auto& lost = x.counter("lost_events_total", "Records the kernel dropped because the ring buffer was full, by CPU.");
  for (size_t cpu = 0; cpu < t.live.lost_per_cpu.size(); ++cpu)
    lost.add({{"cpu", std::to_string(cpu)}}, static_cast<double>(t.live.lost_per_cpu[cpu]));
  x.gauge("ring_buffer_size_bytes", "Size of the BPF ring buffer.").add({}, static_cast<double>(t.ringbuf_bytes));

  auto& fi = x.counter("findings_total", "Findings reported, by detector, level and severity.");
  for (const auto& [k, n] : findings_)
    fi.add({{"detector", std::get<0>(k)}, {"level", std::get<1>(k)}, {"severity", std::get<2>(k)}}, static_cast<double>(n));

  auto& req = x.counter("dio_requests_total", "Direct I/O requests completed (dio_end), by filesystem and direction.");
  auto& bytes = x.counter("dio_bytes_total", "Bytes transferred by completed direct I/O requests.");
  auto& err = x.counter("dio_errors_total", "Direct I/O requests that ended with an error (not counting -EAGAIN).");
  auto& again = x.counter("dio_again_total", "Direct I/O attempts that ended -EAGAIN (io_uring/RWF_NOWAIT; retried, not requests).");
  auto& shortw = x.counter("dio_short_writes_total", "Direct I/O writes that completed fewer bytes than asked.");
  auto& lat = x.histogram("dio_request_latency_seconds", "Direct I/O request latency, dio_begin to dio_end.");
  // The kernel's filesystem slots, the first max_fs with their own label, the
  // rest (and the kernel's own overflow slot) added up in "(overflow)".
  std::vector<std::pair<std::string, FsCounts>> fs;
  std::vector<std::string> mounts;  // the mountpoint label of each
  FsCounts over;
  bool any_over = false;
  auto add = [](DioCounts& a, const DioCounts& b) {
    a.requests += b.requests;
    a.bytes += b.bytes;
    a.errors += b.errors;
    a.again += b.again;
    a.short_writes += b.short_writes;
    a.lat_sum_ns += b.lat_sum_ns;
    if (a.lat_buckets.size() < b.lat_buckets.size()) a.lat_buckets.resize(b.lat_buckets.size());
    for (size_t i = 0; i < b.lat_buckets.size(); ++i) a.lat_buckets[i] += b.lat_buckets[i];
  };
  for (const auto& f : t.counts.fs) {
    if (!f.overflow && fs.size() < opts_.max_fs) {
      fs.emplace_back(f.fs.empty() ? "(unknown)" : f.fs.str(), f);
      mounts.push_back(f.fs.empty() ? std::string("(unknown)") : mountpoint(f.fs));
      continue;
    }
    any_over = true;
    add(over.read, f.read);
    add(over.write, f.write);
    add(over.unknown, f.unknown);
  }
  if (any_over) {
    fs.emplace_back(std::string(kOverflow), over);
    mounts.emplace_back(kOverflow);
  }
  for (size_t i = 0; i < fs.size(); ++i) {
    const auto& [name, f] = fs[i];
    for (int dir = 0; dir < 3; ++dir) {
      const DioCounts& d = dir == 0 ? f.read : dir == 1 ? f.write : f.unknown;
      if (dir == 2 && !d.requests && !d.again) continue;
      Labels l{{"fs", name}, {"mountpoint", mounts[i]}, {"direction", dir_name(dir)}};
      req.add(l, static_cast<double>(d.requests));
      bytes.add(l, static_cast<double>(d.bytes));
      err.add(l, static_cast<double>(d.errors));
      again.add(l, static_cast<double>(d.again));
      if (dir != 2) {
        qemu::Log2Histogram h;
        if (!d.lat_buckets.empty()) h.add_counts(d.lat_buckets, 0, d.lat_sum_ns);
        lat.add(to_histogram(h, l, static_cast<double>(d.lat_sum_ns) / 1e9));
      }
    }
    shortw.add({{"fs", name}, {"mountpoint", mounts[i]}}, static_cast<double>(f.write.short_writes));
  }
  const auto& c = t.counts;
  const uint64_t gone = c.dio_begins > c.dio_ends + c.dio_inflight ? c.dio_begins - c.dio_ends - c.dio_inflight : 0;
  x.gauge("dio_inflight", "Direct I/O requests begun and not yet ended (the kernel's in-flight map).").add({}, static_cast<double>(c.dio_inflight));
  x.counter("dio_inflight_evicted_total", "In-flight requests the kernel's map no longer holds without having seen their end (evicted to stay within the cap, or begun again).").add({}, static_cast<double>(gone));
  x.counter("dio_unmatched_total", "dio_end without a dio_begin.").add({}, static_cast<double>(c.dio_unmatched));
  x.counter("ordered_extents_untracked_total",
            "DIRECT ordered extents the table of those in flight could not keep (findings only: not seen by acked_ioerr/oe_stall).")
      .add({}, static_cast<double>(c.oe_untracked));

  auto& se = x.gauge("detector_state_entries", "Objects a detector tracks now (bounded).");
  auto& sc = x.gauge("detector_state_capacity", "A detector's configured state cap.");
  auto& sv = x.counter("detector_state_evicted_total", "State a detector evicted because of its cap or age.");
  for (const auto& [id, st] : t.detector_state) {
    Labels l{{"detector", id}};
    se.add(l, static_cast<double>(st.entries));
    sc.add(l, static_cast<double>(st.capacity));
    sv.add(l, static_cast<double>(st.evicted));
  }

  // A state set: one series per possible fidelity, 1 for the detector's current one.
  auto& df = x.gauge("detector_fidelity",
                     "What a detector can see with the hooks that attached (1 for its fidelity: full, partial, "
                     "unavailable; doctor says why).");
  for (const auto& [id, fid] : t.detector_fidelity)
    for (const char* f : {"full", "partial", "unavailable"})
      df.add({{"detector", id}, {"fidelity", f}}, fid == f ? 1 : 0);

  std::map<std::string, uint64_t> by_mech;
  uint64_t not_attached = 0;
  for (const auto& h : t.hooks) {
    if (h.attached) ++by_mech[std::string(to_string(h.mechanism))];
    else ++not_attached;
  }
  auto& ha = x.gauge("hooks_attached", "Kernel hooks attached, by mechanism.");
  for (const auto& [m, n] : by_mech) ha.add({{"mechanism", m}}, static_cast<double>(n));
  x.gauge("hooks_not_attached", "Kernel hooks that could not be attached (doctor says why).").add({}, static_cast<double>(not_attached));

  x.counter("metrics_http_requests_total", "HTTP requests to the metrics endpoint.").add({}, static_cast<double>(t.http_requests));
  x.counter("metrics_http_rejected_total", "HTTP requests rejected: malformed, oversized, too slow, or over the connection cap.")
      .add({}, static_cast<double>(t.http_rejected));

  if (t.qemu) {
    x.gauge("qemu_vms", "QEMU processes being traced.").add({}, static_cast<double>(t.qemu_vms));
    // Sticky top-N (first come): a (vm, image) keeps its own series for the
    // whole run, later ones add up in (overflow), so every counter stays monotone.
    std::map<std::pair<std::string, std::string>, qemu::ImageStats> agg;
    for (const auto& row : t.qemu->total()) {
      std::pair<std::string, std::string> k{qemu_key_label(row.vm), qemu_key_label(row.image)};
      auto it = qemu_series_.find(k);
      if (it == qemu_series_.end() && qemu_series_.size() < opts_.max_qemu_series)
        it = qemu_series_.emplace(k, true).first;
      if (it == qemu_series_.end()) k = {std::string(kOverflow), std::string(kOverflow)};
      agg[k].merge(row.s);
    }
    auto& qr = x.counter("qemu_requests_total", "Direct I/O requests completed by a VM, per disk image and direction.");
    auto& qb = x.counter("qemu_bytes_total", "Bytes transferred by a VM's direct I/O, per disk image and direction.");
    auto& qe = x.counter("qemu_errors_total", "A VM's direct I/O requests that ended with an error, per disk image.");
    auto& qa = x.counter("qemu_again_total", "A VM's -EAGAIN direct I/O attempts (retried by io_uring), per disk image.");
    auto& qs = x.counter("qemu_short_writes_total", "A VM's short direct I/O writes, per disk image.");
    auto& qf = x.counter("qemu_findings_total", "Findings attributed to a VM, per disk image and detector.");
    auto& ql = x.histogram("qemu_request_latency_seconds", "A VM's direct I/O latency per disk image and direction (log2 buckets).");
    for (const auto& [k, s] : agg) {
      Labels base{{"vm", k.first}, {"image", k.second}};
      for (int dir = 0; dir < 2; ++dir) {
        Labels l = base;
        l.emplace_back("direction", dir_name(dir));
        qr.add(l, static_cast<double>(dir ? s.writes : s.reads));
        qb.add(l, static_cast<double>(dir ? s.write_bytes : s.read_bytes));
        const auto& h = dir ? s.write_lat : s.read_lat;
        ql.add(to_histogram(h, l, h.sum_known() ? std::optional<double>(static_cast<double>(h.sum()) / 1e9)
                                                : std::nullopt));
      }
      qe.add(base, static_cast<double>(s.errors));
      qa.add(base, static_cast<double>(s.again));
      qs.add(base, static_cast<double>(s.short_writes));
      for (const auto& [det, n] : s.findings) {
        Labels l = base;
        l.emplace_back("detector", det);
        qf.add(l, static_cast<double>(n));
      }
    }
    const auto& c = t.qemu_counters;
    x.counter("qemu_inflight_evicted_total", "In-flight VM requests the per-VM statistics forgot to stay within their cap.")
        .add({}, static_cast<double>(c.evicted));
    x.counter("qemu_unmatched_ends_total", "VM dio_end events without a matching dio_begin.").add({}, static_cast<double>(c.unmatched_ends));
    // The kernel's latency histograms (per process, file, direction): how their bounded map copes.
    x.gauge("qemu_latency_kernel_keys", "Keys (process, file, direction) in the kernel latency map at the last read.")
        .add({}, static_cast<double>(c.kernel_hist_used));
    x.gauge("qemu_latency_kernel_capacity", "Keys the kernel latency map holds (0: latency paired in userspace).")
        .add({}, static_cast<double>(c.kernel_hist_capacity));
    x.counter("qemu_latency_kernel_overflow_total", "Latency samples the kernel dropped because its map was full.")
        .add({}, static_cast<double>(c.kernel_hist_overflow));
    x.counter("qemu_latency_unattributed_total", "Kernel latency samples of a process or file no VM claims (dropped).")
        .add({}, static_cast<double>(c.kernel_hist_unattributed));
  }
  return x;
}

}  // namespace bdt::metrics
