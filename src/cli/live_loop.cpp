// LiveLoop (live_loop.h).
#include "cli/live_loop.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "cli/commands.h"

namespace bdt::cli {

LiveLoop::LiveLoop(live::Session& session, Pipeline& pipe, const live::LiveOptions& opts,
                   live::Session::Deliver deliver)
    : session_(session), pipe_(pipe), opts_(opts), deliver_(std::move(deliver)) {}

void LiveLoop::step(int timeout_ms) {
  const int rc = session_.poll(timeout_ms, deliver_);
  if (rc < 0 && rc != -EINTR)
    throw KernelError(fmt::format("ring buffer poll failed: {}", std::strerror(-rc)));
  pipe_.on_time(watermark_ns(opts_));
  check_lost();
}

void LiveLoop::run(uint64_t deadline_ns, const std::function<void()>& tick) {
  while (!stop_requested()) {
    const uint64_t now = monotonic_ns();
    if (deadline_ns && now >= deadline_ns) break;
    int timeout = 100;
    if (deadline_ns)
      timeout = static_cast<int>(std::min<uint64_t>(100, (deadline_ns - now) / 1'000'000 + 1));
    step(timeout);
    if (tick) tick();
  }
}

void LiveLoop::drain() {
  session_.drain(deliver_);
  check_lost();
}

void LiveLoop::fill_summary(Summary& s) const {
  const auto st = session_.stats();
  s.lost_per_cpu = st.lost_per_cpu;
  s.lost_total = st.lost_total;
  s.made_per_cpu = st.made_per_cpu;
  s.records_made = st.made_total;
  s.records_read = st.events + st.unknown_records;
}

void LiveLoop::check_lost() {
  const auto st = session_.stats();
  lost_seen_.resize(st.lost_per_cpu.size());
  for (size_t cpu = 0; cpu < st.lost_per_cpu.size(); ++cpu)
    if (st.lost_per_cpu[cpu] > lost_seen_[cpu]) {
      pipe_.on_lost(static_cast<uint32_t>(cpu), st.lost_per_cpu[cpu] - lost_seen_[cpu]);
      lost_seen_[cpu] = st.lost_per_cpu[cpu];
    }
}

uint64_t watermark_ns(const live::LiveOptions& o) {
  const uint64_t lag = (o.reorder_window_ms + 100) * 1'000'000ull;
  const uint64_t now = monotonic_ns();
  return now > lag ? now - lag : 0;
}

}  // namespace bdt::cli
