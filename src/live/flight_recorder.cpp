// The flight recorder's meta record, pinning and reading (flight_recorder.h).
#include "live/flight_recorder.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/core.h>

#include "bdt.skel.h"
#include "bdt/errors.h"
#include "live/session.h"
#include "loader/mounts.h"

namespace bdt::live {

namespace {

// Pin names inside DIR. The link pins are "link-NN".
constexpr const char* kMapPins[] = {"rec_meta", "recorder", "rec_head", "lost", "stacks"};

// A pinned map is used only when it has the shape this build pins
// (pinned_map_shape): bpffs is shared, and a map left under the same name by
// another build (or by anyone who can write there) must not be read into this
// build's structs. Empty when it has; otherwise what it is and what is expected
// (*info: the map's info when it could be read).
const char* map_type_str(uint32_t t) { return libbpf_bpf_map_type_str(static_cast<bpf_map_type>(t)); }
std::string shape_problem(int fd, const char* name, bpf_map_info* info_out = nullptr) {
  // A pinned program or link opens too, and its info is no map info.
  char target[64] = {};
  if (readlink(fmt::format("/proc/self/fd/{}", fd).c_str(), target, sizeof target - 1) > 0 &&
      std::strcmp(target, "anon_inode:bpf-map") != 0)
    return fmt::format("{} is not a BPF map ({}); this btrfs-dio-trace expects the map it pins there", name,
                       target);
  bpf_map_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
    return fmt::format("{}: cannot read its map info: {}", name, std::strerror(errno));
  if (info_out) *info_out = info;
  return map_shape_problem(name, {info.type, info.key_size, info.value_size, info.max_entries, info.map_flags},
                           *pinned_map_shape(name), map_type_str);
}

// The first value of a pinned per-CPU u64 counter, one per possible CPU (the
// size the kernel writes), into *v; empty when it is missing or unreadable.
// Returns the shape problem ("" = none).
std::string read_counter(const std::string& dir, const char* name, std::vector<uint64_t>* v) {
  v->clear();
  const int fd = bpf_obj_get((dir + "/" + name).c_str());
  if (fd < 0) return {};
  std::string problem = shape_problem(fd, name);
  if (problem.empty()) {
    v->assign(static_cast<size_t>(std::max(libbpf_num_possible_cpus(), 1)), 0);
    const uint32_t zero = 0;
    if (bpf_map_lookup_elem(fd, &zero, v->data()) != 0) v->clear();
  }
  close(fd);
  return problem;
}

// The meta of a pinned recorder when rec_meta has this build's shape and
// holds a description (for messages about a directory in use).
std::optional<bdt_rec_meta> peek_meta(const std::string& dir) {
  const int fd = bpf_obj_get((dir + "/rec_meta").c_str());
  if (fd < 0) return std::nullopt;
  bdt_rec_meta m{};
  const uint32_t zero = 0;
  const bool ok = shape_problem(fd, "rec_meta").empty() && bpf_map_lookup_elem(fd, &zero, &m) == 0 &&
                  m.magic == BDT_REC_MAGIC;
  close(fd);
  return ok ? std::optional<bdt_rec_meta>(m) : std::nullopt;
}

uint64_t clock_ns(clockid_t c) {
  timespec ts{};
  clock_gettime(c, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

std::string read_line(const char* path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

std::string cstr(const char* p, size_t n) { return std::string(p, strnlen(p, n)); }

bool on_bpffs(const std::string& path) {
  struct statfs sfs {};
  return statfs(path.c_str(), &sfs) == 0 && static_cast<unsigned long>(sfs.f_type) == BPF_FS_MAGIC;
}

bool exists(const std::string& p) {
  struct stat st {};
  return lstat(p.c_str(), &st) == 0;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (auto* e = readdir(d))
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) out.emplace_back(e->d_name);
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool pid_is_tracer(uint32_t pid) {
  if (!pid) return false;
  const auto comm = read_line(fmt::format("/proc/{}/comm", pid).c_str());
  return comm.rfind("btrfs-dio-trac", 0) == 0;  // comm is 15 characters at most
}

std::string how_to(const std::string& dir) {
  return fmt::format("read it with `btrfs-dio-trace dump --pin-dir {0}`, free it with "
                     "`btrfs-dio-trace dump --pin-dir {0} --release`",
                     dir);
}

}  // namespace

size_t recorder_slot_bytes() { return sizeof(bdt_rec_slot); }

uint64_t new_recorder_instance() {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) r = 0;
  uint64_t h = bdt_rec_mix(r, static_cast<uint64_t>(getpid()));
  h = bdt_rec_mix(h, clock_ns(CLOCK_REALTIME));
  for (char c : read_line("/proc/sys/kernel/random/boot_id")) h = bdt_rec_mix(h, static_cast<unsigned char>(c));
  return h ? h : 1;
}

std::string check_pin_dir(const std::string& dir) {
  if (dir.empty()) throw InputError("--pin-dir: empty path");
  std::string mounted = loader::mount_bpffs_for(dir);
  auto fail = [&](const std::string& why) {
    throw InputError(mounted.empty() || mounted.rfind("mounted", 0) == 0
                         ? why
                         : fmt::format("{} ({})", why, mounted));
  };
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw InputError(fmt::format("--pin-dir {}: not a directory", dir));
    if (!on_bpffs(dir))
      fail(fmt::format("--pin-dir {}: not on a BPF filesystem (bpffs); use a directory "
                       "under /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)",
                       dir));
    if (exists(dir + "/rec_meta") || exists(dir + "/recorder")) {
      std::string who;
      if (const auto m = peek_meta(dir))
        who = fmt::format(" (tracer pid {}{})", m->tracer_pid,
                          pid_is_tracer(m->tracer_pid) ? ", still running" : ", gone");
      throw InputError(fmt::format("--pin-dir {}: already holds a flight recorder{}; {}", dir, who,
                                   how_to(dir)));
    }
    return mounted;
  }
  if (errno != ENOENT) throw InputError(fmt::format("--pin-dir {}: {}", dir, std::strerror(errno)));
  auto slash = dir.find_last_of('/');
  const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : dir.substr(0, slash);
  if (!on_bpffs(parent))
    fail(fmt::format("--pin-dir {}: not on a BPF filesystem (bpffs); use a directory "
                     "under /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)",
                     dir));
  return mounted;
}

void setup_recorder(Session& s, const std::string& pin_dir) {
  if (!s.skel_->rodata->rec_slots) return;
  bdt_rec_meta m{};
  m.magic = BDT_REC_MAGIC;
  m.meta_version = BDT_REC_META_VERSION;
  m.raw_abi = BDT_RAW_ABI;
  m.slot_size = sizeof(bdt_rec_slot);
  m.slots_per_cpu = s.skel_->rodata->rec_slots;
  m.ncpus = static_cast<uint32_t>(libbpf_num_possible_cpus());
  m.tracer_pid = static_cast<uint32_t>(getpid());
  m.instance = s.skel_->rodata->rec_instance;
  // The offset from the closest pair of readings (the smallest gap of three).
  int64_t best_gap = INT64_MAX;
  for (int i = 0; i < 3; ++i) {
    const uint64_t a = clock_ns(CLOCK_MONOTONIC), rt = clock_ns(CLOCK_REALTIME), b = clock_ns(CLOCK_MONOTONIC);
    if (static_cast<int64_t>(b - a) < best_gap) {
      best_gap = static_cast<int64_t>(b - a);
      m.start_mono_ns = a + (b - a) / 2;
      m.start_realtime_ns = rt;
    }
  }
  m.mono_to_realtime_ns = static_cast<int64_t>(m.start_realtime_ns - m.start_mono_ns);
  const auto boot = read_line("/proc/sys/kernel/random/boot_id");
  std::snprintf(m.boot_id, sizeof m.boot_id, "%s", boot.c_str());
  struct utsname u {};
  uname(&u);
  std::snprintf(m.release, sizeof m.release, "%s", u.release);
  std::string hooks;
  for (const auto& h : s.hooks_) {
    auto line = fmt::format("{}\t{}\t{}\n", h.name(), to_string(h.mechanism), h.attached ? 1 : 0);
    if (hooks.size() + line.size() >= sizeof m.hooks) break;
    hooks += line;
  }
  std::memcpy(m.hooks, hooks.data(), hooks.size());
  m.check = meta_check(m);
  const uint32_t zero = 0;
  if (bpf_map__update_elem(s.skel_->maps.rec_meta, &zero, sizeof zero, &m, sizeof m, BPF_ANY) != 0)
    throw KernelError(fmt::format("cannot write the flight recorder's meta map: {}", std::strerror(errno)));
  if (pin_dir.empty()) return;

  if (mkdir(pin_dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw KernelError(fmt::format("--pin-dir {}: cannot create: {}", pin_dir, std::strerror(errno)));
  s.pin_dir_ = pin_dir;
  auto pin_map = [&](struct bpf_map* map, const char* name) {
    const auto p = pin_dir + "/" + name;
    if (bpf_map__pin(map, p.c_str()) != 0)
      throw KernelError(fmt::format("--pin-dir: cannot pin {}: {}", p, std::strerror(errno)));
    s.pins_.push_back(p);
  };
  // rec_meta first: its presence is what marks DIR as holding a recorder.
  pin_map(s.skel_->maps.rec_meta, "rec_meta");
  pin_map(s.skel_->maps.recorder, "recorder");
  pin_map(s.skel_->maps.rec_head, "rec_head");
  pin_map(s.skel_->maps.lost, "lost");
  pin_map(s.skel_->maps.stacks, "stacks");
  for (size_t i = 0; i < s.links_.size(); ++i) {
    const auto p = fmt::format("{}/link-{:02}", pin_dir, i);
    if (bpf_link__pin(s.links_[i], p.c_str()) != 0) {
      s.warnings_.push_back(fmt::format("--pin-dir: cannot pin link {} ({}): that hook stops when the "
                                       "tracer exits",
                                       i, std::strerror(errno)));
      continue;
    }
    s.link_pins_.push_back(p);
  }
}

PinnedDump read_pinned(const std::string& dir) {
  PinnedDump d;
  if (!exists(dir))
    throw InputError(fmt::format("--pin-dir {}: no flight recorder pinned here (no such directory)", dir));
  if (!on_bpffs(dir))
    throw InputError(fmt::format("--pin-dir {}: not on a BPF filesystem (bpffs): nothing pinned there", dir));
  const auto meta_path = dir + "/rec_meta", rec_path = dir + "/recorder";
  if (!exists(meta_path) || !exists(rec_path))
    throw InputError(fmt::format("--pin-dir {}: no flight recorder pinned here (start one with "
                                 "`btrfs-dio-trace trace --pin-dir {}`)",
                                 dir, dir));
  struct Fd {
    int fd = -1;
    ~Fd() {
      if (fd >= 0) close(fd);
    }
  } meta_fd, rec_fd;
  meta_fd.fd = bpf_obj_get(meta_path.c_str());
  if (meta_fd.fd < 0) {
    if (errno == EPERM || errno == EACCES)
      throw KernelError(fmt::format("--pin-dir {}: {}: run it as root", dir, std::strerror(errno)));
    throw InputError(fmt::format("--pin-dir {}: cannot open rec_meta: {}", dir, std::strerror(errno)));
  }
  if (const auto problem = shape_problem(meta_fd.fd, "rec_meta"); !problem.empty())
    throw InputError(fmt::format("--pin-dir {}: {}", dir, problem));
  const uint32_t zero = 0;
  if (bpf_map_lookup_elem(meta_fd.fd, &zero, &d.meta) != 0)
    throw InputError(fmt::format("--pin-dir {}: cannot read rec_meta: {}", dir, std::strerror(errno)));
  const auto& m = d.meta;
  if (m.magic != BDT_REC_MAGIC)
    throw InputError(fmt::format("--pin-dir {}: rec_meta holds no recorder description (magic {:#x}); "
                                 "the tracer that pinned it died before writing it?",
                                 dir, m.magic));
  if (m.meta_version != BDT_REC_META_VERSION || m.raw_abi != BDT_RAW_ABI || m.slot_size != sizeof(bdt_rec_slot))
    throw InputError(fmt::format("--pin-dir {}: recorder written with meta version {}, raw ABI {}, {}-byte "
                                 "slots; this btrfs-dio-trace reads meta version {}, raw ABI {}, {}-byte "
                                 "slots: dump it with the btrfs-dio-trace build that pinned it",
                                 dir, m.meta_version, m.raw_abi, m.slot_size, BDT_REC_META_VERSION,
                                 BDT_RAW_ABI, sizeof(bdt_rec_slot)));
  if (m.check != meta_check(m))
    throw InputError(fmt::format("--pin-dir {}: rec_meta fails its check (damaged)", dir));
  const auto boot = read_line("/proc/sys/kernel/random/boot_id");
  if (cstr(m.boot_id, sizeof m.boot_id) != boot)
    throw InputError(fmt::format("--pin-dir {}: recorded during boot {}, this is boot {}: its times "
                                 "cannot be converted",
                                 dir, cstr(m.boot_id, sizeof m.boot_id), boot));

  rec_fd.fd = bpf_obj_get(rec_path.c_str());
  if (rec_fd.fd < 0)
    throw InputError(fmt::format("--pin-dir {}: cannot open recorder: {}", dir, std::strerror(errno)));
  bpf_map_info info{};
  if (const auto problem = shape_problem(rec_fd.fd, "recorder", &info); !problem.empty())
    throw InputError(fmt::format("--pin-dir {}: {}", dir, problem));
  if (!m.slots_per_cpu ||
      static_cast<uint64_t>(info.max_entries) != static_cast<uint64_t>(m.ncpus) * m.slots_per_cpu)
    throw InputError(fmt::format("--pin-dir {}: recorder map ({} entries of {} bytes) does not match its "
                                 "meta ({} CPUs x {} slots of {} bytes)",
                                 dir, info.max_entries, info.value_size, m.ncpus, m.slots_per_cpu,
                                 sizeof(bdt_rec_slot)));
  const size_t stride = (sizeof(bdt_rec_slot) + 7) & ~size_t{7};
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t bytes = (static_cast<size_t>(info.max_entries) * stride + page - 1) / page * page;
  void* base = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, rec_fd.fd, 0);
  if (base == MAP_FAILED)
    throw KernelError(fmt::format("--pin-dir {}: cannot map the recorder ({} MiB): {}", dir, bytes >> 20,
                                  std::strerror(errno)));
  d.scan = scan_slots(static_cast<const uint8_t*>(base), stride, m.ncpus, m.slots_per_cpu, m.instance);
  munmap(base, bytes);

  auto percpu = [&](const char* name) {
    std::vector<uint64_t> v;
    if (auto problem = read_counter(dir, name, &v); !problem.empty())
      throw InputError(fmt::format("--pin-dir {}: {}", dir, problem));
    v.resize(m.ncpus, 0);
    return v;
  };
  d.recorded_per_cpu = percpu("rec_head");
  d.lost_per_cpu = percpu("lost");
  for (const auto& n : list_dir(dir))
    if (n.rfind("link-", 0) == 0) d.link_pins.push_back(dir + "/" + n);
  d.tracer_alive = pid_is_tracer(m.tracer_pid);

  d.header = header_from_meta(m);
  d.header.hostname = this_hostname();  // a pinned recorder is of this host (bpffs does not outlive a boot)
  return d;
}

std::vector<std::string> release_pinned(const std::string& dir) {
  if (!exists(dir) || !on_bpffs(dir) || !exists(dir + "/rec_meta"))
    throw InputError(fmt::format("--pin-dir {}: no flight recorder pinned here, nothing to release", dir));
  std::vector<std::string> said;
  uint32_t tracer = 0;
  if (const auto m = peek_meta(dir)) tracer = m->tracer_pid;
  size_t links = 0;
  for (const auto& n : list_dir(dir))
    if (n.rfind("link-", 0) == 0) {
      const auto p = dir + "/" + n;
      if (unlink(p.c_str()) != 0)
        throw KernelError(fmt::format("--release: cannot remove {}: {}", p, std::strerror(errno)));
      ++links;
    }
  if (links) said.push_back(fmt::format("removed {} link pins (their programs are detached)", links));
  for (const char* n : kMapPins) {
    const auto p = dir + "/" + n;
    if (!exists(p)) continue;
    if (unlink(p.c_str()) != 0)
      throw KernelError(fmt::format("--release: cannot remove {}: {}", p, std::strerror(errno)));
    said.push_back(fmt::format("removed map pin {}", p));
  }
  if (list_dir(dir).empty() && rmdir(dir.c_str()) == 0)
    said.push_back(fmt::format("removed directory {}", dir));
  else
    said.push_back(fmt::format("left {} in place (it holds other files)", dir));
  if (pid_is_tracer(tracer))
    said.push_back(fmt::format("the tracer (pid {}) is still running: its programs stay attached until "
                               "it exits",
                               tracer));
  return said;
}

std::optional<PinnedSummary> summarize_pinned(const std::string& dir) {
  if (!exists(dir + "/rec_meta") || !on_bpffs(dir)) return std::nullopt;
  PinnedSummary ps;
  ps.dir = dir;
  for (const auto& n : list_dir(dir)) ps.link_pins += n.rfind("link-", 0) == 0;
  const int fd = bpf_obj_get((dir + "/rec_meta").c_str());
  if (fd < 0) {
    if (errno == EPERM || errno == EACCES)
      throw KernelError(fmt::format("{}: {}: run it as root", dir, std::strerror(errno)));
    ps.problem = fmt::format("cannot open rec_meta: {}", std::strerror(errno));
    return ps;
  }
  const uint32_t zero = 0;
  if (auto problem = shape_problem(fd, "rec_meta"); !problem.empty())
    ps.problem = std::move(problem);
  else if (bpf_map_lookup_elem(fd, &zero, &ps.meta) != 0)
    ps.problem = fmt::format("cannot read rec_meta: {}", std::strerror(errno));
  else if (ps.meta.magic != BDT_REC_MAGIC)
    ps.problem = "rec_meta holds no recorder description (its tracer died while starting?)";
  else if (ps.meta.meta_version != BDT_REC_META_VERSION || ps.meta.raw_abi != BDT_RAW_ABI)
    ps.problem = fmt::format("written by another build (meta version {}, raw ABI {}; this build {}, {}): "
                             "release it, the build that pinned it can dump it",
                             ps.meta.meta_version, ps.meta.raw_abi, BDT_REC_META_VERSION, BDT_RAW_ABI);
  close(fd);
  ps.meta_ok = ps.problem.empty();
  if (!ps.meta_ok) return ps;
  ps.tracer_alive = pid_is_tracer(ps.meta.tracer_pid);
  const int rfd = bpf_obj_get((dir + "/recorder").c_str());
  if (rfd >= 0) {
    bpf_map_info info{};
    auto problem = shape_problem(rfd, "recorder", &info);
    close(rfd);
    if (!problem.empty()) {
      ps.problem = std::move(problem);
      ps.meta_ok = false;
      return ps;
    }
    ps.kernel_bytes = static_cast<uint64_t>(info.max_entries) * ((info.value_size + 7) & ~7u);
  }
  std::vector<uint64_t> v;
  for (auto [name, sum] : {std::pair{"rec_head", &ps.recorded}, std::pair{"lost", &ps.lost}}) {
    if (auto problem = read_counter(dir, name, &v); !problem.empty()) {
      ps.problem = std::move(problem);
      ps.meta_ok = false;
      return ps;
    }
    for (uint64_t x : v) *sum += x;
  }
  return ps;
}

std::vector<PinnedSummary> list_pinned(const std::string& root) {
  std::vector<PinnedSummary> out;
  std::vector<std::pair<std::string, int>> todo{{root, 0}};
  while (!todo.empty()) {
    auto [dir, depth] = todo.back();
    todo.pop_back();
    if (auto ps = summarize_pinned(dir)) out.push_back(std::move(*ps));
    if (depth >= 4) continue;
    for (const auto& n : list_dir(dir)) {
      const auto p = dir + "/" + n;
      struct stat st {};
      if (lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) todo.emplace_back(p, depth + 1);
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.dir < b.dir; });
  return out;
}

}  // namespace bdt::live
