// Live tracing with the tracepoint backend: ring buffer -> decode -> reorder
// window -> the caller's callback.
#include <bpf/libbpf.h>
#include <time.h>

#include <cerrno>

#include "bdt/live.h"
#include "live/bpf_session.h"
#include "live/decode.h"
#include "live/reorder.h"
#include "loader/kernel_btf.h"

namespace bdt {

namespace {

uint64_t clock_ns(clockid_t c) {
  timespec ts{};
  clock_gettime(c, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

class TracepointSession final : public LiveSession {
 public:
  explicit TracepointSession(const LiveOptions& opts)
      : held_(opts.reorder_window_ms * 1'000'000ull) {
    live::check_privileges();
    loader::KernelBtf btf;
    bpf_ = live::open_bpf(opts, btf, &TracepointSession::on_sample, this);
    const uint64_t rt = clock_ns(CLOCK_REALTIME), mono = clock_ns(CLOCK_MONOTONIC);
    mono_to_rt_ = static_cast<int64_t>(rt - mono);
    kernel_ = KernelVersion::running();
  }

  int poll(int timeout_ms, const std::function<void(const Event&)>& cb) override {
    int err = ring_buffer__poll(bpf_->rb, timeout_ms);
    if (err < 0 && err != -EINTR) return err;
    return static_cast<int>(held_.release(clock_ns(CLOCK_MONOTONIC), cb));
  }

  void drain(const std::function<void(const Event&)>& cb) override {
    ring_buffer__consume(bpf_->rb);
    held_.drain(cb);
  }

  const std::vector<HookStatus>& hooks() const override { return bpf_->hooks; }

  LiveStats stats() const override {
    LiveStats s;
    s.lost_per_cpu = bpf_->lost_per_cpu();
    for (auto n : s.lost_per_cpu) s.lost_total += n;
    s.events = decoded_;
    s.unknown_records = unknown_;
    return s;
  }

  TraceHeader header() const override {
    TraceHeader h;
    h.schema_version = 1;
    h.kernel = kernel_;
    for (const auto& hs : bpf_->hooks) h.hooks.push_back({hs.name, hs.mechanism, hs.attached});
    h.mono_to_realtime_ns = mono_to_rt_;
    return h;
  }

  std::vector<std::string> warnings() const override { return bpf_->warnings; }

 private:
  static int on_sample(void* ctx, void* data, size_t size) {
    auto* self = static_cast<TracepointSession*>(ctx);
    if (size < sizeof(bdt_raw_event)) {
      ++self->unknown_;
      return 0;
    }
    const auto* raw = static_cast<const bdt_raw_event*>(data);
    if (!live::decode_raw(*raw, self->bpf_->flags, self->held_.slot())) {
      self->held_.discard();
      ++self->unknown_;
      return 0;
    }
    self->held_.commit();
    ++self->decoded_;
    return 0;
  }

  live::ReorderBuffer held_;
  std::unique_ptr<live::BpfSession> bpf_;
  uint64_t decoded_ = 0, unknown_ = 0;
  int64_t mono_to_rt_ = 0;
  KernelVersion kernel_;
};

}  // namespace

std::unique_ptr<LiveSession> LiveSession::open(const LiveOptions& opts) {
  return std::make_unique<TracepointSession>(opts);
}

}  // namespace bdt
