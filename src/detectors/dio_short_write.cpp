// dio-short-write (the 2023 DIO short-write bug, fixed by b73a6fd1b1ef): a DIO
// write that is completed in several parts.
//
// One "call" is a write(2)/pwrite/io_submit as btrfs_direct_write sees it: a
// dio_begin with done_before == 0, then continuations (dio_begin with
// done_before > 0 on the same thread, at pos == start + done_before) after a
// short iomap_dio_rw, up to the final dio_end. iomap_dio_complete's ret
// includes done_before, so the call acknowledged [start, start + ret).
//
// Ordered extents are completed by btrfs worker threads, so they are matched
// to calls by (fs, ino, dev-if-known, file range), never by pid:
//   oe_add        opens the range
//   oe_finish     uptodate=false marks the range as failed
//   oe_remove     closes the range; it failed if IOERR is in its flags or a
//                 not-uptodate finish fell inside it (this handles the split
//                 of current kernels without modelling the split itself)
// symptom hole:    acknowledged bytes ∩ failed OEs − OEs that completed fine,
//                  decided once the call ended and no OE of its range is open
//                  (or settle_ns after it ended).
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

#include "detectors/common.h"
#include "bdt/exposure.h"

namespace bdt::det {
namespace {

struct Call {
  bool live = false;
  uint64_t id = 0;  // generation << 32 | slot
  Fsid fs;
  uint64_t dev = 0, ino = 0;
  uint32_t pid = 0, tid = 0;
  std::string comm;
  uint64_t start = 0, end = 0;  // requested [start, end)
  uint64_t acked_end = 0;       // acknowledged [start, acked_end)
  uint64_t first_ts = 0, last_ts = 0, begin_ts = 0, end_ts = 0;
  bool aio = false;
  bool in_flight = false;  // between a dio_begin and its dio_end
  bool ended = false;      // no continuation will follow
  uint32_t parts = 0;
  bool split_seen = false;
  bool self_mmap = false;
  uint64_t buf_lo = 0, buf_hi = 0, buf_ino = 0, buf_addr = 0;
  bool stall_reported = false, cont_reported = false, mmap_reported = false;
  uint64_t cur_pos = 0, cur_done_before = 0;
  // Ordered extents of this call still open. An OE's failure is kept as the
  // ranges of its not-uptodate finishes, so a later split (current kernels)
  // does not smear it over the part that completed.
  struct OeRec {
    uint64_t s, e, add_ts;
    IntervalSet failed;
  };
  std::vector<OeRec> oes;
  IntervalSet bad, good, pending_bad;  // pending_bad: failures of OEs whose add we missed
  Evidence ev;
  Event first;

  // Back to a fresh call, keeping the capacity of every container.
  void reset(size_t max_evidence) {
    auto keep_oes = std::move(oes);
    auto keep_bad = std::move(bad), keep_good = std::move(good), keep_pb = std::move(pending_bad);
    auto keep_ev = std::move(ev);
    std::string keep_comm = std::move(comm);
    *this = Call{};
    oes = std::move(keep_oes);
    oes.clear();
    bad = std::move(keep_bad);
    bad.clear();
    good = std::move(keep_good);
    good.clear();
    pending_bad = std::move(keep_pb);
    pending_bad.clear();
    ev = std::move(keep_ev);
    ev.reset(max_evidence);
    comm = std::move(keep_comm);
    comm.clear();
  }
};

class DioShortWrite final : public Detector {
 public:
  explicit DioShortWrite(const DetectorConfig& c) : cfg_(c) {}
  std::string_view id() const override { return "dio-short-write"; }
  TriggerSet triggers() const override {
    return triggers_of({Trigger::Continued, Trigger::ShortWrite, Trigger::OeIoerr, Trigger::BufFile});
  }

  void on_event(const Event& e, Findings& out) override {
    switch (e.type) {
      case EventType::DioBegin:
        if (e.as<DioBegin>()->write) on_begin(e, out);
        break;
      case EventType::DioEnd: on_end(e, out); break;
      case EventType::OeAdd:
      case EventType::OeSplit:
      case EventType::OeFinish:
      case EventType::OeRemove:
      case EventType::OeMarkFinished: on_oe(e, out); break;
      default: return;
    }
    flush_erase();
  }

  void on_time(uint64_t now, Findings& out) override {
    done_.clear();
    for (auto& c : slab_) {
      if (!c.live) continue;
      uint64_t id = c.id;
      if (c.in_flight && c.self_mmap && !c.stall_reported &&
          now - c.begin_ts >= cfg_.stall_threshold_ns)
        report_stall(c, now, out);
      if (!c.ended && !c.in_flight && now - c.last_ts >= cfg_.settle_ns) {
        c.ended = true;  // short write that was not continued
        c.end_ts = c.last_ts;
      }
      if (c.ended && now - c.end_ts >= cfg_.settle_ns) {
        evaluate(c, out);
        done_.push_back(id);
      } else if (now - c.last_ts > cfg_.max_age_ns && !(c.in_flight && c.self_mmap && !c.stall_reported)) {
        done_.push_back(id);
        ++evicted_;
      }
    }
    for (auto id : done_) erase(id);
  }

  // End of the trace (or replay): judge every call that returned, on what was
  // seen. An ordered extent that failed (not-uptodate finish, IOERR) but whose
  // removal the trace never saw counts as failed, and the finding says that
  // the trace ended before the kernel finished. A call still in flight
  // acknowledged nothing yet: nothing to judge.
  void on_finish(uint64_t now, Findings& out) override {
    on_time(now, out);
    done_.clear();
    for (auto& c : slab_)
      if (c.live && (c.ended || !c.in_flight)) {
        evaluate(c, out, /*at_end=*/true);
        done_.push_back(c.id);
      }
    for (auto id : done_) erase(id);
  }

  StateSize state_size() const override { return {live_, cfg_.max_entries, evicted_}; }

 private:
  // Calls live in a slab with a free list; an id encodes its slot, so no
  // hash map is needed and a finished call's containers are reused.
  Call* get(uint64_t id) {
    uint32_t slot = static_cast<uint32_t>(id);
    if (slot >= slab_.size()) return nullptr;
    Call& c = slab_[slot];
    return c.live && c.id == id ? &c : nullptr;
  }
  Call& alloc() {
    uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = static_cast<uint32_t>(slab_.size());
      slab_.emplace_back();
    }
    Call& c = slab_[slot];
    c.reset(cfg_.max_evidence);
    c.live = true;
    c.id = (uint64_t(++gen_) << 32) | slot;
    ++live_;
    return c;
  }

  Call* active(uint32_t tid) {
    auto it = by_tid_.find(tid);
    if (it == by_tid_.end() || !it->second) return nullptr;
    return get(it->second);
  }

  void erase(uint64_t id) {
    Call* c = get(id);
    if (!c) return;
    auto t = by_tid_.find(c->tid);
    if (t != by_tid_.end() && t->second == id) t->second = 0;  // entry kept for reuse
    auto i = by_ino_.find(InoKey{c->fs, c->ino});
    if (i != by_ino_.end()) {
      auto& v = i->second;
      v.erase(std::remove(v.begin(), v.end(), id), v.end());
    }
    c->live = false;
    free_.push_back(static_cast<uint32_t>(id));
    --live_;
    sweep_indexes();
  }

  // The thread and inode indexes keep empty entries (no allocation when the
  // same thread or file comes back); drop them when they outgrow the cap.
  void sweep_indexes() {
    if (by_tid_.size() > 2 * cfg_.max_entries)
      for (auto it = by_tid_.begin(); it != by_tid_.end();)
        it = it->second ? std::next(it) : by_tid_.erase(it);
    if (by_ino_.size() > 2 * cfg_.max_entries)
      for (auto it = by_ino_.begin(); it != by_ino_.end();)
        it = it->second.empty() ? by_ino_.erase(it) : std::next(it);
  }

  void make_room(Findings& out) {
    if (live_ < cfg_.max_entries) return;
    // evaluate-and-drop the oldest eighth
    ts_.clear();
    for (auto& c : slab_)
      if (c.live) ts_.emplace_back(c.last_ts, c.id);
    size_t k = std::max<size_t>(1, ts_.size() / 8);
    std::nth_element(ts_.begin(), ts_.begin() + static_cast<long>(k - 1), ts_.end());
    for (size_t i = 0; i < k; ++i) {
      if (Call* c = get(ts_[i].second); c && c->ended) evaluate(*c, out);
      erase(ts_[i].second);
      ++evicted_;
    }
  }

  void on_begin(const Event& e, Findings& out) {
    auto* d = e.as<DioBegin>();
    Call* c = active(e.tid);
    bool cont = false;
    if (d->done_before > 0 && c && !c->ended && !c->in_flight && same_fs(c->fs, e.fs) &&
        c->ino == e.ino && c->start + d->done_before == d->pos)
      cont = true;
    if (!cont && c && c->aio && c->in_flight) {
      // an AIO write stays in flight until its completion (matched by
      // position); this thread just submitted another one
      c = nullptr;
    }
    if (!cont && c) {  // the previous call of this thread is over
      if (c->in_flight) c->in_flight = false;  // its dio_end was lost
      if (!c->ended) c->ended = true, c->end_ts = c->last_ts;
      try_evaluate(*c, out);
      c = nullptr;
    }
    if (!c) {
      make_room(out);
      Call& n = alloc();
      uint64_t id = n.id;
      n.fs = e.fs;
      n.dev = e.dev;
      n.ino = e.ino;
      n.pid = e.pid;
      n.tid = e.tid;
      n.comm = comm_of(e);
      n.start = d->pos - std::min(d->pos, d->done_before);
      n.end = d->pos + d->count;
      n.acked_end = n.start + d->done_before;
      n.first_ts = e.ts_ns;
      n.aio = d->aio;
      n.first = e;
      by_tid_[e.tid] = id;
      by_ino_[InoKey{e.fs, e.ino}].push_back(id);
      c = &n;
    }
    c->ev.push(e);
    c->in_flight = true;
    c->parts++;
    c->begin_ts = c->last_ts = e.ts_ns;
    c->cur_pos = d->pos;
    c->cur_done_before = d->done_before;
    c->end = std::max(c->end, d->pos + d->count);

    if (d->buf_file_ino && d->buf_file_ino == e.ino && dev_compat(d->buf_file_dev, e.dev) &&
        overlaps(d->buf_file_off, d->buf_file_off + d->count, d->pos, d->pos + d->count)) {
      c->self_mmap = true;
      c->buf_lo = d->buf_file_off;
      c->buf_hi = d->buf_file_off + d->count;
      c->buf_ino = d->buf_file_ino;
      c->buf_addr = d->buf_addr;
      if (!c->mmap_reported) report_self_mmap(*c, e, out);
    }
    if (d->done_before > 0 && !c->cont_reported) report_continued(*c, e, out);
  }

  void on_end(const Event& e, Findings& out) {
    auto* d = e.as<DioEnd>();
    if (d->write && !*d->write) return;
    // ki_pos is advanced by ret - done_before before the tracepoint fires.
    auto pos_ok = [&](const auto& q) {
      if (d->ret <= 0) return d->pos == q.cur_pos;
      return d->pos == q.cur_pos + uint64_t(d->ret) - std::min<uint64_t>(q.cur_done_before, uint64_t(d->ret));
    };
    Call* own = active(e.tid);
    if (own && !(own->in_flight && same_fs(own->fs, e.fs) && own->ino == e.ino &&
                 dev_compat(own->dev, e.dev)))
      own = nullptr;
    // 1) this thread's write at this position; 2) an AIO write of the file at
    // this position (completed in a worker or interrupt context); 3) this
    // thread's write, position unknown.
    Call* c = own && pos_ok(*own) ? own : nullptr;
    if (!c) {
      auto it = by_ino_.find(InoKey{e.fs, e.ino});
      if (it != by_ino_.end())
        for (auto id : it->second) {
          Call* q = get(id);
          if (q && q->in_flight && q->aio && dev_compat(q->dev, e.dev) && pos_ok(*q)) {
            c = q;
            break;
          }
        }
    }
    if (!c) c = own;
    if (!c) return;
    c->ev.push(e);
    c->in_flight = false;
    c->last_ts = e.ts_ns;
    if (d->ret > 0) c->acked_end = std::max(c->acked_end, c->start + uint64_t(d->ret));
    bool complete = d->ret <= 0 || c->acked_end >= c->end || c->aio;
    if (complete) {
      c->ended = true;
      c->end_ts = e.ts_ns;
      try_evaluate(*c, out);
    }
  }

  void on_oe(const Event& e, Findings& out) {
    auto* o = e.as<Ordered>();
    auto it = by_ino_.find(InoKey{e.fs, e.ino});
    if (it == by_ino_.end()) return;
    // Ordered extents of buffered writes are not ours.
    if (o->flags && !(o->flags & oef::DIRECT)) return;
    uint64_t s = o->file_offset, t = o->file_offset + o->len;
    // evaluation only queues erasures (flushed below), so the list is stable
    for (auto id : it->second) {
      Call* cp = get(id);
      if (!cp) continue;
      Call& c = *cp;
      if (!dev_compat(c.dev, e.dev) || !overlaps(s, t, c.start, c.end) || e.ts_ns < c.first_ts)
        continue;
      c.ev.push(e);
      c.last_ts = std::max(c.last_ts, e.ts_ns);
      switch (e.type) {
        case EventType::OeAdd:
          if (c.oes.size() < 256) c.oes.push_back(Call::OeRec{s, t, e.ts_ns, {}});
          break;
        case EventType::OeSplit: c.split_seen = true; break;
        case EventType::OeFinish:
        case EventType::OeMarkFinished:
          if (!o->uptodate || (o->flags & oef::IOERR)) {
            if (auto* r = pick(c, s, t)) r->failed.add(s, t);
            else c.pending_bad.add(s, t);
          }
          break;
        case EventType::OeRemove: {
          bool failed = o->flags & oef::IOERR;
          if (auto* r = pick(c, s, t)) {
            failed = failed || r->failed.intersects(s, t);
            // the removed part leaves the record; a split-off remainder stays
            IntervalSet rest;
            rest.add(r->s, r->e);
            rest.subtract(s, t);
            IntervalSet rf = r->failed;
            size_t idx = static_cast<size_t>(r - c.oes.data());
            c.oes.erase(c.oes.begin() + static_cast<long>(idx));
            for (auto [a, b] : rest.items()) {
              Call::OeRec n{a, b, e.ts_ns, rf.clip(a, b)};
              c.oes.push_back(std::move(n));
            }
          } else {
            failed = failed || c.pending_bad.intersects(s, t);
          }
          (failed ? c.bad : c.good).add(s, t);
          c.pending_bad.subtract(s, t);
          try_evaluate(c, out);
          break;
        }
        default: break;
      }
    }
  }

  // The open OE a completion event refers to: the one with exactly this
  // range, else the most recent one containing it, else any overlapping one.
  static Call::OeRec* pick(Call& c, uint64_t s, uint64_t t) {
    Call::OeRec *contain = nullptr, *any = nullptr;
    for (auto& r : c.oes) {
      if (r.s == s && r.e == t) return &r;
      if (r.s <= s && t <= r.e && (!contain || r.add_ts >= contain->add_ts)) contain = &r;
      if (!any && overlaps(r.s, r.e, s, t)) any = &r;
    }
    return contain ? contain : any;
  }

  void try_evaluate(Call& c, Findings& out) {
    if (!c.ended || !c.oes.empty() || c.in_flight) return;
    // wait for the OE completions of a call whose OEs we never saw added:
    // nothing to wait for; evaluate now and forget the call.
    evaluate(c, out);
    c.ended = false;  // judged: nothing more to do for it
    c.in_flight = false;
    c.bad.clear();
    pending_erase_.push_back(c.id);
  }

  // Callers flush after they stop using Call references.
  void flush_erase() {
    for (auto id : pending_erase_) erase(id);
    pending_erase_.clear();
  }

  // at_end: the trace ended; failures of ordered extents still open count too.
  void evaluate(Call& c, Findings& out, bool at_end = false) {
    // The kernel reported these ranges failed but the trace never saw the
    // ordered extent removed. Parts another open ordered extent may still
    // complete cleanly (a continuation's) are unknown, not failed.
    IntervalSet unfinished;
    if (at_end) {
      IntervalSet unknown;
      for (auto& r : c.oes) {
        for (auto [a, b] : r.failed.items()) unfinished.add(a, b);
        IntervalSet ok;
        ok.add(r.s, r.e);
        ok.subtract(r.failed);
        for (auto [a, b] : ok.items()) unknown.add(a, b);
      }
      for (auto [a, b] : c.pending_bad.items()) unfinished.add(a, b);
      unfinished.subtract(c.good);
      unfinished.subtract(unknown);
    }
    if (c.acked_end <= c.start || (c.bad.empty() && unfinished.empty())) return;
    IntervalSet bad = c.bad;
    for (auto [a, b] : unfinished.items()) bad.add(a, b);
    IntervalSet hole = bad.clip(c.start, c.acked_end);
    hole.subtract(c.good);
    if (hole.empty()) return;
    const bool trace_ended = unfinished.intersects(hole.items().front().first, hole.items().back().second);
    c.bad.clear();  // report once
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

  void report_continued(Call& c, const Event& e, Findings& out) {
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

  void report_self_mmap(Call& c, const Event& e, Findings& out) {
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

  void report_stall(Call& c, uint64_t now, Findings& out) {
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
  std::vector<Call> slab_;
  std::vector<uint32_t> free_;
  size_t live_ = 0;
  uint64_t gen_ = 0;
  std::vector<uint64_t> done_;
  std::vector<std::pair<uint64_t, uint64_t>> ts_;
  std::unordered_map<uint32_t, uint64_t> by_tid_;
  std::unordered_map<InoKey, std::vector<uint64_t>, InoKeyHash> by_ino_;
  std::vector<uint64_t> pending_erase_;
  size_t evicted_ = 0;
};

}  // namespace

std::unique_ptr<Detector> make_dio_short_write(const DetectorConfig& c) {
  return std::make_unique<DioShortWrite>(c);
}

}  // namespace bdt::det
