// The event model's names and helpers (bdt/event.h).
#include "bdt/event.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace bdt {

std::string Fsid::str() const {
  char buf[37];
  std::snprintf(buf, sizeof buf,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                b[14], b[15]);
  return buf;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<Fsid> Fsid::parse(std::string_view s) {
  Fsid f;
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '-') {
      ++i;
      continue;
    }
    if (i + 1 >= s.size() || n >= 16) return std::nullopt;
    int hi = hexval(s[i]), lo = hexval(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    f.b[n++] = static_cast<uint8_t>(hi << 4 | lo);
    i += 2;
  }
  if (n != 16) return std::nullopt;
  return f;
}

namespace {
constexpr std::string_view kTypeNames[] = {
    "dio_begin", "dio_end",  "get_extent", "em_add",       "em_exist",
    "oe_add",    "oe_split", "oe_start",   "oe_mark_finished", "oe_finish",
    "oe_remove", "eb_free",  "eb_find",    "eb_release",   "ioctl_begin",
    "ioctl_end", "reloc_begin", "reloc_end", "csum_error", "dio_fallback"};
static_assert(std::size(kTypeNames) == kEventTypeCount);

constexpr std::string_view kViaNames[] = {"call", "syscall", "libaio", "io_uring"};

constexpr std::string_view kIoctlNames[] = {"other",      "send",      "balance", "balance_v2",
                                            "rm_dev",     "rm_dev_v2", "resize"};

constexpr FlagName kOrderedFlags[] = {
    {oef::REGULAR, "REGULAR"},   {oef::NOCOW, "NOCOW"},         {oef::PREALLOC, "PREALLOC"},
    {oef::COMPRESSED, "COMPRESSED"}, {oef::DIRECT, "DIRECT"},   {oef::IO_DONE, "IO_DONE"},
    {oef::COMPLETE, "COMPLETE"}, {oef::IOERR, "IOERR"},         {oef::TRUNCATED, "TRUNCATED"},
    {oef::LOGGED, "LOGGED"},     {oef::LOGGED_CSUM, "LOGGED_CSUM"}, {oef::PENDING, "PENDING"},
    {oef::ENCODED, "ENCODED"},
};
constexpr FlagName kEbFlags[] = {
    {ebf::UPTODATE, "UPTODATE"},   {ebf::DIRTY, "DIRTY"},         {ebf::TREE_REF, "TREE_REF"},
    {ebf::STALE, "STALE"},         {ebf::WRITEBACK, "WRITEBACK"}, {ebf::UNMAPPED, "UNMAPPED"},
    {ebf::WRITE_ERR, "WRITE_ERR"}, {ebf::READ_ERR, "READ_ERR"},   {ebf::READING, "READING"},
    {ebf::ZONED_ZEROOUT, "ZONED_ZEROOUT"}, {ebf::IN_TREE, "IN_TREE"},
    {ebf::READAHEAD, "READAHEAD"}, {ebf::CORRUPT, "CORRUPT"},     {ebf::NO_CHECK, "NO_CHECK"},
};
}  // namespace

std::string_view to_string(EventType t) {
  auto i = static_cast<size_t>(t) - 1;
  return i < std::size(kTypeNames) ? kTypeNames[i] : std::string_view("unknown");
}

std::optional<EventType> event_type_from(std::string_view s) {
  for (size_t i = 0; i < std::size(kTypeNames); ++i)
    if (kTypeNames[i] == s) return static_cast<EventType>(i + 1);
  return std::nullopt;
}

std::string_view to_string(Phase p) {
  switch (p) {
    case Phase::Enter: return "enter";
    case Phase::Exit: return "exit";
    default: return "";
  }
}

std::string_view to_string(IoctlCmd c) {
  auto i = static_cast<size_t>(c);
  return i < std::size(kIoctlNames) ? kIoctlNames[i] : std::string_view("other");
}

std::optional<IoctlCmd> ioctl_cmd_from(std::string_view s) {
  for (size_t i = 0; i < std::size(kIoctlNames); ++i)
    if (kIoctlNames[i] == s) return static_cast<IoctlCmd>(i);
  return std::nullopt;
}

std::string_view to_string(FallbackVia v) {
  auto i = static_cast<size_t>(v);
  return i < std::size(kViaNames) ? kViaNames[i] : std::string_view("call");
}

std::optional<FallbackVia> fallback_via_from(std::string_view s) {
  for (size_t i = 0; i < std::size(kViaNames); ++i)
    if (kViaNames[i] == s) return static_cast<FallbackVia>(i);
  return std::nullopt;
}

bool relocates(IoctlCmd c) {
  return c == IoctlCmd::Balance || c == IoctlCmd::BalanceV2 || c == IoctlCmd::RmDev ||
         c == IoctlCmd::RmDevV2 || c == IoctlCmd::Resize;
}

std::span<const FlagName> ordered_flag_names() { return kOrderedFlags; }
std::span<const FlagName> eb_flag_names() { return kEbFlags; }

std::string_view Event::comm_view() const {
  return std::string_view(comm.data(), strnlen(comm.data(), comm.size()));
}

void Event::set_comm(std::string_view c) {
  comm.fill(0);
  std::memcpy(comm.data(), c.data(), std::min(c.size(), comm.size() - 1));
}

Payload payload_for(EventType t) {
  return with_payload_type(t, [](auto p) -> Payload { return typename decltype(p)::type{}; });
}

bool payload_matches(const Event& e) { return e.body.index() == payload_for(e.type).index(); }

std::string_view wrapping_range(const Event& e) {
  std::string_view bad;
  std::visit(
      [&](const auto& p) {
        for_each_range(p, [&](uint64_t start, uint64_t len, std::string_view name) {
          if (bad.empty() && len > UINT64_MAX - start) bad = name;
        });
      },
      e.body);
  return bad;
}

}  // namespace bdt
