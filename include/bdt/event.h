// btrfs-dio-trace: the typed event model every part of the tool speaks.
//
// Live tracing (src/live), replay (src/replay) and the flight recorder all turn
// their input into bdt::Event values; detectors (src/detectors) only ever see
// these. The JSON names of every type and field are in docs/events.md and in
// event_json.cpp; change them only together with the schema version.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

namespace bdt {

// A btrfs filesystem UUID (the fsid `btrfs filesystem show` prints).
struct Fsid {
  std::array<uint8_t, 16> b{};
  bool empty() const { return (half(0) | half(1)) == 0; }
  std::string str() const;  // "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
  static std::optional<Fsid> parse(std::string_view s);
  auto operator<=>(const Fsid&) const = default;
  // (== in two 8-byte compares: the detectors compare fsids on every event)
  bool operator==(const Fsid& o) const { return half(0) == o.half(0) && half(1) == o.half(1); }
  // Bytes [8i, 8i + 8) as one integer (host order): for hashing and comparing.
  uint64_t half(int i) const {
    uint64_t v;
    std::memcpy(&v, b.data() + 8 * i, 8);
    return v;
  }
};

enum class EventType : uint16_t {
  DioBegin = 1,
  DioEnd,
  GetExtent,
  EmAdd,
  EmExist,
  OeAdd,
  OeSplit,
  OeStart,
  OeMarkFinished,
  OeFinish,
  OeRemove,
  EbFree,
  EbFind,
  EbRelease,
  IoctlBegin,
  IoctlEnd,
  RelocBegin,
  RelocEnd,
  CsumError,
  DioFallback,
};
inline constexpr int kEventTypeCount = 20;

std::string_view to_string(EventType t);                 // "dio_begin"
std::optional<EventType> event_type_from(std::string_view);

enum class Phase : uint8_t { None = 0, Enter = 1, Exit = 2 };
std::string_view to_string(Phase p);  // "", "enter", "exit"

enum class IoctlCmd : uint8_t { Other = 0, Send, Balance, BalanceV2, RmDev, RmDevV2, Resize };
std::string_view to_string(IoctlCmd c);  // "send", "balance", "balance_v2", ...
std::optional<IoctlCmd> ioctl_cmd_from(std::string_view);
// True for the ioctls that relocate block groups.
bool relocates(IoctlCmd c);

// How a dio_fallback was observed: the btrfs write function itself (every
// submitter), a write-family syscall, libaio's io_submit, io_uring.
enum class FallbackVia : uint8_t { Call = 0, Syscall, Libaio, IoUring };
std::string_view to_string(FallbackVia v);  // "call", "syscall", "libaio", "io_uring"
std::optional<FallbackVia> fallback_via_from(std::string_view);

// Ordered-extent flags, canonical bits (independent of the kernel's numbering).
namespace oef {
inline constexpr uint32_t REGULAR = 1u << 0, NOCOW = 1u << 1, PREALLOC = 1u << 2,
                          COMPRESSED = 1u << 3, DIRECT = 1u << 4, IO_DONE = 1u << 5,
                          COMPLETE = 1u << 6, IOERR = 1u << 7, TRUNCATED = 1u << 8,
                          LOGGED = 1u << 9, LOGGED_CSUM = 1u << 10, PENDING = 1u << 11,
                          ENCODED = 1u << 12;
}
// Extent-buffer flags, canonical bits.
namespace ebf {
inline constexpr uint32_t UPTODATE = 1u << 0, DIRTY = 1u << 1, TREE_REF = 1u << 2,
                          STALE = 1u << 3, WRITEBACK = 1u << 4, UNMAPPED = 1u << 5,
                          WRITE_ERR = 1u << 6, READ_ERR = 1u << 7, READING = 1u << 8,
                          ZONED_ZEROOUT = 1u << 9, IN_TREE = 1u << 10, READAHEAD = 1u << 11,
                          CORRUPT = 1u << 12, NO_CHECK = 1u << 13;
}
// Name tables used by the JSON/text encoders and by the kernel-BTF flag mapper.
struct FlagName {
  uint32_t bit;
  std::string_view name;
};
std::span<const FlagName> ordered_flag_names();
std::span<const FlagName> eb_flag_names();

// ---- per-type payloads -------------------------------------------------------
struct DioBegin {
  uint64_t pos = 0, count = 0, done_before = 0;
  bool write = false, aio = false;
  bool buf_shared = false, buf_writable = false;
  uint64_t buf_file_dev = 0;  // st_dev of the buffer's backing file (0 if anonymous)
  uint64_t buf_file_ino = 0;  // 0: anonymous memory
  uint64_t buf_file_off = 0;
  uint64_t buf_addr = 0;      // user address (informational)
  bool nodatasum = false;     // inode has no data checksums (nocow)
  bool partial = false;       // iomap IOMAP_DIO_PARTIAL
  bool operator==(const DioBegin&) const = default;
};
struct DioEnd {
  uint64_t pos = 0;
  int64_t ret = 0;  // bytes or -errno
  int32_t error = 0;
  std::optional<bool> write;  // direction when the source knows it
  // The stall trigger fired at this completion (findings only, bpf/lazy.bpf.h
  // stall_scan): at least this many DIO requests on the filesystem that began
  // after the stalled request completed while it was open (0: not counted),
  // and that request: its begin time (its dio_begin's ts_ns as the kernel
  // stamped it; 0: none), thread and inode.
  uint64_t later_done = 0;
  uint64_t stalled_begin_ns = 0;
  uint32_t stalled_tid = 0;
  uint64_t stalled_ino = 0;
  bool operator==(const DioEnd&) const = default;
};
struct GetExtent {
  Phase phase = Phase::Exit;
  uint64_t start = 0, len = 0;
  uint64_t em_start = 0, em_len = 0, block_start = 0;  // exit only
  int64_t ret = 0;                                     // exit only: 0 or -errno
  bool operator==(const GetExtent&) const = default;
};
struct EmAdd {
  uint64_t start = 0, len = 0, block_start = 0;
  int64_t ret = 0;
  bool operator==(const EmAdd&) const = default;
};
struct EmExist {
  uint64_t e_start = 0, e_len = 0;      // the existing map
  uint64_t map_start = 0, map_len = 0;  // the map being inserted
  uint64_t start = 0, len = 0;          // the range that was asked for
  bool operator==(const EmExist&) const = default;
};
// oe_add / oe_split / oe_start / oe_mark_finished / oe_finish / oe_remove
struct Ordered {
  uint64_t file_offset = 0, len = 0;
  uint32_t flags = 0;  // oef::*
  bool uptodate = true;
  bool operator==(const Ordered&) const = default;
};
// eb_free / eb_find / eb_release
struct ExtentBuffer {
  Phase phase = Phase::None;
  uint64_t eb_start = 0;
  int32_t refs = 0;
  uint32_t bflags = 0;  // ebf::*
  uint64_t eb_id = 0;   // identity of the buffer object when known (kernel address)
  bool operator==(const ExtentBuffer&) const = default;
};
// ioctl_begin / ioctl_end
struct Ioctl {
  int32_t fd = -1;
  IoctlCmd cmd = IoctlCmd::Other;
  int64_t ret = 0;  // end only
  bool operator==(const Ioctl&) const = default;
};
// reloc_begin / reloc_end
struct Reloc {
  uint64_t block_group = 0;
  int64_t ret = 0;  // end only
  bool operator==(const Reloc&) const = default;
};
struct CsumError {
  uint64_t offset = 0, len = 0;
  uint32_t mirror = 0;
  bool operator==(const CsumError&) const = default;
};
// dio_fallback: an O_DIRECT write on btrfs that returned without reaching
// iomap_dio_rw (btrfs carried it out as a buffered write).
struct DioFallback {
  uint64_t pos = 0;
  uint64_t count = 0;      // bytes written (the result), or requested when `requested`
  int32_t fd = -1;         // -1: not known (the function hook sees no fd)
  FallbackVia via = FallbackVia::Call;
  bool nodatasum = false;  // the inode has no data checksums
  bool unaligned = false;  // pos or count not a multiple of the sector size
  bool requested = false;  // the result was not seen: count is the request's size
  bool operator==(const DioFallback&) const = default;
};

using Payload = std::variant<DioBegin, DioEnd, GetExtent, EmAdd, EmExist, Ordered,
                             ExtentBuffer, Ioctl, Reloc, CsumError, DioFallback>;

struct Event {
  uint64_t ts_ns = 0;  // CLOCK_MONOTONIC nanoseconds (boot-based); the detectors' clock
  uint32_t pid = 0;    // process (tgid)
  uint32_t tid = 0;    // thread
  std::array<char, 16> comm{};  // NUL-terminated
  EventType type = EventType::DioBegin;
  Fsid fs;            // filesystem UUID
  uint64_t dev = 0;   // st_dev as stat(2) reports it (subvolume anon dev on btrfs)
  uint64_t ino = 0;
  // Optional attribution, filled by --qemu (empty otherwise).
  std::string_view vm;     // points into a long-lived string table, never owned here
  std::string_view image;
  // Error origin (live tracing only): when nonzero, live::Session::stack(stack_id)
  // gives the symbolized kernel stack where a hooked function returned
  // -EEXIST/-EIO for a traced DIO request or a data checksum check failed.
  uint32_t stack_id = 0;
  Payload body;

  std::string_view comm_view() const;
  void set_comm(std::string_view c);
  // Every member equal (vm and image by content): e.g. an event decoded into
  // a reused slot and the same record decoded into a fresh one.
  bool operator==(const Event&) const = default;

  template <class T> const T* as() const { return std::get_if<T>(&body); }
  template <class T> T* as() { return std::get_if<T>(&body); }
};

// f(std::type_identity<P>{}) for the payload type P an event of type t carries
// (the one place that maps types to payloads).
template <class F>
constexpr decltype(auto) with_payload_type(EventType t, F&& f) {
  switch (t) {
    case EventType::DioBegin: return f(std::type_identity<DioBegin>{});
    case EventType::DioEnd: return f(std::type_identity<DioEnd>{});
    case EventType::GetExtent: return f(std::type_identity<GetExtent>{});
    case EventType::EmAdd: return f(std::type_identity<EmAdd>{});
    case EventType::EmExist: return f(std::type_identity<EmExist>{});
    case EventType::OeAdd:
    case EventType::OeSplit:
    case EventType::OeStart:
    case EventType::OeMarkFinished:
    case EventType::OeFinish:
    case EventType::OeRemove: return f(std::type_identity<Ordered>{});
    case EventType::EbFree:
    case EventType::EbFind:
    case EventType::EbRelease: return f(std::type_identity<ExtentBuffer>{});
    case EventType::IoctlBegin:
    case EventType::IoctlEnd: return f(std::type_identity<Ioctl>{});
    case EventType::RelocBegin:
    case EventType::RelocEnd: return f(std::type_identity<Reloc>{});
    case EventType::CsumError: return f(std::type_identity<CsumError>{});
    case EventType::DioFallback: return f(std::type_identity<DioFallback>{});
  }
  return f(std::type_identity<DioBegin>{});
}

// The (default-constructed) payload an event of type t carries.
Payload payload_for(EventType t);
// Does the payload type match the event type (used by decoders to validate)?
bool payload_matches(const Event& e);
// f(start, len, "start + len") for each byte range a payload carries (the one
// place that says which fields pair up as ranges); P may be const.
template <class P, class F>
void for_each_range(P& p, F&& f) {
  using T = std::remove_const_t<P>;
  if constexpr (std::is_same_v<T, DioBegin> || std::is_same_v<T, DioFallback>) {
    f(p.pos, p.count, "pos + count");
  } else if constexpr (std::is_same_v<T, GetExtent>) {
    f(p.start, p.len, "start + len");
    f(p.em_start, p.em_len, "em_start + em_len");
  } else if constexpr (std::is_same_v<T, EmAdd>) {
    f(p.start, p.len, "start + len");
  } else if constexpr (std::is_same_v<T, EmExist>) {
    f(p.e_start, p.e_len, "e_start + e_len");
    f(p.map_start, p.map_len, "map_start + map_len");
    f(p.start, p.len, "start + len");
  } else if constexpr (std::is_same_v<T, Ordered>) {
    f(p.file_offset, p.len, "file_offset + len");
  } else if constexpr (std::is_same_v<T, CsumError>) {
    f(p.offset, p.len, "offset + len");
  }
}
// The first byte range of the event (start + length) whose end runs past 2^64,
// as "pos + count", or empty: a kernel never reports one (file offsets are
// loff_t), so the decoders reject such an event as corrupt instead of handing
// the detectors a range whose end wrapped below its start.
std::string_view wrapping_range(const Event& e);

}  // namespace bdt
