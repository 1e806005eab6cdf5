// DIO write calls and their ordered extents, followed the same way for every
// detector that judges what a write acknowledged against what btrfs recorded
// (dio-short-write, dio-acked-unbacked). Internal to src/detectors.
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
// A call is judged once it ended and none of its ordered extents is open (or
// settle_ns after it ended): hole = acknowledged bytes ∩ failed − completed
// cleanly. At the end of the trace the calls that returned are judged on what
// was seen (an extent reported failed but not yet removed counts as failed).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "detectors/common.h"

namespace bdt::det {

// A call's plain fields: a fresh call starts from WriteCallState{} (reset()
// assigns only these, so making a call costs no containers).
struct WriteCallState {
  bool live = false;
  uint64_t id = 0;  // generation << 32 | slot
  Fsid fs;
  uint64_t dev = 0, ino = 0;
  uint32_t pid = 0, tid = 0;
  uint64_t start = 0, end = 0;  // requested [start, end)
  uint64_t acked_end = 0;       // acknowledged [start, acked_end)
  uint64_t first_ts = 0, last_ts = 0, begin_ts = 0, end_ts = 0;
  bool aio = false;
  bool in_flight = false;  // between a dio_begin and its dio_end
  bool ended = false;      // no continuation will follow
  uint32_t parts = 0;
  bool short_seen = false;  // a part returned short or was continued (a partial write)
  bool split_seen = false;
  bool self_mmap = false;
  uint64_t buf_lo = 0, buf_hi = 0, buf_ino = 0, buf_addr = 0;
  bool stall_reported = false, cont_reported = false, mmap_reported = false;
  uint32_t released = 0;  // bit i: the i-th WriteCallHooks let the call go (aged out for it)
  uint64_t cur_pos = 0, cur_done_before = 0;
};

struct WriteCall : WriteCallState {
  std::string comm;
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
  Event first;  // the call's first dio_begin (set by whoever makes the call)

  // Back to a fresh call, keeping the capacity of every container.
  void reset(size_t max_evidence) {
    static_cast<WriteCallState&>(*this) = WriteCallState{};
    comm.clear();
    oes.clear();
    bad.clear();
    good.clear();
    pending_bad.clear();
    ev.reset(max_evidence);
  }
};

// What a detector does with the calls (every detector that judges them adds
// its hooks to the one WriteCalls, which runs them in the order added).
class WriteCallHooks {
 public:
  virtual ~WriteCallHooks() = default;
  // After a dio_begin (first or continuation) was applied to c.
  virtual void begun(WriteCall&, const Event& /*begin*/, Findings&) {}
  // The call's acknowledged bytes that no ordered extent completed cleanly
  // while one covering them failed. trace_ended: judged at the end of the
  // trace, on failures whose ordered extent's removal was not seen.
  virtual void judged(WriteCall&, const IntervalSet& /*hole*/, bool /*trace_ended*/, Findings&) {}
  // Each live call on every tick.
  virtual void tick(WriteCall&, uint64_t /*now*/, Findings&) {}
  // Keep the call past max_age (e.g. a stall is being watched).
  virtual bool hold(const WriteCall&) const { return false; }
};

// The calls, followed once for every detector that judges them
// (dio-short-write, dio-acked-unbacked): fed by the engine before the
// detectors (detectors/shared.h); what a hook reports waits until its
// detector takes it (take(), from its own on_event / on_time / on_finish), so
// findings come out in detector order as if each followed its own calls. A
// call one hook holds past max_age (hold()) stays for that one only.
class WriteCalls {
 public:
  explicit WriteCalls(const DetectorConfig& c) : cfg_(c) {}
  // Adds a detector's hooks; returns its index for take().
  size_t add(WriteCallHooks& h) {
    subs_.push_back(Sub{&h, {}});
    return subs_.size() - 1;
  }
  // Moves what hooks i reported since the last take() to out. (Their
  // detectors take after every event: the usual nothing costs one compare.)
  void take(size_t i, Findings& out) {
    if (!subs_[i].pending.empty()) [[unlikely]] move_pending(i, out);
  }
  void on_event(const Event& e);
  void on_time(uint64_t now);
  void on_finish(uint64_t now);
  StateSize state_size() const { return {live_, cap(), evicted_, capped_}; }
  // Caps: calls followed at once (each keeps up to max_evidence events),
  // calls per file (a dio_end or an ordered extent looks at its file's calls),
  // open ordered extents per call. Beyond the first two the oldest call is
  // judged on what was seen and dropped; beyond the last the extent is not
  // followed. All counted (capped).
  size_t cap() const { return std::max<size_t>(16, cfg_.max_requests / 4); }
  static constexpr size_t kPerFile = 256, kOesPerCall = 64;

 private:
  struct Sub {
    WriteCallHooks* h;
    Findings pending;
  };
  // f(hooks, their pending findings) for each hooks that still follow c
  template <class F>
  void each(WriteCall& c, F f) {
    for (size_t i = 0; i < subs_.size(); ++i)
      if (!(c.released >> i & 1)) f(*subs_[i].h, subs_[i].pending);
  }
  // A call in its file's list: what an ordered extent is matched on (the
  // call's device and the range it asked for since its first dio_begin),
  // copied from the call, so the match reads no call. `end` follows the call's
  // (a continuation may extend it).
  struct FileCall {
    uint64_t id, dev, start, end, first_ts;
  };
  void move_pending(size_t i, Findings& out);
  WriteCall* get(uint64_t id);
  WriteCall& alloc();
  WriteCall* active(uint32_t tid);
  void erase(uint64_t id);
  void sweep_indexes();
  void make_room();
  void drop(uint64_t id);
  void on_begin(const Event& e);
  void on_end(const Event& e);
  void on_oe(const Event& e);
  static WriteCall::OeRec* pick(WriteCall& c, uint64_t s, uint64_t t);
  void try_evaluate(WriteCall& c);
  void flush_erase();
  void evaluate(WriteCall& c, bool at_end = false);

  DetectorConfig cfg_;
  std::vector<Sub> subs_;
  std::vector<WriteCall> slab_;
  std::vector<uint32_t> free_;
  size_t live_ = 0;
  uint64_t gen_ = 0;
  std::vector<uint64_t> done_;
  std::vector<std::pair<uint64_t, uint64_t>> ts_;
  TidMap<uint64_t> by_tid_;
  FileLists<FileCall> by_ino_;  // live calls per file, oldest first
  std::vector<uint64_t> pending_erase_;
  size_t evicted_ = 0, capped_ = 0;
};

}  // namespace bdt::det
