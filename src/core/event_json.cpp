// JSON-lines encoding of events, findings and the trace header.
//
// This is the one place that decides how an event is printed as JSON (the
// payload's keys come from its field list, bdt/event_fields.h); the decoder
// (src/replay/jsonl_reader.cpp) is its inverse and docs/events.md documents
// both. It runs on the live hot path: everything is appended to the
// caller's string with fmt::format_int / append, no JSON DOM, no temporaries.
#include "core/event_json.h"
#include "core/safe_text.h"

#include <fmt/format.h>

#include <bit>
#include <type_traits>

#include "bdt/event_fields.h"
#include "bdt/trace_header.h"

namespace bdt {

namespace {

constexpr char kHex[] = "0123456789abcdef";

void put_u(std::string& out, uint64_t v) {
  fmt::format_int f(v);
  out.append(f.data(), f.size());
}
void put_i(std::string& out, int64_t v) {
  fmt::format_int f(v);
  out.append(f.data(), f.size());
}

// K("pos") is the literal `,"pos":`, appended in one go.
#define K(name) ",\"" name "\":"

void key(std::string& out, std::string_view prefix) { out.append(prefix); }

template <class T>
void field(std::string& out, std::string_view k, T v) {
  key(out, k);
  if constexpr (std::is_same_v<T, bool>) {
    out.append(v ? "true" : "false");
  } else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T>) {
    put_u(out, v);
  } else if constexpr (std::is_integral_v<T>) {
    put_i(out, v);
  } else {
    append_json_string(out, std::string_view(v));
  }
}

void flags_field(std::string& out, std::string_view k, uint32_t bits,
                 std::span<const FlagName> names) {
  key(out, k);
  out.push_back('[');
  bool first = true;
  uint32_t known = 0;
  for (const auto& f : names) {
    known |= f.bit;
    if (!(bits & f.bit)) continue;
    if (!first) out.push_back(',');
    first = false;
    out.push_back('"');
    out.append(f.name);
    out.push_back('"');
  }
  // Canonical bits without a name (none today) are kept as "BIT<n>".
  for (uint32_t rest = bits & ~known; rest; rest &= rest - 1) {
    if (!first) out.push_back(',');
    first = false;
    out.append("\"BIT");
    put_u(out, static_cast<unsigned>(std::countr_zero(rest)));
    out.push_back('"');
  }
  out.push_back(']');
}

std::string_view level_name(Level l) { return l == Level::Symptom ? "symptom" : "hazard"; }
std::string_view severity_name(Severity s) {
  switch (s) {
    case Severity::Critical: return "critical";
    case Severity::Warning: return "warning";
    default: return "info";
  }
}

// Every payload field, as its list in bdt/event_fields.h says.
struct PayloadWriter {
  std::string& out;

  template <class P>
  void operator()(const P& p) const {
    fields::for_each<P>([&](const auto& d) {
      if (!fields::holds(d.a.json_when, d, p)) return;
      const auto& v = d.ref(p);
      using T = std::remove_cvref_t<decltype(v)>;
      if constexpr (std::is_same_v<T, Phase>) {
        if (v != Phase::None) field(out, d.json_key(), to_string(v));
      } else if constexpr (std::is_same_v<T, std::optional<bool>>) {
        if (v) field(out, d.json_key(), *v);
      } else if constexpr (std::is_same_v<T, IoctlCmd> || std::is_same_v<T, FallbackVia>) {
        field(out, d.json_key(), to_string(v));
      } else if constexpr (std::is_same_v<T, uint32_t>) {
        if (d.is_flags()) flags_field(out, d.json_key(), v, d.a.flag_names());
        else field(out, d.json_key(), v);
      } else {
        field(out, d.json_key(), v);
      }
    });
  }
};

void append_fs(std::string& out, const Fsid& fs) {
  // Same text as Fsid::str(), without the snprintf and the temporary string:
  // 38 bytes written in place.
  const size_t at = out.size();
  out.resize(at + 38);
  char* p = out.data() + at;
  *p++ = '"';
  for (size_t i = 0; i < fs.b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    *p++ = kHex[fs.b[i] >> 4];
    *p++ = kHex[fs.b[i] & 15];
  }
  *p = '"';
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      // Copy the run of plain ASCII in one go.
      size_t j = i + 1;
      while (j < s.size()) {
        auto d = static_cast<unsigned char>(s[j]);
        if (d < 0x20 || d >= 0x80 || d == '"' || d == '\\') break;
        ++j;
      }
      out.append(s.data() + i, j - i);
      i = j;
      continue;
    }
    switch (c) {
      case '"': out.append("\\\""); ++i; continue;
      case '\\': out.append("\\\\"); ++i; continue;
      case '\n': out.append("\\n"); ++i; continue;
      case '\t': out.append("\\t"); ++i; continue;
      case '\r': out.append("\\r"); ++i; continue;
      default: break;
    }
    size_t n = c >= 0x80 ? utf8_sequence_length(s, i) : 0;
    if (n) {
      out.append(s.data() + i, n);
      i += n;
    } else {  // control character or invalid UTF-8 byte
      out.append("\\u00");
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
      ++i;
    }
  }
  out.push_back('"');
}

void append_event_json(std::string& out, const Event& ev) {
  out.append("{\"ts_ns\":");
  put_u(out, ev.ts_ns);
  field(out, K("pid"), ev.pid);
  field(out, K("tid"), ev.tid);
  field(out, K("comm"), ev.comm_view());
  field(out, K("type"), to_string(ev.type));
  key(out, K("fs"));
  append_fs(out, ev.fs);
  field(out, K("dev"), ev.dev);
  field(out, K("ino"), ev.ino);
  if (!ev.vm.empty()) field(out, K("vm"), ev.vm);
  if (!ev.image.empty()) field(out, K("image"), ev.image);
  std::visit(PayloadWriter{out}, ev.body);
  out.push_back('}');
}

void append_finding_json(std::string& out, const Finding& f, int64_t mono_to_realtime_ns) {
  out.append("{\"type\":\"finding\"");
  field(out, K("detector"), f.detector);
  field(out, K("kind"), f.kind);
  field(out, K("level"), level_name(f.level));
  field(out, K("severity"), severity_name(f.severity));
  field(out, K("ts_ns"), f.ts_ns);
  if (mono_to_realtime_ns)
    field(out, K("wall_time"), format_wall_utc(wall_ns(f.ts_ns, mono_to_realtime_ns)));
  field(out, K("pid"), f.pid);
  field(out, K("tid"), f.tid);
  field(out, K("comm"), f.comm);
  key(out, K("fs"));
  append_fs(out, f.fs);
  if (f.dev) field(out, K("dev"), *f.dev);
  if (f.ino) field(out, K("ino"), *f.ino);
  if (f.range) {
    key(out, K("range"));
    out.push_back('[');
    put_u(out, f.range->first);
    out.push_back(',');
    put_u(out, f.range->second);
    out.push_back(']');
  }
  if (!f.vm.empty()) field(out, K("vm"), f.vm);
  if (!f.image.empty()) field(out, K("image"), f.image);
  field(out, K("message"), f.message);
  field(out, K("explanation"), f.explanation);
  field(out, K("exposure"), f.exposure);
  key(out, K("actors"));
  out.push_back('[');
  for (size_t i = 0; i < f.actors.size(); ++i) {
    const Actor& a = f.actors[i];
    if (i) out.push_back(',');
    out.append("{\"pid\":");
    put_u(out, a.pid);
    field(out, K("tid"), a.tid);
    field(out, K("comm"), a.comm);
    field(out, K("role"), a.role);
    out.push_back('}');
  }
  out.push_back(']');
  key(out, K("evidence"));
  out.push_back('[');
  for (size_t i = 0; i < f.evidence.size(); ++i) {
    if (i) out.push_back(',');
    append_event_json(out, f.evidence[i]);
  }
  out.push_back(']');
  if (!f.stack.empty()) {
    key(out, K("stack"));
    out.push_back('[');
    for (size_t i = 0; i < f.stack.size(); ++i) {
      if (i) out.push_back(',');
      append_json_string(out, f.stack[i]);
    }
    out.push_back(']');
  }
  if (f.trace_ended) field(out, K("trace_ended"), true);
  out.push_back('}');
}

void append_header_json(std::string& out, const TraceHeader& h) {
  out.append("{\"schema\":\"btrfs-dio-trace.events/");
  put_i(out, h.schema_version);
  out.push_back('"');
  if (!h.kernel.release.empty()) field(out, K("kernel"), h.kernel.release);
  if (!h.hostname.empty()) field(out, K("hostname"), h.hostname);
  if (h.mono_to_realtime_ns) field(out, K("mono_to_realtime_ns"), h.mono_to_realtime_ns);
  if (!h.hooks.empty()) {
    key(out, K("hooks"));
    out.push_back('[');
    for (size_t i = 0; i < h.hooks.size(); ++i) {
      if (i) out.push_back(',');
      out.append("{\"name\":");
      append_json_string(out, h.hooks[i].name);
      field(out, K("mechanism"), h.hooks[i].mechanism);
      field(out, K("attached"), h.hooks[i].attached);
      out.push_back('}');
    }
    out.push_back(']');
  }
  out.push_back('}');
}

}  // namespace bdt
