// --qemu: find QEMU hypervisor processes, name the VM and disk image behind
// each traced inode, and keep per-VM / per-image statistics.
//
// Everything here is userspace only (no libbpf): discovery reads a /proc tree
// (parameterized so that tests use a fake one), the attributor labels Events
// and Findings, the stats collector turns events into per-VM tables.
// Implemented in src/qemu; documented in docs/qemu.md.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <span>

#include "bdt/event.h"
#include "bdt/finding.h"
#include "bdt/errors.h"
#include "bdt/live_stats.h"
#include "bdt/string_table.h"

namespace bdt::qemu {

// ---- command line -------------------------------------------------------------

// QEMU's "key=value,key=value" option syntax (QemuOpts): ",," is a literal
// comma; a first element without '=' takes implied_key ("guest" for -name,
// "" = none: then the element becomes key=<element>, value "on").
std::vector<std::pair<std::string, std::string>> parse_opts(std::string_view s,
                                                            std::string_view implied_key = {});

// A disk image as the command line names it.
struct DriveSpec {
  std::string path;    // filename as given ("/dev/fdset/N" when libvirt passed an fd)
  std::string option;  // "-drive", "-blockdev", "-hda", ...
  std::string format;  // "raw", "qcow2", ... ("" = not said)
  std::string cache;   // "none", "writeback", "writethrough", "directsync", "unsafe" ("" = not said)
  std::string aio;     // "threads", "native", "io_uring" ("" = not said)
  std::optional<bool> direct;  // O_DIRECT (cache.direct or implied by cache=), nullopt = not said
  bool read_only = false;
  std::string node_name;  // -blockdev node-name / -drive id
};

struct CommandLine {
  std::string vm_name;  // "" when there is no -name
  std::vector<DriveSpec> drives;
  size_t nodes_dropped = 0;  // block nodes past kMaxBlockNodes, not parsed
};

// Block nodes (-blockdev, -drive and their nested "file" objects) parsed per
// command line: any local user can start a process that looks like QEMU, and
// each node is later stat(2)ed. A real VM has a few per disk.
inline constexpr size_t kMaxBlockNodes = 4096;

// Parses a QEMU argv (argv[0] included). Never throws: unknown options are
// ignored, malformed -blockdev JSON is skipped. Linear in the size of argv.
CommandLine parse_command_line(const std::vector<std::string>& argv);

// ---- discovery ------------------------------------------------------------------

// Filesystem type name for statfs f_type ("btrfs", "ext4", "xfs", "tmpfs",
// ..., or "0x1234abcd" when unknown). ext2/3/4 share a magic: "ext4".
std::string fs_type_name(uint64_t f_type);
inline constexpr uint64_t kBtrfsMagic = 0x9123683E;

// stat + statfs of a path (follows symlinks, so "/proc/PID/fd/N" gives the
// open file). Injectable so tests can pretend a file is on btrfs.
struct FileId {
  bool ok = false;
  int error = 0;  // errno when !ok
  uint64_t dev = 0, ino = 0;
  bool regular = false;
  uint64_t fs_magic = 0;
};
using StatFn = std::function<FileId(const std::string& path)>;
FileId real_stat(const std::string& path);

struct DiscoverOptions {
  std::string proc_root = "/proc";
  StatFn stat = real_stat;  // never empty
  // Only these pids (--pid X --qemu); empty = every QEMU process.
  std::vector<uint32_t> only_pids;
  // Set by another thread to cut a scan short (checked between processes).
  const std::atomic<bool>* cancel = nullptr;
};

struct Image {
  std::string path;   // absolute path of the image file
  uint64_t dev = 0, ino = 0;  // st_dev / st_ino as stat(2) reports them (0 if unknown)
  bool on_btrfs = false;      // traced: events on (dev, ino) are labelled with this image
  std::string fs_type;        // "btrfs", "ext4", ... ("" when stat failed)
  std::string reason;         // why not traced ("not on btrfs (ext4)", "cannot stat: ..."), "" if traced
  std::string cache, aio, format;  // from the command line ("" = not said)
  std::optional<bool> direct;      // O_DIRECT: from fdinfo flags when open, else the command line
  bool read_only = false;
  bool open = false;          // the process has it open (/proc/PID/fd)
  std::string source;         // "-drive", "-blockdev", "-hda", ..., or "fd" (open, not on the command line)
};

struct Thread {
  uint32_t tid = 0;
  std::string comm;  // "qemu-system-x86", "CPU 0/KVM", "IO iothread0", "iou-wrk-812", ...
};

struct QemuProcess {
  uint32_t pid = 0;
  uint64_t start_time = 0;  // /proc/PID/stat starttime (clock ticks): tells a reused pid apart
  std::string comm;         // /proc/PID/comm
  std::string exe;          // readlink /proc/PID/exe ("" if not readable)
  std::string vm;           // VM name: -name, else "pid-<PID>"
  bool named = false;       // vm came from -name
  std::vector<std::string> argv;
  std::vector<Image> images;
  std::vector<Thread> threads;
  size_t nodes_dropped = 0;  // block nodes of its command line past kMaxBlockNodes (not looked at)

  size_t traced_images() const;
};

// True when argv[0] / exe / comm name a QEMU system emulator
// (qemu-system-*, qemu-kvm, also as a full path as libvirt starts them).
bool looks_like_qemu(std::string_view comm, std::string_view exe, std::string_view argv0);

// Every QEMU process under opts.proc_root, by pid. Processes that vanish
// while being read are skipped. Throws KernelError-free: unreadable details
// (exe, fd of another user's process) are left empty / reasoned.
std::vector<QemuProcess> discover(const DiscoverOptions& opts = {});

// One pid. Throws InputError with a one-line reason when the pid does not
// exist ("no process 123") or is not QEMU ("process 123 (bash, /usr/bin/bash)
// is not a QEMU process (qemu-system-*)").
QemuProcess inspect(uint32_t pid, const DiscoverOptions& opts = {});

// ---- watcher --------------------------------------------------------------------

struct WatchDiff {
  std::vector<QemuProcess> added;    // new since the last scan
  std::vector<QemuProcess> removed;  // gone (or the pid was reused by another process)
  std::vector<QemuProcess> changed;  // still running, but its traced image set changed (hotplug)
  bool empty() const { return added.empty() && removed.empty() && changed.empty(); }
};

// Polls /proc every interval_ms (poll(now_ms) is cheap between scans).
// In the background mode the scans (reading /proc, parsing command lines,
// stat(2) of each image) run on a thread of their own, bdt-qemu-scan, so that
// a slow scan never holds up the caller (the thread draining the ring
// buffer); poll() only takes the newest finished scan and diffs it.
class Watcher {
 public:
  explicit Watcher(DiscoverOptions opts = {}, uint64_t interval_ms = 1000, bool background = false);
  ~Watcher();  // stops the scan thread (waits at most 0.5 s for it)
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;
  // Returns what changed since the last scan, empty otherwise. In the
  // foreground: scans when interval_ms have passed (the first call always
  // scans). In the background: the first call starts the scan thread (it gets
  // the capabilities the calling thread has then); a scan is taken when one
  // has finished. The thread waits interval_ms between scans, and at least
  // twice as long as the last scan took: scanning uses at most a third of a
  // CPU whatever the machine runs.
  WatchDiff poll(uint64_t now_ms);
  WatchDiff scan();  // scan now, on this thread
  const std::map<uint32_t, QemuProcess>& current() const { return current_; }
  std::vector<uint32_t> pids() const;
  uint64_t scans() const { return scans_; }  // scans taken
  uint64_t slowest_scan_ms() const;          // background only

 private:
  struct Background;
  WatchDiff apply(std::vector<QemuProcess> found);
  DiscoverOptions opts_;
  uint64_t interval_ms_;
  std::optional<uint64_t> last_ms_;
  uint64_t scans_ = 0;
  std::map<uint32_t, QemuProcess> current_;
  std::shared_ptr<Background> bg_;  // shared with the scan thread, which may outlive a stuck join
};

// ---- attribution ------------------------------------------------------------------

// Labels events and findings with the VM name and image path. Events of a
// VM's pid get its name; an event on (dev, ino) of a traced image gets the
// image path (and the VM's name, even when a kernel worker emitted it).
// The views it writes into Event::vm/image point into its own string table:
// they stay valid as long as the Attributor lives, also after remove().
class Attributor {
 public:
  void add(const QemuProcess& p);  // add or replace (same pid)
  void remove(uint32_t pid);
  // A watcher's diff: removed first (a reused pid is removed, then added).
  void update(const WatchDiff& d);
  void apply(Event& ev) const;     // no allocation
  void apply(Finding& f) const;
  // The labels apply() would give an event of pid on (dev, ino): vm "" when
  // neither the pid nor the file belongs to a VM.
  bool lookup(uint32_t pid, uint64_t dev, uint64_t ino, std::string_view& vm,
              std::string_view& image) const;
  bool knows_pid(uint32_t pid) const { return by_pid_.count(pid) != 0; }
  size_t vms() const { return by_pid_.size(); }
  size_t strings() const { return strings_.size(); }

 private:
  struct ImageRef {
    std::string_view vm, path;
    uint32_t pid;
  };
  struct DevIno {
    uint64_t dev, ino;
    bool operator==(const DevIno&) const = default;
  };
  struct DevInoHash {
    size_t operator()(const DevIno& k) const { return std::hash<uint64_t>()(k.dev * 0x9E3779B97F4A7C15ull ^ k.ino); }
  };
  StringTable strings_;
  std::unordered_map<uint32_t, std::string_view> by_pid_;
  std::unordered_map<DevIno, ImageRef, DevInoHash> by_file_;
};

// ---- statistics --------------------------------------------------------------------

// Latency histogram with log2 buckets: bucket 0 holds 0 and 1 ns, bucket i
// (i >= 1) holds [2^i, 2^(i+1)) ns. Accepts single values or pre-bucketed
// counts (as the kernel will provide them).
class Log2Histogram {
 public:
  static constexpr int kBuckets = 64;
  static int bucket_of(uint64_t v);
  static uint64_t bucket_low(int b);   // smallest value in bucket b
  static uint64_t bucket_high(int b);  // largest value in bucket b
  void add(uint64_t v);
  void add_bucket(int b, uint64_t n);  // pre-bucketed; b out of range is clamped
  // Pre-bucketed counts (counts[i] for bucket i) whose largest value is
  // max_ns (exact when known, else a bound): max() becomes max(max(), max_ns).
  // sum_ns: the samples' exact sum when known (the kernel keeps one); without
  // it sum_known() becomes false.
  void add_counts(std::span<const uint64_t> counts, uint64_t max_ns,
                  std::optional<uint64_t> sum_ns = std::nullopt);
  void merge(const Log2Histogram& o);
  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }  // exact for add(); bucket high for add_bucket(); as given to add_counts()
  // Sum of all samples (ns); exact only while sum_known() (add(), and add_counts() given a sum).
  uint64_t sum() const { return sum_; }
  bool sum_known() const { return sum_known_; }
  // Value at or below which fraction q (0..1) of the samples lie: the upper
  // bound of the bucket holding that rank (never above max()); 0 when empty.
  uint64_t percentile(double q) const;
  const std::array<uint64_t, kBuckets>& buckets() const { return b_; }

 private:
  uint64_t sum_ = 0;
  bool sum_known_ = true;
  std::array<uint64_t, kBuckets> b_{};
  uint64_t count_ = 0, max_ = 0;
};

struct ImageStats {
  uint64_t reads = 0, writes = 0;            // DIO requests completed (dio_end, direction known)
  uint64_t read_bytes = 0, write_bytes = 0;  // bytes done (from dio_end ret)
  uint64_t errors = 0;                       // dio_end with ret < 0 or error != 0 (but -EAGAIN)
  uint64_t again = 0;                        // ended -EAGAIN: an io_uring/RWF_NOWAIT attempt that
                                             // io_uring retries from an io-wq worker (not an error,
                                             // not a request, no latency sample)
  uint64_t short_writes = 0;                 // write dio_end with 0 <= done < count
  uint64_t buffered_fallback = 0;            // dio-buffered-fallback findings (once per image and process)
  uint64_t buffered_extents = 0;             // oe_add without DIRECT: data written through the page cache
  uint64_t buffered_bytes = 0;               //   (e.g. O_DIRECT writes btrfs sent down the buffered path)
  std::map<std::string, uint64_t> findings;  // by detector
  Log2Histogram read_lat, write_lat;         // ns
  void merge(const ImageStats& o);
};

struct StatsRow {
  std::string vm, image;  // image "" = the VM's I/O on files that are not its images
  ImageStats s;
};

enum class SortBy { Vm, Requests };

struct StatsCounters {
  uint64_t inflight = 0, inflight_cap = 0;
  uint64_t evicted = 0;        // in-flight requests dropped to stay within the cap
  uint64_t unmatched_ends = 0; // dio_end without a dio_begin (started before tracing, evicted)
  // Kernel latency histograms (Tracker with a latency source):
  uint64_t kernel_hist_overflow = 0;  // samples the kernel dropped: its map was full
  uint32_t kernel_hist_capacity = 0;  // keys (process, file, direction) the map holds
  uint64_t kernel_hist_used = 0;      // keys in use at the last read
  uint64_t kernel_hist_unattributed = 0;  // samples of a process/file no VM claims (dropped)
};

// Per-VM, per-image statistics from attributed events (events without a vm
// are ignored). This is the object exporters read (the text/JSON tables,
// Prometheus): total() and take_interval() return plain StatsRow values
// (vm, image, ImageStats: counters and Log2Histogram latencies in ns), one per
// (VM, image) seen, image "" = the VM's I/O on files that are not its images;
// counters() tells how well the bounded state coped. Request counts and
// latency samples come either from pairing dio_begin/dio_end here (the
// default) or, with set_kernel_counts(true), only from the kernel's per-file
// counts (add_kernel_counts(), add_kernel_io(), add_kernel_buffered(): see
// Tracker::harvest_latency), which count every request whether or not the
// tracer made a record of it. Keeps a cumulative table (the summary) and an interval table
// (reset by take_interval(), for --interval). Memory is bounded: in-flight
// requests live in a fixed table of max_inflight slots; when a slot set is
// full the oldest request is evicted (counted).
class StatsCollector {
 public:
  explicit StatsCollector(size_t max_inflight = 16384);
  void on_event(const Event& ev);
  void on_finding(const Finding& f);
  // A latency the kernel measured (pre-bucketed histograms use add_buckets).
  void on_latency(std::string_view vm, std::string_view image, bool write, uint64_t ns);
  void add_buckets(std::string_view vm, std::string_view image, bool write, int bucket,
                   uint64_t n);
  void add_kernel_counts(std::string_view vm, std::string_view image, bool write,
                         std::span<const uint64_t> counts, uint64_t max_ns, uint64_t sum_ns);
  // The kernel's request counts of a file (deltas since the last harvest).
  void add_kernel_io(std::string_view vm, std::string_view image, bool write, uint64_t requests,
                     uint64_t bytes, uint64_t errors, uint64_t again, uint64_t short_writes);
  // Ordered extents the kernel saw written through the page cache on an image.
  void add_kernel_buffered(std::string_view vm, std::string_view image, uint64_t extents,
                           uint64_t bytes);
  // true: on_event() no longer counts requests, bytes, latency or buffered
  // extents (the kernel does); findings are still counted from on_finding().
  void set_kernel_counts(bool on) { kernel_counts_ = on; }
  bool kernel_counts() const { return kernel_counts_; }
  std::vector<StatsRow> total(SortBy by = SortBy::Vm) const;
  std::vector<StatsRow> take_interval(SortBy by = SortBy::Vm);  // and reset the interval
  StatsCounters counters() const;

 private:
  struct Slot {
    bool used = false, aio = false, write = false;
    uint32_t tid = 0, pid = 0;
    uint64_t dev = 0, ino = 0, pos = 0, count = 0, done_before = 0, ts = 0;
    std::string_view vm, image;
  };
  struct Key {
    std::string_view vm, image;
  };
  struct KeyLess {
    using is_transparent = void;
    bool operator()(const std::pair<std::string, std::string>& a,
                    const std::pair<std::string, std::string>& b) const { return a < b; }
    bool operator()(const Key& a, const std::pair<std::string, std::string>& b) const {
      return std::pair(a.vm, a.image) < std::pair<std::string_view, std::string_view>(b.first, b.second);
    }
    bool operator()(const std::pair<std::string, std::string>& a, const Key& b) const {
      return std::pair<std::string_view, std::string_view>(a.first, a.second) < std::pair(b.vm, b.image);
    }
  };
  using Table = std::map<std::pair<std::string, std::string>, ImageStats, KeyLess>;
  template <class F> void update(std::string_view vm, std::string_view image, F&& f);
  Slot* find_sync(uint32_t tid, uint64_t dev, uint64_t ino);
  Slot* find_aio(uint32_t pid, uint64_t dev, uint64_t ino, uint64_t pos);
  void insert(const Slot& s, uint64_t hash);
  static std::vector<StatsRow> rows(const Table& t, SortBy by);

  Table total_, interval_;
  std::vector<Slot> slots_;  // set-associative: kWays slots per set
  size_t sets_ = 0;
  uint64_t inflight_ = 0, evicted_ = 0, unmatched_ = 0;
  bool kernel_counts_ = false;
};

// Text table (aligned columns, latencies in human units) for --interval and
// the summary. title "" = no title line.
std::string render_text(const std::vector<StatsRow>& rows, std::string_view title = {});
// One JSON object: {"type":"vm_stats", "ts_ns"?, "wall_time"?, "interval_s"?: ..., "vms":[{vm, image,
// reads, ...}]}. ts_ns (CLOCK_MONOTONIC, the events' clock; 0: omitted) is when the numbers were
// taken; wall_time its UTC RFC 3339 form when mono_to_realtime_ns is known.
// interval_s < 0: omitted (summary).
// With c: also "latency_hist":{"source":"kernel"|"userspace","keys","capacity","dropped"}.
std::string render_json(const std::vector<StatsRow>& rows, double interval_s = -1,
                        const StatsCounters* c = nullptr, uint64_t ts_ns = 0, int64_t mono_to_realtime_ns = 0);
// A list of the VMs found (for the startup message / `--qemu` with nothing traced):
// "VM web-1 (pid 1001, 4 threads): 2 of 4 images traced" then one line per image.
std::string describe(const std::vector<QemuProcess>& vms);
// One line per change: "VM db (pid 2001) started: 1 of 1 images traced",
// "VM db (pid 2001) exited", "VM db (pid 2001) changed: 2 of 2 images traced".
std::string describe(const WatchDiff& d);

// ---- the whole of --qemu for the CLI ------------------------------------------------

// Watcher + Attributor + StatsCollector, driven from the trace loop:
//   Tracker t({...});                       // validates only_pids (InputError)
//   diff = t.poll(now_ms)  -> update the kernel pid filter, print describe(diff)
//   t.on_event(ev)         -> labels ev (vm/image) and counts it
//   t.on_finding(f)        -> labels f and counts it
//   t.set_latency_source([&]{ return session->latency(); })  // kernel histograms
//   t.harvest_latency()    -> before take_interval() / total()
//   t.stats().take_interval() / total() -> render_text / render_json
// A VM that exits is harvested one last time inside poll(), before its labels
// go; the caller then removes its pid from the kernel (live::Session::remove_pid
// deletes its histograms there).
class Tracker {
 public:
  struct Options {
    DiscoverOptions discover;  // discover.only_pids: --pid X --qemu
    uint64_t poll_ms = 1000;
    size_t max_inflight = 16384;
    bool background = false;   // Watcher's background mode (trace: off the ring-buffer thread)
  };
  // Throws InputError when an only_pids entry is not a QEMU process.
  explicit Tracker(Options o);
  // Rescans /proc when poll_ms have passed (the first call always scans),
  // updates the attributor, and returns what changed.
  WatchDiff poll(uint64_t now_ms);
  void on_event(Event& ev);
  void on_finding(Finding& f);
  // Counts and latency from the kernel's per-file counts instead of
  // userspace pairing.
  void set_latency_source(std::function<LatencyHists()> src);
  // Reads the source and adds what each key's counts and histogram gained
  // since the last read to the VM's (image's) stats. No-op without a source.
  void harvest_latency();
  // Harvest from an explicit snapshot (what harvest_latency does with the source's answer).
  void ingest_latency(const LatencyHists& h);
  StatsCounters counters() const;  // stats().counters() plus the kernel histogram counters
  std::vector<uint32_t> pids() const { return watcher_.pids(); }
  uint64_t scans() const { return watcher_.scans(); }  // 0: no scan taken yet (background)
  uint64_t slowest_scan_ms() const { return watcher_.slowest_scan_ms(); }
  const std::map<uint32_t, QemuProcess>& vms() const { return watcher_.current(); }
  const Attributor& attributor() const { return attr_; }
  StatsCollector& stats() { return stats_; }
  const StatsCollector& stats() const { return stats_; }

 private:
  struct HistKey {
    uint32_t pid;
    bool write, buffered;
    uint64_t dev, ino;
    auto operator<=>(const HistKey&) const = default;
  };
  struct HistSeen {
    std::vector<uint64_t> buckets;
    uint64_t max_ns = 0, sum_ns = 0;
    uint64_t requests = 0, bytes = 0, errors = 0, again = 0, short_writes = 0;
  };
  Watcher watcher_;
  Attributor attr_;
  StatsCollector stats_;
  std::function<LatencyHists()> latency_src_;
  std::map<HistKey, HistSeen> hist_seen_;
  uint64_t hist_overflow_ = 0, hist_unattributed_ = 0, hist_used_ = 0;
  uint32_t hist_capacity_ = 0;
};

}  // namespace bdt::qemu
