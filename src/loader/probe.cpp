// What the running kernel allows for function hooks, learned by trying
// (loader/probe.h).
#include "loader/probe.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

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

MechProbe probe_fentry(const std::string& func, const KernelBtf& btf) {
  // An empty program (r0 = 0; exit) loaded straight from its instructions, against the
  // function's BTF id: a BPF object would have libbpf parse vmlinux's BTF (and every
  // module's) for each probe, a second of CPU per probe on a slow (emulated) machine.
  int btf_id = 0, obj_fd = 0;
  if (!btf.func_attach_target(func, &btf_id, &obj_fd))
    return {false, fmt::format("fentry program on {} not loadable: no BTF id for it (or its module's "
                               "BTF object)", func)};
  const bpf_insn insns[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .src_reg = 0, .off = 0, .imm = 0},
      {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
  };
  LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = BPF_TRACE_FENTRY,
              .attach_btf_id = static_cast<__u32>(btf_id), .attach_btf_obj_fd = static_cast<__u32>(obj_fd));
  const int prog = bpf_prog_load(BPF_PROG_TYPE_TRACING, "probe_fentry", "Dual BSD/GPL", insns,
                                 sizeof insns / sizeof insns[0], &o);
  MechProbe r;
  if (prog < 0) {
    const int err = errno;
    r.reason = err == EPERM || err == EACCES
                   ? refused(err)
                   : fmt::format("fentry program on {} not loadable: {}", func, std::strerror(err));
    return r;
  }
  const int link = bpf_raw_tracepoint_open(nullptr, prog);  // attaches a tracing program
  if (link >= 0) {
    r.ok = true;
    r.reason = fmt::format("fentry attached to {} in a probe", func);
    close(link);
  } else {
    const int err = errno;
    r.reason = err == EPERM || err == EACCES
                   ? refused(err)
                   : fmt::format("fentry attach to {} failed: {}", func, std::strerror(err));
  }
  close(prog);
  return r;
}

bool probe_rdonly_untyped(const KernelBtf& btf) {
  // r1 = r10; r1 += -8; r2 = 0; r0 = bpf_rdonly_cast(r1, r2); r0 = *(u64 *)(r0 + 16);
  // r0 = 0; exit. Kernels that have the kfunc but want a struct's type id refuse it.
  int id = 0, obj_fd = -1;
  if (!btf.func_attach_target("bpf_rdonly_cast", &id, &obj_fd) || obj_fd != 0) return false;
  const bpf_insn insns[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_1, .src_reg = BPF_REG_10, .off = 0, .imm = 0},
      {.code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = BPF_REG_1, .src_reg = 0, .off = 0, .imm = -8},
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_2, .src_reg = 0, .off = 0, .imm = 0},
      {.code = BPF_JMP | BPF_CALL, .dst_reg = 0, .src_reg = BPF_PSEUDO_KFUNC_CALL, .off = 0, .imm = id},
      {.code = BPF_LDX | BPF_MEM | BPF_DW, .dst_reg = BPF_REG_0, .src_reg = BPF_REG_0, .off = 16, .imm = 0},
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .src_reg = 0, .off = 0, .imm = 0},
      {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
  };
  const int prog = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "probe_rdonly", "Dual BSD/GPL", insns,
                                 sizeof insns / sizeof insns[0], nullptr);
  if (prog < 0) return false;
  close(prog);
  return true;
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
