// The path every event takes after its source (cli/pipeline.h).
#include "cli/pipeline.h"

#include <fmt/format.h>

namespace bdt::cli {

void apply_header_hooks(DetectorConfig& cfg, const TraceHeader& h) {
  apply_hooks(cfg, [&h](std::string_view name) {
    for (const auto& x : h.hooks)
      if (x.name == name) return x.attached;
    return false;
  });
}

Pipeline::Pipeline(PipelineOptions opts, std::unique_ptr<Sink> sink)
    : opts_(std::move(opts)), sink_(std::move(sink)), engine_(opts_.detectors) {}

void Pipeline::on_event(const Event& ev) {
  ++events_total_;
  auto t = static_cast<size_t>(ev.type);
  if (t < std::size(by_type_)) ++by_type_[t];
  if (ev.ts_ns > last_ts_) last_ts_ = ev.ts_ns;
  if (recorder_) recorder_->write(ev);
  if (snap_) snap_->on_event(ev);
  if (opts_.print_events) sink_->event(ev);
  scratch_.clear();
  engine_.feed(ev, scratch_);
  emit(scratch_);
}

void Pipeline::on_time(uint64_t now_ns) {
  // A quiet trace must not keep its last events in the recorder's buffer.
  if (recorder_ && now_ns >= last_flush_ns_ + 1'000'000'000ull) {
    recorder_->flush();
    last_flush_ns_ = now_ns;
  }
  scratch_.clear();
  engine_.tick(now_ns, scratch_);
  emit(scratch_);
}

void Pipeline::emit(Findings& fs) {
  for (auto& f : fs) {
    if (finding_hook_) finding_hook_(f);
    ++findings_total_;
    ++findings_by_[f.detector + "/" + std::string(to_string(f.level))];
    sink_->finding(f);
    if (snap_) snapshot(f);
  }
}

void Pipeline::snapshot(const Finding& f) {
  auto r = snap_->on_finding(f);
  using W = SnapshotResult::What;
  switch (r.what) {
    case W::Written:
      fmt::print(stderr, "btrfs-dio-trace: snapshot for {}/{}: {} ({} events{})\n", f.detector, f.kind,
                 r.path, r.events,
                 r.left_out ? fmt::format(", {} oldest left out for the size cap", r.left_out) : "");
      break;
    case W::RateLimited: break;
    case W::LimitReached:
      if (!snap_limit_said_)
        fmt::print(stderr, "btrfs-dio-trace: snapshot limit reached ({} files): no more snapshots\n",
                   snap_->written());
      snap_limit_said_ = true;
      break;
    case W::Failed:
      ++snap_failed_;
      fmt::print(stderr, "btrfs-dio-trace: warning: snapshot for {}/{} not written: {}\n", f.detector,
                 f.kind, r.error);
      break;
  }
}

void Pipeline::finish(uint64_t now_ns, Summary s) {
  scratch_.clear();
  engine_.finish(now_ns ? now_ns : last_ts_, scratch_);
  emit(scratch_);
  if (recorder_) recorder_->flush();
  if (!s.events_from_kernel) {
    s.events_total = events_total_;
    for (int i = 1; i <= kEventTypeCount; ++i)
      if (by_type_[i]) s.events_by_type[std::string(to_string(static_cast<EventType>(i)))] = by_type_[i];
  } else {
    s.records_total = events_total_;
  }
  s.findings_total = findings_total_;
  s.findings_by_detector = findings_by_;
  for (const auto& [id, st] : engine_.state()) {
    s.notes.emplace_back(fmt::format("state {}", id),
                         fmt::format("{} entries (cap {}, evicted {})", st.entries, st.capacity,
                                     st.evicted));
    // Never silent: what a cap made a detector stop following (docs/hardening.md).
    if (st.capped)
      s.notes.emplace_back(fmt::format("state cap reached {}", id),
                           fmt::format("{} entries dropped from tracking (requests, files, "
                                       "ordered extents...): findings about them may be missed",
                                       st.capped));
  }
  if (snap_) {
    s.notes.emplace_back("snapshots written", fmt::format("{}", snap_->written()));
    if (snap_failed_) s.notes.emplace_back("snapshots failed", fmt::format("{}", snap_failed_));
  }
  sink_->summary(s);
}

}  // namespace bdt::cli
