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

namespace bdt {

namespace {

bool exists(const char* p) {
  struct stat st {};
  return stat(p, &st) == 0;
}

struct DetectorNeeds {
  const char* id;
  // Hooks without which it is unavailable; "a|b" = either of them.
  std::vector<const char*> need;
  std::vector<const char*> full_only;  // hooks that lift it from partial to full
  const char* partial_why;             // what is missing when only tracepoints attach
  const char* unavailable_without;     // function hooks it cannot work without ("" none)
};

const DetectorNeeds kDetectors[] = {
    {"em-merge-race",
     {"btrfs_handle_em_exist", "iomap_dio_rw_begin|btrfs_dio_write()",
      "iomap_dio_complete|iomap_dio_complete()"},
     {"btrfs_get_extent()", "add_extent_mapping()"},
     "btrfs_get_extent is seen only at exit (tracepoint), so 'another thread inside "
     "btrfs_get_extent' is inferred from DIO requests in flight; EEXIST seen at dio_end",
     ""},
    {"stale-eb-reuse", {}, {}, "", "free_extent_buffer()"},
    {"dio-short-write",
     {"iomap_dio_rw_begin|btrfs_dio_write()", "iomap_dio_complete|iomap_dio_complete()",
      "btrfs_finish_ordered_extent|btrfs_finish_ordered_io()"},
     {},
     "",
     ""},
    {"send-vs-relocation",
     {"sys_enter_ioctl|btrfs_ioctl_send()", "sys_exit_ioctl|btrfs_ioctl_send()"},
     {"btrfs_relocate_block_group()"},
     "relocation is seen as the balance/device-remove/resize ioctls and automatic reclaim "
     "(begin only); per-block-group relocation needs a function hook on "
     "btrfs_relocate_block_group",
     ""},
    {"dio-unstable-pages",
     {"iomap_dio_rw_begin|btrfs_dio_write()"},
     {"btrfs_check_data_csum()"},
     "checksum failures are not observable without a function hook on the csum check; the "
     "hazard (shared writable buffer on a checksummed file) is seen at dio_begin",
     ""},
    {"dio-buffered-fallback",
     {"iomap_dio_rw_begin|btrfs_dio_write()"},
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

  // Load and attach the real backend (tracepoints and function hooks, as
  // --backend chooses) for a moment: what attaches is what tracing would get.
  std::map<std::string, bool> attached;
  {
    LiveOptions o;
    o.backend = backend;
    o.ringbuf_bytes = 64 * 1024;
    o.recorder_events = 16;  // the recorder's code path, without its memory
    auto s = live::open_bpf(o, btf, nullptr, nullptr);
    rep.hooks = s->hooks;
  }  // everything detached here
  for (const auto& h : rep.hooks) attached[h.name] = h.attached;
  auto have = [&](const std::string& alt) {
    size_t i = 0;
    while (i <= alt.size()) {
      size_t j = alt.find('|', i);
      if (j == std::string::npos) j = alt.size();
      if (attached[alt.substr(i, j - i)]) return true;
      i = j + 1;
    }
    return false;
  };
  std::string fn_why;
  for (const auto& h : rep.hooks)
    if (h.name == "free_extent_buffer()") fn_why = h.reason;

  // 3. Detector fidelity.
  for (const auto& d : kDetectors) {
    DoctorReport::DetectorFidelity df;
    df.id = d.id;
    std::vector<std::string> missing;
    for (auto* h : d.need)
      if (!have(h)) missing.push_back(h);
    if (*d.unavailable_without && !have(d.unavailable_without)) {
      df.fidelity = "unavailable";
      df.reason = fmt::format(
          "needs function hooks on free_extent_buffer/find_extent_buffer (no tracepoint exists): {}",
          fn_why);
    } else if (!missing.empty()) {
      df.fidelity = "unavailable";
      std::string list;
      for (auto& m : missing) list += (list.empty() ? "" : ", ") + m;
      df.reason = fmt::format("hooks not attached: {}", list);
    } else {
      bool full = true;
      for (auto* h : d.full_only) full = full && have(h);
      df.fidelity = full ? "full" : "partial";
      df.reason = full ? "all hooks attached" : d.partial_why;
    }
    rep.detectors.push_back(std::move(df));
  }
  return rep;
}

}  // namespace bdt
