// Prometheus text exposition format 0.0.4: model and rendering
// (metrics/exposition.h).
#include "metrics/exposition.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/safe_text.h"

namespace bdt::metrics {

std::string_view to_string(Type t) {
  switch (t) {
    case Type::Counter: return "counter";
    case Type::Gauge: return "gauge";
    case Type::Histogram: return "histogram";
  }
  return "untyped";
}

namespace {
bool name_char(char c, bool first, bool colon) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (colon && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}
bool valid_name(std::string_view s, bool colon) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (!name_char(s[i], i == 0, colon)) return false;
  return true;
}
bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void render_labels(std::string& out, const Labels& l, const std::pair<std::string, std::string>* extra) {
  if (l.empty() && !extra) return;
  out += '{';
  bool first = true;
  auto one = [&](const std::string& k, const std::string& v) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    out += escape_label_value(v);
    out += '"';
  };
  for (const auto& [k, v] : l) one(k, v);
  if (extra) one(extra->first, extra->second);
  out += '}';
}

void check_labels(const Family& f, const Labels& l) {
  for (const auto& [k, v] : l) {
    (void)v;
    if (!valid_label_name(k) || k.starts_with("__") || (f.type == Type::Histogram && k == "le"))
      throw std::logic_error(fmt::format("metric {}: invalid label name '{}'", f.name, k));
  }
}

bool labels_less(const Labels& a, const Labels& b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
}
}  // namespace

bool valid_metric_name(std::string_view s) { return valid_name(s, true); }
bool valid_label_name(std::string_view s) { return valid_name(s, false); }

std::string escape_label_value(std::string_view raw) {
  // Valid UTF-8 first (invalid and control bytes as the text \xHH): one bad
  // process or VM name must not break the whole scrape.
  std::string s;
  append_label_safe(s, raw);
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string escape_help(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0)  // 2^53: exact integers
    return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);  // shortest representation that round-trips
}

Family& Family::add(Labels l, double v) {
  samples.push_back({std::move(l), v});
  return *this;
}
Family& Family::add(HistogramSample h) {
  histograms.push_back(std::move(h));
  return *this;
}

Family& Exposition::make(std::string_view name, Type t, std::string_view help, bool prefixed) {
  if (!prefixed && !name.starts_with("process_"))
    throw std::logic_error(fmt::format("metric {}: only the standard process_* metrics go without the prefix", name));
  std::string full = fmt::format("{}{}", prefixed ? kPrefix : "", name);
  if (!valid_metric_name(full)) throw std::logic_error(fmt::format("invalid metric name '{}'", full));
  if ((t == Type::Counter) != ends_with(full, "_total"))
    throw std::logic_error(fmt::format("metric {}: counters, and only counters, end in _total", full));
  if (t != Type::Histogram && (ends_with(full, "_bucket") || ends_with(full, "_count") || ends_with(full, "_sum")))
    throw std::logic_error(fmt::format("metric {}: _bucket/_count/_sum are histogram suffixes", full));
  for (const auto& f : families_)
    if (f.name == full) throw std::logic_error(fmt::format("metric {} defined twice", full));
  families_.push_back(Family{std::move(full), t, std::string(help), {}, {}});
  return families_.back();
}

Family& Exposition::counter(std::string_view name, std::string_view help) { return make(name, Type::Counter, help); }
Family& Exposition::gauge(std::string_view name, std::string_view help) { return make(name, Type::Gauge, help); }
Family& Exposition::histogram(std::string_view name, std::string_view help) { return make(name, Type::Histogram, help); }
Family& Exposition::standard_counter(std::string_view name, std::string_view help) {
  return make(name, Type::Counter, help, false);
}
Family& Exposition::standard_gauge(std::string_view name, std::string_view help) {
  return make(name, Type::Gauge, help, false);
}

std::string Exposition::render() const {
  std::vector<const Family*> fams;
  for (const auto& f : families_) fams.push_back(&f);
  std::sort(fams.begin(), fams.end(), [](const Family* a, const Family* b) { return a->name < b->name; });
  std::string out;
  for (const Family* f : fams) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f->name, escape_help(f->help), f->name, to_string(f->type));
    if (f->type != Type::Histogram) {
      std::vector<const Sample*> ss;
      for (const auto& s : f->samples) {
        check_labels(*f, s.labels);
        ss.push_back(&s);
      }
      std::stable_sort(ss.begin(), ss.end(), [](const Sample* a, const Sample* b) { return labels_less(a->labels, b->labels); });
      for (const Sample* s : ss) {
        out += f->name;
        render_labels(out, s->labels, nullptr);
        out += ' ';
        out += format_value(s->value);
        out += '\n';
      }
      continue;
    }
    std::vector<const HistogramSample*> hs;
    for (const auto& h : f->histograms) {
      check_labels(*f, h.labels);
      hs.push_back(&h);
    }
    std::stable_sort(hs.begin(), hs.end(), [](const HistogramSample* a, const HistogramSample* b) { return labels_less(a->labels, b->labels); });
    for (const HistogramSample* h : hs) {
      uint64_t cum = 0;
      double last = -INFINITY;
      for (const auto& [le, n] : h->buckets) {
        if (!(le > last) || std::isinf(le))
          throw std::logic_error(fmt::format("metric {}: bucket bounds must ascend and be finite", f->name));
        last = le;
        cum += n;
        std::pair<std::string, std::string> lab{"le", format_value(le)};
        out += f->name;
        out += "_bucket";
        render_labels(out, h->labels, &lab);
        out += fmt::format(" {}\n", std::min(cum, h->count));
      }
      std::pair<std::string, std::string> inf{"le", "+Inf"};
      out += f->name;
      out += "_bucket";
      render_labels(out, h->labels, &inf);
      out += fmt::format(" {}\n", h->count);
      if (h->sum) {
        out += f->name;
        out += "_sum";
        render_labels(out, h->labels, nullptr);
        out += ' ';
        out += format_value(*h->sum);
        out += '\n';
      }
      out += f->name;
      out += "_count";
      render_labels(out, h->labels, nullptr);
      out += fmt::format(" {}\n", h->count);
    }
  }
  return out;
}

}  // namespace bdt::metrics
