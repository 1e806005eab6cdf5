// btrfs-dio-trace command line: parses arguments (CLI11), dispatches, and maps
// errors to the exit-status contract: 0 ok, 1 usage/input error, 2 kernel or
// permission problem.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstring>
#include <string_view>

#include "bdt/live.h"
#include "bdt/trace_reader.h"
#include "cli/commands.h"
#include "live/flight_recorder.h"

using namespace bdt;
using namespace bdt::cli;
using bdt::live::recorder_slot_bytes;

namespace {

Format format_from(const std::string& s) {
  if (s == "json") return Format::Json;
  if (s == "chrome") return Format::Chrome;
  return Format::Text;
}
Backend backend_from(const std::string& s) {
  if (s == "fentry") return Backend::Fentry;
  if (s == "kprobe") return Backend::Kprobe;
  if (s == "tracepoint") return Backend::Tracepoint;
  return Backend::Auto;
}
const std::vector<std::string> kFormats{"text", "json"};
const std::vector<std::string> kFormatsChrome{"text", "json", "chrome"};
const std::vector<std::string> kBackends{"auto", "fentry", "kprobe", "tracepoint"};

// Messages are printed with one "btrfs-dio-trace: " prefix.
std::string_view strip_prefix(std::string_view m) {
  constexpr std::string_view p = "btrfs-dio-trace ";
  constexpr std::string_view q = "btrfs-dio-trace: ";
  if (m.starts_with(q)) m.remove_prefix(q.size());
  else if (m.starts_with(p)) m.remove_prefix(p.size());
  return m;
}

bool is_subcommand(std::string_view s) {
  return s == "trace" || s == "doctor" || s == "replay" || s == "dump" || s == "demo";
}

}  // namespace

int main(int argc, char** argv) {
  // `btrfs-dio-trace [trace] ...`: the trace subcommand is the default.
  std::vector<std::string> args(argv, argv + argc);
  bool top_help = argc >= 2 && (args[1] == "--help" || args[1] == "-h");
  if (!top_help && (argc < 2 || !is_subcommand(args[1]))) args.insert(args.begin() + 1, "trace");

  CLI::App app{
      "btrfs-dio-trace: live tracing and diagnostics for btrfs direct I/O.\n"
      "Watches O_DIRECT I/O on btrfs and flags known failure patterns as they happen."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "btrfs-dio-trace 0.1.0");

  TraceArgs ta;
  auto* trace = app.add_subcommand("trace", "Trace live (the default command)");
  trace->add_option("--pid", ta.live.pids, "Trace only this process (all its threads); repeatable");
  trace->add_option("--comm", ta.live.comms, "Trace only tasks with this exact name; repeatable");
  trace->add_option("--cgroup", ta.live.cgroup,
                    "Trace only tasks in this cgroup v2 directory or below (e.g. a libvirt machine scope)");
  trace->add_option("--mount", ta.live.mount,
                    "Trace only the btrfs filesystem this path is on (all its subvolumes)");
  std::string trace_backend = "auto", trace_format = "text";
  trace->add_option("--backend", trace_backend, "auto|fentry|kprobe|tracepoint")
      ->check(CLI::IsMember(kBackends));
  trace->add_flag("--events", ta.events, "Also print every event");
  trace->add_flag("--all-events", ta.live.all_events,
                  "Make every record the hooks can produce, also those no detector needs "
                  "(clean ordered-extent completions, every get_extent lookup); costs more");
  trace->add_option("--format", trace_format, "text|json")->check(CLI::IsMember(kFormats));
  trace->add_flag("--qemu", ta.qemu,
                  "Trace every QEMU process (or the --pid ones), labelled with VM name and disk image");
  trace->add_option("--interval", ta.interval_s, "With --qemu: print per-VM statistics every SEC seconds")
      ->check(CLI::PositiveNumber);
  std::string trace_sort = "vm";
  trace->add_option("--sort", trace_sort, "Per-VM tables sorted by: vm|requests")
      ->check(CLI::IsMember({"vm", "requests"}))
      ->each([&](const std::string& v) { ta.sort_requests = v == "requests"; });
  trace->add_option("--duration", ta.duration_s, "Stop after SEC seconds")
      ->check(CLI::PositiveNumber);
  trace->add_option("--stall-threshold", ta.stall_threshold_s,
                    "Seconds before an in-flight self-mapped DIO write counts as stuck (default 30)")
      ->check(CLI::PositiveNumber);
  trace->add_option("--record", ta.record, "Save every event to FILE (binary, for replay/dump)");
  trace->add_option("--snapshot-dir", ta.snapshot_dir,
                    "When a finding fires, write the last seconds of events and the finding to a "
                    "JSON-lines file in DIR (read by replay/dump)");
  trace->add_option("--snapshot-seconds", ta.snapshot_seconds,
                    "Seconds of events before the finding a snapshot holds (default 5)")
      ->check(CLI::PositiveNumber);
  trace->add_option("--snapshot-max", ta.snapshot_max, "Most snapshot files written (default 20)")
      ->check(CLI::Range(1u, 100000u));
  trace->add_option("--snapshot-interval", ta.snapshot_interval_s,
                    "At most one snapshot per detector in this many seconds (default 10)")
      ->check(CLI::NonNegativeNumber);
  trace->add_option("--snapshot-max-mb", ta.snapshot_max_mib,
                    "Size cap of one snapshot file in MiB; the oldest events are left out beyond it (default 64)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{65536}));
  trace->add_option("--snapshot-events", ta.snapshot_events,
                    "Most events kept for snapshots (default 1000000)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100'000'000}));
  trace->add_option("--pin-dir", ta.live.pin_dir,
                    "Pin the flight recorder and the programs' links in this bpffs directory (e.g. "
                    "/sys/fs/bpf/bdt): recording goes on if the tracer is killed; read it with "
                    "`dump --pin-dir DIR`, free it with `dump --pin-dir DIR --release`");
  auto* rec_events_opt =
      trace->add_option("--recorder-events", ta.live.recorder_events,
                        fmt::format("With --pin-dir: in-kernel flight recorder events kept per CPU (default "
                                    "{} = {} MiB per CPU, {} bytes per event)",
                                    LiveOptions::kDefaultRecorderEvents,
                                    (LiveOptions::kDefaultRecorderEvents * recorder_slot_bytes()) >> 20,
                                    recorder_slot_bytes()))
          ->check(CLI::Range(0u, 1u << 20));
  trace->add_option("--metrics-addr", ta.metrics_addr,
                    "Serve Prometheus metrics at http://HOST:PORT/metrics (HOST:PORT, [IPV6]:PORT, :PORT = all interfaces)");
  uint32_t rb_mib = 8;
  trace->add_option("--ringbuf-size", rb_mib, "BPF ring buffer size in MiB (power of two)")
      ->check(CLI::Range(1u, 1024u));

  ReplayArgs ra;
  auto* replay = app.add_subcommand("replay", "Run the detectors over a recorded trace");
  replay->add_option("FILE", ra.file, "JSON-lines or binary record file ('-' = stdin)")->required();
  std::string replay_format = "text";
  replay->add_option("--format", replay_format,
                     "text|json|chrome (chrome: a timeline of the events with the findings replay computes)")
      ->check(CLI::IsMember(kFormatsChrome));
  replay->add_flag("--events", ra.events, "Also print every event");
  replay->add_option("--stall-threshold", ra.stall_threshold_s, "Seconds (default 30)")
      ->check(CLI::PositiveNumber);
  replay->add_flag("--salvage", ra.salvage, "Read the valid prefix of a damaged binary record");

  DoctorArgs da;
  auto* doctor = app.add_subcommand("doctor", "What this kernel lets the tool see, and how");
  std::string doctor_format = "text", doctor_backend = "auto";
  doctor->add_option("--format", doctor_format, "text|json")->check(CLI::IsMember(kFormats));
  doctor->add_option("--backend", doctor_backend, "auto|fentry|kprobe|tracepoint")
      ->check(CLI::IsMember(kBackends));

  DumpArgs dua;
  auto* dump = app.add_subcommand(
      "dump", "Print a saved trace (binary record, JSON lines or snapshot) or a pinned flight recorder");
  auto* dump_file = dump->add_option("FILE", dua.file, "Recorded trace file");
  auto* dump_pin = dump->add_option("--pin-dir", dua.pin_dir,
                                    "Read the flight recorder pinned here by `trace --pin-dir`");
  dump_pin->excludes(dump_file);
  dump->add_flag("--release", dua.release,
                 "With --pin-dir: detach the pinned programs and remove the pins")
      ->needs(dump_pin);
  std::string dump_format = "text";
  dump->add_option("--format", dump_format,
                   "text|json|chrome (chrome: trace-event timeline for ui.perfetto.dev or chrome://tracing)")
      ->check(CLI::IsMember(kFormatsChrome));
  dump->add_flag("--salvage", dua.salvage, "Read the valid prefix of a damaged binary record");

  DemoArgs dea;
  auto* demo = app.add_subcommand(
      "demo", "Make a scratch btrfs, run the built-in workloads for each pattern, trace them live");
  std::string demo_format = "text", demo_backend = "auto";
  demo->add_option("--format", demo_format, "text|json")->check(CLI::IsMember(kFormats));
  demo->add_option("--backend", demo_backend, "auto|fentry|kprobe|tracepoint")
      ->check(CLI::IsMember(kBackends));
  demo->add_flag("--events", dea.events, "Also print every event");
  demo->add_option("--record", dea.record, "Save every event to FILE");

  try {
    std::vector<const char*> cargv;
    for (auto& s : args) cargv.push_back(s.c_str());
    app.parse(static_cast<int>(cargv.size()), cargv.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "btrfs-dio-trace: {}\n", e.what());
    return 1;
  }

  try {
    ta.format = format_from(trace_format);
    ta.live.backend = backend_from(trace_backend);
    ra.format = format_from(replay_format);
    da.format = format_from(doctor_format);
    da.backend = backend_from(doctor_backend);
    dua.format = format_from(dump_format);
    dea.format = format_from(demo_format);
    dea.backend = backend_from(demo_backend);
    if (*demo) return run_demo(dea);
    if (*trace) {
      ta.live.ringbuf_bytes = rb_mib << 20;
      // The in-kernel recorder is read through its pins only: without --pin-dir it would cost
      // memory and CPU for events nobody can read (docs/flight-recorder.md).
      if (ta.live.pin_dir.empty()) {
        if (rec_events_opt->count() && ta.live.recorder_events)
          throw InputError("--recorder-events sizes the flight recorder, which is only kept (and readable) "
                           "with --pin-dir DIR");
        ta.live.recorder_events = 0;
      } else if (!rec_events_opt->count()) {
        ta.live.recorder_events = LiveOptions::kDefaultRecorderEvents;
      }
      return run_trace(ta);
    }
    if (*replay) return run_replay(ra);
    if (*doctor) return run_doctor_cmd(da);
    if (*dump) {
      if (dua.file.empty() && dua.pin_dir.empty()) throw InputError("dump: give FILE or --pin-dir DIR");
      return run_dump(dua);
    }
  } catch (const InputError& e) {
    fmt::print(stderr, "btrfs-dio-trace: {}\n", strip_prefix(e.what()));
    return 1;
  } catch (const KernelError& e) {
    fmt::print(stderr, "btrfs-dio-trace: {}\n", strip_prefix(e.what()));
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "btrfs-dio-trace: internal error: {}\n", e.what());
    return 1;
  }
  return 1;
}
