// open_trace(): buffered input and format detection (binary record vs JSON lines).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "replay/input.h"

namespace bdt {
namespace replay {

InputStream::InputStream(const std::string& path) {
  if (path == "-") {
    name_ = "<stdin>";
    fd_ = STDIN_FILENO;
    own_fd_ = false;
  } else {
    name_ = path;
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0)
      throw InputError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    own_fd_ = true;
  }
  buf_.resize(64 * 1024);
}

InputStream::~InputStream() {
  if (own_fd_ && fd_ >= 0) ::close(fd_);
}

void InputStream::compact() {
  if (pos_ == 0) return;
  std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
  end_ -= pos_;
  pos_ = 0;
}

// Reads until at least `want` bytes are buffered or end of file.
size_t InputStream::read_more(size_t want) {
  if (want > buf_.size() - pos_) {
    compact();
    if (want > buf_.size()) buf_.resize(std::max(want, buf_.size() * 2));
  }
  while (!eof_ && end_ - pos_ < want) {
    if (end_ == buf_.size()) compact();
    ssize_t r = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw InputError(fmt::format("{}: read error at byte {}: {}", name_, offset_ + avail(),
                                   std::strerror(errno)));
    }
    if (r == 0) eof_ = true;
    end_ += static_cast<size_t>(r);
  }
  return end_ - pos_;
}

size_t InputStream::fill(size_t n) {
  if (end_ - pos_ >= n) return end_ - pos_;
  return read_more(n);
}

bool InputStream::getline(std::string& line) {
  line.clear();
  size_t scanned = 0;
  for (;;) {
    const uint8_t* p = buf_.data() + pos_;
    size_t n = end_ - pos_;
    const auto* nl = static_cast<const uint8_t*>(std::memchr(p + scanned, '\n', n - scanned));
    const size_t len = nl ? static_cast<size_t>(nl - p) : n;
    if (len > kMaxLine) throw LineTooLong(fmt::format("line longer than {} bytes", kMaxLine));
    if (nl) {
      line.assign(reinterpret_cast<const char*>(p), len);
      consume(len + 1);
      return true;
    }
    scanned = n;
    if (eof_) {
      if (n == 0) return false;
      line.assign(reinterpret_cast<const char*>(p), n);
      consume(n);
      return true;
    }
    read_more(n + 1);
  }
}

}  // namespace replay

std::unique_ptr<TraceReader> open_trace(const std::string& path, bool salvage) {
  auto in = std::make_unique<replay::InputStream>(path);
  size_t n = in->fill(sizeof replay::kRecordMagic);
  const uint8_t* d = in->data();
  if (n >= 2 && d[0] == 0x1f && d[1] == 0x8b)
    throw InputError(fmt::format("{}: gzip-compressed; decompress it first (zcat FILE | "
                                 "btrfs-dio-trace replay -)",
                                 in->name()));
  // 0x89 cannot start a JSON text: a file starting with it is meant to be a
  // binary record (a short or damaged magic is reported by the binary reader).
  if (n > 0 && d[0] == replay::kRecordMagic[0])
    return replay::make_binary_reader(std::move(in), salvage);
  return replay::make_jsonl_reader(std::move(in), salvage);
}

}  // namespace bdt
