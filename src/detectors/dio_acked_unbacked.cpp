// dio-acked-unbacked (invariant): bytes a direct write acknowledged that no
// ordered extent recorded.
//
// Rule: every byte a DIO write reports as written (its return value) is
// covered by an ordered extent that completed successfully; only then does a
// file extent exist for it. Judged per write call (write_calls.h) once the
// call returned and all of its ordered extents are gone (or settle_ns after
// it returned, or the trace ended): the acknowledged bytes that an ordered
// extent covering them failed for (IOERR at removal, a not-uptodate finish)
// and that no ordered extent completed cleanly are a violation. Bytes no
// ordered extent was seen for are not judged (the trace may have missed
// them). A write that failed (returned an error) acknowledged nothing: a
// device error is not a violation. Any pattern: a partial write that was
// continued (the 2023 DIO short-write bug) is one instance, and dio-short-write names it too.
#include <fmt/format.h>

#include "detectors/shared.h"

namespace bdt::det {
namespace {

class DioAckedUnbacked final : public Detector, private WriteCallHooks {
 public:
  DioAckedUnbacked(const DetectorConfig& c, std::shared_ptr<Shared> s)
      : cfg_(c), shared_(std::move(s)), hooks_(shared_->calls.add(*this)) {}
  std::string_view id() const override { return "dio-acked-unbacked"; }
  // Triggers: a failed ordered extent (oe_ioerr) emits the file's requests in
  // flight and those that ended in the last second, with their ordered
  // extents; acked_ioerr (bpf/ordered.bpf.h) emits a write that returned
  // earlier with bytes acknowledged, kept with its DIRECT ordered extents until
  // they are removed, at the first failure of one of them.
  TriggerSet triggers() const override {
    return triggers_of({Trigger::OeIoerr, Trigger::AckedIoerr});
  }
  // The calls are the shared ones (Shared, fed before this detector): what
  // the hooks below reported is taken here.
  void on_event(const Event&, Findings& out) override { shared_->calls.take(hooks_, out); }
  void on_time(uint64_t, Findings& out) override { shared_->calls.take(hooks_, out); }
  void on_finish(uint64_t, Findings& out) override { shared_->calls.take(hooks_, out); }
  StateSize state_size() const override { return shared_->calls.state_size(); }

 private:
  void judged(WriteCall& c, const IntervalSet& hole, bool trace_ended, Findings& out) override {
    auto f = make_finding(id(), "acked-unbacked", Level::Symptom, Severity::Critical, c.first);
    f.ts_ns = std::max(c.last_ts, c.end_ts);
    f.range = {{hole.items().front().first, hole.items().back().second}};
    add_actor(f, c.pid, c.tid, c.comm, "writer");
    std::string holes;
    for (auto& [a, b] : hole.items())
      holes += fmt::format("{}[{}, {})", holes.empty() ? "" : ", ", a, b);
    f.message = fmt::format(
        "a direct write by {} (pid {}) to inode {} acknowledged {} byte(s) ({}) that no ordered "
        "extent recorded: rule 'every acknowledged byte of a DIO write is backed by a completed "
        "ordered extent' broke",
        c.comm, c.pid, c.ino, hole.bytes(), holes);
    f.explanation = fmt::format(
        "The write [{}, {}) returned {} bytes written in {} part(s){}, but the ordered extent "
        "covering {} was dropped with an error and none completed those bytes: btrfs recorded no "
        "file extent for them, so they read back as zeros or stale data although the caller was "
        "told they were written. This is a kernel bug (a device error makes the write itself "
        "fail). Rewrite the range from its source; keep the evidence (`btrfs-dio-trace dump` of "
        "the flight recorder, this finding's JSON) and report it to linux-btrfs@vger.kernel.org "
        "with the kernel version.{}",
        c.start, c.end, c.acked_end - c.start, c.parts,
        c.short_seen ? " (a partial write: see also dio-short-write)" : "", holes,
        trace_ended ? " The trace ended before the kernel removed the failed ordered extent: "
                      "judged on the failure it had reported."
                    : "");
    f.exposure = "observed: the write's return value and its ordered extents' completion";
    f.trace_ended = trace_ended;
    put_evidence(f, c.ev.events(), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  DetectorConfig cfg_;
  std::shared_ptr<Shared> shared_;
  size_t hooks_;  // index of these hooks in shared_->calls
};

}  // namespace

std::unique_ptr<Detector> make_dio_acked_unbacked(const DetectorConfig& c, std::shared_ptr<Shared> s) {
  return std::make_unique<DioAckedUnbacked>(c, std::move(s));
}

}  // namespace bdt::det
