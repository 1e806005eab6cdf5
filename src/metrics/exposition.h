// Prometheus text exposition format 0.0.4: a small in-memory model of metric
// families and its rendering. Pure (no I/O, no clocks): unit-tested in
// tests/unit/metrics_test.cpp. What the tracer exports is in collector.h and
// docs/metrics.md.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bdt::metrics {

inline constexpr std::string_view kPrefix = "btrfs_dio_trace_";
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

enum class Type { Counter, Gauge, Histogram };
std::string_view to_string(Type t);  // "counter", "gauge", "histogram"

using Labels = std::vector<std::pair<std::string, std::string>>;

struct Sample {
  Labels labels;
  double value = 0;
};

// One histogram series. buckets: (upper bound, count of observations in that
// bucket alone), ascending bounds; rendered cumulatively, followed by the
// +Inf bucket (= count). sum is omitted when the source does not know it.
struct HistogramSample {
  Labels labels;
  std::vector<std::pair<double, uint64_t>> buckets;
  uint64_t count = 0;
  std::optional<double> sum;
};

struct Family {
  std::string name;  // full name, prefix included; counters end in _total
  Type type = Type::Gauge;
  std::string help;
  std::vector<Sample> samples;            // counter / gauge
  std::vector<HistogramSample> histograms;  // histogram

  Family& add(Labels l, double v);
  Family& add(HistogramSample h);
};

// A set of families being built for one scrape. Names are given without the
// prefix ("events_total"); counters must end in _total (std::logic_error
// otherwise: a programming error, caught by the unit tests).
class Exposition {
 public:
  Family& counter(std::string_view name, std::string_view help);
  Family& gauge(std::string_view name, std::string_view help);
  Family& histogram(std::string_view name, std::string_view help);
  // The process_* metrics every Prometheus client library exports under these
  // exact names (no prefix): process_cpu_seconds_total, process_open_fds, ...
  Family& standard_counter(std::string_view name, std::string_view help);
  Family& standard_gauge(std::string_view name, std::string_view help);
  // Families sorted by name, series by their label values (stable output, so
  // two scrapes of the same state are byte-identical).
  std::string render() const;
  const std::deque<Family>& families() const { return families_; }

 private:
  Family& make(std::string_view name, Type t, std::string_view help, bool prefixed = true);
  std::deque<Family> families_;  // deque: references returned by counter() etc. stay valid
};

// Pieces of the format, exposed for the unit tests.
bool valid_metric_name(std::string_view s);
bool valid_label_name(std::string_view s);
std::string escape_label_value(std::string_view s);  // valid UTF-8 (core/safe_text.h), then \ " and newline
std::string escape_help(std::string_view s);         // \ and newline
std::string format_value(double v);                  // integers exactly, +Inf, -Inf, NaN

}  // namespace bdt::metrics
