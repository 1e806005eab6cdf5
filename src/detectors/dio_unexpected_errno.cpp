// dio-unexpected-errno (invariant): a direct read or write of a btrfs file
// returned an errno that no correct kernel returns for it.
//
// Rule: the errno a DIO request ends with (dio_end ret < 0) is one of those
// read(2)/pread(2)/preadv2(2), write(2)/pwrite(2)/pwritev2(2), io_submit(2)
// and io_uring_enter(2) document for reads and writes, or one the kernel
// returns for a reason outside btrfs (the block layer's device errors,
// allocation failure, a filesystem forced read-only). kAllowed below is the
// list, each entry with its source. Codes the kernel consumes before
// userspace sees them (ENOTBLK before btrfs' buffered fallback,
// EIOCBQUEUED, the ERESTART* family) are not violations either.
// Anything else is (the EEXIST of the 2016 extent-map merge race; EUCLEAN, ENOENT, ESTALE from a read).
//
// Evidence: the request's events on its thread (dio_begin, get_extent and
// em_add results that failed, dio_end); with function hooks a failing
// get_extent/em_add carries the kernel stack where the error came from.
#include <fmt/format.h>

#include "detectors/shared.h"

namespace bdt::det {
namespace {

enum Dir : uint8_t { R = 1, W = 2, RW = 3 };
struct Allowed {
  int errnum;
  const char* name;
  uint8_t dir;
  const char* source;
};

// Documented or kernel-wide errnos for a direct read/write of a regular file.
constexpr Allowed kAllowed[] = {
    {11, "EAGAIN", RW, "read(2), write(2): non-blocking I/O (RWF_NOWAIT, io_uring's nowait attempt, IOCB_NOWAIT)"},
    {9, "EBADF", RW, "read(2), write(2), io_submit(2)"},
    {14, "EFAULT", RW, "read(2), write(2): buffer outside the address space"},
    {4, "EINTR", RW, "read(2), write(2): interrupted by a signal"},
    {22, "EINVAL", RW, "read(2), write(2): unaligned O_DIRECT, bad offset; pread(2)/lseek(2)"},
    {5, "EIO", RW, "read(2), write(2): low-level I/O error (a failing device)"},
    {21, "EISDIR", R, "read(2)"},
    {75, "EOVERFLOW", RW, "pread(2), pwrite(2) via lseek(2): offset overflow; block layer: zoned active-zone limit"},
    {6, "ENXIO", RW, "pread(2), pwrite(2) via lseek(2)"},
    {29, "ESPIPE", RW, "pread(2), pwrite(2): not seekable"},
    {95, "EOPNOTSUPP", RW, "preadv2(2), pwritev2(2): unsupported flag; io_uring; block layer BLK_STS_NOTSUPP"},
    {125, "ECANCELED", RW, "io_uring_enter(2): the request was canceled"},
    {12, "ENOMEM", RW, "kernel allocation failure (iomap, btrfs); block layer BLK_STS_RESOURCE"},
    {122, "EDQUOT", W, "write(2): quota exhausted"},
    {27, "EFBIG", W, "write(2): file size limit"},
    {28, "ENOSPC", W, "write(2): no space left; block layer BLK_STS_NOSPC"},
    {1, "EPERM", W, "write(2): immutable / append-only file, file seal"},
    {32, "EPIPE", W, "write(2)"},
    {89, "EDESTADDRREQ", W, "write(2)"},
    {26, "ETXTBSY", W, "generic_write_checks(): write to an active swap file"},
    {30, "EROFS", W, "btrfs: the filesystem was forced read-only after an error (a failing device)"},
    // device errors the block layer reports (blk_status_to_errno(), block/blk-core.c)
    {110, "ETIMEDOUT", RW, "block layer BLK_STS_TIMEOUT: the device timed out"},
    {67, "ENOLINK", RW, "block layer BLK_STS_TRANSPORT"},
    {121, "EREMOTEIO", RW, "block layer BLK_STS_TARGET"},
    {52, "EBADE", RW, "block layer BLK_STS_RESV_CONFLICT / NEXUS"},
    {61, "ENODATA", RW, "block layer BLK_STS_MEDIUM: medium error"},
    {84, "EILSEQ", RW, "block layer BLK_STS_PROTECTION: integrity (PI) error"},
    {16, "EBUSY", RW, "block layer BLK_STS_DEV_RESOURCE"},
    {19, "ENODEV", RW, "block layer BLK_STS_OFFLINE: device offline"},
    {62, "ETIME", RW, "block layer BLK_STS_DURATION_LIMIT"},
    {109, "ETOOMANYREFS", W, "block layer BLK_STS_ZONE_OPEN_RESOURCE (zoned devices)"},
};

// Codes the kernel consumes before userspace sees them.
constexpr Allowed kInternal[] = {
    {15, "ENOTBLK", RW, "btrfs/iomap: fall back to buffered I/O"},
    {529, "EIOCBQUEUED", RW, "iomap: an asynchronous request was queued"},
    {512, "ERESTARTSYS", RW, "restarted or turned into EINTR before returning to userspace"},
    {513, "ERESTARTNOINTR", RW, "restarted before returning to userspace"},
    {514, "ERESTARTNOHAND", RW, "restarted or turned into EINTR before returning to userspace"},
    {516, "ERESTART_RESTARTBLOCK", RW, "restarted before returning to userspace"},
};

const Allowed* find(std::span<const Allowed> t, int e) {
  for (auto& a : t)
    if (a.errnum == e) return &a;
  return nullptr;
}

// Names of errnos worth naming in a message (the allowed ones have theirs).
std::string name_of(int e) {
  if (auto* a = find(kAllowed, e)) return a->name;
  if (auto* a = find(kInternal, e)) return a->name;
  switch (e) {
    case 2: return "ENOENT";
    case 17: return "EEXIST";
    case 116: return "ESTALE";
    case 117: return "EUCLEAN";
    case 524: return "ENOTSUPP";
    case 78: return "EREMCHG";
    case 20: return "ENOTDIR";
    case 7: return "E2BIG";
    case 40: return "ELOOP";
    default: return fmt::format("errno {}", e);
  }
}

class DioUnexpectedErrno final : public Detector {
  using Evidence8 = decltype(DioRequests::Req::ev);

 public:
  DioUnexpectedErrno(const DetectorConfig& c, std::shared_ptr<Shared> s)
      : cfg_(c), shared_(std::move(s)) {}
  std::string_view id() const override { return "dio-unexpected-errno"; }
  // Triggers: a request that failed (errno): its records and the failing
  // get_extent/em_add are emitted with it.
  TriggerSet triggers() const override { return triggers_of({Trigger::Errno}); }
  EventSet events() const override {
    return events_of({EventType::DioBegin, EventType::GetExtent, EventType::EmAdd, EventType::DioEnd});
  }

  // The requests are the shared table's (Shared, fed before this
  // detector). A request whose thread had a failing lookup gets its own copy
  // of the request's events here (`failed_`), which takes that lookup and the
  // request's later events: the other detectors' evidence does not.
  void on_event(const Event& e, Findings& out) override {
    switch (e.type) {
      case EventType::DioBegin:
        if (failed_.empty()) return;
        if (auto* r = shared_->requests.began())
          if (auto it = failed_.find(r->id); it != failed_.end()) it->second.push(e);
        if (uint64_t id = shared_->requests.dropped()) failed_.erase(id);
        return;
      case EventType::GetExtent:
      case EventType::EmAdd: {
        // a failing lookup/insert inside the request: evidence, and with
        // function hooks the kernel stack where the error came from
        int64_t ret = e.type == EventType::GetExtent ? e.as<GetExtent>()->ret : e.as<EmAdd>()->ret;
        if (ret >= 0) return;
        if (auto* r = shared_->requests.table().of_thread(e.tid))
          failed_.try_emplace(r->id, r->ev).first->second.push(e);
        return;
      }
      case EventType::DioEnd: return on_end(e, out);
      default: return;
    }
  }

  void on_time(uint64_t, Findings&) override {
    for (auto it = failed_.begin(); it != failed_.end();)
      it = shared_->requests.table().find(it->first) ? std::next(it) : failed_.erase(it);
  }

  StateSize state_size() const override {
    auto& t = shared_->requests.table();
    return {t.size() + failed_.size(), t.cap(), t.evicted(), t.capped()};
  }

 private:
  void on_end(const Event& e, Findings& out) {
    auto* d = e.as<DioEnd>();
    auto* r = shared_->requests.ended();
    Evidence8 own;
    const Evidence8* evs = r ? &r->ev : nullptr;
    if (r && !failed_.empty())
      if (auto it = failed_.find(r->id); it != failed_.end()) {
        own = it->second;
        own.push(e);
        evs = &own;
        failed_.erase(it);
      }
    if (d->ret >= 0) return;
    const int err = static_cast<int>(-d->ret);
    // direction: as the source knows it, else from the request's begin
    uint8_t dir = d->write ? (*d->write ? W : R) : r ? (r->write ? W : R) : RW;
    if (find(kInternal, err)) return;
    if (auto* a = find(kAllowed, err); a && (a->dir & dir)) return;
    report(e, r, evs, err, dir, out);
  }

  void report(const Event& e, const DioRequests::Req* r, const Evidence8* rev, int err, uint8_t dir,
              Findings& out) {
    const Event& who = r ? r->begin : e;
    auto f = make_finding(id(), "unexpected-errno", Level::Symptom, Severity::Critical, who);
    f.ts_ns = e.ts_ns;
    if (!f.ino && e.ino) f.ino = e.ino;
    if (!f.dev && e.dev) f.dev = e.dev;
    std::string what = dir == W ? "write" : dir == R ? "read" : "request";
    std::string range;
    if (r) {
      auto* b = r->begin.as<DioBegin>();
      uint64_t end = b->pos + b->count;
      f.range = {{r->start, std::max(end, r->start + 1)}};
      range = fmt::format(" [{}, {})", r->start, end);
    }
    add_actor(f, who, dir == W ? "writer" : "reader");
    std::string name = name_of(err);
    auto* other = find(kAllowed, err);  // allowed for the other direction only
    f.message = fmt::format(
        "a direct {} by {} (pid {}) of inode {}{} returned {} (-{}), an errno no correct kernel "
        "returns for it: rule 'a DIO {} returns only documented errnos' broke",
        what, comm_of(who), who.pid, f.ino.value_or(0), range, name, err, what);
    f.explanation = fmt::format(
        "{} is not among the errors read(2)/write(2)/io_submit(2)/io_uring_enter(2) document for "
        "a {} of a regular file, nor a device error the block layer reports{}. The kernel let an "
        "internal error reach the caller (a VM sees an I/O error; an application may take it for "
        "a missing or stale file). This is a kernel bug: keep the evidence (`btrfs-dio-trace "
        "dump` of the flight recorder, this finding's JSON) and report it to "
        "linux-btrfs@vger.kernel.org with the kernel version; retrying the I/O may succeed.",
        name, what, other ? fmt::format(" ({} is allowed for the other direction only: {})", name, other->source)
                           : std::string());
    f.exposure = "observed: the errno at the end of the DIO request (iomap_dio_complete); the "
                 "allowed list is docs/detectors/dio-unexpected-errno.md";
    std::vector<Event> evs;
    if (rev)
      for (auto& x : rev->events()) evs.push_back(x);
    else
      evs.push_back(e);
    put_evidence(f, std::move(evs), cfg_.max_evidence);
    out.push_back(std::move(f));
  }

  DetectorConfig cfg_;
  std::shared_ptr<Shared> shared_;
  // requests with a failing lookup: their events and the lookups, by request id
  std::unordered_map<uint64_t, Evidence8> failed_;
};

}  // namespace

std::unique_ptr<Detector> make_dio_unexpected_errno(const DetectorConfig& c,
                                                     std::shared_ptr<Shared> s) {
  return std::make_unique<DioUnexpectedErrno>(c, std::move(s));
}

}  // namespace bdt::det
