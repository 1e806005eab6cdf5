// --metrics-addr: the HTTP server plus the collector, driven from the trace
// loop. The trace thread owns the collector (no locks on the event path); it
// renders an exposition when a scrape is waiting for one (or every few
// seconds) and hands the text to the server thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/collector.h"
#include "metrics/http_server.h"

namespace bdt::metrics {

class Exporter {
 public:
  // Binds at once (InputError / KernelError as Server::start).
  static std::unique_ptr<Exporter> start(std::string_view addr, std::vector<std::string> detector_ids,
                                         CollectorOptions co = {}, Server::Options so = {});
  void on_finding(const Finding& f) { collector_.on_finding(f); }
  void set_mountpoint_resolver(std::function<std::string(const Fsid&)> r) {
    collector_.set_mountpoint_resolver(std::move(r));
  }
  // From the trace loop (every iteration is fine: cheap unless a publish is due).
  void tick(uint64_t now_ns, const std::function<TracerState()>& state);
  void publish(TracerState st);  // now
  std::string address() const { return server_->bound_address(); }
  const Server& server() const { return *server_; }

 private:
  Exporter(std::unique_ptr<Server> s, Collector c) : server_(std::move(s)), collector_(std::move(c)) {}
  std::unique_ptr<Server> server_;
  Collector collector_;
  uint64_t last_publish_ns_ = 0;
};

// The kernel release (uname -r) and a label for the mechanisms in use
// ("tracepoint", "fentry+tracepoint", ...) for btrfs_dio_trace_info.
std::string kernel_release();
std::string backend_label(const std::vector<HookStatus>& hooks);

}  // namespace bdt::metrics
