// `btrfs-dio-trace replay FILE` and `btrfs-dio-trace dump FILE`.
#include <fmt/format.h>
#include <unistd.h>

#include "core/safe_text.h"
#include "cli/commands.h"
#include "cli/pipeline.h"
#include "sinks/chrome.h"

namespace bdt::cli {

int run_replay(const ReplayArgs& a) {
  auto reader = open_trace(a.file, a.salvage);
  const auto& h = reader->header();
  TimeBase tb{0, h.mono_to_realtime_ns, a.wall_time};
  if (a.wall_time && !h.mono_to_realtime_ns && a.format == Format::Text)
    fmt::print(stderr, "btrfs-dio-trace: --wall-time: {} does not carry the wall-clock offset (no header, or "
                       "one without mono_to_realtime_ns): times are relative\n",
               a.file);
  std::unique_ptr<Sink> sink = a.format == Format::Json     ? make_json_sink(stdout, h)
                              : a.format == Format::Chrome ? make_chrome_sink(stdout, h)
                                                           : make_text_sink(stdout, tb, isatty(STDOUT_FILENO));
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
    fmt::print(stderr, "btrfs-dio-trace: --salvage: read the valid prefix only; stopped: {}\n", shown(why));
  }
  s.notes.emplace_back("kernel", h.kernel.known() ? h.kernel.release : "unknown (not recorded)");
  pipe.finish(last, std::move(s));
  return 0;
}

int run_dump(const DumpArgs& a) {
  if (!a.pin_dir.empty()) return run_dump_pinned(a);
  if (!a.vmcore.empty()) return run_dump_vmcore(a);
  auto reader = open_trace(a.file, a.salvage);
  const auto& h = reader->header();
  TimeBase tb{0, h.mono_to_realtime_ns, a.wall_time};
  if (a.wall_time && !h.mono_to_realtime_ns && a.format == Format::Text)
    fmt::print(stderr, "btrfs-dio-trace: --wall-time: {} does not carry the wall-clock offset (no header, or "
                       "one without mono_to_realtime_ns): times are relative\n",
               a.file);
  std::unique_ptr<Sink> sink = a.format == Format::Json     ? make_json_sink(stdout, h)
                              : a.format == Format::Chrome ? make_chrome_sink(stdout, h)
                                                           : make_text_sink(stdout, tb, false);
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
        read_finding_lines(a.file, [&](const Finding& f) { sink->finding(f); });
    }
    sink->summary(Summary{});
  }
  sink->flush();
  if (auto why = reader->salvage_stop(); !why.empty())
    fmt::print(stderr, "btrfs-dio-trace: --salvage: read the valid prefix only; stopped: {}\n", shown(why));
  return 0;
}

}  // namespace bdt::cli
