// `doctor`: what this kernel lets the tool see, probed for real (load, attach,
// detach) and reported per hook and per detector. Leaves nothing attached.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include <fmt/core.h>

#include "bdt/live.h"
#include "live/bpf_session.h"
#include "loader/hooks.h"
#include "loader/kernel_btf.h"
#include "probe.skel.h"

namespace bdt {

namespace {

bool exists(const char* p) {
  struct stat st {};
  return stat(p, &st) == 0;
}

struct MechProbe {
  bool ok = false;
  std::string reason;  // why not (or what was probed)
};

// Loads and attaches an empty fentry program on func, then detaches.
MechProbe probe_fentry(const std::string& func) {
  MechProbe r;
  probe_bpf* skel = probe_bpf__open();
  if (!skel) return {false, fmt::format("cannot open probe object: {}", std::strerror(errno))};
  bpf_program__set_autoload(skel->progs.probe_kprobe, false);
  bpf_program__set_attach_target(skel->progs.probe_fentry, 0, func.c_str());
  int err = probe_bpf__load(skel);
  if (err) {
    err = -err;
    r.reason = err == EPERM || err == EACCES
                   ? fmt::format("fentry refused by this kernel ({}: function tracing blocked)",
                                 err == EPERM ? "EPERM" : "EACCES")
                   : fmt::format("fentry program on {} not loadable: {}", func, std::strerror(err));
  } else if (bpf_link* l = bpf_program__attach(skel->progs.probe_fentry)) {
    r.ok = true;
    r.reason = fmt::format("fentry attached to {} in a probe", func);
    bpf_link__destroy(l);
  } else {
    err = errno;
    r.reason = err == EPERM || err == EACCES
                   ? fmt::format("fentry refused by this kernel ({}: function tracing blocked)",
                                 err == EPERM ? "EPERM" : "EACCES")
                   : fmt::format("fentry attach to {} failed: {}", func, std::strerror(err));
  }
  probe_bpf__destroy(skel);
  return r;
}

MechProbe probe_kprobe(const std::string& func) {
  MechProbe r;
  const bool pmu = exists("/sys/bus/event_source/devices/kprobe/type");
  probe_bpf* skel = probe_bpf__open();
  if (!skel) return {false, fmt::format("cannot open probe object: {}", std::strerror(errno))};
  bpf_program__set_autoload(skel->progs.probe_fentry, false);
  int err = probe_bpf__load(skel);
  if (err) {
    r.reason = fmt::format("kprobe program not loadable: {}", std::strerror(-err));
  } else if (bpf_link* l = bpf_program__attach_kprobe(skel->progs.probe_kprobe, false, func.c_str())) {
    r.ok = true;
    r.reason = fmt::format("kprobe attached to {} in a probe", func);
    bpf_link__destroy(l);
  } else {
    err = errno;
    r.reason = pmu ? fmt::format("kprobe on {} refused: {}", func, std::strerror(err))
                   : fmt::format("kprobes unavailable on this kernel (no kprobe PMU, {})",
                                 std::strerror(err));
  }
  probe_bpf__destroy(skel);
  return r;
}

// Symbols from /proc/kallsyms (text), including ThinLTO-renamed "name.llvm.N".
std::set<std::string> kallsyms_for(const std::set<std::string>& wanted) {
  std::set<std::string> found;
  std::ifstream in("/proc/kallsyms");
  std::string addr, type, name;
  while (in >> addr >> type) {
    std::getline(in >> std::ws, name);
    auto sp = name.find_first_of(" \t");
    if (sp != std::string::npos) name.resize(sp);
    auto dot = name.find('.');
    std::string base = dot == std::string::npos ? name : name.substr(0, dot);
    if (wanted.count(base)) found.insert(base);
  }
  return found;
}

struct DetectorNeeds {
  const char* id;
  std::vector<const char*> need;       // tracepoint hooks without which it is unavailable
  std::vector<const char*> full_only;  // function hooks that lift it from partial to full
  const char* partial_why;             // what is missing when only tracepoints attach
  const char* unavailable_without;     // function hooks it cannot work without ("" none)
};

const DetectorNeeds kDetectors[] = {
    {"em-merge-race",
     {"btrfs_handle_em_exist", "iomap_dio_rw_begin", "iomap_dio_complete"},
     {"btrfs_get_extent()", "add_extent_mapping()"},
     "btrfs_get_extent is seen only at exit (tracepoint), so 'another thread inside "
     "btrfs_get_extent' is inferred from DIO requests in flight; EEXIST seen at dio_end",
     ""},
    {"stale-eb-reuse", {}, {}, "", "free_extent_buffer()"},
    {"dio-short-write",
     {"iomap_dio_rw_begin", "iomap_dio_complete", "btrfs_finish_ordered_extent"},
     {},
     "",
     ""},
    {"send-vs-relocation", {"sys_enter_ioctl", "sys_exit_ioctl"}, {}, "", ""},
    {"dio-unstable-pages",
     {"iomap_dio_rw_begin"},
     {"btrfs_check_data_csum()"},
     "checksum failures are not observable without a function hook on the csum check; the "
     "hazard (shared writable buffer on a checksummed file) is seen at dio_begin",
     ""},
    {"dio-buffered-fallback",
     {"iomap_dio_rw_begin"},
     {},
     "",
     ""},
};

}  // namespace

DoctorReport run_doctor(Backend backend) {
  DoctorReport rep;
  utsname u{};
  uname(&u);
  rep.kernel = u.release;
  rep.vmlinux_btf = exists("/sys/kernel/btf/vmlinux");
  rep.btrfs_module_btf = exists("/sys/kernel/btf/btrfs");
  rep.root = geteuid() == 0;
  live::check_privileges();

  loader::KernelBtf btf;
  rep.btrfs_builtin = btf.vmlinux() && !rep.btrfs_module_btf && btf.has_struct("btrfs_fs_info");

  // 1. Tracepoint hooks: load and attach the real backend for a moment.
  std::map<std::string, bool> attached;
  {
    LiveOptions o;
    o.backend = Backend::Tracepoint;
    o.ringbuf_bytes = 64 * 1024;
    auto s = live::open_bpf(o, btf, nullptr, nullptr);
    rep.hooks = s->hooks;
  }  // everything detached here
  for (const auto& h : rep.hooks) attached[h.name] = h.attached;

  // 2. Function hooks: probe fentry and kprobe once on a btrfs function.
  const std::string target = btf.has_func("btrfs_get_extent") ? "btrfs_get_extent" : "";
  MechProbe fentry = target.empty()
                         ? MechProbe{false, "btrfs_get_extent not in kernel BTF (no btrfs BTF?)"}
                         : probe_fentry(target);
  MechProbe kprobe = probe_kprobe("btrfs_get_extent");
  std::set<std::string> wanted;
  for (const auto& f : loader::function_hooks())
    for (auto* c : f.candidates) wanted.insert(c);
  const auto syms = kallsyms_for(wanted);

  for (const auto& f : loader::function_hooks()) {
    HookStatus s;
    s.name = f.name;
    std::string in_btf, in_syms;
    for (auto* c : f.candidates) {
      if (in_btf.empty() && btf.has_func(c)) in_btf = c;
      if (in_syms.empty() && syms.count(c)) in_syms = c;
    }
    if (fentry.ok && !in_btf.empty()) {
      s.mechanism = "fentry";
      s.reason = fmt::format("fentry on {} permitted; the fentry backend is not in this version",
                             in_btf);
    } else if (kprobe.ok && !in_syms.empty()) {
      s.mechanism = "kprobe";
      s.reason = fmt::format("kprobe on {} permitted; the kprobe backend is not in this version",
                             in_syms);
    } else {
      s.mechanism = "none";
      std::string why_fentry =
          in_btf.empty() ? fmt::format("no {} in kernel BTF", f.candidates.front()) : fentry.reason;
      std::string why_kprobe = in_syms.empty() && kprobe.ok
                                   ? fmt::format("no {} in /proc/kallsyms", f.candidates.front())
                                   : kprobe.reason;
      s.reason = fmt::format("{}; {}; no tracepoint", why_fentry, why_kprobe);
    }
    s.attached = false;
    attached[f.name] = false;
    rep.hooks.push_back(std::move(s));
  }
  (void)backend;  // one backend exists; the report is the same for every --backend

  // 3. Detector fidelity.
  for (const auto& d : kDetectors) {
    DoctorReport::DetectorFidelity df;
    df.id = d.id;
    std::vector<std::string> missing;
    for (auto* h : d.need)
      if (!attached[h]) missing.push_back(h);
    if (*d.unavailable_without && !attached[d.unavailable_without]) {
      df.fidelity = "unavailable";
      df.reason = fmt::format(
          "needs function hooks on free_extent_buffer/find_extent_buffer (no tracepoint exists); {}",
          fentry.ok ? "fentry backend not in this version" : fentry.reason);
    } else if (!missing.empty()) {
      df.fidelity = "unavailable";
      std::string list;
      for (auto& m : missing) list += (list.empty() ? "" : ", ") + m;
      df.reason = fmt::format("hooks not attached: {}", list);
    } else {
      bool full = true;
      for (auto* h : d.full_only) full = full && attached[h];
      df.fidelity = full ? "full" : "partial";
      df.reason = full ? "all hooks attached" : d.partial_why;
    }
    rep.detectors.push_back(std::move(df));
  }
  return rep;
}

}  // namespace bdt
