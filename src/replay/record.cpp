// The binary --record format: writer and reader (docs/record-format.md).
//
// Every integer is little-endian and written byte by byte, so the file does
// not depend on the host's layout of Event or of std::variant. The bytes and
// the payloads (each type's field list in bdt/event_fields.h, in order) are
// replay/record_codec.h's; this file frames them: file header, records, CRCs.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "bdt/event_fields.h"
#include "core/event_json.h"
#include "replay/input.h"
#include "replay/record_codec.h"

namespace bdt {
namespace replay {

namespace {
// Slicing-by-16 tables: t[0] is the classic byte-wise table; t[k][i] is the CRC
// of byte i followed by k zero bytes, so 16 input bytes cost 16 lookups and no
// serial dependency between them.
using CrcTables = std::array<std::array<uint32_t, 256>, 16>;
constexpr CrcTables make_crc_tables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i)
    for (size_t k = 1; k < t.size(); ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
  return t;
}
constexpr CrcTables kCrc = make_crc_tables();

// The next four bytes as a little-endian word.
inline uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
// The CRC after four bytes whose word is w (already xored with the CRC when
// they come first), given tables t[k0 + 3] .. t[k0] for the bytes in order,
// i.e. followed by k0 more bytes.
inline uint32_t crc_word(uint32_t w, size_t k0) {
  return kCrc[k0 + 3][w & 0xFF] ^ kCrc[k0 + 2][(w >> 8) & 0xFF] ^ kCrc[k0 + 1][(w >> 16) & 0xFF] ^
         kCrc[k0][w >> 24];
}
}  // namespace

// CRC-32 (IEEE 802.3, reflected, as zlib's crc32()); `crc` continues a previous value.
uint32_t crc32(std::span<const uint8_t> data, uint32_t crc) {
  crc = ~crc;
  const uint8_t* p = data.data();
  size_t n = data.size();
  for (; n >= 16; p += 16, n -= 16)
    crc = crc_word(crc ^ le32(p), 12) ^ crc_word(le32(p + 4), 8) ^ crc_word(le32(p + 8), 4) ^
          crc_word(le32(p + 12), 0);
  if (n >= 8) {
    crc = crc_word(crc ^ le32(p), 4) ^ crc_word(le32(p + 4), 0);
    p += 8, n -= 8;
  }
  if (n >= 4) {
    crc = crc_word(crc ^ le32(p), 0);
    p += 4, n -= 4;
  }
  while (n--) crc = kCrc[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void recfmt::throw_too_short(size_t body) {
  throw Corrupt{fmt::format("record body too short ({} bytes)", body)};
}

void recfmt::throw_payload_length(EventType type, size_t have, const size_t* ends, size_t n) {
  if (have < ends[0])
    throw Corrupt{fmt::format("{} payload too short: {} bytes (at least {})", to_string(type),
                              have, ends[0])};
  std::string valid;  // "21, 29 or 33"
  for (size_t k = 0; k < n; ++k)
    valid += fmt::format("{}{}", k == 0 ? "" : k + 1 == n ? " or " : ", ", ends[k]);
  throw Corrupt{fmt::format("{} payload of {} bytes ends inside a field (its fields end after "
                            "{} bytes)",
                            to_string(type), have, valid)};
}

void recfmt::throw_invalid(EventType type, bool typed, const char* name, unsigned v) {
  if (typed) throw Corrupt{fmt::format("invalid {} {} value {}", to_string(type), name, v)};
  throw Corrupt{fmt::format("invalid {} value {}", name, v)};
}

namespace {

using namespace recfmt;

constexpr uint16_t kFormatVersion = 1;
constexpr size_t kFileHeaderFixed = 16;     // magic, version, flags, body length
constexpr size_t kMaxHeaderBody = 1u << 20;
constexpr size_t kRecordPrefix = 8;          // length, crc
constexpr size_t kCommonSize = 2 + 2 + 8 + 4 + 4 + 16 + 16 + 8 + 8 + 2 + 2;
constexpr size_t kMaxRecordBody = 1u << 20;
constexpr size_t kWriteBuffer = 64u << 10;
constexpr uint64_t kFlushInterval = 1'000'000'000ull;  // ts_ns

// ---- encoding ------------------------------------------------------------------
// The record encoder writes through a raw pointer into space it sized from the
// strings plus kMaxPayload; the header is appended to a string (written once).
constexpr size_t kMaxPayload = 64;  // room for the largest payload (checked below)

void put_le32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

template <class... P>
constexpr size_t max_payload_size(std::variant<P...>*) {
  return std::max({payload_size<P>()...});
}
static_assert(max_payload_size(static_cast<Payload*>(nullptr)) <= kMaxPayload,
              "a payload outgrew kMaxPayload");

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
  std::visit([&](const auto& p) { encode_payload(o, p); }, ev.body);
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
        throw OutputError(fmt::format("{}: cannot write the record file: {}", path_, std::strerror(err)));
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
    // A shorter payload (an older writer's) leaves the appended fields it
    // lacks at their defaults; bytes after the known fields (a newer writer's
    // additions) are ignored.
    std::visit([&](auto& p) { decode_payload(in, p, ev.type); }, ev.body);
    if (auto w = wrapping_range(ev); !w.empty())
      throw Corrupt{fmt::format("{} {} runs past 2^64", to_string(ev.type), w)};
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
