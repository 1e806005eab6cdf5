// Internal helpers shared by the detectors (not a public header).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <span>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bdt/detector.h"
#include "bdt/event.h"
#include "detectors/exposure.h"
#include "detectors/id_table.h"
#include "detectors/tid_map.h"
#include "bdt/finding.h"

namespace bdt::det {

inline constexpr int64_t kEEXIST = -17, kEAGAIN = -11, kEIO = -5;

// Two events' filesystems match when equal, or when one side could not tell.
inline bool same_fs(const Fsid& a, const Fsid& b) { return a == b || a.empty() || b.empty(); }
// st_dev: 0 means the source could not tell (e.g. ordered-extent tracepoints,
// which carry the root but not the anonymous dev): then (fs, ino) decides.
inline bool dev_compat(uint64_t a, uint64_t b) { return a == b || a == 0 || b == 0; }

// An inode across subvolumes: (fs, ino) is the map key, dev is compared with
// dev_compat() by whoever looks an entry up.
struct InoKey {
  Fsid fs;
  uint64_t ino = 0;
  bool operator==(const InoKey& o) const { return ino == o.ino && fs == o.fs; }
};
struct InoKeyHash {
  size_t operator()(const InoKey& k) const {
    uint64_t h = (k.ino ^ k.fs.half(0)) * 0x9E3779B97F4A7C15ull;
    h = (h ^ (h >> 29) ^ k.fs.half(1)) * 0xBF58476D1CE4E5B9ull;
    return static_cast<size_t>(h ^ (h >> 32));
  }
};
// The fs part of an InoKey is ignored when it is empty on the event side; we
// key by fs as given (sources that know the inode know the fs).
inline InoKey ino_key(const Event& e) { return {e.fs, e.ino}; }

inline bool overlaps(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1) {
  return a0 < b1 && b0 < a1;
}

// A small set of disjoint half-open intervals, kept sorted. Bounded: beyond
// kMax intervals the two closest are merged (conservatively widening).
class IntervalSet {
 public:
  static constexpr size_t kMax = 64;
  void add(uint64_t s, uint64_t e);
  void subtract(uint64_t s, uint64_t e);
  bool empty() const { return v_.empty(); }
  bool intersects(uint64_t s, uint64_t e) const;
  // this ∩ [s, e)
  IntervalSet clip(uint64_t s, uint64_t e) const;
  void subtract(const IntervalSet& o) {
    for (auto& [s, e] : o.v_) subtract(s, e);
  }
  IntervalSet intersect(const IntervalSet& o) const;
  const std::vector<std::pair<uint64_t, uint64_t>>& items() const { return v_; }
  uint64_t bytes() const {
    uint64_t n = 0;
    for (auto& [s, e] : v_) n += e - s;
    return n;
  }
  void clear() { v_.clear(); }

 private:
  std::vector<std::pair<uint64_t, uint64_t>> v_;
};

// Bounded, time-ordered evidence list: keeps the first half and the most
// recent events once full, and counts what it dropped.
class Evidence {
 public:
  Evidence(size_t cap = 32) : cap_(cap < 4 ? 4 : cap) {}
  // Empty it, keeping the allocated capacity.
  void reset(size_t cap) {
    cap_ = cap < 4 ? 4 : cap;
    v_.clear();
    dropped_ = 0;
  }
  void push(const Event& e);
  // Empty it and give its memory back (nothing more will be pushed).
  void release() {
    std::vector<Event>().swap(v_);
    dropped_ = 0;
  }
  const std::vector<Event>& events() const { return v_; }
  size_t dropped() const { return dropped_; }

 private:
  size_t cap_;
  std::vector<Event> v_;
  size_t dropped_ = 0;
};

// The same, inline (no allocation): for per-request state on hot paths.
// The slots past the ones pushed stay unconstructed and are not copied (an
// Event is trivially copyable and destructible): making or copying a request's
// state costs the events it holds, not N.
template <size_t N>
class InlineEvidence {
  static_assert(N >= 4);
  static_assert(std::is_trivially_copyable_v<Event> && std::is_trivially_destructible_v<Event>);

 public:
  InlineEvidence() {}
  InlineEvidence(const InlineEvidence& o) : n_(o.n_), dropped_(o.dropped_) {
    std::copy_n(o.v_, n_, v_);
  }
  InlineEvidence& operator=(const InlineEvidence& o) {
    n_ = o.n_;
    dropped_ = o.dropped_;
    std::copy_n(o.v_, n_, v_);
    return *this;
  }
  void push(const Event& e) {
    if (n_ < N) {
      v_[n_++] = e;
      return;
    }
    std::move(v_ + N / 2 + 1, v_ + N, v_ + N / 2);
    v_[N - 1] = e;
    ++dropped_;
  }
  void clear() { n_ = dropped_ = 0; }
  std::span<const Event> events() const { return {v_, n_}; }
  size_t dropped() const { return dropped_; }
  // Where a fresh one's first push() writes (the counts, then the first slot).
  static constexpr size_t first_push_bytes() { return offsetof(InlineEvidence, v_) + sizeof(Event); }

 private:
  // The counts first: a new request's first event and its count share lines.
  size_t n_ = 0, dropped_ = 0;
  union {
    Event v_[N];
  };
};

// Does a dio_end belong to the request whose last dio_begin had this pos and
// done_before? iomap_dio_complete reports ki_pos already advanced by the bytes
// this call did (its ret includes done_before).
inline bool dio_end_at(const DioEnd& d, uint64_t begin_pos, uint64_t done_before) {
  if (d.ret <= 0) return d.pos == begin_pos;
  return d.pos == begin_pos + uint64_t(d.ret) - std::min<uint64_t>(done_before, uint64_t(d.ret));
}

// A table's entries per file (fs, ino), oldest first: the per-file indexes of
// the request and ordered-extent tables. A file's list that becomes empty keeps
// its place and its memory for the file's next entry (no allocation per request
// on a file with one request in flight at a time): the last kKeptEmpty lists
// to empty, of at most kKeptCap entries' capacity; an older or larger empty
// list is dropped. An empty list reads as no entries. The last file looked up
// is remembered (the next event is usually of the same file): no hash then.
template <class V>
class FileLists {
 public:
  static constexpr size_t kKeptEmpty = 16, kKeptCap = 64;
  using Map = std::unordered_map<InoKey, std::vector<V>, InoKeyHash>;
  using iterator = typename Map::iterator;

  // The file's list, made if new, to add an entry to.
  std::vector<V>& of(const InoKey& k) {
    if (!(memo_ok_ && memo_->first == k)) memo_ = m_.try_emplace(k).first, memo_ok_ = true;
    return memo_->second;
  }
  iterator find(const InoKey& k) {
    if (memo_ok_ && memo_->first == k) return memo_;
    auto it = m_.find(k);
    if (it != m_.end()) memo_ = it, memo_ok_ = true;
    return it;
  }
  iterator end() { return m_.end(); }
  typename Map::const_iterator find(const InoKey& k) const { return m_.find(k); }
  typename Map::const_iterator end() const { return m_.end(); }
  // Takes the i-th entry out of f's list.
  void erase(iterator f, size_t i) {
    auto& v = f->second;
    v.erase(v.begin() + static_cast<long>(i));
    if (!v.empty()) return;
    if (v.capacity() > kKeptCap) {
      drop(f);
      return;
    }
    if (kept_.size() < kKeptEmpty) {
      kept_.push_back(f->first);
      return;
    }
    // the list that emptied longest ago goes, if it is still empty (and is
    // not this one: a file emptying again and again fills the ring with itself)
    InoKey& oldest = kept_[kept_next_];
    if (!(oldest == f->first))
      if (auto g = m_.find(oldest); g != m_.end() && g->second.empty()) drop(g);
    oldest = f->first;
    kept_next_ = (kept_next_ + 1) % kKeptEmpty;
  }
  // Takes the first entry of k's list for which pred is true out (false: none).
  template <class P>
  bool erase_first(const InoKey& k, P pred) {
    auto f = find(k);
    if (f == m_.end()) return false;
    const auto& v = f->second;
    for (size_t i = 0; i < v.size(); ++i)
      if (pred(v[i])) {
        erase(f, i);
        return true;
      }
    return false;
  }
  size_t files() const { return m_.size(); }  // with the kept empty lists

 private:
  void drop(iterator f) {
    if (memo_ok_ && memo_ == f) memo_ok_ = false;
    m_.erase(f);
  }
  Map m_;
  iterator memo_{};  // the last file looked up (valid: memo_ok_; an insertion sets it)
  bool memo_ok_ = false;
  std::vector<InoKey> kept_;  // the files whose lists emptied last (a ring)
  size_t kept_next_ = 0;
};

// DIO requests between dio_begin and dio_end, as the invariant detectors
// follow them. A synchronous request ends on its own thread; an asynchronous
// one (io_uring, libaio) may end in a worker or interrupt context, so a
// dio_end is matched to: this thread's request at the end position, else an
// asynchronous request of the same file at that position, else this thread's
// request of the file; only among requests of the dio_end's direction when it
// carries one. A thread's next synchronous dio_begin ends its previous
// synchronous request (its dio_end was lost or filtered).
// Bounded: at most `cap` requests, and kPerFile per file (fs, ino) (a dio_end
// looks only at its file's requests); beyond either the oldest are dropped and
// counted (capped()).
class DioRequests {
 public:
  static constexpr size_t kPerFile = 256;
  struct Req {
    uint64_t id = 0;
    Event begin;              // the (last) dio_begin
    uint64_t first_ts = 0;    // the first dio_begin of the request
    uint64_t start = 0;       // file offset of the whole request (pos - done_before)
    bool write = false, aio = false;
    InlineEvidence<8> ev;     // events of the request's thread while it runs
    InoKey file;              // its key in the per-file index (of the first dio_begin)
  };
  explicit DioRequests(size_t cap) : cap_(cap < 16 ? 16 : cap) {}
  // A dio_begin: a continuation (done_before > 0, same thread and file, at
  // start + done_before) extends the thread's open request; otherwise opens one.
  // Returns the request; `dropped` gets the id of a synchronous request it ended.
  Req& begin(const Event& e, uint64_t* dropped = nullptr);
  // A request end() took out of the table; it owns the request's storage
  // (nothing is copied). False: the dio_end was not one of ours.
  // Its storage goes back to the table's spares when it is dropped.
  class Ended {
   public:
    Ended() = default;
    Ended(Ended&& o) noexcept : r_(std::move(o.r_)), owner_(std::exchange(o.owner_, nullptr)) {}
    Ended& operator=(Ended&&) = delete;
    ~Ended() {
      if (owner_) owner_->reqs_.recycle(std::move(r_));
    }
    explicit operator bool() const { return r_ != nullptr; }
    Req* operator->() { return r_.get(); }
    Req& operator*() { return *r_; }

   private:
    friend class DioRequests;
    std::unique_ptr<Req> r_;
    DioRequests* owner_ = nullptr;
  };
  // A dio_end: the request it ends, removed (false: not one we follow).
  Ended end(const Event& e);
  // The open request of this thread (the submission side), if any.
  Req* of_thread(uint32_t tid);
  // The open request with this id, if any.
  const Req* find(uint64_t id) const { return reqs_.find(id); }
  // The open requests, in the order they began (range-for: const Req&).
  using Table = IdTable<Req>;
  const Table& open() const { return reqs_; }
  // Drops requests idle since before now - max_age; returns how many.
  size_t evict(uint64_t now, uint64_t max_age);
  size_t size() const { return reqs_.size(); }
  size_t cap() const { return cap_; }
  size_t evicted() const { return evicted_; }  // for age or for a cap
  size_t capped() const { return capped_; }    // of those, for a cap

 private:
  // Ended requests' storage is kept for the next ones (IdTable's spares: a
  // request is ~1.9 KB, a fresh allocation per request was a tenth of
  // replay's time).
  void remove(Req* r);
  void unindex(const Req* r);  // out of the thread and file indexes (still in reqs_)
  // A request in its file's index: what end() matches a dio_end on, copied
  // from its (last) dio_begin, so the match reads no request.
  struct FileEntry {
    Req* r;
    uint64_t id, dev, pos, done_before;
    bool write, aio;
  };
  using FileIndex = FileLists<FileEntry>;
  static FileEntry file_entry(Req* r);
  size_t cap_;
  Table reqs_;
  TidMap<uint64_t> sync_by_tid_;  // tid -> id of its synchronous request
  FileIndex by_file_;  // open requests, oldest first
  size_t evicted_ = 0, capped_ = 0;
};

// The DIO requests in flight, followed once for every detector that needs
// them (dio-unexpected-errno, dio-stuck, dio-csum-after-direct-write): the
// engine applies each event to this table before the detectors see it, and
// ages it out after their on_time; a detector reads what the event did. A
// request is followed for the longest time any of them needs:
// max(max_age_ns, 4 x stall_threshold_ns). Bounded by max_requests.
class SharedRequests {
 public:
  explicit SharedRequests(const DetectorConfig& c);
  // Before the detectors' on_event.
  void on_event(const Event& e);
  // After the detectors' on_time: drops requests idle for longer than age().
  void on_time(uint64_t now) { reqs_.evict(now, age_); }
  DioRequests& table() { return reqs_; }
  const DioRequests& table() const { return reqs_; }
  uint64_t age() const { return age_; }
  // What the event being fed did (until the next one):
  // a dio_begin: the request it opened or continued, and the id of a
  // synchronous request of its thread it ended (0: none);
  DioRequests::Req* began() const { return began_; }
  uint64_t dropped() const { return dropped_; }
  // a dio_end: the request it ended (nullptr: not one we follow).
  DioRequests::Req* ended() { return ended_ && *ended_ ? &**ended_ : nullptr; }

 private:
  DioRequests reqs_;
  uint64_t age_;
  DioRequests::Req* began_ = nullptr;
  uint64_t dropped_ = 0;
  std::optional<DioRequests::Ended> ended_;
};

// Per inode (fs, ino), the ranges whose last write seen is one a detector
// remembers (dio-unstable-pages: writes from shared buffers; dio-csum-after-
// direct-write: acknowledged direct writes), newest last. W has the fields
// dev, lo, hi (the range still last written by it) and whatever the detector
// keeps about the write. A later write of a range forgets it there (a
// remembered write is cut to what is left of it).
// Bounded: per_inode writes per inode (the inode's oldest dropped) and `cap`
// in all (the inode written least recently dropped, with its writes); both
// counted (capped()). Inodes are kept in the order they were last written, so
// dropping and ageing cost nothing per event.
template <class W>
class LastWrites {
 public:
  struct Inode {
    std::vector<W> w;
    uint64_t last_ts = 0;
    typename std::list<InoKey>::iterator lru;
  };
  LastWrites(size_t cap, size_t per_inode)
      : cap_(cap < 16 ? 16 : cap), per_inode_(per_inode < 1 ? 1 : per_inode) {}

  // Remembers w for e's inode, written at e.ts_ns.
  W& add(const Event& e, W w) {
    while (n_ >= cap_ && !lru_.empty()) {
      auto it = m_.find(lru_.front());
      capped_ += it->second.w.size();
      drop(it);
    }
    auto [it, added] = m_.try_emplace(ino_key(e));
    Inode& st = it->second;
    if (added) st.lru = lru_.insert(lru_.end(), it->first);
    else lru_.splice(lru_.end(), lru_, st.lru);
    st.last_ts = e.ts_ns;
    if (st.w.size() >= per_inode_) {
      st.w.erase(st.w.begin());
      --n_, ++capped_;
    }
    st.w.push_back(std::move(w));
    ++n_;
    return st.w.back();
  }

  // Forgets [lo, hi) of e's inode (written again): every remembered write
  // overlapping it goes to overwritten(W&) first, then is cut.
  template <class F>
  void forget(const Event& e, uint64_t lo, uint64_t hi, F overwritten) {
    auto it = m_.find(ino_key(e));
    if (it == m_.end()) return;
    auto& v = it->second.w;
    std::vector<W> keep;
    keep.reserve(v.size() + 1);
    for (auto& w : v) {
      if (!dev_compat(w.dev, e.dev) || !overlaps(w.lo, w.hi, lo, hi)) {
        keep.push_back(std::move(w));
        continue;
      }
      overwritten(w);
      if (w.lo < lo) {
        W a = w;
        a.hi = lo;
        keep.push_back(std::move(a));
      }
      if (hi < w.hi) {
        W b = w;
        b.lo = hi;
        keep.push_back(std::move(b));
      }
    }
    n_ = n_ - v.size() + keep.size();
    v.swap(keep);
    while (v.size() > per_inode_) {  // a write split in two
      v.erase(v.begin());
      --n_, ++capped_;
    }
    if (v.empty()) drop(it);
  }

  // The writes remembered for this inode (nullptr: none).
  std::vector<W>* find(const InoKey& k) {
    auto it = m_.find(k);
    return it == m_.end() ? nullptr : &it->second.w;
  }
  bool has(const InoKey& k) const { return m_.count(k) != 0; }

  // Drops the inodes not written since before now - max_age; returns how many writes.
  size_t evict_aged(uint64_t now, uint64_t max_age) {
    size_t n = 0;
    while (!lru_.empty()) {
      auto it = m_.find(lru_.front());
      uint64_t t = it->second.last_ts;
      if (!(now > t && now - t > max_age)) break;
      n += it->second.w.size();
      drop(it);
    }
    return n;
  }

  size_t size() const { return n_; }  // writes remembered
  size_t cap() const { return cap_; }
  size_t capped() const { return capped_; }

 private:
  void drop(typename std::unordered_map<InoKey, Inode, InoKeyHash>::iterator it) {
    n_ -= it->second.w.size();
    lru_.erase(it->second.lru);
    m_.erase(it);
  }
  size_t cap_, per_inode_;
  size_t n_ = 0, capped_ = 0;
  std::unordered_map<InoKey, Inode, InoKeyHash> m_;
  std::list<InoKey> lru_;  // least recently written first
};

// Merge several evidence lists into a finding: time-ordered, de-duplicated,
// at most `cap` events.
void put_evidence(Finding& f, std::vector<Event> evs, size_t cap);

Finding make_finding(std::string_view detector, std::string_view kind, Level level,
                     Severity sev, const Event& primary);
void add_actor(Finding& f, const Event& e, std::string_view role);
void add_actor(Finding& f, uint32_t pid, uint32_t tid, std::string_view comm,
               std::string_view role);
std::string comm_of(const Event& e);
std::string hex(uint64_t v);
std::string errno_name(int64_t neg);  // -17 -> "EEXIST"

// Evict entries of an unordered_map when it is at capacity: drops the oldest
// eighth (by ts_of(value)). Returns how many were evicted.
template <class Map, class TsOf>
size_t evict_oldest(Map& m, size_t cap, TsOf ts_of) {
  if (m.size() < cap) return 0;
  std::vector<uint64_t> ts;
  ts.reserve(m.size());
  for (auto& kv : m) ts.push_back(ts_of(kv.second));
  size_t k = std::max<size_t>(1, m.size() / 8);
  std::nth_element(ts.begin(), ts.begin() + (k - 1), ts.end());
  uint64_t cut = ts[k - 1];
  size_t n = 0;
  for (auto it = m.begin(); it != m.end() && n < k;) {
    if (ts_of(it->second) <= cut) {
      it = m.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}
// Evict entries idle for longer than max_age.
template <class Map, class TsOf>
size_t evict_aged(Map& m, uint64_t now, uint64_t max_age, TsOf ts_of) {
  size_t n = 0;
  for (auto it = m.begin(); it != m.end();) {
    uint64_t t = ts_of(it->second);
    if (now > t && now - t > max_age) {
      it = m.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

// Rate limit per key: true if a finding may be emitted now; otherwise counts
// it as suppressed. `suppressed` returns and resets the count for the key.
template <class Key, class Hash = std::hash<Key>>
class RepeatGate {
 public:
  // cap: most keys remembered; beyond it the oldest are forgotten (counted).
  explicit RepeatGate(size_t cap = 1024) : cap_(cap < 16 ? 16 : cap) {}
  bool allow(const Key& k, uint64_t now, uint64_t interval) {
    auto it = m_.find(k);
    if (it == m_.end()) {
      if (m_.size() >= cap_)
        evicted_ += evict_oldest(m_, cap_, [](const Slot& s) { return s.last; });
      m_.emplace(k, Slot{now, 0});
      return true;
    }
    if (now - it->second.last >= interval) {
      it->second.last = now;
      return true;
    }
    ++it->second.suppressed;
    return false;
  }
  uint64_t take_suppressed(const Key& k) {
    auto it = m_.find(k);
    if (it == m_.end()) return 0;
    return std::exchange(it->second.suppressed, 0);
  }
  size_t evict(uint64_t now, uint64_t max_age) {
    return evict_aged(m_, now, max_age, [](const Slot& s) { return s.last; });
  }
  size_t size() const { return m_.size(); }
  size_t cap() const { return cap_; }
  size_t evicted() const { return evicted_; }

 private:
  size_t cap_;
  size_t evicted_ = 0;
  struct Slot {
    uint64_t last;
    uint64_t suppressed;
  };
  std::unordered_map<Key, Slot, Hash> m_;
};

// Split a detector's entry budget: a quarter for rate-limit memory.
inline size_t gate_cap(const DetectorConfig& c) { return c.max_entries / 4 < 16 ? 16 : c.max_entries / 4; }
inline size_t main_cap(const DetectorConfig& c) {
  size_t g = gate_cap(c);
  return c.max_entries > g + 16 ? c.max_entries - g : 16;
}

// Factories (one per detector file).
// Those taking a Shared (detectors/shared.h) follow what it keeps: whoever
// feeds them feeds it first (Engine).
struct Shared;
std::unique_ptr<Detector> make_em_merge_race(const DetectorConfig&);
std::unique_ptr<Detector> make_stale_eb_reuse(const DetectorConfig&);
std::unique_ptr<Detector> make_dio_short_write(const DetectorConfig&, std::shared_ptr<Shared>);
std::unique_ptr<Detector> make_send_vs_relocation(const DetectorConfig&);
std::unique_ptr<Detector> make_dio_unstable_pages(const DetectorConfig&);
std::unique_ptr<Detector> make_dio_buffered_fallback(const DetectorConfig&);
// invariants: rules that hold on any correct kernel
std::unique_ptr<Detector> make_dio_unexpected_errno(const DetectorConfig&, std::shared_ptr<Shared>);
std::unique_ptr<Detector> make_dio_acked_unbacked(const DetectorConfig&, std::shared_ptr<Shared>);
std::unique_ptr<Detector> make_dio_stuck(const DetectorConfig&, std::shared_ptr<Shared>);
std::unique_ptr<Detector> make_dio_csum_after_direct_write(const DetectorConfig&, std::shared_ptr<Shared>);

// The built-in detectors, in detector_ids() order, following `shared`.
std::vector<std::unique_ptr<Detector>> make_detectors(const DetectorConfig&, const std::shared_ptr<Shared>& shared);

}  // namespace bdt::det
