// send-vs-relocation (the 2019 send/relocation race, fixed by 9e967495e0e0):
// btrfs send and relocation (balance, device
// removal, shrinking resize, or block-group relocation events) on the same
// filesystem at the same time. Matched by fs only: send runs on a read-only
// snapshot (another subvolume, another st_dev) of the filesystem balance
// relocates.
//
// Triggers: none. ioctl and relocation records are not part of DIO requests
// (a few per run): the programs always make them.
//
// hazard overlap:  both in flight at once. Decided when the overlap resolves:
//                  either side returning -EAGAIN is the kernel's refusal
//                  (5.3-5.16 behaviour, reported at info as an observation);
//                  otherwise, once both ran together for kConfirmNs or one
//                  ended normally, a hazard whose severity follows the kernel
//                  table (<= 5.2 critical, 5.3-5.16 warning: should have been
//                  refused, >= 5.17 info: concurrent by design, unknown warning).
// symptom:         send returns an error other than -EAGAIN while it
//                  overlapped a relocation or within overlap_window_ns after
//                  the last overlap ended.
// ioctl begin/end are matched per thread (ioctls are synchronous). A
// reloc_begin without reloc_end (btrfs_reclaim_block_group is a single event)
// counts as in flight for overlap_window_ns.
#include <fmt/format.h>

#include "detectors/common.h"
#include "detectors/exposure.h"

namespace bdt::det {
namespace {

constexpr uint64_t kConfirmNs = 1'000'000'000ull;
// Caps: sends, balances and relocations in flight at once (a few on a real
// system; each begin looks at all of them), and overlaps waiting to be
// confirmed. Beyond either the oldest op / the new overlap is dropped (counted).
constexpr size_t kMaxOps = 256, kMaxPending = 4096;

struct Op {
  Event begin;
  bool send = false;
  uint64_t last_ts = 0;
  // send only:
  bool overlapped = false;
  uint64_t overlap_last_ts = 0;  // last time a relocation overlapping it was in flight
  bool hazard_done = false;
  std::vector<Event> partners;   // relocation events it overlapped (bounded)
};

struct Pending {
  uint64_t send_key, reloc_key;
  uint64_t since;
};

class SendVsRelocation final : public Detector {
 public:
  explicit SendVsRelocation(const DetectorConfig& c) : cfg_(c) {}
  std::string_view id() const override { return "send-vs-relocation"; }
  TriggerSet triggers() const override { return 0; }
  EventSet events() const override {
    return events_of({EventType::IoctlBegin, EventType::IoctlEnd, EventType::RelocBegin,
                      EventType::RelocEnd});
  }

  void on_event(const Event& e, Findings& out) override {
    switch (e.type) {
      case EventType::IoctlBegin: {
        auto* i = e.as<Ioctl>();
        if (i->cmd == IoctlCmd::Send) begin(e, true, tid_key(e.tid), out);
        else if (relocates(i->cmd)) begin(e, false, tid_key(e.tid), out);
        return;
      }
      case EventType::IoctlEnd: return end(e, tid_key(e.tid), e.as<Ioctl>()->ret, out);
      case EventType::RelocBegin: return begin(e, false, bg_key(e), out);
      case EventType::RelocEnd: return end(e, bg_key(e), e.as<Reloc>()->ret, out);
      default: return;
    }
  }

  void on_time(uint64_t now, Findings& out) override {
    // confirm overlaps that lasted
    for (size_t i = 0; i < pending_.size();) {
      if (now - pending_[i].since >= kConfirmNs) {
        auto p = pending_[i];
        pending_.erase(pending_.begin() + static_cast<long>(i));
        confirm(p, now, out);
      } else {
        ++i;
      }
    }
    // relocation events without an end expire after the window
    for (auto it = ops_.begin(); it != ops_.end();) {
      auto& o = it->second;
      bool open_reloc = !o.send && o.begin.type == EventType::RelocBegin &&
                        now - o.begin.ts_ns > cfg_.overlap_window_ns;
      bool aged = now - o.last_ts > cfg_.max_age_ns && now - o.begin.ts_ns > cfg_.max_age_ns;
      if (open_reloc || aged) {
        if (!o.send) note_reloc_gone(it->first, o, now);
        drop_pending(it->first);
        if (aged && !open_reloc) ++evicted_;
        it = ops_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // End of the trace: overlaps not yet confirmed (shorter than kConfirmNs so
  // far) are reported, marked as cut short by the end of the trace.
  void on_finish(uint64_t now, Findings& out) override {
    auto p = std::move(pending_);
    pending_.clear();
    for (auto& x : p) confirm(x, now, out, /*at_end=*/true);
    on_time(now, out);
  }

  StateSize state_size() const override {
    return {ops_.size() + pending_.size(), kMaxOps + kMaxPending, evicted_, capped_};
  }

 private:
  static uint64_t tid_key(uint32_t tid) { return uint64_t(tid); }
  static uint64_t bg_key(const Event& e) {
    uint64_t h = e.as<Reloc>()->block_group;
    for (auto b : e.fs.b) h = (h ^ b) * 0x100000001B3ull;
    return h | (1ull << 63);
  }

  void begin(const Event& e, bool send, uint64_t key, Findings& out) {
    if (ops_.size() >= kMaxOps) {
      size_t n = evict_oldest(ops_, kMaxOps, [](const Op& o) { return o.last_ts; });
      evicted_ += n, capped_ += n;
      pending_.erase(std::remove_if(pending_.begin(), pending_.end(),
                                    [&](const Pending& p) {
                                      return !ops_.count(p.send_key) || !ops_.count(p.reloc_key);
                                    }),
                     pending_.end());
    }
    (void)out;
    Op& o = ops_[key];
    o = Op{};
    o.begin = e;
    o.send = send;
    o.last_ts = e.ts_ns;
    for (auto& [k, other] : ops_) {
      if (k == key || other.send == send || !same_fs(other.begin.fs, e.fs)) continue;
      uint64_t sk = send ? key : k, rk = send ? k : key;
      Op& s = ops_[sk];
      Op& r = ops_[rk];
      s.overlapped = true;
      s.overlap_last_ts = e.ts_ns;
      if (s.partners.size() < 8) s.partners.push_back(r.begin);
      if (s.hazard_done) continue;
      if (pending_.size() < kMaxPending) pending_.push_back(Pending{sk, rk, e.ts_ns});
      else ++evicted_, ++capped_;
    }
  }

  void drop_pending(uint64_t key) {
    pending_.erase(std::remove_if(pending_.begin(), pending_.end(),
                                  [&](const Pending& p) {
                                    return p.send_key == key || p.reloc_key == key;
                                  }),
                   pending_.end());
  }

  // A relocation ended: every send that overlapped it remembers when.
  void note_reloc_gone(uint64_t rkey, const Op& r, uint64_t now) {
    for (auto& [k, s] : ops_)
      if (s.send && k != rkey && same_fs(s.begin.fs, r.begin.fs) && s.overlapped)
        s.overlap_last_ts = std::max(s.overlap_last_ts, now);
  }

  bool reloc_running(const Fsid& fs, uint64_t except) const {
    for (auto& [k, o] : ops_)
      if (!o.send && k != except && same_fs(o.begin.fs, fs)) return true;
    return false;
  }

  void end(const Event& e, uint64_t key, int64_t ret, Findings& out) {
    auto it = ops_.find(key);
    if (it == ops_.end()) return;
    Op o = std::move(it->second);
    ops_.erase(it);
    // pending overlaps involving this op resolve now
    std::vector<Pending> mine;
    for (size_t i = 0; i < pending_.size();) {
      if (pending_[i].send_key == key || pending_[i].reloc_key == key) {
        mine.push_back(pending_[i]);
        pending_.erase(pending_.begin() + static_cast<long>(i));
      } else {
        ++i;
      }
    }
    if (!o.send) {
      for (auto& p : mine) {
        auto s = ops_.find(p.send_key);
        if (s == ops_.end()) continue;
        if (ret == kEAGAIN) report_refused(s->second, o, e, /*by_send=*/false, out);
        else confirm_ops(s->second, o.begin, e.ts_ns, out);
      }
      note_reloc_gone(key, o, e.ts_ns);
      return;
    }
    // a send ended
    bool overlapping_now = reloc_running(e.fs, key);
    bool recent = o.overlapped && e.ts_ns - o.overlap_last_ts <= cfg_.overlap_window_ns;
    if (ret == kEAGAIN && (overlapping_now || o.overlapped)) {
      const Event* r = o.partners.empty() ? nullptr : &o.partners.front();
      Op rop;
      if (r) rop.begin = *r;
      report_refused(o, rop, e, /*by_send=*/true, out);
      return;
    }
    if (ret < 0 && ret != kEAGAIN && (overlapping_now || recent)) {
      report_symptom(o, e, ret, overlapping_now, out);
      return;
    }
    for (auto& p : mine) {
      auto r = ops_.find(p.reloc_key);
      if (r != ops_.end()) confirm_ops(o, r->second.begin, e.ts_ns, out);
      else if (!o.partners.empty()) confirm_ops(o, o.partners.front(), e.ts_ns, out);
    }
  }

  void confirm(const Pending& p, uint64_t now, Findings& out, bool at_end = false) {
    auto s = ops_.find(p.send_key);
    auto r = ops_.find(p.reloc_key);
    if (s == ops_.end() || r == ops_.end()) return;
    confirm_ops(s->second, r->second.begin, now, out, at_end);
  }

  void confirm_ops(Op& s, const Event& rbegin, uint64_t now, Findings& out, bool at_end = false) {
    if (s.hazard_done) return;
    s.hazard_done = true;
    auto regime = send_reloc_regime(cfg_.kernel);
    Severity sev = regime == SendRelocRegime::Bug          ? Severity::Critical
                   : regime == SendRelocRegime::Concurrent ? Severity::Info
                                                           : Severity::Warning;
    auto f = make_finding(id(), "overlap", Level::Hazard, sev, s.begin);
    f.ts_ns = std::max(now, std::max(s.begin.ts_ns, rbegin.ts_ns));
    f.dev.reset();
    f.ino.reset();
    add_actor(f, s.begin, "send");
    add_actor(f, rbegin, reloc_role(rbegin));
    f.message = fmt::format(
        "btrfs send by {} (pid {}) and {} by {} (pid {}) ran at the same time on filesystem {}",
        comm_of(s.begin), s.begin.pid, reloc_what(rbegin), comm_of(rbegin), rbegin.pid,
        s.begin.fs.str());
    switch (regime) {
      case SendRelocRegime::Bug:
        f.explanation =
            "On this kernel relocation can COW and reuse tree blocks send is reading: send may "
            "fail (parent transid verify failed, did not find backref), crash on a BUG_ON, or "
            "silently produce a wrong stream (the 2019 send/relocation race, fixed by 9e967495e0e0). "
            "Do not run send during balance; verify "
            "the received snapshot.";
        break;
      case SendRelocRegime::Refused:
        f.explanation =
            "Kernels 5.3 to 5.16 refuse to run send and relocation together (9e967495e0e0), yet "
            "both were seen running: the kernel may carry a backport of the 5.17 change, or the "
            "relocation did not take the path that is checked.";
        break;
      case SendRelocRegime::Concurrent:
        f.explanation =
            "Since 5.17 send and relocation may run concurrently by design; reported for "
            "information. A send failure during this overlap is reported as a symptom.";
        break;
      default:
        f.explanation =
            "The kernel version is unknown: on <= 5.2 this overlap can make send fail or emit a "
            "wrong stream; 5.3-5.16 refuse it with EAGAIN; >= 5.17 allow it by design.";
    }
    f.exposure = fmt::format("table: send/relocation on kernel {}: {} (9e967495e0e0, d96b34248c2f)",
                             cfg_.kernel.known() ? cfg_.kernel.release : std::string("unknown"),
                             to_string(regime));
    if (at_end) {
      f.trace_ended = true;
      f.explanation += " The trace ended while both were still running.";
    }
    std::vector<Event> evs{s.begin, rbegin};
    put_evidence(f, std::move(evs), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  static std::string_view reloc_role(const Event& r) {
    if (r.type == EventType::RelocBegin) return "relocation";
    auto* i = r.as<Ioctl>();
    return i ? to_string(i->cmd) : std::string_view("relocation");
  }
  static std::string reloc_what(const Event& r) {
    if (r.type == EventType::RelocBegin)
      return fmt::format("relocation of block group {}", r.as<Reloc>()->block_group);
    if (r.type == EventType::IoctlBegin)
      return fmt::format("a {} ioctl", to_string(r.as<Ioctl>()->cmd));
    return "relocation";
  }

  void report_refused(Op& s, const Op& r, const Event& end, bool by_send, Findings& out) {
    s.hazard_done = true;
    auto f = make_finding(id(), "refused", Level::Hazard, Severity::Info, end);
    f.dev.reset();
    f.ino.reset();
    add_actor(f, s.begin, "send");
    if (r.begin.pid || r.begin.tid) add_actor(f, r.begin, reloc_role(r.begin));
    f.message = fmt::format(
        "the kernel refused {} with EAGAIN because {} was running on filesystem {}",
        by_send ? fmt::format("btrfs send by {} (pid {})", comm_of(s.begin), s.begin.pid)
                : fmt::format("{} by {} (pid {})", reloc_what(r.begin), comm_of(r.begin), r.begin.pid),
        by_send ? std::string("a relocation") : std::string("a send"), end.fs.str());
    f.explanation =
        "Kernels 5.3 to 5.16 do not let send and relocation run together (9e967495e0e0): the "
        "second one fails with EAGAIN. Nothing is corrupted; retry the failed operation after "
        "the other has finished.";
    f.exposure = "observed: EAGAIN refusal, the behaviour of kernels 5.3-5.16 (9e967495e0e0)";
    std::vector<Event> evs{s.begin, end};
    if (r.begin.pid || r.begin.tid) evs.push_back(r.begin);
    put_evidence(f, std::move(evs), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  void report_symptom(const Op& s, const Event& end, int64_t ret, bool now, Findings& out) {
    auto f = make_finding(id(), "send-failed", Level::Symptom, Severity::Critical, end);
    f.dev.reset();
    f.ino.reset();
    add_actor(f, s.begin, "send");
    std::vector<Event> evs{s.begin, end};
    for (auto& p : s.partners) {
      add_actor(f, p, reloc_role(p));
      evs.push_back(p);
    }
    f.message = fmt::format(
        "btrfs send by {} (pid {}) failed with {} {} a relocation on filesystem {}",
        comm_of(s.begin), s.begin.pid, errno_name(ret), now ? "while running alongside" : "right after running alongside",
        end.fs.str());
    f.explanation =
        "Relocation COWs and reuses tree blocks that send reads from commit roots (the 2019 "
        "send/relocation race); "
        "check dmesg for 'parent transid verify failed' or 'did not find backref in send_root'. "
        "Re-run send when no balance is running, and do not trust a stream from an overlapping "
        "run.";
    f.exposure = fmt::format("table: send/relocation on kernel {}: {}; observed: send failed",
                             cfg_.kernel.known() ? cfg_.kernel.release : std::string("unknown"),
                             to_string(send_reloc_regime(cfg_.kernel)));
    put_evidence(f, std::move(evs), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  DetectorConfig cfg_;
  std::unordered_map<uint64_t, Op> ops_;
  std::vector<Pending> pending_;
  size_t evicted_ = 0, capped_ = 0;
};

}  // namespace

std::unique_ptr<Detector> make_send_vs_relocation(const DetectorConfig& c) {
  return std::make_unique<SendVsRelocation>(c);
}

}  // namespace bdt::det
