// --metrics-addr: the HTTP server plus the collector, driven from the trace
// loop (metrics/exporter.h).
#include "metrics/exporter.h"

#include <sys/utsname.h>

#include <set>

namespace bdt::metrics {

namespace {
constexpr uint64_t kRepublishNs = 5'000'000'000ull;  // a scrape that cannot wait still sees <= 5 s old data
}

std::unique_ptr<Exporter> Exporter::start(std::string_view addr, std::vector<std::string> detector_ids,
                                          CollectorOptions co, Server::Options so) {
  if (so.landing_page.empty())
    so.landing_page =
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>btrfs-dio-trace</title></head>\n"
        "<body><h1>btrfs-dio-trace</h1>\n"
        "<p>Live tracing and diagnostics for btrfs direct I/O, version " BDT_VERSION ".</p>\n"
        "<p><a href=\"/metrics\">Metrics</a> (Prometheus text format). Findings are in the tracer's "
        "output (stdout or the journal); see <code>man btrfs-dio-trace</code>.</p>\n</body></html>\n";
  auto server = Server::start(addr, so);
  return std::unique_ptr<Exporter>(new Exporter(std::move(server), Collector(co, std::move(detector_ids))));
}

void Exporter::tick(uint64_t now_ns, const std::function<TracerState()>& state) {
  if (!server_->wants_fresh() && last_publish_ns_ && now_ns < last_publish_ns_ + kRepublishNs) return;
  last_publish_ns_ = now_ns ? now_ns : 1;
  publish(state());
}

void Exporter::publish(TracerState st) {
  st.http_requests = server_->requests();
  st.http_rejected = server_->rejected();
  server_->publish(collector_.snapshot(st).render());
}

std::string kernel_release() {
  utsname u{};
  if (::uname(&u) != 0) return "unknown";
  return u.release;
}

std::string backend_label(const std::vector<HookStatus>& hooks) {
  std::set<std::string> kinds;
  for (const auto& h : hooks) {
    if (!h.attached) continue;
    if (h.mechanism == Mechanism::Fentry) kinds.insert("fentry");
    else if (h.mechanism == Mechanism::Kprobe) kinds.insert("kprobe");
    else kinds.insert("tracepoint");  // tp_btf, raw_tp, tracepoint
  }
  std::string out;
  for (const auto& k : kinds) out += (out.empty() ? "" : "+") + k;
  return out.empty() ? "none" : out;
}

}  // namespace bdt::metrics
