// `btrfs-dio-trace doctor`: what this kernel lets the tool see, and how.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "detectors/exposure.h"
#include "bdt/kernel_version.h"
#include "cli/commands.h"
#include "live/doctor.h"
#include "live/flight_recorder.h"

#include <bpf/libbpf.h>

namespace bdt::cli {

int run_doctor_cmd(const DoctorArgs& a) {
  live::DoctorReport r = live::run_doctor(a.backend);
  if (a.facts) {
    fmt::print("{}\n", loader::to_json(r.facts).dump(2));
    return 0;
  }
  if (r.exposure.empty()) {
    auto k = KernelVersion::parse(r.kernel).value_or(KernelVersion{});
    r.exposure = exposure_lines(k);
  }
  if (a.format == Format::Json) {
    nlohmann::json j;
    j["kernel"] = r.kernel;
    j["btf"] = {{"vmlinux", r.vmlinux_btf},
                {"btrfs_module", r.btrfs_module_btf},
                {"btrfs_builtin", r.btrfs_builtin}};
    j["root"] = r.root;
    j["hooks"] = nlohmann::json::array();
    for (const auto& h : r.hooks)
      j["hooks"].push_back({{"name", h.name()},
                            {"mechanism", to_string(h.mechanism)},
                            {"attached", h.attached},
                            {"reason", h.reason}});
    j["detectors"] = nlohmann::json::array();
    for (const auto& d : r.detectors)
      j["detectors"].push_back({{"id", d.id},
                                {"fidelity", d.fidelity},
                                {"reason", d.reason},
                                {"findings_only", d.findings_only}});
    j["exposure"] = r.exposure;
    j["tracefs"] = r.tracefs;
    j["warnings"] = r.warnings;
    fmt::print("{}\n", j.dump());
    return 0;
  }
  fmt::print("kernel        {}\n", r.kernel);
  fmt::print("BTF           vmlinux: {}   btrfs module: {}\n", r.vmlinux_btf ? "yes" : "NO",
             r.btrfs_builtin ? "n/a (btrfs built in)" : (r.btrfs_module_btf ? "yes" : "no"));
  fmt::print("privileges    {}\n", r.root ? "root" : "not root");
  fmt::print("tracefs       {}\n", r.tracefs);
  fmt::print("\n{:<34} {:<11} {:<9} {}\n", "HOOK", "MECHANISM", "ATTACHES", "REASON");
  for (const auto& h : r.hooks)
    fmt::print("{:<34} {:<11} {:<9} {}\n", h.name(), to_string(h.mechanism), h.attached ? "yes" : "no",
               h.reason);
  if (!r.warnings.empty()) {
    fmt::print("\nnotes (programs the kernel refused and what their hooks fell back to, mounts):\n");
    for (const auto& w : r.warnings) fmt::print("  - {}\n", w);
  }
  fmt::print("\n{:<28} {:<12} {}\n", "DETECTOR", "FIDELITY", "WHY");
  for (const auto& d : r.detectors) fmt::print("{:<28} {:<12} {}\n", d.id, d.fidelity, d.reason);
  // what each sees by default, when records are made only for what a trigger flags
  fmt::print("\n{:<28} {}\n", "DETECTOR", "FINDINGS ONLY (the default; --events makes every record)");
  for (const auto& d : r.detectors)
    if (d.fidelity != "unavailable") fmt::print("{:<28} {}\n", d.id, d.findings_only);
  {
    const size_t slot = live::recorder_slot_bytes();
    const int ncpu = libbpf_num_possible_cpus();
    fmt::print("\nflight recorder  {} bytes per event; the default 65536 events per CPU take {:.1f} MiB per "
               "CPU, {:.1f} MiB for this machine's {} possible CPUs (trace --recorder-events N)\n",
               slot, 65536.0 * slot / (1 << 20), 65536.0 * slot * ncpu / (1 << 20), ncpu);
  }
  if (!r.exposure.empty()) {
    fmt::print("\nknown-bug exposure of this kernel:\n");
    for (const auto& e : r.exposure) fmt::print("  - {}\n", e);
  }
  return 0;
}

}  // namespace bdt::cli
