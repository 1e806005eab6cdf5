// Decoding raw BPF records into bdt::Event, kernel-flag mapping and the
// mountinfo lookup behind --mount (declared and explained in decode.h).
#include "live/decode.h"

#include <cstring>

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

// ---- raw record -> Event -------------------------------------------------------
bool decode_raw(const bdt_raw_event& r, const FlagMaps& fm, Event& out) {
  if (r.type == BDT_EV_NONE || r.type >= BDT_EV_MAX) return false;
  out.ts_ns = r.ts_ns;
  out.pid = r.pid;
  out.tid = r.tid;
  std::memcpy(out.comm.data(), r.comm, sizeof r.comm);
  out.comm[out.comm.size() - 1] = 0;
  out.type = static_cast<EventType>(r.type);
  std::memcpy(out.fs.b.data(), r.fsid, sizeof r.fsid);
  out.dev = (r.flags & BDT_F_HAS_DEV) ? kernel_dev_to_user(r.dev) : 0;
  out.ino = (r.flags & BDT_F_HAS_DEV) ? r.ino : 0;
  out.vm = {};
  out.image = {};
  out.stack_id = r.stack_id;
  const uint32_t f = r.flags;
  switch (r.type) {
    case BDT_EV_DIO_BEGIN: {
      DioBegin d;
      d.pos = r.u.dio.pos;
      d.count = r.u.dio.count;
      d.done_before = r.u.dio.done_before;
      d.write = f & BDT_F_WRITE;
      d.aio = f & BDT_F_AIO;
      d.buf_shared = f & BDT_F_BUF_SHARED;
      d.buf_writable = f & BDT_F_BUF_WRITABLE;
      d.buf_file_ino = r.u.dio.buf_file_ino;
      d.buf_file_dev = r.u.dio.buf_file_ino ? kernel_dev_to_user(r.u.dio.buf_file_dev) : 0;
      d.buf_file_off = r.u.dio.buf_file_ino ? r.u.dio.buf_file_off : 0;
      d.buf_addr = r.u.dio.buf_addr;
      d.nodatasum = f & BDT_F_NODATASUM;
      d.partial = f & BDT_F_PARTIAL;
      out.body = d;
      break;
    }
    case BDT_EV_DIO_END: {
      DioEnd d;
      d.pos = r.u.dio.pos;
      d.ret = r.u.dio.ret;
      d.error = r.u.dio.error;
      // The direction is known only when the request's begin was seen.
      if (f & BDT_F_DIR_KNOWN) d.write = static_cast<bool>(f & BDT_F_WRITE);
      out.body = d;
      break;
    }
    case BDT_EV_GET_EXTENT: {
      GetExtent g;
      g.phase = r.phase == BDT_PHASE_ENTER ? Phase::Enter : Phase::Exit;
      g.start = r.u.ext.start;
      g.len = r.u.ext.len;
      g.em_start = r.u.ext.em_start;
      g.em_len = r.u.ext.em_len;
      g.block_start = r.u.ext.block_start;
      g.ret = r.u.ext.ret;
      out.body = g;
      break;
    }
    case BDT_EV_EM_ADD: {
      EmAdd a;
      a.start = r.u.ext.start;
      a.len = r.u.ext.len;
      a.block_start = r.u.ext.block_start;
      a.ret = r.u.ext.ret;
      out.body = a;
      break;
    }
    case BDT_EV_EM_EXIST: {
      EmExist x;
      x.e_start = r.u.emx.e_start;
      x.e_len = r.u.emx.e_len;
      x.map_start = r.u.emx.map_start;
      x.map_len = r.u.emx.map_len;
      x.start = r.u.emx.start;
      x.len = r.u.emx.len;
      out.body = x;
      break;
    }
    case BDT_EV_OE_ADD:
    case BDT_EV_OE_SPLIT:
    case BDT_EV_OE_START:
    case BDT_EV_OE_MARK_FINISHED:
    case BDT_EV_OE_REMOVE:
    case BDT_EV_OE_FINISH: {
      Ordered o;
      o.file_offset = r.u.oe.file_offset;
      o.len = r.u.oe.len;
      o.flags = fm.ordered.map(r.u.oe.kflags);
      if (r.type == BDT_EV_OE_FINISH)
        o.uptodate = f & BDT_F_UPTODATE;
      else
        o.uptodate = !(o.flags & oef::IOERR);
      out.body = o;
      break;
    }
    case BDT_EV_EB_FREE:
    case BDT_EV_EB_FIND:
    case BDT_EV_EB_RELEASE: {
      ExtentBuffer b;
      b.phase = static_cast<Phase>(r.phase <= BDT_PHASE_EXIT ? r.phase : 0);
      b.eb_start = r.u.eb.eb_start;
      b.refs = r.u.eb.refs;
      b.bflags = fm.eb.map(r.u.eb.kbflags);
      b.eb_id = r.u.eb.eb_ptr;
      out.body = b;
      break;
    }
    case BDT_EV_IOCTL_BEGIN:
    case BDT_EV_IOCTL_END: {
      Ioctl i;
      i.fd = static_cast<int32_t>(r.u.ioc.fd);
      i.cmd = r.u.ioc.cmd <= BDT_IOC_RESIZE ? static_cast<IoctlCmd>(r.u.ioc.cmd) : IoctlCmd::Other;
      i.ret = r.u.ioc.ret;
      out.body = i;
      break;
    }
    case BDT_EV_RELOC_BEGIN:
    case BDT_EV_RELOC_END: {
      Reloc l;
      l.block_group = r.u.rel.block_group;
      l.ret = r.u.rel.ret;
      out.body = l;
      break;
    }
    case BDT_EV_CSUM_ERROR: {
      CsumError c;
      c.offset = r.u.csum.offset;
      c.len = r.u.csum.len;
      c.mirror = r.u.csum.mirror;
      out.body = c;
      break;
    }
    default: return false;
  }
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

}  // namespace bdt::live
