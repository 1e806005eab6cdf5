// dio-short-write (the 2023 DIO short-write bug, fixed by b73a6fd1b1ef): a DIO
// write that is completed in several parts.
//
// Calls and their ordered extents are followed by WriteCalls
// (write_calls.h: how a call, its acknowledged bytes and its ordered
// extents are matched and when it is judged).
// symptom hole:    acknowledged bytes ∩ failed OEs − OEs that completed fine,
//                  of a partial write (a part returned short or was
//                  continued: the 2023 bug's mechanism). A hole in a write that
//                  was never partial is still a broken rule:
//                  dio-acked-unbacked reports every hole.
// symptom stall:   a self-mmap write (below) still in flight after
//                  stall_threshold_ns.
// hazard continued-write: a continuation (done_before > 0).
// hazard self-mmap: the write's buffer is an mmap of the same file and the
//                  buffer's file range overlaps the written range.
// A split alone (oe_split) is not a partial write: large writes are split per
// bio on current kernels.
// Triggers: a continuation (continued), a write that returned short
// (short_write), a failed ordered extent (oe_ioerr), a write from a mapping of
// a file (buf_file: the self-mmap hazard, and its stall). Each emits the
// call's requests with the ordered extents their thread created, and keeps
// the inode hot, so the completions that follow are emitted.
#include <fmt/format.h>

#include "detectors/shared.h"
#include "detectors/exposure.h"

namespace bdt::det {
namespace {

class DioShortWrite final : public Detector, private WriteCallHooks {
 public:
  DioShortWrite(const DetectorConfig& c, std::shared_ptr<Shared> s)
      : cfg_(c), shared_(std::move(s)), hooks_(shared_->calls.add(*this)) {}
  std::string_view id() const override { return "dio-short-write"; }
  TriggerSet triggers() const override {
    return triggers_of({Trigger::Continued, Trigger::ShortWrite, Trigger::OeIoerr, Trigger::BufFile});
  }
  // The calls are the shared ones (Shared, fed before this detector): what
  // the hooks below reported is taken here.
  void on_event(const Event&, Findings& out) override { shared_->calls.take(hooks_, out); }
  void on_time(uint64_t, Findings& out) override { shared_->calls.take(hooks_, out); }
  void on_finish(uint64_t, Findings& out) override { shared_->calls.take(hooks_, out); }
  StateSize state_size() const override { return shared_->calls.state_size(); }

 private:
  // ---- WriteCallHooks ----
  void begun(WriteCall& c, const Event& e, Findings& out) override {
    auto* d = e.as<DioBegin>();
    if (d->buf_file_ino && d->buf_file_ino == e.ino && dev_compat(d->buf_file_dev, e.dev) &&
        overlaps(d->buf_file_off, d->buf_file_off + d->count, d->pos, d->pos + d->count)) {
      c.self_mmap = true;
      c.buf_lo = d->buf_file_off;
      c.buf_hi = d->buf_file_off + d->count;
      c.buf_ino = d->buf_file_ino;
      c.buf_addr = d->buf_addr;
      if (!c.mmap_reported) report_self_mmap(c, e, out);
    }
    if (d->done_before > 0 && !c.cont_reported) report_continued(c, e, out);
  }

  void tick(WriteCall& c, uint64_t now, Findings& out) override {
    if (c.in_flight && c.self_mmap && !c.stall_reported &&
        now - c.begin_ts >= cfg_.stall_threshold_ns)
      report_stall(c, now, out);
  }

  bool hold(const WriteCall& c) const override {
    return c.in_flight && c.self_mmap && !c.stall_reported;
  }

  void judged(WriteCall& c, const IntervalSet& hole, bool trace_ended, Findings& out) override {
    if (!c.short_seen) return;  // not a partial write: dio-acked-unbacked's alone
    auto& ev0 = c.first;
    auto f = make_finding(id(), "acknowledged-hole", Level::Symptom, Severity::Critical, ev0);
    f.ts_ns = std::max(c.last_ts, c.end_ts);
    auto [h0, h1] = hole.items().front();
    uint64_t hend = hole.items().back().second;
    f.range = {{h0, hend}};
    add_actor(f, c.pid, c.tid, c.comm, "writer");
    std::string holes;
    for (auto& [a, b] : hole.items()) holes += fmt::format("{}[{}, {})", holes.empty() ? "" : ", ", a, b);
    f.message = fmt::format(
        "{} bytes that a direct write by {} (pid {}) to inode {} reported as written ({}) were "
        "dropped by btrfs and will read back as zeros",
        hole.bytes(), c.comm, c.pid, c.ino, holes);
    f.explanation = fmt::format(
        "The write [{}, {}) was acknowledged up to {} after {} part(s); the ordered extent "
        "covering {} finished with an error (IOERR) and no later ordered extent completed those "
        "bytes, so no file extent was recorded for them (the 2023 DIO short-write bug, regression "
        "of 51bd9563b678, "
        "fixed by b73a6fd1b1ef). Rewrite the range from the source; upgrade the kernel.{}",
        c.start, c.end, c.acked_end, c.parts, holes,
        trace_ended ? " The trace ended before the kernel removed the failed ordered extent: "
                      "judged on the failure it had reported (IOERR / not uptodate)."
                    : "");
    (void)h1;
    auto* row = exposure_row("dio-partial-hole");
    f.exposure = exposure_text(*row, cfg_.kernel) + "; observed: the hole itself";
    f.trace_ended = trace_ended;
    put_evidence(f, c.ev.events(), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  Severity table_sev(std::string_view key, std::string* text) const {
    auto* row = exposure_row(key);
    *text = exposure_text(*row, cfg_.kernel);
    return exposed(*row, cfg_.kernel) == Exposed::No ? Severity::Info : Severity::Warning;
  }

  void report_continued(WriteCall& c, const Event& e, Findings& out) {
    c.cont_reported = true;
    auto* d = e.as<DioBegin>();
    auto f = make_finding(id(), "continued-write", Level::Hazard, Severity::Warning, e);
    f.severity = table_sev("dio-partial-hole", &f.exposure);
    if (c.split_seen) {
      f.severity = Severity::Info;
      f.exposure += "; observed: the ordered extent was split at the partial bio (fixed behaviour)";
    }
    f.range = {{c.start, c.end}};
    add_actor(f, e, "writer");
    f.message = fmt::format(
        "a direct write by {} (pid {}) to inode {} [{}, {}) stopped after {} bytes (its buffer "
        "faulted) and was continued at {}",
        comm_of(e), e.pid, e.ino, c.start, c.end, d->done_before, d->pos);
    f.explanation =
        "btrfs submitted a partial bio and resumed the write after faulting the buffer in. On "
        "kernels 5.16 to 6.3 the first ordered extent is dropped with IOERR and the acknowledged "
        "bytes become a hole (the 2023 DIO short-write bug, fixed by b73a6fd1b1ef); this detector "
        "reports that as a symptom if it happens. "
        "Typical cause: the write buffer is an mmap of a file that is not fully in memory.";
    put_evidence(f, c.ev.events(), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  void report_self_mmap(WriteCall& c, const Event& e, Findings& out) {
    c.mmap_reported = true;
    auto f = make_finding(id(), "self-mmap-write", Level::Hazard, Severity::Warning, e);
    f.severity = table_sev("dio-self-mmap-deadlock", &f.exposure);
    auto* d = e.as<DioBegin>();
    f.range = {{d->pos, d->pos + d->count}};
    add_actor(f, e, "writer");
    f.message = fmt::format(
        "{} (pid {}) does a direct write to inode {} [{}, {}) from a buffer that is an mmap of "
        "the same file range [{}, {})",
        comm_of(e), e.pid, e.ino, d->pos, d->pos + d->count, c.buf_lo, c.buf_hi);
    f.explanation =
        "If the buffer page-faults part-way the fault waits on the ordered extent this write "
        "holds for the same range: kernels before 6.4 deadlock (the 2023 DIO short-write bug, "
        "fstests generic/729). "
        "If the write does not return within the stall threshold it is reported as a symptom.";
    put_evidence(f, c.ev.events(), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  void report_stall(WriteCall& c, uint64_t now, Findings& out) {
    c.stall_reported = true;
    auto f = make_finding(id(), "self-mmap-stall", Level::Symptom, Severity::Critical, c.first);
    f.ts_ns = now;
    f.range = {{c.start, c.end}};
    add_actor(f, c.pid, c.tid, c.comm, "writer");
    f.message = fmt::format(
        "a direct write by {} (pid {}, tid {}) to inode {} [{}, {}) from an mmap of the same "
        "range has not returned for {} s: it is probably deadlocked on its own ordered extent",
        c.comm, c.pid, c.tid, c.ino, c.start, c.end, (now - c.begin_ts) / 1'000'000'000ull);
    f.explanation =
        "The write's buffer faults on pages of the range being written, and the fault waits for "
        "the ordered extent the write itself created (the 2023 DIO short-write bug). The task is "
        "stuck in D state; "
        "check /proc/<tid>/stack. Fixed by b73a6fd1b1ef (6.4).";
    f.exposure = exposure_text(*exposure_row("dio-self-mmap-deadlock"), cfg_.kernel) +
                 "; observed: the write did not complete";
    put_evidence(f, c.ev.events(), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  DetectorConfig cfg_;
  std::shared_ptr<Shared> shared_;
  size_t hooks_;  // index of these hooks in shared_->calls
};

}  // namespace

std::unique_ptr<Detector> make_dio_short_write(const DetectorConfig& c, std::shared_ptr<Shared> s) {
  return std::make_unique<DioShortWrite>(c, std::move(s));
}

}  // namespace bdt::det
