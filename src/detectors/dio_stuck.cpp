// dio-stuck (invariant): a direct I/O request, or the DIRECT ordered extent
// of a direct write, stays open while the same filesystem keeps completing
// others that came after it.
//
// Rule: on a correct kernel a DIO request ends and a DIRECT ordered extent is
// removed once the device has done the I/O. A slow or hung device delays
// every request: the requests and ordered extents that began after the stuck
// one wait too. A hang in the DIO path (a deadlock on the request's own
// ordered extent, a lost wakeup, a leaked lock) holds one request while
// later ones on the same filesystem complete. So:
//   stuck request: open for longer than stall_threshold_ns (plus its size at
//     4 MiB/s, so a huge request on a slow device is not taken for a hang),
//     and since it began at least one DIO request that *began after it* on
//     the same filesystem (fs) ended. The finding names how many did and
//     when the last one ended.
//   stuck ordered extent: a DIRECT oe_add whose range was not removed for
//     as long, while a DIRECT ordered extent added after it on the same
//     filesystem was removed; not reported when its request is reported.
// Each is reported once. Without completions after it (the whole filesystem
// or device stalls) nothing is reported: that is a slow or dead device, not
// this rule.
#include <fmt/format.h>

#include <unordered_set>

#include "detectors/common.h"

namespace bdt::det {
namespace {

constexpr uint64_t kBytesPerSecondFloor = 4ull << 20;
constexpr size_t kPerFsRecent = 4;  // recent completions kept per filesystem

// What the filesystem completed lately, for the evidence.
struct Done {
  uint64_t begin_ts = 0;  // when the completed request / extent began
  Event end;              // its end (dio_end / oe_remove)
};
struct FsActivity {
  uint64_t latest_begin_done = 0;  // the latest begin time among completed ones
  uint64_t completed = 0;          // how many completed (total)
  std::vector<Done> recent;        // the last few
  uint64_t last_ts = 0;
};

struct OpenOe {
  uint64_t id = 0;
  Event add;
  uint64_t s = 0, e = 0;  // still open part
  bool reported = false;
  uint64_t req_id = 0;    // the request of the thread that added it (0: none)
};

class DioStuck final : public Detector {
 public:
  explicit DioStuck(const DetectorConfig& c) : cfg_(c), reqs_(main_cap(c) / 2) {}
  std::string_view id() const override { return "dio-stuck"; }
  // Triggers: a request in flight past the stall threshold (stall). The later
  // completions that tell a hang from a slow disk are those emitted anyway
  // (hot inodes, --all-events).
  TriggerSet triggers() const override { return triggers_of({Trigger::Stall}); }

  void on_event(const Event& e, Findings& out) override {
    switch (e.type) {
      case EventType::DioBegin: {
        std::optional<DioRequests::Req> dropped;
        reqs_.begin(e, &dropped);
        if (dropped) forget(dropped->id);
        return;
      }
      case EventType::DioEnd: {
        auto r = reqs_.end(e);
        if (!r) return;
        forget(r->id);
        completed(e.fs, r->first_ts, e);
        return;
      }
      case EventType::OeAdd: return on_oe_add(e);
      case EventType::OeRemove: return on_oe_remove(e);
      default: return;
    }
  }

  // Records were lost: a request or extent open now may have lost its end.
  void on_lost(uint64_t now, uint64_t) override { loss_ts_ = std::max(loss_ts_, now); }

  void on_time(uint64_t now, Findings& out) override {
    for (auto& r : reqs_.open()) {
      if (reported_.count(r.id) || now - r.first_ts < threshold(r)) continue;
      if (r.first_ts <= loss_ts_) continue;  // its end may be among the lost records
      auto* act = activity(r.begin.fs);
      if (!act || act->latest_begin_done <= r.first_ts) continue;
      reported_.insert(r.id);
      report_request(r, *act, now, out);
    }
    for (auto& o : oes_) {
      if (o.reported || now - o.add.ts_ns < cfg_.stall_threshold_ns) continue;
      if (o.req_id && reported_.count(o.req_id)) continue;  // its request was reported
      if (o.add.ts_ns <= loss_ts_) continue;
      auto* act = oe_activity(o.add.fs);
      if (!act || act->latest_begin_done <= o.add.ts_ns) continue;
      o.reported = true;
      report_oe(o, *act, now, out);
    }
    evicted_ += reqs_.evict(now, std::max(cfg_.max_age_ns, 4 * cfg_.stall_threshold_ns));
    const uint64_t age = std::max(cfg_.max_age_ns, 4 * cfg_.stall_threshold_ns);
    for (size_t i = 0; i < oes_.size();)
      if (now - oes_[i].add.ts_ns > age) {
        oes_[i] = std::move(oes_.back());
        oes_.pop_back();
        ++evicted_;
      } else {
        ++i;
      }
    for (auto it = reported_.begin(); it != reported_.end();) {
      bool open = false;
      for (auto& r : reqs_.open()) open = open || r.id == *it;
      it = open ? std::next(it) : reported_.erase(it);
    }
    evicted_ += evict_aged(fs_, now, age, [](const FsActivity& a) { return a.last_ts; });
    evicted_ += evict_aged(fs_oe_, now, age, [](const FsActivity& a) { return a.last_ts; });
  }

  StateSize state_size() const override {
    return {reqs_.size() + oes_.size() + fs_.size() + fs_oe_.size(), main_cap(cfg_),
            evicted_ + reqs_.evicted()};
  }

 private:
  uint64_t threshold(const DioRequests::Req& r) const {
    auto* b = r.begin.as<DioBegin>();
    uint64_t bytes = b ? b->pos + b->count - r.start : 0;
    return cfg_.stall_threshold_ns + bytes * 1'000'000'000ull / kBytesPerSecondFloor;
  }

  static void note(FsActivity& a, uint64_t begin_ts, const Event& end) {
    a.latest_begin_done = std::max(a.latest_begin_done, begin_ts);
    ++a.completed;
    a.last_ts = end.ts_ns;
    if (a.recent.size() >= kPerFsRecent) a.recent.erase(a.recent.begin());
    a.recent.push_back(Done{begin_ts, end});
  }
  void completed(const Fsid& fs, uint64_t begin_ts, const Event& end) {
    note(fs_[fs], begin_ts, end);
  }
  FsActivity* activity(const Fsid& fs) {
    auto it = fs_.find(fs);
    return it == fs_.end() ? nullptr : &it->second;
  }
  FsActivity* oe_activity(const Fsid& fs) {
    auto it = fs_oe_.find(fs);
    return it == fs_oe_.end() ? nullptr : &it->second;
  }

  void forget(uint64_t id) { reported_.erase(id); }

  void on_oe_add(const Event& e) {
    auto* o = e.as<Ordered>();
    if (!(o->flags & oef::DIRECT)) return;
    if (oes_.size() >= main_cap(cfg_) / 2) {  // drop the oldest
      size_t oldest = 0;
      for (size_t i = 1; i < oes_.size(); ++i)
        if (oes_[i].add.ts_ns < oes_[oldest].add.ts_ns) oldest = i;
      oes_[oldest] = std::move(oes_.back());
      oes_.pop_back();
      ++evicted_;
    }
    OpenOe n;
    n.id = ++next_oe_;
    n.add = e;
    n.s = o->file_offset;
    n.e = o->file_offset + o->len;
    if (auto* r = reqs_.of_thread(e.tid)) n.req_id = r->id;
    oes_.push_back(std::move(n));
  }

  void on_oe_remove(const Event& e) {
    auto* o = e.as<Ordered>();
    if (o->flags && !(o->flags & oef::DIRECT)) return;
    uint64_t s = o->file_offset, t = o->file_offset + o->len;
    for (size_t i = 0; i < oes_.size();) {
      auto& x = oes_[i];
      if (!same_fs(x.add.fs, e.fs) || x.add.ino != e.ino || !dev_compat(x.add.dev, e.dev) ||
          !overlaps(x.s, x.e, s, t)) {
        ++i;
        continue;
      }
      // the removed part is done; a split-off remainder stays open
      if (s <= x.s && x.e <= t) {
        note(fs_oe_[e.fs], x.add.ts_ns, e);
        oes_[i] = std::move(oes_.back());
        oes_.pop_back();
        continue;
      }
      if (s <= x.s) x.s = t;
      else if (x.e <= t) x.e = s;
      else x.e = s;  // a hole in the middle: keep the front part
      note(fs_oe_[e.fs], x.add.ts_ns, e);
      ++i;
    }
  }

  static std::string ago(uint64_t now, uint64_t ts) {
    uint64_t d = now > ts ? now - ts : 0;
    return d >= 10'000'000'000ull ? fmt::format("{} s", d / 1'000'000'000ull)
                                  : fmt::format("{} ms", d / 1'000'000ull);
  }

  void put_activity(Finding& f, const FsActivity& a, uint64_t since, std::vector<Event>& evs) {
    for (auto& d : a.recent)
      if (d.begin_ts > since) {
        evs.push_back(d.end);
        add_actor(f, d.end, "completed meanwhile");
      }
  }

  void report_request(const DioRequests::Req& r, const FsActivity& a, uint64_t now, Findings& out) {
    auto* b = r.begin.as<DioBegin>();
    auto f = make_finding(id(), "stuck-request", Level::Symptom, Severity::Critical, r.begin);
    f.ts_ns = now;
    uint64_t end = b->pos + b->count;
    f.range = {{r.start, std::max(end, r.start + 1)}};
    add_actor(f, r.begin, r.write ? "writer" : "reader");
    const Done& last = a.recent.back();
    f.message = fmt::format(
        "a direct {} by {} (pid {}, tid {}) of inode {} [{}, {}) has not completed for {} while "
        "DIO requests on the same filesystem that began after it completed (the last {} ago): "
        "rule 'a DIO request completes once the device has done it' broke",
        r.write ? "write" : "read", comm_of(r.begin), r.begin.pid, r.begin.tid, r.begin.ino,
        r.start, end, ago(now, r.first_ts), ago(now, last.end.ts_ns));
    f.explanation = fmt::format(
        "A slow or hung device holds every request; here requests that came later finished, so "
        "this one is held by the kernel's DIO path itself (a deadlock on its own ordered extent, "
        "a lost completion, a lock never released). The task is probably in D state: save "
        "/proc/{}/stack and `echo w > /proc/sysrq-trigger` output, collect `btrfs-dio-trace "
        "dump` of the flight recorder and report to linux-btrfs@vger.kernel.org with this "
        "finding. Threshold: {} s (--stall-threshold) plus the request's size at 4 MiB/s.",
        r.begin.tid, cfg_.stall_threshold_ns / 1'000'000'000ull);
    f.exposure = "observed: the request's dio_begin without its dio_end, and later requests' "
                 "completions on the same filesystem";
    std::vector<Event> evs;
    for (auto& x : r.ev.events()) evs.push_back(x);
    put_activity(f, a, r.first_ts, evs);
    put_evidence(f, std::move(evs), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  void report_oe(const OpenOe& o, const FsActivity& a, uint64_t now, Findings& out) {
    auto f = make_finding(id(), "stuck-ordered-extent", Level::Symptom, Severity::Critical, o.add);
    f.ts_ns = now;
    f.range = {{o.s, std::max(o.e, o.s + 1)}};
    add_actor(f, o.add, "writer");
    const Done& last = a.recent.back();
    f.message = fmt::format(
        "the ordered extent [{}, {}) of a direct write by {} (pid {}) to inode {} has not "
        "completed for {} while ordered extents on the same filesystem added after it did (the "
        "last {} ago): rule 'a DIRECT ordered extent is removed once its I/O is done' broke",
        o.s, o.e, comm_of(o.add), o.add.pid, o.add.ino, ago(now, o.add.ts_ns),
        ago(now, last.end.ts_ns));
    f.explanation =
        "Writers and fsync of this range wait on this ordered extent; later ones on the same "
        "filesystem finished, so it is not a slow device. Look for a blocked btrfs worker "
        "(`echo w > /proc/sysrq-trigger`), collect `btrfs-dio-trace dump` of the flight recorder "
        "and report to linux-btrfs@vger.kernel.org with this finding.";
    f.exposure = "observed: oe_add without oe_remove, and later ordered extents' removal on the "
                 "same filesystem";
    std::vector<Event> evs{o.add};
    put_activity(f, a, o.add.ts_ns, evs);
    put_evidence(f, std::move(evs), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  struct FsidHash {
    size_t operator()(const Fsid& f) const {
      uint64_t h = 0xcbf29ce484222325ull;
      for (auto b : f.b) h = (h ^ b) * 0x100000001B3ull;
      return static_cast<size_t>(h);
    }
  };

  DetectorConfig cfg_;
  DioRequests reqs_;
  std::vector<OpenOe> oes_;
  uint64_t next_oe_ = 0;
  uint64_t loss_ts_ = 0;
  std::unordered_set<uint64_t> reported_;
  std::unordered_map<Fsid, FsActivity, FsidHash> fs_, fs_oe_;
  size_t evicted_ = 0;
};

}  // namespace

std::unique_ptr<Detector> make_dio_stuck(const DetectorConfig& c) {
  return std::make_unique<DioStuck>(c);
}

}  // namespace bdt::det
