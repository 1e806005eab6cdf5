// Internal to src/replay: buffered input shared by the JSON-lines and binary
// trace readers, and the factories open_trace() picks between.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "replay/trace_reader.h"

namespace bdt::replay {

struct LineTooLong : InputError {
  using InputError::InputError;
};

// A file (or stdin for "-") read through one growable buffer, so the format
// can be detected by peeking without consuming, and stdin works too.
class InputStream {
 public:
  explicit InputStream(const std::string& path);  // throws InputError
  ~InputStream();
  InputStream(const InputStream&) = delete;
  InputStream& operator=(const InputStream&) = delete;

  const std::string& name() const { return name_; }  // "<stdin>" for "-"
  // Buffers at least n bytes if the file has them; returns how many are buffered.
  size_t fill(size_t n);
  const uint8_t* data() const { return buf_.data() + pos_; }
  size_t avail() const { return end_ - pos_; }
  void consume(size_t n) {
    pos_ += n;
    offset_ += n;
  }
  uint64_t offset() const { return offset_; }  // file offset of data()
  // Reads one line without its '\n'. false at end of file with nothing read.
  // A last line without '\n' is returned as a line. Throws LineTooLong for a
  // line longer than kMaxLine (the caller names the line).
  bool getline(std::string& line);

  static constexpr size_t kMaxLine = ReadLimits::kMaxLineBytes;

 private:
  void compact();
  size_t read_more(size_t want);

  std::string name_;
  int fd_ = -1;
  bool own_fd_ = false;
  bool eof_ = false;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0, end_ = 0;
  uint64_t offset_ = 0;
};

// The 8-byte magic that starts a binary record file (docs/record-format.md).
inline constexpr uint8_t kRecordMagic[8] = {0x89, 'B', 'D', 'T', 'R', 'E', 'C', '\n'};

std::unique_ptr<TraceReader> make_jsonl_reader(std::unique_ptr<InputStream> in, bool salvage);
std::unique_ptr<TraceReader> make_binary_reader(std::unique_ptr<InputStream> in, bool salvage);

uint32_t crc32(std::span<const uint8_t> data, uint32_t crc = 0);

}  // namespace bdt::replay
