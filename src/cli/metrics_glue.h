// --metrics-addr glue: the tracer's state, as the metrics exporter reads it.
#pragma once

#include <memory>

#include "detectors/engine.h"
#include "qemu/qemu.h"
#include "cli/commands.h"
#include "metrics/exporter.h"

namespace bdt::cli {

// Binds --metrics-addr (nullptr when not given); InputError/KernelError.
std::unique_ptr<metrics::Exporter> start_metrics(const TraceArgs& a);
// Where the btrfs filesystem with this UUID is mounted ("" if nowhere we can
// see): its top-level subvolume's mount if there is one, else the shortest
// mount point; for the `mountpoint` metric label.
std::string btrfs_mountpoint(const Fsid& fs);
metrics::TracerState tracer_state(const live::Session& s, const Engine& e, qemu::Tracker* vms,
                                  const TraceArgs& a, double start_unix_s);

}  // namespace bdt::cli
