// What the running kernel allows for function hooks, learned by trying
// (loader/probe.h).
#include "loader/probe.h"

#include <bpf/libbpf.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include "probe.skel.h"

namespace bdt::loader {

namespace {
std::string refused(int err) {
  return fmt::format("fentry refused by this kernel ({}: function tracing with BPF blocked)",
                     err == EPERM ? "EPERM" : "EACCES");
}
}  // namespace

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
                   ? refused(err)
                   : fmt::format("fentry program on {} not loadable: {}", func, std::strerror(err));
  } else if (bpf_link* l = bpf_program__attach(skel->progs.probe_fentry)) {
    r.ok = true;
    r.reason = fmt::format("fentry attached to {} in a probe", func);
    bpf_link__destroy(l);
  } else {
    err = errno;
    r.reason = err == EPERM || err == EACCES
                   ? refused(err)
                   : fmt::format("fentry attach to {} failed: {}", func, std::strerror(err));
  }
  probe_bpf__destroy(skel);
  return r;
}

bool kprobe_pmu() {
  struct stat st {};
  return stat("/sys/bus/event_source/devices/kprobe/type", &st) == 0;
}

MechProbe probe_kprobe(const std::string& func) {
  MechProbe r;
  const bool pmu = kprobe_pmu();
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

std::map<std::string, std::string> kallsyms_resolve(const std::set<std::string>& wanted) {
  std::ifstream in("/proc/kallsyms");
  std::stringstream ss;
  ss << in.rdbuf();
  return kallsyms_resolve_text(ss.str(), wanted);
}

}  // namespace bdt::loader
