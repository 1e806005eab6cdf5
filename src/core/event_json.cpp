// JSON-lines encoding of events, findings and the trace header.
//
// This is the one place that decides how an event is printed as JSON; the
// decoder (src/replay/jsonl_reader.cpp) is its inverse and docs/events.md
// documents both. It runs on the live hot path: everything is appended to the
// caller's string with fmt::format_int / append, no JSON DOM, no temporaries.
#include "bdt/event_json.h"

#include <fmt/format.h>

#include <bit>
#include <type_traits>

#include "bdt/sink.h"
#include "bdt/trace_reader.h"

namespace bdt {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
size_t utf8_len(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    auto d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (d & 0x3F);
  }
  // Reject overlong forms, surrogates and out-of-range code points.
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
      (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    return 0;
  return n;
}

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

struct PayloadWriter {
  std::string& out;
  const Event& ev;

  void operator()(const DioBegin& p) const {
    field(out, K("pos"), p.pos);
    field(out, K("count"), p.count);
    field(out, K("done_before"), p.done_before);
    field(out, K("write"), p.write);
    field(out, K("aio"), p.aio);
    field(out, K("buf_shared"), p.buf_shared);
    field(out, K("buf_writable"), p.buf_writable);
    field(out, K("buf_file_dev"), p.buf_file_dev);
    field(out, K("buf_file_ino"), p.buf_file_ino);
    field(out, K("buf_file_off"), p.buf_file_off);
    field(out, K("buf_addr"), p.buf_addr);
    field(out, K("nodatasum"), p.nodatasum);
    field(out, K("partial"), p.partial);
  }
  void operator()(const DioEnd& p) const {
    field(out, K("pos"), p.pos);
    field(out, K("ret"), p.ret);
    field(out, K("error"), p.error);
    if (p.write) field(out, K("write"), *p.write);
  }
  void operator()(const GetExtent& p) const {
    if (p.phase != Phase::None) field(out, K("phase"), to_string(p.phase));
    field(out, K("start"), p.start);
    field(out, K("len"), p.len);
    if (p.phase != Phase::Enter) {
      field(out, K("em_start"), p.em_start);
      field(out, K("em_len"), p.em_len);
      field(out, K("block_start"), p.block_start);
      field(out, K("ret"), p.ret);
    }
  }
  void operator()(const EmAdd& p) const {
    field(out, K("start"), p.start);
    field(out, K("len"), p.len);
    field(out, K("block_start"), p.block_start);
    field(out, K("ret"), p.ret);
  }
  void operator()(const EmExist& p) const {
    field(out, K("e_start"), p.e_start);
    field(out, K("e_len"), p.e_len);
    field(out, K("map_start"), p.map_start);
    field(out, K("map_len"), p.map_len);
    field(out, K("start"), p.start);
    field(out, K("len"), p.len);
  }
  void operator()(const Ordered& p) const {
    field(out, K("file_offset"), p.file_offset);
    field(out, K("len"), p.len);
    flags_field(out, K("flags"), p.flags, ordered_flag_names());
    field(out, K("uptodate"), p.uptodate);
  }
  void operator()(const ExtentBuffer& p) const {
    if (p.phase != Phase::None) field(out, K("phase"), to_string(p.phase));
    field(out, K("eb_start"), p.eb_start);
    field(out, K("refs"), p.refs);
    flags_field(out, K("bflags"), p.bflags, eb_flag_names());
    if (p.eb_id) field(out, K("eb_id"), p.eb_id);
  }
  void operator()(const Ioctl& p) const {
    field(out, K("fd"), p.fd);
    field(out, K("cmd"), to_string(p.cmd));
    field(out, K("ret"), p.ret);
  }
  void operator()(const Reloc& p) const {
    field(out, K("block_group"), p.block_group);
    field(out, K("ret"), p.ret);
  }
  void operator()(const CsumError& p) const {
    field(out, K("offset"), p.offset);
    field(out, K("len"), p.len);
    field(out, K("mirror"), p.mirror);
  }
};

void append_fs(std::string& out, const Fsid& fs) {
  // Same text as Fsid::str(), without the snprintf and the temporary string.
  out.push_back('"');
  for (size_t i = 0; i < fs.b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[fs.b[i] >> 4]);
    out.push_back(kHex[fs.b[i] & 15]);
  }
  out.push_back('"');
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
    size_t n = c >= 0x80 ? utf8_len(s, i) : 0;
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
  std::visit(PayloadWriter{out, ev}, ev.body);
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
    field(out, K("wall_time"), format_wall_utc(static_cast<int64_t>(f.ts_ns) + mono_to_realtime_ns));
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
