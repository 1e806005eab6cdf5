// What several detectors follow alike, kept once for all of them: the DIO
// requests in flight (SharedRequests, common.h: dio-unexpected-errno,
// dio-stuck, dio-csum-after-direct-write) and the DIO write calls with their
// ordered extents (WriteCalls, write_calls.h: dio-short-write,
// dio-acked-unbacked). The engine feeds each event here before the detectors
// see it. Internal to src/detectors.
#pragma once

#include "detectors/common.h"
#include "detectors/write_calls.h"

namespace bdt::det {

struct Shared {
  explicit Shared(const DetectorConfig& c) : requests(c), calls(c) {}
  // Before the detectors' on_event.
  void on_event(const Event& e) {
    requests.on_event(e);
    calls.on_event(e);
  }
  // Around the detectors' on_time / on_finish: the calls are judged before
  // (their detectors take the findings in their own on_time), the requests
  // age out after (dio-stuck looks at the old ones first).
  void before_time(uint64_t now) { calls.on_time(now); }
  void before_finish(uint64_t now) { calls.on_finish(now); }
  void after_time(uint64_t now) { requests.on_time(now); }

  SharedRequests requests;
  WriteCalls calls;
};

}  // namespace bdt::det
