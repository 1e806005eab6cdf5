// The live session: plans the hooks on this kernel's facts, loads the BPF
// programs and attaches them (a program the kernel refuses falls back to the
// hook's next mechanism and the load is retried without it), then streams the
// ring buffer's records as decoded events in timestamp order. One class for
// `trace`, `demo` and `doctor` (which opens it with Use::Probe to see what
// really attaches, then closes it).
#pragma once

#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bdt/errors.h"
#include "bdt/event.h"
#include "bdt/hooks.h"
#include "bdt/live_stats.h"
#include "bdt/trace_header.h"
#include "live/decode.h"
#include "live/reorder.h"
#include "loader/kallsyms.h"
#include "loader/kernel_facts.h"
#include "loader/plan.h"

struct bdt_bpf;
struct bpf_link;
struct ring_buffer;

namespace bdt::live {

struct LiveOptions {
  std::vector<uint32_t> pids;       // tgids; every thread of each
  // Filter by pid even when `pids` is empty (nothing passes until
  // Session::add_pid): --qemu adds VMs as they appear.
  bool pid_filter = false;
  std::vector<std::string> comms;   // exact task comm
  std::string mount;                // a path on the btrfs filesystem to watch ("" = all)
  std::string cgroup;               // cgroup v2 path ("" = all)
  Backend backend = Backend::Auto;
  uint32_t ringbuf_bytes = 8u << 20;  // rounded up to a power of two (>= one page)
  // Events are held this long and released in ts order: one ring buffer is
  // filled from several CPUs, so arrival order is not quite time order.
  uint32_t reorder_window_ms = 20;
  // In-kernel flight recorder (docs/flight-recorder.md): slots per CPU, 0 = off.
  // Only a pinned recorder can be read (dump --pin-dir), so the CLI turns it on
  // with --pin-dir (kDefaultRecorderEvents unless --recorder-events says otherwise).
  static constexpr uint32_t kDefaultRecorderEvents = 65536;
  uint32_t recorder_events = 0;
  // Pin the recorder and the programs' links here (bpffs) so they outlive the tracer.
  std::string pin_dir;
  // In-kernel DIO latency histograms per (process, file, direction), read
  // with Session::latency() (--qemu). At most latency_entries keys; more
  // are dropped and counted (LatencyHists::overflow).
  bool latency_hist = false;
  uint32_t latency_entries = 4096;
  // --all-events: every hook emits every record it can make, also those no
  // detector reads (clean ordered-extent completions, every get_extent
  // lookup, read buffers' VMAs). Off: docs/performance.md.
  bool all_events = false;
  // Hidden --bench-floor (scripts/bench/overhead.sh): the same hooks attached
  // with the same mechanisms, every program returning at once.
  bool bench_floor = false;
  // Lazy emission (docs/performance.md): the programs hold a DIO request's
  // records and make them only when one of `triggers` (1 << Trigger, the
  // detectors' detector_triggers()) fires on its inode, which then stays
  // hot (every record made at once) for hot_ns. Off: every record is made
  // as it happens (--events, --record, --snapshot-dir, --pin-dir).
  bool lazy = false;
  uint32_t triggers = 0;
  uint64_t hot_ns = 120'000'000'000ull;
  // The stall trigger (Trigger::Stall): a request in flight this long (plus
  // its size at 4 MiB/s) when a later one on its filesystem completes
  // (--stall-threshold, DetectorConfig::stall_threshold_ns).
  uint64_t stall_ns = 30'000'000'000ull;
};

// Throws KernelError with what to do when not root / lacking CAP_BPF+CAP_PERFMON.
void check_privileges();
bool have_privileges();

class Session {
 public:
  enum class Use {
    Trace,  // stream events until destroyed
    Probe,  // doctor: load and attach, no ring-buffer consumer; never exit 2 for
            // "no detector has its hooks" (doctor reports it)
  };
  using Deliver = std::function<void(const Event&)>;

  // Throws InputError (bad option, e.g. --mount not on btrfs: exit 1) or
  // KernelError (no permission, no BTF, no detector has its hooks: exit 2).
  static std::unique_ptr<Session> open(const LiveOptions& opts, Use use = Use::Trace);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Waits up to timeout_ms and delivers decoded events, in timestamp order
  // (a short reorder window smooths out cross-CPU ring-buffer order).
  // Returns the number of events delivered (0 on timeout or EINTR), or a
  // negative errno on a ring-buffer error.
  int poll(int timeout_ms, const Deliver& cb);
  // The end of a trace: detaches the programs (see detach), then delivers
  // what the ring buffer and the reorder window still hold.
  void drain(const Deliver& cb);
  // Detaches every program (and removes the pinned links, as a clean end
  // does): nothing more is recorded. The maps stay readable (stats()).
  void detach();

  // One per hook of bpf/hooks.def, in table order.
  const std::vector<HookStatus>& hooks() const { return hooks_; }
  size_t attached() const;
  LiveStats stats() const;
  TraceHeader header() const;  // for --record
  // Things the user should know that did not stop the session, one line
  // each: a program the kernel refused and what its hook fell back to, a
  // pin that failed, ... (hooks that are not attached are in hooks()).
  const std::vector<std::string>& warnings() const { return warnings_; }
  // The kernel stack behind an Event::stack_id (error origin), innermost frame
  // first, symbolized from /proc/kallsyms ("func+0x1a [module]"); empty when
  // the id is 0, unknown, or the stack was evicted from the kernel map.
  std::vector<std::string> stack(uint32_t stack_id) const;
  // With --pin-dir: keep the recorder's pins when the session ends (the links
  // are unpinned on a clean end, so the programs detach; the recorder stays
  // for `dump --pin-dir`). Without this call a session that ends (e.g. a
  // failed start) removes every pin it made.
  void keep_pins() { keep_pins_ = true; }
  // The in-kernel pid filter (LiveOptions::pids / pid_filter): trace the
  // process tgid (all its threads, io_uring io-wq workers included), or stop.
  // remove_pid also deletes the process's latency histograms. Throw
  // KernelError when the map cannot be updated (e.g. full: 1024 processes);
  // InputError when the session was opened without a pid filter.
  void add_pid(uint32_t tgid);
  void remove_pid(uint32_t tgid);
  // The kernel's latency histograms (empty unless LiveOptions::latency_hist).
  LatencyHists latency() const;
  // The kernel's traffic counts, now (bpf/counts.bpf.h).
  KernelCounts counts() const;
  // What the plan was made from (doctor --facts prints it).
  const loader::KernelFacts& facts() const { return facts_; }

 private:
  Session() = default;
  void close_bpf();  // destroys links, ring buffer, skeleton (not the pins)
  static int on_sample(void* ctx, void* data, size_t size);
  friend void setup_recorder(Session& s, const std::string& pin_dir);  // flight_recorder.cpp
  friend class Loader;                                                  // session.cpp

  struct bdt_bpf* skel_ = nullptr;
  std::vector<struct bpf_link*> links_;
  struct ring_buffer* rb_ = nullptr;
  std::vector<HookStatus> hooks_;
  std::vector<std::string> warnings_;
  loader::KernelFacts facts_;
  FlagMaps flags_;
  int lost_fd_ = -1;
  int made_fd_ = -1;
  int stacks_fd_ = -1;          // kernel stacks of error origins (BPF_MAP_TYPE_STACK_TRACE)
  bool pid_filter_on_ = false;  // filter_pid set: add_pid/remove_pid allowed
  // --pin-dir (flight_recorder.cpp): pinned maps and links; removed by the
  // destructor (links always, maps unless keep_pins).
  std::string pin_dir_;
  std::vector<std::string> pins_, link_pins_;
  bool keep_pins_ = false;

  // Records one poll() consumes at most (~20-80 ms of decoding and detectors
  // at 1-5 us each); on_sample returns kPollBudgetSpent past it.
  static constexpr int kPollRecords = 16384;
  static constexpr int kPollBudgetSpent = -ECANCELED;
  int poll_budget_ = kPollRecords;
  ReorderBuffer held_{0};
  uint64_t decoded_ = 0, unknown_ = 0;
  int64_t mono_to_rt_ = 0;
  KernelVersion kernel_;
  int kallsyms_fd_ = -1;  // opened at open(), before capabilities are dropped
  mutable std::once_flag syms_once_;
  mutable loader::KernelSymbols syms_;
};

}  // namespace bdt::live
