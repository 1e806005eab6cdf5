// The throw-away btrfs on a loop file that `demo` traces (cli/scratch_fs.h).
#include "cli/scratch_fs.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "bdt/errors.h"

namespace bdt::cli {

namespace {
std::string read_all(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}
}  // namespace

int run_command(const std::vector<std::string>& argv, std::string* out, std::string* err) {
  int po[2] = {-1, -1}, pe[2] = {-1, -1};
  if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) return -errno;
  pid_t pid = fork();
  if (pid < 0) return -errno;
  if (pid == 0) {
    dup2(po[1], STDOUT_FILENO);
    dup2(pe[1], STDERR_FILENO);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    _exit(127);
  }
  close(po[1]);
  close(pe[1]);
  // Small outputs only (tool messages): read stdout then stderr.
  std::string o = read_all(po[0]), e = read_all(pe[0]);
  close(po[0]);
  close(pe[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (out) *out = trim(o);
  if (err) *err = trim(e);
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

ScratchBtrfs::ScratchBtrfs(uint64_t size) {
  if (geteuid() != 0)
    throw KernelError("demo needs root (it makes a loop device and mounts a scratch btrfs): run it with sudo");
  char tmpl[] = "/tmp/btrfs-dio-trace-demo-XXXXXX";
  if (!mkdtemp(tmpl)) throw KernelError(fmt::format("cannot create a scratch directory in /tmp: {}", strerror(errno)));
  dir_ = tmpl;
  img_ = dir_ + "/img";
  mnt_ = dir_ + "/mnt";
  try {
    std::filesystem::create_directory(mnt_);
    int fd = open(img_.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, static_cast<off_t>(size)) != 0)
      throw KernelError(fmt::format("cannot create the {} MiB loop file {}: {}", size >> 20, img_, strerror(errno)));
    close(fd);
    std::string out, err;
    int rc = run_command({"mkfs.btrfs", "-q", "-f", img_}, &out, &err);
    if (rc == 127)
      throw KernelError("mkfs.btrfs not found: install btrfs-progs (scripts/install-deps)");
    if (rc != 0) throw KernelError(fmt::format("mkfs.btrfs failed: {}", err));
    rc = run_command({"losetup", "--find", "--show", img_}, &out, &err);
    if (rc != 0)
      throw KernelError(fmt::format("cannot attach a loop device ({}): is the loop driver available?", err));
    loop_ = out;
    if (mount(loop_.c_str(), mnt_.c_str(), "btrfs", 0, nullptr) != 0)
      throw KernelError(fmt::format("cannot mount btrfs from {}: {}", loop_, strerror(errno)));
    mounted_ = true;
    nocow_ = mnt_ + "/nocow";
    std::filesystem::create_directory(nocow_);
    int dfd = open(nocow_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int flags = 0;
    if (dfd < 0 || ioctl(dfd, FS_IOC_GETFLAGS, &flags) != 0) throw KernelError("cannot read flags of the nocow directory");
    flags |= FS_NOCOW_FL;
    if (ioctl(dfd, FS_IOC_SETFLAGS, &flags) != 0) throw KernelError("cannot set nocow (chattr +C) on the scratch directory");
    close(dfd);
  } catch (...) {
    cleanup();
    throw;
  }
}

ScratchBtrfs::~ScratchBtrfs() { cleanup(); }

void ScratchBtrfs::cleanup() noexcept {
  if (mounted_) {
    for (int i = 0; i < 20; ++i) {
      if (umount2(mnt_.c_str(), 0) == 0) {
        mounted_ = false;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    if (mounted_ && umount2(mnt_.c_str(), MNT_DETACH) == 0) mounted_ = false;
  }
  if (!loop_.empty()) {
    run_command({"losetup", "-d", loop_});
    loop_.clear();
  }
  if (!dir_.empty() && !mounted_) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }
}

}  // namespace bdt::cli
