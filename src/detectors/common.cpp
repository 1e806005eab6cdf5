// Helpers shared by the detectors (detectors/common.h).
#include "detectors/common.h"

#include <fmt/format.h>

namespace bdt::det {

// In place: no allocation unless the set grows beyond its capacity.
void IntervalSet::add(uint64_t s, uint64_t e) {
  if (s >= e) return;
  size_t i = 0;
  while (i < v_.size() && v_[i].second < s) ++i;  // first interval that can touch [s, e)
  if (i == v_.size() || e < v_[i].first) {
    v_.insert(v_.begin() + static_cast<long>(i), {s, e});
  } else {
    v_[i].first = std::min(v_[i].first, s);
    v_[i].second = std::max(v_[i].second, e);
    size_t j = i + 1;
    while (j < v_.size() && v_[j].first <= v_[i].second) {
      v_[i].second = std::max(v_[i].second, v_[j].second);
      ++j;
    }
    v_.erase(v_.begin() + static_cast<long>(i) + 1, v_.begin() + static_cast<long>(j));
  }
  while (v_.size() > kMax) {  // merge the closest neighbours
    size_t best = 0;
    uint64_t gap = UINT64_MAX;
    for (size_t k = 0; k + 1 < v_.size(); ++k) {
      uint64_t g = v_[k + 1].first - v_[k].second;
      if (g < gap) gap = g, best = k;
    }
    v_[best].second = v_[best + 1].second;
    v_.erase(v_.begin() + static_cast<long>(best) + 1);
  }
}

void IntervalSet::subtract(uint64_t s, uint64_t e) {
  if (s >= e) return;
  for (size_t i = 0; i < v_.size();) {
    auto [a, b] = v_[i];
    if (b <= s || e <= a) {
      ++i;
      continue;
    }
    if (a < s && e < b) {  // punch a hole
      v_[i].second = s;
      v_.insert(v_.begin() + static_cast<long>(i) + 1, {e, b});
      return;
    }
    if (a < s) {
      v_[i].second = s;
      ++i;
    } else if (e < b) {
      v_[i].first = e;
      ++i;
    } else {
      v_.erase(v_.begin() + static_cast<long>(i));
    }
  }
}

bool IntervalSet::intersects(uint64_t s, uint64_t e) const {
  for (auto [a, b] : v_)
    if (overlaps(a, b, s, e)) return true;
  return false;
}

IntervalSet IntervalSet::clip(uint64_t s, uint64_t e) const {
  IntervalSet r;
  for (auto [a, b] : v_) {
    uint64_t x = std::max(a, s), y = std::min(b, e);
    if (x < y) r.v_.emplace_back(x, y);
  }
  return r;
}

IntervalSet IntervalSet::intersect(const IntervalSet& o) const {
  IntervalSet r;
  for (auto [a, b] : o.v_) {
    auto c = clip(a, b);
    for (auto [x, y] : c.v_) r.add(x, y);
  }
  return r;
}

void Evidence::push(const Event& e) {
  if (v_.size() < cap_) {
    v_.push_back(e);
    return;
  }
  // keep the first half, rotate the second half (most recent)
  size_t half = cap_ / 2;
  v_.erase(v_.begin() + static_cast<long>(half));
  v_.push_back(e);
  ++dropped_;
}

void put_evidence(Finding& f, std::vector<Event> evs, size_t cap) {
  std::stable_sort(evs.begin(), evs.end(),
                   [](const Event& a, const Event& b) { return a.ts_ns < b.ts_ns; });
  std::vector<Event> out;
  out.reserve(std::min(evs.size(), cap));
  for (auto& e : evs) {
    bool dup = false;
    for (auto& o : out)
      if (o.ts_ns == e.ts_ns && o.tid == e.tid && o.type == e.type) dup = true;
    if (!dup) out.push_back(e);
  }
  if (out.size() > cap) {
    // keep the first and the last events
    size_t head = cap / 2, tail = cap - head;
    std::vector<Event> kept(out.begin(), out.begin() + static_cast<long>(head));
    kept.insert(kept.end(), out.end() - static_cast<long>(tail), out.end());
    out.swap(kept);
  }
  f.evidence = std::move(out);
}

DioRequests::Req& DioRequests::begin(const Event& e, uint64_t* dropped) {
  auto* d = e.as<DioBegin>();
  if (Req* r = of_thread(e.tid)) {
    auto* b = r->begin.as<DioBegin>();
    if (d->done_before > 0 && same_fs(r->begin.fs, e.fs) && r->begin.ino == e.ino &&
        r->start + d->done_before == d->pos && b) {
      r->begin = e;
      r->ev.push(e);
      if (auto f = by_file_.find(r->file); f != by_file_.end())
        for (auto& q : f->second)
          if (q.id == r->id) q = file_entry(q.r);
      return *r;
    }
    // the thread's synchronous request is over: its end was not seen
    if (dropped) *dropped = r->id;
    remove(r);
  }
  if (reqs_.size() >= cap_) {
    // drop the oldest eighth (ids are in begin order)
    for (size_t k = std::max<size_t>(1, reqs_.size() / 8); k && !reqs_.empty(); --k) {
      remove(&*reqs_.begin());
      ++evicted_, ++capped_;
    }
  }
  InoKey file = ino_key(e);
  auto& its = by_file_.of(file);
  if (its.size() >= kPerFile) {  // the file's oldest request (its entry stays: not empty)
    remove(its.front().r);
    ++evicted_, ++capped_;
  }
  uint64_t id;
  Req& r = reqs_.add(id);  // a reused one: its evidence cleared, every other field set here
  r.id = id;
  r.begin = e;
  r.first_ts = e.ts_ns;
  r.start = d->pos - std::min(d->pos, d->done_before);
  r.write = d->write;
  r.aio = d->aio;
  r.ev.clear();
  r.ev.push(e);
  r.file = file;
  its.push_back(file_entry(&r));
  if (!r.aio) sync_by_tid_[e.tid] = r.id;
  return r;
}

DioRequests::Req* DioRequests::of_thread(uint32_t tid) {
  const uint64_t* t = sync_by_tid_.find(tid);
  if (!t) return nullptr;
  if (Req* r = reqs_.find(*t)) return r;
  sync_by_tid_.erase(tid);
  return nullptr;
}

DioRequests::Ended DioRequests::end(const Event& e) {
  auto* d = e.as<DioEnd>();
  auto f = by_file_.find(ino_key(e));
  if (f == by_file_.end()) return {};
  const uint64_t* t = sync_by_tid_.find(e.tid);
  const uint64_t own_id = t ? *t : 0;  // ids start at 1
  constexpr size_t kNone = SIZE_MAX;
  size_t pick = kNone, own = kNone;
  const auto& v = f->second;
  for (size_t i = 0; i < v.size(); ++i) {
    const FileEntry& q = v[i];
    if (!dev_compat(q.dev, e.dev) || (d->write && q.write != *d->write)) continue;
    bool mine = q.id == own_id;
    if (mine && dio_end_at(*d, q.pos, q.done_before)) {
      pick = i;
      break;
    }
    if (mine) {
      own = i;
    } else if (q.aio && pick == kNone && dio_end_at(*d, q.pos, q.done_before)) {
      pick = i;
      if (!own_id) break;  // no request of this thread to prefer
    }
  }
  if (pick == kNone) pick = own;
  if (pick == kNone) return {};
  // Out of the indexes: only this thread's entry can name a synchronous
  // request (an asynchronous one has none), and the request is v[pick].
  const uint64_t id = v[pick].id;
  if (own_id == id) sync_by_tid_.erase(e.tid);
  by_file_.erase(f, pick);
  Ended r;
  r.r_ = reqs_.take(id);
  r.owner_ = this;
  r->ev.push(e);
  return r;
}

DioRequests::FileEntry DioRequests::file_entry(Req* r) {
  auto* b = r->begin.as<DioBegin>();
  return FileEntry{r, r->id, r->begin.dev, b->pos, b->done_before, r->write, r->aio};
}

void DioRequests::remove(Req* r) {
  unindex(r);
  reqs_.recycle(reqs_.take(r->id));
}

void DioRequests::unindex(const Req* r) {
  if (const uint64_t* t = sync_by_tid_.find(r->begin.tid); t && *t == r->id) sync_by_tid_.erase(r->begin.tid);
  by_file_.erase_first(r->file, [r](const FileEntry& q) { return q.r == r; });
}

SharedRequests::SharedRequests(const DetectorConfig& c)
    : reqs_(c.max_requests), age_(std::max(c.max_age_ns, 4 * c.stall_threshold_ns)) {}

void SharedRequests::on_event(const Event& e) {
  began_ = nullptr;
  dropped_ = 0;
  ended_.reset();
  if (e.type == EventType::DioBegin) began_ = &reqs_.begin(e, &dropped_);
  else if (e.type == EventType::DioEnd) ended_.emplace(reqs_.end(e));
}

size_t DioRequests::evict(uint64_t now, uint64_t max_age) {
  // Requests that began before now - max_age, oldest first; a continued one
  // (its last dio_begin recent) stays.
  size_t n = 0;
  for (auto it = reqs_.begin(); it != reqs_.end();) {
    uint64_t first = it->first_ts, t = it->begin.ts_ns;
    if (!(now > first && now - first > max_age)) break;
    if (now > t && now - t > max_age) {
      auto next = std::next(it);
      remove(&*it);
      it = next;
      ++n;
    } else {
      ++it;
    }
  }
  evicted_ += n;
  return n;
}

std::string comm_of(const Event& e) { return std::string(e.comm_view()); }

Finding make_finding(std::string_view detector, std::string_view kind, Level level,
                     Severity sev, const Event& p) {
  Finding f;
  f.detector = std::string(detector);
  f.kind = std::string(kind);
  f.level = level;
  f.severity = sev;
  f.ts_ns = p.ts_ns;
  f.pid = p.pid;
  f.tid = p.tid;
  f.comm = comm_of(p);
  f.fs = p.fs;
  if (p.dev) f.dev = p.dev;
  if (p.ino) f.ino = p.ino;
  f.vm = std::string(p.vm);
  f.image = std::string(p.image);
  return f;
}

void add_actor(Finding& f, uint32_t pid, uint32_t tid, std::string_view comm,
               std::string_view role) {
  for (auto& a : f.actors)
    if (a.tid == tid && a.pid == pid && a.role == role) return;
  f.actors.push_back(Actor{pid, tid, std::string(comm), std::string(role)});
}
void add_actor(Finding& f, const Event& e, std::string_view role) {
  add_actor(f, e.pid, e.tid, e.comm_view(), role);
}

std::string hex(uint64_t v) { return fmt::format("{:#x}", v); }

std::string errno_name(int64_t neg) {
  switch (-neg) {
    case 5: return "EIO";
    case 11: return "EAGAIN";
    case 12: return "ENOMEM";
    case 17: return "EEXIST";
    case 28: return "ENOSPC";
    case 22: return "EINVAL";
    case 30: return "EROFS";
    case 16: return "EBUSY";
    case 95: return "EOPNOTSUPP";
    case 117: return "EUCLEAN";
    case 2: return "ENOENT";
    default: return fmt::format("errno {}", -neg);
  }
}

}  // namespace bdt::det
