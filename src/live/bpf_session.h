// The loaded tracepoint backend: skeleton, links, ring buffer, with RAII.
// Shared by the live session (live.cpp) and the doctor (doctor.cpp), which
// loads and attaches it for a moment to see what really attaches.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bdt/live.h"
#include "live/decode.h"
#include "loader/kernel_btf.h"

struct bdt_bpf;
struct bpf_link;
struct ring_buffer;

namespace bdt::live {

// Throws KernelError with what to do when not root / lacking CAP_BPF+CAP_PERFMON.
void check_privileges();
bool have_privileges();

// Resolves --mount PATH to the superblock dev_t (kernel encoding) of the btrfs
// filesystem it is on. Throws InputError when the path is not on btrfs.
uint64_t mount_superblock_dev(const std::string& path);

// Reads the canonical flag mapping (and em compression mask) from kernel BTF.
FlagMaps flag_maps_from_btf(const loader::KernelBtf& btf, uint32_t* em_compress_mask = nullptr);

using SampleFn = int (*)(void* ctx, void* data, size_t size);

struct BpfSession {
  struct bdt_bpf* skel = nullptr;
  std::vector<struct bpf_link*> links;
  struct ring_buffer* rb = nullptr;
  std::vector<HookStatus> hooks;
  FlagMaps flags;
  int lost_fd = -1;
  int stacks_fd = -1;  // kernel stacks of error origins (BPF_MAP_TYPE_STACK_TRACE)
  bool pid_filter_on = false;  // filter_pid set: add_pid/remove_pid allowed
  std::vector<std::string> warnings;
  // --pin-dir (flight_recorder.cpp): pinned maps and links; removed by the
  // destructor (links always, maps unless keep_pins).
  std::string pin_dir;
  std::vector<std::string> pins, link_pins;
  bool keep_pins = false;

  BpfSession() = default;
  BpfSession(const BpfSession&) = delete;
  BpfSession& operator=(const BpfSession&) = delete;
  ~BpfSession();
  size_t attached() const;
  std::vector<uint64_t> lost_per_cpu() const;
  void add_pid(uint32_t tgid);     // LiveSession::add_pid
  void remove_pid(uint32_t tgid);  // and its latency histograms
  LatencyHists latency() const;
};

// Opens, configures (filters, ring size), loads and attaches. sample may be
// null (doctor: no ring buffer consumer). Throws KernelError / InputError.
std::unique_ptr<BpfSession> open_bpf(const LiveOptions& opts, const loader::KernelBtf& btf,
                                     SampleFn sample, void* ctx);

}  // namespace bdt::live
