// JSON-lines traces: decoding one event object (the inverse of
// src/core/event_json.cpp; payload fields from bdt/event_fields.h) and the
// line reader with the schema header, the skip policies, the bad-input errors
// (docs/events.md) and the memory limits (ReadLimits, docs/hardening.md).
#include <algorithm>
#include <charconv>
#include <limits>
#include <type_traits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bdt/event_fields.h"
#include "core/event_json.h"
#include "replay/input.h"

namespace bdt {

namespace {

using json = nlohmann::json;

[[noreturn]] void bad(std::string msg) { throw InputError(std::move(msg)); }

// ---- a flat view of one event line ---------------------------------------------
// Event lines are parsed with nlohmann's SAX interface into this flat list of
// top-level keys (reused from line to line) instead of a DOM: no map nodes per
// key. Only what decoding needs is kept: the keys an event can have (common
// keys and the payload fields of bdt/event_fields.h), with their scalars and
// the scalar elements of their arrays (flag lists, at most
// ReadLimits::kMaxArrayElements). Other keys are skipped, nested containers
// recorded by kind only, so a line costs memory for what the decoder reads,
// not for what the line holds. The accessors mirror the subset of
// nlohmann::json that Obj uses, so one decoder serves both (the header line is
// parsed as a DOM, after its size and depth were checked).
struct FVal {
  enum Kind : uint8_t { Null, Bool, Int, Uint, Float, String, Array, Object };
  Kind kind = Null;
  bool b = false;
  int64_t i = 0;
  uint64_t u = 0;
  std::string s;
  std::vector<FVal> elems;

  void reset() {
    kind = Null;
    // Reused line after line: keep small buffers, give big ones back.
    if (s.capacity() > 4096) std::string().swap(s);
    else s.clear();
    elems.clear();
  }
  bool is_number_integer() const { return kind == Int || kind == Uint; }
  bool is_number_unsigned() const { return kind == Uint; }
  bool is_number_float() const { return kind == Float; }
  bool is_number() const { return kind == Int || kind == Uint || kind == Float; }
  bool is_boolean() const { return kind == Bool; }
  bool is_string() const { return kind == String; }
  bool is_array() const { return kind == Array; }
  bool is_object() const { return kind == Object; }
  const char* type_name() const {
    static constexpr const char* kNames[] = {"null",   "boolean", "number", "number",
                                             "number", "string",  "array",  "object"};
    return kNames[kind];
  }
  template <class T>
  T get() const {
    if constexpr (std::is_same_v<T, bool>) return b;
    else if (kind == Uint) return static_cast<T>(u);
    else return static_cast<T>(i);
  }
  template <class P>
  P get_ptr() const {
    return &s;
  }
  template <class R>
  const std::string& get_ref() const {
    return s;
  }
  auto begin() const { return elems.begin(); }
  auto end() const { return elems.end(); }
};

// Every key an event line can carry that the decoder reads (sorted).
const std::vector<std::string_view>& known_keys() {
  static const std::vector<std::string_view> keys = [] {
    std::vector<std::string_view> v = {"schema", "type", "ts_ns", "pid", "tid", "comm",
                                       "fs",     "dev",  "ino",   "vm",  "image"};
    [&]<class... P>(std::variant<P...>*) {
      (fields::for_each<P>([&](const auto& d) { v.push_back(d.name); }), ...);
    }(static_cast<Payload*>(nullptr));
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  }();
  return keys;
}

// The known key equal to k (a view of static storage), or nullopt.
std::optional<std::string_view> known_key(std::string_view k) {
  const auto& keys = known_keys();
  auto it = std::lower_bound(keys.begin(), keys.end(), k);
  if (it == keys.end() || *it != k) return std::nullopt;
  return *it;
}

struct FObj {
  // At most one entry per known key (a repeated key overwrites: the last one
  // wins, as in nlohmann's DOM); reused from line to line.
  std::vector<std::pair<std::string_view, FVal>> kv;
  size_t n = 0;
  FVal& slot(std::string_view known) {
    for (size_t i = 0; i < n; ++i)
      if (kv[i].first == known) {
        kv[i].second.reset();
        return kv[i].second;
      }
    if (n == kv.size()) kv.emplace_back();
    auto& e = kv[n++];
    e.first = known;
    e.second.reset();
    return e.second;
  }
  const FVal* find(std::string_view k) const {
    for (size_t i = 0; i < n; ++i)
      if (kv[i].first == k) return &kv[i].second;
    return nullptr;
  }
};

std::string_view type_name(const json& v) {
  if (v.is_number_float()) return "a fractional number";
  if (v.is_number()) return "an integer";
  return v.type_name();  // "null", "boolean", "string", "array", "object"
}
std::string_view type_name(const FVal& v) {
  if (v.is_number_float()) return "a fractional number";
  if (v.is_number()) return "an integer";
  return v.type_name();
}

const json* lookup(const json& o, const char* k) {
  auto it = o.find(k);
  return it == o.end() ? nullptr : &*it;
}
const FVal* lookup(const FObj& o, const char* k) { return o.find(k); }

// Field access with type checking. `required` fields throw when absent;
// optional ones leave the destination (the event.h default) untouched.
template <class Doc>
class Obj {
 public:
  using V = std::remove_cvref_t<decltype(*lookup(std::declval<const Doc&>(), ""))>;
  explicit Obj(const Doc& o) : o_(o) {}

  const V* find(const char* k) const { return lookup(o_, k); }
  const V* need(const char* k, bool required) const {
    const V* v = find(k);
    if (!v && required) bad(fmt::format("missing required field \"{}\"", k));
    return v;
  }

  template <class T>
  void num(const char* k, T& dst, bool required = false) const {
    const V* v = need(k, required);
    if (!v) return;
    if (!v->is_number_integer()) {
      bad(fmt::format("field \"{}\" must be {}, got {}", k,
                      std::is_unsigned_v<T> ? "a non-negative integer" : "an integer",
                      type_name(*v)));
    }
    if constexpr (std::is_unsigned_v<T>) {
      if (!v->is_number_unsigned())
        bad(fmt::format("field \"{}\" must be a non-negative integer, got {}", k,
                        v->template get<int64_t>()));
      uint64_t x = v->template get<uint64_t>();
      if (x > std::numeric_limits<T>::max())
        bad(fmt::format("field \"{}\" out of range: {} (max {})", k, x,
                        std::numeric_limits<T>::max()));
      dst = static_cast<T>(x);
    } else {
      if (v->is_number_unsigned()) {
        uint64_t x = v->template get<uint64_t>();
        if (x > static_cast<uint64_t>(std::numeric_limits<T>::max()))
          bad(fmt::format("field \"{}\" out of range: {} (max {})", k, x,
                          std::numeric_limits<T>::max()));
        dst = static_cast<T>(x);
      } else {
        int64_t x = v->template get<int64_t>();
        if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max())
          bad(fmt::format("field \"{}\" out of range: {}", k, x));
        dst = static_cast<T>(x);
      }
    }
  }

  void boolean(const char* k, bool& dst, bool required = false) const {
    const V* v = need(k, required);
    if (!v) return;
    if (!v->is_boolean())
      bad(fmt::format("field \"{}\" must be true or false, got {}", k, type_name(*v)));
    dst = v->template get<bool>();
  }

  const std::string* str(const char* k, bool required = false) const {
    const V* v = need(k, required);
    if (!v) return nullptr;
    if (!v->is_string())
      bad(fmt::format("field \"{}\" must be a string, got {}", k, type_name(*v)));
    return v->template get_ptr<const std::string*>();
  }

  void phase(const char* k, Phase& dst, bool required) const {
    const std::string* s = str(k, required);
    if (!s) return;
    if (*s == "enter") dst = Phase::Enter;
    else if (*s == "exit") dst = Phase::Exit;
    else bad(fmt::format("field \"{}\" must be \"enter\" or \"exit\", got \"{}\"", k, *s));
  }

  void flags(const char* k, uint32_t& dst, std::span<const FlagName> names,
             std::string_view what, bool required = false) const {
    const V* v = need(k, required);
    if (!v) return;
    if (!v->is_array())
      bad(fmt::format("field \"{}\" must be an array of flag names, got {}", k, type_name(*v)));
    uint32_t bits = 0;
    for (const V& e : *v) {
      if (!e.is_string())
        bad(fmt::format("field \"{}\" must be an array of flag names, got an element that is {}",
                        k, type_name(e)));
      std::string_view s = e.template get_ref<const std::string&>();
      // The kernel's own spelling is accepted too: BTRFS_ORDERED_IOERR, EXTENT_BUFFER_STALE.
      for (std::string_view pre : {"BTRFS_ORDERED_", "EXTENT_BUFFER_"})
        if (s.substr(0, pre.size()) == pre) s.remove_prefix(pre.size());
      bool found = false;
      for (const auto& f : names)
        if (f.name == s) {
          bits |= f.bit;
          found = true;
          break;
        }
      if (!found && s.size() > 3 && s.substr(0, 3) == "BIT") {
        unsigned n = 0;
        auto [p, ec] = std::from_chars(s.data() + 3, s.data() + s.size(), n);
        if (ec == std::errc() && p == s.data() + s.size() && n < 32) {
          bits |= 1u << n;
          found = true;
        }
      }
      if (!found) {
        std::string known;
        for (const auto& f : names) {
          if (!known.empty()) known += ' ';
          known += f.name;
        }
        bad(fmt::format("field \"{}\": unknown {} flag \"{}\" (known: {})", k, what, s, known));
      }
    }
    dst = bits;
  }

 private:
  const Doc& o_;
};

// Every payload field, as its list in bdt/event_fields.h says: absent optional
// fields keep the event.h default.
template <class Doc>
struct PayloadReader {
  const Obj<Doc>& o;
  EventType type;

  template <class P>
  void operator()(P& p) const {
    fields::for_each<P>([&](const auto& d) {
      auto& v = d.ref(p);
      using T = std::remove_cvref_t<decltype(v)>;
      const bool required = d.a.required & fields::type_bit(type);
      if constexpr (std::is_same_v<T, Phase>) {
        o.phase(d.name, v, required);
      } else if constexpr (std::is_same_v<T, std::optional<bool>>) {
        if (o.need(d.name, required)) {
          bool b = false;
          o.boolean(d.name, b);
          v = b;
        }
      } else if constexpr (std::is_same_v<T, IoctlCmd>) {
        // A command this version does not name (a newer tracer's) is kept as "other".
        if (const std::string* c = o.str(d.name, required))
          v = ioctl_cmd_from(*c).value_or(IoctlCmd::Other);
      } else if constexpr (std::is_same_v<T, FallbackVia>) {
        // A way of seeing a fallback a newer tracer names and this reader does not: "call".
        if (const std::string* c = o.str(d.name, required))
          v = fallback_via_from(*c).value_or(FallbackVia::Call);
      } else if constexpr (std::is_same_v<T, bool>) {
        o.boolean(d.name, v, required);
      } else if constexpr (std::is_same_v<T, uint32_t>) {
        if (d.is_flags()) o.flags(d.name, v, d.a.flag_names(), d.a.flag_what, required);
        else o.num(d.name, v, required);
      } else {
        o.num(d.name, v, required);
      }
    });
  }
};

// Decodes an event object whose "type" is known. Throws InputError(reason).
template <class Doc>
void decode_event(const Doc& j, EventType type, Event& ev, StringTable& strings) {
  Obj<Doc> o(j);
  ev = Event{};
  ev.type = type;
  o.num("ts_ns", ev.ts_ns, true);
  o.num("pid", ev.pid);
  o.num("tid", ev.tid);
  // Longer names are cut to 15 bytes, as the kernel does (TASK_COMM_LEN), so
  // a hand-written "qemu-system-x86_64" reads as the kernel would report it.
  if (const std::string* c = o.str("comm")) ev.set_comm(*c);
  if (const std::string* f = o.str("fs"); f && !f->empty()) {
    auto fs = Fsid::parse(*f);
    if (!fs) bad(fmt::format("field \"fs\" is not a filesystem UUID: \"{}\"", *f));
    ev.fs = *fs;
  }
  o.num("dev", ev.dev);
  o.num("ino", ev.ino);
  if (const std::string* s = o.str("vm")) ev.vm = strings.intern(*s);
  if (const std::string* s = o.str("image")) ev.image = strings.intern(*s);
  ev.body = payload_for(type);
  std::visit(PayloadReader<Doc>{o, type}, ev.body);
  if (auto w = wrapping_range(ev); !w.empty()) bad(fmt::format("{} runs past 2^64", w));
}

// JSON allows no raw control bytes; say so plainly (nlohmann would report a
// NUL as "unexpected end of input"), typically a binary file that is not a
// btrfs-dio-trace record.
void check_control_bytes(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 && c != '\t' && c != '\r')
      bad(fmt::format("not valid JSON at column {}: control byte {:#04x} (not a JSON-lines "
                      "trace?)",
                      i + 1, c));
  }
}

[[noreturn]] void bad_json(std::string_view what) {
  // nlohmann says "[json.exception.parse_error.101] parse error at line 1,
  // column 5: syntax error ..."; keep the column and the reason (the line
  // number is the trace reader's).
  if (auto p = what.find("] "); p != std::string_view::npos) what.remove_prefix(p + 2);
  if (auto p = what.find("column "); p != std::string_view::npos) what.remove_prefix(p);
  else if (auto q = what.find(": "); q != std::string_view::npos) what.remove_prefix(q + 2);
  bad(fmt::format("not valid JSON at {}", what));
}

json parse_object(std::string_view text) {
  check_control_bytes(text);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    bad_json(e.what());
  }
  if (!j.is_object()) bad(fmt::format("expected a JSON object, got {}", type_name(j)));
  return j;
}

// SAX handler filling an FObj (see FVal), enforcing the depth and array limits.
class FlatSax {
 public:
  explicit FlatSax(FObj& o) : o_(o) { o_.n = 0; }
  FVal::Kind top() const { return top_; }

  bool null() { return scalar([](FVal& v) { v.kind = FVal::Null; }); }
  bool boolean(bool b) {
    return scalar([b](FVal& v) {
      v.kind = FVal::Bool;
      v.b = b;
    });
  }
  bool number_integer(json::number_integer_t x) {
    return scalar([x](FVal& v) {
      v.kind = FVal::Int;
      v.i = x;
    });
  }
  bool number_unsigned(json::number_unsigned_t x) {
    return scalar([x](FVal& v) {
      v.kind = FVal::Uint;
      v.u = x;
    });
  }
  bool number_float(json::number_float_t, const std::string&) {
    return scalar([](FVal& v) { v.kind = FVal::Float; });
  }
  bool string(std::string& x) {
    return scalar([&x](FVal& v) {
      v.kind = FVal::String;
      v.s.swap(x);
    });
  }
  bool binary(json::binary_t&) { return true; }
  bool start_object(std::size_t) { return open(FVal::Object); }
  bool end_object() { return close(); }
  bool start_array(std::size_t) { return open(FVal::Array); }
  bool end_array() { return close(); }
  bool key(std::string& k) {
    if (depth_ == 1 && top_ == FVal::Object) {
      // Keys no event has are skipped with their values (read by newer tools).
      auto known = known_key(k);
      cur_ = known ? &o_.slot(*known) : nullptr;
      cur_key_ = known.value_or(std::string_view());
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) {
    bad_json(ex.what());
  }

 private:
  template <class F>
  bool scalar(F fill) {
    if (depth_ == 0) {
      FVal v;
      fill(v);
      top_ = v.kind;
    } else if (!cur_) {
      // Not inside a known key's value (e.g. an unknown key, or elements of a
      // top-level array): nothing to keep.
    } else if (depth_ == 1) {
      fill(*cur_);
    } else if (depth_ == 2 && cur_->kind == FVal::Array) {
      fill(element());
    }
    return true;
  }
  FVal& element() {
    if (cur_->elems.size() >= ReadLimits::kMaxArrayElements)
      bad(fmt::format("field \"{}\": more than {} elements", cur_key_,
                      ReadLimits::kMaxArrayElements));
    return cur_->elems.emplace_back();
  }
  bool open(FVal::Kind k) {
    if (depth_ >= ReadLimits::kMaxDepth)
      bad(fmt::format("JSON nested deeper than {} levels", ReadLimits::kMaxDepth));
    if (depth_ == 0) top_ = k;
    else if (!cur_) {
    } else if (depth_ == 1) cur_->kind = k;
    else if (depth_ == 2 && cur_->kind == FVal::Array) element().kind = k;
    ++depth_;
    return true;
  }
  bool close() {
    --depth_;
    return true;
  }

  FObj& o_;
  FVal* cur_ = nullptr;
  std::string_view cur_key_;
  int depth_ = 0;
  FVal::Kind top_ = FVal::Null;
};

void parse_flat(std::string_view text, FObj& o) {
  check_control_bytes(text);
  FlatSax sax(o);
  json::sax_parse(text.begin(), text.end(), &sax);
  if (sax.top() != FVal::Object) {
    FVal v;
    v.kind = sax.top();
    bad(fmt::format("expected a JSON object, got {}", type_name(v)));
  }
}

// The "schema" header line.
TraceHeader decode_header(const json& j) {
  Obj<json> o(j);
  TraceHeader h;
  const std::string* s = o.str("schema", true);
  constexpr std::string_view prefix = "btrfs-dio-trace.events/";
  std::string_view sv = *s;
  if (sv.substr(0, prefix.size()) != prefix)
    bad(fmt::format("unknown schema \"{}\" (expected \"{}\")", sv, kEventSchema));
  std::string_view ver = sv.substr(prefix.size());
  int v = 0;
  auto [p, ec] = std::from_chars(ver.data(), ver.data() + ver.size(), v);
  if (ec != std::errc() || p != ver.data() + ver.size() || ver.empty())
    bad(fmt::format("unknown schema \"{}\" (expected \"{}\")", sv, kEventSchema));
  if (v != kEventSchemaVersion)
    bad(fmt::format("unsupported schema version {} (\"{}\"); this btrfs-dio-trace reads version "
                    "{} (\"{}\")",
                    v, sv, kEventSchemaVersion, kEventSchema));
  h.schema_version = v;
  if (const std::string* k = o.str("kernel")) {
    if (auto kv = KernelVersion::parse(*k)) h.kernel = *kv;
    else h.kernel.release = *k;  // kept for display; version unknown
  }
  if (const std::string* hn = o.str("hostname")) h.hostname = *hn;
  o.num("mono_to_realtime_ns", h.mono_to_realtime_ns);
  if (const json* hooks = o.find("hooks")) {
    if (!hooks->is_array())
      bad(fmt::format("field \"hooks\" must be an array, got {}", type_name(*hooks)));
    if (hooks->size() > ReadLimits::kMaxHooks)
      bad(fmt::format("field \"hooks\": more than {} hooks", ReadLimits::kMaxHooks));
    for (const json& e : *hooks) {
      HookInfo hi;
      if (e.is_string()) {
        hi.name = e.get<std::string>();
        hi.attached = true;
      } else if (e.is_object()) {
        Obj<json> ho(e);
        hi.name = *ho.str("name", true);
        if (const std::string* m = ho.str("mechanism")) hi.mechanism = *m;
        hi.attached = true;
        ho.boolean("attached", hi.attached);
      } else {
        bad(fmt::format("field \"hooks\": elements must be objects or strings, got {}",
                        type_name(e)));
      }
      h.hooks.push_back(std::move(hi));
    }
  }
  return h;
}

class JsonlReader final : public TraceReader {
 public:
  JsonlReader(std::unique_ptr<replay::InputStream> in, bool salvage)
      : in_(std::move(in)), salvage_(salvage) {
    // Read ahead to the first non-blank line to pick up an optional header.
    while (read_line()) {
      if (blank()) continue;
      try {
        parse_flat(line_, flat_);  // checks depth: the DOM below cannot be deep
        if (lookup(flat_, "schema") && !lookup(flat_, "type")) {
          if (line_.size() > ReadLimits::kMaxHeaderBytes)
            bad(fmt::format("header line longer than {} bytes", ReadLimits::kMaxHeaderBytes));
          header_ = decode_header(parse_object(line_));
        } else {
          have_pending_ = true;  // an event line, already in flat_
        }
      } catch (const InputError& e) {
        // A bad first line is fatal even with salvage: there is no valid prefix.
        throw InputError(fmt::format("{}:{}: {}", in_->name(), lineno_, e.what()));
      }
      break;
    }
  }

  bool next(Event& ev) override {
    if (stopped_) return false;
    for (;;) {
      // Read errors of the file itself (already naming it) propagate as they are.
      if (!have_pending_) {
        try {
          if (!read_line()) return false;
        } catch (const replay::LineTooLong& e) {
          if (!salvage_) throw;
          stopped_ = true;
          stop_ = e.what();
          return false;
        }
        if (blank()) continue;
      }
      try {
        if (have_pending_) {  // the first line, already parsed
          have_pending_ = false;
        } else {
          parse_flat(line_, flat_);
        }
        if (decode(flat_, ev)) return true;
      } catch (const std::exception& e) {
        // InputError from the decoder, or (defensively) a nlohmann exception.
        std::string msg = fmt::format("{}:{}: {}", in_->name(), lineno_, e.what());
        if (!salvage_) throw InputError(msg);
        stopped_ = true;
        stop_ = std::move(msg);
        return false;
      }
    }
  }

  const TraceHeader& header() const override { return header_; }
  uint64_t skipped_unknown() const override { return skipped_unknown_; }
  uint64_t skipped_findings() const override { return skipped_findings_; }
  std::string salvage_stop() const override { return stop_; }
  std::string_view format() const override { return "jsonl"; }

 private:
  // Throws LineTooLong naming the file and line.
  bool read_line() {
    try {
      if (!in_->getline(line_)) return false;
    } catch (const replay::LineTooLong& e) {
      throw replay::LineTooLong(fmt::format("{}:{}: {}", in_->name(), lineno_ + 1, e.what()));
    }
    ++lineno_;
    return true;
  }
  bool blank() const { return line_.find_first_not_of(" \t\r") == std::string::npos; }

  // false: the line was skipped.
  template <class Doc>
  bool decode(const Doc& j, Event& ev) {
    auto t = lookup(j, "type");
    if (!t) {
      if (lookup(j, "schema")) bad("a \"schema\" header is only allowed on the first line");
      bad("missing required field \"type\"");
    }
    if (!t->is_string())
      bad(fmt::format("field \"type\" must be a string, got {}", type_name(*t)));
    const auto& name = t->template get_ref<const std::string&>();
    if (name == "finding") {
      ++skipped_findings_;
      return false;
    }
    auto type = event_type_from(name);
    if (!type) {
      ++skipped_unknown_;
      return false;
    }
    decode_event(j, *type, ev, strings_);
    if (have_last_ && ev.ts_ns < last_ts_)
      bad(fmt::format("event out of timestamp order: ts_ns {} after {} (line {})", ev.ts_ns,
                      last_ts_, last_line_));
    have_last_ = true;
    last_ts_ = ev.ts_ns;
    last_line_ = lineno_;
    return true;
  }

  std::unique_ptr<replay::InputStream> in_;
  bool salvage_;
  TraceHeader header_;
  StringTable strings_{ReadLimits::kMaxStrings, ReadLimits::kMaxStringBytes};
  std::string line_;
  uint64_t lineno_ = 0;
  FObj flat_;
  bool have_pending_ = false;
  bool have_last_ = false;
  uint64_t last_ts_ = 0, last_line_ = 0;
  uint64_t skipped_unknown_ = 0, skipped_findings_ = 0;
  bool stopped_ = false;
  std::string stop_;
};

}  // namespace

void event_from_json(std::string_view text, Event& ev, StringTable& strings) {
  FObj j;
  parse_flat(text, j);
  Obj<FObj> o(j);
  const std::string* t = o.str("type", true);
  auto type = event_type_from(*t);
  if (!type) bad(fmt::format("unknown event type \"{}\"", *t));
  decode_event(j, *type, ev, strings);
}

namespace replay {
std::unique_ptr<TraceReader> make_jsonl_reader(std::unique_ptr<InputStream> in, bool salvage) {
  return std::make_unique<JsonlReader>(std::move(in), salvage);
}
}  // namespace replay

}  // namespace bdt
