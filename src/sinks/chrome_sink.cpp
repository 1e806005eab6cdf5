// Chrome trace-event JSON timeline (docs/timeline.md).
//
// Tracks:
//  - each traced thread (pid/tid, named by process_name/thread_name metadata):
//    synchronous DIO requests as complete ("X") spans, followed ioctls as "X"
//    spans, and every point event (get_extent, em_add, em_exist, eb_*, ...)
//    as an instant whose args are the event's JSON object;
//  - asynchronous (io_uring/libaio) DIO requests as async spans ("b"/"e") of
//    the submitting process, matched to their completion in another context by
//    (fs, ino, completion position);
//  - per filesystem, a pseudo-process "btrfs <uuid>" holding ordered extents
//    (async spans, oe_add -> oe_remove, per inode) and send / balance /
//    relocation (async spans) - their completions run in worker threads.
//  - findings: instants on the thread the finding names.
#include "sinks/chrome.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/event_json.h"

namespace bdt {
namespace {

constexpr uint32_t kFsPidBase = 1'000'000'000;  // above any pid_max
constexpr uint32_t kOeTid = 1, kFsOpsTid = 2;

// Of the begin times of open spans (not empty; reordered): how many of the
// oldest to close, an eighth and at least one, and the time at or before
// which they began.
struct EvictCut {
  size_t count;
  uint64_t ts_ns;
};
EvictCut oldest_eighth(std::vector<uint64_t>& ts) {
  size_t k = std::max<size_t>(1, ts.size() / 8);
  std::nth_element(ts.begin(), ts.begin() + static_cast<long>(k - 1), ts.end());
  return {k, ts[k - 1]};
}

// Caps on what the sink keeps (docs/hardening.md): open spans of each kind
// (beyond one, the oldest eighth are closed as unfinished, marked
// "evicted"), filesystems with a track of their own (the others share one),
// and the processes and threads whose names were written (beyond, the set
// starts again: a name may be written twice). The spans closed early are
// counted and said in a last global instant.
constexpr size_t kMaxOpenSpans = 4096, kMaxOpenOps = 1024, kMaxFsTracks = 1024,
                 kMaxNamed = 65536;
constexpr uint64_t kNoTs = ~0ull;

struct OpenSpan {
  Event begin;
};

class ChromeSink final : public Sink {
 public:
  ChromeSink(std::FILE* out, const TraceHeader& h) : out_(out), off_(h.mono_to_realtime_ns) {
    buf_.reserve(1 << 17);
    buf_ += "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"tool\":\"btrfs-dio-trace\",\"kernel\":";
    append_json_string(buf_, h.kernel.known() ? h.kernel.release : "");
    fmt::format_to(std::back_inserter(buf_), ",\"clock\":\"{}\",\"mono_to_realtime_ns\":{}}},",
                   off_ ? "realtime" : "monotonic", off_);
    buf_ += "\"traceEvents\":[";
  }
  ~ChromeSink() override {
    try {
      close();
    } catch (...) {
    }
  }

  void event(const Event& ev) override {
    if (closed_) return;
    last_ts_ = std::max(last_ts_, ev.ts_ns);
    thread_meta(ev.pid, ev.tid, ev.comm_view(), ev.vm);
    switch (ev.type) {
      case EventType::DioBegin: dio_begin(ev); break;
      case EventType::DioEnd: dio_end(ev); break;
      case EventType::OeAdd: oe_add(ev); break;
      case EventType::OeRemove: oe_remove(ev); break;
      case EventType::OeSplit:
      case EventType::OeStart:
      case EventType::OeMarkFinished:
      case EventType::OeFinish: oe_point(ev); break;
      case EventType::IoctlBegin: ioctl_begin(ev); break;
      case EventType::IoctlEnd: ioctl_end(ev); break;
      case EventType::RelocBegin: reloc_begin(ev); break;
      case EventType::RelocEnd: reloc_end(ev); break;
      default: instant(ev, ev.pid, ev.tid, to_string(ev.type)); break;
    }
    maybe_write();
  }

  void finding(const Finding& f) override {
    if (closed_) return;
    last_ts_ = std::max(last_ts_, f.ts_ns);
    thread_meta(f.pid, f.tid, f.comm, f.vm);
    open_event(fmt::format("finding: {}/{}", f.detector, f.kind), "finding", "i", f.ts_ns, f.pid,
               f.tid);
    buf_ += ",\"s\":\"t\",\"args\":{\"detector\":";
    append_json_string(buf_, f.detector);
    buf_ += ",\"kind\":";
    append_json_string(buf_, f.kind);
    fmt::format_to(std::back_inserter(buf_), ",\"level\":\"{}\",\"severity\":\"{}\",\"message\":",
                   to_string(f.level), to_string(f.severity));
    append_json_string(buf_, f.message);
    if (!f.explanation.empty()) {
      buf_ += ",\"explanation\":";
      append_json_string(buf_, f.explanation);
    }
    if (!f.fs.empty()) fmt::format_to(std::back_inserter(buf_), ",\"fs\":\"{}\"", f.fs.str());
    if (f.dev) fmt::format_to(std::back_inserter(buf_), ",\"dev\":{}", *f.dev);
    if (f.ino) fmt::format_to(std::back_inserter(buf_), ",\"ino\":{}", *f.ino);
    if (f.range)
      fmt::format_to(std::back_inserter(buf_), ",\"range\":[{},{}]", f.range->first, f.range->second);
    buf_ += "}}";
    maybe_write();
  }

  void lost(uint32_t cpu, uint64_t count) override {
    if (closed_) return;
    thread_meta(0, 0, "", "");
    open_event(fmt::format("lost {} records (cpu {})", count, cpu), "lost", "i", last_ts_, 0, 0);
    fmt::format_to(std::back_inserter(buf_), ",\"s\":\"g\",\"args\":{{\"cpu\":{},\"count\":{}}}}}",
                   cpu, count);
    maybe_write();
  }

  void summary(const Summary& s) override {
    if (closed_) return;
    // The detectors' caps (Pipeline notes) are said in the timeline too.
    for (const auto& [k, v] : s.notes)
      if (k.starts_with("state cap reached")) {
        thread_meta(0, 0, "", "");
        open_event(k + ": " + v, "state", "i", last_ts_, 0, 0);
        buf_ += ",\"s\":\"g\"}";
      }
    close();
  }
  void flush() override {
    write_out();
    flush_output(out_);
  }

 private:
  // ---- encoding helpers ------------------------------------------------------
  void ts(uint64_t ns) {
    if (ns == kNoTs) {  // metadata: viewers ignore the time
      buf_ += '0';
      return;
    }
    int64_t t = wall_ns(ns, off_);
    if (t < 0) t = 0;
    fmt::format_to(std::back_inserter(buf_), "{}.{:03}", t / 1000, t % 1000);
  }
  // Writes `{"name":..,"cat":..,"ph":..,"ts":..,"pid":..,"tid":..` (object left open).
  void open_event(std::string_view name, std::string_view cat, std::string_view ph, uint64_t t,
                  uint32_t pid, uint32_t tid) {
    buf_ += first_ ? "\n" : ",\n";
    first_ = false;
    buf_ += "{\"name\":";
    append_json_string(buf_, name);
    fmt::format_to(std::back_inserter(buf_), ",\"cat\":\"{}\",\"ph\":\"{}\",\"ts\":", cat, ph);
    ts(t);
    fmt::format_to(std::back_inserter(buf_), ",\"pid\":{},\"tid\":{}", pid, tid);
  }
  void dur(uint64_t from, uint64_t to) {
    uint64_t d = to > from ? to - from : 0;
    fmt::format_to(std::back_inserter(buf_), ",\"dur\":{}.{:03}", d / 1000, d % 1000);
  }
  void meta(std::string_view what, uint32_t pid, uint32_t tid, std::string_view name) {
    open_event(what, "__metadata", "M", kNoTs, pid, tid);
    buf_ += ",\"args\":{\"name\":";
    append_json_string(buf_, name);
    buf_ += "}}";
  }
  void thread_meta(uint32_t pid, uint32_t tid, std::string_view comm, std::string_view vm) {
    if (seen_pids_.size() >= kMaxNamed) seen_pids_.clear();
    if (seen_threads_.size() >= kMaxNamed) seen_threads_.clear();
    if (seen_pids_.insert(pid).second) {
      std::string n = pid == 0 ? std::string("kernel (pid 0)") : std::string(comm);
      if (!vm.empty()) n += fmt::format(" (vm {})", vm);
      meta("process_name", pid, tid, n);
    }
    if (seen_threads_.insert((uint64_t(pid) << 32) | tid).second)
      meta("thread_name", pid, tid, comm.empty() ? fmt::format("tid {}", tid) : std::string(comm));
  }
  uint32_t fs_pid(const Fsid& fs) {
    if (fs_pids_.size() >= kMaxFsTracks && !fs_pids_.count(fs)) {
      if (!more_fs_) {
        more_fs_ = true;
        meta("process_name", kFsPidBase + kMaxFsTracks, kOeTid, "btrfs (more filesystems)");
      }
      return kFsPidBase + kMaxFsTracks;
    }
    auto [it, added] = fs_pids_.try_emplace(fs, kFsPidBase + static_cast<uint32_t>(fs_pids_.size()));
    if (added) {
      meta("process_name", it->second, kOeTid,
           fs.empty() ? std::string("btrfs (unknown filesystem)") : "btrfs " + fs.str());
      meta("thread_name", it->second, kOeTid, "ordered extents");
      meta("thread_name", it->second, kFsOpsTid, "send / balance / relocation");
    }
    return it->second;
  }
  void event_json(const Event& e) {
    scratch_.clear();
    append_event_json(scratch_, e);
    buf_ += scratch_;
  }
  void instant(const Event& e, uint32_t pid, uint32_t tid, std::string_view name) {
    open_event(name, "event", "i", e.ts_ns, pid, tid);
    buf_ += ",\"s\":\"t\",\"args\":";
    event_json(e);
    buf_ += "}";
  }
  // A span from b to the end event (nullptr: unfinished at `end_ts`).
  void complete(const Event& b, const Event* e, uint64_t end_ts, std::string_view name,
                std::string_view cat, uint32_t pid, uint32_t tid) {
    open_event(name, cat, "X", b.ts_ns, pid, tid);
    dur(b.ts_ns, end_ts);
    span_args(b, e);
    buf_ += "}";
  }
  void async(const Event& b, const Event* e, uint64_t end_ts, std::string_view name,
             std::string_view cat, uint32_t pid, uint32_t tid) {
    uint64_t id = ++next_id_;
    open_event(name, cat, "b", b.ts_ns, pid, tid);
    fmt::format_to(std::back_inserter(buf_), ",\"id\":\"0x{:x}\"", id);
    span_args(b, e);
    buf_ += "}";
    open_event(name, cat, "e", std::max(end_ts, b.ts_ns), pid, tid);
    fmt::format_to(std::back_inserter(buf_), ",\"id\":\"0x{:x}\"}}", id);
  }
  void span_args(const Event& b, const Event* e) {
    buf_ += ",\"args\":{\"begin\":";
    event_json(b);
    if (e) {
      buf_ += ",\"end\":";
      event_json(*e);
    } else {
      buf_ += ",\"unfinished\":true";
      if (evicting_) buf_ += ",\"evicted\":true";
    }
    buf_ += "}";
  }

  // ---- DIO requests ----------------------------------------------------------
  static std::string dio_name(const Event& b) {
    const auto* d = b.as<DioBegin>();
    return fmt::format("{}dio {}{}", d && d->aio ? "a" : "", d && d->write ? "write" : "read",
                       d && d->done_before ? " (continued)" : "");
  }
  void close_dio(const Event& b, const Event* e, uint64_t end_ts) {
    const auto* d = b.as<DioBegin>();
    if (d && d->aio)
      async(b, e, end_ts, dio_name(b), "dio", b.pid, b.tid);
    else
      complete(b, e, end_ts, dio_name(b), "dio", b.pid, b.tid);
  }
  static bool pos_ok(const Event& b, const Event& e) {
    const auto* d = b.as<DioBegin>();
    const auto* x = e.as<DioEnd>();
    if (!d || !x) return false;
    if (x->ret <= 0) return x->pos == d->pos;
    // ki_pos advanced by ret - done_before (ret counts the earlier calls' bytes).
    uint64_t r = static_cast<uint64_t>(x->ret);
    return x->pos == d->pos + r - std::min<uint64_t>(d->done_before, r);
  }
  void dio_begin(const Event& ev) {
    const auto* d = ev.as<DioBegin>();
    if (!d) return;
    if (d->aio) {
      if (aio_count_ >= kMaxOpenSpans) evict_aio();
      aio_[{ev.fs, ev.ino}].push_back(ev);
      ++aio_count_;
      return;
    }
    if (sync_.size() >= kMaxOpenSpans && !sync_.count(ev.tid))
      evict_oldest(sync_, [&](const Event& b) { close_dio(b, nullptr, last_ts_); });
    auto [it, added] = sync_.try_emplace(ev.tid, ev);
    if (!added) {  // its end was never seen: close it where the next call starts
      close_dio(it->second, nullptr, ev.ts_ns);
      it->second = ev;
    }
  }
  void dio_end(const Event& ev) {
    // 1) this thread's request; 2) an async request of the file completing at
    // this position (in a worker or interrupt context).
    // (A source that cannot name the file at the end gives ino 0.)
    if (auto it = sync_.find(ev.tid);
        it != sync_.end() && (ev.ino == 0 || (it->second.ino == ev.ino && it->second.fs == ev.fs))) {
      close_dio(it->second, &ev, ev.ts_ns);
      sync_.erase(it);
      return;
    }
    if (auto it = aio_.find({ev.fs, ev.ino}); it != aio_.end()) {
      auto& v = it->second;
      auto m = std::find_if(v.begin(), v.end(), [&](const Event& b) {
        return (b.dev == ev.dev || !b.dev || !ev.dev) && pos_ok(b, ev);
      });
      if (m == v.end())  // same thread, position unknown
        m = std::find_if(v.begin(), v.end(), [&](const Event& b) { return b.tid == ev.tid; });
      if (m != v.end()) {
        close_dio(*m, &ev, ev.ts_ns);
        v.erase(m);
        --aio_count_;
        if (v.empty()) aio_.erase(it);
        return;
      }
    }
    instant(ev, ev.pid, ev.tid, "dio_end (no matching dio_begin)");
  }
  // Closes the oldest eighth of the in-flight async requests as unfinished.
  void evict_aio() {
    std::vector<uint64_t> ts;
    ts.reserve(aio_count_);
    for (auto& [k, v] : aio_)
      for (auto& b : v) ts.push_back(b.ts_ns);
    if (ts.empty()) return;
    auto [k, cut] = oldest_eighth(ts);
    evicting_ = true;
    for (auto it = aio_.begin(); it != aio_.end() && k;) {
      auto& v = it->second;
      for (auto b = v.begin(); b != v.end() && k;)
        if (b->ts_ns <= cut) {
          close_dio(*b, nullptr, last_ts_);
          b = v.erase(b);
          --aio_count_, --k, ++evicted_;
        } else {
          ++b;
        }
      it = v.empty() ? aio_.erase(it) : std::next(it);
    }
    evicting_ = false;
  }
  // Closes the oldest eighth of a map of open spans (tid -> begin) with close(begin).
  template <class Map, class Close>
  void evict_oldest(Map& m, Close close) {
    std::vector<uint64_t> ts;
    ts.reserve(m.size());
    for (auto& [k, v] : m) ts.push_back(begin_of(v).ts_ns);
    if (ts.empty()) return;
    auto [k, cut] = oldest_eighth(ts);
    evicting_ = true;
    for (auto it = m.begin(); it != m.end() && k;)
      if (begin_of(it->second).ts_ns <= cut) {
        close(it->second);
        it = m.erase(it);
        --k, ++evicted_;
      } else {
        ++it;
      }
    evicting_ = false;
  }
  static const Event& begin_of(const Event& e) { return e; }

  // ---- ordered extents -------------------------------------------------------
  struct Oe {
    Event add;
    uint64_t start = 0, len = 0;  // current range (splits shrink it)
    uint64_t finish_ts = 0;
  };
  using OeKey = std::pair<Fsid, uint64_t>;  // (fs, ino)
  static std::string oe_name(const Event& e) { return fmt::format("ordered extent ino {}", e.ino); }
  void oe_add(const Event& ev) {
    const auto* o = ev.as<Ordered>();
    if (!o) return;
    fs_pid(ev.fs);
    if (oe_count_ >= kMaxOpenSpans) evict_oes();
    auto& m = oes_[{ev.fs, ev.ino}];
    if (auto it = m.find(o->file_offset); it != m.end()) {
      close_oe(it->second, nullptr, ev.ts_ns);
      m.erase(it);
      --oe_count_;
    }
    m.emplace(o->file_offset, Oe{ev, o->file_offset, o->len, 0});
    ++oe_count_;
  }
  // Closes the oldest eighth of the open ordered extents as unfinished.
  void evict_oes() {
    std::vector<uint64_t> ts;
    ts.reserve(oe_count_);
    for (auto& [key, m] : oes_)
      for (auto& [s, oe] : m) ts.push_back(oe.add.ts_ns);
    if (ts.empty()) return;
    auto [k, cut] = oldest_eighth(ts);
    evicting_ = true;
    for (auto mi = oes_.begin(); mi != oes_.end() && k;) {
      auto& m = mi->second;
      for (auto it = m.begin(); it != m.end() && k;)
        if (it->second.add.ts_ns <= cut) {
          close_oe(it->second, nullptr, last_ts_);
          it = m.erase(it);
          --oe_count_, --k, ++evicted_;
        } else {
          ++it;
        }
      mi = m.empty() ? oes_.erase(mi) : std::next(mi);
    }
    evicting_ = false;
  }
  void close_oe(const Oe& oe, const Event* end, uint64_t end_ts) {
    async(oe.add, end, end_ts, oe_name(oe.add), "ordered", fs_pid(oe.add.fs), kOeTid);
  }
  // The open ordered extent that contains [start, start+len) (or starts there).
  std::map<uint64_t, Oe>::iterator find_oe(std::map<uint64_t, Oe>& m, uint64_t start) {
    auto it = m.upper_bound(start);
    if (it == m.begin()) return m.end();
    --it;
    if (start >= it->second.start + std::max<uint64_t>(it->second.len, 1)) return m.end();
    return it;
  }
  void oe_point(const Event& ev) {
    const auto* o = ev.as<Ordered>();
    uint32_t pid = fs_pid(ev.fs);
    instant(ev, pid, kOeTid, to_string(ev.type));
    if (!o || ev.type != EventType::OeFinish) return;
    ++finishes_;
    auto mi = oes_.find({ev.fs, ev.ino});
    if (mi == oes_.end()) return;
    if (auto it = find_oe(mi->second, o->file_offset); it != mi->second.end())
      it->second.finish_ts = ev.ts_ns;
  }
  void oe_remove(const Event& ev) {
    const auto* o = ev.as<Ordered>();
    uint32_t pid = fs_pid(ev.fs);
    ++removes_;
    auto mi = oes_.find({ev.fs, ev.ino});
    auto it = mi == oes_.end() || !o ? std::map<uint64_t, Oe>::iterator{} : find_oe(mi->second, o->file_offset);
    if (mi == oes_.end() || !o || it == mi->second.end()) {
      instant(ev, pid, kOeTid, "oe_remove (no matching oe_add)");
      return;
    }
    auto& m = mi->second;
    Oe oe = it->second;
    m.erase(it);
    --oe_count_;
    close_oe(oe, &ev, ev.ts_ns);
    // A piece of a split ordered extent: the rest stays open.
    uint64_t rs = o->file_offset, re = o->file_offset + o->len, oe_end = oe.start + oe.len;
    if (rs > oe.start) m.emplace(oe.start, Oe{oe.add, oe.start, rs - oe.start, oe.finish_ts}), ++oe_count_;
    if (re < oe_end) m.emplace(re, Oe{oe.add, re, oe_end - re, oe.finish_ts}), ++oe_count_;
    if (m.empty()) oes_.erase(mi);
  }

  // ---- send / balance / relocation -------------------------------------------
  void ioctl_begin(const Event& ev) {
    fs_pid(ev.fs);
    if (ioctls_.size() >= kMaxOpenOps && !ioctls_.count(ev.tid))
      evict_oldest(ioctls_, [&](const Event& b) { close_ioctl(b, nullptr, last_ts_); });
    auto [it, added] = ioctls_.try_emplace(ev.tid, ev);
    if (!added) {
      close_ioctl(it->second, nullptr, ev.ts_ns);
      it->second = ev;
    }
  }
  void close_ioctl(const Event& b, const Event* e, uint64_t end_ts) {
    const auto* i = b.as<Ioctl>();
    std::string cmd(i ? to_string(i->cmd) : "ioctl");
    async(b, e, end_ts, cmd, "fs-op", fs_pid(b.fs), kFsOpsTid);
    complete(b, e, end_ts, "ioctl " + cmd, "ioctl", b.pid, b.tid);
  }
  void ioctl_end(const Event& ev) {
    auto it = ioctls_.find(ev.tid);
    if (it == ioctls_.end()) {
      instant(ev, ev.pid, ev.tid, "ioctl_end (no matching ioctl_begin)");
      return;
    }
    close_ioctl(it->second, &ev, ev.ts_ns);
    ioctls_.erase(it);
  }
  void reloc_begin(const Event& ev) {
    fs_pid(ev.fs);
    if (relocs_.size() >= kMaxOpenOps && !relocs_.count(ev.tid))
      evict_oldest(relocs_, [&](const Event& b) { close_reloc(b, nullptr, last_ts_); });
    auto [it, added] = relocs_.try_emplace(ev.tid, ev);
    if (!added) {
      close_reloc(it->second, nullptr, ev.ts_ns);
      it->second = ev;
    }
  }
  void close_reloc(const Event& b, const Event* e, uint64_t end_ts) {
    async(b, e, end_ts, "relocate block group", "fs-op", fs_pid(b.fs), kFsOpsTid);
  }
  void reloc_end(const Event& ev) {
    auto it = relocs_.find(ev.tid);
    if (it == relocs_.end()) {
      instant(ev, fs_pid(ev.fs), kFsOpsTid, "reloc_end (no matching reloc_begin)");
      return;
    }
    close_reloc(it->second, &ev, ev.ts_ns);
    relocs_.erase(it);
  }

  // ---- output ----------------------------------------------------------------
  void maybe_write() {
    if (buf_.size() >= (1 << 16)) write_out();
  }
  void write_out() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), out_) != buf_.size())
      flush_output(out_);  // throws: the stream's error
    buf_.clear();
  }
  void close() {
    if (closed_) return;
    // Spans still open at the end of the trace.
    for (auto& [tid, b] : sync_) close_dio(b, nullptr, last_ts_);
    for (auto& [k, v] : aio_)
      for (auto& b : v) close_dio(b, nullptr, last_ts_);
    for (auto& [k, m] : oes_)
      for (auto& [s, oe] : m)
        // Without oe_remove events (hook not attached), finish ends the span.
        close_oe(oe, nullptr, removes_ == 0 && oe.finish_ts ? oe.finish_ts : last_ts_);
    for (auto& [tid, b] : ioctls_) close_ioctl(b, nullptr, last_ts_);
    for (auto& [tid, b] : relocs_) close_reloc(b, nullptr, last_ts_);
    sync_.clear(), aio_.clear(), oes_.clear(), ioctls_.clear(), relocs_.clear();
    if (evicted_) {
      thread_meta(0, 0, "", "");
      open_event(fmt::format("state cap reached: {} spans closed before their end (timeline caps)",
                             evicted_),
                 "state", "i", last_ts_, 0, 0);
      fmt::format_to(std::back_inserter(buf_), ",\"s\":\"g\",\"args\":{{\"spans_evicted\":{}}}}}",
                     evicted_);
    }
    buf_ += "\n]}\n";
    closed_ = true;
    write_out();
    flush_output(out_);
  }

  std::FILE* out_;
  int64_t off_;
  std::string buf_, scratch_;
  bool first_ = true, closed_ = false;
  uint64_t last_ts_ = 0, next_id_ = 0, finishes_ = 0, removes_ = 0;
  std::unordered_set<uint32_t> seen_pids_;
  std::unordered_set<uint64_t> seen_threads_;
  std::map<Fsid, uint32_t> fs_pids_;
  std::unordered_map<uint32_t, Event> sync_, ioctls_, relocs_;
  std::map<OeKey, std::vector<Event>> aio_;
  size_t aio_count_ = 0;
  std::map<OeKey, std::map<uint64_t, Oe>> oes_;
  size_t oe_count_ = 0;
  uint64_t evicted_ = 0;   // spans closed early for a cap
  bool evicting_ = false;  // closing spans for a cap (marked "evicted")
  bool more_fs_ = false;   // the shared track of the filesystems beyond kMaxFsTracks
};

}  // namespace

std::unique_ptr<Sink> make_chrome_sink(std::FILE* out, const TraceHeader& h) {
  return std::make_unique<ChromeSink>(out, h);
}

uint64_t read_finding_lines(const std::string& path, const std::function<void(const Finding&)>& fn) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open", path));
  std::string line;
  uint64_t lineno = 0, n = 0;
  while (std::getline(in, line)) {
    ++lineno;
    // Cheap filter before parsing: only finding lines are wanted.
    if (line.find("\"finding\"") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;  // the trace reader reports bad lines
    auto t = j.find("type");
    if (t == j.end() || !t->is_string() || *t != "finding") continue;
    try {
      Finding f;
      f.ts_ns = j.at("ts_ns").get<uint64_t>();
      f.detector = j.at("detector").get<std::string>();
      f.kind = j.value("kind", "");
      f.level = j.value("level", "hazard") == "symptom" ? Level::Symptom : Level::Hazard;
      auto sev = j.value("severity", "info");
      f.severity = sev == "critical" ? Severity::Critical
                   : sev == "warning" ? Severity::Warning
                                      : Severity::Info;
      f.pid = j.value("pid", 0u);
      f.tid = j.value("tid", 0u);
      f.comm = j.value("comm", "");
      if (auto fs = Fsid::parse(j.value("fs", ""))) f.fs = *fs;
      if (j.contains("dev")) f.dev = j["dev"].get<uint64_t>();
      if (j.contains("ino")) f.ino = j["ino"].get<uint64_t>();
      if (auto r = j.find("range"); r != j.end() && r->is_array() && r->size() == 2)
        f.range = {{(*r)[0].get<uint64_t>(), (*r)[1].get<uint64_t>()}};
      f.message = j.value("message", "");
      f.explanation = j.value("explanation", "");
      f.vm = j.value("vm", "");
      f.image = j.value("image", "");
      fn(f);
      ++n;
    } catch (const nlohmann::json::exception& e) {
      throw InputError(fmt::format("{}:{}: bad finding line: {}", path, lineno, e.what()));
    }
  }
  return n;
}

}  // namespace bdt
