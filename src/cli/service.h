// Running under systemd (docs/deployment.md): readiness, status and watchdog
// through sd_notify, findings to the journal as structured entries when stdout
// is the journal. Outside systemd all of it does nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "sinks/sink.h"

namespace bdt::cli::service {

// stdout is a journal stream: systemd's JOURNAL_STREAM names its device and inode.
bool stdout_is_journal();

// sd_notify; no-ops without NOTIFY_SOCKET.
void notify_ready(const std::string& status);
void notify_status(const std::string& status);
void notify_stopping();

// The watchdog systemd asks for (WatchdogSec=): tick() pings at least every half of
// its interval; a no-op when systemd did not ask.
class Watchdog {
 public:
  Watchdog();
  void tick(uint64_t now_ns);  // pings when half the interval has passed
  bool enabled() const { return interval_ns_ != 0; }

 private:
  uint64_t interval_ns_ = 0, last_ns_ = 0;
};

// Findings go to the journal, one entry each (MESSAGE, PRIORITY by severity,
// MESSAGE_ID, DETECTOR, KIND, LEVEL, SEVERITY, COMM, TRACED_PID, TRACED_TID,
// FS, DEV, INODE, RANGE_START, RANGE_END, VM, IMAGE, TS_NS, WALL_TIME,
// FINDING_JSON); events, losses and the summary go to `inner`. A finding the
// journal refuses is printed by `inner` instead (and said once on stderr).
std::unique_ptr<Sink> journal_findings(std::unique_ptr<Sink> inner, int64_t mono_to_realtime_ns);

// The journal fields of one finding, "NAME=value" each (what
// journal_findings() sends; exposed for the tests).
std::vector<std::string> journal_fields(const Finding& f, int64_t mono_to_realtime_ns);

}  // namespace bdt::cli::service
