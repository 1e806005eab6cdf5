// Live tracing with the tracepoint backend: ring buffer -> decode -> reorder
// window -> the caller's callback.
#include <bpf/libbpf.h>
#include <time.h>

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <mutex>
#include <sstream>

#include <fmt/core.h>

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
    // The BPF side wakes us only once a batch is queued (bdt_submit), so a
    // timed-out poll still drains whatever arrived meanwhile.
    int err = ring_buffer__poll(bpf_->rb, timeout_ms);
    if (err < 0 && err != -EINTR) return err;
    if (err == 0) err = ring_buffer__consume(bpf_->rb);
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
    h.hostname = this_hostname();
    return h;
  }

  std::vector<std::string> warnings() const override { return bpf_->warnings; }
  void keep_pins() override { bpf_->keep_pins = true; }
  void add_pid(uint32_t tgid) override { bpf_->add_pid(tgid); }
  void remove_pid(uint32_t tgid) override { bpf_->remove_pid(tgid); }
  LatencyHists latency() const override { return bpf_->latency(); }

  std::vector<std::string> stack(uint32_t stack_id) const override {
    std::vector<std::string> out;
    if (stack_id == 0 || bpf_->stacks_fd < 0) return out;
    uint64_t ips[32] = {};  // BDT_STACK_DEPTH in bpf/emission.bpf.h
    const uint32_t key = stack_id - 1;
    if (bpf_map_lookup_elem(bpf_->stacks_fd, &key, ips) != 0) return out;
    std::call_once(syms_once_, [this] { load_kallsyms(); });
    for (uint64_t ip : ips) {
      if (!ip) break;
      std::string f = symbolize(ip);
      // the BPF program and trampoline that captured the stack are not the origin
      if (f.size() > 6 && f.compare(f.size() - 6, 6, " [bpf]") == 0) continue;
      out.push_back(std::move(f));
    }
    return out;
  }

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

  struct Sym {
    uint64_t addr;
    std::string name;  // "func" or "func [module]"
  };
  void load_kallsyms() const {
    std::ifstream in("/proc/kallsyms");
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string addr, type, name, mod;
      if (!(ls >> addr >> type >> name)) continue;
      if (type != "t" && type != "T") continue;
      ls >> mod;
      const uint64_t a = std::strtoull(addr.c_str(), nullptr, 16);
      if (!a) continue;  // addresses hidden (kptr_restrict)
      syms_.push_back({a, mod.empty() ? name : name + " " + mod});
    }
    std::sort(syms_.begin(), syms_.end(), [](const Sym& x, const Sym& y) { return x.addr < y.addr; });
  }
  std::string symbolize(uint64_t ip) const {
    auto it = std::upper_bound(syms_.begin(), syms_.end(), ip,
                               [](uint64_t v, const Sym& s) { return v < s.addr; });
    if (it == syms_.begin()) return fmt::format("{:#x}", ip);
    --it;
    const auto sp = it->name.find(' ');
    if (sp == std::string::npos) return fmt::format("{}+{:#x}", it->name, ip - it->addr);
    return fmt::format("{}+{:#x}{}", it->name.substr(0, sp), ip - it->addr, it->name.substr(sp));
  }

  mutable std::once_flag syms_once_;
  mutable std::vector<Sym> syms_;
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
