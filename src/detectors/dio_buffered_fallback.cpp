// dio-buffered-fallback (informational): a process uses O_DIRECT on a
// file but its writes to that file go through the page cache.
//
// Since 968f19c5b1b7 btrfs_direct_write() sends O_DIRECT writes to files with
// data checksums down the buffered path before iomap_dio_rw is reached, so no
// dio_begin is emitted for them. What the events do show:
//   - dio_begin reads (write=false) by process P on inode I: P opened I with
//     O_DIRECT; nodatasum on those events tells whether I has checksums;
//   - oe_add without the DIRECT flag on I in P's own context (pid == P): P is
//     writing back page-cache data of I itself, i.e. fsync/fdatasync/O_DSYNC
//     flushing its own buffered writes (ordered extents created by the flusher
//     kworker cannot be attributed to a process and are not used);
//   - P never had a dio_begin write on I (if it had, its writes go direct).
// Reported once per (inode, process). Reason: "data checksums" when the DIO
// reads said nodatasum=false (and the kernel is not known to predate
// 968f19c5b1b7); otherwise "unknown".
//
// Triggers: a non-DIRECT ordered extent created in a user process (oe_buffered):
// it emits the DIO requests on the inode in flight or ended in the last
// second, and the inode's later records (the reads).
//
// What would make it exact: an event at btrfs_direct_write() entry (fentry or
// kprobe; or sys_enter_pwrite64 plus the fd's O_DIRECT flag) followed, on the
// same thread, by no iomap_dio_rw_begin before the write returns. That would
// name the process and the range of every fallen-back write, including
// processes that never read with O_DIRECT.
#include <fmt/format.h>

#include "detectors/common.h"
#include "bdt/exposure.h"

namespace bdt::det {
namespace {

struct Key {
  InoKey k;
  uint32_t pid;
  bool operator==(const Key&) const = default;
};
struct KeyHash {
  size_t operator()(const Key& x) const { return InoKeyHash{}(x.k) ^ (size_t(x.pid) * 0x9E37u); }
};

struct User {
  uint64_t dev = 0;
  bool read_seen = false;
  Event read;              // a DIO read by this process
  bool oe_seen = false;
  Event oe;                // a buffered ordered extent created in its context
  bool dio_write = false;  // it also did a true DIO write on the inode
  bool nodatasum = false;
  bool reported = false;
  uint64_t last_ts = 0;
};

class DioBufferedFallback final : public Detector {
 public:
  explicit DioBufferedFallback(const DetectorConfig& c) : cfg_(c) {}
  std::string_view id() const override { return "dio-buffered-fallback"; }
  TriggerSet triggers() const override { return triggers_of({Trigger::OeBuffered}); }

  // Both orders count: on 6.18 the fallen-back write runs its writeback
  // synchronously (oe_add in the writer's task), often before the first read.
  void on_event(const Event& e, Findings& out) override {
    if (e.type == EventType::DioBegin) {
      auto* d = e.as<DioBegin>();
      auto it = users_.find(Key{ino_key(e), e.pid});
      if (it == users_.end()) {
        if (d->write) return;  // a true DIO writer: nothing to report
        it = insert(e);
      }
      auto& u = it->second;
      u.last_ts = e.ts_ns;
      if (d->write) {
        u.dio_write = true;
      } else {
        u.read_seen = true;
        u.nodatasum = d->nodatasum;
        u.read = e;
      }
      maybe_report(u, out);
      return;
    }
    if (e.type != EventType::OeAdd) return;
    auto* o = e.as<Ordered>();
    if (!o->flags || (o->flags & oef::DIRECT)) return;  // unknown flags, or a real DIO write
    auto it = users_.find(Key{ino_key(e), e.pid});
    if (it == users_.end()) it = insert(e);
    auto& u = it->second;
    u.last_ts = e.ts_ns;
    if (!dev_compat(u.dev, e.dev)) return;
    if (!u.oe_seen) u.oe_seen = true, u.oe = e;
    maybe_report(u, out);
  }

 private:
  std::unordered_map<Key, User, KeyHash>::iterator insert(const Event& e) {
    if (users_.size() >= cfg_.max_entries)
      evicted_ += evict_oldest(users_, cfg_.max_entries, [](const User& u) { return u.last_ts; });
    auto it = users_.emplace(Key{ino_key(e), e.pid}, User{}).first;
    it->second.dev = e.dev;
    return it;
  }

  void maybe_report(User& u, Findings& out) {
    if (u.reported || u.dio_write || !u.read_seen || !u.oe_seen) return;
    u.reported = true;
    const Event& e = u.oe;
    auto* o = e.as<Ordered>();
    auto* row = exposure_row("dio-csum-fallback");
    auto ex = exposed(*row, cfg_.kernel);
    bool csum_reason = !u.nodatasum && ex != Exposed::No;
    auto f = make_finding(id(), "buffered-fallback", Level::Hazard, Severity::Info, u.read);
    f.ts_ns = std::max(u.read.ts_ns, u.oe.ts_ns);
    if (!f.dev && u.dev) f.dev = u.dev;
    f.range = {{o->file_offset, o->file_offset + o->len}};
    add_actor(f, u.read, "O_DIRECT user");
    if (e.tid != u.read.tid) add_actor(f, e, "writeback in the same process");
    f.message = fmt::format(
        "{} (pid {}) reads inode {} with O_DIRECT but its writes to it go through the page cache "
        "(it wrote back buffered data [{}, {}) of that file itself){}",
        comm_of(u.read), u.read.pid, u.read.ino, o->file_offset, o->file_offset + o->len,
        csum_reason ? ": the file has data checksums" : "");
    f.explanation =
        csum_reason
            ? "Since 968f19c5b1b7 btrfs turns O_DIRECT writes to files with data checksums into "
              "buffered writes, to keep checksums stable (the 2011 unstable-pages checksum bug). A "
              "QEMU guest with cache=none "
              "on such an image gets host page caching it did not ask for. To write direct, make "
              "the image nocow (chattr +C on the empty file) or accept the caching."
            : "The reason cannot be told from the events (the file has no data checksums, or the "
              "kernel predates 968f19c5b1b7): unaligned I/O and some extent types also fall back "
              "to buffered writes.";
    f.exposure = (csum_reason ? std::string("observed: DIO reads report data checksums and "
                                            "writes appear as buffered ordered extents; ")
                              : std::string("observed: buffered ordered extents; ")) +
                 exposure_text(*row, cfg_.kernel);
    put_evidence(f, {u.read, u.oe}, cfg_.max_evidence);
    out.push_back(std::move(f));
  }

 public:
  void on_time(uint64_t now, Findings&) override {
    evicted_ += evict_aged(users_, now, cfg_.max_age_ns, [](const User& u) { return u.last_ts; });
  }

  StateSize state_size() const override { return {users_.size(), cfg_.max_entries, evicted_}; }

 private:
  DetectorConfig cfg_;
  std::unordered_map<Key, User, KeyHash> users_;
  size_t evicted_ = 0;
};

}  // namespace

std::unique_ptr<Detector> make_dio_buffered_fallback(const DetectorConfig& c) {
  return std::make_unique<DioBufferedFallback>(c);
}

}  // namespace bdt::det
