// Capabilities of the calling thread: see src/core/capabilities.h.
#include "core/capabilities.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace bdt::caps {

namespace {

constexpr const char* kNames[] = {
    "cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid", "cap_kill", "cap_setgid",
    "cap_setuid", "cap_setpcap", "cap_linux_immutable", "cap_net_bind_service", "cap_net_broadcast",
    "cap_net_admin", "cap_net_raw", "cap_ipc_lock", "cap_ipc_owner", "cap_sys_module", "cap_sys_rawio",
    "cap_sys_chroot", "cap_sys_ptrace", "cap_sys_pacct", "cap_sys_admin", "cap_sys_boot", "cap_sys_nice",
    "cap_sys_resource", "cap_sys_time", "cap_sys_tty_config", "cap_mknod", "cap_lease", "cap_audit_write",
    "cap_audit_control", "cap_setfcap", "cap_mac_override", "cap_mac_admin", "cap_syslog", "cap_wake_alarm",
    "cap_block_suspend", "cap_audit_read", "cap_perfmon", "cap_bpf", "cap_checkpoint_restore"};
constexpr int kKnown = static_cast<int>(sizeof kNames / sizeof kNames[0]);

int last_cap() {
  // The kernel's highest capability number (/proc/sys/kernel/cap_last_cap).
  static const int last = [] {
    int v = kKnown - 1;
    if (FILE* f = std::fopen("/proc/sys/kernel/cap_last_cap", "r")) {
      if (std::fscanf(f, "%d", &v) != 1) v = kKnown - 1;
      std::fclose(f);
    }
    return v;
  }();
  return last;
}

}  // namespace

Sets current() {
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2] = {};
  Sets s;
  if (syscall(SYS_capget, &h, d) != 0) return s;
  s.effective = d[0].effective | uint64_t{d[1].effective} << 32;
  s.permitted = d[0].permitted | uint64_t{d[1].permitted} << 32;
  s.inheritable = d[0].inheritable | uint64_t{d[1].inheritable} << 32;
  return s;
}

std::string names(uint64_t bits) {
  std::string out;
  for (int c = 0; c < 64; ++c) {
    if (!(bits & bit(c))) continue;
    if (!out.empty()) out += ',';
    out += c < kKnown ? std::string(kNames[c]) : fmt::format("cap_{}", c);
  }
  return out.empty() ? "none" : out;
}

std::string keep_only(uint64_t keep) {
  const Sets now = current();
  keep &= now.permitted;
  // The bounding set first, while CAP_SETPCAP (if we have it) is still
  // effective. Without it the bounding set stays as the parent left it, and
  // no_new_privs (below) is what keeps an execve from regaining anything.
  if (now.effective & bit(kSetpcap))
    for (int c = 0; c <= last_cap(); ++c)
      if (!(keep & bit(c)) && prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1 && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
        return fmt::format("cannot drop {} from the bounding set: {}", c < kKnown ? kNames[c] : "?",
                           std::strerror(errno));
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return fmt::format("cannot clear the ambient capabilities: {}", std::strerror(errno));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return fmt::format("cannot set no_new_privs: {}", std::strerror(errno));
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2] = {};
  d[0].effective = d[0].permitted = static_cast<uint32_t>(keep);
  d[1].effective = d[1].permitted = static_cast<uint32_t>(keep >> 32);
  if (syscall(SYS_capset, &h, d) != 0) return fmt::format("capset: {}", std::strerror(errno));
  const Sets after = current();
  if (after.effective != keep || after.permitted != keep || after.inheritable)
    return fmt::format("capabilities are {} after keeping only {}", names(after.permitted), names(keep));
  return {};
}

}  // namespace bdt::caps
