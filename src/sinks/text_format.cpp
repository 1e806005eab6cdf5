// How each event is printed in text output: the common part here, each payload
// field as its list in bdt/event_fields.h says ("name=value" unless told otherwise).
#include <fmt/format.h>
#include <sys/sysmacros.h>

#include <ctime>
#include <type_traits>

#include "bdt/event_fields.h"
#include "sinks/sink.h"

namespace bdt {

namespace {
std::string flag_names(uint32_t bits, std::span<const FlagName> names) {
  std::string s;
  for (const auto& n : names)
    if (bits & n.bit) {
      if (!s.empty()) s += '|';
      s += n.name;
    }
  return s.empty() ? "-" : s;
}

std::string errno_str(int64_t ret) {
  // Errno values are small; anything below -4095 (INT64_MIN included, whose
  // negation overflows) is printed as the number it is.
  if (ret >= 0 || ret < -4095) return fmt::format("{}", ret);
  switch (-ret) {
    case 5: return fmt::format("{} (EIO)", ret);
    case 11: return fmt::format("{} (EAGAIN)", ret);
    case 17: return fmt::format("{} (EEXIST)", ret);
    case 28: return fmt::format("{} (ENOSPC)", ret);
    case 22: return fmt::format("{} (EINVAL)", ret);
    case 14: return fmt::format("{} (EFAULT)", ret);
    case 4: return fmt::format("{} (EINTR)", ret);
    default: return fmt::format("{}", ret);
  }
}
}  // namespace

std::string format_dev(uint64_t st_dev) {
  return fmt::format("{}:{}", major(st_dev), minor(st_dev));
}

std::string format_time(uint64_t ts_ns, const TimeBase& tb) {
  if (tb.mono_to_realtime_ns != 0) {
    int64_t wall = wall_ns(ts_ns, tb.mono_to_realtime_ns);
    if (tb.utc) return format_wall_utc(wall);
    time_t secs = static_cast<time_t>(wall / 1'000'000'000);
    struct tm tm {};
    localtime_r(&secs, &tm);
    return fmt::format("{:02}:{:02}:{:02}.{:06}", tm.tm_hour, tm.tm_min, tm.tm_sec,
                       (wall % 1'000'000'000) / 1000);
  }
  int64_t rel = static_cast<int64_t>(ts_ns - tb.origin_ns);
  return fmt::format("+{}.{:06}", rel / 1'000'000'000, (rel % 1'000'000'000) / 1000);
}

std::string format_event_details(const Event& ev) {
  std::string s;
  append_event_details(s, ev);
  return s;
}

namespace {

// The payload's items, separated by one space; what the fields' .text_*()
// attributes (bdt/event_fields.h) and their .text_with() functions write to.
struct TextOut {
  std::string& s;
  bool first = true;

  void sep(bool glued = false) {
    if (!first && !glued) s += ' ';
    first = false;
  }
  void put(std::string_view x) { s += x; }
  void put(const char* x) { s += x; }
  void put(const std::string& x) { s += x; }
  template <class T>
    requires std::is_arithmetic_v<T>
  void put(T v) {
    fmt::format_to(std::back_inserter(s), "{}", v);
  }
  // One item made of the pieces given.
  template <class... A>
  void item(const A&... a) {
    sep();
    (put(a), ...);
  }
  std::string dev(uint64_t st_dev) const { return format_dev(st_dev); }
};

template <class D, class T>
void put_value(TextOut& t, const D& d, const T& v) {
  if constexpr (std::is_same_v<T, Phase> || std::is_same_v<T, IoctlCmd> ||
                std::is_same_v<T, FallbackVia>) {
    t.put(to_string(v));
  } else if constexpr (std::is_same_v<T, bool>) {
    t.put(v ? "1" : "0");
  } else if constexpr (std::is_same_v<T, std::optional<bool>>) {
    t.put(*v ? "1" : "0");
  } else if constexpr (std::is_same_v<T, uint32_t>) {
    if (d.is_flags()) t.put(flag_names(v, d.a.flag_names()));
    else t.put(v);
  } else {
    t.put(v);
  }
}

struct PayloadText {
  TextOut& t;
  EventType type;

  template <class P>
  void operator()(const P& p) const {
    using fields::Style;
    fields::for_each_text<P>([&](const auto& d) {
      if (!(d.a.text_types & fields::type_bit(type))) return;
      if (!fields::holds(d.a.text_when, d, p)) return;
      const auto& v = d.ref(p);
      using T = std::remove_cvref_t<decltype(v)>;
      if constexpr (std::is_same_v<T, Phase>) {
        if (v == Phase::None) return;
      } else if constexpr (std::is_same_v<T, std::optional<bool>>) {
        if (!v) return;
      }
      switch (d.a.style) {
        case Style::Hidden: return;
        case Style::Custom:
          if constexpr (std::is_invocable_v<decltype(d.text_fn), TextOut&, const P&>) d.text_fn(t, p);
          return;
        case Style::Kv:
          t.item(d.label(), "=");
          put_value(t, d, v);
          return;
        case Style::Errno:
          if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>)
            t.item(d.label(), "=", errno_str(v));
          return;
        case Style::Words:
          if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, std::optional<bool>>) {
            const bool b = [&] {
              if constexpr (std::is_same_v<T, bool>) return v;
              else return *v;
            }();
            std::string_view w = b ? d.a.yes : d.a.no;
            if (w.empty()) return;
            t.sep(d.a.glued);
            t.put(w);
          }
          return;
        case Style::Value:
          t.sep();
          put_value(t, d, v);
          return;
        case Style::RangeStart:
          t.item(d.label(), "=[");
          put_value(t, d, v);
          return;
        case Style::RangeLen:
          t.sep(true);
          t.put(",+");
          put_value(t, d, v);
          t.put(")");
          return;
      }
    });
  }
};

}  // namespace

void append_event_details(std::string& s, const Event& ev) {
  auto out = std::back_inserter(s);
  bool has_file = ev.ino != 0;
  if (has_file) fmt::format_to(out, "dev={} ino={} ", format_dev(ev.dev), ev.ino);
  TextOut t{s};
  std::visit(PayloadText{t, ev.type}, ev.body);
  if (!ev.vm.empty()) fmt::format_to(out, " vm={}", ev.vm);
  if (!ev.image.empty()) fmt::format_to(out, " image={}", ev.image);
}

}  // namespace bdt
