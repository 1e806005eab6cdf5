// Timelines for the detector tests: the seeds' interleavings and the close
// benign ones, built as Events in code. The same cases are written as
// JSON-lines fixtures (tests/fixtures/{seeds,benign}/<name>.jsonl with a
// <name>.expect sidecar) by detector_fixtures_test.cpp.
#pragma once

#include <string>
#include <vector>

#include "bdt/detector.h"
#include "detectors/engine.h"
#include "bdt/event.h"

namespace bdt::test {

inline Fsid fs_a() { return *Fsid::parse("5a1c0b3e-0d1e-4f2a-9b8c-7d6e5f4a3b2c"); }
inline Fsid fs_b() { return *Fsid::parse("0b0b0b0b-1111-2222-3333-444455556666"); }
inline constexpr uint64_t kDev = 0x2d;   // st_dev of subvolume 5 (anonymous dev 0:45)
inline constexpr uint64_t kSnapDev = 0x2e;  // a read-only snapshot of fs A
inline constexpr uint64_t kMs = 1'000'000ull, kSec = 1'000'000'000ull;
inline constexpr uint64_t kT0 = 1000 * kSec;

struct Who {
  uint32_t pid, tid;
  const char* comm;
};

class TL {
 public:
  TL(std::string name, bool benign, std::string kernel)
      : name_(std::move(name)), benign_(benign), kernel_(std::move(kernel)) {}
  // current time: kT0 + ns
  TL& at(uint64_t ns) {
    t_ = kT0 + ns;
    return *this;
  }
  Event& ev(const Who& w, EventType type, Payload p, uint64_t ino = 0, uint64_t dev = kDev,
            Fsid fs = fs_a()) {
    Event e;
    e.ts_ns = t_;
    e.pid = w.pid;
    e.tid = w.tid;
    e.set_comm(w.comm);
    e.type = type;
    e.fs = fs;
    e.dev = dev;
    e.ino = ino;
    e.body = std::move(p);
    events_.push_back(e);
    return events_.back();
  }
  void expect(std::string s) { expect_.push_back(std::move(s)); }

  const std::string& name() const { return name_; }
  bool benign() const { return benign_; }
  const std::string& kernel() const { return kernel_; }
  const std::vector<Event>& events() const { return events_; }
  const std::vector<std::string>& expected() const { return expect_; }

 private:
  std::string name_;
  bool benign_;
  std::string kernel_;
  uint64_t t_ = kT0;
  std::vector<Event> events_;
  std::vector<std::string> expect_;  // "detector level kind", sorted by the checker
};

// Every case, seeds and benign (detector_cases.cpp).
std::vector<TL> all_cases();

DetectorConfig config_for(const std::string& kernel);
// Runs an engine over the events and finishes at the last event's time.
Findings run(const std::vector<Event>& evs, const DetectorConfig& cfg);
// "detector level kind" of each finding, sorted.
std::vector<std::string> summary(const Findings& f);

}  // namespace bdt::test
