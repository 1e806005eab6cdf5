// --metrics-addr: exposition format, the collector's counts, HTTP handling
// (pure parser and a real server on 127.0.0.1 with an ephemeral port).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "replay/trace_reader.h"
#include "dio_outcome.h"
#include "metrics/collector.h"
#include "metrics/exposition.h"
#include "metrics/http_server.h"

using namespace bdt;
using namespace bdt::metrics;

// ---- exposition ---------------------------------------------------------------------

TEST(MetricsExposition, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
  Exposition x;
  x.gauge("g", "help with \\ and\nnewline").add({{"path", "/img/\"a\"\\b\n"}}, 1);
  EXPECT_EQ(x.render(),
            "# HELP btrfs_dio_trace_g help with \\\\ and\\nnewline\n"
            "# TYPE btrfs_dio_trace_g gauge\n"
            "btrfs_dio_trace_g{path=\"/img/\\\"a\\\"\\\\b\\n\"} 1\n");
}

TEST(MetricsExposition, Values) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(18446744073709551615.0), "1.8446744073709552e+19");
  EXPECT_EQ(format_value(9007199254740991.0), "9007199254740991");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(1.0 / 0.0), "+Inf");
  EXPECT_EQ(format_value(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(format_value(0.0 / 0.0), "NaN");
  EXPECT_EQ(format_value(1023 / 1e9), "1.023e-06");
}

TEST(MetricsExposition, HistogramBucketsAreCumulative) {
  Exposition x;
  HistogramSample h;
  h.labels = {{"fs", "x"}};
  h.buckets = {{0.001, 2}, {0.01, 0}, {0.1, 3}};
  h.count = 6;  // one above the last bound
  h.sum = 0.5;
  x.histogram("lat_seconds", "Latency.").add(h);
  EXPECT_EQ(x.render(),
            "# HELP btrfs_dio_trace_lat_seconds Latency.\n"
            "# TYPE btrfs_dio_trace_lat_seconds histogram\n"
            "btrfs_dio_trace_lat_seconds_bucket{fs=\"x\",le=\"0.001\"} 2\n"
            "btrfs_dio_trace_lat_seconds_bucket{fs=\"x\",le=\"0.01\"} 2\n"
            "btrfs_dio_trace_lat_seconds_bucket{fs=\"x\",le=\"0.1\"} 5\n"
            "btrfs_dio_trace_lat_seconds_bucket{fs=\"x\",le=\"+Inf\"} 6\n"
            "btrfs_dio_trace_lat_seconds_sum{fs=\"x\"} 0.5\n"
            "btrfs_dio_trace_lat_seconds_count{fs=\"x\"} 6\n");
  // Without a known sum there is no _sum line (and nothing invented).
  Exposition y;
  h.sum.reset();
  y.histogram("lat_seconds", "Latency.").add(h);
  EXPECT_EQ(y.render().find("_sum"), std::string::npos);
  // Bounds must ascend.
  Exposition z;
  h.buckets = {{0.1, 1}, {0.01, 1}};
  z.histogram("lat_seconds", "Latency.").add(h);
  EXPECT_THROW(z.render(), std::logic_error);
}

TEST(MetricsExposition, StableOrderingAndNaming) {
  auto build = [](bool reversed) {
    Exposition x;
    auto& c = x.counter("b_total", "B.");
    auto& g = x.gauge("a", "A.");
    if (reversed) {
      c.add({{"k", "z"}}, 1).add({{"k", "a"}}, 2);
      g.add({{"k", "2"}}, 3).add({{"k", "10"}}, 4);
    } else {
      c.add({{"k", "a"}}, 2).add({{"k", "z"}}, 1);
      g.add({{"k", "10"}}, 4).add({{"k", "2"}}, 3);
    }
    return x.render();
  };
  std::string r = build(false);
  EXPECT_EQ(r, build(true));
  EXPECT_LT(r.find("btrfs_dio_trace_a{"), r.find("btrfs_dio_trace_b_total{"));
  EXPECT_LT(r.find("{k=\"a\"} 2"), r.find("{k=\"z\"} 1"));
  Exposition x;
  EXPECT_THROW(x.counter("events", "no _total"), std::logic_error);
  EXPECT_THROW(x.gauge("x_total", "gauge with _total"), std::logic_error);
  EXPECT_THROW(x.gauge("bad-name", "?"), std::logic_error);
  x.gauge("ok", "ok");
  EXPECT_THROW(x.gauge("ok", "twice"), std::logic_error);
  Exposition y;
  y.gauge("l", "bad label").add({{"0bad", "v"}}, 1);
  EXPECT_THROW(y.render(), std::logic_error);
}

// ---- collector --------------------------------------------------------------------

namespace {
Event ev(EventType t, uint64_t ts, uint32_t tid, Payload p) {
  Event e;
  e.type = t;
  e.ts_ns = ts;
  e.pid = 100;
  e.tid = tid;
  e.dev = 45;
  e.ino = 262;
  e.fs = *Fsid::parse("eb3163d8-c34d-459d-99d6-2964b5d6974a");
  e.body = std::move(p);
  return e;
}
Event begin(uint64_t ts, uint32_t tid, uint64_t pos, uint64_t count, bool write, uint64_t done_before = 0) {
  DioBegin b;
  b.pos = pos;
  b.count = count;
  b.write = write;
  b.done_before = done_before;
  return ev(EventType::DioBegin, ts, tid, b);
}
Event end(uint64_t ts, uint32_t tid, uint64_t pos, int64_t ret) {
  DioEnd d;
  d.pos = pos;
  d.ret = ret;
  return ev(EventType::DioEnd, ts, tid, d);
}
std::string line_of(const std::string& text, const std::string& prefix) {
  auto p = text.find("\n" + prefix);
  if (p == std::string::npos) return "";
  auto e = text.find('\n', p + 1);
  return text.substr(p + 1, e - p - 1);
}
// A completion as the BPF programs count it (bpf/counts.bpf.h, count_dio_end).
void count(DioCounts& d, int64_t ret, int32_t error, bool write, uint64_t done_before, uint64_t n,
           std::optional<uint64_t> lat_ns) {
  const bdt_dio_outcome o = bdt_dio_outcome_of(ret, error, write, done_before, n);
  if (d.lat_buckets.empty()) d.lat_buckets.assign(kLatencyBuckets, 0);
  if (o.again) {
    ++d.again;
    return;
  }
  ++d.requests;
  d.bytes += o.bytes;
  d.errors += o.error;
  d.short_writes += o.short_write;
  if (lat_ns) {
    ++d.lat_buckets[qemu::Log2Histogram::bucket_of(*lat_ns)];
    d.lat_sum_ns += *lat_ns;
  }
}
}  // namespace

TEST(DioOutcome, AsDocsMetricsDefinesIt) {
  auto o = bdt_dio_outcome_of(4096, 0, true, 0, 4096);
  EXPECT_FALSE(o.again || o.error || o.short_write);
  EXPECT_EQ(o.bytes, 4096u);
  o = bdt_dio_outcome_of(4096, 0, true, 0, 8192);  // short: 4096 of 8192
  EXPECT_TRUE(o.short_write);
  EXPECT_FALSE(o.error);
  // a continuation: ret includes the 8192 bytes of the earlier part
  o = bdt_dio_outcome_of(16384, 0, true, 8192, 8192);
  EXPECT_EQ(o.bytes, 8192u);
  EXPECT_FALSE(o.short_write);
  o = bdt_dio_outcome_of(-5, 0, false, 0, 4096);
  EXPECT_TRUE(o.error);
  EXPECT_FALSE(o.short_write);  // reads are never short writes
  EXPECT_EQ(o.bytes, 0u);
  o = bdt_dio_outcome_of(0, -5, true, 0, 4096);  // error with ret 0: an error, and short
  EXPECT_TRUE(o.error);
  EXPECT_TRUE(o.short_write);
  for (auto [ret, err] : {std::pair<int64_t, int32_t>{-11, 0}, {0, -11}}) {
    o = bdt_dio_outcome_of(ret, err, true, 0, 4096);  // an io_uring nowait attempt
    EXPECT_TRUE(o.again);
    EXPECT_FALSE(o.error || o.short_write);
  }
  o = bdt_dio_outcome_of(4096, -11, true, 0, 4096);  // bytes done: not an attempt
  EXPECT_FALSE(o.again);
  EXPECT_TRUE(o.error);
}

TEST(MetricsCollector, DioRequestsBytesLatencyShortWrites) {
  Collector c({}, {"dio-short-write"});
  int asked = 0;
  c.set_mountpoint_resolver([&](const Fsid&) {
    ++asked;
    return std::string("/srv/images");
  });
  TracerState t;
  FsCounts f;
  f.fs = *Fsid::parse("eb3163d8-c34d-459d-99d6-2964b5d6974a");
  count(f.write, 4096, 0, true, 0, 4096, 3000);           // 3 us write
  count(f.write, 4096, 0, true, 0, 8192, 2'000'000);      // short: 4096 of 8192, 2 ms
  count(f.read, -5, 0, false, 0, 4096, 500);              // read error
  count(f.unknown, 4096, 0, false, 0, 0, std::nullopt);   // end without begin, direction unknown
  t.counts.valid = true;
  t.counts.fs.push_back(f);
  t.counts.events_by_type.assign(32, 0);
  t.counts.events_by_type[static_cast<size_t>(EventType::DioBegin)] = 3;
  t.counts.dio_begins = 3;
  t.counts.dio_ends = 3;
  t.counts.dio_unmatched = 1;
  t.counts.oe_untracked = 2;
  Finding fd;
  fd.detector = "dio-short-write";
  fd.level = Level::Symptom;
  fd.severity = Severity::Critical;
  c.on_finding(fd);
  t.live.lost_per_cpu = {0, 3};
  t.hooks = {{HookId::dio_begin, Mechanism::TpBtf, true, ""},
             {HookId::dio_complete, Mechanism::TpBtf, true, ""},
             {HookId::eb_free, Mechanism::None, false, "no"}};
  std::string s = c.snapshot(t).render();
  const std::string fs = "fs=\"eb3163d8-c34d-459d-99d6-2964b5d6974a\",mountpoint=\"/srv/images\"";
  EXPECT_EQ(asked, 1);  // once per filesystem
  EXPECT_EQ(line_of(s, "btrfs_dio_trace_dio_requests_total{" + fs + ",direction=\"write\"}"),
            "btrfs_dio_trace_dio_requests_total{" + fs + ",direction=\"write\"} 2");
  EXPECT_NE(s.find("btrfs_dio_trace_dio_bytes_total{" + fs + ",direction=\"write\"} 8192\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_dio_requests_total{" + fs + ",direction=\"read\"} 1\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_dio_errors_total{" + fs + ",direction=\"read\"} 1\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_dio_requests_total{" + fs + ",direction=\"unknown\"} 1\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_dio_short_writes_total{" + fs + "} 1\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_dio_unmatched_total 1\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_ordered_extents_untracked_total 2\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_dio_inflight 0\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_dio_inflight_evicted_total 0\n"), std::string::npos);
  // 3 us lands in log2 bucket 11 ([2048, 4096) ns: le 4.095e-06), 2 ms in bucket 20.
  EXPECT_NE(s.find("btrfs_dio_trace_dio_request_latency_seconds_bucket{" + fs + ",direction=\"write\",le=\"2.047e-06\"} 0\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_dio_request_latency_seconds_bucket{" + fs + ",direction=\"write\",le=\"4.095e-06\"} 1\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_dio_request_latency_seconds_bucket{" + fs + ",direction=\"write\",le=\"0.002097151\"} 2\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_dio_request_latency_seconds_sum{" + fs + ",direction=\"write\"} 0.002003\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_dio_request_latency_seconds_count{" + fs + ",direction=\"write\"} 2\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_events_total{type=\"dio_begin\"} 3\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_events_total{type=\"csum_error\"} 0\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_lost_events_total{cpu=\"1\"} 3\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_findings_total{detector=\"dio-short-write\",level=\"symptom\",severity=\"critical\"} 1\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_findings_total{detector=\"dio-short-write\",level=\"hazard\",severity=\"info\"} 0\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_hooks_attached{mechanism=\"tp_btf\"} 2\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_hooks_not_attached 1\n"), std::string::npos);
  EXPECT_EQ(s.find("qemu_"), std::string::npos);  // only with --qemu
  // requests the kernel's map lost (begun, never ended, not in flight)
  t.counts.dio_begins = 10;
  t.counts.dio_inflight = 4;
  s = c.snapshot(t).render();
  EXPECT_NE(s.find("btrfs_dio_trace_dio_inflight 4\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_dio_inflight_evicted_total 3\n"), std::string::npos);
}

TEST(MetricsCollector, BuildInfoAndProcessMetrics) {
  Collector c;
  TracerState t;
  t.version = "1.2.3";
  t.libbpf_version = "1.1";
  ProcessStats p;
  p.cpu_seconds = 1.5, p.start_time_s = 1700000000.25, p.resident_bytes = 4096, p.virtual_bytes = 8192;
  p.open_fds = 9, p.max_fds = 1024;
  t.process = p;
  std::string s = c.snapshot(t).render();
  EXPECT_NE(s.find("btrfs_dio_trace_build_info{version=\"1.2.3\",libbpf=\"1.1\"} 1\n"), std::string::npos) << s;
  EXPECT_NE(s.find("\nprocess_cpu_seconds_total 1.5\n"), std::string::npos);
  EXPECT_NE(s.find("# TYPE process_cpu_seconds_total counter\n"), std::string::npos);
  EXPECT_NE(s.find("\nprocess_start_time_seconds 1700000000.25\n"), std::string::npos);
  EXPECT_NE(s.find("\nprocess_resident_memory_bytes 4096\n"), std::string::npos);
  EXPECT_NE(s.find("\nprocess_virtual_memory_bytes 8192\n"), std::string::npos);
  EXPECT_NE(s.find("\nprocess_open_fds 9\n"), std::string::npos);
  EXPECT_NE(s.find("\nprocess_max_fds 1024\n"), std::string::npos);
  // Only process_* may go without the prefix.
  Exposition x;
  EXPECT_THROW(x.standard_gauge("uptime", "h"), std::logic_error);
}

TEST(MetricsProcess, ParsesProcStat) {
  // comm with spaces and parentheses; negative priority/nice fields.
  const std::string stat =
      "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 -20 -5 3 0 123456 "
      "104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  auto s = parse_proc_stat(stat, 100, 4096, 1700000000);
  ASSERT_TRUE(s);
  EXPECT_DOUBLE_EQ(s->cpu_seconds, 3.0);
  EXPECT_DOUBLE_EQ(s->start_time_s, 1700000000 + 1234.56);
  EXPECT_EQ(s->virtual_bytes, 104857600u);
  EXPECT_EQ(s->resident_bytes, 2560u * 4096);
  EXPECT_FALSE(parse_proc_stat("garbage", 100, 4096, 0));
  EXPECT_FALSE(parse_proc_stat("1 (x) S 1 2", 100, 4096, 0));
  EXPECT_EQ(parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"), 1700000000u);
  EXPECT_FALSE(parse_boot_time("cpu 1\n"));
  auto self = read_process_stats();
  ASSERT_TRUE(self);
  EXPECT_GT(self->resident_bytes, 0u);
  EXPECT_GT(self->open_fds, 2u);
  EXPECT_GT(self->max_fds, 0u);
  EXPECT_GT(self->start_time_s, 1.6e9);
}

TEST(MetricsCollector, FilesystemLabelsAreBounded) {
  CollectorOptions o;
  o.max_fs = 2;
  Collector c(o);
  TracerState t;
  t.counts.valid = true;
  for (int i = 0; i < 5; ++i) {
    FsCounts f;
    f.fs.b[0] = static_cast<uint8_t>(i + 1);
    count(f.unknown, 4096, 0, false, 0, 0, std::nullopt);
    t.counts.fs.push_back(f);
  }
  FsCounts kernel_overflow;  // the kernel's own shared slot adds up there too
  kernel_overflow.overflow = true;
  count(kernel_overflow.unknown, 4096, 0, false, 0, 0, std::nullopt);
  t.counts.fs.push_back(kernel_overflow);
  std::string s = c.snapshot(t).render();
  EXPECT_NE(s.find("btrfs_dio_trace_dio_requests_total{fs=\"(overflow)\",mountpoint=\"(overflow)\",direction=\"unknown\"} 4\n"), std::string::npos) << s;
  size_t series = 0;
  for (size_t p = 0; (p = s.find("btrfs_dio_trace_dio_requests_total{", p)) != std::string::npos; ++p) ++series;
  EXPECT_EQ(series, 3u * 3u);  // 2 filesystems + overflow, read/write/unknown each
}

TEST(MetricsCollector, QemuSeriesStickyTopNWithOverflow) {
  qemu::StatsCollector st;
  auto vm_io = [&](std::string_view vm, std::string_view image, uint64_t ts, uint32_t tid) {
    Event b = begin(ts, tid, 0, 4096, true);
    b.vm = vm;
    b.image = image;
    st.on_event(b);
    Event e = end(ts + 5000, tid, 4096, 4096);
    e.vm = vm;
    e.image = image;
    st.on_event(e);
  };
  vm_io("web", "/img/web.raw", 1000, 1);
  vm_io("db", "/img/\"db\".raw", 2000, 2);
  vm_io("zz", "/img/zz.raw", 3000, 3);
  CollectorOptions o;
  o.max_qemu_series = 2;
  Collector c(o);
  TracerState t;
  t.qemu = &st;
  t.qemu_vms = 3;
  t.qemu_counters.kernel_hist_capacity = 4096;
  t.qemu_counters.kernel_hist_used = 6;
  t.qemu_counters.kernel_hist_overflow = 2;
  std::string s = c.snapshot(t).render();
  EXPECT_NE(s.find("btrfs_dio_trace_qemu_requests_total{vm=\"db\",image=\"/img/\\\"db\\\".raw\",direction=\"write\"} 1\n"), std::string::npos) << s;
  EXPECT_NE(s.find("btrfs_dio_trace_qemu_requests_total{vm=\"web\",image=\"/img/web.raw\",direction=\"write\"} 1\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_qemu_requests_total{vm=\"(overflow)\",image=\"(overflow)\",direction=\"write\"} 1\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_qemu_request_latency_seconds_count{vm=\"web\",image=\"/img/web.raw\",direction=\"write\"} 1\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_qemu_vms 3\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_qemu_latency_kernel_capacity 4096\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_qemu_latency_kernel_keys 6\n"), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_qemu_latency_kernel_overflow_total 2\n"), std::string::npos);
  // A VM seen first now keeps its series; one that appears later goes to overflow.
  vm_io("aa", "/img/aa.raw", 4000, 4);
  s = c.snapshot(t).render();
  EXPECT_EQ(s.find("vm=\"aa\""), std::string::npos);
  EXPECT_NE(s.find("btrfs_dio_trace_qemu_requests_total{vm=\"(overflow)\",image=\"(overflow)\",direction=\"write\"} 2\n"), std::string::npos);
}

// ---- HTTP ---------------------------------------------------------------------------

TEST(MetricsHttp, ParseListenAddress) {
  auto a = parse_listen_address("127.0.0.1:9089");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 9089);
  a = parse_listen_address("[::1]:9089");
  EXPECT_EQ(a.host, "::1");
  a = parse_listen_address(":9089");
  EXPECT_EQ(a.host, "");
  EXPECT_EQ(a.port, 9089);
  for (const char* bad : {"", "9089", "::1:9089", "[::1]9089", "[::1", "host:", "host:65536", "host:12a", "[]:1"})
    EXPECT_THROW(parse_listen_address(bad), InputError) << bad;
}

TEST(MetricsHttp, ParseRequest) {
  auto r = parse_request("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", 8192);
  ASSERT_EQ(r.state, Request::State::Ok);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/metrics");
  EXPECT_EQ(parse_request("GET /metrics HTTP/1.1\r\nHost: x\r\n", 8192).state, Request::State::Incomplete);
  EXPECT_EQ(parse_request("GET /metrics HTTP/1.0\n\n", 8192).state, Request::State::Ok);
  for (const char* bad : {"GET\r\n\r\n", "GET /metrics\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n",
                          "GET /metrics HTTP/2.0\r\n\r\n", "G@T /metrics HTTP/1.1\r\n\r\n",
                          "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", "GET /m\x01 HTTP/1.1\r\n\r\n"})
    EXPECT_EQ(parse_request(bad, 8192).state, Request::State::Bad) << bad;
  // A TLS ClientHello (no line ends at all) is refused at its first byte.
  EXPECT_EQ(parse_request(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 8192).state,
            Request::State::Bad);
  std::string big = "GET /metrics HTTP/1.1\r\nX: " + std::string(9000, 'a');
  EXPECT_EQ(parse_request(big, 8192).state, Request::State::TooLarge);
  EXPECT_EQ(parse_request(big + "\r\n\r\n", 8192).state, Request::State::TooLarge);
}

TEST(MetricsHttp, Respond) {
  auto ok = [](std::string m, std::string t) {
    Request r;
    r.state = Request::State::Ok;
    r.method = std::move(m);
    r.target = std::move(t);
    return r;
  };
  EXPECT_EQ(respond(ok("GET", "/metrics"), "x 1\n").status, 200);
  EXPECT_EQ(respond(ok("GET", "/metrics?name[]=x"), "x 1\n").body, "x 1\n");
  // A landing page at / (when the server has one), plain 404 elsewhere.
  EXPECT_EQ(respond(ok("GET", "/"), "").status, 404);
  auto landing = respond(ok("GET", "/"), "x 1\n", "<html>hello</html>");
  EXPECT_EQ(landing.status, 200);
  EXPECT_EQ(landing.body, "<html>hello</html>");
  EXPECT_EQ(landing.content_type, "text/html; charset=utf-8");
  EXPECT_FALSE(landing.metrics);
  EXPECT_TRUE(respond(ok("GET", "/metrics"), "x 1\n", "<html>hello</html>").metrics);
  EXPECT_EQ(respond(ok("POST", "/"), "", "<html>hello</html>").status, 405);
  EXPECT_EQ(respond(ok("GET", "/metricsX"), "").status, 404);
  EXPECT_EQ(respond(ok("POST", "/metrics"), "").status, 405);
  auto head = respond(ok("HEAD", "/metrics"), "x 1\n");
  EXPECT_EQ(serialize(head).find("x 1"), std::string::npos);
  EXPECT_NE(serialize(head).find("Content-Length: 4\r\n"), std::string::npos);
  std::string s = serialize(respond(ok("GET", "/metrics"), "x 1\n"));
  EXPECT_EQ(s.substr(0, 17), "HTTP/1.1 200 OK\r\n");
  EXPECT_NE(s.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos);
}

namespace {
int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}
// Sends req (if any), reads until the server closes.
std::string exchange(uint16_t port, const std::string& req, bool half_close = false) {
  int fd = connect_to(port);
  if (fd < 0) return "connect failed";
  if (!req.empty()) (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  if (half_close) ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}
Server::Options fast() {
  Server::Options o;
  o.request_timeout_ms = 300;
  o.fresh_wait_ms = 50;
  o.max_request_bytes = 1024;
  o.max_connections = 4;
  return o;
}
}  // namespace

TEST(MetricsHttp, ServesMetricsAnd404OnLoopback) {
  auto srv = Server::start("127.0.0.1:0", fast());
  ASSERT_NE(srv->port(), 0);
  EXPECT_EQ(srv->bound_address(), "127.0.0.1:" + std::to_string(srv->port()));
  srv->publish("btrfs_dio_trace_x 1\n");
  std::string r = exchange(srv->port(), "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_NE(r.find("\r\n\r\nbtrfs_dio_trace_x 1\n"), std::string::npos);
  EXPECT_EQ(exchange(srv->port(), "GET /other HTTP/1.1\r\n\r\n").substr(0, 12), "HTTP/1.1 404");
  EXPECT_EQ(exchange(srv->port(), "garbage\r\n\r\n").substr(0, 12), "HTTP/1.1 400");
  EXPECT_EQ(exchange(srv->port(), "GET /metrics HTTP/1.1\r\nX: " + std::string(2000, 'a') + "\r\n\r\n").substr(0, 12),
            "HTTP/1.1 431");
  // Half-closed client still gets its answer; a request with a body too.
  EXPECT_EQ(exchange(srv->port(), "GET /metrics HTTP/1.0\r\n\r\n", true).substr(0, 12), "HTTP/1.1 200");
  EXPECT_EQ(exchange(srv->port(), "GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").substr(0, 12),
            "HTTP/1.1 200");
  EXPECT_GE(srv->requests(), 6u);
  EXPECT_GE(srv->rejected(), 2u);
  // A scrape waiting for a fresh snapshot gets the one published meanwhile
  // (a wait long enough for a loaded machine or a sanitizer build: the
  // publisher answers as soon as it sees the request).
  Server::Options patient = fast();
  patient.fresh_wait_ms = 4000;  // under the client's 5 s receive timeout
  auto srv2 = Server::start("127.0.0.1:0", patient);
  srv2->publish("btrfs_dio_trace_x 1\n");
  std::thread pub([&] {
    for (int i = 0; i < 4000 && !srv2->wants_fresh(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    srv2->publish("btrfs_dio_trace_x 2\n");
  });
  r = exchange(srv2->port(), "GET /metrics HTTP/1.1\r\n\r\n");
  pub.join();
  EXPECT_NE(r.find("btrfs_dio_trace_x 2\n"), std::string::npos) << r;
}

TEST(MetricsHttp, SlowClientsTimeOutWithoutBlockingOthers) {
  auto srv = Server::start("127.0.0.1:0", fast());
  srv->publish("x 1\n");
  // Four slow clients (the cap) send half a request and stall.
  std::vector<int> slow;
  for (int i = 0; i < 4; ++i) {
    int fd = connect_to(srv->port());
    ASSERT_GE(fd, 0);
    (void)!::send(fd, "GET /metr", 9, MSG_NOSIGNAL);
    slow.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // Over the cap: refused with 503 at once, not queued.
  EXPECT_EQ(exchange(srv->port(), "GET /metrics HTTP/1.1\r\n\r\n").substr(0, 12), "HTTP/1.1 503");
  // After the request timeout the slow ones are closed (EOF, no response)...
  for (int fd : slow) {
    char c;
    EXPECT_EQ(::recv(fd, &c, 1, 0), 0);
    ::close(fd);
  }
  // ...and a normal scrape works again.
  EXPECT_EQ(exchange(srv->port(), "GET /metrics HTTP/1.1\r\n\r\n").substr(0, 12), "HTTP/1.1 200");
  EXPECT_GE(srv->rejected(), 5u);
}

TEST(MetricsHttp, BindErrors) {
  auto srv = Server::start("127.0.0.1:0", fast());
  std::string taken = "127.0.0.1:" + std::to_string(srv->port());
  try {
    Server::start(taken, fast());
    FAIL() << "bound a port in use";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("already in use"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Server::start("192.0.2.1:9089", fast()), InputError);  // not an address of this host
  EXPECT_THROW(Server::start("no-such-host.invalid:9089", fast()), InputError);
  // IPv6 loopback, when the host has IPv6.
  try {
    auto v6 = Server::start("[::1]:0", fast());
    EXPECT_EQ(v6->bound_address(), "[::1]:" + std::to_string(v6->port()));
  } catch (const InputError& e) {
    GTEST_LOG_(INFO) << "no IPv6 loopback here: " << e.what();
  }
  auto any = Server::start(":0", fast());
  EXPECT_NE(any->port(), 0);
}
