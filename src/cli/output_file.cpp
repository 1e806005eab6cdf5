// -o/--output FILE: the command's stdout goes to a new file. Everything a
// command prints to stdout (sinks, tables, summaries) follows, since the file
// becomes file descriptor 1.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cli/commands.h"

namespace bdt::cli {

void redirect_stdout(const std::string& path) {
  if (path.empty() || path == "-") return;
  // A new file only: an existing file (or a symlink planted at the name) is
  // refused rather than overwritten or followed; 0600 as the output names
  // other users' processes and files.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    throw InputError(fmt::format("--output {}: {}{}", path, std::strerror(errno),
                                 errno == EEXIST ? " (not overwritten: remove it or choose another name)" : ""));
  std::fflush(stdout);
  if (::dup2(fd, STDOUT_FILENO) < 0) {
    const int e = errno;
    ::close(fd);
    throw InputError(fmt::format("--output {}: {}", path, std::strerror(e)));
  }
  ::close(fd);
}

}  // namespace bdt::cli
