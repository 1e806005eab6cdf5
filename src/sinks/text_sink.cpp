// Text output for people: a header, one aligned line per event (--events), a
// block per finding as it happens, and a summary at exit.
#include <fmt/format.h>

#include "core/safe_text.h"
#include "sinks/sink.h"

namespace bdt {

namespace {

class TextSink final : public Sink {
 public:
  TextSink(std::FILE* out, TimeBase tb, bool color) : out_(out), tb_(tb), color_(color) {}

  void event(const Event& ev) override {
    set_origin(ev.ts_ns);
    if (!header_done_) {
      fmt::print(out_, "{:<15} {:<16} {:>7} {:>7} {:<16} {}\n", "TIME", "COMM", "PID", "TID",
                 "EVENT", "DETAILS");
      header_done_ = true;
    }
    // Hot path with --events: one reused buffer, one write per line.
    line_.clear();
    fmt::format_to(std::back_inserter(line_), "{:<15} {:<16} {:>7} {:>7} {:<16} ",
                   format_time(ev.ts_ns, tb_), ev.comm_view(), ev.pid, ev.tid, to_string(ev.type));
    append_event_details(line_, ev);
    // Process names and paths come from other users: escaped (core/safe_text.h).
    if (!is_safe_text(line_)) {
      safe_.clear();
      append_safe_text(safe_, line_);
      line_.swap(safe_);
    }
    line_ += '\n';
    std::fwrite(line_.data(), 1, line_.size(), out_);
  }

  void finding(const Finding& f) override {
    set_origin(f.evidence.empty() ? f.ts_ns : f.evidence.front().ts_ns);
    const char* on = "";
    const char* off = "";
    if (color_) {
      on = f.severity == Severity::Critical  ? "\033[1;31m"
           : f.severity == Severity::Warning ? "\033[1;33m"
                                             : "\033[1;36m";
      off = "\033[0m";
    }
    std::string level = f.level == Level::Symptom ? "SYMPTOM" : "HAZARD";
    fmt::print(out_, "{}{} {:<7} {:<8} {}{}  {}[{}/{}]", on, format_time(f.ts_ns, tb_), level,
               to_string(f.severity), f.detector, off, shown(f.comm), f.pid, f.tid);
    if (f.ino) fmt::print(out_, " ino={}", *f.ino);
    if (f.dev) fmt::print(out_, " dev={}", format_dev(*f.dev));
    if (f.range) fmt::print(out_, " range=[{}, {})", f.range->first, f.range->second);
    if (!f.vm.empty()) fmt::print(out_, " vm={}", shown(f.vm));
    if (!f.image.empty()) fmt::print(out_, " image={}", shown(f.image));
    fmt::print(out_, "\n    {}\n", shown(f.message));
    if (!f.explanation.empty()) fmt::print(out_, "    why: {}\n", shown(f.explanation));
    if (!f.exposure.empty()) fmt::print(out_, "    kernel: {}\n", shown(f.exposure));
    if (f.trace_ended)
      fmt::print(out_, "    note: judged when the trace ended, before the kernel finished\n");
    if (!f.fs.empty()) fmt::print(out_, "    fs: {}\n", f.fs.str());
    if (!f.actors.empty()) {
      fmt::print(out_, "    involved:");
      for (const auto& a : f.actors)
        fmt::print(out_, " {}[{}/{}]{}{}", shown(a.comm), a.pid, a.tid, a.role.empty() ? "" : " as ",
                   shown(a.role));
      fmt::print(out_, "\n");
    }
    if (!f.evidence.empty()) {
      fmt::print(out_, "    evidence:\n");
      for (const auto& ev : f.evidence)
        fmt::print(out_, "      {:<15} {:<16} {:>7} {:<16} {}\n", format_time(ev.ts_ns, tb_),
                   shown(ev.comm_view()), ev.tid, to_string(ev.type), shown(format_event_details(ev)));
    }
    if (!f.stack.empty()) {
      fmt::print(out_, "    kernel stack:\n");
      for (const auto& s : f.stack) fmt::print(out_, "      {}\n", shown(s));
    }
    flush_output(out_);
  }

  void lost(uint32_t cpu, uint64_t count) override {
    fmt::print(out_, "WARNING: {} event records lost on CPU {} (ring buffer full); findings may be "
                     "incomplete. Use a larger --ringbuf-size or narrower filters.\n",
               count, cpu);
    flush_output(out_);
  }

  void summary(const Summary& s) override {
    fmt::print(out_, "\n=== btrfs-dio-trace summary ===\n");
    fmt::print(out_, "{:<24} {:.3f} s\n", "duration", s.duration_s);
    fmt::print(out_, "{:<24} {}\n", "events", s.events_total);
    for (const auto& [type, n] : s.events_by_type) fmt::print(out_, "  {:<22} {}\n", type, n);
    if (s.records_total) fmt::print(out_, "{:<24} {}\n", "records", *s.records_total);
    fmt::print(out_, "{:<24} {}", "lost records", s.lost_total);
    if (s.lost_total) {
      fmt::print(out_, " (per CPU:");
      for (size_t i = 0; i < s.lost_per_cpu.size(); ++i)
        if (s.lost_per_cpu[i]) fmt::print(out_, " cpu{}={}", i, s.lost_per_cpu[i]);
      fmt::print(out_, ")");
    }
    if (!s.made_per_cpu.empty())
      fmt::print(out_, "\n{:<24} {} made in the kernel, {} read, {} lost", "ring buffer records", s.records_made,
                 s.records_read, s.lost_total);
    fmt::print(out_, "\n{:<24} {}\n", "findings", s.findings_total);
    for (const auto& [k, n] : s.findings_by_detector) fmt::print(out_, "  {:<22} {}\n", k, n);
    for (const auto& [k, v] : s.notes) fmt::print(out_, "{:<24} {}\n", shown(k), shown(v));
    flush_output(out_);
  }

  void flush() override { flush_output(out_); }

 private:
  // Without wall-clock and without an origin (replay of a trace with no clock
  // offset), times are shown relative to the first thing printed.
  void set_origin(uint64_t ts) {
    if (tb_.mono_to_realtime_ns == 0 && tb_.origin_ns == 0) tb_.origin_ns = ts;
  }
  std::FILE* out_;
  TimeBase tb_;
  bool color_;
  bool header_done_ = false;
  std::string line_, safe_;
};

}  // namespace

std::unique_ptr<Sink> make_text_sink(std::FILE* out, TimeBase tb, bool color) {
  return std::make_unique<TextSink>(out, tb, color);
}

}  // namespace bdt
