// QEMU discovery from a /proc tree: which processes are QEMU, their VM name,
// their disk images (command line + open files) and threads.
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "core/safe_text.h"
#include "qemu/qemu.h"

namespace bdt::qemu {

std::string fs_type_name(uint64_t t) {
  switch (t) {
    case 0x9123683E: return "btrfs";
    case 0xEF53: return "ext4";
    case 0x58465342: return "xfs";
    case 0x01021994: return "tmpfs";
    case 0x794c7630: return "overlayfs";
    case 0x6969: return "nfs";
    case 0x2fc12fc1: return "zfs";
    case 0xF2F52010: return "f2fs";
    case 0x65735546: return "fuse";
    case 0x00c36400: return "ceph";
    case 0xFF534D42: return "cifs";
    case 0x9fa0: return "proc";
    case 0x62656572: return "sysfs";
    case 0x858458f6: return "ramfs";
    case 0x4d44: return "vfat";
    case 0x5346544e: return "ntfs";
    case 0x73717368: return "squashfs";
    case 0xCA451A4E: return "bcachefs";
    default: return fmt::format("0x{:x}", t);
  }
}

FileId real_stat(const std::string& path) {
  FileId id;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    id.error = errno;
    return id;
  }
  id.ok = true;
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  id.regular = S_ISREG(st.st_mode);
  struct statfs sf {};
  if (::statfs(path.c_str(), &sf) == 0) id.fs_magic = static_cast<uint64_t>(sf.f_type) & 0xffffffffu;
  return id;
}

size_t QemuProcess::traced_images() const {
  size_t n = 0;
  for (const auto& i : images) n += i.on_btrfs;
  return n;
}

namespace {

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string read_link(const std::string& path) {
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<size_t>(n));
}

std::string strip_deleted(std::string s) {
  static constexpr std::string_view kDel = " (deleted)";
  if (s.size() > kDel.size() && s.compare(s.size() - kDel.size(), kDel.size(), kDel) == 0)
    s.resize(s.size() - kDel.size());
  return s;
}

std::string_view basename(std::string_view p) {
  auto s = p.rfind('/');
  return s == std::string_view::npos ? p : p.substr(s + 1);
}

std::vector<std::string> split_nul(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t e = s.find('\0', start);
    if (e == std::string::npos) e = s.size();
    out.emplace_back(s.substr(start, e - start));
    start = e + 1;
  }
  return out;
}

std::vector<uint32_t> numeric_entries(const std::string& dir) {
  std::vector<uint32_t> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    const char* n = e->d_name;
    if (!*n || !std::all_of(n, n + std::strlen(n), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    out.push_back(static_cast<uint32_t>(std::strtoul(n, nullptr, 10)));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::string trim_nl(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
  return s;
}

// Field 3 of /proc/PID/stat: R, S, D, Z (zombie), X (dead), ...
char state_of(const std::string& stat) {
  auto rp = stat.rfind(')');
  return rp != std::string::npos && rp + 2 < stat.size() ? stat[rp + 2] : '?';
}

// Field 22 of /proc/PID/stat (after the parenthesized comm, which may hold spaces).
uint64_t start_time_of(const std::string& stat) {
  auto rp = stat.rfind(')');
  if (rp == std::string::npos || rp + 2 > stat.size()) return 0;  // truncated: no fields
  std::istringstream in(stat.substr(rp + 2));
  std::string f;
  for (int field = 3; in >> f; ++field)
    if (field == 22) return std::strtoull(f.c_str(), nullptr, 10);
  return 0;
}

// Open flags from /proc/PID/fdinfo/N "flags:\t02140002" (octal).
std::optional<unsigned long> fd_flags(const std::string& fdinfo) {
  auto text = read_file(fdinfo);
  if (!text) return std::nullopt;
  auto p = text->find("flags:");
  if (p == std::string::npos) return std::nullopt;
  return std::strtoul(text->c_str() + p + 6, nullptr, 8);
}

std::string reason_for(const FileId& id) {
  if (!id.ok) return fmt::format("cannot stat: {}", std::strerror(id.error));
  if (id.fs_magic != kBtrfsMagic) return fmt::format("not on btrfs ({})", fs_type_name(id.fs_magic));
  return {};
}

void set_identity(Image& img, const FileId& id) {
  img.dev = id.ok ? id.dev : 0;
  img.ino = id.ok ? id.ino : 0;
  img.fs_type = id.ok ? fs_type_name(id.fs_magic) : std::string();
  img.on_btrfs = id.ok && id.fs_magic == kBtrfsMagic;
  img.reason = reason_for(id);
}

// Open regular files that are not plausibly disk images.
bool skip_fd_path(const std::string& p) {
  if (p.empty() || p[0] != '/') return true;  // anon_inode:, socket:, pipe:
  for (std::string_view pre : {"/memfd:", "/dev/", "/proc/", "/sys/", "/usr/", "/lib", "/run/",
                               "/var/log/"})
    if (p.rfind(pre, 0) == 0) return true;
  return false;
}

std::optional<QemuProcess> read_process(uint32_t pid, const DiscoverOptions& o, bool any,
                                        std::string* why_not) {
  const std::string dir = fmt::format("{}/{}", o.proc_root, pid);
  auto cmdline = read_file(dir + "/cmdline");
  if (!cmdline) {
    if (why_not) *why_not = fmt::format("no process {}", pid);
    return std::nullopt;
  }
  QemuProcess p;
  p.pid = pid;
  p.argv = split_nul(*cmdline);
  p.comm = trim_nl(read_file(dir + "/comm").value_or(""));
  p.exe = strip_deleted(read_link(dir + "/exe"));
  if (auto st = read_file(dir + "/stat")) {
    p.start_time = start_time_of(*st);
    // An exited QEMU its parent has not reaped yet: no files, no I/O.
    if (char c = state_of(*st); c == 'Z' || c == 'X') {
      if (why_not) *why_not = fmt::format("process {} ({}) has exited", pid, p.comm);
      return std::nullopt;
    }
  }
  // An exiting QEMU whose memory is already gone (exit_mm: no command line, no executable) but
  // that is not a zombie yet: it has no images or I/O left, and a scan must not take it for
  // a new, nameless VM ("pid-N") where it was a named one a second ago.
  if (p.argv.empty() && p.exe.empty() && looks_like_qemu(p.comm, "", "")) {
    if (why_not) *why_not = fmt::format("process {} ({}) has exited", pid, p.comm);
    return std::nullopt;
  }
  const std::string argv0 = p.argv.empty() ? std::string() : p.argv[0];
  if (!any && !looks_like_qemu(p.comm, p.exe, argv0)) {
    if (why_not) {
      std::string what = p.comm;
      if (!p.exe.empty()) what += ", " + p.exe;
      else if (!argv0.empty() && argv0 != p.comm) what += ", " + argv0;
      if (p.argv.empty() && p.exe.empty()) what += ", a kernel thread";
      *why_not = fmt::format("process {} ({}) is not a QEMU process (qemu-system-* or qemu-kvm)",
                             pid, what);
    }
    return std::nullopt;
  }

  CommandLine cl = parse_command_line(p.argv);
  p.nodes_dropped = cl.nodes_dropped;
  p.named = !cl.vm_name.empty();
  p.vm = p.named ? cl.vm_name : fmt::format("pid-{}", pid);

  // Paths on the command line are in the process's view: relative to its cwd,
  // under its root (another mount namespace). /proc/PID/root/<path> reaches it.
  const std::string cwd = read_link(dir + "/cwd");
  const bool has_root = !read_link(dir + "/root").empty();
  std::set<std::pair<uint64_t, uint64_t>> seen;
  for (const auto& d : cl.drives) {
    Image img;
    img.path = d.path;
    if (!img.path.empty() && img.path[0] != '/' && !cwd.empty()) img.path = cwd + "/" + img.path;
    img.cache = d.cache;
    img.aio = d.aio;
    img.format = d.format;
    img.direct = d.direct;
    img.read_only = d.read_only;
    img.source = d.option;
    if (img.path.rfind("/dev/fdset/", 0) == 0) {
      img.reason = "passed as a file descriptor (" + img.path.substr(5) + "): see the open files";
    } else {
      FileId id = o.stat(has_root ? dir + "/root" + img.path : img.path);
      if (!id.ok && has_root) id = o.stat(img.path);
      set_identity(img, id);
      if (id.ok && !id.regular) {
        img.on_btrfs = false;
        img.reason = "not a regular file";
      }
    }
    // One entry per file (a -drive and a -blockdev may name the same file).
    if (img.dev || img.ino) {
      if (!seen.insert({img.dev, img.ino}).second) continue;
    }
    p.images.push_back(std::move(img));
  }

  // Open files: mark command-line images as open (O_DIRECT from fdinfo), add
  // the ones the command line does not name (fds passed by libvirt).
  for (uint32_t fd : numeric_entries(dir + "/fd")) {
    const std::string link = fmt::format("{}/fd/{}", dir, fd);
    std::string target = strip_deleted(read_link(link));
    if (skip_fd_path(target)) continue;
    FileId id = o.stat(link);
    if (!id.ok || !id.regular) continue;
    auto flags = fd_flags(fmt::format("{}/fdinfo/{}", dir, fd));
    // Logs (stdout/stderr redirected, -D file) are write-only or append: not images.
    if (flags && ((*flags & O_ACCMODE) == O_WRONLY || (*flags & O_APPEND))) continue;
    std::optional<bool> direct;
    if (flags) direct = (*flags & O_DIRECT) != 0;
    auto it = std::find_if(p.images.begin(), p.images.end(), [&](const Image& i) {
      return (i.dev || i.ino) && i.dev == id.dev && i.ino == id.ino;
    });
    if (it != p.images.end()) {
      it->open = true;
      if (direct) it->direct = direct;
      continue;
    }
    if (!seen.insert({id.dev, id.ino}).second) continue;
    Image img;
    img.path = target;
    img.source = "fd";
    img.open = true;
    img.direct = direct;
    set_identity(img, id);
    p.images.push_back(std::move(img));
  }

  for (uint32_t tid : numeric_entries(dir + "/task"))
    p.threads.push_back({tid, trim_nl(read_file(fmt::format("{}/task/{}/comm", dir, tid)).value_or(""))});
  return p;
}

}  // namespace

bool looks_like_qemu(std::string_view comm, std::string_view exe, std::string_view argv0) {
  auto is = [](std::string_view name) {
    return name.rfind("qemu-system-", 0) == 0 || name == "qemu-kvm";
  };
  // comm is truncated to 15 characters: "qemu-system-x86"
  return is(basename(exe)) || is(basename(argv0)) || is(comm);
}

std::vector<QemuProcess> discover(const DiscoverOptions& opts) {
  std::vector<QemuProcess> out;
  std::vector<uint32_t> pids = opts.only_pids;
  if (pids.empty()) pids = numeric_entries(opts.proc_root);
  else std::sort(pids.begin(), pids.end());
  for (uint32_t pid : pids) {
    if (opts.cancel && opts.cancel->load(std::memory_order_relaxed)) break;
    // cheap test first: comm/exe/argv0 without parsing anything else
    const std::string dir = fmt::format("{}/{}", opts.proc_root, pid);
    auto comm = trim_nl(read_file(dir + "/comm").value_or(""));
    auto exe = strip_deleted(read_link(dir + "/exe"));
    std::string argv0;
    if (auto c = read_file(dir + "/cmdline")) argv0 = c->substr(0, c->find('\0'));
    if (!looks_like_qemu(comm, exe, argv0)) continue;
    if (auto p = read_process(pid, opts, true, nullptr)) out.push_back(std::move(*p));
  }
  return out;
}

QemuProcess inspect(uint32_t pid, const DiscoverOptions& opts) {
  std::string why;
  auto p = read_process(pid, opts, false, &why);
  if (!p) throw InputError(why);
  return std::move(*p);
}

std::string describe(const std::vector<QemuProcess>& vms) {
  std::string out;
  for (const auto& p : vms) {
    out += fmt::format("VM {} (pid {}, {} threads): {} of {} images traced\n", shown(p.vm), p.pid,
                       p.threads.size(), p.traced_images(), p.images.size());
    if (p.nodes_dropped)
      out += fmt::format("  its command line has {} more block nodes than the {} looked at: ignored\n",
                         p.nodes_dropped, kMaxBlockNodes);
    for (const auto& i : p.images) {
      std::string mode;
      if (!i.cache.empty()) mode += " cache=" + i.cache;
      if (!i.aio.empty()) mode += " aio=" + i.aio;
      if (i.direct) mode += *i.direct ? " O_DIRECT" : " buffered";
      out += fmt::format("  {} {}{}{}\n", i.on_btrfs ? "traced    " : "not traced", shown(i.path), shown(mode),
                         shown(i.reason.empty() ? "" : " — " + i.reason));
    }
  }
  return out;
}

std::string describe(const WatchDiff& d) {
  std::string out;
  for (const auto& p : d.removed) out += fmt::format("VM {} (pid {}) exited\n", shown(p.vm), p.pid);
  for (const auto& p : d.added)
    out += fmt::format("VM {} (pid {}) started: {} of {} images traced\n", shown(p.vm), p.pid,
                       p.traced_images(), p.images.size());
  for (const auto& p : d.changed)
    out += fmt::format("VM {} (pid {}) changed: {} of {} images traced\n", shown(p.vm), p.pid,
                       p.traced_images(), p.images.size());
  return out;
}

}  // namespace bdt::qemu
