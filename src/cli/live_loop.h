// The live loop `trace` and `demo` share: poll the session, hand each event
// on, advance the detectors' clock to what the reorder window has released,
// and report records the ring buffer lost, per CPU, as they happen.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "cli/pipeline.h"
#include "live/session.h"

namespace bdt::cli {

class LiveLoop {
 public:
  // deliver gets every event (it usually ends in pipe.on_event).
  LiveLoop(live::Session& session, Pipeline& pipe, const live::LiveOptions& opts,
           live::Session::Deliver deliver);
  // One round: waits up to timeout_ms for events and delivers them, then
  // runs the detectors' clock and reports new losses. Throws KernelError on a
  // ring-buffer error.
  void step(int timeout_ms);
  // Rounds of at most 100 ms until Ctrl-C/SIGTERM or deadline_ns (monotonic,
  // 0 = none); tick() after each round.
  void run(uint64_t deadline_ns, const std::function<void()>& tick);
  // Detaches the programs, delivers what the ring buffer and the reorder
  // window still hold, reports the last losses.
  void drain();
  // The ring buffer's accounting for the summary (after drain(): exact):
  // records made and lost per CPU, records read.
  void fill_summary(Summary& s) const;

 private:
  void check_lost();
  live::Session& session_;
  Pipeline& pipe_;
  const live::LiveOptions& opts_;
  live::Session::Deliver deliver_;
  std::vector<uint64_t> lost_seen_;
};

}  // namespace bdt::cli
