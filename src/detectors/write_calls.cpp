// DIO write calls and their ordered extents (write_calls.h).
#include "detectors/write_calls.h"

#include <algorithm>

namespace bdt::det {

void WriteCalls::on_event(const Event& e) {
  switch (e.type) {
    case EventType::DioBegin:
      if (e.as<DioBegin>()->write) on_begin(e);
      break;
    case EventType::DioEnd: on_end(e); break;
    case EventType::OeAdd:
    case EventType::OeSplit:
    case EventType::OeFinish:
    case EventType::OeRemove:
    case EventType::OeMarkFinished: on_oe(e); break;
    default: return;
  }
  flush_erase();
}

void WriteCalls::on_time(uint64_t now) {
  done_.clear();
  for (auto& c : slab_) {
    if (!c.live) continue;
    uint64_t id = c.id;
    each(c, [&](WriteCallHooks& h, Findings& out) { h.tick(c, now, out); });
    if (!c.ended && !c.in_flight && now - c.last_ts >= cfg_.settle_ns) {
      c.ended = true;  // short write that was not continued
      c.end_ts = c.last_ts;
    }
    if (c.ended && now - c.end_ts >= cfg_.settle_ns) {
      evaluate(c);
      done_.push_back(id);
    } else if (now - c.last_ts > cfg_.max_age_ns) {
      // aged out, unless some hooks hold it: then for the others only
      uint32_t holders = 0;
      for (size_t i = 0; i < subs_.size(); ++i)
        if (!(c.released >> i & 1) && subs_[i].h->hold(c)) holders |= 1u << i;
      if (!holders) {
        done_.push_back(id);
        ++evicted_;
      } else {
        c.released |= ~holders & ((1u << subs_.size()) - 1);
      }
    }
  }
  for (auto id : done_) erase(id);
}

// End of the trace (or replay): judge every call that returned, on what was
// seen. An ordered extent that failed (not-uptodate finish, IOERR) but whose
// removal the trace never saw counts as failed, and the hooks are told that
// the trace ended before the kernel finished. A call still in flight
// acknowledged nothing yet: nothing to judge.
void WriteCalls::on_finish(uint64_t now) {
  on_time(now);
  done_.clear();
  for (auto& c : slab_)
    if (c.live && (c.ended || !c.in_flight)) {
      evaluate(c, /*at_end=*/true);
      done_.push_back(c.id);
    }
  for (auto id : done_) erase(id);
}

void WriteCalls::move_pending(size_t i, Findings& out) {
  auto& p = subs_[i].pending;
  for (auto& f : p) out.push_back(std::move(f));
  p.clear();
}

// Calls live in a slab with a free list; an id encodes its slot, so no
// hash map is needed and a finished call's containers are reused.
WriteCall* WriteCalls::get(uint64_t id) {
  uint32_t slot = static_cast<uint32_t>(id);
  if (slot >= slab_.size()) return nullptr;
  WriteCall& c = slab_[slot];
  return c.live && c.id == id ? &c : nullptr;
}
WriteCall& WriteCalls::alloc() {
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slab_.size());
    slab_.emplace_back();
  }
  WriteCall& c = slab_[slot];
  c.reset(cfg_.max_evidence);
  c.live = true;
  c.id = (uint64_t(++gen_) << 32) | slot;
  ++live_;
  return c;
}

WriteCall* WriteCalls::active(uint32_t tid) {
  const uint64_t* t = by_tid_.find(tid);
  if (!t || !*t) return nullptr;
  return get(*t);
}

void WriteCalls::erase(uint64_t id) {
  WriteCall* c = get(id);
  if (!c) return;
  if (uint64_t* t = by_tid_.find(c->tid); t && *t == id) *t = 0;  // entry kept for reuse
  by_ino_.erase_first(InoKey{c->fs, c->ino}, [id](const FileCall& q) { return q.id == id; });
  c->live = false;
  free_.push_back(static_cast<uint32_t>(id));
  --live_;
  sweep_indexes();
}

// The thread index keeps empty entries (no insertion when the same thread
// comes back); drop them when they outgrow the cap. (The file index keeps
// only its last few empty lists: FileLists.)
void WriteCalls::sweep_indexes() {
  if (by_tid_.size() > 2 * cap())
    by_tid_.erase_if([](uint64_t id) { return id == 0; });
}

void WriteCalls::make_room() {
  if (live_ < cap()) return;
  // evaluate-and-drop the oldest eighth
  ts_.clear();
  for (auto& c : slab_)
    if (c.live) ts_.emplace_back(c.last_ts, c.id);
  size_t k = std::max<size_t>(1, ts_.size() / 8);
  std::nth_element(ts_.begin(), ts_.begin() + static_cast<long>(k - 1), ts_.end());
  for (size_t i = 0; i < k; ++i) drop(ts_[i].second);
}

// Judges a call that ended on what was seen, and forgets it (a cap was reached).
void WriteCalls::drop(uint64_t id) {
  if (WriteCall* c = get(id); c && c->ended) evaluate(*c);
  erase(id);
  ++evicted_, ++capped_;
}

void WriteCalls::on_begin(const Event& e) {
  auto* d = e.as<DioBegin>();
  WriteCall* c = active(e.tid);
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
    try_evaluate(*c);
    c = nullptr;
  }
  if (!c) {
    make_room();
    // (the file's entry stays while the oldest of its kPerFile calls is dropped)
    auto& in_file = by_ino_.of(InoKey{e.fs, e.ino});
    if (in_file.size() >= kPerFile) drop(in_file.front().id);  // the file's oldest call
    WriteCall& n = alloc();
    uint64_t id = n.id;
    n.fs = e.fs;
    n.dev = e.dev;
    n.ino = e.ino;
    n.pid = e.pid;
    n.tid = e.tid;
    n.comm.assign(e.comm_view());
    n.start = d->pos - std::min(d->pos, d->done_before);
    n.end = d->pos + d->count;
    n.acked_end = n.start + d->done_before;
    n.first_ts = e.ts_ns;
    n.aio = d->aio;
    n.first = e;
    by_tid_[e.tid] = id;
    in_file.push_back(FileCall{id, n.dev, n.start, n.end, n.first_ts});
    c = &n;
  } else if (d->pos + d->count > c->end) {  // a continuation past the asked end
    c->end = d->pos + d->count;
    if (auto f = by_ino_.find(InoKey{c->fs, c->ino}); f != by_ino_.end())
      for (auto& q : f->second)
        if (q.id == c->id) q.end = c->end;
  }
  c->ev.push(e);
  c->in_flight = true;
  c->parts++;
  c->begin_ts = c->last_ts = e.ts_ns;
  c->cur_pos = d->pos;
  c->cur_done_before = d->done_before;

  if (d->done_before > 0) c->short_seen = true;  // a continuation
  each(*c, [&](WriteCallHooks& h, Findings& out) { h.begun(*c, e, out); });
}

void WriteCalls::on_end(const Event& e) {
  auto* d = e.as<DioEnd>();
  if (d->write && !*d->write) return;
  // ki_pos is advanced by ret - done_before before the tracepoint fires.
  auto pos_ok = [&](const auto& q) {
    if (d->ret <= 0) return d->pos == q.cur_pos;
    return d->pos == q.cur_pos + uint64_t(d->ret) - std::min<uint64_t>(q.cur_done_before, uint64_t(d->ret));
  };
  WriteCall* own = active(e.tid);
  if (own && !(own->in_flight && same_fs(own->fs, e.fs) && own->ino == e.ino &&
               dev_compat(own->dev, e.dev)))
    own = nullptr;
  // 1) this thread's write at this position; 2) an AIO write of the file at
  // this position (completed in a worker or interrupt context); 3) this
  // thread's write, position unknown.
  WriteCall* c = own && pos_ok(*own) ? own : nullptr;
  if (!c) {
    auto it = by_ino_.find(InoKey{e.fs, e.ino});
    if (it != by_ino_.end())
      for (const FileCall& f : it->second) {
        WriteCall* q = get(f.id);
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
  if (d->ret > 0 && c->acked_end < c->end) c->short_seen = true;  // returned short
  bool complete = d->ret <= 0 || c->acked_end >= c->end || c->aio;
  if (complete) {
    c->ended = true;
    c->end_ts = e.ts_ns;
    try_evaluate(*c);
  }
}

void WriteCalls::on_oe(const Event& e) {
  auto* o = e.as<Ordered>();
  auto it = by_ino_.find(InoKey{e.fs, e.ino});
  if (it == by_ino_.end()) return;
  // Ordered extents of buffered writes are not ours.
  if (o->flags && !(o->flags & oef::DIRECT)) return;
  uint64_t s = o->file_offset, t = o->file_offset + o->len;
  // evaluation only queues erasures (flushed below), so the list is stable
  for (const FileCall& f : it->second) {
    if (!dev_compat(f.dev, e.dev) || !overlaps(s, t, f.start, f.end) || e.ts_ns < f.first_ts)
      continue;
    WriteCall* cp = get(f.id);
    if (!cp) continue;
    WriteCall& c = *cp;
    c.ev.push(e);
    c.last_ts = std::max(c.last_ts, e.ts_ns);
    switch (e.type) {
      case EventType::OeAdd:
        if (c.oes.size() < kOesPerCall) c.oes.push_back(WriteCall::OeRec{s, t, e.ts_ns, {}});
        else ++capped_, ++evicted_;
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
          // the removed part leaves the record; a split-off remainder (the
          // part before s, the part after t) stays, with its failures
          const uint64_t rs = r->s, re = r->e;
          if (rs >= s && re <= t) {  // all of it (the usual case): nothing to keep
            c.oes.erase(c.oes.begin() + (r - c.oes.data()));
          } else {
            IntervalSet rf = std::move(r->failed);
            c.oes.erase(c.oes.begin() + (r - c.oes.data()));
            for (auto [a, b] : {std::pair{rs, std::min(re, s)}, std::pair{std::max(rs, t), re}})
              if (a < b) c.oes.push_back(WriteCall::OeRec{a, b, e.ts_ns, rf.clip(a, b)});
          }
        } else {
          failed = failed || c.pending_bad.intersects(s, t);
        }
        (failed ? c.bad : c.good).add(s, t);
        c.pending_bad.subtract(s, t);
        try_evaluate(c);
        break;
      }
      default: break;
    }
  }
}

// The open OE a completion event refers to: the one with exactly this
// range, else the most recent one containing it, else any overlapping one.
WriteCall::OeRec* WriteCalls::pick(WriteCall& c, uint64_t s, uint64_t t) {
  WriteCall::OeRec *contain = nullptr, *any = nullptr;
  for (auto& r : c.oes) {
    if (r.s == s && r.e == t) return &r;
    if (r.s <= s && t <= r.e && (!contain || r.add_ts >= contain->add_ts)) contain = &r;
    if (!any && overlaps(r.s, r.e, s, t)) any = &r;
  }
  return contain ? contain : any;
}

void WriteCalls::try_evaluate(WriteCall& c) {
  if (!c.ended || !c.oes.empty() || c.in_flight) return;
  // wait for the OE completions of a call whose OEs we never saw added:
  // nothing to wait for; evaluate now and forget the call.
  evaluate(c);
  c.ended = false;  // judged: nothing more to do for it
  c.in_flight = false;
  c.bad.clear();
  pending_erase_.push_back(c.id);
}

// Callers flush after they stop using Call references.
void WriteCalls::flush_erase() {
  for (auto id : pending_erase_) erase(id);
  pending_erase_.clear();
}

// at_end: the trace ended; failures of ordered extents still open count too.
void WriteCalls::evaluate(WriteCall& c, bool at_end) {
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
  c.bad.clear();  // judged once
  each(c, [&](WriteCallHooks& h, Findings& out) { h.judged(c, hole, trace_ended, out); });
}

}  // namespace bdt::det
