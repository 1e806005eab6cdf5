// Live tracing: load the BPF programs, attach the hooks the running kernel
// allows, and stream decoded events. Implemented in src/live and src/loader.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bdt/errors.h"
#include "bdt/event.h"
#include "bdt/live_stats.h"
#include "bdt/trace_reader.h"

namespace bdt {

enum class Backend { Auto, Fentry, Kprobe, Tracepoint };

struct LiveOptions {
  std::vector<uint32_t> pids;       // tgids; every thread of each
  // Filter by pid even when `pids` is empty (nothing passes until
  // LiveSession::add_pid): --qemu adds VMs as they appear.
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
  // with LiveSession::latency() (--qemu). At most latency_entries keys; more
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
};

struct HookStatus {
  std::string name;       // hook name as doctor prints it, e.g. "iomap_dio_rw_begin"
  std::string mechanism;  // "tp_btf", "raw_tp", "tracepoint", "fentry", "kprobe", "none"
  bool attached = false;
  std::string reason;     // why this mechanism / why none
};


class LiveSession {
 public:
  // Throws InputError (bad option, e.g. --mount not on btrfs: exit 1) or
  // KernelError (no permission, no BTF, nothing attachable: exit 2).
  static std::unique_ptr<LiveSession> open(const LiveOptions& opts);
  virtual ~LiveSession() = default;
  // Waits up to timeout_ms and delivers decoded events, in timestamp order
  // (a short reorder window smooths out cross-CPU ring-buffer order).
  // Returns the number of events delivered (0 on timeout or EINTR), or a
  // negative errno on a ring-buffer error.
  virtual int poll(int timeout_ms, const std::function<void(const Event&)>& cb) = 0;
  // Deliver everything still held in the reorder window.
  virtual void drain(const std::function<void(const Event&)>& cb) = 0;
  virtual const std::vector<HookStatus>& hooks() const = 0;
  virtual LiveStats stats() const = 0;
  virtual TraceHeader header() const = 0;  // for --record
  // Things the user should know that did not stop the session (one line each),
  // e.g. a hook that could not attach is in hooks(); this is for the rest.
  virtual std::vector<std::string> warnings() const { return {}; }
  // The kernel stack behind an Event::stack_id (error origin), innermost frame
  // first, symbolized from /proc/kallsyms ("func+0x1a [module]"); empty when
  // the id is 0, unknown, or the stack was evicted from the kernel map.
  virtual std::vector<std::string> stack(uint32_t /*stack_id*/) const { return {}; }
  // With --pin-dir: keep the recorder's pins when the session ends (the links
  // are unpinned on a clean end, so the programs detach; the recorder stays
  // for `dump --pin-dir`). Without this call a session that ends (e.g. a
  // failed start) removes every pin it made.
  virtual void keep_pins() {}
  // The in-kernel pid filter (LiveOptions::pids / pid_filter): trace the
  // process tgid (all its threads, io_uring io-wq workers included), or stop.
  // remove_pid also deletes the process's latency histograms. Throw
  // KernelError when the map cannot be updated (e.g. full: 1024 processes);
  // InputError when the session was opened without a pid filter.
  virtual void add_pid(uint32_t /*tgid*/) { throw InputError("this session has no pid filter"); }
  virtual void remove_pid(uint32_t /*tgid*/) { throw InputError("this session has no pid filter"); }
  // The kernel's latency histograms (empty unless LiveOptions::latency_hist).
  virtual LatencyHists latency() const { return {}; }
};

struct DoctorReport {
  std::string kernel;  // uname -r
  bool vmlinux_btf = false;
  bool btrfs_module_btf = false;  // /sys/kernel/btf/btrfs (false when btrfs is built in)
  bool btrfs_builtin = false;
  bool root = false;
  std::vector<HookStatus> hooks;
  struct DetectorFidelity {
    std::string id, fidelity, reason;  // fidelity: full / partial / unavailable
  };
  std::vector<DetectorFidelity> detectors;
  std::vector<std::string> exposure;  // known-bug exposure lines for this kernel
};
// Probes without leaving anything attached. Throws KernelError when it cannot
// probe at all (e.g. no permission).
DoctorReport run_doctor(Backend backend = Backend::Auto);

}  // namespace bdt
