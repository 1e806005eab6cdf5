// --metrics-addr glue: the tracer's state, as the metrics exporter reads it.
#pragma once

#include <memory>

#include "bdt/engine.h"
#include "bdt/live.h"
#include "bdt/qemu.h"
#include "cli/commands.h"
#include "metrics/exporter.h"

namespace bdt::cli {

// Binds --metrics-addr (nullptr when not given); InputError/KernelError.
std::unique_ptr<metrics::Exporter> start_metrics(const TraceArgs& a);
metrics::TracerState tracer_state(const LiveSession& s, const Engine& e, qemu::Tracker* vms,
                                  const TraceArgs& a, double start_unix_s);

}  // namespace bdt::cli
