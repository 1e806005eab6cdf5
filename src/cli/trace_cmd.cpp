// `btrfs-dio-trace [trace]`: live tracing.
#include <fmt/format.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>

#include "bdt/kernel_version.h"
#include "core/safe_text.h"
#include "qemu/qemu.h"
#include "cli/commands.h"
#include "cli/live_loop.h"
#include "cli/metrics_glue.h"
#include "cli/pipeline.h"
#include "cli/privileges.h"
#include "cli/service.h"
#include "live/mount_watch.h"

namespace bdt::cli {

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }
}  // namespace

bool stop_requested() { return g_stop.load(); }

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + ts.tv_nsec;
}

int run_trace(const TraceArgs& a) {
  // From the start: a SIGINT/SIGTERM while the programs load ends the run as
  // a stop after attaching does, with nothing left behind (below).
  install_signal_handlers();
  // Usage errors before attaching anything.
  if (!a.snapshot_dir.empty()) {
    // Created private (0700): snapshots name other users' processes and files.
    if (::mkdir(a.snapshot_dir.c_str(), 0700) != 0 && errno != EEXIST)
      throw InputError(fmt::format("--snapshot-dir {}: cannot create: {}", a.snapshot_dir, strerror(errno)));
    struct stat lst {};
    if (::lstat(a.snapshot_dir.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode))
      throw InputError(fmt::format("--snapshot-dir {}: is a symbolic link (refused: give the directory itself)",
                                   a.snapshot_dir));
    struct stat st {};
    if (::stat(a.snapshot_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw InputError(fmt::format("--snapshot-dir {}: not a directory", a.snapshot_dir));
    if (::access(a.snapshot_dir.c_str(), W_OK | X_OK) != 0)
      throw InputError(fmt::format("--snapshot-dir {}: not writable: {}", a.snapshot_dir, strerror(errno)));
  }
  if (a.interval_s > 0 && !a.qemu) throw InputError("--interval needs --qemu");
  for (uint32_t pid : a.live.pids)
    if (pid == 0 || ::access(fmt::format("/proc/{}", pid).c_str(), F_OK) != 0)
      throw InputError(fmt::format("--pid {}: no such process", pid));
  // --qemu: find the VMs first (--pid X --qemu with a non-QEMU X is a usage error).
  std::optional<qemu::Tracker> vms;
  live::LiveOptions lo = a.live;
  if (a.qemu) {
    qemu::Tracker::Options qo;
    qo.discover.only_pids = a.live.pids;
    // /proc scans on a thread of their own: never on the one that drains the
    // ring buffer (started at the first qemu_tick, after the capability drop).
    qo.background = true;
    vms.emplace(std::move(qo));
    // In-kernel pid filter, empty at first: VMs are added as the watcher
    // finds them (qemu_tick), removed when they exit. Latency histograms are
    // computed in the kernel.
    lo.pids.clear();
    lo.pid_filter = true;
    lo.latency_hist = true;
  }
  auto exporter = start_metrics(a);  // binds now: a bad address is a usage error before attaching
  // Lazy emission unless every event is wanted: records only for what the
  // detectors' triggers ask for (docs/performance.md).
  lo.lazy = !a.events && a.record.empty() && a.snapshot_dir.empty() && a.live.pin_dir.empty();
  lo.triggers = detector_triggers(DetectorConfig{});
  lo.hot_ns = DetectorConfig{}.max_age_ns;
  lo.stall_ns = static_cast<uint64_t>(a.stall_threshold_s * 1e9);
  const auto stopped_while_attaching = [] {
    fmt::print(stderr, "btrfs-dio-trace: stopped while attaching; nothing is left attached or pinned\n");
    return 0;
  };
  std::unique_ptr<live::Session> session;
  try {
    session = live::Session::open(lo);
  } catch (const KernelError&) {
    if (stop_requested()) return stopped_while_attaching();  // e.g. a load interrupted by the signal
    throw;
  }
  // Not kept: the session's destructor detaches and removes every pin it made.
  if (stop_requested()) return stopped_while_attaching();
  if (vms) vms->set_latency_source([&session] { return session->latency(); });
  auto header = session->header();

  // Under systemd with stdout to the journal: findings become structured
  // journal entries and text times are UTC (docs/deployment.md).
  const bool journal = service::stdout_is_journal();
  TimeBase tb{monotonic_ns(), header.mono_to_realtime_ns, a.wall_time || journal};
  // Every event printed: one write(2) per 64 KiB instead of per 4 KiB (stdio's
  // default for a pipe or file; a terminal stays line-buffered). Findings and
  // the summary are flushed as before, and events at least once a second (the
  // loop's tick below), so a reader of a quiet pipe sees each within a second.
  const bool buffered_events = a.events && !isatty(STDOUT_FILENO);
  // glibc ignores setvbuf's size without a buffer (it keeps st_blksize, 4 KiB):
  // the buffer is given.
  static char events_buf[1 << 16];
  if (buffered_events) std::setvbuf(stdout, events_buf, _IOFBF, sizeof events_buf);
  std::unique_ptr<Sink> sink = a.format == Format::Json
                                   ? make_json_sink(stdout, header)
                                   : make_text_sink(stdout, tb, isatty(STDOUT_FILENO));
  if (journal) {
    sink = service::journal_findings(std::move(sink), header.mono_to_realtime_ns);
    fmt::print(stderr, "btrfs-dio-trace: stdout is the journal: each finding is a journal entry with its fields "
                       "(journalctl -o json MESSAGE_ID=6f1c2b7e0a8d4c39b5e2d17a9c3f4e21)\n");
  }
  PipelineOptions po;
  // BDT_TEST_LAZY_EVENTS=1 (testing aid, tests/integration/lib.sh twins): findings only, the
  // programs' lazy emission unchanged, but the records it made are printed too (the order this
  // tracer saw them in, for scripts/bench/compare_findings.py).
  const char* lazy_events = std::getenv("BDT_TEST_LAZY_EVENTS");
  po.print_events = a.events || (lo.lazy && lazy_events && std::string_view(lazy_events) == "1");
  po.detectors.stall_threshold_ns = static_cast<uint64_t>(a.stall_threshold_s * 1e9);
  po.detectors.kernel = KernelVersion::running();
  apply_header_hooks(po.detectors, header);
  Pipeline pipe(po, std::move(sink));
  if (!a.record.empty()) pipe.set_recorder(create_record(a.record, header));
  if (!a.snapshot_dir.empty()) {
    SnapshotOptions so;
    so.dir = a.snapshot_dir;
    so.seconds = a.snapshot_seconds;
    so.max_files = a.snapshot_max;
    so.min_interval_ns = static_cast<uint64_t>(a.snapshot_interval_s * 1e9);
    so.max_bytes = a.snapshot_max_mib << 20;
    so.max_events = a.snapshot_events;
    pipe.set_snapshotter(std::make_unique<Snapshotter>(so, header));
  }

  // Attached (and pinned): from here on the tracer needs far fewer privileges.
  drop_capabilities_after_attach(a);

  // Say what is attached, on stderr so stdout stays machine-readable.
  fmt::print(stderr, "btrfs-dio-trace: tracing with {} of {} hooks attached", session->attached(),
             session->hooks().size());
  for (const auto& h : session->hooks())
    if (!h.attached) fmt::print(stderr, "\n  not attached: {} ({})", h.name(), h.reason);
  for (const auto& w : session->warnings()) fmt::print(stderr, "\nbtrfs-dio-trace: warning: {}", shown(w));
  fmt::print(stderr, "\nbtrfs-dio-trace: Ctrl-C to stop{}\n",
             a.duration_s > 0 ? fmt::format(" (or after {} s)", a.duration_s) : "");

  if (!a.live.pin_dir.empty()) {
    session->keep_pins();
    fmt::print(stderr, "btrfs-dio-trace: flight recorder pinned in {} ({} events per CPU); it keeps "
                       "recording if this process is killed\n",
               a.live.pin_dir, a.live.recorder_events);
  }
  // Ready: the programs are attached (and the privileges dropped).
  service::notify_ready(
      fmt::format("tracing with {} of {} hooks attached", session->attached(), session->hooks().size()));
  service::Watchdog watchdog;
  uint64_t next_status = 0;
  uint64_t next_flush = 0;
  const uint64_t start = monotonic_ns();
  const uint64_t deadline = a.duration_s > 0 ? start + static_cast<uint64_t>(a.duration_s * 1e9) : 0;
  const auto sort = a.sort_requests ? qemu::SortBy::Requests : qemu::SortBy::Vm;
  pipe.set_finding_hook([&](Finding& f) {
    // Error origins: the kernel stack captured where a hooked function
    // failed inside a traced request, from the first evidence event that has one.
    if (f.stack.empty())
      for (const auto& ev : f.evidence)
        if (ev.stack_id && !(f.stack = session->stack(ev.stack_id)).empty()) break;
    if (vms) vms->on_finding(f);
    if (exporter) exporter->on_finding(f);
  });
  auto deliver = [&](const Event& ev) {
    if (!vms) return pipe.on_event(ev);
    Event e = ev;
    vms->on_event(e);
    // Only the VMs' I/O. The kernel passes a VM's tasks and, from btrfs' workers, the
    // ordered extents of inodes they touched: those too when the inode is not (yet) a
    // known image of the VM (a VM found before it opened its images, a hotplugged disk:
    // until the next /proc scan), else their adds would be seen without their removal.
    if (!e.vm.empty() || std::holds_alternative<Ordered>(e.body)) pipe.on_event(e);
  };
  const double start_unix = static_cast<double>(::time(nullptr));
  auto metrics_state = [&] { return tracer_state(*session, pipe.engine(), vms ? &*vms : nullptr, a, start_unix); };
  bool said_waiting = false;
  uint64_t next_table = a.interval_s > 0 ? start + static_cast<uint64_t>(a.interval_s * 1e9) : 0;
  auto qemu_tick = [&](uint64_t now) {
    if (!vms) return;
    auto d = vms->poll(now / 1'000'000);  // harvests exiting VMs' latency first
    for (const auto& p : d.removed) session->remove_pid(p.pid);  // and their kernel histograms
    for (const auto& p : d.added) session->add_pid(p.pid);
    if (!d.added.empty()) fmt::print(stderr, "{}", qemu::describe(d.added));
    for (const auto& p : d.removed) fmt::print(stderr, "VM {} (pid {}) exited\n", shown(p.vm), p.pid);
    for (const auto& p : d.changed) fmt::print(stderr, "{}", qemu::describe({p}));
    if (vms->scans() > 0) {  // once the first scan has finished
      if (vms->pids().empty() && !said_waiting)
        fmt::print(stderr,
                   "btrfs-dio-trace: no QEMU process is running; waiting for one (checking /proc every second)\n");
      said_waiting = vms->pids().empty();
    }
    if (next_table && now >= next_table) {
      vms->harvest_latency();
      auto rows = vms->stats().take_interval(sort);
      pipe.sink().flush();
      const auto c = vms->counters();
      if (a.format == Format::Json)
        fmt::print("{}\n", qemu::render_json(rows, a.interval_s, &c, now, header.mono_to_realtime_ns));
      else
        fmt::print("{}", qemu::render_text(rows, fmt::format("-- {} per-VM direct I/O, last {} s --",
                                                             format_time(now, tb), a.interval_s)));
      std::fflush(stdout);
      next_table += static_cast<uint64_t>(a.interval_s * 1e9);
    }
  };
  LiveLoop loop(*session, pipe, a.live, deliver);
  live::MountWatch mounts(a.live.mount);
  loop.run(deadline, [&] {
    for (const auto& line : mounts.check()) fmt::print(stderr, "btrfs-dio-trace: {}\n", line);
    qemu_tick(monotonic_ns());
    if (exporter) exporter->tick(monotonic_ns(), metrics_state);
    const uint64_t now = monotonic_ns();
    watchdog.tick(now);
    if (buffered_events && now >= next_flush) {
      next_flush = now + 1'000'000'000ull;
      pipe.sink().flush();
    }
    if (now >= next_status) {  // what `systemctl status` shows
      next_status = now + 10'000'000'000ull;
      const auto st = session->stats();
      service::notify_status(fmt::format("{} of {} hooks attached; {} events, {} findings, {} lost{}",
                                         session->attached(), session->hooks().size(), st.events, pipe.findings(),
                                         st.lost_total,
                                         vms ? fmt::format("; {} VMs", vms->pids().size()) : std::string()));
    }
  });
  service::notify_stopping();
  loop.drain();
  uint64_t end = monotonic_ns();

  Summary s;
  s.duration_s = static_cast<double>(end - start) / 1e9;
  // Events as the kernel counted them (also those no record was needed for);
  // the records that reached the detectors are the summary's "records".
  if (const auto kc = session->counts(); kc.valid) {
    s.events_from_kernel = true;
    for (int i = 1; i <= kEventTypeCount && static_cast<size_t>(i) < kc.events_by_type.size(); ++i)
      if (const uint64_t n = kc.events_by_type[i]) {
        s.events_by_type[std::string(to_string(static_cast<EventType>(i)))] = n;
        s.events_total += n;
      }
    if (kc.oe_untracked)
      s.notes.emplace_back("ordered extents untracked",
                           fmt::format("{} (the kernel's table in flight had no free slot for them: "
                                       "dio-stuck and dio-acked-unbacked did not see them; --events does)",
                                       kc.oe_untracked));
  }
  loop.fill_summary(s);
  const auto st = session->stats();
  s.notes.emplace_back("hooks attached", fmt::format("{}/{}", session->attached(), session->hooks().size()));
  if (st.unknown_records)
    s.notes.emplace_back("unknown records", fmt::format("{} (skipped: newer BPF object?)", st.unknown_records));
  if (vms) {
    vms->harvest_latency();
    auto c = vms->counters();
    s.notes.emplace_back("qemu VMs", fmt::format("{} running at the end", vms->pids().size()));
    s.notes.emplace_back("qemu /proc scans", fmt::format("{}, the slowest {} ms (off the ring-buffer thread)",
                                                         vms->scans(), vms->slowest_scan_ms()));
    if (c.evicted || c.unmatched_ends)
      s.notes.emplace_back("qemu latency", fmt::format("{} requests evicted (cap {}), {} ends without a begin",
                                                       c.evicted, c.inflight_cap, c.unmatched_ends));
    s.notes.emplace_back("qemu latency histograms",
                         fmt::format("in the kernel, {} of {} keys used, {} samples dropped (map full){}",
                                     c.kernel_hist_used, c.kernel_hist_capacity, c.kernel_hist_overflow,
                                     c.kernel_hist_overflow ? " - raise the cap or trace fewer processes" : ""));
  }
  pipe.finish(end, std::move(s));
  if (!a.live.pin_dir.empty())
    fmt::print(stderr, "btrfs-dio-trace: programs detached; the flight recorder stays in {0}: read it "
                       "with `btrfs-dio-trace dump --pin-dir {0}`, free it with `btrfs-dio-trace dump "
                       "--pin-dir {0} --release`\n",
               a.live.pin_dir);
  if (vms) {
    pipe.sink().flush();
    auto rows = vms->stats().total(sort);
    const auto c = vms->counters();
    if (a.format == Format::Json)
      fmt::print("{}\n", qemu::render_json(rows, -1, &c, end, header.mono_to_realtime_ns));
    else
      fmt::print("{}", qemu::render_text(rows, fmt::format("-- {} per-VM direct I/O, whole run --", format_time(end, tb))));
  }
  return 0;
}

}  // namespace bdt::cli
