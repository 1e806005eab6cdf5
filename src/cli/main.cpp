// btrfs-dio-trace command line: parses arguments (CLI11), dispatches, and maps
// errors to the exit-status contract: 0 ok, 1 usage/input error, 2 kernel or
// permission problem.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <fmt/ranges.h>

#include <cstring>
#include <string_view>
#include <system_error>

#include "core/duration.h"
#include "core/safe_text.h"
#include "replay/trace_reader.h"
#include "sinks/sink.h"
#include "bdt/errors.h"
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

constexpr std::string_view kSubcommands[] = {"trace", "replay", "doctor", "dump", "demo", "status"};
constexpr std::string_view kTryHelp = "Try 'btrfs-dio-trace --help'.";
bool is_subcommand(std::string_view s) {
  for (auto c : kSubcommands)
    if (s == c) return true;
  return false;
}

// Every option that takes seconds accepts units (90, 1.5s, 500ms, 10m, 2h) and
// rejects anything else with one message (src/core/duration.h). The value
// handed on is the number of seconds.
CLI::Validator seconds(bool allow_zero = false) {
  return CLI::Validator(
      [allow_zero](std::string& v) {
        std::string why = duration_error(v, allow_zero);
        if (why.empty()) v = fmt::format("{}", *parse_duration_seconds(v));
        return why;
      },
      "", "duration");
}

// CLI11's message, said the way this tool says things; values echoed back are
// cut short (a 300-digit number is not repeated in full).
std::string usage_error_text(const CLI::ParseError& e) {
  std::string m = e.what();
  for (std::string_view p : {"The following arguments were not expected: ",
                             "The following argument was not expected: "})
    if (m.starts_with(p)) m = "unknown option or unexpected argument: " + m.substr(p.size());
  if (m.size() > 300) m = m.substr(0, 200) + "...";
  return m;
}

// Each --help ends with examples (CLI11 footer).
std::string examples(std::initializer_list<std::pair<std::string_view, std::string_view>> ex) {
  std::string s = "EXAMPLES:\n";
  for (const auto& [cmd, what] : ex) s += fmt::format("  {}\n      {}\n", cmd, what);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  // `btrfs-dio-trace [trace] ...`: the trace subcommand is the default.
  std::vector<std::string> args(argv, argv + argc);
  const bool top_level = argc >= 2 && (args[1] == "--help" || args[1] == "-h" || args[1] == "--version" ||
                                       args[1] == "-V");
  if (argc >= 2 && !top_level && !args[1].starts_with("-") && !is_subcommand(args[1])) {
    fmt::print(stderr, "btrfs-dio-trace: unknown command '{}' (commands: {})\n{}\n", args[1],
               fmt::join(kSubcommands, ", "), kTryHelp);
    return 1;
  }
  if (!top_level && (argc < 2 || !is_subcommand(args[1]))) args.insert(args.begin() + 1, "trace");
  const std::string sub = args.size() > 1 && is_subcommand(args[1]) ? args[1] : "";

  CLI::App app{
      "btrfs-dio-trace: live tracing and diagnostics for btrfs direct I/O.\n"
      "Watches O_DIRECT I/O on btrfs and flags known failure patterns as they happen.\n"
      "Without a command, `trace` runs (btrfs-dio-trace --mount /srv = btrfs-dio-trace trace --mount /srv)."};
  app.require_subcommand(1);
  app.set_version_flag("-V,--version", "btrfs-dio-trace " BDT_VERSION, "Print the version and exit");
  app.footer(examples({
      {"btrfs-dio-trace doctor", "what this kernel lets the tracer see"},
      {"btrfs-dio-trace -m /srv/images", "trace the btrfs filesystem under /srv/images until Ctrl-C"},
      {"btrfs-dio-trace replay trace.bdt", "run the detectors over a recorded trace"},
      {"btrfs-dio-trace demo", "provoke each pattern on a scratch btrfs and trace it"},
      {"btrfs-dio-trace COMMAND --help", "the options of one command"},
  }));

  TraceArgs ta;
  auto* trace = app.add_subcommand("trace", "Trace live (the default command)");
  trace->add_option("-p,--pid", ta.live.pids, "Trace only this process (all its threads); repeatable")
      ->type_name("PID");
  trace->add_option("-c,--comm", ta.live.comms, "Trace only tasks with this exact name; repeatable")
      ->type_name("NAME");
  trace->add_option("--cgroup", ta.live.cgroup,
                    "Trace only tasks in this cgroup v2 directory or below (e.g. a libvirt machine scope)")
      ->type_name("PATH");
  trace->add_option("-m,--mount", ta.live.mount,
                    "Trace only the btrfs filesystem this path is on (all its subvolumes)")
      ->type_name("PATH");
  std::string trace_backend = "auto", trace_format = "text";
  trace->add_option("--backend", trace_backend, "Hook mechanism: auto (the best per hook), fentry, kprobe, tracepoint")
      ->check(CLI::IsMember(kBackends))
      ->type_name("MECH");
  trace->add_flag("--events", ta.events, "Also print every event");
  trace->add_flag("--all-events", ta.live.all_events,
                  "Make every record the hooks can produce, also those no detector needs "
                  "(clean ordered-extent completions, every get_extent lookup); costs more");
  // hidden: the overhead benchmark's floor (hooks attached, programs empty)
  trace->add_flag("--bench-floor", ta.live.bench_floor)->group("");
  trace->add_option("-f,--format", trace_format, "Output: text or json (one object per line)")
      ->check(CLI::IsMember(kFormats))
      ->type_name("FORMAT");
  trace->add_option("-o,--output", ta.output, "Write the output to FILE instead of stdout (a new file, mode 0600)")
      ->type_name("FILE");
  trace->add_flag("--wall-time", ta.wall_time,
                  "Text output: times as UTC date and time (2026-11-22T04:50:01.123456Z, as JSON's wall_time) instead of the local time of day");
  trace->add_flag("--qemu", ta.qemu,
                  "Trace every QEMU process (or the --pid ones), labelled with VM name and disk image");
  trace->add_option("--interval", ta.interval_s, "With --qemu: print per-VM statistics every SEC")
      ->transform(seconds())
      ->type_name("SEC");
  std::string trace_sort = "vm";
  trace->add_option("--sort", trace_sort, "Per-VM tables sorted by: vm|requests")
      ->check(CLI::IsMember({"vm", "requests"}))
      ->each([&](const std::string& v) { ta.sort_requests = v == "requests"; })
      ->type_name("KEY");
  trace->add_option("-d,--duration", ta.duration_s, "Stop after SEC (90, 1.5s, 500ms, 10m, 2h)")
      ->transform(seconds())
      ->type_name("SEC");
  trace->add_option("--stall-threshold", ta.stall_threshold_s,
                    "How long an in-flight self-mapped DIO write may take before it counts as stuck (default 30s)")
      ->transform(seconds())
      ->type_name("SEC");
  trace->add_option("--record", ta.record, "Save every event to FILE (binary, for replay/dump)")->type_name("FILE");
  trace->add_option("--snapshot-dir", ta.snapshot_dir,
                    "When a finding fires, write the last seconds of events and the finding to a "
                    "JSON-lines file in DIR (read by replay/dump)")
      ->type_name("DIR");
  trace->add_option("--snapshot-seconds", ta.snapshot_seconds,
                    "How far back before the finding a snapshot reaches (default 5s)")
      ->transform(seconds())
      ->type_name("SEC");
  trace->add_option("--snapshot-max", ta.snapshot_max, "Most snapshot files written (1-100000, default 20)")
      ->check(CLI::Range(1u, 100000u).description(""))
      ->type_name("N");
  trace->add_option("--snapshot-interval", ta.snapshot_interval_s,
                    "At most one snapshot per detector in this time (default 10s; 0 = no limit)")
      ->transform(seconds(true))
      ->type_name("SEC");
  trace->add_option("--snapshot-max-mb", ta.snapshot_max_mib,
                    "Size cap of one snapshot file in MiB (1-65536, default 64); the oldest events are left out beyond it")
      ->check(CLI::Range(uint64_t{1}, uint64_t{65536}).description(""))
      ->type_name("MIB");
  trace->add_option("--snapshot-events", ta.snapshot_events,
                    "Most events kept for snapshots (1-100000000, default 1000000)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100'000'000}).description(""))
      ->type_name("N");
  trace->add_option("--pin-dir", ta.live.pin_dir,
                    "Pin the flight recorder and the programs' links in this bpffs directory (e.g. "
                    "/sys/fs/bpf/bdt): recording goes on if the tracer is killed; read it with "
                    "`dump --pin-dir DIR`, free it with `dump --pin-dir DIR --release`")
      ->type_name("DIR");
  auto* rec_events_opt =
      trace->add_option("--recorder-events", ta.live.recorder_events,
                        fmt::format("With --pin-dir: in-kernel flight recorder events kept per CPU (at most 1048576; default "
                                    "{} = {} MiB per CPU, {} bytes per event)",
                                    live::LiveOptions::kDefaultRecorderEvents,
                                    (live::LiveOptions::kDefaultRecorderEvents * recorder_slot_bytes()) >> 20,
                                    recorder_slot_bytes()))
          ->check(CLI::Range(0u, 1u << 20).description(""))
          ->type_name("N");
  trace->add_option("--metrics-addr", ta.metrics_addr,
                    "Serve Prometheus metrics at http://HOST:PORT/metrics (HOST:PORT, [IPV6]:PORT, :PORT = all "
                    "interfaces; the documented port is " BDT_METRICS_PORT ")")
      ->type_name("HOST:PORT");
  uint32_t rb_mib = 8;
  trace->add_option("--ringbuf-size", rb_mib, "BPF ring buffer size in MiB (a power of two, 1-1024, default 8)")
      ->check(CLI::Range(1u, 1024u).description(""))
      ->type_name("MIB");
  trace->footer(examples({
      {"btrfs-dio-trace trace -m /srv/images", "findings on the filesystem holding /srv/images, until Ctrl-C"},
      {"btrfs-dio-trace trace -p 4242 -f json -d 10m", "one process, JSON lines, for ten minutes"},
      {"btrfs-dio-trace trace --qemu --interval 10s", "every QEMU VM, per-VM statistics every 10 s"},
      {"btrfs-dio-trace trace --qemu --metrics-addr 127.0.0.1:" BDT_METRICS_PORT " --pin-dir /sys/fs/bpf/btrfs-dio-trace",
       "the exporter: Prometheus metrics plus a flight recorder that outlives the tracer"},
      {"btrfs-dio-trace trace -m /srv --record /var/tmp/t.bdt", "save every event for replay"},
  }));

  ReplayArgs ra;
  auto* replay = app.add_subcommand("replay", "Run the detectors over a recorded trace");
  replay->add_option("FILE", ra.file, "JSON-lines or binary record file ('-' = stdin)")->required();
  std::string replay_format = "text";
  replay->add_option("-f,--format", replay_format,
                     "Output: text, json, or chrome (a timeline of the events with the findings replay computes)")
      ->check(CLI::IsMember(kFormatsChrome))
      ->type_name("FORMAT");
  replay->add_option("-o,--output", ra.output, "Write the output to FILE instead of stdout (a new file, mode 0600)")
      ->type_name("FILE");
  replay->add_flag("--events", ra.events, "Also print every event");
  replay->add_flag("--wall-time", ra.wall_time, "Text output: times as UTC date and time (2026-11-22T04:50:01.123456Z, as JSON's wall_time) instead of the local time of day");
  replay->add_option("--stall-threshold", ra.stall_threshold_s,
                     "How long an in-flight self-mapped DIO write may take before it counts as stuck (default 30s)")
      ->transform(seconds())
      ->type_name("SEC");
  replay->add_flag("--salvage", ra.salvage, "Read the valid prefix of a damaged binary record");
  replay->footer(examples({
      {"btrfs-dio-trace replay trace.bdt", "the findings of a recorded trace"},
      {"btrfs-dio-trace replay -f chrome -o timeline.json snapshot.jsonl", "a timeline for ui.perfetto.dev"},
      {"btrfs-dio-trace dump --pin-dir /sys/fs/bpf/bdt -f json | btrfs-dio-trace replay -",
       "the findings in a pinned flight recorder"},
  }));

  DoctorArgs da;
  auto* doctor = app.add_subcommand("doctor", "What this kernel lets the tool see, and how");
  std::string doctor_format = "text", doctor_backend = "auto";
  doctor->add_option("-f,--format", doctor_format, "Output: text or json")
      ->check(CLI::IsMember(kFormats))
      ->type_name("FORMAT");
  doctor->add_option("--backend", doctor_backend, "Hook mechanism to probe: auto, fentry, kprobe, tracepoint")
      ->check(CLI::IsMember(kBackends))
      ->type_name("MECH");
  doctor->add_flag("--facts", da.facts,
                   "Print what was learned about this kernel (BTF, tracefs, kallsyms, attach probes) "
                   "as the JSON the hook plan is made from, for a bug report");
  doctor->footer(examples({
      {"btrfs-dio-trace doctor", "hooks, mechanisms and detector fidelity on this kernel"},
      {"btrfs-dio-trace doctor -f json", "the same as one JSON object"},
      {"btrfs-dio-trace doctor --facts", "this kernel's facts, as the hook planner sees them"},
  }));

  DumpArgs dua;
  auto* dump = app.add_subcommand(
      "dump", "Print a saved trace (binary record, JSON lines or snapshot) or a pinned flight recorder");
  auto* dump_file = dump->add_option("FILE", dua.file, "Recorded trace file");
  auto* dump_pin = dump->add_option("--pin-dir", dua.pin_dir,
                                    "Read the flight recorder pinned here by `trace --pin-dir`")
                       ->type_name("DIR");
  dump_pin->excludes(dump_file);
  dump->add_option("--vmcore", dua.vmcore,
                   "Read the flight recorder out of a kernel memory dump (ELF: kdump's vmcore, QEMU/libvirt "
                   "dump-guest-memory / virsh dump --memory-only) of a kernel the tracer ran on with --pin-dir")
      ->type_name("FILE")
      ->excludes(dump_file)
      ->excludes(dump_pin);
  dump->add_option("--instance", dua.instance,
                   "With --vmcore: the recorder to print (its hex instance id, as listed on stderr) when the "
                   "dump holds several; default: the one with the most events")
      ->needs("--vmcore")
      ->type_name("ID");
  auto* dump_release = dump->add_flag("--release", dua.release,
                                      "With --pin-dir: detach the pinned programs and remove the pins")
                           ->needs(dump_pin);
  auto* dump_pm =
      dump->add_option("--post-mortem", dua.post_mortem,
                       "With --pin-dir: save the recorder of a tracer that is gone as DEST/post-mortem-START-pidPID.bdt "
                       "(a record file for replay/dump), then release it; nothing pinned is not an error "
                       "(what the service runs before it starts)")
          ->needs(dump_pin)
          ->excludes(dump_release)
          ->type_name("DEST");
  dump->add_option("--keep", dua.keep, "With --post-mortem: post-mortems kept in DEST, the newest (1-1000, default 5)")
      ->needs(dump_pm)
      ->check(CLI::Range(size_t{1}, size_t{1000}).description(""))
      ->type_name("N");
  std::string dump_format = "text";
  dump->add_option("-f,--format", dump_format,
                   "Output: text, json, or chrome (trace-event timeline for ui.perfetto.dev or chrome://tracing)")
      ->check(CLI::IsMember(kFormatsChrome))
      ->type_name("FORMAT");
  dump->add_option("-o,--output", dua.output, "Write the output to FILE instead of stdout (a new file, mode 0600)")
      ->type_name("FILE");
  dump->add_flag("--salvage", dua.salvage, "Read the valid prefix of a damaged binary record");
  dump->add_flag("--wall-time", dua.wall_time, "Text output: times as UTC date and time (2026-11-22T04:50:01.123456Z, as JSON's wall_time) instead of the local time of day");
  dump->footer(examples({
      {"btrfs-dio-trace dump trace.bdt -f json", "a recorded trace as JSON lines"},
      {"btrfs-dio-trace dump --pin-dir /sys/fs/bpf/bdt", "the pinned flight recorder, wall-clock times"},
      {"btrfs-dio-trace dump --pin-dir /sys/fs/bpf/bdt --release", "detach its programs, remove the pins"},
      {"btrfs-dio-trace dump --pin-dir /sys/fs/bpf/bdt --post-mortem /var/lib/btrfs-dio-trace/post-mortem",
       "save a dead tracer's recorder as a record file, then release it"},
      {"btrfs-dio-trace dump --vmcore guest.core -f json | btrfs-dio-trace replay -",
       "the recorder of a crashed kernel's memory dump, and its findings"},
  }));

  StatusArgs sa;
  auto* status = app.add_subcommand("status", "List the flight recorders pinned on this host: owner, age, memory, state");
  std::string status_format = "text";
  status->add_option("-f,--format", status_format, "Output: text or json")
      ->check(CLI::IsMember(kFormats))
      ->type_name("FORMAT");
  status->footer(examples({
      {"btrfs-dio-trace status", "every recorder under /sys/fs/bpf, with its tracer (running or gone)"},
      {"btrfs-dio-trace status -f json", "the same as one JSON object"},
  }));

  DemoArgs dea;
  auto* demo = app.add_subcommand(
      "demo", "Make a scratch btrfs, run the built-in workloads for each pattern, trace them live");
  std::string demo_format = "text", demo_backend = "auto";
  demo->add_option("-f,--format", demo_format, "Output: text or json")
      ->check(CLI::IsMember(kFormats))
      ->type_name("FORMAT");
  demo->add_option("-o,--output", dea.output, "Write the output to FILE instead of stdout (a new file, mode 0600)")
      ->type_name("FILE");
  demo->add_option("--backend", demo_backend, "Hook mechanism: auto, fentry, kprobe, tracepoint")
      ->check(CLI::IsMember(kBackends))
      ->type_name("MECH");
  demo->add_flag("--events", dea.events, "Also print every event");
  demo->add_flag("--wall-time", dea.wall_time, "Text output: times as UTC date and time (2026-11-22T04:50:01.123456Z, as JSON's wall_time) instead of the local time of day");
  demo->add_option("--record", dea.record, "Save every event to FILE")->type_name("FILE");
  demo->footer(examples({
      {"btrfs-dio-trace demo", "about five minutes; needs root, btrfs-progs and 3 GiB in /var/tmp"},
      {"btrfs-dio-trace demo -f json -o demo.jsonl", "the findings as JSON lines"},
  }));

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
    fmt::print(stderr, "btrfs-dio-trace: {}{}\n{}\n", sub.empty() ? "" : sub + ": ", usage_error_text(e),
               sub.empty() ? std::string(kTryHelp) : fmt::format("Try 'btrfs-dio-trace {} --help'.", sub));
    return 1;
  }

  // A command's result, once what stdio still holds is out: a write that fails
  // (a full disk) is said there, not lost in exit's silent flush.
  auto done = [](int rc) {
    flush_output(stdout);
    return rc;
  };
  try {
    ta.format = format_from(trace_format);
    ta.live.backend = backend_from(trace_backend);
    ra.format = format_from(replay_format);
    da.format = format_from(doctor_format);
    da.backend = backend_from(doctor_backend);
    dua.format = format_from(dump_format);
    dea.format = format_from(demo_format);
    dea.backend = backend_from(demo_backend);
    sa.format = format_from(status_format);
    if (*status) return done(run_status(sa));
    if (*demo) {
      redirect_stdout(dea.output);
      return done(run_demo(dea));
    }
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
        ta.live.recorder_events = live::LiveOptions::kDefaultRecorderEvents;
      }
      redirect_stdout(ta.output);
      return done(run_trace(ta));
    }
    if (*replay) {
      redirect_stdout(ra.output);
      return done(run_replay(ra));
    }
    if (*doctor) return done(run_doctor_cmd(da));
    if (*dump) {
      if (dua.file.empty() && dua.pin_dir.empty() && dua.vmcore.empty())
        throw InputError("dump: give FILE, --pin-dir DIR or --vmcore FILE");
      redirect_stdout(dua.output);
      return done(run_dump(dua));
    }
  } catch (const OutputError& e) {
    fmt::print(stderr, "btrfs-dio-trace: {}\n", shown(e.what()));
    return 1;
  } catch (const InputError& e) {
    // Messages quote input (file names, values read from a trace): escaped,
    // so the error stays one line and cannot drive the terminal.
    fmt::print(stderr, "btrfs-dio-trace: {}\n", shown(strip_prefix(e.what())));
    return 1;
  } catch (const KernelError& e) {
    fmt::print(stderr, "btrfs-dio-trace: {}\n", shown(strip_prefix(e.what())));
    return 2;
  } catch (const std::system_error& e) {
    // fmt::print's own write error: the output's when stdout has it (what
    // flush_output says for stdio's buffered writes)
    if (std::ferror(stdout)) {
      fmt::print(stderr, "btrfs-dio-trace: {}\n", output_error(e.code().value()).what());
      return 1;
    }
    fmt::print(stderr, "btrfs-dio-trace: internal error: {}\n", shown(e.what()));
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "btrfs-dio-trace: internal error: {}\n", shown(e.what()));
    return 1;
  }
  return 1;
}
