// dio-buffered-fallback (informational): a process writes a file with O_DIRECT
// but btrfs carries the writes out as buffered writes.
//
// Since 968f19c5b1b7 (6.15; stable 6.6+) btrfs_direct_write() sends O_DIRECT
// writes to files with data checksums down the buffered path before
// iomap_dio_rw is reached; writes whose position, length or buffer is not
// sector-aligned have always gone that way.
//
// Exact (dio_fallback events): the kernel side reports every O_DIRECT write
// on btrfs that returned having written bytes without reaching iomap_dio_rw
// (btrfs' write function with fentry/kprobe, or the write-family syscalls,
// io_submit and io_uring on the tracepoint backend). The detector gathers one
// process's fallbacks on one file for gather_ns after the first, then reports
// them once: threads, byte ranges, how many writes and bytes, and the reason
// (data checksums: the file has them and the write was aligned; unaligned;
// other). Later fallbacks of the same (process, file) are counted, not
// reported again. The end of the trace reports what was gathered so far.
//
// Inferred (only where no fallback hook attached, cfg.fallback_events false):
// a process that did O_DIRECT *reads* of an inode (dio_begin, write=false) and
// in its own context created buffered ordered extents of it (oe_add without
// DIRECT: fsync/O_DSYNC flushing its own buffered writes), and never a true
// DIO write of it. Reported once per (inode, process), kind
// buffered-fallback-inferred: it cannot see write-only O_DIRECT users and
// names the written-back range, not the writes.
//
// Triggers: dio_fallback records are made only for writes that fell back (no
// trigger needed); the inference needs a non-DIRECT ordered extent created in
// a user process (oe_buffered): it emits the DIO requests on the inode in
// flight or ended in the last second, and the inode's later records (the reads).
#include <fmt/format.h>

#include "detectors/common.h"
#include "detectors/exposure.h"

namespace bdt::det {
namespace {

struct Key {
  InoKey k;
  uint32_t pid;
  bool operator==(const Key&) const = default;
};
struct KeyHash {
  size_t operator()(const Key& x) const { return InoKeyHash{}(x.k) ^ (size_t(x.pid) * 0x9E37u); }
};

// What the read-based inference keeps per (inode, process).
struct User {
  uint64_t dev = 0;
  bool read_seen = false;
  Event read;              // a DIO read by this process
  bool oe_seen = false;
  Event oe;                // a buffered ordered extent created in its context
  bool dio_write = false;  // it also did a true DIO write on the inode
  bool nodatasum = false;
  bool reported = false;
  uint64_t last_ts = 0;
};

// The fallbacks of one (inode, process), from dio_fallback events.
struct Gathered {
  Event first;
  uint64_t dev = 0;
  uint64_t writes = 0, bytes = 0;
  uint64_t csum = 0, unaligned = 0, other = 0;  // writes by reason
  uint64_t requested = 0;                       // writes whose result was not seen
  uint32_t vias = 0;                            // 1 << FallbackVia
  IntervalSet ranges;
  std::vector<Event> threads;  // one event per thread (bounded)
  Evidence ev;
  bool reported = false;
  uint64_t last_ts = 0;
};

constexpr size_t kMaxThreads = 8;

class DioBufferedFallback final : public Detector {
 public:
  explicit DioBufferedFallback(const DetectorConfig& c) : cfg_(c) {}
  std::string_view id() const override { return "dio-buffered-fallback"; }
  TriggerSet triggers() const override { return triggers_of({Trigger::OeBuffered}); }
  // With fallback events, those alone; else the inference's too (infer()).
  EventSet events() const override {
    return cfg_.fallback_events
               ? events_of({EventType::DioFallback})
               : events_of({EventType::DioFallback, EventType::DioBegin, EventType::OeAdd});
  }

  void on_event(const Event& e, Findings& out) override {
    if (e.type == EventType::DioFallback) return on_fallback(e, out);
    if (cfg_.fallback_events) return;  // exact events: no inference
    infer(e, out);
  }

  void on_time(uint64_t now, Findings& out) override {
    report_due(now, false, out);
    evicted_ += evict_aged(users_, now, cfg_.max_age_ns, [](const User& u) { return u.last_ts; });
    // reported entries are kept while active, so a process is reported once
    evicted_ += evict_aged(gathered_, now, cfg_.max_age_ns, [](const Gathered& g) { return g.last_ts; });
  }

  void on_finish(uint64_t now, Findings& out) override {
    report_due(now, true, out, /*at_end=*/true);
    on_time(now, out);
  }

  StateSize state_size() const override {
    return {users_.size() + gathered_.size(), cfg_.max_requests + gather_cap(), evicted_, capped_};
  }
  // (inode, process) pairs followed at once: gathering ones keep up to
  // max_evidence events (given back once reported).
  size_t gather_cap() const { return std::max<size_t>(16, cfg_.max_requests / 4); }

 private:
  // ---- exact ---------------------------------------------------------------
  // Reports what is due (all: everything gathered), oldest first.
  void report_due(uint64_t now, bool all, Findings& out, bool at_end = false) {
    due_.clear();
    for (auto& [k, g] : gathered_)
      if (!g.reported && (all || now - g.first.ts_ns >= cfg_.gather_ns)) due_.push_back(&g);
    std::sort(due_.begin(), due_.end(), [](const Gathered* a, const Gathered* b) {
      return a->first.ts_ns < b->first.ts_ns;
    });
    for (auto* g : due_) report(*g, now, at_end, out);
  }

  void on_fallback(const Event& e, Findings& out) {
    auto* b = e.as<DioFallback>();
    Key key{ino_key(e), e.pid};
    auto it = gathered_.find(key);
    if (it == gathered_.end()) {
      if (gathered_.size() >= gather_cap()) {
        // report what is pending before forgetting it
        report_due(e.ts_ns, true, out);
        size_t n = evict_oldest(gathered_, gather_cap(), [](const Gathered& g) { return g.last_ts; });
        evicted_ += n, capped_ += n;
      }
      it = gathered_.emplace(key, Gathered{}).first;
      auto& g = it->second;
      g.first = e;
      g.dev = e.dev;
      g.ev.reset(cfg_.max_evidence);
      // an inferred report for this (inode, process) would say the same, later
      if (auto u = users_.find(key); u != users_.end()) u->second.reported = true;
    }
    auto& g = it->second;
    g.last_ts = e.ts_ns;
    if (!g.dev) g.dev = e.dev;
    ++g.writes;
    g.bytes += b->count;
    if (b->unaligned) ++g.unaligned;
    else if (!b->nodatasum) ++g.csum;
    else ++g.other;
    if (b->requested) ++g.requested;
    g.vias |= 1u << static_cast<unsigned>(b->via);
    g.ranges.add(b->pos, b->pos + std::max<uint64_t>(b->count, 1));
    bool known = false;
    for (auto& t : g.threads) known = known || t.tid == e.tid;
    if (!known && !g.reported && g.threads.size() < kMaxThreads) g.threads.push_back(e);
    if (!g.reported) g.ev.push(e);
    if (!g.reported && e.ts_ns - g.first.ts_ns >= cfg_.gather_ns) report(g, e.ts_ns, false, out);
  }

  static std::string ranges_text(const IntervalSet& r, size_t max) {
    std::string s;
    size_t n = 0;
    for (auto& [a, b] : r.items()) {
      if (n++ == max) {
        s += fmt::format(", ... ({} ranges)", r.items().size());
        break;
      }
      s += fmt::format("{}[{}, {})", s.empty() ? "" : ", ", a, b);
    }
    return s;
  }

  void report(Gathered& g, uint64_t now, bool at_end, Findings& out) {
    g.reported = true;
    const Event& e = g.first;
    auto* row = exposure_row("dio-csum-fallback");
    auto f = make_finding(id(), "buffered-fallback", Level::Hazard, Severity::Info, e);
    f.ts_ns = std::max(now, e.ts_ns);
    if (!f.dev && g.dev) f.dev = g.dev;
    // empty only for ranges past 2^64, which the decoders refuse (wrapping_range): no range then
    if (!g.ranges.items().empty())
      f.range = {{g.ranges.items().front().first, g.ranges.items().back().second}};
    for (auto& t : g.threads) add_actor(f, t, "O_DIRECT writer");
    std::string reason;
    auto part = [&](uint64_t n, std::string_view what) {
      if (!n) return;
      if (!reason.empty()) reason += "; ";
      reason += n == g.writes ? std::string(what) : fmt::format("{} of them: {}", n, what);
    };
    part(g.csum, "the file has data checksums");
    part(g.unaligned, "the write was not aligned to the sector size");
    part(g.other, "other (the file has no data checksums and the write was aligned)");
    std::string via;
    for (unsigned v = 0; v < 4; ++v)
      if (g.vias & (1u << v))
        via += (via.empty() ? "" : ", ") + std::string(to_string(static_cast<FallbackVia>(v)));
    f.message = fmt::format(
        "{} (pid {}) wrote inode {} with O_DIRECT but btrfs carried out {} write(s), {} bytes "
        "({}), as buffered writes: {}",
        comm_of(e), e.pid, e.ino, g.writes, g.bytes, ranges_text(g.ranges, 4), reason);
    std::string why;
    if (g.csum)
      why =
          "Since 968f19c5b1b7 (6.15, backported to 6.6+) btrfs carries out O_DIRECT writes to "
          "files with data checksums as buffered writes, so that a buffer changing during the I/O "
          "cannot make the stored checksum wrong. The data goes through the page cache and is "
          "written back before the write returns: a QEMU guest with cache=none on such an image "
          "gets host page caching it did not ask for, and more CPU per write. To write direct, "
          "make the file nocow (chattr +C on the empty file: no checksums) or accept the caching.";
    if (g.unaligned)
      why += std::string(why.empty() ? "" : " ") +
             "btrfs falls back to buffered I/O for O_DIRECT writes whose file position, length "
             "or memory buffer is not a multiple of the sector size; align them.";
    if (g.other)
      why += std::string(why.empty() ? "" : " ") +
             "A write to a file without data checksums that was aligned fell back for a reason "
             "the events do not show.";
    f.explanation = fmt::format(
        "{} Seen through: {}.{}{}", why, via,
        g.requested ? fmt::format(" For {} write(s) the result was not seen (io_submit): their "
                                  "requested size is counted.",
                                  g.requested)
                    : std::string(),
        at_end ? " The trace ended while gathering: these are the fallbacks seen so far."
               : fmt::format(" Gathered for {} s after the first; later fallbacks of this process "
                             "on this file are not reported again.",
                             cfg_.gather_ns / 1'000'000'000ull));
    f.exposure = "observed: the O_DIRECT write returned without reaching iomap_dio_rw; " +
                 exposure_text(*row, cfg_.kernel);
    f.trace_ended = at_end;
    std::vector<Event> evs(g.ev.events().begin(), g.ev.events().end());
    put_evidence(f, std::move(evs), cfg_.max_evidence);
    out.push_back(std::move(f));
    // kept only so that it is reported once: give the evidence back
    g.ev.release();
    std::vector<Event>().swap(g.threads);
  }

  // ---- inferred (no fallback hook) ------------------------------------------
  // Both orders count: on 6.18 the fallen-back write runs its writeback
  // synchronously (oe_add in the writer's task), often before the first read.
  void infer(const Event& e, Findings& out) {
    if (e.type == EventType::DioBegin) {
      auto* d = e.as<DioBegin>();
      auto it = users_.find(Key{ino_key(e), e.pid});
      if (it == users_.end()) {
        if (d->write) return;  // a true DIO writer: nothing to report
        it = insert(e);
      }
      auto& u = it->second;
      u.last_ts = e.ts_ns;
      if (d->write) {
        u.dio_write = true;
      } else {
        u.read_seen = true;
        u.nodatasum = d->nodatasum;
        u.read = e;
      }
      maybe_report(u, out);
      return;
    }
    if (e.type != EventType::OeAdd) return;
    auto* o = e.as<Ordered>();
    if (!o->flags || (o->flags & oef::DIRECT)) return;  // unknown flags, or a real DIO write
    auto it = users_.find(Key{ino_key(e), e.pid});
    if (it == users_.end()) it = insert(e);
    auto& u = it->second;
    u.last_ts = e.ts_ns;
    if (!dev_compat(u.dev, e.dev)) return;
    if (!u.oe_seen) u.oe_seen = true, u.oe = e;
    maybe_report(u, out);
  }

  std::unordered_map<Key, User, KeyHash>::iterator insert(const Event& e) {
    if (users_.size() >= cfg_.max_requests) {
      size_t n = evict_oldest(users_, cfg_.max_requests, [](const User& u) { return u.last_ts; });
      evicted_ += n, capped_ += n;
    }
    Key key{ino_key(e), e.pid};
    auto it = users_.emplace(key, User{}).first;
    it->second.dev = e.dev;
    // the exact events already reported (or are gathering) this one
    if (gathered_.count(key)) it->second.reported = true;
    return it;
  }

  void maybe_report(User& u, Findings& out) {
    if (u.reported || u.dio_write || !u.read_seen || !u.oe_seen) return;
    u.reported = true;
    const Event& e = u.oe;
    auto* o = e.as<Ordered>();
    auto* row = exposure_row("dio-csum-fallback");
    auto ex = exposed(*row, cfg_.kernel);
    bool csum_reason = !u.nodatasum && ex != Exposed::No;
    auto f = make_finding(id(), "buffered-fallback-inferred", Level::Hazard, Severity::Info, u.read);
    f.ts_ns = std::max(u.read.ts_ns, u.oe.ts_ns);
    if (!f.dev && u.dev) f.dev = u.dev;
    f.range = {{o->file_offset, o->file_offset + o->len}};
    add_actor(f, u.read, "O_DIRECT user");
    if (e.tid != u.read.tid) add_actor(f, e, "writeback in the same process");
    f.message = fmt::format(
        "{} (pid {}) reads inode {} with O_DIRECT but its writes to it go through the page cache "
        "(it wrote back buffered data [{}, {}) of that file itself){} (inferred: no hook of this "
        "kernel sees the writes themselves)",
        comm_of(u.read), u.read.pid, u.read.ino, o->file_offset, o->file_offset + o->len,
        csum_reason ? ": the file has data checksums" : "");
    f.explanation =
        csum_reason
            ? "Since 968f19c5b1b7 btrfs turns O_DIRECT writes to files with data checksums into "
              "buffered writes, to keep checksums stable (the 2011 unstable-pages checksum bug). A QEMU guest with cache=none "
              "on such an image gets host page caching it did not ask for. To write direct, make "
              "the image nocow (chattr +C on the empty file) or accept the caching."
            : "The reason cannot be told from the events (the file has no data checksums, or the "
              "kernel predates 968f19c5b1b7): unaligned I/O and some extent types also fall back "
              "to buffered writes.";
    f.explanation +=
        " This is an inference from the process's O_DIRECT reads and the buffered ordered "
        "extents it wrote back: the tracer has no hook here that sees O_DIRECT writes fall back "
        "(doctor), so processes that only write with O_DIRECT are not reported.";
    f.exposure = (csum_reason ? std::string("inferred: DIO reads report data checksums and "
                                            "writes appear as buffered ordered extents; ")
                              : std::string("inferred: buffered ordered extents; ")) +
                 exposure_text(*row, cfg_.kernel);
    put_evidence(f, {u.read, u.oe}, cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  DetectorConfig cfg_;
  std::unordered_map<Key, User, KeyHash> users_;
  std::unordered_map<Key, Gathered, KeyHash> gathered_;
  std::vector<Gathered*> due_;
  size_t evicted_ = 0, capped_ = 0;
};

}  // namespace

std::unique_ptr<Detector> make_dio_buffered_fallback(const DetectorConfig& c) {
  return std::make_unique<DioBufferedFallback>(c);
}

}  // namespace bdt::det
