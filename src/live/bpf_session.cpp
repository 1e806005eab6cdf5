#include "live/bpf_session.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include "bdt.skel.h"
#include "bdt/trace_reader.h"
#include "live/flight_recorder.h"
#include "loader/hooks.h"

static_assert(bdt::kLatencyBuckets == BDT_LAT_BUCKETS, "live.h and bpf/events.h disagree");

namespace bdt::live {

namespace {

// libbpf's messages: kept (last few KiB) to explain a load failure, never printed
// unless BDT_LIBBPF_DEBUG is set.
std::string g_libbpf_log;

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list ap) {
  char buf[1024];
  va_list copy;
  va_copy(copy, ap);
  vsnprintf(buf, sizeof buf, fmt, copy);
  va_end(copy);
  if (std::getenv("BDT_LIBBPF_DEBUG")) fputs(buf, stderr);
  if (level == LIBBPF_DEBUG) return 0;
  g_libbpf_log += buf;
  if (g_libbpf_log.size() > 4096) g_libbpf_log.erase(0, g_libbpf_log.size() - 4096);
  return 0;
}

std::string libbpf_tail() {
  std::string s = g_libbpf_log;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  auto nl = s.rfind('\n', s.size() > 600 ? s.size() - 600 : 0);
  if (s.size() > 600 && nl != std::string::npos) s = s.substr(nl + 1);
  for (auto& c : s)
    if (c == '\n') c = ';';
  return s;
}

uint32_t ring_size(uint32_t want) {
  uint32_t page = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  uint32_t n = page;
  while (n < want && n < (1u << 30)) n <<= 1;
  return n;
}

}  // namespace

bool have_privileges() {
  if (geteuid() == 0) return true;
  std::ifstream st("/proc/self/status");
  std::string line;
  while (std::getline(st, line)) {
    if (line.rfind("CapEff:", 0) == 0) {
      uint64_t caps = std::strtoull(line.c_str() + 7, nullptr, 16);
      const bool sys_admin = caps & (1ull << 21);
      const bool perfmon = caps & (1ull << 38), bpf = caps & (1ull << 39);
      return sys_admin || (perfmon && bpf);
    }
  }
  return false;
}

void check_privileges() {
  if (!have_privileges())
    throw KernelError(
        "needs root (or CAP_BPF and CAP_PERFMON) to load its BPF programs: run it with sudo");
}

uint64_t mount_superblock_dev(const std::string& path) {
  char real[PATH_MAX];
  if (!realpath(path.c_str(), real))
    throw InputError(fmt::format("--mount {}: {}", path, std::strerror(errno)));
  struct statfs sfs {};
  if (statfs(real, &sfs) != 0)
    throw InputError(fmt::format("--mount {}: statfs: {}", path, std::strerror(errno)));
  std::optional<uint64_t> mnt_id;
#ifdef STATX_MNT_ID
  struct statx stx {};
  if (statx(AT_FDCWD, real, 0, STATX_MNT_ID, &stx) == 0 && (stx.stx_mask & STATX_MNT_ID))
    mnt_id = stx.stx_mnt_id;
#endif
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream ss;
  ss << in.rdbuf();
  const auto mounts = parse_mountinfo(ss.str());
  const auto m = find_mount(mounts, real, mnt_id);
  if (static_cast<unsigned long>(sfs.f_type) != BTRFS_SUPER_MAGIC)
    throw InputError(fmt::format("--mount {}: not on a btrfs filesystem (it is on {})", path,
                                 m ? m->fstype : fmt::format("f_type {:#x}",
                                                             static_cast<unsigned long>(sfs.f_type))));
  if (!m || m->fstype != "btrfs")
    throw InputError(fmt::format("--mount {}: cannot find its btrfs mount in /proc/self/mountinfo",
                                 path));
  return kdev_make(m->major, m->minor);
}

FlagMaps flag_maps_from_btf(const loader::KernelBtf& btf, uint32_t* em_compress_mask) {
  FlagMaps fm;
  uint32_t mask = 0;
  btf.for_each_enumerator([&](std::string_view name, int64_t value) {
    fm.offer(name, value);
    if (name == "EXTENT_FLAG_COMPRESS_ZLIB" || name == "EXTENT_FLAG_COMPRESS_LZO" ||
        name == "EXTENT_FLAG_COMPRESS_ZSTD")
      mask |= static_cast<uint32_t>(value);
  });
  if (em_compress_mask) *em_compress_mask = mask;
  return fm;
}

BpfSession::~BpfSession() {
  // A clean end detaches the programs (a kill -9 never gets here: the pinned
  // links keep them attached and recording).
  for (const auto& p : link_pins) unlink(p.c_str());
  if (!keep_pins) {
    for (const auto& p : pins) unlink(p.c_str());
    if (!pin_dir.empty()) rmdir(pin_dir.c_str());
  }
  if (rb) ring_buffer__free(rb);
  for (auto* l : links) bpf_link__destroy(l);
  if (skel) bdt_bpf__destroy(skel);
}

size_t BpfSession::attached() const {
  size_t n = 0;
  for (const auto& h : hooks) n += h.attached;
  return n;
}

std::vector<uint64_t> BpfSession::lost_per_cpu() const {
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> v(ncpu > 0 ? ncpu : 0);
  uint32_t zero = 0;
  if (lost_fd >= 0 && !v.empty() && bpf_map_lookup_elem(lost_fd, &zero, v.data()) != 0)
    v.assign(v.size(), 0);
  return v;
}

void BpfSession::add_pid(uint32_t tgid) {
  if (!pid_filter_on) throw InputError("this session has no pid filter");
  const uint8_t one = 1;
  if (bpf_map__update_elem(skel->maps.pid_filter, &tgid, sizeof tgid, &one, sizeof one, BPF_ANY) != 0)
    throw KernelError(fmt::format("cannot add pid {} to the in-kernel pid filter: {}{}", tgid,
                                  std::strerror(errno),
                                  errno == E2BIG ? " (at most 1024 processes)" : ""));
}

void BpfSession::remove_pid(uint32_t tgid) {
  if (!pid_filter_on) throw InputError("this session has no pid filter");
  bpf_map__delete_elem(skel->maps.pid_filter, &tgid, sizeof tgid, 0);
  // Its latency histograms: collect the keys first (deleting while iterating
  // restarts the walk).
  std::vector<bdt_lat_key> gone;
  bdt_lat_key k{}, next{};
  const bdt_lat_key* prev = nullptr;
  while (bpf_map__get_next_key(skel->maps.lat_hist, prev, &next, sizeof next) == 0) {
    if (next.pid == tgid) gone.push_back(next);
    k = next;
    prev = &k;
  }
  for (const auto& g : gone) bpf_map__delete_elem(skel->maps.lat_hist, &g, sizeof g, 0);
}

LatencyHists BpfSession::latency() const {
  LatencyHists out;
  out.capacity = bpf_map__max_entries(skel->maps.lat_hist);
  const uint32_t zero = 0;
  uint64_t n = 0;
  if (bpf_map__lookup_elem(skel->maps.lat_overflow, &zero, sizeof zero, &n, sizeof n, 0) == 0)
    out.overflow = n;
  bdt_lat_key k{}, next{};
  const bdt_lat_key* prev = nullptr;
  bdt_lat_val v{};
  while (bpf_map__get_next_key(skel->maps.lat_hist, prev, &next, sizeof next) == 0) {
    k = next;
    prev = &k;
    if (bpf_map__lookup_elem(skel->maps.lat_hist, &k, sizeof k, &v, sizeof v, 0) != 0) continue;
    LatencyHist h;
    h.pid = k.pid;
    h.write = k.write != 0;
    h.dev = kernel_dev_to_user(k.dev);
    h.ino = k.ino;
    h.buckets.assign(std::begin(v.slots), std::end(v.slots));
    h.max_ns = v.max_ns;
    h.sum_ns = v.sum_ns;
    out.hists.push_back(std::move(h));
  }
  return out;
}

std::unique_ptr<BpfSession> open_bpf(const LiveOptions& opts, const loader::KernelBtf& btf,
                                     SampleFn sample, void* ctx) {
  if (!btf.vmlinux())
    throw KernelError(fmt::format(
        "this kernel exposes no BTF (/sys/kernel/btf/vmlinux: {}); btrfs-dio-trace needs a kernel "
        "built with CONFIG_DEBUG_INFO_BTF=y",
        btf.error()));
  if (opts.latency_hist && (opts.latency_entries == 0 || opts.latency_entries > (1u << 20)))
    throw InputError("latency histogram entries: 1 to 1048576");
  if (opts.comms.size() > 64) throw InputError("--comm: at most 64 names");
  if (opts.pids.size() > 1024) throw InputError("--pid: at most 1024 processes");
  for (const auto& c : opts.comms)
    if (c.empty() || c.size() > 15)
      throw InputError(fmt::format("--comm \"{}\": a task name has 1 to 15 characters", c));
  const uint64_t sb = opts.mount.empty() ? 0 : mount_superblock_dev(opts.mount);
  if (opts.recorder_events > kMaxRecorderEvents)
    throw InputError(fmt::format("--recorder-events {}: at most {} per CPU", opts.recorder_events,
                                 kMaxRecorderEvents));
  if (!opts.pin_dir.empty()) {
    if (!opts.recorder_events)
      throw InputError("--pin-dir needs the flight recorder (--recorder-events 0 turns it off)");
    check_pin_dir(opts.pin_dir);
  }
  const uint32_t ncpus = static_cast<uint32_t>(std::max(1, libbpf_num_possible_cpus()));
  if (static_cast<uint64_t>(ncpus) * opts.recorder_events > UINT32_MAX)
    throw InputError(fmt::format("--recorder-events {}: too many for {} CPUs", opts.recorder_events, ncpus));
  int cgroup_fd = -1;
  if (!opts.cgroup.empty()) {
    struct statfs cfs {};
    cgroup_fd = open(opts.cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgroup_fd < 0)
      throw InputError(fmt::format("--cgroup {}: {}", opts.cgroup, std::strerror(errno)));
    if (fstatfs(cgroup_fd, &cfs) != 0 || static_cast<unsigned long>(cfs.f_type) != CGROUP2_SUPER_MAGIC) {
      close(cgroup_fd);
      throw InputError(fmt::format("--cgroup {}: not a cgroup v2 directory (e.g. "
                                   "/sys/fs/cgroup/machine.slice)",
                                   opts.cgroup));
    }
  }
  struct FdCloser {
    int fd;
    ~FdCloser() {
      if (fd >= 0) close(fd);
    }
  } cgroup_guard{cgroup_fd};

  libbpf_set_print(libbpf_print);
  struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
  setrlimit(RLIMIT_MEMLOCK, &rl);  // kernels < 5.11 charge BPF memory to memlock

  // Function hooks: what the kernel allows (fentry probe, kprobe PMU, kallsyms).
  const auto env = loader::probe_env(btf, opts.backend);
  if (opts.backend == Backend::Fentry && !env.fentry_ok)
    throw KernelError(fmt::format("--backend fentry: {}; use --backend auto (falls back to "
                                  "kprobes or tracepoints) or see `btrfs-dio-trace doctor`",
                                  env.fentry_why));
  if (opts.backend == Backend::Kprobe && !env.kprobe_ok)
    throw KernelError(fmt::format("--backend kprobe: {}; use --backend auto or see "
                                  "`btrfs-dio-trace doctor`",
                                  env.kprobe_why));
  const auto tp_base = loader::plan_tracepoints(btf);
  std::vector<loader::FnPlan> fplan;
  {
    auto tp = tp_base;
    fplan = loader::plan_functions(btf, env, opts.backend, tp);
  }

  auto s = std::make_unique<BpfSession>();
  uint32_t mask = 0;
  s->flags = flag_maps_from_btf(btf, &mask);
  if (!s->flags.ordered.loaded)
    s->warnings.push_back("no BTRFS_ORDERED_* enumerators in kernel BTF: ordered-extent flags "
                          "will be reported empty");
  uint32_t ioerr_bit = 64, stale_bit = 64;
  btf.for_each_enumerator([&](std::string_view name, int64_t value) {
    if (name == "BTRFS_ORDERED_IOERR" && value >= 0 && value < 64) ioerr_bit = static_cast<uint32_t>(value);
    if (name == "EXTENT_BUFFER_STALE" && value >= 0 && value < 64) stale_bit = static_cast<uint32_t>(value);
  });
  const char* eb_all_env = std::getenv("BDT_EB_ALL");
  const bool eb_all = eb_all_env && *eb_all_env && std::string_view(eb_all_env) != "0";

  std::vector<loader::HookPlan> plan;
  for (int attempt = 0;; ++attempt) {
    plan = tp_base;
    loader::drop_replaced_tracepoints(fplan, plan);
    if (s->skel) {
      bdt_bpf__destroy(s->skel);
      s->skel = nullptr;
    }
    s->skel = bdt_bpf__open();
    if (!s->skel)
      throw KernelError(fmt::format("cannot open the BPF object: {}", std::strerror(errno)));
    auto* ro = s->skel->rodata;
    ro->filter_pid = !opts.pids.empty() || opts.pid_filter;
    ro->lat_hist_on = opts.latency_hist;
    ro->filter_comm = !opts.comms.empty();
    ro->filter_cgroup = cgroup_fd >= 0;
    ro->filter_sb = static_cast<uint32_t>(sb);
    ro->em_compress_mask = mask;
    ro->ge_folio_args = btf.func_nargs("btrfs_get_extent") == 4;
    ro->oe_inode_is_btrfs = btf.member_struct("btrfs_ordered_extent", "inode") == "btrfs_inode";
    ro->oe_ioerr_bit = ioerr_bit;
    ro->eb_stale_bit = stale_bit;
    ro->eb_all = eb_all;
    ro->all_events = opts.all_events;
    ro->bench_floor = opts.bench_floor;
    for (const auto& fp : fplan) {
      const std::string_view c = fp.candidate;
      if (c == "add_extent_mapping")
        ro->em_add_layout = btf.func_param_struct("add_extent_mapping", 0) == "btrfs_inode" ? 1 : 0;
      else if (c == "btrfs_add_extent_mapping")
        ro->em_add_layout =
            btf.func_param_struct("btrfs_add_extent_mapping", 0) == "btrfs_inode" ? 3 : 2;
      else if (c == "btrfs_data_csum_ok")
        ro->csum_layout = 1;
      else if (c == "btrfs_ioctl_send") {
        const auto first = btf.func_param_struct("btrfs_ioctl_send", 0);
        ro->send_layout = first == "btrfs_inode" ? 1 : first == "btrfs_root" ? 2 : 0;
      }
    }
    bpf_map__set_max_entries(s->skel->maps.events, ring_size(opts.ringbuf_bytes));
    ro->rec_slots = opts.recorder_events;
    bpf_map__set_max_entries(s->skel->maps.recorder,
                             opts.recorder_events ? ncpus * opts.recorder_events : 1);
    // Without --qemu nothing reads the histograms: keep the map tiny.
    bpf_map__set_max_entries(s->skel->maps.lat_hist,
                             opts.latency_hist ? std::max<uint32_t>(1, opts.latency_entries) : 1);
    loader::apply_plan(s->skel->obj, plan);
    loader::apply_fn_plan(s->skel->obj, fplan);
    g_libbpf_log.clear();
    const int err = bdt_bpf__load(s->skel);
    if (!err) break;
    // A function program the kernel refused (missing function, too many
    // arguments for a trampoline, ...): downgrade that hook and load again.
    std::string failed;
    for (size_t pos = 0; (pos = g_libbpf_log.find("prog '", pos)) != std::string::npos;) {
      pos += 6;
      auto q = g_libbpf_log.find('\'', pos);
      if (q == std::string::npos) break;
      failed = g_libbpf_log.substr(pos, q - pos);
    }
    const std::string why = -err == 524 ? std::string("ENOTSUPP (e.g. too many arguments for a trampoline)")
                                        : std::string(std::strerror(-err));
    if (attempt < 24 && !failed.empty() && loader::downgrade(fplan, env, opts.backend, failed, why)) {
      s->warnings.push_back(fmt::format("program {} refused at load ({}); hook downgraded", failed, why));
      continue;
    }
    throw KernelError(fmt::format("the kernel refused the BPF programs ({}): {}",
                                  std::strerror(-err), libbpf_tail()));
  }

  const uint8_t one = 1;
  for (uint32_t pid : opts.pids)
    bpf_map__update_elem(s->skel->maps.pid_filter, &pid, sizeof pid, &one, sizeof one, BPF_ANY);
  for (const auto& c : opts.comms) {
    char key[BDT_COMM_LEN] = {};
    std::memcpy(key, c.data(), c.size());
    bpf_map__update_elem(s->skel->maps.comm_filter, key, sizeof key, &one, sizeof one, BPF_ANY);
  }
  if (cgroup_fd >= 0) {
    const uint32_t zero = 0;
    if (bpf_map__update_elem(s->skel->maps.cgroup_filter, &zero, sizeof zero, &cgroup_fd,
                             sizeof cgroup_fd, BPF_ANY) != 0)
      throw KernelError(fmt::format("--cgroup {}: cannot set up the cgroup filter: {}",
                                    opts.cgroup, std::strerror(errno)));
  }
  s->lost_fd = bpf_map__fd(s->skel->maps.lost);
  s->pid_filter_on = !opts.pids.empty() || opts.pid_filter;

  s->stacks_fd = bpf_map__fd(s->skel->maps.stacks);
  s->hooks = loader::attach_plan(s->skel->obj, plan, s->links);
  loader::attach_fn_plan(s->skel->obj, fplan, s->links, s->hooks);
  // send/balance: once their function hooks are attached they report those calls
  // and the syscall hooks only keep fd and cmd for them (no second ioctl_begin).
  uint32_t ioc_mask = 0;
  for (const auto& h : s->hooks) {
    if (!h.attached) continue;
    if (h.name == "btrfs_ioctl_send()") ioc_mask |= 1u << BDT_IOC_SEND;
    if (h.name == "btrfs_balance()") ioc_mask |= (1u << BDT_IOC_BALANCE) | (1u << BDT_IOC_BALANCE_V2);
  }
  s->skel->bss->ioc_fn_mask = ioc_mask;
  if (s->attached() == 0)
    throw KernelError("no hook could be attached on this kernel; run `btrfs-dio-trace "
                      "doctor` for the reasons");
  setup_recorder(*s, opts.pin_dir);
  if (sample) {
    s->rb = ring_buffer__new(bpf_map__fd(s->skel->maps.events), sample, ctx, nullptr);
    if (!s->rb)
      throw KernelError(fmt::format("cannot open the BPF ring buffer: {}", std::strerror(errno)));
  }
  return s;
}

}  // namespace bdt::live
