// `trace` drops the capabilities it needed only to load and attach: see
// privileges.h and docs/deployment.md.
#include "cli/privileges.h"

#include <linux/bpf.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cerrno>
#include <cstring>

#include "core/capabilities.h"

namespace bdt::cli {

namespace {

using caps::bit;

// Whether this kernel refuses bpf() on objects the tracer already holds
// without CAP_BPF (or CAP_SYS_ADMIN): kernels before 6.5 check
// kernel.unprivileged_bpf_disabled for every bpf() command, later ones only
// for loading programs and creating maps. Asked of the kernel, not of its
// version: with the two capabilities lowered for a moment (they stay
// permitted), a lookup on an invalid map fd fails EPERM on the former and
// EBADF on the latter.
bool bpf_calls_need_capability() {
  const caps::Sets s = caps::current();
  if (!(s.effective & (bit(caps::kBpf) | bit(caps::kSysAdmin)))) return false;  // nothing to find out
  auto set_effective = [](const caps::Sets& sets, uint64_t eff) {
    __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct d[2] = {};
    d[0].effective = static_cast<uint32_t>(eff), d[1].effective = static_cast<uint32_t>(eff >> 32);
    d[0].permitted = static_cast<uint32_t>(sets.permitted), d[1].permitted = static_cast<uint32_t>(sets.permitted >> 32);
    d[0].inheritable = static_cast<uint32_t>(sets.inheritable);
    d[1].inheritable = static_cast<uint32_t>(sets.inheritable >> 32);
    return syscall(SYS_capset, &h, d) == 0;
  };
  if (!set_effective(s, s.effective & ~(bit(caps::kBpf) | bit(caps::kSysAdmin)))) return true;
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.map_fd = static_cast<__u32>(-1);
  const long rc = syscall(SYS_bpf, BPF_MAP_LOOKUP_ELEM, &attr, sizeof attr);
  const int err = errno;
  set_effective(s, s.effective);
  return rc != 0 && err == EPERM;
}

// A directory this process writes into later: does it need CAP_DAC_OVERRIDE there?
bool needs_dac_override(const std::string& dir) {
  struct stat st {};
  if (dir.empty() || ::stat(dir.c_str(), &st) != 0) return false;
  return !(st.st_uid == ::geteuid() && (st.st_mode & S_IWUSR) && (st.st_mode & S_IXUSR));
}

}  // namespace

KeptCapabilities capabilities_after_attach(const TraceArgs& a) {
  KeptCapabilities k;
  if (bpf_calls_need_capability()) {
    k.bits |= bit(caps::kBpf);
    k.why.emplace_back(bit(caps::kBpf), "cap_bpf: this kernel refuses every bpf() call without it (kernel.unprivileged_bpf_disabled "
                    "before 6.5): reading the loss counters and histograms, the --qemu pid filter");
  }
  if (a.qemu) {
    k.bits |= bit(caps::kSysPtrace) | bit(caps::kDacReadSearch);
    k.why.emplace_back(bit(caps::kSysPtrace) | bit(caps::kDacReadSearch), "cap_sys_ptrace, cap_dac_read_search: --qemu reads other users' /proc/PID/fd, fdinfo and root "
                    "every second to find VMs and their disk images");
  }
  if (needs_dac_override(a.snapshot_dir)) {
    k.bits |= bit(caps::kDacOverride);
    k.why.emplace_back(bit(caps::kDacOverride), fmt::format("cap_dac_override: --snapshot-dir {} is not owned and writable by this user",
                                a.snapshot_dir));
  }
  if (needs_dac_override(a.live.pin_dir)) {
    k.bits |= bit(caps::kDacOverride);
    k.why.emplace_back(bit(caps::kDacOverride), fmt::format("cap_dac_override: --pin-dir {} is not owned and writable by this user (its "
                                "link pins are removed at the end)",
                                a.live.pin_dir));
  }
  return k;
}

void drop_capabilities_after_attach(const TraceArgs& a) {
  const caps::Sets before = caps::current();
  if (!before.permitted) return;  // nothing to drop
  const KeptCapabilities k = capabilities_after_attach(a);
  if (auto err = caps::keep_only(k.bits); !err.empty()) {
    fmt::print(stderr, "btrfs-dio-trace: warning: could not drop capabilities after attaching: {}\n", err);
    return;
  }
  const uint64_t kept = caps::current().permitted;
  fmt::print(stderr, "btrfs-dio-trace: programs attached; capabilities kept: {} (dropped {})\n", caps::names(kept),
             caps::names(before.permitted & ~kept));
  for (const auto& [bits, why] : k.why)
    if (bits & kept) fmt::print(stderr, "  {}\n", why);
  if ((k.bits & ~kept) & (caps::bit(caps::kSysPtrace) | caps::bit(caps::kDacReadSearch)))
    fmt::print(stderr, "btrfs-dio-trace: warning: --qemu without cap_sys_ptrace and cap_dac_read_search: disk images "
                       "libvirt passes as file descriptors, and paths of VMs in another mount namespace, cannot "
                       "be seen in other users' QEMU processes\n");
}

}  // namespace bdt::cli
