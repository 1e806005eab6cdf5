// JSON-lines output: one object per line (events, findings, lost records, a
// closing summary). Event and finding objects follow docs/events.md and
// docs/findings.md; the same stream can be fed back to `replay`.
#include <fmt/format.h>

#include "core/event_json.h"
#include "sinks/sink.h"

namespace bdt {

namespace {

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        else
          out += c;
    }
  }
  out += '"';
}

class JsonSink final : public Sink {
 public:
  JsonSink(std::FILE* out, TraceHeader h, bool event_wall)
      : out_(out), head_(std::move(h)), wall_off_(head_.mono_to_realtime_ns), event_wall_(event_wall) {
    // First, before anything else (a live trace's first event may be far off).
    line_.clear();
    append_header_json(line_, head_);
    emit();
    std::fflush(out_);
  }

  void event(const Event& ev) override {
    line_.clear();
    append_event_json(line_, ev);
    if (event_wall_ && wall_off_ && !line_.empty() && line_.back() == '}') {
      const int64_t wall = wall_ns(ev.ts_ns, wall_off_);
      line_.pop_back();
      fmt::format_to(std::back_inserter(line_), ",\"wall_ns\":{},\"wall_time\":\"{}\"}}", wall,
                     format_wall_utc(wall));
    }
    emit();
  }
  void finding(const Finding& f) override {
    line_.clear();
    append_finding_json(line_, f, wall_off_);
    emit();
    std::fflush(out_);
  }
  void lost(uint32_t cpu, uint64_t count) override {
    fmt::print(out_, "{{\"type\":\"lost\",\"cpu\":{},\"count\":{}}}\n", cpu, count);
    std::fflush(out_);
  }
  void summary(const Summary& s) override {
    line_.clear();
    auto o = std::back_inserter(line_);
    fmt::format_to(o, "{{\"type\":\"summary\",\"duration_s\":{:.6f},\"events\":{},\"events_by_type\":{{",
                   s.duration_s, s.events_total);
    bool first = true;
    for (const auto& [k, n] : s.events_by_type) {
      if (!first) line_ += ',';
      first = false;
      append_json_string(line_, k);
      fmt::format_to(o, ":{}", n);
    }
    line_ += '}';
    if (s.records_total) fmt::format_to(o, ",\"records\":{}", *s.records_total);
    fmt::format_to(o, ",\"lost\":{},\"lost_per_cpu\":[", s.lost_total);
    for (size_t i = 0; i < s.lost_per_cpu.size(); ++i)
      fmt::format_to(o, "{}{}", i ? "," : "", s.lost_per_cpu[i]);
    if (!s.made_per_cpu.empty()) {
      fmt::format_to(o, "],\"records_made\":{},\"records_read\":{},\"made_per_cpu\":[", s.records_made,
                     s.records_read);
      for (size_t i = 0; i < s.made_per_cpu.size(); ++i)
        fmt::format_to(o, "{}{}", i ? "," : "", s.made_per_cpu[i]);
    }
    fmt::format_to(o, "],\"findings\":{},\"findings_by_detector\":{{", s.findings_total);
    first = true;
    for (const auto& [k, n] : s.findings_by_detector) {
      if (!first) line_ += ',';
      first = false;
      append_json_string(line_, k);
      fmt::format_to(o, ":{}", n);
    }
    line_ += "},\"notes\":{";
    first = true;
    for (const auto& [k, v] : s.notes) {
      if (!first) line_ += ',';
      first = false;
      append_json_string(line_, k);
      line_ += ':';
      append_json_string(line_, v);
    }
    line_ += "}}";
    emit();
    std::fflush(out_);
  }
  void flush() override { std::fflush(out_); }

 private:
  void emit() {
    line_ += '\n';
    std::fwrite(line_.data(), 1, line_.size(), out_);
  }
  std::FILE* out_;
  TraceHeader head_;
  int64_t wall_off_ = 0;
  bool event_wall_ = false;
  std::string line_;
};

}  // namespace

std::unique_ptr<Sink> make_json_sink(std::FILE* out, TraceHeader header, bool event_wall_times) {
  return std::make_unique<JsonSink>(out, std::move(header), event_wall_times);
}

}  // namespace bdt
