// --qemu: per-VM, per-image DIO statistics, latency histograms, and their
// text / JSON rendering for --interval and the summary.
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <nlohmann/json.hpp>

#include "bdt/trace_header.h"
#include "qemu/qemu.h"

namespace bdt::qemu {

// ---- histogram -------------------------------------------------------------------

int Log2Histogram::bucket_of(uint64_t v) { return v < 2 ? 0 : 63 - std::countl_zero(v); }
uint64_t Log2Histogram::bucket_low(int b) { return b <= 0 ? 0 : 1ull << b; }
uint64_t Log2Histogram::bucket_high(int b) {
  if (b >= 63) return ~0ull;
  return b < 0 ? 1 : (2ull << b) - 1;
}

void Log2Histogram::add(uint64_t v) {
  ++b_[bucket_of(v)];
  ++count_;
  max_ = std::max(max_, v);
  sum_ += v;
}

void Log2Histogram::add_bucket(int b, uint64_t n) {
  if (n == 0) return;
  b = std::clamp(b, 0, kBuckets - 1);
  b_[b] += n;
  count_ += n;
  max_ = std::max(max_, bucket_high(b));
  if (n) sum_known_ = false;
}

void Log2Histogram::add_counts(std::span<const uint64_t> counts, uint64_t max_ns,
                               std::optional<uint64_t> sum_ns) {
  uint64_t n = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const int b = std::min<int>(static_cast<int>(i), kBuckets - 1);
    b_[b] += counts[i];
    n += counts[i];
  }
  if (n == 0) return;
  count_ += n;
  max_ = std::max(max_, max_ns);
  if (sum_ns)
    sum_ += *sum_ns;
  else
    sum_known_ = false;
}

void Log2Histogram::merge(const Log2Histogram& o) {
  for (int i = 0; i < kBuckets; ++i) b_[i] += o.b_[i];
  count_ += o.count_;
  max_ = std::max(max_, o.max_);
  sum_ += o.sum_;
  sum_known_ = sum_known_ && o.sum_known_;
}

uint64_t Log2Histogram::percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<uint64_t>(q * static_cast<double>(count_) + 0.999999);
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += b_[i];
    if (seen >= rank) return std::min(bucket_high(i), max_);
  }
  return max_;
}

void ImageStats::merge(const ImageStats& o) {
  reads += o.reads;
  writes += o.writes;
  read_bytes += o.read_bytes;
  write_bytes += o.write_bytes;
  errors += o.errors;
  again += o.again;
  short_writes += o.short_writes;
  buffered_fallback += o.buffered_fallback;
  buffered_extents += o.buffered_extents;
  buffered_bytes += o.buffered_bytes;
  for (const auto& [k, v] : o.findings) findings[k] += v;
  read_lat.merge(o.read_lat);
  write_lat.merge(o.write_lat);
}

// ---- collector -------------------------------------------------------------------

namespace {
constexpr size_t kWays = 8;
uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}
uint64_t sync_hash(uint32_t tid) { return mix(0x5bd1e995ull ^ tid); }
uint64_t aio_hash(uint32_t pid, uint64_t dev, uint64_t ino, uint64_t pos) {
  return mix(mix(mix(pid ^ 0xa5a5a5a5ull) ^ dev) ^ ino) ^ mix(pos);
}
}  // namespace

StatsCollector::StatsCollector(size_t max_inflight) {
  size_t sets = std::bit_ceil(std::max<size_t>(1, (max_inflight + kWays - 1) / kWays));
  sets_ = sets;
  slots_.assign(sets_ * kWays, Slot{});
}

template <class F> void StatsCollector::update(std::string_view vm, std::string_view image, F&& f) {
  for (Table* t : {&total_, &interval_}) {
    auto it = t->find(Key{vm, image});
    if (it == t->end()) it = t->emplace(std::pair(std::string(vm), std::string(image)), ImageStats{}).first;
    f(it->second);
  }
}

StatsCollector::Slot* StatsCollector::find_sync(uint32_t tid, uint64_t dev, uint64_t ino) {
  Slot* set = &slots_[(sync_hash(tid) & (sets_ - 1)) * kWays];
  for (size_t i = 0; i < kWays; ++i)
    if (set[i].used && !set[i].aio && set[i].tid == tid && set[i].dev == dev && set[i].ino == ino)
      return &set[i];
  return nullptr;
}

StatsCollector::Slot* StatsCollector::find_aio(uint32_t pid, uint64_t dev, uint64_t ino, uint64_t pos) {
  Slot* set = &slots_[(aio_hash(pid, dev, ino, pos) & (sets_ - 1)) * kWays];
  for (size_t i = 0; i < kWays; ++i)
    if (set[i].used && set[i].aio && set[i].pid == pid && set[i].dev == dev && set[i].ino == ino &&
        set[i].pos == pos)
      return &set[i];
  return nullptr;
}

void StatsCollector::insert(const Slot& s, uint64_t hash) {
  Slot* set = &slots_[(hash & (sets_ - 1)) * kWays];
  Slot* victim = nullptr;
  for (size_t i = 0; i < kWays; ++i) {
    if (!set[i].used) {
      victim = &set[i];
      break;
    }
    if (!victim || set[i].ts < victim->ts) victim = &set[i];
  }
  if (victim->used) {
    ++evicted_;
  } else {
    ++inflight_;
  }
  *victim = s;
  victim->used = true;
}

void StatsCollector::on_event(const Event& ev) {
  if (ev.vm.empty() || kernel_counts_) return;
  if (const auto* b = ev.as<DioBegin>()) {
    Slot s;
    s.aio = b->aio;
    s.write = b->write;
    s.tid = ev.tid;
    s.pid = ev.pid;
    s.dev = ev.dev;
    s.ino = ev.ino;
    s.pos = b->pos;
    s.count = b->count;
    s.done_before = b->done_before;
    s.ts = ev.ts_ns;
    if (!b->aio) {
      // One synchronous request per thread: a new begin replaces a lost end.
      if (Slot* old = find_sync(ev.tid, ev.dev, ev.ino)) {
        old->used = false;
        --inflight_;
        ++unmatched_;
      }
      insert(s, sync_hash(ev.tid));
    } else {
      insert(s, aio_hash(ev.pid, ev.dev, ev.ino, b->pos));
    }
    return;
  }
  if (const auto* o = ev.as<Ordered>()) {
    if (ev.type == EventType::OeAdd && !(o->flags & oef::DIRECT))
      update(ev.vm, ev.image, [&](ImageStats& s) {
        ++s.buffered_extents;
        s.buffered_bytes += o->len;
      });
    return;
  }
  const auto* e = ev.as<DioEnd>();
  if (!e) return;
  Slot* s = find_sync(ev.tid, ev.dev, ev.ino);
  if (!s) s = find_aio(ev.pid, ev.dev, ev.ino, e->pos);
  // dio_end's pos may be the file position after the request (ki_pos advanced)
  if (!s && e->ret > 0 && static_cast<uint64_t>(e->ret) <= e->pos)
    s = find_aio(ev.pid, ev.dev, ev.ino, e->pos - static_cast<uint64_t>(e->ret));
  constexpr int64_t kEagain = -11;
  const bool again = e->ret == kEagain || (e->ret <= 0 && e->error == kEagain);
  const bool failed = !again && (e->ret < 0 || e->error != 0);
  if (!s) {
    ++unmatched_;
    update(ev.vm, ev.image, [&](ImageStats& st) {
      if (again) {
        ++st.again;
        return;
      }
      if (failed) ++st.errors;
      if (!e->write) return;
      ++(*e->write ? st.writes : st.reads);
      if (e->ret > 0) (*e->write ? st.write_bytes : st.read_bytes) += static_cast<uint64_t>(e->ret);
    });
    return;
  }
  const Slot req = *s;
  s->used = false;
  --inflight_;
  const uint64_t lat = ev.ts_ns >= req.ts ? ev.ts_ns - req.ts : 0;
  uint64_t done = 0;
  if (e->ret > 0) done = static_cast<uint64_t>(e->ret) > req.done_before ? e->ret - req.done_before : 0;
  update(ev.vm, ev.image, [&](ImageStats& st) {
    if (again) {
      ++st.again;
      return;
    }
    ++(req.write ? st.writes : st.reads);
    if (failed) ++st.errors;
    (req.write ? st.write_bytes : st.read_bytes) += done;
    if (req.write && e->ret >= 0 && done < req.count) ++st.short_writes;
    (req.write ? st.write_lat : st.read_lat).add(lat);
  });
}

void StatsCollector::on_finding(const Finding& f) {
  if (f.vm.empty()) return;
  update(f.vm, f.image, [&](ImageStats& s) {
    ++s.findings[f.detector];
    if (f.detector == "dio-buffered-fallback") ++s.buffered_fallback;
  });
}

void StatsCollector::on_latency(std::string_view vm, std::string_view image, bool write, uint64_t ns) {
  update(vm, image, [&](ImageStats& s) { (write ? s.write_lat : s.read_lat).add(ns); });
}

void StatsCollector::add_buckets(std::string_view vm, std::string_view image, bool write, int bucket,
                                 uint64_t n) {
  update(vm, image, [&](ImageStats& s) { (write ? s.write_lat : s.read_lat).add_bucket(bucket, n); });
}

void StatsCollector::add_kernel_counts(std::string_view vm, std::string_view image, bool write,
                                       std::span<const uint64_t> counts, uint64_t max_ns, uint64_t sum_ns) {
  update(vm, image,
         [&](ImageStats& s) { (write ? s.write_lat : s.read_lat).add_counts(counts, max_ns, sum_ns); });
}

void StatsCollector::add_kernel_io(std::string_view vm, std::string_view image, bool write,
                                   uint64_t requests, uint64_t bytes, uint64_t errors, uint64_t again,
                                   uint64_t short_writes) {
  update(vm, image, [&](ImageStats& s) {
    (write ? s.writes : s.reads) += requests;
    (write ? s.write_bytes : s.read_bytes) += bytes;
    s.errors += errors;
    s.again += again;
    s.short_writes += short_writes;
  });
}

void StatsCollector::add_kernel_buffered(std::string_view vm, std::string_view image, uint64_t extents,
                                         uint64_t bytes) {
  update(vm, image, [&](ImageStats& s) {
    s.buffered_extents += extents;
    s.buffered_bytes += bytes;
  });
}

std::vector<StatsRow> StatsCollector::rows(const Table& t, SortBy by) {
  std::vector<StatsRow> out;
  out.reserve(t.size());
  for (const auto& [k, v] : t) out.push_back({k.first, k.second, v});
  if (by == SortBy::Requests)
    std::stable_sort(out.begin(), out.end(), [](const StatsRow& a, const StatsRow& b) {
      return a.s.reads + a.s.writes > b.s.reads + b.s.writes;
    });
  return out;  // the map already orders by (vm, image)
}

std::vector<StatsRow> StatsCollector::total(SortBy by) const { return rows(total_, by); }

std::vector<StatsRow> StatsCollector::take_interval(SortBy by) {
  auto r = rows(interval_, by);
  // Keep the rows (so a quiet VM still shows a line of zeros), reset the numbers.
  for (auto& [k, v] : interval_) v = ImageStats{};
  return r;
}

StatsCounters StatsCollector::counters() const {
  return {inflight_, slots_.size(), evicted_, unmatched_};
}

// ---- rendering -------------------------------------------------------------------

namespace {
std::string human_bytes(uint64_t b) {
  static const char* units[] = {"B", "K", "M", "G", "T", "P"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{}B", b) : fmt::format("{:.1f}{}", v, units[u]);
}
std::string human_ns(uint64_t ns, bool any) {
  if (!any) return "-";
  if (ns < 1000) return fmt::format("{}ns", ns);
  if (ns < 1000000) return fmt::format("{:.1f}us", static_cast<double>(ns) / 1e3);
  if (ns < 1000000000) return fmt::format("{:.1f}ms", static_cast<double>(ns) / 1e6);
  return fmt::format("{:.2f}s", static_cast<double>(ns) / 1e9);
}
std::string findings_text(const std::map<std::string, uint64_t>& m) {
  if (m.empty()) return "-";
  std::string s;
  for (const auto& [k, v] : m) s += fmt::format("{}{}={}", s.empty() ? "" : ",", k, v);
  return s;
}
nlohmann::ordered_json hist_json(const Log2Histogram& h) {
  nlohmann::ordered_json j;
  j["count"] = h.count();
  j["p50_ns"] = h.percentile(0.5);
  j["p99_ns"] = h.percentile(0.99);
  j["max_ns"] = h.max();
  auto b = nlohmann::ordered_json::array();
  for (int i = 0; i < Log2Histogram::kBuckets; ++i)
    if (h.buckets()[i]) b.push_back({Log2Histogram::bucket_low(i), h.buckets()[i]});
  j["buckets"] = b;  // [[low_ns, count], ...]: bucket i covers [2^i, 2^(i+1))
  return j;
}
}  // namespace

std::string render_text(const std::vector<StatsRow>& rows, std::string_view title) {
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"VM", "IMAGE", "READS", "RBYTES", "WRITES", "WBYTES", "ERR", "SHORT", "BUFFERED", "FALLBK",
                   "P50", "P99", "MAX", "FINDINGS"});
  for (const auto& r : rows) {
    Log2Histogram all = r.s.read_lat;
    all.merge(r.s.write_lat);
    const bool any = all.count() > 0;
    cells.push_back({r.vm, r.image.empty() ? "(other files)" : r.image, std::to_string(r.s.reads),
                     human_bytes(r.s.read_bytes), std::to_string(r.s.writes),
                     human_bytes(r.s.write_bytes), std::to_string(r.s.errors),
                     std::to_string(r.s.short_writes), human_bytes(r.s.buffered_bytes),
                     std::to_string(r.s.buffered_fallback),
                     human_ns(all.percentile(0.5), any), human_ns(all.percentile(0.99), any),
                     human_ns(all.max(), any), findings_text(r.s.findings)});
  }
  std::vector<size_t> w(cells[0].size(), 0);
  for (const auto& row : cells)
    for (size_t i = 0; i < row.size(); ++i) w[i] = std::max(w[i], row[i].size());
  std::string out;
  if (!title.empty()) out += fmt::format("{}\n", title);
  if (rows.empty()) return out + "(no VM I/O)\n";
  for (const auto& row : cells) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      const bool left = i < 2 || i + 1 == row.size();
      if (i) line += "  ";
      line += left ? fmt::format("{:<{}}", row[i], i + 1 == row.size() ? 0 : w[i])
                   : fmt::format("{:>{}}", row[i], w[i]);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string render_json(const std::vector<StatsRow>& rows, double interval_s, const StatsCounters* c,
                        uint64_t ts_ns, int64_t mono_to_realtime_ns) {
  nlohmann::ordered_json j;
  j["type"] = "vm_stats";
  if (ts_ns) {
    j["ts_ns"] = ts_ns;
    if (mono_to_realtime_ns) j["wall_time"] = format_wall_utc(wall_ns(ts_ns, mono_to_realtime_ns));
  }
  if (interval_s >= 0) j["interval_s"] = interval_s;
  auto arr = nlohmann::ordered_json::array();
  for (const auto& r : rows) {
    nlohmann::ordered_json o;
    o["vm"] = r.vm;
    o["image"] = r.image;
    o["reads"] = r.s.reads;
    o["read_bytes"] = r.s.read_bytes;
    o["writes"] = r.s.writes;
    o["write_bytes"] = r.s.write_bytes;
    o["errors"] = r.s.errors;
    o["again"] = r.s.again;
    o["short_writes"] = r.s.short_writes;
    o["buffered_extents"] = r.s.buffered_extents;
    o["buffered_bytes"] = r.s.buffered_bytes;
    o["buffered_fallback_findings"] = r.s.buffered_fallback;
    o["findings"] = r.s.findings;
    o["read_latency"] = hist_json(r.s.read_lat);
    o["write_latency"] = hist_json(r.s.write_lat);
    arr.push_back(std::move(o));
  }
  j["vms"] = std::move(arr);
  if (c) {
    nlohmann::ordered_json h;
    h["source"] = c->kernel_hist_capacity ? "kernel" : "userspace";
    if (c->kernel_hist_capacity) {
      h["keys"] = c->kernel_hist_used;
      h["capacity"] = c->kernel_hist_capacity;
      h["dropped"] = c->kernel_hist_overflow;
      h["unattributed"] = c->kernel_hist_unattributed;
    } else {
      h["evicted"] = c->evicted;
      h["unmatched_ends"] = c->unmatched_ends;
    }
    j["latency_hist"] = std::move(h);
  }
  return j.dump();
}

}  // namespace bdt::qemu
