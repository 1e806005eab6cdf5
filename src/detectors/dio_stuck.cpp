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
//     the same filesystem (fs) ended. The finding names how many did, at
//     least, and when the last one ended: counted here over the filesystem's
//     last kPerFsCounted completions seen, or - findings only, where clean
//     completions make no record - by the kernel: the dio_end at which the
//     stall trigger fired carries its count (later_done, for the request
//     of thread stalled_tid on inode stalled_ino; bpf/lazy.bpf.h stall_scan).
//     The larger of the two is said.
//   stuck ordered extent: a DIRECT oe_add whose range was not removed for
//     as long, while a DIRECT ordered extent added after it on the same
//     filesystem was removed; not reported while its request is open or
//     when its request is reported (the request rule judges those).
// Each is reported once. Without completions after it (the whole filesystem
// or device stalls) nothing is reported: that is a slow or dead device, not
// this rule.
#include <fmt/format.h>

#include <unordered_set>

#include "detectors/shared.h"

namespace bdt::det {
namespace {

constexpr uint64_t kBytesPerSecondFloor = 4ull << 20;
constexpr size_t kPerFsRecent = 4;     // recent completions kept per filesystem, for the evidence
constexpr size_t kPerFsCounted = 256;  // begin times of the last completions, for the count

// What the filesystem completed lately, for the evidence.
struct Done {
  uint64_t begin_ts = 0;  // when the completed request / extent began
  Event end;              // its end (dio_end / oe_remove)
};
struct FsActivity {
  uint64_t latest_begin_done = 0;  // the latest begin time among completed ones
  uint64_t completed = 0;          // how many completed (total)
  std::vector<Done> recent;        // the last few (a ring once full: the oldest at recent_next)
  size_t recent_next = 0;
  std::vector<uint64_t> begins;    // begin times of the last kPerFsCounted completed (a ring)
  size_t next = 0;                 // where the next one goes once the ring is full
  uint64_t last_ts = 0;
};

// How many of the completions the ring holds began after `since`; `more`:
// older completions fell out of the ring while all it holds qualify (so the
// count is a lower bound).
struct Later {
  uint64_t n = 0;
  bool more = false;
};
Later later_than(const FsActivity& a, uint64_t since) {
  Later l;
  for (uint64_t b : a.begins) l.n += b > since;
  l.more = l.n == a.begins.size() && a.completed > a.begins.size();
  return l;
}
std::string count_of(Later l, std::string_view what) {
  return fmt::format("{}{} {}{}", l.more ? "at least " : "", l.n, what, l.n == 1 ? "" : "s");
}

// The kernel's count for a stalled request (a dio_end's later_done), by the
// stalled request's begin time; the last few per filesystem.
struct KernelCount {
  uint64_t begin_ts = 0;  // the stalled request's, as the kernel stamped it
  uint32_t tid = 0;       // its thread
  uint64_t ino = 0;       // its inode
  uint64_t later = 0;
  uint64_t seen_ts = 0;   // the dio_end's
  bool used = false;      // said by a finding
};
constexpr size_t kKernelCounts = 16;

struct OpenOe {
  uint64_t id = 0;
  Event add;
  uint64_t s = 0, e = 0;  // still open part
  bool reported = false;
  uint64_t req_id = 0;    // the request of the thread that added it (0: none)
};

class DioStuck final : public Detector {
 public:
  DioStuck(const DetectorConfig& c, std::shared_ptr<Shared> s)
      : cfg_(c), shared_(std::move(s)), reqs_(shared_->requests.table()) {}
  std::string_view id() const override { return "dio-stuck"; }
  // Triggers: a request in flight past the stall threshold, seen at a later
  // request's completion on the same filesystem (stall); a DIRECT ordered
  // extent open past it, seen at a later one's removal (oe_stall,
  // bpf/ordered.bpf.h). Each emits the stuck one and the later completion
  // that tells a hang from a slow disk.
  TriggerSet triggers() const override { return triggers_of({Trigger::Stall, Trigger::OeStall}); }
  EventSet events() const override {
    return events_of({EventType::DioBegin, EventType::DioEnd, EventType::OeAdd, EventType::OeRemove});
  }

  void on_event(const Event& e, Findings& out) override {
    switch (e.type) {
      // the requests are the shared table's (Shared, fed before this detector)
      case EventType::DioBegin:
        if (uint64_t id = shared_->requests.dropped()) forget(id);
        return;
      case EventType::DioEnd: {
        const auto* d = e.as<DioEnd>();
        const bool stall_fired = d && d->later_done && d->stalled_ino;
        if (stall_fired) {
          auto& v = kernel_counts_[e.fs];
          if (v.size() >= kKernelCounts) v.erase(v.begin());
          v.push_back({d->stalled_begin_ns, d->stalled_tid, d->stalled_ino, d->later_done, e.ts_ns});
        }
        if (auto* r = shared_->requests.ended()) {
          forget(r->id);
          completed(e.fs, r->first_ts, e);
        }
        if (stall_fired) judge_stalled(e, *d, out);
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
    // requests that ended were forgotten as they ended; those the shared table
    // aged out (after the last on_time) are forgotten here
    for (auto it = reported_.begin(); it != reported_.end();)
      it = reqs_.find(*it) ? std::next(it) : reported_.erase(it);
    // Oldest first; none younger than the threshold can be stuck.
    for (const auto& r : reqs_.open()) {
      if (now - r.first_ts < cfg_.stall_threshold_ns) break;
      if (reported_.count(r.id) || now - r.first_ts < threshold(r)) continue;
      if (r.first_ts <= loss_ts_) continue;  // its end may be among the lost records
      auto* act = activity(r.begin.fs);
      if (!act || act->latest_begin_done <= r.first_ts) continue;
      report_stuck(r, *act, now, out);
    }
    for (auto& o : oes_) {
      if (now - o.add.ts_ns < cfg_.stall_threshold_ns) break;
      if (o.reported) continue;
      // its request was reported, or is still open: the request rule judges it
      if (o.req_id && (reported_.count(o.req_id) || reqs_.find(o.req_id))) continue;
      if (o.add.ts_ns <= loss_ts_) continue;
      auto* act = oe_activity(o.add.fs);
      if (!act || act->latest_begin_done <= o.add.ts_ns) continue;
      o.reported = true;
      report_oe(o, *act, now, out);
    }
    const uint64_t age = shared_->requests.age();  // the shared table's requests age out as long
    while (!oes_.empty() && now - oes_.begin()->add.ts_ns > age) {
      remove_oe(&*oes_.begin());
      ++evicted_;
    }
    last_fs_ = last_fs_oe_ = nullptr;
    evicted_ += evict_aged(fs_, now, age, [](const FsActivity& a) { return a.last_ts; });
    evicted_ += evict_aged(fs_oe_, now, age, [](const FsActivity& a) { return a.last_ts; });
    evicted_ += evict_aged(kernel_counts_, now, age, [](const std::vector<KernelCount>& v) {
      return v.empty() ? 0 : v.back().seen_ts;
    });
  }

  StateSize state_size() const override {
    return {reqs_.size() + oes_.size() + fs_.size() + fs_oe_.size() + kernel_counts_.size(),
            reqs_.cap() + cfg_.max_requests, evicted_ + reqs_.evicted(), capped_ + reqs_.capped()};
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
    if (a.begins.size() < kPerFsCounted) {
      a.begins.push_back(begin_ts);
    } else {
      a.begins[a.next] = begin_ts;
      a.next = (a.next + 1) % kPerFsCounted;
    }
    a.last_ts = end.ts_ns;
    if (a.recent.size() < kPerFsRecent) {
      a.recent.push_back(Done{begin_ts, end});
    } else {  // one copy of the end in place of the oldest
      a.recent[a.recent_next] = Done{begin_ts, end};
      a.recent_next = (a.recent_next + 1) % kPerFsRecent;
    }
  }
  // The last few completions, oldest first.
  template <class F>
  static void each_recent(const FsActivity& a, F f) {
    for (size_t i = 0; i < a.recent.size(); ++i) f(a.recent[(a.recent_next + i) % a.recent.size()]);
  }
  static const Done& last_recent(const FsActivity& a) {
    return a.recent[(a.recent_next + a.recent.size() - 1) % a.recent.size()];
  }
  void completed(const Fsid& fs, uint64_t begin_ts, const Event& end) {
    // the filesystem of the last completion, looked up again only when it changes
    if (!last_fs_ || !(last_fs_->first == fs)) last_fs_ = &*fs_.try_emplace(fs).first;
    note(last_fs_->second, begin_ts, end);
  }
  FsActivity* activity(const Fsid& fs) {
    auto it = fs_.find(fs);
    return it == fs_.end() ? nullptr : &it->second;
  }
  FsActivity* oe_activity(const Fsid& fs) {
    auto it = fs_oe_.find(fs);
    return it == fs_oe_.end() ? nullptr : &it->second;
  }
  // The ordered extents' activity of fs, made if new (looked up again only
  // when the filesystem changes).
  FsActivity& oe_activity_of(const Fsid& fs) {
    if (!last_fs_oe_ || !(last_fs_oe_->first == fs)) last_fs_oe_ = &*fs_oe_.try_emplace(fs).first;
    return last_fs_oe_->second;
  }

  void forget(uint64_t id) { reported_.erase(id); }

  void on_oe_add(const Event& e) {
    auto* o = e.as<Ordered>();
    if (!(o->flags & oef::DIRECT)) return;
    if (oes_.size() >= cfg_.max_requests)  // drop the oldest eighth (ids are in add order)
      for (size_t k = std::max<size_t>(1, oes_.size() / 8); k; --k) {
        remove_oe(&*oes_.begin());
        ++evicted_, ++capped_;
      }
    auto& in_file = oe_by_file_.of(ino_key(e));  // not emptied below: the file's oldest of many goes
    if (in_file.size() >= kOePerFile) {
      remove_oe(in_file.front());  // the file's oldest
      ++evicted_, ++capped_;
    }
    uint64_t id;
    OpenOe& x = oes_.add(id);  // a removed extent's storage, reused: every field set here
    const auto* r = reqs_.of_thread(e.tid);
    x = OpenOe{.id = id,
               .add = e,
               .s = o->file_offset,
               .e = o->file_offset + o->len,
               .reported = false,
               .req_id = r ? r->id : 0};
    in_file.push_back(&x);
  }

  void remove_oe(OpenOe* x) {
    oe_by_file_.erase_first(ino_key(x->add), [x](const OpenOe* q) { return q == x; });
    oes_.recycle(oes_.take(x->id));
  }

  void on_oe_remove(const Event& e) {
    auto* o = e.as<Ordered>();
    if (o->flags && !(o->flags & oef::DIRECT)) return;
    uint64_t s = o->file_offset, t = o->file_offset + o->len;
    auto f = oe_by_file_.find(ino_key(e));
    if (f == oe_by_file_.end()) return;
    done_.clear();
    for (OpenOe* it : f->second) {
      auto& x = *it;
      if (!dev_compat(x.add.dev, e.dev) || !overlaps(x.s, x.e, s, t)) continue;
      note(oe_activity_of(e.fs), x.add.ts_ns, e);
      // the removed part is done; a split-off remainder stays open
      if (s <= x.s && x.e <= t) done_.push_back(it);
      else if (s <= x.s) x.s = t;
      else x.e = s;  // the back part, or a hole in the middle: keep the front part
    }
    for (OpenOe* x : done_) remove_oe(x);
  }

  static std::string ago(uint64_t now, uint64_t ts) {
    uint64_t d = now > ts ? now - ts : 0;
    return d >= 10'000'000'000ull ? fmt::format("{} s", d / 1'000'000'000ull)
                                  : fmt::format("{} ms", d / 1'000'000ull);
  }

  void put_activity(Finding& f, const FsActivity& a, uint64_t since, std::vector<Event>& evs) {
    each_recent(a, [&](const Done& d) {
      if (d.begin_ts > since) {
        evs.push_back(d.end);
        add_actor(f, d.end, "completed meanwhile");
      }
    });
  }

  // Whether the kernel's stalled request (its thread, inode and begin as the
  // kernel stamped it) is r, of the same filesystem: by thread and inode, not
  // by begin time: a record a trigger emits late reaches the detectors stamped
  // no earlier than the records before it (Engine::feed), so r's begin may
  // read later than the kernel's stamp of it, never earlier.
  static bool names(uint32_t tid, uint64_t ino, uint64_t begin_ns, const DioRequests::Req& r) {
    return tid == r.begin.tid && ino == r.begin.ino && begin_ns <= r.begin.ts_ns;
  }

  // How many that began after r completed, at least: counted here, or by the
  // kernel where the stall trigger fired for it (findings only; names()). Each
  // count is said once. *began: r's begin, the kernel's stamp where it is
  // earlier (how long r has been open).
  Later later_for(const DioRequests::Req& r, const FsActivity& a, uint64_t* began) {
    Later l{later_than(a, r.first_ts).n, false};  // "at least" is in the message
    *began = r.first_ts;
    if (auto it = kernel_counts_.find(r.begin.fs); it != kernel_counts_.end())
      for (auto& k : it->second)
        if (!k.used && names(k.tid, k.ino, k.begin_ts, r)) {
          k.used = true;
          l.n = std::max(l.n, k.later);
          *began = std::min(*began, k.begin_ts);
          break;
        }
    return l;
  }

  // Reports the stuck request r once; its ordered extents are this finding's:
  // not reported on their own, also once the request has ended and they are
  // still open for a while.
  void report_stuck(const DioRequests::Req& r, const FsActivity& a, uint64_t now, Findings& out) {
    reported_.insert(r.id);
    report_request(r, a, now, out);
    for (auto& o : oes_)
      if (o.req_id == r.id) o.reported = true;
  }

  // Findings only: the dio_end e at which the kernel's stall trigger fired
  // names the stalled request (thread, inode, its begin as the kernel stamped
  // it), whose records the trigger emitted just before. Those reach the
  // detectors stamped no earlier than the records before them (Engine::feed),
  // so on_time, measuring from that stamp, would judge it a threshold later:
  // it is judged here, by the kernel's stamp, as on_time would have with
  // every record made. The request: the oldest open one the fact names().
  void judge_stalled(const Event& e, const DioEnd& d, Findings& out) {
    const DioRequests::Req* r = nullptr;
    for (const auto& x : reqs_.open())
      if (x.begin.fs == e.fs && names(d.stalled_tid, d.stalled_ino, d.stalled_begin_ns, x)) {
        r = &x;
        break;
      }
    if (!r || reported_.count(r->id)) return;
    // the kernel saw it in flight now: no lost record holds its end
    const uint64_t began = std::min(r->first_ts, d.stalled_begin_ns);
    if (e.ts_ns <= began || e.ts_ns - began < threshold(*r)) return;
    auto* act = activity(e.fs);
    if (!act || act->latest_begin_done <= began) return;
    report_stuck(*r, *act, e.ts_ns, out);
  }

  void report_request(const DioRequests::Req& r, const FsActivity& a, uint64_t now, Findings& out) {
    auto* b = r.begin.as<DioBegin>();
    auto f = make_finding(id(), "stuck-request", Level::Symptom, Severity::Critical, r.begin);
    f.ts_ns = now;
    uint64_t end = b->pos + b->count;
    f.range = {{r.start, std::max(end, r.start + 1)}};
    add_actor(f, r.begin, r.write ? "writer" : "reader");
    const Done& last = last_recent(a);
    uint64_t began = r.first_ts;
    const Later later = later_for(r, a, &began);
    f.message = fmt::format(
        "a direct {} by {} (pid {}, tid {}) of inode {} [{}, {}) has not completed for {} while "
        "at least {} on the same filesystem that began after it completed (the last {} ago): "
        "rule 'a DIO request completes once the device has done it' broke",
        r.write ? "write" : "read", comm_of(r.begin), r.begin.pid, r.begin.tid, r.begin.ino,
        r.start, end, ago(now, began), count_of(later, "DIO request"), ago(now, last.end.ts_ns));
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
    put_activity(f, a, began, evs);
    put_evidence(f, std::move(evs), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  void report_oe(const OpenOe& o, const FsActivity& a, uint64_t now, Findings& out) {
    auto f = make_finding(id(), "stuck-ordered-extent", Level::Symptom, Severity::Critical, o.add);
    f.ts_ns = now;
    f.range = {{o.s, std::max(o.e, o.s + 1)}};
    add_actor(f, o.add, "writer");
    const Done& last = last_recent(a);
    f.message = fmt::format(
        "the ordered extent [{}, {}) of a direct write by {} (pid {}) to inode {} has not "
        "completed for {} while at least {} on the same filesystem added after it did (the "
        "last {} ago): rule 'a DIRECT ordered extent is removed once its I/O is done' broke",
        o.s, o.e, comm_of(o.add), o.add.pid, o.add.ino, ago(now, o.add.ts_ns),
        count_of(Later{later_than(a, o.add.ts_ns).n, false}, "ordered extent"),
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
  std::shared_ptr<Shared> shared_;
  DioRequests& reqs_;  // shared_'s
  // Open DIRECT ordered extents by id (add order), and where they are per file
  // (oldest first): at most max_requests, kOePerFile per file (the oldest
  // dropped, counted). Every removal goes through remove_oe(), which takes the
  // extent out of both.
  static constexpr size_t kOePerFile = 1024;
  // Removed extents' storage is kept for the next ones (IdTable's spares, up
  // to 64: no allocation per oe_add).
  IdTable<OpenOe, 1024, 64> oes_;
  FileLists<OpenOe*> oe_by_file_;
  std::vector<OpenOe*> done_;  // on_oe_remove's scratch
  uint64_t loss_ts_ = 0;
  std::unordered_set<uint64_t> reported_;
  std::unordered_map<Fsid, FsActivity, FsidHash> fs_, fs_oe_;
  std::pair<const Fsid, FsActivity>* last_fs_ = nullptr;  // in fs_ (reset when fs_ is pruned)
  std::pair<const Fsid, FsActivity>* last_fs_oe_ = nullptr;  // in fs_oe_ (the same)
  std::unordered_map<Fsid, std::vector<KernelCount>, FsidHash> kernel_counts_;
  size_t evicted_ = 0, capped_ = 0;
};

}  // namespace

std::unique_ptr<Detector> make_dio_stuck(const DetectorConfig& c, std::shared_ptr<Shared> s) {
  return std::make_unique<DioStuck>(c, std::move(s));
}

}  // namespace bdt::det
