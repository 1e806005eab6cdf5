// `doctor` (doctor.h): a live session opened for a moment with Use::Probe,
// then each detector's fidelity judged from what attached (the hook table's
// detector entries, bpf/hooks.def).
#include "live/doctor.h"

#include <unistd.h>

#include <fmt/core.h>

#include "live/session.h"

namespace bdt::live {

DoctorReport run_doctor(Backend backend) {
  DoctorReport rep;
  rep.root = geteuid() == 0;
  LiveOptions o;
  o.backend = backend;
  o.ringbuf_bytes = 64 * 1024;
  o.recorder_events = 16;  // the recorder's code path, without its memory
  {
    auto s = Session::open(o, Session::Use::Probe);
    rep.hooks = s->hooks();
    rep.warnings = s->warnings();
    rep.facts = s->facts();
  }  // everything detached here
  const auto& f = rep.facts;
  rep.kernel = f.release;
  rep.vmlinux_btf = f.vmlinux_btf;
  rep.btrfs_module_btf = f.btrfs_module_btf;
  rep.btrfs_builtin = f.vmlinux_btf && !f.btrfs_module_btf && f.btrfs_types;
  rep.tracefs = f.tracefs.empty() ? f.tracefs_how : fmt::format("{} ({})", f.tracefs, f.tracefs_how);
  rep.detectors = loader::detector_fidelity(rep.hooks);
  return rep;
}

}  // namespace bdt::live
