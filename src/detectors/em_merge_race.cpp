// em-merge-race (the 2016 extent-map merge race, fixed by 8e2bd3b7fac9): two
// DIO requests inside one on-disk extent race on extent-map insertion.
//
// symptom: a DIO request (dio_end ret/error -EEXIST) or btrfs_get_extent
//          (get_extent exit ret -EEXIST) returned EEXIST.
// hazard:  em_exist whose existing map encompasses the map being inserted,
//          while another thread was inside get_extent (enter seen, no exit)
//          or a DIO request (dio_begin, no dio_end) on the same inode. The
//          finding says which branch btrfs took: requested start inside the
//          existing map (harmless: the existing map is used, since
//          8e2bd3b7fac9) or outside it (merge_extent_mapping(), the path that
//          overflowed in the 2016 report).
//
// Triggers (what the kernel must emit, Detector::triggers()): EEXIST from a
// request or btrfs_get_extent (the symptom), btrfs_handle_em_exist (the
// hazard). Each emits the request and the other requests on its inode, in
// flight or ended within the last second (the peers named as actors), and
// later records of the inode; em_exist records are always made.
//
// Attribution: the btrfs_handle_em_exist tracepoint carries the fs but no
// inode; an em_exist with ino 0 is attributed to the in-flight DIO request (or
// get_extent enter) of the same tid — em_exist fires inside that thread's
// btrfs_get_extent. A request is matched to its dio_end by tid (sync I/O) or,
// for AIO completions on another thread, by (fs, ino, dev, end position).
#include <fmt/format.h>

#include "core/prefetch.h"
#include "detectors/common.h"

namespace bdt::det {
namespace {

struct ReqState {
  uint64_t id = 0;
  uint32_t tid = 0;
  Fsid fs;
  uint64_t dev = 0, ino = 0, pos = 0, count = 0, done_before = 0;
  bool write = false, aio = false, dio = false;  // dio=false: only a get_extent enter
  bool in_get_extent = false;
  bool eexist_reported = false;
  uint64_t first_ts = 0, last_ts = 0, end_ts = 0;
};
struct Req : ReqState {
  // The request's events; the first is the event that began it (start()
  // pushes it, and InlineEvidence never moves its first N/2 events).
  InlineEvidence<8> ev;
  const Event& begin() const { return ev.events().front(); }
  // Back to a fresh request (reused storage) without touching the unused
  // evidence slots.
  void reset() {
    static_cast<ReqState&>(*this) = ReqState{};
    ev.clear();
  }
};
// reset() covers every member: a new one goes in ReqState (reset with it), not here.
static_assert(sizeof(Req) == sizeof(ReqState) + sizeof(InlineEvidence<8>),
              "a member of Req outside ReqState: reset() of a reused request would keep it");

class EmMergeRace final : public Detector {
 public:
  explicit EmMergeRace(const DetectorConfig& c) : cfg_(c), gate_(gate_cap(c)) {}
  std::string_view id() const override { return "em-merge-race"; }
  TriggerSet triggers() const override { return triggers_of({Trigger::Eexist, Trigger::EmExist}); }
  EventSet events() const override {
    return events_of({EventType::DioBegin, EventType::DioEnd, EventType::GetExtent,
                      EventType::EmAdd, EventType::EmExist});
  }

  void on_event(const Event& e, Findings& out) override {
    switch (e.type) {
      case EventType::DioBegin: return on_dio_begin(e);
      case EventType::DioEnd: return on_dio_end(e, out);
      case EventType::GetExtent: return on_get_extent(e, out);
      case EventType::EmAdd: {
        if (auto* r = find(e.tid)) r->ev.push(e), r->last_ts = e.ts_ns;
        return;
      }
      case EventType::EmExist: return on_em_exist(e, out);
      default: return;
    }
  }

  void on_time(uint64_t now, Findings&) override {
    // Oldest first (ids are in begin order); one still active stays.
    for (auto it = reqs_.begin(); it != reqs_.end();) {
      auto& r = *it;
      if (!(now > r.first_ts && now - r.first_ts > cfg_.max_age_ns)) break;
      auto next = std::next(it);
      if (now > r.last_ts && now - r.last_ts > cfg_.max_age_ns) {
        erase(&r);
        ++evicted_;
      }
      it = next;
    }
    while (recent_n_ && oldest_end() + kRecentNs < now) pop_recent();
    evicted_ += gate_.evict(now, cfg_.max_age_ns > cfg_.repeat_ns ? cfg_.max_age_ns : cfg_.repeat_ns);
  }

  StateSize state_size() const override {
    return {reqs_.size() + gate_.size() + recent_n_, cfg_.max_requests + gate_.cap() + kRecent,
            evicted_ + gate_.evicted(), capped_ + gate_.evicted()};
  }

 private:
  // Requests by id (begin order), with the current one of each thread and the
  // ids per file (fs, ino): a dio_end or an em_exist looks only at its file's
  // requests. At most max_requests, kPerFile per file; beyond, the oldest are
  // dropped (counted).
  static constexpr size_t kPerFile = 256;

  using Ptr = IdTable<Req>::Ptr;
  // The thread's current request: the last one it began (em_exist and
  // get_extent fire synchronously inside the submitter); nullptr: none.
  // by_tid_ names requests in the table only: take() drops a request's entry.
  Req* find(uint32_t tid) {
    Req** t = by_tid_.find(tid);
    return t ? *t : nullptr;
  }
  void unindex(const Req* r) {
    if (!r->ino) return;  // not indexed yet
    by_file_.erase_first(InoKey{r->fs, r->ino}, [r](const Req* q) { return q == r; });
  }
  // The request out of the table and its indexes (empty: not in the table).
  Ptr take(const Req* r) {
    if (!r || reqs_.find(r->id) != r) return {};
    if (Req** t = by_tid_.find(r->tid); t && *t == r) by_tid_.erase(r->tid);
    unindex(r);
    return reqs_.take(r->id);
  }
  void recycle(Ptr&& p) { reqs_.recycle(std::move(p)); }
  // A request's lines that start() and the first push() write, asked for
  // ahead: the requests start() reuses left the recent ring, last written
  // kRecent requests ago. From its first member to the first evidence slot
  // (Req's members in order: the static_assert below Req).
  [[gnu::always_inline]] static void prefetch_start(const Req& r) {
    constexpr size_t kBytes = sizeof(ReqState) + InlineEvidence<8>::first_push_bytes();
    prefetch_bytes<kBytes, true>(&r);
  }
  void erase(const Req* r) { recycle(take(r)); }
  // Files are indexed once their inode is known (a get_extent enter may tell it later).
  void index(Req* r) {
    if (!r->ino) return;
    auto& its = by_file_.of(InoKey{r->fs, r->ino});
    if (its.size() >= kPerFile) {  // the file's oldest (its entry stays: not empty)
      erase(its.front());
      ++evicted_, ++capped_;
    }
    its.push_back(r);
  }
  Req& start(const Event& e) {
    // A synchronous request of this thread that never ended is over (its end
    // was lost); AIO requests stay in flight until their completion.
    if (const Req* old = find(e.tid); old && !(old->dio && old->aio)) erase(old);
    if (reqs_.size() >= cfg_.max_requests)  // drop the oldest eighth
      for (size_t k = std::max<size_t>(1, reqs_.size() / 8); k; --k) {
        erase(&*reqs_.begin());
        ++evicted_, ++capped_;
      }
    uint64_t id;
    Req& r = reqs_.add(id);
    r.reset();  // a dropped or ended request's storage, back to a fresh request
    r.id = id;
    r.tid = e.tid;
    r.fs = e.fs;
    r.dev = e.dev;
    r.ino = e.ino;
    r.first_ts = r.last_ts = e.ts_ns;
    r.ev.push(e);  // its begin()
    by_tid_[e.tid] = &r;
    index(&r);
    return r;
  }

  void on_dio_begin(const Event& e) {
    auto* d = e.as<DioBegin>();
    Req& r = start(e);
    r.dio = true;
    r.pos = d->pos;
    r.count = d->count;
    r.done_before = d->done_before;
    r.write = d->write;
    r.aio = d->aio;
  }

  void on_get_extent(const Event& e, Findings& out) {
    auto* g = e.as<GetExtent>();
    Req* r = find(e.tid);
    if (g->phase == Phase::Enter) {
      if (r && r->dio) r->ev.push(e);
      else r = &start(e);  // get_extent outside a DIO request (buffered)
      r->in_get_extent = true;
      r->last_ts = e.ts_ns;
      if (!r->ino && e.ino) r->ino = e.ino, r->dev = e.dev, index(r);
      return;
    }
    if (r) {
      r->in_get_extent = false;
      r->last_ts = e.ts_ns;
      r->ev.push(e);
    }
    if (g->ret == kEEXIST) {
      report_eexist(e, r, "get_extent", out);
      if (r) r->eexist_reported = true;
    }
    if (r && !r->dio) erase(r);
  }

  void on_dio_end(const Event& e, Findings& out) {
    auto* d = e.as<DioEnd>();
    // ki_pos is advanced by ret - done_before before the tracepoint fires.
    auto pos_ok = [&](const auto& q) {
      if (d->ret <= 0) return d->pos == q.pos;
      return d->pos == q.pos + uint64_t(d->ret) - std::min<uint64_t>(q.done_before, uint64_t(d->ret));
    };
    auto same_file = [&](const Req& q) {
      return q.dio && same_fs(q.fs, e.fs) && q.ino == e.ino && dev_compat(q.dev, e.dev);
    };
    Req* own = find(e.tid);
    if (own && !same_file(*own)) own = nullptr;
    Req* r = own && pos_ok(*own) ? own : nullptr;
    if (!r)
      if (auto f = by_file_.find(InoKey{e.fs, e.ino}); f != by_file_.end())
        for (Req* q : f->second)
          if (q->aio && same_file(*q) && pos_ok(*q)) {
            r = q;
            break;
          }
    if (!r) r = own;
    if (r) r->ev.push(e);
    if (d->ret == kEEXIST || d->error == kEEXIST) {
      if (!r || !r->eexist_reported) report_eexist(e, r, "dio", out);
    }
    if (r) {
      r->end_ts = e.ts_ns;
      if (r->dio) remember(take(r));
      else erase(r);
    }
  }

  // Requests that ended recently: a thread that inserted the merged map may
  // finish its whole (small) request while the racing thread is still inside
  // btrfs_get_extent (measured on 6.18: the other request usually ended a few
  // microseconds before the em_exist). Bounded by count and by age. An ended
  // request keeps its storage (out of the table and its indexes, so unchanged
  // from here on): no copy per completion; one leaving the ring is reused.
  static constexpr size_t kRecent = 256;
  static constexpr uint64_t kRecentNs = 1'000'000'000ull;
  const Req& recent(size_t i) const { return *recent_[(recent_head_ + i) % kRecent]; }
  // The oldest one's end time, from the side array (the request itself is cold).
  uint64_t oldest_end() const { return recent_end_[recent_head_]; }
  void remember(Ptr&& n) {
    if (!n) return;
    if (recent_.empty()) recent_.resize(kRecent), recent_end_.resize(kRecent);  // once
    const uint64_t end_ts = n->end_ts;
    while (recent_n_ && (recent_n_ == kRecent || oldest_end() + kRecentNs < end_ts)) pop_recent();
    const size_t at = (recent_head_ + recent_n_) % kRecent;
    recent_[at] = std::move(n);
    recent_end_[at] = end_ts;
    ++recent_n_;
    // The next one to leave the ring, for the request after the next.
    if (recent_n_ == kRecent) prefetch_start(*recent_[recent_head_]);
  }
  void pop_recent() {
    recycle(std::move(recent_[recent_head_]));
    recent_head_ = (recent_head_ + 1) % kRecent;
    --recent_n_;
    // The ring's slots a cache line on (the node pointers' and end times'),
    // written when their requests came in, kRecent requests ago: asked for
    // before the oldest end and the next node to leave are read from them.
    __builtin_prefetch(&recent_[(recent_head_ + kRecentAhead) % kRecent]);
    __builtin_prefetch(&recent_end_[(recent_head_ + kRecentAhead) % kRecent]);
  }
  static constexpr size_t kRecentAhead = 64 / sizeof(uint64_t);

  // Other threads with a DIO request or a get_extent on the inode during the
  // current request of `self` (started at since_ts): still in flight, or
  // ended after it began.
  std::vector<const Req*> others(uint32_t tid, const Fsid& fs, uint64_t dev, uint64_t ino,
                                 uint64_t since_ts = UINT64_MAX) const {
    std::vector<const Req*> v;
    auto match = [&](const Req& q) {
      return q.tid != tid && same_fs(q.fs, fs) && q.ino == ino && dev_compat(q.dev, dev);
    };
    if (auto f = by_file_.find(InoKey{fs, ino}); f != by_file_.end())
      for (const Req* q : f->second)
        if (match(*q) && (q->dio || q->in_get_extent)) v.push_back(q);
    if (since_ts != UINT64_MAX)
      for (size_t i = 0; i < recent_n_; ++i) {
        auto& q = recent(i);
        if (match(q) && q.end_ts >= since_ts) v.push_back(&q);
      }
    return v;
  }

  void report_eexist(const Event& e, const Req* r, std::string_view where, Findings& out) {
    uint64_t dev = e.dev, ino = e.ino;
    if (r) {
      if (!ino) ino = r->ino;
      if (!dev) dev = r->dev;
    }
    auto f = make_finding(id(), where == "dio" ? "eexist-dio" : "eexist-get-extent",
                          Level::Symptom, Severity::Critical, e);
    if (ino) f.ino = ino;
    if (dev) f.dev = dev;
    std::vector<Event> evs;
    std::string range_txt;
    if (r && r->dio) {
      f.range = {{r->pos, r->pos + r->count}};
      range_txt = fmt::format(" [{}, {})", r->pos, r->pos + r->count);
      for (auto& x : r->ev.events()) evs.push_back(x);
    }
    add_actor(f, e, r && r->write ? "writer" : "reader");
    for (auto* q : others(e.tid, e.fs, dev, ino, r ? r->first_ts : e.ts_ns)) {
      add_actor(f, q->begin(), "concurrent request");
      evs.push_back(q->begin());
    }
    evs.push_back(e);
    f.message = fmt::format(
        "{} (pid {}) got EEXIST from {} on inode {}{}: the 2016 extent-map insertion race "
        "(fixed by 8e2bd3b7fac9)",
        f.comm, e.pid, where == "dio" ? "a direct I/O request" : "btrfs_get_extent()", ino,
        range_txt);
    f.explanation =
        "Two requests inside one on-disk extent both missed the extent-map cache; one inserted a "
        "map that was merged with its neighbour and the other's insertion failed with EEXIST, "
        "which reached userspace as a failed pread/pwrite (a VM sees an I/O error). Retrying "
        "the I/O succeeds; upgrade to a kernel with 8e2bd3b7fac9 or report a new bug.";
    auto* row = exposure_row("em-merge-eexist");
    auto ex = exposed(*row, cfg_.kernel);
    f.exposure = exposure_text(*row, cfg_.kernel) +
                 (ex == Exposed::No ? "; observed EEXIST anyway: a missing backport or a new bug"
                                    : "");
    put_evidence(f, std::move(evs), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  void on_em_exist(const Event& e, Findings& out) {
    auto* x = e.as<EmExist>();
    Req* self = find(e.tid);
    uint64_t ino = e.ino, dev = e.dev;
    if (!ino && self) ino = self->ino, dev = self->dev;
    if (self) self->ev.push(e), self->last_ts = e.ts_ns;
    if (!ino) {
      ++unattributed_;
      return;
    }
    // Encompassing and larger: the existing map is the inserted one merged
    // with a neighbour (the 2016 race). An identical existing map is the ordinary
    // duplicate insertion (8dff9c853410), not this race.
    bool encompass = x->e_start <= x->map_start &&
                     x->e_start + x->e_len >= x->map_start + x->map_len && x->e_len > x->map_len;
    if (!encompass) return;
    auto peers = others(e.tid, e.fs, dev, ino, self ? self->first_ts : e.ts_ns);
    if (peers.empty()) return;
    // Which branch btrfs took. Since 8e2bd3b7fac9: the existing map is reused
    // when the requested start lies inside it. Before (8dff9c853410 code):
    // merge_extent_mapping() ran when start <= existing start or start >= its
    // end, so start == existing start took the merge path (the 2016 report's case).
    auto* row0 = exposure_row("em-merge-eexist");
    bool old_kernel = exposed(*row0, cfg_.kernel) == Exposed::Yes;
    bool harmless = old_kernel ? (x->start > x->e_start && x->start < x->e_start + x->e_len)
                               : (x->start >= x->e_start && x->start < x->e_start + x->e_len);
    InoBranch key{e.fs, ino, harmless};
    if (!gate_.allow(key, e.ts_ns, cfg_.repeat_ns)) return;
    uint64_t suppressed = gate_.take_suppressed(key);

    auto* row = exposure_row("em-merge-eexist");
    auto ex = exposed(*row, cfg_.kernel);
    Severity sev;
    if (harmless)
      sev = ex == Exposed::No ? Severity::Info : Severity::Warning;
    else
      sev = ex == Exposed::Yes ? Severity::Critical : Severity::Warning;
    auto f = make_finding(id(), harmless ? "encompassing-em-harmless" : "encompassing-em-merge",
                          Level::Hazard, sev, e);
    f.ino = ino;
    if (dev) f.dev = dev;
    f.range = {{x->map_start, x->map_start + x->map_len}};
    std::vector<Event> evs;
    if (self)
      for (auto& ev : self->ev.events()) evs.push_back(ev);
    evs.push_back(e);
    add_actor(f, e, "inserting thread");
    for (auto* q : peers) {
      add_actor(f, q->begin(), !q->dio ? "in get_extent"
                             : q->end_ts ? "concurrent request (ended)"
                                         : "concurrent request");
      for (auto& ev : q->ev.events()) evs.push_back(ev);
    }
    f.message = fmt::format(
        "{} (pid {}) tried to insert extent map [{}, {}) on inode {} while the existing map [{}, "
        "{}) already covered it, and {} other thread(s) did direct I/O on the inode during its "
        "request; the kernel "
        "took the {}",
        f.comm, e.pid, x->map_start, x->map_start + x->map_len, ino, x->e_start,
        x->e_start + x->e_len, peers.size(),
        harmless ? "harmless branch (requested start inside the existing map: the existing map is "
                   "reused)"
                 : (x->start >= x->e_start && x->start < x->e_start + x->e_len)
                       ? "merge path (merge_extent_mapping(): the requested start is the existing "
                         "map's start, which kernels before 4.10 handled by merging)"
                       : "merge path (requested start outside the existing map: "
                         "merge_extent_mapping())");
    f.explanation = fmt::format(
        "This is the interleaving of the 2016 extent-map merge race: two requests in one extent "
        "missed the extent-map "
        "cache and one insertion was merged with a neighbour. {} Requested range [{}, {}).{}",
        harmless ? "Since 8e2bd3b7fac9 (4.10) btrfs reuses the encompassing map when the requested "
                   "start lies inside it; older kernels ran merge_extent_mapping() here, whose "
                   "arithmetic overflowed and returned EEXIST to userspace."
                 : "merge_extent_mapping() on an encompassing map is the arithmetic that overflowed "
                   "in the 2016 extent-map merge race; watch dmesg for 'extent map merge error' and for EEXIST from "
                   "pread/pwrite.",
        x->start, x->start + x->len,
        suppressed ? fmt::format(" {} similar event(s) on this inode were not reported separately.",
                                 suppressed)
                   : std::string());
    f.exposure = exposure_text(*row, cfg_.kernel);
    put_evidence(f, std::move(evs), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  struct InoBranch {
    Fsid fs;
    uint64_t ino;
    bool harmless;
    bool operator==(const InoBranch&) const = default;
  };
  struct InoBranchHash {
    size_t operator()(const InoBranch& k) const {
      return InoKeyHash{}(InoKey{k.fs, k.ino}) ^ (k.harmless ? 0x5bd1e995u : 0u);
    }
  };

  DetectorConfig cfg_;
  // The storage of dropped requests and of those leaving the recent ring is
  // kept for the next ones (IdTable's spares: a request is ~1.9 KB).
  IdTable<Req> reqs_;
  TidMap<Req*> by_tid_;  // tid -> its current request
  FileLists<Req*> by_file_;  // open requests, oldest first
  std::vector<Ptr> recent_;         // ring of kRecent ended requests
  std::vector<uint64_t> recent_end_;  // their end_ts, by the same index
  size_t recent_head_ = 0, recent_n_ = 0;
  RepeatGate<InoBranch, InoBranchHash> gate_;
  size_t evicted_ = 0, capped_ = 0;
  uint64_t unattributed_ = 0;
};

}  // namespace

std::unique_ptr<Detector> make_em_merge_race(const DetectorConfig& c) {
  return std::make_unique<EmMergeRace>(c);
}

}  // namespace bdt::det
