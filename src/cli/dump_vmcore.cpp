// `btrfs-dio-trace dump --vmcore FILE`: the flight recorder of a kernel that
// crashed (or was stopped), read out of its memory dump (src/live/vmcore.h,
// docs/flight-recorder.md). Prints the recorded events (every CPU, merged by
// time, wall-clock times) through the same decoder and sinks as `dump
// --pin-dir`; on stderr what was found and how many slots per CPU were
// recovered or dropped. Like every dump it runs no detectors (pipe --format
// json into `replay -`).
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "cli/commands.h"
#include "cli/pipeline.h"
#include "live/decode.h"
#include "live/vmcore.h"
#include "sinks/chrome.h"

namespace bdt::cli {

namespace {

std::string cstr(const char* p, size_t n) { return std::string(p, strnlen(p, n)); }

struct Mapped {
  const uint8_t* data = nullptr;
  size_t size = 0;
  explicit Mapped(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw InputError(fmt::format("--vmcore {}: {}", path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
      ::close(fd);
      throw InputError(fmt::format("--vmcore {}: not a regular, non-empty file", path));
    }
    size = static_cast<size_t>(st.st_size);
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw InputError(fmt::format("--vmcore {}: cannot map it: {}", path, std::strerror(errno)));
    data = static_cast<const uint8_t*>(p);
  }
  ~Mapped() { ::munmap(const_cast<uint8_t*>(data), size); }
  Mapped(const Mapped&) = delete;
  Mapped& operator=(const Mapped&) = delete;
};

}  // namespace

int run_dump_vmcore(const DumpArgs& a) {
  live::VmcoreScan vs;
  {
    Mapped f(a.vmcore);
    vs = live::scan_vmcore(f.data, f.size);
  }
  if (vs.recorders.empty())
    throw InputError(fmt::format("--vmcore {}: {} ({} MiB of memory searched)", a.vmcore, vs.problem, vs.bytes >> 20));
  size_t pick = 0;
  if (!a.instance.empty()) {
    uint64_t want = 0;
    try {
      size_t used = 0;
      want = std::stoull(a.instance, &used, 16);
      if (used != a.instance.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      throw InputError(fmt::format("--instance {}: not a hex instance id", a.instance));
    }
    auto it = std::find_if(vs.recorders.begin(), vs.recorders.end(),
                           [&](const live::VmcoreRecorder& x) { return x.instance == want; });
    if (it == vs.recorders.end())
      throw InputError(fmt::format("--instance {}: no such recorder in {} ({} found)", a.instance, a.vmcore,
                                   vs.recorders.size()));
    pick = static_cast<size_t>(it - vs.recorders.begin());
  }
  const auto& r = vs.recorders[pick];
  const auto& m = r.meta;
  const auto& h = r.header;
  TimeBase tb{0, h.mono_to_realtime_ns, a.wall_time};
  std::unique_ptr<Sink> sink = a.format == Format::Json     ? make_json_sink(stdout, h, true)
                              : a.format == Format::Chrome ? make_chrome_sink(stdout, h)
                                                           : make_text_sink(stdout, tb, false);
  // Flag words carry the recording kernel's bit numbers, which only its BTF
  // names: not in the dump's reach, so they are left undecoded.
  const live::FlagMaps flags;
  uint64_t undecodable = 0;
  Event ev;
  for (const auto& rec : r.scan.records) {
    if (!live::decode_raw(rec.ev, flags, ev) || !wrapping_range(ev).empty()) {
      ++undecodable;
      continue;
    }
    sink->event(ev);
  }
  if (a.format == Format::Chrome) sink->summary(Summary{});
  sink->flush();

  if (r.has_meta)
    fmt::print(stderr, "btrfs-dio-trace: flight recorder {:016x} in {}: tracer pid {}, started {}, kernel {}, boot {}, "
                       "{} slots per CPU x {} CPUs\n",
               r.instance, a.vmcore, m.tracer_pid, format_wall_utc(static_cast<int64_t>(m.start_realtime_ns)),
               cstr(m.release, sizeof m.release), cstr(m.boot_id, sizeof m.boot_id), m.slots_per_cpu, m.ncpus);
  else
    fmt::print(stderr, "btrfs-dio-trace: flight recorder {:016x} in {}: its description is not in the dump (times are "
                       "CLOCK_MONOTONIC, not wall-clock; kernel and hooks unknown; every slot found kept)\n",
               r.instance, a.vmcore);
  for (size_t cpu = 0; cpu < r.scan.kept_per_cpu.size(); ++cpu) {
    const uint64_t newest = r.scan.newest_per_cpu[cpu];
    if (!newest) continue;
    const uint64_t window = r.has_meta ? std::min<uint64_t>(newest, m.slots_per_cpu) : newest;
    const uint64_t kept = r.scan.kept_per_cpu[cpu];
    fmt::print(stderr, "  cpu {}: {} events recovered of {} recorded{}{}\n", cpu, kept, newest,
               r.has_meta && newest > m.slots_per_cpu ? fmt::format(" (wrapped: the newest {} kept)", m.slots_per_cpu)
                                                      : "",
               kept < window ? fmt::format(", {} of the newest {} missing (not in the dump, or dropped)", window - kept,
                                           window)
                             : "");
  }
  if (r.scan.torn + r.scan.damaged)
    fmt::print(stderr, "btrfs-dio-trace: {} slots dropped: {} torn (being written when the kernel stopped), {} damaged "
                       "(failed their check)\n",
               r.scan.torn + r.scan.damaged, r.scan.torn, r.scan.damaged);
  if (r.scan.stale) fmt::print(stderr, "btrfs-dio-trace: {} stale slots (older than the ring's window) skipped\n", r.scan.stale);
  if (undecodable) fmt::print(stderr, "btrfs-dio-trace: {} records skipped (of an unknown type, or with a byte range past 2^64)\n", undecodable);
  if (vs.duplicate_metas)
    fmt::print(stderr, "btrfs-dio-trace: {} other valid copies of a recorder description differ from the one used\n",
               vs.duplicate_metas);
  if (vs.damaged_metas)
    fmt::print(stderr, "btrfs-dio-trace: {} recorder descriptions failed their check (damaged or partial copies), "
                       "ignored\n",
               vs.damaged_metas);
  if (vs.other_build_metas)
    fmt::print(stderr, "btrfs-dio-trace: {} recorder descriptions of another btrfs-dio-trace build ignored\n",
               vs.other_build_metas);
  if (vs.unattributed)
    fmt::print(stderr, "btrfs-dio-trace: {} torn or damaged slots of no recorder found\n", vs.unattributed);
  for (size_t i = 0; i < vs.recorders.size(); ++i) {
    if (i == pick) continue;
    const auto& o = vs.recorders[i];
    fmt::print(stderr, "btrfs-dio-trace: another recorder in the dump: --instance {:016x}: {} events{}\n", o.instance,
               o.scan.records.size(),
               o.has_meta ? fmt::format(", tracer pid {}, started {}", o.meta.tracer_pid,
                                        format_wall_utc(static_cast<int64_t>(o.meta.start_realtime_ns)))
                          : std::string(", no description in the dump"));
  }
  return 0;
}

}  // namespace bdt::cli
