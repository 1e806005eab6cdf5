// dio-unstable-pages (the 2011 unstable-pages checksum bug, avoided since
// 968f19c5b1b7): an O_DIRECT write to a file with data checksums from a buffer
// another task can modify while the I/O is in flight.
//
// hazard:  dio_begin of a write (reaching iomap_dio_rw_begin means it really
//          went direct: since 968f19c5b1b7 checksummed files fall back to
//          buffered writes before that point), nodatasum false, user buffer
//          mapped MAP_SHARED and writable. Reported once per (inode, process)
//          per repeat interval; every such write's range is remembered as
//          "last written by a hazardous write" until another write covers it.
// symptom: csum_error on such a range, or a DIO read of such a range ending
//          with EIO; the finding names the writing process, the shared buffer
//          and the failing ranges. A read of a torn write fails on many blocks
//          (one csum_error each, 256 for 1 MiB): they are gathered per write
//          and reported once, with every failing range, when the read that hit
//          them ends, 100 ms (event time) after the last one, when the range is
//          written again, or at the end of the trace.
// Triggers: the hazardous write itself (buf_shared: a write to a checksummed
// file from a shared writable buffer), errors (the EIO read), checksum
// failures. The first keeps the inode hot for max_age_ns: the later writes
// that make a range safe again, and the reads, are emitted as they happen.
#include <fmt/format.h>

#include <optional>
#include <unordered_set>

#include "detectors/common.h"
#include "detectors/exposure.h"

namespace bdt::det {
namespace {

// Checksum failures seen on one hazardous write's range, not reported yet.
struct Failed {
  IntervalSet ranges;     // the failing blocks, merged
  uint64_t blocks = 0;    // csum_error events
  uint64_t last_ts = 0;
  Evidence ev{8};         // the first and the last csum_error events
};
struct HazWrite {
  uint64_t dev = 0, lo = 0, hi = 0;
  Event begin;
  bool symptom_reported = false;
  std::optional<Failed> failed;
};
struct Read {
  Event begin;
  uint64_t lo = 0, hi = 0;
};

struct InoPid {
  InoKey k;
  uint32_t pid;
  bool operator==(const InoPid&) const = default;
};
struct InoPidHash {
  size_t operator()(const InoPid& x) const { return InoKeyHash{}(x.k) ^ (size_t(x.pid) << 1); }
};

constexpr size_t kPerInode = 16;
// csum_error events of one read come microseconds apart (one end-io worker per bio)
constexpr uint64_t kGatherNs = 100'000'000ull;

class DioUnstablePages final : public Detector {
 public:
  explicit DioUnstablePages(const DetectorConfig& c) : cfg_(c), writes_(c.max_requests, kPerInode), gate_(gate_cap(c)) {}
  std::string_view id() const override { return "dio-unstable-pages"; }
  TriggerSet triggers() const override {
    return triggers_of({Trigger::BufShared, Trigger::Errno, Trigger::Csum});
  }
  EventSet events() const override {
    return events_of({EventType::DioBegin, EventType::DioEnd, EventType::OeAdd, EventType::CsumError});
  }

  void on_event(const Event& e, Findings& out) override {
    switch (e.type) {
      case EventType::DioBegin: {
        auto* d = e.as<DioBegin>();
        if (d->write) on_write(e, *d, out);
        else track_read(e, *d);
        return;
      }
      case EventType::DioEnd: return on_dio_end(e, out);
      case EventType::OeAdd: {  // a buffered write (no DIRECT) overwrites the range
        auto* o = e.as<Ordered>();
        if (o->flags && !(o->flags & oef::DIRECT))
          forget(e, o->file_offset, o->file_offset + o->len, out);
        return;
      }
      case EventType::CsumError: {
        auto* c = e.as<CsumError>();
        return on_csum_error(e, c->offset, c->offset + std::max<uint64_t>(c->len, 1));
      }
      default: return;
    }
  }

  void on_time(uint64_t now, Findings& out) override {
    flush_failed(now >= kGatherNs ? now - kGatherNs : 0, out);
    evicted_ += writes_.evict_aged(now, cfg_.max_age_ns);
    evicted_ += evict_aged(reads_, now, cfg_.max_age_ns, [](const Read& r) { return r.begin.ts_ns; });
    evicted_ += gate_.evict(now, std::max(cfg_.max_age_ns, cfg_.repeat_ns));
  }

  void on_finish(uint64_t now, Findings& out) override {
    flush_failed(UINT64_MAX, out);
    on_time(now, out);
  }

  StateSize state_size() const override {
    return {writes_.size() + reads_.size() + gate_.size(),
            writes_.cap() + cfg_.max_requests + gate_.cap(),
            evicted_ + writes_.capped() + gate_.evicted(), capped_ + writes_.capped() + gate_.evicted()};
  }

 private:
  // [lo, hi) of e's inode is written again: its hazardous writes there are
  // no longer the last ones (failures gathered on them are reported first).
  void forget(const Event& e, uint64_t lo, uint64_t hi, Findings& out) {
    writes_.forget(e, lo, hi, [&](HazWrite& w) {
      if (w.failed) report(w, e.ino, nullptr, nullptr, out);  // before the range changes hands
    });
  }

  void on_write(const Event& e, const DioBegin& d, Findings& out) {
    uint64_t lo = d.pos, hi = d.pos + d.count;
    forget(e, lo, hi, out);  // this write is now the last one for the range
    if (d.nodatasum || !(d.buf_shared && d.buf_writable)) return;
    writes_.add(e, HazWrite{e.dev, lo, hi, e, false});

    InoPid key{ino_key(e), e.pid};
    if (!gate_.allow(key, e.ts_ns, cfg_.repeat_ns)) return;
    uint64_t suppressed = gate_.take_suppressed(key);
    auto* row = exposure_row("dio-csum-unstable");
    auto f = make_finding(id(), "shared-buffer-write", Level::Hazard, Severity::Warning, e);
    f.range = {{lo, hi}};
    add_actor(f, e, "writer");
    f.message = fmt::format(
        "{} (pid {}) writes inode {} [{}, {}) with O_DIRECT from a shared, writable buffer "
        "({}{}) while the file has data checksums",
        comm_of(e), e.pid, e.ino, lo, hi, hex(d.buf_addr),
        d.buf_file_ino ? fmt::format(", mmap of inode {} at {}", d.buf_file_ino, d.buf_file_off)
                       : std::string(", anonymous MAP_SHARED"));
    f.explanation = fmt::format(
        "If any process changes the buffer while the write is in flight, btrfs stores a checksum "
        "of other bytes than the ones that reach the disk, and later reads fail with EIO and "
        "'csum failed' (the 2011 unstable-pages checksum bug). Use a private buffer, make the file "
        "nocow (chattr +C on the empty file), or run a kernel with 968f19c5b1b7.{}",
        suppressed ? fmt::format(" {} similar write(s) by this process were not reported "
                                 "separately.",
                                 suppressed)
                   : std::string());
    f.exposure = "observed: the write reached iomap_dio_rw_begin on a file with data checksums, "
                 "so this kernel wrote it direct; " +
                 exposure_text(*row, cfg_.kernel);
    put_evidence(f, {e}, cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  void track_read(const Event& e, const DioBegin& d) {
    if (!writes_.has(ino_key(e))) return;  // only reads of ranges we care about
    if (reads_.size() >= cfg_.max_requests && !reads_.count(e.tid)) {
      size_t n = evict_oldest(reads_, cfg_.max_requests, [](const Read& r) { return r.begin.ts_ns; });
      evicted_ += n, capped_ += n;
    }
    reads_[e.tid] = Read{e, d.pos, d.pos + d.count};
  }

  void on_dio_end(const Event& e, Findings& out) {
    auto it = reads_.find(e.tid);
    if (it == reads_.end()) return;
    Read r = std::move(it->second);
    reads_.erase(it);
    auto* d = e.as<DioEnd>();
    bool eio = d->ret == kEIO || d->error == kEIO;
    auto* v = writes_.find(ino_key(r.begin));
    if (!v) return;
    for (auto& w : *v) {
      if (!dev_compat(w.dev, r.begin.dev) || !overlaps(w.lo, w.hi, r.lo, r.hi) || w.symptom_reported)
        continue;
      // the read that hit the gathered failures ended: report them, with the reader
      if (w.failed || eio) report(w, r.begin.ino, &r, eio ? &e : nullptr, out);
    }
  }

  // A checksum failure on a block of a range last written by a hazardous write.
  void on_csum_error(const Event& at, uint64_t lo, uint64_t hi) {
    auto* v = writes_.find(ino_key(at));
    if (!v) return;
    failing_.insert(ino_key(at));
    for (auto& w : *v) {
      if (!dev_compat(w.dev, at.dev) || !overlaps(w.lo, w.hi, lo, hi) || w.symptom_reported)
        continue;
      if (!w.failed) w.failed.emplace();
      auto& f = *w.failed;
      f.ranges.add(std::max(lo, w.lo), std::min(hi, w.hi));
      ++f.blocks;
      f.last_ts = at.ts_ns;
      f.ev.push(at);
    }
  }

  // Reports the failures gathered on writes whose last failure is at or before `upto`.
  // Only the inodes with a checksum failure since their last flush are looked at.
  void flush_failed(uint64_t upto, Findings& out) {
    for (auto it = failing_.begin(); it != failing_.end();) {
      bool left = false;
      if (auto* v = writes_.find(*it))
        for (auto& w : *v) {
          if (w.failed && w.failed->last_ts <= upto) report(w, it->ino, nullptr, nullptr, out);
          left = left || w.failed;
        }
      it = left ? std::next(it) : failing_.erase(it);
    }
  }

  // The symptom of hazardous write `w`: checksum failures gathered on its range
  // (csum-error), or only a direct read of it ending with EIO (read-eio: no
  // checksum-failure hook). `r`: the direct read that hit them, if known.
  void report(HazWrite& w, uint64_t ino, const Read* r, const Event* end, Findings& out) {
    std::optional<Failed> failed = std::move(w.failed);
    w.failed.reset();
    if (w.symptom_reported) return;
    w.symptom_reported = true;
    auto* d = w.begin.as<DioBegin>();
    const Event& primary = failed ? failed->ev.events().front() : *end;
    auto f = make_finding(id(), failed ? "csum-error" : "read-eio", Level::Symptom, Severity::Critical,
                          primary);
    std::vector<Event> evs{w.begin};
    if (r) {  // the reader is the primary actor
      f.pid = r->begin.pid;
      f.tid = r->begin.tid;
      f.comm = comm_of(r->begin);
      evs.push_back(r->begin);
    }
    f.ino = ino;
    if (primary.dev || w.dev) f.dev = primary.dev ? primary.dev : w.dev;
    add_actor(f, w.begin, "writer");
    if (r) add_actor(f, r->begin, "reader");
    std::string what;
    if (failed) {
      const auto& v = failed->ranges.items();
      f.range = {{v.front().first, v.back().second}};
      std::string list;
      for (size_t i = 0; i < v.size() && i < 8; ++i)
        list += fmt::format("{}[{}, {})", i ? ", " : "", v[i].first, v[i].second);
      if (v.size() > 8) list += fmt::format(", ... ({} ranges)", v.size());
      what = fmt::format("{} data checksum error{} ({} bytes in {})", failed->blocks,
                         failed->blocks == 1 ? "" : "s", failed->ranges.bytes(), list);
      if (end) what += fmt::format(", and a direct read by {} (pid {}) failed with EIO",
                                   comm_of(r->begin), r->begin.pid);
      for (auto& x : failed->ev.events()) evs.push_back(x);
    } else {
      uint64_t a = std::max(r->lo, w.lo), b = std::min(r->hi, w.hi);
      f.range = {{a, b}};
      what = fmt::format("a direct read by {} (pid {}) of [{}, {}) failed with EIO",
                         comm_of(r->begin), r->begin.pid, a, b);
    }
    if (end) evs.push_back(*end);
    f.message = fmt::format(
        "{} on inode {}, a range last written with O_DIRECT by {} (pid {}) from the shared "
        "writable buffer {}",
        what, ino, comm_of(w.begin), w.begin.pid, hex(d ? d->buf_addr : 0));
    f.explanation =
        "The buffer was most likely modified while the O_DIRECT write was in flight, so the "
        "stored checksum does not match the data on disk (the 2011 unstable-pages checksum bug, "
        "avoided since 968f19c5b1b7). The data in this range is "
        "whatever the buffer held at DMA time; restore it from a good copy. Stop writing from "
        "shared buffers or make the file nocow.";
    f.exposure = "observed: checksum failure after a direct write from a shared buffer; " +
                 exposure_text(*exposure_row("dio-csum-unstable"), cfg_.kernel);
    put_evidence(f, std::move(evs), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  DetectorConfig cfg_;
  LastWrites<HazWrite> writes_;  // ranges last written by a hazardous write
  std::unordered_set<InoKey, InoKeyHash> failing_;  // inodes with failures not reported yet
  std::unordered_map<uint32_t, Read> reads_;  // at most max_requests
  RepeatGate<InoPid, InoPidHash> gate_;
  size_t evicted_ = 0, capped_ = 0;
};

}  // namespace

std::unique_ptr<Detector> make_dio_unstable_pages(const DetectorConfig& c) {
  return std::make_unique<DioUnstablePages>(c);
}

}  // namespace bdt::det
