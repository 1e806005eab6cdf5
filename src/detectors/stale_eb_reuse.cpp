// stale-eb-reuse (the 2015 stale extent buffer race, fixed by 062c19e9dd69):
// find_extent_buffer() re-references an extent buffer flagged STALE while
// free_extent_buffer() is releasing it.
//
// Triggers: none. Extent-buffer records are not part of DIO requests: the
// programs always make them (only for STALE buffers, BDT_EB_ALL=1 for all).
//
// A buffer is identified by (fs, eb_start), refined by eb_id (the kernel
// address) when both events carry one. eb_free has enter/exit phases; the
// task between them is "inside free".
// hazard:  eb_find (its exit) returns a buffer with STALE in bflags while
//          another task is inside eb_free of the same buffer.
// symptom: eb_release of a buffer that is DIRTY or under WRITEBACK (the 2015 report's
//          BUG_ON(extent_buffer_under_io(eb))), or that another task
//          re-referenced (eb_find) while it was being freed.
// There are no tracepoints for these functions: full fidelity needs
// fentry/kprobe on free_extent_buffer, find_extent_buffer (return) and
// btrfs_release_extent_buffer_pages (or release_extent_buffer).
#include <fmt/format.h>

#include "detectors/common.h"
#include "detectors/exposure.h"

namespace bdt::det {
namespace {

struct Free {
  bool active = false;  // entries are kept per thread and reused (no allocation per free)
  Event enter;
  uint64_t last_ts = 0;
  bool hazard_reported = false;
  std::vector<Event> finds;  // other tasks' eb_find during this free (bounded)
};

bool same_eb(const Event& a, const Event& b) {
  auto* x = a.as<ExtentBuffer>();
  auto* y = b.as<ExtentBuffer>();
  if (!x || !y || !same_fs(a.fs, b.fs) || x->eb_start != y->eb_start) return false;
  return x->eb_id == 0 || y->eb_id == 0 || x->eb_id == y->eb_id;
}

std::string flags_text(uint32_t bflags) {
  std::string s;
  for (auto& fn : eb_flag_names())
    if (bflags & fn.bit) s += (s.empty() ? "" : "|") + std::string(fn.name);
  return s.empty() ? "none" : s;
}

class StaleEbReuse final : public Detector {
 public:
  explicit StaleEbReuse(const DetectorConfig& c) : cfg_(c) {}
  std::string_view id() const override { return "stale-eb-reuse"; }
  TriggerSet triggers() const override { return 0; }
  EventSet events() const override {
    return events_of({EventType::EbFree, EventType::EbFind, EventType::EbRelease});
  }

  void on_event(const Event& e, Findings& out) override {
    auto* b = e.as<ExtentBuffer>();
    if (!b) return;
    switch (e.type) {
      case EventType::EbFree:
        if (b->phase == Phase::Exit) {
          if (auto it = frees_.find(e.tid); it != frees_.end() && it->second.active) {
            it->second.active = false;
            --active_;
          }
        } else {
          if (!frees_.count(e.tid) && frees_.size() >= cap()) {
            sweep();
            if (frees_.size() >= cap())
            {
              size_t n = evict_oldest(frees_, cap(), [](const Free& f) { return f.last_ts; });
              evicted_ += n, capped_ += n;
            }
            recount();
          }
          Free& f = frees_[e.tid];
          if (!f.active) ++active_;
          f.active = true;
          f.hazard_reported = false;
          f.finds.clear();
          f.enter = e;
          f.last_ts = e.ts_ns;
        }
        return;
      case EventType::EbFind: return on_find(e, *b, out);
      case EventType::EbRelease: return on_release(e, *b, out);
      default: return;
    }
  }

  void on_time(uint64_t now, Findings&) override {
    for (auto it = frees_.begin(); it != frees_.end();) {
      auto& f = it->second;
      if (now > f.last_ts && now - f.last_ts > cfg_.max_age_ns) {
        if (f.active) ++evicted_;
        it = frees_.erase(it);
      } else {
        ++it;
      }
    }
    recount();
  }

  // Threads freeing an extent buffer at once (an eb_find looks at all of them;
  // each keeps up to 8 finds).
  size_t cap() const { return std::min<size_t>(cfg_.max_entries, 1024); }
  StateSize state_size() const override { return {frees_.size(), cap(), evicted_, capped_}; }

 private:
  void sweep() {
    for (auto it = frees_.begin(); it != frees_.end();)
      it = it->second.active ? std::next(it) : frees_.erase(it);
  }
  void recount() {
    active_ = 0;
    for (auto& [t, f] : frees_) active_ += f.active;
  }

  void on_find(const Event& e, const ExtentBuffer& b, Findings& out) {
    if (!active_) return;
    for (auto& [tid, f] : frees_) {
      if (!f.active || tid == e.tid || !same_eb(f.enter, e)) continue;
      if (f.finds.size() < 8) f.finds.push_back(e);
      f.last_ts = e.ts_ns;
      if (!(b.bflags & ebf::STALE) || f.hazard_reported) continue;
      f.hazard_reported = true;
      auto* row = exposure_row("stale-eb-reuse");
      auto ex = exposed(*row, cfg_.kernel);
      auto fnd = make_finding(id(), "stale-reref", Level::Hazard,
                              ex == Exposed::No ? Severity::Info : Severity::Warning, e);
      fnd.dev.reset();
      fnd.ino.reset();
      fnd.range = {{b.eb_start, b.eb_start + 1}};
      add_actor(fnd, e, "finder");
      add_actor(fnd, f.enter, "freeing task");
      fnd.message = fmt::format(
          "{} (pid {}) took a reference to extent buffer {} flagged STALE while {} (pid {}) was "
          "freeing it",
          comm_of(e), e.pid, b.eb_start, comm_of(f.enter), f.enter.pid);
      fnd.explanation =
          "This is the interleaving of the 2015 stale extent buffer race: free_extent_buffer() saw "
          "refs==2 and STALE and "
          "is dropping both references while find_extent_buffer() re-references the buffer. "
          "Since 062c19e9dd69 find_extent_buffer() serializes on refs_lock for STALE buffers; "
          "without it the finder can dirty a buffer that is about to be released.";
      fnd.exposure = exposure_text(*row, cfg_.kernel);
      put_evidence(fnd, {f.enter, e}, cfg_.max_evidence);
      out.push_back(std::move(fnd));
    }
  }

  void on_release(const Event& e, const ExtentBuffer& b, Findings& out) {
    Free* f = nullptr;
    auto it = frees_.find(e.tid);
    if (it != frees_.end() && it->second.active && same_eb(it->second.enter, e)) {
      f = &it->second;
    } else {
      for (auto& [tid, x] : frees_)
        if (x.active && same_eb(x.enter, e)) {
          f = &x;
          break;
        }
    }
    bool under_io = b.bflags & (ebf::DIRTY | ebf::WRITEBACK);
    bool reref = f && !f->finds.empty();
    if (!under_io && !reref) return;
    auto fnd = make_finding(id(), under_io ? "release-under-io" : "release-after-reref",
                            Level::Symptom, Severity::Critical, e);
    fnd.dev.reset();
    fnd.ino.reset();
    fnd.range = {{b.eb_start, b.eb_start + 1}};
    add_actor(fnd, e, "releasing task");
    std::vector<Event> evs;
    if (f) {
      evs.push_back(f->enter);
      if (f->enter.tid != e.tid) add_actor(fnd, f->enter, "freeing task");
      for (auto& x : f->finds) {
        evs.push_back(x);
        add_actor(fnd, x, "finder");
      }
    }
    evs.push_back(e);
    fnd.message =
        under_io
            ? fmt::format("extent buffer {} was released while {} (flags {}): the kernel hits "
                          "BUG_ON(extent_buffer_under_io) here",
                          b.eb_start,
                          (b.bflags & ebf::DIRTY) ? "dirty" : "under writeback",
                          flags_text(b.bflags))
            : fmt::format("extent buffer {} was released although {} re-referenced it while it "
                          "was being freed",
                          b.eb_start, comm_of(f->finds.front()));
    fnd.explanation =
        "A STALE extent buffer was reused by another task during free_extent_buffer() and then "
        "released anyway (the 2015 stale extent buffer race): a kernel BUG or a use-after-free of "
        "metadata follows. Save "
        "dmesg and this trace; fixed by 062c19e9dd69.";
    auto* row = exposure_row("stale-eb-reuse");
    fnd.exposure = exposure_text(*row, cfg_.kernel) + "; observed: the release itself";
    put_evidence(fnd, std::move(evs), cfg_.max_evidence);
    out.push_back(std::move(fnd));
    if (f) f->finds.clear();
  }

  DetectorConfig cfg_;
  std::unordered_map<uint32_t, Free> frees_;
  size_t active_ = 0;
  size_t evicted_ = 0, capped_ = 0;
};

}  // namespace

std::unique_ptr<Detector> make_stale_eb_reuse(const DetectorConfig& c) {
  return std::make_unique<StaleEbReuse>(c);
}

}  // namespace bdt::det
