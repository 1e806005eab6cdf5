// dio-csum-after-direct-write (invariant): data a direct write stored fails
// its checksum.
//
// Rule: on a correct kernel (and device) data written with O_DIRECT to a file
// with data checksums reads back matching its checksum, whatever the buffer
// was: the kernel must either write what it checksummed or not write
// directly. Per inode the ranges whose last write seen was a direct write
// that completed successfully are remembered: the acknowledged bytes of a
// dio_end (ret > 0) of a write whose dio_begin said the inode has checksums
// (nodatasum false). A later buffered write of the range (an ordered extent
// without DIRECT) or a direct write that failed forgets it. A csum_error on a
// remembered range is a violation. The 2011 unstable-pages checksum bug (a buffer changed in flight) is
// one instance; dio-unstable-pages names that one when the buffer was shared.
// A device that returns other data than it was given breaks the rule too:
// the message says to check the device first.
// Needs checksum failures (csum_error: a function hook on the checksum
// check); a read's EIO alone could be a device error and is not used.
#include <fmt/format.h>

#include "detectors/shared.h"

namespace bdt::det {
namespace {

struct Written {
  uint64_t dev = 0, lo = 0, hi = 0;
  Event begin, end;
  bool reported = false;
};

constexpr size_t kPerInode = 32;

class DioCsumAfterDirectWrite final : public Detector {
 public:
  DioCsumAfterDirectWrite(const DetectorConfig& c, std::shared_ptr<Shared> s)
      : cfg_(c), shared_(std::move(s)), written_(c.max_requests, kPerInode) {}
  std::string_view id() const override { return "dio-csum-after-direct-write"; }
  // Triggers: a checksum failure on a file whose last acknowledged direct
  // writes the kernel remembers (csum_direct, bpf/direct_writes.bpf.h: up to 4
  // per file, 512 files, only checksummed files, only writes nothing else
  // emitted); they are emitted before the csum_error record, however long ago
  // they were written. Writes emitted for other reasons are seen as they go.
  TriggerSet triggers() const override { return triggers_of({Trigger::CsumDirect}); }
  EventSet events() const override {
    return events_of({EventType::DioEnd, EventType::OeAdd, EventType::CsumError});
  }

  void on_event(const Event& e, Findings& out) override {
    switch (e.type) {
      // the requests are the shared table's (Shared, fed before this detector)
      case EventType::DioEnd: return on_end(e);
      case EventType::OeAdd: {  // a buffered write (no DIRECT) rewrites the range
        auto* o = e.as<Ordered>();
        if (o->flags && !(o->flags & oef::DIRECT))
          written_.forget(e, o->file_offset, o->file_offset + o->len, [](Written&) {});
        return;
      }
      case EventType::CsumError: return on_csum(e, out);
      default: return;
    }
  }

  // A checksum failure may come long after the write: remembered ranges age
  // out only when the cap needs room (on_time: nothing to do).

  StateSize state_size() const override {
    auto& t = shared_->requests.table();
    return {t.size() + written_.size(), t.cap() + written_.cap(),
            t.evicted() + written_.capped(), t.capped() + written_.capped()};
  }

 private:
  void on_end(const Event& e) {
    auto* d = e.as<DioEnd>();
    if (d->write && !*d->write) return;
    auto* r = shared_->requests.ended();
    if (!r || !r->write) return;
    auto* b = r->begin.as<DioBegin>();
    uint64_t lo = r->start, hi = b->pos + b->count;
    // this write is now the last one of its range
    written_.forget(r->begin, lo, hi, [](Written&) {});
    if (d->ret <= 0 || b->nodatasum) return;
    hi = std::min(hi, r->start + uint64_t(d->ret));
    if (hi <= lo) return;
    Event at = r->begin;
    at.ts_ns = e.ts_ns;
    written_.add(at, Written{r->begin.dev, lo, hi, r->begin, e, false});
  }

  void on_csum(const Event& e, Findings& out) {
    auto* c = e.as<CsumError>();
    uint64_t lo = c->offset, hi = c->offset + std::max<uint64_t>(c->len, 1);
    auto* v = written_.find(ino_key(e));
    if (!v) return;
    for (auto& w : *v) {
      if (w.reported || !dev_compat(w.dev, e.dev) || !overlaps(w.lo, w.hi, lo, hi)) continue;
      w.reported = true;
      report(e, w, std::max(lo, w.lo), std::min(hi, w.hi), out);
    }
  }

  void report(const Event& e, const Written& w, uint64_t a, uint64_t b, Findings& out) {
    auto f = make_finding(id(), "csum-after-direct-write", Level::Symptom, Severity::Critical, w.begin);
    f.ts_ns = e.ts_ns;
    f.range = {{a, b}};
    if (!f.dev && e.dev) f.dev = e.dev;
    add_actor(f, w.begin, "writer");
    if (e.tid != w.begin.tid) add_actor(f, e, "checksum check");
    f.message = fmt::format(
        "data at [{}, {}) of inode {}, last written with O_DIRECT by {} (pid {}) and acknowledged, "
        "failed its checksum (mirror {}): rule 'data written directly reads back matching its "
        "checksum' broke",
        a, b, e.ino, comm_of(w.begin), w.begin.pid, e.as<CsumError>()->mirror);
    f.explanation =
        "The checksum btrfs stored for this range does not match the data on disk, and the last "
        "write of the range was a direct write that completed successfully: the kernel wrote "
        "other bytes than it checksummed (e.g. the write's buffer changed while in flight, "
        "the 2011 unstable-pages checksum bug), or the device returned other data than it was given. Check the device first "
        "(SMART, kernel log: a device error is not a kernel bug); otherwise keep the evidence "
        "(`btrfs-dio-trace dump` of the flight recorder, this finding's JSON) and report it to "
        "linux-btrfs@vger.kernel.org. Restore the range from a good copy.";
    f.exposure = "observed: a checksum failure on a range whose last write seen was direct and "
                 "successful";
    put_evidence(f, {w.begin, w.end, e}, cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  DetectorConfig cfg_;
  std::shared_ptr<Shared> shared_;
  LastWrites<Written> written_;  // ranges last written by an acknowledged direct write
};

}  // namespace

std::unique_ptr<Detector> make_dio_csum_after_direct_write(const DetectorConfig& c,
                                                            std::shared_ptr<Shared> s) {
  return std::make_unique<DioCsumAfterDirectWrite>(c, std::move(s));
}

}  // namespace bdt::det
