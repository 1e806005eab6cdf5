// `btrfs-dio-trace replay FILE` and `btrfs-dio-trace dump FILE`.
#include <fmt/format.h>
#include <unistd.h>

#include "core/safe_text.h"
#include "cli/commands.h"
#include "cli/pipeline.h"
#include "sinks/chrome.h"

namespace bdt::cli {

namespace {

// What replay and dump start with: the file's reader, its time base and the sink of --format
// (text in colour when `color`).
struct Input {
  std::unique_ptr<TraceReader> reader;
  TimeBase tb;
  std::unique_ptr<Sink> sink;
};

Input open_input(const std::string& file, bool salvage, bool wall_time, Format format, bool color) {
  Input in;
  in.reader = open_trace(file, salvage);
  const auto& h = in.reader->header();
  in.tb = TimeBase{0, h.mono_to_realtime_ns, wall_time};
  if (wall_time && !h.mono_to_realtime_ns && format == Format::Text)
    fmt::print(stderr, "btrfs-dio-trace: --wall-time: {} does not carry the wall-clock offset (no header, or "
                       "one without mono_to_realtime_ns): times are relative\n",
               file);
  in.sink = format == Format::Json     ? make_json_sink(stdout, h)
            : format == Format::Chrome ? make_chrome_sink(stdout, h)
                                       : make_text_sink(stdout, in.tb, color);
  return in;
}

// --salvage stopped before the end of the file: say where and why.
void warn_salvage_stop(const std::string& why) {
  fmt::print(stderr, "btrfs-dio-trace: --salvage: read the valid prefix only; stopped: {}\n", shown(why));
}

}  // namespace

int run_replay(const ReplayArgs& a) {
  auto [reader, tb, sink] = open_input(a.file, a.salvage, a.wall_time, a.format, isatty(STDOUT_FILENO));
  const auto& h = reader->header();
  PipelineOptions po;
  // The timeline shows every event, with the findings replay computes.
  po.print_events = a.events || a.format == Format::Chrome;
  po.detectors.stall_threshold_ns = static_cast<uint64_t>(a.stall_threshold_s * 1e9);
  po.detectors.kernel = h.kernel;  // the recorded kernel, not this one
  apply_header_hooks(po.detectors, h);
  Pipeline pipe(po, std::move(sink));
  Event ev;
  uint64_t first = 0, last = 0;
  bool any = false;
  while (reader->next(ev)) {
    if (!any) first = ev.ts_ns, any = true;
    last = ev.ts_ns;
    pipe.on_event(ev);
  }
  Summary s;
  s.duration_s = any ? static_cast<double>(last - first) / 1e9 : 0;
  if (reader->skipped_unknown())
    s.notes.emplace_back("skipped unknown events", fmt::format("{}", reader->skipped_unknown()));
  if (reader->skipped_findings())
    s.notes.emplace_back("skipped finding lines", fmt::format("{}", reader->skipped_findings()));
  if (auto why = reader->salvage_stop(); !why.empty()) {
    s.notes.emplace_back("salvage stopped", why);
    warn_salvage_stop(why);
  }
  s.notes.emplace_back("kernel", h.kernel.known() ? h.kernel.release : "unknown (not recorded)");
  pipe.finish(last, std::move(s));
  return 0;
}

int run_dump(const DumpArgs& a) {
  if (!a.pin_dir.empty()) return run_dump_pinned(a);
  if (!a.vmcore.empty()) return run_dump_vmcore(a);
  auto [reader, tb, sink] = open_input(a.file, a.salvage, a.wall_time, a.format, false);
  Event ev;
  bool first = true;
  while (reader->next(ev)) {
    if (first && tb.mono_to_realtime_ns == 0) {
      // Relative times need an origin: the first event.
      tb.origin_ns = ev.ts_ns;
      if (a.format == Format::Text) sink = make_text_sink(stdout, tb, false);
    }
    first = false;
    sink->event(ev);
  }
  if (a.format == Format::Chrome) {
    // The finding lines of a JSON-lines trace (a live --format json output, a
    // snapshot) become instants: the reader skipped them, read them again.
    if (reader->skipped_findings()) {
      if (a.file == "-")
        fmt::print(stderr, "btrfs-dio-trace: {} finding lines read from stdin are not in the timeline "
                           "(give the file name, or use replay --format chrome)\n",
                   reader->skipped_findings());
      else
        read_finding_lines(a.file, [&s = sink](const Finding& f) { s->finding(f); });
    }
    sink->summary(Summary{});
  }
  sink->flush();
  if (auto why = reader->salvage_stop(); !why.empty())
    warn_salvage_stop(why);
  return 0;
}

}  // namespace bdt::cli
