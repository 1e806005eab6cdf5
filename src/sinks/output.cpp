// Output that cannot be written is an error, never silence: the sinks' flush()
// and the commands' end check the stream here (sinks/sink.h).
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bdt/errors.h"
#include "sinks/sink.h"

namespace bdt {

OutputError output_error(int err) {
  return OutputError(fmt::format("cannot write the output: {}", err ? std::strerror(err) : "write error"));
}

namespace {
[[noreturn]] void output_failed(int err) { throw output_error(err); }
}  // namespace

void flush_output(std::FILE* out) {
  const int before = errno;  // a failed fwrite just before says why
  errno = 0;
  if (std::fflush(out) == 0 && !std::ferror(out)) return;
  output_failed(errno ? errno : before);
}

void write_output(int fd, const char* p, size_t n) {
  while (n) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) output_failed(w < 0 ? errno : 0);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace bdt
