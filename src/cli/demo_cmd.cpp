// `btrfs-dio-trace demo`: on a machine with nothing to watch, make a scratch
// btrfs on a loop file, run the built-in workloads that provoke each pattern,
// trace them live, print a closing table, and clean up (also on failure and
// Ctrl-C).
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "detectors/exposure.h"
#include "bdt/kernel_version.h"
#include "cli/commands.h"
#include "cli/live_loop.h"
#include "cli/pipeline.h"
#include "cli/scratch_fs.h"
#include "live/doctor.h"

namespace fs = std::filesystem;

namespace bdt::cli {

namespace {

// Forwards to the real sink and keeps the findings of the current pattern.
class TeeSink final : public Sink {
 public:
  explicit TeeSink(std::unique_ptr<Sink> inner) : inner_(std::move(inner)) {}
  void event(const Event& ev) override { inner_->event(ev); }
  void finding(const Finding& f) override {
    current.push_back(f);
    inner_->finding(f);
  }
  void lost(uint32_t cpu, uint64_t n) override { inner_->lost(cpu, n); }
  void summary(const Summary& s) override { inner_->summary(s); }
  void flush() override { inner_->flush(); }
  std::vector<Finding> current;

 private:
  std::unique_ptr<Sink> inner_;
};

// What the kernel did during one pattern, counted from the events.
struct Observed {
  uint64_t events = 0, em_exist = 0, em_inside = 0, em_outside = 0, eexist = 0;
  uint64_t dio_writes = 0, dio_reads = 0, continued = 0, oe_split = 0, oe_buffered = 0;
  uint64_t dio_errors = 0;
  std::optional<int64_t> send_ret, balance_ret;
  uint64_t send_begin = 0, send_end = 0, bal_begin = 0, bal_end = 0;

  void see(const Event& ev) {
    ++events;
    if (const auto* x = ev.as<EmExist>()) {
      ++em_exist;
      (x->start >= x->e_start && x->start < x->e_start + x->e_len) ? ++em_inside : ++em_outside;
    } else if (const auto* d = ev.as<DioBegin>()) {
      d->write ? ++dio_writes : ++dio_reads;
      if (d->done_before) ++continued;
    } else if (const auto* e = ev.as<DioEnd>()) {
      if (e->ret == -17 || e->error == -17) ++eexist;
      if (e->ret < 0 || e->error) ++dio_errors;
    } else if (const auto* o = ev.as<Ordered>()) {
      if (ev.type == EventType::OeSplit) ++oe_split;
      if (ev.type == EventType::OeAdd && !(o->flags & oef::DIRECT)) ++oe_buffered;
    } else if (const auto* i = ev.as<Ioctl>()) {
      bool send = i->cmd == IoctlCmd::Send;
      bool bal = relocates(i->cmd);
      if (ev.type == EventType::IoctlBegin) {
        if (send) send_begin = ev.ts_ns;
        if (bal) bal_begin = ev.ts_ns;
      } else {
        if (send) send_ret = i->ret, send_end = ev.ts_ns;
        if (bal) balance_ret = i->ret, bal_end = ev.ts_ns;
      }
    }
  }
};

struct Pattern {
  std::string name;      // shown in the table
  std::string detector;  // the detector it exercises
  std::string bug;  // the known bug it provokes, "" for the control
  std::vector<std::string> argv;
  int tries = 1;           // repeat until a finding of `detector` (races)
  double timeout_s = 60;
  bool expect_none = false;  // the benign control
  std::function<std::string(const Observed&)> describe;
};

std::string exe_dir() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}

// The workloads (programs and scripts) are in one directory: $BDT_WORKLOAD_DIR,
// else next to the binary (the build tree's build/workloads), else where
// `cmake --install` and the package put them, found from the binary
// (sbin/../libexec/btrfs-dio-trace/workloads): no source tree needed.
std::string find_tool(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* e = getenv("BDT_WORKLOAD_DIR")) dirs.push_back(e);
  dirs.push_back(exe_dir() + "/workloads");
  dirs.push_back(exe_dir() + "/" BDT_WORKLOADS_FROM_BIN);
  for (const auto& d : dirs)
    if (access((d + "/" + name).c_str(), X_OK) == 0) return fs::weakly_canonical(d + "/" + name).string();
  throw KernelError(fmt::format("demo workload '{}' not found (looked in {}); build the project "
                                "(cmake --build build), install it, or set BDT_WORKLOAD_DIR",
                                name, fmt::join(dirs, ", ")));
}

std::string secs(uint64_t ns) { return fmt::format("{:.1f} s", static_cast<double>(ns) / 1e9); }

}  // namespace

int run_demo(const DemoArgs& a) {
  install_signal_handlers();
  // Resolve everything that can fail before touching the machine.
  std::string interleaved = find_tool("dio-interleaved");
  std::string buf_fault = find_tool("dio-buf-fault");
  std::string unstable = find_tool("dio-unstable");
  std::string send_balance = find_tool("send-vs-balance.sh");
  std::string benign = find_tool("benign-fio.sh");

  fmt::print(stderr, "demo: making a scratch btrfs on a loop file...\n");
  ScratchBtrfs scratch(3ull << 30);
  fmt::print(stderr, "demo: scratch btrfs on {} mounted at {}\n", scratch.loop(), scratch.mnt());

  live::LiveOptions lo;
  lo.mount = scratch.mnt();
  lo.backend = a.backend;
  auto session = live::Session::open(lo);
  auto header = session->header();
  const KernelVersion kernel = KernelVersion::running();

  TimeBase tb{monotonic_ns(), header.mono_to_realtime_ns, a.wall_time};
  auto tee_owner = std::make_unique<TeeSink>(
      a.format == Format::Json ? make_json_sink(stdout, header) : make_text_sink(stdout, tb, isatty(STDOUT_FILENO)));
  TeeSink* tee = tee_owner.get();
  PipelineOptions po;
  po.print_events = a.events;
  po.detectors.kernel = kernel;
  apply_header_hooks(po.detectors, header);
  Pipeline pipe(po, std::move(tee_owner));
  if (!a.record.empty()) pipe.set_recorder(create_record(a.record, header));
  Observed obs;
  auto deliver = [&](const Event& ev) {
    obs.see(ev);
    pipe.on_event(ev);
  };
  LiveLoop loop(*session, pipe, lo, deliver);
  auto pump = [&](int ms) { loop.step(ms); };

  const std::string& mnt = scratch.mnt();
  const std::string& nocow = scratch.nocow();
  std::vector<Pattern> patterns = {
      {"two DIO readers in one extent, cold cache", "em-merge-race", "the 2016 extent-map merge race",
       {interleaved, "-r", "1", "-t", "20", nocow}, 3, 60, false,
       [](const Observed& o) {
         return fmt::format("btrfs_handle_em_exist x{} (requested start inside existing map: {}, "
                            "outside: {}); EEXIST returned: {}",
                            o.em_exist, o.em_inside, o.em_outside, o.eexist);
       }},
      {"DIO write from a cold mmap (faults part-way)", "dio-short-write", "the 2023 DIO short-write bug",
       {buf_fault, "-m", "copy", "-t", "20", mnt}, 1, 60, false,
       [](const Observed& o) {
         return fmt::format("continued DIO writes (done_before>0): {}; ordered-extent splits: {}; "
                            "DIO errors: {}",
                            o.continued, o.oe_split, o.dio_errors);
       }},
      {"DIO write from an mmap of the same file", "dio-short-write", "the 2023 DIO short-write bug",
       {buf_fault, "-m", "self", "-t", "20", mnt}, 1, 60, false,
       [](const Observed& o) {
         return fmt::format("continued DIO writes: {}; ordered-extent splits: {}; completed (no "
                            "deadlock)",
                            o.continued, o.oe_split);
       }},
      {"btrfs send while balance relocates", "send-vs-relocation", "the 2019 send/relocation race",
       {"bash", send_balance, "-s", "100", "-t", "60", mnt}, 1, 150, false,
       [](const Observed& o) {
         uint64_t lo = std::max(o.send_begin, o.bal_begin), hi = std::min(o.send_end, o.bal_end);
         return fmt::format("send returned {}, balance returned {}; overlap {}",
                            o.send_ret ? fmt::format("{}", *o.send_ret) : "?",
                            o.balance_ret ? fmt::format("{}", *o.balance_ret) : "?",
                            o.send_begin && o.bal_begin && hi > lo ? secs(hi - lo) : "none seen");
       }},
      {"O_DIRECT writes, shared buffer, checksummed file", "dio-buffered-fallback", "the 2011 unstable-pages checksum bug",
       {unstable, "-m", "csum", "-d", "3", mnt}, 1, 30, false,
       [](const Observed& o) {
         return fmt::format("O_DIRECT writes that reached iomap: {}; buffered ordered extents: {}; "
                            "DIO errors: {}",
                            o.dio_writes, o.oe_buffered, o.dio_errors);
       }},
      {"O_DIRECT writes, shared buffer, nocow file (no checksums)", "", "the 2011 unstable-pages checksum bug",
       {unstable, "-m", "nocow", "-d", "3", mnt}, 1, 30, true,
       [](const Observed& o) {
         return fmt::format("true DIO writes: {}; buffered ordered extents: {}; DIO errors: {} "
                            "(nocow: no checksums to fail)",
                            o.dio_writes, o.oe_buffered, o.dio_errors);
       }},
      {"benign control: fio O_DIRECT randrw", "", "",
       {"bash", benign, "-r", "3", nocow}, 1, 60, true,
       [](const Observed& o) {
         return fmt::format("{} DIO requests, {} events", o.dio_reads + o.dio_writes, o.events);
       }},
  };

  struct Row {
    std::string name, detector, workload, kernel_did, detected;
  };
  std::vector<Row> rows;
  bool interrupted = false;

  for (const auto& p : patterns) {
    if (stop_requested()) {
      interrupted = true;
      break;
    }
    Row row{p.name, p.detector.empty() ? "no finding expected" : p.detector, "", "", ""};
    int tries = 0;
    std::vector<Finding> got;
    Observed total;
    for (; tries < p.tries && !stop_requested();) {
      ++tries;
      fmt::print(stderr, "\ndemo: == {}{}{}: {}\n", p.name,
                 p.bug.empty() ? "" : fmt::format(" ({})", p.bug),
                 p.tries > 1 ? fmt::format(", try {}/{}", tries, p.tries) : "",
                 fmt::join(p.argv, " "));
      tee->current.clear();
      obs = Observed{};
      std::string log = scratch.dir() + "/workload.log";
      pid_t pid = fork();
      if (pid == 0) {
        setpgid(0, 0);
        int fd = open(log.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
        if (fd >= 0) {
          dup2(fd, STDOUT_FILENO);
          dup2(fd, STDERR_FILENO);
        }
        std::vector<char*> av;
        for (const auto& s : p.argv) av.push_back(const_cast<char*>(s.c_str()));
        av.push_back(nullptr);
        execvp(av[0], av.data());
        _exit(127);
      }
      setpgid(pid, pid);
      const uint64_t t0 = monotonic_ns();
      int status = -1;
      bool timed_out = false;
      while (true) {
        pump(100);
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (stop_requested() || monotonic_ns() - t0 > static_cast<uint64_t>(p.timeout_s * 1e9)) {
          timed_out = !stop_requested();
          kill(-pid, SIGKILL);
          waitpid(pid, &status, 0);
          break;
        }
      }
      // Completions run in btrfs workers after the syscall returned: let them arrive.
      for (int i = 0; i < 5; ++i) pump(100);
      std::string last;
      if (FILE* f = fopen(log.c_str(), "r")) {
        char buf[1024];
        while (fgets(buf, sizeof buf, f)) last = buf;
        fclose(f);
        while (!last.empty() && last.back() == '\n') last.pop_back();
      }
      int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      row.workload = timed_out ? fmt::format("timed out after {:.0f} s", p.timeout_s)
                     : stop_requested() ? std::string("interrupted")
                                        : fmt::format("exit {} in {}", rc, secs(monotonic_ns() - t0));
      fmt::print(stderr, "demo: workload {}: {}\n", row.workload, last);
      got = tee->current;
      total = obs;
      bool hit = std::any_of(got.begin(), got.end(),
                             [&](const Finding& f) { return f.detector == p.detector; });
      if (hit || p.expect_none) break;
    }
    row.kernel_did = p.describe(total);
    std::map<std::string, int> by;
    for (const auto& f : got) ++by[f.detector + " " + std::string(to_string(f.level))];
    if (by.empty()) {
      row.detected = "nothing";
    } else {
      std::vector<std::string> parts;
      for (const auto& [k, n] : by) parts.push_back(fmt::format("{} x{}", k, n));
      row.detected = fmt::format("{}", fmt::join(parts, ", "));
    }
    if (p.tries > 1) row.detected += fmt::format(" ({} tr{})", tries, tries == 1 ? "y" : "ies");
    rows.push_back(row);
  }
  loop.drain();

  // Closing table (stderr in JSON mode so stdout stays JSON lines).
  FILE* out = a.format == Format::Json ? stderr : stdout;
  fmt::print(out, "\n=== demo: what this kernel ({}) did and what was detected ===\n", kernel.release);
  for (const auto& r : rows) {
    fmt::print(out, "\n* {}  [{}]\n", r.name, r.detector);
    fmt::print(out, "    workload:    {}\n", r.workload);
    fmt::print(out, "    kernel did:  {}\n", r.kernel_did);
    fmt::print(out, "    detected:    {}\n", r.detected);
  }
  // What cannot be shown here, and why.
  fmt::print(out, "\nNot shown on this machine:\n");
  try {
    auto doc = live::run_doctor(a.backend);
    for (const auto& d : doc.detectors)
      if (d.fidelity != "full") fmt::print(out, "  - {} ({}): {}\n", d.id, d.fidelity, d.reason);
  } catch (const std::exception& e) {
    fmt::print(out, "  - (doctor failed: {})\n", e.what());
  }
  std::set<std::string_view> said;
  for (const auto& row : exposure_table())
    if (exposed(row, kernel) == Exposed::No && said.insert(row.detector).second)
      fmt::print(out, "  - {} symptom: cannot occur here, this kernel carries the fix ({} {})\n",
                 row.detector, row.fixed.set() ? fmt::format("{}.{}", row.fixed.major, row.fixed.minor) : "",
                 row.fixed_by);

  Summary s;
  s.duration_s = static_cast<double>(monotonic_ns() - tb.origin_ns) / 1e9;
  loop.fill_summary(s);
  pipe.finish(monotonic_ns(), std::move(s));
  session.reset();
  scratch.cleanup();
  fmt::print(stderr, "demo: scratch btrfs removed\n");
  if (interrupted || stop_requested()) {
    fmt::print(stderr, "demo: interrupted\n");
    return 130;
  }
  return 0;
}

}  // namespace bdt::cli
