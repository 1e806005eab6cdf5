// The engine: feeds events to every detector, in the same way for live tracing
// and replay.
#pragma once

#include <array>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "bdt/detector.h"

namespace bdt::det {
struct Shared;
}
namespace bdt {

class Engine {
 public:
  // every_event: each detector gets every event, whatever its events() say
  // (tests: what the event sets leave out changes nothing).
  explicit Engine(const DetectorConfig& cfg, bool every_event = false);
  // Events must come in (non-strictly) increasing ts_ns order.
  void feed(const Event& ev, Findings& out);
  // Advance time without an event (stall thresholds, age eviction).
  void tick(uint64_t now_ns, Findings& out);
  // Flush end-of-trace findings (e.g. requests still in flight at the end).
  void finish(uint64_t now_ns, Findings& out);
  // Records were lost (live tracing): tell the detectors.
  void lost(uint64_t count);
  std::vector<std::pair<std::string_view, StateSize>> state() const;
  const std::vector<std::unique_ptr<Detector>>& detectors() const { return detectors_; }

 private:
  std::shared_ptr<det::Shared> shared_;  // fed before the detectors (detectors/shared.h)
  std::vector<std::unique_ptr<Detector>> detectors_;
  // By event type, the detectors whose events() include it, in report order
  // ([0]: every detector, for a type past the sets).
  std::array<std::vector<Detector*>, 32> by_type_;
  uint64_t last_ts_ = 0;
};

}  // namespace bdt
