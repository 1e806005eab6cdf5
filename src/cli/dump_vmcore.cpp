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

#include <cerrno>
#include <cstring>

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
  const auto& r = vs.recorders.front();
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
    if (!live::decode_raw(rec.ev, flags, ev)) {
      ++undecodable;
      continue;
    }
    sink->event(ev);
  }
  if (a.format == Format::Chrome) sink->summary(Summary{});
  sink->flush();

  fmt::print(stderr, "btrfs-dio-trace: flight recorder in {}: tracer pid {}, started {}, kernel {}, boot {}, "
                     "{} slots per CPU x {} CPUs, at kernel address {:#x} (found via {}, {}-level paging)\n",
             a.vmcore, m.tracer_pid, format_wall_utc(static_cast<int64_t>(m.start_realtime_ns)),
             cstr(m.release, sizeof m.release), cstr(m.boot_id, sizeof m.boot_id), m.slots_per_cpu, m.ncpus,
             r.map_vaddr, vs.root_source, vs.paging_levels);
  for (size_t cpu = 0; cpu < r.scan.kept_per_cpu.size(); ++cpu) {
    const uint64_t newest = r.scan.newest_per_cpu[cpu];
    if (!newest) continue;
    fmt::print(stderr, "  cpu {}: {} events recovered of {} recorded{}\n", cpu, r.scan.kept_per_cpu[cpu], newest,
               newest > m.slots_per_cpu ? fmt::format(" (wrapped: the newest {} kept)", m.slots_per_cpu) : "");
  }
  if (r.scan.torn)
    fmt::print(stderr, "btrfs-dio-trace: {} slots dropped: torn (being written when the kernel stopped) or damaged\n",
               r.scan.torn);
  if (r.pages_missing)
    fmt::print(stderr, "btrfs-dio-trace: {} of the recorder's {} pages are not in the dump (their slots read as empty)\n",
               r.pages_missing, r.pages);
  if (undecodable) fmt::print(stderr, "btrfs-dio-trace: {} records of an unknown type skipped\n", undecodable);
  if (vs.duplicate_metas)
    fmt::print(stderr, "btrfs-dio-trace: {} other copies of a recorder description differ from the one used (stale "
                       "copies in other memory)\n",
               vs.duplicate_metas);
  if (vs.recorders.size() > 1)
    fmt::print(stderr, "btrfs-dio-trace: {} more recorders in the dump (another tracer's); printed: the one with "
                       "the most events\n",
               vs.recorders.size() - 1);
  return 0;
}

}  // namespace bdt::cli
