// The live session (session.h): validate the options, gather the kernel's
// facts, plan, then load and attach until every planned program is accepted
// (each refusal re-plans its hook without that mechanism), and stream
// ring-buffer records through the decoder and the reorder window.
#include "live/session.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

#include <fmt/core.h>

#include "bdt.skel.h"
#include "bdt/detector.h"
#include "live/flight_recorder.h"
#include "live/ring.h"
#include "loader/gather.h"
#include "loader/hook_table.h"
#include "loader/verifier_log.h"

static_assert(bdt::kLatencyBuckets == BDT_LAT_BUCKETS, "live_stats.h and bpf/events.h disagree");
static_assert(bdt::kTriggerCount == BDT_TRIG_COUNT, "detector.h and bpf/events.h disagree");
static_assert(static_cast<int>(bdt::Trigger::OeIoerr) == BDT_TRIG_OE_IOERR &&
                  static_cast<int>(bdt::Trigger::Stall) == BDT_TRIG_STALL &&
                  static_cast<int>(bdt::Trigger::CsumDirect) == BDT_TRIG_CSUM_DIRECT &&
                  static_cast<int>(bdt::Trigger::OeStall) == BDT_TRIG_OE_STALL &&
                  static_cast<int>(bdt::Trigger::AckedIoerr) == BDT_TRIG_ACKED_IOERR,
              "detector.h and bpf/events.h disagree");

namespace bdt::live {

namespace {

// libbpf's messages: kept (last few KiB) to explain a load failure no single
// program can be blamed for, never printed unless BDT_LIBBPF_DEBUG is set.
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

uint64_t clock_ns(clockid_t c) {
  timespec ts{};
  clock_gettime(c, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::string_view(v) != "0";
}

// Benchmark aid (scripts/bench/overhead.sh -i): BDT_TRIGGERS_OFF=NAME,... (the
// names of to_string(Trigger)) leaves these triggers out of the programs'
// trigger_mask, to measure what evaluating them costs.
uint32_t triggers_off() {
  const char* v = std::getenv("BDT_TRIGGERS_OFF");
  if (!v) return 0;
  uint32_t off = 0;
  std::string_view rest(v);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const auto name = rest.substr(0, comma);
    for (int t = 0; t < bdt::kTriggerCount; ++t)
      if (bdt::to_string(static_cast<bdt::Trigger>(t)) == name) off |= 1u << t;
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  }
  return off;
}

// Resolves --mount PATH to the superblock dev_t (kernel encoding) of the btrfs
// filesystem it is on. Throws InputError when the path is not on btrfs.
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

// BDT_TEST_REFUSE=HOOK[:MECH[,MECH...]] (testing aid): the programs of hook
// HOOK (its bpf/hooks.def id, e.g. em_exist; "all": every hook) on those
// mechanisms (default: all) are made invalid, so the verifier refuses them.
struct TestRefuse {
  uint32_t hook = 0;
  uint32_t mechs = 0;
};
TestRefuse test_refuse() {
  TestRefuse t;
  const char* v = std::getenv("BDT_TEST_REFUSE");
  if (!v || !*v) return t;
  std::string_view s(v);
  const auto colon = s.find(':');
  if (s.substr(0, colon) == "all") {
    t.hook = BDT_HOOK_END;
  } else {
    const auto id = hook_from_token(s.substr(0, colon));
    if (!id) throw InputError(fmt::format("BDT_TEST_REFUSE={}: no hook {}", v, s.substr(0, colon)));
    t.hook = static_cast<uint32_t>(*id);
  }
  if (colon == std::string_view::npos) {
    t.mechs = ~0u;
    return t;
  }
  for (s.remove_prefix(colon + 1); !s.empty();) {
    const auto comma = s.find(',');
    const auto m = mechanism_from_string(s.substr(0, comma));
    if (!m) throw InputError(fmt::format("BDT_TEST_REFUSE={}: no mechanism {}", v, s.substr(0, comma)));
    t.mechs |= 1u << static_cast<uint32_t>(*m);
    s.remove_prefix(comma == std::string_view::npos ? s.size() : comma + 1);
  }
  return t;
}

struct Filters {
  uint64_t sb = 0;
  int cgroup_fd = -1;
  uint32_t ncpus = 1;
  ~Filters() {
    if (cgroup_fd >= 0) close(cgroup_fd);
  }
};

// Option checks before anything is loaded (InputError: exit 1).
void validate(const LiveOptions& opts, Filters& f, std::vector<std::string>& notes) {
  if (opts.latency_hist && (opts.latency_entries == 0 || opts.latency_entries > (1u << 20)))
    throw InputError("latency histogram entries: 1 to 1048576");
  if (opts.comms.size() > 64) throw InputError("--comm: at most 64 names");
  if (opts.pids.size() > 1024) throw InputError("--pid: at most 1024 processes");
  for (const auto& c : opts.comms)
    if (c.empty() || c.size() > 15)
      throw InputError(fmt::format("--comm \"{}\": a task name has 1 to 15 characters", c));
  f.sb = opts.mount.empty() ? 0 : mount_superblock_dev(opts.mount);
  if (opts.recorder_events > kMaxRecorderEvents)
    throw InputError(fmt::format("--recorder-events {}: at most {} per CPU", opts.recorder_events,
                                 kMaxRecorderEvents));
  if (!opts.pin_dir.empty()) {
    if (!opts.recorder_events)
      throw InputError("--pin-dir needs the flight recorder (--recorder-events 0 turns it off)");
    if (auto m = check_pin_dir(opts.pin_dir); !m.empty()) notes.push_back(m);
  }
  f.ncpus = static_cast<uint32_t>(std::max(1, libbpf_num_possible_cpus()));
  if (static_cast<uint64_t>(f.ncpus) * opts.recorder_events > UINT32_MAX)
    throw InputError(fmt::format("--recorder-events {}: too many for {} CPUs", opts.recorder_events, f.ncpus));
  if (!opts.cgroup.empty()) {
    struct statfs cfs {};
    f.cgroup_fd = open(opts.cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f.cgroup_fd < 0)
      throw InputError(fmt::format("--cgroup {}: {}", opts.cgroup, std::strerror(errno)));
    if (fstatfs(f.cgroup_fd, &cfs) != 0 || static_cast<unsigned long>(cfs.f_type) != CGROUP2_SUPER_MAGIC)
      throw InputError(fmt::format("--cgroup {}: not a cgroup v2 directory (e.g. "
                                   "/sys/fs/cgroup/machine.slice)",
                                   opts.cgroup));
  }
}

void set_layout(bdt_bpf* skel, loader::LayoutVar v, uint32_t value) {
  switch (v) {
#define BDT_TRACEPOINT(...)
#define BDT_SYSCALL(...)
#define BDT_DETECTOR(...)
#define NO_LAYOUT
#define LAYOUT(var, ...)      \
  case loader::LayoutVar::var: \
    skel->rodata->var = value; \
    break;
#define BDT_FUNCTION(id, name, candidates, halves, equivalents, layout, purpose) layout
#include "hooks.def"
#include "hooks_undef.h"
    case loader::LayoutVar::None: break;
  }
}

// A program of the plan: which hook and mechanism it serves, its verifier log buffer.
struct PlannedProg {
  struct bpf_program* prog;
  HookId id;
  Mechanism mech;
  bool ret;  // the return half (kretprobe)
  std::unique_ptr<char[]> log;
  size_t log_size;
};

constexpr size_t kLogSize = 64 * 1024;        // per program; rotating on 6.4+: the tail
constexpr size_t kBigLogSize = 32u << 20;     // one program whose log did not fit (before 6.4)

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

// Loads and attaches for one Session; a friend of it.
class Loader {
 public:
  Loader(Session& s, const LiveOptions& opts, Session::Use use, const Filters& filters)
      : s_(s), opts_(opts), use_(use), filters_(filters) {}

  void run() {
    loader::PlanOptions popts;
    popts.backend = opts_.backend;
    popts.force_fallback = env_on("BDT_FORCE_FALLBACK");
    if (const char* e = std::getenv("BDT_FALLBACK_HOOKS")) popts.no_fallback_hooks = std::string_view(e) == "0";
    const TestRefuse refuse = test_refuse();
    std::string big_log_for;  // a program to give kBigLogSize on the next attempt
    // At most one refusal per (hook, mechanism), each possibly after one
    // reload with a big log buffer.
    const int max_attempts = static_cast<int>(kHookCount) * 3 * 2 + 1;
    for (int attempt = 0;; ++attempt) {
      if (attempt > max_attempts)
        throw KernelError(fmt::format("the kernel kept refusing the BPF programs after {} attempts: {}",
                                      attempt, libbpf_tail()));
      plan_ = loader::plan_hooks(s_.facts_, popts, refusals_);
      s_.close_bpf();
      open_and_configure(refuse, big_log_for);
      g_libbpf_log.clear();
      const int err = bdt_bpf__load(s_.skel_);
      if (err) {
        const PlannedProg* bad = nullptr;
        for (const auto& p : progs_)
          if (p.log && p.log[0]) bad = &p;
        if (!bad)
          throw KernelError(fmt::format("the kernel refused the BPF programs ({}): {}",
                                        std::strerror(-err), libbpf_tail()));
        const std::string_view log(bad->log.get(), strnlen(bad->log.get(), bad->log_size));
        const std::string name = bpf_program__name(bad->prog);
        const bool complete = loader::verifier_log_complete(log);
        if (!complete && big_log_for != name) {
          // Cut short by its buffer (kernels before 6.4 keep the log's start,
          // not its end): load once more with a big buffer for this program.
          big_log_for = name;
          continue;
        }
        std::string why = complete ? loader::verifier_excerpt(log) : std::string();
        if (why.empty())
          why = complete ? fmt::format("{} (no verifier message)", std::strerror(-err))
                         : fmt::format("{} (its log did not fit in {} MiB)", std::strerror(-err),
                                       kBigLogSize >> 20);
        refuse_hook(bad->id, bad->mech, fmt::format("refused by the verifier: {}", why), name);
        continue;
      }
      if (!attach_all()) continue;
      break;
    }
    finish();
  }

 private:
  void refuse_hook(HookId id, Mechanism m, std::string reason, const std::string& prog) {
    refusals_.push_back({id, m, fmt::format("program {} {}", prog, reason)});
  }

  void open_and_configure(const TestRefuse& refuse, const std::string& big_log_for) {
    progs_.clear();
    s_.skel_ = bdt_bpf__open();
    if (!s_.skel_) throw KernelError(fmt::format("cannot open the BPF object: {}", std::strerror(errno)));
    auto* ro = s_.skel_->rodata;
    const auto& k = plan_.constants;
    ro->filter_pid = !opts_.pids.empty() || opts_.pid_filter;
    ro->lat_hist_on = opts_.latency_hist;
    ro->filter_comm = !opts_.comms.empty();
    ro->filter_cgroup = filters_.cgroup_fd >= 0;
    ro->filter_sb = static_cast<uint32_t>(filters_.sb);
    ro->em_compress_mask = k.em_compress_mask;
    ro->oe_inode_is_btrfs = k.oe_inode_is_btrfs;
    ro->oe_ioerr_bit = k.oe_ioerr_bit;
    ro->uring_cmpl_cqe = k.uring_cmpl_cqe;
    ro->rdonly_untyped = k.rdonly_untyped;
    ro->oe_direct_bit = k.oe_direct_bit;
    ro->eb_stale_bit = k.eb_stale_bit;
    ro->eb_all = env_on("BDT_EB_ALL");
    ro->all_events = opts_.all_events;
    ro->lazy = opts_.lazy && !opts_.all_events;
    ro->trigger_mask = opts_.triggers & ~triggers_off();
    ro->hot_ns = opts_.hot_ns;
    ro->stall_ns = opts_.stall_ns;
    ro->nr_cpus = filters_.ncpus;
    // recent_dio: BDT_RECENT rows per CPU (its declared size is one row)
    bpf_map__set_max_entries(s_.skel_->maps.recent_dio,
                             filters_.ncpus * bpf_map__max_entries(s_.skel_->maps.recent_dio));
    ro->bench_floor = opts_.bench_floor;
    ro->test_refuse_hook = refuse.hook;
    ro->test_refuse_mechs = refuse.mechs;
    // Testing aids (tests/integration/test_acked_ioerr_trigger.sh, bpf/config.bpf.h):
    // a DIRECT ordered extent at file offset 0 of an inode numbered BDT_TEST_OE_IOERR or above
    // is removed failed;
    // BDT_TEST_RECENT_MS: how far back a trigger's flush reaches (default 1000);
    // BDT_TEST_OE_TAKEN=N: the first N slots of each extent's probe sequence count as taken;
    // BDT_TEST_END_SPIN_US=N: a write's completion spins N us before it keeps its call with its
    // extents (the race of its return and its extent's failure, made likelier).
    if (const char* v = std::getenv("BDT_TEST_OE_IOERR")) ro->test_ioerr_ino = std::strtoull(v, nullptr, 10);
    if (const char* v = std::getenv("BDT_TEST_OE_TAKEN")) ro->test_oe_taken = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    if (const char* v = std::getenv("BDT_TEST_END_SPIN_US")) ro->test_end_spin_us = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    if (const char* v = std::getenv("BDT_TEST_RECENT_MS")) ro->recent_ns = std::strtoull(v, nullptr, 10) * 1'000'000ull;
    for (const auto& [var, value] : plan_.layouts) set_layout(s_.skel_, var, value);
    const uint32_t ring = ring_size(opts_.ringbuf_bytes, static_cast<uint32_t>(sysconf(_SC_PAGESIZE)));
    bpf_map__set_max_entries(s_.skel_->maps.events, ring);
    ro->wake_mask = wake_batch(ring, filters_.ncpus, sizeof(bdt_raw_event) + BPF_RINGBUF_HDR_SZ) - 1;
    ro->rec_slots = opts_.recorder_events;
    ro->rec_instance = opts_.recorder_events ? new_recorder_instance() : 0;
    bpf_map__set_max_entries(s_.skel_->maps.recorder,
                             opts_.recorder_events ? filters_.ncpus * opts_.recorder_events : 1);
    // Without --qemu nothing reads the histograms: keep the map tiny.
    bpf_map__set_max_entries(s_.skel_->maps.lat_hist,
                             opts_.latency_hist ? std::max<uint32_t>(1, opts_.latency_entries) : 1);
    // Exactly the planned programs load, each with its own verifier log buffer
    // (libbpf writes one only for a program the kernel refused).
    struct bpf_program* prog;
    bpf_object__for_each_program(prog, s_.skel_->obj) bpf_program__set_autoload(prog, false);
    for (const auto& p : plan_.hooks) {
      if (p.mechanism == Mechanism::None) continue;
      for (const auto& pn : loader::programs_of(loader::hook_def(p.id), p.mechanism)) {
        auto* pr = bpf_object__find_program_by_name(s_.skel_->obj, pn.name.c_str());
        if (!pr)
          throw KernelError(fmt::format("the BPF object has no program {} for {} ({}): build mismatch",
                                        pn.name, hook_name(p.id), to_string(p.mechanism)));
        bpf_program__set_autoload(pr, true);
        if (p.mechanism == Mechanism::Fentry) bpf_program__set_attach_target(pr, 0, p.target.c_str());
        const size_t size = pn.name == big_log_for ? kBigLogSize : kLogSize;
        PlannedProg pp{pr, p.id, p.mechanism, pn.ret, std::unique_ptr<char[]>(new char[size]), size};
        pp.log[0] = 0;
        bpf_program__set_log_buf(pr, pp.log.get(), size);
        progs_.push_back(std::move(pp));
      }
    }
  }

  // Attaches every planned program. On failures: records a refusal per hook,
  // detaches everything and returns false (the caller plans and loads again).
  bool attach_all() {
    // The filters' maps before anything attaches.
    const uint8_t one = 1;
    for (uint32_t pid : opts_.pids)
      bpf_map__update_elem(s_.skel_->maps.pid_filter, &pid, sizeof pid, &one, sizeof one, BPF_ANY);
    for (const auto& c : opts_.comms) {
      char key[BDT_COMM_LEN] = {};
      std::memcpy(key, c.data(), c.size());
      bpf_map__update_elem(s_.skel_->maps.comm_filter, key, sizeof key, &one, sizeof one, BPF_ANY);
    }
    if (filters_.cgroup_fd >= 0) {
      const uint32_t zero = 0;
      if (bpf_map__update_elem(s_.skel_->maps.cgroup_filter, &zero, sizeof zero, &filters_.cgroup_fd,
                               sizeof filters_.cgroup_fd, BPF_ANY) != 0)
        throw KernelError(fmt::format("--cgroup {}: cannot set up the cgroup filter: {}",
                                      opts_.cgroup, std::strerror(errno)));
    }
    bool ok = true;
    HookId failed_last{};
    for (const auto& pp : progs_) {
      if (!ok && pp.id == failed_last) continue;
      const auto& p = plan_.at(pp.id);
      struct bpf_link* l = p.mechanism == Mechanism::Kprobe
                               ? bpf_program__attach_kprobe(pp.prog, pp.ret, p.target.c_str())
                               : bpf_program__attach(pp.prog);
      if (l) {
        s_.links_.push_back(l);
        continue;
      }
      const int err = errno;
      ok = false;
      failed_last = pp.id;
      refuse_hook(pp.id, pp.mech,
                  fmt::format("attach failed{}: {}",
                              p.target.empty() ? "" : fmt::format(" ({})", p.target),
                              std::strerror(err)),
                  bpf_program__name(pp.prog));
    }
    if (ok) return true;
    s_.close_bpf();
    return false;
  }

  void finish() {
    auto& s = s_;
    s.lost_fd_ = bpf_map__fd(s.skel_->maps.lost);
    s.made_fd_ = bpf_map__fd(s.skel_->maps.made);
    s.stacks_fd_ = bpf_map__fd(s.skel_->maps.stacks);
    s.pid_filter_on_ = !opts_.pids.empty() || opts_.pid_filter;
    s.hooks_.clear();
    uint32_t ioc_mask = 0;
    for (const auto& p : plan_.hooks) {
      HookStatus h;
      h.id = p.id;
      h.mechanism = p.mechanism;
      h.attached = p.mechanism != Mechanism::None;
      h.reason = p.reason;
      const auto& def = loader::hook_def(p.id);
      if (h.attached && def.equivalence == loader::Equivalence::Alongside) ioc_mask |= def.ioc_mask;
      s.hooks_.push_back(std::move(h));
    }
    // send/balance: once their function hooks are attached they report those
    // calls and the syscall hooks only keep fd and cmd for them.
    s.skel_->bss->ioc_fn_mask = ioc_mask;
    // Every hook is attached: the fallback hooks may judge writes now (fb_armed, bpf/fallback.bpf.h).
    __atomic_store_n(&s.skel_->bss->fb_armed, 1, __ATOMIC_SEQ_CST);
    // Each hook the kernel refused a program of: what was refused, what it got instead.
    for (const auto& h : s.hooks_) {
      std::string refused;
      for (const auto& r : refusals_)
        if (r.id == h.id) refused += fmt::format("{}{} {}", refused.empty() ? "" : "; ", to_string(r.mechanism), r.reason);
      if (refused.empty()) continue;
      s.warnings_.push_back(fmt::format("{}: {}; {}", h.name(), refused,
                                        h.attached ? fmt::format("attached with {} instead", to_string(h.mechanism))
                                                   : std::string("not attached")));
    }
    if (!plan_.constants.ordered_flags_known)
      s.warnings_.push_back("no BTRFS_ORDERED_* enumerators in kernel BTF: ordered-extent flags "
                            "will be reported empty");
    if (use_ == Session::Use::Trace) {
      bool any = false;
      std::string why;
      for (const auto& f : loader::detector_fidelity(s.hooks_)) {
        any = any || f.fidelity != "unavailable";
        why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", f.id, f.reason);
      }
      if (!any)
        throw KernelError(fmt::format("no detector has the hooks it needs on this kernel ({}); run "
                                      "`btrfs-dio-trace doctor` for the reasons",
                                      why));
    }
  }

  Session& s_;
  const LiveOptions& opts_;
  Session::Use use_;
  const Filters& filters_;
  loader::Plan plan_;
  std::vector<PlannedProg> progs_;
  std::vector<loader::Refusal> refusals_;
};

std::unique_ptr<Session> Session::open(const LiveOptions& opts, Use use) {
  check_privileges();
  Filters filters;
  std::vector<std::string> notes;
  validate(opts, filters, notes);
  loader::KernelBtf btf;
  if (!btf.vmlinux())
    throw KernelError(fmt::format(
        "this kernel exposes no BTF (/sys/kernel/btf/vmlinux: {}); btrfs-dio-trace needs a kernel "
        "built with CONFIG_DEBUG_INFO_BTF=y",
        btf.error()));
  libbpf_set_print(libbpf_print);
  struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
  setrlimit(RLIMIT_MEMLOCK, &rl);  // kernels < 5.11 charge BPF memory to memlock

  std::unique_ptr<Session> s(new Session());
  s->warnings_ = std::move(notes);
  s->held_ = ReorderBuffer(opts.reorder_window_ms * 1'000'000ull);
  const auto tracefs = loader::find_or_mount_tracefs();
  if (tracefs.how.find("by btrfs-dio-trace") != std::string::npos)
    s->warnings_.push_back(fmt::format("tracefs was not mounted: {} (the ioctl hooks use the "
                                       "syscall tracepoints, which only ioctl(2) runs)",
                                       tracefs.how));
  s->facts_ = loader::gather_facts(btf, opts.backend, tracefs);
  if (auto why = loader::backend_impossible(s->facts_, opts.backend); !why.empty())
    throw KernelError(why);
  s->flags_ = flag_maps_from(s->facts_.enumerators);
  Loader(*s, opts, use, filters).run();
  if (use == Use::Trace) {
    setup_recorder(*s, opts.pin_dir);
    s->rb_ = ring_buffer__new(bpf_map__fd(s->skel_->maps.events), &Session::on_sample, s.get(), nullptr);
    if (!s->rb_)
      throw KernelError(fmt::format("cannot open the BPF ring buffer: {}", std::strerror(errno)));
  }
  const uint64_t rt = clock_ns(CLOCK_REALTIME), mono = clock_ns(CLOCK_MONOTONIC);
  s->mono_to_rt_ = static_cast<int64_t>(rt - mono);
  s->kernel_ = KernelVersion::running();
  // Opened now, read only if a finding has a stack: whether /proc/kallsyms
  // shows addresses is decided at open (CAP_SYSLOG), and the tracer may have
  // dropped that capability by then (docs/deployment.md).
  s->kallsyms_fd_ = ::open("/proc/kallsyms", O_RDONLY | O_CLOEXEC);
  return s;
}

void Session::close_bpf() {
  if (rb_) ring_buffer__free(rb_);
  rb_ = nullptr;
  for (auto* l : links_) bpf_link__destroy(l);
  links_.clear();
  if (skel_) bdt_bpf__destroy(skel_);
  skel_ = nullptr;
}

Session::~Session() {
  // A clean end detaches the programs (a kill -9 never gets here: the pinned
  // links keep them attached and recording).
  for (const auto& p : link_pins_) unlink(p.c_str());
  if (!keep_pins_) {
    for (const auto& p : pins_) unlink(p.c_str());
    if (!pin_dir_.empty()) rmdir(pin_dir_.c_str());
  }
  close_bpf();
  if (kallsyms_fd_ >= 0) ::close(kallsyms_fd_);
}

int Session::on_sample(void* ctx, void* data, size_t size) {
  auto* self = static_cast<Session*>(ctx);
  // Past this poll's budget: libbpf stops consuming at a negative return and
  // leaves the rest in the ring (this record is consumed, so count it first).
  const int more = --self->poll_budget_ > 0 ? 0 : kPollBudgetSpent;
  if (size < sizeof(bdt_raw_event)) {
    ++self->unknown_;
    return 0;
  }
  const auto* raw = static_cast<const bdt_raw_event*>(data);
  if (!decode_raw(*raw, self->flags_, self->held_.slot())) {
    self->held_.discard();
    ++self->unknown_;
    return more;
  }
  self->held_.commit();
  ++self->decoded_;
  return more;
}

int Session::poll(int timeout_ms, const Deliver& cb) {
  if (!rb_) return -EINVAL;
  // The BPF side wakes us only once a batch is queued (bdt_submit), so a
  // timed-out poll still drains whatever arrived meanwhile. At most
  // kPollRecords records per call: under a flood that outpaces us, libbpf
  // would otherwise keep consuming for as long as records keep coming, and
  // the caller (Ctrl-C, the QEMU and metrics ticks, the watchdog) would wait.
  poll_budget_ = kPollRecords;
  int err = ring_buffer__poll(rb_, timeout_ms);
  if (err == kPollBudgetSpent) err = 1;
  if (err < 0 && err != -EINTR) return err;
  if (err == 0) err = ring_buffer__consume(rb_);
  if (err == kPollBudgetSpent) err = 1;
  if (err < 0 && err != -EINTR) return err;
  return static_cast<int>(held_.release(clock_ns(CLOCK_MONOTONIC), cb));
}

void Session::drain(const Deliver& cb) {
  // Detach first: nothing is made after the last read, so the counts add up
  // (made = read + lost) and the last records are not left in the ring.
  detach();
  if (rb_) {
    poll_budget_ = INT_MAX;  // detached: the ring only empties
    ring_buffer__consume(rb_);
  }
  held_.drain(cb);
}

void Session::detach() {
  // Before the first link goes: a write whose iomap_dio_rw_begin hook is already
  // detached must not be reported as a fallback (fb_armed, bpf/fallback.bpf.h).
  if (skel_ && skel_->bss) __atomic_store_n(&skel_->bss->fb_armed, 0, __ATOMIC_SEQ_CST);
  for (const auto& p : link_pins_) unlink(p.c_str());
  link_pins_.clear();
  // Closing a classic tracepoint's link waits for RCU grace periods (~70-90 ms
  // each on the 6.18 host): one after another the syscall hooks' links took
  // about 1 s, which a stop (Ctrl-C, SIGTERM, systemctl stop) waited for.
  // Closed from one thread each, the waits partly overlap (~0.6 s there).
  std::vector<std::thread> closers;
  closers.reserve(links_.size());
  for (auto* l : links_) {
    try {
      closers.emplace_back([l] { bpf_link__destroy(l); });
    } catch (const std::system_error&) {  // no thread: close it here
      bpf_link__destroy(l);
    }
  }
  for (auto& t : closers) t.join();
  links_.clear();
}

size_t Session::attached() const {
  size_t n = 0;
  for (const auto& h : hooks_) n += h.attached;
  return n;
}

LiveStats Session::stats() const {
  LiveStats st;
  const int ncpu = libbpf_num_possible_cpus();
  auto per_cpu = [&](int fd, std::vector<uint64_t>& v, uint64_t& total) {
    v.assign(ncpu > 0 ? ncpu : 0, 0);
    uint32_t zero = 0;
    if (fd < 0 || v.empty() || bpf_map_lookup_elem(fd, &zero, v.data()) != 0) v.assign(v.size(), 0);
    for (auto n : v) total += n;
  };
  per_cpu(lost_fd_, st.lost_per_cpu, st.lost_total);
  per_cpu(made_fd_, st.made_per_cpu, st.made_total);
  st.events = decoded_;
  st.unknown_records = unknown_;
  return st;
}

TraceHeader Session::header() const {
  TraceHeader h;
  h.schema_version = 1;
  h.kernel = kernel_;
  for (const auto& hs : hooks_)
    h.hooks.push_back({std::string(hs.name()), std::string(to_string(hs.mechanism)), hs.attached});
  h.mono_to_realtime_ns = mono_to_rt_;
  h.hostname = this_hostname();
  return h;
}

std::vector<std::string> Session::stack(uint32_t stack_id) const {
  std::vector<std::string> out;
  if (stack_id == 0 || stacks_fd_ < 0) return out;
  uint64_t ips[32] = {};  // BDT_STACK_DEPTH in the BPF object
  const uint32_t key = stack_id - 1;
  if (bpf_map_lookup_elem(stacks_fd_, &key, ips) != 0) return out;
  std::call_once(syms_once_, [this] {
    std::string text;
    if (kallsyms_fd_ >= 0 && ::lseek(kallsyms_fd_, 0, SEEK_SET) == 0) {
      char buf[65536];
      for (ssize_t n; (n = ::read(kallsyms_fd_, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
    }
    syms_ = loader::KernelSymbols::parse(text);
  });
  for (uint64_t ip : ips) {
    if (!ip) break;
    std::string f = syms_.symbolize(ip);
    // the BPF program and trampoline that captured the stack are not the origin
    if (f.size() > 6 && f.compare(f.size() - 6, 6, " [bpf]") == 0) continue;
    out.push_back(std::move(f));
  }
  return out;
}

void Session::add_pid(uint32_t tgid) {
  if (!pid_filter_on_) throw InputError("this session has no pid filter");
  const uint8_t one = 1;
  if (bpf_map__update_elem(skel_->maps.pid_filter, &tgid, sizeof tgid, &one, sizeof one, BPF_ANY) != 0)
    throw KernelError(fmt::format("cannot add pid {} to the in-kernel pid filter: {}{}", tgid,
                                  std::strerror(errno),
                                  errno == E2BIG ? " (at most 1024 processes)" : ""));
}

void Session::remove_pid(uint32_t tgid) {
  if (!pid_filter_on_) throw InputError("this session has no pid filter");
  bpf_map__delete_elem(skel_->maps.pid_filter, &tgid, sizeof tgid, 0);
  // Its latency histograms: collect the keys first (deleting while iterating
  // restarts the walk).
  std::vector<bdt_lat_key> gone;
  bdt_lat_key k{}, next{};
  const bdt_lat_key* prev = nullptr;
  while (bpf_map__get_next_key(skel_->maps.lat_hist, prev, &next, sizeof next) == 0) {
    if (next.pid == tgid) gone.push_back(next);
    k = next;
    prev = &k;
  }
  for (const auto& g : gone) bpf_map__delete_elem(skel_->maps.lat_hist, &g, sizeof g, 0);
}

LatencyHists Session::latency() const {
  LatencyHists out;
  out.capacity = bpf_map__max_entries(skel_->maps.lat_hist);
  const uint32_t zero = 0;
  uint64_t n = 0;
  if (bpf_map__lookup_elem(skel_->maps.lat_overflow, &zero, sizeof zero, &n, sizeof n, 0) == 0)
    out.overflow = n;
  bdt_lat_key k{}, next{};
  const bdt_lat_key* prev = nullptr;
  bdt_lat_val v{};
  while (bpf_map__get_next_key(skel_->maps.lat_hist, prev, &next, sizeof next) == 0) {
    k = next;
    prev = &k;
    if (bpf_map__lookup_elem(skel_->maps.lat_hist, &k, sizeof k, &v, sizeof v, 0) != 0) continue;
    LatencyHist h;
    h.pid = k.pid;
    h.buffered = k.write == BDT_LAT_BUFFERED;
    h.write = k.write == 1;
    h.dev = kernel_dev_to_user(k.dev);
    h.ino = k.ino;
    if (!h.buffered) h.buckets.assign(std::begin(v.slots), std::end(v.slots));
    h.max_ns = v.max_ns;
    h.sum_ns = v.sum_ns;
    h.requests = v.requests;
    h.bytes = v.bytes;
    h.errors = v.errors;
    h.again = v.again;
    h.short_writes = v.short_writes;
    out.hists.push_back(std::move(h));
  }
  return out;
}

namespace {
// One entry of a per-CPU array, every CPU's value.
template <class T>
bool percpu_values(const struct bpf_map* m, uint32_t key, std::vector<T>& out) {
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return false;
  out.assign(static_cast<size_t>(ncpu), T{});
  static_assert(sizeof(T) % 8 == 0, "per-CPU values are 8-byte aligned");
  return bpf_map__lookup_elem(m, &key, sizeof key, out.data(), out.size() * sizeof(T), 0) == 0;
}

void add_dio(DioCounts& d, const bdt_dio_count& c) {
  d.requests += c.requests;
  d.bytes += c.bytes;
  d.errors += c.errors;
  d.again += c.again;
  d.short_writes += c.short_writes;
  d.lat_sum_ns += c.lat_sum_ns;
  if (d.lat_buckets.empty()) d.lat_buckets.assign(BDT_LAT_BUCKETS, 0);
  for (int i = 0; i < BDT_LAT_BUCKETS; ++i) d.lat_buckets[i] += c.lat[i];
}
}  // namespace

KernelCounts Session::counts() const {
  KernelCounts out;
  if (!skel_) return out;
  std::vector<bdt_event_count> ev;
  if (!percpu_values(skel_->maps.event_counts, 0, ev)) return out;
  out.valid = true;
  out.events_by_type.assign(BDT_EV_SLOTS, 0);
  for (const auto& c : ev) {
    for (int i = 0; i < BDT_EV_SLOTS; ++i) out.events_by_type[i] += c.events[i];
    out.dio_begins += c.dio_begins;
    out.dio_ends += c.dio_ends;
    out.dio_unmatched += c.dio_unmatched;
    out.oe_untracked += c.oe_untracked;
  }
  std::vector<bdt_dio_count> dc;
  for (uint32_t slot = 0; slot <= BDT_FS_SLOTS; ++slot) {
    FsCounts f;
    if (slot < BDT_FS_SLOTS) {
      bdt_fs_slot s{};
      if (bpf_map__lookup_elem(skel_->maps.fs_slots, &slot, sizeof slot, &s, sizeof s, 0) != 0 || !s.sb_dev)
        continue;
      std::memcpy(f.fs.b.data(), s.fsid, sizeof s.fsid);
    } else {
      f.overflow = true;
    }
    bool any = false;
    for (uint32_t dir = 0; dir < BDT_DIRS; ++dir) {
      if (!percpu_values(skel_->maps.dio_counts, slot * BDT_DIRS + dir, dc)) continue;
      DioCounts& d = dir == BDT_DIR_READ ? f.read : dir == BDT_DIR_WRITE ? f.write : f.unknown;
      d.lat_buckets.assign(BDT_LAT_BUCKETS, 0);
      for (const auto& c : dc) add_dio(d, c);
      any = any || d.requests || d.again;
    }
    if (slot < BDT_FS_SLOTS || any) out.fs.push_back(std::move(f));
  }
  // requests in flight now: the slot table's taken slots (bpf/lazy.bpf.h, one
  // batch read) and the in-flight map's keys (few, unless the I/O is deep)
  {
    const uint32_t n = bpf_map__max_entries(skel_->maps.dio_slot_key);
    std::vector<uint32_t> keys(n);
    std::vector<uint64_t> vals(n);
    uint32_t out_batch = 0, count = n;
    const int rc = bpf_map_lookup_batch(bpf_map__fd(skel_->maps.dio_slot_key), nullptr, &out_batch,
                                        keys.data(), vals.data(), &count, nullptr);
    if (rc == 0 || errno == ENOENT)
      for (uint32_t i = 0; i < count && i < n; ++i) out.dio_inflight += vals[i] != 0;
  }
  uint64_t k = 0, next = 0;
  const uint64_t* prev = nullptr;
  while (bpf_map__get_next_key(skel_->maps.inflight_dio, prev, &next, sizeof next) == 0) {
    ++out.dio_inflight;
    k = next;
    prev = &k;
  }
  return out;
}

}  // namespace bdt::live
