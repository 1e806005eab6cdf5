// JSON-lines output: one object per line (events, findings, lost records, a
// closing summary). Event and finding objects follow docs/events.md and
// docs/findings.md; the same stream can be fed back to `replay`.
//
// Events (with --events, every record) are written straight into a 64 KiB
// block written to the stream's file descriptor whole, one write(2) per block
// instead of per line (a stream without a descriptor gets it through stdio);
// a terminal still gets each line as it comes. Anything else written to the
// stream (a finding, a lost count, the summary) and flush() pass the block on
// first, so the order of lines is kept.
#include <fmt/format.h>
#include <unistd.h>

#include <memory>

#include "bdt/errors.h"
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
      : out_(out),
        head_(std::move(h)),
        wall_off_(head_.mono_to_realtime_ns),
        event_wall_(event_wall),
        whole_blocks_(!isatty(fileno(out))),
        block_(std::make_unique<char[]>(kBlock + kLineRoom)),
        block_cap_(kBlock + kLineRoom) {
    // First, before anything else (a live trace's first event may be far off).
    line_.clear();
    append_header_json(line_, head_);
    emit();
    flush_output(out_);
  }

  ~JsonSink() override {
    try {
      pass_block();
    } catch (const OutputError&) {  // flush() said it, or the command is failing already
    }
  }

  void event(const Event& ev) override {
    const bool wall = event_wall_ && wall_off_;
    const int64_t wns = wall ? wall_ns(ev.ts_ns, wall_off_) : 0;
    const std::string wtime = wall ? format_wall_utc(wns) : std::string();
    // the object, ",\"wall_ns\":N,\"wall_time\":\"...\"" and '\n'
    const size_t max = event_json_max(ev) + (wall ? 32 + 20 + wtime.size() : 0) + 1;
    if (block_len_ + max > block_cap_) {
      pass_block();
      if (max > block_cap_) {
        block_ = std::make_unique<char[]>(max);
        block_cap_ = max;
      }
    }
    char* p = write_event_json(block_.get() + block_len_, ev, &memo_);
    if (wall) {
      --p;  // the object's '}'
      p = fmt::format_to(p, ",\"wall_ns\":{},\"wall_time\":\"{}\"}}", wns, wtime);
    }
    *p++ = '\n';
    block_len_ = static_cast<size_t>(p - block_.get());
    if (!whole_blocks_ || block_len_ >= kBlock) pass_block();
  }
  void finding(const Finding& f) override {
    pass_block();
    line_.clear();
    append_finding_json(line_, f, wall_off_);
    emit();
    flush_output(out_);
  }
  void lost(uint32_t cpu, uint64_t count) override {
    pass_block();
    fmt::print(out_, "{{\"type\":\"lost\",\"cpu\":{},\"count\":{}}}\n", cpu, count);
    flush_output(out_);
  }
  void summary(const Summary& s) override {
    pass_block();
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
    flush_output(out_);
  }
  void flush() override {
    pass_block();
    flush_output(out_);
  }

 private:
  // Passed on once it holds kBlock bytes; the room beyond takes the line that
  // crosses it (a longer one passes the block on early, or gets its own).
  static constexpr size_t kBlock = 64 * 1024, kLineRoom = 8 * 1024;
  // The events written so far go to the stream: to its file descriptor at
  // once, after what stdio holds (stdio would copy the block's head and tail
  // into its own buffer first); a stream without one (a memory stream) gets it
  // through stdio. A failed write throws OutputError (sinks/output.cpp).
  void pass_block() {
    if (!block_len_) return;
    const size_t n = block_len_;
    block_len_ = 0;
    if (const int fd = fileno(out_); fd < 0) {
      if (std::fwrite(block_.get(), 1, n, out_) != n) flush_output(out_);  // throws the stream's error
    } else {
      flush_output(out_);
      write_output(fd, block_.get(), n);
    }
  }
  void emit() {
    line_ += '\n';
    std::fwrite(line_.data(), 1, line_.size(), out_);
  }
  std::FILE* out_;
  TraceHeader head_;
  int64_t wall_off_ = 0;
  bool event_wall_ = false;
  bool whole_blocks_ = true;  // false on a terminal: each event line at once
  EventJsonMemo memo_;  // write_event_json's, for this stream's events
  std::unique_ptr<char[]> block_;
  size_t block_cap_ = 0, block_len_ = 0;
  std::string line_;
};

}  // namespace

std::unique_ptr<Sink> make_json_sink(std::FILE* out, TraceHeader header, bool event_wall_times) {
  return std::make_unique<JsonSink>(out, std::move(header), event_wall_times);
}

}  // namespace bdt
