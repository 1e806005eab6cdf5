// JSON-lines encoding of events, findings and the trace header.
//
// This is the one place that decides how an event is printed as JSON (the
// payload's keys come from its field list, bdt/event_fields.h); the decoder
// (src/replay/jsonl_reader.cpp) is its inverse and docs/events.md documents
// both. It runs on the live hot path (`--events --format json` prints every
// record): an event is written straight into memory the caller reserved for
// its bound (event_json_max), with no size check, call or allocation per key
// or value; findings and the header are rarer and append to a std::string.
// tests/unit/json_golden_test.cpp pins the bytes.
#include "core/event_json.h"
#include "core/decimal.h"
#include "core/safe_text.h"

#include <fmt/compile.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <type_traits>
#include <variant>

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

std::string_view level_name(Level l) { return l == Level::Symptom ? "symptom" : "hazard"; }
std::string_view severity_name(Severity s) {
  switch (s) {
    case Severity::Critical: return "critical";
    case Severity::Warning: return "warning";
    default: return "info";
  }
}

// ---- raw writing: the caller reserved room for the bound ---------------------------------
// The most bytes append_json_string / put_str writes for n bytes of text:
// quotes, and "\u00XX" (6) for any byte at worst.
constexpr size_t json_string_max(size_t n) { return 2 + 6 * n; }
constexpr size_t kNumberMax = decimal::kMaxChars;  // UINT64_MAX, INT64_MIN

// Inlined: the keys' sizes are compile-time constants, so each key is a few moves.
#define BDT_INLINE [[gnu::always_inline]] inline

template <size_t N>
BDT_INLINE char* put_lit(char* p, const char (&s)[N]) {
  std::memcpy(p, s, N - 1);
  return p + N - 1;
}
BDT_INLINE char* put_sv(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}
// A number: kNumberMax reserved for it (decimal.h may store past its digits).
template <class T>
BDT_INLINE char* put_int(char* p, T v) {
  return decimal::write_integer(p, v);
}
// A name of the event model (event type, phase, ioctl command, fallback path):
// plain identifiers, which JSON escaping leaves as they are
// (JsonGolden.ModelNamesArePlain checks every one).
BDT_INLINE char* put_name(char* p, std::string_view s) {
  *p++ = '"';
  p = put_sv(p, s);
  *p++ = '"';
  return p;
}

// s as a JSON string literal with its quotes; see append_json_string.
char* put_str(char* p, std::string_view s) {
  *p++ = '"';
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
      std::memcpy(p, s.data() + i, j - i);
      p += j - i;
      i = j;
      continue;
    }
    switch (c) {
      case '"': p = put_lit(p, "\\\""); ++i; continue;
      case '\\': p = put_lit(p, "\\\\"); ++i; continue;
      case '\n': p = put_lit(p, "\\n"); ++i; continue;
      case '\t': p = put_lit(p, "\\t"); ++i; continue;
      case '\r': p = put_lit(p, "\\r"); ++i; continue;
      default: break;
    }
    size_t n = c >= 0x80 ? utf8_sequence_length(s, i) : 0;
    if (n) {
      std::memcpy(p, s.data() + i, n);
      p += n;
      i += n;
    } else {  // control character or invalid UTF-8 byte
      p = put_lit(p, "\\u00");
      *p++ = kHex[c >> 4];
      *p++ = kHex[c & 15];
      ++i;
    }
  }
  *p++ = '"';
  return p;
}

// The key (`,"name":`, a compile-time constant) and the value.
template <class T>
BDT_INLINE char* put_field(char* p, std::string_view k, T v) {
  p = put_sv(p, k);
  if constexpr (std::is_same_v<T, bool>) {
    return v ? put_lit(p, "true") : put_lit(p, "false");
  } else if constexpr (std::is_integral_v<T>) {
    return put_int(p, v);
  } else {
    return put_str(p, std::string_view(v));
  }
}

// The flag word as a list of its names: `["NOCOW","DIRECT"]`.
char* put_flag_list(char* p, uint32_t bits, std::span<const FlagName> names) {
  *p++ = '[';
  bool first = true;
  uint32_t known = 0;
  for (const auto& f : names) {
    known |= f.bit;
    if (!(bits & f.bit)) continue;
    if (!first) *p++ = ',';
    first = false;
    *p++ = '"';
    p = put_sv(p, f.name);
    *p++ = '"';
  }
  // Canonical bits without a name (none today) are kept as "BIT<n>".
  for (uint32_t rest = bits & ~known; rest; rest &= rest - 1) {
    if (!first) *p++ = ',';
    first = false;
    p = put_lit(p, "\"BIT");
    p = fmt::format_to(p, FMT_COMPILE("{}"), static_cast<unsigned>(std::countr_zero(rest)));
    *p++ = '"';
  }
  *p++ = ']';
  return p;
}

// The key and the list, the list from the memo when the word and its names are
// one of the last two's.
BDT_INLINE char* put_flags(char* p, std::string_view k, uint32_t bits, std::span<const FlagName> names,
                           EventJsonMemo* memo) {
  p = put_sv(p, k);
  if (!memo) return put_flag_list(p, bits, names);
  for (const auto& f : memo->flags)
    if (f.names == names.data() && f.bits == bits) {
      std::memcpy(p, f.text.data(), f.len);
      return p + f.len;
    }
  char* end = put_flag_list(p, bits, names);
  const auto n = static_cast<size_t>(end - p);
  auto& f = memo->flags[memo->flags_next];
  memo->flags_next = (memo->flags_next + 1) % memo->flags.size();
  f.names = nullptr;
  if (n <= f.text.size()) {
    std::memcpy(f.text.data(), p, n);
    f.names = names.data();
    f.bits = bits;
    f.len = n;
  }
  return end;
}

template <class E>
size_t longest_name(E last) {
  size_t n = 0;
  for (int i = 0; i <= static_cast<int>(last); ++i) n = std::max(n, to_string(static_cast<E>(i)).size());
  return n;
}

// The most bytes put_payload writes for a payload of type P.
template <class P>
size_t payload_max() {
  size_t n = 0;
  fields::for_each<P>([&](const auto& d) {
    using T = typename std::remove_cvref_t<decltype(d)>::Type;
    n += d.json_key().size();
    if constexpr (std::is_same_v<T, Phase>) {
      n += json_string_max(std::max(to_string(Phase::Enter).size(), to_string(Phase::Exit).size()));
    } else if constexpr (std::is_same_v<T, std::optional<bool>> || std::is_same_v<T, bool>) {
      n += 5;
    } else if constexpr (std::is_same_v<T, IoctlCmd>) {
      n += json_string_max(longest_name(fields::kLastIoctlCmd));
    } else if constexpr (std::is_same_v<T, FallbackVia>) {
      n += json_string_max(longest_name(fields::kLastFallbackVia));
    } else if constexpr (std::is_integral_v<T>) {
      if (d.is_flags()) {
        n += 2;  // []
        for (const auto& f : d.a.flag_names()) n += f.name.size() + 3;  // "NAME",
        n += 32 * 8;                                                      // "BIT31",
      } else {
        n += kNumberMax;
      }
    } else {
      static_assert(sizeof(T) == 0, "a payload field type the JSON writer does not know");
    }
  });
  return n;
}

// payload_max of each alternative of Payload, by its index.
template <size_t... I>
std::array<size_t, sizeof...(I)> payload_maxes(std::index_sequence<I...>) {
  return {payload_max<std::variant_alternative_t<I, Payload>>()...};
}
const std::array<size_t, std::variant_size_v<Payload>>& payload_max_table() {
  static const auto t = payload_maxes(std::make_index_sequence<std::variant_size_v<Payload>>{});
  return t;
}

// Every payload field, as its list in bdt/event_fields.h says.
struct PayloadWriter {
  char*& p;
  EventJsonMemo* memo;

  template <class P>
  void operator()(const P& pl) const {
    fields::for_each<P>([&](const auto& d) {
      if (!fields::holds(d.a.json_when, d, pl)) return;
      const auto& v = d.ref(pl);
      using T = std::remove_cvref_t<decltype(v)>;
      if constexpr (std::is_same_v<T, Phase>) {
        if (v != Phase::None) p = put_name(put_sv(p, d.json_key()), to_string(v));
      } else if constexpr (std::is_same_v<T, std::optional<bool>>) {
        if (v) p = put_field(p, d.json_key(), *v);
      } else if constexpr (std::is_same_v<T, IoctlCmd> || std::is_same_v<T, FallbackVia>) {
        p = put_name(put_sv(p, d.json_key()), to_string(v));
      } else if constexpr (std::is_same_v<T, uint32_t>) {
        if (d.is_flags()) p = put_flags(p, d.json_key(), v, d.a.flag_names(), memo);
        else p = put_field(p, d.json_key(), v);
      } else {
        p = put_field(p, d.json_key(), v);
      }
    });
  }
};

// The two hex digits of every byte value.
constexpr auto kHexPairs = [] {
  std::array<char, 512> t{};
  for (int i = 0; i < 256; ++i) {
    t[2 * i] = kHex[i >> 4];
    t[2 * i + 1] = kHex[i & 15];
  }
  return t;
}();

char* put_fs(char* p, const Fsid& fs) {
  // Same text as Fsid::str(), without the snprintf and the temporary string:
  // 38 bytes, "8-4-4-4-12" hex digits.
  static_assert(std::tuple_size_v<decltype(fs.b)> == 16);
  auto hex = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i, p += 2) std::memcpy(p, &kHexPairs[2 * fs.b[i]], 2);
  };
  *p++ = '"';
  hex(0, 4);
  *p++ = '-';
  hex(4, 6);
  *p++ = '-';
  hex(6, 8);
  *p++ = '-';
  hex(8, 10);
  *p++ = '-';
  hex(10, 16);
  *p++ = '"';
  return p;
}

// `"FSID","dev":D,"ino":I` (after the `,"fs":` key), from the memo when the
// file is the last one's: one copy of kFileCopy bytes (room for them is
// reserved: kFileRoom below).
constexpr size_t kFileCopy = std::tuple_size_v<decltype(EventJsonMemo::file_text)>;
// the room event_json_max reserves from the fs id on: its 38 bytes, dev and
// ino, the vm and image keys and their strings' quotes at least
static_assert(kFileCopy <= 38 + sizeof K("dev") + kNumberMax + sizeof K("ino") + kNumberMax + sizeof K("vm") +
                               sizeof K("image") + 2 * json_string_max(0));
BDT_INLINE char* put_file(char* p, const Event& ev, EventJsonMemo* memo) {
  if (memo && memo->file_len && memo->fs == ev.fs && memo->dev == ev.dev && memo->ino == ev.ino) {
    std::memcpy(p, memo->file_text.data(), kFileCopy);
    return p + memo->file_len;
  }
  char* end = put_fs(p, ev.fs);
  end = put_field(end, K("dev"), ev.dev);
  end = put_field(end, K("ino"), ev.ino);
  if (memo) {
    const auto n = static_cast<size_t>(end - p);
    static_assert(38 + sizeof K("dev") - 1 + kNumberMax + sizeof K("ino") - 1 + kNumberMax <= kFileCopy,
                  "the memo holds the longest text");
    std::memcpy(memo->file_text.data(), p, n);
    memo->fs = ev.fs;
    memo->dev = ev.dev;
    memo->ino = ev.ino;
    memo->file_len = n;
  }
  return end;
}

// ts_ns, the digits of ts_ns / 10^8 from the memo when they are the last
// ones' (kNumberMax reserved for the number: the copy is 16 bytes).
BDT_INLINE char* put_ts(char* p, uint64_t v, EventJsonMemo* memo) {
  constexpr uint64_t k8 = 100'000'000;
  if (!memo || v < k8) return put_int(p, v);
  const uint64_t high = v / k8;
  static_assert(std::tuple_size_v<decltype(EventJsonMemo::ts_high_text)> <= kNumberMax);
  if (high != memo->ts_high) {
    // up to 12 digits (and the 8 bytes decimal.h may store past them) in the
    // 20-byte room; the memo keeps the first 16
    char* end = decimal::write_decimal(p, high);
    memo->ts_high = high;
    memo->ts_high_len = static_cast<size_t>(end - p);
    std::memcpy(memo->ts_high_text.data(), p, memo->ts_high_text.size());
  } else {
    std::memcpy(p, memo->ts_high_text.data(), memo->ts_high_text.size());
  }
  p += memo->ts_high_len;
  const uint64_t d = decimal::eight_digits(static_cast<uint32_t>(v - high * k8));
  std::memcpy(p, &d, 8);
  return p + 8;
}

// Per byte of x, its top bit set where the byte ends a plain run: a NUL,
// a byte below 0x20 or from 0x80, '"' or '\\'. A byte's flag may also be set
// above (after) the first flagged byte (a borrow), never before it: the lowest
// flag is exact.
static_assert(std::endian::native == std::endian::little, "unplain_bytes' byte order");
BDT_INLINE uint64_t unplain_bytes(uint64_t x) {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kTops = 0x8080808080808080ull;
  auto zero = [](uint64_t y) { return (y - kOnes) & ~y; };
  const uint64_t below_space = (x - 0x20 * kOnes) & ~x;
  return (below_space | x | zero(x ^ ('"' * kOnes)) | zero(x ^ ('\\' * kOnes))) & kTops;
}

// The comm (NUL-terminated in its 16 bytes, as Event::comm_view()) as a JSON
// string: plain ASCII, as a comm nearly always is, is copied in one go (found
// eight bytes at a time), the rest goes through put_str. Room:
// json_string_max(16) is reserved for it.
BDT_INLINE char* put_comm(char* p, const std::array<char, 16>& comm) {
  uint64_t w[2];
  static_assert(sizeof w == sizeof comm);
  std::memcpy(w, comm.data(), sizeof w);
  size_t n = comm.size();  // the plain bytes before the first NUL (all 16 without one)
  for (size_t k = 0; k < 2; ++k)
    if (const uint64_t f = unplain_bytes(w[k])) {
      const size_t at = 8 * k + static_cast<size_t>(std::countr_zero(f)) / 8;
      if (comm[at] != 0)  // not plain before its NUL
        return put_str(p, std::string_view(comm.data(), strnlen(comm.data(), comm.size())));
      n = at;
      break;
    }
  *p++ = '"';
  std::memcpy(p, comm.data(), comm.size());
  p += n;
  *p++ = '"';
  return p;
}

// `,"pid":P,"tid":T,"comm":"C"`, from the memo when the thread (pid, tid and
// the comm's 16 bytes) is one of the last four's: one copy of kThreadCopy
// bytes (room for them is reserved: the numbers' and the comm's bounds).
constexpr size_t kThreadCopy = std::tuple_size_v<decltype(EventJsonMemo::ThreadText::text)>;
static_assert(kThreadCopy <= sizeof K("pid") - 1 + kNumberMax + sizeof K("tid") - 1 + kNumberMax +
                                 sizeof K("comm") - 1 + json_string_max(16));
BDT_INLINE char* put_thread(char* p, const Event& ev, EventJsonMemo* memo) {
  if (memo)
    for (const auto& t : memo->threads)
      if (t.len && t.pid == ev.pid && t.tid == ev.tid && t.comm == ev.comm) {
        std::memcpy(p, t.text.data(), kThreadCopy);
        return p + t.len;
      }
  char* end = put_field(p, K("pid"), ev.pid);
  end = put_field(end, K("tid"), ev.tid);
  end = put_comm(put_lit(end, K("comm")), ev.comm);
  if (memo) {
    const auto n = static_cast<size_t>(end - p);
    auto& t = memo->threads[memo->threads_next];
    memo->threads_next = (memo->threads_next + 1) % memo->threads.size();
    t.len = 0;
    if (n <= kThreadCopy) {
      std::memcpy(t.text.data(), p, n);
      t.pid = ev.pid;
      t.tid = ev.tid;
      t.comm = ev.comm;
      t.len = n;
    }
  }
  return end;
}

// ---- appending to a std::string (findings, the header) ------------------------------------

// Runs put(p) on room for `max` more bytes at the end of out, keeps what it wrote.
template <class F>
void append_raw(std::string& out, size_t max, F put) {
  const size_t at = out.size();
  out.resize(at + max);
  char* end = put(out.data() + at);
  out.resize(static_cast<size_t>(end - out.data()));
}

void append_fs(std::string& out, const Fsid& fs) {
  append_raw(out, 38, [&](char* p) { return put_fs(p, fs); });
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  append_raw(out, json_string_max(s.size()), [&](char* p) { return put_str(p, s); });
}

namespace {
// The bound of everything but vm and image, by payload index: the head with
// a comm of 16 bytes and the longest type name (any type's, "unknown"
// included), and the payload's bound.
const std::array<size_t, std::variant_size_v<Payload>>& head_and_payload_max_table() {
  // {"ts_ns":N,"pid":N,"tid":N,"comm":S,"type":S,"fs":"uuid","dev":N,"ino":N,"vm":S,"image":S}
  constexpr size_t kHead = sizeof "{\"ts_ns\":" + sizeof K("pid") + sizeof K("tid") + sizeof K("comm") +
                           sizeof K("type") + sizeof K("fs") + 38 + sizeof K("dev") + sizeof K("ino") +
                           sizeof K("vm") + sizeof K("image") + 5 * kNumberMax + 1;
  static const auto t = [] {
    size_t type_max = to_string(static_cast<EventType>(0)).size();  // "unknown"
    for (int i = 1; i <= kEventTypeCount; ++i)
      type_max = std::max(type_max, to_string(static_cast<EventType>(i)).size());
    auto v = payload_max_table();
    for (auto& n : v) n += kHead + json_string_max(std::tuple_size_v<decltype(Event::comm)>) + json_string_max(type_max);
    return v;
  }();
  return t;
}
}  // namespace

size_t event_json_max(const Event& ev) {
  return head_and_payload_max_table()[ev.body.index()] + json_string_max(ev.vm.size()) +
         json_string_max(ev.image.size());
}

char* write_event_json(char* p, const Event& ev, EventJsonMemo* memo) {
  p = put_lit(p, "{\"ts_ns\":");
  p = put_ts(p, ev.ts_ns, memo);
  p = put_thread(p, ev, memo);
  p = put_name(put_lit(p, K("type")), to_string(ev.type));
  p = put_file(put_lit(p, K("fs")), ev, memo);
  if (!ev.vm.empty()) p = put_field(p, K("vm"), ev.vm);
  if (!ev.image.empty()) p = put_field(p, K("image"), ev.image);
  std::visit(PayloadWriter{p, memo}, ev.body);
  *p++ = '}';
  return p;
}

void append_event_json(std::string& out, const Event& ev) {
  append_raw(out, event_json_max(ev), [&](char* p) { return write_event_json(p, ev); });
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
