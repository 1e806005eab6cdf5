// The engine: one place that feeds events to every detector, used by live
// tracing and replay alike. Time comes from the events only.
#include "detectors/engine.h"

#include "detectors/shared.h"

namespace bdt {

namespace {
// How often (in event time) detectors get on_time() while events flow.
constexpr uint64_t kTickNs = 250'000'000ull;
}  // namespace

std::vector<std::string_view> detector_ids() {
  return {"em-merge-race",        "stale-eb-reuse",       "dio-short-write",
          "send-vs-relocation",   "dio-unstable-pages",   "dio-buffered-fallback",
          "dio-unexpected-errno", "dio-acked-unbacked",   "dio-stuck",
          "dio-csum-after-direct-write"};
}

void apply_hooks(DetectorConfig& cfg, const std::function<bool(std::string_view)>& attached) {
  // Every O_DIRECT write that falls back is seen by btrfs' write function hook,
  // or on the tracepoint backend by the write-family syscall exits together
  // with iomap_dio_rw_begin (the writes that did reach iomap).
  const bool fn = attached("btrfs_direct_write()");
  const bool sys = attached("iomap_dio_rw_begin") &&
                   (attached("sys_exit_write") || attached("sys_exit_pwrite64") ||
                    attached("sys_exit_pwritev2") || attached("sys_exit_io_submit") ||
                    attached("io_uring_complete"));
  cfg.fallback_events = fn || sys;
}

// Detectors made here alone (ids, triggers) have a det::Shared nobody feeds:
// only an Engine feeds detectors.
std::vector<std::unique_ptr<Detector>> make_detectors(const DetectorConfig& cfg) {
  return det::make_detectors(cfg, std::make_shared<det::Shared>(cfg));
}

std::vector<std::unique_ptr<Detector>> det::make_detectors(const DetectorConfig& cfg,
                                                           const std::shared_ptr<det::Shared>& shared) {
  std::vector<std::unique_ptr<Detector>> v;
  v.push_back(det::make_em_merge_race(cfg));
  v.push_back(det::make_stale_eb_reuse(cfg));
  v.push_back(det::make_dio_short_write(cfg, shared));
  v.push_back(det::make_send_vs_relocation(cfg));
  v.push_back(det::make_dio_unstable_pages(cfg));
  v.push_back(det::make_dio_buffered_fallback(cfg));
  v.push_back(det::make_dio_unexpected_errno(cfg, shared));
  v.push_back(det::make_dio_acked_unbacked(cfg, shared));
  v.push_back(det::make_dio_stuck(cfg, shared));
  v.push_back(det::make_dio_csum_after_direct_write(cfg, shared));
  return v;
}

TriggerSet detector_triggers(const DetectorConfig& cfg) {
  TriggerSet s = 0;
  for (const auto& d : make_detectors(cfg)) s |= d->triggers();
  return s;
}

std::string_view to_string(Trigger t) {
  switch (t) {
    case Trigger::Errno: return "errno";
    case Trigger::Eexist: return "eexist";
    case Trigger::Continued: return "continued";
    case Trigger::ShortWrite: return "short_write";
    case Trigger::EmExist: return "em_exist";
    case Trigger::BufShared: return "buf_shared";
    case Trigger::BufFile: return "buf_file";
    case Trigger::OeBuffered: return "oe_buffered";
    case Trigger::OeIoerr: return "oe_ioerr";
    case Trigger::Csum: return "csum";
    case Trigger::Stall: return "stall";
    case Trigger::CsumDirect: return "csum_direct";
    case Trigger::OeStall: return "oe_stall";
    case Trigger::AckedIoerr: return "acked_ioerr";
  }
  return "?";
}

Engine::Engine(const DetectorConfig& cfg, bool every_event)
    : shared_(std::make_shared<det::Shared>(cfg)),
      detectors_(det::make_detectors(cfg, shared_)) {
  for (size_t t = 0; t < by_type_.size(); ++t)
    for (auto& d : detectors_)
      if (every_event || t == 0 || (d->events() >> t & 1)) by_type_[t].push_back(d.get());
}

void Engine::feed(const Event& ev, Findings& out) {
  // Time never goes backwards for the detectors: the readers reject
  // out-of-order input; live sources smooth small reorderings before this.
  uint64_t now = ev.ts_ns < last_ts_ ? last_ts_ : ev.ts_ns;
  if (now >= last_ts_ + kTickNs && last_ts_ != 0) tick(now, out);
  last_ts_ = now;
  // A type no EventSet can name (none is read or decoded) goes to every detector.
  const size_t t = static_cast<size_t>(ev.type);
  const auto& ds = by_type_[t < by_type_.size() ? t : 0];
  if (ev.ts_ns < now) {
    Event e = ev;
    e.ts_ns = now;
    shared_->on_event(e);
    for (auto* d : ds) d->on_event(e, out);
  } else {
    shared_->on_event(ev);
    for (auto* d : ds) d->on_event(ev, out);
  }
}

void Engine::tick(uint64_t now_ns, Findings& out) {
  if (now_ns < last_ts_) now_ns = last_ts_;
  last_ts_ = now_ns;
  shared_->before_time(now_ns);
  for (auto& d : detectors_) d->on_time(now_ns, out);
  shared_->after_time(now_ns);
}

void Engine::finish(uint64_t now_ns, Findings& out) {
  if (now_ns < last_ts_) now_ns = last_ts_;
  last_ts_ = now_ns;
  shared_->before_finish(now_ns);
  for (auto& d : detectors_) d->on_finish(now_ns, out);
  shared_->after_time(now_ns);
}

void Engine::lost(uint64_t count) {
  for (auto& d : detectors_) d->on_lost(last_ts_, count);
}

std::vector<std::pair<std::string_view, StateSize>> Engine::state() const {
  std::vector<std::pair<std::string_view, StateSize>> v;
  for (auto& d : detectors_) v.emplace_back(d->id(), d->state_size());
  return v;
}

}  // namespace bdt
