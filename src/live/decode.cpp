// Decoding raw BPF records into bdt::Event (each payload field's raw source is
// in its list, bdt/event_fields.h), kernel-flag mapping and the
// mountinfo lookup behind --mount (declared and explained in decode.h).
#include "live/decode.h"

#include <cstring>

#include "bdt/event_fields.h"

namespace bdt::live {

bool FlagMap::add(std::string_view enumerator, int64_t value, std::string_view prefix,
                  std::span<const FlagName> names) {
  if (enumerator.substr(0, prefix.size()) != prefix || value < 0 || value >= 64) return false;
  const auto rest = enumerator.substr(prefix.size());
  for (const auto& n : names)
    if (n.name == rest) {
      canon[static_cast<size_t>(value)] = n.bit;
      known |= 1ull << value;
      loaded = true;
      return true;
    }
  return false;
}

void FlagMaps::offer(std::string_view enumerator, int64_t value) {
  ordered.add(enumerator, value, "BTRFS_ORDERED_", ordered_flag_names());
  eb.add(enumerator, value, "EXTENT_BUFFER_", eb_flag_names());
}

FlagMaps flag_maps_from(const std::map<std::string, int64_t>& enumerators) {
  FlagMaps fm;
  for (const auto& [name, value] : enumerators) fm.offer(name, value);
  return fm;
}

// ---- raw record -> Event -------------------------------------------------------
namespace {
// What a field's .raw(...) source (bdt/event_fields.h) may use besides the record.
struct RawContext {
  const FlagMaps& fm;
  uint64_t user_dev(uint64_t kdev) const { return kernel_dev_to_user(kdev); }
  uint32_t ordered(uint64_t kflags) const { return fm.ordered.map(kflags); }
  uint32_t eb(uint64_t kbflags) const { return fm.eb.map(kbflags); }
};
}  // namespace

// The common part here; the payload from each field's raw source in its list.
bool decode_raw(const bdt_raw_event& r, const FlagMaps& fm, Event& out) {
  const std::optional<EventType> type = fields::event_type_from_raw(r.type);
  if (!type) return false;
  out.ts_ns = r.ts_ns;
  out.pid = r.pid;
  out.tid = r.tid;
  std::memcpy(out.comm.data(), r.comm, sizeof r.comm);
  out.comm[out.comm.size() - 1] = 0;
  out.type = *type;
  std::memcpy(out.fs.b.data(), r.fsid, sizeof r.fsid);
  out.dev = (r.flags & BDT_F_HAS_DEV) ? kernel_dev_to_user(r.dev) : 0;
  out.ino = (r.flags & BDT_F_HAS_DEV) ? r.ino : 0;
  out.vm = {};
  out.image = {};
  out.stack_id = r.stack_id;
  const RawContext cx{fm};
  with_payload_type(*type, [&](auto tag) {
    using P = typename decltype(tag)::type;
    P& p = out.body.emplace<P>();
    fields::for_each<P>([&](const auto& d) { d.ref(p) = d.raw_fn(r, cx); });
  });
  return true;
}

// ---- /proc/self/mountinfo ---------------------------------------------------------

std::string unescape_mountinfo(std::string_view s) {
  auto oct = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && oct(s[i + 1]) && oct(s[i + 2]) && oct(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
      continue;
    }
    out += s[i];
  }
  return out;
}

std::optional<MountEntry> parse_mountinfo_line(std::string_view line) {
  std::vector<std::string_view> f;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\n') ++j;
    if (j > i) f.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  if (f.size() < 7) return std::nullopt;
  MountEntry m;
  auto num = [](std::string_view s, uint64_t& v) {
    if (s.empty()) return false;
    v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    return true;
  };
  if (!num(f[0], m.mount_id)) return std::nullopt;
  auto colon = f[2].find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  uint64_t ma = 0, mi = 0;
  if (!num(f[2].substr(0, colon), ma) || !num(f[2].substr(colon + 1), mi)) return std::nullopt;
  m.major = static_cast<uint32_t>(ma);
  m.minor = static_cast<uint32_t>(mi);
  m.root = unescape_mountinfo(f[3]);
  m.mount_point = unescape_mountinfo(f[4]);
  size_t sep = 6;
  while (sep < f.size() && f[sep] != "-") ++sep;
  if (sep + 1 >= f.size()) return std::nullopt;
  m.fstype = std::string(f[sep + 1]);
  if (sep + 2 < f.size()) m.source = unescape_mountinfo(f[sep + 2]);
  return m;
}

std::vector<MountEntry> parse_mountinfo(std::string_view text) {
  std::vector<MountEntry> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    if (auto m = parse_mountinfo_line(text.substr(i, j - i))) out.push_back(std::move(*m));
    i = j + 1;
  }
  return out;
}

std::optional<MountEntry> find_mount(const std::vector<MountEntry>& mounts, std::string_view path,
                                     std::optional<uint64_t> mount_id) {
  if (mount_id) {
    for (const auto& m : mounts)
      if (m.mount_id == *mount_id) return m;
  }
  const MountEntry* best = nullptr;
  for (const auto& m : mounts) {
    std::string_view mp = m.mount_point;
    bool prefix = false;
    if (mp == "/")
      prefix = !path.empty() && path[0] == '/';
    else if (path.substr(0, mp.size()) == mp)
      prefix = path.size() == mp.size() || path[mp.size()] == '/';
    if (prefix && (!best || mp.size() >= best->mount_point.size())) best = &m;
  }
  if (best) return *best;
  return std::nullopt;
}

std::map<uint64_t, BtrfsMounted> btrfs_mounted(const std::vector<MountEntry>& mounts) {
  std::map<uint64_t, BtrfsMounted> out;
  for (const auto& m : mounts) {
    if (m.fstype != "btrfs") continue;
    auto& b = out[(static_cast<uint64_t>(m.major) << 20) | m.minor];
    if (b.mount_points.empty()) {
      b.major = m.major;
      b.minor = m.minor;
      b.source = m.source;
    }
    b.mount_points.push_back(m.mount_point);
  }
  return out;
}

}  // namespace bdt::live
