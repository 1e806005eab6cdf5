// A throw-away btrfs on a loop file (for `demo`), removed by the destructor.
#pragma once
#include <string>
#include <vector>

namespace bdt::cli {

// Runs argv (argv[0] looked up in PATH), returns exit status (or -errno on
// exec failure); stdout captured into *out when given, stderr into *err.
int run_command(const std::vector<std::string>& argv, std::string* out = nullptr,
                std::string* err = nullptr);

class ScratchBtrfs {
 public:
  // Throws KernelError (not root, no loop devices, no mkfs.btrfs) with what to do.
  explicit ScratchBtrfs(uint64_t size_bytes);
  ~ScratchBtrfs();
  ScratchBtrfs(const ScratchBtrfs&) = delete;
  ScratchBtrfs& operator=(const ScratchBtrfs&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& mnt() const { return mnt_; }
  const std::string& nocow() const { return nocow_; }
  const std::string& loop() const { return loop_; }
  void cleanup() noexcept;

 private:
  std::string dir_, img_, mnt_, nocow_, loop_;
  bool mounted_ = false;
};

}  // namespace bdt::cli
