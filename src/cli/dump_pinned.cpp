// `btrfs-dio-trace dump --pin-dir DIR [--release]`: the in-kernel flight
// recorder pinned by `trace --pin-dir` (docs/flight-recorder.md). Prints the
// recorded events (every CPU, merged by time, wall-clock times) through the
// same decoder and sinks as live tracing; like `dump FILE` it runs no
// detectors (pipe `--format json` into `replay -` for findings).
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/pipeline.h"
#include "live/decode.h"
#include "live/flight_recorder.h"
#include "loader/kernel_btf.h"
#include "live/bpf_session.h"
#include "sinks/chrome.h"

namespace bdt::cli {

int run_dump_pinned(const DumpArgs& a) {
  live::check_privileges();
  if (a.release) {
    for (const auto& line : live::release_pinned(a.pin_dir))
      fmt::print(stderr, "btrfs-dio-trace: {}\n", line);
    return 0;
  }
  const auto d = live::read_pinned(a.pin_dir);
  // Flag words carry this boot's kernel bit numbers (read_pinned checked the boot).
  loader::KernelBtf btf;
  const auto flags = live::flag_maps_from_btf(btf);
  const auto& h = d.header;
  TimeBase tb{0, h.mono_to_realtime_ns, a.wall_time};
  std::unique_ptr<Sink> sink = a.format == Format::Json     ? make_json_sink(stdout, h, true)
                              : a.format == Format::Chrome ? make_chrome_sink(stdout, h)
                                                           : make_text_sink(stdout, tb, false);
  uint64_t undecodable = 0;
  Event ev;
  for (const auto& r : d.scan.records) {
    if (!live::decode_raw(r.ev, flags, ev)) {
      ++undecodable;
      continue;
    }
    sink->event(ev);
  }
  if (a.format == Format::Chrome) sink->summary(Summary{});
  sink->flush();

  // What was read, on stderr (stdout stays machine-readable).
  const auto& m = d.meta;
  fmt::print(stderr, "btrfs-dio-trace: flight recorder {}: tracer pid {} ({}), started {}, kernel {}, {} slots per CPU\n",
             a.pin_dir, m.tracer_pid, d.tracer_alive ? "running" : "gone",
             format_wall_utc(static_cast<int64_t>(m.start_realtime_ns)), h.kernel.release, m.slots_per_cpu);
  fmt::print(stderr, "btrfs-dio-trace: programs {}\n",
             d.link_pins.empty() ? std::string("detached (recording stopped)")
                                 : fmt::format("attached ({} pinned links): still recording", d.link_pins.size()));
  for (size_t cpu = 0; cpu < d.scan.kept_per_cpu.size(); ++cpu) {
    const uint64_t rec = cpu < d.recorded_per_cpu.size() ? d.recorded_per_cpu[cpu] : 0;
    if (!rec && !d.scan.kept_per_cpu[cpu]) continue;
    const uint64_t lost = cpu < d.lost_per_cpu.size() ? d.lost_per_cpu[cpu] : 0;
    fmt::print(stderr, "  cpu {}: {} events kept of {} recorded{}{}\n", cpu, d.scan.kept_per_cpu[cpu], rec,
               rec > m.slots_per_cpu ? " (wrapped: the oldest were overwritten)" : "",
               lost ? fmt::format("; {} not delivered live (ring buffer full or no reader)", lost) : "");
  }
  if (d.scan.torn)
    fmt::print(stderr, "btrfs-dio-trace: {} slots skipped: being written while read\n", d.scan.torn);
  if (undecodable) fmt::print(stderr, "btrfs-dio-trace: {} records of an unknown type skipped\n", undecodable);
  return 0;
}

}  // namespace bdt::cli
