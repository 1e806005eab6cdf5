// `btrfs-dio-trace dump --pin-dir DIR [--release | --post-mortem DEST]`: the
// in-kernel flight recorder pinned by `trace --pin-dir`
// (docs/flight-recorder.md). Prints the recorded events (every CPU, merged by
// time, wall-clock times) through the same decoder and sinks as live tracing;
// like `dump FILE` it runs no detectors (pipe `--format json` into `replay -`
// for findings). --post-mortem saves it as a record file and releases it: what
// the service runs before each start (docs/deployment.md).
#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>

#include "cli/commands.h"
#include "cli/pipeline.h"
#include "live/decode.h"
#include "live/flight_recorder.h"
#include "live/session.h"
#include "loader/gather.h"
#include "loader/kernel_btf.h"
#include "sinks/chrome.h"

namespace bdt::cli {

namespace {

// Decodes every recorded event (all CPUs, time order) into `out`; returns the
// records skipped: of an unknown type, or corrupt (a byte range past 2^64).
uint64_t decode_recorded(const live::PinnedDump& d, const std::function<void(const Event&)>& out) {
  // Flag words carry this boot's kernel bit numbers (read_pinned checked the boot).
  loader::KernelBtf btf;
  const auto flags = live::flag_maps_from(loader::fact_enumerators(btf));
  uint64_t undecodable = 0;
  Event ev;
  for (const auto& r : d.scan.records) {
    if (!live::decode_raw(r.ev, flags, ev) || !wrapping_range(ev).empty()) {
      ++undecodable;
      continue;
    }
    out(ev);
  }
  return undecodable;
}

// What was read, on stderr (stdout stays machine-readable).
void describe(const std::string& dir, const live::PinnedDump& d, uint64_t undecodable) {
  const auto& m = d.meta;
  fmt::print(stderr, "btrfs-dio-trace: flight recorder {}: tracer pid {} ({}), started {}, kernel {}, {} slots per CPU\n",
             dir, m.tracer_pid, d.tracer_alive ? "running" : "gone",
             format_wall_utc(static_cast<int64_t>(m.start_realtime_ns)), d.header.kernel.release, m.slots_per_cpu);
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
  if (d.scan.damaged)
    fmt::print(stderr, "btrfs-dio-trace: {} slots dropped: damaged (failed their check)\n", d.scan.damaged);
  if (undecodable) fmt::print(stderr, "btrfs-dio-trace: {} records skipped (of an unknown type, or with a byte range past 2^64)\n", undecodable);
}

// The post-mortems in DEST, oldest first (their names sort by the start time of their run).
std::vector<std::string> post_mortems(const std::string& dest) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dest.c_str())) {
    while (auto* e = readdir(d)) {
      std::string_view n = e->d_name;
      if (n.starts_with("post-mortem-") && n.ends_with(".bdt")) out.emplace_back(n);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// dump --pin-dir DIR --post-mortem DEST: save the previous run's recorder,
// then release it, so that a new `trace --pin-dir DIR` can start. A recorder
// that cannot be saved (another build's, a full disk) is released anyway and
// the reason said: a service must come back up.
int run_post_mortem(const DumpArgs& a) {
  ::umask(077);  // what it writes is private: other users' processes, files and VM names
  const auto ps = live::summarize_pinned(a.pin_dir);
  if (!ps) {
    fmt::print(stderr, "btrfs-dio-trace: no flight recorder in {}: nothing to save\n", a.pin_dir);
    return 0;
  }
  if (ps->meta_ok && ps->tracer_alive)
    throw InputError(fmt::format("--post-mortem: the tracer that pinned {} (pid {}) is still running: stop it first",
                                 a.pin_dir, ps->meta.tracer_pid));
  std::string saved;
  try {
    if (!ps->meta_ok) throw InputError(ps->problem);
    const auto d = live::read_pinned(a.pin_dir);
    // DEST and any missing parent, private (the events name other users' processes and files).
    for (size_t at = 1; at != std::string::npos;) {
      at = a.post_mortem.find('/', at + 1);
      const std::string part = a.post_mortem.substr(0, at);
      if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
        throw InputError(fmt::format("cannot create {}: {}", part, std::strerror(errno)));
    }
    const std::string start = format_wall_utc(static_cast<int64_t>(d.meta.start_realtime_ns));  // 2026-11-22T04:50:01.123456Z
    std::string stamp;
    for (char c : start.substr(0, 19))
      if (c != '-' && c != ':') stamp += c;
    const std::string path = fmt::format("{}/post-mortem-{}Z-pid{}.bdt", a.post_mortem, stamp, d.meta.tracer_pid);
    auto w = create_record(path, d.header);
    uint64_t n = 0;
    const uint64_t undecodable = decode_recorded(d, [&](const Event& ev) {
      w->write(ev);
      ++n;
    });
    w->flush();
    w.reset();
    describe(a.pin_dir, d, undecodable);
    fmt::print(stderr, "btrfs-dio-trace: post-mortem: {} events of the run that started {} saved to {} (read it "
                       "with `btrfs-dio-trace replay {}`)\n",
               n, start, path, path);
    saved = path;
  } catch (const InputError& e) {
    fmt::print(stderr, "btrfs-dio-trace: post-mortem: the recorder in {} cannot be saved: {}; releasing it anyway\n",
               a.pin_dir, e.what());
  } catch (const OutputError& e) {  // the record writer: ENOSPC, EIO
    fmt::print(stderr, "btrfs-dio-trace: post-mortem: the recorder in {} cannot be saved: {}; releasing it anyway\n",
               a.pin_dir, e.what());
  }
  for (const auto& line : live::release_pinned(a.pin_dir)) fmt::print(stderr, "btrfs-dio-trace: {}\n", line);
  // Keep the newest --keep post-mortems.
  auto all = post_mortems(a.post_mortem);
  for (size_t i = 0; i + a.keep < all.size(); ++i) {
    const auto p = a.post_mortem + "/" + all[i];
    if (::unlink(p.c_str()) == 0) fmt::print(stderr, "btrfs-dio-trace: post-mortem: removed the old {}\n", p);
  }
  return 0;
}

}  // namespace

int run_dump_pinned(const DumpArgs& a) {
  live::check_privileges();
  if (a.release) {
    for (const auto& line : live::release_pinned(a.pin_dir))
      fmt::print(stderr, "btrfs-dio-trace: {}\n", line);
    return 0;
  }
  if (!a.post_mortem.empty()) return run_post_mortem(a);
  const auto d = live::read_pinned(a.pin_dir);
  const auto& h = d.header;
  TimeBase tb{0, h.mono_to_realtime_ns, a.wall_time};
  std::unique_ptr<Sink> sink = a.format == Format::Json     ? make_json_sink(stdout, h, true)
                              : a.format == Format::Chrome ? make_chrome_sink(stdout, h)
                                                           : make_text_sink(stdout, tb, false);
  const uint64_t undecodable = decode_recorded(d, [&](const Event& ev) { sink->event(ev); });
  if (a.format == Format::Chrome) sink->summary(Summary{});
  sink->flush();
  describe(a.pin_dir, d, undecodable);
  return 0;
}

}  // namespace bdt::cli
