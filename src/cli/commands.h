// The subcommands' parsed options (trace, replay, doctor, dump, demo, status)
// and their entry points: main.cpp parses the command line into these structs
// and calls the command.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "bdt/hooks.h"
#include "live/session.h"

namespace bdt::cli {

enum class Format { Text, Json, Chrome };

struct TraceArgs {
  live::LiveOptions live;
  bool events = false;
  Format format = Format::Text;
  double duration_s = 0;  // 0 = until Ctrl-C / SIGTERM
  double stall_threshold_s = 30;
  std::string record;
  std::string output;  // -o FILE ("" = stdout)
  bool wall_time = false;  // --wall-time: text times as UTC date and time
  bool quiet_header = false;
  bool qemu = false;           // --qemu
  double interval_s = 0;       // --interval SEC (0 = off)
  bool sort_requests = false;  // --sort requests (default: vm)
  // --snapshot-dir: anomaly snapshots (docs/timeline.md); empty = off.
  std::string snapshot_dir;
  double snapshot_seconds = 5;
  unsigned snapshot_max = 20;
  double snapshot_interval_s = 10;
  uint64_t snapshot_max_mib = 64;
  uint64_t snapshot_events = 1'000'000;
  std::string metrics_addr;  // --metrics-addr HOST:PORT (docs/metrics.md); empty = off
};
struct ReplayArgs {
  std::string file;
  Format format = Format::Text;
  bool events = false;
  double stall_threshold_s = 30;
  bool salvage = false;
  std::string output;
  bool wall_time = false;
};
struct DoctorArgs {
  Format format = Format::Text;
  Backend backend = Backend::Auto;
  bool facts = false;  // --facts: the KernelFacts JSON instead of the report
};
struct DumpArgs {
  std::string file;
  Format format = Format::Text;
  bool salvage = false;
  std::string pin_dir;  // dump --pin-dir: the pinned flight recorder instead of FILE
  std::string vmcore;   // dump --vmcore: the flight recorder in a kernel memory dump
  std::string instance; // dump --vmcore --instance ID: which recorder (hex id), when the dump holds several
  bool release = false; // dump --pin-dir DIR --release
  std::string post_mortem;  // dump --pin-dir DIR --post-mortem DEST: save, then release
  size_t keep = 5;          // --keep N: post-mortems kept in DEST
  std::string output;
  bool wall_time = false;
};

struct DemoArgs {
  Format format = Format::Text;
  Backend backend = Backend::Auto;
  bool events = false;
  std::string record;
  std::string output;
  bool wall_time = false;
};

struct StatusArgs {
  Format format = Format::Text;
};

int run_trace(const TraceArgs& a);
int run_status(const StatusArgs& a);
int run_demo(const DemoArgs& a);
int run_replay(const ReplayArgs& a);
int run_doctor_cmd(const DoctorArgs& a);
int run_dump(const DumpArgs& a);
int run_dump_pinned(const DumpArgs& a);  // dump_pinned.cpp
int run_dump_vmcore(const DumpArgs& a);  // dump_vmcore.cpp

// -o FILE: makes FILE the process's stdout (created new: O_EXCL, O_NOFOLLOW,
// mode 0600); "" or "-" leaves stdout alone. Throws InputError.
void redirect_stdout(const std::string& path);

// Set by SIGINT/SIGTERM.
bool stop_requested();
void install_signal_handlers();
uint64_t monotonic_ns();
// The time up to which a live session has delivered every event: events are
// held in a reorder window, so the detectors' clock must lag the wall clock
// by that much, or in-window events would arrive "in the past".
uint64_t watermark_ns(const live::LiveOptions& o);

}  // namespace bdt::cli
