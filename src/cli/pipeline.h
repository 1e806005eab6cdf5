// The path every event takes after its source (live or replay): count it,
// record it, print it (--events), run the detectors, print findings.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "detectors/engine.h"
#include "sinks/sink.h"
#include "replay/trace_reader.h"
#include "sinks/snapshot.h"

namespace bdt::cli {

// What the trace's hooks let the detectors see, from the header's hook list.
void apply_header_hooks(DetectorConfig& cfg, const TraceHeader& h);

struct PipelineOptions {
  bool print_events = false;
  DetectorConfig detectors;
};

class Pipeline {
 public:
  Pipeline(PipelineOptions opts, std::unique_ptr<Sink> sink);
  void set_recorder(std::unique_ptr<TraceWriter> w) { recorder_ = std::move(w); }
  void set_finding_hook(std::function<void(Finding&)> h) { finding_hook_ = std::move(h); }
  // --snapshot-dir: keep the last seconds of events, write them out when a
  // finding fires (said on stderr).
  void set_snapshotter(std::unique_ptr<Snapshotter> s) { snap_ = std::move(s); }
  void on_event(const Event& ev);
  void on_time(uint64_t now_ns);
  void on_lost(uint32_t cpu, uint64_t count) {
    engine_.lost(count);
    sink_->lost(cpu, count);
  }
  // Ends the run: flushes detectors, the recorder, and prints the summary.
  void finish(uint64_t now_ns, Summary summary);
  uint64_t findings() const { return findings_total_; }
  Sink& sink() { return *sink_; }
  const Engine& engine() const { return engine_; }

 private:
  void emit(Findings& fs);
  void snapshot(const Finding& f);
  PipelineOptions opts_;
  std::unique_ptr<Sink> sink_;
  Engine engine_;
  std::unique_ptr<TraceWriter> recorder_;
  std::function<void(Finding&)> finding_hook_;
  std::unique_ptr<Snapshotter> snap_;
  bool snap_limit_said_ = false;
  uint64_t snap_failed_ = 0;
  Findings scratch_;
  uint64_t events_total_ = 0;
  uint64_t by_type_[kEventTypeCount + 1] = {};
  uint64_t findings_total_ = 0;
  std::map<std::string, uint64_t> findings_by_;
  uint64_t last_ts_ = 0;
  uint64_t last_flush_ns_ = 0;
};

}  // namespace bdt::cli
