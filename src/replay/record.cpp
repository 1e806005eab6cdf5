// The binary --record format: writer and reader (docs/record-format.md).
//
// Every integer is little-endian and written byte by byte, so the file does
// not depend on the host's layout of Event or of std::variant. The payload of
// each type is its field list (bdt/event_fields.h), in order.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>

#include <fmt/format.h>

#include "bdt/event_fields.h"
#include "core/event_json.h"
#include "replay/input.h"

namespace bdt {
namespace replay {

namespace {
// Slicing-by-8 tables: t[0] is the classic byte-wise table; t[k][i] is the CRC
// of byte i followed by k zero bytes, so 8 input bytes cost 8 lookups and no
// serial dependency between them.
using CrcTables = std::array<std::array<uint32_t, 256>, 8>;
constexpr CrcTables make_crc_tables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i)
    for (int k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
  return t;
}
constexpr CrcTables kCrc = make_crc_tables();
}  // namespace

// CRC-32 (IEEE 802.3, reflected, as zlib's crc32()); `crc` continues a previous value.
uint32_t crc32(std::span<const uint8_t> data, uint32_t crc) {
  crc = ~crc;
  const uint8_t* p = data.data();
  size_t n = data.size();
  while (n >= 8) {
    uint32_t a = crc ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
                        uint32_t(p[3]) << 24);
    crc = kCrc[7][a & 0xFF] ^ kCrc[6][(a >> 8) & 0xFF] ^ kCrc[5][(a >> 16) & 0xFF] ^
          kCrc[4][a >> 24] ^ kCrc[3][p[4]] ^ kCrc[2][p[5]] ^ kCrc[1][p[6]] ^ kCrc[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n--) crc = kCrc[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

namespace {

constexpr uint16_t kFormatVersion = 1;
constexpr size_t kFileHeaderFixed = 16;     // magic, version, flags, body length
constexpr size_t kMaxHeaderBody = 1u << 20;
constexpr size_t kRecordPrefix = 8;          // length, crc
constexpr size_t kCommonSize = 2 + 2 + 8 + 4 + 4 + 16 + 16 + 8 + 8 + 2 + 2;
constexpr size_t kMaxRecordBody = 1u << 20;
constexpr size_t kWriteBuffer = 64u << 10;
constexpr uint64_t kFlushInterval = 1'000'000'000ull;  // ts_ns

// ---- encoding ------------------------------------------------------------------
// Writes through a raw pointer into space the caller reserved (the record
// encoder sizes it from the strings plus kMaxFixed), or appends to a string
// (the header, written once).
constexpr size_t kMaxPayload = 64;  // room for the largest payload (checked below)

struct Out {
  std::string* grow = nullptr;  // append mode
  uint8_t* p = nullptr;         // pointer mode

  void raw(const void* src, size_t n) {
    if (grow) {
      grow->append(static_cast<const char*>(src), n);
    } else if (n) {  // an empty string_view may have a null data()
      std::memcpy(p, src, n);
      p += n;
    }
  }
  template <class U>
  void le(U v) {
    uint8_t b[sizeof(U)];
    for (size_t i = 0; i < sizeof(U); ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
    raw(b, sizeof b);
  }
  void u8(uint8_t v) { raw(&v, 1); }
  void u16(uint16_t v) { le(v); }
  void u32(uint32_t v) { le(v); }
  void u64(uint64_t v) { le(v); }
  void i32(int32_t v) { le(static_cast<uint32_t>(v)); }
  void i64(int64_t v) { le(static_cast<uint64_t>(v)); }
  void bytes(const void* src, size_t n) { raw(src, n); }
  void str(std::string_view s) {
    if (s.size() > 0xFFFF) s = s.substr(0, 0xFFFF);
    u16(static_cast<uint16_t>(s.size()));
    raw(s.data(), s.size());
  }
};

void put_le32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// ---- payloads: every field of the type's list (bdt/event_fields.h), in order ----
// Bools marked .bit(n) share one flag byte, written where the last of them is.
template <class P>
constexpr int flag_byte_at() {
  int at = -1, i = 0;
  fields::for_each<P>([&](const auto& d) {
    if (d.a.bit >= 0) at = i;
    ++i;
  });
  return at;
}

// Bytes the payload of P takes in a record.
template <class P>
constexpr size_t payload_size() {
  size_t n = flag_byte_at<P>() >= 0 ? 1 : 0;
  fields::for_each<P>([&](const auto& d) {
    using T = std::remove_cvref_t<decltype(d.ref(std::declval<const P&>()))>;
    if constexpr (std::is_same_v<T, bool>) n += d.a.bit >= 0 ? 0 : 1;
    else if constexpr (std::is_enum_v<T> || std::is_same_v<T, std::optional<bool>>) n += 1;
    else n += sizeof(T);
  });
  return n;
}
template <class... P>
constexpr size_t max_payload_size(std::variant<P...>*) {
  return std::max({payload_size<P>()...});
}
static_assert(max_payload_size(static_cast<Payload*>(nullptr)) <= kMaxPayload,
              "a payload outgrew kMaxPayload");

struct PayloadOut {
  Out& o;

  template <class P>
  void operator()(const P& p) const {
    constexpr int byte_at = flag_byte_at<P>();
    uint8_t bits = 0;
    fields::for_each<P>([&](const auto& d) {
      if constexpr (std::is_same_v<std::remove_cvref_t<decltype(d.ref(p))>, bool>)
        if (d.a.bit >= 0) bits |= static_cast<uint8_t>(uint8_t(d.ref(p)) << d.a.bit);
    });
    int i = 0;
    fields::for_each<P>([&](const auto& d) {
      const auto& v = d.ref(p);
      using T = std::remove_cvref_t<decltype(v)>;
      if constexpr (std::is_same_v<T, bool>) {
        if (d.a.bit < 0) o.u8(v ? 1 : 0);
      } else if constexpr (std::is_same_v<T, std::optional<bool>>) {
        o.u8(v ? (*v ? 2 : 1) : 0);
      } else if constexpr (std::is_enum_v<T>) {
        o.u8(static_cast<uint8_t>(v));
      } else if constexpr (std::is_signed_v<T>) {
        o.le(static_cast<std::make_unsigned_t<T>>(v));
      } else {
        o.le(v);
      }
      if (i++ == byte_at) o.u8(bits);
    });
  }
};

// Appends one framed record (length, CRC, body) to b.
void encode_record(std::string& b, const Event& ev) {
  size_t start = b.size();
  size_t vm = std::min<size_t>(ev.vm.size(), 0xFFFF), image = std::min<size_t>(ev.image.size(), 0xFFFF);
  b.resize(start + kRecordPrefix + kCommonSize + vm + image + kMaxPayload);
  auto* base = reinterpret_cast<uint8_t*>(b.data() + start);
  Out o{nullptr, base + kRecordPrefix};
  o.u16(static_cast<uint16_t>(ev.type));
  o.u16(0);  // reserved
  o.u64(ev.ts_ns);
  o.u32(ev.pid);
  o.u32(ev.tid);
  o.bytes(ev.comm.data(), ev.comm.size());
  o.bytes(ev.fs.b.data(), ev.fs.b.size());
  o.u64(ev.dev);
  o.u64(ev.ino);
  o.str(ev.vm);
  o.str(ev.image);
  std::visit(PayloadOut{o}, ev.body);
  uint8_t* p = base;
  uint32_t len = static_cast<uint32_t>(o.p - base - kRecordPrefix);
  b.resize(start + kRecordPrefix + len);
  put_le32(p, len);
  uint32_t crc = crc32({p, 4});
  crc = crc32({p + kRecordPrefix, len}, crc);
  put_le32(p + 4, crc);
}

std::string encode_file_header(const TraceHeader& h) {
  std::string body;
  Out o{&body};
  o.u32(static_cast<uint32_t>(h.schema_version));
  o.i64(h.mono_to_realtime_ns);
  o.str(h.kernel.release);
  o.u16(static_cast<uint16_t>(std::min<size_t>(h.hooks.size(), 0xFFFF)));
  for (size_t i = 0; i < h.hooks.size() && i < 0xFFFF; ++i) {
    o.str(h.hooks[i].name);
    o.str(h.hooks[i].mechanism);
    o.u8(h.hooks[i].attached ? 1 : 0);
  }
  o.str(h.hostname);  // appended field: readers before it stop after the hooks
  std::string out;
  Out f{&out};
  f.bytes(kRecordMagic, sizeof kRecordMagic);
  f.u16(kFormatVersion);
  f.u16(0);  // flags
  f.u32(static_cast<uint32_t>(body.size()));
  out += body;
  f.u32(crc32({reinterpret_cast<const uint8_t*>(out.data()), out.size()}));
  return out;
}

// ---- decoding ------------------------------------------------------------------
struct Corrupt {
  std::string why;
};

struct In {
  const uint8_t* p;
  size_t n, i = 0;
  void need(size_t k) {
    if (n - i < k) throw Corrupt{fmt::format("record body too short ({} bytes)", n)};
  }
  uint8_t u8() {
    need(1);
    return p[i++];
  }
  uint16_t u16() {
    need(2);
    uint16_t v = uint16_t(p[i] | p[i + 1] << 8);
    i += 2;
    return v;
  }
  uint32_t u32() {
    need(4);
    uint32_t v = get_le32(p + i);
    i += 4;
    return v;
  }
  uint64_t u64() {
    need(8);
    uint64_t lo = get_le32(p + i), hi = get_le32(p + i + 4);
    i += 8;
    return lo | hi << 32;
  }
  int32_t i32() { return static_cast<int32_t>(u32()); }
  int64_t i64() { return static_cast<int64_t>(u64()); }
  void bytes(void* dst, size_t k) {
    need(k);
    std::memcpy(dst, p + i, k);
    i += k;
  }
  std::string_view str() {
    size_t k = u16();
    need(k);
    std::string_view s(reinterpret_cast<const char*>(p + i), k);
    i += k;
    return s;
  }
  // Any integer type, little-endian.
  template <class T>
  T le() {
    if constexpr (sizeof(T) == 8) return static_cast<T>(u64());
    else if constexpr (sizeof(T) == 4) return static_cast<T>(u32());
    else if constexpr (sizeof(T) == 2) return static_cast<T>(u16());
    else return static_cast<T>(u8());
  }
};

struct PayloadIn {
  In& in;
  EventType type;

  template <class P>
  void operator()(P& p) const {
    constexpr int byte_at = flag_byte_at<P>();
    uint8_t bits = 0;
    int i = 0;
    fields::for_each<P>([&](const auto& d) {
      auto& v = d.ref(p);
      using T = std::remove_cvref_t<decltype(v)>;
      if constexpr (std::is_same_v<T, bool>) {
        if (d.a.bit < 0) v = in.u8() != 0;
      } else if constexpr (std::is_same_v<T, std::optional<bool>>) {
        uint8_t w = in.u8();
        if (w > 2)
          throw Corrupt{fmt::format("invalid {} {} value {}", to_string(type), d.name, w)};
        if (w) v = (w == 2);
      } else if constexpr (std::is_same_v<T, Phase>) {
        uint8_t x = in.u8();
        if (x > 2) throw Corrupt{fmt::format("invalid {} value {}", d.name, x)};
        v = static_cast<Phase>(x);
      } else if constexpr (std::is_same_v<T, IoctlCmd>) {
        // A command a newer writer knows and this reader does not: "other".
        v = fields::ioctl_cmd_from_raw(in.u8());
      } else if constexpr (std::is_same_v<T, FallbackVia>) {
        v = fields::fallback_via_from_raw(in.u8());
      } else {
        v = in.le<T>();
      }
      if (i++ == byte_at) bits = in.u8();
    });
    if constexpr (byte_at >= 0) {
      fields::for_each<P>([&](const auto& d) {
        if constexpr (std::is_same_v<std::remove_cvref_t<decltype(d.ref(p))>, bool>)
          if (d.a.bit >= 0) d.ref(p) = (bits >> d.a.bit) & 1;
      });
    }
  }
};

// ---- writer --------------------------------------------------------------------
class RecordWriter final : public TraceWriter {
 public:
  RecordWriter(const std::string& path, const TraceHeader& h) : path_(path) {
    if (path == "-") {
      fd_ = STDOUT_FILENO;
      path_ = "<stdout>";
    } else {
      // A new file only, like -o: an existing file or a symlink planted at the
      // name is refused, not overwritten or followed; 0600, as the records
      // name other users' processes, files and VMs.
      fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd_ < 0)
        throw InputError(fmt::format("{}: cannot create record file: {}{}", path, std::strerror(errno),
                                     errno == EEXIST ? " (not overwritten: remove it or choose another name)" : ""));
      own_ = true;
    }
    buf_.reserve(kWriteBuffer + 4096);
    buf_ = encode_file_header(h);
    flush();  // a file always starts with a complete header
  }
  ~RecordWriter() override {
    try {
      flush();
    } catch (...) {
    }
    if (own_) ::close(fd_);
  }

  void write(const Event& ev) override {
    if (records_ == 0 && last_flush_ts_ == 0) last_flush_ts_ = ev.ts_ns;
    encode_record(buf_, ev);
    ++records_;
    if (buf_.size() >= kWriteBuffer || ev.ts_ns - last_flush_ts_ > kFlushInterval) {
      flush();
      last_flush_ts_ = ev.ts_ns;
    }
  }

  void flush() override {
    size_t done = 0;
    while (done < buf_.size()) {
      ssize_t w = ::write(fd_, buf_.data() + done, buf_.size() - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        buf_.erase(0, done);
        throw std::system_error(err, std::generic_category(),
                                fmt::format("{}: writing the record file", path_));
      }
      done += static_cast<size_t>(w);
    }
    buf_.clear();
  }

  uint64_t records_written() const override { return records_; }

 private:
  std::string path_;
  int fd_ = -1;
  bool own_ = false;
  std::string buf_;
  uint64_t records_ = 0;
  uint64_t last_flush_ts_ = 0;
};

// ---- reader --------------------------------------------------------------------
class BinaryReader final : public TraceReader {
 public:
  BinaryReader(std::unique_ptr<InputStream> in, bool salvage)
      : in_(std::move(in)), salvage_(salvage) {
    read_header();  // header damage is fatal, even with salvage
  }

  bool next(Event& ev) override {
    if (stopped_) return false;
    for (;;) {
      uint64_t at = in_->offset();
      size_t n = in_->fill(kRecordPrefix);
      if (n == 0) return false;  // clean end, on a record boundary
      try {
        if (n < kRecordPrefix)
          throw Corrupt{fmt::format("truncated record: file ends {} bytes into its "
                                    "{}-byte length/checksum prefix",
                                    n, kRecordPrefix)};
        const uint8_t* p = in_->data();
        uint32_t len = get_le32(p);
        uint32_t stored = get_le32(p + 4);
        if (len < kCommonSize || len > kMaxRecordBody)
          throw Corrupt{fmt::format("invalid record length {} (valid: {}..{})", len,
                                    kCommonSize, kMaxRecordBody)};
        n = in_->fill(kRecordPrefix + len);
        if (n < kRecordPrefix + len)
          throw Corrupt{fmt::format("truncated record: file ends after {} of its {} bytes", n,
                                    kRecordPrefix + len)};
        p = in_->data();
        uint32_t crc = crc32({p, 4});
        crc = crc32({p + kRecordPrefix, len}, crc);
        if (crc != stored)
          throw Corrupt{fmt::format("record checksum mismatch (stored {:#010x}, computed {:#010x})",
                                    stored, crc)};
        bool known = decode(p + kRecordPrefix, len, ev);
        in_->consume(kRecordPrefix + len);
        if (!known) {
          ++skipped_unknown_;
          continue;
        }
        if (have_last_ && ev.ts_ns < last_ts_)
          throw Corrupt{fmt::format("event out of timestamp order: ts_ns {} after {}", ev.ts_ns,
                                    last_ts_)};
        have_last_ = true;
        last_ts_ = ev.ts_ns;
        return true;
      } catch (const Corrupt& c) {
        std::string msg = fmt::format("{}: at byte {}: {}", in_->name(), at, c.why);
        if (!salvage_) throw InputError(msg);
        stopped_ = true;
        stop_ = std::move(msg);
        return false;
      }
    }
  }

  const TraceHeader& header() const override { return header_; }
  uint64_t skipped_unknown() const override { return skipped_unknown_; }
  std::string salvage_stop() const override { return stop_; }
  std::string_view format() const override { return "binary"; }

 private:
  [[noreturn]] void header_error(uint64_t at, std::string_view why) {
    throw InputError(fmt::format("{}: at byte {}: {}", in_->name(), at, why));
  }

  void read_header() {
    size_t n = in_->fill(kFileHeaderFixed);
    const uint8_t* p = in_->data();
    size_t m = std::min(n, sizeof kRecordMagic);
    if (std::memcmp(p, kRecordMagic, m) != 0)
      header_error(0, "not a btrfs-dio-trace record file (bad magic) and not JSON lines");
    if (n < kFileHeaderFixed)
      header_error(n, fmt::format("truncated file header (file is {} bytes)", n));
    uint16_t version = uint16_t(p[8] | p[9] << 8);
    if (version != kFormatVersion)
      header_error(8, fmt::format("unsupported record format version {} (this btrfs-dio-trace "
                                  "reads version {})",
                                  version, kFormatVersion));
    uint32_t hlen = get_le32(p + 12);
    if (hlen > kMaxHeaderBody)
      header_error(12, fmt::format("invalid header length {}", hlen));
    size_t total = kFileHeaderFixed + hlen + 4;
    n = in_->fill(total);
    if (n < total)
      header_error(n, fmt::format("truncated file header (file ends after {} of its {} bytes)",
                                  n, total));
    p = in_->data();
    uint32_t stored = get_le32(p + kFileHeaderFixed + hlen);
    uint32_t crc = crc32({p, kFileHeaderFixed + hlen});
    if (crc != stored)
      header_error(0, fmt::format("file header checksum mismatch (stored {:#010x}, computed "
                                  "{:#010x})",
                                  stored, crc));
    try {
      In in{p + kFileHeaderFixed, hlen};
      uint32_t schema = in.u32();
      if (schema != static_cast<uint32_t>(kEventSchemaVersion))
        header_error(kFileHeaderFixed,
                     fmt::format("unsupported event schema version {} (this btrfs-dio-trace "
                                 "reads version {})",
                                 schema, kEventSchemaVersion));
      header_.schema_version = static_cast<int>(schema);
      header_.mono_to_realtime_ns = in.i64();
      std::string rel(in.str());
      if (auto kv = KernelVersion::parse(rel)) header_.kernel = *kv;
      else header_.kernel.release = rel;
      uint16_t hooks = in.u16();
      if (hooks > ReadLimits::kMaxHooks)
        throw Corrupt{fmt::format("more than {} hooks ({})", ReadLimits::kMaxHooks, hooks)};
      for (uint16_t i = 0; i < hooks; ++i) {
        HookInfo h;
        h.name = in.str();
        h.mechanism = in.str();
        h.attached = in.u8() != 0;
        header_.hooks.push_back(std::move(h));
      }
      // Appended fields, absent in files of older writers.
      if (in.n - in.i >= 2) header_.hostname = in.str();
      // Bytes after the known fields: a newer writer's additions, ignored.
    } catch (const Corrupt& c) {
      header_error(kFileHeaderFixed, fmt::format("file header: {}", c.why));
    }
    in_->consume(total);
  }

  // false: a type this version does not know (skipped).
  bool decode(const uint8_t* p, size_t len, Event& ev) {
    In in{p, len};
    uint16_t type = in.u16();
    if (type < 1 || type > kEventTypeCount) return false;
    in.u16();  // reserved
    ev = Event{};
    ev.type = static_cast<EventType>(type);
    ev.ts_ns = in.u64();
    ev.pid = in.u32();
    ev.tid = in.u32();
    in.bytes(ev.comm.data(), ev.comm.size());
    ev.comm.back() = '\0';
    in.bytes(ev.fs.b.data(), ev.fs.b.size());
    ev.dev = in.u64();
    ev.ino = in.u64();
    try {
      ev.vm = strings_.intern(in.str());
      ev.image = strings_.intern(in.str());
    } catch (const InputError& e) {  // the string table's limit
      throw Corrupt{e.what()};
    }
    ev.body = payload_for(ev.type);
    std::visit(PayloadIn{in, ev.type}, ev.body);
    // Bytes after the known fields: a newer writer's additions, ignored.
    return true;
  }

  std::unique_ptr<InputStream> in_;
  bool salvage_;
  TraceHeader header_;
  StringTable strings_{ReadLimits::kMaxStrings, ReadLimits::kMaxStringBytes};
  uint64_t skipped_unknown_ = 0;
  bool have_last_ = false;
  uint64_t last_ts_ = 0;
  bool stopped_ = false;
  std::string stop_;
};

}  // namespace

std::unique_ptr<TraceReader> make_binary_reader(std::unique_ptr<InputStream> in, bool salvage) {
  return std::make_unique<BinaryReader>(std::move(in), salvage);
}

}  // namespace replay

std::unique_ptr<TraceWriter> create_record(const std::string& path, const TraceHeader& h) {
  return std::make_unique<replay::RecordWriter>(path, h);
}

}  // namespace bdt
